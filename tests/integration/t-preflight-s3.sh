#!/usr/bin/env bash
# vdisk preflight over S3 reads only metadata and the files it needs: a
# 1 GiB guest image (a stream-optimized VMDK, AWS's own format, ~1 GiB of
# incompressible data in the guest) is checked through the local s3rver; the
# proxy counts the bytes sent. Target (issue 10): under 5% of the object.
# Prints the share. The same check of the local file gives the same result.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
. "$(dirname "$0")/preflight-lib.sh"
need sfdisk mke2fs cpio gzip python3
s3_start

pf_tree "$T/root"
head -c 1100000000 /dev/urandom >"$T/root/var/lib/data.bin"
pf_disk "$T/disk.raw" "$T/root" 1500
rm -rf "$T/root"
"$VDISK" convert -q -O vmdk -o vmdk_type=streamOptimized,compress_level=1 "$T/disk.raw" "$T/g.vmdk"
rm -f "$T/disk.raw"
size=$(stat -c %s "$T/g.vmdk")
[ "$size" -ge $((1 << 30)) ] || fail "test object is only $size bytes"

rc=0
"$VDISK" preflight --target aws --json "$T/g.vmdk" >"$T/local.json" || rc=$?
[ $rc -eq 0 ] || fail "local preflight: exit $rc: $(cat "$T/local.json")"
s3_put "$T/g.vmdk" "pf/g.vmdk"
rm -f "$T/g.vmdk"

s3_reset
rc=0
"$VDISK" preflight --target aws --json s3://vdtest/pf/g.vmdk >"$T/s3.json" 2>"$T/err" || rc=$?
[ $rc -eq 0 ] || fail "S3 preflight: exit $rc: $(cat "$T/err" "$T/s3.json")"
cmp -s "$T/local.json" "$T/s3.json" || fail "S3 and local results differ:
$(diff "$T/local.json" "$T/s3.json")"
sent=$(s3_stat body_bytes) reqs=$(s3_stat requests)
pct=$(python3 -c "print('%.2f' % (100.0 * $sent / $size))")
echo "preflight over S3: object $size bytes; server sent $sent bytes in $reqs requests ($pct%)"
python3 -c "import sys; sys.exit(0 if $sent * 20 < $size else 1)" ||
    fail "read $pct% of the object (target < 5%); requests:
$(s3_log | tail -50)"
echo PASS
