//! Snapshots of the engine state and the input offsets they correspond to.
//!
//! A snapshot is written to a temporary file, synced, then renamed, so a
//! crash leaves either the old or the new file, never half of one. Each file
//! starts with a header line carrying the format version, the body length
//! and a checksum; a file that fails either check is skipped with a loud log
//! line and the previous one is used. The newest `keep` files are kept.
//!
//! State is sharded by input partition (see [`crate::window::Household`]):
//! each shard has its own directory `partition-NNNNN` under
//! `engine.state_dir`, so when the consumer group moves a partition to
//! another instance, that instance loads the shard's newest snapshot and
//! seeks to its offsets. Instances of one group therefore share the state
//! directory (a network or cloud file system mount).
//!
//! Format 3 stores the stages' household and alert records exactly as they
//! are held in memory ([`crate::keyed::Record`]), after a short JSON head
//! (offsets, newest event times, and the [`RecordDictionary`] that says
//! what the records' numbers stand for). Taking one is a copy of bytes, not
//! a decode of every household, so the run loop pauses only for the copy
//! and a [`BackgroundWrite`] puts it on disk while consuming goes on.
//! Format 2 (the whole state as JSON) is still read, so an upgrade keeps
//! its state.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::alert::AlertState;
use crate::engine::{Engine, EngineState};
use crate::hash::fnv1a128;
use crate::keyed::Record;
use crate::window::{RecordDictionary, WindowState};

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
    /// The state directory could not be used.
    #[error(
        "cannot use state directory {dir}: {error}. Check `engine.state_dir` and its permissions"
    )]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The state could not be encoded.
    #[error("cannot encode the state snapshot: {0}")]
    Encode(#[from] serde_json::Error),
    /// The thread writing a snapshot could not start or stopped abnormally.
    #[error("the state snapshot writer {0}; the previous snapshot stays the newest: check memory and `engine.state_dir`, then restart sagak, which resumes from that snapshot")]
    Writer(&'static str),
    /// A snapshot from another format version.
    #[error("snapshot {path} has format version {found}, this sagak reads versions {JSON_FORMAT} and {FORMAT_VERSION}: start the sagak version that wrote it, or move the state directory away to start empty (alerts already sent are then re-sent once)")]
    Incompatible {
        /// The file.
        path: PathBuf,
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

/// One shard's records, copied from the stages for a snapshot
/// ([`Record::as_bytes`], one after another; one part per engine lane).
#[derive(Debug, Default)]
pub struct ShardRecords {
    /// Household records of the window stage.
    pub households: Vec<Vec<u8>>,
    /// How many household records the parts hold.
    pub household_count: usize,
    /// Mark records of the alert stage.
    pub marks: Vec<Vec<u8>>,
    /// How many mark records the parts hold.
    pub mark_count: usize,
}

/// The engine's state, copied for a snapshot (see [`Engine::encode_state`]):
/// what the run loop hands to the thread that writes it.
#[derive(Debug, Default)]
pub struct EncodedState {
    /// Records per shard.
    pub shards: BTreeMap<i32, ShardRecords>,
    /// What the household records' numbers stand for.
    pub dictionary: RecordDictionary,
    /// Newest event time per feed.
    pub feed_newest: Vec<Option<i64>>,
    /// Fingerprint of the scoring SQL that decided the alert marks, when
    /// they cover every household at a priority (see
    /// [`Engine::list_candidates`]).
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
    /// See [`EncodedState::scoring`]; absent in snapshots of sagak before it.
    #[serde(default)]
    scoring: Option<u64>,
}

/// A format-2 snapshot (JSON).
#[derive(Debug, Deserialize)]
struct JsonSnapshot {
    pipeline: String,
    created_at_ms: i64,
    shard: i32,
    offsets: Vec<PartitionOffset>,
    windows: WindowState,
    alerts: AlertState,
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
    pub state: ShardState,
}

/// A shard's state as its snapshot file holds it.
#[derive(Debug)]
pub enum ShardState {
    /// Format 2: households and marks, decoded from JSON.
    Decoded(EngineState),
    /// Format 3: the stages' records.
    Records(StoredRecords),
}

impl ShardState {
    /// Households with live signals in the shard.
    pub fn households(&self) -> usize {
        match self {
            ShardState::Decoded(state) => state.windows.households.len(),
            ShardState::Records(stored) => stored.household_count(),
        }
    }
}

/// One shard's records as read from a format-3 snapshot, checked: every
/// record is whole and the counts match the head.
#[derive(Debug)]
pub struct StoredRecords {
    /// What the household records' numbers stand for.
    pub dictionary: RecordDictionary,
    /// Newest event time per feed of the dictionary.
    pub feed_newest: Vec<Option<i64>>,
    /// See [`EncodedState::scoring`].
    pub scoring: Option<u64>,
    household_count: usize,
    mark_count: usize,
    /// The whole file; the ranges below are its record sections.
    file: Vec<u8>,
    households: Range<usize>,
    marks: Range<usize>,
}

impl StoredRecords {
    /// How many household records there are.
    pub fn household_count(&self) -> usize {
        self.household_count
    }

    /// How many alert mark records there are.
    pub fn mark_count(&self) -> usize {
        self.mark_count
    }

    /// Household records: id and payload.
    pub fn households(&self) -> impl Iterator<Item = (&str, &[u8])> {
        parse_all(&self.file[self.households.clone()])
    }

    /// Alert mark records: id and payload.
    pub fn marks(&self) -> impl Iterator<Item = (&str, &[u8])> {
        parse_all(&self.file[self.marks.clone()])
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

/// Snapshot files of one shard, in one directory.
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointStore {
    /// Opens (creating) `dir`, keeping the newest `keep` snapshots.
    pub fn open(dir: &Path, keep: usize) -> Result<Self, CheckpointError> {
        fs::create_dir_all(dir).map_err(|error| CheckpointError::Io {
            dir: dir.to_path_buf(),
            error,
        })?;
        Ok(CheckpointStore {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        })
    }

    fn io(&self, error: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            dir: self.dir.clone(),
            error,
        }
    }

    /// Snapshot files, oldest first.
    fn files(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let path = entry.map_err(|e| self.io(e))?.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("checkpoint-"))
                .and_then(|n| n.strip_suffix(".snap").or_else(|| n.strip_suffix(".json")))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                files.push((seq, path));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Writes one shard's snapshot atomically and prunes old ones. Returns
    /// the file written.
    fn write(&self, head: &Head, records: &ShardRecords) -> Result<PathBuf, CheckpointError> {
        let head = serde_json::to_vec(head)?;
        let head_len = u32::try_from(head.len()).unwrap_or(u32::MAX).to_le_bytes();
        let section_len =
            |parts: &[Vec<u8>]| (parts.iter().map(Vec::len).sum::<usize>() as u64).to_le_bytes();
        let households_len = section_len(&records.households);
        let marks_len = section_len(&records.marks);
        // the body in the order it is written, as borrowed pieces
        let body: Vec<&[u8]> = [&head_len[..], &head, &households_len]
            .into_iter()
            .chain(records.households.iter().map(Vec::as_slice))
            .chain([&marks_len[..]])
            .chain(records.marks.iter().map(Vec::as_slice))
            .collect();
        let mut sum = twox_hash::XxHash3_128::new();
        for piece in &body {
            sum.write(piece);
        }
        let len: usize = body.iter().map(|p| p.len()).sum();
        let header = format!(
            "{MAGIC} v{FORMAT_VERSION} len={len} xxh3={:032x}\n",
            sum.finish_128()
        );

        let files = self.files()?;
        let seq = files.last().map_or(1, |(s, _)| s + 1);
        let path = self.dir.join(format!("checkpoint-{seq:012}.snap"));
        let tmp = self.dir.join(format!(".checkpoint-{seq:012}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = BufWriter::with_capacity(1 << 20, fs::File::create(&tmp)?);
            f.write_all(header.as_bytes())?;
            for piece in &body {
                f.write_all(piece)?;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            fs::rename(&tmp, &path)?;
            // make the rename itself durable
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| self.io(e))?;
        let files = self.files()?;
        if files.len() > self.keep {
            for (_, old) in &files[..files.len() - self.keep] {
                let _ = fs::remove_file(old);
            }
        }
        Ok(path)
    }

    /// The newest snapshot that passes its checks, or `None` when there is
    /// none. A damaged file is logged and skipped; a file of another format
    /// version stops the start with [`CheckpointError::Incompatible`].
    pub fn load_newest(&self) -> Result<Option<Snapshot>, CheckpointError> {
        for (_, path) in self.files()?.into_iter().rev() {
            match read_snapshot(&path) {
                Ok(s) => return Ok(Some(s)),
                Err(Damage::Version(found)) => {
                    return Err(CheckpointError::Incompatible { path, found })
                }
                Err(Damage::Corrupt(why)) => {
                    tracing::error!(file = %path.display(), %why, "state snapshot is damaged; falling back to the previous one");
                }
            }
        }
        Ok(None)
    }
}

/// The snapshot directories of every shard under `engine.state_dir`.
#[derive(Debug, Clone)]
pub struct ShardedStore {
    root: PathBuf,
    keep: usize,
}

impl ShardedStore {
    /// Opens (creating) `root`, keeping the newest `keep` snapshots per
    /// shard. A directory still in the one-file layout of format version 1
    /// is refused with [`CheckpointError::Incompatible`].
    pub fn open(root: &Path, keep: usize) -> Result<Self, CheckpointError> {
        let legacy = CheckpointStore::open(root, keep)?;
        if let Some((_, path)) = legacy.files()?.pop() {
            return Err(CheckpointError::Incompatible { path, found: 1 });
        }
        Ok(ShardedStore {
            root: root.to_path_buf(),
            keep,
        })
    }

    /// The store of one shard.
    pub fn shard(&self, shard: i32) -> Result<CheckpointStore, CheckpointError> {
        CheckpointStore::open(&self.root.join(format!("partition-{shard:05}")), self.keep)
    }

    /// Shards that have a directory, in order.
    pub fn shards(&self) -> Result<Vec<i32>, CheckpointError> {
        let io = |error| CheckpointError::Io {
            dir: self.root.clone(),
            error,
        };
        let mut shards = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("partition-"))
                .and_then(|n| n.parse::<i32>().ok())
            {
                shards.push(n);
            }
        }
        shards.sort_unstable();
        Ok(shards)
    }

    /// Writes one snapshot of each of `shards` from `state`, each with the
    /// offsets of its own partitions (a shard without state gets an empty
    /// snapshot, so that its offsets are kept). Returns the files written.
    pub fn write_state(
        &self,
        pipeline: &str,
        now_ms: i64,
        state: &EncodedState,
        shards: impl IntoIterator<Item = i32>,
        offsets: &[PartitionOffset],
    ) -> Result<Vec<PathBuf>, CheckpointError> {
        let empty = ShardRecords::default();
        let mut files = Vec::new();
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
                feed_newest: state.feed_newest.clone(),
                dictionary: state.dictionary.clone(),
                households: records.household_count,
                marks: records.mark_count,
                scoring: state.scoring,
            };
            files.push(self.shard(shard)?.write(&head, records)?);
        }
        Ok(files)
    }

    /// Restores the newest good snapshot of every shard into `engine` (for
    /// offline use such as `sagak lists`). Returns the shards restored.
    pub fn restore_all(&self, engine: &mut Engine) -> Result<usize, CheckpointError> {
        let mut restored = 0;
        // one shard's file in memory at a time
        for shard in self.shards()? {
            if let Some(snapshot) = self.shard(shard)?.load_newest()? {
                engine.restore_shard(snapshot.state);
                restored += 1;
            }
        }
        Ok(restored)
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

fn read_snapshot(path: &Path) -> Result<Snapshot, Damage> {
    let bytes = fs::read(path).map_err(|e| Damage::Corrupt(e.to_string()))?;
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
        let json: JsonSnapshot =
            serde_json::from_slice(body).map_err(|e| Damage::Corrupt(e.to_string()))?;
        return Ok(Snapshot {
            pipeline: json.pipeline,
            created_at_ms: json.created_at_ms,
            shard: json.shard,
            offsets: json.offsets,
            state: ShardState::Decoded(EngineState {
                windows: json.windows,
                alerts: json.alerts,
            }),
        });
    }
    let start = nl + 1;
    read_records(bytes, start)
        .ok_or_else(|| Damage::Corrupt("records do not match the head".into()))
}

/// A format-3 body: `[head length, u32 LE][head JSON][households length,
/// u64 LE][household records][marks length, u64 LE][mark records]`.
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
    let whole = marks.end == file.len()
        && count_records(&file[households.clone()]) == Some(head.households)
        && count_records(&file[marks.clone()]) == Some(head.marks);
    whole.then_some(Snapshot {
        pipeline: head.pipeline,
        created_at_ms: head.created_at_ms,
        shard: head.shard,
        offsets: head.offsets,
        state: ShardState::Records(StoredRecords {
            dictionary: head.dictionary,
            feed_newest: head.feed_newest,
            scoring: head.scoring,
            household_count: head.households,
            mark_count: head.marks,
            file,
            households,
            marks,
        }),
    })
}

/// A snapshot being written on a thread of its own, so that the run loop
/// goes on consuming while the state reaches the disk. Its offsets are
/// committed once it is durable ([`BackgroundWrite::finish`]).
pub struct BackgroundWrite {
    thread: std::thread::JoinHandle<Result<Duration, CheckpointError>>,
    offsets: Vec<PartitionOffset>,
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
                store.write_state(&pipeline, now_ms, &state, shards, &own)?;
                Ok(started.elapsed())
            })
            .map_err(|_| CheckpointError::Writer("thread could not start"))?;
        Ok(BackgroundWrite { thread, offsets })
    }

    /// True once the write is done (or failed); [`Self::finish`] then does
    /// not wait.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the write. Returns the offsets the snapshot holds, to
    /// commit, and how long the write took.
    pub fn finish(self) -> Result<(Vec<PartitionOffset>, Duration), CheckpointError> {
        let took = self
            .thread
            .join()
            .map_err(|_| CheckpointError::Writer("stopped abnormally"))??;
        Ok((self.offsets, took))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard state holding one household record and one mark record
    /// (the store does not read payloads; the stages do).
    fn state(household: &str) -> EncodedState {
        let records = ShardRecords {
            households: vec![Record::new(household, b"signals").as_bytes().to_vec()],
            household_count: 1,
            marks: vec![
                Vec::new(),
                Record::new(household, b"mark").as_bytes().to_vec(),
            ],
            mark_count: 1,
        };
        EncodedState {
            shards: BTreeMap::from([(3, records)]),
            dictionary: RecordDictionary {
                feeds: vec!["job-loss".into()],
                symbols: vec!["premium".into()],
            },
            feed_newest: vec![Some(7)],
            scoring: Some(42),
        }
    }

    fn write(store: &CheckpointStore, household: &str, offsets: &[PartitionOffset]) -> PathBuf {
        let state = state(household);
        let head = Head {
            pipeline: "default".into(),
            created_at_ms: 1,
            shard: 3,
            offsets: offsets.to_vec(),
            feed_newest: state.feed_newest.clone(),
            dictionary: state.dictionary.clone(),
            households: 1,
            marks: 1,
            scoring: state.scoring,
        };
        store.write(&head, &state.shards[&3]).unwrap()
    }

    fn households(snapshot: &Snapshot) -> Vec<String> {
        match &snapshot.state {
            ShardState::Records(stored) => stored.households().map(|(id, _)| id.into()).collect(),
            ShardState::Decoded(state) => state
                .windows
                .households
                .keys()
                .map(|id| id.to_string())
                .collect(),
        }
    }

    #[test]
    fn newest_snapshot_round_trips_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        let offsets = vec![PartitionOffset {
            topic: "signals.job-loss".into(),
            partition: 3,
            next_offset: 42,
        }];
        for hh in ["hh-1", "hh-2", "hh-3"] {
            write(&store, hh, &offsets);
        }
        assert_eq!(store.files().unwrap().len(), 2);
        let snap = store.load_newest().unwrap().unwrap();
        assert_eq!((&snap.offsets, snap.shard), (&offsets, 3));
        assert_eq!(households(&snap), ["hh-3"]);
        let ShardState::Records(stored) = &snap.state else {
            panic!("format 3 holds records");
        };
        assert_eq!(stored.households().next(), Some(("hh-3", &b"signals"[..])));
        assert_eq!(stored.marks().collect::<Vec<_>>(), [("hh-3", &b"mark"[..])]);
        assert_eq!(stored.dictionary, state("x").dictionary);
        assert_eq!(stored.feed_newest, [Some(7)]);
    }

    #[test]
    fn a_damaged_snapshot_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 5).unwrap();
        write(&store, "hh-1", &[]);
        let newest = write(&store, "hh-2", &[]);
        let good = fs::read(&newest).unwrap();
        // cut short (a partial write), and one byte of a record changed
        let mut cut = good.clone();
        cut.truncate(good.len() - 3);
        let mut flipped = good.clone();
        let at = good.len() - 10;
        flipped[at] ^= 0x20;
        for damaged in [cut, flipped] {
            fs::write(&newest, damaged).unwrap();
            let snap = store.load_newest().unwrap().unwrap();
            assert_eq!(households(&snap), ["hh-1"]);
        }
    }

    #[test]
    fn another_format_version_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 5).unwrap();
        let path = write(&store, "hh-1", &[]);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(4).position(|w| w == b" v3 ").unwrap();
        bytes[at + 2] = b'9';
        fs::write(&path, bytes).unwrap();
        let err = store.load_newest().unwrap_err().to_string();
        assert!(err.contains("format version 9"), "{err}");
    }

    #[test]
    fn a_json_snapshot_of_format_2_still_restores() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 5).unwrap();
        let body = serde_json::json!({
            "pipeline": "default",
            "created_at_ms": 1,
            "shard": 3,
            "offsets": [{"topic": "signals.job-loss", "partition": 3, "next_offset": 42}],
            "windows": {
                "households": {"hh-9": {"shard": 3, "signals": []}},
                "feed_newest": [7]
            },
            "alerts": {"marks": {}}
        })
        .to_string();
        let header = format!(
            "{MAGIC} v2 len={} fnv128={:032x}\n",
            body.len(),
            fnv1a128(&[body.as_bytes()])
        );
        fs::write(
            dir.path().join("checkpoint-000000000001.json"),
            header + &body,
        )
        .unwrap();
        let snap = store.load_newest().unwrap().unwrap();
        assert_eq!(households(&snap), ["hh-9"]);
        assert_eq!(snap.offsets[0].next_offset, 42);
        // the next snapshot is format 3 and newer
        write(&store, "hh-10", &[]);
        assert_eq!(
            households(&store.load_newest().unwrap().unwrap()),
            ["hh-10"]
        );
    }

    #[test]
    fn each_shard_has_its_own_directory_and_the_old_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sharded = ShardedStore::open(dir.path(), 2).unwrap();
        let files = sharded
            .write_state("default", 1, &state("hh-3"), [3, 11], &[])
            .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(sharded.shards().unwrap(), vec![3, 11]);
        let all = sharded.load_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(households(&all[0]), ["hh-3"]);
        // a shard without state still records its offsets, with no households
        assert_eq!((all[1].shard, all[1].state.households()), (11, 0));

        // a version-1 directory had its snapshot files at the top
        fs::write(dir.path().join("checkpoint-000000000001.json"), "x").unwrap();
        let err = ShardedStore::open(dir.path(), 2).unwrap_err().to_string();
        assert!(err.contains("format version 1"), "{err}");
    }
}
