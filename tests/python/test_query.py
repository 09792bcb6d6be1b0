"""SQL over the lake through the real server: the freshness guarantee (acknowledged records
are visible before they are delivered, and never counted twice while flushes happen), boto3's
athena client end to end, and the `lakehose query` CLI."""

import csv
import io
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import lakehose_bin, unique_name
from test_conversion import ROLE, ensure_database, glue_client, put, wait_for


def _post_query(server, sql, **options):
    body = json.dumps({"sql": sql, **options}).encode()
    request = urllib.request.Request(
        server.endpoint + "/v1/query", data=body, headers={"content-type": "application/json"}
    )
    return urllib.request.urlopen(request, timeout=60)


def query(server, sql, **options):
    """POST /v1/query; returns the decoded JSON answer (an error status fails the test)."""
    try:
        with _post_query(server, sql, **options) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{sql!r} failed with {e.code}: {e.read().decode()}") from None


def query_error(server, sql, **options):
    """POST /v1/query that must fail: (status, the `error` object)."""
    with pytest.raises(urllib.error.HTTPError) as info:
        _post_query(server, sql, **options)
    return info.value.code, json.loads(info.value.read())["error"]


def count(server, table, db, **options):
    answer = query(server, f"SELECT count(*) AS n FROM {db}.{table}", **options)
    return answer["rows"][0][0]


def make_table(server, db, table, bucket, prefix, partition_keys=()):
    glue = glue_client(server)
    ensure_database(glue, db)
    glue.create_table(
        DatabaseName=db,
        TableInput={
            "Name": table,
            "StorageDescriptor": {
                "Columns": [
                    {"Name": "id", "Type": "bigint"},
                    {"Name": "user", "Type": "string"},
                    {"Name": "amount", "Type": "double"},
                ],
                "Location": f"s3://{bucket}/{prefix}",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {
                    "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                },
            },
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in partition_keys],
        },
    )


def converting_stream(firehose, name, bucket, prefix, db, table, size_mb, interval_s):
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": prefix,
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": size_mb, "IntervalInSeconds": interval_s},
            "DataFormatConversionConfiguration": {
                "SchemaConfiguration": {"DatabaseName": db, "TableName": table, "RoleARN": ROLE},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
            },
        },
    )


def records(start, n, pad=0):
    return [
        json.dumps({"id": i, "user": f"u{i % 7}", "amount": i * 0.5, "pad": "x" * pad}).encode()
        for i in range(start, start + n)
    ]


def parquet_files(server, bucket):
    root = server.bucket_dir(bucket)
    if not root.is_dir():
        return []
    return [p for p in root.rglob("*.parquet") if "#" not in p.name]


def test_acknowledged_records_are_queryable_before_delivery(lakehose, firehose):
    db, table, bucket = "fresh_db", unique_name("t").replace("-", "_"), unique_name("b")
    stream = unique_name("fresh")
    make_table(lakehose, db, table, bucket, "events/")
    converting_stream(firehose, stream, bucket, "events/", db, table, size_mb=128, interval_s=900)
    put(firehose, stream, records(0, 500))
    put(firehose, stream, records(500, 500))
    # Nothing is delivered (900 s buffer), yet every acknowledged record is visible at once.
    assert parquet_files(lakehose, bucket) == []
    assert count(lakehose, table, db) == 1000
    answer = query(
        lakehose,
        f"SELECT user, count(*) AS n, sum(amount) AS total FROM {table} GROUP BY user ORDER BY user",
        database=db,
    )
    assert [c["name"] for c in answer["columns"]] == ["user", "n", "total"]
    assert answer["rows"][0] == ["u0", 143, sum(i * 0.5 for i in range(0, 1000, 7))]
    # The session setting turns it off.
    assert count(lakehose, table, db, fresh=False) == 0
    firehose.delete_delivery_stream(DeliveryStreamName=stream)


BATCH = 400


def test_counts_stay_exact_while_flushes_happen(lakehose, firehose):
    """Puts and 1 MiB flushes run while queries run: each count lies between the records
    acknowledged before the query started and those acknowledged after it ended plus the one
    batch that may be durable but not yet answered (a flush's records counted twice would
    exceed that by a whole flush, ~1,600 records; records lost would fall below the lower
    bound), and at the end the count is exact with most records delivered as files."""
    db, table, bucket = "fresh_db", unique_name("t").replace("-", "_"), unique_name("b")
    stream = unique_name("flush")
    make_table(lakehose, db, table, bucket, "events/")
    converting_stream(firehose, stream, bucket, "events/", db, table, size_mb=1, interval_s=900)
    acked = 0
    lock = threading.Lock()
    stop = threading.Event()
    failures = []

    def writer():
        nonlocal acked
        start = 0
        client = lakehose.client()
        while not stop.is_set() and start < 12_000:
            batch = records(start, BATCH, pad=600)
            put(client, stream, batch)
            start += len(batch)
            with lock:
                acked = start

    thread = threading.Thread(target=writer)
    thread.start()
    checks = 0
    try:
        while thread.is_alive():
            with lock:
                before = acked
            n = count(lakehose, table, db)
            with lock:
                after = acked
            if not before <= n <= after + BATCH:
                failures.append((before, n, after))
            checks += 1
    finally:
        stop.set()
        thread.join()
    assert not failures, f"counts outside [acked before, acked after]: {failures[:5]}"
    assert checks >= 5, f"only {checks} queries overlapped the load"
    assert count(lakehose, table, db) == acked == 12_000
    # Most records are in delivered files now (1 MiB flushes), and the union still counts
    # each once.
    assert len(parquet_files(lakehose, bucket)) >= 3
    delivered = count(lakehose, table, db, fresh=False)
    assert 0 < delivered <= 12_000
    firehose.delete_delivery_stream(DeliveryStreamName=stream)


def test_partitioned_table_sees_fresh_rows_in_their_partitions(lakehose, firehose):
    db, table, bucket = "fresh_db", unique_name("p").replace("-", "_"), unique_name("b")
    stream = unique_name("part")
    make_table(lakehose, db, table, bucket, "sales/", partition_keys=["region"])
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "sales/region=!{partitionKeyFromQuery:region}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
            "DynamicPartitioningConfiguration": {"Enabled": True},
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "MetadataExtraction",
                        "Parameters": [
                            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{region: .region}"},
                            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                        ],
                    }
                ],
            },
            "DataFormatConversionConfiguration": {
                "SchemaConfiguration": {"DatabaseName": db, "TableName": table, "RoleARN": ROLE},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
            },
        },
    )
    rows = [
        json.dumps({"id": i, "user": "u", "amount": 1.0, "region": ["eu", "us", "ap"][i % 3]}).encode()
        for i in range(90)
    ]
    put(firehose, stream, rows)
    answer = query(
        lakehose, f"SELECT region, count(*) FROM {db}.{table} GROUP BY region ORDER BY region"
    )
    assert answer["rows"] == [["ap", 30], ["eu", 30], ["us", 30]]
    answer = query(lakehose, f"SELECT count(*) FROM {db}.{table} WHERE region = 'eu'")
    assert answer["rows"] == [[30]]
    firehose.delete_delivery_stream(DeliveryStreamName=stream)


def test_query_errors_have_positions_and_cancellation_works(lakehose):
    status, error = query_error(lakehose, "SELECT * FROM nowhere_db.nope")
    assert status == 400 and error["type"] == "USER_ERROR"
    assert "nowhere_db" in error["message"]
    glue_client(lakehose).create_database(DatabaseInput={"Name": "qerr_db"})
    status, error = query_error(lakehose, "SELECT * FROM qerr_db.nope")
    assert status == 400 and "nope" in error["message"], error
    status, error = query_error(lakehose, "SELECT 1 +")
    assert status == 400 and error["type"] == "USER_ERROR"
    assert error["line"] == 1 and error["column"] is not None
    # A long query, cancelled from another request.
    result = {}

    def slow():
        result["answer"] = query_error(
            lakehose,
            "SELECT count(*) FROM generate_series(1, 2000000000) a",
            query_id="slow-one",
        )

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 10
    cancelled = False
    while time.monotonic() < deadline and not cancelled:
        request = urllib.request.Request(lakehose.endpoint + "/v1/query/slow-one", method="DELETE")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                cancelled = response.status == 204
        except urllib.error.HTTPError as e:
            assert e.code == 404  # not registered yet
            time.sleep(0.05)
    thread.join(timeout=30)
    assert cancelled
    status, error = result["answer"]
    assert status == 409 and error["type"] == "CANCELLED"


def athena_client(server):
    return server.aws("athena")


def run_athena(athena, sql, db, output):
    qid = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": db},
        ResultConfiguration={"OutputLocation": output},
    )["QueryExecutionId"]
    state = wait_for(
        lambda: athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]["State"]
        in ("SUCCEEDED", "FAILED", "CANCELLED")
        and athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"],
        timeout=60,
    )
    return qid, state


def test_boto3_athena_end_to_end(lakehose, firehose):
    db, table, bucket = "athena_db", unique_name("t").replace("-", "_"), unique_name("b")
    stream = unique_name("ath")
    make_table(lakehose, db, table, bucket, "events/")
    converting_stream(firehose, stream, bucket, "events/", db, table, size_mb=1, interval_s=0)
    put(firehose, stream, records(0, 300))
    athena = athena_client(lakehose)
    qid, execution = run_athena(
        athena,
        f"SELECT user, count(*) AS n FROM {table} GROUP BY user ORDER BY user",
        db,
        "s3://athena-results/q/",
    )
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert execution["StatementType"] == "DML"
    location = execution["ResultConfiguration"]["OutputLocation"]
    assert location == f"s3://athena-results/q/{qid}.csv"
    # Paginate with a small page size: header first, then every row once.
    rows = []
    for page in athena.get_paginator("get_query_results").paginate(
        QueryExecutionId=qid, PaginationConfig={"PageSize": 3}
    ):
        columns = [c["Name"] for c in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
        assert columns == ["user", "n"]
        rows.extend([d.get("VarCharValue") for d in r["Data"]] for r in page["ResultSet"]["Rows"])
    assert rows[0] == ["user", "n"]
    expected = [[f"u{k}", str(len(range(k, 300, 7)))] for k in range(7)]
    assert rows[1:] == expected
    # The CSV Athena writes to the output location.
    text = (lakehose.bucket_dir("athena-results") / "q" / f"{qid}.csv").read_text()
    assert list(csv.reader(io.StringIO(text))) == [["user", "n"], *expected]
    # A failing query reports why.
    qid, execution = run_athena(athena, "SELECT nope FROM missing_table", db, "s3://athena-results/q/")
    assert execution["Status"]["State"] == "FAILED"
    assert "missing_table" in execution["Status"]["StateChangeReason"]
    assert qid in athena.list_query_executions()["QueryExecutionIds"]
    firehose.delete_delivery_stream(DeliveryStreamName=stream)


def cli(*args, input=None, env_endpoint=None, check=True):
    import os

    env = dict(os.environ)
    if env_endpoint:
        env["LAKEHOSE_ENDPOINT"] = env_endpoint
    proc = subprocess.run(
        [str(lakehose_bin()), "query", *args],
        capture_output=True,
        text=True,
        input=input,
        env=env,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_query_against_the_server_and_a_data_dir(lakehose, firehose, tmp_path):
    db, table, bucket = "cli_db", unique_name("t").replace("-", "_"), unique_name("b")
    stream = unique_name("cli")
    make_table(lakehose, db, table, bucket, "events/")
    converting_stream(firehose, stream, bucket, "events/", db, table, size_mb=1, interval_s=0)
    put(firehose, stream, records(0, 50))
    sql = f"SELECT id, user FROM {table} WHERE id < 3 ORDER BY id"
    out = cli(sql, "--database", db, "--format", "csv", env_endpoint=lakehose.endpoint)
    assert out.stdout.splitlines() == ["id,user", "0,u0", "1,u1", "2,u2"]
    assert "3 rows" in out.stderr and "scanned" in out.stderr
    # The default table output and NDJSON.
    out = cli(sql, "-d", db, env_endpoint=lakehose.endpoint)
    assert "| id | user |" in out.stdout.replace("  ", " ")
    out = cli(sql, "-d", db, "--format", "ndjson", env_endpoint=lakehose.endpoint)
    assert [json.loads(l) for l in out.stdout.splitlines()] == [
        {"id": 0, "user": "u0"},
        {"id": 1, "user": "u1"},
        {"id": 2, "user": "u2"},
    ]
    # Parquet to a file, then a file of statements read with -f.
    target = tmp_path / "out.parquet"
    cli(sql, "-d", db, "--format", "parquet", "-o", str(target), env_endpoint=lakehose.endpoint)
    import pyarrow.parquet as pq

    assert pq.read_table(target).to_pydict() == {"id": [0, 1, 2], "user": ["u0", "u1", "u2"]}
    script = tmp_path / "q.sql"
    script.write_text(f"SHOW TABLES IN {db};\n-- a comment; with a semicolon\nSELECT count(*) AS n FROM {db}.{table};\n")
    out = cli("-f", str(script), "--format", "csv", env_endpoint=lakehose.endpoint)
    assert table in out.stdout and "n\n50" in out.stdout
    # Wait for delivery, then query the data dir directly (no server involved).
    assert wait_for(lambda: count(lakehose, table, db, fresh=False) == 50)
    out = cli(
        f"SELECT count(*) AS n FROM {db}.{table}", "--data-dir", str(lakehose.data_dir), "--format", "csv",
    )
    assert out.stdout.splitlines() == ["n", "50"]
    # A user error: non-zero exit, the position, no backtrace.
    bad = cli("SELECT idd FROM " + f"{db}.{table}", env_endpoint=lakehose.endpoint, check=False)
    assert bad.returncode != 0
    assert "idd" in bad.stderr and "panicked" not in bad.stderr
    firehose.delete_delivery_stream(DeliveryStreamName=stream)
