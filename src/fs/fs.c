/*
 * Read-only guest filesystems: the dispatcher behind include/vdisk/fs.h.
 *
 * vd_fs_open() picks a driver by libblkid's type name or by probing the
 * superblock magics itself; every path operation goes through one resolver
 * (fs_resolve) that walks components with the driver's lookup() and
 * follows symbolic links inside the filesystem, never on the host:
 *
 *   - an absolute target restarts at the filesystem's root;
 *   - ".." pops a stack of directories we walked through (the driver is
 *     never asked for ".."), so it stops at the root and a link cannot
 *     climb out;
 *   - at most VD_FS_MAX_LINKS links per lookup, -ELOOP beyond (the same
 *     limit as Linux's MAXSYMLINKS).
 *
 * Not read: btrfs and anything else (-ENOTSUP with the reason).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "fs/fs_int.h"

#define FS_PATH_MAX 4096 /* longest path (after link expansion) we walk */

int vd_fs_dev_read(const struct vd_fs_dev *dev, void *buf, size_t len, uint64_t off,
                   struct vd_error *err)
{
    if (off > dev->size || len > dev->size - off)
        return vd_err(err, -EINVAL,
                      "fs: %s: read of %zu bytes at %llu is past the end of the device (%llu "
                      "bytes): the filesystem is truncated or corrupt",
                      dev->name, len, (unsigned long long)off, (unsigned long long)dev->size);
    if (len == 0)
        return 0;
    return dev->pread(dev->opaque, buf, len, off, err);
}

/* ---- probing ---- */

static bool fs_magic(const struct vd_fs_dev *dev, uint64_t off, const void *magic, size_t len)
{
    unsigned char buf[16];
    if (len > sizeof(buf) || off + len > dev->size)
        return false;
    if (dev->pread(dev->opaque, buf, len, off, NULL) < 0)
        return false;
    return memcmp(buf, magic, len) == 0;
}

/* The type name for dev's superblock, or NULL. Magics from each format's
 * spec: ext2 s_magic 0xEF53 at 1024+56; XFS "XFSB" at 0; NTFS OEM id
 * "NTFS    " at 3; btrfs "_BHRfS_M" at 64 KiB + 64; FAT: the boot sector
 * signature 0x55AA and a file-system-type string (informational only, but
 * every formatter writes it; the FAT driver validates the BPB itself). */
static const char *fs_probe(const struct vd_fs_dev *dev)
{
    if (fs_magic(dev, 1024 + 56, "\x53\xef", 2))
        return "ext4";
    if (fs_magic(dev, 0, "XFSB", 4))
        return "xfs";
    if (fs_magic(dev, 3, "NTFS    ", 8))
        return "ntfs";
    if (fs_magic(dev, 65536 + 64, "_BHRfS_M", 8))
        return "btrfs";
    if (fs_magic(dev, 510, "\x55\xaa", 2) &&
        (fs_magic(dev, 54, "FAT", 3) || fs_magic(dev, 82, "FAT32", 5)))
        return "vfat";
    return NULL;
}

int vd_fs_open(const struct vd_fs_dev *dev, const char *fstype, struct vd_fs **out,
               struct vd_error *err)
{
    *out = NULL;
    if (!fstype || !*fstype)
        fstype = fs_probe(dev);
    if (!fstype)
        return vd_err(err, -ENOTSUP,
                      "fs: %s: no filesystem that vdisk reads was found (ext2/3/4, XFS, NTFS, "
                      "FAT)",
                      dev->name);
    const struct vd_fs_ops *ops = NULL;
    if (!strcmp(fstype, "ext2") || !strcmp(fstype, "ext3") || !strcmp(fstype, "ext4") ||
        !strcmp(fstype, "ext4dev"))
        ops = &vd_fs_ext2_ops;
    else if (!strcmp(fstype, "xfs"))
        ops = &vd_fs_xfs_ops;
    else if (!strcmp(fstype, "ntfs") || !strcmp(fstype, "ntfs3"))
        ops = &vd_fs_ntfs_ops;
    else if (!strcmp(fstype, "vfat") || !strcmp(fstype, "fat") || !strcmp(fstype, "msdos") ||
             !strcmp(fstype, "fat12") || !strcmp(fstype, "fat16") || !strcmp(fstype, "fat32"))
        ops = &vd_fs_fat_ops;
    else if (!strcmp(fstype, "btrfs"))
        return vd_err(err, -ENOTSUP,
                      "fs: %s: btrfs is not read: no Debian library reads btrfs without a "
                      "kernel mount and vdisk has no btrfs reader (subvolumes, chunk tree, "
                      "compression); mount the view's partition file read-only to look inside",
                      dev->name);
    else
        return vd_err(err, -ENOTSUP,
                      "fs: %s: %s is not read: vdisk reads ext2/3/4, XFS, NTFS and FAT", dev->name,
                      fstype);

    struct vd_fs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", dev->name);
    fs->ops = ops;
    fs->dev = dev;
    fs->type = ops->name;
    int r = ops->open(fs, err);
    if (r < 0) {
        ops->close(fs);
        free(fs);
        return r;
    }
    *out = fs;
    return 0;
}

void vd_fs_close(struct vd_fs *fs)
{
    if (!fs)
        return;
    fs->ops->close(fs);
    free(fs);
}

const char *vd_fs_type(const struct vd_fs *fs)
{
    return fs->type;
}

int vd_fs_statfs(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err)
{
    return fs->ops->statfs(fs, total, free_bytes, err);
}

/* ---- the resolver ---- */

struct ino_stack {
    uint64_t *v;
    size_t n, cap;
};

static int stack_push(struct ino_stack *s, uint64_t ino)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        uint64_t *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ino;
    return 0;
}

/* Resolve path to an inode. follow: follow a link in the last component
 * (a trailing '/' also follows, as POSIX says). st gets the final inode's
 * attributes. */
static int fs_resolve(struct vd_fs *fs, const char *path, bool follow, uint64_t *ino,
                      struct vd_fs_stat *st, struct vd_error *err)
{
    const char *dn = fs->dev->name;
    if (!path || path[0] != '/')
        return vd_err(err, -EINVAL, "fs: %s: path \"%s\" is not absolute", dn,
                      path ? path : "(null)");
    size_t plen = strlen(path);
    if (plen >= FS_PATH_MAX)
        return vd_err(err, -ENAMETOOLONG, "fs: %s: path is longer than %d bytes", dn, FS_PATH_MAX);
    /* rest holds the components still to walk; link targets are spliced
     * in front of it. */
    char *rest = malloc(FS_PATH_MAX);
    char *link = malloc(FS_PATH_MAX);
    struct ino_stack stk = {0};
    int r = 0, links = 0;
    if (!rest || !link) {
        r = vd_err(err, -ENOMEM, "fs: %s: out of memory", dn);
        goto out;
    }
    memcpy(rest, path, plen + 1);
    if (plen > 1 && path[plen - 1] == '/')
        follow = true;
    if ((r = stack_push(&stk, fs->root)) < 0)
        goto out;
    struct vd_fs_stat cur;
    if ((r = fs->ops->getattr(fs, fs->root, &cur, err)) < 0)
        goto out;

    size_t pos = 0;
    for (;;) {
        while (rest[pos] == '/')
            pos++;
        if (!rest[pos])
            break;
        size_t clen = strcspn(rest + pos, "/");
        char *comp = rest + pos;
        char saved = comp[clen];
        comp[clen] = '\0';
        size_t next = pos + clen + (saved ? 1 : 0);
        bool last = true;
        for (size_t i = next; rest[i]; i++)
            if (rest[i] != '/') {
                last = false;
                break;
            }
        if (!strcmp(comp, ".")) {
            pos = next;
            continue;
        }
        if (cur.type != VD_FS_DIR) {
            r = -ENOTDIR;
            goto out;
        }
        if (!strcmp(comp, "..")) {
            if (stk.n > 1)
                stk.n--;
            if ((r = fs->ops->getattr(fs, stk.v[stk.n - 1], &cur, err)) < 0)
                goto out;
            pos = next;
            continue;
        }
        uint64_t child;
        r = fs->ops->lookup(fs, stk.v[stk.n - 1], comp, &child, err);
        if (r < 0)
            goto out;
        struct vd_fs_stat cst;
        if ((r = fs->ops->getattr(fs, child, &cst, err)) < 0)
            goto out;
        if (cst.type == VD_FS_LNK && (!last || follow)) {
            if (++links > VD_FS_MAX_LINKS) {
                r = -ELOOP;
                goto out;
            }
            r = fs->ops->readlink(fs, child, link, FS_PATH_MAX, err);
            if (r < 0)
                goto out;
            size_t tlen = strlen(link);
            size_t rlen = strlen(rest + next);
            if (tlen == 0) {
                r = -ENOENT; /* an empty target names nothing (Linux: ENOENT) */
                goto out;
            }
            if (tlen + 1 + rlen >= FS_PATH_MAX) {
                r = vd_err(err, -ENAMETOOLONG,
                           "fs: %s: %s: path grows past %d bytes while following links", dn, path,
                           FS_PATH_MAX);
                goto out;
            }
            /* new rest = target "/" old rest; the absolute case restarts at root */
            memmove(rest + tlen + 1, rest + next, rlen + 1);
            memcpy(rest, link, tlen);
            rest[tlen] = '/';
            pos = 0;
            if (link[0] == '/') {
                stk.n = 1;
                if ((r = fs->ops->getattr(fs, fs->root, &cur, err)) < 0)
                    goto out;
            }
            continue;
        }
        if ((r = stack_push(&stk, child)) < 0)
            goto out;
        cur = cst;
        pos = next;
    }
    *ino = stk.v[stk.n - 1];
    if (st)
        *st = cur;
    r = 0;
out:
    free(stk.v);
    free(rest);
    free(link);
    return r;
}

int vd_fs_stat(struct vd_fs *fs, const char *path, bool follow, struct vd_fs_stat *st,
               struct vd_error *err)
{
    uint64_t ino;
    return fs_resolve(fs, path, follow, &ino, st, err);
}

int vd_fs_pread(struct vd_fs *fs, const char *path, void *buf, size_t len, uint64_t off,
                size_t *got, struct vd_error *err)
{
    uint64_t ino;
    struct vd_fs_stat st;
    *got = 0;
    int r = fs_resolve(fs, path, true, &ino, &st, err);
    if (r < 0)
        return r;
    if (st.type == VD_FS_DIR)
        return -EISDIR;
    if (st.type != VD_FS_REG)
        return -EINVAL;
    if (off >= st.size || len == 0)
        return 0;
    if (len > st.size - off)
        len = (size_t)(st.size - off);
    return fs->ops->pread(fs, ino, buf, len, off, got, err);
}

int vd_fs_read(struct vd_fs *fs, const char *path, size_t max, char **data, size_t *len,
               struct vd_error *err)
{
    uint64_t ino;
    struct vd_fs_stat st;
    *data = NULL;
    *len = 0;
    int r = fs_resolve(fs, path, true, &ino, &st, err);
    if (r < 0)
        return r;
    if (st.type == VD_FS_DIR)
        return -EISDIR;
    if (st.type != VD_FS_REG)
        return -EINVAL;
    if (st.size > max)
        return -EFBIG;
    char *buf = malloc((size_t)st.size + 1);
    if (!buf)
        return vd_err(err, -ENOMEM, "fs: %s: %s: out of memory for %llu bytes", fs->dev->name, path,
                      (unsigned long long)st.size);
    size_t got = 0;
    if (st.size && (r = fs->ops->pread(fs, ino, buf, (size_t)st.size, 0, &got, err)) < 0) {
        free(buf);
        return r;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
}

struct names {
    char **v;
    size_t n, cap;
};

static int names_add(void *opaque, const char *name)
{
    struct names *ns = opaque;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 32;
        char **v = realloc(ns->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ns->v = v;
        ns->cap = cap;
    }
    char *s = strdup(name);
    if (!s)
        return -ENOMEM;
    ns->v[ns->n++] = s;
    return 0;
}

int vd_fs_readdir(struct vd_fs *fs, const char *path, char ***names, size_t *n,
                  struct vd_error *err)
{
    uint64_t ino;
    struct vd_fs_stat st;
    *names = NULL;
    *n = 0;
    int r = fs_resolve(fs, path, true, &ino, &st, err);
    if (r < 0)
        return r;
    if (st.type != VD_FS_DIR)
        return -ENOTDIR;
    struct names ns = {0};
    r = fs->ops->readdir(fs, ino, names_add, &ns, err);
    if (r < 0) {
        vd_fs_names_free(ns.v, ns.n);
        if (r == -ENOMEM)
            return vd_err(err, r, "fs: %s: %s: out of memory listing the directory", fs->dev->name,
                          path);
        return r;
    }
    *names = ns.v;
    *n = ns.n;
    return 0;
}

void vd_fs_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int vd_fs_readlink(struct vd_fs *fs, const char *path, char *buf, size_t cap, struct vd_error *err)
{
    uint64_t ino;
    struct vd_fs_stat st;
    int r = fs_resolve(fs, path, false, &ino, &st, err);
    if (r < 0)
        return r;
    if (st.type != VD_FS_LNK)
        return -EINVAL;
    return fs->ops->readlink(fs, ino, buf, cap, err);
}
