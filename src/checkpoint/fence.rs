//! Fencing: only a partition's current owner can make a snapshot current.
//!
//! Each shard's folder holds `manifest.json`: the owner's epoch, who it
//! is, and the snapshot that is current. An instance that receives a
//! partition *claims* it: it raises the epoch with a compare-and-swap on
//! the manifest. A snapshot is first written under a key of its own
//! (create-if-absent, so nothing is ever overwritten), then *published* by
//! a compare-and-swap on the manifest from the version this instance last
//! wrote. An instance that was paused (a frozen VM, a long stall, a network
//! split) while another claimed the partition still holds the older
//! version: the store refuses its publish, however late it wakes, and its
//! snapshot is deleted unread. No check races with the write: the store's
//! conditional put is the check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::CheckpointError;
use crate::store::{SharedStore, Version};

/// `partition-NNNNN/manifest.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Raised by each claim.
    pub(crate) epoch: u64,
    /// The claiming instance (host and process), for the operator.
    pub(crate) owner: String,
    /// The current snapshot's key, once one is published.
    pub(crate) snapshot: Option<String>,
}

/// This instance's claim on one shard.
#[derive(Debug, Clone)]
struct Claim {
    epoch: u64,
    /// The manifest's version as this instance last wrote it.
    version: Version,
}

/// The claims of this instance, shared by its writers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claims {
    held: Arc<Mutex<HashMap<i32, Claim>>>,
    me: Arc<str>,
}

/// Who this instance is, in manifests.
fn me() -> String {
    format!("{}/{}", crate::store::host_name(), std::process::id())
}

/// The manifest key of the shard folder `folder`.
pub(crate) fn manifest_key(folder: &str) -> String {
    format!("{folder}manifest.json")
}

/// The manifest of `folder` and its version, if any.
pub(crate) fn read(
    store: &SharedStore,
    folder: &str,
) -> Result<Option<(Manifest, Version)>, CheckpointError> {
    let Some((bytes, version)) = store.get_versioned(&manifest_key(folder))? else {
        return Ok(None);
    };
    let manifest = serde_json::from_slice(&bytes)?;
    Ok(Some((manifest, version)))
}

impl Claims {
    pub(crate) fn new() -> Self {
        Claims {
            held: Arc::default(),
            me: me().into(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Claim>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `shard` (in `folder`) for this instance: its epoch is one
    /// above the manifest's. Retries when another instance claims at the
    /// same moment; returns the epoch.
    pub(crate) fn claim(
        &self,
        store: &SharedStore,
        shard: i32,
        folder: &str,
    ) -> Result<u64, CheckpointError> {
        for _ in 0..16 {
            let current = read(store, folder)?;
            let (old, expected) = match current {
                Some((m, v)) => (m, Some(v)),
                None => (Manifest::default(), None),
            };
            let next = Manifest {
                epoch: old.epoch + 1,
                owner: self.me.to_string(),
                snapshot: old.snapshot,
            };
            let body = serde_json::to_vec(&next)?;
            let key = manifest_key(folder);
            if let Some(version) = store.put_if(&key, &[&body], expected.as_ref())? {
                let claim = Claim {
                    epoch: next.epoch,
                    version,
                };
                self.held().insert(shard, claim);
                return Ok(next.epoch);
            }
        }
        Err(CheckpointError::Writer(
            "could not claim a partition: its manifest keeps changing",
        ))
    }

    /// The epoch this instance holds `shard` at, claiming it first if it
    /// holds no claim (a single writer: a backfill, a test).
    pub(crate) fn epoch(
        &self,
        store: &SharedStore,
        shard: i32,
        folder: &str,
    ) -> Result<u64, CheckpointError> {
        match self.epoch_held(shard) {
            Some(epoch) => Ok(epoch),
            None => self.claim(store, shard, folder),
        }
    }

    /// The epoch of the claim held on `shard`, if any.
    pub(crate) fn epoch_held(&self, shard: i32) -> Option<u64> {
        self.held().get(&shard).map(|c| c.epoch)
    }

    /// Makes `snapshot` the shard's current one, if this instance still
    /// holds the shard. `false`: another instance claimed it since (this
    /// instance's claim is forgotten).
    pub(crate) fn publish(
        &self,
        store: &SharedStore,
        shard: i32,
        folder: &str,
        snapshot: &str,
    ) -> Result<bool, CheckpointError> {
        let Some(claim) = self.held().get(&shard).cloned() else {
            return Ok(false);
        };
        let next = Manifest {
            epoch: claim.epoch,
            owner: self.me.to_string(),
            snapshot: Some(snapshot.to_string()),
        };
        let body = serde_json::to_vec(&next)?;
        let key = manifest_key(folder);
        match store.put_if(&key, &[&body], Some(&claim.version))? {
            Some(version) => {
                self.held().insert(shard, Claim { version, ..claim });
                Ok(true)
            }
            None => {
                self.held().remove(&shard);
                Ok(false)
            }
        }
    }

    /// Whether this instance's claim on `shard` is still the manifest's.
    pub(crate) fn holds(
        &self,
        store: &SharedStore,
        shard: i32,
        folder: &str,
    ) -> Result<bool, CheckpointError> {
        let Some(claim) = self.held().get(&shard).cloned() else {
            return Ok(false);
        };
        Ok(read(store, folder)?.is_some_and(|(_, v)| v == claim.version))
    }
}
