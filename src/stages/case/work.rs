//! One model of a household's open work: what the queue page, the
//! household page, the JSON API, the daily list files, the city page and
//! the metrics show of a household, derived from its case record at one
//! instant ([`CaseBook::open_work`]). No view computes a status, a due
//! time or an order of its own, so a dong's counts agree everywhere at the
//! same moment.
//!
//! Definitions (README, "Open work"):
//! - **open** (waiting): not in case management, not deceased, and an
//!   alert waits for a first reach, or a failed attempt has not been
//!   followed by a reach, or the household is unreachable;
//! - **overdue**: open, and the due time of its oldest open alert passed;
//! - **unreachable**: three failed attempts since the last reach (or one
//!   empty house, moved or address mismatch, or failures spanning 14
//!   days), until someone is reached or the city takes it over;
//! - **held**: an outcome holds back alerts at its priority until a date
//!   (declined, no need, support linked: `linked`).

use std::collections::BTreeMap;

use super::escalation::OutcomeSoFar;
use super::outcome::Service;
use super::record::CaseRecord;
use super::rules::{self, has_open_alert, CaseView};
use super::{dong_text, CaseBook};
use crate::definition::DAY_MS;
use crate::stages::alert::CaseStatus;
use crate::stages::score::Priority;

/// Where an open household stands in the queue; the pipeline's
/// `[outcomes] queue_order` orders the tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Tier {
    /// Unreachable (a residence check is needed), or repeatedly flagged at
    /// P1 without anyone engaging.
    Urgent,
    /// Its first reach is past due.
    Overdue,
    /// Its first reach is due today.
    DueToday,
    /// A failed attempt's retry is due today or earlier.
    AttemptDue,
    /// Newly alerted, not yet tried.
    New,
    /// Tried, the next attempt not yet due.
    Attempting,
}

impl Tier {
    /// Every tier, in the default order.
    pub(crate) const ALL: [Tier; 6] = [
        Tier::Urgent,
        Tier::Overdue,
        Tier::DueToday,
        Tier::AttemptDue,
        Tier::New,
        Tier::Attempting,
    ];

    /// The name in `queue_order` (one of [`crate::definition::QUEUE_TIERS`]).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tier::Urgent => "urgent",
            Tier::Overdue => "overdue",
            Tier::DueToday => "due_today",
            Tier::AttemptDue => "attempt_due",
            Tier::New => "new",
            Tier::Attempting => "attempting",
        }
    }

    /// The tier in Korean, as the queue's filter names it.
    pub(crate) fn label_ko(self) -> &'static str {
        match self {
            Tier::Urgent => "긴급 (소재파악·반복 발굴)",
            Tier::Overdue => "기한초과",
            Tier::DueToday => "오늘 마감",
            Tier::AttemptDue => "재시도할 차례",
            Tier::New => "신규",
            Tier::Attempting => "연락 시도 중",
        }
    }

    /// The tier named `name`.
    pub(crate) fn parse(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// The queue's tiers in order: those `queue_order` names, then the rest in
/// the default order (names are checked when the pipeline loads).
pub(crate) fn queue_tiers(spec: &crate::definition::OutcomeSpec) -> Vec<Tier> {
    let mut tiers: Vec<Tier> = spec
        .queue_order
        .iter()
        .filter_map(|n| Tier::parse(n))
        .collect();
    for t in Tier::ALL {
        if !tiers.contains(&t) {
            tiers.push(t);
        }
    }
    tiers
}

/// An alert waiting for its first reach.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlert {
    /// Its id (`al-` and 32 hex digits).
    pub(crate) alert_id: String,
    /// Its priority.
    pub(crate) priority: Priority,
    /// When it was sent (driver's clock), ms.
    pub(crate) emitted_at: i64,
    /// When a first reach is due, ms.
    pub(crate) due_at: i64,
}

/// A household's open work at one instant: what every view shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenWork {
    /// The dong serving it now.
    pub dong: String,
    /// Dongs of its open alerts other than `dong` (it moved): they see it too.
    pub(crate) other_dongs: Vec<String>,
    /// Its status.
    pub(crate) status: CaseStatus,
    /// The status in Korean, with what makes it true (`보류 (~2027-02-01)`).
    pub(crate) status_ko: String,
    /// In the waiting part of the queue, at this tier.
    pub(crate) tier: Option<Tier>,
    /// Its place in the pipeline's queue order (`None`: not open).
    pub(crate) tier_rank: Option<u8>,
    /// Priority of its newest alert.
    pub(crate) priority: Option<Priority>,
    /// Categories of its newest alert.
    pub(crate) categories: Vec<String>,
    /// When the first reach of its oldest open alert is due, ms.
    pub(crate) due_at: Option<i64>,
    /// Whole days (rounded up) past that due time; `None` if not overdue.
    pub(crate) overdue_days: Option<i64>,
    /// Failed attempts since the last reach.
    pub(crate) attempts: u32,
    /// The newest of them, ms.
    pub(crate) last_attempt_at: Option<i64>,
    /// When the next attempt is due, ms.
    pub(crate) next_attempt_at: Option<i64>,
    /// Unreachable since (the first failed attempt of the spell), ms.
    pub(crate) unreachable_since: Option<i64>,
    /// Repeatedly flagged and nobody engaged since.
    pub(crate) repeatedly_flagged: bool,
    /// Separate episodes among the alerts kept (within the repeat span).
    pub(crate) episodes: u32,
    /// Alerts waiting for a first reach, oldest first.
    pub open_alerts: Vec<OpenAlert>,
    /// The outcomes that count, oldest first.
    pub(crate) outcomes: Vec<OutcomeSoFar>,
    /// Held (or linked) until, ms.
    pub(crate) hold_until: Option<i64>,
    /// The services of the newest support linked.
    pub(crate) services: Vec<&'static str>,
    /// In case management since, ms.
    pub(crate) in_case_since: Option<i64>,
    /// Days in case management.
    pub(crate) case_age_days: Option<i64>,
    /// Priority and categories when the case opened.
    pub(crate) opened_with: Option<(Priority, u8)>,
    /// Alerts sent for it so far.
    pub(crate) times_flagged: u32,
    /// The next step in Korean (`D+12 초과`, `오늘 마감`,
    /// `2회 시도, 다음 시도 11-03`).
    pub(crate) step_ko: String,
    /// The same in English.
    pub(crate) step_en: String,
    /// Orders households within a tier (earlier first), ms.
    pub(crate) order_at: i64,
    /// In case management: its plan and reviews (the case meeting's view).
    pub(crate) managed: Option<Box<super::meeting::Managed>>,
    /// Not in case management: why it may be selected at a meeting.
    pub(crate) candidacy: Option<super::meeting::Candidacy>,
    /// The case openings kept in its history.
    pub(crate) openings: Vec<super::meeting::Opening>,
}

impl OpenWork {
    /// Why the case record stands as it does, in Korean and English lines:
    /// the status, a hold with the outcome that set it and when it ends,
    /// case management. What `sagak explain` and the household page say.
    pub(crate) fn explained(&self, clock: &crate::base::civil::LocalClock) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "case / 사례: {} (status {})",
            self.status_ko,
            self.status.as_str()
        );
        if let Some(until) = self.hold_until {
            let end = clock.day_text(until);
            let _ = write!(out, "  held until {end} / 보류 {end}까지");
            if let Some(o) = self.outcomes.iter().rev().find(|o| o.recorded_at <= until) {
                let at = clock.day_text(o.recorded_at);
                let _ = write!(out, ": by {} ({}) recorded {at}", o.kind, o.label);
            }
            out.push_str(" (the same or a lower priority is not alerted meanwhile)\n");
        }
        if let Some(since) = self.in_case_since {
            let _ = writeln!(
                out,
                "  in case management since {}: case updates instead of alerts",
                clock.day_text(since)
            );
        }
        out
    }

    /// Where the household goes on its dong's agenda for the meeting of
    /// `day` (the office's calendar, days since 1970-01-01), and why;
    /// `None`: not on it ([`super::meeting`] says what goes where).
    pub(crate) fn agenda_place(
        &self,
        day: i32,
    ) -> Option<(super::meeting::Part, Vec<super::meeting::Why>)> {
        match (&self.managed, &self.candidacy) {
            (Some(m), _) => m.place(day),
            (None, Some(c)) => c.place(),
            (None, None) => None,
        }
    }

    /// Whether it waits in the queue.
    pub(crate) fn open(&self) -> bool {
        self.tier.is_some()
    }

    /// Whether its first reach is past due.
    pub(crate) fn overdue(&self) -> bool {
        self.overdue_days.is_some()
    }

    /// Whether the office of `dong` sees it.
    pub(crate) fn visible_to(&self, dong: &str) -> bool {
        self.dong == dong || self.other_dongs.iter().any(|d| d == dong)
    }

    /// The dongs that see it: its own, then those of its open alerts.
    pub(crate) fn dongs(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.dong.as_str()).chain(self.other_dongs.iter().map(|d| d.as_str()))
    }

    /// The queue's order, as three numbers (smaller first) that the lists'
    /// SQL sorts by too (`queue_order`, `queue_sub`, `queue_at`), before the
    /// higher score:
    /// 1. the tier as the pipeline orders them (not open: last), a
    ///    repeatedly flagged household first within the urgent tier;
    /// 2. within the urgent tier, the household flagged in more separate
    ///    episodes first (a crisis that keeps coming back unreached is
    ///    what the Suwon family's was); then the priority;
    /// 3. the tier's time: the longest unreachable, the oldest due time,
    ///    the oldest retry.
    pub(crate) fn queue_parts(&self) -> (i64, i64, i64) {
        let urgent = self.tier == Some(Tier::Urgent);
        let order = i64::from(self.tier_rank.unwrap_or(u8::MAX)) * 2
            + i64::from(!(urgent && self.repeatedly_flagged));
        let episodes = if urgent {
            i64::from(self.episodes.min(255))
        } else {
            0
        };
        (
            order,
            (255 - episodes) * 4 + priority_rank(self.priority),
            self.order_at,
        )
    }

    /// [`OpenWork::queue_parts`] and then the higher score.
    pub(crate) fn queue_key(&self, score: Option<f64>) -> (i64, i64, i64, i64) {
        let (order, sub, at) = self.queue_parts();
        // higher score first; scores are small and positive
        (order, sub, at, -(score.unwrap_or(0.0) * 1000.0) as i64)
    }
}

/// P1 first (0), then P2, P3; none last.
pub(crate) fn priority_rank(p: Option<Priority>) -> i64 {
    p.map_or(3, |p| 3 - i64::from(p as u8))
}

/// Whether the household still waits for someone to reach it (see the
/// module's definition of open).
pub(crate) fn waiting(r: &CaseRecord, view: &CaseView) -> bool {
    view.deceased_at.is_none()
        && view.in_case.is_none()
        && (has_open_alert(r) || view.attempts > 0 || view.unreachable.is_some())
}

/// Whether the household has work anybody still owes it: open, or in case
/// management. Such a record is never forgotten at retention.
pub(crate) fn still_open(r: &CaseRecord, view: &CaseView) -> bool {
    (view.in_case.is_some() && view.deceased_at.is_none()) || waiting(r, view)
}

/// Households per dong at one instant, counted with [`OpenWork`]: each in
/// every dong that sees it, as each dong's queue shows it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct OpenCounts {
    /// Open households per dong, priority and status.
    pub(crate) open: BTreeMap<(String, Priority, CaseStatus), i64>,
    /// Of which overdue, per dong.
    pub(crate) overdue: BTreeMap<String, i64>,
    /// Of which unreachable, per dong.
    pub(crate) unreachable: BTreeMap<String, i64>,
    /// In case management, per dong.
    pub(crate) in_case: BTreeMap<String, i64>,
}

impl OpenCounts {
    /// Counts one household's open work.
    pub(crate) fn add(&mut self, w: &OpenWork) {
        for dong in w.dongs() {
            if w.in_case_since.is_some() {
                *self.in_case.entry(dong.to_string()).or_default() += 1;
            }
            if !w.open() {
                continue;
            }
            let p = w.priority.unwrap_or(Priority::P3);
            *self
                .open
                .entry((dong.to_string(), p, w.status))
                .or_default() += 1;
            if w.overdue() {
                *self.overdue.entry(dong.to_string()).or_default() += 1;
            }
            if w.status == CaseStatus::Unreachable {
                *self.unreachable.entry(dong.to_string()).or_default() += 1;
            }
        }
    }

    /// Adds another pass's counts.
    pub(crate) fn merge(&mut self, other: OpenCounts) {
        for (k, n) in other.open {
            *self.open.entry(k).or_default() += n;
        }
        for (map, from) in [
            (&mut self.overdue, other.overdue),
            (&mut self.unreachable, other.unreachable),
            (&mut self.in_case, other.in_case),
        ] {
            for (k, n) in from {
                *map.entry(k).or_default() += n;
            }
        }
    }
}

impl CaseBook {
    /// The open work of a household whose record is `r`, at `now_ms` (the
    /// driver's clock).
    pub(crate) fn open_work(&self, r: &CaseRecord, now_ms: i64) -> OpenWork {
        let view = self.view(r);
        let status = rules::status(&self.rules, &view, r, now_ms);
        let last = r.last_alert();
        let priority = last.map(|a| a.priority);
        let open_alerts = self.open_alerts(r);
        let due_at = open_alerts.iter().map(|a| a.due_at).min();
        let waiting = waiting(r, &view);
        let overdue_days = due_at
            .filter(|&due| waiting && now_ms > due)
            .map(|due| (now_ms - due + DAY_MS - 1) / DAY_MS);
        let retry = self.rules.retry(priority.unwrap_or(Priority::P3));
        let next_attempt_at = view.last_attempt_at.map(|at| at + retry);
        let repeatedly_flagged = rules::repeatedly_flagged(r, &view);
        let (hold_until, services) = self.hold(&view, status);
        let mut w = OpenWork {
            dong: dong_text(r.dong),
            other_dongs: Self::other_dongs(r),
            status,
            status_ko: String::new(),
            tier: None,
            tier_rank: None,
            priority,
            categories: last
                .map(|a| self.category_names(a.categories))
                .unwrap_or_default(),
            due_at,
            overdue_days,
            attempts: view.attempts,
            last_attempt_at: view.last_attempt_at,
            next_attempt_at,
            unreachable_since: view.unreachable.map(|(since, _)| since),
            repeatedly_flagged,
            episodes: rules::episode_starts(&r.alerts, self.rules.cooldown_days).len() as u32,
            open_alerts,
            outcomes: self.outcomes_so_far(r),
            hold_until,
            services,
            in_case_since: view.in_case,
            case_age_days: view.in_case.map(|at| (now_ms - at).div_euclid(DAY_MS)),
            opened_with: r.opened_with,
            times_flagged: r.flagged,
            step_ko: String::new(),
            step_en: String::new(),
            order_at: 0,
            managed: self.managed(r, &view),
            candidacy: self.candidacy(r, &view),
            openings: Self::openings(r),
        };
        if waiting {
            let (tier, order_at) = self.tier(&w, now_ms);
            w.tier = Some(tier);
            w.tier_rank = self
                .queue_order
                .iter()
                .position(|&t| t == tier)
                .map(|i| i as u8);
            w.order_at = order_at;
        }
        w.status_ko = self.status_text(&w);
        (w.step_ko, w.step_en) = self.step(&w, now_ms);
        w
    }

    /// The open work of a record's bytes (as the web front keeps them).
    pub(crate) fn open_work_of(&self, payload: &[u8], now_ms: i64) -> Option<OpenWork> {
        CaseRecord::decode(payload).map(|r| self.open_work(&r, now_ms))
    }

    /// Counts the record in `payload` into `counts` if it is open at
    /// `now_ms` (as [`Self::open_counts`] counts the records held here).
    pub(crate) fn count_open(&self, payload: &[u8], now_ms: i64, counts: &mut OpenCounts) {
        if let Some(r) = CaseRecord::decode(payload) {
            if still_open(&r, &self.view(&r)) {
                counts.add(&self.open_work(&r, now_ms));
            }
        }
    }

    /// The open work of a household held here.
    pub(crate) fn household_work(&self, household_id: &str, now_ms: i64) -> Option<OpenWork> {
        self.record(household_id)
            .map(|r| self.open_work(&r, now_ms))
    }

    pub(super) fn category_names(&self, set: u8) -> Vec<String> {
        self.categories
            .iter()
            .enumerate()
            .filter(|(i, _)| set & (1 << i) != 0)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn open_alerts(&self, r: &CaseRecord) -> Vec<OpenAlert> {
        r.alerts
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
            .collect()
    }

    /// Until when a held household is held, and the services linked.
    fn hold(&self, view: &CaseView, status: CaseStatus) -> (Option<i64>, Vec<&'static str>) {
        let services = view
            .linked
            .map(|(_, set)| {
                Service::ALL
                    .iter()
                    .filter(|s| set & (1 << s.code()) != 0)
                    .map(|s| s.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let until = match status {
            CaseStatus::Linked => view.linked.map(|(at, _)| at + self.rules.hold_ms),
            CaseStatus::Held => view.holds.iter().map(|h| h.0 + self.rules.hold_ms).max(),
            _ => None,
        };
        (until, services)
    }

    /// The tier of an open household and the time that orders it there.
    fn tier(&self, w: &OpenWork, now_ms: i64) -> (Tier, i64) {
        let today = self.rules.local_day(now_ms);
        let first_alert = w.open_alerts.first().map_or(0, |a| a.emitted_at);
        if let Some(since) = w.unreachable_since {
            return (Tier::Urgent, since);
        }
        if w.repeatedly_flagged && w.priority == Some(Priority::P1) {
            return (Tier::Urgent, first_alert);
        }
        if let (Some(due), true) = (w.due_at, w.overdue()) {
            return (Tier::Overdue, due);
        }
        if let Some(due) = w.due_at.filter(|&d| self.rules.local_day(d) == today) {
            return (Tier::DueToday, due);
        }
        match w.next_attempt_at {
            Some(next) if self.rules.local_day(next) <= today => (Tier::AttemptDue, next),
            Some(next) => (Tier::Attempting, next),
            None => (Tier::New, 0),
        }
    }

    /// The status in Korean, with what makes it true.
    fn status_text(&self, w: &OpenWork) -> String {
        let label = self.status_label(w.status);
        let until = w.hold_until.map(|t| self.local_date(t));
        match (w.status, until) {
            (CaseStatus::Attempting, _) => format!("{label} ({}회)", w.attempts),
            (CaseStatus::Linked, Some(u)) if !w.services.is_empty() => {
                let names: Vec<String> = w
                    .services
                    .iter()
                    .map(|s| {
                        let ko = Service::parse(s).map_or(*s, |v| v.label_ko());
                        self.rules.label(s, ko)
                    })
                    .collect();
                format!("{label} (~{u}: {})", names.join(", "))
            }
            (CaseStatus::Linked | CaseStatus::Held, Some(u)) => format!("{label} (~{u})"),
            _ => label,
        }
    }

    /// The next step, in Korean and English.
    fn step(&self, w: &OpenWork, now_ms: i64) -> (String, String) {
        let mut ko = Vec::new();
        let mut en = Vec::new();
        let md = |t: i64| self.local_date(t).get(5..).unwrap_or_default().to_string();
        if w.unreachable_since.is_some() && w.in_case_since.is_none() {
            ko.push("소재파악 필요".to_string());
            en.push("residence check needed".to_string());
        }
        if let Some(d) = w.overdue_days {
            ko.push(format!("D+{d} 초과"));
            en.push(format!("{d} days overdue"));
        } else if let Some(due) = w.due_at.filter(|_| w.open()) {
            if self.rules.local_day(due) == self.rules.local_day(now_ms) {
                ko.push("오늘 마감".into());
                en.push("due today".into());
            } else {
                ko.push(format!("마감 {}", md(due)));
                en.push(format!("due {}", md(due)));
            }
        }
        if w.attempts > 0 && w.open() {
            let next = w.next_attempt_at.map(md).unwrap_or_default();
            ko.push(format!("{}회 시도, 다음 시도 {next}", w.attempts));
            en.push(format!("{} failed attempts, next {next}", w.attempts));
        }
        if let Some(days) = w.case_age_days {
            ko.push(format!("사례관리 {days}일째"));
            en.push(format!("day {days} of case management"));
        }
        (ko.join(" · "), en.join(" · "))
    }

    /// The dongs that see a record: the one serving the household now,
    /// then those its open alerts were addressed to.
    pub(crate) fn dongs_of(payload: &[u8]) -> Vec<String> {
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

    /// A household's case record as it is held (compact bytes): what the
    /// web front keeps, rendered only when a page shows it.
    pub(crate) fn payload(&self, household_id: &str) -> Option<&[u8]> {
        self.records.get(household_id).map(|r| r.payload())
    }

    /// The records the web front keeps at `now_ms`: open work, a case,
    /// or any activity within `recent_ms`; and those of `also` (the
    /// households on the day's lists), so every listed household opens.
    pub(crate) fn work_payloads(
        &self,
        now_ms: i64,
        recent_ms: i64,
        also: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, std::sync::Arc<[u8]>)> {
        let mut out = Vec::new();
        for held in self.records.iter() {
            let Some(r) = CaseRecord::decode(held.payload()) else {
                continue;
            };
            let view = self.view(&r);
            // a candidate for the dong's case meeting stays until a
            // meeting decides, however long ago it was counselled
            let keep = r.last_activity() >= now_ms - recent_ms
                || still_open(&r, &view)
                || self.candidacy(&r, &view).is_some_and(|c| c.proposed())
                || also(held.id());
            if keep {
                out.push((held.id().to_string(), std::sync::Arc::from(held.payload())));
            }
        }
        out
    }

    /// Households in case management.
    #[cfg(test)]
    pub(crate) fn in_case(&self) -> impl Iterator<Item = &str> {
        self.records.iter().filter_map(move |held| {
            let r = CaseRecord::decode(held.payload())?;
            self.view(&r).in_case.map(|_| held.id())
        })
    }

    /// The open work of every household held here at `now_ms`, counted per
    /// dong: what the operations metrics and the city page show.
    pub(crate) fn open_counts(&self, now_ms: i64) -> OpenCounts {
        let mut counts = OpenCounts::default();
        for held in self.records.iter() {
            let Some(r) = CaseRecord::decode(held.payload()) else {
                continue;
            };
            if still_open(&r, &self.view(&r)) {
                counts.add(&self.open_work(&r, now_ms));
            }
        }
        counts
    }

    /// The households held here that are open at `now_ms`, with their open
    /// work.
    pub(crate) fn open_households(&self, now_ms: i64) -> Vec<(String, OpenWork)> {
        self.records
            .iter()
            .filter_map(|held| {
                let r = CaseRecord::decode(held.payload())?;
                if !waiting(&r, &self.view(&r)) {
                    return None;
                }
                Some((held.id().to_string(), self.open_work(&r, now_ms)))
            })
            .collect()
    }

    /// The households held here that are open for `dong` at `now_ms`, with
    /// their open work (for a summary of a dong's queue without the web).
    pub(crate) fn open_of_dong(&self, dong: &str, now_ms: i64) -> Vec<(String, OpenWork)> {
        let mut open = self.open_households(now_ms);
        open.retain(|(_, w)| w.visible_to(dong));
        open
    }
}
