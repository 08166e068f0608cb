//! The city team's hold on its escalations: who took one, and when, or
//! that it was given back. Kept as JSON lines in one object beside the
//! lists (`escalation-states.jsonl` in the lists' store: `lists.out_dir`,
//! or `<storage.url>/out/`), which every instance of a group shares and
//! re-reads every two seconds, so a state set on one instance's page shows
//! on every other's. A change is written by compare-and-swap, so two
//! instances setting states at once lose neither. Whether an escalation is
//! resolved is not kept here: the household's open work says it (someone
//! reached it, or its case opened, after the escalation was sent).

use std::collections::HashMap;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::store::{SharedStore, StoreError, Version};

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
    store: SharedStore,
    held: RwLock<HashMap<String, Taken>>,
    /// The object's version when last read.
    seen: Mutex<Option<Version>>,
}

/// The object's name in the lists' store.
pub(crate) const FILE: &str = "escalation-states.jsonl";

/// How many times a change is tried against other writers' changes.
const TRIES: usize = 20;

fn parse(bytes: &[u8]) -> impl Iterator<Item = Taken> + '_ {
    // a line cut short is skipped; the ones before count
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Taken>(l).ok())
}

impl States {
    /// The states kept in `store` (none yet when the object is missing).
    pub(crate) fn open(store: SharedStore) -> Result<States, StoreError> {
        let s = States {
            store,
            held: RwLock::new(HashMap::new()),
            seen: Mutex::new(None),
        };
        s.reload()?;
        Ok(s)
    }

    /// Reads the object again if it changed (another instance wrote it).
    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        let Some((bytes, version)) = self.store.get_versioned(FILE)? else {
            return Ok(());
        };
        if self.seen.lock().as_ref() == Some(&version) {
            return Ok(());
        }
        let held: HashMap<String, Taken> = parse(&bytes)
            .map(|t| (t.escalation_id.clone(), t))
            .collect();
        *self.held.write() = held;
        *self.seen.lock() = Some(version);
        Ok(())
    }

    /// Records `t`, durably, before the page says it is done.
    pub(crate) fn set(&self, t: Taken) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(&t).unwrap_or_default();
        line.push(b'\n');
        rewrite(&self.store, |old| {
            let mut body = old.to_vec();
            if !body.is_empty() && !body.ends_with(b"\n") {
                body.push(b'\n');
            }
            body.extend_from_slice(&line);
            Some(body)
        })?;
        self.held.write().insert(t.escalation_id.clone(), t);
        Ok(())
    }

    /// The state of escalation `id`, if one was set.
    pub(crate) fn get(&self, id: &str) -> Option<Taken> {
        self.held.read().get(id).cloned()
    }
}

/// Changes the object by compare-and-swap: `change` gets what is there and
/// says what to write (`None`: nothing to do), tried again when another
/// writer got there first.
fn rewrite(
    store: &SharedStore,
    change: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<(), StoreError> {
    for _ in 0..TRIES {
        let (old, version) = match store.get_versioned(FILE)? {
            Some((bytes, v)) => (bytes, Some(v)),
            None => (Vec::new(), None),
        };
        let Some(new) = change(&old) else {
            return Ok(());
        };
        if store.put_if(FILE, &[&new], version.as_ref())?.is_some() {
            return Ok(());
        }
    }
    Err(StoreError {
        location: store.location(FILE),
        error: std::io::Error::other("other writers kept changing it; try again"),
    })
}

/// Drops the states set before `before_ms` from the object in `store`
/// (their retention ended); returns how many. The instances re-read it.
pub(crate) fn prune(store: &SharedStore, before_ms: i64) -> Result<usize, StoreError> {
    let dropped = std::cell::Cell::new(0);
    rewrite(store, |old| {
        let mut kept = Vec::new();
        let mut n = 0;
        for line in old.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Taken>(line) {
                Ok(t) if t.at >= before_ms => {
                    kept.extend_from_slice(line);
                    kept.push(b'\n');
                }
                _ => n += 1,
            }
        }
        dropped.set(n);
        (n > 0).then_some(kept)
    })?;
    Ok(dropped.get())
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
        let store = crate::store::open(dir.path()).unwrap();
        let one = States::open(store.clone()).unwrap();
        let two = States::open(store.clone()).unwrap();
        one.set(taken("esc-1", "taken", 1)).unwrap();
        assert_eq!(one.get("esc-1").unwrap().state, "taken");
        two.reload().unwrap();
        assert_eq!(two.get("esc-1").unwrap().by_name, "박시청");
        two.set(taken("esc-1", "open", 2)).unwrap();
        one.set(taken("esc-2", "taken", 3)).unwrap();
        // neither writer's change was lost to the other's
        let fresh = States::open(store.clone()).unwrap();
        assert_eq!(fresh.get("esc-1").unwrap().state, "open");
        assert_eq!(fresh.get("esc-2").unwrap().state, "taken");
        // retention drops what was set before its horizon
        assert_eq!(prune(&store, 2).unwrap(), 1);
        assert_eq!(prune(&store, 2).unwrap(), 0);
        let fresh = States::open(store).unwrap();
        assert_eq!(fresh.get("esc-1").unwrap().state, "open");
    }
}
