#!/bin/bash
# VHDX over S3 (s3rver): a differencing chain whose parents are found beside
# the object (open_relative on the key prefix), and a dirty log replayed from
# ranged GETs; bytes as the generator computed them.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need qemu-img qemu-io python3
GEN="$VD_TEST_DATA/gen-vhdx.py"
s3_start

qemu-img create -q -f vhdx -o block_size=8M "$T/parent.vhdx" 20M
qemu-io -f vhdx -c 'write -P 0x21 0 20M' -c 'write -z 9M 1M' "$T/parent.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/parent.vhdx" "$T/parent.raw"
python3 "$GEN" diff "$T/parent.vhdx" "$T/parent.raw" "$T"
python3 "$GEN" diff "$T/child.avhdx" "$T/child.raw" "$T" --name=grandchild
qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$T/base.vhdx" 8M
qemu-io -f vhdx -c 'write -P 0xaa 0 1M' -c 'write -P 0x55 2M 512k' -c 'write -P 0x11 5M 1M' \
    "$T/base.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/base.vhdx" "$T/base.raw"
python3 "$GEN" log "$T/base.vhdx" "$T/base.raw" "$T"

for f in parent.vhdx child.avhdx grandchild.avhdx log.vhdx; do
    s3_put "$T/$f" "vms/$f"
done
assert_eq "$("$VDISK" hash s3://vdtest/vms/grandchild.avhdx | cut -d' ' -f1)" \
    "$(sha "$T/grandchild.raw")" "three-level VHDX chain over s3://"
assert_eq "$("$VDISK" hash s3://vdtest/vms/log.vhdx | cut -d' ' -f1)" "$(sha "$T/log.raw")" \
    "dirty-log VHDX over s3://"
"$VDISK" info --json s3://vdtest/vms/log.vhdx | grep -qF '"log_entries": 3' || fail "replay over S3"
echo "PASS"
