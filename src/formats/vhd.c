/* vhd driver: placeholder until the driver lands (probe never matches). */
#include <errno.h>

#include "formats/format.h"

static int vhd_probe(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                      uint64_t file_size)
{
    return 0;
}

static int vhd_open(struct vd_image *img, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "vhd: %s: format not supported yet", img->name);
}

static void vhd_close(struct vd_image *img)
{
}

static int vhd_pread(struct vd_image *img, void *buf, size_t len, uint64_t off,
                      struct vd_error *err)
{
    return -ENOTSUP;
}

const struct vd_format_ops vd_format_vhd = {
    .name = "vhd",
    .probe = vhd_probe,
    .open = vhd_open,
    .close = vhd_close,
    .pread = vhd_pread,
};
