#!/bin/bash
# Writes in place through `vdiskfs -o rw` into fixed and dynamic VHDX made by
# qemu-img: unaligned, across block boundaries, into present and new blocks,
# from several dd processes at once. After unmounting, `qemu-img check` must
# be clean, and qemu-img, vhdimount and vdisk must read what a raw copy given
# the same writes holds. Also: ext4 made and filled through a partition of
# the mount (e2fsck on qemu's conversion), a dirty log replayed into the file
# at a rw open, differencing disks refused, and a daemon killed with -9 in
# the middle of writes leaves an image that qemu-img check and vdisk accept.
. "$VD_TEST_LIB"
[ -x "$VDISK" ] || fail "vdisk CLI not built ($VDISK): build the tree first"
need_fuse
need qemu-img qemu-io python3 sfdisk mkfs.ext4 e2fsck debugfs
GEN="$VD_TEST_DATA/gen-vhdx.py"

RAW=$T/disk.raw
truncate -s 20M "$RAW"
python3 - "$RAW" <<'EOF'
import random, sys
r = random.Random(5)
with open(sys.argv[1], 'r+b') as f:
    for off in (0, 0x300000, 0xB00000 + 777 * 512):
        f.seek(off)
        f.write(r.randbytes(0x30000))
EOF
mkdir -p "$T/img"
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$RAW" "$T/img/dyn.vhdx"
qemu-img convert -f raw -O vhdx -o subformat=dynamic "$RAW" "$T/img/big.vhdx" # qemu's default blocks
qemu-img convert -f raw -O vhdx -o subformat=fixed "$RAW" "$T/img/fix.vhdx"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/pattern"

# apply FILE: the same writes into a raw copy or a mounted view.
apply() {
    local f=$1
    # present block 0, unaligned
    dd if="$T/pattern" of="$f" bs=1000 count=1 seek=12345 oflag=seek_bytes conv=notrunc status=none
    # blocks 1-2 (1 is not present, 2 half), crossing boundaries
    dd if="$T/pattern" of="$f" bs=4096 skip=5 count=300 seek=$(((2 * 1024 * 1024 - 600 * 1024) / 4096)) conv=notrunc status=none &
    # odd offset and length across the 4 MiB and 5 MiB boundaries
    dd if="$T/pattern" of="$f" bs=64K skip=77 count=1200000 seek=$((4 * 1024 * 1024 - 333)) \
        iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc status=none &
    # last block, unaligned, concurrently
    dd if="$T/pattern" of="$f" bs=512 skip=9 count=700 seek=$((19 * 2048 + 3)) conv=notrunc status=none &
    # zeros into a block that is not present must not allocate it
    dd if=/dev/zero of="$f" bs=64K count=4 seek=$((16 * 16)) conv=notrunc status=none &
    wait
}
cp "$RAW" "$T/want.raw"
apply "$T/want.raw"
WANT=$(sha "$T/want.raw")

M=$T/mnt
vmount "$M" -o rw "$T/img/dyn.vhdx" "$T/img/big.vhdx" "$T/img/fix.vhdx"
for n in dyn big fix; do apply "$M/$n/disk.raw"; done
assert_eq "$(sha "$M/dyn/disk.raw")" "$WANT" "dynamic, read back through the mount"
vumount "$M"

for n in dyn big fix; do
    qemu-img check -f vhdx "$T/img/$n.vhdx" >"$T/qc" || fail "$n: qemu-img check: $(cat "$T/qc")"
    assert_eq "$(qemu_raw_sha "$T/img/$n.vhdx" vhdx)" "$WANT" "$n: qemu-img after writes"
    "$VDISK" check "$T/img/$n.vhdx" >"$T/vc" || fail "$n: vdisk check: $(cat "$T/vc")"
    assert_eq "$("$VDISK" hash -q "$T/img/$n.vhdx" | cut -d' ' -f1)" "$WANT" "$n: vdisk"
    "$VDISK" info --json "$T/img/$n.vhdx" >"$T/$n.json"
    grep -qF '"log_guid": "{00000000-0000-0000-0000-000000000000}"' "$T/$n.json" ||
        fail "$n: the log is not empty after unmount"
done
# qemu's blocks 0, 3, 11 plus new blocks 1, 2, 4, 5, 19; not 16 (zeros)
ALLOC=$("$VDISK" info --json "$T/img/dyn.vhdx" | python3 -c 'import json,sys; print(json.load(sys.stdin)["disks"][0]["allocated_size"])')
BASE=$(stat -c %s "$T/img/dyn.vhdx")
[ "$(( BASE % 1048576 ))" = 0 ] || fail "file size $BASE is not 1 MiB aligned"
if command -v vhdimount >/dev/null; then
    for n in dyn fix; do
        mkdir -p "$T/v"
        vhdimount "$T/img/$n.vhdx" "$T/v" >/dev/null
        MOUNTS+=("$T/v")
        assert_eq "$(sha "$T/v/vhdi1")" "$WANT" "$n: vhdimount after writes"
        fusermount3 -u "$T/v"
    done
else
    echo "note: vhdimount not installed, that oracle was skipped"
fi
# 4 MiB of headers, BAT, metadata and log plus those 8 blocks
assert_eq "$ALLOC" $((12 * 1048576)) "allocated after writes"

# Header fields the spec asks for: new FileWriteGuid and DataWriteGuid,
# both headers valid with consecutive sequence numbers.
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$RAW" "$T/img/g.vhdx"
"$VDISK" info --json "$T/img/g.vhdx" >"$T/g0.json"
vmount "$M" -o rw "$T/img/g.vhdx"
dd if="$T/pattern" of="$M/g/disk.raw" bs=4096 count=1 seek=700 conv=notrunc status=none
vumount "$M"
"$VDISK" info --json "$T/img/g.vhdx" >"$T/g1.json"
python3 - "$T/g0.json" "$T/g1.json" "$T/img/g.vhdx" <<'EOF'
import json, sys, struct
a, b = (json.load(open(p))["disks"][0]["vhdx"] for p in sys.argv[1:3])
assert a["file_write_guid"] != b["file_write_guid"], "FileWriteGuid unchanged"
assert a["data_write_guid"] != b["data_write_guid"], "DataWriteGuid unchanged"
d = open(sys.argv[3], "rb").read(192 * 1024)
seqs = sorted(struct.unpack_from("<Q", d, off + 8)[0] for off in (65536, 131072))
assert seqs[1] == seqs[0] + 1, seqs
assert all(d[off:off + 4] == b"head" for off in (65536, 131072))
EOF
"$VDISK" check "$T/img/g.vhdx" >/dev/null || fail "both headers must be valid"

# ext4 in a partition of a dynamic VHDX, made and filled through the mount.
truncate -s 48M "$T/p.raw"
echo 'start=2048, type=83' | sfdisk -q "$T/p.raw"
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$T/p.raw" "$T/img/p.vhdx"
vmount "$M" -o rw "$T/img/p.vhdx"
mkfs.ext4 -q -F "$M/p/disk-p1.raw"
mkdir -p "$T/ext"
losetup -f >/dev/null 2>&1 || skip "no free loop device on this machine (losetup -f)"
mount -o loop "$M/p/disk-p1.raw" "$T/ext" || fail "loop mount of our rw view disk-p1.raw (ext4 made by mkfs.ext4 through it)"
MOUNTS=("$T/ext" "${MOUNTS[@]}")
cp "$T/pattern" "$T/ext/pattern"
seq 1 20000 >"$T/ext/numbers"
umount "$T/ext"
vumount "$M"
qemu-img check -f vhdx "$T/img/p.vhdx" >"$T/qc" || fail "ext4 image: qemu-img check: $(cat "$T/qc")"
qemu-img convert -f vhdx -O raw "$T/img/p.vhdx" "$T/p.out"
dd if="$T/p.out" of="$T/p1.out" bs=1M skip=1 status=none
e2fsck -fn "$T/p1.out" >"$T/fsck" 2>&1 || fail "e2fsck: $(cat "$T/fsck")"
debugfs -R "cat /pattern" "$T/p1.out" 2>/dev/null >"$T/pattern.out"
assert_eq "$(sha "$T/pattern.out")" "$(sha "$T/pattern")" "file read back from ext4"

# A dirty log is replayed into the file at a rw open (a read-only mount
# leaves the file alone), then written to.
qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$T/base.vhdx" 8M
qemu-io -f vhdx -c 'write -P 0xaa 0 1M' -c 'write -P 0x55 2M 512k' -c 'write -P 0x11 5M 1M' \
    "$T/base.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/base.vhdx" "$T/base.raw"
python3 "$GEN" log "$T/base.vhdx" "$T/base.raw" "$T/log"
cp "$T/log/log.vhdx" "$T/img/log.vhdx"
before=$(sha "$T/img/log.vhdx")
vmount "$M" "$T/img/log.vhdx"
assert_eq "$(sha "$M/log/disk.raw")" "$(sha "$T/log/log.raw")" "dirty log, read-only mount"
vumount "$M"
assert_eq "$(sha "$T/img/log.vhdx")" "$before" "read-only mount changed the file"
qemu-img check -f vhdx "$T/img/log.vhdx" >/dev/null 2>&1 && fail "qemu-img should see a dirty log"
vmount "$M" -o rw "$T/img/log.vhdx"
assert_eq "$(sha "$M/log/disk.raw")" "$(sha "$T/log/log.raw")" "dirty log, rw mount"
cp "$T/log/log.raw" "$T/logw.raw"
for f in "$M/log/disk.raw" "$T/logw.raw"; do
    dd if="$T/pattern" of="$f" bs=5000 count=1 skip=3 seek=$((10 * 1024 * 1024 - 77)) \
        iflag=skip_bytes oflag=seek_bytes conv=notrunc status=none
done
vumount "$M"
qemu-img check -f vhdx "$T/img/log.vhdx" >"$T/qc" || fail "after replay: qemu-img check: $(cat "$T/qc")"
assert_eq "$(qemu_raw_sha "$T/img/log.vhdx" vhdx)" "$(sha "$T/logw.raw")" "replayed and written, qemu-img"
"$VDISK" info --json "$T/img/log.vhdx" >"$T/log.json"
grep -qF '"log_replayed": false' "$T/log.json" || fail "log still dirty: $(cat "$T/log.json")"

# Differencing disks are refused for writing.
python3 "$GEN" diff "$T/base.vhdx" "$T/base.raw" "$T/img"
mkdir -p "$T/m2"
out=$("$VDISKFS" -o rw "$T/img/child.avhdx" "$T/m2" 2>&1) && {
    fusermount3 -u "$T/m2"
    fail "differencing disk mounted rw"
}
assert_eq "$out" "vdiskfs: vhdx: child.avhdx: differencing disks cannot be written in place; mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "differencing refusal"

# Damaged disks are refused for writing (reading still works): a bad
# header, a bad region table, a block past the end of the file, two blocks
# at the same offset.
for kind in hdr1 region1 bat-eof overlap; do
    if [ $kind = overlap ]; then
        cp "$T/base.vhdx" "$T/img/$kind.vhdx"
        python3 - "$T/img/$kind.vhdx" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
d = f.read(4 << 20)
bat = next(struct.unpack_from("<Q", d, 192 * 1024 + 16 + 32 * i + 16)[0]
           for i in range(struct.unpack_from("<I", d, 192 * 1024 + 8)[0])
           if d[192 * 1024 + 16 + 32 * i:][:4] == bytes.fromhex("6677c22d"))
e0 = struct.unpack_from("<Q", d, bat)[0]
f.seek(bat + 8 * 2)
f.write(struct.pack("<Q", e0))  # block 2 shares block 0's place
PY
    else
        python3 "$GEN" corrupt $kind "$T/base.vhdx" "$T/img/$kind.vhdx"
    fi
    out=$("$VDISKFS" -o rw "$T/img/$kind.vhdx" "$T/m2" 2>&1) && {
        fusermount3 -u "$T/m2"
        fail "$kind: damaged disk mounted rw"
    }
    assert_eq "$out" "vdiskfs: vhdx: $kind.vhdx: the disk is damaged (see vdisk check); mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "$kind: damaged refusal"
done
"$VDISK" hash -q "$T/img/hdr1.vhdx" >/dev/null || fail "one bad header must still read"

# kill -9 in the middle of writes that allocate blocks, three times over
# the same image (each round writes further on, after the previous one's
# state was checked and, when the log was left dirty, replayed).
qemu-img create -q -f vhdx -o block_size=1M "$T/img/k.vhdx" 96M
mkdir -p "$T/mk"
DIRTY=0
for round in 0 1 2; do
    "$VDISKFS" -f -o rw "$T/img/k.vhdx" "$T/mk" &
    KPID=$!
    MOUNTS+=("$T/mk")
    for i in $(seq 1 100); do mountpoint -q "$T/mk" && break; sleep 0.05; done
    mountpoint -q "$T/mk" || fail "vdiskfs did not mount $T/mk"
    start=$(stat -c %s "$T/img/k.vhdx")
    ( for i in $(seq 0 29); do
          dd if="$T/pattern" of="$T/mk/k/disk.raw" bs=64K count=3 \
              seek=$(((round * 30 + i) * 16 + 5)) conv=notrunc status=none || exit 0
      done ) &
    WPID=$!
    # Kill once a few blocks have been appended (the writes are still going).
    for i in $(seq 1 400); do
        [ "$(stat -c %s "$T/img/k.vhdx")" -gt $((start + 4 * 1024 * 1024)) ] && break
        sleep 0.01
    done
    kill -9 "$KPID"
    wait "$KPID" 2>/dev/null || true
    wait "$WPID" 2>/dev/null || true
    fusermount3 -u "$T/mk" 2>/dev/null || umount -l "$T/mk" 2>/dev/null || true
    "$VDISK" check "$T/img/k.vhdx" >"$T/kc" || [ $? = 3 ] || fail "vdisk check after kill: $(cat "$T/kc")"
    ours=$("$VDISK" hash -q "$T/img/k.vhdx" | cut -d' ' -f1)
    if ! qemu-img check -f vhdx "$T/img/k.vhdx" >"$T/qc" 2>&1; then
        # Killed between a log entry and emptying the log: qemu will not open
        # it read-only. qemu replays our log on a read-write open of a copy;
        # a rw mount of ours replays it into the file.
        grep -q "log that needs to be replayed" "$T/qc" || fail "qemu-img check after kill: $(cat "$T/qc")"
        DIRTY=$((DIRTY + 1))
        cp "$T/img/k.vhdx" "$T/kq.vhdx"
        qemu-io -f vhdx -c 'read 0 512' "$T/kq.vhdx" >/dev/null
        assert_eq "$(qemu_raw_sha "$T/kq.vhdx" vhdx)" "$ours" "after kill: qemu's replay of our log"
        vmount "$M" -o rw "$T/img/k.vhdx"
        vumount "$M"
        qemu-img check -f vhdx "$T/img/k.vhdx" >"$T/qc" || fail "check after replay: $(cat "$T/qc")"
    fi
    assert_eq "$(qemu_raw_sha "$T/img/k.vhdx" vhdx)" "$ours" "after kill: qemu-img and vdisk agree"
done
echo "kill -9: 3 rounds, $DIRTY left the log dirty, file $(stat -c %s "$T/img/k.vhdx") bytes"
echo "ok: VHDX writes"
