//! `sagak demo`: the whole pipeline on a synthetic Dongducheon, with no
//! broker. An embedded source replays the generator's messages in simulated
//! time through the same [`Engine`] as the Kafka mode; embedded sinks write
//! alerts and dead letters as NDJSON; the daily lists are written at every
//! simulated cut-off. At the end a summary says what happened and how many
//! of the planted crises were found, how fast.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::alert::Alert;
use crate::decode::RejectClass;
use crate::engine::{Engine, InputMessage};
use crate::generate::{generate, Expect, GeneratorConfig};
use crate::lists::DailyLists;
use crate::ops::OpsState;
use crate::pipeline::{PipelineSpec, DAY_MS};
use crate::score::Priority;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Scoring failed.
    #[error(transparent)]
    Score(#[from] crate::score::ScoreError),
    /// Lists failed.
    #[error(transparent)]
    Lists(#[from] crate::lists::ListError),
    /// Writing outputs failed.
    #[error("cannot write demo output under {dir}: {error}")]
    Io {
        /// Output directory.
        dir: PathBuf,
        /// The error.
        error: std::io::Error,
    },
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
    pub median_days_to_first_alert: Option<f64>,
    /// Median days from the first crisis signal to the P1 alert.
    pub median_days_to_p1: Option<f64>,
    /// 90th percentile of days to the first alert.
    pub p90_days_to_first_alert: Option<f64>,
}

/// What a demo run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DemoSummary {
    /// Households simulated.
    pub households: usize,
    /// Days simulated.
    pub days: u32,
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
    pub alerts_by_dong: BTreeMap<String, usize>,
    /// Days of lists written.
    pub list_days: usize,
    /// Households on the last day's lists.
    pub last_list_households: usize,
    /// Date of the last day's lists.
    pub last_list_date: String,
    /// Planted crises found.
    pub detection: Detection,
    /// Output directory.
    pub out_dir: String,
}

fn median_and_p90(mut v: Vec<f64>) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (Some(at(0.5)), Some(at(0.9)))
}

/// Runs the demo and writes its outputs under `cfg.out_dir`.
pub async fn run_demo(
    spec: &PipelineSpec,
    cfg: &DemoConfig,
    ops: &OpsState,
) -> Result<DemoSummary, DemoError> {
    let io = |error| DemoError::Io {
        dir: cfg.out_dir.clone(),
        error,
    };
    fs::create_dir_all(&cfg.out_dir).map_err(io)?;
    let generated = generate(&cfg.generator);
    let mut engine = Engine::new(spec, ops.metrics.clone());
    engine.start().await?;
    let lists = DailyLists::new(spec)?;
    let feed_topic: HashMap<&str, (u16, String)> = spec
        .feeds
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), (i as u16, f.topic.clone())))
        .collect();

    let mut alerts_out =
        BufWriter::new(fs::File::create(cfg.out_dir.join("alerts.ndjson")).map_err(io)?);
    let mut dlq_out =
        BufWriter::new(fs::File::create(cfg.out_dir.join("dead-letters.ndjson")).map_err(io)?);
    let mut summary = DemoSummary {
        households: cfg.generator.households,
        days: cfg.generator.days,
        out_dir: cfg.out_dir.display().to_string(),
        ..DemoSummary::default()
    };
    let mut first_alert: HashMap<String, (i64, Priority)> = HashMap::new();
    let mut best: HashMap<String, Priority> = HashMap::new();
    let mut p1_at: HashMap<String, i64> = HashMap::new();

    let msgs = &generated.messages;
    let Some(first) = msgs.first() else {
        return Ok(summary);
    };
    let mut next_cutoff = lists.cutoff_ms(lists.list_day_at(first.arrival_ms)) + DAY_MS;
    let mut previous: HashSet<String> = HashSet::new();
    let mut batch: Vec<InputMessage> = Vec::new();
    let step = cfg.batch_minutes.max(1) * 60_000;
    let mut i = 0;
    while i < msgs.len() {
        let window_start = msgs[i].arrival_ms;
        // Lists are made from the state as it stands at each cut-off.
        while next_cutoff <= window_start {
            write_lists(
                &mut engine,
                &lists,
                &cfg.out_dir,
                next_cutoff,
                &mut previous,
                &mut summary,
            )
            .await?;
            engine.on_watermark();
            next_cutoff += DAY_MS;
        }
        let window_end = (window_start + step).min(next_cutoff);
        batch.clear();
        while i < msgs.len() && msgs[i].arrival_ms < window_end {
            let m = &msgs[i];
            let (feed, topic) = feed_topic
                .get(m.feed)
                .cloned()
                .unwrap_or((u16::MAX, m.feed.to_string()));
            *summary.signals_in.entry(m.feed.to_string()).or_default() += 1;
            if let Expect::Reject(class) = m.expect {
                *summary
                    .rejects_planted
                    .entry(class.as_str().to_string())
                    .or_default() += 1;
            }
            batch.push(InputMessage {
                feed: (feed != u16::MAX).then_some(feed),
                topic,
                partition: 0,
                offset: i as i64,
                key: m.key.clone(),
                payload: Some(m.payload.clone()),
                timestamp_ms: Some(m.arrival_ms),
            });
            i += 1;
        }
        let now = batch
            .last()
            .and_then(|m| m.timestamp_ms)
            .unwrap_or(window_start);
        let result = engine.process_batch(&batch, now).await?;
        summary.accepted += result.accepted;
        summary.duplicates += result.duplicates;
        for (idx, reject) in &result.rejects {
            *summary
                .rejected
                .entry(reject.class.as_str().to_string())
                .or_default() += 1;
            let m = &batch[*idx];
            let line = serde_json::json!({
                "class": reject.class.as_str(),
                "reason": reject.reason,
                "topic": m.topic,
                "offset": m.offset,
                "redacted": reject.class == RejectClass::ResidentRegistrationNumber,
            });
            writeln!(dlq_out, "{line}").map_err(io)?;
        }
        ops.live.record(&result.alerts);
        for a in &result.alerts {
            record_alert(
                a,
                now,
                &mut summary,
                &mut first_alert,
                &mut best,
                &mut p1_at,
            );
            serde_json::to_writer(&mut alerts_out, a).map_err(|e| io(e.into()))?;
            writeln!(alerts_out).map_err(io)?;
        }
    }
    write_lists(
        &mut engine,
        &lists,
        &cfg.out_dir,
        next_cutoff,
        &mut previous,
        &mut summary,
    )
    .await?;
    alerts_out.flush().map_err(io)?;
    dlq_out.flush().map_err(io)?;

    let mut d = Detection {
        planted: generated.planted.len(),
        ..Detection::default()
    };
    let mut to_first = Vec::new();
    let mut to_p1 = Vec::new();
    for p in &generated.planted {
        if let Some((at, _)) = first_alert.get(&p.household_id) {
            d.found += 1;
            to_first.push((at - p.first_signal_ms) as f64 / DAY_MS as f64);
            let top = best.get(&p.household_id).map_or("none", |p| p.as_str());
            *d.by_priority.entry(top.to_string()).or_default() += 1;
        }
        if let Some(at) = p1_at.get(&p.household_id) {
            to_p1.push((at - p.first_signal_ms) as f64 / DAY_MS as f64);
        }
    }
    let (median, p90) = median_and_p90(to_first);
    d.median_days_to_first_alert = median;
    d.p90_days_to_first_alert = p90;
    d.median_days_to_p1 = median_and_p90(to_p1).0;
    summary.detection = d;
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| io(e.into()))?;
    fs::write(cfg.out_dir.join("summary.json"), json).map_err(io)?;
    Ok(summary)
}

fn record_alert(
    a: &Alert,
    now: i64,
    summary: &mut DemoSummary,
    first_alert: &mut HashMap<String, (i64, Priority)>,
    best: &mut HashMap<String, Priority>,
    p1_at: &mut HashMap<String, i64>,
) {
    *summary
        .alerts_by_priority
        .entry(a.priority.as_str().to_string())
        .or_default() += 1;
    *summary
        .alerts_by_dong
        .entry(a.dong_code.clone())
        .or_default() += 1;
    first_alert
        .entry(a.household_id.clone())
        .or_insert((now, a.priority));
    let top = best.entry(a.household_id.clone()).or_insert(a.priority);
    *top = (*top).max(a.priority);
    if a.priority == Priority::P1 {
        p1_at.entry(a.household_id.clone()).or_insert(now);
    }
}

async fn write_lists(
    engine: &mut Engine,
    lists: &DailyLists,
    out: &Path,
    cutoff_ms: i64,
    previous: &mut HashSet<String>,
    summary: &mut DemoSummary,
) -> Result<(), DemoError> {
    let (manifest, on_list) = lists.make_day(engine, out, cutoff_ms, previous).await?;
    *previous = on_list;
    summary.list_days += 1;
    summary.last_list_households = manifest.households;
    summary.last_list_date = manifest.date;
    Ok(())
}

impl DemoSummary {
    /// The summary as a person reads it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let total: usize = self.signals_in.values().sum();
        let rejected: usize = self.rejected.values().sum();
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!(
                "sagak demo: synthetic Dongducheon-si, {} households, {} days of event time\n\n",
                self.households, self.days
            ),
        );
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!("signals in            {total}"));
        for (feed, n) in &self.signals_in {
            line(format!("  {feed:<20}{n}"));
        }
        line(format!("accepted              {}", self.accepted));
        line(format!("duplicates (counted once) {}", self.duplicates));
        line(format!("rejected to the DLQ   {rejected}"));
        for (class, n) in &self.rejected {
            let planted = self.rejects_planted.get(class).copied().unwrap_or(0);
            line(format!(
                "  {class:<30}{n:>7}   (generator planted {planted})"
            ));
        }
        let alerts: usize = self.alerts_by_priority.values().sum();
        line(format!("alerts                {alerts}"));
        for (p, n) in &self.alerts_by_priority {
            line(format!("  {p:<20}{n}"));
        }
        line("alerts per dong".to_string());
        for (d, n) in &self.alerts_by_dong {
            line(format!("  {d:<20}{n}"));
        }
        line(format!(
            "daily lists           {} days written; {} households on the lists of {}",
            self.list_days, self.last_list_households, self.last_list_date
        ));
        let d = &self.detection;
        line(String::new());
        line(format!(
            "planted crises found  {} of {} ({:.1}%)",
            d.found,
            d.planted,
            if d.planted > 0 {
                100.0 * d.found as f64 / d.planted as f64
            } else {
                0.0
            }
        ));
        for (p, n) in &d.by_priority {
            line(format!("  highest priority {p:<4}{n}"));
        }
        let days = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
        line(format!(
            "  days from first crisis signal to first alert: median {}, p90 {}; to P1: median {}",
            days(d.median_days_to_first_alert),
            days(d.p90_days_to_first_alert),
            days(d.median_days_to_p1)
        ));
        line(String::new());
        line("This is a regression check of the engine on synthetic data the generator planted, not a".into());
        line("claim about accuracy on real households.".into());
        line(format!(
            "outputs: {}/ (alerts.ndjson, dead-letters.ndjson, lists/, summary.json)",
            self.out_dir
        ));
        s
    }
}
