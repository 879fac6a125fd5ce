/*
 * FAT12/16/32, read-only: our own small reader, enough for an EFI System
 * Partition (stat, read, readdir). No Debian library reads FAT from a
 * callback (mtools is a program). Follows Microsoft's "FAT32 File System
 * Specification" (fatgen103, 2000): section 3 (BPB), 3.5 (FAT type from
 * the cluster count), 4 (FAT entries, end-of-chain), 6 (directory
 * entries), 7 (long names).
 *
 *   sector 0       BPB: bytes/sector, sectors/cluster, reserved, #FATs, ...
 *   reserved       FAT 1, FAT 2 ... (we read only the first)
 *   FAT12/16 only  fixed root directory (root_entries * 32 bytes)
 *   data           cluster 2, 3, ... (cluster N at data + (N-2) * cluster)
 *
 * A file's "ino" is the device offset of its 32-byte short directory entry
 * (unique and stable); the root is FAT_ROOT_INO. Names match without
 * regard to ASCII case, as FAT does; a long name and the short name both
 * match. A directory's cluster chain that loops (longer than the volume) is
 * reported, not followed forever; a file's chain is walked only as far as
 * its size, so a cross-linked file reads wrong bytes but ends. Not read: timestamps, the second
 * FAT, exFAT (a different filesystem).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/byteorder.h"
#include "fs/fs_int.h"

#define FAT_ROOT_INO      1
#define FAT_MAX_FAT_BYTES (64u << 20) /* FAT32 at 4 bytes per cluster: 16 M clusters */
#define FAT_MAX_DIR_BYTES (2u << 20)  /* 65536 entries, the spec's limit (section 6) */

enum fat_kind { FAT12 = 12, FAT16 = 16, FAT32 = 32 };

struct fat_state {
    enum fat_kind kind;
    uint32_t sector, cluster_bytes;
    uint64_t fat_off, fat_bytes;
    uint64_t root_off;     /* FAT12/16: fixed root directory */
    uint32_t root_bytes;   /* FAT12/16 */
    uint32_t root_cluster; /* FAT32 */
    uint64_t data_off;
    uint32_t clusters; /* data clusters: valid cluster numbers are 2 .. clusters+1 */
    uint8_t *fat;      /* the first FAT, whole */
};

/* Entry n of the FAT (fatgen103 section 4). */
static uint32_t fat_next(const struct fat_state *s, uint32_t n)
{
    switch (s->kind) {
    case FAT12: {
        uint64_t o = (uint64_t)n + n / 2;
        if (o + 2 > s->fat_bytes)
            return 0;
        uint16_t v = le16(s->fat + o);
        return n & 1 ? v >> 4 : v & 0xfff;
    }
    case FAT16:
        if ((uint64_t)n * 2 + 2 > s->fat_bytes)
            return 0;
        return le16(s->fat + (uint64_t)n * 2);
    default:
        if ((uint64_t)n * 4 + 4 > s->fat_bytes)
            return 0;
        return le32(s->fat + (uint64_t)n * 4) & 0x0fffffff;
    }
}

static bool fat_eoc(const struct fat_state *s, uint32_t v)
{
    return v >= (s->kind == FAT12 ? 0xff8u : s->kind == FAT16 ? 0xfff8u : 0x0ffffff8u);
}

static bool fat_valid(const struct fat_state *s, uint32_t c)
{
    return c >= 2 && c - 2 < s->clusters;
}

static int fat_open(struct vd_fs *fs, struct vd_error *err)
{
    const char *dn = fs->dev->name;
    uint8_t b[512];
    int r = vd_fs_dev_read(fs->dev, b, sizeof(b), 0, err);
    if (r < 0)
        return r;
    if (b[510] != 0x55 || b[511] != 0xaa)
        return vd_err(err, -EINVAL, "fs: %s: fat: no boot sector signature 0x55AA at byte 510", dn);
    uint32_t bps = le16(b + 11), spc = b[13], reserved = le16(b + 14), nfats = b[16];
    uint32_t root_entries = le16(b + 17), total16 = le16(b + 19), fatsz16 = le16(b + 22);
    uint32_t total32 = le32(b + 32), fatsz32 = le32(b + 36);
    if (bps < 512 || bps > 4096 || (bps & (bps - 1)))
        return vd_err(err, -EINVAL, "fs: %s: fat: BPB_BytsPerSec %u is not 512, 1024, 2048 or 4096",
                      dn, bps);
    if (spc == 0 || (spc & (spc - 1)))
        return vd_err(err, -EINVAL, "fs: %s: fat: BPB_SecPerClus %u is not a power of two", dn,
                      spc);
    if (reserved == 0 || nfats == 0)
        return vd_err(err, -EINVAL, "fs: %s: fat: BPB_RsvdSecCnt %u or BPB_NumFATs %u is zero", dn,
                      reserved, nfats);
    uint64_t fatsz = fatsz16 ? fatsz16 : fatsz32;
    uint64_t total = total16 ? total16 : total32;
    uint64_t root_secs = ((uint64_t)root_entries * 32 + bps - 1) / bps;
    uint64_t meta = reserved + nfats * fatsz + root_secs;
    if (fatsz == 0 || total <= meta)
        return vd_err(err, -EINVAL,
                      "fs: %s: fat: the FATs and root directory (%" PRIu64
                      " sectors) do not fit in the volume (%" PRIu64 " sectors)",
                      dn, meta, total);
    uint64_t clusters = (total - meta) / spc;
    struct fat_state *s = calloc(1, sizeof(*s));
    if (!s)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", dn);
    fs->priv = s;
    /* fatgen103 section 3.5: the type is the cluster count, nothing else */
    s->kind = clusters < 4085 ? FAT12 : clusters < 65525 ? FAT16 : FAT32;
    if (s->kind == FAT32 && (fatsz16 != 0 || root_entries != 0))
        return vd_err(err, -EINVAL,
                      "fs: %s: fat: %" PRIu64 " clusters make it FAT32, but BPB_FATSz16 or "
                      "BPB_RootEntCnt is set",
                      dn, clusters);
    s->sector = bps;
    s->cluster_bytes = bps * spc;
    s->clusters = (uint32_t)(clusters > 0x0ffffff5 ? 0x0ffffff5 : clusters);
    s->fat_off = (uint64_t)reserved * bps;
    s->fat_bytes = fatsz * bps;
    s->root_off = s->fat_off + nfats * s->fat_bytes;
    s->root_bytes = (uint32_t)(root_secs * bps);
    s->data_off = meta * bps;
    s->root_cluster = s->kind == FAT32 ? le32(b + 44) : 0;
    /* only as much of the FAT as the clusters need */
    uint64_t need = s->kind == FAT12   ? ((uint64_t)s->clusters + 2) * 3 / 2 + 1
                    : s->kind == FAT16 ? ((uint64_t)s->clusters + 2) * 2
                                       : ((uint64_t)s->clusters + 2) * 4;
    if (need < s->fat_bytes)
        s->fat_bytes = need;
    if (s->fat_bytes > FAT_MAX_FAT_BYTES)
        return vd_err(err, -ENOTSUP, "fs: %s: fat: the FAT is %" PRIu64 " bytes, more than %u", dn,
                      s->fat_bytes, FAT_MAX_FAT_BYTES);
    if (s->data_off > fs->dev->size)
        return vd_err(err, -EINVAL,
                      "fs: %s: fat: the data area starts at %" PRIu64
                      ", past the end of the device (%" PRIu64 ")",
                      dn, s->data_off, fs->dev->size);
    s->fat = malloc(s->fat_bytes);
    if (!s->fat)
        return vd_err(err, -ENOMEM, "fs: %s: out of memory for the FAT", dn);
    if ((r = vd_fs_dev_read(fs->dev, s->fat, s->fat_bytes, s->fat_off, err)) < 0)
        return r;
    if (s->kind == FAT32 && !fat_valid(s, s->root_cluster))
        return vd_err(err, -EINVAL, "fs: %s: fat: BPB_RootClus %u is not a data cluster", dn,
                      s->root_cluster);
    fs->root = FAT_ROOT_INO;
    fs->type = "vfat";
    return 0;
}

static void fat_close(struct vd_fs *fs)
{
    struct fat_state *s = fs->priv;
    if (!s)
        return;
    free(s->fat);
    free(s);
    fs->priv = NULL;
}

static int fat_statfs(struct vd_fs *fs, uint64_t *total, uint64_t *free_bytes, struct vd_error *err)
{
    struct fat_state *s = fs->priv;
    uint64_t nfree = 0;
    /* counted from the FAT, as fsck and the kernel do: FSInfo's hint may be stale */
    for (uint32_t c = 2; c - 2 < s->clusters; c++)
        if (fat_next(s, c) == 0)
            nfree++;
    *total = (uint64_t)s->clusters * s->cluster_bytes;
    *free_bytes = nfree * s->cluster_bytes;
    return 0;
}

/* A node: what a directory entry says, or the root. */
struct fat_node {
    bool root, dir;
    uint32_t first;
    uint32_t size;
    uint8_t attr;
};

static int fat_node(struct vd_fs *fs, uint64_t ino, struct fat_node *n, struct vd_error *err)
{
    struct fat_state *s = fs->priv;
    memset(n, 0, sizeof(*n));
    if (ino == FAT_ROOT_INO) {
        n->root = n->dir = true;
        n->first = s->root_cluster;
        return 0;
    }
    uint8_t e[32];
    int r = vd_fs_dev_read(fs->dev, e, sizeof(e), ino, err);
    if (r < 0)
        return r;
    n->attr = e[11];
    n->dir = (e[11] & 0x10) != 0;
    n->first = (s->kind == FAT32 ? (uint32_t)le16(e + 20) << 16 : 0) | le16(e + 26);
    n->size = n->dir ? 0 : le32(e + 28);
    return 0;
}

/* Walk the chain of a node from byte off, calling cb for each contiguous
 * piece (device offset, length). Bounded by the cluster count. */
static int fat_walk(struct vd_fs *fs, uint32_t first, uint64_t off, uint64_t len,
                    int (*cb)(void *, uint64_t, uint64_t), void *opaque, struct vd_error *err)
{
    struct fat_state *s = fs->priv;
    uint64_t cb_bytes = s->cluster_bytes, pos = 0;
    uint32_t c = first, steps = 0;
    while (len > 0) {
        if (!fat_valid(s, c))
            return vd_err(err, -EINVAL,
                          "fs: %s: fat: cluster chain from %u reaches %#x, not a data cluster "
                          "(the file is shorter than its size says or the FAT is corrupt)",
                          fs->dev->name, first, c);
        if (++steps > s->clusters)
            return vd_err(err, -EINVAL,
                          "fs: %s: fat: cluster chain from %u is longer than the volume (it loops)",
                          fs->dev->name, first);
        if (pos + cb_bytes > off) {
            uint64_t in = off > pos ? off - pos : 0;
            uint64_t n = cb_bytes - in < len ? cb_bytes - in : len;
            int r = cb(opaque, s->data_off + (uint64_t)(c - 2) * cb_bytes + in, n);
            if (r < 0)
                return r;
            len -= n;
            off += n;
        }
        pos += cb_bytes;
        if (len == 0)
            break;
        uint32_t next = fat_next(s, c);
        if (fat_eoc(s, next))
            return vd_err(err, -EINVAL,
                          "fs: %s: fat: cluster chain from %u ends before the file's size",
                          fs->dev->name, first);
        c = next;
    }
    return 0;
}

struct fat_rd {
    struct vd_fs *fs;
    uint8_t *buf;
    struct vd_error *err;
};

static int fat_rd_cb(void *opaque, uint64_t dev_off, uint64_t n)
{
    struct fat_rd *rd = opaque;
    int r = vd_fs_dev_read(rd->fs->dev, rd->buf, (size_t)n, dev_off, rd->err);
    rd->buf += n;
    return r;
}

static int fat_pread(struct vd_fs *fs, uint64_t ino, void *buf, size_t len, uint64_t off,
                     size_t *got, struct vd_error *err)
{
    struct fat_node n;
    *got = 0;
    int r = fat_node(fs, ino, &n, err);
    if (r < 0)
        return r;
    if (off >= n.size)
        return 0;
    if (len > n.size - off)
        len = (size_t)(n.size - off);
    struct fat_rd rd = {fs, buf, err};
    r = fat_walk(fs, n.first, off, len, fat_rd_cb, &rd, err);
    if (r < 0)
        return r;
    *got = len;
    return 0;
}

/* Directory entries with their device offsets. */
struct fat_dir {
    uint8_t *data;
    uint64_t *offs; /* device offset of each 32-byte entry */
    size_t n;
};

struct fat_dir_rd {
    struct vd_fs *fs;
    struct fat_dir *d;
    struct vd_error *err;
};

static int fat_dir_cb(void *opaque, uint64_t dev_off, uint64_t n)
{
    struct fat_dir_rd *rd = opaque;
    struct fat_dir *d = rd->d;
    int r = vd_fs_dev_read(rd->fs->dev, d->data + d->n * 32, (size_t)n, dev_off, rd->err);
    for (uint64_t i = 0; i < n / 32; i++)
        d->offs[d->n++] = dev_off + i * 32;
    return r;
}

static void fat_dir_free(struct fat_dir *d)
{
    free(d->data);
    free(d->offs);
}

/* Read a whole directory. The chain's length is its size. */
static int fat_dir_load(struct vd_fs *fs, uint64_t ino, struct fat_dir *d, struct vd_error *err)
{
    struct fat_state *s = fs->priv;
    struct fat_node n;
    memset(d, 0, sizeof(*d));
    int r = fat_node(fs, ino, &n, err);
    if (r < 0)
        return r;
    uint64_t bytes;
    if (n.root && s->kind != FAT32) {
        bytes = s->root_bytes;
    } else {
        uint32_t first = n.root ? s->root_cluster : n.first;
        uint32_t c = first, count = 0;
        while (fat_valid(s, c) && count <= s->clusters) {
            count++;
            uint32_t next = fat_next(s, c);
            if (fat_eoc(s, next))
                break;
            c = next;
        }
        if (!fat_valid(s, c) || count > s->clusters)
            return vd_err(err, -EINVAL,
                          "fs: %s: fat: directory cluster chain from %u is broken or loops",
                          fs->dev->name, first);
        bytes = (uint64_t)count * s->cluster_bytes;
        n.first = first;
    }
    if (bytes > FAT_MAX_DIR_BYTES)
        bytes = FAT_MAX_DIR_BYTES; /* the spec's 65536 entries; the rest is unreachable */
    d->data = malloc(bytes ? bytes : 1);
    d->offs = malloc((bytes / 32 + 1) * sizeof(*d->offs));
    if (!d->data || !d->offs) {
        fat_dir_free(d);
        return vd_err(err, -ENOMEM, "fs: %s: out of memory", fs->dev->name);
    }
    if (n.root && s->kind != FAT32) {
        r = vd_fs_dev_read(fs->dev, d->data, bytes, s->root_off, err);
        for (uint64_t i = 0; i < bytes / 32; i++)
            d->offs[d->n++] = s->root_off + i * 32;
    } else {
        struct fat_dir_rd rd = {fs, d, err};
        r = fat_walk(fs, n.first, 0, bytes, fat_dir_cb, &rd, err);
    }
    if (r < 0)
        fat_dir_free(d);
    return r;
}

/* UCS-2 (with surrogate pairs) to UTF-8; false if it does not fit. */
static bool fat_utf8(const uint16_t *u, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < n && u[i + 1] >= 0xdc00 && u[i + 1] < 0xe000) {
            c = 0x10000 + ((c - 0xd800) << 10) + (u[i + 1] - 0xdc00);
            i++;
        }
        if (o + 4 >= cap)
            return false;
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xc0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xe0 | c >> 12);
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | c >> 18);
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out[o] = '\0';
    return true;
}

/* The 8.3 name of a short entry, with the NT lower-case flags (byte 12:
 * 0x08 base, 0x10 extension) that Windows and Linux honour. */
static void fat_short_name(const uint8_t *e, char *out)
{
    size_t o = 0;
    int bl = e[12] & 0x08, el = e[12] & 0x10;
    for (int i = 0; i < 8 && e[i] != ' '; i++) {
        uint8_t c = i == 0 && e[0] == 0x05 ? 0xe5 : e[i]; /* 0x05 stands for 0xE5 (section 6) */
        out[o++] = (char)(bl && c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (e[8] != ' ') {
        out[o++] = '.';
        for (int i = 8; i < 11 && e[i] != ' '; i++)
            out[o++] = (char)(el && e[i] >= 'A' && e[i] <= 'Z' ? e[i] + 32 : e[i]);
    }
    out[o] = '\0';
}

static uint8_t fat_lfn_sum(const uint8_t *e)
{
    uint8_t sum = 0; /* section 7, ChkSum() */
    for (int i = 0; i < 11; i++)
        sum = (uint8_t)(((sum & 1) ? 0x80 : 0) + (sum >> 1) + e[i]);
    return sum;
}

/* Iterate the live entries of a loaded directory: cb(long name or short
 * name, short name, device offset of the short entry). */
static int fat_dir_each(const struct fat_dir *d,
                        int (*cb)(void *, const char *, const char *, uint64_t), void *opaque)
{
    uint16_t lfn[20 * 13 + 1];
    int lfn_ord = 0, lfn_max = 0;
    uint8_t lfn_sum = 0;
    for (size_t i = 0; i < d->n; i++) {
        const uint8_t *e = d->data + i * 32;
        if (e[0] == 0)
            break; /* the end of the directory (section 6.1) */
        if (e[0] == 0xe5) {
            lfn_ord = 0;
            continue;
        }
        if ((e[11] & 0x3f) == 0x0f) {
            /* a long-name piece: ord counts down to 1, the first has 0x40 */
            int ord = e[0] & 0x1f;
            if (e[0] & 0x40) {
                if (ord < 1 || ord > 20) {
                    lfn_ord = 0;
                    continue;
                }
                lfn_max = ord;
                lfn_sum = e[13];
                for (int k = 0; k < 20 * 13 + 1; k++)
                    lfn[k] = 0xffff;
            } else if (lfn_ord == 0 || ord != lfn_ord - 1 || e[13] != lfn_sum) {
                lfn_ord = 0;
                continue;
            }
            lfn_ord = ord;
            static const int at[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
            for (int k = 0; k < 13; k++)
                lfn[(ord - 1) * 13 + k] = le16(e + at[k]);
            continue;
        }
        if (e[11] & 0x08) { /* volume label */
            lfn_ord = 0;
            continue;
        }
        char sname[16], lname[20 * 13 * 4 + 1];
        fat_short_name(e, sname);
        const char *name = sname;
        if (lfn_ord == 1 && fat_lfn_sum(e) == lfn_sum) {
            size_t len = 0;
            while (len < (size_t)lfn_max * 13 && lfn[len] != 0 && lfn[len] != 0xffff)
                len++;
            if (len && fat_utf8(lfn, len, lname, sizeof(lname)))
                name = lname;
        }
        lfn_ord = 0;
        if (!strcmp(sname, ".") || !strcmp(sname, "..") || !name[0] || strchr(name, '/'))
            continue;
        int r = cb(opaque, name, sname, d->offs[i]);
        if (r)
            return r;
    }
    return 0;
}

struct fat_find {
    const char *want;
    uint64_t ino;
};

static int fat_find_cb(void *opaque, const char *name, const char *sname, uint64_t off)
{
    struct fat_find *f = opaque;
    if (!strcasecmp(name, f->want) || !strcasecmp(sname, f->want)) {
        f->ino = off;
        return 1;
    }
    return 0;
}

static int fat_lookup(struct vd_fs *fs, uint64_t dir, const char *name, uint64_t *ino,
                      struct vd_error *err)
{
    struct fat_dir d;
    int r = fat_dir_load(fs, dir, &d, err);
    if (r < 0)
        return r;
    struct fat_find f = {name, 0};
    r = fat_dir_each(&d, fat_find_cb, &f);
    fat_dir_free(&d);
    if (r == 0)
        return -ENOENT;
    *ino = f.ino;
    return 0;
}

struct fat_fill {
    vd_fs_fill fill;
    void *opaque;
};

static int fat_fill_cb(void *opaque, const char *name, const char *sname, uint64_t off)
{
    struct fat_fill *f = opaque;
    return f->fill(f->opaque, name);
}

static int fat_readdir(struct vd_fs *fs, uint64_t ino, vd_fs_fill fill, void *opaque,
                       struct vd_error *err)
{
    struct fat_dir d;
    int r = fat_dir_load(fs, ino, &d, err);
    if (r < 0)
        return r;
    struct fat_fill f = {fill, opaque};
    r = fat_dir_each(&d, fat_fill_cb, &f);
    fat_dir_free(&d);
    return r;
}

static int fat_getattr(struct vd_fs *fs, uint64_t ino, struct vd_fs_stat *st, struct vd_error *err)
{
    struct fat_node n;
    int r = fat_node(fs, ino, &n, err);
    if (r < 0)
        return r;
    st->type = n.dir ? VD_FS_DIR : VD_FS_REG;
    st->size = n.size;
    /* FAT has no permissions: what the kernel's vfat shows with umask 022,
     * minus write for the read-only attribute */
    st->mode = n.dir ? 0755 : (n.attr & 0x01) ? 0444 : 0644;
    st->ino = ino;
    return 0;
}

static int fat_readlink(struct vd_fs *fs, uint64_t ino, char *buf, size_t cap, struct vd_error *err)
{
    return -EINVAL; /* FAT has no links */
}

const struct vd_fs_ops vd_fs_fat_ops = {
    .name = "vfat",
    .open = fat_open,
    .close = fat_close,
    .statfs = fat_statfs,
    .lookup = fat_lookup,
    .getattr = fat_getattr,
    .readlink = fat_readlink,
    .pread = fat_pread,
    .readdir = fat_readdir,
};
