use super::*;

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default")
}

#[test]
fn default_pipeline_loads_with_every_param_filled() {
    let spec = PipelineSpec::load(&default_dir()).expect("default pipeline loads");
    assert_eq!(spec.feeds.len(), 3);
    assert_eq!(spec.dongs.len(), 8);
    assert_eq!(spec.dongs[1].name_ko, "생연2동");
    assert!(spec.lists_sql.as_deref().is_some_and(|s| !s.contains("${")));
    let embedded = PipelineSpec::embedded_default().expect("built-in copy loads");
    assert_eq!(embedded.score_sql, spec.score_sql);
    assert_eq!(embedded.dongs, spec.dongs);
    assert!(
        !spec.score_sql.contains("${"),
        "unfilled placeholder in SQL"
    );
    assert!(spec
        .score_sql
        .contains("arrow_cast(7776000000, 'Duration(Millisecond)')"));
}

#[test]
fn missing_param_names_the_key() {
    let params = BTreeMap::new();
    assert_eq!(
        fill_params("x >= ${health_min_months}", &params),
        Err("health_min_months".to_string())
    );
}

/// Why a pipeline of one rent feed in `category` (with `extra` lines
/// for the feed) is refused.
fn refusal_of_rent_feed(category: &str, extra: &str) -> PipelineError {
    let text = format!(
        r#"
        name = "t"
        version = "1"
        score_sql = "score.sql"
        window = {{ length_days = 90, allowed_lateness_days = 7, max_future_hours = 24, max_signals_per_household = 8 }}
        alerts = {{ cooldown_days = 30 }}
        [[feeds]]
        name = "rent"
        topic = "signals.rent"
        category = "{category}"
        subject = "lh"
        reason = "rent"
        reason_ko = "rent"
        {extra}
    "#
    );
    let file: PipelineFile = toml::from_str(&text).unwrap();
    PipelineSpec::from_parts(file, "select 1", Path::new("p.toml")).unwrap_err()
}

#[test]
fn a_category_the_alert_schema_would_refuse_is_refused_at_load() {
    for good in ["housing", "utility", "rent_2"] {
        assert!(is_category_name(good), "{good}");
    }
    for bad in [
        "",
        "Housing",
        "2rent",
        "rent-arrears",
        "주거",
        &"a".repeat(33),
    ] {
        assert!(!is_category_name(bad), "{bad}");
    }
    let err = refusal_of_rent_feed("Rent-Arrears", "");
    assert!(
        err.to_string().starts_with(
            "p.toml: `feeds[0] (rent).category` is \"Rent-Arrears\": a category is 1-32 characters"
        ),
        "{err}"
    );
}

#[test]
fn feed_with_two_subjects_is_refused_with_its_key() {
    let err = refusal_of_rent_feed(
        "housing",
        r#"fields = { unit = { type = "id", column = "subject" } }"#,
    );
    assert_eq!(
        err.to_string(),
        "p.toml: `feeds[0] (rent).subject` set either a constant `subject` or one field with column = \"subject\", not both or neither"
    );
}
