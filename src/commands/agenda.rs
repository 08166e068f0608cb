//! `sagak agenda --dong CODE --date D [--csv FILE]`: a dong's case meeting
//! agenda from the newest state snapshots.

use super::Context;

/// Restores the state and prints the agenda (and writes its CSV).
pub async fn agenda(
    cx: &Context,
    dong: &str,
    date: &str,
    csv: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let storage = cx.settings.storage()?;
    let engine = super::restored_engine(cx, storage.state)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (text, table) = sagak::ops::agenda::from_state(&cx.spec, &engine, dong, date, now)
        .map_err(|e| anyhow::anyhow!(e))?;
    print!("{text}");
    if let Some(path) = csv {
        std::fs::write(path, table)
            .map_err(|e| anyhow::anyhow!("--csv {}: {e}", path.display()))?;
    }
    Ok(())
}
