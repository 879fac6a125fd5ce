#!/bin/bash
# Writes in place through `vdiskfs -o rw` into fixed and dynamic VHDs made by
# qemu-img: into allocated blocks, unallocated ones (a new block is appended),
# unaligned and across block boundaries, from several dd processes at once.
# After unmounting, qemu-img and vhdimount must read exactly what a raw copy
# given the same writes holds, and `vdisk check` must be clean.
# Differencing, saved-state and damaged disks are refused for writing.
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || fail "vdisk CLI not built ($VDISK): build the tree first"
need_fuse; need qemu-img python3
CRAFT="$(dirname "$0")/vhd_craft.py"

RAW=$T/disk.raw
truncate -s 20M "$RAW"
python3 - "$RAW" <<'EOF'
import random, sys
r = random.Random(9)
with open(sys.argv[1], 'r+b') as f:
    for off in (0, 0x400000, 0x400000 * 3 + 777 * 512):
        f.seek(off)
        f.write(r.randbytes(0x20000))
EOF
mkdir -p "$T/img"
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$RAW" "$T/img/dyn.vhd"
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$RAW" "$T/img/fix.vhd"
head -c $((3 * 1024 * 1024)) /dev/urandom > "$T/pattern"

# apply WHERE: the same writes into a file (a raw copy, or a mounted view).
apply() {
    local f=$1
    # allocated block 0, unaligned
    dd if="$T/pattern" of="$f" bs=1 count=1000 seek=12345 conv=notrunc status=none
    # unallocated blocks 2-3 (qemu's 2 MiB blocks), crossing the boundary
    dd if="$T/pattern" of="$f" bs=4096 skip=5 count=300 seek=$(((4 * 1024 * 1024 - 600 * 1024) / 4096)) conv=notrunc status=none &
    # unallocated last block, concurrently
    dd if="$T/pattern" of="$f" bs=512 skip=9 count=700 seek=$((18 * 2048 + 3)) conv=notrunc status=none &
    # zeros into an unallocated block must not allocate anything
    dd if=/dev/zero of="$f" bs=64K count=4 seek=$((16 * 16)) conv=notrunc status=none &
    wait
}
cp "$RAW" "$T/want.raw"
apply "$T/want.raw"
WANT=$(sha "$T/want.raw")

M=$T/mnt
vmount "$M" -o rw "$T/img/dyn.vhd" "$T/img/fix.vhd"
apply "$M/dyn/disk.raw"
apply "$M/fix/disk.raw"
assert_eq "$(sha "$M/dyn/disk.raw")" "$WANT" "dynamic, read back through the mount"
vumount "$M"

for n in dyn fix; do
    assert_eq "$(qemu_raw_sha "$T/img/$n.vhd" vpc)" "$WANT" "$n: qemu-img after writes"
    "$VDISK" check "$T/img/$n.vhd" >/dev/null || fail "$n: vdisk check after writes"
    assert_eq "$("$VDISK" hash -q "$T/img/$n.vhd" | cut -d' ' -f1)" "$WANT" "$n: vdisk"
done
if command -v vhdimount >/dev/null; then
    mkdir -p "$T/v"
    vhdimount "$T/img/dyn.vhd" "$T/v" >/dev/null
    MOUNTS+=("$T/v")
    assert_eq "$(sha "$T/v/vhdi1")" "$WANT" "vhdimount after writes"
    fusermount3 -u "$T/v"
fi
ALLOC=$("$VDISK" info --json "$T/img/dyn.vhd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["disks"][0]["allocated_size"])')
# qemu's blocks 0, 2, 6 plus new blocks 1, 9 (the zero write allocates none)
assert_eq "$ALLOC" $((5 * (2097152 + 512))) "allocated blocks after writes"

# Refused for writing: a differencing child, a saved-state disk, a damaged one.
python3 "$CRAFT" child "$T/img/kid.vhd" "$T/img/dyn.vhd" "$T/want.raw" "$T/kid.expect" --loc 'W2ru=dyn.vhd'
python3 "$CRAFT" dynamic "$T/img/saved.vhd" "$RAW" --saved-state
python3 "$CRAFT" dynamic "$T/img/bad.vhd" "$RAW"
python3 "$CRAFT" poke "$T/img/bad.vhd" 1400 01
mkdir -p "$T/m2"
for n in kid saved bad; do
    out=$("$VDISKFS" -o rw "$T/img/$n.vhd" "$T/m2" 2>&1 && echo MOUNTED) || true
    mountpoint -q "$T/m2" 2>/dev/null && { fusermount3 -u "$T/m2"; fail "$n mounted rw"; }
    echo "$n: $out"
done | tee "$T/refusals"
grep -q "kid.vhd: differencing disks cannot be written in place; mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "$T/refusals" || fail "diff refusal"
grep -q "saved.vhd: the disk is in a saved state (its VM is suspended); mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "$T/refusals" || fail "saved refusal"
grep -q "bad.vhd: the disk is damaged (see vdisk check); mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "$T/refusals" || fail "damaged refusal"
echo "ok: VHD writes"
