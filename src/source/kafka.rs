//! Kafka input: client configuration, topic creation, the consumer and the
//! conversion of its messages into [`InputMessage`]s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntGaugeVec;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use crate::checkpoint::PartitionOffset;
use crate::config::KafkaSettings;
use crate::engine::InputMessage;
use crate::source::ownership::Ownership;

/// librdkafka configuration shared by consumer, producer and admin client.
pub fn client_config(kafka: &KafkaSettings, extra: &BTreeMap<String, String>) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in kafka.properties.iter().chain(extra) {
        cfg.set(k, v);
    }
    cfg
}

/// The consumer's context: turns librdkafka's statistics into the lag
/// gauge and a broker-reachable flag for readiness, and hands partitions
/// over with their state on a rebalance.
pub struct SourceContext {
    lag: IntGaugeVec,
    broker_up: AtomicBool,
    ownership: Arc<Ownership>,
}

impl SourceContext {
    /// True when librdkafka's last statistics saw a broker in state UP.
    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, stats: Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.broker_up.store(up, Ordering::Relaxed);
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal UA partition; lag -1 = unknown
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
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
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// Creates the consumer: manual offset commits only (sagak commits after a
/// checkpoint); each assigned partition starts where `ownership` says.
/// Consumer lag (relative to the last commit) goes to `lag` every 5 s.
pub fn consumer(
    kafka: &KafkaSettings,
    lag: IntGaugeVec,
    ownership: Arc<Ownership>,
) -> Result<SourceConsumer, KafkaError> {
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
    cfg.create_with_context(SourceContext {
        lag,
        broker_up: AtomicBool::new(true),
        ownership,
    })
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

/// Maps topics to feed indexes.
pub struct TopicFeeds {
    by_topic: HashMap<String, u16>,
}

impl TopicFeeds {
    /// `topics[i]` is the input topic of feed `i`.
    pub fn new(topics: &[String]) -> Self {
        TopicFeeds {
            by_topic: topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i as u16))
                .collect(),
        }
    }

    /// Copies a consumed message into an [`InputMessage`].
    pub fn input(&self, m: &BorrowedMessage<'_>) -> InputMessage {
        InputMessage {
            feed: self.by_topic.get(m.topic()).copied(),
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            timestamp_ms: m.timestamp().to_millis(),
        }
    }
}

/// Next offsets to read, per topic and partition, of processed input.
#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    next: BTreeMap<(String, i32), i64>,
}

impl OffsetTracker {
    /// Starts from a snapshot's offsets.
    pub fn from_snapshot(offsets: &[PartitionOffset]) -> Self {
        OffsetTracker {
            next: offsets
                .iter()
                .map(|o| ((o.topic.clone(), o.partition), o.next_offset))
                .collect(),
        }
    }

    /// Adds a snapshot's offsets; a partition already tracked keeps the
    /// further of the two.
    pub fn merge(&mut self, offsets: &[PartitionOffset]) {
        for o in offsets {
            let next = self
                .next
                .entry((o.topic.clone(), o.partition))
                .or_insert(o.next_offset);
            *next = (*next).max(o.next_offset);
        }
    }

    /// Forgets every topic's partition number `partition`.
    pub fn forget(&mut self, partition: i32) {
        self.next.retain(|(_, p), _| *p != partition);
    }

    /// Next offset to read of one partition, if any input of it was taken.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next.get(&(topic.to_string(), partition)).copied()
    }

    /// Marks every message of a delivered batch as processed.
    pub fn advance(&mut self, msgs: &[InputMessage]) {
        for m in msgs {
            let next = self.next.entry((m.topic.clone(), m.partition)).or_insert(0);
            *next = (*next).max(m.offset + 1);
        }
    }

    /// The offsets, for a snapshot.
    pub fn snapshot(&self) -> Vec<PartitionOffset> {
        self.next
            .iter()
            .map(|((topic, partition), &next_offset)| PartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                next_offset,
            })
            .collect()
    }

    /// Commits the offsets for the consumer's group.
    pub fn commit(&self, consumer: &SourceConsumer, mode: CommitMode) -> Result<(), KafkaError> {
        if self.next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), &next) in &self.next {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(next))?;
        }
        consumer.commit(&tpl, mode)
    }
}
