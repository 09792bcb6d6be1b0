//! The Splunk destination against the HEC of `splunk_server` (the real binary, driven by the
//! official SDK): event and raw requests with the token and a stable channel, indexer
//! acknowledgement, retries of a busy collector, acknowledgements that never come
//! (`Splunk.AckTimeout` documents in `splunk-failed/`, with the acknowledgement timeout capped
//! by `[limits] splunk_ack_timeout_cap_seconds` so the test takes seconds, not 180 s), token
//! and disabled-ack failures, the `AllEvents` backup, validation and Describe.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::{
    HecEndpointType, SplunkBufferingHints, SplunkDestinationConfiguration, SplunkRetryOptions,
    SplunkS3BackupMode,
};

use crate::common::*;
use crate::splunk_server::{Endpoint, Hec};

const TOKEN: &str = "8a3c7e1b-0d1f-4a52-9a55-2f3f0c7d9e10";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A Splunk destination for `hec` with a 0 s buffering interval.
fn splunk_dest(
    url: &str,
    kind: HecEndpointType,
    retry_s: i32,
    mode: SplunkS3BackupMode,
) -> aws_sdk_firehose::types::builders::SplunkDestinationConfigurationBuilder {
    SplunkDestinationConfiguration::builder()
        .hec_endpoint(url)
        .hec_endpoint_type(kind)
        .hec_token(TOKEN)
        .buffering_hints(
            SplunkBufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(0)
                .build(),
        )
        .retry_options(
            SplunkRetryOptions::builder()
                .duration_in_seconds(retry_s)
                .build(),
        )
        .s3_backup_mode(mode)
        .s3_configuration(backup_bucket())
}

async fn create_splunk(
    c: &Client,
    name: &str,
    dest: aws_sdk_firehose::types::builders::SplunkDestinationConfigurationBuilder,
) {
    c.create_delivery_stream()
        .delivery_stream_name(name)
        .splunk_destination_configuration(dest.build().unwrap())
        .send()
        .await
        .unwrap();
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

#[test]
fn events_arrive_in_order_with_the_token_and_channel() {
    let server = Server::start_with_config(EGRESS);
    let hec = Hec::start(TOKEN);
    let mut sent = lines(300, "a");
    // HEC-formatted records pass through as they are.
    sent.push("{\"event\":\"already hec\",\"sourcetype\":\"st\"}\n".into());
    sent.push("plain text\n".into());
    let started = now_s();
    rt().block_on(async {
        let c = server.client();
        create_splunk(
            &c,
            "s1",
            splunk_dest(
                &hec.url,
                HecEndpointType::Event,
                60,
                SplunkS3BackupMode::FailedEventsOnly,
            ),
        )
        .await;
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("s1")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let s = dest.splunk_destination_description.as_ref().unwrap();
        assert_eq!(s.hec_endpoint(), Some(hec.url.as_str()));
        assert_eq!(s.hec_endpoint_type(), Some(&HecEndpointType::Event));
        assert_eq!(s.hec_acknowledgment_timeout_in_seconds(), Some(180));
        assert_eq!(s.retry_options().unwrap().duration_in_seconds(), Some(60));
        assert_eq!(
            s.s3_backup_mode(),
            Some(&SplunkS3BackupMode::FailedEventsOnly)
        );
        assert_eq!(
            s.s3_destination_description().unwrap().bucket_arn(),
            "arn:aws:s3:::backup"
        );
        assert_eq!(s.buffering_hints().unwrap().interval_in_seconds(), Some(0));
        put_lines(&c, "s1", &sent).await;
    });
    wait_until(Duration::from_secs(20), || {
        hec.acknowledged_events().len() >= sent.len()
    });
    let events = hec.acknowledged_events();
    assert_eq!(events.len(), sent.len());
    for (i, e) in events.iter().take(300).enumerate() {
        assert_eq!(e["event"], serde_json::json!({"a": i}), "{e}");
        let t = e["time"].as_f64().unwrap();
        assert!(t >= started - 5.0 && t <= now_s() + 5.0, "{t}");
    }
    assert_eq!(
        events[300],
        serde_json::json!({"event": "already hec", "sourcetype": "st"})
    );
    assert_eq!(events[301]["event"], "plain text");
    let received = hec.received();
    assert!(received.iter().all(|r| r.status == 200 && r.acknowledged));
    let channel = received[0].channel.clone().unwrap();
    assert!(is_guid(&channel), "{channel}");
    for r in &received {
        assert_eq!(r.endpoint, Endpoint::Event);
        assert_eq!(
            r.headers["authorization"],
            format!("Splunk {TOKEN}").as_str()
        );
        assert_eq!(r.headers["x-splunk-request-channel"], channel.as_str());
    }
    assert!(failure_docs(&server, "splunk-failed").is_empty());
    assert_eq!(
        metric(&server.endpoint, "DeliveryToSplunk_Records", "s1"),
        sent.len() as f64
    );
    assert!(
        metric(
            &server.endpoint,
            "DeliveryToSplunk_DataAckLatency_count",
            "s1"
        ) >= 1.0
    );
}

#[test]
fn raw_mode_concatenates_records_on_a_stable_channel() {
    let server = Server::start_with_config(EGRESS);
    let hec = Hec::start(TOKEN);
    let first: Vec<String> = vec!["no newline".into(), "|line\n".into(), "{\"j\":1}".into()];
    let second: Vec<String> = (0..50).map(|i| format!("raw {i}\n")).collect();
    rt().block_on(async {
        let c = server.client();
        create_splunk(
            &c,
            "r1",
            splunk_dest(
                &hec.url,
                HecEndpointType::Raw,
                60,
                SplunkS3BackupMode::FailedEventsOnly,
            ),
        )
        .await;
        put_lines(&c, "r1", &first).await;
    });
    let first_len: usize = first.iter().map(String::len).sum();
    wait_until(Duration::from_secs(20), || {
        hec.acknowledged_raw().len() >= first_len
    });
    rt().block_on(async { put_lines(&server.client(), "r1", &second).await });
    let expected = first.concat() + &second.concat();
    wait_until(Duration::from_secs(20), || {
        hec.acknowledged_raw().len() >= expected.len()
    });
    assert_eq!(String::from_utf8(hec.acknowledged_raw()).unwrap(), expected);
    let received = hec.received();
    assert!(received.len() >= 2, "{} requests", received.len());
    let channel = received[0].query_channel.clone().unwrap();
    assert!(is_guid(&channel), "{channel}");
    for r in &received {
        assert_eq!(r.endpoint, Endpoint::Raw);
        assert_eq!(r.query_channel.as_deref(), Some(channel.as_str()));
        assert_eq!(r.headers["x-splunk-request-channel"], channel.as_str());
        assert_eq!(
            r.headers["authorization"],
            format!("Splunk {TOKEN}").as_str()
        );
    }
    assert!(failure_docs(&server, "splunk-failed").is_empty());
}

#[test]
fn a_busy_collector_gets_everything_once_after_retries() {
    let server = Server::start_with_config(EGRESS);
    let hec = Hec::start(TOKEN);
    hec.fail_next(2);
    let sent = lines(20, "b");
    rt().block_on(async {
        let c = server.client();
        create_splunk(
            &c,
            "s2",
            splunk_dest(
                &hec.url,
                HecEndpointType::Event,
                120,
                SplunkS3BackupMode::FailedEventsOnly,
            ),
        )
        .await;
        put_lines(&c, "s2", &sent).await;
    });
    wait_until(Duration::from_secs(30), || {
        hec.acknowledged_events().len() >= sent.len()
    });
    let received = hec.received();
    assert!(received.len() >= 3, "{} requests", received.len());
    assert_eq!((received[0].status, received[1].status), (503, 503));
    assert_eq!(received[2].status, 200);
    assert_eq!(received[0].body, received[2].body);
    let events: Vec<serde_json::Value> = hec
        .acknowledged_events()
        .into_iter()
        .map(|e| e["event"].clone())
        .collect();
    let expected: Vec<serde_json::Value> = (0..20).map(|i| serde_json::json!({"b": i})).collect();
    assert_eq!(events, expected);
    // Indexed once: nothing was sent again after the acknowledged request.
    assert_eq!(hec.indexed_events().len(), sent.len());
    std::thread::sleep(Duration::from_millis(300));
    assert!(failure_docs(&server, "splunk-failed").is_empty());
}

#[test]
fn acknowledgements_that_never_come_end_in_splunk_failed() {
    let config = format!("{EGRESS}[limits]\nsplunk_ack_timeout_cap_seconds = 1\n");
    let server = Server::start_with_config(&config);
    let hec = Hec::start(TOKEN);
    hec.set_never_ack(true);
    let sent = lines(5, "c");
    rt().block_on(async {
        let c = server.client();
        create_splunk(
            &c,
            "s3",
            splunk_dest(
                &hec.url,
                HecEndpointType::Event,
                2,
                SplunkS3BackupMode::FailedEventsOnly,
            ),
        )
        .await;
        put_lines(&c, "s3", &sent).await;
    });
    wait_until(Duration::from_secs(30), || {
        failure_docs(&server, "splunk-failed").len() >= sent.len()
    });
    let docs = failure_docs(&server, "splunk-failed");
    assert_eq!(docs.len(), sent.len());
    let raw: Vec<String> = docs.iter().map(raw_data).collect();
    assert_eq!(raw, sent);
    let mut ids = std::collections::BTreeSet::new();
    for d in &docs {
        assert_eq!(d["errorCode"], "Splunk.AckTimeout");
        assert!(
            d["errorMessage"]
                .as_str()
                .unwrap()
                .contains("acknowledgement")
        );
        assert!(d["attemptsMade"].as_u64().unwrap() >= 2, "{d}");
        assert!(d["arrivalTimestamp"].as_i64().unwrap() > 0);
        assert!(
            d["attemptEndingTimestamp"].as_i64().unwrap()
                >= d["arrivalTimestamp"].as_i64().unwrap()
        );
        ids.insert(d["EventId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), sent.len(), "EventIds are distinct: {ids:?}");
    // Every attempt sent the same request on the same channel, and was indexed (not acked).
    let received = hec.received();
    assert!(received.len() >= 2);
    assert!(received.iter().all(|r| r.status == 200 && !r.acknowledged));
    assert!(received.iter().all(|r| r.body == received[0].body));
    assert!(hec.polls() >= 2);
    for (key, _) in objects(&server.bucket("backup")) {
        assert!(key.starts_with("splunk-failed/"), "{key}");
        assert_eq!(key.split('/').count(), 6, "{key}");
    }
}

#[test]
fn rejected_tokens_and_disabled_acks_fail_with_their_codes() {
    let server = Server::start_with_config(EGRESS);
    let bad_token = Hec::start(TOKEN);
    bad_token.set_reject_token(true);
    let no_acks = Hec::start(TOKEN);
    no_acks.set_disable_acks(true);
    let hecs: [(&str, &Arc<Hec>); 2] = [("t1", &bad_token), ("t2", &no_acks)];
    rt().block_on(async {
        let c = server.client();
        for (name, hec) in hecs {
            create_splunk(
                &c,
                name,
                splunk_dest(
                    &hec.url,
                    HecEndpointType::Event,
                    0,
                    SplunkS3BackupMode::FailedEventsOnly,
                ),
            )
            .await;
            put_lines(&c, name, &lines(3, name)).await;
        }
    });
    wait_until(Duration::from_secs(30), || {
        failure_docs(&server, "splunk-failed").len() >= 6
    });
    let docs = failure_docs(&server, "splunk-failed");
    assert_eq!(docs.len(), 6);
    for d in &docs {
        let raw = raw_data(d);
        let expected = if raw.contains("t1") {
            "Splunk.InvalidToken"
        } else {
            "Splunk.DisabledAck"
        };
        assert_eq!(d["errorCode"], expected, "{d}");
    }
    assert!(bad_token.received().iter().all(|r| r.status == 403));
    assert!(no_acks.received().iter().all(|r| r.ack_id.is_none()));
}

#[test]
fn all_events_backs_up_everything() {
    let server = Server::start_with_config(EGRESS);
    let hec = Hec::start(TOKEN);
    let sent = lines(40, "e");
    rt().block_on(async {
        let c = server.client();
        create_splunk(
            &c,
            "s4",
            splunk_dest(
                &hec.url,
                HecEndpointType::Event,
                60,
                SplunkS3BackupMode::AllEvents,
            ),
        )
        .await;
        put_lines(&c, "s4", &sent).await;
    });
    let total: usize = sent.iter().map(String::len).sum();
    wait_until(Duration::from_secs(20), || {
        hec.acknowledged_events().len() >= sent.len() && backup_bytes(&server) >= total
    });
    assert_eq!(hec.acknowledged_events().len(), sent.len());
    assert_backed_up(&server, &sent);
}

#[test]
fn invalid_splunk_configurations_are_refused() {
    let server = Server::start_with_config(EGRESS);
    let url = "http://127.0.0.1:9";
    rt().block_on(async {
        let c = server.client();
        let base = || {
            splunk_dest(
                url,
                HecEndpointType::Event,
                60,
                SplunkS3BackupMode::FailedEventsOnly,
            )
        };
        let cases = [
            ("missing HECToken", base().set_hec_token(None)),
            (
                "bad HECEndpointType",
                base().hec_endpoint_type(HecEndpointType::from("Json")),
            ),
            (
                "ack timeout 100",
                base().hec_acknowledgment_timeout_in_seconds(100),
            ),
            (
                "ack timeout 601",
                base().hec_acknowledgment_timeout_in_seconds(601),
            ),
            (
                "private HECEndpoint",
                base().hec_endpoint("https://10.0.0.1:8088"),
            ),
            ("not a URL", base().hec_endpoint("splunk.example.com")),
        ];
        for (what, dest) in cases {
            let err = c
                .create_delivery_stream()
                .delivery_stream_name("bad")
                .splunk_destination_configuration(dest.build().unwrap())
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&err), "InvalidArgumentException", "{what}");
        }
        // The same configuration with a token and a valid timeout is accepted.
        create_splunk(
            &c,
            "good",
            base().hec_acknowledgment_timeout_in_seconds(600),
        )
        .await;
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("good")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let s = dest.splunk_destination_description.as_ref().unwrap();
        assert_eq!(s.hec_acknowledgment_timeout_in_seconds(), Some(600));
    });
}
