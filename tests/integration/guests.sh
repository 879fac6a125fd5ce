# Guest disk images for the inspect and preflight tests, built from ONE
# debootstrapped Debian tree (the one t-fixup-boot uses: set
# VD_FIXUP_BOOT_ROOT=DIR to reuse or create it once). Source it after
# lib.sh, then:
#
#   guest_image LAYOUT OUTFILE    a sparse copy of the cached image
#
# Layouts (the guest's hostname is vd-LAYOUT unless said otherwise):
#   ext4-mbr   MBR: p1 ext4 / (UUID= in fstab), p2 swap; GRUB's boot.img
#              in the MBR (BIOS); grub.cfg; ifupdown DHCP on ens3
#   lvm-xfs    MBR: p1 ext4 /boot, p2 LVM PV of VG vg0 with LV root (XFS,
#              /dev/mapper/vg0-root in fstab) and LV swap; netplan static
#   gpt-esp    GPT: p1 ESP (vfat, EFI/BOOT/BOOTX64.EFI = grub-efi-amd64-bin's
#              grubx64.efi), p2 ext4 / (PARTUUID=); no MBR boot code (UEFI);
#              systemd-networkd by MAC
#   gpt-bios   GPT: p1 BIOS boot partition, p2 ext4 / (/dev/sda2 in fstab);
#              BLS entries with grubenv saved_entry; NetworkManager keyfile
#   i386       as ext4-mbr, /bin/sh's target with a 32-bit x86 ELF header
#   two-roots  MBR: p1 ext4 / (vd-two-a), p2 ext4 / (vd-two-b, Debian 11 in
#              its os-release)
#
# Images are cached under $VD_GUEST_CACHE (default $VD_BUILD_DIR/guests)/KEY/ (KEY: this script's
# hash and the base tree's kernel), so tests share them; a lock makes
# concurrent builders wait for each other. Needs root (loop devices for
# XFS and LVM), sfdisk, mkfs.ext4/xfs/vfat, mcopy, lvm2.

GUESTS_SH=${BASH_SOURCE[0]}
GUEST_ROOT_UUID=11111111-2222-4333-8444-555555555555
GUEST_BOOT_UUID=22222222-3333-4444-8555-666666666666
GUEST_XFS_UUID=33333333-4444-4555-8666-777777777777
GUEST_B_UUID=44444444-5555-4666-8777-888888888888
GUEST_SWAP_UUID=66666666-7777-4888-9999-aaaaaaaaaaaa
GUEST_ESP_ID=1234ABCD
GUEST_MAC=52:54:00:12:34:56
GUEST_PVUUID=pvpvpv-1111-2222-3333-4444-5555-666666
GUEST_VGUUID=vgvgvg-1111-2222-3333-4444-5555-666666

# The base tree: lib.sh's debian_base (one debootstrap, shared with the
# boot tests). Without VD_SLOW_TESTS=1 an existing tree is used but none
# is made.
guest_base() {
    if [ "${VD_SLOW_TESTS:-}" != 1 ] &&
        [ "$(cat "${VD_FIXUP_BOOT_ROOT:-/nonexistent}/.vdisk-base" 2>/dev/null)" != "$DEBIAN_BASE_PKGS" ]; then
        skip "no Debian tree: set VD_SLOW_TESTS=1 to debootstrap one (or VD_FIXUP_BOOT_ROOT=DIR to reuse one)"
    fi
    need debootstrap
    debian_base
}

# A working copy of the base tree with the large, irrelevant parts left out.
guest_tree() {
    local base=$1 out=$2
    mkdir -p "$out"
    tar -C "$base" --exclude=./var/cache/apt --exclude=./var/lib/apt/lists \
        --exclude=./usr/share/locale --exclude=./usr/share/doc --exclude=./usr/share/man \
        --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf - . | tar -C "$out" -xf -
    mkdir -p "$out/var/cache/apt"
}

guest_kver() { basename "$(ls "$1"/boot/vmlinuz-* | head -1)" | sed 's/^vmlinuz-//'; }

# guest_grub_cfg TREE PREFIX ROOTSPEC: a grub.cfg as grub-mkconfig shapes it
# (saved_entry, a first entry and an advanced submenu).
guest_grub_cfg() {
    local tree=$1 prefix=$2 root=$3 kv
    kv=$(guest_kver "$tree")
    mkdir -p "$tree/boot/grub"
    cat > "$tree/boot/grub/grub.cfg" <<F
if [ -s \$prefix/grubenv ]; then
  load_env
fi
if [ "\${next_entry}" ] ; then
   set default="\${next_entry}"
else
   set default="0"
fi
set timeout=5
menuentry 'Debian GNU/Linux' --class debian \$menuentry_id_option 'gnulinux-simple' {
	linux	$prefix/vmlinuz-$kv root=$root ro quiet
	initrd	$prefix/initrd.img-$kv
}
submenu 'Advanced options for Debian GNU/Linux' \$menuentry_id_option 'gnulinux-advanced' {
	menuentry 'Debian GNU/Linux, with Linux $kv' \$menuentry_id_option 'gnulinux-$kv-advanced' {
		linux	$prefix/vmlinuz-$kv root=$root ro quiet
		initrd	$prefix/initrd.img-$kv
	}
}
F
}

# BIOS boot code: GRUB's boot.img (440 bytes) in the MBR, core.img after it.
guest_bios_code() {
    local img=$1 gdir=/usr/lib/grub/i386-pc
    [ -f "$gdir/boot.img" ] || skip "grub-pc-bin is not installed (GRUB's boot.img)"
    dd if="$gdir/boot.img" of="$img" bs=440 count=1 conv=notrunc status=none
}

guest_interfaces() {
    mkdir -p "$1/etc/network"
    printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\nallow-hotplug ens3\niface ens3 inet dhcp\n' \
        > "$1/etc/network/interfaces"
}

# dd a filesystem image into a disk at a sector offset.
guest_put() { dd if="$1" of="$2" bs=4M oflag=seek_bytes seek=$(($3 * 512)) conv=notrunc,sparse status=none; }

guest_build_ext4_mbr() {
    local out=$1 w=$2 sh=${3:-}
    guest_tree "$BASE" "$w/r"
    echo "vd-${4:-ext4-mbr}" > "$w/r/etc/hostname"
    printf 'UUID=%s / ext4 errors=remount-ro 0 1\nUUID=%s none swap sw 0 0\n' \
        "$GUEST_ROOT_UUID" "$GUEST_SWAP_UUID" > "$w/r/etc/fstab"
    guest_grub_cfg "$w/r" /boot "UUID=$GUEST_ROOT_UUID"
    guest_interfaces "$w/r"
    [ -z "$sh" ] || $sh "$w/r"
    truncate -s 2G "$out"
    printf 'label: dos\nlabel-id: 0x0a0b0c0d\nstart=2048, size=3145728, type=83, bootable\nstart=3147776, size=524288, type=82\n' |
        sfdisk -q "$out"
    truncate -s 1536M "$w/p1"
    mkfs.ext4 -q -F -U "$GUEST_ROOT_UUID" -L root -d "$w/r" "$w/p1"
    truncate -s 256M "$w/p2"
    mkswap -q -U "$GUEST_SWAP_UUID" "$w/p2" > /dev/null
    guest_put "$w/p1" "$out" 2048
    guest_put "$w/p2" "$out" 3147776
    guest_bios_code "$out"
}

# Patch the ELF header of the guest's /bin/sh target: ELFCLASS32 and
# EM_386, as a 32-bit userland would have (the rest is not looked at).
guest_make_i386() {
    local t
    t=$(readlink -f "$1/bin/sh")
    case $t in "$1"/*) ;; *) t=$1/usr/bin/dash ;; esac
    printf '\001' | dd of="$t" bs=1 seek=4 conv=notrunc status=none
    printf '\003\000' | dd of="$t" bs=1 seek=18 conv=notrunc status=none
}

guest_build_lvm_xfs() {
    local out=$1 w=$2 kv loop
    need mkfs.xfs pvcreate vgcfgrestore losetup
    guest_tree "$BASE" "$w/r"
    kv=$(guest_kver "$w/r")
    echo vd-lvm-xfs > "$w/r/etc/hostname"
    printf '/dev/mapper/vg0-root / xfs defaults 0 1\nUUID=%s /boot ext4 defaults 0 2\n/dev/vg0/swap none swap sw 0 0\n' \
        "$GUEST_BOOT_UUID" > "$w/r/etc/fstab"
    mkdir -p "$w/r/etc/netplan"
    printf 'network:\n  version: 2\n  ethernets:\n    eth0:\n      addresses: [10.0.0.5/24]\n      gateway4: 10.0.0.1\n' \
        > "$w/r/etc/netplan/01-static.yaml"
    guest_grub_cfg "$w/r" "" /dev/mapper/vg0-root
    # /boot's content goes to its own filesystem
    mkdir -p "$w/boot"
    mv "$w/r/boot/"* "$w/boot/"
    truncate -s 3G "$out"
    # p1 /boot 256 MiB at 1 MiB; p2 the PV after it, to the end
    printf 'label: dos\nstart=2048, size=524288, type=83, bootable\nstart=526336, type=8e\n' |
        sfdisk -q "$out"
    truncate -s 255M "$w/p1"
    mkfs.ext4 -q -F -U "$GUEST_BOOT_UUID" -L boot -d "$w/boot" "$w/p1"
    guest_put "$w/p1" "$out" 2048
    guest_bios_code "$out"
    # The VG: 4 MiB extents from pe_start = 1 MiB of the PV; root 2 GiB
    # (512 extents), swap 128 MiB (32 extents).
    local pvsz=$(( (3 * 1024 * 1024 * 1024 / 512) - 526336 ))
    cat > "$w/vg0.meta" <<F
contents = "Text Format Volume Group"
version = 1
description = "vdisk guests.sh"
creation_host = "vdisk"
creation_time = 0
vg0 {
	id = "$GUEST_VGUUID"
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
			id = "$GUEST_PVUUID"
			device = "/dev/loop"
			status = ["ALLOCATABLE"]
			flags = []
			dev_size = $pvsz
			pe_start = 2048
			pe_count = $(( (pvsz - 2048) / 8192 ))
		}
	}
	logical_volumes {
		root {
			id = "lvroot-1111-2222-3333-4444-5555-666666"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 512
				type = "striped"
				stripe_count = 1
				stripes = ["pv0", 0]
			}
		}
		swap {
			id = "lvswap-1111-2222-3333-4444-5555-666666"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 32
				type = "striped"
				stripe_count = 1
				stripes = ["pv0", 512]
			}
		}
	}
}
F
    loop=$(losetup -f --show -o $((526336 * 512)) "$out")
    # Our own lvm.conf: no metadata backups or archives in the host's
    # /etc/lvm, no devices file, every device visible.
    mkdir -p "$w/lvmconf"
    printf 'backup {\n backup = 0\n archive = 0\n}\ndevices {\n use_devicesfile = 0\n filter = [ "a|.*|" ]\n}\n' \
        > "$w/lvmconf/lvm.conf"
    if ! LVM_SYSTEM_DIR=$w/lvmconf pvcreate -ff -y --uuid "$GUEST_PVUUID" \
            --restorefile "$w/vg0.meta" "$loop" > "$w/lvm.log" 2>&1 ||
        ! LVM_SYSTEM_DIR=$w/lvmconf vgcfgrestore -f "$w/vg0.meta" vg0 >> "$w/lvm.log" 2>&1; then
        losetup -d "$loop"
        fail "LVM metadata could not be written: $(tail -3 "$w/lvm.log")"
    fi
    losetup -d "$loop"
    truncate -s 2G "$w/root.xfs"
    mkfs.xfs -q -f -m uuid="$GUEST_XFS_UUID" -L root "$w/root.xfs"
    mkdir -p "$w/mnt"
    mount -o loop "$w/root.xfs" "$w/mnt"
    cp -a "$w/r/." "$w/mnt/"
    umount "$w/mnt"
    truncate -s 128M "$w/swap"
    mkswap -q -U "$GUEST_SWAP_UUID" "$w/swap" > /dev/null
    # LV bytes: partition + pe_start (2048 sectors) + extent * 8192 sectors
    guest_put "$w/root.xfs" "$out" $((526336 + 2048))
    guest_put "$w/swap" "$out" $((526336 + 2048 + 512 * 8192))
}

guest_build_gpt() {
    local out=$1 w=$2 esp=$3 kv
    guest_tree "$BASE" "$w/r"
    kv=$(guest_kver "$w/r")
    truncate -s 2G "$out"
    if [ "$esp" = esp ]; then
        need mkfs.vfat mcopy
        local efi=/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi
        [ -f "$efi" ] || skip "grub-efi-amd64-bin's grubx64.efi is missing ($efi)"
        echo vd-gpt-esp > "$w/r/etc/hostname"
        printf 'label: gpt\nstart=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=AAAAAAAA-0000-4000-8000-000000000001\nstart=133120, size=3145728, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=AAAAAAAA-0000-4000-8000-000000000002\n' |
            sfdisk -q "$out"
        printf 'PARTUUID=aaaaaaaa-0000-4000-8000-000000000002 / ext4 defaults 0 1\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n' \
            > "$w/r/etc/fstab"
        mkdir -p "$w/r/boot/efi" "$w/r/etc/systemd/network"
        printf '[Match]\nMACAddress=%s\n\n[Network]\nDHCP=yes\n' "$GUEST_MAC" \
            > "$w/r/etc/systemd/network/10-wired.network"
        guest_grub_cfg "$w/r" /boot "PARTUUID=aaaaaaaa-0000-4000-8000-000000000002"
        truncate -s 64M "$w/esp"
        mkfs.vfat -i "$GUEST_ESP_ID" -n ESP "$w/esp" > /dev/null
        mmd -i "$w/esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
        mcopy -i "$w/esp" "$efi" ::/EFI/BOOT/BOOTX64.EFI
        mcopy -i "$w/esp" "$efi" ::/EFI/debian/grubx64.efi
        guest_put "$w/esp" "$out" 2048
    else
        echo vd-gpt-bios > "$w/r/etc/hostname"
        printf 'label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, size=3145728, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
            sfdisk -q "$out"
        printf '/dev/sda2 / ext4 defaults 0 1\n' > "$w/r/etc/fstab"
        # BLS: grub.cfg runs blscfg; grubenv's saved_entry picks the entry
        mkdir -p "$w/r/boot/grub" "$w/r/boot/loader/entries" "$w/r/etc/NetworkManager/system-connections"
        printf 'load_env\ninsmod blscfg\nblscfg\n' > "$w/r/boot/grub/grub.cfg"
        printf 'title Debian (%s)\nversion %s\nlinux /boot/vmlinuz-%s\ninitrd /boot/initrd.img-%s\noptions root=/dev/sda2 ro\n' \
            "$kv" "$kv" "$kv" "$kv" > "$w/r/boot/loader/entries/debian-$kv.conf"
        printf 'title Old\nversion 5.10.0-1-amd64\nlinux /boot/vmlinuz-5.10.0-1-amd64\n' \
            > "$w/r/boot/loader/entries/debian-5.10.0-1-amd64.conf"
        { printf '# GRUB Environment Block\nsaved_entry=debian-%s\n' "$kv"; head -c 900 /dev/zero | tr '\0' '#'; } |
            head -c 1024 > "$w/r/boot/grub/grubenv"
        printf '[connection]\nid=Wired\ntype=ethernet\ninterface-name=enp0s3\n\n[ethernet]\nmac-address=%s\n\n[ipv4]\nmethod=manual\naddress1=192.168.1.10/24,192.168.1.1\n' \
            "$GUEST_MAC" > "$w/r/etc/NetworkManager/system-connections/Wired.nmconnection"
        chmod 600 "$w/r/etc/NetworkManager/system-connections/Wired.nmconnection"
        guest_bios_code "$out"
    fi
    truncate -s 1536M "$w/p2"
    mkfs.ext4 -q -F -U "$GUEST_ROOT_UUID" -d "$w/r" "$w/p2"
    guest_put "$w/p2" "$out" $([ "$esp" = esp ] && echo 133120 || echo 4096)
}

guest_build_two_roots() {
    local out=$1 w=$2
    guest_tree "$BASE" "$w/a"
    echo vd-two-a > "$w/a/etc/hostname"
    printf 'UUID=%s / ext4 defaults 0 1\n' "$GUEST_ROOT_UUID" > "$w/a/etc/fstab"
    guest_grub_cfg "$w/a" /boot "UUID=$GUEST_ROOT_UUID"
    guest_tree "$BASE" "$w/b"
    echo vd-two-b > "$w/b/etc/hostname"
    printf 'UUID=%s / ext4 defaults 0 1\n' "$GUEST_B_UUID" > "$w/b/etc/fstab"
    rm -f "$w/b/etc/os-release"
    printf 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\nVERSION_ID="11"\nVERSION="11 (bullseye)"\nID=debian\n' \
        > "$w/b/etc/os-release"
    echo 11.9 > "$w/b/etc/debian_version"
    truncate -s 4G "$out"
    printf 'label: dos\nstart=2048, size=3145728, type=83, bootable\nstart=3147776, size=3145728, type=83\n' |
        sfdisk -q "$out"
    truncate -s 1536M "$w/p1" "$w/p2"
    mkfs.ext4 -q -F -U "$GUEST_ROOT_UUID" -d "$w/a" "$w/p1"
    mkfs.ext4 -q -F -U "$GUEST_B_UUID" -d "$w/b" "$w/p2"
    guest_put "$w/p1" "$out" 2048
    guest_put "$w/p2" "$out" 3147776
    guest_bios_code "$out"
}

# guest_image LAYOUT OUTFILE
guest_image() {
    local layout=$1 out=$2 key dir w
    need sfdisk mkfs.ext4 mkswap flock
    BASE=$(guest_base)
    key=$( { sha256sum "$GUESTS_SH"; ls "$BASE/boot"; } | sha256sum | cut -c1-16)
    dir=${VD_GUEST_CACHE:-${VD_BUILD_DIR:-${TMPDIR:-/tmp}}/guests}/$key
    mkdir -p "$dir"
    exec 9> "$dir/.lock"
    flock 9
    if [ ! -f "$dir/$layout.raw" ]; then
        w=$(mktemp -d "$dir/build.XXXXXX")
        case $layout in
            ext4-mbr) guest_build_ext4_mbr "$w/img" "$w" ;;
            i386) guest_build_ext4_mbr "$w/img" "$w" guest_make_i386 i386 ;;
            lvm-xfs) guest_build_lvm_xfs "$w/img" "$w" ;;
            gpt-esp) guest_build_gpt "$w/img" "$w" esp ;;
            gpt-bios) guest_build_gpt "$w/img" "$w" bios ;;
            two-roots) guest_build_two_roots "$w/img" "$w" ;;
            *) flock -u 9; fail "guest_image: unknown layout '$layout'" ;;
        esac
        mv "$w/img" "$dir/$layout.raw"
        rm -rf "$w"
    fi
    flock -u 9
    exec 9>&-
    cp --sparse=always "$dir/$layout.raw" "$out"
}
