#!/usr/bin/env bash
# Long-tier fuzzing: runs every cargo-fuzz target (or the ones named) for SECONDS each,
# starting from the committed corpus, and fails if any target crashes, leaks past the RSS
# limit or times out on an input.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default 60 s, every target)
#
# Needs only the stable toolchain: cargo-fuzz's nightly flags are allowed with
# RUSTC_BOOTSTRAP=1. cargo-fuzz is installed when missing. Builds go to
# $HOME/.cache/lakehose/target-fuzz; new corpus entries go to
# $HOME/.cache/lakehose/fuzz-corpus/<target> (the committed fuzz/corpus is only read; see
# README.md to merge finds into it), crash inputs to fuzz/artifacts/<target>/.
# FUZZ_SANITIZER=address|none (default address) chooses the sanitizer.
set -euo pipefail

seconds="${1:-60}"
shift || true
case "$seconds" in
    '' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$HOME/.cache/lakehose/target-fuzz"
sanitizer="${FUZZ_SANITIZER:-address}"
scratch="$HOME/.cache/lakehose/fuzz-corpus"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir .)
fi

echo "==> building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
nice cargo fuzz build --fuzz-dir . --sanitizer "$sanitizer"

failed=()
summary=()
for target in "${targets[@]}"; do
    echo "==> $target for ${seconds}s"
    mkdir -p "$scratch/$target" "artifacts/$target"
    log="$(mktemp)"
    rc=0
    nice cargo fuzz run --fuzz-dir . --sanitizer "$sanitizer" "$target" \
        "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^#[0-9]+ +(INITED|DONE)|ERROR|SUMMARY|panicked|Test unit written|^stat::' "$log" | tail -n 20 || true
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    summary+=("$(printf '%-16s %12s execs %8s exec/s  rc=%s' "$target" "${execs:-?}" "${rate:-?}" "$rc")")
    if [ "$rc" -ne 0 ]; then
        failed+=("$target")
        echo "!! $target failed (exit $rc); its crash input is in fuzz/artifacts/$target/"
    fi
    rm -f "$log"
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash"
