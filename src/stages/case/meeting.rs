//! Case meetings (사례회의): where a household stands for its dong's
//! meeting, as part of its open work, and where it goes on a meeting's
//! agenda ([`OpenWork::agenda_place`]).
//!
//! The national process runs intake, needs assessment, the meeting's
//! selection, a service plan, delivery and reviews, closure and follow-up.
//! A dong's meeting therefore looks at three kinds of household:
//! 1. **new candidates**: reached and counselled, not in case management,
//!    whose crisis meets in more than one category or whose unreachable
//!    spell has just ended (the Suwon family would have been one);
//! 2. **cases to review**: no plan yet, a review due, a goal past its
//!    target date and not met, a situation worse than when the plan was
//!    made (a new category or a higher priority from the signals), or
//!    services linked that no review has yet judged;
//! 3. **cases ready to close**: every goal met at the last review, or no
//!    goal unmet and no qualifying signal for `[outcomes] close_quiet`.
//!
//! A case whose situation worsened is reviewed, never offered to close.
//! Everything here is derived from the case record at one instant, like
//! the rest of the open work, so the page, the CSV, the printed agenda,
//! `sagak agenda` and the city's counts agree.

use super::outcome::{date_text, GoalResult, Need, Service};
use super::record::{CaseRecord, HeldOutcome};
use super::rules::CaseView;
use super::CaseBook;
use crate::definition::DAY_MS;
use crate::stages::case::outcome::OutcomeKind;
use crate::stages::score::Priority;

/// An open case's plan and reviews as the meeting sees them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Managed {
    /// The newest plan, if one was made since the case opened.
    pub(crate) plan: Option<PlanNow>,
    /// The newest review since that plan.
    pub(crate) review: Option<ReviewNow>,
    /// Reviews since the plan.
    pub(crate) reviews: u32,
    /// The day (the office's calendar) the next review is due.
    pub(crate) review_due: Option<i32>,
    /// What is worse now than when the plan was made: the priority then
    /// and now, when higher; categories that are new.
    pub(crate) worse_priority: Option<(Priority, Priority)>,
    pub(crate) new_categories: Vec<String>,
    /// Services linked since the case opened that no review has judged.
    pub(crate) unconfirmed: Vec<&'static str>,
    /// The newest day a signal of the household qualified.
    pub(crate) signal_day: Option<i32>,
    /// Days without one that make a case quiet enough to close.
    pub(crate) quiet_days: i32,
}

/// A plan in force.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlanNow {
    /// 32 bits of the hash of its `outcome_id` (its goals' texts are kept
    /// beside the record under this key).
    pub(crate) key: u32,
    /// When it was recorded, ms.
    pub(crate) at: i64,
    pub(crate) needs: Vec<Need>,
    pub(crate) services: Vec<&'static str>,
    /// Each goal's target day and its newest result (none: not reviewed).
    pub(crate) goals: Vec<(i32, Option<GoalResult>)>,
}

/// The newest review of the plan in force.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReviewNow {
    pub(crate) at: i64,
    pub(crate) results: Vec<GoalResult>,
    pub(crate) fits: Vec<&'static str>,
    pub(crate) unfit: Vec<&'static str>,
    pub(crate) next_review: Option<i32>,
}

/// Why a household not in case management may be selected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidacy {
    /// Its newest counselling, ms.
    pub(crate) counselled_at: i64,
    /// Categories of its newest alert.
    pub(crate) categories: usize,
    /// The day (the office's calendar) a reach ended its unreachable spell.
    pub(crate) spell_ended_day: Option<i32>,
}

impl Candidacy {
    /// Whether a meeting is asked to consider it: its crisis meets in more
    /// than one category, or its unreachable spell ended.
    pub(crate) fn proposed(&self) -> bool {
        self.categories > 1 || self.spell_ended_day.is_some()
    }
}

/// A case opening in the household's history (for the month's figures and
/// the city's follow-up of reopened cases).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Opening {
    /// When it opened, ms.
    pub(crate) at: i64,
    /// Days from the first alert of the crisis before it to the opening.
    pub(crate) after_alert_days: Option<i64>,
    /// When the case before it closed, ms (a reopened case).
    pub(crate) closed_before: Option<i64>,
}

/// The three parts of a meeting's agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Part {
    Candidate,
    Review,
    Close,
}

impl Part {
    pub(crate) const ALL: [Part; 3] = [Part::Candidate, Part::Review, Part::Close];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Part::Candidate => "candidate",
            Part::Review => "review",
            Part::Close => "close",
        }
    }

    pub(crate) fn label_ko(self) -> &'static str {
        match self {
            Part::Candidate => "신규 대상 후보",
            Part::Review => "점검할 사례",
            Part::Close => "종결 검토 사례",
        }
    }

    pub(crate) fn label_en(self) -> &'static str {
        match self {
            Part::Candidate => "New candidates",
            Part::Review => "Cases to review",
            Part::Close => "Cases ready to close",
        }
    }
}

/// Why a household is on the agenda, in the words the meeting reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Why {
    /// Its crisis meets in this many categories.
    Categories(usize),
    /// Its unreachable spell ended on this day.
    SpellEnded(i32),
    /// The case has no plan yet.
    NoPlan,
    /// Its review is due (since this day).
    ReviewDue(i32),
    /// Goal number (from 1) is past its target day and not met.
    GoalPastDate(usize, i32),
    /// Priority higher now than at the plan.
    HigherPriority(Priority, Priority),
    /// Categories that were not there at the plan.
    NewCategories(Vec<String>),
    /// Services linked that no review has judged.
    Unconfirmed(Vec<&'static str>),
    /// Every goal met at the last review.
    GoalsMet,
    /// No goal unmet and no qualifying signal for this many days.
    Quiet(i64),
}

impl Why {
    /// A stable name for the CSV and the API.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Why::Categories(_) => "categories",
            Why::SpellEnded(_) => "unreachable_ended",
            Why::NoPlan => "no_plan",
            Why::ReviewDue(_) => "review_due",
            Why::GoalPastDate(..) => "goal_past_date",
            Why::HigherPriority(..) => "higher_priority",
            Why::NewCategories(_) => "new_category",
            Why::Unconfirmed(_) => "services_unconfirmed",
            Why::GoalsMet => "goals_met",
            Why::Quiet(_) => "quiet",
        }
    }

    /// In Korean and English.
    pub(crate) fn text(&self) -> (String, String) {
        let day = |d: i32| date_text(d);
        let service_ko = |s: &[&str]| {
            s.iter()
                .filter_map(|n| Service::parse(n).map(|v| v.label_ko()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Why::Categories(n) => (
                format!("위기 {n}개 영역"),
                format!("crisis in {n} categories"),
            ),
            Why::SpellEnded(d) => (
                format!("소재파악 해소 {}", day(*d)),
                format!("unreachable spell ended {}", day(*d)),
            ),
            Why::NoPlan => ("사례 계획 없음".into(), "no plan yet".into()),
            Why::ReviewDue(d) => (
                format!("점검일 {}", day(*d)),
                format!("review due {}", day(*d)),
            ),
            Why::GoalPastDate(g, d) => (
                format!("목표 {g} 기한 경과 ({})", day(*d)),
                format!("goal {g} past its date ({})", day(*d)),
            ),
            Why::HigherPriority(from, to) => (
                format!("우선순위 상승 {}→{}", from.as_str(), to.as_str()),
                format!("priority rose {}->{}", from.as_str(), to.as_str()),
            ),
            Why::NewCategories(c) => (
                format!("새 위기 영역: {}", c.join(", ")),
                format!("new category: {}", c.join(", ")),
            ),
            Why::Unconfirmed(s) => (
                format!("연계 서비스 미확인: {}", service_ko(s)),
                format!("linked services not yet reviewed: {}", s.join(", ")),
            ),
            Why::GoalsMet => ("모든 목표 달성".into(), "every goal met".into()),
            Why::Quiet(d) => (
                format!("미달성 목표 없음, {d}일간 위기 신호 없음"),
                format!("no goal unmet, no qualifying signal for {d} days"),
            ),
        }
    }
}

impl Candidacy {
    /// Its place on the agenda: a candidate, and why; `None` when no
    /// meeting is asked to consider it.
    pub(crate) fn place(&self) -> Option<(Part, Vec<Why>)> {
        if !self.proposed() {
            return None;
        }
        let mut why = Vec::new();
        if self.categories > 1 {
            why.push(Why::Categories(self.categories));
        }
        if let Some(day) = self.spell_ended_day {
            why.push(Why::SpellEnded(day));
        }
        Some((Part::Candidate, why))
    }
}

impl Managed {
    /// Its place on the agenda of the meeting of `day`, and why.
    pub(crate) fn place(&self, day: i32) -> Option<(Part, Vec<Why>)> {
        let mut worse = Vec::new();
        if let Some((from, to)) = self.worse_priority {
            worse.push(Why::HigherPriority(from, to));
        }
        if !self.new_categories.is_empty() {
            worse.push(Why::NewCategories(self.new_categories.clone()));
        }
        if worse.is_empty() {
            if let Some(why) = self.ready_to_close(day) {
                return Some((Part::Close, vec![why]));
            }
        }
        let mut why = worse;
        match &self.plan {
            None => why.push(Why::NoPlan),
            Some(plan) => {
                if let Some(due) = self.review_due.filter(|&d| d <= day) {
                    why.push(Why::ReviewDue(due));
                }
                for (i, &(target, result)) in plan.goals.iter().enumerate() {
                    if target < day && result != Some(GoalResult::Met) {
                        why.push(Why::GoalPastDate(i + 1, target));
                    }
                }
            }
        }
        if !self.unconfirmed.is_empty() {
            why.push(Why::Unconfirmed(self.unconfirmed.clone()));
        }
        (!why.is_empty()).then_some((Part::Review, why))
    }

    /// Every goal met at the last review; or none unmet and quiet.
    fn ready_to_close(&self, day: i32) -> Option<Why> {
        let review = self.review.as_ref()?;
        if review.results.iter().all(|&r| r == GoalResult::Met) {
            return Some(Why::GoalsMet);
        }
        if review.results.contains(&GoalResult::NotMet) {
            return None;
        }
        let quiet = i64::from(day) - i64::from(self.signal_day?);
        (quiet >= i64::from(self.quiet_days)).then_some(Why::Quiet(quiet))
    }
}

impl CaseBook {
    /// The open case's plan and reviews, if its case is open.
    pub(crate) fn managed(&self, r: &CaseRecord, view: &CaseView) -> Option<Box<Managed>> {
        let opened = view.in_case?;
        let clock = self.rules.clock;
        let local = |at: i64| clock.day(at) as i32;
        let live = r.live_outcomes();
        let find = |id: Option<u32>| id.and_then(|id| live.iter().copied().find(|o| o.id == id));
        let plan_outcome = find(view.plan);
        let review_outcome = find(view.review);
        let plan = plan_outcome.and_then(|o| plan_now(r, o, review_outcome));
        let review = review_outcome.and_then(|o| review_now(r, o));
        let reviews = plan_outcome.map_or(0, |p| {
            live.iter()
                .filter(|o| o.kind == OutcomeKind::CaseReviewed && o.recorded_at >= p.recorded_at)
                .count() as u32
        });
        let last_look = review
            .as_ref()
            .map(|v| v.at)
            .or(plan.as_ref().map(|p| p.at));
        let review_due = match (&review, last_look) {
            (
                Some(ReviewNow {
                    next_review: Some(d),
                    ..
                }),
                _,
            ) => Some(*d),
            (_, Some(at)) => Some(local(at).saturating_add(self.rules.review_days)),
            _ => None,
        };
        let (worse_priority, new_categories) = self.worse_since(r, plan_outcome);
        let signal_day = r.signal_day.max(r.last_alert().map(|a| a.day));
        Some(Box::new(Managed {
            plan,
            review,
            reviews,
            review_due,
            worse_priority,
            new_categories,
            unconfirmed: unconfirmed(&live, opened),
            signal_day,
            quiet_days: self.rules.quiet_days,
        }))
    }

    /// What the signals say now that they did not when the plan was made.
    fn worse_since(
        &self,
        r: &CaseRecord,
        plan: Option<&HeldOutcome>,
    ) -> (Option<(Priority, Priority)>, Vec<String>) {
        let (Some(plan), Some((now_p, now_c))) = (plan, r.baseline) else {
            return (None, Vec::new());
        };
        let higher = (now_p > plan.priority).then_some((plan.priority, now_p));
        let new = now_c & !plan.categories;
        let names = if new == 0 {
            Vec::new()
        } else {
            self.category_names(new)
        };
        (higher, names)
    }

    /// Why a household not in case management may be selected: counselled
    /// since its last case closed, with nothing after saying no.
    pub(crate) fn candidacy(&self, r: &CaseRecord, view: &CaseView) -> Option<Candidacy> {
        if view.in_case.is_some() || view.deceased_at.is_some() {
            return None;
        }
        let counselled_at = view.counselled_at?;
        if view.closed_at.is_some_and(|c| c > counselled_at) {
            return None;
        }
        let live = r.live_outcomes();
        let refused_since = live.iter().any(|o| {
            o.recorded_at >= counselled_at
                && matches!(o.kind, OutcomeKind::Declined | OutcomeKind::NotApplicable)
        });
        if refused_since {
            return None;
        }
        // the newest alert's categories; with none kept (a backfill sends
        // none), those of the alert the counselling followed (a record
        // without any alert marks them all: unknown, not counted)
        let at_counselling = live
            .iter()
            .rev()
            .find(|o| o.kind == OutcomeKind::Counselled)
            .map(|o| o.categories)
            .filter(|&c| c != u8::MAX);
        let categories = r.last_alert().map(|a| a.categories).or(at_counselling);
        Some(Candidacy {
            counselled_at,
            categories: categories.map_or(0, |c| c.count_ones() as usize),
            spell_ended_day: view
                .spell_ended_at
                .map(|at| self.rules.clock.day(at) as i32),
        })
    }

    /// Every case opening kept, with how long after its crisis's first
    /// alert it came and whether a case closed before it.
    pub(crate) fn openings(r: &CaseRecord) -> Vec<Opening> {
        let mut out = Vec::new();
        // most records never held a case: no need to sort their outcomes
        if !r.outcomes.iter().any(|o| o.kind == OutcomeKind::CaseOpened) {
            return out;
        }
        let mut closed: Option<i64> = None;
        for o in r.live_outcomes() {
            match o.kind {
                OutcomeKind::CaseClosed => closed = Some(o.recorded_at),
                OutcomeKind::CaseOpened => {
                    // the crisis's first alert: the oldest kept after the
                    // case before closed
                    let since = closed.unwrap_or(i64::MIN);
                    let first = r
                        .alerts
                        .iter()
                        .map(|a| i64::from(a.day) * DAY_MS)
                        .filter(|&t| t > since && t <= o.recorded_at)
                        .min();
                    out.push(Opening {
                        at: o.recorded_at,
                        after_alert_days: first.map(|t| (o.recorded_at - t).div_euclid(DAY_MS)),
                        closed_before: closed,
                    });
                }
                _ => {}
            }
        }
        out
    }
}

fn services_of(set: u16) -> Vec<&'static str> {
    Service::ALL
        .iter()
        .filter(|s| set & (1 << s.code()) != 0)
        .map(|s| s.as_str())
        .collect()
}

/// The plan of outcome `o`, with each goal's result from `review`.
fn plan_now(r: &CaseRecord, o: &HeldOutcome, review: Option<&HeldOutcome>) -> Option<PlanNow> {
    let note = r.note_of(o.id)?;
    let results = review.and_then(|v| r.note_of(v.id));
    let goals = note
        .goals
        .iter()
        .enumerate()
        .map(|(i, &target)| {
            let result = results
                .and_then(|n| n.goals.get(i))
                .and_then(|&c| GoalResult::from_code(c as u8));
            (target, result)
        })
        .collect();
    Some(PlanNow {
        key: o.id,
        at: o.recorded_at,
        needs: Need::ALL
            .iter()
            .copied()
            .filter(|n| note.needs & (1 << n.code()) != 0)
            .collect(),
        services: services_of(o.services),
        goals,
    })
}

fn review_now(r: &CaseRecord, o: &HeldOutcome) -> Option<ReviewNow> {
    let note = r.note_of(o.id)?;
    Some(ReviewNow {
        at: o.recorded_at,
        results: note
            .goals
            .iter()
            .filter_map(|&c| GoalResult::from_code(c as u8))
            .collect(),
        fits: services_of(note.fits),
        unfit: services_of(note.unfit),
        next_review: note.next_review,
    })
}

/// Services linked since the case opened with no review since their
/// linking (a review's form asks whether each linked service fits).
fn unconfirmed(live: &[&HeldOutcome], opened: i64) -> Vec<&'static str> {
    let mut linked = 0u16;
    for o in live.iter().filter(|o| o.recorded_at >= opened) {
        match o.kind {
            OutcomeKind::SupportLinked => linked |= o.services,
            OutcomeKind::CaseReviewed => linked = 0,
            _ => {}
        }
    }
    services_of(linked)
}
