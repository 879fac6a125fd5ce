#!/bin/bash
# An overlay over its quota reaches the writer as EDQUOT, not EIO (issue 9
# point 12). The overlay file lives in a btrfs subvolume limited to 2 MiB
# (a qgroup; this kernel has no other quota support). 100-byte writes into
# 48 blocks of disk.raw through a real mount, each fsync'd, copy a 64 KiB
# block each; the first to fail, at write(2) or fsync(2) (btrfs writes
# tables out of place, so a flush takes space too), must say "Disk quota
# exceeded". Every write that succeeded is there after a remount (compared
# with dd on a raw copy).
. "$VD_TEST_LIB"
need_fuse
need mkfs.btrfs btrfs losetup
[ "$(id -u)" -eq 0 ] || skip "mounting a btrfs image needs root"
grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
grep -qw btrfs /proc/filesystems || skip "this kernel has no btrfs"

B=65536
SRC=$T/s.raw
head -c $((8 << 20)) /dev/urandom >"$SRC"
cp "$SRC" "$T/want.raw"
truncate -s 256M "$T/fs.img"
mkfs.btrfs -q "$T/fs.img" >/dev/null 2>&1 || fail "mkfs.btrfs"
FS=$T/fs
mkdir -p "$FS"
mount -o loop "$T/fs.img" "$FS" || fail "mount -o loop of a btrfs image"
MOUNTS+=("$FS")
btrfs quota enable "$FS" || fail "btrfs quota enable"
btrfs subvolume create "$FS/sv" >/dev/null || fail "btrfs subvolume create"
btrfs qgroup limit 2M "$FS/sv" || fail "btrfs qgroup limit"
OVL=$FS/sv/o.ovl
M=$T/mnt
vmount "$M" -o overlay="$OVL" "$SRC"

ok=0 failed_at=
for i in $(seq 0 47); do
    head -c 100 /dev/urandom >"$T/piece"
    if dd if="$T/piece" of="$M/s/disk.raw" bs=100 seek=$((i * B + 7)) oflag=seek_bytes \
        conv=notrunc,fsync status=none 2>"$T/err"; then
        dd if="$T/piece" of="$T/want.raw" bs=100 seek=$((i * B + 7)) oflag=seek_bytes \
            conv=notrunc status=none
        ok=$((ok + 1))
    else
        grep -q "Disk quota exceeded" "$T/err" ||
            fail "write into block $i: want EDQUOT, got: $(cat "$T/err")"
        failed_at=$i
        break
    fi
done
[ -n "$failed_at" ] || fail "48 blocks fit in a 2 MiB quota?"
[ "$ok" -ge 5 ] || fail "only $ok blocks written before EDQUOT"
vumount "$M"
# Raise the limit (a remount may record nothing new, but be fair to it).
btrfs qgroup limit none "$FS/sv"

vmount "$M" -o overlay="$OVL" "$SRC"
# The refused write's block may or may not be there (its data reached the
# file but its fsync failed); every other block is as written.
cmp -l "$M/s/disk.raw" "$T/want.raw" >"$T/diff" 2>/dev/null || true
awk -v b=$B -v f="$failed_at" '{ if (int(($1 - 1) / b) != f) { print; exit 1 } }' "$T/diff" ||
    fail "view after EDQUOT differs outside block $failed_at: $(head -3 "$T/diff")"
vumount "$M"
echo "EDQUOT after $ok blocks reached the writer; accepted writes kept"
