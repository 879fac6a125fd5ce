/*
 * `vdisk inspect`: what virt-inspector reports about a guest, read offline
 * through its block devices (vdisk/guest.h) and read-only filesystems
 * (vdisk/fs.h), without booting or mounting anything.
 *
 *   every device with a filesystem -> vd_inspect_fs (type, UUID, label,
 *                                     size and free space from statfs)
 *   every filesystem holding /etc + a release file, or
 *   Windows/System32/config         -> one vd_inspect_os
 *     Linux: release files, arch (ELF), hostname, fstab resolved against
 *            the devices, kernels (a separate /boot from fstab is read),
 *            default boot entry, network configs, DHCP client, initramfs
 *     Windows: windows.c (hives)
 *   sector 0 of each disk, the ESPs -> boot mode, shared by every OS
 *
 * Missing or unreadable files become empty fields and warnings; only a
 * failure to read the disks themselves is an error. See docs/inspect.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "fixup/fixup_int.h"
#include "inspect/inspect_int.h"
#include "vdisk/fs.h"

#define INS_MAX_FILE     (1u << 20)   /* config files */
#define INS_MAX_INITRD   (512u << 20) /* an initramfs is read whole */
#define INS_MAX_KERNELS  32
#define INS_MAX_NETS     256
#define INS_MAX_WARNINGS 200

static const char ESP_GUID[] = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
static const char BIOS_BOOT_GUID[] = "21686148-6449-6e6f-744e-656564454649";

struct ins_dev {
    const struct vd_bdev *b;
    struct vd_fs_dev fdev;
    struct vd_fs *fs; /* NULL when not opened */
    size_t fsi;       /* its entry in fss, or SIZE_MAX */
};

struct vd_ins_ctx {
    struct vd_inspect pub;
    char **owned; /* every string the result holds */
    size_t nowned, capowned;
    struct vd_guest *g;
    struct ins_dev *devs;
    size_t ndevs;
    const struct vd_bdev **bdevs; /* for vd_ins_resolve */
    bool oom;
    bool no_initramfs; /* vd_inspect_opts */
};

/* ---- result ownership ---- */

static void *ins_keep(struct vd_ins_ctx *c, void *p)
{
    if (!p) {
        c->oom = true;
        return NULL;
    }
    if (c->nowned == c->capowned) {
        size_t cap = c->capowned ? c->capowned * 2 : 64;
        char **o = realloc(c->owned, cap * sizeof(*o));
        if (!o) {
            free(p);
            c->oom = true;
            return NULL;
        }
        c->owned = o;
        c->capowned = cap;
    }
    c->owned[c->nowned++] = p;
    return p;
}

const char *vd_ins_str(struct vd_ins_ctx *c, const char *s)
{
    if (!s || !s[0])
        return "";
    const char *p = ins_keep(c, strdup(s));
    return p ? p : "";
}

/* Grow an array owned by the result (freed in vd_inspect_free). */
static bool ins_grow(struct vd_ins_ctx *c, void **arr, size_t n, size_t elem)
{
    /* capacity: 8, then doubling; so n == 0 or a power of two >= 8 is full */
    if (n && (n < 8 || (n & (n - 1))))
        return true;
    size_t cap = n ? n * 2 : 8;
    void *p = realloc(*arr, cap * elem);
    if (!p) {
        c->oom = true;
        return false;
    }
    *arr = p;
    return true;
}

void vd_ins_push(struct vd_ins_ctx *c, const char ***arr, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*arr)[i], s))
            return; /* each name once */
    if (!ins_grow(c, (void **)arr, *n, sizeof(**arr)))
        return;
    (*arr)[(*n)++] = vd_ins_str(c, s);
}

void vd_ins_warn(struct vd_ins_ctx *c, const char *fmt, ...)
{
    char buf[VD_ERROR_MAX];
    va_list ap;
    if (c->pub.nwarnings >= INS_MAX_WARNINGS)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    vd_ins_push(c, &c->pub.warnings, &c->pub.nwarnings, buf);
}

void vd_inspect_free(struct vd_inspect *r)
{
    if (!r)
        return;
    struct vd_ins_ctx *c = (struct vd_ins_ctx *)r;
    for (size_t i = 0; i < r->noss; i++) {
        struct vd_inspect_os *o = &r->oss[i];
        for (size_t k = 0; k < o->nkernels; k++)
            free(o->kernels[k].initramfs_drivers);
        free(o->kernels);
        free(o->mounts);
        free(o->nets);
        free(o->win_boot_drivers);
    }
    free(r->oss);
    free(r->fss);
    free(r->warnings);
    for (size_t i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c);
}

/* ---- reading files through the OS's mounts ---- */

/* An OS under construction: its root filesystem and a separate /boot. */
struct ins_os {
    struct vd_ins_ctx *c;
    struct vd_inspect_os *o;
    struct ins_dev *root, *boot;
};

/* The filesystem and path inside it that hold path in the guest's tree. */
static struct vd_fs *ins_where(struct ins_os *os, const char *path, const char **sub)
{
    if (os->boot && !strncmp(path, "/boot", 5) && (path[5] == '/' || !path[5])) {
        *sub = path[5] ? path + 5 : "/";
        return os->boot->fs;
    }
    *sub = path;
    return os->root->fs;
}

/* Read a small file; 1 with data, 0 absent, -errno (warned) otherwise. */
static int ins_read(struct ins_os *os, const char *path, size_t max, char **data, size_t *len)
{
    const char *sub;
    struct vd_fs *fs = ins_where(os, path, &sub);
    struct vd_error err = {0};
    int rc = vd_fs_read(fs, sub, max, data, len, &err);
    if (rc == -ENOENT || rc == -ENOTDIR)
        return 0;
    if (rc < 0) {
        vd_ins_warn(os->c, "%s: %s: %s", os->root->b->name, path, err.msg);
        return rc;
    }
    return 1;
}

static bool ins_exists(struct ins_os *os, const char *path, enum vd_fs_ftype type)
{
    const char *sub;
    struct vd_fs *fs = ins_where(os, path, &sub);
    struct vd_fs_stat st;
    struct vd_error err = {0};
    return vd_fs_stat(fs, sub, true, &st, &err) == 0 && st.type == type;
}

/* Names in a directory (sorted), or none. */
static int ins_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static size_t ins_readdir(struct ins_os *os, const char *path, char ***names)
{
    const char *sub;
    struct vd_fs *fs = ins_where(os, path, &sub);
    struct vd_error err = {0};
    size_t n = 0;
    *names = NULL;
    if (vd_fs_readdir(fs, sub, names, &n, &err) < 0)
        return 0;
    if (n > 1)
        qsort(*names, n, sizeof(**names), ins_cmp_str);
    return n;
}

static bool ins_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* ---- release, hostname, arch ---- */

static const char *const ins_release_files[] = {
    "redhat-release", "centos-release", "rocky-release",  "almalinux-release",
    "oracle-release", "fedora-release", "system-release", "SuSE-release",
    "alpine-release", "lsb-release",    "debian_version", NULL,
};

/* Whether fs looks like a Linux root: /etc with a release file. */
static bool ins_is_linux(struct vd_fs *fs)
{
    struct vd_fs_stat st;
    struct vd_error err = {0};
    char p[64];
    if (vd_fs_stat(fs, "/etc", true, &st, &err) < 0 || st.type != VD_FS_DIR)
        return false;
    if (vd_fs_stat(fs, "/etc/os-release", true, &st, &err) == 0 ||
        vd_fs_stat(fs, "/usr/lib/os-release", true, &st, &err) == 0)
        return true;
    for (size_t i = 0; ins_release_files[i]; i++) {
        snprintf(p, sizeof(p), "/etc/%s", ins_release_files[i]);
        if (vd_fs_stat(fs, p, true, &st, &err) == 0)
            return true;
    }
    return false;
}

static void ins_release(struct ins_os *os)
{
    struct vd_ins_release r;
    char *d;
    size_t n;
    bool ok = false;
    if (ins_read(os, "/etc/os-release", INS_MAX_FILE, &d, &n) == 1 ||
        ins_read(os, "/usr/lib/os-release", INS_MAX_FILE, &d, &n) == 1) {
        ok = vd_ins_os_release(d, n, &r);
        free(d);
    }
    for (size_t i = 0; !ok && ins_release_files[i]; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/etc/%s", ins_release_files[i]);
        if (ins_read(os, p, INS_MAX_FILE, &d, &n) == 1) {
            ok = vd_ins_release_file(ins_release_files[i], d, n, &r);
            free(d);
        }
    }
    if (!ok) {
        vd_ins_warn(os->c, "%s: no readable /etc/os-release or release file: distribution unknown",
                    os->root->b->name);
        return;
    }
    os->o->distro = vd_ins_str(os->c, r.id);
    os->o->version = vd_ins_str(os->c, r.version);
    os->o->product = vd_ins_str(os->c, r.product);
    vd_ins_version_numbers(r.version, &os->o->major, &os->o->minor);
}

static void ins_hostname(struct ins_os *os)
{
    static const char *const files[] = {"/etc/hostname", "/etc/HOSTNAME", NULL};
    char *d;
    size_t n;
    for (size_t i = 0; files[i]; i++) {
        if (ins_read(os, files[i], INS_MAX_FILE, &d, &n) != 1)
            continue;
        d[strcspn(d, " \t\r\n#")] = '\0';
        os->o->hostname = vd_ins_str(os->c, d);
        free(d);
        if (os->o->hostname[0])
            return;
    }
    /* RHEL 6 and older: HOSTNAME= in /etc/sysconfig/network */
    if (ins_read(os, "/etc/sysconfig/network", INS_MAX_FILE, &d, &n) == 1) {
        char *h = strstr(d, "HOSTNAME=");
        if (h && (h == d || h[-1] == '\n')) {
            h += 9;
            if (*h == '"' || *h == '\'')
                h++;
            h[strcspn(h, "\"' \t\r\n")] = '\0';
            os->o->hostname = vd_ins_str(os->c, h);
        }
        free(d);
    }
}

static void ins_arch(struct ins_os *os)
{
    static const char *const bins[] = {"/bin/sh",
                                       "/usr/bin/ls",
                                       "/bin/ls",
                                       "/usr/bin/bash",
                                       "/bin/bash",
                                       "/sbin/init",
                                       "/usr/lib/systemd/systemd",
                                       "/bin/busybox",
                                       NULL};
    for (size_t i = 0; bins[i]; i++) {
        unsigned char h[64];
        size_t got = 0;
        struct vd_error err = {0};
        if (vd_fs_pread(os->root->fs, bins[i], h, sizeof(h), 0, &got, &err) < 0)
            continue;
        const char *a = vd_ins_elf_arch(h, got);
        if (a) {
            os->o->arch = a;
            os->o->arch_from = bins[i];
            return;
        }
    }
    vd_ins_warn(os->c,
                "%s: no readable ELF system binary (/bin/sh, /usr/bin/ls...): architecture "
                "unknown",
                os->root->b->name);
}

/* ---- fstab ---- */

static struct ins_dev *ins_dev_of(struct vd_ins_ctx *c, const struct vd_bdev *b)
{
    for (size_t i = 0; i < c->ndevs; i++)
        if (c->devs[i].b == b)
            return &c->devs[i];
    return NULL;
}

/* PARTUUID=SSSSSSSS-NN of an MBR disk: the disk signature (offset 440)
 * and the partition number, as util-linux forms it. */
static const struct vd_bdev *ins_mbr_partuuid(struct vd_ins_ctx *c, const char *spec)
{
    unsigned sig, num;
    char tail;
    if (strncmp(spec, "PARTUUID=", 9) || sscanf(spec + 9, "%8x-%2x%c", &sig, &num, &tail) != 2)
        return NULL;
    for (size_t i = 0; i < c->ndevs; i++) {
        const struct vd_bdev *b = c->devs[i].b;
        if (b->kind != VD_BDEV_DISK)
            continue;
        const struct vd_partition_table *t = vd_guest_partitions(c->g, b->disk);
        unsigned char mbr[4];
        struct vd_error err = {0};
        if (!t || strcmp(t->scheme, "dos") || vd_bdev_pread(b, mbr, 4, 440, &err) < 0)
            continue;
        if ((unsigned)(mbr[0] | mbr[1] << 8 | mbr[2] << 16 | (unsigned)mbr[3] << 24) != sig)
            continue;
        for (size_t k = 0; k < c->ndevs; k++) {
            const struct vd_bdev *p = c->devs[k].b;
            if (p->kind == VD_BDEV_PART && p->disk == b->disk && p->part == num)
                return p;
        }
    }
    return NULL;
}

static int ins_fstab_ent(void *opaque, const struct vd_ins_fstab_ent *e)
{
    struct ins_os *os = opaque;
    struct vd_ins_ctx *c = os->c;
    struct vd_inspect_os *o = os->o;
    if (o->nmounts >= 256)
        return 1;
    if (!ins_grow(c, (void **)&o->mounts, o->nmounts, sizeof(*o->mounts)))
        return 1;
    struct vd_inspect_mount *m = &o->mounts[o->nmounts++];
    const struct vd_bdev *b = vd_ins_resolve(c->bdevs, c->ndevs, e->spec);
    if (!b)
        b = ins_mbr_partuuid(c, e->spec);
    m->spec = vd_ins_str(c, e->spec);
    m->mountpoint = vd_ins_str(c, e->mountpoint);
    m->type = vd_ins_str(c, e->type);
    m->options = vd_ins_str(c, e->options);
    m->dev = b ? vd_ins_str(c, b->name) : NULL;
    if (b && !strcmp(e->mountpoint, "/boot")) {
        struct ins_dev *d = ins_dev_of(c, b);
        if (d && d->fs && d != os->root)
            os->boot = d;
        else if (d && !d->fs)
            vd_ins_warn(c, "%s: /etc/fstab: /boot is on %s, which was not read: kernels unknown",
                        os->root->b->name, b->name);
    }
    return 0;
}

static void ins_fstab(struct ins_os *os)
{
    char *d;
    size_t n;
    int rc = ins_read(os, "/etc/fstab", INS_MAX_FILE, &d, &n);
    if (rc != 1) {
        if (rc == 0)
            vd_ins_warn(os->c, "%s: /etc/fstab is missing", os->root->b->name);
        return;
    }
    os->o->fstab_read = true;
    vd_ins_fstab(d, n, ins_fstab_ent, os);
    free(d);
}

/* ---- kernels, modules, initramfs ---- */

/* Count kernel modules under dir, depth-first (at most depth 12). Names
 * ending in .ko* are counted without a stat; others are looked at. */
static size_t ins_count_modules(struct ins_os *os, const char *dir, int depth)
{
    char **names;
    size_t n = ins_readdir(os, dir, &names), count = 0;
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        if (ins_suffix(nm, ".ko") || ins_suffix(nm, ".ko.xz") || ins_suffix(nm, ".ko.zst") ||
            ins_suffix(nm, ".ko.gz")) {
            count++;
            continue;
        }
        if (depth >= 12 || strchr(nm, '.') || !strcmp(nm, "build") || !strcmp(nm, "source"))
            continue; /* files (modules.dep...) and the headers' symlinks */
        char p[1024];
        if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, nm) >= sizeof(p))
            continue;
        const char *sub;
        struct vd_fs *fs = ins_where(os, p, &sub);
        struct vd_fs_stat st;
        struct vd_error err = {0};
        if (vd_fs_stat(fs, sub, false, &st, &err) == 0 && st.type == VD_FS_DIR)
            count += ins_count_modules(os, p, depth + 1);
    }
    vd_fs_names_free(names, n);
    return count;
}

/* The modules of kernel version v: the entries of modules.dep, which
 * depmod writes one line per module ("kernel/.../x.ko.xz: deps"). That is
 * one small file instead of a walk whose lookups read about 120 MiB of
 * directory blocks on a Debian kernel (which matters over S3). Without a
 * readable modules.dep, the tree is walked. */
static size_t ins_modules(struct ins_os *os, const char *v)
{
    char p[512], *d;
    size_t n, count = 0;
    snprintf(p, sizeof(p), "/lib/modules/%s/modules.dep", v);
    if (ins_read(os, p, 64u << 20, &d, &n) == 1) {
        struct vd_fx_line l;
        size_t pos = 0;
        while (vd_fx_next_line(d, n, &pos, &l)) {
            const char *colon = memchr(l.s, ':', l.len);
            size_t k = colon ? (size_t)(colon - l.s) : 0;
            if (k > 3 && (memmem(l.s, k, ".ko", 3) != NULL))
                count++;
        }
        free(d);
        if (count)
            return count;
    }
    snprintf(p, sizeof(p), "/lib/modules/%s", v);
    return ins_count_modules(os, p, 0);
}

struct ins_drv {
    struct vd_ins_ctx *c;
    struct vd_inspect_kernel *k;
};
static int ins_initramfs_cb(void *opaque, const char *path)
{
    struct ins_drv *d = opaque;
    const char *drv = vd_ins_driver_of(path);
    if (drv)
        vd_ins_push(d->c, &d->k->initramfs_drivers, &d->k->ninitramfs_drivers, drv);
    return 0;
}

static void ins_initramfs(struct ins_os *os, struct vd_inspect_kernel *k)
{
    struct vd_ins_ctx *c = os->c;
    struct ins_drv d = {c, k};
    char *data;
    size_t n;
    if (!k->initrd[0]) {
        k->initramfs_why = "no initramfs file for this kernel in /boot";
    } else {
        int rc = ins_read(os, k->initrd, INS_MAX_INITRD, &data, &n);
        if (rc != 1) {
            k->initramfs_why = rc == -EFBIG ? "larger than 512 MiB" : "unreadable (see warnings)";
        } else {
            struct vd_error err = {0};
            if (vd_initramfs_list(data, n, ins_initramfs_cb, &d, &err) < 0) {
                k->initramfs_why = vd_ins_str(c, err.msg);
                vd_ins_warn(c, "%s: %s: %s", os->root->b->name, k->initrd, err.msg);
            } else {
                k->initramfs_read = true;
            }
            free(data);
        }
    }
    /* Built into the kernel image: present whatever the initramfs holds. */
    char p[512];
    snprintf(p, sizeof(p), "/lib/modules/%s/modules.builtin", k->version);
    if (ins_read(os, p, 16u << 20, &data, &n) == 1) {
        char *save = NULL;
        for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            const char *drv = vd_ins_driver_of(l);
            if (drv)
                vd_ins_push(c, &k->initramfs_drivers, &k->ninitramfs_drivers, drv);
        }
        free(data);
    }
}

static struct vd_inspect_kernel *ins_kernel(struct ins_os *os, const char *version)
{
    struct vd_inspect_os *o = os->o;
    for (size_t i = 0; i < o->nkernels; i++)
        if (!strcmp(o->kernels[i].version, version))
            return &o->kernels[i];
    if (o->nkernels >= INS_MAX_KERNELS ||
        !ins_grow(os->c, (void **)&o->kernels, o->nkernels, sizeof(*o->kernels)))
        return NULL;
    struct vd_inspect_kernel *k = &o->kernels[o->nkernels++];
    memset(k, 0, sizeof(*k));
    k->version = vd_ins_str(os->c, version);
    k->path = k->initrd = k->initramfs_why = "";
    return k;
}

static void ins_kernels(struct ins_os *os)
{
    char **names;
    size_t n = ins_readdir(os, "/boot", &names);
    char v[VD_INS_STR], p[512];
    for (size_t i = 0; i < n; i++) {
        if (strncmp(names[i], "vmlinuz-", 8) && strncmp(names[i], "vmlinux-", 8))
            continue;
        if (ins_suffix(names[i], ".hmac") || ins_suffix(names[i], ".sig") ||
            !vd_ins_kernel_version(names[i], v, sizeof(v)))
            continue;
        struct vd_inspect_kernel *k = ins_kernel(os, v);
        if (k && !k->path[0]) {
            snprintf(p, sizeof(p), "/boot/%s", names[i]);
            k->path = vd_ins_str(os->c, p);
        }
    }
    vd_fs_names_free(names, n);
    n = ins_readdir(os, "/lib/modules", &names);
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "/lib/modules/%s", names[i]);
        if (ins_exists(os, p, VD_FS_DIR))
            ins_kernel(os, names[i]);
    }
    vd_fs_names_free(names, n);
    for (size_t i = 0; i < os->o->nkernels; i++) {
        struct vd_inspect_kernel *k = &os->o->kernels[i];
        /* Debian, RHEL, SUSE and Arch-style names */
        static const char *const pre[] = {"/boot/initrd.img-", "/boot/initramfs-", "/boot/initrd-",
                                          "/boot/initramfs-"};
        static const char *const suf[] = {"", ".img", "", ""};
        for (size_t f = 0; f < 4; f++) {
            snprintf(p, sizeof(p), "%s%s%s", pre[f], k->version, suf[f]);
            if (ins_exists(os, p, VD_FS_REG)) {
                k->initrd = vd_ins_str(os->c, p);
                break;
            }
        }
        k->nmodules = ins_modules(os, k->version);
    }
}

/* The default kernel's initramfs only (the one the guest boots; the
 * others are tens of MB each, which over S3 would be most of what
 * inspection reads); the newest kernel when the default is not known. */
static void ins_initramfs_default(struct ins_os *os)
{
    struct vd_inspect_os *o = os->o;
    struct vd_inspect_kernel *pick = NULL;
    for (size_t i = 0; i < o->nkernels; i++)
        if (o->default_kernel[0] && !strcmp(o->kernels[i].version, o->default_kernel))
            pick = &o->kernels[i];
    if (!pick)
        for (size_t i = 0; i < o->nkernels; i++)
            if (!pick || strverscmp(o->kernels[i].version, pick->version) > 0)
                pick = &o->kernels[i];
    for (size_t i = 0; i < o->nkernels; i++) {
        if (os->c->no_initramfs)
            o->kernels[i].initramfs_why = "not read: not asked for";
        else if (&o->kernels[i] == pick)
            ins_initramfs(os, pick);
        else
            o->kernels[i].initramfs_why = "not read: not the default kernel";
    }
}

/* ---- boot loader ---- */

/* BLS entries (/boot/loader/entries/NAME.conf): the saved_entry one, else
 * the highest version, as GRUB's blscfg sorts them. */
static bool ins_bls(struct ins_os *os, const char *saved, char *kver, size_t cap)
{
    char **names;
    size_t n = ins_readdir(os, "/boot/loader/entries", &names);
    bool found = false, exact = false;
    char best[VD_INS_STR] = "";
    for (size_t i = 0; i < n && !exact; i++) {
        if (!ins_suffix(names[i], ".conf"))
            continue;
        char p[512], *d, ver[VD_INS_STR];
        size_t len;
        snprintf(p, sizeof(p), "/boot/loader/entries/%s", names[i]);
        if (ins_read(os, p, INS_MAX_FILE, &d, &len) != 1)
            continue;
        struct vd_ins_bootent e;
        bool ok = vd_ins_bls_entry(d, len, &e, ver, sizeof(ver));
        free(d);
        if (!ok)
            continue;
        if (!ver[0] && !vd_ins_kernel_version(e.kernel, ver, sizeof(ver)))
            continue;
        size_t nl = strlen(names[i]) - 5;
        if (saved && saved[0] && strlen(saved) == nl && !strncmp(saved, names[i], nl)) {
            snprintf(best, sizeof(best), "%s", ver);
            exact = found = true;
        } else if (!found || strverscmp(ver, best) > 0) {
            snprintf(best, sizeof(best), "%s", ver);
            found = true;
        }
    }
    vd_fs_names_free(names, n);
    if (found)
        snprintf(kver, cap, "%s", best);
    return n > 0;
}

/* The version a kernel path boots; a version-less /vmlinuz is a symlink
 * (Debian's / and /boot links) whose target names it. */
static void ins_kernel_of(struct ins_os *os, const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    if (!path[0] || vd_ins_kernel_version(path, out, cap))
        return;
    char full[512], target[512];
    const char *sub;
    /* a grub.cfg on a separate /boot names /vmlinuz-x for /boot/vmlinuz-x */
    snprintf(full, sizeof(full), "%s%s", os->boot && strncmp(path, "/boot/", 6) ? "/boot" : "",
             path);
    struct vd_fs *fs = ins_where(os, full, &sub);
    struct vd_error err = {0};
    if (vd_fs_readlink(fs, sub, target, sizeof(target), &err) == 0)
        vd_ins_kernel_version(target, out, cap);
}

static void ins_bootloader(struct ins_os *os)
{
    static const char *const envs[] = {"/boot/grub/grubenv", "/boot/grub2/grubenv", NULL};
    static const char *const cfgs[] = {"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", NULL};
    static const char *const lsts[] = {"/boot/grub/menu.lst", "/boot/grub/grub.conf", NULL};
    struct vd_inspect_os *o = os->o;
    char saved[VD_INS_STR] = "", kver[VD_INS_STR] = "", *d;
    size_t n;
    for (size_t i = 0; envs[i] && !saved[0]; i++) {
        if (ins_read(os, envs[i], INS_MAX_FILE, &d, &n) == 1) {
            vd_ins_grubenv(d, n, "saved_entry", saved, sizeof(saved));
            free(d);
        }
    }
    for (size_t i = 0; cfgs[i]; i++) {
        if (ins_read(os, cfgs[i], INS_MAX_FILE, &d, &n) != 1)
            continue;
        struct vd_ins_bootent e;
        bool ok = vd_ins_grub_cfg(d, n, saved, &e);
        free(d);
        o->bootloader_cfg = cfgs[i];
        if (e.bls) {
            o->bootloader = "grub2-bls";
            ins_bls(os, saved, kver, sizeof(kver));
        } else {
            o->bootloader = "grub2";
            if (ok)
                ins_kernel_of(os, e.kernel, kver, sizeof(kver));
        }
        o->default_kernel = vd_ins_str(os->c, kver);
        return;
    }
    /* BLS without a grub.cfg that says so (systemd-boot layouts) */
    if (ins_bls(os, saved, kver, sizeof(kver))) {
        o->bootloader = "bls";
        o->bootloader_cfg = "/boot/loader/entries";
        o->default_kernel = vd_ins_str(os->c, kver);
        return;
    }
    for (size_t i = 0; lsts[i]; i++) {
        if (ins_read(os, lsts[i], INS_MAX_FILE, &d, &n) != 1)
            continue;
        struct vd_ins_bootent e;
        if (vd_ins_menu_lst(d, n, 0, &e))
            ins_kernel_of(os, e.kernel, kver, sizeof(kver));
        free(d);
        o->bootloader = "grub-legacy";
        o->bootloader_cfg = lsts[i];
        o->default_kernel = vd_ins_str(os->c, kver);
        return;
    }
}

/* ---- network ---- */

struct ins_net {
    struct ins_os *os;
    const char *file, *stack;
    char srcs[8][VD_INS_STR];
    size_t nsrcs;
};

static int ins_net_cb(void *opaque, const struct vd_ins_net *n)
{
    struct ins_net *st = opaque;
    struct vd_ins_ctx *c = st->os->c;
    struct vd_inspect_os *o = st->os->o;
    if (o->nnets >= INS_MAX_NETS || !ins_grow(c, (void **)&o->nets, o->nnets, sizeof(*o->nets)))
        return 1;
    struct vd_inspect_net *e = &o->nets[o->nnets++];
    e->file = vd_ins_str(c, st->file);
    e->stack = st->stack;
    e->iface = vd_ins_str(c, n->iface);
    e->mac = vd_ins_str(c, n->mac);
    e->dhcp = n->dhcp;
    e->static_addr = n->static_addr;
    return 0;
}

static void ins_net_src(void *opaque, const char *path)
{
    struct ins_net *st = opaque;
    if (st->nsrcs < 8)
        snprintf(st->srcs[st->nsrcs++], VD_INS_STR, "%s", path);
}

enum ins_netfmt { NET_IFUPDOWN, NET_IFCFG, NET_NETPLAN, NET_NM, NET_NETWORKD };

static void ins_net_file(struct ins_os *os, struct ins_net *st, const char *path,
                         enum ins_netfmt fmt)
{
    char *d;
    size_t n;
    if (ins_read(os, path, INS_MAX_FILE, &d, &n) != 1)
        return;
    st->file = path;
    switch (fmt) {
    case NET_IFUPDOWN:
        vd_ins_net_ifupdown(d, n, ins_net_cb, st, ins_net_src, st);
        break;
    case NET_IFCFG:
        vd_ins_net_ifcfg(path, d, n, ins_net_cb, st);
        break;
    case NET_NETPLAN:
        vd_ins_net_netplan(d, n, ins_net_cb, st);
        break;
    case NET_NM:
        vd_ins_net_nmkeyfile(d, n, ins_net_cb, st);
        break;
    case NET_NETWORKD:
        vd_ins_net_networkd(d, n, ins_net_cb, st);
        break;
    }
    free(d);
}

/* Every file of dir whose name passes keep. */
static void ins_net_dir(struct ins_os *os, struct ins_net *st, const char *dir, const char *prefix,
                        const char *suffix, enum ins_netfmt fmt)
{
    char **names;
    size_t n = ins_readdir(os, dir, &names);
    for (size_t i = 0; i < n; i++) {
        if ((prefix && strncmp(names[i], prefix, strlen(prefix))) ||
            (suffix && !ins_suffix(names[i], suffix)))
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        ins_net_file(os, st, p, fmt);
    }
    vd_fs_names_free(names, n);
}

static void ins_network(struct ins_os *os)
{
    struct ins_net st = {.os = os, .stack = "ifupdown"};
    ins_net_file(os, &st, "/etc/network/interfaces", NET_IFUPDOWN);
    /* `source DIR/<star>` and `source-directory DIR`, one level (interfaces(5)) */
    size_t nsrc = st.nsrcs;
    for (size_t i = 0; i < nsrc; i++) {
        char dir[VD_INS_STR];
        snprintf(dir, sizeof(dir), "%s", st.srcs[i]);
        size_t l = strlen(dir);
        if (l >= 2 && !strcmp(dir + l - 2, "/*"))
            dir[l - 2] = '\0';
        if (dir[0] != '/')
            continue;
        if (ins_exists(os, dir, VD_FS_DIR))
            ins_net_dir(os, &st, dir, NULL, NULL, NET_IFUPDOWN);
        else
            ins_net_file(os, &st, dir, NET_IFUPDOWN);
    }
    st.stack = "ifcfg";
    ins_net_dir(os, &st, "/etc/sysconfig/network-scripts", "ifcfg-", NULL, NET_IFCFG);
    st.stack = "wicked";
    ins_net_dir(os, &st, "/etc/sysconfig/network", "ifcfg-", NULL, NET_IFCFG);
    st.stack = "netplan";
    ins_net_dir(os, &st, "/etc/netplan", NULL, ".yaml", NET_NETPLAN);
    st.stack = "networkmanager";
    ins_net_dir(os, &st, "/etc/NetworkManager/system-connections", NULL, NULL, NET_NM);
    st.stack = "networkd";
    ins_net_dir(os, &st, "/etc/systemd/network", NULL, ".network", NET_NETWORKD);

    static const struct {
        const char *path, *name;
    } clients[] = {
        {"/sbin/dhclient", "dhclient"},
        {"/usr/sbin/dhclient", "dhclient"},
        {"/sbin/dhcpcd", "dhcpcd"},
        {"/usr/sbin/dhcpcd", "dhcpcd"},
        {"/usr/sbin/NetworkManager", "NetworkManager"},
        {"/usr/lib/systemd/systemd-networkd", "systemd-networkd"},
        {"/lib/systemd/systemd-networkd", "systemd-networkd"},
        {"/sbin/udhcpc", "udhcpc"},
        {"/usr/sbin/udhcpc", "udhcpc"},
        {"/usr/sbin/wicked", "wicked"},
    };
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
        if (ins_exists(os, clients[i].path, VD_FS_REG)) {
            os->o->dhcp_client = true;
            os->o->dhcp_client_name = clients[i].name;
            return;
        }
    }
}

/* ---- boot mode ---- */

struct ins_boot {
    enum vd_boot_mode mode;
    const char *esp_dev, *bootloader_disk;
    bool fallback;
};

static void ins_boot_mode(struct vd_ins_ctx *c, struct ins_boot *bm)
{
    bool bios = false, uefi = false;
    bm->esp_dev = bm->bootloader_disk = "";
    for (size_t i = 0; i < c->ndevs; i++) {
        const struct vd_bdev *b = c->devs[i].b;
        if (b->kind == VD_BDEV_DISK && !bios) {
            /* MBR boot code: bytes 0..439 (the rest is the disk signature
             * and the table). sfdisk and partitioners leave them zero; a
             * boot loader (GRUB's boot.img, Windows' MBR) fills them. */
            unsigned char s0[512];
            struct vd_error err = {0};
            if (b->size >= 512 && vd_bdev_pread(b, s0, 512, 0, &err) == 0 && s0[510] == 0x55 &&
                s0[511] == 0xaa) {
                for (size_t k = 0; k < 440; k++)
                    if (s0[k]) {
                        bios = true;
                        bm->bootloader_disk = vd_ins_str(c, b->name);
                        break;
                    }
            }
        }
        if (b->kind != VD_BDEV_PART || !b->part_type)
            continue;
        if (!strcasecmp(b->part_type, BIOS_BOOT_GUID)) {
            for (size_t k = 0; k < c->ndevs && !bios; k++)
                if (c->devs[k].b->kind == VD_BDEV_DISK && c->devs[k].b->disk == b->disk)
                    bm->bootloader_disk = vd_ins_str(c, c->devs[k].b->name);
            bios = true;
        }
        bool esp = !strcasecmp(b->part_type, ESP_GUID) || !strcasecmp(b->part_type, "0xef");
        if (!esp || !c->devs[i].fs)
            continue;
        struct vd_fs_stat st;
        struct vd_error err = {0};
        if (vd_fs_stat(c->devs[i].fs, "/EFI", true, &st, &err) < 0 || st.type != VD_FS_DIR)
            continue;
        bool fb = vd_fs_stat(c->devs[i].fs, "/EFI/BOOT/BOOTX64.EFI", true, &st, &err) == 0 &&
                  st.type == VD_FS_REG;
        if (!uefi || (fb && !bm->fallback)) {
            bm->esp_dev = vd_ins_str(c, b->name);
            bm->fallback = fb;
        }
        uefi = true;
    }
    bm->mode = bios && uefi ? VD_BOOT_BOTH
               : bios       ? VD_BOOT_BIOS
               : uefi       ? VD_BOOT_UEFI
                            : VD_BOOT_UNKNOWN;
}

/* ---- the driver ---- */

static int ins_dev_pread(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    return vd_bdev_pread(opaque, buf, len, off, err);
}

static struct vd_inspect_os *ins_new_os(struct vd_ins_ctx *c, struct ins_dev *d)
{
    if (!ins_grow(c, (void **)&c->pub.oss, c->pub.noss, sizeof(*c->pub.oss)))
        return NULL;
    struct vd_inspect_os *o = &c->pub.oss[c->pub.noss++];
    memset(o, 0, sizeof(*o));
    o->type = o->distro = o->product = o->version = o->arch = o->arch_from = o->hostname = "";
    o->default_kernel = o->bootloader = o->bootloader_cfg = o->dhcp_client_name = "";
    o->esp_dev = o->bootloader_disk = "";
    o->win_build = o->win_edition = o->win_install = o->win_language = o->win_systemroot = "";
    o->win_pagefile = "";
    o->root_dev = vd_ins_str(c, d->b->name);
    o->root_fstype = vd_ins_str(c, vd_fs_type(d->fs));
    o->free_bytes = d->fsi != SIZE_MAX ? c->pub.fss[d->fsi].free : VD_INSPECT_UNKNOWN;
    return o;
}

static void ins_linux(struct vd_ins_ctx *c, struct ins_dev *d)
{
    struct vd_inspect_os *o = ins_new_os(c, d);
    if (!o)
        return;
    struct ins_os os = {.c = c, .o = o, .root = d};
    o->type = "linux";
    ins_release(&os);
    ins_hostname(&os);
    ins_arch(&os);
    ins_fstab(&os);
    ins_kernels(&os);
    ins_bootloader(&os);
    ins_initramfs_default(&os);
    ins_network(&os);
}

/* Why a device's files are not read, or NULL to try. */
static const char *ins_skip_reason(const struct vd_bdev *b)
{
    if (b->kind == VD_BDEV_LV && b->unsupported)
        return b->unsupported;
    if (!strcmp(b->fstype, "swap"))
        return "swap space holds no files";
    if (!strcmp(b->fstype, "LVM2_member"))
        return "an LVM physical volume: its logical volumes are listed as devices";
    if (!strcmp(b->fstype, "crypto_LUKS"))
        return "encrypted (LUKS): no key";
    if (!strcmp(b->fstype, "linux_raid_member"))
        return "a Linux software RAID member: md arrays are not assembled";
    return NULL;
}

int vd_inspect_guest(struct vd_guest *g, struct vd_inspect **out, struct vd_error *err)
{
    return vd_inspect_guest_opts(g, NULL, out, err);
}

int vd_inspect_guest_opts(struct vd_guest *g, const struct vd_inspect_opts *opts,
                          struct vd_inspect **out, struct vd_error *err)
{
    struct vd_ins_ctx *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return vd_err(err, -ENOMEM, "inspect: out of memory");
    c->g = g;
    c->no_initramfs = opts && opts->no_initramfs;
    size_t n = vd_guest_ndevs(g);
    c->devs = calloc(n ? n : 1, sizeof(*c->devs));
    c->bdevs = calloc(n ? n : 1, sizeof(*c->bdevs));
    if (!c->devs || !c->bdevs) {
        free(c->devs);
        free(c->bdevs);
        free(c);
        return vd_err(err, -ENOMEM, "inspect: out of memory");
    }
    c->ndevs = n;
    /* What the device scan could not read (a missing PV...) comes first. */
    for (size_t i = 0; i < vd_guest_nwarnings(g); i++)
        vd_ins_warn(c, "%s", vd_guest_warning(g, i));
    for (size_t i = 0; i < n; i++) {
        struct ins_dev *d = &c->devs[i];
        d->b = c->bdevs[i] = vd_guest_dev(g, i);
        d->fsi = SIZE_MAX;
        d->fdev = (struct vd_fs_dev){
            .name = d->b->name, .size = d->b->size, .opaque = (void *)d->b, .pread = ins_dev_pread};
    }
    for (size_t i = 0; i < n; i++) {
        struct ins_dev *d = &c->devs[i];
        const struct vd_bdev *b = d->b;
        if (!b->fstype[0] && !(b->kind == VD_BDEV_LV && b->unsupported))
            continue;
        if (!ins_grow(c, (void **)&c->pub.fss, c->pub.nfss, sizeof(*c->pub.fss)))
            break;
        struct vd_inspect_fs *f = &c->pub.fss[c->pub.nfss];
        d->fsi = c->pub.nfss++;
        memset(f, 0, sizeof(*f));
        f->dev = vd_ins_str(c, b->name);
        f->type = vd_ins_str(c, b->fstype);
        f->uuid = vd_ins_str(c, b->uuid);
        f->label = vd_ins_str(c, b->label);
        f->size = b->size;
        f->free = VD_INSPECT_UNKNOWN;
        f->not_inspected = ins_skip_reason(b);
        if (f->not_inspected)
            f->not_inspected = vd_ins_str(c, f->not_inspected);
        if (f->not_inspected)
            continue;
        struct vd_error e = {0};
        int rc = vd_fs_open(&d->fdev, b->fstype, &d->fs, &e);
        if (rc < 0) {
            d->fs = NULL;
            f->not_inspected = vd_ins_str(c, e.msg[0] ? e.msg : strerror(-rc));
            if (rc != -ENOTSUP)
                vd_ins_warn(c, "%s: %s", b->name, e.msg);
            continue;
        }
        uint64_t total, avail;
        vd_err_clear(&e);
        if (vd_fs_statfs(d->fs, &total, &avail, &e) == 0) {
            f->size = total;
            f->free = avail;
        }
    }
    struct ins_boot bm = {0};
    ins_boot_mode(c, &bm);
    for (size_t i = 0; i < n; i++) {
        struct ins_dev *d = &c->devs[i];
        if (!d->fs)
            continue;
        size_t before = c->pub.noss;
        if (vd_ins_is_windows(d->fs)) {
            struct vd_inspect_os *o = ins_new_os(c, d);
            if (o)
                vd_ins_windows(c, d->fs, o);
        } else if (ins_is_linux(d->fs)) {
            ins_linux(c, d);
        }
        for (size_t k = before; k < c->pub.noss; k++) {
            c->pub.oss[k].boot_mode = bm.mode;
            c->pub.oss[k].esp_dev = bm.esp_dev;
            c->pub.oss[k].uefi_fallback = bm.fallback;
            c->pub.oss[k].bootloader_disk = bm.bootloader_disk;
        }
    }
    for (size_t i = 0; i < n; i++)
        vd_fs_close(c->devs[i].fs);
    free(c->devs);
    free(c->bdevs);
    c->devs = NULL;
    c->bdevs = NULL;
    if (c->oom) {
        vd_inspect_free(&c->pub);
        return vd_err(err, -ENOMEM, "inspect: out of memory");
    }
    *out = &c->pub;
    return 0;
}

/* ---- JSON (docs/inspect.md) ---- */

static const char *ins_boot_name(enum vd_boot_mode m)
{
    switch (m) {
    case VD_BOOT_BIOS:
        return "bios";
    case VD_BOOT_UEFI:
        return "uefi";
    case VD_BOOT_BOTH:
        return "both";
    default:
        return "unknown";
    }
}

const char *vd_inspect_boot_mode_name(enum vd_boot_mode m)
{
    return ins_boot_name(m);
}

static void ins_json_u64_or_null(struct vd_json *j, const char *key, uint64_t v)
{
    if (v == VD_INSPECT_UNKNOWN)
        vd_json_null(j, key);
    else
        vd_json_u64(j, key, v);
}

static void ins_json_strs(struct vd_json *j, const char *key, const char *const *v, size_t n)
{
    vd_json_arr_begin(j, key);
    for (size_t i = 0; i < n; i++)
        vd_json_str(j, NULL, v[i]);
    vd_json_arr_end(j);
}

static void ins_json_os(struct vd_json *j, const struct vd_inspect_os *o)
{
    vd_json_obj_begin(j, NULL);
    vd_json_str(j, "type", o->type);
    vd_json_str(j, "distro", o->distro);
    vd_json_str(j, "product", o->product);
    vd_json_str(j, "version", o->version);
    vd_json_u64(j, "major", o->major);
    vd_json_u64(j, "minor", o->minor);
    vd_json_str(j, "arch", o->arch);
    vd_json_str(j, "arch_from", o->arch_from);
    vd_json_str(j, "hostname", o->hostname);
    vd_json_str(j, "root_dev", o->root_dev);
    vd_json_str(j, "root_fstype", o->root_fstype);
    ins_json_u64_or_null(j, "root_free", o->free_bytes);
    vd_json_obj_begin(j, "boot");
    vd_json_str(j, "mode", ins_boot_name(o->boot_mode));
    vd_json_str(j, "bootloader_disk", o->bootloader_disk);
    vd_json_str(j, "esp_dev", o->esp_dev);
    vd_json_bool(j, "uefi_fallback", o->uefi_fallback);
    if (!strcmp(o->type, "linux")) {
        vd_json_str(j, "bootloader", o->bootloader);
        vd_json_str(j, "bootloader_cfg", o->bootloader_cfg);
        vd_json_str(j, "default_kernel", o->default_kernel);
    }
    vd_json_obj_end(j);
    if (!strcmp(o->type, "windows")) {
        vd_json_obj_begin(j, "windows");
        vd_json_str(j, "build", o->win_build);
        vd_json_str(j, "edition", o->win_edition);
        vd_json_str(j, "installation_type", o->win_install);
        vd_json_str(j, "language", o->win_language);
        vd_json_str(j, "systemroot", o->win_systemroot);
        ins_json_strs(j, "boot_start_drivers", o->win_boot_drivers, o->nwin_boot_drivers);
        vd_json_bool(j, "dhcp_enabled", o->win_dhcp_enabled);
        vd_json_str(j, "pagefile", o->win_pagefile);
        vd_json_obj_end(j);
        vd_json_obj_end(j);
        return;
    }
    vd_json_bool(j, "fstab_read", o->fstab_read);
    vd_json_arr_begin(j, "mounts");
    for (size_t i = 0; i < o->nmounts; i++) {
        const struct vd_inspect_mount *m = &o->mounts[i];
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "spec", m->spec);
        vd_json_str(j, "mountpoint", m->mountpoint);
        vd_json_str(j, "type", m->type);
        vd_json_str(j, "options", m->options);
        vd_json_str(j, "dev", m->dev);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_arr_begin(j, "kernels");
    for (size_t i = 0; i < o->nkernels; i++) {
        const struct vd_inspect_kernel *k = &o->kernels[i];
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "version", k->version);
        vd_json_str(j, "path", k->path);
        vd_json_str(j, "initrd", k->initrd);
        vd_json_u64(j, "modules", k->nmodules);
        vd_json_bool(j, "initramfs_read", k->initramfs_read);
        if (!k->initramfs_read)
            vd_json_str(j, "initramfs_why", k->initramfs_why);
        ins_json_strs(j, "drivers", k->initramfs_drivers, k->ninitramfs_drivers);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_arr_begin(j, "network");
    for (size_t i = 0; i < o->nnets; i++) {
        const struct vd_inspect_net *e = &o->nets[i];
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "file", e->file);
        vd_json_str(j, "stack", e->stack);
        vd_json_str(j, "iface", e->iface);
        vd_json_str(j, "mac", e->mac);
        vd_json_bool(j, "dhcp", e->dhcp);
        vd_json_bool(j, "static", e->static_addr);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_bool(j, "dhcp_client", o->dhcp_client);
    vd_json_str(j, "dhcp_client_name", o->dhcp_client_name);
    vd_json_obj_end(j);
}

int vd_inspect_json(const struct vd_inspect *r, char **out, struct vd_error *err)
{
    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    vd_json_arr_begin(&j, "filesystems");
    for (size_t i = 0; i < r->nfss; i++) {
        const struct vd_inspect_fs *f = &r->fss[i];
        vd_json_obj_begin(&j, NULL);
        vd_json_str(&j, "dev", f->dev);
        vd_json_str(&j, "type", f->type);
        vd_json_str(&j, "uuid", f->uuid);
        vd_json_str(&j, "label", f->label);
        vd_json_u64(&j, "size", f->size);
        ins_json_u64_or_null(&j, "free", f->free);
        vd_json_str(&j, "not_inspected", f->not_inspected);
        vd_json_obj_end(&j);
    }
    vd_json_arr_end(&j);
    vd_json_arr_begin(&j, "operating_systems");
    for (size_t i = 0; i < r->noss; i++)
        ins_json_os(&j, &r->oss[i]);
    vd_json_arr_end(&j);
    ins_json_strs(&j, "warnings", r->warnings, r->nwarnings);
    vd_json_obj_end(&j);
    *out = vd_json_finish(&j);
    if (!*out)
        return vd_err(err, -ENOMEM, "inspect: out of memory writing JSON");
    return 0;
}
