//! Writing one day of lists: CSV with BOM, Parquet and a manifest, as
//! objects `lists/<date>/<file>` of the lists' store. Each file is written
//! whole; the manifest goes last, so a day whose manifest is there has
//! every file it names.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::DataType;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DailyLists, ListError};
use crate::store::{Store, StoreError};

/// Columns of a dong's list file, in order: (SQL column, CSV header in
/// Korean and English). The Parquet file has every column of the SQL.
const COLUMNS: &[(&str, &str)] = &[
    ("rank", "순위 rank"),
    ("household_id", "가구ID household_id"),
    ("priority", "우선순위 priority"),
    ("score", "점수 score"),
    ("status_ko", "상태 status"),
    ("open", "연락대기 open"),
    ("next_step_ko", "할 일 next_step"),
    ("overdue", "기한초과 overdue"),
    ("overdue_days", "초과일수 overdue_days"),
    ("due_date", "연락기한 due_date"),
    ("attempts", "실패시도 attempts"),
    ("next_attempt_date", "다음시도일 next_attempt_date"),
    ("last_outcome", "최근조치 last_outcome"),
    ("last_outcome_date", "최근조치일 last_outcome_date"),
    ("categories_ko", "위기유형"),
    ("categories", "categories"),
    ("reasons_ko", "사유"),
    ("reasons_en", "reasons"),
    ("first_signal_date", "최초신호일 first_signal_date"),
    ("last_signal_date", "최근신호일 last_signal_date"),
    (
        "days_since_first_signal",
        "최초신호후경과일 days_since_first_signal",
    ),
    ("new_since_previous_list", "신규 new_since_previous_list"),
    ("times_alerted_before", "기존알림횟수 times_alerted_before"),
    ("in_window", "신호기간내 in_window"),
    ("dong_code", "행정동코드 dong_code"),
];

/// Columns of a dong's cases file (households in case management).
const CASE_COLUMNS: &[(&str, &str)] = &[
    ("rank", "순위 rank"),
    ("household_id", "가구ID household_id"),
    ("priority", "우선순위 priority"),
    ("score", "점수 score"),
    ("case_opened_date", "사례관리시작일 case_opened_date"),
    ("case_age_days", "사례관리경과일 case_age_days"),
    ("worsened", "악화 worsened"),
    ("last_outcome", "최근조치 last_outcome"),
    ("last_outcome_date", "최근조치일 last_outcome_date"),
    ("categories_ko", "위기유형"),
    ("categories", "categories"),
    ("reasons_ko", "사유"),
    ("reasons_en", "reasons"),
    ("dong_code", "행정동코드 dong_code"),
];

/// Columns of the city team's escalations file.
const ESCALATION_COLUMNS: &[(&str, &str)] = &[
    ("list_dong", "담당동 list_dong"),
    ("household_id", "가구ID household_id"),
    ("escalation", "사유 escalation"),
    ("priority", "우선순위 priority"),
    ("status_ko", "상태 status"),
    ("next_step_ko", "할 일 next_step"),
    ("attempts", "실패시도 attempts"),
    ("due_date", "연락기한 due_date"),
    ("last_outcome", "최근조치 last_outcome"),
    ("last_outcome_date", "최근조치일 last_outcome_date"),
    ("reasons_ko", "사유"),
    (
        "days_since_first_signal",
        "최초신호후경과일 days_since_first_signal",
    ),
    ("dong_code", "행정동코드 dong_code"),
];

/// Boolean columns written as Y/N in the CSV files, as offices write them.
const YES_NO: [&str; 5] = [
    "new_since_previous_list",
    "overdue",
    "worsened",
    "open",
    "in_window",
];

/// One file written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// File name within the day's folder.
    pub(crate) file: String,
    /// Size in bytes.
    pub(crate) bytes: u64,
    /// SHA-256 of the file, hex.
    pub(crate) sha256: String,
}

/// One dong's list of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFile {
    /// Dong code, or `unassigned`.
    pub list: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub(crate) name_en: String,
    /// Households on the list.
    pub households: usize,
    /// Of which P1.
    pub p1: usize,
    /// Of which P2.
    pub p2: usize,
    /// Of which P3.
    pub p3: usize,
    /// Of which new since the previous list.
    pub new: usize,
    /// The CSV file.
    pub(crate) csv: FileEntry,
    /// The Parquet file.
    pub(crate) parquet: FileEntry,
}

/// `manifest.json` of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// List day (local date of the cut-off).
    pub date: String,
    /// Pipeline name.
    pub(crate) pipeline: String,
    /// When the files were written (RFC 3339).
    pub(crate) written_at: String,
    /// Households on all lists.
    pub households: usize,
    /// Every list, served dongs first, `unassigned` last.
    pub lists: Vec<ListFile>,
    /// Each list's households in case management (`<dong>.cases.csv`), in
    /// the order of `lists`; not counted in `households`.
    #[serde(default)]
    pub(crate) cases: Vec<ListFile>,
    /// The city team's overdue and unreachable households of every list
    /// (`escalations.csv`); they are on their dong's list too.
    #[serde(default)]
    pub(crate) escalations: Option<ListFile>,
    /// A digest of the parts the day was assembled from, when instances
    /// share the partitions (another instance finding the same parts takes
    /// this day as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parts: Option<String>,
    /// Where the day is.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The key of file `name` of day `date`.
pub(super) fn day_key(date: NaiveDate, name: &str) -> String {
    format!("lists/{date}/{name}")
}

/// The manifest of `date`, if its day is written.
pub(super) fn manifest_of(out: &dyn Store, date: NaiveDate) -> Result<Option<Manifest>, ListError> {
    let Some(bytes) = out.get(&day_key(date, "manifest.json"))? else {
        return Ok(None);
    };
    let mut manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| StoreError {
        location: out.location(&day_key(date, "manifest.json")),
        error: e.into(),
    })?;
    manifest.dir = PathBuf::from(out.location(&format!("lists/{date}")));
    Ok(Some(manifest))
}

pub(super) fn write_day(
    lists: &DailyLists,
    out: &dyn Store,
    date: NaiveDate,
    ranked: &[RecordBatch],
    now_ms: i64,
    parts: Option<String>,
) -> Result<Manifest, ListError> {
    let all = match ranked.first() {
        Some(first) => concat_batches(&first.schema(), ranked)?,
        None => return Err(ListError::Contract("list_dong".into())),
    };
    let mut targets: Vec<(String, String, String)> = lists
        .dongs
        .iter()
        .map(|d| (d.dong_code.clone(), d.name_ko.clone(), d.name_en.clone()))
        .collect();
    targets.push((
        "unassigned".into(),
        "미배정 (시 통합조사팀)".into(),
        "unassigned (city team)".into(),
    ));
    let day = DayFiles {
        rows: rows_per_file(&all, &targets)?,
        all,
        targets,
        out,
        date,
    };
    // The files of different lists are independent: one thread per core
    // takes the next file until none is left.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let written = crate::base::lanes::each_in_turn(day.rows.len(), threads, |i| day.write_file(i));
    let mut files = Vec::with_capacity(written.len());
    for file in written {
        files.push(file?);
    }
    let escalations = files.pop();
    let cases = files.split_off(day.targets.len());
    let total = files.iter().map(|f| f.households).sum();
    let manifest = Manifest {
        date: date.to_string(),
        pipeline: lists.pipeline.clone(),
        written_at: crate::stages::alert::rfc3339(now_ms),
        households: total,
        lists: files,
        cases,
        escalations,
        parts,
        dir: PathBuf::from(out.location(&format!("lists/{date}"))),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError {
        location: out.location(&day_key(date, "manifest.json")),
        error: e.into(),
    })?;
    out.put(&day_key(date, "manifest.json"), &[&json])?;
    remove_stale(out, date, &manifest)?;
    Ok(manifest)
}

/// Removes what an earlier run left in the day that this one did not
/// write (a dong no longer served).
fn remove_stale(out: &dyn Store, date: NaiveDate, manifest: &Manifest) -> Result<(), ListError> {
    let mut written: HashSet<String> = HashSet::from([day_key(date, "manifest.json")]);
    for f in manifest
        .lists
        .iter()
        .chain(&manifest.cases)
        .chain(&manifest.escalations)
    {
        written.insert(day_key(date, &f.csv.file));
        written.insert(day_key(date, &f.parquet.file));
    }
    for key in out.list(&format!("lists/{date}/"))? {
        if !written.contains(&key) {
            out.delete(&key)?;
        }
    }
    Ok(())
}

/// The rows of each file, in their ranked order, in one pass: each
/// target's list, then each target's cases, then the escalations.
fn rows_per_file(
    all: &RecordBatch,
    targets: &[(String, String, String)],
) -> Result<Vec<Vec<u32>>, ListError> {
    let list_dong = cast(
        all.column_by_name("list_dong")
            .ok_or_else(|| ListError::Contract("list_dong".into()))?,
        &DataType::Utf8,
    )?;
    let list_dong = list_dong.as_string::<i32>();
    let in_case = all
        .column_by_name("in_case")
        .map(|c| c.as_boolean().clone());
    let escalation = all
        .column_by_name("escalation")
        .and_then(|c| cast(c, &DataType::Utf8).ok());
    let escalation = escalation.as_ref().map(|c| c.as_string::<i32>());
    let lists_n = targets.len();
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); 2 * lists_n + 1];
    let index: std::collections::HashMap<&str, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, (code, _, _))| (code.as_str(), i))
        .collect();
    for (row, dong) in list_dong.iter().enumerate() {
        let Some(&i) = dong.and_then(|d| index.get(d)) else {
            continue;
        };
        let case = in_case.as_ref().is_some_and(|c| c.value(row));
        rows[if case { lists_n + i } else { i }].push(row as u32);
        if escalation.is_some_and(|e| e.is_valid(row)) {
            rows[2 * lists_n].push(row as u32);
        }
    }
    Ok(rows)
}

/// One day's ranked rows and where each file's rows are.
struct DayFiles<'s> {
    all: RecordBatch,
    rows: Vec<Vec<u32>>,
    /// (code, Korean name, English name) of each list.
    targets: Vec<(String, String, String)>,
    out: &'s dyn Store,
    date: NaiveDate,
}

impl DayFiles<'_> {
    /// File `i`'s name and titles, and its columns: a list, a list's
    /// cases, or the escalations.
    fn which(
        &self,
        i: usize,
    ) -> (
        String,
        String,
        String,
        &'static [(&'static str, &'static str)],
    ) {
        let lists_n = self.targets.len();
        if i < lists_n {
            let (code, ko, en) = &self.targets[i];
            (code.clone(), ko.clone(), en.clone(), COLUMNS)
        } else if i < 2 * lists_n {
            let (code, ko, en) = &self.targets[i - lists_n];
            (
                format!("{code}.cases"),
                format!("{ko} 사례관리"),
                format!("{en}, case management"),
                CASE_COLUMNS,
            )
        } else {
            (
                "escalations".to_string(),
                "시 통합조사팀 확인 필요 (기한초과·소재파악)".to_string(),
                "city team: overdue and unreachable".to_string(),
                ESCALATION_COLUMNS,
            )
        }
    }

    /// Writes file `i` as CSV and Parquet; its entry in the manifest.
    fn write_file(&self, i: usize) -> Result<ListFile, ListError> {
        let (stem, name_ko, name_en, columns) = self.which(i);
        let take = arrow::array::UInt32Array::from_iter_values(self.rows[i].iter().copied());
        let batch = arrow::compute::take_record_batch(&self.all, &take)?;
        let csv = self.put(&format!("{stem}.csv"), csv_bytes(&batch, columns)?)?;
        let parquet = self.put(&format!("{stem}.parquet"), parquet_bytes(&batch)?)?;
        let count = |p: &str| count_eq(&batch, "priority", p);
        let new = batch
            .column_by_name("new_since_previous_list")
            .map(|c| c.as_boolean().true_count())
            .unwrap_or(0);
        Ok(ListFile {
            list: stem,
            name_ko,
            name_en,
            households: batch.num_rows(),
            p1: count("P1"),
            p2: count("P2"),
            p3: count("P3"),
            new,
            csv,
            parquet,
        })
    }

    /// Writes file `name` of the day; its manifest entry.
    fn put(&self, name: &str, file: HashedBuffer) -> Result<FileEntry, ListError> {
        self.out.put(&day_key(self.date, name), &[&file.bytes])?;
        Ok(file.entry(name))
    }
}

fn count_eq(batch: &RecordBatch, column: &str, value: &str) -> usize {
    batch
        .column_by_name(column)
        .and_then(|c| cast(c, &DataType::Utf8).ok())
        .map(|c| {
            c.as_string::<i32>()
                .iter()
                .filter(|v| *v == Some(value))
                .count()
        })
        .unwrap_or(0)
}

/// A file being made in memory, hashed on the way, so its manifest entry
/// needs no second read.
struct HashedBuffer {
    bytes: Vec<u8>,
    sha256: Sha256,
}

impl HashedBuffer {
    fn new() -> Self {
        HashedBuffer {
            bytes: Vec::new(),
            sha256: Sha256::new(),
        }
    }

    /// Its manifest entry as `name`.
    fn entry(&self, name: &str) -> FileEntry {
        FileEntry {
            file: name.into(),
            bytes: self.bytes.len() as u64,
            sha256: format!("{:x}", self.sha256.clone().finalize()),
        }
    }
}

impl Write for HashedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        self.sha256.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// RFC 4180 quoting: quote a field that holds a comma, quote or line break.
/// A field Excel would read as a formula (`=`, `+`, `-`, `@`, a tab or a
/// carriage return first, as in a household id `-2-3`) is written after a
/// `'`, which Excel shows as text; a plain number (`-3`, `0.5`) is kept.
pub(crate) fn csv_field(out: &mut String, value: &str) {
    let formula =
        value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err();
    let quoted;
    let value = if formula {
        quoted = format!("'{value}");
        quoted.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// `batch` as a CSV file, row by row.
fn csv_bytes(batch: &RecordBatch, columns_of: &[(&str, &str)]) -> Result<HashedBuffer, ListError> {
    let mut out = HashedBuffer::new();
    let mut line = String::from("\u{feff}");
    for (i, (_, header)) in columns_of.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_field(&mut line, header);
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())?;
    line.clear();
    let columns: Vec<Option<arrow::array::ArrayRef>> = columns_of
        .iter()
        .map(|(name, _)| {
            batch
                .column_by_name(name)
                .and_then(|c| cast(c, &DataType::Utf8).ok())
        })
        .collect();
    for row in 0..batch.num_rows() {
        for (i, col) in columns.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            if let Some(col) = col {
                let col = col.as_string::<i32>();
                if col.is_valid(row) {
                    let v = col.value(row);
                    // Excel reads "true"/"false" fine, but Y/N is what offices use.
                    let v = match v {
                        "true" if YES_NO.contains(&columns_of[i].0) => "Y",
                        "false" if YES_NO.contains(&columns_of[i].0) => "N",
                        _ => v,
                    };
                    csv_field(&mut line, v);
                }
            }
        }
        line.push_str("\r\n");
        out.write_all(line.as_bytes())?;
        line.clear();
    }
    Ok(out)
}

/// `batch` as the bytes of a Parquet file (written as the lists are).
pub(crate) fn parquet_of(batch: &RecordBatch) -> Result<Vec<u8>, ListError> {
    Ok(parquet_bytes(batch)?.bytes)
}

/// `batch` as a Parquet file.
fn parquet_bytes(batch: &RecordBatch) -> Result<HashedBuffer, ListError> {
    let file = HashedBuffer::new();
    // a day's files are kept for years: snappy makes them about a quarter of
    // the size for no measurable time, and every Parquet reader takes it
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    Ok(writer.into_inner()?)
}

/// The households on the dongs' lists of `date` (not their cases, nor
/// the escalations), read back from the Parquet files.
pub(super) fn households_on(out: &dyn Store, date: NaiveDate) -> HashSet<String> {
    let mut set = HashSet::new();
    let Ok(keys) = out.list(&format!("lists/{date}/")) else {
        return set;
    };
    for key in keys {
        let name = key.rsplit('/').next().unwrap_or_default();
        if !name.ends_with(".parquet")
            || name.ends_with(".cases.parquet")
            || name == "escalations.parquet"
            || name.starts_with("rule-yield")
        {
            continue;
        }
        let read = out.get(&key).ok().flatten().and_then(|bytes| {
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                .and_then(|b| b.build())
                .ok()
        });
        let Some(reader) = read else {
            tracing::warn!(file = %out.location(&key), "cannot read the previous list; its households count as new");
            continue;
        };
        for batch in reader.flatten() {
            if let Some(col) = batch
                .column_by_name("household_id")
                .and_then(|c| cast(c, &DataType::Utf8).ok())
            {
                set.extend(col.as_string::<i32>().iter().flatten().map(String::from));
            }
        }
    }
    set
}
