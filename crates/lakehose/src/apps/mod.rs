//! Streaming SQL applications: the registry, and the Kinesis Analytics (SQL) API over it.
//!
//! `aws kinesisanalytics create-application --application-code file://app.sql` (or boto3's
//! `kinesisanalytics` client) defines an application; `start-application` runs it next to the
//! delivery streams ([`runtime`]); `stop-application`, `update-application` (a new version),
//! `describe-application`, `list-applications` and `delete-application` operate it. The code
//! is Lakehose's application SQL ([`lakehose_analytics::sql`]): Flink-style tables and
//! windowing functions or the legacy Kinesis Analytics pumps. `Inputs` and `Outputs` given to
//! CreateApplication the Kinesis Analytics way (a Firehose input with a record schema, a
//! Firehose output) are turned into the equivalent `CREATE STREAM ... WITH (...)` statements.
//!
//! Each application lives in `data_dir/analytics/NAME/`: `app.json` (its definition and
//! whether it should run) and `state.json` (the runtime's checkpoint). Applications that were
//! running when the server stopped start again, from where they stopped.
//!
//! Invariants: a definition is validated (parsed and planned) before it is stored, so a stored
//! application always compiles; control calls are serialised by one lock; a running
//! application's thread is stopped (and its checkpoint written) before its definition changes.
//! Each application runs on a thread of its own (a single-threaded tokio runtime), so its CPU
//! work never holds the server's workers.

pub(crate) mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lakehose_analytics::Application;
use lakehose_api::{ApiError, ErrorKind, JsonService, Result as ApiResult};
use lakehose_pipeline::Engine;
use lakehose_sinks::transport::HttpClient;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

use runtime::{RunContext, RunStatus, StartingPosition};

pub(crate) use lakehose_pipeline::write_atomic;

/// Most rows a reference table may have (it is held in memory and joined per micro-batch).
const MAX_REFERENCE_ROWS: usize = 1_000_000;

/// An application's stored definition (`app.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Definition {
    name: String,
    description: Option<String>,
    /// The SQL as given (`ApplicationCode`).
    code: String,
    /// `Inputs` / `Outputs` as given, turned into statements before `code`.
    inputs: Vec<Value>,
    outputs: Vec<Value>,
    version: u64,
    created_s: f64,
    updated_s: f64,
    /// Whether it should be running.
    running: bool,
}

impl Definition {
    /// The full application text: statements for the Kinesis Analytics inputs and outputs,
    /// then the code.
    fn text(&self) -> ApiResult<String> {
        let mut text = String::new();
        for input in &self.inputs {
            text.push_str(&input_statement(input)?);
        }
        for output in &self.outputs {
            text.push_str(&output_statement(output)?);
        }
        text.push_str(&self.code);
        Ok(text)
    }
}

struct Running {
    stop: watch::Sender<bool>,
    /// The application's own thread (see [`Applications::start`]).
    thread: std::thread::JoinHandle<Result<(), String>>,
    status: Arc<RunStatus>,
}

struct Entry {
    definition: Definition,
    running: Option<Running>,
    /// The last run's status (kept after it stops, for DescribeApplication).
    status: Arc<RunStatus>,
}

/// All applications of this server.
pub struct Applications {
    dir: PathBuf,
    engine: Arc<Engine>,
    /// Reads reference tables (`'connector' = 'catalog'`) when an application starts.
    query: lakehose_query::QueryEngine,
    http: Arc<HttpClient>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Applications {
    /// Loads the applications under `data_dir/analytics` and starts those that were running.
    pub async fn open(
        data_dir: &Path,
        engine: Arc<Engine>,
        query: lakehose_query::QueryEngine,
        egress: lakehose_sinks::egress::EgressPolicy,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = data_dir.join("analytics");
        std::fs::create_dir_all(&dir)?;
        let apps = Arc::new(Applications {
            dir: dir.clone(),
            engine,
            query,
            http: Arc::new(HttpClient::new(egress)),
            entries: Mutex::new(BTreeMap::new()),
        });
        let mut entries = apps.entries.lock().await;
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path().join("app.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let definition: Definition = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let mut entry = Entry {
                definition,
                running: None,
                status: Arc::default(),
            };
            if entry.definition.running
                && let Err(e) = apps
                    .start(&mut entry, StartingPosition::LastStoppedPoint)
                    .await
            {
                tracing::error!(application = entry.definition.name, error = %e.message, "cannot restart a streaming SQL application");
            }
            entries.insert(entry.definition.name.clone(), entry);
        }
        drop(entries);
        Ok(apps)
    }

    /// Stops every running application (each writes its checkpoint).
    pub async fn shutdown(&self) {
        let mut entries = self.entries.lock().await;
        for entry in entries.values_mut() {
            stop(entry).await;
        }
    }

    fn app_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn save(&self, d: &Definition) -> ApiResult<()> {
        let dir = self.app_dir(&d.name);
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        let bytes = serde_json::to_vec_pretty(d).map_err(ApiError::internal)?;
        write_atomic(&dir.join("app.json"), &bytes).map_err(ApiError::internal)
    }

    fn context(&self, d: &Definition, status: Arc<RunStatus>) -> RunContext {
        RunContext {
            name: d.name.clone(),
            version: d.version,
            dir: self.app_dir(&d.name),
            engine: self.engine.clone(),
            http: self.http.clone(),
            status,
        }
    }

    async fn start(&self, entry: &mut Entry, position: StartingPosition) -> ApiResult<()> {
        let app = self.compile(&entry.definition, true).await?;
        let status = Arc::new(RunStatus::default());
        let ctx = self.context(&entry.definition, status.clone());
        let positions = runtime::starting_positions(&ctx, &app, position).map_err(|m| {
            ApiError::new(
                ErrorKind::InvalidArgument,
                format!("Application {} cannot start: {m}", entry.definition.name),
            )
        })?;
        let (stop, stopped) = watch::channel(false);
        // Each application runs on a thread of its own with a single-threaded runtime: decoding,
        // windowing and DataFusion are CPU work that must not hold the server's workers (and
        // so the ingest API) while a large round is processed.
        let name = entry.definition.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("analytics-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the application's runtime: {e}"))?;
                rt.block_on(runtime::run(ctx, app, positions, stopped))
            })
            .map_err(ApiError::internal)?;
        entry.status = status.clone();
        entry.running = Some(Running {
            stop,
            thread,
            status,
        });
        Ok(())
    }

    /// Parses and plans `d`. Reference tables are read from the catalog with `read_references`
    /// (at start); otherwise only their existence and schema are checked (with no rows).
    async fn compile(&self, d: &Definition, read_references: bool) -> ApiResult<Application> {
        let invalid = |m: String| ApiError::new(ErrorKind::CodeValidation, m);
        let sql = lakehose_analytics::sql::parse(&d.text()?).map_err(|e| invalid(e.to_string()))?;
        let mut references = Vec::new();
        for name in sql.references() {
            let table = &sql.tables[&name];
            let (Some(db), Some(t)) = (table.options.get("database"), table.options.get("table"))
            else {
                return Err(invalid(format!(
                    "reference table `{name}` needs WITH ('connector' = 'catalog', 'database' = 'DB', 'table' = 'TABLE')"
                )));
            };
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let limit = if read_references { "" } else { " LIMIT 0" };
            let options = lakehose_query::QueryOptions {
                database: db.clone(),
                include_fresh: true,
                row_limit: Some(MAX_REFERENCE_ROWS),
            };
            let out = self
                .query
                .execute(
                    &format!("SELECT * FROM {}.{}{limit}", quote(db), quote(t)),
                    &options,
                )
                .await
                .map_err(|e| invalid(format!("reference table `{name}` ({db}.{t}): {e}")))?;
            if out.truncated {
                return Err(invalid(format!(
                    "reference table `{name}` ({db}.{t}) has more than {MAX_REFERENCE_ROWS} rows"
                )));
            }
            references.push(lakehose_analytics::ReferenceTable {
                name,
                schema: out.schema,
                batches: out.batches,
            });
        }
        Application::with_references(sql, &references)
            .await
            .map_err(|e| invalid(e.to_string()))
    }

    fn arn(&self, region: &str, name: &str) -> String {
        lakehose_api::authz::arn("kinesisanalytics", region, &format!("application/{name}"))
    }

    fn detail(&self, region: &str, entry: &Entry) -> Value {
        let d = &entry.definition;
        let status = &entry.status;
        let pumps = status
            .pumps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let failure = status
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let rejected: Vec<Value> = status
            .recent_rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let inputs: Vec<Value> = d
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let prefix = input["NamePrefix"].as_str().unwrap_or_default();
                json!({
                    "InputId": format!("{}.1", i + 1),
                    "NamePrefix": prefix,
                    "InAppStreamNames": [format!("{prefix}_001")],
                    "KinesisFirehoseInputDescription": input.get("KinesisFirehoseInput"),
                    "InputSchema": input.get("InputSchema"),
                    "InputParallelism": {"Count": 1},
                })
            })
            .collect();
        let outputs: Vec<Value> = d
            .outputs
            .iter()
            .enumerate()
            .map(|(i, output)| {
                json!({
                    "OutputId": format!("{}.1", i + 1),
                    "Name": output.get("Name"),
                    "KinesisFirehoseOutputDescription": output.get("KinesisFirehoseOutput"),
                    "DestinationSchema": output.get("DestinationSchema"),
                })
            })
            .collect();
        json!({
            "ApplicationName": d.name,
            "ApplicationDescription": d.description,
            "ApplicationARN": self.arn(region, &d.name),
            "ApplicationStatus": app_status(entry),
            "CreateTimestamp": d.created_s,
            "LastUpdateTimestamp": d.updated_s,
            "InputDescriptions": inputs,
            "OutputDescriptions": outputs,
            "ApplicationCode": d.code,
            "ApplicationVersionId": d.version,
            // Lakehose's own figures (AWS clients ignore unknown members).
            "LakehoseRuntime": {
                "Pumps": pumps,
                "Failure": failure,
                "RecentRejectedRecords": rejected,
            },
        })
    }
}

fn app_status(entry: &Entry) -> &'static str {
    match &entry.running {
        Some(r) if !r.thread.is_finished() => "RUNNING",
        _ => "READY",
    }
}

async fn stop(entry: &mut Entry) {
    if let Some(running) = entry.running.take() {
        let _ = running.stop.send(true);
        let thread = running.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => tracing::error!("streaming SQL application thread panicked"),
        }
        entry.status = running.status;
    }
}

/// The stream name of a Firehose ARN (`arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`).
fn firehose_stream(arn: &str) -> ApiResult<String> {
    arn.rsplit_once(":deliverystream/")
        .map(|(_, n)| n.to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("{arn} is not a Firehose delivery stream ARN")))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `CREATE STREAM "PREFIX_001" (columns) WITH (...)` for a Kinesis Analytics `Input`.
fn input_statement(input: &Value) -> ApiResult<String> {
    let prefix = input["NamePrefix"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("Inputs[].NamePrefix is required"))?;
    let arn = input["KinesisFirehoseInput"]["ResourceARN"]
        .as_str()
        .ok_or_else(|| {
            ApiError::invalid(
                "Inputs[] must be a KinesisFirehoseInput (Lakehose has no Kinesis data streams)",
            )
        })?;
    let stream = firehose_stream(arn)?;
    let schema = &input["InputSchema"];
    let format = schema["RecordFormat"]["RecordFormatType"]
        .as_str()
        .unwrap_or("JSON");
    if format != "JSON" {
        return Err(ApiError::invalid(format!(
            "InputSchema.RecordFormat.RecordFormatType {format} is not supported (JSON only)"
        )));
    }
    let columns = schema["RecordColumns"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::invalid("InputSchema.RecordColumns is required"))?;
    let mut defs = Vec::new();
    for c in columns {
        let name = c["Name"]
            .as_str()
            .ok_or_else(|| ApiError::invalid("RecordColumns[].Name is required"))?;
        let sql_type = c["SqlType"]
            .as_str()
            .ok_or_else(|| ApiError::invalid("RecordColumns[].SqlType is required"))?;
        if let Some(mapping) = c["Mapping"].as_str() {
            let key = mapping.trim_start_matches("$.");
            if !key.eq_ignore_ascii_case(name) {
                return Err(ApiError::invalid(format!(
                    "RecordColumns[{name}].Mapping {mapping}: only $.{name} (the key of the same name) is supported"
                )));
            }
        }
        if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(ApiError::invalid(format!("invalid column name {name}")));
        }
        defs.push(format!("{name} {sql_type}"));
    }
    Ok(format!(
        "CREATE STREAM {} ({}) WITH ('connector' = 'firehose', 'stream' = {});\n",
        quote_ident(&format!("{prefix}_001")),
        defs.join(", "),
        quote_string(&stream)
    ))
}

/// `CREATE STREAM "NAME" WITH (...)` for a Kinesis Analytics `Output`.
fn output_statement(output: &Value) -> ApiResult<String> {
    let name = output["Name"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("Outputs[].Name is required"))?;
    let arn = output["KinesisFirehoseOutput"]["ResourceARN"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("Outputs[] must be a KinesisFirehoseOutput"))?;
    let format = output["DestinationSchema"]["RecordFormatType"]
        .as_str()
        .unwrap_or("JSON");
    if format != "JSON" {
        return Err(ApiError::invalid(format!(
            "DestinationSchema.RecordFormatType {format} is not supported (JSON only)"
        )));
    }
    Ok(format!(
        "CREATE STREAM {} WITH ('connector' = 'firehose', 'stream' = {});\n",
        quote_ident(name),
        quote_string(&firehose_stream(arn)?)
    ))
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1e3)
}

fn name_of(body: &Value) -> ApiResult<String> {
    let name = body["ApplicationName"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("ApplicationName is required"))?;
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(ApiError::invalid(format!(
            "ApplicationName {name:?} must be 1-128 characters of [a-zA-Z0-9_.-]"
        )));
    }
    Ok(name.to_string())
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Application {name} is not found."),
    )
}

/// The Kinesis Analytics (SQL applications) API, `KinesisAnalytics_20150814.*`.
pub struct AnalyticsApi(pub Arc<Applications>);

#[async_trait]
impl JsonService for AnalyticsApi {
    fn target_prefix(&self) -> &'static str {
        "KinesisAnalytics_20150814"
    }

    fn iam_prefix(&self) -> &'static str {
        "kinesisanalytics"
    }

    fn resources(&self, op: &str, region: &str, body: &[u8]) -> Vec<String> {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (op, body["ApplicationName"].as_str()) {
            ("ListApplications", _) | (_, None) => vec!["*".into()],
            (_, Some(name)) => vec![self.0.arn(region, name)],
        }
    }

    async fn call(&self, op: &str, region: &str, body: &[u8]) -> ApiResult<Value> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::new(ErrorKind::Serialization, format!("invalid JSON: {e}"))
            })?
        };
        let apps = &self.0;
        match op {
            "CreateApplication" => {
                let name = name_of(&body)?;
                let list = |key: &str| body[key].as_array().cloned().unwrap_or_default();
                let now = now_s();
                let definition = Definition {
                    name: name.clone(),
                    description: body["ApplicationDescription"].as_str().map(str::to_string),
                    code: body["ApplicationCode"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    inputs: list("Inputs"),
                    outputs: list("Outputs"),
                    version: 1,
                    created_s: now,
                    updated_s: now,
                    running: false,
                };
                if definition.code.trim().is_empty() {
                    return Err(ApiError::new(
                        ErrorKind::CodeValidation,
                        "ApplicationCode is required: Lakehose runs the application's SQL.",
                    ));
                }
                let mut entries = apps.entries.lock().await;
                if entries.contains_key(&name) {
                    return Err(ApiError::in_use(format!(
                        "Application {name} already exists."
                    )));
                }
                apps.compile(&definition, false).await?;
                apps.save(&definition)?;
                entries.insert(
                    name.clone(),
                    Entry {
                        definition,
                        running: None,
                        status: Arc::default(),
                    },
                );
                Ok(json!({"ApplicationSummary": {
                    "ApplicationName": name,
                    "ApplicationARN": apps.arn(region, &name),
                    "ApplicationStatus": "READY",
                }}))
            }
            "DescribeApplication" => {
                let name = name_of(&body)?;
                let entries = apps.entries.lock().await;
                let entry = entries.get(&name).ok_or_else(|| not_found(&name))?;
                Ok(json!({"ApplicationDetail": apps.detail(region, entry)}))
            }
            "ListApplications" => {
                let limit = body["Limit"].as_u64().unwrap_or(50).clamp(1, 50) as usize;
                let after = body["ExclusiveStartApplicationName"].as_str();
                let entries = apps.entries.lock().await;
                let mut names = entries
                    .iter()
                    .filter(|(n, _)| after.is_none_or(|a| n.as_str() > a));
                let page: Vec<Value> = names
                    .by_ref()
                    .take(limit)
                    .map(|(n, e)| {
                        json!({
                            "ApplicationName": n,
                            "ApplicationARN": apps.arn(region, n),
                            "ApplicationStatus": app_status(e),
                        })
                    })
                    .collect();
                Ok(
                    json!({"ApplicationSummaries": page, "HasMoreApplications": names.next().is_some()}),
                )
            }
            "StartApplication" => {
                let name = name_of(&body)?;
                let position = match body["InputConfigurations"][0]["InputStartingPositionConfiguration"]
                    ["InputStartingPosition"]
                    .as_str()
                {
                    None | Some("LAST_STOPPED_POINT") => StartingPosition::LastStoppedPoint,
                    Some("NOW") => StartingPosition::Now,
                    Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
                    Some(other) => {
                        return Err(ApiError::invalid(format!(
                            "InputStartingPosition {other} is not NOW, TRIM_HORIZON or LAST_STOPPED_POINT"
                        )));
                    }
                };
                let mut entries = apps.entries.lock().await;
                let entry = entries.get_mut(&name).ok_or_else(|| not_found(&name))?;
                if app_status(entry) == "RUNNING" {
                    return Err(ApiError::in_use(format!(
                        "Application {name} is already running."
                    )));
                }
                stop(entry).await;
                apps.start(entry, position).await?;
                entry.definition.running = true;
                apps.save(&entry.definition)?;
                Ok(json!({}))
            }
            "StopApplication" => {
                let name = name_of(&body)?;
                let mut entries = apps.entries.lock().await;
                let entry = entries.get_mut(&name).ok_or_else(|| not_found(&name))?;
                stop(entry).await;
                entry.definition.running = false;
                apps.save(&entry.definition)?;
                Ok(json!({}))
            }
            "UpdateApplication" => {
                let name = name_of(&body)?;
                let mut entries = apps.entries.lock().await;
                let entry = entries.get_mut(&name).ok_or_else(|| not_found(&name))?;
                let current = body["CurrentApplicationVersionId"].as_u64();
                if current != Some(entry.definition.version) {
                    return Err(ApiError::new(
                        ErrorKind::ConcurrentModification,
                        format!(
                            "CurrentApplicationVersionId {current:?} is not the application's version {}.",
                            entry.definition.version
                        ),
                    ));
                }
                let update = &body["ApplicationUpdate"];
                let mut next = entry.definition.clone();
                if let Some(code) = update["ApplicationCodeUpdate"].as_str() {
                    next.code = code.to_string();
                }
                for key in [
                    "InputUpdates",
                    "OutputUpdates",
                    "ReferenceDataSourceUpdates",
                ] {
                    if update.get(key).is_some_and(|v| !v.is_null()) {
                        return Err(ApiError::invalid(format!(
                            "ApplicationUpdate.{key} is not supported: update the CREATE STREAM statements in ApplicationCodeUpdate instead"
                        )));
                    }
                }
                next.version += 1;
                next.updated_s = now_s();
                apps.compile(&next, false).await?;
                let was_running = entry.running.is_some();
                stop(entry).await;
                entry.definition = next;
                apps.save(&entry.definition)?;
                if was_running
                    && let Err(e) = apps.start(entry, StartingPosition::LastStoppedPoint).await
                {
                    // The new version is stored; it is just not running.
                    entry.definition.running = false;
                    apps.save(&entry.definition)?;
                    return Err(ApiError::new(
                        e.kind,
                        format!(
                            "Application {name} was updated to version {} but could not start again: {}",
                            entry.definition.version, e.message
                        ),
                    ));
                }
                Ok(json!({}))
            }
            "DeleteApplication" => {
                let name = name_of(&body)?;
                let mut entries = apps.entries.lock().await;
                let entry = entries.get_mut(&name).ok_or_else(|| not_found(&name))?;
                if let Some(created) = body["CreateTimestamp"].as_f64()
                    && (created - entry.definition.created_s).abs() >= 1.0
                {
                    return Err(ApiError::invalid(format!(
                        "CreateTimestamp {created} does not match the application's ({}).",
                        entry.definition.created_s
                    )));
                }
                stop(entry).await;
                entries.remove(&name);
                runtime::release_holds(&apps.engine, &name);
                std::fs::remove_dir_all(apps.app_dir(&name)).map_err(ApiError::internal)?;
                Ok(json!({}))
            }
            other => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!(
                    "Operation KinesisAnalytics_20150814.{other} is not supported by Lakehose."
                ),
            )),
        }
    }
}
