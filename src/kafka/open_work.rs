//! The households' open work, shared by every instance through one
//! compacted topic (`topics.open_work`), as Kafka Streams shares a global
//! table: each partition's owner publishes the entries of its households
//! after each batch (and its whole board now and then), and every instance
//! reads the topic to the end into the board its pages read. So an office's
//! queue is the same on every instance and survives the loss of any one.
//!
//! The topic is partitioned like the inputs: a household's entry goes to
//! the partition number of its state shard, so everything one owner writes
//! of a shard is in one log, in order. Each record carries the epoch of the
//! owner's claim on the shard (`crate::checkpoint::fence`); after publishing
//! its whole board an owner writes a claim marker (key [`CLAIM_KEY`]) that
//! tells readers to forget the entries of earlier epochs it did not
//! publish again. A reader ignores an entry from an epoch older than the
//! newest it has seen for the shard, so an instance that was paused and
//! lost its partitions cannot put back what its successor changed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::KafkaSettings;
use crate::kafka::ownership::Ownership;
use crate::ops::work::{Entry, OutcomeDetail, WorkBoard, WorkSink};

/// The key of a shard's claim marker (no household id starts with `#`).
pub(crate) const CLAIM_KEY: &str = "#claim";
/// Header of a removal (a null value): the shard, decimal text.
const PARTITION: &str = "sagak.partition";
/// Header of a removal: the epoch of its writer's claim, decimal text.
const EPOCH: &str = "sagak.epoch";

/// One record's value: a household's entry, or a claim marker.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Wire {
    /// Format version (1).
    v: u8,
    /// The state shard (input partition) it belongs to.
    partition: i32,
    /// The epoch of its writer's claim on that shard.
    epoch: u64,
    /// A claim marker: entries of older epochs not written again are gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    claim: bool,
    /// The case record as the engine holds it (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    /// Score of its newest alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    /// Reasons of that alert: [Korean, English].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<[String; 2]>,
    /// Ids, staff and notes of its outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outcomes: Vec<OutcomeDetail>,
}

impl Wire {
    /// A claim marker of `shard` under `epoch`.
    fn claim(shard: i32, epoch: u64) -> Wire {
        Wire {
            v: 1,
            partition: shard,
            epoch,
            claim: true,
            record: None,
            score: None,
            reasons: Vec::new(),
            outcomes: Vec::new(),
        }
    }
}

fn encode(entry: &Entry, epoch: u64) -> Vec<u8> {
    let wire = Wire {
        v: 1,
        partition: entry.shard(),
        epoch,
        claim: false,
        record: Some(base64::engine::general_purpose::STANDARD.encode(&entry.record)),
        score: entry.score,
        reasons: entry
            .reasons
            .iter()
            .map(|(ko, en)| [ko.clone(), en.clone()])
            .collect(),
        outcomes: entry.details.clone(),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

fn decode_entry(wire: Wire) -> Option<Entry> {
    let record = base64::engine::general_purpose::STANDARD
        .decode(wire.record?)
        .ok()?;
    crate::stages::case::record::CaseRecord::decode(&record)?;
    let mut details = wire.outcomes;
    for d in &mut details {
        // the record knows its outcomes by this hash of their id
        d.key = crate::stages::case::rules::outcome_key(&d.outcome_id);
    }
    Some(Entry {
        record: Arc::from(record),
        score: wire.score,
        reasons: wire.reasons.into_iter().map(|[ko, en]| (ko, en)).collect(),
        details,
    })
}

/// Notes a lost delivery: the next whole publication sends everything.
struct Delivery {
    lost: Arc<AtomicBool>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "an open-work record was not delivered; the next full pass sends every entry again");
            self.lost.store(true, Ordering::Relaxed);
        }
    }
}

/// A partition owner's side: publishes what changed on its own board.
pub(crate) struct Publisher {
    producer: ThreadedProducer<Delivery>,
    topic: String,
    ownership: Arc<Ownership>,
    /// The board every instance reads (its stale entries are removed).
    shared: Arc<crate::ops::OpsState>,
    lost: Arc<AtomicBool>,
    /// Each household published: its shard and a hash of its value.
    published: HashMap<String, (i32, u64)>,
    /// The epoch of the claim marker published per shard.
    claimed: HashMap<i32, u64>,
}

impl Publisher {
    /// A publisher to `topic` under the claims of `ownership`.
    pub(crate) fn new(
        kafka: &KafkaSettings,
        topic: &str,
        ownership: Arc<Ownership>,
        shared: Arc<crate::ops::OpsState>,
    ) -> Result<Self, KafkaError> {
        let lost = Arc::new(AtomicBool::new(false));
        // on the cluster the readers read (`kafka.brokers`), even when the
        // alerts go to another (`kafka.producer."bootstrap.servers"`)
        let producer = crate::kafka::sink::producer_config(kafka)
            .set("bootstrap.servers", &kafka.brokers)
            .create_with_context(Delivery { lost: lost.clone() })?;
        Ok(Publisher {
            producer,
            topic: topic.to_string(),
            ownership,
            shared,
            lost,
            published: HashMap::new(),
            claimed: HashMap::new(),
        })
    }

    fn send(&self, key: &str, shard: i32, payload: Option<&[u8]>, epoch: u64) {
        let mut record = BaseRecord::to(&self.topic).key(key).partition(shard);
        match payload {
            Some(p) => record = record.payload(p),
            None => {
                let (p, e) = (shard.to_string(), epoch.to_string());
                record = record.headers(
                    OwnedHeaders::new()
                        .insert(Header {
                            key: PARTITION,
                            value: Some(&p),
                        })
                        .insert(Header {
                            key: EPOCH,
                            value: Some(&e),
                        }),
                );
            }
        }
        if let Err((e, _)) = self.producer.send(record) {
            tracing::warn!(error = %e, "an open-work record could not be queued; the next full pass sends every entry again");
            self.lost.store(true, Ordering::Relaxed);
        }
    }

    /// Sends `entry` of `household` if it changed since it was last sent.
    fn put(&mut self, household: String, entry: &Entry, epochs: &HashMap<i32, u64>) {
        let shard = entry.shard();
        let Some(&epoch) = epochs.get(&shard) else {
            // not this instance's shard (any more): its owner publishes it
            return;
        };
        let value = encode(entry, epoch);
        let hash = twox_hash::XxHash3_128::oneshot(&value) as u64 ^ epoch;
        if self.published.get(&household) != Some(&(shard, hash)) {
            self.send(&household, shard, Some(&value), epoch);
            self.published.insert(household, (shard, hash));
        }
    }

    fn remove(&self, household: &str, shard: i32, epochs: &HashMap<i32, u64>) {
        if let Some(&epoch) = epochs.get(&shard) {
            self.send(household, shard, None, epoch);
        }
    }

    fn epochs(&self) -> HashMap<i32, u64> {
        self.ownership.owned_epochs().into_iter().collect()
    }
}

impl WorkSink for Publisher {
    fn touched(&mut self, changes: Vec<(String, Option<Entry>)>) {
        let epochs = self.epochs();
        for (household, entry) in changes {
            match entry {
                Some(e) => self.put(household, &e, &epochs),
                None => {
                    if let Some((shard, _)) = self.published.remove(&household) {
                        self.remove(&household, shard, &epochs);
                    }
                }
            }
        }
    }

    fn whole(&mut self, entries: Vec<(String, Entry)>) {
        if self.lost.swap(false, Ordering::Relaxed) {
            self.published.clear();
        }
        let epochs = self.epochs();
        let mine: HashSet<String> = entries.iter().map(|(h, _)| h.clone()).collect();
        for (household, entry) in entries {
            self.put(household, &entry, &epochs);
        }
        let gone: Vec<(String, i32)> = self
            .published
            .iter()
            .filter(|(h, _)| !mine.contains(*h))
            .map(|(h, (shard, _))| (h.clone(), *shard))
            .collect();
        for (household, shard) in gone {
            self.published.remove(&household);
            self.remove(&household, shard, &epochs);
        }
        // what earlier owners of these shards left that this one does not
        // hold (a household whose record ended while it moved)
        let owned: HashSet<i32> = epochs.keys().copied().collect();
        for (household, shard) in self.shared.work.households_in(&owned) {
            if !mine.contains(&household) {
                self.remove(&household, shard, &epochs);
            }
        }
        for (&shard, &epoch) in &epochs {
            if self.claimed.get(&shard) != Some(&epoch) {
                self.claim(shard, epoch);
            }
        }
        self.claimed.retain(|s, _| owned.contains(s));
    }
}

impl Publisher {
    fn claim(&mut self, shard: i32, epoch: u64) {
        if let Ok(value) = serde_json::to_vec(&Wire::claim(shard, epoch)) {
            self.send(CLAIM_KEY, shard, Some(&value), epoch);
            self.claimed.insert(shard, epoch);
        }
    }
}

/// What a reader makes of the records it reads: the newest epoch seen per
/// shard, and where each household's entry came from.
#[derive(Default)]
pub(crate) struct Fold {
    epochs: HashMap<i32, u64>,
    origin: HashMap<String, (i32, u64)>,
    /// Records ignored: from an epoch older than the shard's newest.
    pub(crate) stale: u64,
    /// Records that could not be read.
    pub(crate) unreadable: u64,
}

impl Fold {
    /// Applies one record (`value` `None`: a removal, with its headers'
    /// shard and epoch) to `board`.
    pub(crate) fn apply(
        &mut self,
        board: &WorkBoard,
        key: &str,
        value: Option<&[u8]>,
        removal: Option<(i32, u64)>,
    ) {
        let Some(value) = value else {
            match removal {
                Some((shard, epoch)) if self.current(shard, epoch) => {
                    self.origin.remove(key);
                    board.apply(key, None);
                }
                Some(_) => self.stale += 1,
                None => self.unreadable += 1,
            }
            return;
        };
        let Ok(wire) = serde_json::from_slice::<Wire>(value) else {
            self.unreadable += 1;
            return;
        };
        let (shard, epoch) = (wire.partition, wire.epoch);
        if !self.current(shard, epoch) {
            self.stale += 1;
            return;
        }
        if wire.claim {
            self.forget_before(board, shard, epoch);
            return;
        }
        match decode_entry(wire) {
            Some(entry) => {
                self.origin.insert(key.to_string(), (shard, epoch));
                board.apply(key, Some(entry));
            }
            None => self.unreadable += 1,
        }
    }

    /// Whether a record of `epoch` on `shard` counts; raises the shard's
    /// newest epoch.
    fn current(&mut self, shard: i32, epoch: u64) -> bool {
        let newest = self.epochs.entry(shard).or_insert(epoch);
        if epoch < *newest {
            return false;
        }
        *newest = epoch;
        true
    }

    /// A claim marker: the shard's entries of older epochs were not
    /// published again by its owner, so they are gone.
    fn forget_before(&mut self, board: &WorkBoard, shard: i32, epoch: u64) {
        let gone: Vec<String> = self
            .origin
            .iter()
            .filter(|(_, (s, e))| *s == shard && *e < epoch)
            .map(|(h, _)| h.clone())
            .collect();
        for household in gone {
            self.origin.remove(&household);
            board.apply(&household, None);
        }
    }
}

/// The shard and epoch of a removal, from its headers.
fn removal_of<M: Message>(m: &M) -> Option<(i32, u64)> {
    let headers = m.headers()?;
    let text = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| std::str::from_utf8(h.value?).ok())
            .map(str::to_string)
    };
    Some((text(PARTITION)?.parse().ok()?, text(EPOCH)?.parse().ok()?))
}

/// Reads the open-work topic from its beginning into `ops.work`, the
/// escalations topic into the city's queue and the alerts topic into the
/// city's chart (`ops.live`: what the topics keep, the same on every
/// instance and after a restart), on a thread of its own, until the
/// process ends.
pub(crate) fn spawn_reader(
    kafka: &KafkaSettings,
    open_work: &str,
    (escalations, alerts, outcomes): (&str, &str, &str),
    ops: Arc<crate::ops::OpsState>,
) -> Result<std::thread::JoinHandle<()>, KafkaError> {
    let topics = [
        open_work.to_string(),
        escalations.to_string(),
        alerts.to_string(),
        outcomes.to_string(),
    ];
    // the city's topics are read where the readers read; on another
    // cluster (`kafka.producer."bootstrap.servers"`) this instance's own
    // escalations and alerts are what its city page shows
    let elsewhere = kafka
        .producer
        .get("bootstrap.servers")
        .is_some_and(|b| *b != kafka.brokers);
    if !elsewhere {
        ops.live.read_escalations();
        ops.live.read_alerts();
        ops.rule_yield.read_topics();
    }
    let mut cfg = crate::kafka::source::consumer_config(kafka);
    // assigned, never subscribed: the group id only names the client
    cfg.set("group.id", format!("{}.open-work", kafka.group_id))
        // the lag metric is the pipeline consumer's; this one logs none
        .set("statistics.interval.ms", "0");
    let consumer: BaseConsumer = cfg.create()?;
    let topics = match elsewhere {
        true => [
            topics[0].clone(),
            String::new(),
            String::new(),
            String::new(),
        ],
        false => topics,
    };
    std::thread::Builder::new()
        .name("open-work".into())
        .spawn(move || read(&consumer, &topics, &ops))
        .map_err(|e| KafkaError::ClientCreation(e.to_string()))
}

/// The reader's loop: `topics` are the open-work, the escalations, the
/// alerts and the outcomes topic.
fn read(consumer: &BaseConsumer, topics: &[String; 4], ops: &crate::ops::OpsState) {
    let mut behind: HashMap<(String, i32), i64> = assign_all(consumer, topics)
        .into_iter()
        .filter(|(_, end)| *end > 0)
        .collect();
    let mut fold = Fold::default();
    let mut caught_up = behind.is_empty();
    loop {
        let m = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "open-work reader");
                continue;
            }
        };
        if m.topic() == topics[0] {
            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                fold.apply(&ops.work, key, m.payload(), removal_of(&m));
            }
        } else if let Some(value) = m.payload() {
            if !city_read(ops, topics, &m, value) {
                fold.unreadable += 1;
            }
        }
        ops.rule_yield.advance(crate::base::clock::wall_clock_ms());
        let at = (m.topic().to_string(), m.partition());
        if behind.get(&at).is_some_and(|end| m.offset() + 1 >= *end) {
            behind.remove(&at);
        }
        if !caught_up && behind.is_empty() {
            caught_up = true;
            tracing::info!(
                households = ops.work.len(),
                stale = fold.stale,
                unreadable = fold.unreadable,
                "open work and escalations read to the end: every office's queue is served here"
            );
        }
    }
}

/// Takes in one message of the city's topics: an escalation, an alert (the
/// chart and the yield) or an outcome (the yield); false when unreadable.
fn city_read<M: Message>(
    ops: &crate::ops::OpsState,
    topics: &[String; 4],
    m: &M,
    value: &[u8],
) -> bool {
    if m.topic() == topics[1] {
        return ops.live.escalation_read(value);
    }
    if m.topic() == topics[2] {
        if let Some(a) = crate::ops::rule_yield::YieldAlert::from_wire(value) {
            ops.rule_yield.alert(a);
        }
        return ops.live.alert_read(value);
    }
    // an outcome the pipeline would refuse (a malformed one) says nothing
    let now = crate::base::clock::wall_clock_ms();
    match crate::stages::case::outcome::decode(m.key(), Some(value), now, i64::MAX / 4) {
        Ok(o) => {
            ops.rule_yield.recorded(&o);
            true
        }
        Err(_) => false,
    }
}

/// Assigns every partition of `topics` from its beginning (waiting for
/// each topic to exist); the end offset of each partition.
fn assign_all(consumer: &BaseConsumer, topics: &[String]) -> Vec<((String, i32), i64)> {
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for (i, topic) in topics.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        // the open-work topic is waited for; the others are read if there
        let mut tries = if i == 0 { usize::MAX } else { 10 };
        let partitions = loop {
            let found: Vec<i32> = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map(|md| {
                    md.topics()
                        .iter()
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect()
                })
                .unwrap_or_default();
            tries = tries.saturating_sub(1);
            if !found.is_empty() || tries == 0 {
                break found;
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        if partitions.is_empty() {
            tracing::warn!(%topic, "not found on kafka.brokers: the city page lacks what it holds until a restart finds it");
        }
        for p in partitions {
            let _ = tpl.add_partition_offset(topic, p, Offset::Beginning);
            let end = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(0, |(_, high)| high);
            ends.push(((topic.clone(), p), end));
        }
    }
    while let Err(e) = consumer.assign(&tpl) {
        tracing::warn!(error = %e, "open-work reader: cannot assign; retrying");
        std::thread::sleep(Duration::from_secs(1));
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::PipelineSpec;
    use crate::stages::case::record::CaseRecord;

    fn entry(shard: i32, dong: u64) -> Entry {
        let mut out = Vec::new();
        CaseRecord::new(shard, dong).encode(&mut out);
        Entry {
            record: Arc::from(out),
            score: Some(0.5),
            reasons: Arc::from(vec![("체납".to_string(), "arrears".to_string())]),
            details: Vec::new(),
        }
    }

    fn claim(shard: i32, epoch: u64) -> Vec<u8> {
        serde_json::to_vec(&Wire::claim(shard, epoch)).unwrap()
    }

    #[test]
    fn an_entry_reads_back_whole_and_keeps_its_schema() {
        let mut e = entry(3, 4125052000);
        e.details.push(OutcomeDetail {
            outcome_id: "oc-1".into(),
            key: crate::stages::case::rules::outcome_key("oc-1"),
            staff_id: "u-1".into(),
            dong_code: "4125052000".into(),
            note: Some("부재".into()),
            goals: vec!["월세 체납 해소".into()],
        });
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/open-work.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for value in [encode(&e, 7), claim(3, 7)] {
            let v: serde_json::Value = serde_json::from_slice(&value).unwrap();
            assert!(validator.is_valid(&v), "{v}");
        }
        let wire: Wire = serde_json::from_slice(&encode(&e, 7)).unwrap();
        assert_eq!((wire.partition, wire.epoch), (3, 7));
        assert_eq!(decode_entry(wire), Some(e));
    }

    #[test]
    fn a_paused_owner_cannot_put_back_what_its_successor_changed() {
        let spec = PipelineSpec::embedded_default().unwrap();
        let board = WorkBoard::new(&spec);
        let mut fold = Fold::default();
        let (old, new) = (entry(2, 4125052000), entry(2, 4125053500));
        fold.apply(&board, "hh-a", Some(&encode(&old, 1)), None);
        fold.apply(&board, "hh-b", Some(&encode(&old, 1)), None);
        // the successor publishes hh-a again, then its claim: hh-b, which
        // it does not hold, is gone
        fold.apply(&board, "hh-a", Some(&encode(&new, 2)), None);
        fold.apply(&board, CLAIM_KEY, Some(&claim(2, 2)), None);
        let dong = |h: &str| board.record(h).map(|r| r.dong);
        assert_eq!(dong("hh-b"), None);
        assert_eq!(dong("hh-a"), Some(4125053500));
        // the old owner wakes and writes: ignored, and counted
        fold.apply(&board, "hh-a", Some(&encode(&old, 1)), None);
        fold.apply(&board, "hh-a", None, Some((2, 1)));
        assert_eq!(dong("hh-a"), Some(4125053500));
        assert_eq!(fold.stale, 2);
        // the owner's own removal counts
        fold.apply(&board, "hh-a", None, Some((2, 2)));
        assert_eq!(dong("hh-a"), None);
        // another shard's epochs are its own
        fold.apply(
            &board,
            "hh-c",
            Some(&encode(&entry(5, 4125052000), 1)),
            None,
        );
        assert_eq!(dong("hh-c"), Some(4125052000));
    }
}
