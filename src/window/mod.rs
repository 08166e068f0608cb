//! The window stage: keeps every household's live signals in event time.
//!
//! For each decoded micro-batch it
//! * rejects late signals (older than the feed's watermark minus the window),
//! * counts a re-sent event (same feed and `event_id`) once,
//! * stores the rest under the household, and
//! * hands the scoring stage one Arrow table with all live signals of the
//!   households the batch touched.
//!
//! Supersession, the window boundary and scoring are decided by the SQL in
//! `pipelines/`; this stage only decides what is still alive. On each
//! watermark tick, signals older than the low watermark minus the window are
//! evicted, so memory follows the number of households in crisis, not the
//! length of the stream.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMillisecondType, UInt16Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::decode::{Reject, RejectClass};
use crate::pipeline::PipelineSpec;
use crate::signal::{signal_table_schema, MeasureBuilders, Measures};

/// One live signal of a household, as kept between batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSignal {
    /// Event id, for counting a re-sent event once.
    pub event_id: Box<str>,
    /// Dong code as a number (10 digits always fit).
    pub dong: u64,
    /// Feed index.
    pub feed: u16,
    /// Subject within the feed.
    pub subject: Box<str>,
    /// Kind within the feed.
    pub kind: Option<Box<str>>,
    /// Months overdue.
    pub months_overdue: Option<i64>,
    /// Amount overdue in KRW.
    pub amount_krw: Option<i64>,
    /// Supply cut off or limited.
    pub disconnected: Option<bool>,
    /// Reported date (days since the epoch).
    pub occurred_on: Option<i32>,
    /// Event time in ms since the epoch.
    pub observed_at: i64,
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
    pub households: HashMap<Box<str>, Household>,
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
            state: WindowState {
                households: HashMap::new(),
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
        let mut touched: HashSet<&str> = HashSet::new();
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
            let signals = &mut self
                .state
                .households
                .entry(Box::from(hh))
                .or_insert_with(|| Household {
                    shard,
                    signals: Vec::new(),
                })
                .signals;
            let id = event_id.value(row);
            if signals
                .iter()
                .any(|s| usize::from(s.feed) == f && &*s.event_id == id)
            {
                outcome.duplicates += 1;
                continue;
            }
            signals.push(LiveSignal {
                event_id: id.into(),
                // The decoder checked: exactly 10 ASCII digits.
                dong: dong.value(row).parse().unwrap_or_default(),
                feed: f as u16,
                subject: subject.value(row).into(),
                kind: kind.is_valid(row).then(|| kind.value(row).into()),
                months_overdue: months.is_valid(row).then(|| months.value(row)),
                amount_krw: amount.is_valid(row).then(|| amount.value(row)),
                disconnected: disconnected.is_valid(row).then(|| disconnected.value(row)),
                occurred_on: occurred_on.is_valid(row).then(|| occurred_on.value(row)),
                observed_at: t,
            });
            if signals.len() > self.max_signals {
                if let Some(oldest) = (0..signals.len()).min_by_key(|&i| signals[i].observed_at) {
                    signals.swap_remove(oldest);
                    outcome.dropped_over_cap += 1;
                }
            }
            outcome.accepted += 1;
            let newest = &mut self.state.feed_newest[f];
            *newest = Some(newest.map_or(t, |n| n.max(t)));
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
        let mut event_id = StringBuilder::new();
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
                measures.append(&Measures {
                    kind: s.kind.as_deref(),
                    months_overdue: s.months_overdue,
                    amount_krw: s.amount_krw,
                    disconnected: s.disconnected,
                    occurred_on: s.occurred_on,
                });
                observed_at.append_value(s.observed_at);
                event_id.append_value(&s.event_id);
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
            Arc::new(event_id.finish()),
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
    pub fn restore_shard(&mut self, state: WindowState) {
        self.state.households.extend(state.households);
        for (f, newest) in state.feed_newest.into_iter().enumerate() {
            if let (Some(slot), Some(t)) = (self.state.feed_newest.get_mut(f), newest) {
                *slot = Some(slot.map_or(t, |n| n.max(t)));
            }
        }
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
