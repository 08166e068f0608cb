//! The stages of the data path, decode -> window -> score -> alert, and the
//! contract their state follows.
//!
//! Each stage is a plain struct with an inherent `process_batch` (their
//! inputs differ, and scoring is async). The stages that keep state between
//! batches (the window and the alert gate) also implement
//! [`StatefulStage`]: the lifecycle the engine drives every one of them
//! through, the same way (watermarks, snapshot records, restore, shard
//! hand-over), with static dispatch so none of it costs a virtual call.
//! A stage does no I/O and knows no other stage; the engine passes data
//! between them.

pub mod alert;
pub mod decode;
pub mod score;
pub mod signal;
pub mod window;

use crate::base::keyed::Record;

/// The section of a snapshot that holds one stateful stage's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatePart {
    /// The window stage: one record per household with live signals.
    Households,
    /// The alert gate: one mark per household at a priority.
    Marks,
}

impl StatePart {
    /// Every part, in the order a snapshot stores them.
    pub const ALL: [StatePart; 2] = [StatePart::Households, StatePart::Marks];

    /// Position of the part in [`StatePart::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Event time as the stages see it between batches: the newest event time
/// seen on each feed, and the allowed lateness that turns it into a
/// watermark. The engine gives every lane the same one after each batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    feed_newest: Vec<Option<i64>>,
    lateness_ms: i64,
    /// No signal observed at or after this time may be evicted: the next
    /// daily list counts it.
    held_from: Option<i64>,
}

impl Watermark {
    /// No event time yet on any of `feeds` feeds.
    pub fn new(feeds: usize, lateness_ms: i64) -> Self {
        Watermark {
            feed_newest: vec![None; feeds],
            lateness_ms,
            held_from: None,
        }
    }

    /// Newest event time seen per feed (index = feed).
    pub fn feed_newest(&self) -> &[Option<i64>] {
        &self.feed_newest
    }

    /// Watermark of `feed`: its newest event time minus the allowed
    /// lateness; `None` before the feed's first signal.
    pub fn of_feed(&self, feed: usize) -> Option<i64> {
        self.feed_newest
            .get(feed)
            .copied()
            .flatten()
            .map(|t| t - self.lateness_ms)
    }

    /// The lowest watermark over the feeds that have sent anything: what
    /// eviction may rely on.
    pub fn low(&self) -> Option<i64> {
        (0..self.feed_newest.len())
            .filter_map(|f| self.of_feed(f))
            .min()
    }

    /// Holds every signal observed at or after `from` (and what it needs)
    /// from eviction; `None` holds nothing beyond the watermark.
    pub fn hold_from(&mut self, from: Option<i64>) {
        self.held_from = from;
    }

    /// Before this event time, state that needs only event time `span`
    /// back from a signal may go: the low watermark minus `span`, and never
    /// past what the next daily list counts (see [`Watermark::hold_from`]).
    /// `None` while no feed has sent anything.
    pub fn horizon(&self, span_ms: i64, window_ms: i64) -> Option<i64> {
        let by_time = self.low()? - span_ms;
        // the list counts signals from its hold on; what they need goes
        // back `span - window` further
        Some(match self.held_from {
            Some(from) => by_time.min(from - (span_ms - window_ms)),
            None => by_time,
        })
    }

    /// Moves `feed`'s newest event time forward to `t` (never back).
    pub fn raise(&mut self, feed: usize, t: i64) {
        if let Some(slot) = self.feed_newest.get_mut(feed) {
            *slot = Some(slot.map_or(t, |n| n.max(t)));
        }
    }

    /// Raises each feed to at least the newest time in `newest` (index =
    /// feed), as another lane or a snapshot saw it.
    pub fn raise_all(&mut self, newest: &[Option<i64>]) {
        for (feed, t) in newest.iter().enumerate() {
            if let Some(t) = *t {
                self.raise(feed, t);
            }
        }
    }
}

/// What a restore needs to read records written elsewhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Restore<'a> {
    /// How household records written under another pipeline definition
    /// read here; `None` when they read as they are.
    pub translation: Option<&'a window::Translation>,
}

/// What restoring records did, beyond holding them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Signals not restored because their feed is no longer in the pipeline.
    pub dropped_signals: usize,
    /// Records that could not be read and were skipped.
    pub unreadable: usize,
}

impl std::ops::AddAssign for Restored {
    fn add_assign(&mut self, other: Restored) {
        self.dropped_signals += other.dropped_signals;
        self.unreadable += other.unreadable;
    }
}

/// The state lifecycle every stateful stage follows. The engine calls it
/// for each such stage in turn; `process_batch` stays with each stage.
pub trait StatefulStage {
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

    /// True when nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
