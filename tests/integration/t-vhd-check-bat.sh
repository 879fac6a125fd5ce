#!/usr/bin/env bash
# vdisk check on a VHD whose BAT entry points far past the end of the file:
# one ERROR line for that entry (exit 2) and no invented "unused bytes" leak
# (the block was never part of the file). Image made by qemu-img.
. "$VD_TEST_LIB"
need qemu-img python3

qemu-img create -q -f vpc -o subformat=dynamic "$T/d.vhd" 20M
qemu-io -f vpc -c 'write -P 0x5a 0 4M' "$T/d.vhd" >/dev/null
# The BAT sits at the dynamic header's table offset; entry 0 -> sector 0x7ffffff0.
python3 - "$T/d.vhd" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(512 + 16)
bat = struct.unpack(">Q", f.read(8))[0]
f.seek(bat)
f.write(struct.pack(">I", 0x7ffffff0))
PY
rc=0
out=$("$VDISK" check "$T/d.vhd") || rc=$?
assert_eq "$rc" 2 "check exit code"
echo "$out" | grep -q "^ERROR: vhd: d.vhd: BAT entry 0: block at offset 1099511619584 extends past end of data" ||
    fail "no past-end line: $out"
if echo "$out" | grep -q "unused bytes"; then fail "invented a leak: $out"; fi
echo PASS
