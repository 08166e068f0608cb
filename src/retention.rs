//! Deleting data whose retention has ended: daily lists and the city's
//! escalation lists (by the day they describe), dead-letter and alert
//! copies written to disk and old snapshots (by when they were written),
//! and audit files (kept at least two years). The running pipeline does
//! it once a day; `sagak retention --apply` does it on demand.
//!
//! Case records and the signals in the state go by the engine's own
//! retention (`[outcomes] retention`, bounded by `retention.data`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;

use crate::store::SharedStore;

/// Where the files with household data are, and how long they are kept.
#[derive(Debug, Clone)]
pub struct RetentionRules {
    /// `lists.out_dir` (lists under `lists/<date>/`, copies at the top).
    pub(crate) out_dir: PathBuf,
    /// `engine.state_dir` (`partition-*/checkpoint-*`).
    pub(crate) state_dir: PathBuf,
    /// `web.audit_dir`.
    pub(crate) audit_dir: PathBuf,
    /// Household data, ms.
    pub(crate) data_ms: i64,
    /// Audit files, ms.
    pub(crate) audit_ms: i64,
    /// The offices' clock: whose day a list's folder names.
    pub(crate) clock: crate::base::civil::LocalClock,
    /// With `storage.url`: the lists' and the audit's stores, whose days
    /// expire as the folders' do.
    pub(crate) stores: Option<(SharedStore, SharedStore)>,
    /// The lists' store (`lists.out_dir`, or `<storage.url>/out/`), where
    /// the escalation states are.
    pub(crate) lists: SharedStore,
}

/// One day of objects past its retention, in a store.
struct ExpiredDay {
    store: SharedStore,
    keys: Vec<String>,
    expired: Expired,
}

/// One file or folder past its retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The path.
    pub path: PathBuf,
    /// What it is, and since when it is kept.
    pub why: String,
}

fn day_dirs(dir: &Path) -> Vec<(NaiveDate, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(NaiveDate, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let day = NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
            Some((day, path))
        })
        .collect();
    out.sort();
    out
}

fn older_than(path: &Path, horizon: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t < horizon)
}

fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl RetentionRules {
    /// The rules of the settings (`retention.*` and the folders they
    /// apply to).
    pub fn from_settings(
        settings: &crate::config::Settings,
        spec: &crate::definition::PipelineSpec,
    ) -> Result<RetentionRules, crate::store::StoreError> {
        let storage = settings.storage()?;
        let stores = storage.audit.map(|audit| (storage.lists.clone(), audit));
        Ok(RetentionRules {
            stores,
            lists: storage.lists,
            out_dir: settings.lists.out_dir.clone(),
            state_dir: settings.engine.state_dir.clone(),
            audit_dir: settings.web.audit_dir.clone(),
            data_ms: settings.retention.data_ms(),
            audit_ms: settings.retention.audit_ms(),
            clock: spec.local_clock(),
        })
    }

    /// The days of the stores past their retention: lists and list parts
    /// after `retention.data`, audit objects after `retention.audit`.
    fn expired_days(&self, today: NaiveDate) -> Vec<ExpiredDay> {
        let Some((lists, audit)) = &self.stores else {
            return Vec::new();
        };
        let data_kept = today - chrono::Duration::days(self.data_ms / crate::definition::DAY_MS);
        let audit_kept = today - chrono::Duration::days(self.audit_ms / crate::definition::DAY_MS);
        let mut out = Vec::new();
        for (store, prefix, kept, what) in [
            (lists, "lists/", data_kept, "lists of"),
            (lists, "list-parts/", data_kept, "list parts of"),
            (audit, "", audit_kept, "audit of"),
        ] {
            let mut days: std::collections::BTreeMap<NaiveDate, Vec<String>> = Default::default();
            for key in store.list(prefix).unwrap_or_default() {
                let day = key[prefix.len()..].split('/').next();
                if let Some(day) = day.and_then(|d| d.parse::<NaiveDate>().ok()) {
                    if day < kept {
                        days.entry(day).or_default().push(key);
                    }
                }
            }
            for (day, keys) in days {
                let expired = Expired {
                    path: PathBuf::from(store.location(&format!("{prefix}{day}"))),
                    why: format!("{what} {day}: past its retention (kept from {kept})"),
                };
                out.push(ExpiredDay {
                    store: store.clone(),
                    keys,
                    expired,
                });
            }
        }
        out
    }

    /// Today's local date.
    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    /// What has expired as of `today` (the local date) and `now`.
    pub fn expired(&self, today: NaiveDate, now: SystemTime) -> Vec<Expired> {
        let mut out = self.expired_files(today, now);
        out.extend(self.expired_days(today).into_iter().map(|d| d.expired));
        out
    }

    /// The files and folders of this machine past their retention.
    fn expired_files(&self, today: NaiveDate, now: SystemTime) -> Vec<Expired> {
        let mut out = Vec::new();
        let data_days = self.data_ms / crate::definition::DAY_MS;
        let last_kept = today - chrono::Duration::days(data_days);
        let lists = self.out_dir.join("lists");
        for dir in [lists, self.out_dir.join("list-parts")] {
            for (day, path) in day_dirs(&dir) {
                if day < last_kept {
                    out.push(Expired {
                        path,
                        why: format!(
                            "lists of {day}: older than retention.data (kept from {last_kept})"
                        ),
                    });
                }
            }
        }
        let horizon = now
            .checked_sub(ms_duration(self.data_ms))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // copies the demo and replays write: alerts, escalations, dead letters
        if let Ok(entries) = std::fs::read_dir(&self.out_dir) {
            for e in entries.flatten() {
                let path = e.path();
                let copy = path.extension().is_some_and(|x| x == "ndjson");
                if copy && older_than(&path, horizon) {
                    out.push(Expired {
                        path,
                        why: "copy of alerts or dead letters older than retention.data".into(),
                    });
                }
            }
        }
        // old snapshots; the newest of each partition is the live state
        if let Ok(parts) = std::fs::read_dir(&self.state_dir) {
            for part in parts.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
                let mut snaps: Vec<PathBuf> = std::fs::read_dir(&part)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.path())
                            .filter(|p| {
                                p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| n.starts_with("checkpoint-"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                snaps.sort();
                snaps.pop();
                for path in snaps.into_iter().filter(|p| older_than(p, horizon)) {
                    out.push(Expired {
                        path,
                        why: "snapshot older than retention.data (not its partition's newest)"
                            .into(),
                    });
                }
            }
        }
        let audit_days = self.audit_ms / crate::definition::DAY_MS;
        let audit_kept = today - chrono::Duration::days(audit_days);
        if let Ok(entries) = std::fs::read_dir(&self.audit_dir) {
            for path in entries.flatten().map(|e| e.path()) {
                if crate::web::audit::day_of(&path).is_some_and(|d| d < audit_kept) {
                    out.push(Expired {
                        path,
                        why: format!(
                            "audit file older than retention.audit (kept from {audit_kept})"
                        ),
                    });
                }
            }
        }
        out
    }

    /// Deletes what has expired; returns what was deleted. The city
    /// team's escalation states set before `retention.data` are dropped
    /// from their file.
    pub fn apply(&self, today: NaiveDate, now: SystemTime) -> std::io::Result<Vec<Expired>> {
        let mut expired = self.expired_files(today, now);
        for e in &expired {
            if e.path.is_dir() {
                std::fs::remove_dir_all(&e.path)?;
            } else {
                std::fs::remove_file(&e.path)?;
            }
        }
        for day in self.expired_days(today) {
            for key in &day.keys {
                day.store.delete(key).map_err(|e| e.error)?;
            }
            expired.push(day.expired);
        }
        let now_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let dropped = crate::web::escalations::prune(&self.lists, now_ms - self.data_ms)
            .map_err(|e| e.error)?;
        if dropped > 0 {
            expired.push(Expired {
                path: PathBuf::from(self.lists.location(crate::web::escalations::FILE)),
                why: format!("{dropped} escalation states older than retention.data"),
            });
        }
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_older_than_its_retention_goes_and_a_newer_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        for day in ["2026-11-01", "2026-11-20", "2026-11-30"] {
            std::fs::create_dir_all(out.join("lists").join(day)).unwrap();
            std::fs::write(out.join("lists").join(day).join("4125052000.csv"), "x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("audit")).unwrap();
        std::fs::write(dir.path().join("audit/audit-2024-01-01.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("audit/audit-2026-11-01.jsonl"), "{}\n").unwrap();
        let rules = RetentionRules {
            out_dir: out.clone(),
            state_dir: dir.path().join("state"),
            audit_dir: dir.path().join("audit"),
            data_ms: 15 * crate::definition::DAY_MS,
            audit_ms: 730 * crate::definition::DAY_MS,
            clock: crate::base::civil::LocalClock::from_hours(9),
            stores: None,
            lists: crate::store::open(&out).unwrap(),
        };
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let gone = rules.apply(today, SystemTime::now()).unwrap();
        let names: Vec<String> = gone
            .iter()
            .map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"2026-11-01".to_string()));
        assert!(names.contains(&"audit-2024-01-01.jsonl".to_string()));
        assert!(!out.join("lists/2026-11-01").exists());
        assert!(out.join("lists/2026-11-20").exists());
        assert!(out.join("lists/2026-11-30").exists());
        assert!(dir.path().join("audit/audit-2026-11-01.jsonl").exists());
    }

    /// With `storage.url`, a day of lists, list parts or audit in the
    /// store goes as a folder's would, and newer days stay.
    #[test]
    fn days_in_a_store_expire_as_folders_do() {
        let dir = tempfile::tempdir().unwrap();
        let lists = crate::store::open(&dir.path().join("out")).unwrap();
        let audit = crate::store::open(&dir.path().join("audit")).unwrap();
        for key in [
            "lists/2026-11-01/4125052000.csv",
            "lists/2026-11-01/manifest.json",
            "lists/2026-11-30/4125052000.csv",
            "list-parts/2026-11-01/partition-00000-e1.parquet",
        ] {
            lists.put(key, &[b"x"]).unwrap();
        }
        audit
            .put("2024-01-01/09-host-1-0000000001.jsonl", &[b"{}"])
            .unwrap();
        audit
            .put("2026-11-01/09-host-1-0000000002.jsonl", &[b"{}"])
            .unwrap();
        let rules = RetentionRules {
            out_dir: dir.path().join("none"),
            state_dir: dir.path().join("none"),
            audit_dir: dir.path().join("none"),
            data_ms: 15 * crate::definition::DAY_MS,
            audit_ms: 730 * crate::definition::DAY_MS,
            clock: crate::base::civil::LocalClock::from_hours(9),
            stores: Some((lists.clone(), audit.clone())),
            lists: lists.clone(),
        };
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let gone = rules.apply(today, SystemTime::now()).unwrap();
        assert_eq!(gone.len(), 3, "{gone:?}");
        assert_eq!(lists.list("").unwrap(), ["lists/2026-11-30/4125052000.csv"]);
        assert_eq!(
            audit.list("").unwrap(),
            ["2026-11-01/09-host-1-0000000002.jsonl"]
        );
    }
}
