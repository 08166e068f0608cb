//! The generator's messages as a source: in arrival order, each with the
//! simulated time it reaches the "broker", counted per feed as it goes.

use crate::base::time::ClockTime;
use std::collections::{BTreeMap, HashMap};

use crate::base::message::InputMessage;
use crate::definition::PipelineSpec;
use crate::generate::{Expect, GeneratedMessage};

/// Replays generated messages (see [`crate::generate`]) as input messages of
/// the pipeline's topics, all on partition 0, the offset being the
/// message's position.
pub(crate) struct GeneratedSource<'g> {
    messages: &'g [GeneratedMessage],
    next: usize,
    /// Feed index and topic per feed name.
    feeds: HashMap<&'g str, (u16, std::sync::Arc<str>)>,
    /// Messages taken, per feed name.
    pub(crate) signals_in: BTreeMap<String, usize>,
    /// Bad messages the generator planted among those taken, per class.
    pub(crate) rejects_planted: BTreeMap<String, usize>,
}

impl<'g> GeneratedSource<'g> {
    /// A source over `messages` (in arrival order) for the feeds of `spec`.
    pub(crate) fn new(spec: &'g PipelineSpec, messages: &'g [GeneratedMessage]) -> Self {
        GeneratedSource {
            messages,
            next: 0,
            feeds: spec
                .feeds
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.name.as_str(),
                        (i as u16, std::sync::Arc::from(f.topic.as_str())),
                    )
                })
                .collect(),
            signals_in: BTreeMap::new(),
            rejects_planted: BTreeMap::new(),
        }
    }
}

impl super::TimedSource for GeneratedSource<'_> {
    fn next_arrival(&self) -> Option<ClockTime> {
        let m = self.messages.get(self.next)?;
        Some(ClockTime::from_ms(m.arrival_ms))
    }

    fn next_before(&mut self, until: ClockTime) -> Option<InputMessage> {
        let m = self.messages.get(self.next)?;
        if m.arrival_ms >= until.ms() {
            return None;
        }
        let offset = self.next as i64;
        self.next += 1;
        *self.signals_in.entry(m.feed.to_string()).or_default() += 1;
        if let Expect::Reject(class) = m.expect {
            *self
                .rejects_planted
                .entry(class.as_str().to_string())
                .or_default() += 1;
        }
        // a feed the pipeline does not know goes in under its own name, and
        // the engine rejects it as an unknown topic
        let (feed, topic) = match self.feeds.get(m.feed) {
            Some((feed, topic)) => (Some(*feed), std::sync::Arc::clone(topic)),
            None => (None, std::sync::Arc::from(m.feed)),
        };
        Some(InputMessage {
            feed,
            topic,
            partition: 0,
            offset,
            key: m.key.clone(),
            payload: Some(m.payload.clone()),
            timestamp_ms: Some(m.arrival_ms),
            source_file: None,
        })
    }
}
