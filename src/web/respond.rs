//! How a request is answered when it is refused or audited: where it came
//! from (`Client`), the refusal page or JSON (Korean first), the audit
//! line written before any answer, and the small helpers of forms. The
//! lowest of the handlers' modules: it imports none of them.

// A refusal is the response itself, returned early by the checks every
// handler makes; it is built once per refused request, never in a loop.
#![allow(clippy::result_large_err)]

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::audit::AuditEntry;
use super::auth::Person;
use super::{pages, WebState};
use crate::base::listener::Peer;
use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

/// A refusal that is audited (without a person: the token was wrong, or
/// none was given), with `Retry-After` on a 429.
pub(super) fn refused_anonymous(
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
pub(super) fn household_named(id: &str) -> Vec<String> {
    let valid =
        crate::base::ids::is_pseudonymous_id(id) && !crate::base::ids::contains_rrn(id.as_bytes());
    if valid {
        vec![id.to_string()]
    } else {
        Vec::new()
    }
}

/// A refusal, as the kind of caller expects it.
pub(super) fn fail(api: bool, status: StatusCode, message: &str) -> Response {
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
pub(super) fn status_ko(status: StatusCode) -> &'static str {
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
pub(super) fn audit(
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
pub(super) fn audited(
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
pub(super) fn denied(
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
pub(super) fn city_only(
    st: &WebState,
    who: &Person,
    from: &Client,
    path: &str,
    api: bool,
) -> Response {
    let page = fail(
        api,
        StatusCode::FORBIDDEN,
        "시 통합조사팀 계정만 볼 수 있는 화면입니다. 동 업무는 업무 목록에서 보세요. (This page is for the city team; an office works from its work queue.)",
    );
    audited(st, who, from, "denied", path, vec![], None, page)
}

pub(super) fn html(page: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

pub(super) fn login_redirect() -> Response {
    Redirect::to("/login").into_response()
}

pub(super) fn form_fields(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Where a request came from.
pub(super) struct Client {
    pub(super) addr: IpAddr,
    /// The address the trusted proxy forwarded for.
    pub(super) forwarded_for: Option<String>,
    /// The host the trusted proxy was asked for (`X-Forwarded-Host`): the
    /// front's public name, which the pages' `Origin` carries.
    pub(super) public_host: Option<String>,
}

pub(super) fn client(st: &WebState, peer: &Peer, headers: &HeaderMap) -> Client {
    let addr = peer.0.ip();
    let proxied = st.trusted_proxy == Some(addr);
    // the proxy's own entry is the last: what a client wrote before it is
    // not to be trusted
    let from_proxy = |name: &str| {
        proxied
            .then(|| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
                    .map(|v| v.trim().to_string())
            })
            .flatten()
    };
    Client {
        addr,
        forwarded_for: from_proxy("x-forwarded-for"),
        public_host: from_proxy("x-forwarded-host"),
    }
}

/// The address failed tokens are counted against: the client's, behind a
/// trusted proxy the one it forwarded for.
pub(super) fn counted_address(from: &Client) -> IpAddr {
    from.forwarded_for
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(from.addr)
}
