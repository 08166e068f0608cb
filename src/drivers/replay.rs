//! `sagak replay`: any history from files through the same engine and
//! driver core as `sagak run` and `sagak demo`, with the demo's outputs;
//! and a backfill: the final state written as the snapshots `sagak run`
//! starts from.
//!
//! The replay's clock is the input's time: the newest `observed_at` so far
//! (or each line's arrival time, for files written with `--with-arrival`).

use crate::base::time::ClockTime;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use super::{DriverCore, DriverError, ListSchedule, OnListFailure};
use crate::base::clock::SimulatedClock;
use crate::base::message::InputMessage;
use crate::checkpoint::{CheckpointError, PartitionOffset, ShardedStore};
use crate::definition::PipelineSpec;
use crate::embedded::files::{FileError, FileSource};
use crate::embedded::sink::{NdjsonSink, SinkError};
use crate::embedded::TimedSource;
use crate::engine::{BatchResult, Engine, Outputs};
use crate::lists::DailyLists;
use crate::ops::OpsState;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input files.
    #[error(transparent)]
    Files(#[from] FileError),
    /// Scoring failed.
    #[error(transparent)]
    Score(#[from] crate::stages::score::ScoreError),
    /// Lists failed.
    #[error(transparent)]
    Lists(#[from] crate::lists::ListError),
    /// Writing the outputs failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Writing the backfill's snapshots failed.
    #[error(transparent)]
    Snapshots(#[from] CheckpointError),
    /// The output folder.
    #[error("cannot write under {dir}: {error}. Check --out and the free disk space")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// An outcome file of a backtest.
    #[error("cannot read the outcome file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A bad option.
    #[error("{0}")]
    Usage(String),
}

impl From<DriverError<SinkError>> for ReplayError {
    fn from(e: DriverError<SinkError>) -> Self {
        match e {
            DriverError::Score(e) => ReplayError::Score(e),
            DriverError::Lists(e) => ReplayError::Lists(e),
            DriverError::Outputs(e) => ReplayError::Sink(e),
        }
    }
}

/// A backfill: where the final state goes, and where `sagak run` starts.
#[derive(Debug, Clone)]
pub struct Backfill {
    /// `engine.state_dir` of the deployment.
    pub state_dir: PathBuf,
    /// Partitions of its input topics: each household goes to the shard
    /// of its key's partition.
    pub partitions: i32,
    /// How the agencies' producers place keys.
    pub partitioner: crate::embedded::files::Partitioner,
    /// Where each input partition starts; a partition not named starts at
    /// the committed or earliest retained offset, and the overlap with the
    /// files counts once (by event id).
    pub offsets: Vec<PartitionOffset>,
}

/// Settings of a replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// NDJSON or Parquet files, or folders of them.
    pub inputs: Vec<PathBuf>,
    /// The feed of every input file (else each file's name says it).
    pub feed: Option<String>,
    /// Outcome files (NDJSON), merged in by `recorded_at`.
    pub outcomes: Vec<PathBuf>,
    /// Where the outputs go.
    pub out_dir: PathBuf,
    /// Only these days' lists (every day when empty).
    pub dates: Vec<chrono::NaiveDate>,
    /// Only the final day's list (after the last input).
    pub final_list_only: bool,
    /// Input time per micro-batch, minutes.
    pub batch_minutes: i64,
    /// Write the final state as snapshots.
    pub backfill: Option<Backfill>,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReplaySummary {
    /// Lines read, per feed (`outcomes` for outcome files).
    pub(crate) messages_in: BTreeMap<String, usize>,
    /// Signals stored.
    pub accepted: usize,
    /// Re-sent events counted once.
    pub(crate) duplicates: usize,
    /// Rejected, per reason class (in `dead-letters.ndjson` with file and line).
    pub rejected: BTreeMap<String, usize>,
    /// Alerts per priority (case updates apart).
    pub(crate) alerts_by_priority: BTreeMap<String, usize>,
    /// Alerts per dong.
    pub(crate) alerts_by_dong: BTreeMap<String, usize>,
    /// Case updates.
    pub(crate) case_updates: usize,
    /// Escalations per reason.
    pub(crate) escalations: BTreeMap<String, usize>,
    /// Outcomes recorded.
    pub(crate) outcomes: usize,
    /// Days of lists written.
    pub list_days: usize,
    /// The last day's lists: date and households.
    pub(crate) last_list: Option<(String, usize)>,
    /// Snapshots written by a backfill (one per partition).
    pub snapshots: usize,
    /// The input's time span: first and last (RFC 3339).
    pub(crate) span: Option<(String, String)>,
    /// Wall-clock seconds.
    pub(crate) seconds: f64,
    /// Output directory.
    pub(crate) out_dir: String,
}

/// The replay's outputs: the NDJSON sink, and the tallies of its summary.
struct ReplayOutputs {
    sink: NdjsonSink,
    tally: super::Tally,
}

impl Outputs for ReplayOutputs {
    type Error = SinkError;

    async fn deliver(
        &mut self,
        result: &BatchResult,
        batch: &[InputMessage],
    ) -> Result<(), SinkError> {
        self.tally.count(result);
        self.sink.deliver(result, batch).await
    }
}

/// The loop of the drivers whose source comes in time order (the demo, a
/// replay): at each step the clock moves to the next arrival, the timer
/// runs (lists at cut-offs, overdue escalations), what arrives before the
/// step's end (or the next cut-off) goes into one batch with what `extra`
/// adds (the demo's simulated offices), and the batch is flushed.
/// `on_step` sees the core and the clock after each batch.
pub(crate) async fn drive<S: TimedSource, O: Outputs>(
    core: &mut DriverCore<'_, SimulatedClock>,
    clock: &SimulatedClock,
    source: &mut S,
    out: &mut O,
    step_ms: i64,
    mut extra: impl FnMut(&mut O, ClockTime) -> Vec<InputMessage>,
    mut on_step: impl FnMut(&DriverCore<'_, SimulatedClock>, ClockTime),
) -> Result<(), DriverError<O::Error>> {
    while let Some(window_start) = source.next_arrival() {
        // lists are made from the state as it stands at each cut-off
        clock.set(window_start);
        core.tick(out).await?;
        let step_end = window_start.plus(step_ms);
        let window_end = core.next_cutoff().map_or(step_end, |c| c.min(step_end));
        let mut now = window_start;
        while let Some(m) = source.next_before(window_end) {
            // a message's broker timestamp is its arrival on this clock
            now = m.timestamp_ms.map_or(now, ClockTime::from_ms);
            core.push(m);
        }
        for m in extra(out, window_end) {
            core.push(m);
        }
        clock.set(now);
        core.flush(out).await?;
        on_step(core, now);
    }
    Ok(())
}

/// Replays `cfg.inputs` under `spec` and writes the outputs under
/// `cfg.out_dir` (and, for a backfill, the snapshots).
pub async fn run_replay(
    spec: &PipelineSpec,
    cfg: &ReplayConfig,
    ops: &OpsState,
) -> Result<ReplaySummary, ReplayError> {
    let started = std::time::Instant::now();
    let io = |error| ReplayError::Io {
        dir: cfg.out_dir.clone(),
        error,
    };
    fs::create_dir_all(&cfg.out_dir).map_err(io)?;
    let mut source = FileSource::open(spec, &cfg.inputs, cfg.feed.as_deref(), &cfg.outcomes)?;
    if let Some(b) = &cfg.backfill {
        if b.partitions < 1 {
            return Err(ReplayError::Usage(
                "a backfill needs --partitions N: the partitions of the deployment's input topics"
                    .into(),
            ));
        }
        source = source.partitioned(b.partitions, b.partitioner);
    }
    let engine = Engine::new(spec);
    engine.start().await?;
    let mut out = ReplayOutputs {
        sink: NdjsonSink::create(&cfg.out_dir)?,
        tally: super::Tally::default(),
    };
    let mut summary = ReplaySummary {
        out_dir: cfg.out_dir.display().to_string(),
        ..ReplaySummary::default()
    };
    let total = source.len() as u64;
    let Some(first) = source.next_arrival() else {
        out.sink.flush()?;
        return Ok(summary);
    };
    let clock = SimulatedClock::at(first);
    let mut schedule = ListSchedule::new(
        DailyLists::new(spec)?,
        super::lists_store(&cfg.out_dir)?,
        first,
        OnListFailure::Stop,
    )
    .quiet();
    if !cfg.dates.is_empty() || cfg.final_list_only {
        schedule = schedule.only(cfg.dates.clone());
    }
    let mut core = DriverCore::new(engine, clock.clone(), ops, usize::MAX)
        .with_lists(schedule)
        .evicting_at_cutoffs();
    let progress = if cfg.progress {
        indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last = first;
    drive(
        &mut core,
        &clock,
        &mut source,
        &mut out,
        cfg.batch_minutes.max(1) * 60_000,
        |_, _| Vec::new(),
        |core, now| {
            let counts = core.counts();
            progress.set_position(counts.messages);
            progress.set_message(format!(
                "{} {} alerts",
                crate::stages::alert::rfc3339(now.ms())
                    .get(..10)
                    .unwrap_or_default(),
                counts.alerts
            ));
            last = now;
        },
    )
    .await?;
    progress.finish_and_clear();
    if cfg.final_list_only {
        core.list_every_day();
    }
    core.lists_at_next_cutoff::<SinkError>().await?;
    out.sink.flush()?;

    let counts = core.counts();
    let tally = std::mem::take(&mut out.tally);
    summary.rejected = tally.rejected;
    summary.alerts_by_priority = tally.alerts_by_priority;
    summary.alerts_by_dong = tally.alerts_by_dong;
    summary.case_updates = tally.case_updates;
    summary.escalations = tally.escalations;
    summary.messages_in = source.lines_in();
    summary.accepted = counts.accepted as usize;
    summary.duplicates = counts.duplicates as usize;
    summary.outcomes = counts.outcomes as usize;
    summary.list_days = counts.list_days as usize;
    summary.last_list = core.last_list().map(|m| (m.date.clone(), m.households));
    summary.span = Some((
        crate::stages::alert::rfc3339(first.ms()),
        crate::stages::alert::rfc3339(last.ms()),
    ));
    if let Some(b) = &cfg.backfill {
        summary.snapshots = write_backfill(spec, core.engine_mut(), b, last.ms())?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| io(e.into()))?;
    fs::write(cfg.out_dir.join("summary.json"), json).map_err(io)?;
    Ok(summary)
}

/// Writes the engine's state as one snapshot per partition of the
/// deployment, the case records without their alerts: the backfill sent
/// no alert, so no office owes a contact and nothing may go overdue; what
/// the offices recorded (the outcomes files: cases, plans, reviews) stays.
fn write_backfill(
    spec: &PipelineSpec,
    engine: &mut Engine,
    b: &Backfill,
    now_ms: i64,
) -> Result<usize, ReplayError> {
    engine.on_watermark();
    engine.forget_unsent_alerts();
    let state = engine.encode_state();
    let store = ShardedStore::open(&b.state_dir, 3)?;
    let files = store.write_state(&spec.name, now_ms, &state, 0..b.partitions, &b.offsets)?;
    Ok(files.files.len())
}

/// Parses `--offsets topic:partition:offset,...`.
pub fn parse_offsets(items: &[String]) -> Result<Vec<PartitionOffset>, ReplayError> {
    items
        .iter()
        .map(|item| {
            let mut parts = item.rsplitn(3, ':');
            let (Some(offset), Some(partition), Some(topic)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ReplayError::Usage(format!(
                    "--offsets {item:?}: write topic:partition:offset, e.g. signals.job-loss:0:1200"
                )));
            };
            let number = |what: &str, text: &str| {
                text.parse::<i64>().map_err(|_| {
                    ReplayError::Usage(format!(
                        "--offsets {item:?}: the {what} {text:?} is not a number"
                    ))
                })
            };
            Ok(PartitionOffset {
                topic: topic.to_string(),
                partition: number("partition", partition)? as i32,
                next_offset: number("offset", offset)?,
            })
        })
        .collect()
}

impl ReplaySummary {
    /// The summary as a person reads it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        if let Some((from, to)) = &self.span {
            line(format!("sagak replay: {} to {}", &from[..10], &to[..10]));
        }
        let total: usize = self.messages_in.values().sum();
        line(format!("lines in              {total}"));
        for (feed, n) in &self.messages_in {
            line(format!("  {feed:<20}{n}"));
        }
        line(format!("accepted              {}", self.accepted));
        line(format!("duplicates (counted once) {}", self.duplicates));
        let rejected: usize = self.rejected.values().sum();
        line(format!(
            "rejected              {rejected} (dead-letters.ndjson names file and line)"
        ));
        for (class, n) in &self.rejected {
            line(format!("  {class:<30}{n:>7}"));
        }
        let alerts: usize = self.alerts_by_priority.values().sum();
        line(format!("alerts                {alerts}"));
        for (p, n) in &self.alerts_by_priority {
            line(format!("  {p:<20}{n}"));
        }
        if self.outcomes > 0 || !self.escalations.is_empty() {
            line(format!(
                "outcomes              {}; case updates {}",
                self.outcomes, self.case_updates
            ));
            for (r, n) in &self.escalations {
                line(format!("  escalated {r:<20}{n}"));
            }
        }
        match &self.last_list {
            Some((date, n)) => line(format!(
                "daily lists           {} days written; {n} households on the lists of {date}",
                self.list_days
            )),
            None => line("daily lists           none".into()),
        }
        if self.snapshots > 0 {
            line(format!(
                "backfill              {} snapshots written (no alerts published; offices see these households on their first list)",
                self.snapshots
            ));
        }
        line(format!(
            "took {:.1} s; outputs: {}/ (alerts.ndjson, escalations.ndjson, dead-letters.ndjson, lists/, summary.json)",
            self.seconds, self.out_dir
        ));
        s
    }
}
