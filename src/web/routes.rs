//! The web front's routes, middleware and connection loop (plain or TLS).

// A refusal is the response itself, returned early by the checks every
// handler makes; it is built once per refused request, never in a loop.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::audit::AuditEntry;
use super::auth::{csrf_ok, Person, COOKIE};
use super::users::Role;
use super::{form, guard, pages, WebState};
pub use crate::base::listener::Peer;
use crate::ops::work::WorkItem;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where a request came from.
struct Client {
    addr: IpAddr,
    forwarded_for: Option<String>,
}

fn client(st: &WebState, peer: &Peer, headers: &HeaderMap) -> Client {
    let addr = peer.0.ip();
    let forwarded_for = (st.trusted_proxy == Some(addr))
        .then(|| {
            headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .map(|v| v.trim().to_string())
        })
        .flatten();
    Client {
        addr,
        forwarded_for,
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The person behind a session cookie whose account is still active.
fn session_person(st: &WebState, headers: &HeaderMap) -> Option<Person> {
    let session = st.auth.session(&cookie_value(headers)?)?;
    let user = st.users.by_id(&session.user_id)?;
    Some(Person {
        user,
        session: Some(session),
    })
}

/// The person behind a request: a bearer token (API) or a session cookie.
fn person(st: &WebState, headers: &HeaderMap) -> Option<Person> {
    match bearer(headers) {
        Some(token) => st.users.by_token(token).map(|user| Person {
            user,
            session: None,
        }),
        None => session_person(st, headers),
    }
}

/// The address failed tokens are counted against: the client's, behind a
/// trusted proxy the one it forwarded for.
fn counted_address(from: &Client) -> IpAddr {
    from.forwarded_for
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(from.addr)
}

/// A refusal that is audited (without a person: the token was wrong, or
/// none was given), with `Retry-After` on a 429.
fn refused_anonymous(
    st: &WebState,
    from: &Client,
    action: &str,
    path: &str,
    status: StatusCode,
    api: bool,
    message: &str,
) -> Response {
    let mut r = match audit(st, None, from, action, path, vec![], None, status) {
        Ok(()) => fail(api, status, message),
        Err(refused) => refused,
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    r
}

/// `id` as the audit may name it: a household id, never an RRN typed into
/// the address (which names nobody).
fn household_named(id: &str) -> Vec<String> {
    let valid =
        crate::base::ids::is_pseudonymous_id(id) && !crate::base::ids::contains_rrn(id.as_bytes());
    if valid {
        vec![id.to_string()]
    } else {
        Vec::new()
    }
}

/// A fresh outcome id for an outcome recorded on a page: 32 random hex
/// digits, drawn again when a run of them is shaped like a resident
/// registration number (about one draw in 130): the pipeline would reject
/// the outcome, and the office's answer would be lost.
fn new_outcome_id() -> Result<String, super::users::UsersError> {
    loop {
        let bytes = super::users::random_bytes::<16>()?;
        let id = crate::stages::alert::hex_id("oc-", u128::from_be_bytes(bytes));
        if !crate::base::ids::contains_rrn(id.as_bytes()) {
            return Ok(id);
        }
    }
}

/// A refusal, as the kind of caller expects it.
fn fail(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        (status, axum::Json(json!({ "error": message }))).into_response()
    } else {
        let page = format!(
            r#"<!doctype html><html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head><body><main><h1>{} <span class="en">{} {}</span></h1><p class="error" id="error">{}</p><p><a href="/" id="back" data-back="1">이전 화면으로</a> · <a href="/">처음으로</a></p></main></body></html>"#,
            status.as_u16(),
            status_ko(status),
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            pages::esc(message)
        );
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response()
    }
}

/// What a refusal's status means, in Korean.
fn status_ko(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "입력을 확인하세요",
        401 => "로그인이 필요합니다",
        403 => "볼 수 없는 화면입니다",
        404 => "찾을 수 없습니다",
        409 => "지금 상태와 맞지 않습니다",
        429 => "요청이 너무 많습니다",
        503 => "잠시 후 다시 시도하세요",
        _ => "처리할 수 없습니다",
    }
}

/// Writes the audit line; a request that cannot be audited is refused.
#[allow(clippy::too_many_arguments)]
fn audit(
    st: &WebState,
    who: Option<&Person>,
    from: &Client,
    action: &str,
    path: &str,
    households: Vec<String>,
    file: Option<String>,
    status: StatusCode,
) -> Result<(), Response> {
    let entry = AuditEntry {
        user: who.map_or("-".into(), |p| p.user.id.clone()),
        role: who.map_or("-".into(), |p| p.user.role.as_str().into()),
        dong: who.and_then(|p| p.user.dong.clone()),
        client: from.addr.to_string(),
        forwarded_for: from.forwarded_for.clone(),
        action: action.into(),
        path: path.into(),
        households,
        file,
        status: status.as_u16(),
        ..AuditEntry::default()
    };
    st.audit.write(entry).map_err(|e| {
        tracing::error!(error = %e, "the audit log cannot be written: refusing household data");
        fail(
            path.starts_with("/api/"),
            StatusCode::SERVICE_UNAVAILABLE,
            "감사 기록을 남길 수 없어 가구 정보를 보여 줄 수 없습니다. 운영 담당자에게 알리세요. (The audit log cannot be written, so no household data is served; the operator must fix web.audit_dir.)",
        )
    })
}

/// Answers `page` to `who`, audited; an unaudited answer is never sent.
#[allow(clippy::too_many_arguments)]
fn audited(
    st: &WebState,
    who: &Person,
    from: &Client,
    action: &str,
    path: &str,
    households: Vec<String>,
    file: Option<String>,
    page: Response,
) -> Response {
    match audit(
        st,
        Some(who),
        from,
        action,
        path,
        households,
        file,
        page.status(),
    ) {
        Ok(()) => page,
        Err(refused) => refused,
    }
}

/// A 403, audited with the person's id.
fn denied(
    st: &WebState,
    who: &Person,
    from: &Client,
    path: &str,
    households: Vec<String>,
    api: bool,
) -> Response {
    let page = fail(
        api,
        StatusCode::FORBIDDEN,
        "다른 동 담당의 가구나 목록입니다. 이 시도는 기록됩니다. (This household or list belongs to another dong's office; the attempt is recorded.)",
    );
    audited(st, who, from, "denied", path, households, None, page)
}

/// A page for the city team only, asked for by an office: a 403 saying
/// so, audited.
fn city_only(st: &WebState, who: &Person, from: &Client, path: &str, api: bool) -> Response {
    let page = fail(
        api,
        StatusCode::FORBIDDEN,
        "시 통합조사팀 계정만 볼 수 있는 화면입니다. 동 업무는 업무 목록에서 보세요. (This page is for the city team; an office works from its work queue.)",
    );
    audited(st, who, from, "denied", path, vec![], None, page)
}

fn html(page: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn login_redirect() -> Response {
    Redirect::to("/login").into_response()
}

/// A known person's request: who, from where, and whether it is the
/// JSON API (bearer token or `/api/`), whose refusals are JSON. A stranger
/// is sent to the login page (401 for the API).
struct Caller {
    who: Person,
    from: Client,
    api: bool,
}

impl axum::extract::FromRequestParts<Arc<WebState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &Arc<WebState>,
    ) -> Result<Self, Response> {
        let path = parts.uri.path().to_string();
        let api = path.starts_with("/api/") || bearer(&parts.headers).is_some();
        let peer = parts
            .extensions
            .get::<Peer>()
            .copied()
            .unwrap_or(Peer(SocketAddr::from(([0, 0, 0, 0], 0))));
        let from = client(st, &peer, &parts.headers);
        let who = match bearer(&parts.headers) {
            Some(token) => bearer_person(st, &from, token, &path)?,
            None => match session_person(st, &parts.headers) {
                Some(who) => who,
                None if api => {
                    return Err(fail(
                        true,
                        StatusCode::UNAUTHORIZED,
                        "send Authorization: Bearer <your token>",
                    ))
                }
                None => return Err(login_redirect()),
            },
        };
        if parts.method == axum::http::Method::POST {
            forgery_check(st, &who, &from, &parts.headers, &path, api)?;
        }
        if !st.gate.account_may(&who.user.id) {
            let page = fail(
                api,
                StatusCode::TOO_MANY_REQUESTS,
                "이 계정의 요청이 1분에 너무 많습니다. 잠시 후 다시 하세요. (Too many requests from this account this minute.)",
            );
            let mut r = audited(st, &who, &from, "limited", &path, vec![], None, page);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return Err(r);
        }
        Ok(Caller { who, from, api })
    }
}

/// The account of a bearer token. A wrong token is audited and counted
/// against its address, which is answered 429 for wrong tokens after too
/// many; a right token is never refused for its address's failures (the
/// people behind one NAT address are not locked out by one of them).
fn bearer_person(
    st: &WebState,
    from: &Client,
    token: &str,
    path: &str,
) -> Result<Person, Response> {
    if let Some(user) = st.users.by_token(token) {
        return Ok(Person {
            user,
            session: None,
        });
    }
    let address = counted_address(from);
    let (status, message) = match st.auth.may_try(address) {
        Ok(()) => {
            st.auth.failed(address);
            (
                StatusCode::UNAUTHORIZED,
                "the token is wrong or the account was revoked",
            )
        }
        Err(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong tokens from this address: wait a minute",
        ),
    };
    Err(refused_anonymous(
        st,
        from,
        "token_failed",
        path,
        status,
        true,
        message,
    ))
}

/// A state-changing request with a session cookie must come from this
/// front's own pages: a foreign `Origin` is refused; the JSON API also
/// needs an `Origin`, a JSON body and the session's CSRF token in
/// `X-CSRF-Token` (the pages' forms carry theirs in the form, checked by
/// the handler). A bearer token is not sent by a browser on its own, so
/// the API with one needs none of this.
fn forgery_check(
    st: &WebState,
    who: &Person,
    from: &Client,
    headers: &HeaderMap,
    path: &str,
    api: bool,
) -> Result<(), Response> {
    let Some(session) = &who.session else {
        return Ok(());
    };
    let problem = if !guard::origin_ok(headers, st.secure, api) {
        Some("요청의 출처(Origin)가 이 사이트가 아닙니다. (The request's Origin is not this site.)")
    } else if api && !guard::is_json(headers) {
        Some("Content-Type must be application/json")
    } else if api {
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        (!csrf_ok(session, given)).then_some(
            "with a session cookie, send the session's CSRF token in X-CSRF-Token (or use Authorization: Bearer)",
        )
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(message) => {
            let page = fail(api, StatusCode::FORBIDDEN, message);
            Err(audited(
                st,
                who,
                from,
                "forgery_refused",
                path,
                vec![],
                None,
                page,
            ))
        }
    }
}

async fn home(State(st): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    match person(&st, &headers) {
        Some(p) if p.user.role == Role::City => Redirect::to("/city").into_response(),
        Some(_) => Redirect::to("/queue").into_response(),
        None => login_redirect(),
    }
}

async fn login_page() -> Response {
    html(pages::login(None))
}

fn form_fields(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn login(
    State(st): State<Arc<WebState>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = client(&st, &peer, &headers);
    if !guard::origin_ok(&headers, st.secure, false) {
        return refused_anonymous(
            &st,
            &from,
            "login_refused",
            "/login",
            StatusCode::FORBIDDEN,
            false,
            "다른 사이트에서 보낸 로그인입니다. 이 사이트의 로그인 화면에서 하세요. (The login came from another site.)",
        );
    }
    let fields = form_fields(&body);
    let token = field(&fields, "token").unwrap_or_default().trim();
    let Some(user) = st.users.by_token(token) else {
        return login_failed(&st, &from);
    };
    let Some(id) = st.auth.start(&user) else {
        return fail(
            false,
            StatusCode::SERVICE_UNAVAILABLE,
            "no session can be made: the system has no random numbers",
        );
    };
    let who = Person {
        user,
        session: None,
    };
    if let Err(r) = audit(
        &st,
        Some(&who),
        &from,
        "login",
        "/login",
        vec![],
        None,
        StatusCode::SEE_OTHER,
    ) {
        return r;
    }
    let cookie = cookie::Cookie::build((COOKIE, id))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(st.secure)
        .path("/")
        .build();
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A wrong token on the login page: counted against its address, which
/// gets 429 after too many (a right token still logs in); audited either
/// way.
fn login_failed(st: &WebState, from: &Client) -> Response {
    let address = counted_address(from);
    if let Err(wait) = st.auth.may_try(address) {
        let message = format!("이 주소에서 로그인 실패가 너무 많습니다. {wait}초 뒤에 다시 하세요. (Too many failed logins from this address: try again in {wait} s.)");
        return refused_anonymous(
            st,
            from,
            "login_failed",
            "/login",
            StatusCode::TOO_MANY_REQUESTS,
            false,
            &message,
        );
    }
    st.auth.failed(address);
    if let Err(r) = audit(
        st,
        None,
        from,
        "login_failed",
        "/login",
        vec![],
        None,
        StatusCode::UNAUTHORIZED,
    ) {
        return r;
    }
    let page = pages::login(Some(
        "토큰이 맞지 않거나 폐기된 계정입니다. (The token is wrong or the account was revoked.)",
    ));
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

async fn logout(State(st): State<Arc<WebState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(who) = person(&st, &headers) else {
        return login_redirect();
    };
    let fields = form_fields(&body);
    let (Some(session), Some(id)) = (&who.session, cookie_value(&headers)) else {
        return login_redirect();
    };
    if !guard::origin_ok(&headers, st.secure, false) {
        return fail(
            false,
            StatusCode::FORBIDDEN,
            "요청의 출처(Origin)가 이 사이트가 아닙니다. (The request's Origin is not this site.)",
        );
    }
    if !csrf_ok(session, field(&fields, "csrf").unwrap_or_default()) {
        return fail(
            false,
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page and try again",
        );
    }
    st.auth.end(&id);
    let gone = cookie::Cookie::build((COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(st.secure)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut r = login_redirect();
    if let Ok(v) = HeaderValue::from_str(&gone.to_string()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The dong whose queue is asked for: one's own; the city names one (the
/// first served without a name). An unknown code is `Err(None)` (404),
/// another office's `Err(Some)` (403).
fn queue_dong(st: &WebState, who: &Person, asked: Option<&str>) -> Result<String, Option<String>> {
    let asked = asked.map(str::trim).filter(|d| !d.is_empty());
    if let Some(d) = asked {
        if !st.dongs.iter().any(|x| x.dong_code == d) {
            return Err(None);
        }
    }
    match (who.user.role, asked) {
        (Role::Dong, None) => who.user.dong.clone().ok_or(None),
        (_, Some(d)) if who.sees_dong(d) => Ok(d.to_string()),
        (Role::City, None) => st.dongs.first().map(|d| d.dong_code.clone()).ok_or(None),
        (_, Some(d)) => Err(Some(d.to_string())),
    }
}

fn queue_json(st: &WebState, dong: &str, sel: &super::queue::Selection, now: i64) -> Value {
    json!({
        "dong_code": dong,
        "name_ko": st.dong_name(dong).0,
        "now": crate::stages::alert::rfc3339(now),
        "open": sel.open,
        "overdue": sel.overdue,
        "unreachable": sel.unreachable,
        "in_case": sel.in_case,
        "all": sel.all,
        "matched": sel.matched,
        "page": sel.page,
        "pages": sel.pages,
        "page_rows": super::queue::PAGE_ROWS,
        "households": sel.rows.iter().map(|(place, i)| {
            let mut h = household_json(st, i);
            h["place"] = json!((*place > 0).then_some(*place));
            h
        }).collect::<Vec<_>>(),
    })
}

fn household_json(st: &WebState, i: &WorkItem) -> Value {
    let c = &i.case;
    let time = |t: Option<i64>| t.map(crate::stages::alert::rfc3339);
    json!({
        "household_id": i.household_id,
        "dong_code": c.dong,
        "status": c.status.as_str(),
        "status_ko": c.status_ko,
        "open": c.open(),
        "tier": c.tier.map(|t| t.as_str()),
        "overdue": c.overdue(),
        "overdue_days": c.overdue_days,
        "next_step_ko": c.step_ko,
        "next_step": c.step_en,
        "priority": c.priority.map(|p| p.as_str()),
        "score": i.score,
        "due_at": time(c.due_at),
        "attempts": c.attempts,
        "last_attempt_at": time(c.last_attempt_at),
        "next_attempt_at": time(c.next_attempt_at.filter(|_| c.open())),
        "unreachable_since": time(c.unreachable_since),
        "repeatedly_flagged": c.repeatedly_flagged,
        "held_until": time(c.hold_until),
        "services": c.services,
        "categories": c.categories,
        "reasons_ko": i.reasons.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        "reasons": i.reasons.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        "open_alerts": c.open_alerts.iter().map(|a| json!({
            "alert_id": a.alert_id,
            "priority": a.priority.as_str(),
            "emitted_at": crate::stages::alert::rfc3339(a.emitted_at),
            "due_at": crate::stages::alert::rfc3339(a.due_at),
        })).collect::<Vec<_>>(),
        "outcomes": c.outcomes.iter().map(|o| {
            let d = i.details.iter().rev().find(|d| d.key == o.key);
            json!({
                "outcome_id": d.map(|d| d.outcome_id.clone()),
                "kind": o.kind,
                "label": o.label,
                "channel": o.channel,
                "services": o.services,
                "staff_id": d.map(|d| d.staff_id.clone()),
                "recorded_by": d.map(|d| d.dong_code.clone()),
                "note": d.and_then(|d| d.note.clone()),
                "recorded_at": crate::stages::alert::rfc3339(o.recorded_at),
                "recorded_at_local": st.local_time(o.recorded_at),
            })
        }).collect::<Vec<_>>(),
        "in_case_since": time(c.in_case_since),
        "case_age_days": c.case_age_days,
        "times_flagged": c.times_flagged,
    })
}

async fn queue(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<super::queue::QueueQuery>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    let dong = match queue_dong(&st, &who, q.dong.as_deref()) {
        Ok(d) => d,
        Err(Some(_)) => return denied(&st, &who, &from, path, vec![], api),
        Err(None) => {
            let page = fail(
                api,
                StatusCode::NOT_FOUND,
                "그런 동이 없습니다. (No such dong.)",
            );
            return audited(&st, &who, &from, "view_queue", path, vec![], None, page);
        }
    };
    let filters = match q.filters() {
        Ok(f) => f,
        Err(message) => {
            let page = fail(api, StatusCode::BAD_REQUEST, &message);
            return audited(&st, &who, &from, "view_queue", path, vec![], None, page);
        }
    };
    let now = st.ops.work.now_ms();
    let items = st.ops.work.of_dong(&dong);
    let sel = filters.select(&items);
    // exactly the households on the page (or in the answer)
    let shown: Vec<String> = sel
        .rows
        .iter()
        .map(|(_, i)| i.household_id.clone())
        .collect();
    let page = if api {
        axum::Json(queue_json(&st, &dong, &sel, now)).into_response()
    } else {
        html(super::queue::page(&st, &who, &dong, &filters, &sel, now))
    };
    audited(&st, &who, &from, "view_queue", path, shown, None, page)
}

/// A visit sheet of the households ticked (`?h=ID&h=ID`), each checked as
/// its own page is.
async fn visit(State(st): State<Arc<WebState>>, caller: Caller, uri: axum::http::Uri) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    let ids: Vec<String> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "h")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > super::queue::SHEET_MOST {
        let message = format!(
            "방문 기록지에 넣을 가구를 1~{}가구 고르세요. (Choose 1 to {} households.)",
            super::queue::SHEET_MOST,
            super::queue::SHEET_MOST
        );
        let page = fail(api, StatusCode::BAD_REQUEST, &message);
        return audited(
            &st,
            &who,
            &from,
            "view_visit_sheet",
            path,
            vec![],
            None,
            page,
        );
    }
    let mut items = Vec::new();
    for id in &ids {
        match visible(&st, &who, &from, id, path, api) {
            Ok(i) => items.push(i),
            Err(refused) => return refused,
        }
    }
    let now = st.ops.work.now_ms();
    let page = html(super::queue::visit_sheet(&st, &who, &items, now));
    let shown = items.iter().map(|i| i.household_id.clone()).collect();
    audited(
        &st,
        &who,
        &from,
        "view_visit_sheet",
        path,
        shown,
        None,
        page,
    )
}

/// The household `id` if `who` may see it, or the refusal (404, 403).
fn visible(
    st: &WebState,
    who: &Person,
    from: &Client,
    id: &str,
    path: &str,
    api: bool,
) -> Result<Arc<WorkItem>, Response> {
    let listed = || {
        let dongs: Vec<String> = match (who.user.role, &who.user.dong) {
            (Role::City, _) => st.dongs.iter().map(|d| d.dong_code.clone()).collect(),
            (Role::Dong, Some(d)) => vec![d.clone()],
            (Role::Dong, None) => Vec::new(),
        };
        listed_dong(&st.lists_dir, &dongs, id).map(|dong| st.ops.work.listed(id, &dong))
    };
    // what is not a household id (an RRN typed into the address, say) is
    // refused before anything names it: the audit keeps the path masked
    if !crate::base::ids::is_pseudonymous_id(id) || crate::base::ids::contains_rrn(id.as_bytes()) {
        let page = fail(
            api,
            StatusCode::BAD_REQUEST,
            "가구 ID가 아닙니다. 주민등록번호는 입력하지 마세요. (Not a household id; never type a resident registration number.)",
        );
        return Err(audited(
            st,
            who,
            from,
            "view_household",
            path,
            vec![],
            None,
            page,
        ));
    }
    // a household on the newest list with no case record yet (never
    // alerted: a backfill's, say) still opens, to record what was done
    let Some(item) = st.ops.work.get(id).or_else(listed) else {
        let page = fail(
            api,
            StatusCode::NOT_FOUND,
            "업무 목록에 없는 가구입니다 (알림·사례·최근 활동 없음). (No such household in the work queue.)",
        );
        return Err(audited(
            st,
            who,
            from,
            "view_household",
            path,
            vec![id.to_string()],
            None,
            page,
        ));
    };
    let allowed = match (who.user.role, who.user.dong.as_deref()) {
        (Role::City, _) => true,
        (Role::Dong, Some(d)) => item.visible_to(d),
        (Role::Dong, None) => false,
    };
    if !allowed {
        return Err(denied(st, who, from, path, vec![id.to_string()], api));
    }
    Ok(item)
}

/// The dong among `dongs` on whose newest daily list (or cases list)
/// household `id` is.
fn listed_dong(lists_dir: &Path, dongs: &[String], id: &str) -> Option<String> {
    let newest = std::fs::read_dir(lists_dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|d| is_day(d))
        .max()?;
    let day = lists_dir.join(newest);
    dongs
        .iter()
        .find(|dong| {
            [format!("{dong}.csv"), format!("{dong}.cases.csv")]
                .iter()
                .any(|file| {
                    std::fs::read_to_string(day.join(file)).is_ok_and(|text| {
                        text.lines()
                            .skip(1)
                            .any(|l| l.split(',').nth(1) == Some(id))
                    })
                })
        })
        .cloned()
}

async fn household(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let item = match visible(&st, &who, &from, &id, uri.path(), api) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let notice = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "recorded")
            .map(|_| "기록되었습니다. 몇 초 안에 상태에 반영됩니다. (Recorded; the status follows within seconds.)")
    });
    let page = if api {
        axum::Json(household_json(&st, &item)).into_response()
    } else {
        html(pages::household(&st, &who, &item, notice))
    };
    audited(
        &st,
        &who,
        &from,
        "view_household",
        uri.path(),
        vec![id],
        None,
        page,
    )
}

async fn record_outcome(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Caller { who, from, api } = caller;
    let r = Recording {
        st: &st,
        who: &who,
        from: &from,
        path: uri.path(),
        id: &id,
        api,
    };
    let fields = match r.fields(&body) {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    let item = match visible(&st, &who, &from, &id, uri.path(), api) {
        Ok(i) => i,
        Err(refused) => return refused,
    };
    match r.checked(&item, &fields) {
        Ok((outcome_id, bytes)) => r.publish(outcome_id, bytes).await,
        Err(refused) => refused,
    }
}

/// One outcome being recorded from a page or the API.
struct Recording<'a> {
    st: &'a WebState,
    who: &'a Person,
    from: &'a Client,
    path: &'a str,
    id: &'a str,
    api: bool,
}

impl Recording<'_> {
    /// The fields of the request: JSON from the API, a form (with its CSRF
    /// token checked) from a page.
    fn fields(&self, body: &Bytes) -> Result<Vec<(String, String)>, Response> {
        if self.api {
            return serde_json::from_slice::<Value>(body)
                .map_err(|e| format!("the body is not JSON: {e}"))
                .and_then(|v| form::fields_of_json(&v))
                .map_err(|e| fail(true, StatusCode::BAD_REQUEST, &e));
        }
        let fields = form_fields(body);
        let ok = self
            .who
            .session
            .as_ref()
            .is_some_and(|s| csrf_ok(s, field(&fields, "csrf").unwrap_or_default()));
        if !ok {
            return Err(self.refused(fail(
                false,
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong: reload the page and record again",
            )));
        }
        Ok(fields)
    }

    /// An audited refusal.
    fn refused(&self, page: Response) -> Response {
        let (st, who, from) = (self.st, self.who, self.from);
        let shown = household_named(self.id);
        audited(
            st,
            who,
            from,
            "record_outcome_refused",
            self.path,
            shown,
            None,
            page,
        )
    }

    /// The outcome's id and JSON, or the refusal: the form's fields, the
    /// pipeline's own decoder, then its case rules against the household's
    /// record (400, or 409 for a case that is or is not open), in Korean and
    /// English; on a page, on the form with what was typed kept.
    fn checked(
        &self,
        item: &WorkItem,
        fields: &[(String, String)],
    ) -> Result<(String, Vec<u8>), Response> {
        let st = self.st;
        let dong_code = match self.who.user.role {
            Role::City => st.city_code.clone(),
            Role::Dong => self.who.user.dong.clone().unwrap_or_default(),
        };
        let outcome_id = new_outcome_id()
            .map_err(|e| fail(self.api, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
        let now = st.ops.work.now_ms();
        let by = form::Recorder {
            staff_id: &self.who.user.id,
            dong_code: &dong_code,
            now_ms: now,
            outcome_id: outcome_id.clone(),
        };
        let value = form::outcome_value(fields, &item.household_id, &by)
            .map_err(|e| self.on_form(item, fields, StatusCode::BAD_REQUEST, &e, None))?;
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let key = Some(self.id.as_bytes());
        crate::stages::case::outcome::decode(key, Some(&bytes), now, st.max_future_ms)
            .and_then(|o| st.ops.work.check(&o))
            .map_err(|reject| {
                use crate::stages::decode::RejectClass;
                let status = match reject.class {
                    RejectClass::NoOpenCase | RejectClass::CaseAlreadyOpen => StatusCode::CONFLICT,
                    _ => StatusCode::BAD_REQUEST,
                };
                let ko = crate::stages::case::rules::refusal_ko(reject.class);
                let class = reject.class.as_str();
                // the page says it in Korean, with the English beside; an
                // RRN's reason is not repeated (it speaks of dead letters)
                let message = match reject.class {
                    RejectClass::ResidentRegistrationNumber => format!("{ko} (A number shaped like a resident registration number was typed: remove it.)"),
                    _ => format!("{ko} ({})", reject.reason),
                };
                let json = json!({ "error": message, "class": class, "reason_ko": ko, "reason": reject.reason });
                self.on_form(item, fields, status, &message, Some(json))
            })?;
        Ok((outcome_id, bytes))
    }

    /// A refusal: `json` (or the message) for the API; the household's page
    /// with the reason on the form for a person.
    fn on_form(
        &self,
        item: &WorkItem,
        fields: &[(String, String)],
        status: StatusCode,
        message: &str,
        json: Option<Value>,
    ) -> Response {
        if self.api {
            let body = json.unwrap_or_else(|| json!({ "error": message }));
            return (status, axum::Json(body)).into_response();
        }
        self.refused(refused_on_form(
            self.st, self.who, item, fields, status, message,
        ))
    }

    /// Audits, publishes, and answers 202 (API) or back to the household.
    async fn publish(&self, outcome_id: String, bytes: Vec<u8>) -> Response {
        let (st, who, from, id) = (self.st, self.who, self.from, self.id);
        let shown = || vec![id.to_string()];
        let accepted = StatusCode::ACCEPTED;
        if let Err(r) = audit(
            st,
            Some(who),
            from,
            "record_outcome",
            self.path,
            shown(),
            None,
            accepted,
        ) {
            return r;
        }
        if let Err(e) = st.publisher.publish(id, bytes).await {
            tracing::error!(error = %e, "an outcome could not be published");
            // the line above said it was taken: this one says it was not
            let failed = StatusCode::SERVICE_UNAVAILABLE;
            let _ = audit(
                st,
                Some(who),
                from,
                "record_outcome_failed",
                self.path,
                shown(),
                None,
                failed,
            );
            return fail(self.api, failed, "the outcome could not be sent to the pipeline; nothing was recorded, try again in a moment");
        }
        if self.api {
            (accepted, axum::Json(json!({ "outcome_id": outcome_id }))).into_response()
        } else {
            Redirect::to(&format!(
                "/households/{}?recorded={outcome_id}",
                urlencode(id)
            ))
            .into_response()
        }
    }
}

/// The household's page again, with the refusal on the form and what was
/// typed kept.
fn refused_on_form(
    st: &WebState,
    who: &Person,
    item: &WorkItem,
    fields: &[(String, String)],
    status: StatusCode,
    message: &str,
) -> Response {
    // a number shaped like a resident registration number is not echoed
    let kept: Vec<(String, String)> = fields
        .iter()
        .filter(|(_, v)| !crate::base::ids::contains_rrn(v.as_bytes()))
        .cloned()
        .collect();
    let page = pages::household_refused(st, who, item, &kept, message);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The list files of `dir` that `who` may download.
fn list_files(who: &Person, dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|f| may_download(who, f))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A dong office downloads its own dong's files; the city every list.
fn may_download(who: &Person, file: &str) -> bool {
    let list_file = file.ends_with(".csv") || file.ends_with(".parquet");
    if !list_file || file.contains('/') || file.starts_with('.') {
        return false;
    }
    // a list file is named after its dong (`4125052000.cases.csv`)
    file.split('.')
        .next()
        .is_some_and(|list| who.sees_dong(list))
}

fn is_day(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

async fn lists(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<super::city::CityQuery>,
) -> Response {
    let Caller { who, from, api } = caller;
    // an office sees its own; the city chooses a dong (or the city-wide files)
    let chosen = match (who.user.role, q.dong.as_deref().map(str::trim)) {
        (Role::Dong, _) => who.user.dong.clone(),
        (Role::City, Some(d))
            if d == pages::CITY_LISTS || st.dongs.iter().any(|x| x.dong_code == d) =>
        {
            Some(d.to_string())
        }
        (Role::City, None | Some("")) => None,
        (Role::City, Some(_)) => {
            let page = fail(
                api,
                StatusCode::NOT_FOUND,
                "그런 동이 없습니다. (No such dong.)",
            );
            return audited(&st, &who, &from, "view_lists", "/lists", vec![], None, page);
        }
    };
    let days: Vec<(String, Vec<String>)> = match &chosen {
        None => Vec::new(),
        Some(dong) => list_days(&st.lists_dir)
            .into_iter()
            .map(|d| {
                let files = list_files(&who, &st.lists_dir.join(&d))
                    .into_iter()
                    .filter(|f| file_of(f, dong))
                    .collect();
                (d, files)
            })
            .filter(|(_, f): &(String, Vec<String>)| !f.is_empty())
            .collect(),
    };
    let page = html(pages::lists(&st, &who, chosen.as_deref(), &days));
    audited(&st, &who, &from, "view_lists", "/lists", vec![], None, page)
}

/// The days with lists, newest first.
fn list_days(dir: &Path) -> Vec<String> {
    let mut days: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|d| is_day(d))
                .collect()
        })
        .unwrap_or_default();
    days.sort_by(|a, b| b.cmp(a));
    days
}

/// Whether list file `file` is of `dong` (or, for the city-wide choice, one
/// named after no dong: escalations, unassigned).
fn file_of(file: &str, dong: &str) -> bool {
    let stem = file.split('.').next().unwrap_or_default();
    if dong == pages::CITY_LISTS {
        !crate::base::ids::is_dong_code(stem)
    } else {
        stem == dong
    }
}

/// The households a list file names (the CSV's second column, the
/// Parquet's `household_id`): a download is audited with every one, so
/// `sagak audit --household` finds who took a list that held it.
fn households_in(file: &str, bytes: &[u8]) -> Vec<String> {
    let mut out = if file.ends_with(".csv") {
        csv_households(bytes)
    } else {
        parquet_households(bytes)
    };
    out.sort();
    out.dedup();
    out
}

fn csv_households(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(at) = header.split(',').position(|h| h.ends_with("household_id")) else {
        return Vec::new();
    };
    // ids are [A-Za-z0-9_-] (never quoted); a neutralised one starts with '
    lines
        .filter_map(|l| l.split(',').nth(at))
        .map(|h| h.trim_start_matches('\'').to_string())
        .filter(|h| crate::base::ids::is_pseudonymous_id(h))
        .collect()
}

fn parquet_households(bytes: &[u8]) -> Vec<String> {
    use arrow::array::AsArray;
    let Ok(reader) = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        Bytes::copy_from_slice(bytes),
    )
    .and_then(|b| b.build()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for batch in reader.flatten() {
        let Some(col) = batch.column_by_name("household_id") else {
            continue;
        };
        if let Ok(col) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) {
            out.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
        }
    }
    out
}

async fn download(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath((day, file)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    if !is_day(&day) || file.contains('/') || file.contains("..") {
        let page = fail(
            api,
            StatusCode::BAD_REQUEST,
            "목록 주소는 /lists/YYYY-MM-DD/<파일>입니다. (A list is /lists/YYYY-MM-DD/<file>.)",
        );
        return audited(
            &st,
            &who,
            &from,
            "download_list",
            uri.path(),
            vec![],
            None,
            page,
        );
    }
    let name = format!("{day}/{file}");
    if !may_download(&who, &file) {
        let page = fail(
            api,
            StatusCode::FORBIDDEN,
            "다른 동의 목록입니다. 이 시도는 기록됩니다. (This list belongs to another dong's office; the attempt is recorded.)",
        );
        return audited(
            &st,
            &who,
            &from,
            "denied",
            uri.path(),
            vec![],
            Some(name),
            page,
        );
    }
    let Ok(bytes) = std::fs::read(st.lists_dir.join(&day).join(&file)) else {
        let page = fail(
            api,
            StatusCode::NOT_FOUND,
            "그런 목록 파일이 없습니다 (보관 기간이 지났을 수 있습니다). (No such list file.)",
        );
        return audited(
            &st,
            &who,
            &from,
            "download_list",
            uri.path(),
            vec![],
            Some(name),
            page,
        );
    };
    let households = households_in(&file, &bytes);
    let kind = if file.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/vnd.apache.parquet"
    };
    let disposition = format!("attachment; filename=\"{day}-{file}\"");
    let page = (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response();
    audited(
        &st,
        &who,
        &from,
        "download_list",
        uri.path(),
        households,
        Some(name),
        page,
    )
}

/// Every `household_id` string anywhere in `v`.
fn household_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("household_id", Value::String(h)) => out.push(h.clone()),
                    _ => household_ids(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| household_ids(x, out)),
        _ => {}
    }
}

async fn city(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<super::city::CityQuery>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    if who.user.role != Role::City {
        return city_only(&st, &who, &from, uri.path(), api);
    }
    if let Err(message) = q.check(&st) {
        let page = fail(api, StatusCode::BAD_REQUEST, &message);
        return audited(
            &st,
            &who,
            &from,
            "view_city",
            uri.path(),
            vec![],
            None,
            page,
        );
    }
    let now = st.ops.work.now_ms();
    let served: std::collections::HashSet<&str> =
        st.dongs.iter().map(|d| d.dong_code.as_str()).collect();
    let mut unassigned = st.ops.work.unassigned(&served);
    let unassigned_total = unassigned.len();
    unassigned.truncate(super::city::UNASSIGNED_SHOWN);
    let (rows, kept, matched, page_no, pages_n) = super::city::select(&st, &q);
    // exactly the households shown: this page's escalations and the
    // unassigned ones
    let mut shown: Vec<String> = rows
        .iter()
        .map(|r| r.e.household_id.clone())
        .chain(unassigned.iter().map(|i| i.household_id.clone()))
        .collect();
    let page = if api {
        let mut data = crate::ops::http::dashboard_data(&st.ops);
        data["escalations"] = rows.iter().map(|r| super::city::row_json(&st, r)).collect();
        data["escalations_kept"] = json!(kept);
        data["escalations_matched"] = json!(matched);
        data["page"] = json!(page_no);
        data["pages"] = json!(pages_n);
        data["unassigned"] = unassigned.iter().map(|i| household_json(&st, i)).collect();
        data["unassigned_total"] = json!(unassigned_total);
        // the boards' top households are named too
        household_ids(&data["dongs"], &mut shown);
        axum::Json(data).into_response()
    } else {
        let view = super::city::CityView {
            q: &q,
            rows: &rows,
            counts: (kept, matched, page_no, pages_n),
            unassigned: (&unassigned, unassigned_total),
            now,
        };
        html(super::city::page(&st, &who, &view))
    };
    shown.sort();
    shown.dedup();
    audited(&st, &who, &from, "view_city", uri.path(), shown, None, page)
}

/// The fields of a body: JSON from the API (`{"state":"taken"}`), a form
/// from a page.
fn json_or_form(api: bool, body: &Bytes) -> Vec<(String, String)> {
    match api {
        true => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| form::fields_of_json(&v).ok())
            .unwrap_or_default(),
        false => form_fields(body),
    }
}

/// Back to the city's console at the filters and page the form came from
/// (`back`: a query string, nothing else).
fn back_to_city(back: Option<&str>) -> Response {
    let back = back
        .filter(|b| {
            b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"=&_%-+.".contains(&c))
        })
        .unwrap_or("page=1");
    Redirect::to(&format!("/city?{back}#escalations-head")).into_response()
}

/// The city team takes an escalation (`state=taken`) or gives it back
/// (`state=open`), from the page's form; kept for every instance.
async fn set_escalation(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    if who.user.role != Role::City {
        return city_only(&st, &who, &from, path, api);
    }
    let refuse = |status: StatusCode, message: &str, households: Vec<String>| {
        let page = fail(api, status, message);
        audited(
            &st,
            &who,
            &from,
            "set_escalation_state",
            path,
            households,
            None,
            page,
        )
    };
    let fields = json_or_form(api, &body);
    let csrf = who
        .session
        .as_ref()
        .is_some_and(|s| csrf_ok(s, field(&fields, "csrf").unwrap_or_default()));
    if !csrf && !api {
        return refuse(StatusCode::FORBIDDEN, "양식이 오래되었습니다. 화면을 새로 고친 뒤 다시 하세요. (The form's CSRF token is missing or wrong.)", vec![]);
    }
    let state = field(&fields, "state").unwrap_or_default();
    let Some(e) = st
        .ops
        .live
        .escalations()
        .into_iter()
        .find(|e| e.escalation_id == id)
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            "그런 에스컬레이션이 없습니다. (No such escalation.)",
            vec![],
        );
    };
    let households = vec![e.household_id.clone()];
    if state != "taken" && state != "open" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "상태는 taken 또는 open입니다. (state must be taken or open.)",
            households,
        );
    }
    let taken = super::escalations::Taken {
        escalation_id: e.escalation_id,
        household_id: e.household_id,
        state: state.to_string(),
        by: who.user.id.clone(),
        by_name: who.user.name.clone(),
        at: st.ops.work.now_ms(),
    };
    // audited before it is done: no change goes unaudited
    let done = if api {
        StatusCode::OK
    } else {
        StatusCode::SEE_OTHER
    };
    if let Err(r) = audit(
        &st,
        Some(&who),
        &from,
        "set_escalation_state",
        path,
        households.clone(),
        None,
        done,
    ) {
        return r;
    }
    if let Err(error) = st.escalation_states.set(taken) {
        tracing::error!(%error, "the escalation states file cannot be written");
        let failed = StatusCode::SERVICE_UNAVAILABLE;
        let page = fail(
            api,
            failed,
            "상태를 저장하지 못했습니다. 잠시 후 다시 하세요. (The state could not be kept.)",
        );
        return audited(
            &st,
            &who,
            &from,
            "set_escalation_state_failed",
            path,
            households,
            None,
            page,
        );
    }
    if api {
        return axum::Json(json!({ "escalation_id": id, "state": state })).into_response();
    }
    back_to_city(field(&fields, "back"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Lets a request in through the gate (a bound per address, a slot within
/// a short wait), or answers 429 or 503 at once; a 429 is audited.
async fn gate(
    State(st): State<Arc<WebState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<Peer>()
        .copied()
        .unwrap_or(Peer(SocketAddr::from(([0, 0, 0, 0], 0))));
    let from = client(&st, &peer, req.headers());
    let api = req.uri().path().starts_with("/api/");
    match st.gate.enter(counted_address(&from)).await {
        Ok(_pass) => next.run(req).await,
        Err(guard::Shut::Address) => {
            let path = req.uri().path().to_string();
            refused_anonymous(&st, &from, "limited", &path, StatusCode::TOO_MANY_REQUESTS, api, "이 주소에서 동시에 보낸 요청이 너무 많습니다. (Too many requests at once from this address.)")
        }
        Err(guard::Shut::Busy) => {
            let mut r = fail(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "지금 요청이 많습니다. 잠시 후 다시 하세요. (Busy: try again in a moment.)",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            r
        }
    }
}

/// The routes with their middleware.
pub fn router(st: Arc<WebState>) -> Router {
    use tower_http::set_header::SetResponseHeaderLayer;
    let fixed = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    // gzip only where no CSRF token is in the body (BREACH)
    let compressed = Router::new()
        .route("/api/queue", get(queue))
        .route("/api/households/{id}", get(household))
        .route("/api/households/{id}/outcomes", post(record_outcome))
        .route("/api/city", get(city))
        .route("/api/city/escalations/{id}", post(set_escalation))
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", pages::APP_CSS) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", pages::APP_JS) }),
        )
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/queue", get(queue))
        .route("/visit", get(visit))
        .route("/households/{id}", get(household))
        .route("/households/{id}/outcomes", post(record_outcome))
        .route("/lists", get(lists))
        .route("/lists/{day}/{file}", get(download))
        .route("/city", get(city))
        .route("/city/escalations/{id}", post(set_escalation))
        .merge(compressed)
        .fallback(|| async {
            fail(
                false,
                StatusCode::NOT_FOUND,
                "그런 화면이 없습니다. 처음 화면(/)에서 시작하세요. (No such page: start at /.)",
            )
        })
        // the request's whole time, body included, counts inside its slot
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .layer(axum::middleware::from_fn_with_state(st.clone(), gate))
        // the orchestrator's probe answers even when every slot is taken
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(fixed("content-security-policy", CSP))
        .layer(fixed("x-frame-options", "DENY"))
        .layer(fixed("x-content-type-options", "nosniff"))
        // same-origin, not no-referrer: with no-referrer a browser sends
        // `Origin: null` on its own forms, which the origin check refuses
        .layer(fixed("referrer-policy", "same-origin"))
        .with_state(st)
}

/// A TLS acceptor for the PEM certificate chain and key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Ends a task when the one that started it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The web front's connection bounds: a page's keep-alive connection is
/// kept a minute; more than 64 at once from one address are closed.
const BOUNDS: crate::base::listener::Bounds = crate::base::listener::Bounds {
    header_time: Duration::from_secs(10),
    lifetime: Duration::from_secs(60),
    per_address: 64,
};

/// Accepts connections until the task is aborted (see
/// [`crate::base::listener`]), and re-reads the users file and the
/// escalation states every two seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    st: Arc<WebState>,
) {
    // a revoked person's sessions end within two seconds
    let watcher = st.clone();
    let _watching = AbortOnDrop(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        for round in 0u64.. {
            every.tick().await;
            if round % 5 == 0 {
                watcher.sample_received();
            }
            if let Err(error) = watcher.escalation_states.reload() {
                tracing::error!(%error, "the escalation states file cannot be read; keeping the states read before");
            }
            match watcher.users.reload() {
                Ok(true) => {
                    let ended = watcher
                        .auth
                        .end_revoked(|id| watcher.users.by_id(id).is_some());
                    tracing::info!(
                        accounts = watcher.users.len(),
                        sessions_ended = ended,
                        "users file re-read"
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the users file cannot be read; keeping the accounts loaded before")
                }
            }
        }
    }));
    crate::base::listener::serve(listener, tls, router(st), BOUNDS).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_id_from_a_page_never_looks_like_a_resident_registration_number() {
        // about one random 32-digit hex id in 130 holds an RRN-shaped run
        // of digits (745 in 100,000 draws): 5,000 draws meet dozens
        for _ in 0..5_000 {
            let id = new_outcome_id().expect("random numbers");
            assert!(id.starts_with("oc-") && id.len() == 35, "{id}");
            assert!(!crate::base::ids::contains_rrn(id.as_bytes()), "{id}");
        }
    }
}
