//! Planning a pump's query with DataFusion, cut where the stream needs state.
//!
//! DataFusion plans the rewritten `SELECT` against a [`FeedTable`]: the source's columns (plus
//! `rowtime` and, for a windowed query, `window_start`, `window_end`, `window_time`). The
//! physical plan is then cut:
//!
//! - **Stateless** (no aggregate): the whole plan runs on each micro-batch of input rows.
//!   Only row-by-row operators are allowed (filters, projections, unnest): an operator that
//!   would need to see the whole stream (sort, limit, join, window function) is refused.
//! - **Windowed aggregate**: the plan *below* the aggregate (`pre`, row-by-row operators only)
//!   runs on each micro-batch; its rows update per-window state built from the aggregate's own
//!   DataFusion accumulators (see [`crate::pump`]); when a window fires, its groups and final
//!   aggregate values are fed to the plan *above* the aggregate (`post`: `HAVING`,
//!   projections, even `ORDER BY`/`LIMIT` within one window's result).
//!
//! Invariant: each cut plan is built once and re-executed per micro-batch or per window; its
//! leaves are [`FeedExec`]s that hand out whatever batches were put in their [`Slot`] just
//! before, so no plan holds rows between executions.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::sql::{PumpDef, ROWTIME, TableDef};
use crate::{Error, Result};

/// Where a plan's leaf takes its rows from at its next execution.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<Vec<RecordBatch>>>);

impl Slot {
    pub(crate) fn put(&self, batches: Vec<RecordBatch>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = batches;
    }

    fn take(&self) -> Vec<RecordBatch> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A table whose scan reads a [`Slot`].
#[derive(Debug)]
struct FeedTable {
    schema: SchemaRef,
    slot: Slot,
}

#[async_trait]
impl TableProvider for FeedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(FeedExec::new(
            Arc::clone(&self.schema),
            projection.cloned(),
            self.slot.clone(),
        )?))
    }
}

/// The leaf of a cut plan: yields the batches of its [`Slot`] (projected), once.
#[derive(Debug)]
pub(crate) struct FeedExec {
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    slot: Slot,
    properties: Arc<PlanProperties>,
}

impl FeedExec {
    fn new(table: SchemaRef, projection: Option<Vec<usize>>, slot: Slot) -> DfResult<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(table.project(p)?),
            None => table,
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(FeedExec {
            projection,
            schema,
            slot,
            properties,
        })
    }
}

impl DisplayAs for FeedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FeedExec")
    }
}

impl ExecutionPlan for FeedExec {
    fn name(&self) -> &str {
        "FeedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let batches = self.slot.take();
        Ok(Box::pin(MemoryStream::try_new(
            batches,
            Arc::clone(&self.schema),
            self.projection.clone(),
        )?))
    }
}

/// A planned pump.
pub(crate) enum Compiled {
    Stateless(Stage),
    Windowed(Box<WindowedPlan>),
    WindowJoin(JoinPlan),
}

/// A window join: the whole query, run once per fired window over that window's rows of
/// every source (so any operator may appear: each run sees complete inputs).
pub(crate) struct JoinPlan {
    pub stage: Stage,
    /// Each source's feed, in the order of [`PumpDef::sources`].
    pub inputs: Vec<Slot>,
}

/// A plan with its feeding slot.
pub(crate) struct Stage {
    pub plan: Arc<dyn ExecutionPlan>,
    pub input: Slot,
    /// Whether the plan holds operators that keep state between executions (a join's
    /// collected build side, a sort's top-N): they are reset before each execution
    /// (`reset_plan_states`), so every micro-batch or window starts clean.
    pub reset: bool,
}

impl Stage {
    fn new(plan: Arc<dyn ExecutionPlan>, input: Slot) -> Self {
        let reset = has_stateful_operator(&plan);
        Stage { plan, input, reset }
    }
}

/// Operators that handle each row on its own and keep nothing between executions.
const ROW_BY_ROW: &[&str] = &[
    "FeedExec",
    "CooperativeExec",
    "FilterExec",
    "ProjectionExec",
    "CoalesceBatchesExec",
    "CoalescePartitionsExec",
    "UnnestExec",
];

/// Whether a node of `plan` is not one known to keep nothing between executions.
fn has_stateful_operator(plan: &Arc<dyn ExecutionPlan>) -> bool {
    !ROW_BY_ROW.contains(&plan.name()) || plan.children().iter().any(|c| has_stateful_operator(c))
}

/// The pieces of a windowed aggregate (see the module docs).
pub(crate) struct WindowedPlan {
    /// Row-by-row part below the aggregate, fed with micro-batches.
    pub pre: Stage,
    /// Grouping expressions over `pre`'s output, with their output names.
    pub group_exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
    /// The grouping columns' schema (one field per grouping expression).
    pub group_schema: SchemaRef,
    /// Which grouping expression is the window (`window_end`, or `window_start`), and
    /// whether it is the end.
    pub window_key: usize,
    pub window_key_is_end: bool,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// Each aggregate's argument expressions over `pre`'s output.
    pub arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Each aggregate's `FILTER (WHERE ...)`.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The aggregate's output (grouping columns, then one column per aggregate).
    pub aggregate_schema: SchemaRef,
    /// The part above the aggregate, fed with one fired window's aggregate output.
    pub post: Stage,
}

/// The schema the query sees for `source`: its columns, `rowtime`, and the window columns.
pub(crate) fn query_schema(source: &TableDef, windowed: bool) -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields: Vec<Field> = source.columns.clone();
    fields.push(Field::new(ROWTIME, ts(), false));
    if windowed {
        for name in ["window_start", "window_end", "window_time"] {
            fields.push(Field::new(name, ts(), false));
        }
    }
    Arc::new(Schema::new(fields))
}

/// The session every pump plans in: one partition (the cut plans run on one thread, in
/// order), and without the rewrite of `COUNT(DISTINCT x)` into two aggregates (the inner one
/// would only deduplicate within a micro-batch).
fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192)
        .with_information_schema(false);
    // Dynamic filters are state a plan keeps between executions (a join's build-side bounds,
    // a top-N's threshold): a cut plan runs once per micro-batch or window, so none may carry
    // over.
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let rules: Vec<_> = state
        .optimizers()
        .iter()
        .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_optimizer_rules(rules)
        .build();
    SessionContext::new_with_state(state)
}

/// A table the queries may join with (`'connector' = 'catalog'`): its rows, read when the
/// application starts.
#[derive(Debug, Clone)]
pub struct ReferenceTable {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Plans `pump` reading `sources` (one, or the sides of a window join), with `references` to
/// join with.
pub(crate) async fn compile(
    pump: &PumpDef,
    sources: &[&TableDef],
    references: &[ReferenceTable],
) -> Result<(Compiled, Arc<TaskContext>)> {
    let ctx = session();
    let windowed = pump.window.is_some();
    let slots: Vec<Slot> = sources.iter().map(|_| Slot::default()).collect();
    for (source, slot) in sources.iter().zip(&slots) {
        let table = FeedTable {
            schema: query_schema(source, windowed),
            slot: slot.clone(),
        };
        ctx.register_table(
            datafusion::common::TableReference::bare(source.name.clone()),
            Arc::new(table),
        )
        .map_err(|e| plan_error(pump, e))?;
    }
    let input = slots[0].clone();
    for r in references {
        let table = datafusion::datasource::MemTable::try_new(
            Arc::clone(&r.schema),
            vec![r.batches.clone()],
        )
        .map_err(|e| plan_error(pump, e))?;
        ctx.register_table(
            datafusion::common::TableReference::bare(r.name.clone()),
            Arc::new(table),
        )
        .map_err(|e| plan_error(pump, e))?;
    }
    let df = ctx
        .sql(&pump.select)
        .await
        .map_err(|e| plan_error(pump, e))?;
    let plan = df
        .create_physical_plan()
        .await
        .map_err(|e| plan_error(pump, e))?;
    let task = ctx.task_ctx();
    if sources.len() > 1 {
        let mut stage = Stage::new(plan, Slot::default());
        stage.reset = true;
        return Ok((
            Compiled::WindowJoin(JoinPlan {
                stage,
                inputs: slots,
            }),
            task,
        ));
    }

    let Some((top, raw)) = find_aggregate(&plan) else {
        check_row_by_row(pump, &plan)?;
        return Ok((Compiled::Stateless(Stage::new(plan, input)), task));
    };
    let Some(window) = &pump.window else {
        return Err(Error::Plan(format!(
            "pump `{}`: a continuous aggregate needs a window — FROM TABLE(TUMBLE(...)), HOP, CUMULATE, or GROUP BY STEP(source.ROWTIME BY INTERVAL ...)",
            pump.name
        )));
    };
    if raw.group_expr().has_grouping_set() {
        return Err(Error::Plan(format!(
            "pump `{}`: GROUPING SETS, CUBE and ROLLUP are not supported in streaming aggregates",
            pump.name
        )));
    }
    let pre_plan = Arc::clone(raw.input());
    check_row_by_row(pump, &pre_plan)?;
    let group_exprs = raw.group_expr().expr().to_vec();
    let pre_schema = pre_plan.schema();
    let key = |name: &str| {
        group_exprs.iter().position(|(e, _)| {
            e.downcast_ref::<datafusion::physical_expr::expressions::Column>()
                .is_some_and(|c| pre_schema.field(c.index()).name() == name)
        })
    };
    let (window_key, window_key_is_end) = match (key("window_end"), key("window_start")) {
        (Some(i), _) => (i, true),
        (None, Some(i)) if window.kind != crate::window::WindowKind::Cumulate => (i, false),
        // A session fires as a whole: its rows are aggregated at once.
        _ if window.kind == crate::window::WindowKind::Session => (0, true),
        _ => {
            return Err(Error::Plan(format!(
                "pump `{}`: a windowed aggregate must GROUP BY window_start, window_end (CUMULATE: at least window_end)",
                pump.name
            )));
        }
    };
    let group_schema = Arc::new(Schema::new(
        group_exprs
            .iter()
            .map(|(e, name)| {
                Ok(Field::new(
                    name,
                    e.data_type(&pre_schema)?,
                    e.nullable(&pre_schema)?,
                ))
            })
            .collect::<DfResult<Vec<_>>>()
            .map_err(|e| plan_error(pump, e))?,
    ));
    let aggregates = raw.aggr_expr().to_vec();
    let arguments = aggregates
        .iter()
        .map(|a| {
            let mut args = a.expressions();
            args.extend(a.order_bys().iter().map(|o| Arc::clone(&o.expr)));
            args
        })
        .collect();
    let filters = raw.filter_expr().to_vec();
    let aggregate_schema = top.schema();

    // Replace the aggregate (both phases) by a feed of one window's results.
    let results = Slot::default();
    let feed: Arc<dyn ExecutionPlan> = Arc::new(
        FeedExec::new(Arc::clone(&aggregate_schema), None, results.clone())
            .map_err(|e| plan_error(pump, e))?,
    );
    let top_ptr = Arc::as_ptr(&top) as *const () as usize;
    let post_plan = plan
        .transform_down(|node| {
            if Arc::as_ptr(&node) as *const () as usize == top_ptr {
                Ok(Transformed::yes(Arc::clone(&feed)))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map_err(|e| plan_error(pump, e))?
        .data;
    Ok((
        Compiled::Windowed(Box::new(WindowedPlan {
            pre: Stage::new(pre_plan, input),
            group_exprs,
            group_schema,
            window_key,
            window_key_is_end,
            aggregates,
            arguments,
            filters,
            aggregate_schema,
            post: Stage::new(post_plan, results),
        })),
        task,
    ))
}

fn plan_error(pump: &PumpDef, e: DataFusionError) -> Error {
    Error::Plan(format!("pump `{}`: {}", pump.name, e.strip_backtrace()))
}

/// The topmost aggregate and the one that reads raw rows (the same node, or the `Partial`
/// below a `Final`).
fn find_aggregate(
    plan: &Arc<dyn ExecutionPlan>,
) -> Option<(Arc<dyn ExecutionPlan>, AggregateExec)> {
    let mut stack = vec![Arc::clone(plan)];
    while let Some(node) = stack.pop() {
        if let Some(agg) = node.downcast_ref::<AggregateExec>() {
            let raw = match agg.mode() {
                AggregateMode::Final | AggregateMode::FinalPartitioned => {
                    let mut below = Arc::clone(agg.input());
                    loop {
                        if let Some(p) = below.downcast_ref::<AggregateExec>() {
                            break p.clone();
                        }
                        let children = below.children();
                        let [only] = children.as_slice() else {
                            return None;
                        };
                        below = Arc::clone(only);
                    }
                }
                _ => agg.clone(),
            };
            return Some((node, raw));
        }
        stack.extend(node.children().into_iter().cloned());
    }
    None
}

/// Refuses operators that would need the whole stream in a plan that runs per micro-batch.
/// A subtree that does not read the stream (a reference table) may hold anything; a join
/// between the stream and such a subtree is allowed when it only keeps or drops stream rows
/// (inner, or outer/semi/anti on the stream's side): each micro-batch then gives exactly its
/// share of the result.
fn check_row_by_row(pump: &PumpDef, plan: &Arc<dyn ExecutionPlan>) -> Result<()> {
    use datafusion::common::JoinType;
    use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec};
    let refuse = |what: String| {
        Err(Error::Plan(format!(
            "pump `{}`: {what} is not supported over a stream",
            pump.name
        )))
    };
    let mut stack = vec![Arc::clone(plan)];
    while let Some(node) = stack.pop() {
        if !reads_stream(&node) {
            continue;
        }
        let name = node.name();
        let join_type = node
            .downcast_ref::<HashJoinExec>()
            .map(|j| *j.join_type())
            .or_else(|| {
                node.downcast_ref::<NestedLoopJoinExec>()
                    .map(|j| *j.join_type())
            });
        if let Some(join_type) = join_type {
            let children = node.children();
            let streams: Vec<bool> = children.iter().map(|c| reads_stream(c)).collect();
            let allowed = match streams.as_slice() {
                [true, false] => matches!(
                    join_type,
                    JoinType::Inner | JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti
                ),
                [false, true] => matches!(
                    join_type,
                    JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti
                ),
                _ => false,
            };
            if !allowed {
                return refuse(format!(
                    "a {join_type} join other than between the stream and a reference table, keeping stream rows,"
                ));
            }
            stack.extend(children.into_iter().cloned());
            continue;
        }
        if !ROW_BY_ROW.contains(&name) {
            let what = match name {
                "AggregateExec" => "a nested aggregate".to_string(),
                n if n.contains("Join") => "a join".to_string(),
                n if n.contains("Sort") => "ORDER BY outside a windowed aggregate".to_string(),
                n if n.contains("Limit") => "LIMIT outside a windowed aggregate".to_string(),
                n if n.contains("Window") => "an OVER (...) window function".to_string(),
                n => format!("the operator {n}"),
            };
            return refuse(what);
        }
        stack.extend(node.children().into_iter().cloned());
    }
    Ok(())
}

/// Whether `plan` reads the stream (has a [`FeedExec`] leaf).
fn reads_stream(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<FeedExec>().is_some() || plan.children().iter().any(|c| reads_stream(c))
}

/// The schema of the rows a pump emits.
pub(crate) fn output_schema(compiled: &Compiled) -> SchemaRef {
    match compiled {
        Compiled::Stateless(s) => s.plan.schema(),
        Compiled::Windowed(w) => w.post.plan.schema(),
        Compiled::WindowJoin(j) => j.stage.plan.schema(),
    }
}
