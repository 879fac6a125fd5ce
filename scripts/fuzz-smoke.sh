#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c with libFuzzer + ASan + UBSan and runs each
# for a few seconds (default 20) from its seed corpus. Any crash fails.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
command -v clang >/dev/null || { echo "fuzz-smoke: clang not installed" >&2; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DVDISK_FUZZ=ON -DVDISK_SANITIZE=ON -DVDISK_WERROR=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    seeds=tests/fuzz/corpus/$name
    mkdir -p "$work/$name"
    [ -d "$seeds" ] && cp -r "$seeds/." "$work/$name/"
    echo "fuzz-smoke: $name for ${secs}s"
    (cd "$work" && "$OLDPWD/build-fuzz/tests/$name" -max_total_time="$secs" -rss_limit_mb=2048 \
        -max_len=1048576 -print_final_stats=0 "$work/$name" >"$work/$name.log" 2>&1) || {
        tail -60 "$work/$name.log"
        echo "fuzz-smoke: $name FAILED (crash input saved in $work, see log above)" >&2
        cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* . 2>/dev/null || true
        exit 1
    }
    grep -E "^(#[0-9]+.*DONE|Done)" "$work/$name.log" | tail -1 || true
done
echo "fuzz-smoke: all targets clean"
