//! The operations view as city staff and the SRE use it: /metrics checked
//! by promtool and the health endpoints (the pages are in `web.rs`).

use std::io::{Read, Write};
use std::net::SocketAddr;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sagak::metrics::Metrics;
use sagak::ops::OpsState;

use crate::support::*;

/// A plain HTTP GET: (status, body).
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn serve(ops: Arc<OpsState>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sagak::ops::http::serve(
        listener,
        ops,
        std::future::pending(),
    ));
    addr
}

fn metric(body: &str, line_start: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(line_start)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_move_as_signals_flow() {
    let promtool = ensure_tool("promtool", "prometheus");
    let s = Scenario::new("metrics").await;
    let pipeline = s.start();
    let addr = serve(pipeline.ops.clone()).await;

    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/healthz", None))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"alive"}"#));
    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = tokio::task::spawn_blocking(move || get(addr, "/readyz", None))
            .await
            .unwrap();
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        ready.0, 200,
        "ready once partitions are assigned: {}",
        ready.1
    );

    let p = Producer::new();
    let day = days_ago(4);
    p.signal(
        &s.topic("health-insurance"),
        &health("h-1", "hh-m", &day, 6),
    )
    .await;
    p.signal(&s.topic("job-loss"), &job_loss("j-1", "hh-m", &day))
        .await;
    p.send(&s.topic("job-loss"), Some(b"hh-m"), b"{oops").await;
    pipeline
        .wait_metric(
            "sagak_alerts_emitted_total{dong=\"4125052000\",priority=\"P2\"}",
            1.0,
        )
        .await;
    pipeline.wait_metric("sagak_dlq_writes_total", 1.0).await;

    // librdkafka reports lag with its statistics, every 5 s.
    let mut scrape = (0, String::new());
    for _ in 0..60 {
        scrape = tokio::task::spawn_blocking(move || get(addr, "/metrics", None))
            .await
            .unwrap();
        if scrape.1.contains("sagak_consumer_lag_messages{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, body) = scrape;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&body, "sagak_signals_received_total{feed=\"job-loss\"}"),
        2.0
    );
    assert_eq!(
        metric(&body, "sagak_signals_rejected_total{reason=\"not_json\"}"),
        1.0
    );
    assert_eq!(metric(&body, "sagak_ready"), 1.0);
    assert!(
        metric(&body, "sagak_event_to_alert_seconds_count") >= 1.0,
        "{body}"
    );
    assert!(
        body.contains("sagak_consumer_lag_messages{partition="),
        "lag per partition from librdkafka statistics: {body}"
    );
    assert!(body.contains("sagak_build_info{"), "{body}");
    assert!(!body.contains("hh-m"), "no household id in metric labels");

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_explains_why_it_is_not_ready() {
    let spec = default_spec();
    let ops = Arc::new(OpsState::new(&spec, Metrics::new(&spec), "kafka"));
    ops.health
        .set_not_ready("no partitions assigned yet (joining the consumer group)");
    let addr = serve(ops).await;
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/readyz", None))
        .await
        .unwrap();
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("no partitions assigned"));
    // household pages are not on the operations listener
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/dashboard", Some("x")))
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("web.listen"), "{body}");
}

#[test]
fn the_grafana_dashboard_and_scrape_config_use_only_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy/grafana/sagak-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    let spec = default_spec();
    let metrics = Metrics::new(&spec);
    // Labelled series appear once they have a value.
    metrics
        .consumer_lag
        .with_label_values(&["signals.job-loss", "0"])
        .set(0);
    metrics
        .watermark
        .with_label_values(&["job-loss", "0"])
        .set(0);
    metrics
        .alerts
        .with_label_values(&["P1", "4125052000"])
        .inc();
    let dong = ["4125052000"];
    metrics
        .case
        .open_households
        .with_label_values(&["4125052000", "P1", "new"])
        .set(1);
    metrics
        .case
        .overdue_households
        .with_label_values(&dong)
        .set(0);
    metrics
        .case
        .unreachable_households
        .with_label_values(&dong)
        .set(0);
    metrics
        .case
        .first_contact
        .with_label_values(&["P1"])
        .observe(3600.0);
    metrics
        .case
        .attempts_per_reach
        .with_label_values(&["P1"])
        .observe(1.0);
    let exported = metrics.render();
    let mut used = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("sagak_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                used += 1;
                assert!(
                    exported.contains(&format!("# TYPE {name} "))
                        || exported.contains(&format!("\n{name}{{"))
                        || exported.contains(&format!("\n{name} ")),
                    "panel {:?} uses {name}, which sagak does not export",
                    panel["title"]
                );
            }
        }
    }
    assert!(used >= 12);
    let promtool = ensure_tool("promtool", "prometheus");
    let status = Command::new(promtool)
        .args(["check", "config"])
        .arg(root.join("deploy/prometheus/prometheus.yml"))
        .status()
        .unwrap();
    assert!(status.success(), "the example scrape config is valid");
}
