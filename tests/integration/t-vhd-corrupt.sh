#!/bin/bash
# Damaged VHDs: each one either opens with a recovery note and reads the
# right bytes, or fails with an exact message; `vdisk check` reports each
# problem on one line with qemu-img check's exit codes (2 corrupt, 3 leaks).
# Images come from the spec writer vhd_craft.py with fixed unique ids so the
# checksums in the messages are stable.
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || fail "vdisk CLI not built ($VDISK): build the tree first"
need python3
CRAFT="$(dirname "$0")/vhd_craft.py"
U=0123456789abcdef0123456789abcdef

vdisk_sha() { "$VDISK" hash --sha256 -q "$1" | cut -d' ' -f1; }
vdisk_err() {
    local out
    if out=$("$VDISK" hash --sha256 -q "$1" 2>&1 >/dev/null); then
        fail "vdisk hash $1 succeeded, expected an error"
    fi
    echo "$out"
}
# expect_check IMAGE RC EXPECTED_OUTPUT
expect_check() {
    local out rc=0
    out=$("$VDISK" check "$1" 2>&1) || rc=$?
    assert_eq "$rc" "$2" "check exit code for $(basename "$1") (output: $out)"
    assert_eq "$out" "$3" "check output for $(basename "$1")"
}
poke() { python3 "$CRAFT" poke "$@"; }

RAW=$T/disk.raw
truncate -s 6M "$RAW"
python3 - "$RAW" <<'EOF'
import random, sys
r = random.Random(5)
with open(sys.argv[1], 'r+b') as f:
    for off in (0, 0x200000 + 0x1234, 0x5FF000):
        f.seek(off)
        f.write(r.randbytes(0x1000))
EOF
RAW_SHA=$(sha "$RAW")
python3 "$CRAFT" dynamic "$T/good.vhd" "$RAW" --uuid $U
python3 "$CRAFT" fixed "$T/goodfix.vhd" "$RAW" --uuid $U
assert_eq "$(vdisk_sha "$T/good.vhd")" "$RAW_SHA" "sound dynamic disk"
expect_check "$T/good.vhd" 0 "No errors were found on the image."
SIZE=$(stat -c %s "$T/good.vhd")
# Layout from the writer: footer copy 0, header 512, BAT 1536 (3 entries,
# padded to 512), blocks at 2048, 2048+2 MiB+512, ... , footer at SIZE-512.

# Bad checksum in the end-of-file footer: the copy at offset 0 is used.
cp "$T/good.vhd" "$T/tailbad.vhd"
poke "$T/tailbad.vhd" -480 0007
assert_eq "$(vdisk_sha "$T/tailbad.vhd")" "$RAW_SHA" "copy at offset 0 used"
"$VDISK" info --json "$T/tailbad.vhd" | grep -q '"footer_copy_used": true' || fail "footer_copy_used"
expect_check "$T/tailbad.vhd" 2 "ERROR: vhd: tailbad.vhd: footer at end of file has a bad checksum (stored 0xfffff09c, computed 0xfffff09f); using the copy at offset 0"

# Last sector gone (truncated by one sector): the copy is used, noted.
cp "$T/good.vhd" "$T/nofoot.vhd"
truncate -s $((SIZE - 512)) "$T/nofoot.vhd"
assert_eq "$(vdisk_sha "$T/nofoot.vhd")" "$RAW_SHA" "no footer at end"
expect_check "$T/nofoot.vhd" 2 "ERROR: vhd: nofoot.vhd: no footer at end of file (truncated or damaged); using the copy at offset 0"

# Bad checksum in a fixed disk's footer (no copy exists): read anyway, like
# libvhdi, and reported.
cp "$T/goodfix.vhd" "$T/fixbad.vhd"
poke "$T/fixbad.vhd" -480 0007
assert_eq "$(vdisk_sha "$T/fixbad.vhd")" "$RAW_SHA" "fixed disk with bad footer checksum"
expect_check "$T/fixbad.vhd" 2 "ERROR: vhd: fixbad.vhd: footer checksum 0xffffe8a7 does not match computed 0xffffe8aa"

# No footer anywhere.
head -c 4096 /dev/zero >"$T/none.vhd"
assert_eq "$("$VDISK" hash -q -f vhd "$T/none.vhd" 2>&1 >/dev/null || true)" \
    "vdisk: vhd: none.vhd: no VHD footer ('conectix' cookie) at end of file or at offset 0" "no footer"

# Truncated in the middle: the last block is gone. Opens through the copy,
# then reading that block fails with a precise message.
cp "$T/good.vhd" "$T/trunc.vhd"
truncate -s $((2048 + 2 * (2097152 + 512) + 4096)) "$T/trunc.vhd"
assert_eq "$(vdisk_err "$T/trunc.vhd")" \
    "vdisk: vhd: trunc.vhd: BAT entry 2: block at offset 4197376 lies past end of file (4201472 bytes)" "truncated"
expect_check "$T/trunc.vhd" 2 "ERROR: vhd: trunc.vhd: no footer at end of file (truncated or damaged); using the copy at offset 0
ERROR: vhd: trunc.vhd: BAT entry 2: block at offset 4197376 extends past end of data (4201472 bytes)"

# BAT past end of file.
cp "$T/good.vhd" "$T/batfar.vhd"
poke "$T/batfar.vhd" 528 0000000010000000 --fix
assert_eq "$(vdisk_err "$T/batfar.vhd")" \
    "vdisk: vhd: batfar.vhd: BAT (3 entries at offset 268435456) extends past end of file ($SIZE bytes)" "BAT past EOF"

# Huge and non-power-of-two block sizes; a BAT too small for the disk.
cp "$T/good.vhd" "$T/huge.vhd"
poke "$T/huge.vhd" 544 40000000 --fix
assert_eq "$(vdisk_err "$T/huge.vhd")" \
    "vdisk: vhd: huge.vhd: block size 1073741824 is invalid (must be a power of two from 512 bytes to 256 MiB)" "huge block"
cp "$T/good.vhd" "$T/odd.vhd"
poke "$T/odd.vhd" 544 00300000 --fix
assert_eq "$(vdisk_err "$T/odd.vhd")" \
    "vdisk: vhd: odd.vhd: block size 3145728 is invalid (must be a power of two from 512 bytes to 256 MiB)" "3 MiB block"
cp "$T/good.vhd" "$T/small.vhd"
poke "$T/small.vhd" 540 00000002 --fix
assert_eq "$(vdisk_err "$T/small.vhd")" \
    "vdisk: vhd: small.vhd: BAT has 2 entries of 2097152 bytes, too few for the virtual size of 6291456 bytes" "BAT too small"
cp "$T/good.vhd" "$T/bigbat.vhd"
poke "$T/bigbat.vhd" 540 7fffffff --fix
assert_eq "$(vdisk_err "$T/bigbat.vhd")" \
    "vdisk: vhd: bigbat.vhd: BAT of 2147483647 entries exceeds the limit of 16777216" "BAT cap"

# Dynamic header offset past end of file; unsupported disk type.
cp "$T/good.vhd" "$T/hdrfar.vhd"
poke "$T/hdrfar.vhd" 16 0000000100000000 --fix
poke "$T/hdrfar.vhd" $((SIZE - 512 + 16)) 0000000100000000 --fix
assert_eq "$(vdisk_err "$T/hdrfar.vhd")" \
    "vdisk: vhd: hdrfar.vhd: dynamic header offset 4294967296 is past end of file ($SIZE bytes)" "header past EOF"
cp "$T/good.vhd" "$T/type5.vhd"
poke "$T/type5.vhd" 60 00000005 --fix
poke "$T/type5.vhd" $((SIZE - 512 + 60)) 00000005 --fix
assert_eq "$(vdisk_err "$T/type5.vhd")" "vdisk: vhd: type5.vhd: disk type 5 is not supported" "disk type"

# Bad dynamic-header checksum (like dfvfs/image-differential.vhd): read anyway.
cp "$T/good.vhd" "$T/hdrsum.vhd"
poke "$T/hdrsum.vhd" 1400 01
assert_eq "$(vdisk_sha "$T/hdrsum.vhd")" "$RAW_SHA" "bad header checksum read"
expect_check "$T/hdrsum.vhd" 2 "ERROR: vhd: hdrsum.vhd: dynamic header checksum 0xfffff474 does not match computed 0xfffff473"

# Footer copy differs (both checksums valid).
cp "$T/good.vhd" "$T/copydiff.vhd"
poke "$T/copydiff.vhd" 32 0007 --fix
assert_eq "$(vdisk_sha "$T/copydiff.vhd")" "$RAW_SHA" "copy differs, end-of-file footer used"
expect_check "$T/copydiff.vhd" 2 "ERROR: vhd: copydiff.vhd: footer copy at offset 0 differs from the footer at end of file"

# Overlapping BAT entries: block 1 points at block 0's data.
cp "$T/good.vhd" "$T/overlap.vhd"
poke "$T/overlap.vhd" 1540 00000004
expect_check "$T/overlap.vhd" 2 "ERROR: vhd: overlap.vhd: BAT entry 1: block at offset 2048 overlaps the block of BAT entry 0 (2048..2099712)
Leaked: vhd: overlap.vhd: 2097664 unused bytes at offset 2099712"

# Unused space only: block 2 unlinked from the BAT -> leak, exit 3.
cp "$T/good.vhd" "$T/leak.vhd"
poke "$T/leak.vhd" 1544 ffffffff
expect_check "$T/leak.vhd" 3 "Leaked: vhd: leak.vhd: 2097664 unused bytes at offset 4197376"

echo "ok: corrupt VHDs"
