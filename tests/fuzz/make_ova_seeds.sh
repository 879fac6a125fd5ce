#!/usr/bin/env bash
# Regenerate the seed corpora of fuzz_tar and fuzz_ovf (small: < 100 KB each).
# Usage: tests/fuzz/make_ova_seeds.sh   (from the repository root)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out_tar=$root/tests/fuzz/corpus/fuzz_tar
out_ovf=$root/tests/fuzz/corpus/fuzz_ovf
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$out_tar" "$out_ovf"

for f in input.ovf ubuntu.2.0.ovf vmware.ovf; do
    xz -dc "$root/tests/data/samples/cot/$f.xz" > "$out_ovf/$f"
done

cd "$w"
long=disk-with-a-name-longer-than-one-hundred-characters-so-that-tar-needs-an-extension-header-xxxxxxxxx.raw
head -c 1024 /dev/urandom > disk1.raw
printf 'hello' > "$long"
cat > vm.ovf <<OVF
<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
<References><File ovf:id="f1" ovf:href="disk1.raw" ovf:size="1024"/><File ovf:id="f2" ovf:href="$long"/></References>
<DiskSection><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^10"/><Disk ovf:diskId="d2" ovf:fileRef="f2" ovf:capacity="5"/></DiskSection>
<NetworkSection><Network ovf:name="lan"/></NetworkSection>
<VirtualSystem ovf:id="vm"><Name>vm</Name><OperatingSystemSection ovf:id="96"><Description>Debian</Description></OperatingSystemSection>
<VirtualHardwareSection><Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
<Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item></VirtualHardwareSection></VirtualSystem></Envelope>
OVF
sha256sum vm.ovf disk1.raw "$long" | awk '{print "SHA256(" $2 ")= " $1}' > vm.mf
cp vm.ovf "$out_ovf/synthetic.ovf"
for fmt in ustar gnu pax v7; do
    if [ $fmt = ustar ] || [ $fmt = v7 ]; then
        # one-disk descriptor under the same name (its manifest line then mismatches)
        sed -e 's|<File ovf:id="f2"[^>]*>||' -e 's|<Disk ovf:diskId="d2"[^>]*>||' vm.ovf > vm1.ovf
        tar --format=$fmt --transform 's/^vm1.ovf$/vm.ovf/' -cf "$out_tar/$fmt.ova" vm1.ovf vm.mf disk1.raw
    else
        tar --format=$fmt -cf "$out_tar/$fmt.ova" vm.ovf vm.mf disk1.raw "$long"
    fi
done
# pax global header (as git archive writes) and a GNU base-256 size field
python3 - "$out_tar" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "0123456789abcdef"}) as t:
    for name in ("vm.ovf", "vm.mf", "disk1.raw"):
        t.add(name)
open(out + "/pax-global.ova", "wb").write(buf.getvalue())
ti = tarfile.TarInfo("disk1.raw"); ti.size = 1024
hdr = bytearray(ti.tobuf(format=tarfile.GNU_FORMAT))
hdr[124:136] = b"\x80" + (1024).to_bytes(11, "big")
hdr[148:156] = b"        "
hdr[148:156] = b"%06o\0 " % sum(hdr)
assert len(hdr) == 512
with open(out + "/gnu-base256.ova", "wb") as f:
    f.write(bytes(hdr) + b"\1" * 1024 + bytes(1024))
PY
ls -la "$out_tar" "$out_ovf"
