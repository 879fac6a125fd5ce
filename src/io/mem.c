/*
 * Memory backend: a read-only io over a caller's buffer, for fuzzers and
 * unit tests that feed whole images from memory. The buffer is not copied
 * and must outlive the io. It has no open_relative, so images that name
 * other files (extents, parents) fail cleanly with -ENOTSUP.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/mem.h"

struct mem_io {
    struct vd_io io; /* first: "subclassing" */
    const uint8_t *buf;
};

static ssize_t mem_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                         struct vd_error *err)
{
    struct mem_io *m = (struct mem_io *)io;
    if (off >= io->size)
        return 0;
    if (len > io->size - off)
        len = (size_t)(io->size - off);
    memcpy(buf, m->buf + off, len);
    return (ssize_t)len;
}

static void mem_close(struct vd_io *io)
{
    free(io);
}

static const struct vd_io_ops mem_ops = {
    .name = "mem",
    .pread = mem_pread,
    .close = mem_close,
};

int vd_io_mem_open(const void *buf, size_t len, const char *name, struct vd_io **out,
                   struct vd_error *err)
{
    struct mem_io *m = calloc(1, sizeof(*m));
    if (!m || vd_io_init(&m->io, &mem_ops, name ? name : "mem", len) != 0) {
        free(m);
        return vd_err(err, -ENOMEM, "%s: out of memory", name ? name : "mem");
    }
    m->buf = buf;
    *out = &m->io;
    return 0;
}
