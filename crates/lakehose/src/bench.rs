//! `lakehose bench ingest`: starts a server (this same binary, as a child process, so its RSS is
//! its own), creates a stream, sends PutRecordBatch load from N concurrent connections for a fixed
//! time with fsync'd acks, and prints records/s, MB/s, p50/p99 ack latency, records/s landed in
//! the bucket, and the server's peak RSS — for ~350-byte JSON events and 1 KiB records, and for
//! the same events with the security features on: a stream encrypted at rest (`enc`) and a
//! second server that checks a SigV4 signature on every request (`auth`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::client::{FirehoseClient, put_record_batch_body};

/// Options of `lakehose bench ingest`.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Seconds of load per shape.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Cases to run: `json` (~350-byte events), `1k` (1 KiB records), `jq` (json events
    /// partitioned by a jq query on `user_id` into 100 partitions), `lambda` (json events through an echo
    /// Lambda function served by this process), `enc` (json events into a stream encrypted at
    /// rest), `auth` (json events, every request SigV4-signed and verified, on a second server
    /// with an access key configured), `app` (json events into a stream that a streaming SQL
    /// application reads at the same time: per-second counts per service and status, sent to a
    /// second stream).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "json,1k,jq,lambda,enc,auth,app"
    )]
    pub shapes: Vec<String>,
    /// Data dir for the server (a fresh temporary folder by default).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// A ~350-byte JSON log event like the ones web services emit.
fn json_event(i: u64) -> Vec<u8> {
    let s = format!(
        "{{\"event_id\":\"{i:016x}\",\"ts\":\"2026-11-23T20:{:02}:{:02}.{:03}Z\",\"level\":\"INFO\",\
         \"service\":\"checkout\",\"host\":\"ip-10-0-{}-{}.ec2.internal\",\"user_id\":{},\
         \"session\":\"s-{:08x}\",\"method\":\"POST\",\"path\":\"/api/v1/orders/{}\",\"status\":200,\
         \"latency_ms\":{},\"bytes\":{},\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\
         \"geo\":{{\"country\":\"DE\",\"city\":\"Berlin\"}},\"message\":\"order placed\"}}\n",
        i % 60,
        (i / 60) % 60,
        i % 1000,
        i % 256,
        (i * 7) % 256,
        i % 100,
        i.wrapping_mul(2654435761) as u32,
        i % 10_000,
        i % 900,
        (i * 13) % 20_000,
    );
    s.into_bytes()
}

fn kib_record(i: u64) -> Vec<u8> {
    let mut r = format!("{i:016x}").into_bytes();
    r.resize(1024, b'x');
    r
}

struct Child {
    child: tokio::process::Child,
    pid: u32,
    endpoint: String,
}

async fn start_server(
    data_dir: &std::path::Path,
    config: &std::path::Path,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the server")?;
    let pid = child.id().unwrap_or_default();
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let endpoint = loop {
        let line = lines
            .next_line()
            .await?
            .context("server exited before listening")?;
        if let Some(url) = line.strip_prefix("lakehose listening on ") {
            break url.trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        child,
        pid,
        endpoint,
    })
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn delivered_records(endpoint: &str, stream: &str) -> u64 {
    metric_sum(
        endpoint,
        "DeliveryToS3_Records",
        &format!("stream=\"{stream}\""),
    )
    .await
}

/// The sum of the `/metrics` series named `metric` whose labels contain `label`.
async fn metric_sum(endpoint: &str, metric: &str, label: &str) -> u64 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let Ok(uri) = format!("{endpoint}/metrics").parse() else {
        return 0;
    };
    let Ok(resp) = client.get(uri).await else {
        return 0;
    };
    use http_body_util::BodyExt;
    let Ok(body) = resp.into_body().collect().await else {
        return 0;
    };
    let text = String::from_utf8_lossy(&body.to_bytes()).to_string();
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs the ingest benchmark.
pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let lambda_url = start_echo_lambda().await?;
    let keyring = tmp.path().join("keyring");
    std::fs::write(&keyring, lakehose_crypto::generate_key_line("bench")?)?;
    let config = tmp.path().join("bench.toml");
    let lambdas = format!("[lambdas]\n\"{ECHO_LAMBDA}\" = \"{lambda_url}\"\n");
    std::fs::write(
        &config,
        format!(
            "{lambdas}[encryption]\nkeyring_file = \"{}\"\n",
            keyring.display()
        ),
    )?;
    let mut server = start_server(&data_dir, &config).await?;
    let client = FirehoseClient::new(&server.endpoint)?;
    // `auth` runs against a second server that verifies SigV4 on every request.
    let mut signed = None;
    if args.shapes.iter().any(|s| s == "auth") {
        let auth_config = tmp.path().join("bench-auth.toml");
        std::fs::write(
            &auth_config,
            format!(
                "{lambdas}[[auth.keys]]\naccess_key_id = \"{BENCH_KEY}\"\n\
                 secret_access_key = \"{BENCH_SECRET}\"\nallow = [{{ actions = [\"*\"] }}]\n"
            ),
        )?;
        let auth_server = start_server(&tmp.path().join("auth-data"), &auth_config).await?;
        let auth_client =
            FirehoseClient::new(&auth_server.endpoint)?.with_credentials(BENCH_KEY, BENCH_SECRET);
        signed = Some((auth_server, auth_client));
    }
    println!(
        "lakehose bench ingest: {} connections, {} s per shape, server pid {}, acks after fsync",
        args.connections, args.duration, server.pid
    );
    println!(
        "{:<6} {:>12} {:>9} {:>10} {:>10} {:>14} {:>12}",
        "shape", "records/s", "MB/s", "p50 ms", "p99 ms", "landed rec/s", "peak RSS MiB"
    );
    for shape in &args.shapes {
        let (server, client) = match (&signed, shape.as_str()) {
            (Some((s, c)), "auth") => (s, c),
            _ => (&server, &client),
        };
        let stream = format!("bench-{shape}");
        client
            .call("CreateDeliveryStream", &stream_request(&stream, shape))
            .await?;
        if shape == "enc" {
            encrypt(client, &stream).await?;
        }
        if shape == "app" {
            start_reader_app(client, &server.endpoint, &stream).await?;
        }
        let make: fn(u64) -> Vec<u8> = if shape == "1k" {
            kib_record
        } else {
            json_event
        };
        // 16 distinct pre-encoded bodies per connection: the client's cost stays small.
        let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(
            (0..16u64)
                .map(|b| {
                    let records: Vec<Vec<u8>> = (0..500).map(|i| make(b * 500 + i)).collect();
                    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
                    put_record_batch_body(&stream, &refs)
                })
                .collect(),
        );
        let record_bytes: u64 = (0..500).map(|i| make(i).len() as u64).sum::<u64>() / 500;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.duration);
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..args.connections {
            let client = client.clone();
            let bodies = bodies.clone();
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                let mut accepted = 0u64;
                let mut i = c;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let body = bodies[i % bodies.len()].clone();
                    i += 1;
                    match client.call_raw("PutRecordBatch", body).await {
                        Ok(r) => {
                            let failed = r["FailedPutCount"].as_u64().unwrap_or(0);
                            accepted += 500 - failed;
                            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        Err(e) => {
                            eprintln!("request failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (accepted, latencies)
            });
        }
        let mut accepted = 0;
        let mut latencies = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (a, l) = r?;
            accepted += a;
            latencies.extend(l);
        }
        let load_s = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        // Wait until everything acknowledged has landed in the bucket.
        let landed_deadline = Instant::now() + Duration::from_secs(120);
        let mut landed = 0;
        while Instant::now() < landed_deadline {
            landed = delivered_records(&server.endpoint, &stream).await;
            if landed >= accepted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let land_s = started.elapsed().as_secs_f64();
        println!(
            "{:<6} {:>12.0} {:>9.1} {:>10.2} {:>10.2} {:>14.0} {:>12.1}",
            shape,
            accepted as f64 / load_s,
            (accepted * record_bytes) as f64 / load_s / 1e6,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            landed as f64 / land_s,
            peak_rss_mib(server.pid),
        );
        if landed < accepted {
            println!(
                "  warning: only {landed} of {accepted} acknowledged records landed within 120 s"
            );
        }
        if shape == "app" {
            // How fast the application read the stream while it was being written: the time
            // until it had read every acknowledged record.
            let label = format!("application=\"{READER_APP}\"");
            let read_deadline = Instant::now() + Duration::from_secs(120);
            let mut read = 0;
            while Instant::now() < read_deadline {
                read = metric_sum(&server.endpoint, "Analytics_InputRecords", &label).await;
                if read >= accepted {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!(
                "  app: the application read {read} of {accepted} records, {:.0} records/s \
                 (until it had read them all)",
                read as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let _ = server.child.kill().await;
    if let Some((mut s, _)) = signed {
        let _ = s.child.kill().await;
    }
    Ok(())
}

/// The streaming SQL application of the `app` case.
const READER_APP: &str = "bench-app-reader";

/// Creates and starts [`READER_APP`], reading `stream` from now on: per second of processing
/// time, the count, mean and maximum latency per service and status, put into a second stream.
async fn start_reader_app(
    client: &FirehoseClient,
    endpoint: &str,
    stream: &str,
) -> anyhow::Result<()> {
    let out = format!("{stream}-out");
    client
        .call("CreateDeliveryStream", &stream_request(&out, "app-out"))
        .await?;
    let code = format!(
        "CREATE TABLE events (service VARCHAR, status INT, latency_ms BIGINT, pt AS PROCTIME())
           WITH ('connector' = 'firehose', 'stream' = '{stream}');
         CREATE TABLE per_status WITH ('connector' = 'firehose', 'stream' = '{out}');
         INSERT INTO per_status
         SELECT service, status, window_start, COUNT(*) AS n, AVG(latency_ms) AS mean_ms,
                MAX(latency_ms) AS max_ms
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(pt), INTERVAL '1' SECOND))
         GROUP BY service, status, window_start, window_end"
    );
    let target = |op: &str| format!("KinesisAnalytics_20150814.{op}");
    let app = json!({"ApplicationName": READER_APP});
    crate::bench_query::aws_json(
        endpoint,
        &target("CreateApplication"),
        &json!({"ApplicationName": READER_APP, "ApplicationCode": code}),
    )
    .await?;
    crate::bench_query::aws_json(endpoint, &target("StartApplication"), &app).await?;
    Ok(())
}

/// The access key of the `auth` case.
const BENCH_KEY: &str = "AKIABENCH";
const BENCH_SECRET: &str = "bench-secret-access-key";

/// Starts encryption at rest on `stream` and waits until it is `ENABLED`.
async fn encrypt(client: &FirehoseClient, stream: &str) -> anyhow::Result<()> {
    client
        .call(
            "StartDeliveryStreamEncryption",
            &json!({
                "DeliveryStreamName": stream,
                "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"}
            }),
        )
        .await?;
    for _ in 0..100 {
        let d = client
            .call(
                "DescribeDeliveryStream",
                &json!({"DeliveryStreamName": stream}),
            )
            .await?;
        let status =
            &d["DeliveryStreamDescription"]["DeliveryStreamEncryptionConfiguration"]["Status"];
        if status == "ENABLED" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("encryption of {stream} did not become ENABLED")
}

/// The function ARN the `lambda` case uses, mapped to [`start_echo_lambda`].
const ECHO_LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:echo";

/// The CreateDeliveryStream request of a benchmark case.
fn stream_request(stream: &str, shape: &str) -> serde_json::Value {
    let mut dest = json!({
        "RoleARN": "arn:aws:iam::123456789012:role/bench",
        "BucketARN": "arn:aws:s3:::bench",
        "Prefix": format!("{shape}/"),
        "ErrorOutputPrefix": format!("{shape}-errors/!{{firehose:error-output-type}}/"),
        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 1}
    });
    match shape {
        "jq" => {
            dest["Prefix"] = json!("jq/customer=!{partitionKeyFromQuery:customer}/");
            dest["DynamicPartitioningConfiguration"] = json!({"Enabled": true});
            dest["ProcessingConfiguration"] = json!({"Enabled": true, "Processors": [{
                "Type": "MetadataExtraction",
                "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{customer: .user_id}"},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}
                ]
            }]});
        }
        "lambda" => {
            dest["ProcessingConfiguration"] = json!({"Enabled": true, "Processors": [{
                "Type": "Lambda",
                "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": ECHO_LAMBDA}]
            }]});
        }
        _ => {}
    }
    json!({ "DeliveryStreamName": stream, "ExtendedS3DestinationConfiguration": dest })
}

/// Serves the Lambda Invoke API on 127.0.0.1 with a function that returns every record
/// unchanged (`Ok`): the cost measured is Lakehose's side of the Lambda contract.
async fn start_echo_lambda() -> anyhow::Result<String> {
    use axum::routing::post;
    async fn invoke(body: bytes::Bytes) -> axum::Json<serde_json::Value> {
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let records: Vec<serde_json::Value> = event["records"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| json!({"recordId": r["recordId"], "result": "Ok", "data": r["data"]}))
                    .collect()
            })
            .unwrap_or_default();
        axum::Json(json!({ "records": records }))
    }
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}
