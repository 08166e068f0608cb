//! A dong's case meeting agenda (사례회의 안건) as a page with its
//! decision forms, its JSON, a CSV for Excel and a printable A4 page; and
//! the city's side-by-side counts. Every view is audited with exactly the
//! households it shows; a decision is an outcome recorded through the
//! household's own form handler (checked, published, audited), which
//! returns here.

// A refusal is the response itself, returned early by the checks every
// handler makes; it is built once per refused request, never in a loop.
#![allow(clippy::result_large_err)]

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Person;
use super::caller::Caller;
use super::households::queue_dong;
use super::pages::plan::{plan_cell, plan_inputs, review_inputs};
use super::pages::{esc, layout, options};
use super::respond::{audited, denied, fail, html, urlencode};
use super::users::Role;
use super::WebState;
use crate::ops::agenda::{why_texts, Agenda, Row};
use crate::stages::case::meeting::Part;
use crate::stages::case::outcome::{date_text, parse_date, CloseReason, Track};

/// `?dong=CODE&date=YYYY-MM-DD` (today's date when left out).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AgendaQuery {
    pub(crate) dong: Option<String>,
    pub(crate) date: Option<String>,
    pub(crate) recorded: Option<String>,
}

/// The dong and day asked for, or the refusal (audited).
fn asked(
    st: &WebState,
    who: &Person,
    from: &super::respond::Client,
    q: &AgendaQuery,
    path: &str,
    api: bool,
) -> Result<(String, i32), Response> {
    let refused = |page| audited(st, who, from, "view_agenda", path, vec![], None, page);
    let dong = match queue_dong(st, who, q.dong.as_deref()) {
        Ok(d) => d,
        Err(Some(_)) => return Err(denied(st, who, from, path, vec![], api)),
        Err(None) => {
            let page = fail(
                api,
                StatusCode::NOT_FOUND,
                "그런 동이 없습니다. (No such dong.)",
            );
            return Err(refused(page));
        }
    };
    let date = q.date.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let day = match date {
        None => Some(st.clock.day(st.ops.work.now_ms()) as i32),
        Some(d) => parse_date(d),
    };
    let Some(day) = day else {
        let page = fail(
            api,
            StatusCode::BAD_REQUEST,
            "회의 날짜는 2027-01-15처럼 적으세요. (date must be YYYY-MM-DD.)",
        );
        return Err(refused(page));
    };
    Ok((dong, day))
}

/// The agenda of `dong` for `day`, from the board every view reads.
pub(crate) fn agenda_of(st: &WebState, dong: &str, day: i32) -> Agenda {
    Agenda::of(&st.ops.work.of_dong(dong), dong, day, st.clock)
}

pub(super) async fn agenda(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<AgendaQuery>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    let (dong, day) = match asked(&st, &who, &from, &q, path, api) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let a = agenda_of(&st, &dong, day);
    let page = if api {
        axum::Json(a.json()).into_response()
    } else {
        html(page(&st, &who, &a, q.recorded.is_some()))
    };
    audited(
        &st,
        &who,
        &from,
        "view_agenda",
        path,
        a.households(),
        None,
        page,
    )
}

pub(super) async fn agenda_csv(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<AgendaQuery>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, .. } = caller;
    let path = uri.path();
    let (dong, day) = match asked(&st, &who, &from, &q, path, false) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let a = agenda_of(&st, &dong, day);
    let name = format!("agenda-{dong}-{}.csv", date_text(day));
    let file = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        a.csv(st.clock),
    )
        .into_response();
    audited(
        &st,
        &who,
        &from,
        "download_agenda",
        path,
        a.households(),
        None,
        file,
    )
}

/// The page: the month's figures, then the three parts, each household
/// with why it is there, its plan, and the decision to record.
fn page(st: &WebState, who: &Person, a: &Agenda, recorded: bool) -> String {
    let (name, _) = st.dong_name(&a.dong);
    let date = date_text(a.day);
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h2 class="print-title" id="agenda-title">{} 사례회의 안건 <span class="en">Case meeting agenda</span> {date}</h2>"#,
        esc(&name)
    );
    if recorded {
        body.push_str(r#"<p class="notice" id="notice">기록되었습니다. 몇 초 안에 안건에 반영됩니다. (Recorded; the agenda follows within seconds.)</p>"#);
    }
    body.push_str(&chooser(st, who, a));
    body.push_str(&month_box(a));
    let back = format!("/agenda?dong={}&date={date}", urlencode(&a.dong));
    let csrf = who.session.as_ref().map(|s| s.csrf.as_str());
    for (i, part) in Part::ALL.iter().enumerate() {
        section(st, &mut body, *part, &a.parts[i], csrf, &back);
    }
    layout(st, "사례회의 Case meeting", who, &body)
}

/// The dong (the city chooses) and the date, the CSV and the print button.
fn chooser(st: &WebState, who: &Person, a: &Agenda) -> String {
    let date = date_text(a.day);
    let mut out = String::from(
        r#"<form method="get" action="/agenda" class="pick no-print" id="agenda-pick">"#,
    );
    if who.user.role == Role::City {
        out.push_str(
            r#"<label>동 <span class="en">Dong</span> <select name="dong" id="dong-pick">"#,
        );
        out.push_str(&super::pages::dong_options(st, Some(&a.dong)));
        out.push_str("</select></label>");
    } else {
        let _ = write!(
            out,
            r#"<input type="hidden" name="dong" value="{}">"#,
            esc(&a.dong)
        );
    }
    let _ = write!(
        out,
        r#"<label>회의 날짜 <span class="en">Meeting date</span> <input type="date" name="date" id="agenda-date" value="{date}" required></label><button type="submit">보기</button>
<a href="/agenda.csv?dong={dong}&amp;date={date}" id="agenda-csv" download>CSV (Excel)</a> <button type="button" id="print">인쇄 Print (A4)</button></form>"#,
        dong = urlencode(&a.dong)
    );
    out
}

fn month_box(a: &Agenda) -> String {
    let m = &a.month;
    let [c, r, x] = a.counts();
    format!(
        r#"<dl class="facts month" id="agenda-month"><dt>안건 <span class="en">On the agenda</span></dt><dd id="agenda-counts">신규 후보 {c} · 점검 {r} · 종결 검토 {x}</dd><dt>{month} 선정 <span class="en">opened</span></dt><dd id="month-opened">{}</dd><dt>점검 <span class="en">reviewed</span></dt><dd id="month-reviewed">{}</dd><dt>종결 <span class="en">closed</span></dt><dd id="month-closed">{}</dd><dt>알림→선정 중앙값 <span class="en">median days alert to case</span></dt><dd id="month-median">{}</dd><dt>재선정 <span class="en">reopened</span></dt><dd id="month-reopened">{}</dd></dl>"#,
        m.opened,
        m.reviewed,
        m.closed,
        m.median_days_to_open
            .map_or("-".to_string(), |d| format!("{d:.1}일")),
        m.reopened,
        month = esc(&m.month),
    )
}

fn section(
    st: &WebState,
    body: &mut String,
    part: Part,
    rows: &[Row],
    csrf: Option<&str>,
    back: &str,
) {
    let _ = write!(
        body,
        r#"<section class="agenda-part" id="part-{p}"><h2>{} <span class="en">{}</span> ({})</h2>"#,
        part.label_ko(),
        part.label_en(),
        rows.len(),
        p = part.as_str()
    );
    if rows.is_empty() {
        body.push_str(r#"<p class="empty">해당 가구가 없습니다. (None.)</p></section>"#);
        return;
    }
    body.push_str(r#"<table class="agenda cards"><thead><tr><th>#</th><th>가구 <span class="en">Household</span></th><th>우선순위</th><th>위기 영역</th><th>상태</th><th>안건 사유 <span class="en">Why</span></th><th>계획·목표 <span class="en">Plan and goals</span></th><th class="no-print">결정 <span class="en">Decision</span></th><th class="print-only">회의 결정 (수기)</th></tr></thead><tbody>"#);
    for (n, r) in rows.iter().enumerate() {
        let c = &r.item.case;
        let (why_ko, why_en) = why_texts(&r.why);
        let id = &r.item.household_id;
        let _ = write!(
            body,
            r#"<tr data-household="{hid}" data-part="{p}"><td data-label="번호">{}</td><td data-label="가구"><a href="/households/{url}">{hid}</a></td><td data-label="우선순위">{}</td><td data-label="위기 영역">{}</td><td data-label="상태">{}</td><td class="why" data-label="안건 사유">{}<br><span class="en">{}</span></td><td class="plan" data-label="계획·목표">{}</td><td class="decide no-print">{}</td><td class="print-only"></td></tr>"#,
            n + 1,
            c.priority.map_or("-", |p| p.as_str()),
            esc(&st.categories.of(&c.categories).1.join(", ")),
            esc(&c.status_ko),
            esc(&why_ko),
            esc(&why_en),
            plan_cell(&r.item),
            csrf.map(|t| decision(st, part, r, t, back))
                .unwrap_or_default(),
            hid = esc(id),
            url = urlencode(id),
            p = part.as_str(),
        );
    }
    body.push_str("</tbody></table></section>");
}

/// The decision a part asks for, as a form posted to the household's
/// outcomes (the same path as the work queue's), returning here.
fn decision(st: &WebState, part: Part, r: &Row, csrf: &str, back: &str) -> String {
    let id = urlencode(&r.item.household_id);
    let head = format!(
        r#"<form method="post" action="/households/{id}/outcomes" class="decision"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="back" value="{}">"#,
        esc(csrf),
        esc(back)
    );
    let plan = r.item.case.managed.as_deref().and_then(|m| m.plan.as_ref());
    let inner = match (part, plan) {
        (Part::Candidate, _) => open_form(st),
        (Part::Close, _) => close_form(st),
        (Part::Review, None) => plan_form(),
        (Part::Review, Some(_)) => review_form(r),
    };
    format!("<details><summary>결정 기록</summary>{head}{inner}</form></details>")
}

fn open_form(st: &WebState) -> String {
    let tracks = options(
        st,
        Track::ALL.iter().map(|t| t.as_str()),
        Some("case_management"),
    );
    format!(
        r#"<input type="hidden" name="kind" value="case_opened"><label>선정 구분 <select name="track">{tracks}</select></label><button type="submit">사례관리 선정 Open case</button>"#
    )
}

fn close_form(st: &WebState) -> String {
    let names = CloseReason::ALL.iter().map(|r| r.as_str());
    let reasons = options(st, names, Some("goal_met"));
    format!(
        r#"<input type="hidden" name="kind" value="case_closed"><label>종결 사유 <select name="close_reason">{reasons}</select></label><button type="submit">종결 Close</button>"#
    )
}

fn plan_form() -> String {
    format!(
        r#"<input type="hidden" name="kind" value="case_plan">{}<button type="submit">계획 기록 Record plan</button>"#,
        plan_inputs(&[], 3)
    )
}

fn review_form(r: &Row) -> String {
    format!(
        r#"<input type="hidden" name="kind" value="case_reviewed">{}<button type="submit">점검 기록 Record review</button>"#,
        review_inputs(&r.item, &[])
    )
}

/// The city's view: every dong's agenda counts side by side for `day`,
/// and the cases reopened within a year of closing (each shown household
/// is returned for the audit).
pub(super) fn city_section(st: &WebState, day: i32) -> (String, serde_json::Value, Vec<String>) {
    let mut rows = Vec::new();
    let mut items_all = Vec::new();
    for d in &st.dongs {
        let items = st.ops.work.of_dong(&d.dong_code);
        let a = Agenda::of(&items, &d.dong_code, day, st.clock);
        items_all.extend(items.into_iter().filter(|i| i.case.dong == d.dong_code));
        rows.push((d, a.counts(), a.month));
    }
    let reopened = crate::ops::agenda::reopened_within_a_year(&items_all, st.clock);
    let mut html = format!(
        r#"<section id="agenda-counts-city"><h2>동별 사례회의 안건 <span class="en">Case meeting agendas by dong</span> ({})</h2><table class="agenda-city"><thead><tr><th>동</th><th>신규 후보</th><th>점검</th><th>종결 검토</th><th>이달 선정</th><th>점검</th><th>종결</th><th>알림→선정 중앙값(일)</th><th>재선정</th></tr></thead><tbody>"#,
        date_text(day)
    );
    let mut json_rows = Vec::new();
    for (d, [c, r, x], m) in &rows {
        let _ = write!(
            html,
            r#"<tr data-dong="{code}"><td><a href="/agenda?dong={code}&amp;date={date}">{}</a></td><td>{c}</td><td>{r}</td><td>{x}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&d.name_ko),
            m.opened,
            m.reviewed,
            m.closed,
            m.median_days_to_open
                .map_or("-".into(), |v| format!("{v:.1}")),
            m.reopened,
            code = esc(&d.dong_code),
            date = date_text(day),
        );
        json_rows.push(serde_json::json!({
            "dong_code": d.dong_code, "name_ko": d.name_ko,
            "candidate": c, "review": r, "close": x, "month": m,
        }));
    }
    html.push_str(r#"</tbody></table><h3 id="reopened">종결 후 1년 안에 다시 선정된 사례 <span class="en">Cases reopened within a year of closing</span></h3>"#);
    if reopened.is_empty() {
        html.push_str(r#"<p class="empty">없습니다. (None.)</p>"#);
    } else {
        html.push_str(r#"<table class="reopened"><thead><tr><th>가구</th><th>동</th><th>종결</th><th>재선정</th><th>일수</th></tr></thead><tbody>"#);
        for x in &reopened {
            let _ = write!(
                html,
                r#"<tr><td><a href="/households/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                urlencode(&x.household_id),
                esc(&x.household_id),
                esc(&st.dong_name(&x.dong_code).0),
                x.closed,
                x.reopened,
                x.days_between
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
    let shown = reopened.iter().map(|r| r.household_id.clone()).collect();
    let json = serde_json::json!({
        "date": date_text(day),
        "dongs": json_rows,
        "reopened_within_a_year": reopened,
    });
    (html, json, shown)
}
