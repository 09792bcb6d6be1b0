#!/usr/bin/env bash
# JSON -> Parquet conversion benchmark: Lakehose vs a plain arrow-rs reader+writer, pyarrow,
# DuckDB and polars on the same generated file (1,000,000 records of ~350 bytes by default),
# single-threaded and with two threads. Installs what is missing (GNU time, pyarrow, duckdb,
# polars), generates the data once under bench/convert/data/, prints a table of medians.
#
#   bench/convert/run.sh [--records N] [--runs 3] [--threads 1,2] [--tools lakehose,duckdb,...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/lakehose/target}"
PYTHON="${PYTHON:-python3}"

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
    }
fi
for pkg in pyarrow duckdb polars; do
    if ! "$PYTHON" -c "import $pkg" >/dev/null 2>&1; then
        echo "installing $pkg ..." >&2
        "$PYTHON" -m pip install -q "$pkg" >&2
    fi
done

exec "$PYTHON" run.py "$@"
