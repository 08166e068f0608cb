//! The demo's outcomes topic: what offices record on the pages is handed
//! to the demo's engine as the message the outcomes topic would carry.

use std::sync::atomic::{AtomicI64, Ordering};

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::base::message::InputMessage;

/// Hands outcomes to the demo's loop.
pub struct Inbox {
    tx: mpsc::Sender<InputMessage>,
    feed: u16,
    topic: std::sync::Arc<str>,
    seq: AtomicI64,
}

impl Inbox {
    /// An inbox for messages of feed `feed` (the outcomes) named `topic`,
    /// and the receiver the demo's loop reads.
    pub fn new(feed: u16, topic: &str) -> (Self, mpsc::Receiver<InputMessage>) {
        let (tx, rx) = mpsc::channel(1024);
        let inbox = Inbox {
            tx,
            feed,
            topic: topic.into(),
            // after the simulated offices' offsets
            seq: AtomicI64::new(1 << 40),
        };
        (inbox, rx)
    }
}

impl crate::web::OutcomePublisher for Inbox {
    fn publish<'a>(
        &'a self,
        household_id: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let m = InputMessage {
                feed: Some(self.feed),
                topic: std::sync::Arc::clone(&self.topic),
                partition: 0,
                offset: self.seq.fetch_add(1, Ordering::Relaxed),
                key: Some(household_id.as_bytes().to_vec()),
                payload: Some(value),
                timestamp_ms: Some(crate::base::clock::wall_clock_ms()),
                source_file: None,
            };
            self.tx
                .send(m)
                .await
                .map_err(|_| "the demo has stopped".to_string())
        })
    }
}
