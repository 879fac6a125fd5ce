/*
 * The export/ directory of the mount (fusefs/export.c): the FUSE face of
 * libvdisk's encoders (<vdisk/export.h>). vdiskfs.c routes every path under
 * "/export" here, with `name` the part after "/export/" ("" for the
 * directory itself). Each function returns 0 or -errno like a FUSE op.
 */
#ifndef VDISKFS_EXPORT_H
#define VDISKFS_EXPORT_H

#define FUSE_USE_VERSION 35
#include <fuse.h>
#include <stdbool.h>

/* Log a message for the user (vdiskfs.c): stderr in the foreground,
 * syslog when there is one, and the -o log=FILE file. No trailing newline;
 * "vdiskfs: " is prepended. */
void vdfs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse one -o option meant for exports (export=, vmdk_type=, vhd_type=,
 * vhdx_type=, compress_level=, ova_manifest=, ...). Returns 1 if consumed,
 * 0 if not an export option, -1 on a bad value (message printed). */
int export_opt(const char *key, const char *val);
/* S3 settings (region=, endpoint=, profile=, path_style) for an s3:// DEST;
 * vdiskfs.c calls it after parsing options, before export_init(). */
struct vd_open_opts;
void export_set_remote(const struct vd_open_opts *remote);
/* True when -o export=DEST was given (then export/ is shown). */
bool export_enabled(void);
/* Called once before fuse_main with the mount point (descriptors of
 * export/ files are recognised by the path the kernel shows for them);
 * prints and fails on a bad DEST. */
int export_init(const char *mountpoint);

int export_getattr(const char *name, struct stat *st);
int export_readdir(const char *name, void *buf, fuse_fill_dir_t filler);
int export_create(const char *name, mode_t mode, struct fuse_file_info *fi);
int export_open(const char *name, struct fuse_file_info *fi);
int export_read(const char *name, char *buf, size_t size, off_t off, struct fuse_file_info *fi);
int export_write(const char *name, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi);
int export_truncate(const char *name, off_t size, struct fuse_file_info *fi);
int export_flush(const char *name, struct fuse_file_info *fi);
/* fsync(2) asks for a durable output: it is fdatasync'd before its rename
 * at the last close (which reports any error). */
int export_fsync(const char *name, struct fuse_file_info *fi);
int export_release(const char *name, struct fuse_file_info *fi);
int export_unlink(const char *name);
int export_getxattr(const char *name, const char *attr, char *value, size_t size);
int export_listxattr(const char *name, char *list, size_t size);
off_t export_lseek(const char *name, off_t off, int whence, struct fuse_file_info *fi);
/* Abort every unfinished export (unmount or signal). */
void export_shutdown(void);

#endif
