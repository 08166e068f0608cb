//! A dong's case meeting as the office and the city hold it, in headless
//! Chromium against a running pipeline on a real Kafka-protocol broker:
//! a counselled household comes up as a candidate, the meeting opens its
//! case, plans it (a plan missing its goals is refused on the form with
//! what was typed kept), reviews it and closes it from the agenda; the
//! agenda's page, its API, its CSV and the printed A4 page tell the same
//! story, the city sees every dong's counts, and each view is audited.

use std::process::Command;
use std::time::Duration;

use fantoccini::Locator::Css;
use serde_json::Value;

use crate::open_work::{get, household_until, log_in, record};
use crate::support::*;
use crate::web::{alert_two_households, http, is_png_with_content, Browser, Front, DONG};

async fn js(b: &Browser, script: &str) -> Value {
    b.client.execute(script, vec![]).await.unwrap()
}

/// Opens the decision of `household`'s row in `part` and submits it,
/// after `fill` (a script run on the row's form, `f`).
async fn decide(b: &Browser, part: &str, household: &str, fill: &str) {
    let row = format!("#part-{part} tr[data-household='{household}']");
    b.client
        .find(Css(&format!("{row} summary")))
        .await
        .unwrap_or_else(|_| panic!("{row} is on the agenda"))
        .click()
        .await
        .unwrap();
    js(
        b,
        &format!("var f = document.querySelector(\"{row} form\"); {fill}"),
    )
    .await;
    b.client
        .find(Css(&format!("{row} form button[type=submit]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The JSON rows of one part of `/api/agenda`.
fn part(agenda: &Value, name: &str) -> Vec<Value> {
    agenda["parts"][name]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dong_holds_its_case_meeting_from_the_agenda_and_the_city_sees_every_dong() {
    let due = pipeline_due_in("3d");
    let s = Scenario::with_pipeline("meeting", broker(), due.path()).await;
    let pipeline = s.start();
    let front = Front::start(&s, &pipeline).await;
    alert_two_households(&s, &pipeline, "hh-meet", "hh-far").await;
    let (addr, token) = (front.addr, front.dong.1.clone());
    let reached = r#"{"kind":"contact_attempted","channel":"visit","result":"reached"}"#;
    assert_eq!(record(addr, &token, "hh-meet", reached).0, 202);
    assert_eq!(
        record(addr, &token, "hh-meet", r#"{"kind":"counselled"}"#).0,
        202
    );
    household_until(addr, &token, "hh-meet", "its counselling", |h| {
        h["outcomes"].as_array().is_some_and(|o| o.len() == 2)
    })
    .await;

    let base = format!("http://{addr}");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("meeting");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;
    let c = &b.client;
    log_in(&b, &base, &token, "김생연").await;

    // the agenda: a counselled household whose crisis meets in two
    // categories is a candidate, with why
    c.goto(&format!("{base}/agenda")).await.unwrap();
    let candidates = b.wait_text("#part-candidate", "hh-meet").await;
    assert!(candidates.contains("위기 2개 영역"), "{candidates}");
    assert!(!candidates.contains("hh-far"), "another dong's household");
    assert!(is_png_with_content(
        &b.screenshot(&shots.join("agenda-1400.png")).await
    ));

    // the meeting selects it: the case opens, and it is the meeting's to plan
    decide(&b, "candidate", "hh-meet", "").await;
    b.wait_text("#notice", "기록되었습니다").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/agenda"));
    let agenda_url = format!("{base}/agenda");
    let review = b.reload_until(&agenda_url, "#part-review", "hh-meet").await;
    assert!(review.contains("사례 계획 없음"), "{review}");

    // a plan without goals is refused on the household's form, in Korean,
    // with the needs ticked kept
    decide(
        &b,
        "review",
        "hh-meet",
        "f.querySelector(\"input[name=needs][value=economic]\").checked = true;",
    )
    .await;
    b.wait_text("#form-error", "목표를 하나 이상").await;
    let kept = js(
        &b,
        "return document.querySelector('#outcome input[name=needs][value=economic]').checked",
    )
    .await;
    assert_eq!(kept, Value::Bool(true), "what was typed is kept");

    // the plan, recorded from the agenda
    c.goto(&agenda_url).await.unwrap();
    b.wait_text("#part-review", "hh-meet").await;
    decide(
        &b,
        "review",
        "hh-meet",
        "for (const n of ['economic', 'housing']) f.querySelector(`input[name=needs][value=${n}]`).checked = true;
         f.querySelector('input[name=plan_services][value=energy]').checked = true;
         f.querySelectorAll('input[name=goal_text]')[0].value = '월세 체납 해소';
         f.querySelectorAll('input[name=goal_date]')[0].value = '2027-01-31';",
    )
    .await;
    b.wait_text("#notice", "기록되었습니다").await;
    let planned = household_until(addr, &token, "hh-meet", "its plan", |h| {
        h["outcomes"].as_array().is_some_and(|o| o.len() == 4)
    })
    .await;
    assert_eq!(planned["outcomes"][3]["kind"], "case_plan");
    assert_eq!(
        planned["case_management"]["plan"]["goals"][0]["text"],
        "월세 체납 해소"
    );
    // on the topic as the contract says, keyed by the household
    let mut topic = Collector::on(&s.settings.topics.outcomes, &s.settings.kafka.brokers);
    let seen = topic
        .wait_for("the plan on the outcomes topic", |seen| {
            seen.iter().any(|m| m.json()["kind"] == "case_plan")
        })
        .await;
    let plan = seen
        .iter()
        .find(|m| m.json()["kind"] == "case_plan")
        .unwrap();
    assert_eq!(plan.key.as_deref(), Some(&b"hh-meet"[..]));
    let value = plan.json();
    assert_eq!(value["needs"], serde_json::json!(["economic", "housing"]));
    assert_eq!(
        value["goals"],
        serde_json::json!([{"text": "월세 체납 해소", "target_date": "2027-01-31"}])
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/outcome.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for m in seen.iter() {
        let v = m.json();
        assert!(validator.is_valid(&v), "{v}");
    }
    // the meeting of a later date finds the goal past its date
    let later = format!("{agenda_url}?dong={DONG}&date=2027-02-15");
    let review = b
        .reload_until(&later, "#part-review", "월세 체납 해소")
        .await;
    assert!(review.contains("목표 1 기한 경과 (2027-01-31)"), "{review}");
    assert!(review.contains("경제, 생활환경"), "{review}");
    let (status, api) = get(
        addr,
        &token,
        &format!("/api/agenda?dong={DONG}&date=2027-02-15"),
    );
    assert_eq!(status, 200, "{api}");
    let row = &part(&api, "review")[0];
    assert_eq!(row["household_id"], "hh-meet");
    assert_eq!(row["plan"]["goals"][0]["text"], "월세 체납 해소");
    assert_eq!(row["plan"]["goals"][0]["target_date"], "2027-01-31");
    assert_eq!(row["plan"]["services"], serde_json::json!(["energy"]));
    let codes: Vec<&str> = row["why"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(codes.contains(&"goal_past_date"), "{codes:?}");

    // a review must answer each goal of the plan; then every goal met
    // makes the case ready to close
    let two = r#"{"kind":"case_reviewed","goal_result":["met","met"]}"#;
    let (status, refused) = record(addr, &token, "hh-meet", two);
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["class"], "no_plan", "{refused}");
    let met = r#"{"kind":"case_reviewed","goal_result":["met"],"fit_energy":"yes","next_review":"2027-03-01"}"#;
    assert_eq!(record(addr, &token, "hh-meet", met).0, 202);
    let close = b.reload_until(&agenda_url, "#part-close", "hh-meet").await;
    assert!(close.contains("모든 목표 달성"), "{close}");

    // the agenda as CSV for Excel and on paper tells the same story
    let bearer = format!("Bearer {token}");
    let (status, head, csv) = http(
        addr,
        "GET",
        &format!("/agenda.csv?dong={DONG}"),
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{head}");
    assert!(csv.starts_with('\u{feff}'), "a BOM for Excel");
    let line = csv
        .lines()
        .find(|l| l.contains("hh-meet"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        line.starts_with("close,") && line.contains("월세 체납 해소") && line.contains("달성"),
        "{line}"
    );
    let pdf = c
        .print(fantoccini::wd::PrintConfiguration::default())
        .await
        .expect("print to PDF");
    let pdf_path = shots.join("agenda.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    let text = Command::new(ensure_tool("pdftotext", "poppler-utils"))
        .arg(&pdf_path)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("사례회의 안건") && text.contains("hh-meet") && text.contains("종결 검토"),
        "{text}"
    );
    assert!(
        !text.contains("결정 기록") && !text.contains("로그아웃"),
        "no forms on paper: {text}"
    );

    // on a phone: cards, nothing wider than the screen
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&agenda_url).await.unwrap();
    b.wait_text("#part-close", "hh-meet").await;
    let wide = js(&b, "return document.documentElement.scrollWidth").await;
    assert!(wide.as_i64().is_some_and(|w| w <= 390), "{wide} px wide");
    assert!(is_png_with_content(
        &b.screenshot(&shots.join("agenda-390.png")).await
    ));
    c.set_window_size(1400, 1100).await.unwrap();

    // the meeting closes it: off the agenda, the month counts it
    c.goto(&agenda_url).await.unwrap();
    decide(&b, "close", "hh-meet", "").await;
    b.wait_text("#notice", "기록되었습니다").await;
    let month = b.reload_until(&agenda_url, "#month-closed", "1").await;
    assert_eq!(month.trim(), "1");
    assert_eq!(b.text_of("#month-opened").await.trim(), "1");
    assert!(!b.text_of("#part-close").await.contains("hh-meet"));

    // the city: every dong's agenda side by side
    let (status, city) = get(addr, &front.city.1, "/api/city");
    assert_eq!(status, 200);
    let dongs = city["agenda"]["dongs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ours = dongs
        .iter()
        .find(|d| d["dong_code"] == DONG)
        .unwrap_or_else(|| panic!("{city}"));
    assert_eq!(ours["month"]["opened"], 1);
    assert_eq!(ours["month"]["closed"], 1);
    assert_eq!(
        dongs.len(),
        s.spec.dongs.len(),
        "every dong, even with nothing"
    );

    // each view audited with exactly the households shown
    let entries =
        sagak::web::audit::search(&front.dir.path().join("audit"), &Default::default()).unwrap();
    let views: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "view_agenda" && e.households.iter().any(|h| h == "hh-meet"))
        .collect();
    assert!(views.len() >= 3, "{views:?}");
    assert!(entries
        .iter()
        .all(|e| !(e.action == "view_agenda" && e.households.iter().any(|h| h == "hh-far"))));
    assert!(entries
        .iter()
        .any(|e| e.action == "download_agenda" && e.households == ["hh-meet"]));
    b.close().await;
    println!("screenshots and the PDF in {}", shots.display());
    drop(pipeline);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
