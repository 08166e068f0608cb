//! The web front as an outside tester and an official meet it: forgery,
//! injection, RRNs in addresses, what the audit names, slow clients on
//! both listeners, wrong tokens; then an office's day in headless
//! Chromium on a desk (1400 px), a phone (390 px) and paper (a visit sheet
//! printed to PDF), and the city taking an escalation that another session
//! sees.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::Locator::Css;
use sagak::testkit::{health, utility};
use sagak::web::audit::{search, AuditEntry, AuditQuery};

use crate::open_work::log_in;
use crate::support::*;
use crate::web::{
    alert_two_households, blocking, http, is_png_with_content, login, Browser, Front, DONG,
};

/// The session's CSRF token, read off a page as a script would.
fn csrf_of(addr: SocketAddr, cookie: &str) -> String {
    let (_, _, page) = http(addr, "GET", "/queue", &[("Cookie", cookie)], "");
    let marker = r#"<meta name="csrf-token" content=""#;
    let at = page.find(marker).expect("the page's token") + marker.len();
    page[at..].split('"').next().unwrap().to_string()
}

fn audit_of(front: &Front) -> Vec<AuditEntry> {
    search(&front.dir.path().join("audit"), &AuditQuery::default()).unwrap()
}

/// Every audit line as written, for what must never be in it.
fn audit_text(front: &Front) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(front.dir.path().join("audit")).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    all
}

/// A connection from `source` (any 127.x address is this machine), made
/// from a blocking task of the test's runtime.
fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let connected = tokio::runtime::Handle::current().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        socket.connect(to).await.unwrap()
    });
    let s = connected.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    s
}

/// One request on a connection from `source`: (status, body).
fn request_from(source: [u8; 4], to: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = connect_from(source, to);
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Whether the peer closes an idle connection within `within`.
fn closed_within(mut s: TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).ok();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 before the close
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgery_injection_rrns_in_addresses_and_wrong_tokens_are_refused_and_audited() {
    let s = Scenario::new("front-holes").await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    alert_two_households(&s, &pipeline, "hh-mine", "hh-theirs").await;
    let addr = front.addr;
    let (dong_token, city_token) = (front.dong.1.clone(), front.city.1.clone());
    let checks = blocking(move || {
        let cookie = login(addr, &dong_token).expect("a session");
        let csrf = csrf_of(addr, &cookie);
        let post = |headers: &[(&str, &str)], body: &str| {
            http(addr, "POST", "/api/households/hh-mine/outcomes", headers, body).0
        };
        // a page of another site posting with the office's cookie
        let forged = post(
            &[("Cookie", &cookie), ("Origin", "https://evil.example"), ("Content-Type", "text/plain")],
            r#"{"kind":"declined"}"#,
        );
        let no_token = post(
            &[("Cookie", &cookie), ("Origin", "http://localhost"), ("Content-Type", "application/json")],
            r#"{"kind":"declined"}"#,
        );
        let no_origin = post(
            &[("Cookie", &cookie), ("X-CSRF-Token", &csrf), ("Content-Type", "application/json")],
            r#"{"kind":"declined"}"#,
        );
        let own = post(
            &[
                ("Cookie", &cookie),
                ("Origin", "http://localhost"),
                ("X-CSRF-Token", &csrf),
                ("Content-Type", "application/json"),
            ],
            r#"{"kind":"contact_attempted","channel":"phone","result":"no_answer"}"#,
        );
        let evil_login = http(
            addr,
            "POST",
            "/login",
            &[("Origin", "https://evil.example"), ("Content-Type", "application/x-www-form-urlencoded")],
            &format!("token={dong_token}"),
        );
        // markup in a dong code, as the city
        let city_cookie = login(addr, &city_token).expect("a city session");
        let injected = http(
            addr,
            "GET",
            "/queue?dong=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%3Cmeta%20http-equiv%3Drefresh%3E",
            &[("Cookie", &city_cookie)],
            "",
        );
        // an RRN typed into addresses and a form
        let rrn_page = http(addr, "GET", "/households/8807153456789", &[("Cookie", &cookie)], "");
        let rrn_file = http(addr, "GET", "/lists/2026-12-01/880715-3456789.csv", &[("Cookie", &cookie)], "");
        let rrn_form = http(
            addr,
            "POST",
            "/households/hh-mine/outcomes",
            &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            &format!("csrf={csrf}&kind=8807153456789"),
        );
        // wrong bearer tokens from one address, then the right one from it
        let wrong: Vec<u16> = (0..6)
            .map(|_| {
                request_from(
                    [127, 0, 0, 3],
                    addr,
                    "GET /api/queue HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n",
                )
                .0
            })
            .collect();
        let right = request_from(
            [127, 0, 0, 3],
            addr,
            &format!("GET /api/queue HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {dong_token}\r\nConnection: close\r\n\r\n"),
        )
        .0;
        // the city's escalation states through the API: the city only
        let take = |token: &str| {
            let auth = format!("Bearer {token}");
            http(
                addr,
                "POST",
                "/api/city/escalations/esc-none",
                &[("Authorization", &auth), ("Content-Type", "application/json")],
                r#"{"state":"taken"}"#,
            )
            .0
        };
        let takes = (take(&city_token), take(&dong_token));
        (forged, no_token, no_origin, own, evil_login, injected, rrn_page, rrn_file, rrn_form, wrong, right, takes)
    })
    .await;
    let (
        forged,
        no_token,
        no_origin,
        own,
        evil_login,
        injected,
        rrn_page,
        rrn_file,
        rrn_form,
        wrong,
        right,
        takes,
    ) = checks;
    assert_eq!(
        takes,
        (404, 403),
        "an unknown escalation; an office may not set one"
    );
    assert_eq!(
        (forged, no_token, no_origin, own),
        (403, 403, 403, 202),
        "only the page's own request is taken"
    );
    assert_eq!(evil_login.0, 403, "{}", evil_login.1);
    assert!(
        !evil_login.1.to_lowercase().contains("set-cookie"),
        "no session for a forged login"
    );
    assert_eq!(injected.0, 404, "an unknown dong");
    assert!(
        !injected.2.contains("<img") && !injected.2.contains("<meta http-equiv"),
        "{}",
        injected.2
    );
    assert_eq!(rrn_page.0, 400);
    assert_eq!(rrn_file.0, 403);
    assert_eq!(rrn_form.0, 400);
    assert!(
        !rrn_form.2.contains("8807153456789"),
        "the form does not echo it"
    );
    assert_eq!(
        wrong,
        [401, 401, 401, 401, 401, 429],
        "wrong tokens are limited per address"
    );
    assert_eq!(
        right, 200,
        "the right token is never locked out by others' failures"
    );

    // the household stays on the queue: the forged `declined` never went out
    let settled = sagak_household(addr, &front.dong.1, "hh-mine", |h| {
        h["status"] == "attempting"
    })
    .await;
    assert_eq!(settled["open"], true, "{settled}");

    let text = audit_text(&front);
    assert!(
        !text.contains("8807153456789") && !text.contains("880715-3456789"),
        "no RRN is kept"
    );
    let entries = audit_of(&front);
    let actions = |a: &str| entries.iter().filter(|e| e.action == a).count();
    assert_eq!(
        actions("forgery_refused"),
        3,
        "each forged request is audited"
    );
    assert_eq!(actions("login_refused"), 1);
    assert_eq!(
        actions("token_failed"),
        6,
        "wrong tokens, the limited one too"
    );
    assert!(entries
        .iter()
        .any(|e| e.action == "view_household" && e.status == 400 && e.households.is_empty()));
    front.server.abort();
    pipeline.stop().await;
}

/// Polls `/api/households/{id}` until `done`; its last answer.
async fn sagak_household(
    addr: SocketAddr,
    token: &str,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        let (token, path) = (token.to_string(), format!("/api/households/{id}"));
        let (_, _, body) = blocking(move || {
            http(
                addr,
                "GET",
                &path,
                &[("Authorization", &format!("Bearer {token}"))],
                "",
            )
        })
        .await;
        last = serde_json::from_str(&body).unwrap_or_default();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_hold_neither_listener_and_the_probe_answers() {
    let s = Scenario::new("front-slow").await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    let addr = front.addr;
    // the operations listener, as `sagak run` serves it
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    let ops = tokio::spawn(sagak::ops::http::serve(
        ops_listener,
        pipeline.ops.clone(),
        std::future::pending(),
    ));
    let outcome = blocking(move || {
        // sixty slow logins from one address, a byte sent of each body
        let slow: Vec<TcpStream> = (0..60)
            .map(|_| {
                let mut c = connect_from([127, 0, 0, 1], addr);
                c.write_all(b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nt").unwrap();
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        // another address is served at once; the slow ones still wait
        let other = request_from([127, 0, 0, 2], addr, "GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").0;
        let same = request_from([127, 0, 0, 1], addr, "GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").0;
        let probe = request_from([127, 0, 0, 1], addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").0;
        let mut waiting = 0;
        for mut c in slow {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            if matches!(c.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                waiting += 1;
            }
        }
        // the operations listener: an idle connection and a slow header
        let idle = connect_from([127, 0, 0, 1], ops_addr);
        let mut slow_header = connect_from([127, 0, 0, 1], ops_addr);
        slow_header.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        let header_cut = closed_within(slow_header, Duration::from_secs(45));
        let idle_cut = closed_within(idle, Duration::from_secs(45));
        (other, same, probe, waiting, header_cut, idle_cut, started.elapsed())
    })
    .await;
    let (other, same, probe, waiting, header_cut, idle_cut, took) = outcome;
    assert_eq!(other, 200, "another address is not held up");
    assert_eq!(same, 429, "one address has a bound of requests in flight");
    assert_eq!(probe, 200, "/healthz answers while the slots are held");
    assert!(
        waiting > 0,
        "the answers came while slow bodies were still held"
    );
    assert!(
        header_cut && idle_cut,
        "the operations listener closes slow and idle connections ({took:?})"
    );
    assert!(
        audit_of(&front)
            .iter()
            .any(|e| e.action == "limited" && e.status == 429),
        "a 429 is audited"
    );
    ops.abort();
    front.server.abort();
    pipeline.stop().await;
}

/// Signals that make `n` households of `DONG` P1 (`hh-d-000`...).
async fn many_households(s: &Scenario, pipeline: &RunningPipeline, n: usize) {
    let p = s.producer();
    let day = days_ago(3);
    for i in 0..n {
        let h = format!("hh-d-{i:03}");
        p.signal(
            &s.topic("utility-arrears"),
            &utility(&format!("u-{h}"), &h, &day, "electricity", 4, true),
        )
        .await;
        p.signal(
            &s.topic("health-insurance"),
            &health(&format!("h-{h}"), &h, &day, 5),
        )
        .await;
    }
    for _ in 0..600 {
        if pipeline.ops.work.of_dong(DONG).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the households never reached the queue");
}

async fn js(b: &Browser, script: &str) -> serde_json::Value {
    b.client.execute(script, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_official_works_from_the_queue_on_a_desk_a_phone_and_paper_and_the_city_takes_an_escalation(
) {
    let due = pipeline_due_in("4s");
    let s = Scenario::with_pipeline("front-day", broker(), due.path()).await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    many_households(&s, &pipeline, 56).await;
    // today's list as the office downloads it
    let day = front.dir.path().join("lists/2026-12-01");
    std::fs::write(
        day.join(format!("{DONG}.csv")),
        "\u{feff}순위 rank,가구ID household_id\n1,hh-d-000\n2,hh-d-001\n",
    )
    .unwrap();
    let base = format!("http://{}", front.addr);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("front-day");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;
    let c = &b.client;
    log_in(&b, &base, &front.dong.1, "김생연").await;

    // the queue: 50 a page, counts saying what is left out
    c.goto(&format!("{base}/queue")).await.unwrap();
    let counts = b.wait_text("#counts", "56가구").await;
    assert!(
        counts.contains("1–50번째") && counts.contains("1/2쪽"),
        "{counts}"
    );
    assert_eq!(
        c.find_all(Css("#queue tbody tr[data-household]"))
            .await
            .unwrap()
            .len(),
        50
    );
    let png = b.screenshot(&shots.join("queue-1400.png")).await;
    assert!(is_png_with_content(&png));
    c.find(Css("nav.paging a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let counts = b.wait_text("#counts", "2/2쪽").await;
    assert!(counts.contains("51–56번째"), "{counts}");
    // a search by id, then a filter that matches nobody
    c.goto(&format!("{base}/queue")).await.unwrap();
    c.find(Css("#q"))
        .await
        .unwrap()
        .send_keys("hh-d-007")
        .await
        .unwrap();
    c.find(Css("#filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("#counts", "조건에 맞는 1가구").await;
    c.goto(&format!("{base}/queue?tier=attempt_due"))
        .await
        .unwrap();
    b.wait_text("#empty", "조건에 맞는 가구가 없습니다").await;

    // on a phone: cards, nothing wider than the screen
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/queue")).await.unwrap();
    b.wait_text("#counts", "56가구").await;
    let head = js(
        &b,
        "return getComputedStyle(document.querySelector('#queue thead')).display",
    )
    .await;
    assert_eq!(head, "none", "rows are cards below 700 px");
    let wide = js(&b, "return document.documentElement.scrollWidth").await;
    assert!(
        wide.as_u64().unwrap() <= 400,
        "no sideways scrolling: {wide}"
    );
    let png = b.screenshot(&shots.join("queue-390.png")).await;
    assert!(is_png_with_content(&png));
    c.goto(&format!("{base}/households/hh-d-003"))
        .await
        .unwrap();
    b.wait_text("#status", "신규").await;
    b.screenshot(&shots.join("household-390.png")).await;
    c.set_window_size(1400, 1100).await.unwrap();

    // a refused outcome: the reason on the form in Korean, the note kept
    c.goto(&format!("{base}/households/hh-d-003"))
        .await
        .unwrap();
    b.wait_text("#status", "신규").await;
    let kind = js(&b, "return document.getElementById('kind').value").await;
    assert_eq!(kind, "", "no result is chosen for a hurried click");
    c.find(Css("#kind option[value='support_linked']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let note = "어르신 부재, 옆집 통해 연락 부탁";
    c.find(Css("#note"))
        .await
        .unwrap()
        .send_keys(note)
        .await
        .unwrap();
    c.find(Css("#record")).await.unwrap().click().await.unwrap();
    let error = b
        .wait_text("#form-error", "서비스를 하나 이상 고르세요")
        .await;
    assert!(
        !error.contains("services is missing:") || error.contains("("),
        "{error}"
    );
    let kept = js(&b, "return document.getElementById('note').value").await;
    assert_eq!(kept, note, "what was typed is kept");
    let options = c
        .find(Css("#result"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    assert!(
        !options.contains(">결번 wrong_number<") && options.contains(">결번<"),
        "labels without codes"
    );
    let png = b.screenshot(&shots.join("household-1400.png")).await;
    assert!(is_png_with_content(&png));

    // paper: a visit sheet of two ticked households, printed to A4 PDF
    c.goto(&format!("{base}/queue")).await.unwrap();
    b.wait_text("#counts", "56가구").await;
    for id in ["hh-d-000", "hh-d-001"] {
        c.find(Css(&format!(
            "tr[data-household='{id}'] input[type=checkbox]"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    }
    c.find(Css("#print-sheet"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("main", "방문 기록지 · hh-d-001").await;
    assert_eq!(
        c.find_all(Css("section.sheet-page")).await.unwrap().len(),
        2
    );
    let pdf = c
        .print(fantoccini::wd::PrintConfiguration::default())
        .await
        .expect("print to PDF");
    let pdf_path = shots.join("visit-sheet.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    assert!(
        pdf.starts_with(b"%PDF") && pdf.len() > 10_000,
        "{} bytes",
        pdf.len()
    );
    let text = Command::new(ensure_tool("pdftotext", "poppler-utils"))
        .arg(&pdf_path)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("방문 기록지") && text.contains("hh-d-000") && text.contains("방문 결과"),
        "{text}"
    );
    assert!(!text.contains("로그아웃"), "no menu on paper");
    let pages = text.matches('\u{c}').count();
    assert!(pages >= 2, "a page per household: {pages}");

    // the list file, downloaded
    c.goto(&format!("{base}/lists")).await.unwrap();
    b.wait_text("#lists", "2026-12-01").await;
    let (_, _, csv) = {
        let cookie = login(front.addr, &front.dong.1).unwrap();
        let addr = front.addr;
        blocking(move || {
            http(
                addr,
                "GET",
                &format!("/lists/2026-12-01/{DONG}.csv"),
                &[("Cookie", &cookie)],
                "",
            )
        })
        .await
    };
    assert!(csv.contains("hh-d-000"));

    // the city takes the overdue escalation; another session sees it
    log_in(&b, &base, &front.city.1, "박시청").await;
    let row = "#escalations tr[data-household='hh-d-000']";
    b.reload_until(
        &format!("{base}/city?dong={DONG}"),
        "#escalations",
        "hh-d-000",
    )
    .await;
    c.find(Css(&format!("{row} form.take button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = b.wait_text(&format!("{row} td.state"), "담당").await;
    assert!(state.contains("박시청"), "{state}");
    b.screenshot(&shots.join("city-1400.png")).await;
    let (addr, token) = (front.addr, front.city.1.clone());
    let elsewhere = blocking(move || {
        let other = login(addr, &token).unwrap();
        let taken = http(
            addr,
            "GET",
            &format!("/city?dong={DONG}&state=taken"),
            &[("Cookie", &other)],
            "",
        )
        .2;
        let open = http(
            addr,
            "GET",
            &format!("/city?dong={DONG}&state=open"),
            &[("Cookie", &other)],
            "",
        )
        .2;
        (taken, open)
    })
    .await;
    assert!(
        elsewhere.0.contains("담당 박시청") && elsewhere.0.contains("hh-d-000"),
        "another session sees who took it"
    );
    assert!(
        !elsewhere.1.contains("data-household=\"hh-d-000\""),
        "no longer open"
    );
    let console = c.find(Css("#city")).await.unwrap().text().await.unwrap();
    assert!(
        !console.contains("T") || !console.contains(".000Z"),
        "times in the offices' time zone"
    );

    // the audit: exactly the views and the download of hh-d-000
    let out = Command::new(env!("CARGO_BIN_EXE_sagak"))
        .args(["audit", "--household", "hh-d-000", "--json"])
        .env("SAGAK__WEB__AUDIT_DIR", front.dir.path().join("audit"))
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {}",
                e["role"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    // the queue pages that showed it: the landing after login, page 1, page 1
    // before the search, on the phone, and before ticking (not page 2, the
    // search, nor the empty filter)
    let mut expected: Vec<String> = std::iter::repeat_n("dong view_queue".to_string(), 5).collect();
    expected.extend(["dong view_visit_sheet", "dong download_list"].map(String::from));
    let city_views = seen.iter().filter(|s| *s == "city view_city").count();
    assert!(city_views >= 3, "{seen:#?}");
    let dong_part: Vec<&String> = seen.iter().filter(|s| s.starts_with("dong")).collect();
    assert_eq!(
        dong_part,
        expected
            .iter()
            .filter(|s| s.starts_with("dong"))
            .collect::<Vec<_>>(),
        "{seen:#?}"
    );
    assert!(seen.contains(&"city set_escalation_state".to_string()));
    println!("screenshots and the PDF in {}", shots.display());
    b.close().await;
    front.server.abort();
    pipeline.stop().await;
}
