//! The Arrow shapes that travel between stages.
//!
//! * [`decoded_schema`]: what `decode` emits for one micro-batch, one row per
//!   valid message, with `msg_index` pointing back at the message (for offsets
//!   and the dead-letter topic).
//! * [`signal_table_schema`]: the table `signals` the scoring SQL reads: every
//!   live signal of the households a micro-batch touched.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder, UInt16Builder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Positions of the columns of [`decoded_schema`], by name: the window
/// stage reads the decoded batch by these, and a test holds them to the
/// schema's names.
pub(crate) mod decoded {
    /// `msg_index`: the message's index in its micro-batch.
    pub(crate) const MSG_INDEX: usize = 0;
    /// `feed`: the feed index.
    pub(crate) const FEED: usize = 1;
    /// `household_id`.
    pub(crate) const HOUSEHOLD_ID: usize = 2;
    /// `dong_code`.
    pub(crate) const DONG_CODE: usize = 3;
    /// `event_id`.
    pub(crate) const EVENT_ID: usize = 4;
    /// `source`: the reporting agency.
    #[cfg(test)]
    pub(crate) const SOURCE: usize = 5;
    /// `observed_at`: the event time.
    pub(crate) const OBSERVED_AT: usize = 6;
    /// `subject`: what a later signal supersedes.
    pub(crate) const SUBJECT: usize = 7;
    /// `kind`.
    pub(crate) const KIND: usize = 8;
    /// `months_overdue`.
    pub(crate) const MONTHS_OVERDUE: usize = 9;
    /// `amount_krw`.
    pub(crate) const AMOUNT_KRW: usize = 10;
    /// `disconnected`.
    pub(crate) const DISCONNECTED: usize = 11;
    /// `occurred_on`.
    pub(crate) const OCCURRED_ON: usize = 12;

    /// Each row's message index, feed and event time, in row order: what
    /// lateness is judged by.
    pub(crate) fn timed(
        batch: &arrow::record_batch::RecordBatch,
    ) -> impl Iterator<Item = (u32, u16, i64)> + '_ {
        use arrow::array::AsArray;
        use arrow::datatypes::{TimestampMillisecondType, UInt16Type, UInt32Type};
        let index = batch.column(MSG_INDEX).as_primitive::<UInt32Type>();
        let feed = batch.column(FEED).as_primitive::<UInt16Type>();
        let observed_at = batch
            .column(OBSERVED_AT)
            .as_primitive::<TimestampMillisecondType>();
        (0..batch.num_rows())
            .map(move |row| (index.value(row), feed.value(row), observed_at.value(row)))
    }
}

/// Schema of a decoded micro-batch (output of `decode`, input of `window`).
pub(crate) fn decoded_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("msg_index", DataType::UInt32, false),
                Field::new("feed", DataType::UInt16, false),
                Field::new("household_id", DataType::Utf8, false),
                Field::new("dong_code", DataType::Utf8, false),
                Field::new("event_id", DataType::Utf8, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("observed_at", ts_type(), false),
                Field::new("subject", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, true),
                Field::new("months_overdue", DataType::Int64, true),
                Field::new("amount_krw", DataType::Int64, true),
                Field::new("disconnected", DataType::Boolean, true),
                Field::new("occurred_on", DataType::Date32, true),
            ]))
        })
        .clone()
}

/// The order of the rows of every `signals` table the window stage builds:
/// by household, then event time, feed name and subject, each ascending
/// (byte order for text). The scorer declares it to DataFusion, which then
/// groups households as they stream past and needs no sort for an
/// `ORDER BY` on a prefix of it, such as the default `score.sql`'s.
pub(crate) const SIGNAL_TABLE_ORDER: [&str; 4] = ["household_id", "observed_at", "feed", "subject"];

/// Schema of the `signals` table the scoring SQL reads.
pub fn signal_table_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("household_id", DataType::Utf8, false),
                Field::new("dong_code", DataType::Utf8, false),
                Field::new("feed", DataType::Utf8, false),
                Field::new("category", DataType::Utf8, false),
                Field::new("subject", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, true),
                Field::new("months_overdue", DataType::Int64, true),
                Field::new("amount_krw", DataType::Int64, true),
                Field::new("disconnected", DataType::Boolean, true),
                Field::new("occurred_on", DataType::Date32, true),
                Field::new("observed_at", ts_type(), false),
                // the household's newest live signal (the same on each of its
                // rows): its window ends there. The window stage knows it, so
                // the SQL needs no aggregate joined back to find it.
                Field::new("window_end", ts_type(), false),
                // the dong of that newest signal (ties: the larger event_key),
                // which serves the household now, also on each of its rows:
                // the SQL picks no row per household to find it
                Field::new("current_dong", DataType::Utf8, false),
                // 64-bit hash of the event id: breaks ties between signals
                // with the same event time, deterministically
                Field::new("event_key", DataType::UInt64, false),
                // the event_key of the household's newest live signal (the
                // one its window ends at), on each of its rows: with the
                // reasons' event keys it identifies an alert decision
                Field::new("newest_event_key", DataType::UInt64, false),
            ]))
        })
        .clone()
}

/// The values of one signal's optional columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Measures<'a> {
    /// Kind within the feed.
    pub(crate) kind: Option<&'a str>,
    /// Months overdue.
    pub(crate) months_overdue: Option<i64>,
    /// Amount overdue in KRW.
    pub(crate) amount_krw: Option<i64>,
    /// Supply cut off or limited.
    pub(crate) disconnected: Option<bool>,
    /// Reported date, days since 1970-01-01.
    pub(crate) occurred_on: Option<i32>,
}

/// Builds a decoded micro-batch row by row as messages are validated.
///
/// The builders are reused across batches and their buffers grow by
/// doubling, so the hot path does not allocate per message.
pub(crate) struct DecodedBatchBuilder {
    msg_index: UInt32Builder,
    feed: UInt16Builder,
    household_id: StringBuilder,
    dong_code: StringBuilder,
    event_id: StringBuilder,
    source: StringBuilder,
    observed_at: TimestampMillisecondBuilder,
    subject: StringBuilder,
    measures: MeasureBuilders,
}

/// Builders of the optional measure columns shared by both schemas.
#[derive(Default)]
pub(crate) struct MeasureBuilders {
    kind: StringBuilder,
    months_overdue: Int64Builder,
    amount_krw: Int64Builder,
    disconnected: BooleanBuilder,
    occurred_on: Date32Builder,
}

impl MeasureBuilders {
    /// Builders with room for `rows` rows and `kind_bytes` bytes of kinds.
    pub(crate) fn with_capacity(rows: usize, kind_bytes: usize) -> Self {
        MeasureBuilders {
            kind: StringBuilder::with_capacity(rows, kind_bytes),
            months_overdue: Int64Builder::with_capacity(rows),
            amount_krw: Int64Builder::with_capacity(rows),
            disconnected: BooleanBuilder::with_capacity(rows),
            occurred_on: Date32Builder::with_capacity(rows),
        }
    }

    pub(crate) fn append(&mut self, m: &Measures<'_>) {
        self.kind.append_option(m.kind);
        self.months_overdue.append_option(m.months_overdue);
        self.amount_krw.append_option(m.amount_krw);
        self.disconnected.append_option(m.disconnected);
        self.occurred_on.append_option(m.occurred_on);
    }

    /// kind, months_overdue, amount_krw, disconnected, occurred_on.
    pub(crate) fn finish(&mut self) -> [ArrayRef; 5] {
        [
            Arc::new(self.kind.finish()),
            Arc::new(self.months_overdue.finish()),
            Arc::new(self.amount_krw.finish()),
            Arc::new(self.disconnected.finish()),
            Arc::new(self.occurred_on.finish()),
        ]
    }
}

/// One valid message, borrowed from its bytes, ready to append.
#[derive(Debug, Clone)]
pub(crate) struct DecodedRow<'a> {
    /// Index of the message in the micro-batch.
    pub(crate) msg_index: u32,
    /// Feed index in the pipeline.
    pub(crate) feed: u16,
    /// Pseudonymous household id.
    pub(crate) household_id: &'a str,
    /// 10-digit dong code.
    pub(crate) dong_code: &'a str,
    /// Unique id of the source event.
    pub(crate) event_id: &'a str,
    /// Reporting agency.
    pub(crate) source: &'a str,
    /// Event time, ms since the epoch (UTC).
    pub(crate) observed_at_ms: i64,
    /// What a later signal supersedes.
    pub(crate) subject: &'a str,
    /// Optional measures.
    pub(crate) measures: Measures<'a>,
}

impl Default for DecodedBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DecodedBatchBuilder {
    /// An empty builder.
    pub(crate) fn new() -> Self {
        DecodedBatchBuilder {
            msg_index: UInt32Builder::new(),
            feed: UInt16Builder::new(),
            household_id: StringBuilder::new(),
            dong_code: StringBuilder::new(),
            event_id: StringBuilder::new(),
            source: StringBuilder::new(),
            observed_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            subject: StringBuilder::new(),
            measures: MeasureBuilders::default(),
        }
    }

    /// Appends one valid signal.
    pub(crate) fn append(&mut self, row: &DecodedRow<'_>) {
        self.msg_index.append_value(row.msg_index);
        self.feed.append_value(row.feed);
        self.household_id.append_value(row.household_id);
        self.dong_code.append_value(row.dong_code);
        self.event_id.append_value(row.event_id);
        self.source.append_value(row.source);
        self.observed_at.append_value(row.observed_at_ms);
        self.subject.append_value(row.subject);
        self.measures.append(&row.measures);
    }

    /// Rows appended since the last [`finish`](Self::finish).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        use arrow::array::ArrayBuilder;
        self.msg_index.len()
    }

    /// Takes the rows as a record batch and resets the builder.
    pub(crate) fn finish(&mut self) -> RecordBatch {
        let [kind, months, amount, disconnected, occurred_on] = self.measures.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.msg_index.finish()),
            Arc::new(self.feed.finish()),
            Arc::new(self.household_id.finish()),
            Arc::new(self.dong_code.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.observed_at.finish()),
            Arc::new(self.subject.finish()),
            kind,
            months,
            amount,
            disconnected,
            occurred_on,
        ];
        // The columns are built together row by row, so lengths and types
        // always match the schema; a mismatch is a bug in this file.
        RecordBatch::try_new(decoded_schema(), columns).expect("decoded batch matches its schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_decoded_columns_are_where_the_schema_puts_them() {
        let schema = decoded_schema();
        for (name, at) in [
            ("msg_index", decoded::MSG_INDEX),
            ("feed", decoded::FEED),
            ("household_id", decoded::HOUSEHOLD_ID),
            ("dong_code", decoded::DONG_CODE),
            ("event_id", decoded::EVENT_ID),
            ("source", decoded::SOURCE),
            ("observed_at", decoded::OBSERVED_AT),
            ("subject", decoded::SUBJECT),
            ("kind", decoded::KIND),
            ("months_overdue", decoded::MONTHS_OVERDUE),
            ("amount_krw", decoded::AMOUNT_KRW),
            ("disconnected", decoded::DISCONNECTED),
            ("occurred_on", decoded::OCCURRED_ON),
        ] {
            assert_eq!(schema.index_of(name).ok(), Some(at), "{name}");
        }
        assert_eq!(schema.fields().len(), decoded::OCCURRED_ON + 1);
    }
}
