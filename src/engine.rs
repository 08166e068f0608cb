//! Wires the stages for one micro-batch: decode -> window -> score -> alert.
//!
//! The engine does no I/O. A driver (Kafka in [`crate::run`], or a test)
//! hands it the raw messages of a micro-batch and sends what comes back:
//! alerts to the dong-office topic and rejects to the dead-letter topic. The
//! stages do not know each other; only this file passes data between them.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertGate, AlertMark, AlertState};
use crate::decode::{Decoder, Reject, RejectClass};
use crate::metrics::Metrics;
use crate::pipeline::PipelineSpec;
use crate::score::{ScoreError, Scorer};
use crate::window::{Household, HouseholdWindows, WindowState};

/// One raw input message.
#[derive(Debug, Clone)]
pub struct InputMessage {
    /// Feed index, or `None` when no feed reads the topic.
    pub feed: Option<u16>,
    /// Source topic (for the dead-letter headers).
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Option<Vec<u8>>,
    /// Broker timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
}

/// What one micro-batch produced.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Alerts to send, in decision order.
    pub alerts: Vec<Alert>,
    /// Rejected messages: index into the batch and why.
    pub rejects: Vec<(usize, Reject)>,
    /// Signals stored in the window state.
    pub accepted: usize,
    /// Re-sent events counted once.
    pub duplicates: usize,
    /// Assessments held back by the cooldown.
    pub suppressed: usize,
}

/// Everything the engine needs to continue after a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineState {
    /// Window stage state.
    pub windows: WindowState,
    /// Alert stage state.
    pub alerts: AlertState,
}

/// The stages of one pipeline, wired.
pub struct Engine {
    decoder: Decoder,
    windows: HouseholdWindows,
    scorer: Scorer,
    gate: AlertGate,
    metrics: Metrics,
    feed_names: Vec<String>,
    /// Shard of each message of the batch in flight (reused).
    shards: Vec<i32>,
}

/// The state of one shard, borrowed for a snapshot.
#[derive(Debug, Default)]
pub struct ShardView<'a> {
    /// Households of the shard.
    pub households: Vec<(&'a str, &'a Household)>,
    /// Alert marks of the shard.
    pub marks: Vec<(&'a str, &'a AlertMark)>,
}

impl Engine {
    /// An engine for `spec`, reporting to `metrics`.
    pub fn new(spec: &PipelineSpec, metrics: Metrics) -> Self {
        Engine {
            decoder: Decoder::new(spec),
            windows: HouseholdWindows::new(spec),
            scorer: Scorer::new(spec),
            gate: AlertGate::new(spec),
            metrics,
            feed_names: spec.feeds.iter().map(|f| f.name.clone()).collect(),
            shards: Vec::new(),
        }
    }

    /// Checks what can only be checked by running it (the scoring SQL), so
    /// a broken pipeline stops at start-up.
    pub async fn start(&self) -> Result<(), ScoreError> {
        self.scorer.check().await
    }

    /// Processes one micro-batch. `now_ms` is the wall clock.
    pub async fn process_batch(
        &mut self,
        msgs: &[InputMessage],
        now_ms: i64,
    ) -> Result<BatchResult, ScoreError> {
        let started = Instant::now();
        let mut result = BatchResult::default();
        for (i, m) in msgs.iter().enumerate() {
            let Some(feed) = m.feed else {
                result.rejects.push((
                    i,
                    Reject::new(
                        RejectClass::UnknownTopic,
                        format!("no feed reads topic {}", m.topic),
                    ),
                ));
                continue;
            };
            if let Some(name) = self.feed_names.get(usize::from(feed)) {
                self.metrics
                    .received
                    .with_label_values(&[name.as_str()])
                    .inc();
            }
            if let Err(reject) = self.decoder.decode(
                i as u32,
                feed,
                m.key.as_deref(),
                m.payload.as_deref(),
                now_ms,
            ) {
                result.rejects.push((i, reject));
            }
        }
        let decoded = self.decoder.finish();
        self.shards.clear();
        self.shards.extend(msgs.iter().map(|m| m.partition));
        let window = self.windows.process_batch(&decoded, &self.shards);
        result.accepted = window.accepted;
        result.duplicates = window.duplicates;
        result
            .rejects
            .extend(window.late.into_iter().map(|(i, r)| (i as usize, r)));
        result.rejects.sort_by_key(|(i, _)| *i);

        let assessments = self.scorer.process_batch(window.table).await?;
        let windows = &self.windows;
        let gate = self.gate.process_batch(assessments, now_ms, |hh| {
            windows.shard_of(hh).unwrap_or_default()
        });
        result.suppressed = gate.suppressed;
        result.alerts = gate.alerts;

        let m = &self.metrics;
        for (_, r) in &result.rejects {
            m.rejected.with_label_values(&[r.class.as_str()]).inc();
        }
        m.duplicates.inc_by(result.duplicates as u64);
        m.dropped_over_cap.inc_by(window.dropped_over_cap as u64);
        m.suppressed.inc_by(result.suppressed as u64);
        for a in &result.alerts {
            m.alerts
                .with_label_values(&[a.priority.as_str(), a.dong_code.as_str()])
                .inc();
        }
        m.households.set(self.windows.households() as i64);
        for (f, name) in self.feed_names.iter().enumerate() {
            if let Some(wm) = self.windows.watermark(f) {
                m.watermark
                    .with_label_values(&[name.as_str()])
                    .set(wm / 1000);
            }
        }
        m.batch_size.observe(msgs.len() as f64);
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
        Ok(result)
    }

    /// Evicts state the watermark has passed. Returns (signals, alert marks)
    /// evicted.
    pub fn on_watermark(&mut self) -> (usize, usize) {
        let signals = self.windows.on_watermark();
        let marks = self.gate.on_watermark(self.windows.low_watermark());
        self.metrics
            .households
            .set(self.windows.households() as i64);
        (signals, marks)
    }

    /// Ids of every household in the state.
    pub fn household_ids(&self) -> impl Iterator<Item = &str> {
        self.windows.household_ids()
    }

    /// Scores the given households (for the daily lists, which go through
    /// the state in chunks so the signal table of a whole country is never
    /// built at once).
    pub async fn assess(
        &self,
        households: &[&str],
    ) -> Result<Vec<crate::score::Assessment>, ScoreError> {
        let table = self.windows.table_of(households.iter().copied());
        self.scorer.process_batch(table).await
    }

    /// The last alert sent for a household.
    pub fn alert_mark(&self, household_id: &str) -> Option<crate::alert::AlertMark> {
        self.gate.mark(household_id)
    }

    /// Number of households with live signals.
    pub fn households(&self) -> usize {
        self.windows.households()
    }

    /// The state of every shard, borrowed for snapshots, split in one pass.
    pub fn checkpoint(&self) -> BTreeMap<i32, ShardView<'_>> {
        let mut shards: BTreeMap<i32, ShardView<'_>> = BTreeMap::new();
        for (id, h) in &self.windows.checkpoint().households {
            shards.entry(h.shard).or_default().households.push((id, h));
        }
        for (id, m) in &self.gate.checkpoint().marks {
            shards.entry(m.shard).or_default().marks.push((id, m));
        }
        shards
    }

    /// Newest event time per feed, for snapshots.
    pub fn feed_newest(&self) -> &[Option<i64>] {
        &self.windows.checkpoint().feed_newest
    }

    /// Adds one shard's state from its snapshot.
    pub fn restore_shard(&mut self, state: EngineState) {
        self.windows.restore_shard(state.windows);
        self.gate.restore_shard(state.alerts);
        self.metrics
            .households
            .set(self.windows.households() as i64);
    }

    /// Forgets one shard's state: its partition moved to another instance,
    /// which continues from the shard's snapshot. Returns the households
    /// dropped.
    pub fn drop_shard(&mut self, shard: i32) -> usize {
        let dropped = self.windows.drop_shard(shard);
        self.gate.drop_shard(shard);
        self.metrics
            .households
            .set(self.windows.households() as i64);
        dropped
    }
}
