//! `lakehose put --stream NAME [FILE|-]`: newline-delimited records to PutRecordBatch calls of at
//! most 500 records and 4 MiB, a few calls in flight, throttled records retried with backoff
//! until they are accepted, a progress bar on a terminal and a summary at the end.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use crate::client::{FirehoseClient, put_record_batch_body};

const MAX_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
const MAX_RECORD_BYTES: usize = 1_024_000;

/// Options of `lakehose put`.
#[derive(clap::Args, Debug)]
pub struct PutArgs {
    /// The delivery stream.
    #[arg(long)]
    pub stream: String,
    /// File of newline-delimited records; `-` or absent reads standard input.
    pub file: Option<PathBuf>,
    /// Send each line without its trailing newline (by default the newline is kept, so the
    /// delivered objects stay newline-delimited; Firehose itself adds no delimiter).
    #[arg(long)]
    pub strip_newline: bool,
    /// Concurrent PutRecordBatch calls.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Give up on a record after this many throttled attempts.
    #[arg(long, default_value_t = 20)]
    pub max_attempts: u32,
}

struct Totals {
    sent: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    retries: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

/// Runs the put.
pub async fn run(client: FirehoseClient, args: PutArgs) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let reader: Box<dyn BufRead + Send> = match args.file.as_deref() {
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::BufReader::new(std::io::stdin())),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template(
            "{spinner} {pos} records sent ({per_sec}) {msg}",
        )?);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let totals = Arc::new(Totals {
        sent: 0.into(),
        failed: 0.into(),
        retries: 0.into(),
        bytes: 0.into(),
    });
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(2);
    let strip = args.strip_newline;
    let reader_task = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0;
        let mut skipped = 0;
        for line in reader.split(b'\n') {
            let mut line = line?;
            if line.is_empty() {
                continue;
            }
            if !strip {
                line.push(b'\n');
            }
            if line.len() > MAX_RECORD_BYTES {
                skipped += 1;
                continue;
            }
            if batch.len() == MAX_RECORDS || batch_bytes + line.len() > MAX_BATCH_BYTES {
                if tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                    break;
                }
                batch_bytes = 0;
            }
            batch_bytes += line.len();
            batch.push(line);
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(skipped)
    });
    while let Some(batch) = rx.recv().await {
        let permit = permits.clone().acquire_owned().await?;
        let client = client.clone();
        let totals = totals.clone();
        let bar = bar.clone();
        let stream = args.stream.clone();
        let max_attempts = args.max_attempts;
        tasks.spawn(async move {
            let _permit = permit;
            send_batch(&client, &stream, batch, max_attempts, &totals, &bar).await
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let skipped = reader_task.await??;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let sent = totals.sent.load(Relaxed);
    let failed = totals.failed.load(Relaxed) + skipped;
    println!(
        "{sent} records ({:.1} MiB) sent to {} in {elapsed:.2}s ({:.0} records/s); {} throttled retries; {failed} failed",
        totals.bytes.load(Relaxed) as f64 / 1048576.0,
        args.stream,
        sent as f64 / elapsed.max(1e-9),
        totals.retries.load(Relaxed),
    );
    if skipped > 0 {
        eprintln!("{skipped} lines were longer than {MAX_RECORD_BYTES} bytes and were not sent");
    }
    if failed > 0 {
        anyhow::bail!("{failed} records were not accepted");
    }
    Ok(())
}

async fn send_batch(
    client: &FirehoseClient,
    stream: &str,
    mut pending: Vec<Vec<u8>>,
    max_attempts: u32,
    totals: &Totals,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let slices: Vec<&[u8]> = pending.iter().map(Vec::as_slice).collect();
        let body = put_record_batch_body(stream, &slices);
        let response = match client.call_raw("PutRecordBatch", body).await {
            Ok(r) => r,
            Err(e) if e.retryable() && attempt < max_attempts => {
                totals.retries.fetch_add(pending.len() as u64, Relaxed);
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            Err(e) => return Err(e).context("PutRecordBatch failed"),
        };
        let entries = response["RequestResponses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut retry = Vec::new();
        for (record, entry) in pending.into_iter().zip(entries) {
            if entry.get("RecordId").is_some() {
                totals.sent.fetch_add(1, Relaxed);
                totals.bytes.fetch_add(record.len() as u64, Relaxed);
                bar.inc(1);
            } else {
                retry.push(record);
            }
        }
        if !retry.is_empty() {
            if attempt >= max_attempts {
                totals.failed.fetch_add(retry.len() as u64, Relaxed);
                break;
            }
            totals.retries.fetch_add(retry.len() as u64, Relaxed);
            tokio::time::sleep(backoff(attempt)).await;
        }
        pending = retry;
    }
    Ok(())
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(7)).min(5_000))
}
