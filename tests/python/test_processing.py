"""Processors through the real binary: a Lambda function server, jq dynamic partitioning,
CloudWatch Logs payloads and the Lakehose.Jq transform. Every test accounts for every record:
delivered + dropped + error output = sent."""

import base64
import gzip
import json
import time
from pathlib import Path

import pytest

from conftest import unique_name
from lambda_server import LambdaServer

ROLE = "arn:aws:iam::123456789012:role/firehose"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def stream_config(bucket, processors, prefix="data/", dynamic=False):
    cfg = {
        "RoleARN": ROLE,
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "Prefix": prefix,
        "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        "ProcessingConfiguration": {
            "Enabled": True,
            "Processors": [
                {"Type": t, "Parameters": [{"ParameterName": k, "ParameterValue": v} for k, v in params]}
                for t, params in processors
            ],
        },
    }
    if dynamic:
        cfg["DynamicPartitioningConfiguration"] = {"Enabled": True}
    return cfg


def files(root: Path, sub: str = ""):
    base = root / sub if sub else root
    if not base.exists():
        return []
    return sorted(p for p in base.rglob("*") if p.is_file() and "#" not in p.name)


def lines_under(root: Path, sub: str):
    return [line for p in files(root, sub) for line in p.read_bytes().splitlines()]


def error_docs(root: Path, kind: str):
    return [json.loads(line) for line in lines_under(root, f"errors/{kind}")]


def wait_until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def put(client, stream, records):
    out = client.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": r} for r in records])
    assert out["FailedPutCount"] == 0, out


@pytest.fixture
def with_lambdas(tmp_path, server_factory):
    with LambdaServer() as fns:
        data = tmp_path / "data"
        data.mkdir()
        names = ["upper", "mixed", "partition", "raise"]
        (data / "lakehose.toml").write_text(
            "[lambdas]\n" + "".join(f'"{FN}{n}" = "{fns.url}"\n' for n in names)
        )
        yield server_factory(data), fns


def test_lambda_ok_dropped_failed_and_delimiter(with_lambdas):
    server, fns = with_lambdas
    client, bucket, stream = server.client(), unique_name("lam"), unique_name("lambda")
    client.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration=stream_config(
            bucket,
            [("Lambda", [("LambdaArn", FN + "mixed"), ("NumberOfRetries", "1")]), ("AppendDelimiterToRecord", [])],
        ),
    )
    sent = [b"hello-1", b"drop-2", b"fail-3", b"world-4", b"drop-5"]
    put(client, stream, sent)
    root = server.bucket_dir(bucket)
    wait_until(lambda: len(lines_under(root, "data")) >= 2 and error_docs(root, "processing-failed"))
    assert sorted(lines_under(root, "data")) == [b"HELLO-1", b"WORLD-4"]
    docs = error_docs(root, "processing-failed")
    assert [base64.b64decode(d["rawData"]) for d in docs] == [b"fail-3"]
    assert docs[0]["errorCode"] and docs[0]["lambdaArn"] == FN + "mixed"
    assert {"attemptsMade", "arrivalTimestamp", "errorMessage", "attemptEndingTimestamp"} <= docs[0].keys()
    # delivered 2 + dropped 2 + failed 1 = 5 sent
    assert fns.calls["mixed"] >= 1
    event = fns.events["mixed"][0]
    assert event["deliveryStreamArn"].endswith(f":deliverystream/{stream}") and event["region"] == "us-east-1"
    assert {"recordId", "approximateArrivalTimestamp", "data"} <= event["records"][0].keys()


def test_crashing_function_sends_everything_to_processing_failed(with_lambdas):
    server, fns = with_lambdas
    client, bucket, stream = server.client(), unique_name("lam"), unique_name("crash")
    client.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration=stream_config(
            bucket, [("Lambda", [("LambdaArn", FN + "raise"), ("NumberOfRetries", "2")])]
        ),
    )
    sent = [f"r{i}".encode() for i in range(7)]
    put(client, stream, sent)
    root = server.bucket_dir(bucket)
    wait_until(lambda: len(error_docs(root, "processing-failed")) >= 7)
    docs = error_docs(root, "processing-failed")
    assert sorted(base64.b64decode(d["rawData"]) for d in docs) == sorted(sent)
    assert all(d["attemptsMade"] == 3 for d in docs), [d["attemptsMade"] for d in docs]
    assert fns.calls["raise"] == 3, "one call and two retries"
    assert not files(root, "data")


def test_unmapped_lambda_is_refused_at_create(lakehose, firehose):
    with pytest.raises(firehose.exceptions.InvalidArgumentException):
        firehose.create_delivery_stream(
            DeliveryStreamName=unique_name("nofn"),
            ExtendedS3DestinationConfiguration=stream_config("b", [("Lambda", [("LambdaArn", FN + "nowhere")])]),
        )


def test_jq_dynamic_partitioning_and_unsafe_keys(lakehose, firehose):
    bucket, stream = unique_name("dp"), unique_name("dyn")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration=stream_config(
            bucket,
            [
                ("MetadataExtraction", [("MetadataExtractionQuery", "{customer_id:.customer_id}"), ("JsonParsingEngine", "JQ-1.6")]),
                ("AppendDelimiterToRecord", []),
            ],
            prefix="cust/customer_id=!{partitionKeyFromQuery:customer_id}/year=!{timestamp:yyyy}/",
            dynamic=True,
        ),
    )
    good = [{"customer_id": c, "n": i} for i, c in enumerate("abcabcaab")]
    bad = [{"customer_id": "../escape", "n": 100}, {"customer_id": "x/y", "n": 101}, {"n": 102}]
    records = [json.dumps(r).encode() for r in good + bad] + [b"not json"]
    put(firehose, stream, records)
    root = lakehose.bucket_dir(bucket)
    year = time.gmtime().tm_year
    wait_until(lambda: len(lines_under(root, "cust")) >= len(good) and len(error_docs(root, "processing-failed")) >= 4)
    for c in "abc":
        got = [json.loads(line) for line in lines_under(root, f"cust/customer_id={c}/year={year}")]
        assert sorted(r["n"] for r in got) == sorted(r["n"] for r in good if r["customer_id"] == c)
    assert sorted(p.relative_to(root).parts[1] for p in files(root, "cust")) == [
        "customer_id=a", "customer_id=b", "customer_id=c"
    ]
    raw = [base64.b64decode(d["rawData"]).rstrip(b"\n") for d in error_docs(root, "processing-failed")]
    assert sorted(raw) == sorted([json.dumps(r).encode() for r in bad] + [b"not json"])
    assert not any(".." in str(p) for p in files(root)), "nothing escaped the bucket folder"


def cwl_payload(events, control=False):
    doc = {
        "messageType": "CONTROL_MESSAGE" if control else "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/app",
        "logStream": "s1",
        "subscriptionFilters": ["f"],
        "logEvents": [{"id": str(i), "timestamp": 1700000000000 + i, "message": m} for i, m in enumerate(events)],
    }
    return gzip.compress(json.dumps(doc).encode())


def test_cloudwatch_logs_decompression_and_extraction(lakehose, firehose):
    bucket, stream = unique_name("cwl"), unique_name("cwl")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration=stream_config(
            bucket,
            [
                ("Decompression", [("CompressionFormat", "GZIP")]),
                ("CloudWatchLogProcessing", [("DataMessageExtraction", "true")]),
                ("AppendDelimiterToRecord", []),
            ],
        ),
    )
    put(firehose, stream, [cwl_payload(["one", "two", "three"]), cwl_payload(["CWL CONTROL"], control=True),
                            cwl_payload(["four"]), b"not gzip at all"])
    root = lakehose.bucket_dir(bucket)
    wait_until(lambda: len(lines_under(root, "data")) >= 4 and error_docs(root, "decompression-failed"))
    assert lines_under(root, "data") == [b"one", b"two", b"three", b"four"]
    docs = error_docs(root, "decompression-failed")
    assert len(docs) == 1


def test_lakehose_jq_transform_fans_out(lakehose, firehose):
    bucket, stream = unique_name("jq"), unique_name("jq")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration=stream_config(
            bucket,
            [("Lakehose.Jq", [("MetadataExtractionQuery", ".items[] | select(.keep) | {id}")]), ("AppendDelimiterToRecord", [])],
        ),
    )
    put(firehose, stream, [
        json.dumps({"items": [{"id": 1, "keep": True}, {"id": 2, "keep": False}, {"id": 3, "keep": True}]}).encode(),
        json.dumps({"items": []}).encode(),
    ])
    root = lakehose.bucket_dir(bucket)
    wait_until(lambda: len(lines_under(root, "data")) >= 2)
    time.sleep(0.5)
    assert [json.loads(l) for l in lines_under(root, "data")] == [{"id": 1}, {"id": 3}]


def test_s3_backup_keeps_untransformed_source_records(with_lambdas):
    server, _fns = with_lambdas
    client, bucket, backup, stream = server.client(), unique_name("main"), unique_name("backup"), unique_name("bk")
    cfg = stream_config(bucket, [("Lambda", [("LambdaArn", FN + "upper")]), ("AppendDelimiterToRecord", [])])
    cfg["S3BackupMode"] = "Enabled"
    cfg["S3BackupConfiguration"] = {
        "RoleARN": ROLE,
        "BucketARN": f"arn:aws:s3:::{backup}",
        "Prefix": "source/",
        "CompressionFormat": "GZIP",
    }
    client.create_delivery_stream(DeliveryStreamName=stream, ExtendedS3DestinationConfiguration=cfg)
    sent = [b"a", b"b", b"c"]
    put(client, stream, sent)
    root, broot = server.bucket_dir(bucket), server.bucket_dir(backup)
    wait_until(lambda: len(lines_under(root, "data")) >= 3 and files(broot, "source"))
    assert sorted(lines_under(root, "data")) == [b"A", b"B", b"C"]
    backups = files(broot, "source")
    assert all(p.name.endswith(".gz") for p in backups)
    assert b"".join(gzip.decompress(p.read_bytes()) for p in backups) == b"".join(sent)
    d = client.describe_delivery_stream(DeliveryStreamName=stream)["DeliveryStreamDescription"]
    ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["S3BackupMode"] == "Enabled" and ext["S3BackupDescription"]["BucketARN"] == f"arn:aws:s3:::{backup}"


def test_active_partition_limit_sends_the_rest_to_the_error_output(tmp_path, server_factory):
    data = tmp_path / "data"
    data.mkdir()
    (data / "lakehose.toml").write_text("[limits]\nmax_active_partitions = 2\n")
    server = server_factory(data)
    client, bucket, stream = server.client(), unique_name("lim"), unique_name("limit")
    client.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration=stream_config(
            bucket,
            [("MetadataExtraction", [("MetadataExtractionQuery", "{c:.c}"), ("JsonParsingEngine", "JQ-1.6")]),
             ("AppendDelimiterToRecord", [])],
            prefix="p/c=!{partitionKeyFromQuery:c}/",
            dynamic=True,
        ),
    )
    records = [json.dumps({"c": c, "i": i}).encode() for i, c in enumerate("aabbcc")]
    put(client, stream, records)
    root = server.bucket_dir(bucket)
    wait_until(lambda: len(lines_under(root, "p")) >= 4 and len(error_docs(root, "processing-failed")) >= 2)
    delivered = sorted(json.loads(line)["c"] for line in lines_under(root, "p"))
    assert delivered == ["a", "a", "b", "b"]
    docs = error_docs(root, "processing-failed")
    assert [d["errorCode"] for d in docs] == ["DynamicPartitioning.ActivePartitionsLimitExceeded"] * 2
    assert sorted(base64.b64decode(d["rawData"]) for d in docs) == sorted(records[4:])
