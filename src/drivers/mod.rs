//! The loops that feed the engine, and the core they share.
//!
//! A driver owns where messages come from and go to: [`kafka`] (`sagak
//! run`) reads the signal and outcome topics and commits offsets behind
//! snapshots; [`demo`] (`sagak demo`) runs a generated city in simulated
//! time; [`replay`] (`sagak replay`, and backfills) reads history from
//! files; [`compare`] runs two replays and reports their differences. Each
//! hands its messages to one [`DriverCore`], which does the rest the same
//! way for all: batching, running the engine, delivering a batch's results
//! through [`Outputs`], the live view, and the daily lists at each cut-off
//! of the driver's [`Clock`]. Another driver is a source, an [`Outputs`]
//! and a loop that calls the core.

pub mod backtest;
pub mod compare;
pub mod demo;
pub mod kafka;
pub mod replay;

use std::collections::HashSet;

use crate::base::clock::Clock;
use crate::base::message::InputMessage;
use crate::base::time::ClockTime;
use crate::definition::{PipelineSpec, DAY_MS};
use crate::engine::{Engine, Outputs};
use crate::lists::{DailyLists, ListError, Manifest};
use crate::metrics::Recorder;
use crate::ops::work::WorkSink;
use crate::ops::OpsState;
use crate::stages::score::ScoreError;
use crate::store::SharedStore;

/// What the batches of a run without a broker add up to, as the demo's
/// and a replay's summaries print them.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Rejected, per reason class.
    pub(crate) rejected: std::collections::BTreeMap<String, usize>,
    /// Alerts per priority (case updates apart).
    pub(crate) alerts_by_priority: std::collections::BTreeMap<String, usize>,
    /// Alerts per dong.
    pub(crate) alerts_by_dong: std::collections::BTreeMap<String, usize>,
    /// Case updates.
    pub(crate) case_updates: usize,
    /// Escalations per reason.
    pub(crate) escalations: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    /// Counts one batch's results.
    pub(crate) fn count(&mut self, result: &crate::engine::BatchResult) {
        for (_, r) in &result.rejects {
            *self
                .rejected
                .entry(r.class.as_str().to_string())
                .or_default() += 1;
        }
        for a in &result.alerts {
            if a.case.kind == crate::stages::alert::AlertType::CaseUpdate {
                self.case_updates += 1;
                continue;
            }
            *self
                .alerts_by_priority
                .entry(a.priority.as_str().to_string())
                .or_default() += 1;
            *self.alerts_by_dong.entry(a.dong_code.clone()).or_default() += 1;
        }
        for e in &result.escalations {
            *self
                .escalations
                .entry(e.reason.as_str().to_string())
                .or_default() += 1;
        }
    }
}

/// Why a driver's core stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError<E: std::error::Error + 'static> {
    /// The scoring SQL failed.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// The daily lists failed (only under [`OnListFailure::Stop`]).
    #[error(transparent)]
    Lists(ListError),
    /// The outputs could not take a batch's results.
    #[error(transparent)]
    Outputs(E),
}

/// What the core does when the daily lists of a cut-off fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnListFailure {
    /// Count it, log what to do, and go on alerting (`sagak run`: a failed
    /// list must not stop the alerts; `sagak lists --date` can redo it).
    LogAndContinue,
    /// Stop the driver with the error (the demo, which exists to show them).
    Stop,
}

/// The partitions of the instances that share the work, for lists made of
/// parts (see [`crate::lists::DailyLists::write_parts`]).
pub(crate) struct SharedLists {
    /// Partitions of the input topics.
    pub(crate) partitions: usize,
    /// The partitions this instance owns now, each with the epoch of its
    /// claim (see [`crate::checkpoint`]; 0 without one): a part of an
    /// earlier owner loses to this one's.
    pub(crate) owned: Box<dyn Fn() -> Vec<(i32, u64)> + Send + Sync>,
}

/// The store of the daily lists in `out_dir` (`lists.out_dir`, or a
/// demo's or replay's output folder).
pub fn lists_store(out_dir: &std::path::Path) -> Result<SharedStore, ListError> {
    Ok(crate::store::open(out_dir)?)
}

/// The daily lists a core writes, and when the next ones are due.
pub(crate) struct ListSchedule {
    lists: DailyLists,
    /// The lists' store (`lists.out_dir`).
    out: SharedStore,
    next_cutoff: ClockTime,
    /// Households on the last list written, once one was (before that,
    /// read back from the previous day's files).
    previous: Option<HashSet<String>>,
    on_failure: OnListFailure,
    /// Set when several instances may share the partitions.
    shared: Option<SharedLists>,
    /// A day whose parts were written but not all found yet.
    pending: Option<chrono::NaiveDate>,
    /// Log each day at debug level instead of info (a demo writes 180).
    quiet: bool,
    /// Only these days' lists are written (a replay's `--dates`).
    only: Option<Vec<chrono::NaiveDate>>,
}

impl ListSchedule {
    /// Lists into `out`, the first at the first cut-off after
    /// `start_ms`.
    pub(crate) fn new(
        lists: DailyLists,
        out: SharedStore,
        start: ClockTime,
        on_failure: OnListFailure,
    ) -> Self {
        let next_cutoff = lists.cutoff(lists.list_day_at(start)).plus(DAY_MS);
        ListSchedule {
            lists,
            out,
            next_cutoff,
            previous: None,
            on_failure,
            shared: None,
            pending: None,
            quiet: false,
            only: None,
        }
    }

    /// Writes only the lists of `dates`; the other cut-offs pass.
    pub(crate) fn only(mut self, dates: Vec<chrono::NaiveDate>) -> Self {
        self.only = Some(dates);
        self
    }

    /// Logs each day's lists at debug level, not info.
    pub(crate) fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Lists made of one part per partition, so that instances sharing the
    /// partitions write one complete list per dong: each writes the parts
    /// of the partitions it owns, and whichever finds every part in
    /// assembles the day.
    pub(crate) fn shared(mut self, shared: SharedLists) -> Self {
        self.shared = Some(shared);
        self
    }
}

/// Counts of a driver's run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreCounts {
    /// Messages taken in.
    pub(crate) messages: u64,
    /// Alerts delivered.
    pub(crate) alerts: u64,
    /// Messages delivered as dead letters.
    pub(crate) rejected: u64,
    /// Signals stored in the window state.
    pub(crate) accepted: u64,
    /// Re-sent events counted once.
    pub(crate) duplicates: u64,
    /// Days of lists written.
    pub(crate) list_days: u64,
    /// Escalations delivered to the city team.
    pub(crate) escalations: u64,
    /// Outcomes recorded.
    pub(crate) outcomes: u64,
}

/// What every driver shares: the engine, the batch being filled, the
/// clock, the live view and the daily lists.
pub struct DriverCore<'o, C: Clock> {
    engine: Engine,
    /// Where what the engine reports becomes metrics.
    recorder: Recorder,
    clock: C,
    ops: &'o OpsState,
    buffer: Vec<InputMessage>,
    max_batch: usize,
    lists: Option<ListSchedule>,
    /// Evict after each cut-off's lists (drivers without checkpoints,
    /// which is where `sagak run` evicts).
    evict_at_cutoff: bool,
    counts: CoreCounts,
    last_list: Option<Manifest>,
    /// When the open-alert gauges were last set.
    cases_observed: Option<std::time::Instant>,
    /// When the work board was last rebuilt from every case record.
    work_rebuilt: Option<std::time::Instant>,
    outcome_feed: u16,
    /// Where the board's changes are published for every instance, with
    /// this instance's own board (the pages then read the shared one).
    shared_work: Option<(crate::ops::work::WorkBoard, Box<dyn WorkSink>)>,
}

/// How often the web front's work board is rebuilt from every case record
/// (between rebuilds, each batch updates the households it touched).
const REBUILD_WORK: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the gauges of open and overdue alerts are recomputed (a pass
/// over the case records), in wall-clock time: a replay's simulated clock
/// moves hours at a step.
const OBSERVE_CASES: std::time::Duration = std::time::Duration::from_secs(10);

impl<'o, C: Clock> DriverCore<'o, C> {
    /// A core around `engine` on `clock`, reporting to `ops`, cutting
    /// batches at `max_batch` messages.
    pub fn new(engine: Engine, clock: C, ops: &'o OpsState, max_batch: usize) -> Self {
        let outcome_feed = engine.outcome_feed();
        DriverCore {
            recorder: Recorder::new(ops.metrics.clone(), engine.feed_names()),
            engine,
            clock,
            ops,
            buffer: Vec::with_capacity(max_batch.min(1 << 16)),
            max_batch: max_batch.max(1),
            lists: None,
            evict_at_cutoff: false,
            counts: CoreCounts::default(),
            last_list: None,
            cases_observed: None,
            work_rebuilt: None,
            outcome_feed,
            shared_work: None,
        }
    }

    /// Keeps this instance's work board for itself and hands its changes
    /// to `sink`, which shares them with every instance (the pages' board
    /// is then fed by what they all publish).
    pub(crate) fn publishing_work(mut self, spec: &PipelineSpec, sink: Box<dyn WorkSink>) -> Self {
        let own = crate::ops::work::WorkBoard::new(spec);
        own.enable();
        self.shared_work = Some((own, sink));
        self
    }

    /// Whether this driver keeps a work board (a web front reads it, or it
    /// publishes it for every instance's).
    pub(crate) fn keeps_work(&self) -> bool {
        self.board().enabled()
    }

    /// The board this driver keeps: its own when it publishes, else the
    /// pages'.
    fn board(&self) -> &crate::ops::work::WorkBoard {
        match &self.shared_work {
            Some((own, _)) => own,
            None => &self.ops.work,
        }
    }

    /// Updates the work board with what a batch touched.
    fn update_work(&mut self, result: &crate::engine::BatchResult, batch: &[InputMessage]) {
        let touched = self.update_board(result, batch);
        if let Some((own, sink)) = &mut self.shared_work {
            if !touched.is_empty() {
                sink.touched(own.entries_of(touched.iter().map(String::as_str)));
            }
        }
    }

    /// Updates the board this driver keeps; the households touched.
    fn update_board(
        &self,
        result: &crate::engine::BatchResult,
        batch: &[InputMessage],
    ) -> Vec<String> {
        let work = self.board();
        if !work.enabled() {
            return Vec::new();
        }
        let now = self.clock.now();
        work.set_now(now.ms());
        work.note_alerts(&result.alerts);
        work.note_outcomes(&result.recorded);
        let mut touched: std::collections::HashSet<&str> = result
            .alerts
            .iter()
            .map(|a| a.household_id.as_str())
            .chain(result.escalations.iter().map(|e| e.household_id.as_str()))
            .collect();
        for m in batch.iter().filter(|m| m.feed == Some(self.outcome_feed)) {
            if let Some(key) = m.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) {
                touched.insert(key);
            }
        }
        let touched: Vec<String> = touched.into_iter().map(str::to_string).collect();
        work.update(
            touched
                .iter()
                .map(|h| (h.clone(), self.engine.case_payload(h)))
                .collect(),
        );
        touched
    }

    /// Evicts the state the watermark has passed, in every stage.
    pub(crate) fn evict(&mut self) -> [usize; crate::stages::StatePart::ALL.len()] {
        let evicted = self.engine.on_watermark();
        self.recorder.households(self.engine.households());
        evicted
    }

    /// Records the households held after a driver changed the engine's
    /// state (a hand-over, a restore).
    pub(crate) fn record_households(&self) {
        self.recorder.households(self.engine.households());
    }

    /// Writes the daily lists on `schedule`.
    pub(crate) fn with_lists(mut self, schedule: ListSchedule) -> Self {
        self.engine.hold_for_cutoff(Some(schedule.next_cutoff));
        self.lists = Some(schedule);
        self
    }

    /// Evicts expired state after each cut-off's lists.
    pub(crate) fn evicting_at_cutoffs(mut self) -> Self {
        self.evict_at_cutoff = true;
        self
    }

    /// The engine, to read its state.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, for what only a driver does (checkpoints, hand-overs).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Counts so far.
    pub(crate) fn counts(&self) -> CoreCounts {
        self.counts
    }

    /// The manifest of the last lists written.
    pub(crate) fn last_list(&self) -> Option<&Manifest> {
        self.last_list.as_ref()
    }

    /// Adds a message to the batch being filled; true once it is full.
    pub fn push(&mut self, m: InputMessage) -> bool {
        self.buffer.push(m);
        self.counts.messages += 1;
        self.buffer.len() >= self.max_batch
    }

    /// Messages waiting in the batch.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Drops the batch being filled (a rebalance: the consumer fetches it
    /// again from where the state ends).
    pub(crate) fn discard_buffer(&mut self) {
        self.buffer.clear();
    }

    /// Runs the batch being filled through the engine at the clock's time
    /// and hands its results to `out`; done once `out` has taken them.
    /// Returns how many messages the batch held.
    pub async fn flush<O: Outputs>(&mut self, out: &mut O) -> Result<usize, DriverError<O::Error>> {
        if self.buffer.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let result = self.engine.process_batch(&self.buffer, now).await?;
        self.recorder.batch(&result, now, self.engine.watermark());
        self.recorder.households(self.engine.households());
        out.deliver(&result, &self.buffer)
            .await
            .map_err(DriverError::Outputs)?;
        if !result.alerts.is_empty() {
            self.ops.live.record(&result.alerts);
        }
        self.ops.live.record_follow_up(&result);
        self.ops.rule_yield.batch(&result);
        let batch = std::mem::take(&mut self.buffer);
        self.update_work(&result, &batch);
        self.buffer = batch;
        self.counts.alerts += result.alerts.len() as u64;
        self.counts.rejected += result.rejects.len() as u64;
        self.counts.accepted += result.accepted as u64;
        self.counts.duplicates += result.duplicates as u64;
        self.counts.escalations += result.escalations.len() as u64;
        self.counts.outcomes += result.outcomes as u64;
        let n = self.buffer.len();
        tracing::debug!(
            messages = n,
            alerts = result.alerts.len(),
            rejected = result.rejects.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        self.buffer.clear();
        Ok(n)
    }

    /// Writes every day's lists from now on, whatever
    /// [`ListSchedule::only`] said (a replay's final list).
    pub(crate) fn list_every_day(&mut self) {
        if let Some(schedule) = self.lists.as_mut() {
            schedule.only = None;
        }
    }

    /// When the next daily lists are due, on the core's clock.
    pub(crate) fn next_cutoff(&self) -> Option<ClockTime> {
        self.lists.as_ref().map(|l| l.next_cutoff)
    }

    /// The timer: the driver calls it at least once a second when no input
    /// arrives, and whenever its clock moves. Lists whose cut-off the clock
    /// has reached are made, after the batch in flight is flushed so that
    /// they include it. Returns how many days of lists it made.
    pub async fn tick<O: Outputs>(&mut self, out: &mut O) -> Result<usize, DriverError<O::Error>> {
        let now = self.clock.now();
        let mut made = 0;
        // a shared day whose last part another instance wrote after this one
        // looked: the parts are all in now, or soon
        if let Some(schedule) = self.lists.as_mut() {
            if schedule.pending.is_some() {
                match Self::assemble_pending(schedule).await {
                    Ok(Some((manifest, _))) => self.listed(manifest),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "assembling the shared daily lists failed; run `sagak lists --date` to retry")
                    }
                }
            }
        }
        while self.next_cutoff().is_some_and(|c| c <= now) {
            self.flush(out).await?;
            self.lists_at_next_cutoff().await?;
            made += 1;
        }
        self.escalate(out).await?;
        if self
            .cases_observed
            .is_none_or(|at| at.elapsed() >= OBSERVE_CASES)
        {
            let counts = self.engine.open_counts(now);
            self.recorder.open_cases(&counts);
            self.recorder.rule_yield(&self.ops.rule_yield.table());
            // the city page counts every instance's households when the
            // board holds them all; the metrics, this instance's own
            match &self.shared_work {
                Some(_) => self
                    .ops
                    .live
                    .set_cases(&self.ops.work.open_counts(now.ms())),
                None => self.ops.live.set_cases(&counts),
            }
            self.cases_observed = Some(std::time::Instant::now());
        }
        // the queue reads its due times at the pipeline's clock, moving or not
        self.ops.work.set_now(now.ms());
        self.ops.rule_yield.advance(now.ms());
        self.board().set_now(now.ms());
        if self.board().enabled()
            && self
                .work_rebuilt
                .is_none_or(|at| at.elapsed() >= REBUILD_WORK)
        {
            self.rebuild_work();
        }
        Ok(made)
    }

    /// Rebuilds the work board from every case record (after a restore or
    /// a hand-over, and now and then: retention and time move households
    /// on and off it).
    pub fn rebuild_work(&mut self) {
        let now = self.clock.now();
        self.board().set_now(now.ms());
        // every household on the latest list opens on the web, whatever
        // its state
        let listed = self.lists.as_ref().and_then(|s| s.previous.as_ref());
        let also = |h: &str| listed.is_some_and(|l| l.contains(h));
        self.board().replace(
            self.engine
                .work_payloads(now, crate::ops::work::RECENT_MS, &also),
        );
        if let Some((own, sink)) = &mut self.shared_work {
            sink.whole(own.entries());
        }
        self.work_rebuilt = Some(std::time::Instant::now());
    }

    /// Delivers the `overdue` escalations the clock has reached (each
    /// once; the state remembers it was sent). Returns how many.
    pub(crate) async fn escalate<O: Outputs>(
        &mut self,
        out: &mut O,
    ) -> Result<usize, DriverError<O::Error>> {
        let escalations = self.engine.overdue(self.clock.now());
        if escalations.is_empty() {
            return Ok(0);
        }
        let n = escalations.len();
        self.recorder.escalations(&escalations);
        let result = crate::engine::BatchResult {
            escalations,
            ..Default::default()
        };
        out.deliver(&result, &[])
            .await
            .map_err(DriverError::Outputs)?;
        self.ops.live.record_follow_up(&result);
        self.update_work(&result, &[]);
        self.counts.escalations += n as u64;
        if self.lists.as_ref().is_some_and(|l| l.quiet) {
            tracing::debug!(escalations = n, "overdue alerts escalated to the city team");
        } else {
            tracing::info!(escalations = n, "overdue alerts escalated to the city team");
        }
        Ok(n)
    }

    /// Counts a day of lists written (by this instance or, for shared
    /// lists, another) where the metrics and the summary show it.
    fn listed(&mut self, manifest: Manifest) {
        let metrics = &self.ops.metrics;
        metrics.lists.households.set(manifest.households as i64);
        metrics
            .lists
            .written_at
            .set(crate::base::clock::wall_clock_ms() / 1000);
        self.counts.list_days += 1;
        if let Some(schedule) = &self.lists {
            let rows = self.ops.rule_yield.table();
            crate::ops::rule_yield::write_day(&*schedule.out, &manifest.date, &rows);
            self.recorder.rule_yield(&rows);
        }
        self.last_list = Some(manifest);
    }

    /// Assembles the pending day of shared lists if every part is in.
    async fn assemble_pending(
        schedule: &mut ListSchedule,
    ) -> Result<Option<(Manifest, HashSet<String>)>, ListError> {
        let (Some(day), Some(shared)) = (schedule.pending, &schedule.shared) else {
            return Ok(None);
        };
        let now = crate::base::clock::wall_clock_ms();
        let made = schedule
            .lists
            .assemble(&*schedule.out, day, shared.partitions, now)
            .await?;
        if made.is_some() {
            schedule.pending = None;
            schedule.lists.prune_parts(&*schedule.out, day);
        }
        Ok(made)
    }

    /// Makes the lists of the next cut-off now, whatever the clock says
    /// (the demo's last day), and moves the schedule on by a day. Returns
    /// that cut-off.
    pub(crate) async fn lists_at_next_cutoff<E: std::error::Error + 'static>(
        &mut self,
    ) -> Result<Option<ClockTime>, DriverError<E>> {
        let Some(schedule) = self.lists.as_mut() else {
            return Ok(None);
        };
        let cutoff = schedule.next_cutoff;
        schedule.next_cutoff = cutoff.plus(DAY_MS);
        // what the day after counts stays; what only this day counted may go
        // once its list is made
        let held_next = schedule.next_cutoff;
        let metrics = &self.ops.metrics;
        let started = std::time::Instant::now();
        let lists = &schedule.lists;
        let day = lists.list_day_at(cutoff);
        if schedule
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&day))
        {
            self.engine.hold_for_cutoff(Some(held_next));
            if self.evict_at_cutoff {
                self.evict();
            }
            return Ok(None);
        }
        // the previous day's households: kept from the last list, or read
        // back from its files (always, when instances share the partitions:
        // the last list may be another instance's)
        let previous = match (schedule.previous.take(), &schedule.shared) {
            (Some(p), None) => p,
            _ => lists.households_on(&*schedule.out, day - chrono::Duration::days(1)),
        };
        let made = match &schedule.shared {
            Some(shared) => {
                let owned = (shared.owned)();
                let parts = lists
                    .write_parts(&mut self.engine, &*schedule.out, cutoff, &owned, &previous)
                    .await;
                schedule.pending = Some(day);
                match parts {
                    Ok(()) => Self::assemble_pending(schedule).await,
                    Err(e) => Err(e),
                }
            }
            None => lists
                .make_day(&mut self.engine, &*schedule.out, cutoff, &previous)
                .await
                .map(Some),
        };
        metrics
            .lists
            .seconds
            .observe(started.elapsed().as_secs_f64());
        let result = match made {
            // parts written; another instance's part is still to come
            Ok(None) => Ok(()),
            Ok(Some((manifest, on_list))) => {
                if schedule.quiet {
                    tracing::debug!(date = %manifest.date, households = manifest.households, "daily lists written");
                } else {
                    tracing::info!(
                        date = %manifest.date,
                        households = manifest.households,
                        dir = %manifest.dir.display(),
                        seconds = started.elapsed().as_secs_f64(),
                        "daily lists written"
                    );
                }
                schedule.previous = Some(on_list);
                self.listed(manifest);
                if self.keeps_work() {
                    self.rebuild_work();
                }
                Ok(())
            }
            Err(e) => {
                metrics.lists.failures.inc();
                match schedule.on_failure {
                    OnListFailure::Stop => Err(DriverError::Lists(e)),
                    OnListFailure::LogAndContinue => {
                        tracing::error!(error = %e, "daily lists failed; run `sagak lists --date` to retry");
                        Ok(())
                    }
                }
            }
        };
        self.engine.hold_for_cutoff(Some(held_next));
        if self.evict_at_cutoff {
            self.evict();
        }
        result.map(|()| Some(cutoff))
    }
}

#[cfg(test)]
mod tests;
