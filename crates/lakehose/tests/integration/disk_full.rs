//! A full disk: the data dir lives on a 64 MiB tmpfs that the stream's own deliveries fill.
//! Records must then be refused with `ServiceUnavailableException` quickly (p99 ≤ 100 ms),
//! the server must keep running without corrupting anything, admission must resume within 5 s
//! of space being freed, and every acknowledged record must still be delivered exactly once.
//!
//! Needs root (it mounts a tmpfs), as CI on this project's machines has.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;

use crate::common::*;

/// A tmpfs mounted for the life of the value.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a {mib} MiB tmpfs on {} failed: the disk-full test needs root",
            dir.display()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ids_in(objects: &[(String, Vec<u8>)], counts: &mut HashMap<u64, usize>) {
    for (_, data) in objects {
        for line in String::from_utf8_lossy(data).lines() {
            let id = line
                .strip_prefix("id-")
                .and_then(|s| s.split(' ').next()?.parse().ok());
            *counts.entry(id.unwrap_or(u64::MAX)).or_insert(0) += 1;
        }
    }
}

#[test]
fn full_disk_refuses_quickly_and_resumes_when_space_is_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = Tmpfs::mount(&tmp.path().join("mnt"), 64);
    let data_dir = mnt.dir.join("data");
    let config = "[limits]\nmin_free_disk_mib = 4\nsegment_mib = 1\n";
    let mut server = Server::start_in(&data_dir, Some(config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = server.client_no_retry();
    rt.block_on(async {
        client
            .create_delivery_stream()
            .delivery_stream_name("full")
            .extended_s3_destination_configuration(s3_dest("full", 1, 0))
            .send()
            .await
            .unwrap();
    });

    // Four writers send 100 records of ~1 KiB with fresh ids until told to stop, timing every
    // request that was refused as a whole and noting when a request was accepted again.
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let refused = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let last_accept = Arc::new(Mutex::new(None::<Instant>));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let pad = "x".repeat(1000);
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, acked, refused, last_accept, stop, next, pad) = (
            client.clone(),
            acked.clone(),
            refused.clone(),
            last_accept.clone(),
            stop.clone(),
            next.clone(),
            pad.clone(),
        );
        writers.push(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(100, Ordering::Relaxed);
                let records: Vec<Record> = (first..first + 100)
                    .map(|id| {
                        Record::builder()
                            .data(Blob::new(format!("id-{id:09} {pad}\n")))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let sent = Instant::now();
                let out = client
                    .put_record_batch()
                    .delivery_stream_name("full")
                    .set_records(Some(records))
                    .send()
                    .await
                    .expect("a put must be answered, not fail");
                let took = sent.elapsed();
                let mut ok = Vec::new();
                for (i, r) in out.request_responses.iter().enumerate() {
                    if r.record_id.is_some() {
                        ok.push(first + i as u64);
                    } else {
                        assert_eq!(r.error_code(), Some("ServiceUnavailableException"));
                    }
                }
                if ok.is_empty() {
                    refused.lock().unwrap().push(took);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else {
                    *last_accept.lock().unwrap() = Some(Instant::now());
                }
                acked.lock().unwrap().extend(ok);
            }
        }));
    }

    // Fill the disk: deliveries land in the bucket on the same tmpfs until refusals start,
    // then hold the full state for a while.
    let deadline = Instant::now() + Duration::from_secs(120);
    while refused.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "the disk never filled up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        curl_status("GET", &format!("{}/health", server.endpoint)),
        200
    );

    // Free space: move the delivered objects away (remembering their records).
    let bucket = server.bucket("full");
    let mut counts = HashMap::new();
    let moved = objects(&bucket);
    ids_in(&moved, &mut counts);
    for (key, _) in &moved {
        std::fs::remove_file(bucket.join(key)).unwrap();
    }
    let freed = Instant::now();
    while last_accept.lock().unwrap().is_none_or(|t| t < freed) {
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "records were still refused 5 s after space was freed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let resumed = freed.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for w in writers {
            w.await.unwrap();
        }
    });

    let acked = acked.lock().unwrap().clone();
    let mut refused = refused.lock().unwrap().clone();
    refused.sort_unstable();
    // Everything acknowledged is delivered exactly once (the moved objects plus the rest).
    let rest = wait_for_objects(&bucket, Duration::from_secs(90), |o| {
        let mut c = counts.clone();
        ids_in(o, &mut c);
        acked.iter().all(|id| c.contains_key(id))
    });
    ids_in(&rest, &mut counts);
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(id))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(twice.is_empty(), "records delivered twice: {twice:?}");
    assert!(
        !counts.contains_key(&u64::MAX),
        "a delivered line is not a record that was sent"
    );

    let (p50, p99) = (percentile(&refused, 0.5), percentile(&refused, 0.99));
    eprintln!(
        "disk full: {} records acknowledged, {} refused requests, refusal p50 {p50:?} p99 {p99:?}, \
         accepting again {resumed:?} after space was freed",
        acked.len(),
        refused.len()
    );
    assert!(
        p99 <= Duration::from_millis(100),
        "refusal p99 {p99:?} > 100 ms"
    );
    server.stop();
}
