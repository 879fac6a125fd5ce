# Helpers for the OVA tests that use VMware's open-vmdk as the oracle
# (t-ova-compose, t-ova-vm). Source after lib.sh.
PY=/usr/bin/python3 # Debian's: ova-compose needs its python3-yaml and python3-lxml
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OVFCMP="$SRC_DIR/tests/integration/ovf_compare.py"

# ova_oracles: build vmdk-convert and link ova-compose (seconds, cached in
# the build dir), put them on PATH, set OVMDK to their directory.
ova_oracles() {
    need tar qemu-img xmllint
    [ -x "$PY" ] || skip "Debian's /usr/bin/python3 is missing"
    "$PY" -c 'import yaml, lxml' 2>/dev/null ||
        skip "python3-yaml and python3-lxml are not installed (scripts/install-deps.sh)"
    command -v make >/dev/null || skip "make is not installed"
    OVMDK=$(bash "$SRC_DIR/tests/oracles/build-open-vmdk.sh" "${VD_BUILD_DIR:-$T}/open-vmdk") ||
        fail "tests/oracles/build-open-vmdk.sh failed"
    PATH=$OVMDK:$PATH
}

# compose YAML OVA: VMware's ova-compose, in YAML's directory (raw_image
# paths are relative to it); vmdk-convert makes the disks.
compose() {
    (cd "$(dirname "$1")" && "$PY" "$OVMDK/ova-compose.py" -q -i "$(basename "$1")" -o "$2" \
        --vmdk-convert "$OVMDK/vmdk-convert") >"$T/compose.log" 2>&1 ||
        fail "ova-compose $1 failed: $(cat "$T/compose.log")"
}

XSD="$VD_TEST_DATA/ovf-schema/dsp8023_1.1.1.xsd"
# validate OVF: DMTF DSP8023 1.1.1, as t-ova-schema checks ours.
validate() {
    local out
    out=$(xmllint --noout --nonet --schema "$XSD" "$1" 2>&1) ||
        fail "$(basename "$1") does not validate against DSP8023 1.1.1: $(grep -v 'Skipping import' <<<"$out")"
}

# member OVA NAME: extract one member to stdout.
member() { tar -xOf "$1" "$2"; }
