/*
 * `vdisk preflight --target aws`: what AWS VM Import/Export would refuse,
 * read offline from the facts collect.c gathered and the guest inspection.
 * Each check follows a sentence of the VM Import/Export User Guide; that
 * sentence, its URL, the severity and the fix are listed per check in
 * docs/preflight.md. The table of supported distributions, kernels, file
 * systems and limits is data (data/aws-vmimport.txt, table.c).
 *
 * Severity: VD_PF_FAIL when AWS refuses the import (its error text given
 * where AWS documents one), VD_PF_RISK when the import may pass but the
 * instance may not boot or be reachable, VD_PF_NOTE otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/checked.h"
#include "common/json.h"
#include "preflight/preflight_int.h"

#define AWS_FOOTERS  "ClientError: Footers not identical"
#define AWS_GRAINS   "ClientError: Uncompressed data has invalid length"
#define AWS_KERNEL   "ClientError: Unsupported kernel version"
#define AWS_NOKERNEL "ClientError: Unable to determine kernel version"
#define AWS_FSTAB    "ClientError: Invalid configuration - Could not read fstab"
#define AWS_MULTI    "ClientError: Unsupported configuration - Multiple directories found"
#define AWS_LVM      "ClientError: Unsupported configuration - Logical volume group activation failed"
#define AWS_NOBOOT   "Client.Unsupported: No bootable partition found."
#define FIX_FIXUP                                                                                  \
    "run vdisk fixup on the image's view (vdiskfs -o rw, or -o overlay=FILE to keep the image "    \
    "untouched)"
#define ESP_GUID "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"

struct pf_ctx {
    const struct pf_facts *f;
    const struct vd_inspect *ins;
    const struct pf_table *t;
    bool snapshot; /* route import-snapshot */
    struct vd_preflight *p;
    size_t cap, pcap;
    int err; /* -ENOMEM once memory ran out */
};

/* ---- version helpers ---- */

int pf_version_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            unsigned long x = strtoul(a, (char **)&a, 10), y = strtoul(b, (char **)&b, 10);
            if (x != y)
                return x < y ? -1 : 1;
        } else {
            size_t na = strcspn(a, "."), nb = strcspn(b, ".");
            int c = strncmp(a, b, na < nb ? na : nb);
            if (c || na != nb)
                return c ? c : na < nb ? -1 : 1;
            a += na;
            b += nb;
        }
        /* only the common leading components count: stop at either's end */
        if (*a != '.' || *b != '.')
            return 0;
        a++;
        b++;
    }
    return 0;
}

bool pf_kernel_match(const char *k, const char *pat)
{
    if (pat[0] == '~')
        return strstr(k, pat + 1) != NULL;
    size_t n = strlen(pat);
    return n && !strncmp(k, pat, n) && !isdigit((unsigned char)k[n]);
}

/* ---- findings ---- */

static char *vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

static void add(struct pf_ctx *c, const char *id, enum vd_pf_severity sev, const char *aws,
                const char *fix, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(struct pf_ctx *c, const char *id, enum vd_pf_severity sev, const char *aws,
                const char *fix, const char *fmt, ...)
{
    if (c->err)
        return;
    struct vd_preflight *p = c->p;
    if (p->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        struct vd_pf_finding *nf = realloc(p->findings, nc * sizeof(*nf));
        if (!nf) {
            c->err = -ENOMEM;
            return;
        }
        p->findings = nf;
        c->cap = nc;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = vfmt(fmt, ap);
    va_end(ap);
    struct vd_pf_finding *x = &p->findings[p->n];
    x->check = strdup(id);
    x->severity = sev;
    x->message = msg;
    x->aws_text = strdup(aws ? aws : "");
    x->fix = strdup(fix ? fix : "");
    p->n++;
    if (!x->check || !x->message || !x->aws_text || !x->fix)
        c->err = -ENOMEM;
}

static size_t count(const struct pf_ctx *c, const char *id)
{
    size_t n = 0;
    for (size_t i = 0; i < c->p->n; i++)
        n += !strcmp(c->p->findings[i].check, id);
    return n;
}

/* A check that ran: listed as passed when it found nothing. */
static void ran(struct pf_ctx *c, const char *id)
{
    if (c->err || count(c, id))
        return;
    struct vd_preflight *p = c->p;
    for (size_t i = 0; i < p->npassed; i++)
        if (!strcmp(p->passed[i], id))
            return;
    if (p->npassed == c->pcap) {
        size_t nc = c->pcap ? c->pcap * 2 : 16;
        const char **np = realloc(p->passed, nc * sizeof(*np));
        if (!np) {
            c->err = -ENOMEM;
            return;
        }
        p->passed = np;
        c->pcap = nc;
    }
    if (!(p->passed[p->npassed] = strdup(id)))
        c->err = -ENOMEM;
    else
        p->npassed++;
}

static const char *s_or(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

static double tib(uint64_t b)
{
    return (double)b / (1024.0 * 1024 * 1024 * 1024);
}

/* ---- container: format, integrity, size, count ---- */

static bool any_format(const struct pf_facts *f, const char *fmt)
{
    for (size_t i = 0; i < f->ndisks; i++)
        if (f->disks[i].format && !strcmp(f->disks[i].format, fmt))
            return true;
    return false;
}

static void check_container(struct pf_ctx *c)
{
    const struct pf_facts *f = c->f;
    for (size_t i = 0; i < f->ndisks; i++) {
        const struct pf_disk *d = &f->disks[i];
        const char *sub = s_or(d->subformat, "");
        if (strcmp(d->format, "vmdk") && strcmp(d->format, "vhd") && strcmp(d->format, "vhdx") &&
            strcmp(d->format, "raw"))
            add(c, "container-format", VD_PF_FAIL, "",
                "vdisk convert -O vmdk SOURCE OUT.vmdk (stream-optimized)",
                "%s: %s: format %s is not one AWS imports (OVA, stream-optimized VMDK, VHD, "
                "VHDX, raw)",
                d->view, d->file, d->format);
        if (d->has_backing || !strcasecmp(sub, "differencing"))
            add(c, "container-format", VD_PF_FAIL, !strcmp(d->format, "vhd") ? AWS_FOOTERS : "",
                "vdisk convert SOURCE OUT (writes one self-contained image with the parent's "
                "data merged)",
                "%s: %s: a %s image with a parent: AWS imports self-contained images only, "
                "not differencing or snapshot disks",
                d->view, d->file, d->format);
        if (!strcmp(d->format, "vmdk") && !strcasecmp(sub, "seSparse"))
            add(c, "container-format", VD_PF_FAIL, "",
                "vdisk convert -O vmdk SOURCE OUT.vmdk (stream-optimized)",
                "%s: %s: VMDK subformat seSparse: AWS does not support the SEsparse format",
                d->view, d->file);
        else if (!strcmp(d->format, "vmdk") && strcmp(sub, "streamOptimized"))
            add(c, "vmdk-stream-optimized", VD_PF_RISK, "",
                "vdisk convert -O vmdk -o vmdk_type=streamOptimized SOURCE OUT.vmdk",
                "%s: %s: VMDK subformat %s: AWS lists stream-optimized VMDK as the VMDK it "
                "imports",
                d->view, d->file, s_or(sub, "(unknown)"));
    }
    ran(c, "container-format");
    if (any_format(f, "vmdk"))
        ran(c, "vmdk-stream-optimized");

    bool vmdk_grain_issue = false;
    for (size_t i = 0; i < f->nproblems; i++) {
        const struct pf_problem *pr = &f->problems[i];
        if (!pr->corrupt) {
            add(c, "container-integrity", VD_PF_NOTE, "", "",
                "%s: %s (leaked space: harmless to the import)", pr->file, pr->text);
        } else if (strstr(pr->text, "vhd:") == pr->text && strstr(pr->text, "footer")) {
            add(c, "vhd-footers", VD_PF_FAIL, AWS_FOOTERS,
                "export the VM again, or vdisk convert -O vhd SOURCE OUT.vhd (writes both "
                "footers alike)",
                "%s: %s", pr->file, pr->text);
        } else if (pr->deep && strstr(pr->text, "vmdk:") == pr->text) {
            vmdk_grain_issue = true;
            add(c, "vmdk-grains", VD_PF_FAIL, AWS_GRAINS,
                "export the VM again (the VMDK is corrupt); vdisk check SOURCE lists every "
                "problem",
                "%s: %s", pr->file, pr->text);
        } else {
            add(c, "container-integrity", VD_PF_FAIL, "",
                "export the VM again; vdisk check SOURCE lists every problem", "%s: %s", pr->file,
                pr->text);
        }
    }
    if (f->checked) {
        ran(c, "container-integrity");
        if (any_format(f, "vhd"))
            ran(c, "vhd-footers");
    } else if (f->check_skip) {
        add(c, "container-integrity", VD_PF_NOTE, "",
            "vdisk preflight --deep ... (or vdisk check SOURCE)",
            "structural check not run: for a stream-optimized VMDK or an OVA it reads the whole "
            "image (%" PRIu64 " bytes: every grain marker, the manifest's digests); run with "
            "--deep",
            f->check_skip);
    }
    if (f->deep && !vmdk_grain_issue)
        ran(c, "vmdk-grains");
    else if (!f->deep && f->deep_skip)
        add(c, "vmdk-grains", VD_PF_NOTE, "", "vdisk preflight --deep ... (reads the whole image)",
            "compressed grains not decompressed: that reads the whole image (%" PRIu64
            " bytes); run with --deep to check that each inflates to its length",
            f->deep_skip);

    for (size_t i = 0; i < f->ndisks; i++) {
        const struct pf_disk *d = &f->disks[i];
        if (d->size >= c->t->disk_max)
            add(c, "disk-size", VD_PF_FAIL, "",
                "shrink the disk's file systems and partitions, "
                "then the disk, below the limit",
                "%s: %s: virtual size %" PRIu64 " bytes (%.2f TiB): AWS imports disks of less "
                "than %.0f TiB",
                d->view, d->file, d->size, tib(d->size), tib(c->t->disk_max));
        else if (c->t->manifest_above && d->size > c->t->manifest_above)
            add(c, "disk-size", VD_PF_NOTE, "",
                "import it with a manifest file (ImportImage's disk container Url to a manifest)",
                "%s: %s: virtual size %" PRIu64 " bytes (%.2f TiB): above %.0f TiB AWS needs "
                "a manifest file",
                d->view, d->file, d->size, tib(d->size), tib(c->t->manifest_above));
    }
    ran(c, "disk-size");
    if (!c->snapshot && f->ndisks > c->t->max_volumes)
        add(c, "volume-count", VD_PF_FAIL, "",
            "import the other disks one by one with import-snapshot",
            "the sources hold %zu disks: an import task fails for VMs with more than %u volumes",
            f->ndisks, c->t->max_volumes);
    ran(c, "volume-count");
}

/* ---- guest devices ---- */

static const struct pf_dev *find_dev(const struct pf_facts *f, const char *name)
{
    for (size_t i = 0; name && i < f->ndevs; i++)
        if (!strcmp(f->devs[i].name, name))
            return &f->devs[i];
    return NULL;
}

/* Disk number of a device ("disk2-p1" -> 2, "disk" -> 1), from the device
 * list, else from its name; 0 if unknown. */
static unsigned dev_disk(const struct pf_facts *f, const char *name)
{
    const struct pf_dev *d = find_dev(f, name);
    if (d)
        return d->disk;
    if (!name || strncmp(name, "disk", 4))
        return 0;
    if (!isdigit((unsigned char)name[4]))
        return 1;
    return (unsigned)strtoul(name + 4, NULL, 10);
}

static void check_encrypted(struct pf_ctx *c)
{
    for (size_t i = 0; i < c->f->ndevs; i++) {
        const struct pf_dev *d = &c->f->devs[i];
        if (d->fstype && (!strcmp(d->fstype, "crypto_LUKS") || !strcmp(d->fstype, "BitLocker")))
            add(c, "encrypted-volume", VD_PF_FAIL, "",
                "decrypt the volume before export (or leave that disk out)",
                "%s: %s (an encrypted volume): AWS does not import VMs with encrypted volumes",
                d->name, d->fstype);
    }
    for (size_t i = 0; c->ins && i < c->ins->nfss; i++) {
        const struct vd_inspect_fs *s = &c->ins->fss[i];
        if (find_dev(c->f, s->dev) || !s->type)
            continue;
        if (!strcmp(s->type, "crypto_LUKS") || !strcmp(s->type, "BitLocker"))
            add(c, "encrypted-volume", VD_PF_FAIL, "",
                "decrypt the volume before export (or leave that disk out)",
                "%s: %s (an encrypted volume): AWS does not import VMs with encrypted volumes",
                s->dev, s->type);
    }
    ran(c, "encrypted-volume");
}

static void check_lvm(struct pf_ctx *c)
{
    for (size_t i = 0; i < c->f->ndevs; i++) {
        const struct pf_dev *d = &c->f->devs[i];
        if (!d->lv || !d->unsupported)
            continue;
        if (strstr(d->unsupported, "missing")) {
            add(c, "lvm", VD_PF_FAIL, AWS_LVM,
                "import every disk that holds a physical volume of the group (all the VM's "
                "disks, e.g. its OVA)",
                "%s: volume group %s cannot be activated: %s", d->name, s_or(d->vg, "?"),
                d->unsupported);
            continue;
        }
        /* Readable by AWS perhaps, not by us: say so when the guest needs it. */
        const char *used = NULL;
        for (size_t k = 0; c->ins && k < c->ins->noss && !used; k++) {
            const struct vd_inspect_os *o = &c->ins->oss[k];
            if (o->root_dev && !strcmp(o->root_dev, d->name))
                used = "/";
            for (size_t m = 0; m < o->nmounts && !used; m++)
                if (o->mounts[m].dev && !strcmp(o->mounts[m].dev, d->name))
                    used = o->mounts[m].mountpoint;
        }
        if (used)
            add(c, "lvm", VD_PF_RISK, "",
                "convert it to a linear volume (lvconvert) before export, or check it in the "
                "source VM",
                "%s: logical volume (segment type %s) holds %s, and is not read here: %s", d->name,
                s_or(d->segtype, "?"), used, d->unsupported);
    }
    ran(c, "lvm");
}

/* ---- operating systems ---- */

static bool in_list(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

static const struct vd_inspect_kernel *default_kernel(const struct vd_inspect_os *o)
{
    for (size_t i = 0; o->default_kernel && *o->default_kernel && i < o->nkernels; i++)
        if (!strcmp(o->kernels[i].version, o->default_kernel))
            return &o->kernels[i];
    return NULL;
}

static void check_linux_table(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where)
{
    const struct pf_table *t = c->t;
    enum vd_pf_severity sev = c->snapshot ? VD_PF_NOTE : VD_PF_FAIL;
    const char *distro = s_or(o->distro, "");
    const char *ver = s_or(o->version, "");
    const char *name = NULL;
    char ranges[512] = "";
    size_t rl = 0;
    const struct pf_linux_row *rows[64];
    size_t nrows = 0;
    for (size_t i = 0; i < t->nlinux; i++) {
        const struct pf_linux_row *r = &t->linux_rows[i];
        if (strcmp(r->id, distro))
            continue;
        name = r->name;
        if (rl < sizeof(ranges))
            rl += (size_t)snprintf(ranges + rl, sizeof(ranges) - rl, "%s%s%s%s", rl ? ", " : "",
                                   r->vmin, strcmp(r->vmin, r->vmax) ? "-" : "",
                                   strcmp(r->vmin, r->vmax) ? r->vmax : "");
        if (*ver && pf_version_cmp(ver, r->vmin) >= 0 && pf_version_cmp(ver, r->vmax) <= 0 &&
            nrows < sizeof(rows) / sizeof(rows[0]))
            rows[nrows++] = r;
    }
    const char *fix = c->snapshot ? ""
                                  : "use a distribution and version in AWS's table, or import "
                                    "the disk with import-snapshot (no OS check)";
    if (!name) {
        add(c, "os-supported", sev, "", fix,
            "%s: /etc/os-release: ID=%s (%s) is not a distribution AWS VM Import supports", where,
            s_or(distro, "(none)"), s_or(o->product, "unknown"));
        return;
    }
    if (!*ver) {
        add(c, "os-supported", VD_PF_RISK, "", "",
            "%s: /etc/os-release: no VERSION_ID: cannot tell whether this %s is one AWS lists "
            "(%s)",
            where, name, ranges);
        return;
    }
    if (!nrows) {
        add(c, "os-supported", sev, "", fix,
            "%s: /etc/os-release: %s %s is not in AWS's table (%s: %s)", where, name, ver, name,
            ranges);
        return;
    }
    ran(c, "os-supported");

    /* The kernel AWS checks is the one the guest boots: the default entry. */
    const char *kfix = c->snapshot ? ""
                                   : "install a kernel AWS lists and make it the default boot "
                                     "entry, or import with import-snapshot (no kernel check)";
    if (!o->nkernels) {
        add(c, "kernel-supported", sev, AWS_NOKERNEL, kfix, "%s: no kernel found (/boot/vmlinuz-*)",
            where);
        return;
    }
    char want[256] = "";
    size_t wl = 0;
    for (size_t i = 0; i < nrows; i++)
        for (size_t k = 0; k < rows[i]->nkernels && wl < sizeof(want); k++)
            wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%s%s", wl ? ", " : "",
                                   rows[i]->kernels[k]);
    const struct vd_inspect_kernel *dk = default_kernel(o);
    for (size_t i = 0; i < o->nkernels; i++) {
        const struct vd_inspect_kernel *k = dk ? dk : &o->kernels[i];
        bool ok = false;
        for (size_t r = 0; r < nrows && !ok; r++)
            for (size_t j = 0; j < rows[r]->nkernels && !ok; j++)
                ok = pf_kernel_match(k->version, rows[r]->kernels[j]);
        if (!ok)
            add(c, "kernel-supported", sev, AWS_KERNEL, kfix,
                "%s: %s: kernel %s%s is not one AWS lists for %s %s (%s)", where,
                s_or(k->path, "/boot"), k->version, dk ? " (the default boot entry)" : "", name,
                ver, want);
        if (dk)
            break;
    }
    ran(c, "kernel-supported");
}

static const struct vd_inspect_mount *root_mount(const struct vd_inspect_os *o)
{
    for (size_t i = 0; i < o->nmounts; i++)
        if (o->mounts[i].mountpoint && !strcmp(o->mounts[i].mountpoint, "/"))
            return &o->mounts[i];
    return NULL;
}

static void check_rootfs(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where,
                         bool win)
{
    const char *fs = s_or(o->root_fstype, "");
    char *const *ok = win ? c->t->windows_fs : c->t->linux_fs;
    size_t nok = win ? c->t->nwindows_fs : c->t->nlinux_fs;
    char list[256] = "";
    size_t l = 0;
    for (size_t i = 0; i < nok && l < sizeof(list); i++)
        l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", ok[i]);
    if (!*fs) {
        add(c, "root-fs", VD_PF_RISK, "", "", "%s: the root file system's type is unknown", where);
        return;
    }
    if (!in_list(ok, nok, fs)) {
        add(c, "root-fs", VD_PF_FAIL, "", "move the root file system to a supported type",
            "%s: root file system is %s: AWS imports %s root file systems on %s", where, fs,
            win ? "Windows" : "Linux", list);
        return;
    }
    if (!strcmp(fs, "btrfs")) {
        const struct vd_inspect_mount *m = root_mount(o);
        const char *sv = m && m->options ? strstr(m->options, "subvol") : NULL;
        if (sv)
            add(c, "root-fs", VD_PF_FAIL, "",
                "make / the btrfs top-level volume (or move it to ext4 or XFS)",
                "%s: root is a btrfs subvolume (/etc/fstab options %s): AWS does not support "
                "Btrfs subvolumes",
                where, m->options);
        else
            add(c, "root-fs", VD_PF_RISK, "",
                "check for subvolumes in the source VM (btrfs "
                "subvolume list /)",
                "%s: root file system is btrfs, which is not read here: AWS does not support "
                "Btrfs subvolumes, and none can be ruled out",
                where);
        return;
    }
    ran(c, "root-fs");
}

static bool has_esp(const struct pf_facts *f)
{
    for (size_t i = 0; i < f->ndevs; i++)
        if (f->devs[i].fstype && !strcmp(f->devs[i].fstype, "vfat") && f->devs[i].name &&
            f->devs[i].part_type && !strcasecmp(f->devs[i].part_type, ESP_GUID))
            return true;
    return false;
}

static void check_boot(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where, bool win)
{
    bool uefi = o->boot_mode == VD_BOOT_UEFI ||
                (o->boot_mode == VD_BOOT_UNKNOWN && has_esp(c->f) && !o->uefi_fallback);
    if (!win && uefi && !o->uefi_fallback)
        add(c, "uefi-fallback", VD_PF_FAIL, "",
            "install the boot loader as the fallback too (grub-install --removable, or copy "
            "the distribution's shimx64.efi/grubx64.efi to EFI/BOOT/BOOTX64.EFI)",
            "%s: the guest boots with UEFI but %s holds no EFI/BOOT/BOOTX64.EFI: AWS needs that "
            "fallback loader on the EFI System Partition",
            where, s_or(o->esp_dev, "its EFI System Partition"));
    else if (o->boot_mode == VD_BOOT_UNKNOWN && !uefi)
        add(c, "boot-mode", VD_PF_RISK, AWS_NOBOOT,
            "install a boot loader (GRUB in the MBR, or an EFI System Partition with "
            "EFI/BOOT/BOOTX64.EFI)",
            "%s: no boot loader found: no BIOS boot code on the disks and no EFI System "
            "Partition",
            where);
    else if (o->boot_mode == VD_BOOT_UEFI)
        add(c, "boot-mode", VD_PF_NOTE, "", "import with --boot-mode uefi",
            "%s: the guest boots with UEFI only (%s)", where, s_or(o->esp_dev, "ESP"));
    if (!win) {
        ran(c, "uefi-fallback");
        const char *bl = s_or(o->bootloader, "");
        if (!*bl)
            add(c, "bootloader", VD_PF_RISK, "", "install GRUB 2 (or GRUB legacy)",
                "%s: no GRUB configuration found (/boot/grub/grub.cfg, /boot/grub2/grub.cfg, "
                "/boot/grub/menu.lst): AWS needs GRUB or GRUB 2 as the boot loader",
                where);
        else if (strncmp(bl, "grub", 4))
            add(c, "bootloader", VD_PF_RISK, "", "install GRUB 2 (or GRUB legacy)",
                "%s: boot loader %s (%s): AWS needs GRUB or GRUB 2", where, bl,
                s_or(o->bootloader_cfg, "?"));
        ran(c, "bootloader");
    }
    ran(c, "boot-mode");

    /* "An imported VM may fail to boot if the root partition is not on the
     * same virtual hard drive as the MBR." */
    unsigned bd =
        o->bootloader_disk && *o->bootloader_disk ? dev_disk(c->f, o->bootloader_disk) : 1;
    unsigned rd = dev_disk(c->f, o->root_dev);
    if (bd && rd && bd != rd)
        add(c, "root-on-boot-disk", VD_PF_RISK, "",
            "move the root file system to the boot disk, or the boot code to the root's disk",
            "%s: the root file system lies on disk %u, the boot code on disk %u: AWS says the "
            "VM may fail to boot unless both are on the same disk",
            where, rd, bd);
    ran(c, "root-on-boot-disk");
}

static bool nonstandard_fs(const char *t)
{
    static const char *const v[] = {"cifs",       "smbfs", "smb3", "vboxsf", "sshfs",
                                    "fuse.sshfs", "nfs",   "nfs4", "9p",     "glusterfs"};
    for (size_t i = 0; t && i < sizeof(v) / sizeof(v[0]); i++)
        if (!strcmp(t, v[i]))
            return true;
    return false;
}

static bool device_name(const char *spec)
{
    return !strncmp(spec, "/dev/sd", 7) || !strncmp(spec, "/dev/hd", 7) ||
           !strncmp(spec, "/dev/vd", 7) || !strncmp(spec, "/dev/xvd", 8);
}

static void check_fstab(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where)
{
    if (!o->fstab_read) {
        add(c, "fstab", c->snapshot ? VD_PF_RISK : VD_PF_FAIL, AWS_FSTAB,
            "give the guest an /etc/fstab that mounts / (by UUID=)",
            "%s: /etc/fstab is missing or unreadable", where);
        return;
    }
    for (size_t i = 0; i < o->nmounts; i++) {
        const struct vd_inspect_mount *m = &o->mounts[i];
        const char *spec = s_or(m->spec, ""), *mp = s_or(m->mountpoint, "?");
        if (nonstandard_fs(m->type)) {
            add(c, "fstab-nonstandard", VD_PF_NOTE, "", "mount it after import",
                "%s: /etc/fstab: %s on %s (%s): AWS disables entries of network and host-shared "
                "file systems",
                where, spec, mp, m->type);
            continue;
        }
        bool named = device_name(spec);
        if (named)
            add(c, "fstab-device-names", VD_PF_RISK, "", FIX_FIXUP " (device names -> UUID=)",
                "%s: /etc/fstab: %s on %s names a disk by its device name%s%s: on EC2 the disks "
                "are /dev/nvme* or /dev/xvd*",
                where, spec, mp, m->dev ? ", here " : "", m->dev ? m->dev : "");
        else if (!m->dev && (!strncmp(spec, "/dev/", 5) || !strncmp(spec, "UUID=", 5) ||
                             !strncmp(spec, "LABEL=", 6) || !strncmp(spec, "PARTUUID=", 9) ||
                             !strncmp(spec, "PARTLABEL=", 10)))
            add(c, "fstab-resolve", strcmp(mp, "/") ? VD_PF_RISK : VD_PF_FAIL, "",
                "correct the entry, or add nofail to its options",
                "%s: /etc/fstab: %s on %s matches no device on the disks", where, spec, mp);
    }
    ran(c, "fstab");
    ran(c, "fstab-device-names");
    ran(c, "fstab-resolve");
}

static void check_network(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where)
{
    for (size_t i = 0; i < o->nnets; i++) {
        const struct vd_inspect_net *n = &o->nets[i];
        const char *iface = s_or(n->iface, ""), *mac = s_or(n->mac, "");
        char what[160];
        if (*mac)
            snprintf(what, sizeof(what), "MAC %s", mac);
        else
            snprintf(what, sizeof(what), "%s", s_or(iface, "any interface"));
        if (n->static_addr)
            add(c, "network-static", VD_PF_RISK, "", FIX_FIXUP " (static -> DHCP)",
                "%s: %s (%s): static address on %s: the instance gets one interface, addressed "
                "by DHCP",
                where, s_or(n->file, "?"), s_or(n->stack, "?"), what);
        else if (*mac)
            add(c, "network-bound", VD_PF_RISK, "", "bind the configuration to no MAC address",
                "%s: %s (%s): bound to %s: the EC2 interface has another MAC address", where,
                s_or(n->file, "?"), s_or(n->stack, "?"), mac);
        else if (*iface && strcmp(iface, "lo") && strcmp(iface, "eth0") && strcmp(iface, "ens5"))
            add(c, "network-bound", VD_PF_NOTE, "",
                "also configure DHCP for eth0 (Xen) and ens5 (Nitro), or for any interface",
                "%s: %s (%s): configures %s only: on EC2 the interface is ens5 (Nitro) or eth0 "
                "(Xen)",
                where, s_or(n->file, "?"), s_or(n->stack, "?"), iface);
    }
    ran(c, "network-static");
    ran(c, "network-bound");
    if (!o->dhcp_client)
        add(c, "dhcp-client", VD_PF_RISK, "",
            "install a DHCP client (isc-dhcp-client, dhcpcd, NetworkManager or systemd-networkd)",
            "%s: no DHCP client found: AWS needs a functional DHCP client service", where);
    ran(c, "dhcp-client");
}

static uint64_t root_free(const struct pf_ctx *c, const struct vd_inspect_os *o)
{
    if (o->free_bytes != VD_INSPECT_UNKNOWN && o->free_bytes)
        return o->free_bytes;
    for (size_t i = 0; c->ins && o->root_dev && i < c->ins->nfss; i++)
        if (c->ins->fss[i].dev && !strcmp(c->ins->fss[i].dev, o->root_dev))
            return c->ins->fss[i].free;
    return o->free_bytes;
}

static void check_free(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where, bool win)
{
    uint64_t need = win ? c->t->windows_min_free : c->t->linux_min_free;
    uint64_t fr = root_free(c, o);
    if (!need)
        return;
    if (fr == VD_INSPECT_UNKNOWN)
        add(c, "free-space", VD_PF_NOTE, "", "", "%s: free space on the root file system not read",
            where);
    else if (fr < need)
        add(c, "free-space", VD_PF_RISK, "", "free space on the root file system, or grow it",
            "%s: the root file system has %" PRIu64 " MiB free: AWS asks for %" PRIu64
            " MiB for its drivers%s",
            where, fr >> 20, need >> 20, win ? " and a fixed-size pagefile" : "");
    ran(c, "free-space");
}

static void check_initramfs(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where)
{
    if (!c->snapshot)
        return; /* ImportImage installs the drivers itself */
    const struct vd_inspect_kernel *k = default_kernel(o);
    if (!k && o->nkernels)
        k = &o->kernels[o->nkernels - 1];
    if (!k)
        return;
    const char *fix = "add nvme and ena to the initramfs before export (dracut --add-drivers "
                      "'nvme ena' -f, or list them in /etc/initramfs-tools/modules and run "
                      "update-initramfs -u)";
    if (!k->initramfs_read) {
        add(c, "initramfs-drivers", VD_PF_RISK, "", fix,
            "%s: %s: initramfs of kernel %s not read (%s): cannot tell whether it holds nvme "
            "and ena, which Nitro instances need",
            where, s_or(k->initrd, "(none)"), k->version, s_or(k->initramfs_why, "absent"));
        return;
    }
    static const char *const need[] = {"nvme", "ena"};
    for (size_t i = 0; i < 2; i++) {
        bool have = false;
        for (size_t j = 0; j < k->ninitramfs_drivers && !have; j++)
            have = !strcmp(k->initramfs_drivers[j], need[i]);
        if (!have)
            add(c, "initramfs-drivers", VD_PF_RISK, "", fix,
                "%s: %s: the initramfs of kernel %s has no %s driver: %s", where,
                s_or(k->initrd, "?"), k->version, need[i],
                i == 0 ? "on Nitro instances the root disk is NVMe and / would not be found"
                       : "on Nitro instances the network interface is ENA and would stay down");
    }
    ran(c, "initramfs-drivers");
}

static void check_windows(struct pf_ctx *c, const struct vd_inspect_os *o, const char *where)
{
    const char *prod = s_or(o->product, "");
    bool ok = false;
    for (size_t i = 0; i < c->t->nwindows && !ok; i++)
        ok = !strncmp(prod, c->t->windows[i], strlen(c->t->windows[i]));
    if (!ok)
        add(c, "os-supported", c->snapshot ? VD_PF_NOTE : VD_PF_FAIL, "", "",
            "%s: SOFTWARE hive: ProductName \"%s\" is not a Windows version AWS VM Import "
            "supports",
            where, prod);
    ran(c, "os-supported");
    const char *inst = s_or(o->win_install, "");
    if (strstr(inst, "Nano"))
        add(c, "windows-nano", VD_PF_FAIL, "",
            "install Windows Server with the Desktop "
            "Experience or Server Core",
            "%s: SOFTWARE hive: InstallationType \"%s\": AWS does not import Nano Server "
            "installations",
            where, inst);
    ran(c, "windows-nano");
    const char *lang = s_or(o->win_language, "");
    if (!*lang)
        add(c, "windows-language", VD_PF_NOTE, "", "", "%s: the system language was not read",
            where);
    else if (strcasecmp(lang, "en-US"))
        add(c, "windows-language", strcmp(inst, "Client") ? VD_PF_RISK : VD_PF_FAIL, "",
            "set the system language to English (United States) before export",
            "%s: system language %s: AWS needs US English (en-US)%s", where, lang,
            strcmp(inst, "Client") ? ", and does not support language packs that use non-ASCII "
                                     "characters"
                                   : " for Windows client editions");
    ran(c, "windows-language");
    if (!o->win_dhcp_enabled)
        add(c, "dhcp-client", VD_PF_RISK, "", FIX_FIXUP " (enables the Dhcp service)",
            "%s: SYSTEM hive: the Dhcp service is disabled: AWS needs a functional DHCP client "
            "service",
            where);
    ran(c, "dhcp-client");
}

static void check_os(struct pf_ctx *c)
{
    const struct vd_inspect *ins = c->ins;
    size_t n = ins ? ins->noss : 0;
    if (n == 0) {
        add(c, "os-count", c->snapshot ? VD_PF_NOTE : VD_PF_FAIL, "",
            c->snapshot ? "" : "import a disk that holds the operating system",
            "no operating system found on the disks (no root file system with /etc/os-release "
            "or Windows/System32/config/SOFTWARE)");
        return;
    }
    if (n > 1) {
        char list[512] = "";
        size_t l = 0;
        for (size_t i = 0; i < n && l < sizeof(list); i++)
            l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s %s on %s", i ? ", " : "",
                                  s_or(ins->oss[i].distro, "?"), s_or(ins->oss[i].version, "?"),
                                  s_or(ins->oss[i].root_dev, "?"));
        add(c, "os-count", c->snapshot ? VD_PF_RISK : VD_PF_FAIL, AWS_MULTI,
            "import one operating system: remove the others' partitions, or import their disks "
            "separately",
            "%zu operating systems found (%s): AWS imports VMs with one, not dual-boot or "
            "several /etc",
            n, list);
    }
    ran(c, "os-count");
    for (size_t i = 0; i < n; i++) {
        const struct vd_inspect_os *o = &ins->oss[i];
        const char *where = s_or(o->root_dev, "?");
        bool win = o->type && !strcmp(o->type, "windows");
        const char *arch = s_or(o->arch, "");
        if (!*arch)
            add(c, "arch-64bit", VD_PF_NOTE, "", "", "%s: the architecture was not read", where);
        else if (strcmp(arch, "x86_64") && (!win || strncmp(arch, "i", 1)))
            add(c, "arch-64bit", VD_PF_FAIL, "", "import a 64-bit (x86_64) build of the guest",
                "%s: %s: machine %s: AWS imports 64-bit (x86_64) %s only", where,
                s_or(o->arch_from, "?"), arch, win ? "and 32-bit x86 Windows" : "Linux");
        ran(c, "arch-64bit");
        if (win) {
            check_windows(c, o, where);
        } else {
            check_linux_table(c, o, where);
            check_fstab(c, o, where);
            check_network(c, o, where);
            check_initramfs(c, o, where);
        }
        check_rootfs(c, o, where, win);
        check_boot(c, o, where, win);
        check_free(c, o, where, win);
    }
}

int pf_run(const struct pf_facts *f, const struct vd_inspect *ins, const struct pf_table *t,
           const char *route, struct vd_preflight **out, struct vd_error *err)
{
    *out = NULL;
    if (route && strcmp(route, "import-image") && strcmp(route, "import-snapshot"))
        return vd_err(err, -EINVAL,
                      "preflight: route %s: unknown (import-image or import-snapshot)", route);
    struct pf_ctx c = {.f = f, .ins = ins, .t = t};
    c.snapshot = route && !strcmp(route, "import-snapshot");
    if (!(c.p = calloc(1, sizeof(*c.p))))
        return vd_err(err, -ENOMEM, "preflight: out of memory");
    c.p->target = "aws";
    check_container(&c);
    check_encrypted(&c);
    check_lvm(&c);
    if (ins) /* NULL: the guest could not be inspected; the caller says why */
        check_os(&c);
    if (c.err) {
        vd_preflight_free(c.p);
        return vd_err(err, c.err, "preflight: out of memory");
    }
    *out = c.p;
    return 0;
}

/* ---- Azure: what a VHD upload must satisfy ---- */

/* Azure's documented wording (learn.microsoft.com, "Prepare a Windows VHD
 * to upload to Azure") and the texts its services answer with (Azure CLI
 * and Storage Explorer issues quote them; docs/preflight.md). */
#define AZ_ONLY_FIXED "The VHDX format isn't supported in Azure, only fixed VHD."
#define AZ_FIX        "vdisk convert -O vhd -o target=azure SOURCE OUT.vhd (fixed, whole MiB)"

static void check_azure(struct pf_ctx *c)
{
    const struct pf_facts *f = c->f;
    for (size_t i = 0; i < f->ndisks; i++) {
        const struct pf_disk *d = &f->disks[i];
        const char *sub = s_or(d->subformat, "");
        bool vhd = !strcmp(d->format, "vhd");
        if (!vhd) {
            add(c, "azure-format", VD_PF_FAIL, AZ_ONLY_FIXED, AZ_FIX,
                "%s: %s: format %s: Azure takes a fixed VHD only", d->view, d->file, d->format);
            continue;
        }
        if (strcasecmp(sub, "fixed") || d->has_backing) {
            add(c, "azure-fixed", VD_PF_FAIL, AZ_ONLY_FIXED, AZ_FIX,
                "%s: %s: a %s VHD: Azure takes fixed VHDs only", d->view, d->file,
                s_or(d->subformat, "non-fixed"));
            continue;
        }
        if (!d->footer_cookie)
            add(c, "azure-footer", VD_PF_FAIL, "Disk is expected to have cookie value 'conectix'.",
                AZ_FIX,
                "%s: %s: the last 512 bytes of the file are not a VHD footer (no 'conectix'): "
                "Azure reads the footer there",
                d->view, d->file);
        else if (d->footer_type != 2)
            add(c, "azure-footer", VD_PF_FAIL, AZ_ONLY_FIXED, AZ_FIX,
                "%s: %s: the footer at the end of the file says disk type %u, not 2 (fixed)",
                d->view, d->file, d->footer_type);
        if (d->size % PF_AZURE_MIB) {
            char az[192];
            snprintf(az, sizeof(az),
                     "The VHD has an unsupported virtual size of %" PRIu64
                     " bytes. The size must be a whole number (in MBs).",
                     d->size);
            add(c, "azure-size-mib", VD_PF_FAIL, az, AZ_FIX,
                "%s: %s: virtual size %" PRIu64 " bytes is not a whole MiB (%" PRIu64
                " bytes past %" PRIu64 " MiB): Azure needs a multiple of 1048576 bytes",
                d->view, d->file, d->size, d->size % PF_AZURE_MIB, d->size / PF_AZURE_MIB);
        }
        /* Azure sizes the disk from the upload's length less the footer. */
        if (d->footer_cookie && d->file_size >= 512 && d->file_size - 512 != d->footer_size) {
            char az[192] = "";
            if ((d->file_size - 512) % PF_AZURE_MIB)
                snprintf(az, sizeof(az),
                         "The upload size in bytes %" PRIu64
                         " - 512 bytes for the VHD footer (%" PRIu64
                         " in this case) must be a multiple of MiB.",
                         d->file_size, d->file_size - 512);
            add(c, "azure-upload-size", VD_PF_FAIL, az, AZ_FIX,
                "%s: %s: the file is %" PRIu64 " bytes, so %" PRIu64
                " bytes of disk before the footer, but the footer's current size is %" PRIu64
                ": Azure takes the file's length less 512 as the disk",
                d->view, d->file, d->file_size, d->file_size - 512, d->footer_size);
        }
        if (d->size < PF_AZURE_MIN_SIZE || d->size > PF_AZURE_MAX_SIZE)
            add(c, "azure-disk-size", VD_PF_FAIL,
                "This value should be between 20972032 (20 MiB + 512 bytes for the VHD footer) "
                "and 35183298347520 bytes (32 TiB + 512 bytes for the VHD footer).",
                d->size < PF_AZURE_MIN_SIZE ? "grow the disk to 20 MiB at least"
                                            : "shrink the disk below 32 TiB",
                "%s: %s: virtual size %" PRIu64 " bytes: Azure takes disks of 20 MiB to 32 TiB",
                d->view, d->file, d->size);
        else if (d->size > (2ull << 40))
            add(c, "azure-disk-size", VD_PF_NOTE, "", "",
                "%s: %s: virtual size %" PRIu64 " bytes (%.2f TiB): fine as a data disk; an OS "
                "disk of a generation 1 VM is at most 2 TiB",
                d->view, d->file, d->size, tib(d->size));
    }
    static const char *const ids[] = {"azure-format",   "azure-fixed",     "azure-footer",
                                      "azure-size-mib", "azure-disk-size", "azure-upload-size"};
    /* The VHD checks ran only if some disk is a fixed VHD to run them on. */
    bool fixed_vhd = false;
    for (size_t i = 0; i < f->ndisks; i++)
        fixed_vhd |= !strcmp(f->disks[i].format, "vhd") &&
                     !strcasecmp(s_or(f->disks[i].subformat, ""), "fixed");
    for (size_t i = 0; i < VD_ARRAY_SIZE(ids); i++)
        if (i < 2 || fixed_vhd)
            ran(c, ids[i]);
    for (size_t i = 0; i < f->nproblems; i++) {
        const struct pf_problem *pr = &f->problems[i];
        add(c, "container-integrity", pr->corrupt ? VD_PF_FAIL : VD_PF_NOTE, "",
            pr->corrupt ? "vdisk check SOURCE lists every problem; " AZ_FIX : "", "%s: %s%s",
            pr->file, pr->text, pr->corrupt ? "" : " (leaked space: harmless)");
    }
    if (f->checked)
        ran(c, "container-integrity");
}

int pf_run_azure(const struct pf_facts *f, struct vd_preflight **out, struct vd_error *err)
{
    *out = NULL;
    struct pf_ctx c = {.f = f};
    if (!(c.p = calloc(1, sizeof(*c.p))))
        return vd_err(err, -ENOMEM, "preflight: out of memory");
    c.p->target = "azure";
    check_azure(&c);
    if (c.err) {
        vd_preflight_free(c.p);
        return vd_err(err, c.err, "preflight: out of memory");
    }
    *out = c.p;
    return 0;
}

void vd_preflight_free(struct vd_preflight *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free((char *)p->findings[i].check);
        free((char *)p->findings[i].message);
        free((char *)p->findings[i].aws_text);
        free((char *)p->findings[i].fix);
    }
    free(p->findings);
    for (size_t i = 0; i < p->npassed; i++)
        free((char *)p->passed[i]);
    free(p->passed);
    free(p);
}

int vd_preflight_status(const struct vd_preflight *p)
{
    int st = VD_PF_READY;
    for (size_t i = 0; p && i < p->n; i++) {
        if (p->findings[i].severity == VD_PF_FAIL)
            return VD_PF_WOULD_FAIL;
        if (p->findings[i].severity == VD_PF_RISK)
            st = VD_PF_RISKS;
    }
    return st;
}

const char *vd_pf_severity_name(enum vd_pf_severity s)
{
    return s == VD_PF_FAIL ? "would-fail" : s == VD_PF_RISK ? "risk" : "note";
}

int vd_preflight_json(const struct vd_preflight *p, char **out, struct vd_error *err)
{
    static const char *const status[] = {"ready", "could-not-check", "would-fail", "risks"};
    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    vd_json_str(&j, "target", p->target ? p->target : "aws");
    int st = vd_preflight_status(p);
    vd_json_str(&j, "status", status[st]);
    vd_json_i64(&j, "exit_code", st);
    vd_json_arr_begin(&j, "findings");
    for (size_t i = 0; i < p->n; i++) {
        const struct vd_pf_finding *x = &p->findings[i];
        vd_json_obj_begin(&j, NULL);
        vd_json_str(&j, "check", x->check);
        vd_json_str(&j, "severity", vd_pf_severity_name(x->severity));
        vd_json_str(&j, "message", x->message);
        vd_json_str(&j, "aws_text", x->aws_text);
        vd_json_str(&j, "fix", x->fix);
        vd_json_obj_end(&j);
    }
    vd_json_arr_end(&j);
    vd_json_arr_begin(&j, "passed");
    for (size_t i = 0; i < p->npassed; i++)
        vd_json_str(&j, NULL, p->passed[i]);
    vd_json_arr_end(&j);
    vd_json_obj_end(&j);
    if (!(*out = vd_json_finish(&j)))
        return vd_err(err, -ENOMEM, "preflight: out of memory");
    return 0;
}
