#!/usr/bin/env bash
# S3 benchmarks against a local s3rver (scripts/start-s3rver.sh), each run twice:
#   loopback  s3rver directly (one connection is as fast as many), and
#   wan       through tests/s3/faultproxy.py shaped like a WAN path to S3:
#             BENCH_LATENCY_MS (30) before each answer and BENCH_BW_MBPS (40 MB/s)
#             per connection, as one S3 connection serves. The proxy sends
#             GET bodies from s3rver's own files by sendfile(2) (--sendfile):
#             s3rver spends about a CPU second per 256 MB, on the cores the
#             client is measured on, and real S3 spends none of them.
#             BENCH_SENDFILE=0 measures through s3rver's own bodies.
# Measurements, each against single-stream curl in the same run and mode:
#   1. sequential read of disk.raw through a vdiskfs mount of s3://.../plain.raw
#      and of a streamOptimized VMDK (mount + read + decode);
#   2. 1000 random 4 KiB reads through the mount: bytes fetched per read;
#   3. export to the bucket (`vdisk convert -O vmdk SRC s3://...`) against
#      `qemu-img convert` to a local streamOptimized VMDK plus a curl upload.
# Peak RSS (VmHWM / max RSS) of vdiskfs and vdisk is printed for each.
# Usage: bench/bench-s3.sh [SIZE_MIB]   (default 512; half random, half zeros)
# Env: VDISK, VDISKFS (default build/vdisk, build/vdiskfs), BENCH_DIR (scratch),
#      BENCH_MODES ("loopback wan"), VD_S3_CONNECTIONS etc. pass through.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VDISK=${VDISK:-$here/build/vdisk}
VDISKFS=${VDISKFS:-$here/build/vdiskfs}
size=${1:-512}
modes=${BENCH_MODES:-loopback wan}
latency=${BENCH_LATENCY_MS:-30}
bw=${BENCH_BW_MBPS:-40}
sendfile=--sendfile
[ "${BENCH_SENDFILE:-1}" = 0 ] && sendfile=
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bench-s3.XXXXXX")
pids=()
mnt="$W/mnt"
fspid=
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
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
python3 "$here/tests/s3/faultproxy.py" "$VD_S3_PORT" --port-file "$W/proxy.port" \
    --latency-ms "$latency" --bw-mbps "$bw" --s3rver-data "$W/s3data" $sendfile >/dev/null 2>"$W/proxy.log" &
pids+=("$!")
for i in $(seq 1 100); do [ -s "$W/proxy.port" ] && break; sleep 0.05; done
wan_port=$(cat "$W/proxy.port")

now() { date +%s.%N; }
secs() { python3 -c "print('%.2f' % ($2 - $1))"; }
ratio() { python3 -c "print('%.2f' % (($2 - $1) / ($4 - $3)))"; }
mbps() { python3 -c "print('%.0f' % ($1 / 1e6 / ($3 - $2)))"; }
proxy() { curl -sf -XPOST "http://127.0.0.1:$wan_port/__proxy/$1" >/dev/null; }
proxy_stat() {
    curl -sf "http://127.0.0.1:$wan_port/__proxy/stats" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

echo "# image: ${size} MiB raw, half random, half zeros; wan = ${latency} ms + ${bw} MB/s per connection${sendfile:+, bodies by sendfile}"
truncate -s "${size}M" "$W/disk.raw"
for ((i = 0; i < size; i += 8)); do
    if ((i % 16 == 0)); then
        head -c 8M /dev/urandom | dd of="$W/disk.raw" bs=1M seek=$i conv=notrunc status=none
    fi
done
"$VDISK" convert -q -O vmdk "$W/disk.raw" "$W/disk.vmdk"
bytes=$((size << 20))
vbytes=$(stat -c %s "$W/disk.vmdk")
curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -T "$W/disk.raw" "http://127.0.0.1:$VD_S3_PORT/bench/plain.raw" >/dev/null
curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -T "$W/disk.vmdk" "http://127.0.0.1:$VD_S3_PORT/bench/stream.vmdk" >/dev/null
echo "# stream.vmdk: $vbytes bytes; VD_S3_CONNECTIONS=${VD_S3_CONNECTIONS:-default}"

mount_fs() { # ENDPOINT SOURCE...
    local ep=$1
    shift
    mkdir -p "$mnt"
    "$VDISKFS" -f -o "endpoint=$ep,path_style,region=us-east-1" "$@" "$mnt" 2>"$W/fs.log" &
    fspid=$!
    for i in $(seq 1 200); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
    cat "$W/fs.log" >&2
    exit 1
}
umount_fs() {
    rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$fspid/status")
    fusermount3 -u "$mnt"
    wait "$fspid" || true
}
io_stats() { # DIR -> "requests bytes_fetched"
    python3 -c 'import json,sys; io=json.load(open(sys.argv[1])).get("io",{}); print(io.get("requests",0), io.get("bytes_fetched",0))' "$mnt/$1/info.json"
}

for mode in $modes; do
    if [ "$mode" = wan ]; then ep="http://127.0.0.1:$wan_port"; else ep="http://127.0.0.1:$VD_S3_PORT"; fi
    url="$ep/bench"
    echo "## $mode ($ep)"
    # 1. sequential reads
    proxy reset 2>/dev/null || true
    t0=$(now); curl -sSf -o /dev/null "$url/plain.raw"; t1=$(now)
    # What this machine's test bed can carry at all: the object as 16 parallel
    # ranged curls (s3rver and the proxy share the cores with vdiskfs).
    t4=$(now)
    cps=()
    for ((k = 0; k < 16; k++)); do
        curl -sSf -o /dev/null -r "$((k * bytes / 16))-$(((k + 1) * bytes / 16 - 1))" "$url/plain.raw" &
        cps+=("$!")
    done
    wait "${cps[@]}"
    t5=$(now)
    [ "$mode" = wan ] && proxy reset
    t2=$(now)
    mount_fs "$ep" s3://bench/plain.raw
    cat "$mnt/plain/disk.raw" >/dev/null; t3=$(now)
    conns=-; [ "$mode" = wan ] && conns=$(proxy_stat max_active)
    umount_fs
    echo "$mode raw:  16 parallel ranged curls $(secs "$t4" "$t5") s ($(mbps $bytes "$t4" "$t5") MB/s, $(ratio "$t0" "$t1" "$t4" "$t5")x curl: the test bed's ceiling)"
    echo "$mode raw:  curl $(secs "$t0" "$t1") s ($(mbps $bytes "$t0" "$t1") MB/s); vdiskfs mount+read $(secs "$t2" "$t3") s ($(mbps $bytes "$t2" "$t3") MB/s); speedup vs curl $(ratio "$t0" "$t1" "$t2" "$t3")x; max concurrent GETs $conns; peak RSS ${rss} MiB"
    t0=$(now); curl -sSf -o /dev/null "$url/stream.vmdk"; t1=$(now)
    [ "$mode" = wan ] && proxy reset
    t2=$(now)
    mount_fs "$ep" s3://bench/stream.vmdk
    cat "$mnt/stream/disk.raw" >/dev/null; t3=$(now)
    conns=-; [ "$mode" = wan ] && conns=$(proxy_stat max_active)
    umount_fs
    echo "$mode vmdk: curl of the stream $(secs "$t0" "$t1") s ($(mbps "$vbytes" "$t0" "$t1") MB/s); vdiskfs mount+read+decode $(secs "$t2" "$t3") s; speedup vs curl $(ratio "$t0" "$t1" "$t2" "$t3")x; max concurrent GETs $conns; peak RSS ${rss} MiB"
    # 2. random 4 KiB reads: what each costs on the wire
    mount_fs "$ep" s3://bench/plain.raw s3://bench/stream.vmdk
    for d in plain stream; do
        read -r r0 b0 < <(io_stats $d)
        t2=$(now)
        python3 - "$mnt/$d/disk.raw" "$bytes" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
rnd = random.Random(42)
size = int(sys.argv[2])
for _ in range(1000):
    os.pread(fd, 4096, rnd.randrange(0, size // 4096) * 4096)
PY
        t3=$(now)
        read -r r1 b1 < <(io_stats $d)
        echo "$mode random 4 KiB x1000 ($d): $(secs "$t2" "$t3") s, $((r1 - r0)) requests, $(((b1 - b0) / 1000)) bytes fetched per read ($(python3 -c "print('%.2f' % (($b1 - $b0) / 1000 / 65536))") x a 64 KiB grain)"
    done
    umount_fs
    # 3. export
    t0=$(now)
    AWS_ENDPOINT_URL=$ep /usr/bin/time -f "%M" -o "$W/time.out" \
        "$VDISK" convert -q -O vmdk "$W/disk.raw" "s3://bench/export-$mode.vmdk"
    t1=$(now)
    t2=$(now)
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/disk.raw" "$W/q.vmdk"
    t3=$(now)
    curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
        -T "$W/q.vmdk" "$url/q.vmdk" >/dev/null
    t4=$(now)
    echo "$mode export: vdisk convert -> s3 $(secs "$t0" "$t1") s (peak RSS $(($(cat "$W/time.out") / 1024)) MiB); qemu-img $(secs "$t2" "$t3") s + curl upload $(secs "$t3" "$t4") s = $(secs "$t2" "$t4") s; speedup vs qemu+curl $(ratio "$t2" "$t4" "$t0" "$t1")x"
done
