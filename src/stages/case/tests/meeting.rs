//! A dong's case meeting: where hand-built records go on its agenda.

use super::*;
use crate::stages::case::meeting::{Part, Why};
use crate::stages::case::outcome::{GoalResult, Plan, Review};

/// The office's calendar day `d` days after T0.
fn day(d: &Desk, days: i64) -> i32 {
    d.cases.rules.clock.day(T0 + days * DAY_MS) as i32
}

fn place(d: &Desk, hh: &str, days: i64) -> Option<(Part, Vec<Why>)> {
    let w = d.cases.household_work(hh, T0 + days * DAY_MS)?;
    w.agenda_place(day(d, days))
}

fn plan(d: &Desk, targets: &[i64]) -> Said {
    Said::CasePlan(Plan {
        needs: 1 << 5,
        services: 1 << Service::Energy.code(),
        targets: targets.iter().map(|&t| day(d, t)).collect(),
    })
}

fn review(results: &[GoalResult], next: Option<i32>) -> Said {
    Said::CaseReviewed(Review {
        results: results.to_vec(),
        fits: 0,
        unfit: 0,
        next_review: next,
    })
}

/// A household alerted over `categories`, its case opened on day 1.
fn in_case(d: &mut Desk, hh: &str, categories: &[&str]) {
    d.assess(hh, Priority::P2, categories, DONG, 0, T0);
    let open = Said::CaseOpened(Track::CaseManagement);
    d.record(outcome(&format!("{hh}-open"), hh, open, T0 + DAY_MS))
        .unwrap();
}

#[test]
fn a_household_becomes_a_candidate_once_counselled() {
    let mut d = desk();
    d.assess("hh-1", Priority::P2, &["health", "utility"], DONG, 0, T0);
    d.record(attempt("o1", "hh-1", ContactResult::Reached, T0 + DAY_MS))
        .unwrap();
    assert_eq!(place(&d, "hh-1", 2), None, "reached, not yet counselled");
    d.record(outcome("o2", "hh-1", Said::Counselled, T0 + 2 * DAY_MS))
        .unwrap();
    assert_eq!(
        place(&d, "hh-1", 3),
        Some((Part::Candidate, vec![Why::Categories(2)]))
    );
    // one category alone is not a meeting's matter
    d.assess("hh-2", Priority::P3, &["health"], DONG, 0, T0);
    d.record(outcome("o3", "hh-2", Said::Counselled, T0 + DAY_MS))
        .unwrap();
    assert_eq!(place(&d, "hh-2", 3), None);
    // a household that declined after counselling is not proposed
    d.record(outcome("o4", "hh-1", Said::Declined, T0 + 3 * DAY_MS))
        .unwrap();
    assert_eq!(place(&d, "hh-1", 4), None);
}

#[test]
fn a_household_whose_unreachable_spell_ended_is_a_candidate() {
    let mut d = desk();
    d.assess("hh-1", Priority::P3, &["health"], DONG, 0, T0);
    for i in 1..=3 {
        let id = format!("a{i}");
        d.record(attempt(
            &id,
            "hh-1",
            ContactResult::NoAnswer,
            T0 + i * DAY_MS,
        ))
        .unwrap();
    }
    d.record(attempt(
        "r",
        "hh-1",
        ContactResult::Reached,
        T0 + 5 * DAY_MS,
    ))
    .unwrap();
    d.record(outcome("c", "hh-1", Said::Counselled, T0 + 6 * DAY_MS))
        .unwrap();
    let (part, why) = place(&d, "hh-1", 7).expect("on the agenda");
    assert_eq!(part, Part::Candidate);
    assert_eq!(why, vec![Why::SpellEnded(day(&d, 5))]);
}

#[test]
fn a_case_with_a_goal_past_its_date_is_due_for_review() {
    let mut d = desk();
    in_case(&mut d, "hh-1", &["health"]);
    assert_eq!(
        place(&d, "hh-1", 2),
        Some((Part::Review, vec![Why::NoPlan])),
        "an open case without a plan is the meeting's to plan"
    );
    let p = plan(&d, &[20, 100]);
    d.record(outcome("p", "hh-1", p, T0 + 2 * DAY_MS)).unwrap();
    assert_eq!(place(&d, "hh-1", 10), None, "nothing due yet");
    let (part, why) = place(&d, "hh-1", 25).expect("goal 1 past its date");
    assert_eq!(part, Part::Review);
    assert_eq!(why, vec![Why::GoalPastDate(1, day(&d, 20))]);
    // thirty days after the plan the review is due as well
    let (_, why) = place(&d, "hh-1", 32).unwrap();
    assert_eq!(why[0], Why::ReviewDue(day(&d, 32)));
    // a review that met goal 1 and set the next review clears both
    let next = day(&d, 60);
    let v = review(&[GoalResult::Met, GoalResult::Partly], Some(next));
    d.record(outcome("v", "hh-1", v, T0 + 33 * DAY_MS)).unwrap();
    assert_eq!(place(&d, "hh-1", 40), None);
    assert_eq!(
        place(&d, "hh-1", 60),
        Some((Part::Review, vec![Why::ReviewDue(next)]))
    );
}

#[test]
fn a_case_with_every_goal_met_or_quiet_is_ready_to_close() {
    let mut d = desk();
    in_case(&mut d, "hh-1", &["health"]);
    let p = plan(&d, &[200, 200]);
    d.record(outcome("p", "hh-1", p, T0 + 2 * DAY_MS)).unwrap();
    let v = review(&[GoalResult::Met, GoalResult::Partly], Some(day(&d, 300)));
    d.record(outcome("v", "hh-1", v, T0 + 40 * DAY_MS)).unwrap();
    // its signals still qualify on day 50: not quiet
    let quiet = d.assess("hh-1", Priority::P2, &["health"], DONG, 50, T0);
    assert_eq!(quiet.verdict, Verdict::Quiet);
    assert_eq!(place(&d, "hh-1", 100), None);
    // ninety days after the last qualifying signal, no goal unmet
    assert_eq!(
        place(&d, "hh-1", 140),
        Some((Part::Close, vec![Why::Quiet(90)]))
    );
    // every goal met closes at once
    in_case(&mut d, "hh-2", &["health"]);
    d.record(outcome("p2", "hh-2", plan(&d, &[200]), T0 + 2 * DAY_MS))
        .unwrap();
    let met = review(&[GoalResult::Met], None);
    d.record(outcome("v2", "hh-2", met, T0 + 9 * DAY_MS))
        .unwrap();
    assert_eq!(
        place(&d, "hh-2", 10),
        Some((Part::Close, vec![Why::GoalsMet]))
    );
    // a goal not met keeps it open however quiet
    in_case(&mut d, "hh-3", &["health"]);
    d.record(outcome("p3", "hh-3", plan(&d, &[400]), T0 + 2 * DAY_MS))
        .unwrap();
    let unmet = review(&[GoalResult::NotMet], Some(day(&d, 300)));
    d.record(outcome("v3", "hh-3", unmet, T0 + 9 * DAY_MS))
        .unwrap();
    assert_eq!(place(&d, "hh-3", 200), None);
}

#[test]
fn a_case_whose_household_gains_a_category_is_marked_worse() {
    let mut d = desk();
    in_case(&mut d, "hh-1", &["health"]);
    d.record(outcome("p", "hh-1", plan(&d, &[200]), T0 + 2 * DAY_MS))
        .unwrap();
    let met = review(&[GoalResult::Met], None);
    d.record(outcome("v", "hh-1", met, T0 + 9 * DAY_MS))
        .unwrap();
    let worse = d.assess(
        "hh-1",
        Priority::P1,
        &["health", "utility"],
        DONG,
        12,
        T0 + 12 * DAY_MS,
    );
    assert_eq!(worse.verdict, Verdict::CaseUpdate);
    let (part, why) = place(&d, "hh-1", 13).expect("on the agenda");
    assert_eq!(part, Part::Review, "worse is reviewed, never closed");
    assert_eq!(
        why,
        vec![
            Why::HigherPriority(Priority::P2, Priority::P1),
            Why::NewCategories(vec!["utility".into()])
        ]
    );
}

#[test]
fn plans_and_reviews_are_checked_against_the_case() {
    let mut d = desk();
    d.assess("hh-1", Priority::P2, &["health"], DONG, 0, T0);
    let p = plan(&d, &[30]);
    let refused = d.record(outcome("p0", "hh-1", p.clone(), T0)).unwrap_err();
    assert_eq!(refused.class, RejectClass::NoOpenCase);
    in_case(&mut d, "hh-1", &["health"]);
    let early = review(&[GoalResult::Met], None);
    let refused = d.record(outcome("v0", "hh-1", early, T0)).unwrap_err();
    assert_eq!(refused.class, RejectClass::NoPlan);
    d.record(outcome("p1", "hh-1", p, T0 + 2 * DAY_MS)).unwrap();
    let two = review(&[GoalResult::Met, GoalResult::Met], None);
    let refused = d.record(outcome("v1", "hh-1", two, T0)).unwrap_err();
    assert_eq!(refused.class, RejectClass::NoPlan, "one goal, two results");
    // a withdrawn plan is no plan; the record reads back whole
    d.record(outcome(
        "w",
        "hh-1",
        Said::Withdrawn("p1".into()),
        T0 + 3 * DAY_MS,
    ))
    .unwrap();
    assert_eq!(
        place(&d, "hh-1", 4),
        Some((Part::Review, vec![Why::NoPlan]))
    );
    let r = d.cases.record("hh-1").unwrap();
    let mut bytes = Vec::new();
    r.encode(&mut bytes);
    assert_eq!(CaseRecord::decode(&bytes), Some(r));
}

#[test]
fn a_case_reopened_after_closing_is_counted_as_reopened() {
    let mut d = desk();
    in_case(&mut d, "hh-1", &["health"]);
    let close = Said::CaseClosed(CloseReason::GoalMet);
    d.record(outcome("c", "hh-1", close, T0 + 30 * DAY_MS))
        .unwrap();
    d.assess(
        "hh-1",
        Priority::P1,
        &["health"],
        DONG,
        100,
        T0 + 100 * DAY_MS,
    );
    let open = Said::CaseOpened(Track::CaseManagement);
    d.record(outcome("o2", "hh-1", open, T0 + 104 * DAY_MS))
        .unwrap();
    let w = d.cases.household_work("hh-1", T0 + 105 * DAY_MS).unwrap();
    assert_eq!(w.openings.len(), 2);
    assert_eq!(w.openings[0].after_alert_days, Some(1));
    assert_eq!(w.openings[1].closed_before, Some(T0 + 30 * DAY_MS));
    assert_eq!(
        w.openings[1].after_alert_days,
        Some(4),
        "from the new crisis"
    );
}
