//! The authorization matrix, through the real API router (`lakehose_api::router`): every
//! Firehose operation of the handler's dispatch, and Glue operations on a real catalog, each
//! called by keys that are allowed (everything, exactly this action on this stream, a wildcard)
//! and keys that are denied by action, by resource, or by having no statement at all. A denied
//! call answers `AccessDeniedException` and reaches no service method. Athena's workgroup
//! resources (named by `AthenaApi::resources`, tested in crates/query) are checked at the policy
//! level.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use http_body_util::BodyExt;
use lakehose_api::model::{PutOutcome, RecordOutcome};
use lakehose_api::{ApiError, ApiState, Caller, SpecChange, StreamService, StreamSpec};
use lakehose_auth::{Policy, Principal, Statement};
use lakehose_catalog::{CatalogStore, FileCatalog, GlueApi};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Counts every call that would read or change a stream.
#[derive(Default)]
struct Stub {
    calls: AtomicUsize,
}

#[async_trait]
impl StreamService for Stub {
    async fn create_stream(&self, _spec: StreamSpec) -> lakehose_api::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn delete_stream(&self, _name: &str) -> lakehose_api::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn stream(&self, name: &str) -> Option<StreamSpec> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let input = serde_json::from_value(json!({
            "DeliveryStreamName": name,
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/r",
                "BucketARN": "arn:aws:s3:::b"
            }
        }))
        .unwrap();
        StreamSpec::from_create(input, "us-east-1", 0).ok()
    }
    fn stream_names(&self) -> Vec<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        vec!["clicks".into()]
    }
    async fn modify_stream(
        &self,
        name: &str,
        change: SpecChange<'_>,
    ) -> lakehose_api::Result<StreamSpec> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut spec = self.stream(name).unwrap();
        change(&mut spec)?;
        Ok(spec)
    }
    async fn put_records(
        &self,
        _name: &str,
        records: Vec<Bytes>,
    ) -> lakehose_api::Result<PutOutcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(PutOutcome {
            records: records
                .iter()
                .map(|_| RecordOutcome::Accepted("id".into()))
                .collect(),
            encrypted: false,
        })
    }
}

fn principal(id: &str, statements: Vec<Statement>) -> Principal {
    Principal {
        access_key_id: id.into(),
        region: "us-east-1".into(),
        policy: Arc::new(Policy::new(statements)),
    }
}

fn allow(actions: &[&str], resources: &[&str]) -> Statement {
    Statement::new(actions, resources).unwrap()
}

/// Calls `target` with `body` as `who`; the status and the JSON answer.
async fn call(app: &axum::Router, who: &Principal, target: &str, body: &Value) -> (u16, Value) {
    let mut request = Request::post("/")
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(body.to_string()))
        .unwrap();
    request
        .extensions_mut()
        .insert(Caller(Arc::new(who.clone())));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The Firehose operations the handler dispatches, read from its source so a new operation
/// cannot be left out of this matrix.
fn firehose_operations() -> Vec<String> {
    let source = include_str!("../../api/src/handler.rs");
    let start = source.find("async fn operation(").unwrap();
    let end = start + source[start..].find("other => Err(").unwrap();
    source[start..end]
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().strip_prefix('"')?;
            let (op, rest) = l.split_once('"')?;
            rest.trim_start().starts_with("=>").then(|| op.to_string())
        })
        .collect()
}

fn firehose_body(op: &str, stream: &str) -> Value {
    match op {
        "PutRecordBatch" => json!({"DeliveryStreamName": stream, "Records": [{"Data": "aGk="}]}),
        "PutRecord" => json!({"DeliveryStreamName": stream, "Record": {"Data": "aGk="}}),
        "CreateDeliveryStream" => json!({
            "DeliveryStreamName": stream,
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/r",
                "BucketARN": "arn:aws:s3:::b"
            }
        }),
        "ListDeliveryStreams" => json!({}),
        "UpdateDestination" => json!({
            "DeliveryStreamName": stream,
            "CurrentDeliveryStreamVersionId": "1",
            "DestinationId": "destinationId-000000000001"
        }),
        "TagDeliveryStream" => {
            json!({"DeliveryStreamName": stream, "Tags": [{"Key": "k", "Value": "v"}]})
        }
        "UntagDeliveryStream" => json!({"DeliveryStreamName": stream, "TagKeys": ["k"]}),
        _ => json!({"DeliveryStreamName": stream}),
    }
}

const CLICKS: &str = "arn:aws:firehose:us-east-1:000000000000:deliverystream/clicks";

#[tokio::test]
async fn firehose_matrix() {
    let ops = firehose_operations();
    assert_eq!(ops.len(), 12, "{ops:?}");
    let stub = Arc::new(Stub::default());
    let app = lakehose_api::router(ApiState {
        audit: None,
        service: stub.clone(),
        default_region: "us-east-1".into(),
        services: vec![],
    });
    let mut checked = 0;
    for op in &ops {
        let action = format!("firehose:{op}");
        let listing = op == "ListDeliveryStreams";
        let resource = if listing { "*" } else { CLICKS };
        let other_action = if op == "PutRecord" {
            "firehose:DescribeDeliveryStream"
        } else {
            "firehose:PutRecord"
        };
        let body = firehose_body(op, "clicks");
        let allowed = [
            principal("admin", vec![allow(&["firehose:*"], &["*"])]),
            principal("everything", vec![allow(&["*"], &["*"])]),
            principal("exact", vec![allow(&[&action], &[resource])]),
            principal("case", vec![allow(&[&action.to_uppercase()], &[resource])]),
            principal(
                "prefix",
                vec![
                    allow(&[&format!("firehose:{}*", &op[..4])], &[resource]),
                    allow(&["glue:*"], &["*"]),
                ],
            ),
        ];
        for who in &allowed {
            let before = stub.calls.load(Ordering::SeqCst);
            let (status, answer) = call(&app, who, &format!("Firehose_20150804.{op}"), &body).await;
            assert_ne!(
                answer["__type"], "AccessDeniedException",
                "{op} as {}: {status} {answer}",
                who.access_key_id
            );
            assert!(
                stub.calls.load(Ordering::SeqCst) > before,
                "{op} as {} reached no service method: {status} {answer}",
                who.access_key_id
            );
            checked += 1;
        }
        let mut denied = vec![
            ("nothing", principal("nothing", vec![])),
            (
                "by action",
                principal("other-action", vec![allow(&[other_action], &["*"])]),
            ),
            (
                "by service",
                principal(
                    "other-service",
                    vec![allow(&["glue:*", "athena:*"], &["*"])],
                ),
            ),
            (
                "by resource",
                principal(
                    "other-stream",
                    vec![allow(
                        &[&action],
                        &["arn:aws:firehose:*:*:deliverystream/views"],
                    )],
                ),
            ),
            (
                "by region",
                principal(
                    "other-region",
                    vec![allow(
                        &["firehose:*"],
                        &["arn:aws:firehose:eu-west-1:*:deliverystream/*"],
                    )],
                ),
            ),
        ];
        if listing {
            // Listing needs a statement on every resource, as in IAM.
            denied.push((
                "listing needs *",
                principal(
                    "streams-only",
                    vec![allow(
                        &["firehose:*"],
                        &["arn:aws:firehose:*:*:deliverystream/*"],
                    )],
                ),
            ));
        } else {
            allowed_too(
                &app,
                &stub,
                op,
                &body,
                principal(
                    "streams-only",
                    vec![allow(
                        &["firehose:*"],
                        &["arn:aws:firehose:*:*:deliverystream/*"],
                    )],
                ),
            )
            .await;
            checked += 1;
        }
        for (why, who) in &denied {
            let before = stub.calls.load(Ordering::SeqCst);
            let (status, answer) = call(&app, who, &format!("Firehose_20150804.{op}"), &body).await;
            assert_eq!(
                (status, answer["__type"].as_str()),
                (400, Some("AccessDeniedException")),
                "{op} denied {why}: {answer}"
            );
            assert_eq!(
                answer["message"],
                format!(
                    "User: arn:aws:iam::000000000000:user/{} is not authorized to perform: \
                     {action} on resource: {resource}",
                    who.access_key_id
                )
            );
            assert_eq!(
                stub.calls.load(Ordering::SeqCst),
                before,
                "{op} denied {why} still reached the service"
            );
            checked += 1;
        }
    }
    eprintln!("{} Firehose operations, {checked} calls checked", ops.len());
}

async fn allowed_too(app: &axum::Router, stub: &Stub, op: &str, body: &Value, who: Principal) {
    let before = stub.calls.load(Ordering::SeqCst);
    let (status, answer) = call(app, &who, &format!("Firehose_20150804.{op}"), body).await;
    assert_ne!(
        answer["__type"], "AccessDeniedException",
        "{op}: {status} {answer}"
    );
    assert!(stub.calls.load(Ordering::SeqCst) > before, "{op}: {answer}");
}

#[tokio::test]
async fn a_malformed_body_needs_every_resource() {
    let stub = Arc::new(Stub::default());
    let app = lakehose_api::router(ApiState {
        audit: None,
        service: stub.clone(),
        default_region: "us-east-1".into(),
        services: vec![],
    });
    let limited = principal(
        "limited",
        vec![allow(
            &["firehose:*"],
            &["arn:aws:firehose:*:*:deliverystream/*"],
        )],
    );
    for body in [json!({}), json!([1]), json!({"DeliveryStreamName": 5})] {
        let (_, answer) = call(
            &app,
            &limited,
            "Firehose_20150804.DescribeDeliveryStream",
            &body,
        )
        .await;
        assert_eq!(answer["__type"], "AccessDeniedException", "{body}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .ends_with("on resource: *")
        );
    }
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    // An unauthenticated request (no Caller: authentication off) is not checked.
    let request = Request::post("/")
        .header("x-amz-target", "Firehose_20150804.ListDeliveryStreams")
        .body(Body::from("{}"))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn glue_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn CatalogStore> =
        Arc::new(FileCatalog::open(&dir.path().join("catalog")).unwrap());
    let app = lakehose_api::router(ApiState {
        audit: None,
        service: Arc::new(Stub::default()),
        default_region: "us-east-1".into(),
        services: vec![Arc::new(GlueApi::new(catalog))],
    });
    let admin = principal("admin", vec![allow(&["glue:*"], &["*"])]);
    let reader = principal("reader", vec![allow(&["glue:Get*"], &["*"])]);
    let web = principal(
        "web",
        vec![allow(
            &["glue:*"],
            &[
                "arn:aws:glue:us-east-1:000000000000:database/web",
                "arn:aws:glue:us-east-1:000000000000:table/web/*",
            ],
        )],
    );
    let other = principal(
        "other",
        vec![allow(
            &["glue:*"],
            &[
                "arn:aws:glue:*:*:database/other",
                "arn:aws:glue:*:*:table/other/*",
            ],
        )],
    );
    let firehose_only = principal("firehose", vec![allow(&["firehose:*"], &["*"])]);
    let table = json!({
        "DatabaseName": "web",
        "TableInput": {"Name": "clicks", "StorageDescriptor": {"Columns": [{"Name": "a", "Type": "string"}]}}
    });
    // (operation, body, allowed keys, denied keys); run in order (the calls build the catalog).
    let cases: Vec<(&str, Value, Vec<&Principal>, Vec<&Principal>)> = vec![
        (
            "CreateDatabase",
            json!({"DatabaseInput": {"Name": "web"}}),
            vec![&web],
            vec![&reader, &other, &firehose_only],
        ),
        (
            "GetDatabase",
            json!({"Name": "web"}),
            vec![&admin, &reader, &web],
            vec![&other, &firehose_only],
        ),
        (
            "GetDatabases",
            json!({}),
            vec![&admin, &reader],
            vec![&web, &other, &firehose_only],
        ),
        (
            "CreateTable",
            table.clone(),
            vec![&web],
            vec![&reader, &other, &firehose_only],
        ),
        (
            "GetTable",
            json!({"DatabaseName": "web", "Name": "clicks"}),
            vec![&admin, &reader, &web],
            vec![&other, &firehose_only],
        ),
        (
            "GetTables",
            json!({"DatabaseName": "web"}),
            vec![&admin, &reader, &web],
            vec![&other, &firehose_only],
        ),
        (
            "GetPartitions",
            json!({"DatabaseName": "web", "TableName": "clicks"}),
            vec![&admin, &reader, &web],
            vec![&other, &firehose_only],
        ),
        (
            "BatchDeleteTable",
            json!({"DatabaseName": "web", "TablesToDelete": ["clicks"]}),
            vec![&web],
            vec![&reader, &other, &firehose_only],
        ),
        (
            "DeleteDatabase",
            json!({"Name": "web"}),
            vec![&admin],
            vec![&reader, &other, &firehose_only],
        ),
    ];
    for (op, body, allowed, denied) in cases {
        for who in denied {
            let (status, answer) = call(&app, who, &format!("AWSGlue.{op}"), &body).await;
            assert_eq!(
                (status, answer["__type"].as_str()),
                (400, Some("AccessDeniedException")),
                "{op} as {}: {answer}",
                who.access_key_id
            );
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("to perform: glue:{op} on resource: ")),
                "{answer}"
            );
        }
        for who in allowed {
            let (status, answer) = call(&app, who, &format!("AWSGlue.{op}"), &body).await;
            assert_eq!(status, 200, "{op} as {}: {answer}", who.access_key_id);
        }
    }
}

#[test]
fn athena_matrix() {
    let wg = |n: &str| format!("arn:aws:athena:us-east-1:000000000000:workgroup/{n}");
    let all = principal("all", vec![allow(&["athena:*"], &["*"])]);
    let readers = principal(
        "readers",
        vec![allow(
            &["athena:Get*", "athena:BatchGet*", "athena:List*"],
            &[&wg("primary")],
        )],
    );
    let runner = principal(
        "runner",
        vec![allow(
            &["athena:StartQueryExecution", "athena:GetQuery*"],
            &["arn:aws:athena:*:*:workgroup/primary"],
        )],
    );
    let glue = principal("glue", vec![allow(&["glue:*"], &["*"])]);
    let check = |who: &Principal, op: &str, resource: String| {
        use lakehose_api::Authorizer;
        who.authorize(&format!("athena:{op}"), &[resource])
    };
    for (op, resource) in [
        ("StartQueryExecution", wg("primary")),
        ("GetQueryExecution", wg("primary")),
        ("GetQueryResults", wg("primary")),
        ("BatchGetQueryExecution", wg("primary")),
        ("StopQueryExecution", wg("primary")),
        ("ListQueryExecutions", wg("primary")),
        ("GetWorkGroup", wg("primary")),
        ("ListWorkGroups", "*".to_string()),
    ] {
        check(&all, op, resource.clone()).unwrap();
        let e: ApiError = check(&glue, op, resource.clone()).unwrap_err();
        assert_eq!(e.body()["__type"], "AccessDeniedException");
        let reads = op.starts_with("Get") || op.starts_with("BatchGet") || op.starts_with("List");
        assert_eq!(
            check(&readers, op, resource.clone()).is_ok(),
            reads && resource != "*",
            "readers {op}"
        );
        assert_eq!(
            check(&runner, op, resource.clone()).is_ok(),
            matches!(
                op,
                "StartQueryExecution" | "GetQueryExecution" | "GetQueryResults"
            ),
            "runner {op}"
        );
        assert!(check(&runner, op, wg("other")).is_err());
    }
}
