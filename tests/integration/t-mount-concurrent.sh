#!/usr/bin/env bash
# Concurrent reads through the mount at odd offsets and lengths, for every
# format, against qemu-img convert -O raw of the same image. The mount
# answers reads of stored data from file descriptors (spliced) and the rest
# (holes, compressed grains) from memory, so the ranges mix both within one
# request: data runs and holes of odd sizes, small VHDX/VHD blocks. Page
# cache reads and, where the kernel allows it, O_DIRECT reads (offsets not
# rounded to pages) are both checked, the disk and its partition.
. "$VD_TEST_LIB"
need_fuse; need qemu-img python3 sfdisk

src=$T/src.raw
python3 - "$src" <<'PY'
import os, random, sys
rnd = random.Random(1234)
size = 40 << 20
with open(sys.argv[1], "wb") as f:
    f.truncate(size)
    off = 1 << 20
    while off < size:
        n = rnd.randrange(1, 3 << 20)
        if rnd.random() < 0.6:
            f.seek(off)
            f.write(rnd.randbytes(min(n, size - off)))
        off += n + rnd.randrange(0, 1 << 20)
PY
printf 'label: dos\nstart=2048, size=60000, type=83\n' | sfdisk -q "$src"

imgs=() fmts=()
add() {
    local name=$1 fmt=$2; shift 2
    qemu-img convert -f raw -O "$fmt" "$@" "$src" "$T/$name"
    imgs+=("$T/$name") fmts+=("$fmt")
}
add plain.raw raw
add vhd-dyn.vhd vpc -o subformat=dynamic,force_size=on
add vhd-fixed.vhd vpc -o subformat=fixed,force_size=on
add vhdx-dyn.vhdx vhdx -o subformat=dynamic,block_size=1M
add vmdk-stream.vmdk vmdk -o subformat=streamOptimized
add vmdk-sparse.vmdk vmdk -o subformat=monolithicSparse

M=$T/mnt
vmount "$M" "${imgs[@]}"
for i in "${!imgs[@]}"; do
    img=${imgs[$i]} base=$(basename "${imgs[$i]}")
    dir=${base%.*} ref=$T/${base%.*}.oracle
    qemu-img convert -f "${fmts[$i]}" -O raw "$img" "$ref"
    cmp "$ref" "$M/$dir/disk.raw" || fail "$base: sequential read differs from qemu-img"
    python3 - "$ref" "$M/$dir/disk.raw" "$M/$dir/disk-p1.raw" <<'PY' || fail "$base: concurrent reads differ"
import os, random, sys, threading
ref_path, disk, part = sys.argv[1:4]
ref = open(ref_path, "rb").read()
pref = ref[2048 * 512:(2048 + 60000) * 512]
errors = []

def reader(seed, path, want, flags):
    rnd = random.Random(seed)
    try:
        fd = os.open(path, os.O_RDONLY | flags)
    except OSError as e:
        if flags:
            return  # no O_DIRECT here: the page cache half still ran
        raise
    try:
        for _ in range(150):
            off = rnd.randrange(0, len(want))
            n = rnd.choice([1, 511, 4097, 65535, 131073, 1 << 20, (1 << 20) + 12345, 3 << 20])
            got = os.pread(fd, n, off)
            if got != want[off:off + n]:
                errors.append(f"{path} flags={flags} off={off} len={n}: got {len(got)} bytes, differ")
                return
    finally:
        os.close(fd)

ts = []
for i in range(8):
    path, want = (part, pref) if i % 4 == 3 else (disk, ref)
    ts.append(threading.Thread(target=reader, args=(i, path, want, os.O_DIRECT if i % 2 else 0)))
for t in ts:
    t.start()
for t in ts:
    t.join()
if errors:
    sys.exit("\n".join(errors[:5]))
PY
done
echo "ok: ${#imgs[@]} formats, 8 concurrent readers each"
