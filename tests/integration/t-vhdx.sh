#!/bin/bash
# VHDX made by qemu-img (fixed, dynamic, block sizes 1M/32M/256M, a bigger
# log) must read as `qemu-img convert -O raw` and as vhdimount (libvhdi) do.
. "$VD_TEST_LIB"
need qemu-img qemu-io python3

# 40 MiB of random data with holes (zero runs) so dynamic images get
# unallocated/zero blocks, plus a partially written block.
python3 - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(1)
MiB = 1 << 20
d = bytearray(r.randbytes(40 * MiB))
d[3 * MiB:9 * MiB] = bytes(6 * MiB)          # whole blocks of zeros
d[20 * MiB + 4096:22 * MiB] = bytes(2 * MiB - 4096)
d[33 * MiB:40 * MiB] = bytes(7 * MiB)        # zero tail
open(sys.argv[1], "wb").write(d)
PY
want=$(sha "$T/src.raw")

n=0
for opts in subformat=fixed subformat=dynamic block_size=1M block_size=32M block_size=256M \
            log_size=4M,block_size=8M; do
    n=$((n + 1))
    img="$T/q$n.vhdx"
    qemu-img convert -f raw -O vhdx -o "$opts" "$T/src.raw" "$img"
    assert_eq "$(qemu_raw_sha "$img" vhdx)" "$want" "qemu oracle for $opts"
    got=$("$VDISK" hash --sha256 "$img" | cut -d' ' -f1)
    assert_eq "$got" "$want" "vdisk hash of qemu vhdx $opts"
done

# A sparse dynamic image written piecewise with qemu-io: partial blocks,
# an image smaller than one block, a size not a multiple of the block.
img="$T/io.vhdx"
qemu-img create -q -f vhdx -o block_size=2M "$img" 11M
qemu-io -f vhdx -c 'write -P 0x5a 0 512' -c 'write -P 0xa5 1M 3M' \
    -c 'write -P 0x33 10M 1M' -c 'write -z 2M 512k' "$img" >/dev/null
assert_eq "$("$VDISK" hash --sha256 "$img" | cut -d' ' -f1)" "$(qemu_raw_sha "$img" vhdx)" \
    "qemu-io written dynamic vhdx"

img="$T/tiny.vhdx"
qemu-img create -q -f vhdx -o block_size=8M "$img" 3M
qemu-io -f vhdx -c 'write -P 0x77 4096 8192' "$img" >/dev/null
assert_eq "$("$VDISK" hash --sha256 "$img" | cut -d' ' -f1)" "$(qemu_raw_sha "$img" vhdx)" \
    "vhdx smaller than one block"

# Info JSON of a qemu image: the fields we promise.
info=$("$VDISK" info --json "$T/q3.vhdx")
for key in '"block_size": 1048576' '"logical_sector_size": 512' '"log_replayed": false' \
           '"has_parent": false' '"log_entries": 0'; do
    grep -qF "$key" <<<"$info" || fail "info lacks $key: $info"
done
"$VDISK" info --json "$T/q1.vhdx" | grep -qF '"subformat": "fixed"' || fail "q1 is fixed"
"$VDISK" info --json "$T/q2.vhdx" | grep -qF '"subformat": "dynamic"' || fail "q2 is dynamic"
"$VDISK" check "$T/q2.vhdx" >"$T/check.out" || fail "check of a clean image: $(cat "$T/check.out")"

# Second oracle: libvhdi's vhdimount, where FUSE is available.
if command -v vhdimount >/dev/null && [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    for img in "$T/q1.vhdx" "$T/q2.vhdx" "$T/q5.vhdx"; do
        mkdir -p "$T/m"
        vhdimount "$img" "$T/m" >"$T/vhdimount.out" 2>&1 ||
            fail "vhdimount cannot read $img: $(tail -3 "$T/vhdimount.out")"
        MOUNTS+=("$T/m")
        v=$(sha "$T/m/vhdi1")
        umount "$T/m" || fusermount3 -u "$T/m"
        assert_eq "$v" "$want" "vhdimount of $img"
    done
else
    echo "note: vhdimount, /dev/fuse or root missing, second oracle not run"
fi
echo "PASS"
