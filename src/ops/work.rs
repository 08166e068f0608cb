//! The offices' work queue as the web front reads it: one entry per
//! household with an open alert, an unreachable status, a case, or recent
//! activity, indexed by every dong that may see it. The driver keeps it
//! current (the households each batch touched, and a full pass now and
//! then); the web's requests only read it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::definition::PipelineSpec;
use crate::stages::alert::{Alert, CaseStatus, PipelineTag};
use crate::stages::case::{CaseBook, WorkCase};

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

/// Reasons and score of a household's newest alert.
type Reasons = (f64, Arc<[(String, String)]>);

#[derive(Default)]
struct Inner {
    /// Each household's case record as the engine holds it, and the dongs
    /// that see it.
    records: HashMap<String, (Arc<[u8]>, Vec<String>)>,
    by_dong: HashMap<String, HashSet<String>>,
    alerts: HashMap<String, Reasons>,
}

impl Inner {
    fn unindex(&mut self, household_id: &str) {
        if let Some((_, dongs)) = self.records.remove(household_id) {
            for d in &dongs {
                if let Some(set) = self.by_dong.get_mut(d) {
                    set.remove(household_id);
                }
            }
        }
    }

    fn put(&mut self, household_id: String, record: Arc<[u8]>) {
        let dongs = CaseBook::dongs_of(&record);
        match self.records.get_mut(&household_id) {
            // the usual change: same dongs, a new record
            Some(held) if held.1 == dongs => held.0 = record,
            _ => {
                self.unindex(&household_id);
                for d in &dongs {
                    self.by_dong
                        .entry(d.clone())
                        .or_default()
                        .insert(household_id.clone());
                }
                self.records.insert(household_id, (record, dongs));
            }
        }
    }
}

/// The board. It keeps the engine's compact records, a copy of a few
/// dozen bytes per household, and renders them when a page asks: keeping
/// it costs the pipeline a copy per touched household, not a rendering.
pub struct WorkBoard {
    enabled: AtomicBool,
    /// The pipeline's clock (the demo's is simulated), ms.
    now_ms: AtomicI64,
    inner: RwLock<Inner>,
    /// The case stage's rules, to render a record as the engine would.
    rules: CaseBook,
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
    /// An empty board rendering with the rules of `spec`.
    pub fn new(spec: &PipelineSpec) -> Self {
        let tag = Arc::new(PipelineTag {
            name: spec.name.clone(),
            version: spec.version.clone(),
        });
        WorkBoard {
            enabled: AtomicBool::new(false),
            now_ms: AtomicI64::new(0),
            inner: RwLock::new(Inner::default()),
            rules: CaseBook::new(spec, tag),
        }
    }

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
        if alerts.is_empty() {
            return;
        }
        let noted: Vec<(String, Reasons)> = alerts
            .iter()
            .map(|a| {
                let reasons: Arc<[(String, String)]> = a
                    .reasons
                    .iter()
                    .map(|r| (r.detail_ko.clone(), r.detail.clone()))
                    .collect();
                (a.household_id.clone(), (a.score, reasons))
            })
            .collect();
        self.inner.write().alerts.extend(noted);
    }

    /// Sets the records of households that changed (`None`: none held).
    pub fn update(&self, records: Vec<(String, Option<Arc<[u8]>>)>) {
        let mut inner = self.inner.write();
        for (household_id, record) in records {
            match record {
                Some(record) => inner.put(household_id, record),
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
    pub fn replace(&self, records: Vec<(String, Arc<[u8]>)>) {
        let mut fresh = Inner::default();
        {
            let old = self.inner.read();
            for (household_id, _) in &records {
                if let Some(a) = old.alerts.get(household_id) {
                    fresh.alerts.insert(household_id.clone(), a.clone());
                }
            }
        }
        for (household_id, record) in records {
            fresh.put(household_id, record);
        }
        let old = std::mem::replace(&mut *self.inner.write(), fresh);
        // the old board is freed after the lock is released
        drop(old);
    }

    fn render(
        &self,
        household_id: String,
        record: &[u8],
        reasons: Option<Reasons>,
        now: i64,
    ) -> Option<WorkItem> {
        let case = self.rules.work_case(record, now)?;
        let (score, reasons) = match reasons {
            Some((s, r)) => (Some(s), r.to_vec()),
            None => (None, Vec::new()),
        };
        Some(WorkItem {
            household_id,
            case,
            score,
            reasons,
        })
    }

    /// A household's entry.
    pub fn get(&self, household_id: &str) -> Option<Arc<WorkItem>> {
        let (record, reasons) = {
            let inner = self.inner.read();
            let (record, _) = inner.records.get(household_id)?;
            (record.clone(), inner.alerts.get(household_id).cloned())
        };
        self.render(household_id.to_string(), &record, reasons, self.now_ms())
            .map(Arc::new)
    }

    /// Renders `households` (records copied under the read lock, rendered
    /// after it), most urgent first.
    fn rendered(&self, households: impl FnOnce(&Inner) -> Vec<String>) -> Vec<Arc<WorkItem>> {
        let now = self.now_ms();
        let held: Vec<(String, Arc<[u8]>, Option<Reasons>)> = {
            let inner = self.inner.read();
            households(&inner)
                .into_iter()
                .filter_map(|h| {
                    let (record, _) = inner.records.get(&h)?;
                    let reasons = inner.alerts.get(&h).cloned();
                    Some((h, record.clone(), reasons))
                })
                .collect()
        };
        let mut items: Vec<Arc<WorkItem>> = held
            .into_iter()
            .filter_map(|(h, record, reasons)| self.render(h, &record, reasons, now).map(Arc::new))
            .collect();
        items.sort_by_cached_key(|i| (urgency(i, now), i.household_id.clone()));
        items
    }

    /// Every entry `dong` may see, most urgent first.
    pub fn of_dong(&self, dong: &str) -> Vec<Arc<WorkItem>> {
        self.rendered(|inner| {
            inner
                .by_dong
                .get(dong)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// The entries whose dong is none of `served` (a code the city has not
    /// assigned to an office), most urgent first.
    pub fn unassigned(&self, served: &HashSet<&str>) -> Vec<Arc<WorkItem>> {
        let mut items = self.rendered(|inner| {
            let mut ids: Vec<String> = inner
                .by_dong
                .iter()
                .filter(|(d, _)| !served.contains(d.as_str()))
                .flat_map(|(_, set)| set.iter().cloned())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        });
        items.retain(|i| !served.contains(i.case.dong.as_str()));
        items
    }

    /// Households on the board.
    pub fn len(&self) -> usize {
        self.inner.read().records.len()
    }

    /// Whether the board is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::case::outcome::{ContactResult, OutcomeKind};
    use crate::stages::case::record::{CaseRecord, HeldOutcome, KeptAlert};
    use crate::stages::score::Priority;

    fn board() -> WorkBoard {
        let spec = PipelineSpec::embedded_default().unwrap();
        WorkBoard::new(&spec)
    }

    /// A record of a household of `dong` with one open alert sent at
    /// `sent` (P1 is due 3 days later), addressed to `to` if it moved.
    fn record(dong: u64, priority: Priority, sent: i64, to: Option<u64>, failed: u32) -> Arc<[u8]> {
        let mut r = CaseRecord::new(0, dong);
        r.alerts.push(KeptAlert {
            id: 7,
            day: 1,
            priority,
            categories: 1,
            dong: to,
            open_since: Some(sent),
            overdue_sent: false,
        });
        for i in 0..failed {
            r.outcomes.push(HeldOutcome {
                id: i + 1,
                kind: OutcomeKind::ContactAttempted,
                detail: ContactResult::NoAnswer.code(),
                priority,
                categories: 1,
                recorded_at: sent + 1_000 * i64::from(i + 1),
                target: 0,
            });
        }
        let mut out = Vec::new();
        r.encode(&mut out);
        Arc::from(out)
    }

    const DAY: i64 = crate::definition::DAY_MS;

    #[test]
    fn a_dong_sees_its_own_households_overdue_and_unreachable_first() {
        let b = board();
        let now = 100 * DAY;
        b.set_now(now);
        b.update(vec![
            (
                "hh-p1".into(),
                Some(record(4125052000, Priority::P1, now - DAY, None, 0)),
            ),
            (
                "hh-late".into(),
                Some(record(4125052000, Priority::P3, now - 20 * DAY, None, 0)),
            ),
            (
                "hh-lost".into(),
                Some(record(4125052000, Priority::P3, now - DAY, None, 3)),
            ),
            (
                "hh-else".into(),
                Some(record(4125053500, Priority::P1, now - 20 * DAY, None, 0)),
            ),
        ]);
        let queue = b.of_dong("4125052000");
        let ids: Vec<&str> = queue.iter().map(|i| i.household_id.as_str()).collect();
        assert_eq!(ids, ["hh-late", "hh-lost", "hh-p1"]);
        assert!(queue[0].overdue(now));
        assert_eq!(queue[1].case.status, CaseStatus::Unreachable);
        assert!(!b.get("hh-else").unwrap().visible_to("4125052000"));
    }

    #[test]
    fn a_household_that_moved_stays_with_the_office_working_on_it() {
        let b = board();
        let now = 100 * DAY;
        b.set_now(now);
        b.update(vec![(
            "hh-m".into(),
            Some(record(4125053500, Priority::P2, now, Some(4125052000), 0)),
        )]);
        assert_eq!(b.of_dong("4125052000").len(), 1);
        assert_eq!(b.of_dong("4125053500").len(), 1);
        // once its record no longer names the old office, it goes
        b.update(vec![(
            "hh-m".into(),
            Some(record(4125053500, Priority::P2, now, None, 0)),
        )]);
        assert!(b.of_dong("4125052000").is_empty());
        let served = HashSet::from(["4125052000"]);
        assert_eq!(b.unassigned(&served).len(), 1);
        b.replace(vec![]);
        assert!(b.is_empty());
    }
}
