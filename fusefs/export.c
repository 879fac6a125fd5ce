/* export/ directory: placeholder until the encoders land (issue 4). */
#include <errno.h>
#include <string.h>

#include "export.h"

int export_opt(const char *key, const char *val)
{
    return 0;
}
bool export_enabled(void)
{
    return false;
}
int export_init(void)
{
    return 0;
}
int export_getattr(const char *name, struct stat *st)
{
    return -ENOENT;
}
int export_readdir(const char *name, void *buf, fuse_fill_dir_t filler)
{
    return -ENOENT;
}
int export_create(const char *name, mode_t mode, struct fuse_file_info *fi)
{
    return -EROFS;
}
int export_open(const char *name, struct fuse_file_info *fi)
{
    return -ENOENT;
}
int export_read(const char *name, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    return -EBADF;
}
int export_write(const char *name, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    return -EBADF;
}
int export_truncate(const char *name, off_t size, struct fuse_file_info *fi)
{
    return -EROFS;
}
int export_flush(const char *name, struct fuse_file_info *fi)
{
    return 0;
}
int export_release(const char *name, struct fuse_file_info *fi)
{
    return 0;
}
int export_unlink(const char *name)
{
    return -EROFS;
}
int export_getxattr(const char *name, const char *attr, char *value, size_t size)
{
    return -ENODATA;
}
int export_listxattr(const char *name, char *list, size_t size)
{
    return 0;
}
off_t export_lseek(const char *name, off_t off, int whence, struct fuse_file_info *fi)
{
    return -EINVAL;
}
void export_shutdown(void)
{
}
