//! A manual timing run (ignored by default): a partitioned Parquet table in
//! `$LAKEHOSE_PERF_DIR/lake/events/dt=YYYY-MM-DD/*.parquet` (bucket `lake`), queried through
//! the engine and through DataFusion's own listing table, best of three.
//!
//! `LAKEHOSE_PERF_DIR=/path cargo test --release -p lakehose-query --test perf -- --ignored --nocapture`

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lakehose_catalog::{CatalogStore, Column, Database, FileCatalog, SerDeInfo, Table};
use lakehose_query::{QueryEngine, QueryOptions};

const QUERIES: &[&str] = &[
    "SELECT count(*) FROM events",
    "SELECT sum(amount) FROM events",
    "SELECT event, count(*), avg(amount) FROM events GROUP BY event ORDER BY event",
    "SELECT dt, count(DISTINCT user_id) FROM events GROUP BY dt ORDER BY dt",
    "SELECT url, count(*) AS c FROM events GROUP BY url ORDER BY c DESC, url LIMIT 10",
    "SELECT count(*) FROM events WHERE dt = '2024-01-05' AND event = 'buy'",
    "SELECT * FROM events WHERE id = 123456",
    "SELECT user_id, sum(amount) AS s FROM events WHERE amount > 90 GROUP BY user_id ORDER BY s DESC, user_id LIMIT 5",
    "SELECT count(*) FROM events WHERE url LIKE '%page/123?%'",
    "SELECT user_id, count(*) FROM events WHERE event = 'buy' GROUP BY user_id ORDER BY 2 DESC, 1 LIMIT 5",
    "SELECT count(*), sum(amount), max(url) FROM events WHERE amount > 99.5",
];

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn perf() {
    let Ok(root) = std::env::var("LAKEHOSE_PERF_DIR") else {
        eprintln!("LAKEHOSE_PERF_DIR not set");
        return;
    };
    let root = std::path::PathBuf::from(root);
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(FileCatalog::open(&dir.path().join("catalog")).unwrap());
    catalog
        .create_database(Database::new("perf"))
        .await
        .unwrap();
    let mut table = Table::new(
        "events",
        vec![
            Column::new("id", "bigint"),
            Column::new("user_id", "bigint"),
            Column::new("event", "string"),
            Column::new("amount", "double"),
            Column::new("ts", "timestamp"),
            Column::new("url", "string"),
        ],
        vec![Column::new("dt", "string")],
        Some("s3://lake/events/".into()),
    );
    table.storage_descriptor.as_mut().unwrap().serde_info = Some(SerDeInfo {
        serialization_library: Some(common::PARQUET.into()),
        ..SerDeInfo::default()
    });
    catalog.create_table("perf", table.clone()).await.unwrap();
    let mut parts = Vec::new();
    for e in std::fs::read_dir(root.join("lake/events")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if let Some(dt) = name.strip_prefix("dt=") {
            parts.push(table.partition_for(vec![dt.into()], format!("s3://lake/events/{name}/")));
        }
    }
    catalog
        .create_partitions("perf", "events", parts)
        .await
        .unwrap();
    let engine = QueryEngine::new(
        catalog as Arc<dyn CatalogStore>,
        Arc::new(common::LocalBuckets::new(root.clone())),
    );
    let options = QueryOptions {
        database: "perf".into(),
        ..QueryOptions::default()
    };

    let ctx = datafusion::prelude::SessionContext::new();
    let listing = datafusion::prelude::ParquetReadOptions::default().table_partition_cols(vec![(
        "dt".to_string(),
        datafusion::arrow::datatypes::DataType::Utf8,
    )]);
    ctx.register_parquet(
        "events",
        root.join("lake/events").to_string_lossy().as_ref(),
        listing,
    )
    .await
    .unwrap();

    for q in QUERIES {
        let mut best = Duration::MAX;
        let mut best_df = Duration::MAX;
        let mut rows = 0;
        let mut bytes = 0;
        let mut first = String::new();
        for _ in 0..5 {
            let t = Instant::now();
            let out = engine.execute(q, &options).await.unwrap();
            best = best.min(t.elapsed());
            rows = out.stats.rows;
            bytes = out.stats.bytes_scanned;
            first = common::render(&out).first().cloned().unwrap_or_default();
            let t = Instant::now();
            let _ = ctx.sql(q).await.unwrap().collect().await.unwrap();
            best_df = best_df.min(t.elapsed());
        }
        println!(
            "{:>8.1} ms  (datafusion listing {:>8.1} ms)  rows {rows:>4} bytes {bytes:>11}  {q}  => {first}",
            best.as_secs_f64() * 1000.0,
            best_df.as_secs_f64() * 1000.0
        );
    }
}
