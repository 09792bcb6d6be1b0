//! The AmazonAthena JSON API (`X-Amz-Target: AmazonAthena.<Op>`, AWS JSON 1.1) over a
//! [`QueryEngine`], so boto3's `athena` client, the AWS CLI and the SDKs run queries unchanged.
//!
//! Operations: StartQueryExecution, GetQueryExecution, BatchGetQueryExecution, GetQueryResults,
//! StopQueryExecution, ListQueryExecutions, GetWorkGroup, ListWorkGroups. Anything else is
//! `UnknownOperationException`.
//!
//! # Lifecycle
//! StartQueryExecution registers the execution (`QUEUED`) and spawns a task that waits for one
//! of [`DEFAULT_MAX_CONCURRENT_QUERIES`] run slots, marks it `RUNNING`, runs the statement,
//! renders the result and writes it to `{OutputLocation}{QueryExecutionId}.csv` (`.txt` for
//! statements that are not `DML`) through [`BucketStores`], then marks it `SUCCEEDED`; a
//! statement error marks it `FAILED`, StopQueryExecution marks it `CANCELLED` and aborts the
//! task (dropping the engine's future cancels the statement).
//!
//! # Invariants
//! - States only move forward: `QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED`, or
//!   `QUEUED | RUNNING -> CANCELLED`. The task re-checks the state under the lock before every
//!   transition, so a Stop that wins the race is never overwritten.
//! - An execution is `SUCCEEDED` only after its result object has been completely written;
//!   results are immutable from then on, so pagination over them never repeats or loses a row.
//! - The registry (one `std::sync::Mutex`) is never held across an `.await`.
//! - Bounded memory: the last [`DEFAULT_HISTORY_LIMIT`] executions are kept (the oldest
//!   *finished* one is forgotten first; with that many still queued or running, Start answers
//!   `TooManyRequestsException`), and rendered results are cached up to
//!   [`DEFAULT_RESULT_CACHE_BYTES`] in total (oldest evicted first). GetQueryResults on an
//!   evicted result re-reads the result object from the store (and caches it again if it fits);
//!   if the object is gone it answers `InvalidRequestException`.
//!
//! # Results
//! - The `.csv` is Athena's: a header row, every value double-quoted with `"` doubled, NULL an
//!   empty unquoted field, `\n` line ends. GetQueryResults' rows are exactly the CSV's rows, so
//!   for DML the first row of the first page is the header (as Athena does) and `MaxResults`
//!   counts it. NULL is a `Datum` without `VarCharValue`.
//! - DDL and UTILITY statements write a `.txt` instead: one line per row, values separated by
//!   tabs, no header (as Athena does for `SHOW TABLES`); their GetQueryResults rows carry no
//!   header either. Re-reading an evicted `.txt` cannot tell NULL from an empty string.
//! - Values are rendered as Athena (Trino) shows them: integers and decimals plain, booleans
//!   `true`/`false`, doubles and reals like Java's `Double.toString`/`Float.toString`
//!   (`1.5`, `100.0`, `1.0E7`, `1.0E-4`, `NaN`, `Infinity`), dates `2024-01-02`, timestamps
//!   `2024-01-02 03:04:05.000` (millisecond precision, as Athena's Hive tables), timestamps
//!   with a zone `2024-01-02 03:04:05.000 UTC` (in that zone), times `03:04:05.000`,
//!   varbinary as space-separated hex bytes (`68 65 6c`), arrays `[1, 2]`, maps `{k=v}`,
//!   structs `{a=1, b=x}`, NULL inside a nested value `null`. Intervals and durations use
//!   Arrow's rendering.
//! - `ColumnInfo.Type` is Athena's name (`varchar`, `tinyint`, `smallint`, `integer`,
//!   `bigint`, `float` for 16/32-bit floats, `double`, `boolean`, `date`, `timestamp`,
//!   `timestamp with time zone`, `time`, `decimal`, `varbinary`, `array`, `map`, `row`,
//!   `unknown` for the NULL type); unsigned integers widen (`UInt64` is `decimal(20,0)`).
//!   `Precision` is Athena's for the common types (varchar 2147483647, tinyint 3, smallint 5,
//!   integer 10, bigint 19, float/double 17, timestamp/time 3, decimal its precision) and 0
//!   otherwise; `CaseSensitive` is true for varchar only.
//!
//! # Conventions
//! - Errors are `InvalidRequestException` (missing or out-of-range member, unknown execution,
//!   results not ready, bad NextToken, unknown work group, ClientRequestToken reused with
//!   different parameters), `TooManyRequestsException`, `SerializationException` for a body that
//!   is not the expected JSON. The real service also sends `AthenaErrorCode`; the shared error
//!   body has only `__type` and `message`.
//! - A failed statement's `StateChangeReason` and `AthenaError.ErrorMessage` are the engine's
//!   message prefixed with Athena's position form `line L:C: ` when the position is known.
//!   `AthenaError` is category 2 (user), type 1000 for [`QueryError::User`]; category 1
//!   (system), type 200 for [`QueryError::Internal`]; category 1, type 401, retryable, when
//!   the result object could not be written; category 2, type 1000 when the output bucket is
//!   unknown. A cancelled execution has no `AthenaError`.
//! - There is one work group, `primary` (engine version `AUTO` / `Athena engine version 3`);
//!   its result location is the API's default output location. Naming another work group is
//!   `InvalidRequestException` ("WorkGroup x is not found.").
//! - ClientRequestToken (32..=128 characters) makes Start idempotent for as long as the
//!   execution is in the history: the same token with the same query, database, catalog,
//!   work group and output location answers the same id; with anything different,
//!   `InvalidRequestException`.
//! - NextTokens are opaque (hex): GetQueryResults' names the execution and the row offset;
//!   ListQueryExecutions' the position in submission order, so executions started while
//!   paging never shift a page. ListQueryExecutions' `MaxResults` 0 means the default, 50.
//! - Timestamps are epoch seconds with millisecond fractions. `QueryPlanningTimeInMillis` and
//!   `ServicePreProcessingTimeInMillis` are 0 (the engine does not report them separately);
//!   `ServiceProcessingTimeInMillis` is the time spent rendering and writing the result.
//! - Query execution ids are random version-4 UUIDs.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, GenericBinaryArray, OffsetSizeTrait};
use arrow_schema::{DataType, IntervalUnit};
use async_trait::async_trait;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use lakehose_api::{ApiError, ErrorKind, JsonService};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::{BucketStores, QueryEngine, QueryError, QueryOptions, QueryOutput};

/// Where results go when neither the request nor the work group names a location.
pub const DEFAULT_OUTPUT_LOCATION: &str = "s3://lakehose-athena-results/";
/// Executions remembered (GetQueryExecution, ListQueryExecutions, idempotency tokens).
pub const DEFAULT_HISTORY_LIMIT: usize = 1000;
/// Total size of the rendered results kept in memory for GetQueryResults.
pub const DEFAULT_RESULT_CACHE_BYTES: usize = 256 << 20;
/// Statements running at once; later ones wait in `QUEUED`.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 8;
/// The one work group.
pub const PRIMARY_WORK_GROUP: &str = "primary";
/// Largest GetQueryResults page.
pub const MAX_RESULTS_PAGE: i64 = 1000;
/// Largest ListQueryExecutions page (and its default).
pub const MAX_LIST_PAGE: i64 = 50;
/// Most ids of one BatchGetQueryExecution.
pub const MAX_BATCH_GET: usize = 50;

const DEFAULT_CATALOG: &str = "awsdatacatalog";
const DEFAULT_DATABASE: &str = "default";
const MAX_QUERY_LEN: usize = 262_144;
const ENGINE_SELECTED: &str = "AUTO";
const ENGINE_EFFECTIVE: &str = "Athena engine version 3";
const CANCELLED_REASON: &str = "Query cancelled by user";

type ApiResult<T> = lakehose_api::Result<T>;

/// The `AmazonAthena` JSON service.
pub struct AthenaApi {
    runner: Runner,
    default_output: String,
    history_limit: usize,
    created: SystemTime,
}

impl std::fmt::Debug for AthenaApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AthenaApi")
            .field("default_output", &self.default_output)
            .field("history_limit", &self.history_limit)
            .field("cache_limit", &self.runner.cache_limit)
            .finish_non_exhaustive()
    }
}

/// What a query task needs: cloned into every spawned task.
#[derive(Clone)]
struct Runner {
    engine: QueryEngine,
    stores: Arc<dyn BucketStores>,
    registry: Arc<Mutex<Registry>>,
    slots: Arc<Semaphore>,
    cache_limit: usize,
}

impl AthenaApi {
    /// The API running statements on `engine` and writing results through `stores`.
    pub fn new(engine: QueryEngine, stores: Arc<dyn BucketStores>) -> Self {
        AthenaApi {
            runner: Runner {
                engine,
                stores,
                registry: Arc::new(Mutex::new(Registry::default())),
                slots: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_QUERIES)),
                cache_limit: DEFAULT_RESULT_CACHE_BYTES,
            },
            default_output: DEFAULT_OUTPUT_LOCATION.to_string(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            created: SystemTime::now(),
        }
    }

    /// Results go to `location` (`s3://bucket/prefix/`) when the request names none (it is
    /// the `primary` work group's result location).
    pub fn with_default_output_location(mut self, location: impl Into<String>) -> Self {
        self.default_output = location.into();
        self
    }

    /// At most `n` (at least 1) statements run at once.
    pub fn with_max_concurrent_queries(mut self, n: usize) -> Self {
        self.runner.slots = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// Remember the last `n` (at least 1) executions.
    pub fn with_history_limit(mut self, n: usize) -> Self {
        self.history_limit = n.max(1);
        self
    }

    /// Keep at most `bytes` of rendered results in memory (0: always re-read the objects).
    pub fn with_result_cache_bytes(mut self, bytes: usize) -> Self {
        self.runner.cache_limit = bytes;
        self
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.runner.registry)
    }
}

impl Drop for AthenaApi {
    fn drop(&mut self) {
        let mut reg = self.registry();
        for e in reg.executions.values_mut() {
            if let Some(h) = e.abort.take() {
                h.abort();
            }
        }
    }
}

fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Registry

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl QState {
    fn as_str(self) -> &'static str {
        match self {
            QState::Queued => "QUEUED",
            QState::Running => "RUNNING",
            QState::Succeeded => "SUCCEEDED",
            QState::Failed => "FAILED",
            QState::Cancelled => "CANCELLED",
        }
    }

    fn finished(self) -> bool {
        matches!(self, QState::Succeeded | QState::Failed | QState::Cancelled)
    }
}

#[derive(Clone, Debug)]
struct AthenaErrorInfo {
    category: u8,
    error_type: u16,
    retryable: bool,
    message: String,
}

/// Where an execution's result object is.
#[derive(Clone, Debug)]
struct OutputObject {
    bucket: String,
    key: String,
    /// `s3://bucket/key`.
    url: String,
    /// CSV with a header (DML) or a headerless `.txt`.
    csv: bool,
}

struct Execution {
    seq: u64,
    id: String,
    query: String,
    database: String,
    catalog: String,
    workgroup: String,
    statement_type: &'static str,
    client_token: Option<String>,
    /// The idempotent parameters, compared when a ClientRequestToken is reused.
    fingerprint: String,
    output: OutputObject,
    state: QState,
    reason: Option<String>,
    error: Option<AthenaErrorInfo>,
    submitted: SystemTime,
    submitted_at: Instant,
    started_at: Option<Instant>,
    completed: Option<SystemTime>,
    completed_at: Option<Instant>,
    engine_ms: u64,
    service_ms: u64,
    bytes_scanned: u64,
    abort: Option<AbortHandle>,
    /// `ColumnInfo` of the result (set on success).
    columns: Arc<Vec<Value>>,
    /// The rendered result while cached.
    results: Option<Arc<ResultRows>>,
}

#[derive(Default)]
struct Registry {
    next_seq: u64,
    executions: HashMap<String, Execution>,
    /// Ids in submission order, oldest first.
    order: VecDeque<String>,
    /// ClientRequestToken -> id.
    tokens: HashMap<String, String>,
    /// Sum of the sizes of the cached results.
    cached_bytes: usize,
}

impl Registry {
    /// Forgets the oldest finished executions until fewer than `limit` remain; false if every
    /// remembered execution is still queued or running.
    fn make_room(&mut self, limit: usize) -> bool {
        while self.executions.len() >= limit {
            let pos = self
                .order
                .iter()
                .position(|id| self.executions.get(id).is_none_or(|e| e.state.finished()));
            let Some(id) = pos.and_then(|p| self.order.remove(p)) else {
                return false;
            };
            if let Some(e) = self.executions.remove(&id) {
                if let Some(token) = e.client_token {
                    self.tokens.remove(&token);
                }
                if let Some(r) = e.results {
                    self.cached_bytes -= r.size();
                }
            }
        }
        true
    }

    /// Caches `rows` as `id`'s result if it fits in `limit`, evicting older results.
    fn cache_results(&mut self, id: &str, rows: &Arc<ResultRows>, limit: usize) {
        let size = rows.size();
        if size > limit {
            return;
        }
        let mut i = 0;
        while self.cached_bytes + size > limit && i < self.order.len() {
            let other = &self.order[i];
            i += 1;
            if other == id {
                continue;
            }
            if let Some(r) = self
                .executions
                .get_mut(other)
                .and_then(|e| e.results.take())
            {
                self.cached_bytes -= r.size();
            }
        }
        if self.cached_bytes + size > limit {
            return;
        }
        if let Some(e) = self.executions.get_mut(id)
            && e.results.is_none()
        {
            e.results = Some(rows.clone());
            self.cached_bytes += size;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartReq {
    query_string: Option<String>,
    client_request_token: Option<String>,
    query_execution_context: Option<ContextReq>,
    result_configuration: Option<ResultConfigReq>,
    work_group: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ContextReq {
    database: Option<String>,
    catalog: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ResultConfigReq {
    output_location: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IdReq {
    query_execution_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct BatchReq {
    query_execution_ids: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ResultsReq {
    query_execution_id: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ListReq {
    next_token: Option<String>,
    max_results: Option<i64>,
    work_group: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct WorkGroupReq {
    work_group: Option<String>,
}

use lakehose_api::handler::parse;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidRequest, message)
}

fn constraint(value: &str, path: &str, rule: &str) -> ApiError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: \
         Member must {rule}"
    ))
}

fn required<T>(value: Option<T>, path: &str) -> ApiResult<T> {
    value.ok_or_else(|| {
        invalid(format!(
            "1 validation error detected: Value null at '{path}' failed to satisfy constraint: \
             Member must not be null"
        ))
    })
}

fn length(value: &str, path: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.chars().count();
    if n < min {
        return Err(constraint(
            value,
            path,
            &format!("have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        let shown: String = value.chars().take(64).collect();
        return Err(constraint(
            &shown,
            path,
            &format!("have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn range(value: Option<i64>, path: &str, min: i64, max: i64, default: i64) -> ApiResult<usize> {
    let n = value.unwrap_or(default);
    if n < min {
        return Err(constraint(
            &n.to_string(),
            path,
            &format!("have value greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(constraint(
            &n.to_string(),
            path,
            &format!("have value less than or equal to {max}"),
        ));
    }
    Ok(n as usize)
}

fn execution_id(value: Option<String>) -> ApiResult<String> {
    let id = required(value, "queryExecutionId")?;
    length(&id, "queryExecutionId", 1, 128)?;
    Ok(id)
}

fn not_found(id: &str) -> ApiError {
    invalid(format!("QueryExecution {id} was not found"))
}

/// The ARN of workgroup `name` in `region`.
pub fn work_group_arn(region: &str, name: &str) -> String {
    lakehose_api::authz::arn("athena", region, &format!("workgroup/{name}"))
}

fn check_work_group(name: &str) -> ApiResult<()> {
    if name == PRIMARY_WORK_GROUP {
        Ok(())
    } else {
        Err(invalid(format!("WorkGroup {name} is not found.")))
    }
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix, normalised to end with `/`
/// (empty for the bucket's root).
fn parse_location(location: &str) -> ApiResult<(String, String)> {
    let rest = location
        .strip_prefix("s3://")
        .or_else(|| location.strip_prefix("S3://"))
        .ok_or_else(|| {
            invalid(format!(
                "outputLocation is not a valid S3 path: {location} (expected s3://bucket/prefix/)"
            ))
        })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid(format!(
            "outputLocation is not a valid S3 path: {location} (no bucket)"
        )));
    }
    let mut prefix = prefix.trim_start_matches('/').to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

fn encode_token(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn bad_token() -> ApiError {
    invalid("Invalid NextToken.")
}

fn epoch(t: SystemTime) -> f64 {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    ms as f64 / 1000.0
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A random version-4 UUID.
fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// Operations

#[async_trait]
impl JsonService for AthenaApi {
    fn target_prefix(&self) -> &'static str {
        "AmazonAthena"
    }

    fn iam_prefix(&self) -> &'static str {
        "athena"
    }

    /// The workgroup an operation acts on (`arn:aws:athena:REGION:ACCOUNT:workgroup/NAME`):
    /// the `WorkGroup` member (default `primary`) of StartQueryExecution, ListQueryExecutions
    /// and GetWorkGroup; the workgroup of each named execution for the operations on
    /// executions; `*` for ListWorkGroups, an unknown execution, or a body that cannot be read.
    fn resources(&self, op: &str, region: &str, body: &[u8]) -> Vec<String> {
        let workgroup = |name: &str| work_group_arn(region, name);
        let star = || vec!["*".to_string()];
        let lookup = |id: &str| {
            self.registry()
                .executions
                .get(id)
                .map_or("*".to_string(), |e| workgroup(&e.workgroup))
        };
        match op {
            "StartQueryExecution" | "ListQueryExecutions" => match parse::<WorkGroupReq>(body) {
                Ok(req) => vec![workgroup(
                    req.work_group.as_deref().unwrap_or(PRIMARY_WORK_GROUP),
                )],
                Err(_) => star(),
            },
            "GetWorkGroup" => match parse::<WorkGroupReq>(body) {
                Ok(WorkGroupReq {
                    work_group: Some(name),
                }) => vec![workgroup(&name)],
                _ => star(),
            },
            "GetQueryExecution" | "GetQueryResults" | "StopQueryExecution" => {
                match parse::<IdReq>(body) {
                    Ok(IdReq {
                        query_execution_id: Some(id),
                    }) => vec![lookup(&id)],
                    _ => star(),
                }
            }
            "BatchGetQueryExecution" => match parse::<BatchReq>(body) {
                Ok(BatchReq {
                    query_execution_ids: Some(ids),
                }) if !ids.is_empty() => {
                    let mut out: Vec<String> = ids.iter().map(|id| lookup(id)).collect();
                    out.sort();
                    out.dedup();
                    out
                }
                _ => star(),
            },
            _ => star(),
        }
    }

    async fn call(&self, op: &str, _region: &str, body: &[u8]) -> ApiResult<Value> {
        match op {
            "StartQueryExecution" => self.start(parse(body)?),
            "GetQueryExecution" => self.get_execution(parse(body)?),
            "BatchGetQueryExecution" => self.batch_get(parse(body)?),
            "GetQueryResults" => self.get_results(parse(body)?).await,
            "StopQueryExecution" => self.stop(parse(body)?),
            "ListQueryExecutions" => self.list(parse(body)?),
            "GetWorkGroup" => self.get_work_group(parse(body)?),
            "ListWorkGroups" => {
                // No member is used, but the body must still be a JSON object.
                parse::<serde_json::Map<String, Value>>(body)?;
                Ok(self.list_work_groups())
            }
            other => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!("Operation AmazonAthena.{other} is not supported by Lakehose."),
            )),
        }
    }
}

impl AthenaApi {
    fn start(&self, req: StartReq) -> ApiResult<Value> {
        let query = required(req.query_string, "queryString")?;
        length(&query, "queryString", 1, MAX_QUERY_LEN)?;
        if let Some(token) = &req.client_request_token {
            length(token, "clientRequestToken", 32, 128)?;
        }
        let workgroup = req
            .work_group
            .unwrap_or_else(|| PRIMARY_WORK_GROUP.to_string());
        check_work_group(&workgroup)?;
        let context = req.query_execution_context.unwrap_or_default();
        let database = context
            .database
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        length(&database, "queryExecutionContext.database", 1, 255)?;
        let catalog = context
            .catalog
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| DEFAULT_CATALOG.to_string());
        let location = req
            .result_configuration
            .and_then(|r| r.output_location)
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| self.default_output.clone());
        let (bucket, prefix) = parse_location(&location)?;
        let statement_type = QueryEngine::statement_type(&query);
        let fingerprint =
            serde_json::to_string(&[&query, &database, &catalog, &workgroup, &location])
                .unwrap_or_default();

        let mut reg = self.registry();
        if let Some(token) = &req.client_request_token
            && let Some(id) = reg.tokens.get(token)
        {
            let same = reg
                .executions
                .get(id)
                .is_some_and(|e| e.fingerprint == fingerprint);
            return if same {
                Ok(json!({ "QueryExecutionId": id }))
            } else {
                Err(invalid(
                    "The ClientRequestToken was already used with different parameters \
                     (QueryString, QueryExecutionContext, ResultConfiguration or WorkGroup).",
                ))
            };
        }
        if !reg.make_room(self.history_limit) {
            return Err(ApiError::new(
                ErrorKind::TooManyRequests,
                format!(
                    "Too many queries are queued or running ({}); wait for some to finish.",
                    reg.executions.len()
                ),
            ));
        }
        let id = loop {
            let id = new_uuid();
            if !reg.executions.contains_key(&id) {
                break id;
            }
        };
        let csv = statement_type == "DML";
        let key = format!("{prefix}{id}.{}", if csv { "csv" } else { "txt" });
        let output = OutputObject {
            url: format!("s3://{bucket}/{key}"),
            bucket,
            key,
            csv,
        };
        let seq = reg.next_seq;
        reg.next_seq += 1;
        let execution = Execution {
            seq,
            id: id.clone(),
            query,
            database,
            catalog,
            workgroup,
            statement_type,
            client_token: req.client_request_token.clone(),
            fingerprint,
            output,
            state: QState::Queued,
            reason: None,
            error: None,
            submitted: SystemTime::now(),
            submitted_at: Instant::now(),
            started_at: None,
            completed: None,
            completed_at: None,
            engine_ms: 0,
            service_ms: 0,
            bytes_scanned: 0,
            abort: None,
            columns: Arc::new(Vec::new()),
            results: None,
        };
        reg.executions.insert(id.clone(), execution);
        reg.order.push_back(id.clone());
        if let Some(token) = req.client_request_token {
            reg.tokens.insert(token, id.clone());
        }
        // Spawned under the lock so the handle is stored before the task can look at it; the
        // task's first step takes the lock, so it simply waits for this call to finish.
        let task = tokio::spawn(self.runner.clone().run(id.clone()));
        if let Some(e) = reg.executions.get_mut(&id) {
            e.abort = Some(task.abort_handle());
        }
        Ok(json!({ "QueryExecutionId": id }))
    }

    fn get_execution(&self, req: IdReq) -> ApiResult<Value> {
        let id = execution_id(req.query_execution_id)?;
        let reg = self.registry();
        let e = reg.executions.get(&id).ok_or_else(|| not_found(&id))?;
        Ok(json!({ "QueryExecution": execution_json(e, Instant::now()) }))
    }

    fn batch_get(&self, req: BatchReq) -> ApiResult<Value> {
        let ids = required(req.query_execution_ids, "queryExecutionIds")?;
        if ids.is_empty() {
            return Err(constraint(
                "[]",
                "queryExecutionIds",
                "have length greater than or equal to 1",
            ));
        }
        if ids.len() > MAX_BATCH_GET {
            return Err(constraint(
                &format!("{} entries", ids.len()),
                "queryExecutionIds",
                &format!("have length less than or equal to {MAX_BATCH_GET}"),
            ));
        }
        let now = Instant::now();
        let reg = self.registry();
        let mut found = Vec::new();
        let mut unprocessed = Vec::new();
        for id in ids {
            match reg.executions.get(&id) {
                Some(e) => found.push(execution_json(e, now)),
                None => unprocessed.push(json!({
                    "QueryExecutionId": id,
                    "ErrorCode": "INVALID_INPUT",
                    "ErrorMessage": format!("QueryExecution {id} was not found"),
                })),
            }
        }
        Ok(json!({ "QueryExecutions": found, "UnprocessedQueryExecutionIds": unprocessed }))
    }

    async fn get_results(&self, req: ResultsReq) -> ApiResult<Value> {
        let id = execution_id(req.query_execution_id)?;
        let max = range(
            req.max_results,
            "maxResults",
            1,
            MAX_RESULTS_PAGE,
            MAX_RESULTS_PAGE,
        )?;
        let offset = match req.next_token.as_deref().filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => {
                let decoded = decode_token(token).ok_or_else(bad_token)?;
                let (offset, token_id) = decoded
                    .strip_prefix("r:")
                    .and_then(|rest| rest.split_once(':'))
                    .ok_or_else(bad_token)?;
                if token_id != id {
                    return Err(bad_token());
                }
                offset.parse::<usize>().map_err(|_| bad_token())?
            }
        };
        let (cached, columns, output) = {
            let reg = self.registry();
            let e = reg.executions.get(&id).ok_or_else(|| not_found(&id))?;
            match e.state {
                QState::Succeeded => {}
                QState::Queued | QState::Running => {
                    return Err(invalid(format!(
                        "Query has not yet finished. Current state: {}",
                        e.state.as_str()
                    )));
                }
                QState::Failed | QState::Cancelled => {
                    return Err(invalid(e.reason.clone().unwrap_or_else(|| {
                        format!("Query did not succeed. Current state: {}", e.state.as_str())
                    })));
                }
            }
            (e.results.clone(), e.columns.clone(), e.output.clone())
        };
        let rows = match cached {
            Some(rows) => rows,
            None => {
                let rows = Arc::new(self.runner.load(&output).await?);
                lock(&self.runner.registry).cache_results(&id, &rows, self.runner.cache_limit);
                rows
            }
        };
        if offset > rows.len() {
            return Err(bad_token());
        }
        let end = rows.len().min(offset + max);
        let page: Vec<Value> = (offset..end)
            .map(|i| {
                let data: Vec<Value> = rows
                    .row(i)
                    .into_iter()
                    .map(|v| match v {
                        Some(v) => json!({ "VarCharValue": v }),
                        None => json!({}),
                    })
                    .collect();
                json!({ "Data": data })
            })
            .collect();
        let mut answer = json!({
            "UpdateCount": 0,
            "ResultSet": {
                "Rows": page,
                "ResultSetMetadata": { "ColumnInfo": &*columns },
            },
        });
        if end < rows.len() {
            answer["NextToken"] = json!(encode_token(&format!("r:{end}:{id}")));
        }
        Ok(answer)
    }

    fn stop(&self, req: IdReq) -> ApiResult<Value> {
        let id = execution_id(req.query_execution_id)?;
        let mut reg = self.registry();
        let e = reg.executions.get_mut(&id).ok_or_else(|| not_found(&id))?;
        if !e.state.finished() {
            if let Some(task) = e.abort.take() {
                task.abort();
            }
            let now = Instant::now();
            if e.state == QState::Running {
                e.engine_ms = e.started_at.map_or(0, |s| millis(now - s));
            }
            e.state = QState::Cancelled;
            e.reason = Some(CANCELLED_REASON.to_string());
            e.completed = Some(SystemTime::now());
            e.completed_at = Some(now);
        }
        Ok(json!({}))
    }

    fn list(&self, req: ListReq) -> ApiResult<Value> {
        let max = match req.max_results {
            Some(0) | None => MAX_LIST_PAGE as usize,
            n => range(n, "maxResults", 0, MAX_LIST_PAGE, MAX_LIST_PAGE)?,
        };
        let workgroup = req
            .work_group
            .unwrap_or_else(|| PRIMARY_WORK_GROUP.to_string());
        check_work_group(&workgroup)?;
        let before = match req.next_token.as_deref().filter(|t| !t.is_empty()) {
            None => u64::MAX,
            Some(token) => decode_token(token)
                .and_then(|t| t.strip_prefix("l:")?.parse::<u64>().ok())
                .ok_or_else(bad_token)?,
        };
        let reg = self.registry();
        let mut page: Vec<(u64, &str)> = reg
            .order
            .iter()
            .rev()
            .filter_map(|id| reg.executions.get(id))
            .filter(|e| e.seq < before && e.workgroup == workgroup)
            .map(|e| (e.seq, e.id.as_str()))
            .take(max + 1)
            .collect();
        let next = if page.len() > max {
            page.truncate(max);
            page.last()
                .map(|(seq, _)| encode_token(&format!("l:{seq}")))
        } else {
            None
        };
        let ids: Vec<&str> = page.into_iter().map(|(_, id)| id).collect();
        let mut answer = json!({ "QueryExecutionIds": ids });
        if let Some(next) = next {
            answer["NextToken"] = json!(next);
        }
        Ok(answer)
    }

    fn get_work_group(&self, req: WorkGroupReq) -> ApiResult<Value> {
        let name = required(req.work_group, "workGroup")?;
        check_work_group(&name)?;
        Ok(json!({
            "WorkGroup": {
                "Name": PRIMARY_WORK_GROUP,
                "State": "ENABLED",
                "Configuration": {
                    "ResultConfiguration": { "OutputLocation": self.default_output },
                    "EnforceWorkGroupConfiguration": false,
                    "PublishCloudWatchMetricsEnabled": false,
                    "RequesterPaysEnabled": false,
                    "EngineVersion": engine_version(),
                },
                "Description": "",
                "CreationTime": epoch(self.created),
            }
        }))
    }

    fn list_work_groups(&self) -> Value {
        json!({
            "WorkGroups": [{
                "Name": PRIMARY_WORK_GROUP,
                "State": "ENABLED",
                "Description": "",
                "CreationTime": epoch(self.created),
                "EngineVersion": engine_version(),
            }]
        })
    }
}

fn engine_version() -> Value {
    json!({
        "SelectedEngineVersion": ENGINE_SELECTED,
        "EffectiveEngineVersion": ENGINE_EFFECTIVE,
    })
}

fn execution_json(e: &Execution, now: Instant) -> Value {
    let mut status = json!({
        "State": e.state.as_str(),
        "SubmissionDateTime": epoch(e.submitted),
    });
    if let Some(reason) = &e.reason {
        status["StateChangeReason"] = json!(reason);
    }
    if let Some(done) = e.completed {
        status["CompletionDateTime"] = json!(epoch(done));
    }
    if let Some(err) = &e.error {
        status["AthenaError"] = json!({
            "ErrorCategory": err.category,
            "ErrorType": err.error_type,
            "Retryable": err.retryable,
            "ErrorMessage": err.message,
        });
    }
    let end = e.completed_at.unwrap_or(now);
    let queued_until = e.started_at.unwrap_or(end);
    let engine_ms = match (e.state, e.started_at) {
        (QState::Running, Some(started)) => millis(now - started),
        _ => e.engine_ms,
    };
    json!({
        "QueryExecutionId": e.id,
        "Query": e.query,
        "StatementType": e.statement_type,
        "ResultConfiguration": { "OutputLocation": e.output.url },
        "ResultReuseConfiguration": {
            "ResultReuseByAgeConfiguration": { "Enabled": false },
        },
        "QueryExecutionContext": { "Database": e.database, "Catalog": e.catalog },
        "Status": status,
        "Statistics": {
            "EngineExecutionTimeInMillis": engine_ms,
            "DataScannedInBytes": e.bytes_scanned,
            "TotalExecutionTimeInMillis": millis(end - e.submitted_at),
            "QueryQueueTimeInMillis": millis(queued_until - e.submitted_at),
            "ServicePreProcessingTimeInMillis": 0,
            "QueryPlanningTimeInMillis": 0,
            "ServiceProcessingTimeInMillis": e.service_ms,
            "ResultReuseInformation": { "ReusedPreviousResult": false },
        },
        "WorkGroup": e.workgroup,
        "EngineVersion": engine_version(),
    })
}

// ---------------------------------------------------------------------------------------------
// Running a query

/// How a query ended.
enum Outcome {
    Succeeded {
        columns: Vec<Value>,
        rows: Arc<ResultRows>,
        bytes_scanned: u64,
        engine_ms: u64,
        service_ms: u64,
    },
    Failed {
        error: AthenaErrorInfo,
        engine_ms: u64,
    },
    Cancelled,
}

fn failure_reason(e: &QueryError) -> String {
    match e {
        QueryError::User {
            message,
            position: Some(p),
        } => format!("line {}:{}: {message}", p.line, p.column),
        other => other.to_string(),
    }
}

impl Runner {
    async fn run(self, id: String) {
        // Waiting for a slot keeps the execution QUEUED; dropping the permit frees it, also
        // when the task is aborted.
        let Ok(_permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let (query, options, output) = {
            let mut reg = lock(&self.registry);
            let Some(e) = reg.executions.get_mut(&id) else {
                return;
            };
            if e.state != QState::Queued {
                return;
            }
            e.state = QState::Running;
            e.started_at = Some(Instant::now());
            let options = QueryOptions {
                database: e.database.to_lowercase(),
                ..QueryOptions::default()
            };
            (e.query.clone(), options, e.output.clone())
        };
        let outcome = self.execute(&query, &options, &output).await;
        self.finish(&id, outcome);
    }

    async fn execute(&self, query: &str, options: &QueryOptions, output: &OutputObject) -> Outcome {
        let started = Instant::now();
        let result = self.engine.execute(query, options).await;
        let engine_ms = millis(started.elapsed());
        let out = match result {
            Ok(out) => out,
            Err(QueryError::Cancelled) => return Outcome::Cancelled,
            Err(e) => {
                let user = matches!(e, QueryError::User { .. });
                return Outcome::Failed {
                    error: AthenaErrorInfo {
                        category: if user { 2 } else { 1 },
                        error_type: if user { 1000 } else { 200 },
                        retryable: false,
                        message: failure_reason(&e),
                    },
                    engine_ms,
                };
            }
        };
        let service_started = Instant::now();
        let engine_ms = if out.stats.elapsed.is_zero() {
            engine_ms
        } else {
            millis(out.stats.elapsed)
        };
        let bytes_scanned = out.stats.bytes_scanned;
        let store = match self.stores.store(&output.bucket) {
            Ok(store) => store,
            Err(e) => {
                return Outcome::Failed {
                    error: AthenaErrorInfo {
                        category: 2,
                        error_type: 1000,
                        retryable: false,
                        message: format!(
                            "Unable to verify/create output bucket {}: {e}",
                            output.bucket
                        ),
                    },
                    engine_ms,
                };
            }
        };
        let csv = output.csv;
        let rendered = tokio::task::spawn_blocking(move || render_output(&out, csv)).await;
        let Ok(Rendered {
            columns,
            rows,
            object,
        }) = rendered
        else {
            return Outcome::Failed {
                error: AthenaErrorInfo {
                    category: 1,
                    error_type: 200,
                    retryable: false,
                    message: "Rendering the query result failed.".to_string(),
                },
                engine_ms,
            };
        };
        let path = object_path(&output.key);
        if let Err(e) = store.put(&path, object.into()).await {
            tracing::warn!(url = %output.url, error = %e, "writing an Athena result failed");
            return Outcome::Failed {
                error: AthenaErrorInfo {
                    category: 1,
                    error_type: 401,
                    retryable: true,
                    message: format!("Failed to write the query result to {}: {e}", output.url),
                },
                engine_ms,
            };
        }
        Outcome::Succeeded {
            columns,
            rows: Arc::new(rows),
            bytes_scanned,
            engine_ms,
            service_ms: millis(service_started.elapsed()),
        }
    }

    fn finish(&self, id: &str, outcome: Outcome) {
        let mut reg = lock(&self.registry);
        let Some(e) = reg.executions.get_mut(id) else {
            return;
        };
        if e.state != QState::Running {
            return; // stopped meanwhile: Stop already recorded the end
        }
        e.abort = None;
        e.completed = Some(SystemTime::now());
        e.completed_at = Some(Instant::now());
        match outcome {
            Outcome::Succeeded {
                columns,
                rows,
                bytes_scanned,
                engine_ms,
                service_ms,
            } => {
                e.state = QState::Succeeded;
                e.columns = Arc::new(columns);
                e.bytes_scanned = bytes_scanned;
                e.engine_ms = engine_ms;
                e.service_ms = service_ms;
                reg.cache_results(id, &rows, self.cache_limit);
            }
            Outcome::Failed { error, engine_ms } => {
                e.state = QState::Failed;
                e.reason = Some(error.message.clone());
                e.error = Some(error);
                e.engine_ms = engine_ms;
            }
            Outcome::Cancelled => {
                e.state = QState::Cancelled;
                e.reason = Some(CANCELLED_REASON.to_string());
            }
        }
    }

    /// Re-reads an evicted result from its object.
    async fn load(&self, output: &OutputObject) -> ApiResult<ResultRows> {
        let gone = |e: &dyn std::fmt::Display| {
            invalid(format!(
                "The query result at {} can no longer be read: {e}",
                output.url
            ))
        };
        let store = self.stores.store(&output.bucket).map_err(|e| gone(&e))?;
        let path = object_path(&output.key);
        let bytes = match store.get(&path).await {
            Ok(got) => got.bytes().await.map_err(|e| gone(&e))?,
            Err(e) => return Err(gone(&e)),
        };
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| gone(&e))?;
        Ok(if output.csv {
            ResultRows::from_csv(text)
        } else {
            ResultRows::from_txt(&text)
        })
    }
}

fn object_path(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

// ---------------------------------------------------------------------------------------------
// Result rows

/// A rendered result: Athena's CSV text (header first for DML) and where each row starts.
#[derive(Debug, Default)]
struct ResultRows {
    text: String,
    starts: Vec<usize>,
}

impl ResultRows {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn size(&self) -> usize {
        self.text.len() + self.starts.len() * std::mem::size_of::<usize>()
    }

    fn row(&self, i: usize) -> Vec<Option<String>> {
        let start = self.starts[i];
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        parse_csv_row(&self.text[start..end])
    }

    fn push<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) {
        self.starts.push(self.text.len());
        write_csv_row(&mut self.text, values);
    }

    /// Indexes CSV `text` as written by [`write_csv_row`].
    fn from_csv(text: String) -> Self {
        let mut starts = Vec::new();
        let mut in_quotes = false;
        let mut at_start = true;
        for (i, b) in text.bytes().enumerate() {
            if at_start {
                starts.push(i);
                at_start = false;
            }
            match b {
                b'"' => in_quotes = !in_quotes,
                b'\n' if !in_quotes => at_start = true,
                _ => {}
            }
        }
        ResultRows { text, starts }
    }

    /// Reads a `.txt` result (tab-separated, no header); NULL cannot be told from empty.
    fn from_txt(text: &str) -> Self {
        let mut rows = ResultRows::default();
        for line in text.lines() {
            rows.push(line.split('\t').map(Some));
        }
        rows
    }
}

/// Appends one Athena CSV row: every value quoted with `"` doubled, NULL empty, `\n` end.
fn write_csv_row<'a>(out: &mut String, values: impl IntoIterator<Item = Option<&'a str>>) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(v) = v {
            out.push('"');
            for c in v.chars() {
                if c == '"' {
                    out.push('"');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out.push('\n');
}

/// Parses one row written by [`write_csv_row`] (a trailing `\n` or `\r\n` is ignored;
/// an unquoted non-empty field is taken as is).
fn parse_csv_row(line: &str) -> Vec<Option<String>> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().is_some_and(|&(_, n)| n == '"') {
                        chars.next();
                        value.push('"');
                    } else {
                        end = i + 1;
                        break;
                    }
                } else {
                    value.push(c);
                }
            }
            fields.push(Some(value));
            rest = &quoted[end..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let raw = &rest[..end];
            fields.push((!raw.is_empty()).then(|| raw.to_string()));
            rest = &rest[end..];
        }
        match rest.find(',') {
            Some(p) => rest = &rest[p + 1..],
            None => break,
        }
    }
    fields
}

/// A result rendered for GetQueryResults and for its object.
struct Rendered {
    columns: Vec<Value>,
    rows: ResultRows,
    /// The object's content: the CSV itself, or the `.txt`.
    object: String,
}

fn render_output(out: &QueryOutput, csv: bool) -> Rendered {
    let fields = out.schema.fields();
    let columns = fields
        .iter()
        .map(|f| column_info(f.name(), f.data_type()))
        .collect();
    let mut rows = ResultRows::default();
    let mut txt = String::new();
    if csv {
        rows.push(fields.iter().map(|f| Some(f.name().as_str())));
    }
    for batch in &out.batches {
        let rendered: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(|c| render_values(c.as_ref()))
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(rendered.iter().map(|c| c[r].as_deref()));
            if !csv {
                for (i, c) in rendered.iter().enumerate() {
                    if i > 0 {
                        txt.push('\t');
                    }
                    txt.push_str(c[r].as_deref().unwrap_or(""));
                }
                txt.push('\n');
            }
        }
    }
    let object = if csv { rows.text.clone() } else { txt };
    Rendered {
        columns,
        rows,
        object,
    }
}

// ---------------------------------------------------------------------------------------------
// Types and values

/// Athena's `ColumnInfo` of a result column.
fn column_info(name: &str, data_type: &DataType) -> Value {
    let (ty, precision, scale) = athena_type(data_type);
    json!({
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Type": ty,
        "Precision": precision,
        "Scale": scale,
        "Nullable": "UNKNOWN",
        "CaseSensitive": ty == "varchar",
    })
}

/// Athena's type name, precision and scale of an Arrow type.
fn athena_type(data_type: &DataType) -> (&'static str, i64, i64) {
    match data_type {
        DataType::Null => ("unknown", 0, 0),
        DataType::Boolean => ("boolean", 0, 0),
        DataType::Int8 => ("tinyint", 3, 0),
        DataType::Int16 | DataType::UInt8 => ("smallint", 5, 0),
        DataType::Int32 | DataType::UInt16 => ("integer", 10, 0),
        DataType::Int64 | DataType::UInt32 => ("bigint", 19, 0),
        DataType::UInt64 => ("decimal", 20, 0),
        DataType::Float16 | DataType::Float32 => ("float", 17, 0),
        DataType::Float64 => ("double", 17, 0),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("varchar", 2147483647, 0),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("varbinary", 0, 0),
        DataType::Date32 | DataType::Date64 => ("date", 0, 0),
        DataType::Timestamp(_, None) => ("timestamp", 3, 0),
        DataType::Timestamp(_, Some(_)) => ("timestamp with time zone", 3, 0),
        DataType::Time32(_) | DataType::Time64(_) => ("time", 3, 0),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
            ("decimal", i64::from(*p), i64::from(*s))
        }
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ("decimal", i64::from(*p), i64::from(*s))
        }
        DataType::Interval(IntervalUnit::YearMonth) => ("interval year to month", 0, 0),
        DataType::Interval(_) | DataType::Duration(_) => ("interval day to second", 0, 0),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => ("array", 0, 0),
        DataType::Map(_, _) => ("map", 0, 0),
        DataType::Struct(_) => ("row", 0, 0),
        DataType::Dictionary(_, value) => athena_type(value),
        DataType::RunEndEncoded(_, values) => athena_type(values.data_type()),
        DataType::Union(_, _) => ("unknown", 0, 0),
    }
}

const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Every value of `array` as Athena shows it; `None` for NULL.
fn render_values(array: &dyn Array) -> Vec<Option<String>> {
    let n = array.len();
    let each = |f: &dyn Fn(usize) -> String| -> Vec<Option<String>> {
        (0..n).map(|i| array.is_valid(i).then(|| f(i))).collect()
    };
    match array.data_type() {
        DataType::Null => vec![None; n],
        DataType::Boolean => {
            let a = array.as_boolean();
            each(&|i| a.value(i).to_string())
        }
        DataType::Float16 => {
            let a = array.as_primitive::<Float16Type>();
            each(&|i| java_float(a.value(i).to_f32()))
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            each(&|i| java_float(a.value(i)))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            each(&|i| java_double(a.value(i)))
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            each(&|i| a.value(i).to_string())
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            each(&|i| a.value(i).to_string())
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            each(&|i| a.value(i).to_string())
        }
        DataType::Binary => binary_values(array.as_binary::<i32>()),
        DataType::LargeBinary => binary_values(array.as_binary::<i64>()),
        DataType::BinaryView => {
            let a = array.as_binary_view();
            each(&|i| hex_bytes(a.value(i)))
        }
        DataType::FixedSizeBinary(_) => {
            let a = array.as_fixed_size_binary();
            each(&|i| hex_bytes(a.value(i)))
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            let values = render_values(a.values().as_ref());
            let offsets = a.value_offsets();
            each(&|i| {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                join_list(&values[s..e])
            })
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            let values = render_values(a.values().as_ref());
            let offsets = a.value_offsets();
            each(&|i| {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                join_list(&values[s..e])
            })
        }
        DataType::FixedSizeList(_, _) => {
            let a = array.as_fixed_size_list();
            let values = render_values(a.values().as_ref());
            let len = a.value_length() as usize;
            each(&|i| {
                let s = a.value_offset(i) as usize;
                join_list(&values[s..s + len])
            })
        }
        DataType::Map(_, _) => {
            let a = array.as_map();
            let keys = render_values(a.keys().as_ref());
            let values = render_values(a.values().as_ref());
            let offsets = a.value_offsets();
            each(&|i| {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                let entries: Vec<String> = (s..e)
                    .map(|j| format!("{}={}", nested(&keys[j]), nested(&values[j])))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            })
        }
        DataType::Struct(_) => {
            let a = array.as_struct();
            let names = a.column_names();
            let children: Vec<Vec<Option<String>>> = a
                .columns()
                .iter()
                .map(|c| render_values(c.as_ref()))
                .collect();
            each(&|i| {
                let fields: Vec<String> = names
                    .iter()
                    .zip(&children)
                    .map(|(name, c)| format!("{name}={}", nested(&c[i])))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            })
        }
        DataType::Dictionary(_, value_type) => {
            match datafusion::arrow::compute::cast(array, value_type) {
                Ok(plain) => render_values(plain.as_ref()),
                Err(_) => formatted_values(array),
            }
        }
        _ => formatted_values(array),
    }
}

fn binary_values<O: OffsetSizeTrait>(a: &GenericBinaryArray<O>) -> Vec<Option<String>> {
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| hex_bytes(a.value(i))))
        .collect()
}

/// Athena's varbinary rendering: lower-case hex bytes separated by spaces.
fn hex_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn nested(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("null")
}

fn join_list(values: &[Option<String>]) -> String {
    let items: Vec<&str> = values.iter().map(nested).collect();
    format!("[{}]", items.join(", "))
}

/// Decimals, dates, times, timestamps, intervals and anything else Arrow can display.
fn formatted_values(array: &dyn Array) -> Vec<Option<String>> {
    let zone = match array.data_type() {
        DataType::Timestamp(_, Some(tz)) => Some(tz.to_string()),
        _ => None,
    };
    let options = FormatOptions::new()
        .with_display_error(true)
        .with_date_format(Some("%Y-%m-%d"))
        .with_datetime_format(Some("%Y-%m-%d"))
        .with_timestamp_format(Some(TIMESTAMP_FORMAT))
        .with_timestamp_tz_format(Some(TIMESTAMP_FORMAT))
        .with_time_format(Some("%H:%M:%S%.3f"));
    let n = array.len();
    let Ok(formatter) = ArrayFormatter::try_new(array, &options) else {
        let shown = format!("<{}>", array.data_type());
        return (0..n)
            .map(|i| array.is_valid(i).then(|| shown.clone()))
            .collect();
    };
    (0..n)
        .map(|i| {
            array.is_valid(i).then(|| {
                let mut s = formatter
                    .value(i)
                    .try_to_string()
                    .unwrap_or_else(|e| e.to_string());
                if let Some(zone) = &zone {
                    s.push(' ');
                    s.push_str(zone);
                }
                s
            })
        })
        .collect()
}

/// Java's `Double.toString` / `Float.toString`, as Athena (Trino) renders a `double` or a
/// `real`: plain notation with at least one fractional digit for 1e-3 <= |v| < 1e7, else
/// `d.dddE[-]n`; the shortest digits that round-trip in `v`'s own type.
fn java_real<T>(v: T) -> String
where
    T: Copy + std::fmt::Display + std::fmt::LowerExp + Into<f64>,
{
    let x: f64 = v.into();
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if (1e-3..1e7).contains(&x.abs()) {
        plain_with_fraction(format!("{v}"))
    } else {
        java_scientific(&format!("{v:e}"))
    }
}

fn java_double(v: f64) -> String {
    java_real(v)
}

fn java_float(v: f32) -> String {
    java_real(v)
}

fn plain_with_fraction(mut s: String) -> String {
    if !s.contains('.') {
        s.push_str(".0");
    }
    s
}

/// `1.5e-5` -> `1.5E-5`, `1e10` -> `1.0E10`.
fn java_scientific(s: &str) -> String {
    let (mantissa, exponent) = s.split_once('e').unwrap_or((s, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::builder::{MapBuilder, StringBuilder};
    use arrow_array::types::Int32Type;
    use arrow_array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
        DictionaryArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array,
        Int32Array, Int64Array, LargeStringArray, ListArray, NullArray, RecordBatch, StringArray,
        StringViewArray, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray,
        TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
        UInt64Array,
    };
    use arrow_schema::{Field, Schema};

    use super::*;
    use crate::QueryStats;

    fn values(array: ArrayRef) -> Vec<Option<String>> {
        render_values(array.as_ref())
    }

    fn strs(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_string)).collect()
    }

    #[test]
    fn doubles_render_like_java() {
        let cases = [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1234567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (1.0e10, "1.0E10"),
            (12345678.9, "1.23456789E7"),
            (-2.5e-5, "-2.5E-5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (1.0 / 3.0, "0.3333333333333333"),
        ];
        for (v, want) in cases {
            assert_eq!(java_double(v), want, "{v}");
        }
        assert_eq!(java_float(1.1), "1.1");
        assert_eq!(java_float(1e10), "1.0E10");
        assert_eq!(java_float(3.0), "3.0");
    }

    #[test]
    fn every_type_renders_as_athena_shows_it() {
        let ts = 1_704_164_645_123_i64; // 2024-01-02 03:04:05.123 UTC in ms
        let day = 19_724; // 2024-01-02
        assert_eq!(
            values(Arc::new(Int8Array::from(vec![Some(-1), None]))),
            strs(&[Some("-1"), None])
        );
        assert_eq!(
            values(Arc::new(Int16Array::from(vec![300]))),
            strs(&[Some("300")])
        );
        assert_eq!(
            values(Arc::new(Int32Array::from(vec![7]))),
            strs(&[Some("7")])
        );
        assert_eq!(
            values(Arc::new(Int64Array::from(vec![i64::MAX]))),
            strs(&[Some("9223372036854775807")])
        );
        assert_eq!(
            values(Arc::new(UInt8Array::from(vec![255]))),
            strs(&[Some("255")])
        );
        assert_eq!(
            values(Arc::new(UInt64Array::from(vec![u64::MAX]))),
            strs(&[Some("18446744073709551615")])
        );
        assert_eq!(
            values(Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(1e10),
                None
            ]))),
            strs(&[Some("1.5"), Some("1.0E10"), None])
        );
        assert_eq!(
            values(Arc::new(Float32Array::from(vec![2.25]))),
            strs(&[Some("2.25")])
        );
        let half =
            datafusion::arrow::compute::cast(&Float32Array::from(vec![1.0]), &DataType::Float16)
                .unwrap();
        assert_eq!(values(half), strs(&[Some("1.0")]));
        assert_eq!(
            values(Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None
            ]))),
            strs(&[Some("true"), Some("false"), None])
        );
        assert_eq!(
            values(Arc::new(StringArray::from(vec![
                Some("a\"b"),
                Some(""),
                None
            ]))),
            strs(&[Some("a\"b"), Some(""), None])
        );
        assert_eq!(
            values(Arc::new(LargeStringArray::from(vec!["x"]))),
            strs(&[Some("x")])
        );
        assert_eq!(
            values(Arc::new(StringViewArray::from(vec![
                "a longer string view value"
            ]))),
            strs(&[Some("a longer string view value")])
        );
        assert_eq!(
            values(Arc::new(BinaryArray::from(vec![b"hel".as_slice()]))),
            strs(&[Some("68 65 6c")])
        );
        assert_eq!(
            values(Arc::new(
                FixedSizeBinaryArray::try_from_iter(vec![vec![0u8, 255]].into_iter()).unwrap()
            )),
            strs(&[Some("00 ff")])
        );
        assert_eq!(
            values(Arc::new(Date32Array::from(vec![day]))),
            strs(&[Some("2024-01-02")])
        );
        assert_eq!(
            values(Arc::new(Date64Array::from(vec![
                i64::from(day) * 86_400_000
            ]))),
            strs(&[Some("2024-01-02")])
        );
        assert_eq!(
            values(Arc::new(TimestampMillisecondArray::from(vec![ts]))),
            strs(&[Some("2024-01-02 03:04:05.123")])
        );
        assert_eq!(
            values(Arc::new(TimestampSecondArray::from(vec![ts / 1000]))),
            strs(&[Some("2024-01-02 03:04:05.000")])
        );
        assert_eq!(
            values(Arc::new(TimestampMicrosecondArray::from(vec![
                ts * 1000 + 456
            ]))),
            strs(&[Some("2024-01-02 03:04:05.123")])
        );
        assert_eq!(
            values(Arc::new(
                TimestampNanosecondArray::from(vec![ts * 1_000_000]).with_timezone("UTC")
            )),
            strs(&[Some("2024-01-02 03:04:05.123 UTC")])
        );
        assert_eq!(
            values(Arc::new(Time64MicrosecondArray::from(vec![
                (3 * 3600 + 4 * 60 + 5) * 1_000_000 + 6000
            ]))),
            strs(&[Some("03:04:05.006")])
        );
        assert_eq!(
            values(Arc::new(
                Decimal128Array::from(vec![Some(12345), Some(-5), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap()
            )),
            strs(&[Some("123.45"), Some("-0.05"), None])
        );
        assert_eq!(values(Arc::new(NullArray::new(2))), strs(&[None, None]));

        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![]),
            Some(vec![Some(3), None]),
            None,
        ]);
        assert_eq!(
            values(Arc::new(list)),
            strs(&[Some("[1, 2]"), Some("[]"), Some("[3, null]"), None])
        );

        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        map.keys().append_value("k");
        map.values().append_value("v");
        map.keys().append_value("k2");
        map.values().append_null();
        map.append(true).unwrap();
        map.append(false).unwrap();
        assert_eq!(
            values(Arc::new(map.finish())),
            strs(&[Some("{k=v, k2=null}"), None])
        );

        let row = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
            ),
        ]);
        assert_eq!(
            values(Arc::new(row)),
            strs(&[Some("{a=1, b=x}"), Some("{a=2, b=null}")])
        );

        let dict: DictionaryArray<Int32Type> =
            vec![Some("p"), None, Some("q")].into_iter().collect();
        assert_eq!(values(Arc::new(dict)), strs(&[Some("p"), None, Some("q")]));

        // A sliced list keeps its own rows only.
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1)]),
            Some(vec![Some(2), Some(3)]),
        ]);
        assert_eq!(values(Arc::new(list.slice(1, 1))), strs(&[Some("[2, 3]")]));
    }

    #[test]
    fn types_map_to_athena_names() {
        let cases: Vec<(DataType, &str, i64, i64)> = vec![
            (DataType::Utf8, "varchar", 2147483647, 0),
            (DataType::Int8, "tinyint", 3, 0),
            (DataType::Int16, "smallint", 5, 0),
            (DataType::Int32, "integer", 10, 0),
            (DataType::Int64, "bigint", 19, 0),
            (DataType::Float32, "float", 17, 0),
            (DataType::Float64, "double", 17, 0),
            (DataType::Boolean, "boolean", 0, 0),
            (DataType::Date32, "date", 0, 0),
            (
                DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
                "timestamp",
                3,
                0,
            ),
            (DataType::Decimal128(12, 3), "decimal", 12, 3),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                "array",
                0,
                0,
            ),
            (DataType::Struct(Vec::<Field>::new().into()), "row", 0, 0),
            (DataType::Binary, "varbinary", 0, 0),
            (
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                "varchar",
                2147483647,
                0,
            ),
        ];
        for (dt, name, precision, scale) in cases {
            assert_eq!(athena_type(&dt), (name, precision, scale), "{dt}");
        }
        let info = column_info("c", &DataType::Utf8);
        assert_eq!(info["CaseSensitive"], true);
        assert_eq!(info["Nullable"], "UNKNOWN");
        assert_eq!(info["CatalogName"], "hive");
        assert_eq!(column_info("n", &DataType::Int64)["CaseSensitive"], false);
    }

    #[test]
    fn csv_rows_round_trip() {
        let mut rows = ResultRows::default();
        rows.push([Some("a"), Some("b"), Some("c")]);
        rows.push([Some("x,\"y\""), None, Some("")]);
        rows.push([Some("multi\nline"), Some("z"), None]);
        assert_eq!(
            rows.text,
            "\"a\",\"b\",\"c\"\n\"x,\"\"y\"\"\",,\"\"\n\"multi\nline\",\"z\",\n"
        );
        let reread = ResultRows::from_csv(rows.text.clone());
        assert_eq!(reread.starts, rows.starts);
        for i in 0..rows.len() {
            assert_eq!(reread.row(i), rows.row(i));
        }
        assert_eq!(rows.row(1), strs(&[Some("x,\"y\""), None, Some("")]));
        assert_eq!(rows.row(2), strs(&[Some("multi\nline"), Some("z"), None]));
        let txt = ResultRows::from_txt("db1\tx\ndb2\t\n");
        assert_eq!(txt.len(), 2);
        assert_eq!(txt.row(1), strs(&[Some("db2"), Some("")]));
    }

    #[test]
    fn ddl_results_are_headerless_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tab_name", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("t1"), None])),
                Arc::new(Int32Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let out = QueryOutput {
            schema,
            batches: vec![batch],
            truncated: false,
            stats: QueryStats::default(),
        };
        let txt = render_output(&out, false);
        assert_eq!(txt.object, "t1\t1\n\t2\n");
        assert_eq!(txt.rows.len(), 2);
        assert_eq!(txt.rows.row(1), strs(&[None, Some("2")]));
        let csv = render_output(&out, true);
        assert_eq!(csv.object, "\"tab_name\",\"n\"\n\"t1\",\"1\"\n,\"2\"\n");
        assert_eq!(csv.rows.len(), 3);
        assert_eq!(csv.columns[1]["Type"], "integer");
    }

    #[test]
    fn locations_tokens_and_ids() {
        assert_eq!(
            parse_location("s3://b/p/q").unwrap(),
            ("b".to_string(), "p/q/".to_string())
        );
        assert_eq!(
            parse_location("s3://b").unwrap(),
            ("b".to_string(), String::new())
        );
        assert_eq!(
            parse_location("s3://b/").unwrap(),
            ("b".to_string(), String::new())
        );
        assert!(parse_location("http://b/").is_err());
        assert!(parse_location("s3:///x").is_err());
        assert_eq!(
            decode_token(&encode_token("r:5:id")).as_deref(),
            Some("r:5:id")
        );
        assert_eq!(decode_token("zz"), None);
        assert_eq!(decode_token("abc"), None);
        let mut seen = HashMap::new();
        for _ in 0..1000 {
            let id = new_uuid();
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
            assert!(seen.insert(id, ()).is_none());
        }
    }
}
