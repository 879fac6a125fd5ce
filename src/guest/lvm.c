#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest/lvm.h"

int vd_lvm_read_pv(vd_lvm_pread_fn rd, void *opaque, uint64_t dev_bytes, const char *devname,
                   struct vd_lvm_pvdev *out, struct vd_error *err)
{
    memset(out, 0, sizeof(*out));
    return 0;
}

void vd_lvm_pvdev_free(struct vd_lvm_pvdev *p)
{
    free(p->meta);
    free(p->meta_error);
}

int vd_lvm_assemble(const struct vd_lvm_pvdev *pvs, size_t npvs, struct vd_lvm **out,
                    struct vd_error *err)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : vd_err(err, -ENOMEM, "out of memory");
}

void vd_lvm_free(struct vd_lvm *l)
{
    free(l);
}

int vd_lvm_map(const struct vd_lvm_lv *lv, uint64_t off, uint64_t len, size_t *dev,
               uint64_t *dev_off, uint64_t *run, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "lvm: not yet");
}
