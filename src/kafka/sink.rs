//! Kafka output: alerts to the dong-office topic, escalations to the city
//! team's topic, rejects to the dead-letter topic, with the idempotent producer, waiting for the broker's
//! acknowledgement of every message before the batch counts as done.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::base::ids::redact_rrn;
use crate::base::message::InputMessage;
use crate::config::KafkaSettings;
use crate::kafka::client_config;
use crate::metrics::Metrics;
use crate::stages::alert::Alert;
use crate::stages::case::escalation::Escalation;
use crate::stages::decode::Reject;

/// Dead-letter header names.
pub(crate) mod headers {
    /// Reject class, e.g. `late`.
    pub(crate) const CLASS: &str = "sagak.error.class";
    /// Human-readable reason.
    pub(crate) const REASON: &str = "sagak.error.reason";
    /// Topic the message was read from.
    pub(crate) const TOPIC: &str = "sagak.source.topic";
    /// Its partition (decimal text).
    pub(crate) const PARTITION: &str = "sagak.source.partition";
    /// Its offset (decimal text).
    pub(crate) const OFFSET: &str = "sagak.source.offset";
    /// Present (value `rrn`) when digits of a resident registration number
    /// were masked in the key or value.
    pub(crate) const REDACTED: &str = "sagak.redacted";
}

/// `value` as JSON to `topic`, keyed by `dong_code` (alerts, escalations).
fn json_message(topic: &str, dong_code: &str, value: &impl serde::Serialize) -> Option<Outgoing> {
    match serde_json::to_vec(value) {
        Ok(payload) => Some(Outgoing {
            topic: topic.to_string(),
            key: Some(dong_code.as_bytes().to_vec()),
            payload,
            headers: Vec::new(),
        }),
        Err(e) => {
            tracing::error!(topic, error = %e, "cannot encode a message as JSON; this is a bug");
            None
        }
    }
}

/// The producer's librdkafka configuration, exactly as [`KafkaSink::new`]
/// uses it (and `sagak check-config` checks it).
pub(crate) fn producer_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "none");
    for (k, v) in client_config(kafka, &kafka.producer).config_map() {
        cfg.set(k, v);
    }
    cfg
}

/// The topics a [`KafkaSink`] writes to.
#[derive(Debug, Clone)]
pub(crate) struct SinkTopics {
    /// Alerts (key: dong code).
    pub(crate) alerts: String,
    /// Escalations to the city team (key: dong code).
    pub(crate) escalations: String,
    /// Dead letters.
    pub(crate) dlq: String,
}

/// Sends alerts, escalations and dead letters.
pub(crate) struct KafkaSink {
    producer: FutureProducer,
    topics: SinkTopics,
    metrics: Metrics,
}

struct Outgoing {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl KafkaSink {
    /// The idempotent producer for `kafka`, writing to the given topics.
    pub(crate) fn new(
        kafka: &KafkaSettings,
        topics: SinkTopics,
        metrics: Metrics,
    ) -> Result<Self, KafkaError> {
        Ok(KafkaSink {
            producer: producer_config(kafka).create()?,
            topics,
            metrics,
        })
    }

    /// Sends every alert and every reject of a batch and returns once the
    /// broker acknowledged all of them. A failed delivery is retried with
    /// back-off until it succeeds, so nothing is lost while the broker is
    /// away (and input is not consumed meanwhile: back-pressure).
    pub(crate) async fn deliver(
        &self,
        alerts: &[Alert],
        escalations: &[Escalation],
        rejects: &[(usize, Reject)],
        msgs: &[InputMessage],
    ) {
        let mut out: Vec<Outgoing> =
            Vec::with_capacity(alerts.len() + escalations.len() + rejects.len());
        for e in escalations {
            out.extend(json_message(&self.topics.escalations, &e.dong_code, e));
        }
        for a in alerts {
            out.extend(json_message(&self.topics.alerts, &a.dong_code, a));
        }
        for (i, reject) in rejects {
            if let Some(m) = msgs.get(*i) {
                out.push(self.dead_letter(m, reject));
            }
        }
        let dead_letters = rejects.len() as u64;
        let mut pending = out;
        let mut backoff = Duration::from_millis(100);
        while !pending.is_empty() {
            let results = join_all(pending.iter().map(|o| {
                let mut hs = OwnedHeaders::new_with_capacity(o.headers.len());
                for (k, v) in &o.headers {
                    hs = hs.insert(Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
                let mut record = FutureRecord::to(&o.topic).payload(&o.payload).headers(hs);
                if let Some(key) = &o.key {
                    record = record.key(key);
                }
                self.producer.send(record, Timeout::Never)
            }))
            .await;
            let mut failed = Vec::new();
            for (o, r) in pending.into_iter().zip(results) {
                if let Err((e, _)) = r {
                    self.metrics.kafka_errors.inc();
                    tracing::warn!(topic = %o.topic, error = %e, "delivery failed; retrying");
                    failed.push(o);
                }
            }
            if !failed.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            pending = failed;
        }
        self.metrics.dlq_writes.inc_by(dead_letters);
    }

    fn dead_letter(&self, m: &InputMessage, reject: &Reject) -> Outgoing {
        let payload = m.payload.clone().unwrap_or_default();
        // The original bytes go to the dead-letter topic unchanged, except
        // that digits of anything shaped like a resident registration number
        // are masked: such a number must never be stored.
        let red_key = m.key.as_deref().and_then(redact_rrn);
        let red_payload = redact_rrn(&payload);
        let mut headers = vec![
            (headers::CLASS, reject.class.as_str().to_string()),
            (headers::REASON, reject.reason.clone()),
            (headers::TOPIC, m.topic.to_string()),
            (headers::PARTITION, m.partition.to_string()),
            (headers::OFFSET, m.offset.to_string()),
        ];
        if red_key.is_some() || red_payload.is_some() {
            headers.push((headers::REDACTED, "rrn".to_string()));
        }
        Outgoing {
            topic: self.topics.dlq.clone(),
            key: red_key.or_else(|| m.key.clone()),
            payload: red_payload.unwrap_or(payload),
            headers,
        }
    }

    /// Reaches the brokers that lead the output topics before the first
    /// batch, so the first alerts of a run do not also wait for a
    /// connection and the topics' metadata. Not fatal: delivery retries
    /// until the broker answers.
    pub(crate) async fn connect(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        let producer = self.producer.clone();
        let topics = [
            self.topics.alerts.clone(),
            self.topics.escalations.clone(),
            self.topics.dlq.clone(),
        ];
        // a metadata request blocks its thread
        let asked = tokio::task::spawn_blocking(move || {
            for topic in &topics {
                if let Err(e) = producer.client().fetch_metadata(Some(topic), timeout) {
                    tracing::warn!(%topic, error = %e, "output topic not reachable yet; the first batches will wait for it");
                }
            }
        });
        let _ = asked.await;
    }

    /// Waits until queued messages are delivered, up to `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not finish");
        }
    }
}
