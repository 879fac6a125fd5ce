#!/usr/bin/env bash
# S3 faults through tests/s3/faultproxy.py: 503/500/SlowDown, connection
# resets, truncated bodies, stalled (slow) bodies, mangled Content-Range and
# 200-instead-of-206 answers are retried and the bytes stay right; a fault
# that never stops ends in EIO with a clear message; an object replaced
# during a mount fails reads instead of mixing versions; failed exports
# abort their multipart upload and leave no object and no parts.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
s3_start
export VD_S3_TIMEOUT=3 # a stalled body is abandoned after 3 s under 1 KiB/s

head -c 6000000 /dev/urandom >"$T/a.raw"
want=$(sha "$T/a.raw")
s3_put "$T/a.raw" "f/a.raw"

for fault in 503 500 slowdown reset truncate garbage_range drop_header stall; do
    s3_plan "{\"fault\":\"$fault\",\"every\":3,\"limit\":4,\"stall_s\":6}"
    got=$(VD_S3_CONNECTIONS=2 "$VDISK" hash s3://vdtest/f/a.raw | cut -d' ' -f1) ||
        fail "hash failed under fault $fault"
    assert_eq "$got" "$want" "bytes under fault $fault"
    [ "$(s3_stat faults)" -ge 1 ] || fail "fault $fault was never injected"
done

# A fault that does not go away: bounded retries, then EIO with the reason.
s3_plan '{"fault":"slowdown","every":1}'
if "$VDISK" hash s3://vdtest/f/a.raw >"$T/out" 2>"$T/err"; then fail "hash passed while every GET failed"; fi
grep -q "vdisk: s3: s3://vdtest/f/a.raw: GET bytes=0-[0-9]* failed 6 times, giving up: HTTP 503 SlowDown: injected by faultproxy" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"
s3_plan '{"fault":"503","every":1,"methods":["HEAD"]}'
if "$VDISK" hash s3://vdtest/f/a.raw 2>"$T/err"; then fail "open passed while HEAD failed"; fi
grep -q "s3: s3://vdtest/f/a.raw: HEAD failed 6 times, giving up: HTTP 503" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"
s3_plan '{"fault":"wrong_region","every":1,"methods":["HEAD"]}'
if "$VDISK" hash s3://vdtest/f/a.raw 2>"$T/err"; then fail "open passed with a 301"; fi
grep -q "s3: s3://vdtest/f/a.raw: HEAD: HTTP 301: the bucket is in region eu-west-1, not us-east-1; pass -o region=eu-west-1 or set AWS_REGION" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"
s3_plan '{}'
if "$VDISK" hash s3://vdtest/f/missing.raw 2>"$T/err"; then fail "missing object opened"; fi
grep -q "s3: s3://vdtest/f/missing.raw: HEAD http://127.0.0.1:$S3P_PORT/vdtest/f/missing.raw: HTTP 404 (no such object)" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"

# The object is replaced while mounted: later reads fail, never mix versions.
need_fuse
s3_put "$T/a.raw" "f/b.raw"
vmount "$T/mnt" -o "endpoint=http://127.0.0.1:$S3P_PORT,path_style,cache_size=1M" s3://vdtest/f/b.raw
dd if="$T/mnt/b/disk.raw" of="$T/first" bs=64k count=1 status=none
cmp "$T/first" <(head -c 65536 "$T/a.raw") || fail "first block differs"
head -c 6000000 /dev/urandom >"$T/b2.raw"
s3_put "$T/b2.raw" "f/b.raw"
if dd if="$T/mnt/b/disk.raw" of="$T/late" bs=64k skip=80 count=1 status=none 2>"$T/err"; then
    fail "read after replacement succeeded: $(cmp "$T/late" <(dd if="$T/b2.raw" bs=64k skip=80 count=1 status=none) && echo NEW-VERSION-BYTES)"
fi
grep -q "Input/output error" "$T/err" || fail "unexpected error: $(cat "$T/err")"
vumount "$T/mnt"

# Exports: parts keep failing -> the upload is aborted, nothing remains.
head -c 30000000 /dev/urandom >"$T/big.raw"
s3_plan '{"fault":"503","every":1,"methods":["PUT"]}'
if "$VDISK" convert -q -O raw "$T/big.raw" s3://vdtest/f/x.raw 2>"$T/err"; then fail "export passed"; fi
grep -q "export: s3://vdtest/f/x.raw: UploadPart [0-9]* ([0-9]* bytes) failed 6 times, giving up: HTTP 503" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"
assert_eq "$(s3_head f/x.raw)" 404 "object after a failed export"
assert_eq "$(s3_uploads)" "" "multipart uploads left behind"
s3_log | grep -q '^DELETE /vdtest/f/x.raw?uploadId=.* emulated' || fail "no AbortMultipartUpload sent"

# CompleteMultipartUpload answering 200 with <Error>: retried once, then ok ...
s3_plan '{"fault":"error200","every":1,"methods":["POST"],"path_has":"uploadId=","limit":1}'
"$VDISK" convert -q -O raw "$T/big.raw" s3://vdtest/f/y.raw
assert_eq "$("$VDISK" hash s3://vdtest/f/y.raw | cut -d' ' -f1)" "$(sha "$T/big.raw")" "export after a 200+Error"
# ... and when it never stops: error, abort, no object.
s3_plan '{"fault":"error200","every":1,"methods":["POST"],"path_has":"uploadId="}'
if "$VDISK" convert -q -O raw "$T/big.raw" s3://vdtest/f/z.raw 2>"$T/err"; then fail "export passed"; fi
grep -q "export: s3://vdtest/f/z.raw: CompleteMultipartUpload: InternalError: injected by faultproxy" "$T/err" ||
    fail "unexpected message: $(cat "$T/err")"
assert_eq "$(s3_head f/z.raw)" 404 "object after a failed complete"
assert_eq "$(s3_uploads)" "" "multipart uploads left behind"

# Resets and truncated uploads are retried; the object is exact.
s3_plan '{"fault":"reset","every":2,"methods":["PUT"],"limit":3}'
"$VDISK" convert -q -O vhd "$T/big.raw" s3://vdtest/f/w.vhd
s3_plan '{}'
s3_get f/w.vhd "$T/w.vhd"
assert_eq "$(qemu_raw_sha "$T/w.vhd" vpc | head -c 64)" "$("$VDISK" hash "$T/w.vhd" | cut -d' ' -f1)" "vhd after upload resets"
assert_eq "$(s3_uploads)" "" "multipart uploads left behind"
echo PASS
