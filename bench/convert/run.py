#!/usr/bin/env python3
"""Benchmark driver for JSON -> Parquet conversion: Lakehose (the `convert` example, i.e. the
code the delivery pipeline runs), a plain arrow-rs reader+writer, pyarrow, DuckDB and polars,
on the same file in the same run, single-threaded and with N threads. Each (tool, threads) runs
`--runs` times (interleaved, so background load hits every tool alike); the table shows
medians. Peak RSS comes from /usr/bin/time -v.

    run.py [--records 1000000] [--runs 3] [--threads 1,2] [--data DIR] [--tools ...]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (its last stdout JSON line, peak RSS bytes)."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss = int(m.group(1)) * 1024 if m else 0
    return json.loads(proc.stdout.strip().splitlines()[-1]), rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--tools", default="lakehose,arrow-rs,pyarrow,duckdb,polars")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()

    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    src = data / f"events-{args.records}.jsonl"
    schema = data / "events.schema.json"
    if not src.exists() or not schema.exists():
        print(f"generating {src} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(HERE / "gen.py"), str(src), "--records", str(args.records),
                        "--schema", str(schema)], check=True)
    size = src.stat().st_size
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/lakehose/target"))
    print("building the convert example (release) ...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "lakehose-formats", "--example", "convert"],
                   cwd=REPO, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    binary = target / "release/examples/convert"

    tools = args.tools.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    jobs = []
    for t in threads:
        for tool in tools:
            if tool == "arrow-rs" and t != 1:
                continue  # the plain arrow-rs reader + writer is single-threaded
            jobs.append((tool, t))

    results = {job: [] for job in jobs}
    for run in range(args.runs):
        for tool, t in jobs:
            out = data / f"out-{tool}-{t}.parquet"
            if tool in ("lakehose", "arrow-rs"):
                engine = "lakehose" if tool == "lakehose" else "arrow-json"
                cmd = [str(binary), str(src), str(out), "--schema", str(schema), "--threads", str(t),
                       "--engine", engine]
            else:
                cmd = [sys.executable, str(HERE / "tools.py"), tool, str(src), str(out), str(t)]
            res, rss = timed(cmd)
            res["rss"] = rss
            res["output_bytes"] = out.stat().st_size
            results[(tool, t)].append(res)
            print(f"  run {run + 1}: {tool:9} threads={t}  {res['seconds']:.2f}s  "
                  f"{size / 2**20 / res['seconds']:.0f} MiB/s", file=sys.stderr)

    def med(tool, t, key):
        return statistics.median(r[key] for r in results[(tool, t)])

    print(f"\nJSON -> Parquet, {args.records:,} records, {size / 2**20:.0f} MiB "
          f"({size / args.records:.0f} B/record), median of {args.runs} runs\n")
    header = f"| {'tool':9} | threads | {'seconds':>7} | {'MiB/s':>6} | {'rows/s':>9} | {'output MiB':>10} | {'peak RSS MiB':>12} | {'vs DuckDB (speed)':>17} | {'vs DuckDB (size)':>16} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for tool, t in jobs:
        s = med(tool, t, "seconds")
        mibs = size / 2**20 / s
        out_mib = med(tool, t, "output_bytes") / 2**20
        rss = med(tool, t, "rss") / 2**20
        ratio = ratio_size = ""
        if ("duckdb", t) in results:
            ratio = f"{med('duckdb', t, 'seconds') / s:.2f}x"
            ratio_size = f"{med(tool, t, 'output_bytes') / med('duckdb', t, 'output_bytes'):.2f}"
        print(f"| {tool:9} | {t:7} | {s:7.2f} | {mibs:6.0f} | {args.records / s:9,.0f} | {out_mib:10.1f} | "
              f"{rss:12.0f} | {ratio:>17} | {ratio_size:>16} |")
    load = os.getloadavg()
    print(f"\nload average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
