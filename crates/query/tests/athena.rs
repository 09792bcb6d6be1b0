//! The AmazonAthena API end to end: `AthenaApi::call` with JSON bodies, a `QueryEngine` over a
//! `FileCatalog`, results written to a local-filesystem bucket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lakehose_api::{ApiError, JsonService};
use lakehose_catalog::{CatalogStore, FileCatalog};
use lakehose_query::athena::AthenaApi;
use lakehose_query::{BucketStores, QueryEngine};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use serde_json::{Value, json};

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lakehose-athena-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Buckets are folders of `root`; only `results` and `other` exist.
#[derive(Debug)]
struct LocalBuckets {
    root: PathBuf,
}

impl BucketStores for LocalBuckets {
    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
        if !matches!(bucket, "results" | "other") {
            return Err(format!("bucket {bucket} does not exist"));
        }
        let dir = self.root.join(bucket);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| e.to_string())?;
        Ok(Arc::new(fs))
    }
}

struct Fixture {
    _dir: TempDir,
    buckets: PathBuf,
    api: AthenaApi,
}

fn fixture(configure: impl FnOnce(AthenaApi) -> AthenaApi) -> Fixture {
    let dir = TempDir::new();
    let buckets = dir.0.join("buckets");
    let catalog: Arc<dyn CatalogStore> =
        Arc::new(FileCatalog::open(&dir.0.join("catalog")).unwrap());
    let stores: Arc<dyn BucketStores> = Arc::new(LocalBuckets {
        root: buckets.clone(),
    });
    let engine = QueryEngine::new(catalog, stores.clone());
    let api = configure(
        AthenaApi::new(engine, stores).with_default_output_location("s3://results/athena/"),
    );
    Fixture {
        _dir: dir,
        buckets,
        api,
    }
}

impl Fixture {
    async fn call(&self, op: &str, body: Value) -> Result<Value, ApiError> {
        self.api
            .call(op, "us-east-1", body.to_string().as_bytes())
            .await
    }

    async fn ok(&self, op: &str, body: Value) -> Value {
        match self.call(op, body.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("{op} {body} failed: {e}"),
        }
    }

    async fn err(&self, op: &str, body: Value) -> (String, String) {
        match self.call(op, body.clone()).await {
            Ok(v) => panic!("{op} {body} succeeded: {v}"),
            Err(e) => {
                let b = e.body();
                (
                    b["__type"].as_str().unwrap().to_string(),
                    b["message"].as_str().unwrap().to_string(),
                )
            }
        }
    }

    async fn start(&self, sql: &str) -> String {
        let v = self
            .ok("StartQueryExecution", json!({ "QueryString": sql }))
            .await;
        v["QueryExecutionId"].as_str().unwrap().to_string()
    }

    async fn execution(&self, id: &str) -> Value {
        self.ok("GetQueryExecution", json!({ "QueryExecutionId": id }))
            .await["QueryExecution"]
            .clone()
    }

    async fn wait_for(&self, id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let e = self.execution(id).await;
            if states.contains(&e["Status"]["State"].as_str().unwrap()) {
                return e;
            }
            assert!(Instant::now() < deadline, "{id} stuck: {e}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait(&self, id: &str) -> Value {
        self.wait_for(id, &["SUCCEEDED", "FAILED", "CANCELLED"])
            .await
    }

    /// Every row of every page, following NextToken.
    async fn all_rows(&self, id: &str, page: i64) -> Vec<Vec<Option<String>>> {
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = json!({ "QueryExecutionId": id, "MaxResults": page });
            if let Some(t) = &token {
                req["NextToken"] = json!(t);
            }
            let v = self.ok("GetQueryResults", req).await;
            let got = v["ResultSet"]["Rows"].as_array().unwrap();
            assert!(got.len() <= page as usize);
            rows.extend(got.iter().map(row_values));
            match v["NextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return rows,
            }
        }
    }

    fn object(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix("s3://").unwrap();
        std::fs::read_to_string(self.buckets.join(rest)).ok()
    }
}

fn row_values(row: &Value) -> Vec<Option<String>> {
    row["Data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d.get("VarCharValue")
                .map(|v| v.as_str().unwrap().to_string())
        })
        .collect()
}

fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|x| x.map(str::to_string)).collect()
}

const FIVE_ROWS: &str = "SELECT * FROM (VALUES (1, 'a'), (2, NULL), (3, 'c\"q'), (4, 'd'), \
                         (5, 'e')) AS t(n, s) ORDER BY n";

const SLOW: &str = "SELECT count(*) FROM generate_series(1, 1000000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_paginate_and_csv_is_athenas() {
    let f = fixture(|a| a);
    let id = f.start(FIVE_ROWS).await;
    assert_eq!(id.len(), 36);
    let e = f.wait(&id).await;
    assert_eq!(e["Status"]["State"], "SUCCEEDED", "{e}");
    assert_eq!(e["QueryExecutionId"], id.as_str());
    assert_eq!(e["Query"], FIVE_ROWS);
    assert_eq!(e["StatementType"], "DML");
    assert_eq!(e["WorkGroup"], "primary");
    assert_eq!(
        e["QueryExecutionContext"],
        json!({"Database": "default", "Catalog": "awsdatacatalog"})
    );
    assert_eq!(
        e["EngineVersion"],
        json!({"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"})
    );
    let url = format!("s3://results/athena/{id}.csv");
    assert_eq!(e["ResultConfiguration"]["OutputLocation"], url.as_str());
    let submitted = e["Status"]["SubmissionDateTime"].as_f64().unwrap();
    let completed = e["Status"]["CompletionDateTime"].as_f64().unwrap();
    assert!(submitted > 1.6e9 && submitted <= completed, "{e}");
    assert!(e["Status"].get("AthenaError").is_none());
    for stat in [
        "EngineExecutionTimeInMillis",
        "DataScannedInBytes",
        "TotalExecutionTimeInMillis",
        "QueryQueueTimeInMillis",
        "QueryPlanningTimeInMillis",
        "ServiceProcessingTimeInMillis",
    ] {
        assert!(e["Statistics"][stat].is_u64(), "{stat}: {e}");
    }

    // The CSV object is Athena's.
    assert_eq!(
        f.object(&url).unwrap(),
        "\"n\",\"s\"\n\"1\",\"a\"\n\"2\",\n\"3\",\"c\"\"q\"\n\"4\",\"d\"\n\"5\",\"e\"\n"
    );

    // First page: header + first row; metadata on every page.
    let page = f
        .ok(
            "GetQueryResults",
            json!({"QueryExecutionId": id, "MaxResults": 2}),
        )
        .await;
    assert_eq!(page["UpdateCount"], 0);
    let cols = page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
        .as_array()
        .unwrap();
    assert_eq!(cols.len(), 2);
    assert_eq!(cols[0]["Name"], "n");
    assert_eq!(cols[0]["Label"], "n");
    assert_eq!(cols[0]["Type"], "bigint");
    assert_eq!(cols[0]["Precision"], 19);
    assert_eq!(cols[0]["CaseSensitive"], false);
    assert_eq!(cols[1]["Type"], "varchar");
    assert_eq!(cols[1]["CaseSensitive"], true);
    assert_eq!(cols[1]["CatalogName"], "hive");
    assert_eq!(cols[1]["Nullable"], "UNKNOWN");
    let rows = page["ResultSet"]["Rows"].as_array().unwrap();
    assert_eq!(
        rows[0],
        json!({"Data": [{"VarCharValue": "n"}, {"VarCharValue": "s"}]})
    );
    assert!(page["NextToken"].is_string());

    // NextToken chaining: every row exactly once, in order; NULL is an empty Datum.
    let all = f.all_rows(&id, 2).await;
    assert_eq!(
        all,
        vec![
            s(&[Some("n"), Some("s")]),
            s(&[Some("1"), Some("a")]),
            s(&[Some("2"), None]),
            s(&[Some("3"), Some("c\"q")]),
            s(&[Some("4"), Some("d")]),
            s(&[Some("5"), Some("e")]),
        ]
    );
    assert_eq!(f.all_rows(&id, 1000).await, all);
    assert_eq!(f.all_rows(&id, 1).await, all);

    // A token of another execution, or garbage, is refused.
    let other = f.start("SELECT 1 AS a").await;
    f.wait(&other).await;
    let token = page["NextToken"].as_str().unwrap();
    let (kind, _) = f
        .err(
            "GetQueryResults",
            json!({"QueryExecutionId": other, "NextToken": token}),
        )
        .await;
    assert_eq!(kind, "InvalidRequestException");
    let (kind, _) = f
        .err(
            "GetQueryResults",
            json!({"QueryExecutionId": id, "NextToken": "nope"}),
        )
        .await;
    assert_eq!(kind, "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_location_and_context_from_the_request() {
    let f = fixture(|a| a);
    let v = f
        .ok(
            "StartQueryExecution",
            json!({
                "QueryString": "SELECT 1 AS a, 'x' AS b",
                "QueryExecutionContext": {"Database": "Sales", "Catalog": "AwsDataCatalog"},
                "ResultConfiguration": {"OutputLocation": "s3://other/some/prefix"},
                "WorkGroup": "primary",
            }),
        )
        .await;
    let id = v["QueryExecutionId"].as_str().unwrap();
    let e = f.wait(id).await;
    assert_eq!(e["Status"]["State"], "SUCCEEDED", "{e}");
    let url = format!("s3://other/some/prefix/{id}.csv");
    assert_eq!(e["ResultConfiguration"]["OutputLocation"], url.as_str());
    assert_eq!(
        e["QueryExecutionContext"],
        json!({"Database": "Sales", "Catalog": "AwsDataCatalog"})
    );
    assert_eq!(f.object(&url).unwrap(), "\"a\",\"b\"\n\"1\",\"x\"\n");

    // An output bucket that does not exist fails the query, not the request.
    let v = f
        .ok(
            "StartQueryExecution",
            json!({
                "QueryString": "SELECT 1 AS a",
                "ResultConfiguration": {"OutputLocation": "s3://missing/x/"},
            }),
        )
        .await;
    let e = f.wait(v["QueryExecutionId"].as_str().unwrap()).await;
    assert_eq!(e["Status"]["State"], "FAILED");
    let reason = e["Status"]["StateChangeReason"].as_str().unwrap();
    assert!(reason.contains("missing"), "{reason}");

    // Not an S3 location: refused up front.
    let (kind, msg) = f
        .err(
            "StartQueryExecution",
            json!({"QueryString": "SELECT 1", "ResultConfiguration": {"OutputLocation": "/tmp/x"}}),
        )
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert!(msg.contains("outputLocation"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_query_is_a_user_error() {
    let f = fixture(|a| a);
    let id = f.start("SELECT nope FROM (VALUES (1)) AS t(a)").await;
    let e = f.wait(&id).await;
    assert_eq!(e["Status"]["State"], "FAILED", "{e}");
    let err = &e["Status"]["AthenaError"];
    assert_eq!(err["ErrorCategory"], 2);
    assert_eq!(err["ErrorType"], 1000);
    assert_eq!(err["Retryable"], false);
    let msg = err["ErrorMessage"].as_str().unwrap();
    assert!(msg.contains("nope"), "{msg}");
    assert_eq!(e["Status"]["StateChangeReason"], msg);
    assert!(e["Status"]["CompletionDateTime"].is_f64());
    // No result object for a failed query.
    let url = e["ResultConfiguration"]["OutputLocation"].as_str().unwrap();
    assert!(f.object(url).is_none());

    let (kind, reason) = f
        .err("GetQueryResults", json!({"QueryExecutionId": id}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert_eq!(reason, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_a_running_query_and_frees_its_slot() {
    let f = fixture(|a| a.with_max_concurrent_queries(1));
    let slow = f.start(SLOW).await;
    f.wait_for(&slow, &["RUNNING"]).await;
    // With one slot, the next query waits in QUEUED.
    let next = f.start("SELECT 1 AS a").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.execution(&next).await["Status"]["State"], "QUEUED");
    let (kind, msg) = f
        .err("GetQueryResults", json!({"QueryExecutionId": slow}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert_eq!(msg, "Query has not yet finished. Current state: RUNNING");

    let stopped_at = Instant::now();
    assert_eq!(
        f.ok("StopQueryExecution", json!({"QueryExecutionId": slow}))
            .await,
        json!({})
    );
    let e = f.execution(&slow).await;
    assert_eq!(e["Status"]["State"], "CANCELLED");
    assert!(e["Status"]["CompletionDateTime"].is_f64());
    assert!(e["Status"].get("AthenaError").is_none());
    // The aborted task released its slot: the queued query runs.
    let e = f.wait(&next).await;
    assert_eq!(e["Status"]["State"], "SUCCEEDED", "{e}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(20),
        "the slow query kept its slot for {:?}",
        stopped_at.elapsed()
    );
    // Stays cancelled; stopping again (or a finished query) is a no-op.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.execution(&slow).await["Status"]["State"], "CANCELLED");
    f.ok("StopQueryExecution", json!({"QueryExecutionId": slow}))
        .await;
    f.ok("StopQueryExecution", json!({"QueryExecutionId": next}))
        .await;
    assert_eq!(f.execution(&next).await["Status"]["State"], "SUCCEEDED");
    let (kind, _) = f
        .err("GetQueryResults", json!({"QueryExecutionId": slow}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_a_queued_query() {
    let f = fixture(|a| a.with_max_concurrent_queries(1));
    let slow = f.start(SLOW).await;
    let queued = f.start("SELECT 1 AS a").await;
    f.ok("StopQueryExecution", json!({"QueryExecutionId": queued}))
        .await;
    f.ok("StopQueryExecution", json!({"QueryExecutionId": slow}))
        .await;
    for id in [&slow, &queued] {
        let e = f.execution(id).await;
        assert_eq!(e["Status"]["State"], "CANCELLED", "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_newest_first_and_paginates() {
    let f = fixture(|a| a);
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = f.start(&format!("SELECT {i} AS i")).await;
        ids.push(id);
    }
    for id in &ids {
        f.wait(id).await;
    }
    let all = f.ok("ListQueryExecutions", json!({})).await;
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(all["QueryExecutionIds"], json!(newest_first));
    assert!(all.get("NextToken").is_none());

    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"MaxResults": 2});
        if let Some(t) = &token {
            req["NextToken"] = json!(t);
        }
        let page = f.ok("ListQueryExecutions", req).await;
        let got = page["QueryExecutionIds"].as_array().unwrap();
        assert!(got.len() <= 2);
        listed.extend(got.iter().map(|v| v.as_str().unwrap().to_string()));
        // A query started while paging does not shift the pages.
        if token.is_none() {
            f.start("SELECT 42 AS x").await;
        }
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(listed, newest_first);

    let batch = f
        .ok(
            "BatchGetQueryExecution",
            json!({"QueryExecutionIds": [ids[0], "nope", ids[1]]}),
        )
        .await;
    let got = batch["QueryExecutions"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["QueryExecutionId"], ids[0].as_str());
    assert_eq!(got[1]["QueryExecutionId"], ids[1].as_str());
    assert_eq!(
        batch["UnprocessedQueryExecutionIds"],
        json!([{"QueryExecutionId": "nope", "ErrorCode": "INVALID_INPUT",
                "ErrorMessage": "QueryExecution nope was not found"}])
    );

    let (kind, msg) = f
        .err("ListQueryExecutions", json!({"WorkGroup": "analysts"}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert_eq!(msg, "WorkGroup analysts is not found.");
    let (kind, _) = f
        .err("ListQueryExecutions", json!({"MaxResults": 51}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    let (kind, _) = f
        .err("ListQueryExecutions", json!({"NextToken": "zz"}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_token_is_idempotent() {
    let f = fixture(|a| a);
    let token = "0123456789abcdef0123456789abcdef-1";
    let req = json!({"QueryString": "SELECT 1 AS a", "ClientRequestToken": token});
    let first = f.ok("StartQueryExecution", req.clone()).await;
    let again = f.ok("StartQueryExecution", req).await;
    assert_eq!(first, again);
    let id = first["QueryExecutionId"].as_str().unwrap();
    f.wait(id).await;
    let after = f
        .ok(
            "StartQueryExecution",
            json!({"QueryString": "SELECT 1 AS a", "ClientRequestToken": token}),
        )
        .await;
    assert_eq!(after, first);
    let listed = f.ok("ListQueryExecutions", json!({})).await;
    assert_eq!(listed["QueryExecutionIds"], json!([id]));

    let (kind, _) = f
        .err(
            "StartQueryExecution",
            json!({"QueryString": "SELECT 2 AS a", "ClientRequestToken": token}),
        )
        .await;
    assert_eq!(kind, "InvalidRequestException");
    let (kind, msg) = f
        .err(
            "StartQueryExecution",
            json!({"QueryString": "SELECT 2 AS a", "ClientRequestToken": "short"}),
        )
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert!(msg.contains("clientRequestToken"), "{msg}");
    // Another token is another execution.
    let other = f
        .ok(
            "StartQueryExecution",
            json!({"QueryString": "SELECT 1 AS a",
                   "ClientRequestToken": "0123456789abcdef0123456789abcdef-2"}),
        )
        .await;
    assert_ne!(other, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_aws_errors() {
    let f = fixture(|a| a);
    let (kind, msg) = f.err("StartQueryExecution", json!({})).await;
    assert_eq!(kind, "InvalidRequestException");
    assert!(msg.contains("queryString"), "{msg}");
    let (kind, _) = f
        .err("StartQueryExecution", json!({"QueryString": ""}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    let (kind, _) = f
        .err(
            "StartQueryExecution",
            json!({"QueryString": "SELECT 1", "WorkGroup": "nope"}),
        )
        .await;
    assert_eq!(kind, "InvalidRequestException");
    let (kind, _) = f
        .err("StartQueryExecution", json!({"QueryString": 5}))
        .await;
    assert_eq!(kind, "SerializationException");
    let bad = f.api.call("GetQueryExecution", "us-east-1", b"{nope").await;
    assert_eq!(bad.unwrap_err().body()["__type"], "SerializationException");

    let (kind, msg) = f.err("CreateNamedQuery", json!({})).await;
    assert_eq!(kind, "UnknownOperationException");
    assert!(msg.contains("CreateNamedQuery"), "{msg}");

    let unknown = "00000000-0000-4000-8000-000000000000";
    for op in ["GetQueryExecution", "GetQueryResults", "StopQueryExecution"] {
        let (kind, msg) = f.err(op, json!({"QueryExecutionId": unknown})).await;
        assert_eq!(kind, "InvalidRequestException", "{op}");
        assert_eq!(
            msg,
            format!("QueryExecution {unknown} was not found"),
            "{op}"
        );
        let (kind, _) = f.err(op, json!({})).await;
        assert_eq!(kind, "InvalidRequestException", "{op}");
    }
    let (kind, _) = f
        .err("BatchGetQueryExecution", json!({"QueryExecutionIds": []}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    let id = f.start("SELECT 1 AS a").await;
    f.wait(&id).await;
    for max in [0, 1001] {
        let (kind, msg) = f
            .err(
                "GetQueryResults",
                json!({"QueryExecutionId": id, "MaxResults": max}),
            )
            .await;
        assert_eq!(kind, "InvalidRequestException");
        assert!(msg.contains("maxResults"), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_results_are_reread_from_the_object() {
    let f = fixture(|a| a.with_result_cache_bytes(0));
    let id = f.start(FIVE_ROWS).await;
    assert_eq!(f.wait(&id).await["Status"]["State"], "SUCCEEDED");
    let rows = f.all_rows(&id, 2).await;
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0], s(&[Some("n"), Some("s")]));
    assert_eq!(rows[2], s(&[Some("2"), None]));
    assert_eq!(rows[3], s(&[Some("3"), Some("c\"q")]));
    // Once the object is gone, so are the results.
    let url = format!("{}/results/athena/{id}.csv", f.buckets.display());
    std::fs::remove_file(Path::new(&url)).unwrap();
    let (kind, msg) = f
        .err("GetQueryResults", json!({"QueryExecutionId": id}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert!(msg.contains("no longer"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_bounded() {
    let f = fixture(|a| a.with_history_limit(3));
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = f.start(&format!("SELECT {i} AS i")).await;
        f.wait(&id).await;
        ids.push(id);
    }
    let listed = f.ok("ListQueryExecutions", json!({})).await;
    assert_eq!(listed["QueryExecutionIds"], json!([ids[4], ids[3], ids[2]]));
    let (kind, _) = f
        .err("GetQueryExecution", json!({"QueryExecutionId": ids[0]}))
        .await;
    assert_eq!(kind, "InvalidRequestException");
    assert_eq!(f.all_rows(&ids[4], 10).await[1], s(&[Some("4")]));

    // With every remembered execution still active, Start pushes back.
    let f = fixture(|a| a.with_history_limit(1).with_max_concurrent_queries(1));
    let slow = f.start(SLOW).await;
    let (kind, _) = f
        .err("StartQueryExecution", json!({"QueryString": "SELECT 1"}))
        .await;
    assert_eq!(kind, "TooManyRequestsException");
    f.ok("StopQueryExecution", json!({"QueryExecutionId": slow}))
        .await;
    let id = f.start("SELECT 1 AS a").await;
    assert_eq!(f.wait(&id).await["Status"]["State"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_work_group() {
    let f = fixture(|a| a);
    let wg = f.ok("GetWorkGroup", json!({"WorkGroup": "primary"})).await;
    assert_eq!(wg["WorkGroup"]["Name"], "primary");
    assert_eq!(wg["WorkGroup"]["State"], "ENABLED");
    assert_eq!(
        wg["WorkGroup"]["Configuration"]["ResultConfiguration"]["OutputLocation"],
        "s3://results/athena/"
    );
    let (kind, _) = f.err("GetWorkGroup", json!({"WorkGroup": "x"})).await;
    assert_eq!(kind, "InvalidRequestException");
    let list = f.ok("ListWorkGroups", json!({})).await;
    assert_eq!(list["WorkGroups"][0]["Name"], "primary");
}

/// Authorization names the workgroup each operation acts on (`JsonService::resources`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_name_the_workgroup() {
    let f = fixture(|a| a);
    let wg = |n: &str| format!("arn:aws:athena:eu-west-1:000000000000:workgroup/{n}");
    let res = |op: &str, body: Value| {
        f.api
            .resources(op, "eu-west-1", body.to_string().as_bytes())
    };
    let start = json!({"QueryString": "SELECT 1"});
    assert_eq!(res("StartQueryExecution", start), [wg("primary")]);
    let other = json!({"QueryString": "SELECT 1", "WorkGroup": "other"});
    assert_eq!(res("StartQueryExecution", other), [wg("other")]);
    assert_eq!(res("ListQueryExecutions", json!({})), [wg("primary")]);
    assert_eq!(res("GetWorkGroup", json!({"WorkGroup": "x"})), [wg("x")]);
    assert_eq!(res("GetWorkGroup", json!({})), ["*"]);
    assert_eq!(res("ListWorkGroups", json!({})), ["*"]);
    let id = f.start("SELECT 1").await;
    assert_eq!(
        res("GetQueryExecution", json!({ "QueryExecutionId": id })),
        [wg("primary")]
    );
    assert_eq!(
        res("GetQueryResults", json!({ "QueryExecutionId": "unknown" })),
        ["*"]
    );
    assert_eq!(
        res(
            "BatchGetQueryExecution",
            json!({ "QueryExecutionIds": [id, id] })
        ),
        [wg("primary")]
    );
    assert_eq!(
        f.api.resources("StartQueryExecution", "eu-west-1", b"[1]"),
        ["*"]
    );
    f.wait(&id).await;
}
