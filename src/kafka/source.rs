//! Kafka input: the consumer, its statistics and rebalance callbacks, and
//! the conversion of its messages into [`InputMessage`]s.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntGaugeVec;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

use crate::base::message::InputMessage;
use crate::config::KafkaSettings;
use crate::kafka::client_config;
use crate::kafka::ownership::Ownership;

/// The consumer's context: turns librdkafka's statistics into the lag
/// gauge and a broker-reachable flag for readiness, and hands partitions
/// over with their state on a rebalance.
pub(crate) struct SourceContext {
    lag: IntGaugeVec,
    broker_up: AtomicBool,
    ownership: Arc<Ownership>,
    /// Partitions whose every message the consumer has handed over, as of
    /// librdkafka's last statistics.
    at_end: Mutex<HashSet<(String, i32)>>,
}

impl SourceContext {
    /// True when librdkafka's last statistics saw a broker in state UP.
    pub(crate) fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    /// True when librdkafka's last statistics saw the consumer at the end of
    /// `topic`'s `partition`: nothing left to fetch and nothing fetched
    /// waiting to be handed over.
    pub(crate) fn at_end(&self, topic: &str, partition: i32) -> bool {
        self.at_end
            .lock()
            .is_ok_and(|set| set.contains(&(topic.to_string(), partition)))
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, stats: Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.broker_up.store(up, Ordering::Relaxed);
        let mut at_end = HashSet::new();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0
                    && p.hi_offset >= 0
                    && p.next_offset >= p.hi_offset
                    && p.fetchq_cnt == 0
                {
                    at_end.insert((topic.clone(), *partition));
                }
                // -1 is librdkafka's internal UA partition; lag -1 = unknown
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
        if let Ok(mut set) = self.at_end.lock() {
            *set = at_end;
        }
    }
}

impl ConsumerContext for SourceContext {
    // Replaces rdkafka's default so that each assigned partition starts
    // where its state ends (see `Ownership::on_assign`) instead of at the
    // group's committed offset. Eager protocol only: `Settings::validate`
    // refuses the cooperative ones.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.ownership.on_assign(tpl);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                consumer.assign(tpl)
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(error = ?other, "rebalance error; giving up the assignment");
                }
                self.ownership.on_revoke();
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not apply the new assignment");
        }
    }
}

/// The Kafka consumer sagak uses.
pub(crate) type SourceConsumer = StreamConsumer<SourceContext>;

/// Creates the consumer: manual offset commits only (sagak commits after a
/// checkpoint); each assigned partition starts where `ownership` says.
/// Consumer lag (relative to the last commit) goes to `lag` every 5 s.
pub(crate) fn consumer(
    kafka: &KafkaSettings,
    lag: IntGaugeVec,
    ownership: Arc<Ownership>,
) -> Result<SourceConsumer, KafkaError> {
    consumer_config(kafka).create_with_context(SourceContext {
        lag,
        broker_up: AtomicBool::new(true),
        ownership,
        at_end: Mutex::new(HashSet::new()),
    })
}

/// The consumer's librdkafka configuration, exactly as [`consumer`] uses it
/// (and `sagak check-config` checks it).
pub(crate) fn consumer_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("group.id", &kafka.group_id)
        .set("statistics.interval.ms", "5000")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // A broker may hold a fetch for the whole wait even when data is
        // there (seen with tansu); 50 ms bounds what that adds to an
        // alert's latency. librdkafka's default is 500 ms.
        .set("fetch.wait.max.ms", "50");
    for (k, v) in client_config(kafka, &kafka.consumer).config_map() {
        cfg.set(k, v);
    }
    cfg
}

/// Maps topics to feed indexes.
pub(crate) struct TopicFeeds {
    by_topic: HashMap<String, (u16, Arc<str>)>,
}

impl TopicFeeds {
    /// `topics[i]` is the input topic of feed `i`.
    pub(crate) fn new(topics: &[String]) -> Self {
        TopicFeeds {
            by_topic: topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), (i as u16, Arc::from(t.as_str()))))
                .collect(),
        }
    }

    /// Copies a consumed message into an [`InputMessage`].
    pub(crate) fn input(&self, m: &BorrowedMessage<'_>) -> InputMessage {
        let (feed, topic) = match self.by_topic.get(m.topic()) {
            Some((feed, topic)) => (Some(*feed), Arc::clone(topic)),
            None => (None, Arc::from(m.topic())),
        };
        InputMessage {
            feed,
            topic,
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            timestamp_ms: m.timestamp().to_millis(),
            source_file: None,
        }
    }
}
