//! Daily candidate lists: one ranked list per dong, every morning.
//!
//! At each cut-off (default 06:00 Asia/Seoul) every household currently at
//! P1-P3 is put on the list of the dong that serves it, ranked by priority
//! then score, with the reasons in Korean and English. A household whose dong
//! code is valid but not served by this deployment goes to the `unassigned`
//! list for the city team: never dropped.
//!
//! Selection and ranking run in DataFusion (`lists.sql` in the pipeline)
//! over the window state. Each day is written as CSV (UTF-8 with BOM, so
//! Korean Excel opens it correctly) and Parquet, plus a `manifest.json` with
//! counts and SHA-256 checksums:
//!
//! ```text
//! lists/2026-11-22/4125052000.csv
//! lists/2026-11-22/4125052000.parquet
//! lists/2026-11-22/unassigned.csv
//! lists/2026-11-22/manifest.json
//! ```

mod parts;
pub(crate) mod write;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::base::time::{ClockTime, EventTime};
use crate::definition::{Dong, PipelineSpec};
use crate::stages::alert::AlertMark;
use crate::stages::score::Assessment;
use crate::store::Store;

pub(crate) use write::csv_field;
pub(crate) use write::Manifest;

/// Why lists could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The pipeline defines no `lists_sql`.
    #[error(
        "pipeline `{0}` has no lists_sql: add `lists_sql = \"lists.sql\"` to its pipeline.toml"
    )]
    NotConfigured(String),
    /// DataFusion failed on the lists SQL.
    #[error("the lists SQL failed: {0}")]
    Sql(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error("building the list tables failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The lists' store failed.
    #[error("cannot write lists at {0}. Check `lists.out_dir` (its permissions and free space)")]
    Store(#[from] crate::store::StoreError),
    /// Making a file in memory failed.
    #[error("cannot make a list file: {0}")]
    Io(#[from] std::io::Error),
    /// Writing Parquet failed.
    #[error("cannot write Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Scoring the state failed.
    #[error(transparent)]
    Score(#[from] crate::stages::score::ScoreError),
    /// The SQL output breaks the contract.
    #[error("the lists SQL must return column `{0}`")]
    Contract(String),
}

/// Households found at a priority without an alert mark: id, priority and
/// window end.
pub(crate) type Unmarked = Vec<(String, crate::stages::score::Priority, i64)>;

/// Schema of the `candidates` table the lists SQL reads.
pub(crate) fn candidates_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("household_id", DataType::Utf8, false),
        Field::new("dong_code", DataType::Utf8, false),
        Field::new("priority", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("categories", DataType::Utf8, false),
        Field::new("categories_ko", DataType::Utf8, false),
        Field::new("reasons_ko", DataType::Utf8, false),
        Field::new("reasons_en", DataType::Utf8, false),
        Field::new("first_signal_at", ts.clone(), false),
        Field::new("last_signal_at", ts.clone(), false),
        Field::new("first_signal_date", DataType::Date32, false),
        Field::new("last_signal_date", DataType::Date32, false),
        Field::new("times_alerted_before", DataType::Int64, false),
        Field::new("on_previous_list", DataType::Boolean, false),
        Field::new("list_at", ts, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("status_ko", DataType::Utf8, false),
        Field::new("last_outcome", DataType::Utf8, true),
        Field::new("last_outcome_date", DataType::Utf8, true),
        Field::new("due_date", DataType::Date32, true),
        Field::new("overdue", DataType::Boolean, false),
        Field::new("in_case", DataType::Boolean, false),
        Field::new("case_opened_date", DataType::Date32, true),
        Field::new("case_age_days", DataType::Int64, true),
        Field::new("worsened", DataType::Boolean, false),
        Field::new("serving_dong", DataType::Utf8, true),
        Field::new("open", DataType::Boolean, false),
        Field::new("queue_order", DataType::Int64, false),
        Field::new("queue_sub", DataType::Int64, false),
        Field::new("queue_at", DataType::Int64, false),
        Field::new("attempts", DataType::Int64, false),
        Field::new("next_attempt_date", DataType::Date32, true),
        Field::new("overdue_days", DataType::Int64, true),
        Field::new("next_step_ko", DataType::Utf8, false),
        Field::new("next_step_en", DataType::Utf8, false),
    ]))
}

/// What the case state adds to a candidate row: the household's open work
/// at the cut-off ([`crate::stages::case::work`]), the same model every
/// view reads; a household without a case record has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CaseColumns {
    /// Its open work at the cut-off.
    pub(crate) case: Option<crate::stages::case::OpenWork>,
    /// Its priority or categories are worse than when its case opened.
    pub(crate) worsened: bool,
}

/// The `candidates` columns of a household's status and case, as its
/// open work says them (`new` for a household without a case record).
struct StatusColumns {
    status: StringBuilder,
    status_ko: StringBuilder,
    last_outcome: StringBuilder,
    last_outcome_date: StringBuilder,
    due_date: Date32Builder,
    overdue: BooleanBuilder,
    in_case: BooleanBuilder,
    opened: Date32Builder,
    case_age: Int64Builder,
}

impl StatusColumns {
    fn with_capacity(n: usize) -> Self {
        StatusColumns {
            status: StringBuilder::with_capacity(n, n * 4),
            status_ko: StringBuilder::with_capacity(n, n * 6),
            last_outcome: StringBuilder::new(),
            last_outcome_date: StringBuilder::new(),
            due_date: Date32Builder::with_capacity(n),
            overdue: BooleanBuilder::with_capacity(n),
            in_case: BooleanBuilder::with_capacity(n),
            opened: Date32Builder::with_capacity(n),
            case_age: Int64Builder::with_capacity(n),
        }
    }

    fn append(&mut self, lists: &DailyLists, case: Option<&crate::stages::case::OpenWork>) {
        let Some(k) = case else {
            self.status.append_value("new");
            self.status_ko.append_value(&lists.status_new);
            self.last_outcome.append_null();
            self.last_outcome_date.append_null();
            self.due_date.append_null();
            self.overdue.append_value(false);
            self.in_case.append_value(false);
            self.opened.append_null();
            self.case_age.append_null();
            return;
        };
        self.status.append_value(k.status.as_str());
        self.status_ko.append_value(&k.status_ko);
        match k.outcomes.last() {
            Some(o) => {
                self.last_outcome.append_value(&o.label);
                self.last_outcome_date
                    .append_value(lists.local_day_text(o.recorded_at));
            }
            None => {
                self.last_outcome.append_null();
                self.last_outcome_date.append_null();
            }
        }
        self.due_date
            .append_option(k.due_at.map(|t| lists.local_date(t)));
        self.overdue.append_value(k.overdue());
        self.in_case.append_value(k.in_case_since.is_some());
        self.opened
            .append_option(k.in_case_since.map(|t| lists.local_date(t)));
        self.case_age.append_option(k.case_age_days);
    }

    /// The columns, in the schema's order (status .. case_age_days).
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.status.finish()),
            Arc::new(self.status_ko.finish()),
            Arc::new(self.last_outcome.finish()),
            Arc::new(self.last_outcome_date.finish()),
            Arc::new(self.due_date.finish()),
            Arc::new(self.overdue.finish()),
            Arc::new(self.in_case.finish()),
            Arc::new(self.opened.finish()),
            Arc::new(self.case_age.finish()),
        ]
    }
}

/// The columns of a household's open work on a list row.
struct WorkColumns {
    open: BooleanBuilder,
    order: Int64Builder,
    sub: Int64Builder,
    at: Int64Builder,
    attempts: Int64Builder,
    next_attempt: Date32Builder,
    overdue_days: Int64Builder,
    step_ko: StringBuilder,
    step_en: StringBuilder,
}

impl WorkColumns {
    fn with_capacity(n: usize) -> Self {
        WorkColumns {
            open: BooleanBuilder::with_capacity(n),
            order: Int64Builder::with_capacity(n),
            sub: Int64Builder::with_capacity(n),
            at: Int64Builder::with_capacity(n),
            attempts: Int64Builder::with_capacity(n),
            next_attempt: Date32Builder::with_capacity(n),
            overdue_days: Int64Builder::with_capacity(n),
            step_ko: StringBuilder::new(),
            step_en: StringBuilder::new(),
        }
    }

    /// A household without a case record was never alerted: not open
    /// work (no office has it yet), ranked with the new ones at the
    /// priority it is assessed at.
    fn append(
        &mut self,
        lists: &DailyLists,
        w: Option<&crate::stages::case::OpenWork>,
        assessed: crate::stages::score::Priority,
    ) {
        self.open.append_value(w.is_some_and(|w| w.open()));
        let (order, sub, at) = w.map_or_else(
            || {
                let order = i64::from(lists.new_rank) * 2 + 1;
                let sub = 255 * 4 + crate::stages::case::work::priority_rank(Some(assessed));
                (order, sub, 0)
            },
            |w| w.queue_parts(),
        );
        self.order.append_value(order);
        self.sub.append_value(sub);
        self.at.append_value(at);
        self.attempts
            .append_value(w.map_or(0, |w| i64::from(w.attempts)));
        self.next_attempt.append_option(
            w.filter(|w| w.open())
                .and_then(|w| w.next_attempt_at)
                .map(|t| lists.local_date(t)),
        );
        self.overdue_days
            .append_option(w.and_then(|w| w.overdue_days));
        self.step_ko.append_value(w.map_or("", |w| &w.step_ko));
        self.step_en.append_value(w.map_or("", |w| &w.step_en));
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.open.finish()),
            Arc::new(self.order.finish()),
            Arc::new(self.sub.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.attempts.finish()),
            Arc::new(self.next_attempt.finish()),
            Arc::new(self.overdue_days.finish()),
            Arc::new(self.step_ko.finish()),
            Arc::new(self.step_en.finish()),
        ]
    }
}

/// Makes the daily lists of one pipeline.
pub struct DailyLists {
    ctx: SessionContext,
    sql: String,
    dongs: Vec<Dong>,
    offset: FixedOffset,
    cutoff_hour: u32,
    pipeline: String,
    /// The Korean label of status `new`.
    status_new: String,
    /// Where the `new` tier stands in the queue's order.
    new_rank: u8,
    /// The pipeline's categories in its order, with their Korean names.
    categories: crate::definition::CategoryNames,
}

impl DailyLists {
    /// Lists for `spec`; fails when the pipeline has no lists SQL.
    pub fn new(spec: &PipelineSpec) -> Result<Self, ListError> {
        let sql = spec
            .lists_sql
            .clone()
            .ok_or_else(|| ListError::NotConfigured(spec.name.clone()))?;
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        let mut code = StringBuilder::new();
        let mut ko = StringBuilder::new();
        let mut en = StringBuilder::new();
        for d in &spec.dongs {
            code.append_value(&d.dong_code);
            ko.append_value(&d.name_ko);
            en.append_value(&d.name_en);
        }
        let dongs = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("dong_code", DataType::Utf8, false),
                Field::new("name_ko", DataType::Utf8, false),
                Field::new("name_en", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(code.finish()),
                Arc::new(ko.finish()),
                Arc::new(en.finish()),
            ],
        )?;
        ctx.register_batch("dongs", dongs)?;
        let offset = spec.local_clock().fixed_offset();
        Ok(DailyLists {
            ctx,
            sql,
            dongs: spec.dongs.clone(),
            offset,
            cutoff_hour: spec.lists.cutoff_hour,
            pipeline: spec.name.clone(),
            categories: spec.category_names(),
            status_new: spec
                .outcomes
                .labels_ko
                .get("new")
                .cloned()
                .unwrap_or_else(|| "신규".into()),
            new_rank: crate::stages::case::work::queue_tiers(&spec.outcomes)
                .iter()
                .position(|&t| t == crate::stages::case::Tier::New)
                .unwrap_or(0) as u8,
        })
    }

    /// The cut-off of list day `date`, on the driver's clock.
    pub fn cutoff(&self, date: NaiveDate) -> ClockTime {
        let local = date.and_hms_opt(self.cutoff_hour, 0, 0).unwrap_or_default();
        ClockTime::from_ms(
            self.offset
                .from_local_datetime(&local)
                .single()
                .map(|t| t.timestamp_millis())
                .unwrap_or_default(),
        )
    }

    /// The list day whose cut-off is the latest at or before `at`.
    pub(crate) fn list_day_at(&self, at: ClockTime) -> NaiveDate {
        let local = DateTime::from_timestamp_millis(at.ms())
            .unwrap_or_default()
            .with_timezone(&self.offset);
        let date = local.date_naive();
        if self.cutoff(date) <= at {
            date
        } else {
            date - Duration::days(1)
        }
    }

    fn local_day_text(&self, ms: i64) -> String {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.offset)
            .date_naive()
            .to_string()
    }

    fn local_date(&self, ms: i64) -> i32 {
        let d = DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.offset)
            .date_naive();
        (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
    }

    /// The `candidates` table from the current assessments.
    pub(crate) fn candidates(
        &self,
        assessments: &[Assessment],
        mark: impl Fn(&str) -> Option<AlertMark>,
        case: impl Fn(&Assessment) -> CaseColumns,
        previous: &HashSet<String>,
        list_at_ms: i64,
    ) -> Result<RecordBatch, ListError> {
        let n = assessments.len();
        let mut household = StringBuilder::with_capacity(n, n * 12);
        let mut dong = StringBuilder::with_capacity(n, n * 10);
        let mut priority = StringBuilder::with_capacity(n, n * 2);
        let mut score = Float64Builder::with_capacity(n);
        let mut categories = StringBuilder::new();
        let mut categories_ko = StringBuilder::new();
        let mut reasons_ko = StringBuilder::new();
        let mut reasons_en = StringBuilder::new();
        let mut first = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut last = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut first_date = Date32Builder::with_capacity(n);
        let mut last_date = Date32Builder::with_capacity(n);
        let mut alerted = Int64Builder::with_capacity(n);
        let mut on_previous = BooleanBuilder::with_capacity(n);
        let mut list_at = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut status = StatusColumns::with_capacity(n);
        let mut worsened = BooleanBuilder::with_capacity(n);
        let mut serving = StringBuilder::with_capacity(n, n * 10);
        let mut work = WorkColumns::with_capacity(n);
        for a in assessments {
            let c = case(a);
            status.append(self, c.case.as_ref());
            work.append(self, c.case.as_ref(), a.priority);
            worsened.append_value(c.worsened);
            household.append_value(&a.household_id);
            dong.append_value(&a.dong_code);
            // a household with a case record is on the list of the office
            // serving it (the one its queue is on), else of its newest signal
            serving.append_option(c.case.as_ref().map(|w| &w.dong));
            priority.append_value(a.priority.as_str());
            score.append_value(a.score);
            let (en, ko) = self.categories.of(&a.categories);
            categories.append_value(en.join(", "));
            categories_ko.append_value(ko.join(", "));
            reasons_ko.append_value(
                a.reasons
                    .iter()
                    .map(|r| r.detail_ko.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            reasons_en.append_value(
                a.reasons
                    .iter()
                    .map(|r| r.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            first.append_value(a.first_signal_at);
            last.append_value(a.last_signal_at);
            first_date.append_value(self.local_date(a.first_signal_at));
            last_date.append_value(self.local_date(a.last_signal_at));
            alerted.append_value(mark(&a.household_id).map_or(0, |m| i64::from(m.count)));
            on_previous.append_value(previous.contains(&a.household_id));
            list_at.append_value(list_at_ms);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(household.finish()),
            Arc::new(dong.finish()),
            Arc::new(priority.finish()),
            Arc::new(score.finish()),
            Arc::new(categories.finish()),
            Arc::new(categories_ko.finish()),
            Arc::new(reasons_ko.finish()),
            Arc::new(reasons_en.finish()),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(first_date.finish()),
            Arc::new(last_date.finish()),
            Arc::new(alerted.finish()),
            Arc::new(on_previous.finish()),
            Arc::new(list_at.finish()),
        ];
        let mut columns = columns;
        columns.extend(status.finish());
        columns.push(Arc::new(worsened.finish()));
        columns.push(Arc::new(serving.finish()));
        columns.extend(work.finish());
        Ok(RecordBatch::try_new(candidates_schema(), columns)?)
    }

    /// Selects and ranks the candidates (batches of [`Self::candidates`])
    /// with the lists SQL.
    pub(crate) async fn rank(
        &self,
        candidates: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, ListError> {
        self.ctx.deregister_table("candidates")?;
        let table =
            datafusion::datasource::MemTable::try_new(candidates_schema(), vec![candidates])?;
        self.ctx.register_table("candidates", Arc::new(table))?;
        let frame = self.ctx.sql(&self.sql).await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let mut batches = frame.collect().await?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        for b in &batches {
            for col in [
                "list_dong",
                "name_ko",
                "name_en",
                "rank",
                "household_id",
                "priority",
            ] {
                if b.column_by_name(col).is_none() {
                    return Err(ListError::Contract(col.into()));
                }
            }
        }
        Ok(batches)
    }

    /// Writes the ranked lists of `date` under `out/lists/<date>/`,
    /// replacing an earlier run's files for the same day. Every served dong
    /// gets a file, empty or not, and so does `unassigned`.
    pub(crate) fn write(
        &self,
        out: &dyn Store,
        date: NaiveDate,
        ranked: &[RecordBatch],
        now_ms: i64,
    ) -> Result<Manifest, ListError> {
        write::write_day(self, out, date, ranked, now_ms, None)
    }

    /// The manifest of `date` in `out`, if that day's lists are written.
    pub(crate) fn manifest_of(
        &self,
        out: &dyn Store,
        date: NaiveDate,
    ) -> Result<Option<Manifest>, ListError> {
        write::manifest_of(out, date)
    }

    /// Scores the households of `engine`'s state that can be at a priority
    /// (see [`crate::engine::Engine::list_candidates`]), ranks them and
    /// writes the lists of the day whose cut-off is `cutoff`. `previous`
    /// holds the households on the previous list (for "new since the
    /// previous list"). Returns the manifest and the households now on the
    /// lists. (Instances that share the partitions write parts and
    /// assemble the day instead: [`DailyLists::write_parts`].)
    pub async fn make_day(
        &self,
        engine: &mut crate::engine::Engine,
        out: &dyn Store,
        cutoff: ClockTime,
        previous: &HashSet<String>,
    ) -> Result<(Manifest, HashSet<String>), ListError> {
        let started = std::time::Instant::now();
        let (ids, marked_only) = engine.list_candidates();
        let scored_households = ids.len();
        let (candidates, unmarked) = self
            .candidates_of(engine, &ids, cutoff, previous, None)
            .await?;
        drop(ids);
        if let Some(unmarked) = unmarked {
            engine.index_priorities(&unmarked);
        }
        let scored = started.elapsed();
        let ranked = self.rank(candidates).await?;
        let ranked_at = started.elapsed();
        let manifest = self.write(
            out,
            self.list_day_at(cutoff),
            &ranked,
            crate::base::clock::wall_clock_ms(),
        )?;
        // Where a slow morning went, for whoever is on call (the driver logs
        // the day itself).
        tracing::debug!(
            households = manifest.households,
            scored_households,
            marked_only,
            score_ms = scored.as_millis() as u64,
            rank_ms = (ranked_at - scored).as_millis() as u64,
            write_ms = (started.elapsed() - ranked_at).as_millis() as u64,
            "daily lists made"
        );
        let on_list = households_of(&ranked)?;
        Ok((manifest, on_list))
    }

    /// The candidate rows of `ids` as of the cut-off `cutoff`, scored
    /// in chunks so at most one chunk's assessments (with their rendered
    /// reasons) are in memory; only the compact candidate rows accumulate.
    /// While the marks do not cover every household at a priority (after a
    /// change of scoring), it also returns the households it found at one
    /// without a mark, for [`crate::engine::Engine::index_priorities`] once
    /// every candidate is scored.
    pub(crate) async fn candidates_of(
        &self,
        engine: &crate::engine::Engine,
        ids: &[&str],
        cutoff: ClockTime,
        previous: &HashSet<String>,
        shard: Option<i32>,
    ) -> Result<(Vec<RecordBatch>, Option<Unmarked>), ListError> {
        const CHUNK: usize = 100_000;
        let marked_only = engine.marks_cover_priorities();
        let mut unmarked = Vec::new();
        let mut candidates = Vec::with_capacity(ids.len() / CHUNK + 2);
        let mut assessed = HashSet::new();
        let chunks = ids.chunks(CHUNK).map(|c| (c, false));
        for (chunk, open_only) in chunks.chain([(&[][..], true)]) {
            let assessments = if open_only {
                // open households no longer at a priority (their signals
                // left the window) stay on the list until someone reaches
                // them: no household leaves the office's work unreached
                engine.stale_open(cutoff, &assessed, shard)
            } else {
                // the window as of the cut-off: the signals observed before it
                engine.assess(chunk, EventTime::of_clock(cutoff)).await?
            };
            if assessments.is_empty() {
                continue;
            }
            assessed.extend(assessments.iter().map(|a| a.household_id.clone()));
            if !marked_only {
                unmarked.extend(
                    assessments
                        .iter()
                        .filter(|a| engine.alert_mark(&a.household_id).is_none())
                        .map(|a| (a.household_id.clone(), a.priority, a.window_end)),
                );
            }
            let case = |a: &Assessment| {
                let case = engine.household_work(&a.household_id, cutoff);
                let worsened = case
                    .as_ref()
                    .and_then(|c| c.in_case_since.and(c.opened_with))
                    .is_some_and(|(p, cats)| {
                        let now = engine.category_set(a.categories.iter().map(|c| &**c));
                        a.priority > p || now & !cats != 0
                    });
                CaseColumns { case, worsened }
            };
            candidates.push(self.candidates(
                &assessments,
                |h| engine.alert_mark(h),
                case,
                previous,
                cutoff.ms(),
            )?);
        }
        Ok((candidates, (!marked_only).then_some(unmarked)))
    }

    /// Households on the lists written for `date`, read back from its
    /// Parquet files (empty when that day has no lists).
    pub fn households_on(&self, out: &dyn Store, date: NaiveDate) -> HashSet<String> {
        write::households_on(out, date)
    }
}

/// The households on ranked lists.
fn households_of(ranked: &[RecordBatch]) -> Result<HashSet<String>, ListError> {
    let mut on_list = HashSet::new();
    for batch in ranked {
        if let Some(col) = batch.column_by_name("household_id") {
            let col = arrow::compute::cast(col, &DataType::Utf8)?;
            on_list.extend(
                arrow::array::AsArray::as_string::<i32>(&col)
                    .iter()
                    .flatten()
                    .map(String::from),
            );
        }
    }
    Ok(on_list)
}

#[cfg(test)]
mod tests;
