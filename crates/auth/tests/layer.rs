//! The authentication middleware in front of the real API router and load-shedding layer, with
//! requests signed by aws-sigv4: refusals (AWS error shapes, `x-amzn-RequestId`), the body limit
//! (413, as the handler answers), a chunked body metered once, a body changed after signing,
//! and the caller reaching the handler's authorization.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use lakehose_api::{ApiState, JsonService};
use lakehose_auth::{Authenticator, Keyring, Policy, Statement};
use serde_json::{Value, json};
use tower::ServiceExt;

struct NoStreams;

#[async_trait::async_trait]
impl lakehose_api::StreamService for NoStreams {
    async fn create_stream(&self, _: lakehose_api::StreamSpec) -> lakehose_api::Result<()> {
        Ok(())
    }
    async fn delete_stream(&self, _: &str) -> lakehose_api::Result<()> {
        Ok(())
    }
    fn stream(&self, _: &str) -> Option<lakehose_api::StreamSpec> {
        None
    }
    fn stream_names(&self) -> Vec<String> {
        vec!["clicks".into()]
    }
    async fn modify_stream(
        &self,
        name: &str,
        _: lakehose_api::SpecChange<'_>,
    ) -> lakehose_api::Result<lakehose_api::StreamSpec> {
        Err(lakehose_api::ApiError::stream_not_found(name))
    }
    async fn put_records(
        &self,
        _: &str,
        records: Vec<Bytes>,
    ) -> lakehose_api::Result<lakehose_api::model::PutOutcome> {
        Ok(lakehose_api::model::PutOutcome {
            records: records
                .iter()
                .map(|_| lakehose_api::model::RecordOutcome::Accepted("id".into()))
                .collect(),
            encrypted: false,
        })
    }
}

fn app(budget_bytes: u64) -> axum::Router {
    let keys = Keyring::new()
        .with_key(
            "ADMIN",
            "admin-secret",
            Policy::new(vec![Statement::new(&["*"], &["*"]).unwrap()]),
        )
        .with_key(
            "CLICKS",
            "clicks-secret",
            Policy::new(vec![
                Statement::new(
                    &["firehose:PutRecord*"],
                    &["arn:aws:firehose:*:*:deliverystream/clicks"],
                )
                .unwrap(),
            ]),
        );
    let glue = lakehose_catalog::GlueApi::new(Arc::new(
        lakehose_catalog::FileCatalog::open(&tempfile::tempdir().unwrap().keep()).unwrap(),
    ));
    let auth =
        Arc::new(Authenticator::new(keys).scope_target(glue.target_prefix(), &[glue.iam_prefix()]));
    let state = ApiState {
        audit: None,
        service: Arc::new(NoStreams),
        default_region: "us-east-1".into(),
        services: vec![Arc::new(glue)],
    };
    lakehose_api::router(state)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            lakehose_auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            lakehose_api::shed::RequestBudget::new(budget_bytes),
            lakehose_api::shed::shed,
        ))
}

/// A signed `POST /` of `target` with `body`; `chunked` sends it without `Content-Length`.
fn request(
    target: &str,
    body: &[u8],
    (key, secret): (&str, &str),
    service: &str,
    chunked: bool,
) -> Request<Body> {
    let mut headers = vec![
        ("host", "lakehose.test"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let len = body.len().to_string();
    if !chunked {
        headers.push(("content-length", &len));
    }
    let identity = Credentials::new(key, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        "http://lakehose.test/",
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let bytes = Bytes::copy_from_slice(body);
    let body = if chunked {
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    } else {
        Body::from(bytes)
    };
    let mut request = Request::post("/").body(body).unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    instructions.apply_to_request_http1x(&mut request);
    request
}

async fn send(app: &axum::Router, request: Request<Body>) -> (u16, bool, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let has_id = response.headers().contains_key("x-amzn-requestid");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        has_id,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const ADMIN: (&str, &str) = ("ADMIN", "admin-secret");
const CLICKS: (&str, &str) = ("CLICKS", "clicks-secret");

fn put(stream: &str, data: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    json!({"DeliveryStreamName": stream, "Records": [{"Data": data}]})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn refusals_answer_aws_errors() {
    let app = app(16 << 20);
    // No Authorization at all.
    let unsigned = Request::post("/")
        .header("x-amz-target", "Firehose_20150804.ListDeliveryStreams")
        .body(Body::from("{}"))
        .unwrap();
    let (status, id, body) = send(&app, unsigned).await;
    assert_eq!((status, id), (403, true));
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    assert_eq!(body["message"], "Missing Authentication Token");
    // Wrong secret.
    let r = request(
        "Firehose_20150804.ListDeliveryStreams",
        b"{}",
        ("ADMIN", "nope"),
        "firehose",
        false,
    );
    let (status, id, body) = send(&app, r).await;
    assert_eq!((status, id), (400, true));
    assert_eq!(body["__type"], "InvalidSignatureException");
    // Unknown key.
    let r = request(
        "Firehose_20150804.ListDeliveryStreams",
        b"{}",
        ("WHO", "x"),
        "firehose",
        false,
    );
    assert_eq!(
        send(&app, r).await.2["__type"],
        "UnrecognizedClientException"
    );
    // Signed for glue, sent to Firehose.
    let r = request(
        "Firehose_20150804.ListDeliveryStreams",
        b"{}",
        ADMIN,
        "glue",
        false,
    );
    let body = send(&app, r).await.2;
    assert_eq!(body["__type"], "InvalidSignatureException");
    assert_eq!(
        body["message"],
        "Credential should be scoped to correct service: 'firehose'."
    );
    // ... and to Glue, where it belongs.
    let r = request("AWSGlue.GetDatabases", b"{}", ADMIN, "glue", false);
    assert_eq!(send(&app, r).await.0, 200);
}

#[tokio::test]
async fn signed_requests_reach_the_handlers_authorization() {
    let app = app(16 << 20);
    let r = request(
        "Firehose_20150804.ListDeliveryStreams",
        b"{}",
        ADMIN,
        "firehose",
        false,
    );
    let (status, _, body) = send(&app, r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["DeliveryStreamNames"], json!(["clicks"]));
    let r = request(
        "Firehose_20150804.PutRecordBatch",
        &put("clicks", b"hi"),
        CLICKS,
        "firehose",
        false,
    );
    let (status, _, body) = send(&app, r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["FailedPutCount"], 0);
    let r = request(
        "Firehose_20150804.PutRecordBatch",
        &put("views", b"hi"),
        CLICKS,
        "firehose",
        false,
    );
    let (status, _, body) = send(&app, r).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "User: arn:aws:iam::000000000000:user/CLICKS is not authorized to perform: \
         firehose:PutRecordBatch on resource: arn:aws:firehose:us-east-1:000000000000:deliverystream/views"
    );
    let r = request(
        "Firehose_20150804.ListDeliveryStreams",
        b"{}",
        CLICKS,
        "firehose",
        false,
    );
    assert_eq!(send(&app, r).await.2["__type"], "AccessDeniedException");
}

#[tokio::test]
async fn the_body_is_signed_limited_and_metered_once() {
    // A body changed after signing.
    let app = app(16 << 20);
    let mut r = request(
        "Firehose_20150804.PutRecordBatch",
        &put("clicks", b"hi"),
        CLICKS,
        "firehose",
        false,
    );
    *r.body_mut() = Body::from(put("clicks", b"ho"));
    assert_eq!(send(&app, r).await.2["__type"], "InvalidSignatureException");

    // Over the body limit: the handler's 413, before the body is read.
    let big = vec![b' '; lakehose_api::handler::MAX_BODY_BYTES + 1];
    let r = request(
        "Firehose_20150804.PutRecordBatch",
        &big,
        ADMIN,
        "firehose",
        false,
    );
    let (status, _, body) = send(&app, r).await;
    assert_eq!(status, 413);
    assert_eq!(body["__type"], "RequestEntityTooLargeException");
    // ... also when chunked (cut off at the limit).
    let r = request(
        "Firehose_20150804.PutRecordBatch",
        &big,
        ADMIN,
        "firehose",
        true,
    );
    assert_eq!(send(&app, r).await.0, 413);

    // A chunked 700 KB body under a 1 MiB budget: metered once (by the layer), not again by
    // the handler.
    let app = self::app(1 << 20);
    let body = put("clicks", &vec![7u8; 500_000]);
    assert!(body.len() > 600_000);
    let r = request(
        "Firehose_20150804.PutRecordBatch",
        &body,
        CLICKS,
        "firehose",
        true,
    );
    let (status, _, answer) = send(&app, r).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["FailedPutCount"], 0);
}
