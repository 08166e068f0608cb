//! `sagak replay`, `sagak compare` and a backfill: a city's history from
//! files, what a rule change would do, and a deployment that starts from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sagak::drivers::demo::{run_demo, DemoConfig};
use sagak::drivers::replay::{run_replay, Backfill, ReplayConfig};
use sagak::embedded::files::Partitioner;
use sagak::generate::{generate, GeneratorConfig};
use sagak::metrics::Metrics;
use sagak::ops::OpsState;

use crate::support::*;

fn city() -> GeneratorConfig {
    GeneratorConfig {
        households: 2_500,
        days: 75,
        seed: 31,
        ..GeneratorConfig::default()
    }
}

fn config(inputs: Vec<PathBuf>, out: &Path) -> ReplayConfig {
    ReplayConfig {
        inputs,
        feed: None,
        outcomes: Vec::new(),
        out_dir: out.to_path_buf(),
        dates: Vec::new(),
        final_list_only: false,
        batch_minutes: 60,
        backfill: None,
        progress: false,
    }
}

async fn replay(inputs: Vec<PathBuf>, out: &Path) -> sagak::drivers::replay::ReplaySummary {
    let spec = default_spec();
    let ops = OpsState::new(&spec, Metrics::new(&spec), "replay");
    run_replay(&spec, &config(inputs, out), &ops)
        .await
        .expect("replay runs")
}

/// The alerts of a run, each as sorted JSON.
fn alerts(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("alerts.ndjson"))
        .expect("alerts.ndjson")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            v.to_string()
        })
        .collect()
}

/// Each NDJSON file of `from` as a Parquet file in `to`, compressed with
/// `codec`, its columns typed by their JSON values (as DuckDB or pandas
/// would write them).
fn to_parquet(from: &Path, to: &Path, codec: parquet::basic::Compression) {
    use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name == "bad-input.ndjson" {
            continue;
        }
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut names: Vec<String> = Vec::new();
        for r in &rows {
            for k in r.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for n in &names {
            let first = rows.iter().find_map(|r| r.get(n).filter(|v| !v.is_null()));
            match first {
                Some(serde_json::Value::Number(_)) => {
                    let mut b = Int64Builder::new();
                    rows.iter()
                        .for_each(|r| b.append_option(r.get(n).and_then(|v| v.as_i64())));
                    fields.push(Field::new(n, DataType::Int64, true));
                    columns.push(Arc::new(b.finish()));
                }
                Some(serde_json::Value::Bool(_)) => {
                    let mut b = BooleanBuilder::new();
                    rows.iter()
                        .for_each(|r| b.append_option(r.get(n).and_then(|v| v.as_bool())));
                    fields.push(Field::new(n, DataType::Boolean, true));
                    columns.push(Arc::new(b.finish()));
                }
                _ => {
                    let mut b = StringBuilder::new();
                    rows.iter()
                        .for_each(|r| b.append_option(r.get(n).and_then(|v| v.as_str())));
                    fields.push(Field::new(n, DataType::Utf8, true));
                    columns.push(Arc::new(b.finish()));
                }
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = arrow::array::RecordBatch::try_new(schema.clone(), columns).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(codec)
            .build();
        let out = std::fs::File::create(to.join(name.replace(".ndjson", ".parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(out, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
}

/// A replay of `generate --to ndjson --with-arrival` files is the demo
/// without its offices on the same seed: the same alerts, escalations and
/// lists. Plain NDJSON and Parquet (snappy, zstd) of the same signals
/// replay alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_equals_the_demo_and_every_file_format_replays_alike() {
    let cfg = city();
    let generated = generate(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let arrival = dir.path().join("arrival");
    sagak::generate::publish::to_ndjson_with_arrival(&arrival, &generated.messages).unwrap();
    let replayed = dir.path().join("replayed");
    let summary = replay(vec![arrival], &replayed).await;

    let demo_out = dir.path().join("demo");
    let spec = default_spec();
    let ops = OpsState::new(&spec, Metrics::new(&spec), "demo");
    let demo = DemoConfig {
        generator: cfg.clone(),
        out_dir: demo_out.clone(),
        batch_minutes: 60,
        offices: false,
    };
    let demo_summary = run_demo(&spec, &demo, &ops).await.expect("demo");
    let ours = alerts(&replayed);
    assert!(ours.len() > 50, "a city's alerts: {}", ours.len());
    assert!(
        ours == alerts(&demo_out),
        "the replay alerted as the demo did"
    );
    assert_eq!(
        std::fs::read(replayed.join("escalations.ndjson")).unwrap(),
        std::fs::read(demo_out.join("escalations.ndjson")).unwrap()
    );
    assert_eq!(summary.rejected, demo_summary.rejected, "bad input alike");
    assert_eq!(summary.list_days, demo_summary.list_days);
    let last = &demo_summary.last_list_date;
    for file in ["4125052000.csv", "unassigned.csv", "escalations.csv"] {
        let at = |root: &Path| std::fs::read(root.join("lists").join(last).join(file)).unwrap();
        assert_eq!(at(&replayed), at(&demo_out), "{file} of {last}");
    }

    // the same signals as plain NDJSON (event-time order) and as Parquet
    let plain = dir.path().join("plain");
    sagak::generate::publish::to_ndjson(&plain, &generated.messages).unwrap();
    let from_ndjson = dir.path().join("from-ndjson");
    let base = replay(vec![plain.clone()], &from_ndjson).await;
    assert!(base.rejected.is_empty(), "{:?}", base.rejected);
    for (codec, name) in [
        (parquet::basic::Compression::SNAPPY, "snappy"),
        (
            parquet::basic::Compression::ZSTD(Default::default()),
            "zstd",
        ),
    ] {
        let files = dir.path().join(name);
        to_parquet(&plain, &files, codec);
        let out = dir.path().join(format!("from-{name}"));
        let got = replay(vec![files], &out).await;
        assert_eq!(got.accepted, base.accepted, "{name}");
        assert!(
            alerts(&out) == alerts(&from_ndjson),
            "{name}: the same alerts"
        );
    }
}

/// A bad line goes to the dead letters with its file and line; the replay
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_dead_lettered_with_file_and_line_and_the_replay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health-insurance.ndjson");
    let lines = [
        health("h-1", "hh-1", "2026-06-01", 4),
        "{not json".to_string(),
        health("h-2", "900101-1234567", "2026-06-02", 4),
        health("h-3", "hh-3", "2026-06-03", 5),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = dir.path().join("out");
    let summary = replay(vec![file.clone()], &out).await;
    assert_eq!(summary.accepted, 2);
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(out.join("dead-letters.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, i64)> = dead
        .iter()
        .map(|d| {
            assert_eq!(d["sagak.source.file"], file.display().to_string());
            (
                d["class"].as_str().unwrap().to_string(),
                d["sagak.source.line"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("not_json".to_string(), 2),
            ("resident_registration_number".to_string(), 3)
        ]
    );
    let text = std::fs::read_to_string(out.join("dead-letters.ndjson")).unwrap();
    assert!(!text.contains("1234567"), "no RRN is stored");
    assert_eq!(alerts(&out).len(), 2, "both households alerted");
}

/// Raising the health threshold from 3 to 4 months: compare says which
/// households leave which lists and which move down a priority; the same
/// pipeline twice changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_reports_what_raising_a_threshold_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    sagak::generate::publish::to_ndjson(&plain, &generate(&city()).messages).unwrap();
    let candidate = dir.path().join("candidate");
    std::fs::create_dir_all(&candidate).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default");
    for f in ["pipeline.toml", "score.sql", "lists.sql", "dongs.csv"] {
        std::fs::copy(root.join(f), candidate.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(candidate.join("pipeline.toml")).unwrap();
    let raised = toml.replace("health_min_months = 3", "health_min_months = 4");
    assert_ne!(raised, toml);
    std::fs::write(candidate.join("pipeline.toml"), raised).unwrap();
    let specs = [
        sagak::definition::PipelineSpec::load(&root).unwrap(),
        sagak::definition::PipelineSpec::load(&candidate).unwrap(),
    ];
    let out = dir.path().join("compare");
    let cfg = config(vec![plain.clone()], &out);
    let c = sagak::drivers::compare::run_compare(&specs, [&root, &candidate], &cfg, &out)
        .await
        .expect("compare");
    // the candidate is a copy of the default pipeline, name and version alike
    assert!(
        c.pipelines.1.starts_with(&candidate.display().to_string()),
        "{:?}",
        c.pipelines
    );
    let lost: usize = c.per_day.values().map(|d| d.lost).sum();
    let gained: usize = c.per_day.values().map(|d| d.gained).sum();
    let moved: usize = c.per_day.values().map(|d| d.moved).sum();
    assert!(lost + moved > 0, "a stricter threshold changes the lists");
    assert_eq!(gained, 0, "and adds nobody");
    for m in c.priority_moves.keys() {
        assert!(
            ["P1 -> P2", "P2 -> P3", "P1 -> P3"].contains(&m.as_str()),
            "only down: {m}"
        );
    }
    let p1 = c.alerts_by_priority["P1"];
    assert!(p1.1 < p1.0, "fewer P1 alerts: {p1:?}");
    let rows = std::fs::read_to_string(out.join("differences.csv")).unwrap();
    assert_eq!(
        rows.lines().count() - 1,
        lost + moved,
        "one row per household and day"
    );
    assert!(out.join("differences.parquet").exists());
    assert!(c.render().contains("households that differ on some day"));

    let same = [specs[0].clone(), specs[0].clone()];
    let out = dir.path().join("same");
    let c = sagak::drivers::compare::run_compare(
        &same,
        [&root, &root],
        &config(vec![plain], &out),
        &out,
    )
    .await
    .expect("compare");
    assert_eq!(c.households_differing, 0);
}

/// The hand-computed case: with the health threshold raised from 3 to 4
/// months, a household with 3 months of premium arrears alone leaves the
/// list, one with 3 months and a job loss drops from P2 to P3, one with 4
/// months and one with water arrears stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_names_exactly_the_households_that_cross_a_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let health_file = dir.path().join("health-insurance.ndjson");
    let lines = [
        health("h-a", "hh-a", "2026-06-01", 3),
        health("h-b", "hh-b", "2026-06-01", 4),
        health("h-c", "hh-c", "2026-06-02", 3),
    ];
    std::fs::write(&health_file, lines.join("\n")).unwrap();
    let jobs = dir.path().join("job-loss.ndjson");
    std::fs::write(&jobs, job_loss("j-c", "hh-c", "2026-06-03")).unwrap();
    let water = dir.path().join("utility-arrears.ndjson");
    std::fs::write(
        &water,
        utility("u-d", "hh-d", "2026-06-04", "water", 3, false),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default");
    let a = sagak::definition::PipelineSpec::load(&root).unwrap();
    let mut b = a.clone();
    b.score_sql = b.score_sql.replace(
        "COALESCE(s.months_overdue, 0) >= 3)",
        "COALESCE(s.months_overdue, 0) >= 4)",
    );
    assert_ne!(
        a.score_sql, b.score_sql,
        "the health threshold is in the SQL"
    );
    let out = dir.path().join("compare");
    let mut cfg = config(vec![health_file, jobs, water], &out);
    // the last signal's day, and the day after it (the replay's final list)
    cfg.dates = vec!["2026-06-04".parse().unwrap(), "2026-06-05".parse().unwrap()];
    let c = sagak::drivers::compare::run_compare(&[a, b], [&root, &root], &cfg, &out)
        .await
        .expect("compare");
    let day = c.per_day["2026-06-05"];
    assert_eq!((day.a, day.b), (4, 3));
    assert_eq!((day.gained, day.lost, day.moved), (0, 1, 1));
    assert_eq!(c.priority_moves, [("P2 -> P3".to_string(), 2)].into());
    let rows = |name: &str| -> Vec<String> {
        std::fs::read_to_string(out.join(name))
            .unwrap()
            .lines()
            .skip(1)
            .map(String::from)
            .collect()
    };
    let days = rows("differences.csv");
    assert_eq!(days.len(), 4, "{days:?}");
    for (row, start) in days.iter().zip([
        "2026-06-04,hh-a,lost,4125052000,,P3,,",
        "2026-06-04,hh-c,moved,4125052000,4125052000,P2,P3,",
        "2026-06-05,hh-a,lost,4125052000,,P3,,",
        "2026-06-05,hh-c,moved,4125052000,4125052000,P2,P3,",
    ]) {
        assert!(row.starts_with(start), "{row}");
    }
    // one row per household, its days summed: the sheet an analyst opens
    let households = rows("households.csv");
    assert_eq!(households.len(), 2, "{households:?}");
    assert!(
        households[0].starts_with("hh-a,0,2,0,2026-06-04,2026-06-05,lost,4125052000,,P3,,"),
        "{}",
        households[0]
    );
    assert!(
        households[1]
            .starts_with("hh-c,0,0,2,2026-06-04,2026-06-05,moved,4125052000,4125052000,P2,P3,"),
        "{}",
        households[1]
    );
    assert!(out.join("households.parquet").exists());
}

/// A backfill from files is the state `sagak run` starts from: the
/// households it holds escalate on their next signal, the overlap with
/// the topics counts once, and nothing of the backfill is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_is_where_run_starts_and_publishes_nothing() {
    let s = Scenario::new("backfill").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health-insurance.ndjson");
    let early = health("h-1", "hh-back", &days_ago(20), 4);
    std::fs::write(&file, format!("{early}\n")).unwrap();
    let out = dir.path().join("out");
    let spec = s.spec.clone();
    let ops = OpsState::new(&spec, Metrics::new(&spec), "replay");
    let mut cfg = config(vec![file], &out);
    cfg.backfill = Some(Backfill {
        state_dir: s.settings.engine.state_dir.clone(),
        partitions: 4,
        partitioner: Partitioner::Murmur2Random,
        offsets: Vec::new(),
    });
    let summary = run_replay(&spec, &cfg, &ops).await.expect("backfill");
    assert_eq!(summary.snapshots, 4, "one snapshot per partition");

    // the agencies' producers use murmur2, as the backfill assumed
    let p = Producer::with(broker(), &[("partitioner", "murmur2_random")]);
    let mut alerts = s.alerts();
    p.signal(&s.topic("health-insurance"), &early).await;
    p.signal(
        &s.topic("job-loss"),
        &job_loss("j-1", "hh-back", &days_ago(5)),
    )
    .await;
    let running = s.start();
    let seen = alerts
        .wait_for("the P2", |seen| {
            alerts_of(seen, "hh-back")
                .iter()
                .any(|a| a["priority"] == "P2")
        })
        .await;
    assert_eq!(
        priorities_of(seen, "hh-back"),
        [serde_json::json!("P2")],
        "the backfilled P3 was never published"
    );
    running
        .wait_metric("sagak_signals_duplicate_total", 1.0)
        .await;
    let seen = alerts.settle(Duration::from_secs(1)).await;
    assert_eq!(alerts_of(seen, "hh-back").len(), 1);
    running.stop().await;
}

/// The backtest of a raised health threshold on a hand-made case: with
/// recorded outcomes, `compare --outcomes` names the helped household the
/// candidate would not have alerted (3 months of premium arrears alone),
/// the helped one it would have alerted a day later (its job loss came a
/// day after its arrears) and the one found with no need that it would no
/// longer alert; a helped household both alert is not named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_names_the_helped_households_a_stricter_rule_would_lose() {
    let dir = tempfile::tempdir().unwrap();
    let health_file = dir.path().join("health-insurance.ndjson");
    let lines = [
        health("h-a", "hh-a", "2026-06-01", 3),
        health("h-e", "hh-e", "2026-06-01", 3),
        health("h-b", "hh-b", "2026-06-01", 4),
        health("h-c", "hh-c", "2026-06-02", 3),
    ];
    std::fs::write(&health_file, lines.join("\n")).unwrap();
    let jobs = dir.path().join("job-loss.ndjson");
    std::fs::write(&jobs, job_loss("j-c", "hh-c", "2026-06-03")).unwrap();
    let outcome = |id: &str, hh: &str, fields: &str| {
        format!(
            r#"{{"outcome_id":"{id}","household_id":"{hh}","dong_code":"4125052000","recorded_at":"2026-06-10T01:00:00Z","staff_id":"s-1",{fields}}}"#
        )
    };
    let outcomes = dir.path().join("outcomes.ndjson");
    let recorded = [
        outcome(
            "o-a",
            "hh-a",
            r#""kind":"not_applicable","reason":"no_need""#,
        ),
        outcome(
            "o-e",
            "hh-e",
            r#""kind":"support_linked","services":["emergency_welfare"]"#,
        ),
        outcome(
            "o-c",
            "hh-c",
            r#""kind":"case_opened","track":"case_management""#,
        ),
        outcome(
            "o-b",
            "hh-b",
            r#""kind":"support_linked","services":["energy"]"#,
        ),
    ];
    std::fs::write(&outcomes, recorded.join("\n")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default");
    let a = sagak::definition::PipelineSpec::load(&root).unwrap();
    let mut b = a.clone();
    b.score_sql = b.score_sql.replace(
        "COALESCE(s.months_overdue, 0) >= 3)",
        "COALESCE(s.months_overdue, 0) >= 4)",
    );
    let out = dir.path().join("compare");
    let mut cfg = config(vec![health_file, jobs], &out);
    cfg.outcomes = vec![outcomes];
    let c = sagak::drivers::compare::run_compare(&[a, b], [&root, &root], &cfg, &out)
        .await
        .expect("compare");
    let t = c.backtest.clone().expect("a backtest with --outcomes");
    // the dong's office has fewer households a day on its list under B
    let (load_a, load_b) = c.load_per_dong["4125052000"];
    assert!(load_b < load_a, "{load_a} {load_b}");
    assert!(c.render().contains("offices' load per round"));
    assert_eq!(
        (t.households_with_outcomes, t.helped, t.not_applicable),
        (4, 3, 1)
    );
    assert_eq!(t.helped_not_alerted, ["hh-e"]);
    assert_eq!(t.not_applicable_spared, ["hh-a"]);
    assert_eq!(t.helped_later.len(), 1, "{:?}", t.helped_later);
    assert_eq!(t.helped_later[0].0, "hh-c");
    assert!(
        (t.helped_later[0].1 - 1.0).abs() < 0.05,
        "{:?}",
        t.helped_later
    );
    // the summary leads with it, and the analyst's sheet carries it
    let text = c.render();
    let second = text.lines().nth(1).unwrap_or_default();
    assert!(
        second.starts_with("backtest against 4 households"),
        "{text}"
    );
    assert!(
        text.contains("helped households B would not have alerted: 1 of 3: hh-e"),
        "{text}"
    );
    let sheet = std::fs::read_to_string(out.join("households.csv")).unwrap();
    let row = |hh: &str| {
        sheet
            .lines()
            .find(|l| l.starts_with(hh))
            .unwrap_or_default()
            .to_string()
    };
    // the verdicts hold commas: quoted, as Excel reads them
    for (hh, verdict) in [
        ("hh-e,", r#""helped, not alerted by B""#),
        ("hh-c,", r#""helped, alerted 1.0 days later by B""#),
        ("hh-a,", r#""not applicable, no longer alerted by B""#),
    ] {
        assert!(row(hh).ends_with(verdict), "{sheet}");
    }
}

/// A backfill of `inputs` (and `outcomes`) into `dir/state`, outputs in
/// `dir/out`; its summary and a `sagak.toml` reading that state.
async fn backfilled(
    dir: &Path,
    inputs: Vec<PathBuf>,
    outcomes: Vec<PathBuf>,
) -> (sagak::drivers::replay::ReplaySummary, PathBuf) {
    let spec = default_spec();
    let ops = OpsState::new(&spec, Metrics::new(&spec), "replay");
    let state = dir.join("state");
    let mut cfg = config(inputs, &dir.join("out"));
    cfg.outcomes = outcomes;
    cfg.backfill = Some(Backfill {
        state_dir: state.clone(),
        partitions: 4,
        partitioner: Partitioner::Murmur2Random,
        offsets: Vec::new(),
    });
    let done = run_replay(&spec, &cfg, &ops).await.expect("backfill");
    let config = dir.join("sagak.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nstate_dir = \"{}\"\n[pipeline]\ndir = \"{}\"\n",
            state.display(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("pipelines/default")
                .display()
        ),
    )
    .unwrap();
    (done, config)
}

/// `sagak explain` on a backfilled state: the household's signals, which
/// counted, the priority the SQL gives, and for a household under a
/// threshold the parameter it missed and by how much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_the_state_and_names_what_counted_and_what_fell_short() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health-insurance.ndjson");
    let lines = [
        health("h-x", "hh-x", "2026-06-01", 4),
        health("h-y", "hh-y", "2026-06-02", 2),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let jobs = dir.path().join("job-loss.ndjson");
    std::fs::write(&jobs, job_loss("j-x", "hh-x", "2026-06-03")).unwrap();
    let (_, config) = backfilled(dir.path(), vec![file, jobs], Vec::new()).await;
    let explain = |hh: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sagak"))
            .args([
                "explain",
                "--household",
                hh,
                "--at",
                "2026-06-04T00:00:00Z",
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let x = explain("hh-x");
    assert!(x.contains("4 months overdue: counts"), "{x}");
    assert!(x.contains("job-loss [employment]: counts"), "{x}");
    assert!(x.contains("판정: P2"), "{x}");
    let y = explain("hh-y");
    assert!(y.contains("health_min_months = 3: 1 short"), "{y}");
    assert!(y.contains("no priority"), "{y}");
}

/// `sagak agenda` on a backfilled state with the offices' outcomes: a
/// counselled household whose crisis meets in two categories is a
/// candidate, a case whose goal passed its date is to be reviewed, and
/// another dong's household is not on this dong's agenda.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agenda_reads_the_state_and_lists_the_dongs_meeting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health-insurance.ndjson");
    let lines = [
        health("h-x", "hh-x", "2026-06-01", 4),
        health("h-y", "hh-y", "2026-06-01", 4),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let jobs = dir.path().join("job-loss.ndjson");
    let far = sagak::testkit::job_loss("j-z", "hh-z", "2026-06-02", "4125053500");
    let lines = [job_loss("j-x", "hh-x", "2026-06-02"), far];
    std::fs::write(&jobs, lines.join("\n")).unwrap();
    let outcome = |id: &str, hh: &str, dong: &str, fields: &str| {
        format!(
            r#"{{"outcome_id":"{id}","household_id":"{hh}","dong_code":"{dong}","recorded_at":"2026-06-03T01:00:00Z","staff_id":"s-1",{fields}}}"#
        )
    };
    let d = "4125052000";
    let recorded = [
        outcome("o-1", "hh-x", d, r#""kind":"counselled""#),
        outcome(
            "o-2",
            "hh-y",
            d,
            r#""kind":"case_opened","track":"case_management""#,
        ),
        outcome(
            "o-3",
            "hh-y",
            d,
            r#""kind":"case_plan","needs":["health"],"goals":[{"text":"진료비 지원","target_date":"2026-06-20"}]"#,
        ),
        outcome("o-4", "hh-z", "4125053500", r#""kind":"counselled""#),
    ];
    let outcomes = dir.path().join("outcomes.ndjson");
    std::fs::write(&outcomes, recorded.join("\n")).unwrap();
    let (done, config) = backfilled(dir.path(), vec![file, jobs], vec![outcomes]).await;
    let dead =
        std::fs::read_to_string(dir.path().join("out/dead-letters.ndjson")).unwrap_or_default();
    assert!(dead.is_empty(), "{dead}");
    assert!(
        done.render().contains("outcomes              4"),
        "{}",
        done.render()
    );
    let csv = dir.path().join("agenda.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sagak"))
        .args(["agenda", "--dong", d, "--date", "2026-06-25", "--csv"])
        .arg(&csv)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let section = |n: &str| {
        let from = text.find(n).unwrap_or_else(|| panic!("{text}"));
        let rest = &text[from..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    let candidates = section("신규 대상 후보");
    assert!(
        candidates.contains("hh-x") && candidates.contains("위기 2개 영역"),
        "{text}"
    );
    let review = section("점검할 사례");
    assert!(
        review.contains("hh-y") && review.contains("목표 1 기한 경과 (2026-06-20)"),
        "{text}"
    );
    assert!(!text.contains("hh-z"), "another dong's household: {text}");
    assert!(
        !text.contains("진료비 지원"),
        "goals' texts are not in the state: {text}"
    );
    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("candidate,") && rows[1].starts_with("review,"),
        "{table}"
    );
    // a bad date names the flag
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sagak"))
        .args(["agenda", "--dong", d, "--date", "25/06/2026", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--date"));
}
