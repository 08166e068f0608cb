//! The city page's yield of the rules: per cut (priority, categories, feed,
//! bucket of the measure), what the offices found for the alerts whose
//! answer window closed, with the helped share and Wilson's 95% interval;
//! fewer than [`SMALL`] alerts show their counts and no share. The dong and
//! month cuts are in `/api/city` and `rule-yield.csv`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use super::charts;
use super::pages::esc;
use crate::ops::rule_yield::{wilson, Counts, Cut, Reach, SMALL};
use crate::stages::case::rules::YieldResult;
use crate::stages::score::Priority;

/// The cuts the page shows (the others are in the file and the API).
const ON_PAGE: [&str; 4] = ["priority", "categories", "feed", "bucket"];

fn dimension_ko(d: &str) -> &'static str {
    match d {
        "priority" => "우선순위",
        "categories" => "위기 유형",
        "feed" => "자료",
        "bucket" => "체납 구간",
        "dong" => "동",
        _ => "월",
    }
}

/// Not applicable, all reasons together.
fn not_applicable(counts: &Counts) -> u64 {
    YieldResult::ALL
        .iter()
        .filter(|r| matches!(r, YieldResult::NotApplicable(_)))
        .map(|r| counts[r.slot()])
        .sum()
}

/// The helped cell: the share and its interval, or why none is shown.
fn helped_cell(helped: u64, n: u64) -> String {
    if n < SMALL {
        return format!(
            r#"{helped} <span class="small">(표본 {n}건: 비율 생략 <span class="en">too few for a share</span>)</span>"#
        );
    }
    let (lo, hi) = wilson(helped, n);
    format!(
        "{helped} ({:.0}%, 95% {:.0}-{:.0}%)",
        100.0 * helped as f64 / n as f64,
        100.0 * lo,
        100.0 * hi
    )
}

/// The section of the city page.
pub(crate) fn section(body: &mut String, rows: &[(Cut, Counts)], waiting: usize) {
    body.push_str(r#"<h2>규칙별 성과 <span class="en">Rule yield</span></h2><p class="summary">답변 기간이 끝난 알림에 동이 기록한 결과 (기관의 판단이며 사실 확인이 아닙니다). 기간이 남은 알림 "#);
    let _ = write!(body, "{waiting}건은 아직 세지 않습니다.");
    body.push_str(r#" <span class="en">What the offices found for alerts whose answer window closed: their finding, not ground truth.</span></p>"#);
    body.push_str(r#"<table id="rule-yield" class="cards"><thead><tr><th>구분</th><th>값</th><th>알림 <span class="en">Alerts</span></th><th>지원 연계·사례관리 <span class="en">Helped</span></th><th>연락됨</th><th>비대상</th><th>거부</th><th>연락 안 됨</th><th>결과 없음</th></tr></thead><tbody>"#);
    let mut chart = Vec::new();
    for ((dimension, value), counts) in rows.iter().filter(|((d, _), _)| ON_PAGE.contains(d)) {
        let n: u64 = counts.iter().sum();
        let at = |r: YieldResult| counts[r.slot()];
        let helped = at(YieldResult::Helped);
        let _ = write!(
            body,
            r#"<tr data-dimension="{dimension}" data-value="{v}"><td data-label="구분">{}</td><td data-label="값">{v}</td><td data-label="알림" class="n">{n}</td><td data-label="지원 연계" class="helped">{}</td><td data-label="연락됨">{}</td><td data-label="비대상">{}</td><td data-label="거부">{}</td><td data-label="연락 안 됨">{}</td><td data-label="결과 없음">{}</td></tr>"#,
            dimension_ko(dimension),
            helped_cell(helped, n),
            at(YieldResult::Reached),
            not_applicable(counts),
            at(YieldResult::Declined),
            at(YieldResult::Unreachable),
            at(YieldResult::NoOutcome),
            v = esc(value),
        );
        if *dimension == "priority" && n >= SMALL {
            let share = |k: u64| 100.0 * k as f64 / n as f64;
            chart.push((
                value.clone(),
                vec![
                    share(helped),
                    share(not_applicable(counts)),
                    share(at(YieldResult::NoOutcome)),
                ],
            ));
        }
    }
    if rows.is_empty() {
        body.push_str(r#"<tr><td colspan="9">아직 답변 기간이 끝난 알림이 없습니다. <span class="en">No alert's answer window has closed yet.</span></td></tr>"#);
    }
    body.push_str("</tbody></table>");
    if !chart.is_empty() {
        body.push_str(&charts::bars(
            &chart,
            &["지원 연계 helped", "비대상 n/a", "결과 없음 none"],
            "%",
        ));
    }
}

/// The table as `/api/city` gives it: every cut, each result's count, and
/// the helped share with its interval where there are enough alerts.
pub(crate) fn json(rows: &[(Cut, Counts)]) -> Value {
    rows.iter()
        .map(|((dimension, value), counts)| {
            let n: u64 = counts.iter().sum();
            let results: serde_json::Map<String, Value> = YieldResult::ALL
                .iter()
                .map(|r| (r.name(), json!(counts[r.slot()])))
                .collect();
            let helped = counts[YieldResult::Helped.slot()];
            let (share, ci) = match n >= SMALL {
                true => (json!(helped as f64 / n as f64), json!(wilson(helped, n))),
                false => (Value::Null, Value::Null),
            };
            json!({
                "dimension": dimension,
                "value": value,
                "alerts": n,
                "results": results,
                "helped_share": share,
                "helped_ci95": ci,
            })
        })
        .collect()
}

/// One dong's row of the fairness table: its name and, per priority (P1,
/// P2, P3), how its alerts were reached.
type DongReach<'a> = (String, String, [Option<&'a Reach>; 3]);

/// The dongs, those whose P1 households wait longest first (then the
/// lowest share of P1 reached in time); dongs without closed P1 windows
/// last.
fn by_wait(
    reach: &BTreeMap<(String, Priority), Reach>,
    name: impl Fn(&str) -> String,
) -> Vec<DongReach<'_>> {
    let mut dongs: Vec<DongReach<'_>> = Vec::new();
    for ((dong, p), r) in reach {
        let at = match dongs.iter().position(|(d, _, _)| d == dong) {
            Some(i) => i,
            None => {
                dongs.push((dong.clone(), name(dong), [None; 3]));
                dongs.len() - 1
            }
        };
        dongs[at].2[column(*p)] = Some(r);
    }
    let key = |d: &DongReach<'_>| {
        let p1 = d.2[0];
        let wait = p1.and_then(Reach::median_days).unwrap_or(f64::NEG_INFINITY);
        let in_time = p1.map_or(1.0, |r| r.in_time as f64 / r.alerts.max(1) as f64);
        (std::cmp::Reverse(ordered(wait)), ordered(in_time))
    };
    dongs.sort_by_key(key);
    dongs
}

/// The fairness table's column of a priority.
fn column(p: Priority) -> usize {
    match p {
        Priority::P1 => 0,
        Priority::P2 => 1,
        Priority::P3 => 2,
    }
}

/// A float that sorts (the table's keys are finite or -inf).
fn ordered(v: f64) -> i64 {
    (v * 1000.0) as i64
}

fn reach_cell(r: Option<&Reach>) -> String {
    let Some(r) = r else {
        return "-".into();
    };
    let median = r.median_days().map_or("-".into(), |d| format!("{d:.1}일"));
    if r.alerts < SMALL {
        return format!(
            r#"{median} <span class="small">(기한 내 {}/{}건)</span>"#,
            r.in_time, r.alerts
        );
    }
    format!(
        "{median} (기한 내 {:.0}%, {}건)",
        100.0 * r.in_time as f64 / r.alerts as f64,
        r.alerts
    )
}

/// The fairness section of the city page: per dong and priority, the
/// median days from alert to first reach and the share reached in time.
pub(crate) fn fairness(
    body: &mut String,
    reach: &BTreeMap<(String, Priority), Reach>,
    name: impl Fn(&str) -> String,
) {
    body.push_str(r#"<h2>동별 첫 연락 (우선순위별) <span class="en">Time to first reach by dong and priority</span></h2><p class="summary">답변 기간이 끝난 알림의 첫 연락까지 걸린 날 (중앙값)과 기한 내 비율. P1 가구가 가장 오래 기다린 동이 위에 옵니다. <span class="en">Dongs whose P1 households wait longest first.</span></p><table id="fairness" class="cards"><thead><tr><th>동 <span class="en">Dong</span></th><th>P1</th><th>P2</th><th>P3</th></tr></thead><tbody>"#);
    for (code, dong, cells) in by_wait(reach, name) {
        let _ = write!(
            body,
            r#"<tr data-dong="{code}"><td data-label="동">{}</td><td data-label="P1">{}</td><td data-label="P2">{}</td><td data-label="P3">{}</td></tr>"#,
            esc(&dong),
            reach_cell(cells[0]),
            reach_cell(cells[1]),
            reach_cell(cells[2]),
        );
    }
    if reach.is_empty() {
        body.push_str(r#"<tr><td colspan="4">아직 답변 기간이 끝난 알림이 없습니다.</td></tr>"#);
    }
    body.push_str("</tbody></table>");
}

/// The fairness table as `/api/city` gives it, in the page's order.
pub(crate) fn fairness_json(reach: &BTreeMap<(String, Priority), Reach>) -> Value {
    by_wait(reach, |d| d.to_string())
        .into_iter()
        .flat_map(|(dong, _, cells)| {
            [Priority::P1, Priority::P2, Priority::P3]
                .into_iter()
                .zip(cells)
                .filter_map(move |(p, r)| {
                    let r = r?;
                    Some(json!({
                        "dong_code": dong,
                        "priority": p.as_str(),
                        "alerts": r.alerts,
                        "reached": r.reached,
                        "in_time": r.in_time,
                        "median_days_to_first_reach": r.median_days(),
                    }))
                })
        })
        .collect()
}
