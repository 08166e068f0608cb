//! The scoring stage: runs the pipeline's SQL with DataFusion over the live
//! signals of the households a micro-batch touched, and turns the result
//! into one [`Assessment`] per household that reaches a priority.
//!
//! The SQL decides supersession, the window boundary, categories, priority
//! and score (see `pipelines/default/score.sql`); this stage only reads its
//! output contract and renders the reasons from the feeds' templates.

pub mod reason;
pub mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use crate::pipeline::PipelineSpec;
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
    pub fn parse(s: &str) -> Option<Priority> {
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
}

/// One reason of an assessment: a qualifying signal, explained.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// Feed name of the signal (shared: most assessments reach no alert,
    /// and none needs a copy of a feed's name).
    pub signal: Arc<str>,
    /// Its category.
    pub category: Arc<str>,
    /// English detail.
    pub detail: String,
    /// Korean detail.
    pub detail_ko: String,
    /// Event time, ms since the epoch.
    pub observed_at: i64,
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
    pub window_end: i64,
    /// Distinct categories among the reasons, in order of appearance.
    pub categories: Vec<Arc<str>>,
    /// The qualifying signals, oldest first.
    pub reasons: Vec<Reason>,
    /// Event time of the oldest reason.
    pub first_signal_at: i64,
    /// Event time of the newest reason.
    pub last_signal_at: i64,
}

struct FeedText {
    name: Arc<str>,
    reason: Template,
    reason_ko: Template,
    labels_ko: BTreeMap<String, String>,
    no_labels: BTreeMap<String, String>,
}

/// The scoring stage.
pub struct Scorer {
    ctx: SessionContext,
    /// The batch the plan reads when it runs.
    slot: BatchSlot,
    /// The SQL's physical plan, made on first use and re-executed per batch.
    plan: OnceCell<Arc<dyn ExecutionPlan>>,
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

    /// The physical plan of the SQL over the `signals` table, made once.
    async fn plan(&self) -> Result<&Arc<dyn ExecutionPlan>, ScoreError> {
        self.plan
            .get_or_try_init(|| async {
                let table = SlotTable::new(
                    crate::signal::signal_table_schema(),
                    self.slot.clone(),
                    &crate::signal::SIGNAL_TABLE_ORDER,
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

    /// Scores the households in `signals` (schema: `signal_table_schema`).
    pub async fn process_batch(&self, signals: RecordBatch) -> Result<Vec<Assessment>, ScoreError> {
        if signals.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let plan = self.plan().await?;
        let _running = self.running.lock().await;
        self.slot.put(Some(signals));
        let result = match reset_plan_states(Arc::clone(plan)) {
            Ok(run) => collect(run, self.ctx.task_ctx()).await,
            Err(e) => Err(e),
        };
        self.slot.put(None);
        let batches = result.map_err(|e| self.sql_error(e))?;
        let mut out = Vec::new();
        for batch in &batches {
            self.read_rows(batch, &mut out)?;
        }
        Ok(out)
    }

    /// Plans the SQL and checks its output columns, so a broken pipeline
    /// stops at start-up rather than on the first batch.
    pub async fn check(&self) -> Result<(), ScoreError> {
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

    fn read_rows(&self, batch: &RecordBatch, out: &mut Vec<Assessment>) -> Result<(), ScoreError> {
        let utf8 = DataType::Utf8;
        let household = self.column(batch, "household_id", &utf8)?;
        let dong = self.column(batch, "dong_code", &utf8)?;
        let priority = self.column(batch, "priority", &utf8)?;
        let score = self.column(batch, "score", &DataType::Float64)?;
        let window_end = self.column(batch, "window_end", &DataType::Int64)?;
        let feed = self.column(batch, "feed", &utf8)?;
        let category = self.column(batch, "category", &utf8)?;
        let subject = self.column(batch, "subject", &utf8)?;
        let kind = self.column(batch, "kind", &utf8)?;
        let months = self.column(batch, "months_overdue", &DataType::Int64)?;
        let amount = self.column(batch, "amount_krw", &DataType::Int64)?;
        let disconnected = self.column(batch, "disconnected", &DataType::Boolean)?;
        let occurred_on = self.column(batch, "occurred_on", &DataType::Date32)?;
        let observed_at = self.column(batch, "observed_at", &DataType::Int64)?;
        let (household, dong, priority, feed, category, subject, kind) = (
            household.as_string::<i32>(),
            dong.as_string::<i32>(),
            priority.as_string::<i32>(),
            feed.as_string::<i32>(),
            category.as_string::<i32>(),
            subject.as_string::<i32>(),
            kind.as_string::<i32>(),
        );
        let score = score.as_primitive::<Float64Type>();
        let (window_end, months, amount, observed_at) = (
            window_end.as_primitive::<Int64Type>(),
            months.as_primitive::<Int64Type>(),
            amount.as_primitive::<Int64Type>(),
            observed_at.as_primitive::<Int64Type>(),
        );
        let disconnected = disconnected.as_boolean();
        let occurred_on = occurred_on.as_primitive::<Date32Type>();

        for row in 0..batch.num_rows() {
            if household.is_null(row) || priority.is_null(row) {
                continue;
            }
            let Some(p) = Priority::parse(priority.value(row)) else {
                return Err(self.contract("priority", "values must be 'P1', 'P2' or 'P3'"));
            };
            let hh = household.value(row);
            let t = observed_at.value(row);
            if out.last().is_none_or(|a: &Assessment| a.household_id != hh) {
                // its rows follow each other: size the lists once
                let reasons = (row..batch.num_rows())
                    .take_while(|&r| household.is_valid(r) && household.value(r) == hh)
                    .count();
                out.push(Assessment {
                    household_id: hh.to_string(),
                    dong_code: dong.value(row).to_string(),
                    priority: p,
                    score: score.value(row),
                    window_end: window_end.value(row),
                    categories: Vec::with_capacity(reasons.min(self.categories.len())),
                    reasons: Vec::with_capacity(reasons),
                    first_signal_at: t,
                    last_signal_at: t,
                });
            }
            let Some(a) = out.last_mut() else { continue };
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
            let (signal, detail, detail_ko) = match self.feeds.get(feed_name) {
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
            let cat = self.category(category.value(row));
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
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
