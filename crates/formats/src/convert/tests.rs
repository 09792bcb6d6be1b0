use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use super::*;

/// A table schema as the catalog maps it: `(name, hive type)` columns through
/// `lakehose_catalog::hive_to_arrow`, names lower-cased, every field nullable.
fn schema(cols: &[(&str, &str)]) -> SchemaRef {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(name, hive)| {
            let dt = lakehose_catalog::hive_to_arrow(hive)
                .unwrap_or_else(|e| panic!("{name}: {hive}: {e}"));
            Field::new(name.to_lowercase(), dt, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn openx() -> ConversionConfig {
    ConversionConfig::new("db", "t", InputSerde::default(), OutputFormat::default())
}

fn hive(formats: &[&str]) -> ConversionConfig {
    ConversionConfig::new(
        "db",
        "t",
        InputSerde::Hive {
            timestamp_formats: formats.iter().map(|s| s.to_string()).collect(),
        },
        OutputFormat::default(),
    )
}

fn run(records: &[&str], schema: &SchemaRef, config: &ConversionConfig) -> Converted {
    let recs: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    convert_with(&recs, schema, config, &ConvertOptions { threads: 1 }).unwrap()
}

/// The file read back with the parquet crate, as one batch.
fn read(file: &[u8]) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(file))
        .unwrap()
        .with_batch_size(1 << 20)
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1, "expected one batch");
    batches.into_iter().next().unwrap()
}

/// Converts, expects no failure, reads the file back.
fn ok(records: &[&str], schema: &SchemaRef, config: &ConversionConfig) -> RecordBatch {
    let out = run(records, schema, config);
    assert!(
        out.failed.is_empty(),
        "unexpected failures: {:?}",
        out.failed
    );
    assert_eq!(out.rows, records.len());
    let batch = read(&out.file);
    assert_eq!(batch.schema().fields(), schema.fields());
    batch
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name).unwrap().as_ref()
}

fn strings(a: &dyn Array) -> Vec<Option<String>> {
    a.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

fn i64s(a: &dyn Array) -> Vec<Option<i64>> {
    a.as_primitive::<Int64Type>().iter().collect()
}

fn ts_ms(a: &dyn Array) -> Vec<Option<i64>> {
    a.as_primitive::<TimestampMillisecondType>()
        .iter()
        .collect()
}

const T0: i64 = 1_709_288_130_000; // 2024-03-01T10:15:30Z

/// A column of every Hive type, nested ones included.
const EVERY_HIVE_TYPE: [(&str, &str); 15] = [
    ("s", "string"),
    ("i8", "tinyint"),
    ("i16", "smallint"),
    ("i32", "int"),
    ("i64", "bigint"),
    ("f32", "float"),
    ("f64", "double"),
    ("b", "boolean"),
    ("ts", "timestamp"),
    ("d", "date"),
    ("dec", "decimal(10,2)"),
    ("l", "array<bigint>"),
    ("m", "map<string,int>"),
    ("st", "struct<a:int,b:array<struct<c:string>>>"),
    ("bin", "binary"),
];

#[test]
fn every_hive_type_round_trips() {
    let s = schema(&EVERY_HIVE_TYPE);
    // The catalog's Arrow representation, which the decoder (and `ok`'s read-back check) take
    // as is.
    let dt = |name: &str| s.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(dt("ts"), DataType::Timestamp(TimeUnit::Millisecond, None));
    assert_eq!(dt("dec"), DataType::Decimal128(10, 2));
    assert_eq!(
        dt("l"),
        DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
    );
    let DataType::Map(entries, false) = dt("m") else {
        panic!("{:?}", dt("m"))
    };
    assert_eq!(entries.name(), "entries");
    assert!(!entries.is_nullable());
    assert_eq!(
        entries.data_type(),
        &DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Int32, true),
            ]
            .into()
        )
    );
    let b = ok(
        &[
            r#"{"s":"héllo \"q\" \u00e9 \ud83d\ude00","i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"f32":1.5,"f64":-2.25e-3,"b":true,"ts":"2024-03-01T10:15:30Z","d":"2024-03-01","dec":12345678.91,"l":[1,2,3],"m":{"x":1,"y":null},"st":{"a":7,"b":[{"c":"deep"},{"c":null}]},"bin":"raw"}"#,
            r#"{"s":"","i8":127,"i16":-32768,"i32":0,"i64":-1,"f32":0,"f64":1e300,"b":false,"ts":"2024-03-01 10:15:30.5","d":"1969-12-31","dec":-0.01,"l":[],"m":{},"st":{"a":null,"b":[]},"bin":""}"#,
        ],
        &s,
        &openx(),
    );
    assert_eq!(
        strings(col(&b, "s")),
        vec![Some("héllo \"q\" é 😀".into()), Some("".into())]
    );
    assert_eq!(
        col(&b, "i8").as_primitive::<Int8Type>().values().to_vec(),
        [-128, 127]
    );
    assert_eq!(
        col(&b, "i16").as_primitive::<Int16Type>().values().to_vec(),
        [32767, -32768]
    );
    assert_eq!(
        col(&b, "i32").as_primitive::<Int32Type>().values().to_vec(),
        [i32::MIN, 0]
    );
    assert_eq!(i64s(col(&b, "i64")), [Some(i64::MAX), Some(-1)]);
    assert_eq!(
        col(&b, "f32")
            .as_primitive::<Float32Type>()
            .values()
            .to_vec(),
        [1.5, 0.0]
    );
    assert_eq!(
        col(&b, "f64")
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        [-2.25e-3, 1e300]
    );
    assert_eq!(
        col(&b, "b").as_boolean().iter().collect::<Vec<_>>(),
        [Some(true), Some(false)]
    );
    assert_eq!(ts_ms(col(&b, "ts")), [Some(T0), Some(T0 + 500)]);
    assert_eq!(
        col(&b, "d").as_primitive::<Date32Type>().values().to_vec(),
        [19_783, -1]
    );
    let dec = col(&b, "dec").as_primitive::<Decimal128Type>();
    assert_eq!(dec.data_type(), &DataType::Decimal128(10, 2));
    assert_eq!(dec.values().to_vec(), [1_234_567_891, -1]);
    let l = col(&b, "l").as_list::<i32>();
    assert_eq!(i64s(l.value(0).as_ref()), [Some(1), Some(2), Some(3)]);
    assert_eq!(l.value(1).len(), 0);
    let m = col(&b, "m").as_map();
    assert_eq!(
        strings(m.value(0).column(0).as_ref()),
        [Some("x".into()), Some("y".into())]
    );
    assert_eq!(
        m.value(0)
            .column(1)
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(1), None]
    );
    assert_eq!(m.value(1).len(), 0);
    let st = col(&b, "st").as_struct();
    assert_eq!(
        st.column(0)
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(7), None]
    );
    let inner = st.column(1).as_list::<i32>();
    let first = inner.value(0);
    assert_eq!(
        strings(first.as_struct().column(0).as_ref()),
        [Some("deep".into()), None]
    );
    assert_eq!(inner.value(1).len(), 0);
    assert_eq!(
        col(&b, "bin").as_binary::<i32>().iter().collect::<Vec<_>>(),
        [Some(&b"raw"[..]), Some(&b""[..])]
    );
}

#[test]
fn nulls_and_missing_fields() {
    let s = schema(&[
        ("a", "bigint"),
        ("b", "string"),
        ("st", "struct<x:int,y:string>"),
        ("l", "array<int>"),
        ("m", "map<string,string>"),
    ]);
    let b = ok(
        &[
            r#"{"a":null,"b":null,"st":null,"l":null,"m":null}"#,
            r#"{}"#,
            r#"{"st":{},"l":[null,1]}"#,
            r#"{"a":1,"st":{"y":"v"},"extra":{"ignored":[1,2,{"x":"y"}]}}"#,
        ],
        &s,
        &openx(),
    );
    assert_eq!(i64s(col(&b, "a")), [None, None, None, Some(1)]);
    assert_eq!(strings(col(&b, "b")), [None, None, None, None]);
    let st = col(&b, "st").as_struct();
    assert_eq!(
        st.nulls().unwrap().iter().collect::<Vec<_>>(),
        [false, false, true, true]
    );
    assert_eq!(strings(st.column(1).as_ref())[3], Some("v".into()));
    assert!(st.column(0).is_null(2));
    let l = col(&b, "l").as_list::<i32>();
    assert!(l.is_null(0) && l.is_null(1) && !l.is_null(2));
    assert_eq!(
        l.value(2)
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [None, Some(1)]
    );
    assert!(col(&b, "m").is_null(0));
}

#[test]
fn keys_match_case_insensitively_by_default() {
    let s = schema(&[("userid", "bigint"), ("name", "string")]);
    let recs = [
        r#"{"UserId":1,"NAME":"a"}"#,
        r#"{"userid":2,"Name":"b"}"#,
        r#"{"name":"c","USERID":3}"#,
    ];
    let b = ok(&recs, &s, &openx());
    assert_eq!(i64s(col(&b, "userid")), [Some(1), Some(2), Some(3)]);
    assert_eq!(
        strings(col(&b, "name")),
        [Some("a".into()), Some("b".into()), Some("c".into())]
    );
    // Hive matches case-insensitively too.
    let b = ok(&recs, &s, &hive(&[]));
    assert_eq!(i64s(col(&b, "userid")), [Some(1), Some(2), Some(3)]);
    // OpenX with CaseInsensitive=false: only exact keys.
    let cfg = ConversionConfig::new(
        "db",
        "t",
        InputSerde::OpenX {
            case_insensitive: false,
            convert_dots_to_underscores: false,
            column_to_json_key: HashMap::new(),
        },
        OutputFormat::default(),
    );
    let b = ok(&recs, &s, &cfg);
    assert_eq!(i64s(col(&b, "userid")), [None, Some(2), None]);
    // Keys differing only by case are the same column: a duplicate.
    let out = run(&[r#"{"userid":1,"UserId":2}"#], &s, &openx());
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].error_code, MALFORMED_DATA);
    assert!(
        out.failed[0].error_message.contains("Duplicate key"),
        "{:?}",
        out.failed
    );
}

#[test]
fn nested_keys_are_case_insensitive() {
    let s = schema(&[("dev", "struct<os:string,ver:int>")]);
    let b = ok(&[r#"{"Dev":{"OS":"ios","Ver":17}}"#], &s, &openx());
    let st = col(&b, "dev").as_struct();
    assert_eq!(strings(st.column(0).as_ref()), [Some("ios".into())]);
}

#[test]
fn column_to_json_key_mappings() {
    let s = schema(&[("ts", "timestamp"), ("user", "string"), ("other", "int")]);
    let cfg = ConversionConfig::from_json(&json!({
        "SchemaConfiguration": {"DatabaseName": "db", "TableName": "t"},
        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {
            "ColumnToJsonKeyMappings": {"ts": "timestamp", "USER": "user.name"}
        }}},
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}
    }))
    .unwrap();
    let b = ok(
        &[
            r#"{"timestamp":"2024-03-01T10:15:30Z","user.name":"ann","other":1,"ts":"ignored"}"#,
            r#"{"Timestamp":1709288130,"USER.NAME":"bob"}"#,
        ],
        &s,
        &cfg,
    );
    assert_eq!(ts_ms(col(&b, "ts")), [Some(T0), Some(T0)]);
    assert_eq!(
        strings(col(&b, "user")),
        [Some("ann".into()), Some("bob".into())]
    );
}

#[test]
fn dotted_keys_become_underscores_when_configured() {
    let s = schema(&[("a_b", "int"), ("st", "struct<c_d:int>")]);
    let cfg = |dots| {
        ConversionConfig::new(
            "db",
            "t",
            InputSerde::OpenX {
                case_insensitive: true,
                convert_dots_to_underscores: dots,
                column_to_json_key: HashMap::new(),
            },
            OutputFormat::default(),
        )
    };
    let recs = [r#"{"a.b":1,"st":{"C.d":2}}"#];
    let b = ok(&recs, &s, &cfg(true));
    assert_eq!(
        col(&b, "a_b")
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(1)]
    );
    let st = col(&b, "st").as_struct();
    assert_eq!(
        st.column(0)
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(2)]
    );
    let b = ok(&recs, &s, &cfg(false));
    assert!(col(&b, "a_b").is_null(0));
}

#[test]
fn timestamps_openx() {
    let s = schema(&[("ts", "timestamp")]);
    let recs = [
        r#"{"ts":"2024-03-01T10:15:30Z"}"#,
        r#"{"ts":"2024-03-01T10:15:30.123456789Z"}"#,
        r#"{"ts":"2024-3-1 10:15:30.1"}"#,
        r#"{"ts":"2024-03-01T12:15:30+02:00"}"#,
        r#"{"ts":1709288130}"#,
        r#"{"ts":1709288130123}"#,
        r#"{"ts":1709288130.25}"#,
        r#"{"ts":"1709288130"}"#,
        r#"{"ts":"2024-03-01"}"#,
    ];
    let b = ok(&recs, &s, &openx());
    assert_eq!(
        ts_ms(col(&b, "ts")),
        [
            Some(T0),
            Some(T0 + 123),
            Some(T0 + 100),
            Some(T0),
            Some(T0),
            Some(T0 + 123),
            Some(T0 + 250),
            Some(T0),
            Some(T0 - 36_930_000),
        ]
    );
    let out = run(&[r#"{"ts":"yesterday"}"#, r#"{"ts":true}"#], &s, &openx());
    assert_eq!(out.failed.len(), 2);
    assert!(
        out.failed[0]
            .error_message
            .contains("Unparseable timestamp")
    );
}

#[test]
fn timestamps_hive_formats() {
    let s = schema(&[("ts", "timestamp")]);
    // Defaults: java.sql.Timestamp forms and ISO-8601; numbers are epoch millis.
    let b = ok(
        &[
            r#"{"ts":"2024-03-01 10:15:30"}"#,
            r#"{"ts":"2024-03-01 10:15:30.987654321"}"#,
            r#"{"ts":"2024-03-01T10:15:30.5Z"}"#,
            r#"{"ts":1709288130000}"#,
        ],
        &s,
        &hive(&[]),
    );
    assert_eq!(
        ts_ms(col(&b, "ts")),
        [Some(T0), Some(T0 + 987), Some(T0 + 500), Some(T0)]
    );
    // TimestampFormats: Joda patterns and "millis", tried before the defaults.
    let cfg = hive(&["dd/MMM/yyyy:HH:mm:ss Z", "millis", "yyyyMMdd'T'HHmmss"]);
    let b = ok(
        &[
            r#"{"ts":"01/Mar/2024:11:15:30 +0100"}"#,
            r#"{"ts":"1709288130000"}"#,
            r#"{"ts":"20240301T101530"}"#,
            r#"{"ts":"2024-03-01 10:15:30"}"#,
        ],
        &s,
        &cfg,
    );
    assert_eq!(ts_ms(col(&b, "ts")), [Some(T0); 4]);
    let out = run(&[r#"{"ts":"03/01/2024"}"#], &s, &cfg);
    assert_eq!(out.failed[0].error_code, MALFORMED_DATA);
}

#[test]
fn timestamp_units_and_zones_follow_the_schema() {
    let s: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new(
            "us",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("ns", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
    ]));
    let v = r#""2024-03-01T10:15:30.123456789Z""#;
    let b = ok(
        &[&format!(r#"{{"s":{v},"us":{v},"ns":{v}}}"#)],
        &s,
        &openx(),
    );
    assert_eq!(
        col(&b, "s").as_primitive::<TimestampSecondType>().value(0),
        T0 / 1000
    );
    assert_eq!(
        col(&b, "us")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        T0 * 1000 + 123_456
    );
    assert_eq!(
        col(&b, "ns")
            .as_primitive::<TimestampNanosecondType>()
            .value(0),
        T0 * 1_000_000 + 123_456_789
    );
}

#[test]
fn decimals_are_exact_and_rounded_half_up() {
    let s = schema(&[("d", "decimal(38,10)"), ("e", "decimal(5,2)")]);
    let b = ok(
        &[
            r#"{"d":1234567890123456789012345678.0123456789,"e":"1.005"}"#,
            r#"{"d":0.1,"e":-999.994}"#,
            r#"{"d":-1e-10,"e":1E2}"#,
        ],
        &s,
        &openx(),
    );
    let d = col(&b, "d").as_primitive::<Decimal128Type>();
    assert_eq!(
        d.values().to_vec(),
        [
            12_345_678_901_234_567_890_123_456_780_123_456_789,
            1_000_000_000,
            -1
        ]
    );
    let e = col(&b, "e").as_primitive::<Decimal128Type>();
    assert_eq!(e.values().to_vec(), [101, -99_999, 10_000]);
    let out = run(&[r#"{"e":1000}"#, r#"{"e":"abc"}"#], &s, &openx());
    assert_eq!(out.failed.len(), 2);
    assert!(
        out.failed[0]
            .error_message
            .contains("does not fit decimal(5,2)")
    );
}

#[test]
fn bad_records_fail_alone_and_the_rest_is_written() {
    let s = schema(&[("id", "int"), ("name", "string"), ("tags", "array<string>")]);
    let recs = [
        r#"{"id":1,"name":"a"}"#,
        r#"{"id":2,"name":"b""#,
        r#"{"id":"abc"}"#,
        r#"{"id":3,"tags":["x","y"]}"#,
        r#"{"id":99999999999}"#,
        "   \n",
        "42",
        r#"[{"id":5}]"#,
        r#"{"id":1.5}"#,
        "{\"name\":\"raw\ttab\"}",
        r#"{"id":4} {"id":6,"tags":[1,{"bad":]}"#,
        r#"{"id":7,"tags":["z"]}{"id":8}"#,
        "{\"id\":9,\"name\":\"\u{e9}\"}",
    ];
    let mut bytes: Vec<&[u8]> = recs.iter().map(|r| r.as_bytes()).collect();
    let invalid_utf8: &[u8] = b"{\"id\":10,\"name\":\"\xff\"}";
    bytes.push(invalid_utf8);
    let out = convert_with(&bytes, &s, &openx(), &ConvertOptions { threads: 1 }).unwrap();
    let failed: Vec<(usize, &str)> = out
        .failed
        .iter()
        .map(|f| (f.index, f.error_code.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (1, PARSE_ERROR),
            (2, MALFORMED_DATA),
            (4, MALFORMED_DATA),
            (5, MALFORMED_DATA),
            (6, MALFORMED_DATA),
            (7, MALFORMED_DATA),
            (8, MALFORMED_DATA),
            (9, PARSE_ERROR),
            (10, PARSE_ERROR),
            (13, PARSE_ERROR),
        ],
        "{:#?}",
        out.failed
    );
    let msg = |i: usize| {
        &out.failed
            .iter()
            .find(|f| f.index == i)
            .unwrap()
            .error_message
    };
    assert!(
        msg(1).starts_with("Encountered malformed JSON."),
        "{}",
        msg(1)
    );
    assert_eq!(
        msg(2),
        "Data does not match the schema. For input string: \"abc\" (column 'id')"
    );
    assert!(msg(4).contains("out of range of int"), "{}", msg(4));
    assert_eq!(msg(5), "The record was empty or contained only whitespace.");
    assert!(msg(6).contains("primitive at the top level"));
    assert!(msg(9).contains("CTRL-CHAR"), "{}", msg(9));
    assert_eq!(out.rows, 5);
    let b = read(&out.file);
    assert_eq!(
        b.column(0)
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(1), Some(3), Some(7), Some(8), Some(9)]
    );
    assert_eq!(strings(b.column(1).as_ref())[4], Some("é".into()));
}

#[test]
fn openx_is_lenient_and_hive_is_strict() {
    let s = schema(&[
        ("n", "int"),
        ("s", "string"),
        ("l", "array<string>"),
        ("st", "struct<a:int>"),
        ("b", "boolean"),
        ("f", "double"),
    ]);
    let rec = r#"{"n":"42","s":{"x":[1, 2]},"l":"one","st":"scalar","b":"TRUE","f":"2.5"}"#;
    let b = ok(
        &[rec, r#"{"s":12.50,"b":false}"#, r#"{"s":true}"#],
        &s,
        &openx(),
    );
    assert_eq!(
        col(&b, "n")
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(42), None, None]
    );
    assert_eq!(
        strings(col(&b, "s")),
        [
            Some(r#"{"x":[1, 2]}"#.into()),
            Some("12.50".into()),
            Some("true".into())
        ]
    );
    assert_eq!(
        strings(col(&b, "l").as_list::<i32>().value(0).as_ref()),
        [Some("one".into())]
    );
    assert!(col(&b, "st").is_null(0));
    assert!(col(&b, "b").as_boolean().value(0));
    assert_eq!(col(&b, "f").as_primitive::<Float64Type>().value(0), 2.5);

    // Hive: each of these fails the record; numbers and booleans still fill string columns.
    for (rec, what) in [
        (r#"{"n":"42"}"#, "cannot be read as int"),
        (r#"{"s":{"x":1}}"#, "incorrect format"),
        (r#"{"l":"one"}"#, "Start of Array expected"),
        (r#"{"st":"scalar"}"#, "Start of Object expected"),
        (r#"{"b":"true"}"#, "cannot be read as boolean"),
    ] {
        let out = run(&[rec], &s, &hive(&[]));
        assert_eq!(out.failed.len(), 1, "{rec}");
        assert_eq!(out.failed[0].error_code, MALFORMED_DATA);
        assert!(
            out.failed[0].error_message.contains(what),
            "{rec}: {:?}",
            out.failed
        );
    }
    let b = ok(&[r#"{"s":12.50}"#, r#"{"s":false}"#], &s, &hive(&[]));
    assert_eq!(
        strings(col(&b, "s")),
        [Some("12.50".into()), Some("false".into())]
    );
}

#[test]
fn maps_with_typed_keys() {
    let s = schema(&[("m", "map<int,array<string>>")]);
    let b = ok(&[r#"{"m":{"1":["a"],"20":[]}}"#], &s, &openx());
    let m = col(&b, "m").as_map();
    assert_eq!(
        m.value(0)
            .column(0)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec(),
        [1, 20]
    );
    let out = run(&[r#"{"m":{"x":[]}}"#], &s, &openx());
    assert_eq!(out.failed.len(), 1);
}

#[test]
fn non_nullable_columns_refuse_nulls() {
    let s: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "st",
            DataType::Struct(vec![Field::new("x", DataType::Int32, false)].into()),
            true,
        ),
    ]));
    let out = run(
        &[
            r#"{"id":1,"st":null}"#,
            r#"{"st":{"x":1}}"#,
            r#"{"id":2,"st":{}}"#,
            r#"{"id":3,"st":{"x":3}}"#,
        ],
        &s,
        &openx(),
    );
    assert_eq!(
        out.failed.iter().map(|f| f.index).collect::<Vec<_>>(),
        [1, 2]
    );
    let b = read(&out.file);
    assert_eq!(i64s(b.column(0).as_ref()), [Some(1), Some(3)]);
    assert!(b.column(1).is_null(0));
}

#[test]
fn concatenated_objects_are_rows_of_one_record() {
    let s = schema(&[("a", "int")]);
    let out = run(
        &["{\"a\":1}{\"a\":2}\n{\"a\":3}\n", r#"{"a":4}"#],
        &s,
        &openx(),
    );
    assert!(out.failed.is_empty());
    assert_eq!(out.rows, 4);
    let b = read(&out.file);
    assert_eq!(
        b.column(0).as_primitive::<Int32Type>().values().to_vec(),
        [1, 2, 3, 4]
    );
}

#[test]
fn no_rows_no_file() {
    let s = schema(&[("a", "int")]);
    let out = run(&["nope", ""], &s, &openx());
    assert_eq!(out.rows, 0);
    assert!(out.file.is_empty());
    assert_eq!(out.failed.len(), 2);
    let out = run(&[], &s, &openx());
    assert!(out.file.is_empty() && out.failed.is_empty());
}

#[test]
fn unknown_keys_are_reported() {
    let s = schema(&[("a", "int")]);
    let out = run(
        &[r#"{"a":1,"B":2,"c":{"d":1}}"#, r#"{"b":3,"e":null}"#],
        &s,
        &openx(),
    );
    assert_eq!(out.unknown_keys, ["b", "c", "e"]);
}

/// A realistic batch: every thread count and chunking gives the same rows in the same order
/// and the same failures.
#[test]
fn threads_and_streaming_preserve_order() {
    let s = schema(&[
        ("id", "bigint"),
        ("ts", "timestamp"),
        ("name", "string"),
        ("dev", "struct<os:string,v:int>"),
        ("tags", "array<string>"),
    ]);
    let records: Vec<String> = (0..20_000)
        .map(|i| {
            if i % 997 == 0 {
                format!("{{\"id\":\"bad{i}\"}}")
            } else {
                format!(
                    r#"{{"id":{i},"ts":"2024-03-01T10:15:{:02}.{:03}Z","name":"n{}","dev":{{"os":"os{}","v":{}}},"tags":[{}]}}"#,
                    i % 60,
                    i % 1000,
                    i * 7,
                    i % 5,
                    i % 3,
                    if i % 2 == 0 { "\"x\"" } else { "" }
                )
            }
        })
        .collect();
    let recs: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    let one = convert_with(&recs, &s, &openx(), &ConvertOptions { threads: 1 }).unwrap();
    let expected_failed: Vec<usize> = (0..20_000).filter(|i| i % 997 == 0).collect();
    assert_eq!(
        one.failed.iter().map(|f| f.index).collect::<Vec<_>>(),
        expected_failed
    );
    let base = read(&one.file);
    let ids: Vec<Option<i64>> = (0..20_000).filter(|i| i % 997 != 0).map(Some).collect();
    assert_eq!(i64s(base.column(0).as_ref()), ids);
    for threads in [2, 3] {
        let out = convert_with(&recs, &s, &openx(), &ConvertOptions { threads }).unwrap();
        assert_eq!(out.failed, one.failed);
        assert_eq!(read(&out.file), base, "threads={threads}");
    }
    // Streaming in uneven pieces.
    let mut conv = Converter::new(&s, &openx(), &ConvertOptions { threads: 2 }).unwrap();
    for piece in recs.chunks(3_333) {
        conv.push(piece).unwrap();
    }
    let out = conv.finish().unwrap();
    assert_eq!(out.failed, one.failed);
    assert_eq!(read(&out.file), base);
}

fn parquet_metadata(file: &[u8]) -> std::sync::Arc<parquet::file::metadata::ParquetMetaData> {
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(file))
        .unwrap()
        .metadata()
        .clone()
}

#[test]
fn parquet_serde_options_apply() {
    let s = schema(&[("id", "bigint"), ("name", "string")]);
    let records: Vec<String> = (0..50_000)
        .map(|i| format!(r#"{{"id":{i},"name":"name-{}"}}"#, i % 100))
        .collect();
    let recs: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    let with = |p: ParquetOptions| {
        let cfg = ConversionConfig::new("db", "t", InputSerde::default(), OutputFormat::Parquet(p));
        let out = convert_with(&recs, &s, &cfg, &ConvertOptions { threads: 1 }).unwrap();
        assert_eq!(out.rows, 50_000);
        assert_eq!(read(&out.file).num_rows(), 50_000);
        parquet_metadata(&out.file)
    };
    use parquet::basic::{Compression as C, Encoding};
    let md = with(ParquetOptions::default());
    assert_eq!(md.num_row_groups(), 1);
    let col = md.row_group(0).column(1);
    assert_eq!(col.compression(), C::SNAPPY);
    assert!(
        col.dictionary_page_offset().is_some(),
        "dictionary on by default"
    );
    assert!(col.statistics().is_some(), "row group statistics");
    let md = with(ParquetOptions {
        compression: ParquetCompression::Gzip,
        enable_dictionary: false,
        ..Default::default()
    });
    let col = md.row_group(0).column(1);
    assert!(matches!(col.compression(), C::GZIP(_)));
    assert!(col.dictionary_page_offset().is_none());
    let md = with(ParquetOptions {
        compression: ParquetCompression::Zstd,
        writer_version: ParquetWriterVersion::V2,
        enable_dictionary: false,
        ..Default::default()
    });
    let col = md.row_group(0).column(0);
    assert!(matches!(col.compression(), C::ZSTD(_)));
    assert!(
        col.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED),
        "V2 uses delta encodings"
    );
    // Row groups are cut (between chunks of a few MiB of JSON) once BlockSizeBytes is reached.
    let many: Vec<String> = (0..400_000)
        .map(|i| format!(r#"{{"id":{i},"name":"n{}"}}"#, i % 1000))
        .collect();
    let recs: Vec<&[u8]> = many.iter().map(|r| r.as_bytes()).collect();
    let cfg = ConversionConfig::new(
        "db",
        "t",
        InputSerde::default(),
        OutputFormat::Parquet(ParquetOptions {
            compression: ParquetCompression::Uncompressed,
            block_size_bytes: 64 * 1024,
            ..Default::default()
        }),
    );
    let out = convert_with(&recs, &s, &cfg, &ConvertOptions { threads: 1 }).unwrap();
    let md = parquet_metadata(&out.file);
    assert!(
        md.num_row_groups() > 1,
        "row groups are cut at BlockSizeBytes"
    );
    assert_eq!(md.row_group(0).column(0).compression(), C::UNCOMPRESSED);
    let total: i64 = md.row_groups().iter().map(|rg| rg.num_rows()).sum();
    assert_eq!(total, 400_000);
}

#[test]
fn timestamps_are_parquet_timestamps() {
    let s = schema(&[("ts", "timestamp"), ("d", "date")]);
    let out = run(
        &[r#"{"ts":"2024-03-01T10:15:30Z","d":"2024-03-01"}"#],
        &s,
        &openx(),
    );
    let md = parquet_metadata(&out.file);
    let descr = md.file_metadata().schema_descr();
    let ts = descr.column(0);
    assert_eq!(ts.physical_type(), parquet::basic::Type::INT64);
    assert!(matches!(
        ts.logical_type_ref(),
        Some(parquet::basic::LogicalType::Timestamp(t))
            if matches!(t.unit, parquet::basic::TimeUnit::MILLIS)
    ));
    assert!(matches!(
        descr.column(1).logical_type_ref(),
        Some(parquet::basic::LogicalType::Date)
    ));
}

#[cfg(feature = "orc")]
#[test]
fn orc_output() {
    let s = schema(&[
        ("id", "bigint"),
        ("name", "string"),
        ("ts", "timestamp"),
        ("ok", "boolean"),
    ]);
    for compression in [
        OrcCompression::Snappy,
        OrcCompression::Zlib,
        OrcCompression::None,
    ] {
        let cfg = ConversionConfig::new(
            "db",
            "t",
            InputSerde::default(),
            OutputFormat::Orc(OrcOptions {
                compression,
                ..Default::default()
            }),
        );
        assert_eq!(cfg.extension(), ".orc");
        let out = run(
            &[
                r#"{"id":1,"name":"a","ts":"2024-03-01T10:15:30Z","ok":true}"#,
                r#"{"id":"x"}"#,
                r#"{"id":2}"#,
            ],
            &s,
            &cfg,
        );
        assert_eq!(out.rows, 2);
        assert_eq!(out.failed.len(), 1);
        assert_eq!(&out.file[..3], b"ORC");
        let reader = orc_rust::ArrowReaderBuilder::try_new(bytes::Bytes::from(out.file))
            .unwrap()
            .build();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let b = &batches[0];
        assert_eq!(i64s(b.column(0).as_ref()), [Some(1), Some(2)]);
        assert_eq!(strings(b.column(1).as_ref()), [Some("a".into()), None]);
    }
    // No Hive type maps to an unsigned integer; the writer refuses one before writing anything.
    let bad: SchemaRef = Arc::new(Schema::new(vec![Field::new("u", DataType::UInt64, true)]));
    let cfg = ConversionConfig::new(
        "db",
        "t",
        InputSerde::default(),
        OutputFormat::Orc(OrcOptions::default()),
    );
    let err = convert(&[b"{}"], &bad, &cfg).unwrap_err();
    assert!(matches!(err, ConvertError::UnsupportedSchema(_)), "{err}");
}

/// The ORC file of a batch holds exactly what the Parquet file of the same batch holds, for
/// every Hive type and every place a null can be: a null struct (whose fields ORC omits), a null
/// or empty list or map, null elements, map values and struct fields, nesting three deep, across
/// several stripes. Read back with orc-rust's reader, cast to the table's types (the reader
/// names list items and map entries its own way) and compared array by array.
#[cfg(feature = "orc")]
#[test]
fn orc_holds_what_parquet_holds_for_every_type_and_null_shape() {
    let mut columns = EVERY_HIVE_TYPE.to_vec();
    columns.extend([
        ("wide", "decimal(38,6)"),
        ("ll", "array<array<string>>"),
        (
            "nest",
            "struct<t:timestamp,d:decimal(5,1),m:map<string,array<int>>>",
        ),
    ]);
    let s = schema(&columns);
    let shapes = [
        r#"{"s":"héllo","i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"f32":1.5,"f64":-2.25e-3,"b":true,"ts":"2024-03-01T10:15:30.123Z","d":"2024-03-01","dec":12345678.91,"wide":-12345678901234567890123456789012.123456,"l":[1,2,3],"ll":[["a"],[],null,["b",null]],"m":{"x":1,"y":null},"st":{"a":7,"b":[{"c":"deep"},{"c":null},null]},"nest":{"t":"1965-06-01T00:00:00.250Z","d":-0.5,"m":{"k":[1,null],"n":null}},"bin":"raw"}"#,
        r#"{"b":null}"#,
        r#"{"s":null,"l":null,"ll":null,"m":null,"st":null,"nest":null,"dec":null}"#,
        r#"{"l":[],"ll":[[]],"m":{},"st":{"a":null,"b":[]},"nest":{"t":null,"d":null,"m":{}}}"#,
        r#"{"l":[null,null],"st":{"b":null},"nest":{"m":{"z":[]}},"wide":0.000001,"dec":-0.01}"#,
    ];
    // 3,000 rows cycle through the shapes (with distinct values), so that the null patterns
    // cross the writer's 1,024-row batches and its stripes.
    let records: Vec<String> = (0..3000)
        .map(|i| {
            let shape = shapes[i % shapes.len()];
            if i % shapes.len() == 0 {
                shape.replacen(r#""i32":-2147483648"#, &format!(r#""i32":{i}"#), 1)
            } else {
                format!(r#"{{"i64":{i},{}"#, &shape[1..])
            }
        })
        .collect();
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let parquet = read(&run(&records, &s, &openx()).file);
    assert_eq!(parquet.num_rows(), 3000);
    for stripe_size_bytes in [64 << 20, 16 << 10] {
        let cfg = ConversionConfig::new(
            "db",
            "t",
            InputSerde::default(),
            OutputFormat::Orc(OrcOptions {
                stripe_size_bytes,
                ..Default::default()
            }),
        );
        let out = run(&records, &s, &cfg);
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        let file = bytes::Bytes::from(out.file);
        let reader = orc_rust::ArrowReaderBuilder::try_new(file).unwrap();
        let stripes = reader.file_metadata().stripe_metadatas().len();
        assert!(
            (stripe_size_bytes > 1 << 20) == (stripes == 1),
            "{stripes} stripes of {stripe_size_bytes} bytes"
        );
        assert_orc_statistics(reader.file_metadata(), &parquet);
        let batches: Vec<RecordBatch> = reader.build().map(Result::unwrap).collect();
        let orc = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(orc.num_rows(), 3000);
        for (i, field) in s.fields().iter().enumerate() {
            let got = arrow_cast::cast(orc.column(i), field.data_type()).unwrap();
            let want = parquet.column(i);
            assert_eq!(
                got.to_data(),
                want.to_data(),
                "column {} ({} stripes)",
                field.name(),
                stripes
            );
        }
    }
}

/// A string minimum or maximum longer than 1024 bytes is left out of the statistics (the length
/// total stays), as the Java and C++ writers do.
#[cfg(feature = "orc")]
#[test]
fn orc_string_bounds_longer_than_1024_bytes_are_left_out() {
    use orc_rust::statistics::TypeStatistics as T;
    let s = schema(&[("s", "string")]);
    let long = "z".repeat(1025);
    let records = [format!(r#"{{"s":"{long}"}}"#), r#"{"s":"a"}"#.to_owned()];
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let cfg = ConversionConfig::new(
        "db",
        "t",
        InputSerde::default(),
        OutputFormat::Orc(OrcOptions::default()),
    );
    let file = bytes::Bytes::from(run(&records, &s, &cfg).file);
    let reader = orc_rust::ArrowReaderBuilder::try_new(file).unwrap();
    let stats = &reader.file_metadata().column_file_statistics()[1];
    let Some(T::String {
        is_exact_min,
        is_exact_max,
        sum,
        ..
    }) = stats.type_statistics()
    else {
        panic!("{stats:?}")
    };
    assert!(!is_exact_min && !is_exact_max, "{stats:?}");
    assert_eq!(*sum, 1026);
}

/// The number of ORC columns `data_type` takes: itself and, in pre-order, its children's.
#[cfg(feature = "orc")]
fn orc_columns(data_type: &DataType) -> usize {
    1 + match data_type {
        DataType::Struct(fields) => fields.iter().map(|f| orc_columns(f.data_type())).sum(),
        DataType::List(item) => orc_columns(item.data_type()),
        DataType::Map(entries, _) => orc_columns(entries.data_type()) - 1,
        _ => 0,
    }
}

/// `text` (an ORC decimal statistic) as an unscaled integer at `scale`.
#[cfg(feature = "orc")]
fn unscaled(text: &str, scale: i8) -> i128 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    assert_eq!(fraction.len(), scale.max(0) as usize, "{text}");
    format!("{whole}{fraction}").parse().unwrap()
}

/// Checks the statistics of an ORC file, for each stripe and for the whole file, against
/// `table`, the rows the file holds: the root's row count, and for each top-level column its
/// count of present values, whether one was null, and its minimum, maximum and sum (or true
/// count, or total length) as the ORC type has them.
#[cfg(feature = "orc")]
fn assert_orc_statistics(metadata: &orc_rust::reader::metadata::FileMetadata, table: &RecordBatch) {
    use orc_rust::statistics::TypeStatistics as T;
    let mut ranges = Vec::new();
    let mut offset = 0;
    for stripe in metadata.stripe_metadatas() {
        let rows = stripe.number_of_rows() as usize;
        ranges.push((offset, rows, stripe.column_statistics()));
        offset += rows;
    }
    assert_eq!(offset, table.num_rows());
    ranges.push((0, offset, metadata.column_file_statistics()));
    for (offset, rows, stats) in ranges {
        assert_eq!(
            stats.len(),
            orc_columns(&DataType::Struct(table.schema().fields().clone()))
        );
        assert_eq!(
            stats[0].number_of_values(),
            rows as u64,
            "the root counts the rows"
        );
        let mut id = 1;
        for (column, field) in table.columns().iter().zip(table.schema().fields()) {
            let column = column.slice(offset, rows);
            let (name, s) = (field.name(), &stats[id]);
            id += orc_columns(field.data_type());
            let present = rows - column.null_count();
            assert_eq!(s.number_of_values(), present as u64, "{name}");
            assert_eq!(s.has_null(), column.null_count() > 0, "{name}");
            if present == 0 {
                continue;
            }
            let got = s.type_statistics();
            match column.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    let values = arrow_cast::cast(&column, &DataType::Int64).unwrap();
                    let values: Vec<i64> = values
                        .as_primitive::<Int64Type>()
                        .iter()
                        .flatten()
                        .collect();
                    let sum = values.iter().try_fold(0i64, |a, v| a.checked_add(*v));
                    let want = (
                        *values.iter().min().unwrap(),
                        *values.iter().max().unwrap(),
                        sum,
                    );
                    let Some(T::Integer { min, max, sum }) = got else {
                        panic!("{name}: {got:?}")
                    };
                    assert_eq!((*min, *max, *sum), want, "{name}");
                }
                DataType::Float32 | DataType::Float64 => {
                    let values = arrow_cast::cast(&column, &DataType::Float64).unwrap();
                    let values: Vec<f64> = values
                        .as_primitive::<Float64Type>()
                        .iter()
                        .flatten()
                        .collect();
                    let Some(T::Double { min, max, sum }) = got else {
                        panic!("{name}: {got:?}")
                    };
                    assert_eq!(
                        *min,
                        values.iter().copied().fold(f64::INFINITY, f64::min),
                        "{name}"
                    );
                    assert_eq!(
                        *max,
                        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        "{name}"
                    );
                    let want: f64 = values.iter().sum();
                    assert!(
                        (sum.unwrap() - want).abs() <= want.abs() * 1e-12,
                        "{name}: {sum:?} {want}"
                    );
                }
                DataType::Utf8 => {
                    let values: Vec<&str> = column.as_string::<i32>().iter().flatten().collect();
                    let Some(T::String {
                        lower_bound,
                        upper_bound,
                        sum,
                        is_exact_min,
                        is_exact_max,
                    }) = got
                    else {
                        panic!("{name}: {got:?}")
                    };
                    assert!(*is_exact_min && *is_exact_max, "{name}");
                    assert_eq!(
                        lower_bound.as_str(),
                        *values.iter().min().unwrap(),
                        "{name}"
                    );
                    assert_eq!(
                        upper_bound.as_str(),
                        *values.iter().max().unwrap(),
                        "{name}"
                    );
                    assert_eq!(
                        *sum,
                        values.iter().map(|v| v.len() as i64).sum::<i64>(),
                        "{name}"
                    );
                }
                DataType::Binary => {
                    let Some(T::Binary { sum }) = got else {
                        panic!("{name}: {got:?}")
                    };
                    let want: usize = column
                        .as_binary::<i32>()
                        .iter()
                        .flatten()
                        .map(<[u8]>::len)
                        .sum();
                    assert_eq!(*sum, want as i64, "{name}");
                }
                DataType::Boolean => {
                    let Some(T::Bucket { true_count }) = got else {
                        panic!("{name}: {got:?}")
                    };
                    assert_eq!(
                        *true_count,
                        column.as_boolean().true_count() as u64,
                        "{name}"
                    );
                }
                DataType::Date32 => {
                    let values: Vec<i32> = column
                        .as_primitive::<Date32Type>()
                        .iter()
                        .flatten()
                        .collect();
                    let Some(T::Date { min, max }) = got else {
                        panic!("{name}: {got:?}")
                    };
                    assert_eq!(
                        (*min, *max),
                        (*values.iter().min().unwrap(), *values.iter().max().unwrap()),
                        "{name}"
                    );
                }
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    let values: Vec<i64> = column
                        .as_primitive::<TimestampMillisecondType>()
                        .iter()
                        .flatten()
                        .collect();
                    let Some(T::Timestamp {
                        min_utc, max_utc, ..
                    }) = got
                    else {
                        panic!("{name}: {got:?}")
                    };
                    assert_eq!(
                        (*min_utc, *max_utc),
                        (*values.iter().min().unwrap(), *values.iter().max().unwrap()),
                        "{name}"
                    );
                }
                DataType::Decimal128(_, scale) => {
                    let values: Vec<i128> = column
                        .as_primitive::<Decimal128Type>()
                        .iter()
                        .flatten()
                        .collect();
                    let Some(T::Decimal { min, max, sum }) = got else {
                        panic!("{name}: {got:?}")
                    };
                    assert_eq!(
                        unscaled(min, *scale),
                        *values.iter().min().unwrap(),
                        "{name}"
                    );
                    assert_eq!(
                        unscaled(max, *scale),
                        *values.iter().max().unwrap(),
                        "{name}"
                    );
                    let want = values
                        .iter()
                        .try_fold(0i128, |a, v| a.checked_add(*v))
                        .filter(|s| s.unsigned_abs() < 10u128.pow(38));
                    match want {
                        Some(want) => assert_eq!(unscaled(sum, *scale), want, "{name}"),
                        None => assert_eq!(sum, "", "{name}: an overflowing sum is left out"),
                    }
                }
                DataType::Struct(_) | DataType::List(_) | DataType::Map(_, _) => {
                    assert!(got.is_none(), "{name}: {got:?}")
                }
                other => panic!("{name}: no statistics check for {other}"),
            }
        }
    }
}

#[test]
fn unsupported_schemas_fail_the_batch() {
    let s: SchemaRef = Arc::new(Schema::new(vec![Field::new("u", DataType::UInt64, true)]));
    let err = convert(&[b"{}"], &s, &openx()).unwrap_err();
    assert_eq!(err.error_code(), "DataFormatConversion.InvalidSchema");
    let empty: SchemaRef = Arc::new(Schema::empty());
    assert!(convert(&[b"{}"], &empty, &openx()).is_err());
}

#[test]
fn infer_and_merge_schema() {
    let recs: [&[u8]; 5] = [
        br#"{"ID":1,"price":2,"name":"a","ts":"2024-03-01T10:15:30Z","dev":{"os":"ios"},"tags":["x"],"n":null}"#,
        br#"{"id":2,"price":2.5,"name":3,"ts":"2024-03-01 10:15:30","dev":{"ver":17},"tags":[],"empty":{}}"#,
        b"not json",
        br#"{"id":3}{"late":true}"#,
        br#"[1,2]"#,
    ];
    let inferred = infer_schema(&recs).unwrap();
    let expected = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new(
            "dev",
            DataType::Struct(
                vec![
                    Field::new("os", DataType::Utf8, true),
                    Field::new("ver", DataType::Int64, true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ),
        Field::new("n", DataType::Utf8, true),
        Field::new("empty", DataType::Utf8, true),
        Field::new("late", DataType::Boolean, true),
    ]);
    assert_eq!(inferred, expected);
    // The inferred schema converts the same records.
    let out = convert(&recs, &Arc::new(inferred.clone()), &openx()).unwrap();
    assert_eq!(out.rows, 4);
    assert_eq!(out.failed.len(), 2);
    assert!(infer_schema(&[b"1", b"x"]).is_err());

    let current = Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    assert!(merge_schema(&current, &current).is_none());
    let merged = merge_schema(&current, &inferred).unwrap();
    let names: Vec<&str> = merged.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "id", "name", "price", "ts", "dev", "tags", "n", "empty", "late"
        ]
    );
    assert_eq!(
        merged.field(0).data_type(),
        &DataType::Int32,
        "existing columns keep types"
    );
    assert!(merged.fields().iter().all(|f| f.is_nullable()));
    let upper = Schema::new(vec![Field::new("NAME", DataType::Int64, true)]);
    assert!(merge_schema(&current, &upper).is_none());
}

#[test]
fn configuration_parses_and_validates() {
    let cfg = ConversionConfig::from_json(&json!({
        "SchemaConfiguration": {"DatabaseName": "db", "TableName": "t", "RoleARN": "arn:aws:iam::1:role/r", "VersionId": "LATEST"},
        "InputFormatConfiguration": {"Deserializer": {"HiveJsonSerDe": {"TimestampFormats": ["millis", "yyyy-MM-dd"]}}},
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {
            "BlockSizeBytes": 134217728, "PageSizeBytes": 65536, "Compression": "GZIP",
            "EnableDictionaryCompression": false, "MaxPaddingBytes": 10, "WriterVersion": "V2"}}}
    }))
    .unwrap();
    assert!(cfg.enabled);
    assert_eq!((cfg.database.as_str(), cfg.table.as_str()), ("db", "t"));
    assert_eq!(cfg.version_id, None);
    assert_eq!(
        cfg.input,
        InputSerde::Hive {
            timestamp_formats: vec!["millis".into(), "yyyy-MM-dd".into()]
        }
    );
    assert_eq!(
        cfg.output,
        OutputFormat::Parquet(ParquetOptions {
            block_size_bytes: 128 << 20,
            page_size_bytes: 64 << 10,
            compression: ParquetCompression::Gzip,
            enable_dictionary: false,
            max_padding_bytes: 10,
            writer_version: ParquetWriterVersion::V2,
        })
    );
    assert_eq!(cfg.extension(), ".parquet");

    let cfg = ConversionConfig::from_json(&json!({
        "SchemaConfiguration": {"DatabaseName": "db", "TableName": "t", "VersionId": "3"},
        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
        "OutputFormatConfiguration": {"Serializer": {"OrcSerDe": {"Compression": "ZLIB", "BloomFilterColumns": ["A"]}}}
    }))
    .unwrap();
    assert_eq!(cfg.version_id.as_deref(), Some("3"));
    assert_eq!(cfg.input, InputSerde::default());
    let OutputFormat::Orc(orc) = &cfg.output else {
        panic!("orc")
    };
    assert_eq!(orc.compression, OrcCompression::Zlib);
    assert_eq!(orc.bloom_filter_columns, ["a"]);
    assert_eq!(orc.stripe_size_bytes, 64 << 20);

    // Disabled: parts may be missing.
    let cfg = ConversionConfig::from_json(&json!({"Enabled": false})).unwrap();
    assert!(!cfg.enabled);

    let good_in = json!({"Deserializer": {"OpenXJsonSerDe": {}}});
    let good_out = json!({"Serializer": {"ParquetSerDe": {}}});
    let good_schema = json!({"DatabaseName": "db", "TableName": "t"});
    for (bad, why) in [
        (
            json!({"InputFormatConfiguration": good_in, "OutputFormatConfiguration": good_out}),
            "SchemaConfiguration",
        ),
        (
            json!({"SchemaConfiguration": {"DatabaseName": "db"}, "InputFormatConfiguration": good_in, "OutputFormatConfiguration": good_out}),
            "TableName",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}, "HiveJsonSerDe": {}}}, "OutputFormatConfiguration": good_out}),
            "Only one",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": {"Deserializer": {}}, "OutputFormatConfiguration": good_out}),
            "either",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": good_in, "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}, "OrcSerDe": {}}}}),
            "Only one",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": good_in, "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"BlockSizeBytes": 1024}}}}),
            "greater than or equal to 67108864",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": good_in, "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "LZO"}}}}),
            "enum value set",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": good_in, "OutputFormatConfiguration": {"Serializer": {"OrcSerDe": {"PaddingTolerance": 2}}}}),
            "between 0 and 1",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": {"Deserializer": {"HiveJsonSerDe": {"TimestampFormats": ["yyyy-ww"]}}}, "OutputFormatConfiguration": good_out}),
            "invalid format",
        ),
        (
            json!({"SchemaConfiguration": good_schema, "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {"CaseInsensitive": "yes"}}}, "OutputFormatConfiguration": good_out}),
            "boolean",
        ),
    ] {
        let err = ConversionConfig::from_json(&bad).unwrap_err();
        assert!(matches!(err, ConvertError::InvalidConfig(_)));
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
}

/// Keys in shifting orders, omitted, in varying case, with unknown keys between them: every
/// value lands in its column (serde_json is the oracle).
#[test]
fn shifting_key_orders_and_omitted_fields() {
    let s = schema(&[
        ("a", "bigint"),
        ("b", "string"),
        ("c", "double"),
        ("d", "struct<x:int,y:string>"),
        ("e", "boolean"),
    ]);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut records = Vec::new();
    for i in 0..3000 {
        let mut fields: Vec<(String, serde_json::Value)> = vec![
            ("a".into(), json!(i)),
            ("b".into(), json!(format!("s{i}"))),
            ("c".into(), json!(i as f64 / 4.0)),
            ("d".into(), json!({"y": format!("y{i}"), "x": i % 100})),
            ("e".into(), json!(i % 2 == 0)),
            ("zz".into(), json!([1, {"q": null}])),
        ];
        // Shuffle, drop some, change case of some.
        for k in (1..fields.len()).rev() {
            let j = rnd(k as u64 + 1) as usize;
            fields.swap(k, j);
        }
        fields.retain(|_| rnd(5) != 0);
        let text = format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| {
                    let k = if rnd(3) == 0 {
                        k.to_uppercase()
                    } else {
                        k.clone()
                    };
                    format!("{}:{}", json!(k), v)
                })
                .collect::<Vec<_>>()
                .join(",")
        );
        records.push(text);
    }
    let recs: Vec<&str> = records.iter().map(String::as_str).collect();
    let b = ok(&recs, &s, &openx());
    for (row, text) in records.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let get = |k: &str| {
            v.as_object()
                .unwrap()
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let a = col(&b, "a").as_primitive::<Int64Type>();
        assert_eq!(
            a.is_valid(row).then(|| a.value(row)),
            get("a").and_then(|v| v.as_i64())
        );
        let bs = col(&b, "b").as_string::<i32>();
        assert_eq!(
            bs.is_valid(row).then(|| bs.value(row).to_owned()),
            get("b").map(|v| v.as_str().unwrap().to_owned())
        );
        let c = col(&b, "c").as_primitive::<Float64Type>();
        assert_eq!(
            c.is_valid(row).then(|| c.value(row)),
            get("c").and_then(|v| v.as_f64())
        );
        let d = col(&b, "d").as_struct();
        let dx = d.column(0).as_primitive::<Int32Type>();
        assert_eq!(
            d.is_valid(row).then(|| dx.value(row) as i64),
            get("d").map(|v| v["x"].as_i64().unwrap())
        );
        let e = col(&b, "e").as_boolean();
        assert_eq!(
            e.is_valid(row).then(|| e.value(row)),
            get("e").and_then(|v| v.as_bool())
        );
    }
}

/// Arrow lets a null list keep a non-empty range of elements (the converter never builds one,
/// other Arrow producers do); ORC must not store those elements.
#[cfg(feature = "orc")]
#[test]
fn orc_writer_skips_the_elements_of_null_lists() {
    use arrow_array::{Int32Array, ListArray};
    use arrow_buffer::{NullBuffer, OffsetBuffer};
    let item = Arc::new(Field::new("item", DataType::Int32, true));
    let list = ListArray::new(
        item.clone(),
        OffsetBuffer::new(vec![0, 2, 5, 6].into()),
        Arc::new(Int32Array::from(vec![1, 2, 99, 98, 97, 3])),
        Some(NullBuffer::from(vec![true, false, true])),
    );
    let schema = Arc::new(Schema::new(vec![Field::new(
        "l",
        DataType::List(item),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(list)]).unwrap();
    let mut file = Vec::new();
    let mut writer = orc_rust::ArrowWriterBuilder::new(&mut file, schema)
        .try_build()
        .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let batches: Vec<RecordBatch> = orc_rust::ArrowReaderBuilder::try_new(bytes::Bytes::from(file))
        .unwrap()
        .build()
        .map(Result::unwrap)
        .collect();
    let got = batches[0].column(0).as_list::<i32>();
    assert_eq!(got.len(), 3);
    assert!(got.is_null(1));
    let values = |i: usize| -> Vec<Option<i32>> {
        got.value(i).as_primitive::<Int32Type>().iter().collect()
    };
    assert_eq!(values(0), [Some(1), Some(2)]);
    assert_eq!(values(2), [Some(3)]);
}

/// ORC cannot store an instant within the last second before 1970 with a fraction of a
/// millisecond or more (ORC-763): such a record fails alone, and the rest of the batch, the
/// instants around it included, lands. Parquet stores them all.
#[cfg(feature = "orc")]
#[test]
fn orc_refuses_only_the_instants_it_cannot_store() {
    let s = schema(&[("id", "int"), ("ts", "timestamp")]);
    let records = [
        r#"{"id":1,"ts":"1969-12-31T23:59:58.500Z"}"#,
        r#"{"id":2,"ts":"1969-12-31T23:59:59.500Z"}"#,
        r#"{"id":3,"ts":"1969-12-31T23:59:59Z"}"#,
        r#"{"id":4,"ts":"1969-12-31 23:59:59.999"}"#,
        r#"{"id":5,"ts":"1970-01-01T00:00:00.001Z"}"#,
    ];
    let orc = ConversionConfig::new(
        "db",
        "t",
        InputSerde::default(),
        OutputFormat::Orc(OrcOptions::default()),
    );
    let out = run(&records, &s, &orc);
    assert_eq!(out.rows, 3);
    let failed: Vec<usize> = out.failed.iter().map(|f| f.index).collect();
    assert_eq!(failed, [1, 3]);
    assert!(
        out.failed[0].error_message.contains("ORC-763"),
        "{:?}",
        out.failed[0]
    );
    let batches: Vec<RecordBatch> =
        orc_rust::ArrowReaderBuilder::try_new(bytes::Bytes::from(out.file))
            .unwrap()
            .build()
            .map(Result::unwrap)
            .collect();
    let ts = arrow_cast::cast(
        batches[0].column(1),
        &DataType::Timestamp(TimeUnit::Millisecond, None),
    )
    .unwrap();
    assert_eq!(ts_ms(ts.as_ref()), [Some(-1500), Some(-1000), Some(1)]);
    let parquet = run(&records, &s, &openx());
    assert_eq!((parquet.rows, parquet.failed.len()), (5, 0));
}
