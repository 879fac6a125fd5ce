#!/bin/bash
# VHDs written by qemu-img (fixed, dynamic, force_size, CHS-rounded) and by
# the spec-following test writer vhd_craft.py (block sizes other than 2 MiB,
# a header at an odd offset, 511-byte footers, the saved-state flag) must hash
# like the independent readers: qemu-img convert -f vpc -O raw, and vhdimount
# (libvhdi) where it can read the file.
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || fail "vdisk CLI not built ($VDISK): build the tree first"
need qemu-img python3 sfdisk
CRAFT="$(dirname "$0")/vhd_craft.py"

vdisk_sha() { "$VDISK" hash --sha256 -q "$1" | cut -d' ' -f1; }

have_vhdimount=0
if command -v vhdimount >/dev/null && [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    have_vhdimount=1
fi
# vhdi_sha IMAGE: libvhdi's digest of the content, or "" when unavailable.
vhdi_sha() {
    [ $have_vhdimount = 1 ] || { echo ""; return; }
    local m="$T/vhdi.$RANDOM"
    mkdir -p "$m"
    vhdimount "$1" "$m" >/dev/null 2>&1 || { echo "cannot"; return; }
    MOUNTS+=("$m")
    sha256sum "$m/vhdi1" 2>/dev/null | cut -d' ' -f1 | grep . || echo "unreadable"
    fusermount3 -u "$m" 2>/dev/null || umount "$m"
}

# A 12 MiB + 1.5 KiB disk with an MBR, data in several blocks and a hole.
RAW=$T/disk.raw
truncate -s $((12 * 1024 * 1024 + 1536)) "$RAW"
printf 'label: dos\nstart=2048, size=8192, type=83\nstart=10240, type=7\n' |
    sfdisk -q "$RAW" >/dev/null
python3 - "$RAW" <<'EOF'
import random, sys
r = random.Random(7)
with open(sys.argv[1], 'r+b') as f:
    for off in (0x100000, 0x1FF000, 0x5000000 % (12 << 20), 0xA00000, 0xBFFE00):
        f.seek(off)
        f.write(r.randbytes(0x3000))
EOF
truncate -s $((12 * 1024 * 1024 + 1536)) "$RAW"
RAW_SHA=$(sha "$RAW")

n=0
# check_img IMAGE EXPECTED_SHA: vdisk must give EXPECTED_SHA, and so must
# qemu-img and vhdimount unless told to skip them (QEMU=0 / VHDI=0).
check_img() {
    local img=$1 want=$2 got
    got=$(vdisk_sha "$img")
    assert_eq "$got" "$want" "vdisk hash of $(basename "$img")"
    if [ "${QEMU:-1}" = 1 ]; then
        assert_eq "$(qemu_raw_sha "$img" vpc)" "$want" "qemu-img on $(basename "$img")"
    fi
    if [ "${VHDI:-1}" = 1 ]; then
        local v
        v=$(vhdi_sha "$img")
        [ -z "$v" ] || assert_eq "$v" "$want" "vhdimount on $(basename "$img")"
    fi
    n=$((n + 1))
}

# --- qemu-img made ---
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$RAW" "$T/q-fixed.vhd"
check_img "$T/q-fixed.vhd" "$RAW_SHA"
[ "$("$VDISK" info --json "$T/q-fixed.vhd" | python3 -c 'import json,sys; d=json.load(sys.stdin)["disks"][0]; print(d["subformat"], d["virtual_size"])')" = "fixed 12584448" ] ||
    fail "fixed VHD not 1 MiB aligned: wrong info"
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$RAW" "$T/q-dyn.vhd"
check_img "$T/q-dyn.vhd" "$RAW_SHA"
# Without force_size qemu rounds the size up to CHS geometry (creator "qemu").
qemu-img convert -f raw -O vpc -o subformat=dynamic "$RAW" "$T/q-chs.vhd"
check_img "$T/q-chs.vhd" "$(qemu_raw_sha "$T/q-chs.vhd" vpc)"
qemu-img convert -f raw -O vpc -o subformat=fixed "$RAW" "$T/q-chsfixed.vhd"
check_img "$T/q-chsfixed.vhd" "$(qemu_raw_sha "$T/q-chsfixed.vhd" vpc)"

# --- spec writer: block sizes, odd header offset, creators qemu trusts ---
for bs in 65536 524288 4194304; do
    python3 "$CRAFT" dynamic "$T/c-bs$bs.vhd" "$RAW" --block-size $bs
    check_img "$T/c-bs$bs.vhd" "$RAW_SHA"
done
# 512-byte blocks: the bitmap (1 bit) is padded to a 512-byte sector by the
# spec; qemu computes a bitmap size of 0 for blocks under 4 KiB, so it is not
# an oracle here; libvhdi fails with an I/O error.
python3 "$CRAFT" dynamic "$T/c-bs512.vhd" "$RAW" --block-size 512
QEMU=0 VHDI=0 check_img "$T/c-bs512.vhd" "$RAW_SHA"
python3 "$CRAFT" dynamic "$T/c-odd.vhd" "$RAW" --data-offset 0x2a3
check_img "$T/c-odd.vhd" "$RAW_SHA"
# Saved-state flag: still readable, reported in info.
python3 "$CRAFT" dynamic "$T/c-saved.vhd" "$RAW" --saved-state
check_img "$T/c-saved.vhd" "$RAW_SHA"
"$VDISK" info --json "$T/c-saved.vhd" | grep -q '"saved_state": true' || fail "saved_state not in info"
# 511-byte footers (writers before Virtual PC 2004): qemu and libvhdi cannot
# read the fixed one, so only the raw input is the oracle.
python3 "$CRAFT" fixed "$T/c-fixed511.vhd" "$RAW" --footer511
QEMU=0 VHDI=0 check_img "$T/c-fixed511.vhd" "$RAW_SHA"
python3 "$CRAFT" dynamic "$T/c-dyn511.vhd" "$RAW" --footer511
QEMU=0 VHDI=0 check_img "$T/c-dyn511.vhd" "$RAW_SHA"
# A fixed disk from the writer, creator "vbox": CHS size differs from
# current_size; vdisk uses current_size (docs/vhd.md), qemu the CHS size.
python3 "$CRAFT" fixed "$T/c-vbox.vhd" "$RAW" --creator vbox
QEMU=0 check_img "$T/c-vbox.vhd" "$RAW_SHA"

# --- probe: a fixed VHD is found from its footer (qemu probes it as raw) ---
"$VDISK" info --json "$T/q-fixed.vhd" | grep -q '"format": "vhd"' || fail "fixed VHD not probed"

# --- a real partitioned disk through vdisk check ---
"$VDISK" check "$T/q-dyn.vhd" >"$T/check.out" || fail "check of q-dyn.vhd: $(cat "$T/check.out")"

echo "ok: $n images agree with the oracles"
