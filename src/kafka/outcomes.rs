//! Publishing the outcomes recorded on the offices' pages to the outcomes
//! topic, keyed by household like the agencies' signals, so the pipeline
//! reads them as it reads any office's outcome.

use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::sink::producer_config;
use crate::config::KafkaSettings;
use rdkafka::error::KafkaError;

/// The web front's producer of outcomes.
pub struct OutcomeProducer {
    producer: FutureProducer,
    topic: String,
}

impl OutcomeProducer {
    /// An idempotent producer for `topic`.
    pub fn new(kafka: &KafkaSettings, topic: &str) -> Result<Self, KafkaError> {
        Ok(OutcomeProducer {
            producer: producer_config(kafka).create()?,
            topic: topic.into(),
        })
    }
}

impl crate::web::OutcomePublisher for OutcomeProducer {
    fn publish<'a>(
        &'a self,
        household_id: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let record = FutureRecord::to(&self.topic)
                .key(household_id.as_bytes())
                .payload(&value);
            // the person waits for the broker's acknowledgement: an outcome
            // the page says was recorded is on the topic
            self.producer
                .send(record, Duration::from_secs(10))
                .await
                .map(|_| ())
                .map_err(|(e, _)| format!("{} did not take the outcome: {e}", self.topic))
        })
    }
}
