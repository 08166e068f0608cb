//! Nobody falls off the work: a failed attempt keeps a household on its
//! office's queue until someone is reached, three send it to the city team,
//! outcomes that contradict the record are refused before anything is
//! published, the queue is ordered as the pipeline writes it, and the
//! queue page, its API, the city page and the day's list file tell the same
//! story about a dong.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator::Css;
use serde_json::Value;

use crate::outcomes::escalations_of;
use crate::support::*;
use crate::web::{
    alert_two_households, http, is_png_with_content, Browser, Front, ServedDemo, DONG,
};
use sagak::testkit::split_csv;

const NO_ANSWER: &str = r#"{"kind":"contact_attempted","channel":"phone","result":"no_answer"}"#;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `GET path` with a bearer token: (status, JSON).
pub(crate) fn get(addr: SocketAddr, token: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, body) = http(addr, "GET", path, &[("Authorization", &auth)], "");
    (status, json(&body))
}

/// Every household of `/api/queue` (50 a page), page after page.
fn whole_queue(addr: SocketAddr, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for page in 1.. {
        let (status, body) = get(addr, token, &format!("/api/queue?page={page}"));
        assert_eq!(status, 200, "{body}");
        all.extend(body["households"].as_array().cloned().unwrap_or_default());
        if page >= body["pages"].as_u64().unwrap_or(1) as usize {
            break;
        }
    }
    all
}

/// `POST /api/households/{id}/outcomes` with a bearer token: (status, JSON).
pub(crate) fn record(addr: SocketAddr, token: &str, household: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, text) = http(
        addr,
        "POST",
        &format!("/api/households/{household}/outcomes"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    (status, json(&text))
}

/// Polls the household's API until `done` holds; its last answer.
pub(crate) async fn household_until(
    addr: SocketAddr,
    token: &str,
    household: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = get(addr, token, &format!("/api/households/{household}")).1;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{household} never showed {what}: {last}");
}

pub(crate) async fn log_in(b: &Browser, base: &str, token: &str, name: &str) {
    let c = &b.client;
    c.goto(&format!("{base}/login")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Css("#login")).await.unwrap().click().await.unwrap();
    b.wait_text("#who", name).await;
}

async fn choose(b: &Browser, css: &str) {
    b.client
        .find(Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_keeps_the_household_on_the_queue_until_someone_is_reached() {
    let s = Scenario::new("open-work").await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    let mut escalations = s.escalations();
    let mut published = Collector::on(&s.settings.topics.outcomes, &s.settings.kafka.brokers);
    alert_two_households(&s, &pipeline, "hh-try", "hh-far").await;
    let addr = front.addr;
    let base = format!("http://{addr}");
    let dong = front.dong.1.clone();
    let b = Browser::start().await;
    let c = &b.client;
    log_in(&b, &base, &dong, "김생연").await;

    let alerts_open = get(addr, &dong, "/api/households/hh-try").1["open_alerts"]
        .as_array()
        .map(Vec::len);
    assert!(alerts_open.is_some_and(|n| n > 0));
    // one unanswered call, recorded on the household's page
    c.goto(&format!("{base}/households/hh-try")).await.unwrap();
    b.wait_text("#status", "신규").await;
    choose(&b, "#kind option[value='contact_attempted']").await;
    choose(&b, "#channel option[value='phone']").await;
    choose(&b, "#result option[value='no_answer']").await;
    choose(&b, "#record").await;
    b.wait_text("#notice", "기록되었습니다").await;
    // the page is drawn again once the pipeline applied it
    b.wait_text("#status", "연락 시도 중 (1회)").await;
    // in Korean only, and in its colour after the refresh, no raw code
    let status = c.find(Css("#status")).await.unwrap();
    assert_eq!(
        status.attr("data-status").await.unwrap().as_deref(),
        Some("attempting")
    );
    assert!(c.find(Css("#status .status.s-attempting")).await.is_ok());
    assert!(!status.text().await.unwrap().contains("attempting"));
    let step = b.wait_text("#step", "1회 시도, 다음 시도").await;
    assert!(!step.contains("연락됨"), "{step}");
    b.wait_text("#history", "응답 없음").await;
    let history = b.text_of("#history").await;
    assert!(
        history.contains(front.dong.0.id.as_str()) && history.contains("전화"),
        "who recorded it and how: {history}"
    );

    // still on the queue, with its next attempt; the API agrees
    c.goto(&format!("{base}/queue")).await.unwrap();
    let row = b
        .wait_text("tr[data-household='hh-try']", "1회 시도, 다음 시도")
        .await;
    assert!(row.contains("연락 시도 중"), "{row}");
    let api = get(addr, &dong, "/api/households/hh-try").1;
    assert_eq!(api["status"], "attempting", "{api}");
    assert_eq!(api["open"], true);
    assert_eq!(api["attempts"], 1);
    assert_eq!(
        api["open_alerts"].as_array().map(Vec::len),
        alerts_open,
        "every open alert stays open: {api}"
    );
    assert!(api["next_attempt_at"].is_string(), "{api}");
    assert_eq!(api["outcomes"][0]["channel"], "phone");
    let queue = get(addr, &dong, "/api/queue").1;
    let waiting: Vec<&str> = queue["households"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["household_id"].as_str())
        .collect();
    assert!(waiting.contains(&"hh-try"), "{queue}");
    let shots = std::env::temp_dir().join(format!("sagak-open-work-{}", std::process::id()));
    std::fs::create_dir_all(&shots).unwrap();
    assert!(is_png_with_content(
        &b.screenshot(&shots.join("queue-1400.png")).await
    ));
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/households/hh-try")).await.unwrap();
    b.wait_text("#status", "연락 시도 중").await;
    b.screenshot(&shots.join("household-390.png")).await;
    c.set_window_size(1400, 1100).await.unwrap();

    // two more: unreachable, one escalation to the city team
    for _ in 0..2 {
        let (status, body) = record(addr, &dong, "hh-try", NO_ANSWER);
        assert_eq!(status, 202, "{body}");
    }
    let api = household_until(addr, &dong, "hh-try", "unreachable", |h| {
        h["status"] == "unreachable"
    })
    .await;
    assert_eq!(api["open"], true, "unreachable stays on the queue: {api}");
    assert_eq!(api["tier"], "urgent");
    escalations
        .wait_for("the unreachable escalation", |seen| {
            !escalations_of(seen, "hh-try", "unreachable").is_empty()
        })
        .await;
    let seen = escalations.settle(Duration::from_secs(2)).await;
    assert_eq!(escalations_of(seen, "hh-try", "unreachable").len(), 1);

    // what contradicts the record is refused, in Korean and English, and
    // nothing is published
    let (status, body) = record(
        addr,
        &dong,
        "hh-try",
        r#"{"kind":"case_closed","reason":"goal_met"}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["class"], "no_open_case");
    assert!(
        body["reason_ko"]
            .as_str()
            .unwrap_or_default()
            .contains("열린 사례가 없어"),
        "{body}"
    );
    let (status, body) = record(
        addr,
        &dong,
        "hh-try",
        r#"{"kind":"withdrawn","withdraws":"abc"}"#,
    );
    assert_eq!(
        (status, body["class"].as_str()),
        (400, Some("unknown_outcome")),
        "{body}"
    );
    let (status, body) = record(
        addr,
        &dong,
        "hh-try",
        r#"{"kind":"counselled","alert_id":"al-00000000000000000000000000000007"}"#,
    );
    assert_eq!(
        (status, body["class"].as_str()),
        (400, Some("unknown_alert")),
        "{body}"
    );
    let open = r#"{"kind":"case_opened","track":"case_management"}"#;
    assert_eq!(record(addr, &dong, "hh-try", open).0, 202);
    household_until(addr, &dong, "hh-try", "its case", |h| {
        h["status"] == "in_case"
    })
    .await;
    let (status, body) = record(addr, &dong, "hh-try", open);
    assert_eq!(
        (status, body["class"].as_str()),
        (409, Some("case_already_open")),
        "{body}"
    );
    // the same on the page: the reason on the form, the choice kept
    c.goto(&format!("{base}/households/hh-try")).await.unwrap();
    b.wait_text("#status", "사례관리 중").await;
    choose(&b, "#kind option[value='case_opened']").await;
    choose(&b, "select[name='track'] option[value='case_management']").await;
    choose(&b, "#record").await;
    let error = b.wait_text("#form-error", "이미 사례관리 중").await;
    assert!(
        !error.contains("case_already_open"),
        "no internal words: {error}"
    );
    assert!(
        c.find(Css("#kind option[value='case_opened'][selected]"))
            .await
            .is_ok(),
        "what was chosen is kept"
    );
    let kinds: Vec<String> = published
        .settle(Duration::from_secs(2))
        .await
        .iter()
        .map(|m| m.json()["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "contact_attempted",
            "contact_attempted",
            "contact_attempted",
            "case_opened"
        ],
        "refusals publish nothing"
    );

    // a mistaken entry is withdrawn from the page
    c.goto(&format!("{base}/households/hh-try")).await.unwrap();
    b.wait_text("#history", "통합사례관리 선정").await;
    let forms = c.find_all(Css("form.withdraw button")).await.unwrap();
    assert_eq!(forms.len(), 4, "a withdraw action per outcome");
    forms[3].clone().click().await.unwrap();
    household_until(addr, &dong, "hh-try", "the case withdrawn", |h| {
        h["status"] == "unreachable"
    })
    .await;
    // the city team sees the household nobody could reach
    let city = front.city.1.clone();
    log_in(&b, &base, &city, "박시청").await;
    let text = b
        .reload_until(&format!("{base}/city"), "#escalations", "hh-try")
        .await;
    assert!(
        text.contains("hh-try") && text.contains("소재파악 필요"),
        "{text}"
    );
    println!("screenshots in {}", shots.display());
    b.close().await;
    front.server.abort();
    pipeline.stop().await;
}

/// A publisher that keeps what it is given (no pipeline behind the page).
struct Kept(std::sync::Mutex<Vec<Vec<u8>>>);

impl sagak::web::OutcomePublisher for Kept {
    fn publish<'a>(
        &'a self,
        _household_id: &'a str,
        value: Vec<u8>,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        if let Ok(mut kept) = self.0.lock() {
            kept.push(value);
        }
        Box::pin(async { Ok(()) })
    }
}

/// Eight households in every state, as the engine would hold them at noon
/// on the offices' clock, in the order `[outcomes] queue_order` writes.
/// Households and their encoded case records, as the work board takes them.
type Records = Vec<(String, Option<Arc<[u8]>>)>;

fn eight_households(now: i64) -> (Records, Vec<&'static str>) {
    use sagak::stages::case::outcome::{ContactResult, OutcomeKind};
    use sagak::stages::case::record::{CaseRecord, HeldOutcome, KeptAlert};
    use sagak::stages::score::Priority;
    const DAY: i64 = 86_400_000;
    use sagak::testkit::kept_alert as alert;
    let attempt = |id: u32, result: ContactResult, at: i64| {
        sagak::testkit::held_outcome(id, OutcomeKind::ContactAttempted, result.code(), at)
    };
    let dong: u64 = DONG.parse().unwrap();
    let mut records = Vec::new();
    let mut put = |id: &str, alerts: Vec<KeptAlert>, outcomes: Vec<HeldOutcome>| {
        let mut r = CaseRecord::new(0, dong);
        r.flagged = alerts.len() as u32;
        r.alerts = alerts;
        r.outcomes = outcomes;
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        records.push((id.to_string(), Some(Arc::from(bytes))));
    };
    put("hh-new-p3", vec![alert(Priority::P3, now)], vec![]);
    put(
        "hh-trying",
        vec![alert(Priority::P3, now - DAY)],
        vec![attempt(3, ContactResult::NoAnswer, now - 3_600_000)],
    );
    put("hh-new-p1", vec![alert(Priority::P1, now)], vec![]);
    put(
        "hh-retry",
        vec![alert(Priority::P2, now - 4 * DAY)],
        vec![attempt(2, ContactResult::NoAnswer, now - 3 * DAY)],
    );
    put(
        "hh-today",
        vec![alert(Priority::P2, now - 7 * DAY + 3_600_000)],
        vec![],
    );
    put(
        "hh-late-p2",
        vec![alert(Priority::P2, now - 10 * DAY)],
        vec![],
    );
    put(
        "hh-late-p1",
        vec![alert(Priority::P1, now - 5 * DAY)],
        vec![],
    );
    put(
        "hh-lost",
        vec![alert(Priority::P3, now - 5 * DAY)],
        vec![attempt(1, ContactResult::EmptyHouse, now - DAY)],
    );
    let mut answered = alert(Priority::P1, now - DAY);
    answered.open_since = None;
    put(
        "hh-reached",
        vec![answered],
        vec![attempt(4, ContactResult::Reached, now - 3_600_000)],
    );
    let order = vec![
        "hh-lost",
        "hh-late-p1",
        "hh-late-p2",
        "hh-today",
        "hh-retry",
        "hh-new-p1",
        "hh-new-p3",
        "hh-trying",
    ];
    (records, order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_page_orders_eight_households_as_the_pipeline_writes_it() {
    let spec = sagak::definition::PipelineSpec::embedded_default().unwrap();
    let ops = Arc::new(sagak::ops::OpsState::new(
        &spec,
        sagak::metrics::Metrics::new(&spec),
        "kafka",
    ));
    // noon on the offices' clock (UTC+9): "today" is unambiguous
    let day = sagak::base::clock::wall_clock_ms() / 86_400_000;
    let now = day * 86_400_000 + 3 * 3_600_000;
    ops.work.enable();
    ops.work.set_now(now);
    let (records, order) = eight_households(now);
    ops.work.update(records);
    let kept = Arc::new(Kept(Default::default()));
    let front = Front::on(&spec, Arc::clone(&ops), Arc::clone(&kept) as _, None).await;
    let base = format!("http://{}", front.addr);
    let b = Browser::start().await;
    log_in(&b, &base, &front.dong.1, "김생연").await;
    b.client.goto(&format!("{base}/queue")).await.unwrap();
    b.wait_text("#queue", "hh-lost").await;
    let mut shown = Vec::new();
    for row in b.client.find_all(Css("tr[data-household]")).await.unwrap() {
        shown.push(
            row.attr("data-household")
                .await
                .unwrap()
                .unwrap_or_default(),
        );
    }
    assert_eq!(shown, order, "the written order");
    let steps = b.text_of("#queue").await;
    assert!(
        steps.contains("D+2 초과") && steps.contains("오늘 마감"),
        "{steps}"
    );
    assert!(!steps.contains("hh-reached"), "reached: off the queue");
    let summary = b.text_of("#summary").await;
    assert!(summary.contains("연락 대기 8"), "{summary}");
    let api = get(front.addr, &front.dong.1, "/api/queue").1;
    let by_api: Vec<&str> = api["households"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["household_id"].as_str())
        .collect();
    assert_eq!(by_api, order, "the API in the same order");
    // a household on the dong's newest list without a case record yet
    // (hh-x, never alerted) opens and takes an outcome
    let (status, listed) = get(front.addr, &front.dong.1, "/api/households/hh-x");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        (listed["status"].as_str(), listed["open"].as_bool()),
        (Some("new"), Some(false))
    );
    let (status, body) = record(
        front.addr,
        &front.dong.1,
        "hh-x",
        r#"{"kind":"counselled"}"#,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(kept.0.lock().map(|k| k.len()).unwrap_or(0), 1, "published");
    let (status, _) = get(front.addr, &front.dong.1, "/api/households/hh-nowhere");
    assert_eq!(status, 404);
    b.close().await;
    front.server.abort();
}

/// The demo with its pages: a dong's counts agree on `/queue`,
/// `/api/queue`, `/city` and the day's list file, and every household on
/// the dong's list files opens on its household page.
#[test]
fn a_dongs_views_agree_and_every_listed_household_opens() {
    let demo = ServedDemo::start(12000, 90, Stdio::null());
    let (port, printed, tokens, out) = (demo.port, &demo.printed, &demo.tokens, &demo.out);
    assert_eq!(tokens.len(), 9, "{printed}");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let city = tokens[0].clone();
    // the newest day's lists
    let lists = out.path().join("lists");
    let day = std::fs::read_dir(&lists)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|d| d.len() == 10)
        .max()
        .unwrap();
    let dongs: Vec<String> = sagak::definition::PipelineSpec::embedded_default()
        .unwrap()
        .dongs
        .iter()
        .map(|d| d.dong_code.clone())
        .collect();
    let mut compared = 0;
    for (i, dong) in dongs.iter().enumerate() {
        let token = &tokens[i + 1];
        // the day's CSV: open rows and overdue rows
        let file = lists.join(&day).join(format!("{dong}.csv"));
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| h.ends_with(name)).unwrap();
        let (id, open, overdue) = (col("household_id"), col("open"), col("overdue"));
        let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
        let csv_open: BTreeSet<String> = rows
            .iter()
            .filter(|r| r[open] == "Y")
            .map(|r| r[id].clone())
            .collect();
        let csv_overdue = rows.iter().filter(|r| r[overdue] == "Y").count();
        // the queue's API and page
        let whole = whole_queue(addr, token);
        let households = &whole[..];
        let api_open: BTreeSet<String> = households
            .iter()
            .filter_map(|h| h["household_id"].as_str().map(String::from))
            .collect();
        let api_overdue = households.iter().filter(|h| h["overdue"] == true).count();
        let cookie = crate::web::login(addr, token).expect("a session");
        let (_, _, page) = http(addr, "GET", "/queue", &[("Cookie", &cookie)], "");
        let number = |id: &str| -> usize {
            let at = page.find(&format!("id=\"{id}\">")).unwrap() + id.len() + 6;
            page[at..].split('<').next().unwrap().parse().unwrap()
        };
        assert_eq!(
            (api_open.len(), api_overdue),
            (number("n-open"), number("n-overdue")),
            "{dong}: the queue page and its API"
        );
        // the list holds what is open on the queue, and every one of its
        // households opens for the office
        let moved: BTreeSet<&String> = api_open.difference(&csv_open).collect();
        assert!(
            moved.iter().all(|h| households
                .iter()
                .any(|x| { x["household_id"] == h.as_str() && x["dong_code"] != dong.as_str() })),
            "{dong}: open on the queue but not on the list: {moved:?}"
        );
        assert_eq!(
            csv_open.difference(&api_open).count(),
            0,
            "{dong}: open on the list, not on the queue"
        );
        assert_eq!(
            (csv_open.len(), csv_overdue),
            (
                api_open.len() - moved.len(),
                api_overdue - moved_overdue(households, &moved)
            ),
            "{dong}: the day's CSV and the queue"
        );
        for file in [format!("{dong}.csv"), format!("{dong}.cases.csv")] {
            let text = std::fs::read_to_string(lists.join(&day).join(&file)).unwrap();
            for row in text.lines().skip(1).map(split_csv) {
                let (status, body) = get(addr, token, &format!("/api/households/{}", row[1]));
                assert_eq!(status, 200, "{file}: {} {body}", row[1]);
            }
        }
        // the city page's numbers for the dong (recounted every 10 s)
        let mut city_counts = (0, 0);
        for _ in 0..150 {
            let (_, data) = get(addr, &city, "/api/city");
            let d = data["dongs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["dong_code"] == dong.as_str())
                .cloned()
                .unwrap_or_default();
            city_counts = (
                d["follow_up"]["open"].as_u64().unwrap_or(0) as usize,
                d["follow_up"]["overdue"].as_u64().unwrap_or(0) as usize,
            );
            if city_counts == (api_open.len(), api_overdue) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            city_counts,
            (api_open.len(), api_overdue),
            "{dong}: /api/city"
        );
        // and on the city page itself
        let city_cookie = crate::web::login(addr, &city).expect("a session");
        let (_, _, page) = http(addr, "GET", "/city", &[("Cookie", &city_cookie)], "");
        let row = page
            .split(&format!("data-dong=\"{dong}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_default();
        let cell = |class: &str| -> usize {
            let at = row
                .find(&format!("class=\"{class}"))
                .unwrap_or_else(|| panic!("{class}: {row}"));
            let text = &row[at..];
            let from = text.find('>').unwrap() + 1;
            text[from..].split('<').next().unwrap().parse().unwrap()
        };
        assert_eq!(
            (cell("n-open"), cell("n-overdue")),
            (api_open.len(), api_overdue),
            "{dong}: the /city page"
        );
        compared += api_open.len();
    }
    assert!(
        compared > 50,
        "the demo left open work to compare: {compared}"
    );
}

/// Overdue households among those open for a dong that moved away.
fn moved_overdue(households: &[Value], moved: &BTreeSet<&String>) -> usize {
    households
        .iter()
        .filter(|h| {
            h["overdue"] == true
                && h["household_id"]
                    .as_str()
                    .is_some_and(|id| moved.iter().any(|m| m.as_str() == id))
        })
        .count()
}
