//! Where each input partition resumes: the next offset of processed input,
//! as snapshots record it and the consumer group commits it.

use std::collections::BTreeMap;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::base::message::InputMessage;
use crate::checkpoint::PartitionOffset;

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
    pub fn commit<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        mode: CommitMode,
    ) -> Result<(), KafkaError> {
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
