#!/usr/bin/env bash
# LVM2 logical volumes as files (docs/lvm.md). One disk built with lvm2's
# own tools: VG vgt on p1 (LV lin: ext4 made by mkfs.ext4 -d; LV multi:
# three segments out of PV order; a thin pool with a thin LV; a raid1 LV),
# VG vgs on p2+p3 (LV str: 2 stripes of 64 KiB). Checks:
#   - the mapping in info.json equals `lvs -o seg_pe_ranges` and vslvminfo;
#   - lvm-vgt-lin.raw, lvm-vgt-multi.raw, lvm-vgs-str.raw have the sha256
#     of the files the test wrote at pe_start + extents (dd, python);
#   - the ext4 in lvm-vgt-lin.raw loop-mounts and a file reads back;
#   - thin, thin-pool and raid1 LVs are listed with their exact reason and
#     have no file;
#   - with -o overlay, a write across a segment boundary of multi lands on
#     the two extents lvs names;
#   - no lvm or device-mapper program or device is used at run time, while
#     the host's lvm sees the same VG names on the loop devices.
. "$VD_TEST_LIB"
. "$(dirname "$VD_TEST_LIB")/lvm_lib.sh"
need_lvm
need_fuse
need vslvminfo mkfs.ext4 strace
META=$VD_TEST_DATA/lvm
MiB=1048576

cd "$T"
truncate -s 72M a.raw
printf 'label: dos\n,40M,8e\n,12M,8e\n,12M,8e\n' | sfdisk -q a.raw
o1=$(part_off a.raw 1) o2=$(part_off a.raw 2) o3=$(part_off a.raw 3)
loop l1 a.raw "$o1" "$(part_size a.raw 1)"
loop l2 a.raw "$o2" "$(part_size a.raw 2)"
loop l3 a.raw "$o3" "$(part_size a.raw 3)"
mkpv "$l1" pvtpvt-0000-0000-0000-0000-0000-000001 "$META/vgt.meta"
restore vgt "$META/vgt.meta" "$l1"
mkpv "$l2" pvspvs-0000-0000-0000-0000-0000-000001 "$META/vgs.meta"
mkpv "$l3" pvspvs-0000-0000-0000-0000-0000-000002 "$META/vgs.meta"
restore vgs "$META/vgs.meta" "$l2" "$l3"

# The LVs' bytes, written by the test where the metadata puts them
# (pe_start 1 MiB, 1 MiB extents).
mkdir root
head -c 300000 /dev/urandom > root/hello.bin
mkfs.ext4 -q -F -d root lin.img 6M
dd if=lin.img of=a.raw bs=$MiB seek=$((o1 / MiB + 1 + 2)) conv=notrunc status=none
head -c $((6 * MiB)) /dev/urandom > multi.bin
dd if=multi.bin of=a.raw bs=$MiB skip=0 count=2 seek=$((o1 / MiB + 1 + 20)) conv=notrunc status=none
dd if=multi.bin of=a.raw bs=$MiB skip=2 count=3 seek=$((o1 / MiB + 1 + 10)) conv=notrunc status=none
dd if=multi.bin of=a.raw bs=$MiB skip=5 count=1 seek=$((o1 / MiB + 1 + 30)) conv=notrunc status=none
head -c $((8 * MiB)) /dev/urandom > str.bin
# dm-stripe: chunk k of 64 KiB goes to stripe k % 2, row k / 2.
python3 - "$o2" "$o3" <<'PY'
import sys
o = [int(sys.argv[1]) + (1 << 20) + 1 * (1 << 20), int(sys.argv[2]) + (1 << 20) + 3 * (1 << 20)]
data = open("str.bin", "rb").read()
with open("a.raw", "r+b") as f:
    for k in range(len(data) // 65536):
        f.seek(o[k % 2] + (k // 2) * 65536)
        f.write(data[k * 65536:(k + 1) * 65536])
PY

# Oracle 1: lvm2's own reader.
lvs -a --devices "$l1,$l2,$l3" -o vg_name,lv_name,seg_start_pe,seg_pe_ranges --reportformat json \
    > lvs.json 2>/dev/null || fail "lvs"
# Oracle 2: libvslvm. Its 20181227 release stops at the first LV with
# several segments ("invalid physical volume value already set") or
# without stripes (thin, raid1), and cannot parse a stripes list of more
# than one PV ("unsupported character value: 0x2c"): it is asked about
# lin, vgt's first LV; lvs covers the rest.
vslvminfo -o "$o1" a.raw > vsl-vgt.txt 2>&1 || true
"$VDISK" info --json a.raw > info.json || fail "vdisk info --json"

python3 - "$l1" "$l2" "$l3" <<'PY'
import json, re, sys
views = {sys.argv[1]: "disk-p1.raw", sys.argv[2]: "disk-p2.raw", sys.argv[3]: "disk-p3.raw"}
info = json.load(open("info.json"))
vgs = {vg["name"]: vg for vg in info["volume_groups"]}
ES = 1 << 20

def ours(vg, lv):
    l = [x for x in vgs[vg]["logical_volumes"] if x["name"] == lv][0]
    return l, [[(a["device"], a["start_pe"], a["start_pe"] + a["pe_count"] - 1) for a in s["areas"]]
               for s in l["segments"]]

# lvs: one row per segment; ranges "DEV:S-E" per stripe
rows = json.load(open("lvs.json"))["report"][0]["lv"]
for vg, lv in [("vgt", "lin"), ("vgt", "multi"), ("vgs", "str")]:
    segs = sorted([r for r in rows if r["vg_name"] == vg and r["lv_name"] == lv],
                  key=lambda r: int(r["seg_start_pe"]))
    want = []
    for r in segs:
        areas = []
        for rng in r["seg_pe_ranges"].split():
            dev, se = rng.rsplit(":", 1)
            s, e = se.split("-")
            areas.append((views[dev], int(s), int(e)))
        want.append(areas)
    l, got = ours(vg, lv)
    assert got == want, (vg, lv, got, want)
    assert l["unsupported"] is None and l["view"] == "lvm-%s-%s.raw" % (vg, lv), l
    starts = [s["start_extent"] for s in l["segments"]]
    assert starts == [int(r["seg_start_pe"]) for r in segs], (lv, starts)

# vslvminfo: per LV its segments (offset, size) and stripes (PV, data offset)
def vsl(path):
    lvs, cur, seg = {}, None, None
    for line in open(path):
        k, _, v = line.strip().partition(":")
        v = v.strip()
        if k == "Logical Volume (LV)":
            cur = None
        elif k == "Name" and cur is None and line.startswith("\tName"):
            cur = lvs.setdefault(v, [])
        elif k.startswith("Segment") and cur is not None:
            seg = {"stripes": []}
            cur.append(seg)
        elif k == "Offset" and seg is not None:
            seg["off"] = int(re.search(r"\((\d+)\)", v).group(1))
        elif k == "Size" and seg is not None:
            seg["size"] = int(re.search(r"\((\d+) bytes\)", v).group(1))
        elif k == "Physical volume" and seg is not None:
            seg["stripes"].append([v])
        elif k == "Data area offset" and seg is not None:
            seg["stripes"][-1].append(int(re.search(r"\((\d+)\)", v).group(1)))
    return lvs

for vg, lv, path in [("vgt", "lin", "vsl-vgt.txt")]:
    v = vsl(path)[lv]
    l, _ = ours(vg, lv)
    got = [{"off": s["start_extent"] * ES, "size": s["extent_count"] * ES,
            "stripes": [[a["pv"], a["start_pe"] * ES] for a in s["areas"]]} for s in l["segments"]]
    assert sorted(v, key=lambda s: s["off"]) == got, (lv, v, got)

# Not exposed, with the reason.
def reason(vg, lv):
    l, _ = ours(vg, lv)
    assert l["view"] is None and l["size"] == 0, l
    return l["unsupported"]
assert reason("vgt", "thinvol") == 'thin volumes are not supported (VG vgt, LV thinvol, segment1: type "thin")', reason("vgt", "thinvol")
assert reason("vgt", "pool") == 'thin volumes are not supported (VG vgt, LV pool, segment1: type "thin-pool")'
assert reason("vgt", "mirr") == 'RAID volumes are not supported (VG vgt, LV mirr, segment1: type "raid1")'
devs = [b["view"] for b in info["block_devices"]]
assert devs == ["disk.raw", "disk-p1.raw", "disk-p2.raw", "disk-p3.raw", "lvm-vgt-lin.raw",
                "lvm-vgt-multi.raw", "lvm-vgs-str.raw"], devs
lin = [b for b in info["block_devices"] if b["view"] == "lvm-vgt-lin.raw"][0]
assert lin["fstype"] == "ext4" and lin["size"] == 6 << 20, lin
assert info["guest_warnings"] == [], info["guest_warnings"]
PY

out=$("$VDISK" info a.raw)
grep -qxF '  lvm-vgt-multi.raw  VG vgt LV multi  size 6291456  linear' <<<"$out" || fail "vdisk info: $out"
grep -qxF '  VG vgt LV mirr  raid1  not exposed: RAID volumes are not supported (VG vgt, LV mirr, segment1: type "raid1")' <<<"$out" ||
    fail "vdisk info: $out"

# The files, their bytes, and the ext4 inside one. vdiskfs runs under
# strace: it must start no program and open nothing of lvm or
# device-mapper, although the host's lvm sees vgt and vgs on the loops.
vgs --devices "$l1,$l2,$l3" -o vg_name,vg_seqno --noheadings 2>/dev/null | sort > host-before.txt
grep -q vgt host-before.txt || fail "the host's lvm does not see vgt: $(cat host-before.txt)"
mkdir -p m
# LeakSanitizer cannot run under ptrace: the ASan build's strace'd daemon
# runs without it (as in t-export-durability).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=execve,open,openat -o strace.log "$VDISKFS" -f a.raw m &
MOUNTS+=("m")
for i in $(seq 1 100); do mountpoint -q m && break; sleep 0.1; done
mountpoint -q m || fail "vdiskfs did not mount"
ls m/a > ls.txt
assert_eq "$(tr '\n' ' ' < ls.txt)" "disk-p1.raw disk-p2.raw disk-p3.raw disk.raw info.json lvm-vgs-str.raw lvm-vgt-lin.raw lvm-vgt-multi.raw " "files"
assert_eq "$(sha m/a/lvm-vgt-lin.raw)" "$(sha lin.img)" "lvm-vgt-lin.raw bytes"
assert_eq "$(sha m/a/lvm-vgt-multi.raw)" "$(sha multi.bin)" "lvm-vgt-multi.raw bytes"
assert_eq "$(sha m/a/lvm-vgs-str.raw)" "$(sha str.bin)" "lvm-vgs-str.raw bytes"
python3 -c "import json; j=json.load(open('m/a/info.json')); k=json.load(open('info.json')); assert j['volume_groups'] == k['volume_groups'], 'info.json differs from vdisk info --json'"
mkdir ext
mount -o loop,ro m/a/lvm-vgt-lin.raw ext || fail "loop mount of lvm-vgt-lin.raw"
MOUNTS=(ext "${MOUNTS[@]}")
assert_eq "$(sha ext/hello.bin)" "$(sha root/hello.bin)" "file read back from the ext4 in the LV"
umount ext
fusermount3 -u m
wait
if grep -E 'execve\(' strace.log | grep -v "$(basename "$VDISKFS")" | grep -q .; then
    fail "vdiskfs started a program: $(grep execve strace.log | head -3)"
fi
if grep -E 'mapper|/etc/lvm|/run/lvm|libdevmapper|liblvm' strace.log | grep -q .; then
    fail "vdiskfs touched lvm or device-mapper: $(grep -E 'mapper|lvm' strace.log | head -3)"
fi
vgs --devices "$l1,$l2,$l3" -o vg_name,vg_seqno --noheadings 2>/dev/null | sort > host-after.txt
cmp -s host-before.txt host-after.txt || fail "the host's view of the VGs changed"

# Writes with -o overlay: 4 KiB across the end of multi's segment 1
# (LV offset 2 MiB - 2 KiB) land at the end of PV extent 21 and the start
# of extent 10, as lvs said.
head -c 4096 /dev/urandom > w.bin
vmount m2 -o overlay="$T/ov.vdov" a.raw
dd if=w.bin of=m2/a/lvm-vgt-multi.raw bs=2048 seek=$((2 * MiB / 2048 - 1)) conv=notrunc status=none
sync
p1=$(mktemp -p "$T")
dd if=m2/a/disk-p1.raw of="$p1" bs=2048 skip=$(((MiB + 22 * MiB) / 2048 - 1)) count=1 status=none
dd if=m2/a/disk-p1.raw bs=2048 skip=$(((MiB + 10 * MiB) / 2048)) count=1 status=none >> "$p1"
assert_eq "$(sha "$p1")" "$(sha w.bin)" "overlay write through the LV, read from the partition"
dd if=m2/a/lvm-vgt-multi.raw of="$p1" bs=2048 skip=$((2 * MiB / 2048 - 1)) count=2 status=none
assert_eq "$(sha "$p1")" "$(sha w.bin)" "overlay write read back through the LV"
vumount m2

# The same LVs as NBD exports of the nbdkit plugin (docs/nbd.md), read by
# nbdcopy: the bytes lvs's mapping and dd gave, and the overlay's write.
PLUGIN=$(dirname "$VDISK")/nbdkit-vdisk-plugin.so
if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
    [ -f "$PLUGIN" ] || fail "nbdkit is installed but $PLUGIN was not built"
    nbd() { nbdkit -r -U - "$PLUGIN" a.raw "$@" --run 'nbdcopy "$uri" - | sha256sum' | cut -d' ' -f1; }
    assert_eq "$(nbd device=lvm-vgt-lin)" "$(sha lin.img)" "NBD export lvm-vgt-lin"
    assert_eq "$(nbd device=lvm-vgs-str)" "$(sha str.bin)" "NBD export lvm-vgs-str (striped)"
    nbdkit -U - "$PLUGIN" a.raw device=lvm-vgt-multi overlay="$T/ov.vdov" --run 'nbdcopy "$uri" multi-nbd.raw'
    dd if=multi-nbd.raw of="$p1" bs=2048 skip=$((2 * MiB / 2048 - 1)) count=2 status=none
    assert_eq "$(sha "$p1")" "$(sha w.bin)" "NBD export lvm-vgt-multi with the overlay"
else
    echo "note: nbdkit/nbdcopy are not installed: the LV exports were not tried"
fi
echo PASS
