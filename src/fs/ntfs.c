#include <errno.h>

#include "fs/fs_int.h"

static int ntfs_open(struct vd_fs *fs, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "fs: %s: ntfs is not read yet", fs->dev->name);
}

static void ntfs_close(struct vd_fs *fs)
{
}

const struct vd_fs_ops vd_fs_ntfs_ops = {.name = "ntfs", .open = ntfs_open, .close = ntfs_close};
