/*
 * libvdisk guest filesystems, read-only and without a kernel mount: a small
 * vtable over the libraries made for each (src/fs/): ext2/3/4 with
 * libext2fs, NTFS with libntfs-3g, XFS with libfsxfs, FAT (an ESP) with our
 * own reader. Used by `vdisk inspect` and `vdisk preflight`.
 *
 * Paths are absolute inside the filesystem ("/etc/os-release"). Symbolic
 * links are resolved inside the filesystem, never on the host: an absolute
 * target restarts at the filesystem's root; ".." stops at the root; at most
 * VD_FS_MAX_LINKS links per lookup (-ELOOP beyond). NTFS and FAT names
 * match without regard to case, as those filesystems do.
 */
#ifndef VDISK_FS_H
#define VDISK_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

#define VD_FS_MAX_LINKS 40

/* The device a filesystem is read from: a partition, an LV, a test file. */
struct vd_fs_dev {
    const char *name; /* for messages: "disk-p1", "lvm-vg0-root" */
    uint64_t size;
    void *opaque;
    /* Read exactly len bytes at off (off + len <= size); 0 or -errno. */
    int (*pread)(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err);
};

struct vd_fs;

enum vd_fs_ftype { VD_FS_REG, VD_FS_DIR, VD_FS_LNK, VD_FS_OTHER };
struct vd_fs_stat {
    enum vd_fs_ftype type;
    uint64_t size;
    uint32_t mode; /* permission bits where the filesystem has them */
    uint64_t ino;
};

/* Open the filesystem on dev. fstype is what libblkid named ("ext4",
 * "xfs", "ntfs", "vfat"), or NULL to probe. -ENOTSUP (with the reason in
 * err) for a type we do not read (btrfs...), -EINVAL for a corrupt one.
 * dev must outlive the vd_fs. */
int vd_fs_open(const struct vd_fs_dev *dev, const char *fstype, struct vd_fs **out,
               struct vd_error *err);
void vd_fs_close(struct vd_fs *fs);
const char *vd_fs_type(const struct vd_fs *fs);

/* Size and free space in bytes, from the superblock's counters. */
int vd_fs_statfs(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err);

/* lstat (follow false) or stat (follow true). -ENOENT when absent. */
int vd_fs_stat(struct vd_fs *fs, const char *path, bool follow, struct vd_fs_stat *st,
               struct vd_error *err);
/* Whole regular file (links followed) into a malloc'd, NUL-terminated
 * buffer; -EFBIG if it is larger than max. */
int vd_fs_read(struct vd_fs *fs, const char *path, size_t max, char **data, size_t *len,
               struct vd_error *err);
/* Part of a regular file: reads up to len bytes at off into buf; *got is
 * short only at the end of the file. */
int vd_fs_pread(struct vd_fs *fs, const char *path, void *buf, size_t len, uint64_t off,
                size_t *got, struct vd_error *err);
/* Names in a directory (links followed), without "." and "..": a malloc'd
 * array of malloc'd strings; free with vd_fs_names_free. */
int vd_fs_readdir(struct vd_fs *fs, const char *path, char ***names, size_t *n,
                  struct vd_error *err);
void vd_fs_names_free(char **names, size_t n);
/* The target of a symbolic link (the final component is not followed). */
int vd_fs_readlink(struct vd_fs *fs, const char *path, char *buf, size_t cap, struct vd_error *err);

/* ---- initramfs archives (src/fs/initramfs.c, libarchive) ----
 * An initramfs is one or more cpio archives, each optionally compressed
 * (gzip, xz, zstd, lz4, bzip2, lzma), concatenated; Debian and RHEL put an
 * uncompressed early-microcode cpio first. cb gets every member's path
 * (without a leading "./" or "/"); a non-zero return stops the walk. */
typedef int (*vd_initramfs_cb)(void *opaque, const char *path);
int vd_initramfs_list(const void *data, size_t len, vd_initramfs_cb cb, void *opaque,
                      struct vd_error *err);

#endif
