//! Kafka: where `sagak run` reads signals and writes alerts and dead
//! letters, and how the partitions (and their state) are shared between the
//! instances of a consumer group.
//!
//! * [`source`]: the consumer; [`sink`]: the idempotent producer;
//! * [`ownership`]: which partitions this instance owns and the state
//!   hand-over on a rebalance; [`offsets`]: where each partition resumes.

pub mod offsets;
pub mod ownership;
pub mod sink;
pub mod source;

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

/// librdkafka configuration shared by consumer, producer and admin client.
pub fn client_config(kafka: &KafkaSettings, extra: &BTreeMap<String, String>) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in kafka.properties.iter().chain(extra) {
        cfg.set(k, v);
    }
    cfg
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
