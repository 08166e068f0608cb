//! The case stage: what the dong offices did about each household (the
//! outcomes they record), and what that changes: which assessments still
//! become alerts, what an alert says of the household, and which
//! households go to the city team ([`escalation`]).
//!
//! One record per household that was alerted or has an outcome
//! ([`record::CaseRecord`]). The rules come from `[outcomes]` of the
//! pipeline definition: due times on the driver's clock, holds in event
//! time like the cooldown.

pub(crate) mod escalation;
pub(crate) mod meeting;
pub mod outcome;
pub mod record;
pub(crate) mod rules;
mod state;
mod texts;
pub(crate) mod work;

use std::sync::Arc;

use crate::base::keyed::{Record, Records};
use crate::definition::{PipelineSpec, DAY_MS};
use crate::stages::alert::{Alert, AlertType, CaseStatus, PipelineTag};
use crate::stages::decode::Reject;
use crate::stages::score::Priority;
use crate::stages::{Restore, Restored, StatePart, StatefulStage, Watermark};
use escalation::{escalation_id, Escalation, EscalationReason};
use outcome::{CloseReason, NotApplicableReason, Outcome, OutcomeKind, Said};
use record::{CaseRecord, HeldOutcome, KeptAlert};
pub(crate) use rules::Verdict;
use rules::{outcome_key, reaches, CaseView, Rules};
pub(crate) use work::{OpenWork, Tier};

/// Outcomes kept per household at most (the oldest go first).
const MAX_OUTCOMES: usize = 64;

/// What recording one outcome did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The outcome was held already (a re-send): nothing changed.
    pub(crate) duplicate: bool,
    /// Escalations it caused (unreachable; overdue for a contact that came
    /// after its due time).
    pub(crate) escalations: Vec<Escalation>,
    /// Alerts it answered as their first reach (most reaches answer
    /// one or two: held inline, as the outcome's own fields are).
    pub(crate) first_contacts: smallvec::SmallVec<[FirstContact; 2]>,
}

/// An alert's first reach, for the operations view.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FirstContact {
    /// The alert's dong, as a number (see [`FirstContact::dong_code`]).
    pub(crate) dong: u64,
    /// Its priority.
    pub(crate) priority: Priority,
    /// Seconds from its `emitted_at` to the contact's `recorded_at`.
    pub(crate) seconds: f64,
    /// Recorded at or before the alert's due time.
    pub(crate) in_time: bool,
    /// `recorded_at`, ms.
    pub(crate) recorded_at: i64,
    /// Failed attempts before this reach.
    pub(crate) attempts: u32,
}

impl FirstContact {
    /// The alert's dong code.
    pub(crate) fn dong_code(&self) -> String {
        dong_text(self.dong)
    }
}

/// Where an outcome's texts are in [`CaseBook::texts`]: kind and value
/// codes are four bits each, as a record keeps them.
fn text_slot(kind: OutcomeKind, detail: u8) -> usize {
    usize::from(kind.code() & 0xf) << 4 | usize::from(detail & 0xf)
}

/// The case stage.
pub(crate) struct CaseBook {
    rules: Rules,
    /// [`CaseBook::kind_text`] and label of every outcome kind and value,
    /// at [`text_slot`].
    texts: Vec<(String, String)>,
    /// The queue's tiers in the pipeline's order.
    queue_order: Vec<Tier>,
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

impl CaseBook {
    /// The offices' clock the rules cut days with.
    pub(crate) fn clock(&self) -> crate::base::civil::LocalClock {
        self.rules.clock
    }

    /// A case stage with the `[outcomes]` rules of `spec`; `tag` names the
    /// pipeline in escalations.
    pub(crate) fn new(spec: &PipelineSpec, tag: Arc<PipelineTag>) -> Self {
        let rules = Rules::new(spec);
        CaseBook {
            texts: Self::all_texts(&rules),
            queue_order: work::queue_tiers(&spec.outcomes),
            rules,
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
    pub(crate) fn category_set<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> u8 {
        names
            .into_iter()
            .filter_map(|n| self.categories.iter().position(|c| c == n))
            .fold(0u8, |set, i| set | 1u8.checked_shl(i as u32).unwrap_or(0))
    }

    /// Whether an assessment of the household needs a [`CaseBook::judge`]:
    /// it has an outcome, a move or a case (a household with nothing but
    /// alerts, or none, goes straight to the cooldown).
    pub(crate) fn needs_judging(&self, household_id: &str) -> bool {
        // most deployments' households have no outcome: no hash to make
        !self.judging.is_empty() && self.judging.contains(&self.records.hash(household_id))
    }

    /// Names the households a loop is about to look at, in order, so that
    /// [`CaseBook::prefetch_at`] can ask the memory for their records ahead
    /// of the looks (with millions of records each look otherwise waits).
    pub(crate) fn look_ahead<'a>(&mut self, households: impl Iterator<Item = &'a str>) {
        self.ahead.clear();
        let records = &self.records;
        self.ahead.extend(households.map(|hh| records.hash(hh)));
    }

    /// Called before the loop's `at`-th look (see [`CaseBook::look_ahead`]).
    pub(crate) fn prefetch_at(&self, at: usize) {
        self.records.prefetch_chunk(&self.ahead, at);
    }

    /// The record of a household.
    pub(crate) fn record(&self, household_id: &str) -> Option<CaseRecord> {
        self.records
            .get(household_id)
            .and_then(|r| CaseRecord::decode(r.payload()))
    }

    fn view(&self, r: &CaseRecord) -> CaseView {
        rules::fold(r, self.rules.fold)
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
    /// cannot be ([`rules::check`]). `now_ms` is the driver's clock,
    /// written in the escalations it causes.
    pub(crate) fn apply(
        &mut self,
        o: &Outcome,
        shard: i32,
        now_ms: i64,
    ) -> Result<Applied, Reject> {
        let id = outcome_key(&o.outcome_id);
        let office = dong_number(&o.dong_code);
        let hash = self.records.hash(&o.household_id);
        let known = self
            .records
            .get_hashed(hash, &o.household_id)
            .and_then(|r| CaseRecord::decode(r.payload()));
        if known.as_ref().is_some_and(|r| r.has_outcome(id)) {
            return Ok(Applied {
                duplicate: true,
                ..Applied::default()
            });
        }
        let before = known.as_ref().map(|r| self.view(r)).unwrap_or_default();
        rules::check(known.as_ref(), &before, o, office, self.rules.city)?;
        let mut r = known.unwrap_or_else(|| CaseRecord::new(shard, office));
        let held = self.held_outcome(o, id, &r);
        r.outcomes.push(held);
        if let Some(note) = record::case_note(id, &o.said) {
            r.notes.push(note);
        }
        if r.outcomes.len() > MAX_OUTCOMES {
            let gone = r.outcomes.remove(0).id;
            r.notes.retain(|n| n.id != gone);
        }
        let mut applied = Applied::default();
        if reaches(&held) {
            let failed_before = before.attempts;
            self.answer_alerts(
                &o.household_id,
                &mut r,
                o,
                now_ms,
                failed_before,
                &mut applied,
            );
        }
        Self::note_move(&mut r, &o.said, held.target);
        if held.kind == OutcomeKind::Withdrawn {
            self.reopen_unanswered(&mut r, held.target, held.recorded_at, hash);
        }
        // only a failure, or a withdrawal (of a reach between failures), can
        // start a spell: the others need no second fold
        if rules::failure(&held).is_some() || held.kind == OutcomeKind::Withdrawn {
            self.escalate_unreachable(&o.household_id, &mut r, now_ms, &mut applied);
        }
        self.put_hashed(hash, &o.household_id, &r);
        Ok(applied)
    }

    /// Whether `o` may be recorded against the household's record `r` (as
    /// [`CaseBook::apply`] would decide): what a page and the API check
    /// before they publish. A re-sent outcome passes.
    pub(crate) fn check_outcome(&self, r: Option<&CaseRecord>, o: &Outcome) -> Result<(), Reject> {
        if r.is_some_and(|r| r.has_outcome(outcome_key(&o.outcome_id))) {
            return Ok(());
        }
        let view = r.map(|r| self.view(r)).unwrap_or_default();
        rules::check(r, &view, o, dong_number(&o.dong_code), self.rules.city)
    }

    /// What the record keeps of an outcome.
    fn held_outcome(&self, o: &Outcome, id: u32, r: &CaseRecord) -> HeldOutcome {
        let last = r.last_alert().map(|a| (a.priority, a.categories));
        // a plan is measured against what the office last heard of the case
        // (its newest case update), so "worse since the plan" compares like
        // with like
        let heard = match o.said {
            Said::CasePlan(_) => r.baseline.or(last),
            _ => last,
        };
        let (priority, categories) = heard.unwrap_or((Priority::P1, u8::MAX));
        HeldOutcome {
            id,
            kind: o.said.kind(),
            detail: o.said.detail(),
            priority,
            categories,
            recorded_at: o.recorded_at.div_euclid(1000) * 1000,
            target: match &o.said {
                Said::Withdrawn(w) => outcome_key(w),
                _ => 0,
            },
            channel: match o.said {
                Said::Contact(c, _) => Some(c),
                _ => None,
            },
            services: match &o.said {
                Said::SupportLinked(s) => *s,
                Said::CasePlan(p) => p.services,
                _ => 0,
            },
            by_city: dong_number(&o.dong_code) == self.rules.city,
        }
    }

    /// A reach answers every open alert whose signals it came after (event
    /// time, so a replay after a crash decides the same whichever of the
    /// alert and the reach it reads first), and the alert it names; one
    /// that came after an alert's due time sends its `overdue` escalation
    /// if the timer has not.
    fn answer_alerts(
        &self,
        household_id: &str,
        r: &mut CaseRecord,
        o: &Outcome,
        now_ms: i64,
        attempts: u32,
        applied: &mut Applied,
    ) {
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
                attempts,
            });
            if o.recorded_at > due && !a.overdue_sent {
                a.overdue_sent = true;
                late.push((a.id, a.priority, due));
            }
        }
        for (alert, p, due) in late {
            let e = self.escalation(
                household_id,
                r,
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

    /// A move out holds the old dong's alerts; withdrawing it lets them
    /// through again.
    fn note_move(r: &mut CaseRecord, said: &Said, target: u32) {
        match said {
            Said::NotApplicable(NotApplicableReason::MovedOut)
            | Said::CaseClosed(CloseReason::MovedOut) => r.moved_from = r.dong,
            Said::CaseOpened(_) => {
                let last = r.last_alert().map(|a| (a.priority, a.categories));
                r.baseline = last;
                r.opened_with = last;
            }
            Said::Withdrawn(_) => {
                let moved = r.outcomes.iter().find(|h| h.id == target).is_some_and(|t| {
                    (t.kind == OutcomeKind::CaseClosed && t.detail == CloseReason::MovedOut.code())
                        || (t.kind == OutcomeKind::NotApplicable
                            && t.detail == NotApplicableReason::MovedOut.code())
                });
                if moved {
                    r.moved_from = 0;
                }
            }
            _ => {}
        }
    }

    /// A withdrawn reach answered nobody: the alerts it closed that no
    /// other reach answers are open again, due from the withdrawal (their
    /// first due time was not kept), so the household is back on its
    /// office's queue.
    fn reopen_unanswered(&mut self, r: &mut CaseRecord, target: u32, at: i64, hash: u64) {
        let was_reach = r
            .outcomes
            .iter()
            .find(|h| h.id == target)
            .is_some_and(reaches);
        if !was_reach {
            return;
        }
        let reaches_at = rules::reach_times(r);
        let target_at = r
            .outcomes
            .iter()
            .find(|h| h.id == target)
            .map_or(0, |t| t.recorded_at);
        let mut due = Vec::new();
        for a in r.alerts.iter_mut().filter(|a| a.open_since.is_none()) {
            let day_start = i64::from(a.day) * DAY_MS;
            let answered_by_target = target_at >= day_start;
            if answered_by_target && !reaches_at.iter().any(|&t| t >= day_start) {
                a.open_since = Some(at);
                a.overdue_sent = false;
                due.push(at + self.rules.due(a.priority));
            }
        }
        for d in due {
            self.note_due(d, hash);
        }
    }

    /// The `unreachable` escalation of a new spell of failed attempts, once.
    fn escalate_unreachable(
        &self,
        household_id: &str,
        r: &mut CaseRecord,
        now_ms: i64,
        applied: &mut Applied,
    ) {
        let Some((since, first)) = self.view(r).unreachable else {
            return;
        };
        if r.unreachable_sent == first {
            return;
        }
        r.unreachable_sent = first;
        let alerts = r.alerts.iter().map(|a| a.id).collect();
        let priority = r.last_alert().map(|a| a.priority);
        let e = self.escalation(
            household_id,
            r,
            EscalationReason::Unreachable,
            &first.to_le_bytes(),
            alerts,
            priority,
            since,
            now_ms,
        );
        applied.escalations.push(e);
    }

    /// What the case state says of an assessment of `household_id` at
    /// `priority` with the categories `categories` (a bit set, see
    /// [`CaseBook::category_set`]), from `dong`, whose window ends at
    /// `window_end`; with the household's decoded record when it has one:
    /// an assessment the gate then sends passes it to
    /// [`CaseBook::on_sent`], which need not look it up and decode it
    /// again.
    pub(crate) fn judge(
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
        let dong = dong_number(dong);
        rules::verdict(
            &self.rules,
            r,
            &view,
            priority,
            categories,
            dong,
            window_end,
        )
    }

    /// Fills in what the case state says of an alert about to be sent
    /// (`id` is the hash its id spells, `scored` the priority the scoring
    /// gave), and keeps it in the household's history. Returns the
    /// `repeatedly_flagged` escalation it causes, if any. A replayed alert
    /// (same id) is not kept twice. `known` is the household's record when
    /// the caller holds it as [`CaseBook::judge`] gave it in the same batch
    /// (nothing wrote it since); else it is looked up.
    pub(crate) fn on_sent(
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
        Self::follow_dong(&mut r, dong);
        let day = alert.last_signal_at.div_euclid(DAY_MS) as i32;
        // a reach already recorded after its signals answers it (the
        // reach was read first, as a replay may)
        let answered = view.reached_at.is_some_and(|at| answers(at, day));
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

    /// The household is served by `dong` from now on (the dong its newest
    /// alert or case update went to); its kept alerts remember their own.
    fn follow_dong(r: &mut CaseRecord, dong: u64) {
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
    }

    /// Remembers that an open alert of the household whose
    /// [`Records::hash`] is `hash` is due at `due`.
    fn note_due(&mut self, due: i64, hash: u64) {
        self.due.push(std::cmp::Reverse((due, hash)));
    }

    /// The `repeatedly_flagged` escalation a newly kept alert makes, if
    /// it starts the `repeat_alerts`-th separate episode within the span
    /// with no engagement since the first of them ([`rules::repeated`]).
    fn repeated(
        &self,
        household_id: &str,
        r: &mut CaseRecord,
        view: &CaseView,
        now_ms: i64,
    ) -> Option<Escalation> {
        let ids = rules::repeated(&self.rules, r, view)?;
        let first = i64::from(r.alerts.iter().find(|a| a.id == ids[0])?.day) * DAY_MS;
        let last = ids[ids.len() - 1];
        let priority = r.last_alert().map(|a| a.priority);
        r.repeat_day = r.last_alert().map(|a| a.day);
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

    /// Forgets the alerts a backfill never sent: a record keeps only what
    /// the offices recorded (outcomes, plans, reviews, with the priority
    /// they were recorded at), so no office owes a contact for an alert it
    /// never saw, while a case opened before sagak is still a case.
    pub(crate) fn forget_unsent_alerts(&mut self) {
        let held: Vec<(String, CaseRecord)> = self
            .records
            .iter()
            .filter_map(|h| Some((h.id().to_string(), CaseRecord::decode(h.payload())?)))
            .collect();
        self.records.retain(|h| !record::only_alerts(h.payload()));
        for (id, mut r) in held.into_iter().filter(|(_, r)| !r.outcomes.is_empty()) {
            r.alerts.clear();
            r.flagged = 0;
            r.repeat_day = None;
            r.unreachable_sent = 0;
            self.put(&id, &r);
        }
        self.rejudge();
    }

    /// Notes that a household in case management still qualifies, its
    /// window ending at `window_end` (event time, ms), though nothing new
    /// is said: a case is quiet only while no signal qualifies.
    pub(crate) fn on_quiet(&mut self, household_id: &str, window_end: i64) {
        let day = window_end.div_euclid(DAY_MS) as i32;
        let Some(mut r) = self.record(household_id) else {
            return;
        };
        if r.signal_day.is_some_and(|d| d >= day) {
            return;
        }
        r.signal_day = Some(day);
        self.put(household_id, &r);
    }

    /// Fills in a case update for a household in case management and makes
    /// what it says the office's new baseline; `id` is the hash the alert's
    /// id spells.
    pub(crate) fn on_case_update(&mut self, alert: &mut Alert, id: u128, shard: i32) {
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
        r.signal_day = Some(alert.last_signal_at.div_euclid(DAY_MS) as i32);
        // the case moves with the household: the office sent the update
        // sees it
        Self::follow_dong(&mut r, dong);
        self.put(&alert.household_id, &r);
    }

    /// The household's status at `at` (event time, for holds).
    fn status(&self, view: &CaseView, r: &CaseRecord, at: i64) -> CaseStatus {
        rules::status(&self.rules, view, r, at)
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
            attempts: self.view(r).attempts,
            outcomes: self.outcomes_so_far(r),
            emitted_at: now_ms,
            pipeline: Arc::clone(&self.tag),
        }
    }

    /// The `overdue` escalations due by `now_ms` (driver's clock): one per
    /// alert past its due time with nobody reached, once.
    pub(crate) fn overdue(&mut self, now_ms: i64) -> Vec<Escalation> {
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
}

#[cfg(test)]
mod tests;
