//! The OpenSearch Service and Elasticsearch destinations against the protocol-level cluster of
//! [`crate::opensearch_server`]: rotated index names and stable document ids, per-document
//! failures and the `*-failed` error folders, whole-request retries without duplicates, the
//! retry duration, `AllDocuments` backups, and the configuration checks of create.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::{
    AmazonopensearchserviceBufferingHints, AmazonopensearchserviceDestinationConfiguration,
    AmazonopensearchserviceIndexRotationPeriod, AmazonopensearchserviceRetryOptions,
    AmazonopensearchserviceS3BackupMode, DefaultDocumentIdFormat, DocumentIdOptions,
    ElasticsearchBufferingHints, ElasticsearchDestinationConfiguration,
    ElasticsearchIndexRotationPeriod, ElasticsearchRetryOptions, ElasticsearchS3BackupMode,
};

use crate::common::*;
use crate::opensearch_server::OpenSearchServer;

const DOMAIN: &str = "arn:aws:es:us-east-1:123456789012:domain/logs";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `[egress]` plus `DOMAIN` mapped to `url`.
fn config_with_domain(url: &str) -> String {
    format!("{EGRESS}[opensearch_domains]\n\"{DOMAIN}\" = \"{url}\"\n")
}

/// Where the cluster is.
enum Target<'a> {
    Endpoint(&'a str),
    Domain,
}

/// An OpenSearch Service destination: `index`, 1 MiB / 0 s buffering, `retry_s` of retries.
fn os_dest(
    target: Target,
    index: &str,
    rotation: Option<AmazonopensearchserviceIndexRotationPeriod>,
    retry_s: i32,
    mode: AmazonopensearchserviceS3BackupMode,
) -> aws_sdk_firehose::types::builders::AmazonopensearchserviceDestinationConfigurationBuilder {
    let b = AmazonopensearchserviceDestinationConfiguration::builder()
        .role_arn(ROLE)
        .index_name(index)
        .set_index_rotation_period(rotation)
        .buffering_hints(
            AmazonopensearchserviceBufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(0)
                .build(),
        )
        .retry_options(
            AmazonopensearchserviceRetryOptions::builder()
                .duration_in_seconds(retry_s)
                .build(),
        )
        .s3_backup_mode(mode)
        .s3_configuration(backup_bucket());
    match target {
        Target::Endpoint(url) => b.cluster_endpoint(url),
        Target::Domain => b.domain_arn(DOMAIN),
    }
}

async fn create_os(
    c: &Client,
    name: &str,
    dest: aws_sdk_firehose::types::builders::AmazonopensearchserviceDestinationConfigurationBuilder,
) {
    c.create_delivery_stream()
        .delivery_stream_name(name)
        .amazonopensearchservice_destination_configuration(dest.build().unwrap())
        .send()
        .await
        .unwrap();
}

/// The document line of a record line (what the cluster stores).
fn doc_of(line: &str) -> serde_json::Value {
    serde_json::from_str(line.trim()).unwrap()
}

/// Asserts a `FIREHOSE_DEFAULT` id: 16 hex of stream, 16 hex of sequence number, `.n`;
/// returns (stream part, sequence number, n).
fn parse_id(id: &str) -> (String, u64, u32) {
    let (hex, sub) = id.split_once('.').unwrap_or_else(|| panic!("id {id}"));
    assert_eq!(hex.len(), 32, "{id}");
    (
        hex[..16].to_string(),
        u64::from_str_radix(&hex[16..], 16).unwrap(),
        sub.parse().unwrap(),
    )
}

#[test]
fn documents_are_indexed_with_rotated_names_and_stable_ids() {
    let cluster = OpenSearchServer::start();
    let server = Server::start_with_config(&config_with_domain(&cluster.url));
    let hourly = lines(40, "a");
    let daily = lines(10, "b");
    let before = chrono::Utc::now();
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os1",
            os_dest(
                Target::Endpoint(&cluster.url),
                "hourly",
                Some(AmazonopensearchserviceIndexRotationPeriod::OneHour),
                60,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        // DomainARN, mapped in lakehose.toml; no rotation given: Firehose's OneDay.
        create_os(
            &c,
            "os2",
            os_dest(
                Target::Domain,
                "daily",
                None,
                60,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("os1")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let o = dest
            .amazonopensearchservice_destination_description
            .as_ref()
            .unwrap();
        assert_eq!(o.cluster_endpoint.as_deref(), Some(cluster.url.as_str()));
        assert_eq!(o.index_name.as_deref(), Some("hourly"));
        assert_eq!(
            o.index_rotation_period,
            Some(AmazonopensearchserviceIndexRotationPeriod::OneHour)
        );
        assert_eq!(
            o.retry_options.as_ref().unwrap().duration_in_seconds,
            Some(60)
        );
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("os2")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let o = dest
            .amazonopensearchservice_destination_description
            .as_ref()
            .unwrap();
        assert_eq!(o.domain_arn.as_deref(), Some(DOMAIN));
        assert_eq!(
            o.index_rotation_period,
            Some(AmazonopensearchserviceIndexRotationPeriod::OneDay)
        );
        put_lines(&c, "os1", &hourly).await;
        put_lines(&c, "os2", &daily).await;
    });
    wait_until(Duration::from_secs(20), || {
        cluster.documents().len() >= hourly.len() + daily.len()
    });
    let after = chrono::Utc::now();
    let docs = cluster.documents();
    assert_eq!(docs.len(), 50);
    let hours: BTreeSet<String> = [before, after]
        .iter()
        .map(|t| format!("hourly-{}", t.format("%Y-%m-%d-%H")))
        .collect();
    let days: BTreeSet<String> = [before, after]
        .iter()
        .map(|t| format!("daily-{}", t.format("%Y-%m-%d")))
        .collect();
    let mut streams = BTreeMap::new();
    for d in &docs {
        assert!(!d.generated_id, "{d:?}");
        assert_eq!(d.version, 1, "indexed once: {d:?}");
        assert!(d.type_name.is_none());
        let (stream, _, sub) = parse_id(&d.id);
        assert_eq!(sub, 0);
        let family = d.index.split('-').next().unwrap().to_string();
        streams
            .entry(family)
            .or_insert_with(BTreeSet::new)
            .insert(stream);
        if d.index.starts_with("hourly-") {
            assert!(hours.contains(&d.index), "{} not in {hours:?}", d.index);
        } else {
            assert!(days.contains(&d.index), "{} not in {days:?}", d.index);
        }
    }
    // One id prefix per stream, different between streams.
    assert_eq!(streams["hourly"].len(), 1);
    assert_eq!(streams["daily"].len(), 1);
    assert_ne!(streams["hourly"], streams["daily"]);
    // Each stream's documents: its records in order, with consecutive sequence numbers.
    for (family, sent) in [("hourly", &hourly), ("daily", &daily)] {
        let mut mine: Vec<(u64, serde_json::Value)> = docs
            .iter()
            .filter(|d| d.index.starts_with(family))
            .map(|d| (parse_id(&d.id).1, d.source.clone()))
            .collect();
        mine.sort_by_key(|(seq, _)| *seq);
        let first = mine[0].0;
        for (i, (seq, source)) in mine.iter().enumerate() {
            assert_eq!(*seq, first + i as u64);
            assert_eq!(*source, doc_of(&sent[i]));
        }
    }
    for r in cluster.requests() {
        assert_eq!(r.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(r.status, 200);
        assert!(r.actions.iter().all(|a| a.op == "index"));
    }
    assert!(failure_docs(&server, "AmazonOpenSearchService-failed").is_empty());
    assert_eq!(
        metric(
            &server.endpoint,
            "DeliveryToAmazonOpenSearchService_Records",
            "os1"
        ),
        40.0
    );
}

#[test]
fn rejected_and_invalid_documents_land_in_the_failed_folder() {
    let cluster = OpenSearchServer::start();
    cluster.reject_documents_containing("poison");
    let server = Server::start_with_config(EGRESS);
    let mut sent = lines(6, "c");
    sent.push("{\"poison\":\"x\"}\n".to_string());
    sent.push("{\"poison\":\"y\"}\n".to_string());
    sent.push("not json\n".to_string());
    sent.push("{\"multi\":\n1}\n".to_string());
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os3",
            os_dest(
                Target::Endpoint(&cluster.url),
                "docs",
                Some(AmazonopensearchserviceIndexRotationPeriod::NoRotation),
                3600,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        put_lines(&c, "os3", &sent).await;
    });
    wait_until(Duration::from_secs(20), || {
        failure_docs(&server, "AmazonOpenSearchService-failed").len() >= 4
    });
    let failed = failure_docs(&server, "AmazonOpenSearchService-failed");
    assert_eq!(failed.len(), 4, "{failed:?}");
    let docs = cluster.documents();
    assert_eq!(docs.len(), 6);
    assert!(docs.iter().all(|d| d.index == "docs"));
    let mut by_raw: BTreeMap<String, serde_json::Value> =
        failed.iter().map(|d| (raw_data(d), d.clone())).collect();
    for poison in ["{\"poison\":\"x\"}\n", "{\"poison\":\"y\"}\n"] {
        let d = by_raw.remove(poison).unwrap();
        assert_eq!(d["errorCode"], "mapper_parsing_exception");
        assert!(
            d["errorMessage"]
                .as_str()
                .unwrap()
                .contains("failed to parse"),
            "{d}"
        );
        // A mapping error is not retried, even with an hour of retries.
        assert_eq!(d["attemptsMade"], 1);
        assert_eq!(d["esIndexName"], "docs");
        assert_eq!(d["esTypeName"], "");
        parse_id(d["esDocumentId"].as_str().unwrap());
        assert!(d["arrivalTimestamp"].as_i64().unwrap() > 0);
        assert!(
            d["attemptEndingTimestamp"].as_i64().unwrap()
                >= d["arrivalTimestamp"].as_i64().unwrap()
        );
    }
    for invalid in ["not json\n", "{\"multi\":\n1}\n"] {
        let d = by_raw.remove(invalid).unwrap();
        assert_eq!(d["errorCode"], "OS.InvalidDocument");
        assert_eq!(d["attemptsMade"], 0);
        assert_eq!(d["esIndexName"], "docs");
    }
    // Invalid records were never sent; rejected ones were sent once.
    let actions = cluster.actions();
    assert_eq!(actions.len(), 8);
    assert!(
        actions
            .iter()
            .all(|a| !a.source.contains("not json") && !a.source.contains("multi"))
    );
    let keys: Vec<String> = objects(&server.bucket("backup"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for key in &keys {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0], "AmazonOpenSearchService-failed", "{key}");
        assert_eq!(parts.len(), 6, "{key}");
    }
}

#[test]
fn failed_requests_are_retried_with_the_same_ids_and_no_duplicates() {
    let cluster = OpenSearchServer::start();
    cluster.fail_next(1, 500);
    cluster.fail_next(1, 429);
    let server = Server::start_with_config(EGRESS);
    let sent = lines(25, "d");
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os4",
            os_dest(
                Target::Endpoint(&cluster.url),
                "retried",
                Some(AmazonopensearchserviceIndexRotationPeriod::NoRotation),
                120,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        put_lines(&c, "os4", &sent).await;
    });
    wait_until(Duration::from_secs(30), || {
        cluster.documents().len() >= sent.len()
    });
    let requests = cluster.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 429, 200]
    );
    // The same documents with the same ids in every attempt.
    let ids = |i: usize| -> Vec<(Option<String>, String)> {
        requests[i]
            .actions
            .iter()
            .map(|a| (a.id.clone(), a.source.clone()))
            .collect()
    };
    assert_eq!(ids(0), ids(1));
    assert_eq!(ids(0), ids(2));
    assert_eq!(ids(0).len(), sent.len());
    let docs = cluster.documents();
    assert_eq!(docs.len(), sent.len());
    assert!(docs.iter().all(|d| d.version == 1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(failure_docs(&server, "AmazonOpenSearchService-failed").is_empty());
}

#[test]
fn lost_answers_overwrite_by_id_but_duplicate_without_ids() {
    let cluster = OpenSearchServer::start();
    cluster.fail_after_storing_next(2);
    let server = Server::start_with_config(EGRESS);
    let with_ids = lines(5, "e");
    let without_ids = lines(5, "f");
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os5",
            os_dest(
                Target::Endpoint(&cluster.url),
                "withids",
                Some(AmazonopensearchserviceIndexRotationPeriod::NoRotation),
                120,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        put_lines(&c, "os5", &with_ids).await;
        wait_until(Duration::from_secs(20), || {
            cluster
                .requests()
                .iter()
                .filter(|r| r.status == 200)
                .count()
                >= 1
        });
        create_os(
            &c,
            "os6",
            os_dest(
                Target::Endpoint(&cluster.url),
                "noids",
                Some(AmazonopensearchserviceIndexRotationPeriod::NoRotation),
                120,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            )
            .document_id_options(
                DocumentIdOptions::builder()
                    .default_document_id_format(DefaultDocumentIdFormat::NoDocumentId)
                    .build()
                    .unwrap(),
            ),
        )
        .await;
        cluster.fail_after_storing_next(1);
        put_lines(&c, "os6", &without_ids).await;
    });
    wait_until(Duration::from_secs(30), || {
        cluster
            .requests()
            .iter()
            .filter(|r| r.status == 200)
            .count()
            >= 2
    });
    let docs = cluster.documents();
    let (ided, generated): (Vec<_>, Vec<_>) = docs.iter().partition(|d| d.index == "withids");
    // Three attempts of the same ids: each document stored once, overwritten twice.
    assert_eq!(ided.len(), with_ids.len());
    assert!(
        ided.iter().all(|d| d.version == 3 && !d.generated_id),
        "{ided:?}"
    );
    // Without ids, the lost answer makes duplicates (as in Firehose).
    assert_eq!(generated.len(), 2 * without_ids.len());
    assert!(
        generated
            .iter()
            .all(|d| d.generated_id && d.index == "noids")
    );
    let mut sources: Vec<String> = generated.iter().map(|d| d.source.to_string()).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), without_ids.len());
    assert!(
        cluster
            .actions()
            .iter()
            .filter(|a| a.index == "noids")
            .all(|a| a.id.is_none())
    );
}

#[test]
fn throttled_documents_are_retried_alone() {
    let cluster = OpenSearchServer::start();
    cluster.throttle_documents(1);
    let server = Server::start_with_config(EGRESS);
    let sent = lines(8, "g");
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os7",
            os_dest(
                Target::Endpoint(&cluster.url),
                "throttled",
                Some(AmazonopensearchserviceIndexRotationPeriod::NoRotation),
                120,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        put_lines(&c, "os7", &sent).await;
    });
    wait_until(Duration::from_secs(30), || {
        cluster.documents().len() >= sent.len()
    });
    let requests = cluster.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].actions.iter().all(|a| a.status == 429));
    assert!(requests[1].actions.iter().all(|a| a.status == 201));
    let first: Vec<_> = requests[0].actions.iter().map(|a| a.id.clone()).collect();
    let second: Vec<_> = requests[1].actions.iter().map(|a| a.id.clone()).collect();
    assert_eq!(first, second);
    assert_eq!(cluster.documents().len(), sent.len());
}

#[test]
fn documents_failing_past_the_retry_duration_land_in_the_failed_folder() {
    let cluster = OpenSearchServer::start();
    cluster.fail_next(10_000, 503);
    let server = Server::start_with_config(EGRESS);
    let sent = lines(5, "h");
    let start = Instant::now();
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os8",
            os_dest(
                Target::Endpoint(&cluster.url),
                "down",
                Some(AmazonopensearchserviceIndexRotationPeriod::OneMonth),
                2,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            ),
        )
        .await;
        put_lines(&c, "os8", &sent).await;
    });
    wait_until(Duration::from_secs(30), || {
        failure_docs(&server, "AmazonOpenSearchService-failed").len() >= sent.len()
    });
    let failed = failure_docs(&server, "AmazonOpenSearchService-failed");
    assert_eq!(failed.len(), sent.len());
    assert!(start.elapsed() >= Duration::from_secs(2));
    let month = format!("down-{}", chrono::Utc::now().format("%Y-%m"));
    let mut raw: Vec<String> = failed.iter().map(raw_data).collect();
    raw.sort();
    assert_eq!(raw, sent);
    for d in &failed {
        assert_eq!(d["errorCode"], "OS.ServerError");
        assert!(d["errorMessage"].as_str().unwrap().contains("503"), "{d}");
        assert!(d["attemptsMade"].as_u64().unwrap() >= 2, "{d}");
        assert_eq!(d["esIndexName"], month.as_str());
    }
    assert!(cluster.documents().is_empty());
    assert!(cluster.requests().len() >= 2);
}

#[test]
fn all_documents_are_backed_up() {
    let cluster = OpenSearchServer::start();
    let server = Server::start_with_config(EGRESS);
    let sent = lines(30, "i");
    rt().block_on(async {
        let c = server.client();
        create_os(
            &c,
            "os9",
            os_dest(
                Target::Endpoint(&cluster.url),
                "backed",
                None,
                60,
                AmazonopensearchserviceS3BackupMode::AllDocuments,
            ),
        )
        .await;
        put_lines(&c, "os9", &sent).await;
    });
    let total: usize = sent.iter().map(|s| s.len()).sum();
    wait_until(Duration::from_secs(20), || {
        cluster.documents().len() >= sent.len() && backup_bytes(&server) >= total
    });
    assert_eq!(cluster.documents().len(), sent.len());
    assert_backed_up(&server, &sent);
}

#[test]
fn elasticsearch_destinations_use_their_own_folder_and_type() {
    let cluster = OpenSearchServer::start();
    cluster.reject_documents_containing("poison");
    let server = Server::start_with_config(EGRESS);
    let mut sent = lines(4, "j");
    sent.push("{\"poison\":1}\n".to_string());
    rt().block_on(async {
        let c = server.client();
        c.create_delivery_stream()
            .delivery_stream_name("es1")
            .elasticsearch_destination_configuration(
                ElasticsearchDestinationConfiguration::builder()
                    .role_arn(ROLE)
                    .cluster_endpoint(&cluster.url)
                    .index_name("legacy")
                    .type_name("_doc")
                    .index_rotation_period(ElasticsearchIndexRotationPeriod::OneWeek)
                    .buffering_hints(
                        ElasticsearchBufferingHints::builder()
                            .size_in_mbs(1)
                            .interval_in_seconds(0)
                            .build(),
                    )
                    .retry_options(
                        ElasticsearchRetryOptions::builder()
                            .duration_in_seconds(60)
                            .build(),
                    )
                    .s3_backup_mode(ElasticsearchS3BackupMode::FailedDocumentsOnly)
                    .s3_configuration(backup_bucket())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("es1")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let e = dest.elasticsearch_destination_description.as_ref().unwrap();
        assert_eq!(e.type_name.as_deref(), Some("_doc"));
        assert!(
            dest.amazonopensearchservice_destination_description
                .is_none()
        );
        put_lines(&c, "es1", &sent).await;
    });
    wait_until(Duration::from_secs(20), || {
        !failure_docs(&server, "elasticsearch-failed").is_empty()
    });
    let week = format!("legacy-{}", chrono::Utc::now().format("%Y-w%U"));
    let docs = cluster.documents();
    assert_eq!(docs.len(), 4);
    for d in &docs {
        assert_eq!(d.type_name.as_deref(), Some("_doc"));
        assert_eq!(d.index, week);
    }
    let failed = failure_docs(&server, "elasticsearch-failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["errorCode"], "mapper_parsing_exception");
    assert_eq!(failed[0]["esTypeName"], "_doc");
    assert_eq!(failed[0]["esIndexName"], week.as_str());
    assert_eq!(raw_data(&failed[0]), "{\"poison\":1}\n");
    assert!(failure_docs(&server, "AmazonOpenSearchService-failed").is_empty());
}

#[test]
fn invalid_configurations_are_refused() {
    let server = Server::start_with_config(&config_with_domain("http://127.0.0.1:9"));
    rt().block_on(async {
        let c = server.client();
        let refused = |dest: aws_sdk_firehose::types::builders::AmazonopensearchserviceDestinationConfigurationBuilder| {
            let c = c.clone();
            async move {
                let err = c
                    .create_delivery_stream()
                    .delivery_stream_name("bad")
                    .amazonopensearchservice_destination_configuration(dest.build().unwrap())
                    .send()
                    .await
                    .unwrap_err();
                (code(&err), format!("{:?}", err.into_service_error()))
            }
        };
        let mode = || AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly;
        let (code, message) = refused(os_dest(Target::Domain, "Bad*Index", None, 60, mode())).await;
        assert_eq!(code, "InvalidArgumentException");
        assert!(message.contains("IndexName"), "{message}");
        let (code, message) = refused(
            os_dest(Target::Domain, "ok", None, 60, mode()).cluster_endpoint("http://127.0.0.1:9"),
        )
        .await;
        assert_eq!(code, "InvalidArgumentException");
        assert!(message.contains("not both"), "{message}");
        let (code, message) = refused(
            os_dest(Target::Domain, "ok", None, 60, mode())
                .domain_arn("arn:aws:es:us-east-1:123456789012:domain/unmapped"),
        )
        .await;
        assert_eq!(code, "InvalidArgumentException");
        assert!(message.contains("opensearch_domains"), "{message}");
        let (code, message) = refused(os_dest(
            Target::Endpoint("http://169.254.169.254/"),
            "ok",
            None,
            60,
            mode(),
        ))
        .await;
        assert_eq!(code, "InvalidArgumentException");
        assert!(message.contains("ClusterEndpoint"), "{message}");
        // The mapped domain is accepted.
        create_os(&c, "good", os_dest(Target::Domain, "ok", None, 60, mode())).await;
        let names = c.list_delivery_streams().send().await.unwrap();
        assert_eq!(names.delivery_stream_names, vec!["good".to_string()]);
    });
}

#[test]
fn records_split_by_a_processor_get_one_id_each() {
    use aws_sdk_firehose::types::{
        ProcessingConfiguration, Processor, ProcessorParameter, ProcessorParameterName,
        ProcessorType,
    };
    let cluster = OpenSearchServer::start();
    let server = Server::start_with_config(EGRESS);
    let sent = vec![
        "{\"k\":1}{\"k\":2}{\"k\":3}".to_string(),
        "{\"k\":4}".to_string(),
    ];
    rt().block_on(async {
        let c = server.client();
        let processing = ProcessingConfiguration::builder()
            .enabled(true)
            .processors(
                Processor::builder()
                    .r#type(ProcessorType::RecordDeAggregation)
                    .parameters(
                        ProcessorParameter::builder()
                            .parameter_name(ProcessorParameterName::SubRecordType)
                            .parameter_value("JSON")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build();
        create_os(
            &c,
            "os10",
            os_dest(
                Target::Endpoint(&cluster.url),
                "split",
                Some(AmazonopensearchserviceIndexRotationPeriod::NoRotation),
                60,
                AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly,
            )
            .processing_configuration(processing),
        )
        .await;
        put_lines(&c, "os10", &sent).await;
    });
    wait_until(Duration::from_secs(20), || cluster.documents().len() >= 4);
    let mut docs: Vec<(u64, u32, i64)> = cluster
        .documents()
        .iter()
        .map(|d| {
            let (_, seq, sub) = parse_id(&d.id);
            (seq, sub, d.source["k"].as_i64().unwrap())
        })
        .collect();
    docs.sort();
    assert_eq!(docs.len(), 4, "{docs:?}");
    let seq = docs[0].0;
    assert_eq!(
        docs,
        vec![(seq, 0, 1), (seq, 1, 2), (seq, 2, 3), (seq + 1, 0, 4)]
    );
}
