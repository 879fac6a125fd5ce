#!/bin/bash
# vdisk inspect on the guest layouts of issue 10 (tests/integration/guests.sh,
# built from one debootstrapped Debian tree): each field of --json checked
# against what the builder put there, and against independent readers where
# bytes count: dumpe2fs for free space, find over the source tree for the
# module count, the tree's own os-release. Also: the same answer through a
# vdiskfs view folder, the human-readable output, a UEFI guest whose
# fallback loader is removed (mtools), and a BLS guest whose grubenv
# saved_entry is changed (debugfs).
#
# Needs the Debian tree: VD_FIXUP_BOOT_ROOT=DIR (reused or created once), or
# VD_SLOW_TESTS=1 to debootstrap one. Images are cached in the build dir.
. "$VD_TEST_LIB"
. "$(dirname "${BASH_SOURCE[0]}")/guests.sh"
need jq dumpe2fs debugfs mdel lsinitramfs
need_fuse

BASE=$(guest_base)
KV=$(guest_kver "$BASE")
NMOD=$(find "$BASE/lib/modules/$KV" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' | wc -l)
. "$BASE/etc/os-release"
BASE_VERSION=$VERSION_ID BASE_PRETTY=$PRETTY_NAME
# The storage and network drivers the initramfs holds, as lsinitramfs
# (initramfs-tools) lists it, plus those built into the kernel.
DRIVERS=$({ lsinitramfs "$BASE/boot/initrd.img-$KV"; cat "$BASE/lib/modules/$KV/modules.builtin"; } |
    sed -n 's|.*/\([^/]*\)\.ko\(\.xz\|\.zst\|\.gz\)\{0,1\}$|\1|p' | tr _ - |
    grep -xE 'nvme|nvme-core|ena|xen-blkfront|xen-netfront|virtio-blk|virtio-scsi|virtio-net|virtio-pci' |
    sort -u | paste -sd, -)
[ -n "$DRIVERS" ] || fail "lsinitramfs found none of the drivers in $BASE/boot/initrd.img-$KV"

# inspect IMG: vdisk inspect --json into $T/IMG.json
inspect() {
    "$VDISK" inspect --json "$@" > "$T/out.json" 2> "$T/out.err" ||
        fail "vdisk inspect $*: $(cat "$T/out.err")"
}
# q JQ-EXPR: the value, raw
q() { jq -r "$1" "$T/out.json"; }
# check JQ-EXPR WANT
check() {
    local got
    got=$(q "$1")
    [ "$got" = "$2" ] || fail "$LAYOUT: $1: got '$got', want '$2'"
}
# free bytes of the ext4 at sector offset OFF of IMG, as dumpe2fs says
e2free() {
    dumpe2fs -h "$1?offset=$(($2 * 512))" 2>/dev/null |
        awk -F: '/^Free blocks/ {f=$2} /^Block size/ {b=$2} END {printf "%d", f*b}'
}

# ---- ext4 on an MBR partition, BIOS boot code, swap ----
LAYOUT=ext4-mbr
guest_image ext4-mbr "$T/a.raw"
inspect "$T/a.raw"
O='.operating_systems[0]'
check '.operating_systems | length' 1
check "$O.type" linux
check "$O.distro" debian
check "$O.version" "$BASE_VERSION"
check "$O.product" "$BASE_PRETTY"
check "$O.arch" x86_64
check "$O.arch_from" /bin/sh
check "$O.hostname" vd-ext4-mbr
check "$O.root_dev" disk-p1
check "$O.root_fstype" ext4
check "$O.boot.mode" bios
check "$O.boot.bootloader_disk" disk
check "$O.boot.esp_dev" ""
check "$O.boot.bootloader" grub2
check "$O.boot.bootloader_cfg" /boot/grub/grub.cfg
check "$O.boot.default_kernel" "$KV"
check "$O.fstab_read" true
check "[$O.mounts[] | .mountpoint + \"=\" + .dev] | join(\",\")" "/=disk-p1,none=disk-p2"
check "$O.kernels | length" 1
check "$O.kernels[0].version" "$KV"
check "$O.kernels[0].path" "/boot/vmlinuz-$KV"
check "$O.kernels[0].initrd" "/boot/initrd.img-$KV"
check "$O.kernels[0].modules" "$NMOD"
check "$O.kernels[0].initramfs_read" true
check "[$O.kernels[0].drivers[] | gsub(\"_\"; \"-\")] | sort | join(\",\")" "$DRIVERS"
check "[$O.network[] | .stack + \" \" + .iface + \" \" + (.dhcp|tostring)] | join(\",\")" \
    "ifupdown ens3 true"
check "$O.dhcp_client" true
check '.filesystems[0].dev + " " + .filesystems[0].type + " " + .filesystems[0].uuid' \
    "disk-p1 ext4 $GUEST_ROOT_UUID"
check '.filesystems[0].free' "$(e2free "$T/a.raw" 2048)"
check "$O.root_free" "$(e2free "$T/a.raw" 2048)"
check '.filesystems[1].type + " " + .filesystems[1].not_inspected' "swap swap space holds no files"
cp "$T/out.json" "$T/a.json"

# The same through a vdiskfs view folder (its disk.raw).
vmount "$T/mnt" "$T/a.raw"
"$VDISK" inspect --json "$T/mnt/a" > "$T/view.json" || fail "inspect of the view failed"
vumount "$T/mnt"
cmp -s "$T/a.json" "$T/view.json" || fail "view and image disagree: $(diff "$T/a.json" "$T/view.json")"
# Text for a person: the OS line, the root and the mounts.
"$VDISK" inspect "$T/a.raw" > "$T/a.txt"
grep -q "^OS 1: $BASE_PRETTY (debian $BASE_VERSION, linux)$" "$T/a.txt" || fail "text: $(cat "$T/a.txt")"
grep -q "^  root: *disk-p1 (ext4)" "$T/a.txt" || fail "text root: $(cat "$T/a.txt")"
grep -q "^    / *ext4 *UUID=$GUEST_ROOT_UUID -> disk-p1$" "$T/a.txt" || fail "text mounts: $(cat "$T/a.txt")"
# Two SOURCEs are one guest's sda and sdb: fstab's /dev/sdb1 and LABEL=
# of the second disk resolve to disk2-p1 (the first disk is disk1 then,
# as a mount of several disks names them).
truncate -s 64M "$T/data.raw" "$T/data.ext4"
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$T/data.raw"
mkfs.ext4 -q -F -L data "$T/data.ext4" 48M
guest_put "$T/data.ext4" "$T/data.raw" 2048
printf 'UUID=%s / ext4 defaults 0 1\n/dev/sdb1 /data ext4 defaults 0 2\nLABEL=data /data2 ext4 defaults\n/dev/sdc1 /gone ext4 nofail\n' \
    "$GUEST_ROOT_UUID" > "$T/fstab"
debugfs -w -R "rm /etc/fstab" "$T/a.raw?offset=1048576" > /dev/null 2>&1
debugfs -w -R "write $T/fstab /etc/fstab" "$T/a.raw?offset=1048576" > /dev/null 2>&1
inspect "$T/a.raw" "$T/data.raw"
check "[$O.mounts[] | .mountpoint + \"=\" + (.dev // \"null\")] | join(\",\")" \
    "/=disk1-p1,/data=disk2-p1,/data2=disk2-p1,/gone=null"
check '[.filesystems[] | .dev] | join(",")' "disk1-p1,disk1-p2,disk2-p1"
# --disk 1 of a single-disk source is that disk; 2 is refused.
"$VDISK" inspect --disk 2 "$T/a.raw" > /dev/null 2> "$T/err" && fail "--disk 2 of one disk"
grep -q "no disk 2 (it has 1)" "$T/err" || fail "--disk 2: $(cat "$T/err")"

# Without modules.dep (depmod's list, which inspect counts) the module
# tree is walked, with the same count.
debugfs -w -R "rm /usr/lib/modules/$KV/modules.dep" "$T/a.raw?offset=1048576" > /dev/null 2>&1
inspect "$T/a.raw" "$T/data.raw"
check "$O.kernels[0].modules" "$NMOD"

# Without BIOS boot code the MBR says nothing of the boot mode.
dd if=/dev/zero of="$T/a.raw" bs=440 count=1 conv=notrunc status=none
inspect "$T/a.raw"
check "$O.boot.mode" unknown
rm -f "$T/a.raw"

# ---- root XFS on LVM, separate ext4 /boot, swap LV, netplan static ----
LAYOUT=lvm-xfs
guest_image lvm-xfs "$T/f.raw"
inspect "$T/f.raw"
check '.operating_systems | length' 1
check "$O.root_dev" lvm-vg0-root
check "$O.root_fstype" xfs
check "$O.hostname" vd-lvm-xfs
check "[$O.mounts[] | .mountpoint + \"=\" + .dev] | join(\",\")" \
    "/=lvm-vg0-root,/boot=disk-p1,none=lvm-vg0-swap"
# kernels and grub.cfg come from the separate /boot
check "$O.kernels[0].path + \" \" + $O.kernels[0].initrd" "/boot/vmlinuz-$KV /boot/initrd.img-$KV"
check "$O.kernels[0].modules" "$NMOD"
check "$O.boot.default_kernel" "$KV"
check "[$O.network[] | .stack + \" \" + .iface + \" \" + (.static|tostring)] | join(\",\")" \
    "netplan eth0 true"
check '[.filesystems[] | .dev + ":" + .type] | join(",")' \
    "disk-p1:ext4,disk-p2:LVM2_member,lvm-vg0-root:xfs,lvm-vg0-swap:swap"
check '.filesystems[0].free' "$(e2free "$T/f.raw" 2048)"
rm -f "$T/f.raw"

# ---- 32-bit-looking userland ----
LAYOUT=i386
guest_image i386 "$T/b.raw"
inspect "$T/b.raw"
check "$O.arch" i386
check "$O.hostname" vd-i386
rm -f "$T/b.raw"

# ---- two roots on one disk ----
LAYOUT=two-roots
guest_image two-roots "$T/c.raw"
inspect "$T/c.raw"
check '.operating_systems | length' 2
check '[.operating_systems[] | .root_dev + " " + .version + " " + .hostname] | join(",")' \
    "disk-p1 $BASE_VERSION vd-two-a,disk-p2 11 vd-two-b"
check '.operating_systems[1].product' "Debian GNU/Linux 11 (bullseye)"
rm -f "$T/c.raw"

# ---- GPT with an ESP: UEFI, PARTUUID= root, networkd by MAC ----
LAYOUT=gpt-esp
guest_image gpt-esp "$T/d.raw"
inspect "$T/d.raw"
check "$O.root_dev" disk-p2
check "$O.boot.mode" uefi
check "$O.boot.esp_dev" disk-p1
check "$O.boot.uefi_fallback" true
check "$O.boot.bootloader_disk" ""
check "[$O.mounts[] | .mountpoint + \"=\" + .dev] | join(\",\")" "/=disk-p2,/boot/efi=disk-p1"
check "[$O.network[] | .stack + \" \" + .mac + \" \" + (.dhcp|tostring)] | join(\",\")" \
    "networkd $GUEST_MAC true"
check '.filesystems[0].type + " " + .filesystems[0].uuid + " " + .filesystems[0].label' "vfat 1234-ABCD ESP"
# Without the fallback loader it is still UEFI, and says so.
mdel -i "$T/d.raw@@1M" ::/EFI/BOOT/BOOTX64.EFI
inspect "$T/d.raw"
check "$O.boot.mode" uefi
check "$O.boot.uefi_fallback" false
rm -f "$T/d.raw"

# ---- GPT without an ESP: BIOS boot partition, BLS, kernel name in fstab ----
LAYOUT=gpt-bios
guest_image gpt-bios "$T/e.raw"
inspect "$T/e.raw"
check "$O.root_dev" disk-p2
check "$O.boot.mode" bios
check "$O.boot.bootloader" grub2-bls
check "$O.boot.default_kernel" "$KV"
check "[$O.mounts[] | .spec + \"=\" + .dev] | join(\",\")" "/dev/sda2=disk-p2"
check "[$O.network[] | .stack + \" \" + .iface + \" \" + .mac + \" \" + (.static|tostring)] | join(\",\")" \
    "networkmanager enp0s3 $GUEST_MAC true"
# grubenv's saved_entry picks the older BLS entry now.
{ printf '# GRUB Environment Block\nsaved_entry=debian-5.10.0-1-amd64\n'; head -c 980 /dev/zero | tr '\0' '#'; } |
    head -c 1024 > "$T/grubenv"
debugfs -w -R "rm /boot/grub/grubenv" "$T/e.raw?offset=$((4096 * 512))" > /dev/null 2>&1
debugfs -w -R "write $T/grubenv /boot/grub/grubenv" "$T/e.raw?offset=$((4096 * 512))" > /dev/null 2>&1
inspect "$T/e.raw"
check "$O.boot.default_kernel" 5.10.0-1-amd64
rm -f "$T/e.raw"

echo PASS
