"""The Redshift, OpenSearch/Elasticsearch and Splunk destinations through boto3 and the AWS
CLI: create, describe (botocore parses every member), update (merged, version bumped, secrets
kept), validation errors in AWS's shape. Delivery itself is tested in Rust against real
PostgreSQL and protocol-level OpenSearch/Splunk servers (crates/lakehose/tests/integration).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE_ARN, unique_name

JDBC = "jdbc:redshift://analytics.abc123.us-east-1.redshift.amazonaws.com:5439/dev"
DOMAIN = "arn:aws:es:us-east-1:123456789012:domain/logs"
CONFIG = f"""
[redshift_clusters]
"{JDBC}" = "host=127.0.0.1 port=5432 dbname=dev"

[opensearch_domains]
"{DOMAIN}" = "http://127.0.0.1:9200"

[egress]
allow_http_hosts = ["127.0.0.1"]
allow_private = ["127.0.0.0/8"]
"""


def bucket(name: str) -> dict:
    return {"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{name}"}


def describe(client, name: str) -> dict:
    return client.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]


def update(client, name: str, **member) -> None:
    d = describe(client, name)
    client.update_destination(
        DeliveryStreamName=name,
        CurrentDeliveryStreamVersionId=d["VersionId"],
        DestinationId=d["Destinations"][0]["DestinationId"],
        **member,
    )


@pytest.fixture(scope="module")
def server(configured_server):
    return configured_server(CONFIG)


def test_redshift_create_describe_update(server):
    client = server.client()
    name = unique_name("rs")
    client.create_delivery_stream(
        DeliveryStreamName=name,
        RedshiftDestinationConfiguration={
            "RoleARN": ROLE_ARN,
            "ClusterJDBCURL": JDBC,
            "CopyCommand": {"DataTableName": "public.events", "CopyOptions": "JSON 'auto'"},
            "Username": "loader",
            "Password": "loader-password",
            "S3Configuration": {**bucket("stage"), "Prefix": "staged/"},
        },
    )
    d = describe(client, name)
    r = d["Destinations"][0]["RedshiftDestinationDescription"]
    assert r["ClusterJDBCURL"] == JDBC
    assert r["CopyCommand"] == {"DataTableName": "public.events", "CopyOptions": "JSON 'auto'"}
    assert r["Username"] == "loader"
    assert "Password" not in r
    assert r["RetryOptions"] == {"DurationInSeconds": 3600}
    assert r["S3DestinationDescription"]["Prefix"] == "staged/"
    assert r["S3BackupMode"] == "Disabled"

    update(
        client,
        name,
        RedshiftDestinationUpdate={
            "CopyCommand": {"DataTableName": "public.events", "CopyOptions": "CSV DELIMITER '|'"},
            "RetryOptions": {"DurationInSeconds": 60},
        },
    )
    d = describe(client, name)
    r = d["Destinations"][0]["RedshiftDestinationDescription"]
    assert d["VersionId"] == "2"
    assert r["CopyCommand"]["CopyOptions"] == "CSV DELIMITER '|'"
    assert r["RetryOptions"] == {"DurationInSeconds": 60}
    assert r["Username"] == "loader"

    with pytest.raises(ClientError) as e:
        update(client, name, SplunkDestinationUpdate={"HECToken": "x"})
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert "RedshiftDestinationUpdate" in e.value.response["Error"]["Message"]
    client.delete_delivery_stream(DeliveryStreamName=name)


@pytest.mark.parametrize(
    "member,description,domain",
    [
        ("AmazonopensearchserviceDestinationConfiguration", "AmazonopensearchserviceDestinationDescription", False),
        ("ElasticsearchDestinationConfiguration", "ElasticsearchDestinationDescription", True),
    ],
)
def test_opensearch_and_elasticsearch(server, member, description, domain):
    client = server.client()
    name = unique_name("os")
    target = {"DomainARN": DOMAIN} if domain else {"ClusterEndpoint": "http://127.0.0.1:9200"}
    client.create_delivery_stream(
        DeliveryStreamName=name,
        **{
            member: {
                "RoleARN": ROLE_ARN,
                **target,
                "IndexName": "logs",
                "IndexRotationPeriod": "OneHour",
                "S3BackupMode": "AllDocuments",
                "BufferingHints": {"SizeInMBs": 10, "IntervalInSeconds": 30},
                "S3Configuration": bucket("os-backup"),
            }
        },
    )
    o = describe(client, name)["Destinations"][0][description]
    assert o["IndexName"] == "logs"
    assert o["IndexRotationPeriod"] == "OneHour"
    assert o["S3BackupMode"] == "AllDocuments"
    assert o["BufferingHints"] == {"SizeInMBs": 10, "IntervalInSeconds": 30}
    assert o["RetryOptions"] == {"DurationInSeconds": 300}
    assert o["DocumentIdOptions"] == {"DefaultDocumentIdFormat": "FIREHOSE_DEFAULT"}
    assert (o.get("DomainARN") == DOMAIN) if domain else (o.get("ClusterEndpoint") == "http://127.0.0.1:9200")

    update_member = member.replace("Configuration", "Update")
    update(client, name, **{update_member: {"IndexName": "logs-v2"}})
    assert describe(client, name)["Destinations"][0][description]["IndexName"] == "logs-v2"

    with pytest.raises(ClientError) as e:
        client.create_delivery_stream(
            DeliveryStreamName=unique_name("os-bad"),
            **{member: {"RoleARN": ROLE_ARN, "IndexName": "logs", "S3Configuration": bucket("b")}},
        )
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert "DomainARN or ClusterEndpoint" in e.value.response["Error"]["Message"]
    client.delete_delivery_stream(DeliveryStreamName=name)


def test_splunk_with_the_aws_cli(server):
    name = unique_name("splunk")
    config = {
        "HECEndpoint": "http://127.0.0.1:8088",
        "HECEndpointType": "Raw",
        "HECToken": "00000000-0000-0000-0000-000000000000",
        "HECAcknowledgmentTimeoutInSeconds": 300,
        "S3BackupMode": "AllEvents",
        "S3Configuration": bucket("splunk-backup"),
    }
    command = [shutil.which("aws")] if shutil.which("aws") else [sys.executable, "-m", "awscli"]
    out = subprocess.run(
        [
            *command, "firehose", "create-delivery-stream", "--endpoint-url", server.endpoint,
            "--output", "json", "--delivery-stream-name", name,
            "--splunk-destination-configuration", json.dumps(config),
        ],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["DeliveryStreamARN"].endswith(f":deliverystream/{name}")

    client = server.client()
    s = describe(client, name)["Destinations"][0]["SplunkDestinationDescription"]
    assert s["HECEndpointType"] == "Raw"
    assert s["HECAcknowledgmentTimeoutInSeconds"] == 300
    assert s["S3BackupMode"] == "AllEvents"
    assert s["RetryOptions"] == {"DurationInSeconds": 60}
    assert s["BufferingHints"] == {"SizeInMBs": 5, "IntervalInSeconds": 60}

    with pytest.raises(ClientError) as e:
        update(client, name, SplunkDestinationUpdate={"S3BackupMode": "FailedEventsOnly"})
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"

    bad = subprocess.run(
        [
            *command, "firehose", "create-delivery-stream", "--endpoint-url", server.endpoint,
            "--output", "json", "--delivery-stream-name", unique_name("splunk-bad"),
            "--splunk-destination-configuration",
            json.dumps({**config, "HECEndpoint": "http://10.1.2.3:8088"}),
        ],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode != 0
    assert "InvalidArgumentException" in bad.stderr, bad.stderr
    client.delete_delivery_stream(DeliveryStreamName=name)
