"""SigV4 authentication and authorization with the clients users run: boto3 (botocore's signer)
for Firehose and Glue, and the `aws` CLI with credentials from the environment, against a
server with `[auth]` keys. The right key is accepted, a wrong secret or unknown key is refused
with AWS's error codes, and a key limited to one stream is denied everything else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE_ARN, LakehoseServer, unique_name

ADMIN = ("AKIAPYADMIN", "py-admin-secret")
CLICKS = ("AKIAPYCLICKS", "py-clicks-secret")
READER = ("AKIAPYREADER", "py-reader-secret")

CONFIG = f"""
[auth]
[[auth.keys]]
access_key_id = "{ADMIN[0]}"
secret_access_key = "{ADMIN[1]}"
allow = [ {{ actions = ["*"] }} ]

[[auth.keys]]
access_key_id = "{CLICKS[0]}"
secret_access_key = "{CLICKS[1]}"
allow = [ {{ actions = ["firehose:PutRecord*", "firehose:DescribeDeliveryStream"], resources = ["arn:aws:firehose:*:*:deliverystream/py-clicks"] }} ]

[[auth.keys]]
access_key_id = "{READER[0]}"
secret_access_key = "{READER[1]}"
allow = [ {{ actions = ["glue:Get*"] }} ]
"""


@pytest.fixture(scope="module")
def server(configured_server) -> LakehoseServer:
    return configured_server(CONFIG)


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def create_stream(client, name: str) -> None:
    client.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE_ARN,
            "BucketARN": "arn:aws:s3:::py-auth",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        },
    )


def test_boto3_firehose_keys(server: LakehoseServer):
    admin = server.aws("firehose", *ADMIN)
    create_stream(admin, "py-clicks")
    create_stream(admin, "py-views")
    admin.put_record(DeliveryStreamName="py-views", Record={"Data": b"hi\n"})
    described = admin.describe_delivery_stream(DeliveryStreamName="py-clicks")
    assert described["DeliveryStreamDescription"]["DeliveryStreamARN"].endswith(
        ":000000000000:deliverystream/py-clicks"
    )

    with pytest.raises(ClientError) as e:
        server.aws("firehose", ADMIN[0], "wrong-secret").list_delivery_streams()
    assert error_code(e) == "InvalidSignatureException"
    assert "does not match the signature you provided" in str(e.value)

    with pytest.raises(ClientError) as e:
        server.aws("firehose", "AKIAPYNOBODY", "x").list_delivery_streams()
    assert error_code(e) == "UnrecognizedClientException"

    clicks = server.aws("firehose", *CLICKS)
    assert "RecordId" in clicks.put_record(DeliveryStreamName="py-clicks", Record={"Data": b"a\n"})
    batch = clicks.put_record_batch(DeliveryStreamName="py-clicks", Records=[{"Data": b"b\n"}] * 3)
    assert batch["FailedPutCount"] == 0
    clicks.describe_delivery_stream(DeliveryStreamName="py-clicks")
    with pytest.raises(ClientError) as e:
        clicks.put_record(DeliveryStreamName="py-views", Record={"Data": b"c\n"})
    assert error_code(e) == "AccessDeniedException"
    assert e.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::000000000000:user/{CLICKS[0]} is not authorized to perform: "
        "firehose:PutRecord on resource: arn:aws:firehose:us-east-1:000000000000:deliverystream/py-views"
    )
    with pytest.raises(ClientError) as e:
        clicks.delete_delivery_stream(DeliveryStreamName="py-clicks")
    assert error_code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        clicks.list_delivery_streams()
    assert error_code(e) == "AccessDeniedException"
    assert sorted(admin.list_delivery_streams()["DeliveryStreamNames"]) == ["py-clicks", "py-views"]


def test_boto3_glue_keys(server: LakehoseServer):
    db = unique_name("py-auth").replace("-", "_")
    admin = server.aws("glue", *ADMIN)
    admin.create_database(DatabaseInput={"Name": db})

    reader = server.aws("glue", *READER)
    assert reader.get_database(Name=db)["Database"]["Name"] == db
    assert db in [d["Name"] for d in reader.get_databases()["DatabaseList"]]
    with pytest.raises(ClientError) as e:
        reader.delete_database(Name=db)
    assert error_code(e) == "AccessDeniedException"
    assert f"glue:DeleteDatabase on resource: arn:aws:glue:us-east-1:000000000000:database/{db}" in str(e.value)

    with pytest.raises(ClientError) as e:
        server.aws("glue", READER[0], "wrong-secret").get_databases()
    assert error_code(e) == "InvalidSignatureException"
    with pytest.raises(ClientError) as e:
        server.aws("glue", *CLICKS).get_databases()
    assert error_code(e) == "AccessDeniedException"
    admin.delete_database(Name=db)


def aws_cli(server: LakehoseServer, key: tuple[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [shutil.which("aws")] if shutil.which("aws") else [sys.executable, "-m", "awscli"]
    env = dict(os.environ)
    env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = key
    return subprocess.run(
        [*command, "firehose", *args, "--endpoint-url", server.endpoint, "--output", "json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_aws_cli_keys(server: LakehoseServer):
    name = unique_name("py-cli")
    result = aws_cli(
        server,
        ADMIN,
        "create-delivery-stream",
        "--delivery-stream-name",
        name,
        "--extended-s3-destination-configuration",
        json.dumps({"RoleARN": ROLE_ARN, "BucketARN": "arn:aws:s3:::py-auth"}),
    )
    assert result.returncode == 0, result.stderr
    result = aws_cli(server, ADMIN, "list-delivery-streams")
    assert result.returncode == 0, result.stderr
    assert name in json.loads(result.stdout)["DeliveryStreamNames"]

    result = aws_cli(server, (ADMIN[0], "wrong-secret"), "list-delivery-streams")
    assert result.returncode != 0
    assert "InvalidSignatureException" in result.stderr, result.stderr

    result = aws_cli(server, ("AKIAPYNOBODY", "x"), "list-delivery-streams")
    assert result.returncode != 0
    assert "UnrecognizedClientException" in result.stderr, result.stderr

    result = aws_cli(server, CLICKS, "delete-delivery-stream", "--delivery-stream-name", name)
    assert result.returncode != 0
    assert "AccessDeniedException" in result.stderr, result.stderr
