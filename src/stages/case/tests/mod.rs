//! The effects of outcomes, one by one, on the case stage alone.

use super::outcome::{decode, Channel, ContactResult, Service, Track};
use super::*;
use crate::stages::alert::AlertGate;
use crate::stages::decode::RejectClass;
use crate::stages::score::Assessment;
use crate::testkit::default_spec;

const T0: i64 = 1_790_000_000_000;
const DONG: &str = "4125052000";
const OTHER: &str = "4125053000";
const CITY: &str = "4125000000";

/// A case stage and an alert gate to render its alerts.
struct Desk {
    cases: CaseBook,
    gate: AlertGate,
}

/// What one assessment came to.
#[derive(Debug)]
struct Sent {
    verdict: Verdict,
    alert: Option<Alert>,
    escalation: Option<Escalation>,
}

fn desk() -> Desk {
    let spec = default_spec();
    let gate = AlertGate::new(&spec);
    Desk {
        cases: CaseBook::new(&spec, Arc::clone(gate.tag())),
        gate,
    }
}

impl Desk {
    /// An assessment of `hh` at `p` over `categories` whose window ends on
    /// `day` (days after T0) from `dong`, judged and, unless held, sent at
    /// `now` (the gate's cooldown is left out: it is not what these test).
    fn assess(
        &mut self,
        hh: &str,
        p: Priority,
        categories: &[&str],
        dong: &str,
        day: i64,
        now: i64,
    ) -> Sent {
        let end = T0 + day * DAY_MS;
        let set = self.cases.category_set(categories.iter().copied());
        let (verdict, _) = self.cases.judge(hh, p, set, dong, end);
        let a = Assessment {
            household_id: hh.into(),
            dong_code: dong.into(),
            priority: p,
            score: 100.0,
            window_end: end,
            categories: categories.iter().map(|c| Arc::from(*c)).collect(),
            reasons: Vec::new(),
            first_signal_at: end - DAY_MS,
            last_signal_at: end,
            evidence: u128::from(end as u64) ^ (p as u128) << 64,
        };
        let mut sent = Sent {
            verdict,
            alert: None,
            escalation: None,
        };
        match verdict {
            Verdict::Gate(raised) => {
                let mut a = a;
                a.priority = raised;
                let (mut alert, id) = self.gate.render_hashed(a, now);
                sent.escalation = self.cases.on_sent(&mut alert, id, p, 0, None);
                sent.alert = Some(alert);
            }
            Verdict::CaseUpdate => {
                let (mut alert, id) = self.gate.render_hashed(a, now);
                self.cases.on_case_update(&mut alert, id, 0);
                sent.alert = Some(alert);
            }
            // as the engine's lane does
            Verdict::Quiet => self.cases.on_quiet(hh, end),
            _ => {}
        }
        sent
    }

    fn alert(&mut self, hh: &str, p: Priority, day: i64, now: i64) -> Alert {
        let sent = self.assess(hh, p, &["health"], DONG, day, now);
        sent.alert
            .unwrap_or_else(|| panic!("sent: {:?}", sent.verdict))
    }

    fn record(&mut self, o: Outcome) -> Result<Applied, Reject> {
        self.cases.apply(&o, 0, o.recorded_at)
    }
}

fn outcome(id: &str, hh: &str, said: Said, at: i64) -> Outcome {
    Outcome {
        outcome_id: id.into(),
        household_id: hh.into(),
        dong_code: DONG.into(),
        alert_id: None,
        recorded_at: at,
        staff_id: "st-1".into(),
        said,
        note: None,
        goals: Vec::new(),
    }
}

fn attempt(id: &str, hh: &str, result: ContactResult, at: i64) -> Outcome {
    outcome(id, hh, Said::Contact(Channel::Phone, result), at)
}

fn reasons(escalations: &[Escalation]) -> Vec<EscalationReason> {
    escalations.iter().map(|e| e.reason).collect()
}

#[test]
fn an_alert_without_a_contact_is_escalated_once_at_its_due_time() {
    let mut d = desk();
    let a = d.alert("hh-1", Priority::P1, 0, T0);
    assert_eq!(a.case.due_at, Some(T0 + 3 * DAY_MS), "P1: three days");
    assert_eq!(a.case.status, CaseStatus::New);
    assert!(d.cases.overdue(T0 + 3 * DAY_MS).is_empty(), "not before");
    let due = d.cases.overdue(T0 + 3 * DAY_MS + 1);
    assert_eq!(reasons(&due), [EscalationReason::Overdue]);
    assert_eq!(due[0].alert_ids, vec![a.alert_id]);
    assert_eq!(due[0].since, T0 + 3 * DAY_MS);
    assert_eq!(due[0].dong_code, DONG);
    assert!(d.cases.overdue(T0 + 10 * DAY_MS).is_empty(), "once");
    let listed = d.cases.household_work("hh-1", T0 + 4 * DAY_MS);
    assert!(
        listed.is_some_and(|l| l.overdue() && l.overdue_days == Some(1)),
        "marked overdue on the list"
    );
}

#[test]
fn a_failed_attempt_keeps_every_alert_open_until_someone_is_reached() {
    let mut d = desk();
    d.alert("hh-1", Priority::P3, 0, T0);
    d.alert("hh-1", Priority::P2, 1, T0 + DAY_MS);
    let failed = d
        .record(attempt(
            "o1",
            "hh-1",
            ContactResult::NoAnswer,
            T0 + 2 * DAY_MS,
        ))
        .expect("recorded");
    assert!(failed.escalations.is_empty());
    assert!(failed.first_contacts.is_empty(), "nobody was reached");
    let w = d.cases.household_work("hh-1", T0 + 2 * DAY_MS).unwrap();
    assert!(w.open(), "still on the queue");
    assert_eq!(w.status, CaseStatus::Attempting);
    assert_eq!(w.status_ko, "연락 시도 중 (1회)");
    assert_eq!(w.attempts, 1);
    assert_eq!(w.open_alerts.len(), 2, "both alerts stay open");
    // P2: the next attempt two days after the failed one
    assert_eq!(w.next_attempt_at, Some(T0 + 4 * DAY_MS));
    assert!(w.step_ko.contains("1회 시도, 다음 시도"), "{}", w.step_ko);
    // four days later the retry is due today or earlier
    let later = d.cases.household_work("hh-1", T0 + 5 * DAY_MS).unwrap();
    assert_eq!(later.tier, Some(Tier::AttemptDue));
    let reached = d
        .record(attempt(
            "o2",
            "hh-1",
            ContactResult::Reached,
            T0 + 5 * DAY_MS,
        ))
        .expect("recorded");
    assert_eq!(reached.first_contacts.len(), 2, "the reach answers both");
    assert!(reached.first_contacts.iter().all(|c| c.attempts == 1));
    assert!(reached.escalations.is_empty(), "in time");
    assert!(d.cases.overdue(T0 + 60 * DAY_MS).is_empty());
    let listed = d.cases.household_work("hh-1", T0 + 60 * DAY_MS).unwrap();
    assert!(!listed.open() && !listed.overdue());
    assert_eq!(listed.status, CaseStatus::Contacted);
}

#[test]
fn an_overdue_escalation_says_how_many_attempts_were_made() {
    let mut d = desk();
    d.alert("hh-1", Priority::P1, 0, T0);
    for (id, at) in [("o1", T0 + DAY_MS), ("o2", T0 + 2 * DAY_MS)] {
        d.record(attempt(id, "hh-1", ContactResult::NoAnswer, at))
            .unwrap();
    }
    let due = d.cases.overdue(T0 + 3 * DAY_MS + 1);
    assert_eq!(reasons(&due), [EscalationReason::Overdue]);
    assert_eq!(due[0].attempts, 2);
    let v = serde_json::to_value(&due[0]).unwrap();
    assert_eq!(v["attempts"], 2);
    assert_eq!(v["outcomes"][0]["channel"], "phone");
}

#[test]
fn a_contact_after_the_due_time_still_escalates_the_alert_once() {
    let mut d = desk();
    d.alert("hh-1", Priority::P1, 0, T0);
    // the contact reaches sagak before its timer looked
    let late = d
        .record(attempt(
            "o1",
            "hh-1",
            ContactResult::Reached,
            T0 + 4 * DAY_MS,
        ))
        .expect("recorded");
    assert_eq!(reasons(&late.escalations), [EscalationReason::Overdue]);
    assert!(d.cases.overdue(T0 + 5 * DAY_MS).is_empty());
}

#[test]
fn three_failed_attempts_make_a_household_unreachable_and_raise_its_next_alert() {
    let mut d = desk();
    d.alert("hh-1", Priority::P3, 0, T0);
    for (i, id) in ["o1", "o2"].iter().enumerate() {
        let at = T0 + (i as i64 + 1) * 3_600_000;
        let applied = d
            .record(attempt(id, "hh-1", ContactResult::NoAnswer, at))
            .unwrap();
        assert!(applied.escalations.is_empty(), "after {} attempts", i + 1);
    }
    let third = d
        .record(attempt(
            "o3",
            "hh-1",
            ContactResult::WrongNumber,
            T0 + DAY_MS,
        ))
        .unwrap();
    assert_eq!(reasons(&third.escalations), [EscalationReason::Unreachable]);
    let e = &third.escalations[0];
    assert_eq!(e.outcomes.len(), 3, "the outcomes so far");
    assert_eq!(e.outcomes[2].kind, "contact_attempted/wrong_number");
    assert_eq!(e.outcomes[2].label, "연락 시도 (결번)");
    let fourth = d
        .record(attempt(
            "o4",
            "hh-1",
            ContactResult::NoAnswer,
            T0 + 2 * DAY_MS,
        ))
        .unwrap();
    assert!(fourth.escalations.is_empty(), "one escalation per spell");
    let next = d.assess(
        "hh-1",
        Priority::P3,
        &["health"],
        DONG,
        40,
        T0 + 40 * DAY_MS,
    );
    assert_eq!(
        next.verdict,
        Verdict::Gate(Priority::P2),
        "one priority higher"
    );
    let alert = next.alert.expect("sent");
    assert_eq!(alert.case.status, CaseStatus::Unreachable);
    assert_eq!(alert.case.scored_priority, Some(Priority::P3));
    // a dong's "moved out" reaches nobody: the household stays open
    d.record(outcome(
        "o5",
        "hh-1",
        Said::NotApplicable(NotApplicableReason::MovedOut),
        T0 + 41 * DAY_MS,
    ))
    .unwrap();
    let listed = d.cases.household_work("hh-1", T0 + 42 * DAY_MS).unwrap();
    assert_eq!(listed.status, CaseStatus::Unreachable);
    assert_eq!(listed.tier, Some(Tier::Urgent), "first on the queue");
    assert_eq!(listed.open_alerts.len(), 2, "every alert still open");
    d.record(attempt(
        "o6",
        "hh-1",
        ContactResult::Reached,
        T0 + 43 * DAY_MS,
    ))
    .unwrap();
    let listed = d.cases.household_work("hh-1", T0 + 44 * DAY_MS).unwrap();
    assert_ne!(listed.status, CaseStatus::Unreachable);
    assert!(!listed.open(), "reached: off the waiting queue");
}

#[test]
fn an_empty_house_once_or_two_weeks_of_failures_are_enough() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    let once = d
        .record(attempt(
            "o1",
            "hh-1",
            ContactResult::EmptyHouse,
            T0 + DAY_MS,
        ))
        .unwrap();
    assert_eq!(reasons(&once.escalations), [EscalationReason::Unreachable]);

    d.alert("hh-2", Priority::P2, 0, T0);
    d.record(attempt("p1", "hh-2", ContactResult::NoAnswer, T0 + DAY_MS))
        .unwrap();
    let later = d
        .record(attempt(
            "p2",
            "hh-2",
            ContactResult::NoAnswer,
            T0 + 15 * DAY_MS,
        ))
        .unwrap();
    assert_eq!(reasons(&later.escalations), [EscalationReason::Unreachable]);
}

#[test]
fn declined_holds_the_same_or_a_lower_priority_for_ninety_days() {
    let mut d = desk();
    let first = d.alert("hh-1", Priority::P2, 0, T0);
    let mut o = outcome("o1", "hh-1", Said::Declined, T0 + DAY_MS);
    o.alert_id = outcome::parse_alert_id(&first.alert_id);
    d.record(o).unwrap();
    for p in [Priority::P2, Priority::P3] {
        let v = d
            .assess("hh-1", p, &["health"], DONG, 45, T0 + 45 * DAY_MS)
            .verdict;
        assert_eq!(v, Verdict::Hold, "{p:?}");
    }
    let higher = d.assess(
        "hh-1",
        Priority::P1,
        &["health"],
        DONG,
        46,
        T0 + 46 * DAY_MS,
    );
    let alert = higher.alert.expect("a higher priority still alerts");
    assert_eq!(alert.case.status, CaseStatus::Held);
    let last = alert
        .case
        .last_outcome
        .expect("carries the previous outcome");
    assert_eq!(
        (last.kind.as_str(), last.label.as_str()),
        ("declined", "서비스 거부")
    );
    let new_category = d.assess("hh-1", Priority::P2, &["health", "utility"], DONG, 47, T0);
    assert!(
        matches!(new_category.verdict, Verdict::Gate(_)),
        "a new category still alerts"
    );
    let after = d.assess(
        "hh-1",
        Priority::P2,
        &["health"],
        DONG,
        92,
        T0 + 92 * DAY_MS,
    );
    assert!(matches!(after.verdict, Verdict::Gate(_)), "the hold ends");
}

#[test]
fn withdrawn_undoes_a_mistaken_outcome() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    d.record(outcome("o1", "hh-1", Said::Declined, T0 + DAY_MS))
        .unwrap();
    let held = d
        .assess("hh-1", Priority::P2, &["health"], DONG, 40, T0)
        .verdict;
    assert_eq!(held, Verdict::Hold);
    d.record(outcome(
        "o2",
        "hh-1",
        Said::Withdrawn("o1".into()),
        T0 + 2 * DAY_MS,
    ))
    .unwrap();
    let v = d
        .assess("hh-1", Priority::P2, &["health"], DONG, 41, T0)
        .verdict;
    assert!(matches!(v, Verdict::Gate(_)), "{v:?}");
    let unknown = d
        .record(outcome("o3", "hh-1", Said::Withdrawn("nope".into()), T0))
        .unwrap_err();
    assert_eq!(unknown.class, RejectClass::UnknownOutcome);
}

#[test]
fn a_withdrawn_reach_puts_the_household_back_on_the_queue() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    d.record(attempt("o1", "hh-1", ContactResult::Reached, T0 + DAY_MS))
        .unwrap();
    let w = d.cases.household_work("hh-1", T0 + DAY_MS).unwrap();
    assert!(!w.open(), "reached");
    d.record(outcome(
        "o2",
        "hh-1",
        Said::Withdrawn("o1".into()),
        T0 + 2 * DAY_MS,
    ))
    .unwrap();
    let w = d.cases.household_work("hh-1", T0 + 2 * DAY_MS).unwrap();
    assert!(w.open(), "nobody was reached after all");
    assert_eq!(w.status, CaseStatus::New);
    // due again from the withdrawal (P2: seven days)
    assert_eq!(w.due_at, Some(T0 + 9 * DAY_MS));
    let due = d.cases.overdue(T0 + 9 * DAY_MS + 1);
    assert_eq!(reasons(&due), [EscalationReason::Overdue]);
}

#[test]
fn deceased_drops_the_household_and_only_the_city_may_withdraw_it() {
    let mut d = desk();
    d.alert("hh-1", Priority::P1, 0, T0);
    let dead = Said::NotApplicable(NotApplicableReason::Deceased);
    d.record(outcome("o1", "hh-1", dead, T0 + DAY_MS)).unwrap();
    let v = d
        .assess("hh-1", Priority::P1, &["health"], DONG, 40, T0)
        .verdict;
    assert_eq!(v, Verdict::Drop);
    let by_dong = d
        .record(outcome(
            "o2",
            "hh-1",
            Said::Withdrawn("o1".into()),
            T0 + 2 * DAY_MS,
        ))
        .unwrap_err();
    assert_eq!(by_dong.class, RejectClass::WrongOffice);
    let mut by_city = outcome("o3", "hh-1", Said::Withdrawn("o1".into()), T0 + 2 * DAY_MS);
    by_city.dong_code = CITY.into();
    d.record(by_city).unwrap();
    let v = d
        .assess("hh-1", Priority::P1, &["health"], DONG, 41, T0)
        .verdict;
    assert!(matches!(v, Verdict::Gate(_)), "{v:?}");
}

#[test]
fn moved_out_holds_the_old_dong_and_alerts_follow_the_new_one() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    let moved = Said::NotApplicable(NotApplicableReason::MovedOut);
    d.record(outcome("o1", "hh-1", moved, T0 + DAY_MS)).unwrap();
    let old = d
        .assess("hh-1", Priority::P2, &["health"], DONG, 40, T0)
        .verdict;
    assert_eq!(old, Verdict::Hold);
    let new = d.assess("hh-1", Priority::P2, &["health"], OTHER, 41, T0);
    assert_eq!(new.alert.map(|a| a.dong_code), Some(OTHER.to_string()));
    // the old office may still answer the alert it had
    d.record(outcome("o2", "hh-1", Said::Counselled, T0 + 42 * DAY_MS))
        .unwrap();
}

#[test]
fn support_linked_holds_and_a_later_alert_is_a_recurrence() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    d.record(outcome("o1", "hh-1", Said::SupportLinked(1), T0 + DAY_MS))
        .unwrap();
    let v = d
        .assess("hh-1", Priority::P2, &["health"], DONG, 60, T0)
        .verdict;
    assert_eq!(v, Verdict::Hold);
    let later = d.alert("hh-1", Priority::P2, 95, T0 + 95 * DAY_MS);
    assert!(later.case.recurrence);
    assert_eq!(later.case.times_flagged_before, 1);
}

#[test]
fn a_household_in_case_management_gets_case_updates_not_alerts() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    let open = Said::CaseOpened(Track::CaseManagement);
    d.record(outcome("o1", "hh-1", open, T0 + DAY_MS)).unwrap();
    let same = d
        .assess("hh-1", Priority::P2, &["health"], DONG, 40, T0)
        .verdict;
    assert_eq!(same, Verdict::Quiet);
    let worse = d.assess(
        "hh-1",
        Priority::P1,
        &["health", "utility"],
        DONG,
        41,
        T0 + 41 * DAY_MS,
    );
    assert_eq!(worse.verdict, Verdict::CaseUpdate);
    let update = worse.alert.expect("sent");
    assert_eq!(update.case.kind, AlertType::CaseUpdate);
    assert_eq!(update.case.status, CaseStatus::InCase);
    assert_eq!(update.case.due_at, None);
    let v = serde_json::to_value(&update).unwrap();
    assert_eq!(v["type"], "case_update");
    // the office has heard of it now
    let again = d
        .assess("hh-1", Priority::P1, &["health", "utility"], DONG, 42, T0)
        .verdict;
    assert_eq!(again, Verdict::Quiet);
    assert_eq!(d.cases.in_case().collect::<Vec<_>>(), ["hh-1"]);
}

#[test]
fn a_walk_in_case_turns_later_signals_into_case_updates() {
    let mut d = desk();
    let open = Said::CaseOpened(Track::ServiceLinkage);
    d.record(outcome("o1", "hh-9", open, T0))
        .expect("accepted without an alert");
    let v = d
        .assess("hh-9", Priority::P3, &["health"], DONG, 5, T0)
        .verdict;
    assert_eq!(v, Verdict::CaseUpdate);
}

#[test]
fn after_a_case_closes_the_next_alert_says_it_reopened() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    d.record(outcome(
        "o1",
        "hh-1",
        Said::CaseOpened(Track::CaseManagement),
        T0 + DAY_MS,
    ))
    .unwrap();
    d.record(outcome(
        "o2",
        "hh-1",
        Said::CaseClosed(CloseReason::GoalMet),
        T0 + 30 * DAY_MS,
    ))
    .unwrap();
    let again = d.alert("hh-1", Priority::P2, 60, T0 + 60 * DAY_MS);
    assert!(again.case.reopened);
    assert_eq!(again.case.times_closed, 1);
    assert_eq!(again.case.status, CaseStatus::Closed);
}

#[test]
fn three_alerts_in_a_year_without_engagement_go_to_the_city_team() {
    let mut d = desk();
    let mut escalated = Vec::new();
    for day in [0, 100, 200] {
        let sent = d.assess(
            "hh-1",
            Priority::P3,
            &["health"],
            DONG,
            day,
            T0 + day * DAY_MS,
        );
        // a failed attempt each time: flagged, never reached
        d.record(attempt(
            &format!("o{day}"),
            "hh-1",
            ContactResult::NoAnswer,
            T0 + (day + 1) * DAY_MS,
        ))
        .unwrap();
        escalated.extend(sent.escalation);
    }
    assert_eq!(reasons(&escalated), [EscalationReason::RepeatedlyFlagged]);
    assert_eq!(escalated[0].alert_ids.len(), 3);
    assert_eq!(escalated[0].times_flagged, 3);

    let mut d = desk();
    let mut escalated = Vec::new();
    for day in [0, 100, 200] {
        escalated.extend(
            d.assess("hh-2", Priority::P3, &["health"], DONG, day, T0)
                .escalation,
        );
        if day == 100 {
            d.record(outcome("c", "hh-2", Said::Counselled, T0 + 101 * DAY_MS))
                .unwrap();
        }
    }
    assert!(escalated.is_empty(), "counselled in between: {escalated:?}");
}

#[test]
fn outcomes_from_other_offices_and_for_unknown_alerts_are_rejected() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    let mut elsewhere = outcome("o1", "hh-1", Said::Counselled, T0);
    elsewhere.dong_code = OTHER.into();
    assert_eq!(
        d.record(elsewhere).unwrap_err().class,
        RejectClass::WrongOffice
    );
    let mut city = outcome("o2", "hh-1", Said::Counselled, T0);
    city.dong_code = CITY.into();
    assert!(
        d.record(city).is_ok(),
        "the city team may record for any household"
    );
    let mut unknown = outcome("o3", "hh-1", Said::Counselled, T0);
    unknown.alert_id = Some(42);
    assert_eq!(
        d.record(unknown).unwrap_err().class,
        RejectClass::UnknownAlert
    );
    let again = d
        .record(outcome("o2", "hh-1", Said::Counselled, T0))
        .unwrap();
    assert!(again.duplicate, "a re-sent outcome counts once");
}

#[test]
fn a_replayed_alert_keeps_its_first_due_time_and_count() {
    let mut d = desk();
    let first = d.alert("hh-1", Priority::P1, 0, T0);
    // the same decision again after a restart, an hour later on the clock
    let again = d.alert("hh-1", Priority::P1, 0, T0 + 3_600_000);
    assert_eq!(again.alert_id, first.alert_id);
    assert_eq!(again.case.due_at, first.case.due_at);
    assert_eq!(d.cases.record("hh-1").map(|r| r.flagged), Some(1));
}

mod meeting;
mod records;
