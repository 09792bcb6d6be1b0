"""Client smoke tests: the real `lakehose` binary driven by boto3 and the AWS CLI, checked
against documented Firehose behaviour (shared/reference/firehose.md), and the delivered
objects read back with independent decoders (gzip, zipfile, python-snappy)."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from collections import Counter
from datetime import datetime, timezone

import pytest
import snappy
from botocore.exceptions import ClientError

from conftest import EXTENSIONS, REGION, ROLE_ARN, LakehoseServer, object_key_pattern, unique_name

BUCKET = "smoke"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
DESTINATION_ID = "destinationId-000000000001"
MAX_RECORD_BYTES = 1_024_000


def s3_config(compression: str = "GZIP", **extra) -> dict:
    config = {
        "RoleARN": ROLE_ARN,
        "BucketARN": BUCKET_ARN,
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        "CompressionFormat": compression,
    }
    config.update(extra)
    return config


def wait_active(client, name: str, timeout: float = 15.0) -> dict:
    """Polls DescribeDeliveryStream until ACTIVE (creation is asynchronous in Firehose)."""
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        if description["DeliveryStreamStatus"] == "ACTIVE":
            return description
        assert description["DeliveryStreamStatus"] == "CREATING", description
        if time.monotonic() > deadline:
            pytest.fail(f"stream {name} still {description['DeliveryStreamStatus']} after {timeout} s")
        time.sleep(0.2)


def create_stream(client, name: str, compression: str = "GZIP", **extra) -> dict:
    response = client.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration=s3_config(compression, **extra),
    )
    assert re.fullmatch(
        rf"arn:aws:firehose:{REGION}:\d{{12}}:deliverystream/{re.escape(name)}",
        response["DeliveryStreamARN"],
    ), response
    return wait_active(client, name)


def wait_deleted(client, name: str, timeout: float = 15.0) -> None:
    """After DeleteDeliveryStream the stream may show DELETING for a while, then is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            description = client.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        except ClientError as e:
            assert error_code(e) == "ResourceNotFoundException", e.response
            return
        assert description["DeliveryStreamStatus"] == "DELETING", description
        if time.monotonic() > deadline:
            pytest.fail(f"stream {name} still DELETING after {timeout} s")
        time.sleep(0.2)


def error_code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def expect_error(code: str, call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    assert error_code(info.value) == code, info.value.response
    return info.value


def records(stream: str, count: int, size: int = 0, tag: str = "r") -> list[bytes]:
    """Distinct newline-terminated records; `size` pads each with incompressible-ish text."""
    rng = random.Random(f"{stream}-{tag}")
    out = []
    for i in range(count):
        head = f"{stream} {tag} {i:06d}"
        pad = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(max(0, size - len(head) - 2)))
        out.append(f"{head} {pad}\n".encode())
    return out


def put_all(client, stream: str, data: list[bytes], batch: int = 500) -> None:
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        response = client.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": d} for d in chunk])
        assert response["FailedPutCount"] == 0, response["RequestResponses"][:3]
        assert len(response["RequestResponses"]) == len(chunk)


def check_keys(objects: dict[str, bytes], stream: str, extension: str, version: str = "1") -> None:
    pattern = object_key_pattern(stream, extension)
    assert objects, "no objects"
    for key in objects:
        match = pattern.match(key)
        assert match, f"object key {key!r} does not follow Firehose naming {pattern.pattern}"
        assert match["version"] == version, key
        # The timestamp is the arrival time of the oldest record: recent, in UTC.
        stamp = datetime.strptime(
            "-".join([match["y"], match["m"], match["d"], match["h"]]), "%Y-%m-%d-%H"
        )
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        assert abs((now - stamp).total_seconds()) < 2 * 3600, key


def assert_exactly(found: Counter, sent: list[bytes]) -> None:
    want = Counter(sent)
    extra = found - want
    assert not extra, f"{sum(extra.values())} unexpected or duplicated record(s), e.g. {list(extra)[:3]}"
    assert found == want


# --- decoders --------------------------------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


SNAPPY_STREAM_IDENTIFIER = b"\xff\x06\x00\x00sNaPpY"


def decode_snappy_framing_strict(data: bytes) -> bytes:
    """The snappy framing format, checked chunk by chunk (types, lengths, masked CRC32C)."""
    if not data.startswith(SNAPPY_STREAM_IDENTIFIER):
        raise ValueError("snappy stream does not start with the stream identifier")
    out = bytearray()
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("truncated snappy chunk header")
        kind = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "little")
        body = data[pos + 4 : pos + 4 + length]
        if len(body) != length:
            raise ValueError("truncated snappy chunk")
        pos += 4 + length
        if kind == 0xFF:
            if body != b"sNaPpY":
                raise ValueError("bad snappy stream identifier")
        elif kind in (0x00, 0x01):
            (crc,) = struct.unpack_from("<I", body)
            chunk = snappy.uncompress(body[4:]) if kind == 0x00 else body[4:]
            if len(chunk) > 65536:
                raise ValueError(f"snappy chunk of {len(chunk)} bytes (max 65536)")
            if masked_crc32c(chunk) != crc:
                raise ValueError("snappy chunk checksum mismatch")
            out += chunk
        elif 0x02 <= kind <= 0x7F:
            raise ValueError(f"reserved unskippable snappy chunk type {kind:#x}")
        # 0x80-0xfe: skippable (padding, reserved)
    return bytes(out)


def decode_snappy_framed(data: bytes) -> bytes:
    strict = decode_snappy_framing_strict(data)
    decompressor = snappy.StreamDecompressor()
    decoded = decompressor.decompress(data) + decompressor.flush()
    # python-snappy keeps an incomplete last chunk aside instead of failing.
    assert not getattr(decompressor, "remains", None), "python-snappy left undecoded bytes"
    assert decoded == strict, "python-snappy's framing decoder disagrees with the strict decoder"
    return strict


def decode_hadoop_snappy_blocks(data: bytes) -> bytes:
    """Hadoop's BlockCompressorStream: [u32 BE raw length] then [u32 BE compressed length]
    [raw snappy block] chunks until the block's raw length is reached; repeated."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        (raw_len,) = struct.unpack_from(">I", data, pos)
        pos += 4
        got = 0
        while got < raw_len:
            (compressed_len,) = struct.unpack_from(">I", data, pos)
            pos += 4
            if pos + compressed_len > len(data):
                raise ValueError("truncated hadoop-snappy chunk")
            chunk = snappy.uncompress(data[pos : pos + compressed_len])
            pos += compressed_len
            got += len(chunk)
            out += chunk
        if got != raw_len:
            raise ValueError(f"hadoop-snappy block declares {raw_len} raw bytes, chunks hold {got}")
    return bytes(out)


def _library_hadoop_decompressor():
    module = getattr(snappy, "hadoop_snappy", None)
    if module is not None and hasattr(module, "StreamDecompressor"):
        return module.StreamDecompressor
    return getattr(snappy, "HadoopStreamDecompressor", None)


def decode_hadoop_snappy(data: bytes) -> bytes:
    strict = decode_hadoop_snappy_blocks(data)
    library = _library_hadoop_decompressor()
    if library is not None:
        decompressor = library()
        decoded = decompressor.decompress(data) + decompressor.flush()
        assert decoded == strict, "python-snappy's hadoop decoder disagrees with the block decoder"
    return strict


def decode_zip(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        if len(names) != 1:
            raise AssertionError(f"zip object has {len(names)} entries: {names}")
        return archive.read(names[0])


DECODERS = {
    "UNCOMPRESSED": lambda data: data,
    "GZIP": gzip.decompress,
    "ZIP": decode_zip,
    "Snappy": decode_snappy_framed,
    "HADOOP_SNAPPY": decode_hadoop_snappy,
}


# --- boto3 -----------------------------------------------------------------------------------


def test_control_plane(firehose):
    name = unique_name("control")
    description = create_stream(firehose, name)

    assert description["DeliveryStreamName"] == name
    assert description["DeliveryStreamARN"].endswith(f":deliverystream/{name}")
    assert description["VersionId"] == "1"
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["DeliveryStreamType"] == "DirectPut"
    assert description["HasMoreDestinations"] is False
    assert isinstance(description["CreateTimestamp"], datetime)
    assert description["DeliveryStreamEncryptionConfiguration"]["Status"] == "DISABLED"
    [destination] = description["Destinations"]
    assert destination["DestinationId"] == DESTINATION_ID
    s3 = destination["ExtendedS3DestinationDescription"]
    assert s3["RoleARN"] == ROLE_ARN
    assert s3["BucketARN"] == BUCKET_ARN
    assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1}
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["EncryptionConfiguration"] == {"NoEncryptionConfig": "NoEncryption"}
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is False
    assert s3["S3BackupMode"] == "Disabled"

    names = firehose.list_delivery_streams(Limit=10000)
    assert name in names["DeliveryStreamNames"]
    assert names["HasMoreDeliveryStreams"] is False
    assert names["DeliveryStreamNames"] == sorted(names["DeliveryStreamNames"])

    # Tags.
    firehose.tag_delivery_stream(
        DeliveryStreamName=name, Tags=[{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "test"}]
    )
    tags = firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)
    assert {t["Key"]: t["Value"] for t in tags["Tags"]} == {"team": "data", "env": "test"}
    assert tags["HasMoreTags"] is False
    firehose.untag_delivery_stream(DeliveryStreamName=name, TagKeys=["env"])
    tags = firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)
    assert tags["Tags"] == [{"Key": "team", "Value": "data"}]

    # UpdateDestination bumps the version; a stale version is a ConcurrentModificationException.
    firehose.update_destination(
        DeliveryStreamName=name,
        CurrentDeliveryStreamVersionId="1",
        DestinationId=DESTINATION_ID,
        ExtendedS3DestinationUpdate={"Prefix": "updated/", "BufferingHints": {"SizeInMBs": 2, "IntervalInSeconds": 5}},
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert description["VersionId"] == "2"
    assert isinstance(description.get("LastUpdateTimestamp"), datetime), description
    s3 = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["Prefix"] == "updated/"
    assert s3["BufferingHints"] == {"SizeInMBs": 2, "IntervalInSeconds": 5}
    assert s3["CompressionFormat"] == "GZIP", "fields not in the update are kept"
    assert s3["BucketARN"] == BUCKET_ARN
    expect_error(
        "ConcurrentModificationException",
        firehose.update_destination,
        DeliveryStreamName=name,
        CurrentDeliveryStreamVersionId="1",
        DestinationId=DESTINATION_ID,
        ExtendedS3DestinationUpdate={"Prefix": "stale/"},
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert description["VersionId"] == "2", "a rejected update changes nothing"
    assert description["Destinations"][0]["ExtendedS3DestinationDescription"]["Prefix"] == "updated/"

    expect_error(
        "ResourceInUseException",
        firehose.create_delivery_stream,
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration=s3_config(),
    )

    firehose.delete_delivery_stream(DeliveryStreamName=name)
    wait_deleted(firehose, name)
    assert name not in firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]


def test_unknown_stream_is_resource_not_found(firehose):
    name = unique_name("missing")
    expect_error("ResourceNotFoundException", firehose.describe_delivery_stream, DeliveryStreamName=name)
    expect_error("ResourceNotFoundException", firehose.put_record, DeliveryStreamName=name, Record={"Data": b"x\n"})
    expect_error(
        "ResourceNotFoundException",
        firehose.put_record_batch,
        DeliveryStreamName=name,
        Records=[{"Data": b"x\n"}],
    )
    expect_error("ResourceNotFoundException", firehose.delete_delivery_stream, DeliveryStreamName=name)
    expect_error("ResourceNotFoundException", firehose.list_tags_for_delivery_stream, DeliveryStreamName=name)
    expect_error(
        "ResourceNotFoundException",
        firehose.update_destination,
        DeliveryStreamName=name,
        CurrentDeliveryStreamVersionId="1",
        DestinationId=DESTINATION_ID,
        ExtendedS3DestinationUpdate={"Prefix": "x/"},
    )


def test_put_and_deliver_gzip(lakehose: LakehoseServer, firehose):
    name = unique_name("gzip")
    create_stream(firehose, name, "GZIP")

    single = records(name, 1, tag="single")[0]
    response = firehose.put_record(DeliveryStreamName=name, Record={"Data": single})
    assert isinstance(response["RecordId"], str) and response["RecordId"]
    assert response["Encrypted"] is False

    # Rejected requests store nothing. botocore checks only the minimum of a list client-side,
    # so 501 records reach the server; so does a record one byte over the 1,024,000 limit.
    expect_error(
        "InvalidArgumentException",
        firehose.put_record_batch,
        DeliveryStreamName=name,
        Records=[{"Data": d} for d in records(name, 501, tag="too-many")],
    )
    expect_error(
        "InvalidArgumentException",
        firehose.put_record_batch,
        DeliveryStreamName=name,
        Records=[{"Data": records(name, 1, tag="beside-oversized")[0]}, {"Data": b"o" * (MAX_RECORD_BYTES + 1)}],
    )
    expect_error(
        "InvalidArgumentException",
        firehose.put_record,
        DeliveryStreamName=name,
        Record={"Data": b"o" * (MAX_RECORD_BYTES + 1)},
    )

    batch = records(name, 500, tag="batch")
    response = firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": d} for d in batch])
    assert response["FailedPutCount"] == 0, response["RequestResponses"][:3]
    assert response["Encrypted"] is False
    ids = [r["RecordId"] for r in response["RequestResponses"]]
    assert len(ids) == 500 and all(ids), response["RequestResponses"][:3]
    assert len(set(ids)) == 500, "record ids are distinct"
    assert all(set(r) == {"RecordId"} for r in response["RequestResponses"])

    sent = [single, *batch]
    objects, found = lakehose.wait_for_records(BUCKET, name, ".gz", gzip.decompress, sent)
    assert_exactly(found, sent)
    check_keys(objects, name, ".gz")

    firehose.delete_delivery_stream(DeliveryStreamName=name)
    wait_deleted(firehose, name)


@pytest.mark.parametrize("compression", ["Snappy", "HADOOP_SNAPPY", "ZIP"])
def test_compression_formats(lakehose: LakehoseServer, firehose, compression):
    name = unique_name(compression.lower().replace("_", "-"))
    description = create_stream(firehose, name, compression)
    assert description["Destinations"][0]["ExtendedS3DestinationDescription"]["CompressionFormat"] == compression

    # ~330 KB: several snappy frames (64 KiB) and hadoop blocks (256 KiB).
    sent = records(name, 330, size=1000)
    put_all(firehose, name, sent, batch=110)

    extension = EXTENSIONS[compression]
    objects, found = lakehose.wait_for_records(BUCKET, name, extension, DECODERS[compression], sent)
    assert_exactly(found, sent)
    check_keys(objects, name, extension)
    if compression == "ZIP":
        for key, data in objects.items():
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                assert archive.testzip() is None, key
                assert len(archive.infolist()) == 1, (key, archive.namelist())

    firehose.delete_delivery_stream(DeliveryStreamName=name)
    wait_deleted(firehose, name)


def test_restart_keeps_streams_and_acknowledged_records(server_factory):
    first = server_factory()
    client = first.client()
    name = unique_name("restart")
    create_stream(client, name, "UNCOMPRESSED")
    sent = records(name, 200, tag="before-kill")
    put_all(client, name, sent, batch=100)
    first.kill()  # SIGKILL right after the acks: the write-ahead log must have them

    second = server_factory(first.data_dir)
    client = second.client()
    description = wait_active(client, name)
    assert description["VersionId"] == "1"
    after = records(name, 50, tag="after-restart")
    put_all(client, name, after)

    _, found = second.wait_for_records(BUCKET, name, "", DECODERS["UNCOMPRESSED"], sent + after)
    # At least once across a crash; nothing that was never sent.
    assert not (found - Counter(sent + after)), "records that were never sent were delivered"

    code = second.stop()
    assert code == 0, f"SIGTERM should stop lakehose cleanly (exit {code}; None = needed SIGKILL)"


# --- AWS CLI ---------------------------------------------------------------------------------


def aws_command() -> list[str]:
    path = shutil.which("aws")
    return [path] if path else [sys.executable, "-m", "awscli"]


def aws(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*aws_command(), "firehose", *args, "--endpoint-url", endpoint, "--output", "json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def aws_ok(endpoint: str, *args: str) -> dict:
    result = aws(endpoint, *args)
    assert result.returncode == 0, f"aws firehose {' '.join(args)[:200]} -> {result.returncode}\n{result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else {}


def binary_format_args() -> list[str]:
    """CLI v2 reads blobs as base64 unless told otherwise; v1 always takes them raw (and has
    no --cli-binary-format option)."""
    version = subprocess.run([*aws_command(), "--version"], capture_output=True, text=True, timeout=60)
    text = version.stdout + version.stderr
    return ["--cli-binary-format", "raw-in-base64-out"] if text.startswith("aws-cli/2") else []


def test_aws_cli(lakehose: LakehoseServer):
    endpoint = lakehose.endpoint
    name = unique_name("cli")
    config = json.dumps(s3_config("UNCOMPRESSED"))
    created = aws_ok(
        endpoint,
        "create-delivery-stream",
        "--delivery-stream-name",
        name,
        "--delivery-stream-type",
        "DirectPut",
        "--extended-s3-destination-configuration",
        config,
    )
    assert created["DeliveryStreamARN"].endswith(f":deliverystream/{name}"), created

    deadline = time.monotonic() + 15
    while True:
        description = aws_ok(endpoint, "describe-delivery-stream", "--delivery-stream-name", name)[
            "DeliveryStreamDescription"
        ]
        if description["DeliveryStreamStatus"] == "ACTIVE" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["DeliveryStreamName"] == name
    assert description["VersionId"] == "1"
    s3 = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == BUCKET_ARN
    assert s3["CompressionFormat"] == "UNCOMPRESSED"

    put = aws_ok(
        endpoint,
        "put-record",
        "--delivery-stream-name",
        name,
        *binary_format_args(),
        "--record",
        "Data=cli-record-1",
    )
    assert put["RecordId"], put

    listed = aws_ok(endpoint, "list-delivery-streams", "--limit", "10000")
    assert name in listed["DeliveryStreamNames"], listed

    # The raw bytes land as sent (no base64 left over), in an object without extension.
    objects, found = lakehose.wait_for_records(
        BUCKET, name, "", DECODERS["UNCOMPRESSED"], [b"cli-record-1"], split=lambda data: [data]
    )
    assert found == Counter([b"cli-record-1"])
    check_keys(objects, name, "")

    aws_ok(endpoint, "delete-delivery-stream", "--delivery-stream-name", name)

    missing = aws(endpoint, "describe-delivery-stream", "--delivery-stream-name", unique_name("missing"))
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr, missing.stderr
