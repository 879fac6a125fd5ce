#!/usr/bin/env bash
# The OVF descriptor inside our OVA validates against the DMTF OVF 1.x envelope
# schema (DSP8023 1.1.1) and the CIM VSSD/RASD schemas it imports, checked by
# xmllint (libxml2), an independent validator; copies of the XSDs are in
# tests/data/ovf-schema/ (see SOURCE.md there). Also: the schema is not
# vacuous (a descriptor missing a required element or out of sequence order
# is rejected, with libxml2's exact message), and the COT sample descriptors
# that claim OVF 1.x validate too. ubuntu.2.0.ovf is OVF 2.0 (envelope/2
# namespace, DSP8023 2.x) and is out of scope for a 1.x schema.
. "$VD_TEST_LIB"
need xmllint tar xz truncate

XSD_DIR="$VD_TEST_DATA/ovf-schema"
XSD="$XSD_DIR/dsp8023_1.1.1.xsd"
for f in dsp8023_1.1.1.xsd common.xsd CIM_VirtualSystemSettingData.xsd \
    CIM_ResourceAllocationSettingData.xsd xml.xsd; do
    [ -f "$XSD_DIR/$f" ] || fail "OVF schema file $f is missing from tests/data/ovf-schema (checked in)"
done

# validate FILE: xmllint must say "FILE validates" and exit 0. --nonet: the
# CIM schemas' absolute import of common.xsd is skipped because the envelope
# schema already imported that namespace from the local copy.
validate() {
    local out
    out=$(xmllint --noout --nonet --schema "$XSD" "$1" 2>&1) ||
        fail "$(basename "$1") does not validate against DSP8023 1.1.1:
$(grep -v 'Skipping import' <<<"$out")"
    grep -qx "$1 validates" <<<"$out" || fail "xmllint did not report '$1 validates': $out"
}

# reject FILE MESSAGE: xmllint must fail with exactly this validity error.
reject() {
    local out rc=0
    out=$(xmllint --noout --nonet --schema "$XSD" "$1" 2>&1) || rc=$?
    [ "$rc" -eq 3 ] || fail "xmllint exit $rc for invalid $(basename "$1"), expected 3: $out"
    grep -qxF "$2" <<<"$out" || fail "missing validity error for $(basename "$1"):
expected: $2
got: $out"
}

cd "$T"
# An 8 MiB disk with 1 MiB of data in the middle, and an odd-sized one whose
# name needs sanitising (the stem becomes VirtualSystem ovf:id and Name).
truncate -s 8M disk.raw
head -c 1M /dev/urandom | dd of=disk.raw bs=1M seek=3 conv=notrunc status=none
printf 'data' | dd of=disk.raw bs=1 seek=$((7 * 1024 * 1024)) conv=notrunc status=none
"$VDISK" convert -O ova disk.raw out.ova
mkdir x
tar -xf out.ova -C x
[ -f x/out.ovf ] || fail "out.ova has no out.ovf: $(tar -tf out.ova | tr '\n' ' ')"
validate x/out.ovf

truncate -s $((3 * 1024 * 1024 + 512)) 'odd name&.raw'
"$VDISK" convert -O ova -o ova_manifest=sha1 'odd name&.raw' 'odd name&.ova'
mkdir y
tar -xf 'odd name&.ova' -C y
ovf=$(find y -name '*.ovf')
[ -n "$ovf" ] || fail "no .ovf in 'odd name&.ova'"
validate "$ovf"

# The schema really checks sequence and required elements (so a pass above
# means something): drop the disk Item's InstanceID, and the VirtualSystem's Info.
RASD='{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}'
OVFNS='{http://schemas.dmtf.org/ovf/envelope/1}'
grep -q '<rasd:InstanceID>4</rasd:InstanceID>' x/out.ovf || fail "no disk Item InstanceID 4 in out.ovf"
sed 's#<rasd:InstanceID>4</rasd:InstanceID>##' x/out.ovf > neg1.ovf
line=$(grep -n '<rasd:Parent>3</rasd:Parent>' neg1.ovf | cut -d: -f1)
reject neg1.ovf "neg1.ovf:$line: element Parent: Schemas validity error : Element '${RASD}Parent': This element is not expected. Expected is one of ( ${RASD}HostResource, ${RASD}InstanceID )."
sed 's#<Info>A virtual machine</Info>##' x/out.ovf > neg2.ovf
line=$(grep -n '<Name>out</Name>' neg2.ovf | cut -d: -f1)
reject neg2.ovf "neg2.ovf:$line: element Name: Schemas validity error : Element '${OVFNS}Name': This element is not expected. Expected is ( ${OVFNS}Info )."

# COT samples that claim OVF 1.x (envelope/1 namespace).
for s in input vmware; do
    f=$(sample "samples/cot/$s.ovf.xz")
    grep -q 'http://schemas.dmtf.org/ovf/envelope/1' "$f" || fail "$s.ovf is not OVF 1.x"
    validate "$f"
done
echo "OK: our OVF (2 variants) and COT input.ovf, vmware.ovf validate against DSP8023 1.1.1"
