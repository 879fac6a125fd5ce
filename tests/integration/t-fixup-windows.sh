#!/bin/bash
# vdisk fixup --root on a Windows guest tree: the SYSTEM registry hive is
# built here (mkhive.py writes an empty hive, hivexregedit --merge adds the
# keys of a Windows SYSTEM hive), fixup edits it with libhivex, and every
# value is read back with an independent reader (hivexregedit --export,
# the Perl Win::Hivex tool, and hivexget). Checks: the exact export after
# the run, the backup is the original byte for byte, a dry run leaves the
# hive byte-identical, a second run changes nothing, and corrupt, dirty,
# foreign and incomplete hives fail with their exact message and nothing
# written. On an NTFS made by mkntfs and mounted with ntfs-3g too, when
# both are there.
. "$VD_TEST_LIB"
need python3 hivexregedit hivexget sha256sum

MKHIVE=$(dirname "${BASH_SOURCE[0]}")/mkhive.py
P='HKEY_LOCAL_MACHINE\SYSTEM'

# hex(7) of a REG_MULTI_SZ holding the given strings (UTF-16LE)
multisz() {
    local s out="" i
    for s in "$@"; do
        for ((i = 0; i < ${#s}; i++)); do out+=$(printf '%02x,00,' "'${s:i:1}"); done
        out+="00,00,"
    done
    echo "hex(7):${out}00,00"
}

# build_hive OUT CURRENT: a SYSTEM hive as Windows Server would have it on
# a VMware VM with a static address (only the keys fixup looks at).
build_hive() {
    python3 "$MKHIVE" "$1" "CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}"
    cat > "$T/system.reg" <<EOF
Windows Registry Editor Version 5.00

[$P\\Select]
"Current"=dword:0000000${2}
"Default"=dword:00000001
"LastKnownGood"=dword:00000002

[$P\\ControlSet001]

[$P\\ControlSet001\\Control]

[$P\\ControlSet001\\Control\\TimeZoneInformation]
"TimeZoneKeyName"="Pacific Standard Time"
"Bias"=dword:000001e0

[$P\\ControlSet001\\Services]

[$P\\ControlSet001\\Services\\atapi]
"Start"=dword:00000000
"Type"=dword:00000001

[$P\\ControlSet001\\Services\\Dhcp]
"Start"=dword:00000004
"Type"=dword:00000020

[$P\\ControlSet001\\Services\\intelide]
"Start"=dword:00000004
"Type"=dword:00000001

[$P\\ControlSet001\\Services\\LSI_SAS]
"Start"=dword:00000000
"Type"=dword:00000001

[$P\\ControlSet001\\Services\\storahci]
"Start"=dword:00000003
"Type"=dword:00000001

[$P\\ControlSet001\\Services\\stornvme]
"Start"=dword:00000003
"Type"=dword:00000001

[$P\\ControlSet001\\Services\\Tcpip]

[$P\\ControlSet001\\Services\\Tcpip\\Parameters]

[$P\\ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces]

[$P\\ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces\\{0C9E3A47-5B5E-4D8B-9C4A-1B2E8F0A6D31}]
"EnableDHCP"=dword:00000000
"IPAddress"=$(multisz 192.168.10.20)
"SubnetMask"=$(multisz 255.255.255.0)
"DefaultGateway"=$(multisz 192.168.10.1)
"DefaultGatewayMetric"=$(multisz 0)
"NameServer"="192.168.10.1"

[$P\\ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces\\{7F1D2B6C-3A4E-4F50-8E9D-0A1B2C3D4E5F}]
"EnableDHCP"=dword:00000001

[$P\\ControlSet002]

[$P\\ControlSet002\\Services]

[$P\\ControlSet002\\Services\\storahci]
"Start"=dword:00000003
EOF
    hivexregedit --merge --prefix "$P" "$1" "$T/system.reg"
}

export_cs() { hivexregedit --export --prefix "$P" "$1" "${2:-\\ControlSet001}"; }

# --- a plain folder tree; upper-case WINDOWS as Windows XP/2003 wrote it
G=$T/win
mkdir -p "$G/WINDOWS/system32/config" "$G/Program Files"
H=$G/WINDOWS/system32/config/SYSTEM
build_hive "$H" 1
# oracle check of the input: what we built is what we meant
assert_eq "$(hivexget "$H" '\ControlSet001\Services\storahci' Start)" 3 "oracle: storahci Start"
orig_sha=$(sha "$H")
export_cs "$H" > "$T/before.reg"

# --- dry run: lists the changes, writes nothing
"$VDISK" fixup --dry-run --root "$G" > "$T/dry.out"
assert_eq "$(sha "$H")" "$orig_sha" "dry run changed the hive"
[ ! -e "$H.vdisk.orig" ] || fail "dry run made a backup"
assert_eq "$(ls -A "$G/WINDOWS/system32/config")" SYSTEM "dry run left files"
grep -qxF "/WINDOWS/system32/config/SYSTEM: would be rewritten" "$T/dry.out" ||
    fail "dry run output: $(cat "$T/dry.out")"
grep -qxF "dry run: 1 file would change; nothing was written" "$T/dry.out" || fail "dry run summary"

# --- the run
"$VDISK" fixup --root "$G" > "$T/run.out"
cat > "$T/run.expected" <<'EOF'
/WINDOWS/system32/config/SYSTEM: rewritten (original kept as SYSTEM.vdisk.orig)
  ControlSet001\Services\storahci\Start: 3 (manual) -> 0 (boot): the storage driver loads at boot, so Windows finds its disk behind the new controller (STOP 0x7B otherwise)
  ControlSet001\Services\stornvme\Start: 3 (manual) -> 0 (boot): the storage driver loads at boot, so Windows finds its disk behind the new controller (STOP 0x7B otherwise)
  ControlSet001\Services\intelide\Start: 4 (disabled) -> 0 (boot): the storage driver loads at boot, so Windows finds its disk behind the new controller (STOP 0x7B otherwise)
  ControlSet001\Services\Dhcp\Start: 4 (disabled) -> 2 (automatic): AWS needs a DHCP client service that can start; the instance's address comes from DHCP
  ControlSet001\Control\TimeZoneInformation\RealTimeIsUniversal: absent -> 1: EC2 keeps the hardware clock in UTC, so Windows must read it as UTC (AWS asks for this key)
  ControlSet001\Services\Tcpip\Parameters\Interfaces\{0C9E3A47-5B5E-4D8B-9C4A-1B2E8F0A6D31}: static address 192.168.10.20, gateway 192.168.10.1 -> DHCP (EnableDHCP 0 -> 1; IPAddress, SubnetMask, DefaultGateway emptied): in a VPC the address comes from DHCP
1 file changed
EOF
diff -u "$T/run.expected" "$T/run.out" || fail "fixup output differs"

# the backup is the original, byte for byte
assert_eq "$(sha "$H.vdisk.orig")" "$orig_sha" "backup is not the original"
assert_eq "$(ls -A "$G/WINDOWS/system32/config" | sort | tr '\n' ' ')" "SYSTEM SYSTEM.vdisk.orig " \
    "files beside the hive"

# every value, read back by Win::Hivex: the whole control set exported
# before and after; the after export must be the before one with exactly
# these values changed (and nothing else, keys and other values alike)
export_cs "$H" > "$T/after.reg"
python3 - "$T/before.reg" > "$T/after.expected" <<'PY'
import sys
CS = "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\"
IF = "Services\\Tcpip\\Parameters\\Interfaces\\{0C9E3A47-5B5E-4D8B-9C4A-1B2E8F0A6D31}"
edits = {
    "Services\\storahci": {"Start": "dword:00000000"},
    "Services\\stornvme": {"Start": "dword:00000000"},
    "Services\\intelide": {"Start": "dword:00000000"},
    "Services\\Dhcp": {"Start": "dword:00000002"},
    "Control\\TimeZoneInformation": {"RealTimeIsUniversal": "dword:00000001"},
    IF: {"EnableDHCP": "dword:00000001", "IPAddress": "hex(7):00,00",
         "SubnetMask": "hex(7):00,00", "DefaultGateway": "hex(7):00,00",
         "DefaultGatewayMetric": "hex(7):00,00"},
}
out, vals, sec = [], None, None
def flush():
    if vals is not None:
        want = edits.get(sec[len(CS):] if sec.startswith(CS) else None, {})
        for k, v in want.items():
            vals['"%s"' % k] = v
        for k in sorted(vals, key=str.lower):
            out.append("%s=%s" % (k, vals[k]))
for line in open(sys.argv[1]).read().split("\n"):
    if line.startswith("["):
        flush()
        sec, vals = line[1:-1], {}
        out.append(line)
    elif line.startswith('"') and vals is not None:
        k, v = line.split("=", 1)
        vals[k] = v
    else:
        if line == "" and vals is not None:
            flush()
            vals = None
        out.append(line)
flush()
sys.stdout.write("\n".join(out))
PY
# 10 value lines: 4 Start, RealTimeIsUniversal (added), EnableDHCP, 4 lists emptied
[ "$(diff "$T/before.reg" "$T/after.expected" | grep -c '^>')" -eq 10 ] ||
    fail "expected export: not 10 value lines changed"
diff -u "$T/after.expected" "$T/after.reg" || fail "hive content after fixup differs"
# the other control set and Select are untouched
assert_eq "$(hivexget "$H" '\ControlSet002\Services\storahci' Start)" 3 "ControlSet002 changed"
assert_eq "$(hivexget "$H" '\Select' Current)" 1 "Select changed"
# the hive is still whole for the C library too (hivexget uses libhivex)
assert_eq "$(hivexget "$H" '\ControlSet001\Services\Dhcp' Start)" 2 "hivexget: Dhcp Start"

# --- a second run changes nothing and makes no second backup
after_sha=$(sha "$H")
"$VDISK" fixup --root "$G" > "$T/run2.out"
assert_eq "$(cat "$T/run2.out")" "nothing to change" "second run"
assert_eq "$(sha "$H")" "$after_sha" "second run changed the hive"
[ ! -e "$H.vdisk.orig.2" ] || fail "second run made a backup"

# --- a later change with the first backup present: .vdisk.orig.2, never overwritten
hivexregedit --merge --prefix "$P" "$H" <(printf 'Windows Registry Editor Version 5.00\n\n[%s\\ControlSet001\\Services\\storahci]\n"Start"=dword:00000003\n' "$P")
mid_sha=$(sha "$H")
"$VDISK" fixup --root "$G" > /dev/null
assert_eq "$(sha "$H.vdisk.orig")" "$orig_sha" "first backup was overwritten"
assert_eq "$(sha "$H.vdisk.orig.2")" "$mid_sha" "second backup"
assert_eq "$(hivexget "$H" '\ControlSet001\Services\storahci' Start)" 0 "storahci after rerun"

# --- bad hives: exact message, exit 1, nothing written
bad() { # bad NAME EXPECTED-MESSAGE (the tree is $T/bad-NAME)
    local d=$T/bad-$1 h=$T/bad-$1/Windows/System32/config/SYSTEM
    local before=$(sha "$h")
    local rc=0
    "$VDISK" fixup --root "$d" > "$T/bad.out" 2> "$T/bad.err" || rc=$?
    assert_eq "$rc" 1 "$1: exit status"
    assert_eq "$(cat "$T/bad.err")" "$2" "$1: message"
    assert_eq "$(sha "$h")" "$before" "$1: hive changed"
    assert_eq "$(ls -A "$d/Windows/System32/config")" SYSTEM "$1: files written"
}
mkbad() { mkdir -p "$T/bad-$1/Windows/System32/config"; echo "$T/bad-$1/Windows/System32/config/SYSTEM"; }

h=$(mkbad corrupt); cp "$G/WINDOWS/system32/config/SYSTEM.vdisk.orig" "$h"
# flip a byte of the base block's checksum (offset 508)
printf '\xff' | dd of="$h" bs=1 seek=508 conv=notrunc status=none
bad corrupt "vdisk: fixup: $T/bad-corrupt/Windows/System32/config/SYSTEM: hivex cannot open the registry hive (corrupt?): Invalid argument"

h=$(mkbad dirty); cp "$G/WINDOWS/system32/config/SYSTEM.vdisk.orig" "$h"
# primary sequence number 5, secondary left as it was: a write was cut short
printf '\x05\x00\x00\x00' | dd of="$h" bs=1 seek=4 conv=notrunc status=none
bad dirty "vdisk: fixup: $T/bad-dirty/Windows/System32/config/SYSTEM: the hive was not closed cleanly (its sequence numbers differ), so Windows would replay SYSTEM.LOG1/LOG2 over any edit; boot the guest and shut it down cleanly first; nothing was changed"

h=$(mkbad text); printf 'Windows Registry Editor Version 5.00\n%0600d\n' 0 > "$h"
bad text "vdisk: fixup: $T/bad-text/Windows/System32/config/SYSTEM: not a registry hive (no regf header)"

h=$(mkbad nocs); build_hive "$h" 3
bad nocs "vdisk: fixup: $T/bad-nocs/Windows/System32/config/SYSTEM: the current control set ControlSet003 (Select\\Current = 3) is missing"

h=$(mkbad noselect); python3 "$MKHIVE" "$h"
bad noselect "vdisk: fixup: $T/bad-noselect/Windows/System32/config/SYSTEM: no Select\\Current REG_DWORD value: not a SYSTEM hive"

# a symlinked config folder is not followed out of the guest
mkdir -p "$T/bad-link/Windows/System32"
ln -s "$G/WINDOWS/system32/config" "$T/bad-link/Windows/System32/config"
rc=0
"$VDISK" fixup --root "$T/bad-link" > /dev/null 2> "$T/bad.err" || rc=$?
assert_eq "$rc" 1 "symlink: exit status"
assert_eq "$(cat "$T/bad.err")" \
    "vdisk: fixup: $T/bad-link: not a Linux root filesystem (no etc folder) nor a Windows one (no Windows/System32/config/SYSTEM)" \
    "symlink: message"

# --- on a real NTFS (mkntfs, mounted read-write with ntfs-3g), when possible
if command -v mkntfs >/dev/null && command -v ntfs-3g >/dev/null && [ -e /dev/fuse ] &&
    [ "$(id -u)" -eq 0 ]; then
    truncate -s 16M "$T/ntfs.img"
    mkntfs -q -F -Q "$T/ntfs.img" >/dev/null 2>&1
    M=$T/ntfs
    mkdir -p "$M"
    ntfs-3g "$T/ntfs.img" "$M"
    MOUNTS+=("$M")
    mkdir -p "$M/Windows/System32/config"
    cp "$G/WINDOWS/system32/config/SYSTEM.vdisk.orig" "$M/Windows/System32/config/SYSTEM"
    "$VDISK" fixup --root "$M" > "$T/ntfs.out"
    grep -qxF "/Windows/System32/config/SYSTEM: rewritten (original kept as SYSTEM.vdisk.orig)" \
        "$T/ntfs.out" || fail "ntfs: output: $(cat "$T/ntfs.out")"
    umount "$M"
    # read back from a fresh read-only mount
    ntfs-3g -o ro "$T/ntfs.img" "$M"
    export_cs "$M/Windows/System32/config/SYSTEM" > "$T/ntfs.reg"
    diff -u "$T/after.expected" "$T/ntfs.reg" || fail "ntfs: hive content differs"
    assert_eq "$(sha "$M/Windows/System32/config/SYSTEM.vdisk.orig")" "$orig_sha" "ntfs: backup"
    umount "$M"
else
    echo "note: NTFS part skipped (needs mkntfs, ntfs-3g, /dev/fuse and root)"
fi

# --- VIEW mode: the hive inside an NTFS partition of a raw disk, edited
# through a vdiskfs -o rw mount with libntfs-3g (no kernel mount); read
# back with ntfscat (ntfsprogs) and hivexregedit, checked with ntfsfix -n.
if ! command -v mkntfs >/dev/null || ! command -v ntfs-3g >/dev/null ||
    ! command -v ntfscat >/dev/null || [ ! -e /dev/fuse ] || [ "$(id -u)" -ne 0 ]; then
    echo "note: VIEW part skipped (needs mkntfs, ntfs-3g, ntfscat, /dev/fuse and root)"
    echo "ok"
    exit 0
fi
need sfdisk
truncate -s 20M "$T/wp1.img"
mkntfs -q -F -Q "$T/wp1.img" >/dev/null 2>&1
M=$T/wp1
mkdir -p "$M"
ntfs-3g "$T/wp1.img" "$M"
MOUNTS+=("$M")
mkdir -p "$M/Windows/System32/config"
cp "$G/WINDOWS/system32/config/SYSTEM.vdisk.orig" "$M/Windows/System32/config/SYSTEM"
umount "$M"
truncate -s 24M "$T/wvm.raw"
printf 'label: dos\nstart=2048, size=40960, type=7\n' | sfdisk -q "$T/wvm.raw"
dd if="$T/wp1.img" of="$T/wvm.raw" bs=512 seek=2048 conv=notrunc status=none
part() { dd if="$T/wvm.raw" of="$T/wp1.now" bs=512 skip=2048 count=40960 status=none; }

# read-only view: a dry run works and writes nothing, a real run fails
vmount "$T/wro" "$T/wvm.raw"
sum_before=$(sha "$T/wvm.raw")
"$VDISK" fixup --dry-run "$T/wro/wvm" > "$T/wvdry.out"
grep -qxF "editing $T/wro/wvm/disk-p1.raw: the Windows partition (NTFS, edited with libntfs-3g)" \
    "$T/wvdry.out" || fail "view dry run: $(cat "$T/wvdry.out")"
grep -qxF "/Windows/System32/config/SYSTEM: would be rewritten" "$T/wvdry.out" ||
    fail "view dry run: $(cat "$T/wvdry.out")"
grep -qxF "dry run: 1 file would change; nothing was written" "$T/wvdry.out" ||
    fail "view dry run summary"
rc=0
"$VDISK" fixup "$T/wro/wvm" > /dev/null 2> "$T/wvro.err" || rc=$?
assert_eq "$rc" 1 "exit status on a read-only view"
assert_eq "$(cat "$T/wvro.err")" "vdisk: fixup: $T/wro/wvm/disk-p1.raw: the view is read-only (Read-only file system); mount the source with vdiskfs -o overlay=FILE (any source; the edits go to FILE, the source stays untouched) or -o rw (a local VMDK, VHD, VHDX or raw file, edited in place), or mount the NTFS with ntfs-3g and use --root DIR" \
    "read-only view message"
vumount "$T/wro"
assert_eq "$(sha "$T/wvm.raw")" "$sum_before" "a read-only view run changed the disk"

vmount "$T/wrw" -o rw "$T/wvm.raw"
"$VDISK" fixup "$T/wrw/wvm" > "$T/wvrun.out"
{
    echo "editing $T/wrw/wvm/disk-p1.raw: the Windows partition (NTFS, edited with libntfs-3g)"
    echo "/Windows/System32/config/SYSTEM: rewritten (original kept as SYSTEM.vdisk.orig)"
    tail -n +2 "$T/run.expected"
} > "$T/wvrun.expected"
diff -u "$T/wvrun.expected" "$T/wvrun.out" || fail "view run output differs"
"$VDISK" fixup "$T/wrw/wvm" > "$T/wvrun2.out"
assert_eq "$(tail -n 1 "$T/wvrun2.out")" "nothing to change" "view second run"
vumount "$T/wrw"

part
ntfscat "$T/wp1.now" /Windows/System32/config/SYSTEM > "$T/wv.hive"
export_cs "$T/wv.hive" > "$T/wv.reg"
diff -u "$T/after.expected" "$T/wv.reg" || fail "view: hive content differs"
assert_eq "$(hivexget "$T/wv.hive" '\ControlSet002\Services\storahci' Start)" 3 "view: ControlSet002"
ntfscat "$T/wp1.now" /Windows/System32/config/SYSTEM.vdisk.orig > "$T/wv.orig"
assert_eq "$(sha "$T/wv.orig")" "$orig_sha" "view: backup"
ntfsfix -n "$T/wp1.now" > "$T/ntfsfix.out" 2>&1 || { cat "$T/ntfsfix.out"; fail "ntfsfix -n after the view fixup"; }

# a hibernated Windows (hiberfil.sys starting "hibr") is refused, unchanged
ntfs-3g "$T/wp1.img" "$M"
{ printf 'hibr'; head -c 8188 /dev/zero; } > "$M/hiberfil.sys"
umount "$M"
dd if="$T/wp1.img" of="$T/wvm.raw" bs=512 seek=2048 conv=notrunc status=none
sum_before=$(sha "$T/wvm.raw")
vmount "$T/whib" -o rw "$T/wvm.raw"
rc=0
"$VDISK" fixup "$T/whib/wvm" > /dev/null 2> "$T/whib.err" || rc=$?
assert_eq "$rc" 1 "hibernated: exit status"
assert_eq "$(cat "$T/whib.err")" "vdisk: fixup: $T/whib/wvm/disk-p1.raw: libntfs-3g will not write to this NTFS: Windows hibernated it or left it with fast startup (boot Windows and shut it down fully: shutdown /s /t 0)" \
    "hibernated: message"
vumount "$T/whib"
assert_eq "$(sha "$T/wvm.raw")" "$sum_before" "hibernated: the disk changed"
echo "ok"
