#!/bin/bash
# The boot oracle for vdisk fixup: a real Debian guest whose fstab and
# kernel command line name /dev/sda1 (as on VMware/Hyper-V SCSI) is booted
# by QEMU on a virtio disk, where the disk is /dev/vda, as on a Nitro
# instance where it is /dev/nvme0n1. Before fixup the initramfs cannot
# find its root; after `vdisk fixup VIEW` (libext2fs through a vdiskfs -o rw
# mount) it boots, with root and swap found by UUID, the absent /data
# skipped (nofail) and no failed units. Its network is an ifupdown static
# stanza for ens192 (VMware's name for the first vmxnet3 NIC): after fixup
# the NIC, which QEMU's virtio-net would call ens3, is eth0 (net.ifnames=0)
# and gets a DHCP lease from QEMU's user network, networking.service active.
#
# Then the fixed-up guest boots a third time, from an OVA served by the
# nbdkit plugin with an overlay (issue 12).
#
# Slow and needs the Debian mirror (debootstrap, about 3 minutes, plus three
# boots under emulation), so it runs only with VD_SLOW_TESTS=1. Set
# VD_FIXUP_BOOT_ROOT=DIR to reuse (or create once) the debootstrapped tree.
. "$VD_TEST_LIB"
[ "${VD_SLOW_TESTS:-}" = 1 ] || skip "set VD_SLOW_TESTS=1 (debootstrap and three QEMU boots)"
need debootstrap qemu-system-x86_64 sfdisk mkfs.ext4 mkswap debugfs
need_fuse

ROOT_UUID=11111111-2222-4333-8444-555555555555
SWAP_UUID=66666666-7777-4888-9999-aaaaaaaaaaaa
BASE=$(debian_base) || exit $?
K=$(ls "$BASE"/boot/vmlinuz-* | head -1)
I=$(ls "$BASE"/boot/initrd.img-* | head -1)
[ -f "$K" ] && [ -f "$I" ] || fail "no kernel/initrd in $BASE/boot"

R=$T/root
cp -a "$BASE" "$R"
cat > "$R/etc/fstab" <<'F'
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/sda1       /               ext4    errors=remount-ro 0       1
/dev/sda2       none            swap    sw              0       0
/dev/sdb1       /data           ext4    defaults        0       2
F
cat > "$R/etc/network/interfaces" <<'F'
# as the Debian installer writes it on VMware, with a static address
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto ens192
iface ens192 inet static
	address 192.168.10.5/24
	gateway 192.168.10.1
F
mkdir -p "$R/boot/grub" "$R/data"
cat > "$R/boot/grub/grub.cfg" <<F
set default="\${saved_entry}"
set timeout=5
menuentry 'Debian GNU/Linux' {
	linux	/boot/$(basename "$K") root=/dev/sda1 ro resume=/dev/sda2 console=ttyS0 rootdelay=10
	initrd	/boot/$(basename "$I")
}
F
cat > "$R/etc/systemd/system/vdisk-marker.service" <<'F'
[Unit]
Description=report the boot on the console (kmsg) and power off
After=local-fs.target swap.target networking.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for i in $(seq 90); do ip -4 -o addr show dev eth0 2>/dev/null | grep -q "inet 10[.]0[.]2[.]" && break; sleep 1; done; echo "VDISK-MARKER root=$(findmnt -n -o SOURCE /) swap=$(tail -n +2 /proc/swaps | cut -d" " -f1) data=$(findmnt -n -o SOURCE /data || echo unmounted) failed=$(systemctl --failed --no-legend | wc -l) eth0=$(ip -4 -o addr show dev eth0 2>/dev/null | grep -o "10[.]0[.]2[.]" | head -1) networking=$(systemctl is-active networking)" > /dev/kmsg; systemctl --no-block poweroff'
[Install]
WantedBy=multi-user.target
F
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/vdisk-marker.service \
    "$R/etc/systemd/system/multi-user.target.wants/vdisk-marker.service"

truncate -s 2G "$T/vm.raw"
printf 'label: dos\nstart=2048, size=3145728, type=83\nstart=3147776, size=524288, type=82\n' |
    sfdisk -q "$T/vm.raw"
truncate -s 1536M "$T/p1.img"
mkfs.ext4 -q -F -U "$ROOT_UUID" -d "$R" "$T/p1.img"
truncate -s 256M "$T/p2.img"
mkswap -q -U "$SWAP_UUID" "$T/p2.img" > /dev/null
dd if="$T/p1.img" of="$T/vm.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$T/p2.img" of="$T/vm.raw" bs=512 seek=3147776 conv=notrunc status=none
rm -f "$T/p1.img" "$T/p2.img"
cp --sparse=always "$T/vm.raw" "$T/before.raw"

# The kernel command line, as GRUB would pass it, from the disk's grub.cfg.
cmdline() {
    debugfs -R "cat /boot/grub/grub.cfg" "$1?offset=1048576" 2>/dev/null |
        awk '$1 == "linux" { for (i = 3; i <= NF; i++) printf "%s%s", $i, (i < NF ? " " : "") }'
}
# boot DISK LOG PATTERN [DRIVE]: boot under QEMU until PATTERN shows on the
# serial console (or the guest powers off, or 900 s pass: software emulation
# on a loaded 2-core machine, next to the ASan suite, took over 300 s).
# DRIVE (default: DISK as a raw file) is QEMU's -drive file= for the disk;
# the kernel command line is read from DISK either way.
boot() {
    local disk=$1 log=$2 pattern=$3 drive=${4:-$1} pid i
    : > "$log"
    qemu-system-x86_64 -m 1024 -display none -no-reboot -serial "file:$log" \
        -kernel "$K" -initrd "$I" -append "$(cmdline "$disk")" \
        -drive "file=$drive,format=raw,if=virtio" -nic user,model=virtio-net-pci \
        > "$log.qemu" 2>&1 &
    pid=$!
    for i in $(seq 1 1800); do
        grep -aq "$pattern" "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Before: the initramfs waits for /dev/sda1, which a virtio disk never has.
boot "$T/before.raw" "$T/before.log" "Dropping to a shell"
grep -aq "ALERT!  /dev/sda1 does not exist" "$T/before.log" ||
    fail "control boot did not fail as expected: $(tail -c 400 "$T/before.log")"

vmount "$T/mnt" -o rw "$T/vm.raw"
"$VDISK" fixup "$T/mnt/vm" > "$T/fixup.out" || fail "fixup: $(cat "$T/fixup.out")"
vumount "$T/mnt"
assert_eq "$(cmdline "$T/vm.raw")" \
    "root=UUID=$ROOT_UUID ro resume=UUID=$SWAP_UUID console=ttyS0 rootdelay=10 net.ifnames=0 biosdevname=0" \
    "grub.cfg command line"
grep -q "ens192 -> eth0" "$T/fixup.out" || fail "fixup did not rename ens192: $(cat "$T/fixup.out")"

# After: it boots, root and swap by UUID on vda, /data skipped, nothing failed.
boot "$T/vm.raw" "$T/after.log" "VDISK-MARKER"
got=$(grep -ao "VDISK-MARKER .*" "$T/after.log" | tr -d '\r' | head -1 || true)
[ -n "$got" ] || fail "no marker from the guest after fixup: $(tail -c 600 "$T/after.log")"
assert_eq "$got" \
    "VDISK-MARKER root=/dev/vda1 swap=/dev/vda2 data=unmounted failed=0 eth0=10.0.2. networking=active" \
    "boot after fixup"

# Issue 12: the fixed-up guest boots straight from an OVA (a streamOptimized
# VMDK inside a tar) through the nbdkit plugin, nothing converted back to
# raw. The guest writes as it boots: those writes land in an overlay, and
# the OVA stays byte for byte what it was.
PLUGIN=$(dirname "$VDISK")/nbdkit-vdisk-plugin.so
if command -v nbdkit >/dev/null; then
    [ -f "$PLUGIN" ] || fail "nbdkit is installed but $PLUGIN was not built (nbdkit-plugin-dev?)"
    "$VDISK" convert -q "$T/vm.raw" "$T/web01.ova" || fail "convert to OVA"
    ova_sha=$(sha "$T/web01.ova")
    rm -f "$T/nbd.sock"
    nbdkit --foreground --unix "$T/nbd.sock" "$PLUGIN" "$T/web01.ova" overlay="$T/web01.ovl" \
        > "$T/nbdkit.log" 2>&1 &
    nbdkit_pid=$!
    for i in $(seq 1 200); do [ -S "$T/nbd.sock" ] && break; sleep 0.1; done
    [ -S "$T/nbd.sock" ] || fail "nbdkit did not start: $(cat "$T/nbdkit.log")"
    boot "$T/vm.raw" "$T/nbd.log" "VDISK-MARKER" "nbd+unix:///disk?socket=$T/nbd.sock"
    stop_bg "$nbdkit_pid"
    got=$(grep -ao "VDISK-MARKER .*" "$T/nbd.log" | tr -d '\r' | head -1 || true)
    [ -n "$got" ] || fail "no marker from the guest booted over NBD: $(tail -c 600 "$T/nbd.log") $(cat "$T/nbdkit.log")"
    assert_eq "$got" \
        "VDISK-MARKER root=/dev/vda1 swap=/dev/vda2 data=unmounted failed=0 eth0=10.0.2. networking=active" \
        "boot from the OVA through the nbdkit plugin"
    assert_eq "$(sha "$T/web01.ova")" "$ova_sha" "the OVA after booting from it"
    [ "$(stat -c %s "$T/web01.ovl")" -gt 65536 ] || fail "the guest's writes did not reach the overlay"
else
    echo "note: nbdkit is not installed: the boot from the OVA over NBD was not tried"
fi
echo PASS
