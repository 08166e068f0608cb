//! The yield of the rules: for every alert old enough for an answer (its
//! due time plus `[outcomes] answer_window`), what the office found, cut by
//! priority, set of categories, feed, bucket of its measure (months and
//! amount overdue), dong and month. An outcome is the office's finding,
//! not ground truth.
//!
//! Kept as running counts: an alert waits (its result moving up as the
//! household's outcomes arrive, see
//! [`crate::stages::case::rules::YieldResult`]) until its window closes,
//! then its result is added to the counts of each of its cuts and the
//! alert is forgotten. A page reads the counts; nothing scans the case
//! records. Fed by the driver's batches (demo, replay) or, under `sagak
//! run`, by the alerts and outcomes topics, which every instance reads
//! whole (`crate::kafka::open_work`), so every instance counts the same.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use parking_lot::Mutex;

use crate::stages::case::rules::YieldResult;
use crate::stages::score::Priority;

/// Results per cut, in [`YieldResult::ALL`]'s order.
pub(crate) type Counts = [u64; YieldResult::ALL.len()];

/// What one alert is counted under: its dimension and value
/// (`("priority", "P1")`, `("feed", "health-insurance")`).
pub(crate) type Cut = (&'static str, String);

/// The dimensions, in the tables' order.
pub(crate) const DIMENSIONS: [&str; 6] =
    ["priority", "categories", "feed", "bucket", "dong", "month"];

/// An alert as the yield needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YieldAlert {
    /// The hash its id spells.
    pub(crate) id: u128,
    /// Its household.
    pub(crate) household_id: String,
    /// Its dong.
    pub(crate) dong_code: String,
    /// Its priority.
    pub(crate) priority: Priority,
    /// Its categories.
    pub(crate) categories: Vec<String>,
    /// Its reasons: feed, months overdue, amount overdue.
    pub(crate) reasons: Vec<(String, Option<i64>, Option<i64>)>,
    /// When it was sent, ms.
    pub(crate) emitted_at: i64,
}

impl YieldAlert {
    /// Of an alert the engine made; `None` for a case update (news of a
    /// household already in case management, not a request to reach it).
    pub(crate) fn of(a: &crate::stages::alert::Alert) -> Option<YieldAlert> {
        // a case update has no due time
        a.case.due_at?;
        Some(YieldAlert {
            id: crate::stages::case::outcome::parse_alert_id(&a.alert_id)?,
            household_id: a.household_id.clone(),
            dong_code: a.dong_code.clone(),
            priority: a.priority,
            categories: a.categories.iter().map(|c| c.to_string()).collect(),
            reasons: a
                .reasons
                .iter()
                .map(|r| (r.signal.to_string(), r.months_overdue, r.amount_krw))
                .collect(),
            emitted_at: a.emitted_at,
        })
    }

    /// Of an alert as `dong-office.alerts` carries it (see
    /// `schemas/alert.schema.json`); `None` for a case update or a value
    /// that is not an alert.
    pub(crate) fn from_wire(value: &[u8]) -> Option<YieldAlert> {
        #[derive(serde::Deserialize)]
        struct Reason {
            signal: String,
            months_overdue: Option<i64>,
            amount_krw: Option<i64>,
        }
        #[derive(serde::Deserialize)]
        struct Wire {
            alert_id: String,
            household_id: String,
            dong_code: String,
            priority: String,
            categories: Vec<String>,
            reasons: Vec<Reason>,
            emitted_at: String,
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        let w: Wire = serde_json::from_slice(value).ok()?;
        if w.kind.as_deref().is_some_and(|k| k != "alert") {
            return None;
        }
        Some(YieldAlert {
            id: crate::stages::case::outcome::parse_alert_id(&w.alert_id)?,
            household_id: w.household_id,
            dong_code: w.dong_code,
            priority: Priority::parse(&w.priority)?,
            categories: w.categories,
            reasons: w
                .reasons
                .into_iter()
                .map(|r| (r.signal, r.months_overdue, r.amount_krw))
                .collect(),
            emitted_at: chrono::DateTime::parse_from_rfc3339(&w.emitted_at)
                .ok()?
                .timestamp_millis(),
        })
    }

    /// The cuts it is counted under, `month` the local month of its sending.
    fn cuts(&self, month: String) -> Vec<Cut> {
        let mut categories = self.categories.clone();
        categories.sort();
        let mut cuts = vec![
            ("priority", self.priority.as_str().to_string()),
            ("categories", categories.join("+")),
            ("dong", self.dong_code.clone()),
            ("month", month),
        ];
        for (feed, months, amount) in &self.reasons {
            cuts.push(("feed", feed.clone()));
            if let Some(m) = months {
                cuts.push(("bucket", format!("{feed}: {}", months_bucket(*m))));
            }
            if let Some(a) = amount {
                cuts.push(("bucket", format!("{feed}: {}", amount_bucket(*a))));
            }
        }
        cuts.sort();
        cuts.dedup();
        cuts
    }
}

/// The bucket of a number of months overdue.
fn months_bucket(m: i64) -> &'static str {
    match m {
        i64::MIN..=2 => "0-2 months",
        3..=5 => "3-5 months",
        6..=11 => "6-11 months",
        12..=23 => "12-23 months",
        _ => "24+ months",
    }
}

/// The bucket of an amount overdue, KRW.
fn amount_bucket(a: i64) -> &'static str {
    match a {
        i64::MIN..=499_999 => "< 0.5M KRW",
        500_000..=999_999 => "0.5-1M KRW",
        1_000_000..=2_999_999 => "1-3M KRW",
        _ => "3M+ KRW",
    }
}

/// An alert whose window is open.
struct Waiting {
    household_id: String,
    dong_code: String,
    priority: Priority,
    emitted_at: i64,
    /// When its first reach is due.
    due_at: i64,
    closes_at: i64,
    cuts: Vec<Cut>,
    result: YieldResult,
    /// When someone of the household was first reached after it.
    reached_at: Option<i64>,
}

/// Time to first reach of one dong's alerts of one priority whose window
/// closed: how fairly the offices' time is spread.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Reach {
    /// Alerts counted.
    pub(crate) alerts: u64,
    /// Of which someone was reached (within the answer window).
    pub(crate) reached: u64,
    /// Of which by the due time.
    pub(crate) in_time: u64,
    /// Days from each alert to its first reach.
    days: Vec<f32>,
}

impl Reach {
    /// The median of the days to a first reach, if any was reached.
    pub(crate) fn median_days(&self) -> Option<f64> {
        median(self.days.iter().map(|&d| f64::from(d)).collect())
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` for none.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<u128, Waiting>,
    by_household: HashMap<String, Vec<u128>>,
    closing: BinaryHeap<Reverse<(i64, u128)>>,
    counts: BTreeMap<Cut, Counts>,
    reach: BTreeMap<(String, Priority), Reach>,
}

/// The running counts.
pub(crate) struct YieldBook {
    inner: Mutex<Inner>,
    /// Due time per priority (P1, P2, P3), ms.
    due_ms: [i64; 3],
    /// Fed by the alerts and outcomes topics, not by this instance's
    /// batches.
    from_topics: std::sync::atomic::AtomicBool,
    /// Due time per priority (P1, P2, P3), ms, plus the answer window.
    window_ms: [i64; 3],
    clock: crate::base::civil::LocalClock,
}

fn slot(p: Priority) -> usize {
    match p {
        Priority::P1 => 0,
        Priority::P2 => 1,
        Priority::P3 => 2,
    }
}

impl YieldBook {
    /// Counts under the `[outcomes]` rules of `spec`.
    pub(crate) fn new(spec: &crate::definition::PipelineSpec) -> Self {
        let o = &spec.outcomes;
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let answer = ms(o.answer_window);
        YieldBook {
            inner: Mutex::new(Inner::default()),
            due_ms: [o.due_p1, o.due_p2, o.due_p3].map(ms),
            from_topics: std::sync::atomic::AtomicBool::new(false),
            window_ms: [o.due_p1, o.due_p2, o.due_p3].map(|d| ms(d).saturating_add(answer)),
            clock: spec.local_clock(),
        }
    }

    /// Is fed by the alerts and outcomes topics from now on.
    pub(crate) fn read_topics(&self) {
        self.from_topics
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes in what a batch sent and recorded, unless the topics feed it.
    pub(crate) fn batch(&self, result: &crate::engine::BatchResult) {
        if self.from_topics.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        for a in &result.alerts {
            if let Some(a) = YieldAlert::of(a) {
                self.alert(a);
            }
        }
        for o in &result.recorded {
            self.recorded(o);
        }
    }

    /// Takes in one recorded outcome.
    pub(crate) fn recorded(&self, o: &crate::stages::case::outcome::Outcome) {
        if let Some(r) = YieldResult::of(o.said.kind(), o.said.detail()) {
            self.outcome(&o.household_id, r, o.recorded_at);
        }
    }

    /// Takes in an alert sent (once per id: a re-sent alert counts once).
    pub(crate) fn alert(&self, a: YieldAlert) {
        let month = self.clock.day_text(a.emitted_at)[..7].to_string();
        let closes_at = a
            .emitted_at
            .saturating_add(self.window_ms[slot(a.priority)]);
        let cuts = a.cuts(month);
        let mut inner = self.inner.lock();
        if inner.waiting.contains_key(&a.id) {
            return;
        }
        inner
            .by_household
            .entry(a.household_id.clone())
            .or_default()
            .push(a.id);
        inner.closing.push(Reverse((closes_at, a.id)));
        inner.waiting.insert(
            a.id,
            Waiting {
                household_id: a.household_id,
                dong_code: a.dong_code,
                priority: a.priority,
                emitted_at: a.emitted_at,
                due_at: a.emitted_at.saturating_add(self.due_ms[slot(a.priority)]),
                closes_at,
                cuts,
                result: YieldResult::NoOutcome,
                reached_at: None,
            },
        );
    }

    /// Takes in an outcome of `household_id` recorded at `at`: every alert
    /// of the household sent before it whose window is open keeps the more
    /// conclusive result.
    pub(crate) fn outcome(&self, household_id: &str, result: YieldResult, at: i64) {
        let mut inner = self.inner.lock();
        let Inner {
            waiting,
            by_household,
            ..
        } = &mut *inner;
        for id in by_household.get(household_id).into_iter().flatten() {
            if let Some(w) = waiting.get_mut(id) {
                if w.emitted_at > at || at > w.closes_at {
                    continue;
                }
                if result.rank() > w.result.rank() {
                    w.result = result;
                }
                if result.reaches() && w.reached_at.is_none_or(|r| at < r) {
                    w.reached_at = Some(at);
                }
            }
        }
    }

    /// Closes the windows `now_ms` has passed: their results are counted.
    pub(crate) fn advance(&self, now_ms: i64) {
        let mut inner = self.inner.lock();
        while let Some(&Reverse((at, id))) = inner.closing.peek() {
            if at > now_ms {
                break;
            }
            inner.closing.pop();
            let Some(w) = inner.waiting.remove(&id) else {
                continue;
            };
            if let Some(ids) = inner.by_household.get_mut(&w.household_id) {
                ids.retain(|x| *x != id);
                if ids.is_empty() {
                    inner.by_household.remove(&w.household_id);
                }
            }
            let reach = inner
                .reach
                .entry((w.dong_code.clone(), w.priority))
                .or_default();
            reach.alerts += 1;
            if let Some(at) = w.reached_at {
                reach.reached += 1;
                reach.in_time += u64::from(at <= w.due_at);
                let days = (at - w.emitted_at) as f64 / crate::definition::DAY_MS as f64;
                reach.days.push(days as f32);
            }
            for cut in w.cuts {
                inner
                    .counts
                    .entry(cut)
                    .or_insert([0; YieldResult::ALL.len()])[w.result.slot()] += 1;
            }
        }
    }

    /// The counts of every cut, by dimension in [`DIMENSIONS`]' order.
    pub(crate) fn table(&self) -> Vec<(Cut, Counts)> {
        let inner = self.inner.lock();
        let mut rows: Vec<(Cut, Counts)> =
            inner.counts.iter().map(|(c, n)| (c.clone(), *n)).collect();
        rows.sort_by_key(|((d, v), _)| (DIMENSIONS.iter().position(|x| x == d), v.clone()));
        rows
    }

    /// Time to first reach per dong and priority.
    pub(crate) fn reach(&self) -> BTreeMap<(String, Priority), Reach> {
        self.inner.lock().reach.clone()
    }

    /// Alerts whose window is still open.
    pub(crate) fn waiting(&self) -> usize {
        self.inner.lock().waiting.len()
    }
}

/// Below this many alerts a share is not shown: the counts are.
pub(crate) const SMALL: u64 = 20;

/// Wilson's 95% score interval of `k` successes in `n`: (low, high).
pub(crate) fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let z = 1.959_963_984_540_054_f64;
    let p = k / n;
    let z2n = z * z / n;
    let centre = (p + z2n / 2.0) / (1.0 + z2n);
    let half = z * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt() / (1.0 + z2n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The table as CSV (Excel reads the BOM as UTF-8): a row per cut, the
/// alerts, each result's count, the helped share and its interval (empty
/// below [`SMALL`] alerts).
pub(crate) fn csv(rows: &[(Cut, Counts)]) -> String {
    let mut out = String::from("\u{feff}dimension,value,alerts");
    for r in YieldResult::ALL {
        out.push(',');
        out.push_str(&r.name());
    }
    out.push_str(",helped_share,helped_low95,helped_high95\n");
    for ((dimension, value), counts) in rows {
        let n: u64 = counts.iter().sum();
        out.push_str(dimension);
        out.push(',');
        crate::lists::write::csv_field(&mut out, value);
        out.push_str(&format!(",{n}"));
        for c in counts {
            out.push_str(&format!(",{c}"));
        }
        let helped = counts[YieldResult::Helped.slot()];
        if n >= SMALL {
            let (lo, hi) = wilson(helped, n);
            out.push_str(&format!(
                ",{:.3},{lo:.3},{hi:.3}\n",
                helped as f64 / n as f64
            ));
        } else {
            out.push_str(",,,\n");
        }
    }
    out
}

/// The table as an Arrow batch: the CSV's columns, typed.
fn record_batch(
    rows: &[(Cut, Counts)],
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
    use std::sync::Arc;
    let text = |f: &dyn Fn(&Cut) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(c, _)| f(c)),
        ))
    };
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("dimension".into(), text(&|c| c.0.to_string())),
        ("value".into(), text(&|c| c.1.clone())),
        (
            "alerts".into(),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|(_, n)| n.iter().sum::<u64>()),
            )),
        ),
    ];
    for r in YieldResult::ALL {
        let values = rows.iter().map(|(_, n)| n[r.slot()]);
        columns.push((r.name(), Arc::new(UInt64Array::from_iter_values(values))));
    }
    let share = |pick: &dyn Fn(u64, u64) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(|(_, n)| {
            let total: u64 = n.iter().sum();
            (total >= SMALL).then(|| pick(n[YieldResult::Helped.slot()], total))
        })))
    };
    columns.push(("helped_share".into(), share(&|k, n| k as f64 / n as f64)));
    columns.push(("helped_low95".into(), share(&|k, n| wilson(k, n).0)));
    columns.push(("helped_high95".into(), share(&|k, n| wilson(k, n).1)));
    arrow::record_batch::RecordBatch::try_from_iter(columns)
}

/// Writes `rule-yield.csv` and `.parquet` beside the lists of `date` in
/// `out`, once (the first instance to write them wins; every instance
/// counts the same).
pub(crate) fn write_day(out: &dyn crate::store::Store, date: &str, rows: &[(Cut, Counts)]) {
    let csv = csv(rows);
    let parquet = record_batch(rows)
        .map_err(|e| e.to_string())
        .and_then(|b| crate::lists::write::parquet_of(&b).map_err(|e| e.to_string()));
    let files = [("csv", Ok(csv.into_bytes())), ("parquet", parquet)];
    for (ext, bytes) in files {
        let key = format!("lists/{date}/rule-yield.{ext}");
        let written = bytes.and_then(|b| out.put_new(&key, &[&b]).map_err(|e| e.to_string()));
        if let Err(e) = written {
            tracing::warn!(file = %key, error = %e, "the rule yield could not be written beside the lists");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::case::outcome::NotApplicableReason;

    const DAY: i64 = crate::definition::DAY_MS;

    fn alert(id: u128, hh: &str, p: Priority, at: i64, months: i64) -> YieldAlert {
        YieldAlert {
            id,
            household_id: hh.into(),
            dong_code: "4125052000".into(),
            priority: p,
            categories: vec!["health".into()],
            reasons: vec![(
                "health-insurance".into(),
                Some(months),
                Some(months * 246_000),
            )],
            emitted_at: at,
        }
    }

    #[test]
    fn each_alert_counts_its_most_conclusive_answer_once_its_window_closes() {
        let spec = crate::definition::PipelineSpec::embedded_default().unwrap();
        let book = YieldBook::new(&spec);
        let t0 = 1_800_000_000_000;
        // P1: due 3 days, window 30 more: closes at t0 + 33 days
        book.alert(alert(1, "hh-a", Priority::P1, t0, 4));
        book.alert(alert(1, "hh-a", Priority::P1, t0, 4)); // re-sent: once
        book.alert(alert(2, "hh-b", Priority::P1, t0, 7));
        book.alert(alert(3, "hh-c", Priority::P1, t0, 13));
        book.alert(alert(4, "hh-d", Priority::P1, t0, 2));
        book.outcome("hh-a", YieldResult::Unreachable, t0 + DAY);
        book.outcome("hh-a", YieldResult::Helped, t0 + 2 * DAY);
        book.outcome("hh-a", YieldResult::Reached, t0 + 3 * DAY); // less conclusive
        book.outcome(
            "hh-b",
            YieldResult::NotApplicable(NotApplicableReason::NoNeed),
            t0 + DAY,
        );
        book.outcome("hh-c", YieldResult::Declined, t0 + 40 * DAY); // after the window
        book.outcome("hh-d", YieldResult::Helped, t0 - DAY); // before the alert
        book.advance(t0 + 32 * DAY);
        assert!(book.table().is_empty(), "no window closed yet");
        book.advance(t0 + 33 * DAY);
        let table: BTreeMap<Cut, Counts> = book.table().into_iter().collect();
        let p1 = table[&("priority", "P1".to_string())];
        let at = |r: YieldResult| p1[r.slot()];
        assert_eq!(p1.iter().sum::<u64>(), 4);
        assert_eq!(at(YieldResult::Helped), 1);
        assert_eq!(
            at(YieldResult::NotApplicable(NotApplicableReason::NoNeed)),
            1
        );
        assert_eq!(at(YieldResult::NoOutcome), 2);
        let bucket = |b: &str| {
            table[&("bucket", format!("health-insurance: {b}"))]
                .iter()
                .sum::<u64>()
        };
        assert_eq!(
            (
                bucket("3-5 months"),
                bucket("6-11 months"),
                bucket("0-2 months")
            ),
            (1, 1, 1)
        );
        assert_eq!(book.waiting(), 0);
        // the file says the same, with no share for 4 alerts
        let file = csv(&book.table());
        let line = file
            .lines()
            .find(|l| l.starts_with("priority,P1,"))
            .unwrap();
        assert_eq!(line, "priority,P1,4,1,0,1,0,0,0,0,0,0,2,,,");
    }

    #[test]
    fn the_time_to_first_reach_counts_reaches_only() {
        let spec = crate::definition::PipelineSpec::embedded_default().unwrap();
        let book = YieldBook::new(&spec);
        let t0 = 1_800_000_000_000;
        for (id, hh) in [(1, "hh-a"), (2, "hh-b"), (3, "hh-c"), (4, "hh-d")] {
            book.alert(alert(id, hh, Priority::P1, t0, 4));
        }
        // a failed attempt, then a reach on day 5 (late: P1 is due in 3)
        book.outcome("hh-a", YieldResult::Unreachable, t0 + DAY);
        book.outcome("hh-a", YieldResult::Reached, t0 + 5 * DAY);
        book.outcome("hh-b", YieldResult::Helped, t0 + 2 * DAY);
        // nobody found: not a reach
        book.outcome(
            "hh-c",
            YieldResult::NotApplicable(NotApplicableReason::MovedOut),
            t0 + DAY,
        );
        book.outcome("hh-d", YieldResult::Declined, t0 + 3 * DAY);
        book.advance(t0 + 40 * DAY);
        let reach = book.reach();
        let r = &reach[&("4125052000".to_string(), Priority::P1)];
        assert_eq!((r.alerts, r.reached, r.in_time), (4, 3, 2));
        assert_eq!(r.median_days(), Some(3.0));
    }

    #[test]
    fn wilsons_interval_matches_the_hand_computed_one() {
        // 45 of 100: 0.3561 to 0.5475 (Wilson, z = 1.96)
        let (lo, hi) = wilson(45, 100);
        assert!(
            (lo - 0.3561).abs() < 5e-4 && (hi - 0.5475).abs() < 5e-4,
            "{lo} {hi}"
        );
        // none of 20: 0 to 0.1611
        let (lo, hi) = wilson(0, 20);
        assert!(lo == 0.0 && (hi - 0.1611).abs() < 5e-4, "{hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
