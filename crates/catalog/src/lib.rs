//! The Glue-compatible catalog: databases, versioned tables and partitions, the Hive type
//! system mapped to Arrow, and the `AWSGlue.*` JSON API answered on the Firehose endpoint.
//!
//! - [`model`] — [`Database`], [`Table`], [`Column`], [`StorageDescriptor`], [`Partition`]:
//!   one set of types, serialised with Glue's member names, used for storage and the API.
//! - [`hive`] — Hive column types (`int`, `decimal(10,2)`, `array<struct<a:int>>`, ...) parsed
//!   and mapped to Arrow ([`hive_to_arrow`], [`arrow_to_hive`]).
//! - [`store`] — the [`CatalogStore`] trait (what the pipeline, the query engine and the API
//!   use) and the normalisation/validation every implementation applies.
//! - [`file`](mod@file) — [`FileCatalog`], the durable single-node store under `DATA_DIR/catalog/`.
//! - [`glue`] — [`GlueApi`], the AWS JSON 1.1 `AWSGlue.<Op>` operations over any store.
//! - [`expr`] — the `GetPartitions` `Expression` filter language.
//!
//! Invariants every store keeps (enforced by [`store::prepare_table`] and friends):
//! database and table names are lower-cased, 1..=255 characters of Glue's single-line pattern;
//! every column type of a stored table parses as a Hive type; partition keys are primitive;
//! a table's `VersionId` is a decimal string starting at `"0"` and incremented by every update,
//! with earlier versions kept; a partition has exactly one value per partition key.

pub mod expr;
pub mod file;
pub mod glue;
pub mod hive;
pub mod model;
pub mod store;

pub use file::FileCatalog;
pub use glue::GlueApi;
pub use hive::{HiveType, arrow_to_hive, hive_to_arrow};
pub use model::{Column, Database, Partition, SerDeInfo, StorageDescriptor, Table};
pub use store::{CatalogStore, UpdateTableOptions};

use lakehose_api::{ApiError, ErrorKind};

/// The catalog id (AWS account) every entity reports as its `CatalogId`.
pub const CATALOG_ID: &str = lakehose_api::stream::ACCOUNT_ID;

/// A catalog failure; the message is what a Glue client is shown.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    /// The database, table, version or partition does not exist (`EntityNotFoundException`).
    #[error("{0}")]
    EntityNotFound(String),
    /// The entity to create exists already (`AlreadyExistsException`).
    #[error("{0}")]
    AlreadyExists(String),
    /// A name, type, value or parameter is invalid (`InvalidInputException`).
    #[error("{0}")]
    InvalidInput(String),
    /// An update named a `VersionId` that is no longer current
    /// (`ConcurrentModificationException`).
    #[error("{0}")]
    ConcurrentModification(String),
    /// The storage failed (disk, database); shown to API clients as an internal error.
    #[error("catalog storage failed: {0}")]
    Io(String),
}

impl CatalogError {
    /// The AWS error code (`__type`) of this error, as used in `ErrorDetail.ErrorCode`.
    pub fn error_code(&self) -> &'static str {
        self.kind().aws_type()
    }

    /// The API error kind this maps to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::EntityNotFound(_) => ErrorKind::EntityNotFound,
            CatalogError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            CatalogError::InvalidInput(_) => ErrorKind::InvalidInput,
            CatalogError::ConcurrentModification(_) => ErrorKind::ConcurrentModification,
            CatalogError::Io(_) => ErrorKind::Internal,
        }
    }

    /// The message shown to a client (generic for storage failures).
    pub fn message(&self) -> String {
        match self {
            CatalogError::Io(_) => "An internal error occurred. Try again later.".to_string(),
            CatalogError::EntityNotFound(m)
            | CatalogError::AlreadyExists(m)
            | CatalogError::InvalidInput(m)
            | CatalogError::ConcurrentModification(m) => m.clone(),
        }
    }

    pub(crate) fn io(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        CatalogError::Io(format!("{context}: {e}"))
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Io(cause) => ApiError::internal(cause),
            other => ApiError::new(other.kind(), other.message()),
        }
    }
}

/// `Result` with [`CatalogError`].
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Seconds since the Unix epoch with millisecond precision: Glue's timestamp encoding.
pub(crate) fn now_epoch_seconds() -> f64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_glue_codes() {
        let cases = [
            (
                CatalogError::EntityNotFound("x".into()),
                "EntityNotFoundException",
            ),
            (
                CatalogError::AlreadyExists("x".into()),
                "AlreadyExistsException",
            ),
            (
                CatalogError::InvalidInput("x".into()),
                "InvalidInputException",
            ),
            (
                CatalogError::ConcurrentModification("x".into()),
                "ConcurrentModificationException",
            ),
            (CatalogError::Io("disk".into()), "InternalFailure"),
        ];
        for (e, code) in cases {
            assert_eq!(e.error_code(), code);
            let api: ApiError = e.clone().into();
            assert_eq!(api.body()["__type"], code);
        }
        let api: ApiError = CatalogError::Io("secret path".into()).into();
        assert!(!api.message.contains("secret"));
    }
}
