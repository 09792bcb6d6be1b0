#!/usr/bin/env bash
# Query benchmark: Lakehose's engine vs DuckDB on the same Parquet files, plus freshness latency.
#
#   bench/query/run.sh                 # 1 GiB data set (generated once, reused afterwards)
#   bench/query/run.sh --gb 0.05       # any `lakehose bench query` option is passed through
#
# Builds the release binary into its own target dir (so it does not block the debug builds),
# installs DuckDB's Python package when it is missing, then runs `lakehose bench query`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakehose/target-bench}"
python="${LAKEHOSE_BENCH_PYTHON:-python3}"

echo "building lakehose (release) into $CARGO_TARGET_DIR ..." >&2
(cd "$root" && nice -n 10 cargo build --release -p lakehose --quiet)

if ! "$python" -c 'import duckdb' 2>/dev/null; then
    echo "installing the duckdb Python package ..." >&2
    "$python" -m pip install --quiet duckdb
fi

export LAKEHOSE_BENCH_PYTHON="$python"
exec "$CARGO_TARGET_DIR/release/lakehose" bench query "$@"
