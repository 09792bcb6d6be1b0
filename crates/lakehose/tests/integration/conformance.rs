//! The sink conformance suite: the same scenarios against every destination with a retry
//! window (HTTP endpoint, Redshift on PostgreSQL, OpenSearch, Splunk), through the real binary
//! and the official SDK.
//!
//! 1. Ordering: the records of one batch arrive in the order they were put.
//! 2. Retries within the duration: while the destination fails, the batch is retried; when it
//!    recovers, every record is delivered exactly once (no duplicates from the retries).
//! 3. Error output after the duration: a destination that keeps failing gets the batch retried
//!    for `RetryOptions.DurationInSeconds`, then the records land in the destination's error
//!    folder of the backup bucket, and nothing is delivered.
//! 4. Metrics per outcome: `DeliveryTo<X>.Records` for delivered records, `.Failures` for
//!    failed attempts, `.ProcessingFailed` for records sent to the error output.
//!
//! Every record is `{"id":"<stream>:<n>"}`; a target reports the ids it received, in arrival
//! order, so streams sharing a destination are told apart.

use std::time::{Duration, Instant};

use aws_sdk_firehose::Client;

use crate::common::*;

/// One destination under test.
pub(crate) trait Target {
    /// Its metric namespace: `DeliveryTo<metric>`.
    fn metric(&self) -> &'static str;
    /// `lakehose.toml` lines it needs (egress, mappings).
    fn config(&self) -> String;
    /// Creates `stream` delivering to it, retrying for `retry_s`, backup bucket `bucket`.
    async fn create(&self, c: &Client, stream: &str, retry_s: i32, bucket: &str);
    /// Makes every delivery fail (transiently) until called with `false`.
    async fn set_failing(&self, failing: bool);
    /// The ids it received from `stream`, in arrival order (duplicates included).
    async fn received(&self, stream: &str) -> Vec<String>;
    /// `(key prefix, records)` of the error output of `stream` in its backup bucket's files.
    fn error_records(&self, bucket_files: &[(String, Vec<u8>)], stream: &str) -> usize;
}

/// The backup (or staging) bucket `bucket`, with Firehose's defaults.
fn backup_bucket(bucket: &str) -> aws_sdk_firehose::types::S3DestinationConfiguration {
    aws_sdk_firehose::types::S3DestinationConfiguration::builder()
        .role_arn(ROLE)
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .build()
        .unwrap()
}

fn ids(stream: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{stream}:{i:04}")).collect()
}

fn lines(ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| format!("{{\"id\":\"{id}\"}}"))
        .collect()
}

async fn wait_received<T: Target>(t: &T, stream: &str, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = t.received(stream).await;
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the four scenarios against `target`.
pub(crate) fn run<T: Target>(target: T) {
    let server = Server::start_with_config(&target.config());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = server.client();
        let metric = |name: &str, stream: &str| {
            crate::common::metric(
                &server.endpoint,
                &format!("DeliveryTo{}_{name}", target.metric()),
                stream,
            )
        };

        // 1. Ordering within a batch.
        target.create(&c, "c-order", 60, "backup").await;
        let want = ids("c-order", 200);
        put_lines(&c, "c-order", &lines(&want)).await;
        let got = wait_received(&target, "c-order", want.len(), Duration::from_secs(30)).await;
        assert_eq!(
            got,
            want,
            "{}: delivered in order, each once",
            target.metric()
        );

        // 2. Retries within the duration, then every record exactly once.
        target.set_failing(true).await;
        target.create(&c, "c-retry", 60, "backup").await;
        let want = ids("c-retry", 30);
        put_lines(&c, "c-retry", &lines(&want)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while metric("Failures", "c-retry") < 2.0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            metric("Failures", "c-retry") >= 2.0,
            "{}: retried while failing",
            target.metric()
        );
        assert!(target.received("c-retry").await.is_empty());
        target.set_failing(false).await;
        let got = wait_received(&target, "c-retry", want.len(), Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got_after = target.received("c-retry").await;
        assert_eq!(got, want, "{}: delivered after recovering", target.metric());
        assert_eq!(
            got_after,
            want,
            "{}: no duplicates from the retries",
            target.metric()
        );

        // 3. Error output once the retry duration has passed.
        target.set_failing(true).await;
        target.create(&c, "c-fail", 2, "failed").await;
        let started = Instant::now();
        put_lines(&c, "c-fail", &lines(&ids("c-fail", 10))).await;
        let files = wait_for_objects(&server.bucket("failed"), Duration::from_secs(30), |files| {
            target.error_records(files, "c-fail") >= 10
        });
        assert_eq!(
            target.error_records(&files, "c-fail"),
            10,
            "{}: every record in the error output: {:?}",
            target.metric(),
            files.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{}: retried for the whole duration first",
            target.metric()
        );
        target.set_failing(false).await;
        assert!(target.received("c-fail").await.is_empty());

        // 4. Metrics per outcome.
        assert!(metric("Records", "c-order") >= 200.0, "{}", target.metric());
        assert!(metric("Records", "c-retry") >= 30.0, "{}", target.metric());
        assert!(metric("Records", "c-fail") == 0.0, "{}", target.metric());
        assert!(
            metric("ProcessingFailed", "c-fail") >= 10.0,
            "{}",
            target.metric()
        );
        assert!(metric("Failures", "c-fail") >= 2.0, "{}", target.metric());
    });
}

/// Error documents (one JSON line per record) under `folder/` whose `rawData` decodes to a
/// record of `stream`.
fn error_documents(files: &[(String, Vec<u8>)], folder: &str, stream: &str) -> usize {
    use base64::Engine as _;
    files
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{folder}/")))
        .flat_map(|(_, body)| {
            String::from_utf8_lossy(body)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|line| {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(doc["rawData"].as_str().unwrap_or_default())
                .unwrap_or_default();
            String::from_utf8_lossy(&raw).contains(&format!("\"{stream}:"))
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint.

struct Http {
    url: String,
    receiver: std::sync::Arc<crate::http_endpoint::Receiver>,
}

impl Target for Http {
    fn metric(&self) -> &'static str {
        "HttpEndpoint"
    }

    fn config(&self) -> String {
        EGRESS.to_string()
    }

    async fn create(&self, c: &Client, stream: &str, retry_s: i32, bucket: &str) {
        use aws_sdk_firehose::types::*;
        let dest = HttpEndpointDestinationConfiguration::builder()
            .endpoint_configuration(
                HttpEndpointConfiguration::builder()
                    .url(&self.url)
                    .build()
                    .unwrap(),
            )
            .buffering_hints(
                HttpEndpointBufferingHints::builder()
                    .size_in_mbs(1)
                    .interval_in_seconds(1)
                    .build(),
            )
            .retry_options(
                HttpEndpointRetryOptions::builder()
                    .duration_in_seconds(retry_s)
                    .build(),
            )
            .s3_configuration(backup_bucket(bucket))
            .build();
        c.create_delivery_stream()
            .delivery_stream_name(stream)
            .http_endpoint_destination_configuration(dest)
            .send()
            .await
            .unwrap();
    }

    async fn set_failing(&self, failing: bool) {
        use crate::http_endpoint::Mode;
        self.receiver.set_mode(if failing {
            Mode::Always(503)
        } else {
            Mode::Accept
        });
    }

    async fn received(&self, stream: &str) -> Vec<String> {
        self.receiver
            .accepted_records()
            .iter()
            .filter_map(|r| {
                let v: serde_json::Value = serde_json::from_str(r).ok()?;
                let id = v["id"].as_str()?.to_string();
                id.starts_with(&format!("{stream}:")).then_some(id)
            })
            .collect()
    }

    fn error_records(&self, files: &[(String, Vec<u8>)], stream: &str) -> usize {
        error_documents(files, "http-endpoint-failed", stream)
    }
}

#[test]
fn http_endpoint_conforms() {
    let (url, receiver) = crate::http_endpoint::Receiver::start(crate::http_endpoint::Mode::Accept);
    run(Http { url, receiver });
}

// ---------------------------------------------------------------------------------------------
// Redshift, loaded into the test PostgreSQL server.

struct Redshift {
    /// The table; while failing it is renamed away (COPY then fails with TableNotFound).
    table: String,
}

const JDBC: &str = "jdbc:redshift://conformance.abc123.us-east-1.redshift.amazonaws.com:5439/dev";

impl Target for Redshift {
    fn metric(&self) -> &'static str {
        "Redshift"
    }

    fn config(&self) -> String {
        format!("[redshift_clusters]\n\"{JDBC}\" = \"{}\"\n", postgres())
    }

    async fn create(&self, c: &Client, stream: &str, retry_s: i32, bucket: &str) {
        use aws_sdk_firehose::types::*;
        let dest = RedshiftDestinationConfiguration::builder()
            .role_arn(ROLE)
            .cluster_jdbcurl(JDBC)
            .copy_command(
                CopyCommand::builder()
                    .data_table_name(&self.table)
                    .data_table_columns("id")
                    .copy_options("JSON 'auto'")
                    .build()
                    .unwrap(),
            )
            .username("lakehose")
            .password("ignored-the-mapping-names-the-user")
            .retry_options(
                RedshiftRetryOptions::builder()
                    .duration_in_seconds(retry_s)
                    .build(),
            )
            .s3_configuration(
                S3DestinationConfiguration::builder()
                    .role_arn(ROLE)
                    .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                    .buffering_hints(
                        BufferingHints::builder()
                            .size_in_mbs(1)
                            .interval_in_seconds(1)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        c.create_delivery_stream()
            .delivery_stream_name(stream)
            .redshift_destination_configuration(dest)
            .send()
            .await
            .unwrap();
    }

    async fn set_failing(&self, failing: bool) {
        let pg = postgres_client().await;
        let t = &self.table;
        let sql = if failing {
            format!("ALTER TABLE IF EXISTS {t} RENAME TO {t}_away")
        } else {
            format!("ALTER TABLE IF EXISTS {t}_away RENAME TO {t}")
        };
        pg.batch_execute(&sql).await.unwrap();
    }

    async fn received(&self, stream: &str) -> Vec<String> {
        let pg = postgres_client().await;
        let t = &self.table;
        let rows = match pg
            .query(
                &format!("SELECT id FROM {t} WHERE id LIKE $1 ORDER BY seq"),
                &[&format!("{stream}:%")],
            )
            .await
        {
            Ok(rows) => rows,
            Err(_) => pg
                .query(
                    &format!("SELECT id FROM {t}_away WHERE id LIKE $1 ORDER BY seq"),
                    &[&format!("{stream}:%")],
                )
                .await
                .unwrap(),
        };
        rows.iter().map(|r| r.get(0)).collect()
    }

    fn error_records(&self, files: &[(String, Vec<u8>)], stream: &str) -> usize {
        // One manifest per skipped batch, naming its staged object.
        files
            .iter()
            .filter(|(k, _)| k.starts_with("errors/manifests/"))
            .map(|(_, body)| {
                let m: serde_json::Value = serde_json::from_slice(body).unwrap();
                let key = m["entries"][0]["url"]
                    .as_str()
                    .unwrap()
                    .split_once("s3://failed/")
                    .unwrap()
                    .1
                    .to_string();
                let staged = files
                    .iter()
                    .find(|(k, _)| *k == key)
                    .expect("staged object");
                String::from_utf8_lossy(&staged.1)
                    .matches(&format!("\"{stream}:"))
                    .count()
            })
            .sum()
    }
}

#[test]
fn redshift_conforms() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        postgres_client()
            .await
            .batch_execute("CREATE TABLE conformance (seq bigserial, id text)")
            .await
            .unwrap();
    });
    run(Redshift {
        table: "conformance".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// Splunk, against the protocol-level HEC of `splunk_server`.

struct Splunk {
    hec: std::sync::Arc<crate::splunk_server::Hec>,
}

const HEC_TOKEN: &str = "conformance-token";

impl Target for Splunk {
    fn metric(&self) -> &'static str {
        "Splunk"
    }

    fn config(&self) -> String {
        EGRESS.to_string()
    }

    async fn create(&self, c: &Client, stream: &str, retry_s: i32, bucket: &str) {
        use aws_sdk_firehose::types::*;
        let dest = SplunkDestinationConfiguration::builder()
            .hec_endpoint(&self.hec.url)
            .hec_endpoint_type(HecEndpointType::Event)
            .hec_token(HEC_TOKEN)
            .buffering_hints(
                SplunkBufferingHints::builder()
                    .size_in_mbs(1)
                    .interval_in_seconds(1)
                    .build(),
            )
            .retry_options(
                SplunkRetryOptions::builder()
                    .duration_in_seconds(retry_s)
                    .build(),
            )
            .s3_configuration(backup_bucket(bucket))
            .build()
            .unwrap();
        c.create_delivery_stream()
            .delivery_stream_name(stream)
            .splunk_destination_configuration(dest)
            .send()
            .await
            .unwrap();
    }

    async fn set_failing(&self, failing: bool) {
        self.hec.fail_next(if failing { usize::MAX } else { 0 });
    }

    async fn received(&self, stream: &str) -> Vec<String> {
        self.hec
            .acknowledged_events()
            .iter()
            .filter_map(|e| {
                let id = e["event"]["id"].as_str()?.to_string();
                id.starts_with(&format!("{stream}:")).then_some(id)
            })
            .collect()
    }

    fn error_records(&self, files: &[(String, Vec<u8>)], stream: &str) -> usize {
        error_documents(files, "splunk-failed", stream)
    }
}

#[test]
fn splunk_conforms() {
    run(Splunk {
        hec: crate::splunk_server::Hec::start(HEC_TOKEN),
    });
}

// ---------------------------------------------------------------------------------------------
// OpenSearch, against the protocol-level `_bulk` server of `opensearch_server`.

struct OpenSearch {
    cluster: crate::opensearch_server::OpenSearchServer,
}

impl Target for OpenSearch {
    fn metric(&self) -> &'static str {
        "AmazonOpenSearchService"
    }

    fn config(&self) -> String {
        EGRESS.to_string()
    }

    async fn create(&self, c: &Client, stream: &str, retry_s: i32, bucket: &str) {
        use aws_sdk_firehose::types::*;
        let dest = AmazonopensearchserviceDestinationConfiguration::builder()
            .role_arn(ROLE)
            .cluster_endpoint(&self.cluster.url)
            .index_name(stream)
            .index_rotation_period(AmazonopensearchserviceIndexRotationPeriod::NoRotation)
            .buffering_hints(
                AmazonopensearchserviceBufferingHints::builder()
                    .size_in_mbs(1)
                    .interval_in_seconds(1)
                    .build(),
            )
            .retry_options(
                AmazonopensearchserviceRetryOptions::builder()
                    .duration_in_seconds(retry_s)
                    .build(),
            )
            .s3_configuration(backup_bucket(bucket))
            .build()
            .unwrap();
        c.create_delivery_stream()
            .delivery_stream_name(stream)
            .amazonopensearchservice_destination_configuration(dest)
            .send()
            .await
            .unwrap();
    }

    async fn set_failing(&self, failing: bool) {
        if failing {
            self.cluster.fail_next(100_000, 503);
        } else {
            self.cluster.stop_failing();
        }
    }

    async fn received(&self, stream: &str) -> Vec<String> {
        self.cluster
            .actions()
            .iter()
            .filter(|a| a.index == stream && (200..300).contains(&a.status))
            .filter_map(|a| {
                let v: serde_json::Value = serde_json::from_str(&a.source).ok()?;
                Some(v["id"].as_str()?.to_string())
            })
            .collect()
    }

    fn error_records(&self, files: &[(String, Vec<u8>)], stream: &str) -> usize {
        error_documents(files, "AmazonOpenSearchService-failed", stream)
    }
}

#[test]
fn opensearch_conforms() {
    run(OpenSearch {
        cluster: crate::opensearch_server::OpenSearchServer::start(),
    });
}
