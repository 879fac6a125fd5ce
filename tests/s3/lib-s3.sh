# shellcheck shell=bash
# S3 helpers for integration tests; source after "$VD_TEST_LIB".
#   s3_start            start s3rver (bucket vdtest) and the fault proxy; sets
#                       S3_PORT (direct), S3P_PORT (proxy), S3_DATA, and the AWS_*
#                       env pointing at the proxy
#   s3_put FILE KEY     upload with curl's own SigV4 (an independent client)
#   s3_get KEY OUT      download with curl
#   s3_plan JSON        set the proxy's fault plan ('{}' clears it)
#   s3_stat FIELD       a counter from the proxy (body_bytes, requests, ...)
#   s3_uploads          pending multipart uploads, one "key uploadId" a line
#   s3_head KEY         HTTP status of a HEAD on KEY
S3_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
S3_PIDS=()

s3_cleanup() {
    local p
    for p in "${S3_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${S3_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 's3_cleanup; cleanup' EXIT

s3_start() {
    need curl python3
    command -v node >/dev/null 2>&1 || skip "node is not installed (s3rver needs it)"
    S3_DATA="$T/s3data"
    local envout rc=0
    envout=$("$S3_REPO/scripts/start-s3rver.sh" "$S3_DATA" vdtest) || rc=$?
    [ $rc -eq 77 ] && skip "s3rver cannot be installed here"
    [ $rc -eq 0 ] || fail "scripts/start-s3rver.sh failed"
    eval "$envout"
    S3_PORT=$VD_S3_PORT
    S3_PIDS+=("$VD_S3_PID")
    python3 "$S3_REPO/tests/s3/faultproxy.py" "$S3_PORT" --port-file "$T/proxy.port" \
        --s3rver-data "$S3_DATA" >/dev/null 2>"$T/proxy.log" &
    S3_PIDS+=("$!")
    local i
    for i in $(seq 1 100); do
        [ -s "$T/proxy.port" ] && break
        sleep 0.05
    done
    S3P_PORT=$(cat "$T/proxy.port")
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
    export AWS_ENDPOINT_URL="http://127.0.0.1:$S3P_PORT"
    unset AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION
    export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
    # Fast retries so fault tests stay quick (t-s3-faults also shortens
    # VD_S3_TIMEOUT; the others keep the default under a loaded machine).
    export VD_S3_RETRY_MS=5
}

s3_curl() {
    curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
s3_put() { s3_curl -f -T "$1" "http://127.0.0.1:$S3_PORT/vdtest/$2" >/dev/null; }
s3_get() { s3_curl -f -o "$2" "http://127.0.0.1:$S3_PORT/vdtest/$1"; }
s3_head() { s3_curl -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$S3_PORT/vdtest/$1"; }
s3_plan() { curl -sf -XPOST -d "$1" "http://127.0.0.1:$S3P_PORT/__proxy/plan" >/dev/null; }
s3_reset() { curl -sf -XPOST "http://127.0.0.1:$S3P_PORT/__proxy/reset" >/dev/null; }
s3_stat() {
    curl -sf "http://127.0.0.1:$S3P_PORT/__proxy/stats" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}
s3_log() { curl -sf "http://127.0.0.1:$S3P_PORT/__proxy/log"; }
s3_uploads() {
    curl -sf "http://127.0.0.1:$S3P_PORT/vdtest?uploads" | python3 -c '
import sys, xml.etree.ElementTree as E
for u in E.fromstring(sys.stdin.read()).iter("Upload"):
    print(u.findtext("Key"), u.findtext("UploadId"))'
    # s3rver keeps parts here; nothing may stay behind.
    ls "$S3_DATA/vdtest/._S3rver_uploads" 2>/dev/null || true
}

# s3_make_disk OUT: a 64 MiB disk, MBR + 40 MiB ext4 partition (files from
# $T/root, /etc/hostname says "hello from s3") and 8 MB of random data at 48 MiB.
s3_make_disk() {
    need sfdisk mkfs.ext4
    local out=$1
    mkdir -p "$T/root/etc"
    head -c 3000000 /dev/urandom >"$T/root/blob.bin"
    echo "hello from s3" >"$T/root/etc/hostname"
    truncate -s 64M "$out"
    echo 'start=2048, size=81920, type=83' | sfdisk -q "$out"
    truncate -s 40M "$T/p1.img"
    mkfs.ext4 -q -F -d "$T/root" "$T/p1.img"
    dd if="$T/p1.img" of="$out" bs=1M seek=1 conv=notrunc status=none
    head -c 8000000 /dev/urandom | dd of="$out" bs=1M seek=48 conv=notrunc status=none
}
