#!/bin/bash
# Sequential-read benchmark: read disk.raw of an image through the vdiskfs
# mount, through the format's libyal mount (vmdkmount/vhdimount), and with
# `qemu-img convert -O raw`, and print times and ratios.
#
#   bench/bench-read.sh [CASE...]        (default: vmdk_stream)
#
# Env: VDISKFS, VDISK (default build/vdiskfs, build/vdisk), WORK (scratch dir,
# default /var/tmp/vdisk-bench; the 1 GiB source disk is kept there between
# runs), SIZE_MB (1024), DATA_MB (about 800 MB of real files), RUNS (3; the
# best run counts), VERIFY=1 also checks each mount against the source raw.
#
# Adding a format: write bench_case_NAME that builds an image from
# "$WORK/disk.raw" (use make_once), then calls run_vdiskfs IMG,
# run_mount TOOL IMG FILE and run_qemu IMG FMT, and finally report NAME.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VDISKFS=${VDISKFS:-$ROOT/build/vdiskfs}
VDISK=${VDISK:-$ROOT/build/vdisk}
WORK=${WORK:-/var/tmp/vdisk-bench}
SIZE_MB=${SIZE_MB:-1024}
DATA_MB=${DATA_MB:-800}
RUNS=${RUNS:-3}
mkdir -p "$WORK"
MNT=$WORK/mnt
declare -A T=()

die() { echo "bench: $*" >&2; exit 1; }
need() { for c in "$@"; do command -v "$c" >/dev/null || die "$c is not installed"; done; }
now() { date +%s.%N; }
umount_quiet() { mountpoint -q "$1" 2>/dev/null && { fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; }; return 0; }
cleanup() { umount_quiet "$MNT/o"; }
trap cleanup EXIT

# best_of CMD...: run CMD RUNS times, print the fastest wall time in seconds.
best_of() {
    local best="" i t0 t1 d
    for ((i = 0; i < RUNS; i++)); do
        t0=$(now); "$@"; t1=$(now)
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then best=$d; fi
    done
    printf '%.2f' "$best"
}
read_file() { dd if="$1" of=/dev/null bs=1M status=none; }

# best_mounted MOUNTCMD... -- FILE: mount fresh for every run (so the kernel
# page cache of the previous run's FUSE file cannot serve it), time only the
# read of MNT/o/FILE, print the fastest.
best_mounted() {
    local args=() best="" i t0 t1 d
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    local file=$2
    mkdir -p "$MNT/o"
    local hz pid c0 c1 cpu=""
    hz=$(getconf CLK_TCK)
    for ((i = 0; i < RUNS; i++)); do
        "${args[@]}" "$MNT/o" >/dev/null
        pid=$(pgrep -n -f "$(basename "${args[0]}") .*$MNT/o" || true)
        c0=$(daemon_ticks "$pid")
        t0=$(now); read_file "$MNT/o/$file"; t1=$(now)
        c1=$(daemon_ticks "$pid")
        if [ -n "${VERIFY:-}" ] && [ $i = 0 ]; then
            [ "$(sha256sum < "$MNT/o/$file")" = "$(sha256sum < "$WORK/disk.raw")" ] ||
                die "${args[0]}: read differs from the source raw"
        fi
        umount_quiet "$MNT/o"
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then
            best=$d
            cpu=$(echo "($c1 - $c0) / $hz" | bc -l)
        fi
    done
    printf '%.2f %.2f' "$best" "$cpu"
}
# user+system clock ticks used so far by the mount daemon PID (0 if unknown)
daemon_ticks() { if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }

# make_once OUT CMD...: build OUT with CMD unless it exists.
make_once() {
    local out=$1; shift
    [ -s "$out" ] && return 0
    echo "bench: building $(basename "$out") ..." >&2
    "$@"
}

# The source disk: MBR + one ext4 partition holding ~DATA_MB of real files
# (hard links of /usr trees, so no copying), as real-world data compresses.
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
    # trim to DATA_MB by removing whole top-level files from the last tree
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

run_vdiskfs() {
    local img=$1 name
    name=$(basename "${img%.*}")
    read_file "$img" # the image file itself comes from the page cache for every reader
    set -- $(best_mounted "$VDISKFS" "$img" -- "$name/disk.raw")
    T[vdiskfs]=$1 T[vdiskfs_cpu]=$2
}

# run_mount TOOL IMG FILE: a FUSE mount by another tool (vmdkmount, vhdimount).
run_mount() {
    local tool=$1 img=$2 file=$3
    command -v "$tool" >/dev/null || { T[$tool]=-; return 0; }
    set -- $(best_mounted "$tool" "$img" -- "$file")
    T[$tool]=$1 T[${tool}_cpu]=$2
    T[other]=$tool
}

run_qemu() {
    local img=$1 fmt=$2
    local out=$WORK/qemu-out.raw
    T[qemu]=$(best_of qemu-img convert -f "$fmt" -O raw "$img" "$out")
    rm -f "$out"
}

ratio() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else printf '%.2f' "$(echo "$1 / $2" | bc -l)"; fi; }

report() {
    local name=$1 other=${T[other]:-none}
    local mb=$SIZE_MB
    printf '%-12s vdiskfs %5ss (%4.0f MB/s, daemon cpu %ss) | %s %5ss (cpu %ss) -> %sx | qemu-img %5ss -> %sx\n' \
        "$name" "${T[vdiskfs]}" "$(echo "$mb / ${T[vdiskfs]}" | bc -l)" "${T[vdiskfs_cpu]}" \
        "$other" "${T[$other]:--}" "${T[${other}_cpu]:--}" \
        "$(ratio "${T[$other]:--}" "${T[vdiskfs]}")" "${T[qemu]}" "$(ratio "${T[qemu]}" "${T[vdiskfs]}")"
    T=()
}

bench_case_vmdk_stream() {
    local img=$WORK/disk-stream.vmdk
    make_once "$img" qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$WORK/disk.raw" "$img"
    run_vdiskfs "$img"
    run_mount vmdkmount "$img" vmdk1
    run_qemu "$img" vmdk
    report vmdk-stream
}

bench_case_vmdk_sparse() {
    local img=$WORK/disk-sparse.vmdk
    make_once "$img" qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$WORK/disk.raw" "$img"
    run_vdiskfs "$img"
    run_mount vmdkmount "$img" vmdk1
    run_qemu "$img" vmdk
    report vmdk-sparse
}

bench_case_vhd_dynamic() {
    local img=$WORK/disk-dyn.vhd
    make_once "$img" qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$WORK/disk.raw" "$img"
    run_vdiskfs "$img"
    run_mount vhdimount "$img" vhdi1
    run_qemu "$img" vpc
    report vhd-dynamic
}

bench_case_vhdx_dynamic() {
    local img=$WORK/disk-dyn.vhdx
    make_once "$img" qemu-img convert -f raw -O vhdx -o subformat=dynamic "$WORK/disk.raw" "$img"
    run_vdiskfs "$img"
    run_mount vhdimount "$img" vhdi1
    run_qemu "$img" vhdx
    report vhdx-dynamic
}

# Sourced by other benchmarks (bench-nbd.sh) for build_raw, best_of and
# best_mounted: stop here.
[ -n "${BENCH_READ_LIB:-}" ] && return 0
need qemu-img bc dd fusermount3
[ -x "$VDISKFS" ] || die "no vdiskfs at $VDISKFS (set VDISKFS=)"
make_once "$WORK/disk.raw" build_raw
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times; daemon cpu does not)"
echo "source: $WORK/disk.raw, ${SIZE_MB} MiB, $(du -sm --apparent-size "$WORK/disk.raw" | cut -f1) MB apparent, best of $RUNS runs, $(nproc) CPUs"
for c in "${@:-vmdk_stream}"; do
    declare -F "bench_case_$c" >/dev/null || die "unknown case '$c' (have: $(declare -F | sed -n 's/.*bench_case_//p' | tr '\n' ' '))"
    "bench_case_$c"
done
