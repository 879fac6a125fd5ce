#!/bin/bash
# Build VMware's open-vmdk oracles (tests/oracles/open-vmdk, Apache-2.0,
# see its SOURCE.md) into DIR: DIR/vmdk-convert and DIR/ova-compose.py.
# Test tier only, never part of the product. Idempotent; prints DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-open-vmdk.sh DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/vmdk-convert" ] || [ "$here/open-vmdk/vmdk/sparse.c" -nt "$out/vmdk-convert" ]; then
    rm -rf "$out/src"
    cp -r "$here/open-vmdk" "$out/src"
    make -s -C "$out/src/vmdk" >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; exit 1; }
    bin=$(find "$out/src" -name vmdk-convert -type f -perm -u+x | head -1)
    [ -n "$bin" ] || { echo "build-open-vmdk: no vmdk-convert built" >&2; exit 1; }
    cp "$bin" "$out/vmdk-convert"
fi
ln -sf "$out/src/ova-compose/ova-compose.py" "$out/ova-compose.py"
ln -sfn "$out/src/templates" "$out/templates"
echo "$out"
