/*
 * Guest block devices (include/vdisk/guest.h): each disk of the sources,
 * each partition libblkid finds on it (vd_image_partitions), and each
 * LVM2 logical volume assembled from the PVs found on whole disks and
 * partitions (src/guest/lvm.c). Nothing touches the host's LVM or
 * device-mapper: a guest VG named like a host VG never clashes.
 *
 * Every device is probed with libblkid for its filesystem. libblkid 2.38
 * probes only file descriptors, so the device's first PROBE_HEAD bytes and
 * last PROBE_TAIL bytes are copied into a sparse memfd of the device's
 * size (the trick of src/core/partitions.c and src/fixup/devmap.c); every
 * superblock libblkid looks for near the start (ext2/3/4, XFS, btrfs at
 * 64 KiB, swap, FAT, NTFS, LVM2, iso9660) or at the end (md 1.0) is there.
 *
 * The device list is built once and never changes, so reads need no lock.
 */
#include <blkid.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/checked.h"
#include "common/json.h"
#include "guest/guest_int.h"
#include "guest/lvm.h"
#include "vdisk/guest.h"

#define PROBE_HEAD (1u << 20)
#define PROBE_TAIL (64u << 10)
#define MAX_DEVS   4096 /* far above any guest: a bound on hostile tables */

struct guest_dev {
    struct vd_bdev pub; /* first: a vd_bdev pointer is a guest_dev pointer */
    struct vd_guest *g;
    struct vd_image *img; /* DISK, PART */
    uint64_t off;         /* DISK, PART: byte offset inside img */
    const struct vd_lvm_lv *lv;
    char name[600];
    char part_type[40], part_uuid[40];
};

struct guest_disk {
    struct vd_image *img;
    char view[32];
    struct vd_partition_table pt;
};

struct vd_guest {
    size_t ndisks;
    struct guest_disk *disks;
    size_t ndevs;
    struct guest_dev **devs;
    size_t nwarn;
    char **warn;
    /* LVM: the PV devices scanned (pvdev index -> guest_dev) and the VGs. */
    size_t npv;
    struct vd_lvm_pvdev *pvs;
    struct guest_dev **pvdev;
    struct vd_lvm *lvm;
};

static struct guest_dev *gdev(const struct vd_bdev *b)
{
    return (struct guest_dev *)(uintptr_t)b;
}

static int guest_warn(struct vd_guest *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int guest_warn(struct vd_guest *g, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    char **w = n < 0 ? NULL : realloc(g->warn, (g->nwarn + 1) * sizeof(*w));
    if (!w) {
        free(n < 0 ? NULL : s);
        return -ENOMEM;
    }
    g->warn = w;
    g->warn[g->nwarn++] = s;
    return 0;
}

static struct guest_dev *guest_add(struct vd_guest *g, enum vd_bdev_kind kind, unsigned disk)
{
    if (g->ndevs >= MAX_DEVS)
        return NULL;
    struct guest_dev **v = realloc(g->devs, (g->ndevs + 1) * sizeof(*v));
    if (!v)
        return NULL;
    g->devs = v;
    struct guest_dev *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->g = g;
    d->pub.kind = kind;
    d->pub.disk = disk;
    d->pub.name = d->name;
    g->devs[g->ndevs++] = d;
    return d;
}

/* "vg-name" with '-' doubled, as device-mapper names its nodes. */
static void dm_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 2 < cap; s++) {
        out[o++] = *s;
        if (*s == '-')
            out[o++] = '-';
    }
    out[o] = '\0';
}

static int guest_dev_pread_cb(void *opaque, void *buf, size_t len, uint64_t off,
                              struct vd_error *err)
{
    return vd_bdev_pread(opaque, buf, len, off, err);
}

/* Fill fstype, uuid and label of d with libblkid; a device it cannot
 * name keeps them empty. Only allocation failures are errors. */
static int guest_probe(struct guest_dev *d, struct vd_error *err)
{
    uint64_t size = d->pub.size;
    if (size == 0)
        return 0;
    size_t head = (size_t)VD_MIN(size, (uint64_t)PROBE_HEAD);
    size_t tail = (size_t)VD_MIN(size, (uint64_t)PROBE_TAIL);
    uint8_t *buf = malloc(VD_MAX(head, tail));
    int fd = memfd_create("vdisk-guest-probe", MFD_CLOEXEC);
    int r = 0;
    struct vd_error rerr = {0};
    if (!buf || fd < 0) {
        r = vd_err(err, -ENOMEM, "guest: %s: cannot allocate the probe buffer", d->name);
        goto out;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        r = vd_err(err, -errno, "guest: %s: probe buffer: %s", d->name, strerror(errno));
        goto out;
    }
    /* A device we cannot read is listed without a filesystem. */
    if (vd_bdev_pread(&d->pub, buf, tail, size - tail, &rerr) < 0 ||
        pwrite(fd, buf, tail, (off_t)(size - tail)) != (ssize_t)tail ||
        vd_bdev_pread(&d->pub, buf, head, 0, &rerr) < 0 ||
        pwrite(fd, buf, head, 0) != (ssize_t)head) {
        r = guest_warn(d->g, "guest: %s: not probed for a filesystem: %s", d->name,
                       rerr.code ? rerr.msg : strerror(errno));
        if (r < 0)
            vd_err(err, r, "out of memory");
        goto out;
    }
    blkid_probe pr = blkid_new_probe();
    if (!pr) {
        r = vd_err(err, -ENOMEM, "guest: %s: libblkid probe setup failed", d->name);
        goto out;
    }
    if (blkid_probe_set_device(pr, fd, 0, (blkid_loff_t)size) == 0) {
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE |
                                                  BLKID_SUBLKS_LABEL);
        blkid_probe_enable_partitions(pr, 0);
        if (blkid_do_safeprobe(pr) == 0) {
            const char *v;
            if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
                snprintf(d->pub.fstype, sizeof(d->pub.fstype), "%s", v);
            if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
                snprintf(d->pub.uuid, sizeof(d->pub.uuid), "%s", v);
            if (blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
                snprintf(d->pub.label, sizeof(d->pub.label), "%s", v);
        }
    }
    blkid_free_probe(pr);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return r;
}

static int guest_add_disk(struct vd_guest *g, struct vd_image *img, struct vd_error *err)
{
    struct guest_disk *disks = realloc(g->disks, (g->ndisks + 1) * sizeof(*disks));
    if (!disks)
        return vd_err(err, -ENOMEM, "out of memory");
    g->disks = disks;
    struct guest_disk *gd = &g->disks[g->ndisks++];
    memset(gd, 0, sizeof(*gd));
    gd->img = img;
    return 0;
}

/* Disks are named once all are known: "disk" alone, else "diskN". */
static int guest_scan_disks(struct vd_guest *g, struct vd_error *err)
{
    for (size_t i = 0; i < g->ndisks; i++) {
        struct guest_disk *gd = &g->disks[i];
        unsigned n = (unsigned)i + 1;
        if (g->ndisks == 1)
            snprintf(gd->view, sizeof(gd->view), "disk");
        else
            snprintf(gd->view, sizeof(gd->view), "disk%u", n);
        struct guest_dev *d = guest_add(g, VD_BDEV_DISK, n);
        if (!d)
            return vd_err(err, -ENOMEM, "out of memory");
        snprintf(d->name, sizeof(d->name), "%s", gd->view);
        d->img = gd->img;
        d->pub.size = vd_image_size(gd->img);
        struct vd_error perr = {0};
        if (vd_image_partitions(gd->img, &gd->pt, &perr) < 0) {
            /* The disk stays readable; say why it has no partitions. */
            if (guest_warn(g, "guest: %s: no partitions: %s", gd->view, perr.msg) < 0)
                return vd_err(err, -ENOMEM, "out of memory");
            continue;
        }
        for (size_t k = 0; k < gd->pt.n; k++) {
            const struct vd_partition *p = &gd->pt.parts[k];
            struct guest_dev *pd = guest_add(g, VD_BDEV_PART, n);
            if (!pd)
                return vd_err(err, -ENOMEM, "out of memory");
            snprintf(pd->name, sizeof(pd->name), "%s-p%u", gd->view, p->number);
            pd->pub.part = p->number;
            pd->img = gd->img;
            pd->off = p->offset;
            pd->pub.size = p->size;
            snprintf(pd->part_type, sizeof(pd->part_type), "%s", p->type);
            snprintf(pd->part_uuid, sizeof(pd->part_uuid), "%s", p->uuid);
            pd->pub.part_type = pd->part_type;
            pd->pub.part_uuid = pd->part_uuid[0] ? pd->part_uuid : NULL;
        }
    }
    return 0;
}

/* PVs live on whole disks without a partition table and on partitions. */
static int guest_scan_lvm(struct vd_guest *g, struct vd_error *err)
{
    size_t nphys = g->ndevs;
    g->pvs = calloc(nphys ? nphys : 1, sizeof(*g->pvs));
    g->pvdev = calloc(nphys ? nphys : 1, sizeof(*g->pvdev));
    if (!g->pvs || !g->pvdev)
        return vd_err(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < nphys; i++) {
        struct guest_dev *d = g->devs[i];
        if (d->pub.kind == VD_BDEV_DISK && g->disks[d->pub.disk - 1].pt.n > 0)
            continue;
        struct vd_error lerr = {0};
        int r = vd_lvm_read_pv(guest_dev_pread_cb, &d->pub, d->pub.size, d->name, &g->pvs[g->npv],
                               &lerr);
        if (r == -ENOMEM)
            return vd_err(err, r, "%s", lerr.msg);
        if (r < 0) {
            if (guest_warn(g, "%s", lerr.msg) < 0)
                return vd_err(err, -ENOMEM, "out of memory");
            continue;
        }
        if (r == 0)
            continue;
        if (g->pvs[g->npv].meta_error && guest_warn(g, "%s", g->pvs[g->npv].meta_error) < 0)
            return vd_err(err, -ENOMEM, "out of memory");
        /* The label's own idea of the PV's size: larger means the disk was
         * cut short (LVs on the missing part are refused by lvm.c). */
        if (g->pvs[g->npv].hdr_size > d->pub.size &&
            guest_warn(g,
                       "lvm: %s: the PV label says the device is %" PRIu64
                       " bytes but it has %" PRIu64 " (a truncated disk?)",
                       d->name, g->pvs[g->npv].hdr_size, d->pub.size) < 0)
            return vd_err(err, -ENOMEM, "out of memory");
        g->pvdev[g->npv++] = d;
    }
    int r = vd_lvm_assemble(g->pvs, g->npv, &g->lvm, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < g->lvm->nwarnings; i++)
        if (guest_warn(g, "%s", g->lvm->warnings[i]) < 0)
            return vd_err(err, -ENOMEM, "out of memory");
    for (size_t v = 0; v < g->lvm->nvgs; v++) {
        struct vd_lvm_vg *vg = &g->lvm->vgs[v];
        for (size_t k = 0; k < vg->nlvs; k++) {
            const struct vd_lvm_lv *lv = &vg->lvs[k];
            if (!lv->visible)
                continue; /* pool metadata, RAID images...: parts of another LV */
            unsigned disk = 0;
            for (size_t s = 0; s < lv->nsegs && !disk; s++)
                for (uint32_t a = 0; a < lv->segs[s].stripes && !disk; a++) {
                    long dv = vg->pvs[lv->segs[s].areas[a].pv].dev;
                    if (dv >= 0)
                        disk = g->pvdev[dv]->pub.disk;
                }
            struct guest_dev *d = guest_add(g, VD_BDEV_LV, disk);
            if (!d)
                return vd_err(err, -ENOMEM, "out of memory");
            char ev[280], el[280];
            dm_escape(ev, sizeof(ev), vg->name);
            dm_escape(el, sizeof(el), lv->name);
            snprintf(d->name, sizeof(d->name), "lvm-%s-%s", ev, el);
            d->lv = lv;
            d->pub.vg = vg->name;
            d->pub.lv = lv->name;
            d->pub.lv_uuid = lv->uuid;
            d->pub.segtype = lv->segtype;
            d->pub.unsupported = lv->unsupported;
            d->pub.size = lv->unsupported ? 0 : lv->size;
        }
    }
    return 0;
}

static int guest_build(struct vd_guest *g, struct vd_error *err)
{
    int r = guest_scan_disks(g, err);
    if (r == 0)
        r = guest_scan_lvm(g, err);
    /* Two LVs with one view name (VGs of the same name on two sources):
     * the later ones are listed, unexposed, with the reason. */
    for (size_t i = 0; r == 0 && i < g->ndevs; i++)
        for (size_t k = 0; k < i; k++)
            if (g->devs[i]->pub.kind == VD_BDEV_LV && !strcmp(g->devs[i]->name, g->devs[k]->name) &&
                !g->devs[i]->pub.unsupported) {
                g->devs[i]->pub.unsupported =
                    "another volume group of the same name was found first (see warnings)";
                g->devs[i]->pub.size = 0;
            }
    for (size_t i = 0; r == 0 && i < g->ndevs; i++)
        if (!g->devs[i]->pub.unsupported)
            r = guest_probe(g->devs[i], err);
    return r;
}

int vd_guest_open_images(struct vd_image *const *imgs, size_t n, struct vd_guest **out,
                         struct vd_error *err)
{
    struct vd_guest *g = calloc(1, sizeof(*g));
    if (!g)
        return vd_err(err, -ENOMEM, "out of memory");
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        r = guest_add_disk(g, imgs[i], err);
    if (r == 0)
        r = guest_build(g, err);
    if (r < 0) {
        vd_guest_close(g);
        return r;
    }
    *out = g;
    return 0;
}

int vd_guest_open_sources(struct vd_source *const *srcs, size_t nsrcs, struct vd_guest **out,
                          struct vd_error *err)
{
    size_t n = 0;
    for (size_t s = 0; s < nsrcs; s++)
        n += vd_source_ndisks(srcs[s]);
    struct vd_image **imgs = calloc(n ? n : 1, sizeof(*imgs));
    if (!imgs)
        return vd_err(err, -ENOMEM, "out of memory");
    n = 0;
    for (size_t s = 0; s < nsrcs; s++)
        for (size_t i = 0; i < vd_source_ndisks(srcs[s]); i++)
            imgs[n++] = vd_source_disk(srcs[s], i);
    int r = vd_guest_open_images(imgs, n, out, err);
    free(imgs);
    return r;
}

int vd_guest_open(struct vd_source *src, struct vd_guest **out, struct vd_error *err)
{
    return vd_guest_open_sources(&src, 1, out, err);
}

void vd_guest_close(struct vd_guest *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->ndevs; i++)
        free(g->devs[i]);
    free(g->devs);
    for (size_t i = 0; i < g->ndisks; i++)
        vd_partition_table_free(&g->disks[i].pt);
    free(g->disks);
    for (size_t i = 0; i < g->nwarn; i++)
        free(g->warn[i]);
    free(g->warn);
    for (size_t i = 0; i < g->npv; i++)
        vd_lvm_pvdev_free(&g->pvs[i]);
    free(g->pvs);
    free(g->pvdev);
    vd_lvm_free(g->lvm);
    free(g);
}

size_t vd_guest_ndevs(const struct vd_guest *g)
{
    return g->ndevs;
}

const struct vd_bdev *vd_guest_dev(const struct vd_guest *g, size_t i)
{
    return i < g->ndevs ? &g->devs[i]->pub : NULL;
}

const struct vd_bdev *vd_guest_find(const struct vd_guest *g, const char *name)
{
    for (size_t i = 0; i < g->ndevs; i++)
        if (!strcmp(g->devs[i]->name, name))
            return &g->devs[i]->pub;
    return NULL;
}

struct vd_image *vd_guest_disk(const struct vd_guest *g, unsigned n)
{
    return n >= 1 && n <= g->ndisks ? g->disks[n - 1].img : NULL;
}

const struct vd_partition_table *vd_guest_partitions(const struct vd_guest *g, unsigned n)
{
    return n >= 1 && n <= g->ndisks ? &g->disks[n - 1].pt : NULL;
}

size_t vd_guest_nwarnings(const struct vd_guest *g)
{
    return g->nwarn;
}

const char *vd_guest_warning(const struct vd_guest *g, size_t i)
{
    return i < g->nwarn ? g->warn[i] : NULL;
}

int vd_bdev_map(const struct vd_bdev *b, uint64_t off, uint64_t len, struct vd_image **img,
                uint64_t *img_off, uint64_t *run, struct vd_error *err)
{
    struct guest_dev *d = gdev(b);
    uint64_t end;
    if (b->unsupported) /* before the size check: its size is 0 */
        return vd_err(err, -ENOTSUP, "guest: %s: not readable: %s", d->name, b->unsupported);
    if (len == 0 || ck_add(off, len, &end) || end > b->size)
        return vd_err(err, -EINVAL,
                      "guest: %s: range of %" PRIu64 " bytes at %" PRIu64
                      " is past the end of the device (%" PRIu64 " bytes)",
                      d->name, len, off, b->size);
    if (b->kind != VD_BDEV_LV) {
        *img = d->img;
        *img_off = d->off + off;
        *run = len;
        return 0;
    }
    size_t dev;
    uint64_t dev_off;
    int r = vd_lvm_map(d->lv, off, len, &dev, &dev_off, run, err);
    if (r < 0)
        return r;
    const struct guest_dev *pv = d->g->pvdev[dev];
    /* lvm.c checked the extent against the PV's size; check again here,
     * where the device's real size is known, before a byte moves. */
    if (ck_add(dev_off, *run, &end) || end > pv->pub.size)
        return vd_err(err, -EIO,
                      "guest: %s: extent at %" PRIu64 " lies past the end of its PV %s (%" PRIu64
                      " bytes)",
                      d->name, dev_off, pv->name, pv->pub.size);
    *img = pv->img;
    *img_off = pv->off + dev_off;
    return 0;
}

int vd_bdev_pread(const struct vd_bdev *b, void *buf, size_t len, uint64_t off,
                  struct vd_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        struct vd_image *img = NULL;
        uint64_t img_off = 0, run = 0;
        int r = vd_bdev_map(b, off, len, &img, &img_off, &run, err);
        if (r < 0)
            return r;
        r = vd_image_pread(img, p, (size_t)run, img_off, err);
        if (r < 0)
            return r;
        p += run;
        off += run;
        len -= (size_t)run;
    }
    return 0;
}

int vd_bdev_pwrite(const struct vd_bdev *b, const void *buf, size_t len, uint64_t off,
                   struct vd_error *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        struct vd_image *img = NULL;
        uint64_t img_off = 0, run = 0;
        int r = vd_bdev_map(b, off, len, &img, &img_off, &run, err);
        if (r < 0)
            return r;
        r = vd_image_pwrite(img, p, (size_t)run, img_off, err);
        if (r < 0)
            return r;
        p += run;
        off += run;
        len -= (size_t)run;
    }
    return 0;
}

static const char *kind_name(enum vd_bdev_kind k)
{
    return k == VD_BDEV_DISK ? "disk" : k == VD_BDEV_PART ? "partition" : "lv";
}

static void json_str_or_skip(struct vd_json *j, const char *key, const char *v)
{
    if (v && v[0])
        vd_json_str(j, key, v);
}

static const struct guest_dev *guest_lv_dev(const struct vd_guest *g, const struct vd_lvm_lv *lv)
{
    for (size_t i = 0; i < g->ndevs; i++)
        if (g->devs[i]->lv == lv)
            return g->devs[i];
    return NULL;
}

static void guest_view_json(struct vd_json *j, const char *key, const struct guest_dev *d)
{
    char view[620];
    if (!d) {
        vd_json_null(j, key);
        return;
    }
    snprintf(view, sizeof(view), "%s.raw", d->name);
    vd_json_str(j, key, view);
}

static void guest_lv_json(const struct vd_guest *g, const struct vd_lvm_vg *vg,
                          const struct vd_lvm_lv *lv, struct vd_json *j)
{
    vd_json_obj_begin(j, NULL);
    vd_json_str(j, "name", lv->name);
    vd_json_str(j, "vg", vg->name);
    vd_json_str(j, "uuid", lv->uuid);
    const struct guest_dev *d = guest_lv_dev(g, lv);
    guest_view_json(j, "view", d && !d->pub.unsupported ? d : NULL);
    vd_json_bool(j, "visible", lv->visible);
    vd_json_str(j, "segtype", lv->segtype);
    vd_json_u64(j, "size", d ? d->pub.size : lv->unsupported ? 0 : lv->size);
    vd_json_u64(j, "extents", lv->extents);
    if (d) {
        json_str_or_skip(j, "fstype", d->pub.fstype);
        json_str_or_skip(j, "fs_uuid", d->pub.uuid);
        json_str_or_skip(j, "fs_label", d->pub.label);
    }
    const char *why = d ? d->pub.unsupported : lv->unsupported;
    if (why)
        vd_json_str(j, "unsupported", why);
    else
        vd_json_null(j, "unsupported");
    vd_json_arr_begin(j, "segments");
    for (size_t s = 0; s < lv->nsegs; s++) {
        const struct vd_lvm_seg *sg = &lv->segs[s];
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "type", sg->type);
        vd_json_u64(j, "start_extent", sg->start_extent);
        vd_json_u64(j, "extent_count", sg->extent_count);
        vd_json_u64(j, "stripes", sg->stripes);
        if (sg->stripes > 1)
            vd_json_u64(j, "stripe_size", sg->stripe_size * 512);
        vd_json_arr_begin(j, "areas");
        for (uint32_t a = 0; a < sg->stripes; a++) {
            const struct vd_lvm_vgpv *pv = &vg->pvs[sg->areas[a].pv];
            vd_json_obj_begin(j, NULL);
            vd_json_str(j, "pv", pv->name);
            guest_view_json(j, "device", pv->dev >= 0 ? g->pvdev[pv->dev] : NULL);
            vd_json_u64(j, "start_pe", sg->areas[a].start_pe);
            vd_json_u64(j, "pe_count", sg->extent_count / (sg->stripes ? sg->stripes : 1));
            vd_json_obj_end(j);
        }
        vd_json_arr_end(j);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_obj_end(j);
}

void vd_guest_info_json(const struct vd_guest *g, struct vd_json *j)
{
    vd_json_arr_begin(j, "block_devices");
    for (size_t i = 0; i < g->ndevs; i++) {
        const struct guest_dev *d = g->devs[i];
        if (d->pub.kind == VD_BDEV_LV && d->pub.unsupported)
            continue; /* listed under volume_groups with the reason */
        vd_json_obj_begin(j, NULL);
        guest_view_json(j, "view", d);
        vd_json_str(j, "kind", kind_name(d->pub.kind));
        vd_json_u64(j, "disk", d->pub.disk);
        if (d->pub.kind == VD_BDEV_PART)
            vd_json_u64(j, "part", d->pub.part);
        vd_json_u64(j, "size", d->pub.size);
        json_str_or_skip(j, "fstype", d->pub.fstype);
        json_str_or_skip(j, "uuid", d->pub.uuid);
        json_str_or_skip(j, "label", d->pub.label);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_arr_begin(j, "volume_groups");
    for (size_t v = 0; g->lvm && v < g->lvm->nvgs; v++) {
        const struct vd_lvm_vg *vg = &g->lvm->vgs[v];
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "name", vg->name);
        vd_json_str(j, "uuid", vg->uuid);
        vd_json_u64(j, "seqno", vg->seqno);
        vd_json_u64(j, "extent_size", vg->extent_size * 512);
        vd_json_arr_begin(j, "pvs");
        for (size_t p = 0; p < vg->npvs; p++) {
            const struct vd_lvm_vgpv *pv = &vg->pvs[p];
            vd_json_obj_begin(j, NULL);
            vd_json_str(j, "name", pv->name);
            vd_json_str(j, "uuid", pv->uuid);
            guest_view_json(j, "device", pv->dev >= 0 ? g->pvdev[pv->dev] : NULL);
            vd_json_u64(j, "pe_start", pv->pe_start * 512);
            vd_json_u64(j, "pe_count", pv->pe_count);
            vd_json_bool(j, "missing", pv->dev < 0);
            vd_json_obj_end(j);
        }
        vd_json_arr_end(j);
        vd_json_arr_begin(j, "logical_volumes");
        for (size_t k = 0; k < vg->nlvs; k++)
            guest_lv_json(g, vg, &vg->lvs[k], j);
        vd_json_arr_end(j);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_arr_begin(j, "guest_warnings");
    for (size_t i = 0; i < g->nwarn; i++)
        vd_json_str(j, NULL, g->warn[i]);
    vd_json_arr_end(j);
}
