//! Signal files as a source: NDJSON (one JSON signal per line, or
//! `{"ts","key","value"}` lines with an arrival time each) and Parquet with
//! the signals' fields, merged in event-time order (stable for equal
//! times), each message knowing its file and line.

use crate::base::time::ClockTime;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

use super::TimedSource;
use crate::base::message::InputMessage;
use crate::definition::PipelineSpec;

/// Why the input files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A Parquet file could not be decoded.
    #[error("cannot read the Parquet file {path}: {error}. Files written by DuckDB or pandas (snappy, zstd or uncompressed) are read")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What parquet said.
        error: String,
    },
    /// The feed of a file is not known.
    #[error(
        "{path}: no feed is called {feed:?}; name the file after a feed ({known}) or pass --feed"
    )]
    UnknownFeed {
        /// The file.
        path: PathBuf,
        /// The name tried.
        feed: String,
        /// The pipeline's feeds.
        known: String,
    },
    /// Nothing to read.
    #[error("no input files: pass --input with NDJSON or Parquet files (or folders holding them)")]
    NoInput,
}

/// One line to replay: when, which file and line, and its bytes. A
/// replay holds every line until its turn, so a line is kept compact: its
/// key is usually a run of its own bytes.
struct Line {
    at: i64,
    file: u32,
    line: u32,
    key: Key,
    value: Box<[u8]>,
}

/// Where a line's key is.
enum Key {
    None,
    /// A run of the value's bytes: a signal's `household_id` as written.
    InValue {
        start: u32,
        len: u32,
    },
    /// Bytes of its own (an arrival line's key, an escaped id, a Parquet row's).
    Own(Box<[u8]>),
}

impl Key {
    /// The key of `id`, a text `serde` read from `raw`: the run of `raw` it
    /// borrows when it was written without escapes, else a copy.
    fn of(id: std::borrow::Cow<'_, str>, raw: &[u8]) -> Key {
        if let std::borrow::Cow::Borrowed(text) = &id {
            let start = (text.as_ptr() as usize).checked_sub(raw.as_ptr() as usize);
            if let Some(start) = start.filter(|s| s + text.len() <= raw.len()) {
                if let (Ok(start), Ok(len)) = (u32::try_from(start), u32::try_from(text.len())) {
                    return Key::InValue { start, len };
                }
            }
        }
        Key::Own(id.into_owned().into_bytes().into_boxed_slice())
    }

    fn owned(key: Option<Vec<u8>>) -> Key {
        key.map_or(Key::None, |k| Key::Own(k.into_boxed_slice()))
    }
}

impl Line {
    fn key(&self) -> Option<&[u8]> {
        match &self.key {
            Key::None => None,
            Key::InValue { start, len } => value_run(&self.value, *start, *len),
            Key::Own(k) => Some(k),
        }
    }

    /// The key and value, leaving the line empty.
    fn take(&mut self) -> (Option<Vec<u8>>, Vec<u8>) {
        let key = match std::mem::replace(&mut self.key, Key::None) {
            Key::None => None,
            Key::InValue { start, len } => value_run(&self.value, start, len).map(<[u8]>::to_vec),
            Key::Own(k) => Some(k.into_vec()),
        };
        (key, std::mem::take(&mut self.value).into_vec())
    }
}

fn value_run(value: &[u8], start: u32, len: u32) -> Option<&[u8]> {
    let start = start as usize;
    value.get(start..start + len as usize)
}

/// An input file as read.
struct Input {
    path: Arc<str>,
    feed: u16,
    topic: Arc<str>,
}

/// The fields a line is ordered by.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    household_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    observed_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    recorded_at: Option<std::borrow::Cow<'a, str>>,
}

/// A line written with its arrival: `{"ts": ms or RFC 3339, "key", "value"}`
/// (`value_hex` for bytes that are not UTF-8).
#[derive(Deserialize)]
struct Arrival {
    ts: serde_json::Value,
    key: Option<String>,
    #[serde(default)]
    value: serde_json::Value,
    value_hex: Option<String>,
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Signal (and outcome) files merged in time order.
pub(crate) struct FileSource {
    inputs: Vec<Input>,
    lines: Vec<Line>,
    next: usize,
    /// Whether the lines carry arrival times (then the clock follows them).
    pub(crate) with_arrival: bool,
    /// Messages taken, per feed index (see [`FileSource::lines_in`]).
    taken: Vec<usize>,
    feed_names: Vec<String>,
    /// Partitions to spread households over, or 1.
    partitions: i32,
    /// How the producers place a key.
    partitioner: Partitioner,
}

/// How the producers of the input topics place a keyed message, as
/// librdkafka's `partitioner` property names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Partitioner {
    /// murmur2 of the key (the Java client's default; librdkafka's
    /// `murmur2_random`).
    #[default]
    Murmur2Random,
    /// CRC-32 of the key (librdkafka's own default, `consistent_random`).
    ConsistentRandom,
}

impl Partitioner {
    /// The partition of `key` among `partitions`.
    pub(crate) fn partition_of(self, key: &[u8], partitions: i32) -> i32 {
        let n = partitions.max(1) as u32;
        let h = match self {
            Partitioner::Murmur2Random => crate::base::hash::murmur2(key) & 0x7fff_ffff,
            Partitioner::ConsistentRandom => crc32fast::hash(key),
        };
        (h % n) as i32
    }
}

fn time_of(text: &str) -> Option<i64> {
    // the common shape without chrono; any other by it
    crate::base::civil::rfc3339_ms(text).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

/// One file's lines, and whether it has arrival times.
type FileRead = (Vec<Line>, bool);

/// Reads each of `files` (NDJSON or Parquet; file numbers are positions in
/// `files`) on a worker per core, taking the files in turn: a city's
/// exports are a few large files or many daily ones. Returns each file's
/// lines and whether it has arrival times, in `files` order.
fn read_all(files: &[PathBuf]) -> Result<Vec<FileRead>, FileError> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    crate::base::lanes::each_in_turn(files.len(), workers, |file| {
        let path = &files[file];
        if path.extension().and_then(|e| e.to_str()) == Some("parquet") {
            read_parquet(path, file as u32).map(|lines| (lines, false))
        } else {
            read_ndjson(path, file as u32)
        }
    })
    .into_iter()
    .collect()
}

impl FileSource {
    /// Reads `paths` (files, or folders whose `.ndjson`/`.parquet` files are
    /// read). A file's feed is `feed` when given, else its name without the
    /// extension (`health-insurance.ndjson`); `outcomes` files hold
    /// outcomes. Lines are ordered by event time (`observed_at`;
    /// `recorded_at` for outcomes), or by arrival when every file has `ts`.
    pub(crate) fn open(
        spec: &PipelineSpec,
        paths: &[PathBuf],
        feed: Option<&str>,
        outcomes: &[PathBuf],
    ) -> Result<Self, FileError> {
        let mut files: Vec<(PathBuf, Option<u16>)> = Vec::new();
        for p in paths {
            for f in expand(p)? {
                files.push((f, None));
            }
        }
        for p in outcomes {
            for f in expand(p)? {
                files.push((f, Some(spec.outcome_feed())));
            }
        }
        if files.is_empty() {
            return Err(FileError::NoInput);
        }
        let known = || {
            spec.feeds
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let feed_names: Vec<String> = spec
            .feeds
            .iter()
            .map(|f| f.name.clone())
            .chain(["outcomes".to_string()])
            .collect();
        let mut source = FileSource {
            inputs: Vec::new(),
            lines: Vec::new(),
            next: 0,
            with_arrival: false,
            taken: vec![0; feed_names.len()],
            feed_names,
            partitions: 1,
            partitioner: Partitioner::default(),
        };
        let mut arrivals = 0;
        let mut feeds = Vec::with_capacity(files.len());
        for (path, fixed) in &files {
            let feed_index = match *fixed {
                Some(f) => f,
                None => {
                    let name = feed.map(String::from).unwrap_or_else(|| {
                        path.file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or_default()
                            .to_string()
                    });
                    spec.feed_index(&name)
                        .ok_or_else(|| FileError::UnknownFeed {
                            path: path.clone(),
                            feed: name.clone(),
                            known: known(),
                        })? as u16
                }
            };
            feeds.push(feed_index);
        }
        let paths: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
        let read = read_all(&paths)?;
        source
            .lines
            .reserve(read.iter().map(|(l, _)| l.len()).sum());
        for ((path, feed_index), (lines, timed)) in paths.iter().zip(feeds).zip(read) {
            let topic = spec
                .feeds
                .get(usize::from(feed_index))
                .map_or(Arc::from("dong-office.outcomes"), |f| {
                    Arc::from(f.topic.as_str())
                });
            arrivals += usize::from(timed);
            source.lines.extend(lines);
            source.inputs.push(Input {
                path: Arc::from(path.display().to_string()),
                feed: feed_index,
                topic,
            });
        }
        source.with_arrival = arrivals > 0 && arrivals == source.inputs.len();
        // stable: equal times keep their file and line order
        source.lines.sort_by_key(|l| (l.at, l.file, l.line));
        Ok(source)
    }

    /// Spreads households over `partitions` as `partitioner` places their
    /// keys, as the producers of `sagak run`'s topics do.
    pub(crate) fn partitioned(mut self, partitions: i32, partitioner: Partitioner) -> Self {
        self.partitions = partitions.max(1);
        self.partitioner = partitioner;
        self
    }

    /// Messages taken so far, per feed name (`outcomes` for outcome
    /// files); feeds with none are left out.
    pub(crate) fn lines_in(&self) -> BTreeMap<String, usize> {
        self.feed_names
            .iter()
            .zip(&self.taken)
            .filter(|(_, &n)| n > 0)
            .map(|(name, &n)| (name.clone(), n))
            .collect()
    }

    /// Lines to replay in all.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}

impl TimedSource for FileSource {
    fn next_arrival(&self) -> Option<ClockTime> {
        self.lines.get(self.next).map(|l| ClockTime::from_ms(l.at))
    }

    fn next_before(&mut self, until: ClockTime) -> Option<InputMessage> {
        let l = self.lines.get_mut(self.next)?;
        if l.at >= until.ms() {
            return None;
        }
        self.next += 1;
        let input = &self.inputs[l.file as usize];
        if let Some(n) = self.taken.get_mut(usize::from(input.feed)) {
            *n += 1;
        }
        let partition = match l.key() {
            Some(k) if self.partitions > 1 => self.partitioner.partition_of(k, self.partitions),
            _ => 0,
        };
        let (key, value) = l.take();
        Some(InputMessage {
            feed: Some(input.feed),
            topic: Arc::clone(&input.topic),
            partition,
            offset: i64::from(l.line),
            key,
            payload: Some(value),
            timestamp_ms: Some(l.at),
            source_file: Some(Arc::clone(&input.path)),
        })
    }
}

/// The files of `path`: itself, or the `.ndjson`, `.jsonl` and `.parquet`
/// files of a folder, in name order.
fn expand(path: &Path) -> Result<Vec<PathBuf>, FileError> {
    let io = |error| FileError::Io {
        path: path.to_path_buf(),
        error,
    };
    if !path.is_dir() {
        fs::metadata(path).map_err(io)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // the generator's planted bad input is not a feed
        if matches!(ext, "ndjson" | "jsonl" | "parquet") && name != "bad-input.ndjson" {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The lines of an NDJSON file, each with its time (a line whose time
/// cannot be read takes the previous line's: the decoder says what is
/// wrong with it), and whether the lines carry arrival times.
fn read_ndjson(path: &Path, file: u32) -> Result<(Vec<Line>, bool), FileError> {
    let bytes = fs::read(path).map_err(|error| FileError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    // a file saved by a Windows tool may open with a byte-order mark
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut out = Vec::new();
    let mut last = i64::MIN;
    let mut timed = None;
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // a file is of one kind: its first line says which
        let arrival = *timed.get_or_insert_with(|| serde_json::from_slice::<Arrival>(raw).is_ok());
        let (at, key, value) = if arrival {
            match serde_json::from_slice::<Arrival>(raw) {
                Ok(a) => {
                    let at = match &a.ts {
                        serde_json::Value::Number(n) => n.as_i64(),
                        serde_json::Value::String(s) => time_of(s),
                        _ => None,
                    };
                    let value = match (a.value, a.value_hex) {
                        (_, Some(hex)) => unhex(&hex),
                        (serde_json::Value::String(s), None) => s.into_bytes(),
                        (other, None) => other.to_string().into_bytes(),
                    };
                    (at, Key::owned(a.key.map(String::into_bytes)), value)
                }
                Err(_) => (None, Key::None, raw.to_vec()),
            }
        } else {
            let head = serde_json::from_slice::<Head<'_>>(raw).ok();
            let at = head.as_ref().and_then(|h| {
                h.observed_at
                    .as_deref()
                    .or(h.recorded_at.as_deref())
                    .and_then(time_of)
            });
            let key = head
                .and_then(|h| h.household_id)
                .map_or(Key::None, |id| Key::of(id, raw));
            (at, key, raw.to_vec())
        };
        let at = at.unwrap_or(last);
        last = at;
        out.push(Line {
            at,
            file,
            line: n as u32 + 1,
            key,
            value: value.into_boxed_slice(),
        });
    }
    Ok((out, timed.unwrap_or(false)))
}

/// The rows of a Parquet file as JSON lines, ordered by `observed_at`.
fn read_parquet(path: &Path, file: u32) -> Result<Vec<Line>, FileError> {
    let bad = |error: String| FileError::Parquet {
        path: path.to_path_buf(),
        error,
    };
    let f = fs::File::open(path).map_err(|error| FileError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    let mut row_no = 0u32;
    let mut last = i64::MIN;
    for batch in reader {
        let batch = plain_columns(&batch.map_err(|e| bad(e.to_string()))?);
        for row in 0..batch.num_rows() {
            row_no += 1;
            let (value, household, at) = row_json(&batch, row);
            let at = at.unwrap_or(last);
            last = at;
            out.push(Line {
                at,
                file,
                line: row_no,
                key: Key::owned(household.map(String::into_bytes)),
                value: value.into_bytes().into_boxed_slice(),
            });
        }
    }
    Ok(out)
}

/// `batch` with each column in a type [`cell`] reads: dictionary-encoded
/// text (pandas' categoricals) as text, decimals without a fraction and
/// small unsigned integers as integers, other decimals and half floats as
/// floats, `Date64` as dates, binary as UTF-8 text. A column that cannot be
/// cast stays as it is: its cells read as null, and the decoder names the
/// field.
fn plain_columns(batch: &RecordBatch) -> RecordBatch {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(plain).collect();
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap_or_else(|_| batch.clone())
}

fn plain(column: &ArrayRef) -> ArrayRef {
    let to = match column.data_type() {
        DataType::Dictionary(_, value) => (**value).clone(),
        DataType::Decimal32(_, 0)
        | DataType::Decimal64(_, 0)
        | DataType::Decimal128(_, 0)
        | DataType::Decimal256(_, 0)
        | DataType::UInt8
        | DataType::UInt16 => DataType::Int64,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Float16 => DataType::Float64,
        DataType::Date64 => DataType::Date32,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DataType::Utf8,
        _ => return Arc::clone(column),
    };
    match arrow::compute::cast(column, &to) {
        // a dictionary's values may themselves need a cast
        Ok(cast) if cast.data_type() != column.data_type() => plain(&cast),
        _ => Arc::clone(column),
    }
}

/// One row as the JSON object a producer would send, with its household
/// id and event time.
fn row_json(batch: &RecordBatch, row: usize) -> (String, Option<String>, Option<i64>) {
    let mut map = serde_json::Map::new();
    let mut at = None;
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if column.is_null(row) {
            continue;
        }
        let value = cell(column.as_ref(), row);
        if field.name() == "observed_at" || field.name() == "recorded_at" {
            at = match &value {
                serde_json::Value::String(s) => time_of(s),
                _ => None,
            };
        }
        map.insert(field.name().clone(), value);
    }
    let household = map
        .get("household_id")
        .and_then(|v| v.as_str())
        .map(String::from);
    (serde_json::Value::Object(map).to_string(), household, at)
}

/// One cell as JSON: text, numbers and booleans as they are; timestamps as
/// RFC 3339; dates as `YYYY-MM-DD`.
fn cell(column: &dyn Array, row: usize) -> serde_json::Value {
    use serde_json::Value;
    match column.data_type() {
        DataType::Utf8 => Value::from(column.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(column.as_string::<i64>().value(row)),
        DataType::Utf8View => Value::from(column.as_string_view().value(row)),
        DataType::Boolean => Value::from(column.as_boolean().value(row)),
        DataType::Int8 => Value::from(
            column
                .as_primitive::<arrow::datatypes::Int8Type>()
                .value(row),
        ),
        DataType::Int16 => Value::from(
            column
                .as_primitive::<arrow::datatypes::Int16Type>()
                .value(row),
        ),
        DataType::Int32 => Value::from(
            column
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(row),
        ),
        DataType::Int64 => Value::from(
            column
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(row),
        ),
        DataType::UInt32 => Value::from(
            column
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .value(row),
        ),
        DataType::UInt64 => Value::from(
            column
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(row),
        ),
        DataType::Float64 => Value::from(
            column
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(row),
        ),
        DataType::Float32 => Value::from(
            column
                .as_primitive::<arrow::datatypes::Float32Type>()
                .value(row),
        ),
        DataType::Date32 => {
            let days = column
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(row);
            let date = crate::base::civil::date_bytes(i64::from(days))
                .map(|d| String::from_utf8_lossy(&d).into_owned());
            date.map_or(Value::Null, Value::from)
        }
        DataType::Timestamp(unit, _) => {
            let raw = match unit {
                TimeUnit::Second => column
                    .as_primitive::<arrow::datatypes::TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1000),
                TimeUnit::Millisecond => column
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .value(row),
                TimeUnit::Microsecond => {
                    column
                        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                        .value(row)
                        / 1000
                }
                TimeUnit::Nanosecond => {
                    column
                        .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                        .value(row)
                        / 1_000_000
                }
            };
            Value::from(crate::stages::alert::rfc3339(raw))
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Date32Array, Date64Array, Decimal128Array, DictionaryArray, Int64Array, StringArray,
        TimestampMicrosecondArray, UInt16Array,
    };
    use arrow::datatypes::Int32Type;

    fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let file = fs::File::create(path).expect("create");
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    fn lines(lines: &[Line]) -> Vec<(i64, Option<String>, serde_json::Value)> {
        lines
            .iter()
            .map(|l| {
                (
                    l.at,
                    l.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    serde_json::from_slice(&l.value).expect("json"),
                )
            })
            .collect()
    }

    /// pandas writes categoricals as dictionaries and DuckDB may write
    /// amounts as decimals: such a file replays as the same signals as one
    /// with plain text and integer columns.
    #[test]
    fn a_parquet_file_of_dictionaries_decimals_and_small_integers_reads_as_plain_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ["hh-1", "hh-2", "hh-1"];
        let at_us = [
            1_767_222_000_000_000_i64,
            1_767_225_600_000_000,
            1_767_229_200_000_000,
        ];
        let days = [20_454_i32, 20_455, 20_456];
        let plain_path = dir.path().join("plain.parquet");
        write_parquet(
            &plain_path,
            vec![
                (
                    "household_id",
                    Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
                ),
                (
                    "amount_krw",
                    Arc::new(Int64Array::from(vec![120_000, 0, 5])),
                ),
                ("months_overdue", Arc::new(Int64Array::from(vec![3, 4, 5]))),
                ("occurred_on", Arc::new(Date32Array::from(days.to_vec()))),
                (
                    "observed_at",
                    Arc::new(TimestampMicrosecondArray::from(at_us.to_vec()).with_timezone("UTC")),
                ),
            ],
        );
        let typed_path = dir.path().join("typed.parquet");
        let dictionary: DictionaryArray<Int32Type> = ids.iter().copied().collect();
        write_parquet(
            &typed_path,
            vec![
                ("household_id", Arc::new(dictionary) as ArrayRef),
                (
                    "amount_krw",
                    Arc::new(
                        Decimal128Array::from(vec![120_000_i128, 0, 5])
                            .with_precision_and_scale(18, 0)
                            .expect("decimal"),
                    ),
                ),
                (
                    "months_overdue",
                    Arc::new(UInt16Array::from(vec![3_u16, 4, 5])),
                ),
                (
                    "occurred_on",
                    Arc::new(Date64Array::from(
                        days.iter()
                            .map(|d| i64::from(*d) * 86_400_000)
                            .collect::<Vec<_>>(),
                    )),
                ),
                (
                    "observed_at",
                    Arc::new(TimestampMicrosecondArray::from(at_us.to_vec()).with_timezone("UTC")),
                ),
            ],
        );
        let plain = read_parquet(&plain_path, 0).expect("plain file");
        let typed = read_parquet(&typed_path, 0).expect("typed file");
        assert_eq!(lines(&typed), lines(&plain));
        let first = &lines(&plain)[0];
        assert_eq!(first.0, 1_767_222_000_000);
        assert_eq!(first.1.as_deref(), Some("hh-1"));
        assert_eq!(first.2["amount_krw"], 120_000);
        assert_eq!(first.2["occurred_on"], "2026-01-01");
    }

    /// A file saved with a byte-order mark and Windows line ends: its first
    /// line is a signal like the others, not a dead letter.
    #[test]
    fn an_ndjson_file_with_a_byte_order_mark_and_crlf_reads_every_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("job-loss.ndjson");
        let line =
            |id: &str, at: &str| format!(r#"{{"household_id":"{id}","observed_at":"{at}"}}"#);
        let text = format!(
            "\u{feff}{}\r\n{}\r\n{}\r\n",
            line("hh-1", "2026-01-01T09:00:00+09:00"),
            line("hh-2", "2026-01-01T10:00:00+09:00"),
            // an id written with an escape is keyed by what it says
            line("hh-\\u0033", "2026-01-01T11:00:00+09:00")
        );
        fs::write(&path, text).expect("write");
        let (read, timed) = read_ndjson(&path, 0).expect("read");
        assert!(!timed);
        let read = lines(&read);
        assert_eq!(read.len(), 3);
        assert_eq!(read[2].1.as_deref(), Some("hh-3"));
        assert_eq!(read[0].1.as_deref(), Some("hh-1"));
        assert_eq!(read[0].0, 1_767_225_600_000);
        assert_eq!(read[1].0, 1_767_229_200_000);
    }
}
