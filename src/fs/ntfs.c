/*
 * NTFS, read-only, through libntfs-3g (the library behind the ntfs-3g FUSE
 * driver) over our own struct ntfs_device_operations, so the bytes come
 * from a struct vd_fs_dev instead of a host file:
 *
 *   ntfs_device_alloc(name, 0, &nt_dev_ops, state)
 *   ntfs_device_mount(dev, NTFS_MNT_RDONLY | NTFS_MNT_IGNORE_HIBERFILE)
 *   ntfs_set_ignore_case(vol)       names match without regard to case,
 *                                   with the volume's own $UpCase table
 *
 * Every write entry point fails with EROFS. A hibernated volume (or one
 * Windows left with fast startup) and an unclean one open read-only; what
 * they show is the state on disk, without the hibernated session's
 * unwritten changes. The "ino" is the MFT record number. Symbolic links and
 * junctions are links (ntfs_make_symlink() turns their reparse data into a
 * target; an absolute target on the volume becomes "/path", as ntfs-3g's
 * mount shows it at its root); other reparse points (WOF-compressed and
 * deduplicated files) are reported as regular files whose reads may fail.
 * readdir lists Win32 and POSIX names, not the 8.3 DOS aliases, and hides
 * the NTFS metafiles ($MFT... records below 16), as ntfs-3g does.
 *
 * statfs: total clusters and free clusters (from $Bitmap) times the
 * cluster size.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_int.h"

#ifdef HAVE_NTFS3G
#include <ntfs-3g/types.h>

#include <ntfs-3g/attrib.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/logging.h>
#include <ntfs-3g/reparse.h>
#include <ntfs-3g/unistr.h>
#include <ntfs-3g/volume.h>

struct nt_io {
    const struct vd_fs_dev *dev;
    s64 pos;
    struct vd_error err; /* the device's message for the last failed read */
};

struct nt_state {
    struct nt_io io;
    struct ntfs_device *ndev;
    ntfs_volume *vol;
};

static struct nt_io *nt_io(struct ntfs_device *d)
{
    return d->d_private;
}

static int nt_dev_open(struct ntfs_device *d, int flags)
{
    if ((flags & O_ACCMODE) != O_RDONLY) {
        errno = EROFS;
        return -1;
    }
    NDevSetOpen(d);
    NDevSetReadOnly(d);
    nt_io(d)->pos = 0;
    return 0;
}

static int nt_dev_close(struct ntfs_device *d)
{
    NDevClearOpen(d);
    return 0;
}

static s64 nt_dev_pread(struct ntfs_device *d, void *buf, s64 count, s64 off)
{
    struct nt_io *io = nt_io(d);
    if (off < 0 || count < 0) {
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)off >= io->dev->size)
        return 0;
    if ((uint64_t)count > io->dev->size - (uint64_t)off)
        count = (s64)(io->dev->size - (uint64_t)off);
    if (count && io->dev->pread(io->dev->opaque, buf, (size_t)count, (uint64_t)off, &io->err) < 0) {
        errno = EIO;
        return -1;
    }
    return count;
}

static s64 nt_dev_read(struct ntfs_device *d, void *buf, s64 count)
{
    s64 n = nt_dev_pread(d, buf, count, nt_io(d)->pos);
    if (n > 0)
        nt_io(d)->pos += n;
    return n;
}

static s64 nt_dev_seek(struct ntfs_device *d, s64 off, int whence)
{
    struct nt_io *io = nt_io(d);
    s64 base = whence == SEEK_SET   ? 0
               : whence == SEEK_CUR ? io->pos
               : whence == SEEK_END ? (s64)io->dev->size
                                    : -1;
    if (base < 0 || base + off < 0) {
        errno = EINVAL;
        return -1;
    }
    io->pos = base + off;
    return io->pos;
}

static s64 nt_dev_write(struct ntfs_device *d, const void *buf, s64 count)
{
    errno = EROFS;
    return -1;
}

static s64 nt_dev_pwrite(struct ntfs_device *d, const void *buf, s64 count, s64 off)
{
    errno = EROFS;
    return -1;
}

static int nt_dev_sync(struct ntfs_device *d)
{
    return 0;
}

static int nt_dev_stat(struct ntfs_device *d, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = S_IFREG | 0444;
    st->st_size = (off_t)nt_io(d)->dev->size;
    return 0;
}

static int nt_dev_ioctl(struct ntfs_device *d, unsigned long request, void *argp)
{
    errno = ENOTTY;
    return -1;
}

static struct ntfs_device_operations nt_dev_ops = {
    .open = nt_dev_open,
    .close = nt_dev_close,
    .seek = nt_dev_seek,
    .read = nt_dev_read,
    .write = nt_dev_write,
    .pread = nt_dev_pread,
    .pwrite = nt_dev_pwrite,
    .sync = nt_dev_sync,
    .stat = nt_dev_stat,
    .ioctl = nt_dev_ioctl,
};

/* A libntfs-3g failure (errno) as -errno and a message; the device's own
 * message first when a read failed. */
static int nt_fail(struct vd_fs *fs, int e, const char *what, struct vd_error *err)
{
    struct nt_state *s = fs->priv;
    if (s && s->io.err.code) {
        int code = s->io.err.code;
        vd_err(err, code, "%s", s->io.err.msg);
        vd_err_clear(&s->io.err);
        return code;
    }
    if (e <= 0)
        e = EIO;
    int code = e == ENOMEM ? -ENOMEM : e == ENOENT ? -ENOENT : -EINVAL;
    return vd_err(err, code, "fs: %s: ntfs: %s: %s", fs->dev->name, what, strerror(e));
}

static int nt_open(struct vd_fs *fs, struct vd_error *err)
{
    const char *dn = fs->dev->name;
    struct nt_state *s = calloc(1, sizeof(*s));
    if (!s)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", dn);
    fs->priv = s;
    s->io.dev = fs->dev;
    /* the library never prints (VD_NTFS_DEBUG=1: libntfs-3g's own messages) */
    ntfs_log_set_handler(getenv("VD_NTFS_DEBUG") ? ntfs_log_handler_stderr : ntfs_log_handler_null);
    s->ndev = ntfs_device_alloc(dn, 0, &nt_dev_ops, &s->io);
    if (!s->ndev)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", dn);
    errno = 0;
    s->vol = ntfs_device_mount(s->ndev, NTFS_MNT_RDONLY | NTFS_MNT_IGNORE_HIBERFILE);
    if (!s->vol) {
        int e = errno ? errno : EIO;
        if (s->io.err.code)
            return nt_fail(fs, e, "", err);
        return vd_err(err, e == EOPNOTSUPP ? -ENOTSUP : -EINVAL,
                      e == EPERM ? "fs: %s: ntfs: libntfs-3g refuses the volume even read-only: "
                                   "Windows hibernated it or left it with fast startup and its "
                                   "metadata is inconsistent (%s); boot Windows and shut it down "
                                   "fully (shutdown /s /t 0)"
                                 : "fs: %s: ntfs: libntfs-3g cannot open the volume: %s",
                      dn, strerror(e));
    }
    ntfs_set_ignore_case(s->vol);
    fs->root = FILE_root;
    fs->type = "ntfs";
    return 0;
}

static void nt_close(struct vd_fs *fs)
{
    struct nt_state *s = fs->priv;
    if (!s)
        return;
    if (s->vol)
        ntfs_umount(s->vol, FALSE); /* frees the device too */
    else if (s->ndev)
        ntfs_device_free(s->ndev);
    free(s);
    fs->priv = NULL;
}

static int nt_statfs(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err)
{
    struct nt_state *s = fs->priv;
    if (ntfs_volume_get_free_space(s->vol) < 0)
        return nt_fail(fs, errno, "free space from $Bitmap", err);
    *total = (uint64_t)s->vol->nr_clusters * s->vol->cluster_size;
    *free_bytes =
        (uint64_t)(s->vol->free_clusters > 0 ? s->vol->free_clusters : 0) * s->vol->cluster_size;
    return 0;
}

static int nt_inode(struct vd_fs *fs, uint64_t ino, ntfs_inode **ni, struct vd_error *err)
{
    struct nt_state *s = fs->priv;
    errno = 0;
    *ni = ntfs_inode_open(s->vol, (MFT_REF)ino);
    if (!*ni) {
        char what[48];
        snprintf(what, sizeof(what), "MFT record %" PRIu64, ino);
        return nt_fail(fs, errno, what, err);
    }
    return 0;
}

static int nt_lookup(struct vd_fs *fs, uint64_t dir, const char *name, uint64_t *ino,
                     struct vd_error *err)
{
    ntfs_inode *dni;
    int r = nt_inode(fs, dir, &dni, err);
    if (r < 0)
        return r;
    /* ntfs_inode_lookup_by_mbsname() leaks its UTF-16 copy of the name
     * (libntfs-3g 2022.10.3, found by LeakSanitizer): convert it here */
    ntfschar *uname = NULL;
    int ulen = ntfs_mbstoucs(name, &uname);
    if (ulen <= 0) {
        free(uname);
        ntfs_inode_close(dni);
        return -ENOENT; /* not valid UTF-8: no NTFS name can match it */
    }
    errno = 0;
    u64 m = ntfs_inode_lookup_by_name(dni, uname, ulen);
    int e = errno;
    free(uname);
    ntfs_inode_close(dni);
    if (m == (u64)-1)
        return e == ENOENT || e == 0 ? -ENOENT : nt_fail(fs, e, name, err);
    *ino = MREF(m);
    return 0;
}

/* The link target of a symlink or junction, malloc'd, or NULL. Windows
 * symlinks and junctions, and WSL symlinks, are reparse points
 * (ntfs_make_symlink reads them); an Interix symlink (what ntfs-3g writes
 * by default, and Services for Unix before it) is a system file whose data
 * is "IntxLNK\1" and the UTF-16LE target. */
static char *nt_link(ntfs_inode *ni)
{
    if (ni->flags & FILE_ATTR_REPARSE_POINT)
        return ntfs_make_symlink(ni, "");
    if (!(ni->flags & FILE_ATTR_SYSTEM) || (ni->mrec->flags & MFT_RECORD_IS_DIRECTORY))
        return NULL;
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na)
        return NULL;
    char *target = NULL;
    s64 size = na->data_size;
    if (size > 8 && size <= 8 + 2 * 4096 && !(size & 1)) {
        /* ntfschar-aligned storage: the UTF-16 target starts 8 bytes in */
        ntfschar *raw = malloc((size_t)size);
        if (raw && ntfs_attr_pread(na, 0, size, raw) == size && !memcmp(raw, "IntxLNK\1", 8) &&
            ntfs_ucstombs(raw + 4, (int)((size - 8) / 2), &target, 0) < 0) {
            free(target);
            target = NULL;
        }
        free(raw);
    }
    ntfs_attr_close(na);
    return target;
}

static int nt_getattr(struct vd_fs *fs, uint64_t ino, struct vd_fs_stat *st, struct vd_error *err)
{
    ntfs_inode *ni;
    int r = nt_inode(fs, ino, &ni, err);
    if (r < 0)
        return r;
    char *link = nt_link(ni);
    bool dir = (ni->mrec->flags & MFT_RECORD_IS_DIRECTORY) != 0;
    st->ino = ino;
    st->size = 0;
    if (link) {
        st->type = VD_FS_LNK;
        st->size = strlen(link);
        st->mode = 0777;
    } else if (dir) {
        st->type = VD_FS_DIR;
        st->mode = 0755;
    } else {
        st->type = VD_FS_REG;
        st->mode = ni->flags & FILE_ATTR_READONLY ? 0444 : 0644;
        ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
        if (na) {
            st->size = (uint64_t)na->data_size;
            ntfs_attr_close(na);
        }
    }
    free(link);
    ntfs_inode_close(ni);
    return 0;
}

static int nt_readlink(struct vd_fs *fs, uint64_t ino, char *buf, size_t cap, struct vd_error *err)
{
    ntfs_inode *ni;
    int r = nt_inode(fs, ino, &ni, err);
    if (r < 0)
        return r;
    char *link = nt_link(ni);
    ntfs_inode_close(ni);
    if (!link)
        return -EINVAL;
    size_t n = strlen(link);
    if (n >= cap)
        r = -ENAMETOOLONG;
    else
        memcpy(buf, link, n + 1);
    free(link);
    return r;
}

static int nt_pread(struct vd_fs *fs, uint64_t ino, void *buf, size_t len, uint64_t off,
                    size_t *got, struct vd_error *err)
{
    ntfs_inode *ni;
    *got = 0;
    int r = nt_inode(fs, ino, &ni, err);
    if (r < 0)
        return r;
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na) {
        r = nt_fail(fs, errno, "open $DATA", err);
        goto out;
    }
    while (*got < len) {
        s64 n = ntfs_attr_pread(na, (s64)(off + *got), (s64)(len - *got), (char *)buf + *got);
        if (n < 0) {
            r = nt_fail(fs, errno, "read $DATA", err);
            break;
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    ntfs_attr_close(na);
out:
    ntfs_inode_close(ni);
    return r;
}

struct nt_fill {
    vd_fs_fill fill;
    void *opaque;
    int rc;
};

static int nt_filldir(void *opaque, const ntfschar *name, const int name_len, const int name_type,
                      const s64 pos, const MFT_REF mref, const unsigned dt_type)
{
    struct nt_fill *f = opaque;
    if (name_type == FILE_NAME_DOS || MREF(mref) < FILE_first_user)
        return 0;
    char *s = NULL;
    if (ntfs_ucstombs(name, name_len, &s, 0) < 0 || !s) {
        free(s);
        return 0; /* a name that does not convert: skip, as ntfs-3g does */
    }
    if (s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/'))
        f->rc = f->fill(f->opaque, s);
    free(s);
    return f->rc ? -1 : 0;
}

static int nt_readdir(struct vd_fs *fs, uint64_t ino, vd_fs_fill fill, void *opaque,
                      struct vd_error *err)
{
    ntfs_inode *ni;
    int r = nt_inode(fs, ino, &ni, err);
    if (r < 0)
        return r;
    struct nt_fill f = {fill, opaque, 0};
    s64 pos = 0;
    errno = 0;
    /* ntfs_set_ignore_case() also makes ntfs_readdir() show every name in
     * lower case (through vol->locase); lookups need the former, listings
     * must show the names as stored, so the table is hidden meanwhile. */
    ntfs_volume *vol = ((struct nt_state *)fs->priv)->vol;
    ntfschar *locase = vol->locase;
    vol->locase = NULL;
    int rr = ntfs_readdir(ni, &pos, &f, nt_filldir);
    int e = errno;
    vol->locase = locase;
    ntfs_inode_close(ni);
    if (f.rc)
        return f.rc;
    if (rr < 0)
        return nt_fail(fs, e, "read directory", err);
    return 0;
}

const struct vd_fs_ops vd_fs_ntfs_ops = {
    .name = "ntfs",
    .open = nt_open,
    .close = nt_close,
    .statfs = nt_statfs,
    .lookup = nt_lookup,
    .getattr = nt_getattr,
    .readlink = nt_readlink,
    .pread = nt_pread,
    .readdir = nt_readdir,
};

#else /* !HAVE_NTFS3G */

static int nt_open(struct vd_fs *fs, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP,
                  "fs: %s: ntfs is not read: vdisk was built without libntfs-3g "
                  "(install ntfs-3g-dev and rebuild)",
                  fs->dev->name);
}

static void nt_close(struct vd_fs *fs)
{
}

const struct vd_fs_ops vd_fs_ntfs_ops = {.name = "ntfs", .open = nt_open, .close = nt_close};

#endif
