//! The pages, as HTML text: Korean first, English beside it. No inline
//! script or style (the CSP forbids both): `/static/app.css` and
//! `/static/app.js` are files served by the binary.

use std::fmt::Write;
use std::sync::Arc;

use super::auth::Person;
pub use super::esc;
use super::users::Role;
use super::WebState;
use crate::ops::work::WorkItem;
use crate::ops::{DongFollowUp, QueuedEscalation};
use crate::stages::alert::CaseStatus;
use std::collections::BTreeMap;

/// The page's style sheet.
pub const APP_CSS: &str = include_str!("static/app.css");
/// The page's script (refreshes a household's status).
pub const APP_JS: &str = include_str!("static/app.js");

/// A time on the offices' clock (KST), to the minute.
pub fn local_time(ms: i64) -> String {
    let t = crate::stages::alert::rfc3339(ms + 9 * 3_600_000);
    t.get(..16).unwrap_or_default().replace('T', " ")
}

fn category_ko(c: &str) -> &str {
    match c {
        "utility" => "공과금 체납",
        "employment" => "실직",
        "health" => "건강보험료 체납",
        other => other,
    }
}

fn head(title: &str) -> String {
    format!(
        r#"<!doctype html><html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · sagak</title><link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head><body>"#,
        esc(title)
    )
}

/// A page of a logged-in person: the menu, who they are, log out.
pub fn layout(title: &str, person: &Person, body: &str) -> String {
    let u = &person.user;
    let mut out = head(title);
    let who = match (u.role, &u.dong) {
        (Role::Dong, Some(d)) => format!("{} · {d}", esc(&u.name)),
        _ => format!("{} · 시 city", esc(&u.name)),
    };
    let _ = write!(
        out,
        r#"<header><nav><a href="/queue">업무 목록 <span class="en">Work queue</span></a><a href="/lists">일일 목록 <span class="en">Daily lists</span></a>"#
    );
    if u.role == Role::City {
        out.push_str(r#"<a href="/city">시 현황 <span class="en">City</span></a>"#);
    }
    let _ = write!(out, r#"</nav><span class="who" id="who">{who}</span>"#);
    if let Some(s) = &person.session {
        let _ = write!(
            out,
            r#"<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{}"><button type="submit">로그아웃 Log out</button></form>"#,
            esc(&s.csrf)
        );
    }
    let _ = write!(
        out,
        "</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    out
}

/// The login page.
pub fn login(message: Option<&str>) -> String {
    let mut out = head("로그인 Log in");
    out.push_str(r#"<main class="login"><h1>sagak 로그인 <span class="en">Log in</span></h1>"#);
    if let Some(m) = message {
        let _ = write!(out, r#"<p class="error" id="login-error">{}</p>"#, esc(m));
    }
    out.push_str(r#"<form method="post" action="/login"><label>접속 토큰 <span class="en">Access token</span> <input type="password" name="token" id="token" autocomplete="off" required></label><button type="submit" id="login">로그인 Log in</button></form><p class="hint">토큰은 계정을 만들 때 한 번만 표시됩니다. 잃어버렸다면 관리자에게 새 계정을 요청하세요. <span class="en">The token is shown once when the account is made; if it is lost, ask for a new account.</span></p></main></body></html>"#);
    out
}

fn status_cell(item: &WorkItem) -> String {
    let s = &item.case;
    let mut out = format!(
        r#"<span class="status s-{}">{} <span class="en">{}</span></span>"#,
        s.status.as_str(),
        esc(&s.status_ko),
        s.status.as_str()
    );
    if item.overdue() {
        out.push_str(r#" <span class="overdue">기한초과 overdue</span>"#);
    }
    out
}

/// What is due next for a household (`D+12 초과`, `오늘 마감`,
/// `2회 시도, 다음 시도 11-03`), from its open work.
fn step_cell(item: &WorkItem) -> String {
    let c = &item.case;
    if c.step_ko.is_empty() {
        return "-".into();
    }
    let class = if c.overdue() || c.unreachable_since.is_some() {
        "step late"
    } else {
        "step"
    };
    format!(
        r#"<span class="{class}">{}</span> <span class="en">{}</span>"#,
        esc(&c.step_ko),
        esc(&c.step_en)
    )
}

fn reasons(item: &WorkItem) -> String {
    if item.reasons.is_empty() {
        return item
            .case
            .categories
            .iter()
            .map(|c| {
                format!(
                    "{} <span class=\"en\">{}</span>",
                    esc(category_ko(c)),
                    esc(c)
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
    }
    item.reasons
        .iter()
        .map(|(ko, en)| format!("{} <span class=\"en\">{}</span>", esc(ko), esc(en)))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// A dong's work queue.
pub fn queue(
    st: &WebState,
    person: &Person,
    dong: &str,
    items: &[Arc<WorkItem>],
    now: i64,
) -> String {
    let (ko, en) = st.dong_name(dong);
    let queued: Vec<&Arc<WorkItem>> = items.iter().filter(|i| i.in_queue()).collect();
    let cases: Vec<&Arc<WorkItem>> = items
        .iter()
        .filter(|i| !i.in_queue() && i.case.status == CaseStatus::InCase)
        .collect();
    let overdue = queued.iter().filter(|i| i.overdue()).count();
    let unreachable = queued
        .iter()
        .filter(|i| i.case.status == CaseStatus::Unreachable)
        .count();
    let mut body = format!(
        r#"<p class="summary" id="summary">{} <span class="en">{}</span> · {dong} · 연락 대기 <b id="n-open">{}</b> <span class="en">waiting</span> · 기한초과 <b id="n-overdue">{overdue}</b> <span class="en">overdue</span> · 소재파악 필요 <b id="n-unreachable">{unreachable}</b> <span class="en">unreachable</span> · 사례관리 <b id="n-in-case">{}</b> <span class="en">in case</span> · 기준 {} KST</p>"#,
        esc(&ko),
        esc(&en),
        queued.len(),
        cases.len(),
        local_time(now)
    );
    if person.user.role == Role::City {
        body.push_str(r#"<form method="get" action="/queue" class="pick"><label>동 Dong <select name="dong">"#);
        for d in &st.dongs {
            let sel = if d.dong_code == dong { " selected" } else { "" };
            let _ = write!(
                body,
                r#"<option value="{}"{sel}>{} {}</option>"#,
                esc(&d.dong_code),
                esc(&d.name_ko),
                esc(&d.dong_code)
            );
        }
        body.push_str(r#"</select></label><button type="submit">보기 Show</button></form>"#);
    }
    body.push_str(r#"<table id="queue"><thead><tr><th>순위<br><span class="en">#</span></th><th>가구<br><span class="en">Household</span></th><th>우선순위<br><span class="en">Priority</span></th><th>상태<br><span class="en">Status</span></th><th>할 일<br><span class="en">Next step</span></th><th>사유<br><span class="en">Reasons</span></th><th>최근조치<br><span class="en">Last outcome</span></th></tr></thead><tbody>"#);
    for (rank, i) in queued.iter().enumerate() {
        let last = i
            .case
            .outcomes
            .last()
            .map(|o| format!("{} · {}", esc(&o.label), local_time(o.recorded_at)))
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            body,
            r#"<tr data-household="{id}" data-tier="{tier}"><td>{}</td><td><a href="/households/{id}">{id}</a></td><td class="p">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{last}</td></tr>"#,
            rank + 1,
            i.case.priority.map_or("-", |p| p.as_str()),
            status_cell(i),
            step_cell(i),
            reasons(i),
            tier = i.case.tier.map_or("", |t| t.as_str()),
            id = esc(&i.household_id),
        );
    }
    if queued.is_empty() {
        body.push_str(r#"<tr><td colspan="7">연락을 기다리는 가구가 없습니다. <span class="en">No household is waiting for a contact.</span></td></tr>"#);
    }
    body.push_str("</tbody></table>");
    if !cases.is_empty() {
        body.push_str(
            r#"<h2>사례관리 중 <span class="en">In case management</span></h2><ul class="cases">"#,
        );
        for i in &cases {
            let _ = write!(
                body,
                r#"<li><a href="/households/{id}">{id}</a> · {} · 선정 {}</li>"#,
                i.case.priority.map_or("-", |p| p.as_str()),
                i.case.in_case_since.map(local_time).unwrap_or_default(),
                id = esc(&i.household_id)
            );
        }
        body.push_str("</ul>");
    }
    layout("업무 목록 Work queue", person, &body)
}

/// The household's outcomes: when, what (channel and result, services,
/// reason, track), who, the note, and a withdraw button per outcome.
fn history(st: &WebState, body: &mut String, item: &WorkItem, csrf: Option<&str>) {
    body.push_str(r#"<h2>조치 이력 <span class="en">Outcomes so far</span></h2><ol id="history">"#);
    let id = esc(&item.household_id);
    for o in &item.case.outcomes {
        let detail = item.details.iter().rev().find(|d| d.key == o.key);
        let mut what = esc(&o.label);
        if let Some(c) = o.channel {
            let _ = write!(what, " · {}", esc(&st.label(c)));
        }
        if !o.services.is_empty() {
            let names: Vec<String> = o.services.iter().map(|s| esc(&st.label(s))).collect();
            let _ = write!(what, " · {}", names.join(", "));
        }
        let who = match detail {
            Some(d) => format!("{} ({})", esc(&d.staff_id), esc(&d.dong_code)),
            None if o.by_city => "시 city".into(),
            None => "-".into(),
        };
        let _ = write!(
            body,
            r#"<li class="outcome"><span class="when">{}</span> · <b>{what}</b> <span class="en">{}</span> · 기록 <span class="en">by</span> {who}"#,
            local_time(o.recorded_at),
            esc(&o.kind),
        );
        if let Some(d) = detail {
            let _ = write!(
                body,
                r#" · <span class="oid">{}</span>"#,
                esc(&d.outcome_id)
            );
            if let Some(n) = &d.note {
                let _ = write!(body, r#"<p class="note">{}</p>"#, esc(n));
            }
            if let Some(csrf) = csrf {
                let _ = write!(
                    body,
                    r#"<form method="post" action="/households/{id}/outcomes" class="withdraw"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="kind" value="withdrawn"><input type="hidden" name="withdraws" value="{}"><button type="submit">이 기록 철회 <span class="en">Withdraw</span></button></form>"#,
                    esc(csrf),
                    esc(&d.outcome_id)
                );
            }
        }
        body.push_str("</li>");
    }
    if item.case.outcomes.is_empty() {
        body.push_str("<li>아직 없음 <span class=\"en\">none yet</span></li>");
    }
    body.push_str("</ol>");
}

/// `<option>`s of wire names, each with its Korean label.
/// `<option>`s of wire names, each with its Korean label; `chosen` is
/// selected.
fn options(
    st: &WebState,
    names: impl IntoIterator<Item = &'static str>,
    chosen: Option<&str>,
) -> String {
    names
        .into_iter()
        .map(|n| {
            let sel = if chosen == Some(n) { " selected" } else { "" };
            format!(
                r#"<option value="{n}"{sel}>{} {n}</option>"#,
                esc(&st.label(n))
            )
        })
        .collect()
}

/// One household: its alerts, status, history, and the outcome form.
pub fn household(st: &WebState, person: &Person, item: &WorkItem, notice: Option<&str>) -> String {
    household_page(st, person, item, notice, None)
}

/// The household's page after a refused outcome: the reason on the form,
/// what was typed kept.
pub fn household_refused(
    st: &WebState,
    person: &Person,
    item: &WorkItem,
    fields: &[(String, String)],
    message: &str,
) -> String {
    household_page(st, person, item, None, Some((message, fields)))
}

fn household_page(
    st: &WebState,
    person: &Person,
    item: &WorkItem,
    notice: Option<&str>,
    refused: Option<(&str, &[(String, String)])>,
) -> String {
    use crate::stages::case::outcome::{
        Channel, CloseReason, ContactResult, NotApplicableReason, OutcomeKind, Service, Track,
    };
    let c = &item.case;
    let (ko, en) = st.dong_name(&c.dong);
    let mut body = String::new();
    if let Some(n) = notice {
        let _ = write!(body, r#"<p class="notice" id="notice">{}</p>"#, esc(n));
    }
    let _ = write!(
        body,
        r#"<dl class="facts" data-household="{id}"><dt>가구 <span class="en">Household</span></dt><dd id="household">{id}</dd><dt>동 <span class="en">Dong</span></dt><dd>{} {} ({})</dd><dt>상태 <span class="en">Status</span></dt><dd id="status" data-status="{}" data-outcomes="{}">{}</dd><dt>할 일 <span class="en">Next step</span></dt><dd id="step">{}</dd><dt>우선순위 <span class="en">Priority</span></dt><dd>{}</dd><dt>연락기한 <span class="en">Due</span></dt><dd>{}</dd><dt>실패한 시도 <span class="en">Failed attempts</span></dt><dd id="attempts">{}</dd><dt>알림 횟수 <span class="en">Times alerted</span></dt><dd>{}</dd><dt>사유 <span class="en">Reasons</span></dt><dd>{}</dd></dl>"#,
        esc(&ko),
        esc(&en),
        esc(&c.dong),
        c.status.as_str(),
        c.outcomes.len(),
        status_cell(item),
        step_cell(item),
        c.priority.map_or("-", |p| p.as_str()),
        item.due_at().map(local_time).unwrap_or_else(|| "-".into()),
        c.attempts,
        c.times_flagged,
        reasons(item),
        id = esc(&item.household_id)
    );
    history(
        st,
        &mut body,
        item,
        person.session.as_ref().map(|s| s.csrf.as_str()),
    );
    let Some(session) = &person.session else {
        return layout("가구 Household", person, &body);
    };
    let alert = c
        .open_alerts
        .first()
        .map(|a| a.alert_id.clone())
        .unwrap_or_default();
    let typed: &[(String, String)] = refused.map_or(&[], |r| r.1);
    let value = |name: &str| {
        typed
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let error = refused
        .map(|(m, _)| {
            format!(
                r#"<p class="error" id="form-error" role="alert">{}</p>"#,
                esc(m)
            )
        })
        .unwrap_or_default();
    let _ = write!(
        body,
        r#"<h2>조치 기록 <span class="en">Record an outcome</span></h2>{error}<form method="post" action="/households/{id}/outcomes" id="outcome" class="outcome"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="alert_id" value="{alert}">
<label>조치 <span class="en">What was done</span> <select name="kind" id="kind" required>{kinds}</select></label>
<fieldset data-kind="contact_attempted"><legend>연락 시도 <span class="en">Contact attempt</span></legend><label>방법 <span class="en">Channel</span> <select name="channel" id="channel">{channels}</select></label><label>결과 <span class="en">Result</span> <select name="result" id="result"><option value="" selected>선택하세요 choose</option>{results}</select></label></fieldset>
<fieldset data-kind="support_linked"><legend>서비스 연계 <span class="en">Services linked</span></legend>{services}</fieldset>
<fieldset data-kind="case_opened"><legend>선정 <span class="en">Track</span></legend><select name="track">{tracks}</select></fieldset>
<fieldset data-kind="not_applicable"><legend>비대상 사유 <span class="en">Reason</span></legend><select name="na_reason">{na}</select></fieldset>
<fieldset data-kind="case_closed"><legend>종결 사유 <span class="en">Reason</span></legend><select name="close_reason">{close}</select></fieldset>
<fieldset data-kind="withdrawn"><legend>철회할 기록 <span class="en">Outcome id to withdraw</span></legend><input name="withdraws" maxlength="64" value="{withdraws}"></fieldset>
<label>메모 <span class="en">Note</span> (500자 이내, 주민등록번호 금지 <span class="en">at most 500 characters, no resident registration numbers</span>) <textarea name="note" maxlength="500">{note}</textarea></label>
<button type="submit" id="record">기록 Record</button></form>"#,
        id = esc(&item.household_id),
        csrf = esc(&session.csrf),
        kinds = options(st, OutcomeKind::ALL.iter().map(|c| c.as_str()), value("kind")),
        channels = options(st, Channel::ALL.iter().map(|c| c.as_str()), value("channel")),
        results = options(st, ContactResult::ALL.iter().map(|c| c.as_str()), value("result")),
        services = Service::ALL
            .iter()
            .map(|s| {
                let on = typed.iter().any(|(k, v)| k == "services" && v == s.as_str());
                format!(
                    r#"<label class="check"><input type="checkbox" name="services" value="{0}"{2}> {1} {0}</label>"#,
                    s.as_str(),
                    esc(&st.label(s.as_str())),
                    if on { " checked" } else { "" }
                )
            })
            .collect::<String>(),
        tracks = options(st, Track::ALL.iter().map(|c| c.as_str()), value("track")),
        na = options(st, NotApplicableReason::ALL.iter().map(|c| c.as_str()), value("na_reason")),
        close = options(st, CloseReason::ALL.iter().map(|c| c.as_str()), value("close_reason")),
        withdraws = esc(value("withdraws").unwrap_or_default()),
        note = esc(value("note").unwrap_or_default()),
    );
    layout("가구 Household", person, &body)
}

/// The daily lists one may download.
pub fn lists(person: &Person, days: &[(String, Vec<String>)]) -> String {
    let mut body = String::from(
        r#"<p>엑셀에서 여는 CSV와 분석용 Parquet 파일입니다. <span class="en">CSV opens in Excel; Parquet is for analysts.</span></p><table id="lists"><thead><tr><th>날짜 <span class="en">Date</span></th><th>파일 <span class="en">Files</span></th></tr></thead><tbody>"#,
    );
    for (day, files) in days {
        let links: Vec<String> = files
            .iter()
            .map(|f| {
                format!(
                    r#"<a href="/lists/{d}/{f}" download>{f}</a>"#,
                    d = esc(day),
                    f = esc(f)
                )
            })
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(day),
            links.join(" ")
        );
    }
    if days.is_empty() {
        body.push_str(r#"<tr><td colspan="2">아직 목록이 없습니다. <span class="en">No list yet.</span></td></tr>"#);
    }
    body.push_str("</tbody></table>");
    layout("일일 목록 Daily lists", person, &body)
}

/// The city team's page: every dong side by side, the escalations queue,
/// the unassigned households, the feeds' health, and the charts. The
/// caller gives the escalations and unassigned households to show (and
/// audits exactly those).
pub fn city(
    st: &WebState,
    person: &Person,
    follow_up: &BTreeMap<String, DongFollowUp>,
    escalations: &[QueuedEscalation],
    unassigned: &[Arc<WorkItem>],
    now: i64,
) -> String {
    let data = crate::ops::http::dashboard_data(&st.ops);
    let history = st.ops.live.history();
    let mut body = String::new();
    body.push_str(r#"<h2>동별 현황 <span class="en">Dongs side by side</span></h2><table id="dongs"><thead><tr><th>동 <span class="en">Dong</span></th><th>연락 대기 <span class="en">Open</span></th><th>기한초과 <span class="en">Overdue</span></th><th>첫 연락까지(일, 중앙값) <span class="en">Days to first reach (median)</span></th><th>기한 내 <span class="en">In time</span></th><th>소재파악 필요 <span class="en">Unreachable</span></th><th>사례관리 <span class="en">In case</span></th></tr></thead><tbody>"#);
    let mut open_rows = Vec::new();
    for d in &st.dongs {
        let f = follow_up.get(&d.dong_code).cloned().unwrap_or_default();
        let _ = write!(
            body,
            r#"<tr data-dong="{code}"><td><a href="/queue?dong={code}">{} {code}</a></td><td class="n-open">{}</td><td class="n-overdue {}">{}</td><td>{}</td><td>{}</td><td class="n-unreachable">{}</td><td class="n-in-case">{}</td></tr>"#,
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
        open_rows.push((d.name_ko.clone(), vec![f.open as f64, f.overdue as f64]));
    }
    body.push_str("</tbody></table>");
    body.push_str(r#"<h2>일별 알림 (최근 90일) <span class="en">Alerts per day and priority, last 90 days</span></h2>"#);
    let days: Vec<(String, [u64; 3])> = history.alerts_per_day.into_iter().collect();
    body.push_str(&super::charts::alerts_per_day(&days));
    body.push_str(r#"<h2>알림에서 첫 연락까지 <span class="en">Alert to first reach, per priority</span></h2>"#);
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
    body.push_str(&super::charts::bars(
        &rows,
        &["중앙값 median", "90% p90"],
        "일 days",
    ));
    body.push_str(
        r#"<h2>동별 연락 대기와 기한초과 <span class="en">Open and overdue per dong</span></h2>"#,
    );
    body.push_str(&super::charts::bars(
        &open_rows,
        &["연락 대기 open", "기한초과 overdue"],
        "",
    ));
    body.push_str(r#"<h2>시 에스컬레이션 <span class="en">Escalations queue</span></h2><table id="escalations"><thead><tr><th>사유 <span class="en">Reason</span></th><th>가구 <span class="en">Household</span></th><th>동 <span class="en">Dong</span></th><th>우선순위</th><th>부터 <span class="en">Since</span></th><th>보낸 시각 <span class="en">Sent</span></th></tr></thead><tbody>"#);
    for e in escalations {
        let _ = write!(
            body,
            r#"<tr class="r-{r}"><td>{} <span class="en">{r}</span></td><td><a href="/households/{h}">{h}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            match e.reason.as_str() {
                "overdue" => "기한초과",
                "unreachable" => "소재파악 필요",
                "repeatedly_flagged" => "반복 발굴",
                _ => "",
            },
            esc(&e.dong_code),
            esc(e.priority.as_deref().unwrap_or("-")),
            esc(&e.since),
            esc(&e.emitted_at),
            r = esc(&e.reason),
            h = esc(&e.household_id)
        );
    }
    if escalations.is_empty() {
        body.push_str(r#"<tr><td colspan="6">없음 <span class="en">none</span></td></tr>"#);
    }
    body.push_str("</tbody></table>");
    body.push_str(r#"<h2>미배정 가구 <span class="en">Unassigned households</span></h2><table id="unassigned"><thead><tr><th>가구</th><th>행정동코드 <span class="en">Dong code</span></th><th>우선순위</th><th>상태</th></tr></thead><tbody>"#);
    for i in unassigned {
        let _ = write!(
            body,
            r#"<tr><td><a href="/households/{h}">{h}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&i.case.dong),
            i.case.priority.map_or("-", |p| p.as_str()),
            status_cell(i),
            h = esc(&i.household_id)
        );
    }
    if unassigned.is_empty() {
        body.push_str(r#"<tr><td colspan="4">없음 <span class="en">none</span></td></tr>"#);
    }
    body.push_str("</tbody></table>");
    body.push_str(r#"<h2>피드 상태 <span class="en">Feeds' health</span></h2><table id="feeds"><thead><tr><th>피드 <span class="en">Feed</span></th><th>수신 <span class="en">Received</span></th><th>초당 <span class="en">Per second (last minute)</span></th><th>워터마크 <span class="en">Watermark</span></th></tr></thead><tbody>"#);
    if let Some(feeds) = data["feeds"].as_array() {
        for f in feeds {
            let wm = f["watermark"]
                .as_f64()
                .map(|s| local_time((s * 1000.0) as i64))
                .unwrap_or_else(|| "-".into());
            let feed = f["feed"].as_str().unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{wm}</td></tr>",
                esc(feed),
                f["received"].as_f64().unwrap_or(0.0),
                st.rate(feed).map_or("-".into(), |r| format!("{r:.1}"))
            );
        }
    }
    body.push_str("</tbody></table>");
    let lag: Vec<String> = data["lag_by_topic"]
        .as_object()
        .map(|m| m.iter().map(|(t, v)| format!("{} {}", esc(t), v)).collect())
        .unwrap_or_default();
    let rejected: Vec<String> = data["rejected"]
        .as_object()
        .map(|m| m.iter().map(|(t, v)| format!("{} {}", esc(t), v)).collect())
        .unwrap_or_default();
    let _ = write!(
        body,
        r#"<p>지연 <span class="en">Consumer lag</span>: {} · 거부 <span class="en">Rejected</span>: {} · 기준 {} KST</p>"#,
        if lag.is_empty() {
            "-".into()
        } else {
            lag.join(", ")
        },
        if rejected.is_empty() {
            "0".into()
        } else {
            rejected.join(", ")
        },
        local_time(now)
    );
    layout("시 현황 City overview", person, &body)
}
