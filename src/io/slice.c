/*
 * Slice backend: a read-only window [off, off+len) over another io. This is
 * how an OVA's disks are read in place (like nbdkit's tar filter).
 */
#include <errno.h>
#include <stdlib.h>

#include "common/checked.h"
#include "io/io.h"

struct slice_io {
    struct vd_io io;
    struct vd_io *parent;
    uint64_t off;
};

static ssize_t slice_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                           struct vd_error *err)
{
    struct slice_io *s = (struct slice_io *)io;
    if (off >= io->size)
        return 0;
    if (len > io->size - off)
        len = (size_t)(io->size - off);
    return s->parent->ops->pread(s->parent, buf, len, s->off + off, err);
}

static int slice_block_status(struct vd_io *io, uint64_t off, uint64_t len, uint64_t *pnum,
                              struct vd_error *err)
{
    struct slice_io *s = (struct slice_io *)io;
    *pnum = len;
    if (!s->parent->ops->block_status)
        return VD_IO_DATA;
    return s->parent->ops->block_status(s->parent, s->off + off, len, pnum, err);
}

static void slice_willneed(struct vd_io *io, uint64_t off, uint64_t len)
{
    struct slice_io *s = (struct slice_io *)io;
    if (off >= io->size)
        return;
    vd_io_willneed(s->parent, s->off + off, VD_MIN(len, io->size - off));
}

static void slice_stats(struct vd_io *io, struct vd_json *j)
{
    struct slice_io *s = (struct slice_io *)io;
    if (s->parent->ops->stats)
        s->parent->ops->stats(s->parent, j);
}

static void slice_close(struct vd_io *io)
{
    struct slice_io *s = (struct slice_io *)io;
    vd_io_unref(s->parent);
    free(s);
}

static int slice_fd(struct vd_io *io, uint64_t *base)
{
    struct slice_io *s = (struct slice_io *)io;
    uint64_t pbase = 0;
    int fd = s->parent->ops->fd ? s->parent->ops->fd(s->parent, &pbase) : -1;
    if (fd < 0 || ck_add(pbase, s->off, base))
        return -1;
    return fd;
}

/* The file the window lies in, and where. */
static int slice_identity(struct vd_io *io, struct vd_io_identity *id, struct vd_error *err)
{
    struct slice_io *s = (struct slice_io *)io;
    int r = vd_io_identity(s->parent, id, err);
    if (r < 0)
        return r;
    id->offset += s->off;
    id->length = io->size;
    return 0;
}

static const struct vd_io_ops slice_ops = {
    .name = "slice",
    .pread = slice_pread,
    .block_status = slice_block_status,
    .stats = slice_stats,
    .close = slice_close,
    .fd = slice_fd,
    .identity = slice_identity,
    .willneed = slice_willneed,
};

int vd_io_slice(struct vd_io *parent, uint64_t off, uint64_t len, const char *name,
                struct vd_io **out, struct vd_error *err)
{
    if (off > parent->size || len > parent->size - off)
        return vd_err(err, -EINVAL, "%s: member '%s' (%llu bytes at %llu) runs past end of file",
                      parent->name, name, (unsigned long long)len, (unsigned long long)off);
    struct slice_io *s = calloc(1, sizeof(*s));
    if (!s || vd_io_init(&s->io, &slice_ops, name, len) != 0) {
        free(s);
        return vd_err(err, -ENOMEM, "%s: out of memory", parent->name);
    }
    vd_io_ref(parent);
    s->parent = parent;
    s->off = off;
    s->io.opts = parent->opts;
    *out = &s->io;
    return 0;
}
