#!/bin/bash
# The nbdkit plugin (issue 12, docs/nbd.md), checked with libnbd's own
# clients and qemu as the oracles:
#  - nbdcopy from the plugin gives qemu-img convert's sha256 for every
#    sample of the corpus, for qemu-img's own VMDK/VHD/VHDX, and for a
#    two-disk OVA in S3 (s3rver), each disk and a partition by export name;
#  - nbdinfo --map agrees with qemu-img map: equal where the image's map is
#    all there is (streamOptimized), else a refinement (we also report a
#    VHD's sector bitmap and the file's own holes) whose holes read as
#    zeros in qemu's conversion;
#  - read-only by default; writes only with overlay=FILE: random writes and
#    zeroes from nbdsh equal a reference, the source is unchanged, a vdiskfs
#    mount of the same overlay shows them and the other way round; a live
#    server keeps the overlay locked;
#  - errors: a bad SOURCE stops nbdkit at start with the message; a source
#    damaged while served gives EIO with the file named in nbdkit's log;
#  - vdisk serve: --run, a stale socket replaced, a live one refused.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need nbdkit nbdcopy nbdinfo qemu-img xz tar python3 sfdisk mkfs.ext4
PLUGIN=$(dirname "$VDISK")/nbdkit-vdisk-plugin.so
[ -f "$PLUGIN" ] || fail "$PLUGIN was not built: install nbdkit-plugin-dev and rebuild"
# nbdsh is python3 -m nbd: Debian's python3-libnbd is for /usr/bin/python3,
# not for another python3 earlier on PATH.
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
need_fuse
cd "$T"
mkdir bin
printf '#!/bin/sh\nexec /usr/bin/python3 -m nbd "$@"\n' > bin/nbdsh
chmod +x bin/nbdsh
export PATH=$T/bin:$PATH

# serve ARGS... -- CMD: nbdkit with the plugin on a private socket, read-only
# unless ARGS has overlay=; CMD runs with $uri set.
serve() {
    local args=() ro=-r
    while [ "$1" != -- ]; do
        case $1 in overlay=*) ro= ;; esac
        args+=("$1")
        shift
    done
    shift
    nbdkit $ro -U - "$PLUGIN" "${args[@]}" --run "$*"
}
nbd_sha() { # nbd_sha SOURCE [ARGS...]: sha256 of nbdcopy's copy of the default export
    local src=$1
    shift
    serve "$src" "$@" -- 'nbdcopy "$uri" -' | sha256sum | cut -d' ' -f1
}

# same_as_qemu IMAGE [ARGS...]: nbdcopy's copy of the default export has the
# bytes of qemu-img convert -O raw. Up to 1 GiB the two sha256 are compared;
# past that (cot's 8 GiB disk, nearly all holes) the two sparse files are
# compared by qemu-img compare, which skips what both leave as holes
# instead of hashing gigabytes of zeros twice.
same_as_qemu() {
    local img=$1 size
    shift
    size=$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    if [ "$size" -le $((1 << 30)) ]; then
        assert_eq "$(nbd_sha "$img" "$@")" "$(qemu_raw_sha "$img")" "nbdcopy of $img"
    else
        serve "$img" "$@" -- 'nbdcopy "$uri" nbd.raw'
        qemu-img convert -O raw "$img" qemu.raw
        qemu-img compare -q -f raw -F raw nbd.raw qemu.raw || fail "nbdcopy of $img differs from qemu-img's"
        assert_eq "$(stat -c %s nbd.raw)" "$size" "size of nbdcopy's copy of $img"
        rm -f nbd.raw qemu.raw
    fi
}

# ---- 1. the corpus ----------------------------------------------------------
echo "[$(date +%T)] section 1" >&2
S=$VD_TEST_DATA/samples
mkdir corpus
for f in vmdk-rs/monolithicSparse vmdk-rs/twoGbMaxExtentSparse vmdk-rs/twoGbMaxExtentSparse-s001 \
    vmdk-rs/streamOptimized vmdk-rs/streamOptimizedWithMarkers vmdk-rs/monolithicFlat \
    vmdk-rs/monolithicFlat-flat vmdk-rs/twoGbMaxExtentFlat vmdk-rs/twoGbMaxExtentFlat-f001 \
    vmdk-rs/vmfs_thick vmdk-rs/vmfs_thick-flat cot/ubuntu.2.0-disk1 cot/input cot/blank; do
    xz -dc "$S/$f.vmdk.xz" > "corpus/$(basename "$f").vmdk"
done
for f in go-vhd/vbox go-vhd/xapi go-vhd/win8 go-vhd/win8-child go-vhd/qemu go-vhd/win8.1-1GB \
    dfvfs/image dfvfs/image-differential; do
    xz -dc "$S/$f.vhd.xz" > "corpus/$(basename "$f").vhd"
done
for f in dynamic fixed; do gzip -dc "$S/node-vhd/$f.vhd.gz" > "corpus/$f.vhd"; done
n=0
for f in monolithicSparse twoGbMaxExtentSparse streamOptimized streamOptimizedWithMarkers \
    monolithicFlat twoGbMaxExtentFlat vmfs_thick ubuntu.2.0-disk1 input blank; do
    same_as_qemu "corpus/$f.vmdk"
    n=$((n + 1))
done
for f in xapi win8 win8-child qemu win8.1-1GB dynamic; do
    same_as_qemu "corpus/$f.vhd"
    n=$((n + 1))
done
# Where qemu-img reads a size from the CHS geometry, or refuses a bad
# checksum, libvhdi is the oracle (samples/INDEX.md; docs/vhd.md says why).
assert_eq "$(nbd_sha corpus/vbox.vhd)" 80a3721188e40218b08b26776bc53bdae81e4784fff71d71450a197319cba113 "vbox.vhd (libvhdi)"
assert_eq "$(nbd_sha corpus/fixed.vhd)" fa0490edf13cf9699ac7ead2b2024f2ec7921f583ff824039bca0529055e409d "node fixed.vhd (libvhdi)"
C6=c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25
assert_eq "$(nbd_sha corpus/image.vhd)" $C6 "dfvfs image.vhd (libvhdi)"
assert_eq "$(nbd_sha corpus/image-differential.vhd)" $C6 "dfvfs image-differential.vhd (libvhdi)"
n=$((n + 4))

# qemu-img's own writers, from a disk with a partition, ext4, data and holes.
s3_make_disk disk.raw
head -c 3000000 /dev/urandom | dd of=disk.raw bs=1M iflag=fullblock oflag=seek_bytes seek=20000000 conv=notrunc status=none
for spec in vmdk:streamOptimized vmdk:monolithicSparse vmdk:twoGbMaxExtentSparse vpc:dynamic \
    vpc:fixed vhdx:dynamic vhdx:fixed; do
    fmt=${spec%:*} sub=${spec#*:}
    out=q-$sub.$fmt
    extra=
    [ "$fmt" = vpc ] && extra=,force_size=on
    qemu-img convert -O "$fmt" -o "subformat=$sub$extra" disk.raw "$out"
    assert_eq "$(nbd_sha "$out")" "$(sha disk.raw)" "nbdcopy of qemu-img's $fmt $sub"
    n=$((n + 1))
done
echo "ok: $n images copied by nbdcopy match qemu-img convert"

# ---- 2. nbdinfo --map against qemu-img map -----------------------------------
echo "[$(date +%T)] section 2" >&2
cat > mapcmp.py <<'PY'
import json, sys
# mapcmp.py QEMU.json NBD.json RAW MODE: MODE "equal" or "refine".
def runs(items):
    out = []
    for off, ln, data in items:
        if out and out[-1][2] == data and out[-1][0] + out[-1][1] == off:
            out[-1][1] += ln
        else:
            out.append([off, ln, data])
    return out
q = runs([(e["start"], e["length"], bool(e["data"])) for e in json.load(open(sys.argv[1]))])
n = runs([(e["offset"], e["length"], not (e["type"] & 1)) for e in json.load(open(sys.argv[2]))])
if sum(r[1] for r in q) != sum(r[1] for r in n):
    sys.exit("map sizes differ: qemu %d, nbd %d" % (sum(r[1] for r in q), sum(r[1] for r in n)))
if sys.argv[4] == "equal":
    if q != n:
        sys.exit("maps differ:\nqemu %s\nnbd  %s" % (q[:8], n[:8]))
    sys.exit(0)
# Refinement: every hole qemu reports is a hole in ours...
def holes(r):
    return [(o, o + l) for o, l, d in r if not d]
nh = holes(n)
for a, b in holes(q):
    if not any(x <= a and b <= y for x, y in nh):
        sys.exit("qemu's hole [%d, %d) is reported as data" % (a, b))
# ...and every hole of ours reads as zeros in qemu's raw conversion.
with open(sys.argv[3], "rb") as f:
    for a, b in nh:
        f.seek(a)
        left = b - a
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk or chunk.count(0) != len(chunk):
                sys.exit("our hole [%d, %d) holds data in qemu's conversion" % (a, b))
            left -= len(chunk)
PY
mapcheck() { # mapcheck IMAGE MODE
    qemu-img map --output=json "$1" > q.json
    serve "$1" -- 'nbdinfo --map --json "$uri"' > n.json
    qemu-img convert -O raw "$1" q.raw
    python3 mapcmp.py q.json n.json q.raw "$2" || fail "nbdinfo --map of $1 ($2)"
}
for f in q-streamOptimized.vmdk corpus/streamOptimized.vmdk corpus/streamOptimizedWithMarkers.vmdk \
    corpus/ubuntu.2.0-disk1.vmdk; do
    mapcheck "$f" equal
done
# qemu-img writes sparse extents without file holes: then the maps are equal.
cp --sparse=never q-monolithicSparse.vmdk dense.vmdk
mapcheck dense.vmdk equal
# (Not q-fixed.vpc: qemu reads its size as 512 bytes more; docs/vhd.md.)
for f in q-monolithicSparse.vmdk q-twoGbMaxExtentSparse.vmdk q-dynamic.vpc \
    corpus/monolithicSparse.vmdk corpus/monolithicFlat.vmdk corpus/vmfs_thick.vmdk corpus/dynamic.vhd \
    corpus/win8-child.vhd corpus/xapi.vhd; do
    mapcheck "$f" refine
done
# qemu 7.2's VHDX driver has no block status (it maps everything as data):
# ours must at least be a sound refinement of that.
mapcheck q-dynamic.vhdx refine
serve q-dynamic.vhdx -- 'nbdinfo --map --totals "$uri"' > totals
grep -q "hole,zero" totals || fail "a dynamic VHDX with unallocated blocks mapped no hole: $(cat totals)"
echo "ok: nbdinfo --map agrees with qemu-img map"

# ---- 3. an OVA in S3: disks and a partition by export name -------------------
echo "[$(date +%T)] section 3" >&2
s3_start
qemu-img convert -O vmdk -o subformat=streamOptimized disk.raw src-disk1.vmdk
head -c $((3 * 1024 * 1024 + 512)) /dev/urandom > disk2.raw
qemu-img convert -O vmdk -o subformat=streamOptimized disk2.raw src-disk2.vmdk
mkdir ova && cp src-disk1.vmdk ova/disk1.vmdk && cp src-disk2.vmdk ova/disk2.vmdk
cat > ova/web01.ovf <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:href="disk1.vmdk" ovf:id="file1" ovf:size="$(stat -c %s ova/disk1.vmdk)"/>
    <File ovf:href="disk2.vmdk" ovf:id="file2" ovf:size="$(stat -c %s ova/disk2.vmdk)"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="$(stat -c %s disk.raw)" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="$(stat -c %s disk2.raw)" ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="web01"><Info>vm</Info><Name>web01</Name></VirtualSystem>
</Envelope>
EOF
(cd ova && sha256sum web01.ovf disk1.vmdk disk2.vmdk | awk '{print "SHA256(" $2 ")= " $1}' > web01.mf)
tar --format=ustar -C ova -cf web01.ova web01.ovf web01.mf disk1.vmdk disk2.vmdk
s3_put web01.ova vms/web01.ova
U=s3://vdtest/vms/web01.ova
serve "$U" -- 'nbdinfo --list --json "$uri"' > list.json
assert_eq "$(python3 -c 'import json,sys; print(" ".join(e["export-name"] for e in json.load(open(sys.argv[1]))["exports"]))' list.json)" \
    "disk1 disk1-p1 disk2" "exports of the OVA in S3"
assert_eq "$(nbd_sha "$U")" "$(qemu_raw_sha src-disk1.vmdk)" "OVA in S3, default export (disk1)"
assert_eq "$(serve "$U" -- 'nbdcopy "nbd+unix:///disk2?socket=$unixsocket" - | sha256sum' | cut -d' ' -f1)" \
    "$(qemu_raw_sha src-disk2.vmdk)" "OVA in S3, export disk2"
assert_eq "$(nbd_sha "$U" disk=2)" "$(sha disk2.raw)" "OVA in S3, disk=2"
start=$(sfdisk -J disk.raw | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][0]; print(p["start"], p["size"])')
dd if=disk.raw of=p1.raw bs=512 skip=${start% *} count=${start#* } status=none
assert_eq "$(nbd_sha "$U" device=disk1-p1)" "$(sha p1.raw)" "OVA in S3, device=disk1-p1"
echo "ok: a two-disk OVA in S3 over NBD"

# ---- 4. writes only through an overlay ----------------------------------------
echo "[$(date +%T)] section 4" >&2
cp q-streamOptimized.vmdk w.vmdk
src_sha=$(sha w.vmdk)
qemu-img convert -O raw w.vmdk ref.raw
rc=0
serve w.vmdk -- 'nbdsh -u "$uri" -c "h.pwrite(b\"x\" * 512, 0)"' > ro.out 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a write without overlay= succeeded"
grep -Eq "Operation not permitted|read-only|EPERM" ro.out || fail "read-only write error: $(cat ro.out)"
cat > writes.py <<'PY'
import os, random, sys
# Random writes and zeroes through NBD, mirrored into REF; reads compared.
ref = bytearray(open(os.environ["REF"], "rb").read())
size = h.get_size()
assert size == len(ref), (size, len(ref))
rnd = random.Random(int(os.environ["SEED"]))
for i in range(300):
    n = rnd.choice([1, 511, 512, 4096, 65536, 65537, 200000])
    off = rnd.randrange(0, size - n)
    op = rnd.random()
    if op < 0.6:
        data = os.urandom(n)
        h.pwrite(data, off)
        ref[off:off + n] = data
    elif op < 0.8:
        h.zero(n, off)
        ref[off:off + n] = bytes(n)
    else:
        assert h.pread(n, off) == bytes(ref[off:off + n]), ("read", off, n)
# The last bytes of the disk, unaligned.
h.pwrite(b"end!", size - 4)
ref[size - 4:] = b"end!"
h.flush()
open(os.environ["REF"], "wb").write(ref)
PY
REF=$T/ref.raw SEED=$RANDOM serve w.vmdk overlay=w.ovl -- 'nbdsh -u "$uri" -c "exec(open(\"writes.py\").read())"' ||
    fail "random writes through the overlay"
assert_eq "$(nbd_sha w.vmdk overlay=w.ovl)" "$(sha ref.raw)" "NBD read-back of the overlay writes"
assert_eq "$(sha w.vmdk)" "$src_sha" "the source after writes over NBD"
# The same overlay in a vdiskfs mount shows the writes...
vmount mnt -o overlay=w.ovl w.vmdk
assert_eq "$(sha mnt/w/disk.raw)" "$(sha ref.raw)" "vdiskfs -o overlay= after NBD writes"
# ...and writes made there show over NBD.
printf 'from the mount' | dd of=mnt/w/disk.raw bs=1 seek=1234567 conv=notrunc status=none
printf 'from the mount' | dd of=ref.raw bs=1 seek=1234567 conv=notrunc status=none
vumount mnt
assert_eq "$(nbd_sha w.vmdk overlay=w.ovl)" "$(sha ref.raw)" "NBD after writes in the mount"
# An overlay in use by a server is locked against a second writer.
serve w.vmdk overlay=w.ovl -- '"$VDISK" hash --overlay w.ovl w.vmdk' > lock.out 2>&1 && fail "overlay not locked: $(cat lock.out)"
grep -q "w.ovl" lock.out || fail "lock message does not name the overlay: $(cat lock.out)"
assert_eq "$(sha w.vmdk)" "$src_sha" "the source at the end"
echo "ok: overlay writes over NBD, shared with vdiskfs"

# ---- 5. errors ------------------------------------------------------------
echo "[$(date +%T)] section 5" >&2
# start_fails ARGS...: nbdkit refuses to start on the plugin with ARGS, its
# message in err.out. (With ASan preloaded, nbdkit 1.32 hangs in
# p11-kit's exit handler after a failed start, with nbdkit's own file plugin
# too: there the message is enough, and the stuck process is killed.)
start_fails() {
    local pid rc=0 asan
    asan=$(nbdkit_asan_preload)
    nbdkit -r -U - "$PLUGIN" "$@" --run true > err.out 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        if [ -n "$asan" ] && grep -q "error:" err.out; then sleep 1; stop_bg "$pid"; rc=1; break; fi
        sleep 0.1
    done
    [ $rc -ne 0 ] || wait "$pid" || rc=$?
    [ $rc -ne 0 ] || fail "nbdkit started with $*: $(cat err.out)"
}
start_fails nosuch.vmdk
grep -q "nosuch.vmdk: cannot open" err.out || fail "missing source message: $(cat err.out)"
head -c 4096 /dev/urandom > junk.vmdk
printf 'KDMV' | dd of=junk.vmdk conv=notrunc status=none
start_fails junk.vmdk
grep -q "junk.vmdk" err.out || fail "corrupt VMDK message: $(cat err.out)"
start_fails w.vmdk device=disk-p9
grep -q "no device 'disk-p9'" err.out || fail "unknown device: $(cat err.out)"
# Damaged while served: the read fails with EIO, the log names the file.
cp q-monolithicSparse.vmdk dmg.vmdk
rm -f dmg.sock
nbdkit -r -f -U "$T/dmg.sock" "$PLUGIN" dmg.vmdk > dmg.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S dmg.sock ] && break; sleep 0.1; done
truncate -s $(($(stat -c %s dmg.vmdk) / 2)) dmg.vmdk
rc=0
nbdsh -u "nbd+unix:///?socket=$T/dmg.sock" -c '
import errno
try:
    h.pread(1 << 20, 50 << 20)  # random data: grains written late in the file
    print("no error")
except nbd.Error as e:
    print("errno", e.errnum == errno.EIO)' > dmg.out 2>&1 || rc=$?
stop_bg "$pid"
assert_eq "$(cat dmg.out)" "errno True" "read of a truncated image over NBD"
grep -q "dmg.vmdk" dmg.log || fail "nbdkit's log does not name the damaged file: $(cat dmg.log)"
echo "ok: errors"

# ---- 6. vdisk serve ---------------------------------------------------------
echo "[$(date +%T)] section 6" >&2
out=$(with_nbd_asan "$VDISK" serve --run 'nbdcopy "$uri" - | sha256sum' w.vmdk | cut -d' ' -f1)
assert_eq "$out" "$(qemu_raw_sha w.vmdk)" "vdisk serve --run"
# A socket nobody listens on is replaced; one in use is refused.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' stale.sock
out=$(with_nbd_asan "$VDISK" serve --socket stale.sock --run 'nbdinfo --size "$uri"' w.vmdk)
assert_eq "$out" "$(stat -c %s disk.raw)" "vdisk serve over a stale socket"
nbdkit -r -f -U "$T/live.sock" "$PLUGIN" w.vmdk > live.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S live.sock ] && break; sleep 0.1; done
rc=0
"$VDISK" serve --socket live.sock w.vmdk > serve.out 2>&1 || rc=$?
stop_bg "$pid"
assert_eq "$rc" 1 "vdisk serve on a live socket"
grep -q "in use by a running server" serve.out || fail "live socket message: $(cat serve.out)"
rc=0
"$VDISK" serve 2> usage.out || rc=$?
assert_eq "$rc" 2 "vdisk serve without SOURCE"
echo PASS
