//! The Redshift destination against a real PostgreSQL server (`common::postgres`): staged
//! objects, COPY translations (JSON 'auto', CSV with GZIP), every row checked, a failing COPY
//! leaving a manifest under `errors/`, batches never loaded twice (retries, crash replays,
//! concurrent loads), and the API's validation and Describe.

use std::time::{Duration, Instant};

use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, CopyCommand, RedshiftDestinationConfiguration,
    RedshiftRetryOptions, S3DestinationConfiguration,
};

use crate::common::*;

const JDBC: &str = "jdbc:redshift://analytics.abc123.us-east-1.redshift.amazonaws.com:5439/dev";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `lakehose.toml` mapping [`JDBC`] to the test server, without credentials (the stream's
/// `Username`/`Password` sign in).
fn config() -> String {
    let pg = postgres();
    let without_credentials: Vec<&str> = pg
        .split(' ')
        .filter(|kv| !kv.starts_with("user=") && !kv.starts_with("password="))
        .collect();
    format!(
        "[redshift_clusters]\n\"{JDBC}\" = \"{}\"\n",
        without_credentials.join(" ")
    )
}

fn password() -> String {
    postgres()
        .split(' ')
        .find_map(|kv| kv.strip_prefix("password="))
        .unwrap()
        .to_string()
}

fn staging(bucket: &str, gzip: bool) -> S3DestinationConfiguration {
    S3DestinationConfiguration::builder()
        .role_arn(ROLE)
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .prefix("staged/")
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(1)
                .build(),
        )
        .compression_format(if gzip {
            CompressionFormat::Gzip
        } else {
            CompressionFormat::Uncompressed
        })
        .build()
        .unwrap()
}

fn redshift(
    table: &str,
    columns: Option<&str>,
    options: &str,
    s3: S3DestinationConfiguration,
    retry_s: Option<i32>,
) -> RedshiftDestinationConfiguration {
    let mut copy = CopyCommand::builder()
        .data_table_name(table)
        .copy_options(options);
    if let Some(c) = columns {
        copy = copy.data_table_columns(c);
    }
    let mut b = RedshiftDestinationConfiguration::builder()
        .role_arn(ROLE)
        .cluster_jdbcurl(JDBC)
        .copy_command(copy.build().unwrap())
        .username("lakehose")
        .password(password())
        .s3_configuration(s3);
    if let Some(r) = retry_s {
        b = b.retry_options(
            RedshiftRetryOptions::builder()
                .duration_in_seconds(r)
                .build(),
        );
    }
    b.build().unwrap()
}

async fn create_redshift(c: &Client, name: &str, dest: RedshiftDestinationConfiguration) {
    c.create_delivery_stream()
        .delivery_stream_name(name)
        .redshift_destination_configuration(dest)
        .send()
        .await
        .unwrap();
}

/// Polls `sql` (one bigint) until it returns `want` or `timeout` passes; the last value.
async fn wait_for_count(
    pg: &tokio_postgres::Client,
    sql: &str,
    want: i64,
    timeout: Duration,
) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n: i64 = match pg.query_one(sql, &[]).await {
            Ok(row) => row.get(0),
            Err(_) => -1,
        };
        if n == want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn json_auto_loads_every_row_once_and_stages_the_batches() {
    let server = Server::start_with_config(&config());
    rt().block_on(async {
        let pg = postgres_client().await;
        pg.batch_execute(
            "CREATE TABLE json_events (id int, name text, score double precision, tags text, seen boolean)",
        )
        .await
        .unwrap();
        let c = server.client();
        create_redshift(
            &c,
            "rs-json",
            redshift("public.json_events", None, "JSON 'auto'", staging("stage", false), None),
        )
        .await;
        let n = 300;
        let lines: Vec<String> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "id": i, "name": format!("n \"{i}\", x"), "score": i as f64 * 1.5,
                    "tags": ["a", i], "seen": i % 2 == 0, "ignored": "extra keys are ignored",
                })
                .to_string()
            })
            .collect();
        for chunk in lines.chunks(100) {
            put_lines(&c, "rs-json", chunk).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        let count = wait_for_count(&pg, "SELECT count(*) FROM json_events", n, Duration::from_secs(30)).await;
        assert_eq!(count, n, "every record loaded");
        let rows = pg
            .query("SELECT id, name, score, tags, seen FROM json_events ORDER BY id", &[])
            .await
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, i32>(0), i as i32);
            assert_eq!(row.get::<_, String>(1), format!("n \"{i}\", x"));
            assert_eq!(row.get::<_, f64>(2), i as f64 * 1.5);
            assert_eq!(row.get::<_, String>(3), format!("[\"a\",{i}]"));
            assert_eq!(row.get::<_, bool>(4), i % 2 == 0);
        }
        // Each load is recorded once, with its rows, under its staged object's key.
        let loads = pg
            .query("SELECT batch, rows FROM lakehose_loads WHERE stream = 'rs-json'", &[])
            .await
            .unwrap();
        assert!(loads.len() >= 2, "several batches: {}", loads.len());
        let loaded: i64 = loads.iter().map(|r| r.get::<_, i64>(1)).sum();
        assert_eq!(loaded, n);
        let staged = objects(&server.bucket("stage"));
        for load in &loads {
            let key: String = load.get(0);
            assert!(key.starts_with("staged/"), "{key}");
            assert!(staged.iter().any(|(k, _)| *k == key), "{key} is staged");
        }
    });
}

#[test]
fn csv_with_gzip_delimiter_and_column_list() {
    let server = Server::start_with_config(&config());
    rt().block_on(async {
        let pg = postgres_client().await;
        pg.batch_execute(
            "CREATE TABLE csv_people (id int, name text, note text DEFAULT 'default')",
        )
        .await
        .unwrap();
        let c = server.client();
        create_redshift(
            &c,
            "rs-csv",
            redshift(
                "csv_people",
                Some("name,id"),
                "CSV DELIMITER ';' GZIP NULL AS 'NA'",
                staging("stage", true),
                None,
            ),
        )
        .await;
        let lines: Vec<String> = (0..50)
            .map(|i| match i {
                7 => "NA;7\n".to_string(),
                _ => format!("\"person;{i}\";{i}\n"),
            })
            .collect();
        put_lines(&c, "rs-csv", &lines).await;
        let count = wait_for_count(
            &pg,
            "SELECT count(*) FROM csv_people",
            50,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(count, 50);
        let rows = pg
            .query("SELECT id, name, note FROM csv_people ORDER BY id", &[])
            .await
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, i32>(0), i as i32);
            let name: Option<String> = row.get(1);
            if i == 7 {
                assert_eq!(name, None, "NULL AS 'NA'");
            } else {
                assert_eq!(name.as_deref(), Some(format!("person;{i}").as_str()));
            }
            assert_eq!(
                row.get::<_, String>(2),
                "default",
                "columns not listed keep defaults"
            );
        }
        let staged = objects(&server.bucket("stage"));
        assert!(
            staged
                .iter()
                .all(|(k, b)| k.ends_with(".gz") && b.starts_with(&[0x1f, 0x8b]))
        );
    });
}

#[test]
fn a_failing_copy_is_retried_then_leaves_a_manifest() {
    let server = Server::start_with_config(&config());
    rt().block_on(async {
        let pg = postgres_client().await;
        let c = server.client();
        // The table does not exist yet: retried for 2 s, then a manifest.
        create_redshift(
            &c,
            "rs-missing",
            redshift(
                "late_table",
                None,
                "JSON 'auto'",
                staging("stage", false),
                Some(2),
            ),
        )
        .await;
        let started = Instant::now();
        put_lines(
            &c,
            "rs-missing",
            &["{\"id\":1}".to_string(), "{\"id\":2}".to_string()],
        )
        .await;
        let objs = wait_for_objects(&server.bucket("stage"), Duration::from_secs(30), |o| {
            o.iter()
                .any(|(k, _)| k.starts_with("staged/errors/manifests/"))
        });
        let (key, body) = objs
            .iter()
            .find(|(k, _)| k.starts_with("staged/errors/manifests/"))
            .expect("a manifest of the skipped batch");
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "retried for the duration first"
        );
        let manifest: serde_json::Value = serde_json::from_slice(body).unwrap();
        let url = manifest["entries"][0]["url"].as_str().unwrap();
        assert_eq!(manifest["entries"][0]["mandatory"], true);
        let staged_key = url.strip_prefix("s3://stage/").expect(url);
        let staged = objs
            .iter()
            .find(|(k, _)| k == staged_key)
            .expect("the staged object");
        assert_eq!(staged.1, b"{\"id\":1}{\"id\":2}", "{key}");
        assert!(
            metric(
                &server.endpoint,
                "DeliveryToRedshift_ProcessingFailed",
                "rs-missing"
            ) >= 2.0
        );

        // Once the table exists, new batches load; the skipped one is not loaded behind the
        // operator's back.
        pg.batch_execute("CREATE TABLE late_table (id int)")
            .await
            .unwrap();
        put_lines(&c, "rs-missing", &["{\"id\":3}".to_string()]).await;
        let count = wait_for_count(
            &pg,
            "SELECT count(*) FROM late_table",
            1,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(count, 1);
        let ids: Vec<i32> = pg
            .query("SELECT id FROM late_table", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, vec![3]);

        // Malformed data is not retried (the default window is an hour): a manifest at once.
        pg.batch_execute("CREATE TABLE typed (id int)")
            .await
            .unwrap();
        create_redshift(
            &c,
            "rs-baddata",
            redshift("typed", None, "JSON 'auto'", staging("stage2", false), None),
        )
        .await;
        put_lines(&c, "rs-baddata", &["{\"id\":\"not a number\"}".to_string()]).await;
        let objs = wait_for_objects(&server.bucket("stage2"), Duration::from_secs(20), |o| {
            o.iter()
                .any(|(k, _)| k.starts_with("staged/errors/manifests/"))
        });
        assert!(
            objs.iter()
                .any(|(k, _)| k.starts_with("staged/errors/manifests/")),
            "a data error skips the batch without waiting for the retry window: {objs:?}"
        );
        let n: i64 = pg
            .query_one("SELECT count(*) FROM typed", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
    });
}

/// Two streams' first loads into a fresh database race to create the ledger table; the
/// loser's catalog conflict (for example `type "lakehose_loads" already exists`) must not
/// fail its load. Repeated, because the window is a few milliseconds wide.
#[test]
fn first_loads_at_once_both_create_the_ledger_and_load() {
    rt().block_on(async {
        let pg = postgres_client().await;
        pg.batch_execute("CREATE TABLE race (id int)")
            .await
            .unwrap();
        let spec =
            lakehose_sinks::postgres::CopySpec::parse("race", None, Some("JSON 'auto'")).unwrap();
        let body = b"{\"id\":1}\n{\"id\":2}\n";
        let connect = || lakehose_sinks::postgres::connect(postgres(), None, None);
        let mut a = connect().await.unwrap();
        let mut b = connect().await.unwrap();
        for round in 0..40 {
            pg.batch_execute(&format!(
                "DROP TABLE IF EXISTS {}",
                lakehose_sinks::postgres::LOADS_TABLE
            ))
            .await
            .unwrap();
            let (ra, rb) = tokio::join!(
                lakehose_sinks::postgres::load(&mut a, &spec, "a", "batch", body),
                lakehose_sinks::postgres::load(&mut b, &spec, "b", "batch", body),
            );
            for outcome in [ra, rb] {
                assert_eq!(
                    outcome.unwrap_or_else(|e| panic!("round {round}: {e:?}")),
                    lakehose_sinks::postgres::Loaded::Rows(2)
                );
            }
        }
        let n: i64 = pg
            .query_one("SELECT count(*) FROM race", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 40 * 2 * 2);
    });
}

#[test]
fn loads_are_idempotent_across_retries_and_concurrent_attempts() {
    rt().block_on(async {
        let pg = postgres_client().await;
        pg.batch_execute("CREATE TABLE idem (id int)")
            .await
            .unwrap();
        let spec =
            lakehose_sinks::postgres::CopySpec::parse("idem", None, Some("JSON 'auto'")).unwrap();
        let body = b"{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n";
        let connect = || lakehose_sinks::postgres::connect(postgres(), None, None);
        let mut a = connect().await.unwrap();
        let mut b = connect().await.unwrap();
        // Two attempts of one batch at the same time: exactly one loads.
        let (ra, rb) = tokio::join!(
            lakehose_sinks::postgres::load(&mut a, &spec, "s", "batch-1", body),
            lakehose_sinks::postgres::load(&mut b, &spec, "s", "batch-1", body),
        );
        let mut outcomes = vec![ra.unwrap(), rb.unwrap()];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outcomes,
            vec![
                lakehose_sinks::postgres::Loaded::AlreadyLoaded,
                lakehose_sinks::postgres::Loaded::Rows(3)
            ]
        );
        // A retry after success changes nothing; another batch loads.
        assert_eq!(
            lakehose_sinks::postgres::load(&mut a, &spec, "s", "batch-1", body)
                .await
                .unwrap(),
            lakehose_sinks::postgres::Loaded::AlreadyLoaded
        );
        assert_eq!(
            lakehose_sinks::postgres::load(&mut a, &spec, "s", "batch-2", body)
                .await
                .unwrap(),
            lakehose_sinks::postgres::Loaded::Rows(3)
        );
        let n: i64 = pg
            .query_one("SELECT count(*) FROM idem", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 6);
        // A failed COPY leaves no claim behind: the batch loads when retried.
        let bad = b"{\"id\":\"x\"}";
        let e = lakehose_sinks::postgres::load(&mut a, &spec, "s", "batch-3", bad)
            .await
            .unwrap_err();
        assert_eq!(e.code, "Redshift.DataLoadFailed");
        assert!(e.permanent);
        assert_eq!(
            lakehose_sinks::postgres::load(&mut a, &spec, "s", "batch-3", body)
                .await
                .unwrap(),
            lakehose_sinks::postgres::Loaded::Rows(3)
        );
        // A wrong password is an authentication failure.
        let e = lakehose_sinks::postgres::connect(
            &postgres().replace("password=", "password=wrong"),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "Redshift.AuthenticationFailed", "{}", e.message);
    });
}

#[test]
fn kills_during_loading_never_duplicate_or_lose_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let config = config();
    let mut server = Server::start_in(&data_dir, Some(&config));
    rt().block_on(async {
        let pg = postgres_client().await;
        pg.batch_execute("CREATE TABLE crashy (id int)")
            .await
            .unwrap();
        let mut s3 = staging("stage", false);
        s3.buffering_hints = Some(
            BufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(0)
                .build(),
        );
        create_redshift(
            &server.client(),
            "rs-crash",
            redshift("crashy", None, "JSON 'auto'", s3, None),
        )
        .await;
        let n = 1500;
        let mut next = 0;
        for round in 0..5 {
            let c = server.client();
            let upto = (next + n / 5).min(n);
            let lines: Vec<String> = (next..upto).map(|i| format!("{{\"id\":{i}}}")).collect();
            put_lines(&c, "rs-crash", &lines).await;
            next = upto;
            // Kill while loads are in flight (rows appearing), then restart on the same data.
            let before: i64 = pg
                .query_one("SELECT count(*) FROM crashy", &[])
                .await
                .unwrap()
                .get(0);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let now: i64 = pg
                    .query_one("SELECT count(*) FROM crashy", &[])
                    .await
                    .unwrap()
                    .get(0);
                if now > before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if round < 4 {
                server.kill();
                server = Server::start_in(&data_dir, Some(&config));
            }
        }
        let count = wait_for_count(
            &pg,
            "SELECT count(*) FROM crashy",
            n as i64,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(count, n as i64, "every acknowledged record loaded");
        let distinct: i64 = pg
            .query_one("SELECT count(DISTINCT id) FROM crashy", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(distinct, n as i64, "no record loaded twice");
    });
}

#[test]
fn validation_and_describe() {
    let server = Server::start_with_config(&config());
    rt().block_on(async {
        let c = server.client();
        let err = |d: RedshiftDestinationConfiguration| {
            let c = c.clone();
            async move {
                let e = c
                    .create_delivery_stream()
                    .delivery_stream_name("rs-bad")
                    .redshift_destination_configuration(d)
                    .send()
                    .await
                    .unwrap_err();
                (code(&e), format!("{:?}", e.into_service_error()))
            }
        };
        let mut unmapped = redshift("t", None, "JSON 'auto'", staging("b", false), None);
        unmapped.cluster_jdbcurl =
            "jdbc:redshift://other.x.us-east-1.redshift.amazonaws.com:5439/dev".into();
        for (dest, says) in [
            (unmapped, "redshift_clusters"),
            (
                redshift(
                    "t",
                    None,
                    "JSON 's3://b/paths.json'",
                    staging("b", false),
                    None,
                ),
                "JSONPaths",
            ),
            (
                redshift("t", None, "JSON 'auto' GZIP", staging("b", false), None),
                "GZIP",
            ),
            (redshift("t", None, "CSV", staging("b", true), None), "GZIP"),
            (
                redshift("t;drop", None, "CSV", staging("b", false), None),
                "DataTableName",
            ),
            (
                redshift("t", None, "MAXERROR 5", staging("b", false), None),
                "MAXERROR",
            ),
            (
                redshift("t", None, "CSV", staging("b", false), Some(7201)),
                "7200",
            ),
        ] {
            let (code, message) = err(dest).await;
            assert_eq!(code, "InvalidArgumentException", "{message}");
            assert!(message.contains(says), "{says}: {message}");
        }
        let mut short = redshift("t", None, "CSV", staging("b", false), None);
        short.password = Some("12345".into());
        assert_eq!(err(short).await.0, "InvalidArgumentException");

        create_redshift(
            &c,
            "rs-ok",
            redshift("t", Some("a,b"), "CSV", staging("b", false), None),
        )
        .await;
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("rs-ok")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let r = dest
            .redshift_destination_description
            .as_ref()
            .expect("Redshift description");
        assert_eq!(r.cluster_jdbcurl, JDBC);
        assert_eq!(r.username.as_deref(), Some("lakehose"));
        assert_eq!(
            r.copy_command
                .as_ref()
                .unwrap()
                .data_table_columns
                .as_deref(),
            Some("a,b")
        );
        assert_eq!(
            r.retry_options.as_ref().unwrap().duration_in_seconds,
            Some(3600)
        );
        assert_eq!(
            r.s3_destination_description
                .as_ref()
                .unwrap()
                .prefix
                .as_deref(),
            Some("staged/")
        );
        assert!(dest.extended_s3_destination_description.is_none());
    });
}
