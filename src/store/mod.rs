//! Where sagak keeps what it writes beside the Kafka topics: state
//! snapshots and the daily lists (and their parts). Every writer goes
//! through a [`Store`], chosen in one place ([`open`]) from the
//! configured location, so a new kind of storage is one implementation of
//! the trait and one URL scheme, not a change in every room that writes.
//!
//! A store holds objects under keys (`partition-00003/checkpoint-…snap`,
//! `lists/2026-10-27/41250510.csv`): written whole, replaced whole, read
//! whole, never appended to. That is what object storage offers, and what
//! makes a crash leave either the old or the new object, never half of one.
//! [`Store::put_new`] (create-if-absent) is the one conditional write, for
//! whatever must have exactly one writer.

mod local;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use local::LocalStore;

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {error}")]
pub struct StoreError {
    /// The store and key, as an operator finds them (a path for a folder).
    pub(crate) location: String,
    /// What went wrong.
    #[source]
    pub(crate) error: std::io::Error,
}

/// Objects under keys (see the module docs). Keys are `/`-separated
/// relative paths of plain names (no `..`, no leading `/`).
pub trait Store: Send + Sync + fmt::Debug {
    /// Writes `key` whole from `body` (its pieces in order), replacing what
    /// was there: a reader sees the old object or the new one. Returns once
    /// the object is durable.
    fn put(&self, key: &str, body: &[&[u8]]) -> Result<(), StoreError>;

    /// Writes `key` only if no object is there: `false` (and nothing
    /// written) when one is.
    fn put_new(&self, key: &str, body: &[&[u8]]) -> Result<bool, StoreError>;

    /// The object at `key`, or `None`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Keys under `prefix` (a folder, ending in `/`, or empty for all), in
    /// order, at any depth.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Removes `key` (nothing when absent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Where `key` is, for messages and logs.
    fn location(&self, key: &str) -> String;

    /// The local folder of `key` when the store is a folder (downloads
    /// stream files from it); `None` for remote stores.
    fn local_path(&self, key: &str) -> Option<PathBuf>;
}

/// A shared store.
pub(crate) type SharedStore = Arc<dyn Store>;

/// The store at `location`: a folder path (or `file://` URL).
pub fn open(location: &Path) -> Result<SharedStore, StoreError> {
    let text = location.to_string_lossy();
    let folder = match text.strip_prefix("file://") {
        Some(path) => PathBuf::from(path),
        None => location.to_path_buf(),
    };
    Ok(Arc::new(LocalStore::open(&folder)?))
}

/// Checks a key: relative, plain names, no `.` or `..` parts.
fn checked(key: &str) -> Result<&str, String> {
    let plain = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if plain {
        Ok(key)
    } else {
        Err(format!("not a plain key: {key:?}"))
    }
}

#[cfg(test)]
mod tests;
