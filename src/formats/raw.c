/*
 * raw: the file is the disk. Always probes with the lowest non-zero score, so
 * it is the fallback when no other driver claims a file. Reads and writes go
 * straight to the io; bytes past the file's end (never, for a fixed size)
 * read as zeros.
 */
#include <errno.h>

#include "core/driver.h"

static int raw_probe(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                     uint64_t file_size)
{
    return 1;
}

static int raw_open(struct vd_image *img, struct vd_error *err)
{
    img->size = img->io->size;
    img->subformat = NULL;
    return 0;
}

static void raw_close(struct vd_image *img)
{
}

/* The file is the disk: every byte is data where it is (holes in a sparse
 * file are found by the core's block status, through the io). */
static int raw_map(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                   struct vd_error *err)
{
    (void)err;
    m->kind = VD_MAP_DATA;
    m->len = len;
    m->io = img->io;
    m->io_off = off;
    return 0;
}

/* Nothing to allocate: map already answers data everywhere. */
static int raw_alloc(struct vd_image *img, uint64_t off, uint64_t len, const uint8_t *data,
                     struct vd_map *m, struct vd_error *err)
{
    (void)data;
    return raw_map(img, off, len, m, err);
}

static int raw_flush(struct vd_image *img, struct vd_error *err)
{
    return img->io->ops->flush ? img->io->ops->flush(img->io, err) : 0;
}

static uint64_t raw_allocated(struct vd_image *img)
{
    return img->io->size;
}

const struct vd_format_ops vd_format_raw = {
    .name = "raw",
    .probe = raw_probe,
    .open = raw_open,
    .close = raw_close,
    .map = raw_map,
    .alloc = raw_alloc,
    .flush = raw_flush,
    .allocated = raw_allocated,
};
