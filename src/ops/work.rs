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
use crate::stages::alert::{Alert, PipelineTag};
use crate::stages::case::{CaseBook, OpenWork};

/// How long a household stays on the board after its last activity when
/// nothing else keeps it there.
pub(crate) const RECENT_MS: i64 = 30 * crate::definition::DAY_MS;

/// A household on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// Pseudonymous id.
    pub household_id: String,
    /// Its open work, as every view shows it.
    pub case: OpenWork,
    /// Ids, staff and notes of its outcomes seen by this process.
    pub(crate) details: Vec<OutcomeDetail>,
    /// Score of its newest alert seen by this process.
    pub(crate) score: Option<f64>,
    /// Reasons of that alert: (Korean, English).
    pub(crate) reasons: Vec<(String, String)>,
}

impl WorkItem {
    /// Whether the office of `dong` may see it: it serves the household
    /// now, or an open alert is addressed to it (the household moved).
    pub(crate) fn visible_to(&self, dong: &str) -> bool {
        self.case.visible_to(dong)
    }

    /// The earliest due time of its open alerts, ms.
    pub(crate) fn due_at(&self) -> Option<i64> {
        self.case.due_at
    }

    /// Whether its first reach is past due.
    pub(crate) fn overdue(&self) -> bool {
        self.case.overdue()
    }

    /// The goals' texts of its case's plan in force, as its office wrote
    /// them (kept beside the record, like the notes).
    pub(crate) fn goal_texts(&self) -> Vec<String> {
        let key = self
            .case
            .managed
            .as_ref()
            .and_then(|m| m.plan.as_ref())
            .map(|p| p.key);
        key.and_then(|k| self.details.iter().rev().find(|d| d.key == k))
            .map(|d| d.goals.clone())
            .unwrap_or_default()
    }

    /// Whether it waits in the queue: nobody of it reached yet.
    pub fn in_queue(&self) -> bool {
        self.case.open()
    }
}

/// Reasons and score of a household's newest alert.
type Reasons = (f64, Arc<[(String, String)]>);

/// What the web front keeps of an outcome beside the engine's record: its
/// id, who recorded it and the note. Shown to the household's office and
/// the city only; gone when the household's record goes (retention).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OutcomeDetail {
    /// Its `outcome_id`.
    pub(crate) outcome_id: String,
    /// 32 bits of its hash, as the record keeps it.
    #[serde(skip)]
    pub(crate) key: u32,
    /// Who recorded it.
    pub(crate) staff_id: String,
    /// The office (or city) that recorded it.
    pub(crate) dong_code: String,
    /// The note.
    pub(crate) note: Option<String>,
    /// A plan's goals as written (private like the note).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) goals: Vec<String>,
}

/// Outcome details kept per household at most (as many as its record).
const DETAILS_KEPT: usize = 64;

/// Everything the board holds of one household: what one instance hands
/// the others (`crate::kafka::open_work`), whole, so the newest entry of a
/// household is all a reader needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The case record as the engine holds it.
    pub(crate) record: Arc<[u8]>,
    /// Score of its newest alert.
    pub(crate) score: Option<f64>,
    /// Reasons of that alert: (Korean, English).
    pub(crate) reasons: Arc<[(String, String)]>,
    /// Ids, staff and notes of its outcomes.
    pub(crate) details: Vec<OutcomeDetail>,
}

impl Entry {
    /// The input partition (state shard) its record belongs to.
    pub(crate) fn shard(&self) -> i32 {
        crate::stages::case::record::shard(&self.record).unwrap_or(0)
    }
}

/// Where a driver's board changes go besides its own board: the other
/// instances (a topic every instance reads). `None`: the household left
/// the board.
pub(crate) trait WorkSink: Send {
    /// Households a batch touched.
    fn touched(&mut self, changes: Vec<(String, Option<Entry>)>);
    /// The whole board of this instance (a rebuild: after a hand-over, and
    /// now and then): what changed is sent, and what left it is removed.
    fn whole(&mut self, entries: Vec<(String, Entry)>);
}

#[derive(Default)]
struct Inner {
    /// Each household's case record as the engine holds it, and the dongs
    /// that see it.
    records: HashMap<String, (Arc<[u8]>, Vec<String>)>,
    by_dong: HashMap<String, HashSet<String>>,
    alerts: HashMap<String, Reasons>,
    details: HashMap<String, Vec<OutcomeDetail>>,
}

/// What the board holds of one household, copied out of the lock.
struct Held {
    record: Arc<[u8]>,
    reasons: Option<Reasons>,
    details: Vec<OutcomeDetail>,
}

impl Inner {
    fn entry(&self, household_id: &str) -> Option<Entry> {
        let held = self.held(household_id)?;
        let (score, reasons) = match held.reasons {
            Some((s, r)) => (Some(s), r),
            None => (None, Arc::from(Vec::new())),
        };
        Some(Entry {
            record: held.record,
            score,
            reasons,
            details: held.details,
        })
    }

    fn remove(&mut self, household_id: &str) {
        self.unindex(household_id);
        self.alerts.remove(household_id);
        self.details.remove(household_id);
    }

    fn held(&self, household_id: &str) -> Option<Held> {
        let (record, _) = self.records.get(household_id)?;
        Some(Held {
            record: record.clone(),
            reasons: self.alerts.get(household_id).cloned(),
            details: self.details.get(household_id).cloned().unwrap_or_default(),
        })
    }

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

impl WorkBoard {
    /// An empty board rendering with the rules of `spec`.
    pub(crate) fn new(spec: &PipelineSpec) -> Self {
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
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Sets the pipeline's clock.
    pub fn set_now(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The pipeline's clock, ms (the wall clock before the first batch).
    pub(crate) fn now_ms(&self) -> i64 {
        match self.now_ms.load(Ordering::Relaxed) {
            0 => crate::base::clock::wall_clock_ms(),
            t => t,
        }
    }

    /// Keeps the reasons and scores of a batch's alerts.
    pub(crate) fn note_alerts(&self, alerts: &[Alert]) {
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

    /// Keeps the ids, staff and notes of a batch's recorded outcomes.
    pub(crate) fn note_outcomes(&self, outcomes: &[crate::stages::case::outcome::Outcome]) {
        if outcomes.is_empty() {
            return;
        }
        let mut inner = self.inner.write();
        for o in outcomes {
            let kept = inner.details.entry(o.household_id.clone()).or_default();
            kept.push(OutcomeDetail {
                outcome_id: o.outcome_id.clone(),
                key: crate::stages::case::rules::outcome_key(&o.outcome_id),
                staff_id: o.staff_id.clone(),
                dong_code: o.dong_code.clone(),
                note: o.note.clone(),
                goals: o.goals.clone(),
            });
            if kept.len() > DETAILS_KEPT {
                kept.remove(0);
            }
        }
    }

    /// The record the board holds for a household, decoded.
    pub(crate) fn record(
        &self,
        household_id: &str,
    ) -> Option<crate::stages::case::record::CaseRecord> {
        let inner = self.inner.read();
        let (record, _) = inner.records.get(household_id)?;
        crate::stages::case::record::CaseRecord::decode(record)
    }

    /// Whether `o` may be recorded against the household's record as the
    /// board holds it (the pipeline decides the same on the topic).
    pub(crate) fn check(
        &self,
        o: &crate::stages::case::outcome::Outcome,
    ) -> Result<(), crate::stages::decode::Reject> {
        self.rules
            .check_outcome(self.record(&o.household_id).as_ref(), o)
    }

    /// Sets the records of households that changed (`None`: none held).
    pub fn update(&self, records: Vec<(String, Option<Arc<[u8]>>)>) {
        let mut inner = self.inner.write();
        for (household_id, record) in records {
            match record {
                Some(record) => inner.put(household_id, record),
                None => inner.remove(&household_id),
            }
        }
    }

    /// The entries of `households` as the board holds them now.
    pub(crate) fn entries_of<'a>(
        &self,
        households: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Option<Entry>)> {
        let inner = self.inner.read();
        households
            .into_iter()
            .map(|h| (h.to_string(), inner.entry(h)))
            .collect()
    }

    /// Every entry on the board.
    pub(crate) fn entries(&self) -> Vec<(String, Entry)> {
        let inner = self.inner.read();
        inner
            .records
            .keys()
            .filter_map(|h| Some((h.clone(), inner.entry(h)?)))
            .collect()
    }

    /// Sets one household's entry whole (`None`: it left), as another
    /// instance published it.
    pub(crate) fn apply(&self, household_id: &str, entry: Option<Entry>) {
        let mut inner = self.inner.write();
        let Some(e) = entry else {
            inner.remove(household_id);
            return;
        };
        match e.score {
            Some(score) => {
                inner
                    .alerts
                    .insert(household_id.to_string(), (score, e.reasons));
            }
            None => {
                inner.alerts.remove(household_id);
            }
        }
        if e.details.is_empty() {
            inner.details.remove(household_id);
        } else {
            inner.details.insert(household_id.to_string(), e.details);
        }
        inner.put(household_id.to_string(), e.record);
    }

    /// Households on the board whose record is of one of `shards` (input
    /// partitions), each with its shard.
    pub(crate) fn households_in(&self, shards: &HashSet<i32>) -> Vec<(String, i32)> {
        let inner = self.inner.read();
        inner
            .records
            .iter()
            .filter_map(|(h, (r, _))| {
                let shard = crate::stages::case::record::shard(r)?;
                shards.contains(&shard).then(|| (h.clone(), shard))
            })
            .collect()
    }

    /// Replaces the whole board (a full pass over the case records). The
    /// new board is built beside the old one, under the read lock only, so
    /// requests go on meanwhile; the write lock is held for the swap.
    pub(crate) fn replace(&self, records: Vec<(String, Arc<[u8]>)>) {
        let mut fresh = Inner::default();
        {
            let old = self.inner.read();
            for (household_id, _) in &records {
                if let Some(a) = old.alerts.get(household_id) {
                    fresh.alerts.insert(household_id.clone(), a.clone());
                }
                // a note goes with its household's record, at retention
                if let Some(d) = old.details.get(household_id) {
                    fresh.details.insert(household_id.clone(), d.clone());
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

    fn render(&self, household_id: String, held: Held, now: i64) -> Option<WorkItem> {
        let case = self.rules.open_work_of(&held.record, now)?;
        let (score, reasons) = match held.reasons {
            Some((s, r)) => (Some(s), r.to_vec()),
            None => (None, Vec::new()),
        };
        Some(WorkItem {
            household_id,
            case,
            details: held.details,
            score,
            reasons,
        })
    }

    /// A household's entry.
    pub fn get(&self, household_id: &str) -> Option<Arc<WorkItem>> {
        let held = self.inner.read().held(household_id)?;
        self.render(household_id.to_string(), held, self.now_ms())
            .map(Arc::new)
    }

    /// Renders `households` (records copied under the read lock, rendered
    /// after it), most urgent first.
    fn rendered(&self, households: impl FnOnce(&Inner) -> Vec<String>) -> Vec<Arc<WorkItem>> {
        let now = self.now_ms();
        let held: Vec<(String, Held)> = {
            let inner = self.inner.read();
            households(&inner)
                .into_iter()
                .filter_map(|h| {
                    let held = inner.held(&h)?;
                    Some((h, held))
                })
                .collect()
        };
        let mut items: Vec<Arc<WorkItem>> = held
            .into_iter()
            .filter_map(|(h, held)| self.render(h, held, now).map(Arc::new))
            .collect();
        items.sort_by_cached_key(|i| (i.case.queue_key(i.score), i.household_id.clone()));
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
    pub(crate) fn unassigned(&self, served: &HashSet<&str>) -> Vec<Arc<WorkItem>> {
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

    /// The entry of a household its dong's daily list names but that has
    /// no case record yet: new, nothing open, served by `dong`.
    pub(crate) fn listed(&self, household_id: &str, dong: &str) -> Arc<WorkItem> {
        let record = crate::stages::case::record::CaseRecord::new(0, dong.parse().unwrap_or(0));
        Arc::new(WorkItem {
            household_id: household_id.to_string(),
            case: self.rules.open_work(&record, self.now_ms()),
            details: Vec::new(),
            score: None,
            reasons: Vec::new(),
        })
    }

    /// The open work on the board at `now_ms`, counted per dong (the city
    /// page's numbers when the board holds every instance's households).
    pub(crate) fn open_counts(&self, now_ms: i64) -> crate::stages::case::work::OpenCounts {
        let records: Vec<Arc<[u8]>> = self
            .inner
            .read()
            .records
            .values()
            .map(|(r, _)| r.clone())
            .collect();
        let mut counts = crate::stages::case::work::OpenCounts::default();
        for r in &records {
            self.rules.count_open(r, now_ms, &mut counts);
        }
        counts
    }

    /// Households on the board.
    pub fn len(&self) -> usize {
        self.inner.read().records.len()
    }

    /// Whether the board is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
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
                channel: None,
                services: 0,
                by_city: false,
            });
        }
        let mut out = Vec::new();
        r.encode(&mut out);
        Arc::from(out)
    }

    const DAY: i64 = crate::definition::DAY_MS;

    #[test]
    fn a_dong_sees_its_own_households_unreachable_and_overdue_first() {
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
        // the unreachable first (urgent), then the overdue, then the new
        assert_eq!(ids, ["hh-lost", "hh-late", "hh-p1"]);
        assert!(queue[1].overdue());
        assert_eq!(
            queue[0].case.status,
            crate::stages::alert::CaseStatus::Unreachable
        );
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
