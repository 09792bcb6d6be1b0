//! The `AWSGlue.*` API end to end: through `GlueApi::call` (request JSON in, response JSON out)
//! and once through the shared axum router, as clients reach it.

use std::sync::Arc;

use lakehose_api::{ApiError, JsonService};
use lakehose_catalog::{CatalogStore, FileCatalog, GlueApi};
use serde_json::{Value, json};

struct Env {
    _dir: tempfile::TempDir,
    api: GlueApi,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCatalog::open_in_data_dir(dir.path()).unwrap();
    Env {
        _dir: dir,
        api: GlueApi::new(Arc::new(store)),
    }
}

impl Env {
    async fn call(&self, op: &str, body: Value) -> Result<Value, ApiError> {
        self.api
            .call(op, "us-east-1", &serde_json::to_vec(&body).unwrap())
            .await
    }
    async fn ok(&self, op: &str, body: Value) -> Value {
        match self.call(op, body).await {
            Ok(v) => v,
            Err(e) => panic!("{op}: {e}"),
        }
    }
    async fn err(&self, op: &str, body: Value) -> (String, String) {
        match self.call(op, body).await {
            Ok(v) => panic!("{op} succeeded: {v}"),
            Err(e) => (e.kind.aws_type().to_string(), e.message),
        }
    }
}

fn table_input(name: &str) -> Value {
    json!({
        "Name": name,
        "Description": "events",
        "Owner": "lakehose",
        "Retention": 0,
        "StorageDescriptor": {
            "Columns": [
                {"Name": "id", "Type": "bigint", "Comment": "the id"},
                {"Name": "payload", "Type": "struct<a:int,b:array<string>>"},
                {"Name": "amount", "Type": "decimal(10,2)"}
            ],
            "Location": "s3://bucket/events/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                "Parameters": {"serialization.format": "1"}
            },
            "Compressed": false
        },
        "PartitionKeys": [{"Name": "year", "Type": "int"}, {"Name": "month", "Type": "string"}],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet"}
    })
}

fn partition_input(year: &str, month: &str) -> Value {
    json!({
        "Values": [year, month],
        "StorageDescriptor": {"Location": format!("s3://bucket/events/year={year}/month={month}/")},
        "Parameters": {}
    })
}

#[tokio::test]
async fn databases() {
    let e = env();
    e.ok(
        "CreateDatabase",
        json!({"CatalogId": "123", "DatabaseInput": {"Name": "Sales", "Description": "d", "LocationUri": "s3://b/", "Parameters": {"k": "v"}}, "Tags": {"t": "1"}}),
    )
    .await;
    let db = e.ok("GetDatabase", json!({"Name": "SALES"})).await;
    assert_eq!(db["Database"]["Name"], "sales");
    assert_eq!(db["Database"]["Description"], "d");
    assert_eq!(db["Database"]["LocationUri"], "s3://b/");
    assert_eq!(db["Database"]["Parameters"]["k"], "v");
    assert_eq!(db["Database"]["CatalogId"], "000000000000");
    assert!(db["Database"]["CreateTime"].is_number());

    let (code, msg) = e
        .err(
            "CreateDatabase",
            json!({"DatabaseInput": {"Name": "sales"}}),
        )
        .await;
    assert_eq!(code, "AlreadyExistsException");
    assert_eq!(msg, "Database already exists.");
    let (code, msg) = e.err("GetDatabase", json!({"Name": "nope"})).await;
    assert_eq!(code, "EntityNotFoundException");
    assert_eq!(msg, "Database nope not found.");
    let (code, msg) = e.err("GetDatabase", json!({})).await;
    assert_eq!(code, "InvalidInputException");
    assert!(msg.contains("Value null at 'name'"), "{msg}");
    let (code, _) = e
        .err(
            "CreateDatabase",
            json!({"DatabaseInput": {"Name": "x".repeat(256)}}),
        )
        .await;
    assert_eq!(code, "InvalidInputException");
    let (code, _) = e.err("CreateDatabase", json!({"DatabaseInput": 5})).await;
    assert_eq!(code, "SerializationException");

    for n in ["b1", "b2", "b3"] {
        e.ok("CreateDatabase", json!({"DatabaseInput": {"Name": n}}))
            .await;
    }
    let p1 = e.ok("GetDatabases", json!({"MaxResults": 3})).await;
    let names: Vec<_> = p1["DatabaseList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b1", "b2", "b3"]);
    let token = p1["NextToken"].as_str().unwrap();
    let p2 = e
        .ok(
            "GetDatabases",
            json!({"MaxResults": 3, "NextToken": token, "AttributesToGet": ["NAME"]}),
        )
        .await;
    assert_eq!(p2["DatabaseList"], json!([{"Name": "sales"}]));
    assert!(p2.get("NextToken").is_none());
    let (code, _) = e.err("GetDatabases", json!({"MaxResults": 101})).await;
    assert_eq!(code, "InvalidInputException");
    let (code, _) = e
        .err("GetDatabases", json!({"NextToken": "garbage!"}))
        .await;
    assert_eq!(code, "InvalidInputException");

    e.ok(
        "UpdateDatabase",
        json!({"Name": "b1", "DatabaseInput": {"Name": "b1", "Description": "new"}}),
    )
    .await;
    assert_eq!(
        e.ok("GetDatabase", json!({"Name": "b1"})).await["Database"]["Description"],
        "new"
    );
    e.ok("DeleteDatabase", json!({"Name": "B1"})).await;
    let (code, _) = e.err("DeleteDatabase", json!({"Name": "b1"})).await;
    assert_eq!(code, "EntityNotFoundException");
}

#[tokio::test]
async fn tables_and_versions() {
    let e = env();
    e.ok("CreateDatabase", json!({"DatabaseInput": {"Name": "db"}}))
        .await;
    let (code, msg) = e
        .err(
            "CreateTable",
            json!({"DatabaseName": "missing", "TableInput": table_input("events")}),
        )
        .await;
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("EntityNotFoundException", "Database missing not found.")
    );
    e.ok(
        "CreateTable",
        json!({"DatabaseName": "DB", "TableInput": table_input("Events"), "TransactionId": "x", "PartitionIndexes": []}),
    )
    .await;
    let (code, msg) = e
        .err(
            "CreateTable",
            json!({"DatabaseName": "db", "TableInput": table_input("events")}),
        )
        .await;
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("AlreadyExistsException", "Table already exists.")
    );

    let t = e
        .ok("GetTable", json!({"DatabaseName": "db", "Name": "EVENTS"}))
        .await["Table"]
        .clone();
    assert_eq!(t["Name"], "events");
    assert_eq!(t["DatabaseName"], "db");
    assert_eq!(t["VersionId"], "0");
    assert_eq!(t["CatalogId"], "000000000000");
    assert_eq!(
        t["StorageDescriptor"]["Columns"][1]["Type"],
        "struct<a:int,b:array<string>>"
    );
    assert_eq!(
        t["StorageDescriptor"]["SerdeInfo"]["Parameters"]["serialization.format"],
        "1"
    );
    assert_eq!(t["PartitionKeys"][0]["Name"], "year");
    assert_eq!(t["Parameters"]["classification"], "parquet");
    assert!(t["CreateTime"].is_number());
    assert!(t["UpdateTime"].is_number());

    let (code, msg) = e
        .err("GetTable", json!({"DatabaseName": "db", "Name": "nope"}))
        .await;
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("EntityNotFoundException", "Table nope not found.")
    );

    // Bad column types are InvalidInputException with Hive's wording.
    let mut bad = table_input("bad");
    bad["StorageDescriptor"]["Columns"][0]["Type"] = json!("double precision");
    let (code, msg) = e
        .err(
            "CreateTable",
            json!({"DatabaseName": "db", "TableInput": bad}),
        )
        .await;
    assert_eq!(code, "InvalidInputException");
    assert_eq!(
        msg,
        "Error: type expected at the position 0 of 'double precision' but 'double precision' is found."
    );
    let (code, _) = e.err("CreateTable", json!({"DatabaseName": "db"})).await;
    assert_eq!(code, "InvalidInputException");

    // UpdateTable: new version each time; VersionId checked when given.
    let mut v1 = table_input("events");
    v1["Description"] = json!("v1");
    e.ok(
        "UpdateTable",
        json!({"DatabaseName": "db", "TableInput": v1, "VersionId": "0"}),
    )
    .await;
    let (code, _) = e
        .err(
            "UpdateTable",
            json!({"DatabaseName": "db", "TableInput": table_input("events"), "VersionId": "0"}),
        )
        .await;
    assert_eq!(code, "ConcurrentModificationException");
    e.ok(
        "UpdateTable",
        json!({"DatabaseName": "db", "TableInput": table_input("events")}),
    )
    .await;
    let t = e
        .ok("GetTable", json!({"DatabaseName": "db", "Name": "events"}))
        .await["Table"]
        .clone();
    assert_eq!(t["VersionId"], "2");
    let v = e
        .ok(
            "GetTableVersion",
            json!({"DatabaseName": "db", "TableName": "events", "VersionId": "1"}),
        )
        .await;
    assert_eq!(v["TableVersion"]["VersionId"], "1");
    assert_eq!(v["TableVersion"]["Table"]["Description"], "v1");
    let vs = e
        .ok(
            "GetTableVersions",
            json!({"DatabaseName": "db", "TableName": "events", "MaxResults": 2}),
        )
        .await;
    assert_eq!(vs["TableVersions"].as_array().unwrap().len(), 2);
    let vs2 = e
        .ok(
            "GetTableVersions",
            json!({"DatabaseName": "db", "TableName": "events", "NextToken": vs["NextToken"]}),
        )
        .await;
    assert_eq!(vs2["TableVersions"][0]["VersionId"], "2");
    let (code, _) = e
        .err(
            "UpdateTable",
            json!({"DatabaseName": "db", "TableInput": table_input("missing")}),
        )
        .await;
    assert_eq!(code, "EntityNotFoundException");

    // GetTables: pagination, pattern, attributes.
    for n in ["logs_a", "logs_b", "metrics"] {
        e.ok(
            "CreateTable",
            json!({"DatabaseName": "db", "TableInput": table_input(n)}),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"DatabaseName": "db", "MaxResults": 1});
        if let Some(t) = &token {
            req["NextToken"] = json!(t);
        }
        let page = e.ok("GetTables", req).await;
        for t in page["TableList"].as_array().unwrap() {
            names.push(t["Name"].as_str().unwrap().to_string());
        }
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["events", "logs_a", "logs_b", "metrics"]);
    let logs = e
        .ok(
            "GetTables",
            json!({"DatabaseName": "db", "Expression": "logs*", "AttributesToGet": ["NAME", "TABLE_TYPE"]}),
        )
        .await;
    assert_eq!(
        logs["TableList"],
        json!([
            {"Name": "logs_a", "TableType": "EXTERNAL_TABLE"},
            {"Name": "logs_b", "TableType": "EXTERNAL_TABLE"}
        ])
    );
    let (code, _) = e.err("GetTables", json!({"DatabaseName": "nope"})).await;
    assert_eq!(code, "EntityNotFoundException");

    let r = e
        .ok(
            "BatchDeleteTable",
            json!({"DatabaseName": "db", "TablesToDelete": ["logs_a", "ghost"]}),
        )
        .await;
    assert_eq!(r["Errors"][0]["TableName"], "ghost");
    assert_eq!(
        r["Errors"][0]["ErrorDetail"]["ErrorCode"],
        "EntityNotFoundException"
    );
    e.ok(
        "DeleteTable",
        json!({"DatabaseName": "db", "Name": "metrics"}),
    )
    .await;
    let (code, _) = e
        .err(
            "DeleteTable",
            json!({"DatabaseName": "db", "Name": "metrics"}),
        )
        .await;
    assert_eq!(code, "EntityNotFoundException");
}

#[tokio::test]
async fn partitions() {
    let e = env();
    e.ok("CreateDatabase", json!({"DatabaseInput": {"Name": "db"}}))
        .await;
    e.ok(
        "CreateTable",
        json!({"DatabaseName": "db", "TableInput": table_input("events")}),
    )
    .await;
    let target = |extra: Value| {
        let mut v = json!({"DatabaseName": "db", "TableName": "events"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };

    let r = e
        .ok(
            "BatchCreatePartition",
            target(json!({"PartitionInputList": [
                partition_input("2024", "01"),
                partition_input("2024", "02"),
                partition_input("2023", "12"),
                partition_input("999", "01"),
            ]})),
        )
        .await;
    assert_eq!(r, json!({"Errors": []}));
    let r = e
        .ok(
            "BatchCreatePartition",
            target(json!({"PartitionInputList": [
                partition_input("2024", "01"),
                partition_input("2024", "03"),
                {"Values": ["2024"]},
            ]})),
        )
        .await;
    let errors = r["Errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["PartitionValues"], json!(["2024", "01"]));
    assert_eq!(
        errors[0]["ErrorDetail"]["ErrorCode"],
        "AlreadyExistsException"
    );
    assert_eq!(
        errors[0]["ErrorDetail"]["ErrorMessage"],
        "Partition already exists."
    );
    assert_eq!(
        errors[1]["ErrorDetail"]["ErrorCode"],
        "InvalidInputException"
    );

    let p = e
        .ok(
            "GetPartition",
            target(json!({"PartitionValues": ["2024", "02"]})),
        )
        .await;
    assert_eq!(p["Partition"]["Values"], json!(["2024", "02"]));
    assert_eq!(p["Partition"]["DatabaseName"], "db");
    assert_eq!(p["Partition"]["TableName"], "events");
    assert!(p["Partition"]["CreationTime"].is_number());
    assert_eq!(
        p["Partition"]["StorageDescriptor"]["Location"],
        "s3://bucket/events/year=2024/month=02/"
    );
    let (code, msg) = e
        .err(
            "GetPartition",
            target(json!({"PartitionValues": ["2000", "01"]})),
        )
        .await;
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("EntityNotFoundException", "Cannot find partition.")
    );

    let values = |v: &Value| -> Vec<String> {
        v["Partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["Values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    };
    let all = e.ok("GetPartitions", target(json!({}))).await;
    assert_eq!(
        values(&all),
        ["2023/12", "2024/01", "2024/02", "2024/03", "999/01"]
    );
    let f = e
        .ok(
            "GetPartitions",
            target(json!({"Expression": "year = '2024' AND month <> '01'"})),
        )
        .await;
    assert_eq!(values(&f), ["2024/02", "2024/03"]);
    // year is an int key: compared as numbers, so 999 < 2000.
    let f = e
        .ok(
            "GetPartitions",
            target(json!({"Expression": "year < 2000"})),
        )
        .await;
    assert_eq!(values(&f), ["999/01"]);
    let (code, _) = e
        .err("GetPartitions", target(json!({"Expression": "day = 1"})))
        .await;
    assert_eq!(code, "InvalidInputException");

    // Pagination with a filter, and segments that partition the whole set.
    let p1 = e
        .ok(
            "GetPartitions",
            target(json!({"Expression": "year >= 2024", "MaxResults": 2})),
        )
        .await;
    assert_eq!(values(&p1), ["2024/01", "2024/02"]);
    let p2 = e
        .ok(
            "GetPartitions",
            target(json!({"Expression": "year >= 2024", "MaxResults": 2, "NextToken": p1["NextToken"]})),
        )
        .await;
    assert_eq!(values(&p2), ["2024/03"]);
    assert!(p2.get("NextToken").is_none());
    let mut seen = Vec::new();
    for n in 0..3 {
        let s = e
            .ok(
                "GetPartitions",
                target(json!({"Segment": {"SegmentNumber": n, "TotalSegments": 3}})),
            )
            .await;
        seen.extend(values(&s));
    }
    seen.sort();
    assert_eq!(seen, values(&all));
    let ex = e
        .ok(
            "GetPartitions",
            target(json!({"ExcludeColumnSchema": true, "MaxResults": 1})),
        )
        .await;
    assert!(
        ex["Partitions"][0]["StorageDescriptor"]
            .get("Columns")
            .is_none()
    );

    let b = e
        .ok(
            "BatchGetPartition",
            target(
                json!({"PartitionsToGet": [{"Values": ["2024", "01"]}, {"Values": ["1", "1"]}]}),
            ),
        )
        .await;
    assert_eq!(values(&b), ["2024/01"]);

    e.ok(
        "UpdatePartition",
        target(json!({"PartitionValueList": ["2024", "03"], "PartitionInput": {"Values": ["2024", "03"], "Parameters": {"k": "v"}}})),
    )
    .await;
    let p = e
        .ok(
            "GetPartition",
            target(json!({"PartitionValues": ["2024", "03"]})),
        )
        .await;
    assert_eq!(p["Partition"]["Parameters"]["k"], "v");

    e.ok(
        "CreatePartition",
        target(json!({"PartitionInput": partition_input("2025", "01")})),
    )
    .await;
    let (code, _) = e
        .err(
            "CreatePartition",
            target(json!({"PartitionInput": partition_input("2025", "01")})),
        )
        .await;
    assert_eq!(code, "AlreadyExistsException");
    e.ok(
        "DeletePartition",
        target(json!({"PartitionValues": ["2025", "01"]})),
    )
    .await;

    let r = e
        .ok(
            "BatchDeletePartition",
            target(
                json!({"PartitionsToDelete": [{"Values": ["2024", "01"]}, {"Values": ["1", "1"]}]}),
            ),
        )
        .await;
    assert_eq!(r["Errors"][0]["PartitionValues"], json!(["1", "1"]));
    assert_eq!(
        r["Errors"][0]["ErrorDetail"]["ErrorCode"],
        "EntityNotFoundException"
    );
    let all = e.ok("GetPartitions", target(json!({}))).await;
    assert_eq!(values(&all), ["2023/12", "2024/02", "2024/03", "999/01"]);

    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"Values": [i.to_string(), "x"]}))
        .collect();
    let (code, _) = e
        .err(
            "BatchDeletePartition",
            target(json!({"PartitionsToDelete": too_many})),
        )
        .await;
    assert_eq!(code, "InvalidInputException");
    let (code, _) = e
        .err(
            "BatchCreatePartition",
            json!({"DatabaseName": "db", "TableName": "ghost", "PartitionInputList": [partition_input("1", "1")]}),
        )
        .await;
    assert_eq!(code, "EntityNotFoundException");

    // Deleting the database removes its tables and partitions.
    e.ok("DeleteDatabase", json!({"Name": "db"})).await;
    e.ok("CreateDatabase", json!({"DatabaseInput": {"Name": "db"}}))
        .await;
    let (code, _) = e
        .err("GetTable", json!({"DatabaseName": "db", "Name": "events"}))
        .await;
    assert_eq!(code, "EntityNotFoundException");
}

#[tokio::test]
async fn unknown_operation() {
    let e = env();
    let (code, _) = e.err("StartCrawler", json!({})).await;
    assert_eq!(code, "UnknownOperationException");
}

#[tokio::test]
async fn the_pipeline_and_the_api_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CatalogStore> = Arc::new(FileCatalog::open_in_data_dir(dir.path()).unwrap());
    let api = GlueApi::new(store.clone());
    store
        .create_database(lakehose_catalog::Database::new("lake"))
        .await
        .unwrap();
    let table = lakehose_catalog::Table::new(
        "stream",
        vec![lakehose_catalog::Column::new("msg", "string")],
        vec![lakehose_catalog::Column::new("dt", "string")],
        Some("s3://b/stream/".into()),
    );
    store.create_table("lake", table.clone()).await.unwrap();
    store
        .ensure_partition(
            "lake",
            "stream",
            table.partition_for(vec!["2024-01-01".into()], "s3://b/stream/dt=2024-01-01/"),
        )
        .await
        .unwrap();
    let body = serde_json::to_vec(&json!({"DatabaseName": "lake", "TableName": "stream"})).unwrap();
    let r = api.call("GetPartitions", "us-east-1", &body).await.unwrap();
    assert_eq!(r["Partitions"][0]["Values"], json!(["2024-01-01"]));
    assert_eq!(
        r["Partitions"][0]["StorageDescriptor"]["Columns"][0]["Name"],
        "msg"
    );
}

mod http {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use lakehose_api::{ApiState, StreamService, StreamSpec};
    use tower::ServiceExt;

    /// No streams: only the Glue side is exercised.
    struct NoStreams;

    #[async_trait::async_trait]
    impl StreamService for NoStreams {
        async fn create_stream(&self, _: StreamSpec) -> lakehose_api::Result<()> {
            Err(ApiError::unavailable("no streams here"))
        }
        async fn delete_stream(&self, _: &str) -> lakehose_api::Result<()> {
            Err(ApiError::unavailable("no streams here"))
        }
        fn stream(&self, _: &str) -> Option<StreamSpec> {
            None
        }
        fn stream_names(&self) -> Vec<String> {
            Vec::new()
        }
        async fn modify_stream(
            &self,
            _: &str,
            _: lakehose_api::SpecChange<'_>,
        ) -> lakehose_api::Result<StreamSpec> {
            Err(ApiError::unavailable("no streams here"))
        }
        async fn put_records(
            &self,
            _: &str,
            _: Vec<bytes::Bytes>,
        ) -> lakehose_api::Result<lakehose_api::model::PutOutcome> {
            Err(ApiError::unavailable("no streams here"))
        }
    }

    async fn post(app: &axum::Router, target: &str, body: Value) -> (u16, Value) {
        let req = axum::http::Request::post("/")
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn glue_is_answered_on_the_shared_endpoint() {
        let e = env();
        let app = lakehose_api::router(ApiState {
            audit: None,
            service: Arc::new(NoStreams),
            default_region: "us-east-1".into(),
            services: vec![Arc::new(e.api.clone())],
        });
        let (status, body) = post(
            &app,
            "AWSGlue.CreateDatabase",
            json!({"DatabaseInput": {"Name": "web"}}),
        )
        .await;
        assert_eq!((status, body), (200, json!({})));
        let (status, body) = post(&app, "AWSGlue.GetDatabase", json!({"Name": "web"})).await;
        assert_eq!(status, 200);
        assert_eq!(body["Database"]["Name"], "web");
        let (status, body) = post(&app, "AWSGlue.GetDatabase", json!({"Name": "nope"})).await;
        assert_eq!(status, 400);
        assert_eq!(body["__type"], "EntityNotFoundException");
        assert_eq!(body["message"], "Database nope not found.");
    }
}
