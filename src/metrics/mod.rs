//! Prometheus metrics of the pipeline. Labels stay bounded: feeds, reject
//! classes, priorities and dong codes; never household ids.
//!
//! The engine does not touch them: it returns what happened (a
//! [`crate::engine::BatchResult`], the escalations due, the open counts)
//! and the driver hands that to a [`Recorder`], the one place that turns
//! the engine's events into series.

mod recorder;

pub use recorder::Recorder;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::definition::PipelineSpec;
use crate::stages::decode::RejectClass;

/// Every metric sagak exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry to serve.
    pub(crate) registry: Registry,
    /// Messages received per feed.
    pub received: IntCounterVec,
    /// Messages rejected per reason class.
    pub(crate) rejected: IntCounterVec,
    /// Re-sent events counted once.
    pub(crate) duplicates: IntCounter,
    /// Oldest signals dropped because a household hit its bound.
    pub(crate) dropped_over_cap: IntCounter,
    /// Alerts sent per priority and dong.
    pub alerts: IntCounterVec,
    /// Alerts held back by the cooldown.
    pub(crate) suppressed: IntCounter,
    /// Households with live signals.
    pub(crate) households: IntGauge,
    /// Watermark per feed, seconds since the epoch.
    pub watermark: IntGaugeVec,
    /// Messages written to the dead-letter topic.
    pub(crate) dlq_writes: IntCounter,
    /// Messages per micro-batch.
    pub(crate) batch_size: Histogram,
    /// Processing time of a micro-batch (decode to alert decisions).
    pub(crate) batch_seconds: Histogram,
    /// When each feed last sent a message (seconds since the epoch).
    pub feed_received_at: IntGaugeVec,
    /// The longest quiet spell that is normal for each feed, from the
    /// pipeline definition (`expected_gap`).
    pub(crate) feed_expected_gap: IntGaugeVec,
    /// Kafka client errors.
    pub(crate) kafka_errors: IntCounter,
    /// Messages not yet consumed, per topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// Broker timestamp of a signal to its alert acknowledged.
    pub(crate) event_to_alert: Histogram,
    /// 1 while ready (see `/readyz`).
    pub ready: IntGauge,
    /// Snapshots of the state.
    pub(crate) checkpoints: CheckpointMetrics,
    /// The daily lists.
    pub(crate) lists: ListMetrics,
    /// What the offices did and what is still open.
    pub case: CaseMetrics,
}

/// Snapshots of the state.
#[derive(Clone)]
pub(crate) struct CheckpointMetrics {
    /// How long the run loop stops for a checkpoint (evicting expired state
    /// and copying the records); the write to disk runs beside it.
    pub(crate) pause_seconds: Histogram,
    /// How long a snapshot takes to reach the disk, in the background.
    pub(crate) write_seconds: Histogram,
    /// Checkpoint ticks skipped because the previous snapshot was still
    /// being written (raise `engine.checkpoint_interval_ms` if this grows).
    pub(crate) skipped: IntCounter,
    /// When a state snapshot last reached the disk (seconds since the
    /// epoch): checkpoints that stopped working show as this falling behind.
    pub(crate) written_at: IntGauge,
    /// Snapshots the store refused because another instance owns their
    /// partitions now (this one was paused, or cut off from the group).
    pub fenced: IntCounter,
}

/// The daily lists.
#[derive(Clone)]
pub(crate) struct ListMetrics {
    /// Time to make the daily lists at a cut-off. The run loop waits for
    /// them, so this is also how long consumption paused.
    pub(crate) seconds: Histogram,
    /// Households on the lists made last.
    pub(crate) households: IntGauge,
    /// When lists were last written (seconds since the epoch): a morning
    /// that passes without lists shows as this falling a day behind.
    pub(crate) written_at: IntGauge,
    /// Daily list runs that failed (the log names the error).
    pub(crate) failures: IntCounter,
}

/// What the offices did and what is still open.
#[derive(Clone)]
pub struct CaseMetrics {
    /// Outcomes recorded per kind.
    pub(crate) outcomes: IntCounterVec,
    /// Escalations to the city team per reason.
    pub(crate) escalations: IntCounterVec,
    /// Households waiting for someone to reach them, per dong, priority
    /// and status.
    pub open_households: IntGaugeVec,
    /// Of which past their due time, per dong.
    pub overdue_households: IntGaugeVec,
    /// Households nobody could reach, per dong.
    pub unreachable_households: IntGaugeVec,
    /// From an alert's `emitted_at` to its first reach, per priority.
    pub first_contact: HistogramVec,
    /// Failed attempts before an alert's first reach, per priority.
    pub attempts_per_reach: HistogramVec,
    /// Signals of households recorded deceased: counted, never alerted.
    pub(crate) deceased_signals: IntCounter,
    /// Alerts whose answer window closed, per priority and what the office
    /// found (the yield of the rules; every instance counts them all).
    pub(crate) rule_yield: IntGaugeVec,
}

/// Registers metrics in one registry as they are made.
struct Reg<'a>(&'a Registry);

impl Reg<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, m: M) -> M {
        self.0
            .register(Box::new(m.clone()))
            .expect("metric registered once");
        m
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("valid metric"))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.add(Histogram::with_opts(opts).expect("valid metric"))
    }

    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.add(HistogramVec::new(opts, labels).expect("valid metric"))
    }
}

impl Metrics {
    /// Registers every metric, with the label values known up front (feeds,
    /// reject classes, outcome kinds, escalation reasons) created at zero
    /// so dashboards see them from the start.
    pub fn new(spec: &PipelineSpec) -> Self {
        let registry = Registry::new();
        // the process itself, for the on-call: resident memory, open files,
        // CPU seconds, start time (Linux; elsewhere the collector is empty)
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let r = Reg(&registry);
        let m = Metrics {
            received: r.counter_vec("sagak_signals_received_total", "Messages received per feed.", &["feed"]),
            rejected: r.counter_vec(
                "sagak_signals_rejected_total",
                "Messages sent to the dead-letter topic, per reason class.",
                &["reason"],
            ),
            duplicates: r.counter("sagak_signals_duplicate_total", "Re-sent events counted once."),
            dropped_over_cap: r.counter(
                "sagak_signals_dropped_over_cap_total",
                "Oldest signals dropped because a household reached its bound of live signals.",
            ),
            alerts: r.counter_vec("sagak_alerts_emitted_total", "Alerts sent per priority and dong.", &["priority", "dong"]),
            suppressed: r.counter("sagak_alerts_suppressed_total", "Alerts held back by the cooldown."),
            households: r.gauge("sagak_households_tracked", "Households with live signals."),
            watermark: r.gauge_vec(
                "sagak_watermark_timestamp_seconds",
                "Watermark per feed and input partition (event time), seconds since the epoch.",
                &["feed", "partition"],
            ),
            dlq_writes: r.counter("sagak_dlq_writes_total", "Messages written to the dead-letter topic."),
            batch_size: r.histogram(
                "sagak_batch_messages",
                "Messages per micro-batch.",
                vec![1.0, 10.0, 100.0, 1000.0, 5000.0, 10000.0, 50000.0],
            ),
            batch_seconds: r.histogram(
                "sagak_batch_processing_seconds",
                "Time to process one micro-batch, decode to alert decisions.",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
            feed_received_at: r.gauge_vec(
                "sagak_feed_last_received_timestamp_seconds",
                "When each feed last sent a message, seconds since the epoch (by the driver's clock).",
                &["feed"],
            ),
            feed_expected_gap: r.gauge_vec(
                "sagak_feed_expected_gap_seconds",
                "The longest quiet spell that is normal for each feed (expected_gap in the pipeline definition).",
                &["feed"],
            ),
            kafka_errors: r.counter("sagak_kafka_errors_total", "Errors reported by the Kafka client."),
            consumer_lag: r.gauge_vec(
                "sagak_consumer_lag_messages",
                "Messages not yet consumed, per input topic and partition.",
                &["topic", "partition"],
            ),
            event_to_alert: r.histogram(
                "sagak_event_to_alert_seconds",
                "From the broker timestamp of the signal that completed an alert to the alert acknowledged by the broker.",
                vec![0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
            ),
            ready: r.gauge("sagak_ready", "1 while the pipeline is ready (see /readyz)."),
            checkpoints: CheckpointMetrics::new(&r),
            lists: ListMetrics::new(&r),
            case: CaseMetrics::new(&r),
            registry: registry.clone(),
        };
        m.prime(&r, spec);
        m
    }

    /// Label values known up front, at zero; the build and the feeds'
    /// declared gaps.
    fn prime(&self, r: &Reg<'_>, spec: &PipelineSpec) {
        for f in &spec.feeds {
            self.received.with_label_values(&[f.name.as_str()]);
            if let Some(gap) = f.expected_gap {
                self.feed_expected_gap
                    .with_label_values(&[f.name.as_str()])
                    .set(i64::try_from(gap.as_secs()).unwrap_or(i64::MAX));
            }
        }
        for c in RejectClass::ALL {
            self.rejected.with_label_values(&[c.as_str()]);
        }
        for k in crate::stages::case::outcome::OutcomeKind::ALL {
            self.case.outcomes.with_label_values(&[k.as_str()]);
        }
        for e in crate::stages::case::escalation::EscalationReason::ALL {
            self.case.escalations.with_label_values(&[e.as_str()]);
        }
        let build = r.gauge_vec(
            "sagak_build_info",
            "Version of sagak and of the pipeline it runs; always 1.",
            &["version", "pipeline", "pipeline_version"],
        );
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                spec.name.as_str(),
                spec.version.as_str(),
            ])
            .set(1);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl CheckpointMetrics {
    fn new(r: &Reg<'_>) -> Self {
        CheckpointMetrics {
            pause_seconds: r.histogram(
                "sagak_checkpoint_pause_seconds",
                "Time the run loop stops for a checkpoint: evicting expired state and copying the records to write.",
                vec![0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            write_seconds: r.histogram(
                "sagak_checkpoint_write_seconds",
                "Time a state snapshot takes to reach the disk, written beside the run loop.",
                vec![0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
            ),
            skipped: r.counter(
                "sagak_checkpoints_skipped_total",
                "Checkpoint ticks skipped because the previous snapshot was still being written.",
            ),
            written_at: r.gauge(
                "sagak_checkpoint_written_timestamp_seconds",
                "When a state snapshot last reached the disk, seconds since the epoch.",
            ),
            fenced: r.counter(
                "sagak_checkpoint_writes_fenced_total",
                "State snapshots refused by the store because another instance owns their partitions now.",
            ),
        }
    }
}

impl ListMetrics {
    fn new(r: &Reg<'_>) -> Self {
        ListMetrics {
            seconds: r.histogram(
                "sagak_daily_lists_seconds",
                "Time to make the daily lists at a cut-off; consumption waits for them.",
                vec![1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0],
            ),
            households: r.gauge(
                "sagak_daily_lists_households",
                "Households on the daily lists made last.",
            ),
            written_at: r.gauge(
                "sagak_daily_lists_written_timestamp_seconds",
                "When daily lists were last written, seconds since the epoch.",
            ),
            failures: r.counter(
                "sagak_daily_lists_failures_total",
                "Daily list runs that failed; the log names the error.",
            ),
        }
    }
}

impl CaseMetrics {
    fn new(r: &Reg<'_>) -> Self {
        let days: Vec<f64> = [
            0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 14.0, 21.0, 30.0, 60.0,
        ]
        .iter()
        .map(|d| d * 86_400.0)
        .collect();
        CaseMetrics {
            outcomes: r.counter_vec(
                "sagak_outcomes_total",
                "Outcomes recorded by the dong offices, per kind (re-sends counted once).",
                &["kind"],
            ),
            escalations: r.counter_vec(
                "sagak_escalations_total",
                "Escalations sent to the city team, per reason.",
                &["reason"],
            ),
            open_households: r.gauge_vec(
                "sagak_open_households",
                "Households waiting for someone to reach them (an open alert, failed attempts, or unreachable), per dong, priority and status.",
                &["dong", "priority", "status"],
            ),
            overdue_households: r.gauge_vec(
                "sagak_overdue_households",
                "Open households whose first reach is past due, per dong.",
                &["dong"],
            ),
            unreachable_households: r.gauge_vec(
                "sagak_unreachable_households",
                "Households nobody could reach (a residence check is needed), per dong.",
                &["dong"],
            ),
            first_contact: r.histogram_vec(
                "sagak_alert_first_reach_seconds",
                "From an alert's emitted_at to the recorded_at of its first reach (someone of the household reached; failed attempts do not count), per priority.",
                days,
                &["priority"],
            ),
            attempts_per_reach: r.histogram_vec(
                "sagak_attempts_before_reach",
                "Failed contact attempts before an alert's first reach, per priority.",
                vec![0.0, 1.0, 2.0, 3.0, 5.0, 8.0],
                &["priority"],
            ),
            deceased_signals: r.counter(
                "sagak_signals_deceased_total",
                "Signals of households recorded deceased: counted, never alerted.",
            ),
            rule_yield: r.gauge_vec(
                "sagak_rule_yield_alerts",
                "Alerts whose answer window closed, per priority and result (helped, reached, not_applicable:<reason>, declined, unreachable, no_outcome). Every instance of a group counts every alert: take max, not sum.",
                &["priority", "result"],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the on-call reads of the process itself, beside the pipeline's.
    #[test]
    fn the_process_reports_its_memory_files_cpu_and_start() {
        let spec = crate::testkit::default_spec();
        let text = Metrics::new(&spec).render();
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds_total",
            "process_start_time_seconds",
        ] {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse::<f64>()))
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
                .expect("a number");
            // CPU time counts whole seconds: a young test process has none
            let least = if name == "process_cpu_seconds_total" {
                0.0
            } else {
                1.0
            };
            assert!(value >= least, "{name} = {value}");
        }
    }
}
