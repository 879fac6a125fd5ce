#!/usr/bin/env bash
# S3 read backend against s3rver: raw and every format qemu-img writes, read
# through `vdisk hash s3://...`, a plain http:// URL, and a FUSE mount; the
# oracle is qemu-img's raw conversion of the local file. Also: info.json's
# io statistics, extents beside the object (open_relative), and the exact
# ranged GETs of a cold small read.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need qemu-img
s3_start

# A 64 MiB disk: MBR, one ext4 partition ($T/p1.img) with files, random data.
s3_make_disk "$T/disk.raw"
want=$(sha "$T/disk.raw")

s3_put "$T/disk.raw" "img/disk.raw"
got=$("$VDISK" hash s3://vdtest/img/disk.raw | cut -d' ' -f1)
assert_eq "$got" "$want" "raw over s3://"

# Keys that need encoding (space, plus, unicode) are signed and sent once-encoded.
s3_put "$T/disk.raw" "img/odd%20key%2B1%C3%A9.raw"
got=$("$VDISK" hash "s3://vdtest/img/odd key+1é.raw" | cut -d' ' -f1)
assert_eq "$got" "$want" "key with space, plus and UTF-8"

# Plain http(s) URL: unsigned ranged GETs (s3rver serves anonymous reads).
got=$(env -u AWS_ACCESS_KEY_ID "$VDISK" hash "http://127.0.0.1:$S3_PORT/vdtest/img/disk.raw" | cut -d' ' -f1)
assert_eq "$got" "$want" "raw over http://"

# A server without Range support is refused at open, not read whole.
python3 - "$T" "$T/norange.port" <<'PY' &
import functools, http.server, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.log_message = lambda *a: None
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2], "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
S3_PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$T/norange.port" ] && break; sleep 0.05; done
if "$VDISK" hash "http://127.0.0.1:$(cat "$T/norange.port")/disk.raw" 2>"$T/err"; then
    fail "a server without Range support was accepted"
fi
grep -q "s3: http://127.0.0.1:[0-9]*/disk.raw: the server ignores Range requests (HTTP 200 to bytes=0-1)" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"

# Formats written by qemu-img, each checked against qemu's own raw view.
for spec in "vmdk:-o subformat=monolithicSparse" "vmdk:-o subformat=streamOptimized" \
            "vpc:-o subformat=dynamic" "vpc:-o subformat=fixed" "vhdx:"; do
    fmt=${spec%%:*} o=${spec#*:}
    name="$fmt-$(echo "$o" | sed 's/.*=//')"
    # shellcheck disable=SC2086
    qemu-img convert -f raw -O "$fmt" $o "$T/disk.raw" "$T/$name"
    s3_put "$T/$name" "img/$name"
    oracle=$(qemu_raw_sha "$T/$name" "$fmt")
    f=""
    [ "$name" = vpc-fixed ] && f="-f vhd"
    # shellcheck disable=SC2086
    got=$("$VDISK" hash $f "s3://vdtest/img/$name" | cut -d' ' -f1)
    assert_eq "$got" "$oracle" "$name over s3://"
done

# A VMDK whose data lives in separate extent objects beside the descriptor.
mkdir -p "$T/split"
qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse "$T/disk.raw" "$T/split/split.vmdk"
for f in "$T"/split/*; do s3_put "$f" "img/split/$(basename "$f")"; done
oracle=$(qemu_raw_sha "$T/split/split.vmdk" vmdk)
got=$("$VDISK" hash s3://vdtest/img/split/split.vmdk | cut -d' ' -f1)
assert_eq "$got" "$oracle" "twoGbMaxExtentSparse with extents beside it"

# A VMDK delta disk whose parent (parentFileNameHint) lies beside it.
if command -v qemu-io >/dev/null; then
    mkdir -p "$T/chain"
    qemu-img convert -f raw -O vmdk "$T/disk.raw" "$T/chain/base.vmdk"
    (cd "$T/chain" && qemu-img create -q -f vmdk -b base.vmdk -F vmdk child.vmdk)
    qemu-io -c "write -P 0x55 1M 64k" -c "write -P 0xaa 50M 4k" "$T/chain/child.vmdk" >/dev/null
    s3_put "$T/chain/base.vmdk" "img/chain/base.vmdk"
    s3_put "$T/chain/child.vmdk" "img/chain/child.vmdk"
    oracle=$(qemu_raw_sha "$T/chain/child.vmdk" vmdk)
    got=$("$VDISK" hash s3://vdtest/img/chain/child.vmdk | cut -d' ' -f1)
    assert_eq "$got" "$oracle" "VMDK delta with its parent beside it"
fi

# info --json carries the backend statistics.
"$VDISK" info --json s3://vdtest/img/disk.raw >"$T/info.json"
python3 - "$T/info.json" <<'PY'
import json, sys
io = json.load(open(sys.argv[1]))["io"]
for k in ("bytes_fetched", "requests", "cache_hits", "cache_misses", "cache_hit_rate"):
    assert k in io, k
assert io["backend"] == "s3" and io["etag"], io
assert io["credentials"] == "env", io
PY

# A cold read of one sector fetches one 64 KiB block with one ranged GET
# (after the HEAD and the format probe's reads).
s3_reset
"$VDISK" info s3://vdtest/img/disk.raw >/dev/null
s3_log >"$T/log"
grep -q '^HEAD /vdtest/img/disk.raw - 200' "$T/log" || fail "no HEAD at open: $(cat "$T/log")"
if grep '^GET' "$T/log" | grep -v 'bytes=[0-9]*-[0-9]* 206' | grep -q .; then
    fail "a GET that is not a 206 range: $(cat "$T/log")"
fi
grep -q '^GET /vdtest/img/disk.raw bytes=0-65535 206' "$T/log" || fail "first block not fetched as bytes=0-65535: $(cat "$T/log")"

# A sequential read fetches each byte once, in few GETs (readahead grows).
s3_reset
"$VDISK" hash s3://vdtest/img/disk.raw >/dev/null
s3_log | python3 -c '
import re, sys
got = sorted((int(a), int(b)) for a, b in re.findall(r"^GET /vdtest/img/disk.raw bytes=(\d+)-(\d+) 206", sys.stdin.read(), re.M))
total = sum(b - a + 1 for a, b in got)
assert total == 64 << 20, ("bytes fetched", total, got)
for (a1, b1), (a2, b2) in zip(got, got[1:]):
    assert a2 == b1 + 1, ("gap or overlap", (a1, b1), (a2, b2))
# Readahead splits its window over up to 16 connections (issue 15), in GETs
# of 1 MiB or more: at most one GET per MiB, and it grows past 1 MiB.
assert len(got) <= 64, ("too many GETs", len(got))
assert max(b - a + 1 for a, b in got) >= 2 << 20, "readahead never grew past 1 MiB GETs"
print("sequential read:", len(got), "GETs")
'

# FUSE mount: disk.raw, a partition, concurrent random reads vs the local file.
need_fuse
vmount "$T/mnt" -o "endpoint=http://127.0.0.1:$S3P_PORT,path_style,region=us-east-1,cache_size=4M" \
    s3://vdtest/img/disk.raw s3://vdtest/img/vmdk-streamOptimized
assert_eq "$(sha "$T/mnt/disk/disk.raw")" "$want" "mounted disk.raw"
cmp "$T/mnt/disk/disk-p1.raw" "$T/p1.img" || fail "disk-p1.raw differs from the partition"
# No owner or mode to copy from S3: the mounting user's credentials fetched
# it, so the views are theirs alone (docs/vdiskfs.1, PERMISSIONS).
assert_eq "$(stat -c '%u %a' "$T/mnt/disk/disk.raw" "$T/mnt/disk/info.json" "$T/mnt/disk" | xargs)" \
    "$(id -u) 400 $(id -u) 400 $(id -u) 500" "owner and mode of S3 views"
pids=()
for _ in $(seq 1 24); do
    off=$(( (RANDOM * 32768 + RANDOM) % (64 * 1024 * 1024 - 300000) ))
    len=$(( RANDOM * 9 + 1 ))
    (
        a=$(dd if="$T/mnt/vmdk-streamOptimized/disk.raw" iflag=skip_bytes,count_bytes \
            skip="$off" count="$len" bs=64k status=none | sha256sum)
        b=$(dd if="$T/disk.raw" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=64k \
            status=none | sha256sum)
        [ "$a" = "$b" ] || echo "MISMATCH at $off+$len" >>"$T/mismatch"
    ) &
    pids+=("$!")
done
wait "${pids[@]}"
[ ! -s "$T/mismatch" ] || fail "$(cat "$T/mismatch")"

# An S3 object edited through an overlay file: writes land in the local
# file, the server sees only HEAD and ranged GETs, and a remount shows them.
S3OPTS="endpoint=http://127.0.0.1:$S3P_PORT,path_style,region=us-east-1"
cp "$T/disk.raw" "$T/edited.raw"
head -c 200000 /dev/urandom >"$T/blob"
dd if="$T/blob" of="$T/edited.raw" bs=1k seek=3333 conv=notrunc status=none
s3_reset
vmount "$T/ovm" -o "$S3OPTS,overlay=$T/s3.ovl" s3://vdtest/img/disk.raw
assert_eq "$(stat -c '%a' "$T/ovm/disk/disk.raw")" "600" "mode of an S3 view with an overlay"
dd if="$T/blob" of="$T/ovm/disk/disk.raw" bs=1k seek=3333 conv=notrunc status=none ||
    fail "write through the overlay"
vumount "$T/ovm"
vmount "$T/ovm" -o "$S3OPTS,overlay=$T/s3.ovl" s3://vdtest/img/disk.raw
assert_eq "$(stat -c '%a' "$T/ovm/disk/disk.raw")" "600" "mode of an S3 view with an overlay"
assert_eq "$(sha "$T/ovm/disk/disk.raw")" "$(sha "$T/edited.raw")" "S3 disk with its overlay"
vumount "$T/ovm"
if s3_log | grep -v '^GET\|^HEAD' | grep -q .; then
    fail "the overlay mount wrote to S3: $(s3_log | grep -v '^GET\|^HEAD')"
fi
assert_eq "$("$VDISK" hash s3://vdtest/img/disk.raw | cut -d' ' -f1)" "$want" "S3 object unchanged"
echo "PASS"
