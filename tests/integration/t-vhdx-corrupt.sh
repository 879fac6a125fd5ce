#!/bin/bash
# Damaged VHDX files fail (or are checked) with exact messages.
. "$VD_TEST_LIB"
need qemu-img qemu-io python3
GEN="$VD_TEST_DATA/gen-vhdx.py"

qemu-img create -q -f vhdx -o block_size=1M "$T/ok.vhdx" 4M
qemu-io -f vhdx -c 'write -P 0x42 0 4M' "$T/ok.vhdx" >/dev/null
want=$(qemu_raw_sha "$T/ok.vhdx" vhdx)

expect_fail() { # NAME MESSAGE
    local out
    out=$("$VDISK" hash --sha256 "$T/$1.vhdx" 2>&1) && fail "$1 opened: $out"
    assert_eq "$out" "vdisk: $2" "$1"
}
mk() { python3 "$GEN" corrupt "$1" "$T/ok.vhdx" "$T/$1.vhdx"; }

# One bad header or region table: the other copy is used, check reports it.
mk hdr1
assert_eq "$("$VDISK" hash --sha256 "$T/hdr1.vhdx" | cut -d' ' -f1)" "$want" "one bad header"
set +e; out=$("$VDISK" check "$T/hdr1.vhdx"); rc=$?; set -e
assert_eq "$rc" 2 "check exit code for a bad header"
assert_eq "$out" "ERROR: vhdx: hdr1.vhdx: header 1 at offset 65536: bad checksum" "check hdr1"
mk region1
assert_eq "$("$VDISK" hash --sha256 "$T/region1.vhdx" | cut -d' ' -f1)" "$want" "one bad region table"
set +e; out=$("$VDISK" check "$T/region1.vhdx"); rc=$?; set -e
assert_eq "$rc" 2 "check exit code for a bad region table"
assert_eq "$out" "ERROR: vhdx: region1.vhdx: region table 1 at offset 196608: bad checksum" "check region1"

mk hdr-both
expect_fail hdr-both "vhdx: hdr-both.vhdx: both headers are invalid (header 1: bad checksum, header 2: bad checksum)"
mk region-both
expect_fail region-both "vhdx: region-both.vhdx: both region tables are invalid (region table 1: bad checksum, region table 2: bad checksum)"
mk blocksize
expect_fail blocksize "vhdx: blocksize.vhdx: block size 3145728 is invalid (must be a power of two from 1 MiB to 256 MiB)"
mk required-meta
expect_fail required-meta "vhdx: required-meta.vhdx: unknown required metadata item {11111111-2222-3333-4444-555555555555}"
mk required-region
expect_fail required-region "vhdx: required-region.vhdx: region table 1: unknown required region {11111111-2222-3333-4444-555555555555}"

# A BAT entry past the end of file: opens (the rest is readable), reading
# that block fails, check lists it.
mk bat-eof
expect_fail bat-eof "vhdx: bat-eof.vhdx: BAT entry 1 (payload block 1) points to file offset 4294967296, past end of file ($(stat -c %s "$T/bat-eof.vhdx") bytes)"
"$VDISK" info --json "$T/bat-eof.vhdx" | grep -qF '"blocks_past_eof": 1' || fail "blocks_past_eof"
set +e; out=$("$VDISK" check "$T/bat-eof.vhdx"); rc=$?; set -e
assert_eq "$rc" 2 "check exit code for bat-eof"
assert_eq "$out" "ERROR: vhdx: bat-eof.vhdx: BAT entry 1 points to file offset 4294967296, past end of file ($(stat -c %s "$T/bat-eof.vhdx") bytes)" "check bat-eof"

# Truncated files.
head -c 3000000 "$T/ok.vhdx" >"$T/trunc.vhdx"
expect_fail trunc "vhdx: trunc.vhdx: BAT region (offset 2097152, 1048576 bytes) is past end of file (3000000 bytes)"
head -c 100000 "$T/ok.vhdx" >"$T/short.vhdx"
expect_fail short "vhdx: short.vhdx: file is 100000 bytes, shorter than the 1 MiB header area"

# Two blocks claiming the same file offset.
cp "$T/ok.vhdx" "$T/overlap.vhdx"
python3 - "$T/overlap.vhdx" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
d = f.read()
# find the BAT via region table 1 (entries at 16, 32 bytes each)
for i in range(struct.unpack_from("<I", d, 192 * 1024 + 8)[0]):
    e = 192 * 1024 + 16 + 32 * i
    if d[e:e + 4] == bytes.fromhex("6677c22d"):
        bat = struct.unpack_from("<Q", d, e + 16)[0]
b0 = struct.unpack_from("<Q", d, bat)[0]
f.seek(bat + 8 * 2)
f.write(struct.pack("<Q", b0))
PY
set +e; out=$("$VDISK" check "$T/overlap.vhdx"); rc=$?; set -e
assert_eq "$rc" 2 "check exit code for overlapping blocks"
grep -q "^ERROR: vhdx: overlap.vhdx: BAT entry 2 (payload block 2) overlaps BAT entry 0 (payload block 0) at file offset [0-9]*$" <<<"$out" \
    || fail "overlap message: $out"

# A sector bitmap allocated in a non-differencing disk: unused space (3).
qemu-img create -q -f vhdx -o block_size=1M "$T/big.vhdx" 5G
python3 - "$T/big.vhdx" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
d = f.read()
for i in range(struct.unpack_from("<I", d, 192 * 1024 + 8)[0]):
    e = 192 * 1024 + 16 + 32 * i
    if d[e:e + 4] == bytes.fromhex("6677c22d"):
        bat = struct.unpack_from("<Q", d, e + 16)[0]
end = (len(d) + (1 << 20) - 1) >> 20 << 20
f.truncate(end + (1 << 20))
f.seek(bat + 8 * 4096)  # chunk_ratio 4096: entry 4096 is the first sector bitmap
f.write(struct.pack("<Q", 6 | (end >> 20) << 20))
PY
set +e; out=$("$VDISK" check "$T/big.vhdx"); rc=$?; set -e
assert_eq "$rc" 3 "check exit code for a leaked sector bitmap"
assert_eq "$out" "Leaked: vhdx: big.vhdx: BAT entry 4096 allocates a sector bitmap in a disk without a parent (unused space)" "leak message"

# A log entry with a bad CRC is not replayed (t-vhdx-log.sh checks the data).
echo "PASS"
