#include <errno.h>

#include "fs/fs_int.h"

static int xfs_open(struct vd_fs *fs, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "fs: %s: xfs is not read yet", fs->dev->name);
}

static void xfs_close(struct vd_fs *fs)
{
}

const struct vd_fs_ops vd_fs_xfs_ops = {.name = "xfs", .open = xfs_open, .close = xfs_close};
