//! The case stage: what the dong offices did about each household (the
//! outcomes they record), and what that changes: which assessments still
//! become alerts, what an alert says of the household, and which
//! households go to the city team ([`escalation`]).
//!
//! One record per household that was alerted or has an outcome
//! ([`record::CaseRecord`]). The rules come from `[outcomes]` of the
//! pipeline definition: due times on the driver's clock, holds in event
//! time like the cooldown.

pub mod escalation;
pub mod outcome;
pub mod record;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::base::civil::date_bytes;
use crate::base::keyed::{Record, Records};
use crate::definition::{PipelineSpec, DAY_MS};
use crate::stages::alert::{Alert, AlertType, CaseStatus, LastOutcome, PipelineTag};
use crate::stages::decode::{Reject, RejectClass};
use crate::stages::score::Priority;
use crate::stages::{Restore, Restored, StatePart, StatefulStage, Watermark};
use escalation::{escalation_id, Escalation, EscalationReason, OutcomeSoFar};
use outcome::{CloseReason, ContactResult, NotApplicableReason, Outcome, OutcomeKind, Said, Track};
use record::{CaseRecord, CaseView, FoldRules, HeldOutcome, KeptAlert};

/// Outcomes kept per household at most (the oldest go first).
const MAX_OUTCOMES: usize = 64;

/// What the case state says of one assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Through the cooldown as usual, at this priority (raised by one for
    /// an unreachable household).
    Gate(Priority),
    /// Held back by an outcome (declined, no need, support linked, moved).
    Hold,
    /// Recorded deceased: its signals are dropped, nothing is sent.
    Drop,
    /// In case management and its priority or categories changed: a case
    /// update goes to the office.
    CaseUpdate,
    /// In case management, nothing new.
    Quiet,
}

/// What recording one outcome did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The outcome was held already (a re-send): nothing changed.
    pub duplicate: bool,
    /// Escalations it caused (unreachable; overdue for a contact that came
    /// after its due time).
    pub escalations: Vec<Escalation>,
    /// Alerts it answered as their first contact (most contacts answer
    /// one or two: held inline, as the outcome's own fields are).
    pub first_contacts: smallvec::SmallVec<[FirstContact; 2]>,
}

/// An alert's first contact, for the operations view.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstContact {
    /// The alert's dong, as a number (see [`FirstContact::dong_code`]).
    pub dong: u64,
    /// Its priority.
    pub priority: Priority,
    /// Seconds from its `emitted_at` to the contact's `recorded_at`.
    pub seconds: f64,
    /// Recorded at or before the alert's due time.
    pub in_time: bool,
    /// `recorded_at`, ms.
    pub recorded_at: i64,
}

impl FirstContact {
    /// The alert's dong code.
    pub fn dong_code(&self) -> String {
        dong_text(self.dong)
    }
}

/// A household's case as a daily list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListCase {
    /// Status at the cut-off.
    pub status: CaseStatus,
    /// Its Korean label (`소재파악 필요`).
    pub status_ko: String,
    /// Korean label and local date of the newest outcome.
    pub last_outcome: Option<(String, String)>,
    /// When a first contact is due for its oldest open alert, ms.
    pub due_at: Option<i64>,
    /// That due time has passed without a contact.
    pub overdue: bool,
    /// In case management since, ms.
    pub case_opened_at: Option<i64>,
    /// Priority and categories when the case opened, to tell whether its
    /// situation worsened.
    pub opened_with: Option<(Priority, u8)>,
}

/// An alert waiting for its first contact.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlert {
    /// Its id (`al-` and 32 hex digits).
    pub alert_id: String,
    /// Its priority.
    pub priority: Priority,
    /// When it was sent (driver's clock), ms.
    pub emitted_at: i64,
    /// When a first contact is due, ms.
    pub due_at: i64,
}

/// A household's case as the offices' work queue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkCase {
    /// The dong serving it now.
    pub dong: String,
    /// Dongs of its open alerts other than `dong` (it moved): they still
    /// see it.
    pub other_dongs: Vec<String>,
    /// Its status.
    pub status: CaseStatus,
    /// The status's Korean label.
    pub status_ko: String,
    /// Priority of its newest alert.
    pub priority: Option<Priority>,
    /// Categories of its newest alert.
    pub categories: Vec<String>,
    /// Alerts waiting for a first contact, oldest first.
    pub open_alerts: Vec<OpenAlert>,
    /// The outcomes that count, oldest first.
    pub outcomes: Vec<OutcomeSoFar>,
    /// In case management since, ms.
    pub in_case_since: Option<i64>,
    /// Alerts sent for it so far.
    pub times_flagged: u32,
}

/// Alerts waiting for a first contact (see [`CaseBook::open_counts`]).
#[derive(Debug, Default)]
pub struct OpenCounts {
    /// Per dong, priority and household status.
    pub open: BTreeMap<(String, Priority, CaseStatus), i64>,
    /// Past their due time, per dong.
    pub overdue: BTreeMap<String, i64>,
    /// Households that cannot be found, per dong.
    pub unreachable: BTreeMap<String, i64>,
}

struct Rules {
    fold: FoldRules,
    /// Due time per priority (P3, P2, P1 by code - 1), ms.
    due_ms: [i64; 3],
    hold_ms: i64,
    repeat_alerts: u32,
    repeat_within_ms: i64,
    retention_ms: i64,
    city: u64,
    labels: BTreeMap<String, String>,
    /// [`CaseBook::kind_text`] and label of every outcome kind and value,
    /// at [`text_slot`].
    texts: Vec<(String, String)>,
    utc_offset_ms: i64,
}

/// Where an outcome's texts are in [`Rules::texts`]: kind and value codes
/// are four bits each, as a record keeps them.
fn text_slot(kind: OutcomeKind, detail: u8) -> usize {
    usize::from(kind.code() & 0xf) << 4 | usize::from(detail & 0xf)
}

impl Rules {
    fn due(&self, p: Priority) -> i64 {
        self.due_ms[usize::from(p as u8 - 1)]
    }
}

/// The case stage.
pub struct CaseBook {
    rules: Rules,
    categories: Vec<String>,
    tag: Arc<PipelineTag>,
    records: Records,
    /// The [`Records::hash`] of every household with more than alerts in
    /// its record (an outcome, a move, a case): the only ones an
    /// assessment needs judged for. Far fewer than the records, so the
    /// look for each assessment stays in cache. Grows with [`CaseBook::put`]
    /// and is made again when records go.
    judging: std::collections::HashSet<u64, crate::base::hash::FastState>,
    /// The hashes of the households a loop of the lane is about to look at
    /// ([`CaseBook::look_ahead`]).
    ahead: Vec<u64>,
    encoded: Vec<u8>,
    /// The due times of open alerts not yet escalated, earliest first,
    /// with the [`Records::hash`] of their households (rebuilt from the
    /// records on a restore): the timer looks at the households whose time
    /// came, not at every one.
    due: std::collections::BinaryHeap<std::cmp::Reverse<(i64, u64)>>,
    /// No record's last activity is older than this (as of the last pass
    /// of [`StatefulStage::on_watermark`]; records only get newer): while the
    /// retention horizon has not passed it, nothing can expire.
    oldest_activity: i64,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn dong_number(code: &str) -> u64 {
    code.parse().unwrap_or(0)
}

fn dong_text(code: u64) -> String {
    format!("{code:010}")
}

/// Whether a contact recorded at `recorded_at` answers an alert whose
/// newest signal was on `day`: it came after the signals.
fn answers(recorded_at: i64, day: i32) -> bool {
    recorded_at >= i64::from(day) * DAY_MS
}

/// 32 bits of the hash of an outcome id (0 is kept for "none").
fn outcome_key(id: &str) -> u32 {
    (crate::base::hash::fnv1a64(&[id.as_bytes()]) as u32).max(1)
}

impl CaseBook {
    /// A case stage with the `[outcomes]` rules of `spec`; `tag` names the
    /// pipeline in escalations.
    pub fn new(spec: &PipelineSpec, tag: Arc<PipelineTag>) -> Self {
        let o = &spec.outcomes;
        CaseBook {
            rules: Rules {
                fold: FoldRules {
                    attempts: o.unreachable_attempts,
                    after_ms: ms(o.unreachable_after),
                },
                due_ms: [ms(o.due_p3), ms(o.due_p2), ms(o.due_p1)],
                hold_ms: ms(o.hold),
                repeat_alerts: o.repeat_alerts,
                repeat_within_ms: ms(o.repeat_within),
                retention_ms: ms(o.retention),
                city: dong_number(&o.city_code),
                labels: o.labels_ko.clone(),
                texts: Self::all_texts(&o.labels_ko),
                utc_offset_ms: i64::from(spec.lists.utc_offset_hours) * 3_600_000,
            },
            categories: spec.categories(),
            tag,
            records: Records::default(),
            judging: Default::default(),
            ahead: Vec::new(),
            encoded: Vec::new(),
            due: Default::default(),
            oldest_activity: i64::MIN,
        }
    }

    /// The bit set of `names` over the pipeline's categories.
    pub fn category_set<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> u8 {
        names
            .into_iter()
            .filter_map(|n| self.categories.iter().position(|c| c == n))
            .fold(0u8, |set, i| set | 1u8.checked_shl(i as u32).unwrap_or(0))
    }

    /// Whether an assessment of the household needs a [`CaseBook::judge`]:
    /// it has an outcome, a move or a case (a household with nothing but
    /// alerts, or none, goes straight to the cooldown).
    pub fn needs_judging(&self, household_id: &str) -> bool {
        // most deployments' households have no outcome: no hash to make
        !self.judging.is_empty() && self.judging.contains(&self.records.hash(household_id))
    }

    /// Names the households a loop is about to look at, in order, so that
    /// [`CaseBook::prefetch_at`] can ask the memory for their records ahead
    /// of the looks (with millions of records each look otherwise waits).
    pub fn look_ahead<'a>(&mut self, households: impl Iterator<Item = &'a str>) {
        self.ahead.clear();
        let records = &self.records;
        self.ahead.extend(households.map(|hh| records.hash(hh)));
    }

    /// Called before the loop's `at`-th look (see [`CaseBook::look_ahead`]).
    pub fn prefetch_at(&self, at: usize) {
        self.records.prefetch_chunk(&self.ahead, at);
    }

    /// The record of a household.
    pub fn record(&self, household_id: &str) -> Option<CaseRecord> {
        self.records
            .get(household_id)
            .and_then(|r| CaseRecord::decode(r.payload()))
    }

    fn view(&self, r: &CaseRecord) -> CaseView {
        r.view(self.rules.fold)
    }

    fn put(&mut self, household_id: &str, r: &CaseRecord) {
        let hash = self.records.hash(household_id);
        self.put_hashed(hash, household_id, r);
    }

    /// [`CaseBook::put`] for a household whose [`Records::hash`] is known.
    fn put_hashed(&mut self, hash: u64, household_id: &str, r: &CaseRecord) {
        // a backlog may bring an outcome older than every record held
        self.oldest_activity = self.oldest_activity.min(r.last_activity());
        r.encode(&mut self.encoded);
        if !record::only_alerts(&self.encoded) {
            self.judging.insert(hash);
        }
        self.records.put_payload(hash, household_id, &self.encoded);
    }

    /// Makes [`CaseBook::judging`] again from the records (after some went:
    /// another household may share a gone one's hash).
    fn rejudge(&mut self) {
        let records = &self.records;
        self.judging = records
            .iter()
            .filter(|r| !record::only_alerts(r.payload()))
            .map(|r| records.hash(r.id()))
            .collect();
    }

    /// Records one outcome (of input partition `shard`), or says why it
    /// cannot be: `wrong_office` from an office that never served the
    /// household, `unknown_alert` for an alert not in its kept history, a
    /// withdrawal of an outcome it does not hold. `now_ms` is the driver's
    /// clock, written in the escalations it causes.
    pub fn apply(&mut self, o: &Outcome, shard: i32, now_ms: i64) -> Result<Applied, Reject> {
        let id = outcome_key(&o.outcome_id);
        let office = dong_number(&o.dong_code);
        let hash = self.records.hash(&o.household_id);
        let known = self
            .records
            .get_hashed(hash, &o.household_id)
            .and_then(|r| CaseRecord::decode(r.payload()));
        let fresh = known.is_none();
        let mut r = known.unwrap_or_else(|| CaseRecord::new(shard, office));
        if r.has_outcome(id) {
            return Ok(Applied {
                duplicate: true,
                ..Applied::default()
            });
        }
        let from_city = office == self.rules.city;
        if !fresh && !from_city && !r.served_by(office) {
            return Err(Reject::new(
                RejectClass::WrongOffice,
                "the outcome comes from a dong office that does not serve this household (nor did for any alert kept); record it from the household's current dong or the city team",
            ));
        }
        if let Some(alert) = o.alert_id {
            if !r.alerts.iter().any(|a| a.id == alert) {
                return Err(Reject::new(
                    RejectClass::UnknownAlert,
                    "alert_id names no alert in the household's kept history; send the alert_id of an alert sagak sent for this household, or leave it out",
                ));
            }
        }
        let mut target = 0;
        if let Said::Withdrawn(withdraws) = &o.said {
            target = outcome_key(withdraws);
            let Some(t) = r.outcomes.iter().find(|h| h.id == target) else {
                return Err(Reject::new(
                    RejectClass::UnknownOutcome,
                    "withdraws names no outcome held for this household; send the outcome_id of the outcome to withdraw",
                ));
            };
            let deceased = (t.kind == OutcomeKind::NotApplicable
                && t.detail == NotApplicableReason::Deceased.code())
                || (t.kind == OutcomeKind::CaseClosed && t.detail == CloseReason::Deceased.code());
            if deceased && !from_city {
                return Err(Reject::new(
                    RejectClass::WrongOffice,
                    "only the city team may withdraw a deceased; ask it to send the withdrawal",
                ));
            }
        }
        let (priority, categories) = r
            .last_alert()
            .map_or((Priority::P1, u8::MAX), |a| (a.priority, a.categories));
        let recorded_at = o.recorded_at.div_euclid(1000) * 1000;
        r.outcomes.push(HeldOutcome {
            id,
            kind: o.said.kind(),
            detail: o.said.detail(),
            priority,
            categories,
            recorded_at,
            target,
        });
        if r.outcomes.len() > MAX_OUTCOMES {
            r.outcomes.remove(0);
        }
        let mut applied = Applied::default();
        let contact = matches!(o.said, Said::Contact(..) | Said::Counselled);
        if contact {
            // one contact answers every open alert whose signals it came
            // after (event time, so a replay after a crash decides the same
            // whichever of the alert and the contact it reads first), and
            // the alert it names
            let mut late = Vec::new();
            for a in &mut r.alerts {
                let Some(emitted) = a.open_since else {
                    continue;
                };
                if !answers(o.recorded_at, a.day) && o.alert_id != Some(a.id) {
                    continue;
                }
                a.open_since = None;
                let due = emitted + self.rules.due(a.priority);
                applied.first_contacts.push(FirstContact {
                    dong: a.dong.unwrap_or(r.dong),
                    priority: a.priority,
                    seconds: (o.recorded_at - emitted).max(0) as f64 / 1000.0,
                    in_time: o.recorded_at <= due,
                    recorded_at: o.recorded_at,
                });
                if o.recorded_at > due && !a.overdue_sent {
                    a.overdue_sent = true;
                    late.push((a.id, a.priority, due));
                }
            }
            for (alert, p, due) in late {
                let e = self.escalation(
                    &o.household_id,
                    &r,
                    EscalationReason::Overdue,
                    &alert.to_le_bytes(),
                    vec![alert],
                    Some(p),
                    due,
                    now_ms,
                );
                applied.escalations.push(e);
            }
        }
        match &o.said {
            Said::NotApplicable(NotApplicableReason::MovedOut)
            | Said::CaseClosed(CloseReason::MovedOut) => r.moved_from = r.dong,
            Said::CaseOpened(_) => {
                let last = r.last_alert().map(|a| (a.priority, a.categories));
                r.baseline = last;
                r.opened_with = last;
            }
            Said::Withdrawn(_) => {
                // a withdrawn move lets the old dong's alerts through again
                if let Some(t) = r.outcomes.iter().find(|h| h.id == target) {
                    let moved = t.detail
                        == if t.kind == OutcomeKind::CaseClosed {
                            CloseReason::MovedOut.code()
                        } else {
                            NotApplicableReason::MovedOut.code()
                        };
                    if moved
                        && matches!(t.kind, OutcomeKind::CaseClosed | OutcomeKind::NotApplicable)
                    {
                        r.moved_from = 0;
                    }
                }
            }
            _ => {}
        }
        let view = self.view(&r);
        if let Some((since, first)) = view.unreachable {
            if r.unreachable_sent != first {
                r.unreachable_sent = first;
                let alerts = r.alerts.iter().map(|a| a.id).collect();
                let priority = r.last_alert().map(|a| a.priority);
                let e = self.escalation(
                    &o.household_id,
                    &r,
                    EscalationReason::Unreachable,
                    &first.to_le_bytes(),
                    alerts,
                    priority,
                    since,
                    now_ms,
                );
                applied.escalations.push(e);
            }
        }
        self.put_hashed(hash, &o.household_id, &r);
        Ok(applied)
    }

    /// What the case state says of an assessment of `household_id` at
    /// `priority` with the categories `categories` (a bit set, see
    /// [`CaseBook::category_set`]), from `dong`, whose window ends at
    /// `window_end`; with the household's decoded record when it has one:
    /// an assessment the gate then sends passes it to
    /// [`CaseBook::on_sent`], which need not look it up and decode it
    /// again.
    pub fn judge(
        &self,
        household_id: &str,
        priority: Priority,
        categories: u8,
        dong: &str,
        window_end: i64,
    ) -> (Verdict, Option<CaseRecord>) {
        let held = self.records.get(household_id);
        if held.is_none_or(|h| record::only_alerts(h.payload())) {
            // no outcome: nothing but the cooldown decides
            return (Verdict::Gate(priority), None);
        }
        let Some(r) = held.and_then(|h| CaseRecord::decode(h.payload())) else {
            return (Verdict::Gate(priority), None);
        };
        let verdict = self.verdict(&r, priority, categories, dong, window_end);
        (verdict, Some(r))
    }

    fn verdict(
        &self,
        r: &CaseRecord,
        priority: Priority,
        categories: u8,
        dong: &str,
        window_end: i64,
    ) -> Verdict {
        let view = self.view(r);
        if view.deceased_at.is_some() {
            return Verdict::Drop;
        }
        if view.in_case.is_some() {
            return if r.baseline == Some((priority, categories)) {
                Verdict::Quiet
            } else {
                Verdict::CaseUpdate
            };
        }
        if r.moved_from != 0 && dong_number(dong) == r.moved_from {
            return Verdict::Hold;
        }
        let priority = if view.unreachable.is_some() {
            priority.raised()
        } else {
            priority
        };
        if self.held(&view, priority, categories, window_end) {
            return Verdict::Hold;
        }
        Verdict::Gate(priority)
    }

    /// Whether an outcome holds back an assessment: one at the same or a
    /// lower priority, with no new category, whose window ends within the
    /// hold after the outcome was recorded.
    fn held(&self, view: &CaseView, priority: Priority, categories: u8, window_end: i64) -> bool {
        view.holds.iter().any(|&(at, p, cats)| {
            priority <= p && categories & !cats == 0 && window_end < at + self.rules.hold_ms
        })
    }

    /// Fills in what the case state says of an alert about to be sent
    /// (`id` is the hash its id spells, `scored` the priority the scoring
    /// gave), and keeps it in the household's history. Returns the
    /// `repeatedly_flagged` escalation it causes, if any. A replayed alert
    /// (same id) is not kept twice. `known` is the household's record when
    /// the caller holds it as [`CaseBook::judge`] gave it in the same batch
    /// (nothing wrote it since); else it is looked up.
    pub fn on_sent(
        &mut self,
        alert: &mut Alert,
        id: u128,
        scored: Priority,
        shard: i32,
        known: Option<CaseRecord>,
    ) -> Option<Escalation> {
        let dong = dong_number(&alert.dong_code);
        let categories = self.category_set(alert.categories.iter().map(|c| &**c));
        // kept to the second, as the record keeps it
        let emitted = alert.emitted_at.div_euclid(1000) * 1000;
        let due = emitted + self.rules.due(alert.priority);
        let hash = self.records.hash(&alert.household_id);
        let held = known.or_else(|| {
            self.records
                .get_hashed(hash, &alert.household_id)
                .and_then(|r| CaseRecord::decode(r.payload()))
        });
        let Some(mut r) = held else {
            // most alerted households have no history: nothing to fold
            let mut r = CaseRecord::new(shard, dong);
            r.flagged = 1;
            r.alerts.push(KeptAlert {
                id,
                day: alert.last_signal_at.div_euclid(DAY_MS) as i32,
                priority: alert.priority,
                categories,
                dong: None,
                open_since: Some(emitted),
                overdue_sent: false,
            });
            alert.case = crate::stages::alert::CaseContext {
                due_at: Some(due),
                scored_priority: (scored != alert.priority).then_some(scored),
                ..Default::default()
            };
            self.note_due(due, hash);
            self.put_hashed(hash, &alert.household_id, &r);
            return None;
        };
        let view = self.view(&r);
        alert.case = crate::stages::alert::CaseContext {
            kind: AlertType::Alert,
            status: self.status(&view, &r, alert.last_signal_at),
            due_at: Some(due),
            times_flagged_before: r.flagged,
            last_outcome: self.last_outcome(&view),
            reopened: view.closed > 0,
            times_closed: view.closed,
            recurrence: view.supported,
            scored_priority: (scored != alert.priority).then_some(scored),
        };
        if let Some(kept) = r.alerts.iter().find(|a| a.id == id) {
            // the same alert again (a replay after a restart): it keeps
            // the due time it was first given
            alert.case.due_at = kept.open_since.map(|e| e + self.rules.due(kept.priority));
            alert.case.times_flagged_before = r.flagged.saturating_sub(1);
            return None;
        }
        if r.dong != dong {
            let old = r.dong;
            for a in &mut r.alerts {
                a.dong.get_or_insert(old);
            }
            r.dong = dong;
        }
        if r.moved_from != 0 && r.moved_from != dong {
            r.moved_from = 0;
        }
        let day = alert.last_signal_at.div_euclid(DAY_MS) as i32;
        // a contact already recorded after its signals answers it (the
        // contact was read first, as a replay may)
        let answered = view.contact_at.is_some_and(|at| answers(at, day));
        r.alerts.push(KeptAlert {
            id,
            day,
            priority: alert.priority,
            categories,
            dong: None,
            open_since: (!answered).then_some(emitted),
            overdue_sent: false,
        });
        r.flagged += 1;
        // keep the alerts within the repeat span, and every one still open
        let within = self.rules.repeat_within_ms;
        r.alerts
            .retain(|a| a.open_since.is_some() || i64::from(day - a.day) * DAY_MS <= within);
        self.note_due(due, hash);
        let escalation = self.repeated(&alert.household_id, &mut r, &view, alert.emitted_at);
        self.put_hashed(hash, &alert.household_id, &r);
        escalation
    }

    /// Remembers that an open alert of the household whose
    /// [`Records::hash`] is `hash` is due at `due`.
    fn note_due(&mut self, due: i64, hash: u64) {
        self.due.push(std::cmp::Reverse((due, hash)));
    }

    /// The `repeatedly_flagged` escalation a newly kept alert makes, if the
    /// last `repeat_alerts` alerts fall within the span with no engagement
    /// since the first of them.
    fn repeated(
        &self,
        household_id: &str,
        r: &mut CaseRecord,
        view: &CaseView,
        now_ms: i64,
    ) -> Option<Escalation> {
        let n = self.rules.repeat_alerts as usize;
        let newest = r.alerts.last()?.day;
        let within: Vec<&KeptAlert> = r
            .alerts
            .iter()
            .filter(|a| i64::from(newest - a.day) * DAY_MS <= self.rules.repeat_within_ms)
            .collect();
        if within.len() < n || r.flagged - r.repeat_at < self.rules.repeat_alerts {
            return None;
        }
        let counted = &within[within.len() - n..];
        let first = i64::from(counted[0].day) * DAY_MS;
        if view.engaged_at.is_some_and(|at| at >= first) {
            return None;
        }
        let ids: Vec<u128> = counted.iter().map(|a| a.id).collect();
        let last = ids[ids.len() - 1];
        let priority = r.last_alert().map(|a| a.priority);
        r.repeat_at = r.flagged;
        Some(self.escalation(
            household_id,
            r,
            EscalationReason::RepeatedlyFlagged,
            &last.to_le_bytes(),
            ids,
            priority,
            first,
            now_ms,
        ))
    }

    /// Fills in a case update for a household in case management and makes
    /// what it says the office's new baseline; `id` is the hash the alert's
    /// id spells.
    pub fn on_case_update(&mut self, alert: &mut Alert, id: u128, shard: i32) {
        let dong = dong_number(&alert.dong_code);
        let mut r = self
            .record(&alert.household_id)
            .unwrap_or_else(|| CaseRecord::new(shard, dong));
        let view = self.view(&r);
        let categories = self.category_set(alert.categories.iter().map(|c| &**c));
        alert.case = crate::stages::alert::CaseContext {
            kind: AlertType::CaseUpdate,
            status: CaseStatus::InCase,
            due_at: None,
            times_flagged_before: r.flagged,
            last_outcome: self.last_outcome(&view),
            reopened: false,
            times_closed: view.closed,
            recurrence: view.supported,
            scored_priority: None,
        };
        alert.alert_id =
            crate::stages::alert::case_update_id(&alert.household_id, alert.priority, id);
        r.baseline = Some((alert.priority, categories));
        self.put(&alert.household_id, &r);
    }

    /// The household's status at `at` (event time, for holds).
    fn status(&self, view: &CaseView, r: &CaseRecord, at: i64) -> CaseStatus {
        if view.in_case.is_some() {
            CaseStatus::InCase
        } else if view.unreachable.is_some() {
            CaseStatus::Unreachable
        } else if view
            .last
            .is_some_and(|(k, ..)| k == OutcomeKind::CaseClosed)
        {
            CaseStatus::Closed
        } else if r.moved_from != 0
            || view
                .holds
                .iter()
                .any(|&(held_at, ..)| at < held_at + self.rules.hold_ms)
        {
            // held at this priority, or held below it and sent past it
            CaseStatus::Held
        } else if view.contact_at.is_some() {
            CaseStatus::Contacted
        } else {
            CaseStatus::New
        }
    }

    /// The wire name of an outcome with its value (`contact_attempted/no_answer`).
    pub fn kind_text(kind: OutcomeKind, detail: u8) -> String {
        let value = match kind {
            OutcomeKind::ContactAttempted => ContactResult::from_code(detail).map(|v| v.as_str()),
            OutcomeKind::CaseOpened => Track::from_code(detail).map(|v| v.as_str()),
            OutcomeKind::NotApplicable => {
                NotApplicableReason::from_code(detail).map(|v| v.as_str())
            }
            OutcomeKind::CaseClosed => CloseReason::from_code(detail).map(|v| v.as_str()),
            _ => None,
        };
        match value {
            Some(v) => format!("{}/{v}", kind.as_str()),
            None => kind.as_str().to_string(),
        }
    }

    /// The Korean label of an outcome with its value (`연락 시도 (응답 없음)`),
    /// from the pipeline's labels.
    fn make_label(labels: &BTreeMap<String, String>, kind: OutcomeKind, detail: u8) -> String {
        let text = Self::kind_text(kind, detail);
        let mut parts = text.split('/');
        let word = |name: &str| {
            labels
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string())
        };
        let head = word(parts.next().unwrap_or_default());
        match parts.next() {
            Some(value) => format!("{head} ({})", word(value)),
            None => head,
        }
    }

    /// [`Rules::texts`] for the pipeline's labels.
    fn all_texts(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut texts = vec![Default::default(); 256];
        for &kind in OutcomeKind::ALL {
            for detail in 0..16 {
                texts[text_slot(kind, detail)] = (
                    Self::kind_text(kind, detail),
                    Self::make_label(labels, kind, detail),
                );
            }
        }
        texts
    }

    /// [`CaseBook::kind_text`] and the Korean label of an outcome, made once
    /// (every alert of a household with outcomes carries its last one).
    fn texts(&self, kind: OutcomeKind, detail: u8) -> &(String, String) {
        &self.rules.texts[text_slot(kind, detail)]
    }

    /// The Korean label of a status (`소재파악 필요`).
    pub fn status_label(&self, status: CaseStatus) -> String {
        self.rules
            .labels
            .get(status.as_str())
            .cloned()
            .unwrap_or_else(|| status.as_str().to_string())
    }

    fn local_date(&self, ms: i64) -> String {
        let days = (ms + self.rules.utc_offset_ms).div_euclid(DAY_MS);
        date_bytes(days)
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default()
    }

    fn last_outcome(&self, view: &CaseView) -> Option<LastOutcome> {
        view.last.map(|(kind, detail, at)| {
            let (kind, label) = self.texts(kind, detail).clone();
            LastOutcome {
                kind,
                label,
                date: self.local_date(at),
            }
        })
    }

    /// The outcomes that count, with their labels, oldest first.
    fn outcomes_so_far(&self, r: &CaseRecord) -> Vec<OutcomeSoFar> {
        r.live_outcomes()
            .into_iter()
            .map(|o| {
                let (kind, label) = self.texts(o.kind, o.detail).clone();
                OutcomeSoFar {
                    kind,
                    label,
                    recorded_at: o.recorded_at,
                }
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn escalation(
        &self,
        household_id: &str,
        r: &CaseRecord,
        reason: EscalationReason,
        about: &[u8],
        alerts: Vec<u128>,
        priority: Option<Priority>,
        since: i64,
        now_ms: i64,
    ) -> Escalation {
        Escalation {
            escalation_id: escalation_id(reason, household_id, about),
            reason,
            household_id: household_id.to_string(),
            dong_code: dong_text(r.dong),
            alert_ids: alerts
                .into_iter()
                .map(|a| crate::stages::alert::hex_id("al-", a))
                .collect(),
            priority,
            since,
            times_flagged: r.flagged,
            outcomes: self.outcomes_so_far(r),
            emitted_at: now_ms,
            pipeline: Arc::clone(&self.tag),
        }
    }

    /// The `overdue` escalations due by `now_ms` (driver's clock): one per
    /// alert past its due time without a first contact, once.
    pub fn overdue(&mut self, now_ms: i64) -> Vec<Escalation> {
        let mut out = Vec::new();
        let mut households = Vec::new();
        while self.due.peek().is_some_and(|d| d.0 .0 < now_ms) {
            let Some(std::cmp::Reverse((_, hash))) = self.due.pop() else {
                break;
            };
            // every household of that hash (almost always one) is looked at
            households.extend(self.records.with_hash(hash).map(|r| r.id().to_owned()));
        }
        for household in households {
            // answered, escalated, evicted or moved away meanwhile: nothing
            let Some(mut r) = self.record(&household) else {
                continue;
            };
            let mut due_now = Vec::new();
            for a in &mut r.alerts {
                let (Some(emitted), false) = (a.open_since, a.overdue_sent) else {
                    continue;
                };
                let due = emitted + self.rules.due(a.priority);
                if now_ms > due {
                    a.overdue_sent = true;
                    due_now.push((a.id, a.priority, due));
                }
            }
            if due_now.is_empty() {
                continue;
            }
            for (id, p, due) in due_now {
                out.push(self.escalation(
                    &household,
                    &r,
                    EscalationReason::Overdue,
                    &id.to_le_bytes(),
                    vec![id],
                    Some(p),
                    due,
                    now_ms,
                ));
            }
            self.put(&household, &r);
        }
        out
    }

    /// The case of a household as the daily list of `as_of_ms` shows it.
    pub fn list_case(&self, household_id: &str, as_of_ms: i64) -> Option<ListCase> {
        let r = self.record(household_id)?;
        let view = self.view(&r);
        let open = r
            .alerts
            .iter()
            .filter_map(|a| a.open_since.map(|e| e + self.rules.due(a.priority)))
            .min();
        let status = self.status(&view, &r, as_of_ms);
        Some(ListCase {
            status,
            status_ko: self.status_label(status),
            last_outcome: view
                .last
                .map(|(k, d, at)| (self.texts(k, d).1.clone(), self.local_date(at))),
            due_at: open,
            overdue: open.is_some_and(|due| as_of_ms > due),
            case_opened_at: view.in_case,
            opened_with: r.opened_with,
        })
    }

    /// A household's case record as it is held (compact bytes): what the
    /// web front keeps, rendered only when a page shows it.
    pub fn payload(&self, household_id: &str) -> Option<&[u8]> {
        self.records.get(household_id).map(|r| r.payload())
    }

    /// The records worth a place in the work queue at `now_ms`: an alert
    /// waiting for a first contact, unreachable, in case management, or
    /// any activity within `recent_ms`.
    pub fn work_payloads(
        &self,
        now_ms: i64,
        recent_ms: i64,
    ) -> Vec<(String, std::sync::Arc<[u8]>)> {
        let mut out = Vec::new();
        for held in self.records.iter() {
            let Some(r) = CaseRecord::decode(held.payload()) else {
                continue;
            };
            let open = r.alerts.iter().any(|a| a.open_since.is_some());
            if !open && r.last_activity() < now_ms - recent_ms {
                let view = self.view(&r);
                if view.in_case.is_none() && view.unreachable.is_none() {
                    continue;
                }
            }
            out.push((held.id().to_string(), std::sync::Arc::from(held.payload())));
        }
        out
    }

    /// The dongs that see a record: the one serving the household now,
    /// then those its open alerts were addressed to.
    pub fn dongs_of(payload: &[u8]) -> Vec<String> {
        let Some(r) = CaseRecord::decode(payload) else {
            return Vec::new();
        };
        let mut dongs = vec![dong_text(r.dong)];
        dongs.extend(Self::other_dongs(&r));
        dongs
    }

    /// The dongs other than the household's own that its open alerts were
    /// addressed to (it moved), in code order.
    fn other_dongs(r: &CaseRecord) -> Vec<String> {
        let mut other: Vec<String> = r
            .alerts
            .iter()
            .filter(|a| a.open_since.is_some())
            .filter_map(|a| a.dong)
            .filter(|&d| d != r.dong)
            .map(dong_text)
            .collect();
        other.sort();
        other.dedup();
        other
    }

    /// The case a record's bytes hold, as the offices' work queue shows it
    /// at `now_ms`.
    pub fn work_case(&self, payload: &[u8], now_ms: i64) -> Option<WorkCase> {
        CaseRecord::decode(payload).map(|r| self.work_of(&r, now_ms))
    }

    fn work_of(&self, r: &CaseRecord, now_ms: i64) -> WorkCase {
        let view = self.view(r);
        let status = self.status(&view, r, now_ms);
        let last = r.last_alert();
        WorkCase {
            dong: dong_text(r.dong),
            other_dongs: Self::other_dongs(r),
            status,
            status_ko: self.status_label(status),
            priority: last.map(|a| a.priority),
            categories: last
                .map(|a| {
                    self.categories
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| a.categories & (1 << i) != 0)
                        .map(|(_, c)| c.clone())
                        .collect()
                })
                .unwrap_or_default(),
            open_alerts: r
                .alerts
                .iter()
                .filter_map(|a| {
                    let since = a.open_since?;
                    Some(OpenAlert {
                        alert_id: crate::stages::alert::hex_id("al-", a.id),
                        priority: a.priority,
                        emitted_at: since,
                        due_at: since + self.rules.due(a.priority),
                    })
                })
                .collect(),
            outcomes: self.outcomes_so_far(r),
            in_case_since: view.in_case,
            times_flagged: r.flagged,
        }
    }

    /// Households in case management, with the shard each belongs to.
    pub fn in_case(&self) -> impl Iterator<Item = &str> {
        self.records.iter().filter_map(move |held| {
            let r = CaseRecord::decode(held.payload())?;
            self.view(&r).in_case.map(|_| held.id())
        })
    }

    /// Open alerts per dong, priority and status, and overdue alerts per
    /// dong at `now_ms`: what the operations metrics show.
    pub fn open_counts(&self, now_ms: i64) -> OpenCounts {
        let mut counts = OpenCounts::default();
        let OpenCounts {
            open,
            overdue,
            unreachable,
        } = &mut counts;
        for held in self.records.iter() {
            let Some(r) = CaseRecord::decode(held.payload()) else {
                continue;
            };
            let view = self.view(&r);
            if view.unreachable.is_some() && view.in_case.is_none() {
                *unreachable.entry(dong_text(r.dong)).or_insert(0) += 1;
            }
            for a in &r.alerts {
                let Some(emitted) = a.open_since else {
                    continue;
                };
                let dong = dong_text(a.dong.unwrap_or(r.dong));
                let status = self.status(&view, &r, now_ms);
                *open.entry((dong.clone(), a.priority, status)).or_insert(0) += 1;
                if now_ms > emitted + self.rules.due(a.priority) {
                    *overdue.entry(dong).or_insert(0) += 1;
                }
            }
        }
        counts
    }
}

impl StatefulStage for CaseBook {
    const PART: StatePart = StatePart::Cases;

    /// Forgets households nothing happened to for the retention span of
    /// event time (their partition's low watermark), unless they are in
    /// case management or still wait for a first contact.
    fn on_watermark(&mut self, watermark: &Watermark) -> usize {
        let retention = self.rules.retention_ms;
        let fold = self.rules.fold;
        // the oldest horizon of any partition: before it passes the oldest
        // activity, a pass over every record would keep them all
        let horizon = watermark
            .partitions()
            .filter_map(|p| watermark.low(p))
            .min()
            .map(|low| low - retention);
        if horizon.is_none_or(|h| h <= self.oldest_activity) {
            return 0;
        }
        let before = self.records.len();
        let mut oldest = i64::MAX;
        self.records.retain(|held| {
            let Some(r) = CaseRecord::decode(held.payload()) else {
                return false;
            };
            let activity = r.last_activity();
            let keep = watermark.low(r.shard).is_none_or(|low| {
                activity >= low - retention
                    || r.alerts.iter().any(|a| a.open_since.is_some())
                    || r.view(fold).in_case.is_some()
            });
            if keep {
                oldest = oldest.min(activity);
            }
            keep
        });
        self.oldest_activity = oldest;
        let gone = before - self.records.len();
        if gone > 0 {
            self.rejudge();
        }
        gone
    }

    fn records(&self) -> impl Iterator<Item = (i32, &Record)> + '_ {
        self.records
            .iter()
            .map(|r| (record::shard(r.payload()).unwrap_or(0), r))
    }

    fn restore_record(&mut self, held: Record, _: &Restore<'_>) -> Restored {
        if let Some(r) = CaseRecord::decode(held.payload()) {
            let hash = self.records.hash(held.id());
            for a in &r.alerts {
                if let (Some(emitted), false) = (a.open_since, a.overdue_sent) {
                    self.note_due(emitted + self.rules.due(a.priority), hash);
                }
            }
            self.oldest_activity = self.oldest_activity.min(r.last_activity());
            if !record::only_alerts(held.payload()) {
                self.judging.insert(hash);
            }
            self.records.put_hashed(hash, held);
            return Restored::default();
        }
        Restored {
            dropped_signals: 0,
            unreadable: 1,
        }
    }

    fn drop_shard(&mut self, shard: i32) -> usize {
        let before = self.records.len();
        self.records
            .retain(|r| record::shard(r.payload()).is_some_and(|s| s != shard));
        self.rejudge();
        before - self.records.len()
    }

    fn reserve(&mut self, more: usize) {
        self.records.reserve(more);
    }

    fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests;
