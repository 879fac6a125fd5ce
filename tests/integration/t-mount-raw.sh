#!/usr/bin/env bash
# The read-only mount on raw images built by independent tools (sfdisk,
# mkfs.ext4 -d): layout, MBR logical and GPT partitions found by libblkid,
# a loop mount of the guest filesystem, several sources with a name clash,
# SEEK_HOLE, info.json, and that nothing writes the source.
. "$VD_TEST_LIB"
need_fuse; need sfdisk mkfs.ext4 python3 losetup

mkdir -p "$T/root/etc" "$T/a" "$T/b"
echo "hello from the guest" > "$T/root/etc/motd"
seq 1 20000 > "$T/root/etc/numbers"

# MBR: p1 ext4, p2 extended with logical p5, p6.
img=$T/a/web01.img
truncate -s 96M "$img"
printf 'label: dos\n,40M,83\n,,5\n,8M,83\n,8M,82\n' | sfdisk -q "$img"
truncate -s 40M "$T/p1.ext4"
mkfs.ext4 -q -F -d "$T/root" "$T/p1.ext4"
dd if="$T/p1.ext4" of="$img" bs=1M seek=1 conv=notrunc status=none
# GPT disk with the same base name in another folder: becomes web01-2.
gpt=$T/b/web01.raw
truncate -s 64M "$gpt"
printf 'label: gpt\nsize=16M, type=L, name="boot"\nsize=16M\n' | sfdisk -q "$gpt"
before=$(sha "$img")

M=$T/mnt
vmount "$M" "$img" "$gpt"

ls "$M" | sort > "$T/top"
printf 'web01\nweb01-2\n' > "$T/want"
diff -u "$T/want" "$T/top" || fail "top-level layout"
ls "$M/web01" | sort > "$T/l1"
printf 'disk-p1.raw\ndisk-p5.raw\ndisk-p6.raw\ndisk.raw\ninfo.json\n' > "$T/w1"
diff -u "$T/w1" "$T/l1" || fail "MBR layout (logical partitions number from 5)"
ls "$M/web01-2" | sort > "$T/l2"
printf 'disk-p1.raw\ndisk-p2.raw\ndisk.raw\ninfo.json\n' > "$T/w2"
diff -u "$T/w2" "$T/l2" || fail "GPT layout"

assert_eq "$(sha "$M/web01/disk.raw")" "$before" "disk.raw content"
assert_eq "$(stat -c %s "$M/web01/disk-p5.raw")" "$((8 * 1024 * 1024))" "p5 size"
# Partition bytes equal the same window of the source (offsets from sfdisk).
start5=$(sfdisk -d "$img" | awk -F'[=,]' '/img5/{gsub(/ /,"",$2); print $2}')
assert_eq "$(sha "$M/web01/disk-p5.raw")" \
    "$(dd if="$img" bs=512 skip="$start5" count=16384 status=none | sha256sum | cut -d' ' -f1)" "p5 bytes"
assert_eq "$(sha "$M/web01/disk-p1.raw")" "$(sha "$T/p1.ext4")" "p1 bytes"

# The guest filesystem through a loop mount of the partition file.
mkdir -p "$T/guest"
mount -o loop,ro "$M/web01/disk-p1.raw" "$T/guest"
MOUNTS+=("$T/guest")
assert_eq "$(cat "$T/guest/etc/motd")" "hello from the guest" "file inside the guest"
cmp "$T/guest/etc/numbers" "$T/root/etc/numbers" || fail "guest file differs"
umount "$T/guest"

# info.json is valid JSON and names the partitions.
python3 - "$M/web01/info.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
d = j["disks"][0]
assert j["format"] == "raw", j
assert d["virtual_size"] == 96 * 2**20, d
views = [p["view"] for p in d["partition_table"]["partitions"]]
assert views == ["disk-p1.raw", "disk-p5.raw", "disk-p6.raw"], views
assert d["partition_table"]["scheme"] == "dos"
PY
name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["partition_table"]["partitions"][0]["name"])' "$M/web01-2/info.json")
assert_eq "$name" "boot" "GPT partition name"

# Read-only: writes are refused and the source is untouched.
if echo x 2>/dev/null > "$M/web01/disk.raw"; then fail "write to a read-only mount succeeded"; fi
# SEEK_DATA/SEEK_HOLE through the mount walk the same extents as the sparse
# source file itself (holes left by truncate, sfdisk and dd).
python3 - "$M/web01/disk.raw" "$img" <<'PY'
import os, sys
def extents(path):
    fd = os.open(path, os.O_RDONLY)
    size, pos, out = os.fstat(fd).st_size, 0, []
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        pos = h
    return out
got, want = extents(sys.argv[1]), extents(sys.argv[2])
assert len(want) > 1, want  # the source really is sparse
assert got == want, (got, want)
PY
vumount "$M"
mountpoint -q "$M" && fail "still mounted after fusermount3 -u"
assert_eq "$(sha "$img")" "$before" "source changed by a read-only mount"

# Foreground mode (-f) also serves and unmounts cleanly.
"$VDISKFS" -f "$img" "$M" & pid=$!
for i in $(seq 1 100); do mountpoint -q "$M" && break; sleep 0.05; done
assert_eq "$(sha "$M/web01/disk.raw")" "$before" "foreground mount"
fusermount3 -u "$M"
wait $pid || fail "vdiskfs -f exited non-zero after unmount"

# Debug mode (-d) stays in the foreground and logs each FUSE request.
"$VDISKFS" -d "$img" "$M" 2>"$T/debug.log" & pid=$!
for i in $(seq 1 100); do mountpoint -q "$M" && break; sleep 0.05; done
cat "$M/web01/info.json" >/dev/null
fusermount3 -u "$M"
wait $pid || fail "vdiskfs -d exited non-zero after unmount"
grep -q "LOOKUP" "$T/debug.log" || fail "-d logged no FUSE requests"

# A missing source is a clear error, not a mount.
out=$("$VDISKFS" "$T/nope.vmdk" "$M" 2>&1) && fail "mounted a missing file"
echo "$out" | grep -q "nope.vmdk: cannot open: No such file or directory" || fail "message: $out"
echo "PASS"
