#!/usr/bin/env bash
# A VG spanning the two disks of one OVA (docs/lvm.md): PV pv0 on disk1's
# partition 1, PV pv1 on the whole of disk2 (no partition table), LV span
# with one segment on each. Built by lvm2's tools on loop devices, the LV
# bytes written by dd at pe_start + extents; the disks converted to
# streamOptimized VMDK by qemu-img and packed by tar with a hand-written
# OVF. Checks the mapping against lvs, the LV file's sha256 in the mount
# of the OVA, and that disk1 alone lists the LV with "PV pv1 ... is
# missing" and no file.
. "$VD_TEST_LIB"
. "$(dirname "$VD_TEST_LIB")/lvm_lib.sh"
need_lvm
need_fuse
need qemu-img tar
META=$VD_TEST_DATA/lvm
MiB=1048576

cd "$T"
truncate -s 18M d1.raw
printf 'label: dos\n,16M,8e\n' | sfdisk -q d1.raw
o1=$(part_off d1.raw 1)
truncate -s 16M d2.raw
loop l1 d1.raw "$o1" "$(part_size d1.raw 1)"
loop l2 d2.raw 0 $((16 * MiB))
mkpv "$l1" pvxpvx-0000-0000-0000-0000-0000-000001 "$META/vgx.meta"
mkpv "$l2" pvxpvx-0000-0000-0000-0000-0000-000002 "$META/vgx.meta"
restore vgx "$META/vgx.meta" "$l1" "$l2"
head -c $((7 * MiB)) /dev/urandom > span.bin
dd if=span.bin of=d1.raw bs=$MiB count=3 seek=$((o1 / MiB + 1 + 1)) conv=notrunc status=none
dd if=span.bin of=d2.raw bs=$MiB skip=3 count=4 seek=$((1 + 0)) conv=notrunc status=none
lvs --devices "$l1,$l2" -o vg_name,lv_name,seg_start_pe,seg_pe_ranges --reportformat json \
    > lvs.json 2>/dev/null || fail "lvs"

mkdir ova
for d in d1 d2; do
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized $d.raw ova/$d.vmdk
done
cat > ova/vm.ovf <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="d1.vmdk" ovf:id="file1" ovf:size="$(stat -c %s ova/d1.vmdk)"/>
    <File ovf:href="d2.vmdk" ovf:id="file2" ovf:size="$(stat -c %s ova/d2.vmdk)"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="$(stat -c %s d1.raw)" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="$(stat -c %s d2.raw)" ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A virtual machine</Info><Name>vm</Name></VirtualSystem>
</Envelope>
EOF
tar --format=ustar -C ova -cf vm.ova vm.ovf d1.vmdk d2.vmdk

"$VDISK" info --json vm.ova > info.json || fail "vdisk info --json vm.ova"
python3 - "$l1" "$l2" <<'PY'
import json, sys
views = {sys.argv[1]: "disk1-p1.raw", sys.argv[2]: "disk2.raw"}
rows = sorted([r for r in json.load(open("lvs.json"))["report"][0]["lv"] if r["lv_name"] == "span"],
              key=lambda r: int(r["seg_start_pe"]))
want = []
for r in rows:
    dev, se = r["seg_pe_ranges"].rsplit(":", 1)
    s, e = se.split("-")
    want.append([(views[dev], int(s), int(e))])
info = json.load(open("info.json"))
lv = info["volume_groups"][0]["logical_volumes"][0]
got = [[(a["device"], a["start_pe"], a["start_pe"] + a["pe_count"] - 1) for a in s["areas"]]
       for s in lv["segments"]]
assert got == want, (got, want)
assert lv["view"] == "lvm-vgx-span.raw" and lv["size"] == 7 << 20 and lv["unsupported"] is None, lv
pvs = [(p["name"], p["device"]) for p in info["volume_groups"][0]["pvs"]]
assert pvs == [("pv0", "disk1-p1.raw"), ("pv1", "disk2.raw")], pvs
PY

vmount m vm.ova
assert_eq "$(sha m/vm/lvm-vgx-span.raw)" "$(sha span.bin)" "lvm-vgx-span.raw bytes"
vumount m

# disk1 alone: the VG is incomplete; the LV is listed, not exposed.
"$VDISK" info --json ova/d1.vmdk > one.json
python3 - <<'PY'
import json
lv = json.load(open("one.json"))["volume_groups"][0]["logical_volumes"][0]
want = "PV pv1 (uuid pvxpvx-0000-0000-0000-0000-0000-000002) of VG vgx is missing"
assert lv["unsupported"] == want and lv["view"] is None, lv
PY
# disk2 cut to 4 MiB (a truncated copy): span's extents on it are past
# its end; the LV is refused by name, the label's size is reported.
truncate -s 4M d2.raw
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized d2.raw ova/d2.vmdk
sed -i "s/ ovf:size=\"[0-9]*\"//" ova/vm.ovf
tar --format=ustar -C ova -cf cut.ova vm.ovf d1.vmdk d2.vmdk
"$VDISK" info --json cut.ova > cut.json
python3 - <<'PY'
import json
j = json.load(open("cut.json"))
lv = j["volume_groups"][0]["logical_volumes"][0]
want = ("VG vgx, LV span: extents 0-3 of pv1 lie past the end of its device disk2 "
        "(4194304 bytes; a truncated disk?)")
assert lv["unsupported"] == want and lv["view"] is None, lv
assert j["guest_warnings"] == ["lvm: disk2: the PV label says the device is 16777216 bytes "
                               "but it has 4194304 (a truncated disk?)"], j["guest_warnings"]
PY
vmount m1 ova/d1.vmdk
[ ! -e m1/d1/lvm-vgx-span.raw ] || fail "an LV with a missing PV has a file"
vumount m1
echo PASS
