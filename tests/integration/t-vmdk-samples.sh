#!/bin/bash
# Every VMDK sample in tests/data/samples reads with the sha256 qemu-img 7.2
# gives (samples/INDEX.md), or fails with the exact error we promise.
. "$VD_TEST_LIB"
need xz tar
TV="${VD_BUILD_DIR:?}/tests/test_vmdk"
[ -x "$TV" ] || fail "test_vmdk helper not built ($TV): build the tree with BUILD_TESTING"
S=samples
ok() { # ok FILE SHA256 [companion files...]
    local f=$1 want=$2; shift 2
    local c; for c in "$@"; do sample "$S/$c" >/dev/null; done
    local img; img=$(sample "$S/$f")
    assert_eq "$("$TV" hash "$img" | cut -d' ' -f1)" "$want" "$f"
}
err() { # err FILE MESSAGE [companion files...]
    local f=$1 want=$2; shift 2
    local c; for c in "$@"; do sample "$S/$c" >/dev/null; done
    local img out; img=$(sample "$S/$f")
    if out=$(cd "$T" && "$TV" hash "$(basename "$img")" 2>&1); then fail "$f: opened, expected '$want'"; fi
    assert_eq "$out" "$want" "$f"
}
ten=a3bcf05f07a1c06a3380eeca8571f0efb2b85afafa1e21662b8cad436d1f7727
ok vmdk-rs/monolithicSparse.vmdk.xz $ten
ok vmdk-rs/twoGbMaxExtentSparse.vmdk.xz $ten vmdk-rs/twoGbMaxExtentSparse-s001.vmdk.xz
ok vmdk-rs/streamOptimized.vmdk.xz $ten
ok vmdk-rs/streamOptimizedWithMarkers.vmdk.xz 92c0f8b4280377437056f57c51ef51a5f8aeb1462ac630ef0633febcbfc3db4e
ok vmdk-rs/monolithicFlat.vmdk.xz $ten vmdk-rs/monolithicFlat-flat.vmdk.xz
ok vmdk-rs/twoGbMaxExtentFlat.vmdk.xz $ten vmdk-rs/twoGbMaxExtentFlat-f001.vmdk.xz
ok vmdk-rs/vmfs_thick.vmdk.xz 8d43c795d24bce01b49f92744f934c1072210dcac170bb1c83a5aa56df46ab7d vmdk-rs/vmfs_thick-flat.vmdk.xz
ok cot/ubuntu.2.0-disk1.vmdk.xz ebfb4ef19ae410f190327b5ebd312711263bc7579970e87d9c1e2d84e06b3c25
ok cot/input.vmdk.xz 49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14
ok cot/blank.vmdk.xz 9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767
# The snapshot's delta extent is not in the sample, but the flavour alone is
# reason enough: say so rather than "file not found".
err vmdk-rs/vmfs_thick-000001.vmdk.xz "vmdk: vmfs_thick-000001.vmdk: vmfsSparse (COWD) extents are not supported"
err vmdk-forensic/ms3-win.vmdk.xz "vmdk: ms3-win.vmdk: extent 1 ('disk-s001.vmdk'): disk-s001.vmdk: cannot open: No such file or directory"
# forklift's OVA (copied by the OVA helper): its VMDK has a garbage grain size.
ova=""
for d in "$VD_TEST_DATA/samples/forklift-console-plugin" /work/shared/samples/forklift-console-plugin; do
    [ -f "$d/2nd_disk.ova.xz" ] && { ova="$d/2nd_disk.ova.xz"; break; }
done
if [ -n "$ova" ]; then
    xz -dc "$ova" | tar -xf - -C "$T" 2nd_disk.vmdk
    out=$(cd "$T" && "$TV" hash 2nd_disk.vmdk 2>&1) && fail "2nd_disk.vmdk opened"
    assert_eq "$out" "vmdk: 2nd_disk.vmdk: grain size 12435439 sectors is invalid (must be a power of two, at most 2048)" "forklift 2nd_disk.vmdk"
else
    echo "note: forklift 2nd_disk.ova not found, that case not run"
fi
echo ok
