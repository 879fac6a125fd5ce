#!/usr/bin/env bash
# The main job on an embedded default, end to end (README: "Try it"):
# installs what is missing, builds, makes a small VMDK (streamOptimized, as
# VMware and OVA exports ship them) holding an MBR disk with an ext4
# partition, mounts it with vdiskfs, lists the disk and its partitions, shows
# a file from inside the guest filesystem, and unmounts.
#   scripts/demo.sh [IMAGE]     with IMAGE, mount that instead
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

work=$(mktemp -d /tmp/vdiskfs-demo.XXXXXX)
mnt=$work/mnt guest=$work/guest
mkdir -p "$mnt" "$guest"
cleanup() {
    umount "$guest" 2>/dev/null || true
    fusermount3 -u "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

img=${1:-}
if [ -z "$img" ]; then
    echo "== making a demo image (sfdisk + mkfs.ext4 -d + qemu-img) in $work"
    mkdir -p "$work/root/etc"
    echo "Hello from inside the guest filesystem." > "$work/root/etc/motd"
    truncate -s 64M "$work/demo.raw"
    printf 'label: dos\n,,83\n' | sfdisk -q "$work/demo.raw"
    truncate -s 63M "$work/p1.ext4"
    mkfs.ext4 -q -F -L demo-root -d "$work/root" "$work/p1.ext4"
    dd if="$work/p1.ext4" of="$work/demo.raw" bs=1M seek=1 conv=notrunc status=none
    qemu-img convert -O vmdk -o subformat=streamOptimized "$work/demo.raw" "$work/demo.vmdk"
    img=$work/demo.vmdk
fi

echo "== vdisk info $img"
build/vdisk info "$img"
echo
echo "== vdiskfs $img $mnt"
build/vdiskfs "$img" "$mnt"
name=$(ls "$mnt" | head -1)
ls -l "$mnt/$name"
part=$(ls "$mnt/$name" | grep -E '^disk[0-9]*-p[0-9]+\.raw$' | head -1 || true)
if [ -n "$part" ]; then
    echo
    echo "== mount -o loop,ro $mnt/$name/$part"
    mount -o loop,ro "$mnt/$name/$part" "$guest"
    ls "$guest"
    if [ -f "$guest/etc/motd" ]; then
        echo "-- /etc/motd inside the guest:"
        cat "$guest/etc/motd"
    fi
    umount "$guest"
fi
fusermount3 -u "$mnt"
echo "== unmounted; done"
