#!/bin/bash
# The boot oracle for vdisk fixup on the layout RHEL-family installers make:
# root XFS on an LVM logical volume, a separate ext4 /boot, and a netplan
# configuration bound to VMware's NIC by MAC address (set-name: ens192,
# static address). The fstab mounts /boot from /dev/sda1, as on VMware
# SCSI. Booted by QEMU on a virtio disk (vda) with virtio-net and QEMU's
# user network:
#   - before fixup, /boot is never found and the boot stops in emergency
#     mode;
#   - after `vdisk fixup VIEW` (the XFS root inside lvm-vg0-root.raw edited
#     through a loop mount vdisk makes, /boot found through fstab and
#     edited with libext2fs), it boots with root on the LV, /boot by UUID,
#     eth0 holding a DHCP lease (10.0.2.x) and no failed units.
#
# Slow (debootstrap, two boots under emulation): VD_SLOW_TESTS=1 only.
# The debootstrapped tree is shared with t-fixup-boot (VD_FIXUP_BOOT_ROOT).
. "$VD_TEST_LIB"
[ "${VD_SLOW_TESTS:-}" = 1 ] || skip "set VD_SLOW_TESTS=1 (debootstrap and two QEMU boots)"
need debootstrap qemu-system-x86_64 sfdisk mkfs.ext4 mkfs.xfs debugfs pvcreate vgcfgrestore losetup
need_fuse
[ "$(id -u)" -eq 0 ] || skip "loop devices need root"
grep -qw xfs /proc/filesystems || skip "this kernel has no XFS (the test fills the LV through a loop mount)"
export LVM_SUPPRESS_FD_WARNINGS=1

BASE=$(debian_base) || exit $?
K=$(ls "$BASE"/boot/vmlinuz-* | head -1)
I=$(ls "$BASE"/boot/initrd.img-* | head -1)
KN=$(basename "$K") IN=$(basename "$I")

BOOT_UUID=3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d
ROOT_UUID=8f9e0d1c-2b3a-4c5d-8e7f-6a5b4c3d2e1f
PV_UUID=pv0vd0-boot-lvm0-test-0000-0000-000001
MiB=1048576

R=$T/root
cp -a "$BASE" "$R"
cat > "$R/etc/fstab" <<'F'
/dev/mapper/vg0-root /     xfs  defaults 0 0
/dev/sda1            /boot ext4 defaults 0 2
F
printf 'auto lo\niface lo inet loopback\n' > "$R/etc/network/interfaces"
mkdir -p "$R/etc/netplan"
cat > "$R/etc/netplan/50-vmware.yaml" <<'F'
network:
  version: 2
  renderer: networkd
  ethernets:
    ens192:
      match:
        macaddress: 00:50:56:8a:11:22
      set-name: ens192
      addresses:
        - 192.168.10.5/24
      routes:
        - to: default
          via: 192.168.10.1
F
chmod 600 "$R/etc/netplan/50-vmware.yaml"
mkdir -p "$R/boot/grub"
cat > "$R/boot/grub/grub.cfg" <<F
set default="\${saved_entry}"
set timeout=5
menuentry 'Debian GNU/Linux' {
	linux	/$KN root=/dev/mapper/vg0-root ro console=ttyS0 rootdelay=10
	initrd	/$IN
}
F
cat > "$R/etc/systemd/system/vdisk-marker.service" <<'F'
[Unit]
Description=report the boot on the console (kmsg) and power off
After=local-fs.target systemd-networkd.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for i in $(seq 90); do ip -4 -o addr show dev eth0 2>/dev/null | grep -q "inet 10[.]0[.]2[.]" && break; sleep 1; done; echo "VDISK-MARKER root=$(findmnt -n -o SOURCE /) boot=$(findmnt -n -o SOURCE /boot) failed=$(systemctl --failed --no-legend | wc -l) eth0=$(ip -4 -o addr show dev eth0 2>/dev/null | grep -o "10[.]0[.]2[.]" | head -1)" > /dev/kmsg; systemctl --no-block poweroff'
[Install]
WantedBy=multi-user.target
F
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/vdisk-marker.service \
    "$R/etc/systemd/system/multi-user.target.wants/vdisk-marker.service"

# Disk: p1 256 MiB ext4 /boot; p2 the PV of vg0 (pe_start 1 MiB, 4 MiB
# extents), whose LV root takes 400 extents from extent 0.
truncate -s 2G "$T/vm.raw"
printf 'label: dos\nstart=2048, size=524288, type=83\nstart=526336, type=8e\n' | sfdisk -q "$T/vm.raw"
P2OFF=$((526336 * 512))
P2SIZE=$((2048 * MiB - P2OFF))
PE_COUNT=$(((P2SIZE - MiB) / (4 * MiB)))
cat > "$T/vg0.meta" <<F
vg0 {
id = "vg0vg0-boot-lvm0-test-0000-0000-000001"
seqno = 1
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
flags = []
extent_size = 8192
max_lv = 0
max_pv = 0
metadata_copies = 0
physical_volumes {
pv0 {
id = "$PV_UUID"
device = "/dev/sda2"
status = ["ALLOCATABLE"]
flags = []
dev_size = $((P2SIZE / 512))
pe_start = 2048
pe_count = $PE_COUNT
}
}
logical_volumes {
root {
id = "lvroot-boot-lvm0-test-0000-0000-000001"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 400
type = "striped"
stripe_count = 1
stripes = ["pv0", 0]
}
}
}
}
contents = "Text Format Volume Group"
version = 1
F
L=$(losetup -f --show -o "$P2OFF" --sizelimit "$P2SIZE" "$T/vm.raw") || fail "losetup"
pvcreate -q -ff -y --devices "$L" --uuid "$PV_UUID" --restorefile "$T/vg0.meta" "$L" > "$T/lvm.log" 2>&1 &&
    vgcfgrestore -q --force -f "$T/vg0.meta" --devices "$L" vg0 >> "$T/lvm.log" 2>&1 <<<y
rc=$?
losetup -d "$L"
[ "$rc" = 0 ] || fail "lvm2 could not write the VG: $(cat "$T/lvm.log")"

truncate -s 256M "$T/boot.img"
mkfs.ext4 -q -F -U "$BOOT_UUID" -d "$R/boot" "$T/boot.img"
dd if="$T/boot.img" of="$T/vm.raw" bs=$MiB seek=1 conv=notrunc status=none
rm -rf "$R/boot"/* "$T/boot.img"
truncate -s $((400 * 4 * MiB)) "$T/lv.img"
mkfs.xfs -q -f -m uuid="$ROOT_UUID" "$T/lv.img"
mkdir -p "$T/m"
mount -o loop "$T/lv.img" "$T/m"
cp -a "$R/." "$T/m/"
umount "$T/m"
dd if="$T/lv.img" of="$T/vm.raw" bs=$MiB seek=$(((P2OFF + MiB) / MiB)) conv=notrunc status=none
rm -rf "$T/lv.img" "$R"
cp --sparse=always "$T/vm.raw" "$T/before.raw"

# The kernel command line, as GRUB would pass it, from /boot's grub.cfg.
cmdline() {
    debugfs -R "cat /grub/grub.cfg" "$1?offset=1048576" 2>/dev/null |
        awk '$1 == "linux" { for (i = 3; i <= NF; i++) printf "%s%s", $i, (i < NF ? " " : "") }'
}
boot() { # DISK LOG PATTERN...
    local disk=$1 log=$2 pid i
    shift 2
    : > "$log"
    qemu-system-x86_64 -m 1024 -display none -no-reboot -serial "file:$log" \
        -kernel "$K" -initrd "$I" -append "$(cmdline "$disk")" \
        -drive "file=$disk,format=raw,if=virtio" -nic user,model=virtio-net-pci \
        > "$log.qemu" 2>&1 &
    pid=$!
    for i in $(seq 1 1800); do
        for p in "$@"; do grep -aq "$p" "$log" && break 2; done
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Before: /dev/sda1 never appears on virtio; the boot stops in emergency mode.
boot "$T/before.raw" "$T/before.log" "emergency mode" "VDISK-MARKER"
grep -aq "emergency mode" "$T/before.log" ||
    fail "control boot did not stop as expected: $(tail -c 600 "$T/before.log")"

vmount "$T/mnt" -o rw "$T/vm.raw"
[ -f "$T/mnt/vm/lvm-vg0-root.raw" ] || fail "no lvm-vg0-root.raw in the view: $(ls "$T/mnt/vm")"
"$VDISK" fixup "$T/mnt/vm" > "$T/fixup.out" || fail "fixup: $(cat "$T/fixup.out")"
vumount "$T/mnt"
grep -q "^editing $T/mnt/vm/lvm-vg0-root.raw: the root filesystem (xfs" "$T/fixup.out" ||
    fail "root not edited through the LV: $(cat "$T/fixup.out")"
grep -qF "line 5: ens192 -> eth0 (the new machine's first NIC)" "$T/fixup.out" ||
    fail "netplan's ens192 not renamed: $(cat "$T/fixup.out")"
assert_eq "$(cmdline "$T/vm.raw")" \
    "root=/dev/mapper/vg0-root ro console=ttyS0 rootdelay=10 net.ifnames=0 biosdevname=0" \
    "grub.cfg command line"

# After: root on the LV, /boot by UUID on vda1, a lease on eth0.
boot "$T/vm.raw" "$T/after.log" "VDISK-MARKER"
got=$(grep -ao "VDISK-MARKER .*" "$T/after.log" | tr -d '\r' | head -1 || true)
[ -n "$got" ] || fail "no marker from the guest after fixup: $(tail -c 800 "$T/after.log")"
assert_eq "$got" "VDISK-MARKER root=/dev/mapper/vg0-root boot=/dev/vda1 failed=0 eth0=10.0.2." \
    "boot after fixup"
echo PASS
