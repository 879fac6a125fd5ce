#!/bin/bash
# Azure (issue 13): `vdisk convert -O vhd -o target=azure` and the mount's
# export/ with -o target=azure write a fixed VHD of a whole MiB that
# qemu-img reads back to the source bytes (padded with zeros), with the
# footer Azure reads; vhd_type=dynamic with it is refused; rounding is
# reported. `vdisk preflight --target azure` passes qemu-img's fixed VHDs of
# whole MiB and ours, and refuses (exit 2, with Azure's own text) a size
# that is not a whole MiB, a CHS-rounded qemu VHD, a dynamic VHD, a VHDX, a
# disk under 20 MiB, and a file whose length disagrees with its footer.
. "$VD_TEST_LIB"
need qemu-img python3

MIB=1048576
ODD=$((24 * MIB + 12345)) # not a whole MiB, nor a whole sector
SRC=$T/src.raw
head -c $ODD /dev/urandom > "$SRC"

# footer FILE: "cookie type current_size original_size creator data_offset"
# of the last 512 bytes (Hard Disk Footer Format), read independently.
footer() {
    python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    f.seek(-512, 2)
    b = f.read(512)
print(b[0:8].decode(), struct.unpack(">I", b[60:64])[0], struct.unpack(">Q", b[48:56])[0],
      struct.unpack(">Q", b[40:48])[0], b[28:32].decode(), "%x" % struct.unpack(">Q", b[16:24])[0])
PY
}
# want_raw VHD: qemu-img's raw content is SRC followed by zeros to a whole MiB.
want_raw() {
    qemu-img convert -f vpc -O raw "$1" "$T/back.raw"
    assert_eq "$(stat -c %s "$T/back.raw")" $((25 * MIB)) "$1: qemu-img's virtual size"
    cmp -n $ODD "$SRC" "$T/back.raw" || fail "$1: data differs from the source"
    [ "$(tail -c +$((ODD + 1)) "$T/back.raw" | tr -d '\0' | wc -c)" = 0 ] ||
        fail "$1: the rounding pad is not zeros"
    rm -f "$T/back.raw"
}

# ---- vdisk convert ----
"$VDISK" convert -q -O vhd -o target=azure "$SRC" "$T/az.vhd" 2> "$T/err" ||
    fail "convert target=azure: $(cat "$T/err")"
grep -q "warning: $T/az.vhd: target=azure: virtual size $ODD bytes rounded up to $((25 * MIB))" \
    "$T/err" || fail "no rounding warning: $(cat "$T/err")"
assert_eq "$(stat -c %s "$T/az.vhd")" $((25 * MIB + 512)) "az.vhd file size"
assert_eq "$(footer "$T/az.vhd")" "conectix 2 $((25 * MIB)) $((25 * MIB)) win  ffffffffffffffff" \
    "az.vhd footer"
assert_eq "$(qemu-img info -f vpc --output=json "$T/az.vhd" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" $((25 * MIB)) "qemu-img info"
want_raw "$T/az.vhd"
"$VDISK" preflight --target azure "$T/az.vhd" > "$T/pf" || fail "ours not ready: $(cat "$T/pf")"

# A whole MiB is not rounded, and says nothing.
head -c $((21 * MIB)) "$SRC" > "$T/whole.raw"
"$VDISK" convert -q -o target=azure "$T/whole.raw" "$T/whole.vhd" 2> "$T/err"
[ ! -s "$T/err" ] || fail "warning for a whole MiB: $(cat "$T/err")"
assert_eq "$(footer "$T/whole.vhd")" "conectix 2 $((21 * MIB)) $((21 * MIB)) win  ffffffffffffffff" \
    "whole.vhd footer"

# target=azure with a dynamic VHD is refused, and leaves nothing.
if "$VDISK" convert -q -o target=azure,vhd_type=dynamic "$SRC" "$T/dyn.vhd" 2> "$T/err"; then
    fail "target=azure,vhd_type=dynamic accepted"
fi
grep -q "target=azure needs a fixed VHD" "$T/err" || fail "refusal text: $(cat "$T/err")"
[ ! -e "$T/dyn.vhd" ] || fail "dyn.vhd left behind"
# ... and target=azure for another format is refused, not ignored.
"$VDISK" convert -q -o target=azure "$SRC" "$T/az.vhdx" 2> /dev/null && fail "target=azure for vhdx"

# Past Hyper-V's 2040 GiB (a limit of the dynamic BAT) up to Azure's 32 TiB:
# a fixed VHD of 3 TiB (sparse here), which preflight passes with a note.
# qemu-img refuses every VHD over 2040 GiB, so the footer is read by hand.
truncate -s 3T "$T/big.raw"
head -c $MIB /dev/urandom | dd of="$T/big.raw" bs=1M seek=$((3 * 1024 * 1024 - 1)) conv=notrunc status=none
"$VDISK" convert -q -o target=azure "$T/big.raw" "$T/big.vhd" || fail "3 TiB with target=azure"
assert_eq "$(footer "$T/big.vhd")" "conectix 2 $((3 << 40)) $((3 << 40)) win  ffffffffffffffff" \
    "big.vhd footer"
cmp <(tail -c $((MIB + 512)) "$T/big.vhd" | head -c $MIB) <(tail -c $MIB "$T/big.raw") ||
    fail "big.vhd: the last MiB"
"$VDISK" preflight --target azure --json "$T/big.vhd" > "$T/pf.json" || fail "big.vhd not ready"
grep -q '"severity": "note"' "$T/pf.json" || fail "no OS-disk note for 3 TiB"
rm -f "$T/big.vhd"
"$VDISK" convert -q -o vhd_type=fixed "$T/big.raw" "$T/big.vhd" 2> /dev/null &&
    fail "a 3 TiB VHD without target=azure (Hyper-V's limit is 2040 GiB)"
rm -f "$T/big.raw" "$T/big.vhd"

# ---- the mount's export/ ----
if [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    OUT=$T/out M=$T/mnt
    mkdir -p "$OUT"
    vmount "$M" -o export="$OUT",target=azure "$SRC"
    cp "$SRC" "$M/export/m.vhd"
    status=$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vdisk.status").decode())' \
        "$M/export/m.vhd")
    case "$status" in done*) ;; *) fail "export status: $status" ;; esac
    vumount "$M"
    assert_eq "$(footer "$OUT/m.vhd")" "conectix 2 $((25 * MIB)) $((25 * MIB)) win  ffffffffffffffff" \
        "export m.vhd footer"
    want_raw "$OUT/m.vhd"
else
    echo "note: no FUSE here, export/ part not run"
fi

# ---- preflight --target azure against qemu-img's VHDs ----
# pf FILE EXIT CHECK: preflight exits EXIT and (when EXIT is 2) names CHECK.
pf() {
    local rc=0
    "$VDISK" preflight --target azure --json "$1" > "$T/pf.json" || rc=$?
    assert_eq "$rc" "$2" "preflight exit for $(basename "$1"): $(cat "$T/pf.json")"
    [ "$2" = 0 ] && return 0
    python3 - "$T/pf.json" "$3" "$4" <<'PY' || fail "$(basename "$1"): no $3 finding: $(cat "$T/pf.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["target"] == "azure"
hits = [f for f in j["findings"] if f["check"] == sys.argv[2] and f["severity"] == "would-fail"]
assert hits and sys.argv[3] in hits[0]["aws_text"], hits
PY
}
Q="qemu-img create -q -f vpc"
$Q -o subformat=fixed,force_size=on "$T/q-good.vhd" 64M
pf "$T/q-good.vhd" 0
$Q -o subformat=fixed,force_size=on "$T/q-odd.vhd" $((64 * MIB + 512))
pf "$T/q-odd.vhd" 2 azure-size-mib "The size must be a whole number (in MBs)"
$Q -o subformat=fixed "$T/q-chs.vhd" 64M # CHS-rounded: 67125248 bytes
pf "$T/q-chs.vhd" 2 azure-size-mib "unsupported virtual size of 67125248 bytes"
$Q -o subformat=fixed,force_size=on "$T/q-small.vhd" 10M
pf "$T/q-small.vhd" 2 azure-disk-size "20972032"
$Q -o subformat=dynamic,force_size=on "$T/q-dyn.vhd" 64M
pf "$T/q-dyn.vhd" 2 azure-fixed "only fixed VHD"
qemu-img create -q -f vhdx "$T/q.vhdx" 64M
pf "$T/q.vhdx" 2 azure-format "VHDX format isn't supported"
"$VDISK" convert -q "$T/whole.raw" "$T/ours-dyn.vhd" # our default: dynamic
pf "$T/ours-dyn.vhd" 2 azure-fixed "only fixed VHD"
# A fixed VHD whose data area is longer than its footer says (65 MiB of
# data, current size 64 MiB): Azure would size the disk from the length.
{ head -c $((65 * MIB)) /dev/zero; tail -c 512 "$T/q-good.vhd"; } > "$T/long.vhd"
pf "$T/long.vhd" 2 azure-upload-size ""
{ head -c $((65 * MIB + 4096)) /dev/zero; tail -c 512 "$T/q-good.vhd"; } > "$T/long2.vhd"
pf "$T/long2.vhd" 2 azure-upload-size "must be a multiple of MiB"

echo "target=azure and preflight --target azure behave"
