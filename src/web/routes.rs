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
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::AuditEntry;
use super::auth::{csrf_ok, Person, COOKIE};
use super::users::Role;
use super::{form, pages, WebState};
use crate::ops::work::WorkItem;

/// The connection's peer, set by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

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

/// The person behind a request: a bearer token (API) or a session cookie
/// whose account is still active.
fn person(st: &WebState, headers: &HeaderMap) -> Option<Person> {
    if let Some(token) = bearer(headers) {
        return st.users.by_token(token).map(|user| Person {
            user,
            session: None,
        });
    }
    let session = st.auth.session(&cookie_value(headers)?)?;
    let user = st.users.by_id(&session.user_id)?;
    Some(Person {
        user,
        session: Some(session),
    })
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
            r#"<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>{}</title><link rel="stylesheet" href="/static/app.css"></head><body><main><h1>{} {}</h1><p class="error" id="error">{}</p><p><a href="/">처음으로 Home</a></p></main></body></html>"#,
            status.as_u16(),
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
            "the audit log cannot be written, so no household data is served; the operator must fix web.audit_dir",
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
        "this household or list belongs to another dong's office; the attempt is recorded",
    );
    audited(st, who, from, "denied", path, households, None, page)
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
        let api = parts.uri.path().starts_with("/api/") || bearer(&parts.headers).is_some();
        let Some(who) = person(st, &parts.headers) else {
            return Err(if api {
                fail(
                    true,
                    StatusCode::UNAUTHORIZED,
                    "send Authorization: Bearer <your token>",
                )
            } else {
                login_redirect()
            });
        };
        let peer = parts
            .extensions
            .get::<Peer>()
            .copied()
            .unwrap_or(Peer(SocketAddr::from(([0, 0, 0, 0], 0))));
        Ok(Caller {
            who,
            from: client(st, &peer, &parts.headers),
            api,
        })
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
    let limited = from
        .forwarded_for
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(from.addr);
    if let Err(wait) = st.auth.may_try(limited) {
        let mut r = fail(
            false,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("too many failed logins from this address: try again in {wait} s"),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let fields = form_fields(&body);
    let token = field(&fields, "token").unwrap_or_default().trim();
    let Some(user) = st.users.by_token(token) else {
        st.auth.failed(limited);
        if let Err(r) = audit(
            &st,
            None,
            &from,
            "login_failed",
            "/login",
            vec![],
            None,
            StatusCode::UNAUTHORIZED,
        ) {
            return r;
        }
        let page = pages::login(Some(
            "토큰이 맞지 않거나 폐기된 계정입니다. The token is wrong or the account was revoked.",
        ));
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response();
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

async fn logout(State(st): State<Arc<WebState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(who) = person(&st, &headers) else {
        return login_redirect();
    };
    let fields = form_fields(&body);
    let (Some(session), Some(id)) = (&who.session, cookie_value(&headers)) else {
        return login_redirect();
    };
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

#[derive(Deserialize)]
struct DongQuery {
    dong: Option<String>,
}

/// The dong whose queue is asked for: one's own; the city names one.
fn queue_dong(st: &WebState, who: &Person, asked: Option<&str>) -> Result<String, Option<String>> {
    match (who.user.role, asked) {
        (Role::Dong, None) => who.user.dong.clone().ok_or(None),
        (_, Some(d)) if who.sees_dong(d) => Ok(d.to_string()),
        (Role::City, None) => st.dongs.first().map(|d| d.dong_code.clone()).ok_or(None),
        (_, Some(d)) => Err(Some(d.to_string())),
    }
}

fn queue_json(st: &WebState, dong: &str, items: &[Arc<WorkItem>], now: i64) -> Value {
    json!({
        "dong_code": dong,
        "name_ko": st.dong_name(dong).0,
        "now": crate::stages::alert::rfc3339(now),
        "households": items.iter().filter(|i| i.in_queue()).map(|i| household_json(i, now)).collect::<Vec<_>>(),
        "in_case": items.iter().filter(|i| !i.in_queue() && i.case.in_case_since.is_some()).map(|i| household_json(i, now)).collect::<Vec<_>>(),
    })
}

fn household_json(i: &WorkItem, _now: i64) -> Value {
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
                "recorded_at_local": pages::local_time(o.recorded_at),
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
    Query(q): Query<DongQuery>,
    req_path: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let dong = match queue_dong(&st, &who, q.dong.as_deref()) {
        Ok(d) => d,
        Err(_) => return denied(&st, &who, &from, req_path.path(), vec![], api),
    };
    let now = st.ops.work.now_ms();
    let items = st.ops.work.of_dong(&dong);
    let shown: Vec<String> = items.iter().map(|i| i.household_id.clone()).collect();
    let page = if api {
        axum::Json(queue_json(&st, &dong, &items, now)).into_response()
    } else {
        html(pages::queue(&st, &who, &dong, &items, now))
    };
    audited(
        &st,
        &who,
        &from,
        "view_queue",
        req_path.path(),
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
    // a household on the newest list with no case record yet (never
    // alerted: a backfill's, say) still opens, to record what was done
    let Some(item) = st.ops.work.get(id).or_else(listed) else {
        let page = fail(
            api,
            StatusCode::NOT_FOUND,
            "no such household in the work queue (none with an alert, a case or recent activity)",
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
    let now = st.ops.work.now_ms();
    let notice = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "recorded")
            .map(|_| "기록되었습니다. 몇 초 안에 상태에 반영됩니다. Recorded; the status follows within seconds.")
    });
    let page = if api {
        axum::Json(household_json(&item, now)).into_response()
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
        let shown = vec![self.id.to_string()];
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
        let value = form::outcome_value(fields, &item.household_id, &by).map_err(|e| {
            let message = format!("입력을 확인하세요 (check the form): {e}");
            self.on_form(item, fields, StatusCode::BAD_REQUEST, &message, None)
        })?;
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
                let message = format!("{ko} ({class}: {})", reject.reason);
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

async fn lists(State(st): State<Arc<WebState>>, caller: Caller) -> Response {
    let Caller { who, from, .. } = caller;
    let mut days: Vec<String> = std::fs::read_dir(&st.lists_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|d| is_day(d))
                .collect()
        })
        .unwrap_or_default();
    days.sort_by(|a, b| b.cmp(a));
    let listed: Vec<(String, Vec<String>)> = days
        .into_iter()
        .map(|d| {
            let files = list_files(&who, &st.lists_dir.join(&d));
            (d, files)
        })
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let page = html(pages::lists(&who, &listed));
    audited(&st, &who, &from, "view_lists", "/lists", vec![], None, page)
}

async fn download(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath((day, file)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    if !is_day(&day) || file.contains('/') || file.contains("..") {
        return fail(
            api,
            StatusCode::BAD_REQUEST,
            "a list is /lists/YYYY-MM-DD/<file>",
        );
    }
    let name = format!("{day}/{file}");
    if !may_download(&who, &file) {
        let page = fail(
            api,
            StatusCode::FORBIDDEN,
            "this list belongs to another dong's office; the attempt is recorded",
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
    let bytes = match std::fs::read(st.lists_dir.join(&day).join(&file)) {
        Ok(b) => b,
        Err(_) => {
            return fail(
                api,
                StatusCode::NOT_FOUND,
                "no such list file (it may be past its retention)",
            )
        }
    };
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
        vec![],
        Some(name),
        page,
    )
}

/// Escalations on the city page (the API gives every one kept).
const ESCALATIONS_ON_PAGE: usize = 100;
/// Unassigned households on the city page and in its API.
const UNASSIGNED_SHOWN: usize = 200;

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

async fn city(State(st): State<Arc<WebState>>, caller: Caller, uri: axum::http::Uri) -> Response {
    let Caller { who, from, api } = caller;
    if who.user.role != Role::City {
        return denied(&st, &who, &from, uri.path(), vec![], api);
    }
    let now = st.ops.work.now_ms();
    let served: std::collections::HashSet<&str> =
        st.dongs.iter().map(|d| d.dong_code.as_str()).collect();
    let mut unassigned = st.ops.work.unassigned(&served);
    unassigned.truncate(UNASSIGNED_SHOWN);
    let (page, mut shown) = if api {
        let mut data = crate::ops::http::dashboard_data(&st.ops);
        data["unassigned"] = unassigned.iter().map(|i| household_json(i, now)).collect();
        // every household the data names: escalations, boards, unassigned
        let mut shown = Vec::new();
        household_ids(&data, &mut shown);
        (axum::Json(data).into_response(), shown)
    } else {
        let (follow_up, mut escalations) = st.ops.live.follow_up();
        escalations.truncate(ESCALATIONS_ON_PAGE);
        let shown = escalations
            .iter()
            .map(|e| e.household_id.clone())
            .chain(unassigned.iter().map(|i| i.household_id.clone()))
            .collect();
        let page = pages::city(&st, &who, &follow_up, &escalations, &unassigned, now);
        (html(page), shown)
    };
    shown.sort();
    shown.dedup();
    audited(&st, &who, &from, "view_city", uri.path(), shown, None, page)
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
        .route("/households/{id}", get(household))
        .route("/households/{id}/outcomes", post(record_outcome))
        .route("/lists", get(lists))
        .route("/lists/{day}/{file}", get(download))
        .route("/city", get(city))
        .merge(compressed)
        .fallback(|| async { fail(false, StatusCode::NOT_FOUND, "no such page: start at /") })
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(fixed("content-security-policy", CSP))
        .layer(fixed("x-frame-options", "DENY"))
        .layer(fixed("x-content-type-options", "nosniff"))
        .layer(fixed("referrer-policy", "no-referrer"))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(256))
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

/// Accepts connections until the task is aborted: each served by hyper's
/// HTTP/1.1 with bounded headers and header time, over TLS when given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    st: Arc<WebState>,
) {
    // the users file is re-read every two seconds: a revoked person's
    // sessions end then
    let watcher = st.clone();
    let _watching = AbortOnDrop(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        for round in 0u64.. {
            every.tick().await;
            if round % 5 == 0 {
                watcher.sample_received();
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
    let app = router(st);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            use tower::ServiceExt;
            let svc = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                req
            });
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(16 * 1024);
            let served = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                .await
                        }
                        _ => return,
                    }
                }
                None => {
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
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
