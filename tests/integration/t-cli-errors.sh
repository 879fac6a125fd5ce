#!/usr/bin/env bash
# Misuse gets a clear message and a non-zero exit, never a hang or a broken
# mount: a FIFO as source, a file as mount point, a missing mount point;
# and a mount with only export/ (no source) works.
. "$VD_TEST_LIB"
need_fuse; need timeout

truncate -s 4M "$T/d.raw"
mkfifo "$T/ff"
rc=0
out=$(timeout 20 "$VDISK" info "$T/ff" 2>&1) || rc=$?
[ "$rc" -ne 124 ] || fail "vdisk info on a FIFO hung"
assert_eq "$out" "vdisk: $T/ff: not a regular file or block device (a pipe or character device cannot be read at random offsets)" "FIFO message"
rc=0
timeout 20 "$VDISKFS" "$T/ff" "$T/d.raw" "$T" 2>/dev/null || rc=$?
[ "$rc" -ne 124 ] || fail "vdiskfs on a FIFO hung"
[ "$rc" -ne 0 ] || fail "vdiskfs mounted a FIFO"

touch "$T/file"
rc=0
out=$("$VDISKFS" "$T/d.raw" "$T/file" 2>&1) || rc=$?
assert_eq "$rc" 1 "exit code for a file as mount point"
assert_eq "$out" "vdiskfs: mount point $T/file: not a directory" "file mount point"
rc=0
out=$("$VDISKFS" "$T/d.raw" "$T/nodir" 2>&1) || rc=$?
assert_eq "$rc" 1 "exit code for a missing mount point"
assert_eq "$out" "vdiskfs: mount point $T/nodir: No such file or directory" "missing mount point"

# export/ alone: no SOURCE needed.
mkdir -p "$T/out"
vmount "$T/mnt" -o "export=$T/out"
assert_eq "$(ls "$T/mnt")" "export" "export-only layout"
cp "$T/d.raw" "$T/mnt/export/x.raw"
vumount "$T/mnt"
cmp "$T/d.raw" "$T/out/x.raw" || fail "export-only mount wrote wrong bytes"
echo PASS
