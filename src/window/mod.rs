//! The window stage: keeps every household's live signals in event time.
//!
//! For each decoded micro-batch it
//! * rejects late signals (older than the feed's watermark minus the window),
//! * counts a re-sent event (same feed and `event_id`) once,
//! * applies supersession: of one household's signals with the same feed and
//!   subject (one utility, the insurance premium, one person's job) only the
//!   newest by event time stays live,
//! * stores the rest under the household, and
//! * hands the scoring stage one Arrow table with all live signals of the
//!   households the batch touched.
//!
//! The window boundary and scoring are decided by the SQL in `pipelines/`;
//! this stage only decides what is still alive.
//!
//! Memory: a signal is 80 bytes with no allocation of its own in the common
//! case: the event id is kept as a 64-bit hash, absent measures as
//! sentinels, and subject and kind values that the pipeline enumerates share
//! one allocation each.
//!
//! On each watermark tick, signals older than the low watermark minus the
//! window are evicted, so memory follows the number of households in
//! crisis, not the length of the stream.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMillisecondType, UInt16Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::decode::{Reject, RejectClass};
use crate::hash::{fnv1a64, FastState, HouseholdMap};
use crate::pipeline::FieldType;
use crate::pipeline::PipelineSpec;
use crate::signal::{signal_table_schema, MeasureBuilders, Measures};

/// One live signal of a household, as kept between batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSignal {
    /// Event time in ms since the epoch.
    pub observed_at: i64,
    /// 64-bit FNV-1a hash of the event id, for counting a re-sent event
    /// once (two ids of one household and feed colliding is a 1-in-2^64
    /// event per pair).
    pub event_key: u64,
    /// Dong code as a number (10 digits always fit).
    pub dong: u64,
    /// Amount overdue in KRW, or [`NONE_I64`].
    #[serde(with = "absent::i64")]
    pub amount_krw: i64,
    /// Months overdue, or [`NONE_I64`].
    #[serde(with = "absent::i64")]
    pub months_overdue: i64,
    /// Subject within the feed.
    #[serde(with = "shared_text")]
    pub subject: Arc<str>,
    /// Kind within the feed.
    #[serde(with = "shared_text::option")]
    pub kind: Option<Arc<str>>,
    /// Reported date (days since the epoch), or [`NONE_I32`].
    #[serde(with = "absent::i32")]
    pub occurred_on: i32,
    /// Feed index.
    pub feed: u16,
    /// Supply cut off or limited: 0 no, 1 yes, [`NONE_U8`] not reported.
    #[serde(with = "absent::u8")]
    pub disconnected: u8,
}

/// Snapshot encoding of shared strings: plain JSON strings (sharing is
/// restored on load by [`HouseholdWindows::restore_shard`]).
mod shared_text {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(text: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
            match text {
                Some(t) => s.serialize_some(&**t),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
            Option::<String>::deserialize(d).map(|t| t.map(Arc::from))
        }
    }
}

/// Snapshot encoding of sentinel-coded measures: `null` when absent, so a
/// snapshot stays small and readable.
mod absent {
    macro_rules! sentinel {
        ($name:ident, $ty:ty, $none:expr) => {
            pub mod $name {
                use serde::{Deserialize, Deserializer, Serialize, Serializer};

                pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                    (*v != $none).then_some(*v).serialize(s)
                }

                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                    Option::<$ty>::deserialize(d).map(|v| v.unwrap_or($none))
                }
            }
        };
    }
    sentinel!(i64, i64, crate::window::NONE_I64);
    sentinel!(i32, i32, crate::window::NONE_I32);
    sentinel!(u8, u8, crate::window::NONE_U8);
}

/// Sentinel for an absent 64-bit measure.
pub const NONE_I64: i64 = i64::MIN;
/// Sentinel for an absent date.
pub const NONE_I32: i32 = i32::MIN;
/// Sentinel for an absent flag.
pub const NONE_U8: u8 = u8::MAX;

/// Moves a feed's newest event time forward to `t` (never back).
fn raise(newest: &mut Option<i64>, t: i64) {
    *newest = Some(newest.map_or(t, |n| n.max(t)));
}

fn some_i64(v: i64) -> Option<i64> {
    (v != NONE_I64).then_some(v)
}

impl LiveSignal {
    /// The optional measures, as the signal table holds them.
    pub fn measures(&self) -> Measures<'_> {
        Measures {
            kind: self.kind.as_deref(),
            months_overdue: some_i64(self.months_overdue),
            amount_krw: some_i64(self.amount_krw),
            disconnected: (self.disconnected != NONE_U8).then_some(self.disconnected == 1),
            occurred_on: (self.occurred_on != NONE_I32).then_some(self.occurred_on),
        }
    }

    /// True when this signal is newer than `other` on the same subject
    /// (event time, then event key, so every replay decides the same).
    fn supersedes(&self, other: &LiveSignal) -> bool {
        (self.observed_at, self.event_key) > (other.observed_at, other.event_key)
    }
}

/// Shared copies of the subject and kind values a pipeline enumerates (enum
/// fields and constant subjects), so signals do not each allocate them.
/// Free-text values (person ids) get their own allocation.
#[derive(Debug, Default)]
struct Symbols(HashMap<Box<str>, Arc<str>, FastState>);

impl Symbols {
    fn of(spec: &PipelineSpec) -> Self {
        let mut map = HashMap::default();
        for feed in &spec.feeds {
            let values = feed
                .fields
                .values()
                .filter(|f| f.ty == FieldType::Enum)
                .flat_map(|f| f.values.iter())
                .chain(feed.subject.iter());
            for v in values {
                map.insert(Box::from(v.as_str()), Arc::from(v.as_str()));
            }
        }
        Symbols(map)
    }

    fn get(&self, value: &str) -> Arc<str> {
        self.0
            .get(value)
            .cloned()
            .unwrap_or_else(|| Arc::from(value))
    }

    /// Makes a restored signal share the enumerated values again.
    fn share(&self, signal: &mut LiveSignal) {
        if let Some(shared) = self.0.get(&*signal.subject) {
            signal.subject = Arc::clone(shared);
        }
        if let Some(shared) = signal.kind.as_deref().and_then(|k| self.0.get(k)) {
            signal.kind = Some(Arc::clone(shared));
        }
    }
}

/// The live signals of one household and the state shard that owns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Household {
    /// State shard: the input partition the household's signals arrive on.
    /// Input topics are co-partitioned by household id, so every signal of a
    /// household arrives on the same partition number and its state can
    /// move with that partition when the consumer group rebalances.
    pub shard: i32,
    /// Live signals, in arrival order.
    pub signals: Vec<LiveSignal>,
}

/// Everything the window stage needs to continue after a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowState {
    /// Live signals per household id.
    pub households: HouseholdMap<Household>,
    /// Newest event time seen per feed (index = feed).
    pub feed_newest: Vec<Option<i64>>,
}

/// What one batch did to the window state.
#[derive(Debug)]
pub struct WindowOutcome {
    /// All live signals of the touched households (schema:
    /// [`signal_table_schema`]); empty when nothing new was accepted.
    pub table: RecordBatch,
    /// Signals stored.
    pub accepted: usize,
    /// Re-sent events counted once.
    pub duplicates: usize,
    /// Late signals, by message index, for the dead-letter topic.
    pub late: Vec<(u32, Reject)>,
    /// Oldest signals dropped because a household hit its bound.
    pub dropped_over_cap: usize,
}

/// The window stage.
pub struct HouseholdWindows {
    length_ms: i64,
    lateness_ms: i64,
    max_signals: usize,
    feed_names: Vec<Arc<str>>,
    feed_categories: Vec<Arc<str>>,
    symbols: Symbols,
    state: WindowState,
}

impl HouseholdWindows {
    /// An empty window stage for the feeds and window of `spec`.
    pub fn new(spec: &PipelineSpec) -> Self {
        HouseholdWindows {
            length_ms: spec.window.length_ms(),
            lateness_ms: spec.window.lateness_ms(),
            max_signals: spec.window.max_signals_per_household,
            feed_names: spec
                .feeds
                .iter()
                .map(|f| Arc::from(f.name.as_str()))
                .collect(),
            feed_categories: spec
                .feeds
                .iter()
                .map(|f| Arc::from(f.category.as_str()))
                .collect(),
            symbols: Symbols::of(spec),
            state: WindowState {
                households: HouseholdMap::default(),
                feed_newest: vec![None; spec.feeds.len()],
            },
        }
    }

    /// Watermark of feed `feed`: its newest event time minus the allowed
    /// lateness. `None` before the feed's first signal.
    pub fn watermark(&self, feed: usize) -> Option<i64> {
        self.state
            .feed_newest
            .get(feed)
            .copied()
            .flatten()
            .map(|t| t - self.lateness_ms)
    }

    /// Newest event time seen per feed (index = feed).
    pub fn feed_newest(&self) -> &[Option<i64>] {
        &self.state.feed_newest
    }

    /// Raises the newest event time of each feed to at least `newest`
    /// (window stages of one engine share their watermarks).
    pub fn raise_newest(&mut self, newest: &[Option<i64>]) {
        for (slot, t) in self.state.feed_newest.iter_mut().zip(newest) {
            if let Some(t) = *t {
                raise(slot, t);
            }
        }
    }

    /// The lowest watermark over the feeds that have sent anything.
    pub fn low_watermark(&self) -> Option<i64> {
        (0..self.feed_names.len())
            .filter_map(|f| self.watermark(f))
            .min()
    }

    /// Number of households with live signals.
    pub fn households(&self) -> usize {
        self.state.households.len()
    }

    /// Ids of every household with live signals.
    pub fn household_ids(&self) -> impl Iterator<Item = &str> {
        self.state.households.keys().map(|k| &**k)
    }

    /// The shard that owns a household's state, if it has live signals.
    pub fn shard_of(&self, household_id: &str) -> Option<i32> {
        self.state.households.get(household_id).map(|h| h.shard)
    }

    /// Applies one decoded micro-batch (schema: `decoded_schema`).
    /// `shards[i]` is the shard (input partition) of message `i` of the
    /// batch; a message without an entry belongs to shard 0, which is what
    /// embedded use without Kafka wants.
    pub fn process_batch(&mut self, decoded: &RecordBatch, shards: &[i32]) -> WindowOutcome {
        let msg_index = decoded.column(0).as_primitive::<UInt32Type>();
        let feed = decoded.column(1).as_primitive::<UInt16Type>();
        let household = decoded.column(2).as_string::<i32>();
        let dong = decoded.column(3).as_string::<i32>();
        let event_id = decoded.column(4).as_string::<i32>();
        let observed_at = decoded.column(6).as_primitive::<TimestampMillisecondType>();
        let subject = decoded.column(7).as_string::<i32>();
        let kind = decoded.column(8).as_string::<i32>();
        let months = decoded.column(9).as_primitive::<Int64Type>();
        let amount = decoded.column(10).as_primitive::<Int64Type>();
        let disconnected = decoded.column(11).as_boolean();
        let occurred_on = decoded.column(12).as_primitive::<Date32Type>();

        let mut outcome = WindowOutcome {
            table: RecordBatch::new_empty(signal_table_schema()),
            accepted: 0,
            duplicates: 0,
            late: Vec::new(),
            dropped_over_cap: 0,
        };
        let mut touched: HashSet<&str, FastState> = HashSet::default();
        for row in 0..decoded.num_rows() {
            let f = usize::from(feed.value(row));
            let t = observed_at.value(row);
            if let Some(wm) = self.watermark(f) {
                if t < wm - self.length_ms {
                    outcome.late.push((
                        msg_index.value(row),
                        Reject::new(
                            RejectClass::LateEvent,
                            format!(
                                "late: observed_at is more than {} days before the {} feed's watermark ({} days of lateness allowed)",
                                self.length_ms / crate::pipeline::DAY_MS,
                                self.feed_names[f],
                                self.lateness_ms / crate::pipeline::DAY_MS
                            ),
                        ),
                    ));
                    continue;
                }
            }
            let hh = household.value(row);
            let index = msg_index.value(row);
            let shard = shards.get(index as usize).copied().unwrap_or(0);
            // A household keeps the shard it was first seen on; a producer
            // that partitions by something else breaks co-partitioning,
            // which the README's input contract forbids.
            // Looked up before inserting: `entry` would allocate the key for
            // every signal, and most signals are for a household already held.
            if !self.state.households.contains_key(hh) {
                self.state.households.insert(
                    Box::from(hh),
                    Household {
                        shard,
                        signals: Vec::new(),
                    },
                );
            }
            let Some(household) = self.state.households.get_mut(hh) else {
                continue;
            };
            let signals = &mut household.signals;
            let key = fnv1a64(&[event_id.value(row).as_bytes()]);
            if signals
                .iter()
                .any(|s| usize::from(s.feed) == f && s.event_key == key)
            {
                outcome.duplicates += 1;
                continue;
            }
            let subject_text = subject.value(row);
            let same_subject = signals
                .iter()
                .position(|s| usize::from(s.feed) == f && &*s.subject == subject_text);
            let signal = LiveSignal {
                observed_at: t,
                event_key: key,
                // The decoder checked: exactly 10 ASCII digits.
                dong: dong.value(row).parse().unwrap_or_default(),
                amount_krw: if amount.is_valid(row) {
                    amount.value(row)
                } else {
                    NONE_I64
                },
                months_overdue: if months.is_valid(row) {
                    months.value(row)
                } else {
                    NONE_I64
                },
                subject: same_subject.map_or_else(
                    || self.symbols.get(subject_text),
                    |i| Arc::clone(&signals[i].subject),
                ),
                kind: kind
                    .is_valid(row)
                    .then(|| self.symbols.get(kind.value(row))),
                occurred_on: if occurred_on.is_valid(row) {
                    occurred_on.value(row)
                } else {
                    NONE_I32
                },
                feed: f as u16,
                disconnected: if disconnected.is_valid(row) {
                    u8::from(disconnected.value(row))
                } else {
                    NONE_U8
                },
            };
            outcome.accepted += 1;
            raise(&mut self.state.feed_newest[f], t);
            match same_subject {
                // an older notice arriving late changes nothing
                Some(i) if !signal.supersedes(&signals[i]) => continue,
                Some(i) => signals[i] = signal,
                None => {
                    // exact growth: most households hold one to three signals
                    signals.reserve_exact(1);
                    signals.push(signal);
                    if signals.len() > self.max_signals {
                        if let Some(oldest) =
                            (0..signals.len()).min_by_key(|&i| signals[i].observed_at)
                        {
                            signals.swap_remove(oldest);
                            outcome.dropped_over_cap += 1;
                        }
                    }
                }
            }
            touched.insert(hh);
        }
        if !touched.is_empty() {
            outcome.table = self.table_of(touched.into_iter());
        }
        outcome
    }

    /// The `signals` table (all live signals) of the given households.
    pub fn table_of<'a>(&self, households: impl Iterator<Item = &'a str>) -> RecordBatch {
        let mut household_id = StringBuilder::new();
        let mut dong = StringBuilder::new();
        let mut feed = StringBuilder::new();
        let mut category = StringBuilder::new();
        let mut subject = StringBuilder::new();
        let mut measures = MeasureBuilders::new();
        let mut observed_at = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut event_key = UInt64Builder::new();
        let mut dong_text = String::with_capacity(10);
        for hh in households {
            let Some(entry) = self.state.households.get(hh) else {
                continue;
            };
            for s in &entry.signals {
                household_id.append_value(hh);
                dong_text.clear();
                use std::fmt::Write;
                let _ = write!(dong_text, "{:010}", s.dong);
                dong.append_value(&dong_text);
                feed.append_value(&*self.feed_names[usize::from(s.feed)]);
                category.append_value(&*self.feed_categories[usize::from(s.feed)]);
                subject.append_value(&s.subject);
                measures.append(&s.measures());
                observed_at.append_value(s.observed_at);
                event_key.append_value(s.event_key);
            }
        }
        let [kind, months, amount, disconnected, occurred_on] = measures.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(household_id.finish()),
            Arc::new(dong.finish()),
            Arc::new(feed.finish()),
            Arc::new(category.finish()),
            Arc::new(subject.finish()),
            kind,
            months,
            amount,
            disconnected,
            occurred_on,
            Arc::new(observed_at.finish()),
            Arc::new(event_key.finish()),
        ];
        RecordBatch::try_new(signal_table_schema(), columns)
            .expect("signal table matches its schema")
    }

    /// Evicts signals older than the low watermark minus the window, and
    /// households left with none. Returns the number of signals evicted.
    pub fn on_watermark(&mut self) -> usize {
        let Some(low) = self.low_watermark() else {
            return 0;
        };
        let horizon = low - self.length_ms;
        let mut evicted = 0;
        self.state.households.retain(|_, h| {
            let before = h.signals.len();
            h.signals.retain(|s| s.observed_at >= horizon);
            evicted += before - h.signals.len();
            !h.signals.is_empty()
        });
        evicted
    }

    /// Adds the state of one shard (from its snapshot) to what is held.
    pub fn restore_shard(&mut self, mut state: WindowState) {
        for h in state.households.values_mut() {
            for signal in &mut h.signals {
                self.symbols.share(signal);
            }
            h.signals.shrink_to_fit();
        }
        self.state.households.extend(state.households);
        self.raise_newest(&state.feed_newest);
    }

    /// Forgets the households of `shard`, whose partition moved to another
    /// instance. Returns how many were dropped.
    pub fn drop_shard(&mut self, shard: i32) -> usize {
        let before = self.state.households.len();
        self.state.households.retain(|_, h| h.shard != shard);
        before - self.state.households.len()
    }

    /// The state to snapshot.
    pub fn checkpoint(&self) -> &WindowState {
        &self.state
    }
}

#[cfg(test)]
mod tests;
