//! Helpers shared by the unit tests: the default pipeline and signal JSON.

use crate::pipeline::PipelineSpec;

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
