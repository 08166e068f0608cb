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
//! [`Store::put_new`] (create-if-absent) and [`Store::put_if`]
//! (compare-and-swap) are the conditional writes, decided by the store
//! itself, for whatever must have exactly one writer: a partition's
//! snapshots (see [`crate::checkpoint`]), a day's lists.

mod local;
mod object;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use local::LocalStore;

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {error}")]
pub struct StoreError {
    /// The store and key, as an operator finds them (a path for a folder).
    pub location: String,
    /// What went wrong.
    #[source]
    pub error: std::io::Error,
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
    fn put_new(&self, key: &str, body: &[&[u8]]) -> Result<bool, StoreError> {
        Ok(self.put_if(key, body, None)?.is_some())
    }

    /// Writes `key` only if it is still at `expected` (`None`: only if
    /// absent), decided by the store itself in one step: the new version,
    /// or `None` (and nothing written) when another writer got there
    /// first. What fencing rests on.
    fn put_if(
        &self,
        key: &str,
        body: &[&[u8]],
        expected: Option<&Version>,
    ) -> Result<Option<Version>, StoreError>;

    /// The object at `key`, or `None`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_versioned(key)?.map(|(bytes, _)| bytes))
    }

    /// The object at `key` and its version, or `None`.
    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError>;

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
pub type SharedStore = Arc<dyn Store>;

/// One version of an object (an ETag on object storage, a digest of the
/// content in a folder): what [`Store::put_if`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// The store in the folder `folder`.
pub fn open(folder: &Path) -> Result<SharedStore, StoreError> {
    Ok(Arc::new(LocalStore::open(folder)?))
}

/// A storage location (`storage.url` and its S3 settings), whose areas
/// (`state`, `out`) are stores of their own.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// `file:///folder`, `s3://bucket/prefix`, `gs://…` or `az://…`.
    pub url: String,
    /// S3: an S3-compatible server's endpoint; empty: AWS.
    pub endpoint: String,
    /// S3: the region; empty: the environment's, else `us-east-1`.
    pub region: String,
    /// S3: buckets addressed by path.
    pub path_style: bool,
    /// S3: plain HTTP to the endpoint.
    pub allow_http: bool,
    /// S3: the access key id and secret; empty: from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) or the machine's role.
    pub access_key: Option<(String, String)>,
}

impl Location {
    /// The store of `area` (a folder below the location).
    pub fn open(&self, area: &str) -> Result<SharedStore, StoreError> {
        let url = self.url.trim_end_matches('/');
        let fail = |why: String| StoreError {
            location: format!("{url}/{area}"),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| fail("not a URL".into()))?;
        if scheme == "file" {
            return open(&Path::new(rest).join(area));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let inner: Arc<dyn object_store::ObjectStore> = match scheme {
            "s3" => Arc::new(self.s3(bucket).map_err(|e| fail(e.to_string()))?),
            _ => {
                let parsed = url::Url::parse(&format!("{scheme}://{bucket}"))
                    .map_err(|e| fail(e.to_string()))?;
                // the builders' own keys, from the usual environment variables
                let env = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, _) =
                    object_store::parse_url_opts(&parsed, env).map_err(|e| fail(e.to_string()))?;
                Arc::from(store)
            }
        };
        let prefix = format!("{}/{area}", prefix.trim_matches('/'));
        Ok(Arc::new(object::ObjectStorage::new(
            inner,
            &prefix,
            format!("{url}/{area}"),
        )))
    }

    fn s3(&self, bucket: &str) -> object_store::Result<object_store::aws::AmazonS3> {
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_allow_http(self.allow_http);
        if !self.endpoint.is_empty() {
            b = b.with_endpoint(&self.endpoint);
        }
        if !self.region.is_empty() {
            b = b.with_region(&self.region);
        }
        if let Some((id, secret)) = &self.access_key {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        b.build()
    }
}

/// Checks that `store` refuses what fencing needs refused: a second
/// create of one key, and a swap from a version that is no longer there.
/// Some S3-compatible servers ignore `If-None-Match` and `If-Match`; with
/// them two instances could both believe they own a partition.
pub fn check_conditional_puts(store: &dyn Store) -> Result<(), StoreError> {
    let key = format!(
        "conditional-put-check/{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let refused = |what: &str| {
        StoreError {
        location: store.location(&key),
        error: std::io::Error::other(format!(
            "the store accepted {what}: it ignores conditional puts (If-None-Match / If-Match), so it cannot fence a paused instance's writes. Use a store that honours them (AWS S3, MinIO, SeaweedFS, R2, GCS, Azure)"
        )),
    }
    };
    let first = store.put_new(&key, &[b"1"])?;
    let second = store.put_new(&key, &[b"2"])?;
    let stale = Version("\"not-the-current-version\"".into());
    let swapped = store.put_if(&key, &[b"3"], Some(&stale))?.is_some();
    let _ = store.delete(&key);
    match (first, second, swapped) {
        (true, false, false) => Ok(()),
        (_, true, _) => Err(refused("a second create of one key")),
        _ => Err(refused("a swap from a version that was not there")),
    }
}

/// This machine's host name, usable in a key (no `/` or space): whose
/// objects these are, for the operator (claims, audit objects).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(['/', ' '], "_"))
        .unwrap_or_else(|_| "host".into())
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
