#!/bin/bash
# streamOptimized VMDK encode against VMware's own multi-threaded writer
# (open-vmdk vmdk-convert, built from tests/oracles) and qemu-img, same run:
#   - `vdisk convert` raw -> vmdk at its default level;
#   - `vmdk-convert -n THREADS -c L` for L = 1, 2, ... up to the first level
#     whose output is no larger than ours (the level that gives the same
#     size: the fair comparison), each level printed;
#   - `qemu-img convert -O vmdk -o subformat=streamOptimized`.
# Prints wall and CPU times, time ratios (theirs / ours) and output sizes.
#
#   bench/bench-vmdk-convert.sh
#
# Env: VDISK (default build/vdisk), WORK (scratch dir, default
# /var/tmp/vdisk-bench; the source disk is built there as bench-export.sh
# does and kept), SIZE_MB (1024), DATA_MB (700), THREADS (2; ours uses the
# same number), MAX_LEVEL (9), QEMU (1; 0 skips qemu-img, the slow one).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VDISK=${VDISK:-$ROOT/build/vdisk}
WORK=${WORK:-/var/tmp/vdisk-bench}
SIZE_MB=${SIZE_MB:-1024}
DATA_MB=${DATA_MB:-700}
THREADS=${THREADS:-2}
MAX_LEVEL=${MAX_LEVEL:-9}
QEMU=${QEMU:-1}
mkdir -p "$WORK"

die() { echo "bench: $*" >&2; exit 1; }
need() { for c in "$@"; do command -v "$c" >/dev/null || die "$c is not installed"; done; }
now() { date +%s.%N; }

# The source disk, built as bench-export.sh and bench-read.sh build it.
build_raw() {
    local stage=$WORK/stage raw=$WORK/disk.raw
    need mkfs.ext4 sfdisk
    rm -rf "$stage"; mkdir -p "$stage"
    local d total=0
    for d in /usr/lib/x86_64-linux-gnu /usr/share /usr/bin /usr/lib/llvm-14 /usr/lib/gcc /var/lib/dpkg; do
        [ -d "$d" ] || continue
        [ "$total" -ge "$DATA_MB" ] && break
        cp -al "$d" "$stage/$(echo "$d" | tr / _)" 2>/dev/null || cp -a "$d" "$stage/$(echo "$d" | tr / _)"
        total=$(du -sm "$stage" | cut -f1)
    done
    while [ "$(du -sm "$stage" | cut -f1)" -gt "$DATA_MB" ]; do
        find "$stage" -type f -size +1M -print -quit | xargs -r rm -f
        [ -z "$(find "$stage" -type f -size +1M -print -quit)" ] && break
    done
    truncate -s 0 "$raw.tmp"; truncate -s "${SIZE_MB}M" "$raw.tmp"
    echo 'label: dos
start=2048, type=83' | sfdisk -q "$raw.tmp"
    local part=$WORK/part.img
    truncate -s 0 "$part"; truncate -s $(( (SIZE_MB - 1) * 1024 * 1024 )) "$part"
    mkfs.ext4 -q -F -d "$stage" "$part"
    dd if="$part" of="$raw.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
    rm -f "$part"; rm -rf "$stage"
    mv "$raw.tmp" "$raw"
}

declare -A W=() C=() S=()
# timed NAME OUT CMD...: W/C/S[NAME] = wall, user+sys CPU, size of OUT.
timed() {
    local name=$1 out=$2 tf=$WORK/time.$$ t0 t1; shift 2
    rm -f "$out"
    t0=$(now)
    /usr/bin/time -f '%U %S' -o "$tf" "$@" >/dev/null
    t1=$(now)
    W[$name]=$(printf '%.2f' "$(echo "$t1 - $t0" | bc -l)")
    C[$name]=$(awk '{ printf "%.2f", $1 + $2 }' "$tf")
    S[$name]=$(stat -c %s "$out")
    rm -f "$tf" "$out"
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
row() {
    local n=$1
    printf '  %-26s %7ss  cpu %7ss  %11s bytes' "$n" "${W[$n]}" "${C[$n]}" "${S[$n]}"
    [ "$n" = ours ] || printf '  time x%s (cpu x%s)  size %s' "$(ratio "${W[$n]}" "${W[ours]}")" \
        "$(ratio "${C[$n]}" "${C[ours]}")" "$(ratio "${S[$n]}" "${S[ours]}")"
    echo
}

need bc /usr/bin/time make cc
[ -x "$VDISK" ] || die "no vdisk at $VDISK (set VDISK=)"
VC=$("$ROOT/tests/oracles/build-open-vmdk.sh" "$WORK/oracles")/vmdk-convert
[ -s "$WORK/disk.raw" ] || { echo "bench: building disk.raw ..." >&2; build_raw; }
echo "source: $WORK/disk.raw, $(($(stat -c %s "$WORK/disk.raw") >> 20)) MiB, $(du -sm "$WORK/disk.raw" | cut -f1) MB allocated, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), threads $THREADS"

timed ours "$WORK/o.vmdk" "$VDISK" convert -q -o threads="$THREADS" "$WORK/disk.raw" "$WORK/o.vmdk"
names=()
for ((l = 1; l <= MAX_LEVEL; l++)); do
    n="vmdk-convert -n $THREADS -c $l"
    timed "$n" "$WORK/v.vmdk" "$VC" -n "$THREADS" -c "$l" "$WORK/disk.raw" "$WORK/v.vmdk"
    names+=("$n")
    [ "${S[$n]}" -le "${S[ours]}" ] && break
done
if [ "$QEMU" = 1 ]; then
    need qemu-img
    timed qemu-img "$WORK/q.vmdk" qemu-img convert -f raw -O vmdk -o subformat=streamOptimized \
        "$WORK/disk.raw" "$WORK/q.vmdk"
    names+=(qemu-img)
fi
echo "streamOptimized VMDK encode (ratios: theirs / ours; size: theirs / ours)"
row ours
for n in "${names[@]}"; do row "$n"; done
