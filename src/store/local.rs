//! A store in a local folder (the default; a single instance needs no
//! more). Objects are files under the folder, created with the household
//! files' mode ([`crate::base::files`]), each written to a temporary file
//! beside it, synced and renamed (a crash leaves the old or the new file),
//! the folder synced after, so `put` returns once the object is durable.
//! Create-if-absent is a hard link of the written file to its name, which
//! the file system refuses atomically if the name exists.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{checked, Store, StoreError, Version};
use crate::base::files::{create_private, create_private_dir};

/// Objects as files under one folder.
#[derive(Debug)]
pub(crate) struct LocalStore {
    root: PathBuf,
    /// Names temporary files apart within the process.
    next_tmp: AtomicU64,
}

impl LocalStore {
    /// The store in `root`, created (owner only) if missing.
    pub(crate) fn open(root: &Path) -> Result<LocalStore, StoreError> {
        create_private_dir(root).map_err(|error| StoreError {
            location: root.display().to_string(),
            error,
        })?;
        Ok(LocalStore {
            root: root.to_path_buf(),
            next_tmp: AtomicU64::new(0),
        })
    }

    /// The path of `key`, or an error naming it.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        checked(key)
            .map(|k| self.root.join(k))
            .map_err(|why| StoreError {
                location: self.root.display().to_string(),
                error: std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
            })
    }

    fn fail(&self, key: &str) -> impl Fn(std::io::Error) -> StoreError + '_ {
        let location = self.location(key);
        move |error| StoreError {
            location: location.clone(),
            error,
        }
    }

    /// Writes `body` to a new temporary file beside `path`, synced.
    fn write_tmp(&self, path: &Path, body: &[&[u8]]) -> std::io::Result<PathBuf> {
        let dir = path.parent().unwrap_or(&self.root);
        // each folder between the store and the object is as private as
        // the store (create_dir_all would leave the umask's mode)
        if let Ok(rel) = dir.strip_prefix(&self.root) {
            let mut at = self.root.clone();
            for part in rel.components() {
                at.push(part);
                if !at.is_dir() {
                    create_private_dir(&at)?;
                }
            }
        }
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::io::BufWriter::with_capacity(1 << 20, create_private(&tmp)?);
            for piece in body {
                file.write_all(piece)?;
            }
            file.into_inner().map_err(|e| e.into_error())?.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }
}

/// The version of a file's content: its XXH3-128 digest.
fn version_of(bytes: &[u8]) -> Version {
    Version(format!("{:032x}", twox_hash::XxHash3_128::oneshot(bytes)))
}

/// Links the written `tmp` to `path` unless something is there: the file
/// system refuses an existing name atomically.
fn create(tmp: &Path, path: &Path) -> std::io::Result<bool> {
    match std::fs::hard_link(tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Renames the written `tmp` over `path` if `path` still holds `version`,
/// under an exclusive lock of the folder's lock file that every swap in
/// the folder takes (within and across processes on this machine).
fn swap(tmp: &Path, path: &Path, version: &Version) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".swap.lock"))?;
    lock.lock()?;
    let current = match std::fs::read(path) {
        Ok(bytes) => Some(version_of(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if current.as_ref() != Some(version) {
        return Ok(false);
    }
    std::fs::rename(tmp, path)?;
    Ok(true)
}

/// Makes a rename or link in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Store for LocalStore {
    fn put(&self, key: &str, body: &[&[u8]]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let fail = self.fail(key);
        let tmp = self.write_tmp(&path, body).map_err(&fail)?;
        std::fs::rename(&tmp, &path).map_err(&fail)?;
        sync_dir(path.parent().unwrap_or(&self.root)).map_err(fail)
    }

    fn put_if(
        &self,
        key: &str,
        body: &[&[u8]],
        expected: Option<&Version>,
    ) -> Result<Option<Version>, StoreError> {
        let path = self.path(key)?;
        let fail = self.fail(key);
        let tmp = self.write_tmp(&path, body).map_err(&fail)?;
        let done = match expected {
            None => create(&tmp, &path),
            Some(version) => swap(&tmp, &path, version),
        };
        let _ = std::fs::remove_file(&tmp);
        if !done.map_err(&fail)? {
            return Ok(None);
        }
        sync_dir(path.parent().unwrap_or(&self.root)).map_err(fail)?;
        Ok(Some(version_of(&body.concat())))
    }

    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        match std::fs::read(self.path(key)?) {
            Ok(bytes) => {
                let version = version_of(&bytes);
                Ok(Some((bytes, version)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail(key)(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = match prefix.trim_end_matches('/') {
            "" => self.root.clone(),
            p => self.path(p)?,
        };
        let mut keys = Vec::new();
        walk(&dir, &self.root, &mut keys).map_err(self.fail(prefix))?;
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.fail(key)(e)),
        }
        // folders exist only for their objects: an emptied one goes (a
        // folder with anything left in it is refused, and stays)
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }
}

/// The files under `dir` as keys relative to `root`; temporary files (a
/// leading `.`) are left out, and a missing folder holds none.
fn walk(dir: &Path, root: &Path, keys: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, root, keys)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            keys.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}
