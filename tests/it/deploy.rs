//! The deployment files: alert rules through promtool, the systemd unit
//! through systemd-analyze, the container file by what it must hold.

use std::path::Path;
use std::process::Command;

use crate::support::ensure_tool;

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let promtool = ensure_tool("promtool", "prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // every metric the rules name is one sagak exports
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let metrics = sagak::metrics::Metrics::new(&sagak::testkit::default_spec());
    // labelled series appear once they have a value
    metrics
        .feed_received_at
        .with_label_values(&["job-loss"])
        .set(1);
    metrics
        .consumer_lag
        .with_label_values(&["signals.job-loss", "0"])
        .set(0);
    metrics
        .case
        .overdue_households
        .with_label_values(&["4125052000"])
        .set(0);
    metrics
        .case
        .unreachable_households
        .with_label_values(&["4125052000"])
        .set(0);
    let exported = metrics.render();
    for name in rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sagak_") && w.len() > 6)
    {
        assert!(
            exported.contains(&format!("# TYPE {name} ")),
            "{name} is not exported"
        );
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_systemd_accepts_it() {
    let unit = std::fs::read_to_string(deploy("systemd/sagak.service")).unwrap();
    for line in [
        "User=sagak",
        "UMask=0077",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestartPreventExitStatus=78",
        "LimitNOFILE=65536",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    assert!(unit
        .lines()
        .any(|l| l.starts_with("ReadWritePaths=/var/lib/sagak")));
    assert!(unit
        .lines()
        .any(|l| l.starts_with("ReadOnlyPaths=/etc/sagak")));
    // systemd-analyze reads a copy that starts the binary just built; any
    // word it prints (an unknown key, a bad value) is a defect
    let Ok(analyze) = which("systemd-analyze") else {
        println!("systemd-analyze is not installed: the unit was checked by its lines only");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sagak.service");
    let exe = env!("CARGO_BIN_EXE_sagak");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/local/bin/sagak",
            &format!("ExecStart={exe}"),
        ),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

fn which(binary: &str) -> Result<String, ()> {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok_or(())
}

/// The container file, read as a builder reads it: instructions with their
/// continuation lines joined, per build stage.
fn stages(text: &str) -> Vec<Vec<(String, String)>> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() && current.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in joined {
        let (word, rest) = instruction.split_once(' ').unwrap_or((&instruction, ""));
        let word = word.to_ascii_uppercase();
        if word == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push((word, rest.trim().to_string()));
        }
    }
    stages
}

#[test]
fn the_container_file_builds_in_stages_and_runs_unprivileged_with_a_health_check() {
    let text = std::fs::read_to_string(deploy("container/Containerfile")).unwrap();
    let stages = stages(&text);
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    assert!(
        stages[0]
            .iter()
            .any(|(w, r)| w == "RUN" && r.contains("cargo build --release --locked")),
        "the first stage builds the release binary"
    );
    let runtime = stages.last().unwrap();
    let get = |word: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    assert!(
        get("COPY").iter().any(|r| r.starts_with("--from=")),
        "copies from the build stage"
    );
    let user = get("USER");
    assert!(
        user.last()
            .is_some_and(|u| *u != "root" && !u.starts_with('0')),
        "runs as a non-root user: {user:?}"
    );
    assert!(get("HEALTHCHECK").iter().any(|h| h.contains("/readyz")));
    assert!(get("VOLUME").iter().any(|v| v.contains("/var/lib/sagak")));
    let ports: Vec<&str> = get("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    assert!(
        ports.contains(&"9464") && ports.contains(&"9465"),
        "metrics and the offices' pages: {ports:?}"
    );
    assert!(
        get("ENV")
            .iter()
            .any(|e| e.contains("SAGAK__HTTP__LISTEN=0.0.0.0:9464")),
        "/metrics and /readyz reachable from outside the container"
    );
}
