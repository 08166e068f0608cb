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
//! Memory: between batches a household is one [`crate::base::keyed::Record`]:
//! its id, then its signals as varints (event id as a 64-bit hash, absent
//! measures omitted, enumerated subject and kind values as small numbers),
//! about 25 bytes a signal. A batch decodes each household it touches once
//! and writes it back once.
//!
//! On each watermark tick, signals older than the low watermark minus the
//! window are evicted, so memory follows the number of households in
//! crisis, not the length of the stream.

mod record;
mod state;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMillisecondType, UInt16Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use crate::base::hash::fnv1a64;
use crate::base::keyed::{Record, Records};
use crate::definition::PipelineSpec;
use crate::stages::decode::{Reject, RejectClass};
use crate::stages::signal::{decoded, signal_table_schema, MeasureBuilders};
pub(crate) use record::{HeldHousehold, RecordWriter, Translation};
use record::{Slot, Symbols, Text, Texts};

use super::{Restore, Restored, StatePart, StatefulStage, Watermark};

/// One live signal of a household, readable (between batches the stage
/// keeps it encoded, in its `record` module): what tests look at and what
/// old snapshots are converted from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveSignal {
    /// Event time in ms since the epoch.
    pub(crate) observed_at: i64,
    /// 64-bit FNV-1a hash of the event id, for counting a re-sent event
    /// once (two ids of one household and feed colliding is a 1-in-2^64
    /// event per pair).
    pub(crate) event_key: u64,
    /// Dong code as a number (10 digits always fit).
    pub(crate) dong: u64,
    /// Amount overdue in KRW, or [`NONE_I64`].
    pub(crate) amount_krw: i64,
    /// Months overdue, or [`NONE_I64`].
    pub(crate) months_overdue: i64,
    /// Subject within the feed.
    pub(crate) subject: String,
    /// Kind within the feed.
    pub(crate) kind: Option<String>,
    /// Reported date (days since the epoch), or [`NONE_I32`].
    pub(crate) occurred_on: i32,
    /// Feed index.
    pub(crate) feed: u16,
    /// Supply cut off or limited: 0 no, 1 yes, [`NONE_U8`] not reported.
    pub(crate) disconnected: u8,
}

/// Sentinel for an absent 64-bit measure.
pub(crate) const NONE_I64: i64 = i64::MIN;
/// Sentinel for an absent date.
pub(crate) const NONE_I32: i32 = i32::MIN;
/// Sentinel for an absent flag.
pub(crate) const NONE_U8: u8 = u8::MAX;

/// What the numbers in a household record stand for: feeds by index and
/// enumerated values by symbol number, as the pipeline definition set them.
/// A snapshot of records carries it, so that a restore under a changed
/// pipeline (a feed added, removed or reordered) reads its records right.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDictionary {
    /// Feed names, by feed index.
    pub(crate) feeds: Vec<String>,
    /// Enumerated subject and kind values, by symbol number.
    pub(crate) symbols: Vec<String>,
}

/// What one batch did to the window state.
#[derive(Debug)]
pub struct WindowOutcome {
    /// All live signals of the touched households (schema:
    /// [`signal_table_schema`]); empty when nothing new was accepted.
    pub table: RecordBatch,
    /// Signals stored.
    pub(crate) accepted: usize,
    /// Re-sent events counted once.
    pub(crate) duplicates: usize,
    /// Late signals, by message index, for the dead-letter topic.
    pub(crate) late: Vec<(u32, Reject)>,
    /// Oldest signals dropped because a household hit its bound.
    pub(crate) dropped_over_cap: usize,
}

impl WindowOutcome {
    /// Nothing done yet: no signal, an empty table.
    fn empty() -> Self {
        WindowOutcome {
            table: RecordBatch::new_empty(signal_table_schema()),
            accepted: 0,
            duplicates: 0,
            late: Vec::new(),
            dropped_over_cap: 0,
        }
    }
}

/// The window stage.
pub struct HouseholdWindows {
    length_ms: i64,
    lateness_ms: i64,
    max_signals: usize,
    feed_names: Vec<Arc<str>>,
    feed_categories: Vec<Arc<str>>,
    symbols: Symbols,
    /// One record per household with live signals (see [`record`]).
    households: Records,
    /// Reused from batch to batch so the hot path does not allocate:
    /// the households a batch opened, their free text, and the encoder's
    /// output.
    open: Vec<Open>,
    scratch: String,
    encoded: Vec<u8>,
    /// The store hash of each row's household, then of each household the
    /// batch opened, in write-back order (reused).
    hashes: Vec<u64>,
}

/// A household a batch is working on, decoded.
#[derive(Debug, Default)]
struct Open {
    /// The id's hash in the store, computed once.
    hash: u64,
    shard: i32,
    signals: Vec<Slot>,
    /// True once the batch stored or replaced one of its signals.
    changed: bool,
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
            households: Records::default(),
            open: Vec::new(),
            scratch: String::new(),
            encoded: Vec::new(),
            hashes: Vec::new(),
        }
    }

    /// Ids of every household with live signals.
    pub(crate) fn household_ids(&self) -> impl Iterator<Item = &str> {
        self.households.iter().map(Record::id)
    }

    /// The shard that owns a household's state, if it has live signals.
    pub(crate) fn shard_of(&self, household_id: &str) -> Option<i32> {
        self.households
            .get(household_id)
            .and_then(|r| record::header(r.payload()))
            .map(|(shard, _)| shard)
    }

    /// Forgets a household's live signals (a household recorded deceased).
    /// Returns whether it had any.
    pub(crate) fn forget(&mut self, household_id: &str) -> bool {
        self.households.remove(household_id).is_some()
    }

    /// Applies one decoded micro-batch (schema: `decoded_schema`).
    /// `shards[i]` is the shard (input partition) of message `i` of the
    /// batch; a message without an entry belongs to shard 0, which is what
    /// embedded use without Kafka wants. `late[i]` is true when message `i`
    /// is late: the engine judges lateness over the whole batch in each
    /// partition's order ([`Watermark::admit`]), before the batch is split
    /// over lanes; a message without an entry is not late.
    pub fn process_batch(
        &mut self,
        decoded: &RecordBatch,
        shards: &[i32],
        late: &[bool],
    ) -> WindowOutcome {
        let c = Columns::of(decoded);
        let (msg_index, feed, household) = (c.msg_index, c.feed, c.household);
        let (event_id, observed_at, subject, kind) = (c.event_id, c.observed_at, c.subject, c.kind);

        let mut outcome = WindowOutcome::empty();
        self.scratch.clear();
        let mut texts = Texts {
            symbols: &self.symbols,
            scratch: &mut self.scratch,
        };
        // household id -> index into `self.open`, for the households this
        // batch works on; each is decoded once and encoded once per batch.
        // Keyed by the store's hash of the id, computed once per message.
        let mut opened: HashTable<(&str, usize)> = HashTable::with_capacity(decoded.num_rows());
        self.hashes.clear();
        let households = &self.households;
        self.hashes
            .extend((0..decoded.num_rows()).map(|row| households.hash(household.value(row))));
        for row in 0..decoded.num_rows() {
            self.households.prefetch_chunk(&self.hashes, row);
            let f = usize::from(feed.value(row));
            let t = observed_at.value(row);
            let index = msg_index.value(row);
            let partition = shards.get(index as usize).copied().unwrap_or(0);
            if late.get(index as usize).copied().unwrap_or(false) {
                let feed_name = &self.feed_names[f];
                let reject = late_reject(self.length_ms, self.lateness_ms, feed_name, partition);
                outcome.late.push((index, reject));
                continue;
            }
            let hh = household.value(row);
            let hash = self.hashes[row];
            let i = open_household(
                &mut opened,
                &mut self.open,
                &self.households,
                &mut texts,
                (hash, hh),
                partition,
            );
            let open = &mut self.open[i];
            let signals = &mut open.signals;
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
                .position(|s| usize::from(s.feed) == f && texts.get(s.subject) == subject_text);
            let subject_text = match same_subject {
                Some(i) => signals[i].subject,
                None => texts.text(subject_text),
            };
            let kind_text = kind.is_valid(row).then(|| texts.text(kind.value(row)));
            let signal = c.slot(row, t, key, subject_text, kind_text);
            outcome.accepted += 1;
            match same_subject {
                // an older notice arriving late changes nothing
                Some(i) if !signal.supersedes(&signals[i]) => continue,
                Some(i) => signals[i] = signal,
                None => {
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
            open.changed = true;
        }
        // the table's rows go in SIGNAL_TABLE_ORDER, which the scorer promises
        // DataFusion; the write-back's look-ahead takes any order, so it
        // follows the table's and each household is handled once, while hot
        let opened: Vec<(&str, usize)> = in_table_order(opened.into_iter().collect()).collect();
        // the records read above have left the nearer caches by now: one
        // pass for the write-back's look-ahead and the table's size
        let mut size = TableSize::default();
        self.hashes.clear();
        for &(hh, i) in &opened {
            let open = &self.open[i];
            self.hashes.push(open.hash);
            if open.changed {
                size.add(hh, &open.signals, &texts);
            }
        }
        let mut table = SignalTable::new(&self.feed_names, &self.feed_categories, &size);
        for (k, &(hh, i)) in opened.iter().enumerate() {
            self.households.prefetch_chunk(&self.hashes, k);
            let open = &mut self.open[i];
            if !open.changed {
                continue;
            }
            // sorts the signals first, so the record keeps them in order
            table.append(hh, &mut open.signals, &texts, None);
            record::encode(open.shard, &open.signals, &texts, &mut self.encoded);
            self.households.put_payload(open.hash, hh, &self.encoded);
        }
        if table.rows > 0 {
            outcome.table = table.finish();
        }
        outcome
    }

    /// The `signals` table of the given households: all their live signals,
    /// or with `as_of` a cut-off time, exactly those observed within the
    /// window that ends at it (`as_of - window <= observed_at <= as_of`),
    /// each household's window ending at the cut-off and its dong the one of
    /// its newest signal counted. The daily list of a day is scored so,
    /// whatever eviction has or has not dropped yet.
    pub(crate) fn table_of<'a>(
        &self,
        households: impl Iterator<Item = &'a str>,
        as_of: Option<i64>,
    ) -> RecordBatch {
        // grown as it goes: counting first would decode each record twice,
        // and the lists ask for up to 100,000 households a lane at a time
        let mut table = SignalTable::new(
            &self.feed_names,
            &self.feed_categories,
            &TableSize::default(),
        );
        let mut scratch = String::new();
        let mut slots = Vec::new();
        let households: Vec<(&str, ())> = households.map(|hh| (hh, ())).collect();
        for (hh, ()) in in_table_order(households) {
            let Some(r) = self.households.get(hh) else {
                continue;
            };
            scratch.clear();
            slots.clear();
            let mut texts = Texts {
                symbols: &self.symbols,
                scratch: &mut scratch,
            };
            record::decode(r.payload(), &mut texts, &mut slots);
            if let Some(cutoff) = as_of {
                let from = cutoff - self.length_ms;
                slots.retain(|s| (from..=cutoff).contains(&s.observed_at));
            }
            table.append(hh, &mut slots, &texts, as_of);
        }
        table.finish()
    }

    /// What this stage's record numbers stand for (see [`RecordDictionary`]).
    pub(crate) fn dictionary(&self) -> RecordDictionary {
        RecordDictionary {
            feeds: self.feed_names.iter().map(|f| f.to_string()).collect(),
            symbols: self
                .symbols
                .values()
                .iter()
                .map(|v| v.to_string())
                .collect(),
        }
    }

    /// How records written under `dictionary` read here; `None` when they
    /// read as they are (the pipeline's feeds and values did not change).
    pub(crate) fn translation(&self, dictionary: &RecordDictionary) -> Option<Translation> {
        (*dictionary != self.dictionary()).then(|| Translation {
            symbols: Symbols::from_values(&dictionary.symbols),
            feeds: dictionary
                .feeds
                .iter()
                .map(|f| {
                    self.feed_names
                        .iter()
                        .position(|n| **n == **f)
                        .and_then(|i| u16::try_from(i).ok())
                })
                .collect(),
        })
    }

    /// A snapshot's newest event times per feed as this pipeline numbers
    /// its feeds (translated like the records when the snapshot was written
    /// under another pipeline definition).
    pub(crate) fn translate_newest(
        &self,
        newest: &[Option<i64>],
        translation: Option<&Translation>,
    ) -> Vec<Option<i64>> {
        let Some(t) = translation else {
            return newest.to_vec();
        };
        let mut here = vec![None; self.feed_names.len()];
        for (old, t_newest) in newest.iter().enumerate() {
            if let Some(Some(feed)) = t.feeds.get(old) {
                if let Some(slot) = here.get_mut(usize::from(*feed)) {
                    *slot = *t_newest;
                }
            }
        }
        here
    }

    /// The households held, readable one by one.
    #[cfg(test)]
    pub(crate) fn held(&self) -> impl Iterator<Item = HeldHousehold<'_>> {
        self.households.iter().map(|record| HeldHousehold {
            record,
            symbols: &self.symbols,
        })
    }
}

/// Digits of a dong code (the decoder admits exactly this many).
const DONG_DIGITS: usize = 10;

/// `households` (ids with a value each) sorted by id in byte order, the
/// first key of [`crate::stages::signal::SIGNAL_TABLE_ORDER`].
///
/// Ids are compared by their first 16 bytes as one integer first: a batch
/// sorts thousands of them, and most differ there.
fn in_table_order<T>(households: Vec<(&str, T)>) -> impl Iterator<Item = (&str, T)> {
    let mut keyed: Vec<(u128, &str, T)> = households
        .into_iter()
        .map(|(hh, value)| {
            let mut head = [0u8; 16];
            let n = hh.len().min(16);
            head[..n].copy_from_slice(&hh.as_bytes()[..n]);
            (u128::from_be_bytes(head), hh, value)
        })
        .collect();
    // a zero-padded head ties with a longer id's; the full ids decide
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    keyed.into_iter().map(|(_, hh, value)| (hh, value))
}

/// Appends a dong code as its ten digits, zero-padded as on the wire,
/// without the formatter: this runs for every row of the signals table.
fn push_dong(out: &mut String, dong: u64) {
    match i64::try_from(dong) {
        // the decoder admits exactly ten digits
        Ok(d) if d < 10_i64.pow(DONG_DIGITS as u32) => {
            let mut digits = [0u8; DONG_DIGITS];
            crate::base::civil::put_digits(&mut digits, d);
            out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
        }
        _ => {
            use std::fmt::Write;
            let _ = write!(out, "{dong:010}");
        }
    }
}

/// Builds the `signals` table (schema: [`signal_table_schema`]).
struct SignalTable<'f> {
    feed_names: &'f [Arc<str>],
    feed_categories: &'f [Arc<str>],
    household_id: StringBuilder,
    dong: StringBuilder,
    feed: StringBuilder,
    category: StringBuilder,
    subject: StringBuilder,
    measures: MeasureBuilders,
    observed_at: TimestampMillisecondBuilder,
    window_end: TimestampMillisecondBuilder,
    current_dong: StringBuilder,
    event_key: UInt64Builder,
    newest_event_key: UInt64Builder,
    dong_text: String,
    current_dong_text: String,
    rows: usize,
}

/// The rows and string bytes of a `signals` table, counted before it is
/// built: a builder that starts empty copies each buffer every time it
/// doubles, and this table is several times the size of its batch.
///
/// Feed names and categories are not counted: each row's is one of a few
/// short names, so the longest of them times the rows bounds them.
#[derive(Default)]
struct TableSize {
    rows: usize,
    household_id: usize,
    subject: usize,
    kind: usize,
}

impl TableSize {
    /// Counts the rows of household `hh` with `signals`.
    fn add(&mut self, hh: &str, signals: &[Slot], texts: &Texts<'_>) {
        self.rows += signals.len();
        self.household_id += hh.len() * signals.len();
        for s in signals {
            self.subject += texts.get(s.subject).len();
            self.kind += s.kind.map_or(0, |k| texts.get(k).len());
        }
    }
}

impl<'f> SignalTable<'f> {
    /// An empty table of feeds with these names and categories, with room
    /// for `size` (which may be an estimate).
    fn new(feed_names: &'f [Arc<str>], feed_categories: &'f [Arc<str>], size: &TableSize) -> Self {
        let rows = size.rows;
        let dongs = DONG_DIGITS * rows;
        let longest = |names: &[Arc<str>]| names.iter().map(|n| n.len()).max().unwrap_or(0);
        SignalTable {
            feed_names,
            feed_categories,
            household_id: StringBuilder::with_capacity(rows, size.household_id),
            dong: StringBuilder::with_capacity(rows, dongs),
            feed: StringBuilder::with_capacity(rows, rows * longest(feed_names)),
            category: StringBuilder::with_capacity(rows, rows * longest(feed_categories)),
            subject: StringBuilder::with_capacity(rows, size.subject),
            measures: MeasureBuilders::with_capacity(rows, size.kind),
            observed_at: TimestampMillisecondBuilder::with_capacity(rows),
            window_end: TimestampMillisecondBuilder::with_capacity(rows),
            current_dong: StringBuilder::with_capacity(rows, dongs),
            event_key: UInt64Builder::with_capacity(rows),
            newest_event_key: UInt64Builder::with_capacity(rows),
            dong_text: String::with_capacity(DONG_DIGITS),
            current_dong_text: String::with_capacity(DONG_DIGITS),
            rows: 0,
        }
    }

    /// Appends the rows of household `hh`, after sorting its `signals` into
    /// the rest of [`crate::stages::signal::SIGNAL_TABLE_ORDER`].
    /// `window_end`: where the household's window ends, when not at its
    /// newest signal (a list's cut-off).
    fn append(
        &mut self,
        hh: &str,
        signals: &mut [Slot],
        texts: &Texts<'_>,
        window_end: Option<i64>,
    ) {
        let feed_name = |s: &Slot| self.feed_names.get(usize::from(s.feed)).map_or("", |f| f);
        // a stable sort of a handful of signals, usually in order already
        signals.sort_by(|a, b| {
            a.observed_at
                .cmp(&b.observed_at)
                .then_with(|| feed_name(a).cmp(feed_name(b)))
                .then_with(|| texts.get(a.subject).cmp(texts.get(b.subject)))
        });
        let Some(newest) = signals.iter().max_by_key(|s| (s.observed_at, s.event_key)) else {
            return;
        };
        let window_end = window_end.unwrap_or(newest.observed_at);
        let newest_event_key = newest.event_key;
        self.current_dong_text.clear();
        push_dong(&mut self.current_dong_text, newest.dong);
        // a household's signals nearly always share its current dong
        let mut dong_of_text = newest.dong;
        self.dong_text.clone_from(&self.current_dong_text);
        for s in signals.iter() {
            self.household_id.append_value(hh);
            if s.dong != dong_of_text {
                dong_of_text = s.dong;
                self.dong_text.clear();
                push_dong(&mut self.dong_text, s.dong);
            }
            self.dong.append_value(&self.dong_text);
            // a record only holds feeds of this pipeline (a restore
            // translates others), so the empty fallbacks never show
            let feed = usize::from(s.feed);
            self.feed
                .append_value(self.feed_names.get(feed).map_or("", |f| f));
            self.category
                .append_value(self.feed_categories.get(feed).map_or("", |c| c));
            self.subject.append_value(texts.get(s.subject));
            self.measures.append(&s.measures(texts));
            self.observed_at.append_value(s.observed_at);
            self.window_end.append_value(window_end);
            self.current_dong.append_value(&self.current_dong_text);
            self.event_key.append_value(s.event_key);
            self.newest_event_key.append_value(newest_event_key);
            self.rows += 1;
        }
    }

    fn finish(mut self) -> RecordBatch {
        let [kind, months, amount, disconnected, occurred_on] = self.measures.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.household_id.finish()),
            Arc::new(self.dong.finish()),
            Arc::new(self.feed.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.subject.finish()),
            kind,
            months,
            amount,
            disconnected,
            occurred_on,
            Arc::new(self.observed_at.finish().with_timezone("UTC")),
            Arc::new(self.window_end.finish().with_timezone("UTC")),
            Arc::new(self.current_dong.finish()),
            Arc::new(self.event_key.finish()),
            Arc::new(self.newest_event_key.finish()),
        ];
        RecordBatch::try_new(signal_table_schema(), columns)
            .expect("signal table matches its schema")
    }
}

/// The index in `open` of household `hh` (with `hash`) for this batch:
/// found among those `opened` already, or opened now from its record (or
/// empty, on `first_shard`), once per household and batch.
#[inline]
fn open_household<'a>(
    opened: &mut HashTable<(&'a str, usize)>,
    open: &mut Vec<Open>,
    households: &Records,
    texts: &mut Texts<'_>,
    (hash, hh): (u64, &'a str),
    first_shard: i32,
) -> usize {
    if let Some(&(_, i)) = opened.find(hash, |&(id, _)| id == hh) {
        return i;
    }
    let i = opened.len();
    if open.len() <= i {
        open.push(Open::default());
    }
    let o = &mut open[i];
    o.signals.clear();
    o.changed = false;
    // A household keeps the shard it was first seen on; a producer that
    // partitions by something else breaks co-partitioning, which the
    // README's input contract forbids.
    o.hash = hash;
    o.shard = match households.get_hashed(hash, hh) {
        Some(r) => record::decode(r.payload(), texts, &mut o.signals),
        None => first_shard,
    };
    opened.insert_unique(hash, (hh, i), |&(id, _)| households.hash(id));
    i
}

/// The reject of a late message of feed `feed` on `partition`, for a
/// window of `length_ms` with `lateness_ms` allowed.
#[cold]
fn late_reject(length_ms: i64, lateness_ms: i64, feed: &str, partition: i32) -> Reject {
    Reject::new(
        RejectClass::LateEvent,
        format!(
            "late: observed_at is more than {} days before the watermark of the {feed} feed on partition {partition} ({} days of lateness allowed)",
            length_ms / crate::definition::DAY_MS,
            lateness_ms / crate::definition::DAY_MS
        ),
    )
}

/// The columns of a decoded batch the windows read.
struct Columns<'a> {
    msg_index: &'a arrow::array::PrimitiveArray<UInt32Type>,
    feed: &'a arrow::array::PrimitiveArray<UInt16Type>,
    household: &'a arrow::array::StringArray,
    dong: &'a arrow::array::StringArray,
    event_id: &'a arrow::array::StringArray,
    observed_at: &'a arrow::array::PrimitiveArray<TimestampMillisecondType>,
    subject: &'a arrow::array::StringArray,
    kind: &'a arrow::array::StringArray,
    months: &'a arrow::array::PrimitiveArray<Int64Type>,
    amount: &'a arrow::array::PrimitiveArray<Int64Type>,
    disconnected: &'a arrow::array::BooleanArray,
    occurred_on: &'a arrow::array::PrimitiveArray<Date32Type>,
}

impl<'a> Columns<'a> {
    fn of(decoded: &'a RecordBatch) -> Self {
        Columns {
            msg_index: decoded.column(decoded::MSG_INDEX).as_primitive(),
            feed: decoded.column(decoded::FEED).as_primitive(),
            household: decoded.column(decoded::HOUSEHOLD_ID).as_string::<i32>(),
            dong: decoded.column(decoded::DONG_CODE).as_string::<i32>(),
            event_id: decoded.column(decoded::EVENT_ID).as_string::<i32>(),
            observed_at: decoded.column(decoded::OBSERVED_AT).as_primitive(),
            subject: decoded.column(decoded::SUBJECT).as_string::<i32>(),
            kind: decoded.column(decoded::KIND).as_string::<i32>(),
            months: decoded.column(decoded::MONTHS_OVERDUE).as_primitive(),
            amount: decoded.column(decoded::AMOUNT_KRW).as_primitive(),
            disconnected: decoded.column(decoded::DISCONNECTED).as_boolean(),
            occurred_on: decoded.column(decoded::OCCURRED_ON).as_primitive(),
        }
    }

    /// Row `row` as a signal slot, its texts already interned.
    #[inline]
    fn slot(
        &self,
        row: usize,
        observed_at: i64,
        event_key: u64,
        subject: Text,
        kind: Option<Text>,
    ) -> Slot {
        let or = |valid: bool, v: i64, none: i64| if valid { v } else { none };
        Slot {
            observed_at,
            event_key,
            // The decoder checked: exactly 10 ASCII digits.
            dong: self.dong.value(row).parse().unwrap_or_default(),
            amount_krw: or(self.amount.is_valid(row), self.amount.value(row), NONE_I64),
            months_overdue: or(self.months.is_valid(row), self.months.value(row), NONE_I64),
            subject,
            kind,
            occurred_on: if self.occurred_on.is_valid(row) {
                self.occurred_on.value(row)
            } else {
                NONE_I32
            },
            feed: self.feed.value(row),
            disconnected: if self.disconnected.is_valid(row) {
                u8::from(self.disconnected.value(row))
            } else {
                NONE_U8
            },
        }
    }
}

#[cfg(test)]
mod tests;
