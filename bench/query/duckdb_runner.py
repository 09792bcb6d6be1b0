#!/usr/bin/env python3
"""The DuckDB side of `lakehose bench query`.

Reads a JSON spec on stdin:

    {"root": "<data dir>", "threads": 2, "warmup": 1, "runs": 5, "max_rows": 1000,
     "queries": [{"name": "scan", "sql": "SELECT ..."}, ...]}

creates the views `events` (the Parquet files Lakehose wrote, hive-partitioned by `dt`, kept
a string as in the Glue table) and `countries` over the same files the Lakehose side reads,
runs each query `warmup` times untimed and `runs` times timed, and prints one JSON object on
stdout:

    {"version": "v1.x", "threads": 2, "queries": [{"name", "median_ms", "times_ms", "rows",
     "first_rows": [[...]], "error"}]}

Values are normalised the way the Rust side normalises Lakehose's: integers stay integers,
decimals become floats, timestamps become microseconds since the epoch (naive ones read as
UTC), dates days since the epoch.

DuckDB runs with its defaults except `threads`, set to the same count Lakehose uses.
"""

import datetime
import decimal
import json
import statistics
import sys
import time

import duckdb

EPOCH = datetime.datetime(1970, 1, 1)
EPOCH_DATE = datetime.date(1970, 1, 1)


def normalise(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        delta = v - EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(v, datetime.date):
        return (v - EPOCH_DATE).days
    return str(v)


def quote(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    spec = json.load(sys.stdin)
    root = spec["root"].rstrip("/")
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(spec['threads'])}")
    # The progress bar writes to stdout, which carries the answer.
    con.execute("SET enable_progress_bar = false")
    events = quote(f"{root}/buckets/bench/events/*/*.parquet")
    countries = quote(f"{root}/buckets/bench/countries/*.parquet")
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet({events}, "
        "hive_partitioning = true, hive_types = {'dt': 'VARCHAR'})"
    )
    con.execute(f"CREATE VIEW countries AS SELECT * FROM read_parquet({countries})")
    out = []
    for q in spec["queries"]:
        entry = {"name": q["name"]}
        try:
            for _ in range(int(spec.get("warmup", 1))):
                con.execute(q["sql"]).fetchall()
            times = []
            rows = []
            for _ in range(int(spec["runs"])):
                started = time.perf_counter()
                rows = con.execute(q["sql"]).fetchall()
                times.append((time.perf_counter() - started) * 1000.0)
            entry["times_ms"] = times
            entry["median_ms"] = statistics.median(times)
            entry["rows"] = len(rows)
            entry["first_rows"] = [
                [normalise(v) for v in row] for row in rows[: int(spec.get("max_rows", 1000))]
            ]
        except Exception as e:  # reported per query, the others still run
            entry["error"] = f"{type(e).__name__}: {e}"
        print(f"duckdb: {q['name']} done", file=sys.stderr, flush=True)
        out.append(entry)
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    json.dump({"version": duckdb.__version__, "threads": threads, "queries": out}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
