//! The web front as the offices and the city team use it: logging in with a
//! person's token in a real browser (headless Chromium over WebDriver),
//! recording an outcome that lands on the broker's outcomes topic, the
//! refusals a person of another dong gets, CSRF, revocation, and the audit
//! log read back with `sagak audit`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sagak::web::users::{self, Role, User};

use crate::support::*;

pub(crate) const DONG: &str = "4125052000";
pub(crate) const OTHER: &str = "4125053500";

/// A web front on a running pipeline, with one account per role.
pub(crate) struct Front {
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) dong: (User, String),
    pub(crate) other: (User, String),
    pub(crate) city: (User, String),
    pub(crate) server: sagak::web::WebServer,
}

impl Front {
    pub(crate) async fn start(s: &Scenario, pipeline: &RunningPipeline) -> Front {
        let producer = sagak::kafka::outcomes::OutcomeProducer::new(
            &s.settings.kafka,
            &s.settings.topics.outcomes,
        )
        .unwrap();
        Front::on(&s.spec, pipeline.ops.clone(), Arc::new(producer), None).await
    }

    pub(crate) async fn on(
        spec: &sagak::definition::PipelineSpec,
        ops: Arc<sagak::ops::OpsState>,
        publisher: Arc<dyn sagak::web::OutcomePublisher>,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Front {
        let dir = tempfile::tempdir().unwrap();
        let users_file = dir.path().join("users.json");
        let dong = users::add(&users_file, "김생연", Role::Dong, Some(DONG)).unwrap();
        let other = users::add(&users_file, "이송내", Role::Dong, Some(OTHER)).unwrap();
        let city = users::add(&users_file, "박시청", Role::City, None).unwrap();
        std::fs::create_dir_all(dir.path().join("lists/2026-12-01")).unwrap();
        // a day is on the lists page once its manifest is written (last)
        std::fs::write(dir.path().join("lists/2026-12-01/manifest.json"), "{}").unwrap();
        for d in [DONG, OTHER] {
            std::fs::write(
                dir.path().join(format!("lists/2026-12-01/{d}.csv")),
                "\u{feff}순위 rank,가구ID household_id\n1,hh-x\n",
            )
            .unwrap();
        }
        let cfg = sagak::web::WebConfig {
            listen: "127.0.0.1:0".into(),
            tls,
            trusted_proxy: None,
            users_file,
            audit_dir: dir.path().join("audit"),
            audit_store: None,
            users_store: None,
            lists: sagak::store::open(dir.path()).unwrap(),
            out_dir: dir.path().to_path_buf(),
            idle: Duration::from_secs(8 * 3600),
            login_failures_per_minute: 5,
        };
        let server = sagak::web::start(cfg, spec, ops, publisher)
            .await
            .expect("the web front starts");
        Front {
            addr: server.addr,
            dir,
            dong,
            other,
            city,
            server,
        }
    }

    fn audit_dir(&self) -> PathBuf {
        self.dir.path().join("audit")
    }
}

/// One HTTP/1.1 request: (status, headers, body).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Logs in with `token`; the session cookie.
pub(crate) fn login(addr: SocketAddr, token: &str) -> Option<String> {
    let (status, head, _) = http(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={token}"),
    );
    if status != 303 {
        return None;
    }
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Signals that make `household` a P1 of `DONG`, and a job loss in `OTHER`.
pub(crate) async fn alert_two_households(
    s: &Scenario,
    pipeline: &RunningPipeline,
    household: &str,
    far: &str,
) {
    let p = s.producer();
    let day = days_ago(5);
    p.signal(
        &s.topic("utility-arrears"),
        &utility(
            &format!("u-{household}"),
            household,
            &day,
            "electricity",
            4,
            true,
        ),
    )
    .await;
    p.signal(
        &s.topic("health-insurance"),
        &health(&format!("h-{household}"), household, &day, 5),
    )
    .await;
    p.signal(
        &s.topic("job-loss"),
        &sagak::testkit::job_loss(&format!("j-{far}"), far, &day, OTHER),
    )
    .await;
    for _ in 0..600 {
        if pipeline.ops.work.get(household).is_some() && pipeline.ops.work.get(far).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the households never reached the work queue");
}

/// chromedriver on a free port, and a WebDriver session of headless Chromium.
pub(crate) struct Browser {
    driver: Child,
    _profile: tempfile::TempDir,
    pub(crate) client: fantoccini::Client,
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        let chromium = ensure_tool("chromium", "chromium");
        let chromedriver = ensure_tool("chromedriver", "chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--disable-quic", "--window-size=1400,1100", "--lang=ko-KR",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    return Browser {
                        driver,
                        _profile: profile,
                        client,
                    }
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    pub(crate) async fn text_of(&self, css: &str) -> String {
        match self.client.find(fantoccini::Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the element's text contains `what`.
    pub(crate) async fn wait_text(&self, css: &str, what: &str) -> String {
        for _ in 0..200 {
            let t = self.text_of(css).await;
            if t.contains(what) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{css} never showed {what:?}: {}",
            self.client.source().await.unwrap_or_default()
        );
    }

    /// Opens `url` again until `css` shows `what` (what a person does on a
    /// page that does not refresh itself); its last text.
    pub(crate) async fn reload_until(&self, url: &str, css: &str, what: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            self.client.goto(url).await.unwrap();
            text = self.text_of(css).await;
            if text.contains(what) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        text
    }

    pub(crate) async fn screenshot(&self, path: &Path) -> Vec<u8> {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, &png).unwrap();
        png
    }

    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `sagak demo --serve` on a free port, run until its pages are up: its
/// output folder, what it printed and the tokens it made (the city's
/// first, then one per dong in the pipeline's order).
pub(crate) struct ServedDemo {
    pub(crate) child: Child,
    pub(crate) out: tempfile::TempDir,
    pub(crate) port: u16,
    pub(crate) printed: String,
    pub(crate) tokens: Vec<String>,
}

impl ServedDemo {
    pub(crate) fn start(households: u32, days: u32, stderr: Stdio) -> ServedDemo {
        let out = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sagak"))
            .args(["demo", "--households", &households.to_string()])
            .args(["--days", &days.to_string(), "--serve", "--out"])
            .arg(out.path())
            .env("SAGAK__WEB__LISTEN", format!("127.0.0.1:{port}"))
            .env("SAGAK__HTTP__ENABLED", "false")
            .env("RUST_LOG", "info")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        let mut tokens: Vec<String> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while !printed.contains("Ctrl-C to stop") && std::time::Instant::now() < deadline {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) == 0 {
                break;
            }
            printed.push_str(&line);
        }
        // the tokens are in a file only the user reads, never on the output
        let tokens_file = out.path().join("demo-tokens.txt");
        if let Ok(text) = std::fs::read_to_string(&tokens_file) {
            for line in text.lines().filter(|l| l.starts_with("u-")) {
                tokens.push(
                    line.split_whitespace()
                        .last()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        ServedDemo {
            child,
            out,
            port,
            printed,
            tokens,
        }
    }
}

impl Drop for ServedDemo {
    /// A failed assertion leaves no demo running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn is_png_with_content(png: &[u8]) -> bool {
    png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dong_office_records_a_visit_in_the_browser_and_the_city_sees_its_charts() {
    // first contacts due within seconds: the other dong's alert goes overdue
    let due = pipeline_due_in("4s");
    let s = Scenario::with_pipeline("web", broker(), due.path()).await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    alert_two_households(&s, &pipeline, "hh-web", "hh-far").await;
    let base = format!("http://{}", front.addr);
    let b = Browser::start().await;
    let c = &b.client;
    use fantoccini::Locator::Css;

    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Css("#token"))
        .await
        .unwrap()
        .send_keys(&front.dong.1)
        .await
        .unwrap();
    c.find(Css("#login")).await.unwrap().click().await.unwrap();
    let queue = b.wait_text("#queue", "hh-web").await;
    assert!(
        !queue.contains("hh-far"),
        "another dong's household is not on this queue: {queue}"
    );
    assert!(queue.contains("P1"), "{queue}");
    assert!(
        queue.contains("건강보험료 5개월 체납"),
        "reasons in Korean: {queue}"
    );
    assert!(b.text_of("#who").await.contains("김생연"));
    let shots = std::env::temp_dir().join(format!("sagak-web-{}", std::process::id()));
    std::fs::create_dir_all(&shots).unwrap();
    assert!(is_png_with_content(
        &b.screenshot(&shots.join("queue.png")).await
    ));

    c.find(Css("a[href='/households/hh-web']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("#status", "신규").await;
    c.find(Css("#kind option[value='contact_attempted']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Css("#channel option[value='visit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Css("#result option[value='reached']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Css("#record")).await.unwrap().click().await.unwrap();
    b.wait_text("#notice", "기록되었습니다").await;
    // the pipeline reads it back from the topic and the page follows
    b.wait_text("#status", "연락됨").await;
    let status = c.find(Css("#status")).await.unwrap();
    assert_eq!(
        status.attr("data-status").await.unwrap().as_deref(),
        Some("contacted")
    );
    assert!(
        c.find(Css("#status .status.s-contacted")).await.is_ok(),
        "its colour kept"
    );
    b.wait_text("#history", "연락 시도 (연락됨)").await;

    let mut outcomes = Collector::on(&s.settings.topics.outcomes, &s.settings.kafka.brokers);
    let seen = outcomes
        .wait_for("the recorded outcome", |seen| !seen.is_empty())
        .await;
    let o = seen[0].json();
    assert_eq!(o["household_id"], "hh-web");
    assert_eq!(
        o["staff_id"],
        front.dong.0.id.as_str(),
        "the person from the session"
    );
    assert_eq!(o["dong_code"], DONG);
    assert_eq!(
        (
            o["kind"].as_str(),
            o["channel"].as_str(),
            o["result"].as_str()
        ),
        (Some("contact_attempted"), Some("visit"), Some("reached"))
    );
    assert_eq!(
        seen[0].key.as_deref(),
        Some(&b"hh-web"[..]),
        "keyed by household like every outcome"
    );
    let url = c.current_url().await.unwrap().to_string();
    assert!(!url.contains(&front.dong.1), "no token in a URL: {url}");
    assert!(
        !c.source().await.unwrap().contains(&front.dong.1),
        "no token in a page"
    );

    // the city team: overdue queue, charts, Korean text in the screenshot
    c.find(Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Css("#token"))
        .await
        .unwrap()
        .send_keys(&front.city.1)
        .await
        .unwrap();
    c.find(Css("#login")).await.unwrap().click().await.unwrap();
    let dongs = b.wait_text("#dongs", "생연2동").await;
    assert!(
        dongs.contains("송내동") || dongs.contains(OTHER),
        "every dong side by side: {dongs}"
    );
    let charts = c.find_all(Css("svg.chart")).await.unwrap();
    assert_eq!(
        charts.len(),
        3,
        "alerts per day, time to first contact, open and overdue per dong"
    );
    let source = c.source().await.unwrap();
    assert!(
        source.contains("P1: 1"),
        "today's P1 alert is on the chart: {source}"
    );
    // the overdue alert of the other dong reaches the city team's queue
    let escalations = b
        .reload_until(&format!("{base}/city"), "#escalations", "hh-far")
        .await;
    assert!(
        escalations.contains("hh-far") && escalations.contains("기한초과"),
        "{escalations}"
    );
    assert!(c
        .find(Css("#escalations tr.r-overdue[data-household='hh-far']"))
        .await
        .is_ok());
    let png = b.screenshot(&shots.join("city.png")).await;
    assert!(is_png_with_content(&png), "{} bytes", png.len());
    c.goto(&format!("{base}/queue?dong={OTHER}")).await.unwrap();
    b.wait_text("#queue", "hh-far").await;
    println!("screenshots in {}", shots.display());
    b.close().await;
    front.server.abort();
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_dong_is_refused_and_audited_csrf_and_revocation_hold() {
    let s = Scenario::new("web-deny").await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    alert_two_households(&s, &pipeline, "hh-mine", "hh-theirs").await;
    let addr = front.addr;
    let (other, other_token) = front.other.clone();
    let (dong_user, dong_token) = front.dong.clone();
    let city_token = front.city.1.clone();

    let checks = blocking(move || {
        let bearer = format!("Bearer {other_token}");
        let auth = [("Authorization", bearer.as_str())];
        // the other dong's office: page, API and list file of DONG
        let other_cookie = login(addr, &other_token).expect("the other office logs in");
        let page = http(
            addr,
            "GET",
            "/households/hh-mine",
            &[("Cookie", &other_cookie)],
            "",
        );
        let api = http(addr, "GET", "/api/households/hh-mine", &auth, "");
        let list = http(
            addr,
            "GET",
            &format!("/lists/2026-12-01/{DONG}.csv"),
            &auth,
            "",
        );
        let queue = http(addr, "GET", &format!("/api/queue?dong={DONG}"), &auth, "");
        let own_list = http(
            addr,
            "GET",
            &format!("/lists/2026-12-01/{OTHER}.csv"),
            &auth,
            "",
        );
        let unknown = http(addr, "GET", "/api/households/hh-nobody", &auth, "");
        // the household's own office and the city see it
        let mine = http(
            addr,
            "GET",
            "/api/households/hh-mine",
            &[("Authorization", &format!("Bearer {dong_token}"))],
            "",
        );
        let city = http(
            addr,
            "GET",
            "/api/households/hh-mine",
            &[("Authorization", &format!("Bearer {city_token}"))],
            "",
        );
        // a form without its CSRF token
        let cookie = login(addr, &dong_token).expect("the office logs in");
        let forged = http(
            addr,
            "POST",
            "/households/hh-mine/outcomes",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "kind=contact_attempted&channel=visit&result=reached",
        );
        let bad = http(
            addr,
            "POST",
            "/api/households/hh-mine/outcomes",
            &[
                ("Authorization", &format!("Bearer {dong_token}")),
                ("Content-Type", "application/json"),
            ],
            r#"{"kind":"contact_attempted","channel":"pigeon","result":"reached"}"#,
        );
        (
            page, api, list, queue, own_list, unknown, mine, city, forged, bad, cookie,
        )
    })
    .await;
    let (page, api, list, queue, own_list, unknown, mine, city, forged, bad, cookie) = checks;
    assert_eq!(page.0, 403, "{page:?}");
    assert!(
        !page.2.contains("건강보험료"),
        "no household data in the refusal"
    );
    assert_eq!(api.0, 403);
    assert_eq!(list.0, 403);
    assert_eq!(queue.0, 403);
    assert_eq!(own_list.0, 200, "its own list downloads");
    assert!(own_list.2.contains("hh-x"));
    assert!(
        own_list.1.contains("no-store"),
        "household data is not cached: {}",
        own_list.1
    );
    assert_eq!(unknown.0, 404);
    assert_eq!(mine.0, 200, "{mine:?}");
    assert_eq!(city.0, 200);
    assert_eq!(forged.0, 403, "a POST without the CSRF token is refused");
    assert_eq!(
        bad.0, 400,
        "an outcome the pipeline would reject is not sent: {bad:?}"
    );
    assert!(bad.2.contains("channel"), "{}", bad.2);
    assert!(
        mine.1
            .contains("content-security-policy: default-src 'none'"),
        "{}",
        mine.1
    );

    // every refusal is in the audit log with the person's id
    let entries = sagak::web::audit::search(
        &front.audit_dir(),
        &sagak::web::audit::AuditQuery {
            user: Some(other.id.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let denied: Vec<&str> = entries
        .iter()
        .filter(|e| e.action == "denied")
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        denied,
        [
            "/households/hh-mine",
            "/api/households/hh-mine",
            &format!("/lists/2026-12-01/{DONG}.csv"),
            "/api/queue"
        ],
        "{entries:#?}"
    );

    // `sagak audit --household` lists exactly the views of hh-mine
    let out = Command::new(env!("CARGO_BIN_EXE_sagak"))
        .args(["audit", "--household", "hh-mine", "--json"])
        .env("SAGAK__WEB__AUDIT_DIR", front.audit_dir())
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(String, String, u64)> = lines
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let city_id = front.city.0.id.clone();
    assert_eq!(
        seen,
        [
            (other.id.clone(), "denied".to_string(), 403),
            (other.id.clone(), "denied".to_string(), 403),
            (dong_user.id.clone(), "view_household".to_string(), 200),
            (city_id, "view_household".to_string(), 200),
            (
                dong_user.id.clone(),
                "record_outcome_refused".to_string(),
                403
            ),
        ],
        "{lines:#?}"
    );

    // the city's JSON names households on its boards: each is audited
    let city_token = front.city.1.clone();
    let (status, _, body) = blocking(move || {
        http(
            addr,
            "GET",
            "/api/city",
            &[("Authorization", &format!("Bearer {city_token}"))],
            "",
        )
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hh-mine"), "{body}");
    let city_views: Vec<_> = sagak::web::audit::search(
        &front.audit_dir(),
        &sagak::web::audit::AuditQuery {
            user: Some(front.city.0.id.clone()),
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .filter(|e| e.action == "view_city")
    .collect();
    assert_eq!(city_views.len(), 1);
    assert!(
        city_views[0].households.iter().any(|h| h == "hh-mine"),
        "{city_views:?}"
    );

    // revoked: the token no longer logs in, and the session ends within seconds
    users::revoke(&front.dir.path().join("users.json"), &dong_user.id).unwrap();
    let token = front.dong.1.clone();
    let (relogin, still) = blocking(move || {
        let mut still = 200;
        for _ in 0..100 {
            still = http(addr, "GET", "/queue", &[("Cookie", &cookie)], "").0;
            if still != 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (login(addr, &token), still)
    })
    .await;
    assert!(relogin.is_none(), "a revoked token no longer logs in");
    assert_eq!(
        still, 303,
        "the revoked person's session ended: back to the login page"
    );
    front.server.abort();
    pipeline.stop().await;
}

#[test]
fn the_demo_makes_accounts_and_its_pages_take_an_outcome_after_the_simulation() {
    let mut demo = ServedDemo::start(1500, 40, Stdio::piped());
    let (port, printed, tokens) = (demo.port, demo.printed.clone(), demo.tokens.clone());
    assert!(
        printed.contains(&format!("http://127.0.0.1:{port}/")),
        "{printed}"
    );
    assert_eq!(
        tokens.len(),
        1 + 8,
        "a city account and one per dong: {printed}"
    );
    // the tokens are in a file its owner alone reads, never on the output
    // (which a user may send to a shared log); household folders are private
    assert!(
        tokens.iter().all(|t| !printed.contains(t.as_str())),
        "{printed}"
    );
    assert!(printed.contains("demo-tokens.txt"), "{printed}");
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&demo.out.path().join("demo-tokens.txt")), 0o600);
    assert_eq!(mode(&demo.out.path().join("lists")), 0o700);
    assert_eq!(mode(&demo.out.path().join("audit")), 0o700);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // a dong office (생연2동, the second account) picks its first household
    let dong_token = &tokens[2];
    let auth = format!("Bearer {dong_token}");
    let (status, _, body) = http(addr, "GET", "/api/queue", &[("Authorization", &auth)], "");
    assert_eq!(status, 200, "{body}");
    let queue: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = queue["households"][0]["household_id"]
        .as_str()
        .map(str::to_string);
    let first = first.unwrap_or_else(|| {
        queue["in_case"][0]["household_id"]
            .as_str()
            .unwrap_or("hh-suwon-2022")
            .to_string()
    });
    let (status, _, body) = http(
        addr,
        "POST",
        &format!("/api/households/{first}/outcomes"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"kind":"counselled","note":"상담 완료"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let mut last = String::new();
    for _ in 0..100 {
        last = http(
            addr,
            "GET",
            &format!("/api/households/{first}"),
            &[("Authorization", &auth)],
            "",
        )
        .2;
        if last.contains("\"counselled\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        last.contains("\"kind\":\"counselled\""),
        "the engine took it: {last}"
    );
    let _ = demo.child.kill();
    let mut stderr = String::new();
    let _ = demo
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr);
    for t in &tokens {
        assert!(!stderr.contains(t.as_str()), "no token in a log line");
    }
    let users = std::fs::read_to_string(demo.out.path().join("demo-users.json")).unwrap();
    assert!(!users.contains(dong_token.as_str()), "only hashes are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure_and_failed_logins_are_limited() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path(), "web");
    let spec = sagak::definition::PipelineSpec::embedded_default().unwrap();
    let ops = Arc::new(sagak::ops::OpsState::new(
        &spec,
        sagak::metrics::Metrics::new(&spec),
        "demo",
    ));
    let (inbox, _rx) =
        sagak::embedded::inbox::Inbox::new(spec.outcome_feed(), "dong-office.outcomes");
    let front = Front::on(&spec, ops, Arc::new(inbox), Some((cert, key))).await;
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let post = |token: String| {
        let connector = connector.clone();
        let addr = front.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = connector
                .connect(name, tcp)
                .await
                .expect("TLS handshake with the test CA");
            let body = format!("token={token}");
            let req = format!("POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            tls.write_all(req.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            let _ = tls.read_to_end(&mut raw).await;
            String::from_utf8_lossy(&raw).into_owned()
        }
    };
    let ok = post(front.dong.1.clone()).await;
    assert!(ok.starts_with("HTTP/1.1 303"), "{ok}");
    let cookie = ok
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // plain HTTP on the TLS port gets nothing
    let plain = blocking({
        let addr = front.addr;
        move || http(addr, "GET", "/login", &[], "").0
    })
    .await;
    assert_ne!(plain, 200);
    // five failures a minute from one address, then it must wait
    for _ in 0..5 {
        assert!(post("wrong".into()).await.starts_with("HTTP/1.1 401"));
    }
    let limited = post("wrong again".into()).await;
    assert!(
        limited.starts_with("HTTP/1.1 429") && limited.to_lowercase().contains("retry-after"),
        "{limited}"
    );
    // the right token still logs in: colleagues behind one NAT address are
    // not locked out by one person's typos
    let colleague = post(front.dong.1.clone()).await;
    assert!(colleague.starts_with("HTTP/1.1 303"), "{colleague}");
    let failures = sagak::web::audit::search(&front.audit_dir(), &Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "login_failed")
        .count();
    assert_eq!(
        failures, 6,
        "every failed login is audited, the one refused with 429 too"
    );
    front.server.abort();
}

/// The city reads the yield of the rules on its page after five months of
/// the demo (150 days): every alert whose answer window closed is counted once per
/// dimension, small counts carry no share, and the page draws the table
/// on a desk and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_reads_the_rule_yield_of_the_demo_in_a_browser() {
    let demo = ServedDemo::start(2000, 150, Stdio::null());
    let (port, city) = (demo.port, demo.tokens[0].clone());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token = city.clone();
    let body = blocking(move || {
        let auth = format!("Bearer {token}");
        http(addr, "GET", "/api/city", &[("Authorization", &auth)], "").2
    })
    .await;
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = data["rule_yield"].as_array().cloned().unwrap_or_default();
    let total = |dimension: &str| -> u64 {
        rows.iter()
            .filter(|r| r["dimension"] == dimension)
            .map(|r| r["alerts"].as_u64().unwrap())
            .sum()
    };
    let counted = total("priority");
    assert!(counted > 0, "some answer windows closed in 40 days: {body}");
    // each alert has one priority, one set of categories, one dong, one month
    for d in ["categories", "dong", "month"] {
        assert_eq!(total(d), counted, "{d}");
    }
    // beside each day's lists, as the book stood at that cut-off
    let lists = demo.out.path().join("lists");
    let mut days: Vec<_> = std::fs::read_dir(&lists)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    days.sort();
    let last = days.last().unwrap();
    let file = std::fs::read_to_string(last.join("rule-yield.csv")).unwrap();
    assert!(
        file.starts_with("\u{feff}dimension,value,alerts,helped,reached,"),
        "{file}"
    );
    let in_file: u64 = file
        .lines()
        .filter(|l| l.starts_with("priority,"))
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(in_file > 0 && in_file <= counted, "{in_file} {counted}");
    assert!(last.join("rule-yield.parquet").exists());
    for r in &rows {
        let n = r["alerts"].as_u64().unwrap();
        let sum: u64 = r["results"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(sum, n, "{r}");
        assert_eq!(
            r["helped_share"].is_null(),
            n < 20,
            "a share only for 20 alerts or more: {r}"
        );
    }

    // fairness: the dongs whose P1 households waited longest come first
    let fair = data["fairness"].as_array().cloned().unwrap_or_default();
    let p1: Vec<f64> = fair
        .iter()
        .filter(|r| r["priority"] == "P1")
        .filter_map(|r| r["median_days_to_first_reach"].as_f64())
        .collect();
    assert!(!p1.is_empty(), "{body}");
    assert!(p1.windows(2).all(|w| w[0] >= w[1]), "{p1:?}");
    for r in &fair {
        let (n, reached, in_time) = (
            r["alerts"].as_u64(),
            r["reached"].as_u64(),
            r["in_time"].as_u64(),
        );
        assert!(in_time <= reached && reached <= n, "{r}");
    }

    // why the planted household stands where it does: the household's API
    // says what the demo's `sagak explain` said of its case
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(demo.out.path().join("summary.json")).unwrap(),
    )
    .unwrap();
    let explained = summary["follow_up"]["planted_explained"]
        .as_str()
        .unwrap()
        .to_string();
    let token = city.clone();
    let body = blocking(move || {
        let auth = format!("Bearer {token}");
        http(
            addr,
            "GET",
            "/api/households/hh-suwon-2022",
            &[("Authorization", &auth)],
            "",
        )
        .2
    })
    .await;
    let household: serde_json::Value = serde_json::from_str(&body).unwrap();
    let why = household["why"].as_str().unwrap_or_default();
    assert!(why.starts_with("case / 사례: "), "{body}");
    assert!(explained.ends_with(why), "{explained}\n---\n{why}");

    let b = Browser::start().await;
    let c = &b.client;
    let base = format!("http://127.0.0.1:{port}");
    crate::open_work::log_in(&b, &base, &city, "시 통합사례관리팀").await;
    // the same words on the household's page
    c.goto(&format!("{base}/households/hh-suwon-2022"))
        .await
        .unwrap();
    let page_why = b.wait_text("#why", "사례").await;
    assert_eq!(page_why.trim(), why.trim());
    c.set_window_size(1400, 1100).await.unwrap();
    c.goto(&format!("{base}/city")).await.unwrap();
    let p1 = b
        .wait_text("#rule-yield tr[data-dimension='priority']", "P")
        .await;
    assert!(p1.contains("우선순위"), "{p1}");
    let first = b.text_of("#fairness tbody tr").await;
    assert!(first.contains("일"), "{first}");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rule-yield");
    std::fs::create_dir_all(&shots).unwrap();
    // the table itself, wherever the page puts it
    let table = |name: &'static str| {
        let path = shots.join(name);
        async move {
            let found = c.find(fantoccini::Locator::Css("#rule-yield")).await;
            let png = found.unwrap().screenshot().await.unwrap();
            std::fs::write(&path, &png).unwrap();
            png
        }
    };
    assert!(is_png_with_content(&table("city-yield-1400.png").await));
    c.set_window_size(390, 844).await.unwrap();
    assert!(is_png_with_content(&table("city-yield-390.png").await));
    b.close().await;
    drop(demo);
}
