#!/bin/bash
# VHDX through the FUSE mount: a differencing child and a dirty-log image
# read (also with concurrent readers) as the generator's expected bytes;
# the sources are unchanged and info.json reports the replay.
. "$VD_TEST_LIB"
need qemu-img qemu-io python3
need_fuse
GEN="$VD_TEST_DATA/gen-vhdx.py"

qemu-img create -q -f vhdx -o block_size=8M "$T/parent.vhdx" 20M
qemu-io -f vhdx -c 'write -P 0x21 0 20M' -c 'write -z 9M 1M' "$T/parent.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/parent.vhdx" "$T/parent.raw"
python3 "$GEN" diff "$T/parent.vhdx" "$T/parent.raw" "$T"
qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$T/base.vhdx" 8M
qemu-io -f vhdx -c 'write -P 0xaa 0 1M' -c 'write -P 0x55 2M 512k' -c 'write -P 0x11 5M 1M' \
    "$T/base.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/base.vhdx" "$T/base.raw"
python3 "$GEN" log "$T/base.vhdx" "$T/base.raw" "$T"
s1=$(sha "$T/child.avhdx"); s2=$(sha "$T/log.vhdx"); s3=$(sha "$T/parent.vhdx")

vmount "$T/mnt" "$T/child.avhdx" "$T/log.vhdx"
assert_eq "$(sha "$T/mnt/child/disk.raw")" "$(sha "$T/child.raw")" "mounted child"
assert_eq "$(sha "$T/mnt/log/disk.raw")" "$(sha "$T/log.raw")" "mounted dirty-log image"
grep -qF '"log_replayed": true' "$T/mnt/log/info.json" || fail "info.json: $(cat "$T/mnt/log/info.json")"
# Concurrent readers over the same file, different block sizes and offsets.
for i in 0 1 2 3; do
    dd if="$T/mnt/child/disk.raw" of="$T/part$i" bs=$((4096 * (i + 1) + 512)) status=none &
done
wait
for i in 0 1 2 3; do
    cmp -s "$T/part$i" "$T/child.raw" || fail "concurrent reader $i differs"
done
vumount "$T/mnt"
assert_eq "$(sha "$T/child.avhdx")" "$s1" "child unchanged"
assert_eq "$(sha "$T/log.vhdx")" "$s2" "log image unchanged (replay is in memory)"
assert_eq "$(sha "$T/parent.vhdx")" "$s3" "parent unchanged"
echo "PASS"
