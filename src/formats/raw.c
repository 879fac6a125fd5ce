/*
 * raw: the file is the disk. Always probes with the lowest non-zero score, so
 * it is the fallback when no other driver claims a file. Reads and writes go
 * straight to the io; bytes past the file's end (never, for a fixed size)
 * read as zeros.
 */
#include <errno.h>

#include "formats/format.h"

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

static int raw_pread(struct vd_image *img, void *buf, size_t len, uint64_t off,
                     struct vd_error *err)
{
    return vd_io_pread_zfill(img->io, buf, len, off, err);
}

static int raw_pwrite(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                      struct vd_error *err)
{
    return vd_io_pwrite_full(img->io, buf, len, off, err);
}

static int raw_flush(struct vd_image *img, struct vd_error *err)
{
    return img->io->ops->flush ? img->io->ops->flush(img->io, err) : 0;
}

static int raw_block_status(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum,
                            struct vd_error *err)
{
    *pnum = len;
    if (!img->io->ops->block_status)
        return VD_STATUS_DATA;
    return img->io->ops->block_status(img->io, off, len, pnum, err);
}

static int raw_map(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum,
                   struct vd_io **io, uint64_t *io_off, struct vd_error *err)
{
    *pnum = len;
    *io = img->io;
    *io_off = off;
    return 1;
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
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .flush = raw_flush,
    .block_status = raw_block_status,
    .map = raw_map,
    .allocated = raw_allocated,
};
