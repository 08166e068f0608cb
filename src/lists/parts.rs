//! One day's lists when several instances share the input partitions: each
//! writes the candidates of the partitions it owns as one part per
//! partition, and the day is assembled (ranked and written atomically) by
//! whichever instance finds every partition's part in, so every household
//! is on its dong's list exactly once, however the partitions are shared.
//!
//! Parts live beside the days, in `lists/.parts/<date>/partition-NNNNN.parquet`,
//! on the same shared folder as the lists. A part is written to a temporary
//! file and renamed, so a reader never sees half of one; a partition whose
//! part is written twice (it moved between two instances at the cut-off)
//! counts once.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::{candidates_schema, DailyLists, ListError, Manifest, Unmarked};
use crate::engine::Engine;

/// The folder of one day's parts.
fn parts_dir(out: &Path, date: NaiveDate) -> PathBuf {
    out.join("lists").join(".parts").join(date.to_string())
}

fn part_name(partition: i32) -> String {
    format!("partition-{partition:05}.parquet")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ListError + '_ {
    move |error| ListError::Io {
        dir: path.to_path_buf(),
        error,
    }
}

impl DailyLists {
    /// Writes the candidates of day `cutoff` of each partition in
    /// `owned` (a partition with none gets an empty part) from `engine`,
    /// which holds the state of those partitions.
    pub async fn write_parts(
        &self,
        engine: &mut Engine,
        out: &Path,
        cutoff: crate::base::time::ClockTime,
        owned: &[i32],
        previous: &HashSet<String>,
    ) -> Result<(), ListError> {
        let date = self.list_day_at(cutoff);
        let dir = parts_dir(out, date);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lists = out.join("lists");
        crate::base::files::create_private_dir(&lists).map_err(io(&lists))?;
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
            let tmp = dir.join(format!(
                ".{}.{}.tmp",
                part_name(partition),
                std::process::id()
            ));
            let file = crate::base::files::create_private(&tmp).map_err(io(&dir))?;
            let mut writer = ArrowWriter::try_new(file, candidates_schema(), None)?;
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.close()?;
            fs::rename(&tmp, dir.join(part_name(partition))).map_err(io(&dir))?;
        }
        if !found.is_empty() {
            engine.index_priorities(&found.concat());
        }
        Ok(())
    }

    /// Assembles day `date` from its parts once all `partitions` have one:
    /// ranks every partition's candidates together and writes the day.
    /// `None` while a part is missing (another instance has not written
    /// it yet). Returns the manifest and the households on the lists.
    pub async fn assemble(
        &self,
        out: &Path,
        date: NaiveDate,
        partitions: usize,
        now_ms: i64,
    ) -> Result<Option<(Manifest, HashSet<String>)>, ListError> {
        let dir = parts_dir(out, date);
        let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut parts = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            let path = dir.join(part_name(partition as i32));
            let Some(at) = modified(&path) else {
                return Ok(None);
            };
            parts.push((path, at));
        }
        // another instance assembled the day from these very parts already
        let day = out.join("lists").join(date.to_string());
        let manifest_path = day.join("manifest.json");
        if let Some(written) = modified(&manifest_path) {
            if parts.iter().all(|(_, at)| *at <= written) {
                let text = fs::read(&manifest_path).map_err(io(&day))?;
                if let Ok(mut manifest) = serde_json::from_slice::<Manifest>(&text) {
                    manifest.dir = day;
                    return Ok(Some((manifest, self.households_on(out, date))));
                }
            }
        }
        let mut candidates = Vec::new();
        for (path, _) in &parts {
            let Ok(file) = fs::File::open(path) else {
                return Ok(None);
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
            for batch in reader {
                candidates.push(batch?);
            }
        }
        if candidates.is_empty() {
            candidates.push(RecordBatch::new_empty(candidates_schema()));
        }
        let ranked = self.rank(candidates).await?;
        let manifest = self.write(out, date, &ranked, now_ms)?;
        let on_list = super::households_of(&ranked)?;
        Ok(Some((manifest, on_list)))
    }

    /// Removes the parts of days before `date` (their days are written).
    pub fn prune_parts(&self, out: &Path, date: NaiveDate) {
        let Ok(days) = fs::read_dir(out.join("lists").join(".parts")) else {
            return;
        };
        for day in days.flatten() {
            let older = day
                .file_name()
                .to_str()
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .is_some_and(|d| d < date);
            if older {
                let _ = fs::remove_dir_all(day.path());
            }
        }
    }
}
