//! The storage seam: [`CatalogStore`] is what the Glue API, the delivery pipeline (which
//! registers tables and partitions directly, without HTTP) and the query engine need from a
//! catalog. [`crate::FileCatalog`] implements it on the local data dir; a shared PostgreSQL
//! catalog for multi-node deployments is a second implementation of the same trait.
//!
//! Every implementation must run its inputs through [`prepare_database`], [`prepare_table`]
//! and [`prepare_partition`] so the crate's invariants (see the crate docs) hold whatever the
//! store: names lower-cased and checked, column types parsed, partition keys primitive,
//! server-managed members (`DatabaseName`, `CatalogId`, ...) overwritten. Implementations own
//! `CreateTime`/`UpdateTime`/`CreationTime` and `VersionId`.
//!
//! Contract for every method: an error leaves the catalog unchanged, except the batch partition
//! methods, which apply each entry independently and report per-entry failures in their result.
//! A method that returned `Ok` has made its change durable.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use serde_json::json;

use crate::hive::HiveType;
use crate::model::{Column, Database, Partition, StorageDescriptor, Table};
use crate::{CATALOG_ID, CatalogError, Result};

/// Options of [`CatalogStore::update_table_with`] (UpdateTable's `VersionId` and `SkipArchive`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateTableOptions {
    /// Only update if this is the current `VersionId` (else `ConcurrentModification`).
    pub expected_version: Option<String>,
    /// Replace the current version instead of keeping it in the version history (the new
    /// version still gets the next `VersionId`).
    pub skip_archive: bool,
}

/// A partition filter for [`CatalogStore::scan_partitions`].
pub type PartitionFilter<'a> = &'a (dyn Fn(&Partition) -> bool + Send + Sync);

/// Per-entry failures of a batch partition operation: the entry's values and why it failed.
pub type PartitionErrors = Vec<(Vec<String>, CatalogError)>;

/// Durable storage of databases, versioned tables and partitions.
///
/// Names passed in are normalised (lower-cased) by the implementation, so `"Sales"` and
/// `"sales"` are the same database. Listings are sorted by name (partitions by their values).
#[async_trait]
pub trait CatalogStore: Send + Sync + fmt::Debug {
    /// Creates a database; `AlreadyExists` if the name is taken.
    async fn create_database(&self, db: Database) -> Result<()>;
    /// The database `name`; `EntityNotFound` if absent.
    async fn get_database(&self, name: &str) -> Result<Database>;
    /// Every database, sorted by name.
    async fn list_databases(&self) -> Result<Vec<Database>>;
    /// Replaces database `name`'s definition (keeping its `CreateTime`); renames are refused.
    async fn update_database(&self, name: &str, db: Database) -> Result<()>;
    /// Deletes a database with all its tables, versions and partitions.
    async fn delete_database(&self, name: &str) -> Result<()>;

    /// Creates a table at `VersionId` `"0"`; `EntityNotFound` without the database,
    /// `AlreadyExists` if the name is taken.
    async fn create_table(&self, db: &str, table: Table) -> Result<()>;
    /// The current version of a table.
    async fn get_table(&self, db: &str, name: &str) -> Result<Table>;
    /// The current version of every table of `db`, sorted by name.
    async fn list_tables(&self, db: &str) -> Result<Vec<Table>>;
    /// Replaces table `table.name` with a new version (previous `VersionId` + 1, same
    /// `CreateTime`, new `UpdateTime`), keeping the old version; returns the new version.
    async fn update_table(&self, db: &str, table: Table) -> Result<Table> {
        self.update_table_with(db, table, UpdateTableOptions::default())
            .await
    }
    /// [`CatalogStore::update_table`] with UpdateTable's options.
    async fn update_table_with(
        &self,
        db: &str,
        table: Table,
        options: UpdateTableOptions,
    ) -> Result<Table>;
    /// Deletes a table with its versions and partitions.
    async fn delete_table(&self, db: &str, name: &str) -> Result<()>;
    /// One kept version of a table; `EntityNotFound` if it does not exist, `InvalidInput` if
    /// `version` is not a number.
    async fn get_table_version(&self, db: &str, name: &str, version: &str) -> Result<Table>;
    /// Every kept version of a table, oldest first.
    async fn list_table_versions(&self, db: &str, name: &str) -> Result<Vec<Table>>;

    /// Creates partitions; the table must exist (else the whole call fails). Each entry
    /// succeeds or is reported (`AlreadyExists`, `InvalidInput`) on its own.
    async fn create_partitions(
        &self,
        db: &str,
        table: &str,
        parts: Vec<Partition>,
    ) -> Result<PartitionErrors>;
    /// The partition with exactly these values.
    async fn get_partition(&self, db: &str, table: &str, values: &[String]) -> Result<Partition>;
    /// Every partition of a table, sorted by values.
    async fn list_partitions(&self, db: &str, table: &str) -> Result<Vec<Partition>>;
    /// Up to `limit` partitions sorted by values, after `after` (exclusive), that pass
    /// `filter`. Stores with many partitions should override this with a range scan.
    async fn scan_partitions(
        &self,
        db: &str,
        table: &str,
        after: Option<&[String]>,
        limit: usize,
        filter: PartitionFilter<'_>,
    ) -> Result<Vec<Partition>> {
        Ok(self
            .list_partitions(db, table)
            .await?
            .into_iter()
            .filter(|p| after.is_none_or(|a| p.values.as_slice() > a))
            .filter(|p| filter(p))
            .take(limit)
            .collect())
    }
    /// Replaces the partition `values` with `part` (whose values may differ: a move), keeping
    /// its `CreationTime`.
    async fn update_partition(
        &self,
        db: &str,
        table: &str,
        values: &[String],
        part: Partition,
    ) -> Result<()>;
    /// Deletes partitions; each missing one is reported (`EntityNotFound`) on its own.
    async fn delete_partitions(
        &self,
        db: &str,
        table: &str,
        values: Vec<Vec<String>>,
    ) -> Result<PartitionErrors>;
    /// Registers a partition if absent (idempotent; used by delivery on every converted
    /// object). An existing partition is left as it is.
    async fn ensure_partition(&self, db: &str, table: &str, part: Partition) -> Result<()>;
}

// ---- messages, worded as Glue words them ------------------------------------------------------

/// `EntityNotFound` for a database.
pub fn database_not_found(name: &str) -> CatalogError {
    CatalogError::EntityNotFound(format!("Database {name} not found."))
}

/// `EntityNotFound` for a table.
pub fn table_not_found(name: &str) -> CatalogError {
    CatalogError::EntityNotFound(format!("Table {name} not found."))
}

/// `EntityNotFound` for a table version.
pub fn version_not_found(name: &str, version: &str) -> CatalogError {
    CatalogError::EntityNotFound(format!("Version {version} of table {name} not found."))
}

/// `EntityNotFound` for a partition.
pub fn partition_not_found() -> CatalogError {
    CatalogError::EntityNotFound("Cannot find partition.".to_string())
}

/// `AlreadyExists` for a database.
pub fn database_exists() -> CatalogError {
    CatalogError::AlreadyExists("Database already exists.".to_string())
}

/// `AlreadyExists` for a table.
pub fn table_exists() -> CatalogError {
    CatalogError::AlreadyExists("Table already exists.".to_string())
}

/// `AlreadyExists` for a partition.
pub fn partition_exists() -> CatalogError {
    CatalogError::AlreadyExists("Partition already exists.".to_string())
}

/// `ConcurrentModification` for an UpdateTable whose `VersionId` is stale.
pub fn version_mismatch(name: &str, expected: &str, current: &str) -> CatalogError {
    CatalogError::ConcurrentModification(format!(
        "Update table failed due to concurrent modifications: table {name} is at version \
         {current}, not {expected}."
    ))
}

/// An AWS-style constraint violation on the member at `path`.
pub fn constraint(value: &str, path: &str, rule: &str) -> CatalogError {
    let shown: String = value.chars().take(300).collect();
    CatalogError::InvalidInput(format!(
        "1 validation error detected: Value '{shown}' at '{path}' failed to satisfy constraint: \
         Member must {rule}"
    ))
}

/// The regular expression of Glue's single-line strings, as its messages show it.
pub const SINGLE_LINE_PATTERN: &str = r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*";
/// The regular expression of Glue's multi-line strings.
pub const MULTI_LINE_PATTERN: &str =
    r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*";

fn in_pattern(c: char, multi_line: bool) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        || c == '\t'
        || (multi_line && (c == '\r' || c == '\n'))
}

/// Checks a string member: byte length within `min..=max` and the (single- or multi-line)
/// character pattern.
pub fn check_string(
    value: &str,
    path: &str,
    min: usize,
    max: usize,
    multi_line: bool,
) -> Result<()> {
    if value.len() < min {
        return Err(constraint(
            value,
            path,
            &format!("have length greater than or equal to {min}"),
        ));
    }
    if value.len() > max {
        return Err(constraint(
            value,
            path,
            &format!("have length less than or equal to {max}"),
        ));
    }
    if !value.chars().all(|c| in_pattern(c, multi_line)) {
        let pattern = if multi_line {
            MULTI_LINE_PATTERN
        } else {
            SINGLE_LINE_PATTERN
        };
        return Err(constraint(
            value,
            path,
            &format!("satisfy regular expression pattern: {pattern}"),
        ));
    }
    Ok(())
}

/// A database or table name as Glue stores it: checked (1..=255 bytes, single line) and
/// lower-cased.
pub fn normalize_name(name: &str, path: &str) -> Result<String> {
    check_string(name, path, 1, 255, false)?;
    Ok(name.to_lowercase())
}

fn check_opt(
    value: &Option<String>,
    path: &str,
    min: usize,
    max: usize,
    multi: bool,
) -> Result<()> {
    match value {
        Some(v) => check_string(v, path, min, max, multi),
        None => Ok(()),
    }
}

/// Glue's default `CreateTableDefaultPermissions` of a new database.
pub fn default_permissions() -> serde_json::Value {
    json!([{
        "Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"},
        "Permissions": ["ALL"]
    }])
}

/// Normalises and validates a database definition (`DatabaseInput`); sets `CatalogId` and the
/// default permissions. `CreateTime` is left for the store.
pub fn prepare_database(mut db: Database) -> Result<Database> {
    db.name = normalize_name(&db.name, "databaseInput.name")?;
    check_opt(&db.description, "databaseInput.description", 0, 2048, true)?;
    check_opt(&db.location_uri, "databaseInput.locationUri", 1, 1024, true)?;
    check_parameters(&db.parameters, "databaseInput.parameters")?;
    if db.create_table_default_permissions.is_none() {
        db.create_table_default_permissions = Some(default_permissions());
    }
    db.catalog_id = Some(CATALOG_ID.to_string());
    Ok(db)
}

fn check_parameters(params: &crate::model::Parameters, path: &str) -> Result<()> {
    for (k, v) in params {
        check_string(k, &format!("{path}.key"), 1, 255, false)?;
        if v.len() > 512_000 {
            return Err(constraint(
                k,
                &format!("{path}.value"),
                "have length less than or equal to 512000",
            ));
        }
    }
    Ok(())
}

/// Checks columns: names 1..=255 bytes, unique (case-insensitively) within `seen`, types
/// parse; with `primitive`, types must be primitive (partition keys).
fn check_columns(
    columns: &[Column],
    path: &str,
    seen: &mut HashSet<String>,
    primitive: bool,
) -> Result<()> {
    for (i, c) in columns.iter().enumerate() {
        check_string(
            &c.name,
            &format!("{path}.{}.member.name", i + 1),
            1,
            255,
            false,
        )?;
        if !seen.insert(c.name.to_lowercase()) {
            return Err(CatalogError::InvalidInput(format!(
                "Duplicate column name '{}' in table definition.",
                c.name
            )));
        }
        if c.r#type.trim().is_empty() {
            continue;
        }
        let t = HiveType::parse(&c.r#type)?;
        if primitive && !t.is_primitive() {
            return Err(CatalogError::InvalidInput(format!(
                "Partition key '{}' has type '{}': only primitive types are supported as \
                 partition keys.",
                c.name, c.r#type
            )));
        }
    }
    Ok(())
}

fn check_storage(sd: &StorageDescriptor, path: &str, seen: &mut HashSet<String>) -> Result<()> {
    check_columns(&sd.columns, &format!("{path}.columns"), seen, false)?;
    check_opt(&sd.location, &format!("{path}.location"), 0, 2056, true)?;
    check_opt(
        &sd.input_format,
        &format!("{path}.inputFormat"),
        0,
        128,
        false,
    )?;
    check_opt(
        &sd.output_format,
        &format!("{path}.outputFormat"),
        0,
        128,
        false,
    )?;
    check_parameters(&sd.parameters, &format!("{path}.parameters"))
}

/// Normalises and validates a table definition (`TableInput`) for database `db` (already
/// normalised): name lower-cased, columns checked (types parse, names unique across data
/// columns and partition keys, partition keys primitive), `DatabaseName`/`CatalogId` set.
/// `CreateTime`, `UpdateTime` and `VersionId` are left for the store.
pub fn prepare_table(db: &str, mut table: Table) -> Result<Table> {
    table.name = normalize_name(&table.name, "tableInput.name")?;
    check_opt(&table.description, "tableInput.description", 0, 2048, true)?;
    check_opt(&table.owner, "tableInput.owner", 1, 255, false)?;
    check_opt(&table.table_type, "tableInput.tableType", 0, 255, true)?;
    if table.retention < 0 {
        return Err(constraint(
            &table.retention.to_string(),
            "tableInput.retention",
            "have value greater than or equal to 0",
        ));
    }
    let mut seen = HashSet::new();
    if let Some(sd) = &table.storage_descriptor {
        check_storage(sd, "tableInput.storageDescriptor", &mut seen)?;
    }
    check_columns(
        &table.partition_keys,
        "tableInput.partitionKeys",
        &mut seen,
        true,
    )?;
    check_parameters(&table.parameters, "tableInput.parameters")?;
    table.database_name = Some(db.to_string());
    table.catalog_id = Some(CATALOG_ID.to_string());
    table.is_registered_with_lake_formation = false;
    Ok(table)
}

/// Normalises and validates a partition (`PartitionInput`) of `table` in `db`: one non-empty
/// value (at most 1024 bytes) per partition key; `DatabaseName`/`TableName`/`CatalogId` set.
/// `CreationTime` is left for the store.
pub fn prepare_partition(db: &str, table: &Table, mut part: Partition) -> Result<Partition> {
    check_values(table, &part.values)?;
    if let Some(sd) = &part.storage_descriptor {
        check_storage(sd, "partitionInput.storageDescriptor", &mut HashSet::new())?;
    }
    check_parameters(&part.parameters, "partitionInput.parameters")?;
    part.database_name = Some(db.to_string());
    part.table_name = Some(table.name.clone());
    part.catalog_id = Some(CATALOG_ID.to_string());
    Ok(part)
}

/// Checks that `values` has one valid value per partition key of `table`.
pub fn check_values(table: &Table, values: &[String]) -> Result<()> {
    if values.len() != table.partition_keys.len() {
        return Err(CatalogError::InvalidInput(
            "The number of partition keys do not match the number of partition values".to_string(),
        ));
    }
    for v in values {
        check_string(v, "partitionInput.values.member", 1, 1024, true)?;
    }
    Ok(())
}

/// FNV-1a, 64 bits: a stable hash (file names, partition segments) that never changes with the
/// Rust version.
pub(crate) fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(normalize_name("Sales_DB", "name").unwrap(), "sales_db");
        let e = normalize_name("", "databaseInput.name").unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 validation error detected: Value '' at 'databaseInput.name' failed to satisfy \
             constraint: Member must have length greater than or equal to 1"
        );
        assert!(normalize_name(&"a".repeat(256), "n").is_err());
        assert!(normalize_name(&"a".repeat(255), "n").is_ok());
        let e = normalize_name("a\nb", "databaseInput.name").unwrap_err();
        assert!(e.to_string().contains("regular expression pattern"));
    }

    #[test]
    fn tables_are_validated() {
        let ok = Table::new(
            "Events",
            vec![Column::new("a", "int"), Column::new("b", "array<string>")],
            vec![Column::new("dt", "string")],
            None,
        );
        let t = prepare_table("db", ok.clone()).unwrap();
        assert_eq!(t.name, "events");
        assert_eq!(t.database_name.as_deref(), Some("db"));
        assert_eq!(t.catalog_id.as_deref(), Some(CATALOG_ID));

        let mut bad_type = ok.clone();
        bad_type.storage_descriptor.as_mut().unwrap().columns[0].r#type = "integr".into();
        assert!(matches!(
            prepare_table("db", bad_type),
            Err(CatalogError::InvalidInput(m)) if m.contains("'integr' is found")
        ));

        let mut nested_key = ok.clone();
        nested_key.partition_keys[0].r#type = "array<int>".into();
        assert!(prepare_table("db", nested_key).is_err());

        let mut dup = ok.clone();
        dup.partition_keys[0].name = "A".into();
        assert!(matches!(
            prepare_table("db", dup),
            Err(CatalogError::InvalidInput(m)) if m.contains("Duplicate column")
        ));

        let mut neg = ok;
        neg.retention = -1;
        assert!(prepare_table("db", neg).is_err());
    }

    #[test]
    fn partitions_need_one_value_per_key() {
        let t = Table::new(
            "t",
            vec![],
            vec![Column::new("y", "int"), Column::new("m", "int")],
            None,
        );
        let p = Partition::new(vec!["2024".into()], None);
        assert!(matches!(
            prepare_partition("db", &t, p),
            Err(CatalogError::InvalidInput(m)) if m.contains("number of partition keys")
        ));
        let p = Partition::new(vec!["2024".into(), "".into()], None);
        assert!(prepare_partition("db", &t, p).is_err());
        let p = Partition::new(vec!["2024".into(), "01".into()], None);
        let p = prepare_partition("db", &t, p).unwrap();
        assert_eq!(p.table_name.as_deref(), Some("t"));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a64(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&["a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a64(&["a", "b"]), fnv1a64(&["ab"]));
    }
}
