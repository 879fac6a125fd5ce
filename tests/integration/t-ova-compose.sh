#!/usr/bin/env bash
# VMware's ova-compose (tests/oracles/open-vmdk) as the oracle for OVAs:
# 1. OVAs it makes the way VMware's appliances are made (vmdk-convert writes
#    the disks), in several configs - two disks on SCSI, NVMe and EFI, SATA
#    with a product section and properties, a POSIX tar - are listed by
#    `vdisk info` with the VM ova-compose wrote (CPUs, memory, disks), check
#    clean, and every disk reads bit-exact through the mount against the raw
#    input and against qemu-img's reading of the member VMDK.
# 2. `vdisk convert` of each to an OVA keeps all its disks and its whole
#    VirtualSystem (lxml compares it), and the OVF validates (DSP8023).
# 3. Our generated OVF for each virtual hardware version has the structure
#    of ova-compose's template for it; target=esxi-X.Y picks the hardware
#    version and manifest digest that host takes.
. "$VD_TEST_LIB"
. "$(dirname "$0")/ova_lib.sh"
need_fuse
ova_oracles
cd "$T"

# Raw inputs: data at the start, the middle and the last sector.
mkraw() { # NAME MiB
    truncate -s "$2M" "$1"
    head -c 700K /dev/urandom | dd of="$1" conv=notrunc status=none
    head -c 300K /dev/urandom | dd of="$1" bs=1K seek=$(($2 * 512)) conv=notrunc status=none
    printf 'last sector %s' "$1" | dd of="$1" bs=512 seek=$(($2 * 2048 - 1)) conv=notrunc status=none
}
mkraw a.raw 8
mkraw b.raw 5
mkraw c.raw 3

header() { # NAME TYPE FIRMWARE CPUS MEMORY
    cat <<YAML
system:
    name: $1
    type: $2
    os_vmw: debian11_64Guest
    firmware: $3
networks:
    vm_network:
        name: "VM Network"
        description: "The VM Network network"
hardware:
    cpus: $4
    memory: $5
YAML
}

header multi vmx-13 bios 2 2048 >multi.yaml
cat >>multi.yaml <<'YAML'
    scsi1:
        type: scsi_controller
        subtype: lsilogic
    disk1:
        type: hard_disk
        parent: scsi1
        raw_image: a.raw
    disk2:
        type: hard_disk
        parent: scsi1
        raw_image: b.raw
    eth1:
        type: ethernet
        subtype: E1000
        network: vm_network
YAML

header nvme vmx-17 efi 4 4096 >nvme.yaml
cat >>nvme.yaml <<'YAML'
    nvme1:
        type: nvme_controller
    disk1:
        type: hard_disk
        parent: nvme1
        raw_image: c.raw
    eth1:
        type: ethernet
        subtype: VmxNet3
        network: vm_network
    video1:
        type: video_card
    vmci1:
        type: vmci
YAML

header sata vmx-19 efi 1 1024 >sata.yaml
cat >>sata.yaml <<'YAML'
    sata1:
        type: sata_controller
    cdrom1:
        type: cd_drive
        parent: sata1
    disk1:
        type: hard_disk
        parent: sata1
        raw_image: b.raw
    disk2:
        type: hard_disk
        parent: sata1
        raw_image: c.raw
    usb1:
        type: usb3_controller
product:
    product: An Appliance
    vendor: A Company Inc.
    version: "2.1"
    properties:
        guestinfo.hostname:
            type: string
            value: appliance01
            user_configurable: true
        guestinfo.dns:
            type: string
            value: 192.0.2.53
annotation:
    text: made by ova-compose for t-ova-compose
YAML

declare -A DISKS=([multi]="a.raw b.raw" [nvme]="c.raw" [sata]="b.raw c.raw")
declare -A CPUS=([multi]=2 [nvme]=4 [sata]=1) MEM=([multi]=2048 [nvme]=4096 [sata]=1024)
for cfg in multi nvme sata; do
    compose "$T/$cfg.yaml" "$T/$cfg.ova"
    "$VDISK" info --json "$cfg.ova" >"$cfg.json" || fail "vdisk info $cfg.ova failed"
    read -r cpus mem nd < <("$PY" -c 'import json,sys; o=json.load(open(sys.argv[1]))["ovf"]
print(o["cpus"], o["memory_bytes"] >> 20, len(o["disks"]))' "$cfg.json")
    set -- ${DISKS[$cfg]}
    assert_eq "$cpus $mem $nd" "${CPUS[$cfg]} ${MEM[$cfg]} $#" "$cfg.ova: cpus, MiB, disks in vdisk info"
    out=$("$VDISK" check "$cfg.ova") || fail "vdisk check $cfg.ova: $out"

    vmount "$T/m-$cfg" "$cfg.ova"
    i=1
    for raw in "$@"; do
        view="$T/m-$cfg/$cfg/disk$i.raw"
        [ $# -eq 1 ] && view="$T/m-$cfg/$cfg/disk.raw"
        vmdk=$("$PY" "$OVFCMP" get "$T/m-$cfg/$cfg/$cfg.ovf" "(//ovf:References/ovf:File/@ovf:href)[$i]")
        member "$cfg.ova" "$vmdk" >member.vmdk
        assert_eq "$(sha "$view")" "$(sha "$raw")" "$cfg.ova disk $i through the mount vs its raw input"
        assert_eq "$(qemu_raw_sha member.vmdk vmdk)" "$(sha "$raw")" "qemu-img's read of $cfg.ova's $vmdk"
        i=$((i + 1))
    done
    vumount "$T/m-$cfg"

    # ova -> ova: every disk, the same VirtualSystem, a valid OVF.
    "$VDISK" convert -q "$cfg.ova" "re-$cfg.ova" || fail "vdisk convert $cfg.ova failed"
    member "$cfg.ova" "$cfg.ovf" >"$cfg.ovf"
    member "re-$cfg.ova" "re-$cfg.ovf" >"re-$cfg.ovf"
    "$PY" "$OVFCMP" vm "$cfg.ovf" "re-$cfg.ovf" >cmp.out || fail "re-$cfg.ova lost VM settings: $(cat cmp.out)"
    validate "re-$cfg.ovf"
    out=$("$VDISK" check "re-$cfg.ova") || fail "vdisk check re-$cfg.ova: $out"
    i=1
    for raw in "$@"; do
        d=()
        [ $# -gt 1 ] && d=(--disk "$i")
        h=$("$VDISK" hash -q "${d[@]}" "re-$cfg.ova" | cut -d' ' -f1)
        assert_eq "$h" "$(sha "$raw")" "re-$cfg.ova disk $i"
        i=$((i + 1))
    done
    echo "ok: $cfg.ova ($# disk(s)) read, re-exported with its VM"
done

# 3. Our OVF per hardware version against ova-compose's template for it.
for t in "$OVMDK"/templates/template-hw*.ovf; do
    hw=${t##*-hw}
    hw=${hw%.ovf}
    "$VDISK" convert -q -o "vm_hw_version=$hw,vm_firmware=bios,vm_nic=vmxnet3" c.raw "hw$hw.ova"
    member "hw$hw.ova" "hw$hw.ovf" >"hw$hw.ovf"
    validate "hw$hw.ovf"
    "$PY" "$OVFCMP" template "hw$hw.ovf" "$t" >cmp.out || fail "hw$hw.ovf vs $(basename "$t"): $(cat cmp.out)"
done
echo "ok: our OVF matches ova-compose's templates for $(ls "$OVMDK"/templates/template-hw*.ovf | wc -l) hardware versions"

# target=: hardware version and manifest digest per host.
for tv in esxi-5.5:vmx-10:SHA1 esxi-6.0:vmx-11:SHA1 esxi-6.5:vmx-13:SHA256 vmware-8.0u2:vmx-13:SHA256; do
    IFS=: read -r target vmx algo <<<"$tv"
    "$VDISK" convert -q -o "target=$target" c.raw "$target.ova"
    member "$target.ova" "$target.ovf" >"$target.ovf"
    validate "$target.ovf"
    assert_eq "$("$PY" "$OVFCMP" get "$target.ovf" '//vssd:VirtualSystemType')" "$vmx" "$target VirtualSystemType"
    n=$([ "$algo" = SHA1 ] && echo 40 || echo 64)
    mf=$(member "$target.ova" "$target.mf")
    grep -Eqx "$algo\\($target\\.ovf\\)= [0-9a-f]{$n}" <<<"$mf" || fail "$target manifest: $mf"
    grep -Eqx "$algo\\($target-disk1\\.vmdk\\)= [0-9a-f]{$n}" <<<"$mf" || fail "$target manifest: $mf"
    out=$("$VDISK" check "$target.ova") || fail "vdisk check $target.ova: $out"
done
"$VDISK" convert -q -o target=esxi-7.0,vm_hw_version=17,vm_disk_bus=nvme,vm_firmware=efi c.raw e7.ova
member e7.ova e7.ovf >e7.ovf
"$PY" "$OVFCMP" template e7.ovf "$OVMDK/templates/template-hw17.ovf" >cmp.out || fail "esxi-7.0 nvme: $(cat cmp.out)"
rc=0
out=$("$VDISK" convert -q -o target=esxi-6.7,vm_hw_version=17 c.raw x.ova 2>&1) || rc=$?
assert_eq "$rc" 1 "a hardware version above the target's ceiling is refused"
assert_eq "$out" "vdisk: ova: x.ova: vm_hw_version=17 is newer than target esxi-6.7 accepts (vmx-14 at most)" "ceiling message"
rc=0
out=$("$VDISK" convert -q -o target=esxi-6.7 sata.ova x.ova 2>&1) || rc=$?
assert_eq "$rc" 1 "a source VM above the target's ceiling is refused"
grep -qF "the VM needs virtual hardware vmx-19" <<<"$out" || fail "source ceiling message: $out"
for t in virtualbox dmtf; do
    "$VDISK" convert -q -o "target=$t" c.raw "$t.ova"
    member "$t.ova" "$t.ovf" >"$t.ovf"
    validate "$t.ovf"
    ! grep -q 'vmw:' "$t.ovf" || fail "target=$t wrote VMware extensions"
done
assert_eq "$("$PY" "$OVFCMP" get virtualbox.ovf '//vssd:VirtualSystemType')" virtualbox-2.2 "virtualbox type"
echo PASS
