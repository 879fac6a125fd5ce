#!/bin/bash
# vdisk convert round trips for every export format and subformat: a raw
# disk of random data with holes (odd size, so padding is exercised) and a
# real ext4 made with mkfs.ext4 -d, encoded by `vdisk convert`, then read
# back by our own reader (vdisk hash) and by independent oracles:
# qemu-img convert -O raw, qemu-img check, vmdkmount, vhdimount.
. "$VD_TEST_LIB"
need qemu-img mkfs.ext4 sha256sum tar

# Source 1: random data with holes, 6 MiB + 12345 bytes.
R=$T/rand.raw
head -c $((6 << 20)) /dev/urandom > "$R"
dd if=/dev/zero of="$R" bs=64k seek=17 count=20 conv=notrunc status=none   # zero run
truncate -s $(((6 << 20) + 12345)) "$R"
fallocate -p -o $((3 << 20)) -l $((1 << 20)) "$R"                          # a real hole

# Source 2: ext4 with files, 48 MiB.
mkdir -p "$T/root/etc" "$T/root/data"
cp -r /etc/apt /etc/default "$T/root/etc/" 2>/dev/null || true
head -c 3000000 /dev/urandom > "$T/root/data/blob"
seq 1 200000 > "$T/root/data/numbers.txt"
E=$T/ext4.raw
truncate -s 48M "$E"
mkfs.ext4 -q -F -d "$T/root" "$E"

# padded SRC SIZE: sha256 of SRC zero-extended to SIZE bytes
padded() {
    cp --sparse=always "$1" "$T/pad.raw"
    truncate -s "$2" "$T/pad.raw"
    sha "$T/pad.raw"
    rm -f "$T/pad.raw"
}
roundup() { echo $(( ($1 + $2 - 1) / $2 * $2 )); }

# check SRC EXT QEMUFMT UNIT [convert -o options]
check() {
    local src=$1 ext=$2 qfmt=$3 unit=$4 opts=${5:-}
    local out=$T/out.$ext size want got
    rm -f "$out"
    "$VDISK" convert -q ${opts:+-o "$opts"} "$src" "$out" || fail "convert $src -> $ext $opts"
    [ -z "$(ls -A "$T" | grep partial || true)" ] || fail "temporary file left behind"
    size=$(roundup "$(stat -c %s "$src")" "$unit")
    want=$(padded "$src" "$size")
    got=$("$VDISK" hash "$out" | cut -d' ' -f1)
    assert_eq "$got" "$want" "vdisk hash of $ext ($opts)"
    if [ "$ext" = raw ]; then
        cmp "$src" "$out" || fail "raw output differs from the source"
    elif [ "$ext" != ova ]; then
        assert_eq "$(qemu_raw_sha "$out" "$qfmt")" "$want" "qemu-img raw of $ext ($opts)"
        if [ "$qfmt" = vmdk ] || [ "$qfmt" = vhdx ]; then
            qemu-img check -q -f "$qfmt" "$out" || fail "qemu-img check $ext ($opts)"
        fi
    fi
    case "$ext" in
    vmdk) oracle_mount vmdkmount vmdk1 "$out" "$want" ;;
    vhd | vhdx) oracle_mount vhdimount vhdi1 "$out" "$want" ;;
    esac
    echo "ok: $(basename "$src") -> $ext ${opts:-} ($(stat -c %s "$out") bytes)"
}

oracle_mount() {
    local tool=$1 file=$2 img=$3 want=$4 m=$T/oracle
    command -v "$tool" >/dev/null || { echo "note: $tool not installed"; return 0; }
    mkdir -p "$m"
    "$tool" "$img" "$m" >/dev/null 2>&1 || fail "$tool $img"
    local got
    got=$(sha "$m/$file")
    fusermount3 -u "$m"
    assert_eq "$got" "$want" "$tool of $(basename "$img")"
}

for src in "$R" "$E"; do
    check "$src" raw raw 1
    check "$src" vmdk vmdk 512
    check "$src" vmdk vmdk 512 compress_level=1,threads=1
    check "$src" vmdk vmdk 512 vmdk_type=monolithicSparse
    check "$src" vhd vpc 1048576
    check "$src" vhd vpc 1048576 vhd_type=fixed
    check "$src" vhdx vhdx 512
    check "$src" vhdx vhdx 512 vhdx_type=fixed
    check "$src" vhdx vhdx 512 vhdx_block_size=1M
    check "$src" ova - 512
    check "$src" ova - 512 ova_manifest=sha1
done

# VHD footer facts: creator "win ", 1 MiB-aligned current size.
"$VDISK" convert -q "$R" "$T/f.vhd"
tail -c 512 "$T/f.vhd" > "$T/footer"
assert_eq "$(dd if="$T/footer" bs=1 skip=28 count=4 status=none)" "win " "VHD creator"
assert_eq "$(dd if="$T/footer" bs=1 skip=36 count=4 status=none)" "Wi2k" "VHD creator host"
size_hex=$(od -An -tx1 -j48 -N8 "$T/footer" | tr -d ' \n')
assert_eq "$((16#$size_hex))" "$(roundup $(((6 << 20) + 12345)) 1048576)" "VHD current size"
cmp <(head -c 512 "$T/f.vhd") <(tail -c 512 "$T/f.vhd") || fail "VHD footer copy differs"

# OVA: descriptor first, manifest matches the members, qemu reads the disk.
"$VDISK" convert -q "$E" "$T/vm.ova"
first=$(tar tf "$T/vm.ova" | sed -n 1p)
assert_eq "$first" "vm.ovf" "first OVA member"
assert_eq "$(tar tf "$T/vm.ova" | tr '\n' ' ')" "vm.ovf vm.mf vm-disk1.vmdk " "OVA members"
mkdir -p "$T/x" && tar xf "$T/vm.ova" -C "$T/x"
while read -r line; do
    name=$(echo "$line" | sed -E 's/^SHA256\((.*)\)= .*/\1/')
    hash=${line##*= }
    assert_eq "$(sha "$T/x/$name")" "$hash" "manifest hash of $name"
done < "$T/x/vm.mf"
grep -q 'ovf:capacity="50331648"' "$T/x/vm.ovf" || fail "ovf:capacity"
grep -q "ovf:size=\"$(stat -c %s "$T/x/vm-disk1.vmdk")\"" "$T/x/vm.ovf" || fail "ovf:size"
grep -q 'vmdk.html#streamOptimized' "$T/x/vm.ovf" || fail "disk format URI"
assert_eq "$(qemu_raw_sha "$T/x/vm-disk1.vmdk" vmdk)" "$(sha "$E")" "OVA disk via qemu-img"
if command -v xmllint >/dev/null; then xmllint --noout "$T/x/vm.ovf" || fail "OVF is not XML"; fi

# Errors: unknown format, missing directory; nothing left behind.
out=$("$VDISK" convert -q "$R" "$T/nope.qcow2" 2>&1) && fail "qcow2 accepted"
echo "$out" | grep -q "use -O FORMAT" || fail "unknown extension message: $out"
out=$("$VDISK" convert -q "$R" "$T/missing/x.vmdk" 2>&1) && fail "missing dir accepted"
echo "$out" | grep -q "cannot create temporary file: No such file or directory" || fail "$out"
echo "all convert round trips agree"
