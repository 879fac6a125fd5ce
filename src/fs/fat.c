#include <errno.h>

#include "fs/fs_int.h"

static int fat_open(struct vd_fs *fs, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP, "fs: %s: fat is not read yet", fs->dev->name);
}

static void fat_close(struct vd_fs *fs)
{
}

const struct vd_fs_ops vd_fs_fat_ops = {.name = "vfat", .open = fat_open, .close = fat_close};
