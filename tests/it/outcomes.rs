//! The loop closed on the broker: outcomes the offices send to
//! `dong-office.outcomes` change what sagak sends next, and what nobody acts
//! on reaches `city.escalations`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;

/// An outcome of `household` recorded now by dong 4125052000; `fields` is
/// the kind and its values as JSON members.
fn outcome(id: &str, household: &str, fields: &str, alert_id: Option<&str>) -> String {
    let alert = alert_id.map_or(String::new(), |a| format!(r#","alert_id":"{a}""#));
    let now = chrono::Utc::now().to_rfc3339();
    format!(
        r#"{{"outcome_id":"{id}","household_id":"{household}","dong_code":"4125052000","recorded_at":"{now}","staff_id":"st-7"{alert},{fields}}}"#
    )
}

const NO_ANSWER: &str = r#""kind":"contact_attempted","channel":"phone","result":"no_answer""#;
const REACHED: &str = r#""kind":"contact_attempted","channel":"visit","result":"reached""#;

/// Premium arrears and a job loss observed `days` ago: a P2.
async fn two_crises(p: &Producer, s: &Scenario, household: &str, days: i64, n: u32) {
    p.signal(
        &s.topic("health-insurance"),
        &health(&format!("h-{n}-{household}"), household, &days_ago(days), 4),
    )
    .await;
    p.signal(
        &s.topic("job-loss"),
        &job_loss(&format!("j-{n}-{household}"), household, &days_ago(days)),
    )
    .await;
}

/// The household's alerts at `priority`.
fn at(seen: &[Received], household: &str, priority: &str) -> Vec<serde_json::Value> {
    alerts_of(seen, household)
        .into_iter()
        .filter(|a| a["priority"] == priority)
        .collect()
}

fn alert_id(a: &serde_json::Value) -> String {
    a["alert_id"].as_str().expect("alert_id").to_string()
}

pub(crate) fn escalations_of(
    seen: &[Received],
    household: &str,
    reason: &str,
) -> Vec<serde_json::Value> {
    alerts_of(seen, household)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// `declined` holds back the next alert at the same priority (one that the
/// cooldown alone would send); `withdrawn` undoes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_holds_back_the_next_same_priority_alert_and_withdrawn_undoes_it() {
    let s = Scenario::new("hold").await;
    let p = s.producer();
    let mut alerts = s.alerts();
    let running = s.start();
    for hh in ["hh-declined", "hh-control", "hh-withdrawn"] {
        two_crises(&p, &s, hh, 60, 1).await;
    }
    alerts
        .wait_for("three P2", |seen| {
            ["hh-declined", "hh-control", "hh-withdrawn"]
                .iter()
                .all(|hh| !at(seen, hh, "P2").is_empty())
        })
        .await;
    let seen = alerts.settle(Duration::from_secs(1)).await;
    let before = alerts_of(seen, "hh-declined").len();
    let first = at(seen, "hh-declined", "P2")[0].clone();
    assert_eq!(first["status"], "new");
    assert_eq!(first["type"], "alert");
    let declined = r#""kind":"declined""#;
    let topic = s.outcomes_topic();
    p.signal(
        &topic,
        &outcome("o-1", "hh-declined", declined, Some(&alert_id(&first))),
    )
    .await;
    p.signal(&topic, &outcome("o-2", "hh-withdrawn", declined, None))
        .await;
    p.signal(
        &topic,
        &outcome(
            "o-3",
            "hh-withdrawn",
            r#""kind":"withdrawn","withdraws":"o-2""#,
            None,
        ),
    )
    .await;
    running
        .wait_metric("sagak_outcomes_total{kind=\"withdrawn\"}", 1.0)
        .await;

    // the same crises 50 days on: past the 30-day cooldown, within the hold
    for hh in ["hh-declined", "hh-control", "hh-withdrawn"] {
        two_crises(&p, &s, hh, 10, 2).await;
    }
    alerts
        .wait_for("the control's and the withdrawn's second P2", |seen| {
            at(seen, "hh-control", "P2").len() == 2 && at(seen, "hh-withdrawn", "P2").len() == 2
        })
        .await;
    let seen = alerts.settle(Duration::from_secs(2)).await;
    assert_eq!(
        alerts_of(seen, "hh-declined").len(),
        before,
        "held back by declined"
    );
    let again = &at(seen, "hh-withdrawn", "P2")[1];
    assert_eq!(again["status"], "new", "the withdrawn outcome left nothing");
    assert!(again["times_flagged_before"].as_u64() >= Some(1));
    assert!(running.metric("sagak_outcomes_total{kind=\"declined\"}") >= 2.0);
    running.stop().await;
}

/// An alert without a first contact escalates once when it is due; one
/// contacted in time never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_alert_is_escalated_once_and_one_contacted_in_time_never() {
    let dir = pipeline_due_in("4s");
    let s = Scenario::with_pipeline("overdue", broker(), dir.path()).await;
    let p = s.producer();
    let mut alerts = s.alerts();
    let mut escalations = s.escalations();
    let running = s.start();
    p.crisis(&s, "hh-late", &days_ago(3)).await;
    p.crisis(&s, "hh-visited", &days_ago(3)).await;
    alerts
        .wait_for("two P1", |seen| {
            !at(seen, "hh-late", "P1").is_empty() && !at(seen, "hh-visited", "P1").is_empty()
        })
        .await;
    let seen = alerts.settle(Duration::from_millis(500)).await;
    let late_alerts: BTreeSet<String> = alerts_of(seen, "hh-late").iter().map(alert_id).collect();
    let late = at(seen, "hh-late", "P1")[0].clone();
    let due = late["due_at"].as_str().expect("due_at").to_string();
    let emitted = late["emitted_at"].as_str().expect("emitted_at").to_string();
    let span = chrono::DateTime::parse_from_rfc3339(&due).unwrap()
        - chrono::DateTime::parse_from_rfc3339(&emitted).unwrap();
    // counted from emitted_at to the second
    let span = span.num_milliseconds();
    assert!(
        (3_001..=4_000).contains(&span),
        "P1 due 4 s after it was sent here: {span} ms"
    );
    p.signal(
        &s.outcomes_topic(),
        &outcome("o-v", "hh-visited", REACHED, None),
    )
    .await;

    escalations
        .wait_for("the overdue escalations", |seen| {
            escalations_of(seen, "hh-late", "overdue").len() >= late_alerts.len()
        })
        .await;
    let seen = escalations.settle(Duration::from_secs(5)).await;
    // one per alert of the household (its signals came one by one: an
    // alert at each priority it reached), each once
    let overdue = escalations_of(seen, "hh-late", "overdue");
    assert_eq!(overdue.len(), late_alerts.len(), "once each: {overdue:#?}");
    let escalated: BTreeSet<String> = overdue
        .iter()
        .map(|e| e["alert_ids"][0].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(escalated, late_alerts);
    let of_p1 = overdue
        .iter()
        .find(|e| e["alert_ids"] == serde_json::json!([alert_id(&late)]))
        .expect("the P1's escalation");
    assert_eq!(of_p1["since"], serde_json::json!(due));
    // (its signals may come as three alerts, which is repeatedly flagged)
    assert!(
        escalations_of(seen, "hh-visited", "overdue").is_empty(),
        "contacted in time"
    );
    let validator = schema("schemas/escalation.schema.json");
    for e in seen {
        let v = e.json();
        if let Err(problem) = validator.validate(&v) {
            panic!("escalation breaks schemas/escalation.schema.json: {problem}\n{v}");
        }
        assert_eq!(e.key.as_deref(), Some(&b"4125052000"[..]), "keyed by dong");
    }
    running.stop().await;
}

/// Three failed attempts: an `unreachable` escalation, and the household's
/// next alert goes out one priority higher than it scores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failed_attempts_escalate_as_unreachable_and_raise_the_next_alert() {
    let s = Scenario::new("unreachable").await;
    let p = s.producer();
    let mut alerts = s.alerts();
    let mut escalations = s.escalations();
    let running = s.start();
    two_crises(&p, &s, "hh-gone", 60, 1).await;
    alerts
        .wait_for("a P2", |seen| !at(seen, "hh-gone", "P2").is_empty())
        .await;
    let seen = alerts.settle(Duration::from_millis(500)).await;
    let before = alerts_of(seen, "hh-gone").len();
    let first = at(seen, "hh-gone", "P2")[0].clone();
    for n in 1..=3 {
        p.signal(
            &s.outcomes_topic(),
            &outcome(
                &format!("o-{n}"),
                "hh-gone",
                NO_ANSWER,
                Some(&alert_id(&first)),
            ),
        )
        .await;
    }
    let seen = escalations
        .wait_for("unreachable", |seen| {
            !escalations_of(seen, "hh-gone", "unreachable").is_empty()
        })
        .await;
    let e = escalations_of(seen, "hh-gone", "unreachable")[0].clone();
    assert_eq!(e["outcomes"].as_array().map(Vec::len), Some(3));
    let concerned = e["alert_ids"].as_array().cloned().unwrap_or_default();
    assert!(
        concerned.contains(&serde_json::json!(alert_id(&first))),
        "{e}"
    );

    two_crises(&p, &s, "hh-gone", 10, 2).await;
    let seen = alerts
        .wait_for("the next alert", |seen| {
            alerts_of(seen, "hh-gone").len() > before
        })
        .await;
    let next = &alerts_of(seen, "hh-gone")[before];
    assert_eq!(next["priority"], "P1", "one higher than it scores");
    assert_eq!(next["scored_priority"], "P2");
    assert_eq!(next["status"], "unreachable");
    running.stop().await;
}

/// A household in case management gets a case update, not an alert; once
/// its case is closed, its next alert says it reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_gets_updates_and_a_closed_case_that_falls_back_is_marked_reopened() {
    let s = Scenario::new("cases").await;
    let p = s.producer();
    let mut alerts = s.alerts();
    let running = s.start();
    let topic = s.outcomes_topic();
    p.signal(
        &s.topic("health-insurance"),
        &health("h-1", "hh-case", &days_ago(30), 4),
    )
    .await;
    alerts
        .wait_for("a P3", |seen| !alerts_of(seen, "hh-case").is_empty())
        .await;
    p.signal(
        &topic,
        &outcome(
            "o-1",
            "hh-case",
            r#""kind":"case_opened","track":"case_management""#,
            None,
        ),
    )
    .await;
    running
        .wait_metric("sagak_outcomes_total{kind=\"case_opened\"}", 1.0)
        .await;
    p.signal(
        &s.topic("job-loss"),
        &job_loss("j-1", "hh-case", &days_ago(20)),
    )
    .await;
    let seen = alerts
        .wait_for("a case update", |seen| {
            alerts_of(seen, "hh-case").len() == 2
        })
        .await;
    let update = &alerts_of(seen, "hh-case")[1];
    assert_eq!(update["type"], "case_update");
    assert_eq!(update["status"], "in_case");
    assert_eq!(update["priority"], "P2");

    p.signal(
        &topic,
        &outcome(
            "o-2",
            "hh-case",
            r#""kind":"case_closed","reason":"goal_met""#,
            None,
        ),
    )
    .await;
    running
        .wait_metric("sagak_outcomes_total{kind=\"case_closed\"}", 1.0)
        .await;
    let water = sagak::testkit::utility("u-1", "hh-case", &days_ago(10), "water", 4, true);
    p.signal(&s.topic("utility-arrears"), &water).await;
    let seen = alerts
        .wait_for("the alert after the case", |seen| {
            alerts_of(seen, "hh-case").len() == 3
        })
        .await;
    let again = &alerts_of(seen, "hh-case")[2];
    assert_eq!(again["type"], "alert");
    assert_eq!(again["reopened"], true);
    assert_eq!(again["times_closed"], 1);
    assert_eq!(again["last_outcome"]["kind"], "case_closed/goal_met");
    assert_eq!(again["last_outcome"]["label"], "종결 (목표 달성)");
    running.stop().await;
}

/// Bad outcomes go to the dead letters with their class; nothing stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_outcome_goes_to_the_dead_letters_with_its_class() {
    let s = Scenario::new("bad-outcomes").await;
    let p = s.producer();
    let mut dead = s.dead_letters();
    let running = s.start();
    let topic = s.outcomes_topic();
    let counselled = r#""kind":"counselled""#;
    p.signal(&topic, &outcome("ok-1", "hh-walkin", counselled, None))
        .await;
    let other_dong =
        outcome("bad-office", "hh-walkin", counselled, None).replace("4125052000", "4125053000");
    // (class, value, key)
    type Bad<'a> = (&'a str, Vec<u8>, Option<&'a [u8]>);
    let cases: Vec<Bad> = vec![
        ("not_json", b"{oops".to_vec(), Some(b"hh-1")),
        (
            "missing_field",
            br#"{"outcome_id":"m","household_id":"hh-1","dong_code":"4125052000","kind":"counselled"}"#.to_vec(),
            Some(b"hh-1"),
        ),
        (
            "not_in_enum",
            outcome("e", "hh-1", r#""kind":"visited""#, None).into_bytes(),
            Some(b"hh-1"),
        ),
        (
            "resident_registration_number",
            outcome("r", "hh-1", counselled, None)
                .replace("st-7", "900101-1234567")
                .into_bytes(),
            Some(b"hh-1"),
        ),
        ("key_mismatch", outcome("k", "hh-1", counselled, None).into_bytes(), Some(b"hh-2")),
        (
            "future_event",
            outcome("f", "hh-1", counselled, None)
                .replace(&chrono::Utc::now().format("%Y").to_string(), "2099")
                .into_bytes(),
            Some(b"hh-1"),
        ),
        (
            "unknown_alert",
            outcome("u", "hh-1", counselled, Some("al-00000000000000000000000000000000"))
                .into_bytes(),
            Some(b"hh-1"),
        ),
        ("wrong_office", other_dong.into_bytes(), Some(b"hh-walkin")),
    ];
    for (_, value, key) in &cases {
        p.send(&topic, *key, value).await;
    }
    let want: BTreeSet<&str> = cases.iter().map(|c| c.0).collect();
    let seen = dead
        .wait_for("every class", |seen| {
            let got: BTreeSet<&str> = seen
                .iter()
                .filter_map(|m| m.headers.get("sagak.error.class").map(String::as_str))
                .collect();
            want.iter().all(|c| got.contains(c))
        })
        .await;
    assert_eq!(
        seen.len(),
        cases.len(),
        "one dead letter each, the good one none"
    );
    for m in seen {
        assert_eq!(m.headers["sagak.source.topic"], topic);
        assert!(
            !String::from_utf8_lossy(&m.value).contains("1234567"),
            "RRN masked"
        );
    }
    assert_eq!(
        running.metric("sagak_outcomes_total{kind=\"counselled\"}"),
        1.0
    );
    running.stop().await;
}

/// kill -9 after an outcome and before the due time: after the restart the
/// right escalation still comes, once per id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_an_outcome_and_the_due_time_gives_exactly_the_right_escalation() {
    let dir = pipeline_due_in("8s");
    let s = Scenario::with_pipeline("crash-due", broker(), dir.path()).await;
    let p = s.producer();
    let mut alerts = s.alerts();
    let mut escalations = s.escalations();
    let first = s.start();
    two_crises(&p, &s, "hh-answered", 20, 1).await;
    two_crises(&p, &s, "hh-forgotten", 20, 1).await;
    alerts
        .wait_for("two P2", |seen| {
            !alerts_of(seen, "hh-answered").is_empty()
                && !alerts_of(seen, "hh-forgotten").is_empty()
        })
        .await;
    p.signal(
        &s.outcomes_topic(),
        &outcome("o-1", "hh-answered", REACHED, None),
    )
    .await;
    first
        .wait_metric("sagak_outcomes_total{kind=\"contact_attempted\"}", 1.0)
        .await;
    // a snapshot with the outcome in it (checkpoints every 300 ms here)
    first
        .wait_metric("sagak_checkpoint_written_timestamp_seconds", 1.0)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.crash().await;

    let second = s.start();
    escalations
        .wait_for("the overdue escalation", |seen| {
            !escalations_of(seen, "hh-forgotten", "overdue").is_empty()
        })
        .await;
    let seen = escalations.settle(Duration::from_secs(4)).await;
    let ids: BTreeSet<String> = seen
        .iter()
        .filter(|e| e.json()["reason"] == "overdue")
        .map(|e| {
            e.json()["escalation_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    // the two signals may arrive in one batch (one P2 alert) or two (P3,
    // then P2): one escalation per alert either way, whatever was sent twice
    let sent: BTreeSet<String> = alerts
        .settle(Duration::from_secs(1))
        .await
        .iter()
        .map(|m| m.json())
        .filter(|a| a["household_id"] == "hh-forgotten")
        .map(|a| alert_id(&a))
        .collect();
    let named: BTreeSet<String> = seen
        .iter()
        .map(|e| e.json())
        .filter(|e| e["reason"] == "overdue")
        .flat_map(|e| {
            e["alert_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| a.as_str().map(str::to_string))
        })
        .collect();
    assert_eq!(
        ids.len(),
        sent.len(),
        "one escalation per alert, whatever was sent twice: {seen:#?}"
    );
    assert_eq!(named, sent, "each alert of hh-forgotten escalated");
    assert!(escalations_of(seen, "hh-answered", "overdue").is_empty());
    second.stop().await;
}
