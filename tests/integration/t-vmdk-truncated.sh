#!/usr/bin/env bash
# A cut-off monolithicSparse VMDK (evidence copied from a failing disk, an
# interrupted download): grains that survived must stay readable, the lost
# ones fail with a message naming the entry, and check lists every one.
# Oracle: qemu-img dd of the same truncated file.
. "$VD_TEST_LIB"
need_fuse; need qemu-img python3

python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(8<<20))" > "$T/base.raw"
qemu-img convert -O vmdk -o subformat=monolithicSparse "$T/base.raw" "$T/s.vmdk"
# Keep the header, tables and the first grains only.
head -c 3000000 "$T/s.vmdk" > "$T/t.vmdk"

# The first 1 MiB is intact: same bytes as qemu-img reads and as the source.
qemu-img dd -f vmdk -O raw if="$T/t.vmdk" of="$T/q.raw" bs=64k count=16 2>/dev/null
cmp "$T/q.raw" <(head -c 1048576 "$T/base.raw") || fail "qemu-img oracle disagrees with the source"
M=$T/mnt
vmount "$M" "$T/t.vmdk" 2>/dev/null
dd if="$M/t/disk.raw" bs=64k count=16 status=none | cmp - "$T/q.raw" || fail "intact grains unreadable"
# A lost grain is an I/O error, never zeros.
if dd if="$M/t/disk.raw" bs=64k skip=100 count=1 status=none of=/dev/null 2>/dev/null; then
    fail "read of a grain past end of file succeeded"
fi
vumount "$M"

rc=0
out=$("$VDISK" check "$T/t.vmdk") || rc=$?
assert_eq "$rc" 2 "check exit code"
first=$(echo "$out" | head -1)
echo "$first" | grep -Eq '^ERROR: vmdk: t.vmdk: grain table 0 entry [0-9]+ \(grain [0-9]+\) points to sector [0-9]+, past end of file$' ||
    fail "check line: $first"
echo PASS
