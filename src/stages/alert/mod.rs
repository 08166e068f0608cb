//! The alert stage: decides which assessments become alerts on the dong
//! office queue, and renders them.
//!
//! A household is alerted when it first reaches a priority or escalates
//! (P3 -> P2 -> P1). At the same or a lower priority it is not alerted again
//! within the cooldown (event time), so a dong office is not asked twice
//! about the same crisis. The alert id names one alert decision: a hash of
//! the household, the priority and the evidence (the event keys of the
//! reasons in order and of the household's newest live signal), so a replay
//! after a crash yields the same ids, and any other alert another id.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize, Serializer};

use crate::base::civil::{date_bytes, put_digits};
use crate::base::keyed::{varint, Record, Records};
use crate::definition::{PipelineSpec, DAY_MS};
use crate::stages::score::{Assessment, Candidate, Priority};
use crate::stages::{Restore, Restored, StatePart, StatefulStage, Watermark};

/// Name and version of the pipeline that produced an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineTag {
    /// Pipeline name.
    pub name: String,
    /// Pipeline version.
    pub version: String,
}

/// One reason in an alert.
///
/// Feed and category names are shared, not copied, and times are kept as
/// milliseconds until the alert is serialized: an alert has several
/// reasons, and each string of its own is an allocation and a free.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertReason {
    /// Feed that reported the signal.
    #[serde(serialize_with = "shared")]
    pub signal: Arc<str>,
    /// Its crisis category.
    #[serde(serialize_with = "shared")]
    pub category: Arc<str>,
    /// What happened, in English.
    pub detail: String,
    /// What happened, in Korean.
    pub detail_ko: String,
    /// When it was observed, ms since the epoch (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub observed_at: i64,
    /// Months overdue, where the feed reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub months_overdue: Option<i64>,
    /// Amount overdue in KRW, where the feed reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_krw: Option<i64>,
}

/// What an alert is to the office (`type`; a consumer reads a missing one
/// as `alert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AlertType {
    /// A household to contact.
    #[default]
    Alert,
    /// News of a household in case management: its priority or its set of
    /// categories changed.
    CaseUpdate,
}

/// The household's status when an alert is sent (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CaseStatus {
    /// No outcome recorded yet.
    #[default]
    New,
    /// Someone of the household was reached.
    Contacted,
    /// Contact attempts failed; the next one is due (연락 시도 중).
    Attempting,
    /// Support was linked; alerts at its priority are held until its
    /// hold ends.
    Linked,
    /// Its case was closed and a new alert came (종결 후 재알림).
    Realerted,
    /// Cannot be found: a residence check (소재파악) is needed.
    Unreachable,
    /// An outcome holds back alerts at this priority (declined, no need,
    /// support linked); this one is sent for a higher priority or a new
    /// category.
    Held,
    /// In integrated case management.
    InCase,
    /// Its case was closed.
    Closed,
}

impl CaseStatus {
    /// Every status.
    pub(crate) const ALL: [CaseStatus; 9] = [
        CaseStatus::New,
        CaseStatus::Contacted,
        CaseStatus::Attempting,
        CaseStatus::Linked,
        CaseStatus::Realerted,
        CaseStatus::Unreachable,
        CaseStatus::Held,
        CaseStatus::InCase,
        CaseStatus::Closed,
    ];

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Contacted => "contacted",
            CaseStatus::Attempting => "attempting",
            CaseStatus::Linked => "linked",
            CaseStatus::Realerted => "realerted",
            CaseStatus::Unreachable => "unreachable",
            CaseStatus::Held => "held",
            CaseStatus::InCase => "in_case",
            CaseStatus::Closed => "closed",
        }
    }

    /// The Korean label unless the pipeline names another.
    pub(crate) fn label_ko(self) -> &'static str {
        match self {
            CaseStatus::New => "신규",
            CaseStatus::Contacted => "연락됨",
            CaseStatus::Attempting => "연락 시도 중",
            CaseStatus::Linked => "서비스 연계",
            CaseStatus::Realerted => "종결 후 재알림",
            CaseStatus::Unreachable => "소재파악 필요",
            CaseStatus::Held => "보류",
            CaseStatus::InCase => "사례관리 중",
            CaseStatus::Closed => "종결",
        }
    }
}

/// The household's newest outcome, as an alert carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LastOutcome {
    /// Its `kind` on the wire (`counselled`, ...), with its value after a
    /// slash where it has one (`contact_attempted/no_answer`).
    pub(crate) kind: String,
    /// Korean label, from the pipeline definition.
    pub(crate) label: String,
    /// Local date it was recorded, `YYYY-MM-DD`.
    pub(crate) date: String,
}

/// What the case state adds to an alert (see `schemas/alert.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct CaseContext {
    /// `alert` or `case_update`.
    #[serde(rename = "type")]
    pub(crate) kind: AlertType,
    /// Status of the household when sent.
    pub(crate) status: CaseStatus,
    /// When a first reach is due (absent for a case update), ms (RFC 3339
    /// on the wire).
    #[serde(serialize_with = "opt_rfc3339")]
    pub(crate) due_at: Option<i64>,
    /// Alerts sent for the household before this one (within the kept
    /// history).
    pub(crate) times_flagged_before: u32,
    /// Its newest outcome.
    pub(crate) last_outcome: Option<LastOutcome>,
    /// Its case was closed before: this is a crisis again.
    pub(crate) reopened: bool,
    /// How often its case was closed.
    pub(crate) times_closed: u32,
    /// Support was linked before and its hold has passed.
    pub(crate) recurrence: bool,
    /// The priority the scoring gave, when a rule raised it (an
    /// unreachable household is sent one priority higher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scored_priority: Option<Priority>,
}

/// The JSON value sent to `dong-office.alerts` (key: `dong_code`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Names this alert decision: the same household, priority and evidence
    /// (see [`alert_id`]) give the same id, anything else another one.
    pub alert_id: String,
    /// Pseudonymous household id.
    pub household_id: String,
    /// Dong office that serves the household now.
    pub dong_code: String,
    /// "P1", "P2" or "P3".
    pub priority: Priority,
    /// Orders households inside a priority.
    pub score: f64,
    /// Why, one entry per qualifying signal.
    pub reasons: Vec<AlertReason>,
    /// Distinct categories: utility, employment, health.
    #[serde(serialize_with = "shared_each")]
    pub categories: Vec<Arc<str>>,
    /// Event time of the oldest reason, ms (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub first_signal_at: i64,
    /// Event time of the newest reason, ms (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub last_signal_at: i64,
    /// Wall-clock time the alert was decided, ms (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub emitted_at: i64,
    /// Pipeline that produced it.
    #[serde(serialize_with = "shared")]
    pub pipeline: Arc<PipelineTag>,
    /// What the case state says of the household.
    #[serde(flatten)]
    pub case: CaseContext,
}

/// Last alert sent for a household.
///
/// Every household whose assessment reached a priority has a mark, sent or
/// held back by the cooldown, for as long as its signals are live: the daily
/// lists re-score only the marked households. A mark with `count` 0 was
/// never an alert: it was added by [`AlertGate::index_priority`] for a
/// household found at a priority by a full re-scoring of the state, and it
/// holds no alert back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AlertMark {
    /// Priority of the last alert.
    pub(crate) priority: Priority,
    /// Event time (window end) at which it was sent.
    pub(crate) at: i64,
    /// Alerts sent for this household so far (0: never alerted).
    pub(crate) count: u32,
    /// State shard of the household: the input partition its signals arrive on.
    pub(crate) shard: i32,
}

/// What one batch of assessments produced.
#[derive(Debug, Default)]
pub struct GateOutcome {
    /// Alerts to send.
    pub alerts: Vec<Alert>,
    /// Assessments not sent because of the cooldown.
    pub(crate) suppressed: usize,
}

/// The alert stage.
pub struct AlertGate {
    cooldown_ms: i64,
    window_ms: i64,
    tag: Arc<PipelineTag>,
    /// One record per household alerted within the cooldown (see
    /// [`encode_mark`]).
    marks: Records,
    encoded: Vec<u8>,
    /// The store hash of each assessment's household (reused).
    hashes: Vec<u64>,
}

/// A mark as a record payload: `[priority][count][shard][at]`, varints
/// after the first byte; about 10 bytes where the struct takes 24.
fn encode_mark(m: &AlertMark, out: &mut Vec<u8>) {
    out.clear();
    out.push(m.priority as u8);
    varint::put_u64(out, u64::from(m.count));
    varint::put_i64(out, i64::from(m.shard));
    varint::put_i64(out, m.at);
}

fn decode_mark(payload: &[u8]) -> Option<AlertMark> {
    let (&priority, mut input) = payload.split_first()?;
    let priority = match priority {
        3 => Priority::P1,
        2 => Priority::P2,
        1 => Priority::P3,
        _ => return None,
    };
    Some(AlertMark {
        priority,
        count: varint::get_u64(&mut input)? as u32,
        shard: varint::get_i64(&mut input)? as i32,
        at: varint::get_i64(&mut input)?,
    })
}

impl AlertGate {
    /// A gate with the cooldown of `spec`.
    pub fn new(spec: &PipelineSpec) -> Self {
        AlertGate {
            cooldown_ms: i64::from(spec.alerts.cooldown_days) * DAY_MS,
            window_ms: spec.window.length_ms(),
            tag: Arc::new(PipelineTag {
                name: spec.name.clone(),
                version: spec.version.clone(),
            }),
            marks: Records::default(),
            encoded: Vec::new(),
            hashes: Vec::new(),
        }
    }

    /// Decides which assessments become alerts and renders them: the
    /// engine's path ([`AlertGate::decide`], then [`AlertGate::render`] for
    /// each one sent) for a caller that holds rendered assessments (tests,
    /// benchmarks). `now_ms` is written as `emitted_at`; `shard_of` names
    /// the state shard of a household so its mark moves with its partition.
    pub fn process_batch(
        &mut self,
        assessments: Vec<Assessment>,
        now_ms: i64,
        shard_of: impl Fn(&str) -> i32,
    ) -> GateOutcome {
        let candidates: Vec<Candidate<'_>> = assessments
            .iter()
            .map(|a| Candidate {
                household_id: &a.household_id,
                priority: a.priority,
                window_end: a.window_end,
            })
            .collect();
        let sent = self.decide(&candidates, shard_of);
        let mut out = GateOutcome::default();
        for (a, send) in assessments.into_iter().zip(sent) {
            if send.is_some() {
                out.alerts.push(self.render(a, now_ms));
            } else {
                out.suppressed += 1;
            }
        }
        out
    }

    /// Decides, in order, which candidates become alerts, and records the
    /// mark of each one that does: a candidate is sent when its household
    /// has no mark, escalates, or is past the cooldown. `shard_of` names
    /// the state shard of a household so its mark moves with its partition.
    /// Returns, per candidate, the shard of its household when it is sent
    /// (`None`: held back). [`AlertGate::render`] then makes the alert of
    /// each one sent, so a caller renders reasons only for those.
    pub(crate) fn decide(
        &mut self,
        candidates: &[Candidate<'_>],
        shard_of: impl Fn(&str) -> i32,
    ) -> Vec<Option<i32>> {
        self.hash_all(candidates.iter().map(|c| c.household_id));
        let mut sent = Vec::with_capacity(candidates.len());
        for (i, c) in candidates.iter().enumerate() {
            sent.push(self.judge(i, *c, &shard_of));
        }
        sent
    }

    /// Hashes each household of a batch once, for the look-ahead, the
    /// lookup and the update of [`AlertGate::judge`].
    fn hash_all<'a>(&mut self, households: impl Iterator<Item = &'a str>) {
        self.hashes.clear();
        let marks = &self.marks;
        self.hashes.extend(households.map(|hh| marks.hash(hh)));
    }

    /// Judges `c`, the `i`th household given to [`AlertGate::hash_all`],
    /// and records its mark when it is sent; returns its shard then.
    fn judge(
        &mut self,
        i: usize,
        c: Candidate<'_>,
        shard_of: &impl Fn(&str) -> i32,
    ) -> Option<i32> {
        self.marks.prefetch_chunk(&self.hashes, i);
        let hash = match self.hashes.get(i) {
            Some(&hash) => hash,
            None => self.marks.hash(c.household_id),
        };
        let previous = self
            .marks
            .get_hashed(hash, c.household_id)
            .and_then(|r| decode_mark(r.payload()));
        let send = match previous {
            None => true,
            Some(m) => {
                m.count == 0 || c.priority > m.priority || c.window_end - m.at >= self.cooldown_ms
            }
        };
        if !send {
            return None;
        }
        let mark = AlertMark {
            priority: c.priority,
            at: c.window_end,
            count: previous.map_or(0, |m| m.count) + 1,
            // a household keeps its shard, so only a first mark asks
            shard: previous.map_or_else(|| shard_of(c.household_id), |m| m.shard),
        };
        encode_mark(&mark, &mut self.encoded);
        self.marks.put_payload(hash, c.household_id, &self.encoded);
        Some(mark.shard)
    }

    /// The alert of an assessment that [`AlertGate::decide`] sent; `now_ms`
    /// is the wall clock written as `emitted_at`.
    pub(crate) fn render(&self, a: Assessment, now_ms: i64) -> Alert {
        self.render_hashed(a, now_ms).0
    }

    /// [`AlertGate::render`], with the 128-bit hash the alert's id spells
    /// (what the case stage keeps of it, without reading the hex back).
    pub(crate) fn render_hashed(&self, a: Assessment, now_ms: i64) -> (Alert, u128) {
        let hash = alert_hash(&a.household_id, a.priority, a.evidence);
        let alert = Alert {
            alert_id: hex_id("al-", hash),
            priority: a.priority,
            score: a.score,
            reasons: a
                .reasons
                .into_iter()
                .map(|r| AlertReason {
                    signal: r.signal,
                    category: r.category,
                    detail: r.detail,
                    detail_ko: r.detail_ko,
                    observed_at: r.observed_at,
                    months_overdue: r.months_overdue,
                    amount_krw: r.amount_krw,
                })
                .collect(),
            categories: a.categories,
            first_signal_at: a.first_signal_at,
            last_signal_at: a.last_signal_at,
            emitted_at: now_ms,
            pipeline: Arc::clone(&self.tag),
            household_id: a.household_id,
            dong_code: a.dong_code,
            case: CaseContext::default(),
        };
        (alert, hash)
    }

    /// The pipeline's name and version, as alerts carry them.
    pub(crate) fn tag(&self) -> &Arc<PipelineTag> {
        &self.tag
    }

    /// Last alert sent for `household_id`.
    pub(crate) fn mark(&self, household_id: &str) -> Option<AlertMark> {
        self.marks
            .get(household_id)
            .and_then(|r| decode_mark(r.payload()))
    }

    /// Ids of the marked households: every household whose last assessment
    /// reached a priority (and some whose later ones did not).
    pub(crate) fn marked(&self) -> impl Iterator<Item = &str> {
        self.marks.iter().map(Record::id)
    }

    /// Marks a household found at `priority` by a re-scoring outside the
    /// stream (the daily lists after a change of the scoring SQL), with
    /// `at` its window end, unless it already has a mark. The mark holds no
    /// alert back; it only puts the household among [`Self::marked`].
    pub(crate) fn index_priority(
        &mut self,
        household_id: &str,
        priority: Priority,
        at: i64,
        shard: i32,
    ) {
        let hash = self.marks.hash(household_id);
        if self.marks.get_hashed(hash, household_id).is_some() {
            return;
        }
        let mark = AlertMark {
            priority,
            at,
            count: 0,
            shard,
        };
        encode_mark(&mark, &mut self.encoded);
        self.marks.put_payload(hash, household_id, &self.encoded);
    }

    /// The marks held, household by household, readable.
    #[cfg(test)]
    pub(crate) fn held(&self) -> impl Iterator<Item = (&str, AlertMark)> {
        self.marks
            .iter()
            .filter_map(|r| decode_mark(r.payload()).map(|m| (r.id(), m)))
    }
}

impl StatefulStage for AlertGate {
    const PART: StatePart = StatePart::Marks;

    /// Forgets households whose cooldown ended so long ago that no signal the
    /// window stage can still accept falls within it. Returns how many.
    fn on_watermark(&mut self, watermark: &Watermark) -> usize {
        // a later assessment's window ends at or after the oldest signal that
        // can still be accepted on the household's partition, `low - window`;
        // a mark older than that by the cooldown holds nothing back, unless
        // the next daily list needs it (its count, and that it is marked)
        let held = watermark
            .held_from()
            .map(|from| from.ms() - self.cooldown_ms);
        let horizon = |shard: i32| {
            let by_time = watermark.low(shard)?.ms() - self.window_ms - self.cooldown_ms;
            Some(held.map_or(by_time, |h| by_time.min(h)))
        };
        let before = self.marks.len();
        self.marks.retain(|r| {
            decode_mark(r.payload()).is_some_and(|m| horizon(m.shard).is_none_or(|h| m.at >= h))
        });
        before - self.marks.len()
    }

    fn records(&self) -> impl Iterator<Item = (i32, &Record)> + '_ {
        self.marks
            .iter()
            .map(|r| (decode_mark(r.payload()).map_or(0, |m| m.shard), r))
    }

    /// Holds one mark's record; one that is not a mark is counted as
    /// unreadable and not held.
    fn restore_record(&mut self, held: Record, _: &Restore<'_>) -> Restored {
        if decode_mark(held.payload()).is_some() {
            self.marks.put(held);
            return Restored::default();
        }
        Restored {
            dropped_signals: 0,
            unreadable: 1,
        }
    }

    fn drop_shard(&mut self, shard: i32) -> usize {
        let before = self.marks.len();
        self.marks
            .retain(|r| decode_mark(r.payload()).is_some_and(|m| m.shard != shard));
        before - self.marks.len()
    }

    fn reserve(&mut self, more: usize) {
        self.marks.reserve(more);
    }

    fn len(&self) -> usize {
        self.marks.len()
    }
}

/// The record of one mark (snapshots of an older format are converted to
/// it as they are loaded).
pub(crate) fn mark_record(household_id: &str, mark: &AlertMark) -> Record {
    let mut encoded = Vec::new();
    encode_mark(mark, &mut encoded);
    Record::new(household_id, &encoded)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T06:00:00.000Z`.
///
/// Every alert carries several of these; written digit by digit they cost a
/// tenth of chrono's formatter, which goes through `fmt` item by item.
/// Years outside 0000-9999 (never valid input) fall back to chrono.
pub fn rfc3339(ms: i64) -> String {
    match rfc3339_bytes(ms) {
        Some(out) => String::from_utf8_lossy(&out).into_owned(),
        None => chrono_rfc3339(ms),
    }
}

fn chrono_rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// [`rfc3339`] on the stack; `None` for a year outside 0000-9999.
fn rfc3339_bytes(ms: i64) -> Option<[u8; 24]> {
    let days = ms.div_euclid(crate::definition::DAY_MS);
    let in_day = ms.rem_euclid(crate::definition::DAY_MS);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    out[..10].copy_from_slice(&date_bytes(days)?);
    put_digits(&mut out[11..13], in_day / 3_600_000);
    put_digits(&mut out[14..16], in_day / 60_000 % 60);
    put_digits(&mut out[17..19], in_day / 1000 % 60);
    put_digits(&mut out[20..23], in_day % 1000);
    Some(out)
}

/// Serializes what an `Arc` shares (serde's own impl needs its `rc`
/// feature, which would rebuild every crate that uses serde).
pub(crate) fn shared<T: Serialize + ?Sized, S: Serializer>(
    v: &Arc<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    (**v).serialize(s)
}

/// [`shared`] for each item of a list.
fn shared_each<S: Serializer>(v: &[Arc<str>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|c| &**c))
}

/// Serializes ms since the epoch as [`rfc3339`] text, without a string of
/// its own.
pub(crate) fn as_rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    match rfc3339_bytes(*ms) {
        // ASCII digits and separators only
        Some(out) => s.serialize_str(std::str::from_utf8(&out).unwrap_or_default()),
        None => s.serialize_str(&chrono_rfc3339(*ms)),
    }
}

/// [`as_rfc3339`] of a time that may be absent (`null`).
pub(crate) fn opt_rfc3339<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => as_rfc3339(ms, s),
        None => s.serialize_none(),
    }
}

/// The alert id of a decision: `al-` and 32 hex digits of the FNV-1a 128
/// hash of the household id, the priority and `evidence` (see
/// [`Assessment::evidence`]). Equal ids mean equal alerts apart from
/// `emitted_at` (and what the case state said when it was sent: `due_at`,
/// `times_flagged_before`).
#[cfg(test)]
pub(crate) fn alert_id(household_id: &str, priority: Priority, evidence: u128) -> String {
    hex_id("al-", alert_hash(household_id, priority, evidence))
}

/// The hash an [`alert_id`] spells in hex.
fn alert_hash(household_id: &str, priority: Priority, evidence: u128) -> u128 {
    crate::base::hash::fnv1a128(&[
        household_id.as_bytes(),
        priority.as_str().as_bytes(),
        &evidence.to_le_bytes(),
    ])
}

/// The id of a case update: as [`alert_id`], with the type in the hash, so
/// that it never equals an alert's.
pub(crate) fn case_update_id(household_id: &str, priority: Priority, evidence: u128) -> String {
    let h = crate::base::hash::fnv1a128(&[
        household_id.as_bytes(),
        priority.as_str().as_bytes(),
        &evidence.to_le_bytes(),
        b"case_update",
    ]);
    hex_id("al-", h)
}

/// `prefix` and the 32 hex digits of `h`.
pub(crate) fn hex_id(prefix: &str, h: u128) -> String {
    // by hand: the formatter's padded hex is a fifth of the gate's time
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    for byte in h.to_be_bytes() {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests;
