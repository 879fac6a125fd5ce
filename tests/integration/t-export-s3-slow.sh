#!/usr/bin/env bash
# A slow S3 export does not hold up export/:
# - credentials are resolved once, by the mount, not by each create (a
#   create holds export/'s directory lock in the kernel, so a create that
#   ran a 5 s credential_process stalled every `ls export/` and the next
#   export): with the credential_process now taking 5 s, a listing and a
#   second export go on at once, and the process ran once in all;
# - a slow upload (every S3 answer delayed 3 s at the proxy) runs outside
#   the lock that guards the list of exports: `ls -l`, stat and the status
#   xattr answer while a close waits for it;
# - a write after the finish, through a descriptor the mount cannot see (a
#   bind mount of export/), deletes the object it committed (its ETag
#   checked first) and leaves an error; a killed writer leaves no object
#   and no pending multipart upload.
# The objects are read back with curl.
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
need_fuse
s3_start

# The credential_process logs each run and sleeps while $T/slow exists.
cat >"$T/creds.sh" <<EOF
#!/bin/sh
echo run >>"$T/creds.log"
[ -e "$T/slow" ] && sleep 5
echo '{"Version": 1, "AccessKeyId": "S3RVER", "SecretAccessKey": "S3RVER"}'
EOF
chmod +x "$T/creds.sh"
printf '[profile slow]\ncredential_process = %s\n' "$T/creds.sh" >"$T/config"
AWS_CONFIG_FILE=$T/config vmount "$T/mnt" \
    -o "export=s3://vdtest/sl/,endpoint=http://127.0.0.1:$S3P_PORT,path_style,profile=slow,reorder_window=1M"
X=$T/mnt/export
head -c $((3 << 20)) /dev/urandom >"$T/a.raw"
head -c $((3 << 20)) /dev/urandom >"$T/b.raw"

# 1. Credentials are resolved once, by the mount: a credential_process
# that now takes 5 s holds up neither a create nor export/ meanwhile (a
# create holds export/'s directory lock in the kernel).
touch "$T/slow"
cp "$T/a.raw" "$X/a.raw" &
cpa=$!
sleep 0.5
t0=$(date +%s%N)
timeout 2 ls -l "$X/" >/dev/null || fail "ls -l export/ waited for an export's credentials"
timeout 4 cp "$T/b.raw" "$X/b.raw" || fail "a second export waited for credentials"
timeout 4 tail --pid="$cpa" -f /dev/null || fail "cp a.raw waited for credentials"
wait "$cpa" || fail "cp a.raw"
echo "ok: two exports and a listing took $((($(date +%s%N) - t0) / 1000000)) ms"
assert_eq "$(cat "$T/creds.log")" run "credential_process runs"
rm "$T/slow"

# 2. Every S3 answer takes 3 s: a.raw's close waits for its upload.
s3_plan '{"delay_ms": 3000}'
cp "$T/a.raw" "$X/a2.raw" &
cpa=$!
sleep 0.5
timeout 2 ls -l "$X/" >/dev/null || fail "ls -l export/ waited for an upload"
timeout 2 stat "$X/a2.raw" >/dev/null || fail "stat waited for an upload"
timeout 2 python3 -c 'import os,sys; os.getxattr(sys.argv[1], "user.vdisk.status")' "$X/a2.raw" ||
    fail "the status xattr waited for an upload"
wait "$cpa" || fail "cp a2.raw"
s3_plan '{}'

for n in a b a2; do
    s3_get "sl/$n.raw" "$T/got.raw"
    assert_eq "$(sha "$T/got.raw")" "$(sha "$T/${n%2}.raw")" "sl/$n.raw read back with curl"
done

# 3. Withdrawn and aborted S3 outputs.
mkdir -p "$T/alias"
if mount --bind "$X" "$T/alias" 2>/dev/null; then
    MOUNTS=("$T/alias" "${MOUNTS[@]}")
    exec 5>"$T/alias/late.raw"
    printf AAAA >&5 # bash's close of its fd-1 dup finishes it: PutObject
    s3_get sl/late.raw "$T/late.raw"
    assert_eq "$(cat "$T/late.raw")" AAAA "late.raw committed after the first printf"
    if printf BBBB >&5 2>/dev/null; then fail "a write after the finish succeeded"; fi
    exec 5>&- || true # EIO: the export failed
    assert_eq "$(s3_head sl/late.raw)" 404 "late.raw withdrawn from S3"
    case $(timeout 2 python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vdisk.status").decode())' "$X/late.raw") in
    "error: export: s3://vdtest/sl/late.raw: withdrawn: "*) ;;
    *) fail "late.raw status" ;;
    esac
    umount "$T/alias"
else
    echo "note: cannot bind-mount here; skipped the S3 withdraw case"
fi
# 20 MiB: multipart, parts uploaded before the writer is killed.
head -c $((20 << 20)) /dev/urandom >"$T/c.raw"
python3 - "$X/killed.vhd" "$T/c.raw" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, open(sys.argv[2], "rb").read())
time.sleep(30)
PY
wpid=$!
for i in $(seq 1 200); do [ -n "$(s3_uploads)" ] && break; sleep 0.05; done
[ -n "$(s3_uploads)" ] || fail "killed.vhd: no multipart upload under way"
kill -9 "$wpid"
wait "$wpid" 2>/dev/null || true
assert_eq "$(s3_head sl/killed.vhd)" 404 "object of a killed writer"
assert_eq "$(s3_uploads)" "" "multipart uploads left by a killed writer"
vumount "$T/mnt"
echo "slow S3 exports do not stall export/; withdrawn and aborted ones leave nothing"
