//! Destination outages on simulated time. The engine runs on tokio's paused clock
//! ([`Clock::Tokio`]): a bucket that cannot be written (its folder is a plain file) fails every
//! delivery, and hours of outage pass in milliseconds.
//!
//! - Undelivered records are retried until their retention window ends, then dropped and counted
//!   (`DeliveryToS3.RecordsExpired`), at the window's end to within a second: windows of 0 s,
//!   300 s, 7200 s and Firehose's 24 h.
//! - After an outage shorter than the window, delivery resumes by itself and lands every record
//!   once, in order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use lakehose_api::StreamService;
use lakehose_log::LogConfig;
use lakehose_pipeline::{Clock, Engine, EngineConfig};

mod common;

/// 2023-11-14T22:13:20Z: any fixed start works.
const START_MS: i64 = 1_700_000_000_000;

async fn engine(dir: &Path, retention_s: i64) -> Arc<Engine> {
    let config = EngineConfig {
        clock: Clock::tokio_from(START_MS),
        retention_ms: retention_s * 1000,
        // Durability is not under test here; fsync only slows the simulated clock's test down.
        log: LogConfig {
            fsync: false,
            ..LogConfig::default()
        },
        ..EngineConfig::default()
    };
    common::open(dir, config).await
}

/// Makes the bucket unwritable: its folder is a plain file.
fn break_bucket(dir: &Path, name: &str) -> PathBuf {
    let buckets = dir.join("buckets");
    std::fs::create_dir_all(&buckets).unwrap();
    let path = buckets.join(name);
    std::fs::write(&path, b"not a folder").unwrap();
    path
}

fn records(from: u64, n: u64) -> Vec<Bytes> {
    (from..from + n)
        .map(|i| Bytes::from(format!("{i}\n")))
        .collect()
}

/// The records of every object in the bucket, one `Vec` per object.
fn objects(bucket: &Path) -> Vec<Vec<u64>> {
    common::objects(bucket)
        .into_iter()
        .map(|lines| lines.iter().map(|l| l.parse().unwrap()).collect())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn undelivered_records_expire_when_their_retention_window_ends() {
    for window_s in [0i64, 300, 7200, 24 * 3600] {
        let tmp = tempfile::tempdir().unwrap();
        break_bucket(tmp.path(), "outage");
        let engine = engine(tmp.path(), window_s).await;
        common::create(&engine, "outage", 0, START_MS).await;
        let rt = engine.runtime("outage").unwrap();
        let clock = Clock::tokio_from(START_MS);

        // The records are stamped somewhere between `sent` and `acked`: on the paused clock,
        // tokio may advance time while the log's writer thread (not a tokio task) fsyncs, so
        // the stamp is only known to lie in that interval, and expiry is checked against both
        // ends of it.
        let sent = clock.now_ms();
        let out = engine.put_records("outage", records(0, 10)).await.unwrap();
        let acked = clock.now_ms();
        assert_eq!(out.records.len(), 10);
        while rt.stats.expired_records.load(Ordering::Relaxed) < 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                clock.now_ms() - sent < (window_s + 3600) * 1000,
                "window {window_s} s: nothing expired an hour after the window ended"
            );
        }
        let expired_at = clock.now_ms();
        let held_ms = expired_at - sent;
        eprintln!(
            "retention window {window_s} s: records dropped after {held_ms} ms (ack took {} ms)",
            acked - sent
        );
        assert!(
            expired_at - sent >= window_s * 1000 - 1000
                && expired_at - acked <= window_s * 1000 + 1000,
            "window {window_s} s: records sent at {sent}, acknowledged at {acked}, dropped at \
             {expired_at} (ms on the test clock)"
        );
        assert_eq!(rt.stats.delivered_records.load(Ordering::Relaxed), 0);
        engine.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn delivery_resumes_in_order_after_an_outage() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = break_bucket(tmp.path(), "resume");
    let engine = engine(tmp.path(), 7200).await;
    common::create(&engine, "resume", 60, START_MS).await;
    let rt = engine.runtime("resume").unwrap();
    let clock = Clock::tokio_from(START_MS);

    // Twenty minutes of outage, 100 records every 30 s.
    let mut sent = 0;
    let outage_start = clock.now_ms();
    while clock.now_ms() - outage_start < 20 * 60 * 1000 {
        engine
            .put_records("resume", records(sent, 100))
            .await
            .unwrap();
        sent += 100;
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    assert_eq!(rt.stats.delivered_records.load(Ordering::Relaxed), 0);

    std::fs::remove_file(&broken).unwrap();
    let fixed = clock.now_ms();
    while rt.stats.delivered_records.load(Ordering::Relaxed) < sent {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            clock.now_ms() - fixed < 10 * 60 * 1000,
            "delivery did not catch up within 10 minutes of the destination's recovery"
        );
    }
    let caught_up_ms = clock.now_ms() - fixed;
    eprintln!("outage of 20 min: {sent} records delivered {caught_up_ms} ms after recovery");
    // The backoff is capped at 30 s (±20%): the first retry after recovery comes within it.
    assert!(
        caught_up_ms <= 40_000,
        "caught up only after {caught_up_ms} ms"
    );
    assert_eq!(rt.stats.expired_records.load(Ordering::Relaxed), 0);

    let mut objects = objects(&tmp.path().join("buckets").join("resume"));
    for object in &objects {
        assert!(
            object.windows(2).all(|w| w[0] < w[1]),
            "an object out of order: {object:?}"
        );
    }
    objects.sort_by_key(|o| o[0]);
    let all: Vec<u64> = objects.concat();
    assert_eq!(
        all,
        (0..sent).collect::<Vec<_>>(),
        "every record once, in order"
    );
    engine.shutdown().await;
}
