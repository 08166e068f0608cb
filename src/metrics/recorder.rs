//! Turns what the engine reports into series. A labelled lookup takes a
//! lock, so the handles a batch needs are looked up once (per feed, per
//! partition and feed, per priority) and kept here; a batch then costs one
//! lookup per label value it meets, not one per event.

use std::collections::HashMap;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use super::Metrics;
use crate::base::time::ClockTime;
use crate::engine::BatchResult;
use crate::stages::case::escalation::{Escalation, EscalationReason};
use crate::stages::case::outcome::OutcomeKind;
use crate::stages::case::rules::YieldResult;
use crate::stages::case::work::OpenCounts;
use crate::stages::Watermark;

/// Alerts per result of the yield, in [`YieldResult::ALL`]'s order.
type YieldCounts = [u64; YieldResult::ALL.len()];

/// The driver's side of the metrics: it records each batch's result, the
/// escalations it sends and the open counts it observes.
pub struct Recorder {
    metrics: Metrics,
    feed_names: Vec<String>,
    /// `sagak_signals_received_total` of each feed.
    received: Vec<IntCounter>,
    /// `sagak_feed_last_received_timestamp_seconds` of each feed.
    received_at: Vec<IntGauge>,
    /// `sagak_watermark_timestamp_seconds` per input partition, then feed,
    /// looked up once the feed has a watermark there.
    watermark: Vec<Vec<Option<IntGauge>>>,
    /// First reach and attempts before it, per priority.
    first_contact: [Option<(Histogram, Histogram)>; 4],
}

impl Recorder {
    /// A recorder into `metrics` for a pipeline with `feed_names` (in the
    /// engine's feed order).
    pub fn new(metrics: Metrics, feed_names: &[String]) -> Self {
        let per_feed = |vec: &prometheus::IntGaugeVec| -> Vec<IntGauge> {
            feed_names
                .iter()
                .map(|f| vec.with_label_values(&[f.as_str()]))
                .collect()
        };
        Recorder {
            received: feed_names
                .iter()
                .map(|f| metrics.received.with_label_values(&[f.as_str()]))
                .collect(),
            received_at: per_feed(&metrics.feed_received_at),
            feed_names: feed_names.to_vec(),
            watermark: Vec::new(),
            first_contact: Default::default(),
            metrics,
        }
    }

    /// One batch taken in at `now` (the driver's clock): what each feed
    /// sent, rejects, duplicates, alerts per priority and dong, outcomes,
    /// first reaches, escalations, the feeds' watermarks and the batch's
    /// size and time.
    pub fn batch(&mut self, result: &BatchResult, now: ClockTime, watermark: &Watermark) {
        self.received(result, now);
        let m = &self.metrics;
        for (_, r) in &result.rejects {
            m.rejected.with_label_values(&[r.class.as_str()]).inc();
        }
        m.duplicates.inc_by(result.duplicates as u64);
        m.dropped_over_cap.inc_by(result.dropped_over_cap as u64);
        m.suppressed.inc_by(result.suppressed as u64);
        m.case.deceased_signals.inc_by(result.deceased as u64);
        let mut alerts: HashMap<(&str, &str), u64> = HashMap::new();
        for a in &result.alerts {
            *alerts
                .entry((a.priority.as_str(), a.dong_code.as_str()))
                .or_default() += 1;
        }
        for ((priority, dong), n) in alerts {
            m.alerts.with_label_values(&[priority, dong]).inc_by(n);
        }
        let mut kinds = [0u64; OutcomeKind::ALL.len()];
        for o in &result.recorded {
            kinds[usize::from(o.said.kind().code())] += 1;
        }
        let names = OutcomeKind::ALL.iter().map(|k| k.as_str());
        add_per_label(&m.case.outcomes, names, kinds);
        self.first_contacts(result);
        self.escalations(&result.escalations);
        self.watermarks(watermark);
        let m = &self.metrics;
        m.batch_size.observe(result.messages as f64);
        m.batch_seconds.observe(result.elapsed.as_secs_f64());
    }

    /// Messages per feed, and when each feed last sent one.
    fn received(&self, result: &BatchResult, now: ClockTime) {
        for (f, &n) in result.received.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if let Some(counter) = self.received.get(f) {
                counter.inc_by(n);
            }
            if let Some(at) = self.received_at.get(f) {
                at.set(now.ms() / 1000);
            }
        }
    }

    /// Time to first reach and failed attempts before it, per priority.
    fn first_contacts(&mut self, result: &BatchResult) {
        let m = &self.metrics;
        for c in &result.first_contacts {
            let (seconds, attempts) =
                self.first_contact[c.priority as usize].get_or_insert_with(|| {
                    let p = [c.priority.as_str()];
                    (
                        m.case.first_contact.with_label_values(&p),
                        m.case.attempts_per_reach.with_label_values(&p),
                    )
                });
            seconds.observe(c.seconds);
            attempts.observe(f64::from(c.attempts));
        }
    }

    /// Escalations sent, per reason.
    pub(crate) fn escalations(&self, escalations: &[Escalation]) {
        let mut per_reason = [0u64; EscalationReason::ALL.len()];
        for e in escalations {
            per_reason[e.reason as usize] += 1;
        }
        let reasons = EscalationReason::ALL.iter().map(|r| r.as_str());
        add_per_label(&self.metrics.case.escalations, reasons, per_reason);
    }

    /// Each feed's watermark per partition; a series appears once its feed
    /// has a watermark there.
    fn watermarks(&mut self, watermark: &Watermark) {
        for p in watermark.partitions() {
            let index = p as usize;
            if self.watermark.len() <= index {
                self.watermark.resize_with(index + 1, Vec::new);
            }
            let gauges = &mut self.watermark[index];
            gauges.resize(self.feed_names.len(), None);
            for (f, gauge) in gauges.iter_mut().enumerate() {
                let Some(wm) = watermark.of(f, p) else {
                    continue;
                };
                gauge
                    .get_or_insert_with(|| {
                        let labels = [self.feed_names[f].as_str(), &p.to_string()];
                        self.metrics.watermark.with_label_values(&labels)
                    })
                    .set(wm.ms() / 1000);
            }
        }
    }

    /// The yield of the rules (rows of cut and counts, as
    /// `ops::rule_yield` keeps them), per priority: the coarse cut.
    pub(crate) fn rule_yield(&self, rows: &[((&'static str, String), YieldCounts)]) {
        for ((_, priority), counts) in rows.iter().filter(|((d, _), _)| *d == "priority") {
            for r in YieldResult::ALL {
                self.metrics
                    .case
                    .rule_yield
                    .with_label_values(&[priority.as_str(), r.name().as_str()])
                    .set(counts[r.slot()] as i64);
            }
        }
    }

    /// Households with live signals.
    pub fn households(&self, n: usize) {
        self.metrics.households.set(n as i64);
    }

    /// Open, overdue and unreachable households per dong (open also per
    /// priority and status), replacing the last counts.
    pub(crate) fn open_cases(&self, total: &OpenCounts) {
        let case = &self.metrics.case;
        case.open_households.reset();
        case.overdue_households.reset();
        case.unreachable_households.reset();
        for ((dong, p, status), n) in &total.open {
            case.open_households
                .with_label_values(&[dong.as_str(), p.as_str(), status.as_str()])
                .set(*n);
        }
        for (dong, n) in &total.overdue {
            case.overdue_households
                .with_label_values(&[dong.as_str()])
                .set(*n);
        }
        for (dong, n) in &total.unreachable {
            case.unreachable_households
                .with_label_values(&[dong.as_str()])
                .set(*n);
        }
    }
}

/// Adds each of `counts` to the series of `counter` its label names.
fn add_per_label<'a>(
    counter: &IntCounterVec,
    labels: impl IntoIterator<Item = &'a str>,
    counts: impl IntoIterator<Item = u64>,
) {
    for (label, n) in labels.into_iter().zip(counts) {
        if n > 0 {
            counter.with_label_values(&[label]).inc_by(n);
        }
    }
}
