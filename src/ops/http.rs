//! The operations endpoints on `http.listen`, open to Prometheus and the
//! orchestrator: `/metrics`, `/healthz`, `/readyz` (GET only). Nothing here
//! shows a household: those pages are the web front's (`crate::web`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::core::Collector;
use prometheus::proto::MetricType;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::OpsState;

async fn metrics(State(state): State<Arc<OpsState>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    json_answer(StatusCode::OK, json!({"status": "alive"}))
}

async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    match state.health.status() {
        Ok(()) => json_answer(StatusCode::OK, json!({"ready": true})),
        Err(reason) => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": reason}),
        ),
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The operations routes.
pub(crate) fn router(state: Arc<OpsState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /healthz or /readyz (the offices' and the city's pages are on web.listen)\n",
            )
        })
        // the wait for a slot counts in the request's time: a scrape that
        // cannot be served in 10 s is answered 408, never queued for ever
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(64))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .with_state(state)
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<OpsState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let served = crate::base::listener::serve(listener, None, router(state), BOUNDS);
    tokio::select! {
        () = served => {}
        () = shutdown => {}
    }
}

/// Prometheus scrapes every few seconds over a kept connection; nothing
/// else needs one for long, and an idle or slow client is cut off.
const BOUNDS: crate::base::listener::Bounds = crate::base::listener::Bounds {
    header_time: Duration::from_secs(10),
    lifetime: Duration::from_secs(30),
    per_address: 32,
    unbounded: None,
};

/// Label values -> value of every sample of `metric`, read from the
/// metric itself (not looked up by name in the registry: renaming a
/// metric cannot silently empty the city's page).
fn samples(metric: &dyn Collector) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for mf in metric.collect() {
        for m in mf.get_metric() {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let v = match mf.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => continue,
            };
            out.push((labels, v));
        }
    }
    out
}

fn by_label(metric: &dyn Collector, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, v) in samples(metric) {
        if let Some(l) = labels.get(label) {
            *out.entry(l.clone()).or_insert(0.0) += v;
        }
    }
    out
}

/// The dashboard's data: everything comes from the metrics and the board.
pub(crate) fn dashboard_data(state: &OpsState) -> Value {
    let m = &state.metrics;
    let received = by_label(&m.received, "feed");
    // a feed is as far as its laggard partition
    let mut watermark: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, v) in samples(&m.watermark) {
        if let Some(feed) = labels.get("feed") {
            let w = watermark.entry(feed.clone()).or_insert(v);
            *w = w.min(v);
        }
    }
    let lag_by_topic = by_label(&m.consumer_lag, "topic");
    let feeds: Vec<Value> = state
        .feeds
        .iter()
        .map(|f| {
            json!({
                "feed": f,
                "received": received.get(f).copied().unwrap_or(0.0),
                "watermark": watermark.get(f).copied(),
            })
        })
        .collect();
    let mut alerts: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (labels, v) in samples(&m.alerts) {
        if let (Some(d), Some(p)) = (labels.get("dong"), labels.get("priority")) {
            *alerts
                .entry(d.clone())
                .or_default()
                .entry(p.clone())
                .or_insert(0.0) += v;
        }
    }
    let names: BTreeMap<&str, (&str, &str)> = state
        .dongs
        .iter()
        .map(|d| {
            (
                d.dong_code.as_str(),
                (d.name_ko.as_str(), d.name_en.as_str()),
            )
        })
        .collect();
    let board = state.live.snapshot();
    let follow_up = state.live.per_dong();
    let mut dong_codes: Vec<String> = state.dongs.iter().map(|d| d.dong_code.clone()).collect();
    for code in alerts.keys().chain(board.keys()).chain(follow_up.keys()) {
        if !dong_codes.contains(code) {
            dong_codes.push(code.clone());
        }
    }
    let dongs: Vec<Value> = dong_codes
        .iter()
        .map(|code| {
            let (ko, en) = names
                .get(code.as_str())
                .copied()
                .unwrap_or(("미배정", "unassigned"));
            json!({
                "dong_code": code,
                "name_ko": ko,
                "name_en": en,
                "alerts": alerts.get(code).cloned().unwrap_or_default(),
                "top": board.get(code).cloned().unwrap_or_default(),
                "follow_up": follow_up.get(code).cloned().unwrap_or_default(),
            })
        })
        .collect();
    json!({
        "mode": state.mode,
        "ready": state.health.status().is_ok(),
        "now": crate::base::clock::wall_clock_ms(),
        "feeds": feeds,
        "lag_by_topic": lag_by_topic,
        "rejected": by_label(&m.rejected, "reason"),
        "households_tracked": m.households.get() as f64,
        "duplicates": m.duplicates.get() as f64,
        "suppressed": m.suppressed.get() as f64,
        "escalated": by_label(&m.case.escalations, "reason"),
        "dongs": dongs,
    })
}
