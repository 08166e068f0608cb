//! The pages, as HTML text: Korean first, English beside it. No inline
//! script or style (the CSP forbids both): `/static/app.css` and
//! `/static/app.js` are files served by the binary.

pub(crate) mod plan;

use std::fmt::Write;

use super::auth::Person;
pub(crate) use super::esc;
use super::users::Role;
use super::WebState;
use crate::ops::work::WorkItem;

/// The page's style sheet.
pub(crate) const APP_CSS: &str = include_str!("static/app.css");
/// The page's script (refreshes a household's status).
pub(crate) const APP_JS: &str = include_str!("static/app.js");

fn head(title: &str) -> String {
    format!(
        r#"<!doctype html><html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · sagak</title><link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head><body>"#,
        esc(title)
    )
}

/// A page of a logged-in person: the menu, who they are (and their
/// dong's name), log out.
pub(crate) fn layout(st: &WebState, title: &str, person: &Person, body: &str) -> String {
    let u = &person.user;
    let mut out = head(title);
    // a script sending JSON with the session cookie reads its token here
    if let Some(s) = &person.session {
        out = out.replacen(
            "</title>",
            &format!(
                r#"</title><meta name="csrf-token" content="{}">"#,
                esc(&s.csrf)
            ),
            1,
        );
    }
    let who = match (u.role, &u.dong) {
        (Role::Dong, Some(d)) => format!("{} · {}", esc(&u.name), esc(&st.dong_name(d).0)),
        _ => format!("{} · 시", esc(&u.name)),
    };
    let _ = write!(
        out,
        r#"<header><nav><a href="/queue">업무 목록 <span class="en">Work queue</span></a><a href="/lists">일일 목록 <span class="en">Daily lists</span></a><a href="/agenda">사례회의 <span class="en">Case meeting</span></a>"#
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
pub(crate) fn login(message: Option<&str>) -> String {
    let mut out = head("로그인 Log in");
    out.push_str(r#"<main class="login"><h1>sagak 로그인 <span class="en">Log in</span></h1>"#);
    if let Some(m) = message {
        let _ = write!(out, r#"<p class="error" id="login-error">{}</p>"#, esc(m));
    }
    out.push_str(r#"<form method="post" action="/login"><label>접속 토큰 <span class="en">Access token</span> <input type="password" name="token" id="token" autocomplete="off" required></label><button type="submit" id="login">로그인 Log in</button></form><p class="hint">토큰은 계정을 만들 때 한 번만 표시됩니다. 잃어버렸다면 관리자에게 새 계정을 요청하세요. <span class="en">The token is shown once when the account is made; if it is lost, ask for a new account.</span></p></main></body></html>"#);
    out
}

/// The status in Korean, coloured by its kind (`s-unreachable` red), and
/// the overdue mark.
pub(super) fn status_cell(item: &WorkItem) -> String {
    let s = &item.case;
    let mut out = format!(
        r#"<span class="status s-{}">{}</span>"#,
        s.status.as_str(),
        esc(&s.status_ko),
    );
    if item.overdue() {
        out.push_str(r#" <span class="overdue">기한초과</span>"#);
    }
    out
}

/// What is due next for a household (`D+12 초과`, `오늘 마감`,
/// `2회 시도, 다음 시도 11-03`), from its open work.
pub(super) fn step_cell(item: &WorkItem) -> String {
    let c = &item.case;
    if c.step_ko.is_empty() {
        return "-".into();
    }
    let class = if c.overdue() || c.unreachable_since.is_some() {
        "step late"
    } else {
        "step"
    };
    format!(r#"<span class="{class}">{}</span>"#, esc(&c.step_ko))
}

/// Why it was flagged, in Korean: its alert's reasons, or its categories.
pub(super) fn reasons(st: &WebState, item: &WorkItem) -> String {
    if item.reasons.is_empty() {
        let (_, ko) = st.categories.of(&item.case.categories);
        return ko.iter().map(|c| esc(c)).collect::<Vec<_>>().join("<br>");
    }
    item.reasons
        .iter()
        .map(|(ko, _)| esc(ko))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The household's outcomes: when, what (channel and result, services,
/// reason, track), who, the note, and a withdraw button per outcome.
pub(super) fn history(st: &WebState, body: &mut String, item: &WorkItem, csrf: Option<&str>) {
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
            Some(d) => format!(
                "{} ({})",
                esc(&d.staff_id),
                esc(&st.dong_name(&d.dong_code).0)
            ),
            None if o.by_city => "시".into(),
            None => "-".into(),
        };
        let _ = write!(
            body,
            r#"<li class="outcome" data-kind="{}"><span class="when">{}</span> · <b>{what}</b> · 기록 {who}"#,
            esc(&o.kind),
            st.local_time(o.recorded_at),
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
        body.push_str("<li>아직 없음</li>");
    }
    body.push_str("</ol>");
}

/// `<option>`s of wire names shown by their Korean labels, after a first
/// empty "choose" (nothing is chosen for a hurried click); `chosen` is
/// selected.
pub(super) fn options(
    st: &WebState,
    names: impl IntoIterator<Item = &'static str>,
    chosen: Option<&str>,
) -> String {
    labelled_options(names.into_iter().map(|n| (n, st.label(n))), chosen)
}

/// A blank "choose" option, then one per (value, Korean label),
/// `chosen` selected.
pub(crate) fn labelled_options<L: AsRef<str>>(
    pairs: impl IntoIterator<Item = (&'static str, L)>,
    chosen: Option<&str>,
) -> String {
    let mut out = String::from(r#"<option value="">선택하세요</option>"#);
    for (n, label) in pairs {
        let sel = if chosen == Some(n) { " selected" } else { "" };
        let _ = write!(
            out,
            r#"<option value="{n}"{sel}>{}</option>"#,
            esc(label.as_ref())
        );
    }
    out
}

/// One household: its alerts, status, history, and the outcome form.
pub(crate) fn household(
    st: &WebState,
    person: &Person,
    item: &WorkItem,
    notice: Option<&str>,
) -> String {
    household_page(st, person, item, notice, None)
}

/// The household's page after a refused outcome: the reason on the form,
/// what was typed kept.
pub(crate) fn household_refused(
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
    let (ko, _) = st.dong_name(&c.dong);
    let mut body = String::new();
    if let Some(n) = notice {
        let _ = write!(body, r#"<p class="notice" id="notice">{}</p>"#, esc(n));
    }
    let _ = write!(
        body,
        r#"<p class="actions"><a href="/visit?h={}" id="visit-sheet">방문 기록지 <span class="en">Visit sheet</span></a></p>"#,
        esc(&form_urlencoded::byte_serialize(item.household_id.as_bytes()).collect::<String>())
    );
    let _ = write!(
        body,
        r#"<dl class="facts" data-household="{id}"><dt>가구 <span class="en">Household</span></dt><dd id="household">{id}</dd><dt>동 <span class="en">Dong</span></dt><dd>{} ({})</dd><dt>상태 <span class="en">Status</span></dt><dd id="status" data-status="{}" data-outcomes="{}">{}</dd><dt>할 일 <span class="en">Next step</span></dt><dd id="step">{}</dd><dt>우선순위 <span class="en">Priority</span></dt><dd>{}</dd><dt>연락기한 <span class="en">Due</span></dt><dd>{}</dd><dt>실패한 시도 <span class="en">Failed attempts</span></dt><dd id="attempts">{}</dd><dt>알림 횟수 <span class="en">Times alerted</span></dt><dd>{}</dd><dt>사유 <span class="en">Reasons</span></dt><dd>{}</dd></dl>"#,
        esc(&ko),
        esc(&c.dong),
        c.status.as_str(),
        c.outcomes.len(),
        status_cell(item),
        step_cell(item),
        c.priority.map_or("-", |p| p.as_str()),
        item.due_at()
            .map(|t| st.local_time(t))
            .unwrap_or_else(|| "-".into()),
        c.attempts,
        c.times_flagged,
        reasons(st, item),
        id = esc(&item.household_id)
    );
    why_and_plan(st, &mut body, item);
    history(
        st,
        &mut body,
        item,
        person.session.as_ref().map(|s| s.csrf.as_str()),
    );
    let Some(session) = &person.session else {
        return layout(st, "가구 Household", person, &body);
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
<fieldset data-kind="contact_attempted"><legend>연락 시도 <span class="en">Contact attempt</span></legend><label>방법 <span class="en">Channel</span> <select name="channel" id="channel">{channels}</select></label><label>결과 <span class="en">Result</span> <select name="result" id="result">{results}</select></label></fieldset>
<fieldset data-kind="support_linked"><legend>서비스 연계 <span class="en">Services linked</span></legend>{services}</fieldset>
<fieldset data-kind="case_opened"><legend>선정 <span class="en">Track</span></legend><select name="track">{tracks}</select></fieldset>
<fieldset data-kind="not_applicable"><legend>비대상 사유 <span class="en">Reason</span></legend><select name="na_reason">{na}</select></fieldset>
<fieldset data-kind="case_closed"><legend>종결 사유 <span class="en">Reason</span></legend><select name="close_reason">{close}</select></fieldset>
<fieldset data-kind="withdrawn"><legend>철회할 기록 <span class="en">Outcome id to withdraw</span></legend><input name="withdraws" maxlength="64" value="{withdraws}"></fieldset>
<fieldset data-kind="case_plan"><legend>사례 계획 <span class="en">Case plan</span></legend>{plan}</fieldset>
<fieldset data-kind="case_reviewed"><legend>사례 점검 <span class="en">Case review</span></legend>{review}</fieldset>
<label>메모 <span class="en">Note</span> (500자 이내, 주민등록번호 금지) <textarea name="note" id="note" maxlength="500">{note}</textarea></label>
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
                    r#"<label class="check"><input type="checkbox" name="services" value="{0}"{2}> {1}</label>"#,
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
        plan = plan::plan_inputs(typed, crate::stages::case::outcome::MAX_GOALS),
        review = plan::review_inputs(item, typed),
        note = esc(value("note").unwrap_or_default()),
    );
    layout(st, "가구 Household", person, &body)
}

/// Why the household stands as it does (the same words as `sagak
/// explain`), and its case plan while in case management.
fn why_and_plan(st: &WebState, body: &mut String, item: &WorkItem) {
    let c = &item.case;
    let _ = write!(
        body,
        r#"<h2>왜 이 상태인가 <span class="en">Why this household</span></h2><pre id="why">{}</pre>"#,
        esc(&c.explained(&st.clock))
    );
    if c.managed.is_some() {
        let _ = write!(
            body,
            r#"<h2>사례 계획 <span class="en">Case plan</span></h2><div id="case-plan" class="plan">{}</div>"#,
            plan::plan_cell(item)
        );
    }
}

/// The daily lists: the city chooses a dong first; then one row per day
/// with its CSV (Excel) and Parquet (analysts) files.
pub(crate) fn lists(
    st: &WebState,
    person: &Person,
    dong: Option<&str>,
    days: &[(String, Vec<String>)],
) -> String {
    let mut body = String::from(
        r#"<p>날마다 만들어지는 목록입니다. CSV는 엑셀에서 열리고, Parquet는 분석용입니다.</p>"#,
    );
    if person.user.role == Role::City {
        body.push_str(&dong_picker(st, "/lists", dong, true));
    }
    let Some(dong) = dong else {
        body.push_str(r#"<p id="choose-dong">동을 고르면 그 동의 목록이 보입니다. 시 전체의 에스컬레이션 목록은 &lsquo;시 전체&rsquo;를 고르세요.</p>"#);
        return layout(st, "일일 목록 Daily lists", person, &body);
    };
    let (name, _) = if dong == CITY_LISTS {
        ("시 전체 (에스컬레이션·미배정)".to_string(), String::new())
    } else {
        st.dong_name(dong)
    };
    let _ = write!(
        body,
        r#"<table id="lists" class="cards"><caption>{}</caption><thead><tr><th>날짜 <span class="en">Date</span></th><th>목록 (엑셀) <span class="en">List (CSV)</span></th><th>분석용 <span class="en">Parquet</span></th></tr></thead><tbody>"#,
        esc(&name)
    );
    for (day, files) in days {
        let _ = write!(
            body,
            r#"<tr data-day="{d}"><td data-label="날짜">{d}</td>"#,
            d = esc(day)
        );
        for ext in [".csv", ".parquet"] {
            // the day's list first, then its cases
            let mut of_kind: Vec<&String> = files.iter().filter(|f| f.ends_with(ext)).collect();
            of_kind.sort_by_key(|f| (f.contains(".cases."), f.as_str()));
            let links: Vec<String> = of_kind
                .into_iter()
                .map(|f| {
                    format!(
                        r#"<a href="/lists/{d}/{f}" download>{}</a>"#,
                        esc(list_file_label(f)),
                        d = esc(day),
                        f = esc(f)
                    )
                })
                .collect();
            let label = if ext == ".csv" {
                "목록 (엑셀)"
            } else {
                "분석용"
            };
            let _ = write!(
                body,
                r#"<td data-label="{label}">{}</td>"#,
                links.join(" · ")
            );
        }
        body.push_str("</tr>");
    }
    if days.is_empty() {
        body.push_str(r#"<tr><td colspan="3">아직 목록이 없습니다.</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    layout(st, "일일 목록 Daily lists", person, &body)
}

/// The lists page's choice for the city-wide files (escalations,
/// unassigned households).
pub(crate) const CITY_LISTS: &str = "city";

/// What a list file holds, in Korean (`4125052000.cases.csv`: 사례관리).
fn list_file_label(file: &str) -> &str {
    let mut parts = file.split('.');
    match (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    ) {
        (_, "cases") => "사례관리 가구",
        ("escalations", _) => "에스컬레이션",
        ("unassigned", _) => "미배정 가구",
        (stem, _) if crate::base::ids::is_dong_code(stem) => "대상 가구",
        (stem, _) => stem,
    }
}

/// A form choosing a dong (the city's pages): `all` offers the city-wide
/// files too.
pub(super) fn dong_picker(st: &WebState, action: &str, chosen: Option<&str>, all: bool) -> String {
    let mut out = format!(
        r#"<form method="get" action="{action}" class="pick"><label>동 <span class="en">Dong</span> <select name="dong" id="dong-pick"><option value="">동 선택</option>"#
    );
    if all {
        let sel = if chosen == Some(CITY_LISTS) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<option value="{CITY_LISTS}"{sel}>시 전체 (에스컬레이션·미배정)</option>"#
        );
    }
    out.push_str(&dong_options(st, chosen));
    out.push_str(r#"</select></label><button type="submit">보기</button></form>"#);
    out
}

/// An option per served dong, by its Korean name, `chosen` selected.
pub(super) fn dong_options(st: &WebState, chosen: Option<&str>) -> String {
    let mut out = String::new();
    for d in &st.dongs {
        let sel = if chosen == Some(d.dong_code.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<option value="{}"{sel}>{}</option>"#,
            esc(&d.dong_code),
            esc(&d.name_ko)
        );
    }
    out
}

/// Links to the first, previous, next and last pages.
pub(super) fn paging(
    path: &str,
    page: usize,
    pages: usize,
    at: impl Fn(usize) -> String,
) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut out = String::from(r#"<nav class="paging">"#);
    let link = |p: usize, text: &str| format!(r#"<a href="{path}?{}">{text}</a>"#, esc(&at(p)));
    if page > 1 {
        out.push_str(&link(1, "« 처음"));
        out.push_str(&link(page - 1, "‹ 이전"));
    }
    let _ = write!(out, r#"<span class="at">{page} / {pages}</span>"#);
    if page < pages {
        out.push_str(&link(page + 1, "다음 ›"));
        out.push_str(&link(pages, "끝 »"));
    }
    out.push_str("</nav>");
    out
}
