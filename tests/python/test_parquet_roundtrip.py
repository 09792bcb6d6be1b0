"""JSON -> Parquet conversion (crate lakehose-formats, the code the delivery pipeline runs),
independent of the server: the `convert` example converts generated JSON records with a
Glue-style schema, then pyarrow (and DuckDB when installed) read the file back and every value
is compared with what the JSON meant.

The example binary is `$LAKEHOSE_CONVERT_BIN` when set, otherwise it is run with
`cargo run -q -p lakehose-formats --example convert` (CARGO_TARGET_DIR is inherited).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

REPO = Path(__file__).resolve().parents[2]
EPOCH = dt.datetime(1970, 1, 1)

SCHEMA = [
    ["id", "bigint"],
    ["name", "string"],
    ["small", "tinyint"],
    ["medium", "smallint"],
    ["count", "int"],
    ["ratio", "float"],
    ["score", "double"],
    ["ok", "boolean"],
    ["ts", "timestamp"],
    ["day", "date"],
    ["price", "decimal(12,3)"],
    ["tags", "array<string>"],
    ["attrs", "map<string,bigint>"],
    ["device", "struct<os:string,ver:int,screens:array<struct<w:int,h:int>>>"],
]


def run_convert(tmp: Path, records: list[str], config: dict | None = None, threads: int = 1):
    """Converts `records` (one JSON text per line); returns (table, summary, failed lines)."""
    src = tmp / "in.jsonl"
    src.write_text("".join(r + "\n" for r in records), encoding="utf-8")
    schema = tmp / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    out = tmp / f"out-{threads}.parquet"
    failed = tmp / "failed.jsonl"
    args = [str(src), str(out), "--schema", str(schema), "--threads", str(threads), "--failed", str(failed)]
    if config is not None:
        cfg = tmp / "config.json"
        cfg.write_text(json.dumps(config))
        args += ["--config", str(cfg)]
    binary = os.environ.get("LAKEHOSE_CONVERT_BIN")
    cmd = [binary, *args] if binary else ["cargo", "run", "-q", "-p", "lakehose-formats", "--example", "convert", "--", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    fails = [json.loads(line) for line in failed.read_text().splitlines()]
    table = pq.read_table(out) if summary["rows"] else None
    return table, summary, fails


def ts_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def make_records(n: int, seed: int = 7):
    """Records (JSON text) and, for each, the row pyarrow should read back. Keys vary in case,
    values vary in form (ISO / space / epoch timestamps, numbers as text for decimals), and
    optional fields are null or missing."""
    rnd = random.Random(seed)
    records, expected = [], []
    for i in range(n):
        ms = 1_700_000_000_000 + i * 61_001 + rnd.randrange(1000)
        ts_form = i % 4
        if ts_form == 0:
            ts_json = (EPOCH + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        elif ts_form == 1:
            ts_json = (EPOCH + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"
        elif ts_form == 2:
            ts_json = ms  # epoch millis (13 digits)
        else:
            ms -= ms % 1000
            ts_json = ms // 1000  # epoch seconds
        day = dt.date(2020, 1, 1) + dt.timedelta(days=rnd.randrange(3000))
        price_units = rnd.randrange(-10**9, 10**9)  # thousandths
        price = decimal.Decimal(price_units).scaleb(-3)
        tags = [rnd.choice(["a", "b", "ü", 'q"uote', "back\\slash", "tab\tx"]) for _ in range(rnd.randrange(4))]
        attrs = {f"k{j}": rnd.randrange(-5, 10**12) for j in range(rnd.randrange(3))}
        screens = [{"w": rnd.randrange(300, 4000), "h": rnd.randrange(300, 3000)} for _ in range(rnd.randrange(3))]
        name = None if i % 7 == 0 else f"name-{i}-é-😀"
        ratio = rnd.choice([0.5, 1.25, -3.0, 1e10])
        score = rnd.uniform(-1e6, 1e6)
        rec = {
            ("ID" if i % 2 else "id"): i,
            "Name": name,
            "small": rnd.randrange(-128, 128),
            "medium": rnd.randrange(-32768, 32768),
            "count": rnd.randrange(-2**31, 2**31),
            "ratio": ratio,
            "score": score,
            "ok": i % 3 == 0,
            "ts": ts_json,
            "day": day.isoformat(),
            # Decimals as JSON numbers, written from their exact text.
            "price": "__PRICE__",
            "tags": tags,
            "attrs": attrs,
            "device": None if i % 11 == 0 else {"OS": rnd.choice(["ios", "android"]), "ver": rnd.randrange(20), "screens": screens},
            "unknown": {"ignored": [1, 2, 3]},
        }
        if i % 5 == 0:
            del rec["small"]  # missing -> null
        text = json.dumps(rec, ensure_ascii=i % 2 == 0).replace('"__PRICE__"', str(price))
        records.append(text)
        device = rec["device"]
        expected.append(
            {
                "id": i,
                "name": name,
                "small": None if i % 5 == 0 else rec["small"],
                "medium": rec["medium"],
                "count": rec["count"],
                "ratio": ratio,
                "score": score,
                "ok": i % 3 == 0,
                "ts": ts_ms(ms),
                "day": day,
                "price": price,
                "tags": tags,
                "attrs": list(attrs.items()),
                "device": None
                if device is None
                else {"os": device["OS"], "ver": device["ver"], "screens": screens},
            }
        )
    return records, expected


BAD = [
    ('{"id": 1, "count": "not a number"}', "DataFormatConversion.MalformedData"),
    ('{"id": 2, "ts": "last tuesday"}', "DataFormatConversion.MalformedData"),
    ('{"id": 3, "price": 123456789012.5}', "DataFormatConversion.MalformedData"),
    ('{"id": 4, "name": "unterminated}', "DataFormatConversion.ParseError"),
    ('{"id": 5, "small": 300}', "DataFormatConversion.MalformedData"),
    ("[1, 2, 3]", "DataFormatConversion.MalformedData"),
]


def compare(table, expected):
    assert table.num_rows == len(expected)
    rows = table.to_pylist()
    for got, want in zip(rows, expected):
        assert got.keys() == want.keys()
        for key in want:
            g, w = got[key], want[key]
            if key == "ratio" and w is not None:
                assert g == pytest.approx(w, rel=1e-7), (key, got, want)
            else:
                assert g == w, (key, got["id"], g, w)


def test_every_value_round_trips_through_parquet(tmp_path):
    records, expected = make_records(3000)
    # Bad records interleaved: they fail alone, the rest is written in order.
    mixed, bad_at = [], {}
    for i, rec in enumerate(records):
        mixed.append(rec)
        if i % 500 == 250:
            text, code = BAD[len(bad_at) % len(BAD)]
            bad_at[len(mixed)] = code
            mixed.append(text)
    table, summary, fails = run_convert(tmp_path, mixed)
    assert summary["rows"] == len(expected)
    assert {f["index"]: f["errorCode"] for f in fails} == bad_at
    assert summary["unknown_keys"] == ["unknown"]

    types = {f.name: f.type for f in table.schema}
    assert types["ts"] == pa.timestamp("ms")
    assert types["day"] == pa.date32()
    assert types["price"] == pa.decimal128(12, 3)
    assert types["small"] == pa.int8() and types["medium"] == pa.int16()
    assert pa.types.is_map(types["attrs"]) and pa.types.is_struct(types["device"])
    compare(table, expected)

    # Two threads: the same rows in the same order.
    table2, _, fails2 = run_convert(tmp_path, mixed, threads=2)
    assert table2.equals(table)
    assert fails2 == fails


def test_hive_serde_with_timestamp_formats(tmp_path):
    config = {
        "SchemaConfiguration": {"DatabaseName": "db", "TableName": "t", "RoleARN": "arn:aws:iam::123456789012:role/r"},
        "InputFormatConfiguration": {
            "Deserializer": {"HiveJsonSerDe": {"TimestampFormats": ["dd/MMM/yyyy:HH:mm:ss Z", "millis"]}}
        },
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "GZIP", "WriterVersion": "V2"}}},
    }
    records = [
        '{"id": 1, "ts": "01/Mar/2024:11:15:30 +0100"}',
        '{"id": 2, "ts": "1709288130000"}',
        '{"id": 3, "ts": "2024-03-01 10:15:30.5"}',
        '{"id": 4, "count": "12"}',  # Hive refuses numbers given as strings
        '{"id": 5, "device": {"os": "x", "ver": 1, "screens": []}, "tags": ["t"]}',
    ]
    table, summary, fails = run_convert(tmp_path, records, config)
    assert [f["index"] for f in fails] == [3]
    rows = table.to_pylist()
    base = dt.datetime(2024, 3, 1, 10, 15, 30)
    assert [r["ts"] for r in rows] == [base, base, base + dt.timedelta(milliseconds=500), None]
    assert rows[3]["device"] == {"os": "x", "ver": 1, "screens": []}
    assert pq.ParquetFile(tmp_path / "out-1.parquet").metadata.row_group(0).column(0).compression == "GZIP"


def test_duckdb_reads_timestamps_and_decimals(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    records, expected = make_records(50)
    run_convert(tmp_path, records)
    con = duckdb.connect()
    path = str(tmp_path / "out-1.parquet")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{path}'))").fetchall())
    assert types["ts"] == "TIMESTAMP"
    assert types["day"] == "DATE"
    assert types["price"] == "DECIMAL(12,3)"
    got = con.execute(f"SELECT id, ts, price FROM read_parquet('{path}') ORDER BY id").fetchall()
    assert got == [(e["id"], e["ts"], e["price"]) for e in expected]
