//! Which input partitions this instance owns, and where each one resumes.
//!
//! State is sharded by partition number (input topics are co-partitioned by
//! household id). When the consumer group hands this instance a partition
//! whose shard it does not hold, the shard's newest snapshot is loaded from
//! the shared state directory and the partition starts at the snapshot's
//! offset; a partition whose shard stays here resumes at the position the
//! pipeline has processed. Shards of partitions that moved away are dropped.
//!
//! The consumer's rebalance callback runs inside `recv()`, on the run loop's
//! own task, so it only prepares the hand-over; the loop applies it (drop
//! and restore shards, discard buffered input that will be fetched again)
//! before it touches the engine again. A generation counter tells the loop,
//! with one atomic load per event, that a hand-over is waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rdkafka::{Offset, TopicPartitionList};

use crate::base::message::InputMessage;
use crate::checkpoint::{
    BackgroundWrite, CheckpointError, PartitionOffset, ShardedStore, Snapshot,
};
use crate::kafka::offsets::OffsetTracker;

/// Partitions owned, their positions, and shard hand-overs waiting for the
/// run loop. Shared by the consumer context and the run loop.
pub(crate) struct Ownership {
    store: ShardedStore,
    /// `sagak_checkpoint_writes_fenced_total`: a write finished at a
    /// revoke is counted here.
    fenced: prometheus::IntCounter,
    generation: AtomicU64,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// Partitions assigned now; empty between a revoke and the next assign.
    assigned: BTreeSet<(String, i32)>,
    /// Shards held in memory, or loaded and waiting to be installed.
    loaded: BTreeSet<i32>,
    /// Next offset to read per partition, of input the state includes.
    positions: OffsetTracker,
    /// Snapshots loaded for shards new to this instance.
    restore: BTreeMap<i32, Snapshot>,
    /// Shards whose partitions moved away.
    dropped: BTreeSet<i32>,
    /// A snapshot that could not be read or written; stops the pipeline.
    error: Option<CheckpointError>,
    /// The snapshot being written beside the run loop.
    writing: Option<BackgroundWrite>,
}

/// Where the snapshot written beside the run loop stands.
pub(crate) enum Writing {
    /// None is being written.
    Idle,
    /// One is still being written.
    Busy,
    /// One finished: the offsets to commit, how long it took and which
    /// partitions were fenced, or why it failed.
    Done(Result<crate::checkpoint::Finished, CheckpointError>),
}

/// What the run loop applies after a rebalance.
#[derive(Default)]
pub(crate) struct Handover {
    /// Shards to forget.
    pub(crate) dropped: Vec<i32>,
    /// Shards to restore, from their snapshots.
    pub(crate) restore: Vec<Snapshot>,
}

impl Ownership {
    /// Nothing owned yet; shard snapshots come from `store`.
    pub(crate) fn new(store: ShardedStore, fenced: prometheus::IntCounter) -> Self {
        Ownership {
            store,
            fenced,
            generation: AtomicU64::new(0),
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic elsewhere cannot leave the book half-updated in a way that
        // matters more than stopping would; keep going with what is there.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumped by every assignment; the run loop compares it after each event.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Takes a new assignment: loads the snapshots of shards new here, marks
    /// shards no longer assigned for dropping, and sets the start offset of
    /// every partition in `tpl` (its processed position, else the
    /// snapshot's offset, else the beginning of the partition so that state
    /// is rebuilt from the log).
    pub(crate) fn on_assign(&self, tpl: &mut TopicPartitionList) {
        let mut book = self.book();
        let partitions: BTreeSet<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let shards: BTreeSet<i32> = partitions.iter().map(|(_, p)| *p).collect();
        let gone: Vec<i32> = book.loaded.difference(&shards).copied().collect();
        for shard in gone {
            book.loaded.remove(&shard);
            book.positions.forget(shard);
            // loaded by an earlier assignment in the same poll, never installed
            if book.restore.remove(&shard).is_none() {
                book.dropped.insert(shard);
            }
        }
        // a shard kept across the rebalance that another instance claimed
        // meanwhile (this one was paused or cut off): the state held here is
        // stale, so it is dropped and restored from the owner's snapshot
        let lost: Vec<i32> = shards
            .intersection(&book.loaded)
            .filter(|&&s| !self.store.holds(s).unwrap_or(true))
            .copied()
            .collect();
        for &shard in &lost {
            tracing::warn!(partition = shard, "another instance owned this partition meanwhile: its state is restored from that owner's snapshot");
            book.loaded.remove(&shard);
            book.positions.forget(shard);
            book.dropped.insert(shard);
        }
        let new: Vec<i32> = shards.difference(&book.loaded).copied().collect();
        for shard in new {
            // from now on an earlier owner's snapshot is refused
            let claimed = self.store.claim(shard);
            match claimed.and_then(|_| self.store.shard(shard)?.load_newest()) {
                Ok(Some(snapshot)) => {
                    tracing::info!(
                        partition = shard,
                        households = snapshot.state.count(crate::stages::StatePart::Households),
                        "restoring the partition's state snapshot"
                    );
                    book.positions.merge(&snapshot.offsets);
                    book.restore.insert(shard, snapshot);
                }
                Ok(None) => tracing::info!(
                    partition = shard,
                    "no state snapshot for this partition: reading it from its beginning"
                ),
                Err(e) => book.error = Some(e),
            }
            book.loaded.insert(shard);
        }
        for (topic, partition) in &partitions {
            let offset = book
                .positions
                .next_offset(topic, *partition)
                .map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                tracing::error!(%topic, partition, error = %e, "cannot set the start offset");
            }
        }
        book.assigned = partitions;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Partitions were revoked: nothing is owned until the next assignment,
    /// so no snapshot or commit is written for partitions that may already
    /// be another instance's.
    pub(crate) fn on_revoke(&self) {
        let mut book = self.book();
        book.assigned.clear();
        // The partitions' next owner reads their newest snapshot: the one
        // being written must be on disk first. Its offsets are not
        // committed (the partitions are leaving; the snapshot holds them).
        if let Some(write) = book.writing.take() {
            match write.finish() {
                // refused: another instance claimed these partitions first
                Ok(done) => self.fenced.inc_by(done.fenced.len() as u64),
                Err(e) => book.error = Some(e),
            }
        }
    }

    /// Holds a snapshot being written, until [`Self::poll_write`] or a
    /// revoke finishes it.
    pub(crate) fn start_write(&self, write: BackgroundWrite) {
        self.book().writing = Some(write);
    }

    /// Where the snapshot being written stands; with `wait`, waits for it.
    pub(crate) fn poll_write(&self, wait: bool) -> Writing {
        let write = {
            let mut book = self.book();
            match book.writing.take() {
                None => return Writing::Idle,
                Some(w) if !wait && !w.is_finished() => {
                    book.writing = Some(w);
                    return Writing::Busy;
                }
                Some(w) => w,
            }
        };
        Writing::Done(write.finish())
    }

    /// The hand-over waiting since the last call, or an unreadable snapshot.
    pub(crate) fn take_handover(&self) -> Result<Handover, CheckpointError> {
        let mut book = self.book();
        if let Some(e) = book.error.take() {
            return Err(e);
        }
        Ok(Handover {
            dropped: std::mem::take(&mut book.dropped).into_iter().collect(),
            restore: std::mem::take(&mut book.restore).into_values().collect(),
        })
    }

    /// Marks every message of a processed batch as part of the state.
    pub(crate) fn advance(&self, msgs: &[InputMessage]) {
        self.book().positions.advance(msgs);
    }

    /// Shards to snapshot (owned and held) and the offsets of their
    /// assigned partitions.
    /// The shards owned, each with the epoch of this instance's claim.
    pub(crate) fn owned_epochs(&self) -> Vec<(i32, u64)> {
        let (shards, _) = self.owned();
        shards
            .into_iter()
            .map(|s| (s, self.store.epoch_held(s).unwrap_or(0)))
            .collect()
    }

    pub(crate) fn owned(&self) -> (BTreeSet<i32>, Vec<PartitionOffset>) {
        let book = self.book();
        let shards = book
            .assigned
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| book.loaded.contains(p))
            .collect();
        let offsets = book
            .positions
            .snapshot()
            .into_iter()
            .filter(|o| book.assigned.contains(&(o.topic.clone(), o.partition)))
            .collect();
        (shards, offsets)
    }
}
