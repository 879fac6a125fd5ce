#!/bin/bash
# Overlays know their source (issue 9 point 7). An overlay write copies a
# 64 KiB block of the source; if the source then changes inside that block,
# elsewhere than the written bytes, a remount would show old overlay bytes
# beside new source bytes. Such a source is refused with a message naming
# the overlay, the disk, what changed and the block; a source written in
# place is refused even where the overlay holds no copy (unless it holds no
# block at all). A copy, a rename and a conversion to VHD with the same
# content still attach, and their view is checked against dd on a raw copy and, for the VHD, against
# qemu-img. A block the overlay holds whole does not care about the source.
# A VHD chain whose parent changes inside a held block is refused ("a
# parent image changed"), and so is a monolithicFlat VMDK whose flat
# extent changes there, though its descriptor does not.
. "$VD_TEST_LIB"
need_fuse
need qemu-img

B=65536
SRC=$T/s.raw
OVL=$T/o.ovl
M=$T/mnt
# 8 MiB: the fingerprint samples 4 KiB at multiples of 559240 and 64 KiB at
# each end; blocks 5 (327680..) and 9 (589824..) hold none of them.
head -c $((8 << 20)) /dev/urandom >"$SRC"
cp "$SRC" "$T/orig.raw"
cp "$SRC" "$T/want.raw"
head -c 100 /dev/urandom >"$T/small"
head -c $B /dev/urandom >"$T/whole"

# put FILE OFF DATAFILE: write DATAFILE's bytes at OFF, in place.
put() { dd if="$3" of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc status=none; }
# scribble FILE OFF: four new bytes at OFF, in place.
scribble() { printf 'ZZZZ' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# refused WHAT URI PATTERN...: a mount of URI with the overlay fails, and
# its message has every PATTERN (fixed strings).
refused() {
    local what=$1 uri=$2 out p
    shift 2
    out=$("$VDISKFS" -o overlay="$OVL" "$uri" "$M" 2>&1) && {
        vumount "$M"
        fail "$what: accepted"
    }
    for p in "$@"; do
        grep -qF -- "$p" <<<"$out" || fail "$what: message lacks '$p': $out"
    done
}

# An overlay that holds no block yet does not mind a touched source.
vmount "$M" -o overlay="$OVL" "$SRC"
vumount "$M"
touch "$SRC"

# 100 bytes inside block 5 (the rest of it is copied from the source), and
# all of block 9 (nothing of the source's is kept).
vmount "$M" -o overlay="$OVL" "$SRC"
put "$M/s/disk.raw" $((5 * B + 1000)) "$T/small"
put "$M/s/disk.raw" $((9 * B)) "$T/whole"
vumount "$M"
put "$T/want.raw" $((5 * B + 1000)) "$T/small"
put "$T/want.raw" $((9 * B)) "$T/whole"
WANT=$(sha "$T/want.raw")
assert_eq "$("$VDISK" hash --overlay "$OVL" "$SRC" | cut -d' ' -f1)" "$WANT" "edits, same source"

# A copy changed inside block 5, away from the written bytes: refused.
cp "$T/orig.raw" "$T/c.raw"
scribble "$T/c.raw" $((5 * B + 40000))
refused "copy changed in a held block" "$T/c.raw" \
    "vdiskfs: overlay: $OVL: disk s/disk: the source changed since the overlay copied blocks of it (another file (device:inode " \
    "block 5 (bytes 327680-393215) no longer holds what was copied" \
    "mount the source the overlay was made with ($SRC), or use a new overlay file"
out=$("$VDISK" hash --overlay "$OVL" "$T/c.raw" 2>&1) && fail "vdisk hash: a changed copy accepted"
grep -qF "block 5 (bytes 327680-393215) no longer holds what was copied" <<<"$out" ||
    fail "vdisk hash message: $out"

# A copy changed only inside block 9, which the overlay holds whole: the
# change is never visible, so it attaches; the view is the edits over it.
cp "$T/orig.raw" "$T/c9.raw"
scribble "$T/c9.raw" $((9 * B + 100))
vmount "$M" -o overlay="$OVL" "$T/c9.raw"
assert_eq "$(sha "$M/c9/disk.raw")" "$WANT" "copy changed in a block held whole"
vumount "$M"

# A copy, renamed; the source converted to a fixed VHD: the same content,
# so they attach and show the edits (qemu-img reads the VHD as it is).
cp "$T/orig.raw" "$T/copy.raw"
mv "$T/copy.raw" "$T/renamed.raw"
assert_eq "$("$VDISK" hash --overlay "$OVL" "$T/renamed.raw" | cut -d' ' -f1)" "$WANT" \
    "renamed copy"
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$T/orig.raw" "$T/conv.vhd"
assert_eq "$(qemu_raw_sha "$T/conv.vhd" vpc)" "$(sha "$T/orig.raw")" "qemu-img reads the VHD"
vmount "$M" -o overlay="$OVL" "$T/conv.vhd"
assert_eq "$(sha "$M/conv/disk.raw")" "$WANT" "converted to VHD"
vumount "$M"

# The source itself written in place inside block 5: refused, naming mtime
# and the block.
scribble "$SRC" $((5 * B + 40000))
refused "source written in block 5" "$SRC" \
    "vdiskfs: overlay: $OVL: disk s/disk: $SRC was written after the overlay copied blocks of it (mtime " \
    "; block 5 (bytes 327680-393215) differs): the edits would mix with bytes they were not made against; restore the source, or use a new overlay file"
# Written back to its old bytes (cp over it: same inode, new mtime): the
# overlay cannot tell what happened in between, so it still refuses, and
# says no held block differs.
cp "$T/orig.raw" "$SRC"
refused "source rewritten in place" "$SRC" "$SRC was written after the overlay copied blocks of it (mtime "
out=$("$VDISKFS" -o overlay="$OVL" "$SRC" "$M" 2>&1) || true
grep -qF "differs" <<<"$out" && fail "rewritten source: a block named: $out"

# Written in place where the overlay holds nothing (block 20): refused too.
cp "$T/orig.raw" "$T/w.raw"
rm -f "$OVL"
vmount "$M" -o overlay="$OVL" "$T/w.raw"
put "$M/w/disk.raw" $((5 * B + 1000)) "$T/small"
vumount "$M"
scribble "$T/w.raw" $((20 * B + 7))
refused "source written outside held blocks" "$T/w.raw" \
    "disk w/disk: $T/w.raw was written after the overlay copied blocks of it (mtime "
# A VHD chain (vhd_craft.py writes the child, over a fixed parent whose
# data lies as raw bytes in its file). The parent changes, in place, in a
# sector of block 5 the child does not hold: refused, the child's file
# being unchanged. (A VMDK chain would be refused by the VMDK driver
# itself: its parent's CID changes with any write.)
need python3
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$T/orig.raw" "$T/p.vhd"
python3 "$(dirname "$0")/vhd_craft.py" child "$T/c.vhd" "$T/p.vhd" "$T/orig.raw" "$T/c.expect" \
    --loc 'W2ru=p.vhd' --seed 5
# A sector of block 5, away from the written bytes, read from the parent.
off=$(python3 - "$T/c.expect" "$T/orig.raw" <<'PY'
import sys
a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
for s in range(5 * 128 + 8, 6 * 128):
    o = s * 512
    if a[o:o + 512] == b[o:o + 512]:
        print(o + 100)
        break
PY
)
[ -n "$off" ] || fail "the child holds every sector of block 5"
rm -f "$OVL"
vmount "$M" -o overlay="$OVL" "$T/c.vhd"
put "$M/c/disk.raw" $((5 * B + 1000)) "$T/small"
vumount "$M"
scribble "$T/p.vhd" "$off"
refused "parent changed in a held block" "$T/c.vhd" \
    "disk c/disk: the source changed since the overlay copied blocks of it (a parent image changed (1 parents, now 1)): block 5 (bytes 327680-393215) no longer holds what was copied"

# monolithicFlat: the descriptor is the identity; the flat extent changed
# inside block 5 is found by reading the held block back.
qemu-img convert -f raw -O vmdk -o subformat=monolithicFlat "$T/orig.raw" "$T/flat.vmdk"
[ -f "$T/flat-flat.vmdk" ] || fail "qemu-img wrote no flat extent"
rm -f "$OVL"
vmount "$M" -o overlay="$OVL" "$T/flat.vmdk"
put "$M/flat/disk.raw" $((5 * B + 1000)) "$T/small"
vumount "$M"
scribble "$T/flat-flat.vmdk" $((5 * B + 40000))
refused "flat extent changed in a held block" "$T/flat.vmdk" \
    "disk flat/disk: the source changed since the overlay copied blocks of it (its extent files are not in its identity): block 5 (bytes 327680-393215) no longer holds what was copied"
echo "changed sources refused; copies, renames and conversions with the same content attach"
