#!/bin/bash
# Mount VHDs made by qemu-img from an MBR disk (sfdisk): the flat view and
# each partition must appear with the bytes qemu-img converts them to, for a
# dynamic and a fixed VHD (the fixed one is found from its footer), and for a
# differencing child (vhd_craft.py) over the dynamic one.
. "$VD_TEST_LIB"
need_fuse; need qemu-img sfdisk mkfs.ext4 python3
CRAFT="$(dirname "$0")/vhd_craft.py"

mkdir -p "$T/root/etc" "$T/img"
seq 1 30000 > "$T/root/etc/numbers"
RAW=$T/disk.raw
truncate -s 48M "$RAW"
printf 'label: dos\n,24M,83\n,,7\n' | sfdisk -q "$RAW"
truncate -s 24M "$T/p1.ext4"
mkfs.ext4 -q -F -d "$T/root" "$T/p1.ext4"
dd if="$T/p1.ext4" of="$RAW" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$RAW" "$T/img/dyn.vhd"
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$RAW" "$T/img/fix.vhd"
python3 "$CRAFT" child "$T/img/kid.vhd" "$T/img/dyn.vhd" "$RAW" "$T/kid.expect" \
    --loc 'W2ru=.\dyn.vhd' --loc 'W2ku=C:\VMs\dyn.vhd'

M=$T/mnt
vmount "$M" "$T/img/dyn.vhd" "$T/img/fix.vhd" "$T/img/kid.vhd"
for n in dyn fix; do
    ls "$M/$n" | sort > "$T/l"
    printf 'disk-p1.raw\ndisk-p2.raw\ndisk.raw\ninfo.json\n' > "$T/w"
    diff -u "$T/w" "$T/l" || fail "$n: layout"
    assert_eq "$(sha "$M/$n/disk.raw")" "$(qemu_raw_sha "$T/img/$n.vhd" vpc)" "$n: disk.raw"
    assert_eq "$(sha "$M/$n/disk-p1.raw")" "$(sha "$T/p1.ext4")" "$n: p1"
    assert_eq "$(stat -c %s "$M/$n/disk-p2.raw")" $((23 * 1024 * 1024)) "$n: p2 size"
done
assert_eq "$(sha "$M/kid/disk.raw")" "$(sha "$T/kid.expect")" "differencing child"
grep -q '"format": "vhd"' "$M/fix/info.json" || fail "fixed VHD not probed as vhd"

# The guest filesystem inside the dynamic VHD, through a loop mount.
mkdir -p "$T/guest"
mount -o loop,ro "$M/dyn/disk-p1.raw" "$T/guest"
MOUNTS+=("$T/guest")
cmp "$T/guest/etc/numbers" "$T/root/etc/numbers" || fail "file inside the guest"
umount "$T/guest"
echo "ok: VHD partitions mounted"
