//! Logging in and out: the login page, a token's check (limited per
//! address, audited), the session cookie.

use super::auth::{csrf_ok, Person, COOKIE};
use super::caller::{cookie_value, person};
use super::respond::{
    audit, client, counted_address, fail, field, form_fields, html, login_redirect,
    refused_anonymous, Client,
};
use super::users::Role;
use super::{guard, pages, WebState};
use crate::base::listener::Peer;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use std::sync::Arc;

pub(super) async fn home(State(st): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    match person(&st, &headers) {
        Some(p) if p.user.role == Role::City => Redirect::to("/city").into_response(),
        Some(_) => Redirect::to("/queue").into_response(),
        None => login_redirect(),
    }
}

pub(super) async fn login_page() -> Response {
    html(pages::login(None))
}

pub(super) async fn login(
    State(st): State<Arc<WebState>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = client(&st, &peer, &headers);
    if !guard::origin_ok(&headers, st.secure, false, from.public_host.as_deref()) {
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
    let mut r = Redirect::to("/").into_response();
    if let Some(v) = session_cookie(&st, id) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The `Set-Cookie` of session cookie value `value`.
pub(super) fn session_cookie(st: &WebState, value: String) -> Option<HeaderValue> {
    let cookie = cookie::Cookie::build((COOKIE, value))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(st.secure)
        .path("/")
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// Moves a session's end on as it is used: a response to a request with a
/// live session carries a renewed cookie, at most once a minute (unless it
/// sets the cookie itself: a login, a logout).
pub(super) async fn renew(
    State(st): State<Arc<WebState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let renewed = super::caller::cookie_value(req.headers())
        .and_then(|v| st.auth.session(&v))
        .and_then(|s| st.auth.renewed(&s));
    let mut response = next.run(req).await;
    if let Some(value) = renewed {
        if !response.headers().contains_key(header::SET_COOKIE) {
            if let Some(v) = session_cookie(&st, value) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
    }
    response
}

/// A wrong token on the login page: counted against its address, which
/// gets 429 after too many (a right token still logs in); audited either
/// way.
pub(super) fn login_failed(st: &WebState, from: &Client) -> Response {
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

pub(super) async fn logout(
    State(st): State<Arc<WebState>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(who) = person(&st, &headers) else {
        return login_redirect();
    };
    let fields = form_fields(&body);
    let (Some(session), Some(id)) = (&who.session, cookie_value(&headers)) else {
        return login_redirect();
    };
    let from = client(&st, &peer, &headers);
    if !guard::origin_ok(&headers, st.secure, false, from.public_host.as_deref()) {
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
