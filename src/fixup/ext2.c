/*
 * Fixup inside an ext2/3/4 filesystem image, without a kernel mount: the
 * view code (view.c) opens a partition or volume file of a vdiskfs view
 * here and runs the profile through libext2fs (e2fsprogs), the same
 * library debugfs and e2fsck use. Paths are looked up from the
 * filesystem's own root inode, so the guest's absolute symlinks resolve
 * inside the guest.
 *
 *   MNT/name/disk-p1.raw  --ext2fs_open2(RW)-->  / (inode 2)
 *                                                 etc/fstab  (rewritten in place)
 *                                                 etc/fstab.vdisk.orig (new inode)
 *
 * Writes: a changed file keeps its inode (content rewritten, size set,
 * mtime/ctime now); a backup is a new inode linked beside it with the same
 * mode and owner; a removal is a rename (link + unlink). libext2fs does not
 * write through the journal, so a filesystem whose journal needs recovery
 * is refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixup/fixup_int.h"

#ifdef HAVE_EXT2FS
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

struct e2_fs {
    ext2_filsys fs;
};

static int e2_errno(errcode_t e)
{
    if (e == EXT2_ET_FILE_NOT_FOUND)
        return -ENOENT;
    if (e == EXT2_ET_NO_MEMORY)
        return -ENOMEM;
    if (e == EXT2_ET_DIR_NO_SPACE || e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL)
        return -ENOSPC;
    if (e > 0 && e < 256)
        return -(int)e;
    return -EIO;
}

/* Directory inode of dir (relative to the root inode), following links. */
static int e2_dir(struct vd_fx_fs *x, const char *dir, ext2_ino_t *ino)
{
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    errcode_t e = ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, dir, ino);
    if (e)
        return e2_errno(e);
    return ext2fs_check_directory(fs, *ino) ? -ENOTDIR : 0;
}

static int e2_load(struct vd_fx_fs *x, const char *dir, const char *name, struct vd_fx_file *f,
                   bool *is_link, struct vd_error *err)
{
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    ext2_ino_t dino, ino;
    struct ext2_inode inode;
    int r = e2_dir(x, dir, &dino);
    if (r == -ENOENT || r == -ENOTDIR)
        return 0;
    if (r < 0)
        return vd_err(err, r, "fixup: %s: /%s: cannot look it up", x->label, dir);
    errcode_t e = ext2fs_lookup(fs, dino, name, (int)strlen(name), NULL, &ino);
    if (e == EXT2_ET_FILE_NOT_FOUND)
        return 0;
    if (!e)
        e = ext2fs_read_inode(fs, ino, &inode);
    if (e)
        return vd_err(err, e2_errno(e), "fixup: %s: /%s/%s: %s", x->label, dir, name,
                      error_message(e));
    *is_link = LINUX_S_ISLNK(inode.i_mode);
    if (!LINUX_S_ISREG(inode.i_mode))
        return 0;
    uint64_t size = EXT2_I_SIZE(&inode);
    if (size > VD_FIXUP_MAX_FILE)
        return vd_err(err, -EFBIG, "fixup: %s: /%s/%s: %llu bytes, more than the %u-byte limit",
                      x->label, dir, name, (unsigned long long)size, VD_FIXUP_MAX_FILE);
    ext2_file_t file;
    e = ext2fs_file_open(fs, ino, 0, &file);
    if (e)
        return vd_err(err, e2_errno(e), "fixup: %s: /%s/%s: %s", x->label, dir, name,
                      error_message(e));
    f->data = malloc((size_t)size + 1);
    unsigned got = 0;
    e = f->data ? ext2fs_file_read(file, f->data, (unsigned)size, &got) : EXT2_ET_NO_MEMORY;
    ext2fs_file_close(file);
    if (e || got != size) {
        free(f->data);
        f->data = NULL;
        return vd_err(err, e ? e2_errno(e) : -EIO, "fixup: %s: /%s/%s: short read", x->label, dir,
                      name);
    }
    f->data[got] = '\0';
    f->len = got;
    f->mode = inode.i_mode & 07777;
    f->uid = inode_uid(inode);
    f->gid = inode_gid(inode);
    return 1;
}

struct e2_list {
    char **names;
    size_t n;
    int rc;
};

static int e2_list_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
                      int blocksize, char *buf, void *priv)
{
    struct e2_list *l = priv;
    int len = ext2fs_dirent_name_len(de);
    if ((len == 1 && de->name[0] == '.') || (len == 2 && !memcmp(de->name, "..", 2)))
        return 0;
    char **nl = realloc(l->names, (l->n + 1) * sizeof(*nl));
    if (!nl || !(nl[l->n] = strndup(de->name, (size_t)len))) {
        if (nl)
            l->names = nl;
        l->rc = -ENOMEM;
        return DIRENT_ABORT;
    }
    l->names = nl;
    l->n++;
    return 0;
}

static int e2_list(struct vd_fx_fs *x, const char *dir, char ***names, size_t *n,
                   struct vd_error *err)
{
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    ext2_ino_t dino;
    int r = e2_dir(x, dir, &dino);
    if (r < 0)
        return r == -ENOENT || r == -ENOTDIR
                   ? r
                   : vd_err(err, r, "fixup: %s: /%s: cannot look it up", x->label, dir);
    struct e2_list l = {0};
    errcode_t e = ext2fs_dir_iterate2(fs, dino, 0, NULL, e2_list_cb, &l);
    *names = l.names;
    *n = l.n;
    if (e || l.rc)
        return vd_err(err, l.rc ? l.rc : e2_errno(e), "fixup: %s: /%s: cannot list it", x->label,
                      dir);
    return 0;
}

/* Write data as the whole content of ino, then set its times. */
static errcode_t e2_write(ext2_filsys fs, ext2_ino_t ino, const char *data, size_t len)
{
    ext2_file_t file;
    errcode_t e = ext2fs_file_open(fs, ino, EXT2_FILE_WRITE, &file);
    if (e)
        return e;
    unsigned done = 0;
    while (!e && done < len) {
        unsigned w = 0;
        e = ext2fs_file_write(file, data + done, (unsigned)(len - done), &w);
        if (!e && w == 0)
            e = EXT2_ET_SHORT_WRITE;
        done += w;
    }
    if (!e)
        e = ext2fs_file_set_size2(file, len);
    if (!e) {
        struct ext2_inode *in = ext2fs_file_get_inode(file);
        in->i_mtime = in->i_ctime = (uint32_t)time(NULL);
    }
    errcode_t e2 = ext2fs_file_close(file);
    return e ? e : e2;
}

static errcode_t e2_link(ext2_filsys fs, ext2_ino_t dino, const char *name, ext2_ino_t ino)
{
    errcode_t e = ext2fs_link(fs, dino, name, ino, EXT2_FT_REG_FILE);
    if (e == EXT2_ET_DIR_NO_SPACE) {
        e = ext2fs_expand_dir(fs, dino);
        if (!e)
            e = ext2fs_link(fs, dino, name, ino, EXT2_FT_REG_FILE);
    }
    return e;
}

static int e2_create(struct vd_fx_fs *x, const char *dir, const char *name, const char *data,
                     size_t len, const struct vd_fx_file *like, struct vd_error *err)
{
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    ext2_ino_t dino, ino;
    int r = e2_dir(x, dir, &dino);
    if (r < 0)
        return vd_err(err, r, "fixup: %s: /%s: cannot look it up", x->label, dir);
    if (ext2fs_lookup(fs, dino, name, (int)strlen(name), NULL, &ino) == 0)
        return -EEXIST;
    /* as e2fsprogs' misc/create_inode.c does for a new regular file */
    errcode_t e = ext2fs_new_inode(fs, dino, LINUX_S_IFREG | 0600, NULL, &ino);
    if (!e)
        e = e2_link(fs, dino, name, ino);
    if (e)
        goto out_err;
    ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
    struct ext2_inode inode;
    memset(&inode, 0, sizeof(inode));
    inode.i_mode = (uint16_t)(LINUX_S_IFREG | (like->mode & 07777));
    inode.i_uid = (uint16_t)like->uid;
    inode.osd2.linux2.l_i_uid_high = (uint16_t)(like->uid >> 16);
    inode.i_gid = (uint16_t)like->gid;
    inode.osd2.linux2.l_i_gid_high = (uint16_t)(like->gid >> 16);
    inode.i_atime = inode.i_ctime = inode.i_mtime = (uint32_t)time(NULL);
    inode.i_links_count = 1;
    if (ext2fs_has_feature_inline_data(fs->super)) {
        inode.i_flags |= EXT4_INLINE_DATA_FL;
    } else if (ext2fs_has_feature_extents(fs->super)) {
        ext2_extent_handle_t h;
        e = ext2fs_extent_open2(fs, ino, &inode, &h);
        if (e)
            goto out_err;
        ext2fs_extent_free(h);
    }
    e = ext2fs_write_new_inode(fs, ino, &inode);
    if (!e && (inode.i_flags & EXT4_INLINE_DATA_FL))
        e = ext2fs_inline_data_init(fs, ino);
    if (!e)
        e = e2_write(fs, ino, data, len);
out_err:
    if (e)
        return vd_err(err, e2_errno(e), "fixup: %s: /%s/%s: cannot create it: %s", x->label, dir,
                      name, error_message(e));
    return 0;
}

static int e2_replace(struct vd_fx_fs *x, const char *dir, const char *name, const char *data,
                      size_t len, const struct vd_fx_file *like, struct vd_error *err)
{
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    ext2_ino_t dino, ino;
    int r = e2_dir(x, dir, &dino);
    if (r < 0)
        return vd_err(err, r, "fixup: %s: /%s: cannot look it up", x->label, dir);
    errcode_t e = ext2fs_lookup(fs, dino, name, (int)strlen(name), NULL, &ino);
    if (!e)
        e = e2_write(fs, ino, data, len);
    if (e)
        return vd_err(err, e2_errno(e), "fixup: %s: /%s/%s: writing the new content: %s", x->label,
                      dir, name, error_message(e));
    return 0;
}

static int e2_rename(struct vd_fx_fs *x, const char *dir, const char *from, const char *to,
                     struct vd_error *err)
{
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    ext2_ino_t dino, ino, other;
    int r = e2_dir(x, dir, &dino);
    if (r < 0)
        return vd_err(err, r, "fixup: %s: /%s: cannot look it up", x->label, dir);
    if (ext2fs_lookup(fs, dino, to, (int)strlen(to), NULL, &other) == 0)
        return -EEXIST;
    errcode_t e = ext2fs_lookup(fs, dino, from, (int)strlen(from), NULL, &ino);
    if (!e)
        e = e2_link(fs, dino, to, ino);
    if (!e)
        e = ext2fs_unlink(fs, dino, from, ino, 0);
    if (e)
        return vd_err(err, e2_errno(e), "fixup: %s: /%s/%s: rename to %s: %s", x->label, dir, from,
                      to, error_message(e));
    return 0;
}

static const struct vd_fx_fs_ops e2_ops = {
    .load = e2_load,
    .list = e2_list,
    .create = e2_create,
    .replace = e2_replace,
    .rename = e2_rename,
};

int vd_fx_e2_has(const char *path, const char *file)
{
    ext2_filsys fs;
    if (ext2fs_open2(path, NULL, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs))
        return 0;
    ext2_ino_t ino;
    bool found = ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, file, &ino) == 0;
    ext2fs_close_free(&fs);
    return found;
}

int vd_fx_e2_open(const char *path, bool rw, struct vd_fx_fs **out, struct vd_error *err)
{
    ext2_filsys fs;
    errcode_t e = ext2fs_open2(path, NULL, (rw ? EXT2_FLAG_RW : 0) | EXT2_FLAG_64BITS, 0, 0,
                               unix_io_manager, &fs);
    if (e)
        return vd_err(err, e2_errno(e), "fixup: %s: libext2fs cannot open it: %s", path,
                      error_message(e));
    int rc = 0;
    if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
        rc = vd_err(err, -EBUSY,
                    "fixup: %s: its journal holds changes not yet written: the filesystem is "
                    "mounted elsewhere (a running guest, or a host mount of this view), or the "
                    "guest was not shut down cleanly. Shut the guest down or unmount it; if it "
                    "is in use nowhere, run e2fsck on the view file first",
                    path);
        goto fail;
    }
    if (rw && (e = ext2fs_read_bitmaps(fs))) {
        rc = vd_err(err, e2_errno(e), "fixup: %s: reading bitmaps: %s", path, error_message(e));
        goto fail;
    }
    struct vd_fx_fs *x = calloc(1, sizeof(*x) + sizeof(struct e2_fs) + strlen(path) + 1);
    if (!x) {
        rc = vd_err(err, -ENOMEM, "fixup: out of memory");
        goto fail;
    }
    struct e2_fs *priv = (struct e2_fs *)(x + 1);
    priv->fs = fs;
    char *label = (char *)(priv + 1);
    strcpy(label, path);
    x->ops = &e2_ops;
    x->label = label;
    x->priv = priv;
    *out = x;
    return 0;
fail:
    ext2fs_close_free(&fs);
    return rc;
}

int vd_fx_e2_close(struct vd_fx_fs *x, struct vd_error *err)
{
    if (!x)
        return 0;
    ext2_filsys fs = ((struct e2_fs *)x->priv)->fs;
    errcode_t e = ext2fs_close_free(&fs);
    int rc = 0;
    if (e)
        rc = vd_err(err, e2_errno(e), "fixup: %s: writing the filesystem's metadata: %s", x->label,
                    error_message(e));
    free(x);
    return rc;
}

#else /* !HAVE_EXT2FS */

int vd_fx_e2_has(const char *path, const char *file)
{
    return 0;
}

int vd_fx_e2_open(const char *path, bool rw, struct vd_fx_fs **out, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP,
                  "fixup: %s: built without libext2fs; mount the root filesystem and use "
                  "--root DIR",
                  path);
}

int vd_fx_e2_close(struct vd_fx_fs *x, struct vd_error *err)
{
    return 0;
}

#endif
