use super::*;

/// Ids and secrets stay exactly as written, in the file and in the
/// environment, while typed keys are still parsed.
#[test]
fn strings_stay_as_written_and_typed_keys_are_still_parsed() {
    for value in ["0123", "1e3", "true", "bW9uZXk+c2VjcmV0/Zm9v=="] {
        let env = std::collections::HashMap::from([
            ("SAGAK__KAFKA__GROUP_ID".to_string(), value.to_string()),
            (
                "SAGAK__KAFKA__PROPERTIES__SASL_PASSWORD".to_string(),
                value.to_string(),
            ),
            ("SAGAK__ENGINE__MAX_BATCH".to_string(), "2500".to_string()),
            ("SAGAK__LISTS__ENABLED".to_string(), "false".to_string()),
        ]);
        let s = Settings::load_from(None, Some(env)).expect("loads");
        assert_eq!(s.kafka.group_id, value, "environment");
        assert_eq!(s.kafka.properties["sasl.password"], value, "environment");
        assert_eq!(s.engine.max_batch, 2500);
        assert!(!s.lists.enabled);

        let toml = format!(
            "[kafka]\ngroup_id = \"{value}\"\n[kafka.properties]\n\"sasl.password\" = \"{value}\"\n"
        );
        let s = load_toml(&toml).expect("loads");
        assert_eq!(s.kafka.group_id, value, "file");
        assert_eq!(s.kafka.properties["sasl.password"], value, "file");
    }
    // a typed key that does not parse names itself
    let env = std::collections::HashMap::from([(
        "SAGAK__ENGINE__MAX_BATCH".to_string(),
        "lots".to_string(),
    )]);
    let err = Settings::load_from(None, Some(env))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_batch"), "{err}");
}

fn load_toml(text: &str) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagak.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load(Some(&path))
}

#[test]
fn file_values_override_defaults() {
    let s = load_toml("[kafka]\nbrokers = \"k1:9092,k2:9092\"\n[kafka.properties]\n\"security.protocol\" = \"SSL\"\n").unwrap();
    assert_eq!(s.kafka.brokers, "k1:9092,k2:9092");
    assert_eq!(
        s.kafka
            .properties
            .get("security.protocol")
            .map(String::as_str),
        Some("SSL")
    );
    assert_eq!(s.engine.flush_interval_ms, 50);
}

#[test]
fn a_mistyped_value_names_its_key() {
    let err = load_toml("[engine]\nflush_interval_ms = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("flush_interval_ms"), "{err}");
}

#[test]
fn an_unknown_key_is_refused() {
    let err = load_toml("[engine]\nflush_ms = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("flush_ms"), "{err}");
}

#[test]
fn an_impossible_value_says_how_to_fix_it() {
    let err = load_toml("[engine]\nmax_batch = 0\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "configuration error: `engine.max_batch` must be between 1 and 1000000 (messages)"
    );
    let err = load_toml("[kafka.properties]\n\"group.id\" = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("kafka.properties.group.id"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Settings::load(Some(Path::new("/nonexistent/sagak.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/sagak.toml"), "{err}");
}

#[test]
fn an_input_override_must_name_a_feed() {
    let mut s = Settings::default();
    s.pipeline.dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default"));
    s.topics
        .inputs
        .insert("rent-arrears".into(), "signals.rent".into());
    let err = s.pipeline().unwrap_err().to_string();
    assert!(
        err.contains("topics.inputs.rent-arrears") && err.contains("health-insurance"),
        "{err}"
    );
}

#[test]
fn cooperative_rebalancing_is_refused_naming_the_key() {
    let err =
        load_toml("[kafka.consumer]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("partition.assignment.strategy"), "{err}");
    assert!(err.contains("range,roundrobin"), "{err}");
}

#[test]
fn the_shared_token_is_gone_and_says_what_replaced_it() {
    let err = load_toml("[http]\ntoken = \"s3cret\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`http.token`") && err.contains("sagak users add"),
        "{err}"
    );
}

#[test]
fn household_pages_off_loopback_need_tls_or_a_tls_proxy() {
    let err = load_toml("[web]\nlisten = \"0.0.0.0:9465\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`web.listen`")
            && err.contains("web.tls_cert")
            && err.contains("web.trusted_proxy"),
        "{err}"
    );
    assert!(load_toml("[web]\nlisten = \"0.0.0.0:9465\"\ntrusted_proxy = \"10.0.0.5\"\n").is_ok());
    let err = load_toml("[web]\nlisten = \"0.0.0.0:9465\"\ntls_cert = \"c.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("web.tls_key"), "{err}");
    let err = load_toml("[web]\ntrusted_proxy = \"proxy.local\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("IP address"), "{err}");
}

#[test]
fn retention_stays_within_the_law() {
    let err = load_toml("[retention]\ndata = \"6y\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`retention.data`") && err.contains("5y"),
        "{err}"
    );
    let err = load_toml("[retention]\naudit = \"1y\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`retention.audit`") && err.contains("2y"),
        "{err}"
    );
    let err = load_toml("[retention]\ndata = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a duration") && err.contains("retention.data"),
        "parsed once, naming the key: {err}"
    );
    let err = load_toml("[web]\nsession_idle = \"later\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("session_idle") && err.contains("not a duration"),
        "{err}"
    );
    let s = load_toml("[retention]\ndata = \"30d\"\naudit = \"3y\"\n").unwrap();
    assert_eq!(s.retention.data_ms(), 30 * 86_400_000);
    // the case records of the pipeline must not outlive retention.data
    let mut s = Settings::default();
    s.pipeline.dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default"));
    s.retention.data = Span::from("200d");
    let err = s.pipeline().unwrap_err().to_string();
    assert!(err.contains("outcomes.retention"), "{err}");
}
