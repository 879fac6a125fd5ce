# Shared helpers for integration tests. Source it: . "$VD_TEST_LIB"
# Each test runs with set -euo pipefail, in its own temp dir, and exits
# 0 (pass), 1 (fail) or 77 (skipped, with the reason printed).
set -euo pipefail

: "${VDISK:?VDISK must point at the vdisk binary (ctest sets it)}"
: "${VDISKFS:?VDISKFS must point at the vdiskfs binary}"
: "${VD_TEST_DATA:?}"

T=$(mktemp -d "${TMPDIR:-/tmp}/vdtest.XXXXXX")
MOUNTS=()

cleanup() {
    local m
    for m in "${MOUNTS[@]}"; do
        umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    # VD_KEEP_T=1 keeps the temporary folder to look at after a failure.
    if [ "${VD_KEEP_T:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
need() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"; done; }
need_fuse() {
    [ -e /dev/fuse ] || skip "no /dev/fuse on this machine"
    [ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null || skip "FUSE needs root or fusermount3"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# The ASan runtime to preload into nbdkit when the plugin beside $VDISK was
# built with -DVDISK_SANITIZE=ON (nbdkit itself is not instrumented, and
# ASan must come first in the process), else nothing.
# (Not nm | grep -q: with pipefail, grep's early exit fails nm with SIGPIPE.)
nbdkit_asan_preload() {
    local plugin
    plugin=$(dirname "$VDISK")/nbdkit-vdisk-plugin.so
    if [ -f "$plugin" ] && [[ $(nm -D "$plugin" 2>/dev/null) == *" U __asan_init"* ]]; then
        ${CC:-gcc} -print-file-name=libasan.so
    fi
}
# nbdkit (and vdisk serve, which runs it), with that runtime first. Leak
# checks are off in it: nbdkit's and its --run children's allocations are
# not ours to judge.
with_nbd_asan() {
    local pre
    pre=$(nbdkit_asan_preload)
    if [ -n "$pre" ]; then
        LD_PRELOAD=$pre ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 "$@"
    else
        "$@"
    fi
}
nbdkit() { with_nbd_asan command nbdkit "$@"; }
# stop_bg PID: stop a background job started as `nbdkit ... &` (a subshell
# running the function above) and what it started; wait for it.
stop_bg() {
    pkill -TERM -P "$1" 2>/dev/null || true
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# Decompress a sample from tests/data into $T, print the path.
sample() {
    local src="$VD_TEST_DATA/$1" out="$T/$(basename "${1%.*}")"
    case "$1" in
        *.xz) xz -dc "$src" > "$out" ;;
        *.gz) gzip -dc "$src" > "$out" ;;
        *) cp "$src" "$T/$(basename "$1")"; out="$T/$(basename "$1")" ;;
    esac
    echo "$out"
}

# qemu_raw_sha IMAGE [FMT]: the independent oracle's digest of the raw content.
qemu_raw_sha() {
    local img=$1 fmt=${2:-}
    local out="$T/oracle.$$.$RANDOM.raw"
    qemu-img convert ${fmt:+-f "$fmt"} -O raw "$img" "$out"
    sha "$out"
    rm -f "$out"
}

# vmount MNT [vdiskfs args...]: mount in the background and wait for it.
vmount() {
    local mnt=$1; shift
    mkdir -p "$mnt"
    "$VDISKFS" "$@" "$mnt"
    MOUNTS+=("$mnt")
    local i
    for i in $(seq 1 100); do
        mountpoint -q "$mnt" && return 0
        sleep 0.05
    done
    fail "vdiskfs did not mount $mnt"
}

# vumount MNT: unmount and wait for the daemon to exit. fusermount -u
# returns before the daemon has flushed and closed its images, so a test
# that reads an image right after would race the final writes.
vumount() {
    local mnt pids i
    mnt=$(cd "$1" && pwd -P)
    pids=$(pgrep -f -- "vdiskfs .*${mnt}\$" || true)
    fusermount3 -u "$1"
    # A daemon that has exited may stay a zombie until init reaps it.
    for i in $(seq 1 200); do
        local p alive=
        for p in $pids; do
            [ -r "/proc/$p/stat" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] &&
                alive=1
        done
        [ -z "$alive" ] && return 0
        sleep 0.05
    done
    fail "vdiskfs for $1 still running 10 s after unmount"
}

assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', expected '$2'"; }

# The Debian guest tree the boot tests share: VD_FIXUP_BOOT_ROOT when set
# (scripts/test.sh sets one per checkout), else one in $T. Made once with
# debootstrap (about 3 minutes); a stamp names the package list, so a tree
# made with another list is made again. A lock keeps parallel tests from
# making it twice. Prints its path; returns 77 (with the reason on stderr)
# when the mirror cannot be reached.
DEBIAN_BASE_PKGS=linux-image-amd64,systemd-sysv,udev,ifupdown,isc-dhcp-client,iproute2,lvm2,xfsprogs,netplan.io
debian_base() {
    local base=${VD_FIXUP_BOOT_ROOT:-$T/base} mirror
    mkdir -p "$(dirname "$base")"
    (
        flock 9
        [ "$(cat "$base/.vdisk-base" 2>/dev/null)" = "$DEBIAN_BASE_PKGS" ] && exit 0
        rm -rf "$base"
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
        debootstrap --variant=minbase --include="$DEBIAN_BASE_PKGS" bookworm "$base" \
            "${mirror:-http://deb.debian.org/debian}" > "$T/debootstrap.log" 2>&1 ||
            { echo "SKIP: debootstrap failed (no mirror?): $(tail -1 "$T/debootstrap.log")" >&2; exit 77; }
        echo "$DEBIAN_BASE_PKGS" > "$base/.vdisk-base"
    ) 9> "$base.lock" || return $?
    echo "$base"
}
