//! The city team's hold on its escalations: who took one, and when, or
//! that it was given back. Kept as JSON lines in one file beside the lists
//! (`<lists.out_dir>/escalation-states.jsonl`), which every instance of a
//! group shares and re-reads every two seconds, so a state set on one
//! instance's page shows on every other's. Whether an escalation is
//! resolved is not kept here: the household's open work says it (someone
//! reached it, or its case opened, after the escalation was sent).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

/// One change of an escalation's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Taken {
    /// The escalation.
    pub(crate) escalation_id: String,
    /// Its household (so retention can drop the line with the household).
    pub(crate) household_id: String,
    /// `taken`, or `open` (given back).
    pub(crate) state: String,
    /// The city account that set it.
    pub(crate) by: String,
    /// Its name, as the page shows it.
    pub(crate) by_name: String,
    /// When, ms.
    pub(crate) at: i64,
}

/// The states, as last read or written.
pub(crate) struct States {
    path: PathBuf,
    held: RwLock<HashMap<String, Taken>>,
    /// The file's time and length when last read: either changes on a write.
    seen: Mutex<Option<(SystemTime, u64)>>,
    write: Mutex<()>,
}

impl States {
    /// The states kept in `path` (none yet when it is missing).
    pub(crate) fn open(path: &Path) -> std::io::Result<States> {
        let s = States {
            path: path.into(),
            held: RwLock::new(HashMap::new()),
            seen: Mutex::new(None),
            write: Mutex::new(()),
        };
        s.reload()?;
        Ok(s)
    }

    /// Reads the file again if it changed (another instance wrote it).
    pub(crate) fn reload(&self) -> std::io::Result<()> {
        let modified = match std::fs::metadata(&self.path) {
            Ok(m) => m.modified().ok().map(|t| (t, m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if modified.is_some() && *self.seen.lock() == modified {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)?;
        let mut held = HashMap::new();
        // a line cut by a crash mid-write is skipped; the ones before count
        for t in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Taken>(l).ok())
        {
            held.insert(t.escalation_id.clone(), t);
        }
        *self.held.write() = held;
        *self.seen.lock() = modified;
        Ok(())
    }

    /// Records `t`, durably, before the page says it is done.
    pub(crate) fn set(&self, t: Taken) -> std::io::Result<()> {
        let _one_writer = self.write.lock();
        let mut line = serde_json::to_vec(&t).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = crate::base::files::append_private(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()?;
        self.held.write().insert(t.escalation_id.clone(), t);
        Ok(())
    }

    /// The state of escalation `id`, if one was set.
    pub(crate) fn get(&self, id: &str) -> Option<Taken> {
        self.held.read().get(id).cloned()
    }
}

/// The file's name, in `lists.out_dir`.
pub(crate) const FILE: &str = "escalation-states.jsonl";

/// Drops the states set before `before_ms` from the file at `path` (their
/// retention ended); returns how many. The instances re-read the file.
pub(crate) fn prune(path: &Path, before_ms: i64) -> std::io::Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut kept = String::new();
    let mut dropped = 0;
    for line in text.lines() {
        match serde_json::from_str::<Taken>(line) {
            Ok(t) if t.at >= before_ms => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => dropped += 1,
        }
    }
    if dropped > 0 {
        crate::base::files::write_private(path, kept.as_bytes())?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(id: &str, state: &str, at: i64) -> Taken {
        Taken {
            escalation_id: id.into(),
            household_id: "hh-1".into(),
            state: state.into(),
            by: "u-city".into(),
            by_name: "박시청".into(),
            at,
        }
    }

    #[test]
    fn a_state_set_on_one_instance_is_read_on_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("escalation-states.jsonl");
        let one = States::open(&path).unwrap();
        let two = States::open(&path).unwrap();
        one.set(taken("esc-1", "taken", 1)).unwrap();
        assert_eq!(one.get("esc-1").unwrap().state, "taken");
        two.reload().unwrap();
        assert_eq!(two.get("esc-1").unwrap().by_name, "박시청");
        std::thread::sleep(std::time::Duration::from_millis(20));
        two.set(taken("esc-1", "open", 2)).unwrap();
        // a file system's times may be coarse: a fresh reader sees it too
        assert_eq!(
            States::open(&path).unwrap().get("esc-1").unwrap().state,
            "open"
        );
    }
}
