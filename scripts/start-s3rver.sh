#!/usr/bin/env bash
# Start a local S3 server (s3rver 3.7.1, Node) for the S3 tests and benchmarks.
#
#   eval "$(scripts/start-s3rver.sh [DATA_DIR] [BUCKET...])"
#
# Installs s3rver@3.7.1 with npm into tests/s3/node_modules (gitignored) when
# it is missing, starts it in the background on a free port with the given
# buckets (default: vdtest), waits until it answers, and prints shell
# assignments to eval:
#   VD_S3_PORT=NNNN VD_S3_PID=NNNN VD_S3_DIR=...
#   AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
#   AWS_ENDPOINT_URL=http://127.0.0.1:NNNN
# Stop it with: kill "$VD_S3_PID". Exit 77 when Node/npm is unavailable.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
prefix="$here/tests/s3"
bin="$prefix/node_modules/.bin/s3rver"
command -v node >/dev/null 2>&1 || { echo "start-s3rver: node is not installed" >&2; exit 77; }
if [ ! -x "$bin" ]; then
    command -v npm >/dev/null 2>&1 || { echo "start-s3rver: npm is not installed" >&2; exit 77; }
    (
        # Lock so concurrent test runs do not install twice into one tree.
        exec 9>"$prefix/.install.lock"
        flock 9
        if [ ! -x "$bin" ]; then
            npm install --silent --no-audit --no-fund --prefix "$prefix" s3rver@3.7.1 >&2
        fi
    )
fi
data=${1:-}
[ $# -gt 0 ] && shift
[ -n "$data" ] || data=$(mktemp -d "${TMPDIR:-/tmp}/s3rver.XXXXXX")
mkdir -p "$data"
buckets=("$@")
[ ${#buckets[@]} -gt 0 ] || buckets=(vdtest)
args=()
for b in "${buckets[@]}"; do args+=(--configure-bucket "$b"); done
# A free port: ask the kernel, then hand it to s3rver (retry on a race).
for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    "$bin" -d "$data" -a 127.0.0.1 -p "$port" --silent "${args[@]}" >"$data/.s3rver.log" 2>&1 </dev/null &
    pid=$!
    for i in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
            cat <<OUT
VD_S3_PORT=$port
VD_S3_PID=$pid
VD_S3_DIR=$data
AWS_ACCESS_KEY_ID=S3RVER
AWS_SECRET_ACCESS_KEY=S3RVER
AWS_REGION=us-east-1
AWS_ENDPOINT_URL=http://127.0.0.1:$port
export VD_S3_PORT VD_S3_PID VD_S3_DIR AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL
OUT
            exit 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
echo "start-s3rver: s3rver did not start; log:" >&2
cat "$data/.s3rver.log" >&2 || true
exit 1
