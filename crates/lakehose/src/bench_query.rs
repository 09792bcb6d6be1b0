//! `lakehose bench query`: a fixed query set over >= 1 GiB of Parquet written by Lakehose's own
//! converter, timed in Lakehose's query engine (in process) and in DuckDB (its Python package,
//! `bench/query/duckdb_runner.py`, as a subprocess) on the same files with the same thread
//! count, then the freshness latency of a running server (acknowledged record -> visible to a
//! query).
//!
//! - **Data** ([`ensure_dataset`]): deterministic synthetic click events (each row a function
//!   of its `event_id` only) as JSON records, converted by
//!   [`lakehose_formats::convert::Converter`] with Firehose's `ParquetSerDe` defaults into
//!   `DATA/buckets/bench/events/dt=2026-01-0D/part-NNNNN.parquet`, plus a `countries`
//!   dimension table; both registered in the data dir's catalog (database `bench`). A
//!   manifest (`DATA/bench-query.json`, written last) lets later runs reuse the data.
//! - **Queries** ([`QUERIES`]): scan, filter, group-by (low and high cardinality), top-N, join
//!   with the dimension table, partition-pruned. Each engine: one warm-up, `--runs` timed
//!   runs, the median. Both engines' results (row counts and up to [`MAX_COMPARED_ROWS`]
//!   rows, numbers within 1e-6 relative) must agree or the run fails loudly.
//! - **Freshness** ([`freshness`]): this executable as `serve` on a temporary data dir, a
//!   converting stream buffering 128 MiB / 900 s, then per sample one PutRecord and, as soon
//!   as it is acknowledged, `POST /v1/query` until the record is counted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit};
use lakehose_catalog::{
    CatalogError, CatalogStore, Column, Database, FileCatalog, SerDeInfo, Table,
};
use lakehose_formats::convert::{ConversionConfig, ConvertOptions, Converter};
use lakehose_query::{QueryEngine, QueryOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::client::FirehoseClient;

/// The DuckDB side, run with `python3 -c`.
const DUCKDB_RUNNER: &str = include_str!("../../../bench/query/duckdb_runner.py");

/// Options of `lakehose bench query`.
#[derive(clap::Args, Debug)]
pub struct QueryBenchArgs {
    /// GiB of Parquet to generate and query.
    #[arg(long, default_value_t = 1.0)]
    pub gb: f64,
    /// Data dir holding the generated lake (default ~/.cache/lakehose/bench-query); reused
    /// when it already holds the data set of this size.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Timed runs per query (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Freshness samples (0 skips the freshness test).
    #[arg(long, default_value_t = 200)]
    pub fresh_samples: usize,
    /// Run only these queries (names, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub queries: Vec<String>,
    /// The Python interpreter with the `duckdb` package.
    #[arg(long, env = "LAKEHOSE_BENCH_PYTHON", default_value = "python3")]
    pub python: String,
    /// Time Lakehose only.
    #[arg(long)]
    pub no_duckdb: bool,
    /// Regenerate the data even when the data dir holds it.
    #[arg(long)]
    pub regenerate: bool,
}

/// The query set: (name, SQL). The same text runs on both engines (`events` and `countries`
/// are tables of database `bench` in Lakehose, views over the same files in DuckDB). Every
/// query orders its output completely, so rows can be compared one by one.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "scan",
        "SELECT count(*) AS n, sum(duration_ms) AS total_ms, sum(revenue) AS revenue, \
         min(ts) AS first_ts, max(ts) AS last_ts, count(DISTINCT device) AS devices FROM events",
    ),
    (
        "filter",
        "SELECT count(*) AS n, sum(revenue) AS revenue, max(duration_ms) AS max_ms FROM events \
         WHERE country = 'BR' AND device = 'tablet' AND duration_ms > 2000",
    ),
    (
        "filter-rows",
        "SELECT event_id, ts, user_id, page, revenue FROM events \
         WHERE page = '/checkout' AND revenue > 450 AND country = 'JP' ORDER BY event_id",
    ),
    (
        "group-by",
        "SELECT country, device, count(*) AS n, sum(revenue) AS revenue, \
         avg(duration_ms) AS avg_ms FROM events GROUP BY country, device \
         ORDER BY country, device",
    ),
    (
        "group-by-users",
        "SELECT user_id, count(*) AS n, sum(revenue) AS revenue FROM events \
         GROUP BY user_id ORDER BY n DESC, user_id LIMIT 20",
    ),
    (
        "top-n",
        "SELECT event_id, ts, user_id, country, page, revenue FROM events \
         ORDER BY revenue DESC, event_id LIMIT 25",
    ),
    (
        "join",
        "SELECT c.region, count(*) AS n, sum(e.revenue) AS revenue, \
         count(DISTINCT e.country) AS countries FROM events e \
         JOIN countries c ON e.country = c.code GROUP BY c.region ORDER BY c.region",
    ),
    (
        "partition-pruned",
        "SELECT page, count(*) AS n, sum(revenue) AS revenue FROM events \
         WHERE dt = '2026-01-03' GROUP BY page ORDER BY n DESC, page LIMIT 10",
    ),
];

/// Rows of each result compared between the engines.
const MAX_COMPARED_ROWS: usize = 1000;

/// Runs the benchmark.
pub async fn run(args: QueryBenchArgs) -> anyhow::Result<()> {
    if args.gb.is_nan() || args.gb <= 0.0 {
        bail!("--gb must be positive");
    }
    let runs = args.runs.max(1);
    let data = match &args.data {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queries: Vec<(&str, &str)> = QUERIES
        .iter()
        .copied()
        .filter(|(name, _)| args.queries.is_empty() || args.queries.iter().any(|q| q == name))
        .collect();
    if queries.is_empty() {
        let names: Vec<&str> = QUERIES.iter().map(|(n, _)| *n).collect();
        bail!("no such query; the queries are: {}", names.join(", "));
    }

    let catalog = Arc::new(
        FileCatalog::open_in_data_dir(&data)
            .with_context(|| format!("opening the catalog in {}", data.display()))?,
    );
    let manifest = ensure_dataset(&data, catalog.as_ref(), args.gb, args.regenerate).await?;
    let days = {
        let mut d: Vec<&str> = manifest.files.iter().map(|f| f.dt.as_str()).collect();
        d.sort();
        d.dedup();
        d.len()
    };
    println!(
        "lakehose bench query: {:.2} GiB of Parquet ({} files, {} rows, {} partitions) in {}",
        manifest.total_bytes as f64 / GIB,
        manifest.files.len(),
        manifest.total_rows,
        days,
        data.display()
    );
    println!(
        "machine: {cores} cores; both engines use {cores} threads; {runs} timed runs per query \
         (median) after 1 warm-up"
    );

    // Lakehose, in process.
    let buckets = lakehose_sinks::Buckets::new(data.join("buckets"), Default::default());
    let engine = QueryEngine::new(
        catalog.clone(),
        Arc::new(crate::lake::LakeBuckets(Arc::new(buckets))),
    );
    let mut lakehose = Vec::new();
    for (name, sql) in &queries {
        eprintln!("lakehose: {name}");
        lakehose.push(run_lakehose(&engine, sql, runs).await);
    }

    // DuckDB, same files, same threads.
    let duckdb = if args.no_duckdb {
        None
    } else {
        Some(run_duckdb(&args.python, &data, &queries, runs, cores).await?)
    };

    // The table.
    println!();
    println!(
        "{:<17} {:>12} {:>12} {:>8} {:>7} {:>13}  check",
        "query", "lakehose ms", "duckdb ms", "ratio", "rows", "scanned MiB"
    );
    let mut ratios = Vec::new();
    let mut problems = Vec::new();
    for (i, (name, _)) in queries.iter().enumerate() {
        let l = &lakehose[i];
        let d = duckdb.as_ref().map(|d| &d.queries[i]);
        let check = match (&l.error, d) {
            (Some(e), _) => {
                problems.push(format!("{name}: Lakehose failed: {e}"));
                "LAKEHOSE ERROR".to_string()
            }
            (None, None) => "-".to_string(),
            (None, Some(d)) => match &d.error {
                Some(e) => {
                    problems.push(format!("{name}: DuckDB failed: {e}"));
                    "DUCKDB ERROR".to_string()
                }
                None => match compare_results(l.rows, &l.first_rows, d.rows, &d.first_rows) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => {
                        problems.push(format!("{name}: RESULTS DIFFER: {e}"));
                        "MISMATCH".to_string()
                    }
                },
            },
        };
        let d_ms = d.filter(|d| d.error.is_none()).map(|d| d.median_ms);
        let ratio = match (l.error.is_none(), d_ms) {
            (true, Some(d_ms)) if d_ms > 0.0 => Some(l.median_ms / d_ms),
            _ => None,
        };
        if let Some(r) = ratio {
            ratios.push(r);
        }
        println!(
            "{:<17} {:>12} {:>12} {:>8} {:>7} {:>13.1}  {}",
            name,
            if l.error.is_none() {
                format!("{:.1}", l.median_ms)
            } else {
                "-".into()
            },
            d_ms.map_or("-".into(), |v| format!("{v:.1}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
            l.rows,
            l.bytes_scanned as f64 / MIB,
            check
        );
    }
    if let Some(d) = &duckdb {
        println!("(DuckDB {} with threads = {})", d.version, d.threads);
    }
    if !ratios.is_empty() {
        let g = geometric_mean(&ratios);
        println!(
            "geometric mean ratio lakehose/duckdb over {} queries: {:.2} (goal <= 1.5: {})",
            ratios.len(),
            g,
            if g <= 1.5 { "met" } else { "NOT MET" }
        );
    }
    for p in &problems {
        println!("!!! {p}");
    }

    if args.fresh_samples > 0 {
        println!();
        let report = freshness(args.fresh_samples).await?;
        report.print();
        if report.violations > 0 {
            problems.push(format!(
                "freshness: {} acknowledged records were not visible to the first query after \
                 their acknowledgement",
                report.violations
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{} problem(s), see above", problems.len());
    }
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data")?;
    Ok(PathBuf::from(home).join(".cache/lakehose/bench-query"))
}

/// The geometric mean of positive numbers.
pub fn geometric_mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

// ---- the data set -------------------------------------------------------------------------------

/// Bump when the generator or the layout changes: older data sets are then regenerated.
const DATA_VERSION: u32 = 1;
/// Partitions (days) of the events table.
const DAYS: u64 = 8;
/// Target size of one Parquet file.
const FILE_BYTES: f64 = 96.0 * MIB;
const SEED: u64 = 0x1a4e_4053_b0a7_c0de;
const MANIFEST: &str = "bench-query.json";

/// What was generated (written after everything else, so its presence means a complete set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u32,
    pub gb: f64,
    pub rows_per_file: u64,
    pub total_rows: u64,
    pub total_bytes: u64,
    pub files: Vec<ManifestFile>,
}

/// One events file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    /// The key in bucket `bench`.
    pub key: String,
    pub dt: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The events table's data columns (Hive types); partition key `dt string`.
const EVENT_COLUMNS: &[(&str, &str)] = &[
    ("event_id", "bigint"),
    ("ts", "timestamp"),
    ("user_id", "bigint"),
    ("country", "string"),
    ("device", "string"),
    ("page", "string"),
    ("duration_ms", "int"),
    ("revenue", "double"),
];

/// Country codes (in popularity order: the events' country is Zipf-distributed over the first
/// [`EVENT_COUNTRIES`]), names and regions. The last two never occur in events.
const COUNTRIES: &[(&str, &str, &str)] = &[
    ("US", "United States", "NA"),
    ("IN", "India", "APAC"),
    ("DE", "Germany", "EMEA"),
    ("GB", "United Kingdom", "EMEA"),
    ("BR", "Brazil", "LATAM"),
    ("FR", "France", "EMEA"),
    ("JP", "Japan", "APAC"),
    ("CA", "Canada", "NA"),
    ("CN", "China", "APAC"),
    ("IT", "Italy", "EMEA"),
    ("ES", "Spain", "EMEA"),
    ("MX", "Mexico", "LATAM"),
    ("KR", "South Korea", "APAC"),
    ("AU", "Australia", "APAC"),
    ("NL", "Netherlands", "EMEA"),
    ("ID", "Indonesia", "APAC"),
    ("TR", "Turkey", "EMEA"),
    ("SA", "Saudi Arabia", "EMEA"),
    ("CH", "Switzerland", "EMEA"),
    ("PL", "Poland", "EMEA"),
    ("SE", "Sweden", "EMEA"),
    ("BE", "Belgium", "EMEA"),
    ("AR", "Argentina", "LATAM"),
    ("NO", "Norway", "EMEA"),
    ("AT", "Austria", "EMEA"),
    ("IE", "Ireland", "EMEA"),
    ("IL", "Israel", "EMEA"),
    ("SG", "Singapore", "APAC"),
    ("DK", "Denmark", "EMEA"),
    ("ZA", "South Africa", "EMEA"),
    ("CO", "Colombia", "LATAM"),
    ("FI", "Finland", "EMEA"),
    ("CL", "Chile", "LATAM"),
    ("PT", "Portugal", "EMEA"),
    ("NZ", "New Zealand", "APAC"),
    ("VN", "Vietnam", "APAC"),
    ("PH", "Philippines", "APAC"),
    ("EG", "Egypt", "EMEA"),
    ("NG", "Nigeria", "EMEA"),
    ("MY", "Malaysia", "APAC"),
    ("IS", "Iceland", "EMEA"),
    ("LU", "Luxembourg", "EMEA"),
];
const EVENT_COUNTRIES: usize = 40;
const PAGES: usize = 200;
const USERS: f64 = 1_000_000.0;

/// SplitMix64: small, fast, and good enough for synthetic data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative Zipf weights over `n` items with exponent `s`, normalised to 1.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (0..n).map(|k| 1.0 / ((k + 1) as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|c| *c <= u).min(cdf.len() - 1)
}

/// Generates event records; each row depends only on its file, its index in the file and
/// the rows per file.
#[derive(Debug)]
pub struct EventGen {
    rows_per_file: u64,
    countries: Vec<f64>,
    pages_cdf: Vec<f64>,
    pages: Vec<String>,
}

impl EventGen {
    pub fn new(rows_per_file: u64) -> Self {
        let mut pages: Vec<String> = [
            "/",
            "/search",
            "/cart",
            "/checkout",
            "/login",
            "/account",
            "/orders",
            "/help",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for c in [
            "shoes", "shirts", "jackets", "bags", "watches", "phones", "laptops", "tablets",
            "books", "games", "garden", "kitchen", "toys", "sports", "beauty", "music",
        ] {
            pages.push(format!("/category/{c}"));
        }
        let mut k = 0;
        while pages.len() < PAGES {
            pages.push(format!("/product/{k:04}"));
            k += 1;
        }
        EventGen {
            rows_per_file: rows_per_file.max(1),
            countries: zipf_cdf(EVENT_COUNTRIES, 1.1),
            pages_cdf: zipf_cdf(PAGES, 0.9),
            pages,
        }
    }

    /// The partition (`dt` value) of file `file`.
    pub fn day_of(file: u64) -> String {
        format!("2026-01-{:02}", file % DAYS + 1)
    }

    /// Appends the JSON record of row `i` of file `file` to `out` (one line).
    pub fn record(&self, file: u64, i: u64, out: &mut Vec<u8>) {
        use std::io::Write;
        let event_id = file * self.rows_per_file + i;
        let mut rng = Rng(SEED ^ event_id.wrapping_mul(0xD1B5_4A32_D192_ED03));
        // Files of a day cover 3-hour slots; rows are in time order within a file.
        let day = file % DAYS + 1;
        let slot = (file / DAYS) % 8;
        const SLOT_MS: u64 = 3 * 3600 * 1000;
        let ms_of_day = slot * SLOT_MS + i * SLOT_MS / self.rows_per_file + rng.next_u64() % 7;
        let (h, m, s, ms) = (
            ms_of_day / 3_600_000,
            ms_of_day / 60_000 % 60,
            ms_of_day / 1000 % 60,
            ms_of_day % 1000,
        );
        let user_id = 1 + (USERS * rng.unit().powi(3)) as u64;
        let country = COUNTRIES[pick(&self.countries, rng.unit())].0;
        let d = rng.unit();
        let device = if d < 0.55 {
            "mobile"
        } else if d < 0.90 {
            "desktop"
        } else if d < 0.98 {
            "tablet"
        } else {
            "tv"
        };
        let page = &self.pages[pick(&self.pages_cdf, rng.unit())];
        let duration_ms = (50.0 - (1.0 - rng.unit()).ln() * 4000.0).min(600_000.0) as u64;
        let revenue_cents = if rng.unit() < 0.04 {
            500 + rng.next_u64() % 49_500
        } else {
            0
        };
        let _ = writeln!(
            out,
            "{{\"event_id\":{event_id},\"ts\":\"2026-01-{day:02} {h:02}:{m:02}:{s:02}.{ms:03}\",\
             \"user_id\":{user_id},\"country\":\"{country}\",\"device\":\"{device}\",\
             \"page\":\"{page}\",\"duration_ms\":{duration_ms},\"revenue\":{}.{:02}}}",
            revenue_cents / 100,
            revenue_cents % 100
        );
    }
}

/// A Parquet table with Glue's Parquet formats and SerDe.
fn parquet_table(name: &str, columns: &[(&str, &str)], partitioned: bool, location: &str) -> Table {
    let columns = columns.iter().map(|(n, t)| Column::new(*n, *t)).collect();
    let keys = if partitioned {
        vec![Column::new("dt", "string")]
    } else {
        Vec::new()
    };
    let mut table = Table::new(name, columns, keys, Some(location.to_string()));
    if let Some(sd) = table.storage_descriptor.as_mut() {
        sd.input_format =
            Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into());
        sd.output_format =
            Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat".into());
        sd.serde_info = Some(SerDeInfo {
            serialization_library: Some(
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into(),
            ),
            parameters: [("serialization.format".to_string(), "1".to_string())].into(),
            ..SerDeInfo::default()
        });
    }
    table
        .parameters
        .insert("classification".into(), "parquet".into());
    table
}

/// Firehose's conversion configuration for `table`: OpenX JSON in, `ParquetSerDe` with its
/// defaults out (SNAPPY, 256 MiB blocks, 1 MiB pages, dictionaries on).
fn conversion_config(table: &str) -> anyhow::Result<ConversionConfig> {
    Ok(ConversionConfig::from_json(&json!({
        "SchemaConfiguration": {"DatabaseName": "bench", "TableName": table},
        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}
    }))?)
}

/// Converts rows `0..rows` of `file` into one Parquet file.
fn convert_file(
    generator: &EventGen,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    config: &ConversionConfig,
    file: u64,
    rows: u64,
) -> anyhow::Result<Vec<u8>> {
    const CHUNK: u64 = 50_000;
    let mut converter = Converter::new(schema, config, &ConvertOptions { threads: 1 })?;
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    let mut start = 0;
    while start < rows {
        let end = (start + CHUNK).min(rows);
        buf.clear();
        ends.clear();
        for i in start..end {
            generator.record(file, i, &mut buf);
            ends.push(buf.len());
        }
        let mut records: Vec<&[u8]> = Vec::with_capacity(ends.len());
        let mut from = 0;
        for &to in &ends {
            records.push(&buf[from..to]);
            from = to;
        }
        converter.push(&records)?;
        start = end;
    }
    let out = converter.finish()?;
    if let Some(f) = out.failed.first() {
        bail!(
            "{} generated records failed to convert, e.g. #{}: {} {}",
            out.failed.len(),
            f.index,
            f.error_code,
            f.error_message
        );
    }
    if out.rows as u64 != rows {
        bail!("converted {} rows of {rows}", out.rows);
    }
    Ok(out.file)
}

fn events_schema() -> anyhow::Result<datafusion::arrow::datatypes::SchemaRef> {
    let table = parquet_table("events", EVENT_COLUMNS, true, "s3://bench/events/");
    Ok(Arc::new(table.arrow_schema()?))
}

/// Writes `bytes` to `path` atomically (temporary name, then rename).
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Generates files `first..first+count` in parallel (one per core at a time).
fn generate_files(
    bucket_dir: &Path,
    rows_per_file: u64,
    first: u64,
    count: u64,
) -> anyhow::Result<Vec<ManifestFile>> {
    let generator = EventGen::new(rows_per_file);
    let schema = events_schema()?;
    let config = conversion_config("events")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<anyhow::Result<Vec<(u64, ManifestFile)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores.min(count as usize).max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed) as u64;
                        if k >= count {
                            return Ok(done);
                        }
                        let file = first + k;
                        let dt = EventGen::day_of(file);
                        let key = format!("events/dt={dt}/part-{file:05}.parquet");
                        let bytes =
                            convert_file(&generator, &schema, &config, file, rows_per_file)?;
                        write_file(&bucket_dir.join(&key), &bytes)?;
                        eprintln!(
                            "generated {key}: {rows_per_file} rows, {:.1} MiB ({:.0} s)",
                            bytes.len() as f64 / MIB,
                            started.elapsed().as_secs_f64()
                        );
                        done.push((
                            file,
                            ManifestFile {
                                key,
                                dt,
                                rows: rows_per_file,
                                bytes: bytes.len() as u64,
                            },
                        ));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a generator panicked")))
            })
            .collect()
    });
    let mut files = Vec::new();
    for r in results {
        files.extend(r?);
    }
    files.sort_by_key(|(i, _)| *i);
    Ok(files.into_iter().map(|(_, f)| f).collect())
}

/// Plans the data set of `gb` GiB: (rows per file, files). The bytes per row are measured on
/// a sample, then again on one file of the planned size (small samples compress worse).
fn plan_dataset(gb: f64) -> anyhow::Result<(u64, u64)> {
    let schema = events_schema()?;
    let config = conversion_config("events")?;
    let target = gb * GIB;
    let files = ((target / FILE_BYTES).ceil() as u64)
        .max(DAYS)
        .div_ceil(DAYS)
        * DAYS;
    let per_file = target * 1.03 / files as f64;
    let mut rows = 200_000u64;
    for _ in 0..2 {
        let sample = convert_file(&EventGen::new(rows), &schema, &config, 0, rows)?;
        let bytes_per_row = sample.len() as f64 / rows as f64;
        rows = ((per_file / bytes_per_row).ceil() as u64).max(1000);
    }
    Ok((rows, files))
}

/// Makes sure `data` holds the data set of `gb` GiB and the catalog knows it; returns its
/// manifest.
async fn ensure_dataset(
    data: &Path,
    catalog: &dyn CatalogStore,
    gb: f64,
    regenerate: bool,
) -> anyhow::Result<Manifest> {
    let manifest_path = data.join(MANIFEST);
    let bucket_dir = data.join("buckets").join("bench");
    if !regenerate
        && let Some(m) = read_manifest(&manifest_path)
        && m.version == DATA_VERSION
        && (m.gb - gb).abs() < 1e-9
        && m.files
            .iter()
            .all(|f| std::fs::metadata(bucket_dir.join(&f.key)).is_ok_and(|md| md.len() == f.bytes))
        && catalog.get_table("bench", "events").await.is_ok()
        && catalog.get_table("bench", "countries").await.is_ok()
    {
        eprintln!("reusing the data set in {}", data.display());
        return Ok(m);
    }

    eprintln!("generating {gb} GiB of Parquet in {} ...", data.display());
    let _ = std::fs::remove_file(&manifest_path);
    if bucket_dir.exists() {
        std::fs::remove_dir_all(&bucket_dir)
            .with_context(|| format!("removing {}", bucket_dir.display()))?;
    }
    match catalog.delete_database("bench").await {
        Ok(()) | Err(CatalogError::EntityNotFound(_)) => {}
        Err(e) => return Err(e).context("removing the old bench database"),
    }

    let started = Instant::now();
    let dir = bucket_dir.clone();
    let manifest = tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
        let (rows_per_file, count) = plan_dataset(gb)?;
        eprintln!("{count} files of {rows_per_file} rows planned");
        let mut files = generate_files(&dir, rows_per_file, 0, count)?;
        // The sample's estimate may be a little short: add files until the size is reached.
        while (files.iter().map(|f| f.bytes).sum::<u64>() as f64) < gb * GIB {
            let more = generate_files(&dir, rows_per_file, files.len() as u64, 1)?;
            files.extend(more);
        }
        // The dimension table: one small file.
        let countries = parquet_table(
            "countries",
            &[("code", "string"), ("name", "string"), ("region", "string")],
            false,
            "s3://bench/countries/",
        );
        let records: Vec<Vec<u8>> = COUNTRIES
            .iter()
            .map(|(code, name, region)| {
                serde_json::to_vec(&json!({"code": code, "name": name, "region": region}))
                    .unwrap_or_default()
            })
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let converted = lakehose_formats::convert::convert(
            &refs,
            &Arc::new(countries.arrow_schema()?),
            &conversion_config("countries")?,
        )?;
        write_file(&dir.join("countries/part-00000.parquet"), &converted.file)?;
        Ok(Manifest {
            version: DATA_VERSION,
            gb,
            rows_per_file,
            total_rows: files.iter().map(|f| f.rows).sum(),
            total_bytes: files.iter().map(|f| f.bytes).sum(),
            files,
        })
    })
    .await??;

    // The catalog: database, tables, partitions.
    catalog
        .create_database(Database::new("bench"))
        .await
        .context("creating database bench")?;
    let events = parquet_table("events", EVENT_COLUMNS, true, "s3://bench/events/");
    catalog.create_table("bench", events.clone()).await?;
    catalog
        .create_table(
            "bench",
            parquet_table(
                "countries",
                &[("code", "string"), ("name", "string"), ("region", "string")],
                false,
                "s3://bench/countries/",
            ),
        )
        .await?;
    let mut days: Vec<&str> = manifest.files.iter().map(|f| f.dt.as_str()).collect();
    days.sort();
    days.dedup();
    let partitions = days
        .iter()
        .map(|dt| events.partition_for(vec![dt.to_string()], format!("s3://bench/events/dt={dt}/")))
        .collect();
    let errors = catalog
        .create_partitions("bench", "events", partitions)
        .await?;
    if let Some((values, e)) = errors.first() {
        bail!("registering partition {values:?}: {e}");
    }
    let json = serde_json::to_vec_pretty(&manifest)?;
    write_file(&manifest_path, &json)?;
    eprintln!(
        "generated {:.2} GiB in {:.0} s",
        manifest.total_bytes as f64 / GIB,
        started.elapsed().as_secs_f64()
    );
    Ok(manifest)
}

fn read_manifest(path: &Path) -> Option<Manifest> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

// ---- running the queries ------------------------------------------------------------------------

/// One engine's figures for one query.
#[derive(Debug, Default)]
struct Measured {
    median_ms: f64,
    rows: u64,
    first_rows: Vec<Vec<Value>>,
    bytes_scanned: u64,
    error: Option<String>,
}

async fn run_lakehose(engine: &QueryEngine, sql: &str, runs: usize) -> Measured {
    let options = QueryOptions {
        database: "bench".into(),
        include_fresh: false,
        row_limit: None,
    };
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for run in 0..=runs {
        let started = Instant::now();
        match engine.execute(sql, &options).await {
            Ok(out) => {
                if run > 0 {
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                last = Some(out);
            }
            Err(e) => {
                return Measured {
                    error: Some(e.display_with_position()),
                    ..Measured::default()
                };
            }
        }
    }
    let Some(out) = last else {
        return Measured::default();
    };
    Measured {
        median_ms: median(&times),
        rows: out.stats.rows,
        first_rows: match json_rows(&out.batches, MAX_COMPARED_ROWS) {
            Ok(r) => r,
            Err(e) => {
                return Measured {
                    error: Some(format!("reading the result: {e}")),
                    ..Measured::default()
                };
            }
        },
        bytes_scanned: out.stats.bytes_scanned,
        error: None,
    }
}

/// The DuckDB runner's answer.
#[derive(Debug, Deserialize)]
struct DuckDbReport {
    version: String,
    threads: Value,
    queries: Vec<DuckDbQuery>,
}

#[derive(Debug, Deserialize)]
struct DuckDbQuery {
    #[serde(default)]
    median_ms: f64,
    #[serde(default)]
    rows: u64,
    #[serde(default)]
    first_rows: Vec<Vec<Value>>,
    #[serde(default)]
    error: Option<String>,
}

async fn run_duckdb(
    python: &str,
    data: &Path,
    queries: &[(&str, &str)],
    runs: usize,
    threads: usize,
) -> anyhow::Result<DuckDbReport> {
    use tokio::io::AsyncWriteExt;
    let spec = json!({
        "root": data.to_string_lossy(),
        "threads": threads,
        "warmup": 1,
        "runs": runs,
        "max_rows": MAX_COMPARED_ROWS,
        "queries": queries.iter().map(|(n, s)| json!({"name": n, "sql": s})).collect::<Vec<_>>(),
    });
    let mut child = tokio::process::Command::new(python)
        .arg("-c")
        .arg(DUCKDB_RUNNER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {python} (install DuckDB: pip install duckdb)"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(&serde_json::to_vec(&spec)?).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "the DuckDB runner failed ({}); is the duckdb package installed (pip install duckdb)?",
            out.status
        );
    }
    // The answer is the last line (anything printed before it is ignored).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.trim_end().rsplit('\n').next().unwrap_or_default();
    let report: DuckDbReport = serde_json::from_str(last).with_context(|| {
        let tail: String = last.chars().take(300).collect();
        format!("parsing the DuckDB runner's output: {tail}")
    })?;
    if report.queries.len() != queries.len() {
        bail!(
            "the DuckDB runner answered {} queries of {}",
            report.queries.len(),
            queries.len()
        );
    }
    Ok(report)
}

/// Up to `max` rows of `batches` as JSON values, normalised as the DuckDB runner normalises
/// its own: integers, floats (decimals too), strings, booleans, timestamps as microseconds
/// since the epoch, dates as days since the epoch, anything else as its display text.
pub fn json_rows(batches: &[RecordBatch], max: usize) -> anyhow::Result<Vec<Vec<Value>>> {
    let mut rows = Vec::new();
    for batch in batches {
        if rows.len() >= max {
            break;
        }
        let n = batch.num_rows().min(max - rows.len());
        let columns = batch
            .columns()
            .iter()
            .map(|c| column_values(c.as_ref(), n))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for i in 0..n {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    Ok(rows)
}

fn column_values(array: &dyn Array, n: usize) -> anyhow::Result<Vec<Value>> {
    let nulls = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .enumerate()
            .map(|(i, v)| if array.is_null(i) { Value::Null } else { v })
            .collect()
    };
    let int64 = |a: &dyn Array, scale: (i64, i64)| -> anyhow::Result<Vec<Value>> {
        let c = cast(a, &DataType::Int64)?;
        let c = c.as_primitive::<Int64Type>();
        Ok((0..n)
            .map(|i| Value::from(c.value(i) * scale.0 / scale.1))
            .collect())
    };
    let values = match array.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => int64(array, (1, 1))?,
        DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let c = cast(array, &DataType::Float64)?;
            let c = c.as_primitive::<Float64Type>();
            (0..n).map(|i| Value::from(c.value(i))).collect()
        }
        DataType::Boolean => {
            let c = array.as_boolean();
            (0..n).map(|i| Value::from(c.value(i))).collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let c = cast(array, &DataType::Utf8)?;
            let c = c.as_string::<i32>();
            (0..n).map(|i| Value::from(c.value(i))).collect()
        }
        DataType::Timestamp(unit, _) => {
            let scale = match unit {
                TimeUnit::Second => (1_000_000, 1),
                TimeUnit::Millisecond => (1000, 1),
                TimeUnit::Microsecond => (1, 1),
                TimeUnit::Nanosecond => (1, 1000),
            };
            int64(array, scale)?
        }
        DataType::Date32 => {
            let c = cast(array, &DataType::Int32)?;
            let c = c.as_primitive::<Int32Type>();
            (0..n).map(|i| Value::from(c.value(i))).collect()
        }
        _ => {
            use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
            let f = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            (0..n)
                .map(|i| Value::from(f.value(i).to_string()))
                .collect()
        }
    };
    Ok(nulls(values))
}

/// Whether two result values agree: numbers within 1e-6 relative (1e-9 absolute near 0),
/// everything else exactly.
pub fn values_match(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else {
                return false;
            };
            let diff = (x - y).abs();
            diff <= 1e-9 || diff <= 1e-6 * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

/// Compares two engines' results: row counts, then the compared rows value by value.
pub fn compare_results(
    rows_a: u64,
    first_a: &[Vec<Value>],
    rows_b: u64,
    first_b: &[Vec<Value>],
) -> Result<(), String> {
    if rows_a != rows_b {
        return Err(format!("{rows_a} rows vs {rows_b} rows"));
    }
    if first_a.len() != first_b.len() {
        return Err(format!(
            "{} rows compared vs {}",
            first_a.len(),
            first_b.len()
        ));
    }
    for (i, (a, b)) in first_a.iter().zip(first_b).enumerate() {
        if a.len() != b.len() || !a.iter().zip(b).all(|(x, y)| values_match(x, y)) {
            return Err(format!(
                "row {}: lakehose {} vs duckdb {}",
                i + 1,
                Value::from(a.clone()),
                Value::from(b.clone())
            ));
        }
    }
    Ok(())
}

// ---- freshness ----------------------------------------------------------------------------------

/// Freshness figures.
#[derive(Debug)]
struct FreshReport {
    samples: usize,
    latencies_ms: Vec<f64>,
    /// Queries right after the acknowledgement that did not count the record.
    violations: usize,
    /// Records the buffer held (acknowledged, not delivered) at the end.
    undelivered: i64,
    put_ms: Vec<f64>,
}

impl FreshReport {
    fn print(&self) {
        let mut l = self.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        let mut p = self.put_ms.clone();
        p.sort_by(f64::total_cmp);
        let p99 = percentile(&l, 0.99);
        println!(
            "freshness ({} samples, ack -> query answer counting the record): p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms (goal p99 <= 50 ms: {})",
            self.samples,
            percentile(&l, 0.5),
            p99,
            l.last().copied().unwrap_or(0.0),
            if p99 <= 50.0 && self.violations == 0 {
                "met"
            } else {
                "NOT MET"
            }
        );
        println!(
            "  PutRecord ack p50 {:.2} ms; records not visible at the first query: {}; \
             undelivered records held by the buffer at the end: {}",
            percentile(&p, 0.5),
            self.violations,
            self.undelivered
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A server child process.
/// This executable as `serve` on a temporary data dir (shared with `bench analytics`).
pub(crate) struct Server {
    child: tokio::process::Child,
    pub(crate) endpoint: String,
}

impl Server {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with_config(dir, "").await
    }

    /// Starts with `config` as its `lakehose.toml`.
    pub(crate) async fn start_with_config(dir: &Path, config: &str) -> anyhow::Result<Self> {
        let config_body = config;
        let config = dir.join("lakehose.toml");
        std::fs::write(&config, config_body)?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next_line()
                .await?
                .context("the server exited before listening")?;
            if let Some(url) = line.strip_prefix("lakehose listening on ") {
                break url.trim().to_string();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, endpoint })
    }

    /// SIGTERM, then waits (30 s at most) for the server to stop.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
            eprintln!("the server did not stop within 30 s of SIGTERM; killing it");
        }
        let _ = self.child.kill().await;
    }
}

/// An `AWSGlue.<op>` call (AWS JSON 1.1).
async fn glue(endpoint: &str, op: &str, body: &Value) -> anyhow::Result<Value> {
    aws_json(endpoint, &format!("AWSGlue.{op}"), body).await
}

/// Calls an AWS JSON 1.1 operation (`target` = `Service.Operation`) without signing.
pub(crate) async fn aws_json(endpoint: &str, target: &str, body: &Value) -> anyhow::Result<Value> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = hyper::Request::post(endpoint)
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "{target} failed ({status}): {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `SELECT`s through `POST /v1/query` (JSON answer), returning the first value as an integer.
async fn query_count(client: &FirehoseClient, sql: &str, fresh: bool) -> anyhow::Result<i64> {
    let body = json!({"sql": sql, "format": "json", "fresh": fresh});
    let (status, _, bytes) = client
        .post("/v1/query", Bytes::from(serde_json::to_vec(&body)?))
        .await?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status != 200 {
        bail!("query failed ({status}): {answer}");
    }
    answer["rows"][0][0]
        .as_i64()
        .with_context(|| format!("unexpected answer: {answer}"))
}

async fn freshness(samples: usize) -> anyhow::Result<FreshReport> {
    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path()).await?;
    let result = measure_freshness(&server.endpoint, samples).await;
    server.stop().await;
    result
}

async fn measure_freshness(endpoint: &str, samples: usize) -> anyhow::Result<FreshReport> {
    use base64::Engine;
    const DB: &str = "freshbench";
    const STREAM: &str = "freshbench";
    const ROLE: &str = "arn:aws:iam::123456789012:role/bench";
    glue(
        endpoint,
        "CreateDatabase",
        &json!({"DatabaseInput": {"Name": DB}}),
    )
    .await?;
    glue(
        endpoint,
        "CreateTable",
        &json!({"DatabaseName": DB, "TableInput": {
            "Name": "t",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {
                "Columns": [{"Name": "id", "Type": "bigint"}, {"Name": "payload", "Type": "string"}],
                "Location": "s3://freshbench/t/",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}
            }
        }}),
    )
    .await?;
    let client = FirehoseClient::new(endpoint)?;
    client
        .call(
            "CreateDeliveryStream",
            &json!({
                "DeliveryStreamName": STREAM,
                "ExtendedS3DestinationConfiguration": {
                    "RoleARN": ROLE,
                    "BucketARN": "arn:aws:s3:::freshbench",
                    "Prefix": "t/",
                    "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
                    "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 900},
                    "DataFormatConversionConfiguration": {
                        "SchemaConfiguration": {"DatabaseName": DB, "TableName": "t", "RoleARN": ROLE},
                        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}
                    }
                }
            }),
        )
        .await?;
    // Wait for the stream to be active.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = client
            .call(
                "DescribeDeliveryStream",
                &json!({"DeliveryStreamName": STREAM}),
            )
            .await?;
        if d["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the stream is not ACTIVE after 30 s: {d}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let engine = &base64::engine::general_purpose::STANDARD;
    const WARMUP: usize = 5;
    let mut latencies = Vec::with_capacity(samples);
    let mut put_ms = Vec::with_capacity(samples);
    let mut violations = 0;
    for n in 0..WARMUP + samples {
        let id = 1_000_000 + n as i64;
        let record = format!("{{\"id\":{id},\"payload\":\"sample {n} of the freshness bench\"}}\n");
        let body = json!({"DeliveryStreamName": STREAM, "Record": {"Data": engine.encode(record)}});
        let sent = Instant::now();
        client.call("PutRecord", &body).await?;
        let acked = Instant::now();
        let sql = format!("SELECT count(*) FROM {DB}.t WHERE id = {id}");
        let mut first = true;
        let latency = loop {
            let count = query_count(&client, &sql, true).await?;
            if count == 1 {
                break acked.elapsed();
            }
            if count > 1 {
                bail!("record {id} counted {count} times");
            }
            if first && n >= WARMUP {
                violations += 1;
            }
            first = false;
            if acked.elapsed() > Duration::from_secs(10) {
                bail!("record {id} not visible 10 s after its acknowledgement");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        if n >= WARMUP {
            latencies.push(latency.as_secs_f64() * 1000.0);
            put_ms.push((acked - sent).as_secs_f64() * 1000.0);
        }
    }
    let all = query_count(&client, &format!("SELECT count(*) FROM {DB}.t"), true).await?;
    let delivered = query_count(&client, &format!("SELECT count(*) FROM {DB}.t"), false).await?;
    Ok(FreshReport {
        samples,
        latencies_ms: latencies,
        violations,
        undelivered: all - delivered,
        put_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_fits_the_schema() {
        let a = EventGen::new(1000);
        let b = EventGen::new(1000);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in [0, 1, 500, 999] {
            a.record(3, i, &mut x);
            b.record(3, i, &mut y);
        }
        assert_eq!(x, y);
        // A row does not depend on which rows were generated before it.
        let mut z = Vec::new();
        b.record(3, 500, &mut z);
        assert!(String::from_utf8_lossy(&x).contains(String::from_utf8_lossy(&z).as_ref()));

        let line: Value = serde_json::from_slice(&z).unwrap();
        assert_eq!(line["event_id"], 3500);
        assert!(line["ts"].as_str().unwrap().starts_with("2026-01-04 "));
        assert_eq!(EventGen::day_of(3), "2026-01-04");
        assert!(
            COUNTRIES[..EVENT_COUNTRIES]
                .iter()
                .any(|c| c.0 == line["country"])
        );

        // Every record converts, rows keep their values, and the bytes are reproducible.
        let schema = events_schema().unwrap();
        let config = conversion_config("events").unwrap();
        let f1 = convert_file(&a, &schema, &config, 3, 1000).unwrap();
        let f2 = convert_file(&b, &schema, &config, 3, 1000).unwrap();
        assert_eq!(f1, f2);
        let reader = parquet_rows(&f1);
        assert_eq!(reader.num_rows(), 1000);
        let rows = json_rows(&[reader], 1000).unwrap();
        assert_eq!(rows[500][0], json!(3500));
        // 2026-01-04 03:00 + a few ms: slot 0 of day 4 starts at midnight.
        let ts = rows[0][1].as_i64().unwrap();
        assert!((1_767_484_800_000_000..1_767_484_800_000_000 + 10_000).contains(&ts));
    }

    fn parquet_rows(file: &[u8]) -> RecordBatch {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(file))
            .unwrap()
            .with_batch_size(1 << 20)
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        batches.into_iter().next().unwrap()
    }

    #[test]
    fn results_compare_loosely() {
        let a = vec![vec![json!(10), json!(1.0), json!("DE"), Value::Null]];
        let b = vec![vec![
            json!(10),
            json!(1.000_000_1),
            json!("DE"),
            Value::Null,
        ]];
        assert!(compare_results(1, &a, 1, &b).is_ok());
        // Integers from DuckDB (HUGEINT sums) and floats compare numerically.
        assert!(values_match(&json!(3), &json!(3.0)));
        assert!(values_match(&json!(0.0), &json!(1e-12)));
        assert!(!values_match(&json!(1.0), &json!(1.001)));
        assert!(!values_match(&json!(7), &json!(8)));
        assert!(!values_match(&json!("DE"), &json!("de")));
        assert!(!values_match(&json!(1), &Value::Null));
        let c = vec![vec![json!(10), json!(1.5), json!("DE"), Value::Null]];
        assert!(compare_results(1, &a, 1, &c).unwrap_err().contains("row 1"));
        assert!(compare_results(1, &a, 2, &a).is_err());
        assert!((geometric_mean(&[1.0, 4.0]) - 2.0).abs() < 1e-12);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
