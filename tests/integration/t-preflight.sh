#!/usr/bin/env bash
# vdisk preflight --target aws end to end, on small crafted guests (sfdisk +
# mke2fs -d, tests/integration/preflight-lib.sh): a clean Debian 11 guest is
# ready (exit 0), raw and as a stream-optimized VMDK (also --deep); each
# broken one gives its finding, severity, AWS's text and exit code; a VHD
# whose footer copy was patched gives "Footers not identical" (vdisk check
# and qemu-img agree it is damaged); a vdiskfs view folder works as the
# source. The debootstrapped guests are in t-preflight-guests.sh.
. "$VD_TEST_LIB"
. "$(dirname "$0")/preflight-lib.sh"
need sfdisk mke2fs cpio gzip python3 qemu-img

# expect RC CHECK SEVERITY AWS_TEXT -- ARGS...: run with --json; the exit
# code is RC and a finding of CHECK has SEVERITY and AWS_TEXT ("" = any).
# CHECK "-": no finding above note; "-fail": no would-fail (RC 0 or 3).
expect() {
    local want=$1 check=$2 sev=$3 aws=$4 rc=0
    shift 5
    "$VDISK" preflight --target aws --json "$@" >"$T/out.json" 2>"$T/err" || rc=$?
    [ "$check" = -fail ] && [ "$rc" -eq 3 ] && want=3
    [ "$rc" -eq "$want" ] || fail "preflight $*: exit $rc, want $want
$(cat "$T/err" "$T/out.json")"
    python3 - "$T/out.json" "$check" "$sev" "$aws" <<'EOP' || fail "preflight $*: $(cat "$T/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
check, sev, aws = sys.argv[2:5]
if check in ("-", "-fail"):
    bad = [f for f in d["findings"]
           if f["severity"] == "would-fail" or (check == "-" and f["severity"] != "note")]
    sys.exit(1 if bad else 0)
hits = [f for f in d["findings"] if f["check"] == check and f["severity"] == sev
        and (not aws or f["aws_text"] == aws)]
for f in hits:
    print("  %s [%s] %s" % (f["check"], f["severity"], f["message"]))
sys.exit(0 if hits else 1)
EOP
}

# The clean guest
pf_tree "$T/clean"
pf_disk "$T/clean.raw" "$T/clean"
echo "== clean guest (text output)"
rc=0
"$VDISK" preflight --target aws "$T/clean.raw" >"$T/clean.txt" || rc=$?
cat "$T/clean.txt"
[ $rc -eq 0 ] || fail "clean guest: exit $rc"
grep -q '^result: ready (exit 0)' "$T/clean.txt" || fail "no 'result: ready' line"
grep -q 'kernel-supported' "$T/clean.txt" || fail "kernel-supported not among the passed checks"
expect 0 - - "" -- "$T/clean.raw"

echo "== clean guest as a stream-optimized VMDK, and --deep"
"$VDISK" convert -q -O vmdk -o vmdk_type=streamOptimized "$T/clean.raw" "$T/clean.vmdk"
expect 0 vmdk-grains note "" -- "$T/clean.vmdk"
expect 0 - - "" -- --deep "$T/clean.vmdk"
python3 -c 'import json,sys; assert "vmdk-grains" in json.load(open(sys.argv[1]))["passed"]' \
    "$T/out.json" || fail "--deep: vmdk-grains not passed"

echo "== a garbled grain: found with --deep only"
cp "$T/clean.vmdk" "$T/grain.vmdk"
python3 - "$T/grain.vmdk" <<'EOP'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
# The last grain of the stream (file data, not the partition table): a
# sector-aligned marker (u64 LBA, u32 compressed size) and a zlib stream.
last = None
for off in range(512, len(b) - 512, 512):
    size = int.from_bytes(b[off + 8:off + 12], "little")
    if 64 < size < 2 * 65536 and b[off + 12] == 0x78:
        last = (off, size)
if not last:
    sys.exit("no grain marker found")
off, size = last
for i in range(off + 20, off + 12 + size - 8):
    b[i] ^= 0x5A
open(p, "wb").write(b)
EOP
rc=0
"$VDISK" check "$T/grain.vmdk" >/dev/null || rc=$?
[ $rc -eq 0 ] || fail "vdisk check reads no grain, yet says $rc"
qemu-img convert -f vmdk -O raw "$T/grain.vmdk" "$T/grain.raw" 2>/dev/null &&
    fail "qemu-img reads the garbled grain without error"
rm -f "$T/grain.raw"
expect 2 vmdk-grains would-fail "ClientError: Uncompressed data has invalid length" -- --deep "$T/grain.vmdk"

echo "== monolithicSparse VMDK: a risk"
qemu-img convert -f raw -O vmdk "$T/clean.raw" "$T/sparse.vmdk"
expect 3 vmdk-stream-optimized risk "" -- "$T/sparse.vmdk"

echo "== kernel 6.1 on Debian 11"
PF_KVER=6.1.0-13-amd64 pf_tree "$T/k61"
pf_disk "$T/k61.raw" "$T/k61"
expect 2 kernel-supported would-fail "ClientError: Unsupported kernel version" -- "$T/k61.raw"
# import-snapshot does not check the kernel (risks: the initramfs drivers)
expect 0 -fail - "" -- --route import-snapshot "$T/k61.raw"

echo "== Debian 9"
PF_VER=9 pf_tree "$T/deb9"
pf_disk "$T/deb9.raw" "$T/deb9"
expect 2 os-supported would-fail "" -- "$T/deb9.raw"

echo "== no /etc/fstab"
pf_tree "$T/nofstab"
rm "$T/nofstab/etc/fstab"
pf_disk "$T/nofstab.raw" "$T/nofstab"
expect 2 fstab would-fail "ClientError: Invalid configuration - Could not read fstab" -- "$T/nofstab.raw"

echo "== a 32-bit guest (ELF32 i386 /bin/sh)"
pf_tree "$T/i386"
python3 - "$T/i386/bin/sh" <<'EOP'
import struct, sys
# ELF32, little endian, ET_EXEC, EM_386: the header is all inspection reads
hdr = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
hdr += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0x8048000, 52, 0, 0, 52, 32, 0, 40, 0, 0)
open(sys.argv[1], "wb").write(hdr + bytes(4096))
EOP
pf_disk "$T/i386.raw" "$T/i386"
expect 2 arch-64bit would-fail "" -- "$T/i386.raw"

echo "== static address on eth0"
pf_tree "$T/static"
printf 'auto eth0\niface eth0 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n' \
    >"$T/static/etc/network/interfaces"
pf_disk "$T/static.raw" "$T/static"
expect 3 network-static risk "" -- "$T/static.raw"

echo "== fstab by device name"
pf_tree "$T/sda"
sed -i "s|^UUID=$PF_UUID|/dev/sda1|" "$T/sda/etc/fstab"
pf_disk "$T/sda.raw" "$T/sda"
expect 3 fstab-device-names risk "" -- "$T/sda.raw"

echo "== two roots on one disk"
pf_tree "$T/two"
truncate -s 96M "$T/two.raw"
printf 'start=2048, size=61440, type=83\nstart=63488, type=83\n' | sfdisk -q "$T/two.raw"
mke2fs -q -t ext4 -F -U "$PF_UUID" -E offset=1048576 -d "$T/two" "$T/two.raw" 30720k
mke2fs -q -t ext4 -F -E offset=$((63488 * 512)) -d "$T/two" "$T/two.raw" 30720k
dd if=/usr/lib/grub/i386-pc/boot.img of="$T/two.raw" bs=440 count=1 conv=notrunc status=none 2>/dev/null || true
expect 2 os-count would-fail "ClientError: Unsupported configuration - Multiple directories found" -- "$T/two.raw"

if command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
    echo "== UEFI (GPT, ESP) without EFI/BOOT/BOOTX64.EFI"
    pf_tree "$T/uefi"
    truncate -s 400M "$T/uefi.raw"
    printf 'label: gpt\nstart=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=34816, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
        sfdisk -q "$T/uefi.raw"
    mkfs.vfat -C "$T/esp.img" 16384 >/dev/null
    mmd -i "$T/esp.img" ::/EFI ::/EFI/debian
    echo grub >"$T/grubx64.efi"
    mcopy -i "$T/esp.img" "$T/grubx64.efi" ::/EFI/debian/grubx64.efi
    dd if="$T/esp.img" of="$T/uefi.raw" bs=1M seek=1 conv=notrunc status=none
    mke2fs -q -t ext4 -F -U "$PF_UUID" -E offset=$((34816 * 512)) -d "$T/uefi" "$T/uefi.raw" 360000k
    expect 2 uefi-fallback would-fail "" -- "$T/uefi.raw"
    echo "== the same with the fallback loader"
    mmd -i "$T/esp.img" ::/EFI/BOOT
    mcopy -i "$T/esp.img" "$T/grubx64.efi" ::/EFI/BOOT/BOOTX64.EFI
    dd if="$T/esp.img" of="$T/uefi.raw" bs=1M seek=1 conv=notrunc status=none
    expect 0 - - "" -- "$T/uefi.raw"
fi

echo "== dynamic VHD with a patched footer copy"
qemu-img convert -f raw -O vpc -o subformat=dynamic "$T/clean.raw" "$T/clean.vhd"
expect 0 - - "" -- "$T/clean.vhd"
cp "$T/clean.vhd" "$T/footer.vhd"
# a byte of the copy's reserved area (footer offset 100): the copy at offset
# 0 no longer matches the footer at the end
printf '\x01' | dd of="$T/footer.vhd" bs=1 seek=100 conv=notrunc status=none
rc=0
"$VDISK" check "$T/footer.vhd" >"$T/check.txt" || rc=$?
[ $rc -eq 2 ] || fail "vdisk check of the patched VHD: exit $rc: $(cat "$T/check.txt")"
# qemu-img reads a dynamic VHD's footer copy first: it refuses the file too
qemu-img info -f vpc "$T/footer.vhd" >/dev/null 2>&1 && fail "qemu-img opens the patched VHD"
expect 2 vhd-footers would-fail "ClientError: Footers not identical" -- "$T/footer.vhd"

echo "== import-snapshot: initramfs without ena"
PF_INITRD_MODULES=nvme/host/nvme pf_tree "$T/noena"
pf_disk "$T/noena.raw" "$T/noena"
expect 3 initramfs-drivers risk "" -- --route import-snapshot "$T/noena.raw"
expect 0 - - "" -- "$T/noena.raw"

echo "== usage errors exit 1"
rc=0
"$VDISK" preflight "$T/clean.raw" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 1 "preflight without --target"

if [ -e /dev/fuse ]; then
    echo "== a vdiskfs view folder"
    vmount "$T/mnt" "$T/clean.vmdk"
    ls "$T/mnt/clean" >/dev/null
    expect 0 - - "" -- "$T/mnt/clean"
    vumount "$T/mnt"
fi
echo PASS
