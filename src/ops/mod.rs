//! The operations view: what city operations staff and the SRE on call see.
//!
//! * `/metrics`: Prometheus text format (open).
//! * `/healthz`: the process is alive (open).
//! * `/readyz`: connected and assigned partitions, or the embedded source
//!   running; 503 with a JSON reason otherwise (open).
//!
//! The pages with household data are the web front's (`crate::web`), on
//! their own listener; this module keeps the live state both read.

pub mod agenda;
pub mod http;
pub(crate) mod rule_yield;
pub(crate) mod work;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::definition::{Dong, PipelineSpec};
use crate::metrics::Metrics;
use crate::stages::alert::Alert;

/// Households shown per dong on the dashboard.
pub const TOP_PER_DONG: usize = 10;

/// Readiness of the pipeline, set by its driver.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    reason: Mutex<String>,
}

impl Health {
    /// Not ready, with `reason`.
    pub(crate) fn new(reason: &str) -> Self {
        Health {
            ready: AtomicBool::new(false),
            reason: Mutex::new(reason.into()),
        }
    }

    /// Marks ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Marks not ready, with a reason for `/readyz`.
    pub fn set_not_ready(&self, reason: &str) {
        self.ready.store(false, Ordering::Relaxed);
        if let Ok(mut r) = self.reason.lock() {
            reason.clone_into(&mut r);
        }
    }

    /// Ready, or the reason it is not.
    pub fn status(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(self.reason.lock().map(|r| r.clone()).unwrap_or_default())
        }
    }
}

/// One household on the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct TopHousehold {
    /// Pseudonymous id.
    pub(crate) household_id: String,
    /// Priority of its latest alert.
    pub(crate) priority: String,
    /// Its score.
    pub(crate) score: f64,
    /// Reasons in Korean.
    pub(crate) reasons_ko: Vec<String>,
    /// Reasons in English.
    pub(crate) reasons: Vec<String>,
    /// When the alert was emitted.
    pub(crate) emitted_at: String,
}

/// Escalations kept for the city team's console (newest first; it pages
/// and filters them): months of a city's escalations.
pub(crate) const ESCALATIONS_SHOWN: usize = 20_000;

/// The latest alerted households per dong, updated once per batch, and
/// what the follow-up looks like per dong.
#[derive(Debug)]
pub struct LiveView {
    board: Mutex<Board>,
    follow_up: Mutex<FollowUpBoard>,
    history: Mutex<History>,
    /// Set when the chart's alerts come from the alerts topic (read whole by
    /// every instance): the ids counted per day, so a re-sent alert counts
    /// once.
    alerts_read: Mutex<Option<BTreeMap<String, std::collections::HashSet<u64>>>>,
    /// The offices' clock: an alert's day on the chart is theirs.
    clock: crate::base::civil::LocalClock,
}

/// Days of alerts kept for the city's chart.
pub(crate) const HISTORY_DAYS: usize = 90;
/// First contacts kept per priority for the city's chart.
const CONTACTS_KEPT: usize = 10_000;

/// What the city's charts draw, since the process started.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct History {
    /// Alerts per local day (`YYYY-MM-DD`): P1, P2, P3.
    pub(crate) alerts_per_day: BTreeMap<String, [u64; 3]>,
    /// Days from alert to first reach, per priority (P1, P2, P3), the
    /// newest kept.
    pub(crate) first_contact_days: [std::collections::VecDeque<f64>; 3],
}

fn priority_slot(p: crate::stages::score::Priority) -> usize {
    use crate::stages::score::Priority;
    match p {
        Priority::P1 => 0,
        Priority::P2 => 1,
        Priority::P3 => 2,
    }
}

/// One escalation on the city team's queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct QueuedEscalation {
    /// Its id.
    pub(crate) escalation_id: String,
    /// `overdue`, `unreachable` or `repeatedly_flagged`.
    pub(crate) reason: String,
    /// Pseudonymous household id.
    pub(crate) household_id: String,
    /// Dong serving it.
    pub(crate) dong_code: String,
    /// Priority of its newest alert.
    pub(crate) priority: Option<String>,
    /// Since when (RFC 3339).
    pub(crate) since: String,
    /// When it was sent (RFC 3339).
    pub(crate) emitted_at: String,
    /// Since when, ms.
    #[serde(skip)]
    pub(crate) since_ms: i64,
    /// When it was sent, ms.
    #[serde(skip)]
    pub(crate) emitted_ms: i64,
}

/// Follow-up per dong, as the dashboard shows it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct DongFollowUp {
    /// Households waiting for someone to reach them (see
    /// [`crate::stages::case::work`]).
    pub(crate) open: i64,
    /// Of which past their due time.
    pub(crate) overdue: i64,
    /// Of which nobody could reach.
    pub(crate) unreachable: i64,
    /// In case management.
    pub(crate) in_case: i64,
    /// Median days from alert to first reach, this month (UTC).
    pub(crate) median_days_to_first_contact: Option<f64>,
    /// Share of this month's first reaches made in time.
    pub(crate) contacted_in_time: Option<f64>,
}

#[derive(Debug, Default)]
struct FollowUpBoard {
    /// Newest first.
    escalations: std::collections::VecDeque<QueuedEscalation>,
    /// Their ids (an escalation read twice, after a replay, is kept once).
    escalation_ids: std::collections::HashSet<String>,
    /// Escalations come from the escalations topic, which every instance
    /// reads (`crate::kafka::open_work`), not from this instance's batches.
    escalations_read: bool,
    /// Per dong: the month (`YYYY-MM`) and its first reaches (days, in time).
    contacts: HashMap<String, (String, Vec<(f64, bool)>)>,
    /// Per dong: open, overdue and unreachable, from the last pass over the
    /// case records.
    counts: BTreeMap<String, (i64, i64, i64, i64)>,
}

impl FollowUpBoard {
    /// Puts `e` first, once, keeping the newest [`ESCALATIONS_SHOWN`].
    fn queue(&mut self, e: QueuedEscalation) {
        if !self.escalation_ids.insert(e.escalation_id.clone()) {
            return;
        }
        self.escalations.push_front(e);
        while self.escalations.len() > ESCALATIONS_SHOWN {
            if let Some(old) = self.escalations.pop_back() {
                self.escalation_ids.remove(&old.escalation_id);
            }
        }
    }
}

/// An escalation as the escalations topic carries it (what the city page
/// lists of it).
#[derive(Deserialize)]
struct WireEscalation {
    escalation_id: String,
    reason: String,
    household_id: String,
    dong_code: String,
    priority: Option<String>,
    since: String,
    emitted_at: String,
}

fn ms_of(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[derive(Debug, Default)]
struct Board {
    top: BTreeMap<String, Vec<TopHousehold>>,
    /// The dong whose list holds each household on the board: a household
    /// that moved is found without a pass over every dong's list (about
    /// 3,500 dongs nationally).
    seat: HashMap<String, String>,
}

/// Orders a dong's list: most urgent priority first, then higher score.
fn rank(priority: &str, score: f64, other: &TopHousehold) -> std::cmp::Ordering {
    priority
        .cmp(other.priority.as_str())
        .then(other.score.total_cmp(&score))
}

impl LiveView {
    /// An empty view on the offices' `clock`.
    pub fn new(clock: crate::base::civil::LocalClock) -> LiveView {
        LiveView {
            board: Mutex::default(),
            follow_up: Mutex::default(),
            history: Mutex::default(),
            alerts_read: Mutex::default(),
            clock,
        }
    }

    /// Takes in a batch's alerts, keeping the most urgent per dong. Among
    /// equals the earlier alert stays ahead.
    pub fn record(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        let from_topic = self.alerts_read.lock().is_ok_and(|r| r.is_some());
        if let (false, Ok(mut h)) = (from_topic, self.history.lock()) {
            for a in alerts {
                let day = self.clock.day_text(a.emitted_at);
                h.alerts_per_day.entry(day).or_default()[priority_slot(a.priority)] += 1;
            }
            while h.alerts_per_day.len() > HISTORY_DAYS {
                h.alerts_per_day.pop_first();
            }
        }
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        let Board { top, seat } = &mut *board;
        for a in alerts {
            // A household that moved leaves its old dong's board.
            if let Some(dong) = seat.remove(&a.household_id) {
                if let Some(list) = top.get_mut(&dong) {
                    list.retain(|h| h.household_id != a.household_id);
                }
            }
            let list = top.entry(a.dong_code.clone()).or_default();
            let priority = a.priority.as_str();
            let at = list.partition_point(|h| rank(priority, a.score, h).is_ge());
            if at >= TOP_PER_DONG {
                continue;
            }
            list.insert(
                at,
                TopHousehold {
                    household_id: a.household_id.clone(),
                    priority: priority.into(),
                    score: a.score,
                    reasons_ko: a.reasons.iter().map(|r| r.detail_ko.clone()).collect(),
                    reasons: a.reasons.iter().map(|r| r.detail.clone()).collect(),
                    emitted_at: crate::stages::alert::rfc3339(a.emitted_at),
                },
            );
            seat.insert(a.household_id.clone(), a.dong_code.clone());
            if list.len() > TOP_PER_DONG {
                if let Some(out) = list.pop() {
                    seat.remove(&out.household_id);
                }
            }
        }
    }

    /// The board, per dong code.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, Vec<TopHousehold>> {
        self.board.lock().map(|b| b.top.clone()).unwrap_or_default()
    }

    /// Takes in a batch's escalations and first reaches.
    pub(crate) fn record_follow_up(&self, result: &crate::engine::BatchResult) {
        if result.escalations.is_empty() && result.first_contacts.is_empty() {
            return;
        }
        let Ok(mut f) = self.follow_up.lock() else {
            return;
        };
        let read = f.escalations_read;
        for e in result.escalations.iter().filter(|_| !read) {
            f.queue(QueuedEscalation {
                escalation_id: e.escalation_id.clone(),
                reason: e.reason.as_str().into(),
                household_id: e.household_id.clone(),
                dong_code: e.dong_code.clone(),
                priority: e.priority.map(|p| p.as_str().to_string()),
                since: crate::stages::alert::rfc3339(e.since),
                emitted_at: crate::stages::alert::rfc3339(e.emitted_at),
                since_ms: e.since,
                emitted_ms: e.emitted_at,
            });
        }
        if let Ok(mut h) = self.history.lock() {
            for c in &result.first_contacts {
                let kept = &mut h.first_contact_days[priority_slot(c.priority)];
                kept.push_back(c.seconds / 86_400.0);
                if kept.len() > CONTACTS_KEPT {
                    kept.pop_front();
                }
            }
        }
        for c in &result.first_contacts {
            let month = crate::stages::alert::rfc3339(c.recorded_at)[..7].to_string();
            let entry = f.contacts.entry(c.dong_code()).or_default();
            // a new month starts its count afresh (and an old contact read
            // late does not reset it)
            if month > entry.0 {
                *entry = (month.clone(), Vec::new());
            }
            if month == entry.0 {
                entry.1.push((c.seconds / 86_400.0, c.in_time));
            }
        }
    }

    /// Takes in the counts of a pass over the case records.
    pub(crate) fn set_cases(&self, counts: &crate::stages::case::work::OpenCounts) {
        let Ok(mut f) = self.follow_up.lock() else {
            return;
        };
        f.counts.clear();
        for ((dong, _, _), n) in &counts.open {
            f.counts.entry(dong.clone()).or_default().0 += n;
        }
        for (dong, n) in &counts.overdue {
            f.counts.entry(dong.clone()).or_default().1 += n;
        }
        for (dong, n) in &counts.unreachable {
            f.counts.entry(dong.clone()).or_default().2 += n;
        }
        for (dong, n) in &counts.in_case {
            f.counts.entry(dong.clone()).or_default().3 += n;
        }
    }

    /// What the city's charts draw.
    pub(crate) fn history(&self) -> History {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Counts the chart's alerts from the alerts topic from now on (every
    /// instance reads it whole), not from this instance's batches.
    pub(crate) fn read_alerts(&self) {
        if let Ok(mut r) = self.alerts_read.lock() {
            r.get_or_insert_with(BTreeMap::new);
        }
    }

    /// Counts one alert read from the alerts topic on the chart (once per
    /// id); false when the value is not an alert.
    pub(crate) fn alert_read(&self, value: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct WireAlert {
            alert_id: String,
            priority: String,
            emitted_at: String,
        }
        let Ok(a) = serde_json::from_slice::<WireAlert>(value) else {
            return false;
        };
        let (Some(at), Some(priority)) = (
            ms_of(&a.emitted_at),
            crate::stages::score::Priority::parse(&a.priority),
        ) else {
            return false;
        };
        let day = self.clock.day_text(at);
        let id = twox_hash::XxHash3_128::oneshot(a.alert_id.as_bytes()) as u64;
        let (Ok(mut read), Ok(mut h)) = (self.alerts_read.lock(), self.history.lock()) else {
            return true;
        };
        let Some(days) = read.as_mut() else {
            return true;
        };
        if days.entry(day.clone()).or_default().insert(id) {
            h.alerts_per_day.entry(day).or_default()[priority_slot(priority)] += 1;
        }
        while h.alerts_per_day.len() > HISTORY_DAYS {
            if let Some((gone, _)) = h.alerts_per_day.pop_first() {
                days.remove(&gone);
            }
        }
        true
    }

    /// Takes the city's escalations from the escalations topic from now
    /// on (every instance reads it whole), not from this instance's batches.
    pub(crate) fn read_escalations(&self) {
        if let Ok(mut f) = self.follow_up.lock() {
            f.escalations_read = true;
        }
    }

    /// Queues one escalation read from the escalations topic; false when
    /// the value is not one.
    pub(crate) fn escalation_read(&self, value: &[u8]) -> bool {
        let Ok(w) = serde_json::from_slice::<WireEscalation>(value) else {
            return false;
        };
        let (Some(since_ms), Some(emitted_ms)) = (ms_of(&w.since), ms_of(&w.emitted_at)) else {
            return false;
        };
        let e = QueuedEscalation {
            escalation_id: w.escalation_id,
            reason: w.reason,
            household_id: w.household_id,
            dong_code: w.dong_code,
            priority: w.priority,
            since: w.since,
            emitted_at: w.emitted_at,
            since_ms,
            emitted_ms,
        };
        if let Ok(mut f) = self.follow_up.lock() {
            f.queue(e);
        }
        true
    }

    /// The city team's queue, newest first.
    pub(crate) fn escalations(&self) -> Vec<QueuedEscalation> {
        self.follow_up
            .lock()
            .map(|f| f.escalations.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Follow-up per dong code.
    pub(crate) fn per_dong(&self) -> BTreeMap<String, DongFollowUp> {
        let Ok(f) = self.follow_up.lock() else {
            return Default::default();
        };
        let mut per_dong: BTreeMap<String, DongFollowUp> = BTreeMap::new();
        for (dong, &(open, overdue, unreachable, in_case)) in &f.counts {
            let d = per_dong.entry(dong.clone()).or_default();
            (d.open, d.overdue, d.unreachable, d.in_case) = (open, overdue, unreachable, in_case);
        }
        for (dong, (_, contacts)) in &f.contacts {
            if contacts.is_empty() {
                continue;
            }
            let d = per_dong.entry(dong.clone()).or_default();
            let mut days: Vec<f64> = contacts.iter().map(|c| c.0).collect();
            days.sort_by(f64::total_cmp);
            d.median_days_to_first_contact = Some(days[days.len() / 2]);
            let in_time = contacts.iter().filter(|c| c.1).count();
            d.contacted_in_time = Some(in_time as f64 / contacts.len() as f64);
        }
        per_dong
    }
}

/// What the HTTP endpoints read.
pub struct OpsState {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Readiness.
    pub health: Health,
    /// Dashboard board.
    pub(crate) live: LiveView,
    /// The offices' work queue (kept while a web front is attached).
    pub work: work::WorkBoard,
    /// The yield of the rules (what the offices found per alert).
    pub(crate) rule_yield: rule_yield::YieldBook,
    /// Served dongs, for Korean names.
    pub(crate) dongs: Vec<Dong>,
    /// Feed names, in order.
    pub feeds: Vec<String>,
    /// "kafka" or "demo".
    pub(crate) mode: String,
}

impl OpsState {
    /// State for `spec`, not ready yet.
    pub fn new(spec: &PipelineSpec, metrics: Metrics, mode: &str) -> Self {
        OpsState {
            metrics,
            health: Health::new("starting"),
            live: LiveView::new(spec.local_clock()),
            work: work::WorkBoard::new(spec),
            rule_yield: rule_yield::YieldBook::new(spec),
            dongs: spec.dongs.clone(),
            feeds: spec.feeds.iter().map(|f| f.name.clone()).collect(),
            mode: mode.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stages::alert::{AlertReason, PipelineTag};
    use crate::stages::score::Priority;

    fn alert(hh: &str, dong: &str, priority: Priority, score: f64) -> Alert {
        Alert {
            alert_id: format!("al-{hh}"),
            household_id: hh.into(),
            dong_code: dong.into(),
            priority,
            score,
            reasons: vec![AlertReason {
                signal: "job-loss".into(),
                category: "employment".into(),
                detail: format!("job lost ({hh})"),
                detail_ko: format!("실직 ({hh})"),
                observed_at: 1_790_000_000_000,
                months_overdue: None,
                amount_krw: None,
            }],
            categories: vec!["employment".into()],
            first_signal_at: 1_790_000_000_000,
            last_signal_at: 1_790_000_000_000,
            emitted_at: 1_800_000_000_000,
            pipeline: Arc::new(PipelineTag {
                name: "default".into(),
                version: "1".into(),
            }),
            case: Default::default(),
        }
    }

    fn ids(board: &BTreeMap<String, Vec<TopHousehold>>, dong: &str) -> Vec<String> {
        board
            .get(dong)
            .map(|l| l.iter().map(|h| h.household_id.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn each_dong_shows_its_most_urgent_households_in_order() {
        let view = LiveView::new(crate::base::civil::LocalClock::from_hours(9));
        let all: Vec<Alert> = (0..25)
            .map(|i| {
                let p = Priority::ALL[i % 3];
                alert(
                    &format!("hh-{i:02}"),
                    "4125052000",
                    p,
                    f64::from((i * 7 % 11) as u32),
                )
            })
            .collect();
        // in three batches, so the board is updated across batches too
        for part in all.chunks(9) {
            view.record(part);
        }
        let mut expected = all.clone();
        // stable: among equals the earlier alert stays ahead
        expected.sort_by(|x, y| {
            y.priority
                .cmp(&x.priority)
                .then(y.score.total_cmp(&x.score))
        });
        let expected: Vec<String> = expected
            .iter()
            .take(TOP_PER_DONG)
            .map(|a| a.household_id.clone())
            .collect();
        let board = view.snapshot();
        assert_eq!(ids(&board, "4125052000"), expected);
        assert_eq!(board["4125052000"][0].priority, "P1");
        assert_eq!(
            board["4125052000"][0].emitted_at,
            "2027-01-15T08:00:00.000Z"
        );
    }

    #[test]
    fn a_household_is_shown_once_under_the_dong_of_its_latest_alert() {
        let view = LiveView::new(crate::base::civil::LocalClock::from_hours(9));
        view.record(&[
            alert("hh-a", "4125052000", Priority::P3, 10.0),
            alert("hh-b", "4125052000", Priority::P2, 20.0),
        ]);
        // hh-a moved and escalated; hh-b is alerted again where it was
        view.record(&[
            alert("hh-a", "4125053500", Priority::P1, 30.0),
            alert("hh-b", "4125052000", Priority::P1, 25.0),
        ]);
        let board = view.snapshot();
        assert_eq!(ids(&board, "4125052000"), vec!["hh-b"]);
        assert_eq!(board["4125052000"][0].priority, "P1");
        assert_eq!(ids(&board, "4125053500"), vec!["hh-a"]);
    }

    #[test]
    fn a_household_pushed_off_a_full_board_can_come_back_elsewhere() {
        let view = LiveView::new(crate::base::civil::LocalClock::from_hours(9));
        view.record(&[alert("hh-low", "4125052000", Priority::P3, 1.0)]);
        let urgent: Vec<Alert> = (0..TOP_PER_DONG)
            .map(|i| alert(&format!("hh-{i}"), "4125052000", Priority::P1, 50.0))
            .collect();
        view.record(&urgent);
        assert!(!ids(&view.snapshot(), "4125052000").contains(&"hh-low".to_string()));
        // a lower alert does not make a full board
        view.record(&[alert("hh-late", "4125052000", Priority::P3, 99.0)]);
        assert_eq!(ids(&view.snapshot(), "4125052000").len(), TOP_PER_DONG);
        assert!(!ids(&view.snapshot(), "4125052000").contains(&"hh-late".to_string()));
        view.record(&[alert("hh-low", "4125053500", Priority::P2, 5.0)]);
        let board = view.snapshot();
        assert_eq!(ids(&board, "4125053500"), vec!["hh-low"]);
        assert_eq!(ids(&board, "4125052000").len(), TOP_PER_DONG);
    }
}
