/* Unit tests of the `vdisk inspect` parsers (src/inspect/inspect_int.h). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "inspect/inspect_int.h"

#define S(x) x, strlen(x)

static void test_os_release(void)
{
    struct vd_ins_release r;
    CHECK(vd_ins_os_release(S("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian "
                              "GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"),
                            &r),
          "debian");
    CHECK(!strcmp(r.id, "debian") && !strcmp(r.version, "12") &&
              !strcmp(r.product, "Debian GNU/Linux 12 (bookworm)"),
          "debian: %s %s %s", r.id, r.version, r.product);
    CHECK(vd_ins_os_release(S("NAME='Red Hat'\r\nVERSION_ID=9.3 # c\r\nID=\"rhel\"\r\n"), &r),
          "rhel");
    CHECK(!strcmp(r.id, "rhel") && !strcmp(r.version, "9.3") && !strcmp(r.product, "Red Hat"),
          "rhel: %s|%s|%s", r.id, r.version, r.product);
    /* the keys must be whole: VERSION_CODENAME is not VERSION */
    CHECK(vd_ins_os_release(S("NAME=Foo Linux\nVERSION_CODENAME=x\n"), &r), "name only");
    CHECK(!strcmp(r.id, "foo") && !strcmp(r.product, "Foo"), "name only: %s|%s", r.id, r.product);
    CHECK(!vd_ins_os_release(S("# nothing\n"), &r), "empty");
    unsigned a, b;
    vd_ins_version_numbers("9.3", &a, &b);
    CHECK(a == 9 && b == 3, "9.3 -> %u.%u", a, b);
    vd_ins_version_numbers("bookworm/sid", &a, &b);
    CHECK(a == 0 && b == 0, "sid");
}

static void test_release_files(void)
{
    struct vd_ins_release r;
    CHECK(vd_ins_release_file("redhat-release", S("CentOS Linux release 7.9.2009 (Core)\n"), &r),
          "centos");
    CHECK(!strcmp(r.id, "centos") && !strcmp(r.version, "7.9.2009"), "centos: %s %s", r.id,
          r.version);
    CHECK(vd_ins_release_file("redhat-release",
                              S("Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"), &r),
          "rhel6");
    CHECK(!strcmp(r.id, "rhel") && !strcmp(r.version, "6.10"), "rhel6: %s %s", r.id, r.version);
    CHECK(vd_ins_release_file("debian_version", S("10.13\n"), &r), "debian_version");
    CHECK(!strcmp(r.id, "debian") && !strcmp(r.version, "10.13"), "debian: %s", r.version);
    CHECK(vd_ins_release_file("SuSE-release",
                              S("SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\n"
                                "PATCHLEVEL = 4\n"),
                              &r),
          "sles");
    CHECK(!strcmp(r.id, "sles") && !strcmp(r.version, "11.4"), "sles: %s %s", r.id, r.version);
    CHECK(vd_ins_release_file("lsb-release",
                              S("DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\n"
                                "DISTRIB_DESCRIPTION=\"Ubuntu 14.04.6 LTS\"\n"),
                              &r),
          "lsb");
    CHECK(!strcmp(r.id, "ubuntu") && !strcmp(r.version, "14.04"), "lsb: %s %s", r.id, r.version);
}

static const char debian_grub[] =
    "### BEGIN /etc/grub.d/00_header ###\n"
    "if [ -s $prefix/grubenv ]; then\n  load_env\nfi\n"
    "if [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\n   set next_entry=\n"
    "   save_env next_entry\n   set boot_once=true\nelse\n   set default=\"${saved_entry}\"\nfi\n"
    "function load_video {\n  if [ x$feature_all_video_module = xy ]; then\n"
    "    insmod all_video\n  fi\n}\n"
    "menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option "
    "'gnulinux-simple-1111' {\n"
    "\tload_video\n\tlinux\t/boot/vmlinuz-6.1.0-20-amd64 root=UUID=1111 ro quiet\n"
    "\tinitrd\t/boot/initrd.img-6.1.0-20-amd64\n}\n"
    "submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option "
    "'gnulinux-advanced-1111' {\n"
    "\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-20-amd64' --class debian "
    "$menuentry_id_option 'gnulinux-6.1.0-20-amd64-advanced-1111' {\n"
    "\t\tlinux\t/boot/vmlinuz-6.1.0-20-amd64 root=UUID=1111 ro quiet\n\t}\n"
    "\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64' --class debian "
    "$menuentry_id_option 'gnulinux-6.1.0-13-amd64-advanced-1111' {\n"
    "\t\tlinux\t/boot/vmlinuz-6.1.0-13-amd64 root=UUID=1111 ro quiet\n"
    "\t\tinitrd\t/boot/initrd.img-6.1.0-13-amd64\n\t}\n"
    "}\n";

static void test_grub(void)
{
    struct vd_ins_bootent e;
    char v[64];
    /* saved_entry empty: the first entry */
    CHECK(vd_ins_grub_cfg(S(debian_grub), "", &e), "grub first");
    CHECK(!strcmp(e.kernel, "/boot/vmlinuz-6.1.0-20-amd64") &&
              !strcmp(e.initrd, "/boot/initrd.img-6.1.0-20-amd64") && !e.bls,
          "grub first: %s %s", e.kernel, e.initrd);
    /* a submenu path by ids, and one by numbers */
    CHECK(vd_ins_grub_cfg(S(debian_grub),
                          "gnulinux-advanced-1111>gnulinux-6.1.0-13-amd64-advanced-1111", &e),
          "grub path");
    CHECK(!strcmp(e.kernel, "/boot/vmlinuz-6.1.0-13-amd64"), "grub path: %s", e.kernel);
    CHECK(vd_ins_grub_cfg(S(debian_grub), "1>1", &e) &&
              !strcmp(e.kernel, "/boot/vmlinuz-6.1.0-13-amd64"),
          "1>1: %s", e.kernel);
    /* a title; and "1" alone is the submenu, whose first child boots */
    CHECK(vd_ins_grub_cfg(S(debian_grub),
                          "Advanced options for Debian GNU/Linux>Debian "
                          "GNU/Linux, with Linux 6.1.0-13-amd64",
                          &e) &&
              !strcmp(e.kernel, "/boot/vmlinuz-6.1.0-13-amd64"),
          "titles: %s", e.kernel);
    CHECK(vd_ins_grub_cfg(S(debian_grub), "1", &e) &&
              !strcmp(e.kernel, "/boot/vmlinuz-6.1.0-20-amd64"),
          "submenu: %s", e.kernel);
    /* an explicit number after the saved_entry line wins; unknown -> first */
    CHECK(vd_ins_grub_cfg(S("set default=\"1\"\nmenuentry a {\nlinux /a\n}\nmenuentry 'b' "
                            "{\nlinux16 /b x\n}\n"),
                          NULL, &e) &&
              !strcmp(e.kernel, "/b"),
          "default=1: %s", e.kernel);
    CHECK(vd_ins_grub_cfg(S("set default=nope\nmenuentry a {\nlinux /a\n}\n"), NULL, &e) &&
              !strcmp(e.kernel, "/a"),
          "unknown default");
    CHECK(vd_ins_grub_cfg(S("insmod blscfg\nblscfg\n"), NULL, &e) == false && e.bls, "blscfg");

    CHECK(vd_ins_bls_entry(S("title Red Hat Enterprise Linux (5.14.0-362.el9.x86_64) 9.3\n"
                             "version 5.14.0-362.el9.x86_64\nlinux /vmlinuz-5.14.0-362.el9.x86_64\n"
                             "initrd /initramfs-5.14.0-362.el9.x86_64.img $tuned_initrd\n"),
                           &e, v, sizeof(v)),
          "bls");
    CHECK(!strcmp(v, "5.14.0-362.el9.x86_64") &&
              !strcmp(e.kernel, "/vmlinuz-5.14.0-362.el9.x86_64") &&
              !strcmp(e.initrd, "/initramfs-5.14.0-362.el9.x86_64.img"),
          "bls: %s %s %s", v, e.kernel, e.initrd);

    const char *menu = "default=1\ntimeout=5\ntitle CentOS (2.6.32-754.el6.x86_64)\n"
                       "\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro\n"
                       "title Other\n\tkernel (hd0,0)/vmlinuz-2.6.32-100 ro root=/dev/sda1\n"
                       "\tinitrd /initramfs-2.6.32-100.img\n";
    /* "default=1" as RHEL writes it; the device prefix is dropped */
    CHECK(vd_ins_menu_lst(S(menu), 0, &e) && !strcmp(e.kernel, "/vmlinuz-2.6.32-100"),
          "default=1: %s", e.kernel);
    menu = "default 1\ntitle A\n kernel /vmlinuz-a ro\ntitle Other\n"
           "\tkernel (hd0,0)/vmlinuz-2.6.32-100 ro root=/dev/sda1\n"
           "\tinitrd /initramfs-2.6.32-100.img\n";
    CHECK(vd_ins_menu_lst(S(menu), 0, &e) && !strcmp(e.kernel, "/vmlinuz-2.6.32-100") &&
              !strcmp(e.initrd, "/initramfs-2.6.32-100.img") && !strcmp(e.title, "Other"),
          "menu.lst: %s|%s|%s", e.kernel, e.initrd, e.title);

    char out[64];
    CHECK(vd_ins_grubenv(S("# GRUB Environment Block\nsaved_entry=gnulinux-x\n#########\n"),
                         "saved_entry", out, sizeof(out)) &&
              !strcmp(out, "gnulinux-x"),
          "grubenv");
    CHECK(!vd_ins_grubenv(S("# GRUB Environment Block\n####"), "saved_entry", out, sizeof(out)),
          "grubenv absent");
    CHECK(vd_ins_kernel_version("/boot/vmlinuz-6.1.0-13-amd64", out, sizeof(out)) &&
              !strcmp(out, "6.1.0-13-amd64"),
          "kver");
    CHECK(!vd_ins_kernel_version("/boot/vmlinuz", out, sizeof(out)), "no version");
}

static void test_arch(void)
{
    unsigned char e[64] = {0x7f, 'E', 'L', 'F', 2, 1};
    e[18] = 62;
    CHECK(!strcmp(vd_ins_elf_arch(e, sizeof(e)), "x86_64"), "x86_64");
    e[4] = 1;
    e[18] = 3;
    CHECK(!strcmp(vd_ins_elf_arch(e, sizeof(e)), "i386"), "i386");
    e[4] = 2;
    e[5] = 2;
    e[18] = 0;
    e[19] = 21;
    CHECK(!strcmp(vd_ins_elf_arch(e, sizeof(e)), "ppc64"), "ppc64");
    CHECK(vd_ins_elf_arch(e, 19) == NULL, "short");
    unsigned char pe[256] = {'M', 'Z'};
    pe[0x3c] = 0x80;
    memcpy(pe + 0x80, "PE\0\0\x64\x86", 6);
    CHECK(!strcmp(vd_ins_pe_arch(pe, sizeof(pe)), "x86_64"), "pe");
    pe[0x3c] = 0xfe;
    CHECK(vd_ins_pe_arch(pe, sizeof(pe)) == NULL, "pe past end");
}

struct nets {
    struct vd_ins_net v[8];
    int n;
    char src[64];
};
static int net_cb(void *o, const struct vd_ins_net *n)
{
    struct nets *s = o;
    if (s->n < 8)
        s->v[s->n++] = *n;
    return 0;
}
static void src_cb(void *o, const char *p)
{
    snprintf(((struct nets *)o)->src, 64, "%s", p);
}

static void test_net(void)
{
    struct nets s;
    memset(&s, 0, sizeof(s));
    vd_ins_net_ifupdown(S("source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n"
                          "allow-hotplug ens3\niface ens3 inet dhcp\n"
                          "iface eth1 inet static\n  address 10.0.0.2/24\n"
                          "  hwaddress ether 52:54:00:12:34:56\n"),
                        net_cb, &s, src_cb, &s);
    CHECK(s.n == 2 && !strcmp(s.v[0].iface, "ens3") && s.v[0].dhcp && !s.v[0].static_addr &&
              !strcmp(s.v[1].iface, "eth1") && s.v[1].static_addr &&
              !strcmp(s.v[1].mac, "52:54:00:12:34:56"),
          "ifupdown: %d", s.n);
    CHECK(!strcmp(s.src, "/etc/network/interfaces.d/*"), "source: %s", s.src);

    memset(&s, 0, sizeof(s));
    vd_ins_net_ifcfg(
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        S("TYPE=Ethernet\nBOOTPROTO=none\nIPADDR=10.1.1.5\nHWADDR=\"00:11:22:33:44:55\"\n"), net_cb,
        &s);
    CHECK(s.n == 1 && !strcmp(s.v[0].iface, "eth0") && s.v[0].static_addr && !s.v[0].dhcp &&
              !strcmp(s.v[0].mac, "00:11:22:33:44:55"),
          "ifcfg");
    memset(&s, 0, sizeof(s));
    vd_ins_net_ifcfg("ifcfg-lo", S("DEVICE=lo\nIPADDR=127.0.0.1\n"), net_cb, &s);
    CHECK(s.n == 0, "ifcfg lo");

    memset(&s, 0, sizeof(s));
    vd_ins_net_netplan(S("# c\nnetwork:\n  version: 2\n  ethernets:\n    id0:\n      match:\n"
                         "        macaddress: \"52:54:00:aa:bb:cc\"\n      set-name: eth0\n"
                         "      addresses:\n        - 10.0.0.9/24\n    ens5:\n      dhcp4: yes\n"
                         "  bridges:\n    br0:\n      addresses: [10.2.0.1/24]\n"),
                       net_cb, &s);
    CHECK(s.n == 3, "netplan n %d", s.n);
    CHECK(!strcmp(s.v[0].mac, "52:54:00:aa:bb:cc") && s.v[0].iface[0] == '\0' &&
              s.v[0].static_addr && !s.v[0].dhcp,
          "netplan id0: %s %s", s.v[0].iface, s.v[0].mac);
    CHECK(!strcmp(s.v[1].iface, "ens5") && s.v[1].dhcp && !s.v[1].static_addr, "netplan ens5");
    CHECK(!strcmp(s.v[2].iface, "br0") && s.v[2].static_addr, "netplan br0");

    memset(&s, 0, sizeof(s));
    vd_ins_net_nmkeyfile(S("[connection]\nid=Wired\ntype=ethernet\ninterface-name=enp1s0\n"
                           "[ethernet]\nmac-address=AA:BB:CC:DD:EE:FF\n[ipv4]\nmethod=auto\n"),
                         net_cb, &s);
    CHECK(s.n == 1 && !strcmp(s.v[0].iface, "enp1s0") && s.v[0].dhcp &&
              !strcmp(s.v[0].mac, "AA:BB:CC:DD:EE:FF"),
          "nm");
    memset(&s, 0, sizeof(s));
    vd_ins_net_networkd(
        S("[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n[Address]\nAddress=1.2.3.4/8\n"), net_cb, &s);
    CHECK(s.n == 1 && !strcmp(s.v[0].iface, "en*") && s.v[0].dhcp && s.v[0].static_addr,
          "networkd");
}

struct ents {
    struct vd_ins_fstab_ent v[8];
    int n;
};
static int fstab_cb(void *o, const struct vd_ins_fstab_ent *e)
{
    struct ents *s = o;
    if (s->n < 8)
        s->v[s->n++] = *e;
    return 0;
}

static void test_fstab(void)
{
    struct ents s;
    memset(&s, 0, sizeof(s));
    vd_ins_fstab(S("# c\nUUID=abcd / ext4 errors=remount-ro 0 1\n"
                   "/dev/mapper/vg0-root /\\040x xfs defaults\n  \nproc /proc\n"),
                 fstab_cb, &s);
    CHECK(s.n == 3 && !strcmp(s.v[0].spec, "UUID=abcd") && !strcmp(s.v[0].type, "ext4") &&
              !strcmp(s.v[0].options, "errors=remount-ro") && !strcmp(s.v[1].mountpoint, "/ x") &&
              !strcmp(s.v[2].mountpoint, "/proc") && s.v[2].type[0] == '\0',
          "fstab %d", s.n);

    struct vd_bdev d1 = {.kind = VD_BDEV_DISK, .name = "disk", .disk = 1};
    struct vd_bdev p1 = {
        .kind = VD_BDEV_PART, .name = "disk-p1", .disk = 1, .part = 1, .part_uuid = "0a0b0c0d-01"};
    struct vd_bdev d2p2 = {.kind = VD_BDEV_PART, .name = "disk2-p2", .disk = 2, .part = 2};
    struct vd_bdev lv = {.kind = VD_BDEV_LV, .name = "lvm-my--vg-root", .disk = 1};
    struct vd_bdev pv = {.kind = VD_BDEV_PART, .name = "disk-p3", .disk = 1, .part = 3};
    strcpy(p1.uuid, "1111-AAAA");
    strcpy(p1.fstype, "ext4");
    strcpy(d2p2.label, "my data");
    strcpy(pv.uuid, "PVUU");
    strcpy(pv.fstype, "LVM2_member");
    const struct vd_bdev *devs[] = {&d1, &p1, &d2p2, &lv, &pv};
    size_t n = 5;
#define RES(spec) vd_ins_resolve(devs, n, spec)
    CHECK(RES("UUID=1111-aaaa") == &p1, "uuid case");
    CHECK(RES("/dev/disk/by-uuid/1111-AAAA") == &p1, "by-uuid");
    CHECK(RES("UUID=PVUU") == NULL, "a PV is not mounted");
    CHECK(RES("PARTUUID=0A0B0C0D-01") == &p1, "partuuid");
    CHECK(RES("LABEL=my data") == &d2p2, "label");
    CHECK(RES("/dev/disk/by-label/my\\x20data") == &d2p2, "by-label");
    CHECK(RES("/dev/sda1") == &p1 && RES("/dev/vda") == &d1 && RES("/dev/xvdb2") == &d2p2,
          "kernel names");
    CHECK(RES("/dev/nvme0n1p1") == &p1 && RES("/dev/sdc1") == NULL, "nvme");
    CHECK(RES("/dev/mapper/my--vg-root") == &lv, "mapper");
    CHECK(RES("/dev/my-vg/root") == &lv, "/dev/VG/LV");
    CHECK(RES("/dev/my-vg/swap") == NULL && RES("/dev/disk/by-id/x") == NULL, "unknown");
    CHECK(RES("tmpfs") == NULL && RES("UUID=") == NULL, "no device");
#undef RES

    CHECK(!strcmp(vd_ins_driver_of("usr/lib/modules/6.1/kernel/drivers/nvme/host/nvme-core.ko"),
                  "nvme-core"),
          "nvme-core");
    CHECK(!strcmp(vd_ins_driver_of("lib/modules/x/xen_blkfront.ko.zst"), "xen-blkfront"),
          "xen_blkfront");
    CHECK(vd_ins_driver_of("lib/modules/x/nvme-fabrics.ko") == NULL, "nvme-fabrics");
    CHECK(vd_ins_driver_of("lib/modules/x/ena.kox") == NULL, "not a module");
}

int main(void)
{
    test_os_release();
    test_release_files();
    test_grub();
    test_arch();
    test_net();
    test_fstab();
    return failures != 0;
}
