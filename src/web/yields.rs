//! The city page's yield of the rules: per cut (priority, categories, feed,
//! bucket of the measure), what the offices found for the alerts whose
//! answer window closed, with the helped share and Wilson's 95% interval;
//! fewer than [`SMALL`] alerts show their counts and no share. The dong and
//! month cuts are in `/api/city` and `rule-yield.csv`.

use std::fmt::Write;

use serde_json::{json, Value};

use super::charts;
use super::pages::esc;
use crate::ops::rule_yield::{wilson, Counts, Cut, SMALL};
use crate::stages::case::rules::YieldResult;

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
