#!/bin/bash
# Export benchmark: encode a >= 1 GiB disk (MBR + ext4 full of real files)
# with qemu-img convert, with `vdisk convert`, and with `cp` into the mount's
# export/, in the same run; print wall and CPU times, time ratios and output
# size ratios (apparent size and allocated blocks).
#
#   bench/bench-export.sh [CASE...]     (default: vmdk vhd vhdx)
#
# Env: VDISKFS, VDISK (default build/vdiskfs, build/vdisk), WORK (scratch dir,
# default /var/tmp/vdisk-bench, shared with bench-read.sh: the source disk is
# kept there), SIZE_MB (1024), DATA_MB (800), RUNS (1; the best run counts).
# CPU time is user+sys of the encoding process (for cp: of the vdiskfs
# daemon), worth reading on a shared machine where wall time is noisy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VDISKFS=${VDISKFS:-$ROOT/build/vdiskfs}
VDISK=${VDISK:-$ROOT/build/vdisk}
WORK=${WORK:-/var/tmp/vdisk-bench}
SIZE_MB=${SIZE_MB:-1024}
DATA_MB=${DATA_MB:-800}
RUNS=${RUNS:-1}
MNT=$WORK/xmnt
OUT=$WORK/xout
mkdir -p "$WORK" "$MNT" "$OUT"
PID=

die() { echo "bench: $*" >&2; exit 1; }
need() { for c in "$@"; do command -v "$c" >/dev/null || die "$c is not installed"; done; }
now() { date +%s.%N; }
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u "$MNT"
    [ -n "$PID" ] && wait "$PID" 2>/dev/null
    return 0
}
trap cleanup EXIT
clk() { getconf CLK_TCK; }
# cpu_of PID: user+sys seconds of a live process
cpu_of() { awk -v hz="$(clk)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# The source disk, built as bench-read.sh does.
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

# timed NAME CMD...: run CMD RUNS times; W[NAME]/C[NAME] = best wall, its CPU.
declare -A W=() C=() S=() A=()
timed() {
    local name=$1; shift
    local i t0 t1 d tf=$WORK/time.$$
    for ((i = 0; i < RUNS; i++)); do
        t0=$(now)
        /usr/bin/time -f '%U %S' -o "$tf" "$@"
        t1=$(now)
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "${W[$name]:-}" ] || [ "$(echo "$d < ${W[$name]}" | bc -l)" = 1 ]; then
            W[$name]=$(printf '%.2f' "$d")
            C[$name]=$(awk '{ printf "%.2f", $1 + $2 }' "$tf")
        fi
    done
    rm -f "$tf"
}
sizes() { S[$1]=$(stat -c %s "$2"); A[$1]=$(( $(stat -c %b "$2") * 512 )); }

# timed_cp NAME FILE: cp the source into export/FILE on a fresh mount; CPU is
# the daemon's.
timed_cp() {
    local name=$1 file=$2 i t0 t1 d c0
    for ((i = 0; i < RUNS; i++)); do
        rm -f "$OUT/$file"
        "$VDISKFS" -f -o export="$OUT" "$WORK/disk.raw" "$MNT" 2>/dev/null &
        PID=$!
        for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.05; done
        c0=$(cpu_of "$PID")
        t0=$(now)
        cp "$WORK/disk.raw" "$MNT/export/$file"
        t1=$(now)
        local c1; c1=$(cpu_of "$PID")
        fusermount3 -u "$MNT"; wait "$PID" || true; PID=
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "${W[$name]:-}" ] || [ "$(echo "$d < ${W[$name]}" | bc -l)" = 1 ]; then
            W[$name]=$(printf '%.2f' "$d")
            C[$name]=$(printf '%.2f' "$(echo "$c1 - $c0" | bc -l)")
        fi
    done
    sizes "$name" "$OUT/$file"
}

ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
row() {
    local n=$1 base=$2
    printf '  %-22s %7ss  cpu %7ss  %11s bytes (%11s allocated)' "$n" "${W[$n]}" "${C[$n]}" "${S[$n]}" "${A[$n]}"
    if [ "$n" != "$base" ]; then
        printf '  time x%s (cpu x%s)  size %s (alloc %s)' "$(ratio "${W[$base]}" "${W[$n]}")" \
            "$(ratio "${C[$base]}" "${C[$n]}")" "$(ratio "${S[$n]}" "${S[$base]}")" \
            "$(ratio "${A[$n]}" "${A[$base]}")"
    fi
    echo
}

# case FMT EXT QEMU_OPTS...
run_case() {
    local label=$1 ext=$2; shift 2
    local q=$WORK/q.$ext o=$WORK/o.$ext
    rm -f "$q" "$o"
    timed "qemu-img" qemu-img convert -f raw "$@" "$WORK/disk.raw" "$q"
    sizes "qemu-img" "$q"
    # Neither syncs the data by default (strace: qemu-img convert fdatasyncs
    # only the empty image it creates, before any data);
    # with fsync=on ours fdatasyncs before the rename, so compare that with
    # qemu-img followed by a sync of its output: the same durability.
    rm -f "$q"
    timed "qemu-img + sync" bash -c 'qemu-img convert -f raw "$@" && sync -d "${@: -1}"' bash "$@" \
        "$WORK/disk.raw" "$q"
    sizes "qemu-img + sync" "$q"
    timed "vdisk convert" "$VDISK" convert -q "$WORK/disk.raw" "$o"
    sizes "vdisk convert" "$o"
    rm -f "$o"
    timed "convert fsync=on" "$VDISK" convert -q -o fsync=on "$WORK/disk.raw" "$o"
    sizes "convert fsync=on" "$o"
    timed_cp "cp to export/" "x.$ext"
    echo "$label (ratios: qemu-img time / ours, our size / qemu-img's)"
    row "qemu-img" "qemu-img"
    row "vdisk convert" "qemu-img"
    row "cp to export/" "qemu-img"
    row "qemu-img + sync" "qemu-img + sync"
    row "convert fsync=on" "qemu-img + sync"
    if [ -n "${VERIFY:-}" ]; then
        local fmt=$ext; [ "$ext" = vhd ] && fmt=vpc
        qemu-img compare -q -f raw -F "$fmt" "$WORK/disk.raw" "$o" || die "$o differs from the source"
        qemu-img compare -q -f raw -F "$fmt" "$WORK/disk.raw" "$OUT/x.$ext" || die "x.$ext differs"
    fi
    rm -f "$q" "$o" "$OUT/x.$ext"
    W=() C=() S=() A=()
}

bench_case_vmdk() { run_case "streamOptimized VMDK" vmdk -O vmdk -o subformat=streamOptimized; }
bench_case_vhd() { run_case "dynamic VHD" vhd -O vpc -o subformat=dynamic,force_size=on; }
bench_case_vhdx() { run_case "dynamic VHDX" vhdx -O vhdx -o subformat=dynamic; }

need qemu-img bc fusermount3 /usr/bin/time
[ -x "$VDISKFS" ] || die "no vdiskfs at $VDISKFS (set VDISKFS=)"
[ -x "$VDISK" ] || die "no vdisk at $VDISK (set VDISK=)"
[ -s "$WORK/disk.raw" ] || { echo "bench: building disk.raw ..." >&2; build_raw; }
echo "source: $WORK/disk.raw, $(($(stat -c %s "$WORK/disk.raw") >> 20)) MiB, $(du -sm "$WORK/disk.raw" | cut -f1) MB allocated, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), best of $RUNS"
for c in "${@:-vmdk vhd vhdx}"; do
    for cc in $c; do
        declare -F "bench_case_$cc" >/dev/null || die "unknown case '$cc' (vmdk vhd vhdx)"
        "bench_case_$cc"
    done
done
