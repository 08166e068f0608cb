//! `sagak explain --household ID [--at TIME]`: why a household was or was
//! not alerted, from the newest state snapshots.

use super::Context;

/// Restores the state and prints the household's explanation.
pub async fn explain(cx: &Context, household: &str, at: Option<&str>) -> anyhow::Result<()> {
    let (settings, spec) = (&cx.settings, &cx.spec);
    let at_ms = match at {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| {
                anyhow::anyhow!("--at {text}: {e}; write it as 2026-12-01T09:00:00+09:00")
            })?
            .timestamp_millis(),
        None => chrono::Utc::now().timestamp_millis(),
    };
    let storage = settings.storage()?;
    let engine = super::restored_engine(cx, storage.state)?;
    engine.start().await?;
    let text = engine
        .explain(
            spec,
            household,
            sagak::base::time::EventTime::from_ms(at_ms),
            sagak::base::time::ClockTime::from_ms(at_ms),
        )
        .await?;
    print!("{text}");
    Ok(())
}
