#!/usr/bin/env bash
# OVA read side on archives built by GNU tar (ustar, pax, gnu, v7), with two
# raw disks and a sha256 manifest: info JSON "ovf" object, `vdisk check`
# (clean, then one flipped byte -> exit 2 and the exact manifest line, the
# digests computed by sha256sum over `tar xO`), the FUSE layout and bytes,
# a corrupt header checksum, and the COT samples (VirtualBox OVF 2.0 with a
# streamOptimized VMDK, whose upstream manifest verifies; the VMware one
# whose manifest lists files that are absent).
. "$VD_TEST_LIB"
need tar python3 sha256sum xz

cd "$T"
mkdir src
# disk1: 6 MiB with an MBR partition; disk2: 3 MiB of random bytes (odd size
# on purpose: 3 MiB + 512 is still a whole number of sectors).
truncate -s 6M src/disk1.raw
if command -v sfdisk >/dev/null; then
    printf 'label: dos\n,4M,83\n' | sfdisk -q src/disk1.raw
fi
head -c 1M /dev/urandom | dd of=src/disk1.raw bs=1M seek=2 conv=notrunc status=none
head -c $((3 * 1024 * 1024 + 512)) /dev/urandom > src/disk2.raw
# A name over 100 bytes needs pax 'x' or GNU 'L' headers (ustar: prefix).
long=a-disk-file-name-that-is-longer-than-the-one-hundred-bytes-of-a-tar-header-name-field-so-it-needs-an-extension-0001.raw
cp src/disk2.raw "src/$long"

make_ovf() { # make_ovf NAME2 > vm.ovf : disk1.raw then NAME2, both raw
    cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-1" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="disk1.raw" ovf:id="file1" ovf:size="$(stat -c %s src/disk1.raw)"/>
    <File ovf:href="$1" ovf:id="file2" ovf:size="$(stat -c %s src/disk2.raw)"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="6" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://example.com/raw"/>
    <Disk ovf:capacity="$(stat -c %s src/disk2.raw)" ovf:diskId="vmdisk2" ovf:fileRef="file2"/>
  </DiskSection>
  <NetworkSection><Info>n</Info><Network ovf:name="VM Network"/><Network ovf:name="backup"/></NetworkSection>
  <VirtualSystem ovf:id="web01">
    <Info>A virtual machine</Info>
    <Name>web01</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian10_64Guest"><Info>os</Info><Description>Debian GNU/Linux 10 (64-bit)</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>hw</Info>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1536</rasd:VirtualQuantity></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
EOF
}

# build FMT NAME2 OUT: vm.ovf, vm.mf, disk1.raw, NAME2 (in that order)
build() {
    local fmt=$1 name2=$2 out=$3
    make_ovf "$name2" > src/vm.ovf
    (cd src && sha256sum vm.ovf disk1.raw "$name2" | awk '{print "SHA256(" $2 ")= " $1}' > vm.mf)
    tar --format="$fmt" -C src -cf "$out" vm.ovf vm.mf disk1.raw "$name2"
}

check_info() { # check_info OVA NAME2
    "$VDISK" info --json "$1" > info.json || fail "vdisk info $1"
    python3 - info.json "$2" "$(stat -c %s src/disk2.raw)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
name2, size2 = sys.argv[2], int(sys.argv[3])
assert j["format"] == "ova", j["format"]
o = j["ovf"]
want = {"descriptor": "vm.ovf", "version": "1.x", "manifest": "vm.mf", "name": "web01",
        "os": "Debian GNU/Linux 10 (64-bit)", "os_id": 96, "os_type": "debian10_64Guest",
        "cpus": 2, "memory_bytes": 1536 << 20, "networks": ["VM Network", "backup"],
        "disks": [{"disk_id": "vmdisk1", "file": "disk1.raw", "capacity": 6 << 20,
                   "format": "http://example.com/raw"},
                  {"disk_id": "vmdisk2", "file": name2, "capacity": size2, "format": None}]}
assert o == want, (o, want)
d = j["disks"]
assert [x["view"] for x in d] == ["disk1.raw", "disk2.raw"], d
assert [x["virtual_size"] for x in d] == [6 << 20, size2], d
assert [x["format"] for x in d] == ["raw", "raw"], d
PY
}

for fmt in ustar pax gnu v7; do
    name2=disk2.raw
    [ "$fmt" = pax ] || [ "$fmt" = gnu ] && name2=$long
    build "$fmt" "$name2" "vm-$fmt.ova"
    check_info "vm-$fmt.ova" "$name2" || fail "info JSON ($fmt)"
    out=$("$VDISK" check "vm-$fmt.ova") || fail "check of a clean $fmt OVA: $out"
    assert_eq "$out" "No errors were found on the image." "clean check ($fmt)"
done
# A second, independent writer: python's tarfile, pax with a global header
# (as git archive writes) and per-file 'x' headers for the long name.
build pax "$long" /dev/null
python3 - src pytar.ova "$long" <<'PY'
import os, sys, tarfile
src, out, long = sys.argv[1:]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "0123456789abcdef0123456789abcdef01234567"}) as t:
    for n in ("vm.ovf", "vm.mf", "disk1.raw", long):
        t.add(os.path.join(src, n), arcname=n)
PY
check_info pytar.ova "$long" || fail "info JSON (python tarfile)"
out=$("$VDISK" check pytar.ova) || fail "check of the python-made OVA: $out"

# The pax and gnu archives really use extension headers.
python3 - vm-pax.ova vm-gnu.ova <<'PY'
import sys
pax = open(sys.argv[1], "rb").read()
gnu = open(sys.argv[2], "rb").read()
assert any(pax[i + 156] == ord("x") for i in range(0, len(pax) - 512, 512)), "no pax header"
assert b"././@LongLink" in gnu, "no GNU long name"
PY

# One flipped byte in disk2's data: exit 2, one exact line. Offsets and
# digests come from python's tarfile and GNU tar, not from us.
cp vm-pax.ova bad.ova
off=$(python3 -c 'import sys,tarfile; t=tarfile.open(sys.argv[1]); print(t.getmember(sys.argv[2]).offset_data)' bad.ova "$long")
printf '\x5a' | dd of=bad.ova bs=1 seek=$((off + 12345)) conv=notrunc status=none
good=$(sha256sum "src/$long" | cut -d' ' -f1)
actual=$(tar -xOf bad.ova "$long" | sha256sum | cut -d' ' -f1)
[ "$good" != "$actual" ] || fail "the flip did not change the member"
set +e
out=$("$VDISK" check bad.ova)
rc=$?
set -e
assert_eq "$rc" 2 "check exit code of a corrupt OVA"
assert_eq "$out" "ERROR: manifest: $long: SHA256 mismatch (manifest $good, actual $actual)" \
    "manifest mismatch line"

# No manifest: clean.
make_ovf disk2.raw > src/vm.ovf
tar --format=ustar -C src -cf nomf.ova vm.ovf disk1.raw disk2.raw
out=$("$VDISK" check nomf.ova) || fail "check without manifest: $out"
assert_eq "$out" "No errors were found on the image." "no manifest is not an error"

# Corrupt header checksum of the second member (vm.mf at 512 + ovf blocks).
cp vm-ustar.ova badsum.ova
ovf_blocks=$(( ($(stat -c %s src/vm.ovf) + 511) / 512 ))
hoff=$(( 512 + ovf_blocks * 512 ))
printf 'X' | dd of=badsum.ova bs=1 seek=$((hoff + 1)) conv=notrunc status=none
set +e
err=$("$VDISK" info badsum.ova 2>&1 >/dev/null)
rc=$?
set -e
assert_eq "$rc" 1 "info exit code on a bad tar checksum"
case "$err" in
*"vdisk: tar: badsum.ova: header at offset $hoff: checksum mismatch (stored '"*) ;;
*) fail "bad checksum message: $err" ;;
esac

# FUSE: layout, disk bytes, descriptor, info.json.
if [ -e /dev/fuse ]; then
    M=$T/mnt
    vmount "$M" vm-gnu.ova
    ls "$M/vm-gnu" | sort > layout
    if command -v sfdisk >/dev/null; then
        printf 'disk1-p1.raw\ndisk1.raw\ndisk2.raw\ninfo.json\nvm.ovf\n' > want
    else
        printf 'disk1.raw\ndisk2.raw\ninfo.json\nvm.ovf\n' > want
    fi
    diff -u want layout || fail "OVA mount layout"
    assert_eq "$(sha "$M/vm-gnu/disk1.raw")" "$(sha src/disk1.raw)" "disk1 bytes"
    assert_eq "$(sha "$M/vm-gnu/disk2.raw")" "$(sha src/disk2.raw)" "disk2 bytes"
    tar -xOf vm-gnu.ova vm.ovf | cmp - "$M/vm-gnu/vm.ovf" || fail "descriptor as stored"
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["ovf"]["name"]=="web01"' \
        "$M/vm-gnu/info.json" || fail "info.json ovf object"
    vumount "$M"
fi

# COT samples: VirtualBox OVF 2.0 + streamOptimized VMDK; upstream manifest.
mkdir cot
for f in ubuntu.2.0.ovf ubuntu.2.0.mf ubuntu.2.0-disk1.vmdk input.ovf input.mf input.vmdk; do
    xz -dc "$VD_TEST_DATA/samples/cot/$f.xz" > "cot/$f"
done
tar --format=ustar -C cot -cf ubuntu.ova ubuntu.2.0.ovf ubuntu.2.0.mf ubuntu.2.0-disk1.vmdk
out=$("$VDISK" check ubuntu.ova) || fail "COT ubuntu OVA check: $out"
assert_eq "$out" "No errors were found on the image." "COT ubuntu manifest verifies"
"$VDISK" info --json ubuntu.ova > cot.json || fail "COT ubuntu info"
python3 - cot.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
o = j["ovf"]
assert (o["version"], o["name"], o["os"], o["os_id"], o["cpus"], o["memory_bytes"]) == \
    ("2.0", "ubuntu", "Ubuntu_64", 94, 1, 512 << 20), o
assert o["disks"] == [{"disk_id": "vmdisk1", "file": "ubuntu.2.0-disk1.vmdk",
                       "capacity": 8589934592,
                       "format": "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"}], o
d = j["disks"][0]
assert d["format"] == "vmdk" and d["virtual_size"] == 8589934592, d
PY
tar --format=ustar -C cot -cf input.ova input.ovf input.mf input.vmdk
set +e
out=$("$VDISK" check input.ova)
rc=$?
set -e
assert_eq "$rc" 2 "COT input OVA: files listed but absent"
assert_eq "$out" "ERROR: manifest: input.iso: listed in the manifest but not in the archive
ERROR: manifest: sample_cfg.txt: listed in the manifest but not in the archive
ERROR: ovf: input.iso (file2): not in the archive
ERROR: ovf: sample_cfg.txt (textfile): not in the archive" "COT input check lines"
# Raw content digest of the 1 GiB disk inside, as qemu-img computed it from
# the bare input.vmdk (/work/shared/samples/INDEX.md).
assert_eq "$("$VDISK" hash -q input.ova | cut -d' ' -f1)" \
    49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14 "COT input disk content"

# forklift's OVA: the archive and OVF are fine, its VMDK is not (garbage
# grain size): the error must come from the VMDK driver, naming the member.
xz -dc "$VD_TEST_DATA/samples/forklift-console-plugin/2nd_disk.ova.xz" > 2nd_disk.ova
set +e
err=$("$VDISK" info 2nd_disk.ova 2>&1 >/dev/null)
rc=$?
set -e
assert_eq "$rc" 1 "forklift OVA with a broken VMDK"
case "$err" in
"vdisk: vmdk: 2nd_disk.vmdk: "*) ;;
*) fail "forklift error: $err" ;;
esac
echo OK
