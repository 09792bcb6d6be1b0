//! Hostile jq programs run in the sandbox's worker processes: a stack bomb, a memory bomb and
//! an endless loop each fail only the records they ran on (`Lakehose.JqResourceLimit` in
//! `processing-failed/`), the other records of the batch are delivered, and the server keeps
//! serving.

use std::time::Duration;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::{
    DynamicPartitioningConfiguration, ProcessingConfiguration, Processor, ProcessorParameter,
    ProcessorParameterName, ProcessorType,
};

use crate::common::*;

/// A short timeout and a small address space, so the bombs go off quickly.
const CONFIG: &str = "[limits]\njq_timeout_ms = 5000\njq_memory_mib = 512\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn processor(kind: &str, program: &str) -> Processor {
    Processor::builder()
        .r#type(ProcessorType::from(kind))
        .parameters(
            ProcessorParameter::builder()
                .parameter_name(ProcessorParameterName::MetadataExtractionQuery)
                .parameter_value(program)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// A stream whose records go through `Lakehose.Jq` running `program`, delivered at once.
async fn create_jq(c: &Client, name: &str, program: &str) {
    let mut dest = s3_dest("lake", 1, 0);
    dest.prefix = Some(format!("{name}/"));
    dest.error_output_prefix = Some(format!("{name}-errors/!{{firehose:error-output-type}}/"));
    dest.processing_configuration = Some(
        ProcessingConfiguration::builder()
            .enabled(true)
            .processors(processor("Lakehose.Jq", program))
            .processors(
                Processor::builder()
                    .r#type(ProcessorType::AppendDelimiterToRecord)
                    .build()
                    .unwrap(),
            )
            .build(),
    );
    create(c, name, dest).await;
}

/// `(delivered lines, error documents)` of stream `name` in the `lake` bucket.
fn outcome(server: &Server, name: &str) -> (Vec<String>, Vec<serde_json::Value>) {
    let files = objects(&server.bucket("lake"));
    let delivered = files
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}/")))
        .flat_map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let errors = files
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}-errors/processing-failed/")))
        .flat_map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect();
    (delivered, errors)
}

#[test]
fn runaway_programs_fail_their_records_not_the_server() {
    let server = Server::start_with_config(CONFIG);
    rt().block_on(async {
        let c = server.client();
        let cases = [
            // Unbounded recursion: a stack overflow kills the worker.
            ("stack", "if .bomb then (def f: [f]; f) else {v: .v} end"),
            // A string doubled 40 times (a terabyte): the worker hits its address-space limit.
            (
                "memory",
                "if .bomb then reduce range(40) as $i (\"x\"; . + .) else {v: .v} end",
            ),
            // Never ends: the request times out and its worker is killed.
            ("loop", "if .bomb then last(repeat(1)) else {v: .v} end"),
        ];
        for (name, program) in cases {
            create_jq(&c, name, program).await;
            let mut records: Vec<String> = (0..20).map(|i| format!("{{\"v\":{i}}}")).collect();
            records[7] = "{\"v\":7,\"bomb\":true}".into();
            put_lines(&c, name, &records).await;
        }
        for (name, _) in cases {
            let mut result = (Vec::new(), Vec::new());
            wait_until(Duration::from_secs(60), || {
                result = outcome(&server, name);
                result.0.len() + result.1.len() >= 20
            });
            let (delivered, errors) = result;
            if name == "loop" {
                // A timeout fails every record of the request (all 20 ran in one).
                assert_eq!(
                    delivered.len() + errors.len(),
                    20,
                    "{name}: every record accounted for"
                );
                assert!(!errors.is_empty(), "{name}");
            } else {
                // A crash is isolated down to the record that caused it.
                let want: Vec<String> = (0..20)
                    .filter(|i| *i != 7)
                    .map(|i| format!("{{\"v\":{i}}}"))
                    .collect();
                assert_eq!(
                    delivered, want,
                    "{name}: the other records are delivered, in order"
                );
                assert_eq!(errors.len(), 1, "{name}");
                assert_eq!(raw_data(&errors[0]), "{\"v\":7,\"bomb\":true}");
            }
            for e in &errors {
                assert_eq!(e["errorCode"], "Lakehose.JqResourceLimit", "{name}: {e}");
            }
        }
        // The server is still up and a well-behaved stream works.
        assert_eq!(
            curl_status("GET", &format!("{}/health", server.endpoint)),
            200
        );
        create_jq(&c, "fine", "{v: (.v * 2)}").await;
        put_lines(&c, "fine", &["{\"v\":21}".to_string()]).await;
        let mut result = (Vec::new(), Vec::new());
        wait_until(Duration::from_secs(20), || {
            result = outcome(&server, "fine");
            !result.0.is_empty()
        });
        assert_eq!(result.0, vec!["{\"v\":42}".to_string()]);
    });
}

#[test]
fn runaway_partition_queries_fail_their_records() {
    let server = Server::start_with_config(CONFIG);
    rt().block_on(async {
        let c = server.client();
        let mut dest = s3_dest("lake", 1, 0);
        dest.prefix = Some("parts/k=!{partitionKeyFromQuery:k}/".into());
        dest.error_output_prefix = Some("parts-errors/!{firehose:error-output-type}/".into());
        dest.dynamic_partitioning_configuration = Some(
            DynamicPartitioningConfiguration::builder()
                .enabled(true)
                .build(),
        );
        dest.processing_configuration = Some(
            ProcessingConfiguration::builder()
                .enabled(true)
                .processors(processor(
                    "MetadataExtraction",
                    "if .bomb then (def f: [f]; f) else {k: (.v % 2 | tostring)} end",
                ))
                .build(),
        );
        if let Some(p) = dest.processing_configuration.as_mut() {
            p.processors.as_mut().unwrap()[0]
                .parameters
                .as_mut()
                .unwrap()
                .push(
                    ProcessorParameter::builder()
                        .parameter_name(ProcessorParameterName::JsonParsingEngine)
                        .parameter_value("JQ-1.6")
                        .build()
                        .unwrap(),
                );
        }
        create(&c, "parts", dest).await;
        let mut records: Vec<String> = (0..10).map(|i| format!("{{\"v\":{i}}}\n")).collect();
        records[3] = "{\"v\":3,\"bomb\":1}\n".into();
        put_lines(&c, "parts", &records).await;
        let mut files = Vec::new();
        wait_until(Duration::from_secs(60), || {
            files = objects(&server.bucket("lake"));
            files.iter().any(|(k, _)| k.starts_with("parts-errors/"))
                && files
                    .iter()
                    .filter(|(k, _)| k.starts_with("parts/"))
                    .count()
                    >= 2
        });
        let delivered: usize = files
            .iter()
            .filter(|(k, _)| k.starts_with("parts/"))
            .map(|(_, b)| String::from_utf8_lossy(b).lines().count())
            .sum();
        assert_eq!(delivered, 9);
        let errors: Vec<&(String, Vec<u8>)> = files
            .iter()
            .filter(|(k, _)| k.starts_with("parts-errors/processing-failed/"))
            .collect();
        assert_eq!(errors.len(), 1, "{files:?}");
        let doc: serde_json::Value = serde_json::from_str(
            String::from_utf8_lossy(&errors[0].1)
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["errorCode"], "Lakehose.JqResourceLimit");
        assert_eq!(raw_data(&doc), "{\"v\":3,\"bomb\":1}\n");
    });
}
