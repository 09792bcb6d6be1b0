//! `lakehose bench analytics`: streaming SQL throughput and latency.
//!
//! - **Throughput** (in process, one thread): synthetic JSON events (`key` among `--keys`
//!   distinct values, an integer `value`, an `event_time` advancing 0.1 ms per event, so
//!   10,000 events per second of event time) pushed in log-sized batches through the same
//!   [`lakehose_analytics::Application`] the server runs, for three queries: a stateless
//!   filter (the cost of decoding JSON), a 10 s `TUMBLE` `GROUP BY key` with COUNT/SUM/MAX,
//!   and a `HOP` (10 s windows every 5 s, so each event updates two windows). Events/s is the
//!   median of `--runs` runs; the result rows are counted so no work is skipped.
//! - **Latency** (the real server): this executable as `serve`, an application with a 1 s
//!   tumbling window and an HTTP sink served by the bench; each sample puts one event whose
//!   time closes the previous window and measures from the `PutRecord` acknowledgement to
//!   the window's result arriving over HTTP (log commit, wake-up, window firing, checkpoint
//!   fsync, POST).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lakehose_analytics::{Application, Input};
use serde_json::json;
use tokio::sync::mpsc;

use crate::bench_query::{Server, aws_json};
use crate::client::FirehoseClient;

/// Options of `lakehose bench analytics`.
#[derive(clap::Args, Debug)]
pub struct AnalyticsBenchArgs {
    /// Events per throughput run.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: usize,
    /// Distinct grouping keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Records per push (the runtime reads up to 50,000 per round).
    #[arg(long, default_value_t = 8_192)]
    pub batch: usize,
    /// Timed runs per query; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Latency samples against the server (0 skips it).
    #[arg(long, default_value_t = 50)]
    pub latency_samples: usize,
}

const BASE_MS: i64 = 1_764_000_000_000;

fn source(extra: &str) -> String {
    format!(
        "CREATE TABLE events (key VARCHAR, value BIGINT, event_time TIMESTAMP(3){extra})
           WITH ('connector' = 'firehose', 'stream' = 'events');
         CREATE TABLE out WITH ('connector' = 'firehose', 'stream' = 'out');"
    )
}

fn queries() -> Vec<(&'static str, String)> {
    let wm = ", WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND";
    vec![
        (
            "decode + filter (stateless)",
            format!(
                "{} INSERT INTO out SELECT key, value FROM events WHERE value < 0",
                source("")
            ),
        ),
        (
            "TUMBLE 10 s, GROUP BY key",
            format!(
                "{} INSERT INTO out SELECT key, window_start, COUNT(*) AS n, SUM(value) AS total, MAX(value) AS top
                 FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' SECOND))
                 GROUP BY key, window_start, window_end",
                source(wm)
            ),
        ),
        (
            "HOP 10 s every 5 s, GROUP BY key",
            format!(
                "{} INSERT INTO out SELECT key, window_start, COUNT(*) AS n, SUM(value) AS total
                 FROM TABLE(HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
                 GROUP BY key, window_start, window_end",
                source(wm)
            ),
        ),
    ]
}

/// The synthetic events, as the log would hold them.
fn events(n: usize, keys: usize) -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            // xorshift: cheap, deterministic spread over the keys.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = state as usize % keys;
            let t = BASE_MS + (i as i64) / 10;
            let ts = chrono_like(t);
            format!(
                r#"{{"key":"k{key}","value":{},"event_time":"{ts}"}}"#,
                (state >> 20) % 1000
            )
            .into_bytes()
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds.
fn chrono_like(ms: i64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

pub async fn run(args: AnalyticsBenchArgs) -> anyhow::Result<()> {
    println!("generating {} events ({} keys)...", args.events, args.keys);
    let data = events(args.events, args.keys);
    let bytes: usize = data.iter().map(Vec::len).sum();
    println!(
        "{:.1} MiB of JSON, {:.0} bytes per event; one thread, batches of {}",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / args.events as f64,
        args.batch
    );
    println!(
        "| query | events/s (median of {}) | MiB/s | result rows |",
        args.runs
    );
    println!("|---|---|---|---|");
    for (name, sql) in queries() {
        let mut rates = Vec::new();
        let mut rows = 0;
        for _ in 0..args.runs.max(1) {
            let mut app = Application::new(&sql).await?;
            let pump = &mut app.pumps[0];
            let start = Instant::now();
            rows = 0;
            for (n, chunk) in data.chunks(args.batch.max(1)).enumerate() {
                let inputs: Vec<Input> = chunk
                    .iter()
                    .map(|d| Input {
                        data: d,
                        arrival_ms: BASE_MS + n as i64,
                    })
                    .collect();
                rows += pump.push(&inputs).await?.row_count();
            }
            rates.push(args.events as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "| {name} | {median:.0} | {:.1} | {rows} |",
            median * (bytes as f64 / args.events as f64) / (1 << 20) as f64
        );
    }
    if args.latency_samples > 0 {
        latency(args.latency_samples).await?;
    }
    Ok(())
}

/// Ack-to-result latency through the real server (see the module docs).
async fn latency(samples: usize) -> anyhow::Result<()> {
    // The HTTP sink: every POST's arrival time goes to the channel.
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let tx = Arc::new(tx);
    let app = axum::Router::new().route(
        "/results",
        axum::routing::post(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Instant::now());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tmp = tempfile::tempdir()?;
    let config =
        "[egress]\nallow_http_hosts = [\"127.0.0.1\"]\nallow_private = [\"127.0.0.0/8\"]\n";
    let server = Server::start_with_config(tmp.path(), config).await?;
    let result = measure_latency(&server.endpoint, port, samples, &mut rx).await;
    server.stop().await;
    result
}

async fn measure_latency(
    endpoint: &str,
    port: u16,
    samples: usize,
    arrivals: &mut mpsc::UnboundedReceiver<Instant>,
) -> anyhow::Result<()> {
    let client = FirehoseClient::new(endpoint)?;
    client
        .call(
            "CreateDeliveryStream",
            &json!({"DeliveryStreamName": "events", "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/bench", "BucketARN": "arn:aws:s3:::bench",
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900}}}),
        )
        .await?;
    let code = format!(
        "CREATE TABLE events (key VARCHAR, event_time TIMESTAMP(3)) WITH ('stream' = 'events');
         CREATE TABLE out WITH ('connector' = 'http', 'url' = 'http://127.0.0.1:{port}/results');
         INSERT INTO out SELECT key, window_start, COUNT(*) AS n
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
         GROUP BY key, window_start, window_end"
    );
    let target = |op: &str| format!("KinesisAnalytics_20150814.{op}");
    aws_json(
        endpoint,
        &target("CreateApplication"),
        &json!({"ApplicationName": "latency", "ApplicationCode": code}),
    )
    .await?;
    aws_json(
        endpoint,
        &target("StartApplication"),
        &json!({"ApplicationName": "latency"}),
    )
    .await?;
    let put = |t: i64| {
        let record = format!(r#"{{"key":"k","event_time":"{}"}}"#, chrono_like(t));
        json!({"DeliveryStreamName": "events", "Record": {"Data": base64_of(record.as_bytes())}})
    };
    // The first event opens window 0; event k (at k seconds) closes window k-1.
    client.call("PutRecord", &put(BASE_MS)).await?;
    let mut latencies = Vec::with_capacity(samples);
    for k in 1..=samples as i64 {
        client.call("PutRecord", &put(BASE_MS + k * 1000)).await?;
        let acked = Instant::now();
        let arrived = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .context("no window result within 10 s")?
            .context("the HTTP sink stopped")?;
        latencies.push(arrived.saturating_duration_since(acked).as_secs_f64() * 1e3);
    }
    if latencies.is_empty() {
        bail!("no latency sample");
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "\nlatency, PutRecord ack -> window result over HTTP ({} samples): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
    Ok(())
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
