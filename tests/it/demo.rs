//! `sagak demo` end to end on a short synthetic span, and the project's
//! schemas against what the generator and the engine produce.

use std::collections::BTreeMap;

use sagak::drivers::demo::{run_demo, DemoConfig};
use sagak::generate::{generate, Expect, GeneratorConfig};
use sagak::metrics::Metrics;

use crate::support::{default_spec, schema};

fn short_city() -> GeneratorConfig {
    GeneratorConfig {
        households: 3_000,
        days: 150,
        // more bad input than the default, so every class shows up in a short run
        malformed_share: 0.02,
        late_share: 0.01,
        crisis_share: 0.04,
        ..GeneratorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_finds_the_planted_crises_and_writes_every_output() {
    let out = tempfile::tempdir().unwrap();
    let spec = default_spec();
    let cfg = DemoConfig {
        generator: short_city(),
        out_dir: out.path().to_path_buf(),
        batch_minutes: 720,
        offices: true,
    };
    let generated = generate(&cfg.generator);
    let ops = sagak::ops::OpsState::new(&spec, Metrics::new(&spec), "demo");
    let summary = run_demo(&spec, &cfg, &ops).await.expect("demo runs");

    let total: usize = summary.signals_in.values().sum();
    let start = generated.messages.first().map_or(0, |m| m.arrival_ms);
    let planted_like_suwon =
        sagak::embedded::offices::suwon_signals(start, cfg.generator.days).len();
    assert_eq!(
        total,
        generated.messages.len() + planted_like_suwon,
        "every message went in, and the household planted like the Suwon case"
    );
    let rejected: usize = summary.rejected.values().sum();
    assert_eq!(
        summary.accepted + summary.duplicates + rejected,
        total,
        "every message accounted for"
    );
    assert_eq!(
        summary.rejected, summary.rejects_planted,
        "each planted bad message rejected with its class"
    );
    assert!(
        summary.rejected.contains_key("late")
            && summary
                .rejected
                .contains_key("resident_registration_number")
    );
    let dups = generated
        .messages
        .iter()
        .filter(|m| m.expect == Expect::Duplicate)
        .count();
    assert_eq!(summary.duplicates, dups);

    let d = &summary.detection;
    assert_eq!(d.planted, generated.planted.len());
    assert!(d.planted >= 60, "{d:?}");
    assert!(
        d.found as f64 >= 0.95 * d.planted as f64,
        "found {} of {}",
        d.found,
        d.planted
    );
    let p1 = d.by_priority.get("P1").copied().unwrap_or(0);
    assert!(
        p1 as f64 >= 0.9 * d.planted as f64,
        "P1 for {p1} of {}",
        d.planted
    );
    let to_p1 = d.median_days_to_p1.expect("some reached P1");
    assert!(
        (30.0..60.0).contains(&to_p1),
        "P1 is reached once the third category qualifies: {to_p1}"
    );

    assert!(
        (140..=151).contains(&summary.list_days),
        "a list every simulated day: {}",
        summary.list_days
    );
    // the offices answered, and what nobody acted on reached the city team
    let f = &summary.follow_up;
    for kind in [
        "contact_attempted",
        "counselled",
        "case_opened",
        "case_closed",
    ] {
        assert!(
            f.outcomes.get(kind).copied().unwrap_or(0) > 0,
            "{kind}: {f:?}"
        );
    }
    for reason in ["overdue", "unreachable", "repeatedly_flagged"] {
        assert!(
            f.escalations.get(reason).copied().unwrap_or(0) > 0,
            "{reason}: {f:?}"
        );
    }
    let (p1_median, _) = f.days_to_first_contact["P1"];
    let (p3_median, _) = f.days_to_first_contact["P3"];
    assert!(p1_median < p3_median, "P1 is answered sooner: {f:?}");
    let (day, _) = f
        .planted_household_escalated
        .clone()
        .expect("the planted household reached the city team");
    assert!(day < 60, "within two months, not thirteen: day {day}");
    let text = summary.render();
    assert!(text.contains("not a\nclaim about accuracy"), "{text}");
    assert!(text.contains("reached the city team on day"), "{text}");
    let escalation_schema = schema("schemas/escalation.schema.json");
    let escalations = std::fs::read_to_string(out.path().join("escalations.ndjson")).unwrap();
    for line in escalations.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Err(e) = escalation_schema.validate(&v) {
            panic!("escalation breaks schemas/escalation.schema.json: {e}\n{line}");
        }
    }
    for f in [
        "alerts.ndjson",
        "escalations.ndjson",
        "dead-letters.ndjson",
        "summary.json",
    ] {
        assert!(out.path().join(f).exists(), "{f}");
    }
    let manifest = out
        .path()
        .join(format!("lists/{}/manifest.json", summary.last_list_date));
    assert!(manifest.exists(), "{}", manifest.display());

    let alert_schema = schema("schemas/alert.schema.json");
    let alerts = std::fs::read_to_string(out.path().join("alerts.ndjson")).unwrap();
    let mut per_priority = BTreeMap::new();
    for line in alerts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Err(e) = alert_schema.validate(&v) {
            panic!("alert breaks schemas/alert.schema.json: {e}\n{line}");
        }
        // the summary counts case updates apart
        if v["type"] == "alert" {
            *per_priority
                .entry(v["priority"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    let emitted: BTreeMap<String, usize> = summary.alerts_by_priority.clone();
    assert_eq!(per_priority, emitted);

    // one alert per id: a consumer that deduplicates by alert_id loses none
    let all = alerts.lines().map(|l| serde_json::from_str(l).unwrap());
    let (ids, repeats) = crate::support::each_id_names_one_alert(all);
    assert_eq!(repeats, 0, "the demo never replays, so no id repeats");
    assert_eq!(ids, alerts.lines().count());
}

#[test]
fn generated_signals_pass_the_signal_schemas() {
    let schemas: BTreeMap<&str, jsonschema::Validator> =
        ["utility-arrears", "job-loss", "health-insurance"]
            .into_iter()
            .map(|f| (f, schema(&format!("schemas/signals/{f}.schema.json"))))
            .collect();
    let generated = generate(&GeneratorConfig {
        households: 2_000,
        days: 160,
        ..GeneratorConfig::default()
    });
    let (mut valid, mut invalid) = (0, 0);
    for m in &generated.messages {
        let value: Option<serde_json::Value> = serde_json::from_slice(&m.payload).ok();
        let passes = value.as_ref().is_some_and(|v| schemas[m.feed].is_valid(v));
        match m.expect {
            Expect::Valid | Expect::Duplicate => {
                assert!(
                    passes,
                    "valid message fails its schema: {}",
                    String::from_utf8_lossy(&m.payload)
                );
                valid += 1;
            }
            Expect::Reject(_) => invalid += usize::from(!passes),
        }
    }
    assert!(valid > 1_000);
    assert!(invalid > 0, "malformed messages also fail the schemas");
}
