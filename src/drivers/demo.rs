//! `sagak demo`: the whole pipeline on a synthetic Dongducheon, with no
//! broker. The embedded source ([`crate::embedded::source`]) replays the
//! generator's messages in simulated time through the same engine and
//! driver core as the Kafka mode; the embedded sink writes alerts and dead
//! letters as NDJSON; the daily lists are written at every simulated
//! cut-off. At the end a summary says what happened and how many of the
//! planted crises were found, how fast.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use super::{DriverCore, DriverError, ListSchedule, OnListFailure};
use crate::base::clock::{Clock, SimulatedClock};
use crate::base::message::InputMessage;
use crate::base::time::{ClockTime, EventTime};
use crate::definition::{PipelineSpec, DAY_MS};
use crate::embedded::offices::{suwon_signals, SimulatedOffices, SUWON_HOUSEHOLD};
use crate::embedded::sink::{NdjsonSink, SinkError};
use crate::embedded::source::GeneratedSource;
use crate::embedded::TimedSource;
use crate::engine::{BatchResult, Engine, Outputs};
use crate::generate::{generate, GeneratorConfig};
use crate::lists::DailyLists;
use crate::ops::OpsState;
use crate::stages::alert::Alert;
use crate::stages::score::Priority;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Scoring failed.
    #[error(transparent)]
    Score(#[from] crate::stages::score::ScoreError),
    /// Lists failed.
    #[error(transparent)]
    Lists(#[from] crate::lists::ListError),
    /// Writing the alerts or dead letters failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Writing outputs failed.
    #[error("cannot write demo output under {dir}: {error}")]
    Io {
        /// Output directory.
        dir: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

impl From<DriverError<SinkError>> for DemoError {
    fn from(e: DriverError<SinkError>) -> Self {
        match e {
            DriverError::Score(e) => DemoError::Score(e),
            DriverError::Lists(e) => DemoError::Lists(e),
            DriverError::Outputs(e) => DemoError::Sink(e),
        }
    }
}

/// Settings of a demo run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// What to generate.
    pub generator: GeneratorConfig,
    /// Where outputs go.
    pub out_dir: PathBuf,
    /// Simulated minutes per micro-batch.
    pub batch_minutes: i64,
    /// Simulate the offices (their outcomes, and the household planted like
    /// the Suwon case); without them the demo is a replay of the generator.
    pub offices: bool,
}

/// How the planted crises fared.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Detection {
    /// Households the generator pushed into crisis.
    pub planted: usize,
    /// Of which alerted at all.
    pub found: usize,
    /// Highest priority reached by the found ones.
    pub by_priority: BTreeMap<String, usize>,
    /// Median days from the first crisis signal to the first alert.
    pub(crate) median_days_to_first_alert: Option<f64>,
    /// Median days from the first crisis signal to the P1 alert.
    pub median_days_to_p1: Option<f64>,
    /// 90th percentile of days to the first alert.
    pub(crate) p90_days_to_first_alert: Option<f64>,
}

/// The loop closed: how fast the simulated offices answered, and what
/// went to the city team.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FollowUp {
    /// Outcomes recorded, per kind.
    pub outcomes: BTreeMap<String, usize>,
    /// Days from alert to its first reach (someone of the household
    /// reached; failed attempts do not count) per priority: (median, p90).
    pub days_to_first_contact: BTreeMap<String, (Option<f64>, Option<f64>)>,
    /// Alerts sent that no reach answered by the end.
    pub(crate) never_contacted: usize,
    /// Households with a failed attempt and nobody reached 30 days after
    /// it (of those whose first failed attempt was 30 days or more before
    /// the end).
    pub(crate) failed_unreached_after_30_days: usize,
    /// The planted household's rank on its dong's queue on the day of its
    /// `unreachable` escalation (the simulated day, the rank).
    pub(crate) planted_rank_when_unreachable: Option<(u32, usize)>,
    /// Its rank on its dong's queue on the last day, of how many open.
    pub(crate) planted_rank_last_day: Option<(usize, usize)>,
    /// Its rank on its dong's last daily list, of how many rows.
    pub(crate) planted_list_rank_last_day: Option<(usize, usize)>,
    /// Escalations to the city team, per reason.
    pub escalations: BTreeMap<String, usize>,
    /// Households whose alert said their case had been closed before.
    pub(crate) reopened_households: usize,
    /// Case updates sent to offices for households in case management.
    pub(crate) case_updates: usize,
    /// The simulated day on which the household planted like the Suwon
    /// family reached the city team, and why.
    pub planted_household_escalated: Option<(u32, String)>,
    /// Alerts sent for it.
    pub(crate) planted_household_alerts: usize,
    /// The yield of the rules per priority, for the alerts whose answer
    /// window closed: (priority, alerts, helped, helped share and its 95%
    /// interval when there are 20 alerts or more).
    pub(crate) rule_yield: Vec<YieldLine>,
    /// `sagak explain` of the planted household at the end of the run.
    pub(crate) planted_explained: String,
    /// The case meetings: how many were held, and what they decided.
    pub(crate) meetings: Meetings,
}

/// What the dongs' case meetings (every two weeks) came to.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct Meetings {
    /// Meetings held (dongs times meeting days).
    pub(crate) held: usize,
    /// Cases opened, plans recorded, reviews, cases closed (all offices'
    /// outcomes of those kinds, at meetings or not).
    pub(crate) opened: usize,
    pub(crate) planned: usize,
    pub(crate) reviewed: usize,
    pub(crate) closed: usize,
    /// Goals found met at reviews.
    pub(crate) goals_met: usize,
    /// Cases reopened within a year of closing.
    pub(crate) reopened_within_a_year: usize,
    /// The planted household's dong's agenda at the end, as text (its CSV
    /// is `agenda-<dong>-<date>.csv` beside the summary), and the counts of
    /// its parts: candidates, to review, ready to close.
    pub(crate) agenda: String,
    pub(crate) agenda_file: String,
    pub(crate) agenda_counts: [usize; 3],
}

/// One priority's yield in the demo's summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct YieldLine {
    /// The priority.
    pub(crate) priority: String,
    /// Alerts whose answer window closed.
    pub(crate) alerts: u64,
    /// Of which helped (support linked or a case opened).
    pub(crate) helped: u64,
    /// The helped share and its 95% interval, from 20 alerts on.
    pub(crate) share: Option<(f64, f64, f64)>,
}

/// What a demo run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DemoSummary {
    /// Households simulated.
    pub(crate) households: usize,
    /// Days simulated.
    pub(crate) days: u32,
    /// Messages in, per feed.
    pub signals_in: BTreeMap<String, usize>,
    /// Signals stored.
    pub accepted: usize,
    /// Re-sent events counted once.
    pub duplicates: usize,
    /// Rejected, per reason class.
    pub rejected: BTreeMap<String, usize>,
    /// Rejects the generator planted, per class (the regression check).
    pub rejects_planted: BTreeMap<String, usize>,
    /// Alerts per priority.
    pub alerts_by_priority: BTreeMap<String, usize>,
    /// Alerts per dong code.
    pub(crate) alerts_by_dong: BTreeMap<String, usize>,
    /// Days of lists written.
    pub list_days: usize,
    /// Households on the last day's lists.
    pub(crate) last_list_households: usize,
    /// Date of the last day's lists.
    pub last_list_date: String,
    /// Planted crises found.
    pub detection: Detection,
    /// What the simulated offices did, and what reached the city team.
    pub follow_up: FollowUp,
    /// Output directory.
    pub(crate) out_dir: String,
}

fn median_and_p90(mut v: Vec<f64>) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (Some(at(0.5)), Some(at(0.9)))
}

/// The demo's outputs: the NDJSON sink, and the tallies its summary is
/// made of.
struct DemoOutputs {
    sink: NdjsonSink,
    tally: super::Tally,
    first_alert: HashMap<String, (i64, Priority)>,
    best: HashMap<String, Priority>,
    p1_at: HashMap<String, i64>,
    offices: SimulatedOffices,
    simulate_offices: bool,
    reopened: std::collections::HashSet<String>,
    planted_escalated: Option<(i64, String)>,
    planted_alerts: usize,
    /// When the planted household's `unreachable` escalation went (ms; 0:
    /// not yet), read by the step that ranks it on its dong's queue.
    planted_unreachable: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl DemoOutputs {
    /// The outputs of a demo of `cfg` over `generated`, its offices told
    /// what was planted.
    fn new(
        spec: &PipelineSpec,
        cfg: &DemoConfig,
        generated: &crate::generate::Generated,
    ) -> Result<Self, DemoError> {
        Ok(DemoOutputs {
            sink: NdjsonSink::create(&cfg.out_dir)?,
            tally: super::Tally::default(),
            first_alert: HashMap::new(),
            best: HashMap::new(),
            p1_at: HashMap::new(),
            offices: SimulatedOffices::new(spec, cfg.generator.seed)
                .knowing(generated.planted.iter().map(|p| p.household_id.clone())),
            simulate_offices: cfg.offices,
            reopened: Default::default(),
            planted_escalated: None,
            planted_alerts: 0,
            planted_unreachable: Default::default(),
        })
    }

    fn record_alert(&mut self, a: &Alert) {
        // emitted_at is the simulated time of the batch
        self.first_alert
            .entry(a.household_id.clone())
            .or_insert((a.emitted_at, a.priority));
        self.record_priority(a);
    }

    /// The highest priority the office was told of, by an alert or, for a
    /// household in case management, a case update.
    fn record_priority(&mut self, a: &Alert) {
        let top = self
            .best
            .entry(a.household_id.clone())
            .or_insert(a.priority);
        *top = (*top).max(a.priority);
        if a.priority == Priority::P1 {
            self.p1_at
                .entry(a.household_id.clone())
                .or_insert(a.emitted_at);
        }
    }
}

impl Outputs for DemoOutputs {
    type Error = SinkError;

    async fn deliver(
        &mut self,
        result: &BatchResult,
        batch: &[InputMessage],
    ) -> Result<(), SinkError> {
        self.tally.count(result);
        for a in &result.alerts {
            if a.case.kind == crate::stages::alert::AlertType::CaseUpdate {
                self.record_priority(a);
                continue;
            }
            self.record_alert(a);
            if a.case.reopened {
                self.reopened.insert(a.household_id.clone());
            }
            if a.household_id == SUWON_HOUSEHOLD {
                self.planted_alerts += 1;
            }
        }
        for e in &result.escalations {
            if e.household_id == SUWON_HOUSEHOLD && self.planted_escalated.is_none() {
                self.planted_escalated = Some((e.emitted_at, e.reason.as_str().to_string()));
            }
            if e.household_id == SUWON_HOUSEHOLD
                && e.reason == crate::stages::case::escalation::EscalationReason::Unreachable
            {
                let _ = self.planted_unreachable.compare_exchange(
                    0,
                    e.emitted_at,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        if self.simulate_offices {
            self.offices.on_alerts(&result.alerts);
        }
        self.sink.deliver(result, batch).await
    }
}

/// The demo after its simulation, for `demo --serve`: the clock goes on
/// at wall speed from where the simulation ended, and the outcomes the
/// offices record on the pages go into the engine.
pub struct DemoLive {
    /// Outcomes from the web front.
    pub outcomes: tokio::sync::mpsc::Receiver<InputMessage>,
    /// Called with the simulation's summary, before the demo goes on.
    pub on_summary: Box<dyn FnOnce(&DemoSummary) + Send>,
    /// Resolves when the demo should stop (Ctrl-C).
    pub until: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// Runs the demo and writes its outputs under `cfg.out_dir`.
pub async fn run_demo(
    spec: &PipelineSpec,
    cfg: &DemoConfig,
    ops: &OpsState,
) -> Result<DemoSummary, DemoError> {
    run_demo_live(spec, cfg, ops, None).await
}

/// [`run_demo`], going on after the simulation while `live` says so.
pub async fn run_demo_live(
    spec: &PipelineSpec,
    cfg: &DemoConfig,
    ops: &OpsState,
    live: Option<DemoLive>,
) -> Result<DemoSummary, DemoError> {
    fs::create_dir_all(&cfg.out_dir).map_err(|error| DemoError::Io {
        dir: cfg.out_dir.clone(),
        error,
    })?;
    let generated = generated_city(cfg);
    let engine = Engine::new(spec);
    engine.start().await?;
    if cfg.offices {
        // the offices' case meetings read the board, as a dong's page would
        ops.work.enable();
    }
    let lists = DailyLists::new(spec)?;
    let mut out = DemoOutputs::new(spec, cfg, &generated)?;
    let planted_unreachable = std::sync::Arc::clone(&out.planted_unreachable);
    let mut planted_rank: Option<(u32, usize)> = None;
    let mut summary = DemoSummary {
        households: cfg.generator.households,
        days: cfg.generator.days,
        out_dir: cfg.out_dir.display().to_string(),
        ..DemoSummary::default()
    };

    let mut source = GeneratedSource::new(spec, &generated.messages);
    let Some(first) = source.next_arrival() else {
        out.sink.flush()?;
        return Ok(summary);
    };
    let clock = SimulatedClock::at(first);
    let schedule = ListSchedule::new(
        lists,
        super::lists_store(&cfg.out_dir)?,
        first,
        OnListFailure::Stop,
    )
    .quiet();
    // batches are cut by simulated time, never by count
    let mut core = DriverCore::new(engine, clock.clone(), ops, usize::MAX)
        .with_lists(schedule)
        .evicting_at_cutoffs();
    let step = cfg.batch_minutes.max(1) * 60_000;
    let progress = progress_bar(cfg.generator.days);
    super::replay::drive(
        &mut core,
        &clock,
        &mut source,
        &mut out,
        step,
        // what the offices recorded meanwhile
        |out, until| {
            hold_meetings(spec, ops, out, until);
            let mut recorded = Vec::new();
            while let Some(o) = out.offices.next_before(until) {
                recorded.push(o);
            }
            recorded
        },
        |core, now| {
            let unreachable_at = planted_unreachable.load(std::sync::atomic::Ordering::Relaxed);
            if unreachable_at != 0 && planted_rank.is_none() {
                let day = (now.since(first) / DAY_MS) as u32;
                planted_rank = planted_queue_rank(core.engine(), now).map(|(r, _)| (day, r));
            }
            let counts = core.counts();
            progress.set_position((now.since(first) / DAY_MS) as u64);
            progress.set_message(format!(
                "{} signals, {} alerts",
                counts.messages, counts.alerts
            ));
        },
    )
    .await?;
    progress.finish_and_clear();
    // the summary, and the pages of `--serve`, start at the last list's
    // cut-off: the queue and the day's list are read at the same instant
    if let Some(cutoff) = core.lists_at_next_cutoff::<SinkError>().await? {
        if cutoff > clock.now() {
            clock.set(cutoff);
        }
    }
    out.sink.flush()?;

    fill_counts(&mut summary, &core, &mut source, &mut out);
    summary.detection = detection(&generated, &out);
    summary.follow_up = follow_up(&mut out, first.ms(), clock.now().ms());
    summary.follow_up.planted_rank_when_unreachable = planted_rank;
    summary.follow_up.planted_rank_last_day = planted_queue_rank(core.engine(), clock.now());
    summary.follow_up.rule_yield = yield_by_priority(&ops.rule_yield.table());
    if cfg.offices {
        let outcomes = &summary.follow_up.outcomes;
        summary.follow_up.meetings = meetings(spec, ops, &out, outcomes, &cfg.out_dir)?;
    }
    summary.follow_up.planted_explained = planted_explained(spec, &core, clock.now()).await;
    summary.follow_up.planted_list_rank_last_day = core
        .last_list()
        .and_then(|l| planted_list_rank(&cfg.out_dir, &l.date));
    let io = |error| DemoError::Io {
        dir: cfg.out_dir.clone(),
        error,
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| io(e.into()))?;
    fs::write(cfg.out_dir.join("summary.json"), json).map_err(io)?;
    if let Some(DemoLive {
        outcomes,
        on_summary,
        until,
    }) = live
    {
        on_summary(&summary);
        serve_live(&mut core, &clock, &mut out, outcomes, until).await?;
    }
    Ok(summary)
}

/// The dongs' case meetings due before `until`, held on what the board
/// shows then: each dong's agenda, and the offices' decisions on it.
fn hold_meetings(spec: &PipelineSpec, ops: &OpsState, out: &mut DemoOutputs, until: ClockTime) {
    if !out.simulate_offices {
        return;
    }
    let Some(at) = out.offices.meeting_due(until) else {
        return;
    };
    let clock = spec.local_clock();
    let day = clock.day(at) as i32;
    for d in &spec.dongs {
        let items = ops.work.of_dong(&d.dong_code);
        let agenda = crate::ops::agenda::Agenda::of(&items, &d.dong_code, day, clock);
        out.offices.on_agenda(&agenda, at);
    }
    out.offices.meetings_held(spec.dongs.len());
}

/// The generated city, with the planted household when the offices are
/// simulated.
fn generated_city(cfg: &DemoConfig) -> crate::generate::Generated {
    let mut generated = generate(&cfg.generator);
    let planted_start = generated.messages.first().map(|m| m.arrival_ms);
    if let Some(start) = planted_start.filter(|_| cfg.offices) {
        generated
            .messages
            .extend(suwon_signals(start, cfg.generator.days));
        // stable: the generator's own order stays as it was
        generated.messages.sort_by_key(|m| m.arrival_ms);
    }
    generated
}

/// The progress bar: on a terminal only (indicatif draws nothing
/// elsewhere): day, signals, alerts.
fn progress_bar(days: u32) -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::with_draw_target(
        Some(u64::from(days)),
        indicatif::ProgressDrawTarget::stderr(),
    );
    progress.set_style(
        indicatif::ProgressStyle::with_template("day {pos}/{len} {wide_bar} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress
}

/// What went in and came out: signals per feed, rejects, alerts, lists.
fn fill_counts(
    summary: &mut DemoSummary,
    core: &DriverCore<'_, SimulatedClock>,
    source: &mut GeneratedSource,
    out: &mut DemoOutputs,
) {
    let counts = core.counts();
    summary.signals_in = std::mem::take(&mut source.signals_in);
    summary.rejects_planted = std::mem::take(&mut source.rejects_planted);
    summary.accepted = counts.accepted as usize;
    summary.duplicates = counts.duplicates as usize;
    summary.list_days = counts.list_days as usize;
    if let Some(last) = core.last_list() {
        summary.last_list_households = last.households;
        summary.last_list_date = last.date.clone();
    }
    summary.rejected = std::mem::take(&mut out.tally.rejected);
    summary.alerts_by_priority = std::mem::take(&mut out.tally.alerts_by_priority);
    summary.alerts_by_dong = std::mem::take(&mut out.tally.alerts_by_dong);
}

/// How many planted crises were found, at which priority, how soon.
fn detection(generated: &crate::generate::Generated, out: &DemoOutputs) -> Detection {
    let mut d = Detection {
        planted: generated.planted.len(),
        ..Detection::default()
    };
    let mut to_first = Vec::new();
    let mut to_p1 = Vec::new();
    for p in &generated.planted {
        if let Some((at, _)) = out.first_alert.get(&p.household_id) {
            d.found += 1;
            to_first.push((at - p.first_signal_ms) as f64 / DAY_MS as f64);
            let top = out.best.get(&p.household_id).map_or("none", |p| p.as_str());
            *d.by_priority.entry(top.to_string()).or_default() += 1;
        }
        if let Some(at) = out.p1_at.get(&p.household_id) {
            to_p1.push((at - p.first_signal_ms) as f64 / DAY_MS as f64);
        }
    }
    let (median, p90) = median_and_p90(to_first);
    d.median_days_to_first_alert = median;
    d.p90_days_to_first_alert = p90;
    d.median_days_to_p1 = median_and_p90(to_p1).0;
    d
}

/// `--serve` after the simulation: the clock goes on at wall speed from
/// where it ended, the outcomes recorded on the pages go into the engine,
/// until Ctrl-C.
async fn serve_live(
    core: &mut DriverCore<'_, SimulatedClock>,
    clock: &SimulatedClock,
    out: &mut DemoOutputs,
    mut outcomes: tokio::sync::mpsc::Receiver<InputMessage>,
    mut until: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<(), DemoError> {
    let ended = clock.now();
    let started = std::time::Instant::now();
    core.rebuild_work();
    loop {
        let stop = tokio::select! {
            _ = &mut until => true,
            m = outcomes.recv() => match m {
                Some(m) => {
                    core.push(m);
                    false
                }
                None => true,
            },
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
        };
        clock.set(ended.plus(started.elapsed().as_millis() as i64));
        core.flush(out).await?;
        core.tick(out).await?;
        out.sink.flush()?;
        if stop {
            return Ok(());
        }
    }
}

/// The planted household's rank (from 1) on its dong's queue at `now`,
/// and how many households are open there.
fn planted_queue_rank(engine: &crate::engine::Engine, now: ClockTime) -> Option<(usize, usize)> {
    let dong = crate::embedded::offices::SUWON_DONG;
    let queue = engine.queue_of(dong, now);
    let at = queue.iter().position(|(id, _)| id == SUWON_HOUSEHOLD)?;
    Some((at + 1, queue.len()))
}

/// The planted household's rank on its dong's list of `date`, and the
/// list's rows.
fn planted_list_rank(out_dir: &std::path::Path, date: &str) -> Option<(usize, usize)> {
    let dong = crate::embedded::offices::SUWON_DONG;
    let file = out_dir.join("lists").join(date).join(format!("{dong}.csv"));
    let text = fs::read_to_string(file).ok()?;
    let rows: Vec<&str> = text.lines().skip(1).filter(|l| !l.is_empty()).collect();
    let at = rows
        .iter()
        .position(|l| l.split(',').nth(1) == Some(SUWON_HOUSEHOLD))?;
    Some((at + 1, rows.len()))
}

/// What the demo's offices and the city team saw.
fn follow_up(out: &mut DemoOutputs, first_ms: i64, end_ms: i64) -> FollowUp {
    let mut per_priority: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut never = 0;
    for (p, sent, contact) in out.offices.log.first_contact.values() {
        match contact {
            Some(at) => per_priority
                .entry(p.as_str().to_string())
                .or_default()
                .push((at - sent) as f64 / DAY_MS as f64),
            None => never += 1,
        }
    }
    FollowUp {
        outcomes: std::mem::take(&mut out.offices.log.outcomes),
        days_to_first_contact: per_priority
            .into_iter()
            .map(|(p, v)| (p, median_and_p90(v)))
            .collect(),
        never_contacted: never,
        failed_unreached_after_30_days: {
            let log = &out.offices.log;
            log.failed
                .iter()
                .filter(|(_, &at)| at + 30 * DAY_MS <= end_ms)
                .filter(|(hh, &at)| log.reached.get(*hh).is_none_or(|&r| r > at + 30 * DAY_MS))
                .count()
        },
        planted_rank_when_unreachable: None,
        planted_rank_last_day: None,
        planted_list_rank_last_day: None,
        escalations: std::mem::take(&mut out.tally.escalations),
        reopened_households: out.reopened.len(),
        case_updates: out.tally.case_updates,
        planted_household_escalated: out
            .planted_escalated
            .clone()
            .map(|(at, why)| (((at - first_ms) / DAY_MS) as u32, why)),
        planted_household_alerts: out.planted_alerts,
        rule_yield: Vec::new(),
        planted_explained: String::new(),
        meetings: Meetings::default(),
    }
}

/// `sagak explain` of the planted household at `end`.
async fn planted_explained(
    spec: &PipelineSpec,
    core: &DriverCore<'_, SimulatedClock>,
    end: ClockTime,
) -> String {
    core.engine()
        .explain(spec, SUWON_HOUSEHOLD, EventTime::of_clock(end), end)
        .await
        .unwrap_or_else(|e| format!("cannot explain it: {e}"))
}

/// The meetings' figures, and the planted household's dong's agenda for
/// the day after the run (written as CSV beside the summary).
fn meetings(
    spec: &PipelineSpec,
    ops: &OpsState,
    out: &DemoOutputs,
    outcomes: &BTreeMap<String, usize>,
    dir: &std::path::Path,
) -> Result<Meetings, DemoError> {
    use crate::ops::agenda::{reopened_within_a_year, Agenda};
    let clock = spec.local_clock();
    let mut all = Vec::new();
    for d in &spec.dongs {
        all.extend(ops.work.of_dong(&d.dong_code));
    }
    all.sort_by(|a, b| a.household_id.cmp(&b.household_id));
    all.dedup_by(|a, b| a.household_id == b.household_id);
    let dong = crate::embedded::offices::SUWON_DONG;
    let day = clock.day(ops.work.now_ms()) as i32 + 1;
    let agenda = Agenda::of(&ops.work.of_dong(dong), dong, day, clock);
    let date = crate::stages::case::outcome::date_text(day);
    let csv = agenda.csv(clock);
    let agenda_file = format!("agenda-{dong}-{date}.csv");
    fs::write(dir.join(&agenda_file), csv).map_err(|error| DemoError::Io {
        dir: dir.to_path_buf(),
        error,
    })?;
    let n = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    Ok(Meetings {
        held: out.offices.log.meetings,
        opened: n("case_opened"),
        planned: n("case_plan"),
        reviewed: n("case_reviewed"),
        closed: n("case_closed"),
        goals_met: out.offices.log.goals_met,
        reopened_within_a_year: reopened_within_a_year(&all, clock).len(),
        agenda: agenda.text(clock),
        agenda_file,
        agenda_counts: agenda.counts(),
    })
}

impl DemoSummary {
    /// The summary as a person reads it.
    pub fn render(&self) -> String {
        let mut out = Lines(format!(
            "sagak demo: synthetic Dongducheon-si, {} households, {} days of event time\n\n",
            self.households, self.days
        ));
        self.render_inputs(&mut out);
        self.render_detection(&mut out);
        self.render_follow_up(&mut out);
        out.line("");
        out.line("This is a regression check of the engine on synthetic data the generator planted, not a");
        out.line("claim about accuracy on real households.");
        out.line(format!(
            "outputs: {}/ (alerts.ndjson, escalations.ndjson, dead-letters.ndjson, lists/, summary.json)",
            self.out_dir
        ));
        out.0
    }

    /// Signals in, rejects, alerts and lists.
    fn render_inputs(&self, out: &mut Lines) {
        let total: usize = self.signals_in.values().sum();
        let rejected: usize = self.rejected.values().sum();
        out.line(format!("signals in            {total}"));
        for (feed, n) in &self.signals_in {
            out.line(format!("  {feed:<20}{n}"));
        }
        out.line(format!("accepted              {}", self.accepted));
        out.line(format!("duplicates (counted once) {}", self.duplicates));
        out.line(format!("rejected to the DLQ   {rejected}"));
        for (class, n) in &self.rejected {
            let planted = self.rejects_planted.get(class).copied().unwrap_or(0);
            out.line(format!(
                "  {class:<30}{n:>7}   (generator planted {planted})"
            ));
        }
        let alerts: usize = self.alerts_by_priority.values().sum();
        out.line(format!("alerts                {alerts}"));
        for (p, n) in &self.alerts_by_priority {
            out.line(format!("  {p:<20}{n}"));
        }
        out.line("alerts per dong");
        for (d, n) in &self.alerts_by_dong {
            out.line(format!("  {d:<20}{n}"));
        }
        out.line(format!(
            "daily lists           {} days written; {} households on the lists of {}",
            self.list_days, self.last_list_households, self.last_list_date
        ));
    }

    /// How many planted crises were found, and how soon.
    fn render_detection(&self, out: &mut Lines) {
        let d = &self.detection;
        out.line("");
        let share = if d.planted > 0 {
            100.0 * d.found as f64 / d.planted as f64
        } else {
            0.0
        };
        out.line(format!(
            "planted crises found  {} of {} ({share:.1}%)",
            d.found, d.planted
        ));
        for (p, n) in &d.by_priority {
            out.line(format!("  highest priority {p:<4}{n}"));
        }
        out.line(format!(
            "  days from first crisis signal to first alert: median {}, p90 {}; to P1: median {}",
            days(d.median_days_to_first_alert),
            days(d.p90_days_to_first_alert),
            days(d.median_days_to_p1)
        ));
    }

    /// What the simulated offices did, the escalations, and the planted
    /// household's path to the city team.
    fn render_follow_up(&self, out: &mut Lines) {
        let f = &self.follow_up;
        out.line("");
        let outcomes: usize = f.outcomes.values().sum();
        out.line(format!("outcomes from the offices {outcomes} (simulated)"));
        for (kind, n) in &f.outcomes {
            out.line(format!("  {kind:<20}{n}"));
        }
        out.line("days from alert to first reach (failed attempts do not count)");
        for (p, (median, p90)) in &f.days_to_first_contact {
            out.line(format!(
                "  {p:<4}median {}, p90 {}",
                days(*median),
                days(*p90)
            ));
        }
        out.line(format!(
            "  never reached       {} alerts",
            f.never_contacted
        ));
        out.line(format!(
            "  failed attempt, nobody reached 30 days later: {} households",
            f.failed_unreached_after_30_days
        ));
        out.line("escalations to the city team");
        for reason in ["overdue", "unreachable", "repeatedly_flagged"] {
            let n = f.escalations.get(reason).copied().unwrap_or(0);
            out.line(format!("  {reason:<20}{n}"));
        }
        out.line("yield of the rules: alerts whose answer window closed, and how many led to help (the offices' finding)");
        for y in &f.rule_yield {
            let share = y
                .share
                .map_or("too few for a share".to_string(), |(s, lo, hi)| {
                    format!(
                        "{:.0}%, 95% {:.0}-{:.0}%",
                        100.0 * s,
                        100.0 * lo,
                        100.0 * hi
                    )
                });
            let (p, n, helped) = (&y.priority, y.alerts, y.helped);
            out.line(format!("  {p:<4}{n} alerts, helped {helped} ({share})"));
        }
        out.line(format!(
            "reopened cases        {} households; case updates sent {}",
            f.reopened_households, f.case_updates
        ));
        let m = &f.meetings;
        out.line(format!(
            "case meetings         {} held (each dong every two weeks): cases opened {}, plans {}, reviews {}, closed {}; goals met {}; reopened within a year of closing {}",
            m.held, m.opened, m.planned, m.reviewed, m.closed, m.goals_met, m.reopened_within_a_year
        ));
        let [c, r, x] = m.agenda_counts;
        out.line(format!(
            "  the planted household's dong's next agenda: {c} candidates, {r} to review, {x} ready to close ({})",
            m.agenda_file
        ));
        out.line(format!(
            "planted household     {SUWON_HOUSEHOLD} (registered in one dong, living elsewhere): {} alerts; {}",
            f.planted_household_alerts,
            match &f.planted_household_escalated {
                Some((day, why)) => format!("reached the city team on day {day} ({why})"),
                None => "never reached the city team".into(),
            }
        ));
        let rank = |r: Option<(usize, usize)>| {
            r.map_or("not open".to_string(), |(at, of)| format!("{at} of {of}"))
        };
        out.line(format!(
            "  its rank on its dong's queue: {}; on the last day {}; on the last daily list {}",
            match f.planted_rank_when_unreachable {
                Some((day, at)) => format!("{at} on day {day} (its unreachable escalation)"),
                None => "no unreachable escalation".into(),
            },
            rank(f.planted_rank_last_day),
            rank(f.planted_list_rank_last_day),
        ));
        out.line("  why it stands there at the end (sagak explain):");
        for l in f.planted_explained.lines() {
            out.line(format!("    {l}"));
        }
    }
}

/// The priority rows of the yield table, as the summary shows them.
fn yield_by_priority(
    rows: &[(crate::ops::rule_yield::Cut, crate::ops::rule_yield::Counts)],
) -> Vec<YieldLine> {
    use crate::ops::rule_yield::{wilson, SMALL};
    use crate::stages::case::rules::YieldResult;
    rows.iter()
        .filter(|((d, _), _)| *d == "priority")
        .map(|((_, p), counts)| {
            let n: u64 = counts.iter().sum();
            let helped = counts[YieldResult::Helped.slot()];
            let share = (n >= SMALL).then(|| {
                let (lo, hi) = wilson(helped, n);
                (helped as f64 / n as f64, lo, hi)
            });
            YieldLine {
                priority: p.clone(),
                alerts: n,
                helped,
                share,
            }
        })
        .collect()
}

/// The summary's text, a line at a time.
struct Lines(String);

impl Lines {
    fn line(&mut self, l: impl AsRef<str>) {
        self.0.push_str(l.as_ref());
        self.0.push('\n');
    }
}

/// Days with one decimal, or `-`.
fn days(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.1}"))
}
