#!/usr/bin/env bash
# vdisk check compares each OVF disk's ovf:capacity with the virtual size of
# the disk image itself (importers size the new disk from the OVF).
# Data: the VirtualBox OVF 2.0 export from COT (tests/data/samples/cot).
. "$VD_TEST_LIB"
need tar xz

d=$T/pkg
mkdir -p "$d"
xz -dc "$VD_TEST_DATA/samples/cot/ubuntu.2.0.ovf.xz" > "$d/ubuntu.2.0.ovf"
xz -dc "$VD_TEST_DATA/samples/cot/ubuntu.2.0-disk1.vmdk.xz" > "$d/ubuntu.2.0-disk1.vmdk"
(cd "$d" && tar --format=ustar -cf "$T/good.ova" ubuntu.2.0.ovf ubuntu.2.0-disk1.vmdk)
out=$("$VDISK" check "$T/good.ova") || fail "clean OVA reported problems: $out"

# Same package with ovf:capacity halved (no manifest, so only this differs).
sed -i 's/ovf:capacity="8589934592"/ovf:capacity="4294967296"/' "$d/ubuntu.2.0.ovf"
(cd "$d" && tar --format=ustar -cf "$T/bad.ova" ubuntu.2.0.ovf ubuntu.2.0-disk1.vmdk)
rc=0
out=$("$VDISK" check "$T/bad.ova") || rc=$?
assert_eq "$rc" 2 "exit code for a capacity mismatch"
assert_eq "$out" "ERROR: ovf: ubuntu.2.0-disk1.vmdk: ovf:capacity is 4294967296 bytes but the disk's virtual size is 8589934592 bytes" "check line"
echo PASS
