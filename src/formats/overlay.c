/*
 * Overlay files: copy-on-write over any disk, so that a mount can be edited
 * while its sources stay read-only (see include/vdisk/overlay.h and
 * docs/overlay.md). Our own format: no library writes a copy-on-write layer
 * over arbitrary parents (qcow2 and VHD/VHDX differencing disks name a
 * parent of their own format by path), and this one is small enough to
 * check completely.
 *
 *   0      header, 4 KiB, CRC-32C
 *   4096   L1 tables, one per disk, each 4 KiB aligned: u64 file offset of
 *          an L2 table, or 0, per 512 MiB of the disk
 *   ...    L2 tables (64 KiB: 8192 u64 file offsets of data blocks, or 0)
 *          and 64 KiB data blocks, 64 KiB aligned, appended as the blocks
 *          are first written
 *
 *   header: 0 magic "VDOVRLY1"  8 version u32 = 1  12 block size u32 = 65536
 *           16 disks u32 (<= 31)  20 crc32c u32 of the 4 KiB with this field 0
 *           64 + 128 * i: disk entry i
 *   entry:  0 key[64] NUL-padded ("web01/disk1")  64 virtual size u64
 *           72 fingerprint[32]  104 L1 offset u64  112 L1 entries u32
 *   All integers little-endian.
 *
 * Fingerprint: SHA-256 of the size and of 64 KiB at each end plus 4 KiB at
 * 14 evenly spaced offsets of the disk's raw content: cheap on S3 (a few
 * ranged reads), and it tells two different disks apart even when their
 * names agree.
 *
 * Ordering. A first write to a block reads the block from the base (outside
 * the lock, so a slow S3 read does not stall other I/O), merges, appends it
 * and publishes its mapping in memory. Mappings reach the file only at a
 * flush (fsync(2) on a mount file, its close, unmount): data is synced
 * first, then the L2 tables and L1 entries, then synced again. Power loss
 * or a killed daemon therefore loses at most the writes since the last
 * flush, like a disk's volatile cache, and never leaves a mapping to data
 * that did not reach the disk; the blocks appended since are leaked space.
 * Unsupported: shrinking (blocks are never freed), resizing a disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/crc32c.h"
#include "core/driver.h"
#include "vdisk/overlay.h"

#define OV_MAGIC      "VDOVRLY1"
#define OV_VERSION    1u
#define OV_BLOCK      65536u
#define OV_L2_ENTRIES (OV_BLOCK / 8)                       /* 8192 */
#define OV_L2_SPAN    ((uint64_t)OV_BLOCK * OV_L2_ENTRIES) /* 512 MiB */
#define OV_MAX_DISKS  31u
#define OV_ENTRY      128u
#define OV_KEY_MAX    64u
/* 2^50 bytes (1 PiB): far past any format we read, and keeps every offset
 * computed from a disk size far from overflow. */
#define OV_MAX_SIZE (1ull << 50)

struct ov_disk {
    char key[OV_KEY_MAX];
    uint64_t size;
    uint8_t fp[32];
    uint64_t l1_off;
    uint32_t l1_n;
    uint64_t *l1;   /* file offsets of L2 tables */
    uint64_t **l2;  /* l1_n loaded tables (NULL = not loaded yet) */
    uint8_t *dirty; /* l1_n flags: L2 table changed since the last flush */
    bool l1_dirty;
    bool attached;
};

struct vd_overlay {
    pthread_rwlock_t lock; /* guards the tables, eof and the header */
    struct vd_io *io;      /* the overlay file; its fd does all the I/O */
    int fd;
    char *path;
    uint64_t eof;  /* next free 64 KiB-aligned offset */
    uint64_t data; /* bytes of data blocks held */
    bool fresh;    /* held no disk when opened: may record new ones */
    bool written;  /* a block was written: the disk set is final */
    uint32_t ndisks;
    struct ov_disk disks[OV_MAX_DISKS];
};

struct ov_view {
    struct vd_overlay *ov;
    struct ov_disk *d;
    struct vd_image *base;
};

/* ---- file I/O on the overlay's descriptor ---- */

static int ov_pwrite(struct vd_overlay *ov, const void *buf, size_t len, uint64_t off,
                     struct vd_error *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(ov->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            return vd_err(err, -e, "overlay: %s: write at offset %" PRIu64 ": %s", ov->path, off,
                          strerror(e));
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    /* The core checks data answers against the io's size: keep it in step
     * (an atomic max, as the file backend does). */
    uint64_t cur = __atomic_load_n(&ov->io->size, __ATOMIC_RELAXED);
    while (off > cur && !__atomic_compare_exchange_n(&ov->io->size, &cur, off, true,
                                                     __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    return 0;
}

/* Read exactly len bytes; the file holds every byte a valid table names. */
static int ov_pread(struct vd_overlay *ov, void *buf, size_t len, uint64_t off,
                    struct vd_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(ov->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            return vd_err(err, -e, "overlay: %s: read at offset %" PRIu64 ": %s", ov->path, off,
                          n < 0 ? strerror(e) : "past the end of the file (truncated overlay?)");
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int ov_sync(struct vd_overlay *ov, struct vd_error *err)
{
    if (fdatasync(ov->fd) != 0) {
        int e = errno;
        return vd_err(err, -e, "overlay: %s: fdatasync: %s", ov->path, strerror(e));
    }
    return 0;
}

/* ---- header ---- */

static uint32_t ov_l1_entries(uint64_t size)
{
    return (uint32_t)div_round_up(size, OV_L2_SPAN);
}

static uint64_t ov_l1_bytes(uint32_t n)
{
    return div_round_up((uint64_t)n * 8, 4096) * 4096;
}

int vd_overlay_check_header(const uint8_t *buf, size_t len, uint64_t file_size,
                            struct vd_error *err)
{
    if (len < VD_OVERLAY_HEADER || memcmp(buf, OV_MAGIC, 8) != 0)
        return vd_err(err, -EINVAL, "not a vdisk overlay file (no %s magic)", OV_MAGIC);
    if (le32(buf + 8) != OV_VERSION)
        return vd_err(err, -ENOTSUP, "overlay version %u, this build reads version %u",
                      le32(buf + 8), OV_VERSION);
    if (le32(buf + 12) != OV_BLOCK)
        return vd_err(err, -EINVAL, "header: block size %u, expected %u", le32(buf + 12), OV_BLOCK);
    uint8_t tmp[VD_OVERLAY_HEADER];
    memcpy(tmp, buf, sizeof(tmp));
    memset(tmp + 20, 0, 4);
    if (vd_crc32c(0, tmp, sizeof(tmp)) != le32(buf + 20))
        return vd_err(err, -EINVAL, "header: checksum mismatch (corrupt overlay)");
    uint32_t n = le32(buf + 16);
    if (n > OV_MAX_DISKS)
        return vd_err(err, -EINVAL, "header: %u disks, at most %u", n, OV_MAX_DISKS);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = buf + 64 + OV_ENTRY * i;
        uint64_t size = le64(e + 64), l1 = le64(e + 104), end;
        uint32_t l1n = le32(e + 112);
        if (!memchr(e, '\0', OV_KEY_MAX) || !e[0])
            return vd_err(err, -EINVAL, "header: disk %u: key is empty or not terminated", i);
        if (size == 0 || size > OV_MAX_SIZE)
            return vd_err(err, -EINVAL, "header: disk %u: size %" PRIu64 " out of range", i, size);
        if (l1n != ov_l1_entries(size))
            return vd_err(err, -EINVAL, "header: disk %u: %u L1 entries for %" PRIu64 " bytes", i,
                          l1n, size);
        if (l1 < VD_OVERLAY_HEADER || l1 % 4096 || ck_add(l1, ov_l1_bytes(l1n), &end) ||
            end > file_size)
            return vd_err(err, -EINVAL,
                          "header: disk %u: L1 table at %" PRIu64 " outside the file (%" PRIu64
                          " bytes)",
                          i, l1, file_size);
    }
    return 0;
}

/* Write the header from memory (write lock held, or not yet shared). */
static int ov_write_header(struct vd_overlay *ov, struct vd_error *err)
{
    uint8_t h[VD_OVERLAY_HEADER];
    memset(h, 0, sizeof(h));
    memcpy(h, OV_MAGIC, 8);
    put_le32(h + 8, OV_VERSION);
    put_le32(h + 12, OV_BLOCK);
    put_le32(h + 16, ov->ndisks);
    for (uint32_t i = 0; i < ov->ndisks; i++) {
        const struct ov_disk *d = &ov->disks[i];
        uint8_t *e = h + 64 + OV_ENTRY * i;
        memcpy(e, d->key, OV_KEY_MAX);
        put_le64(e + 64, d->size);
        memcpy(e + 72, d->fp, 32);
        put_le64(e + 104, d->l1_off);
        put_le32(e + 112, d->l1_n);
    }
    put_le32(h + 20, vd_crc32c(0, h, sizeof(h)));
    return ov_pwrite(ov, h, sizeof(h), 0, err);
}

static int ov_disk_alloc(struct ov_disk *d, struct vd_error *err)
{
    d->l1 = calloc(d->l1_n, sizeof(*d->l1));
    d->l2 = calloc(d->l1_n, sizeof(*d->l2));
    d->dirty = calloc(d->l1_n, 1);
    if (!d->l1 || !d->l2 || !d->dirty)
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    return 0;
}

static int ov_load(struct vd_overlay *ov, struct vd_error *err)
{
    uint8_t h[VD_OVERLAY_HEADER];
    struct stat st;
    if (fstat(ov->fd, &st) != 0)
        return vd_err(err, -errno, "overlay: %s: %s", ov->path, strerror(errno));
    struct vd_error herr = {0};
    int r = ov_pread(ov, h, sizeof(h), 0, err);
    if (r < 0)
        return r;
    if ((r = vd_overlay_check_header(h, sizeof(h), (uint64_t)st.st_size, &herr)) < 0)
        return vd_err(err, r, "overlay: %s: %s", ov->path, herr.msg);
    ov->eof = div_round_up((uint64_t)st.st_size, OV_BLOCK) * OV_BLOCK;
    ov->ndisks = le32(h + 16);
    ov->fresh = ov->ndisks == 0;
    for (uint32_t i = 0; i < ov->ndisks; i++) {
        struct ov_disk *d = &ov->disks[i];
        const uint8_t *e = h + 64 + OV_ENTRY * i;
        memcpy(d->key, e, OV_KEY_MAX);
        d->size = le64(e + 64);
        memcpy(d->fp, e + 72, 32);
        d->l1_off = le64(e + 104);
        d->l1_n = le32(e + 112);
        if ((r = ov_disk_alloc(d, err)) < 0)
            return r;
        uint8_t *raw = malloc((size_t)d->l1_n * 8);
        if (!raw)
            return vd_err(err, -ENOMEM, "overlay: out of memory");
        r = ov_pread(ov, raw, (size_t)d->l1_n * 8, d->l1_off, err);
        for (uint32_t k = 0; r == 0 && k < d->l1_n; k++) {
            uint64_t o = le64(raw + 8 * k), end;
            if (o && (o % OV_BLOCK || ck_add(o, OV_BLOCK, &end) || end > ov->eof))
                r = vd_err(err, -EINVAL,
                           "overlay: %s: disk %s: L1 entry %u points to %" PRIu64
                           ", outside the file (corrupt overlay)",
                           ov->path, d->key, k, o);
            d->l1[k] = o;
        }
        free(raw);
        if (r < 0)
            return r;
    }
    return 0;
}

int vd_overlay_open(const char *path, struct vd_overlay **out, struct vd_error *err)
{
    struct vd_overlay *ov = calloc(1, sizeof(*ov));
    int r;
    *out = NULL;
    if (!ov || !(ov->path = strdup(path))) {
        free(ov);
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    }
    pthread_rwlock_init(&ov->lock, NULL);
    ov->fd = -1;
    /* O_EXCL: only the creator writes the first header. */
    int cfd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool created = cfd >= 0;
    if (cfd >= 0)
        close(cfd);
    else if (errno != EEXIST) {
        r = vd_err(err, -errno, "overlay: %s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    r = vd_io_file_open(path, true, &ov->io, err);
    if (r < 0)
        goto fail;
    uint64_t base = 0;
    ov->fd = ov->io->ops->fd ? ov->io->ops->fd(ov->io, &base) : -1;
    if (ov->fd < 0) {
        r = vd_err(err, -EINVAL, "overlay: %s: not a local file", path);
        goto fail;
    }
    /* fusermount -u returns before the old daemon has closed the file:
     * give a remount a few seconds before calling the file busy. */
    int tries = 0;
    while (flock(ov->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK || ++tries > 100) {
            r = vd_err(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
                       "overlay: %s: in use by another mount or process", path);
            goto fail;
        }
        usleep(50 * 1000);
    }
    if (created || ov->io->size == 0) {
        ov->fresh = true;
        ov->eof = OV_BLOCK; /* the header's block */
        if ((r = ov_write_header(ov, err)) < 0 || (r = ov_sync(ov, err)) < 0)
            goto fail;
    } else if ((r = ov_load(ov, err)) < 0) {
        goto fail;
    }
    *out = ov;
    return 0;
fail:
    if (created)
        unlink(path); /* nothing of ours is in it */
    vd_overlay_close(ov, NULL);
    return r;
}

/* ---- fingerprint ---- */

static int ov_fingerprint(struct vd_image *base, uint8_t fp[32], struct vd_error *err)
{
    const size_t edge = 65536, sample = 4096;
    uint64_t size = vd_image_size(base);
    uint8_t *buf = malloc(edge), le[8];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int r = 0;
    if (!buf || !c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        r = vd_err(err, -ENOMEM, "overlay: out of memory");
        goto out;
    }
    put_le64(le, size);
    EVP_DigestUpdate(c, le, sizeof(le));
    struct {
        uint64_t off;
        size_t len;
    } parts[16];
    parts[0].off = 0;
    parts[0].len = (size_t)VD_MIN((uint64_t)edge, size);
    parts[1].len = parts[0].len;
    parts[1].off = size - parts[1].len;
    for (unsigned k = 1; k <= 14; k++) {
        parts[k + 1].off = size / 15 * k;
        parts[k + 1].len = (size_t)VD_MIN((uint64_t)sample, size - parts[k + 1].off);
    }
    for (size_t i = 0; i < VD_ARRAY_SIZE(parts); i++) {
        if ((r = vd_image_pread(base, buf, parts[i].len, parts[i].off, err)) < 0)
            goto out;
        EVP_DigestUpdate(c, buf, parts[i].len);
    }
    unsigned n = 0;
    EVP_DigestFinal_ex(c, fp, &n);
out:
    EVP_MD_CTX_free(c);
    free(buf);
    return r;
}

static void ov_hex8(const uint8_t *fp, char *out)
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", fp[i]);
}

/* ---- the view: a format driver over the base and the overlay ---- */

/* The L2 table of L1 slot k, loading it if needed (write lock held, or read
 * lock when it is known loaded). NULL with *r = 0 when there is none. */
static uint64_t *ov_l2(struct vd_overlay *ov, struct ov_disk *d, uint32_t k, int *r,
                       struct vd_error *err)
{
    *r = 0;
    if (d->l2[k] || !d->l1[k])
        return d->l2[k];
    uint8_t *raw = malloc(OV_BLOCK);
    uint64_t *t = calloc(OV_L2_ENTRIES, sizeof(*t));
    if (!raw || !t) {
        free(raw);
        free(t);
        *r = vd_err(err, -ENOMEM, "overlay: out of memory");
        return NULL;
    }
    *r = ov_pread(ov, raw, OV_BLOCK, d->l1[k], err);
    for (uint32_t i = 0; *r == 0 && i < OV_L2_ENTRIES; i++) {
        uint64_t o = le64(raw + 8 * i), end;
        if (o && (o % OV_BLOCK || ck_add(o, OV_BLOCK, &end) || end > ov->eof))
            *r = vd_err(err, -EINVAL,
                        "overlay: %s: disk %s: block %" PRIu64 " maps to %" PRIu64
                        ", outside the file (corrupt overlay)",
                        ov->path, d->key, (uint64_t)k * OV_L2_ENTRIES + i, o);
        t[i] = o;
    }
    free(raw);
    if (*r < 0) {
        free(t);
        return NULL;
    }
    d->l2[k] = t;
    return t;
}

/* File offset of block b, or 0 when the base holds it. Takes the locks it
 * needs (a first load of an L2 table upgrades to the write lock). */
static int ov_lookup(struct vd_overlay *ov, struct ov_disk *d, uint64_t b, uint64_t *where,
                     struct vd_error *err)
{
    uint32_t k = (uint32_t)(b / OV_L2_ENTRIES);
    int r = 0;
    pthread_rwlock_rdlock(&ov->lock);
    if (!d->l1[k] || d->l2[k]) {
        *where = d->l2[k] ? d->l2[k][b % OV_L2_ENTRIES] : 0;
        pthread_rwlock_unlock(&ov->lock);
        return 0;
    }
    pthread_rwlock_unlock(&ov->lock);
    pthread_rwlock_wrlock(&ov->lock);
    uint64_t *t = ov_l2(ov, d, k, &r, err);
    *where = t ? t[b % OV_L2_ENTRIES] : 0;
    pthread_rwlock_unlock(&ov->lock);
    return r;
}

/* Write n bytes at in within block b, which the overlay does not hold yet:
 * copy the rest of the block from the base, append it, map it. */
static int ov_cow(struct ov_view *v, uint64_t b, uint64_t in, const uint8_t *data, size_t n,
                  struct vd_error *err)
{
    struct vd_overlay *ov = v->ov;
    struct ov_disk *d = v->d;
    uint64_t start = b * OV_BLOCK;
    size_t have = (size_t)VD_MIN((uint64_t)OV_BLOCK, d->size - start);
    uint8_t *blk = malloc(OV_BLOCK);
    int r = 0;
    if (!blk)
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    /* Outside the lock: the base may be S3. */
    if (n < have && (r = vd_image_pread(v->base, blk, have, start, err)) < 0)
        goto out;
    memset(blk + have, 0, OV_BLOCK - have);
    memcpy(blk + in, data, n);
    pthread_rwlock_wrlock(&ov->lock);
    uint32_t k = (uint32_t)(b / OV_L2_ENTRIES);
    uint64_t *t = ov_l2(ov, d, k, &r, err);
    if (r < 0)
        goto unlock;
    if (t && t[b % OV_L2_ENTRIES]) { /* another writer got here first */
        uint64_t where = t[b % OV_L2_ENTRIES];
        pthread_rwlock_unlock(&ov->lock);
        r = ov_pwrite(ov, data, n, where + in, err);
        goto out;
    }
    if (!t) { /* a new L2 table: in memory now, in the file at the flush */
        if (!(t = calloc(OV_L2_ENTRIES, sizeof(*t)))) {
            r = vd_err(err, -ENOMEM, "overlay: out of memory");
            goto unlock;
        }
        d->l2[k] = t;
        d->l1[k] = ov->eof;
        ov->eof += OV_BLOCK;
        d->l1_dirty = true;
        d->dirty[k] = 1;
    }
    uint64_t where = ov->eof;
    if ((r = ov_pwrite(ov, blk, OV_BLOCK, where, err)) < 0)
        goto unlock;
    ov->eof += OV_BLOCK;
    ov->data += OV_BLOCK;
    ov->written = true;
    t[b % OV_L2_ENTRIES] = where; /* published: reads now come here */
    d->dirty[k] = 1;
unlock:
    pthread_rwlock_unlock(&ov->lock);
out:
    free(blk);
    return r;
}

static int ov_view_pwrite(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    struct ov_view *v = img->priv;
    const uint8_t *p = buf;
    while (len > 0) {
        uint64_t b = off / OV_BLOCK, in = off % OV_BLOCK, where;
        size_t n = (size_t)VD_MIN((uint64_t)len, OV_BLOCK - in);
        int r = ov_lookup(v->ov, v->d, b, &where, err);
        if (r == 0)
            r = where ? ov_pwrite(v->ov, p, n, where + in, err) : ov_cow(v, b, in, p, n, err);
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Data, then the tables that point to it, then the header (never changes
 * after attach), each step synced: see the file comment. */
static int ov_flush_locked(struct vd_overlay *ov, struct vd_error *err)
{
    bool any = false;
    for (uint32_t i = 0; i < ov->ndisks && !any; i++) /* dirty is NULL if loading failed */
        any = ov->disks[i].dirty &&
              (ov->disks[i].l1_dirty || memchr(ov->disks[i].dirty, 1, ov->disks[i].l1_n));
    int r = ov_sync(ov, err);
    if (r < 0 || !any)
        return r;
    uint8_t *raw = malloc(OV_BLOCK);
    if (!raw)
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    for (uint32_t i = 0; r == 0 && i < ov->ndisks; i++) {
        struct ov_disk *d = &ov->disks[i];
        for (uint32_t k = 0; r == 0 && d->dirty && k < d->l1_n; k++) {
            if (!d->dirty[k])
                continue;
            for (uint32_t e = 0; e < OV_L2_ENTRIES; e++)
                put_le64(raw + 8 * e, d->l2[k][e]);
            if ((r = ov_pwrite(ov, raw, OV_BLOCK, d->l1[k], err)) == 0)
                d->dirty[k] = 0;
        }
    }
    if (r == 0)
        r = ov_sync(ov, err); /* L2 tables before the L1 entries naming them */
    for (uint32_t i = 0; r == 0 && i < ov->ndisks; i++) {
        struct ov_disk *d = &ov->disks[i];
        if (!d->l1_dirty)
            continue;
        uint8_t *l1 = calloc(1, ov_l1_bytes(d->l1_n));
        if (!l1) {
            r = vd_err(err, -ENOMEM, "overlay: out of memory");
            break;
        }
        for (uint32_t k = 0; k < d->l1_n; k++)
            put_le64(l1 + 8 * k, d->l1[k]);
        if ((r = ov_pwrite(ov, l1, ov_l1_bytes(d->l1_n), d->l1_off, err)) == 0)
            d->l1_dirty = false;
        free(l1);
    }
    if (r == 0)
        r = ov_sync(ov, err);
    free(raw);
    return r;
}

static int ov_view_flush(struct vd_image *img, struct vd_error *err)
{
    struct ov_view *v = img->priv;
    pthread_rwlock_wrlock(&v->ov->lock);
    int r = ov_flush_locked(v->ov, err);
    pthread_rwlock_unlock(&v->ov->lock);
    return r;
}

/* The overlay is a filter: a block it holds is data in the overlay file,
 * any other block is the base's (the view's borrowed backing image), and
 * the core reads both from these answers. */
static int ov_view_map(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                       struct vd_error *err)
{
    struct ov_view *v = img->priv;
    uint64_t where, in = off % OV_BLOCK;
    int r = ov_lookup(v->ov, v->d, off / OV_BLOCK, &where, err);
    if (r < 0)
        return r;
    m->len = VD_MIN(len, OV_BLOCK - in);
    if (!where) {
        m->kind = VD_MAP_BACKING;
        return 0;
    }
    m->kind = VD_MAP_DATA;
    m->io = img->io;
    m->io_off = where + in;
    m->what = "overlay L2 table";
    return 0;
}

static uint64_t ov_view_allocated(struct vd_image *img)
{
    struct ov_view *v = img->priv;
    return vd_image_allocated(v->base);
}

static int ov_view_open(struct vd_image *img, struct vd_error *err)
{
    (void)img;
    return vd_err(err, -EINVAL, "overlay views are made by vd_overlay_attach");
}

static void ov_view_close(struct vd_image *img)
{
    (void)img; /* the base and the overlay belong to others */
}

static const struct vd_format_ops ov_view_ops = {
    .name = "overlay",
    .priv_size = sizeof(struct ov_view),
    .open = ov_view_open,
    .close = ov_view_close,
    .map = ov_view_map,
    .legacy_pwrite = ov_view_pwrite,
    .flush = ov_view_flush,
    .allocated = ov_view_allocated,
};

/* Record a new disk: its L1 table (zeros) after everything, then the
 * header naming it, each synced. */
static int ov_add_disk(struct vd_overlay *ov, const char *key, uint64_t size, const uint8_t *fp,
                       struct ov_disk **out, struct vd_error *err)
{
    struct ov_disk *d = &ov->disks[ov->ndisks];
    memset(d, 0, sizeof(*d));
    snprintf(d->key, sizeof(d->key), "%s", key);
    d->size = size;
    memcpy(d->fp, fp, 32);
    d->l1_n = ov_l1_entries(size);
    d->l1_off = ov->eof;
    int r = ov_disk_alloc(d, err);
    if (r < 0)
        return r;
    uint64_t l1_bytes = ov_l1_bytes(d->l1_n);
    ov->eof += div_round_up(l1_bytes, OV_BLOCK) * OV_BLOCK;
    if (ftruncate(ov->fd, (off_t)ov->eof) != 0)
        return vd_err(err, -errno, "overlay: %s: %s", ov->path, strerror(errno));
    ov->ndisks++;
    if ((r = ov_write_header(ov, err)) < 0 || (r = ov_sync(ov, err)) < 0) {
        ov->ndisks--;
        return r;
    }
    *out = d;
    return 0;
}

int vd_overlay_attach(struct vd_overlay *ov, struct vd_image *base, const char *key,
                      struct vd_image **out, struct vd_error *err)
{
    uint8_t fp[32];
    uint64_t size = vd_image_size(base);
    struct ov_disk *d = NULL;
    char want[17], got[17];
    int r;
    *out = NULL;
    if (!key[0] || strlen(key) >= OV_KEY_MAX)
        return vd_err(err, -EINVAL, "overlay: %s: disk key '%s' is empty or too long", ov->path,
                      key);
    if (size == 0 || size > OV_MAX_SIZE)
        return vd_err(err, -EINVAL, "overlay: %s: %s: size %" PRIu64 " not supported", ov->path,
                      key, size);
    if ((r = ov_fingerprint(base, fp, err)) < 0)
        return r;
    ov_hex8(fp, got);
    pthread_rwlock_wrlock(&ov->lock);
    for (uint32_t i = 0; i < ov->ndisks && !d; i++)
        if (!strcmp(ov->disks[i].key, key))
            d = &ov->disks[i];
    for (uint32_t i = 0; i < ov->ndisks && !d; i++) /* a renamed source */
        if (!ov->disks[i].attached && ov->disks[i].size == size && !memcmp(ov->disks[i].fp, fp, 32))
            d = &ov->disks[i];
    if (d) {
        ov_hex8(d->fp, want);
        if (d->attached)
            r = vd_err(err, -EBUSY, "overlay: %s: disk %s is attached twice", ov->path, key);
        else if (d->size != size || memcmp(d->fp, fp, 32))
            r = vd_err(err, -ESTALE,
                       "overlay: %s: made for %s of %" PRIu64 " bytes (fingerprint %s), but "
                       "this disk has %" PRIu64 " bytes (fingerprint %s): another source, or "
                       "the source changed since",
                       ov->path, d->key, d->size, want, size, got);
    } else if (!ov->fresh || ov->written) {
        r = vd_err(err, -ESTALE,
                   "overlay: %s: holds no disk like %s (%" PRIu64 " bytes, fingerprint %s): it "
                   "was made for other sources; use a new overlay file",
                   ov->path, key, size, got);
    } else if (ov->ndisks >= OV_MAX_DISKS) {
        r = vd_err(err, -ENOSPC, "overlay: %s: at most %u disks", ov->path, OV_MAX_DISKS);
    } else {
        r = ov_add_disk(ov, key, size, fp, &d, err);
    }
    if (r == 0)
        d->attached = true;
    pthread_rwlock_unlock(&ov->lock);
    if (r < 0)
        return r;

    struct vd_image *img = calloc(1, sizeof(*img));
    struct ov_view *v = calloc(1, sizeof(*v));
    if (!img || !v || asprintf(&img->name, "%s (overlay %s)", vd_image_name(base), ov->path) < 0) {
        free(img);
        free(v);
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    }
    v->ov = ov;
    v->d = d;
    v->base = base;
    img->ops = &ov_view_ops;
    img->priv = v;
    vd_io_ref(ov->io);
    img->io = ov->io;
    img->size = size;
    img->subformat = base->subformat;
    img->opts = base->opts;
    img->opts.writable = true;
    img->sector_size = base->sector_size;
    img->backing = base;
    img->backing_borrowed = true;
    pthread_rwlock_init(&img->meta_lock, NULL);
    pthread_mutex_init(&img->once_lock, NULL);
    img->locks_init = true;
    /* Metadata of the whole file (every disk's tables): no block of this
     * disk may be mapped onto any of it. */
    pthread_rwlock_rdlock(&ov->lock);
    r = vd_image_declare_meta(img, ov->io, 0, VD_OVERLAY_HEADER, "overlay header", err);
    for (uint32_t i = 0; r == 0 && i < ov->ndisks; i++) {
        const struct ov_disk *e = &ov->disks[i];
        r = vd_image_declare_meta(img, ov->io, e->l1_off, ov_l1_bytes(e->l1_n), "overlay L1 table",
                                  err);
        for (uint32_t k = 0; r == 0 && k < e->l1_n; k++)
            if (e->l1[k])
                r = vd_image_declare_meta(img, ov->io, e->l1[k], OV_BLOCK, "overlay L2 table", err);
    }
    pthread_rwlock_unlock(&ov->lock);
    if (r < 0) {
        vd_overlay_detach(img);
        return r;
    }
    *out = img;
    return 0;
}

void vd_overlay_detach(struct vd_image *view)
{
    if (view) {
        struct ov_view *v = view->priv;
        pthread_rwlock_wrlock(&v->ov->lock);
        v->d->attached = false;
        pthread_rwlock_unlock(&v->ov->lock);
    }
    vd_image_close(view);
}

uint64_t vd_overlay_data_bytes(const struct vd_overlay *ov)
{
    return ov->data;
}

int vd_overlay_close(struct vd_overlay *ov, struct vd_error *err)
{
    struct vd_error local = {0};
    int r = 0;
    if (!ov)
        return 0;
    if (ov->fd >= 0) {
        pthread_rwlock_wrlock(&ov->lock);
        r = ov_flush_locked(ov, err ? err : &local);
        pthread_rwlock_unlock(&ov->lock);
    }
    for (uint32_t i = 0; i < ov->ndisks; i++) {
        struct ov_disk *d = &ov->disks[i];
        for (uint32_t k = 0; d->l2 && k < d->l1_n; k++)
            free(d->l2[k]);
        free(d->l2);
        free(d->l1);
        free(d->dirty);
    }
    vd_io_unref(ov->io); /* closes the fd, which drops the flock */
    pthread_rwlock_destroy(&ov->lock);
    free(ov->path);
    free(ov);
    return r;
}
