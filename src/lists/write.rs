//! Writing one day of lists: CSV with BOM, Parquet and a manifest.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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
pub struct FileEntry {
    /// File name within the day's folder.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// One dong's list of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFile {
    /// Dong code, or `unassigned`.
    pub list: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
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
    pub csv: FileEntry,
    /// The Parquet file.
    pub parquet: FileEntry,
}

/// `manifest.json` of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// List day (local date of the cut-off).
    pub date: String,
    /// Pipeline name.
    pub pipeline: String,
    /// When the files were written (RFC 3339).
    pub written_at: String,
    /// Households on all lists.
    pub households: usize,
    /// Every list, served dongs first, `unassigned` last.
    pub lists: Vec<ListFile>,
    /// Each list's households in case management (`<dong>.cases.csv`), in
    /// the order of `lists`; not counted in `households`.
    #[serde(default)]
    pub cases: Vec<ListFile>,
    /// The city team's overdue and unreachable households of every list
    /// (`escalations.csv`); they are on their dong's list too.
    #[serde(default)]
    pub escalations: Option<ListFile>,
    /// Folder of the day.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> ListError + '_ {
    move |error| ListError::Io {
        dir: dir.to_path_buf(),
        error,
    }
}

pub(super) fn write_day(
    lists: &DailyLists,
    out: &Path,
    date: NaiveDate,
    ranked: &[RecordBatch],
    now_ms: i64,
) -> Result<Manifest, ListError> {
    let root = out.join("lists");
    let final_dir = root.join(date.to_string());
    let tmp_dir = temp_day_dir(&root, date)?;
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
        dir: tmp_dir.clone(),
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
        dir: final_dir.clone(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| io(&tmp_dir)(e.into()))?;
    crate::base::files::write_private(&tmp_dir.join("manifest.json"), &json)
        .map_err(io(&tmp_dir))?;
    swap_in(&root, &tmp_dir, &final_dir)?;
    Ok(manifest)
}

/// A fresh temporary folder for one writer of `date`'s lists (instances
/// sharing the partitions may assemble the same day at once), the lists
/// folder and it private; abandoned ones of earlier writers removed.
fn temp_day_dir(root: &Path, date: NaiveDate) -> Result<PathBuf, ListError> {
    let writer = format!(
        "{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let tmp_dir = root.join(format!(".{date}.{writer}.tmp"));
    remove_abandoned(root);
    // the lists folder and each day's: the owner's (and the reader group's)
    crate::base::files::create_private_dir(root).map_err(io(root))?;
    crate::base::files::create_private_dir(&tmp_dir).map_err(io(&tmp_dir))?;
    Ok(tmp_dir)
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
struct DayFiles {
    all: RecordBatch,
    rows: Vec<Vec<u32>>,
    /// (code, Korean name, English name) of each list.
    targets: Vec<(String, String, String)>,
    dir: PathBuf,
}

impl DayFiles {
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
        let csv = write_csv(&self.dir, &format!("{stem}.csv"), &batch, columns)?;
        let parquet = write_parquet(&self.dir, &format!("{stem}.parquet"), &batch)?;
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
}

/// Swaps the finished day in at once: readers never see half a day.
fn swap_in(root: &Path, tmp_dir: &Path, final_dir: &Path) -> Result<(), ListError> {
    let _ = fs::remove_dir_all(final_dir);
    if let Err(e) = fs::rename(tmp_dir, final_dir) {
        // another instance swapped in the same day (the same parts) first
        let _ = fs::remove_dir_all(tmp_dir);
        if !final_dir.join("manifest.json").exists() {
            return Err(io(root)(e));
        }
    }
    Ok(())
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

/// A file being written, hashed and counted on the way, so its manifest
/// entry needs no second read.
struct HashedFile {
    file: fs::File,
    sha256: Sha256,
    bytes: u64,
}

impl HashedFile {
    fn create(path: &Path) -> std::io::Result<Self> {
        Ok(HashedFile {
            file: crate::base::files::create_private(path)?,
            sha256: Sha256::new(),
            bytes: 0,
        })
    }

    /// Syncs the file and returns its manifest entry.
    fn finish(self, name: &str) -> std::io::Result<FileEntry> {
        self.file.sync_all()?;
        Ok(FileEntry {
            file: name.into(),
            bytes: self.bytes,
            sha256: format!("{:x}", self.sha256.finalize()),
        })
    }
}

impl Write for HashedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
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

/// Writes `batch` as the CSV file `name` in `dir`, row by row through a
/// buffer (a large dong's list is hundreds of megabytes at national scale).
fn write_csv(
    dir: &Path,
    name: &str,
    batch: &RecordBatch,
    columns_of: &[(&str, &str)],
) -> Result<FileEntry, ListError> {
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        HashedFile::create(&dir.join(name)).map_err(io(dir))?,
    );
    let mut line = String::from("\u{feff}");
    for (i, (_, header)) in columns_of.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_field(&mut line, header);
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes()).map_err(io(dir))?;
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
        out.write_all(line.as_bytes()).map_err(io(dir))?;
        line.clear();
    }
    let file = out.into_inner().map_err(|e| io(dir)(e.into_error()))?;
    file.finish(name).map_err(io(dir))
}

/// Writes `batch` as the Parquet file `name` in `dir`.
fn write_parquet(dir: &Path, name: &str, batch: &RecordBatch) -> Result<FileEntry, ListError> {
    let file = HashedFile::create(&dir.join(name)).map_err(io(dir))?;
    // a day's files are kept for years: snappy makes them about a quarter of
    // the size for no measurable time, and every Parquet reader takes it
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.finish(name).map_err(io(dir))
}

/// Removes temporary day folders older than an hour: a writer that died
/// before swapping its day in left them.
fn remove_abandoned(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let hour = std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > hour);
        if name.starts_with('.') && name.ends_with(".tmp") && old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

pub(super) fn households_on(out: &Path, date: NaiveDate) -> HashSet<String> {
    let mut set = HashSet::new();
    let dir = out.join("lists").join(date.to_string());
    let Ok(entries) = fs::read_dir(&dir) else {
        return set;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // the dongs' lists only: not their cases, nor the escalations
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".parquet")
            || name.ends_with(".cases.parquet")
            || name == "escalations.parquet"
        {
            continue;
        }
        let Ok(file) = fs::File::open(&path) else {
            continue;
        };
        let Ok(reader) = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build())
        else {
            tracing::warn!(file = %path.display(), "cannot read the previous list; its households count as new");
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
