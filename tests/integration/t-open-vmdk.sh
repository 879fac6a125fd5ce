#!/bin/bash
# VMware's own VMDK tool (open-vmdk vmdk-convert, tests/oracles) as the oracle:
# - every VMDK we write (vdisk convert streamOptimized and monolithicSparse,
#   cp into a mount's export/) reads back through vmdk-convert to the input's
#   bytes, on a disk with partitions, ext4 files, holes and an odd size;
# - vmdk-convert -i --detailed reports the header VMware expects;
# - every VMDK vmdk-convert writes mounts and reads bit-exact (against the raw
#   input and qemu-img), partitions included;
# - our stream and vmdk-convert's, for the same disk, differ only in the
#   fields vmdk_compare.py allows (each explained in docs/vmdk.md);
# - 4Kn: vmdk-convert -s 4096 disks are read as 4096-byte-sector disks (a GPT
#   made with 4 KiB sectors gives its partitions), and -o sector_size=4096
#   writes the DDB keys vmdk-convert writes.
. "$VD_TEST_LIB"
need_fuse
need qemu-img python3 mkfs.ext4 sfdisk make cc
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ORACLES=$("$HERE/../oracles/build-open-vmdk.sh" "${VD_BUILD_DIR:-$T}/oracles") ||
    fail "building open-vmdk (tests/oracles/build-open-vmdk.sh)"
# vmdk-convert loops forever on a sparse disk whose capacity is not a whole
# grain when its last grain holds data (SparseNextData); the disks below keep
# that grain zero, and the timeout turns any such hang into a failure.
vc() { timeout 120 "$ORACLES/vmdk-convert" "$@"; }

# Disk: MBR (a GPT backup header would fill the last grain), ext4 with files
# in p1, random data with a hole in p2, unpartitioned holes; 40 MiB + 64 KiB
# + 3 sectors, so the last grain is partial (and zero).
SRC=$T/disk.raw
SIZE=$(((40 << 20) + 65536 + 1536))
truncate -s "$SIZE" "$SRC"
printf 'label: dos\nstart=2048, size=40960, type=83\nstart=45056, size=20480, type=83\n' |
    sfdisk -q "$SRC" || fail "sfdisk"
mkdir -p "$T/root/data"
cp -r /etc/apt /etc/default "$T/root/" 2>/dev/null || true
seq 1 300000 > "$T/root/data/numbers.txt"
head -c 2000000 /dev/urandom > "$T/root/data/blob"
truncate -s 20M "$T/p1.img"
mkfs.ext4 -q -F -d "$T/root" "$T/p1.img"
dd if="$T/p1.img" of="$SRC" bs=1M seek=1 conv=notrunc,sparse status=none
head -c $((6 << 20)) /dev/urandom | dd of="$SRC" bs=512 seek=45056 conv=notrunc status=none
dd if=/dev/zero of="$SRC" bs=512 seek=$((45056 + 4096)) count=2048 conv=notrunc status=none
WANT=$(sha "$SRC")

# back VMDK NAME: vmdk-convert decodes VMDK to the input's bytes.
back() {
    rm -f "$T/back.raw"
    vc "$1" "$T/back.raw" >/dev/null || fail "vmdk-convert cannot read $2"
    assert_eq "$(stat -c %s "$T/back.raw")" "$SIZE" "size of $2 through vmdk-convert"
    assert_eq "$(sha "$T/back.raw")" "$WANT" "$2 through vmdk-convert"
}
# detailed VMDK NAME PYTHON-ASSERTIONS: vmdk-convert -i --detailed as JSON h
# (sparseHeader), d (descriptorFile), j (all).
detailed() {
    vc -i --detailed "$1" > "$T/info.json" || fail "vmdk-convert -i --detailed $2"
    python3 - "$T/info.json" "$SIZE" "$3" <<'EOF' || fail "vmdk-convert -i --detailed $2: $(cat "$T/info.json")"
import json, sys
j = json.load(open(sys.argv[1])); size = int(sys.argv[2])
h, d = j["sparseHeader"], j["descriptorFile"]
assert j["capacity"] == size, j["capacity"]
assert h["grainSize"] == 128 and h["numGTEsPerGT"] == 512, h
assert h["flagsDecoded"]["validNewlineDetector"] and h["grainsOrdered"], h
assert h["descriptorOffset"] == 1 and h["descriptorSize"] == 20, h
assert h["uncleanShutdown"] == 0, h
assert d["version"] == "1" and d["encoding"] == "UTF-8" and d["parentCID"] == "ffffffff", d
assert d["ddb.adapterType"] == "lsilogic" and d["ddb.virtualHWVersion"] == "4", d
assert d["ddb.toolsInstallType"] == "4" and d["ddb.toolsVersion"] == "2147483647", d
assert (d["ddb.geometry.heads"], d["ddb.geometry.sectors"]) == ("255", "63"), d
assert d["ddb.geometry.cylinders"] == str(max(1, -(-size // 512 // (255 * 63)))), d
exec(sys.argv[3])
EOF
}

# 1. vdisk convert, streamOptimized.
"$VDISK" convert -q "$SRC" "$T/ours.vmdk" || fail "vdisk convert to streamOptimized"
back "$T/ours.vmdk" ours.vmdk
detailed "$T/ours.vmdk" ours.vmdk '
assert h["version"] == 3 and h["flags"] == 0x30001 and h["hasFooter"], h
assert h["flagsDecoded"]["compressed"] and h["flagsDecoded"]["embeddedLBA"], h
assert h["compressAlgorithmName"] == "deflate" and h["overHead"] == 128, h
assert d["createType"] == "streamOptimized", d'
tail -c 1536 "$T/ours.vmdk" | python3 -c '
import struct, sys
b = sys.stdin.buffer.read()
assert struct.unpack_from("<QII", b, 0) == (1, 0, 3), "footer marker"
assert b[512:516] == b"KDMV", "footer"
assert b[1024:] == bytes(512), "end-of-stream marker"' || fail "ours.vmdk: footer marker, footer, EOS"
echo "ok: streamOptimized"

# 2. monolithicSparse.
"$VDISK" convert -q -o vmdk_type=monolithicSparse "$SRC" "$T/sparse.vmdk" ||
    fail "vdisk convert to monolithicSparse"
back "$T/sparse.vmdk" sparse.vmdk
detailed "$T/sparse.vmdk" sparse.vmdk '
assert h["version"] == 1 and h["flags"] == 3 and h["flagsDecoded"]["useRedundant"], h
assert not h["flagsDecoded"]["compressed"] and h["rgdOffset"] and h["gdOffset"], h
assert not h["hasFooter"] and d["createType"] == "monolithicSparse", d'
echo "ok: monolithicSparse"

# 3. cp into a mount's export/.
mkdir -p "$T/out"
vmount "$T/m" -o export="$T/out" "$SRC"
cp "$SRC" "$T/m/export/x.vmdk" || fail "cp into export/x.vmdk"
vumount "$T/m"
back "$T/out/x.vmdk" "export/x.vmdk"
detailed "$T/out/x.vmdk" export/x.vmdk 'assert h["version"] == 3 and h["hasFooter"], h'
echo "ok: export/x.vmdk"

# 4. vmdk-convert's own VMDKs, at two levels, mount bit-exact.
for c in 1 9; do
    vc -c $c -n 2 "$SRC" "$T/vmw$c.vmdk" >/dev/null || fail "vmdk-convert -c $c"
    vmount "$T/vm" "$T/vmw$c.vmdk"
    assert_eq "$(sha "$T/vm/vmw$c/disk.raw")" "$WANT" "vmdk-convert -c $c disk.raw through the mount"
    cmp "$T/vm/vmw$c/disk-p1.raw" "$T/p1.img" || fail "vmdk-convert -c $c disk-p1.raw differs from the ext4"
    vumount "$T/vm"
    assert_eq "$("$VDISK" hash "$T/vmw$c.vmdk" | cut -d' ' -f1)" "$WANT" "vdisk hash vmw$c.vmdk"
    assert_eq "$(qemu_raw_sha "$T/vmw$c.vmdk" vmdk)" "$WANT" "qemu-img of vmw$c.vmdk"
done
echo "ok: vmdk-convert's VMDKs"

# 5. Field by field against vmdk-convert's stream of the same disk.
python3 "$HERE/vmdk_compare.py" "$T/ours.vmdk" "$T/vmw9.vmdk" ||
    fail "ours.vmdk differs from vmdk-convert's beyond the allowed differences (docs/vmdk.md)"
echo "ok: field-by-field comparison"

# 6. 4Kn: a GPT made with 4096-byte sectors (loop device with -b 4096).
G=$T/g4k.raw
truncate -s 32M "$G"
if L=$(losetup -b 4096 -f --show "$G" 2>/dev/null); then
    printf 'label: gpt\nstart=256, size=4096, type=L\nstart=4352, size=2048, type=L\n' |
        sfdisk -q "$L" 2>/dev/null
    rc=$?
    losetup -d "$L"
    [ $rc = 0 ] || fail "sfdisk on a 4096-byte-sector loop device"
    truncate -s 16M "$T/g1.img"
    mkfs.ext4 -q -F -b 4096 -d "$T/root" "$T/g1.img"
    dd if="$T/g1.img" of="$G" bs=1M seek=1 conv=notrunc,sparse status=none
    GW=$(sha "$G")
    # k4 NAME VMDK: a 4Kn VMDK reads as one, with its GPT partitions.
    k4() {
        "$VDISK" info --json "$2" | python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]
assert d.get("logical_sector_size") == 4096, d.get("logical_sector_size")
p = d["partition_table"]["partitions"]
assert d["partition_table"]["scheme"] == "gpt", d["partition_table"]
assert [(x["offset"], x["size"]) for x in p] == [(1 << 20, 16 << 20), (17 << 20, 8 << 20)], p' ||
            fail "$1: vdisk info does not report a 4Kn disk with its two GPT partitions"
        vmount "$T/k" "$2"
        local dir
        dir=$T/k/$(basename "${2%.vmdk}")
        assert_eq "$(sha "$dir/disk.raw")" "$GW" "$1 disk.raw"
        cmp "$dir/disk-p1.raw" "$T/g1.img" || fail "$1 disk-p1.raw differs from the ext4"
        grep -q '"logical_sector_size": 4096' "$dir/info.json" || fail "$1 info.json: no logical_sector_size"
        vumount "$T/k"
    }
    vc -s 4096 "$G" "$T/vmw4k.vmdk" >/dev/null || fail "vmdk-convert -s 4096"
    k4 "vmdk-convert -s 4096" "$T/vmw4k.vmdk"
    "$VDISK" convert -q -o sector_size=4096 "$G" "$T/ours4k.vmdk" ||
        fail "vdisk convert -o sector_size=4096"
    vc --get-descriptor "$T/ours4k.vmdk" > "$T/desc4k"
    grep -qx 'ddb.logicalSectorSize = "4096"' "$T/desc4k" &&
        grep -qx 'ddb.physicalSectorSize = "4096"' "$T/desc4k" ||
        fail "ours4k.vmdk: no 4096 sector keys in its descriptor: $(cat "$T/desc4k")"
    rm -f "$T/back.raw"
    vc "$T/ours4k.vmdk" "$T/back.raw" >/dev/null || fail "vmdk-convert cannot read ours4k.vmdk"
    assert_eq "$(sha "$T/back.raw")" "$GW" "ours4k.vmdk through vmdk-convert"
    k4 "vdisk convert -o sector_size=4096" "$T/ours4k.vmdk"
    # The same option through a mount's export/.
    mkdir -p "$T/out4k"
    vmount "$T/m4" -o export="$T/out4k",sector_size=4096 "$G"
    cp "$G" "$T/m4/export/y4k.vmdk" || fail "cp into export/y4k.vmdk with sector_size=4096"
    vumount "$T/m4"
    vc --get-descriptor "$T/out4k/y4k.vmdk" | grep -qx 'ddb.logicalSectorSize = "4096"' ||
        fail "export/y4k.vmdk: no ddb.logicalSectorSize"
    k4 "export/ with sector_size=4096" "$T/out4k/y4k.vmdk"
    echo "ok: 4Kn"
else
    echo "note: no loop device with 4096-byte sectors here; 4Kn part not run"
fi
echo "PASS"
