//! The durability contract under SIGKILL: a client ingests while the server is killed at random
//! moments and restarted on the same data dir. Afterwards every acknowledged record is in the
//! bucket exactly once, nothing that was never sent appears, and records sent but not
//! acknowledged (in flight at a kill) appear at most once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use rand::Rng;

use crate::common::*;

const KILLS: usize = 20;
const RECORDS: u64 = 20_000;

#[derive(Default)]
struct Ledger {
    /// Every id ever sent (acknowledged or not).
    sent: HashSet<u64>,
    /// Ids the server acknowledged with a RecordId.
    acked: HashSet<u64>,
}

#[test]
fn sigkill_during_ingest_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let mut next_id = 0u64;
    let mut server = Server::start_in(tmp.path(), None);
    rt.block_on(async {
        server
            .client()
            .create_delivery_stream()
            .delivery_stream_name("crash")
            .extended_s3_destination_configuration(s3_dest("crash", 1, 0))
            .send()
            .await
            .unwrap();
    });
    let mut kills = 0;
    while kills < KILLS || next_id < RECORDS {
        let client = server.client_no_retry();
        // Four concurrent writers, each sending batches of 1..=60 fresh ids until stopped.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let per_round = (RECORDS / KILLS as u64).max(100);
        let round_start = next_id;
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(next_id));
        let mut writers = Vec::new();
        for _ in 0..4 {
            let client = client.clone();
            let ledger = ledger.clone();
            let stop = stop.clone();
            let counter = counter.clone();
            writers.push(rt.spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let n = rand::random_range(1..=60u64);
                    let first = counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    if first >= round_start + per_round * 2 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    let ids: Vec<u64> = (first..first + n).collect();
                    ledger.lock().unwrap().sent.extend(ids.iter().copied());
                    let records: Vec<Record> = ids
                        .iter()
                        .map(|id| {
                            Record::builder()
                                .data(Blob::new(format!("id-{id:08}\n")))
                                .build()
                                .unwrap()
                        })
                        .collect();
                    match client
                        .put_record_batch()
                        .delivery_stream_name("crash")
                        .set_records(Some(records))
                        .send()
                        .await
                    {
                        Ok(out) => {
                            let mut l = ledger.lock().unwrap();
                            for (id, r) in ids.iter().zip(out.request_responses) {
                                if r.record_id.is_some() {
                                    l.acked.insert(*id);
                                }
                            }
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }));
        }
        // Let the load run for a random while, then kill -9 mid-flight.
        let until = Instant::now() + Duration::from_millis(rng.random_range(80..400));
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        kills += 1;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            for w in writers {
                let _ = w.await;
            }
        });
        next_id = counter.load(std::sync::atomic::Ordering::Relaxed);
        server = Server::start_in(tmp.path(), None);
    }
    let (sent, acked) = {
        let l = ledger.lock().unwrap();
        (l.sent.clone(), l.acked.clone())
    };
    assert!(kills >= KILLS);
    assert!(
        acked.len() as u64 >= RECORDS / 2,
        "too few acknowledged records ({}) to mean anything",
        acked.len()
    );

    // Wait until every acknowledged record has landed.
    let bucket = server.bucket("crash");
    let count_ids = |objs: &[(String, Vec<u8>)]| -> HashMap<u64, usize> {
        let mut counts = HashMap::new();
        for (_, data) in objs {
            for line in String::from_utf8_lossy(data).lines() {
                let id: u64 = line
                    .strip_prefix("id-")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        counts
    };
    let objs = wait_for_objects(&bucket, Duration::from_secs(60), |o| {
        let counts = count_ids(o);
        acked.iter().all(|id| counts.contains_key(id))
    });
    std::thread::sleep(Duration::from_millis(500));
    let objs = wait_for_objects(&bucket, Duration::from_secs(1), |_| false).max(objs);
    let counts = count_ids(&objs);
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(id))
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged records lost: {lost:?} (of {})",
        acked.len()
    );
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(
        duplicated.is_empty(),
        "records delivered twice: {duplicated:?}"
    );
    let unknown: Vec<_> = counts
        .keys()
        .filter(|id| !sent.contains(id))
        .take(10)
        .collect();
    assert!(
        unknown.is_empty(),
        "records that were never sent: {unknown:?}"
    );
    eprintln!(
        "crash test: {kills} kills, {} sent, {} acknowledged, {} delivered, {} objects",
        sent.len(),
        acked.len(),
        counts.len(),
        objs.len()
    );
}
