//! Delivery to buckets: naming, compression, buffering triggers, restarts, S3-compatible servers.

use std::io::Read;
use std::time::{Duration, Instant};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{CompressionFormat, Record};

use crate::common::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn decode(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
        assert_eq!(zip.len(), 1, "one entry per zip object");
        zip.by_index(0).unwrap().read_to_end(&mut out).unwrap();
    } else if name.ends_with(".snappy") {
        snap::read::FrameDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else if name.ends_with(".hsnappy") {
        let mut rest = data;
        while !rest.is_empty() {
            let raw = u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize;
            let comp = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            let block = snap::raw::Decoder::new()
                .decompress_vec(&rest[8..8 + comp])
                .unwrap();
            assert_eq!(block.len(), raw);
            out.extend_from_slice(&block);
            rest = &rest[8 + comp..];
        }
    } else {
        out.extend_from_slice(data);
    }
    out
}

/// `<prefix>/<stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid><ext>`
fn assert_firehose_name(key: &str, stream: &str, version: u32, ext: &str) {
    let file = key.rsplit('/').next().unwrap();
    let rest = file
        .strip_prefix(&format!("{stream}-{version}-"))
        .unwrap_or_else(|| panic!("{key}"));
    let rest = rest
        .strip_suffix(ext)
        .unwrap_or_else(|| panic!("{key} lacks {ext}"));
    let (ts, uuid) = rest.split_at(19);
    assert!(
        chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d-%H-%M-%S").is_ok(),
        "{key}"
    );
    let uuid = uuid.strip_prefix('-').unwrap();
    assert_eq!(uuid.len(), 36, "{key}");
    assert_eq!(uuid.matches('-').count(), 4, "{key}");
}

#[test]
fn every_compression_format_is_readable() {
    let server = Server::start();
    let c = server.client();
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "z".repeat(i % 50)))
        .collect();
    let expected = lines.concat().into_bytes();
    let formats = [
        (CompressionFormat::Uncompressed, ""),
        (CompressionFormat::Gzip, ".gz"),
        (CompressionFormat::Zip, ".zip"),
        (CompressionFormat::Snappy, ".snappy"),
        (CompressionFormat::HadoopSnappy, ".hsnappy"),
    ];
    rt().block_on(async {
        for (i, (format, _)) in formats.iter().enumerate() {
            let mut dest = s3_dest(&format!("fmt{i}"), 128, 1);
            dest.compression_format = Some(format.clone());
            create(&c, &format!("fmt{i}"), dest).await;
            put_lines(&c, &format!("fmt{i}"), &lines).await;
        }
    });
    for (i, (_, ext)) in formats.iter().enumerate() {
        let objs = wait_for_objects(
            &server.bucket(&format!("fmt{i}")),
            Duration::from_secs(20),
            |o| o.iter().map(|(k, d)| decode(k, d).len()).sum::<usize>() >= expected.len(),
        );
        assert!(!objs.is_empty(), "format {ext}: nothing delivered");
        let mut got = Vec::new();
        for (key, data) in &objs {
            assert_firehose_name(key, &format!("fmt{i}"), 1, ext);
            got.extend(decode(key, data));
        }
        assert_eq!(
            got, expected,
            "format {ext}: records concatenated as sent, in order, once"
        );
    }
}

#[test]
fn default_prefix_extension_override_and_custom_prefixes() {
    let server = Server::start();
    let c = server.client();
    rt().block_on(async {
        let mut dest = s3_dest("named", 1, 0);
        dest.file_extension = Some(".json".into());
        create(&c, "plain", dest).await;
        let mut dest = s3_dest("named", 1, 0);
        dest.prefix = Some(
            "logs/year=!{timestamp:yyyy}/month=!{timestamp:MM}/r=!{firehose:random-string}/".into(),
        );
        dest.error_output_prefix = Some("errors/!{firehose:error-output-type}/".into());
        create(&c, "custom", dest).await;
        let mut dest = s3_dest("named", 1, 0);
        dest.prefix = Some("tz/!{timestamp:HH}/".into());
        dest.error_output_prefix = Some("errors/!{firehose:error-output-type}/".into());
        dest.custom_time_zone = Some("Asia/Kolkata".into());
        create(&c, "tz", dest).await;
        for s in ["plain", "custom", "tz"] {
            put_lines(&c, s, &[format!("{s}\n")]).await;
        }
    });
    let objs = wait_for_objects(&server.bucket("named"), Duration::from_secs(20), |o| {
        o.len() >= 3
    });
    assert_eq!(
        objs.len(),
        3,
        "{:?}",
        objs.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    let now = chrono::Utc::now();
    let plain = objs.iter().find(|(_, d)| d == b"plain\n").unwrap();
    let hour = now.format("%Y/%m/%d/%H/").to_string();
    let prev_hour = (now - chrono::Duration::minutes(5))
        .format("%Y/%m/%d/%H/")
        .to_string();
    assert!(
        plain.0.starts_with(&hour) || plain.0.starts_with(&prev_hour),
        "{}",
        plain.0
    );
    assert_firehose_name(&plain.0, "plain", 1, ".json");
    let custom = objs.iter().find(|(_, d)| d == b"custom\n").unwrap();
    let expected_start = format!(
        "logs/year={}/month={}/r=",
        now.format("%Y"),
        now.format("%m")
    );
    assert!(custom.0.starts_with(&expected_start), "{}", custom.0);
    let random = custom.0[expected_start.len()..].split('/').next().unwrap();
    assert_eq!(random.len(), 11, "random-string is 11 characters: {random}");
    let tz = objs.iter().find(|(_, d)| d == b"tz\n").unwrap();
    let ist = now.with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
    let ist_early = (now - chrono::Duration::minutes(5))
        .with_timezone(&chrono::FixedOffset::east_opt(19800).unwrap());
    let hh: Vec<String> = [ist, ist_early]
        .iter()
        .map(|t| format!("tz/{}/", t.format("%H")))
        .collect();
    assert!(
        hh.iter().any(|h| tz.0.starts_with(h)),
        "{} not in {hh:?}",
        tz.0
    );
}

#[test]
fn size_and_interval_triggers() {
    let server = Server::start();
    let c = server.client();
    let record = "r".repeat(1023) + "\n";
    rt().block_on(async {
        // Size: 1 MiB buffer, 900 s interval. 1.5 MiB in -> exactly one ~1 MiB object soon.
        create(&c, "bysize", s3_dest("size", 1, 900)).await;
        put_lines(&c, "bysize", &vec![record.clone(); 1536]).await;
        // Interval: 128 MiB buffer, 3 s interval.
        create(&c, "bytime", s3_dest("time", 128, 3)).await;
        put_lines(&c, "bytime", std::slice::from_ref(&record)).await;
    });
    let put_at = Instant::now();
    let sized = wait_for_objects(&server.bucket("size"), Duration::from_secs(15), |o| {
        !o.is_empty()
    });
    assert_eq!(sized.len(), 1, "one object for the first MiB");
    assert_eq!(
        sized[0].1.len(),
        1024 * 1024,
        "the object holds exactly the 1 MiB that filled the buffer"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        crate::common::objects(&server.bucket("size")).len(),
        1,
        "the rest waits for its interval"
    );

    let early = crate::common::objects(&server.bucket("time"));
    if put_at.elapsed() < Duration::from_millis(2500) {
        assert!(early.is_empty(), "delivered before the 3 s interval");
    }
    let timed = wait_for_objects(&server.bucket("time"), Duration::from_secs(15), |o| {
        !o.is_empty()
    });
    assert_eq!(timed.len(), 1);
    assert!(
        put_at.elapsed() >= Duration::from_millis(2000),
        "delivered at {:?}",
        put_at.elapsed()
    );
}

#[test]
fn streams_and_undelivered_data_survive_restart() {
    let mut server = Server::start();
    let tmp = server.take_tmp().unwrap();
    let lines: Vec<String> = (0..300).map(|i| format!("keep-{i}\n")).collect();
    rt().block_on(async {
        let c = server.client();
        create(&c, "durable", s3_dest("restart", 128, 4)).await;
        put_lines(&c, "durable", &lines).await;
    });
    server.stop();
    assert!(
        crate::common::objects(&tmp.path().join("buckets/restart")).is_empty(),
        "not yet delivered"
    );
    let server = Server::start_in(tmp.path(), None);
    rt().block_on(async {
        let c = server.client();
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("durable")
            .send()
            .await
            .unwrap();
        assert_eq!(d.delivery_stream_description.unwrap().version_id, "1");
    });
    let objs = wait_for_objects(&server.bucket("restart"), Duration::from_secs(20), |o| {
        !o.is_empty()
    });
    let got: Vec<u8> = objs.iter().flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(String::from_utf8(got).unwrap(), lines.concat());
}

/// A bucket mapped in lakehose.toml to a real S3-protocol server (moto's server, from PyPI).
#[test]
fn delivers_to_an_s3_compatible_endpoint() {
    let moto = Moto::start_on(free_port());
    moto.create_bucket("remote-lake");
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), Some(&moto.bucket_config("remote-lake")));
    let lines: Vec<String> = (0..100).map(|i| format!("remote-{i}\n")).collect();
    rt().block_on(async {
        let c = server.client();
        let mut dest = s3_dest("remote-lake", 1, 0);
        dest.compression_format = Some(CompressionFormat::Gzip);
        create(&c, "remote", dest).await;
        put_lines(&c, "remote", &lines).await;
    });
    let got = read_remote(
        &moto,
        "remote-lake",
        lines.concat().len(),
        Duration::from_secs(20),
    );
    assert_eq!(String::from_utf8(got).unwrap(), lines.concat());
    assert!(
        !tmp.path().join("buckets/remote-lake").exists(),
        "a mapped bucket is not written locally"
    );
}

/// Everything in a remote bucket, decoded and concatenated in key order, once at least
/// `expected_len` bytes are there (or the timeout passed).
fn read_remote(moto: &Moto, bucket: &str, expected_len: usize, timeout: Duration) -> Vec<u8> {
    use lakehose_sinks::ObjectSink;
    let sink = moto.sink(bucket);
    rt().block_on(async {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = Vec::new();
            for k in sink.list("").await.unwrap() {
                all.extend(decode(&k, &sink.get(&k).await.unwrap()));
            }
            if all.len() >= expected_len || Instant::now() > deadline {
                break all;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The destination is down: records stay in the log (freshness grows), the disk budget
/// refuses new records per record, and when the destination comes back everything
/// acknowledged is delivered in order and the budget frees up.
#[test]
fn outage_keeps_data_refuses_over_budget_and_recovers() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[limits]\nmax_disk_mib = 1\nsegment_mib = 1\n[buckets.later]\nendpoint = \"http://127.0.0.1:{port}\"\n\
         allow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
    );
    let server = Server::start_in(tmp.path(), Some(&config));
    let c = server.client();
    let chunk: Vec<String> = (0..250)
        .map(|i| format!("{i:04}{}\n", "o".repeat(1995)))
        .collect();
    let mut accepted = Vec::new();
    let mut throttled = 0;
    rt().block_on(async {
        create(&c, "outage", s3_dest("later", 1, 0)).await;
        for round in 0..4 {
            let records: Vec<Record> = chunk
                .iter()
                .map(|l| {
                    Record::builder()
                        .data(Blob::new(format!("r{round}-{l}")))
                        .build()
                        .unwrap()
                })
                .collect();
            let out = c
                .put_record_batch()
                .delivery_stream_name("outage")
                .set_records(Some(records))
                .send()
                .await
                .unwrap();
            for (line, r) in chunk.iter().zip(&out.request_responses) {
                match (&r.record_id, r.error_code.as_deref()) {
                    (Some(_), None) => accepted.push(format!("r{round}-{line}")),
                    (None, Some("ServiceUnavailableException")) => {
                        let message = r.error_message.as_deref().unwrap_or_default();
                        assert!(message.starts_with("Slow down"), "{message}");
                        throttled += 1;
                    }
                    other => panic!("unexpected entry {other:?}"),
                }
            }
            assert_eq!(
                out.failed_put_count as usize,
                out.request_responses
                    .iter()
                    .filter(|r| r.error_code.is_some())
                    .count()
            );
        }
    });
    assert!(
        !accepted.is_empty() && accepted.len() <= 750,
        "accepted {}",
        accepted.len()
    );
    assert!(
        throttled >= 250,
        "the disk budget refused only {throttled} records"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let freshness = metric(&server.endpoint, "DeliveryToS3_DataFreshness", "outage");
        if freshness >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "DataFreshness stuck at {freshness} while the destination is down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let moto = Moto::start_on(port);
    moto.create_bucket("later");
    let expected = accepted.concat();
    let got = read_remote(&moto, "later", expected.len(), Duration::from_secs(90));
    // Objects are listed by key, not by delivery time: compare the records as a set, and check
    // that each object holds a run of consecutive records.
    let got = String::from_utf8(got).unwrap();
    let mut got_lines: Vec<&str> = got.lines().collect();
    let mut want_lines: Vec<&str> = expected.lines().collect();
    let position: std::collections::HashMap<&str, usize> = want_lines
        .iter()
        .enumerate()
        .map(|(i, l)| (*l, i))
        .collect();
    let sink = moto.sink("later");
    rt().block_on(async {
        use lakehose_sinks::ObjectSink;
        for key in sink.list("").await.unwrap() {
            let body = String::from_utf8(sink.get(&key).await.unwrap().to_vec()).unwrap();
            let idx: Vec<usize> = body.lines().map(|l| position[l]).collect();
            assert!(
                idx.windows(2).all(|w| w[1] == w[0] + 1),
                "{key} is not a run of consecutive records"
            );
        }
    });
    got_lines.sort_unstable();
    want_lines.sort_unstable();
    assert_eq!(
        got_lines, want_lines,
        "every accepted record delivered once after the outage"
    );
    rt().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = c
                .put_record_batch()
                .delivery_stream_name("outage")
                .records(
                    Record::builder()
                        .data(Blob::new("after\n"))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            if out.failed_put_count == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the disk budget never freed up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// Records that outlive the retention period while the destination is down are dropped,
/// counted in a metric, and their disk space is freed.
#[test]
fn retention_expiry_drops_and_counts() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[limits]\nretention_hours = 0.0005\n[buckets.never]\nendpoint = \"http://127.0.0.1:{port}\"\n\
         allow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
    );
    let server = Server::start_in(tmp.path(), Some(&config));
    let c = server.client();
    rt().block_on(async {
        create(&c, "expire", s3_dest("never", 1, 0)).await;
        put_lines(
            &c,
            "expire",
            &(0..40).map(|i| format!("{i}\n")).collect::<Vec<_>>(),
        )
        .await;
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server.endpoint, "DeliveryToS3_RecordsExpired", "expire") < 40.0 {
        assert!(
            Instant::now() < deadline,
            "records were not expired after the 1.8 s retention"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        metric(&server.endpoint, "DeliveryToS3_Records", "expire"),
        0.0
    );
}
