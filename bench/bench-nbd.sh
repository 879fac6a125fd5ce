#!/bin/bash
# NBD benchmark (issue 12): the 1 GiB streamOptimized disk of bench-read.sh
# read in full by
#   - nbdcopy from the nbdkit plugin (multi-conn: nbdcopy's 4 connections,
#     and 1 connection), to a raw file and to null:,
#   - qemu-img convert -O raw of the VMDK file to a raw file (the anchor),
#   - a cat (dd) of the FUSE view's disk.raw, mounted fresh each run,
# in the same run, printing the best of RUNS and the ratios.
#
#   bench/bench-nbd.sh          Env as bench-read.sh (WORK, SIZE_MB, DATA_MB,
#                               RUNS), PLUGIN (default build/nbdkit-vdisk-plugin.so).
set -euo pipefail
BENCH_READ_LIB=1
. "$(dirname "$0")/bench-read.sh"
PLUGIN=${PLUGIN:-$ROOT/build/nbdkit-vdisk-plugin.so}
need qemu-img bc dd fusermount3 nbdkit nbdcopy
[ -f "$PLUGIN" ] || die "no plugin at $PLUGIN (set PLUGIN=)"
make_once "$WORK/disk.raw" build_raw
img=$WORK/disk-stream.vmdk
make_once "$img" qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$WORK/disk.raw" "$img"
read_file "$img" # every reader gets the image file from the page cache
out=$WORK/nbd-out.raw

nbd_copy() { # nbd_copy CONNECTIONS DEST
    nbdkit -r -U - "$PLUGIN" "$img" --run "nbdcopy --connections=$1 \"\$uri\" $2"
}
if [ -n "${VERIFY:-}" ]; then
    nbd_copy 4 "$out"
    cmp "$out" "$WORK/disk.raw" || die "nbdcopy's copy differs from the source raw"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; best of $RUNS runs"
echo "source: $img ($(du -m "$img" | cut -f1) MB) of a ${SIZE_MB} MiB disk"
t_nbd4=$(best_of nbd_copy 4 "$out")
rm -f "$out"
t_nbd1=$(best_of nbd_copy 1 "$out")
rm -f "$out"
t_null=$(best_of nbd_copy 4 null:)
t_qemu=$(best_of qemu-img convert -f vmdk -O raw "$img" "$out")
rm -f "$out"
set -- $(best_mounted "$VDISKFS" "$img" -- "disk-stream/disk.raw")
t_fuse=$1
mbps() { printf '%4.0f MB/s' "$(echo "$SIZE_MB / $1" | bc -l)"; }
printf 'nbdcopy 4 conns -> file   %6ss  %s\n' "$t_nbd4" "$(mbps "$t_nbd4")"
printf 'nbdcopy 1 conn  -> file   %6ss  %s\n' "$t_nbd1" "$(mbps "$t_nbd1")"
printf 'nbdcopy 4 conns -> null:  %6ss  %s\n' "$t_null" "$(mbps "$t_null")"
printf 'qemu-img convert -> file  %6ss  %s\n' "$t_qemu" "$(mbps "$t_qemu")"
printf 'cat of the FUSE view      %6ss  %s\n' "$t_fuse" "$(mbps "$t_fuse")"
printf 'ratios (higher is faster for nbdcopy 4 conns -> file): vs qemu-img %sx, vs FUSE cat %sx, vs 1 conn %sx\n' \
    "$(ratio "$t_qemu" "$t_nbd4")" "$(ratio "$t_fuse" "$t_nbd4")" "$(ratio "$t_nbd1" "$t_nbd4")"
