/* vmdk driver: placeholder until the driver lands (probe never matches). */
#include <errno.h>

#include "formats/format.h"

static int vmdk_probe(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                      uint64_t file_size)
{
    return 0;
}

static int vmdk_open(struct vd_image *img, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "vmdk: %s: format not supported yet", img->name);
}

static void vmdk_close(struct vd_image *img)
{
}

static int vmdk_pread(struct vd_image *img, void *buf, size_t len, uint64_t off,
                      struct vd_error *err)
{
    return -ENOTSUP;
}

const struct vd_format_ops vd_format_vmdk = {
    .name = "vmdk",
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .pread = vmdk_pread,
};
