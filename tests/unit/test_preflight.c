/*
 * `vdisk preflight` checks on hand-built facts and inspection results: each
 * check's finding, with its exact message, severity and AWS text. A clean
 * guest (Debian 11, kernel 5.10, ext4 root, BIOS GRUB, DHCP) has none.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "preflight/preflight_int.h"

static struct pf_table *table;

/* ---- a clean guest, rebuilt for each case ---- */

static struct pf_disk disks[24];
static struct pf_dev devs[8];
static struct pf_problem problems[4];
static struct pf_facts facts;
static struct vd_inspect_mount mounts[4];
static struct vd_inspect_kernel kernels[2];
static const char *drivers[] = {"nvme", "ena", "xen-blkfront"};
static struct vd_inspect_net nets[2];
static struct vd_inspect_os oss[2];
static struct vd_inspect_fs fss[3];
static struct vd_inspect ins;

static void clean(void)
{
    memset(disks, 0, sizeof(disks));
    memset(devs, 0, sizeof(devs));
    memset(problems, 0, sizeof(problems));
    disks[0] = (struct pf_disk){.view = "disk",
                                .file = "web.vmdk",
                                .format = "vmdk",
                                .subformat = "streamOptimized",
                                .size = 8ull << 30,
                                .scheme = "dos"};
    devs[0] = (struct pf_dev){.name = "disk", .disk = 1};
    devs[1] = (struct pf_dev){.name = "disk-p1", .disk = 1, .fstype = "ext4", .part_type = "0x83"};
    devs[2] = (struct pf_dev){.name = "disk-p2", .disk = 1, .fstype = "swap", .part_type = "0x82"};
    facts = (struct pf_facts){.container = "vmdk",
                              .disks = disks,
                              .ndisks = 1,
                              .devs = devs,
                              .ndevs = 3,
                              .problems = problems,
                              .checked = true,
                              .deep = true};
    mounts[0] = (struct vd_inspect_mount){.spec = "UUID=0b1c",
                                          .mountpoint = "/",
                                          .type = "ext4",
                                          .options = "errors=remount-ro",
                                          .dev = "disk-p1"};
    mounts[1] = (struct vd_inspect_mount){.spec = "UUID=77aa",
                                          .mountpoint = "none",
                                          .type = "swap",
                                          .options = "sw",
                                          .dev = "disk-p2"};
    mounts[2] = (struct vd_inspect_mount){
        .spec = "proc", .mountpoint = "/proc", .type = "proc", .options = "defaults", .dev = NULL};
    kernels[0] = (struct vd_inspect_kernel){.version = "5.10.0-26-amd64",
                                            .path = "/boot/vmlinuz-5.10.0-26-amd64",
                                            .initrd = "/boot/initrd.img-5.10.0-26-amd64",
                                            .nmodules = 3000,
                                            .initramfs_drivers = drivers,
                                            .ninitramfs_drivers = 3,
                                            .initramfs_read = true};
    nets[0] = (struct vd_inspect_net){.file = "/etc/network/interfaces",
                                      .stack = "ifupdown",
                                      .iface = "eth0",
                                      .mac = "",
                                      .dhcp = true};
    oss[0] = (struct vd_inspect_os){.type = "linux",
                                    .distro = "debian",
                                    .product = "Debian GNU/Linux 11 (bullseye)",
                                    .version = "11",
                                    .major = 11,
                                    .arch = "x86_64",
                                    .arch_from = "/bin/sh",
                                    .hostname = "web",
                                    .root_dev = "disk-p1",
                                    .root_fstype = "ext4",
                                    .mounts = mounts,
                                    .nmounts = 3,
                                    .fstab_read = true,
                                    .kernels = kernels,
                                    .nkernels = 1,
                                    .default_kernel = "5.10.0-26-amd64",
                                    .bootloader = "grub2",
                                    .bootloader_cfg = "/boot/grub/grub.cfg",
                                    .nets = nets,
                                    .nnets = 1,
                                    .dhcp_client = true,
                                    .dhcp_client_name = "dhclient",
                                    .boot_mode = VD_BOOT_BIOS,
                                    .esp_dev = "",
                                    .bootloader_disk = "disk",
                                    .free_bytes = 1ull << 30};
    fss[0] = (struct vd_inspect_fs){
        .dev = "disk-p1", .type = "ext4", .uuid = "0b1c", .size = 7ull << 30, .free = 1ull << 30};
    fss[1] = (struct vd_inspect_fs){.dev = "disk-p2",
                                    .type = "swap",
                                    .uuid = "77aa",
                                    .size = 1ull << 30,
                                    .free = VD_INSPECT_UNKNOWN};
    ins = (struct vd_inspect){.fss = fss, .nfss = 2, .oss = oss, .noss = 1};
}

static const char *route;
static bool no_ins; /* the guest could not be inspected */
static struct vd_preflight *run(void)
{
    struct vd_preflight *p = NULL;
    struct vd_error err = {0};
    int r = pf_run(&facts, no_ins ? NULL : &ins, table, route, &p, &err);
    CHECK(r == 0, "pf_run: %d %s", r, err.msg);
    return p;
}

static void dump(const struct vd_preflight *p)
{
    for (size_t i = 0; p && i < p->n; i++)
        fprintf(stderr, "  [%s] %s: %s | aws=%s | fix=%s\n",
                vd_pf_severity_name(p->findings[i].severity), p->findings[i].check,
                p->findings[i].message, p->findings[i].aws_text, p->findings[i].fix);
}

/* Exactly one finding of check id, with this severity, message and AWS text;
 * no finding of another check at risk or worse. */
static void expect_at(int line, const char *id, enum vd_pf_severity sev, const char *aws,
                      const char *msg)
{
    struct vd_preflight *p = run();
    if (!p)
        return;
    size_t hits = 0;
    int bad = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct vd_pf_finding *x = &p->findings[i];
        if (strcmp(x->check, id)) {
            if (x->severity != VD_PF_NOTE)
                bad++;
            continue;
        }
        hits++;
        if (x->severity != sev || strcmp(x->message, msg) || strcmp(x->aws_text, aws))
            bad++;
    }
    if (hits != 1 || bad) {
        fprintf(stderr, "FAIL line %d: want one %s [%s] %s | aws=%s; got:\n", line, id,
                vd_pf_severity_name(sev), msg, aws);
        dump(p);
        failures++;
    }
    vd_preflight_free(p);
}
#define expect(...) expect_at(__LINE__, __VA_ARGS__)

/* No finding at all. */
static void expect_none(int line)
{
    struct vd_preflight *p = run();
    if (p && p->n) {
        fprintf(stderr, "FAIL line %d: want no finding; got:\n", line);
        dump(p);
        failures++;
    }
    vd_preflight_free(p);
}

static void test_clean(void)
{
    clean();
    struct vd_preflight *p = run();
    CHECK(p && p->n == 0 && vd_preflight_status(p) == VD_PF_READY, "clean guest has findings");
    if (p && p->n)
        dump(p);
    bool have_kernel = false;
    for (size_t i = 0; p && i < p->npassed; i++)
        have_kernel |= !strcmp(p->passed[i], "kernel-supported");
    CHECK(have_kernel, "kernel-supported not listed as passed");
    char *json = NULL;
    struct vd_error err = {0};
    CHECK(p && vd_preflight_json(p, &json, &err) == 0 && strstr(json, "\"status\": \"ready\""),
          "json: %s", json ? json : err.msg);
    free(json);
    vd_preflight_free(p);
}

/* ---- container ---- */

static void test_container(void)
{
    clean();
    problems[0] = (struct pf_problem){
        .file = "disk",
        .corrupt = true,
        .text = "vhd: web.vhd: footer copy at offset 0 differs from the footer at end of file"};
    facts.nproblems = 1;
    expect("vhd-footers", VD_PF_FAIL, "ClientError: Footers not identical",
           "disk: vhd: web.vhd: footer copy at offset 0 differs from the footer at end of file");

    clean();
    problems[0] = (struct pf_problem){
        .file = "disk",
        .corrupt = true,
        .deep = true,
        .text = "vmdk: web.vmdk: grain 7 at offset 4096: inflates to 512 bytes, grain is 65536"};
    facts.nproblems = 1;
    expect("vmdk-grains", VD_PF_FAIL, "ClientError: Uncompressed data has invalid length",
           "disk: vmdk: web.vmdk: grain 7 at offset 4096: inflates to 512 bytes, grain is 65536");
    /* a guest too corrupt to inspect: the container's finding still comes */
    no_ins = true;
    expect("vmdk-grains", VD_PF_FAIL, "ClientError: Uncompressed data has invalid length",
           "disk: vmdk: web.vmdk: grain 7 at offset 4096: inflates to 512 bytes, grain is 65536");
    no_ins = false;

    clean();
    problems[0] =
        (struct pf_problem){.file = "disk",
                            .corrupt = true,
                            .text = "vmdk: web.vmdk: grain table 3 overlaps the grain directory"};
    facts.nproblems = 1;
    expect("container-integrity", VD_PF_FAIL, "",
           "disk: vmdk: web.vmdk: grain table 3 overlaps the grain directory");

    /* not --deep: the grains are not read, and the user is told so */
    clean();
    facts.deep = false;
    facts.deep_skip = 123456;
    expect("vmdk-grains", VD_PF_NOTE, "",
           "compressed grains not decompressed: that reads the whole image (123456 bytes); run "
           "with --deep to check that each inflates to its length");
    facts.checked = false;
    facts.check_skip = 123456;
    expect("container-integrity", VD_PF_NOTE, "",
           "structural check not run: for a stream-optimized VMDK or an OVA it reads the whole "
           "image (123456 bytes: every grain marker, the manifest's digests); run with --deep");

    clean();
    disks[0].subformat = "monolithicSparse";
    expect("vmdk-stream-optimized", VD_PF_RISK, "",
           "disk: web.vmdk: VMDK subformat monolithicSparse: AWS lists stream-optimized VMDK as "
           "the VMDK it imports");

    clean();
    disks[0].format = "vhd";
    disks[0].file = "child.vhd";
    disks[0].subformat = "differencing";
    disks[0].has_backing = true;
    expect("container-format", VD_PF_FAIL, "ClientError: Footers not identical",
           "disk: child.vhd: a vhd image with a parent: AWS imports self-contained images only, "
           "not differencing or snapshot disks");

    clean();
    disks[0].size = 16ull << 40;
    expect("disk-size", VD_PF_FAIL, "",
           "disk: web.vmdk: virtual size 17592186044416 bytes (16.00 TiB): AWS imports disks of "
           "less than 16 TiB");
    clean();
    disks[0].size = (8ull << 40) + 512;
    expect("disk-size", VD_PF_NOTE, "",
           "disk: web.vmdk: virtual size 8796093022720 bytes (8.00 TiB): above 8 TiB AWS needs a "
           "manifest file");

    clean();
    for (int i = 1; i < 22; i++)
        disks[i] = (struct pf_disk){.view = "diskN",
                                    .file = "data.vmdk",
                                    .format = "vmdk",
                                    .subformat = "streamOptimized",
                                    .size = 1 << 30};
    facts.ndisks = 22;
    expect("volume-count", VD_PF_FAIL, "",
           "the sources hold 22 disks: an import task fails for VMs with more than 21 volumes");
    route = "import-snapshot"; /* one disk a task: no limit */
    expect_none(__LINE__);
    route = NULL;
}

/* ---- the guest ---- */

static void test_os(void)
{
    clean();
    ins.noss = 0;
    expect("os-count", VD_PF_FAIL, "",
           "no operating system found on the disks (no root file system with /etc/os-release or "
           "Windows/System32/config/SOFTWARE)");

    clean();
    oss[1] = oss[0];
    oss[1].root_dev = "disk-p3";
    oss[1].version = "11";
    ins.noss = 2;
    expect("os-count", VD_PF_FAIL,
           "ClientError: Unsupported configuration - Multiple directories found",
           "2 operating systems found (debian 11 on disk-p1, debian 11 on disk-p3): AWS imports "
           "VMs with one, not dual-boot or several /etc");

    clean();
    oss[0].arch = "i386";
    expect("arch-64bit", VD_PF_FAIL, "",
           "disk-p1: /bin/sh: machine i386: AWS imports 64-bit (x86_64) Linux only");

    clean();
    oss[0].distro = "arch";
    oss[0].product = "Arch Linux";
    expect("os-supported", VD_PF_FAIL, "",
           "disk-p1: /etc/os-release: ID=arch (Arch Linux) is not a distribution AWS VM Import "
           "supports");

    clean();
    oss[0].version = "9";
    expect("os-supported", VD_PF_FAIL, "",
           "disk-p1: /etc/os-release: Debian 9 is not in AWS's table (Debian: 6.0.0-6.0.8, "
           "7.0.0-7.8.0, 10, 11, 12.2-12.4)");
    route = "import-snapshot"; /* no OS check there: a note */
    expect("os-supported", VD_PF_NOTE, "",
           "disk-p1: /etc/os-release: Debian 9 is not in AWS's table (Debian: 6.0.0-6.0.8, "
           "7.0.0-7.8.0, 10, 11, 12.2-12.4)");
    route = NULL;

    /* Debian 12's os-release says "12": within 12.2-12.4 */
    clean();
    oss[0].version = "12";
    kernels[0].version = "6.1.0-13-amd64";
    oss[0].default_kernel = "6.1.0-13-amd64";
    expect_none(__LINE__);

    clean();
    kernels[1] = kernels[0];
    kernels[1].version = "6.1.0-13-amd64";
    kernels[1].path = "/boot/vmlinuz-6.1.0-13-amd64";
    oss[0].nkernels = 2;
    oss[0].default_kernel = "6.1.0-13-amd64";
    expect("kernel-supported", VD_PF_FAIL, "ClientError: Unsupported kernel version",
           "disk-p1: /boot/vmlinuz-6.1.0-13-amd64: kernel 6.1.0-13-amd64 (the default boot "
           "entry) is not one AWS lists for Debian 11 (5.10.0)");

    clean();
    oss[0].nkernels = 0;
    expect("kernel-supported", VD_PF_FAIL, "ClientError: Unable to determine kernel version",
           "disk-p1: no kernel found (/boot/vmlinuz-*)");

    clean();
    oss[0].root_fstype = "f2fs";
    expect("root-fs", VD_PF_FAIL, "",
           "disk-p1: root file system is f2fs: AWS imports Linux root file systems on ext2, "
           "ext3, ext4, btrfs, jfs, xfs");
    clean();
    oss[0].root_fstype = "btrfs";
    mounts[0].options = "subvol=@,compress=zstd";
    expect("root-fs", VD_PF_FAIL, "",
           "disk-p1: root is a btrfs subvolume (/etc/fstab options subvol=@,compress=zstd): AWS "
           "does not support Btrfs subvolumes");
    clean();
    oss[0].root_fstype = "btrfs";
    expect("root-fs", VD_PF_RISK, "",
           "disk-p1: root file system is btrfs, which is not read here: AWS does not support "
           "Btrfs subvolumes, and none can be ruled out");

    clean();
    devs[3] = (struct pf_dev){.name = "disk-p3", .disk = 1, .fstype = "crypto_LUKS"};
    facts.ndevs = 4;
    expect("encrypted-volume", VD_PF_FAIL, "",
           "disk-p3: crypto_LUKS (an encrypted volume): AWS does not import VMs with encrypted "
           "volumes");
}

static void test_boot(void)
{
    clean();
    disks[0].scheme = "gpt";
    devs[3] = (struct pf_dev){.name = "disk-p3",
                              .disk = 1,
                              .fstype = "vfat",
                              .part_type = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"};
    facts.ndevs = 4;
    oss[0].boot_mode = VD_BOOT_UEFI;
    oss[0].esp_dev = "disk-p3";
    expect("uefi-fallback", VD_PF_FAIL, "",
           "disk-p1: the guest boots with UEFI but disk-p3 holds no EFI/BOOT/BOOTX64.EFI: AWS "
           "needs that fallback loader on the EFI System Partition");
    oss[0].uefi_fallback = true;
    expect("boot-mode", VD_PF_NOTE, "", "disk-p1: the guest boots with UEFI only (disk-p3)");
    /* inspection saw no boot code, but there is an ESP without the loader */
    oss[0].uefi_fallback = false;
    oss[0].boot_mode = VD_BOOT_UNKNOWN;
    oss[0].esp_dev = "";
    expect("uefi-fallback", VD_PF_FAIL, "",
           "disk-p1: the guest boots with UEFI but its EFI System Partition holds no "
           "EFI/BOOT/BOOTX64.EFI: AWS needs that fallback loader on the EFI System Partition");

    clean();
    oss[0].boot_mode = VD_BOOT_UNKNOWN;
    expect("boot-mode", VD_PF_RISK, "Client.Unsupported: No bootable partition found.",
           "disk-p1: no boot loader found: no BIOS boot code on the disks and no EFI System "
           "Partition");

    clean();
    oss[0].bootloader = "";
    expect("bootloader", VD_PF_RISK, "",
           "disk-p1: no GRUB configuration found (/boot/grub/grub.cfg, /boot/grub2/grub.cfg, "
           "/boot/grub/menu.lst): AWS needs GRUB or GRUB 2 as the boot loader");

    clean();
    disks[1] = disks[0];
    disks[0].view = "disk1";
    disks[1].view = "disk2";
    facts.ndisks = 2;
    devs[1].name = "disk1-p1";
    devs[3] = (struct pf_dev){.name = "disk2-p1", .disk = 2, .fstype = "ext4"};
    facts.ndevs = 4;
    oss[0].root_dev = "disk2-p1";
    oss[0].bootloader_disk = "disk1";
    mounts[0].dev = "disk2-p1";
    fss[0].dev = "disk2-p1";
    expect("root-on-boot-disk", VD_PF_RISK, "",
           "disk2-p1: the root file system lies on disk 2, the boot code on disk 1: AWS says the "
           "VM may fail to boot unless both are on the same disk");
}

static void test_fstab(void)
{
    clean();
    oss[0].fstab_read = false;
    expect("fstab", VD_PF_FAIL, "ClientError: Invalid configuration - Could not read fstab",
           "disk-p1: /etc/fstab is missing or unreadable");

    clean();
    mounts[1].spec = "/dev/sda2";
    expect("fstab-device-names", VD_PF_RISK, "",
           "disk-p1: /etc/fstab: /dev/sda2 on none names a disk by its device name, here disk-p2: "
           "on EC2 the disks are /dev/nvme* or /dev/xvd*");

    clean();
    mounts[3] = (struct vd_inspect_mount){.spec = "LABEL=data",
                                          .mountpoint = "/srv",
                                          .type = "xfs",
                                          .options = "defaults",
                                          .dev = NULL};
    oss[0].nmounts = 4;
    expect("fstab-resolve", VD_PF_RISK, "",
           "disk-p1: /etc/fstab: LABEL=data on /srv matches no device on the disks");
    mounts[3] = (struct vd_inspect_mount){.spec = "nas:/export",
                                          .mountpoint = "/mnt",
                                          .type = "nfs",
                                          .options = "defaults",
                                          .dev = NULL};
    expect("fstab-nonstandard", VD_PF_NOTE, "",
           "disk-p1: /etc/fstab: nas:/export on /mnt (nfs): AWS disables entries of network and "
           "host-shared file systems");
}

static void test_lvm(void)
{
    clean();
    devs[3] = (struct pf_dev){.name = "lvm-vg0-data",
                              .disk = 1,
                              .lv = true,
                              .vg = "vg0",
                              .lv_name = "data",
                              .segtype = "linear",
                              .unsupported = "PV pv1 (uuid Xk2p) is missing"};
    facts.ndevs = 4;
    expect("lvm", VD_PF_FAIL,
           "ClientError: Unsupported configuration - Logical volume group activation failed",
           "lvm-vg0-data: volume group vg0 cannot be activated: PV pv1 (uuid Xk2p) is missing");

    clean();
    devs[3] = (struct pf_dev){.name = "lvm-vg0-pool",
                              .disk = 1,
                              .lv = true,
                              .vg = "vg0",
                              .lv_name = "pool",
                              .segtype = "thin",
                              .unsupported = "thin volumes are not supported"};
    facts.ndevs = 4;
    mounts[3] = (struct vd_inspect_mount){.spec = "/dev/vg0/pool",
                                          .mountpoint = "/srv",
                                          .type = "ext4",
                                          .options = "defaults",
                                          .dev = "lvm-vg0-pool"};
    oss[0].nmounts = 4;
    expect("lvm", VD_PF_RISK, "",
           "lvm-vg0-pool: logical volume (segment type thin) holds /srv, and is not read here: "
           "thin volumes are not supported");
    oss[0].nmounts = 3; /* not used by the guest: nothing to say */
    expect_none(__LINE__);
}

static void test_network(void)
{
    clean();
    oss[0].dhcp_client = false;
    expect("dhcp-client", VD_PF_RISK, "",
           "disk-p1: no DHCP client found: AWS needs a functional DHCP client service");

    clean();
    nets[0].dhcp = false;
    nets[0].static_addr = true;
    expect("network-static", VD_PF_RISK, "",
           "disk-p1: /etc/network/interfaces (ifupdown): static address on eth0: the instance "
           "gets one interface, addressed by DHCP");

    clean();
    nets[0] = (struct vd_inspect_net){.file = "/etc/netplan/50-cloud-init.yaml",
                                      .stack = "netplan",
                                      .iface = "",
                                      .mac = "00:50:56:aa:bb:cc",
                                      .dhcp = true};
    expect("network-bound", VD_PF_RISK, "",
           "disk-p1: /etc/netplan/50-cloud-init.yaml (netplan): bound to 00:50:56:aa:bb:cc: the "
           "EC2 interface has another MAC address");

    clean();
    nets[0].iface = "ens192";
    expect("network-bound", VD_PF_NOTE, "",
           "disk-p1: /etc/network/interfaces (ifupdown): configures ens192 only: on EC2 the "
           "interface is ens5 (Nitro) or eth0 (Xen)");
}

static void test_free_and_initramfs(void)
{
    clean();
    oss[0].free_bytes = 100ull << 20;
    expect("free-space", VD_PF_RISK, "",
           "disk-p1: the root file system has 100 MiB free: AWS asks for 250 MiB for its "
           "drivers");
    /* not in the OS result: the root file system's counters */
    oss[0].free_bytes = VD_INSPECT_UNKNOWN;
    fss[0].free = 10ull << 20;
    expect("free-space", VD_PF_RISK, "",
           "disk-p1: the root file system has 10 MiB free: AWS asks for 250 MiB for its "
           "drivers");

    clean();
    route = "import-snapshot";
    kernels[0].ninitramfs_drivers = 1; /* nvme only */
    expect("initramfs-drivers", VD_PF_RISK, "",
           "disk-p1: /boot/initrd.img-5.10.0-26-amd64: the initramfs of kernel 5.10.0-26-amd64 "
           "has no ena driver: on Nitro instances the network interface is ENA and would stay "
           "down");
    kernels[0].initramfs_read = false;
    kernels[0].initramfs_why = "zstd: corrupt frame";
    expect("initramfs-drivers", VD_PF_RISK, "",
           "disk-p1: /boot/initrd.img-5.10.0-26-amd64: initramfs of kernel 5.10.0-26-amd64 not "
           "read (zstd: corrupt frame): cannot tell whether it holds nvme and ena, which Nitro "
           "instances need");
    route = NULL; /* ImportImage installs drivers itself */
    expect_none(__LINE__);
}

static void windows(void)
{
    clean();
    devs[1].fstype = "ntfs";
    devs[1].part_type = "0x07";
    oss[0] = (struct vd_inspect_os){.type = "windows",
                                    .distro = "windows",
                                    .product = "Windows Server 2019 Datacenter",
                                    .version = "10.0",
                                    .major = 10,
                                    .arch = "x86_64",
                                    .arch_from = "/Windows/System32/ntoskrnl.exe",
                                    .root_dev = "disk-p1",
                                    .root_fstype = "ntfs",
                                    .boot_mode = VD_BOOT_BIOS,
                                    .bootloader_disk = "disk",
                                    .win_build = "17763",
                                    .win_edition = "ServerDatacenter",
                                    .win_install = "Server",
                                    .win_language = "en-US",
                                    .win_systemroot = "C:\\Windows",
                                    .win_dhcp_enabled = true,
                                    .free_bytes = 20ull << 30};
}

static void test_windows(void)
{
    windows();
    expect_none(__LINE__);

    windows();
    oss[0].product = "Windows Server 2000";
    expect("os-supported", VD_PF_FAIL, "",
           "disk-p1: SOFTWARE hive: ProductName \"Windows Server 2000\" is not a Windows version "
           "AWS VM Import supports");

    windows();
    oss[0].win_install = "Nano Server";
    expect("windows-nano", VD_PF_FAIL, "",
           "disk-p1: SOFTWARE hive: InstallationType \"Nano Server\": AWS does not import Nano "
           "Server installations");

    windows();
    oss[0].product = "Windows 10 Pro";
    oss[0].win_install = "Client";
    oss[0].win_language = "de-DE";
    expect("windows-language", VD_PF_FAIL, "",
           "disk-p1: system language de-DE: AWS needs US English (en-US) for Windows client "
           "editions");

    windows();
    oss[0].free_bytes = 5ull << 30;
    expect("free-space", VD_PF_RISK, "",
           "disk-p1: the root file system has 5120 MiB free: AWS asks for 6144 MiB for its "
           "drivers and a fixed-size pagefile");

    windows();
    oss[0].win_dhcp_enabled = false;
    expect("dhcp-client", VD_PF_RISK, "",
           "disk-p1: SYSTEM hive: the Dhcp service is disabled: AWS needs a functional DHCP "
           "client service");
}

/* ---- the table ---- */

static void test_table(void)
{
    CHECK(pf_version_cmp("12", "12.2") == 0, "12 vs 12.2");
    CHECK(pf_version_cmp("8.3", "8.2") > 0, "8.3 vs 8.2");
    CHECK(pf_version_cmp("7.10", "7.9") > 0, "7.10 vs 7.9");
    CHECK(pf_version_cmp("6.0.8", "6.0.10") < 0, "6.0.8 vs 6.0.10");
    CHECK(pf_kernel_match("5.10.0-26-amd64", "5.10"), "5.10");
    CHECK(!pf_kernel_match("3.20.1", "3.2"), "3.2 must not match 3.20");
    CHECK(pf_kernel_match("2.6.32-400.el5uek", "~el5uek"), "~el5uek");

    struct pf_table *t = NULL;
    struct vd_error err = {0};
    const char *bad = "limit disk-max-bytes 10\nlimit max-volumes 2\nlinux debian 11 10 5.10 Deb\n";
    CHECK(pf_table_parse(bad, strlen(bad), "t.txt", &t, &err) == -EINVAL, "min > max");
    CHECK_MSG(err, "preflight: t.txt: line 3: VERSION-MIN is above VERSION-MAX");
    vd_err_clear(&err);
    bad = "limit disk-max-bytes 10\nlimit max-volume 2\n";
    CHECK(pf_table_parse(bad, strlen(bad), "t.txt", &t, &err) == -EINVAL, "unknown limit");
    CHECK_MSG(err, "preflight: t.txt: line 2: unknown limit");
    vd_err_clear(&err);
    bad = "limit disk-max-bytes 10\n";
    CHECK(pf_table_parse(bad, strlen(bad), "t.txt", &t, &err) == -EINVAL, "incomplete");
    CHECK_MSG(err, "preflight: t.txt: table lacks a rule (limit disk-max-bytes, limit "
                   "max-volumes, a linux row and an fs linux row are needed)");
    CHECK(table->source && strstr(table->source, "prerequisites.html"), "source: %s",
          table->source);
}

/* Azure (pf_run_azure): one disk, the footer facts as collect.c reads them. */
static int azure_count(const struct pf_disk *d, const char *id, const char *msg_part,
                       const char *az_part)
{
    struct pf_facts f = {
        .container = d->format, .disks = (struct pf_disk *)d, .ndisks = 1, .checked = true};
    struct vd_preflight *p = NULL;
    struct vd_error err = {0};
    int hits = 0;
    CHECK(pf_run_azure(&f, &p, &err) == 0, "pf_run_azure: %s", err.msg);
    for (size_t i = 0; p && i < p->n; i++)
        if (!strcmp(p->findings[i].check, id) && p->findings[i].severity == VD_PF_FAIL &&
            strstr(p->findings[i].message, msg_part) && strstr(p->findings[i].aws_text, az_part))
            hits++;
    if (p && !id[0])
        hits = (int)p->n;
    CHECK(!p || !strcmp(p->target, "azure"), "target");
    vd_preflight_free(p);
    return hits;
}

static void test_azure(void)
{
    const uint64_t mib = 1ull << 20;
    struct pf_disk good = {.view = "disk",
                           .file = "a.vhd",
                           .format = "vhd",
                           .subformat = "fixed",
                           .size = 64 * mib,
                           .file_size = 64 * mib + 512,
                           .footer_cookie = true,
                           .footer_type = 2,
                           .footer_size = 64 * mib};
    CHECK(azure_count(&good, "", "", "") == 0, "a fixed VHD of 64 MiB passes");
    struct pf_disk d = good;
    d.size = d.footer_size = 64 * mib + 512;
    d.file_size = d.size + 512;
    CHECK(azure_count(&d, "azure-size-mib",
                      "disk: a.vhd: virtual size 67109376 bytes is not a whole MiB (512 bytes "
                      "past 64 MiB)",
                      "unsupported virtual size of 67109376 bytes. The size must be a whole "
                      "number (in MBs).") == 1,
          "size not a whole MiB");
    d = good;
    d.subformat = "dynamic";
    CHECK(azure_count(&d, "azure-fixed", "a dynamic VHD", "only fixed VHD") == 1, "dynamic");
    d = good;
    d.format = "vhdx";
    CHECK(azure_count(&d, "azure-format", "format vhdx", "VHDX format isn't supported") == 1,
          "vhdx");
    d = good;
    d.file_size = 65 * mib + 4096 + 512;
    CHECK(azure_count(&d, "azure-upload-size", "the file is 68162048 bytes",
                      "(68161536 in this case) must be a multiple of MiB.") == 1,
          "length and footer disagree");
    d = good;
    d.footer_cookie = false;
    CHECK(azure_count(&d, "azure-footer", "no 'conectix'", "cookie value 'conectix'") == 1,
          "no footer at the end");
    d = good;
    d.size = d.footer_size = 10 * mib;
    d.file_size = d.size + 512;
    CHECK(azure_count(&d, "azure-disk-size", "20 MiB to 32 TiB", "20972032") == 1, "too small");
    d.size = d.footer_size = (32ull << 40) + mib;
    d.file_size = d.size + 512;
    CHECK(azure_count(&d, "azure-disk-size", "20 MiB to 32 TiB", "35183298347520") == 1,
          "too large");
}

int main(void)
{
    char path[4096];
    const char *d = getenv("VD_TEST_DATA");
    snprintf(path, sizeof(path), "%s/../../data/aws-vmimport.txt", d ? d : "tests/data");
    struct vd_error err = {0};
    if (pf_table_load(path, &table, &err) < 0) {
        fprintf(stderr, "FAIL: %s\n", err.msg);
        return 1;
    }
    test_clean();
    test_container();
    test_os();
    test_boot();
    test_fstab();
    test_lvm();
    test_network();
    test_free_and_initramfs();
    test_windows();
    test_table();
    test_azure();
    pf_table_free(table);
    return failures != 0;
}
