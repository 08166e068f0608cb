//! Test support shared by the unit tests and the integration tests (behind
//! the `testkit` feature): the default pipeline, signal JSON and a small
//! generated city.

use crate::definition::PipelineSpec;

/// 2026-11-18T11:06:40Z, the wall clock of the unit tests.
pub const NOW: i64 = 1_795_000_000_000;

/// The default pipeline from `pipelines/default`.
pub fn default_spec() -> PipelineSpec {
    PipelineSpec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default").as_ref())
        .expect("default pipeline loads")
}

/// Common fields of a signal as JSON members (no braces).
fn common(event_id: &str, household: &str, dong: &str, day: &str, source: &str) -> String {
    format!(
        r#""event_id":"{event_id}","household_id":"{household}","dong_code":"{dong}","observed_at":"{day}T09:00:00+09:00","source":"{source}""#
    )
}

/// A utility-arrears signal observed on `day` (YYYY-MM-DD) in dong 4125052000.
pub fn utility(
    event_id: &str,
    household: &str,
    day: &str,
    utility: &str,
    months: i64,
    disconnected: bool,
) -> String {
    format!(
        r#"{{{},"utility":"{utility}","months_overdue":{months},"amount_krw":{},"disconnected":{disconnected}}}"#,
        common(event_id, household, "4125052000", day, "kepco"),
        months * 57_500
    )
}

/// A health-insurance signal.
pub fn health(event_id: &str, household: &str, day: &str, months: i64) -> String {
    format!(
        r#"{{{},"months_overdue":{months},"amount_krw":{}}}"#,
        common(event_id, household, "4125052000", day, "nhis"),
        months * 246_000
    )
}

/// A job-loss signal, in dong `dong`.
pub fn job_loss(event_id: &str, household: &str, day: &str, dong: &str) -> String {
    format!(
        r#"{{{},"person_id":"p-{household}","kind":"job_loss","occurred_on":"{day}"}}"#,
        common(event_id, household, dong, day, "moel")
    )
}

/// `json` as a message of feed `feed` keyed by household `household`, on
/// partition 0, with broker timestamp [`NOW`].
pub fn input(
    spec: &PipelineSpec,
    feed: &str,
    household: &str,
    json: String,
) -> crate::base::message::InputMessage {
    crate::base::message::InputMessage {
        feed: spec.feed_index(feed).map(|f| f as u16),
        topic: std::sync::Arc::from(""),
        partition: 0,
        offset: 0,
        key: Some(household.as_bytes().to_vec()),
        payload: Some(json.into_bytes()),
        timestamp_ms: Some(NOW),
        source_file: None,
    }
}

/// A small generated city (malformed, late and re-sent messages included),
/// keyed and partitioned as producers must.
pub fn city() -> Vec<crate::base::message::InputMessage> {
    use crate::generate::{generate, GeneratorConfig};
    let spec = default_spec();
    generate(&GeneratorConfig {
        households: 3_000,
        days: 150,
        late_share: 0.02,
        malformed_share: 0.01,
        ..GeneratorConfig::default()
    })
    .messages
    .into_iter()
    .enumerate()
    .map(|(i, m)| m.into_input(&spec, i as i64, 4))
    .collect()
}

/// An alert kept in a case record, sent at `sent_ms` (to the second) and
/// waiting for a first reach; its id is its sending time.
pub fn kept_alert(
    priority: crate::stages::score::Priority,
    sent_ms: i64,
) -> crate::stages::case::record::KeptAlert {
    crate::stages::case::record::KeptAlert {
        id: sent_ms as u128,
        day: sent_ms.div_euclid(crate::definition::DAY_MS) as i32,
        priority,
        categories: 1,
        dong: None,
        open_since: Some(sent_ms.div_euclid(1000) * 1000),
        overdue_sent: false,
    }
}

/// An outcome kept in a case record: `kind` with the value `detail`,
/// recorded by a dong office at `at_ms`.
pub fn held_outcome(
    id: u32,
    kind: crate::stages::case::outcome::OutcomeKind,
    detail: u8,
    at_ms: i64,
) -> crate::stages::case::record::HeldOutcome {
    crate::stages::case::record::HeldOutcome {
        id,
        kind,
        detail,
        priority: crate::stages::score::Priority::P3,
        categories: 1,
        recorded_at: at_ms.div_euclid(1000) * 1000,
        target: 0,
        channel: None,
        services: 0,
        by_city: false,
    }
}

/// One line of a list file into its fields (quotes as Excel writes them;
/// a leading byte-order mark dropped).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().into_iter().for_each(|f| f.push('"'));
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            _ => out.last_mut().into_iter().for_each(|f| f.push(c)),
        }
    }
    out
}
