//! SQL over the lake: Athena's job, on DataFusion.
//!
//! - [`engine`] — [`QueryEngine`]: one DataFusion session per statement (cloned from a
//!   template built once per engine), whose only catalog, `awsdatacatalog`
//!   ([`CATALOG_NAME`]), is the Glue catalog ([`lakehose_catalog::CatalogStore`]): its schemas
//!   are the databases, looked up when a statement names them. `db.t`,
//!   `awsdatacatalog.db.t` and bare `t` (in [`QueryOptions::database`]) resolve. Partitions
//!   come from the catalog (as Athena's do) and are pruned by the query's filters on partition
//!   columns; Parquet, ORC, newline-delimited JSON and delimited-text tables are read from the
//!   buckets ([`BucketStores`], resolved lazily for `s3://BUCKET` URLs).
//! - [`fresh`] — records acknowledged but not yet delivered ([`FreshSource`]), unioned with the
//!   delivered files without double counting.
//! - [`ddl`] — Athena DDL over the catalog (`CREATE/DROP DATABASE`, `CREATE EXTERNAL TABLE`,
//!   `DROP TABLE`, `MSCK REPAIR TABLE`, `ALTER TABLE ... ADD/DROP PARTITION`,
//!   `ADD COLUMNS`, `SET TBLPROPERTIES`, `SET LOCATION`); `SHOW DATABASES|SCHEMAS|TABLES|
//!   PARTITIONS|COLUMNS|TBLPROPERTIES` and `DESCRIBE` are answered from the catalog too.
//! - [`athena`] — the `AmazonAthena.<Op>` JSON API on the shared endpoint.
//! - [`http`] — `POST /v1/query` (JSON or Arrow IPC) and cancellation, for the console and CLI.
//!
//! Invariants: a statement sees one snapshot of each table it reads (the catalog's current
//! version, its partitions, its files and the fresh records, taken together when the table is
//! scanned); errors a user can fix are [`QueryError::User`] with the position in the SQL when
//! one is known, never a stack trace.

mod adapt;
pub mod athena;
mod catalog;
mod command;
pub mod ddl;
pub mod engine;
mod errors;
mod format;
pub mod fresh;
pub mod http;
mod lexer;
mod orc;
mod stores;
mod table;
mod text;

pub use catalog::CATALOG_NAME;
pub use engine::{QueryEngine, QueryOptions, QueryOutput, QueryStats};
pub use fresh::{FreshBatch, FreshSnapshot, FreshSource};

use std::sync::Arc;

use object_store::ObjectStore;

/// Resolves a bucket name (the `BUCKET` of `s3://BUCKET/key`) to the object store it lives in.
pub trait BucketStores: Send + Sync + std::fmt::Debug {
    /// The store of `bucket`; keys in it are the object keys (no bucket prefix).
    fn store(&self, bucket: &str) -> std::result::Result<Arc<dyn ObjectStore>, String>;
}

/// Where in the SQL text an error is (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// Why a statement failed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The statement is wrong (syntax, unknown table or column, bad DDL): the user can fix it.
    #[error("{message}")]
    User {
        message: String,
        position: Option<Position>,
    },
    /// The statement was cancelled.
    #[error("query cancelled")]
    Cancelled,
    /// Reading the data or the catalog failed.
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// A user error without a known position.
    pub fn user(message: impl Into<String>) -> Self {
        QueryError::User {
            message: message.into(),
            position: None,
        }
    }

    /// The message with its position, as a CLI shows it:
    /// `line 1, column 8: table 'default.nope' not found`.
    pub fn display_with_position(&self) -> String {
        match self {
            QueryError::User {
                message,
                position: Some(p),
            } => format!("line {}, column {}: {message}", p.line, p.column),
            other => other.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
