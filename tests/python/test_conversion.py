"""JSON -> Parquet conversion through Firehose's DataFormatConversionConfiguration, with the
schema from the Glue-compatible catalog, read back with pyarrow value by value."""

import base64
import datetime as dt
import decimal
import io
import json
import time

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import unique_name

ROLE = "arn:aws:iam::123456789012:role/firehose"


def glue_client(server):
    return server.aws("glue")


def ensure_database(glue, db):
    """Creates database `db` unless it exists (tests share one server)."""
    try:
        glue.create_database(DatabaseInput={"Name": db})
    except glue.exceptions.AlreadyExistsException:
        pass


def conversion(db, table, serde=None, parquet=None):
    return {
        "SchemaConfiguration": {"DatabaseName": db, "TableName": table, "RoleARN": ROLE},
        "InputFormatConfiguration": {"Deserializer": serde or {"OpenXJsonSerDe": {}}},
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": parquet or {}}},
    }


def create_stream(firehose, name, bucket, prefix, conv):
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": prefix,
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "DataFormatConversionConfiguration": conv,
        },
    )


def put(firehose, stream, records):
    out = firehose.put_record_batch(
        DeliveryStreamName=stream, Records=[{"Data": r} for r in records]
    )
    assert out["FailedPutCount"] == 0, out


def files(root, suffix):
    return sorted(p for p in root.rglob(f"*{suffix}") if p.is_file() and "#" not in p.name)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


COLUMNS = [
    ("id", "int"),
    ("name", "string"),
    ("score", "double"),
    ("ratio", "float"),
    ("big", "bigint"),
    ("small", "smallint"),
    ("tiny", "tinyint"),
    ("ok", "boolean"),
    ("ts", "timestamp"),
    ("day", "date"),
    ("price", "decimal(10,2)"),
    ("tags", "array<string>"),
    ("attrs", "map<string,int>"),
    ("geo", "struct<lat:double,lon:double>"),
]


def test_parquet_with_every_type_bad_records_and_partitions(lakehose, firehose):
    glue = glue_client(lakehose)
    db, table, stream, bucket = "analytics", unique_name("events").replace("-", "_"), unique_name("conv"), unique_name("lake")
    ensure_database(glue, db)
    glue.create_table(
        DatabaseName=db,
        TableInput={
            "Name": table,
            "TableType": "EXTERNAL_TABLE",
            "PartitionKeys": [{"Name": "year", "Type": "string"}],
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in COLUMNS],
                "Location": f"s3://{bucket}/events/",
            },
        },
    )
    create_stream(firehose, stream, bucket, "events/year=!{timestamp:yyyy}/", conversion(db, table))
    good = [
        {
            "id": 1, "Name": "Ann", "score": 1.5, "ratio": 0.25, "big": 9007199254740993, "small": -300,
            "tiny": 7, "ok": True, "ts": "2026-11-23T10:00:00.123Z", "day": "2026-11-23",
            "price": 12.34, "tags": ["a", "b"], "attrs": {"k": 1}, "geo": {"lat": 52.5, "lon": 13.4},
        },
        {"ID": 2, "NAME": "case-insensitive keys", "ok": False, "ts": 1795466540000},
        {"id": 3, "name": None, "tags": [], "geo": None, "price": -0.5},
    ]
    bad = [b'{"id": "not a number"}\n', b"this is not json\n"]
    records = [json.dumps(r).encode() + b"\n" for r in good[:2]] + bad + [json.dumps(good[2]).encode() + b"\n"]
    put(firehose, stream, records)

    root = lakehose.bucket_dir(bucket)
    parquet = wait_for(lambda: files(root / "events", ".parquet"))
    assert len(parquet) == 1, parquet
    year = dt.datetime.now(dt.timezone.utc).year
    rel = parquet[0].relative_to(root).as_posix()
    assert rel.startswith(f"events/year={year}/{stream}-1-"), rel
    got = pq.read_table(parquet[0])
    assert got.column_names == [n for n, _ in COLUMNS]
    rows = got.to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3], "bad records removed, order kept"
    first = rows[0]
    assert first["name"] == "Ann" and first["score"] == 1.5 and first["ratio"] == 0.25
    assert first["big"] == 9007199254740993 and first["small"] == -300 and first["tiny"] == 7
    assert first["ok"] is True
    assert first["ts"] == dt.datetime(2026, 11, 23, 10, 0, 0, 123000)
    assert first["day"] == dt.date(2026, 11, 23)
    assert first["price"] == decimal.Decimal("12.34")
    assert first["tags"] == ["a", "b"]
    assert dict(first["attrs"]) == {"k": 1}
    assert first["geo"] == {"lat": 52.5, "lon": 13.4}
    assert rows[1]["name"] == "case-insensitive keys" and rows[1]["ok"] is False
    assert rows[1]["ts"] == dt.datetime(2026, 11, 23, 20, 42, 20)
    assert rows[1]["score"] is None and rows[1]["tags"] is None, "missing fields are null"
    assert rows[2]["name"] is None and rows[2]["tags"] == [] and rows[2]["price"] == decimal.Decimal("-0.50")
    schema = {f.name: str(f.type) for f in got.schema}
    assert schema["ts"].startswith("timestamp[ms") and schema["price"] == "decimal128(10, 2)"

    errors = wait_for(lambda: files(root / "errors" / "format-conversion-failed", ""))
    docs = [json.loads(line) for p in errors for line in p.read_text().splitlines()]
    assert sorted(base64.b64decode(d["rawData"]) for d in docs) == sorted(bad)
    for d in docs:
        assert d["lastErrorCode"].startswith("DataFormatConversion.")
        assert d["lastErrorMessage"] and d["attemptsMade"] >= 1
        assert d["dataCatalogTable"]["databaseName"] == db
        assert d["dataCatalogTable"]["tableName"] == table

    parts = glue.get_partitions(DatabaseName=db, TableName=table)["Partitions"]
    assert [p["Values"] for p in parts] == [[str(year)]]
    assert parts[0]["StorageDescriptor"]["Location"] == f"s3://{bucket}/events/year={year}/"


def test_inferred_table_evolves_across_three_deliveries(lakehose, firehose):
    glue = glue_client(lakehose)
    db, table, stream, bucket = "inferred", unique_name("t").replace("-", "_"), unique_name("infer"), unique_name("lake")
    create_stream(firehose, stream, bucket, "data/", conversion(db, table))
    root = lakehose.bucket_dir(bucket)
    batches = [
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        [{"a": 3, "b": "z", "c": 1.5}],
        [{"a": 4, "d": {"e": True}}],
    ]
    for i, batch in enumerate(batches, start=1):
        put(firehose, stream, [json.dumps(r).encode() + b"\n" for r in batch])
        assert wait_for(lambda: len(files(root, ".parquet")) >= i), f"delivery {i} missing"
        t = glue.get_table(DatabaseName=db, Name=table)["Table"]
        assert t["VersionId"] == str(i - 1), t  # Glue numbers table versions from 0
    cols = [(c["Name"], c["Type"]) for c in t["StorageDescriptor"]["Columns"]]
    assert cols == [("a", "bigint"), ("b", "string"), ("c", "double"), ("d", "struct<e:boolean>")]
    versions = glue.get_table_versions(DatabaseName=db, TableName=table)["TableVersions"]
    assert sorted(v["VersionId"] for v in versions) == ["0", "1", "2"]
    # Old files stay readable as one table with the newest schema.
    import pyarrow as pa

    schema = pa.schema(
        [("a", pa.int64()), ("b", pa.string()), ("c", pa.float64()), ("d", pa.struct([("e", pa.bool_())]))]
    )
    rows = ds.dataset([str(p) for p in files(root, ".parquet")], schema=schema, format="parquet").to_table().to_pylist()
    assert sorted(rows, key=lambda r: r["a"]) == [
        {"a": 1, "b": "x", "c": None, "d": None},
        {"a": 2, "b": "y", "c": None, "d": None},
        {"a": 3, "b": "z", "c": 1.5, "d": None},
        {"a": 4, "b": None, "c": None, "d": {"e": True}},
    ]


def test_conversion_config_is_validated(lakehose, firehose):
    with pytest.raises(firehose.exceptions.InvalidArgumentException):
        firehose.create_delivery_stream(
            DeliveryStreamName=unique_name("badconv"),
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE,
                "BucketARN": "arn:aws:s3:::lake",
                "CompressionFormat": "GZIP",
                "DataFormatConversionConfiguration": conversion("db", "t"),
            },
        )
    with pytest.raises(firehose.exceptions.InvalidArgumentException):
        firehose.create_delivery_stream(
            DeliveryStreamName=unique_name("badconv"),
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE,
                "BucketARN": "arn:aws:s3:::lake",
                "DataFormatConversionConfiguration": conversion(
                    "db", "t", serde={"OpenXJsonSerDe": {}, "HiveJsonSerDe": {}}
                ),
            },
        )


def test_orc_holds_every_hive_type_like_parquet(lakehose, firehose):
    """The same records through an ORC stream and a Parquet stream into one table: pyarrow reads
    the same rows from both, and the ORC values are the ones put."""
    import pyarrow.orc as orc

    glue = glue_client(lakehose)
    db, table, bucket = "orcdb", unique_name("o").replace("-", "_"), unique_name("lake")
    ensure_database(glue, db)
    cols = COLUMNS + [
        ("nest", "struct<t:timestamp,d:decimal(5,1),m:map<string,array<int>>>"),
        ("grid", "array<array<string>>"),
    ]
    glue.create_table(
        DatabaseName=db,
        TableInput={"Name": table, "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in cols]}},
    )
    records = [
        {
            "id": 1, "name": "Ann", "score": 1.5, "ratio": 0.25, "big": 9007199254740993, "small": -300,
            "tiny": 7, "ok": True, "ts": "2026-11-23T10:00:00.123Z", "day": "1969-07-20",
            "price": -12345678.91, "tags": ["a", None, "b"], "attrs": {"k": 1, "n": None},
            "geo": {"lat": 52.5, "lon": None},
            "nest": {"t": "1965-06-01T00:00:00.250Z", "d": -0.5, "m": {"x": [1, None], "y": None, "z": []}},
            "grid": [["a"], [], None, ["b", None]],
        },
        {"id": 2},
        {"id": 3, "tags": [], "attrs": {}, "geo": None, "nest": {"m": {}}, "grid": [[]]},
        {"id": 4, "tags": None, "attrs": None, "nest": None, "grid": None, "price": 0.01},
    ]
    data = [json.dumps(r).encode() + b"\n" for r in records]
    for fmt, serializer in (("orc", {"OrcSerDe": {"Compression": "ZLIB"}}), ("parquet", {"ParquetSerDe": {}})):
        conv = conversion(db, table)
        conv["OutputFormatConfiguration"] = {"Serializer": serializer}
        stream = unique_name(fmt)
        create_stream(firehose, stream, bucket, f"{fmt}/", conv)
        put(firehose, stream, data)
    root = lakehose.bucket_dir(bucket)
    orc_files = wait_for(lambda: files(root / "orc", ".orc"))
    parquet_files = wait_for(lambda: files(root / "parquet", ".parquet"))
    assert len(orc_files) == 1 and len(parquet_files) == 1, (orc_files, parquet_files)
    from_parquet = pq.read_table(parquet_files[0])
    from_orc = orc.read_table(str(orc_files[0]))
    assert from_orc.column_names == [n for n, _ in cols]
    types = {f.name: str(f.type) for f in from_orc.schema}
    assert types["price"] == "decimal128(10, 2)" and types["nest"].startswith("struct<t: timestamp")
    rows = from_orc.cast(from_parquet.schema).to_pylist()
    assert rows == from_parquet.to_pylist()
    first = rows[0]
    assert first["big"] == 9007199254740993 and first["small"] == -300 and first["tiny"] == 7
    assert first["ts"] == dt.datetime(2026, 11, 23, 10, 0, 0, 123000)
    assert first["day"] == dt.date(1969, 7, 20)
    assert first["price"] == decimal.Decimal("-12345678.91")
    assert first["tags"] == ["a", None, "b"]
    assert dict(first["attrs"]) == {"k": 1, "n": None}
    assert first["geo"] == {"lat": 52.5, "lon": None}
    assert first["nest"]["t"] == dt.datetime(1965, 6, 1, 0, 0, 0, 250000)
    assert first["nest"]["d"] == decimal.Decimal("-0.5")
    assert dict(first["nest"]["m"]) == {"x": [1, None], "y": None, "z": []}
    assert first["grid"] == [["a"], [], None, ["b", None]]
    assert rows[1] == {n: (2 if n == "id" else None) for n, _ in cols}
    assert rows[2]["tags"] == [] and rows[2]["attrs"] == [] and rows[2]["geo"] is None
    assert rows[2]["nest"] == {"t": None, "d": None, "m": []} and rows[2]["grid"] == [[]]
    assert rows[3]["nest"] is None and rows[3]["price"] == decimal.Decimal("0.01")
    assert_orc_statistics(orc_files[0], from_parquet)


def assert_orc_statistics(path, table):
    """Apache ORC's C++ reader (pyorc) reads the file's column statistics, and for each
    top-level column they match the values `table` (the same rows) holds: the count of present
    values, whether one was null, and the minimum, maximum and sum, true count or total length
    the column's type has. (pyorc shows a stripe's statistics only through its row index, which
    the writer does not produce; the Rust tests read the stripes' own statistics.)"""
    import pyorc

    with open(path, "rb") as f:
        reader = pyorc.Reader(f)
        assert reader[0].statistics["number_of_values"] == table.num_rows
        for name in table.column_names:
            column_id = reader.schema.fields[name].column_id
            values = [v for v in table.column(name).to_pylist() if v is not None]
            for stats in (reader[column_id].statistics,):
                assert stats["number_of_values"] == len(values), (name, stats)
                assert stats["has_null"] == (len(values) < table.num_rows), (name, stats)
                kind = stats["kind"]
                if kind in (pyorc.TypeKind.STRUCT, pyorc.TypeKind.LIST, pyorc.TypeKind.MAP):
                    assert set(stats) == {"kind", "has_null", "number_of_values"}, (name, stats)
                    continue
                if kind == pyorc.TypeKind.BOOLEAN:
                    assert stats["true_count"] == sum(values), (name, stats)
                    assert stats["false_count"] == len(values) - sum(values), (name, stats)
                    continue
                if kind == pyorc.TypeKind.TIMESTAMP:
                    # pyorc reads instants as UTC datetimes; the table's are naive UTC.
                    got = (stats["minimum"].replace(tzinfo=None), stats["maximum"].replace(tzinfo=None))
                else:
                    got = (stats["minimum"], stats["maximum"])
                assert got == (min(values), max(values)), (name, stats)
                if kind == pyorc.TypeKind.STRING:
                    assert stats["total_length"] == sum(len(v.encode()) for v in values), (name, stats)
                elif kind in (pyorc.TypeKind.INT, pyorc.TypeKind.LONG, pyorc.TypeKind.SHORT,
                              pyorc.TypeKind.BYTE, pyorc.TypeKind.DECIMAL):
                    assert stats["sum"] == sum(values), (name, stats)
                elif kind in (pyorc.TypeKind.FLOAT, pyorc.TypeKind.DOUBLE):
                    assert stats["sum"] == pytest.approx(sum(values)), (name, stats)


def test_a_batch_that_cannot_be_converted_goes_to_the_error_output(lakehose, firehose):
    # Glue accepts a uniontype column, but no columnar file can hold one here: the whole batch
    # fails conversion, and every record lands in format-conversion-failed instead of blocking
    # the stream.
    glue = glue_client(lakehose)
    db, table, stream, bucket = "orcdb2", unique_name("n").replace("-", "_"), unique_name("orcn"), unique_name("lake")
    ensure_database(glue, db)
    glue.create_table(
        DatabaseName=db,
        TableInput={"Name": table, "StorageDescriptor": {"Columns": [
            {"Name": "id", "Type": "bigint"}, {"Name": "geo", "Type": "uniontype<double,string>"}]}},
    )
    conv = conversion(db, table)
    conv["OutputFormatConfiguration"] = {"Serializer": {"OrcSerDe": {}}}
    create_stream(firehose, stream, bucket, "orc/", conv)
    records = [json.dumps({"id": i, "geo": {"lat": 1.0}}).encode() + b"\n" for i in range(3)]
    put(firehose, stream, records)
    root = lakehose.bucket_dir(bucket)
    errors = wait_for(lambda: files(root / "errors" / "format-conversion-failed", ""))
    docs = [json.loads(line) for p in errors for line in p.read_text().splitlines()]
    assert sorted(base64.b64decode(d["rawData"]) for d in docs) == sorted(records)
    assert all(d["lastErrorCode"] == "DataFormatConversion.InvalidSchema" for d in docs)
    assert not files(root / "orc", ".orc")
    # The stream keeps working: the next batch is handled too.
    put(firehose, stream, [b'{"id": 9, "geo": null}\n'])
    assert wait_for(lambda: len([l for p in files(root / "errors" / "format-conversion-failed", "") for l in p.read_text().splitlines()]) == 4)


def test_lakehose_queries_its_nested_orc_files(lakehose, firehose):
    """A table over ORC files the stream wrote, nested columns included, answered by the query
    engine (which reads ORC with orc-rust)."""
    from test_query import query

    glue = glue_client(lakehose)
    db, table, stream, bucket = "orcdb", unique_name("q").replace("-", "_"), unique_name("orcq"), unique_name("lake")
    ensure_database(glue, db)
    cols = [("id", "bigint"), ("geo", "struct<lat:double,lon:double>"), ("tags", "array<string>"),
            ("attrs", "map<string,int>"), ("price", "decimal(10,2)")]
    glue.create_table(
        DatabaseName=db,
        TableInput={"Name": table, "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t} for n, t in cols],
            "Location": f"s3://{bucket}/orc/",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.orc.OrcSerde"},
        }},
    )
    conv = conversion(db, table)
    conv["OutputFormatConfiguration"] = {"Serializer": {"OrcSerDe": {}}}
    create_stream(firehose, stream, bucket, "orc/", conv)
    rows = [
        {"id": 1, "geo": {"lat": 52.5, "lon": 13.4}, "tags": ["a", "b"], "attrs": {"k": 3}, "price": 1.25},
        {"id": 2, "geo": None, "tags": None, "attrs": {}, "price": None},
        {"id": 3, "geo": {"lat": -1.0}, "tags": [], "attrs": None, "price": -7},
    ]
    put(firehose, stream, [json.dumps(r).encode() + b"\n" for r in rows])
    assert wait_for(lambda: files(lakehose.bucket_dir(bucket) / "orc", ".orc"))
    answer = query(
        lakehose,
        f"SELECT id, geo['lat'] AS lat, geo['lon'] AS lon, cardinality(tags) AS n, "
        f"attrs['k'] AS k, CAST(price AS VARCHAR) AS price FROM {db}.{table} ORDER BY id",
    )
    assert answer["rows"] == [
        [1, 52.5, 13.4, 2, 3, "1.25"],
        [2, None, None, None, None, None],
        [3, -1.0, None, 0, None, "-7.00"],
    ], answer
