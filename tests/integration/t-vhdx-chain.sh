#!/bin/bash
# VHDX differencing chains and 4 KiB logical sectors, built from the spec by
# tests/data/gen-vhdx.py (qemu cannot write either), checked against the raw
# bytes the generator computed independently (parent bytes from qemu-img).
. "$VD_TEST_LIB"
need qemu-img qemu-io python3
GEN="$VD_TEST_DATA/gen-vhdx.py"

# Parent: a qemu-made dynamic VHDX with some blocks written.
qemu-img create -q -f vhdx -o block_size=8M "$T/parent.vhdx" 20M
qemu-io -f vhdx -c 'write -P 0x21 0 20M' -c 'write -z 9M 1M' "$T/parent.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/parent.vhdx" "$T/parent.raw"
python3 "$GEN" diff "$T/parent.vhdx" "$T/parent.raw" "$T"
before=$(sha "$T/child.avhdx")
assert_eq "$("$VDISK" hash --sha256 "$T/child.avhdx" | cut -d' ' -f1)" "$(sha "$T/child.raw")" \
    "differencing child (full/partial/zero/unmapped/undefined/not-present blocks)"
info=$("$VDISK" info --json "$T/child.avhdx")
grep -qF '"subformat": "differencing"' <<<"$info" || fail "subformat: $info"
grep -qF '"relative_path": ".\\parent.vhdx"' <<<"$info" || fail "locator in info: $info"
grep -qF '"file": "parent.vhdx"' <<<"$info" || fail "backing chain in info: $info"
"$VDISK" check "$T/child.avhdx" >/dev/null || fail "check of the generated child"
assert_eq "$(sha "$T/child.avhdx")" "$before" "child file changed by reading"

# Three levels: a grandchild of the child (its own partial/zero/... blocks
# over the child's).
python3 "$GEN" diff "$T/child.avhdx" "$T/child.raw" "$T" --name=grandchild
assert_eq "$("$VDISK" hash --sha256 "$T/grandchild.avhdx" | cut -d' ' -f1)" \
    "$(sha "$T/grandchild.raw")" "three-level chain"
"$VDISK" info --json "$T/grandchild.avhdx" | grep -qF '"file": "parent.vhdx"' || fail "chain of 3"

# No relative_path: found through absolute_win32_path's basename.
mkdir -p "$T/norel"
cp "$T/parent.vhdx" "$T/norel/"
python3 "$GEN" diff "$T/parent.vhdx" "$T/parent.raw" "$T/norel" --no-relative
assert_eq "$("$VDISK" hash --sha256 "$T/norel/child.avhdx" | cut -d' ' -f1)" \
    "$(sha "$T/norel/child.raw")" "parent found by absolute_win32_path"

# relative_path into a sibling folder; the right GUID in parent_linkage2.
mkdir -p "$T/vms/child" "$T/vms/base"
cp "$T/parent.vhdx" "$T/vms/base/"
python3 "$GEN" diff "$T/parent.vhdx" "$T/parent.raw" "$T/vms/child" '--relpath=..\base\parent.vhdx' --linkage2
# ..\base is outside the child's directory: refused unless allowed.
out=$("$VDISK" hash --sha256 "$T/vms/child/child.avhdx" 2>&1) && fail "parent in ..\\base opened without --allow-path"
case $out in *"resolves outside"*--allow-path*) ;; *) fail "refusal message: $out" ;; esac
assert_eq "$("$VDISK" hash --allow-path "$T/vms/base" --sha256 "$T/vms/child/child.avhdx" | cut -d' ' -f1)" \
    "$(sha "$T/vms/child/child.raw")" "parent in ..\\base, matched by parent_linkage2"

# Missing parent, and a parent that changed since (DataWriteGuid mismatch).
mkdir -p "$T/orphan"
cp "$T/child.avhdx" "$T/orphan/"
out=$("$VDISK" hash --sha256 "$T/orphan/child.avhdx" 2>&1) && fail "orphan child opened"
assert_eq "$out" "vdisk: vhdx: child.avhdx: parent not found (tried parent.vhdx)" "missing parent"
mkdir -p "$T/badlink"
cp "$T/parent.vhdx" "$T/badlink/"
python3 "$GEN" diff "$T/parent.vhdx" "$T/parent.raw" "$T/badlink" --bad-linkage
pguid=$("$VDISK" info --json "$T/parent.vhdx" | sed -n 's/.*"data_write_guid": "\(.*\)".*/\1/p')
out=$("$VDISK" hash --sha256 "$T/badlink/child.avhdx" 2>&1) && fail "mismatched parent opened"
assert_eq "$out" "vdisk: vhdx: child.avhdx: parent parent.vhdx has DataWriteGuid $pguid but the child expects parent_linkage {01234567-89ab-cdef-0123-456789abcdef}: the parent changed after the child was made" "linkage mismatch"

# 4 KiB logical sectors, and a 4K child of that disk.
python3 "$GEN" 4k "$T"
assert_eq "$("$VDISK" hash --sha256 "$T/4k.vhdx" | cut -d' ' -f1)" "$(sha "$T/4k.raw")" "4K disk"
assert_eq "$("$VDISK" hash --sha256 "$T/4kchild.avhdx" | cut -d' ' -f1)" "$(sha "$T/4kchild.raw")" \
    "4K differencing child"
"$VDISK" info --json "$T/4k.vhdx" | grep -qF '"logical_sector_size": 4096' || fail "4K info"

# vhdimount as a second oracle for the 4K pair (it agrees); it reads ZERO
# blocks of a child from the parent, unlike the spec, so child.avhdx is not
# compared with it (docs/vhdx.md).
if command -v vhdimount >/dev/null && [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$T/m"
    vhdimount "$T/4kchild.avhdx" "$T/m" >"$T/vhdimount.out" 2>&1 ||
        fail "vhdimount cannot read 4kchild.avhdx: $(tail -3 "$T/vhdimount.out")"
    MOUNTS+=("$T/m")
    v1=$(sha "$T/m/vhdi1"); v2=$(sha "$T/m/vhdi2")
    umount "$T/m" || fusermount3 -u "$T/m"
    assert_eq "$v1" "$(sha "$T/4k.raw")" "vhdimount parent layer"
    assert_eq "$v2" "$(sha "$T/4kchild.raw")" "vhdimount child layer"
fi
echo "PASS"
