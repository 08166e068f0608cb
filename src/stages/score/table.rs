//! The `signals` table of the scoring SQL, planned once and filled per
//! micro-batch.
//!
//! Planning the SQL (parse, analyse, optimise, physical plan) costs more
//! than running it over a typical micro-batch, so the scorer plans once
//! against this table and re-executes the same physical plan for every
//! batch: the scan reads whatever batch the [`BatchSlot`] holds when the
//! plan runs.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use datafusion::physical_plan::ExecutionPlan;
use parking_lot::RwLock;

/// The batch the next execution of the plan reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchSlot(Arc<Mutex<Option<RecordBatch>>>);

impl BatchSlot {
    /// Puts `batch` in the slot (or empties it).
    pub(crate) fn put(&self, batch: Option<RecordBatch>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = batch;
    }

    fn get(&self) -> Option<RecordBatch> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A table whose rows are the batch in a [`BatchSlot`] at execution time.
#[derive(Debug)]
pub(crate) struct SlotTable {
    schema: SchemaRef,
    slot: BatchSlot,
    order: &'static [&'static str],
}

impl SlotTable {
    /// A table of `schema` reading from `slot`, whose batches are always
    /// sorted ascending by the columns named in `order` (nulls last).
    ///
    /// The order is a promise to the planner, which drops sorts and
    /// streams aggregations on the strength of it: a batch out of this
    /// order would give wrong results, not an error.
    pub(crate) fn new(schema: SchemaRef, slot: BatchSlot, order: &'static [&'static str]) -> Self {
        SlotTable {
            schema,
            slot,
            order,
        }
    }
}

#[async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let reader = SlotReader {
            slot: self.slot.clone(),
            done: false,
        };
        let mut exec = LazyMemoryExec::try_new(
            Arc::clone(&self.schema),
            vec![Arc::new(RwLock::new(reader))],
        )?
        .with_projection(projection.cloned());
        // the longest prefix of the order whose columns the scan keeps
        let scanned = exec.schema();
        let ordering: Vec<PhysicalSortExpr> = self
            .order
            .iter()
            .map_while(|name| {
                let index = scanned.index_of(name).ok()?;
                Some(PhysicalSortExpr::new(
                    Arc::new(Column::new(name, index)),
                    SortOptions::new(false, false),
                ))
            })
            .collect();
        if !ordering.is_empty() {
            exec.add_ordering(ordering);
        }
        Ok(Arc::new(exec))
    }
}

/// Yields the slot's batch once per execution; `reset_state` (called by
/// `reset_plan_states` before each run) makes a fresh reader.
#[derive(Debug)]
struct SlotReader {
    slot: BatchSlot,
    done: bool,
}

impl fmt::Display for SlotReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("current micro-batch")
    }
}

impl LazyBatchGenerator for SlotReader {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(self.slot.get())
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(SlotReader {
            slot: self.slot.clone(),
            done: false,
        }))
    }
}
