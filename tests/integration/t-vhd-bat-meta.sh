#!/bin/bash
# Issue 9, point 3: a BAT entry pointing into the image's own metadata (the
# dynamic header, the BAT, the footer copy at 0, the footer at the end).
# Reads of that block fail with EIO naming the BAT entry, through `vdisk
# hash` and through a mount, and never serve the metadata's bytes; other
# blocks still read; `vdisk check` reports it corrupt; `-o rw` is refused at
# open and the file stays byte-identical. Each image is a sound one from
# vhd_craft.py with ONE BAT entry changed (vhd_craft.py setbat).
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || skip "vdisk CLI not built ($VDISK)"
need python3
CRAFT="$(dirname "$0")/vhd_craft.py"
TAIL="refused, its bytes are the image's own metadata (the image is corrupt or crafted: see vdisk check)"

vdisk_err() {
    local out
    if out=$("$VDISK" hash --sha256 -q "$1" 2>&1 >/dev/null); then
        fail "vdisk hash $1 succeeded, expected an error"
    fi
    echo "$out"
}
expect_check() { # IMAGE RC EXPECTED_OUTPUT
    local out rc=0
    out=$("$VDISK" check "$1" 2>&1) || rc=$?
    assert_eq "$rc" "$2" "check exit code for $(basename "$1") (output: $out)"
    assert_eq "$out" "$3" "check output for $(basename "$1")"
}

# 6 MiB, data in each of the three 2 MiB blocks. Layout: footer copy 0,
# dynamic header 512, BAT 1536 (3 entries, padded to 2048), block 0 at
# 2048, block 1 at 2099712, block 2 at 4197376, footer at SIZE-512.
RAW=$T/disk.raw
truncate -s 6M "$RAW"
python3 - "$RAW" <<'EOF'
import random, sys
r = random.Random(7)
with open(sys.argv[1], 'r+b') as f:
    for off in (0, 0x200000 + 0x1234, 0x5FF000):
        f.seek(off)
        f.write(r.randbytes(0x1000))
EOF
python3 "$CRAFT" dynamic "$T/good.vhd" "$RAW" --uuid 0123456789abcdef0123456789abcdef
assert_eq "$("$VDISK" hash --sha256 -q "$T/good.vhd" | cut -d' ' -f1)" "$(sha "$RAW")" "sound image"
SIZE=$(stat -c %s "$T/good.vhd")

# BAT entry 1 -> sector 1 (the dynamic header), 3 (the BAT), 0 (the footer
# copy), and the sector of the footer at the end of the file.
for c in hdr:1 bat:3 copy:0 tail:$(((SIZE - 512) / 512)); do
    cp "$T/good.vhd" "$T/${c%%:*}.vhd"
    python3 "$CRAFT" setbat "$T/${c%%:*}.vhd" 1 "${c#*:}"
done
assert_eq "$(vdisk_err "$T/hdr.vhd")" \
    "vdisk: vhd: hdr.vhd: BAT entry 1: block at offset 512 overlaps the dynamic header (512..1536); $TAIL" \
    "block over the dynamic header"
assert_eq "$(vdisk_err "$T/bat.vhd")" \
    "vdisk: vhd: bat.vhd: BAT entry 1: block at offset 1536 overlaps the BAT (1536..2048); $TAIL" \
    "block over the BAT"
assert_eq "$(vdisk_err "$T/copy.vhd")" \
    "vdisk: vhd: copy.vhd: BAT entry 1: block at offset 0 overlaps the footer copy (0..512); $TAIL" \
    "block over the footer copy"
assert_eq "$(vdisk_err "$T/tail.vhd")" \
    "vdisk: vhd: tail.vhd: BAT entry 1: block at offset $((SIZE - 512)) overlaps the footer at end of file ($((SIZE - 512))..$SIZE); $TAIL" \
    "block over the end-of-file footer"

expect_check "$T/hdr.vhd" 2 "ERROR: vhd: hdr.vhd: BAT entry 1: block at offset 512 overlaps the dynamic header (512..1536)
ERROR: vhd: hdr.vhd: BAT entry 1: block at offset 512 overlaps the BAT (1536..2048)
ERROR: vhd: hdr.vhd: BAT entry 0: block at offset 2048 overlaps the block of BAT entry 1 (512..2098176)
Leaked: vhd: hdr.vhd: 2097664 unused bytes at offset 2099712"
expect_check "$T/copy.vhd" 2 "ERROR: vhd: copy.vhd: BAT entry 1: block at offset 0 overlaps the footer copy (0..512)
ERROR: vhd: copy.vhd: BAT entry 1: block at offset 0 overlaps the dynamic header (512..1536)
ERROR: vhd: copy.vhd: BAT entry 1: block at offset 0 overlaps the BAT (1536..2048)
ERROR: vhd: copy.vhd: BAT entry 0: block at offset 2048 overlaps the block of BAT entry 1 (0..2097664)
Leaked: vhd: copy.vhd: 2097664 unused bytes at offset 2099712"
expect_check "$T/tail.vhd" 2 "ERROR: vhd: tail.vhd: BAT entry 1: block at offset $((SIZE - 512)) extends past end of data ($((SIZE - 512)) bytes)
Leaked: vhd: tail.vhd: 2097664 unused bytes at offset 2099712"

# Through a mount: block 0 reads the source's bytes, block 1 is EIO.
need_fuse
SUM=$(sha "$T/hdr.vhd")
M=$T/mnt
vmount "$M" "$T/hdr.vhd"
assert_eq "$(head -c 2097152 "$M/hdr/disk.raw" | sha256sum | cut -d' ' -f1)" \
    "$(head -c 2097152 "$RAW" | sha256sum | cut -d' ' -f1)" "block 0 through the mount"
if out=$(dd if="$M/hdr/disk.raw" of="$T/got" bs=4096 skip=512 count=1 iflag=direct 2>&1); then
    fail "block 1 read through the mount: $(od -An -c -N 16 "$T/got")"
fi
case $out in *"Input/output error"*) ;; *) fail "block 1 through the mount: $out" ;; esac
vumount "$M"

# -o rw: refused at open (the core runs check first), file untouched.
mkdir -p "$T/m2"
rc=0
out=$("$VDISKFS" -o rw "$T/hdr.vhd" "$T/m2" 2>&1) || rc=$?
if mountpoint -q "$T/m2"; then
    fusermount3 -u "$T/m2"
    fail "hdr.vhd mounted -o rw"
fi
[ "$rc" -ne 0 ] || fail "vdiskfs -o rw exited 0: $out"
case $out in
*"hdr.vhd: refusing to open for writing: \`vdisk check\` finds 3 problems (first: vhd: hdr.vhd: BAT entry 1: block at offset 512 overlaps the dynamic header (512..1536)); open it read-only, or write through an overlay (-o overlay=FILE)"*) ;;
*) fail "rw refusal: $out" ;;
esac
assert_eq "$(sha "$T/hdr.vhd")" "$SUM" "file after the refused rw open"
echo "ok: BAT entries into metadata refused"
