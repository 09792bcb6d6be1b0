"""The Glue-compatible catalog (`X-Amz-Target: AWSGlue.<Op>`) on the Firehose endpoint, driven
with boto3's `glue` client (and once with `aws glue`), as users run them."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import LakehoseServer, unique_name

# One column of every Hive type the catalog maps to Arrow, nested types included.
ALL_TYPES = [
    ("c_string", "string"),
    ("c_char", "char(10)"),
    ("c_varchar", "varchar(255)"),
    ("c_tinyint", "tinyint"),
    ("c_smallint", "smallint"),
    ("c_int", "int"),
    ("c_bigint", "bigint"),
    ("c_float", "float"),
    ("c_double", "double"),
    ("c_boolean", "boolean"),
    ("c_timestamp", "timestamp"),
    ("c_date", "date"),
    ("c_decimal", "decimal(38,9)"),
    ("c_binary", "binary"),
    ("c_array", "array<string>"),
    ("c_map", "map<string,bigint>"),
    ("c_struct", "struct<a:int,b:array<struct<c:double,d:map<string,date>>>>"),
]
PARTITION_KEYS = [{"Name": "year", "Type": "int"}, {"Name": "month", "Type": "string"}]


def glue_client(server: LakehoseServer):
    return server.aws("glue")


@pytest.fixture(scope="module")
def glue(lakehose: LakehoseServer):
    return glue_client(lakehose)


def table_input(name: str, description: str = "events", columns=None) -> dict:
    columns = columns if columns is not None else ALL_TYPES
    return {
        "Name": name,
        "Description": description,
        "Owner": "lakehose",
        "Retention": 0,
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t, "Comment": f"a {t}"} for n, t in columns],
            "Location": f"s3://lake/{name}/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                "Parameters": {"serialization.format": "1"},
            },
            "Compressed": False,
        },
        "PartitionKeys": PARTITION_KEYS,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet"},
    }


def partition_input(table: str, year: str, month: str) -> dict:
    return {
        "Values": [year, month],
        "StorageDescriptor": {"Location": f"s3://lake/{table}/year={year}/month={month}/"},
        "Parameters": {},
    }


def values_of(partitions: list[dict]) -> list[list[str]]:
    return [p["Values"] for p in partitions]


def error_code(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# --- databases -------------------------------------------------------------------------------


def test_databases(glue):
    name = unique_name("glue-db")
    glue.create_database(
        DatabaseInput={
            "Name": name.upper(),
            "Description": "a database",
            "LocationUri": "s3://lake/",
            "Parameters": {"owner": "tests"},
        }
    )
    db = glue.get_database(Name=name)["Database"]
    assert db["Name"] == name  # lower-cased, as Glue does
    assert db["Description"] == "a database"
    assert db["LocationUri"] == "s3://lake/"
    assert db["Parameters"] == {"owner": "tests"}
    assert isinstance(db["CreateTime"], datetime.datetime)
    assert db["CatalogId"]
    # Names are case-insensitive on the way in too.
    assert glue.get_database(Name=name.upper())["Database"]["Name"] == name

    with pytest.raises(glue.exceptions.AlreadyExistsException) as exc:
        glue.create_database(DatabaseInput={"Name": name})
    assert "already exists" in str(exc.value)

    extra = [unique_name("glue-db") for _ in range(3)]
    for n in extra:
        glue.create_database(DatabaseInput={"Name": n})
    # GetDatabases pages with NextToken; the paginator follows it to the end.
    first = glue.get_databases(MaxResults=2)
    assert len(first["DatabaseList"]) == 2
    assert first["NextToken"]
    listed = [d["Name"] for page in glue.get_paginator("get_databases").paginate(PaginationConfig={"PageSize": 2}) for d in page["DatabaseList"]]
    assert len(listed) == len(set(listed))
    assert {name, *extra} <= set(listed)
    assert listed == sorted(listed)

    glue.update_database(Name=name, DatabaseInput={"Name": name, "Description": "updated"})
    assert glue.get_database(Name=name)["Database"]["Description"] == "updated"

    for n in [name, *extra]:
        glue.delete_database(Name=n)
    with pytest.raises(glue.exceptions.EntityNotFoundException) as exc:
        glue.get_database(Name=name)
    assert error_code(exc) == "EntityNotFoundException"
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.delete_database(Name=name)
    remaining = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    assert not ({name, *extra} & remaining)


# --- tables ----------------------------------------------------------------------------------


def test_tables_with_every_hive_type_and_versions(glue):
    db = unique_name("glue-tables")
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_table(DatabaseName=db, TableInput=table_input("Events"))

    table = glue.get_table(DatabaseName=db, Name="events")["Table"]
    assert table["Name"] == "events"
    assert table["DatabaseName"] == db
    assert table["VersionId"] == "0"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"] == {"classification": "parquet"}
    assert isinstance(table["CreateTime"], datetime.datetime)
    assert isinstance(table["UpdateTime"], datetime.datetime)
    sd = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == ALL_TYPES
    assert sd["Columns"][0]["Comment"] == "a string"
    assert sd["Location"] == "s3://lake/Events/"
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert sd["SerdeInfo"]["Parameters"] == {"serialization.format": "1"}
    assert table["PartitionKeys"] == PARTITION_KEYS

    with pytest.raises(glue.exceptions.AlreadyExistsException):
        glue.create_table(DatabaseName=db, TableInput=table_input("events"))

    # UpdateTable makes a new version each time; old versions stay readable.
    glue.update_table(DatabaseName=db, TableInput=table_input("events", description="v1"))
    glue.update_table(
        DatabaseName=db,
        TableInput=table_input("events", description="v2", columns=ALL_TYPES + [("added", "string")]),
    )
    table = glue.get_table(DatabaseName=db, Name="events")["Table"]
    assert table["VersionId"] == "2"
    assert table["Description"] == "v2"
    assert table["StorageDescriptor"]["Columns"][-1] == {"Name": "added", "Type": "string", "Comment": "a string"}
    versions = glue.get_table_versions(DatabaseName=db, TableName="events")["TableVersions"]
    assert sorted(v["VersionId"] for v in versions) == ["0", "1", "2"]
    v1 = glue.get_table_version(DatabaseName=db, TableName="events", VersionId="1")["TableVersion"]
    assert v1["VersionId"] == "1"
    assert v1["Table"]["Description"] == "v1"
    # An UpdateTable naming a stale VersionId is refused.
    with pytest.raises(glue.exceptions.ConcurrentModificationException):
        glue.update_table(DatabaseName=db, TableInput=table_input("events"), VersionId="1")

    # GetTables pages with NextToken.
    for n in ["logs_a", "logs_b", "metrics"]:
        glue.create_table(DatabaseName=db, TableInput=table_input(n))
    first = glue.get_tables(DatabaseName=db, MaxResults=3)
    assert [t["Name"] for t in first["TableList"]] == ["events", "logs_a", "logs_b"]
    second = glue.get_tables(DatabaseName=db, MaxResults=3, NextToken=first["NextToken"])
    assert [t["Name"] for t in second["TableList"]] == ["metrics"]
    assert "NextToken" not in second
    paged = [
        t["Name"]
        for page in glue.get_paginator("get_tables").paginate(DatabaseName=db, PaginationConfig={"PageSize": 1})
        for t in page["TableList"]
    ]
    assert paged == ["events", "logs_a", "logs_b", "metrics"]
    logs = glue.get_tables(DatabaseName=db, Expression="logs*")["TableList"]
    assert [t["Name"] for t in logs] == ["logs_a", "logs_b"]

    glue.delete_table(DatabaseName=db, Name="metrics")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName=db, Name="metrics")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.delete_table(DatabaseName=db, Name="metrics")

    # Deleting the database deletes its tables.
    glue.delete_database(Name=db)
    glue.create_database(DatabaseInput={"Name": db})
    assert glue.get_tables(DatabaseName=db)["TableList"] == []
    glue.delete_database(Name=db)


# --- partitions ------------------------------------------------------------------------------


def test_partitions(glue):
    db = unique_name("glue-parts")
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_table(DatabaseName=db, TableInput=table_input("events"))

    created = glue.batch_create_partition(
        DatabaseName=db,
        TableName="events",
        PartitionInputList=[
            partition_input("events", "2024", "01"),
            partition_input("events", "2024", "02"),
            partition_input("events", "2023", "12"),
            partition_input("events", "999", "01"),
        ],
    )
    assert created.get("Errors", []) == []

    # One duplicate in the batch: an error entry for it, the others are created.
    again = glue.batch_create_partition(
        DatabaseName=db,
        TableName="events",
        PartitionInputList=[partition_input("events", "2024", "01"), partition_input("events", "2024", "03")],
    )
    assert len(again["Errors"]) == 1
    assert again["Errors"][0]["PartitionValues"] == ["2024", "01"]
    assert again["Errors"][0]["ErrorDetail"]["ErrorCode"] == "AlreadyExistsException"
    assert again["Errors"][0]["ErrorDetail"]["ErrorMessage"]

    part = glue.get_partition(DatabaseName=db, TableName="events", PartitionValues=["2024", "03"])["Partition"]
    assert part["Values"] == ["2024", "03"]
    assert part["DatabaseName"] == db
    assert part["TableName"] == "events"
    assert part["StorageDescriptor"]["Location"] == "s3://lake/events/year=2024/month=03/"
    assert isinstance(part["CreationTime"], datetime.datetime)

    everything = glue.get_partitions(DatabaseName=db, TableName="events")["Partitions"]
    assert values_of(everything) == [["2023", "12"], ["2024", "01"], ["2024", "02"], ["2024", "03"], ["999", "01"]]
    filtered = glue.get_partitions(
        DatabaseName=db, TableName="events", Expression="year = '2024' AND month IN ('01', '03')"
    )["Partitions"]
    assert values_of(filtered) == [["2024", "01"], ["2024", "03"]]
    # `year` is an int key, so it compares as a number (999 < 2000).
    old = glue.get_partitions(DatabaseName=db, TableName="events", Expression="year < 2000")["Partitions"]
    assert values_of(old) == [["999", "01"]]
    paged = [
        p["Values"]
        for page in glue.get_paginator("get_partitions").paginate(
            DatabaseName=db, TableName="events", PaginationConfig={"PageSize": 2}
        )
        for p in page["Partitions"]
    ]
    assert paged == values_of(everything)

    deleted = glue.batch_delete_partition(
        DatabaseName=db,
        TableName="events",
        PartitionsToDelete=[{"Values": ["2024", "01"]}, {"Values": ["1900", "01"]}],
    )
    assert len(deleted["Errors"]) == 1
    assert deleted["Errors"][0]["PartitionValues"] == ["1900", "01"]
    assert deleted["Errors"][0]["ErrorDetail"]["ErrorCode"] == "EntityNotFoundException"
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_partition(DatabaseName=db, TableName="events", PartitionValues=["2024", "01"])
    remaining = glue.get_partitions(DatabaseName=db, TableName="events")["Partitions"]
    assert values_of(remaining) == [["2023", "12"], ["2024", "02"], ["2024", "03"], ["999", "01"]]
    glue.delete_database(Name=db)


# --- errors ----------------------------------------------------------------------------------


def test_errors(glue):
    db = unique_name("glue-errors")
    missing = unique_name("missing")

    with pytest.raises(glue.exceptions.EntityNotFoundException) as exc:
        glue.get_database(Name=missing)
    assert missing in exc.value.response["Error"]["Message"]
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.create_table(DatabaseName=missing, TableInput=table_input("t"))
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_tables(DatabaseName=missing)

    glue.create_database(DatabaseInput={"Name": db})
    with pytest.raises(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": db})
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName=db, Name=missing)
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.update_table(DatabaseName=db, TableInput=table_input(missing))
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.batch_create_partition(
            DatabaseName=db, TableName=missing, PartitionInputList=[partition_input(missing, "1", "1")]
        )

    # An unknown Hive type is refused with Hive's (Glue's) message.
    with pytest.raises(glue.exceptions.InvalidInputException) as exc:
        glue.create_table(DatabaseName=db, TableInput=table_input("bad", columns=[("x", "double precision")]))
    assert "type expected at the position 0" in exc.value.response["Error"]["Message"]
    with pytest.raises(glue.exceptions.InvalidInputException):
        glue.create_table(DatabaseName=db, TableInput=table_input("bad", columns=[("x", "array<int")]))
    # A name longer than Glue allows.
    with pytest.raises(glue.exceptions.InvalidInputException):
        glue.create_database(DatabaseInput={"Name": "x" * 256})

    glue.create_table(DatabaseName=db, TableInput=table_input("t"))
    # Wrong number of partition values.
    with pytest.raises(glue.exceptions.InvalidInputException):
        glue.create_partition(DatabaseName=db, TableName="t", PartitionInput={"Values": ["2024"]})
    bad = glue.batch_create_partition(DatabaseName=db, TableName="t", PartitionInputList=[{"Values": ["2024"]}])
    assert bad["Errors"][0]["ErrorDetail"]["ErrorCode"] == "InvalidInputException"
    # An expression naming no partition key.
    with pytest.raises(glue.exceptions.InvalidInputException):
        glue.get_partitions(DatabaseName=db, TableName="t", Expression="day = '01'")
    # Out-of-range page size (botocore does not check maximums; the server does).
    with pytest.raises(glue.exceptions.InvalidInputException):
        glue.get_tables(DatabaseName=db, MaxResults=1000)
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_partition(DatabaseName=db, TableName="t", PartitionValues=["2024", "01"])
    glue.delete_database(Name=db)


# --- durability ------------------------------------------------------------------------------


def test_catalog_survives_restart(server_factory):
    first = server_factory()
    glue = glue_client(first)
    db = unique_name("glue-restart")
    glue.create_database(DatabaseInput={"Name": db, "Description": "kept"})
    glue.create_table(DatabaseName=db, TableInput=table_input("events"))
    glue.update_table(DatabaseName=db, TableInput=table_input("events", description="v1"))
    glue.create_table(DatabaseName=db, TableInput=table_input("dropped"))
    glue.delete_table(DatabaseName=db, Name="dropped")
    glue.batch_create_partition(
        DatabaseName=db,
        TableName="events",
        PartitionInputList=[partition_input("events", "2024", "01"), partition_input("events", "2024", "02")],
    )
    code = first.stop()
    assert code == 0, f"SIGTERM should stop lakehose cleanly (exit {code})"

    second = server_factory(first.data_dir)
    glue = glue_client(second)
    assert glue.get_database(Name=db)["Database"]["Description"] == "kept"
    table = glue.get_table(DatabaseName=db, Name="events")["Table"]
    assert table["VersionId"] == "1"
    assert table["Description"] == "v1"
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == ALL_TYPES
    assert glue.get_table_version(DatabaseName=db, TableName="events", VersionId="0")["TableVersion"]["Table"][
        "Description"
    ] == "events"
    assert [t["Name"] for t in glue.get_tables(DatabaseName=db)["TableList"]] == ["events"]
    partitions = glue.get_partitions(DatabaseName=db, TableName="events")["Partitions"]
    assert values_of(partitions) == [["2024", "01"], ["2024", "02"]]
    # Versions continue where they were.
    glue.update_table(DatabaseName=db, TableInput=table_input("events", description="v2"))
    assert glue.get_table(DatabaseName=db, Name="events")["Table"]["VersionId"] == "2"

    # SIGKILL right after a write: it was durable before the answer.
    glue.batch_create_partition(
        DatabaseName=db, TableName="events", PartitionInputList=[partition_input("events", "2024", "03")]
    )
    second.kill()
    third = server_factory(first.data_dir)
    glue = glue_client(third)
    partitions = glue.get_partitions(DatabaseName=db, TableName="events")["Partitions"]
    assert values_of(partitions) == [["2024", "01"], ["2024", "02"], ["2024", "03"]]
    assert third.stop() == 0


# --- AWS CLI ---------------------------------------------------------------------------------


def aws_glue(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    command = [shutil.which("aws")] if shutil.which("aws") else [sys.executable, "-m", "awscli"]
    return subprocess.run(
        [*command, "glue", *args, "--endpoint-url", endpoint, "--output", "json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_aws_cli_glue(lakehose: LakehoseServer):
    db = unique_name("glue-cli")
    result = aws_glue(lakehose.endpoint, "create-database", "--database-input", json.dumps({"Name": db}))
    assert result.returncode == 0, result.stderr
    result = aws_glue(
        lakehose.endpoint,
        "create-table",
        "--database-name",
        db,
        "--table-input",
        json.dumps(table_input("cli_table")),
    )
    assert result.returncode == 0, result.stderr
    result = aws_glue(lakehose.endpoint, "get-table", "--database-name", db, "--name", "cli_table")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Table"]["VersionId"] == "0"
    result = aws_glue(lakehose.endpoint, "get-tables", "--database-name", db)
    assert result.returncode == 0, result.stderr
    assert [t["Name"] for t in json.loads(result.stdout)["TableList"]] == ["cli_table"]
    missing = aws_glue(lakehose.endpoint, "get-database", "--name", unique_name("missing"))
    assert missing.returncode != 0
    assert "EntityNotFoundException" in missing.stderr, missing.stderr
    result = aws_glue(lakehose.endpoint, "delete-database", "--name", db)
    assert result.returncode == 0, result.stderr
