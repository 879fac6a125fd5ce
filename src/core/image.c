/*
 * Image open/probe/read. The core owns struct vd_image and the driver's
 * private state; drivers only fill them. Range checks happen here once, so
 * drivers can trust [off, off+len) lies within the virtual size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "formats/format.h"

static int probe_format(struct vd_io *io, const struct vd_format_ops **out, struct vd_error *err)
{
    size_t head_len = (size_t)VD_MIN(io->size, (uint64_t)VD_PROBE_HEAD);
    size_t tail_len = (size_t)VD_MIN(io->size, (uint64_t)VD_PROBE_TAIL);
    uint8_t *head = malloc(VD_PROBE_HEAD), *tail = malloc(VD_PROBE_TAIL);
    int r = -ENOMEM, best = 0;
    if (!head || !tail) {
        vd_err(err, r, "%s: out of memory", io->name);
        goto out;
    }
    r = vd_io_pread_full(io, head, head_len, 0, err);
    if (r == 0)
        r = vd_io_pread_full(io, tail, tail_len, io->size - tail_len, err);
    if (r < 0)
        goto out;
    *out = &vd_format_raw;
    for (size_t i = 0; vd_formats[i]; i++) {
        int score = vd_formats[i]->probe(head, head_len, tail, tail_len, io->size);
        if (score > best) {
            best = score;
            *out = vd_formats[i];
        }
    }
out:
    free(head);
    free(tail);
    return r;
}

int vd_image_open_io(struct vd_io *io, const char *name, const struct vd_open_opts *opts, int depth,
                     struct vd_image **out, struct vd_error *err)
{
    static const struct vd_open_opts none;
    const struct vd_format_ops *ops = NULL;
    struct vd_image *img = NULL;
    int r;

    if (!opts)
        opts = &none;
    if (opts->format) {
        ops = vd_format_find(opts->format);
        if (!ops) {
            r = vd_err(err, -EINVAL, "%s: unknown format '%s'", io->name, opts->format);
            goto fail;
        }
    } else {
        r = probe_format(io, &ops, err);
        if (r < 0)
            goto fail;
    }
    img = calloc(1, sizeof(*img));
    if (!img || !(img->name = strdup(name)) ||
        (ops->priv_size && !(img->priv = calloc(1, ops->priv_size)))) {
        r = vd_err(err, -ENOMEM, "%s: out of memory", io->name);
        goto fail;
    }
    img->ops = ops;
    img->io = io;
    io = NULL; /* owned by img now */
    img->opts = *opts;
    img->depth = depth;
    img->sector_size = 512;
    r = ops->open(img, err);
    if (r < 0)
        goto fail;
    *out = img;
    return 0;

fail:
    vd_io_unref(io);
    vd_image_close(img);
    return r;
}

void vd_image_close(struct vd_image *img)
{
    if (!img)
        return;
    if (img->ops && img->priv)
        img->ops->close(img);
    vd_image_close(img->backing);
    vd_io_unref(img->io);
    free(img->priv);
    free(img->name);
    free(img);
}

int vd_image_open_backing(struct vd_image *img, const char *rel, const char *fmt,
                          struct vd_error *err)
{
    struct vd_io *io;
    if (img->depth + 1 >= VD_MAX_CHAIN)
        return vd_err(err, -ELOOP,
                      "%s: backing chain deeper than %d images (a loop?) at parent '%s'", img->name,
                      VD_MAX_CHAIN, rel);
    int r = vd_io_open_relative(img->io, rel, false, &io, err);
    if (r < 0)
        return r;
    if (!strcmp(io->name, img->io->name)) {
        vd_io_unref(io);
        return vd_err(err, -ELOOP, "%s: names itself as its own parent", img->name);
    }
    struct vd_open_opts o = img->opts;
    o.writable = false; /* parents are never written */
    o.format = fmt;
    const char *base = strrchr(io->name, '/');
    base = base ? base + 1 : io->name;
    char *name = strdup(base);
    if (!name) {
        vd_io_unref(io);
        return vd_err(err, -ENOMEM, "out of memory");
    }
    r = vd_image_open_io(io, name, &o, img->depth + 1, &img->backing, err);
    free(name);
    return r;
}

int vd_image_read_backing(struct vd_image *img, void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    struct vd_image *b = img->backing;
    if (!b || off >= b->size) {
        memset(buf, 0, len);
        return 0;
    }
    /* A parent smaller than its child reads as zeros past its end. */
    size_t n = (size_t)VD_MIN((uint64_t)len, b->size - off);
    int r = b->ops->pread(b, buf, n, off, err);
    if (r == 0 && n < len)
        memset((uint8_t *)buf + n, 0, len - n);
    return r;
}

static int check_range(struct vd_image *img, size_t len, uint64_t off, struct vd_error *err)
{
    uint64_t end;
    if (ck_add(off, len, &end) || end > img->size)
        return vd_err(err, -EINVAL,
                      "%s: access of %zu bytes at offset %" PRIu64
                      " is past the virtual size (%" PRIu64 " bytes)",
                      img->name, len, off, img->size);
    return 0;
}

int vd_image_pread(struct vd_image *img, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    int r = check_range(img, len, off, err);
    if (r < 0 || len == 0)
        return r;
    return img->ops->pread(img, buf, len, off, err);
}

int vd_image_pwrite(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                    struct vd_error *err)
{
    if (!img->ops->pwrite)
        return vd_err(err, -EROFS,
                      "%s: %s%s%s images cannot be written in place; mount it read-only, keep the "
                      "changes in an overlay (-o overlay=FILE), or write to a converted copy",
                      img->name, img->ops->name, img->subformat ? " " : "",
                      img->subformat ? img->subformat : "");
    if (!img->opts.writable)
        return vd_err(err, -EROFS, "%s: opened read-only", img->name);
    int r = check_range(img, len, off, err);
    if (r < 0 || len == 0)
        return r;
    return img->ops->pwrite(img, buf, len, off, err);
}

bool vd_image_can_write(const struct vd_image *img)
{
    return img->ops->pwrite && img->opts.writable && img->io->writable;
}

int vd_image_flush(struct vd_image *img, struct vd_error *err)
{
    return img->ops->flush ? img->ops->flush(img, err) : 0;
}

int vd_image_block_status(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *len_out,
                          struct vd_error *err)
{
    if (off >= img->size || len == 0)
        return vd_err(err, -EINVAL, "%s: block status at %" PRIu64 " past end", img->name, off);
    len = VD_MIN(len, img->size - off);
    for (;;) {
        if (!img->ops->block_status) {
            *len_out = len;
            return VD_STATUS_DATA;
        }
        uint64_t pnum = 0;
        int st = img->ops->block_status(img, off, len, &pnum, err);
        if (st < 0)
            return st;
        if (pnum == 0 || pnum > len)
            pnum = len; /* defensive: a driver bug must not hang the caller */
        *len_out = pnum;
        if (st != VD_STATUS_BACKING)
            return st;
        if (!img->backing || off >= img->backing->size) {
            if (img->backing)
                *len_out = pnum;
            return VD_STATUS_ZERO;
        }
        img = img->backing;
        len = VD_MIN(pnum, img->size - off);
    }
}

int vd_image_map(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum, int *fd,
                 uint64_t *fd_off, struct vd_error *err)
{
    struct vd_io *io = NULL;
    uint64_t n = 0, io_off = 0, end, base = 0;
    if (off >= img->size || len == 0)
        return vd_err(err, -EINVAL, "%s: map at %" PRIu64 " past end", img->name, off);
    len = VD_MIN(len, img->size - off);
    *pnum = len;
    if (!img->ops->map)
        return 0;
    int r = img->ops->map(img, off, len, &n, &io, &io_off, err);
    if (r < 0)
        return r;
    if (n == 0 || n > len)
        return 0; /* defensive: a driver bug reads through pread */
    *pnum = n;
    if (r == 0 || !io || !io->ops->fd || ck_add(io_off, n, &end) || end > io->size)
        return 0;
    int f = io->ops->fd(io, &base);
    if (f < 0 || ck_add(base, io_off, fd_off) || *fd_off > (uint64_t)INT64_MAX - n)
        return 0;
    *fd = f;
    return 1;
}

uint64_t vd_image_size(const struct vd_image *img)
{
    return img->size;
}
const char *vd_image_name(const struct vd_image *img)
{
    return img->name;
}
const char *vd_image_format(const struct vd_image *img)
{
    return img->ops->name;
}
const char *vd_image_subformat(const struct vd_image *img)
{
    return img->subformat;
}
struct vd_image *vd_image_backing(const struct vd_image *img)
{
    return img->backing;
}

uint64_t vd_image_allocated(struct vd_image *img)
{
    return img->ops->allocated ? img->ops->allocated(img) : img->io->size;
}

const char *vd_version(void)
{
    return "0.1.0";
}
