//! Engine behaviour the golden files cannot show: bytes scanned (partition and row-group
//! pruning), row limits, statement types, error kinds and positions, one snapshot per
//! statement.

mod common;

use lakehose_catalog::CatalogStore;
use lakehose_query::{Position, QueryEngine, QueryError, QueryOptions};

fn lake_db() -> QueryOptions {
    QueryOptions {
        database: "lake".into(),
        ..QueryOptions::default()
    }
}

#[tokio::test]
async fn partition_pruning_reads_fewer_bytes() {
    let lake = common::lake().await;
    let all = lake
        .engine
        .execute("SELECT sum(amount) FROM events", &lake_db())
        .await
        .unwrap();
    let one = lake
        .engine
        .execute(
            "SELECT sum(amount) FROM events WHERE dt = '2024-01-01' AND hour = 2",
            &lake_db(),
        )
        .await
        .unwrap();
    assert!(one.stats.bytes_scanned > 0, "{:?}", one.stats);
    assert!(
        one.stats.bytes_scanned < all.stats.bytes_scanned,
        "filtered {:?} vs all {:?}",
        one.stats,
        all.stats
    );
    // No partition matches: nothing is read at all.
    let none = lake
        .engine
        .execute("SELECT sum(amount) FROM events WHERE dt = 'x'", &lake_db())
        .await
        .unwrap();
    assert_eq!(none.stats.bytes_scanned, 0);
}

#[tokio::test]
async fn pruned_partitions_are_not_in_the_plan() {
    let lake = common::lake().await;
    let out = lake
        .engine
        .execute(
            "EXPLAIN SELECT id FROM events WHERE dt = '2024-01-02'",
            &lake_db(),
        )
        .await
        .unwrap();
    let text = common::render(&out).join("\n");
    assert!(text.contains("dt=2024-01-02"), "{text}");
    assert!(!text.contains("dt=2024-01-01"), "{text}");
    assert!(
        !text.contains("_SUCCESS") && !text.contains("empty.parquet"),
        "{text}"
    );
}

#[tokio::test]
async fn row_groups_are_pruned_with_statistics() {
    let lake = common::lake().await;
    let all = lake
        .engine
        .execute("SELECT id, name FROM events", &lake_db())
        .await
        .unwrap();
    let one = lake
        .engine
        .execute("SELECT id, name FROM events WHERE id = 1", &lake_db())
        .await
        .unwrap();
    assert_eq!(common::render(&one), vec!["1 | n1"]);
    assert!(
        one.stats.bytes_scanned < all.stats.bytes_scanned,
        "{:?} vs {:?}",
        one.stats,
        all.stats
    );
}

#[tokio::test]
async fn text_files_count_their_size() {
    let lake = common::lake().await;
    let out = lake
        .engine
        .execute("SELECT * FROM csv_t", &lake_db())
        .await
        .unwrap();
    let dir = lake.bucket_dir("lake").join("csv_t");
    let size: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(out.stats.bytes_scanned, size);
    assert_eq!(out.stats.rows, 4);
}

#[tokio::test]
async fn row_limit_truncates() {
    let lake = common::lake().await;
    let options = QueryOptions {
        row_limit: Some(3),
        ..lake_db()
    };
    let out = lake
        .engine
        .execute("SELECT id FROM events", &options)
        .await
        .unwrap();
    assert_eq!(out.stats.rows, 3);
    assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert!(out.truncated);
    let exact = QueryOptions {
        row_limit: Some(8),
        ..lake_db()
    };
    let out = lake
        .engine
        .execute("SELECT id FROM events", &exact)
        .await
        .unwrap();
    assert_eq!(out.stats.rows, 8);
    assert!(!out.truncated);
}

#[test]
fn statement_types() {
    for (sql, want) in [
        ("SELECT 1", "DML"),
        ("  with x as (select 1) select * from x", "DML"),
        ("VALUES (1)", "DML"),
        ("SHOW TABLES", "UTILITY"),
        ("describe t", "UTILITY"),
        ("EXPLAIN SELECT 1", "UTILITY"),
        ("CREATE EXTERNAL TABLE t (a int) LOCATION 's3://b/'", "DDL"),
        ("-- comment\nDROP TABLE t", "DDL"),
        ("ALTER TABLE t ADD PARTITION (a='1')", "DDL"),
        ("MSCK REPAIR TABLE t", "DDL"),
        ("CREATE DATABASE d", "DDL"),
    ] {
        assert_eq!(QueryEngine::statement_type(sql), want, "{sql}");
    }
}

#[tokio::test]
async fn errors_are_user_errors_with_positions() {
    let lake = common::lake().await;
    let err = |sql: &'static str| {
        let engine = lake.engine.clone();
        async move { engine.execute(sql, &lake_db()).await.unwrap_err() }
    };
    let e = err("SELECT * FROM\n  events WHERE").await;
    assert!(
        matches!(&e, QueryError::User { position: Some(_), message } if message.starts_with("Syntax error")),
        "{e:?}"
    );
    let e = err("SELECT id FROM nope").await;
    assert_eq!(
        e,
        QueryError::User {
            message: "Table 'lake.nope' does not exist".into(),
            position: Some(Position {
                line: 1,
                column: 16
            }),
        }
    );
    let e = err("SELECT id,\n       nope FROM events").await;
    match &e {
        QueryError::User { message, position } => {
            assert!(message.contains("nope"), "{message}");
            assert_eq!(*position, Some(Position { line: 2, column: 8 }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.display_with_position(),
        format!(
            "line 2, column 8: {}",
            match &e {
                QueryError::User { message, .. } => message.clone(),
                _ => unreachable!(),
            }
        )
    );
    // Messages never carry Debug dumps or backtraces.
    for sql in [
        "SELECT nested[1].tags FROM all_types",
        "SELECT unknown_function(1)",
        "SELECT CAST('x' AS INT)",
    ] {
        let e = lake.engine.execute(sql, &lake_db()).await.unwrap_err();
        let text = e.to_string();
        assert!(
            !text.contains("Ident {") && !text.contains("backtrace") && !text.contains("Span("),
            "{sql}: {text}"
        );
        assert!(matches!(e, QueryError::User { .. }), "{sql}: {e:?}");
    }
}

#[tokio::test]
async fn a_new_file_is_seen_by_the_next_statement() {
    let lake = common::lake().await;
    let count = |lake: &common::Lake| {
        let engine = lake.engine.clone();
        async move {
            let out = engine
                .execute("SELECT count(*) FROM evolved", &lake_db())
                .await
                .unwrap();
            common::render(&out)[0].clone()
        }
    };
    assert_eq!(count(&lake).await, "3");
    common::write_parquet(
        &lake.bucket_dir("lake").join("evolved/later.parquet"),
        &common::batch(&[("id", common::ints32(&[10, 11]))]),
    );
    assert_eq!(count(&lake).await, "5");
}

#[tokio::test]
async fn excluded_files_are_skipped_only_with_fresh_rows() {
    let lake = common::lake().await;
    let with = lake
        .engine
        .execute("SELECT sum(id) FROM stream_events", &lake_db())
        .await
        .unwrap();
    let without = lake
        .engine
        .execute(
            "SELECT sum(id) FROM stream_events",
            &QueryOptions {
                include_fresh: false,
                ..lake_db()
            },
        )
        .await
        .unwrap();
    // 1..=6 with fresh rows (4 and 5 once, from the snapshot); 1..=5 from the files alone.
    assert_eq!(common::render(&with), vec!["21"]);
    assert_eq!(common::render(&without), vec!["15"]);
    // The excluded file is not read when the snapshot is used.
    assert!(with.stats.bytes_scanned < without.stats.bytes_scanned);
    let plan = lake
        .engine
        .execute("EXPLAIN SELECT * FROM stream_events", &lake_db())
        .await
        .unwrap();
    let text = common::render(&plan).join("\n");
    assert!(!text.contains("b.parquet"), "{text}");
    assert!(text.contains("a.parquet"), "{text}");
    let _ = common::EXCLUDED;
}

#[tokio::test]
async fn objects_written_after_the_snapshot_are_excluded_too() {
    let lake = common::lake().await;
    // The flush of the undelivered dt=2024-01-03 row lands (object and partition).
    common::write_parquet(
        &lake
            .bucket_dir("lake")
            .join("stream_events/dt=2024-01-03/c.parquet"),
        &common::batch(&[
            ("id", common::ints64(&[6])),
            ("name", common::strings(&[None])),
        ]),
    );
    let table = lake
        .catalog
        .get_table("lake", "stream_events")
        .await
        .unwrap();
    lake.catalog
        .create_partitions(
            "lake",
            "stream_events",
            vec![table.partition_for(
                vec!["2024-01-03".into()],
                "s3://lake/stream_events/dt=2024-01-03/",
            )],
        )
        .await
        .unwrap();
    for include_fresh in [true, false] {
        let out = lake
            .engine
            .execute(
                "SELECT count(*), sum(id) FROM stream_events",
                &QueryOptions {
                    include_fresh,
                    ..lake_db()
                },
            )
            .await
            .unwrap();
        // With fresh rows: id 6 from the snapshot, c.parquet skipped; without: from c.parquet.
        assert_eq!(
            common::render(&out),
            vec!["6 | 21"],
            "include_fresh={include_fresh}"
        );
    }
    let _ = common::DELIVERED_LATER;
}

/// ORC stripes whose column statistics rule out every row are neither fetched nor decoded, for
/// filters on integers, strings, timestamps and decimals; the answers are those of the rows.
#[tokio::test]
async fn orc_stripes_are_pruned_with_statistics() {
    use std::sync::Arc;

    use datafusion::arrow::array::{Decimal128Array, TimestampMillisecondArray};

    let lake = common::lake().await;
    let t = common::table(
        "orc_many",
        &[
            ("id", "bigint"),
            ("name", "string"),
            ("ts", "timestamp"),
            ("price", "decimal(10,2)"),
            ("payload", "string"),
        ],
        &[],
        "s3://lake/orc_many/",
        common::serde(common::ORC, &[]),
    );
    lake.catalog.create_table("lake", t).await.unwrap();
    // 20,000 rows in id order (so every column rises with it), in stripes of 1,024 rows; the
    // payload (64 bytes a row that do not compress) is what a scan mostly reads.
    let n = 20_000i64;
    let ids: Vec<i64> = (0..n).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i:05}")).collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let payloads: Vec<String> = ids
        .iter()
        .map(|_| {
            (0..4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{state:016x}")
                })
                .collect()
        })
        .collect();
    let batch = common::batch(&[
        ("id", common::ints64(&ids)),
        (
            "name",
            common::strings(&names.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>()),
        ),
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from(
                ids.iter()
                    .map(|i| 1_700_000_000_000 + i * 1000)
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "price",
            Arc::new(
                Decimal128Array::from(ids.iter().map(|i| i128::from(*i)).collect::<Vec<_>>())
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        (
            "payload",
            common::strings(
                &payloads
                    .iter()
                    .map(|s| Some(s.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]);
    common::write_orc_stripes(
        &lake.bucket_dir("lake").join("orc_many/data.orc"),
        &batch,
        1,
    );
    let run = |sql: &'static str| {
        let lake = &lake;
        async move { lake.engine.execute(sql, &lake_db()).await.unwrap() }
    };
    // Every stripe is read when every stripe may match.
    let all = run("SELECT count(*), min(id), max(payload) > '' FROM orc_many WHERE id >= 0").await;
    assert_eq!(common::render(&all), vec![format!("{n} | 0 | true")]);
    for (sql, want) in [
        (
            "SELECT count(*), min(id), max(payload) > '' FROM orc_many WHERE id BETWEEN 5000 AND 5099",
            "100 | 5000 | true",
        ),
        (
            "SELECT count(*), min(id), max(payload) > '' FROM orc_many WHERE name = 'n12345'",
            "1 | 12345 | true",
        ),
        (
            "SELECT count(*), min(id), max(payload) > '' FROM orc_many \
             WHERE ts >= TIMESTAMP '2023-11-15 00:00:00' AND ts < TIMESTAMP '2023-11-15 00:05:00'",
            "300 | 6400 | true",
        ),
        (
            "SELECT count(*), min(id), max(payload) > '' FROM orc_many WHERE price > 199.90",
            "9 | 19991 | true",
        ),
    ] {
        let out = run(sql).await;
        assert_eq!(common::render(&out), vec![want], "{sql}");
        eprintln!(
            "{sql}: {} of {} bytes",
            out.stats.bytes_scanned, all.stats.bytes_scanned
        );
        assert!(
            out.stats.bytes_scanned * 4 < all.stats.bytes_scanned,
            "{sql}: {} bytes against {} for every stripe",
            out.stats.bytes_scanned,
            all.stats.bytes_scanned
        );
    }
    // Two stripes far apart: those after the last are not fetched, and those between are
    // fetched but skipped (their rows would otherwise count: the filter above the scan sees
    // only rows the reader yields, so a wrong skip would lose rows, not add them).
    let gap = run("SELECT count(*), max(id), max(payload) > '' FROM orc_many \
         WHERE id BETWEEN 100 AND 110 OR id BETWEEN 15000 AND 15010")
    .await;
    assert_eq!(common::render(&gap), vec!["22 | 15010 | true"]);
    assert!(
        gap.stats.bytes_scanned < all.stats.bytes_scanned,
        "{:?}",
        gap.stats
    );
    // No stripe can match: only the file's tail is read.
    let none = run("SELECT count(*) FROM orc_many WHERE id > 1000000").await;
    assert_eq!(common::render(&none), vec!["0"]);
    assert!(
        none.stats.bytes_scanned * 10 < all.stats.bytes_scanned,
        "{:?}",
        none.stats
    );
}
