/*
 * XFS, read-only, through libfsxfs (libyal, Debian libfsxfs-dev 20201117)
 * over a libbfio handle whose callbacks read our struct vd_fs_dev:
 *
 *   libbfio_handle_initialize(read = xfs_bfio_read, seek = ..., size = ...)
 *   libfsxfs_volume_open_file_io_handle() -> file entries by inode number
 *
 * Checked against what mkfs.xfs 6.1 makes (v5, crc, ftype, sparse inodes,
 * reflink, bigtime): superblock, shortform/block/leaf/node directories
 * (3000 entries in the test, 20000 by hand), extent- and btree-format
 * data forks, sparse files and local symlinks read correctly
 * (tests/unit/test_fs.c). Two gaps, worked around here. Its lookup by name
 * fails and its lookup by path leaks on a miss, so lookups go through our
 * own sorted name cache (xfs_lookup). For a remote symlink (a target
 * longer than the inode's literal area, extents-format) on a v5
 * filesystem it returns the block's 56-byte "XSLM" header instead of the
 * target, so we read those ourselves: XFS Algorithms & Data Structures
 * (3rd ed.), 14.1 superblock, 15.1 inode core (di_format at 5, di_size
 * at 56, di_nextents at 76, the v3 core is 176 bytes), 16.1 extent
 * records (the 128-bit packed bmbt record), 20.2 remote symlinks (struct
 * xfs_dsymlink_hdr, 56 bytes). libfsxfs's timestamps are wrong with
 * bigtime; we report none.
 *
 * statfs: sb_dblocks and sb_fdblocks times sb_blocksize from superblock 0
 * (what xfs_db prints; with lazy-count the free count is exact only after a
 * clean unmount, as the kernel itself recomputes it at mount).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "fs/fs_int.h"

#ifdef HAVE_FSXFS
#include <libbfio.h>
#include <libfsxfs.h>

struct xfs_io {
    const struct vd_fs_dev *dev;
    uint64_t off;
    bool open;
    struct vd_error err; /* the device's message for the last failed read */
};

/* A directory's names, sorted, with their index in libfsxfs's order. */
struct xfs_name {
    char *name;
    int idx;
};

struct xfs_dir {
    uint64_t ino;
    libfsxfs_file_entry_t *fe; /* kept open: it holds the parsed entries */
    struct xfs_name *v;
    int n;
};

#define XFS_DIR_CACHE 64

static void xfs_dir_free(struct xfs_dir *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->v[i].name);
    free(d->v);
    d->v = NULL;
    d->n = 0;
    libfsxfs_file_entry_free(&d->fe, NULL);
}

struct xfs_state {
    struct xfs_dir dirs[XFS_DIR_CACHE]; /* see xfs_lookup; round-robin */
    unsigned ndirs, next_dir;
    struct xfs_io *io;
    libbfio_handle_t *handle;
    libfsxfs_volume_t *vol;
    uint32_t blocksize, agblocks;
    uint16_t inodesize;
    uint8_t agblklog, inopblog;
    uint64_t dblocks, fdblocks;
    bool v5;
};

static int xfs_bfio_free(intptr_t **h, libbfio_error_t **e)
{
    free(*h);
    *h = NULL;
    return 1;
}

static int xfs_bfio_clone(intptr_t **dst, intptr_t *src, libbfio_error_t **e)
{
    struct xfs_io *c = malloc(sizeof(*c));
    if (!c)
        return -1;
    memcpy(c, src, sizeof(*c));
    *dst = (intptr_t *)c;
    return 1;
}

static int xfs_bfio_open(intptr_t *h, int flags, libbfio_error_t **e)
{
    struct xfs_io *io = (struct xfs_io *)h;
    if (flags & LIBBFIO_ACCESS_FLAG_WRITE)
        return -1; /* read-only */
    io->open = true;
    return 1;
}

static int xfs_bfio_close(intptr_t *h, libbfio_error_t **e)
{
    ((struct xfs_io *)h)->open = false;
    return 0;
}

static ssize_t xfs_bfio_read(intptr_t *h, uint8_t *buf, size_t size, libbfio_error_t **e)
{
    struct xfs_io *io = (struct xfs_io *)h;
    if (io->off >= io->dev->size)
        return 0;
    if (size > io->dev->size - io->off)
        size = (size_t)(io->dev->size - io->off);
    if (size > SSIZE_MAX)
        size = SSIZE_MAX;
    if (io->dev->pread(io->dev->opaque, buf, size, io->off, &io->err) < 0)
        return -1;
    io->off += size;
    return (ssize_t)size;
}

static ssize_t xfs_bfio_write(intptr_t *h, const uint8_t *buf, size_t size, libbfio_error_t **e)
{
    return -1; /* read-only */
}

static off64_t xfs_bfio_seek(intptr_t *h, off64_t off, int whence, libbfio_error_t **e)
{
    struct xfs_io *io = (struct xfs_io *)h;
    int64_t base = whence == SEEK_SET   ? 0
                   : whence == SEEK_CUR ? (int64_t)io->off
                   : whence == SEEK_END ? (int64_t)io->dev->size
                                        : -1;
    if (base < 0 || (off < 0 && -off > base))
        return -1;
    io->off = (uint64_t)(base + off);
    return (off64_t)io->off;
}

static int xfs_bfio_exists(intptr_t *h, libbfio_error_t **e)
{
    return 1;
}

static int xfs_bfio_is_open(intptr_t *h, libbfio_error_t **e)
{
    return ((struct xfs_io *)h)->open ? 1 : 0;
}

static int xfs_bfio_size(intptr_t *h, size64_t *size, libbfio_error_t **e)
{
    *size = ((struct xfs_io *)h)->dev->size;
    return 1;
}

/* A libfsxfs failure as -errno and a message: the device's own message
 * when a read failed, else libfsxfs's backtrace. */
static int xfs_fail(struct vd_fs *fs, libfsxfs_error_t *e, const char *what, struct vd_error *err)
{
    struct xfs_state *s = fs->priv;
    int code = -EINVAL;
    if (s && s->io && s->io->err.code) {
        code = s->io->err.code;
        vd_err(err, code, "%s", s->io->err.msg);
        vd_err_clear(&s->io->err);
    } else {
        char detail[256] = "no detail";
        if (e)
            libfsxfs_error_sprint(e, detail, sizeof(detail));
        detail[strcspn(detail, "\n")] = '\0';
        vd_err(err, code, "fs: %s: xfs: %s: %s", fs->dev->name, what, detail);
    }
    libfsxfs_error_free(&e);
    return code;
}

static int xfs_open(struct vd_fs *fs, struct vd_error *err)
{
    const char *dn = fs->dev->name;
    uint8_t sb[512];
    int r = vd_fs_dev_read(fs->dev, sb, sizeof(sb), 0, err);
    if (r < 0)
        return r;
    if (memcmp(sb, "XFSB", 4))
        return vd_err(err, -EINVAL, "fs: %s: xfs: no superblock magic XFSB at byte 0", dn);
    struct xfs_state *s = calloc(1, sizeof(*s));
    if (!s)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", dn);
    fs->priv = s;
    s->blocksize = be32(sb + 4);
    s->dblocks = be64(sb + 8);
    s->agblocks = be32(sb + 84);
    s->v5 = (be16(sb + 100) & 0xf) == 5;
    s->inodesize = be16(sb + 104);
    s->agblklog = sb[124];
    s->inopblog = sb[123];
    s->fdblocks = be64(sb + 144);
    fs->root = be64(sb + 56);
    if (s->blocksize < 512 || s->blocksize > 65536 || (s->blocksize & (s->blocksize - 1)) ||
        s->inodesize < 256 || s->inodesize > 2048 || s->agblklog > 31 || s->inopblog > 7 ||
        s->agblocks == 0)
        return vd_err(err, -EINVAL,
                      "fs: %s: xfs: superblock geometry is invalid (block size %u, inode size "
                      "%u, sb_agblklog %u)",
                      dn, s->blocksize, s->inodesize, s->agblklog);

    s->io = calloc(1, sizeof(*s->io));
    if (!s->io)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", dn);
    s->io->dev = fs->dev;
    libbfio_error_t *be = NULL;
    /* NON_MANAGED: we free s->io ourselves, after the handle */
    if (libbfio_handle_initialize(&s->handle, (intptr_t *)s->io, xfs_bfio_free, xfs_bfio_clone,
                                  xfs_bfio_open, xfs_bfio_close, xfs_bfio_read, xfs_bfio_write,
                                  xfs_bfio_seek, xfs_bfio_exists, xfs_bfio_is_open, xfs_bfio_size,
                                  LIBBFIO_FLAG_IO_HANDLE_NON_MANAGED, &be) != 1) {
        libbfio_error_free(&be);
        return vd_err(err, -ENOMEM, "fs: %s: xfs: cannot set up a libbfio handle", dn);
    }
    libfsxfs_error_t *e = NULL;
    if (libfsxfs_volume_initialize(&s->vol, &e) != 1)
        return xfs_fail(fs, e, "cannot set up libfsxfs", err);
    if (libfsxfs_volume_open_file_io_handle(s->vol, s->handle, LIBFSXFS_OPEN_READ, &e) != 1) {
        libfsxfs_volume_free(&s->vol, NULL);
        return xfs_fail(fs, e, "libfsxfs cannot open the volume", err);
    }
    fs->type = "xfs";
    return 0;
}

static void xfs_close(struct vd_fs *fs)
{
    struct xfs_state *s = fs->priv;
    if (!s)
        return;
    if (s->vol) {
        libfsxfs_volume_close(s->vol, NULL);
        libfsxfs_volume_free(&s->vol, NULL);
    }
    if (s->handle)
        libbfio_handle_free(&s->handle, NULL);
    for (unsigned i = 0; i < s->ndirs; i++)
        xfs_dir_free(&s->dirs[i]);
    free(s->io);
    free(s);
    fs->priv = NULL;
}

static int xfs_statfs(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err)
{
    struct xfs_state *s = fs->priv;
    *total = s->dblocks * s->blocksize;
    *free_bytes = s->fdblocks * s->blocksize;
    return 0;
}

static int xfs_entry(struct vd_fs *fs, uint64_t ino, libfsxfs_file_entry_t **fe,
                     struct vd_error *err)
{
    struct xfs_state *s = fs->priv;
    libfsxfs_error_t *e = NULL;
    *fe = NULL;
    if (libfsxfs_volume_get_file_entry_by_inode(s->vol, ino, fe, &e) != 1) {
        char what[64];
        snprintf(what, sizeof(what), "inode %" PRIu64, ino);
        return xfs_fail(fs, e, what, err);
    }
    return 0;
}

static int xfs_name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct xfs_name *)a)->name, ((const struct xfs_name *)b)->name);
}

/* The names of directory ino, from the cache or read now (by index: the
 * only libfsxfs directory walk that neither fails nor leaks, see
 * xfs_lookup). */
static int xfs_dir_get(struct vd_fs *fs, uint64_t ino, struct xfs_dir **out, struct vd_error *err)
{
    struct xfs_state *s = fs->priv;
    for (unsigned i = 0; i < s->ndirs; i++)
        if (s->dirs[i].ino == ino) {
            *out = &s->dirs[i];
            return 0;
        }
    libfsxfs_file_entry_t *fe;
    int r = xfs_entry(fs, ino, &fe, err);
    if (r < 0)
        return r;
    libfsxfs_error_t *e = NULL;
    struct xfs_dir d = {.ino = ino, .fe = fe};
    int n = 0;
    if (libfsxfs_file_entry_get_number_of_sub_file_entries(fe, &n, &e) != 1 || n < 0) {
        r = xfs_fail(fs, e, "read directory", err);
        goto out;
    }
    d.v = calloc(n ? (size_t)n : 1, sizeof(*d.v));
    if (!d.v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        libfsxfs_file_entry_t *sub = NULL;
        char name[1024];
        if (libfsxfs_file_entry_get_sub_file_entry_by_index(fe, i, &sub, &e) != 1 ||
            libfsxfs_file_entry_get_utf8_name(sub, (uint8_t *)name, sizeof(name), &e) != 1) {
            libfsxfs_file_entry_free(&sub, NULL);
            r = xfs_fail(fs, e, "read directory", err);
            goto out;
        }
        libfsxfs_file_entry_free(&sub, NULL);
        if (!name[0] || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
            continue;
        d.v[d.n].name = strdup(name);
        if (!d.v[d.n].name) {
            r = -ENOMEM;
            goto out;
        }
        d.v[d.n++].idx = i;
    }
    if (d.n)
        qsort(d.v, (size_t)d.n, sizeof(*d.v), xfs_name_cmp);
    unsigned slot = s->ndirs < XFS_DIR_CACHE ? s->ndirs++ : s->next_dir++ % XFS_DIR_CACHE;
    xfs_dir_free(&s->dirs[slot]);
    s->dirs[slot] = d;
    *out = &s->dirs[slot];
    return 0;
out:
    xfs_dir_free(&d); /* frees fe too */
    if (r == -ENOMEM)
        vd_err(err, r, "fs: %s: xfs: out of memory reading a directory", fs->dev->name);
    return r;
}

/* libfsxfs 20201117's get_sub_file_entry_by_utf8_name fails (-1, no error
 * set) on every directory, and its lookup by whole path leaks an inode
 * (LeakSanitizer) whenever the name is absent, which inspection asks all
 * the time. So a lookup finds the name in the directory's sorted name list
 * (read once by index, cached for the last XFS_DIR_CACHE directories) and
 * takes the entry at that index. */
static int xfs_lookup(struct vd_fs *fs, uint64_t dir, const char *name, uint64_t *ino,
                      struct vd_error *err)
{
    struct xfs_dir *d;
    int r = xfs_dir_get(fs, dir, &d, err);
    if (r < 0)
        return r;
    struct xfs_name key = {.name = (char *)name};
    struct xfs_name *hit =
        d->n ? bsearch(&key, d->v, (size_t)d->n, sizeof(*d->v), xfs_name_cmp) : NULL;
    if (!hit)
        return -ENOENT;
    libfsxfs_file_entry_t *sub = NULL;
    libfsxfs_error_t *e = NULL;
    if (libfsxfs_file_entry_get_sub_file_entry_by_index(d->fe, hit->idx, &sub, &e) != 1 ||
        libfsxfs_file_entry_get_inode_number(sub, ino, &e) != 1)
        r = xfs_fail(fs, e, name, err);
    libfsxfs_file_entry_free(&sub, NULL);
    return r;
}

static int xfs_getattr(struct vd_fs *fs, uint64_t ino, struct vd_fs_stat *st, struct vd_error *err)
{
    libfsxfs_file_entry_t *fe;
    int r = xfs_entry(fs, ino, &fe, err);
    if (r < 0)
        return r;
    libfsxfs_error_t *e = NULL;
    uint16_t mode = 0;
    uint64_t size = 0;
    if (libfsxfs_file_entry_get_file_mode(fe, &mode, &e) != 1 ||
        libfsxfs_file_entry_get_size(fe, &size, &e) != 1) {
        r = xfs_fail(fs, e, "inode attributes", err);
    } else {
        uint16_t t = mode & 0170000;
        st->type = t == 0100000   ? VD_FS_REG
                   : t == 0040000 ? VD_FS_DIR
                   : t == 0120000 ? VD_FS_LNK
                                  : VD_FS_OTHER;
        st->size = size;
        st->mode = mode & 07777;
        st->ino = ino;
    }
    libfsxfs_file_entry_free(&fe, NULL);
    return r;
}

/* Device offset of filesystem block fsb (agno in the high bits). */
static int xfs_fsb_off(struct xfs_state *s, uint64_t fsb, uint64_t *off)
{
    uint64_t agno = fsb >> s->agblklog, agbno = fsb & ((1ull << s->agblklog) - 1);
    if (agbno >= s->agblocks)
        return -EINVAL;
    uint64_t bn = agno * s->agblocks + agbno;
    if (bn >= s->dblocks)
        return -EINVAL;
    *off = bn * s->blocksize;
    return 0;
}

/* A remote (extents-format) symlink, read ourselves; see the top comment. */
static int xfs_remote_link(struct vd_fs *fs, uint64_t ino, const uint8_t *di, char *buf, size_t cap,
                           struct vd_error *err)
{
    struct xfs_state *s = fs->priv;
    uint64_t size = be64(di + 56);
    uint64_t next = be32(di + 76);
    if (s->v5 && (be64(di + 120) & (1ull << 4))) /* XFS_DIFLAG2_NREXT64: 64-bit count at 24 */
        next = be64(di + 24);
    size_t core = s->v5 ? 176 : 100;
    size_t hdr = s->v5 ? 56 : 0;
    if (size >= cap)
        return -ENAMETOOLONG;
    if (size > 1024 || next == 0 || next > (s->inodesize - core) / 16)
        return vd_err(err, -EINVAL,
                      "fs: %s: xfs: inode %" PRIu64 ": remote symlink of %" PRIu64
                      " bytes in %" PRIu64 " extents is invalid",
                      fs->dev->name, ino, size, next);
    size_t got = 0;
    uint8_t *blk = malloc(s->blocksize);
    if (!blk)
        return -ENOMEM;
    int r = 0;
    for (uint64_t i = 0; i < next && got < size; i++) {
        const uint8_t *rec = di + core + (size_t)i * 16;
        uint64_t l0 = be64(rec), l1 = be64(rec + 8);
        uint64_t start = ((l0 & 0x1ff) << 43) | (l1 >> 21);
        uint64_t count = l1 & 0x1fffff;
        for (uint64_t b = 0; b < count && got < size; b++) {
            uint64_t off;
            if (xfs_fsb_off(s, start + b, &off) < 0) {
                r = vd_err(err, -EINVAL,
                           "fs: %s: xfs: inode %" PRIu64 ": symlink block %" PRIu64
                           " is outside the filesystem",
                           fs->dev->name, ino, start + b);
                goto out;
            }
            if ((r = vd_fs_dev_read(fs->dev, blk, s->blocksize, off, err)) < 0)
                goto out;
            if (hdr && memcmp(blk, "XSLM", 4)) {
                r = vd_err(err, -EINVAL,
                           "fs: %s: xfs: inode %" PRIu64 ": symlink block has no XSLM magic",
                           fs->dev->name, ino);
                goto out;
            }
            size_t n = s->blocksize - hdr < size - got ? s->blocksize - hdr : (size_t)(size - got);
            memcpy(buf + got, blk + hdr, n);
            got += n;
        }
    }
    if (got < size)
        r = vd_err(err, -EINVAL, "fs: %s: xfs: inode %" PRIu64 ": symlink extents are short",
                   fs->dev->name, ino);
    else
        buf[size] = '\0';
out:
    free(blk);
    return r;
}

static int xfs_readlink(struct vd_fs *fs, uint64_t ino, char *buf, size_t cap, struct vd_error *err)
{
    struct xfs_state *s = fs->priv;
    /* the inode's place: 15.1's XFS_INO_TO_AGNO / AGBNO / OFFSET */
    uint64_t agno = ino >> (s->agblklog + s->inopblog);
    uint64_t agbno = (ino >> s->inopblog) & ((1ull << s->agblklog) - 1);
    uint64_t slot = ino & ((1ull << s->inopblog) - 1);
    uint64_t fsb = (agno << s->agblklog) | agbno, off;
    uint8_t di[2048];
    int r;
    if (xfs_fsb_off(s, fsb, &off) < 0)
        return vd_err(err, -EINVAL, "fs: %s: xfs: inode %" PRIu64 " is outside the filesystem",
                      fs->dev->name, ino);
    if ((r = vd_fs_dev_read(fs->dev, di, s->inodesize, off + slot * s->inodesize, err)) < 0)
        return r;
    if (memcmp(di, "IN", 2))
        return vd_err(err, -EINVAL, "fs: %s: xfs: inode %" PRIu64 " has no IN magic", fs->dev->name,
                      ino);
    if (di[5] == 2) /* XFS_DINODE_FMT_EXTENTS */
        return xfs_remote_link(fs, ino, di, buf, cap, err);

    libfsxfs_file_entry_t *fe;
    if ((r = xfs_entry(fs, ino, &fe, err)) < 0)
        return r;
    libfsxfs_error_t *e = NULL;
    size_t size = 0;
    if (libfsxfs_file_entry_get_utf8_symbolic_link_target_size(fe, &size, &e) != 1)
        r = xfs_fail(fs, e, "symbolic link", err);
    else if (size > cap)
        r = -ENAMETOOLONG;
    else if (size == 0)
        buf[0] = '\0';
    else if (libfsxfs_file_entry_get_utf8_symbolic_link_target(fe, (uint8_t *)buf, cap, &e) != 1)
        r = xfs_fail(fs, e, "symbolic link", err);
    libfsxfs_file_entry_free(&fe, NULL);
    return r;
}

static int xfs_pread(struct vd_fs *fs, uint64_t ino, void *buf, size_t len, uint64_t off,
                     size_t *got, struct vd_error *err)
{
    libfsxfs_file_entry_t *fe;
    *got = 0;
    int r = xfs_entry(fs, ino, &fe, err);
    if (r < 0)
        return r;
    libfsxfs_error_t *e = NULL;
    while (*got < len) {
        size_t chunk = len - *got > (1u << 30) ? (1u << 30) : len - *got;
        ssize_t n = libfsxfs_file_entry_read_buffer_at_offset(fe, (uint8_t *)buf + *got, chunk,
                                                              (off64_t)(off + *got), &e);
        if (n < 0) {
            r = xfs_fail(fs, e, "read file", err);
            break;
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    libfsxfs_file_entry_free(&fe, NULL);
    return r;
}

static int xfs_readdir(struct vd_fs *fs, uint64_t ino, vd_fs_fill fill, void *opaque,
                       struct vd_error *err)
{
    struct xfs_dir *d;
    int r = xfs_dir_get(fs, ino, &d, err);
    if (r < 0)
        return r;
    /* fill may not touch the cache: it only collects names */
    for (int i = 0; i < d->n; i++)
        if ((r = fill(opaque, d->v[i].name)) != 0)
            return r;
    return 0;
}

const struct vd_fs_ops vd_fs_xfs_ops = {
    .name = "xfs",
    .open = xfs_open,
    .close = xfs_close,
    .statfs = xfs_statfs,
    .lookup = xfs_lookup,
    .getattr = xfs_getattr,
    .readlink = xfs_readlink,
    .pread = xfs_pread,
    .readdir = xfs_readdir,
};

#else /* !HAVE_FSXFS */

static int xfs_open(struct vd_fs *fs, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP,
                  "fs: %s: xfs is not read: vdisk was built without libfsxfs "
                  "(install libfsxfs-dev and libbfio-dev and rebuild)",
                  fs->dev->name);
}

static void xfs_close(struct vd_fs *fs)
{
}

const struct vd_fs_ops vd_fs_xfs_ops = {.name = "xfs", .open = xfs_open, .close = xfs_close};

#endif
