//! The stages of the data path, decode -> window -> score -> alert, and the
//! contract their state follows.
//!
//! Beside them, the case stage ([`case`]) keeps what the dong offices did
//! about each household: the alert gate asks it before an alert goes, and
//! it decides escalations and every view's open work.
//!
//! Each stage is a plain struct with an inherent `process_batch` (their
//! inputs differ, and scoring is async). The three that keep state between
//! batches (the window, the alert gate and the case book) also implement
//! [`StatefulStage`]: the lifecycle the engine drives every one of them
//! through, the same way (watermarks, snapshot records, restore, shard
//! hand-over), with static dispatch so none of it costs a virtual call.
//! A stage does no I/O. It uses the types of the stages before it (the
//! score stage reads [`signal`]s, the case stage writes [`alert`]s'
//! statuses) but never calls another stage: the engine passes data between
//! them.

pub mod alert;
pub mod case;
pub mod decode;
pub mod score;
pub mod signal;
pub mod window;

use crate::base::keyed::Record;
use crate::base::time::EventTime;

/// The section of a snapshot that holds one stateful stage's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatePart {
    /// The window stage: one record per household with live signals.
    Households,
    /// The alert gate: one mark per household at a priority.
    Marks,
    /// The case stage: one record per household alerted or with an outcome.
    Cases,
}

impl StatePart {
    /// Every part, in the order a snapshot stores them.
    pub(crate) const ALL: [StatePart; 3] =
        [StatePart::Households, StatePart::Marks, StatePart::Cases];

    /// Position of the part in [`StatePart::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Event time as the stages see it between batches: the newest event time
/// seen on each feed of each input partition, and the allowed lateness that
/// turns it into a watermark. The engine gives every lane the same one
/// after each batch.
///
/// Time is kept per partition (as Kafka Streams keeps stream time per task,
/// and Flink's Kafka source watermarks per partition): a consumer that reads
/// one partition ahead of another during a catch-up must not make the
/// signals of the lagging partition look late.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    /// Newest event time per partition, then per feed.
    newest: Vec<Vec<Option<EventTime>>>,
    feeds: usize,
    lateness_ms: i64,
    /// No signal observed at or after this time may be evicted: the next
    /// daily list counts it.
    held_from: Option<EventTime>,
}

impl Watermark {
    /// No event time yet on any of `feeds` feeds.
    pub(crate) fn new(feeds: usize, lateness_ms: i64) -> Self {
        Watermark {
            newest: Vec::new(),
            feeds,
            lateness_ms,
            held_from: None,
        }
    }

    /// The allowed lateness.
    pub(crate) fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }

    fn on(&self, partition: i32) -> &[Option<EventTime>] {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.newest.get(p))
            .map_or(&[], Vec::as_slice)
    }

    /// Newest event time seen per feed (index = feed) on `partition`.
    pub(crate) fn newest_on(&self, partition: i32) -> Vec<Option<EventTime>> {
        let mut out = self.on(partition).to_vec();
        out.resize(self.feeds, None);
        out
    }

    /// Partitions that have seen a signal, in order.
    pub(crate) fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.newest
            .iter()
            .enumerate()
            .filter(|(_, feeds)| feeds.iter().any(Option::is_some))
            .map(|(p, _)| p as i32)
    }

    /// Watermark of `feed` on `partition`: its newest event time there minus
    /// the allowed lateness; `None` before the first signal.
    pub(crate) fn of(&self, feed: usize, partition: i32) -> Option<EventTime> {
        self.on(partition)
            .get(feed)
            .copied()
            .flatten()
            .map(|t| t.minus(self.lateness_ms))
    }

    /// The lowest watermark on `partition` over the feeds that have sent
    /// anything there: what eviction of its households may rely on.
    pub(crate) fn low(&self, partition: i32) -> Option<EventTime> {
        (0..self.feeds).filter_map(|f| self.of(f, partition)).min()
    }

    /// The newest event time on `partition` over its feeds.
    pub(crate) fn newest(&self, partition: i32) -> Option<EventTime> {
        self.on(partition).iter().flatten().copied().max()
    }

    /// Moves `feed`'s newest event time on `partition` forward to `t`
    /// (never back).
    pub(crate) fn raise(&mut self, feed: usize, partition: i32, t: EventTime) {
        if feed >= self.feeds {
            return;
        }
        let p = usize::try_from(partition).unwrap_or(0);
        if self.newest.len() <= p {
            self.newest.resize_with(p + 1, Vec::new);
        }
        let slots = &mut self.newest[p];
        if slots.len() < self.feeds {
            slots.resize(self.feeds, None);
        }
        let slot = &mut slots[feed];
        *slot = Some(slot.map_or(t, |n| n.max(t)));
    }

    /// Judges one signal in its partition's order: late when it is older
    /// than the watermark of its feed on its partition minus `window_ms`
    /// (false, and nothing changes); otherwise it raises that watermark
    /// (true). Decided in each partition's own order, the verdicts do not
    /// depend on how partitions interleave or where batches are cut.
    pub(crate) fn admit(
        &mut self,
        feed: usize,
        partition: i32,
        t: EventTime,
        window_ms: i64,
    ) -> bool {
        if self
            .of(feed, partition)
            .is_some_and(|wm| t < wm.minus(window_ms))
        {
            return false;
        }
        self.raise(feed, partition, t);
        true
    }

    /// Raises each feed on `partition` to at least `newest` (index = feed),
    /// as a snapshot of that partition saw it.
    pub(crate) fn raise_on(&mut self, partition: i32, newest: &[Option<EventTime>]) {
        for (feed, t) in newest.iter().enumerate() {
            if let Some(t) = *t {
                self.raise(feed, partition, t);
            }
        }
    }

    /// Holds every signal observed at or after `from` (and what it needs)
    /// from eviction; `None` holds nothing beyond the watermark.
    pub(crate) fn hold_from(&mut self, from: Option<EventTime>) {
        self.held_from = from;
    }

    /// See [`Watermark::hold_from`].
    pub(crate) fn held_from(&self) -> Option<EventTime> {
        self.held_from
    }
}

/// What a restore needs to read records written elsewhere.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Restore<'a> {
    /// How household records written under another pipeline definition
    /// read here; `None` when they read as they are.
    pub(crate) translation: Option<&'a window::Translation>,
}

/// What restoring records did, beyond holding them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restored {
    /// Signals not restored because their feed is no longer in the pipeline.
    pub(crate) dropped_signals: usize,
    /// Records that could not be read and were skipped.
    pub(crate) unreadable: usize,
}

impl std::ops::AddAssign for Restored {
    fn add_assign(&mut self, other: Restored) {
        self.dropped_signals += other.dropped_signals;
        self.unreadable += other.unreadable;
    }
}

/// The state lifecycle every stateful stage follows. The engine calls it
/// for each such stage in turn; `process_batch` stays with each stage.
pub(crate) trait StatefulStage {
    /// The snapshot section that holds this stage's records.
    const PART: StatePart;

    /// Forgets what `watermark` has passed: state no signal the window
    /// stage can still accept could need. Returns how many items went.
    fn on_watermark(&mut self, watermark: &Watermark) -> usize;

    /// Every held record with the shard it belongs to, for a snapshot that
    /// stores records exactly as they are held.
    fn records(&self) -> impl Iterator<Item = (i32, &Record)> + '_;

    /// Holds one record read back from a snapshot.
    fn restore_record(&mut self, record: Record, restore: &Restore<'_>) -> Restored;

    /// Forgets the state of `shard`, whose partition moved to another
    /// instance. Returns how many records went.
    fn drop_shard(&mut self, shard: i32) -> usize;

    /// Makes room for `more` records (a restore knows how many come).
    fn reserve(&mut self, more: usize);

    /// Records held.
    fn len(&self) -> usize;
}
