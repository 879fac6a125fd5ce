/*
 * Sources: what one SOURCE argument opens to. A tar (OVA) becomes a
 * container whose disks are opened through slices of the .ova; anything
 * else is a single image. Also renders the info JSON shared by
 * `vdisk info --json` and the mount's info.json (docs/info-json.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/checked.h"
#include "core/ioopts.h"
#include "common/json.h"
#include "core/driver.h"
#include "formats/ova.h"
#include "guest/guest_int.h"

struct vd_source {
    char *uri;
    struct vd_io *io;   /* the file SOURCE names */
    struct vd_ova *ova; /* NULL unless an OVA */
    size_t ndisks;
    struct vd_image **disks;
    /* How the format was chosen: "forced" (format=), "probed" (a signature
     * matched), "fallback" (raw because nothing else matched). */
    const char *format_chosen;
};

static int open_ova(struct vd_source *src, const struct vd_open_opts *opts, struct vd_error *err)
{
    int r = vd_ova_open(src->io, &src->ova, err);
    if (r < 0)
        return r;
    struct vd_ova *ova = src->ova;
    if (ova->ndisks == 0)
        return vd_err(err, -EINVAL, "ova: %s: the OVF DiskSection lists no disks", src->uri);
    src->disks = calloc(ova->ndisks, sizeof(*src->disks));
    if (!src->disks)
        return vd_err(err, -ENOMEM, "out of memory");
    struct vd_open_opts o = *opts;
    o.writable = false;
    o.format = NULL;
    for (size_t i = 0; i < ova->ndisks; i++) {
        struct vd_io *slice;
        char name[4096];
        snprintf(name, sizeof(name), "%s/%s", src->io->name, ova->disks[i].member);
        r = vd_io_slice(src->io, ova->disks[i].offset, ova->disks[i].size, name, &slice, err);
        if (r < 0)
            return r;
        r = vd_image_open_io(slice, ova->disks[i].member, &o, 0, &src->disks[i], err);
        if (r < 0)
            return r;
        src->ndisks++;
    }
    return 0;
}

/* Containers and images we recognise but do not read, so that they are
 * refused by name instead of being shown as a "raw" disk of their bytes. */
static const char *unsupported_format(const uint8_t *h, size_t n)
{
    if (n >= 4 && !memcmp(h, "QFI\xfb", 4))
        return "qcow2 (QEMU copy-on-write)";
    if (n >= 4 && !memcmp(h, "QED", 4))
        return "QED";
    if (n >= 68 && h[64] == 0x7f && h[65] == 0x10 && h[66] == 0xda && h[67] == 0xbe)
        return "VDI (VirtualBox)";
    if (n >= 16 && (!memcmp(h, "WithoutFreeSpace", 16) || !memcmp(h, "WithouFreSpacExt", 16)))
        return "Parallels";
    if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
        return "gzip-compressed data (decompress it first)";
    if (n >= 6 && !memcmp(h,
                          "\xfd"
                          "7zXZ\0",
                          6))
        return "xz-compressed data (decompress it first)";
    if (n >= 4 && !memcmp(h, "\x28\xb5\x2f\xfd", 4))
        return "zstd-compressed data (decompress it first)";
    if (n >= 3 && !memcmp(h, "BZh", 3))
        return "bzip2-compressed data (decompress it first)";
    return NULL;
}

/* The file's extension promises a format the probe did not find. */
static const char *promised_format(const char *uri)
{
    static const struct {
        const char *ext, *fmt;
    } map[] = {{".vmdk", "VMDK"},  {".vhd", "VHD"}, {".vhdx", "VHDX"},
               {".avhdx", "VHDX"}, {".ova", "OVA"}, {".avhd", "VHD"}};
    const char *dot = strrchr(uri, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < VD_ARRAY_SIZE(map); i++)
        if (!strcasecmp(dot, map[i].ext))
            return map[i].fmt;
    return NULL;
}

/* Probing fell back to raw, which matches anything: refuse when the bytes
 * are a format we know but do not read, or when the name promises a format
 * whose signature is missing (a damaged or wrongly named file), instead of
 * serving the container's bytes as a disk. -o format=raw overrides both. */
static int check_raw_fallback(struct vd_source *src, struct vd_error *err)
{
    uint8_t head[512] = {0};
    size_t n = (size_t)VD_MIN((uint64_t)sizeof(head), src->io->size);
    int r = vd_io_pread_full(src->io, head, n, 0, err);
    if (r < 0)
        return r;
    const char *what = unsupported_format(head, n);
    if (what)
        return vd_err(err, -ENOTSUP, "%s: this is %s, which vdiskfs does not read", src->uri, what);
    const char *promised = promised_format(src->uri);
    if (promised)
        return vd_err(err, -EINVAL,
                      "%s: named like a %s image but no %s signature was found (%s); if it "
                      "really is a raw disk, force it with format=raw",
                      src->uri, promised, promised,
                      src->io->size == 0 ? "the file is empty" : "damaged or misnamed?");
    return 0;
}

int vd_source_open(const char *uri, const struct vd_open_opts *opts, struct vd_source **out,
                   struct vd_error *err)
{
    static const struct vd_open_opts none;
    int r;
    if (!opts)
        opts = &none;
    struct vd_source *src = calloc(1, sizeof(*src));
    if (!src || !(src->uri = strdup(uri))) {
        free(src);
        return vd_err(err, -ENOMEM, "out of memory");
    }
    struct vd_io_opts io_opts = vd_io_opts_of(opts);
    r = vd_io_open(uri, &io_opts, opts->writable, &src->io, err);
    if (r < 0)
        goto fail;

    bool is_ova = false;
    if (!opts->format || !strcmp(opts->format, "ova")) {
        uint8_t head[512];
        if (src->io->size >= sizeof(head)) {
            r = vd_io_pread_full(src->io, head, sizeof(head), 0, err);
            if (r < 0)
                goto fail;
            is_ova = vd_ova_probe(head, sizeof(head));
        }
        if (opts->format && !is_ova) {
            r = vd_err(err, -EINVAL, "%s: not a tar archive, so not an OVA", uri);
            goto fail;
        }
    }
    if (is_ova) {
        if (opts->writable) {
            r = vd_err(err, -EROFS,
                       "%s: OVA disks cannot be written in place; mount it read-only, keep the "
                       "changes in an overlay (-o overlay=FILE), or write to a converted copy",
                       uri);
            goto fail;
        }
        r = open_ova(src, opts, err);
        if (r < 0)
            goto fail;
    } else {
        src->disks = calloc(1, sizeof(*src->disks));
        if (!src->disks) {
            r = vd_err(err, -ENOMEM, "out of memory");
            goto fail;
        }
        const char *base = strrchr(src->io->name, '/');
        base = base && base[1] ? base + 1 : src->io->name;
        vd_io_ref(src->io);
        r = vd_image_open_io(src->io, base, opts, 0, &src->disks[0], err);
        if (r < 0)
            goto fail;
        src->ndisks = 1;
        if (!opts->format && src->disks[0]->ops == &vd_format_raw) {
            src->format_chosen = "fallback";
            r = check_raw_fallback(src, err);
            if (r < 0)
                goto fail;
        }
    }
    if (!src->format_chosen)
        src->format_chosen = opts->format ? "forced" : "probed";
    *out = src;
    return 0;
fail:
    vd_source_close(src);
    return r;
}

void vd_source_close(struct vd_source *src)
{
    if (!src)
        return;
    for (size_t i = 0; i < src->ndisks; i++)
        vd_image_close(src->disks[i]);
    free(src->disks);
    vd_ova_close(src->ova);
    vd_io_unref(src->io);
    free(src->uri);
    free(src);
}

const char *vd_source_format(const struct vd_source *src)
{
    if (src->ova)
        return "ova";
    return src->ndisks ? src->disks[0]->ops->name : "unknown";
}

const char *vd_source_format_chosen(const struct vd_source *src)
{
    return src->format_chosen ? src->format_chosen : "probed";
}

size_t vd_source_ndisks(const struct vd_source *src)
{
    return src->ndisks;
}

struct vd_image *vd_source_disk(const struct vd_source *src, size_t i)
{
    return i < src->ndisks ? src->disks[i] : NULL;
}

const char *vd_source_ovf_name(const struct vd_source *src)
{
    return src->ova ? src->ova->ovf_name : NULL;
}

const char *vd_source_ovf_text(const struct vd_source *src, size_t *len)
{
    if (!src->ova)
        return NULL;
    if (len)
        *len = src->ova->ovf_len;
    return src->ova->ovf_text;
}

void vd_source_disk_view_name(const struct vd_source *src, size_t i, char *buf, size_t len)
{
    if (src->ndisks == 1)
        snprintf(buf, len, "disk");
    else
        snprintf(buf, len, "disk%zu", i + 1);
}

static void image_json(struct vd_image *img, struct vd_json *j)
{
    vd_json_str(j, "file", img->name);
    vd_json_str(j, "format", img->ops->name);
    vd_json_str(j, "subformat", img->subformat);
    vd_json_u64(j, "virtual_size", img->size);
    vd_json_u64(j, "allocated_size", vd_image_allocated(img));
    if (img->sector_size != 512)
        vd_json_u64(j, "logical_sector_size", img->sector_size);
    if (img->ops->info)
        img->ops->info(img, j);
}

static int source_info_json(struct vd_source *src, const struct vd_guest *g,
                            const char *guest_error, char **out, struct vd_error *err);

int vd_source_info_json(struct vd_source *src, char **out, struct vd_error *err)
{
    /* The guest's devices are part of the description; a scan that fails
     * (out of memory) leaves them out rather than the whole JSON. */
    struct vd_guest *g = NULL;
    struct vd_error gerr = {0};
    int r = vd_guest_open(src, &g, &gerr);
    if (r == -ENOMEM)
        return vd_err(err, -ENOMEM, "%s", gerr.msg);
    r = source_info_json(src, g, r < 0 ? gerr.msg : NULL, out, err);
    vd_guest_close(g);
    return r;
}

int vd_source_info_json_guest(struct vd_source *src, const struct vd_guest *g, char **out,
                              struct vd_error *err)
{
    return source_info_json(src, g, NULL, out, err);
}

/* guest_error: why the block devices could not be scanned, or NULL. */
static int source_info_json(struct vd_source *src, const struct vd_guest *g,
                            const char *guest_error, char **out, struct vd_error *err)
{
    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    vd_json_str(&j, "source", src->uri);
    vd_json_str(&j, "format", vd_source_format(src));
    vd_json_str(&j, "format_chosen", vd_source_format_chosen(src));
    vd_json_u64(&j, "file_size", src->io->size);
    if (src->ova)
        vd_ova_info(src->ova, &j);
    vd_json_arr_begin(&j, "disks");
    for (size_t i = 0; i < src->ndisks; i++) {
        struct vd_image *img = src->disks[i];
        char view[32];
        vd_source_disk_view_name(src, i, view, sizeof(view));
        vd_json_obj_begin(&j, NULL);
        char viewfile[40];
        snprintf(viewfile, sizeof(viewfile), "%s.raw", view);
        vd_json_str(&j, "view", viewfile);
        image_json(img, &j);
        vd_json_arr_begin(&j, "backing_chain");
        for (struct vd_image *b = img->backing; b; b = b->backing) {
            vd_json_obj_begin(&j, NULL);
            image_json(b, &j);
            vd_json_obj_end(&j);
        }
        vd_json_arr_end(&j);
        struct vd_partition_table pt;
        struct vd_error perr = {0};
        if (vd_image_partitions(img, &pt, &perr) == 0) {
            vd_json_obj_begin(&j, "partition_table");
            vd_json_str(&j, "scheme", pt.scheme[0] ? pt.scheme : NULL);
            vd_json_arr_begin(&j, "partitions");
            for (size_t k = 0; k < pt.n; k++) {
                struct vd_partition *p = &pt.parts[k];
                char pview[48];
                snprintf(pview, sizeof(pview), "%s-p%u.raw", view, p->number);
                vd_json_obj_begin(&j, NULL);
                vd_json_str(&j, "view", pview);
                vd_json_u64(&j, "number", p->number);
                vd_json_u64(&j, "offset", p->offset);
                vd_json_u64(&j, "size", p->size);
                vd_json_str(&j, "type", p->type);
                if (p->uuid[0])
                    vd_json_str(&j, "uuid", p->uuid);
                if (p->name[0])
                    vd_json_str(&j, "name", p->name);
                if (p->table_size != p->size)
                    vd_json_u64(&j, "table_size", p->table_size); /* clipped at the end */
                vd_json_obj_end(&j);
            }
            vd_json_arr_end(&j);
            if (pt.beyond_end)
                vd_json_u64(&j, "beyond_end", pt.beyond_end);
            vd_json_obj_end(&j);
            vd_partition_table_free(&pt);
        } else {
            vd_json_str(&j, "partition_error", perr.msg);
        }
        vd_json_obj_end(&j);
    }
    vd_json_arr_end(&j);
    if (g)
        vd_guest_info_json(g, &j);
    else if (guest_error)
        vd_json_str(&j, "guest_error", guest_error);
    if (src->io->ops->stats) {
        vd_json_obj_begin(&j, "io");
        src->io->ops->stats(src->io, &j);
        vd_json_obj_end(&j);
    }
    vd_json_obj_end(&j);
    *out = vd_json_finish(&j);
    if (!*out)
        return vd_err(err, -ENOMEM, "out of memory");
    return 0;
}

int vd_source_check(struct vd_source *src, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    int worst = VD_CHECK_CLEAN;
    if (src->ova) {
        int r = vd_ova_check(src->ova, cb, opaque, err);
        if (r < 0)
            return r;
        worst = VD_MAX(worst, r);
        /* Importers size the new disk from ovf:capacity: a disk whose own
         * virtual size differs would be truncated or padded on import. */
        for (size_t i = 0; i < src->ndisks; i++) {
            const struct vd_ova_disk *d = &src->ova->disks[i];
            if (d->capacity && d->capacity != src->disks[i]->size) {
                char msg[512];
                snprintf(msg, sizeof(msg),
                         "ovf: %s: ovf:capacity is %" PRIu64
                         " bytes but the disk's virtual size is %" PRIu64 " bytes",
                         d->member, d->capacity, src->disks[i]->size);
                cb(opaque, true, msg);
                worst = VD_CHECK_CORRUPT;
            }
        }
    }
    for (size_t i = 0; i < src->ndisks; i++) {
        /* A partition table that reaches past the disk's end means a
         * truncated or wrongly sized image: the guest would lose data. */
        struct vd_partition_table pt;
        struct vd_error perr = {0};
        if (vd_image_partitions(src->disks[i], &pt, &perr) == 0) {
            char msg[512];
            for (size_t k = 0; k < pt.n; k++) {
                if (pt.parts[k].table_size == pt.parts[k].size)
                    continue;
                snprintf(msg, sizeof(msg),
                         "%s: partition %u runs past the end of the disk: the table gives %" PRIu64
                         " bytes, %" PRIu64 " are present",
                         src->disks[i]->name, pt.parts[k].number, pt.parts[k].table_size,
                         pt.parts[k].size);
                cb(opaque, true, msg);
                worst = VD_CHECK_CORRUPT;
            }
            if (pt.beyond_end) {
                snprintf(
                    msg, sizeof(msg),
                    "%s: %zu partition(s) of the table start past the end of the disk (%" PRIu64
                    " bytes)",
                    src->disks[i]->name, pt.beyond_end, src->disks[i]->size);
                cb(opaque, true, msg);
                worst = VD_CHECK_CORRUPT;
            }
            vd_partition_table_free(&pt);
        }
        for (struct vd_image *img = src->disks[i]; img; img = img->backing) {
            if (!img->ops->check)
                continue;
            int r = img->ops->check(img, cb, opaque, err);
            if (r < 0)
                return r;
            if (r == VD_CHECK_CORRUPT || worst == VD_CHECK_CORRUPT)
                worst = VD_CHECK_CORRUPT;
            else
                worst = VD_MAX(worst, r);
        }
    }
    return worst;
}
