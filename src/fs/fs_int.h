/*
 * Internal vtable of the read-only guest filesystems (src/fs/). Each
 * filesystem file fills one struct vd_fs_ops; fs.c dispatches, resolves
 * paths and symbolic links once for all of them (the rules of fs.h), so a
 * driver only answers questions about inode numbers:
 *
 *   path --fs.c resolver--> lookup(dir_ino, name) ... --> ino
 *        getattr(ino), readlink(ino), pread(ino), readdir(ino)
 *
 * A driver's "ino" is any 64-bit key it can turn back into a file
 * (ext2/XFS/NTFS: the inode or MFT record number; FAT: the device offset of
 * the directory entry). Drivers never follow links themselves.
 */
#ifndef VDISK_FS_INT_H
#define VDISK_FS_INT_H

#include "vdisk/fs.h"

struct vd_fs;

/* readdir callback: a name without '/' or NUL, never "." or "..";
 * non-zero stops the walk and is returned by readdir. */
typedef int (*vd_fs_fill)(void *opaque, const char *name);

struct vd_fs_ops {
    const char *name; /* "ext4"... as vd_fs_type() says it; open may refine */
    /* Reads the superblock from fs->dev; sets fs->priv and fs->root. */
    int (*open)(struct vd_fs *fs, struct vd_error *err);
    void (*close)(struct vd_fs *fs); /* must accept a half-opened fs */
    int (*statfs)(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err);
    /* -ENOENT when dir has no such name. dir is a directory (fs.c checks). */
    int (*lookup)(struct vd_fs *fs, uint64_t dir, const char *name, uint64_t *ino,
                  struct vd_error *err);
    int (*getattr)(struct vd_fs *fs, uint64_t ino, struct vd_fs_stat *st, struct vd_error *err);
    /* Target of the link ino into buf (NUL-terminated); -ENAMETOOLONG if
     * it does not fit in cap. */
    int (*readlink)(struct vd_fs *fs, uint64_t ino, char *buf, size_t cap, struct vd_error *err);
    /* Up to len bytes at off; *got short only at the end of the file. */
    int (*pread)(struct vd_fs *fs, uint64_t ino, void *buf, size_t len, uint64_t off, size_t *got,
                 struct vd_error *err);
    int (*readdir)(struct vd_fs *fs, uint64_t ino, vd_fs_fill fill, void *opaque,
                   struct vd_error *err);
};

struct vd_fs {
    const struct vd_fs_ops *ops;
    const struct vd_fs_dev *dev;
    const char *type; /* what vd_fs_type() returns */
    uint64_t root;
    void *priv;
};

/* Read from the device, checked against its size. */
int vd_fs_dev_read(const struct vd_fs_dev *dev, void *buf, size_t len, uint64_t off,
                   struct vd_error *err);

extern const struct vd_fs_ops vd_fs_ext2_ops;
extern const struct vd_fs_ops vd_fs_ntfs_ops;
extern const struct vd_fs_ops vd_fs_xfs_ops;
extern const struct vd_fs_ops vd_fs_fat_ops;

#endif
