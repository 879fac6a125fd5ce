/*
 * Unit tests for the fixup rewriters (include/vdisk/fixup.h): real-world
 * fstab, /etc/default/grub, grub.cfg, interfaces, ifcfg, netplan,
 * systemd-networkd and NetworkManager keyfile texts as Debian 12, Ubuntu
 * 22.04, CentOS 7 and RHEL 9 installers write them, each
 * against its exact expected output; then hostile inputs (NULs, CRLF, no
 * final newline, huge lines, over-size files) that must give an error or a
 * sane result.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vdisk/fixup.h"

#define U1 "0f3c5a2e-8d1b-4c55-9a7e-2b6d4f1e9a01"
#define U2 "7d2e4b19-31c6-4f08-b0a3-5e8c1d2f6b02"
#define U5 "c1a9e3d7-5b2f-4e61-8d04-9f7a3b6c2e05"

static const struct vd_fixup_dev devs[] = {
    {.disk = 1, .part = 1, .uuid = U1, .type = "ext4"},
    {.disk = 1, .part = 2, .uuid = U2, .type = "ext4"},
    {.disk = 1, .part = 5, .uuid = U5, .type = "swap"},
    {.disk = 1, .part = 6, .uuid = "", .type = "ext4"}, /* no UUID: unusable */
};
static const struct vd_fixup_devmap map = {
    .n = 4, .devs = (struct vd_fixup_dev *)devs, .ndisks = 1};

typedef int (*rw_map)(const char *, size_t, const struct vd_fixup_devmap *, struct vd_fixup_buf *,
                      struct vd_fixup_buf *, struct vd_error *);
typedef int (*rw_plain)(const char *, size_t, struct vd_fixup_nic *, struct vd_fixup_buf *,
                        struct vd_fixup_buf *, struct vd_error *);

/* NetworkManager keyfiles bind no name, so take no nic state. */
static int nmconn(const char *in, size_t len, struct vd_fixup_nic *nic, struct vd_fixup_buf *out,
                  struct vd_fixup_buf *why, struct vd_error *err)
{
    (void)nic;
    return vd_fixup_nmconnection(in, len, out, why, err);
}

static int run(rw_map fm, rw_plain fp, const char *in, size_t len, struct vd_fixup_buf *out,
               struct vd_fixup_buf *why, struct vd_error *err)
{
    vd_err_clear(err);
    struct vd_fixup_nic nic = {0};
    return fm ? fm(in, len, &map, out, why, err) : fp(in, len, &nic, out, why, err);
}

/* Rewrite in, expect rc and exactly want (and, if not NULL, why). */
static void expect(const char *name, rw_map fm, rw_plain fp, const char *in, int want_rc,
                   const char *want, const char *want_why)
{
    struct vd_fixup_buf out = {0}, why = {0};
    struct vd_error err = {0};
    int rc = run(fm, fp, in, strlen(in), &out, &why, &err);
    CHECK(rc == want_rc, "%s: rc %d, want %d (%s)", name, rc, want_rc, err.msg);
    if (rc >= 0) {
        CHECK(out.data && !strcmp(out.data, want), "%s: output\n--- got:\n%s--- want:\n%s", name,
              out.data ? out.data : "(null)", want);
        if (want_why)
            CHECK(why.data && !strcmp(why.data, want_why), "%s: why\n--- got:\n%s--- want:\n%s",
                  name, why.data ? why.data : "(null)", want_why);
        /* idempotent: a second pass changes nothing */
        struct vd_fixup_buf out2 = {0}, why2 = {0};
        int rc2 = run(fm, fp, out.data, out.len, &out2, &why2, &err);
        CHECK(rc2 == 0 && !strcmp(out2.data, out.data), "%s: second pass rc %d changed:\n%s", name,
              rc2, out2.data ? out2.data : "(null)");
        vd_fixup_buf_free(&out2);
        vd_fixup_buf_free(&why2);
    }
    vd_fixup_buf_free(&out);
    vd_fixup_buf_free(&why);
}

static void test_devpath(void)
{
    static const struct {
        const char *path;
        bool ok;
        unsigned disk, part;
    } cases[] = {
        {"/dev/sda1", true, 1, 1},
        {"/dev/sdb", true, 2, 0},
        {"/dev/sdaa1", true, 27, 1},
        {"/dev/sdzz15", true, 702, 15},
        {"/dev/hdc2", true, 3, 2},
        {"/dev/xvdf3", true, 6, 3},
        {"/dev/vda1", true, 1, 1},
        {"/dev/nvme0n1p2", true, 1, 2},
        {"/dev/nvme1n1", true, 2, 0},
        {"/dev/sda0", false, 0, 0},
        {"/dev/sd", false, 0, 0},
        {"/dev/sdabc1", false, 0, 0},
        {"/dev/nvme0n2p1", true, 0, 1},
        {"/dev/nvme0n1p", false, 0, 0},
        {"/dev/nvme0n0", false, 0, 0},
        {"/dev/nvme0n1p01", false, 0, 0},
        {"/dev/mapper/vg-root", false, 0, 0},
        {"/dev/sda1x", false, 0, 0},
        {"sda1", false, 0, 0},
        {"/dev/sdA1", false, 0, 0},
        {"/dev/sda99999", false, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned d = 0, p = 0;
        bool ok = vd_fixup_parse_devpath(cases[i].path, strlen(cases[i].path), &d, &p);
        CHECK(ok == cases[i].ok, "%s: parsed %d", cases[i].path, ok);
        if (ok && cases[i].ok)
            CHECK(d == cases[i].disk && p == cases[i].part, "%s: disk %u part %u", cases[i].path, d,
                  p);
    }
    CHECK(vd_fixup_devmap_find(&map, 1, 6) == NULL, "a filesystem without UUID is not found");
    CHECK(vd_fixup_devmap_find(&map, 1, 5) == &devs[2], "swap found");
}

/* Debian 12 installer fstab, root and /home on sda, swap on sda5. */
static void test_fstab_debian(void)
{
    expect("fstab debian", vd_fixup_fstab, NULL,
           "# /etc/fstab: static file system information.\n"
           "#\n"
           "# Use 'blkid' to print the universally unique identifier for a\n"
           "# device; this may be used with UUID= as a more robust way to name devices\n"
           "# that works even if disks are added and removed. See fstab(5).\n"
           "#\n"
           "# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
           "# / was on /dev/sda1 during installation\n"
           "/dev/sda1 /               ext4    errors=remount-ro 0       1\n"
           "# /home was on /dev/sda2 during installation\n"
           "/dev/sda2 /home           ext4    defaults        0       2\n"
           "# swap was on /dev/sda5 during installation\n"
           "/dev/sda5 none            swap    sw              0       0\n"
           "/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n",
           1,
           "# /etc/fstab: static file system information.\n"
           "#\n"
           "# Use 'blkid' to print the universally unique identifier for a\n"
           "# device; this may be used with UUID= as a more robust way to name devices\n"
           "# that works even if disks are added and removed. See fstab(5).\n"
           "#\n"
           "# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
           "# / was on /dev/sda1 during installation\n"
           "UUID=" U1 " /               ext4    errors=remount-ro 0       1\n"
           "# /home was on /dev/sda2 during installation\n"
           "UUID=" U2 " /home           ext4    defaults        0       2\n"
           "# swap was on /dev/sda5 during installation\n"
           "UUID=" U5 " none            swap    sw              0       0\n"
           "/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n",
           "line 9: /dev/sda1 -> UUID=" U1 " (the ext4 on disk 1, partition 1)\n"
           "line 11: /dev/sda2 -> UUID=" U2 " (the ext4 on disk 1, partition 2)\n"
           "line 13: /dev/sda5 -> UUID=" U5 " (the swap on disk 1, partition 5)\n");
}

/* CentOS 7 anaconda fstab: LVM root, UUID /boot: nothing to do. */
static void test_fstab_centos(void)
{
    const char *in =
        "\n"
        "#\n"
        "# /etc/fstab\n"
        "# Created by anaconda on Tue Mar  5 10:21:33 2019\n"
        "#\n"
        "/dev/mapper/centos-root /                       xfs     defaults        0 0\n"
        "UUID=2a1f7c2e-4b7d-4c1e-9d55-0c4a6f1b2e3d /boot                   xfs     "
        "defaults        0 0\n"
        "/dev/mapper/centos-swap swap                    swap    defaults        0 0\n";
    expect("fstab centos", vd_fixup_fstab, NULL, in, 0, in, "");
}

static void test_fstab_edges(void)
{
    /* absent disk, bind of missing device, 3 fields, already nofail,
     * noauto, a partition without UUID, tabs, vdX and xvdX names */
    expect("fstab edges", vd_fixup_fstab, NULL,
           "/dev/vda1\t/\text4\tdefaults\t0\t1\n"
           "/dev/sdb1 /data xfs defaults 0 2\n"
           "/dev/sdc1 /srv/www none bind 0 0\n"
           "/dev/sdd1 /backup ext4\n"
           "/dev/sde1 /a ext4 defaults,nofail 0 0\n"
           "/dev/sdf1 /b ext4 noauto 0 0\n"
           "/dev/xvda6 /c ext4 defaults 0 2\n"
           "/dev/nvme0n2p1 /ns2 xfs defaults 0 2\n"
           "LABEL=scratch /scratch ext4 defaults 0 2\n"
           "proc /proc proc defaults 0 0\n"
           "//nas/music /music smbfs guest 0 0\n"
           "host:/export /nfs nfs defaults 0 0\n"
           "/data/www /var/www none bind 0 0\n"
           "/music/ /srv/music none rbind,ro 0 0\n"
           "/database /srv/db none bind 0 0\n",
           1,
           "UUID=" U1 "\t/\text4\tdefaults\t0\t1\n"
           "/dev/sdb1 /data xfs defaults,nofail 0 2\n"
           "# vdisk fixup: bind mount of a device that is not present\n"
           "#/dev/sdc1 /srv/www none bind 0 0\n"
           "/dev/sdd1 /backup ext4\tnofail\n"
           "/dev/sde1 /a ext4 defaults,nofail 0 0\n"
           "/dev/sdf1 /b ext4 noauto 0 0\n"
           "/dev/xvda6 /c ext4 defaults,nofail 0 2\n"
           "/dev/nvme0n2p1 /ns2 xfs defaults,nofail 0 2\n"
           "LABEL=scratch /scratch ext4 defaults 0 2\n"
           "proc /proc proc defaults 0 0\n"
           "# vdisk fixup: disabled smbfs, a network/host-shared filesystem\n"
           "#//nas/music /music smbfs guest 0 0\n"
           "host:/export /nfs nfs defaults 0 0\n"
           "# vdisk fixup: bind mount from a filesystem that will not be mounted\n"
           "#/data/www /var/www none bind 0 0\n"
           "# vdisk fixup: bind mount from a filesystem that will not be mounted\n"
           "#/music/ /srv/music none rbind,ro 0 0\n"
           "/database /srv/db none bind 0 0\n",
           NULL);
}

static void test_fstab_root_unresolved(void)
{
    struct vd_fixup_buf out = {0}, why = {0};
    struct vd_error err = {0};
    const char *in = "# root\n/dev/sdb2 / ext4 defaults 0 1\n";
    int rc = vd_fixup_fstab(in, strlen(in), &map, &out, &why, &err);
    CHECK(rc == -ENOENT, "rc %d", rc);
    CHECK_MSG(err, "fixup: /etc/fstab: line 2: the root filesystem's device /dev/sdb2 is not on "
                   "the given disks (no filesystem with a UUID there); nothing was changed");
    /* a partition whose filesystem has no UUID does not resolve either */
    vd_err_clear(&err);
    in = "/dev/sda6 / ext4 defaults 0 1\n";
    rc = vd_fixup_fstab(in, strlen(in), &map, &out, &why, &err);
    CHECK(rc == -ENOENT, "no-UUID root: rc %d", rc);
    vd_fixup_buf_free(&out);
    vd_fixup_buf_free(&why);
}

static void test_grub_default(void)
{
    /* CentOS 7 */
    expect("grub centos", vd_fixup_grub_default, NULL,
           "GRUB_TIMEOUT=5\n"
           "GRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\n"
           "GRUB_DEFAULT=saved\n"
           "GRUB_DISABLE_SUBMENU=true\n"
           "GRUB_TERMINAL_OUTPUT=\"console\"\n"
           "GRUB_CMDLINE_LINUX=\"crashkernel=auto rd.lvm.lv=centos/root rd.lvm.lv=centos/swap "
           "rhgb quiet\"\n"
           "GRUB_DISABLE_RECOVERY=\"true\"\n",
           1,
           "GRUB_TIMEOUT=1\n"
           "GRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\n"
           "GRUB_DEFAULT=0\n"
           "GRUB_DISABLE_SUBMENU=true\n"
           "GRUB_TERMINAL_OUTPUT=\"console\"\n"
           "GRUB_CMDLINE_LINUX=\"crashkernel=auto rd.lvm.lv=centos/root rd.lvm.lv=centos/swap "
           "rhgb quiet net.ifnames=0 biosdevname=0\"\n"
           "GRUB_DISABLE_RECOVERY=\"true\"\n",
           "line 1: GRUB_TIMEOUT=5 -> GRUB_TIMEOUT=1 (do not wait at a boot menu nobody sees)\n"
           "line 3: GRUB_DEFAULT=saved -> GRUB_DEFAULT=0 (boot the first menu entry)\n"
           "line 6: added net.ifnames=0 biosdevname=0 (the first NIC is eth0 on every hypervisor; "
           "the network configuration now names eth0)\n");
    /* Ubuntu: already 0, hidden menu with timeout 0, names set: nothing
     * to do */
    const char *ub = "GRUB_DEFAULT=0\nGRUB_TIMEOUT_STYLE=hidden\nGRUB_TIMEOUT=0\n"
                     "#GRUB_TIMEOUT=10\nGRUB_CMDLINE_LINUX=\"biosdevname=0 net.ifnames=0\"\n";
    expect("grub ubuntu", vd_fixup_grub_default, NULL, ub, 0, ub, "");
    /* missing settings are added, even without a final newline */
    expect("grub missing", vd_fixup_grub_default, NULL, "GRUB_CMDLINE_LINUX=\"\"", 1,
           "GRUB_CMDLINE_LINUX=\"net.ifnames=0 biosdevname=0\"\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n",
           NULL);
    /* predictable names asked for explicitly: overridden, last word wins */
    expect("grub ifnames=1", vd_fixup_grub_default, NULL,
           "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n"
           "GRUB_CMDLINE_LINUX=\"net.ifnames=1 quiet biosdevname=1 net.ifnames=1\"\n",
           1,
           "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n"
           "GRUB_CMDLINE_LINUX=\"net.ifnames=1 quiet biosdevname=0 net.ifnames=0\"\n",
           "line 3: biosdevname=1 -> biosdevname=0 (the new NIC must be eth0)\n"
           "line 3: net.ifnames=1 -> net.ifnames=0 (the new NIC must be eth0)\n");
    /* device names on the kernel command line, quoted */
    expect("grub cmdline", vd_fixup_grub_default, NULL,
           "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n"
           "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=/dev/sda5\"\n"
           "GRUB_CMDLINE_LINUX='root=/dev/sda1 resume=/dev/sdb2 noresume=/dev/sda5'\n",
           1,
           "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n"
           "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=UUID=" U5 "\"\n"
           "GRUB_CMDLINE_LINUX='root=UUID=" U1 " resume=/dev/sdb2 noresume=/dev/sda5 "
           "net.ifnames=0 biosdevname=0'\n",
           "line 3: resume=/dev/sda5 -> resume=UUID=" U5 " (the swap on disk 1, partition 5)\n"
           "line 4: root=/dev/sda1 -> root=UUID=" U1 " (the ext4 on disk 1, partition 1)\n"
           "line 4: added net.ifnames=0 biosdevname=0 (the first NIC is eth0 on every hypervisor; "
           "the network configuration now names eth0)\n");
    /* CRLF kept */
    expect("grub crlf", vd_fixup_grub_default, NULL, "GRUB_DEFAULT=\"2\"\r\nGRUB_TIMEOUT=1\r\n", 1,
           "GRUB_DEFAULT=0\r\nGRUB_TIMEOUT=1\r\nGRUB_CMDLINE_LINUX=\"net.ifnames=0 "
           "biosdevname=0\"\r\n",
           NULL);
}

static void test_grub_cfg(void)
{
    expect("grub.cfg", vd_fixup_grub_cfg, NULL,
           "set default=\"${saved_entry}\"\n"
           "if [ x\"${feature_timeout_style}\" = xy ] ; then\n"
           "  set timeout_style=menu\n"
           "  set timeout=5\n"
           "else\n"
           "  set timeout=5\n"
           "fi\n"
           "menuentry 'CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)' {\n"
           "\tlinux16 /vmlinuz-3.10.0-1160.el7.x86_64 root=/dev/sda2 ro crashkernel=auto "
           "rhgb quiet\n"
           "\tlinux16 /vmlinuz-rescue root=/dev/sdb1 ro\n"
           "\t# root=/dev/sda1 in a comment stays\n"
           "\tsearch --no-floppy --fs-uuid --set=root " U1 "\n"
           "}\n",
           1,
           "set default=\"0\"\n"
           "if [ x\"${feature_timeout_style}\" = xy ] ; then\n"
           "  set timeout_style=menu\n"
           "  set timeout=1\n"
           "else\n"
           "  set timeout=1\n"
           "fi\n"
           "menuentry 'CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)' {\n"
           "\tlinux16 /vmlinuz-3.10.0-1160.el7.x86_64 root=UUID=" U2 " ro crashkernel=auto "
           "rhgb quiet net.ifnames=0 biosdevname=0\n"
           "\tlinux16 /vmlinuz-rescue root=/dev/sdb1 ro net.ifnames=0 biosdevname=0\n"
           "\t# root=/dev/sda1 in a comment stays\n"
           "\tsearch --no-floppy --fs-uuid --set=root " U1 "\n"
           "}\n",
           NULL);
}

#define IFN "(the first NIC is eth0 on every hypervisor; the network configuration now names eth0)"

static void test_bls(void)
{
    /* RHEL 9.3: the words on the options line */
    expect("bls rhel9", vd_fixup_bls_entry, NULL,
           "title Red Hat Enterprise Linux (5.14.0-362.8.1.el9_3.x86_64) 9.3 (Plow)\n"
           "version 5.14.0-362.8.1.el9_3.x86_64\n"
           "linux /vmlinuz-5.14.0-362.8.1.el9_3.x86_64\n"
           "initrd /initramfs-5.14.0-362.8.1.el9_3.x86_64.img $tuned_initrd\n"
           "options root=/dev/sda2 ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M "
           "resume=/dev/sda5 rhgb quiet\n"
           "grub_users $grub_users\n"
           "grub_arg --unrestricted\n"
           "grub_class rhel\n",
           1,
           "title Red Hat Enterprise Linux (5.14.0-362.8.1.el9_3.x86_64) 9.3 (Plow)\n"
           "version 5.14.0-362.8.1.el9_3.x86_64\n"
           "linux /vmlinuz-5.14.0-362.8.1.el9_3.x86_64\n"
           "initrd /initramfs-5.14.0-362.8.1.el9_3.x86_64.img $tuned_initrd\n"
           "options root=UUID=" U2 " ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M "
           "resume=UUID=" U5 " rhgb quiet net.ifnames=0 biosdevname=0\n"
           "grub_users $grub_users\n"
           "grub_arg --unrestricted\n"
           "grub_class rhel\n",
           "line 5: root=/dev/sda2 -> root=UUID=" U2 " (the ext4 on disk 1, partition 2)\n"
           "line 5: resume=/dev/sda5 -> resume=UUID=" U5 " (the swap on disk 1, partition 5)\n"
           "line 5: added net.ifnames=0 biosdevname=0 " IFN "\n");
    /* Fedora 39 on btrfs (subvolume root), resume on a whole disk */
    expect("bls fedora", vd_fixup_bls_entry, NULL,
           "title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Server Edition)\n"
           "version 6.5.6-300.fc39.x86_64\n"
           "linux /vmlinuz-6.5.6-300.fc39.x86_64\n"
           "initrd /initramfs-6.5.6-300.fc39.x86_64.img\n"
           "options root=/dev/sda1 ro rootflags=subvol=root rhgb quiet\n"
           "grub_users $grub_users\n"
           "grub_arg --unrestricted\n"
           "grub_class fedora\n",
           1,
           "title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Server Edition)\n"
           "version 6.5.6-300.fc39.x86_64\n"
           "linux /vmlinuz-6.5.6-300.fc39.x86_64\n"
           "initrd /initramfs-6.5.6-300.fc39.x86_64.img\n"
           "options root=UUID=" U1 " ro rootflags=subvol=root rhgb quiet net.ifnames=0 "
           "biosdevname=0\n"
           "grub_users $grub_users\n"
           "grub_arg --unrestricted\n"
           "grub_class fedora\n",
           NULL);
    /* RHEL 8: options from grubenv's $kernelopts, already by LVM name */
    const char *r8 = "title Red Hat Enterprise Linux (4.18.0-513.5.1.el8_9.x86_64) 8.9 (Ootpa)\n"
                     "version 4.18.0-513.5.1.el8_9.x86_64\n"
                     "linux /vmlinuz-4.18.0-513.5.1.el8_9.x86_64\n"
                     "initrd /initramfs-4.18.0-513.5.1.el8_9.x86_64.img $tuned_initrd\n"
                     "options $kernelopts $tuned_params\n"
                     "id rhel-20231026120000-4.18.0-513.5.1.el8_9.x86_64\n";
    expect("bls rhel8", vd_fixup_bls_entry, NULL, r8, 0, r8, "");
}

static void test_grubenv(void)
{
    char in[1025], want[1025];
    const char *body = "# GRUB Environment Block\n"
                       "saved_entry=0c1d2e3f-4.18.0-513.5.1.el8_9.x86_64\n"
                       "kernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto "
                       "resume=/dev/sda5 rd.lvm.lv=rhel/root rhgb quiet \n"
                       "boot_success=0\n";
    const char *wbody = "# GRUB Environment Block\n"
                        "saved_entry=0c1d2e3f-4.18.0-513.5.1.el8_9.x86_64\n"
                        "kernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto "
                        "resume=UUID=" U5 " rd.lvm.lv=rhel/root rhgb quiet "
                        "net.ifnames=0 biosdevname=0 \n"
                        "boot_success=0\n";
    memset(in, '#', 1024);
    memcpy(in, body, strlen(body));
    in[1024] = '\0';
    memset(want, '#', 1024);
    memcpy(want, wbody, strlen(wbody));
    want[1024] = '\0';
    expect("grubenv rhel8", vd_fixup_grubenv, NULL, in, 1, want,
           "line 3: resume=/dev/sda5 -> resume=UUID=" U5 " (the swap on disk 1, partition 5)\n"
           "line 3: added net.ifnames=0 biosdevname=0 " IFN "\n");
    /* a block that cannot take the words: refused, exact message */
    memset(in, '#', 1024);
    memcpy(in, "# GRUB Environment Block\nkernelopts=", 36);
    memset(in + 36, 'q', 1024 - 36 - 4);
    in[1020] = '\n';
    struct vd_fixup_buf out = {0}, why = {0};
    struct vd_error err = {0};
    CHECK(vd_fixup_grubenv(in, 1024, &map, &out, &why, &err) == -ENOSPC, "full grubenv");
    CHECK_MSG(err, "fixup: grubenv: the edited block needs 1049 bytes, more than its 1024; "
                   "shorten kernelopts (grub2-editenv) and run fixup again");
    vd_fixup_buf_free(&out);
    vd_fixup_buf_free(&why);
}

static void test_grub_legacy(void)
{
    /* CentOS 6 anaconda grub.conf */
    expect("grub.conf centos6", vd_fixup_grub_legacy, NULL,
           "# grub.conf generated by anaconda\n"
           "#\n"
           "# Note that you do not have to rerun grub after making changes to this file\n"
           "#boot=/dev/sda\n"
           "default=1\n"
           "timeout=5\n"
           "splashimage=(hd0,0)/grub/splash.xpm.gz\n"
           "hiddenmenu\n"
           "title CentOS (2.6.32-754.el6.x86_64)\n"
           "\troot (hd0,0)\n"
           "\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/sda2 rd_NO_LUKS "
           "LANG=en_US.UTF-8 rd_NO_MD KEYTABLE=us rd_NO_LVM rd_NO_DM rhgb quiet\n"
           "\tinitrd /initramfs-2.6.32-754.el6.x86_64.img\n",
           1,
           "# grub.conf generated by anaconda\n"
           "#\n"
           "# Note that you do not have to rerun grub after making changes to this file\n"
           "#boot=/dev/sda\n"
           "default=0\n"
           "timeout=1\n"
           "splashimage=(hd0,0)/grub/splash.xpm.gz\n"
           "hiddenmenu\n"
           "title CentOS (2.6.32-754.el6.x86_64)\n"
           "\troot (hd0,0)\n"
           "\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=UUID=" U2 " rd_NO_LUKS "
           "LANG=en_US.UTF-8 rd_NO_MD KEYTABLE=us rd_NO_LVM rd_NO_DM rhgb quiet "
           "net.ifnames=0 biosdevname=0\n"
           "\tinitrd /initramfs-2.6.32-754.el6.x86_64.img\n",
           "line 5: default=1 -> 0 (boot the first menu entry)\n"
           "line 6: timeout=5 -> 1 (do not wait at a boot menu nobody sees)\n"
           "line 11: root=/dev/sda2 -> root=UUID=" U2 " (the ext4 on disk 1, partition 2)\n"
           "line 11: added net.ifnames=0 biosdevname=0 " IFN "\n");
    /* SLES 11 menu.lst: space-separated keys, resume= */
    expect("menu.lst sles11", vd_fixup_grub_legacy, NULL,
           "default 0\n"
           "timeout 8\n"
           "title SUSE Linux Enterprise Server 11 SP4 - 3.0.101-63\n"
           "    root (hd0,1)\n"
           "    kernel /boot/vmlinuz-3.0.101-63-default root=/dev/sda1 resume=/dev/sda5 "
           "splash=silent showopts\n"
           "    initrd /boot/initrd-3.0.101-63-default\n",
           1,
           "default 0\n"
           "timeout 1\n"
           "title SUSE Linux Enterprise Server 11 SP4 - 3.0.101-63\n"
           "    root (hd0,1)\n"
           "    kernel /boot/vmlinuz-3.0.101-63-default root=UUID=" U1 " resume=UUID=" U5
           " splash=silent showopts net.ifnames=0 biosdevname=0\n"
           "    initrd /boot/initrd-3.0.101-63-default\n",
           NULL);
}

static void test_interfaces(void)
{
    /* Debian: first static non-loopback stanza only */
    expect("interfaces", NULL, vd_fixup_interfaces,
           "# This file describes the network interfaces available on your system\n"
           "source /etc/network/interfaces.d/*\n"
           "\n"
           "auto lo\n"
           "iface lo inet loopback\n"
           "\n"
           "allow-hotplug ens18\n"
           "iface ens18 inet static\n"
           "\taddress 10.0.2.15/24\n"
           "\tgateway 10.0.2.2\n"
           "\t# dns-* options are implemented by the resolvconf package\n"
           "\tdns-nameservers 10.0.2.3\n"
           "\thwaddress ether 52:54:00:12:34:56\n"
           "\n"
           "iface ens19 inet static\n"
           "\taddress 10.9.0.5/24\n",
           1,
           "# This file describes the network interfaces available on your system\n"
           "source /etc/network/interfaces.d/*\n"
           "\n"
           "auto lo\n"
           "iface lo inet loopback\n"
           "\n"
           "allow-hotplug eth0\n"
           "iface eth0 inet dhcp\n"
           "\t# dns-* options are implemented by the resolvconf package\n"
           "\tdns-nameservers 10.0.2.3\n"
           "\n"
           "iface ens19 inet static\n"
           "\taddress 10.9.0.5/24\n",
           "line 7: ens18 -> eth0 (the new machine's first NIC)\n"
           "line 8: ens18 -> eth0 (the new machine's first NIC)\n"
           "line 8: eth0 now uses DHCP (inet static -> inet dhcp)\n"
           "line 9: removed \"address 10.0.2.15/24\" (a static setting of the old network)\n"
           "line 10: removed \"gateway 10.0.2.2\" (a static setting of the old network)\n"
           "line 13: removed \"hwaddress ether 52:54:00:12:34:56\" (a static setting of the old "
           "network)\n"
           "warning: line 15: ens19: the new machine will have no interface of that name (its "
           "NICs are eth0, eth1...); left as is\n");
    const char *dhcp = "auto eth0\niface eth0 inet dhcp\n";
    expect("interfaces dhcp", NULL, vd_fixup_interfaces, dhcp, 0, dhcp, "");
}

static void test_ifcfg(void)
{
    /* CentOS 7 anaconda, quoted values */
    expect("ifcfg centos", NULL, vd_fixup_ifcfg,
           "TYPE=\"Ethernet\"\n"
           "PROXY_METHOD=\"none\"\n"
           "BROWSER_ONLY=\"no\"\n"
           "BOOTPROTO=\"static\"\n"
           "DEFROUTE=\"yes\"\n"
           "IPV4_FAILURE_FATAL=\"no\"\n"
           "NAME=\"ens33\"\n"
           "UUID=\"c96bc909-188e-ec64-3a96-6a90982b08ad\"\n"
           "DEVICE=\"ens33\"\n"
           "ONBOOT=\"yes\"\n"
           "IPADDR=\"192.168.1.50\"\n"
           "PREFIX=\"24\"\n"
           "GATEWAY=\"192.168.1.1\"\n"
           "DNS1=\"8.8.8.8\"\n"
           "IPADDR1=10.0.0.2\n"
           "NETMASK1=255.0.0.0\n"
           "HWADDR=00:0C:29:3E:5A:7B\n",
           1,
           "TYPE=\"Ethernet\"\n"
           "PROXY_METHOD=\"none\"\n"
           "BROWSER_ONLY=\"no\"\n"
           "BOOTPROTO=dhcp\n"
           "DEFROUTE=\"yes\"\n"
           "IPV4_FAILURE_FATAL=\"no\"\n"
           "NAME=eth0\n"
           "DEVICE=eth0\n"
           "ONBOOT=\"yes\"\n"
           "DNS1=\"8.8.8.8\"\n",
           NULL);
    /* no BOOTPROTO at all (RHEL treats it as none) */
    expect("ifcfg no proto", NULL, vd_fixup_ifcfg, "DEVICE=eth0\nIPADDR=10.1.1.1", 1,
           "DEVICE=eth0\nBOOTPROTO=dhcp\n", NULL);
    /* left alone: loopback, bridge, bond slave, VLAN */
    static const char *const keep[] = {
        "DEVICE=lo\nIPADDR=127.0.0.1\nNETMASK=255.0.0.0\n",
        "DEVICE=br0\nTYPE=Bridge\nBOOTPROTO=static\nIPADDR=10.0.0.1\n",
        "DEVICE=eth1\nMASTER=bond0\nSLAVE=yes\nBOOTPROTO=none\n",
        "DEVICE=eth0.5\nVLAN=yes\nIPADDR=10.5.0.1\n",
    };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        expect("ifcfg keep", NULL, vd_fixup_ifcfg, keep[i], 0, keep[i], "");
}

static void test_netplan(void)
{
    /* Ubuntu 22.04 server installer, static */
    expect("netplan ubuntu", NULL, vd_fixup_netplan,
           "# This is the network config written by 'subiquity'\n"
           "network:\n"
           "  ethernets:\n"
           "    ens160:\n"
           "      addresses:\n"
           "      - 192.168.50.10/24\n"
           "      gateway4: 192.168.50.1\n"
           "      nameservers:\n"
           "        addresses:\n"
           "        - 192.168.50.1\n"
           "        search: []\n"
           "    ens192:\n"
           "      dhcp4: false\n"
           "      match:\n"
           "        driver: vmxnet3\n"
           "        macaddress: 00:50:56:a1:b2:c3\n"
           "      routes:\n"
           "        - to: default\n"
           "          via: 10.1.0.1\n"
           "  version: 2\n",
           1,
           "# This is the network config written by 'subiquity'\n"
           "network:\n"
           "  ethernets:\n"
           "    eth0:\n"
           "      nameservers:\n"
           "        addresses:\n"
           "        - 192.168.50.1\n"
           "        search: []\n"
           "      dhcp4: true\n"
           "    ens192:\n"
           "      dhcp4: true\n"
           "      match:\n"
           "        driver: vmxnet3\n"
           "  version: 2\n",
           "line 4: ens160 -> eth0 (the new machine's first NIC)\n"
           "line 5: eth0: removed addresses (a static setting of the old network)\n"
           "line 7: eth0: removed gateway4 (a static setting of the old network)\n"
           "eth0: added dhcp4: true\n"
           "line 13: ens192: dhcp4: false -> true\n"
           "line 16: ens192: removed the match on the old NIC's MAC address\n"
           "line 17: ens192: removed routes (a static setting of the old network)\n");
    const char *ok = "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n";
    expect("netplan dhcp", NULL, vd_fixup_netplan, ok, 0, ok, "");
}

static void test_networkd(void)
{
    /* systemd.network(5) example as Arch and Debian guides write it */
    expect("networkd static", NULL, vd_fixup_networkd,
           "[Match]\n"
           "Name=ens192\n"
           "\n"
           "[Network]\n"
           "Address=10.1.10.9/24\n"
           "Gateway=10.1.10.1\n"
           "DNS=10.1.10.1\n",
           1,
           "[Match]\n"
           "Name=eth0\n"
           "\n"
           "[Network]\n"
           "DNS=10.1.10.1\n"
           "DHCP=ipv4\n",
           "line 2: Name=ens192 -> eth0 (the new machine's first NIC)\n"
           "line 5: removed Address (a static setting of the old network)\n"
           "line 6: removed Gateway (a static setting of the old network)\n"
           "[Network]: added DHCP=ipv4\n");
    /* matched by MAC, with [Address] and [Route] sections, DHCP=ipv6 */
    expect("networkd mac", NULL, vd_fixup_networkd,
           "[Match]\n"
           "MACAddress=00:50:56:a1:b2:c3\n"
           "[Network]\n"
           "DHCP=ipv6\n"
           "[Address]\n"
           "Address=192.168.5.2/24\n"
           "[Route]\n"
           "Gateway=192.168.5.1\n",
           1,
           "[Match]\n"
           "Name=eth0\n"
           "[Network]\n"
           "DHCP=yes\n",
           "line 2: removed MACAddress (it matched the old NIC's MAC address; Name=eth0 instead)\n"
           "line 4: DHCP=ipv6 -> yes\n"
           "line 5: removed the [Address] section (a static setting of the old network)\n"
           "line 7: removed the [Route] section (a static setting of the old network)\n");
    /* already DHCP on a glob that matches eth0: nothing to do */
    const char *ok = "[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n";
    expect("networkd glob", NULL, vd_fixup_networkd, ok, 0, ok, "");
    /* left alone: loopback, a bond port, a bridge device */
    static const char *const keep[] = {
        "[Match]\nName=lo\n[Network]\nAddress=127.0.0.2/8\n",
        "[Match]\nName=ens3\n[Network]\nBond=bond0\n",
        "[Match]\nType=bridge\n[Network]\nAddress=10.0.0.1/24\n",
    };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        expect("networkd keep", NULL, vd_fixup_networkd, keep[i], 0, keep[i], "");
}

static void test_nmconnection(void)
{
    /* RHEL 9 / Fedora anaconda, static */
    expect("nm keyfile", NULL, nmconn,
           "[connection]\n"
           "id=ens192\n"
           "uuid=3c5f4a0e-7f5c-4d1c-9a2b-1e0f6b7c8d9e\n"
           "type=ethernet\n"
           "autoconnect-priority=-999\n"
           "interface-name=ens192\n"
           "\n"
           "[ethernet]\n"
           "mac-address=00:50:56:A1:B2:C3\n"
           "\n"
           "[ipv4]\n"
           "address1=192.168.1.50/24,192.168.1.1\n"
           "dns=8.8.8.8;\n"
           "method=manual\n"
           "\n"
           "[ipv6]\n"
           "addr-gen-mode=eui64\n"
           "method=auto\n"
           "\n"
           "[proxy]\n",
           1,
           "[connection]\n"
           "id=ens192\n"
           "uuid=3c5f4a0e-7f5c-4d1c-9a2b-1e0f6b7c8d9e\n"
           "type=ethernet\n"
           "autoconnect-priority=-999\n"
           "\n"
           "[ethernet]\n"
           "\n"
           "[ipv4]\n"
           "dns=8.8.8.8;\n"
           "method=auto\n"
           "\n"
           "[ipv6]\n"
           "addr-gen-mode=eui64\n"
           "method=auto\n"
           "\n"
           "[proxy]\n",
           "line 6: removed interface-name (without it the profile applies to whichever Ethernet "
           "NIC the new machine has)\n"
           "line 9: removed mac-address (pinned to the old NIC)\n"
           "line 12: removed address1 (a static setting of the old network)\n"
           "line 14: [ipv4] method=manual -> auto (DHCP)\n");
    /* a bond port and a Wi-Fi profile stay */
    static const char *const keep[] = {
        "[connection]\nid=p1\ntype=ethernet\ninterface-name=ens4\nmaster=bond0\n"
        "slave-type=bond\n",
        "[connection]\nid=home\ntype=wifi\ninterface-name=wlp2s0\n[ipv4]\nmethod=manual\n",
    };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        expect("nm keep", NULL, nmconn, keep[i], 0, keep[i], "");
}

/* The primary NIC is renamed once: a second config keeps its name, with a
 * warning, and an ifcfg named only by its file gets DEVICE=eth0. */
static void test_nic_taken(void)
{
    struct vd_fixup_nic nic = {0};
    struct vd_fixup_buf out = {0}, why = {0};
    struct vd_error err = {0};
    const char *a = "BOOTPROTO=dhcp\nONBOOT=yes\n";
    CHECK(vd_fixup_ifcfg(a, strlen(a), &nic, &out, &why, &err) == 1, "ifcfg rc");
    CHECK(!strcmp(out.data, "BOOTPROTO=dhcp\nONBOOT=yes\nDEVICE=eth0\n"), "ifcfg: %s", out.data);
    CHECK(nic.taken, "taken");
    const char *b = "network:\n  ethernets:\n    ens224:\n      dhcp4: true\n";
    CHECK(vd_fixup_netplan(b, strlen(b), &nic, &out, &why, &err) == 0, "netplan rc");
    CHECK(!strcmp(why.data, "warning: line 3: ens224: the new machine will have no interface of "
                            "that name (its NICs are eth0, eth1...); left as is\n"),
          "netplan why: %s", why.data);
    vd_fixup_buf_free(&out);
    vd_fixup_buf_free(&why);
}

static void test_diff(void)
{
    struct vd_fixup_buf d = {0};
    struct vd_error err = {0};
    const char *a = "1\n2\n3\n4\n5\n6\n7\n8\n", *b = "1\n2\nthree\n4\n5\n6\n7\n8\nnine\n";
    CHECK(vd_fixup_diff(a, strlen(a), b, strlen(b), &d, &err) == 0, "diff rc");
    CHECK(!strcmp(d.data, "@@ -2,3 +2,3 @@\n 2\n-3\n+three\n 4\n"
                          "@@ -8,1 +8,2 @@\n 8\n+nine\n"),
          "diff:\n%s", d.data);
    vd_fixup_buf_free(&d);
}

/* Hostile inputs: each rewriter must fail cleanly or give a sane result. */
static void test_hostile(void)
{
    rw_plain plain[] = {vd_fixup_interfaces, vd_fixup_ifcfg, vd_fixup_netplan, vd_fixup_networkd,
                        nmconn};
    const size_t nplain = sizeof(plain) / sizeof(plain[0]);
    rw_map withmap[] = {vd_fixup_fstab, vd_fixup_grub_cfg, vd_fixup_grub_default};
    struct vd_fixup_buf out = {0}, why = {0};
    struct vd_error err = {0};

    /* NUL byte: exact error */
    static const char nul[] = "/dev/sda1 / ext4 defaults 0 1\n/dev/sd\0b1 /x ext4 d 0 0\n";
    CHECK(vd_fixup_fstab(nul, sizeof(nul) - 1, &map, &out, &why, &err) == -EINVAL, "NUL rc");
    CHECK_MSG(err, "fixup: /etc/fstab: line 2 holds a NUL byte; not a text file");

    /* over the size limit: exact error */
    size_t big = VD_FIXUP_MAX_FILE + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\0';
    vd_err_clear(&err);
    CHECK(vd_fixup_netplan(huge, big, NULL, &out, &why, &err) == -EFBIG, "size rc");
    CHECK_MSG(err, "fixup: netplan: 1048577 bytes, more than the 1048576-byte limit for a config "
                   "file");

    /* one 1 MiB line, spaces, colons, '=' and '#': must not crash */
    for (size_t i = 0; i < big - 1; i++)
        huge[i] = " \t:=#-/abdev0123\r"[i % 17];
    for (size_t k = 0; k < nplain; k++) {
        vd_err_clear(&err);
        int rc = plain[k](huge, big - 1, NULL, &out, &why, &err);
        CHECK(rc >= 0, "long line: rewriter %zu rc %d (%s)", k, rc, err.msg);
    }
    for (size_t k = 0; k < 3; k++) {
        vd_err_clear(&err);
        int rc = withmap[k](huge, big - 1, &map, &out, &why, &err);
        CHECK(rc >= 0 || rc == -ENOENT, "long line: map rewriter %zu rc %d (%s)", k, rc, err.msg);
    }
    free(huge);

    /* empty input and lone terminators */
    static const char *const smalls[] = {"", "\n", "\r\n", "\r", "#", " ", "=", ":", "-"};
    for (size_t i = 0; i < sizeof(smalls) / sizeof(smalls[0]); i++) {
        for (size_t k = 0; k < nplain; k++) {
            vd_err_clear(&err);
            CHECK(plain[k](smalls[i], strlen(smalls[i]), NULL, &out, &why, &err) >= 0,
                  "small input %zu rewriter %zu: %s", i, k, err.msg);
        }
        for (size_t k = 0; k < 3; k++) {
            vd_err_clear(&err);
            CHECK(withmap[k](smalls[i], strlen(smalls[i]), &map, &out, &why, &err) >= 0,
                  "small input %zu map rewriter %zu: %s", i, k, err.msg);
        }
    }

    /* CRLF fstab without a final newline: terminators kept */
    vd_err_clear(&err);
    const char *crlf = "# c\r\n/dev/sda1 / ext4 defaults 0 1\r\n/dev/sdb1 /x ext4 defaults 0 2";
    CHECK(vd_fixup_fstab(crlf, strlen(crlf), &map, &out, &why, &err) == 1, "crlf rc");
    CHECK(!strcmp(out.data, "# c\r\nUUID=" U1 " / ext4 defaults 0 1\r\n"
                            "/dev/sdb1 /x ext4 defaults,nofail 0 2"),
          "crlf output:\n%s", out.data);
    vd_fixup_buf_free(&out);
    vd_fixup_buf_free(&why);
}

int main(void)
{
    test_devpath();
    test_fstab_debian();
    test_fstab_centos();
    test_fstab_edges();
    test_fstab_root_unresolved();
    test_grub_default();
    test_grub_cfg();
    test_bls();
    test_grubenv();
    test_grub_legacy();
    test_interfaces();
    test_ifcfg();
    test_netplan();
    test_networkd();
    test_nmconnection();
    test_nic_taken();
    test_diff();
    test_hostile();
    return failures != 0;
}
