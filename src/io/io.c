/* Generic io helpers and URI dispatch; backends live in file.c, slice.c, s3.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

int vd_io_init(struct vd_io *io, const struct vd_io_ops *ops, const char *name, uint64_t size)
{
    io->ops = ops;
    io->name = strdup(name ? name : "");
    io->size = size;
    io->refcnt = 1;
    return io->name ? 0 : -ENOMEM;
}

void vd_io_ref(struct vd_io *io)
{
    __atomic_add_fetch(&io->refcnt, 1, __ATOMIC_RELAXED);
}

void vd_io_unref(struct vd_io *io)
{
    if (!io)
        return;
    if (__atomic_sub_fetch(&io->refcnt, 1, __ATOMIC_ACQ_REL) == 0) {
        char *name = io->name;
        io->ops->close(io);
        free(name);
    }
}

int vd_io_identity(struct vd_io *io, struct vd_io_identity *id, struct vd_error *err)
{
    memset(id, 0, sizeof(*id));
    id->kind = VD_IO_ID_NONE;
    id->size = io->size;
    id->length = io->size;
    id->name = io->name;
    return io->ops->identity ? io->ops->identity(io, id, err) : 0;
}

const char *vd_io_basename(const struct vd_io *io)
{
    const char *s = strrchr(io->name, '/');
    return s && s[1] ? s + 1 : io->name;
}

bool vd_io_is_remote_uri(const char *uri)
{
    return !strncmp(uri, "s3://", 5) || !strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8);
}

int vd_io_open(const char *uri, const struct vd_io_opts *opts, bool writable, struct vd_io **out,
               struct vd_error *err)
{
    static const struct vd_io_opts none;
    int r;
    if (!opts)
        opts = &none;
    if (vd_io_is_remote_uri(uri)) {
        if (writable)
            return vd_err(err, -EROFS,
                          "%s: remote sources are read-only; mount it read-only, keep the changes "
                          "in an overlay (-o overlay=FILE), or write to a converted copy",
                          uri);
        r = vd_io_remote_open(uri, opts, out, err);
    } else {
        r = vd_io_file_open(uri, writable, out, err);
    }
    if (r == 0)
        (*out)->opts = *opts;
    return r;
}

int vd_io_pread_zfill(struct vd_io *io, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = io->ops->pread(io, p, len, off, err);
        if (n < 0)
            return (int)n;
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

void vd_io_willneed(struct vd_io *io, uint64_t off, uint64_t len)
{
    if (io->ops->willneed && len > 0 && off < io->size)
        io->ops->willneed(io, off, len);
}

int vd_io_pread_full(struct vd_io *io, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    uint8_t *p = buf;
    uint64_t start = off;
    while (len > 0) {
        ssize_t n = io->ops->pread(io, p, len, off, err);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return vd_err(err, -EIO,
                          "%s: short read: %zu bytes at offset %" PRIu64
                          " lie past end of file (%" PRIu64 " bytes); is the file truncated?",
                          io->name, len + (size_t)(off - start), start, io->size);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int vd_io_pwrite_full(struct vd_io *io, const void *buf, size_t len, uint64_t off,
                      struct vd_error *err)
{
    const uint8_t *p = buf;
    if (!io->ops->pwrite || !io->writable)
        return vd_err(err, -EROFS, "%s: opened read-only", io->name);
    while (len > 0) {
        ssize_t n = io->ops->pwrite(io, p, len, off, err);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return vd_err(err, -EIO, "%s: write returned 0", io->name);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int vd_io_open_relative(struct vd_io *io, const char *rel, bool writable, struct vd_io **out,
                        struct vd_error *err)
{
    if (!io->ops->open_relative)
        return vd_err(err, -ENOTSUP, "%s: cannot open '%s' beside it (%s backend)", io->name, rel,
                      io->ops->name);
    int r = io->ops->open_relative(io, rel, writable, out, err);
    if (r == 0)
        (*out)->opts = io->opts;
    return r;
}
