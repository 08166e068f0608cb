//! The pipeline definition an operator edits: `pipelines/<name>/pipeline.toml`
//! and the SQL file it names.
//!
//! A [`PipelineSpec`] says which feeds exist, how each feed's fields are
//! validated and which column of the signal table they fill, the window,
//! lateness and cooldown, and the scoring SQL with its parameters filled in.
//! The engine reads only this; nothing in it is specific to one feed.
//!
//! ```no_run
//! let spec = sagak::definition::PipelineSpec::load("pipelines/default".as_ref()).unwrap();
//! assert_eq!(spec.feeds.len(), 3);
//! ```

mod categories;
pub(crate) use categories::CategoryNames;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Milliseconds in one day, for the day-based settings of a pipeline.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// True for a category name the published alert schema accepts:
/// `^[a-z][a-z0-9_]{0,31}$`.
pub(crate) fn is_category_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Most fields (common + feed) a feed may declare: the decoder keeps one
/// slot per field on the stack for every message.
pub(crate) const MAX_FIELDS: usize = 24;

/// Why a pipeline definition could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {error}. Check `pipeline.dir` in sagak.toml points at a folder holding pipeline.toml")]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The TOML does not parse or has wrong or unknown keys.
    #[error("{path} is not a valid pipeline: {message}")]
    Parse {
        /// The file that failed.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A key parses but its value cannot work.
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        /// The file that failed.
        path: PathBuf,
        /// Dotted key of the bad value.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// Column of the signal table a feed field can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Column {
    /// What a later signal supersedes (one utility, one person's job...).
    Subject,
    /// A kind within the feed (job_loss, business_closure...).
    Kind,
    /// Months a bill or premium is overdue.
    MonthsOverdue,
    /// Amount overdue in KRW.
    AmountKrw,
    /// Supply cut off or limited.
    Disconnected,
    /// A calendar date the agency reports (not the event time).
    OccurredOn,
}

/// Type and constraints of one feed field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FieldType {
    /// Free text, 1-256 characters.
    String,
    /// A pseudonymous id: 1-64 characters of `[A-Za-z0-9_-]`, never a
    /// resident registration number.
    Id,
    /// One of `values`.
    Enum,
    /// A JSON integer within `min`..=`max`.
    Int,
    /// A JSON boolean.
    Bool,
    /// A `YYYY-MM-DD` date.
    Date,
}

/// One field of a feed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpec {
    /// How the value is validated.
    #[serde(rename = "type")]
    pub(crate) ty: FieldType,
    /// Allowed values of an enum field.
    #[serde(default)]
    pub(crate) values: Vec<String>,
    /// Smallest allowed integer.
    pub(crate) min: Option<i64>,
    /// Largest allowed integer.
    pub(crate) max: Option<i64>,
    /// Column of the signal table the value fills; none = validated only.
    pub(crate) column: Option<Column>,
    /// A message without the field is rejected (default true).
    #[serde(default = "yes")]
    pub(crate) required: bool,
}

fn yes() -> bool {
    true
}

/// A duration written as text for people (`"35d"`, `"36h"`, `"90m"`).
mod gap {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|d| humantime::format_duration(d).to_string())
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration ({e}); write it like \"35d\" or \"36h\""
                ))
            }),
        }
    }
}

/// A required duration written as text for people (`"3d"`, `"5s"`).
mod span {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime::format_duration(*v).to_string().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write it like \"3d\" or \"36h\""
            ))
        })
    }
}

/// How the outcomes the dong offices record change what sagak sends next
/// (`[outcomes]` in `pipeline.toml`; see `pipelines/README.md`). Every
/// span is a duration such as `"3d"` or `"5s"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct OutcomeSpec {
    /// Code of the city team: its outcomes are accepted for any household,
    /// and only it may withdraw a `deceased`.
    pub(crate) city_code: String,
    /// Time for a first reach (someone of the household reached) after a P1 alert (driver's clock).
    #[serde(with = "span")]
    pub(crate) due_p1: std::time::Duration,
    /// Time for a first reach (someone of the household reached) after a P2 alert.
    #[serde(with = "span")]
    pub(crate) due_p2: std::time::Duration,
    /// Time for a first reach (someone of the household reached) after a P3 alert.
    #[serde(with = "span")]
    pub(crate) due_p3: std::time::Duration,
    /// After a failed attempt at a P1 household, the next is due this
    /// much later.
    #[serde(with = "span")]
    pub(crate) retry_p1: std::time::Duration,
    /// The same for P2.
    #[serde(with = "span")]
    pub(crate) retry_p2: std::time::Duration,
    /// The same for P3.
    #[serde(with = "span")]
    pub(crate) retry_p3: std::time::Duration,
    /// The order of the queue's tiers (`urgent`, `overdue`, `due_today`,
    /// `attempt_due`, `new`, `attempting`); tiers left out come after, in
    /// that order.
    pub(crate) queue_order: Vec<String>,
    /// How long `declined`, `not_applicable`/`no_need` and
    /// `support_linked` hold back the same or a lower priority (event time).
    #[serde(with = "span")]
    pub(crate) hold: std::time::Duration,
    /// Failed contact attempts that make a household unreachable.
    pub(crate) unreachable_attempts: u32,
    /// A span of failed attempts that makes it unreachable too.
    #[serde(with = "span")]
    pub(crate) unreachable_after: std::time::Duration,
    /// Alerts without engagement within `repeat_within` that escalate as
    /// repeatedly flagged.
    pub(crate) repeat_alerts: u32,
    /// See `repeat_alerts`.
    #[serde(with = "span")]
    pub(crate) repeat_within: std::time::Duration,
    /// How long a household's case history (and a deceased household's
    /// tombstone) is kept after its last alert or outcome.
    #[serde(with = "span")]
    pub(crate) retention: std::time::Duration,
    /// How long after its due time an alert's outcomes count for the yield
    /// of the rules; then its result is final.
    #[serde(with = "span")]
    pub(crate) answer_window: std::time::Duration,
    /// A case's review is due this long after its plan or its last review
    /// when the review set no `next_review` (the case meeting's agenda).
    #[serde(with = "span")]
    pub(crate) review_every: std::time::Duration,
    /// A case whose last review found no goal unmet is ready to close once
    /// no signal of its household has qualified for this long.
    #[serde(with = "span")]
    pub(crate) close_quiet: std::time::Duration,
    /// Korean labels of outcome kinds and their values (`counselled =
    /// "상담 완료"`), shown on lists and in alerts.
    pub(crate) labels_ko: BTreeMap<String, String>,
}

impl Default for OutcomeSpec {
    fn default() -> Self {
        let days = |d: u64| std::time::Duration::from_secs(d * 86_400);
        OutcomeSpec {
            city_code: "4125000000".into(),
            due_p1: days(3),
            due_p2: days(7),
            due_p3: days(14),
            retry_p1: days(1),
            retry_p2: days(2),
            retry_p3: days(3),
            queue_order: Vec::new(),
            hold: days(90),
            unreachable_attempts: 3,
            unreachable_after: days(14),
            repeat_alerts: 3,
            repeat_within: days(365),
            retention: days(365),
            answer_window: days(30),
            review_every: days(30),
            close_quiet: days(90),
            labels_ko: BTreeMap::new(),
        }
    }
}

/// The names of the work queue's tiers, in their default order (see
/// `stages::case::work::Tier`).
pub(crate) const QUEUE_TIERS: [&str; 6] = [
    "urgent",
    "overdue",
    "due_today",
    "attempt_due",
    "new",
    "attempting",
];

/// One agency feed: a topic, its fields and how its reasons read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSpec {
    /// Short name, used in metrics, reasons and the `feed` column.
    pub name: String,
    /// Default input topic (sagak.toml `topics.inputs.<name>` overrides it).
    pub(crate) topic: String,
    /// Crisis category this feed's signals count towards.
    pub category: String,
    /// The feed's name in Korean, as the city's page shows it.
    #[serde(default)]
    pub(crate) name_ko: Option<String>,
    /// The category in Korean, as pages and list files show it (the
    /// first feed of a category that gives one).
    #[serde(default)]
    pub(crate) category_ko: Option<String>,
    /// Constant subject for feeds without a subject field.
    pub(crate) subject: Option<String>,
    /// English reason template.
    pub(crate) reason: String,
    /// Korean reason template.
    pub(crate) reason_ko: String,
    /// Korean words for subject and kind values in `reason_ko`
    /// (e.g. electricity = "전기"); values without one are shown as sent.
    #[serde(default)]
    pub(crate) labels_ko: BTreeMap<String, String>,
    /// The feed's own fields, by JSON name.
    #[serde(default)]
    pub(crate) fields: BTreeMap<String, FieldSpec>,
    /// The longest quiet spell that is normal for this feed (`"35d"` for
    /// an agency that sends monthly batches, `"2d"` for a daily one):
    /// exported as `sagak_feed_expected_gap_seconds`, so an alert fires
    /// when the feed has been silent for longer. `None`: no such alert.
    #[serde(default, with = "gap")]
    pub(crate) expected_gap: Option<std::time::Duration>,
}

/// Window settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowSpec {
    /// Length of a household's window in days.
    pub(crate) length_days: u32,
    /// Watermark lag behind the newest event time of a feed, in days.
    pub(crate) allowed_lateness_days: u32,
    /// How far ahead of the wall clock an event time may be, in hours.
    pub(crate) max_future_hours: u32,
    /// Bound on live signals kept per household.
    pub(crate) max_signals_per_household: usize,
}

impl WindowSpec {
    /// Window length in milliseconds.
    pub(crate) fn length_ms(&self) -> i64 {
        i64::from(self.length_days) * DAY_MS
    }
    /// Allowed lateness in milliseconds.
    pub(crate) fn lateness_ms(&self) -> i64 {
        i64::from(self.allowed_lateness_days) * DAY_MS
    }
}

/// Alert emission settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertSpec {
    /// No repeat at the same or a lower priority within this many days.
    pub(crate) cooldown_days: u32,
}

/// Daily list settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// Hour of the daily cut-off, local time.
    pub(crate) cutoff_hour: u32,
    /// UTC offset of local time in hours (Asia/Seoul: 9).
    pub utc_offset_hours: i32,
}

impl Default for ListSpec {
    fn default() -> Self {
        ListSpec {
            cutoff_hour: 6,
            utc_offset_hours: 9,
        }
    }
}

/// A dong this deployment serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Dong {
    /// 10-digit administrative code.
    pub dong_code: String,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineFile {
    name: String,
    version: String,
    score_sql: String,
    dongs: Option<String>,
    lists_sql: Option<String>,
    #[serde(default)]
    lists: ListSpec,
    window: WindowSpec,
    alerts: AlertSpec,
    #[serde(default)]
    outcomes: OutcomeSpec,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    feeds: Vec<FeedSpec>,
}

/// A loaded and checked pipeline definition.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Pipeline name, sent in every alert.
    pub name: String,
    /// Pipeline version, sent in every alert.
    pub version: String,
    /// Window settings.
    pub(crate) window: WindowSpec,
    /// Alert settings.
    pub(crate) alerts: AlertSpec,
    /// How outcomes from the offices change what is sent.
    pub(crate) outcomes: OutcomeSpec,
    /// The feeds; a feed's index here is its id in the engine.
    pub feeds: Vec<FeedSpec>,
    /// The scoring SQL with every `${param}` filled in.
    pub score_sql: String,
    /// The list-ranking SQL with every `${param}` filled in, if the
    /// pipeline makes daily lists.
    pub(crate) lists_sql: Option<String>,
    /// Daily list settings.
    pub lists: ListSpec,
    /// Dongs served by this deployment.
    pub dongs: Vec<Dong>,
    params: BTreeMap<String, toml::Value>,
    /// The scoring SQL as written, with its `${param}`s.
    score_template: String,
}

impl PipelineSpec {
    /// The `[params]` whose names end in `_weight`: the score's terms (a
    /// pipeline's score is a sum of weighted terms).
    pub(crate) fn weights(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|(k, v)| k.ends_with("_weight") && (v.is_integer() || v.is_float()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// This pipeline with `[params]` key `name` set to zero: what its score
    /// is without that term.
    pub(crate) fn without(&self, name: &str) -> Option<PipelineSpec> {
        let mut params = self.params.clone();
        params.insert(name.to_string(), toml::Value::Integer(0));
        let mut spec = self.clone();
        spec.score_sql = fill_params(&self.score_template, &params).ok()?;
        Some(spec)
    }

    /// The integer value of `[params]` key `name`, if it has one.
    pub(crate) fn param_i64(&self, name: &str) -> Option<i64> {
        self.params.get(name).and_then(toml::Value::as_integer)
    }

    /// Reads `pipeline.toml` and its SQL from `dir` and checks them.
    pub fn load(dir: &Path) -> Result<Self, PipelineError> {
        let path = dir.join("pipeline.toml");
        let text = read(&path)?;
        let file: PipelineFile = toml::from_str(&text).map_err(|e| PipelineError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let sql_path = dir.join(&file.score_sql);
        let sql = read(&sql_path)?;
        let lists_sql = file
            .lists_sql
            .as_ref()
            .map(|f| read(&dir.join(f)))
            .transpose()?;
        // Relative names in the file are relative to its folder.
        let dongs = match &file.dongs {
            Some(f) => read_dongs(&dir.join(f))?,
            None => Vec::new(),
        };
        let mut spec = Self::from_parts(file, &sql, &path)?;
        spec.dongs = dongs;
        if let Some(text) = lists_sql {
            spec.lists_sql = Some(fill_params(&text, &spec.params).map_err(|name| PipelineError::Invalid {
                path: path.clone(),
                key: format!("params.{name}"),
                problem: format!("is used as ${{{name}}} in the lists SQL but not set: add it under [params]"),
            })?);
        }
        Ok(spec)
    }

    fn from_parts(file: PipelineFile, sql: &str, path: &Path) -> Result<Self, PipelineError> {
        let invalid = |key: String, problem: String| PipelineError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        if file.window.length_days == 0 {
            return Err(invalid(
                "window.length_days".into(),
                "must be at least 1 (days)".into(),
            ));
        }
        if file.window.max_signals_per_household == 0 {
            return Err(invalid(
                "window.max_signals_per_household".into(),
                "must be at least 1".into(),
            ));
        }
        if file.feeds.is_empty() {
            return Err(invalid(
                "feeds".into(),
                "is empty: add at least one [[feeds]] table".into(),
            ));
        }
        for (i, feed) in file.feeds.iter().enumerate() {
            check_feed(i, feed, &file.feeds).map_err(|(k, p)| invalid(k, p))?;
        }
        let mut params = file.params.clone();
        params.insert(
            "window_days".into(),
            toml::Value::Integer(i64::from(file.window.length_days)),
        );
        // As a duration: a timestamp minus an INTERVAL goes through calendar
        // arithmetic per row, a timestamp minus a duration is one subtraction.
        params.insert(
            "window_ms".into(),
            toml::Value::Integer(i64::from(file.window.length_days) * DAY_MS),
        );
        let score_sql = fill_params(sql, &params).map_err(|name| {
            invalid(
                format!("params.{name}"),
                format!(
                    "is used as ${{{name}}} in {} but not set: add it under [params]",
                    file.score_sql
                ),
            )
        })?;
        if !crate::base::ids::is_dong_code(&file.outcomes.city_code) {
            return Err(invalid(
                "outcomes.city_code".into(),
                "must be the 10-digit code of the city team (e.g. 4125000000)".into(),
            ));
        }
        if file.outcomes.unreachable_attempts == 0 || file.outcomes.repeat_alerts == 0 {
            return Err(invalid(
                "outcomes".into(),
                "unreachable_attempts and repeat_alerts must be at least 1".into(),
            ));
        }
        let mut seen = Vec::new();
        for name in &file.outcomes.queue_order {
            if !QUEUE_TIERS.contains(&name.as_str()) || seen.contains(&name) {
                return Err(invalid(
                    "outcomes.queue_order".into(),
                    format!(
                        "{name:?} is unknown or named twice; name each of urgent, overdue, due_today, attempt_due, new, attempting at most once"
                    ),
                ));
            }
            seen.push(name);
        }
        if file.lists.cutoff_hour > 23 || file.lists.utc_offset_hours.abs() > 14 {
            return Err(invalid(
                "lists".into(),
                "cutoff_hour must be 0-23 and utc_offset_hours -14..14".into(),
            ));
        }
        Ok(PipelineSpec {
            name: file.name,
            version: file.version,
            window: file.window,
            alerts: file.alerts,
            outcomes: file.outcomes,
            feeds: file.feeds,
            score_sql,
            lists_sql: None,
            lists: file.lists,
            dongs: Vec::new(),
            params,
            score_template: sql.to_string(),
        })
    }

    /// The default pipeline as shipped in `pipelines/default`, compiled into
    /// the binary, for running from a folder that does not hold it.
    pub fn embedded_default() -> Result<Self, PipelineError> {
        let path = PathBuf::from("(built-in) pipelines/default/pipeline.toml");
        let text = include_str!("../../pipelines/default/pipeline.toml");
        let file: PipelineFile = toml::from_str(text).map_err(|e| PipelineError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut spec = Self::from_parts(
            file,
            include_str!("../../pipelines/default/score.sql"),
            &path,
        )?;
        spec.dongs = parse_dongs(include_str!("../../pipelines/default/dongs.csv"), &path)?;
        spec.lists_sql = Some(
            fill_params(
                include_str!("../../pipelines/default/lists.sql"),
                &spec.params,
            )
            .map_err(|name| PipelineError::Invalid {
                path: path.clone(),
                key: format!("params.{name}"),
                problem: "is not set".into(),
            })?,
        );
        Ok(spec)
    }

    /// The feed index the drivers give messages of the outcomes topic: one
    /// past the last feed.
    pub fn outcome_feed(&self) -> u16 {
        self.feeds.len() as u16
    }

    /// The offices' clock (`lists.utc_offset_hours`): every local day and
    /// local time of the pipeline, its pages and its retention.
    pub(crate) fn local_clock(&self) -> crate::base::civil::LocalClock {
        crate::base::civil::LocalClock::from_hours(self.lists.utc_offset_hours)
    }

    /// The Korean name of category `c` (the category itself without one).
    pub(crate) fn category_ko<'a>(&'a self, c: &'a str) -> &'a str {
        self.feeds
            .iter()
            .filter(|f| f.category == c)
            .find_map(|f| f.category_ko.as_deref())
            .unwrap_or(c)
    }

    /// The categories in the pipeline's order with their Korean names.
    pub(crate) fn category_names(&self) -> CategoryNames {
        CategoryNames(
            self.categories()
                .into_iter()
                .map(|c| {
                    let ko = self.category_ko(&c).to_string();
                    (c, ko)
                })
                .collect(),
        )
    }

    /// Distinct categories of the feeds, in feed order (an alert's
    /// categories as a bit set index this).
    pub(crate) fn categories(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.feeds {
            if !out.contains(&f.category) {
                out.push(f.category.clone());
            }
        }
        out
    }

    /// Index of the feed called `name`.
    pub fn feed_index(&self, name: &str) -> Option<usize> {
        self.feeds.iter().position(|f| f.name == name)
    }
}

/// Reads the served-dong table: a CSV with header `dong_code,name_ko,name_en`.
fn read_dongs(path: &Path) -> Result<Vec<Dong>, PipelineError> {
    parse_dongs(&read(path)?, path)
}

fn parse_dongs(text: &str, path: &Path) -> Result<Vec<Dong>, PipelineError> {
    let invalid = |line: usize, problem: String| PipelineError::Invalid {
        path: path.to_path_buf(),
        key: format!("line {line}"),
        problem,
    };
    let mut dongs = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [code, ko, en] = cols[..] else {
            return Err(invalid(i + 1, "must be dong_code,name_ko,name_en".into()));
        };
        if !crate::base::ids::is_dong_code(code) {
            return Err(invalid(
                i + 1,
                format!("dong code {code:?} is not 10 digits"),
            ));
        }
        dongs.push(Dong {
            dong_code: code.into(),
            name_ko: ko.into(),
            name_en: en.into(),
        });
    }
    Ok(dongs)
}

fn read(path: &Path) -> Result<String, PipelineError> {
    std::fs::read_to_string(path).map_err(|error| PipelineError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The common fields every signal carries; a feed may not redefine them.
pub(crate) const COMMON_FIELDS: [&str; 5] = [
    "event_id",
    "household_id",
    "dong_code",
    "observed_at",
    "source",
];

fn check_feed(i: usize, feed: &FeedSpec, all: &[FeedSpec]) -> Result<(), (String, String)> {
    let at = |k: &str| format!("feeds[{i}] ({}).{k}", feed.name);
    if feed.name.is_empty()
        || !feed
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err((
            at("name"),
            "must be non-empty ASCII letters, digits, '-' or '_'".into(),
        ));
    }
    if all[..i].iter().any(|f| f.name == feed.name) {
        return Err((
            at("name"),
            "is used by an earlier feed: feed names must be unique".into(),
        ));
    }
    if all[..i].iter().any(|f| f.topic == feed.topic) {
        return Err((
            at("topic"),
            "is used by an earlier feed: one topic per feed".into(),
        ));
    }
    if !is_category_name(&feed.category) {
        return Err((
            at("category"),
            format!(
                "is {:?}: a category is 1-32 characters of a-z, 0-9 and _, starting with a letter (the published alert schema accepts exactly those)",
                feed.category
            ),
        ));
    }
    if feed.fields.len() + COMMON_FIELDS.len() > MAX_FIELDS {
        return Err((
            at("fields"),
            format!("has more than {} fields", MAX_FIELDS - COMMON_FIELDS.len()),
        ));
    }
    let mut filled: Vec<Column> = Vec::new();
    for (name, field) in &feed.fields {
        let key = at(&format!("fields.{name}"));
        if COMMON_FIELDS.contains(&name.as_str()) {
            return Err((
                key,
                "is a common field of every signal; remove it from the feed".into(),
            ));
        }
        if field.ty == FieldType::Enum && field.values.is_empty() {
            return Err((key, "is an enum without `values`".into()));
        }
        if let (Some(min), Some(max)) = (field.min, field.max) {
            if min > max {
                return Err((key, format!("has min {min} above max {max}")));
            }
        }
        if let Some(col) = field.column {
            let fits = match col {
                Column::Subject | Column::Kind => matches!(
                    field.ty,
                    FieldType::String | FieldType::Id | FieldType::Enum
                ),
                Column::MonthsOverdue | Column::AmountKrw => field.ty == FieldType::Int,
                Column::Disconnected => field.ty == FieldType::Bool,
                Column::OccurredOn => field.ty == FieldType::Date,
            };
            if !fits {
                return Err((
                    key,
                    format!("of type {:?} cannot fill column {col:?}", field.ty),
                ));
            }
            if filled.contains(&col) {
                return Err((
                    key,
                    format!("fills column {col:?}, which another field of the feed fills already"),
                ));
            }
            filled.push(col);
        }
    }
    let has_subject_field = filled.contains(&Column::Subject);
    if has_subject_field == feed.subject.is_some() {
        return Err((at("subject"), "set either a constant `subject` or one field with column = \"subject\", not both or neither".into()));
    }
    Ok(())
}

/// Replaces every `${name}` in `sql`; returns the first unknown name as error.
fn fill_params(sql: &str, params: &BTreeMap<String, toml::Value>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(after.chars().take(20).collect());
        };
        let name = &after[..end];
        let value = params.get(name).ok_or_else(|| name.to_string())?;
        match value {
            toml::Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
