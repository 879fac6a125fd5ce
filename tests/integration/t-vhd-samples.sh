#!/bin/bash
# VHD samples from other tools through the vdisk CLI: digests from INDEX.md
# (qemu-img 7.2 / libvhdi), the documented choices where they disagree
# (docs/vhd.md), info fields and the exact `vdisk check` lines.
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || fail "vdisk CLI not built ($VDISK): build the tree first"
need python3

hash_of() { "$VDISK" hash --sha256 -q "$1" | cut -d' ' -f1; }
vhd_info() { # vhd_info FILE PYEXPR, with d = the disk's "vhd" object
    "$VDISK" info --json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin)['disks'][0]['vhd']; print($2)"
}

E40=80a3721188e40218b08b26776bc53bdae81e4784fff71d71450a197319cba113
for s in go-vhd/vbox.vhd.xz go-vhd/xapi.vhd.xz go-vhd/win8.vhd.xz go-vhd/qemu.vhd.xz \
    go-vhd/win8.1-1GB.vhd.xz go-vhd/win8-child.vhd.xz node-vhd/dynamic.vhd.gz node-vhd/fixed.vhd.gz \
    dfvfs/image.vhd.xz dfvfs/image-differential.vhd.xz dfvfs/fat-differential.vhd.xz; do
    sample "samples/$s" >/dev/null
done
cd "$T"
assert_eq "$(hash_of xapi.vhd)" $E40 "xapi.vhd"
assert_eq "$(hash_of win8.vhd)" $E40 "win8.vhd"
assert_eq "$(hash_of win8-child.vhd)" $E40 "win8-child.vhd (parent by base name of C:\\...)"
assert_eq "$(hash_of qemu.vhd)" 258dd1ab1617727f344d71220c5093e04d7909b1e13b31bfa810edac4f6fa04f "qemu.vhd"
assert_eq "$(hash_of win8.1-1GB.vhd)" 49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14 "win8.1-1GB.vhd"
assert_eq "$(hash_of dynamic.vhd)" c461afded0b54cc1cfb5441e08f4d7f9d699d2eff7d9526d1cf6ad227da26683 "node dynamic.vhd"
assert_eq "$(hash_of fixed.vhd)" fa0490edf13cf9699ac7ead2b2024f2ec7921f583ff824039bca0529055e409d "node fixed.vhd"

# vbox.vhd: qemu (CHS, 41909760) and libvhdi (current_size) disagree; we
# chose current_size (docs/vhd.md), which gives libvhdi's digest.
assert_eq "$(hash_of vbox.vhd)" $E40 "vbox.vhd: current_size"
assert_eq "$(vhd_info vbox.vhd 'd["current_size"], d["chs_size"], d["size_from"], d["creator_app"]')" \
    "41943040 41909760 current_size vbox" "vbox.vhd sizes in info"
assert_eq "$(vhd_info win8-child.vhd 'd["parent"]["located_by"], d["parent"]["opened"], d["parent"]["uuid"]')" \
    "W2ru win8.vhd adb71975-4b5b-0b40-b025-d06dab31b26f" "win8-child.vhd parent"

# dfvfs: bad checksums are read (libvhdi's digest) and reported.
C6=c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25
assert_eq "$(hash_of image.vhd)" $C6 "dfvfs image.vhd"
assert_eq "$(hash_of image-differential.vhd)" $C6 "dfvfs image-differential.vhd"
assert_eq "$(vhd_info image-differential.vhd 'd["footer_checksum_ok"], d["header_checksum_ok"], d["notes"]')" \
    "False False ['footer checksum is bad; read anyway', 'dynamic header checksum is bad; read anyway']" "checksum flags"
rc=0; out=$("$VDISK" check image-differential.vhd) || rc=$?
assert_eq "$rc" 2 "check exit code"
assert_eq "$out" "ERROR: vhd: image-differential.vhd: footer checksum 0xfffff683 does not match computed 0xffffeeb6
ERROR: vhd: image-differential.vhd: dynamic header checksum 0xfffff476 does not match computed 0xffffe9a5
ERROR: vhd: image.vhd: footer checksum 0xfffff683 does not match computed 0xffffef25" "check lines"

# fat-differential.vhd: its parent is not in the sample set: a clear error.
rc=0; out=$("$VDISK" hash -q fat-differential.vhd 2>&1) || rc=$?
assert_eq "$rc" 1 "missing parent exit code"
assert_eq "$out" "vdisk: vhd: fat-differential.vhd: parent disk (unique id 5fa21a55-f394-aa4d-9958-1951a67d5540) not found; tried 'fat-parent.vhd'" "missing parent"

for f in xapi win8 win8-child qemu dynamic fixed; do
    "$VDISK" check "$f.vhd" >/dev/null || fail "check $f.vhd"
done
echo "ok: VHD samples"
