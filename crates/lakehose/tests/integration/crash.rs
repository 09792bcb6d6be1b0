//! The durability contract under SIGKILL: a client ingests into two streams while the server is
//! killed at random moments and restarted on the same data dir. One stream flushes as often as it
//! can; the other runs every batch through a slow Lambda function (200 ms an invocation), so kills
//! land mid-flush and mid-delivery. Afterwards every acknowledged record is in its bucket exactly
//! once, nothing that was never sent appears, and records sent but not acknowledged (in flight at
//! a kill) appear at most once.
//!
//! `LAKEHOSE_CRASH_KILLS` and `LAKEHOSE_CRASH_RECORDS` scale it (the `--long` tier).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    ProcessingConfiguration, Processor, ProcessorParameter, ProcessorParameterName, ProcessorType,
    Record,
};
use rand::Rng;

use crate::common::*;

/// Kills and records in the CI tier.
const KILLS: usize = 30;
const RECORDS: u64 = 50_000;
const STREAMS: [&str; 2] = ["crash", "crash-slow"];
const SLOW_LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:slow";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Ledger {
    /// Every id ever sent (acknowledged or not), with the index of the stream it went to.
    sent: HashMap<u64, usize>,
    /// Ids the server acknowledged with a RecordId.
    acked: HashSet<u64>,
}

/// A Lambda function (the Invoke API over HTTP/1.1) that returns every record unchanged after
/// 200 ms: a slow transform, so kills land while a delivery is in flight.
fn slow_lambda() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let records: Vec<_> = event["records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "recordId": r["recordId"], "result": "Ok", "data": r["data"],
                            })
                        })
                        .collect();
                    std::thread::sleep(Duration::from_millis(200));
                    let out =
                        serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        out.len()
                    );
                    if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&out).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn sigkill_during_ingest_loses_and_duplicates_nothing() {
    let kills_wanted: usize = env_or("LAKEHOSE_CRASH_KILLS", KILLS);
    let records_wanted: u64 = env_or("LAKEHOSE_CRASH_RECORDS", RECORDS);
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[lambdas]\n\"{SLOW_LAMBDA}\" = \"http://127.0.0.1:{}\"\n",
        slow_lambda()
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let mut next_id = 0u64;
    let mut server = Server::start_in(tmp.path(), Some(&config));
    rt.block_on(async {
        let client = server.client();
        client
            .create_delivery_stream()
            .delivery_stream_name(STREAMS[0])
            .extended_s3_destination_configuration(s3_dest(STREAMS[0], 1, 0))
            .send()
            .await
            .unwrap();
        let lambda = ProcessingConfiguration::builder()
            .enabled(true)
            .processors(
                Processor::builder()
                    .r#type(ProcessorType::Lambda)
                    .parameters(
                        ProcessorParameter::builder()
                            .parameter_name(ProcessorParameterName::LambdaArn)
                            .parameter_value(SLOW_LAMBDA)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build();
        let mut slow = s3_dest(STREAMS[1], 1, 0);
        slow.processing_configuration = Some(lambda);
        client
            .create_delivery_stream()
            .delivery_stream_name(STREAMS[1])
            .extended_s3_destination_configuration(slow)
            .send()
            .await
            .unwrap();
    });
    let mut kills = 0;
    let mut restart_ms = Vec::new();
    while kills < kills_wanted || next_id < records_wanted {
        let client = server.client_no_retry();
        // Four concurrent writers, each sending batches of 1..=60 fresh ids to either stream
        // until stopped.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let per_round = (records_wanted / kills_wanted as u64).max(100);
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
                    let stream = (first % 2) as usize;
                    ledger
                        .lock()
                        .unwrap()
                        .sent
                        .extend(ids.iter().map(|id| (*id, stream)));
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
                        .delivery_stream_name(STREAMS[stream])
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
        let started = Instant::now();
        server = Server::start_in(tmp.path(), Some(&config));
        restart_ms.push(started.elapsed().as_millis() as u64);
    }
    let (sent, acked) = {
        let l = ledger.lock().unwrap();
        (l.sent.clone(), l.acked.clone())
    };
    assert!(kills >= kills_wanted);
    assert!(
        acked.len() as u64 >= records_wanted / 2,
        "too few acknowledged records ({}) to mean anything",
        acked.len()
    );

    // Wait until every acknowledged record has landed in its stream's bucket.
    let count_ids = |objs: &[(String, Vec<u8>)], counts: &mut HashMap<u64, usize>| {
        for (_, data) in objs {
            for line in String::from_utf8_lossy(data).lines() {
                let id: u64 = line
                    .strip_prefix("id-")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                *counts.entry(id).or_insert(0) += 1;
            }
        }
    };
    let mut counts = HashMap::new();
    let mut objects = 0;
    for (index, stream) in STREAMS.iter().enumerate() {
        let mine: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|id| sent[id] == index)
            .collect();
        let bucket = server.bucket(stream);
        wait_for_objects(&bucket, Duration::from_secs(120), |o| {
            let mut counts = HashMap::new();
            count_ids(o, &mut counts);
            mine.iter().all(|id| counts.contains_key(id))
        });
        std::thread::sleep(Duration::from_millis(500));
        let objs = wait_for_objects(&bucket, Duration::from_secs(1), |_| false);
        let mut here = HashMap::new();
        count_ids(&objs, &mut here);
        let strays: Vec<_> = here
            .keys()
            .filter(|id| sent.get(id).is_some_and(|s| *s != index))
            .take(10)
            .collect();
        assert!(
            strays.is_empty(),
            "records in the wrong stream's bucket {stream}: {strays:?}"
        );
        for (id, n) in here {
            *counts.entry(id).or_insert(0) += n;
        }
        objects += objs.len();
    }
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
        .filter(|id| !sent.contains_key(id))
        .take(10)
        .collect();
    assert!(
        unknown.is_empty(),
        "records that were never sent: {unknown:?}"
    );
    restart_ms.sort_unstable();
    eprintln!(
        "crash test: {kills} kills, {} sent, {} acknowledged, {} delivered, {objects} objects; \
         restart to listening p50 {} ms, max {} ms",
        sent.len(),
        acked.len(),
        counts.len(),
        restart_ms[restart_ms.len() / 2],
        restart_ms[restart_ms.len() - 1],
    );
}

/// A stream holding 256 MiB of undelivered records (its bucket's endpoint is down) is killed;
/// the restarted server must listen and accept records again within 2 s, report what it
/// recovered, and still hold every acknowledged record.
#[test]
fn restart_with_a_256_mib_backlog_takes_under_2_s() {
    const BACKLOG: usize = 256 << 20;
    const RECORD: usize = 1024;
    const BATCH: usize = 500;
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens on this port: every delivery fails and the records stay in the log.
    let config = format!(
        "[buckets.backlog]\nendpoint = \"http://127.0.0.1:{}\"\nallow_http = true\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        free_port()
    );
    let mut server = Server::start_in(tmp.path(), Some(&config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked = rt.block_on(async {
        let client = server.client();
        client
            .create_delivery_stream()
            .delivery_stream_name("backlog")
            .extended_s3_destination_configuration(s3_dest("backlog", 128, 900))
            .send()
            .await
            .unwrap();
        let requests = BACKLOG / (RECORD * BATCH);
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut writers = Vec::new();
        for _ in 0..4 {
            let (client, acked, next) = (client.clone(), acked.clone(), next.clone());
            writers.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                    let records: Vec<Record> = (0..BATCH)
                        .map(|_| {
                            Record::builder()
                                .data(Blob::new(vec![b'x'; RECORD]))
                                .build()
                                .unwrap()
                        })
                        .collect();
                    let out = client
                        .put_record_batch()
                        .delivery_stream_name("backlog")
                        .set_records(Some(records))
                        .send()
                        .await
                        .unwrap();
                    acked.fetch_add(
                        BATCH - out.failed_put_count as usize,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        acked.load(std::sync::atomic::Ordering::Relaxed)
    });
    assert!(
        acked * RECORD >= BACKLOG * 9 / 10,
        "only {acked} records were accepted"
    );
    server.kill();

    let started = Instant::now();
    let server = Server::start_in(tmp.path(), Some(&config));
    let listening = started.elapsed();
    rt.block_on(async {
        server
            .client()
            .put_record()
            .delivery_stream_name("backlog")
            .record(Record::builder().data(Blob::new("after")).build().unwrap())
            .send()
            .await
            .unwrap();
    });
    let accepting = started.elapsed();
    let recovered = metric(
        &server.endpoint,
        "LogRecovery_UndeliveredRecords",
        "backlog",
    );
    let took_ms = metric(&server.endpoint, "LogRecovery_Milliseconds", "backlog");
    eprintln!(
        "backlog restart: {acked} records ({} MiB) recovered in {took_ms:.0} ms; listening after {} ms, \
         first record accepted after {} ms",
        (acked * RECORD) >> 20,
        listening.as_millis(),
        accepting.as_millis()
    );
    assert_eq!(
        recovered as usize, acked,
        "every acknowledged record is recovered, undelivered"
    );
    assert!(
        accepting < Duration::from_secs(2),
        "restart with a 256 MiB backlog took {accepting:?}"
    );
}
