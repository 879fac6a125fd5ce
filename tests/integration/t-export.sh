#!/bin/bash
# The export/ directory of a mount: cp (plain and --sparse=always), dd in
# reverse within the reorder window, truncate plus writes, an empty file,
# several exports at once, OVA; the status xattr; out-of-window writes;
# an unwritable or full DEST and a killed mount leave no DEST/NAME and no
# temporary file.
. "$VD_TEST_LIB"
need_fuse
need qemu-img python3 mkfs.ext4

SRC=$T/src.raw                      # 12 MiB: random, a zero run, a hole
head -c $((12 << 20)) /dev/urandom > "$SRC"
dd if=/dev/zero of="$SRC" bs=1M seek=4 count=2 conv=notrunc status=none
fallocate -p -o $((8 << 20)) -l $((2 << 20)) "$SRC"
WANT=$(sha "$SRC")
OUT=$T/out
mkdir -p "$OUT"
M=$T/mnt
vmount "$M" -o export="$OUT",reorder_window=16M "$SRC"
X=$M/export
[ -d "$X" ] || fail "no export/ directory"

status() { python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vdisk.status").decode())' "$1"; }
# done_ok NAME FMT: DEST/NAME decodes to the source; xattr and size agree.
done_ok() {
    local name=$1 fmt=$2 want=${3:-$WANT}
    [ -f "$OUT/$name" ] || fail "$name not at DEST"
    assert_eq "$(qemu_raw_sha "$OUT/$name" "$fmt")" "$want" "$name via qemu-img"
    local st
    st=$(status "$X/$name")
    assert_eq "$st" "done $(stat -c %s "$OUT/$name") $(sha "$OUT/$name")" "status of $name"
    assert_eq "$(stat -c %s "$X/$name")" "$(stat -c %s "$OUT/$name")" "listed size of $name"
    echo "ok: $name"
}

# cp, plain and sparse; two at once.
cp "$SRC" "$X/a.vmdk" &
cp --sparse=always "$SRC" "$X/b.vhd" &
wait %1 || fail "cp to a.vmdk"
wait %2 || fail "cp to b.vhd"
done_ok a.vmdk vmdk
done_ok b.vhd vpc
cp "$SRC" "$X/c.vhdx" && done_ok c.vhdx vhdx
cp "$SRC" "$X/d.raw" && done_ok d.raw raw
command -v vmdkmount >/dev/null && {
    mkdir -p "$T/vm"; vmdkmount "$OUT/a.vmdk" "$T/vm" >/dev/null
    got=$(sha "$T/vm/vmdk1"); fusermount3 -u "$T/vm"; assert_eq "$got" "$WANT" "vmdkmount a.vmdk"; }

# qemu-img convert creates and sizes the file, closes it, reopens it.
qemu-img convert -f raw -O raw "$SRC" "$X/qc.vhd" || fail "qemu-img convert into export/"
done_ok qc.vhd vpc

# dd bs=1M in reverse block order (inside the 16 MiB window), holding the
# file open so the separate dd runs are one export; then the final size.
exec 3>"$X/r.vhdx"
for ((i = 11; i >= 0; i--)); do
    dd if="$SRC" of="$X/r.vhdx" bs=1M skip=$i seek=$i count=1 conv=notrunc status=none ||
        fail "dd block $i"
done
exec 3>&-
done_ok r.vhdx vhdx

# truncate -s plus a few writes, in one open.
exec 3>"$X/t.vmdk"
truncate -s 20M "$X/t.vmdk"
assert_eq "$(stat -c %s "$X/t.vmdk")" 20971520 "size after truncate"
printf 'hello' | dd of="$X/t.vmdk" bs=1 seek=$((5 << 20)) conv=notrunc status=none
printf 'world' | dd of="$X/t.vmdk" bs=1 seek=$((19 << 20)) conv=notrunc status=none
exec 3>&-
truncate -s 20M "$T/t.raw"
printf 'hello' | dd of="$T/t.raw" bs=1 seek=$((5 << 20)) conv=notrunc status=none
printf 'world' | dd of="$T/t.raw" bs=1 seek=$((19 << 20)) conv=notrunc status=none
done_ok t.vmdk vmdk "$(sha "$T/t.raw")"

# A zero-length file is a valid empty image.
: > "$X/empty.vhd"
sleep 0.2
[ -f "$OUT/empty.vhd" ] || fail "empty.vhd not at DEST"
assert_eq "$(qemu-img info -f vpc --output=json "$OUT/empty.vhd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" 0 "empty VHD size"

# Unknown extension: EINVAL.
out=$(cp "$SRC" "$X/a.qcow2" 2>&1) && fail "a.qcow2 accepted"
echo "$out" | grep -q "Invalid argument" || fail "unknown extension: $out"

# A write behind the window fails with EINVAL, close reports EIO, nothing
# lands at DEST and the status says why.
python3 - "$X/w.vmdk" <<'PY' || fail "out-of-window behaviour"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.pwrite(fd, b"x" * 65536, 40 << 20)
try:
    os.pwrite(fd, b"y" * 65536, 0)
    sys.exit("write behind the window succeeded")
except OSError as e:
    assert e.errno == errno.EINVAL, e
try:
    os.close(fd)
    sys.exit("close succeeded")
except OSError as e:
    assert e.errno == errno.EIO, e
PY
[ ! -e "$OUT/w.vmdk" ] || fail "w.vmdk left at DEST"
st=$(status "$X/w.vmdk")
case "$st" in
"error: export: $OUT/w.vmdk: write at offset 0 is behind the encoded point 25231360: writes must stay within reorder_window=16777216 bytes of the highest offset written") ;;
*) fail "status after out-of-window write: $st" ;;
esac

# OVA through the mount.
cp "$SRC" "$X/vm.ova"
assert_eq "$(tar tf "$OUT/vm.ova" | tr '\n' ' ')" "vm.ovf vm.mf vm-disk1.vmdk " "OVA members"
mkdir -p "$T/ova" && tar xf "$OUT/vm.ova" -C "$T/ova"
(cd "$T/ova" && sed -E 's/^SHA256\((.*)\)= (.*)/\2  \1/' vm.mf | sha256sum -c --quiet) || fail "OVA manifest"
assert_eq "$(qemu_raw_sha "$T/ova/vm-disk1.vmdk" vmdk)" "$WANT" "OVA disk"
assert_eq "$("$VDISK" hash "$OUT/vm.ova" | cut -d' ' -f1)" "$WANT" "OVA via vdisk hash"
vmount "$T/ovamnt" "$OUT/vm.ova"
assert_eq "$(sha "$T/ovamnt/vm/disk.raw")" "$WANT" "OVA mounted back by vdiskfs"
vumount "$T/ovamnt"

ls -A "$OUT" | grep '^\.' >/dev/null && fail "temporary files left in DEST: $(ls -A "$OUT")"
vumount "$M"

# DEST read-only (a read-only bind mount): cp fails, nothing appears.
mkdir -p "$T/ro"
if mount --bind "$OUT" "$T/ro" 2>/dev/null && mount -o remount,bind,ro "$T/ro" 2>/dev/null; then
    M2=$T/mnt2
    vmount "$M2" -o export="$T/ro" "$SRC"
    cp "$SRC" "$M2/export/ro.vmdk" 2>/dev/null && fail "cp into a read-only DEST succeeded"
    [ ! -e "$OUT/ro.vmdk" ] || fail "ro.vmdk appeared"
    vumount "$M2"
    umount "$T/ro"
else
    echo "note: cannot make a read-only bind mount here; skipped that case"
fi

# DEST full (a 2 MiB tmpfs): cp exits non-zero, no file, no temp file.
mkdir -p "$T/full"
if mount -t tmpfs -o size=2m tmpfs "$T/full" 2>/dev/null; then
    M3=$T/mnt3
    vmount "$M3" -o export="$T/full" "$SRC"
    cp "$SRC" "$M3/export/full.raw" 2>/dev/null && fail "cp into a full DEST succeeded"
    [ -z "$(ls -A "$T/full")" ] || fail "left in a full DEST: $(ls -A "$T/full")"
    status "$M3/export/full.raw" | grep -q "No space left on device" || fail "ENOSPC status"
    vumount "$M3"
    umount "$T/full"
else
    echo "note: cannot mount a tmpfs here; skipped the full-DEST case"
fi

# kill -9 of the mount in the middle of an export: no DEST/NAME.
M4=$T/mnt4
mkdir -p "$M4"
"$VDISKFS" -f -o export="$OUT" "$SRC" "$M4" &
pid=$!
MOUNTS+=("$M4")
for i in $(seq 1 100); do mountpoint -q "$M4" && break; sleep 0.05; done
python3 - "$M4/export/killed.vmdk" "$SRC" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
src = open(sys.argv[2], "rb")
for i in range(4):
    os.pwrite(fd, src.read(1 << 20), i << 20)
time.sleep(30)
PY
writer=$!
# The output is an unnamed file (O_TMPFILE) until committed: wait for the entry.
for i in $(seq 1 100); do [ -e "$M4/export/killed.vmdk" ] && break; sleep 0.05; done
sleep 0.3
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
kill "$writer" 2>/dev/null || true
wait "$writer" 2>/dev/null || true
umount -l "$M4" 2>/dev/null || fusermount3 -u -z "$M4" 2>/dev/null || true
[ ! -e "$OUT/killed.vmdk" ] || fail "a killed mount left killed.vmdk"
ls -A "$OUT" | grep '^\.' >/dev/null && fail "a killed mount left a temporary file: $(ls -A "$OUT")"
echo "export/ behaves"
