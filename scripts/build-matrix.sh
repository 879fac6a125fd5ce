#!/usr/bin/env bash
# Builds the tree with -Werror in every configuration a user or a packager
# may pick, with GCC and with clang: Debug, RelWithDebInfo, Release (-O3)
# and Debian's dpkg-buildflags (what debhelper's cmake build passes:
# CMAKE_BUILD_TYPE=None, -O2, FORTIFY_SOURCE=2, -fstack-protector-strong,
# plus the rest of hardening=+all). Optimisation levels and compilers warn
# differently (GCC 12's -Wmaybe-uninitialized only runs with -O2/-O3), so a
# tree that builds warning-free in one of them says little about the others.
#
# Build only: the library, vdiskfs, vdisk, the unit tests and the fuzz
# replay drivers (all plain C, no clang-only flags); nothing is run.
#
#   scripts/build-matrix.sh                  # all 8 builds, under build-matrix/
#   scripts/build-matrix.sh gcc:Release      # just the ones named
#
# VD_MATRIX_JOBS (default: nproc) sets the parallel jobs of each build;
# VD_MATRIX_TARGETS="vdisk vdiskfs vdisk-cli" builds only the library and
# the two programs (about 40% less CPU than the whole tree). Each build
# directory is kept, so a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${VD_MATRIX_JOBS:-$(nproc)}
OUT=${VD_MATRIX_DIR:-build-matrix}

ALL=(gcc:Debug gcc:RelWithDebInfo gcc:Release gcc:dpkg
     clang:Debug clang:RelWithDebInfo clang:Release clang:dpkg)
if [ $# -gt 0 ]; then CONFIGS=("$@"); else CONFIGS=("${ALL[@]}"); fi

for tool in gcc clang; do
    command -v "$tool" >/dev/null || { echo "build-matrix: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done
command -v dpkg-buildflags >/dev/null ||
    { echo "build-matrix: dpkg-buildflags not found (package dpkg-dev)" >&2; exit 1; }

# Debian's flags as debhelper would export them for a package that asks for
# all hardening. CPPFLAGS go with CFLAGS: CMake has no CPPFLAGS of its own.
deb_flags() { # CFLAGS|LDFLAGS
    case $1 in
    CFLAGS) echo "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)" \
                 "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)" ;;
    LDFLAGS) DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS ;;
    esac
}

failed=()
t_all=$SECONDS
for cfg in "${CONFIGS[@]}"; do
    cc=${cfg%%:*} type=${cfg#*:}
    case $cc in gcc|clang) ;; *) echo "build-matrix: unknown compiler in '$cfg'" >&2; exit 2 ;; esac
    dir=$OUT/$cc-$type
    args=(-DCMAKE_C_COMPILER="$cc" -DVDISK_WERROR=ON -DBUILD_TESTING=ON)
    cflags= ldflags=
    case $type in
    Debug|RelWithDebInfo|Release) args+=(-DCMAKE_BUILD_TYPE="$type") ;;
    dpkg) args+=(-DCMAKE_BUILD_TYPE=None)
          cflags=$(deb_flags CFLAGS) ldflags=$(deb_flags LDFLAGS) ;;
    *) echo "build-matrix: unknown build type in '$cfg'" >&2; exit 2 ;;
    esac
    t0=$SECONDS
    # CFLAGS/LDFLAGS are read only when the cache is first made: start
    # afresh when they changed (a new dpkg-dev, say).
    stamp="$cc|$type|$cflags|$ldflags"
    if [ -f "$dir/.matrix-stamp" ] && [ "$(cat "$dir/.matrix-stamp")" != "$stamp" ]; then
        rm -rf "$dir"
    fi
    mkdir -p "$dir"
    echo "$stamp" >"$dir/.matrix-stamp"
    rc=0
    CFLAGS=$cflags LDFLAGS=$ldflags cmake -S . -B "$dir" "${args[@]}" >"$dir/configure.log" 2>&1 || rc=$?
    if [ $rc = 0 ]; then
        # -k: one run shows every file that warns, not only the first.
        targets=()
        for t in ${VD_MATRIX_TARGETS:-}; do targets+=(--target "$t"); done
        cmake --build "$dir" -j "$JOBS" "${targets[@]}" -- -k >"$dir/build.log" 2>&1 || rc=$?
    else
        cat "$dir/configure.log" >&2
    fi
    if [ $rc = 0 ]; then
        printf 'build-matrix: %-22s ok     %4ds\n' "$cfg" $((SECONDS - t0))
    else
        printf 'build-matrix: %-22s FAILED %4ds (log: %s)\n' "$cfg" $((SECONDS - t0)) "$dir/build.log"
        grep -E -A6 'error:|warning:' "$dir/build.log" | head -60 >&2 || true
        failed+=("$cfg")
    fi
done
echo "build-matrix: ${#CONFIGS[@]} builds in $((SECONDS - t_all))s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "build-matrix: failed: ${failed[*]}" >&2
    exit 1
fi
