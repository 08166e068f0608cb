//! The audit log: every read of household data and every outcome recorded,
//! one JSON line each, in daily files (`audit-YYYY-MM-DD.jsonl`, UTC) of
//! `web.audit_dir`, or, with `storage.url`, in objects of the store that
//! every instance writes beside the others ([`objects`]).
//!
//! A request whose line cannot be written is refused: nothing is served
//! unaudited. `sagak audit` reads the files or objects back.

mod objects;

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What went wrong with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file cannot be written or read.
    #[error("audit log {path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
}

/// One audited action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The person's id (`-` for a failed login).
    pub user: String,
    /// Their role (`city`, `dong`, or `-`).
    pub role: String,
    /// Their dong (dong roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dong: Option<String>,
    /// The client address (the proxy's, behind a trusted proxy).
    pub client: String,
    /// The address the trusted proxy forwarded for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) forwarded_for: Option<String>,
    /// What was done: `view_queue`, `view_household`, `record_outcome`,
    /// `download_list`, `view_city`, `login`, `login_failed`, `denied`, ...
    pub action: String,
    /// The request path (never a token: none is ever in a URL).
    pub path: String,
    /// Households shown or changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub households: Vec<String>,
    /// The list file downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The instance that served it (`host-pid-start`), as the store's
    /// object names say; not written in the line itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// The audit log of a running server.
pub(crate) struct AuditLog {
    dir: PathBuf,
    open: Mutex<Option<(String, File)>>,
    /// With a store, lines go there instead of the files.
    objects: Option<objects::ObjectSink>,
}

impl AuditLog {
    /// A log in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<Self, AuditError> {
        crate::base::files::create_private_dir(dir).map_err(|error| AuditError::Io {
            path: dir.into(),
            error,
        })?;
        Ok(AuditLog {
            dir: dir.into(),
            open: Mutex::new(None),
            objects: None,
        })
    }

    /// A log in the objects of `store`.
    pub(crate) fn in_store(store: crate::store::SharedStore) -> Result<Self, AuditError> {
        let location = PathBuf::from(store.location(""));
        let sink = objects::ObjectSink::start(store).map_err(|error| AuditError::Io {
            path: location.clone(),
            error,
        })?;
        Ok(AuditLog {
            dir: location,
            open: Mutex::new(None),
            objects: Some(sink),
        })
    }

    /// Writes `entry` (its `time` is set here) before the caller answers.
    /// An RRN-shaped run in its path or file name (typed into an address)
    /// is masked: the log is kept for years and must never hold one.
    pub(crate) fn write(&self, mut entry: AuditEntry) -> Result<(), AuditError> {
        entry.path = masked(&entry.path);
        entry.file = entry.file.as_deref().map(masked);
        entry
            .households
            .retain(|h| !crate::base::ids::contains_rrn(h.as_bytes()));
        let now = chrono::Utc::now();
        entry.time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let day = now.format("%Y-%m-%d").to_string();
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        if let Some(sink) = &self.objects {
            let hour = now.format("%Y-%m-%d/%H").to_string();
            return sink.write(hour, line).map_err(|e| AuditError::Io {
                path: self.dir.clone(),
                error: std::io::Error::other(e),
            });
        }
        let mut open = self.open.lock();
        let path = self.dir.join(format!("audit-{day}.jsonl"));
        let io = |error| AuditError::Io {
            path: path.clone(),
            error,
        };
        if open.as_ref().is_none_or(|(d, _)| *d != day) {
            *open = Some((day, crate::base::files::append_private(&path).map_err(io)?));
        }
        let Some((_, file)) = open.as_mut() else {
            return Ok(());
        };
        // one write per line, straight to the file: a line is whole or absent
        let written = file.write_all(&line).and_then(|()| file.sync_data());
        if let Err(error) = written {
            *open = None;
            return Err(io(error));
        }
        Ok(())
    }
}

/// `text` with the digits of every RRN-shaped run as `*`.
fn masked(text: &str) -> String {
    match crate::base::ids::redact_rrn(text.as_bytes()) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => text.to_string(),
    }
}

/// What `sagak audit` looks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Entries that name this household.
    pub household: Option<String>,
    /// Entries of this person.
    pub user: Option<String>,
    /// From this day on (UTC).
    pub since: Option<chrono::NaiveDate>,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.household
            .as_ref()
            .is_none_or(|h| e.households.iter().any(|x| x == h))
            && self.user.as_ref().is_none_or(|u| &e.user == u)
            && self
                .since
                .is_none_or(|d| e.time.get(..10) >= Some(d.format("%Y-%m-%d").to_string().as_str()))
    }
}

/// The entries of the audit objects in `store` that match `query`, oldest
/// first.
pub fn search_store(
    store: &crate::store::SharedStore,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, AuditError> {
    let lines = objects::lines(store, query.since).map_err(|e| AuditError::Io {
        path: PathBuf::from(e.location),
        error: e.error,
    })?;
    let mut out: Vec<AuditEntry> = lines
        .iter()
        .filter_map(|(instance, l)| {
            let mut e = serde_json::from_str::<AuditEntry>(l).ok()?;
            e.instance = Some(instance.clone());
            Some(e)
        })
        .filter(|e| query.matches(e))
        .collect();
    out.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(out)
}

/// The entries of the audit files in `dir` that match `query`, oldest first.
pub fn search(dir: &Path, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
    let io = |path: &Path, error| AuditError::Io {
        path: path.into(),
        error,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| day_of(p).is_some())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        if let (Some(since), Some(day)) = (query.since, day_of(&path)) {
            if day < since {
                continue;
            }
        }
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| io(&path, e))?;
            if let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) {
                if query.matches(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    Ok(out)
}

/// The day of an audit file, from its name.
pub(crate) fn day_of(path: &Path) -> Option<chrono::NaiveDate> {
    let name = path.file_name()?.to_str()?;
    let day = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, action: &str, households: &[&str]) -> AuditEntry {
        AuditEntry {
            user: user.into(),
            role: "dong".into(),
            client: "127.0.0.1".into(),
            action: action.into(),
            path: "/households/x".into(),
            households: households.iter().map(|h| h.to_string()).collect(),
            status: 200,
            ..AuditEntry::default()
        }
    }

    #[test]
    fn who_saw_a_household_and_what_a_person_saw() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.write(entry("u-1", "view_queue", &["hh-a", "hh-b"]))
            .unwrap();
        log.write(entry("u-2", "view_household", &["hh-b"]))
            .unwrap();
        log.write(entry("u-1", "view_household", &["hh-c"]))
            .unwrap();
        let who = search(
            dir.path(),
            &AuditQuery {
                household: Some("hh-b".into()),
                ..AuditQuery::default()
            },
        )
        .unwrap();
        let users: Vec<&str> = who.iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["u-1", "u-2"]);
        let what = search(
            dir.path(),
            &AuditQuery {
                user: Some("u-1".into()),
                since: Some(chrono::Utc::now().date_naive()),
                ..AuditQuery::default()
            },
        )
        .unwrap();
        assert_eq!(what.len(), 2);
        assert_eq!(what[1].households, ["hh-c"]);
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
        let none = search(
            dir.path(),
            &AuditQuery {
                since: Some(tomorrow),
                ..AuditQuery::default()
            },
        )
        .unwrap();
        assert!(none.is_empty());
    }

    /// Two instances write their audit into one store; either's views of
    /// a household are found, and nothing is rewritten.
    #[test]
    fn every_instances_audit_is_read_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path()).unwrap();
        let a = AuditLog::in_store(store.clone()).unwrap();
        // the same host, process and start time: its objects still never
        // land on the other's
        let b = AuditLog::in_store(store.clone()).unwrap();
        a.write(entry("u-1", "view_queue", &["hh-a", "hh-b"]))
            .unwrap();
        b.write(entry("u-2", "view_household", &["hh-b"])).unwrap();
        a.write(entry("u-3", "view_household", &["hh-c"])).unwrap();
        let query = AuditQuery {
            household: Some("hh-b".into()),
            ..AuditQuery::default()
        };
        let who: Vec<String> = search_store(&store, &query)
            .unwrap()
            .into_iter()
            .map(|e| e.user)
            .collect();
        assert_eq!(who, ["u-1", "u-2"]);
        let objects = store.list("").unwrap();
        assert_eq!(objects.len(), 3, "one object per quiet write: {objects:?}");
        let today = chrono::Utc::now().format("%Y-%m-%d/").to_string();
        assert!(objects.iter().all(|k| k.starts_with(&today)), "{objects:?}");
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
        let later = AuditQuery {
            since: Some(tomorrow),
            ..AuditQuery::default()
        };
        assert!(search_store(&store, &later).unwrap().is_empty());
    }

    #[test]
    fn an_unwritable_log_is_an_error_not_a_silence() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit")).unwrap();
        std::fs::remove_dir_all(dir.path().join("audit")).unwrap();
        assert!(log.write(entry("u-1", "view_queue", &[])).is_err());
    }
}
