//! Snapshots of the engine state and the input offsets they correspond to.
//!
//! A snapshot is one object of the state's [`crate::store::Store`], written
//! whole, so a crash leaves either the old or the new one, never half of
//! one. Each object
//! starts with a header line carrying the format version, the body length
//! and a checksum; a file that fails either check is skipped with a loud log
//! line and the previous one is used. The newest `keep` files are kept.
//!
//! State is sharded by input partition (co-partitioned topics keep every
//! signal of a household on one partition number):
//! each shard has its own folder `partition-NNNNN/` in the store
//! (`engine.state_dir`), so when the consumer group moves a partition to
//! another instance, that instance loads the shard's newest snapshot and
//! seeks to its offsets. Instances of one group therefore share the store.
//!
//! Format 3 stores the stages' household and alert records exactly as they
//! are held in memory ([`crate::base::keyed::Record`]), after a short JSON head
//! (offsets, newest event times, and the [`RecordDictionary`] that says
//! what the records' numbers stand for). Taking one is a copy of bytes, not
//! a decode of every household, so the run loop pauses only for the copy
//! and a [`BackgroundWrite`] puts it on disk while consuming goes on.
//! Format 2 (the whole state as JSON) is still read, so an upgrade keeps
//! its state: `legacy.rs` converts it to records as it is loaded, so nothing
//! past this module knows it.

mod fence;
mod legacy;
#[cfg(test)]
pub(crate) use legacy::file as format_2_file;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::base::hash::fnv1a128;
use crate::base::keyed::Record;
use crate::stages::window::RecordDictionary;
use crate::stages::StatePart;
use crate::store::{SharedStore, StoreError};

/// Version of the snapshot format written by this build. Version 1 kept one
/// file for all partitions; version 2 one JSON file per partition; version
/// 3 keeps the records as held in memory.
pub const FORMAT_VERSION: u32 = 3;

/// The JSON format, still read.
const JSON_FORMAT: u32 = 2;

const MAGIC: &str = "sagak-checkpoint";

/// Why snapshots could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The state's store could not be used.
    #[error("cannot use the state's store at {0}. Check `engine.state_dir` and its permissions")]
    Store(#[from] StoreError),
    /// The state could not be encoded.
    #[error("cannot encode the state snapshot: {0}")]
    Encode(#[from] serde_json::Error),
    /// The thread writing a snapshot could not start or stopped abnormally.
    #[error("the state snapshot writer {0}; the previous snapshot stays the newest: check memory and `engine.state_dir`, then restart sagak, which resumes from that snapshot")]
    Writer(&'static str),
    /// A snapshot from another format version.
    #[error("snapshot {path} has format version {found}, this sagak reads versions {JSON_FORMAT} and {FORMAT_VERSION}: start the sagak version that wrote it, or move the state directory away to start empty (alerts already sent are then re-sent once)")]
    Incompatible {
        /// The snapshot, as its store names it.
        path: String,
        /// Its version.
        found: u32,
    },
}

/// Next offset to read of one input partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to consume.
    pub next_offset: i64,
}

/// Records of one stage part, copied for a snapshot
/// ([`Record::as_bytes`], one after another, in parts of a fixed size).
#[derive(Debug, Default)]
pub struct PartRecords {
    /// The copied bytes, in parts.
    pub chunks: Vec<Vec<u8>>,
    /// How many records the parts hold.
    pub count: usize,
}

impl PartRecords {
    /// Appends one record's bytes, in parts of `chunk` bytes: a part never
    /// grows, since a part that doubled would be copied each time (or
    /// remapped), inside the run loop's pause.
    pub fn push(&mut self, bytes: &[u8], chunk: usize) {
        match self.chunks.last_mut() {
            Some(last) if last.capacity() - last.len() >= bytes.len() => {
                last.extend_from_slice(bytes)
            }
            _ => {
                let mut fresh = Vec::with_capacity(chunk.max(bytes.len()));
                fresh.extend_from_slice(bytes);
                self.chunks.push(fresh);
            }
        }
        self.count += 1;
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

/// One shard's records, copied from the stateful stages for a snapshot:
/// one [`PartRecords`] per [`StatePart`].
#[derive(Debug, Default)]
pub struct ShardRecords {
    /// Records per part, indexed by [`StatePart::index`].
    pub parts: [PartRecords; StatePart::ALL.len()],
}

impl ShardRecords {
    /// Appends one record of `part` (see [`PartRecords::push`]).
    pub fn push(&mut self, part: StatePart, bytes: &[u8], chunk: usize) {
        self.parts[part.index()].push(bytes, chunk);
    }

    /// Takes over another copy's parts (of another lane).
    pub fn append(&mut self, other: ShardRecords) {
        for (mine, theirs) in self.parts.iter_mut().zip(other.parts) {
            mine.chunks.extend(theirs.chunks);
            mine.count += theirs.count;
        }
    }

    /// The records of `part`.
    pub fn part(&self, part: StatePart) -> &PartRecords {
        &self.parts[part.index()]
    }
}

/// The engine's state, copied for a snapshot (see
/// [`crate::engine::Engine::encode_state`]):
/// what the run loop hands to the thread that writes it.
#[derive(Debug, Default)]
pub struct EncodedState {
    /// Records per shard.
    pub shards: BTreeMap<i32, ShardRecords>,
    /// What the household records' numbers stand for.
    pub dictionary: RecordDictionary,
    /// Newest event time per feed, for each partition that saw a signal.
    pub partition_newest: BTreeMap<i32, Vec<Option<i64>>>,
    /// Fingerprint of the scoring SQL that decided the alert marks, when
    /// they cover every household at a priority (see
    /// [`crate::engine::Engine::list_candidates`]).
    pub scoring: Option<u64>,
}

/// The JSON head of a format-3 snapshot, before its records.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    pipeline: String,
    created_at_ms: i64,
    shard: i32,
    offsets: Vec<PartitionOffset>,
    feed_newest: Vec<Option<i64>>,
    dictionary: RecordDictionary,
    households: usize,
    marks: usize,
    /// Case records; absent (and no section) in snapshots of sagak before
    /// the case stage.
    #[serde(default)]
    cases: usize,
    /// See [`EncodedState::scoring`]; absent in snapshots of sagak before it.
    #[serde(default)]
    scoring: Option<u64>,
}

/// A snapshot read back from disk.
#[derive(Debug)]
pub struct Snapshot {
    /// Pipeline name it was taken from.
    pub pipeline: String,
    /// Wall clock when taken.
    pub created_at_ms: i64,
    /// The shard it holds.
    pub shard: i32,
    /// Input offsets the state corresponds to.
    pub offsets: Vec<PartitionOffset>,
    /// The shard's state.
    pub state: StoredRecords,
}

/// One shard's records as read from a snapshot, checked: every record is
/// whole and the counts match the head.
#[derive(Debug)]
pub struct StoredRecords {
    /// What the household records' numbers stand for.
    pub dictionary: RecordDictionary,
    /// True when the records number feeds by their position in the
    /// pipeline that reads them (format 2 did not name its feeds, and was
    /// always read that way); `dictionary.feeds` is then empty.
    pub feeds_by_position: bool,
    /// Newest event time per feed of the dictionary, on the shard's own
    /// partition (snapshots before per-partition event time: over all
    /// partitions, which is never earlier).
    pub feed_newest: Vec<Option<i64>>,
    /// See [`EncodedState::scoring`].
    pub scoring: Option<u64>,
    counts: [usize; StatePart::ALL.len()],
    /// The whole file (or the converted records); the ranges are the
    /// record sections of each part.
    file: Vec<u8>,
    sections: [Range<usize>; StatePart::ALL.len()],
}

impl StoredRecords {
    /// How many records of `part` there are.
    pub fn count(&self, part: StatePart) -> usize {
        self.counts[part.index()]
    }

    /// The records of `part`: id and payload.
    pub fn records(&self, part: StatePart) -> impl Iterator<Item = (&str, &[u8])> {
        parse_all(&self.file[self.sections[part.index()].clone()])
    }
}

fn parse_all(mut bytes: &[u8]) -> impl Iterator<Item = (&str, &[u8])> {
    std::iter::from_fn(move || Record::parse(&mut bytes))
}

/// Whole records in `bytes`; `None` when they do not end exactly at its end.
fn count_records(mut bytes: &[u8]) -> Option<usize> {
    let mut n = 0;
    while !bytes.is_empty() {
        Record::parse(&mut bytes)?;
        n += 1;
    }
    Some(n)
}

/// A snapshot's place among its shard's: (owner's epoch, sequence).
type Order = (u64, u64);

/// Snapshots of one shard, in one folder of the state's store.
pub struct CheckpointStore {
    store: SharedStore,
    /// The shard's folder, with its `/` (empty: the store's top).
    folder: String,
    keep: usize,
}

impl CheckpointStore {
    /// The snapshots in `folder` (`""` or ending in `/`) of `store`,
    /// keeping the newest `keep`.
    pub fn on(store: SharedStore, folder: String, keep: usize) -> Self {
        CheckpointStore {
            store,
            folder,
            keep: keep.max(1),
        }
    }

    /// The snapshots in the folder `dir`, keeping the newest `keep`.
    pub fn open(dir: &Path, keep: usize) -> Result<Self, CheckpointError> {
        Ok(Self::on(crate::store::open(dir)?, String::new(), keep))
    }

    /// Snapshot keys by (epoch, sequence), oldest first: a later owner's
    /// snapshots come after an earlier owner's, whatever their numbers.
    /// Names: `checkpoint-<seq>-e<epoch>.snap`, and `checkpoint-<seq>.snap`
    /// (`.json`) of before fencing, epoch 0.
    fn files(&self) -> Result<Vec<(Order, String)>, CheckpointError> {
        let mut files = Vec::new();
        for key in self.store.list(&self.folder)? {
            let order = key
                .strip_prefix(&self.folder)
                .and_then(|n| n.strip_prefix("checkpoint-"))
                .and_then(|n| n.strip_suffix(".snap").or_else(|| n.strip_suffix(".json")))
                .and_then(|n| {
                    let (seq, epoch) = n.split_once("-e").unwrap_or((n, "0"));
                    Some((epoch.parse::<u64>().ok()?, seq.parse::<u64>().ok()?))
                });
            if let Some(order) = order {
                files.push((order, key));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Writes one shard's snapshot under a key of its own at `epoch`
    /// (create-if-absent: nothing is overwritten) and returns the key. The
    /// caller publishes it ([`fence`]) and then prunes ([`Self::prune`]).
    fn write(
        &self,
        head: &Head,
        records: &ShardRecords,
        epoch: u64,
    ) -> Result<String, CheckpointError> {
        let head = serde_json::to_vec(head)?;
        let head_len = u32::try_from(head.len()).unwrap_or(u32::MAX).to_le_bytes();
        let lengths: Vec<[u8; 8]> = records
            .parts
            .iter()
            .map(|p| (p.len() as u64).to_le_bytes())
            .collect();
        // the body in the order it is written, as borrowed pieces: the head,
        // then each part's length and records
        let mut body: Vec<&[u8]> = vec![&head_len[..], &head];
        for (part, len) in records.parts.iter().zip(&lengths) {
            body.push(len);
            body.extend(part.chunks.iter().map(Vec::as_slice));
        }
        let mut sum = twox_hash::XxHash3_128::new();
        for piece in &body {
            sum.write(piece);
        }
        let len: usize = body.iter().map(|p| p.len()).sum();
        let header = format!(
            "{MAGIC} v{FORMAT_VERSION} len={len} xxh3={:032x}\n",
            sum.finish_128()
        );

        body.insert(0, header.as_bytes());
        let files = self.files()?;
        let mut seq = files.iter().map(|((_, s), _)| s + 1).max().unwrap_or(1);
        loop {
            let key = format!("{}checkpoint-{seq:012}-e{epoch}.snap", self.folder);
            if self.store.put_new(&key, &body)? {
                return Ok(key);
            }
            // another writer at this epoch took the number (a restart)
            seq += 1;
        }
    }

    /// Removes all but the newest `keep` snapshots, never `current`.
    fn prune(&self, current: &str) -> Result<(), CheckpointError> {
        let files = self.files()?;
        if files.len() > self.keep {
            for (_, old) in &files[..files.len() - self.keep] {
                if old != current {
                    let _ = self.store.delete(old);
                }
            }
        }
        Ok(())
    }

    /// The newest snapshot that passes its checks, or `None` when there is
    /// none. A damaged file is logged and skipped; a file of another format
    /// version stops the start with [`CheckpointError::Incompatible`].
    pub fn load_newest(&self) -> Result<Option<Snapshot>, CheckpointError> {
        // the published snapshot first; then, newest first, the rest (a
        // damaged published one, or a folder from before fencing)
        let published = fence::read(&self.store, &self.folder)?.and_then(|(m, _)| m.snapshot);
        let listed = self.files()?.into_iter().rev().map(|(_, key)| key);
        for key in published.into_iter().chain(listed) {
            let path = self.store.location(&key);
            let read = match self.store.get(&key)? {
                Some(bytes) => read_snapshot(bytes),
                // pruned by its writer since the listing
                None => continue,
            };
            match read {
                Ok(s) => return Ok(Some(s)),
                Err(Damage::Version(found)) => {
                    return Err(CheckpointError::Incompatible { path, found })
                }
                Err(Damage::Corrupt(why)) => {
                    tracing::error!(file = %path, %why, "state snapshot is damaged; falling back to the previous one");
                }
            }
        }
        Ok(None)
    }
}

/// The snapshots of every shard, in the state's store
/// (`engine.state_dir`).
#[derive(Debug, Clone)]
pub struct ShardedStore {
    store: SharedStore,
    keep: usize,
    /// This instance's claims on shards (see [`fence`]).
    claims: fence::Claims,
}

/// What [`ShardedStore::write_state`] did.
#[derive(Debug, Default)]
pub struct Written {
    /// Where each published snapshot is.
    pub files: Vec<String>,
    /// Shards another instance claimed since this one did: their snapshots
    /// were refused by the store and deleted.
    pub fenced: Vec<i32>,
}

impl ShardedStore {
    /// The snapshots in `store`, keeping the newest `keep` per shard. A
    /// store still in the one-file layout of format version 1 is refused
    /// with [`CheckpointError::Incompatible`].
    pub fn on(store: SharedStore, keep: usize) -> Result<Self, CheckpointError> {
        let legacy = CheckpointStore::on(store.clone(), String::new(), keep);
        if let Some((_, key)) = legacy.files()?.pop() {
            let path = store.location(&key);
            return Err(CheckpointError::Incompatible { path, found: 1 });
        }
        Ok(ShardedStore {
            store,
            keep,
            claims: fence::Claims::new(),
        })
    }

    /// The snapshots in the folder `root` (see [`ShardedStore::on`]).
    pub fn open(root: &Path, keep: usize) -> Result<Self, CheckpointError> {
        Self::on(crate::store::open(root)?, keep)
    }

    /// Where the snapshots are, for messages.
    pub fn location(&self) -> String {
        self.store.location("")
    }

    /// The store of one shard.
    pub fn shard(&self, shard: i32) -> Result<CheckpointStore, CheckpointError> {
        let folder = format!("partition-{shard:05}/");
        Ok(CheckpointStore::on(self.store.clone(), folder, self.keep))
    }

    /// Shards that have a snapshot, in order.
    pub fn shards(&self) -> Result<Vec<i32>, CheckpointError> {
        let mut shards: Vec<i32> = self
            .store
            .list("")?
            .iter()
            .filter_map(|key| {
                let (folder, _) = key.split_once('/')?;
                folder.strip_prefix("partition-")?.parse().ok()
            })
            .collect();
        shards.dedup();
        Ok(shards)
    }

    /// Writes one snapshot of each of `shards` from `state`, each with the
    /// offsets of its own partitions (a shard without state gets an empty
    /// snapshot, so that its offsets are kept), published only where this
    /// instance still holds the shard's claim (claimed first if it holds
    /// none).
    pub fn write_state(
        &self,
        pipeline: &str,
        now_ms: i64,
        state: &EncodedState,
        shards: impl IntoIterator<Item = i32>,
        offsets: &[PartitionOffset],
    ) -> Result<Written, CheckpointError> {
        let empty = ShardRecords::default();
        let mut written = Written::default();
        for shard in shards {
            let records = state.shards.get(&shard).unwrap_or(&empty);
            let head = Head {
                pipeline: pipeline.to_string(),
                created_at_ms: now_ms,
                shard,
                offsets: offsets
                    .iter()
                    .filter(|o| o.partition == shard)
                    .cloned()
                    .collect(),
                // the shard's own partition: event time is kept per partition
                feed_newest: state
                    .partition_newest
                    .get(&shard)
                    .cloned()
                    .unwrap_or_default(),
                dictionary: state.dictionary.clone(),
                households: records.part(StatePart::Households).count,
                marks: records.part(StatePart::Marks).count,
                cases: records.part(StatePart::Cases).count,
                scoring: state.scoring,
            };
            let store = self.shard(shard)?;
            let folder = &store.folder;
            let epoch = self.claims.epoch(&self.store, shard, folder)?;
            let key = store.write(&head, records, epoch)?;
            if self.claims.publish(&self.store, shard, folder, &key)? {
                store.prune(&key)?;
                written.files.push(self.store.location(&key));
            } else {
                let _ = self.store.delete(&key);
                tracing::warn!(
                    partition = shard,
                    "another instance claimed this partition: its snapshot was refused by the store"
                );
                written.fenced.push(shard);
            }
        }
        Ok(written)
    }

    /// Claims `shard` for this instance (it was assigned the partition):
    /// from now on a snapshot of any earlier owner is refused.
    pub fn claim(&self, shard: i32) -> Result<u64, CheckpointError> {
        let store = self.shard(shard)?;
        self.claims.claim(&self.store, shard, &store.folder)
    }

    /// The epoch of this instance's claim on `shard`, if it holds one.
    pub fn epoch_held(&self, shard: i32) -> Option<u64> {
        self.claims.epoch_held(shard)
    }

    /// Whether this instance still holds its claim on `shard` (false after
    /// another instance claimed it, e.g. while this one was paused).
    pub fn holds(&self, shard: i32) -> Result<bool, CheckpointError> {
        let store = self.shard(shard)?;
        self.claims.holds(&self.store, shard, &store.folder)
    }

    /// Hands the newest good snapshot of every shard to `take`, one shard's
    /// file in memory at a time (for offline use such as `sagak lists`).
    /// Returns how many shards had one.
    pub fn each_newest(&self, mut take: impl FnMut(Snapshot)) -> Result<usize, CheckpointError> {
        let mut found = 0;
        for shard in self.shards()? {
            if let Some(snapshot) = self.shard(shard)?.load_newest()? {
                take(snapshot);
                found += 1;
            }
        }
        Ok(found)
    }

    /// The newest good snapshot of every shard.
    pub fn load_all(&self) -> Result<Vec<Snapshot>, CheckpointError> {
        let mut all = Vec::new();
        for shard in self.shards()? {
            all.extend(self.shard(shard)?.load_newest()?);
        }
        Ok(all)
    }
}

enum Damage {
    Version(u32),
    Corrupt(String),
}

fn read_snapshot(bytes: Vec<u8>) -> Result<Snapshot, Damage> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| Damage::Corrupt("no header line".into()))?;
    let header = std::str::from_utf8(&bytes[..nl])
        .map_err(|_| Damage::Corrupt("header is not text".into()))?
        .to_string();
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(Damage::Corrupt("not a sagak checkpoint".into()));
    }
    let version = parts
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| Damage::Corrupt("no format version".into()))?;
    if version != FORMAT_VERSION && version != JSON_FORMAT {
        return Err(Damage::Version(version));
    }
    let body = &bytes[nl + 1..];
    let len = parts
        .next()
        .and_then(|l| l.strip_prefix("len="))
        .and_then(|l| l.parse::<usize>().ok());
    if len != Some(body.len()) {
        return Err(Damage::Corrupt(format!(
            "length {} does not match the header (partial write?)",
            body.len()
        )));
    }
    let sum = parts.next();
    let good = match version {
        JSON_FORMAT => {
            sum.and_then(|s| s.strip_prefix("fnv128="))
                == Some(format!("{:032x}", fnv1a128(&[body])).as_str())
        }
        _ => {
            sum.and_then(|s| s.strip_prefix("xxh3="))
                == Some(format!("{:032x}", twox_hash::XxHash3_128::oneshot(body)).as_str())
        }
    };
    if !good {
        return Err(Damage::Corrupt("checksum mismatch".into()));
    }
    if version == JSON_FORMAT {
        return legacy::read(body).map_err(|e| Damage::Corrupt(e.to_string()));
    }
    let start = nl + 1;
    read_records(bytes, start)
        .ok_or_else(|| Damage::Corrupt("records do not match the head".into()))
}

/// A format-3 body: `[head length, u32 LE][head JSON]`, then for each part
/// (households, marks, cases) `[length, u64 LE][records]`; snapshots from
/// before the case stage end after the marks.
/// The file's bytes are kept whole (a multi-gigabyte body is not moved);
/// the body starts at `start`.
fn read_records(file: Vec<u8>, start: usize) -> Option<Snapshot> {
    let section = |at: usize, width: usize| -> Option<Range<usize>> {
        // written with `to_le_bytes` of a u32 (width 4) or u64 (width 8)
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(file.get(at..at + width)?);
        let len = u64::from_le_bytes(le);
        let start = at + width;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= file.len()).then_some(start..end)
    };
    let head_at = section(start, 4)?;
    let head: Head = serde_json::from_slice(&file[head_at.clone()]).ok()?;
    let households = section(head_at.end, 8)?;
    let marks = section(households.end, 8)?;
    // snapshots from before the case stage end after the marks
    let cases = if marks.end == file.len() {
        marks.end..marks.end
    } else {
        section(marks.end, 8)?
    };
    let whole = cases.end == file.len()
        && count_records(&file[households.clone()]) == Some(head.households)
        && count_records(&file[marks.clone()]) == Some(head.marks)
        && count_records(&file[cases.clone()]) == Some(head.cases);
    whole.then_some(Snapshot {
        pipeline: head.pipeline,
        created_at_ms: head.created_at_ms,
        shard: head.shard,
        offsets: head.offsets,
        state: StoredRecords {
            dictionary: head.dictionary,
            feeds_by_position: false,
            feed_newest: head.feed_newest,
            scoring: head.scoring,
            counts: [head.households, head.marks, head.cases],
            file,
            sections: [households, marks, cases],
        },
    })
}

/// A snapshot being written on a thread of its own, so that the run loop
/// goes on consuming while the state reaches the disk. Its offsets are
/// committed once it is durable ([`BackgroundWrite::finish`]).
pub struct BackgroundWrite {
    thread: std::thread::JoinHandle<Result<(Duration, Vec<i32>), CheckpointError>>,
    offsets: Vec<PartitionOffset>,
}

/// A background write done.
#[derive(Debug)]
pub struct Finished {
    /// The offsets of the partitions whose snapshots were published: to
    /// commit.
    pub offsets: Vec<PartitionOffset>,
    /// How long the write took.
    pub took: Duration,
    /// Partitions whose snapshots the store refused (another owner).
    pub fenced: Vec<i32>,
}

impl BackgroundWrite {
    /// Starts writing `state` for `shards` (see [`ShardedStore::write_state`]).
    pub fn start(
        store: ShardedStore,
        pipeline: String,
        now_ms: i64,
        state: EncodedState,
        shards: Vec<i32>,
        offsets: Vec<PartitionOffset>,
    ) -> Result<Self, CheckpointError> {
        let own = offsets.clone();
        let thread = std::thread::Builder::new()
            .name("sagak-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let written = store.write_state(&pipeline, now_ms, &state, shards, &own)?;
                Ok((started.elapsed(), written.fenced))
            })
            .map_err(|_| CheckpointError::Writer("thread could not start"))?;
        Ok(BackgroundWrite { thread, offsets })
    }

    /// True once the write is done (or failed); [`Self::finish`] then does
    /// not wait.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the write: the offsets to commit (not those of a fenced
    /// partition, whose snapshot is not the store's), how long it took.
    pub fn finish(self) -> Result<Finished, CheckpointError> {
        let (took, fenced) = self
            .thread
            .join()
            .map_err(|_| CheckpointError::Writer("stopped abnormally"))??;
        let mut offsets = self.offsets;
        offsets.retain(|o| !fenced.contains(&o.partition));
        Ok(Finished {
            offsets,
            took,
            fenced,
        })
    }
}

#[cfg(test)]
mod tests;
