#!/usr/bin/env bash
# Overlays know an S3 source by its ETag (issue 9 point 7). An overlay made
# over s3://vdtest/img/s.raw holds a copy of block 5; the object is then
# replaced by one changed inside block 5 away from the written bytes: the
# new ETag makes the overlay read the block back, and the mount is refused
# naming both ETags, the block and the object. An upload changed only
# outside the held block attaches (the block reads back as copied), and
# its view is the new object with the edits (dd on a raw copy is the
# oracle).
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need_fuse
s3_start

B=65536
URI=s3://vdtest/img/s.raw
OVL=$T/o.ovl
M=$T/mnt
head -c $((8 << 20)) /dev/urandom >"$T/s.raw"
cp "$T/s.raw" "$T/want.raw"
head -c 100 /dev/urandom >"$T/small"
s3_put "$T/s.raw" img/s.raw
put() { dd if="$3" of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc status=none; }
scribble() { printf 'ZZZZ' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

vmount "$M" -o overlay="$OVL" "$URI"
put "$M/s/disk.raw" $((5 * B + 1000)) "$T/small"
vumount "$M"
put "$T/want.raw" $((5 * B + 1000)) "$T/small"
assert_eq "$("$VDISK" hash --overlay "$OVL" "$URI" | cut -d' ' -f1)" "$(sha "$T/want.raw")" \
    "the same object"

# Replaced by bytes changed inside block 5: refused.
cp "$T/s.raw" "$T/c.raw"
scribble "$T/c.raw" $((5 * B + 40000))
s3_put "$T/c.raw" img/s.raw
out=$("$VDISKFS" -o overlay="$OVL" "$URI" "$M" 2>&1) && {
    vumount "$M"
    fail "an object changed in a held block was accepted"
}
for p in "vdiskfs: overlay: $OVL: disk s/disk: the source changed since the overlay copied blocks of it (ETag \"" \
    "\", now \"" "block 5 (bytes 327680-393215) no longer holds what was copied" \
    "mount the source the overlay was made with ($URI), or use a new overlay file"; do
    grep -qF -- "$p" <<<"$out" || fail "message lacks '$p': $out"
done

# Replaced by bytes changed only in block 20: the held block matches.
cp "$T/s.raw" "$T/d.raw"
scribble "$T/d.raw" $((20 * B + 9))
s3_put "$T/d.raw" img/s.raw
scribble "$T/want.raw" $((20 * B + 9))
vmount "$M" -o overlay="$OVL" "$URI"
assert_eq "$(sha "$M/s/disk.raw")" "$(sha "$T/want.raw")" "a new upload, held block unchanged"
vumount "$M"
echo "an S3 source changed in a held block is refused by ETag and digest"
