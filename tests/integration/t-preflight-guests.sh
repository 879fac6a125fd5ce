#!/usr/bin/env bash
# vdisk preflight on the debootstrapped Debian 12 guests of the shared
# builder (tests/integration/guests.sh; needs its Debian tree, see there):
# the plain ext4/MBR/BIOS guest is ready (also for import-snapshot: its
# initramfs holds nvme and ena), and each other layout gives the finding
# its layout calls for.
. "$VD_TEST_LIB"
. "$(dirname "$0")/guests.sh"
[ "$(id -u)" -eq 0 ] || skip "guests.sh needs root (loop devices)"

# expect RC CHECK SEVERITY IMAGE: exit code RC and a finding of CHECK at
# SEVERITY (CHECK "-": no finding above note).
expect() {
    local want=$1 check=$2 sev=$3 img=$4 rc=0
    "$VDISK" preflight --target aws --json "$img" >"$T/out.json" 2>"$T/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "preflight $img: exit $rc, want $want
$(cat "$T/err" "$T/out.json")"
    python3 - "$T/out.json" "$check" "$sev" <<'EOP' || fail "preflight $img: $(cat "$T/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
check, sev = sys.argv[2:4]
if check == "-":
    sys.exit(1 if [f for f in d["findings"] if f["severity"] != "note"] else 0)
hits = [f for f in d["findings"] if f["check"] == check and f["severity"] == sev]
for f in hits:
    print("  %s [%s] %s" % (f["check"], f["severity"], f["message"]))
sys.exit(0 if hits else 1)
EOP
}

echo "== ext4-mbr: Debian 12, BIOS GRUB, DHCP"
guest_image ext4-mbr "$T/ext4.raw"
"$VDISK" preflight --target aws "$T/ext4.raw" || true
expect 0 - - "$T/ext4.raw"
echo "== i386"
guest_image i386 "$T/i386.raw"
expect 2 arch-64bit would-fail "$T/i386.raw"
echo "== two-roots"
guest_image two-roots "$T/two.raw"
expect 2 os-count would-fail "$T/two.raw"
echo "== lvm-xfs: root XFS on LVM, netplan static address"
guest_image lvm-xfs "$T/lvm.raw"
expect 3 network-static risk "$T/lvm.raw"
echo "== import-snapshot: Debian's initramfs holds nvme and ena"
"$VDISK" preflight --target aws --route import-snapshot --json "$T/ext4.raw" >"$T/snap.json" || true
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "initramfs-drivers" in d["passed"], d' \
    "$T/snap.json" || fail "initramfs-drivers did not pass on Debian 12: $(cat "$T/snap.json")"
echo "== gpt-esp: UEFI with the fallback loader, networkd bound to a MAC"
guest_image gpt-esp "$T/esp.raw"
expect 3 network-bound risk "$T/esp.raw"
echo PASS
