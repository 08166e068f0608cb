//! The audit in object storage: lines go to objects
//! `<day>/<hour>-<instance>-<seq>.jsonl` (UTC) of the audit's store, each
//! written once and never rewritten, so instances on different machines
//! write side by side and the log outlives any of them.
//!
//! A request is answered only once its line is durable, as with the files.
//! Lines wait for the one writer thread, which puts every line waiting at
//! that moment as one object: one object per request when the front is
//! quiet, fewer and larger ones under load.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::store::SharedStore;

/// A line to write, and where to say it was.
type Pending = (String, Vec<u8>, SyncSender<Result<(), String>>);

/// The writer of one instance.
pub(super) struct ObjectSink {
    tx: SyncSender<Pending>,
}

impl ObjectSink {
    /// A writer into `store`, its objects named after this instance.
    pub(super) fn start(store: SharedStore) -> Result<ObjectSink, std::io::Error> {
        let (tx, rx) = sync_channel::<Pending>(4096);
        let host = crate::store::host_name();
        // the start time too: in a container every process is pid 1 and a
        // restarted pod keeps its host name
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let instance = format!("{host}-{}-{started}", std::process::id());
        std::thread::Builder::new()
            .name("sagak-audit".into())
            .spawn(move || write_loop(&store, &instance, &rx))?;
        Ok(ObjectSink { tx })
    }

    /// Writes `line` into the hour `hour_key` (`YYYY-MM-DD/HH`) and returns
    /// once it is durable.
    pub(super) fn write(&self, hour_key: String, line: Vec<u8>) -> Result<(), String> {
        let (done, wait) = sync_channel(1);
        self.tx
            .send((hour_key, line, done))
            .map_err(|_| "the audit writer stopped".to_string())?;
        wait.recv()
            .map_err(|_| "the audit writer stopped".to_string())?
    }
}

/// Takes what waits, writes it as one object per hour, answers each line.
fn write_loop(store: &SharedStore, instance: &str, rx: &Receiver<Pending>) {
    let mut seq: u64 = 0;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // lines of one hour together (an hour turns between two lines)
        batch.sort_by(|a, b| a.0.cmp(&b.0));
        let mut start = 0;
        while start < batch.len() {
            let hour = batch[start].0.clone();
            let end = start + batch[start..].iter().take_while(|p| p.0 == hour).count();
            let lines: Vec<&[u8]> = batch[start..end].iter().map(|p| p.1.as_slice()).collect();
            // never over another object: created only where none is
            let put = loop {
                seq += 1;
                let key = format!("{hour}-{instance}-{seq:010}.jsonl");
                match store.put_new(&key, &lines) {
                    Ok(true) => break Ok(()),
                    Ok(false) => continue,
                    Err(e) => break Err(e.to_string()),
                }
            };
            for p in &batch[start..end] {
                let _ = p.2.send(put.clone());
            }
            start = end;
        }
    }
}

/// The instance that wrote an object (`<day>/<hour>-<instance>-<seq>.jsonl`).
fn instance_of(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?.strip_suffix(".jsonl")?;
    let (_, rest) = name.split_once('-')?;
    Some(rest.rsplit_once('-')?.0)
}

/// Every line of the objects of days `since` on (all without), oldest
/// object first, each with the instance that wrote it.
pub(super) fn lines(
    store: &SharedStore,
    since: Option<chrono::NaiveDate>,
) -> Result<Vec<(String, String)>, crate::store::StoreError> {
    let mut out = Vec::new();
    for key in store.list("")? {
        let day = key
            .split('/')
            .next()
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok());
        let Some(day) = day else {
            continue;
        };
        if since.is_some_and(|s| day < s) {
            continue;
        }
        let instance = instance_of(&key).unwrap_or_default().to_string();
        if let Some(bytes) = store.get(&key)? {
            out.extend(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|l| (instance.clone(), l.to_string())),
            );
        }
    }
    Ok(out)
}
