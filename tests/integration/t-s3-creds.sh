#!/usr/bin/env bash
# AWS credential sources beyond static keys, against s3rver behind a fake
# metadata server (Python, below) that serves:
#   IMDSv2     PUT /latest/api/token, GET .../security-credentials/[ROLE]
#              (the token is required; "v1" mode answers the PUT with 405)
#   container  GET /ecs/creds, checks the Authorization header
#   S3         everything else is forwarded to s3rver, recording the key id and
#              session token each request was signed with; unsigned requests
#              get 403 AccessDenied, as a private bucket would.
# Every credential source hands out its first set expiring in 60 s (inside the
# 5-minute refresh window) and later sets in an hour, so exactly one refresh
# happens, on first use, and every S3 request must carry the refreshed set
# ("short" mode: the second set lasts 12 s, for a refresh during a mount).
# s3rver checks no signature, so the assertions are on the fake's counters and
# log (it does check the key id: the fake swaps in S3RVER when forwarding).
. "$VD_TEST_LIB"
. "$(dirname "$0")/../s3/lib-s3.sh"
s3_start

cat >"$T/fake.py" <<'PY'
import datetime, http.client, http.server, json, re, sys, threading
s3port, portfile = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
st = {"token_put": 0, "roles": 0, "role_creds": 0, "container": 0, "container_denied": 0,
      "bad_token": 0, "expired_use": 0, "s3": []}
mode = {"imds": "v2"}
TOKEN, ROLE, AUTH = "tok-7f3a", "vd-role", "Bearer pod-identity-xyz"

expires = {}  # key id -> expiry, to catch requests signed with an expired set

def creds(prefix, n, tokkey):
    ttl = 60 if n == 1 else 3600
    if mode["imds"] == "short" and n == 2:
        ttl = 12  # usable (10 s margin) for 2 s, then refreshed mid-mount
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
    expires["%s%d" % (prefix, n)] = exp
    return {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "%s%d" % (prefix, n),
            "SecretAccessKey": "secret%d" % n, tokkey: "%stok%d" % (prefix.lower(), n),
            "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, body=b"", ctype="text/plain", extra=()):
        if isinstance(body, str): body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def imds_ok(self):
        if mode["imds"] == "v1": return True
        if self.headers.get("X-aws-ec2-metadata-token") == TOKEN: return True
        with lock: st["bad_token"] += 1
        self.reply(401)
        return False
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""
    def do_PUT(self):
        if self.path == "/latest/api/token":
            self.body()
            if mode["imds"] == "v1": return self.reply(405)
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"): return self.reply(400)
            with lock: st["token_put"] += 1
            return self.reply(200, TOKEN)
        self.proxy()
    def do_GET(self):
        p = self.path
        if p == "/__fake/stats":
            with lock: return self.reply(200, json.dumps(st), "application/json")
        if p == "/latest/meta-data/iam/security-credentials/":
            if not self.imds_ok(): return
            with lock: st["roles"] += 1
            return self.reply(200, ROLE)
        if p == "/latest/meta-data/iam/security-credentials/" + ROLE:
            if not self.imds_ok(): return
            with lock:
                st["role_creds"] += 1
                n = st["role_creds"]
            return self.reply(200, json.dumps(creds("ASIAIMDS", n, "Token")), "text/plain")
        if p == "/ecs/creds":
            if self.headers.get("Authorization") != AUTH:
                with lock: st["container_denied"] += 1
                return self.reply(403, json.dumps({"code": "AccessDenied", "message": "bad token"}),
                                  "application/json")
            with lock:
                st["container"] += 1
                n = st["container"]
            c = creds("ASIACONT", n, "Token"); del c["Code"]; del c["Type"]
            c["RoleArn"] = "arn:aws:iam::123456789012:role/vd"
            return self.reply(200, json.dumps(c), "application/json")
        self.proxy()
    def do_POST(self):
        if self.path.startswith("/__fake/mode/"):
            self.body(); mode["imds"] = self.path.rsplit("/", 1)[1]
            with lock:
                for k in st: st[k] = [] if k == "s3" else 0
            return self.reply(200)
        self.proxy()
    do_HEAD = do_GET
    def do_DELETE(self): self.proxy()
    def proxy(self):
        body = self.body()
        auth = self.headers.get("Authorization")
        if not auth:
            return self.reply(403, "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                              "<Message>Access Denied</Message></Error>", "application/xml")
        m = re.search(r"Credential=([^/]+)/", auth)
        with lock:
            exp = expires.get(m.group(1) if m else "")
            if exp and exp <= datetime.datetime.now(datetime.timezone.utc):
                st["expired_use"] += 1
            st["s3"].append("%s %s %s" % (m.group(1) if m else "?",
                                          self.headers.get("x-amz-security-token", "-"), self.command))
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        # s3rver knows one key id (and checks no signature): present that one.
        hdrs["Authorization"] = re.sub(r"Credential=[^/]+/", "Credential=S3RVER/", auth)
        conn = http.client.HTTPConnection("127.0.0.1", s3port, timeout=60)
        conn.request(self.command, self.path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "date", "server", "content-length"):
                self.send_header(k, v)
        # A HEAD answer keeps the object's length; others carry the body read.
        self.send_header("Content-Length", r.getheader("Content-Length", "0")
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(data)
        conn.close()

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(portfile, "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
python3 "$T/fake.py" "$S3_PORT" "$T/fake.port" 2>"$T/fake.log" &
S3_PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$T/fake.port" ] && break; sleep 0.05; done
[ -s "$T/fake.port" ] || fail "the fake metadata server did not start: $(cat "$T/fake.log")"
F="http://127.0.0.1:$(cat "$T/fake.port")"

# stat KEY: a counter of the fake; signers: the distinct "KEYID TOKEN" pairs
# S3 requests were signed with; mode M resets the counters.
stat() { curl -sf "$F/__fake/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
signers() {
    curl -sf "$F/__fake/stats" |
        python3 -c "import json,sys; print(' '.join(sorted({' '.join(l.split()[:2]) for l in json.load(sys.stdin)['s3']})))"
}
s3count() { curl -sf "$F/__fake/stats" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['s3']))"; }
mode() { curl -sf -XPOST "$F/__fake/mode/$1" >/dev/null; }

# No static credentials anywhere from here on; S3 goes through the fake.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI
unset AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
unset AWS_WEB_IDENTITY_TOKEN_FILE AWS_EC2_METADATA_DISABLED AWS_EC2_METADATA_V1_DISABLED
export AWS_ENDPOINT_URL="$F" AWS_CONFIG_FILE="$T/config" AWS_SHARED_CREDENTIALS_FILE=/dev/null
: >"$T/config"
export AWS_EC2_METADATA_SERVICE_ENDPOINT="$F"

head -c 6000000 /dev/urandom >"$T/disk.raw"
want=$(sha "$T/disk.raw")
s3_put "$T/disk.raw" c/disk.raw

# 1. IMDSv2: one token, the role listed and fetched twice (open, then the
# refresh on first use); every S3 request signed with the second set.
mode v2
got=$("$VDISK" hash s3://vdtest/c/disk.raw | cut -d' ' -f1)
assert_eq "$got" "$want" "read with instance-role credentials"
assert_eq "$(stat token_put)" 1 "IMDS token PUTs"
assert_eq "$(stat roles)" 2 "IMDS role listings"
assert_eq "$(stat role_creds)" 2 "IMDS credential fetches"
assert_eq "$(stat bad_token)" 0 "IMDS requests without the token"
assert_eq "$(signers)" "ASIAIMDS2 asiaimdstok2" "S3 requests signed with the refreshed IMDS set"

# Export (multipart, parallel part uploads) with IMDS credentials; read back
# with curl straight from s3rver.
mode v2
VD_S3_UPLOADS=3 VD_S3_PART_DOUBLE_EVERY=1 "$VDISK" convert -q -O raw "$T/disk.raw" s3://vdtest/c/out.raw
assert_eq "$(stat role_creds)" 2 "IMDS credential fetches for an export"
assert_eq "$(signers)" "ASIAIMDS2 asiaimdstok2" "export requests signed with the refreshed set"
s3_get c/out.raw "$T/out.raw"
assert_eq "$(sha "$T/out.raw")" "$want" "export with instance-role credentials"

# The same through a daemonized FUSE mount (the set fetched before the fork
# keeps being used and refreshed after it). Skipped without FUSE.
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
    mode v2
    vmount "$T/mnt" s3://vdtest/c/disk.raw
    raw=$(find "$T/mnt" -name disk.raw | head -1)
    assert_eq "$(sha "$raw")" "$want" "mounted with instance-role credentials"
    assert_eq "$(stat token_put)/$(stat role_creds)" "1/2" "IMDS calls for a mount"
    assert_eq "$(signers)" "ASIAIMDS2 asiaimdstok2" "mount requests signed with the refreshed set"
    vumount "$T/mnt"

    # A refresh in the middle of a mount: the second set is only good for 2 s
    # (12 s left, 10 s margin), so reads soon need a third; no request may be
    # signed with an expired set. O_DIRECT reads and a 1 MiB cache make every
    # pass fetch again. The loop waits for the event (bounded), it times nothing.
    mode short
    vmount "$T/mnt" -o cache_size=1M s3://vdtest/c/disk.raw
    raw=$(find "$T/mnt" -name disk.raw | head -1)
    for _ in $(seq 1 300); do
        dd if="$raw" of=/dev/null bs=1M iflag=direct status=none
        [ "$(stat role_creds)" -ge 3 ] && signers | grep -q ASIAIMDS3 && break
        sleep 0.1
    done
    assert_eq "$(stat role_creds)" 3 "IMDS fetches: open, first use, mid-mount refresh"
    assert_eq "$(signers)" "ASIAIMDS2 asiaimdstok2 ASIAIMDS3 asiaimdstok3" "sets used by the mount"
    assert_eq "$(stat expired_use)" 0 "requests signed with expired credentials"
    assert_eq "$(sha "$raw")" "$want" "mounted disk.raw after the refresh"
    vumount "$T/mnt"
else
    echo "note: no FUSE here, mount case not run"
fi

# 2. IMDSv1 fallback when the token PUT answers 405, as the SDKs do; refused
# with AWS_EC2_METADATA_V1_DISABLED=true.
mode v1
got=$("$VDISK" hash s3://vdtest/c/disk.raw | cut -d' ' -f1)
assert_eq "$got" "$want" "read with IMDSv1 credentials"
assert_eq "$(stat token_put)/$(stat role_creds)" "0/2" "IMDSv1: no token, two fetches"
mode v1
if AWS_EC2_METADATA_V1_DISABLED=true "$VDISK" hash s3://vdtest/c/disk.raw >/dev/null 2>"$T/err"; then
    fail "IMDSv1 used although AWS_EC2_METADATA_V1_DISABLED=true"
fi
grep -qF "imds ($F): token PUT: HTTP 405)" "$T/err" || fail "v1 disabled: $(cat "$T/err")"
assert_eq "$(stat role_creds)" 0 "no IMDSv1 fetch when disabled"

# 3. Container credentials (EKS Pod Identity style): FULL_URI on loopback,
# token from a file; they come before IMDS.
mode v2
echo "Bearer pod-identity-xyz" >"$T/podtoken"
export AWS_CONTAINER_CREDENTIALS_FULL_URI="$F/ecs/creds" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$T/podtoken"
"$VDISK" convert -q -O raw "$T/disk.raw" s3://vdtest/c/out2.raw
s3_get c/out2.raw "$T/out2.raw"
assert_eq "$(sha "$T/out2.raw")" "$want" "export with container credentials"
assert_eq "$(stat container)/$(stat container_denied)" "2/0" "container fetches (open + refresh)"
assert_eq "$(stat token_put)/$(stat role_creds)" "0/0" "IMDS not asked when the container answers"
assert_eq "$(signers)" "ASIACONT2 asiaconttok2" "S3 requests signed with the refreshed container set"
# A wrong token is an error naming the endpoint and its answer, not a skip to IMDS.
echo "Bearer wrong" >"$T/podtoken"
if "$VDISK" hash s3://vdtest/c/disk.raw >/dev/null 2>"$T/err"; then fail "wrong container token accepted"; fi
grep -qF "s3: container credentials ($F/ecs/creds): HTTP 403: AccessDenied: bad token" "$T/err" ||
    fail "wrong token: $(cat "$T/err")"
# Plain http to a host that is not loopback or the ECS/EKS address is refused.
if AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.1.2.3/creds "$VDISK" hash s3://vdtest/c/disk.raw \
    >/dev/null 2>"$T/err"; then fail "container URI on 10.1.2.3 accepted"; fi
grep -qF "AWS_CONTAINER_CREDENTIALS_FULL_URI 'http://10.1.2.3/creds' must be https, or http to a loopback address" "$T/err" ||
    fail "bad FULL_URI: $(cat "$T/err")"
unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE

# 4. credential_process in a profile (a path with a space, quoted as the AWS
# CLI documents); it beats IMDS.
mkdir -p "$T/my bin"
cat >"$T/my bin/creds.sh" <<'SH'
#!/bin/sh
[ "$1" = "--role" ] && [ "$2" = "reader one" ] || { echo "bad args: $*" >&2; exit 2; }
echo x >>"$(dirname "$0")/runs"
printf '{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "s", "SessionToken": "proctok", "Expiration": "%s"}\n' \
    "$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)"
SH
chmod +x "$T/my bin/creds.sh"
printf '[profile proc]\ncredential_process = "%s" --role "reader one"\n[profile broken]\ncredential_process = "%s" --role other\n' \
    "$T/my bin/creds.sh" "$T/my bin/creds.sh" >"$T/config"
mode v2
got=$(AWS_PROFILE=proc "$VDISK" hash s3://vdtest/c/disk.raw | cut -d' ' -f1)
assert_eq "$got" "$want" "read with credential_process"
assert_eq "$(wc -l <"$T/my bin/runs")" 1 "credential_process runs (valid 2 h: no refresh)"
assert_eq "$(signers)" "ASIAPROC proctok" "S3 requests signed by the process's set"
assert_eq "$(stat token_put)" 0 "IMDS not asked when credential_process answers"
if AWS_PROFILE=broken "$VDISK" hash s3://vdtest/c/disk.raw >/dev/null 2>"$T/err"; then
    fail "failing credential_process accepted"
fi
grep -qF "s3: profile broken: credential_process '\"$T/my bin/creds.sh\" --role other' exited with status 2: bad args: --role other" "$T/err" ||
    fail "failing process: $(cat "$T/err")"
: >"$T/config"

# 5. AWS_EC2_METADATA_DISABLED=true: IMDS is not asked; unsigned requests get
# the bucket's 403 and the message lists what was tried.
mode v2
if AWS_EC2_METADATA_DISABLED=true "$VDISK" hash s3://vdtest/c/disk.raw >/dev/null 2>"$T/err"; then
    fail "anonymous read of a private object succeeded"
fi
assert_eq "$(stat token_put)/$(stat roles)" "0/0" "IMDS asked although disabled"
grep -qF "HTTP 403, sent unsigned: no credentials found (tried: env; profile default: no keys or credential_process; container: not set; imds: disabled by AWS_EC2_METADATA_DISABLED)" "$T/err" ||
    fail "disabled IMDS: $(cat "$T/err")"

# 6. An unreachable IMDS (connection refused) fails at once with the list.
if AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1 "$VDISK" hash s3://vdtest/c/disk.raw \
    >/dev/null 2>"$T/err"; then fail "read without credentials succeeded"; fi
grep -qF "no credentials found (tried: env; profile default: no keys or credential_process; container: not set; imds (http://127.0.0.1:1): " "$T/err" ||
    fail "unreachable IMDS: $(cat "$T/err")"
echo "PASS"
