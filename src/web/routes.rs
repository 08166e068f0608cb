//! The web front's routes and middleware (the gate, the headers every
//! answer carries) and its connection loop. The handlers are in
//! [`super::session`], [`super::households`], [`super::downloads`] and
//! [`super::console`].

// A refusal is the response itself, returned early by the checks every
// handler makes; it is built once per refused request, never in a loop.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{guard, pages, WebState};
pub(crate) use crate::base::listener::Peer;

use super::agenda::{agenda, agenda_csv};
use super::console::{city, set_escalation};
use super::downloads::{download, lists};
use super::households::{household, queue, record_outcome, visit};
use super::respond::{client, counted_address, fail, refused_anonymous};
use super::session::{home, login, login_page, logout};

pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn asset(kind: &'static str, body: &'static str) -> Response {
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
pub(super) async fn gate(
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
pub(crate) fn router(st: Arc<WebState>) -> Router {
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
        .route("/api/agenda", get(agenda))
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
        .route("/agenda", get(agenda))
        .route("/agenda.csv", get(agenda_csv))
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
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            super::session::renew,
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
pub(crate) fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
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
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The web front's connection bounds: a page's keep-alive connection is
/// kept a minute; more than 64 at once from one address are closed (not
/// from the trusted proxy, which carries everyone's).
fn bounds(st: &WebState) -> crate::base::listener::Bounds {
    crate::base::listener::Bounds {
        header_time: Duration::from_secs(10),
        lifetime: Duration::from_secs(60),
        per_address: 64,
        unbounded: st.trusted_proxy,
    }
}

/// Accepts connections until the task is aborted (see
/// [`crate::base::listener`]), and re-reads the users file and the
/// escalation states every two seconds.
pub(crate) async fn serve(
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
            if let Err(error) = watcher.auth.reload_ended() {
                tracing::warn!(%error, "the logouts of other instances cannot be read; retrying");
            }
            if let Err(error) = watcher.escalation_states.reload() {
                tracing::error!(%error, "the escalation states file cannot be read; keeping the states read before");
            }
            match watcher.users.reload() {
                Ok(true) => {
                    // a revoked account's sessions end with it: each
                    // request looks its account up
                    tracing::info!(accounts = watcher.users.len(), "accounts re-read");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the users file cannot be read; keeping the accounts loaded before")
                }
            }
        }
    }));
    let bounds = bounds(&st);
    crate::base::listener::serve(listener, tls, router(st), bounds).await;
}
