/*
 * Overlay files: copy-on-write over any disk, so that a mount can be edited
 * while its sources stay read-only (see include/vdisk/overlay.h and
 * docs/overlay.md). Our own format: no library writes a copy-on-write layer
 * over arbitrary parents (qcow2 and VHD/VHDX differencing disks name a
 * parent of their own format by path), and this one is small enough to
 * check completely.
 *
 *   0      header block, 64 KiB: the header (4 KiB, CRC-32C), then in
 *          version 2 one 512-byte source record per disk at 4096 + 512 * i
 *          (each with its own CRC-32C, so one record is rewritten alone)
 *   65536  L1 tables, one per disk, each 4 KiB aligned: u64 file offset of
 *          an L2 unit, or 0, per 512 MiB of the disk
 *   ...    L2 units and 64 KiB data blocks, 64 KiB aligned, appended as the
 *          blocks are first written. An L2 unit is the L2 table (64 KiB:
 *          8192 u64 file offsets of data blocks, or 0), in version 2
 *          followed by its digest table (128 KiB: 8192 16-byte slots)
 *
 *   header: 0 magic "VDOVRLY1"  8 version u32 (1 or 2)  12 block size u32 =
 *           65536  16 disks u32 (<= 31)  20 crc32c u32 of the 4 KiB with
 *           this field 0  24..63 zero (version 2)
 *           64 + 128 * i: disk entry i
 *   entry:  0 key[64] NUL-padded ("web01/disk1")  64 virtual size u64
 *           72 fingerprint[32]  104 L1 offset u64  112 L1 entries u32
 *           116..127 zero (version 2)
 *   source record (version 2), what the disk was read from when the
 *   overlay recorded it (struct vd_io_identity, src/io/io.h):
 *           0 crc32c u32 of the 512 bytes with this field 0  4 kind u32
 *           (0 unknown, 1 local file, 2 remote object)  8 file size u64
 *           16 window offset u64  24 window length u64 (the disk's bytes in
 *           that file: an OVA member)  32 mtime s i64  40 mtime ns u32
 *           44 ctime ns u32  48 ctime s i64  56 dev u64  64 ino u64 (local)
 *           72 parents u32 (backing images)  76 zero u32  80 SHA-256 of
 *           the parents' records (bytes 4..255 each; zero without parents)
 *           112 ETag[144] (remote)  256 path or URL[256], for messages.
 *           Strings NUL-terminated and printable; unused fields zero.
 *   digest slot (version 2): 0 kind u8: 0 = no source bytes in the block
 *           (its first write covered it whole), 1 = bytes 1..15 are the
 *           first 15 bytes of the SHA-256 of the source's bytes of the block
 *           as the overlay copied them
 *   All integers little-endian.
 *
 * Knowing the source. A block the overlay holds mixes the guest's writes
 * with the source bytes copied at its first write, so the overlay is only
 * valid over the same source bytes. Version 2 records the source's identity
 * (local: size, mtime and ctime to the nanosecond, device and inode; S3 or
 * HTTP: size and ETag; for both the window and the parents' identities) and
 * a digest of each copied block. At attach: an equal identity is the same
 * source; a local file modified in place (same device and inode, other size
 * or mtime) is refused once the overlay holds a block of it; any other
 * difference (a copy, a rename, a conversion, a new upload) is accepted
 * only when every held block reads back from the new source with its
 * recorded digest, and the new identity is then recorded at the next flush
 * that writes tables. A descriptor VMDK
 * reads extent files the identity does not cover, so its held blocks are
 * checked at every attach. Version 1 files (no records, no digests) keep
 * the version 1 check: size and fingerprint.
 *
 * Fingerprint: SHA-256 of the size and of 64 KiB at each end plus 4 KiB at
 * 14 evenly spaced offsets of the disk's raw content: cheap on S3 (a few
 * ranged reads), and it tells two different disks apart even when their
 * names agree; a renamed source is found by it.
 *
 * Ordering. A first write to a block reads the block from the base (outside
 * the lock, so a slow S3 read does not stall other I/O), merges, appends it
 * (and writes its digest slot) and publishes its mapping in memory. A new
 * L2 unit is written as zeros when it is allocated, so that the space for
 * every table is taken at write(2) time, where ENOSPC reaches the writer,
 * not at a flush. Mappings reach the file only at a flush (fsync(2) on a
 * mount file, its close, unmount): data is synced first, then the L2 tables
 * and L1 entries, then synced again. Power loss or a killed daemon
 * therefore loses at most the writes since the last flush, like a disk's
 * volatile cache, and never leaves a mapping to data that did not reach the
 * disk; the blocks appended since are leaked space.
 * Unsupported: shrinking (blocks are never freed), resizing a disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/crc32c.h"
#include "core/driver.h"
#include "vdisk/overlay.h"

#define OV_MAGIC      "VDOVRLY1"
#define OV_VERSION    2u /* what new files get */
#define OV_BLOCK      65536u
#define OV_L2_ENTRIES (OV_BLOCK / 8)                       /* 8192 */
#define OV_L2_SPAN    ((uint64_t)OV_BLOCK * OV_L2_ENTRIES) /* 512 MiB */
#define OV_MAX_DISKS  31u
#define OV_ENTRY      128u
#define OV_KEY_MAX    64u
#define OV_MAIN       4096u /* the header proper, under the first CRC */
#define OV_REC        512u  /* a source record */
#define OV_ETAG_MAX   144u
#define OV_NAME_MAX   256u
#define OV_SLOT       16u                       /* a digest slot */
#define OV_DTAB       (OV_L2_ENTRIES * OV_SLOT) /* 128 KiB digest table */
#define OV_DLEN       15u                       /* digest bytes in a slot */
#define OV_L2_UNIT(v) ((v) >= 2 ? OV_BLOCK + OV_DTAB : OV_BLOCK)
/* 2^50 bytes (1 PiB): far past any format we read, and keeps every offset
 * computed from a disk size far from overflow. */
#define OV_MAX_SIZE (1ull << 50)

_Static_assert(OV_MAIN + OV_REC * OV_MAX_DISKS <= VD_OVERLAY_HEADER, "records fit the header");
_Static_assert(VD_OVERLAY_HEADER <= OV_BLOCK, "the header fits its block");

/* What a disk was read from: its identity, its parents', its name. */
struct ov_src {
    struct vd_io_identity id; /* id.name unused: see name */
    uint32_t parents;
    uint8_t parents_sha[32];
    char name[OV_NAME_MAX];
};

struct ov_disk {
    char key[OV_KEY_MAX];
    uint64_t size;
    uint8_t fp[32];
    uint64_t l1_off;
    uint32_t l1_n;
    uint64_t *l1;   /* file offsets of L2 units */
    uint64_t **l2;  /* l1_n loaded tables (NULL = not loaded yet) */
    uint8_t *dirty; /* l1_n flags: L2 table changed since the last flush */
    bool l1_dirty;
    bool attached;
    struct ov_src src; /* version 2 */
    bool src_dirty;    /* src changed at attach; written at the next flush */
};

struct vd_overlay {
    pthread_rwlock_t lock; /* guards the tables, eof and the header */
    struct vd_io *io;      /* the overlay file; its fd does all the I/O */
    int fd;
    char *path;
    uint32_t version; /* 1 or 2: the file's layout */
    uint64_t eof;     /* next free 64 KiB-aligned offset */
    uint64_t data;    /* bytes of data blocks held */
    bool fresh;       /* held no disk when opened: may record new ones */
    bool written;     /* a block was written: the disk set is final */
    uint32_t ndisks;
    struct ov_disk disks[OV_MAX_DISKS];
    uint64_t *units; /* file offsets of all L2 units, sorted */
    size_t nunits, units_cap;
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

static bool ov_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* A NUL-terminated string of printable bytes (UTF-8 allowed) filling at
 * most n bytes, NUL-padded: it goes into messages shown on terminals. */
static bool ov_text_ok(const uint8_t *p, size_t n)
{
    const uint8_t *nul = memchr(p, '\0', n);
    if (!nul)
        return false;
    for (const uint8_t *q = p; q < nul; q++)
        if (*q < 0x20 || *q == 0x7f)
            return false;
    return ov_zero(nul, n - (size_t)(nul - p));
}

static uint32_t ov_rec_crc(const uint8_t *rec)
{
    uint8_t tmp[OV_REC];
    memcpy(tmp, rec, sizeof(tmp));
    memset(tmp, 0, 4);
    return vd_crc32c(0, tmp, sizeof(tmp));
}

static void ov_rec_encode(const struct ov_src *s, uint8_t *rec)
{
    memset(rec, 0, OV_REC);
    put_le32(rec + 4, (uint32_t)s->id.kind);
    put_le64(rec + 8, s->id.size);
    put_le64(rec + 16, s->id.offset);
    put_le64(rec + 24, s->id.length);
    put_le64(rec + 32, (uint64_t)s->id.mtime_sec);
    put_le32(rec + 40, s->id.mtime_nsec);
    put_le32(rec + 44, s->id.ctime_nsec);
    put_le64(rec + 48, (uint64_t)s->id.ctime_sec);
    put_le64(rec + 56, s->id.dev);
    put_le64(rec + 64, s->id.ino);
    put_le32(rec + 72, s->parents);
    memcpy(rec + 80, s->parents_sha, 32);
    memcpy(rec + 112, s->id.etag, strnlen(s->id.etag, OV_ETAG_MAX - 1));
    memcpy(rec + 256, s->name, strnlen(s->name, OV_NAME_MAX - 1));
    put_le32(rec, ov_rec_crc(rec));
}

/* rec was checked by ov_rec_check. */
static void ov_rec_decode(const uint8_t *rec, struct ov_src *s)
{
    memset(s, 0, sizeof(*s));
    s->id.kind = (enum vd_io_id_kind)le32(rec + 4);
    s->id.size = le64(rec + 8);
    s->id.offset = le64(rec + 16);
    s->id.length = le64(rec + 24);
    s->id.mtime_sec = (int64_t)le64(rec + 32);
    s->id.mtime_nsec = le32(rec + 40);
    s->id.ctime_nsec = le32(rec + 44);
    s->id.ctime_sec = (int64_t)le64(rec + 48);
    s->id.dev = le64(rec + 56);
    s->id.ino = le64(rec + 64);
    s->parents = le32(rec + 72);
    memcpy(s->parents_sha, rec + 80, 32);
    memcpy(s->id.etag, rec + 112, OV_ETAG_MAX);
    memcpy(s->name, rec + 256, OV_NAME_MAX);
}

static int ov_rec_check(const uint8_t *rec, uint32_t i, struct vd_error *err)
{
    uint32_t kind = le32(rec + 4);
    uint64_t size = le64(rec + 8), woff = le64(rec + 16), wlen = le64(rec + 24), end;
    if (ov_rec_crc(rec) != le32(rec))
        return vd_err(err, -EINVAL, "header: disk %u: source record: checksum mismatch", i);
    if (kind > VD_IO_ID_REMOTE)
        return vd_err(err, -EINVAL, "header: disk %u: source record: kind %u unknown", i, kind);
    if (ck_add(woff, wlen, &end) || end > size)
        return vd_err(err, -EINVAL,
                      "header: disk %u: source record: window of %" PRIu64 " bytes at %" PRIu64
                      " outside the %" PRIu64 "-byte file",
                      i, wlen, woff, size);
    if (le32(rec + 40) >= 1000000000u || le32(rec + 44) >= 1000000000u)
        return vd_err(err, -EINVAL, "header: disk %u: source record: nanoseconds out of range", i);
    if (kind != VD_IO_ID_FILE && !ov_zero(rec + 32, 40))
        return vd_err(err, -EINVAL,
                      "header: disk %u: source record: file times or inode on a source that is "
                      "not a local file",
                      i);
    if (le32(rec + 72) > VD_MAX_CHAIN || le32(rec + 76) ||
        (!le32(rec + 72) && !ov_zero(rec + 80, 32)))
        return vd_err(err, -EINVAL, "header: disk %u: source record: parents field invalid", i);
    if (!ov_text_ok(rec + 112, OV_ETAG_MAX) || (kind != VD_IO_ID_REMOTE && rec[112]))
        return vd_err(err, -EINVAL, "header: disk %u: source record: ETag invalid", i);
    if (!ov_text_ok(rec + 256, OV_NAME_MAX))
        return vd_err(err, -EINVAL, "header: disk %u: source record: name invalid", i);
    return 0;
}

int vd_overlay_check_header(const uint8_t *buf, size_t len, uint64_t file_size,
                            struct vd_error *err)
{
    if (len < OV_MAIN || memcmp(buf, OV_MAGIC, 8) != 0)
        return vd_err(err, -EINVAL, "not a vdisk overlay file (no %s magic)", OV_MAGIC);
    uint32_t ver = le32(buf + 8);
    if (ver != 1 && ver != 2)
        return vd_err(err, -ENOTSUP, "overlay version %u, this build reads versions 1 and 2", ver);
    if (ver >= 2 && len < VD_OVERLAY_HEADER)
        return vd_err(err, -EINVAL, "header: %zu bytes, version %u has %u", len, ver,
                      VD_OVERLAY_HEADER);
    if (le32(buf + 12) != OV_BLOCK)
        return vd_err(err, -EINVAL, "header: block size %u, expected %u", le32(buf + 12), OV_BLOCK);
    uint8_t tmp[OV_MAIN];
    memcpy(tmp, buf, sizeof(tmp));
    memset(tmp + 20, 0, 4);
    if (vd_crc32c(0, tmp, sizeof(tmp)) != le32(buf + 20))
        return vd_err(err, -EINVAL, "header: checksum mismatch (corrupt overlay)");
    uint32_t n = le32(buf + 16);
    if (n > OV_MAX_DISKS)
        return vd_err(err, -EINVAL, "header: %u disks, at most %u", n, OV_MAX_DISKS);
    if (ver >= 2 &&
        (!ov_zero(buf + 24, 40) || !ov_zero(buf + 64 + OV_ENTRY * n, OV_MAIN - 64 - OV_ENTRY * n)))
        return vd_err(err, -EINVAL, "header: reserved bytes are not zero");
    /* Version 2 puts nothing but the header block before the first table. */
    uint64_t first = ver >= 2 ? VD_OVERLAY_HEADER : OV_MAIN;
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
        if (l1 < first || l1 % 4096 || ck_add(l1, ov_l1_bytes(l1n), &end) || end > file_size)
            return vd_err(err, -EINVAL,
                          "header: disk %u: L1 table at %" PRIu64 " outside the file (%" PRIu64
                          " bytes)",
                          i, l1, file_size);
        /* Two disks sharing a table would write each other's mappings. */
        for (uint32_t j = 0; j < i; j++) {
            const uint8_t *o = buf + 64 + OV_ENTRY * j;
            uint64_t ol1 = le64(o + 104), oend = ol1 + ov_l1_bytes(le32(o + 112));
            if (l1 < oend && ol1 < end)
                return vd_err(err, -EINVAL, "header: disk %u: L1 table overlaps disk %u's", i, j);
        }
        if (ver >= 2 && !ov_zero(e + 116, OV_ENTRY - 116))
            return vd_err(err, -EINVAL, "header: disk %u: reserved bytes are not zero", i);
        if (ver >= 2) {
            int r = ov_rec_check(buf + OV_MAIN + OV_REC * i, i, err);
            if (r < 0)
                return r;
        }
    }
    if (ver >= 2 && !ov_zero(buf + OV_MAIN + OV_REC * n, VD_OVERLAY_HEADER - OV_MAIN - OV_REC * n))
        return vd_err(err, -EINVAL, "header: source records past the last disk are not zero");
    return 0;
}

/* Write the header and the source records from memory (write lock held, or
 * not yet shared). Only a new disk rewrites it: see ov_add_disk. */
static int ov_write_header(struct vd_overlay *ov, struct vd_error *err)
{
    uint8_t *h = calloc(1, VD_OVERLAY_HEADER);
    if (!h)
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    memcpy(h, OV_MAGIC, 8);
    put_le32(h + 8, ov->version);
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
        if (ov->version >= 2)
            ov_rec_encode(&d->src, h + OV_MAIN + OV_REC * i);
    }
    put_le32(h + 20, vd_crc32c(0, h, OV_MAIN));
    int r = ov_pwrite(ov, h, ov->version >= 2 ? VD_OVERLAY_HEADER : OV_MAIN, 0, err);
    free(h);
    return r;
}

/* Rewrite the source record of disk i alone: 512 bytes, 512-aligned, a
 * single sector on every disk, with its own checksum. */
static int ov_write_rec(struct vd_overlay *ov, uint32_t i, struct vd_error *err)
{
    uint8_t rec[OV_REC];
    ov_rec_encode(&ov->disks[i].src, rec);
    return ov_pwrite(ov, rec, sizeof(rec), OV_MAIN + OV_REC * i, err);
}

static int ov_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Note an L2 unit at o (write lock held, or not yet shared). New units come
 * from the end of the file, so appending keeps the array sorted. */
static int ov_unit_add(struct vd_overlay *ov, uint64_t o, struct vd_error *err)
{
    if (ov->nunits == ov->units_cap) {
        size_t cap = ov->units_cap ? ov->units_cap * 2 : 16;
        uint64_t *u = realloc(ov->units, cap * sizeof(*u));
        if (!u)
            return vd_err(err, -ENOMEM, "overlay: out of memory");
        ov->units = u;
        ov->units_cap = cap;
    }
    ov->units[ov->nunits++] = o;
    return 0;
}

/* Does [o, o+len) overlap a disk's L1 table? */
static bool ov_on_l1(const struct vd_overlay *ov, uint64_t o, uint64_t len)
{
    for (uint32_t i = 0; i < ov->ndisks; i++) {
        const struct ov_disk *d = &ov->disks[i];
        if (o < d->l1_off + ov_l1_bytes(d->l1_n) && d->l1_off < o + len)
            return true;
    }
    return false;
}

/* Does the data block at o lie on a table? (units sorted, lock held) */
static bool ov_on_table(const struct vd_overlay *ov, uint64_t o)
{
    size_t lo = 0, hi = ov->nunits;
    while (lo < hi) { /* the first unit starting past o */
        size_t mid = lo + (hi - lo) / 2;
        if (ov->units[mid] <= o)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo && o < ov->units[lo - 1] + OV_L2_UNIT(ov->version))
        return true;
    return ov_on_l1(ov, o, OV_BLOCK);
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
    struct stat st;
    if (fstat(ov->fd, &st) != 0)
        return vd_err(err, -errno, "overlay: %s: %s", ov->path, strerror(errno));
    struct vd_error herr = {0};
    uint8_t *h = calloc(1, VD_OVERLAY_HEADER);
    if (!h)
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    /* A version 1 file may end after the 4 KiB header: the rest reads as
     * zeros, which a version 2 header would fail on. */
    size_t hl = (size_t)VD_MIN((uint64_t)VD_OVERLAY_HEADER,
                               VD_MAX((uint64_t)OV_MAIN, (uint64_t)st.st_size));
    int r = ov_pread(ov, h, hl, 0, err);
    if (r == 0 &&
        (r = vd_overlay_check_header(h, VD_OVERLAY_HEADER, (uint64_t)st.st_size, &herr)) < 0)
        r = vd_err(err, r, "overlay: %s: %s", ov->path, herr.msg);
    if (r < 0)
        goto out;
    ov->version = le32(h + 8);
    ov->eof = div_round_up((uint64_t)st.st_size, OV_BLOCK) * OV_BLOCK;
    ov->ndisks = le32(h + 16);
    ov->fresh = ov->ndisks == 0;
    if (ov->fresh)
        ov->version = OV_VERSION; /* nothing recorded yet: the new layout */
    for (uint32_t i = 0; i < ov->ndisks; i++) {
        struct ov_disk *d = &ov->disks[i];
        const uint8_t *e = h + 64 + OV_ENTRY * i;
        memcpy(d->key, e, OV_KEY_MAX);
        d->size = le64(e + 64);
        memcpy(d->fp, e + 72, 32);
        d->l1_off = le64(e + 104);
        d->l1_n = le32(e + 112);
        if (ov->version >= 2)
            ov_rec_decode(h + OV_MAIN + OV_REC * i, &d->src);
        if ((r = ov_disk_alloc(d, err)) < 0)
            goto out;
        uint8_t *raw = malloc((size_t)d->l1_n * 8);
        if (!raw) {
            r = vd_err(err, -ENOMEM, "overlay: out of memory");
            goto out;
        }
        r = ov_pread(ov, raw, (size_t)d->l1_n * 8, d->l1_off, err);
        for (uint32_t k = 0; r == 0 && k < d->l1_n; k++) {
            uint64_t o = le64(raw + 8 * k), end;
            if (o && (o % OV_BLOCK || ck_add(o, OV_L2_UNIT(ov->version), &end) || end > ov->eof))
                r = vd_err(err, -EINVAL,
                           "overlay: %s: disk %s: L1 entry %u points to %" PRIu64
                           ", outside the file (corrupt overlay)",
                           ov->path, d->key, k, o);
            d->l1[k] = o;
            if (r == 0 && o)
                r = ov_unit_add(ov, o, err);
        }
        free(raw);
        if (r < 0)
            goto out;
    }
    /* Every table is metadata: none may lie on another (a flush of one
     * would overwrite the other), checked once all are known. */
    if (ov->nunits) /* qsort's base may not be NULL */
        qsort(ov->units, ov->nunits, sizeof(*ov->units), ov_cmp_u64);
    for (size_t k = 0; r == 0 && k < ov->nunits; k++) {
        uint64_t o = ov->units[k];
        if ((k && o < ov->units[k - 1] + OV_L2_UNIT(ov->version)) ||
            ov_on_l1(ov, o, OV_L2_UNIT(ov->version)))
            r = vd_err(err, -EINVAL,
                       "overlay: %s: the L2 table at %" PRIu64
                       " overlaps another table (corrupt overlay)",
                       ov->path, o);
    }
out:
    free(h);
    return r;
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
    ov->version = OV_VERSION;
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
        else if (o && ov_on_table(ov, o))
            *r = vd_err(err, -EINVAL,
                        "overlay: %s: disk %s: block %" PRIu64 " maps to %" PRIu64
                        ", onto a table (corrupt overlay)",
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

/* SHA-256 of a block's source bytes, cut to a digest slot's OV_DLEN bytes. */
static int ov_digest(const uint8_t *buf, size_t len, uint8_t *out, struct vd_error *err)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) != 1 || n < OV_DLEN)
        return vd_err(err, -ENOMEM, "overlay: SHA-256 failed");
    memcpy(out, md, OV_DLEN);
    return 0;
}

/* A new L2 unit for L1 slot k at the end of the file (write lock held). It
 * is written as zeros now, so that its space is taken here, where ENOSPC
 * reaches the writer, and the flush that fills it in only overwrites. */
static int ov_new_unit(struct vd_overlay *ov, struct ov_disk *d, uint32_t k, uint64_t **out,
                       struct vd_error *err)
{
    uint64_t o = ov->eof, len = OV_L2_UNIT(ov->version);
    uint64_t *t = calloc(OV_L2_ENTRIES, sizeof(*t));
    uint8_t *zero = calloc(1, (size_t)len);
    int r = 0;
    if (!t || !zero)
        r = vd_err(err, -ENOMEM, "overlay: out of memory");
    if (r == 0)
        r = ov_pwrite(ov, zero, (size_t)len, o, err);
    if (r == 0)
        r = ov_unit_add(ov, o, err);
    free(zero);
    if (r < 0) { /* eof unchanged: the next try reuses the space */
        free(t);
        return r;
    }
    d->l2[k] = t;
    d->l1[k] = o;
    ov->eof += len;
    d->l1_dirty = true;
    d->dirty[k] = 1;
    *out = t;
    return 0;
}

/* Write n bytes at in within block b, which the overlay does not hold yet:
 * copy the rest of the block from the base, append it, record the digest
 * of the copied source bytes (version 2), map it. */
static int ov_cow(struct ov_view *v, uint64_t b, uint64_t in, const uint8_t *data, size_t n,
                  struct vd_error *err)
{
    struct vd_overlay *ov = v->ov;
    struct ov_disk *d = v->d;
    uint64_t start = b * OV_BLOCK;
    size_t have = (size_t)VD_MIN((uint64_t)OV_BLOCK, d->size - start);
    uint8_t *blk = malloc(OV_BLOCK), slot[OV_SLOT];
    int r = 0;
    if (!blk)
        return vd_err(err, -ENOMEM, "overlay: out of memory");
    /* A write covering the block whole keeps no source byte: kind 0. */
    memset(slot, 0, sizeof(slot));
    /* Outside the lock: the base may be S3. */
    if (n < have) {
        if ((r = vd_image_pread(v->base, blk, have, start, err)) < 0)
            goto out;
        slot[0] = 1;
        if (ov->version >= 2 && (r = ov_digest(blk, have, slot + 1, err)) < 0)
            goto out;
    }
    memset(blk + have, 0, OV_BLOCK - have);
    if (n)
        memcpy(blk + in, data, n);
    pthread_rwlock_wrlock(&ov->lock);
    uint32_t k = (uint32_t)(b / OV_L2_ENTRIES);
    uint64_t *t = ov_l2(ov, d, k, &r, err);
    if (r < 0)
        goto unlock;
    if (t && t[b % OV_L2_ENTRIES]) { /* another writer got here first */
        uint64_t where = t[b % OV_L2_ENTRIES];
        pthread_rwlock_unlock(&ov->lock);
        r = n ? ov_pwrite(ov, data, n, where + in, err) : 0;
        goto out;
    }
    if (!t && (r = ov_new_unit(ov, d, k, &t, err)) < 0)
        goto unlock;
    uint64_t where = ov->eof;
    if ((r = ov_pwrite(ov, blk, OV_BLOCK, where, err)) < 0)
        goto unlock;
    /* The slot is synced with the data, before any table names the block. */
    if (ov->version >= 2 &&
        (r = ov_pwrite(ov, slot, OV_SLOT,
                       d->l1[k] + OV_BLOCK + (uint64_t)OV_SLOT * (b % OV_L2_ENTRIES), err)) < 0)
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

static int ov_view_map(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                       struct vd_error *err);

/* Writes go through the core: a block the overlay does not hold yet is
 * copied from the base with the new bytes merged (a block written whole
 * reads nothing from the base and keeps no digest), then the core writes
 * the new bytes into it like any other data answer, checked against the
 * overlay's header and tables. */
static int ov_view_alloc(struct vd_image *img, uint64_t off, uint64_t len, const uint8_t *data,
                         struct vd_map *m, struct vd_error *err)
{
    struct ov_view *v = img->priv;
    uint64_t in = off % OV_BLOCK;
    size_t n = (size_t)VD_MIN(len, OV_BLOCK - in);
    int r = ov_cow(v, off / OV_BLOCK, in, data, n, err);
    if (r < 0)
        return r;
    r = ov_view_map(img, off, len, m, err);
    if (r == 0 && m->kind != VD_MAP_DATA)
        r = vd_err(err, -EIO, "overlay: %s: block %" PRIu64 " was copied but is not mapped",
                   v->ov->path, off / OV_BLOCK);
    return r;
}

/* Data, then the tables that point to it, then the source records, each
 * step synced: see the file comment. The header proper never changes after
 * attach. Nothing is written when no table changed (vdisk --overlay only
 * reads). */
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
    /* Source records changed at attach (a copy or conversion whose held
     * blocks matched): the file now belongs to that source. */
    for (uint32_t i = 0; r == 0 && ov->version >= 2 && i < ov->ndisks; i++)
        if (ov->disks[i].src_dirty && (r = ov_write_rec(ov, i, err)) == 0)
            ov->disks[i].src_dirty = false;
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
    .alloc = ov_view_alloc,
    .flush = ov_view_flush,
    .allocated = ov_view_allocated,
};

/* ---- the source's identity ---- */

/* Make s encodable as a record that ov_rec_check accepts: printable name,
 * an ETag only for remote objects and only when it fits (otherwise the
 * source is compared by content), file fields only for files. */
static void ov_src_normalize(struct ov_src *s)
{
    struct vd_io_identity *id = &s->id;
    uint64_t end;
    for (char *c = s->name; *c; c++)
        if ((uint8_t)*c < 0x20 || *c == 0x7f)
            *c = '?';
    size_t el = strnlen(id->etag, sizeof(id->etag));
    bool etag_ok = id->kind == VD_IO_ID_REMOTE && el < OV_ETAG_MAX;
    for (size_t i = 0; etag_ok && i < el; i++)
        etag_ok = (uint8_t)id->etag[i] >= 0x20 && id->etag[i] != 0x7f;
    if (!etag_ok)
        memset(id->etag, 0, sizeof(id->etag));
    if (id->kind != VD_IO_ID_FILE) {
        id->mtime_sec = id->ctime_sec = 0;
        id->mtime_nsec = id->ctime_nsec = 0;
        id->dev = id->ino = 0;
    }
    if (id->mtime_nsec >= 1000000000u || id->ctime_nsec >= 1000000000u)
        id->mtime_nsec = id->ctime_nsec = 0;
    if (ck_add(id->offset, id->length, &end))
        id->offset = id->length = 0;
    else if (end > id->size) /* the file shrank since it was opened */
        id->size = end;
    id->name = NULL;
}

/* What base reads from now: its file's identity, and a digest of each
 * parent's (a differencing chain reads unwritten ranges from them). */
static int ov_source_of(struct vd_image *base, struct ov_src *s, struct vd_error *err)
{
    memset(s, 0, sizeof(*s));
    int r = vd_io_identity(base->io, &s->id, err);
    if (r < 0)
        return r;
    /* The name is only for messages; a local one is made absolute so that
     * it still says which file from another directory. */
    char *abs = s->id.kind == VD_IO_ID_FILE && s->id.name ? realpath(s->id.name, NULL) : NULL;
    snprintf(s->name, sizeof(s->name), "%s", abs ? abs : s->id.name ? s->id.name : "");
    free(abs);
    ov_src_normalize(s);
    EVP_MD_CTX *c = NULL;
    for (struct vd_image *p = base->backing; p && s->parents < VD_MAX_CHAIN; p = p->backing) {
        struct ov_src ps;
        uint8_t rec[OV_REC];
        memset(&ps, 0, sizeof(ps));
        if ((r = vd_io_identity(p->io, &ps.id, err)) < 0)
            break;
        ov_src_normalize(&ps);
        ov_rec_encode(&ps, rec);
        if (!c && (!(c = EVP_MD_CTX_new()) || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)) {
            r = vd_err(err, -ENOMEM, "overlay: out of memory");
            break;
        }
        EVP_DigestUpdate(c, rec + 4, 252);
        s->parents++;
    }
    unsigned n = 0;
    if (r == 0 && c)
        EVP_DigestFinal_ex(c, s->parents_sha, &n);
    EVP_MD_CTX_free(c);
    return r;
}

/* Is the identity a proof of sameness? A remote object needs a strong ETag
 * (a weak one, W/..., promises equivalent content, not the same bytes). */
static bool ov_src_strong(const struct ov_src *s)
{
    if (s->id.kind == VD_IO_ID_FILE)
        return true;
    return s->id.kind == VD_IO_ID_REMOTE && s->id.etag[0] && strncmp(s->id.etag, "W/", 2) != 0;
}

static bool ov_src_equal(const struct ov_src *a, const struct ov_src *b)
{
    const struct vd_io_identity *x = &a->id, *y = &b->id;
    return x->kind == y->kind && x->size == y->size && x->offset == y->offset &&
           x->length == y->length && x->mtime_sec == y->mtime_sec &&
           x->mtime_nsec == y->mtime_nsec && x->ctime_sec == y->ctime_sec &&
           x->ctime_nsec == y->ctime_nsec && x->dev == y->dev && x->ino == y->ino &&
           !strcmp(x->etag, y->etag) && a->parents == b->parents &&
           !memcmp(a->parents_sha, b->parents_sha, 32);
}

/* The same local file (device and inode), written since: its size or mtime
 * moved. A rename, link or chmod changes only ctime. */
static bool ov_src_written_in_place(const struct ov_src *a, const struct ov_src *b)
{
    const struct vd_io_identity *x = &a->id, *y = &b->id;
    return x->kind == VD_IO_ID_FILE && y->kind == VD_IO_ID_FILE && x->dev == y->dev &&
           x->ino == y->ino &&
           (x->size != y->size || x->mtime_sec != y->mtime_sec || x->mtime_nsec != y->mtime_nsec);
}

static void ov_fmt_time(int64_t sec, uint32_t nsec, char *buf, size_t len)
{
    time_t t = (time_t)sec;
    struct tm tm;
    char day[32];
    if (!gmtime_r(&t, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(day, sizeof(day), "@%" PRId64, sec);
    snprintf(buf, len, "%s.%09uZ", day, nsec);
}

static void ov_append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ov_append(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 3 >= len)
        return;
    if (used) {
        memcpy(buf + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* What differs between the recorded source a and the current one b, for a
 * message: "mtime X, now Y; ...". */
static void ov_src_describe(const struct ov_src *a, const struct ov_src *b, bool hidden, char *buf,
                            size_t len)
{
    static const char *const kinds[] = {"a source of unknown identity", "a local file",
                                        "a remote object"};
    const struct vd_io_identity *x = &a->id, *y = &b->id;
    char t1[48], t2[48];
    buf[0] = '\0';
    if (x->kind != y->kind)
        ov_append(buf, len, "%s, now %s", kinds[x->kind % 3], kinds[y->kind % 3]);
    else if (x->kind == VD_IO_ID_NONE)
        ov_append(buf, len, "its identity cannot be read (%s)", b->name);
    if (x->kind == y->kind && x->kind == VD_IO_ID_FILE && (x->dev != y->dev || x->ino != y->ino))
        ov_append(buf, len,
                  "another file (device:inode %" PRIu64 ":%" PRIu64 ", now %" PRIu64 ":%" PRIu64
                  ")",
                  x->dev, x->ino, y->dev, y->ino);
    if (x->size != y->size)
        ov_append(buf, len, "size %" PRIu64 ", now %" PRIu64 " bytes", x->size, y->size);
    if (x->kind == y->kind && x->kind == VD_IO_ID_FILE) {
        bool m = x->mtime_sec != y->mtime_sec || x->mtime_nsec != y->mtime_nsec;
        ov_fmt_time(m ? x->mtime_sec : x->ctime_sec, m ? x->mtime_nsec : x->ctime_nsec, t1,
                    sizeof(t1));
        ov_fmt_time(m ? y->mtime_sec : y->ctime_sec, m ? y->mtime_nsec : y->ctime_nsec, t2,
                    sizeof(t2));
        if (m || x->ctime_sec != y->ctime_sec || x->ctime_nsec != y->ctime_nsec)
            ov_append(buf, len, "%s %s, now %s", m ? "mtime" : "ctime", t1, t2);
    }
    if (x->kind == y->kind && x->kind == VD_IO_ID_REMOTE &&
        (strcmp(x->etag, y->etag) || !ov_src_strong(b)))
        ov_append(buf, len, "ETag %s, now %s", x->etag[0] ? x->etag : "none",
                  y->etag[0] ? y->etag : "none");
    if (x->offset != y->offset || x->length != y->length)
        ov_append(buf, len, "%" PRIu64 " bytes at offset %" PRIu64 ", now %" PRIu64 " at %" PRIu64,
                  x->length, x->offset, y->length, y->offset);
    if (a->parents != b->parents || memcmp(a->parents_sha, b->parents_sha, 32))
        ov_append(buf, len, "a parent image changed (%u parents, now %u)", a->parents, b->parents);
    if (!buf[0] && hidden)
        ov_append(buf, len, "its extent files are not in its identity");
    if (!buf[0])
        ov_append(buf, len, "same identity");
}

/* Does base read from files its io's identity does not cover? A VMDK that
 * is a text descriptor reads its extents, which the overlay cannot see
 * until the core names every file an image opens. Such a source has its
 * held blocks checked at every attach. */
static bool ov_hidden_files(struct vd_image *base)
{
    for (struct vd_image *p = base; p; p = p->backing) {
        uint8_t m[4];
        if (strcmp(p->ops->name, "vmdk") != 0)
            continue;
        if (vd_io_pread_full(p->io, m, sizeof(m), 0, NULL) < 0 ||
            (memcmp(m, "KDMV", 4) && memcmp(m, "COWD", 4)))
            return true; /* not a sparse extent: a descriptor naming others */
    }
    return false;
}

/* Read back every block d holds a copy of source bytes for, from base, and
 * compare with the digest recorded when it was copied. Returns 0 when all
 * match, 1 with *bad set at the first that does not, or -errno; *held
 * counts the blocks d holds (up to there). */
static int ov_verify(struct vd_overlay *ov, struct ov_disk *d, struct vd_image *base, uint64_t *bad,
                     uint64_t *held, struct vd_error *err)
{
    uint8_t *slots = malloc(OV_DTAB), *blk = malloc(OV_BLOCK), dg[OV_DLEN];
    int r = 0;
    if (!slots || !blk)
        r = vd_err(err, -ENOMEM, "overlay: out of memory");
    for (uint32_t k = 0; r == 0 && k < d->l1_n; k++) {
        pthread_rwlock_wrlock(&ov->lock);
        uint64_t unit = d->l1[k];
        uint64_t *t = ov_l2(ov, d, k, &r, err);
        pthread_rwlock_unlock(&ov->lock);
        if (!t || (r = ov_pread(ov, slots, OV_DTAB, unit + OV_BLOCK, err)) < 0)
            continue;
        /* No view of the disk exists yet: nobody writes t meanwhile. */
        for (uint32_t i = 0; r == 0 && i < OV_L2_ENTRIES; i++) {
            const uint8_t *sl = slots + (size_t)OV_SLOT * i;
            uint64_t b = (uint64_t)k * OV_L2_ENTRIES + i, start = b * OV_BLOCK;
            if (sl[0] > 1 || (sl[0] == 0 && !ov_zero(sl + 1, OV_SLOT - 1))) {
                r = vd_err(err, -EINVAL,
                           "overlay: %s: disk %s: digest slot of block %" PRIu64
                           " invalid (kind %u; corrupt overlay)",
                           ov->path, d->key, b, sl[0]);
                break;
            }
            if (!t[i] || start >= d->size)
                continue;
            ++*held;
            if (sl[0] != 1)
                continue; /* held whole: no source byte in it */
            size_t have = (size_t)VD_MIN((uint64_t)OV_BLOCK, d->size - start);
            if ((r = vd_image_pread(base, blk, have, start, err)) < 0 ||
                (r = ov_digest(blk, have, dg, err)) < 0)
                break;
            if (memcmp(dg, sl + 1, OV_DLEN)) {
                *bad = b;
                r = 1;
            }
        }
    }
    free(slots);
    free(blk);
    return r;
}

/* Is the source of d (version 2) the one its copies were made from?
 * See the file comment. On success d->src is cur (dirty when it changed). */
static int ov_check_source(struct vd_overlay *ov, struct ov_disk *d, struct vd_image *base,
                           const struct ov_src *cur, struct vd_error *err)
{
    bool hidden = ov_hidden_files(base);
    if (!hidden && ov_src_strong(cur) && ov_src_equal(&d->src, cur))
        return 0;
    char what[300], blockmsg[100] = "";
    uint64_t bad = 0, held = 0;
    ov_src_describe(&d->src, cur, hidden, what, sizeof(what));
    int r = ov_verify(ov, d, base, &bad, &held, err);
    if (r < 0)
        return r;
    uint64_t first = bad * OV_BLOCK, last = VD_MIN(first + OV_BLOCK, d->size) - 1;
    if (r == 1)
        snprintf(blockmsg, sizeof(blockmsg), "block %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64 ")",
                 bad, first, last);
    /* Written in place: refused even where no held block changed, since
     * the edits belong to a guest filesystem whose other blocks did; not
     * when there are no edits. */
    if (held && ov_src_written_in_place(&d->src, cur))
        return vd_err(err, -ESTALE,
                      "overlay: %s: disk %s: %s was written after the overlay copied blocks of "
                      "it (%s%s%s%s): the edits would mix with bytes they were not made against; "
                      "restore the source, or use a new overlay file",
                      ov->path, d->key, cur->name, what, r == 1 ? "; " : "", blockmsg,
                      r == 1 ? " differs" : "");
    if (r == 1)
        return vd_err(err, -ESTALE,
                      "overlay: %s: disk %s: the source changed since the overlay copied blocks "
                      "of it (%s): %s no longer holds what was copied, and the edits would mix "
                      "with bytes they were not made against; mount the source the overlay was "
                      "made with (%s), or use a new overlay file",
                      ov->path, d->key, what, blockmsg, d->src.name);
    if (!ov_src_equal(&d->src, cur)) {
        pthread_rwlock_wrlock(&ov->lock);
        d->src = *cur;
        d->src_dirty = true;
        pthread_rwlock_unlock(&ov->lock);
    }
    return 0;
}

/* Record a new disk: its L1 table (zeros) after everything, then the
 * header naming it, each synced. */
static int ov_add_disk(struct vd_overlay *ov, const char *key, uint64_t size, const uint8_t *fp,
                       const struct ov_src *src, struct ov_disk **out, struct vd_error *err)
{
    struct ov_disk *d = &ov->disks[ov->ndisks];
    memset(d, 0, sizeof(*d));
    snprintf(d->key, sizeof(d->key), "%s", key);
    d->size = size;
    memcpy(d->fp, fp, 32);
    d->src = *src;
    d->l1_n = ov_l1_entries(size);
    d->l1_off = ov->eof;
    uint64_t l1_bytes = ov_l1_bytes(d->l1_n);
    uint8_t *zero = calloc(1, (size_t)l1_bytes);
    int r = zero ? ov_disk_alloc(d, err) : vd_err(err, -ENOMEM, "overlay: out of memory");
    /* Zeros, not a hole: the table's space is taken now, not at a flush. */
    if (r == 0)
        r = ov_pwrite(ov, zero, (size_t)l1_bytes, d->l1_off, err);
    free(zero);
    if (r == 0) {
        ov->ndisks++;
        if ((r = ov_write_header(ov, err)) < 0 || (r = ov_sync(ov, err)) < 0)
            ov->ndisks--;
    }
    if (r < 0) {
        free(d->l1);
        free(d->l2);
        free(d->dirty);
        memset(d, 0, sizeof(*d));
        return r;
    }
    ov->eof += div_round_up(l1_bytes, OV_BLOCK) * OV_BLOCK;
    *out = d;
    return 0;
}

void vd_overlay_key(const char *uri, const struct vd_source *src, size_t i, char *buf, size_t len)
{
    /* As the mount names a source's folder (fusefs/vdiskfs.c, dir_name_for)
     * when it is the only one: the last path component, without a
     * presigned URL's query and without its extension. */
    const char *base = strrchr(uri, '/');
    char stem[96], view[32];
    snprintf(stem, sizeof(stem), "%s", base && base[1] ? base + 1 : uri);
    char *cut = strchr(stem, '?');
    if (cut)
        *cut = '\0';
    if ((cut = strrchr(stem, '.')) && cut != stem)
        *cut = '\0';
    if (!stem[0] || !strcmp(stem, "export") || !strcmp(stem, ".") || !strcmp(stem, ".."))
        snprintf(stem, sizeof(stem), "source");
    vd_source_disk_view_name(src, i, view, sizeof(view));
    snprintf(buf, len, "%s/%s", stem, view);
}

int vd_overlay_attach(struct vd_overlay *ov, struct vd_image *base, const char *key,
                      struct vd_image **out, struct vd_error *err)
{
    uint8_t fp[32];
    uint64_t size = vd_image_size(base);
    struct ov_disk *d = NULL;
    struct ov_src cur;
    char want[17], got[17];
    int r;
    *out = NULL;
    if (!key[0] || strlen(key) >= OV_KEY_MAX)
        return vd_err(err, -EINVAL, "overlay: %s: disk key '%s' is empty or too long", ov->path,
                      key);
    if (size == 0 || size > OV_MAX_SIZE)
        return vd_err(err, -EINVAL, "overlay: %s: %s: size %" PRIu64 " not supported", ov->path,
                      key, size);
    if ((r = ov_fingerprint(base, fp, err)) < 0 || (r = ov_source_of(base, &cur, err)) < 0)
        return r;
    ov_hex8(fp, got);
    pthread_rwlock_wrlock(&ov->lock);
    for (uint32_t i = 0; i < ov->ndisks && !d; i++)
        if (!strcmp(ov->disks[i].key, key))
            d = &ov->disks[i];
    for (uint32_t i = 0; i < ov->ndisks && !d; i++) /* a renamed source */
        if (!ov->disks[i].attached && ov->disks[i].size == size && !memcmp(ov->disks[i].fp, fp, 32))
            d = &ov->disks[i];
    bool check = d != NULL;
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
        r = ov_add_disk(ov, key, size, fp, &cur, &d, err);
    }
    if (r == 0)
        d->attached = true; /* ours: the check below runs without the lock */
    pthread_rwlock_unlock(&ov->lock);
    if (r < 0)
        return r;
    if (check && ov->version >= 2 && (r = ov_check_source(ov, d, base, &cur, err)) < 0) {
        pthread_rwlock_wrlock(&ov->lock);
        d->attached = false;
        pthread_rwlock_unlock(&ov->lock);
        return r;
    }

    struct vd_image *img = calloc(1, sizeof(*img));
    struct ov_view *v = calloc(1, sizeof(*v));
    if (!img || !v || asprintf(&img->name, "%s (overlay %s)", vd_image_name(base), ov->path) < 0) {
        free(img);
        free(v);
        pthread_rwlock_wrlock(&ov->lock);
        d->attached = false;
        pthread_rwlock_unlock(&ov->lock);
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
    r = vd_image_declare_meta(img, ov->io, 0, ov->version >= 2 ? VD_OVERLAY_HEADER : OV_MAIN,
                              "overlay header", err);
    for (uint32_t i = 0; r == 0 && i < ov->ndisks; i++) {
        const struct ov_disk *e = &ov->disks[i];
        r = vd_image_declare_meta(img, ov->io, e->l1_off, ov_l1_bytes(e->l1_n), "overlay L1 table",
                                  err);
    }
    for (size_t k = 0; r == 0 && k < ov->nunits; k++)
        r = vd_image_declare_meta(img, ov->io, ov->units[k], OV_L2_UNIT(ov->version),
                                  "overlay L2 table", err);
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
    free(ov->units);
    vd_io_unref(ov->io); /* closes the fd, which drops the flock */
    pthread_rwlock_destroy(&ov->lock);
    free(ov->path);
    free(ov);
    return r;
}
