#include <errno.h>

#include "fs/fs_int.h"

int vd_initramfs_list(const void *data, size_t len, vd_initramfs_cb cb, void *opaque,
                      struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "initramfs: not yet");
}
