//! The dong offices of the demo, simulated: each alert is answered (or
//! not) after a seeded, realistic delay, and the outcomes go back into the
//! pipeline as messages of the outcomes topic, as an office's system would
//! send them.
//!
//! Most alerts get a contact within days, some only after their due time,
//! a share never; some households cannot be found; some enter case
//! management and are closed weeks later. One planted household is like
//! the Suwon family of 2022: premium arrears notified every month,
//! registered in one dong while living elsewhere, every attempt failing.

use crate::base::time::ClockTime;
use std::collections::{BTreeMap, HashMap};

use crate::base::message::InputMessage;
use crate::definition::{PipelineSpec, DAY_MS};
use crate::generate::rng::SplitMix64;
use crate::generate::{Expect, GeneratedMessage};
use crate::stages::alert::{rfc3339, Alert, AlertType};
use crate::stages::score::Priority;

/// The household planted like the Suwon case.
pub(crate) const SUWON_HOUSEHOLD: &str = "hh-suwon-2022";
/// The dong it is registered in (it lives elsewhere).
pub(crate) const SUWON_DONG: &str = "4125052000";

/// Share of alerts no office ever answers.
const NEVER_ANSWERED: f64 = 0.12;
/// Share of households nobody can reach.
const UNREACHABLE: f64 = 0.04;
/// Share of offices that stop after a failed attempt (sagak's queue then
/// keeps the household open and escalates it).
const GIVE_UP: f64 = 0.15;

/// What the simulated offices did, for the demo's summary.
#[derive(Debug, Default, Clone)]
pub(crate) struct OfficeLog {
    /// Per alert: its priority, when it was sent, and when its first
    /// reach was recorded (once that outcome was handed to the pipeline).
    pub(crate) first_contact: HashMap<String, (Priority, i64, Option<i64>)>,
    /// Per household: when its first failed attempt was scheduled.
    pub(crate) failed: HashMap<String, i64>,
    /// Per household: when someone of it was first reached (handed to the
    /// pipeline).
    pub(crate) reached: HashMap<String, i64>,
    /// Outcomes handed to the pipeline, per kind.
    pub(crate) outcomes: BTreeMap<String, usize>,
    /// Case meetings held (one per dong every two weeks).
    pub(crate) meetings: usize,
    /// Goals found met at the meetings' reviews.
    pub(crate) goals_met: usize,
}

/// Days between two case meetings of a dong.
pub(crate) const MEETING_EVERY_DAYS: i64 = 14;

/// The simulated offices.
pub(crate) struct SimulatedOffices {
    rng: SplitMix64,
    /// Outcomes waiting for their time: (recorded at, sequence) -> message
    /// and the alert whose first contact it is, if it is one.
    pending: BTreeMap<(i64, u64), (InputMessage, Option<String>, &'static str)>,
    seq: u64,
    feed: u16,
    topic: std::sync::Arc<str>,
    /// Households already answered with a case (no second one is opened).
    in_case: HashMap<String, bool>,
    /// Households the generator pushed into crisis: an office that reaches
    /// one usually finds a need; the others (a bill paid late once) are
    /// usually no case.
    planted: std::collections::HashSet<String>,
    /// When the next case meetings are held (driver's clock, ms; 0: from
    /// the first outcome's time on).
    next_meeting: i64,
    /// What they did.
    pub(crate) log: OfficeLog,
}

impl SimulatedOffices {
    /// Offices for `spec`'s outcomes topic, seeded.
    pub(crate) fn new(spec: &PipelineSpec, seed: u64) -> Self {
        SimulatedOffices {
            rng: SplitMix64::new(seed ^ 0x6f66_6669_6365_7321),
            pending: BTreeMap::new(),
            seq: 0,
            feed: spec.outcome_feed(),
            topic: "dong-office.outcomes".into(),
            in_case: HashMap::new(),
            planted: Default::default(),
            next_meeting: 0,
            log: OfficeLog::default(),
        }
    }

    /// Offices that know which households were pushed into crisis (what a
    /// visit would find), so the demo's yield of the rules means something.
    pub(crate) fn knowing(mut self, planted: impl IntoIterator<Item = String>) -> Self {
        self.planted = planted.into_iter().collect();
        self
    }

    /// What an office finds once it reached `household`: a share of 100
    /// per finding (support, case, counselling, declined, no need, already a
    /// recipient, data error), the rest nothing recorded.
    fn findings(&self, household: &str) -> [u64; 7] {
        match self.planted.contains(household) || self.planted.is_empty() {
            true => [40, 20, 15, 8, 7, 0, 0],
            false => [5, 2, 15, 8, 45, 12, 5],
        }
    }

    /// Whether nobody can reach `household` (a seeded share, and the
    /// planted one).
    fn unreachable(household: &str) -> bool {
        household == SUWON_HOUSEHOLD
            || (crate::base::hash::fnv1a64(&[household.as_bytes(), b"reach"]) % 10_000)
                < (UNREACHABLE * 10_000.0) as u64
    }

    fn days(&mut self, from: f64, to: f64) -> i64 {
        let unit = self.rng.below(1_000_000) as f64 / 1_000_000.0;
        ((from + (to - from) * unit) * DAY_MS as f64) as i64
    }

    fn schedule(
        &mut self,
        a: &Alert,
        at: i64,
        fields: String,
        first_of: Option<&str>,
        kind: &'static str,
    ) {
        let alert = format!(r#""alert_id":"{}","#, a.alert_id);
        let to = (
            a.household_id.as_str(),
            a.dong_code.as_str(),
            alert.as_str(),
        );
        self.schedule_for(to, at, fields, first_of, kind);
    }

    /// Schedules an outcome for (household, dong, `"alert_id":..,` or "").
    fn schedule_for(
        &mut self,
        (hh, dong, alert): (&str, &str, &str),
        at: i64,
        fields: String,
        first_of: Option<&str>,
        kind: &'static str,
    ) {
        self.seq += 1;
        let value = format!(
            r#"{{"outcome_id":"demo-{seq}","household_id":"{hh}","dong_code":"{dong}",{alert}"recorded_at":"{at}","staff_id":"demo-staff-{staff}",{fields}}}"#,
            seq = self.seq,
            at = rfc3339(at),
            staff = self.rng.below(40),
        );
        let a_household_id = hh;
        let message = InputMessage {
            feed: Some(self.feed),
            topic: std::sync::Arc::clone(&self.topic),
            partition: 0,
            offset: self.seq as i64,
            key: Some(a_household_id.as_bytes().to_vec()),
            payload: Some(value.into_bytes()),
            timestamp_ms: Some(at),
            source_file: None,
        };
        self.pending
            .insert((at, self.seq), (message, first_of.map(String::from), kind));
    }

    /// Schedules failed attempts with `results` from `at` on, a retry
    /// interval apart (one to four days); an office may give up after any
    /// of them.
    fn failed_attempts(&mut self, a: &Alert, at: &mut i64, results: &[&str]) {
        for (n, result) in results.iter().enumerate() {
            let channel = if *result == "address_mismatch" {
                "visit"
            } else {
                "phone"
            };
            let fields =
                format!(r#""kind":"contact_attempted","channel":"{channel}","result":"{result}""#);
            self.schedule(a, *at, fields, None, "contact_attempted");
            self.log.failed.entry(a.household_id.clone()).or_insert(*at);
            *at += self.days(1.0, 4.0);
            if n + 1 < results.len() && self.rng.chance(GIVE_UP) {
                return;
            }
        }
    }

    /// Decides what the offices will do about the alerts just sent.
    pub(crate) fn on_alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            if a.case.kind == AlertType::CaseUpdate {
                continue;
            }
            self.log
                .first_contact
                .insert(a.alert_id.clone(), (a.priority, a.emitted_at, None));
            let hh = a.household_id.as_str();
            if hh != SUWON_HOUSEHOLD && self.rng.chance(NEVER_ANSWERED) {
                continue;
            }
            // the first attempt: P1 within days, P3 within weeks; some late
            let (lo, hi) = match a.priority {
                Priority::P1 => (0.2, 4.0),
                Priority::P2 => (0.5, 9.0),
                Priority::P3 => (1.0, 18.0),
            };
            let mut at = a.emitted_at + self.days(lo, hi);
            if Self::unreachable(hh) {
                // every attempt fails; the visit finds another family at
                // the registered address (some offices give up after one)
                self.failed_attempts(a, &mut at, &["no_answer", "no_answer", "address_mismatch"]);
                continue;
            }
            // a share of first calls go unanswered; offices retry within
            // days, as their retry interval asks, and some never do
            let mut failures = 0;
            let mut gave_up = false;
            while failures < 3 && self.rng.chance(if failures == 0 { 0.25 } else { 0.35 }) {
                self.failed_attempts(a, &mut at, &["no_answer"]);
                failures += 1;
                gave_up = self.rng.chance(GIVE_UP);
                if gave_up {
                    break;
                }
            }
            if gave_up {
                continue;
            }
            let reached = r#""kind":"contact_attempted","channel":"phone","result":"reached""#;
            self.schedule(
                a,
                at,
                reached.into(),
                Some(&a.alert_id),
                "contact_attempted",
            );
            at += self.days(0.0, 2.0);
            self.find(a, at);
        }
    }

    /// Schedules what the office finds about `a`'s household at `at`.
    fn find(&mut self, a: &Alert, at: i64) {
        let hh = a.household_id.as_str();
        let shares = self.findings(hh);
        let mut roll = self.rng.below(100);
        let finding = shares.iter().position(|s| {
            let hit = roll < *s;
            roll = roll.saturating_sub(*s);
            hit
        });
        let in_case = self.in_case.get(hh).copied().unwrap_or(false);
        let na = |reason: &str| format!(r#""kind":"not_applicable","reason":"{reason}""#);
        match finding {
            Some(2) => self.schedule(a, at, r#""kind":"counselled""#.into(), None, "counselled"),
            Some(0) => self.schedule(
                a,
                at,
                r#""kind":"support_linked","services":["emergency_welfare","energy"]"#.into(),
                None,
                "support_linked",
            ),
            // the need is clear at once (a walk-in case): opened now, its
            // plan, reviews and closing decided at the dong's meetings
            Some(1) if !in_case => {
                self.in_case.insert(hh.to_string(), true);
                self.schedule(
                    a,
                    at,
                    r#""kind":"case_opened","track":"case_management""#.into(),
                    None,
                    "case_opened",
                );
            }
            Some(3) => self.schedule(a, at, r#""kind":"declined""#.into(), None, "declined"),
            Some(4) => self.schedule(a, at, na("no_need"), None, "not_applicable"),
            Some(5) => self.schedule(a, at, na("already_recipient"), None, "not_applicable"),
            Some(6) => self.schedule(a, at, na("data_error"), None, "not_applicable"),
            _ => {}
        }
    }

    /// When the dongs' next case meetings are due, if before `until`: the
    /// caller holds them ([`SimulatedOffices::on_agenda`] per dong) and
    /// calls [`SimulatedOffices::meetings_held`].
    pub(crate) fn meeting_due(&mut self, until: ClockTime) -> Option<i64> {
        if self.next_meeting == 0 {
            self.next_meeting = until.ms() + MEETING_EVERY_DAYS * DAY_MS;
        }
        (self.next_meeting < until.ms()).then_some(self.next_meeting)
    }

    /// The meetings of `at` were held.
    pub(crate) fn meetings_held(&mut self, dongs: usize) {
        self.log.meetings += dongs;
        self.next_meeting += MEETING_EVERY_DAYS * DAY_MS;
    }

    /// A dong's meeting at `at` decides on its agenda: most candidates
    /// become cases, open cases without a plan get one, cases due are
    /// reviewed, and those ready are closed. Each decision is an outcome
    /// recorded an hour or two after the meeting.
    pub(crate) fn on_agenda(&mut self, agenda: &crate::ops::agenda::Agenda, at: i64) {
        use crate::stages::case::meeting::Part;
        for (part, row) in agenda.rows() {
            let hh = row.item.household_id.clone();
            let dong = agenda.dong.clone();
            let to = (hh.as_str(), dong.as_str(), "");
            let when = at + self.days(0.04, 0.12);
            let c = &row.item.case;
            match part {
                // an office does not open a case it already opened
                Part::Candidate if self.in_case.get(&hh) == Some(&true) => {}
                Part::Candidate if self.rng.chance(0.7) => {
                    self.in_case.insert(hh.clone(), true);
                    let open = r#""kind":"case_opened","track":"case_management""#;
                    self.schedule_for(to, when, open.into(), None, "case_opened");
                }
                // the meeting decides against a case: the need is met
                // otherwise, and the household leaves the agenda
                Part::Candidate => {
                    let no = r#""kind":"not_applicable","reason":"no_need""#;
                    self.schedule_for(to, when, no.into(), None, "not_applicable");
                }
                Part::Review => match c.managed.as_ref().and_then(|m| m.plan.as_ref()) {
                    None => {
                        let plan = self.plan(&c.categories, when);
                        self.schedule_for(to, when, plan, None, "case_plan");
                    }
                    Some(p) => {
                        let goals = p.goals.len();
                        let before = c.managed.as_ref().map_or(0, |m| m.reviews);
                        let review = self.review(&hh, goals, before, when);
                        self.schedule_for(to, when, review, None, "case_reviewed");
                    }
                },
                Part::Close => {
                    self.in_case.insert(hh.clone(), false);
                    let close = r#""kind":"case_closed","reason":"goal_met""#;
                    self.schedule_for(to, when, close.into(), None, "case_closed");
                }
            }
        }
    }

    /// A plan for a household in crisis over `categories`: the needs they
    /// point to, two services and two goals a month and two months away.
    fn plan(&mut self, categories: &[String], at: i64) -> String {
        let mut needs = vec!["economic"];
        for c in categories {
            match c.as_str() {
                "health" => needs.push("health"),
                "utility" => needs.push("housing"),
                "employment" => needs.push("employment"),
                _ => {}
            }
        }
        let date = |days: i64| rfc3339(at + days * DAY_MS)[..10].to_string();
        format!(
            r#""kind":"case_plan","needs":{needs:?},"services":["emergency_welfare","energy"],"goals":[{{"text":"체납 공과금 분할 납부 약정","target_date":"{}"}},{{"text":"소득 지원 신청과 결정","target_date":"{}"}}]"#,
            date(30),
            date(60)
        )
    }

    /// A review of `goals` goals after `before` reviews: goals are met
    /// more often as the services take effect; the next review in two
    /// weeks (the next meeting).
    fn review(&mut self, hh: &str, goals: usize, before: u32, at: i64) -> String {
        let start = if self.planted.contains(hh) { 0.6 } else { 0.5 };
        let met = (start + 0.15 * f64::from(before)).min(0.9) * 100.0;
        // of the rest, most partly met
        let partly = met + (100.0 - met) * 0.7;
        let results: Vec<&str> = (0..goals)
            .map(|_| match self.rng.below(100) as f64 {
                r if r < met => "met",
                r if r < partly => "partly",
                _ => "not_met",
            })
            .collect();
        self.log.goals_met += results.iter().filter(|r| **r == "met").count();
        let next = rfc3339(at + MEETING_EVERY_DAYS * DAY_MS)[..10].to_string();
        format!(
            r#""kind":"case_reviewed","goal_results":{results:?},"service_fit":[{{"service":"energy","fits":true}},{{"service":"emergency_welfare","fits":{}}}],"next_review":"{next}""#,
            self.rng.chance(0.8)
        )
    }

    /// The next outcome recorded before `until`, if any.
    pub(crate) fn next_before(&mut self, until: ClockTime) -> Option<InputMessage> {
        let (&(at, seq), _) = self.pending.first_key_value()?;
        if at >= until.ms() {
            return None;
        }
        let (message, first_of, kind) = self.pending.remove(&(at, seq))?;
        if let Some(alert) = first_of {
            if let Some(entry) = self.log.first_contact.get_mut(&alert) {
                entry.2 = Some(at);
            }
            if let Some(hh) = message
                .key
                .as_deref()
                .and_then(|k| std::str::from_utf8(k).ok())
            {
                self.log.reached.entry(hh.to_string()).or_insert(at);
            }
        }
        *self.log.outcomes.entry(kind.to_string()).or_default() += 1;
        // once in case management, a case closed makes it a candidate again
        if kind == "case_closed" {
            if let Some(hh) = std::str::from_utf8(message.key.as_deref().unwrap_or_default())
                .ok()
                .map(String::from)
            {
                self.in_case.insert(hh, false);
            }
        }
        Some(message)
    }
}

/// The planted household's signals: premium arrears notified every month
/// from `start_ms`, one month more each time, registered in
/// [`SUWON_DONG`].
pub fn suwon_signals(start_ms: i64, days: u32) -> Vec<GeneratedMessage> {
    let mut out = Vec::new();
    let mut month = 0;
    let mut at = start_ms + 10 * DAY_MS;
    while at < start_ms + i64::from(days) * DAY_MS {
        let months = 3 + month;
        let observed = rfc3339(at);
        let payload = format!(
            r#"{{"event_id":"suwon-nhis-{month}","household_id":"{SUWON_HOUSEHOLD}","dong_code":"{SUWON_DONG}","observed_at":"{observed}","source":"nhis","months_overdue":{months},"amount_krw":{}}}"#,
            months * 91_000
        );
        out.push(GeneratedMessage {
            feed: "health-insurance",
            key: Some(SUWON_HOUSEHOLD.as_bytes().to_vec()),
            payload: payload.into_bytes(),
            // the insurer's monthly batch reaches the broker the next morning
            arrival_ms: at + DAY_MS / 2,
            expect: Expect::Valid,
        });
        month += 1;
        at += 30 * DAY_MS;
    }
    out
}
