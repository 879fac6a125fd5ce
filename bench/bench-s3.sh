#!/usr/bin/env bash
# S3 benchmarks against a local s3rver (scripts/start-s3rver.sh):
#   1. sequential read of disk.raw through a vdiskfs mount of s3://.../disk.raw
#      and of a streamOptimized VMDK, each against `curl` downloading the whole
#      object in the same run;
#   2. export to the bucket (`vdisk convert -O vmdk SRC s3://...`) against
#      `qemu-img convert` to a local streamOptimized VMDK plus a curl upload.
# Usage: bench/bench-s3.sh [SIZE_MIB]   (default 1024; half random, half zeros)
# Env: VDISK, VDISKFS (default build/vdisk, build/vdiskfs), BENCH_DIR (scratch).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VDISK=${VDISK:-$here/build/vdisk}
VDISKFS=${VDISKFS:-$here/build/vdiskfs}
size=${1:-1024}
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bench-s3.XXXXXX")
pids=()
mnt="$W/mnt"
finish() {
    mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt" || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap finish EXIT
for t in "$VDISK" "$VDISKFS"; do [ -x "$t" ] || { echo "missing $t (build first)" >&2; exit 1; }; done
command -v qemu-img >/dev/null || { echo "qemu-img is needed" >&2; exit 1; }

eval "$("$here/scripts/start-s3rver.sh" "$W/s3data" bench)"
pids+=("$VD_S3_PID")
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL
url="http://127.0.0.1:$VD_S3_PORT/bench"
put() {
    curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -T "$1" "$url/$2" >/dev/null
}
now() { date +%s.%N; }
secs() { python3 -c "print('%.2f' % ($2 - $1))"; }
ratio() { python3 -c "print('%.2f' % (($2 - $1) / ($4 - $3)))"; }
mbps() { python3 -c "print('%.0f' % ($1 / 1048576 / ($3 - $2)))"; }

echo "# image: ${size} MiB raw, half random, half zeros"
truncate -s "${size}M" "$W/disk.raw"
half=$((size / 2))
for ((i = 0; i < size; i += 8)); do
    if ((i % 16 == 0)); then
        head -c 8M /dev/urandom | dd of="$W/disk.raw" bs=1M seek=$i conv=notrunc status=none
    fi
done
"$VDISK" convert -q -O vmdk "$W/disk.raw" "$W/disk.vmdk"
put "$W/disk.raw" plain.raw
put "$W/disk.vmdk" stream.vmdk
bytes=$((size << 20))
vbytes=$(stat -c %s "$W/disk.vmdk")

mkdir -p "$mnt"
"$VDISKFS" -o "endpoint=http://127.0.0.1:$VD_S3_PORT,path_style,region=us-east-1" \
    s3://bench/plain.raw s3://bench/stream.vmdk "$mnt"
for i in $(seq 1 100); do mountpoint -q "$mnt" && break; sleep 0.05; done

echo "# 1. sequential read (cold cache) vs curl of the whole object"
t0=$(now); curl -sSf -o /dev/null "$url/plain.raw"; t1=$(now)
t2=$(now); cat "$mnt/plain/disk.raw" >/dev/null; t3=$(now)
echo "raw:   curl $(secs "$t0" "$t1") s ($(mbps $bytes "$t0" "$t1") MiB/s), vdiskfs disk.raw $(secs "$t2" "$t3") s ($(mbps $bytes "$t2" "$t3") MiB/s), ratio vdiskfs/curl $(ratio "$t2" "$t3" "$t0" "$t1")"
t0=$(now); curl -sSf -o /dev/null "$url/stream.vmdk"; t1=$(now)
t2=$(now); cat "$mnt/stream/disk.raw" >/dev/null; t3=$(now)
echo "vmdk:  curl of the ${vbytes}-byte stream $(secs "$t0" "$t1") s, vdiskfs disk.raw (${size} MiB) $(secs "$t2" "$t3") s, ratio $(ratio "$t2" "$t3" "$t0" "$t1")"
python3 - "$mnt" <<'PY' || true
import json, os, sys
for d in sorted(os.listdir(sys.argv[1])):
    try:
        io = json.load(open(os.path.join(sys.argv[1], d, "info.json"))).get("io", {})
    except Exception:
        continue
    print("  %s: %d requests, %d bytes fetched, cache hit rate %.3f" % (
        d, io.get("requests", 0), io.get("bytes_fetched", 0), io.get("cache_hit_rate", 0)))
PY
fusermount3 -u "$mnt"

echo "# 2. export to the bucket vs qemu-img convert + curl upload"
t0=$(now); "$VDISK" convert -q -O vmdk "$W/disk.raw" s3://bench/export.vmdk; t1=$(now)
t2=$(now)
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/disk.raw" "$W/q.vmdk"
t3=$(now); put "$W/q.vmdk" q.vmdk; t4=$(now)
echo "vdisk convert -> s3: $(secs "$t0" "$t1") s; qemu-img $(secs "$t2" "$t3") s + curl upload $(secs "$t3" "$t4") s = $(secs "$t2" "$t4") s; ratio vdisk/(qemu+curl) $(ratio "$t0" "$t1" "$t2" "$t4")"
