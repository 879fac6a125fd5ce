#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: "Run the tests").
#   1. install missing Debian packages (scripts/install-deps.sh)
#   2. clang-format check
#   3. build matrix: GCC and clang x Debug, RelWithDebInfo, Release and
#      Debian's dpkg-buildflags, all with -Werror, build only
#      (scripts/build-matrix.sh)
#   4. normal build + every test (unit, integration with real FUSE mounts,
#      fuzz-corpus replay, S3 against a local s3rver)
#   5. the same suite under ASan + UBSan
#   6. a short libFuzzer run of every fuzz target
# Every build here has -DVDISK_WERROR=ON (off by default for users).
# Set VD_SKIP_MATRIX=1, VD_SKIP_ASAN=1 or VD_SKIP_FUZZ=1 to leave a stage out
# locally.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc)

bash scripts/install-deps.sh
bash scripts/check-format.sh

# The S3 tests start their own s3rver (scripts/start-s3rver.sh installs it
# with npm into tests/s3/node_modules) behind a fault-injecting proxy.

PASSED=0 FAILED=0 SKIPPED=0
run_suite() { # build-dir cmake-args...
    local dir=$1; shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
    local rc=0
    (cd "$dir" && ctest --output-on-failure -j 2 --timeout 1200) | tee "$dir/ctest.log" || rc=$?
    # Tally for the closing summary line.
    local total failed skipped
    total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$dir/ctest.log" | tail -1)
    failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$dir/ctest.log" | tail -1)
    skipped=$(grep -c '\*\*\*Skipped' "$dir/ctest.log" || true)
    PASSED=$((PASSED + ${total:-0} - ${failed:-0} - skipped))
    FAILED=$((FAILED + ${failed:-0}))
    SKIPPED=$((SKIPPED + skipped))
    return $rc
}

# The slow tier runs in CI, in the normal suite: the boot oracles
# (t-fixup-boot*: QEMU boots of guests before and after vdisk fixup) and
# the guest tests (inspect against virt-inspector, preflight on real
# guests). They share one debootstrapped tree (lib.sh's debian_base) and
# skip, saying why, when the mirror is unreachable. The ASan stage leaves
# them out (VD_SLOW_TESTS=0 there): they exercise the guests, and the code
# they run is covered under ASan by the crafted-guest tests; running them
# twice would take the CI run past an hour.
export VD_SLOW_TESTS=${VD_SLOW_TESTS:-1}
export VD_FIXUP_BOOT_ROOT=${VD_FIXUP_BOOT_ROOT:-$ROOT/build-boot-root}
# The guest images built from it (tests/integration/guests.sh), shared by
# both suites: the ASan stage inspects the same guests without building them.
export VD_GUEST_CACHE=${VD_GUEST_CACHE:-$ROOT/build-guests}

if [ "${VD_SKIP_MATRIX:-0}" != 1 ]; then
    echo "== build matrix =="
    # gcc:RelWithDebInfo is left out: the next stage builds exactly that,
    # with -Werror too.
    bash scripts/build-matrix.sh gcc:Debug gcc:Release gcc:dpkg \
        clang:Debug clang:RelWithDebInfo clang:Release clang:dpkg
fi

echo "== build and test =="
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVDISK_WERROR=ON

if [ "${VD_SKIP_ASAN:-0}" != 1 ]; then
    echo "== ASan + UBSan =="
    # Reports go to files, so that those of background processes (the
    # vdiskfs daemons, whose exit status no test sees) are not lost.
    SAN_LOGS=$ROOT/build-asan/sanitizer-logs
    rm -rf "$SAN_LOGS" && mkdir -p "$SAN_LOGS"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$SAN_LOGS/asan
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$SAN_LOGS/ubsan
    san_rc=0
    VD_SLOW_TESTS=0 run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DVDISK_SANITIZE=ON \
        -DVDISK_WERROR=ON || san_rc=$?
    unset ASAN_OPTIONS UBSAN_OPTIONS
    if [ -n "$(ls -A "$SAN_LOGS")" ]; then
        for f in "$SAN_LOGS"/*; do echo "== $f"; cat "$f"; done
        echo "sanitizer reports above (some from background vdiskfs daemons)" >&2
        FAILED=$((FAILED + 1))
        san_rc=1
    fi
    [ "$san_rc" = 0 ] || exit "$san_rc"
fi

if [ "${VD_SKIP_FUZZ:-0}" != 1 ]; then
    echo "== fuzz smoke =="
    bash scripts/fuzz-smoke.sh "${VD_FUZZ_SECONDS:-20}"
fi
echo "== all stages passed =="
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
