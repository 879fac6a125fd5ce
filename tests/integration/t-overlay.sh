#!/bin/bash
# -o overlay=FILE: a streamOptimized VMDK made by qemu-img (not writable in
# place) is edited through the mount - raw writes at odd offsets into
# disk.raw, and an ext4 in disk-p1.raw loop-mounted read-write - while the
# VMDK itself never changes. The edits survive an unmount; the expected bytes
# come from doing the same raw writes with dd on qemu-img's own raw copy, and
# the guest files are read back by debugfs (e2fsprogs) and checked by e2fsck
# on a copy taken out of the mount. Another source, a second mount of the
# same FILE and a corrupt FILE are refused with their messages.
. "$VD_TEST_LIB"
need_fuse
need qemu-img sfdisk mkfs.ext4 debugfs e2fsck losetup

RAW=$T/d.raw
truncate -s 64M "$RAW"
echo 'label: dos
start=2048, type=83' | sfdisk -q "$RAW"
mkdir -p "$T/tree/etc"
echo "original" > "$T/tree/etc/motd"
truncate -s 63M "$T/p.img"
mkfs.ext4 -q -F -d "$T/tree" "$T/p.img"
dd if="$T/p.img" of="$RAW" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$RAW" "$T/s.vmdk"
SRC_SHA=$(sha "$T/s.vmdk")
OVL=$T/edits.ovl
M=$T/mnt
mkdir -p "$M"

# rw on a streamOptimized VMDK is refused, pointing to overlay=.
out=$("$VDISKFS" -o rw "$T/s.vmdk" "$M" 2>&1) && fail "rw on streamOptimized accepted"
echo "$out" | grep -q "keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" || fail "rw message: $out"

# 1. Raw writes at odd offsets, mirrored with dd on qemu-img's raw copy.
qemu-img convert -f vmdk -O raw "$T/s.vmdk" "$T/want.raw"
head -c 300000 /dev/urandom > "$T/blob"
vmount "$M" -o overlay="$OVL" "$T/s.vmdk"
[ -w "$M/s/disk.raw" ] || fail "disk.raw is not writable with overlay="
for off in 12345 $((40 << 20)) $(((64 << 20) - 300000)); do
    dd if="$T/blob" of="$M/s/disk.raw" bs=100000 seek="$off" oflag=seek_bytes conv=notrunc \
        status=none || fail "dd into disk.raw at $off"
    dd if="$T/blob" of="$T/want.raw" bs=100000 seek="$off" oflag=seek_bytes conv=notrunc \
        status=none
done
assert_eq "$(sha "$M/s/disk.raw")" "$(sha "$T/want.raw")" "view after raw writes"
vumount "$M"
assert_eq "$(sha "$T/s.vmdk")" "$SRC_SHA" "source after raw writes"
# The CLI reads the same edits without FUSE: hash, and convert checked by qemu-img.
assert_eq "$("$VDISK" hash --overlay "$OVL" "$T/s.vmdk" | cut -d' ' -f1)" "$(sha "$T/want.raw")" \
    "vdisk hash --overlay"
"$VDISK" convert -q --overlay "$OVL" "$T/s.vmdk" "$T/edited.vhdx" || fail "vdisk convert --overlay"
assert_eq "$(qemu_raw_sha "$T/edited.vhdx" vhdx)" "$(sha "$T/want.raw")" "convert --overlay via qemu-img"
out=$("$VDISK" hash --overlay "$T/none.ovl" "$T/s.vmdk" 2>&1) && fail "a missing overlay accepted"
assert_eq "$out" "vdisk: $T/none.ovl: no such overlay file" "missing overlay message"
[ ! -e "$T/none.ovl" ] || fail "vdisk created an overlay file"

# 2. ext4 edits through a read-write loop mount of the partition file.
# Start from the guest as built: a fresh overlay.
rm -f "$OVL"
vmount "$M" -o overlay="$OVL" "$T/s.vmdk"
mkdir -p "$T/guest"
mount -o loop "$M/s/disk-p1.raw" "$T/guest" || fail "rw loop mount of disk-p1.raw"
echo "edited by vdiskfs" > "$T/guest/etc/motd"
head -c 2000000 /dev/urandom > "$T/guest/etc/big.bin"
cp "$T/guest/etc/big.bin" "$T/big.want"
umount "$T/guest"
vumount "$M"
assert_eq "$(sha "$T/s.vmdk")" "$SRC_SHA" "source after guest edits"

# Remount: the edits are there, read by independent tools from a copy.
vmount "$M" -o overlay="$OVL" "$T/s.vmdk"
cp "$M/s/disk-p1.raw" "$T/p1.copy"
vumount "$M"
assert_eq "$(debugfs -R 'cat /etc/motd' "$T/p1.copy" 2>/dev/null)" "edited by vdiskfs" "motd via debugfs"
debugfs -R 'dump /etc/big.bin '"$T/big.got" "$T/p1.copy" >/dev/null 2>&1
assert_eq "$(sha "$T/big.got")" "$(sha "$T/big.want")" "big.bin via debugfs"
e2fsck -fn "$T/p1.copy" >/dev/null 2>&1 || fail "e2fsck finds the edited ext4 inconsistent"

# Without the overlay the source is as it was.
vmount "$M" "$T/s.vmdk"
assert_eq "$(sha "$M/s/disk.raw")" "$(sha "$RAW")" "source view without the overlay"
vumount "$M"

# Refusals.
head -c $((8 << 20)) /dev/urandom > "$T/other.raw"
out=$("$VDISKFS" -o overlay="$OVL" "$T/other.raw" "$M" 2>&1) && fail "another source accepted"
echo "$out" | grep -q "overlay: $OVL: holds no disk like other/disk (8388608 bytes, fingerprint" ||
    fail "another-source message: $out"
vmount "$M" -o overlay="$OVL" "$T/s.vmdk"
out=$("$VDISKFS" -o overlay="$OVL" "$T/s.vmdk" "$T/guest" 2>&1) && fail "second mount accepted"
assert_eq "$out" "vdiskfs: overlay: $OVL: in use by another mount or process" "busy message"
vumount "$M"
cp "$OVL" "$T/bad.ovl"
printf 'x' | dd of="$T/bad.ovl" bs=1 seek=30 conv=notrunc status=none
out=$("$VDISKFS" -o overlay="$T/bad.ovl" "$T/s.vmdk" "$M" 2>&1) && fail "corrupt overlay accepted"
assert_eq "$out" "vdiskfs: overlay: $T/bad.ovl: header: checksum mismatch (corrupt overlay)" \
    "corrupt message"
assert_eq "$(sha "$T/s.vmdk")" "$SRC_SHA" "source at the end"
echo "overlay edits persist; the source never changed"
