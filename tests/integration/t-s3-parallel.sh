#!/usr/bin/env bash
# Issue 15: S3 reads and uploads that scale with connections, checked on the
# WAN-like fault proxy (first-byte latency + a per-connection bandwidth cap),
# functionally, never timed:
#   - a sequential read through the mount keeps many ranged GETs in flight
#     (the proxy's max concurrent requests), for a raw object and for a
#     streamOptimized VMDK (decoded), and the bytes match qemu-img;
#   - -o connections=N raises the count beyond the default;
#   - the block cache, blocks in flight included, stays within cache_size;
#   - 1000 random 4 KiB reads fetch at most 2x what one 64 KiB block per read
#     would (no readahead amplification), of a raw object and a stream VMDK;
#   - a read of many compressed grains fetches them as one range, not one
#     round trip per grain;
#   - an export to S3 uploads many parts at once, and the object matches.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need qemu-img
need_fuse
s3_start
unset VD_S3_CONNECTIONS VD_S3_UPLOADS

# 96 MiB: the ext4 test disk, then random data (incompressible grains).
s3_make_disk "$T/disk.raw"
truncate -s 96M "$T/disk.raw"
head -c 32M /dev/urandom | dd of="$T/disk.raw" bs=1M seek=64 conv=notrunc status=none
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$T/disk.raw" "$T/s.vmdk"
s3_put "$T/disk.raw" big/disk.raw
s3_put "$T/s.vmdk" big/s.vmdk
want=$(sha "$T/disk.raw")
want_vmdk=$(qemu_raw_sha "$T/s.vmdk" vmdk)
assert_eq "$want_vmdk" "$want" "qemu-img reads its own stream back"

max_active() { s3_stat max_active; }
ep="endpoint=$AWS_ENDPOINT_URL,path_style,region=us-east-1"
# WAN-like: every answer 20 ms late, each connection at most 20 MB/s.
s3_plan '{"latency_ms": 20, "bw_mbps": 20}'

# 1. Sequential reads widen to many concurrent ranged GETs (default: 16).
vmount "$T/m" -o "$ep" s3://vdtest/big/disk.raw s3://vdtest/big/s.vmdk
s3_reset
assert_eq "$(sha "$T/m/disk/disk.raw")" "$want" "raw object through the mount"
n=$(max_active)
[ "$n" -ge 10 ] || fail "sequential read of a raw object: at most $n GETs at once, want >= 10"
echo "raw: max concurrent GETs $n"
s3_reset
assert_eq "$(sha "$T/m/s/disk.raw")" "$want" "streamOptimized VMDK through the mount (vs qemu-img)"
n=$(max_active)
[ "$n" -ge 10 ] || fail "sequential read of a stream VMDK: at most $n GETs at once, want >= 10"
echo "vmdk: max concurrent GETs $n"
python3 -c 'import json,sys; io=json.load(open(sys.argv[1]))["io"]; assert io["connections"] == 16, io' \
    "$T/m/disk/info.json" || fail "info.json io.connections is not the default 16"
vumount "$T/m"

# 2. -o connections=N overrides the default.
vmount "$T/m2" -o "$ep,connections=28" s3://vdtest/big/disk.raw
s3_reset
assert_eq "$(sha "$T/m2/disk/disk.raw")" "$want" "raw object with connections=28"
n=$(max_active)
[ "$n" -ge 20 ] || fail "-o connections=28: at most $n GETs at once, want >= 20"
echo "connections=28: max concurrent GETs $n"
vumount "$T/m2"
if "$VDISKFS" -o "$ep,connections=0" s3://vdtest/big/disk.raw "$T/m3" 2>"$T/err"; then
    fusermount3 -u "$T/m3" 2>/dev/null || true
    fail "-o connections=0 was accepted"
fi
grep -q "connections=0: give a number from 1 to 64" "$T/err" || fail "unexpected message: $(cat "$T/err")"

# A small cache bounds the window and the connections (2), bytes still right.
vmount "$T/m5" -o "$ep,cache_size=1M" s3://vdtest/big/disk.raw
assert_eq "$(sha "$T/m5/disk/disk.raw")" "$want" "raw object with cache_size=1M"
python3 -c 'import json,sys; io=json.load(open(sys.argv[1]))["io"]; assert io["connections"] == 2, io' \
    "$T/m5/disk/info.json" || fail "cache_size=1M: info.json io.connections is not 2"
# ... and still reads ahead: most of a sequential read is found in the cache.
python3 - "$T/m5/disk/info.json" <<'PY' || fail "cache_size=1M: no readahead"
import json, sys
io = json.load(open(sys.argv[1]))["io"]
print("cache_size=1M: cache_hit_rate %.3f, %d GETs" % (io["cache_hit_rate"], io["requests"]))
assert io["cache_hit_rate"] >= 0.5, io
PY
vumount "$T/m5"
# Reading past the cache keeps within it: blocks in flight count too (the
# only excess allowed is one FUSE read's own blocks, 128 KiB).
vmount "$T/m7" -o "$ep,cache_size=16M" s3://vdtest/big/disk.raw s3://vdtest/big/s.vmdk
assert_eq "$(sha "$T/m7/disk/disk.raw")" "$want" "raw object with cache_size=16M"
assert_eq "$(sha "$T/m7/s/disk.raw")" "$want" "stream VMDK with cache_size=16M"
for d in disk s; do
    python3 - "$T/m7/$d/info.json" <<'PY' || fail "$d: the cache grew past cache_size=16M"
import json, sys
io = json.load(open(sys.argv[1]))["io"]
print("%s: cache_peak_bytes %d of cache_size %d" % (sys.argv[1], io["cache_peak_bytes"], io["cache_size"]))
assert io["cache_size"] == 16 << 20 and io["cache_peak_bytes"] <= io["cache_size"] + (128 << 10), io
PY
done
vumount "$T/m7"

# 3. Random 4 KiB reads stay small (no shaping: only bytes count here): on
# a raw object, a 64 KiB block each; on the stream VMDK, its grain (and, now
# and then, a grain table), never a readahead.
# random_reads WHAT FILE SEED: 1000 reads against the original, bytes bounded.
random_reads() {
    s3_reset
    python3 - "$2" "$T/disk.raw" "$3" <<'PY' || fail "$1: random reads returned wrong bytes"
import os, random, sys
fd, ref = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
size = os.fstat(ref).st_size
rnd = random.Random(int(sys.argv[3]))
for _ in range(1000):
    off = rnd.randrange(0, size // 4096) * 4096
    if os.pread(fd, 4096, off) != os.pread(ref, 4096, off):
        sys.exit("bytes differ at %d" % off)
PY
    local got per
    got=$(s3_stat body_bytes)
    per=$((got / 1000))
    echo "random 4 KiB reads ($1): $per bytes fetched per read (64 KiB block or grain: 65536)"
    [ "$per" -le $((2 * 65536)) ] || fail "$1: 1000 random 4 KiB reads fetched $got bytes, over 2 x 64 KiB per read"
}
s3_plan '{}'
vmount "$T/m4" -o "$ep" s3://vdtest/big/disk.raw s3://vdtest/big/s.vmdk
random_reads "raw object" "$T/m4/disk/disk.raw" 15
random_reads "stream VMDK" "$T/m4/s/disk.raw" 16
vumount "$T/m4"

# 4. One read of many compressed grains asks for them together. vdisk info
# reads the first MiB of the disk at once (the partition probe): 16 grains
# of random data, which the reader decodes last to first. Each grain on its
# own would be a 64 KiB GET and a round trip (16 of them, one after the
# other); the grains' span is fetched as one range instead.
head -c 4M /dev/urandom >"$T/rnd.raw"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$T/rnd.raw" "$T/rnd.vmdk"
s3_put "$T/rnd.vmdk" big/rnd.vmdk
s3_reset
"$VDISK" info --json s3://vdtest/big/rnd.vmdk >"$T/rnd.json" || fail "vdisk info of the stream VMDK"
s3_log >"$T/rnd.log"
single=$(awk '$1 == "GET" && $3 ~ /^bytes=/ { split(substr($3, 7), r, "-"); if (r[2] - r[1] + 1 == 65536) n++ } END { print n + 0 }' "$T/rnd.log")
echo "vdisk info of a 4 MiB random stream VMDK: $(grep -c . "$T/rnd.log") requests, $single of one 64 KiB block"
[ "$single" -le 3 ] || fail "the first MiB's grains were fetched one block at a time ($single GETs of 64 KiB): $(cat "$T/rnd.log")"

# 5. Export uploads parts in parallel (8 MiB parts: 96 MiB is 11 of them).
s3_plan '{"latency_ms": 20, "bw_mbps": 20}'
s3_reset
"$VDISK" convert -q -O raw "$T/disk.raw" s3://vdtest/out/disk.raw
n=$(max_active)
echo "export: max concurrent requests $n"
[ "$n" -ge 6 ] || fail "export: at most $n uploads at once, want >= 6"
s3_plan '{}'
s3_get out/disk.raw "$T/back.raw"
assert_eq "$(sha "$T/back.raw")" "$want" "exported object"
echo "ok"
