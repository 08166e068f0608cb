//! Kafka: where `sagak run` reads signals and writes alerts and dead
//! letters, and how the partitions (and their state) are shared between the
//! instances of a consumer group.
//!
//! * [`source`]: the consumer; [`sink`]: the idempotent producer;
//! * [`ownership`]: which partitions this instance owns and the state
//!   hand-over on a rebalance; [`offsets`]: where each partition resumes.

pub(crate) mod offsets;
pub(crate) mod open_work;
pub mod outcomes;
pub(crate) mod ownership;
pub(crate) mod sink;
pub(crate) mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaSettings;

/// Builds the consumer and the producer exactly as `sagak run` does, so a
/// property librdkafka refuses (a misspelt key, a value it does not know, a
/// protocol this build lacks) stops `sagak check-config` with librdkafka's
/// message, which names the property. Connects to nothing.
pub fn check_clients(kafka: &KafkaSettings) -> Result<(), KafkaError> {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::BaseProducer;
    let _: BaseConsumer = source::consumer_config(kafka).create()?;
    let _: BaseProducer = sink::producer_config(kafka).create()?;
    Ok(())
}

/// Why the brokers refused sagak at start-up: its TLS or SASL settings do
/// not match the cluster's (a certificate from another CA, a wrong
/// password). A broker that is merely down is not this: sagak waits for it.
#[derive(Debug, thiserror::Error)]
#[error("the brokers refused the connection: {reason}. Check `ssl.ca.location` (the CA that signed the brokers' certificates), the client certificate and the SASL settings under [kafka.properties]")]
pub struct Refused {
    /// librdkafka's own words.
    pub(crate) reason: String,
}

/// Collects librdkafka's TLS and authentication errors while probing.
#[derive(Default)]
struct ProbeContext {
    refusal: std::sync::Mutex<Option<String>>,
}

impl ProbeContext {
    fn note(&self, reason: &str) {
        if let Ok(mut r) = self.refusal.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
    }
}

/// Words of librdkafka's that mean the settings, not the network, failed.
const REFUSALS: [&str; 3] = [
    "SSL handshake failed",
    "certificate verify failed",
    "SASL authentication",
];

impl rdkafka::client::ClientContext for ProbeContext {
    // librdkafka logs a failed handshake from its own threads as it happens
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, message: &str) {
        if REFUSALS.iter().any(|words| message.contains(words)) {
            self.note(message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        use rdkafka::types::RDKafkaErrorCode as Code;
        // a failed certificate check arrives as a transport error whose
        // reason names TLS; a bad password as an authentication error
        let refused = matches!(
            error.rdkafka_error_code(),
            Some(Code::SSL | Code::Authentication)
        ) || REFUSALS.iter().any(|words| reason.contains(words));
        if refused {
            self.note(reason);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ProbeContext {}

/// Asks the brokers for their metadata with the consumer's settings, for
/// up to `timeout`, and reports a TLS or authentication refusal (the
/// settings are wrong: `sagak run` stops with exit 78). Brokers that do
/// not answer at all are not an error here.
pub(crate) fn probe(kafka: &KafkaSettings, timeout: Duration) -> Result<(), Refused> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let context = ProbeContext::default();
    let created: Result<BaseConsumer<ProbeContext>, _> =
        source::consumer_config(kafka).create_with_context(context);
    let Ok(consumer) = created else {
        // check-config reports settings librdkafka refuses; `run` does too
        return Ok(());
    };
    let answered = consumer.fetch_metadata(None, timeout).is_ok();
    // error events are served by polling
    let _ = consumer.poll(Duration::from_millis(100));
    let refusal = consumer
        .context()
        .refusal
        .lock()
        .ok()
        .and_then(|mut r| r.take());
    match refusal {
        Some(reason) if !answered => Err(Refused { reason }),
        _ => Ok(()),
    }
}

/// librdkafka configuration shared by consumer, producer and admin client.
pub(crate) fn client_config(
    kafka: &KafkaSettings,
    extra: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in kafka.properties.iter().chain(extra) {
        cfg.set(k, v);
    }
    cfg
}

/// Creates `topic` compacted (the newest record per key is kept) with
/// `partitions` partitions, unless it exists.
pub async fn create_compacted(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: usize,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka, &BTreeMap::new()).create()?;
    let count = i32::try_from(partitions).unwrap_or(i32::MAX);
    let new =
        NewTopic::new(topic, count, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new], &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// Creates the topics that do not exist yet. An existing topic is fine.
pub async fn create_topics(kafka: &KafkaSettings, topics: &[String]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka, &BTreeMap::new()).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, kafka.partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(new.iter(), &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| tracing::error!(%topic, ?code, "cannot create topic"));
            }
        }
    }
    Ok(())
}
