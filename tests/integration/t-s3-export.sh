#!/usr/bin/env bash
# Exports to S3 (`vdisk convert ... s3://`): every format is read back
# through our reader and through qemu-img on a curl download; a VHD bigger
# than part 1 shows the held-back head part uploaded last; a 6 GiB sparse
# raw export walks through growing part sizes (about a minute, s3rver-bound;
# VD_TEST_QUICK=1 skips it).
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need qemu-img tar
s3_start
s3_make_disk "$T/disk.raw"
want=$(sha "$T/disk.raw")

for fmt in raw vmdk vhd vhdx ova; do
    s3_reset
    "$VDISK" convert -q -O "$fmt" "$T/disk.raw" "s3://vdtest/e/x.$fmt"
    assert_eq "$("$VDISK" hash "s3://vdtest/e/x.$fmt" | cut -d' ' -f1)" "$want" "$fmt read back from S3"
    s3_get "e/x.$fmt" "$T/dl.$fmt"
    case $fmt in
        raw) got=$(sha "$T/dl.raw") ;;
        vhd) got=$(qemu_raw_sha "$T/dl.vhd" vpc) ;;
        ova)
            mkdir -p "$T/ova"
            tar -xf "$T/dl.ova" -C "$T/ova"
            got=$(qemu_raw_sha "$(ls "$T"/ova/*.vmdk | head -1)" vmdk)
            ;;
        *) got=$(qemu_raw_sha "$T/dl.$fmt" "$fmt") ;;
    esac
    assert_eq "$got" "$want" "$fmt read back by qemu-img"
done

# The VHD (~14 MB) went multipart: part 2 first, the patched head (part 1)
# last, then CompleteMultipartUpload.
s3_reset
"$VDISK" convert -q -O vhd "$T/disk.raw" s3://vdtest/e/head.vhd
s3_log | grep -E '^(PUT|POST) /vdtest/e/head.vhd' | sed 's/uploadId=[^ &]*/ID/' >"$T/calls"
first=$(head -1 "$T/calls") last=$(tail -1 "$T/calls") before_last=$(tail -2 "$T/calls" | head -1)
case $first in "POST /vdtest/e/head.vhd?uploads - 200 0") ;; *) fail "first call: $first" ;; esac
case $before_last in "PUT /vdtest/e/head.vhd?partNumber=1&ID - 200 8388608") ;; *) fail "part 1 not last: $(cat "$T/calls")" ;; esac
case $last in "POST /vdtest/e/head.vhd?ID - 200 "*) ;; *) fail "last call: $last" ;; esac
s3_get e/head.vhd "$T/head.vhd"
assert_eq "$(qemu_raw_sha "$T/head.vhd" vpc)" "$want" "multipart VHD read by qemu-img"

# The mount's export/ folder with an S3 destination: cp is a streaming upload,
# and a failed upload makes cp fail and leaves nothing behind.
need_fuse
vmount "$T/mnt" -o "export=s3://vdtest/fx/,endpoint=http://127.0.0.1:$S3P_PORT,path_style" "$T/disk.raw"
cp "$T/mnt/disk/disk.raw" "$T/mnt/export/copy.vhdx"
s3_get fx/copy.vhdx "$T/copy.vhdx"
assert_eq "$(qemu_raw_sha "$T/copy.vhdx" vhdx)" "$want" "cp into export/ (S3)"
s3_plan '{"fault":"503","every":1,"methods":["PUT"]}'
if cp "$T/mnt/disk/disk.raw" "$T/mnt/export/broken.vhd" 2>"$T/cperr"; then fail "cp succeeded while uploads failed"; fi
s3_plan '{}'
assert_eq "$(s3_head fx/broken.vhd)" 404 "object after a failed cp"
assert_eq "$(s3_uploads)" "" "multipart uploads left behind by cp"
vumount "$T/mnt"

if [ -n "${VD_TEST_QUICK:-}" ]; then
    echo "PASS (VD_TEST_QUICK: 6 GiB export skipped)"
    exit 0
fi

# 6 GiB sparse raw: data at the start, the middle and the end; parts double
# every 16 (VD_S3_PART_DOUBLE_EVERY) so sizes go 8, 16, 32 ... 256 MiB.
truncate -s 6G "$T/big.raw"
for at in 0 3072 6143; do
    head -c 1048576 /dev/urandom | dd of="$T/big.raw" bs=1M seek=$at conv=notrunc status=none
done
s3_reset
VD_S3_PART_DOUBLE_EVERY=16 VD_S3_UPLOADS=2 "$VDISK" convert -q -O raw "$T/big.raw" s3://vdtest/e/big.raw
s3_log | grep -E '^PUT /vdtest/e/big.raw\?partNumber=' | sed -E 's/.*partNumber=([0-9]+)&.* ([0-9]+)$/\1 \2/' |
    sort -n >"$T/parts"
python3 - "$T/parts" <<'PY'
import sys
parts = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
nums = [p for p, _ in parts]
assert nums == list(range(1, len(nums) + 1)), nums
M = 1 << 20
for no, size in parts[:-1]:
    want = min(8 * M << ((no - 1) // 16), 4096 * M)
    assert size == want, (no, size, want)
assert sum(s for _, s in parts) == 6 << 30
assert max(s for _, s in parts) == 256 * M, max(s for _, s in parts)
print(len(parts), "parts, largest", max(s for _, s in parts) // M, "MiB")
PY
# Read back with curl (not our reader): the size, the three data MiBs, zeros between.
s3_curl -sI "http://127.0.0.1:$S3_PORT/vdtest/e/big.raw" | tr -d '\r' | grep -qx 'Content-Length: 6442450944' ||
    fail "size of the 6 GiB object"
for at in 0 3072 6143 1 8 4000; do
    s3_curl -f -r "$((at << 20))-$(((at << 20) + 1048575))" -o "$T/piece" \
        "http://127.0.0.1:$S3_PORT/vdtest/e/big.raw"
    cmp "$T/piece" <(dd if="$T/big.raw" bs=1M skip="$at" count=1 status=none) ||
        fail "MiB $at of the 6 GiB export differs"
done
assert_eq "$(s3_uploads)" "" "multipart uploads left behind"
echo PASS
