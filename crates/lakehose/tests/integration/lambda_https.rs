//! The Lambda processor against HTTPS Lambda Invoke APIs that check SigV4 signatures the way
//! AWS Lambda does: the real binary, its key from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
//! the test CA trusted through `SSL_CERT_FILE`. A function whose certificate no trusted CA
//! signed shows that the certificate is checked: its records land in the error output.
//!
//! The function servers verify with lakehose-auth's `Authenticator` (the server's own SigV4
//! check, tested against the AWS SDKs' signatures); the process crate's tests check the same
//! signatures with aws-sigv4.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    ProcessingConfiguration, Processor, ProcessorParameter, ProcessorParameterName, ProcessorType,
    Record,
};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::common::*;
use crate::pki::{Pki, ServerCert};

const AKID: &str = "AKIDLAMBDAE2E";
const SECRET: &str = "e2e/lambda+secret";
const REGION: &str = "eu-west-1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What one function server saw.
#[derive(Default)]
struct Seen {
    /// Invocations signed by `AKID` for `lambda` in `REGION`.
    verified: AtomicUsize,
    /// Invocations answered 403.
    refused: AtomicUsize,
}

/// An HTTPS Lambda Invoke API on 127.0.0.1 serving `cert`, whose functions upper-case every
/// record, answering 403 to an invocation not signed by `AKID` for `lambda` in `REGION`.
async fn https_function(cert: &ServerCert) -> (u16, Arc<Seen>) {
    let certs = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let keyring =
        lakehose_auth::Keyring::new().with_key(AKID, SECRET, lakehose_auth::Policy::deny_all());
    let auth = Arc::new(
        lakehose_auth::Authenticator::new(keyring).scope_path("/2015-03-31/functions", &["lambda"]),
    );
    let seen = Arc::new(Seen::default());
    let server_seen = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, auth, seen) = (acceptor.clone(), auth.clone(), server_seen.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req| invoke(auth.clone(), seen.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, seen)
}

async fn invoke(
    auth: Arc<lakehose_auth::Authenticator>,
    seen: Arc<Seen>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let refusal = match auth.authenticate(&parts, &body, lakehose_auth::sigv4::unix_now()) {
        Ok(caller) if caller.region == REGION => None,
        Ok(caller) => Some(format!("signed for {}, not {REGION}", caller.region)),
        Err(e) => Some(e.message),
    };
    if let Some(message) = refusal {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        let body = json!({ "message": message }).to_string();
        return Ok(hyper::Response::builder()
            .status(403)
            .body(Full::new(body.into()))
            .unwrap());
    }
    seen.verified.fetch_add(1, Ordering::SeqCst);
    let event: Value = serde_json::from_slice(&body).unwrap();
    let records: Vec<Value> = event["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data = B64.decode(r["data"].as_str().unwrap()).unwrap();
            json!({
                "recordId": r["recordId"],
                "result": "Ok",
                "data": B64.encode(data.to_ascii_uppercase()),
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "records": records })).unwrap();
    Ok(hyper::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap())
}

/// A Lambda processor for `arn`, with `retries`.
fn lambda(arn: &str, retries: &str) -> ProcessingConfiguration {
    let parameter = |name, value: &str| {
        ProcessorParameter::builder()
            .parameter_name(name)
            .parameter_value(value)
            .build()
            .unwrap()
    };
    ProcessingConfiguration::builder()
        .enabled(true)
        .processors(
            Processor::builder()
                .r#type(ProcessorType::Lambda)
                .parameters(parameter(ProcessorParameterName::LambdaArn, arn))
                .parameters(parameter(
                    ProcessorParameterName::LambdaNumberOfRetries,
                    retries,
                ))
                .build()
                .unwrap(),
        )
        .build()
}

#[test]
fn lambda_over_https_signed_with_the_environments_key() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (trusted_ca, stranger_ca) = (Pki::new(), Pki::new());
    let ((port, seen), (stranger_port, stranger_seen)) = rt.block_on(async {
        (
            https_function(&trusted_ca.server_cert(1)).await,
            https_function(&stranger_ca.server_cert(2)).await,
        )
    });
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &trusted_ca.ca_pem).unwrap();
    let upper = format!("arn:aws:lambda:{REGION}:123456789012:function:upper");
    let stranger = format!("arn:aws:lambda:{REGION}:123456789012:function:stranger");
    let config = format!(
        "[lambdas]\n\
         \"{upper}\" = {{ url = \"https://localhost:{port}\", sigv4 = true }}\n\
         \"{stranger}\" = {{ url = \"https://localhost:{stranger_port}\", sigv4 = true }}\n"
    );
    let env = [
        format!("SSL_CERT_FILE={}", ca_file.display()),
        format!("AWS_ACCESS_KEY_ID={AKID}"),
        format!("AWS_SECRET_ACCESS_KEY={SECRET}"),
    ];
    let mut wrapper = vec!["env", "-u", "AWS_SESSION_TOKEN"];
    wrapper.extend(env.iter().map(String::as_str));
    let server = Server::start_wrapped(&tmp.path().join("data"), Some(&config), &wrapper);

    rt.block_on(async {
        let client = server.client();
        for (stream, arn, retries) in [("upper", &upper, "1"), ("stranger", &stranger, "0")] {
            let mut dest = s3_dest(stream, 1, 0);
            dest.error_output_prefix = Some("err/!{firehose:error-output-type}/".into());
            dest.processing_configuration = Some(lambda(arn, retries));
            client
                .create_delivery_stream()
                .delivery_stream_name(stream)
                .extended_s3_destination_configuration(dest)
                .send()
                .await
                .unwrap();
            let records = ["hello\n", "world\n"]
                .map(|d| Record::builder().data(Blob::new(d)).build().unwrap());
            let put = client
                .put_record_batch()
                .delivery_stream_name(stream)
                .set_records(Some(records.to_vec()))
                .send()
                .await
                .unwrap();
            assert_eq!(put.failed_put_count, 0);
        }
    });

    let delivered = wait_for_objects(&server.bucket("upper"), Duration::from_secs(30), |o| {
        !o.is_empty()
    });
    let text: String = delivered
        .iter()
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    assert_eq!(text, "HELLO\nWORLD\n", "{delivered:?}");
    assert!(seen.verified.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        seen.refused.load(Ordering::SeqCst),
        0,
        "every invocation is signed with the environment's key, in the ARN's region"
    );

    let failed = wait_for_objects(&server.bucket("stranger"), Duration::from_secs(30), |o| {
        !o.is_empty()
    });
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (key, bytes) = &failed[0];
    assert!(key.starts_with("err/processing-failed/"), "{key}");
    let errors: Vec<Value> = String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!(e["errorCode"], "Lambda.InvocationFailed", "{e}");
        let message = e["errorMessage"].as_str().unwrap();
        assert!(message.contains("certificate"), "{message}");
        assert_eq!(e["lambdaArn"], stranger.as_str());
    }
    assert_eq!(
        stranger_seen.verified.load(Ordering::SeqCst)
            + stranger_seen.refused.load(Ordering::SeqCst),
        0,
        "no request went past the TLS handshake"
    );
}
