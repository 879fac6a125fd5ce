#!/bin/bash
# Differencing VHD chains. qemu-img cannot write differencing VHDs and
# libvhdi (vhdimount 20210425) returns only the parent's bytes for children
# that hold data, so the oracle is the independent spec writer vhd_craft.py,
# which records what a correct reader must return (EXPECTED.raw): sectors
# whose bitmap bit is set come from the child, clear bits and unallocated
# blocks from the parent, and the bytes under clear bits are 0xEE garbage a
# reader must never return. The parent itself comes from qemu-img.
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || fail "vdisk CLI not built ($VDISK): build the tree first"
need qemu-img python3
CRAFT="$(dirname "$0")/vhd_craft.py"

# Parents in ../base lie outside the child's directory: the path policy
# (docs/trust-boundary.md) opens them only where the user allowed it.
ALLOW=(--allow-path "$T/base")
vdisk_sha() { "$VDISK" hash "${ALLOW[@]}" --sha256 -q "$1" | cut -d' ' -f1; }
# vdisk_err SOURCE: the error vdisk hash prints (stderr), checking it failed.
vdisk_err() {
    local out
    if out=$("$VDISK" hash "${ALLOW[@]}" --sha256 -q "$1" 2>&1 >/dev/null); then
        fail "vdisk hash $1 succeeded, expected an error"
    fi
    echo "$out"
}
info_field() { # info_field SOURCE PYEXPR (d = the disk's "vhd" object)
    "$VDISK" info "${ALLOW[@]}" --json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin)['disks'][0]['vhd']; print($2)"
}

mkdir -p "$T/base" "$T/kids" "$T/flat"
P=$T/base/parent.vhd
PRAW=$T/parent.raw
truncate -s 10M "$PRAW"
python3 - "$PRAW" <<'EOF'
import random, sys
r = random.Random(3)
with open(sys.argv[1], 'r+b') as f:
    for off in range(0, 10 << 20, 0x90000):
        f.seek(off)
        f.write(r.randbytes(0x5000))
EOF
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$PRAW" "$P"
assert_eq "$(vdisk_sha "$P")" "$(sha "$PRAW")" "parent"

# 1. Child in another directory: W2ru relative "..\base\parent.vhd" first,
#    then a W2ku Windows absolute path that does not exist here.
python3 "$CRAFT" child "$T/kids/rel.vhd" "$P" "$PRAW" "$T/rel.expect" \
    --loc 'W2ru=..\base\parent.vhd' --loc 'W2ku=D:\Hyper-V\base\parent.vhd' \
    --name 'D:\Hyper-V\base\parent.vhd' --seed 11
# Without --allow-path the parent in ../base is refused, naming the option.
out=$("$VDISK" hash --sha256 -q "$T/kids/rel.vhd" 2>&1 >/dev/null) && fail "parent outside the directory was opened"
case $out in *"resolves outside $T/kids"*allow_path=DIR*--allow-path*) ;; *) fail "refusal message: $out" ;; esac
assert_eq "$(vdisk_sha "$T/kids/rel.vhd")" "$(sha "$T/rel.expect")" "child with relative W2ru"
assert_eq "$(info_field "$T/kids/rel.vhd" 'd["parent"]["located_by"], d["parent"]["opened"]')" \
    "W2ru ../base/parent.vhd" "locator used"
# Through the mount, the child's own sectors are spliced from its file and
# the rest read from the parent: the same bytes.
if [ -e /dev/fuse ]; then
    vmount "$T/cm" -o allow_path="$T/base" "$T/kids/rel.vhd"
    assert_eq "$(sha "$T/cm/rel/disk.raw")" "$(sha "$T/rel.expect")" "mounted child"
    vumount "$T/cm"
fi

# 2. Only a Windows absolute path (like go-vhd/win8-child.vhd): the parent is
#    found by its base name beside the child.
cp "$P" "$T/flat/parent.vhd"
python3 "$CRAFT" child "$T/flat/abs.vhd" "$P" "$PRAW" "$T/abs.expect" \
    --loc 'W2ku=C:\Users\someone\VMs\parent.vhd' --name 'C:\Users\someone\VMs\parent.vhd' --seed 12
assert_eq "$(vdisk_sha "$T/flat/abs.vhd")" "$(sha "$T/abs.expect")" "child with Windows absolute W2ku"
assert_eq "$(info_field "$T/flat/abs.vhd" 'd["parent"]["located_by"], d["parent"]["opened"]')" \
    "W2ku parent.vhd" "basename fallback"

# 3. MacX file:// URL with a percent-encoded space, absolute on this machine.
cp "$P" "$T/base/my parent.vhd"
python3 "$CRAFT" child "$T/kids/mac.vhd" "$P" "$PRAW" "$T/mac.expect" \
    --loc "MacX=file://${T// /%20}/base/my%20parent.vhd" --name 'nothing.vhd' --seed 13
assert_eq "$(vdisk_sha "$T/kids/mac.vhd")" "$(sha "$T/mac.expect")" "child with MacX URL"

# 4. Locator data length written in sectors instead of bytes.
python3 "$CRAFT" child "$T/kids/sect.vhd" "$P" "$PRAW" "$T/sect.expect" \
    --loc 'W2ru=..\base\parent.vhd' --loc-sectors --name 'x' --seed 14
assert_eq "$(vdisk_sha "$T/kids/sect.vhd")" "$(sha "$T/sect.expect")" "locator length in sectors"

# 5. Only the parent unicode name, 512 KiB blocks, odd header offset.
python3 "$CRAFT" child "$T/flat/name.vhd" "$P" "$PRAW" "$T/name.expect" \
    --block-size 524288 --data-offset 0x3a1 --seed 15
assert_eq "$(vdisk_sha "$T/flat/name.vhd")" "$(sha "$T/name.expect")" "parent by unicode name"

# 5b. 32 MiB blocks: the 8 KiB sector bitmap is read in several windows.
truncate -s 20M "$T/p20.raw"
dd if="$PRAW" of="$T/p20.raw" bs=1M count=4 seek=15 conv=notrunc status=none
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$T/p20.raw" "$T/flat/p20.vhd"
python3 "$CRAFT" child "$T/flat/big.vhd" "$T/flat/p20.vhd" "$T/p20.raw" "$T/big.expect" \
    --block-size 33554432 --seed 17
assert_eq "$(vdisk_sha "$T/flat/big.vhd")" "$(sha "$T/big.expect")" "32 MiB blocks"

# 6. Three levels: grandchild -> rel.vhd -> parent.vhd.
python3 "$CRAFT" child "$T/kids/grand.vhd" "$T/kids/rel.vhd" "$T/rel.expect" "$T/grand.expect" \
    --loc 'W2ru=.\rel.vhd' --seed 16
assert_eq "$(vdisk_sha "$T/kids/grand.vhd")" "$(sha "$T/grand.expect")" "three-level chain"
"$VDISK" info "${ALLOW[@]}" --json "$T/kids/grand.vhd" |
    python3 -c 'import json,sys; c=json.load(sys.stdin)["disks"][0]["backing_chain"]; assert [b["file"] for b in c]==["rel.vhd","parent.vhd"], c' ||
    fail "backing chain in info"
# block status must agree with the data: a zero-skipping hash is the same as
# reading every byte (vdisk hash skips VD_STATUS_ZERO ranges).
"$VDISK" check "${ALLOW[@]}" "$T/kids/grand.vhd" >/dev/null || fail "check of a sound chain"

# 7. Errors. Missing parent: never silent zeros.
python3 "$CRAFT" child "$T/flat/orphan.vhd" "$P" "$PRAW" "$T/o.expect" \
    --loc 'W2ru=.\gone.vhd' --loc 'W2ku=C:\VMs\gone.vhd' --name 'C:\VMs\gone.vhd' \
    --uuid 0123456789abcdef0123456789abcdef
PU=$(python3 "$CRAFT" uuid "$P" | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
assert_eq "$(vdisk_err "$T/flat/orphan.vhd")" \
    "vdisk: vhd: orphan.vhd: parent disk (unique id $PU) not found; tried 'gone.vhd'" "missing parent"

# Parent UUID mismatch: the child expects another disk.
cp "$T/flat/abs.vhd" "$T/flat/wrong.vhd"
python3 "$CRAFT" setparent "$T/flat/wrong.vhd" 00112233445566778899aabbccddeeff
assert_eq "$(vdisk_err "$T/flat/wrong.vhd")" \
    "vdisk: vhd: wrong.vhd: parent 'parent.vhd' has unique id $PU but the child expects 00112233-4455-6677-8899-aabbccddeeff" \
    "uuid mismatch"

# Loops (issue 9, point 6) are refused by the core by file identity, with a
# message that says loop, whatever the unique ids say.
# a.vhd -> b.vhd -> a.vhd, unique ids that match along the chain.
mkdir -p "$T/loop"
python3 "$CRAFT" child "$T/loop/a.vhd" "$P" "$PRAW" "$T/a.expect" --loc 'W2ru=b.vhd' --name b.vhd \
    --uuid aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
python3 "$CRAFT" child "$T/loop/b.vhd" "$T/loop/a.vhd" "$T/a.expect" "$T/b.expect" \
    --loc 'W2ru=a.vhd' --name a.vhd --uuid bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
python3 "$CRAFT" setparent "$T/loop/a.vhd" bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
assert_eq "$(vdisk_err "$T/loop/a.vhd")" \
    "vdisk: b.vhd: parent 'a.vhd' is a.vhd, which is already open below it in this chain: a loop; refused" \
    "2-cycle"
# The same with all-zero unique ids (they prove nothing, so no id check can
# see this loop): a0.vhd -> b0.vhd -> a0.vhd.
Z=00000000000000000000000000000000
python3 "$CRAFT" child "$T/loop/a0.vhd" "$P" "$PRAW" "$T/a0.expect" --loc 'W2ru=b0.vhd' --name b0.vhd \
    --uuid $Z
python3 "$CRAFT" child "$T/loop/b0.vhd" "$T/loop/a0.vhd" "$T/a0.expect" "$T/b0.expect" \
    --loc 'W2ru=a0.vhd' --name a0.vhd --uuid $Z
python3 "$CRAFT" setparent "$T/loop/a0.vhd" $Z
assert_eq "$(vdisk_err "$T/loop/a0.vhd")" \
    "vdisk: b0.vhd: parent 'a0.vhd' is a0.vhd, which is already open below it in this chain: a loop; refused" \
    "2-cycle with zero unique ids"
# A disk naming itself through a symlink beside it.
python3 "$CRAFT" child "$T/loop/self.vhd" "$P" "$PRAW" "$T/self.expect" --loc 'W2ru=.\me.vhd' \
    --name me.vhd --uuid cccccccccccccccccccccccccccccccc
python3 "$CRAFT" setparent "$T/loop/self.vhd" cccccccccccccccccccccccccccccccc
ln -s self.vhd "$T/loop/me.vhd"
assert_eq "$(vdisk_err "$T/loop/self.vhd")" \
    "vdisk: self.vhd: names itself (as 'me.vhd') as its own parent: a loop" "self loop"

# Parent names outside the child's directory (issue 9, point 1): an
# absolute locator, a "..\" one, and a symlink beside the child pointing
# out. Refused without --allow-path, with a message naming the option; read
# with it.
mkdir -p "$T/kids2"
K2=$(cd "$T/kids2" && pwd -P)
B=$(cd "$T/base" && pwd -P)
POLICY="the directory of the image that names it; refused, as an image may only name files beside it (if you trust this image, allow the directory holding that file with -o allow_path=DIR for vdiskfs or --allow-path DIR for vdisk)"
python3 "$CRAFT" child "$T/kids2/absp.vhd" "$P" "$PRAW" "$T/absp.expect" \
    --loc "W2ku=$B/parent.vhd" --name 'not-here.vhd' --seed 21
python3 "$CRAFT" child "$T/kids2/dots.vhd" "$P" "$PRAW" "$T/dots.expect" \
    --loc 'W2ru=..\base\parent.vhd' --name 'not-here.vhd' --seed 22
ln -s ../base/parent.vhd "$T/kids2/link.vhd"
python3 "$CRAFT" child "$T/kids2/viasym.vhd" "$P" "$PRAW" "$T/viasym.expect" \
    --loc 'W2ru=link.vhd' --name 'link.vhd' --seed 23
for c in "absp:$B/parent.vhd" "dots:../base/parent.vhd" "viasym:link.vhd"; do
    n=${c%%:*}
    out=$("$VDISK" hash --sha256 -q "$T/kids2/$n.vhd" 2>&1 >/dev/null) &&
        fail "$n: parent outside the directory was opened"
    assert_eq "$out" "vdisk: vhd: $n.vhd: parent '${c#*:}' resolves outside $K2, $POLICY" "$n refused"
    assert_eq "$(vdisk_sha "$T/kids2/$n.vhd")" "$(sha "$T/$n.expect")" "$n with --allow-path"
done

echo "ok: differencing chains"
