//! The audit log: every read of household data and every outcome recorded,
//! one JSON line each, in daily files (`audit-YYYY-MM-DD.jsonl`, UTC).
//!
//! A request whose line cannot be written is refused: nothing is served
//! unaudited. `sagak audit` reads the files back.

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
}

/// The audit log of a running server.
pub(crate) struct AuditLog {
    dir: PathBuf,
    open: Mutex<Option<(String, File)>>,
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

    #[test]
    fn an_unwritable_log_is_an_error_not_a_silence() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit")).unwrap();
        std::fs::remove_dir_all(dir.path().join("audit")).unwrap();
        assert!(log.write(entry("u-1", "view_queue", &[])).is_err());
    }
}
