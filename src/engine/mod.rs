//! Wires the stages for one micro-batch: decode -> window -> score -> alert,
//! with outcomes from the dong offices decoded into the case stage, which
//! the alert gate asks before an alert goes and which decides escalations.
//!
//! The engine does no I/O. A driver ([`crate::drivers`], or a test) hands
//! it the raw messages of a micro-batch and sends what comes back through
//! its [`Outputs`]: alerts and case updates to the dong-office queue,
//! escalations to the city team and rejects to the dead letters. The stages do not know each other; only this module passes
//! data between them, and it drives their state through the one contract
//! they share ([`StatefulStage`]), stage after stage.
//!
//! Households are spread over lanes (one per core) by a hash of their id.
//! Each lane has its own decode, window, score and alert stages and shares
//! nothing with the others, so a micro-batch's lanes run in parallel; a
//! household's signals always meet in the same lane. Lanes exchange only the
//! feeds' newest event times (the watermarks), between batches.

mod cases;
mod explain;
mod lane;

use std::collections::BTreeMap;
use std::time::Instant;

use futures::FutureExt;

use crate::base::keyed::Record;
use crate::base::lanes::{each_lane, on_lanes};
use crate::base::message::InputMessage;
use crate::base::time::{ClockTime, EventTime};
use crate::checkpoint::{EncodedState, ShardRecords, Snapshot, StoredRecords};
use crate::definition::PipelineSpec;
use crate::stages::alert::Alert;
use crate::stages::case::escalation::Escalation;
use crate::stages::case::work::OpenCounts;
use crate::stages::case::{FirstContact, OpenWork};
use crate::stages::decode::{Reject, RejectClass};
use crate::stages::score::{Assessment, ScoreError};
use crate::stages::signal::decoded;
use crate::stages::{Restore, Restored, StatePart, StatefulStage, Watermark};
use lane::{each_stage, lane_index, Lane};

/// What one micro-batch produced.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Alerts to send, in decision order.
    pub alerts: Vec<Alert>,
    /// Rejected messages: index into the batch and why.
    pub(crate) rejects: Vec<(usize, Reject)>,
    /// Signals stored in the window state.
    pub(crate) accepted: usize,
    /// Re-sent events counted once.
    pub(crate) duplicates: usize,
    /// Assessments held back by the cooldown.
    pub suppressed: usize,
    /// Assessments held back by an outcome (or quiet while in case).
    pub(crate) held: usize,
    /// Escalations to the city team, in decision order.
    pub(crate) escalations: Vec<Escalation>,
    /// Outcomes recorded (re-sends not counted).
    pub(crate) outcomes: usize,
    /// Alerts answered by their first reach.
    pub(crate) first_contacts: Vec<FirstContact>,
    /// The outcomes recorded, as decoded: the web front keeps their ids,
    /// staff and notes beside the records (never the engine's state).
    pub(crate) recorded: Vec<crate::stages::case::outcome::Outcome>,
    /// Messages per feed, by feed index.
    pub(crate) received: Vec<u64>,
    /// Oldest signals dropped because a household hit its bound.
    pub(crate) dropped_over_cap: usize,
    /// Signals of households recorded deceased (never alerted).
    pub(crate) deceased: usize,
    /// Messages in the batch.
    pub(crate) messages: usize,
    /// Time the engine took over the batch.
    pub(crate) elapsed: std::time::Duration,
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
    feed_names: Vec<String>,
    /// Shard of each message of the batch in flight (reused).
    shards: Vec<i32>,
    /// Fingerprint of the scoring SQL, kept in snapshots so a restart can
    /// tell whether the alert marks were decided by the same scoring.
    scoring: u64,
    /// Length of the window (event time).
    window_ms: i64,
    /// Driver's clock at the last message per input partition, then feed
    /// (see [`Engine::advance_idle`]).
    last_seen: Vec<Vec<Option<ClockTime>>>,
    /// Driver's clock at the first batch.
    started: Option<ClockTime>,
    /// Event time per feed and input partition (see [`Watermark`]).
    watermark: Watermark,
    /// Whether each message of the batch in flight is late (reused).
    late: Vec<bool>,
    /// Feed and event time of each decoded message of the batch in flight,
    /// by index (reused).
    rows: Vec<Option<(u16, i64)>>,
    /// Whether every household at a priority has an alert mark, so the
    /// daily lists need score only the marked ones. True from an empty
    /// state; false after restoring marks decided by another scoring, until
    /// a full re-scoring has marked what the new one finds.
    marks_cover_priorities: bool,
}

/// Bytes of records in one part of a snapshot copy.
const SNAPSHOT_PART: usize = 4 << 20;

/// Below this many messages a batch's lanes run one after the other: waking
/// a worker costs more than the work it would share. From here up each lane
/// has its share of the batch, and its query's fixed cost alone (about
/// 120 us: `cargo bench --bench stages -- score_one_household`) outweighs
/// the wake-up.
const PARALLEL_FROM: usize = 16;

/// Below this many households a pass over the whole state (eviction,
/// restore) runs the lanes one after the other.
const PARALLEL_STATE: usize = 100_000;

impl Engine {
    /// An engine for `spec`, with one lane per core this process may use.
    pub fn new(spec: &PipelineSpec) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_lanes(spec, cores)
    }

    /// An engine with `lanes` lanes (at least one, at most 64).
    pub(crate) fn with_lanes(spec: &PipelineSpec, lanes: usize) -> Self {
        Engine {
            lanes: (0..lanes.clamp(1, 64)).map(|_| Lane::new(spec)).collect(),
            feed_names: spec.feeds.iter().map(|f| f.name.clone()).collect(),
            shards: Vec::new(),
            scoring: crate::base::hash::fnv1a64(&[spec.score_sql.as_bytes()]),
            marks_cover_priorities: true,
            window_ms: spec.window.length_ms(),
            last_seen: Vec::new(),
            started: None,
            watermark: Watermark::new(spec.feeds.len(), spec.window.lateness_ms()),
            late: Vec::new(),
            rows: Vec::new(),
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

    /// Processes one micro-batch at `now` on the driver's clock.
    pub async fn process_batch(
        &mut self,
        msgs: &[InputMessage],
        now: ClockTime,
    ) -> Result<BatchResult, ScoreError> {
        let started = Instant::now();
        self.started.get_or_insert(now);
        let now_ms = now.ms();
        let mut result = BatchResult {
            received: vec![0; self.feed_names.len()],
            messages: msgs.len(),
            ..BatchResult::default()
        };
        self.route(msgs, now, &mut result);
        self.shards.clear();
        self.shards.extend(msgs.iter().map(|m| m.partition));

        // decode, in parallel; then lateness, in each partition's order over
        // the whole batch; then the rest, in parallel again
        let parallel = msgs.len() >= PARALLEL_FROM;
        let decode = |lane: &mut Lane| lane.decode(msgs, now_ms);
        for rejects in each_lane(self.lanes.iter_mut(), parallel, decode) {
            result.rejects.extend(rejects);
        }
        self.judge_lateness(msgs);
        let shards = &self.shards;
        let late = &self.late;
        let jobs = self
            .lanes
            .iter_mut()
            .map(|lane| lane.process(shards, late, now_ms).boxed())
            .collect();
        for lane in on_lanes(jobs, parallel).await {
            let lane = lane?;
            result.alerts.extend(lane.alerts);
            result.rejects.extend(lane.rejects);
            result.escalations.extend(lane.escalations);
            result.accepted += lane.accepted;
            result.duplicates += lane.duplicates;
            result.suppressed += lane.suppressed;
            result.held += lane.held;
            result.outcomes += lane.outcomes.len();
            result.dropped_over_cap += lane.dropped_over_cap;
            result.recorded.extend(lane.outcomes);
            result.first_contacts.extend(lane.first_contacts);
            result.deceased += lane.deceased;
        }
        result
            .escalations
            .sort_by(|a, b| a.escalation_id.cmp(&b.escalation_id));
        result.rejects.sort_by_key(|(i, _)| *i);
        // One lane's alerts come in household order; so do all of them.
        result
            .alerts
            .sort_by(|a, b| a.household_id.cmp(&b.household_id));
        result.elapsed = started.elapsed();
        Ok(result)
    }

    /// Hands each message of the batch to its household's lane (an unknown
    /// topic is rejected here), counting what each feed sent and when.
    fn route(&mut self, msgs: &[InputMessage], now: ClockTime, result: &mut BatchResult) {
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
            if let Some(n) = result.received.get_mut(usize::from(feed)) {
                *n += 1;
            }
            let p = usize::try_from(m.partition).unwrap_or(0);
            if self.last_seen.len() <= p {
                self.last_seen.resize_with(p + 1, Vec::new);
            }
            let seen = &mut self.last_seen[p];
            if seen.len() <= usize::from(feed) {
                seen.resize(self.feed_names.len().max(usize::from(feed) + 1), None);
            }
            seen[usize::from(feed)] = Some(now);
            // A message without a key is rejected by the decoder of any lane.
            let lane = self.lane_of(m.key.as_deref().unwrap_or_default());
            self.lanes[lane].msgs.push(i as u32);
        }
    }

    /// Decides which messages of the batch are late: their decoded rows in
    /// batch order, each judged against (and then raising) the watermark of
    /// its feed on its own partition. Messages of one partition keep their
    /// order in a batch and across batches, so the verdicts depend neither
    /// on how partitions interleave nor on where batches are cut.
    fn judge_lateness(&mut self, msgs: &[InputMessage]) {
        self.late.clear();
        self.late.resize(msgs.len(), false);
        self.rows.clear();
        self.rows.resize(msgs.len(), None);
        for lane in &self.lanes {
            let Some(decoded) = lane.decoded() else {
                continue;
            };
            for (index, feed, t) in decoded::timed(decoded) {
                if let Some(slot) = self.rows.get_mut(index as usize) {
                    *slot = Some((feed, t));
                }
            }
        }
        for (i, row) in self.rows.iter().enumerate() {
            if let Some((feed, t)) = *row {
                let partition = msgs[i].partition;
                if !self.watermark.admit(
                    usize::from(feed),
                    partition,
                    EventTime::from_ms(t),
                    self.window_ms,
                ) {
                    self.late[i] = true;
                }
            }
        }
    }

    /// Event time: the newest signal seen per feed and input partition.
    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    /// Idleness: a feed that has sent nothing on a partition for `idle`
    /// on the driver's clock, while `at_end(feed, partition)` says the consumer has
    /// read everything there, stops holding back that partition's eviction.
    /// Its watermark rises to the lowest watermark of the other feeds on
    /// the partition, never above `now` minus the allowed lateness (and
    /// never falls). Other partitions are untouched, so no signal anywhere
    /// becomes late through another partition. Returns how many (feed,
    /// partition) pairs moved. The embedded drivers never call it.
    pub(crate) fn advance_idle(
        &mut self,
        now: ClockTime,
        idle: std::time::Duration,
        at_end: impl Fn(u16, i32) -> bool,
    ) -> usize {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let started = *self.started.get_or_insert(now);
        let watermark = &self.watermark;
        let lateness = watermark.lateness_ms();
        let mut raised = Vec::new();
        for p in watermark.partitions() {
            let seen = self.last_seen.get(p as usize);
            for f in 0..self.feed_names.len() {
                let last = seen
                    .and_then(|s| s.get(f))
                    .copied()
                    .flatten()
                    .unwrap_or(started);
                // a feed that never sent here holds nothing back already
                let Some(own) = watermark.of(f, p) else {
                    continue;
                };
                if now.since(last) < idle_ms || !at_end(f as u16, p) {
                    continue;
                }
                let others = (0..self.feed_names.len())
                    .filter(|&g| g != f)
                    .filter_map(|g| watermark.of(g, p))
                    .min();
                let cap = EventTime::of_clock(now).minus(lateness);
                let Some(target) = others.map(|o| o.min(cap)) else {
                    continue;
                };
                if own < target {
                    // a watermark is the newest time minus the lateness
                    raised.push((f, p, target.plus(lateness)));
                }
            }
        }
        for &(f, p, t) in &raised {
            self.watermark.raise(f, p, t);
        }
        raised.len()
    }

    /// Keeps what the daily list of the cut-off `next_cutoff` counts from
    /// eviction (every signal of its window, and the marks of their
    /// households), so that eviction never changes a list.
    pub(crate) fn hold_for_cutoff(&mut self, next_cutoff: Option<ClockTime>) {
        let window = self.window_ms;
        self.watermark
            .hold_from(next_cutoff.map(|c| EventTime::of_clock(c).minus(window)));
    }

    /// Evicts, in every stateful stage, the state the watermark has passed.
    /// Returns how many items each part evicted (signals of the window
    /// stage, marks of the alert gate), in [`StatePart::ALL`] order.
    pub fn on_watermark(&mut self) -> [usize; StatePart::ALL.len()] {
        // a pass over a large state is worth a thread per lane (it is part
        // of the checkpoint's pause of the loop)
        let parallel = self.households() >= PARALLEL_STATE;
        let watermark = &self.watermark;
        let evict = |lane: &mut Lane| {
            let mut evicted = [0; StatePart::ALL.len()];
            each_stage!(mut lane, s => evicted[part_of(s).index()] += s.on_watermark(watermark));
            evicted
        };
        let per_lane = each_lane(self.lanes.iter_mut(), parallel, evict);
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

    /// Scores the given households as of the event time `as_of`: exactly
    /// their signals within the window that ends there (for the daily
    /// lists, which go through the state in chunks so the signal table of a
    /// whole country is never built at once). Each lane scores its own, in
    /// parallel.
    pub async fn assess(
        &self,
        households: &[&str],
        as_of: EventTime,
    ) -> Result<Vec<Assessment>, ScoreError> {
        let mut parts: Vec<Vec<&str>> = vec![Vec::new(); self.lanes.len()];
        for &h in households {
            parts[self.lane_of(h.as_bytes())].push(h);
        }
        let jobs = self
            .lanes
            .iter()
            .zip(&parts)
            .map(|(lane, part)| lane.assess(part, Some(as_of.ms())).boxed())
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
    pub(crate) fn index_priorities(
        &mut self,
        found: &[(String, crate::stages::score::Priority, i64)],
    ) {
        let lanes = self.lanes.len();
        for (id, priority, at) in found {
            let lane = &mut self.lanes[lane_index(id.as_bytes(), lanes)];
            let shard = lane.windows.shard_of(id).unwrap_or_default();
            lane.gate.index_priority(id, *priority, *at, shard);
        }
        self.marks_cover_priorities = true;
    }

    /// Whether the alert marks cover every household at a priority (see
    /// [`Engine::list_candidates`]).
    pub(crate) fn marks_cover_priorities(&self) -> bool {
        self.marks_cover_priorities
    }

    /// The state shard (input partition) of a household with live signals.
    pub(crate) fn shard_of(&self, household_id: &str) -> Option<i32> {
        self.lanes[self.lane_of(household_id.as_bytes())]
            .windows
            .shard_of(household_id)
    }

    /// The last alert sent for a household.
    pub(crate) fn alert_mark(&self, household_id: &str) -> Option<crate::stages::alert::AlertMark> {
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
            partition_newest: self
                .watermark()
                .partitions()
                .map(|p| {
                    let newest = self.watermark().newest_on(p);
                    (p, newest.iter().map(|t| t.map(EventTime::ms)).collect())
                })
                .collect(),
            scoring: self.marks_cover_priorities.then_some(self.scoring),
        }
    }

    /// Adds one shard's state from its snapshot, each record to the stage
    /// and lane it belongs to (translated when the snapshot was written
    /// under another pipeline definition).
    pub fn restore_shard(&mut self, snapshot: &Snapshot) {
        let stored = &snapshot.state;
        let parallel = stored.count(StatePart::Households) >= PARALLEL_STATE;
        self.restore_records(snapshot.shard, stored, parallel);
    }

    fn restore_records(&mut self, shard: i32, stored: &StoredRecords, parallel: bool) {
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
            done
        };
        let mut done = Restored::default();
        for lane in each_lane(self.lanes.iter_mut().enumerate(), parallel, job) {
            done += lane;
        }
        let newest = self.lanes[0]
            .windows
            .translate_newest(&stored.feed_newest, restore.translation);
        let newest: Vec<Option<EventTime>> =
            newest.iter().map(|t| t.map(EventTime::from_ms)).collect();
        self.watermark.raise_on(shard, &newest);
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
    pub(crate) fn drop_shard(&mut self, shard: i32) -> usize {
        let mut dropped = [0; StatePart::ALL.len()];
        for lane in &mut self.lanes {
            each_stage!(mut lane, s => dropped[part_of(s).index()] += s.drop_shard(shard));
        }
        dropped[StatePart::Households.index()]
    }
}

/// The snapshot part of a stateful stage.
fn part_of<S: StatefulStage>(_: &S) -> StatePart {
    S::PART
}

#[cfg(test)]
mod tests;
