//! Who is asking: the client's address, the person behind a bearer token
//! or a session cookie, the account's request limit, and the origin and
//! CSRF checks of a state-changing request.

// A refusal is the response itself, returned early by the checks every
// handler makes; it is built once per refused request, never in a loop.
#![allow(clippy::result_large_err)]

use super::auth::{csrf_ok, Person, COOKIE};
use super::respond::{
    audited, client, counted_address, fail, login_redirect, refused_anonymous, Client,
};
use super::{guard, WebState};
use crate::base::listener::Peer;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The person behind a session cookie whose account is still active.
pub(super) fn session_person(st: &WebState, headers: &HeaderMap) -> Option<Person> {
    let session = st.auth.session(&cookie_value(headers)?)?;
    let user = st.users.by_id(&session.user_id)?;
    Some(Person {
        user,
        session: Some(session),
    })
}

/// The person behind a request: a bearer token (API) or a session cookie.
pub(super) fn person(st: &WebState, headers: &HeaderMap) -> Option<Person> {
    match bearer(headers) {
        Some(token) => st.users.by_token(token).map(|user| Person {
            user,
            session: None,
        }),
        None => session_person(st, headers),
    }
}

/// A known person's request: who, from where, and whether it is the
/// JSON API (bearer token or `/api/`), whose refusals are JSON. A stranger
/// is sent to the login page (401 for the API).
pub(super) struct Caller {
    pub(super) who: Person,
    pub(super) from: Client,
    pub(super) api: bool,
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
pub(super) fn bearer_person(
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
pub(super) fn forgery_check(
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
    let problem = if !guard::origin_ok(headers, st.secure, api, from.public_host.as_deref()) {
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
