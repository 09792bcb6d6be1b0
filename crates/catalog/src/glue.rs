//! The Glue Data Catalog API (`X-Amz-Target: AWSGlue.<Op>`, AWS JSON 1.1) over any
//! [`CatalogStore`], so `aws glue ... --endpoint-url`, boto3's `glue` client and the AWS SDKs
//! manage Lakehose's catalog unchanged.
//!
//! Operations: CreateDatabase, GetDatabase, GetDatabases, UpdateDatabase, DeleteDatabase,
//! CreateTable, GetTable, GetTables, UpdateTable, DeleteTable, BatchDeleteTable,
//! GetTableVersion, GetTableVersions, CreatePartition, BatchCreatePartition, GetPartition,
//! GetPartitions, BatchGetPartition, UpdatePartition, DeletePartition, BatchDeletePartition.
//! Anything else is `UnknownOperationException`.
//!
//! Invariants and conventions:
//! - Shapes and member names are Glue's (botocore's `glue/2017-03-31` model); timestamps are
//!   epoch seconds; errors are `EntityNotFoundException`, `AlreadyExistsException`,
//!   `InvalidInputException` (also for AWS-style constraint violations such as a missing
//!   required member or `MaxResults` out of range), `ConcurrentModificationException`,
//!   `SerializationException` for a body that is not the expected JSON.
//! - Request members Lakehose has no use for are accepted and ignored: `CatalogId` (there is
//!   one catalog, account `000000000000`), `TransactionId`, `QueryAsOfTime`, `AuditContext`,
//!   `Tags`, `PartitionIndexes`, `IncludeStatusDetails`, `ResourceShareType`, ...
//! - Pagination: `NextToken` is opaque (the last key returned) and is present only when more
//!   results may follow; results are sorted by name (partitions by values), so a listing that
//!   races with writes never repeats an entry.
//! - `GetTables`'s `Expression` is a Hive-style pattern: `*` matches any run of characters,
//!   `|` separates alternatives, otherwise a regular expression; matched case-insensitively
//!   against the whole name. `GetPartitions`'s `Expression` is documented in [`crate::expr`].

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lakehose_api::{ApiError, ErrorKind, JsonService};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::expr::PartitionExpr;
use crate::model::{Database, Partition, Table};
use crate::store::{CatalogStore, PartitionErrors, UpdateTableOptions, constraint, fnv1a64};
use crate::{CatalogError, store};

/// Largest page of `GetDatabases`, `GetTables`, `GetTableVersions` (`CatalogGetterPageSize`).
pub const MAX_CATALOG_PAGE: i64 = 100;
/// Largest page of `GetPartitions` (`PageSize`).
pub const MAX_PARTITION_PAGE: i64 = 1000;
/// Most entries of `BatchCreatePartition`.
pub const MAX_BATCH_CREATE: usize = 100;
/// Most entries of `BatchDeletePartition`.
pub const MAX_BATCH_DELETE: usize = 25;
/// Most entries of `BatchGetPartition`.
pub const MAX_BATCH_GET: usize = 1000;
/// Most entries of `BatchDeleteTable`.
pub const MAX_BATCH_DELETE_TABLES: usize = 100;

/// The `AWSGlue` JSON service.
#[derive(Clone, Debug)]
pub struct GlueApi {
    store: Arc<dyn CatalogStore>,
}

impl GlueApi {
    /// The API over `store`.
    pub fn new(store: Arc<dyn CatalogStore>) -> Self {
        Self { store }
    }

    /// The store behind the API.
    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }
}

type ApiResult<T> = lakehose_api::Result<T>;

use lakehose_api::handler::parse;

fn required<T>(value: Option<T>, path: &str) -> ApiResult<T> {
    value.ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidInput,
            format!(
                "1 validation error detected: Value null at '{path}' failed to satisfy \
                 constraint: Member must not be null"
            ),
        )
    })
}

fn name(value: Option<String>, path: &str) -> ApiResult<String> {
    let v = required(value, path)?;
    Ok(store::normalize_name(&v, path)?)
}

fn page_size(value: Option<i64>, max: i64) -> ApiResult<usize> {
    let n = value.unwrap_or(max);
    if n < 1 {
        return Err(constraint(
            &n.to_string(),
            "maxResults",
            "have value greater than or equal to 1",
        )
        .into());
    }
    if n > max {
        return Err(constraint(
            &n.to_string(),
            "maxResults",
            &format!("have value less than or equal to {max}"),
        )
        .into());
    }
    Ok(n as usize)
}

fn list_len<T>(list: &[T], path: &str, max: usize) -> ApiResult<()> {
    if list.len() > max {
        return Err(constraint(
            &format!("{} entries", list.len()),
            path,
            &format!("have length less than or equal to {max}"),
        )
        .into());
    }
    Ok(())
}

fn encode_token<T: serde::Serialize>(key: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode_token<T: DeserializeOwned>(token: Option<&str>) -> ApiResult<Option<T>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .map(Some)
        .ok_or_else(|| ApiError::new(ErrorKind::InvalidInput, "Invalid pagination token."))
}

/// Takes up to `limit` items of `items` (sorted by `key`) after `after`; returns the page and
/// the next token.
fn paginate<T, K: Ord + serde::Serialize>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    after: Option<K>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_ref().is_none_or(|a| key(item) > *a))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|last| encode_token(&key(last)))
    } else {
        None
    };
    (page, next)
}

fn to_json<T: serde::Serialize>(value: &T) -> ApiResult<Value> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

fn errors_json(errors: PartitionErrors) -> Value {
    let entries: Vec<Value> = errors
        .into_iter()
        .map(|(values, e)| {
            json!({
                "PartitionValues": values,
                "ErrorDetail": {"ErrorCode": e.error_code(), "ErrorMessage": e.message()},
            })
        })
        .collect();
    json!({ "Errors": entries })
}

/// Compiles GetTables' Hive-style pattern (see the module docs).
fn table_pattern(expr: &str) -> ApiResult<regex::Regex> {
    let mut alternatives = Vec::new();
    for alt in expr.split('|') {
        let mut re = String::new();
        let mut prev = '\0';
        for c in alt.trim().chars() {
            if c == '*' && prev != '.' {
                re.push_str(".*");
            } else {
                re.push(c);
            }
            prev = c;
        }
        alternatives.push(format!("(?:{re})"));
    }
    regex::RegexBuilder::new(&format!("^(?:{})$", alternatives.join("|")))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidInput,
                format!("Invalid table name pattern '{expr}': {e}"),
            )
        })
}

/// Keeps only the attributes `attrs` (Glue's `AttributesToGet`) of an entity, which must include
/// `NAME`; `allowed` maps attribute names to members.
fn select_attributes(
    value: Value,
    attrs: &Option<Vec<String>>,
    allowed: &[(&str, &str)],
) -> ApiResult<Value> {
    let Some(attrs) = attrs else {
        return Ok(value);
    };
    let mut members = Vec::new();
    for a in attrs {
        match allowed.iter().find(|(name, _)| name == a) {
            Some((_, member)) => members.push(*member),
            None => {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                return Err(constraint(
                    a,
                    "attributesToGet.member",
                    &format!("satisfy enum value set: [{}]", names.join(", ")),
                )
                .into());
            }
        }
    }
    if !members.contains(&"Name") {
        return Err(ApiError::new(
            ErrorKind::InvalidInput,
            "AttributesToGet must include NAME.",
        ));
    }
    let Value::Object(map) = value else {
        return Ok(value);
    };
    Ok(Value::Object(
        map.into_iter()
            .filter(|(k, _)| members.contains(&k.as_str()))
            .collect(),
    ))
}

// ---- request shapes (only the members Lakehose uses; the rest are ignored) -------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DatabaseInputReq {
    name: Option<String>,
    database_input: Option<Database>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListReq {
    next_token: Option<String>,
    max_results: Option<i64>,
    attributes_to_get: Option<Vec<String>>,
    database_name: Option<String>,
    table_name: Option<String>,
    expression: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableReq {
    database_name: Option<String>,
    name: Option<String>,
    table_name: Option<String>,
    table_input: Option<Table>,
    version_id: Option<String>,
    skip_archive: Option<bool>,
    tables_to_delete: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Segment {
    segment_number: i64,
    total_segments: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ValuesEntry {
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartitionReq {
    database_name: Option<String>,
    table_name: Option<String>,
    partition_values: Option<Vec<String>>,
    partition_value_list: Option<Vec<String>>,
    partition_input: Option<Partition>,
    partition_input_list: Option<Vec<Partition>>,
    partitions_to_delete: Option<Vec<ValuesEntry>>,
    partitions_to_get: Option<Vec<ValuesEntry>>,
    expression: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    segment: Option<Segment>,
    exclude_column_schema: Option<bool>,
}

impl PartitionReq {
    fn target(&mut self) -> ApiResult<(String, String)> {
        Ok((
            name(self.database_name.take(), "databaseName")?,
            name(self.table_name.take(), "tableName")?,
        ))
    }
}

#[async_trait]
impl JsonService for GlueApi {
    fn target_prefix(&self) -> &'static str {
        "AWSGlue"
    }

    fn iam_prefix(&self) -> &'static str {
        "glue"
    }

    fn resources(&self, op: &str, region: &str, body: &[u8]) -> Vec<String> {
        resources(op, region, body)
    }

    async fn call(&self, op: &str, _region: &str, body: &[u8]) -> ApiResult<Value> {
        match op {
            "CreateDatabase" => self.create_database(parse(body)?).await,
            "GetDatabase" => self.get_database(parse(body)?).await,
            "GetDatabases" => self.get_databases(parse(body)?).await,
            "UpdateDatabase" => self.update_database(parse(body)?).await,
            "DeleteDatabase" => self.delete_database(parse(body)?).await,
            "CreateTable" => self.create_table(parse(body)?).await,
            "GetTable" => self.get_table(parse(body)?).await,
            "GetTables" => self.get_tables(parse(body)?).await,
            "UpdateTable" => self.update_table(parse(body)?).await,
            "DeleteTable" => self.delete_table(parse(body)?).await,
            "BatchDeleteTable" => self.batch_delete_table(parse(body)?).await,
            "GetTableVersion" => self.get_table_version(parse(body)?).await,
            "GetTableVersions" => self.get_table_versions(parse(body)?).await,
            "CreatePartition" => self.create_partition(parse(body)?).await,
            "BatchCreatePartition" => self.batch_create_partition(parse(body)?).await,
            "GetPartition" => self.get_partition(parse(body)?).await,
            "GetPartitions" => self.get_partitions(parse(body)?).await,
            "BatchGetPartition" => self.batch_get_partition(parse(body)?).await,
            "UpdatePartition" => self.update_partition(parse(body)?).await,
            "DeletePartition" => self.delete_partition(parse(body)?).await,
            "BatchDeletePartition" => self.batch_delete_partition(parse(body)?).await,
            other => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!("Operation AWSGlue.{other} is not supported by the Lakehose catalog."),
            )),
        }
    }
}

/// The resources a Glue operation acts on, for authorization ([`lakehose_api::authz`]), named
/// as Glue's IAM names them, with database and table names lower-cased as the catalog stores
/// them: `arn:aws:glue:REGION:ACCOUNT:catalog` for `GetDatabases`; `database/DB` for the
/// database operations and `GetTables`; `table/DB/TABLE` for the table, table version and
/// partition operations (every table of `BatchDeleteTable`; the new name as well when
/// `UpdateDatabase` renames). A name that cannot be read from the body is `*`.
pub fn resources(op: &str, region: &str, body: &[u8]) -> Vec<String> {
    let arn = |resource: &str| lakehose_api::authz::arn("glue", region, resource);
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // Duplicate members: the last one wins here, while the operation's own parse refuses the
    // request, so nothing runs on a name other than the one authorized.
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
        return vec!["*".into()];
    };
    let text = |v: &serde_json::Map<String, Value>, key: &str| {
        v.get(key).and_then(Value::as_str).map(str::to_lowercase)
    };
    let nested = |outer: &str, key: &str| {
        v.get(outer)
            .and_then(Value::as_object)
            .and_then(|o| text(o, key))
    };
    let database =
        |name: Option<String>| name.map_or("*".into(), |d| arn(&format!("database/{d}")));
    let db = text(&v, "DatabaseName");
    let table = |name: Option<String>| match (&db, name) {
        (Some(d), Some(t)) => arn(&format!("table/{d}/{t}")),
        _ => "*".into(),
    };
    match op {
        "GetDatabases" => vec![arn("catalog")],
        "CreateDatabase" => vec![database(nested("DatabaseInput", "Name"))],
        "GetDatabase" | "DeleteDatabase" => vec![database(text(&v, "Name"))],
        "UpdateDatabase" => {
            let mut out = vec![database(text(&v, "Name"))];
            if let Some(renamed) = nested("DatabaseInput", "Name").map(|n| database(Some(n)))
                && !out.contains(&renamed)
            {
                out.push(renamed);
            }
            out
        }
        "GetTables" => vec![database(db.clone())],
        "CreateTable" | "UpdateTable" => vec![table(nested("TableInput", "Name"))],
        "GetTable" | "DeleteTable" => vec![table(text(&v, "Name"))],
        "BatchDeleteTable" => match v.get("TablesToDelete").and_then(Value::as_array) {
            Some(names) if !names.is_empty() => names
                .iter()
                .map(|n| table(n.as_str().map(str::to_lowercase)))
                .collect(),
            _ => vec!["*".into()],
        },
        "GetTableVersion"
        | "GetTableVersions"
        | "CreatePartition"
        | "BatchCreatePartition"
        | "GetPartition"
        | "GetPartitions"
        | "BatchGetPartition"
        | "UpdatePartition"
        | "DeletePartition"
        | "BatchDeletePartition" => vec![table(text(&v, "TableName"))],
        _ => vec!["*".into()],
    }
}

impl GlueApi {
    async fn create_database(&self, req: DatabaseInputReq) -> ApiResult<Value> {
        let db = required(req.database_input, "databaseInput")?;
        self.store.create_database(db).await?;
        Ok(json!({}))
    }

    async fn get_database(&self, req: DatabaseInputReq) -> ApiResult<Value> {
        let name = name(req.name, "name")?;
        let db = self.store.get_database(&name).await?;
        Ok(json!({ "Database": to_json(&db)? }))
    }

    async fn get_databases(&self, req: ListReq) -> ApiResult<Value> {
        let limit = page_size(req.max_results, MAX_CATALOG_PAGE)?;
        let after: Option<String> = decode_token(req.next_token.as_deref())?;
        let dbs = self.store.list_databases().await?;
        let (page, next) = paginate(dbs, |d| d.name.clone(), after, limit);
        let list = page
            .iter()
            .map(|d| select_attributes(to_json(d)?, &req.attributes_to_get, &[("NAME", "Name")]))
            .collect::<ApiResult<Vec<_>>>()?;
        let mut out = json!({ "DatabaseList": list });
        if let Some(next) = next {
            out["NextToken"] = Value::String(next);
        }
        Ok(out)
    }

    async fn update_database(&self, req: DatabaseInputReq) -> ApiResult<Value> {
        let name = name(req.name, "name")?;
        let db = required(req.database_input, "databaseInput")?;
        self.store.update_database(&name, db).await?;
        Ok(json!({}))
    }

    async fn delete_database(&self, req: DatabaseInputReq) -> ApiResult<Value> {
        let name = name(req.name, "name")?;
        self.store.delete_database(&name).await?;
        Ok(json!({}))
    }

    async fn create_table(&self, req: TableReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let table = required(req.table_input, "tableInput")?;
        self.store.create_table(&db, table).await?;
        Ok(json!({}))
    }

    async fn get_table(&self, req: TableReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let table = name(req.name, "name")?;
        let t = self.store.get_table(&db, &table).await?;
        Ok(json!({ "Table": to_json(&t)? }))
    }

    async fn get_tables(&self, req: ListReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let limit = page_size(req.max_results, MAX_CATALOG_PAGE)?;
        let after: Option<String> = decode_token(req.next_token.as_deref())?;
        let pattern = match req.expression.as_deref().map(str::trim) {
            Some(e) if !e.is_empty() => Some(table_pattern(e)?),
            _ => None,
        };
        let tables = self
            .store
            .list_tables(&db)
            .await?
            .into_iter()
            .filter(|t| pattern.as_ref().is_none_or(|p| p.is_match(&t.name)));
        let (page, next) = paginate(tables, |t| t.name.clone(), after, limit);
        let list = page
            .iter()
            .map(|t| {
                select_attributes(
                    to_json(t)?,
                    &req.attributes_to_get,
                    &[("NAME", "Name"), ("TABLE_TYPE", "TableType")],
                )
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let mut out = json!({ "TableList": list });
        if let Some(next) = next {
            out["NextToken"] = Value::String(next);
        }
        Ok(out)
    }

    async fn update_table(&self, req: TableReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let table = required(req.table_input, "tableInput")?;
        let options = UpdateTableOptions {
            expected_version: req.version_id,
            skip_archive: req.skip_archive.unwrap_or(false),
        };
        self.store.update_table_with(&db, table, options).await?;
        Ok(json!({}))
    }

    async fn delete_table(&self, req: TableReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let table = name(req.name, "name")?;
        self.store.delete_table(&db, &table).await?;
        Ok(json!({}))
    }

    async fn batch_delete_table(&self, req: TableReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let names = required(req.tables_to_delete, "tablesToDelete")?;
        list_len(&names, "tablesToDelete", MAX_BATCH_DELETE_TABLES)?;
        self.store.get_database(&db).await?;
        let mut errors = Vec::new();
        for table in names {
            let result = match store::normalize_name(&table, "tablesToDelete.member") {
                Ok(n) => self.store.delete_table(&db, &n).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if let CatalogError::Io(cause) = &e {
                    tracing::error!(%cause, "BatchDeleteTable entry failed");
                }
                errors.push(json!({
                    "TableName": table,
                    "ErrorDetail": {"ErrorCode": e.error_code(), "ErrorMessage": e.message()},
                }));
            }
        }
        Ok(json!({ "Errors": errors }))
    }

    async fn get_table_version(&self, req: TableReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let table = name(req.table_name, "tableName")?;
        let t = match req.version_id.as_deref() {
            Some(v) => self.store.get_table_version(&db, &table, v).await?,
            None => self.store.get_table(&db, &table).await?,
        };
        Ok(json!({
            "TableVersion": {"Table": to_json(&t)?, "VersionId": t.version().to_string()}
        }))
    }

    async fn get_table_versions(&self, req: ListReq) -> ApiResult<Value> {
        let db = name(req.database_name, "databaseName")?;
        let table = name(req.table_name, "tableName")?;
        let limit = page_size(req.max_results, MAX_CATALOG_PAGE)?;
        let after: Option<u64> = decode_token(req.next_token.as_deref())?;
        let versions = self.store.list_table_versions(&db, &table).await?;
        let (page, next) = paginate(versions, Table::version, after, limit);
        let list = page
            .iter()
            .map(|t| Ok(json!({ "Table": to_json(t)?, "VersionId": t.version().to_string() })))
            .collect::<ApiResult<Vec<_>>>()?;
        let mut out = json!({ "TableVersions": list });
        if let Some(next) = next {
            out["NextToken"] = Value::String(next);
        }
        Ok(out)
    }

    async fn create_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let part = required(req.partition_input, "partitionInput")?;
        let errors = self
            .store
            .create_partitions(&db, &table, vec![part])
            .await?;
        match errors.into_iter().next() {
            Some((_, e)) => Err(e.into()),
            None => Ok(json!({})),
        }
    }

    async fn batch_create_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let parts = required(req.partition_input_list, "partitionInputList")?;
        list_len(&parts, "partitionInputList", MAX_BATCH_CREATE)?;
        let errors = self.store.create_partitions(&db, &table, parts).await?;
        Ok(errors_json(errors))
    }

    async fn get_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let values = required(req.partition_values, "partitionValues")?;
        let p = self.store.get_partition(&db, &table, &values).await?;
        Ok(json!({ "Partition": to_json(&p)? }))
    }

    async fn get_partitions(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let limit = page_size(req.max_results, MAX_PARTITION_PAGE)?;
        let after: Option<Vec<String>> = decode_token(req.next_token.as_deref())?;
        let segment = match &req.segment {
            None => None,
            Some(s) => {
                if !(1..=10).contains(&s.total_segments) {
                    return Err(constraint(
                        &s.total_segments.to_string(),
                        "segment.totalSegments",
                        "have value between 1 and 10",
                    )
                    .into());
                }
                if !(0..s.total_segments).contains(&s.segment_number) {
                    return Err(ApiError::new(
                        ErrorKind::InvalidInput,
                        "SegmentNumber must be less than TotalSegments.",
                    ));
                }
                Some((s.segment_number as u64, s.total_segments as u64))
            }
        };
        let t = self.store.get_table(&db, &table).await?;
        let expr = PartitionExpr::parse(
            req.expression.as_deref().unwrap_or(""),
            t.partition_columns(),
        )?;
        let filter = move |p: &Partition| {
            segment.is_none_or(|(n, total)| {
                let parts: Vec<&str> = p.values.iter().map(String::as_str).collect();
                fnv1a64(&parts) % total == n
            }) && expr.matches(&p.values)
        };
        let mut page = self
            .store
            .scan_partitions(&db, &table, after.as_deref(), limit + 1, &filter)
            .await?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|p| encode_token(&p.values))
        } else {
            None
        };
        let exclude_columns = req.exclude_column_schema.unwrap_or(false);
        let list = page
            .iter()
            .map(|p| {
                let mut v = to_json(p)?;
                if exclude_columns
                    && let Some(sd) = v
                        .get_mut("StorageDescriptor")
                        .and_then(Value::as_object_mut)
                {
                    sd.remove("Columns");
                }
                Ok(v)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let mut out = json!({ "Partitions": list });
        if let Some(next) = next {
            out["NextToken"] = Value::String(next);
        }
        Ok(out)
    }

    async fn batch_get_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let wanted = required(req.partitions_to_get.take(), "partitionsToGet")?;
        list_len(&wanted, "partitionsToGet", MAX_BATCH_GET)?;
        self.store.get_table(&db, &table).await?;
        let mut found = Vec::new();
        for entry in wanted {
            match self.store.get_partition(&db, &table, &entry.values).await {
                Ok(p) => found.push(to_json(&p)?),
                Err(CatalogError::EntityNotFound(_) | CatalogError::InvalidInput(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(json!({ "Partitions": found, "UnprocessedKeys": [] }))
    }

    async fn update_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let values = required(req.partition_value_list.take(), "partitionValueList")?;
        let part = required(req.partition_input.take(), "partitionInput")?;
        self.store
            .update_partition(&db, &table, &values, part)
            .await?;
        Ok(json!({}))
    }

    async fn delete_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let values = required(req.partition_values.take(), "partitionValues")?;
        let errors = self
            .store
            .delete_partitions(&db, &table, vec![values])
            .await?;
        match errors.into_iter().next() {
            Some((_, e)) => Err(e.into()),
            None => Ok(json!({})),
        }
    }

    async fn batch_delete_partition(&self, mut req: PartitionReq) -> ApiResult<Value> {
        let (db, table) = req.target()?;
        let entries = required(req.partitions_to_delete.take(), "partitionsToDelete")?;
        list_len(&entries, "partitionsToDelete", MAX_BATCH_DELETE)?;
        let values = entries.into_iter().map(|e| e.values).collect();
        let errors = self.store.delete_partitions(&db, &table, values).await?;
        Ok(errors_json(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_patterns_are_hive_style() {
        let p = table_pattern("events*|logs").unwrap();
        assert!(p.is_match("events"));
        assert!(p.is_match("events_2024"));
        assert!(p.is_match("LOGS"));
        assert!(!p.is_match("logs2"));
        assert!(!p.is_match("my_events"));
        let p = table_pattern("ev.*s").unwrap();
        assert!(p.is_match("events"));
        assert!(table_pattern("(").is_err());
    }

    #[test]
    fn resources_follow_glue_iam() {
        let arn = |r: &str| format!("arn:aws:glue:eu-west-1:000000000000:{r}");
        let res = |op: &str, body: &str| resources(op, "eu-west-1", body.as_bytes());
        assert_eq!(res("GetDatabases", ""), [arn("catalog")]);
        assert_eq!(
            res("GetDatabase", r#"{"Name":"Web"}"#),
            [arn("database/web")]
        );
        assert_eq!(
            res("CreateDatabase", r#"{"DatabaseInput":{"Name":"web"}}"#),
            [arn("database/web")]
        );
        assert_eq!(
            res(
                "UpdateDatabase",
                r#"{"Name":"web","DatabaseInput":{"Name":"web2"}}"#
            ),
            [arn("database/web"), arn("database/web2")]
        );
        assert_eq!(
            res("GetTables", r#"{"DatabaseName":"web"}"#),
            [arn("database/web")]
        );
        assert_eq!(
            res("GetTable", r#"{"DatabaseName":"web","Name":"Clicks"}"#),
            [arn("table/web/clicks")]
        );
        assert_eq!(
            res(
                "CreateTable",
                r#"{"DatabaseName":"web","TableInput":{"Name":"clicks"}}"#
            ),
            [arn("table/web/clicks")]
        );
        assert_eq!(
            res(
                "BatchDeleteTable",
                r#"{"DatabaseName":"web","TablesToDelete":["a","b"]}"#
            ),
            [arn("table/web/a"), arn("table/web/b")]
        );
        assert_eq!(
            res(
                "GetPartitions",
                r#"{"DatabaseName":"web","TableName":"clicks"}"#
            ),
            [arn("table/web/clicks")]
        );
        assert_eq!(res("GetTable", r#"{"Name":"clicks"}"#), ["*"]);
        assert_eq!(res("GetTable", "not json"), ["*"]);
        assert_eq!(res("SomethingElse", "{}"), ["*"]);
    }

    #[test]
    fn tokens_round_trip() {
        let t = encode_token(&vec!["a".to_string(), "b/c".to_string()]);
        let back: Option<Vec<String>> = decode_token(Some(&t)).unwrap();
        assert_eq!(back.unwrap(), ["a", "b/c"]);
        assert!(decode_token::<String>(Some("%%%")).is_err());
        assert!(decode_token::<String>(Some("")).unwrap().is_none());
    }

    #[test]
    fn pagination() {
        let (page, next) = paginate(1..=5, |n| *n, None, 2);
        assert_eq!(page, [1, 2]);
        let after: Option<i32> = decode_token(next.as_deref()).unwrap();
        let (page, next) = paginate(1..=5, |n| *n, after, 3);
        assert_eq!(page, [3, 4, 5]);
        assert!(next.is_none());
    }
}
