# Helpers for the LVM tests (sourced after lib.sh). Test disks are built
# with lvm2's own tools: this kernel has no device-mapper targets, but
# `pvcreate --uuid U --restorefile META` and `vgcfgrestore -f META VG` on a
# loop device write the label and the metadata from a text file
# (../shared/NOTES.md, "LVM without device-mapper"). The LV's bytes are then
# written by the test itself at pe_start plus the extents.
export LVM_SUPPRESS_FD_WARNINGS=1
# Our own lvm.conf: no metadata backups or archives in the host's
# /etc/lvm for the test VGs.
mkdir -p "$T/lvmconf"
printf 'backup {\n backup = 0\n archive = 0\n}\n' > "$T/lvmconf/lvm.conf"
export LVM_SYSTEM_DIR=$T/lvmconf
LOOPS=()
lvm_cleanup() {
    local l
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    cleanup
}
trap lvm_cleanup EXIT

need_lvm() {
    need pvcreate vgcfgrestore lvs losetup python3 sfdisk
    [ "$(id -u)" -eq 0 ] || skip "loop devices need root"
    # Not `pvcreate --help | grep -q`: with pipefail, grep's early exit
    # (SIGPIPE to pvcreate) would turn into a skip now and then.
    local help
    help=$(pvcreate --help 2>&1 || true)
    [[ $help == *--restorefile* ]] || skip "pvcreate has no --restorefile"
}

# loop VAR FILE OFFSET SIZE: a loop device over a window of FILE, its
# name in VAR. Not `v=$(loop ...)`: in a command substitution the device
# would not reach LOOPS, and the cleanup would leave it attached.
loop() {
    local l
    l=$(losetup -f --show -o "$3" --sizelimit "$4" "$2") || fail "losetup $2"
    LOOPS+=("$l")
    printf -v "$1" %s "$l"
}

# part_off IMG N / part_size IMG N: bytes, from sfdisk (not from us)
part_off() { sfdisk -J "$1" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']['partitions'][$2-1]; print(p['start']*512)"; }
part_size() { sfdisk -J "$1" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']['partitions'][$2-1]; print(p['size']*512)"; }

# mkpv DEV UUID META: label + metadata area from the VG text META
mkpv() {
    pvcreate -q -ff -y --devices "$1" --uuid "$2" --restorefile "$3" "$1" >"$T/lvm.log" 2>&1 ||
        { cat "$T/lvm.log"; fail "pvcreate $1"; }
}
# restore VG META DEV...: write the VG metadata onto its PVs
restore() {
    local vg=$1 meta=$2 devs
    shift 2
    devs=$(IFS=,; echo "$*")
    vgcfgrestore -q --force -f "$meta" --devices "$devs" "$vg" >"$T/lvm.log" 2>&1 <<<y ||
        { cat "$T/lvm.log"; fail "vgcfgrestore $vg"; }
}
