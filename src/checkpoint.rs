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

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::alert::{AlertMark, AlertState};
use crate::engine::{Engine, EngineState, ShardView};
use crate::hash::fnv1a128;
use crate::window::{HeldHousehold, WindowState};

/// Version of the snapshot format written by this build. Version 1 kept one
/// file for all partitions; version 2 keeps one directory per partition.
pub const FORMAT_VERSION: u32 = 2;

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
    /// A snapshot from another format version.
    #[error("snapshot {path} has format version {found}, this sagak reads version {FORMAT_VERSION}: start the sagak version that wrote it, or move the state directory away to start empty (alerts already sent are then re-sent once)")]
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

/// One shard's state, borrowed, as it is written to a snapshot. It reads
/// back as a [`Snapshot`]. `H` is a household as the window stage lends it
/// ([`HeldHousehold`]); anything that serializes as a
/// [`crate::window::Household`] will do.
#[derive(Debug, Serialize)]
pub struct SnapshotRef<'a, H: Serialize = HeldHousehold<'a>> {
    /// Pipeline name.
    pub pipeline: &'a str,
    /// Wall clock when taken.
    pub created_at_ms: i64,
    /// The shard (input partition number).
    pub shard: i32,
    /// Input offsets of the shard's partitions the state corresponds to.
    pub offsets: &'a [PartitionOffset],
    /// The shard's window state.
    pub windows: WindowsRef<'a, H>,
    /// The shard's alert state.
    pub alerts: AlertsRef<'a>,
}

/// Borrowed window state of one shard; serializes like [`WindowState`].
#[derive(Debug, Serialize)]
pub struct WindowsRef<'a, H: Serialize = HeldHousehold<'a>> {
    /// Households of the shard.
    pub households: MapRef<'a, H>,
    /// Newest event time per feed.
    pub feed_newest: &'a [Option<i64>],
}

/// Borrowed alert state of one shard; serializes like [`AlertState`].
#[derive(Debug, Serialize)]
pub struct AlertsRef<'a> {
    /// Last alert per household of the shard.
    pub marks: MapRef<'a, AlertMark>,
}

/// Borrowed map entries, serialized as a map; lets one pass over the state
/// split it into shards without copying it.
#[derive(Debug)]
pub struct MapRef<'a, V>(pub &'a [(&'a str, V)]);

impl<V: Serialize> Serialize for MapRef<'_, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A snapshot read back from disk.
#[derive(Debug, Deserialize)]
pub struct Snapshot {
    /// Pipeline name it was taken from.
    pub pipeline: String,
    /// Wall clock when taken.
    pub created_at_ms: i64,
    /// The shard it holds.
    pub shard: i32,
    /// Input offsets the state corresponds to.
    pub offsets: Vec<PartitionOffset>,
    /// Window stage state.
    pub windows: WindowState,
    /// Alert stage state.
    pub alerts: AlertState,
}

impl Snapshot {
    /// The engine part of the snapshot.
    pub fn into_state(self) -> (EngineState, Vec<PartitionOffset>) {
        (
            EngineState {
                windows: self.windows,
                alerts: self.alerts,
            },
            self.offsets,
        )
    }
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
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                files.push((seq, path));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Writes `snapshot` atomically and prunes old ones. Returns the file
    /// written.
    pub fn write<H: Serialize>(
        &self,
        snapshot: &SnapshotRef<'_, H>,
    ) -> Result<PathBuf, CheckpointError> {
        let body = serde_json::to_vec(snapshot)?;
        let files = self.files()?;
        let seq = files.last().map_or(1, |(s, _)| s + 1);
        let path = self.dir.join(format!("checkpoint-{seq:012}.json"));
        let tmp = self.dir.join(format!(".checkpoint-{seq:012}.tmp"));
        let header = format!(
            "{MAGIC} v{FORMAT_VERSION} len={} fnv128={:032x}\n",
            body.len(),
            fnv1a128(&[&body])
        );
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(header.as_bytes())?;
            f.write_all(&body)?;
            f.sync_all()?;
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

    /// Writes one snapshot of each of `shards` of `engine`, each with the
    /// offsets of its own partitions. Returns the files written.
    pub fn write_shards(
        &self,
        pipeline: &str,
        now_ms: i64,
        engine: &Engine,
        shards: impl IntoIterator<Item = i32>,
        offsets: &[PartitionOffset],
    ) -> Result<Vec<PathBuf>, CheckpointError> {
        let views = engine.checkpoint();
        let empty = ShardView::default();
        let mut files = Vec::new();
        for shard in shards {
            let view = views.get(&shard).unwrap_or(&empty);
            let own: Vec<PartitionOffset> = offsets
                .iter()
                .filter(|o| o.partition == shard)
                .cloned()
                .collect();
            files.push(self.shard(shard)?.write(&SnapshotRef {
                pipeline,
                created_at_ms: now_ms,
                shard,
                offsets: &own,
                windows: WindowsRef {
                    households: MapRef(&view.households),
                    feed_newest: engine.feed_newest(),
                },
                alerts: AlertsRef {
                    marks: MapRef(&view.marks),
                },
            })?);
        }
        Ok(files)
    }

    /// Restores the newest good snapshot of every shard into `engine` (for
    /// offline use such as `sagak lists`). Returns the shards restored.
    pub fn restore_all(&self, engine: &mut Engine) -> Result<usize, CheckpointError> {
        let snapshots = self.load_all()?;
        let shards = snapshots.len();
        for snapshot in snapshots {
            engine.restore_shard(snapshot.into_state().0);
        }
        Ok(shards)
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
        .map_err(|_| Damage::Corrupt("header is not text".into()))?;
    let body = &bytes[nl + 1..];
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(Damage::Corrupt("not a sagak checkpoint".into()));
    }
    let version = parts
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| Damage::Corrupt("no format version".into()))?;
    if version != FORMAT_VERSION {
        return Err(Damage::Version(version));
    }
    let len = parts
        .next()
        .and_then(|l| l.strip_prefix("len="))
        .and_then(|l| l.parse::<usize>().ok());
    let sum = parts.next().and_then(|s| s.strip_prefix("fnv128="));
    if len != Some(body.len()) {
        return Err(Damage::Corrupt(format!(
            "length {} does not match the header (partial write?)",
            body.len()
        )));
    }
    if sum != Some(format!("{:032x}", fnv1a128(&[body])).as_str()) {
        return Err(Damage::Corrupt("checksum mismatch".into()));
    }
    serde_json::from_slice(body).map_err(|e| Damage::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(store: &CheckpointStore, household: &str, offsets: &[PartitionOffset]) -> PathBuf {
        let entry = crate::window::Household::default();
        store
            .write(&SnapshotRef {
                pipeline: "default",
                created_at_ms: 1,
                shard: 3,
                offsets,
                windows: WindowsRef {
                    households: MapRef(&[(household, &entry)]),
                    feed_newest: &[],
                },
                alerts: AlertsRef { marks: MapRef(&[]) },
            })
            .unwrap()
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
        assert_eq!((snap.offsets, snap.shard), (offsets, 3));
        assert!(snap.windows.households.contains_key("hh-3"));
    }

    #[test]
    fn a_damaged_snapshot_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 5).unwrap();
        write(&store, "hh-1", &[]);
        let newest = write(&store, "hh-2", &[]);
        let mut bytes = fs::read(&newest).unwrap();
        bytes.truncate(bytes.len() - 3);
        fs::write(&newest, bytes).unwrap();
        let snap = store.load_newest().unwrap().unwrap();
        assert!(snap.windows.households.contains_key("hh-1"));
    }

    #[test]
    fn another_format_version_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 5).unwrap();
        let path = write(&store, "hh-1", &[]);
        let text = fs::read_to_string(&path).unwrap().replacen("v2 ", "v9 ", 1);
        fs::write(&path, text).unwrap();
        let err = store.load_newest().unwrap_err().to_string();
        assert!(err.contains("format version 9"), "{err}");
    }

    #[test]
    fn each_shard_has_its_own_directory_and_the_old_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sharded = ShardedStore::open(dir.path(), 2).unwrap();
        write(&sharded.shard(3).unwrap(), "hh-3", &[]);
        write(&sharded.shard(11).unwrap(), "hh-11", &[]);
        assert_eq!(sharded.shards().unwrap(), vec![3, 11]);
        let all = sharded.load_all().unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[1].windows.households.contains_key("hh-11"));

        // a version-1 directory had its snapshot files at the top
        fs::write(dir.path().join("checkpoint-000000000001.json"), "x").unwrap();
        let err = ShardedStore::open(dir.path(), 2).unwrap_err().to_string();
        assert!(err.contains("format version 1"), "{err}");
    }
}
