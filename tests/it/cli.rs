//! The `sagak` binary as an operator uses it.

use std::process::Command;

fn sagak(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let (code, out, err) = sagak_status(args, env);
    (code == Some(0), out, err)
}

/// Exit code, stdout and stderr of one run.
fn sagak_status(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sagak"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sagak runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_the_effective_settings_with_environment_overrides() {
    let (ok, out, err) = sagak(
        &["check-config"],
        &[
            ("SAGAK__KAFKA__BROKERS", "kafka1:9092"),
            ("SAGAK__KAFKA__PROPERTIES__SASL_MECHANISMS", "PLAIN"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("brokers = \"kafka1:9092\""), "{out}");
    assert!(out.contains("\"sasl.mechanisms\" = \"PLAIN\""), "{out}");
    assert!(out.contains("scoring SQL plans"), "{out}");
}

#[test]
fn check_config_fails_naming_the_bad_key() {
    let (ok, _, err) = sagak(
        &["check-config"],
        &[("SAGAK__ENGINE__FLUSH_INTERVAL_MS", "0")],
    );
    assert!(!ok);
    assert!(err.contains("engine.flush_interval_ms"), "{err}");
    let (ok, _, err) = sagak(&["check-config", "--config", "no-such-sagak.toml"], &[]);
    assert!(!ok);
    assert!(err.contains("no-such-sagak.toml"), "{err}");
}

#[test]
fn a_broken_pipeline_stops_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default");
    for f in ["pipeline.toml", "dongs.csv", "lists.sql"] {
        std::fs::copy(pipeline.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("score.sql"),
        "SELECT household_id FROM signals",
    )
    .unwrap();
    let (ok, _, err) = sagak(
        &["check-config"],
        &[("SAGAK__PIPELINE__DIR", dir.path().to_str().unwrap())],
    );
    assert!(!ok);
    assert!(err.contains("must return column `dong_code`"), "{err}");
}

/// A failure before the first message is a bad deploy, not a crash: exit
/// 78 (EX_CONFIG), so systemd's RestartPreventExitStatus and Kubernetes
/// can tell them apart; librdkafka's refusal of a property is caught by
/// check-config, naming it.
#[test]
fn a_bad_configuration_exits_78_and_check_config_asks_librdkafka() {
    let (code, _, err) = sagak_status(
        &["check-config"],
        &[("SAGAK__KAFKA__PROPERTIES__FETCH_WAIT_MAX_MS", "soon")],
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("fetch.wait.max.ms"), "{err}");
    for args in [
        &["run", "--config", "no-such-sagak.toml"][..],
        &[
            "lists",
            "--date",
            "2026-11-22",
            "--config",
            "no-such-sagak.toml",
        ][..],
    ] {
        let (code, _, err) = sagak_status(args, &[]);
        assert_eq!(code, Some(78), "{args:?}: {err}");
    }
    let (code, _, err) = sagak_status(&["run"], &[("SAGAK__ENGINE__MAX_BATCH", "0")]);
    assert_eq!(code, Some(78), "{err}");
}

/// Logs as JSON lines when asked, and never with colour escapes when
/// stderr is not a terminal.
#[test]
fn logs_are_json_lines_when_asked_and_plain_text_otherwise() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let args = ["demo", "--households", "300", "--days", "3", "--out", dir];
    for format in ["json", "text"] {
        let (ok, _, err) = sagak(
            &args,
            &[("SAGAK__LOG__FORMAT", format), ("RUST_LOG", "debug")],
        );
        assert!(ok, "{err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("simulating"))
            .collect();
        assert!(!lines.is_empty(), "the demo logs at debug level");
        assert!(
            !err.contains('\u{1b}'),
            "no ANSI escapes off a terminal: {err}"
        );
        if format == "json" {
            for line in &lines {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(
                    v["level"].is_string() && v["timestamp"].is_string(),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn a_replay_refuses_a_batch_of_no_time_and_names_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("job-loss.ndjson");
    std::fs::write(&input, "").unwrap();
    let input = input.to_string_lossy().into_owned();
    let (code, _, err) = sagak_status(&["replay", "--input", &input, "--batch-minutes", "0"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--batch-minutes"), "{err}");
    assert!(err.contains("1..=525600"), "{err}");
}
