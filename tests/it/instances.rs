//! Three `sagak run` processes of one group, no folder shared: state,
//! accounts, sessions and the audit in object storage (SeaweedFS), the
//! offices' open work on a compacted topic every instance reads. One is
//! killed with SIGKILL under a live feed; the group (with a replacement, as
//! a Deployment starts one) takes its partitions, and every office keeps its
//! queue, its session and its audit trail.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::faults::{signal, wait_exit};
use crate::storage::{free_ports, location, process_metric, with_pages, Reaped};
use crate::support::*;
use crate::web::{blocking, http, login, DONG};
use sagak::testkit::split_csv;

/// Distinct free ports: (metrics, pages) for each of `n` instances.
fn ports(n: usize) -> Vec<(u16, u16)> {
    let base = free_ports();
    (0..n as u16)
        .map(|i| (base + 2 * i, base + 2 * i + 1))
        .collect()
}

/// Every household of `/api/queue` on `addr`, page after page (empty
/// while the instance does not answer).
async fn queue_on(addr: SocketAddr, token: String) -> BTreeSet<String> {
    blocking(move || {
        let auth = format!("Bearer {token}");
        let mut all = BTreeSet::new();
        for page in 1.. {
            let (status, _, body) = http(
                addr,
                "GET",
                &format!("/api/queue?page={page}"),
                &[("Authorization", &auth)],
                "",
            );
            let Ok(v) = serde_json::from_str::<Value>(&body) else {
                return BTreeSet::new();
            };
            if status != 200 {
                return BTreeSet::new();
            }
            for h in v["households"].as_array().into_iter().flatten() {
                all.insert(h["household_id"].as_str().unwrap_or_default().to_string());
            }
            if page >= v["pages"].as_u64().unwrap_or(1) as usize {
                break;
            }
        }
        all
    })
    .await
}

/// `sagak <args> --config <config>`: its standard output.
fn sagak(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sagak"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("sagak runs");
    assert!(
        out.status.success(),
        "sagak {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sagak run`, logging librdkafka's group protocol too (the victim is
/// chosen from it).
fn spawn(config: &Path, log: &Path) -> Reaped {
    let mut text = std::fs::read_to_string(config).unwrap();
    text = text.replace(
        "[kafka.consumer]\n",
        "[kafka.consumer]\n\"debug\" = \"cgrp\"\n",
    );
    std::fs::write(config, text).unwrap();
    let log = std::fs::File::create(log).unwrap();
    Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_sagak"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,librdkafka=debug")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sagak starts"),
    )
}

/// Waits until the instance on metrics port `port` holds households.
async fn holding(port: u16, what: &str, log: &Path) {
    for _ in 0..600 {
        if process_metric(port, "sagak_households_tracked").await >= 1.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} never held a partition; its log:\n{log}");
}

/// Whether the process that wrote `log` is the group's leader in its
/// latest generation, as librdkafka's JoinGroup response says.
fn leads(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.contains("JoinGroup response: GenerationId") && l.contains("LeaderId rdkafka"))
    else {
        return false;
    };
    let id = |after: &str| {
        line.split(after)
            .nth(1)
            .and_then(|s| s.split([',', ' ']).next())
            .unwrap_or_default()
            .to_string()
    };
    id("LeaderId ") == id("my MemberId ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_lose_one_to_sigkill_and_every_office_keeps_its_work() {
    use sagak::web::users::{self, Accounts, Role};
    let s = Scenario::new("s3-three").await;
    let at = location("three");
    let (_, token) = users::add(
        Accounts::Store(at.open("accounts").unwrap()),
        "김생연",
        Role::Dong,
        Some(DONG),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c", "d"];
    let ports = ports(4);
    let configs: Vec<_> = names
        .iter()
        .zip(&ports)
        .map(|(n, &(m, w))| with_pages(&s, &at, &dir.path().join(n), (m, Some(w)), 1_000))
        .collect();
    let log = |n: &str| dir.path().join(format!("{n}.log"));
    // the first holds every partition, then the others join
    let mut procs: Vec<Reaped> = vec![spawn(&configs[0], &log("a"))];
    let web = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i].1));
    let producer = s.producer();
    let mut alerts = s.alerts();
    let households: Vec<String> = (0..24).map(|i| format!("hh-k9-{i:02}")).collect();
    let every = |p: &'static str| all_reached(&households, p);
    for hh in &households {
        producer
            .signal(
                &s.topic("job-loss"),
                &job_loss(&format!("{hh}-j"), hh, &days_ago(20)),
            )
            .await;
    }
    alerts.wait_for("P3 from the first", every("P3")).await;
    procs.push(spawn(&configs[1], &log("b")));
    procs.push(spawn(&configs[2], &log("c")));
    for (i, n) in names.iter().enumerate().take(3) {
        holding(ports[i].0, n, &log(n)).await;
    }
    // tansu 0.6.0 does not move a dead member's partitions by itself: when
    // the member's session ends it answers the survivors' rejoin with the
    // old generation and assignment. A member joining after that does start
    // a new generation, unless the dead member led the group. So the victim
    // is a member that does not lead, and a replacement starts once its
    // session is over, as a Deployment starts one. Kafka's coordinator
    // needs neither.
    let victim = (1..3).find(|&i| !leads(&log(names[i]))).unwrap_or(1);

    // an office logs in on the instance about to die
    let (b_token, b_web) = (token.clone(), web(victim));
    let cookie = blocking(move || login(b_web, &b_token))
        .await
        .expect("logged in on the instance about to die");
    let first = &households[0];
    let view = |addr: SocketAddr, cookie: String, id: String| {
        blocking(move || {
            http(
                addr,
                "GET",
                &format!("/households/{id}"),
                &[("Cookie", &cookie)],
                "",
            )
            .0
        })
    };
    assert_eq!(view(b_web, cookie.clone(), first.clone()).await, 200);

    // the next step of every household, with SIGKILL half way through
    for (k, hh) in households.iter().enumerate() {
        if k == households.len() / 2 {
            signal(&procs[victim].0, "-KILL");
        }
        producer
            .signal(
                &s.topic("health-insurance"),
                &health(&format!("{hh}-h"), hh, &days_ago(10), 4),
            )
            .await;
    }
    // the replacement, once the group has noticed the death (6 s)
    tokio::time::sleep(Duration::from_secs(8)).await;
    procs.push(spawn(&configs[3], &log("d")));
    alerts.wait_for("P2 from the survivors", every("P2")).await;
    for hh in &households {
        producer
            .signal(
                &s.topic("utility-arrears"),
                &utility(&format!("{hh}-u"), hh, &days_ago(2), "electricity", 3, true),
            )
            .await;
    }
    alerts.wait_for("P1 from the survivors", every("P1")).await;

    // the session made on the dead instance opens on the others, and the
    // dong's queue is the same on both, every household on it
    let want: BTreeSet<String> = households.iter().cloned().collect();
    let survivors: Vec<usize> = (0..4).filter(|&i| i != victim).collect();
    for &i in &survivors {
        assert_eq!(
            view(web(i), cookie.clone(), first.clone()).await,
            200,
            "the session opens on instance {}",
            names[i]
        );
        let mut seen = BTreeSet::new();
        for _ in 0..300 {
            seen = queue_on(web(i), token.clone()).await;
            if want.is_subset(&seen) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let missing: Vec<_> = want.difference(&seen).collect();
        assert!(missing.is_empty(), "{}'s queue lacks {missing:?}", names[i]);
    }
    let queues = [
        queue_on(web(survivors[0]), token.clone()).await,
        queue_on(web(survivors[1]), token.clone()).await,
        queue_on(web(survivors[2]), token.clone()).await,
    ];
    assert!(
        queues[0] == queues[1] && queues[1] == queues[2],
        "one queue on every instance: {queues:?}"
    );
    // the city's chart counts every alert once, wherever it is drawn
    let (_, city) = users::add(
        Accounts::Store(at.open("accounts").unwrap()),
        "박시청",
        Role::City,
        None,
    )
    .unwrap();
    let charted = |addr: SocketAddr, city: String| {
        blocking(move || {
            let auth = format!("Bearer {city}");
            let body = http(addr, "GET", "/api/city", &[("Authorization", &auth)], "").2;
            let data: Value = serde_json::from_str(&body).unwrap_or_default();
            let counted: u64 = data["alerts_per_day"]
                .as_object()
                .into_iter()
                .flat_map(|days| days.values())
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .filter_map(|n| n.as_u64())
                .sum();
            (counted, body)
        })
    };
    for &i in &survivors {
        // the new account reaches every instance within seconds
        let mut seen = (0, String::new());
        for _ in 0..100 {
            seen = charted(web(i), city.clone()).await;
            if seen.0 == 3 * households.len() as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            seen.0,
            3 * households.len() as u64,
            "{}: {}",
            names[i],
            seen.1
        );
    }

    // who saw the household: views served by different instances
    let audit = sagak(&configs[0], &["audit", "--household", first, "--json"]);
    let served: BTreeSet<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == "view_household")
        .filter_map(|e| e["instance"].as_str().map(str::to_string))
        .collect();
    assert_eq!(served.len(), 4, "views on four instances: {audit}");

    for &i in &survivors {
        signal(&procs[i].0, "-TERM");
    }
    for &i in &survivors {
        let exit = wait_exit(&mut procs[i].0, Duration::from_secs(30));
        assert!(exit.is_some_and(|e| e.success()), "{}: {exit:?}", names[i]);
    }

    // each alert id names one alert; each household took each step once
    let seen = alerts.settle(Duration::from_secs(2)).await;
    let (distinct, repeats) = each_id_names_one_alert(seen.iter().map(Received::json));
    assert_eq!(distinct, 3 * households.len(), "{repeats} repeats");
    for hh in &households {
        let mut ids = BTreeSet::new();
        let steps: Vec<String> = alerts_of(seen, hh)
            .iter()
            .filter(|a| ids.insert(a["alert_id"].as_str().unwrap_or_default().to_string()))
            .map(|a| a["priority"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(steps, ["P3", "P2", "P1"], "{hh}: as a single clean run");
    }

    // the day's lists from what the store holds: every household once
    let date = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    sagak(&configs[0], &["lists", "--date", &date]);
    let out = at.open("out").unwrap();
    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for key in out.list("").unwrap() {
        let file = key.rsplit('/').next().unwrap_or_default();
        if !key.contains(&date) || !file.ends_with(".csv") || file.starts_with("escalations") {
            continue;
        }
        let text = String::from_utf8(out.get(&key).unwrap().unwrap()).unwrap();
        let mut lines = text.trim_start_matches('\u{feff}').lines();
        let header = split_csv(lines.next().unwrap_or_default());
        let id = header
            .iter()
            .position(|h| h.ends_with("household_id"))
            .expect("a household_id column");
        for row in lines.map(split_csv) {
            *times.entry(row[id].clone()).or_default() += 1;
        }
    }
    for hh in &households {
        assert_eq!(
            times.get(hh),
            Some(&1),
            "{hh} on the day's lists: {times:?}"
        );
    }
}
