//! `[storage]`: where sagak keeps what it writes beside Kafka (state
//! snapshots, the daily lists and their parts), chosen once here.
//!
//! Without `storage.url` each kind keeps today's folder: `engine.state_dir`
//! and `lists.out_dir`. With it, everything goes under one location, in the
//! same layout on every backend: `<url>/state/partition-NNNNN/…` and
//! `<url>/out/lists/<date>/…`. A `file://` URL is a folder of this machine;
//! `s3://bucket/prefix` (AWS or any S3-compatible server), `gs://` and
//! `az://` are object storage, which instances on machines sharing no folder
//! can all reach.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, Settings};
use crate::store::{SharedStore, StoreError};

/// Where sagak keeps its objects.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `file:///var/lib/sagak`, `s3://bucket/prefix`, `gs://bucket/prefix`
    /// or `az://container/prefix`; empty: the folders of `engine.state_dir`
    /// and `lists.out_dir`. Credentials come from the usual environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...).
    pub url: String,
    /// S3: the endpoint of an S3-compatible server
    /// (`https://s3.example.go.kr`); empty: AWS.
    pub endpoint: String,
    /// S3: the region (empty: `AWS_REGION`, else `us-east-1`).
    pub region: String,
    /// S3: buckets addressed by path (`endpoint/bucket/key`), as most
    /// S3-compatible servers want; false: virtual-hosted style (AWS).
    pub path_style: bool,
    /// Plain HTTP to `endpoint`: only for a server on the same machine.
    pub allow_http: bool,
    /// S3: the access key id; empty: `AWS_ACCESS_KEY_ID` or the machine's
    /// role. Prefer the environment (SAGAK__STORAGE__ACCESS_KEY_ID) to the
    /// file for the pair.
    pub access_key_id: String,
    /// S3: the secret of `access_key_id`.
    pub secret_access_key: String,
}

/// The stores of each kind of object.
#[derive(Debug, Clone)]
pub struct Storage {
    /// State snapshots (`engine.state_dir`).
    pub state: SharedStore,
    /// Daily lists and their parts (`lists.out_dir`).
    pub lists: SharedStore,
    /// The web front's audit, in the store (`storage.url` set): every
    /// instance's, kept apart from any machine. `None`: the files of
    /// `web.audit_dir`.
    pub audit: Option<SharedStore>,
    /// The accounts, in the store (`storage.url` set), which every
    /// instance reads; `None`: `web.users_file`.
    pub accounts: Option<SharedStore>,
}

impl StorageSettings {
    /// Checks the URL's scheme and what it needs.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(());
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return invalid("storage.url", format!("= {url:?} is not a URL: write file:///var/lib/sagak, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"));
        };
        match scheme {
            "file" if rest.starts_with('/') => Ok(()),
            "file" => invalid(
                "storage.url",
                "must name an absolute folder: file:///var/lib/sagak",
            ),
            _ if self.access_key_id.is_empty() != self.secret_access_key.is_empty() => invalid(
                "storage.access_key_id",
                "and storage.secret_access_key go together: set both or neither",
            ),
            "s3" | "gs" | "az" if rest.split('/').next().is_some_and(|b| !b.is_empty()) => Ok(()),
            "s3" | "gs" | "az" => invalid(
                "storage.url",
                format!("= {url:?} names no bucket: {scheme}://bucket/prefix"),
            ),
            _ => invalid(
                "storage.url",
                format!("has scheme {scheme:?}; sagak stores in file://, s3://, gs:// or az://"),
            ),
        }
    }
}

impl Settings {
    /// Opens the stores of `[storage]` (see the module docs).
    pub fn storage(&self) -> Result<Storage, StoreError> {
        let url = self.storage.url.trim();
        if url.is_empty() {
            return Ok(Storage {
                state: crate::store::open(&self.engine.state_dir)?,
                lists: crate::store::open(&self.lists.out_dir)?,
                audit: None,
                accounts: None,
            });
        }
        let s = &self.storage;
        let root = crate::store::Location {
            url: url.to_string(),
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            path_style: s.path_style,
            allow_http: s.allow_http,
            access_key: (!s.access_key_id.is_empty())
                .then(|| (s.access_key_id.clone(), s.secret_access_key.clone())),
        };
        Ok(Storage {
            state: root.open("state")?,
            lists: root.open("out")?,
            audit: Some(root.open("audit")?),
            accounts: Some(root.open("accounts")?),
        })
    }
}
