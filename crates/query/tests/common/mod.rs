//! The fixture lake shared by the query tests: a [`FileCatalog`] and local bucket folders in a
//! temp dir, with tables in every supported format (Parquet, ORC, JSON lines, delimited text),
//! a partitioned table, an evolved table, raw folders for DDL tests, and a [`FreshSource`]
//! test double with undelivered rows for `lake.stream_events`.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use lakehose_catalog::{CatalogStore, Column, Database, FileCatalog, SerDeInfo, Table};
use lakehose_query::{
    BucketStores, FreshBatch, FreshSnapshot, FreshSource, QueryEngine, QueryOptions, QueryOutput,
};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

/// Bucket folders under one root.
#[derive(Debug)]
pub struct LocalBuckets {
    root: PathBuf,
}

impl LocalBuckets {
    pub fn new(root: PathBuf) -> Self {
        LocalBuckets { root }
    }
}

impl BucketStores for LocalBuckets {
    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
        let dir = self.root.join(bucket);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| e.to_string())?;
        Ok(Arc::new(store))
    }
}

/// Undelivered rows of `lake.stream_events`: `dt=2024-01-02` (ids 4, 5 — also in the
/// delivered but excluded `b.parquet`) and `dt=2024-01-03` (id 6, with a column the table
/// does not have and without `name`).
#[derive(Debug)]
pub struct TestFresh;

pub const EXCLUDED: &str = "s3://lake/stream_events/dt=2024-01-02/b.parquet";

/// The object the snapshot's `exclude_fn` excludes (not written by the fixture).
pub const DELIVERED_LATER: &str = "s3://lake/stream_events/dt=2024-01-03/c.parquet";

#[async_trait]
impl FreshSource for TestFresh {
    async fn snapshot(&self, database: &str, table: &str) -> Result<FreshSnapshot, String> {
        if (database, table) != ("lake", "stream_events") {
            return Ok(FreshSnapshot::default());
        }
        let b1 = batch(&[
            ("id", ints64(&[4, 5])),
            ("name", strings(&[Some("d"), Some("e")])),
        ]);
        let b2 = batch(&[("junk", strings(&[Some("x")])), ("id", ints32(&[6]))]);
        Ok(FreshSnapshot {
            batches: vec![
                FreshBatch {
                    partition_values: vec!["2024-01-02".into()],
                    batch: b1,
                },
                FreshBatch {
                    partition_values: vec!["2024-01-03".into()],
                    batch: b2,
                },
            ],
            exclude: HashSet::from([EXCLUDED.to_string()]),
            // The flush of the dt=2024-01-03 rows writes `c.parquet` (maybe after the snapshot).
            exclude_fn: Some(Arc::new(|url: &str| url == DELIVERED_LATER)),
        })
    }
}

/// A built lake.
pub struct Lake {
    pub dir: tempfile::TempDir,
    pub catalog: Arc<FileCatalog>,
    pub engine: QueryEngine,
}

impl Lake {
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join("buckets").join(bucket)
    }

    /// Runs `sql` with `default` as the database, fresh rows included.
    pub async fn run(&self, sql: &str) -> lakehose_query::Result<QueryOutput> {
        self.engine.execute(sql, &QueryOptions::default()).await
    }
}

pub fn ints64(v: &[i64]) -> ArrayRef {
    Arc::new(arrow_array::Int64Array::from(v.to_vec()))
}

pub fn ints32(v: &[i32]) -> ArrayRef {
    Arc::new(arrow_array::Int32Array::from(v.to_vec()))
}

pub fn floats(v: &[f64]) -> ArrayRef {
    Arc::new(arrow_array::Float64Array::from(v.to_vec()))
}

pub fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(arrow_array::StringArray::from(v.to_vec()))
}

pub fn batch(columns: &[(&str, ArrayRef)]) -> RecordBatch {
    RecordBatch::try_from_iter(columns.iter().map(|(n, a)| (*n, Arc::clone(a)))).unwrap()
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

pub fn write_orc(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = orc_rust::ArrowWriterBuilder::new(file, batch.schema())
        .try_build()
        .unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Like [`write_orc`], in stripes of about `stripe_bytes` of encoded data each (the writer
/// closes a stripe between its 1,024-row batches).
pub fn write_orc_stripes(path: &Path, batch: &RecordBatch, stripe_bytes: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = orc_rust::ArrowWriterBuilder::new(file, batch.schema())
        .with_stripe_byte_size(stripe_bytes)
        .try_build()
        .unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

pub fn write_text(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub fn write_gz(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
}

/// Rows of `schema` from JSON lines.
pub fn from_json(schema: SchemaRef, lines: &str) -> RecordBatch {
    let mut reader = datafusion::arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(lines.as_bytes().to_vec()))
        .unwrap();
    reader.next().unwrap().unwrap()
}

pub fn serde(lib: &str, params: &[(&str, &str)]) -> SerDeInfo {
    SerDeInfo {
        serialization_library: Some(lib.to_string()),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SerDeInfo::default()
    }
}

pub const PARQUET: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
pub const ORC: &str = "org.apache.hadoop.hive.ql.io.orc.OrcSerde";
pub const JSON: &str = "org.openx.data.jsonserde.JsonSerDe";
pub const LAZY: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
pub const OPENCSV: &str = "org.apache.hadoop.hive.serde2.OpenCSVSerde";

pub fn table(
    name: &str,
    columns: &[(&str, &str)],
    keys: &[(&str, &str)],
    location: &str,
    serde_info: SerDeInfo,
) -> Table {
    let mut t = Table::new(
        name,
        columns.iter().map(|(n, ty)| Column::new(*n, *ty)).collect(),
        keys.iter().map(|(n, ty)| Column::new(*n, *ty)).collect(),
        Some(location.to_string()),
    );
    t.storage_descriptor.as_mut().unwrap().serde_info = Some(serde_info);
    t
}

pub const ALL_TYPES: &[(&str, &str)] = &[
    ("s", "string"),
    ("vc", "varchar(10)"),
    ("c", "char(3)"),
    ("ti", "tinyint"),
    ("si", "smallint"),
    ("i", "int"),
    ("bi", "bigint"),
    ("f", "float"),
    ("d", "double"),
    ("b", "boolean"),
    ("ts", "timestamp"),
    ("dt", "date"),
    ("dec", "decimal(10,2)"),
    ("bin", "binary"),
    ("arr", "array<int>"),
    ("m", "map<string,int>"),
    ("st", "struct<a:int,b:string>"),
    ("nested", "array<struct<x:int,tags:array<string>>>"),
];

/// Builds the fixture lake.
pub async fn lake() -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(FileCatalog::open(&dir.path().join("catalog")).unwrap());
    let buckets = dir.path().join("buckets");
    let b = buckets.join("lake");
    std::fs::create_dir_all(&b).unwrap();
    for db in ["default", "lake"] {
        catalog.create_database(Database::new(db)).await.unwrap();
    }

    // lake.events: Parquet, partitioned by (dt string, hour int).
    let events = table(
        "events",
        &[("id", "bigint"), ("name", "string"), ("amount", "double")],
        &[("dt", "string"), ("hour", "int")],
        "s3://lake/events/",
        serde(PARQUET, &[]),
    );
    catalog.create_table("lake", events.clone()).await.unwrap();
    let parts: &[(&str, &str, &[i64])] = &[
        ("2024-01-01", "1", &[1, 2, 3]),
        ("2024-01-01", "2", &[4, 5]),
        ("2024-01-02", "1", &[6, 7, 8]),
        // Not registered: only visible after ALTER TABLE ... ADD PARTITION / MSCK REPAIR.
        ("2024-01-03", "1", &[9]),
    ];
    for (i, (dt, hour, ids)) in parts.iter().enumerate() {
        let folder = format!("events/dt={dt}/hour={hour}");
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let names: Vec<Option<&str>> = names.iter().map(|s| Some(s.as_str())).collect();
        let amounts: Vec<f64> = ids.iter().map(|i| *i as f64 * 1.5).collect();
        write_parquet(
            &b.join(&folder).join("part-0.parquet"),
            &batch(&[
                ("id", ints64(ids)),
                ("name", strings(&names)),
                ("amount", floats(&amounts)),
            ]),
        );
        write_text(&b.join(&folder).join("_SUCCESS"), "x");
        write_text(&b.join(&folder).join(".part-0.parquet.crc"), "garbage");
        write_text(&b.join(&folder).join("empty.parquet"), "");
        if i < 3 {
            catalog
                .create_partitions(
                    "lake",
                    "events",
                    vec![events.partition_for(
                        vec![dt.to_string(), hour.to_string()],
                        format!("s3://lake/{folder}/"),
                    )],
                )
                .await
                .unwrap();
        }
    }

    // lake.all_types: every Hive type, Parquet.
    let all = table(
        "all_types",
        ALL_TYPES,
        &[],
        "s3://lake/all_types/",
        serde(PARQUET, &[]),
    );
    catalog.create_table("lake", all.clone()).await.unwrap();
    let schema = all.arrow_schema().unwrap();
    let no_bin: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != "bin")
        .map(|f| f.as_ref().clone())
        .collect();
    let json_rows = r#"{"s":"hello","vc":"varchar","c":"abc","ti":1,"si":2,"i":3,"bi":4,"f":1.5,"d":2.25,"b":true,"ts":"2024-01-02T03:04:05.123","dt":"2024-01-02","dec":"12.34","arr":[1,2,3],"m":{"k1":1,"k2":2},"st":{"a":7,"b":"seven"},"nested":[{"x":1,"tags":["p","q"]},{"x":2,"tags":[]}]}
{"s":null,"vc":null,"c":null,"ti":-1,"si":-2,"i":-3,"bi":-4,"f":-1.5,"d":-2.25,"b":false,"ts":"1999-12-31T23:59:59","dt":"1999-12-31","dec":"-0.01","arr":[],"m":{},"st":{"a":null,"b":null},"nested":null}
"#;
    let partial = from_json(Arc::new(Schema::new(no_bin)), json_rows);
    let bin: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"\x01\x02"[..]), None]));
    let mut columns = Vec::new();
    for f in schema.fields() {
        if f.name() == "bin" {
            columns.push(Arc::clone(&bin));
        } else {
            columns.push(Arc::clone(partial.column_by_name(f.name()).unwrap()));
        }
    }
    let full = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
    write_parquet(&b.join("all_types/data.parquet"), &full);

    // lake.evolved: the table gained `score`; the old file does not have it.
    let evolved = table(
        "evolved",
        &[("id", "int"), ("name", "string"), ("score", "double")],
        &[],
        "s3://lake/evolved/",
        serde(PARQUET, &[]),
    );
    catalog.create_table("lake", evolved).await.unwrap();
    write_parquet(
        &b.join("evolved/old.parquet"),
        &batch(&[
            ("id", ints32(&[1, 2])),
            ("name", strings(&[Some("old1"), Some("old2")])),
        ]),
    );
    write_parquet(
        &b.join("evolved/new.parquet"),
        &batch(&[
            ("id", ints32(&[3])),
            ("name", strings(&[Some("new3")])),
            ("score", floats(&[9.5])),
        ]),
    );

    // lake.orc_t: ORC, partitioned by (region string).
    let orc_t = table(
        "orc_t",
        &[
            ("id", "int"),
            ("name", "string"),
            ("ts", "timestamp"),
            ("day", "date"),
            ("ok", "boolean"),
            ("added", "string"),
        ],
        &[("region", "string")],
        "s3://lake/orc_t/",
        serde(ORC, &[]),
    );
    catalog.create_table("lake", orc_t.clone()).await.unwrap();
    let orc_schema = Arc::new(Schema::new(
        orc_t.arrow_schema().unwrap().fields()[..5].to_vec(),
    ));
    for (region, lines) in [
        (
            "eu",
            r#"{"id":1,"name":"one","ts":"2024-05-06T07:08:09.010","day":"2024-05-06","ok":true}
{"id":2,"name":null,"ts":null,"day":null,"ok":false}"#,
        ),
        (
            "us",
            r#"{"id":3,"name":"three","ts":"2020-01-01T00:00:00","day":"2020-01-01","ok":null}"#,
        ),
    ] {
        write_orc(
            &b.join(format!("orc_t/region={region}/data.orc")),
            &from_json(Arc::clone(&orc_schema), lines),
        );
        catalog
            .create_partitions(
                "lake",
                "orc_t",
                vec![orc_t.partition_for(
                    vec![region.to_string()],
                    format!("s3://lake/orc_t/region={region}/"),
                )],
            )
            .await
            .unwrap();
    }

    // lake.json_t: JSON lines (one file gzip-compressed).
    let json_t = table(
        "json_t",
        &[
            ("id", "int"),
            ("name", "string"),
            ("tags", "array<string>"),
            ("info", "struct<city:string,zip:int>"),
            ("ts", "timestamp"),
        ],
        &[],
        "s3://lake/json_t/",
        serde(JSON, &[]),
    );
    catalog.create_table("lake", json_t).await.unwrap();
    write_text(
        &b.join("json_t/a.json"),
        "{\"id\":1,\"name\":\"ann\",\"tags\":[\"x\",\"y\"],\"info\":{\"city\":\"Oslo\",\"zip\":150},\"ts\":\"2024-01-01 10:00:00\",\"extra\":1}\n{\"id\":2,\"tags\":[]}\n",
    );
    write_gz(
        &b.join("json_t/b.json.gz"),
        "{\"id\":3,\"name\":\"cy\",\"info\":{\"city\":\"Rome\"}}\n",
    );

    // lake.csv_t: LazySimpleSerDe with '|' (\N is NULL; a bad number reads as NULL; a short
    // line reads missing columns as NULL).
    let mut csv_t = table(
        "csv_t",
        &[
            ("id", "int"),
            ("name", "string"),
            ("price", "decimal(10,2)"),
            ("day", "date"),
            ("flag", "boolean"),
        ],
        &[],
        "s3://lake/csv_t/",
        serde(LAZY, &[("field.delim", "|")]),
    );
    csv_t.storage_descriptor.as_mut().unwrap().input_format =
        Some("org.apache.hadoop.mapred.TextInputFormat".into());
    catalog.create_table("lake", csv_t).await.unwrap();
    write_text(
        &b.join("csv_t/part-1.txt"),
        "1|apple|1.50|2024-01-01|true\n2|\\N|oops|2024-01-02|false\n3|\"quoted\"|3|\\N|\n",
    );
    write_gz(&b.join("csv_t/part-2.txt.gz"), "4|pear|4.25\n");

    // lake.opencsv_t: OpenCSVSerde with a header line.
    let mut opencsv = table(
        "opencsv_t",
        &[("a", "string"), ("b", "int")],
        &[],
        "s3://lake/opencsv_t/",
        serde(OPENCSV, &[("separatorChar", ",")]),
    );
    opencsv
        .parameters
        .insert("skip.header.line.count".into(), "1".into());
    catalog.create_table("lake", opencsv).await.unwrap();
    write_text(&b.join("opencsv_t/data.csv"), "a,b\n\"x, y\",1\n,2\nz,\n");

    // lake.stream_events: delivered files plus undelivered rows (see TestFresh).
    let stream = table(
        "stream_events",
        &[("id", "bigint"), ("name", "string")],
        &[("dt", "string")],
        "s3://lake/stream_events/",
        serde(PARQUET, &[]),
    );
    catalog.create_table("lake", stream.clone()).await.unwrap();
    write_parquet(
        &b.join("stream_events/dt=2024-01-01/a.parquet"),
        &batch(&[
            ("id", ints64(&[1, 2, 3])),
            ("name", strings(&[Some("a"), Some("b"), Some("c")])),
        ]),
    );
    write_parquet(
        &b.join("stream_events/dt=2024-01-02/b.parquet"),
        &batch(&[
            ("id", ints64(&[4, 5])),
            ("name", strings(&[Some("d"), Some("e")])),
        ]),
    );
    for dt in ["2024-01-01", "2024-01-02"] {
        catalog
            .create_partitions(
                "lake",
                "stream_events",
                vec![stream.partition_for(
                    vec![dt.to_string()],
                    format!("s3://lake/stream_events/dt={dt}/"),
                )],
            )
            .await
            .unwrap();
    }

    // Raw folders for DDL tests: s3://lake/raw/sales/year=YYYY/month=MM/*.parquet.
    for (year, month, ids) in [
        ("2023", "12", &[1i64, 2][..]),
        ("2024", "01", &[3][..]),
        ("2024", "02", &[4, 5, 6][..]),
    ] {
        let amounts: Vec<f64> = ids.iter().map(|i| *i as f64 * 10.0).collect();
        write_parquet(
            &b.join(format!("raw/sales/year={year}/month={month}/data.parquet")),
            &batch(&[("id", ints64(ids)), ("amount", floats(&amounts))]),
        );
    }
    write_text(&b.join("raw/sales/_SUCCESS"), "x");
    write_text(&b.join("raw/sales/notapartition/x.parquet"), "not parquet");
    write_text(&b.join("raw/tsv/data.tsv"), "1\tone\n2\ttwo\n");

    let engine = QueryEngine::new(
        catalog.clone() as Arc<dyn CatalogStore>,
        Arc::new(LocalBuckets { root: buckets }),
    )
    .with_fresh(Arc::new(TestFresh));
    Lake {
        dir,
        catalog,
        engine,
    }
}

/// One result as text: one line per row, values separated by ` | `, NULL as `NULL`.
pub fn render(out: &QueryOutput) -> Vec<String> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for b in &out.batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            lines.push(cells.join(" | "));
        }
    }
    lines
}
