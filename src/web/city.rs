//! The city team's console: every dong side by side, the escalations with
//! their state (open, taken by whom, resolved by a later reach or case),
//! filtered and paged with totals, the unassigned households with what to
//! do, the feeds' health with a stale mark, rejects, and the charts. The
//! page and `/api/city` select the same escalations, and the audit names
//! exactly the households on the page.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Person;
use super::charts;
use super::pages::{esc, layout, status_cell, step_cell};
use super::queue::{blank, paged};
use super::WebState;
use crate::ops::work::WorkItem;
use crate::ops::{DongFollowUp, QueuedEscalation};
use crate::stages::decode::RejectClass;

/// Escalations on a page (as many as households on a queue page).
pub(crate) const PAGE_ROWS: usize = super::queue::PAGE_ROWS;
/// Unassigned households on the page and in its API.
pub(crate) const UNASSIGNED_SHOWN: usize = 200;

/// The query string of `/city`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CityQuery {
    /// Escalations of this dong.
    pub(crate) dong: Option<String>,
    /// `overdue`, `unreachable` or `repeatedly_flagged`.
    pub(crate) reason: Option<String>,
    /// `open`, `taken` or `resolved`.
    pub(crate) state: Option<String>,
    /// Page, from 1.
    pub(crate) page: Option<String>,
}

/// The Korean name of an escalation reason.
pub(crate) fn reason_ko(reason: &str) -> &str {
    match reason {
        "overdue" => "기한초과",
        "unreachable" => "소재파악 필요",
        "repeatedly_flagged" => "반복 발굴",
        other => other,
    }
}

const REASONS: [&str; 3] = ["overdue", "unreachable", "repeatedly_flagged"];
const STATES: [(&str, &str); 3] = [
    ("open", "미처리"),
    ("taken", "담당 지정"),
    ("resolved", "해결됨"),
];

/// An escalation with its state now.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The escalation.
    pub(crate) e: QueuedEscalation,
    /// `open`, `taken` or `resolved`.
    pub(crate) state: &'static str,
    /// Who took it (name) and when, ms.
    pub(crate) taken: Option<(String, i64)>,
    /// When it was resolved, ms (the reach or case after it), if known.
    pub(crate) resolved_at: Option<i64>,
}

impl CityQuery {
    /// What is wrong with the query, in Korean and English.
    pub(crate) fn check(&self, st: &WebState) -> Result<(), String> {
        if let Some(d) = blank(&self.dong) {
            if !st.dongs.iter().any(|x| x.dong_code == d) {
                return Err("그런 동이 없습니다 (no such dong)".into());
            }
        }
        if let Some(r) = blank(&self.reason) {
            if !REASONS.contains(&r) {
                return Err("알 수 없는 사유입니다 (unknown reason)".into());
            }
        }
        super::queue::page_number(&self.page)?;
        if let Some(s) = blank(&self.state) {
            if !STATES.iter().any(|(k, _)| *k == s) {
                return Err("알 수 없는 상태입니다 (unknown state)".into());
            }
        }
        Ok(())
    }

    /// Whether `e` is of the dong and reason asked for.
    fn keeps(&self, e: &QueuedEscalation) -> bool {
        blank(&self.dong).is_none_or(|d| e.dong_code == d)
            && blank(&self.reason).is_none_or(|x| e.reason == x)
    }

    /// The query string at `page`.
    pub(crate) fn at_page(&self, page: usize) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("dong", &self.dong),
            ("reason", &self.reason),
            ("state", &self.state),
        ] {
            if let Some(v) = blank(v) {
                q.append_pair(k, v);
            }
        }
        q.append_pair("page", &page.to_string());
        q.finish()
    }
}

/// The state of escalation `e` now: resolved when its household's open
/// work is no longer open (someone reached it, or its case opened), taken
/// when the city team took it, else open.
pub(crate) fn row(st: &WebState, e: QueuedEscalation) -> Row {
    let item = st.ops.work.get(&e.household_id);
    let resolved = item.as_ref().is_none_or(|i| !i.case.open());
    let resolved_at = item.as_ref().filter(|_| resolved).and_then(|i| {
        let c = &i.case;
        c.outcomes
            .iter()
            .map(|o| o.recorded_at)
            .filter(|&t| t >= e.emitted_ms)
            .chain(c.in_case_since.filter(|&t| t >= e.emitted_ms))
            .min()
    });
    let taken = st
        .escalation_states
        .get(&e.escalation_id)
        .filter(|t| t.state == "taken")
        .map(|t| (t.by_name, t.at));
    let state = if resolved {
        "resolved"
    } else if taken.is_some() {
        "taken"
    } else {
        "open"
    };
    Row {
        e,
        state,
        taken,
        resolved_at,
    }
}

/// The escalations the query asks for: (the page's rows, all kept, the
/// matching, the page, the pages). A state is worked out (a look at the
/// household's open work) only where the state filter needs it, else for
/// the page's rows alone.
pub(crate) fn select(st: &WebState, q: &CityQuery) -> (Vec<Row>, usize, usize, usize, usize) {
    let escalations = st.ops.live.escalations();
    let kept = escalations.len();
    let chosen = escalations.into_iter().filter(|e| q.keeps(e));
    let asked = super::queue::page_number(&q.page).unwrap_or(1);
    match blank(&q.state) {
        Some(state) => {
            let matched: Vec<Row> = chosen
                .map(|e| row(st, e))
                .filter(|r| r.state == state)
                .collect();
            let n = matched.len();
            let (rows, page, pages) = paged(matched, asked);
            (rows, kept, n, page, pages)
        }
        None => {
            let matched: Vec<QueuedEscalation> = chosen.collect();
            let n = matched.len();
            let (rows, page, pages) = paged(matched, asked);
            let rows = rows.into_iter().map(|e| row(st, e)).collect();
            (rows, kept, n, page, pages)
        }
    }
}

/// An escalation as `/api/city` gives it.
pub(crate) fn row_json(st: &WebState, r: &Row) -> Value {
    let mut v = serde_json::to_value(&r.e).unwrap_or_default();
    v["state"] = json!(r.state);
    v["taken_by"] = json!(r.taken.as_ref().map(|t| t.0.clone()));
    v["taken_at"] = json!(r.taken.as_ref().map(|t| crate::stages::alert::rfc3339(t.1)));
    v["resolved_at"] = json!(r.resolved_at.map(crate::stages::alert::rfc3339));
    v["dong_name_ko"] = json!(st.dong_name(&r.e.dong_code).0);
    v
}

/// Everything the page shows.
pub(crate) struct CityView<'a> {
    /// The query.
    pub(crate) q: &'a CityQuery,
    /// The page's escalations.
    pub(crate) rows: &'a [Row],
    /// Escalations kept, matching, the page, the pages.
    pub(crate) counts: (usize, usize, usize, usize),
    /// Unassigned households shown, and how many there are.
    pub(crate) unassigned: (&'a [Arc<WorkItem>], usize),
    /// The driver's clock, ms.
    pub(crate) now: i64,
    /// Every dong's case meeting agenda counts, and the reopened cases.
    pub(crate) agenda: &'a str,
}

/// The city team's page.
pub(crate) fn page(st: &WebState, person: &Person, v: &CityView<'_>) -> String {
    let follow_up = st.ops.live.per_dong();
    let mut body = format!(
        r#"<div id="city" data-refresh="60"><p class="summary">기준 {} · 1분마다 새로 고침</p>"#,
        st.local_time(v.now)
    );
    dongs(st, &mut body, &follow_up);
    escalations(st, person, &mut body, v);
    unassigned(&mut body, v);
    feeds(st, &mut body, v.now);
    charts_of(st, &mut body, &follow_up);
    super::yields::section(
        &mut body,
        &st.ops.rule_yield.table(),
        st.ops.rule_yield.waiting(),
    );
    super::yields::fairness(&mut body, &st.ops.rule_yield.reach(), |d| {
        st.dong_name(d).0.to_string()
    });
    body.push_str(v.agenda);
    body.push_str("</div>");
    layout(st, "시 현황 City console", person, &body)
}

fn dongs(st: &WebState, body: &mut String, follow_up: &BTreeMap<String, DongFollowUp>) {
    body.push_str(r#"<h2>동별 현황 <span class="en">Dongs side by side</span></h2><table id="dongs" class="cards"><thead><tr><th>동 <span class="en">Dong</span></th><th>연락 대기 <span class="en">Open</span></th><th>기한초과 <span class="en">Overdue</span></th><th>첫 연락까지(일, 중앙값) <span class="en">Days to first reach</span></th><th>기한 내 <span class="en">In time</span></th><th>소재파악 필요 <span class="en">Unreachable</span></th><th>사례관리 <span class="en">In case</span></th></tr></thead><tbody>"#);
    for d in &st.dongs {
        let f = follow_up.get(&d.dong_code).cloned().unwrap_or_default();
        let _ = write!(
            body,
            r#"<tr data-dong="{code}"><td data-label="동"><a href="/queue?dong={code}">{}</a></td><td data-label="연락 대기" class="n-open">{}</td><td data-label="기한초과" class="n-overdue {}">{}</td><td data-label="첫 연락까지">{}</td><td data-label="기한 내">{}</td><td data-label="소재파악 필요" class="n-unreachable">{}</td><td data-label="사례관리" class="n-in-case">{}</td></tr>"#,
            esc(&d.name_ko),
            f.open,
            if f.overdue > 0 { "overdue" } else { "" },
            f.overdue,
            f.median_days_to_first_contact
                .map_or("-".into(), |v| format!("{v:.1}")),
            f.contacted_in_time
                .map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            f.unreachable,
            f.in_case,
            code = esc(&d.dong_code)
        );
    }
    body.push_str("</tbody></table>");
}

fn select_of(
    name: &str,
    label: &str,
    chosen: Option<&str>,
    options: &[(String, String)],
) -> String {
    let mut out = format!(r#"<label>{label} <select name="{name}"><option value="">전체</option>"#);
    for (value, text) in options {
        let sel = if chosen == Some(value.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<option value="{}"{sel}>{}</option>"#,
            esc(value),
            esc(text)
        );
    }
    out.push_str("</select></label>");
    out
}

fn escalations(st: &WebState, person: &Person, body: &mut String, v: &CityView<'_>) {
    let (kept, matched, page, pages) = v.counts;
    let q = v.q;
    body.push_str(r#"<h2 id="escalations-head">시 에스컬레이션 <span class="en">Escalations</span></h2><form method="get" action="/city" class="filters" id="escalation-filters">"#);
    let dongs: Vec<(String, String)> = st
        .dongs
        .iter()
        .map(|d| (d.dong_code.clone(), d.name_ko.clone()))
        .collect();
    body.push_str(&select_of("dong", "동", blank(&q.dong), &dongs));
    let reasons: Vec<(String, String)> = REASONS
        .iter()
        .map(|r| (r.to_string(), reason_ko(r).to_string()))
        .collect();
    body.push_str(&select_of("reason", "사유", blank(&q.reason), &reasons));
    let states: Vec<(String, String)> = STATES
        .iter()
        .map(|(k, ko)| (k.to_string(), ko.to_string()))
        .collect();
    body.push_str(&select_of("state", "상태", blank(&q.state), &states));
    body.push_str(r#"<button type="submit">적용</button></form>"#);
    let first = if matched == 0 {
        0
    } else {
        (page - 1) * PAGE_ROWS + 1
    };
    let _ = write!(
        body,
        r#"<p class="counts" id="escalation-counts">보관 중 {kept}건 중 조건에 맞는 {matched}건, {first}–{}번째 표시 ({page}/{pages}쪽)</p>"#,
        first + v.rows.len().saturating_sub(1)
    );
    body.push_str(r#"<table id="escalations" class="cards"><thead><tr><th>사유 <span class="en">Reason</span></th><th>가구 <span class="en">Household</span></th><th>동 <span class="en">Dong</span></th><th>우선순위 <span class="en">Priority</span></th><th>부터 <span class="en">Since</span></th><th>보낸 시각 <span class="en">Sent</span></th><th>상태 <span class="en">State</span></th><th></th></tr></thead><tbody>"#);
    let csrf = person.session.as_ref().map(|s| s.csrf.as_str());
    for r in v.rows {
        let e = &r.e;
        let state = match (r.state, &r.taken) {
            ("resolved", _) => format!(
                "해결됨 {}",
                r.resolved_at.map(|t| st.local_time(t)).unwrap_or_default()
            ),
            ("taken", Some((who, at))) => format!("담당 {} ({})", esc(who), st.local_time(*at)),
            _ => "미처리".into(),
        };
        let action = match (csrf, r.state) {
            (Some(csrf), "open") | (Some(csrf), "taken") => {
                let (to, label) = if r.state == "open" {
                    ("taken", "내가 맡기")
                } else {
                    ("open", "담당 해제")
                };
                format!(
                    r#"<form method="post" action="/city/escalations/{id}" class="take"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="state" value="{to}"><input type="hidden" name="back" value="{}"><button type="submit">{label}</button></form>"#,
                    esc(csrf),
                    esc(&q.at_page(page)),
                    id = esc(&e.escalation_id)
                )
            }
            _ => String::new(),
        };
        let _ = write!(
            body,
            r#"<tr class="r-{r} st-{s}" data-escalation="{eid}" data-household="{h}"><td data-label="사유">{}</td><td data-label="가구"><a href="/households/{h}">{h}</a></td><td data-label="동">{}</td><td data-label="우선순위">{}</td><td data-label="부터">{}</td><td data-label="보낸 시각">{}</td><td data-label="상태" class="state">{state}</td><td>{action}</td></tr>"#,
            reason_ko(&e.reason),
            esc(&st.dong_name(&e.dong_code).0),
            esc(e.priority.as_deref().unwrap_or("-")),
            st.local_time(e.since_ms),
            st.local_time(e.emitted_ms),
            r = esc(&e.reason),
            s = r.state,
            eid = esc(&e.escalation_id),
            h = esc(&e.household_id)
        );
    }
    if v.rows.is_empty() {
        body.push_str(r#"<tr><td colspan="8">조건에 맞는 에스컬레이션이 없습니다.</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    body.push_str(&super::pages::paging("/city", page, pages, |p| {
        q.at_page(p)
    }));
}

fn unassigned(body: &mut String, v: &CityView<'_>) {
    let (items, total) = v.unassigned;
    let _ = write!(
        body,
        r#"<h2>미배정 가구 <span class="en">Unassigned households</span></h2><p class="counts">담당 동이 정해지지 않은 행정동코드의 가구 {total}가구{}. 동 목록(dongs.csv)에 그 코드를 담당할 동을 넣거나, 시에서 직접 연락하고 결과를 기록하세요.</p><table id="unassigned" class="cards"><thead><tr><th>가구</th><th>행정동코드</th><th>우선순위</th><th>상태</th><th>할 일</th></tr></thead><tbody>"#,
        if total > items.len() {
            format!(" (위 {}가구 표시)", items.len())
        } else {
            String::new()
        }
    );
    for i in items {
        let _ = write!(
            body,
            r#"<tr><td data-label="가구"><a href="/households/{h}">{h}</a></td><td data-label="행정동코드">{}</td><td data-label="우선순위">{}</td><td data-label="상태">{}</td><td data-label="할 일">{}</td></tr>"#,
            esc(&i.case.dong),
            i.case.priority.map_or("-", |p| p.as_str()),
            status_cell(i),
            step_cell(i),
            h = esc(&i.household_id)
        );
    }
    if items.is_empty() {
        body.push_str(r#"<tr><td colspan="5">없음</td></tr>"#);
    }
    body.push_str("</tbody></table>");
}

/// Feeds' health: when each last sent, how far its event time is, and a
/// stale mark when it has been silent longer than its declared gap.
fn feeds(st: &WebState, body: &mut String, now: i64) {
    let m = &st.ops.metrics;
    let data = crate::ops::http::dashboard_data(&st.ops);
    let watermarks: BTreeMap<&str, i64> = data["feeds"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    Some((
                        f["feed"].as_str()?,
                        (f["watermark"].as_f64()? * 1000.0) as i64,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    body.push_str(r#"<h2>피드 상태 <span class="en">Feeds' health</span></h2><table id="feeds" class="cards"><thead><tr><th>피드</th><th>상태</th><th>수신 건수</th><th>초당 (최근 1분)</th><th>마지막 수신</th><th>처리된 신호 시각 (워터마크)</th><th>정상 공백</th></tr></thead><tbody>"#);
    for (feed, gap) in &st.feeds {
        let received = m.received.with_label_values(&[feed.as_str()]).get();
        let last_s = m.feed_received_at.with_label_values(&[feed.as_str()]).get();
        let silent_ms = (last_s > 0).then(|| now - last_s * 1000);
        let stale = match (gap, silent_ms) {
            (Some(gap), Some(silent)) => silent > gap.as_millis() as i64,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let watermark = watermarks.get(feed.as_str()).copied().filter(|&w| w > 0);
        let _ = write!(
            body,
            r#"<tr class="{}" data-feed="{}"><td data-label="피드">{}</td><td data-label="상태">{}</td><td data-label="수신 건수">{}</td><td data-label="초당">{}</td><td data-label="마지막 수신">{}</td><td data-label="워터마크">{}</td><td data-label="정상 공백">{}</td></tr>"#,
            if stale { "stale" } else { "" },
            esc(feed),
            esc(st.feed_ko(feed)),
            if stale {
                r#"<span class="stale-mark">⚠ 수신 지연</span>"#
            } else {
                "정상"
            },
            received,
            st.rate(feed).map_or("-".into(), |r| format!("{r:.1}")),
            if last_s > 0 {
                st.local_time(last_s * 1000)
            } else {
                "수신 없음".into()
            },
            watermark.map_or("-".into(), |w| st.local_time(w)),
            gap.map_or("-".into(), |g| format!("{}일", g.as_secs() / 86_400)),
        );
    }
    body.push_str("</tbody></table>");
    rejects(body, &data);
}

fn rejects(body: &mut String, data: &Value) {
    body.push_str(r#"<h2>거부된 메시지 <span class="en">Rejected messages</span></h2><table id="rejects" class="cards"><thead><tr><th>사유</th><th>건수</th></tr></thead><tbody>"#);
    let mut any = false;
    if let Some(map) = data["rejected"].as_object() {
        for (reason, n) in map {
            let n = n.as_f64().unwrap_or(0.0);
            if n <= 0.0 {
                continue;
            }
            any = true;
            let ko = RejectClass::ALL
                .into_iter()
                .find(|c| c.as_str() == reason)
                .map_or(reason.as_str(), |c| c.label_ko());
            let _ = write!(
                body,
                r#"<tr data-reason="{}"><td data-label="사유">{}</td><td data-label="건수">{}</td></tr>"#,
                esc(reason),
                esc(ko),
                charts::number(n)
            );
        }
    }
    if !any {
        body.push_str(r#"<tr><td colspan="2">없음</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    let lag: Vec<String> = data["lag_by_topic"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(t, v)| format!("{} {}건", esc(t), charts::number(v.as_f64().unwrap_or(0.0))))
                .collect()
        })
        .unwrap_or_default();
    let _ = write!(
        body,
        r#"<p id="lag">처리 대기 메시지 (consumer lag): {}</p>"#,
        if lag.is_empty() {
            "해당 없음 (데모 또는 아직 측정 전)".into()
        } else {
            lag.join(", ")
        }
    );
}

fn charts_of(st: &WebState, body: &mut String, follow_up: &BTreeMap<String, DongFollowUp>) {
    let history = st.ops.live.history();
    body.push_str(r#"<h2>일별 알림 (최근 90일, 건) <span class="en">Alerts per day</span></h2>"#);
    let days: Vec<(String, [u64; 3])> = history.alerts_per_day.into_iter().collect();
    body.push_str(&charts::alerts_per_day(&days));
    body.push_str(
        r#"<h2>알림에서 첫 연락까지 (일) <span class="en">Alert to first reach</span></h2>"#,
    );
    let rows: Vec<(String, Vec<f64>)> = history
        .first_contact_days
        .iter()
        .enumerate()
        .map(|(i, kept)| {
            let mut v: Vec<f64> = kept.iter().copied().collect();
            v.sort_by(f64::total_cmp);
            let at = |q: f64| {
                v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            (
                format!("P{} ({}건)", i + 1, v.len()),
                vec![at(0.5), at(0.9)],
            )
        })
        .collect();
    body.push_str(&charts::bars(&rows, &["중앙값", "90%"], "일"));
    body.push_str(r#"<h2>동별 연락 대기와 기한초과 (가구) <span class="en">Open and overdue per dong</span></h2>"#);
    let open_rows: Vec<(String, Vec<f64>)> = st
        .dongs
        .iter()
        .map(|d| {
            let f = follow_up.get(&d.dong_code).cloned().unwrap_or_default();
            (d.name_ko.clone(), vec![f.open as f64, f.overdue as f64])
        })
        .collect();
    body.push_str(&charts::bars(&open_rows, &["연락 대기", "기한초과"], ""));
}
