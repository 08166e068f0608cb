//! Wires the stages for one micro-batch: decode -> window -> score -> alert.
//!
//! The engine does no I/O. A driver (Kafka in [`crate::run`], or a test)
//! hands it the raw messages of a micro-batch and sends what comes back:
//! alerts to the dong-office topic and rejects to the dead-letter topic. The
//! stages do not know each other; only this file passes data between them.
//!
//! Households are spread over lanes (one per core) by a hash of their id.
//! Each lane has its own decode, window, score and alert stages and shares
//! nothing with the others, so a micro-batch's lanes run in parallel; a
//! household's signals always meet in the same lane. Lanes exchange only the
//! feeds' newest event times (the watermarks), between batches.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertGate, AlertState};
use crate::checkpoint::{EncodedState, ShardRecords, ShardState, StoredRecords};
use crate::decode::{Decoder, Reject, RejectClass};
use crate::hash::fnv1a64;
use crate::keyed::{prefetch_bytes, Record};
use crate::metrics::Metrics;
use crate::pipeline::PipelineSpec;
use crate::score::{Assessment, ScoreError, Scorer};
use crate::window::{HouseholdWindows, WindowState};

/// One raw input message.
#[derive(Debug, Clone)]
pub struct InputMessage {
    /// Feed index, or `None` when no feed reads the topic.
    pub feed: Option<u16>,
    /// Source topic (for the dead-letter headers).
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Option<Vec<u8>>,
    /// Broker timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
}

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

/// Everything the engine needs to continue after a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineState {
    /// Window stage state.
    pub windows: WindowState,
    /// Alert stage state.
    pub alerts: AlertState,
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
    /// Whether every household at a priority has an alert mark, so the
    /// daily lists need score only the marked ones. True from an empty
    /// state; false after restoring marks decided by another scoring, until
    /// a full re-scoring has marked what the new one finds.
    marks_cover_priorities: bool,
}

/// The stages for the households of one lane.
struct Lane {
    decoder: Decoder,
    windows: HouseholdWindows,
    scorer: Scorer,
    gate: AlertGate,
    /// Batch indices of the messages routed to this lane (reused).
    msgs: Vec<u32>,
}

/// What one lane did with its part of a micro-batch.
#[derive(Default)]
struct LaneOutcome {
    alerts: Vec<Alert>,
    rejects: Vec<(usize, Reject)>,
    accepted: usize,
    duplicates: usize,
    suppressed: usize,
    dropped_over_cap: usize,
}

impl Lane {
    fn new(spec: &PipelineSpec) -> Self {
        Lane {
            decoder: Decoder::new(spec),
            windows: HouseholdWindows::new(spec),
            scorer: Scorer::new(spec),
            gate: AlertGate::new(spec),
            msgs: Vec::new(),
        }
    }

    /// decode -> window -> score -> alert for this lane's messages.
    async fn process(
        &mut self,
        msgs: &[InputMessage],
        shards: &[i32],
        now_ms: i64,
    ) -> Result<LaneOutcome, ScoreError> {
        let mut out = LaneOutcome::default();
        for (k, &i) in self.msgs.iter().enumerate() {
            // Payloads lie wherever the consumer put them, each a cache miss
            // that parsing would otherwise wait on; ask for them early.
            if let Some(ahead) = self
                .msgs
                .get(k + PAYLOAD_LOOKAHEAD)
                .and_then(|&j| msgs.get(j as usize))
                .and_then(|m| m.payload.as_deref())
            {
                prefetch_bytes(ahead);
            }
            let m = &msgs[i as usize];
            let Some(feed) = m.feed else { continue };
            if let Err(reject) =
                self.decoder
                    .decode(i, feed, m.key.as_deref(), m.payload.as_deref(), now_ms)
            {
                out.rejects.push((i as usize, reject));
            }
        }
        let decoded = self.decoder.finish();
        let window = self.windows.process_batch(&decoded, shards);
        out.accepted = window.accepted;
        out.duplicates = window.duplicates;
        out.dropped_over_cap = window.dropped_over_cap;
        out.rejects
            .extend(window.late.into_iter().map(|(i, r)| (i as usize, r)));
        let scored = self.scorer.score(window.table).await?;
        let candidates: Vec<_> = scored.candidates().collect();
        let windows = &self.windows;
        let sent = self
            .gate
            .decide(&candidates, |hh| windows.shard_of(hh).unwrap_or_default());
        // reasons are rendered only for the alerts sent: the cooldown holds
        // back about a third of the assessments
        for (i, send) in sent.into_iter().enumerate() {
            if !send {
                out.suppressed += 1;
            } else if let Some(a) = scored.assessment(i) {
                out.alerts.push(self.gate.render(a, now_ms));
            }
        }
        Ok(out)
    }

    /// Scores the given households of this lane.
    async fn assess(&self, households: &[&str]) -> Result<Vec<Assessment>, ScoreError> {
        let table = self.windows.table_of(households.iter().copied());
        self.scorer.process_batch(table).await
    }
}

/// Bytes of records in one part of a snapshot copy.
const SNAPSHOT_PART: usize = 4 << 20;

/// How many messages ahead a lane asks the memory for a payload.
const PAYLOAD_LOOKAHEAD: usize = 2;

/// Below this many messages a batch's lanes run one after the other: a
/// thread start costs more than the work it would share.
const PARALLEL_FROM: usize = 256;

/// The lane of a household among `lanes`, from its id.
fn lane_index(household_id: &[u8], lanes: usize) -> usize {
    (fnv1a64(&[household_id]) % lanes as u64) as usize
}

/// Below this many households a pass over the whole state (eviction,
/// restore) runs the lanes one after the other.
const PARALLEL_STATE: usize = 100_000;

/// Runs `job` on each of `lanes` and returns the results in lane order: on
/// scoped threads (the first on the calling thread) when `parallel`,
/// otherwise one after the other; a panic on a lane is raised here. The
/// synchronous twin of [`on_lanes`], for passes over the whole state (copy,
/// eviction, restore) and for the daily lists' writers.
pub(crate) fn each_lane<L: Send, T: Send>(
    lanes: impl Iterator<Item = L>,
    parallel: bool,
    job: impl Fn(L) -> T + Sync,
) -> Vec<T> {
    if !parallel {
        return lanes.map(job).collect();
    }
    let job = &job;
    std::thread::scope(|scope| {
        let mut lanes = lanes;
        let first = lanes.next();
        let others: Vec<_> = lanes.map(|lane| scope.spawn(move || job(lane))).collect();
        let mut out: Vec<T> = first.map(job).into_iter().collect();
        for thread in others {
            match thread.join() {
                Ok(v) => out.push(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Runs one job per lane and returns their results in lane order: on
/// scoped threads (the first on the calling thread) when `parallel`,
/// otherwise one after the other.
async fn on_lanes<'a, T: Send + 'a>(jobs: Vec<BoxFuture<'a, T>>, parallel: bool) -> Vec<T> {
    if !parallel || jobs.len() < 2 {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(job.await);
        }
        return out;
    }
    // The jobs are CPU work on data the lanes own; a lane's query runs one
    // partition and spawns nothing, so each thread drives its job itself.
    // `unconstrained`: tokio's cooperative budget is only refilled by its own
    // scheduler, so under this executor an exhausted budget would spin.
    let runtime = tokio::runtime::Handle::try_current().ok();
    let drive = |job| futures::executor::block_on(tokio::task::unconstrained(job));
    std::thread::scope(|scope| {
        let mut jobs = jobs.into_iter();
        let first = jobs.next();
        let others: Vec<_> = jobs
            .map(|job| {
                let runtime = runtime.clone();
                scope.spawn(move || {
                    let _entered = runtime.as_ref().map(|r| r.enter());
                    drive(job)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(others.len() + 1);
        out.extend(first.map(drive));
        for thread in others {
            match thread.join() {
                Ok(v) => out.push(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

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
            scoring: fnv1a64(&[spec.score_sql.as_bytes()]),
            marks_cover_priorities: true,
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
            if let Some(wm) = self.lanes[0].windows.watermark(f) {
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
        let mut newest = self.lanes[0].windows.feed_newest().to_vec();
        for lane in &self.lanes[1..] {
            for (slot, t) in newest.iter_mut().zip(lane.windows.feed_newest()) {
                *slot = (*slot).max(*t);
            }
        }
        for lane in &mut self.lanes {
            lane.windows.raise_newest(&newest);
        }
    }

    /// Evicts state the watermark has passed. Returns (signals, alert marks)
    /// evicted.
    pub fn on_watermark(&mut self) -> (usize, usize) {
        fn evict(lane: &mut Lane) -> (usize, usize) {
            let signals = lane.windows.on_watermark();
            (
                signals,
                lane.gate.on_watermark(lane.windows.low_watermark()),
            )
        }
        // a pass over a large state is worth a thread per lane (it is part
        // of the checkpoint's pause of the loop)
        let parallel = self.households() >= PARALLEL_STATE;
        let evicted = each_lane(self.lanes.iter_mut(), parallel, evict);
        self.metrics.households.set(self.households() as i64);
        evicted
            .into_iter()
            .fold((0, 0), |(s, m), (ls, lm)| (s + ls, m + lm))
    }

    /// Ids of every household in the state.
    pub fn household_ids(&self) -> impl Iterator<Item = &str> {
        self.lanes.iter().flat_map(|l| l.windows.household_ids())
    }

    /// Scores the given households (for the daily lists, which go through
    /// the state in chunks so the signal table of a whole country is never
    /// built at once). Each lane scores its own, in parallel.
    pub async fn assess(&self, households: &[&str]) -> Result<Vec<Assessment>, ScoreError> {
        let mut parts: Vec<Vec<&str>> = vec![Vec::new(); self.lanes.len()];
        for &h in households {
            parts[self.lane_of(h.as_bytes())].push(h);
        }
        let jobs = self
            .lanes
            .iter()
            .zip(&parts)
            .map(|(lane, part)| lane.assess(part).boxed())
            .collect();
        let mut out = Vec::with_capacity(households.len());
        for part in on_lanes(jobs, households.len() >= PARALLEL_FROM).await {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The households the daily lists must score, and whether they are only
    /// the marked ones (see [`crate::alert::AlertMark`]): a household whose
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
    pub fn index_priorities(&mut self, found: &[(String, crate::score::Priority, i64)]) {
        let lanes = self.lanes.len();
        for (id, priority, at) in found {
            let lane = &mut self.lanes[lane_index(id.as_bytes(), lanes)];
            let shard = lane.windows.shard_of(id).unwrap_or_default();
            lane.gate.index_priority(id, *priority, *at, shard);
        }
        self.marks_cover_priorities = true;
    }

    /// The last alert sent for a household.
    pub fn alert_mark(&self, household_id: &str) -> Option<crate::alert::AlertMark> {
        self.lanes[self.lane_of(household_id.as_bytes())]
            .gate
            .mark(household_id)
    }

    /// Number of households with live signals.
    pub fn households(&self) -> usize {
        self.lanes.iter().map(|l| l.windows.households()).sum()
    }

    /// Copies every shard's records for a snapshot, the lanes in parallel.
    /// This is all the run loop waits for: the copy is written to disk on a
    /// thread of its own ([`crate::checkpoint::BackgroundWrite`]).
    pub fn encode_state(&self) -> EncodedState {
        fn lane_records(lane: &Lane) -> BTreeMap<i32, ShardRecords> {
            let mut shards: BTreeMap<i32, ShardRecords> = BTreeMap::new();
            let mut part = |shard: i32, r: &Record, household: bool| {
                let s = shards.entry(shard).or_default();
                let (parts, count) = if household {
                    (&mut s.households, &mut s.household_count)
                } else {
                    (&mut s.marks, &mut s.mark_count)
                };
                let bytes = r.as_bytes();
                // Parts of a fixed size, never grown: a part that doubled
                // would be copied each time (or remapped), inside the pause.
                match parts.last_mut() {
                    Some(last) if last.capacity() - last.len() >= bytes.len() => {
                        last.extend_from_slice(bytes)
                    }
                    _ => {
                        let mut fresh = Vec::with_capacity(SNAPSHOT_PART.max(bytes.len()));
                        fresh.extend_from_slice(bytes);
                        parts.push(fresh);
                    }
                }
                *count += 1;
            };
            for (shard, r) in lane.windows.records() {
                part(shard, r, true);
            }
            for (shard, r) in lane.gate.records() {
                part(shard, r, false);
            }
            shards
        }
        let per_lane = each_lane(self.lanes.iter(), self.lanes.len() > 1, lane_records);
        let mut shards: BTreeMap<i32, ShardRecords> = BTreeMap::new();
        for lane in per_lane {
            for (shard, part) in lane {
                let s = shards.entry(shard).or_default();
                s.households.extend(part.households);
                s.household_count += part.household_count;
                s.marks.extend(part.marks);
                s.mark_count += part.mark_count;
            }
        }
        EncodedState {
            shards,
            dictionary: self.lanes[0].windows.dictionary(),
            feed_newest: self.feed_newest().to_vec(),
            scoring: self.marks_cover_priorities.then_some(self.scoring),
        }
    }

    /// Newest event time per feed, for snapshots (every lane holds the
    /// same between batches).
    pub fn feed_newest(&self) -> &[Option<i64>] {
        self.lanes[0].windows.feed_newest()
    }

    /// Adds one shard's state from its snapshot, each household to its lane.
    pub fn restore_shard(&mut self, state: ShardState) {
        match state {
            ShardState::Decoded(state) => self.restore_decoded(state),
            ShardState::Records(stored) => {
                let parallel = stored.household_count() >= PARALLEL_STATE;
                self.restore_records(&stored, parallel)
            }
        }
        self.metrics.households.set(self.households() as i64);
    }

    /// Restores records as a format-3 snapshot holds them, translated when
    /// it was written under another pipeline definition.
    fn restore_records(&mut self, stored: &StoredRecords, parallel: bool) {
        let translation = self.lanes[0].windows.translation(&stored.dictionary);
        if translation.is_some() {
            tracing::warn!("the state snapshot was written under another pipeline definition (feeds or their values changed); its households are translated as they are restored");
        }
        let same_scoring = translation.is_none() && stored.scoring == Some(self.scoring);
        if !same_scoring && stored.household_count() > 0 {
            // its marks say nothing of what this scoring puts at a priority
            tracing::info!("the state snapshot was scored by another pipeline definition: the next daily lists re-score every household");
            self.marks_cover_priorities = false;
        }
        let lanes = self.lanes.len();
        let t = translation.as_ref();
        // Each lane takes its own households from the whole list; room is
        // made first, so the tables do not grow (and rehash) as they fill.
        let restore = |(i, lane): (usize, &mut Lane)| -> (usize, usize) {
            lane.windows.reserve(stored.household_count() / lanes + 1);
            lane.gate.reserve(stored.mark_count() / lanes + 1);
            let mine = |(id, _): &(&str, &[u8])| lane_index(id.as_bytes(), lanes) == i;
            let mut dropped = 0;
            for (id, payload) in stored.households().filter(mine) {
                dropped += lane.windows.restore_record(Record::new(id, payload), t);
            }
            let mut bad_marks = 0;
            for (id, payload) in stored.marks().filter(mine) {
                bad_marks += usize::from(!lane.gate.restore_record(Record::new(id, payload)));
            }
            lane.windows.restore_newest(&stored.feed_newest, t);
            (dropped, bad_marks)
        };
        let (dropped, bad_marks) = each_lane(self.lanes.iter_mut().enumerate(), parallel, restore)
            .into_iter()
            .fold((0, 0), |(d, b), (ld, lb)| (d + ld, b + lb));
        if dropped > 0 {
            tracing::warn!(
                signals = dropped,
                "signals of feeds no longer in the pipeline were not restored"
            );
        }
        if bad_marks > 0 {
            tracing::error!(marks = bad_marks, "alert marks in the snapshot could not be read and were skipped; those households may be alerted once more");
        }
    }

    /// Restores households and marks as a format-2 (JSON) snapshot holds
    /// them.
    fn restore_decoded(&mut self, state: EngineState) {
        let EngineState { windows, alerts } = state;
        // a format-2 snapshot does not say which scoring decided its marks
        if !windows.households.is_empty() {
            self.marks_cover_priorities = false;
        }
        let mut parts: Vec<EngineState> = (0..self.lanes.len())
            .map(|_| EngineState {
                windows: WindowState {
                    households: Default::default(),
                    feed_newest: windows.feed_newest.clone(),
                },
                alerts: AlertState::default(),
            })
            .collect();
        for (id, h) in windows.households {
            let lane = self.lane_of(id.as_bytes());
            parts[lane].windows.households.insert(id, h);
        }
        for (id, m) in alerts.marks {
            let lane = self.lane_of(id.as_bytes());
            parts[lane].alerts.marks.insert(id, m);
        }
        for (lane, part) in self.lanes.iter_mut().zip(parts) {
            lane.windows.restore_shard(part.windows);
            lane.gate.restore_shard(part.alerts);
        }
    }

    /// Forgets one shard's state: its partition moved to another instance,
    /// which continues from the shard's snapshot. Returns the households
    /// dropped.
    pub fn drop_shard(&mut self, shard: i32) -> usize {
        let mut dropped = 0;
        for lane in &mut self.lanes {
            dropped += lane.windows.drop_shard(shard);
            lane.gate.drop_shard(shard);
        }
        self.metrics.households.set(self.households() as i64);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Every shard's state decoded, as a format-2 (JSON) snapshot held it.
    fn decoded(engine: &Engine) -> Vec<ShardState> {
        let mut shards: BTreeMap<i32, EngineState> = BTreeMap::new();
        for lane in &engine.lanes {
            for h in lane.windows.checkpoint() {
                let shard = shards.entry(h.shard()).or_default();
                shard.windows.feed_newest = engine.feed_newest().to_vec();
                shard
                    .windows
                    .households
                    .insert(h.id().into(), h.to_household());
            }
            for (id, m) in lane.gate.checkpoint() {
                shards
                    .entry(m.shard)
                    .or_default()
                    .alerts
                    .marks
                    .insert(id.into(), m);
            }
        }
        shards.into_values().map(ShardState::Decoded).collect()
    }

    /// Every shard's state through a snapshot on disk (format 3).
    fn through_disk(engine: &Engine, dir: &std::path::Path) -> Vec<ShardState> {
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
            assert_eq!(engine.feed_newest(), one.feed_newest(), "{lanes} lanes");
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
        let dir = tempfile::tempdir().expect("tempdir");
        // format 3 (records) and format 2 (JSON, still read) restore alike
        for (format, shards) in [
            ("records", through_disk(&before, dir.path())),
            (
                "records, lanes in parallel",
                through_disk(&before, dir.path()),
            ),
            ("json", decoded(&before)),
        ] {
            assert!(shards.len() > 1, "{format}: the city spans partitions");
            let mut after = Engine::with_lanes(&spec, Metrics::new(&spec), 3);
            for shard in shards {
                match shard {
                    // a city this small restores one lane after the other
                    ShardState::Records(stored) if format.ends_with("parallel") => {
                        after.restore_records(&stored, true)
                    }
                    shard => after.restore_shard(shard),
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
