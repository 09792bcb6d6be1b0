"""Streaming SQL applications through boto3's `kinesisanalytics` client and the AWS CLI.

- The README's anomaly-detection example (`examples/anomaly-detection.sql`) runs end to end:
  sensor readings into a delivery stream, a sliding-window average per device, alerts POSTed to
  an HTTP endpoint; the alerts are compared with ones computed here independently.
- A legacy Kinesis Analytics application defined the KDA way (Firehose `Inputs` with a record
  schema, a Firehose `Output`, a `CREATE OR REPLACE PUMP` with `STEP(... ROWTIME ...)`), created
  with the AWS CLI from a file, operated with boto3 (describe, list, update, stop, delete).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE_ARN, unique_name

REPO = Path(__file__).resolve().parents[2]
CONFIG = """
[egress]
allow_http_hosts = ["127.0.0.1"]
allow_private = ["127.0.0.0/8"]
"""
BASE = datetime(2026, 11, 24, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def server(configured_server):
    return configured_server(CONFIG)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POSTed JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.request_ids: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.request_ids.append(self.headers.get("X-Lakehose-Request-Id", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def records(self) -> list[dict]:
        return [r for b in self.bodies for r in b["records"]]


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def put(firehose, stream: str, records: list[dict]) -> None:
    for i in range(0, len(records), 500):
        chunk = records[i : i + 500]
        out = firehose.put_record_batch(
            DeliveryStreamName=stream,
            Records=[{"Data": (json.dumps(r) + "\n").encode()} for r in chunk],
        )
        assert out["FailedPutCount"] == 0


def plain_stream(firehose, name: str, bucket: str) -> None:
    """A delivery stream landing its records in `bucket`, flushed every second."""
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE_ARN,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "BufferingHints": {"IntervalInSeconds": 1, "SizeInMBs": 1},
        },
    )


def wait(predicate, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out", pytrace=False)
        time.sleep(0.2)


def test_anomaly_detection_alerts_an_http_endpoint(server):
    receiver = Receiver()
    firehose = server.client()
    analytics = server.aws("kinesisanalytics")
    firehose.create_delivery_stream(
        DeliveryStreamName="sensor-readings",
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE_ARN, "BucketARN": "arn:aws:s3:::sensors"},
    )
    code = (REPO / "examples" / "anomaly-detection.sql").read_text()
    code = code.replace("http://127.0.0.1:9000/alerts", f"http://127.0.0.1:{receiver.port}/alerts")
    name = unique_name("anomalies")
    analytics.create_application(ApplicationName=name, ApplicationCode=code)
    analytics.start_application(
        ApplicationName=name,
        InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}],
    )

    # Two minutes of readings, one per device every 500 ms; d3 runs hot from 40 s to 70 s.
    readings = []
    for i in range(240):
        t = BASE + timedelta(milliseconds=500 * i)
        for d in range(1, 6):
            hot = d == 3 and 40 <= i * 0.5 < 70
            temperature = 90.0 + (i % 5) if hot else 60.0 + ((i * d) % 7)
            readings.append({"device_id": f"d{d}", "temperature": temperature, "reading_time": iso(t)})
    # A late reading (its windows have fired) changes nothing; the last one closes every window.
    closing = {"device_id": "d1", "temperature": 20.0, "reading_time": iso(BASE + timedelta(minutes=5))}
    put(firehose, "sensor-readings", readings)
    put(firehose, "sensor-readings", [{"device_id": "d3", "temperature": 500.0, "reading_time": iso(BASE)}, closing])

    # Expected, independently: every 30 s window starting on a 10 s boundary, per device.
    expected: dict[tuple[str, str], float] = {}
    for start_s in range(-20, 130, 10):
        start = BASE + timedelta(seconds=start_s)
        end = start + timedelta(seconds=30)
        for d in range(1, 6):
            values = [
                r["temperature"]
                for r in readings
                if r["device_id"] == f"d{d}" and start <= datetime.fromisoformat(r["reading_time"].replace("Z", "+00:00")) < end
            ]
            if values and sum(values) / len(values) > 80:
                expected[(f"d{d}", start.strftime("%Y-%m-%dT%H:%M:%S"))] = sum(values) / len(values)
    assert expected, "the data must hold anomalies"

    wait(lambda: len(receiver.records()) >= len(expected))
    import time

    time.sleep(1.0)  # a duplicate would show up by now
    got = {(r["device_id"], r["window_start"]): r["avg_temperature"] for r in receiver.records()}
    assert len(receiver.records()) == len(got), "an alert was sent twice"
    assert set(got) == set(expected)
    for key, avg in expected.items():
        assert got[key] == pytest.approx(avg)
    assert all(b["application"] == name and b["requestId"] for b in receiver.bodies)
    assert receiver.request_ids == [b["requestId"] for b in receiver.bodies]

    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ApplicationStatus"] == "RUNNING"
    # The late reading was counted, not dropped silently (botocore hides Lakehose's own
    # DescribeApplication members, so the figure is read from /metrics).
    metrics = urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10).read().decode()
    late = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("Analytics_LateRecords{") and f'application="{name}"' in line
    ]
    assert late == [1.0], [l for l in metrics.splitlines() if l.startswith("Analytics_")]
    analytics.stop_application(ApplicationName=name)


def aws_cli() -> list[str]:
    if shutil.which("aws"):
        return ["aws"]
    return [sys.executable, "-m", "awscli"]


def test_legacy_application_with_kda_inputs_and_outputs(server, tmp_path):
    firehose = server.client()
    analytics = server.aws("kinesisanalytics")
    source, dest = unique_name("ticks"), unique_name("counts")
    for stream, bucket in ((source, "ticks"), (dest, "counts")):
        plain_stream(firehose, stream, bucket)
    arn = lambda s: f"arn:aws:firehose:us-east-1:123456789012:deliverystream/{s}"  # noqa: E731
    code = tmp_path / "app.sql"
    code.write_text(
        """
        CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), ticker_count INTEGER);
        CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
        SELECT STREAM ticker_symbol, COUNT(*) AS ticker_count
        FROM "SOURCE_SQL_STREAM_001"
        GROUP BY ticker_symbol, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '2' SECOND);
        """
    )
    inputs = [
        {
            "NamePrefix": "SOURCE_SQL_STREAM",
            "KinesisFirehoseInput": {"ResourceARN": arn(source), "RoleARN": ROLE_ARN},
            "InputSchema": {
                "RecordFormat": {"RecordFormatType": "JSON", "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
                "RecordColumns": [
                    {"Name": "ticker_symbol", "SqlType": "VARCHAR(4)", "Mapping": "$.ticker_symbol"},
                    {"Name": "price", "SqlType": "DOUBLE", "Mapping": "$.price"},
                ],
            },
        }
    ]
    outputs = [
        {
            "Name": "DESTINATION_SQL_STREAM",
            "KinesisFirehoseOutput": {"ResourceARN": arn(dest), "RoleARN": ROLE_ARN},
            "DestinationSchema": {"RecordFormatType": "JSON"},
        }
    ]
    name = unique_name("tickers")
    subprocess.run(
        [
            *aws_cli(), "kinesisanalytics", "create-application", "--endpoint-url", server.endpoint,
            "--application-name", name, "--application-code", f"file://{code}",
            "--inputs", json.dumps(inputs), "--outputs", json.dumps(outputs),
        ],
        check=True,
        capture_output=True,
    )
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ApplicationStatus"] == "READY"
    assert detail["ApplicationVersionId"] == 1
    assert detail["InputDescriptions"][0]["InAppStreamNames"] == ["SOURCE_SQL_STREAM_001"]
    assert detail["OutputDescriptions"][0]["Name"] == "DESTINATION_SQL_STREAM"
    names = [a["ApplicationName"] for a in analytics.list_applications()["ApplicationSummaries"]]
    assert name in names

    with pytest.raises(ClientError) as err:
        analytics.update_application(
            ApplicationName=name,
            CurrentApplicationVersionId=1,
            ApplicationUpdate={"ApplicationCodeUpdate": "CREATE OR REPLACE PUMP p AS INSERT INTO nowhere SELECT 1"},
        )
    assert err.value.response["Error"]["Code"] == "CodeValidationException"
    with pytest.raises(ClientError) as err:
        analytics.start_application(
            ApplicationName=name,
            InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "LATER"}}],
        )
    assert err.value.response["Error"]["Code"] in ("InvalidArgumentException", "ValidationException", "ParamValidationError")

    analytics.start_application(
        ApplicationName=name,
        InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}],
    )
    assert analytics.describe_application(ApplicationName=name)["ApplicationDetail"]["ApplicationStatus"] == "RUNNING"
    ticks = [{"ticker_symbol": "AMZN" if i % 3 else "MSFT", "price": 100 + i} for i in range(30)]
    put(firehose, source, ticks)

    # Processing-time windows close on the clock: counts land in the output stream's bucket.
    def counted() -> dict[str, int]:
        totals: dict[str, int] = {}
        root = server.bucket_dir("counts")
        for path in root.rglob("*") if root.is_dir() else []:
            if path.is_file() and "#" not in path.name:
                for line in path.read_text().splitlines():
                    row = json.loads(line)
                    totals[row["ticker_symbol"]] = totals.get(row["ticker_symbol"], 0) + row["ticker_count"]
        return totals

    wait(lambda: counted() == {"AMZN": 20, "MSFT": 10}, timeout=30)

    analytics.update_application(
        ApplicationName=name,
        CurrentApplicationVersionId=1,
        ApplicationUpdate={"ApplicationCodeUpdate": code.read_text().replace("'2' SECOND", "'3' SECOND")},
    )
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ApplicationVersionId"] == 2
    assert "'3' SECOND" in detail["ApplicationCode"]
    analytics.stop_application(ApplicationName=name)
    detail = analytics.describe_application(ApplicationName=name)["ApplicationDetail"]
    assert detail["ApplicationStatus"] == "READY"
    analytics.delete_application(ApplicationName=name, CreateTimestamp=detail["CreateTimestamp"])
    with pytest.raises(ClientError) as err:
        analytics.describe_application(ApplicationName=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def parquet_table(glue, db: str, table: str, columns: list[tuple[str, str]]) -> None:
    """A Glue table of Parquet files under `s3://DB/TABLE/`."""
    glue.create_table(
        DatabaseName=db,
        TableInput={
            "Name": table,
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in columns],
                "Location": f"s3://{db}/{table}/",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
            },
        },
    )


def converting_stream(firehose, name: str, db: str, table: str) -> None:
    """A delivery stream converting JSON into `DB.TABLE` (Parquet under `s3://DB/TABLE/`)."""
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE_ARN,
            "BucketARN": f"arn:aws:s3:::{db}",
            "Prefix": f"{table}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
            "DataFormatConversionConfiguration": {
                "SchemaConfiguration": {"DatabaseName": db, "TableName": table, "RoleARN": ROLE_ARN},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
            },
        },
    )


def test_join_with_a_catalog_reference_table(server):
    """A Glue table (filled through a converting stream, so its rows are the stream's
    acknowledged records) joined with a live stream: clicks per country and window, written
    into another catalog table (through a converting stream) and read back with SQL."""
    firehose = server.client()
    glue = server.aws("glue")
    analytics = server.aws("kinesisanalytics")
    db = unique_name("crm").replace("-", "_")
    glue.create_database(DatabaseInput={"Name": db})
    parquet_table(glue, db, "users", [("user_id", "string"), ("country", "string")])
    users_feed, clicks, out = unique_name("users"), unique_name("clicks"), unique_name("per-country")
    converting_stream(firehose, users_feed, db, "users")
    countries = {"u1": "fr", "u2": "fr", "u3": "de"}
    put(firehose, users_feed, [{"user_id": u, "country": c} for u, c in countries.items()])
    firehose.create_delivery_stream(
        DeliveryStreamName=clicks,
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE_ARN, "BucketARN": "arn:aws:s3:::clicks-raw"},
    )
    parquet_table(glue, db, "per_country", [("country", "string"), ("window_start", "timestamp"), ("clicks", "bigint")])
    converting_stream(firehose, out, db, "per_country")
    code = f"""
        CREATE TABLE clicks (user_id VARCHAR, event_time TIMESTAMP(3))
          WITH ('connector' = 'firehose', 'stream' = '{clicks}');
        CREATE TABLE users WITH ('connector' = 'catalog', 'database' = '{db}', 'table' = 'users');
        CREATE TABLE per_country WITH ('connector' = 'firehose', 'stream' = '{out}');
        INSERT INTO per_country
        SELECT u.country, c.window_start, COUNT(*) AS clicks
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) AS c
        JOIN users AS u ON c.user_id = u.user_id
        GROUP BY u.country, c.window_start, c.window_end
    """
    name = unique_name("by-country")
    analytics.create_application(ApplicationName=name, ApplicationCode=code)
    analytics.start_application(
        ApplicationName=name,
        InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}],
    )
    events = [{"user_id": f"u{1 + i % 4}", "event_time": iso(BASE + timedelta(milliseconds=100 * i))} for i in range(80)]
    events.append({"user_id": "u1", "event_time": iso(BASE + timedelta(minutes=1))})
    put(firehose, clicks, events)
    # u4 has no country: an inner join drops its clicks.
    want = {}
    for e in events[:-1]:
        country = countries.get(e["user_id"])
        if country:
            want[country] = want.get(country, 0) + 1

    def totals() -> dict[str, int]:
        # SQL over the result table (its undelivered rows included).
        sql = f"SELECT country, CAST(SUM(clicks) AS BIGINT) AS n FROM {db}.per_country GROUP BY country"
        request = urllib.request.Request(
            server.endpoint + "/v1/query",
            data=json.dumps({"sql": sql}).encode(),
            headers={"content-type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        return {row[0]: row[1] for row in answer["rows"]}

    wait(lambda: totals() == want, timeout=30)
    analytics.stop_application(ApplicationName=name)

    # A reference table that does not exist is a code error at creation.
    with pytest.raises(ClientError) as err:
        analytics.create_application(
            ApplicationName=unique_name("missing-ref"),
            ApplicationCode=code.replace("'table' = 'users'", "'table' = 'nobody'"),
        )
    assert err.value.response["Error"]["Code"] == "CodeValidationException"
    assert "nobody" in err.value.response["Error"]["Message"]


def test_window_join_of_two_delivery_streams(server):
    """Clicks and orders joined window by window: per user and 10 s window, the clicks that
    share a window with an order. The watermark is the smaller of the two streams'."""
    firehose = server.client()
    analytics = server.aws("kinesisanalytics")
    clicks, orders, out = unique_name("wj-clicks"), unique_name("wj-orders"), unique_name("wj-out")
    for stream, bucket in ((clicks, "wj-raw"), (orders, "wj-raw"), (out, "wj-out")):
        plain_stream(firehose, stream, bucket)
    code = f"""
        CREATE TABLE clicks (user_id VARCHAR, event_time TIMESTAMP(3))
          WITH ('connector' = 'firehose', 'stream' = '{clicks}');
        CREATE TABLE orders (user_id VARCHAR, total DOUBLE, order_time TIMESTAMP(3))
          WITH ('connector' = 'firehose', 'stream' = '{orders}');
        CREATE TABLE converted WITH ('connector' = 'firehose', 'stream' = '{out}');
        INSERT INTO converted
        SELECT c.user_id, c.window_start, COUNT(*) AS clicks_before_orders
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) AS c
        JOIN TABLE(TUMBLE(TABLE orders, DESCRIPTOR(order_time), INTERVAL '10' SECOND)) AS o
          ON c.user_id = o.user_id AND c.window_start = o.window_start AND c.window_end = o.window_end
        GROUP BY c.user_id, c.window_start
    """
    name = unique_name("window-join")
    analytics.create_application(ApplicationName=name, ApplicationCode=code)
    analytics.start_application(
        ApplicationName=name,
        InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}],
    )
    at = lambda s: iso(BASE + timedelta(seconds=s))  # noqa: E731
    put(firehose, clicks, [{"user_id": u, "event_time": at(s)} for u, s in [("a", 1), ("a", 2), ("b", 3), ("a", 12), ("c", 4)]])
    put(firehose, orders, [{"user_id": u, "total": 9.5, "order_time": at(s)} for u, s in [("a", 5), ("c", 9)]])
    # Both streams move past the second window: it fires only then.
    put(firehose, clicks, [{"user_id": "z", "event_time": at(60)}])

    def rows() -> list[tuple]:
        found = []
        root = server.bucket_dir("wj-out")
        for path in root.rglob("*") if root.is_dir() else []:
            if path.is_file() and "#" not in path.name:
                for line in path.read_text().splitlines():
                    r = json.loads(line)
                    found.append((r["user_id"], r["window_start"], r["clicks_before_orders"]))
        return sorted(found)

    import time

    time.sleep(1.5)
    assert rows() == [], "no window may fire before the orders stream moves on"
    put(firehose, orders, [{"user_id": u, "total": 1.0, "order_time": at(s)} for u, s in [("b", 15), ("z", 60)]])
    want = [("a", "2026-11-24T10:00:00", 2), ("c", "2026-11-24T10:00:00", 1)]
    wait(lambda: rows() == want, timeout=30)
    analytics.stop_application(ApplicationName=name)


def test_idle_timeout_closes_the_last_window_without_new_records(server):
    """With 'watermark.idle-timeout', the last window of a source that goes quiet fires on
    the clock; no later record is needed."""
    firehose = server.client()
    analytics = server.aws("kinesisanalytics")
    source, out = unique_name("idle-in"), unique_name("idle-out")
    for stream, bucket in ((source, "idle-raw"), (out, "idle-out")):
        plain_stream(firehose, stream, bucket)
    code = f"""
        CREATE TABLE readings (device_id VARCHAR, reading_time TIMESTAMP(3))
          WITH ('connector' = 'firehose', 'stream' = '{source}', 'watermark.idle-timeout' = '1 s');
        CREATE TABLE counts WITH ('connector' = 'firehose', 'stream' = '{out}');
        INSERT INTO counts SELECT device_id, window_start, COUNT(*) AS n
        FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(reading_time), INTERVAL '2' SECOND))
        GROUP BY device_id, window_start, window_end
    """
    name = unique_name("idle")
    analytics.create_application(ApplicationName=name, ApplicationCode=code)
    analytics.start_application(
        ApplicationName=name,
        InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}],
    )
    now = datetime.now(timezone.utc)
    put(firehose, source, [{"device_id": "d1", "reading_time": iso(now)} for _ in range(3)])

    def counted() -> int:
        total = 0
        root = server.bucket_dir("idle-out")
        for path in root.rglob("*") if root.is_dir() else []:
            if path.is_file() and "#" not in path.name:
                total += sum(json.loads(line)["n"] for line in path.read_text().splitlines())
        return total

    wait(lambda: counted() == 3, timeout=20)
    analytics.stop_application(ApplicationName=name)
