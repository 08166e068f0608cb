//! `sagak replay` (history through the engine, or a backfill) and
//! `sagak compare` (the same history under two pipelines).

use std::path::PathBuf;

use anyhow::Context as _;
use sagak::metrics::Metrics;
use sagak::ops::OpsState;

use super::Context;
use crate::cli::ReplayArgs;

/// A replay's backfill options (`--snapshots` and what goes with it).
pub struct BackfillArgs {
    /// Write the final state as snapshots here.
    pub snapshots: Option<PathBuf>,
    /// Partitions of the deployment's input topics.
    pub partitions: i32,
    /// The agencies' producers' partitioner.
    pub partitioner: sagak::embedded::files::Partitioner,
    /// `topic:partition:offset` starts.
    pub offsets: Vec<String>,
}

/// Replays the files and prints the summary.
pub async fn replay(
    cx: &Context,
    files: &ReplayArgs,
    out: PathBuf,
    b: BackfillArgs,
) -> anyhow::Result<()> {
    let spec = &cx.spec;
    let mut cfg = files.config(out);
    if let Some(state_dir) = b.snapshots {
        cfg.backfill = Some(sagak::drivers::replay::Backfill {
            state_dir,
            partitions: b.partitions,
            partitioner: b.partitioner,
            offsets: sagak::drivers::replay::parse_offsets(&b.offsets)?,
        });
    }
    let ops = OpsState::new(spec, Metrics::new(spec), "replay");
    let summary = sagak::drivers::replay::run_replay(spec, &cfg, &ops)
        .await
        .context("replaying")?;
    print!("{}", summary.render());
    Ok(())
}

/// Replays the files under the current and the candidate pipeline and
/// prints what changes.
pub async fn compare(
    pipelines: &[PathBuf],
    files: &ReplayArgs,
    out: PathBuf,
) -> anyhow::Result<()> {
    let [a, b] = pipelines else {
        anyhow::bail!(
            "compare needs exactly two --pipeline folders (the current one, then the candidate); got {}",
            pipelines.len()
        );
    };
    let specs = [
        sagak::definition::PipelineSpec::load(a)?,
        sagak::definition::PipelineSpec::load(b)?,
    ];
    let report =
        sagak::drivers::compare::run_compare(&specs, [a, b], &files.config(out.clone()), &out)
            .await
            .context("comparing")?;
    print!("{}", report.render());
    Ok(())
}
