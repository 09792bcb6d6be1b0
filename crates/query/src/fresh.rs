//! Records acknowledged but not yet delivered, as a query sees them.
//!
//! A [`FreshSource`] (the delivery pipeline) hands the engine, for one table, the records of
//! every stream converting into it that are still in the stream's buffer — processed,
//! partitioned and decoded exactly as their flush will write them — together with the object
//! keys of a flush that is being written but not yet committed.
//!
//! Invariant (no double counting at the moment of a flush): a record is in
//! [`FreshSnapshot::batches`] if and only if the object it will be delivered in is excluded by
//! [`FreshSnapshot::excludes`] — asked *after* the object was seen in a listing, since a flush
//! of those records may write its objects between the snapshot and the listing. The engine
//! therefore takes the snapshot *before* listing a table's files and skips every listed object
//! the snapshot excludes.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;

/// Rows of one partition that are not delivered yet.
#[derive(Debug, Clone)]
pub struct FreshBatch {
    /// One value per partition key of the table, in the table's order (empty when the table
    /// has no partition keys).
    pub partition_values: Vec<String>,
    /// The rows, with the table's data columns ([`lakehose_catalog::Table::arrow_schema`]) as
    /// they were when the snapshot was taken (the engine aligns them to its schema by name).
    pub batch: RecordBatch,
}

/// A live test for objects (`s3://bucket/key`) written for rows of a snapshot; it answers for
/// objects written after the snapshot was taken too.
pub type ExcludeFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The undelivered rows of one table at one instant.
#[derive(Clone, Default)]
pub struct FreshSnapshot {
    /// Undelivered rows.
    pub batches: Vec<FreshBatch>,
    /// Objects (`s3://bucket/key`) already written for rows that are in `batches`: a query
    /// must not read them.
    pub exclude: HashSet<String>,
    /// Objects written, or about to be, for rows in `batches` (asked when listing).
    pub exclude_fn: Option<ExcludeFn>,
}

impl FreshSnapshot {
    /// Whether the object `url` holds rows that are in `batches` (so it must not be read).
    pub fn excludes(&self, url: &str) -> bool {
        self.exclude.contains(url) || self.exclude_fn.as_ref().is_some_and(|f| f(url))
    }
}

impl std::fmt::Debug for FreshSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshSnapshot")
            .field("batches", &self.batches.len())
            .field("exclude", &self.exclude)
            .field("exclude_fn", &self.exclude_fn.is_some())
            .finish()
    }
}

/// Supplies the undelivered rows of a table.
#[async_trait]
pub trait FreshSource: Send + Sync + std::fmt::Debug {
    /// The snapshot of `database.table` (names lower-case). A table no stream converts into
    /// has an empty snapshot.
    async fn snapshot(&self, database: &str, table: &str) -> Result<FreshSnapshot, String>;
}
