//! `sagak compare`: the same input replayed under two pipeline
//! definitions, and what changes between them: what an operator reads
//! before changing `score.sql` or `[params]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use super::replay::{run_replay, ReplayConfig, ReplayError, ReplaySummary};
use crate::definition::PipelineSpec;
use crate::metrics::Metrics;
use crate::ops::OpsState;

/// A household on one day's list: its list, priority and score.
type Listed = (String, String, f64);

/// One household that differs between the two runs on one list day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Difference {
    /// List day.
    pub(crate) date: String,
    /// Pseudonymous household id.
    pub(crate) household_id: String,
    /// `gained` (only under B), `lost` (only under A) or `moved` (another
    /// priority).
    pub(crate) change: String,
    /// Its list under A and B.
    pub(crate) list: (Option<String>, Option<String>),
    /// Its priority under A and B.
    pub(crate) priority: (Option<String>, Option<String>),
    /// Its score under A and B.
    pub(crate) score: (Option<f64>, Option<f64>),
}

/// What changes from pipeline A to pipeline B.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Comparison {
    /// The two pipelines: folder, name and version.
    pub pipelines: (String, String),
    /// Alerts per priority under A and B.
    pub alerts_by_priority: BTreeMap<String, (usize, usize)>,
    /// Alerts per dong under A and B.
    pub(crate) alerts_by_dong: BTreeMap<String, (usize, usize)>,
    /// Per list day: households listed under A and B, gained, lost, moved.
    pub per_day: BTreeMap<String, DayChange>,
    /// Priority moves over every day (`P2 -> P1`: households-days).
    pub priority_moves: BTreeMap<String, usize>,
    /// Households that differ on some day.
    pub households_differing: usize,
    /// The offices' load per round: households on each dong's list per
    /// list day, the mean over the days, under A and B.
    pub load_per_dong: BTreeMap<String, (f64, f64)>,
    /// With `--outcomes`: what B would have done to the households with a
    /// recorded outcome.
    pub backtest: Option<super::backtest::Backtest>,
    /// Where the replays and the difference files are.
    pub(crate) out_dir: String,
}

/// One list day's change.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DayChange {
    /// Households listed under A.
    pub a: usize,
    /// Under B.
    pub b: usize,
    /// Only under B.
    pub gained: usize,
    /// Only under A.
    pub lost: usize,
    /// Under both, at another priority.
    pub moved: usize,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> ReplayError + '_ {
    move |error| ReplayError::Io {
        dir: dir.to_path_buf(),
        error,
    }
}

/// Replays `cfg`'s input under each of `specs` (into `out/a` and `out/b`)
/// and writes what differs to `out/households.{csv,parquet}`,
/// `out/differences.{csv,parquet}` and `out/comparison.json`. `folders`
/// name the two pipelines in the report beside their names and versions:
/// a copy of a pipeline keeps its name.
pub async fn run_compare(
    specs: &[PipelineSpec; 2],
    folders: [&Path; 2],
    cfg: &ReplayConfig,
    out: &Path,
) -> Result<Comparison, ReplayError> {
    let mut runs: Vec<(ReplaySummary, PathBuf)> = Vec::new();
    for (spec, name) in specs.iter().zip(["a", "b"]) {
        let dir = out.join(name);
        let _ = fs::remove_dir_all(&dir);
        let ops = OpsState::new(spec, Metrics::new(spec), "replay");
        let run = ReplayConfig {
            out_dir: dir.clone(),
            ..cfg.clone()
        };
        runs.push((run_replay(spec, &run, &ops).await?, dir));
    }
    let label = |i: usize| {
        let spec = &specs[i];
        format!("{} ({} {})", folders[i].display(), spec.name, spec.version)
    };
    let mut c = Comparison {
        pipelines: (label(0), label(1)),
        out_dir: out.display().to_string(),
        ..Comparison::default()
    };
    let pair = |a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>| {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .map(|k| {
                let n = |m: &BTreeMap<String, usize>| m.get(k).copied().unwrap_or(0);
                (k.clone(), (n(a), n(b)))
            })
            .collect()
    };
    c.alerts_by_priority = pair(&runs[0].0.alerts_by_priority, &runs[1].0.alerts_by_priority);
    c.alerts_by_dong = pair(&runs[0].0.alerts_by_dong, &runs[1].0.alerts_by_dong);

    // one day of both runs in memory at a time: a year of a large city's
    // lists does not fit twice
    let dates: BTreeSet<String> = list_days(&runs[0].1)?
        .into_iter()
        .chain(list_days(&runs[1].1)?)
        .collect();
    let mut differences = Vec::new();
    let mut differing: BTreeSet<String> = BTreeSet::new();
    for date in &dates {
        let a = read_day(&runs[0].1, date)?;
        let b = read_day(&runs[1].1, date)?;
        let mut day = DayChange {
            a: a.len(),
            b: b.len(),
            ..DayChange::default()
        };
        for (side, day) in [(0, &a), (1, &b)] {
            for (list, _, _) in day.values() {
                let load = c.load_per_dong.entry(list.clone()).or_default();
                if side == 0 {
                    load.0 += 1.0;
                } else {
                    load.1 += 1.0;
                }
            }
        }
        let households: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for hh in households {
            let (x, y) = (a.get(hh), b.get(hh));
            let change = match (x, y) {
                (None, Some(_)) => "gained",
                (Some(_), None) => "lost",
                (Some(x), Some(y)) if x.1 != y.1 => "moved",
                _ => continue,
            };
            match change {
                "gained" => day.gained += 1,
                "lost" => day.lost += 1,
                _ => {
                    day.moved += 1;
                    if let (Some(x), Some(y)) = (x, y) {
                        *c.priority_moves
                            .entry(format!("{} -> {}", x.1, y.1))
                            .or_default() += 1;
                    }
                }
            }
            differing.insert(hh.clone());
            differences.push(Difference {
                date: date.clone(),
                household_id: hh.clone(),
                change: change.into(),
                list: (x.map(|l| l.0.clone()), y.map(|l| l.0.clone())),
                priority: (x.map(|l| l.1.clone()), y.map(|l| l.1.clone())),
                score: (x.map(|l| l.2), y.map(|l| l.2)),
            });
        }
        c.per_day.insert(date.clone(), day);
    }
    c.households_differing = differing.len();
    let days = dates.len().max(1) as f64;
    for load in c.load_per_dong.values_mut() {
        *load = (load.0 / days, load.1 / days);
    }
    if !cfg.outcomes.is_empty() {
        c.backtest = Some(super::backtest::run(&cfg.outcomes, &runs[0].1, &runs[1].1)?);
    }
    write_differences(out, &differences)?;
    write_households(out, &differences, c.backtest.as_ref())?;
    let json = serde_json::to_vec_pretty(&c).map_err(|e| io(out)(e.into()))?;
    fs::write(out.join("comparison.json"), json).map_err(io(out))?;
    Ok(c)
}

/// Every list day a replay wrote completely (its manifest is there).
fn list_days(run: &Path) -> Result<Vec<String>, ReplayError> {
    let root = run.join("lists");
    let Ok(days) = fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    Ok(days
        .flatten()
        .map(|day| day.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && root.join(name).join("manifest.json").exists())
        .collect())
}

/// One list day of a replay: household -> (list, priority, score), read
/// from the dongs' Parquet lists (not the cases, nor the escalations);
/// empty when the replay wrote no list that day.
fn read_day(run: &Path, date: &str) -> Result<BTreeMap<String, Listed>, ReplayError> {
    let dir = run.join("lists").join(date);
    let mut listed = BTreeMap::new();
    if !dir.join("manifest.json").exists() {
        return Ok(listed);
    }
    for file in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
        let file_name = file.file_name().to_string_lossy().into_owned();
        if !file_name.ends_with(".parquet")
            || file_name.ends_with(".cases.parquet")
            || file_name == "escalations.parquet"
            || file_name.starts_with("rule-yield")
        {
            continue;
        }
        read_list(&file.path(), &mut listed)?;
    }
    Ok(listed)
}

fn read_list(path: &Path, into: &mut BTreeMap<String, Listed>) -> Result<(), ReplayError> {
    let bad = |e: String| {
        ReplayError::Files(crate::embedded::files::FileError::Parquet {
            path: path.to_path_buf(),
            error: e,
        })
    };
    let f = fs::File::open(path).map_err(io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| cast(c, &DataType::Utf8).ok())
        };
        let (Some(hh), Some(list), Some(priority)) =
            (text("household_id"), text("list_dong"), text("priority"))
        else {
            continue;
        };
        let score = batch
            .column_by_name("score")
            .and_then(|c| cast(c, &DataType::Float64).ok());
        let (hh, list, priority) = (
            hh.as_string::<i32>(),
            list.as_string::<i32>(),
            priority.as_string::<i32>(),
        );
        for row in 0..batch.num_rows() {
            if hh.is_null(row) {
                continue;
            }
            let s = score.as_ref().map_or(0.0, |s| {
                s.as_primitive::<arrow::datatypes::Float64Type>().value(row)
            });
            into.insert(
                hh.value(row).to_string(),
                (
                    list.value(row).to_string(),
                    priority.value(row).to_string(),
                    s,
                ),
            );
        }
    }
    Ok(())
}

/// A column of text or numbers, one value per row (`None`: empty).
enum Column {
    Text(Vec<Option<String>>),
    Number(Vec<Option<f64>>),
    Count(Vec<u64>),
}

/// `<stem>.csv` (UTF-8 with BOM and CRLF, for Excel) and `<stem>.parquet`
/// in `out`, from named columns of equal length.
fn write_table(out: &Path, stem: &str, columns: Vec<(&str, Column)>) -> Result<(), ReplayError> {
    let rows = columns.first().map_or(0, |(_, c)| match c {
        Column::Text(v) => v.len(),
        Column::Number(v) => v.len(),
        Column::Count(v) => v.len(),
    });
    let mut csv = String::from("\u{feff}");
    csv.push_str(
        &columns
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(","),
    );
    csv.push_str("\r\n");
    for row in 0..rows {
        for (i, (_, column)) in columns.iter().enumerate() {
            if i > 0 {
                csv.push(',');
            }
            match column {
                Column::Text(v) => {
                    crate::lists::csv_field(&mut csv, v[row].as_deref().unwrap_or_default())
                }
                Column::Number(v) => {
                    if let Some(x) = v[row] {
                        csv.push_str(&format!("{x:.2}"));
                    }
                }
                Column::Count(v) => csv.push_str(&v[row].to_string()),
            }
        }
        csv.push_str("\r\n");
    }
    crate::base::files::write_private(&out.join(format!("{stem}.csv")), csv.as_bytes())
        .map_err(io(out))?;

    let path = out.join(format!("{stem}.parquet"));
    let bad = |e: String| {
        ReplayError::Files(crate::embedded::files::FileError::Parquet {
            path: path.clone(),
            error: e,
        })
    };
    let (fields, arrays): (Vec<Field>, Vec<Arc<dyn Array>>) = columns
        .into_iter()
        .map(|(name, column)| {
            let array: Arc<dyn Array> = match column {
                Column::Text(v) => Arc::new(v.into_iter().collect::<StringArray>()),
                Column::Number(v) => Arc::new(v.into_iter().collect::<Float64Array>()),
                Column::Count(v) => Arc::new(UInt64Array::from(v)),
            };
            (Field::new(name, array.data_type().clone(), true), array)
        })
        .unzip();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| bad(e.to_string()))?;
    let file = crate::base::files::create_private(&path).map_err(io(out))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| bad(e.to_string()))?;
    writer.write(&batch).map_err(|e| bad(e.to_string()))?;
    writer.close().map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// `differences.csv`/`.parquet`: one row per household and list day.
fn write_differences(out: &Path, diffs: &[Difference]) -> Result<(), ReplayError> {
    let text =
        |f: &dyn Fn(&Difference) -> Option<String>| Column::Text(diffs.iter().map(f).collect());
    let number =
        |f: &dyn Fn(&Difference) -> Option<f64>| Column::Number(diffs.iter().map(f).collect());
    write_table(
        out,
        "differences",
        vec![
            ("date", text(&|d| Some(d.date.clone()))),
            ("household_id", text(&|d| Some(d.household_id.clone()))),
            ("change", text(&|d| Some(d.change.clone()))),
            ("list_a", text(&|d| d.list.0.clone())),
            ("list_b", text(&|d| d.list.1.clone())),
            ("priority_a", text(&|d| d.priority.0.clone())),
            ("priority_b", text(&|d| d.priority.1.clone())),
            ("score_a", number(&|d| d.score.0)),
            ("score_b", number(&|d| d.score.1)),
        ],
    )
}

/// `households.csv`/`.parquet`: one row per household that differs on some
/// day, with its days gained, lost and moved, the first and last of them and
/// how it stands on the last: a sheet that opens whole in Excel, where the
/// day-by-day file of a large city has more rows than a sheet holds.
fn write_households(
    out: &Path,
    diffs: &[Difference],
    backtest: Option<&super::backtest::Backtest>,
) -> Result<(), ReplayError> {
    struct Summary<'a> {
        gained: u64,
        lost: u64,
        moved: u64,
        first: &'a str,
        last: &'a Difference,
    }
    let mut by_household: BTreeMap<&str, Summary<'_>> = BTreeMap::new();
    // the differences come day by day, so a household's last one is its latest
    for d in diffs {
        let s = by_household
            .entry(d.household_id.as_str())
            .or_insert(Summary {
                gained: 0,
                lost: 0,
                moved: 0,
                first: &d.date,
                last: d,
            });
        match d.change.as_str() {
            "gained" => s.gained += 1,
            "lost" => s.lost += 1,
            _ => s.moved += 1,
        }
        s.last = d;
    }
    let rows: Vec<(&str, Summary<'_>)> = by_household.into_iter().collect();
    let text = |f: &dyn Fn(&Summary<'_>) -> Option<String>| {
        Column::Text(rows.iter().map(|(_, s)| f(s)).collect())
    };
    let count =
        |f: &dyn Fn(&Summary<'_>) -> u64| Column::Count(rows.iter().map(|(_, s)| f(s)).collect());
    let number = |f: &dyn Fn(&Difference) -> Option<f64>| {
        Column::Number(rows.iter().map(|(_, s)| f(s.last)).collect())
    };
    write_table(
        out,
        "households",
        vec![
            (
                "household_id",
                Column::Text(rows.iter().map(|(h, _)| Some(h.to_string())).collect()),
            ),
            ("days_gained", count(&|s| s.gained)),
            ("days_lost", count(&|s| s.lost)),
            ("days_moved", count(&|s| s.moved)),
            ("first_date", text(&|s| Some(s.first.to_string()))),
            ("last_date", text(&|s| Some(s.last.date.clone()))),
            ("last_change", text(&|s| Some(s.last.change.clone()))),
            ("last_list_a", text(&|s| s.last.list.0.clone())),
            ("last_list_b", text(&|s| s.last.list.1.clone())),
            ("last_priority_a", text(&|s| s.last.priority.0.clone())),
            ("last_priority_b", text(&|s| s.last.priority.1.clone())),
            ("last_score_a", number(&|d| d.score.0)),
            ("last_score_b", number(&|d| d.score.1)),
            (
                "backtest",
                Column::Text(
                    rows.iter()
                        .map(|(h, _)| backtest.and_then(|t| t.verdict(h)))
                        .collect(),
                ),
            ),
        ],
    )
}

impl Comparison {
    /// The comparison as an operator reads it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!(
            "sagak compare: A = {}, B = {}",
            self.pipelines.0, self.pipelines.1
        ));
        if let Some(t) = &self.backtest {
            for l in t.lines() {
                line(l);
            }
        }
        line("alerts per priority          A        B   change".into());
        for (p, (a, b)) in &self.alerts_by_priority {
            line(format!(
                "  {p:<20}{a:>9}{b:>9}{:>+9}",
                *b as i64 - *a as i64
            ));
        }
        line("alerts per dong              A        B   change".into());
        for (d, (a, b)) in &self.alerts_by_dong {
            if a != b {
                line(format!(
                    "  {d:<20}{a:>9}{b:>9}{:>+9}",
                    *b as i64 - *a as i64
                ));
            }
        }
        line(
            "offices' load per round (households on the dong's list per day, mean)   A        B"
                .into(),
        );
        for (d, (a, b)) in &self.load_per_dong {
            if (a - b).abs() >= 0.05 {
                line(format!("  {d:<20}{a:>9.1}{b:>9.1}{:>+9.1}", b - a));
            }
        }
        let days = self.per_day.len();
        let sum = |f: fn(&DayChange) -> usize| self.per_day.values().map(f).sum::<usize>();
        line(format!(
            "daily lists over {days} days: {} household-days gained, {} lost, {} at another priority",
            sum(|d| d.gained),
            sum(|d| d.lost),
            sum(|d| d.moved)
        ));
        if let Some((date, d)) = self.per_day.iter().next_back() {
            line(format!(
                "  last day {date}: {} listed under A, {} under B ({} gained, {} lost, {} moved)",
                d.a, d.b, d.gained, d.lost, d.moved
            ));
        }
        for (m, n) in &self.priority_moves {
            line(format!("  {m:<12}{n} household-days"));
        }
        line(format!(
            "households that differ on some day: {}",
            self.households_differing
        ));
        line(format!(
            "files: {0}/households.csv and .parquet (one row per household), {0}/differences.csv and .parquet (per household and day), {0}/comparison.json, the two replays in {0}/a and {0}/b",
            self.out_dir
        ));
        s
    }
}
