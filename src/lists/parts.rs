//! One day's lists when several instances share the input partitions: each
//! writes the candidates of the partitions it owns as one part per
//! partition, and the day is assembled (ranked and written atomically) by
//! whichever instance finds every partition's part in, so every household
//! is on its dong's list exactly once, however the partitions are shared.
//!
//! Parts live beside the days, as objects
//! `list-parts/<date>/partition-NNNNN-e<epoch>.parquet` of the lists' store,
//! the epoch being the writer's claim on the partition (see
//! [`crate::checkpoint`]). Each is written whole, so a reader never sees
//! half of one; a partition whose part is written twice (it moved between
//! two instances at the cut-off, or an instance paused meanwhile woke up)
//! counts once, as its latest owner wrote it. The day's manifest is
//! created once (create-if-absent): exactly one assembler publishes it.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::{candidates_schema, DailyLists, ListError, Manifest, Unmarked};
use crate::base::time::ClockTime;
use crate::engine::Engine;
use crate::store::Store;

/// The key of one partition's part of `date`, by the owner at `epoch`.
fn part_key(date: NaiveDate, partition: i32, epoch: u64) -> String {
    format!("list-parts/{date}/partition-{partition:05}-e{epoch}.parquet")
}

/// The partition and epoch of a part's key.
fn part_of(key: &str) -> Option<(i32, u64)> {
    let name = key.rsplit('/').next()?.strip_prefix("partition-")?;
    let name = name.strip_suffix(".parquet")?;
    let (p, e) = name.split_once("-e").unwrap_or((name, "0"));
    Some((p.parse().ok()?, e.parse().ok()?))
}

/// How long an assembly claim holds before another instance may take the
/// day over (its claimant died before publishing).
const ASSEMBLY_HOLDS_MS: i64 = 10 * 60_000;

/// Claims the assembly of `date` (create-if-absent), or takes over a
/// claim older than [`ASSEMBLY_HOLDS_MS`] (compare-and-swap): whether this
/// instance is to assemble it now.
fn claim_assembly(out: &dyn Store, date: NaiveDate, now_ms: i64) -> Result<bool, ListError> {
    let key = format!("list-parts/{date}/assembly.json");
    let body = serde_json::json!({ "pid": std::process::id(), "at_ms": now_ms }).to_string();
    if out.put_new(&key, &[body.as_bytes()])? {
        return Ok(true);
    }
    let Some((held, version)) = out.get_versioned(&key)? else {
        return Ok(false);
    };
    let at = serde_json::from_slice::<serde_json::Value>(&held)
        .ok()
        .and_then(|v| v["at_ms"].as_i64())
        .unwrap_or(0);
    if now_ms - at < ASSEMBLY_HOLDS_MS {
        return Ok(false);
    }
    Ok(out
        .put_if(&key, &[body.as_bytes()], Some(&version))?
        .is_some())
}

/// The key of each partition's newest-epoch part of `date`.
fn newest_parts(
    out: &dyn Store,
    date: NaiveDate,
) -> Result<std::collections::BTreeMap<i32, String>, ListError> {
    let mut newest: std::collections::BTreeMap<i32, (u64, String)> = Default::default();
    for key in out.list(&format!("list-parts/{date}/"))? {
        if let Some((p, e)) = part_of(&key) {
            let slot = newest.entry(p).or_insert((e, key.clone()));
            if e > slot.0 {
                *slot = (e, key);
            }
        }
    }
    Ok(newest.into_iter().map(|(p, (_, k))| (p, k)).collect())
}

impl DailyLists {
    /// Writes the candidates of day `cutoff` of each partition in
    /// `owned` (a partition with none gets an empty part) from `engine`,
    /// which holds the state of those partitions.
    pub(crate) async fn write_parts(
        &self,
        engine: &mut Engine,
        out: &dyn Store,
        cutoff: ClockTime,
        owned: &[(i32, u64)],
        previous: &HashSet<String>,
    ) -> Result<(), ListError> {
        let date = self.list_day_at(cutoff);
        // the candidates grouped by partition in one pass over them
        let (ids, _) = engine.list_candidates();
        let epochs: std::collections::BTreeMap<i32, u64> = owned.iter().copied().collect();
        let mut by_partition: std::collections::BTreeMap<i32, Vec<String>> =
            owned.iter().map(|&(p, _)| (p, Vec::new())).collect();
        for id in ids {
            if let Some(part) = engine.shard_of(id).and_then(|p| by_partition.get_mut(&p)) {
                part.push(id.to_string());
            }
        }
        let mut found: Vec<Unmarked> = Vec::new();
        for (&partition, ids) in &by_partition {
            let mine: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (batches, unmarked) = self
                .candidates_of(engine, &mine, cutoff, previous, Some(partition))
                .await?;
            // marked only once every partition is scored: marking sooner
            // would stop the next partitions from looking for them
            found.extend(unmarked);
            let mut writer = ArrowWriter::try_new(Vec::new(), candidates_schema(), None)?;
            for batch in &batches {
                writer.write(batch)?;
            }
            let part = writer.into_inner()?;
            let epoch = epochs.get(&partition).copied().unwrap_or(0);
            out.put(&part_key(date, partition, epoch), &[&part])?;
        }
        if !found.is_empty() {
            engine.index_priorities(&found.concat());
        }
        Ok(())
    }

    /// Assembles day `date` from its parts once all `partitions` have one:
    /// ranks every partition's candidates together and writes the day.
    /// `None` while a part is missing (another instance has not written
    /// it yet). A day already assembled from these very parts (by another
    /// instance) is taken as it is. Returns the manifest and the households
    /// on the lists.
    pub(crate) async fn assemble(
        &self,
        out: &dyn Store,
        date: NaiveDate,
        partitions: usize,
        now_ms: i64,
    ) -> Result<Option<(Manifest, HashSet<String>)>, ListError> {
        let newest = newest_parts(out, date)?;
        let mut parts = Vec::with_capacity(partitions);
        for partition in 0..partitions as i32 {
            let Some(key) = newest.get(&partition) else {
                return Ok(None);
            };
            match out.get(key)? {
                Some(bytes) => parts.push(bytes),
                None => return Ok(None),
            }
        }
        let mut digest = twox_hash::XxHash3_128::new();
        for part in &parts {
            digest.write(&(part.len() as u64).to_le_bytes());
            digest.write(part);
        }
        let digest = format!("{:032x}", digest.finish_128());
        // the day is published once: by whoever claimed its assembly first
        if let Some(manifest) = self.manifest_of(out, date)? {
            return Ok(Some((manifest, self.households_on(out, date))));
        }
        if !claim_assembly(out, date, now_ms)? {
            return Ok(None);
        }
        let mut candidates = Vec::new();
        for part in parts {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(part))?.build()?;
            for batch in reader {
                candidates.push(batch?);
            }
        }
        if candidates.is_empty() {
            candidates.push(RecordBatch::new_empty(candidates_schema()));
        }
        let ranked = self.rank(candidates).await?;
        let manifest = super::write::write_day(self, out, date, &ranked, now_ms, Some(digest))?;
        let on_list = super::households_of(&ranked)?;
        Ok(Some((manifest, on_list)))
    }

    /// Removes the parts of days before `date` (their days are written).
    pub(crate) fn prune_parts(&self, out: &dyn Store, date: NaiveDate) {
        let Ok(keys) = out.list("list-parts/") else {
            return;
        };
        for key in keys {
            let older = key
                .split('/')
                .nth(1)
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .is_some_and(|d| d < date);
            if older {
                let _ = out.delete(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitions_part_of_its_latest_owner_wins() {
        let dir = tempfile::tempdir().unwrap();
        let out = crate::store::open(dir.path()).unwrap();
        let date: NaiveDate = "2026-12-01".parse().unwrap();
        for key in [
            part_key(date, 0, 2),
            part_key(date, 0, 1),
            "list-parts/2026-12-01/partition-00001.parquet".into(),
            part_key(date, 1, 0),
        ] {
            out.put(&key, &[b"part"]).unwrap();
        }
        let newest = newest_parts(&*out, date).unwrap();
        assert_eq!(
            newest[&0],
            part_key(date, 0, 2),
            "the paused owner's e1 loses"
        );
        assert_eq!(newest.len(), 2);
    }

    #[test]
    fn one_instance_assembles_a_day_unless_it_died_doing_so() {
        let dir = tempfile::tempdir().unwrap();
        let out = crate::store::open(dir.path()).unwrap();
        let date: NaiveDate = "2026-12-01".parse().unwrap();
        let t = 1_800_000_000_000;
        assert!(claim_assembly(&*out, date, t).unwrap());
        assert!(!claim_assembly(&*out, date, t + 1_000).unwrap());
        // ten minutes without a manifest: the claimant died; one takes over
        let late = t + ASSEMBLY_HOLDS_MS;
        assert!(claim_assembly(&*out, date, late).unwrap());
        assert!(!claim_assembly(&*out, date, late).unwrap());
    }
}
