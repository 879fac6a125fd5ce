/* OVA container: placeholder until the reader lands. */
#include <errno.h>

#include "formats/ova.h"

bool vd_ova_probe(const uint8_t *head, size_t head_len)
{
    return false;
}

int vd_ova_open(struct vd_io *io, struct vd_ova **out, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "ova: %s: not supported yet", io->name);
}

void vd_ova_close(struct vd_ova *ova)
{
}

void vd_ova_info(struct vd_ova *ova, struct vd_json *j)
{
}

int vd_ova_check(struct vd_ova *ova, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    return 0;
}
