#!/bin/bash
# 4Kn VHDX (issue 13): `vdisk convert -o sector_size=4096` and the mount's
# export/ write LogicalSectorSize 4096 ([MS-VHDX] 2.6.2.4); `vdisk info` and
# info.json report it; the partitions of a GPT laid out in 4096-byte sectors
# (sfdisk on a 4096-byte loop device) come out of the mount at the right
# offsets; data past the first 512-byte-sector chunk (4 GiB at 1 MiB blocks,
# where the BAT's sector bitmap entries sit at another place for 4096-byte
# sectors) reads back bit-exact, through our reader and through vhdimount
# (qemu-img cannot open a 4Kn VHDX at all). sector_size=4096 for VHD is
# refused.
. "$VD_TEST_LIB"
need python3 sfdisk losetup
[ "$(id -u)" -eq 0 ] || skip "a 4096-byte loop device for sfdisk needs root"

MIB=1048576
RAW=$T/k.raw
truncate -s $((4160 * MIB)) "$RAW" # 4 GiB + 64 MiB
L=$(losetup -f --show -b 4096 "$RAW") || skip "losetup -b 4096 failed here"
printf 'label: gpt\nstart=256, size=4096, type=L\nstart=8192, type=L\n' | sfdisk -q "$L" 2> /dev/null ||
    true # "Re-reading the partition table failed" on a loop device without udev
losetup -d "$L"
python3 - "$RAW" <<'PY' || fail "sfdisk did not write a 4096-byte-sector GPT"
import sys
with open(sys.argv[1], "rb") as f:
    f.seek(4096)
    assert f.read(8) == b"EFI PART"
PY
# data: all of p1 (1..17 MiB), 8 MiB at 4 GiB + 16 MiB (past the 4 GiB chunk), the last MiB
head -c $((16 * MIB)) /dev/urandom | dd of="$RAW" bs=1M seek=1 conv=notrunc status=none
head -c $((8 * MIB)) /dev/urandom | dd of="$RAW" bs=1M seek=4112 conv=notrunc status=none
head -c $((1 * MIB)) /dev/urandom | dd of="$RAW" bs=1M seek=4159 conv=notrunc status=none
# vdisk hash of the raw file (raw driver): sha256sum of 4 GiB of zeros is
# several times slower, and the vhdimount ranges below are the independent read.
WANT=$("$VDISK" hash -q "$RAW" | cut -d' ' -f1)

# lss FILE: LogicalSectorSize from the metadata region, read independently:
# region table at 192 KiB -> metadata region -> item 8141BF1D-... -> u32.
lss() {
    python3 - "$1" <<'PY'
import struct, sys, uuid
b = open(sys.argv[1], "rb").read(4 << 20)
rt = b[196608:196608 + 65536]
assert rt[:4] == b"regi"
meta = None
for i in range(struct.unpack("<I", rt[8:12])[0]):
    e = rt[16 + 32 * i:48 + 32 * i]
    if uuid.UUID(bytes_le=e[:16]) == uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E"):
        meta = struct.unpack("<Q", e[16:24])[0]
m = b[meta:meta + 65536]
for i in range(struct.unpack("<H", m[10:12])[0]):
    e = m[32 + 32 * i:64 + 32 * i]
    if uuid.UUID(bytes_le=e[:16]) == uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F"):
        off = struct.unpack("<I", e[16:20])[0]
        print(struct.unpack("<I", b[meta + off:meta + off + 4])[0])
PY
}

for type in dynamic fixed; do
    X=$T/k-$type.vhdx
    "$VDISK" convert -q -o sector_size=4096,vhdx_type=$type "$RAW" "$X" || fail "convert $type"
    assert_eq "$(lss "$X")" 4096 "$type: LogicalSectorSize in the metadata"
    "$VDISK" info "$X" | grep -q "logical sector size: 4096 bytes" || fail "$type: vdisk info"
    "$VDISK" info --json "$X" | python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]
assert d["logical_sector_size"] == 4096, d
assert d["vhdx"]["logical_sector_size"] == 4096, d["vhdx"]
parts = [(p["offset"], p["size"]) for p in d["partition_table"]["partitions"]]
assert parts[0] == (1 << 20, 16 << 20) and parts[1][0] == 32 << 20, parts
' || fail "$type: info json"
    assert_eq "$("$VDISK" hash -q "$X" | cut -d' ' -f1)" "$WANT" "$type: our reader"
done
X=$T/k-dynamic.vhdx

# vhdimount (libvhdi) as the independent reader: the data ranges and a hole.
if command -v vhdimount > /dev/null && [ -e /dev/fuse ]; then
    mkdir -p "$T/vm"
    vhdimount "$X" "$T/vm" > /dev/null
    MOUNTS+=("$T/vm")
    for r in "0 48" "4100 30" "4150 10"; do
        set -- $r
        cmp <(dd if="$T/vm/vhdi1" bs=1M skip=$1 count=$2 status=none) \
            <(dd if="$RAW" bs=1M skip=$1 count=$2 status=none) ||
            fail "vhdimount differs in MiB $1..$(($1 + $2))"
    done
    fusermount3 -u "$T/vm"
else
    echo "note: vhdimount or FUSE missing: independent read not done"
fi

# Through the mount: the partitions at 4096-byte-sector offsets, and an
# export of the disk with -o sector_size=4096 that reads back bit-exact.
need_fuse
M=$T/mnt OUT=$T/out
mkdir -p "$OUT"
vmount "$M" -o export="$OUT",sector_size=4096 "$X"
cmp "$M/k-dynamic/disk-p1.raw" <(dd if="$RAW" bs=1M skip=1 count=16 status=none) ||
    fail "disk-p1.raw is not at 1 MiB (sector 256 of 4096 bytes)"
cmp -n $((8 * MIB)) <(dd if="$M/k-dynamic/disk-p2.raw" bs=1M skip=$((4112 - 32)) count=8 status=none) \
    <(dd if="$RAW" bs=1M skip=4112 count=8 status=none) || fail "disk-p2.raw offset"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]; assert d["logical_sector_size"] == 4096' \
    "$M/k-dynamic/info.json" || fail "info.json of the mount"
cp --sparse=always "$M/k-dynamic/disk.raw" "$M/export/e.vhdx"
vumount "$M"
assert_eq "$(lss "$OUT/e.vhdx")" 4096 "export: LogicalSectorSize"
assert_eq "$("$VDISK" hash -q "$OUT/e.vhdx" | cut -d' ' -f1)" "$WANT" "export read back"

# sector_size=4096 where the format has no such field is refused.
"$VDISK" convert -q -o sector_size=4096 "$RAW" "$T/k.vhd" 2> "$T/err" && fail "4096 for VHD"
grep -q "sector_size=4096 is not supported for vhd" "$T/err" || fail "refusal: $(cat "$T/err")"

echo "4Kn VHDX behaves"
