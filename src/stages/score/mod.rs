//! The scoring stage: runs the pipeline's SQL with DataFusion over the live
//! signals of the households a micro-batch touched, and turns the result
//! into one [`Assessment`] per household that reaches a priority.
//!
//! [`Scorer::score`] stops before the reasons: it returns [`Scored`], the
//! households read in place, so the engine can let the alert stage judge
//! each [`Candidate`] and render only the assessments it sends.
//!
//! The SQL decides supersession, the window boundary, categories, priority
//! and score (see `pipelines/default/score.sql`); this stage only reads its
//! output contract and renders the reasons from the feeds' templates.

pub mod reason;
pub(crate) mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, UInt64Type};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use crate::base::hash::Fnv128;
use crate::definition::PipelineSpec;
use reason::{ReasonValues, Template};
use table::{BatchSlot, SlotTable};

/// Why scoring failed. The SQL is the operator's, so its errors are
/// reported with the pipeline named.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// DataFusion could not plan or run the SQL.
    #[error("the scoring SQL of pipeline `{pipeline}` failed: {source}")]
    Sql {
        /// Pipeline name.
        pipeline: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// The SQL ran but its output breaks the contract.
    #[error("the scoring SQL of pipeline `{pipeline}` must return column `{column}` ({problem})")]
    Contract {
        /// Pipeline name.
        pipeline: String,
        /// The missing or mistyped column.
        column: String,
        /// What is wrong.
        problem: String,
    },
}

/// Alert priority; P1 is the most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// One category.
    P3 = 1,
    /// Two categories, or a disconnection alone.
    P2 = 2,
    /// Three categories, or a disconnection with another category.
    P1 = 3,
}

impl Priority {
    /// Parses "P1", "P2" or "P3".
    pub(crate) fn parse(s: &str) -> Option<Priority> {
        match s {
            "P1" => Some(Priority::P1),
            "P2" => Some(Priority::P2),
            "P3" => Some(Priority::P3),
            _ => None,
        }
    }

    /// "P1", "P2" or "P3".
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }

    /// All priorities, most urgent first.
    pub const ALL: [Priority; 3] = [Priority::P1, Priority::P2, Priority::P3];

    /// The priority of a code ([`Priority`] `as u8`).
    pub(crate) fn from_code(code: u8) -> Option<Priority> {
        match code {
            3 => Some(Priority::P1),
            2 => Some(Priority::P2),
            1 => Some(Priority::P3),
            _ => None,
        }
    }

    /// One step more urgent (P1 stays P1).
    pub(crate) fn raised(self) -> Priority {
        match self {
            Priority::P3 => Priority::P2,
            _ => Priority::P1,
        }
    }
}

/// One reason of an assessment: a qualifying signal, explained.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reason {
    /// Feed name of the signal (shared: most assessments reach no alert,
    /// and none needs a copy of a feed's name).
    pub(crate) signal: Arc<str>,
    /// Its category.
    pub(crate) category: Arc<str>,
    /// English detail.
    pub(crate) detail: String,
    /// Korean detail.
    pub(crate) detail_ko: String,
    /// Event time, ms since the epoch.
    pub(crate) observed_at: i64,
    /// Months overdue, where the feed has them (the yield's buckets).
    pub(crate) months_overdue: Option<i64>,
    /// Amount overdue in KRW, where the feed has it.
    pub(crate) amount_krw: Option<i64>,
}

/// A household that reaches a priority, with everything an alert needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Pseudonymous household id.
    pub household_id: String,
    /// Dong of the household's newest signal.
    pub dong_code: String,
    /// Priority.
    pub priority: Priority,
    /// Orders households inside a priority; higher is more urgent.
    pub score: f64,
    /// Event time of the household's newest signal (end of its window).
    pub(crate) window_end: i64,
    /// Distinct categories among the reasons, in order of appearance.
    pub(crate) categories: Vec<Arc<str>>,
    /// The qualifying signals, oldest first.
    pub(crate) reasons: Vec<Reason>,
    /// Event time of the oldest reason.
    pub(crate) first_signal_at: i64,
    /// Event time of the newest reason.
    pub(crate) last_signal_at: i64,
    /// What the decision rests on: a hash of the reasons' event keys in
    /// order and of the event key of the household's newest live signal.
    /// With the household and the priority it makes the alert id.
    pub(crate) evidence: u128,
}

struct FeedText {
    name: Arc<str>,
    reason: Template,
    reason_ko: Template,
    labels_ko: BTreeMap<String, String>,
    no_labels: BTreeMap<String, String>,
}

/// The batch sizes a scoring query runs with: the smallest that holds the
/// table at once, up to DataFusion's usual 8192. Its operators set aside
/// buffers of the batch size each time they start, which for a micro-batch
/// of a few dozen signals cost more than the query's work.
const BATCH_SIZES: [usize; 3] = [256, 1024, 8192];

/// The scoring stage.
pub struct Scorer {
    ctx: SessionContext,
    /// The batch the plan reads when it runs.
    slot: BatchSlot,
    /// The SQL's physical plan, made on first use and re-executed per batch.
    plan: OnceCell<Arc<dyn ExecutionPlan>>,
    /// A task context per size of [`BATCH_SIZES`], made once: making one
    /// copies the session's registry of functions, name by name.
    tasks: std::sync::OnceLock<Vec<Arc<TaskContext>>>,
    /// One execution at a time: they share the slot.
    running: Mutex<()>,
    pipeline: String,
    sql: String,
    feeds: BTreeMap<String, FeedText>,
    /// The feeds' categories, shared by every reason that names one.
    categories: Vec<Arc<str>>,
}

impl Scorer {
    /// A scorer for the SQL and feeds of `spec`.
    pub fn new(spec: &PipelineSpec) -> Self {
        // Micro-batches are small: one partition avoids repartitioning work
        // that costs more than it saves. Dynamic filters are state inside a
        // plan, which a re-executed plan must not carry between batches.
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(8192)
            .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false);
        Scorer {
            ctx: SessionContext::new_with_config(config),
            slot: BatchSlot::default(),
            plan: OnceCell::new(),
            tasks: std::sync::OnceLock::new(),
            running: Mutex::new(()),
            pipeline: spec.name.clone(),
            sql: spec.score_sql.clone(),
            feeds: spec
                .feeds
                .iter()
                .map(|f| {
                    (
                        f.name.clone(),
                        FeedText {
                            name: Arc::from(f.name.as_str()),
                            reason: Template::parse(&f.reason),
                            reason_ko: Template::parse(&f.reason_ko),
                            labels_ko: f.labels_ko.clone(),
                            no_labels: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            categories: spec
                .feeds
                .iter()
                .map(|f| Arc::from(f.category.as_str()))
                .collect(),
        }
    }

    /// `name` as a shared string: one of the feeds' categories, or a new
    /// one when the SQL made up its own.
    fn category(&self, name: &str) -> Arc<str> {
        match self.categories.iter().find(|c| &***c == name) {
            Some(c) => Arc::clone(c),
            None => Arc::from(name),
        }
    }

    fn sql_error(&self, source: datafusion::error::DataFusionError) -> ScoreError {
        ScoreError::Sql {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// The task context for a table of `rows` rows (see [`BATCH_SIZES`]).
    fn task_for(&self, rows: usize) -> Arc<TaskContext> {
        let tasks = self.tasks.get_or_init(|| {
            let state = self.ctx.state();
            BATCH_SIZES
                .iter()
                .map(|&size| {
                    let config = self.ctx.copied_config().with_batch_size(size);
                    Arc::new(TaskContext::from(&state).with_session_config(config))
                })
                .collect()
        });
        let i = BATCH_SIZES
            .iter()
            .position(|&size| rows <= size)
            .unwrap_or(BATCH_SIZES.len() - 1);
        Arc::clone(&tasks[i])
    }

    /// The physical plan of the SQL over the `signals` table, made once.
    async fn plan(&self) -> Result<&Arc<dyn ExecutionPlan>, ScoreError> {
        self.plan
            .get_or_try_init(|| async {
                let table = SlotTable::new(
                    crate::stages::signal::signal_table_schema(),
                    self.slot.clone(),
                    &crate::stages::signal::SIGNAL_TABLE_ORDER,
                );
                self.ctx
                    .register_table("signals", Arc::new(table))
                    .map_err(|e| self.sql_error(e))?;
                let frame = self
                    .ctx
                    .sql(&self.sql)
                    .await
                    .map_err(|e| self.sql_error(e))?;
                frame
                    .create_physical_plan()
                    .await
                    .map_err(|e| self.sql_error(e))
            })
            .await
    }

    /// Scores every household in `signals` (schema: `signal_table_schema`)
    /// and renders each one's reasons: [`Scorer::score`], then every
    /// assessment. The daily lists' path; the stream renders only the
    /// households the alert gate sends.
    pub async fn assess(&self, signals: RecordBatch) -> Result<Vec<Assessment>, ScoreError> {
        let scored = self.score(signals).await?;
        Ok((0..scored.len())
            .filter_map(|i| scored.assessment(i))
            .collect())
    }

    /// Runs the SQL over `signals` and checks its output, without rendering
    /// any reason: the caller renders only the households it keeps (the
    /// alert cooldown holds back about a third of them).
    pub(crate) async fn score(&self, signals: RecordBatch) -> Result<Scored<'_>, ScoreError> {
        let mut scored = Scored::new(self);
        if signals.num_rows() == 0 {
            return Ok(scored);
        }
        let plan = self.plan().await?;
        let signals_rows = signals.num_rows();
        let _running = self.running.lock().await;
        self.slot.put(Some(signals));
        let result = match reset_plan_states(Arc::clone(plan)) {
            Ok(run) => collect(run, self.task_for(signals_rows)).await,
            Err(e) => Err(e),
        };
        self.slot.put(None);
        for batch in &result.map_err(|e| self.sql_error(e))? {
            let columns = self.columns(batch)?;
            scored.index(columns)?;
        }
        Ok(scored)
    }

    /// Plans the SQL and checks its output columns, so a broken pipeline
    /// stops at start-up rather than on the first batch.
    pub(crate) async fn check(&self) -> Result<(), ScoreError> {
        let schema = self.plan().await?.schema();
        for column in [
            "household_id",
            "dong_code",
            "priority",
            "score",
            "window_end",
            "feed",
            "category",
            "subject",
            "kind",
            "months_overdue",
            "amount_krw",
            "disconnected",
            "occurred_on",
            "observed_at",
            "event_key",
            "newest_event_key",
        ] {
            if schema.field_with_name(column).is_err() {
                return Err(self.contract(column, "missing from the SELECT list"));
            }
        }
        Ok(())
    }

    fn contract(&self, column: &str, problem: &str) -> ScoreError {
        ScoreError::Contract {
            pipeline: self.pipeline.clone(),
            column: column.into(),
            problem: problem.into(),
        }
    }

    fn column(
        &self,
        batch: &RecordBatch,
        name: &str,
        ty: &DataType,
    ) -> Result<Arc<dyn Array>, ScoreError> {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| self.contract(name, "missing from the result"))?;
        cast(col, ty).map_err(|e| self.contract(name, &format!("cannot be read as {ty}: {e}")))
    }

    /// The result's columns as the contract types them, each downcast once
    /// for every household read from the batch.
    fn columns(&self, batch: &RecordBatch) -> Result<ResultColumns, ScoreError> {
        let text = |name| -> Result<StringArray, ScoreError> {
            Ok(self
                .column(batch, name, &DataType::Utf8)?
                .as_string::<i32>()
                .clone())
        };
        let key = |name| -> Result<UInt64Array, ScoreError> {
            Ok(self
                .column(batch, name, &DataType::UInt64)?
                .as_primitive::<UInt64Type>()
                .clone())
        };
        let int = |name| -> Result<Int64Array, ScoreError> {
            Ok(self
                .column(batch, name, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
        };
        Ok(ResultColumns {
            household: text("household_id")?,
            dong: text("dong_code")?,
            priority: text("priority")?,
            score: self
                .column(batch, "score", &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
            window_end: int("window_end")?,
            feed: text("feed")?,
            category: text("category")?,
            subject: text("subject")?,
            kind: text("kind")?,
            months: int("months_overdue")?,
            amount: int("amount_krw")?,
            disconnected: self
                .column(batch, "disconnected", &DataType::Boolean)?
                .as_boolean()
                .clone(),
            occurred_on: self
                .column(batch, "occurred_on", &DataType::Date32)?
                .as_primitive::<Date32Type>()
                .clone(),
            observed_at: int("observed_at")?,
            event_key: key("event_key")?,
            newest_event_key: key("newest_event_key")?,
        })
    }
}

/// One result batch's columns, cast to the types of the output contract.
struct ResultColumns {
    household: StringArray,
    dong: StringArray,
    priority: StringArray,
    score: Float64Array,
    window_end: Int64Array,
    feed: StringArray,
    category: StringArray,
    subject: StringArray,
    kind: StringArray,
    months: Int64Array,
    amount: Int64Array,
    disconnected: BooleanArray,
    occurred_on: Date32Array,
    observed_at: Int64Array,
    event_key: UInt64Array,
    newest_event_key: UInt64Array,
}

/// Where one household's rows lie in a [`Scored`] result: from `first` to
/// `last` (batch, row), both included. Rows the contract ignores (no
/// household or no priority) may lie between them.
#[derive(Clone, Copy)]
struct HouseholdRows {
    first: (u32, u32),
    last: (u32, u32),
    priority: Priority,
    reasons: u32,
}

/// A household that reaches a priority, as the alert stage judges it
/// before its reasons are rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate<'a> {
    /// Pseudonymous household id.
    pub(crate) household_id: &'a str,
    /// Priority.
    pub(crate) priority: Priority,
    /// Event time of the household's newest signal (end of its window).
    pub(crate) window_end: i64,
}

/// One run of the scoring SQL: the households that reach a priority, read
/// in place from the result; [`Scored::assessment`] renders one.
pub(crate) struct Scored<'s> {
    scorer: &'s Scorer,
    batches: Vec<ResultColumns>,
    households: Vec<HouseholdRows>,
}

impl<'s> Scored<'s> {
    /// A result of `scorer` with no household yet.
    fn new(scorer: &'s Scorer) -> Self {
        Scored {
            scorer,
            batches: Vec::new(),
            households: Vec::new(),
        }
    }

    /// Number of households that reach a priority.
    pub(crate) fn len(&self) -> usize {
        self.households.len()
    }

    /// Every household, in the result's order, without its reasons.
    pub(crate) fn candidates(&self) -> impl ExactSizeIterator<Item = Candidate<'_>> + '_ {
        self.households.iter().map(|h| {
            let (c, row) = (&self.batches[h.first.0 as usize], h.first.1 as usize);
            Candidate {
                household_id: c.household.value(row),
                priority: h.priority,
                window_end: c.window_end.value(row),
            }
        })
    }

    /// Adds the households of one result batch. The contract orders rows by
    /// household, so a household continues from the previous batch when its
    /// first row here has the id of the last household.
    fn index(&mut self, columns: ResultColumns) -> Result<(), ScoreError> {
        let b = self.batches.len() as u32;
        self.batches.push(columns);
        let batches = &self.batches;
        let c = &batches[b as usize];
        let (household, priority) = (&c.household, &c.priority);
        let id_at = |(b, row): (u32, u32)| batches[b as usize].household.value(row as usize);
        for row in 0..household.len() {
            if household.is_null(row) || priority.is_null(row) {
                continue;
            }
            let Some(p) = Priority::parse(priority.value(row)) else {
                return Err(self
                    .scorer
                    .contract("priority", "values must be 'P1', 'P2' or 'P3'"));
            };
            let here = (b, row as u32);
            match self.households.last_mut() {
                Some(last) if id_at(last.first) == household.value(row) => {
                    last.last = here;
                    last.reasons += 1;
                }
                _ => self.households.push(HouseholdRows {
                    first: here,
                    last: here,
                    priority: p,
                    reasons: 1,
                }),
            }
        }
        Ok(())
    }

    /// The result rows of household `i` (batch columns and row), in order,
    /// skipping the rows the contract ignores; `None` past the last one.
    fn rows_of(&self, i: usize) -> Option<impl Iterator<Item = (&ResultColumns, usize)> + '_> {
        let h = *self.households.get(i)?;
        let rows = (h.first.0..=h.last.0).flat_map(move |b| {
            let c = self.batches.get(b as usize);
            let from = if b == h.first.0 {
                h.first.1 as usize
            } else {
                0
            };
            let to = match c {
                Some(_) if b == h.last.0 => h.last.1 as usize + 1,
                Some(c) => c.household.len(),
                None => from,
            };
            (from..to).filter_map(move |row| {
                let c = c?;
                (!c.household.is_null(row) && !c.priority.is_null(row)).then_some((c, row))
            })
        });
        Some(rows)
    }

    /// The dong of household `i` and each of its reasons' category, read in
    /// place (no reason is rendered): what the case stage judges by.
    pub(crate) fn dong_and_categories(
        &self,
        i: usize,
        mut category: impl FnMut(&str),
    ) -> Option<&str> {
        let mut dong = None;
        for (c, row) in self.rows_of(i)? {
            dong.get_or_insert_with(|| c.dong.value(row));
            category(c.category.value(row));
        }
        dong
    }

    /// Household `i` with its reasons rendered from the feeds' templates.
    pub(crate) fn assessment(&self, i: usize) -> Option<Assessment> {
        let h = *self.households.get(i)?;
        let scorer = self.scorer;
        let mut a: Option<Assessment> = None;
        let mut evidence = Fnv128::new();
        let mut newest_key = 0u64;
        for (c, row) in self.rows_of(i)? {
            let ResultColumns {
                household,
                feed,
                category,
                subject,
                kind,
                months,
                amount,
                disconnected,
                occurred_on,
                observed_at,
                ..
            } = c;
            let t = observed_at.value(row);
            let a = a.get_or_insert_with(|| Assessment {
                household_id: household.value(row).to_string(),
                dong_code: c.dong.value(row).to_string(),
                priority: h.priority,
                score: c.score.value(row),
                window_end: c.window_end.value(row),
                categories: Vec::with_capacity((h.reasons as usize).min(scorer.categories.len())),
                reasons: Vec::with_capacity(h.reasons as usize),
                first_signal_at: t,
                last_signal_at: t,
                evidence: 0,
            });
            evidence = evidence.part(&c.event_key.value(row).to_le_bytes());
            newest_key = c.newest_event_key.value(row);
            let values = ReasonValues {
                subject: subject.value(row),
                kind: kind.is_valid(row).then(|| kind.value(row)),
                months_overdue: months.is_valid(row).then(|| months.value(row)),
                amount_krw: amount.is_valid(row).then(|| amount.value(row)),
                disconnected: disconnected.is_valid(row).then(|| disconnected.value(row)),
                occurred_on: occurred_on.is_valid(row).then(|| occurred_on.value(row)),
                observed_at: t,
            };
            let feed_name = feed.value(row);
            let (signal, detail, detail_ko) = match scorer.feeds.get(feed_name) {
                Some(text) => (
                    Arc::clone(&text.name),
                    text.reason.render(&values, &text.no_labels),
                    text.reason_ko.render(&values, &text.labels_ko),
                ),
                None => (
                    Arc::from(feed_name),
                    feed_name.to_string(),
                    feed_name.to_string(),
                ),
            };
            let cat = scorer.category(category.value(row));
            if !a.categories.contains(&cat) {
                a.categories.push(Arc::clone(&cat));
            }
            a.first_signal_at = a.first_signal_at.min(t);
            a.last_signal_at = a.last_signal_at.max(t);
            a.reasons.push(Reason {
                signal,
                category: cat,
                detail,
                detail_ko,
                observed_at: t,
                months_overdue: values.months_overdue,
                amount_krw: values.amount_krw,
            });
        }
        if let Some(a) = a.as_mut() {
            a.evidence = evidence.part(&newest_key.to_le_bytes()).finish();
        }
        a
    }
}

#[cfg(test)]
mod tests;
