//! [`QueryEngine`]: plans and runs one SQL statement over the catalog.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use lakehose_catalog::CatalogStore;

use crate::{BucketStores, FreshSource, Result};

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
}

impl QueryEngine {
    pub fn new(catalog: Arc<dyn CatalogStore>, stores: Arc<dyn BucketStores>) -> Self {
        QueryEngine {
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

    /// Runs one statement (a query, `EXPLAIN`, `SHOW ...`, `DESCRIBE` or Athena DDL).
    /// Dropping the future cancels it.
    pub async fn execute(&self, sql: &str, options: &QueryOptions) -> Result<QueryOutput> {
        // Minimal first cut (no catalog tables yet): plain DataFusion.
        let _ = (&self.stores, &self.fresh);
        let started = std::time::Instant::now();
        let ctx = datafusion::prelude::SessionContext::new();
        let df = ctx
            .sql(sql)
            .await
            .map_err(|e| crate::QueryError::user(e.to_string()))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| crate::QueryError::Internal(e.to_string()))?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let _ = options;
        Ok(QueryOutput {
            schema,
            batches,
            truncated: false,
            stats: QueryStats {
                rows,
                bytes_scanned: 0,
                elapsed: started.elapsed(),
            },
        })
    }

    /// Athena's `StatementType` of `sql`: `DDL`, `DML` or `UTILITY`.
    pub fn statement_type(sql: &str) -> &'static str {
        let _ = sql;
        "DML"
    }
}
