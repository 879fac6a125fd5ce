#!/bin/bash
# vdisk inspect on a Windows guest: an NTFS (mkntfs, filled through an
# ntfs-3g mount) holding Windows/System32/config/SOFTWARE and SYSTEM hives
# built as t-fixup-windows does (mkhive.py, then hivexregedit --merge of the
# keys a Windows Server 2019 has), and an ntoskrnl.exe whose PE header says
# AMD64. Every field inspect reads from the hives is checked against the
# .reg text that made them; hivexget (an independent reader) confirms the
# hives hold those values. A second guest's SYSTEM hive has no MUI key,
# a disabled Dhcp service and an i386 kernel: the language then comes from
# the install LCID.
. "$VD_TEST_LIB"
need python3 hivexregedit hivexget mkntfs ntfs-3g sfdisk jq
need_fuse
[ "$(id -u)" -eq 0 ] || skip "ntfs-3g needs root here"

MKHIVE=$(dirname "${BASH_SOURCE[0]}")/mkhive.py
CV='HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion'

# multisz STRING...: hex(7) of a REG_MULTI_SZ (UTF-16LE)
multisz() {
    local s out="" i
    for s in "$@"; do
        for ((i = 0; i < ${#s}; i++)); do out+=$(printf '%02x,00,' "'${s:i:1}"); done
        out+="00,00,"
    done
    echo "hex(7):${out}00,00"
}

# build_guest OUT VARIANT: a disk with one NTFS partition holding the hives
build_guest() {
    local out=$1 v=$2 P='HKEY_LOCAL_MACHINE\SYSTEM' S='HKEY_LOCAL_MACHINE\SOFTWARE'
    python3 "$MKHIVE" "$T/SOFTWARE" "CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}"
    python3 "$MKHIVE" "$T/SYSTEM" "CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}"
    cat > "$T/software.reg" <<EOF
Windows Registry Editor Version 5.00

[$S\\Microsoft]

[$S\\Microsoft\\Windows NT]

[$S\\Microsoft\\Windows NT\\CurrentVersion]
"ProductName"="Windows Server 2019 Datacenter"
"CurrentBuildNumber"="17763"
"EditionID"="ServerDatacenter"
"InstallationType"="Server"
"CurrentVersion"="6.3"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"SystemRoot"="C:\\\\Windows"
EOF
    local mui='' dhcp=00000002
    if [ "$v" = a ]; then
        mui="[$P\\ControlSet001\\Control\\MUI]

[$P\\ControlSet001\\Control\\MUI\\UILanguages]

[$P\\ControlSet001\\Control\\MUI\\UILanguages\\de-DE]
\"LCID\"=dword:00000407
"
    else
        dhcp=00000004
    fi
    cat > "$T/system.reg" <<EOF
Windows Registry Editor Version 5.00

[$P\\Select]
"Current"=dword:00000001

[$P\\ControlSet001]

[$P\\ControlSet001\\Control]

$mui
[$P\\ControlSet001\\Control\\Nls]

[$P\\ControlSet001\\Control\\Nls\\Language]
"InstallLanguage"="0409"

[$P\\ControlSet001\\Control\\Session Manager]

[$P\\ControlSet001\\Control\\Session Manager\\Memory Management]
"PagingFiles"=$(multisz 'C:\pagefile.sys 0 0')

[$P\\ControlSet001\\Services]

[$P\\ControlSet001\\Services\\atapi]
"Start"=dword:00000000

[$P\\ControlSet001\\Services\\LSI_SAS]
"Start"=dword:00000000

[$P\\ControlSet001\\Services\\stornvme]
"Start"=dword:00000003

[$P\\ControlSet001\\Services\\storahci]
"Start"=dword:00000000

[$P\\ControlSet001\\Services\\Dhcp]
"Start"=dword:$dhcp
EOF
    hivexregedit --merge --prefix "$S" "$T/SOFTWARE" "$T/software.reg"
    hivexregedit --merge --prefix "$P" "$T/SYSTEM" "$T/system.reg"
    # An independent reader agrees the hives hold what the .reg said.
    [ "$(hivexget "$T/SOFTWARE" 'Microsoft\Windows NT\CurrentVersion' CurrentBuildNumber)" = 17763 ] ||
        fail "hivexget: SOFTWARE not as built"
    [ "$(hivexget "$T/SYSTEM" 'ControlSet001\Services\Dhcp' Start)" = $((16#$dhcp)) ] ||
        fail "hivexget: SYSTEM not as built"
    # ntoskrnl.exe: MZ, e_lfanew = 0x80, "PE\0\0", Machine
    python3 - "$T/ntoskrnl.exe" "$v" <<'PY'
import struct, sys
b = bytearray(512)
b[0:2] = b"MZ"
struct.pack_into("<I", b, 0x3C, 0x80)
b[0x80:0x84] = b"PE\0\0"
struct.pack_into("<H", b, 0x84, 0x8664 if sys.argv[2] == "a" else 0x014C)
open(sys.argv[1], "wb").write(b)
PY
    truncate -s 20M "$T/ntfs.img"
    mkntfs -q -F -Q -L Windows "$T/ntfs.img" > /dev/null 2>&1
    mkdir -p "$T/m"
    ntfs-3g "$T/ntfs.img" "$T/m"
    MOUNTS+=("$T/m")
    mkdir -p "$T/m/Windows/System32/config"
    cp "$T/SOFTWARE" "$T/SYSTEM" "$T/m/Windows/System32/config/"
    cp "$T/ntoskrnl.exe" "$T/m/Windows/System32/"
    umount "$T/m"
    truncate -s 24M "$out"
    printf 'label: dos\nstart=2048, size=40960, type=7, bootable\n' | sfdisk -q "$out"
    dd if="$T/ntfs.img" of="$out" bs=512 seek=2048 conv=notrunc status=none
    rm -f "$T/ntfs.img"
}

check() {
    local got
    got=$(jq -r "$1" "$T/out.json")
    [ "$got" = "$2" ] || fail "$V: $1: got '$got', want '$2'"
}

V=a
build_guest "$T/win.raw" a
"$VDISK" inspect --json "$T/win.raw" > "$T/out.json" || fail "vdisk inspect failed"
O='.operating_systems[0]'
check '.operating_systems | length' 1
check "$O.type" windows
check "$O.distro" windows
check "$O.product" "Windows Server 2019 Datacenter"
check "$O.version" "10.0"
check "$O.major" 10
check "$O.arch" x86_64
check "$O.arch_from" /Windows/System32/ntoskrnl.exe
check "$O.root_dev" disk-p1
check "$O.root_fstype" ntfs
check "$O.windows.build" 17763
check "$O.windows.edition" ServerDatacenter
check "$O.windows.installation_type" Server
check "$O.windows.systemroot" 'C:\Windows'
check "$O.windows.language" de-DE
check "$O.windows.boot_start_drivers | join(\",\")" "atapi,storahci,LSI_SAS"
check "$O.windows.dhcp_enabled" true
check "$O.windows.pagefile" 'C:\pagefile.sys 0 0'
check '.filesystems[0].type + " " + .filesystems[0].label' "ntfs Windows"
check '.filesystems[0].free != null' true
"$VDISK" inspect "$T/win.raw" > "$T/out.txt"
grep -q "^OS 1: Windows Server 2019 Datacenter (windows 10.0, windows)$" "$T/out.txt" ||
    fail "text: $(cat "$T/out.txt")"

V=b
build_guest "$T/win2.raw" b
"$VDISK" inspect --json "$T/win2.raw" > "$T/out.json" || fail "vdisk inspect failed"
check "$O.arch" i386
check "$O.windows.language" en-US
check "$O.windows.dhcp_enabled" false
echo PASS
