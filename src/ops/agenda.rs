//! A dong's case meeting (사례회의) agenda for a date: new candidates,
//! cases to review and cases ready to close, each ranked as the work
//! queue ranks households, and the month's figures for the dong. Built
//! from the same open work as every other view
//! ([`crate::stages::case::meeting`] decides where a household goes), so
//! the page, its CSV, the printed agenda, `sagak agenda` and the city's
//! counts tell the same story.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::base::civil::{civil_from_days, LocalClock};
use crate::ops::work::WorkItem;
use crate::stages::case::meeting::{Part, Why};
use crate::stages::case::outcome::{date_text, parse_date};

/// One household on the agenda, with why.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) item: Arc<WorkItem>,
    pub(crate) why: Vec<Why>,
}

/// The month's figures of a dong's cases (the month of the meeting).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct MonthFigures {
    /// `YYYY-MM`.
    pub(crate) month: String,
    pub(crate) opened: usize,
    pub(crate) reviewed: usize,
    pub(crate) closed: usize,
    /// Median days from the crisis's first alert to the case's opening, of
    /// the cases opened this month.
    pub(crate) median_days_to_open: Option<f64>,
    /// Cases opened this month after an earlier case of the household closed.
    pub(crate) reopened: usize,
}

/// A dong's agenda for the meeting of `day`.
#[derive(Debug, Clone)]
pub(crate) struct Agenda {
    pub(crate) dong: String,
    /// The meeting's day (the office's calendar, days since 1970-01-01).
    pub(crate) day: i32,
    /// New candidates, cases to review, cases ready to close.
    pub(crate) parts: [Vec<Row>; 3],
    pub(crate) month: MonthFigures,
}

impl Agenda {
    /// The agenda of `dong` from its households' open work (`items`, most
    /// urgent first as the queue orders them): the households it serves.
    pub(crate) fn of(items: &[Arc<WorkItem>], dong: &str, day: i32, clock: LocalClock) -> Agenda {
        let mut parts: [Vec<Row>; 3] = Default::default();
        let mut month = Month::new(day);
        for item in items.iter().filter(|i| i.case.dong == dong) {
            month.add(item, clock);
            if let Some((part, why)) = item.case.agenda_place(day) {
                let slot = Part::ALL.iter().position(|&p| p == part).unwrap_or(0);
                parts[slot].push(Row {
                    item: Arc::clone(item),
                    why,
                });
            }
        }
        Agenda {
            dong: dong.to_string(),
            day,
            parts,
            month: month.figures(),
        }
    }

    /// Every household shown, once (what the audit records).
    pub(crate) fn households(&self) -> Vec<String> {
        self.rows()
            .map(|(_, r)| r.item.household_id.clone())
            .collect()
    }

    /// Each part's rows, in order.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (Part, &Row)> {
        Part::ALL
            .iter()
            .zip(&self.parts)
            .flat_map(|(&p, rows)| rows.iter().map(move |r| (p, r)))
    }

    /// The counts of its three parts.
    pub(crate) fn counts(&self) -> [usize; 3] {
        [
            self.parts[0].len(),
            self.parts[1].len(),
            self.parts[2].len(),
        ]
    }

    /// The agenda as JSON (the API).
    pub(crate) fn json(&self) -> Value {
        let mut parts = serde_json::Map::new();
        for (i, part) in Part::ALL.iter().enumerate() {
            let rows: Vec<Value> = self.parts[i]
                .iter()
                .enumerate()
                .map(|(n, r)| row_json(r, n + 1))
                .collect();
            parts.insert(part.as_str().into(), Value::Array(rows));
        }
        json!({
            "dong_code": self.dong,
            "date": date_text(self.day),
            "parts": parts,
            "counts": Part::ALL.iter().zip(self.counts())
                .map(|(p, n)| (p.as_str().to_string(), json!(n)))
                .collect::<serde_json::Map<_, _>>(),
            "month": self.month,
        })
    }

    /// The agenda as CSV for Excel (UTF-8 with a BOM, CRLF): a row per
    /// household with its part, place, why, and the plan's goals.
    pub(crate) fn csv(&self, clock: LocalClock) -> String {
        let when = |ms: i64| clock.day_text(ms);
        let mut out = String::from(
            "\u{feff}part,part_ko,place,household_id,priority,categories,status_ko,why_ko,why,case_since,needs,services,goals,next_review\r\n",
        );
        let mut place = 0;
        let mut last = None;
        for (part, r) in self.rows() {
            place = if last == Some(part) { place + 1 } else { 1 };
            last = Some(part);
            let c = &r.item.case;
            let (ko, en) = why_texts(&r.why);
            let m = c.managed.as_deref();
            let plan = m.and_then(|m| m.plan.as_ref());
            let texts = r.item.goal_texts();
            let goals = plan
                .map(|p| {
                    p.goals
                        .iter()
                        .enumerate()
                        .map(|(i, (target, result))| {
                            let text = texts.get(i).map_or("", String::as_str);
                            let result = result.map_or("미점검", |g| g.label_ko());
                            format!("{}. {text} (~{}) {result}", i + 1, date_text(*target))
                        })
                        .collect::<Vec<_>>()
                        .join(" / ")
                })
                .unwrap_or_default();
            let cells = [
                part.as_str().to_string(),
                part.label_ko().to_string(),
                place.to_string(),
                r.item.household_id.clone(),
                c.priority.map_or("", |p| p.as_str()).to_string(),
                c.categories.join(" "),
                c.status_ko.clone(),
                ko,
                en,
                c.in_case_since.map(when).unwrap_or_default(),
                plan.map(|p| {
                    p.needs
                        .iter()
                        .map(|n| n.label_ko())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
                plan.map(|p| p.services.join(" ")).unwrap_or_default(),
                goals,
                m.and_then(|m| m.review_due)
                    .map(date_text)
                    .unwrap_or_default(),
            ];
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                crate::lists::write::csv_field(&mut out, cell);
            }
            out.push_str("\r\n");
        }
        out
    }
}

/// The reasons in Korean and English, joined.
pub(crate) fn why_texts(why: &[Why]) -> (String, String) {
    let texts: Vec<(String, String)> = why.iter().map(Why::text).collect();
    (
        texts
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        texts
            .iter()
            .map(|t| t.1.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// The case's plan in force and its reviews, as the API shows them (the
/// agenda's rows and a household's answer): `null` out of case management.
pub(crate) fn plan_json(item: &WorkItem) -> Value {
    let Some(m) = item.case.managed.as_deref() else {
        return Value::Null;
    };
    let texts = item.goal_texts();
    let plan = m.plan.as_ref().map(|p| {
        json!({
            "recorded_at": crate::stages::alert::rfc3339(p.at),
            "needs": p.needs.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "services": p.services,
            "goals": p.goals.iter().enumerate().map(|(i, (target, result))| json!({
                "text": texts.get(i),
                "target_date": date_text(*target),
                "result": result.map(|g| g.as_str()),
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "plan": plan,
        "reviews": m.reviews,
        "next_review": m.review_due.map(date_text),
        "services_linked_unconfirmed": m.unconfirmed,
        "last_review": m.review.as_ref().map(|v| json!({
            "recorded_at": crate::stages::alert::rfc3339(v.at),
            "services_fit": v.fits,
            "services_unfit": v.unfit,
        })),
    })
}

fn row_json(r: &Row, place: usize) -> Value {
    let c = &r.item.case;
    let m = plan_json(&r.item);
    json!({
        "place": place,
        "household_id": r.item.household_id,
        "priority": c.priority.map(|p| p.as_str()),
        "categories": c.categories,
        "status": c.status.as_str(),
        "status_ko": c.status_ko,
        "score": r.item.score,
        "reasons_ko": r.item.reasons.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
        "why": r.why.iter().map(|w| {
            let (ko, en) = w.text();
            json!({"code": w.code(), "ko": ko, "en": en})
        }).collect::<Vec<_>>(),
        "in_case_since": c.in_case_since.map(crate::stages::alert::rfc3339),
        "plan": m["plan"],
        "reviews": m["reviews"],
        "next_review": m["next_review"],
        "services_linked_unconfirmed": m["services_linked_unconfirmed"],
    })
}

/// The month's figures as they are counted.
struct Month {
    year: i64,
    month: i64,
    figures: MonthFigures,
    days_to_open: Vec<i64>,
}

impl Month {
    fn new(day: i32) -> Month {
        let (year, month, _) = civil_from_days(i64::from(day));
        Month {
            year,
            month,
            figures: MonthFigures {
                month: format!("{year:04}-{month:02}"),
                ..MonthFigures::default()
            },
            days_to_open: Vec::new(),
        }
    }

    fn add(&mut self, item: &WorkItem, clock: LocalClock) {
        let in_month = |ms: i64| {
            let (y, m, _) = civil_from_days(clock.day(ms));
            (y, m) == (self.year, self.month)
        };
        for o in item.case.openings.iter().filter(|o| in_month(o.at)) {
            self.figures.opened += 1;
            self.figures.reopened += usize::from(o.closed_before.is_some());
            self.days_to_open.extend(o.after_alert_days);
        }
        for o in item
            .case
            .outcomes
            .iter()
            .filter(|o| in_month(o.recorded_at))
        {
            match o.kind.split('/').next() {
                Some("case_reviewed") => self.figures.reviewed += 1,
                Some("case_closed") => self.figures.closed += 1,
                _ => {}
            }
        }
    }

    fn figures(mut self) -> MonthFigures {
        let days = self.days_to_open.iter().map(|&d| d as f64).collect();
        self.figures.median_days_to_open = crate::ops::rule_yield::median(days);
        self.figures
    }
}

/// `sagak agenda`: the agenda of `dong` for the meeting of `date`
/// (`YYYY-MM-DD`) from a restored engine, at `now_ms` (the driver's
/// clock): the printed text, and the CSV. The goals' texts are not in the
/// engine's state (they are the office's words, kept beside it and shown
/// on the audited page and CSV of the web front), so here a goal is its
/// target date and result.
pub fn from_state(
    spec: &crate::definition::PipelineSpec,
    engine: &crate::engine::Engine,
    dong: &str,
    date: &str,
    now_ms: i64,
) -> Result<(String, String), String> {
    if !crate::base::ids::is_dong_code(dong) {
        return Err(format!(
            "--dong {dong}: a dong code is exactly 10 digits (e.g. 4125052000)"
        ));
    }
    let day = parse_date(date).ok_or_else(|| format!("--date {date}: write it as 2027-01-15"))?;
    let board = crate::ops::work::WorkBoard::new(spec);
    board.set_now(now_ms);
    let now = crate::base::time::ClockTime::from_ms(now_ms);
    // every household of the state, however old its last activity
    board.replace(engine.work_payloads(now, crate::ops::work::RECENT_MS, &|_| true));
    let clock = spec.local_clock();
    let a = Agenda::of(&board.of_dong(dong), dong, day, clock);
    Ok((a.text(clock), a.csv(clock)))
}

impl Agenda {
    /// The agenda as lines of text (Korean, then English).
    pub(crate) fn text(&self, clock: LocalClock) -> String {
        use std::fmt::Write;
        let m = &self.month;
        let mut out = format!(
            "사례회의 안건 / case meeting agenda: dong {} on {}\n",
            self.dong,
            date_text(self.day)
        );
        let _ = writeln!(
            out,
            "{}: 선정 opened {}, 점검 reviewed {}, 종결 closed {}, 알림→선정 중앙값 median days alert to case {}, 재선정 reopened {}",
            m.month,
            m.opened,
            m.reviewed,
            m.closed,
            m.median_days_to_open.map_or("-".into(), |d| format!("{d:.1}")),
            m.reopened
        );
        for (i, part) in Part::ALL.iter().enumerate() {
            let rows = &self.parts[i];
            let _ = writeln!(
                out,
                "\n{}. {} / {} ({})",
                i + 1,
                part.label_ko(),
                part.label_en(),
                rows.len()
            );
            for (n, r) in rows.iter().enumerate() {
                let c = &r.item.case;
                let (ko, en) = why_texts(&r.why);
                let _ = writeln!(
                    out,
                    "  {:>3}  {}  {}  {}  {}  {} / {}",
                    n + 1,
                    r.item.household_id,
                    c.priority.map_or("-", |p| p.as_str()),
                    c.categories.join(","),
                    c.status_ko,
                    ko,
                    en
                );
                if let Some(p) = c.managed.as_ref().and_then(|m| m.plan.as_ref()) {
                    let goals: Vec<String> = p
                        .goals
                        .iter()
                        .enumerate()
                        .map(|(g, (target, result))| {
                            let res = result.map_or("미점검", |x| x.label_ko());
                            format!("goal {} by {} {res}", g + 1, date_text(*target))
                        })
                        .collect();
                    let _ = writeln!(
                        out,
                        "       plan {}: {}",
                        clock.day_text(p.at),
                        goals.join("; ")
                    );
                }
            }
        }
        out
    }
}

/// A case reopened within a year of its closing (the follow-up the
/// national process asks for).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Reopened {
    pub(crate) household_id: String,
    pub(crate) dong_code: String,
    /// Local days.
    pub(crate) closed: String,
    pub(crate) reopened: String,
    pub(crate) days_between: i64,
}

/// The cases of `items` reopened within 365 days of closing, newest first.
pub(crate) fn reopened_within_a_year(items: &[Arc<WorkItem>], clock: LocalClock) -> Vec<Reopened> {
    let mut out: Vec<(i64, Reopened)> = Vec::new();
    for i in items {
        for o in &i.case.openings {
            let Some(closed) = o.closed_before else {
                continue;
            };
            let days = (o.at - closed).div_euclid(crate::definition::DAY_MS);
            if days <= 365 {
                out.push((
                    o.at,
                    Reopened {
                        household_id: i.household_id.clone(),
                        dong_code: i.case.dong.clone(),
                        closed: clock.day_text(closed),
                        reopened: clock.day_text(o.at),
                        days_between: days,
                    },
                ));
            }
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.household_id.cmp(&b.1.household_id)));
    out.into_iter().map(|(_, r)| r).collect()
}
