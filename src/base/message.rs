//! One raw input message as every driver hands it to the engine.

/// One raw input message: what a source read, before it is decoded.
#[derive(Debug, Clone, Default)]
pub struct InputMessage {
    /// Feed index, or `None` when no feed reads the topic.
    pub feed: Option<u16>,
    /// Source topic (for the dead-letter headers and the offsets), shared
    /// by the messages of one topic rather than copied per message.
    pub topic: std::sync::Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Option<Vec<u8>>,
    /// Broker timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
    /// The file it was read from (a replay); its line is `offset`.
    pub source_file: Option<std::sync::Arc<str>>,
}
