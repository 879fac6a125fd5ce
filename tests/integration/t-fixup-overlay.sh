#!/bin/bash
# The migration the tools exist for, end to end and without touching the
# vendor's image: a streamOptimized VMDK (made by qemu-img, so not writable
# in place) is mounted with an overlay and an export folder, `vdisk fixup`
# edits the guest's ext4 inside the view (libext2fs, no kernel mount), and
# `cp` of the disk into export/ produces the fixed VHD. qemu-img converts
# that VHD back to raw, and debugfs and e2fsck (e2fsprogs) read the guest
# from it: fstab by UUID, the backup beside it, a clean filesystem. The
# VMDK's sha256 never changes.
. "$VD_TEST_LIB"
need_fuse
need qemu-img sfdisk mkfs.ext4 mkswap debugfs e2fsck

ROOT_UUID=11111111-2222-4333-8444-555555555555
SWAP_UUID=66666666-7777-4888-9999-aaaaaaaaaaaa
G=$T/tree
mkdir -p "$G/etc/default" "$G/boot/grub" "$G/etc/network"
cat > "$G/etc/fstab" <<'F'
/dev/sda1       /               ext4    errors=remount-ro 0       1
/dev/sda2       none            swap    sw              0       0
F
printf 'GRUB_DEFAULT=saved\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=""\n' > "$G/etc/default/grub"
cat > "$G/etc/network/interfaces" <<'F'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 10.0.0.5
    netmask 255.255.255.0
    gateway 10.0.0.1
F
truncate -s 48M "$T/disk.raw"
printf 'label: dos\nstart=2048, size=65536, type=83\nstart=67584, size=16384, type=82\n' |
    sfdisk -q "$T/disk.raw"
truncate -s 32M "$T/p1.img"
mkfs.ext4 -q -F -U "$ROOT_UUID" -d "$G" "$T/p1.img"
truncate -s 8M "$T/p2.img"
mkswap -q -U "$SWAP_UUID" "$T/p2.img" >/dev/null
dd if="$T/p1.img" of="$T/disk.raw" bs=512 seek=2048 conv=notrunc status=none
dd if="$T/p2.img" of="$T/disk.raw" bs=512 seek=67584 conv=notrunc status=none
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$T/disk.raw" "$T/vendor.vmdk"
SRC_SHA=$(sha "$T/vendor.vmdk")

M=$T/mnt
OUT=$T/out
mkdir -p "$OUT"
vmount "$M" -o overlay="$T/edits.ovl",export="$OUT" "$T/vendor.vmdk"
"$VDISK" fixup "$M/vendor" > "$T/fixup.out" 2>&1 || fail "vdisk fixup on the overlay view: $(cat "$T/fixup.out")"
cp "$M/vendor/disk.raw" "$M/export/fixed.vhd" || fail "cp into export/"
vumount "$M"
assert_eq "$(sha "$T/vendor.vmdk")" "$SRC_SHA" "the vendor VMDK"

# Read the result back with other tools only.
qemu-img convert -f vpc -O raw "$OUT/fixed.vhd" "$T/fixed.raw"
dd if="$T/fixed.raw" of="$T/fixed-p1.img" bs=512 skip=2048 count=65536 status=none
fstab=$(debugfs -R 'cat /etc/fstab' "$T/fixed-p1.img" 2>/dev/null)
echo "$fstab" | grep -Eq "^UUID=$ROOT_UUID[[:space:]]+/[[:space:]]+ext4" || fail "root not by UUID: $fstab"
echo "$fstab" | grep -Eq "^UUID=$SWAP_UUID[[:space:]]+none[[:space:]]+swap" || fail "swap not by UUID: $fstab"
assert_eq "$(debugfs -R 'cat /etc/fstab.vdisk.orig' "$T/fixed-p1.img" 2>/dev/null)" "$(cat "$G/etc/fstab")" \
    "fstab backup"
debugfs -R 'cat /etc/network/interfaces' "$T/fixed-p1.img" 2>/dev/null | grep -q "iface eth0 inet dhcp" ||
    fail "eth0 not on DHCP"
debugfs -R 'cat /etc/default/grub' "$T/fixed-p1.img" 2>/dev/null | grep -q "^GRUB_DEFAULT=0" ||
    fail "GRUB_DEFAULT not 0"
e2fsck -fn "$T/fixed-p1.img" >/dev/null 2>&1 || fail "e2fsck finds the fixed guest inconsistent"
# The overlay alone can give the same disk again, without FUSE.
assert_eq "$("$VDISK" hash --overlay "$T/edits.ovl" "$T/vendor.vmdk" | cut -d' ' -f1)" \
    "$(sha "$T/fixed.raw")" "vdisk hash --overlay vs the exported VHD"
echo "vendor VMDK fixed through an overlay and exported; the VMDK never changed"
