#!/bin/bash
# vdisk fixup VIEW on an enterprise Linux layout, with nothing mounted by
# the user: an XFS root (edited through a loop mount vdisk makes and
# removes) and a separate ext4 /boot found through the root's fstab
# (edited with libext2fs), as RHEL 8/9 install it: BLS entries, grubenv's
# kernelopts, an ifcfg file for ens192. The results are read back with
# independent readers: the kernel's XFS (a loop mount of the raw disk at
# the partition's offset) and debugfs, and checked with xfs_repair -n and
# e2fsck -fn.
. "$VD_TEST_LIB"
need sfdisk mkfs.xfs mkfs.ext4 debugfs e2fsck xfs_repair losetup
need_fuse
[ "$(id -u)" -eq 0 ] || skip "loop mounts need root"
grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null || skip "this kernel has no XFS"

BOOT_UUID=2b1a7c3e-0d4f-4e5a-8b6c-7d8e9f0a1b2c
ROOT_UUID=5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f
KV=5.14.0-362.8.1.el9_3.x86_64

# /boot: BLS entry with kernel names, grubenv with kernelopts, grub.cfg
B=$T/boot
mkdir -p "$B/loader/entries" "$B/grub2"
cat > "$B/loader/entries/0c1d2e3f-$KV.conf" <<F
title Red Hat Enterprise Linux ($KV) 9.3 (Plow)
version $KV
linux /vmlinuz-$KV
initrd /initramfs-$KV.img \$tuned_initrd
options root=/dev/sda2 ro rhgb quiet
grub_class rhel
F
cat > "$B/loader/entries/0c1d2e3f-0-rescue.conf" <<'F'
title Red Hat Enterprise Linux (0-rescue) 9.3 (Plow)
linux /vmlinuz-0-rescue
options $kernelopts
F
python3 - "$B/grub2/grubenv" <<'P'
import sys
b = b"# GRUB Environment Block\nsaved_entry=0c1d2e3f-5.14.0\nkernelopts=root=/dev/sda2 ro rhgb quiet\n"
open(sys.argv[1], "wb").write(b + b"#" * (1024 - len(b)))
P
printf 'set default="${saved_entry}"\nset timeout=5\nblscfg\n' > "$B/grub2/grub.cfg"

# /: fstab by kernel names, an ifcfg for VMware's first NIC
R=$T/root
mkdir -p "$R/etc/sysconfig/network-scripts" "$R/boot" "$R/etc/default"
cat > "$R/etc/fstab" <<'F'
/dev/sda2 /     xfs  defaults 0 0
/dev/sda1 /boot ext4 defaults 1 2
F
printf 'GRUB_TIMEOUT=5\nGRUB_DEFAULT=saved\nGRUB_CMDLINE_LINUX="rhgb quiet"\nGRUB_ENABLE_BLSCFG=true\n' \
    > "$R/etc/default/grub"
cat > "$R/etc/sysconfig/network-scripts/ifcfg-ens192" <<'F'
TYPE=Ethernet
BOOTPROTO=none
NAME=ens192
DEVICE=ens192
ONBOOT=yes
IPADDR=192.168.1.50
PREFIX=24
F

truncate -s 400M "$T/vm.raw"
printf 'label: dos\nstart=2048, size=65536, type=83\nstart=67584, type=83\n' | sfdisk -q "$T/vm.raw"
truncate -s 32M "$T/p1.img"
mkfs.ext4 -q -F -U "$BOOT_UUID" -d "$B" "$T/p1.img"
dd if="$T/p1.img" of="$T/vm.raw" bs=512 seek=2048 conv=notrunc status=none
P2OFF=$((67584 * 512))
P2SIZE=$((400 * 1024 * 1024 - P2OFF))
truncate -s "$P2SIZE" "$T/p2.img"
mkfs.xfs -q -f -m uuid="$ROOT_UUID" "$T/p2.img"
mkdir -p "$T/m"
mount -o loop "$T/p2.img" "$T/m"
cp -a "$R/." "$T/m/"
umount "$T/m"
dd if="$T/p2.img" of="$T/vm.raw" bs=1M seek=$((P2OFF / 1048576)) conv=notrunc,sparse status=none 2>/dev/null ||
    dd if="$T/p2.img" of="$T/vm.raw" bs=512 seek=67584 conv=notrunc status=none
rm -f "$T/p1.img" "$T/p2.img"
before=$(sha "$T/vm.raw")

# --- a dry run on a read-only view: reports both filesystems, writes nothing
vmount "$T/ro" "$T/vm.raw"
"$VDISK" fixup --dry-run "$T/ro/vm" > "$T/dry.out" || fail "dry run: $(cat "$T/dry.out")"
grep -q "^editing $T/ro/vm/disk-p2.raw: the root filesystem (xfs; edited through a loop mount at /tmp/vdisk-fixup\." "$T/dry.out" ||
    fail "dry run root: $(head -3 "$T/dry.out")"
grep -qxF "editing $T/ro/vm/disk-p1.raw: /boot (ext4, fstab's /dev/sda1; edited with libext2fs)" "$T/dry.out" ||
    fail "dry run /boot: $(head -3 "$T/dry.out")"
grep -qF "/boot/loader/entries/0c1d2e3f-$KV.conf: would be rewritten" "$T/dry.out" ||
    fail "dry run BLS: $(cat "$T/dry.out")"
vumount "$T/ro"
assert_eq "$(sha "$T/vm.raw")" "$before" "a dry run changed the disk"
! grep -q vdisk-fixup /proc/mounts || fail "a loop mount was left: $(grep vdisk-fixup /proc/mounts)"

# --- a user other than root is told that XFS needs root (a loop mount)
if command -v setpriv > /dev/null && id nobody > /dev/null 2>&1; then
    chmod 644 "$T/vm.raw"
    chmod 755 "$T"
    vmount "$T/ro2" -o allow_other "$T/vm.raw"
    set +e
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
        "$VDISK" fixup --dry-run "$T/ro2/vm" > /dev/null 2> "$T/nobody.err"
    rc=$?
    set -e
    vumount "$T/ro2"
    assert_eq "$rc" 1 "exit status for nobody"
    assert_eq "$(cat "$T/nobody.err")" "vdisk: fixup: $T/ro2/vm: no ext2/3/4 filesystem with /etc/fstab in this view, and disk-p2.raw holds xfs, which is looked at through a kernel loop mount: run vdisk fixup as root, or mount the root yourself and use --root DIR" "message for nobody"
fi

# --- the real run on a writable view
vmount "$T/rw" -o rw "$T/vm.raw"
"$VDISK" fixup "$T/rw/vm" > "$T/run.out" || fail "fixup: $(cat "$T/run.out")"
vumount "$T/rw"
! grep -q vdisk-fixup /proc/mounts || fail "a loop mount was left: $(grep vdisk-fixup /proc/mounts)"
grep -qF "/etc/sysconfig/network-scripts/ifcfg-ens192: rewritten" "$T/run.out" ||
    fail "ifcfg not rewritten: $(cat "$T/run.out")"

# /boot, read back with debugfs (e2fsprogs) and checked with e2fsck
P1="$T/vm.raw?offset=1048576"
e2fsck -fn "$P1" > "$T/e2fsck.out" 2>&1 || fail "e2fsck on /boot: $(cat "$T/e2fsck.out")"
assert_eq "$(debugfs -R "cat /loader/entries/0c1d2e3f-$KV.conf" "$P1" 2>/dev/null | grep ^options)" \
    "options root=UUID=$ROOT_UUID ro rhgb quiet net.ifnames=0 biosdevname=0" \
    "BLS entry options"
assert_eq "$(debugfs -R "cat /loader/entries/0c1d2e3f-0-rescue.conf" "$P1" 2>/dev/null | grep ^options)" \
    'options $kernelopts' "the rescue entry takes its words from grubenv"
debugfs -R "cat /grub2/grubenv" "$P1" 2>/dev/null > "$T/grubenv"
assert_eq "$(stat -c %s "$T/grubenv")" 1024 "grubenv keeps its size"
assert_eq "$(grep -a ^kernelopts= "$T/grubenv")" \
    "kernelopts=root=UUID=$ROOT_UUID ro rhgb quiet net.ifnames=0 biosdevname=0" "grubenv kernelopts"
assert_eq "$(debugfs -R "cat /grub2/grub.cfg" "$P1" 2>/dev/null | head -2 | tr '\n' ' ')" \
    'set default="0" set timeout=1 ' "grub.cfg on /boot"

# /, read back through the kernel's XFS and checked with xfs_repair -n
L=$(losetup --show -f -r -o "$P2OFF" --sizelimit "$P2SIZE" "$T/vm.raw")
xfs_repair -n "$L" > "$T/xfs_repair.out" 2>&1 || { losetup -d "$L"; fail "xfs_repair: $(cat "$T/xfs_repair.out")"; }
mount -o ro,nouuid "$L" "$T/m" || { losetup -d "$L"; fail "cannot mount the root to check it"; }
fstab=$(cat "$T/m/etc/fstab")
ifcfg=$(cat "$T/m/etc/sysconfig/network-scripts/ifcfg-ens192")
grubdef=$(cat "$T/m/etc/default/grub")
orig=$([ -f "$T/m/etc/fstab.vdisk.orig" ] && echo yes || echo no)
umount "$T/m"
losetup -d "$L"
assert_eq "$fstab" "$(printf 'UUID=%s /     xfs  defaults 0 0\nUUID=%s /boot ext4 defaults 1 2' "$ROOT_UUID" "$BOOT_UUID")" "root fstab"
assert_eq "$orig" yes "fstab backup on the XFS root"
assert_eq "$ifcfg" "$(printf 'TYPE=Ethernet\nBOOTPROTO=dhcp\nNAME=eth0\nDEVICE=eth0\nONBOOT=yes')" "ifcfg"
assert_eq "$grubdef" "$(printf 'GRUB_TIMEOUT=1\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="rhgb quiet net.ifnames=0 biosdevname=0"\nGRUB_ENABLE_BLSCFG=true')" "/etc/default/grub"

# --- a second run changes nothing
vmount "$T/rw2" -o rw "$T/vm.raw"
"$VDISK" fixup "$T/rw2/vm" > "$T/again.out"
vumount "$T/rw2"
grep -qxF "nothing to change" "$T/again.out" || fail "second run: $(cat "$T/again.out")"
echo PASS
