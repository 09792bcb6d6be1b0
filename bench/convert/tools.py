#!/usr/bin/env python3
"""One conversion of a newline-delimited JSON file to Parquet with a reference tool, timed
inside the process (imports excluded, reading the file and writing the output included).
Prints one JSON line: {"tool", "threads", "seconds", "rows", "output_bytes"}.

    tools.py pyarrow|duckdb|polars IN.jsonl OUT.parquet THREADS
"""

import json
import os
import sys
import time


def main() -> None:
    tool, src, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if tool == "pyarrow":
        import pyarrow as pa
        import pyarrow.json as pj
        import pyarrow.parquet as pq

        pa.set_cpu_count(threads)
        pa.set_io_thread_count(threads)
        start = time.perf_counter()
        table = pj.read_json(src, read_options=pj.ReadOptions(use_threads=threads > 1))
        pq.write_table(table, out, compression="snappy")
        rows = table.num_rows
    elif tool == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        start = time.perf_counter()
        con.execute(
            f"COPY (SELECT * FROM read_json('{src}', format = 'newline_delimited')) "
            f"TO '{out}' (FORMAT parquet, COMPRESSION snappy)"
        )
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    elif tool == "polars":
        os.environ["POLARS_MAX_THREADS"] = str(threads)
        import polars as pl

        start = time.perf_counter()
        pl.scan_ndjson(src).sink_parquet(out, compression="snappy")
        rows = None
    else:
        raise SystemExit(f"unknown tool {tool}")
    seconds = time.perf_counter() - start
    print(json.dumps({"tool": tool, "threads": threads, "seconds": seconds, "rows": rows,
                      "output_bytes": os.path.getsize(out)}))


if __name__ == "__main__":
    main()
