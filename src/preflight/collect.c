/*
 * vd_preflight(): gather the facts the checks need from the sources (format,
 * sizes, partition tables, the structural check, with --deep a read of
 * every allocated byte) and from the guest's block devices, then run the
 * checks (preflight.c) against the AWS table (table.c).
 *
 * What is read: the structural check reads each image's metadata (tables,
 * headers, footers); the guest's devices and the inspection read only the
 * files they look at. Without --deep nothing else is read, which keeps a
 * preflight over S3 to a few percent of the image (docs/preflight.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "core/driver.h"
#include "io/io.h"
#include "preflight/preflight_int.h"
#include "vdisk/guest.h"
#include "vdisk/vdisk.h"

#define PF_DEEP_CHUNK (1u << 20)

struct collect {
    struct pf_facts f;
    size_t pcap;
    const char *cur_file; /* the source being checked, for its problems */
    int err;
};

static void add_problem(struct collect *c, const char *file, const char *text, bool corrupt,
                        bool deep)
{
    if (c->err)
        return;
    if (c->f.nproblems == c->pcap) {
        size_t nc = c->pcap ? c->pcap * 2 : 8;
        struct pf_problem *np = realloc(c->f.problems, nc * sizeof(*np));
        if (!np) {
            c->err = -ENOMEM;
            return;
        }
        c->f.problems = np;
        c->pcap = nc;
    }
    char *t = strdup(text);
    if (!t) {
        c->err = -ENOMEM;
        return;
    }
    c->f.problems[c->f.nproblems++] =
        (struct pf_problem){.file = file, .text = t, .corrupt = corrupt, .deep = deep};
}

static void check_cb(void *opaque, bool corrupt, const char *msg)
{
    struct collect *c = opaque;
    add_problem(c, c->cur_file, msg, corrupt, false);
}

/* Read every allocated byte of img: each compressed grain is inflated and
 * its length checked by the format driver. Stops at the first error. */
static int deep_read(struct collect *c, struct vd_image *img, const char *view,
                     struct vd_error *err)
{
    uint8_t *buf = malloc(PF_DEEP_CHUNK);
    if (!buf)
        return vd_err(err, -ENOMEM, "preflight: out of memory");
    uint64_t size = vd_image_size(img);
    for (uint64_t off = 0; off < size;) {
        uint64_t want = size - off < PF_DEEP_CHUNK ? size - off : PF_DEEP_CHUNK, run = 0;
        struct vd_error e = {0};
        int st = vd_image_block_status(img, off, want, &run, &e);
        if (st >= 0 && st == VD_STATUS_DATA)
            st = vd_image_pread(img, buf, (size_t)run, off, &e);
        if (st < 0) {
            if (st == -EIO && !strstr(e.msg, "vmdk:")) {
                /* the backend failed, not the image: the check cannot run */
                free(buf);
                return vd_err(err, st, "%s", e.msg);
            }
            add_problem(c, view, e.msg, true, true);
            break;
        }
        off += run;
    }
    free(buf);
    return 0;
}

/* What Azure reads of an uploaded disk: the blob's length and its last 512
 * bytes as a VHD footer (Hard Disk Footer Format: cookie 0, current size 48,
 * disk type 60), not what our driver made of the file. */
static int azure_footer(struct vd_image *img, struct pf_disk *d, struct vd_error *err)
{
    uint8_t f[512];
    d->file_size = img->io->size;
    if (d->file_size < sizeof(f))
        return 0;
    int r = vd_io_pread_full(img->io, f, sizeof(f), d->file_size - sizeof(f), err);
    if (r < 0)
        return r;
    d->footer_cookie = memcmp(f, "conectix", 8) == 0;
    d->footer_size = be64(f + 48);
    d->footer_type = be32(f + 60);
    return 0;
}

static void facts_free(struct pf_facts *f)
{
    for (size_t i = 0; i < f->nproblems; i++)
        free((char *)f->problems[i].text);
    free(f->problems);
    for (size_t i = 0; i < f->ndisks; i++)
        free((char *)f->disks[i].view);
    free(f->disks);
    free(f->devs);
}

int vd_preflight(struct vd_source *const *srcs, size_t nsrcs, struct vd_guest *g,
                 const struct vd_inspect *ins, const struct vd_preflight_opts *opts,
                 struct vd_preflight **out, struct vd_error *err)
{
    *out = NULL;
    bool azure = opts && opts->target && !strcmp(opts->target, "azure");
    if (opts && opts->target && strcmp(opts->target, "aws") && !azure)
        return vd_err(err, -EINVAL, "preflight: target %s: unknown (aws or azure)", opts->target);
    struct pf_table *t = NULL;
    int r = azure ? 0 : pf_table_load(opts ? opts->data_file : NULL, &t, err);
    if (r < 0)
        return r;
    struct collect c = {0};
    c.f.container = nsrcs ? vd_source_format(srcs[0]) : "";
    c.f.deep = opts && opts->deep;
    c.f.checked = true;
    size_t total = 0;
    for (size_t s = 0; s < nsrcs; s++)
        total += vd_source_ndisks(srcs[s]);
    c.f.disks = calloc(total ? total : 1, sizeof(*c.f.disks));
    if (!c.f.disks) {
        r = vd_err(err, -ENOMEM, "preflight: out of memory");
        goto out;
    }
    for (size_t s = 0; s < nsrcs; s++) {
        size_t first = c.f.ndisks;
        for (size_t i = 0; i < vd_source_ndisks(srcs[s]); i++) {
            struct vd_image *img = vd_source_disk(srcs[s], i);
            struct pf_disk *d = &c.f.disks[c.f.ndisks];
            unsigned n = (unsigned)c.f.ndisks + 1;
            char view[32];
            if (total == 1)
                snprintf(view, sizeof(view), "disk");
            else
                snprintf(view, sizeof(view), "disk%u", n);
            if (!(d->view = strdup(view))) {
                r = vd_err(err, -ENOMEM, "preflight: out of memory");
                goto out;
            }
            c.f.ndisks++;
            d->file = vd_image_name(img);
            d->format = vd_image_format(img);
            d->subformat = vd_image_subformat(img);
            d->has_backing = vd_image_backing(img) != NULL;
            d->size = vd_image_size(img);
            const struct vd_partition_table *pt = g ? vd_guest_partitions(g, n) : NULL;
            d->scheme = pt ? pt->scheme : "";
            if (azure && !strcmp(d->format, "vhd") && (r = azure_footer(img, d, err)) < 0)
                goto out;
            if (!c.f.deep && d->subformat && !strcmp(d->subformat, "streamOptimized"))
                c.f.deep_skip += vd_image_allocated(img);
        }
        /* The structural check reads metadata only, except where the
         * metadata is spread through the whole file: a stream-optimized
         * VMDK's grain markers, an OVA's manifest digests. Those wait for
         * --deep, or a preflight over S3 would be the whole download. */
        bool whole = !strcmp(vd_source_format(srcs[s]), "ova");
        uint64_t bytes = 0;
        for (size_t i = first; i < c.f.ndisks; i++) {
            const char *sub = c.f.disks[i].subformat;
            whole |= sub && !strcmp(sub, "streamOptimized");
            bytes += vd_image_allocated(vd_source_disk(srcs[s], i - first));
        }
        if (whole && !c.f.deep) {
            c.f.checked = false;
            c.f.check_skip += bytes;
        } else {
            c.cur_file = c.f.ndisks > first ? c.f.disks[first].view : "source";
            struct vd_error e = {0};
            int cr = vd_source_check(srcs[s], check_cb, &c, &e);
            if (cr < 0) {
                r = vd_err(err, cr, "%s", e.msg);
                goto out;
            }
        }
        for (size_t i = first; c.f.deep && i < c.f.ndisks; i++)
            if ((r = deep_read(&c, vd_source_disk(srcs[s], i - first), c.f.disks[i].view, err)) < 0)
                goto out;
    }
    size_t nd = g ? vd_guest_ndevs(g) : 0;
    if (nd && !(c.f.devs = calloc(nd, sizeof(*c.f.devs)))) {
        r = vd_err(err, -ENOMEM, "preflight: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nd; i++) {
        const struct vd_bdev *b = vd_guest_dev(g, i);
        struct pf_dev *d = &c.f.devs[c.f.ndevs++];
        d->name = b->name;
        d->disk = b->disk;
        d->lv = b->kind == VD_BDEV_LV;
        d->vg = b->vg;
        d->lv_name = b->lv;
        d->segtype = b->segtype;
        d->unsupported = b->unsupported;
        d->fstype = b->fstype[0] ? b->fstype : NULL;
        d->part_type = b->part_type;
    }
    if (c.err) {
        r = vd_err(err, c.err, "preflight: out of memory");
        goto out;
    }
    r = azure ? pf_run_azure(&c.f, out, err)
              : pf_run(&c.f, ins, t, opts ? opts->route : NULL, out, err);
out:
    facts_free(&c.f);
    pf_table_free(t);
    return r;
}
