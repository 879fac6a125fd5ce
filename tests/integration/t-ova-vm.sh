#!/usr/bin/env bash
# Issue 13 acceptance: an edited vendor OVA keeps its VM. The vendor OVA is
# made by VMware's ova-compose (4 CPUs, 8 GiB, EFI, vmxnet3, two disks, a
# product section), mounted with an overlay, both disks edited through the
# mount, then exported (a) through the mount's export/ with
# -o export_vm=vendor.ova and (b) by `vdisk convert --overlay`. Each OVA:
# - keeps every VirtualSystem setting (lxml compares the sections, every
#   VirtualHardwareSection Item and vmw:Config, with the vendor's);
# - holds both disks, whose bytes (by our reader and by qemu-img from the
#   member VMDK) are the edited views;
# - validates against DSP8023 and passes `vdisk check` (manifest digests).
. "$VD_TEST_LIB"
. "$(dirname "$0")/ova_lib.sh"
need_fuse
ova_oracles
cd "$T"

truncate -s 8M root.raw
truncate -s 6M data.raw
head -c 1M /dev/urandom | dd of=root.raw conv=notrunc status=none
head -c 200K /dev/urandom | dd of=data.raw bs=1K seek=2048 conv=notrunc status=none
cat >vendor.yaml <<'YAML'
system:
    name: vendor
    type: vmx-17
    os_vmw: debian11_64Guest
    firmware: efi
    secure_boot: false
networks:
    vm_network:
        name: "VM Network"
        description: "The VM Network network"
hardware:
    cpus: 4
    memory: 8192
    scsi1:
        type: scsi_controller
    sata1:
        type: sata_controller
    cdrom1:
        type: cd_drive
        parent: sata1
    rootdisk:
        type: hard_disk
        parent: scsi1
        raw_image: root.raw
    datadisk:
        type: hard_disk
        parent: scsi1
        raw_image: data.raw
    ethernet1:
        type: ethernet
        subtype: VmxNet3
        network: vm_network
    videocard1:
        type: video_card
product:
    product: Vendor Appliance
    vendor: Vendor Inc.
    version: "1.2"
    properties:
        guestinfo.hostname:
            type: string
            value: vendor01
            user_configurable: true
annotation:
    text: a vendor appliance
YAML
compose "$T/vendor.yaml" "$T/vendor.ova"
member vendor.ova vendor.ovf >vendor.ovf
get() { "$PY" "$OVFCMP" get "$@"; }
# The vendor VM is what the acceptance names (so the comparisons below mean it).
assert_eq "$(get vendor.ovf '//rasd:ResourceType[.="3"]/../rasd:VirtualQuantity')" 4 "vendor CPUs"
assert_eq "$(get vendor.ovf '//rasd:ResourceType[.="4"]/../rasd:VirtualQuantity')" 8192 "vendor MiB"
assert_eq "$(get vendor.ovf '//vmw:Config[@vmw:key="firmware"]/@vmw:value')" efi "vendor firmware"
assert_eq "$(get vendor.ovf '//rasd:ResourceType[.="10"]/../rasd:ResourceSubType')" VmxNet3 "vendor NIC"
[ "$(get vendor.ovf '//ovf:Disk/@ovf:diskId' | wc -l)" = 2 ] || fail "vendor.ova has not 2 disks"

# Mount with an overlay and export/, edit both disks.
mkdir out
vmount "$T/m" -o "overlay=$T/ov.bin,export=$T/out,export_vm=$T/vendor.ova" vendor.ova
printf 'EDITED ROOT DISK' | dd of="$T/m/vendor/disk1.raw" bs=1 seek=4096 conv=notrunc status=none
head -c 64K /dev/urandom | dd of="$T/m/vendor/disk2.raw" bs=64K seek=90 conv=notrunc status=none
printf 'last' | dd of="$T/m/vendor/disk2.raw" bs=1 seek=$((6 * 1048576 - 4)) conv=notrunc status=none
want1=$(sha "$T/m/vendor/disk1.raw")
want2=$(sha "$T/m/vendor/disk2.raw")
# Kept to say where an output differs (one CI run saw converted.ova's disk 1
# differ, unreproduced since: see same_disk).
cp "$T/m/vendor/disk1.raw" view1.raw
cp "$T/m/vendor/disk2.raw" view2.raw
[ "$want1" != "$(sha root.raw)" ] && [ "$want2" != "$(sha data.raw)" ] || fail "the edits did not show"
# (a) Through the mount: the VM's disks one after the other (each size is
# a multiple of 64 KiB here, so they simply follow each other).
cat "$T/m/vendor/disk1.raw" "$T/m/vendor/disk2.raw" >"$T/m/export/mounted.ova" ||
    fail "writing export/mounted.ova failed"
vumount "$T/m"
# (b) vdisk convert with the overlay's edits: all disks by default.
"$VDISK" convert -q --overlay "$T/ov.bin" vendor.ova converted.ova || fail "vdisk convert failed"

# same_disk N OVA WANT: our reading of disk N is the mount's; when not, say
# where the bytes differ and what qemu-img and a second reading of ours see.
same_disk() {
    local got again
    got=$("$VDISK" hash -q --disk "$1" "$2" | cut -d' ' -f1)
    [ "$got" = "$3" ] && return 0
    again=$("$VDISK" hash -q --disk "$1" "$2" | cut -d' ' -f1)
    qemu-img convert -f vmdk -O raw "d$1.vmdk" "q$1.raw"
    fail "$2 disk $1 (ours): got '$got' (again: '$again'), expected '$3'; qemu-img reads" \
        "$(sha "q$1.raw"); first differences from the mount's view: $(cmp -l "view$1.raw" "q$1.raw" | head -3 | tr '\n' ' ')"
}
for ova in out/mounted.ova converted.ova; do
    stem=$(basename "$ova" .ova)
    member "$ova" "$stem.ovf" >"$stem.ovf" || fail "$ova has no $stem.ovf: $(tar -tf "$ova" | tr '\n' ' ')"
    assert_eq "$(tar -tf "$ova" | tr '\n' ' ')" "$stem.ovf $stem.mf $stem-disk1.vmdk $stem-disk2.vmdk " "$ova members"
    "$PY" "$OVFCMP" vm vendor.ovf "$stem.ovf" >cmp.out || fail "$ova lost VM settings: $(cat cmp.out)"
    validate "$stem.ovf"
    out=$("$VDISK" check "$ova") || fail "vdisk check $ova: $out"
    member "$ova" "$stem-disk1.vmdk" >d1.vmdk
    member "$ova" "$stem-disk2.vmdk" >d2.vmdk
    same_disk 1 "$ova" "$want1"
    same_disk 2 "$ova" "$want2"
    assert_eq "$(qemu_raw_sha d1.vmdk vmdk)" "$want1" "$ova disk 1 (qemu-img)"
    assert_eq "$(qemu_raw_sha d2.vmdk vmdk)" "$want2" "$ova disk 2 (qemu-img)"
    # The sizes the OVF states are the members' and the disks'.
    assert_eq "$(get "$stem.ovf" '//ovf:File/@ovf:size' | tr '\n' ' ')" "$(stat -c %s d1.vmdk) $(stat -c %s d2.vmdk) " "$ova File sizes"
    assert_eq "$(get "$stem.ovf" '//ovf:Disk/@ovf:capacity' | tr '\n' ' ')" "8388608 6291456 " "$ova capacities"
    cat cmp.out
done
echo PASS
