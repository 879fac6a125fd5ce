/*
 * ext2/3/4, read-only, through libext2fs (e2fsprogs), the library e2fsck
 * and debugfs use. Bytes come from a struct vd_fs_dev through our own
 * io_manager (the shape of e2fsprogs' lib/ext2fs/unix_io.c and test_io.c):
 *
 *   ext2fs_open2("vdfs:<dev pointer>", NULL, 0 (read-only), ..., &e2_io_manager)
 *       -> e2_io_open() -> channel->private_data = { dev, last error }
 *       -> read_blk64(block, count) -> dev->pread(block * block_size, ...)
 *
 * Every write entry point refuses (EXT2_ET_RO_FILSYS), so nothing can reach
 * the image even if libext2fs tried. The journal is not replayed: a
 * filesystem whose journal needs recovery is read as its last checkpoint
 * left it (what `debugfs` shows), which is what the guest would see before
 * its own replay only for files written in the last seconds before the
 * crash.
 *
 * statfs: s_blocks_count and s_free_blocks_count times the block size
 * (what dumpe2fs prints; df also subtracts metadata overhead).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"

#ifdef HAVE_EXT2FS
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

struct e2_chan {
    const struct vd_fs_dev *dev;
    struct vd_error err; /* the device's own message for the last failed read */
};

static errcode_t e2_io_open(const char *name, int flags, io_channel *channel);

static errcode_t e2_io_close(io_channel ch)
{
    if (--ch->refcount > 0)
        return 0;
    free(ch->private_data);
    free(ch->name);
    free(ch);
    return 0;
}

static errcode_t e2_io_set_blksize(io_channel ch, int blksize)
{
    ch->block_size = blksize;
    return 0;
}

static errcode_t e2_io_read_blk64(io_channel ch, unsigned long long block, int count, void *data)
{
    struct e2_chan *c = ch->private_data;
    /* count < 0 means -count bytes (ext2_io.h) */
    uint64_t len = count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * ch->block_size;
    uint64_t bs = (uint64_t)ch->block_size;
    if (block > UINT64_MAX / bs)
        return EXT2_ET_LLSEEK_FAILED;
    uint64_t off = block * bs;
    if (off > c->dev->size || len > c->dev->size - off) {
        vd_err(&c->err, -EINVAL,
               "fs: %s: ext2 read of block %llu is past the end of the device (%llu bytes): "
               "the filesystem is larger than its partition or corrupt",
               c->dev->name, block, (unsigned long long)c->dev->size);
        return EXT2_ET_SHORT_READ;
    }
    int r = c->dev->pread(c->dev->opaque, data, (size_t)len, off, &c->err);
    if (r < 0)
        return EXT2_ET_SHORT_READ;
    return 0;
}

static errcode_t e2_io_read_blk(io_channel ch, unsigned long block, int count, void *data)
{
    return e2_io_read_blk64(ch, block, count, data);
}

static errcode_t e2_io_write_blk64(io_channel ch, unsigned long long block, int count,
                                   const void *data)
{
    return EXT2_ET_RO_FILSYS;
}

static errcode_t e2_io_write_blk(io_channel ch, unsigned long block, int count, const void *data)
{
    return EXT2_ET_RO_FILSYS;
}

static errcode_t e2_io_write_byte(io_channel ch, unsigned long off, int count, const void *data)
{
    return EXT2_ET_RO_FILSYS;
}

static errcode_t e2_io_flush(io_channel ch)
{
    return 0;
}

static errcode_t e2_io_set_option(io_channel ch, const char *opt, const char *arg)
{
    return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager e2_io_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "vdisk read-only device",
    .open = e2_io_open,
    .close = e2_io_close,
    .set_blksize = e2_io_set_blksize,
    .read_blk = e2_io_read_blk,
    .write_blk = e2_io_write_blk,
    .flush = e2_io_flush,
    .write_byte = e2_io_write_byte,
    .set_option = e2_io_set_option,
    .read_blk64 = e2_io_read_blk64,
    .write_blk64 = e2_io_write_blk64,
};

static errcode_t e2_io_open(const char *name, int flags, io_channel *channel)
{
    void *p = NULL;
    if (flags & IO_FLAG_RW)
        return EXT2_ET_RO_FILSYS;
    if (!name || sscanf(name, "vdfs:%p", &p) != 1 || !p)
        return EXT2_ET_BAD_DEVICE_NAME;
    io_channel ch = calloc(1, sizeof(*ch));
    struct e2_chan *c = calloc(1, sizeof(*c));
    char *nm = strdup(name);
    if (!ch || !c || !nm) {
        free(ch);
        free(c);
        free(nm);
        return EXT2_ET_NO_MEMORY;
    }
    c->dev = p;
    ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
    ch->manager = &e2_io_manager;
    ch->name = nm;
    ch->block_size = 1024;
    ch->refcount = 1;
    ch->private_data = c;
    *channel = ch;
    return 0;
}

struct e2_state {
    ext2_filsys fs;
};

static ext2_filsys e2_fs(struct vd_fs *fs)
{
    return ((struct e2_state *)fs->priv)->fs;
}

/* Map a libext2fs error to -errno and a message, preferring the device's
 * own message when a read failed. */
static int e2_fail(struct vd_fs *fs, errcode_t e, const char *what, struct vd_error *err)
{
    struct e2_state *s = fs->priv;
    if (s && s->fs && s->fs->io) {
        struct e2_chan *c = s->fs->io->private_data;
        if (c->err.code) {
            int code = c->err.code;
            vd_err(err, code, "%s", c->err.msg);
            vd_err_clear(&c->err);
            return code;
        }
    }
    int code = -EINVAL;
    if (e == EXT2_ET_NO_MEMORY)
        code = -ENOMEM;
    else if (e == EXT2_ET_FILE_NOT_FOUND)
        code = -ENOENT;
    else if (e == EXT2_ET_UNSUPP_FEATURE || e == EXT2_ET_RO_UNSUPP_FEATURE)
        code = -ENOTSUP;
    else if (e > 0 && e < 256)
        code = -(int)e;
    return vd_err(err, code, "fs: %s: ext2: %s: %s", fs->dev->name, what, error_message(e));
}

static int e2_open(struct vd_fs *fs, struct vd_error *err)
{
    struct e2_state *s = calloc(1, sizeof(*s));
    if (!s)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", fs->dev->name);
    fs->priv = s;
    char name[64];
    snprintf(name, sizeof(name), "vdfs:%p", (const void *)fs->dev);
    /* flags 0: read-only. 64BITS: filesystems over 2^32 blocks. */
    errcode_t e = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
                               &e2_io_manager, &s->fs);
    if (e) {
        s->fs = NULL;
        return vd_err(err, e == EXT2_ET_UNSUPP_FEATURE ? -ENOTSUP : -EINVAL,
                      "fs: %s: ext2: cannot open the filesystem: %s", fs->dev->name,
                      error_message(e));
    }
    fs->root = EXT2_ROOT_INO;
    if (ext2fs_has_feature_journal_dev(s->fs->super))
        return vd_err(err, -ENOTSUP, "fs: %s: ext2: this is an external journal, not a filesystem",
                      fs->dev->name);
    fs->type = ext2fs_has_feature_extents(s->fs->super) || ext2fs_has_feature_64bit(s->fs->super)
                   ? "ext4"
               : ext2fs_has_feature_journal(s->fs->super) ? "ext3"
                                                          : "ext2";
    return 0;
}

static void e2_close(struct vd_fs *fs)
{
    struct e2_state *s = fs->priv;
    if (!s)
        return;
    if (s->fs)
        ext2fs_close_free(&s->fs);
    free(s);
    fs->priv = NULL;
}

static int e2_statfs(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err)
{
    ext2_filsys f = e2_fs(fs);
    uint64_t bs = f->blocksize;
    *total = ext2fs_blocks_count(f->super) * bs;
    *free_bytes = ext2fs_free_blocks_count(f->super) * bs;
    return 0;
}

static int e2_lookup(struct vd_fs *fs, uint64_t dir, const char *name, uint64_t *ino,
                     struct vd_error *err)
{
    ext2_ino_t i = 0;
    size_t len = strlen(name);
    if (len > EXT2_NAME_LEN)
        return -ENOENT;
    errcode_t e = ext2fs_lookup(e2_fs(fs), (ext2_ino_t)dir, name, (int)len, NULL, &i);
    if (e == EXT2_ET_FILE_NOT_FOUND)
        return -ENOENT;
    if (e)
        return e2_fail(fs, e, name, err);
    *ino = i;
    return 0;
}

static int e2_inode(struct vd_fs *fs, uint64_t ino, struct ext2_inode_large *in,
                    struct vd_error *err)
{
    ext2_filsys f = e2_fs(fs);
    if (ino == 0 || ino > f->super->s_inodes_count)
        return vd_err(err, -EINVAL, "fs: %s: ext2: inode %" PRIu64 " is out of range",
                      fs->dev->name, ino);
    memset(in, 0, sizeof(*in));
    errcode_t e = ext2fs_read_inode_full(f, (ext2_ino_t)ino, (struct ext2_inode *)in, sizeof(*in));
    if (e) {
        char what[48];
        snprintf(what, sizeof(what), "inode %" PRIu64, ino);
        return e2_fail(fs, e, what, err);
    }
    return 0;
}

static int e2_getattr(struct vd_fs *fs, uint64_t ino, struct vd_fs_stat *st, struct vd_error *err)
{
    struct ext2_inode_large in;
    int r = e2_inode(fs, ino, &in, err);
    if (r < 0)
        return r;
    uint16_t m = in.i_mode;
    st->type = LINUX_S_ISREG(m)   ? VD_FS_REG
               : LINUX_S_ISDIR(m) ? VD_FS_DIR
               : LINUX_S_ISLNK(m) ? VD_FS_LNK
                                  : VD_FS_OTHER;
    st->size = EXT2_I_SIZE(&in);
    st->mode = m & 07777;
    st->ino = ino;
    return 0;
}

static int e2_pread(struct vd_fs *fs, uint64_t ino, void *buf, size_t len, uint64_t off,
                    size_t *got, struct vd_error *err)
{
    ext2_file_t file;
    *got = 0;
    errcode_t e = ext2fs_file_open(e2_fs(fs), (ext2_ino_t)ino, 0, &file);
    if (e)
        return e2_fail(fs, e, "open file", err);
    e = ext2fs_file_llseek(file, off, EXT2_SEEK_SET, NULL);
    while (!e && *got < len) {
        unsigned int chunk = len - *got > (1u << 30) ? (1u << 30) : (unsigned int)(len - *got);
        unsigned int n = 0;
        e = ext2fs_file_read(file, (char *)buf + *got, chunk, &n);
        if (!e && n == 0)
            break;
        *got += n;
    }
    ext2fs_file_close(file);
    if (e)
        return e2_fail(fs, e, "read file", err);
    return 0;
}

static int e2_readlink(struct vd_fs *fs, uint64_t ino, char *buf, size_t cap, struct vd_error *err)
{
    struct ext2_inode_large in;
    int r = e2_inode(fs, ino, &in, err);
    if (r < 0)
        return r;
    uint64_t size = EXT2_I_SIZE(&in);
    if (size >= cap)
        return -ENAMETOOLONG;
    if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
        /* a fast symlink keeps its target in i_block (60 bytes) */
        if (size >= sizeof(in.i_block))
            return vd_err(err, -EINVAL, "fs: %s: ext2: inode %" PRIu64 ": fast symlink too long",
                          fs->dev->name, ino);
        memcpy(buf, in.i_block, size);
        buf[size] = '\0';
        return 0;
    }
    size_t got = 0;
    /* slow and inline-data symlinks read like a file (ext2fs_file_read
     * handles both) */
    r = e2_pread(fs, ino, buf, (size_t)size, 0, &got, err);
    if (r < 0)
        return r;
    buf[got] = '\0';
    return 0;
}

struct e2_dirwalk {
    vd_fs_fill fill;
    void *opaque;
    int rc;
};

static int e2_dir_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset, int blocksize,
                     char *b, void *priv)
{
    struct e2_dirwalk *w = priv;
    int len = ext2fs_dirent_name_len(d);
    char name[EXT2_NAME_LEN + 1];
    memcpy(name, d->name, (size_t)len);
    name[len] = '\0';
    if (!strcmp(name, ".") || !strcmp(name, "..") || len == 0 || memchr(name, '/', (size_t)len) ||
        strlen(name) != (size_t)len)
        return 0; /* a '/' or NUL in a name is corruption; skip rather than mislead */
    w->rc = w->fill(w->opaque, name);
    return w->rc ? DIRENT_ABORT : 0;
}

static int e2_readdir(struct vd_fs *fs, uint64_t ino, vd_fs_fill fill, void *opaque,
                      struct vd_error *err)
{
    struct e2_dirwalk w = {fill, opaque, 0};
    errcode_t e = ext2fs_dir_iterate2(e2_fs(fs), (ext2_ino_t)ino, 0, NULL, e2_dir_cb, &w);
    if (w.rc)
        return w.rc;
    if (e)
        return e2_fail(fs, e, "read directory", err);
    return 0;
}

const struct vd_fs_ops vd_fs_ext2_ops = {
    .name = "ext4",
    .open = e2_open,
    .close = e2_close,
    .statfs = e2_statfs,
    .lookup = e2_lookup,
    .getattr = e2_getattr,
    .readlink = e2_readlink,
    .pread = e2_pread,
    .readdir = e2_readdir,
};

#else /* !HAVE_EXT2FS */

static int e2_open(struct vd_fs *fs, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP,
                  "fs: %s: ext2/3/4 is not read: vdisk was built without libext2fs "
                  "(install libext2fs-dev and rebuild)",
                  fs->dev->name);
}

static void e2_close(struct vd_fs *fs)
{
}

const struct vd_fs_ops vd_fs_ext2_ops = {.name = "ext4", .open = e2_open, .close = e2_close};

#endif
