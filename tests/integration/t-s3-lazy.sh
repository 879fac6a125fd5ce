#!/usr/bin/env bash
# Laziness: mount a >1 GiB VMDK from S3, list it, read info.json, the
# partition table and one small file of the guest filesystem, and count what
# the server sent (the proxy counts body bytes). Target: under 1% of the
# object. Prints the figures.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need qemu-img sfdisk mke2fs debugfs
need_fuse
s3_start

# 1.2 GiB disk: MBR, ext4 with a 1080 MB incompressible file and two small ones.
mkdir -p "$T/root/etc"
head -c 1080000000 /dev/urandom >"$T/root/big.bin"
echo "hello from s3" >"$T/root/etc/hostname"
seq 1 2000 >"$T/root/etc/numbers"
truncate -s 1200M "$T/disk.raw"
echo 'start=2048, type=83' | sfdisk -q "$T/disk.raw"
mke2fs -q -t ext4 -F -E offset=1048576 -d "$T/root" "$T/disk.raw" 1200128k
rm -rf "$T/root"
qemu-img convert -f raw -O vmdk "$T/disk.raw" "$T/lazy.vmdk"
rm -f "$T/disk.raw"
size=$(stat -c %s "$T/lazy.vmdk")
[ "$size" -ge $((1 << 30)) ] || fail "test object is only $size bytes"
s3_put "$T/lazy.vmdk" "lazy/lazy.vmdk"
rm -f "$T/lazy.vmdk"

s3_reset
vmount "$T/mnt" -o "endpoint=http://127.0.0.1:$S3P_PORT,path_style" s3://vdtest/lazy/lazy.vmdk
ls -l "$T/mnt/lazy" >"$T/ls"
grep -q 'disk-p1.raw' "$T/ls" || fail "no disk-p1.raw: $(cat "$T/ls")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="vmdk", d' "$T/mnt/lazy/info.json"
sfdisk -d "$T/mnt/lazy/disk.raw" >"$T/pt"
grep -q 'start= *2048' "$T/pt" || fail "partition table: $(cat "$T/pt")"
debugfs -R "cat /etc/hostname" "$T/mnt/lazy/disk-p1.raw" 2>/dev/null >"$T/hostname"
assert_eq "$(cat "$T/hostname")" "hello from s3" "file read from the guest filesystem"
sent=$(s3_stat body_bytes) reqs=$(s3_stat requests)
pct=$(python3 -c "print('%.3f' % (100.0 * $sent / $size))")
echo "lazy: object $size bytes; server sent $sent bytes in $reqs requests ($pct%)"
python3 -c "import sys; sys.exit(0 if $sent * 100 < $size else 1)" ||
    fail "read $pct% of the object (target < 1%); requests:
$(s3_log)"
echo PASS
