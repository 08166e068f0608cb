//! `sagak run`: drives the engine from Kafka, through the [`DriverCore`].
//!
//! Delivery guarantee (at least once):
//! 1. Messages are collected into a micro-batch while the consumer has more
//!    ready, up to `engine.max_batch` messages and at most
//!    `engine.flush_interval_ms` after the first one. A batch goes as soon as
//!    the consumer holds nothing more, so at low rates a signal does not wait
//!    for the interval, and under load batches fill up.
//! 2. The batch is processed; its alerts and dead letters are sent with the
//!    idempotent producer and the batch is done only when the broker has
//!    acknowledged every one of them (retried until it does).
//! 3. Every `engine.checkpoint_interval_ms` (and on shutdown) the engine
//!    state and the offsets of all done batches are copied (the loop pauses
//!    only for the copy) and written to a snapshot on a thread of its own;
//!    only once it is durable are those offsets committed to the consumer
//!    group. A revoke waits for the snapshot being written, so the
//!    partitions' next owner reads it.
//!
//! So a committed offset always has its effects durable: alerts acknowledged
//! and state snapshotted. After a crash the newest snapshot is restored and
//! consumption resumes from its offsets; input after it is replayed, which
//! may re-send an alert with the same `alert_id` but never loses one.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;

use super::{DriverCore, DriverError, ListSchedule, OnListFailure, SharedLists};
use crate::base::clock::{wall_clock_ms, Clock, WallClock};
use crate::base::message::InputMessage;
use crate::checkpoint::{
    BackgroundWrite, CheckpointError, EncodedState, PartitionOffset, ShardedStore,
};
use crate::config::Settings;
use crate::definition::PipelineSpec;
use crate::engine::{BatchResult, Engine, Outputs};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::ownership::{Ownership, Writing};
use crate::kafka::sink::KafkaSink;
use crate::kafka::source::{self as source, SourceConsumer, TopicFeeds};
use crate::lists::DailyLists;
use crate::metrics::Metrics;
use crate::ops::OpsState;
use crate::stages::score::ScoreError;

/// Why the pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Kafka client could not be created or used.
    #[error("Kafka: {0}. Check `kafka.brokers` and the librdkafka properties in sagak.toml")]
    Kafka(#[from] KafkaError),
    /// State snapshots failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The scoring SQL failed.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// The daily lists failed where they may not (never under `run`'s
    /// policy, which logs and counts a failed list instead).
    #[error(transparent)]
    Lists(#[from] crate::lists::ListError),
    /// The brokers refused sagak's TLS or SASL settings.
    #[error(transparent)]
    Refused(#[from] crate::kafka::Refused),
    /// The input topics (signal topics and the outcomes topic) do not have
    /// the same number of partitions, so a household's signals and outcomes
    /// would not meet in one shard.
    #[error("the input topics must have the same number of partitions (a household's signals and outcomes share a partition number): {0}. Recreate or repartition the topics that differ")]
    NotCopartitioned(String),
    /// The open-work topic does not have a partition per input partition
    /// (a household's entry goes to its input partition's number).
    #[error("topics.open_work: {0}. Create it (compacted) with as many partitions as the input topics, or set `kafka.create_topics`")]
    OpenWorkTopic(String),
    /// Starting failed, before any message was consumed: a bad deployment
    /// (settings, brokers, TLS files, state folder), not a crash.
    #[error("{0}")]
    Startup(Box<RunError>),
}

impl RunError {
    /// `e`, marked as a failure to start.
    fn startup(e: impl Into<RunError>) -> RunError {
        RunError::Startup(Box::new(e.into()))
    }
}

impl From<DriverError<Infallible>> for RunError {
    fn from(e: DriverError<Infallible>) -> Self {
        match e {
            DriverError::Score(e) => RunError::Score(e),
            DriverError::Lists(e) => RunError::Lists(e),
            DriverError::Outputs(never) => match never {},
        }
    }
}

/// Counts of one run, returned on a clean shutdown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages consumed.
    pub messages: u64,
    /// Alerts sent.
    pub alerts: u64,
    /// Messages sent to the dead-letter topic.
    pub rejected: u64,
    /// Snapshots written.
    pub(crate) checkpoints: u64,
}

/// The Kafka driver's outputs: the idempotent producer, then the offsets
/// of the delivered batch marked as processed.
struct KafkaOutputs<'a> {
    sink: &'a KafkaSink,
    ownership: &'a Ownership,
    metrics: &'a Metrics,
}

impl Outputs for KafkaOutputs<'_> {
    type Error = Infallible;

    /// Returns once the broker has acknowledged every alert and dead letter
    /// (the sink retries until it does).
    async fn deliver(
        &mut self,
        result: &BatchResult,
        batch: &[InputMessage],
    ) -> Result<(), Infallible> {
        self.sink
            .deliver(&result.alerts, &result.escalations, &result.rejects, batch)
            .await;
        if !result.alerts.is_empty() {
            // Latency of an alert: from the broker timestamp of the
            // household's newest message in the batch to now, when the
            // broker has acked it.
            let acked = wall_clock_ms();
            let mut newest: std::collections::HashMap<&[u8], i64> = Default::default();
            for m in batch {
                if let (Some(k), Some(t)) = (m.key.as_deref(), m.timestamp_ms) {
                    let e = newest.entry(k).or_insert(t);
                    *e = (*e).max(t);
                }
            }
            for a in &result.alerts {
                if let Some(t) = newest.get(a.household_id.as_bytes()) {
                    self.metrics
                        .event_to_alert
                        .observe((acked - t).max(0) as f64 / 1000.0);
                }
            }
        }
        self.ownership.advance(batch);
        Ok(())
    }
}

/// Runs the pipeline until `shutdown` resolves, then finishes the batch in
/// flight, writes a final snapshot, commits and returns.
pub async fn run(
    settings: &Settings,
    spec: &PipelineSpec,
    ops: Arc<OpsState>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, RunError> {
    let metrics = ops.metrics.clone();
    let engine = Engine::new(spec);
    engine.start().await.map_err(RunError::startup)?;
    let inputs = settings.input_topics(spec);
    let Clients {
        store,
        ownership,
        consumer,
        sink,
    } = start_clients(settings, &metrics, &inputs).await?;
    let feeds = TopicFeeds::new(&inputs);
    tracing::info!(pipeline = %spec.name, topics = ?inputs, "sagak is consuming");
    let mut core = DriverCore::new(engine, WallClock, &ops, settings.engine.max_batch);
    if let Some(publisher) = share_open_work(settings, &ops, &ownership, &consumer, &inputs).await?
    {
        core = core.publishing_work(spec, Box::new(publisher));
    }
    if settings.lists.enabled {
        core = with_shared_lists(core, settings, spec, &consumer, &inputs, &ownership)?;
    }
    let mut out = KafkaOutputs {
        sink: &sink,
        ownership: &ownership,
        metrics: &metrics,
    };

    let mut pace = Pace::new(settings);
    let mut observe_tick = tokio::time::interval(Duration::from_secs(1));
    observe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctx = Checkpointing {
        store: &store,
        metrics: &metrics,
        ownership: &ownership,
        consumer: &consumer,
        pipeline: &spec.name,
    };
    tokio::pin!(shutdown);

    // A message the consumer already held, taken while filling the batch.
    let mut ready: Option<Event> = None;
    loop {
        let deadline = pace.batch_deadline;
        let next_checkpoint = pace.next_checkpoint;
        let cutoff_in = core
            .next_cutoff()
            .map(|c| Duration::from_millis(c.since(WallClock.now()).max(0) as u64));
        let event = if let Some(event) = ready.take() {
            event
        } else {
            tokio::select! {
            biased;
            _ = &mut shutdown => Event::Shutdown,
            _ = async { tokio::time::sleep(cutoff_in.unwrap_or_default()).await }, if cutoff_in.is_some() => Event::Tick,
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => Event::BatchDue,
            _ = observe_tick.tick() => Event::Observe,
            _ = tokio::time::sleep_until(next_checkpoint) => Event::Checkpoint,
            received = consumer.recv() => Event::Received(received.map(|m| feeds.input(&m))),
            }
        };
        // A rebalance callback ran inside some poll of `recv()`: move state
        // before anything else touches the engine.
        if ownership.generation() != pace.generation {
            pace.generation = ownership.generation();
            follow_handover(&mut core, &ownership)?;
            pace.batch_deadline = None;
        }
        // The batch in flight is processed first when it is full or due;
        // the timer flushes it itself before a cut-off's lists.
        let mut flush_now = false;
        let mut tick = false;
        match event {
            Event::Shutdown => break,
            Event::Tick => tick = true,
            Event::BatchDue => flush_now = true,
            Event::Observe => {
                observe(&mut core, &consumer, &ops, pace.idle, &inputs);
                tick = true;
            }
            Event::Checkpoint => pace.checkpoint(&ctx, &mut core)?,
            Event::Received(Ok(m)) => {
                if ops.health.status().is_err() {
                    ops.health.set_ready();
                    metrics.ready.set(1);
                }
                (flush_now, ready) = pace.take(&mut core, m, &consumer, &feeds);
            }
            Event::Received(Err(e)) => {
                metrics.kafka_errors.inc();
                ops.health
                    .set_not_ready(&format!("Kafka consumer error: {e}"));
                metrics.ready.set(0);
                tracing::warn!(error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if flush_now && core.flush(&mut out).await? > 0 {
            pace.processed();
        }
        if tick {
            let buffered = core.buffered();
            if core.tick(&mut out).await? > 0 && buffered > 0 {
                pace.processed();
            }
        }
    }

    stop(&mut core, &mut out, &ctx, pace.checkpoints).await
}

/// Once a second: the consumer's health and lag for the operations view,
/// and the watermarks of feeds quiet for `idle` at a partition's end.
fn observe(
    core: &mut DriverCore<'_, WallClock>,
    consumer: &SourceConsumer,
    ops: &OpsState,
    idle: Duration,
    inputs: &[String],
) {
    observe_consumer(consumer, ops);
    let context = consumer.context();
    core.engine_mut()
        .advance_idle(WallClock.now(), idle, |feed, partition| {
            inputs
                .get(usize::from(feed))
                .is_some_and(|topic| context.at_end(topic, partition))
        });
}

/// Finishes the batch in flight, takes the last checkpoint and flushes
/// what is still being sent.
async fn stop(
    core: &mut DriverCore<'_, WallClock>,
    out: &mut KafkaOutputs<'_>,
    ctx: &Checkpointing<'_>,
    checkpoints: u64,
) -> Result<RunSummary, RunError> {
    tracing::info!("shutting down: finishing the batch in flight");
    core.flush(out).await?;
    ctx.finish(core.engine_mut())?;
    out.sink.flush(Duration::from_secs(10));
    let counts = core.counts();
    let summary = RunSummary {
        messages: counts.messages,
        alerts: counts.alerts,
        rejected: counts.rejected,
        checkpoints: checkpoints + 1,
    };
    tracing::info!(?summary, "sagak stopped");
    Ok(summary)
}

/// The run loop's timing and bookkeeping: when the batch in flight is
/// due, when the next checkpoint is, whether the state changed since the
/// last one, and the ownership generation the engine's state follows.
struct Pace {
    flush_every: Duration,
    checkpoint_every: Duration,
    idle: Duration,
    batch_deadline: Option<tokio::time::Instant>,
    next_checkpoint: tokio::time::Instant,
    checkpoints: u64,
    dirty: bool,
    generation: u64,
}

impl Pace {
    fn new(settings: &Settings) -> Pace {
        let checkpoint_every = Duration::from_millis(settings.engine.checkpoint_interval_ms);
        Pace {
            flush_every: Duration::from_millis(settings.engine.flush_interval_ms),
            checkpoint_every,
            idle: Duration::from_millis(settings.engine.idle_partition_ms),
            batch_deadline: None,
            next_checkpoint: tokio::time::Instant::now() + checkpoint_every,
            checkpoints: 0,
            dirty: false,
            generation: 0,
        }
    }

    /// A batch was processed: the state changed, no batch is due.
    fn processed(&mut self) {
        self.batch_deadline = None;
        self.dirty = true;
    }

    /// Takes a checkpoint when the state changed, and sets the next one,
    /// spaced by the loop's pause.
    fn checkpoint(
        &mut self,
        ctx: &Checkpointing<'_>,
        core: &mut DriverCore<'_, WallClock>,
    ) -> Result<(), RunError> {
        let mut wait = self.checkpoint_every;
        if let Some(paused) = ctx.tick(core.engine_mut(), self.dirty)? {
            self.checkpoints += 1;
            self.dirty = false;
            wait = spaced(self.checkpoint_every, paused);
            core.record_households();
        }
        self.next_checkpoint = tokio::time::Instant::now() + wait;
        Ok(())
    }

    /// Takes message `m` into the batch: whether the batch is to be
    /// processed now, and the next message the consumer already held.
    fn take(
        &mut self,
        core: &mut DriverCore<'_, WallClock>,
        m: InputMessage,
        consumer: &SourceConsumer,
        feeds: &TopicFeeds,
    ) -> (bool, Option<Event>) {
        let full = core.push(m);
        if self.batch_deadline.is_none() {
            self.batch_deadline = Some(tokio::time::Instant::now() + self.flush_every);
        }
        // Messages taken below come back here without passing the select,
        // so the interval is checked here too.
        let due = full
            || self
                .batch_deadline
                .is_some_and(|d| tokio::time::Instant::now() >= d);
        if due {
            return (true, None);
        }
        // Natural batching: the batch grows only by what the consumer
        // already holds; once it holds nothing more, waiting for the
        // interval would only add latency.
        match consumer.recv().now_or_never() {
            Some(next) => (false, Some(Event::Received(next.map(|m| feeds.input(&m))))),
            None => (true, None),
        }
    }
}

/// The partitions held changed (a rebalance callback ran inside a poll of
/// the consumer): the engine's state follows before anything else touches
/// it, and the pages show the households of the shards held now.
fn follow_handover(
    core: &mut DriverCore<'_, WallClock>,
    ownership: &Ownership,
) -> Result<(), RunError> {
    apply_handover(core.engine_mut(), ownership)?;
    core.record_households();
    core.discard_buffer();
    if core.keeps_work() {
        core.rebuild_work();
    }
    Ok(())
}

/// What `sagak run` talks to: the state store, the partitions it owns, the
/// consumer of its inputs and the producer of its outputs.
struct Clients {
    store: ShardedStore,
    ownership: Arc<Ownership>,
    consumer: SourceConsumer,
    sink: KafkaSink,
}

/// Checks the brokers (wrong TLS or SASL settings stop the start, named; a
/// broker that is just not up yet is waited for), creates the topics when
/// asked, opens the state store, and starts the consumer (subscribed, or
/// assigned every partition) and the producer.
async fn start_clients(
    settings: &Settings,
    metrics: &Metrics,
    inputs: &[String],
) -> Result<Clients, RunError> {
    tokio::task::block_in_place(|| crate::kafka::probe(&settings.kafka, Duration::from_secs(10)))
        .map_err(RunError::startup)?;
    if settings.kafka.create_topics {
        let mut all = inputs.to_vec();
        all.push(settings.topics.alerts.clone());
        all.push(settings.topics.escalations.clone());
        all.push(settings.topics.dlq.clone());
        crate::kafka::create_topics(&settings.kafka, &all)
            .await
            .map_err(RunError::startup)?;
    }
    let state = settings
        .storage()
        .and_then(|s| {
            // a store that ignores conditional puts cannot fence a paused
            // instance: refused before anything is written
            crate::store::check_conditional_puts(&*s.state)?;
            Ok(s.state)
        })
        .map_err(|e| RunError::startup(CheckpointError::from(e)))?;
    let store =
        ShardedStore::on(state, settings.engine.keep_checkpoints).map_err(RunError::startup)?;
    let fenced = metrics.checkpoints.fenced.clone();
    let ownership = Arc::new(Ownership::new(store.clone(), fenced));
    let consumer = source::consumer(
        &settings.kafka,
        metrics.consumer_lag.clone(),
        ownership.clone(),
    )
    .map_err(RunError::startup)?;
    if settings.kafka.static_assignment {
        tokio::task::block_in_place(|| assign_all(&consumer, inputs, &ownership))
            .map_err(RunError::startup)?;
    } else {
        let topic_refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs).map_err(RunError::startup)?;
    }
    let sink = KafkaSink::new(
        &settings.kafka,
        crate::kafka::sink::SinkTopics {
            alerts: settings.topics.alerts.clone(),
            escalations: settings.topics.escalations.clone(),
            dlq: settings.topics.dlq.clone(),
        },
        metrics.clone(),
    )
    .map_err(RunError::startup)?;
    sink.connect(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| copartitioned(&consumer, inputs)).map_err(RunError::startup)?;
    Ok(Clients {
        store,
        ownership,
        consumer,
        sink,
    })
}

/// Every instance's pages serve every dong: this instance publishes the
/// open work of the partitions it owns to `topics.open_work` (created
/// compacted, partitioned like the inputs) and reads the whole topic into
/// the board its pages read. Off when the setting is empty.
async fn share_open_work(
    settings: &Settings,
    ops: &Arc<OpsState>,
    ownership: &Arc<Ownership>,
    consumer: &SourceConsumer,
    inputs: &[String],
) -> Result<Option<crate::kafka::open_work::Publisher>, RunError> {
    let topic = &settings.topics.open_work;
    if topic.is_empty() {
        return Ok(None);
    }
    let partitions = tokio::task::block_in_place(|| partition_count(consumer, inputs))
        .map_err(RunError::startup)?;
    if settings.kafka.create_topics {
        crate::kafka::create_compacted(&settings.kafka, topic, partitions)
            .await
            .map_err(RunError::startup)?;
    }
    let metadata = tokio::task::block_in_place(|| {
        consumer.fetch_metadata(Some(topic), Duration::from_secs(10))
    })
    .map_err(RunError::startup)?;
    let found = metadata
        .topics()
        .iter()
        .map(|t| t.partitions().len())
        .max()
        .unwrap_or(0);
    if found < partitions {
        return Err(RunError::startup(RunError::OpenWorkTopic(format!(
            "{topic} has {found} partitions and the inputs {partitions}"
        ))));
    }
    let publisher = crate::kafka::open_work::Publisher::new(
        &settings.kafka,
        topic,
        ownership.clone(),
        ops.clone(),
    )
    .map_err(RunError::startup)?;
    crate::kafka::open_work::spawn_reader(
        &settings.kafka,
        topic,
        (
            &settings.topics.escalations,
            &settings.topics.alerts,
            &settings.topics.outcomes,
        ),
        ops.clone(),
    )
    .map_err(RunError::startup)?;
    ops.work.enable();
    Ok(Some(publisher))
}

/// The daily lists of an instance of a group: the instances share the
/// partitions, each writes the parts of its own, and the last one in
/// assembles the day. Without a lists SQL the lists are off, said once.
fn with_shared_lists<'a>(
    core: DriverCore<'a, WallClock>,
    settings: &Settings,
    spec: &PipelineSpec,
    consumer: &SourceConsumer,
    inputs: &[String],
    ownership: &Arc<Ownership>,
) -> Result<DriverCore<'a, WallClock>, RunError> {
    let lists = match DailyLists::new(spec) {
        Ok(lists) => lists,
        Err(e) => {
            tracing::warn!(error = %e, "daily lists are off");
            return Ok(core);
        }
    };
    let partitions = tokio::task::block_in_place(|| partition_count(consumer, inputs))
        .map_err(RunError::startup)?;
    let owner = ownership.clone();
    let shared = SharedLists {
        partitions,
        owned: Box::new(move || owner.owned_epochs()),
    };
    let schedule = ListSchedule::new(
        lists,
        settings
            .storage()
            .map_err(|e| RunError::startup(crate::lists::ListError::from(e)))?
            .lists,
        WallClock.now(),
        OnListFailure::LogAndContinue,
    )
    .shared(shared);
    Ok(core.with_lists(schedule))
}

/// Checks that every input topic that exists has the same partition count.
fn copartitioned(consumer: &SourceConsumer, inputs: &[String]) -> Result<(), RunError> {
    let mut counts = Vec::new();
    for topic in inputs {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            // a topic not created yet has none; the consumer waits for it
            if !t.partitions().is_empty() {
                counts.push(format!("{} has {}", t.name(), t.partitions().len()));
            }
        }
    }
    let first = counts.first().and_then(|c| c.rsplit(' ').next());
    if counts.iter().any(|c| c.rsplit(' ').next() != first) {
        return Err(RunError::NotCopartitioned(counts.join(", ")));
    }
    Ok(())
}

/// Partitions of the input topics (co-partitioned: the first one's count).
fn partition_count(consumer: &SourceConsumer, inputs: &[String]) -> Result<usize, KafkaError> {
    let Some(topic) = inputs.first() else {
        return Ok(1);
    };
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| t.partitions().len())
        .max()
        .unwrap_or(1)
        .max(1))
}

/// Static assignment: every partition of the input topics, each starting
/// where its shard's snapshot ends (see [`Ownership::on_assign`]).
fn assign_all(
    consumer: &SourceConsumer,
    inputs: &[String],
    ownership: &Ownership,
) -> Result<(), KafkaError> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in inputs {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
    }
    ownership.on_assign(&mut tpl);
    consumer.assign(&tpl)
}

/// Applies a rebalance's hand-over: drops the shards that moved away and
/// restores the ones that arrived. The caller discards buffered input,
/// which the consumer fetches again from the positions the state ends at.
fn apply_handover(engine: &mut Engine, ownership: &Ownership) -> Result<(), RunError> {
    let handover = ownership.take_handover()?;
    for shard in handover.dropped {
        let households = engine.drop_shard(shard);
        tracing::info!(
            partition = shard,
            households,
            "partition moved away; its state was dropped"
        );
    }
    for snapshot in handover.restore {
        engine.restore_shard(&snapshot);
    }
    Ok(())
}

/// Readiness: partitions assigned and a broker reachable.
fn observe_consumer(consumer: &SourceConsumer, ops: &OpsState) {
    let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
    let problem = if assigned == 0 {
        Some("no partitions assigned yet (joining the consumer group)")
    } else if !consumer.context().broker_up() {
        Some("no broker reachable (librdkafka reports every broker down)")
    } else {
        None
    };
    match problem {
        Some(reason) => {
            ops.health.set_not_ready(reason);
            ops.metrics.ready.set(0);
        }
        None => {
            ops.health.set_ready();
            ops.metrics.ready.set(1);
        }
    }
}

/// What a checkpoint writes to and commits with.
struct Checkpointing<'a> {
    store: &'a ShardedStore,
    metrics: &'a Metrics,
    ownership: &'a Ownership,
    consumer: &'a SourceConsumer,
    pipeline: &'a str,
}

/// One event of the run loop.
enum Event {
    Shutdown,
    /// The timer: once a second, and at a list cut-off.
    Tick,
    BatchDue,
    Observe,
    Checkpoint,
    Received(Result<InputMessage, KafkaError>),
}

impl Checkpointing<'_> {
    /// A checkpoint tick: commits the offsets of the snapshot that finished
    /// since the last tick, then, when the state changed, copies it (the
    /// only pause of the loop) and starts writing the copy beside the loop.
    /// A tick that finds the previous snapshot still being written is
    /// skipped. Returns how long the loop paused when a snapshot was
    /// started.
    fn tick(&self, engine: &mut Engine, dirty: bool) -> Result<Option<Duration>, RunError> {
        match self.ownership.poll_write(false) {
            Writing::Busy => {
                self.metrics.checkpoints.skipped.inc();
                tracing::debug!(
                    "the previous state snapshot is still being written; checkpoint skipped"
                );
                return Ok(None);
            }
            Writing::Done(done) => {
                let done = done?;
                self.fenced(&done.fenced);
                let (offsets, took) = (done.offsets, done.took);
                self.metrics
                    .checkpoints
                    .write_seconds
                    .observe(took.as_secs_f64());
                self.metrics
                    .checkpoints
                    .written_at
                    .set(wall_clock_ms() / 1000);
                self.commit(&offsets, CommitMode::Async);
            }
            Writing::Idle => {}
        }
        if !dirty {
            return Ok(None);
        }
        let paused = Instant::now();
        let (state, owned, offsets) = self.copy(engine);
        let write = BackgroundWrite::start(
            self.store.clone(),
            self.pipeline.to_string(),
            wall_clock_ms(),
            state,
            owned.into_iter().collect(),
            offsets,
        )?;
        self.ownership.start_write(write);
        let paused = paused.elapsed();
        self.metrics
            .checkpoints
            .pause_seconds
            .observe(paused.as_secs_f64());
        Ok(Some(paused))
    }

    /// On shutdown: waits for the snapshot being written, writes the final
    /// one in place and commits its offsets before returning.
    fn finish(&self, engine: &mut Engine) -> Result<(), RunError> {
        if let Writing::Done(done) = self.ownership.poll_write(true) {
            // its offsets are older than the final snapshot's
            done?;
        }
        let (state, owned, mut offsets) = self.copy(engine);
        let written =
            self.store
                .write_state(self.pipeline, wall_clock_ms(), &state, owned, &offsets)?;
        self.fenced(&written.fenced);
        offsets.retain(|o| !written.fenced.contains(&o.partition));
        self.metrics
            .checkpoints
            .written_at
            .set(wall_clock_ms() / 1000);
        self.commit(&offsets, CommitMode::Sync);
        Ok(())
    }

    /// Counts the snapshots the store refused: another instance owns their
    /// partitions now (this one was paused or cut off meanwhile), and the
    /// group takes them from this one at its next poll.
    fn fenced(&self, fenced: &[i32]) {
        if !fenced.is_empty() {
            self.metrics.checkpoints.fenced.inc_by(fenced.len() as u64);
            tracing::warn!(partitions = ?fenced, "snapshots refused: another instance owns these partitions now; their offsets are not committed");
        }
    }

    /// Evicts expired state and copies what is left, with the shards owned
    /// and their partitions' offsets.
    fn copy(&self, engine: &mut Engine) -> (EncodedState, BTreeSet<i32>, Vec<PartitionOffset>) {
        engine.on_watermark();
        let (owned, offsets) = self.ownership.owned();
        (engine.encode_state(), owned, offsets)
    }

    fn commit(&self, offsets: &[PartitionOffset], mode: CommitMode) {
        if let Err(e) = OffsetTracker::from_snapshot(offsets).commit(self.consumer, mode) {
            // The snapshots hold the offsets; the next commit catches up.
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

/// Checkpoint pauses are kept to this share of the loop's time at most.
const PAUSE_SHARE: u32 = 20;

/// The wait until the next checkpoint after one that paused the loop for
/// `paused`: the configured interval, stretched when needed so that pauses
/// take at most 1/[`PAUSE_SHARE`] of the time. A national state (23M
/// households) pauses the loop for seconds; at the default 10 s interval it
/// would otherwise spend a third of its time copying.
fn spaced(interval: Duration, paused: Duration) -> Duration {
    let wait = interval.max(paused * PAUSE_SHARE);
    if wait > interval {
        tracing::info!(
            paused_ms = paused.as_millis() as u64,
            next_in_s = wait.as_secs(),
            "the state is large: checkpoints are spaced so their pauses stay under 5% of the time (raise engine.checkpoint_interval_ms to space them yourself)"
        );
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_of_a_large_state_are_spaced_so_their_pauses_stay_under_5_percent() {
        let interval = Duration::from_secs(10);
        // 1M households: the configured interval holds
        assert_eq!(spaced(interval, Duration::from_millis(170)), interval);
        // a 6.1 s pause (23M households before prefetching): every 122 s
        assert_eq!(
            spaced(interval, Duration::from_millis(6_100)),
            Duration::from_secs(122)
        );
    }
}
