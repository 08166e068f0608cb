//! The web front at national scale: the dong queue page and its JSON API
//! (in turn: the first page, a priority's second page, a tier, a search by
//! id) while the pipeline runs at half its maximum rate.
//!
//! `cargo bench --bench web -- [--dongs 3500] [--households 1200000]
//! [--days 90] [--crisis-share 0.5] [--requests 2000] [--board-after]`
//! prints one JSON line. Method and today's figures: benches/README.md.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sagak::base::clock::{Clock, SimulatedClock};
use sagak::base::message::InputMessage;
use sagak::base::time::ClockTime;
use sagak::definition::{Dong, PipelineSpec};
use sagak::drivers::DriverCore;
use sagak::engine::{BatchResult, Engine, Outputs};
use sagak::generate::{generate, national_dong_code, GeneratorConfig};
use sagak::metrics::Metrics;
use sagak::ops::OpsState;
use sagak::web::users::{self, Role};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Discard;

impl Outputs for Discard {
    type Error = std::convert::Infallible;
    async fn deliver(&mut self, _: &BatchResult, _: &[InputMessage]) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn get(addr: SocketAddr, path: &str, header: &str) -> (u16, usize) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let status = std::str::from_utf8(&raw[..raw.len().min(12)])
        .ok()
        .and_then(|t| t.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, raw.len())
}

fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    serde_json::json!({"requests": ms.len(), "p50_ms": (at(0.5) * 100.0).round() / 100.0, "p99_ms": (at(0.99) * 100.0).round() / 100.0, "max_ms": (at(1.0) * 100.0).round() / 100.0})
}

fn main() {
    let dongs = arg("--dongs", 3500.0) as usize;
    let households = arg("--households", 1_200_000.0) as usize;
    let days = arg("--days", 90.0) as u32;
    let crisis_share = arg("--crisis-share", 0.5);
    let requests = arg("--requests", 2000.0) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut spec = PipelineSpec::embedded_default().expect("the default pipeline");
    spec.dongs = (0..dongs)
        .map(|i| Dong {
            dong_code: national_dong_code(i),
            name_ko: format!("동{i:04}"),
            name_en: format!("dong {i}"),
        })
        .collect();
    let started = Instant::now();
    let generated = generate(&GeneratorConfig {
        households,
        days,
        crisis_share,
        dongs,
        ..GeneratorConfig::default()
    });
    let messages: Vec<InputMessage> = generated
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_input(&spec, i as i64, 4))
        .collect();
    eprintln!(
        "generated {} messages in {:.1} s",
        messages.len(),
        started.elapsed().as_secs_f64()
    );
    let ops = Arc::new(OpsState::new(&spec, Metrics::new(&spec), "demo"));
    // --board-after: the history runs without the work board (what the
    // board costs the pipeline), which is then built in one pass
    let board_after = std::env::args().any(|a| a == "--board-after");
    if !board_after {
        ops.work.enable();
    }

    runtime.block_on(async {
        let engine = Engine::new(&spec);
        engine.start().await.expect("engine");
        let first = messages.first().and_then(|m| m.timestamp_ms).unwrap_or(0);
        let clock = SimulatedClock::at(ClockTime::from_ms(first));
        let mut core = DriverCore::new(engine, clock.clone(), &ops, 10_000);
        let mut out = Discard;
        // the history up to the last tenth, as fast as it goes: the maximum rate
        let split = messages.len() * 9 / 10;
        let t = Instant::now();
        for chunk in messages[..split].chunks(10_000) {
            for m in chunk {
                clock.set(ClockTime::from_ms(m.timestamp_ms.unwrap_or(first)));
                core.push(m.clone());
            }
            core.flush(&mut out).await.expect("batch");
        }
        let max_rate = split as f64 / t.elapsed().as_secs_f64();
        ops.work.enable();
        core.rebuild_work();
        // the offices have reached all but one household in `keep_open`
        let keep_open = arg("--keep-open", 60.0) as usize;
        let now = clock.now().ms();
        let recorded_at = sagak::stages::alert::rfc3339(now);
        let mut n = 0usize;
        for d in &spec.dongs {
            for item in ops.work.of_dong(&d.dong_code) {
                if item.case.dong != d.dong_code || item.case.open_alerts.is_empty() {
                    continue;
                }
                n += 1;
                if n.is_multiple_of(keep_open) {
                    continue;
                }
                let value = format!(
                    r#"{{"outcome_id":"oc-bench-{n}","household_id":"{}","dong_code":"{}","recorded_at":"{recorded_at}","staff_id":"bench","kind":"contact_attempted","channel":"visit","result":"reached"}}"#,
                    item.household_id, item.case.dong
                );
                core.push(InputMessage {
                    feed: Some(spec.outcome_feed()),
                    topic: "dong-office.outcomes".into(),
                    partition: 0,
                    offset: n as i64,
                    key: Some(item.household_id.as_bytes().to_vec()),
                    payload: Some(value.into_bytes()),
                    timestamp_ms: Some(now),
                    source_file: None,
                });
                if core.buffered() >= 10_000 {
                    core.flush(&mut out).await.expect("outcomes");
                }
            }
        }
        core.flush(&mut out).await.expect("outcomes");
        core.rebuild_work();
        let board = ops.work.len();
        let open: usize = spec.dongs.iter().map(|d| ops.work.of_dong(&d.dong_code).iter().filter(|i| i.in_queue()).count()).sum();
        let (marked, _) = core.engine_mut().list_candidates();
        let marked = marked.len();
        eprintln!("state: {} households tracked, {marked} at a priority, {board} on the work board ({open} waiting for a first contact); maximum rate {max_rate:.0} signals/s", core.engine_mut().households());

        // the web front, with accounts for a hundred dongs
        let dir = tempfile::tempdir().expect("tempdir");
        let users_file = dir.path().join("users.json");
        let mut tokens = Vec::new();
        for i in (0..dongs).step_by((dongs / 100).max(1)) {
            let code = national_dong_code(i);
            let (_, token) = users::add(&users_file, "bench", Role::Dong, Some(&code)).expect("account");
            tokens.push(token);
        }
        let (inbox, _rx) = sagak::embedded::inbox::Inbox::new(spec.outcome_feed(), "dong-office.outcomes");
        let web = sagak::web::start(
            sagak::web::WebConfig {
                listen: "127.0.0.1:0".into(),
                tls: None,
                trusted_proxy: None,
                users_file,
                audit_dir: dir.path().join("audit"),
                audit_store: None,
                users_store: None,
                lists: sagak::store::open(dir.path()).unwrap(),
                out_dir: dir.path().to_path_buf(),
                idle: Duration::from_secs(3600),
                login_failures_per_minute: 1000,
            },
            &spec,
            ops.clone(),
            Arc::new(inbox),
        )
        .await
        .expect("web front");
        let addr = web.addr;
        // log every account in once (cookies for the page, bearer for the API)
        let cookies: Vec<String> = tokens
            .iter()
            .map(|t| {
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                let body = format!("token={t}");
                write!(s, "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("write");
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                text.lines()
                    .find_map(|l| l.strip_prefix("set-cookie: "))
                    .and_then(|c| c.split(';').next())
                    .map(|c| format!("Cookie: {c}"))
                    .expect("a session cookie")
            })
            .collect();

        // the last tenth at half the maximum rate, while the offices ask
        let half = max_rate / 2.0;
        let clients = std::thread::spawn(move || {
            let mut page = Vec::with_capacity(requests);
            let mut api = Vec::with_capacity(requests);
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            let mut bytes = 0;
            for i in 0..requests {
                let who = i % tokens.len();
                let t = Instant::now();
                // the plain queue, a filtered page, a tier, a search
                let query = ["", "?priority=P1&page=2", "?tier=overdue", "?q=7&page=3"][i % 4];
                let (s, n) = get(addr, &format!("/queue{query}"), &cookies[who]);
                page.push(t.elapsed().as_secs_f64() * 1000.0);
                *statuses.entry(s).or_default() += 1;
                bytes += n;
                let t = Instant::now();
                let (s, _) = get(addr, &format!("/api/queue{query}"), &format!("Authorization: Bearer {}", tokens[who]));
                api.push(t.elapsed().as_secs_f64() * 1000.0);
                *statuses.entry(s).or_default() += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (page, api, statuses, bytes / requests.max(1))
        });
        let t = Instant::now();
        let mut sent = 0usize;
        let mut ran = 0usize;
        while !clients.is_finished() {
            let rest = &messages[split..];
            let due = ((t.elapsed().as_secs_f64() * half) as usize).min(rest.len() * 1000);
            while sent < due {
                let m = &rest[sent % rest.len()];
                clock.set(ClockTime::from_ms(m.timestamp_ms.unwrap_or(first)));
                core.push(m.clone());
                sent += 1;
            }
            ran += core.flush(&mut out).await.expect("batch");
            core.tick(&mut out).await.expect("tick");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let paced = ran as f64 / t.elapsed().as_secs_f64();
        let (page, api, statuses, page_bytes) = clients.join().expect("clients");
        println!(
            "{}",
            serde_json::json!({
                "bench": "web_queue_national",
                "dongs": dongs,
                "households_tracked": core.engine_mut().households(),
                "households_at_a_priority": marked,
                "work_board": board,
                "waiting_for_first_contact": open,
                "pipeline_max_signals_per_s": max_rate.round(),
                "board_kept_during_history": !board_after,
                "pipeline_during_signals_per_s": paced.round(),
                "queue_page": percentiles(page),
                "queue_api": percentiles(api),
                "queue_page_bytes": page_bytes,
                "statuses": statuses,
                "target_p99_ms": 100,
            })
        );
        web.abort();
    });
}
