#!/bin/bash
# vdisk fixup --root on a real guest tree, with the devices resolved from a
# real disk image: sfdisk table, mkfs.ext4 and mkswap with known UUIDs. The
# disk's UUIDs are read back independently with blkid on loop-free
# partition copies, and every rewritten file is compared byte for byte.
. "$VD_TEST_LIB"
need sfdisk mkfs.ext4 mkswap blkid sha256sum

ROOT_UUID=11111111-2222-4333-8444-555555555555
SWAP_UUID=66666666-7777-4888-9999-aaaaaaaaaaaa

# disk.raw: p1 ext4 (16 MiB at 1 MiB), p2 swap (8 MiB after it).
truncate -s 32M "$T/disk.raw"
printf 'label: dos\nstart=2048, size=32768, type=83\nstart=34816, size=16384, type=82\n' |
    sfdisk -q "$T/disk.raw"
truncate -s 16M "$T/p1.img"
mkfs.ext4 -q -F -U "$ROOT_UUID" -L guestroot "$T/p1.img"
truncate -s 8M "$T/p2.img"
mkswap -q -U "$SWAP_UUID" "$T/p2.img" >/dev/null
dd if="$T/p1.img" of="$T/disk.raw" bs=512 seek=2048 conv=notrunc status=none
dd if="$T/p2.img" of="$T/disk.raw" bs=512 seek=34816 conv=notrunc status=none
# independent oracle for what we expect the map to say
assert_eq "$(blkid -p -o value -s UUID "$T/p1.img")" "$ROOT_UUID" "oracle: ext4 UUID"
assert_eq "$(blkid -p -o value -s UUID "$T/p2.img")" "$SWAP_UUID" "oracle: swap UUID"

G=$T/guest
mkdir -p "$G/etc/default" "$G/boot/grub" "$G/etc/network" "$G/etc/udev/rules.d" \
    "$G/etc/sysconfig/network-scripts" "$G/etc/netplan"
cat > "$G/etc/fstab" <<'F'
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/sda1       /               ext4    errors=remount-ro 0       1
/dev/sda2       none            swap    sw              0       0
/dev/sdb1       /data           xfs     defaults        0       2
/dev/cdrom      /media/cdrom0   udf,iso9660 user,noauto 0       0
/dev/sr0        /mnt/dvd        iso9660 ro              0       0
UUID=0a1b2c3d-0000-4000-8000-000000000001 /srv ext4 defaults 0 2
//fs/share      /mnt/share      cifs    credentials=/root/.smb 0 0
F
cat > "$G/etc/default/grub" <<'F'
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=saved
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
F
cat > "$G/boot/grub/grub.cfg" <<'F'
set default="${saved_entry}"
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
fi
set timeout=5
menuentry 'Debian GNU/Linux' {
	linux	/boot/vmlinuz-6.1.0-18-amd64 root=/dev/sda1 ro resume=/dev/sda2 quiet
	initrd	/boot/initrd.img-6.1.0-18-amd64
}
F
cat > "$G/etc/network/interfaces" <<'F'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 192.168.10.20
    netmask 255.255.255.0
    gateway 192.168.10.1
    dns-nameservers 192.168.10.1
F
printf 'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="00:50:56:aa:bb:cc", NAME="eth0"\n' \
    > "$G/etc/udev/rules.d/70-persistent-net.rules"
cat > "$G/etc/sysconfig/network-scripts/ifcfg-eth0" <<'F'
TYPE=Ethernet
BOOTPROTO=none
NAME=eth0
UUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
DEVICE=eth0
ONBOOT=yes
IPADDR=192.168.10.20
PREFIX=24
GATEWAY=192.168.10.1
HWADDR=00:50:56:AA:BB:CC
DNS1=192.168.10.1
F
cp "$G/etc/sysconfig/network-scripts/ifcfg-eth0" "$G/etc/sysconfig/network-scripts/ifcfg-eth0.bak"
cat > "$G/etc/sysconfig/network-scripts/ifcfg-lo" <<'F'
DEVICE=lo
IPADDR=127.0.0.1
F
cat > "$G/etc/netplan/01-netcfg.yaml" <<'F'
network:
  version: 2
  ethernets:
    ens192:
      match:
        macaddress: 00:50:56:aa:bb:cc
      set-name: ens192
      addresses:
        - 192.168.10.20/24
      gateway4: 192.168.10.1
      nameservers:
        addresses: [192.168.10.1]
F
chmod 600 "$G/etc/netplan/01-netcfg.yaml"
# a systemd .link naming the old NIC by MAC goes; one matching a driver stays
mkdir -p "$G/etc/systemd/network" "$G/etc/NetworkManager/system-connections"
printf '[Match]\nMACAddress=00:50:56:aa:bb:cc\n[Link]\nName=lan0\n' > "$G/etc/systemd/network/10-lan.link"
printf '[Match]\nDriver=virtio_net\n[Link]\nMTUBytes=9000\n' > "$G/etc/systemd/network/20-mtu.link"
printf '[connection]\nid=Wired\ntype=ethernet\ninterface-name=ens192\n[ipv4]\nmethod=auto\n' \
    > "$G/etc/NetworkManager/system-connections/Wired.nmconnection"
# an absolute symlink must not lead fixup out of the guest
ln -s /etc/hostname "$G/etc/hostname"

cp -a "$G" "$T/guest-orig"

tree_sum() { (cd "$G" && find . -type f -print0 | sort -z | xargs -0 sha256sum; find . | sort) | sha256sum; }
before=$(tree_sum)

# --- dry run: prints a diff, changes nothing
"$VDISK" fixup --dry-run --root "$G" --disk "$T/disk.raw" > "$T/dry.out"
assert_eq "$(tree_sum)" "$before" "dry run changed the tree"
grep -qxF -- "-/dev/sda1       /               ext4    errors=remount-ro 0       1" "$T/dry.out" ||
    fail "dry run does not show the old root line: $(cat "$T/dry.out")"
grep -qxF -- "+UUID=$ROOT_UUID       /               ext4    errors=remount-ro 0       1" "$T/dry.out" ||
    fail "dry run does not show the new root line"
grep -qxF "dry run: 9 files would change; nothing was written" "$T/dry.out" ||
    fail "dry run summary: $(tail -1 "$T/dry.out")"

# --- a root that does not resolve fails with the exact message, tree unchanged
cp "$G/etc/fstab" "$T/fstab.good"
sed -i 's|^/dev/sda1 |/dev/sdc1 |' "$G/etc/fstab"
before_bad=$(tree_sum)
set +e
"$VDISK" fixup --root "$G" --disk "$T/disk.raw" > "$T/bad.out" 2> "$T/bad.err"
rc=$?
set -e
assert_eq "$rc" 1 "exit status with an unresolvable root"
assert_eq "$(cat "$T/bad.err")" "vdisk: fixup: /etc/fstab: line 4: the root filesystem's device /dev/sdc1 is not on the given disks (no filesystem with a UUID there); nothing was changed" "error message"
assert_eq "$(tree_sum)" "$before_bad" "failed fixup changed the tree"
cp "$T/fstab.good" "$G/etc/fstab"

# --- usage errors exit 2
set +e
"$VDISK" fixup --root "$G" extra >/dev/null 2>&1; assert_eq "$?" 2 "usage exit status"
"$VDISK" fixup --profile azure --root "$G" >/dev/null 2>&1; assert_eq "$?" 2 "unknown profile"
"$VDISK" fixup --disk "$T/disk.raw" "$T" >/dev/null 2>&1; assert_eq "$?" 2 "--disk with a VIEW"
"$VDISK" fixup >/dev/null 2>&1; assert_eq "$?" 2 "no arguments"
set -e

# --- the real run
"$VDISK" fixup --root "$G" --disk "$T/disk.raw" > "$T/run.out"
grep -qxF "/etc/fstab: rewritten (original kept as fstab.vdisk.orig)" "$T/run.out" ||
    fail "report: $(cat "$T/run.out")"
grep -qxF "  line 4: /dev/sda1 -> UUID=$ROOT_UUID (the ext4 on disk 1, partition 1)" "$T/run.out" ||
    fail "report lacks the reason for line 4: $(cat "$T/run.out")"
grep -qxF "9 files changed" "$T/run.out" || fail "summary: $(tail -1 "$T/run.out")"

cat > "$T/want" <<F
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=$ROOT_UUID       /               ext4    errors=remount-ro 0       1
UUID=$SWAP_UUID       none            swap    sw              0       0
/dev/sdb1       /data           xfs     defaults,nofail        0       2
/dev/cdrom      /media/cdrom0   udf,iso9660 user,noauto 0       0
/dev/sr0        /mnt/dvd        iso9660 ro,nofail              0       0
UUID=0a1b2c3d-0000-4000-8000-000000000001 /srv ext4 defaults 0 2
# vdisk fixup: disabled cifs, a network/host-shared filesystem
#//fs/share      /mnt/share      cifs    credentials=/root/.smb 0 0
F
cmp "$T/want" "$G/etc/fstab" || { diff "$T/want" "$G/etc/fstab"; fail "fstab content"; }
cp "$T/want" "$T/want-fstab"
cmp "$T/fstab.good" "$G/etc/fstab.vdisk.orig" || fail "fstab backup differs from the original"

cat > "$T/want" <<'F'
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="net.ifnames=0 biosdevname=0"
F
cmp "$T/want" "$G/etc/default/grub" || { diff "$T/want" "$G/etc/default/grub"; fail "grub defaults"; }
[ -f "$G/etc/default/grub.vdisk.orig" ] || fail "no backup of /etc/default/grub"

cat > "$T/want" <<F
set default="0"
if [ "\${next_entry}" ] ; then
   set default="\${next_entry}"
fi
set timeout=1
menuentry 'Debian GNU/Linux' {
	linux	/boot/vmlinuz-6.1.0-18-amd64 root=UUID=$ROOT_UUID ro resume=UUID=$SWAP_UUID quiet net.ifnames=0 biosdevname=0
	initrd	/boot/initrd.img-6.1.0-18-amd64
}
F
cmp "$T/want" "$G/boot/grub/grub.cfg" || { diff "$T/want" "$G/boot/grub/grub.cfg"; fail "grub.cfg"; }

cat > "$T/want" <<'F'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
    dns-nameservers 192.168.10.1
F
cmp "$T/want" "$G/etc/network/interfaces" || { diff "$T/want" "$G/etc/network/interfaces"; fail "interfaces"; }

cat > "$T/want" <<'F'
TYPE=Ethernet
BOOTPROTO=dhcp
NAME=eth0
DEVICE=eth0
ONBOOT=yes
DNS1=192.168.10.1
F
cmp "$T/want" "$G/etc/sysconfig/network-scripts/ifcfg-eth0" ||
    { diff "$T/want" "$G/etc/sysconfig/network-scripts/ifcfg-eth0"; fail "ifcfg-eth0"; }
[ ! -e "$G/etc/sysconfig/network-scripts/ifcfg-lo.vdisk.orig" ] || fail "ifcfg-lo was touched"
[ ! -e "$G/etc/sysconfig/network-scripts/ifcfg-eth0.bak.vdisk.orig" ] || fail "ifcfg-eth0.bak was touched"

cat > "$T/want" <<'F'
network:
  version: 2
  ethernets:
    ens192:
      nameservers:
        addresses: [192.168.10.1]
      dhcp4: true
F
cmp "$T/want" "$G/etc/netplan/01-netcfg.yaml" || { diff "$T/want" "$G/etc/netplan/01-netcfg.yaml"; fail "netplan"; }
assert_eq "$(stat -c %a "$G/etc/netplan/01-netcfg.yaml")" 600 "netplan file mode"
assert_eq "$(stat -c %a "$G/etc/netplan/01-netcfg.yaml.vdisk.orig")" 600 "netplan backup mode"

# interfaces (first) took eth0; netplan's ens192 keeps its name, with a warning
grep -qF "  warning: line 4: ens192: the new machine will have no interface of that name" "$T/run.out" ||
    fail "no warning for netplan's ens192: $(cat "$T/run.out")"
[ ! -e "$G/etc/systemd/network/10-lan.link" ] || fail ".link with a MAC still there"
[ -f "$G/etc/systemd/network/10-lan.link.vdisk.orig" ] || fail ".link with a MAC not kept"
[ -f "$G/etc/systemd/network/20-mtu.link" ] || fail ".link by driver removed"
assert_eq "$(cat "$G/etc/NetworkManager/system-connections/Wired.nmconnection")" \
    "$(printf '[connection]\nid=Wired\ntype=ethernet\n[ipv4]\nmethod=auto')" "NM keyfile"
[ ! -e "$G/etc/udev/rules.d/70-persistent-net.rules" ] || fail "persistent-net rules still there"
[ -f "$G/etc/udev/rules.d/70-persistent-net.rules.vdisk.orig" ] || fail "persistent-net rules not kept"

# --- running again changes nothing and keeps the first backups
after=$(tree_sum)
"$VDISK" fixup --root "$G" --disk "$T/disk.raw" > "$T/again.out"
grep -qxF "nothing to change" "$T/again.out" || fail "second run: $(cat "$T/again.out")"
assert_eq "$(tree_sum)" "$after" "second run changed the tree"
cmp "$T/fstab.good" "$G/etc/fstab.vdisk.orig" || fail "backup overwritten"

# --- a separate /boot that is not mounted under the tree is named in a note
mkdir -p "$T/g2/etc"
printf 'UUID=%s / ext4 defaults 0 1\n/dev/sda2 /boot ext4 defaults 0 2\n' "$ROOT_UUID" > "$T/g2/etc/fstab"
"$VDISK" fixup --dry-run --root "$T/g2" --disk "$T/disk.raw" > "$T/g2.out"
grep -qxF "note: /boot is a separate filesystem that is not part of this tree, so its grub.cfg was not checked (with --root, mount it at DIR/boot and run again)" "$T/g2.out" ||
    fail "no /boot note: $(cat "$T/g2.out")"

# --- absolute symlinks in the guest resolve inside the guest, never on the host
[ ! -e /etc/vdisk-fixup-test-net ] || skip "/etc/vdisk-fixup-test-net exists on this host"
mkdir -p "$T/g3/etc/vdisk-fixup-test-net"
printf 'UUID=%s / ext4 defaults 0 1\n' "$ROOT_UUID" > "$T/g3/etc/fstab"
ln -s /etc/vdisk-fixup-test-net "$T/g3/etc/network"
printf 'auto eth0\niface eth0 inet static\n  address 10.0.0.5\n' > "$T/g3/etc/vdisk-fixup-test-net/interfaces"
"$VDISK" fixup --root "$T/g3" --disk "$T/disk.raw" > "$T/g3.out"
assert_eq "$(cat "$T/g3/etc/vdisk-fixup-test-net/interfaces")" "$(printf 'auto eth0\niface eth0 inet dhcp')" \
    "interfaces behind an absolute symlink"
[ -f "$T/g3/etc/vdisk-fixup-test-net/interfaces.vdisk.orig" ] || fail "no backup behind the symlink"
[ ! -e /etc/vdisk-fixup-test-net ] || fail "fixup wrote on the host"

# --- SUSE wicked: the interface is named by the file, which is renamed
mkdir -p "$T/g4/etc/sysconfig/network"
printf 'UUID=%s / ext4 defaults 0 1\n' "$ROOT_UUID" > "$T/g4/etc/fstab"
printf "BOOTPROTO='static'\nSTARTMODE='auto'\nIPADDR='192.168.1.5/24'\nNAME='VMXNET3 Ethernet'\n" \
    > "$T/g4/etc/sysconfig/network/ifcfg-ens192"
printf "BOOTPROTO='static'\nIPADDR='127.0.0.1/8'\n" > "$T/g4/etc/sysconfig/network/ifcfg-lo"
"$VDISK" fixup --root "$T/g4" --disk "$T/disk.raw" > "$T/g4.out" || fail "wicked: $(cat "$T/g4.out")"
grep -qxF "/etc/sysconfig/network/ifcfg-ens192: renamed to ifcfg-eth0 (original kept as ifcfg-ens192.vdisk.orig)" \
    "$T/g4.out" || fail "wicked report: $(cat "$T/g4.out")"
assert_eq "$(cat "$T/g4/etc/sysconfig/network/ifcfg-eth0")" \
    "$(printf "BOOTPROTO=dhcp\nSTARTMODE='auto'\nNAME='VMXNET3 Ethernet'")" "wicked ifcfg-eth0"
[ ! -e "$T/g4/etc/sysconfig/network/ifcfg-ens192" ] || fail "wicked: ifcfg-ens192 still there"
[ -f "$T/g4/etc/sysconfig/network/ifcfg-ens192.vdisk.orig" ] || fail "wicked: original not kept"
assert_eq "$(cat "$T/g4/etc/sysconfig/network/ifcfg-lo")" "$(printf "BOOTPROTO='static'\nIPADDR='127.0.0.1/8'")" \
    "wicked: ifcfg-lo untouched"
"$VDISK" fixup --root "$T/g4" --disk "$T/disk.raw" > "$T/g4b.out"
grep -qxF "nothing to change" "$T/g4b.out" || fail "wicked second run: $(cat "$T/g4b.out")"

# --- a vdiskfs view folder resolves the same devices
if [ -e /dev/fuse ]; then
    cp "$T/fstab.good" "$G/etc/fstab"
    vmount "$T/mnt" "$T/disk.raw"
    "$VDISK" fixup --root "$G" --disk "$T/mnt/disk" > "$T/view.out"
    grep -qxF "UUID=$ROOT_UUID       /               ext4    errors=remount-ro 0       1" \
        "$G/etc/fstab" || fail "view: fstab root line: $(cat "$G/etc/fstab")"
    grep -qxF "/etc/fstab: rewritten (original kept as fstab.vdisk.orig.2)" "$T/view.out" ||
        fail "view: second backup name: $(cat "$T/view.out")"
    vumount "$T/mnt"
fi

# --- VIEW mode: the same guest inside an ext4 partition of a raw disk,
# edited through a vdiskfs -o rw mount with libext2fs (no kernel mount);
# checked with debugfs, an independent reader, and e2fsck.
need debugfs e2fsck
[ -e /dev/fuse ] || skip "no /dev/fuse for the view test"
truncate -s 32M "$T/vm.raw"
printf 'label: dos\nstart=2048, size=32768, type=83\nstart=34816, size=16384, type=82\n' |
    sfdisk -q "$T/vm.raw"
rm -f "$T/p1.img"
truncate -s 16M "$T/p1.img"
mkfs.ext4 -q -F -U "$ROOT_UUID" -d "$T/guest-orig" "$T/p1.img"
dd if="$T/p1.img" of="$T/vm.raw" bs=512 seek=2048 conv=notrunc status=none
dd if="$T/p2.img" of="$T/vm.raw" bs=512 seek=34816 conv=notrunc status=none
P1="$T/vm.raw?offset=1048576"

# read-only view: a dry run works, a real run fails with the exact message
vmount "$T/ro" "$T/vm.raw"
sum_before=$(sha "$T/vm.raw")
"$VDISK" fixup --dry-run "$T/ro/vm" > "$T/vdry.out"
grep -qxF "editing $T/ro/vm/disk-p1.raw: the root filesystem (ext2/3/4, edited with libext2fs)" \
    "$T/vdry.out" || fail "view dry run: $(head -3 "$T/vdry.out")"
grep -qxF "dry run: 9 files would change; nothing was written" "$T/vdry.out" ||
    fail "view dry run summary: $(tail -1 "$T/vdry.out")"
set +e
"$VDISK" fixup "$T/ro/vm" > /dev/null 2> "$T/vro.err"
rc=$?
set -e
assert_eq "$rc" 1 "exit status on a read-only view"
assert_eq "$(cat "$T/vro.err")" "vdisk: fixup: $T/ro/vm/disk-p1.raw: the view is read-only (Read-only file system); mount the source with vdiskfs -o overlay=FILE (any source; the edits go to FILE, the source stays untouched) or -o rw (a local VMDK, VHD, VHDX or raw file, edited in place), or mount the root filesystem and use --root DIR" "read-only view message"
vumount "$T/ro"
assert_eq "$(sha "$T/vm.raw")" "$sum_before" "a read-only view run changed the disk"

vmount "$T/rw" -o rw "$T/vm.raw"
"$VDISK" fixup "$T/rw/vm" > "$T/vrun.out"
grep -qxF "9 files changed" "$T/vrun.out" || fail "view run: $(cat "$T/vrun.out")"
"$VDISK" fixup "$T/rw/vm" > "$T/vrun2.out"
grep -qxF "nothing to change" "$T/vrun2.out" || fail "view second run: $(cat "$T/vrun2.out")"
vumount "$T/rw"
debugfs -R "cat /etc/fstab" "$P1" 2>/dev/null > "$T/got"
cmp "$T/want-fstab" "$T/got" || { diff "$T/want-fstab" "$T/got"; fail "view: fstab via debugfs"; }
debugfs -R "cat /etc/fstab.vdisk.orig" "$P1" 2>/dev/null > "$T/got"
cmp "$T/fstab.good" "$T/got" || fail "view: fstab backup via debugfs"
debugfs -R "cat /etc/netplan/01-netcfg.yaml" "$P1" 2>/dev/null > "$T/got"
cmp "$G/etc/netplan/01-netcfg.yaml" "$T/got" || fail "view: netplan differs from the --root result"
debugfs -R "stat /etc/netplan/01-netcfg.yaml.vdisk.orig" "$P1" 2>/dev/null |
    grep -q "Mode:  0600" || fail "view: backup mode"
debugfs -R "ls -p /etc/udev/rules.d" "$P1" 2>/dev/null | awk -F/ 'NF > 5 {print $6}' > "$T/got"
assert_eq "$(grep -v '^\.' "$T/got")" "70-persistent-net.rules.vdisk.orig" "view: rules.d after fixup"
dd if="$T/vm.raw" of="$T/p1.after" bs=512 skip=2048 count=32768 status=none
e2fsck -fn "$T/p1.after" > "$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "e2fsck after the view fixup"; }

# --- a journal that needs recovery: the filesystem is in use elsewhere (or
# was not shut down); the message says so and does not send the user to
# e2fsck first
debugfs -w -R "feature needs_recovery" "$P1" > /dev/null 2>&1 || fail "debugfs could not set needs_recovery"
vmount "$T/busy" -o rw "$T/vm.raw"
set +e
"$VDISK" fixup "$T/busy/vm" > /dev/null 2> "$T/busy.err"
rc=$?
set -e
vumount "$T/busy"
assert_eq "$rc" 1 "exit status on a journal in use"
assert_eq "$(cat "$T/busy.err")" "vdisk: fixup: $T/busy/vm/disk-p1.raw: its journal holds changes not yet written: the filesystem is mounted elsewhere (a running guest, or a host mount of this view), or the guest was not shut down cleanly. Shut the guest down or unmount it; if it is in use nowhere, run e2fsck on the view file first" "journal in use message"
echo PASS
