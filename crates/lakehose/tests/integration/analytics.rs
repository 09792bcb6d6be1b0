//! Streaming SQL applications through the real binary: a tumbling-window count from one
//! delivery stream into another, with kill -9 while it runs; the emitted results must equal
//! those of an uninterrupted run (every window exactly once, with exactly its count).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rand::Rng;

use crate::common::*;

/// Calls a Kinesis Analytics operation with curl; (HTTP status, JSON body).
fn kda(endpoint: &str, op: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .args([
            "-H",
            &format!("X-Amz-Target: KinesisAnalytics_20150814.{op}"),
        ])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args(["--data-binary", &body.to_string(), endpoint])
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status.trim().parse().unwrap(), json)
}

const BASE_MS: i64 = 1_764_000_000_000;
const WINDOW_MS: i64 = 10_000;

fn event(user: usize, t: i64) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(t)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!(r#"{{"user_id":"u{user}","event_time":"{ts}"}}"#)
}

const APP: &str = "
CREATE TABLE clicks (
    user_id VARCHAR,
    event_time TIMESTAMP(3),
    WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH ('connector' = 'firehose', 'stream' = 'clicks');
CREATE TABLE per_window WITH ('connector' = 'firehose', 'stream' = 'results');
INSERT INTO per_window
SELECT user_id, window_start, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND))
GROUP BY user_id, window_start, window_end;
";

/// Every result row in the `res` bucket: (user, window_start) -> the counts seen (one each).
fn results(server: &Server) -> BTreeMap<(String, String), Vec<u64>> {
    let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for (_, bytes) in objects(&server.bucket("res")) {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let row: serde_json::Value = serde_json::from_slice(line).unwrap();
            out.entry((
                row["user_id"].as_str().unwrap().to_string(),
                row["window_start"].as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(row["clicks"].as_u64().unwrap());
        }
    }
    out
}

/// The streams `clicks` (buckets `raw`) and `results` (bucket `res`), and the application
/// `counts` ([`APP`]) started from `NOW`, on `server`.
fn start_counts(server: &Server, rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let c = server.client();
        create(&c, "clicks", s3_dest("raw", 64, 900)).await;
        create(&c, "results", s3_dest("res", 1, 1)).await;
    });
    let (status, body) = kda(
        &server.endpoint,
        "CreateApplication",
        &serde_json::json!({"ApplicationName": "counts", "ApplicationCode": APP}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = kda(
        &server.endpoint,
        "StartApplication",
        &serde_json::json!({"ApplicationName": "counts", "InputConfigurations": [
            {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}]}),
    );
    assert_eq!(status, 200, "{body}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn windowed_results_survive_kill_9_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime();
    let mut server = Server::start_in(&data, None);
    start_counts(&server, &rt);

    // 12,000 events over 120 s of event time (12 windows), 7 users, in batches of 400, with a
    // kill -9 after every third batch (at a random moment of the application's work).
    let mut rng = rand::rng();
    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let events: Vec<(usize, i64)> = (0..12_000)
        .map(|i| (rng.random_range(0..7), BASE_MS + i as i64 * 10))
        .collect();
    let mut kills = 0;
    for (n, chunk) in events.chunks(400).enumerate() {
        let lines: Vec<String> = chunk.iter().map(|&(u, t)| event(u, t)).collect();
        rt.block_on(put_lines(&server.client(), "clicks", &lines));
        for &(u, t) in chunk {
            *expected
                .entry((format!("u{u}"), t - t.rem_euclid(WINDOW_MS)))
                .or_default() += 1;
        }
        if n % 3 == 2 {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
            server.kill();
            kills += 1;
            server = Server::start_in(&data, None);
        }
    }
    // One event far ahead closes every window.
    rt.block_on(put_lines(
        &server.client(),
        "clicks",
        &[event(0, BASE_MS + 10 * 60_000)],
    ));
    let want: BTreeMap<(String, String), Vec<u64>> = expected
        .iter()
        .map(|((u, start), n)| {
            let start = chrono::DateTime::from_timestamp_millis(*start)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            ((u.clone(), start), vec![*n])
        })
        .collect();
    let mut got = BTreeMap::new();
    wait_until(Duration::from_secs(60), || {
        got = results(&server);
        got.len() >= want.len() && got.values().map(Vec::len).sum::<usize>() >= want.len()
    });
    assert!(kills >= 9);
    assert_eq!(got, want, "results after {kills} kills");

    // The figures are in /metrics and DescribeApplication.
    let (_, body) = kda(
        &server.endpoint,
        "DescribeApplication",
        &serde_json::json!({"ApplicationName": "counts"}),
    );
    assert_eq!(body["ApplicationDetail"]["ApplicationStatus"], "RUNNING");
    let pump = &body["ApplicationDetail"]["LakehoseRuntime"]["Pumps"]["insert_1"];
    assert!(
        pump["watermark_ms"].as_i64().unwrap() >= BASE_MS + 10 * 60_000 - 1_000,
        "{pump}"
    );
    let metrics = std::process::Command::new("curl")
        .args(["-s", &format!("{}/metrics", server.endpoint)])
        .output()
        .unwrap();
    let metrics = String::from_utf8(metrics.stdout).unwrap();
    assert!(
        metrics.contains("Analytics_OutputRecords") || metrics.contains("Analytics.OutputRecords"),
        "{metrics}"
    );
}

#[test]
fn lifecycle_and_errors_in_the_aws_shape() {
    let server = Server::start();
    let rt = runtime();
    rt.block_on(create(&server.client(), "clicks", s3_dest("raw", 64, 900)));
    let call = |op: &str, body: serde_json::Value| kda(&server.endpoint, op, &body);

    let (status, body) = call(
        "CreateApplication",
        serde_json::json!({"ApplicationName": "bad", "ApplicationCode": "INSERT INTO nowhere SELECT 1"}),
    );
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "CodeValidationException", "{body}");
    let (status, body) = call(
        "DescribeApplication",
        serde_json::json!({"ApplicationName": "bad"}),
    );
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ResourceNotFoundException"))
    );

    // A sink stream that does not exist: created (it may be made later), refused at start.
    let code = APP.replace("'stream' = 'results'", "'stream' = 'later'");
    let (status, _) = call(
        "CreateApplication",
        serde_json::json!({"ApplicationName": "a", "ApplicationCode": code}),
    );
    assert_eq!(status, 200);
    let (status, body) = call(
        "StartApplication",
        serde_json::json!({"ApplicationName": "a"}),
    );
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("later"),
        "{body}"
    );
    rt.block_on(create(&server.client(), "later", s3_dest("res", 1, 1)));
    let (status, body) = call(
        "StartApplication",
        serde_json::json!({"ApplicationName": "a"}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = call("ListApplications", serde_json::json!({}));
    assert_eq!(
        body["ApplicationSummaries"][0]["ApplicationStatus"],
        "RUNNING"
    );
    let (status, body) = call(
        "UpdateApplication",
        serde_json::json!({"ApplicationName": "a", "CurrentApplicationVersionId": 7,
            "ApplicationUpdate": {"ApplicationCodeUpdate": APP}}),
    );
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ConcurrentModificationException"))
    );
    let (status, _) = call(
        "UpdateApplication",
        serde_json::json!({"ApplicationName": "a", "CurrentApplicationVersionId": 1,
            "ApplicationUpdate": {"ApplicationCodeUpdate": code.replace("10' SECOND", "20' SECOND")}}),
    );
    assert_eq!(status, 200);
    let (_, body) = call(
        "DescribeApplication",
        serde_json::json!({"ApplicationName": "a"}),
    );
    let detail = &body["ApplicationDetail"];
    assert_eq!(detail["ApplicationVersionId"], 2);
    assert_eq!(detail["ApplicationStatus"], "RUNNING");
    assert!(
        detail["ApplicationCode"]
            .as_str()
            .unwrap()
            .contains("20' SECOND")
    );
    let (status, _) = call(
        "StopApplication",
        serde_json::json!({"ApplicationName": "a"}),
    );
    assert_eq!(status, 200);
    let (_, body) = call(
        "DescribeApplication",
        serde_json::json!({"ApplicationName": "a"}),
    );
    assert_eq!(body["ApplicationDetail"]["ApplicationStatus"], "READY");
    let (status, _) = call(
        "DeleteApplication",
        serde_json::json!({"ApplicationName": "a",
        "CreateTimestamp": body["ApplicationDetail"]["CreateTimestamp"]}),
    );
    assert_eq!(status, 200);
    let (_, body) = call("ListApplications", serde_json::json!({}));
    assert_eq!(body["ApplicationSummaries"], serde_json::json!([]));
    assert!(!server.data_dir.join("analytics/a").exists());
}

/// The two moments a crash leaves results in doubt, made deterministic with the runtime's
/// failpoints: right after the results were checkpointed (none delivered), and after the first
/// of two puts into the output stream (some delivered). After a restart every result is there
/// exactly once.
#[test]
fn results_in_doubt_at_a_crash_are_delivered_exactly_once() {
    for failpoint in ["after-checkpoint", "mid-delivery"] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let rt = runtime();
        let env = format!("LAKEHOSE_ANALYTICS_FAILPOINT={failpoint}");
        let mut server = Server::start_wrapped(&data, None, &["env", &env]);
        start_counts(&server, &rt);
        // 700 users in the first window (700 result rows: two puts of at most 500), then one
        // event that closes it.
        let mut lines: Vec<String> = (0..700).map(|u| event(u, BASE_MS + u as i64)).collect();
        lines.push(event(0, BASE_MS + 60_000));
        // The server aborts at the failpoint once the window fires.
        let _ = rt.block_on(put_lines(&server.client_no_retry(), "clicks", &lines));
        wait_until(Duration::from_secs(30), || !server_alive(&server));
        assert!(
            !server_alive(&server),
            "{failpoint}: the failpoint did not fire"
        );
        server.kill();
        let server = Server::start_in(&data, None);
        let mut got = BTreeMap::new();
        wait_until(Duration::from_secs(30), || {
            got = results(&server);
            got.values().map(Vec::len).sum::<usize>() >= 700
        });
        // Give a duplicate the time to show up.
        std::thread::sleep(Duration::from_millis(1_500));
        got = results(&server);
        assert_eq!(got.len(), 700, "{failpoint}");
        assert!(
            got.values().all(|counts| counts == &vec![1]),
            "{failpoint}: a result was emitted twice or wrong: {:?}",
            got.iter().find(|(_, c)| *c != &vec![1])
        );
    }
}

fn server_alive(server: &Server) -> bool {
    Command::new("kill")
        .args(["-0", &server.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success())
        && !std::fs::read_to_string(format!("/proc/{}/stat", server.pid()))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// StartApplication with `NOW` reads every record acknowledged after it answered, even when
/// the application's thread is slow to start (the `slow-start` failpoint delays it 2 s).
#[test]
fn start_now_reads_what_is_put_right_after_it_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime();
    let server = Server::start_wrapped(
        &data,
        None,
        &["env", "LAKEHOSE_ANALYTICS_FAILPOINT=slow-start"],
    );
    start_counts(&server, &rt);
    // Put while the application's thread is still asleep.
    let lines = vec![
        event(1, BASE_MS),
        event(1, BASE_MS + 1),
        event(2, BASE_MS + 60_000),
    ];
    rt.block_on(put_lines(&server.client(), "clicks", &lines));
    let mut got = BTreeMap::new();
    wait_until(Duration::from_secs(30), || {
        got = results(&server);
        !got.is_empty()
    });
    let start = chrono::DateTime::from_timestamp_millis(BASE_MS)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    assert_eq!(got, BTreeMap::from([(("u1".to_string(), start), vec![2])]));
}
