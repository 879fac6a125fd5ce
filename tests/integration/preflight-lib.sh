# shellcheck shell=bash
# Small crafted Linux guests for the preflight tests: a root tree that
# looks like Debian to inspection (os-release, fstab, a kernel and its
# initramfs with nvme and ena, GRUB, DHCP), put on an MBR disk with
# sfdisk + mke2fs -d. No debootstrap: seconds, not minutes.
#   pf_tree DIR               fill DIR with the clean guest; PF_VER (VERSION_ID),
#                             PF_KVER (kernel), PF_UUID (root fs UUID) tune it
#   pf_disk OUT DIR [MiB]     OUT: raw MBR disk, ext4 partition 1 from DIR,
#                             GRUB's boot.img in the MBR
PF_UUID=${PF_UUID:-3f1d2c4b-5a69-4788-9aab-0c1d2e3f4a5b}

pf_tree() {
    local d=$1 ver=${PF_VER:-11} kver=${PF_KVER:-5.10.0-26-amd64}
    mkdir -p "$d"/etc/network "$d"/boot/grub "$d"/bin "$d"/sbin "$d"/usr/bin "$d"/usr/sbin \
        "$d"/lib/modules/"$kver"/kernel/drivers/nvme/host \
        "$d"/lib/modules/"$kver"/kernel/drivers/net/ethernet/amazon/ena \
        "$d"/var/lib "$d"/tmp "$d"/root "$d"/proc "$d"/sys "$d"/dev
    cat >"$d/etc/os-release" <<EOR
PRETTY_NAME="Debian GNU/Linux $ver"
NAME="Debian GNU/Linux"
VERSION_ID="$ver"
VERSION="$ver"
ID=debian
EOR
    echo "$ver.8" >"$d/etc/debian_version"
    echo pfguest >"$d/etc/hostname"
    cat >"$d/etc/fstab" <<EOR
# /etc/fstab: static file system information.
UUID=$PF_UUID / ext4 errors=remount-ro 0 1
proc /proc proc defaults 0 0
EOR
    cat >"$d/etc/network/interfaces" <<'EOR'
auto lo
iface lo inet loopback
auto eth0
iface eth0 inet dhcp
EOR
    cp "$(readlink -f /bin/sh)" "$d/bin/sh"
    cp "$(readlink -f /bin/true)" "$d/sbin/dhclient"
    head -c 4096 /dev/urandom >"$d/boot/vmlinuz-$kver"
    : >"$d/lib/modules/$kver/kernel/drivers/nvme/host/nvme.ko"
    : >"$d/lib/modules/$kver/kernel/drivers/net/ethernet/amazon/ena/ena.ko"
    : >"$d/lib/modules/$kver/modules.builtin"
    # The initramfs: a gzip'd newc cpio holding the modules, as Debian's.
    local ir="$T/initramfs.$$"
    rm -rf "$ir"
    mkdir -p "$ir/usr/lib/modules/$kver/kernel/drivers/nvme/host" \
        "$ir/usr/lib/modules/$kver/kernel/drivers/net/ethernet/amazon/ena" "$ir/scripts"
    for m in ${PF_INITRD_MODULES-nvme/host/nvme net/ethernet/amazon/ena/ena}; do
        mkdir -p "$ir/usr/lib/modules/$kver/kernel/drivers/$(dirname "$m")"
        echo module >"$ir/usr/lib/modules/$kver/kernel/drivers/$m.ko"
    done
    echo '#!/bin/sh' >"$ir/init"
    (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -9) >"$d/boot/initrd.img-$kver"
    rm -rf "$ir"
    cat >"$d/boot/grub/grub.cfg" <<EOR
set default="0"
set timeout=5
menuentry 'Debian GNU/Linux' {
	linux	/boot/vmlinuz-$kver root=UUID=$PF_UUID ro quiet
	initrd	/boot/initrd.img-$kver
}
EOR
}

pf_disk() {
    local out=$1 dir=$2 mib=${3:-320}
    rm -f "$out"
    truncate -s "${mib}M" "$out"
    echo 'start=2048, type=83, bootable' | sfdisk -q "$out"
    mke2fs -q -t ext4 -F -U "$PF_UUID" -E offset=1048576 -d "$dir" "$out" $(((mib - 1) * 1024))k
    if [ -r /usr/lib/grub/i386-pc/boot.img ]; then
        dd if=/usr/lib/grub/i386-pc/boot.img of="$out" bs=440 count=1 conv=notrunc status=none
    fi
}
