//! A store in object storage (S3 and S3-compatible servers, Google Cloud
//! Storage, Azure Blob Storage) through the `object_store` crate, the one
//! DataFusion already brings in. Several instances on machines that share
//! no folder keep their state, lists, accounts and audit here.
//!
//! `object_store` is asynchronous; a [`Store`] is called from the run
//! loop, the snapshot writer's thread, rebalance callbacks and commands
//! alike, so every call runs on a small runtime of its own and the caller
//! waits for it (as it would for a file). Create-if-absent and
//! compare-and-swap are the server's conditional puts (`If-None-Match: *`,
//! `If-Match: <etag>`); [`super::check_conditional_puts`] refuses, at
//! start-up, a server that ignores them.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Store, StoreError, Version};

/// Objects under a prefix of a bucket.
pub(crate) struct ObjectStorage {
    inner: Arc<dyn ObjectStore>,
    /// The prefix of every key, without a trailing `/` (may be empty).
    prefix: String,
    /// `s3://bucket/prefix`, for messages.
    url: String,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStorage({})", self.url)
    }
}

/// The runtime the stores' calls run on (two threads: the calls are I/O).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sagak-store")
            .enable_all()
            .build()
            .expect("a runtime for object storage")
    })
}

/// Runs `f` on the stores' runtime and waits for it, from any thread
/// (inside another runtime too: this thread only waits on a channel).
fn wait<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the store's runtime answers")
}

impl ObjectStorage {
    /// The store at `prefix` of `inner`, shown as `url`.
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, prefix: &str, url: String) -> Self {
        ObjectStorage {
            inner,
            prefix: prefix.trim_matches('/').to_string(),
            url,
        }
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StoreError> {
        let key = super::checked(key).map_err(|why| self.fail(key, invalid(why)))?;
        Ok(match self.prefix.as_str() {
            "" => ObjectPath::from(key),
            p => ObjectPath::from(format!("{p}/{key}")),
        })
    }

    fn fail(&self, key: &str, error: std::io::Error) -> StoreError {
        StoreError {
            location: self.location(key),
            error,
        }
    }

    fn io(&self, key: &str, e: object_store::Error) -> StoreError {
        self.fail(key, std::io::Error::other(e.to_string()))
    }
}

fn invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, why)
}

/// The pieces of a body as one payload (copied: the server takes owned
/// buffers).
fn payload(body: &[&[u8]]) -> PutPayload {
    body.iter()
        .map(|piece| bytes::Bytes::copy_from_slice(piece))
        .collect()
}

impl Store for ObjectStorage {
    fn put(&self, key: &str, body: &[&[u8]]) -> Result<(), StoreError> {
        let (inner, path, body) = (self.inner.clone(), self.path(key)?, payload(body));
        wait(async move { inner.put(&path, body).await })
            .map(|_| ())
            .map_err(|e| self.io(key, e))
    }

    fn put_if(
        &self,
        key: &str,
        body: &[&[u8]],
        expected: Option<&Version>,
    ) -> Result<Option<Version>, StoreError> {
        let (inner, path, body) = (self.inner.clone(), self.path(key)?, payload(body));
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => PutMode::Update(UpdateVersion {
                e_tag: Some(v.0.clone()),
                version: None,
            }),
        };
        let opts = PutOptions::from(mode);
        match wait(async move { inner.put_opts(&path, body, opts).await }) {
            Ok(done) => Ok(Some(Version(done.e_tag.unwrap_or_default()))),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(self.io(key, e)),
        }
    }

    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let (inner, path) = (self.inner.clone(), self.path(key)?);
        let got = wait(async move {
            let got = inner.get(&path).await?;
            let tag = got.meta.e_tag.clone().unwrap_or_default();
            Ok::<_, object_store::Error>((got.bytes().await?.to_vec(), tag))
        });
        match got {
            Ok((bytes, tag)) => Ok(Some((bytes, Version(tag)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.io(key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let folder = prefix.trim_end_matches('/');
        let under = match (self.prefix.as_str(), folder) {
            ("", "") => None,
            ("", f) => Some(ObjectPath::from(f)),
            (p, "") => Some(ObjectPath::from(p)),
            (p, f) => Some(ObjectPath::from(format!("{p}/{f}"))),
        };
        let inner = self.inner.clone();
        let metas = wait(async move { inner.list(under.as_ref()).try_collect::<Vec<_>>().await })
            .map_err(|e| self.io(prefix, e))?;
        let strip = match self.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(String::from))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (inner, path) = (self.inner.clone(), self.path(key)?);
        match wait(async move { inner.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.io(key, e)),
        }
    }

    fn location(&self, key: &str) -> String {
        format!("{}/{key}", self.url.trim_end_matches('/'))
    }

    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
}
