#!/usr/bin/env bash
# Probing falls back to raw, which matches anything. Formats we do not read
# (qcow2, VDI, compressed files) and files whose name promises a format that
# is not there are refused with a message, not served as a "raw" disk of the
# container's bytes; -f raw / -o format=raw still forces raw.
. "$VD_TEST_LIB"
need qemu-img gzip

truncate -s 8M "$T/base.raw"
printf 'data' | dd of="$T/base.raw" bs=1 seek=4096 conv=notrunc status=none
qemu-img convert -O qcow2 "$T/base.raw" "$T/d.qcow2"
qemu-img convert -O vdi "$T/base.raw" "$T/d.vdi"
qemu-img convert -O vmdk "$T/base.raw" "$T/d.vmdk"
gzip -c "$T/d.vmdk" > "$T/d.vmdk.gz"
: > "$T/empty.vhd"
cp "$T/base.raw" "$T/plain.vhdx"

expect_err() { # file message
    local out rc=0
    out=$("$VDISK" info "$1" 2>&1) || rc=$?
    [ "$rc" -ne 0 ] || fail "$1 was accepted"
    assert_eq "$out" "vdisk: $1: $2" "message for $1"
}
expect_err "$T/d.qcow2" "this is qcow2 (QEMU copy-on-write), which vdiskfs does not read"
expect_err "$T/d.vdi" "this is VDI (VirtualBox), which vdiskfs does not read"
expect_err "$T/d.vmdk.gz" "this is gzip-compressed data (decompress it first), which vdiskfs does not read"
expect_err "$T/empty.vhd" "named like a VHD image but no VHD signature was found (the file is empty); if it really is a raw disk, force it with format=raw"
expect_err "$T/plain.vhdx" "named like a VHDX image but no VHDX signature was found (damaged or misnamed?); if it really is a raw disk, force it with format=raw"

# Forcing raw reads the bytes as they are.
assert_eq "$("$VDISK" hash -f raw "$T/plain.vhdx" | cut -d' ' -f1)" "$(sha "$T/base.raw")" "forced raw"
# A raw image under a neutral name is still raw.
cp "$T/base.raw" "$T/disk.img"
assert_eq "$("$VDISK" hash "$T/disk.img" | cut -d' ' -f1)" "$(sha "$T/base.raw")" "raw .img"
echo PASS
