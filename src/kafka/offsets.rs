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
pub(crate) struct OffsetTracker {
    next: BTreeMap<(String, i32), i64>,
}

impl OffsetTracker {
    /// Starts from a snapshot's offsets.
    pub(crate) fn from_snapshot(offsets: &[PartitionOffset]) -> Self {
        OffsetTracker {
            next: offsets
                .iter()
                .map(|o| ((o.topic.clone(), o.partition), o.next_offset))
                .collect(),
        }
    }

    /// Adds a snapshot's offsets; a partition already tracked keeps the
    /// further of the two.
    pub(crate) fn merge(&mut self, offsets: &[PartitionOffset]) {
        for o in offsets {
            let next = self
                .next
                .entry((o.topic.clone(), o.partition))
                .or_insert(o.next_offset);
            *next = (*next).max(o.next_offset);
        }
    }

    /// Forgets every topic's partition number `partition`.
    pub(crate) fn forget(&mut self, partition: i32) {
        self.next.retain(|(_, p), _| *p != partition);
    }

    /// Next offset to read of one partition, if any input of it was taken.
    pub(crate) fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next.get(&(topic.to_string(), partition)).copied()
    }

    /// Marks every message of a delivered batch as processed.
    pub(crate) fn advance(&mut self, msgs: &[InputMessage]) {
        // the batch's furthest offset per partition first: a batch reads a
        // few dozen partitions at most, and the map's keys are owned text
        let mut furthest: Vec<(&str, i32, i64)> = Vec::new();
        for m in msgs {
            let next = m.offset + 1;
            match furthest
                .iter_mut()
                .find(|(t, p, _)| *p == m.partition && *t == &*m.topic)
            {
                Some(f) => f.2 = f.2.max(next),
                None => furthest.push((&m.topic, m.partition, next)),
            }
        }
        for (topic, partition, next) in furthest {
            let at = self.next.entry((topic.to_string(), partition)).or_insert(0);
            *at = (*at).max(next);
        }
    }

    /// The offsets, for a snapshot.
    pub(crate) fn snapshot(&self) -> Vec<PartitionOffset> {
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
    pub(crate) fn commit<C: ConsumerContext>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, partition: i32, offset: i64) -> InputMessage {
        InputMessage {
            topic: std::sync::Arc::from(topic),
            partition,
            offset,
            ..InputMessage::default()
        }
    }

    /// A batch interleaves partitions and topics: each partition resumes
    /// after its own furthest message, and one the snapshot had further
    /// along never goes back.
    #[test]
    fn a_batch_moves_each_partition_past_its_furthest_message_and_never_back() {
        let mut offsets = OffsetTracker::from_snapshot(&[PartitionOffset {
            topic: "signals.job-loss".into(),
            partition: 1,
            next_offset: 500,
        }]);
        offsets.advance(&[
            message("signals.job-loss", 0, 7),
            message("signals.health-insurance", 0, 3),
            message("signals.job-loss", 1, 20),
            message("signals.job-loss", 0, 9),
            message("signals.job-loss", 0, 8),
        ]);
        assert_eq!(offsets.next_offset("signals.job-loss", 0), Some(10));
        assert_eq!(offsets.next_offset("signals.health-insurance", 0), Some(4));
        assert_eq!(offsets.next_offset("signals.job-loss", 1), Some(500));
        assert_eq!(offsets.next_offset("signals.health-insurance", 1), None);
    }
}
