#!/usr/bin/env bash
# OVA members over 8 GiB, which the 11-digit octal size field cannot hold:
# GNU tar writes a base-256 size (format gnu) or a pax "size=" record
# (format pax). The headers come from GNU tar itself; the 9 GiB of member
# data are a sparse hole with markers, so the test needs no real space.
# GNU tar and python's tarfile check the archives; we must find the same
# member windows and read the markers back through info, check and FUSE.
. "$VD_TEST_LIB"
need tar python3

cd "$T"
SIZE=$((9 * 1024 * 1024 * 1024 + 1000)) # not a whole number of blocks
head -c 65536 /dev/urandom > disk1.raw
truncate -s "$SIZE" big.raw
cat > vm.ovf <<EOF
<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2">
  <References>
    <File ovf:href="disk1.raw" ovf:id="f1" ovf:size="65536"/>
    <File ovf:href="big.raw" ovf:id="f2" ovf:size="$SIZE"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="65536" ovf:diskId="small" ovf:fileRef="f1"/>
    <Disk ovf:capacity="$SIZE" ovf:diskId="big" ovf:fileRef="f2"/>
  </DiskSection>
  <VirtualSystem ovf:id="big-vm"><Info>vm</Info></VirtualSystem>
</Envelope>
EOF

blocks() { echo $(( ($1 + 511) / 512 * 512 )); }

# make_big FMT OUT: vm.ovf and disk1.raw by GNU tar, then big.raw's header(s)
# as GNU tar writes them, then a hole with markers where the data goes.
make_big() {
    local fmt=$1 out=$2
    tar --format="$fmt" -cf head.tar vm.ovf disk1.raw
    # end of disk1.raw's data (pax adds extended headers, so ask tarfile)
    local small
    small=$(python3 -c 'import sys,tarfile; m=tarfile.open(sys.argv[1]).getmember("disk1.raw"); print(m.offset_data + m.size)' head.tar)
    head -c "$small" head.tar > "$out"
    # GNU tar streams big.raw after its header; head stops it early (SIGPIPE).
    (set +o pipefail; tar --format="$fmt" -cf - big.raw | head -c 8192 > bighead.bin)
    local hlen
    hlen=$(python3 - bighead.bin <<'PY'
import io, sys, tarfile
t = tarfile.open(fileobj=io.BytesIO(open(sys.argv[1], "rb").read()), mode="r:")
m = t.next()
print(m.offset_data)
PY
)
    head -c "$hlen" bighead.bin >> "$out"
    local data=$(( small + hlen ))
    printf 'BEGIN-MARK' | dd of="$out" bs=1 seek="$data" conv=notrunc status=none
    printf 'MIDDLE-MARK' | dd of="$out" bs=1 seek=$(( data + 8 * 1024 * 1024 * 1024 + 3 )) conv=notrunc status=none
    printf 'END-MARK!' | dd of="$out" bs=1 seek=$(( data + SIZE - 9 )) conv=notrunc status=none
    truncate -s $(( data + $(blocks "$SIZE") + 1024 )) "$out"
    echo "$data"
}

gnu_data=$(make_big gnu big-gnu.ova)
pax_data=$(make_big pax big-pax.ova)

# What GNU tar wrote: base-256 in the gnu header, size= in the pax one.
python3 - big-gnu.ova big-pax.ova "$SIZE" "$gnu_data" "$pax_data" <<'PY'
import sys, tarfile
gnu, pax, size, gd, pd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
raw = open(gnu, "rb").read(gd)
assert raw[gd - 512 + 124] == 0x80, "GNU tar did not write a base-256 size"
raw = open(pax, "rb").read(pd)
assert b" size=%d\n" % size in raw, "GNU tar did not write a pax size record"
for path, d in ((gnu, gd), (pax, pd)):
    m = tarfile.open(path).getmember("big.raw")
    assert (m.size, m.offset_data) == (size, d), (path, m.size, m.offset_data)
PY
tar -tvf big-gnu.ova | grep -q " $SIZE .*big.raw" || fail "GNU tar lists another size (gnu)"
tar -tvf big-pax.ova | grep -q " $SIZE .*big.raw" || fail "GNU tar lists another size (pax)"

for f in big-gnu.ova big-pax.ova; do
    "$VDISK" info --json "$f" > info.json || fail "vdisk info $f"
    python3 - info.json "$SIZE" <<'PY' || fail "info of $f"
import json, sys
j = json.load(open(sys.argv[1]))
size = int(sys.argv[2])
assert [d["virtual_size"] for d in j["disks"]] == [65536, size], j["disks"]
assert j["ovf"]["version"] == "2.x" and j["ovf"]["name"] == "big-vm", j["ovf"]
assert j["ovf"]["disks"][1]["capacity"] == size, j["ovf"]
PY
    out=$("$VDISK" check "$f") || fail "check $f: $out"
    assert_eq "$out" "No errors were found on the image." "check $f (ovf:size matches)"
done

if [ -e /dev/fuse ]; then
    M=$T/mnt
    vmount "$M" big-gnu.ova big-pax.ova
    for n in big-gnu big-pax; do
        assert_eq "$(stat -c %s "$M/$n/disk2.raw")" "$SIZE" "$n disk2 size"
        cmp disk1.raw "$M/$n/disk1.raw" || fail "$n disk1 bytes"
        python3 - "$M/$n/disk2.raw" "$SIZE" <<'PY' || fail "$n markers"
import sys
size = int(sys.argv[2])
with open(sys.argv[1], "rb") as f:
    assert f.read(10) == b"BEGIN-MARK"
    f.seek(8 * 1024**3 + 3); assert f.read(11) == b"MIDDLE-MARK"
    f.seek(size - 9); assert f.read(9) == b"END-MARK!"
    f.seek(4 * 1024**3); assert f.read(4096) == bytes(4096)
PY
    done
    vumount "$M"
fi
echo OK
