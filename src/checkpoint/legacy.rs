//! Snapshot format 2 (the whole state of a shard as JSON, written before
//! 2026-11-23), converted to today's records as it is loaded, so that an
//! upgrade keeps its state and no stage has to know the old shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PartitionOffset, Snapshot, StoredRecords};
use crate::stages::alert::{mark_record, AlertMark};
use crate::stages::window::{LiveSignal, RecordWriter};
use crate::stages::StatePart;

/// A format-2 snapshot body.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct JsonSnapshot {
    pub(super) pipeline: String,
    pub(super) created_at_ms: i64,
    pub(super) shard: i32,
    pub(super) offsets: Vec<PartitionOffset>,
    pub(super) windows: JsonWindows,
    pub(super) alerts: JsonAlerts,
}

/// The window stage's state in format 2.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct JsonWindows {
    /// Live signals per household id.
    pub(super) households: BTreeMap<String, JsonHousehold>,
    /// Newest event time seen per feed (index = feed).
    pub(super) feed_newest: Vec<Option<i64>>,
}

/// One household in format 2.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct JsonHousehold {
    pub(super) shard: i32,
    pub(super) signals: Vec<JsonSignal>,
}

/// One live signal in format 2: absent measures as `null`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct JsonSignal {
    observed_at: i64,
    event_key: u64,
    dong: u64,
    amount_krw: Option<i64>,
    months_overdue: Option<i64>,
    subject: String,
    kind: Option<String>,
    occurred_on: Option<i32>,
    feed: u16,
    disconnected: Option<u8>,
}

/// The alert gate's state in format 2.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct JsonAlerts {
    pub(super) marks: BTreeMap<String, AlertMark>,
}

impl From<JsonSignal> for LiveSignal {
    fn from(s: JsonSignal) -> Self {
        use crate::stages::window::{NONE_I32, NONE_I64, NONE_U8};
        LiveSignal {
            observed_at: s.observed_at,
            event_key: s.event_key,
            dong: s.dong,
            amount_krw: s.amount_krw.unwrap_or(NONE_I64),
            months_overdue: s.months_overdue.unwrap_or(NONE_I64),
            subject: s.subject,
            kind: s.kind,
            occurred_on: s.occurred_on.unwrap_or(NONE_I32),
            feed: s.feed,
            disconnected: s.disconnected.unwrap_or(NONE_U8),
        }
    }
}

impl From<&LiveSignal> for JsonSignal {
    fn from(s: &LiveSignal) -> Self {
        use crate::stages::window::{NONE_I32, NONE_I64, NONE_U8};
        JsonSignal {
            observed_at: s.observed_at,
            event_key: s.event_key,
            dong: s.dong,
            amount_krw: (s.amount_krw != NONE_I64).then_some(s.amount_krw),
            months_overdue: (s.months_overdue != NONE_I64).then_some(s.months_overdue),
            subject: s.subject.clone(),
            kind: s.kind.clone(),
            occurred_on: (s.occurred_on != NONE_I32).then_some(s.occurred_on),
            feed: s.feed,
            disconnected: (s.disconnected != NONE_U8).then_some(s.disconnected),
        }
    }
}

/// Reads a format-2 body (its header already checked) as today's records.
pub(super) fn read(body: &[u8]) -> Result<Snapshot, serde_json::Error> {
    let json: JsonSnapshot = serde_json::from_slice(body)?;
    let mut writer = RecordWriter::default();
    let mut file = Vec::new();
    let mut households = 0;
    for (id, h) in json.windows.households {
        if h.signals.is_empty() {
            continue;
        }
        let signals: Vec<LiveSignal> = h.signals.into_iter().map(LiveSignal::from).collect();
        file.extend_from_slice(writer.write(&id, h.shard, &signals).as_bytes());
        households += 1;
    }
    let split = file.len();
    let marks = json.alerts.marks.len();
    for (id, mark) in &json.alerts.marks {
        file.extend_from_slice(mark_record(id, mark).as_bytes());
    }
    let end = file.len();
    let mut counts = [0; StatePart::ALL.len()];
    counts[StatePart::Households.index()] = households;
    counts[StatePart::Marks.index()] = marks;
    let mut sections = [0..0, 0..0, end..end];
    sections[StatePart::Households.index()] = 0..split;
    sections[StatePart::Marks.index()] = split..end;
    Ok(Snapshot {
        pipeline: json.pipeline,
        created_at_ms: json.created_at_ms,
        shard: json.shard,
        offsets: json.offsets,
        state: StoredRecords {
            dictionary: RecordWriter::dictionary(Vec::new()),
            feeds_by_position: true,
            feed_newest: json.windows.feed_newest,
            // format 2 did not say which scoring decided its marks
            scoring: None,
            counts,
            file,
            sections,
        },
    })
}

/// A format-2 snapshot file as sagak wrote it, for the tests that check an
/// upgrade keeps its state.
#[cfg(test)]
pub(crate) fn file(
    shard: i32,
    offsets: Vec<PartitionOffset>,
    households: &[(String, i32, Vec<LiveSignal>)],
    marks: &[(String, AlertMark)],
    feed_newest: Vec<Option<i64>>,
) -> Vec<u8> {
    let json = JsonSnapshot {
        pipeline: "default".into(),
        created_at_ms: 0,
        shard,
        offsets,
        windows: JsonWindows {
            households: households
                .iter()
                .map(|(id, shard, signals)| {
                    let signals = signals.iter().map(JsonSignal::from).collect();
                    (
                        id.clone(),
                        JsonHousehold {
                            shard: *shard,
                            signals,
                        },
                    )
                })
                .collect(),
            feed_newest,
        },
        alerts: JsonAlerts {
            marks: marks.iter().cloned().collect(),
        },
    };
    let body = serde_json::to_vec(&json).expect("a format-2 snapshot encodes");
    let sum = crate::base::hash::fnv1a128(&[&body]);
    let mut out = format!(
        "{} v{} len={} fnv128={sum:032x}\n",
        super::MAGIC,
        super::JSON_FORMAT,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}
