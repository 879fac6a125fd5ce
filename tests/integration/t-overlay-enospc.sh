#!/bin/bash
# A full overlay filesystem reaches the writer as ENOSPC, not EIO (issue 9
# point 12). The overlay file lives on a 2 MiB tmpfs; 100-byte writes into
# 48 blocks of disk.raw through a real mount each copy a 64 KiB block, so
# the tmpfs fills after about 28. The first failing write(2) must say "No
# space left on device"; the writes accepted before it, and an fsync'd
# rewrite of a held block after it, are all there after a remount (compared
# with dd on a raw copy), and the blocks refused read as the source.
. "$VD_TEST_LIB"
need_fuse
[ "$(id -u)" -eq 0 ] || skip "mounting a tmpfs needs root"

B=65536
SRC=$T/s.raw
head -c $((8 << 20)) /dev/urandom >"$SRC"
cp "$SRC" "$T/want.raw"
SMALL=$T/fs
mkdir -p "$SMALL"
mount -t tmpfs -o size=2m tmpfs "$SMALL" || fail "mount -t tmpfs -o size=2m"
MOUNTS+=("$SMALL")
OVL=$SMALL/o.ovl
M=$T/mnt
vmount "$M" -o overlay="$OVL" "$SRC"

ok=0 failed_at=
for i in $(seq 0 47); do
    head -c 100 /dev/urandom >"$T/piece"
    if dd if="$T/piece" of="$M/s/disk.raw" bs=100 seek=$((i * B + 7)) oflag=seek_bytes \
        conv=notrunc status=none 2>"$T/err"; then
        dd if="$T/piece" of="$T/want.raw" bs=100 seek=$((i * B + 7)) oflag=seek_bytes \
            conv=notrunc status=none
        ok=$((ok + 1))
        [ -z "$failed_at" ] || fail "block $i written after block $failed_at was refused"
    else
        grep -q "No space left on device" "$T/err" ||
            fail "write into block $i: want ENOSPC, got: $(cat "$T/err")"
        failed_at=${failed_at:-$i}
    fi
done
[ -n "$failed_at" ] || fail "48 blocks fit in a 2 MiB overlay filesystem?"
[ "$ok" -ge 20 ] || fail "only $ok blocks written before ENOSPC"
# A held block is rewritten in place and synced: no new space needed.
head -c 100 /dev/urandom >"$T/piece"
dd if="$T/piece" of="$M/s/disk.raw" bs=100 seek=$((3 * B + 7)) oflag=seek_bytes conv=notrunc,fsync \
    status=none 2>"$T/err" || fail "fsync'd rewrite of a held block: $(cat "$T/err")"
dd if="$T/piece" of="$T/want.raw" bs=100 seek=$((3 * B + 7)) oflag=seek_bytes conv=notrunc \
    status=none
vumount "$M"

vmount "$M" -o overlay="$OVL" "$SRC"
assert_eq "$(sha "$M/s/disk.raw")" "$(sha "$T/want.raw")" "view after ENOSPC and a remount"
vumount "$M"
echo "ENOSPC after $ok blocks reached the writer; accepted writes kept"
