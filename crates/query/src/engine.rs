//! [`QueryEngine`]: plans and runs one SQL statement over the catalog.
//!
//! A statement is classified by its first keywords ([`crate::command::kind`]): Athena DDL goes
//! to [`crate::ddl`], `SHOW`/`DESCRIBE` are answered from the catalog, everything else
//! (`SELECT`, `WITH`, `VALUES`, `EXPLAIN`) is planned and run by DataFusion in a session of its
//! own, cloned from a template built once per engine (functions registered once, one shared
//! runtime: object store registry and Parquet metadata cache).
//!
//! Invariants: only read-only plans run (DataFusion's own DDL/DML/`SET` are refused); results
//! are streamed and dropping the future cancels the statement; `row_limit` stops reading as
//! soon as one row beyond it has been seen; `bytes_scanned` is measured on the plan that ran;
//! results never contain view types (`Utf8View`/`BinaryView`, which scans use internally):
//! strings are `Utf8` and binaries `Binary`, at any nesting depth.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SQLOptions, SessionState};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use lakehose_catalog::{CatalogError, CatalogStore};

use crate::adapt::{result_batch, result_schema};
use crate::catalog::{CATALOG_NAME, GlueCatalogList, StatementContext};
use crate::command::{self, Kind};
use crate::errors::{from_catalog, from_datafusion};
use crate::lexer::end_position;
use crate::stores::BucketRegistry;
use crate::{BucketStores, FreshSource, QueryError, Result};

/// Per-statement settings.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The database unqualified table names resolve in (Athena's `QueryExecutionContext`).
    pub database: String,
    /// Whether acknowledged, not yet delivered records are included (default on).
    pub include_fresh: bool,
    /// Stop after this many rows (`truncated` is then set).
    pub row_limit: Option<usize>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            database: "default".into(),
            include_fresh: true,
            row_limit: None,
        }
    }
}

/// What a statement returned.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// More rows existed beyond `row_limit`.
    pub truncated: bool,
    pub stats: QueryStats,
}

/// Figures of one statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    pub rows: u64,
    /// Bytes read from files (Athena's `DataScannedInBytes`).
    pub bytes_scanned: u64,
    pub elapsed: Duration,
}

/// Runs SQL over the catalog's tables.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    catalog: Arc<dyn CatalogStore>,
    stores: Arc<dyn BucketStores>,
    fresh: Option<Arc<dyn FreshSource>>,
    shared: Arc<Shared>,
}

/// What every statement of an engine shares.
struct Shared {
    registry: Arc<BucketRegistry>,
    /// The session every statement clones (built on first use).
    template: OnceLock<SessionState>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl QueryEngine {
    pub fn new(catalog: Arc<dyn CatalogStore>, stores: Arc<dyn BucketStores>) -> Self {
        QueryEngine {
            shared: Arc::new(Shared {
                registry: Arc::new(BucketRegistry::new(Arc::clone(&stores))),
                template: OnceLock::new(),
            }),
            catalog,
            stores,
            fresh: None,
        }
    }

    /// Queries also see the records `fresh` holds.
    pub fn with_fresh(mut self, fresh: Arc<dyn FreshSource>) -> Self {
        self.fresh = Some(fresh);
        self
    }

    /// The catalog queries read.
    pub fn catalog(&self) -> &Arc<dyn CatalogStore> {
        &self.catalog
    }

    /// The bucket stores objects are read from.
    pub fn stores(&self) -> &Arc<dyn BucketStores> {
        &self.stores
    }

    /// Runs one statement (a query, `EXPLAIN`, `SHOW ...`, `DESCRIBE` or Athena DDL).
    /// Dropping the future cancels it.
    pub async fn execute(&self, sql: &str, options: &QueryOptions) -> Result<QueryOutput> {
        let started = Instant::now();
        let database = options.database.to_lowercase();
        let answered = match command::kind(sql) {
            Kind::Ddl => Some(
                crate::ddl::execute(sql, self.catalog.as_ref(), &self.shared.registry, &database)
                    .await?,
            ),
            Kind::Show => Some(command::show(sql, self.catalog.as_ref(), &database).await?),
            Kind::Describe => Some(command::describe(sql, self.catalog.as_ref(), &database).await?),
            Kind::Explain | Kind::Query => None,
        };
        if let Some((schema, batches)) = answered {
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            return Ok(QueryOutput {
                schema,
                batches,
                truncated: false,
                stats: QueryStats {
                    rows,
                    bytes_scanned: 0,
                    elapsed: started.elapsed(),
                },
            });
        }
        let mut out = self.query(sql, options, &database).await?;
        out.stats.elapsed = started.elapsed();
        Ok(out)
    }

    /// Athena's `StatementType` of `sql`: `DDL`, `DML` or `UTILITY`.
    pub fn statement_type(sql: &str) -> &'static str {
        match command::kind(sql) {
            Kind::Ddl => "DDL",
            Kind::Show | Kind::Describe | Kind::Explain => "UTILITY",
            Kind::Query => "DML",
        }
    }

    /// The session template: configuration, functions, catalog and runtime.
    fn template(&self) -> Result<&SessionState> {
        if let Some(t) = self.shared.template.get() {
            return Ok(t);
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut config = SessionConfig::new()
            .with_target_partitions(cores)
            .with_default_catalog_and_schema(CATALOG_NAME, "default")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .with_parquet_pruning(true);
        {
            let opts = config.options_mut();
            opts.execution.parquet.enable_page_index = true;
            opts.execution.parquet.pushdown_filters = false;
            opts.execution.parquet.schema_force_view_types = false;
            opts.sql_parser.collect_spans = true;
            opts.sql_parser.map_string_types_to_utf8view = false;
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&self.shared.registry) as _)
            .build_arc()
            .map_err(|e| QueryError::Internal(format!("starting the query runtime: {e}")))?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_catalog_list(Arc::new(GlueCatalogList::new(Arc::clone(&self.catalog))))
            .build();
        Ok(self.shared.template.get_or_init(|| state))
    }

    /// A session for one statement.
    fn session(&self, options: &QueryOptions, database: &str) -> Result<SessionState> {
        let mut state = self.template()?.clone();
        let config = state.config_mut();
        config.options_mut().catalog.default_schema = database.to_string();
        config.set_extension(Arc::new(StatementContext {
            fresh: if options.include_fresh {
                self.fresh.clone()
            } else {
                None
            },
        }));
        Ok(state)
    }

    async fn query(
        &self,
        sql: &str,
        options: &QueryOptions,
        database: &str,
    ) -> Result<QueryOutput> {
        let state = self.session(options, database)?;
        let dialect = state.config().options().sql_parser.dialect;
        let logical = async {
            let statement = state.sql_to_statement(sql, &dialect)?;
            state.statement_to_plan(statement).await
        }
        .await;
        let logical = match logical {
            Ok(p) => p,
            Err(e) => return Err(self.error(e, sql).await),
        };
        // Only read-only plans run: DataFusion's own DDL, DML and SET are refused.
        if let Err(e) = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&logical)
        {
            let what = e.message();
            let message = if what.contains("DML") {
                "Not supported: INSERT, UPDATE, DELETE and MERGE (tables are read-only)"
            } else if what.contains("DDL") {
                "Not supported: this DDL statement (supported: CREATE EXTERNAL TABLE, \
                 CREATE/DROP DATABASE, DROP TABLE, ALTER TABLE ADD/DROP PARTITION, \
                 MSCK REPAIR TABLE)"
            } else {
                "Not supported: this statement"
            };
            return Err(QueryError::user(message));
        }
        // Late materialisation (decode the other columns only for rows that pass the filter)
        // pays off for point lookups and hurts moderately selective range filters, so it is
        // enabled per statement, when a filter compares a column with a constant for equality.
        let mut state = state;
        if has_equality_filter(&logical) {
            state
                .config_mut()
                .options_mut()
                .execution
                .parquet
                .pushdown_filters = true;
        }
        let plan = match state.create_physical_plan(&logical).await {
            Ok(p) => p,
            Err(e) => return Err(self.error(e, sql).await),
        };
        let mut stream = match execute_stream(Arc::clone(&plan), state.task_ctx()) {
            Ok(s) => s,
            Err(e) => return Err(self.error(e, sql).await),
        };
        let schema = result_schema(&stream.schema());
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(next) = stream.next().await {
            let batch = match next.and_then(|b| Ok(result_batch(b)?)) {
                Ok(b) => b,
                Err(e) => return Err(self.error(e, sql).await),
            };
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            if let Some(limit) = options.row_limit {
                if rows >= limit {
                    truncated = true;
                    break;
                }
                if rows + n > limit {
                    batches.push(batch.slice(0, limit - rows));
                    rows = limit;
                    truncated = true;
                    break;
                }
            }
            rows += n;
            batches.push(batch);
        }
        drop(stream);
        Ok(QueryOutput {
            schema,
            batches,
            truncated,
            stats: QueryStats {
                rows: rows as u64,
                bytes_scanned: bytes_scanned(&plan),
                elapsed: Duration::ZERO,
            },
        })
    }

    /// A DataFusion error as the user should see it (checking which part of a missing
    /// table's name does not exist).
    async fn error(&self, e: DataFusionError, sql: &str) -> QueryError {
        let classified = from_datafusion(&e);
        let Some(name) = classified.missing_table else {
            return match classified.error {
                // sqlparser has no position for "found: EOF": it is the end of the text.
                QueryError::User {
                    message,
                    position: None,
                } if message.starts_with("Syntax error") && message.ends_with("found: EOF") => {
                    QueryError::User {
                        message,
                        position: Some(end_position(sql)),
                    }
                }
                other => other,
            };
        };
        let position = match &classified.error {
            QueryError::User { position, .. } => *position,
            _ => None,
        };
        let parts: Vec<&str> = name.splitn(3, '.').collect();
        let message = match parts.as_slice() {
            [catalog, _, _] if !catalog.eq_ignore_ascii_case(CATALOG_NAME) => {
                format!("Catalog '{catalog}' does not exist")
            }
            [_, db, table] => match self.catalog.get_database(db).await {
                Err(CatalogError::EntityNotFound(_)) => {
                    format!("Database '{db}' does not exist")
                }
                Err(e) => return from_catalog(e),
                Ok(_) => format!("Table '{db}.{table}' does not exist"),
            },
            _ => return classified.error,
        };
        QueryError::User { message, position }
    }
}

/// Whether a `WHERE` of `plan` has a conjunct `column = constant` or `column IN (constants)`.
fn has_equality_filter(plan: &LogicalPlan) -> bool {
    fn is_column(e: &Expr) -> bool {
        match e {
            Expr::Column(_) => true,
            Expr::Cast(c) => is_column(&c.expr),
            Expr::TryCast(c) => is_column(&c.expr),
            _ => false,
        }
    }
    fn equality(e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(b) if b.op == Operator::And => equality(&b.left) || equality(&b.right),
            Expr::BinaryExpr(b) if b.op == Operator::Eq => {
                (is_column(&b.left) && matches!(*b.right, Expr::Literal(..)))
                    || (is_column(&b.right) && matches!(*b.left, Expr::Literal(..)))
            }
            Expr::InList(l) => {
                !l.negated
                    && is_column(&l.expr)
                    && l.list.iter().all(|v| matches!(v, Expr::Literal(..)))
            }
            _ => false,
        }
    }
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::Filter(f) = node
            && equality(&f.predicate)
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Bytes read by a plan that ran: the `bytes_scanned` metrics (Parquet and ORC, which fetch
/// ranges) plus the sizes of the other files its scans read.
fn bytes_scanned(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut total = plan
        .metrics()
        .and_then(|m| m.sum_by_name("bytes_scanned"))
        .map_or(0, |v| v.as_usize() as u64);
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        let source: &dyn Any = exec.data_source().as_ref();
        if let Some(config) = source.downcast_ref::<FileScanConfig>()
            && !matches!(config.file_source().file_type(), "parquet" | "orc")
        {
            let mut seen = HashSet::new();
            for group in &config.file_groups {
                for file in group.iter() {
                    if seen.insert(file.object_meta.location.clone()) {
                        total += file.object_meta.size;
                    }
                }
            }
        }
    }
    for child in plan.children() {
        total += bytes_scanned(child);
    }
    total
}
