//! The case rules, pure: which outcomes reach a household, what its
//! outcomes add up to ([`fold`]), whether an outcome may be recorded
//! against its record ([`check`]), its status, and what its record says of
//! an assessment ([`verdict`]). No state and no I/O: the case stage
//! ([`super::CaseBook`]) and the web front call these, so a page refuses
//! exactly what the pipeline would dead-letter.
//!
//! The rule above all: a household leaves an office's work only when
//! someone of it was reached, or the city took it over. A failed attempt
//! (no answer, wrong number, empty house, moved, address mismatch) keeps
//! every open alert open and counts towards unreachable.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::outcome::{CloseReason, ContactResult, NotApplicableReason, Outcome, OutcomeKind, Said};
use super::record::{CaseRecord, HeldOutcome, KeptAlert};
use crate::definition::{PipelineSpec, DAY_MS};
use crate::stages::alert::CaseStatus;
use crate::stages::decode::{Reject, RejectClass};
use crate::stages::score::Priority;

/// The rules a view is folded with (from `[outcomes]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldRules {
    /// Failed attempts that make a household unreachable.
    pub(crate) attempts: u32,
    /// A span of failed attempts that does too, ms.
    pub(crate) after_ms: i64,
}

/// The `[outcomes]` rules of a pipeline, in milliseconds.
pub(crate) struct Rules {
    /// How a view is folded.
    pub(crate) fold: FoldRules,
    /// Time for a first reach per priority (P3, P2, P1 by code - 1).
    pub(crate) due_ms: [i64; 3],
    /// Time from a failed attempt to the next one per priority.
    pub(crate) retry_ms: [i64; 3],
    /// How long a hold holds.
    pub(crate) hold_ms: i64,
    /// Separate episodes that make a household repeatedly flagged.
    pub(crate) repeat_alerts: u32,
    /// Within this span.
    pub(crate) repeat_within_ms: i64,
    /// Alerts closer than this to the one before belong to its episode.
    pub(crate) cooldown_days: i32,
    /// How long a record is kept after its last activity.
    pub(crate) retention_ms: i64,
    /// The city team's code, as a number.
    pub(crate) city: u64,
    /// Korean labels of kinds, values and statuses.
    pub(crate) labels: BTreeMap<String, String>,
    /// The offices' clock: where their days start.
    pub(crate) clock: crate::base::civil::LocalClock,
    /// Days from a plan or review to the next review, unless it set one.
    pub(crate) review_days: i32,
    /// Days without a qualifying signal after which a case whose goals are
    /// not unmet is ready to close.
    pub(crate) quiet_days: i32,
}

fn days(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs() / 86_400).unwrap_or(i32::MAX)
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Rules {
    /// The rules of `spec`.
    pub(crate) fn new(spec: &PipelineSpec) -> Self {
        let o = &spec.outcomes;
        Rules {
            fold: FoldRules {
                attempts: o.unreachable_attempts,
                after_ms: ms(o.unreachable_after),
            },
            due_ms: [ms(o.due_p3), ms(o.due_p2), ms(o.due_p1)],
            retry_ms: [ms(o.retry_p3), ms(o.retry_p2), ms(o.retry_p1)],
            hold_ms: ms(o.hold),
            repeat_alerts: o.repeat_alerts,
            repeat_within_ms: ms(o.repeat_within),
            cooldown_days: i32::try_from(spec.alerts.cooldown_days).unwrap_or(i32::MAX),
            retention_ms: ms(o.retention),
            city: o.city_code.parse().unwrap_or(0),
            labels: o.labels_ko.clone(),
            clock: spec.local_clock(),
            review_days: days(o.review_every),
            quiet_days: days(o.close_quiet),
        }
    }

    /// Time for a first reach after an alert of priority `p`.
    pub(crate) fn due(&self, p: Priority) -> i64 {
        self.due_ms[usize::from(p as u8 - 1)]
    }

    /// Time from a failed attempt to the next for priority `p`.
    pub(crate) fn retry(&self, p: Priority) -> i64 {
        self.retry_ms[usize::from(p as u8 - 1)]
    }

    /// The offices' local day (days since the epoch) of an instant: the
    /// one place a day is cut for the case views.
    pub(crate) fn local_day(&self, at_ms: i64) -> i64 {
        self.clock.day(at_ms)
    }

    /// The Korean label of a wire name, from the pipeline or the
    /// declaration.
    pub(crate) fn label(&self, name: &str, declared: &str) -> String {
        self.labels
            .get(name)
            .cloned()
            .unwrap_or_else(|| declared.to_string())
    }
}

/// Whether an outcome reached someone of the household, or the city took
/// it over: what answers its open alerts and ends a run of failed
/// attempts. Everything but a failed attempt, a withdrawal and a dong's
/// "moved out" (nobody was found: the city's residence check decides).
pub(crate) fn reaches(o: &HeldOutcome) -> bool {
    match o.kind {
        OutcomeKind::ContactAttempted => {
            ContactResult::from_code(o.detail).is_some_and(|r| !r.failed())
        }
        OutcomeKind::NotApplicable => {
            o.by_city
                || NotApplicableReason::from_code(o.detail) != Some(NotApplicableReason::MovedOut)
        }
        OutcomeKind::Withdrawn => false,
        _ => true,
    }
}

/// What an alert ended in, as the yield of the rules counts it: the
/// office's finding, not ground truth. Ordered from the least to the most
/// conclusive; an alert's result is the most conclusive of the outcomes
/// recorded for its household within its answer window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum YieldResult {
    /// Nothing recorded.
    NoOutcome,
    /// Only failed attempts: nobody of the household was reached.
    Unreachable,
    /// Someone was reached (or counselled), nothing more yet.
    Reached,
    /// The household declined (or refused at the door).
    Declined,
    /// Not a case, with the reason.
    NotApplicable(NotApplicableReason),
    /// Support linked or a case opened: the alert led to help.
    Helped,
}

impl YieldResult {
    /// Every result, in the tables' column order.
    pub(crate) const ALL: [YieldResult; 10] = [
        YieldResult::Helped,
        YieldResult::Reached,
        YieldResult::NotApplicable(NotApplicableReason::NoNeed),
        YieldResult::NotApplicable(NotApplicableReason::AlreadyRecipient),
        YieldResult::NotApplicable(NotApplicableReason::DataError),
        YieldResult::NotApplicable(NotApplicableReason::MovedOut),
        YieldResult::NotApplicable(NotApplicableReason::Deceased),
        YieldResult::Declined,
        YieldResult::Unreachable,
        YieldResult::NoOutcome,
    ];

    /// How conclusive it is: an alert keeps the highest.
    pub(crate) fn rank(self) -> u8 {
        match self {
            YieldResult::NoOutcome => 0,
            YieldResult::Unreachable => 1,
            YieldResult::Reached => 2,
            YieldResult::Declined => 3,
            YieldResult::NotApplicable(_) => 4,
            YieldResult::Helped => 5,
        }
    }

    /// Whether it means someone of the household was reached (as
    /// [`reaches`] decides for the open work): not a failed attempt, and
    /// not a dong's "moved out" (nobody was found).
    pub(crate) fn reaches(self) -> bool {
        !matches!(
            self,
            YieldResult::NoOutcome
                | YieldResult::Unreachable
                | YieldResult::NotApplicable(NotApplicableReason::MovedOut)
        )
    }

    /// Its column in [`Self::ALL`].
    pub(crate) fn slot(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(Self::ALL.len() - 1)
    }

    /// Its name in files and metrics (`not_applicable:no_need`).
    pub(crate) fn name(self) -> String {
        match self {
            YieldResult::Helped => "helped".into(),
            YieldResult::Reached => "reached".into(),
            YieldResult::NotApplicable(r) => format!("not_applicable:{}", r.as_str()),
            YieldResult::Declined => "declined".into(),
            YieldResult::Unreachable => "unreachable".into(),
            YieldResult::NoOutcome => "no_outcome".into(),
        }
    }

    /// What one outcome (`kind` and its value's code) says of the alerts it
    /// answers; `None`: nothing (a withdrawal, a case update).
    pub(crate) fn of(kind: OutcomeKind, detail: u8) -> Option<YieldResult> {
        match kind {
            OutcomeKind::ContactAttempted => match ContactResult::from_code(detail)? {
                ContactResult::Refused => Some(YieldResult::Declined),
                r if r.failed() => Some(YieldResult::Unreachable),
                _ => Some(YieldResult::Reached),
            },
            OutcomeKind::Counselled => Some(YieldResult::Reached),
            OutcomeKind::SupportLinked
            | OutcomeKind::CaseOpened
            | OutcomeKind::CasePlan
            | OutcomeKind::CaseReviewed => Some(YieldResult::Helped),
            OutcomeKind::NotApplicable => {
                NotApplicableReason::from_code(detail).map(YieldResult::NotApplicable)
            }
            OutcomeKind::Declined => Some(YieldResult::Declined),
            _ => None,
        }
    }
}

/// Whether an outcome is a failed attempt, and if so whether it alone
/// says the household is not where it is registered.
pub(crate) fn failure(o: &HeldOutcome) -> Option<bool> {
    match o.kind {
        OutcomeKind::ContactAttempted => ContactResult::from_code(o.detail)
            .filter(|r| r.failed())
            .map(|r| r.not_there()),
        OutcomeKind::NotApplicable if !reaches(o) => Some(true),
        _ => None,
    }
}

/// What a household's outcomes add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CaseView {
    /// Recorded deceased, at.
    pub(crate) deceased_at: Option<i64>,
    /// In case management since.
    pub(crate) in_case: Option<i64>,
    /// Times its case was closed.
    pub(crate) closed: u32,
    /// When its case was last closed (none once another opens).
    pub(crate) closed_at: Option<i64>,
    /// The newest outcome.
    pub(crate) last: Option<HeldOutcome>,
    /// The newest outcome that reached the household ([`reaches`]).
    pub(crate) reached_at: Option<i64>,
    /// Whether support was ever linked.
    pub(crate) supported: bool,
    /// The newest support linked: when, and the services (bit set).
    pub(crate) linked: Option<(i64, u16)>,
    /// Holds: (recorded_at, priority, categories) of each outcome that
    /// holds back the same or a lower priority.
    pub(crate) holds: SmallVec<[(i64, Priority, u8); 4]>,
    /// Failed attempts since the last reach.
    pub(crate) attempts: u32,
    /// The newest of them.
    pub(crate) last_attempt_at: Option<i64>,
    /// Unreachable since (the first failed attempt after the last reach)
    /// and that attempt's id.
    pub(crate) unreachable: Option<(i64, u32)>,
    /// Newest counselling, support or case opening (engagement).
    pub(crate) engaged_at: Option<i64>,
    /// The open case's newest plan (its outcome's id) and its newest
    /// review since.
    pub(crate) plan: Option<u32>,
    pub(crate) review: Option<u32>,
    /// When a reach ended the newest unreachable spell.
    pub(crate) spell_ended_at: Option<i64>,
    /// The newest counselling, at.
    pub(crate) counselled_at: Option<i64>,
}

/// Folds the live outcomes of `r` into what they add up to.
pub(crate) fn fold(r: &CaseRecord, rules: FoldRules) -> CaseView {
    let mut v = CaseView::default();
    // the failed attempts since the last reach: first at, its id, count,
    // newest at, one said "not there"
    let mut failed: Option<(i64, u32, u32, i64, bool)> = None;
    for o in r.live_outcomes() {
        let at = o.recorded_at;
        v.last = Some(*o);
        if reaches(o) {
            v.reached_at = Some(at);
            if failed.is_some_and(|f| spell(f, rules)) {
                v.spell_ended_at = Some(at);
            }
            failed = None;
        } else if let Some(not_there) = failure(o) {
            let (since, id, n, _, there) = failed.unwrap_or((at, o.id, 0, at, false));
            failed = Some((since, id, n + 1, at, there || not_there));
        }
        let hold = |v: &mut CaseView| v.holds.push((at, o.priority, o.categories));
        match o.kind {
            OutcomeKind::ContactAttempted => {
                if ContactResult::from_code(o.detail) == Some(ContactResult::Refused) {
                    hold(&mut v);
                }
            }
            OutcomeKind::Counselled => {
                v.engaged_at = Some(at);
                v.counselled_at = Some(at);
            }
            OutcomeKind::SupportLinked => {
                v.supported = true;
                v.engaged_at = Some(at);
                v.linked = Some((at, o.services));
                hold(&mut v);
            }
            OutcomeKind::CaseOpened => {
                v.in_case = Some(at);
                v.closed_at = None;
                v.engaged_at = Some(at);
                (v.plan, v.review) = (None, None);
            }
            OutcomeKind::CasePlan => (v.plan, v.review) = (Some(o.id), None),
            OutcomeKind::CaseReviewed => v.review = Some(o.id),
            OutcomeKind::Declined => hold(&mut v),
            OutcomeKind::NotApplicable => match NotApplicableReason::from_code(o.detail) {
                Some(NotApplicableReason::Deceased) => v.deceased_at = Some(at),
                Some(NotApplicableReason::NoNeed | NotApplicableReason::AlreadyRecipient) => {
                    hold(&mut v)
                }
                _ => {}
            },
            OutcomeKind::CaseClosed => {
                v.in_case = None;
                (v.plan, v.review) = (None, None);
                v.closed += 1;
                v.closed_at = Some(at);
                match CloseReason::from_code(o.detail) {
                    Some(CloseReason::Deceased) => v.deceased_at = Some(at),
                    Some(CloseReason::Declined) => hold(&mut v),
                    _ => {}
                }
            }
            OutcomeKind::Withdrawn => {}
        }
    }
    if let Some(f @ (since, id, n, last, _)) = failed {
        v.attempts = n;
        v.last_attempt_at = Some(last);
        if spell(f, rules) {
            v.unreachable = Some((since, id));
        }
    }
    v
}

/// Whether a run of failed attempts (first at, its id, count, newest at,
/// one said "not there") makes the household unreachable.
fn spell((since, _, n, last, not_there): (i64, u32, u32, i64, bool), rules: FoldRules) -> bool {
    not_there || n >= rules.attempts || last - since >= rules.after_ms
}

/// Whether `o` may be recorded against the household's record `r` (none
/// yet: `None`), from the office `office` (`city`: the city team). The
/// reasons name the rule in English; [`refusal_ko`] gives the Korean.
pub(crate) fn check(
    r: Option<&CaseRecord>,
    view: &CaseView,
    o: &Outcome,
    office: u64,
    city: u64,
) -> Result<(), Reject> {
    let from_city = office == city;
    if let Some(r) = r {
        if !from_city && !r.served_by(office) {
            return Err(Reject::new(
                RejectClass::WrongOffice,
                "the outcome comes from a dong office that does not serve this household (nor did for any alert kept); record it from the household's current dong or the city team",
            ));
        }
    }
    if let Some(alert) = o.alert_id {
        if !r.is_some_and(|r| r.alerts.iter().any(|a| a.id == alert)) {
            return Err(Reject::new(
                RejectClass::UnknownAlert,
                "alert_id names no alert in the household's kept history; send the alert_id of an alert sagak sent for this household, or leave it out",
            ));
        }
    }
    match &o.said {
        Said::Withdrawn(target) => check_withdrawal(r, target, from_city),
        Said::CaseClosed(_) if view.in_case.is_none() => Err(Reject::new(
            RejectClass::NoOpenCase,
            "case_closed needs an open case: this household has no case_opened that is still open",
        )),
        Said::CaseOpened(_) if view.in_case.is_some() => Err(Reject::new(
            RejectClass::CaseAlreadyOpen,
            "this household's case is already open: record case_closed before opening another",
        )),
        Said::CasePlan(_) | Said::CaseReviewed(_) if view.in_case.is_none() => Err(Reject::new(
            RejectClass::NoOpenCase,
            "a plan or a review needs an open case: record case_opened first",
        )),
        Said::CaseReviewed(review) => check_review(r, view, review),
        _ => Ok(()),
    }
}

/// A review needs the case's plan and a result for each of its goals.
fn check_review(
    r: Option<&CaseRecord>,
    view: &CaseView,
    review: &super::outcome::Review,
) -> Result<(), Reject> {
    let goals = r
        .zip(view.plan)
        .and_then(|(r, id)| r.note_of(id))
        .map(|n| n.goals.len());
    match goals {
        None => Err(Reject::new(
            RejectClass::NoPlan,
            "this case has no plan to review: record case_plan first",
        )),
        Some(n) if n != review.results.len() => Err(Reject::new(
            RejectClass::NoPlan,
            format!(
                "goal_results must give one result for each of the plan's {n} goals, in its order"
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn check_withdrawal(r: Option<&CaseRecord>, target: &str, from_city: bool) -> Result<(), Reject> {
    let key = outcome_key(target);
    let Some(t) = r.and_then(|r| r.outcomes.iter().find(|h| h.id == key)) else {
        return Err(Reject::new(
            RejectClass::UnknownOutcome,
            "withdraws names no outcome held for this household; send the outcome_id of the outcome to withdraw",
        ));
    };
    if t.kind == OutcomeKind::Withdrawn {
        return Err(Reject::new(
            RejectClass::UnknownOutcome,
            "withdraws names a withdrawal; a withdrawal cannot be withdrawn",
        ));
    }
    let deceased = (t.kind == OutcomeKind::NotApplicable
        && t.detail == NotApplicableReason::Deceased.code())
        || (t.kind == OutcomeKind::CaseClosed && t.detail == CloseReason::Deceased.code());
    if deceased && !from_city {
        return Err(Reject::new(
            RejectClass::WrongOffice,
            "only the city team may withdraw a deceased; ask it to send the withdrawal",
        ));
    }
    Ok(())
}

/// The Korean reason of a refusal, for a page and the API.
pub(crate) fn refusal_ko(class: RejectClass) -> &'static str {
    match class {
        RejectClass::WrongOffice => "이 가구를 담당하지 않는 동에서 보낸 기록입니다. 가구의 현재 담당 동이나 시 통합조사팀에서 기록하세요.",
        RejectClass::UnknownAlert => "이 가구에 보낸 알림이 아닙니다. 이 가구의 알림을 고르거나 비워 두세요.",
        RejectClass::UnknownOutcome => "이 가구에 철회할 수 있는 그 기록이 없습니다.",
        RejectClass::NoOpenCase => "열린 사례가 없어 종결할 수 없습니다. 먼저 통합사례관리 선정을 기록하세요.",
        RejectClass::CaseAlreadyOpen => "이미 사례관리 중입니다. 새로 선정하려면 먼저 종결을 기록하세요.",
        RejectClass::NoPlan => "점검할 사례 계획이 없거나 목표 수가 계획과 다릅니다. 계획의 목표마다 결과를 하나씩 고르세요.",
        RejectClass::ResidentRegistrationNumber => "주민등록번호로 보이는 숫자가 있습니다. 주민등록번호는 입력하지 마세요.",
        RejectClass::MissingField => "필수 항목이 비어 있습니다.",
        RejectClass::NotInEnum => "허용되지 않는 값입니다.",
        RejectClass::OutOfRange => "값이 허용 범위를 벗어났습니다.",
        _ => "기록을 받을 수 없습니다.",
    }
}

/// 32 bits of the hash of an outcome id (0 is kept for "none").
pub(crate) fn outcome_key(id: &str) -> u32 {
    (crate::base::hash::fnv1a64(&[id.as_bytes()]) as u32).max(1)
}

/// When the live outcomes of `r` that reached the household were recorded.
pub(crate) fn reach_times(r: &CaseRecord) -> SmallVec<[i64; 4]> {
    r.live_outcomes()
        .into_iter()
        .filter(|o| reaches(o))
        .map(|o| o.recorded_at)
        .collect()
}

/// Closes the open alerts of `r` that a live reach answers (one recorded on
/// or after the day the alert's window ended); whether any was. Records
/// kept by this release are settled already: a reach closes the alerts it
/// answers when it is recorded.
pub(crate) fn settle_answered(r: &mut CaseRecord) -> bool {
    let reaches_at = reach_times(r);
    let mut changed = false;
    for a in r.alerts.iter_mut().filter(|a| a.open_since.is_some()) {
        if reaches_at.iter().any(|&at| at >= i64::from(a.day) * DAY_MS) {
            a.open_since = None;
            changed = true;
        }
    }
    changed
}

/// Whether the household has an alert waiting for a first reach.
pub(crate) fn has_open_alert(r: &CaseRecord) -> bool {
    r.alerts.iter().any(|a| a.open_since.is_some())
}

/// The household's status at `at` (event time for holds; the driver's
/// clock for the work views).
pub(crate) fn status(rules: &Rules, view: &CaseView, r: &CaseRecord, at: i64) -> CaseStatus {
    let open = has_open_alert(r);
    let held = |since: i64| at < since + rules.hold_ms;
    if view.deceased_at.is_some() {
        CaseStatus::Closed
    } else if view.in_case.is_some() {
        CaseStatus::InCase
    } else if view.unreachable.is_some() {
        CaseStatus::Unreachable
    } else if view.attempts > 0 {
        CaseStatus::Attempting
    } else if view.closed_at.is_some() && view.reached_at <= view.closed_at {
        if open {
            CaseStatus::Realerted
        } else {
            CaseStatus::Closed
        }
    } else if view.linked.is_some_and(|(since, _)| held(since)) {
        CaseStatus::Linked
    } else if r.moved_from != 0 || view.holds.iter().any(|&(since, ..)| held(since)) {
        // held at this priority, or held below it and sent past it
        CaseStatus::Held
    } else if view.reached_at.is_some() {
        CaseStatus::Contacted
    } else {
        CaseStatus::New
    }
}

/// What the case state says of one assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
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

/// What the record `r` (folded as `view`) says of an assessment at
/// `priority` with `categories`, from the dong `dong`, whose window ends at
/// `window_end`.
pub(crate) fn verdict(
    rules: &Rules,
    r: &CaseRecord,
    view: &CaseView,
    priority: Priority,
    categories: u8,
    dong: u64,
    window_end: i64,
) -> Verdict {
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
    if r.moved_from != 0 && dong == r.moved_from {
        return Verdict::Hold;
    }
    let priority = if view.unreachable.is_some() {
        priority.raised()
    } else {
        priority
    };
    // an outcome holds back an assessment at the same or a lower priority,
    // with no new category, whose window ends within the hold
    let held = view.holds.iter().any(|&(at, p, cats)| {
        priority <= p && categories & !cats == 0 && window_end < at + rules.hold_ms
    });
    if held {
        return Verdict::Hold;
    }
    Verdict::Gate(priority)
}

/// The kept alerts that start an episode: the first kept, and each that
/// came a cooldown or more after the one before. A crisis that rises
/// P3 -> P2 -> P1 within its cooldown is one episode, not three flags.
pub(crate) fn episode_starts(alerts: &[KeptAlert], cooldown_days: i32) -> Vec<&KeptAlert> {
    let mut prev: Option<i32> = None;
    alerts
        .iter()
        .filter(|a| {
            let start = prev.is_none_or(|p| a.day - p >= cooldown_days);
            prev = Some(a.day);
            start
        })
        .collect()
}

/// The alerts that make a `repeatedly_flagged` escalation now, if the
/// newest kept alert starts an episode, it is the `repeat_alerts`-th
/// episode within the span since the last such escalation, and nobody
/// engaged since the first of them.
pub(crate) fn repeated(rules: &Rules, r: &CaseRecord, view: &CaseView) -> Option<Vec<u128>> {
    let newest = r.alerts.last()?;
    let starts = episode_starts(&r.alerts, rules.cooldown_days);
    if starts.last().map(|a| a.id) != Some(newest.id) {
        return None;
    }
    let n = rules.repeat_alerts as usize;
    let within: Vec<&KeptAlert> = starts
        .into_iter()
        .filter(|a| i64::from(newest.day - a.day) * DAY_MS <= rules.repeat_within_ms)
        .filter(|a| r.repeat_day.is_none_or(|d| a.day > d))
        .collect();
    if within.len() < n {
        return None;
    }
    let counted = &within[within.len() - n..];
    let first = i64::from(counted[0].day) * DAY_MS;
    if view.engaged_at.is_some_and(|at| at >= first) {
        return None;
    }
    Some(counted.iter().map(|a| a.id).collect())
}

/// Whether the household has been flagged again and again: its last
/// `repeatedly_flagged` escalation went and nobody engaged since.
pub(crate) fn repeatedly_flagged(r: &CaseRecord, view: &CaseView) -> bool {
    r.repeat_day
        .is_some_and(|d| view.engaged_at.is_none_or(|at| at < i64::from(d) * DAY_MS))
}
