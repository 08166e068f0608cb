//! One day's lists when several instances share the input partitions: each
//! writes the candidates of the partitions it owns as one part per
//! partition, and the day is assembled (ranked and written atomically) by
//! whichever instance finds every partition's part in, so every household
//! is on its dong's list exactly once, however the partitions are shared.
//!
//! Parts live beside the days, as objects
//! `list-parts/<date>/partition-NNNNN.parquet` of the lists' store. Each is
//! written whole, so a reader never sees half of one; a partition whose
//! part is written twice (it moved between two instances at the cut-off)
//! counts once.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::{candidates_schema, DailyLists, ListError, Manifest, Unmarked};
use crate::base::time::ClockTime;
use crate::engine::Engine;
use crate::store::Store;

/// The key of one partition's part of `date`.
fn part_key(date: NaiveDate, partition: i32) -> String {
    format!("list-parts/{date}/partition-{partition:05}.parquet")
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
        owned: &[i32],
        previous: &HashSet<String>,
    ) -> Result<(), ListError> {
        let date = self.list_day_at(cutoff);
        // the candidates grouped by partition in one pass over them
        let (ids, _) = engine.list_candidates();
        let mut by_partition: std::collections::BTreeMap<i32, Vec<String>> =
            owned.iter().map(|&p| (p, Vec::new())).collect();
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
            out.put(&part_key(date, partition), &[&part])?;
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
        let mut parts = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            match out.get(&part_key(date, partition as i32))? {
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
        if let Some(manifest) = self.manifest_of(out, date)? {
            if manifest.parts.as_deref() == Some(digest.as_str()) {
                return Ok(Some((manifest, self.households_on(out, date))));
            }
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
