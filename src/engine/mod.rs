//! Wires the stages for one micro-batch: decode -> window -> score -> alert.
//!
//! The engine does no I/O. A driver ([`crate::drivers`], or a test) hands
//! it the raw messages of a micro-batch and sends what comes back through
//! its [`Outputs`]: alerts to the dong-office queue and rejects to the dead
//! letters. The stages do not know each other; only this module passes
//! data between them, and it drives their state through the one contract
//! they share ([`StatefulStage`]), stage after stage.
//!
//! Households are spread over lanes (one per core) by a hash of their id.
//! Each lane has its own decode, window, score and alert stages and shares
//! nothing with the others, so a micro-batch's lanes run in parallel; a
//! household's signals always meet in the same lane. Lanes exchange only the
//! feeds' newest event times (the watermarks), between batches.

mod lane;

use std::collections::BTreeMap;
use std::time::Instant;

use futures::FutureExt;

use crate::base::keyed::Record;
use crate::base::lanes::{each_lane, on_lanes};
use crate::base::message::InputMessage;
use crate::checkpoint::{EncodedState, ShardRecords, StoredRecords};
use crate::definition::PipelineSpec;
use crate::metrics::Metrics;
use crate::stages::alert::Alert;
use crate::stages::decode::{Reject, RejectClass};
use crate::stages::score::{Assessment, ScoreError};
use crate::stages::{Restore, Restored, StatePart, StatefulStage, Watermark};
use lane::{each_stage, lane_index, Lane};

/// What one micro-batch produced.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Alerts to send, in decision order.
    pub alerts: Vec<Alert>,
    /// Rejected messages: index into the batch and why.
    pub rejects: Vec<(usize, Reject)>,
    /// Signals stored in the window state.
    pub accepted: usize,
    /// Re-sent events counted once.
    pub duplicates: usize,
    /// Assessments held back by the cooldown.
    pub suppressed: usize,
}

/// Where a driver sends what a micro-batch produced: alerts to the dong
/// offices' queue, rejects to the dead letters. A batch counts as done
/// once `deliver` returns, so an implementation returns only when its
/// outputs are as durable as the driver promises (the Kafka sink: every
/// message acknowledged by the broker).
pub trait Outputs: Send {
    /// Why the outputs could not take a batch.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Takes the results of `batch`; `result.rejects` index into it.
    fn deliver(
        &mut self,
        result: &BatchResult,
        batch: &[InputMessage],
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// The stages of one pipeline, wired.
pub struct Engine {
    lanes: Vec<Lane>,
    metrics: Metrics,
    feed_names: Vec<String>,
    /// `sagak_signals_received_total` of each feed, looked up once: a
    /// labelled lookup takes a lock, too dear for every message.
    received: Vec<prometheus::IntCounter>,
    /// Messages of the batch in flight per feed (reused).
    received_in_batch: Vec<u64>,
    /// Shard of each message of the batch in flight (reused).
    shards: Vec<i32>,
    /// Fingerprint of the scoring SQL, kept in snapshots so a restart can
    /// tell whether the alert marks were decided by the same scoring.
    scoring: u64,
    /// Length of the window (event time).
    window_ms: i64,
    /// See [`Engine::hold_for_cutoff`].
    held_from: Option<i64>,
    /// Whether every household at a priority has an alert mark, so the
    /// daily lists need score only the marked ones. True from an empty
    /// state; false after restoring marks decided by another scoring, until
    /// a full re-scoring has marked what the new one finds.
    marks_cover_priorities: bool,
}

/// Bytes of records in one part of a snapshot copy.
const SNAPSHOT_PART: usize = 4 << 20;

/// Below this many messages a batch's lanes run one after the other: a
/// thread start costs more than the work it would share.
const PARALLEL_FROM: usize = 256;

/// Below this many households a pass over the whole state (eviction,
/// restore) runs the lanes one after the other.
const PARALLEL_STATE: usize = 100_000;

impl Engine {
    /// An engine for `spec`, reporting to `metrics`, with one lane per core
    /// this process may use.
    pub fn new(spec: &PipelineSpec, metrics: Metrics) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_lanes(spec, metrics, cores)
    }

    /// An engine with `lanes` lanes (at least one, at most 64).
    pub fn with_lanes(spec: &PipelineSpec, metrics: Metrics, lanes: usize) -> Self {
        Engine {
            lanes: (0..lanes.clamp(1, 64)).map(|_| Lane::new(spec)).collect(),
            received: spec
                .feeds
                .iter()
                .map(|f| metrics.received.with_label_values(&[f.name.as_str()]))
                .collect(),
            received_in_batch: vec![0; spec.feeds.len()],
            metrics,
            feed_names: spec.feeds.iter().map(|f| f.name.clone()).collect(),
            shards: Vec::new(),
            scoring: crate::base::hash::fnv1a64(&[spec.score_sql.as_bytes()]),
            marks_cover_priorities: true,
            window_ms: spec.window.length_ms(),
            held_from: None,
        }
    }

    /// The lane of a household, from its id (or a message's key, which the
    /// decoder requires to be the household id).
    fn lane_of(&self, household_id: &[u8]) -> usize {
        lane_index(household_id, self.lanes.len())
    }

    /// Checks what can only be checked by running it (the scoring SQL), so
    /// a broken pipeline stops at start-up.
    pub async fn start(&self) -> Result<(), ScoreError> {
        for lane in &self.lanes {
            lane.scorer.check().await?;
        }
        Ok(())
    }

    /// Processes one micro-batch. `now_ms` is the wall clock.
    pub async fn process_batch(
        &mut self,
        msgs: &[InputMessage],
        now_ms: i64,
    ) -> Result<BatchResult, ScoreError> {
        let started = Instant::now();
        let mut result = BatchResult::default();
        for lane in &mut self.lanes {
            lane.msgs.clear();
        }
        for (i, m) in msgs.iter().enumerate() {
            let Some(feed) = m.feed else {
                result.rejects.push((
                    i,
                    Reject::new(
                        RejectClass::UnknownTopic,
                        format!("no feed reads topic {}", m.topic),
                    ),
                ));
                continue;
            };
            if let Some(n) = self.received_in_batch.get_mut(usize::from(feed)) {
                *n += 1;
            }
            // A message without a key is rejected by the decoder of any lane.
            let lane = self.lane_of(m.key.as_deref().unwrap_or_default());
            self.lanes[lane].msgs.push(i as u32);
        }
        for (counter, n) in self.received.iter().zip(&mut self.received_in_batch) {
            counter.inc_by(std::mem::take(n));
        }
        self.shards.clear();
        self.shards.extend(msgs.iter().map(|m| m.partition));

        let shards = &self.shards;
        let jobs = self
            .lanes
            .iter_mut()
            .map(|lane| lane.process(msgs, shards, now_ms).boxed())
            .collect();
        let mut dropped_over_cap = 0;
        for lane in on_lanes(jobs, msgs.len() >= PARALLEL_FROM).await {
            let lane = lane?;
            result.alerts.extend(lane.alerts);
            result.rejects.extend(lane.rejects);
            result.accepted += lane.accepted;
            result.duplicates += lane.duplicates;
            result.suppressed += lane.suppressed;
            dropped_over_cap += lane.dropped_over_cap;
        }
        self.share_watermarks();
        result.rejects.sort_by_key(|(i, _)| *i);
        // One lane's alerts come in household order; so do all of them.
        result
            .alerts
            .sort_by(|a, b| a.household_id.cmp(&b.household_id));

        let m = &self.metrics;
        for (_, r) in &result.rejects {
            m.rejected.with_label_values(&[r.class.as_str()]).inc();
        }
        m.duplicates.inc_by(result.duplicates as u64);
        m.dropped_over_cap.inc_by(dropped_over_cap as u64);
        m.suppressed.inc_by(result.suppressed as u64);
        // one labelled lookup (and its lock) per priority and dong, not per alert
        let mut alerts: std::collections::HashMap<(&str, &str), u64> = Default::default();
        for a in &result.alerts {
            *alerts
                .entry((a.priority.as_str(), a.dong_code.as_str()))
                .or_default() += 1;
        }
        for ((priority, dong), n) in alerts {
            m.alerts.with_label_values(&[priority, dong]).inc_by(n);
        }
        m.households.set(self.households() as i64);
        for (f, name) in self.feed_names.iter().enumerate() {
            if let Some(wm) = self.lanes[0].windows.watermark().of_feed(f) {
                m.watermark
                    .with_label_values(&[name.as_str()])
                    .set(wm / 1000);
            }
        }
        m.batch_size.observe(msgs.len() as f64);
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
        Ok(result)
    }

    /// Gives every lane the newest event time of each feed over all lanes,
    /// so lateness and eviction follow one watermark per feed. Within a
    /// batch a lane raises it only by its own signals.
    fn share_watermarks(&mut self) {
        if self.lanes.len() < 2 {
            return;
        }
        let mut shared = self.lanes[0].windows.watermark().clone();
        for lane in &self.lanes[1..] {
            shared.raise_all(lane.windows.watermark().feed_newest());
        }
        for lane in &mut self.lanes {
            lane.windows.raise_watermark(&shared);
        }
    }

    /// Event time as every lane holds it between batches.
    pub fn watermark(&self) -> &Watermark {
        self.lanes[0].windows.watermark()
    }

    /// Keeps what the daily list of the cut-off `next_cutoff_ms` counts
    /// from eviction (every signal of its window, and the marks of their
    /// households), so that eviction never changes a list.
    pub fn hold_for_cutoff(&mut self, next_cutoff_ms: Option<i64>) {
        self.held_from = next_cutoff_ms.map(|c| c - self.window_ms);
    }

    /// Evicts, in every stateful stage, the state the watermark has passed.
    /// Returns how many items each part evicted (signals of the window
    /// stage, marks of the alert gate), in [`StatePart::ALL`] order.
    pub fn on_watermark(&mut self) -> [usize; StatePart::ALL.len()] {
        let mut watermark = self.watermark().clone();
        watermark.hold_from(self.held_from);
        let evict = |lane: &mut Lane| {
            let mut evicted = [0; StatePart::ALL.len()];
            each_stage!(mut lane, s => evicted[part_of(s).index()] += s.on_watermark(&watermark));
            evicted
        };
        // a pass over a large state is worth a thread per lane (it is part
        // of the checkpoint's pause of the loop)
        let parallel = self.households() >= PARALLEL_STATE;
        let per_lane = each_lane(self.lanes.iter_mut(), parallel, evict);
        self.metrics.households.set(self.households() as i64);
        let mut total = [0; StatePart::ALL.len()];
        for lane in per_lane {
            for (t, n) in total.iter_mut().zip(lane) {
                *t += n;
            }
        }
        total
    }

    /// Ids of every household in the state.
    pub fn household_ids(&self) -> impl Iterator<Item = &str> {
        self.lanes.iter().flat_map(|l| l.windows.household_ids())
    }

    /// Scores the given households as of the cut-off `as_of_ms`: exactly
    /// their signals within the window that ends there (for the daily
    /// lists, which go through the state in chunks so the signal table of a
    /// whole country is never built at once). Each lane scores its own, in
    /// parallel.
    pub async fn assess(
        &self,
        households: &[&str],
        as_of_ms: i64,
    ) -> Result<Vec<Assessment>, ScoreError> {
        let mut parts: Vec<Vec<&str>> = vec![Vec::new(); self.lanes.len()];
        for &h in households {
            parts[self.lane_of(h.as_bytes())].push(h);
        }
        let jobs = self
            .lanes
            .iter()
            .zip(&parts)
            .map(|(lane, part)| lane.assess(part, Some(as_of_ms)).boxed())
            .collect();
        let mut out = Vec::with_capacity(households.len());
        for part in on_lanes(jobs, households.len() >= PARALLEL_FROM).await {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The households the daily lists must score, and whether they are only
    /// the marked ones (see [`crate::stages::alert::AlertMark`]): a household whose
    /// last assessment reached no priority cannot be on a list, since its
    /// score changes only when a signal arrives and is assessed. After a
    /// restore under another scoring SQL, every household.
    pub fn list_candidates(&self) -> (Vec<&str>, bool) {
        if self.marks_cover_priorities {
            let ids = self.lanes.iter().flat_map(|l| l.gate.marked()).collect();
            (ids, true)
        } else {
            (self.household_ids().collect(), false)
        }
    }

    /// Marks the households a full re-scoring found at a priority (id,
    /// priority, window end); from then on the marks cover every household
    /// at a priority again.
    pub fn index_priorities(&mut self, found: &[(String, crate::stages::score::Priority, i64)]) {
        let lanes = self.lanes.len();
        for (id, priority, at) in found {
            let lane = &mut self.lanes[lane_index(id.as_bytes(), lanes)];
            let shard = lane.windows.shard_of(id).unwrap_or_default();
            lane.gate.index_priority(id, *priority, *at, shard);
        }
        self.marks_cover_priorities = true;
    }

    /// The last alert sent for a household.
    pub fn alert_mark(&self, household_id: &str) -> Option<crate::stages::alert::AlertMark> {
        self.lanes[self.lane_of(household_id.as_bytes())]
            .gate
            .mark(household_id)
    }

    /// Number of households with live signals.
    pub fn households(&self) -> usize {
        self.lanes.iter().map(|l| l.windows.len()).sum()
    }

    /// Copies every shard's records for a snapshot, the lanes in parallel.
    /// This is all the run loop waits for: the copy is written to disk on a
    /// thread of its own ([`crate::checkpoint::BackgroundWrite`]).
    pub fn encode_state(&self) -> EncodedState {
        fn lane_records(lane: &Lane) -> BTreeMap<i32, ShardRecords> {
            let mut shards: BTreeMap<i32, ShardRecords> = BTreeMap::new();
            each_stage!(lane, s => {
                let part = part_of(s);
                for (shard, r) in s.records() {
                    shards.entry(shard).or_default().push(part, r.as_bytes(), SNAPSHOT_PART);
                }
            });
            shards
        }
        let per_lane = each_lane(self.lanes.iter(), self.lanes.len() > 1, lane_records);
        let mut shards: BTreeMap<i32, ShardRecords> = BTreeMap::new();
        for lane in per_lane {
            for (shard, records) in lane {
                shards.entry(shard).or_default().append(records);
            }
        }
        EncodedState {
            shards,
            dictionary: self.lanes[0].windows.dictionary(),
            feed_newest: self.watermark().feed_newest().to_vec(),
            scoring: self.marks_cover_priorities.then_some(self.scoring),
        }
    }

    /// Adds one shard's state from its snapshot, each record to the stage
    /// and lane it belongs to (translated when the snapshot was written
    /// under another pipeline definition).
    pub fn restore_shard(&mut self, stored: &StoredRecords) {
        let parallel = stored.count(StatePart::Households) >= PARALLEL_STATE;
        self.restore_records(stored, parallel);
        self.metrics.households.set(self.households() as i64);
    }

    fn restore_records(&mut self, stored: &StoredRecords, parallel: bool) {
        let mut dictionary = stored.dictionary.clone();
        if stored.feeds_by_position {
            dictionary.feeds = self.lanes[0].windows.dictionary().feeds;
        }
        let translation = self.lanes[0].windows.translation(&dictionary);
        if translation.is_some() {
            tracing::warn!("the state snapshot was written under another pipeline definition (feeds or their values changed); its households are translated as they are restored");
        }
        let same_scoring = translation.is_none() && stored.scoring == Some(self.scoring);
        if !same_scoring && stored.count(StatePart::Households) > 0 {
            // its marks say nothing of what this scoring puts at a priority
            tracing::info!("the state snapshot was scored by another pipeline definition: the next daily lists re-score every household");
            self.marks_cover_priorities = false;
        }
        let lanes = self.lanes.len();
        let restore = Restore {
            translation: translation.as_ref(),
        };
        // Each lane takes its own records from the whole list; room is made
        // first, so the tables do not grow (and rehash) as they fill.
        let job = |(i, lane): (usize, &mut Lane)| -> Restored {
            let mut done = Restored::default();
            let mine = |(id, _): &(&str, &[u8])| lane_index(id.as_bytes(), lanes) == i;
            each_stage!(mut lane, s => {
                let part = part_of(s);
                s.reserve(stored.count(part) / lanes + 1);
                for (id, payload) in stored.records(part).filter(mine) {
                    done += s.restore_record(Record::new(id, payload), &restore);
                }
            });
            lane.windows
                .restore_newest(&stored.feed_newest, restore.translation);
            done
        };
        let mut done = Restored::default();
        for lane in each_lane(self.lanes.iter_mut().enumerate(), parallel, job) {
            done += lane;
        }
        if done.dropped_signals > 0 {
            tracing::warn!(
                signals = done.dropped_signals,
                "signals of feeds no longer in the pipeline were not restored"
            );
        }
        if done.unreadable > 0 {
            tracing::error!(records = done.unreadable, "records in the snapshot could not be read and were skipped; those households may be alerted once more");
        }
    }

    /// Forgets one shard's state in every stage: its partition moved to
    /// another instance, which continues from the shard's snapshot. Returns
    /// the households dropped.
    pub fn drop_shard(&mut self, shard: i32) -> usize {
        let mut dropped = [0; StatePart::ALL.len()];
        for lane in &mut self.lanes {
            each_stage!(mut lane, s => dropped[part_of(s).index()] += s.drop_shard(shard));
        }
        self.metrics.households.set(self.households() as i64);
        dropped[StatePart::Households.index()]
    }
}

/// The snapshot part of a stateful stage.
fn part_of<S: StatefulStage>(_: &S) -> StatePart {
    S::PART
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::alert::AlertMark;
    use crate::stages::window::LiveSignal;
    use crate::testkit::{city, default_spec};

    /// Every alert (as sent) and every reject (message and class) of `msgs`
    /// in batches of 1,000 (large enough for the lanes to run in parallel).
    async fn decisions(engine: &mut Engine, msgs: &[InputMessage]) -> Vec<String> {
        let mut out = Vec::new();
        for (n, batch) in msgs.chunks(1_000).enumerate() {
            let now = batch.last().and_then(|m| m.timestamp_ms).unwrap_or(0);
            let result = engine.process_batch(batch, now).await.expect("batch");
            for a in &result.alerts {
                out.push(serde_json::to_string(a).expect("alert json"));
            }
            for (i, r) in &result.rejects {
                out.push(format!("{n}/{i}: {}", r.class.as_str()));
            }
        }
        out
    }

    /// Every shard's state through snapshot files of format 2 (JSON), as
    /// sagak wrote them before format 3, read back as records.
    fn through_format_2(engine: &Engine, dir: &std::path::Path) -> Vec<StoredRecords> {
        type Shard = (
            Vec<(String, i32, Vec<LiveSignal>)>,
            Vec<(String, AlertMark)>,
        );
        let mut shards: BTreeMap<i32, Shard> = BTreeMap::new();
        for lane in &engine.lanes {
            for h in lane.windows.held() {
                let shard = shards.entry(h.shard()).or_default();
                shard.0.push((h.id().into(), h.shard(), h.signals()));
            }
            for (id, m) in lane.gate.held() {
                shards.entry(m.shard).or_default().1.push((id.into(), m));
            }
        }
        let newest = engine.watermark().feed_newest().to_vec();
        let store = crate::checkpoint::ShardedStore::open(dir, 2).expect("store");
        for (shard, (households, marks)) in &shards {
            let file = crate::checkpoint::format_2_file(
                *shard,
                Vec::new(),
                households,
                marks,
                newest.clone(),
            );
            let at = dir.join(format!("partition-{shard:05}"));
            std::fs::create_dir_all(&at).expect("shard dir");
            std::fs::write(at.join("checkpoint-000000000001.json"), file).expect("write");
        }
        let all = store.load_all().expect("load");
        all.into_iter().map(|s| s.state).collect()
    }

    /// Every shard's state through a snapshot on disk (format 3).
    fn through_disk(engine: &Engine, dir: &std::path::Path) -> Vec<StoredRecords> {
        let store = crate::checkpoint::ShardedStore::open(dir, 2).expect("store");
        let state = engine.encode_state();
        let shards: Vec<i32> = state.shards.keys().copied().collect();
        store
            .write_state("default", 0, &state, shards, &[])
            .expect("write");
        let all = store.load_all().expect("load");
        all.into_iter().map(|s| s.state).collect()
    }

    #[tokio::test]
    async fn lanes_decide_exactly_what_one_lane_decides() {
        let spec = default_spec();
        let msgs = city();
        let mut one = Engine::with_lanes(&spec, Metrics::new(&spec), 1);
        let expected = decisions(&mut one, &msgs).await;
        assert!(expected.iter().any(|d| d.contains("\"P1\"")));
        assert!(expected.iter().any(|d| d.ends_with(": late")));
        for lanes in [2, 3] {
            let mut engine = Engine::with_lanes(&spec, Metrics::new(&spec), lanes);
            let got = decisions(&mut engine, &msgs).await;
            assert_eq!(got.len(), expected.len(), "{lanes} lanes");
            assert!(got == expected, "{lanes} lanes decided differently");
            assert_eq!(engine.households(), one.households());
            // what a snapshot records as each feed's newest event time
            assert_eq!(engine.watermark(), one.watermark(), "{lanes} lanes");
        }
    }

    /// The dashboard's counts: messages received per feed, alerts per
    /// priority and dong, as many as the batches held and sent.
    #[tokio::test]
    async fn metrics_count_every_message_and_alert_by_label() {
        let spec = default_spec();
        let msgs = city();
        let metrics = Metrics::new(&spec);
        let mut engine = Engine::new(&spec, metrics.clone());
        let mut received: BTreeMap<String, u64> = BTreeMap::new();
        let mut alerts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for batch in msgs.chunks(1_000) {
            for m in batch {
                let feed = &spec.feeds[usize::from(m.feed.expect("a feed"))].name;
                *received.entry(feed.clone()).or_default() += 1;
            }
            let now = batch.last().and_then(|m| m.timestamp_ms).unwrap_or(0);
            let result = engine.process_batch(batch, now).await.expect("batch");
            for a in &result.alerts {
                let label = (a.priority.as_str().to_string(), a.dong_code.clone());
                *alerts.entry(label).or_default() += 1;
            }
        }
        assert_eq!(received.len(), 3);
        for (feed, n) in &received {
            assert_eq!(
                metrics.received.with_label_values(&[feed]).get(),
                *n,
                "{feed}"
            );
        }
        assert!(alerts.len() > 3, "several dongs and priorities: {alerts:?}");
        for ((priority, dong), n) in &alerts {
            let got = metrics.alerts.with_label_values(&[priority, dong]).get();
            assert_eq!(got, *n, "{priority} {dong}");
        }
    }

    #[tokio::test]
    async fn state_moves_between_engines_with_different_lanes() {
        let spec = default_spec();
        let msgs = city();
        let (first, second) = msgs.split_at(msgs.len() / 2);
        let mut whole = Engine::with_lanes(&spec, Metrics::new(&spec), 1);
        decisions(&mut whole, first).await;
        let expected = decisions(&mut whole, second).await;

        let mut before = Engine::with_lanes(&spec, Metrics::new(&spec), 2);
        decisions(&mut before, first).await;
        // format 3 (records) and format 2 (JSON, still read) restore alike
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        for (format, shards) in [
            ("records", through_disk(&before, dirs[0].path())),
            (
                "records, lanes in parallel",
                through_disk(&before, dirs[1].path()),
            ),
            ("json", through_format_2(&before, dirs[2].path())),
        ] {
            assert!(shards.len() > 1, "{format}: the city spans partitions");
            let mut after = Engine::with_lanes(&spec, Metrics::new(&spec), 3);
            for stored in &shards {
                if format.ends_with("parallel") {
                    // a city this small restores one lane after the other
                    after.restore_records(stored, true)
                } else {
                    after.restore_shard(stored)
                }
            }
            assert_eq!(after.households(), before.households(), "{format}");
            let got = decisions(&mut after, second).await;
            assert!(!expected.is_empty());
            assert!(
                got == expected,
                "{format}: a restored engine decided differently"
            );
        }
    }
}
