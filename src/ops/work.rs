//! The offices' work queue as the web front reads it: one entry per
//! household with an open alert, an unreachable status, a case, or recent
//! activity, indexed by every dong that may see it. The driver keeps it
//! current (the households each batch touched, and a full pass now and
//! then); the web's requests only read it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::stages::alert::{Alert, CaseStatus};
use crate::stages::case::WorkCase;

/// How long a household stays on the board after its last activity when
/// nothing else keeps it there.
pub const RECENT_MS: i64 = 30 * crate::definition::DAY_MS;

/// A household on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// Pseudonymous id.
    pub household_id: String,
    /// Its case.
    pub case: WorkCase,
    /// Score of its newest alert seen by this process.
    pub score: Option<f64>,
    /// Reasons of that alert: (Korean, English).
    pub reasons: Vec<(String, String)>,
}

impl WorkItem {
    /// Whether the office of `dong` may see it: it serves the household
    /// now, or an open alert is addressed to it (the household moved).
    pub fn visible_to(&self, dong: &str) -> bool {
        self.case.dong == dong || self.case.other_dongs.iter().any(|d| d == dong)
    }

    /// The earliest due time of its open alerts, ms.
    pub fn due_at(&self) -> Option<i64> {
        self.case.open_alerts.iter().map(|a| a.due_at).min()
    }

    /// Whether a first contact is past due at `now_ms`.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.due_at().is_some_and(|due| now_ms > due)
    }

    /// Whether it belongs in the work queue: waiting for a first contact,
    /// or not found.
    pub fn in_queue(&self) -> bool {
        !self.case.open_alerts.is_empty() || self.case.status == CaseStatus::Unreachable
    }
}

#[derive(Default)]
struct Inner {
    items: HashMap<String, Arc<WorkItem>>,
    by_dong: HashMap<String, HashSet<String>>,
    /// Reasons and score of the newest alert per household.
    alerts: HashMap<String, (f64, Vec<(String, String)>)>,
}

impl Inner {
    fn unindex(&mut self, household_id: &str) {
        if let Some(old) = self.items.remove(household_id) {
            for d in std::iter::once(&old.case.dong).chain(&old.case.other_dongs) {
                if let Some(set) = self.by_dong.get_mut(d) {
                    set.remove(household_id);
                }
            }
        }
    }

    fn put(&mut self, household_id: String, case: WorkCase) {
        self.unindex(&household_id);
        for d in std::iter::once(&case.dong).chain(&case.other_dongs) {
            self.by_dong
                .entry(d.clone())
                .or_default()
                .insert(household_id.clone());
        }
        let (score, reasons) = self
            .alerts
            .get(&household_id)
            .map(|(s, r)| (Some(*s), r.clone()))
            .unwrap_or_default();
        self.items.insert(
            household_id.clone(),
            Arc::new(WorkItem {
                household_id,
                case,
                score,
                reasons,
            }),
        );
    }
}

/// The board.
#[derive(Default)]
pub struct WorkBoard {
    enabled: AtomicBool,
    /// The pipeline's clock (the demo's is simulated), ms.
    now_ms: AtomicI64,
    inner: RwLock<Inner>,
}

/// Orders a queue: overdue first, then unreachable, then the most urgent
/// priority, then the earliest due time.
fn urgency(item: &WorkItem, now_ms: i64) -> (bool, bool, std::cmp::Reverse<u8>, i64) {
    (
        !item.overdue(now_ms),
        item.case.status != CaseStatus::Unreachable,
        std::cmp::Reverse(item.case.priority.map_or(0, |p| p as u8)),
        item.due_at().unwrap_or(i64::MAX),
    )
}

impl WorkBoard {
    /// Keeps the board from now on (a web front reads it); off, the driver
    /// spends nothing on it.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether the board is kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Sets the pipeline's clock.
    pub fn set_now(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The pipeline's clock, ms (the wall clock before the first batch).
    pub fn now_ms(&self) -> i64 {
        match self.now_ms.load(Ordering::Relaxed) {
            0 => crate::base::clock::wall_clock_ms(),
            t => t,
        }
    }

    /// Keeps the reasons and scores of a batch's alerts.
    pub fn note_alerts(&self, alerts: &[Alert]) {
        let mut inner = self.inner.write();
        for a in alerts {
            let reasons = a
                .reasons
                .iter()
                .map(|r| (r.detail_ko.clone(), r.detail.clone()))
                .collect();
            inner
                .alerts
                .insert(a.household_id.clone(), (a.score, reasons));
        }
    }

    /// Sets the cases of households that changed (`None`: no record).
    pub fn update(&self, cases: Vec<(String, Option<WorkCase>)>) {
        let mut inner = self.inner.write();
        for (household_id, case) in cases {
            match case {
                Some(case) => inner.put(household_id, case),
                None => {
                    inner.unindex(&household_id);
                    inner.alerts.remove(&household_id);
                }
            }
        }
    }

    /// Replaces the whole board (a full pass over the case records). The
    /// new board is built beside the old one, under the read lock only, so
    /// requests go on meanwhile; the write lock is held for the swap.
    pub fn replace(&self, cases: Vec<(String, WorkCase)>) {
        let mut fresh = Inner::default();
        {
            let old = self.inner.read();
            for (household_id, _) in &cases {
                if let Some(a) = old.alerts.get(household_id) {
                    fresh.alerts.insert(household_id.clone(), a.clone());
                }
            }
        }
        for (household_id, case) in cases {
            fresh.put(household_id, case);
        }
        let old = std::mem::replace(&mut *self.inner.write(), fresh);
        // the old board is freed after the lock is released
        drop(old);
    }

    /// A household's entry.
    pub fn get(&self, household_id: &str) -> Option<Arc<WorkItem>> {
        self.inner.read().items.get(household_id).cloned()
    }

    /// Every entry `dong` may see, most urgent first.
    pub fn of_dong(&self, dong: &str) -> Vec<Arc<WorkItem>> {
        let now = self.now_ms();
        let mut items: Vec<Arc<WorkItem>> = {
            let inner = self.inner.read();
            inner
                .by_dong
                .get(dong)
                .map(|set| {
                    set.iter()
                        .filter_map(|h| inner.items.get(h).cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        items.sort_by_cached_key(|i| (urgency(i, now), i.household_id.clone()));
        items
    }

    /// The entries whose dong is none of `served` (a code the city has not
    /// assigned to an office), most urgent first.
    pub fn unassigned(&self, served: &HashSet<&str>) -> Vec<Arc<WorkItem>> {
        let now = self.now_ms();
        let mut items: Vec<Arc<WorkItem>> = {
            let inner = self.inner.read();
            inner
                .by_dong
                .iter()
                .filter(|(d, _)| !served.contains(d.as_str()))
                .flat_map(|(_, set)| set.iter().filter_map(|h| inner.items.get(h).cloned()))
                .collect()
        };
        items.sort_by_cached_key(|i| (urgency(i, now), i.household_id.clone()));
        items.dedup_by(|a, b| a.household_id == b.household_id);
        items
    }

    /// Households on the board.
    pub fn len(&self) -> usize {
        self.inner.read().items.len()
    }

    /// Whether the board is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::case::OpenAlert;
    use crate::stages::score::Priority;

    fn case(dong: &str, status: CaseStatus, priority: Priority, due: Option<i64>) -> WorkCase {
        WorkCase {
            dong: dong.into(),
            other_dongs: vec![],
            status,
            status_ko: String::new(),
            priority: Some(priority),
            categories: vec![],
            open_alerts: due
                .map(|d| OpenAlert {
                    alert_id: "al-0".into(),
                    priority,
                    emitted_at: d - 1,
                    due_at: d,
                })
                .into_iter()
                .collect(),
            outcomes: vec![],
            in_case_since: None,
            times_flagged: 1,
        }
    }

    #[test]
    fn a_dong_sees_its_own_households_overdue_and_unreachable_first() {
        let board = WorkBoard::default();
        board.set_now(1_000);
        board.update(vec![
            (
                "hh-p1".into(),
                Some(case(
                    "4125052000",
                    CaseStatus::New,
                    Priority::P1,
                    Some(5_000),
                )),
            ),
            (
                "hh-late".into(),
                Some(case("4125052000", CaseStatus::New, Priority::P3, Some(500))),
            ),
            (
                "hh-lost".into(),
                Some(case(
                    "4125052000",
                    CaseStatus::Unreachable,
                    Priority::P3,
                    None,
                )),
            ),
            (
                "hh-else".into(),
                Some(case("4125053500", CaseStatus::New, Priority::P1, Some(500))),
            ),
        ]);
        let ids: Vec<String> = board
            .of_dong("4125052000")
            .iter()
            .map(|i| i.household_id.clone())
            .collect();
        assert_eq!(ids, ["hh-late", "hh-lost", "hh-p1"]);
        assert!(!board.get("hh-else").unwrap().visible_to("4125052000"));
    }

    #[test]
    fn a_household_that_moved_stays_with_the_office_working_on_it() {
        let board = WorkBoard::default();
        let mut moved = case("4125053500", CaseStatus::New, Priority::P2, Some(9));
        moved.other_dongs = vec!["4125052000".into()];
        board.update(vec![("hh-m".into(), Some(moved.clone()))]);
        assert_eq!(board.of_dong("4125052000").len(), 1);
        assert_eq!(board.of_dong("4125053500").len(), 1);
        // once its alert there is answered, the old office no longer sees it
        moved.other_dongs.clear();
        board.update(vec![("hh-m".into(), Some(moved))]);
        assert!(board.of_dong("4125052000").is_empty());
        let served = HashSet::from(["4125052000"]);
        assert_eq!(board.unassigned(&served).len(), 1);
        board.replace(vec![]);
        assert!(board.is_empty());
    }
}
