#!/bin/bash
# VMDK flavours made by qemu-img (and a VMware-style stream written here)
# read back byte-identical to qemu-img's raw conversion (the oracle), or to
# the raw they were made from. Corrupt inputs give exact messages.
. "$VD_TEST_LIB"
need qemu-img qemu-io python3 xz
TV="${VD_BUILD_DIR:?}/tests/test_vmdk"
[ -x "$TV" ] || fail "test_vmdk helper not built ($TV): build the tree with BUILD_TESTING"
cd "$T"

vhash() { "$TV" hash "$1" | cut -d' ' -f1; }
# expect_err IMG MESSAGE: opening/reading IMG fails with exactly MESSAGE.
expect_err() {
    local out
    if out=$("$TV" hash "$1" 2>&1); then fail "$1: expected failure '$2', got $out"; fi
    assert_eq "$out" "$2" "$1: error message"
}
# Byte patching: poke FILE OFFSET LE-BYTES VALUE
poke() {
    python3 - "$@" <<'EOF'
import sys
f, off, n, v = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3]), int(sys.argv[4], 0)
with open(f, 'r+b') as h:
    h.seek(off); h.write(v.to_bytes(n, 'little'))
EOF
}
peek() { python3 -c "import sys;d=open(sys.argv[1],'rb').read();print(int.from_bytes(d[int(sys.argv[2],0):int(sys.argv[2],0)+int(sys.argv[3])],'little'))" "$@"; }

# A raw with random, compressible and zero regions; 20 MiB + 3 sectors, so
# the last grain is partial.
head -c 3M /dev/urandom > src.raw
cat /usr/bin/bash /usr/bin/ls 2>/dev/null | head -c 4M >> src.raw
truncate -s 12M src.raw
head -c 1M /dev/urandom >> src.raw
truncate -s $((20 * 1024 * 1024 + 1536)) src.raw
want=$(sha src.raw)

for sub in monolithicSparse streamOptimized monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
    mkdir -p "$sub"
    qemu-img convert -f raw -O vmdk -o subformat=$sub src.raw "$sub/d.vmdk"
    assert_eq "$(qemu_raw_sha "$sub/d.vmdk")" "$want" "qemu oracle for $sub"
    assert_eq "$(vhash "$sub/d.vmdk")" "$want" "$sub"
done
# Two streamOptimized files as the SPARSE extents of one descriptor: their
# grains share numbers, so the decoded-grain cache must key them by extent
# too; the second extent starts mid-grain in the virtual disk.
head -c 4M /dev/urandom > s2.raw
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized s2.raw s2.vmdk
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="twoGbMaxExtentSparse"\nRW %d SPARSE "streamOptimized/d.vmdk"\nRW 8192 SPARSE "s2.vmdk"\n' \
    $(( $(stat -c %s src.raw) / 512 )) > twostreams.vmdk
cat src.raw s2.raw > twostreams.expect
assert_eq "$(vhash twostreams.vmdk)" "$(sha twostreams.expect)" "two stream extents"
# The same images through the mount, where flat extents and runs of
# uncompressed grains are spliced from the file (vmdk_map) and the rest is
# read by pread: both must give qemu's bytes.
if [ -e /dev/fuse ]; then
    vmount "$T/smnt" "$T/monolithicSparse/d.vmdk" "$T/monolithicFlat/d.vmdk" \
        "$T/twoGbMaxExtentSparse/d.vmdk" "$T/twoGbMaxExtentFlat/d.vmdk" "$T/streamOptimized/d.vmdk"
    for dir in d d-2 d-3 d-4 d-5; do
        assert_eq "$(sha "$T/smnt/$dir/disk.raw")" "$want" "mounted $dir/disk.raw"
    done
    vumount "$T/smnt"
fi

# hwversion / adapter type variants
qemu-img convert -f raw -O vmdk -o adapter_type=lsilogic,hwversion=6 src.raw hw.vmdk
assert_eq "$(vhash hw.vmdk)" "$want" "hwversion=6 lsilogic"

# zeroed_grain=on: GTE==1 reads zeros (qemu writes version 2 headers).
qemu-img create -q -f vmdk -o zeroed_grain=on z.vmdk 4M
qemu-io -c 'write -P 0x11 0 2M' -c 'write -z 64k 128k' z.vmdk >/dev/null
assert_eq "$(peek z.vmdk 4 4)" 2 "zeroed_grain header version"
assert_eq "$(vhash z.vmdk)" "$(qemu_raw_sha z.vmdk)" "zeroed grains"

# Header versions 1, 2, 3 and no redundant GD (flags bit 1 cleared, rgdOffset 0),
# by patching a monolithicSparse image.
for v in 1 2 3; do
    cp monolithicSparse/d.vmdk v$v.vmdk
    poke v$v.vmdk 4 4 $v
    assert_eq "$(vhash v$v.vmdk)" "$want" "header version $v"
done
cp monolithicSparse/d.vmdk nordg.vmdk
poke nordg.vmdk 8 4 $(( $(peek nordg.vmdk 8 4) & ~2 ))
poke nordg.vmdk 48 8 0
assert_eq "$(vhash nordg.vmdk)" "$want" "no redundant grain directory"
assert_eq "$(qemu_raw_sha nordg.vmdk)" "$want" "qemu on no-RGD image"

# VMware-style streamOptimized: GD at end (gdOffset -1), GT/GD/footer/EOS
# markers, embedded descriptor naming another file; variants with a short
# last grain and without the EOS marker (qemu refuses both; see docs/vmdk.md).
# The descriptor has the "# The Disk Data Base" line VMware writes: libvmdk
# (the vmdkmount oracle below) reads extent lines until it.
cat > mkstream.py <<'EOF'
import struct, sys, zlib
raw = open(sys.argv[1], 'rb').read(); out = sys.argv[2]; opts = sys.argv[3:]
S = 512; GS = 128; GB = GS * S; NG = 512
cap = (len(raw) + S - 1) // S; ngr = (cap + GS - 1) // GS; ngt = (ngr + NG - 1) // NG
desc = ('# Disk DescriptorFile\nversion=1\nCID=1234abcd\nparentCID=ffffffff\n'
        'createType="streamOptimized"\n\n# Extent description\nRDONLY %d SPARSE "generated-stream.vmdk"\n\n'
        '# The Disk Data Base\n#DDB\nddb.adapterType = "lsilogic"\nddb.virtualHWVersion = "7"\n' % cap).encode()
def header(gd):
    return struct.pack('<IIIQQQQIQQQBccccH', 0x564d444b, 3, 0x30001, cap, GS, 1, 20, NG, 0, gd, 128,
                       0, b'\n', b' ', b'\r', b'\n', 1).ljust(S, b'\0')
def pad(b): return b + b'\0' * (-len(b) % S)
f = bytearray(header(0xffffffffffffffff)) + pad(desc)
f = f.ljust(128 * S, b'\0')
gts = [[0] * NG for _ in range(ngt)]
for g in range(ngr):
    data = raw[g * GB:(g + 1) * GB]
    if data.count(0) == len(data): continue
    if '--short-last' not in opts: data = data.ljust(GB, b'\0')
    c = zlib.compress(data, 6)
    gts[g // NG][g % NG] = len(f) // S
    f += pad(struct.pack('<QI', g * GS, len(c)) + c)
gtsec = []
for t in range(ngt):
    f += struct.pack('<QII', NG * 4 // S, 0, 1).ljust(S, b'\0')
    gtsec.append(len(f) // S)
    f += struct.pack('<%dI' % NG, *gts[t])
f += struct.pack('<QII', (ngt * 4 + S - 1) // S, 0, 2).ljust(S, b'\0')
gd = len(f) // S
f += pad(struct.pack('<%dI' % ngt, *gtsec))
f += struct.pack('<QII', 1, 0, 3).ljust(S, b'\0') + header(gd)
if '--no-eos' not in opts: f += b'\0' * S
open(out, 'wb').write(f)
EOF
python3 mkstream.py src.raw vmw.vmdk
assert_eq "$(qemu_raw_sha vmw.vmdk)" "$(vhash vmw.vmdk)" "GD-at-end stream vs qemu"
qemu-img convert -O raw vmw.vmdk vmw.raw
cmp -n $(stat -c %s src.raw) vmw.raw src.raw || fail "GD-at-end stream differs from its source"
python3 mkstream.py src.raw short.vmdk --short-last
assert_eq "$(vhash short.vmdk)" "$want" "short last grain"
python3 mkstream.py src.raw noeos.vmdk --no-eos
assert_eq "$(vhash noeos.vmdk)" "$want" "footer without EOS marker"
if command -v vmdkmount >/dev/null && [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    # libvmdk opens the extent the embedded descriptor names; we read the
    # stream's own grains, so give it that name only for the oracle.
    mkdir -p vm && ln -s vmw.vmdk generated-stream.vmdk
    vmdkmount vmw.vmdk vm >vmdkmount.out 2>&1 || fail "vmdkmount cannot read vmw.vmdk: $(tail -3 vmdkmount.out)"
    MOUNTS+=("$T/vm")
    assert_eq "$(sha vm/vmdk1)" "$(vhash vmw.vmdk)" "vmdkmount oracle on the VMware-style stream"
    fusermount3 -u vm
    rm generated-stream.vmdk
fi

# Delta disks: child reads unallocated grains from the parent; CID checked.
qemu-img create -q -f vmdk base.vmdk 8M
qemu-io -c 'write -P 0xab 0 5M' base.vmdk >/dev/null
qemu-img create -q -f vmdk -b base.vmdk -F vmdk child.vmdk
qemu-io -c 'write -P 0xcd 1M 1M' -c 'write -P 0xef 7M 64k' child.vmdk >/dev/null
assert_eq "$(vhash child.vmdk)" "$(qemu_raw_sha child.vmdk)" "delta disk"
mkdir -p sub && cp base.vmdk sub/ && qemu-img create -q -f vmdk -b base.vmdk -F vmdk sub/c2.vmdk
qemu-img create -q -f vmdk -b c2.vmdk -F vmdk sub/c3.vmdk
assert_eq "$(vhash sub/c3.vmdk)" "$(qemu_raw_sha sub/c3.vmdk)" "two-level chain"
# a streamOptimized child: holes read from the parent
qemu-img create -q -f vmdk -o subformat=streamOptimized -b base.vmdk -F vmdk schild.vmdk
qemu-io -c 'write -P 0x44 1M 64k' -c 'write -P 0x45 3M 128k' schild.vmdk >/dev/null
assert_eq "$(vhash schild.vmdk)" "$(qemu_raw_sha schild.vmdk)" "streamOptimized delta disk"
cid=$(grep -a -m1 '^CID=' base.vmdk | cut -d= -f2)
cid8=$(printf %08x 0x$cid)
sed -i "0,/^CID=$cid/s//CID=0badc1d0/" base.vmdk
expect_err child.vmdk "vmdk: child.vmdk: parentCID $cid8 does not match CID 0badc1d0 of parent base.vmdk (the parent changed after this snapshot was taken)"
rm base.vmdk
expect_err child.vmdk "vmdk: child.vmdk: cannot open parent 'base.vmdk': base.vmdk: cannot open: No such file or directory"

# Descriptor with several extents incl. ZERO and a flat extent at an offset.
head -c 1M /dev/urandom > part.bin
cat > multi.vmdk <<EOF
# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"
RW 1024 FLAT "part.bin" 512
RDONLY 2048 ZERO
RW 1024 FLAT "part.bin" 0
EOF
{ dd if=part.bin bs=256K skip=1 count=2 status=none; head -c 1M /dev/zero; head -c 512K part.bin; } > multi.expect
assert_eq "$(vhash multi.vmdk)" "$(sha multi.expect)" "FLAT+ZERO extents"
# hand-written descriptors: no comment line, or a UTF-8 BOM
printf 'version=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "part.bin" 0\n' > hand.vmdk
printf '\xef\xbb\xbf# Disk DescriptorFile\ncreateType="monolithicFlat"\nRW 2048 FLAT "part.bin" 0\n' > bom.vmdk
assert_eq "$(vhash hand.vmdk)" "$(sha part.bin)" "descriptor without a comment line"
assert_eq "$(vhash bom.vmdk)" "$(sha part.bin)" "descriptor with a BOM"
# ESX-style absolute extent path: found beside the descriptor
printf '# Disk DescriptorFile\ncreateType="vmfs"\nRW 2048 VMFS "/vmfs/volumes/ds1/vm/part.bin"\n' > abs.vmdk
assert_eq "$(vhash abs.vmdk)" "$(sha part.bin)" "absolute extent path"
printf '# Disk DescriptorFile\ncreateType="vmfs"\nRW 2048 VMFS "/vmfs/volumes/ds1/vm/nope.bin"\n' > abs2.vmdk
# An absolute name outside the descriptor's directory is refused by the path
# policy (docs/trust-boundary.md) before anything is opened, and the base
# name beside it does not exist either.
expect_err abs2.vmdk "vmdk: abs2.vmdk: extent 1 '/vmfs/volumes/ds1/vm/nope.bin' resolves outside $PWD, the directory of the image that names it; refused, as an image may only name files beside it (if you trust this image, allow the directory holding that file with -o allow_path=DIR for vdiskfs or --allow-path DIR for vdisk)"
# qemu 7.2 mis-sizes descriptors with ZERO extents (1 MiB here), so the
# oracle for this one is the dd-built file; qemu checks the FLAT-only variant.
grep -v ZERO multi.vmdk > multi2.vmdk
assert_eq "$(vhash multi2.vmdk)" "$(qemu_raw_sha multi2.vmdk)" "two FLAT extents at offsets"

# ---- corrupt and unsupported inputs: exact messages ----
cp monolithicSparse/d.vmdk c.vmdk
gd=$(peek c.vmdk 56 8)
gt=$(peek c.vmdk $((gd * 512)) 4)
cp c.vmdk bad.vmdk; poke bad.vmdk 20 8 3
expect_err bad.vmdk "vmdk: bad.vmdk: grain size 3 sectors is invalid (must be a power of two, at most 2048)"
cp c.vmdk bad.vmdk; poke bad.vmdk 12 8 $((1 << 60))
expect_err bad.vmdk "vmdk: bad.vmdk: capacity $((1 << 60)) sectors is invalid (1 sector to 256 TiB)"
cp c.vmdk bad.vmdk; poke bad.vmdk 44 4 4096
expect_err bad.vmdk "vmdk: bad.vmdk: 4096 grain table entries per grain table is invalid (1 to 512)"
cp c.vmdk bad.vmdk; poke bad.vmdk 4 4 4
expect_err bad.vmdk "vmdk: bad.vmdk: sparse extent header version 4 is not supported"
cp c.vmdk bad.vmdk; poke bad.vmdk 56 8 100000
expect_err bad.vmdk "vmdk: bad.vmdk: grain directory (4 bytes at sector 100000) is past end of file ($(stat -c %s c.vmdk) bytes)"
head -c 4000 c.vmdk > trunc.vmdk
expect_err trunc.vmdk "vmdk: trunc.vmdk: grain directory (4 bytes at sector $gd) is past end of file (4000 bytes)"
head -c $((gd * 512 + 2)) c.vmdk > trunc.vmdk
expect_err trunc.vmdk "vmdk: trunc.vmdk: grain directory (4 bytes at sector $gd) is past end of file ($((gd * 512 + 2)) bytes)"
cp c.vmdk bad.vmdk; poke bad.vmdk $((gd * 512)) 4 999999
expect_err bad.vmdk "vmdk: bad.vmdk: grain directory entry 0 points to a grain table at sector 999999, past end of file ($(stat -c %s c.vmdk) bytes)"
cp c.vmdk bad.vmdk; poke bad.vmdk $((gt * 512)) 4 $gt
expect_err bad.vmdk "vmdk: bad.vmdk: grain table 0 entry 0 (grain 0) points to sector $gt, inside the header area"
cp c.vmdk bad.vmdk; poke bad.vmdk $((gt * 512 + 4)) 4 2
expect_err bad.vmdk "vmdk: bad.vmdk: grain table 0 entry 1 (grain 1) points to sector 2, inside the header area"
cp c.vmdk bad.vmdk; poke bad.vmdk $((gt * 512)) 4 99999999
expect_err bad.vmdk "vmdk: bad.vmdk: grain table 0 entry 0 (grain 0) points to sector 99999999, past end of file"
head -c $(( $(stat -c %s c.vmdk) - 70000 )) c.vmdk > trunc.vmdk
out=$("$TV" hash trunc.vmdk 2>&1 || true)
case "$out" in "vmdk: trunc.vmdk: grain table 0 entry "*" points to sector "*", past end of file") ;;
    *) fail "truncated grain: $out" ;; esac

# streamOptimized corruptions (qemu layout: GTE -> grain marker)
s=streamOptimized/d.vmdk
sgd=$(peek $s 56 8); sgt=$(peek $s $((sgd * 512)) 4); g0=$(peek $s $((sgt * 512)) 4)
cp $s bad.vmdk; poke bad.vmdk $((g0 * 512)) 8 77
expect_err bad.vmdk "vmdk: bad.vmdk: grain 0: grain marker at offset $((g0 * 512)) is for sector 77, expected 0"
cp $s bad.vmdk; poke bad.vmdk $((g0 * 512 + 8)) 4 $((1 << 30))
expect_err bad.vmdk "vmdk: bad.vmdk: grain 0: grain marker at offset $((g0 * 512)) gives a compressed size of $((1 << 30)) bytes, larger than any grain compresses to"
cp $s bad.vmdk; poke bad.vmdk $((g0 * 512 + 8)) 8 $((1 << 32))
expect_err bad.vmdk "vmdk: bad.vmdk: grain 0: expected a grain marker at offset $((g0 * 512)), found a metadata marker of type 1"
cp $s bad.vmdk; poke bad.vmdk $((g0 * 512 + 20)) 8 0x0123456789abcdef
expect_err bad.vmdk "vmdk: bad.vmdk: grain 0 at offset $((g0 * 512)): corrupt compressed data"
# a grain that inflates to less than a grain
python3 - bad.vmdk $((g0 * 512)) <<'EOF'
import sys, zlib, struct
c = zlib.compress(b'x' * 1000)
with open(sys.argv[1], 'r+b') as h:
    h.seek(int(sys.argv[2])); h.write(struct.pack('<QI', 0, len(c)) + c)
EOF
expect_err bad.vmdk "vmdk: bad.vmdk: grain 0 at offset $((g0 * 512)) decompressed to 1000 bytes, expected 65536"
# GD-at-end without a footer
head -c $(( $(stat -c %s vmw.vmdk) - 1536 )) vmw.vmdk > nofoot.vmdk
expect_err nofoot.vmdk "vmdk: nofoot.vmdk: grain directory is at the end of the stream (gdOffset -1) but there is no footer before end of file ($(( $(stat -c %s vmw.vmdk) - 1536 )) bytes)"

# Unsupported flavours
{ printf 'COWD'; head -c 2044 /dev/zero; } > cowd.vmdk
expect_err cowd.vmdk "vmdk: cowd.vmdk: vmfsSparse (COWD) extents are not supported"
{ printf '\xbe\xba\xfe\xca\0\0\0\0'; head -c 4088 /dev/zero; } > se.vmdk
expect_err se.vmdk "vmdk: se.vmdk: seSparse extents are not supported"
printf '# Disk DescriptorFile\nversion=1\ncreateType="seSparse"\nRW 100 SESPARSE "x-sesparse.vmdk"\n' > sed.vmdk
expect_err sed.vmdk "vmdk: sed.vmdk: seSparse extents are not supported"
printf '# Disk DescriptorFile\nversion=1\ncreateType="fullDevice"\nRW 100 FLAT "/dev/sda" 0\n' > dev.vmdk
expect_err dev.vmdk "vmdk: dev.vmdk: createType fullDevice (a physical disk or raw device) is not supported"
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n' > none.vmdk
expect_err none.vmdk "vmdk: none.vmdk: descriptor lists no extents"
printf '# Disk DescriptorFile\nversion=1\nRW 4096 FLAT "part.bin" 0\n' > short.vmdk
expect_err short.vmdk "vmdk: short.vmdk: extent 1: part.bin is 1048576 bytes, shorter than the 2097152 bytes at offset 0 the descriptor gives it"
# ---- in-place writes (monolithicSparse, twoGbMaxExtent*, flat, deltas) ----
# Each write goes to the image with our driver and to a raw copy with dd;
# qemu-img must then read the image as the raw, and qemu-img check it clean.
head -c 300000 /dev/urandom > chunk
wtest() { # wtest IMG RAW OFFSET...
    local img=$1 raw=$2 off; shift 2
    for off in "$@"; do
        "$TV" pwrite "$img" "$off" chunk || fail "pwrite $img at $off"
        dd if=chunk of="$raw" bs=300000 seek="$off" oflag=seek_bytes conv=notrunc status=none
    done
    assert_eq "$(qemu_raw_sha "$img")" "$(sha "$raw")" "writes into $img"
    assert_eq "$(vhash "$img")" "$(sha "$raw")" "our read after writes into $img"
    qemu-img check "$img" >/dev/null 2>&1 || fail "qemu-img check $img after writes: $(qemu-img check "$img" 2>&1)"
}
size=$(stat -c %s src.raw)
last=$((size - 300000))
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
    mkdir -p w-$sub
    qemu-img convert -f raw -O vmdk -o subformat=$sub src.raw w-$sub/d.vmdk
    cp src.raw w-$sub/raw
    wtest w-$sub/d.vmdk w-$sub/raw 0 1000000 13000001 $last
done
# A grain table the GD does not have yet (GD and RGD entries cleared): the
# write allocates the GT (and its redundant copy) at the end of the file.
qemu-img create -q -f vmdk gtless.vmdk 64M
gd=$(peek gtless.vmdk 56 8); rgd=$(peek gtless.vmdk 48 8)
poke gtless.vmdk $((gd * 512 + 4)) 4 0
poke gtless.vmdk $((rgd * 512 + 4)) 4 0
truncate -s 64M gtless.raw
wtest gtless.vmdk gtless.raw $((32 * 1024 * 1024 + 12345)) $((40 * 1024 * 1024))
# A file that ends inside its header area (overHead: 128 sectors, the file
# cut at 57522 bytes, after its tables) is cut short: readable, but writes
# are refused (new grains would have to go past a hole or into the header
# area; found by fuzz_vmdk's I4).
qemu-img create -q -f vmdk cut.vmdk 1M
truncate -s 57522 cut.vmdk
truncate -s 1M cut.raw # nothing was written: zeros (qemu-img refuses the file)
assert_eq "$(vhash cut.vmdk)" "$(sha cut.raw)" "a file cut inside its header area"
out=$("$TV" pwrite cut.vmdk 0 chunk 2>&1) && fail "cut.vmdk written"
assert_eq "$out" "cut.vmdk: refusing to open for writing: \`vdisk check\` finds 1 problem (first: vmdk: cut.vmdk: header area (overHead 128 sectors) ends past the end of the file (57522 bytes): the file is cut short); open it read-only, or write through an overlay (-o overlay=FILE)" "write into a cut file"
# Delta disk: partial grains start from the parent's bytes.
qemu-img create -q -f vmdk wbase.vmdk 8M
qemu-io -c 'write -P 0x5a 0 8M' wbase.vmdk >/dev/null
qemu-img create -q -f vmdk -b wbase.vmdk -F vmdk wchild.vmdk
qemu-img convert -O raw wchild.vmdk wchild.raw
wtest wchild.vmdk wchild.raw 100 4000000
# Writing a parent gives it a new CID, so its old children are refused.
"$TV" pwrite wbase.vmdk 0 chunk
newcid=$(grep -a -m1 '^CID=' wbase.vmdk | cut -d= -f2)
oldcid=$(grep -a -m1 '^parentCID=' wchild.vmdk | cut -d= -f2)
expect_err wchild.vmdk "vmdk: wchild.vmdk: parentCID $(printf %08x 0x$oldcid) does not match CID $newcid of parent wbase.vmdk (the parent changed after this snapshot was taken)"
# Refusals
out=$("$TV" pwrite streamOptimized/d.vmdk 0 chunk 2>&1) && fail "stream written"
assert_eq "$out" "vmdk: d.vmdk: streamOptimized images (compressed grains) cannot be written in place; mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "stream write refusal"
out=$("$TV" pwrite multi.vmdk $((600 * 1024)) chunk 2>&1) && fail "ZERO extent written"
assert_eq "$out" "vmdk: multi.vmdk: cannot write data at offset 614400 into ZERO extent 2" "ZERO extent write refusal"

# ---- through the real faces: `vdisk hash/check` and the FUSE mount ----
"$VDISK" hash --sha256 "$T/streamOptimized/d.vmdk" > cli.out 2>&1 ||
    fail "vdisk hash of a stream: $(head -c 400 cli.out)"
assert_eq "$(cut -d' ' -f1 cli.out)" "$want" "vdisk hash of a stream"
assert_eq "$("$VDISK" hash --sha256 vmw.vmdk | cut -d' ' -f1)" "$(vhash vmw.vmdk)" "vdisk hash GD-at-end"
"$VDISK" check streamOptimized/d.vmdk >/dev/null || fail "vdisk check on a clean stream"
cp streamOptimized/d.vmdk ovl.vmdk
g0=$(peek ovl.vmdk $(( $(peek ovl.vmdk $(( $(peek ovl.vmdk 56 8) * 512 )) 4) * 512 )) 4)
gt0=$(( $(peek ovl.vmdk $(( $(peek ovl.vmdk 56 8) * 512 )) 4) * 512 ))
poke ovl.vmdk $((gt0 + 4)) 4 $g0 # grain 1 -> grain 0's marker
rc=0; "$VDISK" check ovl.vmdk > check.out 2>&1 || rc=$?
assert_eq "$rc" 2 "vdisk check exit status on overlapping grains"
grep -qF "vmdk: ovl.vmdk: grains 0 and 1 overlap at offset $((g0 * 512))" check.out ||
    fail "check output: $(cat check.out)"
# redundant GT disagreeing with the primary
cp monolithicSparse/d.vmdk rg.vmdk
rgt=$(peek rg.vmdk $(( $(peek rg.vmdk 48 8) * 512 )) 4)
pv=$(peek rg.vmdk $(( $(peek rg.vmdk $(( $(peek rg.vmdk 56 8) * 512 )) 4) * 512 + 8 )) 4)
poke rg.vmdk $((rgt * 512 + 8)) 4 0
rc=0; "$VDISK" check rg.vmdk > check.out 2>&1 || rc=$?
assert_eq "$rc" 2 "vdisk check exit status on a stale redundant GT"
grep -qF "vmdk: rg.vmdk: redundant grain table 0 entry 2 is 0, the primary says $pv" check.out ||
    fail "check output: $(cat check.out)"
"$VDISK" check w-monolithicSparse/d.vmdk >/dev/null || fail "check after our writes: RGD out of step"
"$VDISK" check gtless.vmdk >/dev/null || fail "check after GT allocation: $("$VDISK" check gtless.vmdk 2>&1)"
if [ -e /dev/fuse ]; then
    vmount "$T/mnt" "$T/streamOptimized/d.vmdk" "$T/vmw.vmdk"
    assert_eq "$(sha "$T/mnt/d/disk.raw")" "$want" "stream through the mount"
    assert_eq "$(sha "$T/mnt/vmw/disk.raw")" "$(vhash vmw.vmdk)" "GD-at-end stream through the mount"
    vumount "$T/mnt"
    # vdiskfs opens sources (and scans partitions, starting the readahead
    # workers) before it daemonises: reads in the forked daemon must not
    # wait on workers that stayed in the parent. This hung 1 run in 8.
    for i in 1 2 3 4 5 6 7 8 9 10; do
        vmount "$T/mnt" "$T/vmw.vmdk"
        timeout 60 sha256sum "$T/mnt/vmw/disk.raw" >/dev/null || fail "read through the mount hung (run $i)"
        vumount "$T/mnt"
    done
fi
echo ok
