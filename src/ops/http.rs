//! A small HTTP/1.1 server for the operations endpoints: GET only, one
//! request per connection, bounded request size and time. It needs no web
//! framework and serves everything the dashboard uses from the binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::proto::MetricType;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::OpsState;

const DASHBOARD_HTML: &str = include_str!("dashboard.html");
const MAX_REQUEST: usize = 16 * 1024;

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<OpsState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, peer, &state)).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

struct Request {
    path: String,
    query: BTreeMap<String, String>,
    bearer: Option<String>,
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?, first.next()?);
    if method != "GET" && method != "HEAD" {
        return Some(Request {
            path: String::from("!method"),
            query: BTreeMap::new(),
            bearer: None,
        });
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let bearer = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return None;
        }
        value
            .trim()
            .strip_prefix("Bearer ")
            .map(|t| t.trim().to_string())
    });
    Some(Request {
        path: path.to_string(),
        query,
        bearer,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn handle(mut stream: TcpStream, peer: SocketAddr, state: &OpsState) {
    let Some(req) = read_request(&mut stream).await else {
        respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
        )
        .await;
        return;
    };
    match req.path.as_str() {
        "/metrics" => {
            let body = state.metrics.render();
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            )
            .await;
        }
        "/healthz" => {
            respond(
                &mut stream,
                "200 OK",
                "application/json",
                br#"{"status":"alive"}"#,
            )
            .await
        }
        "/readyz" => match state.health.status() {
            Ok(()) => {
                respond(
                    &mut stream,
                    "200 OK",
                    "application/json",
                    br#"{"ready":true}"#,
                )
                .await
            }
            Err(reason) => {
                let body = json!({"ready": false, "reason": reason}).to_string();
                respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "application/json",
                    body.as_bytes(),
                )
                .await
            }
        },
        "/dashboard" | "/api/dashboard" => {
            let given = req
                .bearer
                .clone()
                .or_else(|| req.query.get("token").cloned());
            let allowed = match (&state.token, &given) {
                (Some(token), Some(given)) => same(token, given),
                _ => false,
            };
            // Who looked at household data, and when: the law asks for it.
            tracing::info!(path = %req.path, %peer, allowed, "dashboard access");
            if !allowed {
                let msg = if state.token.is_none() {
                    "the dashboard is off: set http.token (SAGAK__HTTP__TOKEN) to turn it on\n"
                } else {
                    "a bearer token is required: Authorization: Bearer <http.token>, or ?token=<http.token>\n"
                };
                respond(
                    &mut stream,
                    "401 Unauthorized",
                    "text/plain; charset=utf-8",
                    msg.as_bytes(),
                )
                .await;
                return;
            }
            if req.path == "/dashboard" {
                respond(
                    &mut stream,
                    "200 OK",
                    "text/html; charset=utf-8",
                    DASHBOARD_HTML.as_bytes(),
                )
                .await;
            } else {
                let body = dashboard_data(state).to_string();
                respond(
                    &mut stream,
                    "200 OK",
                    "application/json; charset=utf-8",
                    body.as_bytes(),
                )
                .await;
            }
        }
        "!method" => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"GET only\n",
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found; try /metrics, /healthz, /readyz or /dashboard\n",
            )
            .await
        }
    }
}

/// Label values -> value of every sample of metric `name`.
fn samples(state: &OpsState, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for mf in state.metrics.registry.gather() {
        if mf.name() != name {
            continue;
        }
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

fn by_label(state: &OpsState, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, v) in samples(state, name) {
        if let Some(l) = labels.get(label) {
            *out.entry(l.clone()).or_insert(0.0) += v;
        }
    }
    out
}

/// The dashboard's data: everything comes from the metrics and the board.
pub fn dashboard_data(state: &OpsState) -> Value {
    let received = by_label(state, "sagak_signals_received_total", "feed");
    // a feed is as far as its laggard partition
    let mut watermark: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, v) in samples(state, "sagak_watermark_timestamp_seconds") {
        if let Some(feed) = labels.get("feed") {
            let w = watermark.entry(feed.clone()).or_insert(v);
            *w = w.min(v);
        }
    }
    let lag_by_topic = by_label(state, "sagak_consumer_lag_messages", "topic");
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
    for (labels, v) in samples(state, "sagak_alerts_emitted_total") {
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
    let (follow_up, escalations) = state.live.follow_up();
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
    let single = |name: &str| samples(state, name).first().map(|s| s.1).unwrap_or(0.0);
    json!({
        "mode": state.mode,
        "ready": state.health.status().is_ok(),
        "now": crate::base::clock::wall_clock_ms(),
        "feeds": feeds,
        "lag_by_topic": lag_by_topic,
        "rejected": by_label(state, "sagak_signals_rejected_total", "reason"),
        "households_tracked": single("sagak_households_tracked"),
        "duplicates": single("sagak_signals_duplicate_total"),
        "suppressed": single("sagak_alerts_suppressed_total"),
        "escalated": by_label(state, "sagak_escalations_total", "reason"),
        "escalations": escalations,
        "dongs": dongs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_query_values() {
        assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn token_comparison() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cres"));
        assert!(!same("s3cret", "s3cret-longer"));
    }
}
