//! The `sagak` binary as an operator uses it.

use std::process::Command;

fn sagak(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sagak"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sagak runs");
    (
        out.status.success(),
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
