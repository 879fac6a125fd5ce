/*
 * VMDK: VMware's virtual disk format. A disk is a text descriptor plus one
 * or more extents; each extent is flat (raw bytes), zero, or a hosted sparse
 * extent ("KDMV") whose grains are found through a two-level table (grain
 * directory -> grain tables -> grains). streamOptimized is a sparse extent
 * with deflate-compressed grains behind 12-byte grain markers.
 * Spec: VMware "Virtual Disk Format 1.1" (sections "Hosted Sparse Extent
 * Header", "Grain Directories and Grain Tables", "Stream-Optimized
 * Compressed Sparse Extents"), plus qemu block/vmdk.c for writers' quirks.
 *
 *   sparse extent (monolithicSparse / streamOptimized / -s001.vmdk)
 *   +--------+-----------+-----+-----+-----+-------+-------+ ... +--------+
 *   | header | descriptor| RGD | RGTs| GD  | GTs   | grain | ... | footer |
 *   | 512 B  | (embedded)|     |     |     |       |       |     | (GD at |
 *   +--------+-----------+-----+-----+-----+-------+-------+ ... | end)   |
 *   GD[i] = sector of GT i; GT[j] = sector of grain (0 = unallocated: read
 *   the parent or zeros; 1 = zeroed grain). Compressed grain at that sector:
 *   [lba u64][size u32][zlib data...] padded to 512. Metadata markers:
 *   [nsectors u64][0 u32][type u32: 0 EOS, 1 GT, 2 GD, 3 footer] + pad.
 *   GD at end (gdOffset = -1): the real header is the footer, at EOF-1024,
 *   between a footer marker and the end-of-stream marker.
 *
 *   descriptor file (monolithicFlat, twoGbMaxExtent*, vmfs, delta disks)
 *   RW <sectors> SPARSE|FLAT|VMFS|ZERO "<file>" [offset]  -- one per extent
 *
 * Supported: header versions 1-3, with or without redundant GD, zeroed-grain
 * GTEs, streamOptimized with GD at end (footer) or preallocated (qemu),
 * FLAT/VMFS/ZERO/SPARSE extents in any mix, embedded or separate
 * descriptors, delta disks (parentFileNameHint, CID checked). Writes in
 * place for flat and uncompressed sparse extents (grains and grain tables
 * are appended; GD and RGD kept in step; the CID changes on first write).
 * Unsupported (-ENOTSUP): vmfsSparse/COWD redo logs, seSparse, raw device
 * mappings and physical-disk descriptors; writes to streamOptimized (-EROFS).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/codec.h"
#include "common/json.h"
#include "core/driver.h"
#include "formats/vmdk.h"

#define VMDK_SECTOR           512u
#define VMDK4_MAGIC           0x564d444bu /* "KDMV" */
#define VMDK_COWD_MAGIC       0x44574f43u /* "COWD": vmfsSparse */
#define VMDK_SESPARSE_MAGIC   0x00000000cafebabeull
#define VMDK4_FLAG_RGD        (1u << 1)
#define VMDK4_FLAG_ZERO_GRAIN (1u << 2)
#define VMDK4_FLAG_COMPRESS   (1u << 16)
#define VMDK4_FLAG_MARKER     (1u << 17)
#define VMDK_GD_AT_END        0xffffffffffffffffull
#define VMDK_MARKER_EOS       0
#define VMDK_MARKER_FOOTER    3
#define VMDK_NO_PARENT        0xffffffffu

/* Caps, checked before anything is allocated. */
#define VMDK_MAX_GRAIN_SECTORS 2048u        /* 1 MiB grains */
#define VMDK_MAX_GTES          512u         /* qemu's limit too */
#define VMDK_MAX_VIRTUAL       (1ull << 48) /* 256 TiB (VMware: 62 TiB) */
#define VMDK_MAX_GD_ENTRIES    (1u << 24)

/* Decoded-grain cache (compressed extents only) and readahead. */
#define VMDK_CACHE_BYTES (8u << 20)
#define VMDK_RA_GRAINS   32u
#define VMDK_KEY_NONE    UINT64_MAX
#define VMDK_KEY(ext, g) ((uint64_t)(ext) << 40 | (g))

enum { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };

struct vmdk_sparse {
    uint32_t version, flags;
    uint64_t capacity;      /* sectors */
    uint64_t grain_sectors; /* power of two */
    uint32_t grain_bytes;
    uint32_t gtes_per_gt;
    uint64_t desc_sector, desc_sectors;
    uint64_t gd_sector, rgd_sector, overhead;
    uint16_t compress_algo;
    bool compressed, markers, gd_at_end;
    uint64_t ngrains;
    uint32_t ngts;
    uint32_t *gd;   /* ngts entries, host order; atomic (writes allocate GTs) */
    uint32_t *rgd;  /* redundant GD if present and valid, else NULL */
    uint32_t **gts; /* GT i once loaded (validated, host order); atomic publish */
};

struct vmdk_extent {
    enum vmdk_ext_type type;
    enum vmdk_access access;
    uint64_t start, len; /* virtual bytes */
    struct vd_io *io;    /* NULL for ZERO */
    uint64_t file_off;   /* FLAT/VMFS: bytes into the file */
    unsigned idx;
    struct vmdk_sparse sp;
};

struct vmdk_slot {
    uint64_t key;
    int state;
    unsigned pins; /* readers copying out of a READY slot without the lock */
    uint8_t *data;
};

struct vmdk_state {
    struct vmdk_desc desc;
    bool have_desc;
    size_t nextents;
    struct vmdk_extent *ext;
    char subformat[40];
    pthread_mutex_t wlock; /* serialises writers (allocation, CID update) */
    bool wlock_init, cid_bumped;

    /* Everything below is protected by lock. */
    pthread_mutex_t lock;
    pthread_cond_t slot_cond;  /* a slot left SLOT_BUSY */
    pthread_cond_t queue_cond; /* readahead work queued, or stop */
    bool lock_init;
    struct vmdk_slot *slots;
    unsigned nslots;
    uint32_t slot_bytes;
    pthread_t *workers;
    unsigned nworkers, max_workers;
    bool stop;
    uint64_t queue[VMDK_RA_GRAINS * 2];
    unsigned qhead, qlen;
    uint64_t ra_last, ra_next;    /* keys: last grain read, next to queue */
    struct vmdk_state *fork_next; /* registry for the fork handlers */
    bool registered;
};

static struct vmdk_state *vmdk_state(struct vd_image *img)
{
    return img->priv;
}

/* ---------------------------------------------------------------- probe */

/* A text descriptor: the usual first line, or (hand-written ones) NUL-free
 * text with createType and at least one extent line. */
static bool vmdk_looks_like_descriptor(const uint8_t *head, size_t len)
{
    static const char sig[] = "# Disk DescriptorFile";
    if (len >= 3 && !memcmp(head, "\xef\xbb\xbf", 3)) { /* UTF-8 BOM */
        head += 3;
        len -= 3;
    }
    if (len >= sizeof(sig) - 1 && !memcmp(head, sig, sizeof(sig) - 1))
        return true;
    if (memchr(head, '\0', len) || !memmem(head, len, "createType", 10))
        return false;
    static const char *const access[] = {"\nRW ", "\nRDONLY ", "\nNOACCESS "};
    for (size_t i = 0; i < VD_ARRAY_SIZE(access); i++) {
        const uint8_t *m = memmem(head, len, access[i], strlen(access[i]));
        if (m && m + strlen(access[i]) < head + len && m[strlen(access[i])] >= '0' &&
            m[strlen(access[i])] <= '9')
            return true;
    }
    return false;
}

static int vmdk_probe(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                      uint64_t file_size)
{
    if (head_len >= 4) {
        uint32_t m = le32(head);
        if (m == VMDK4_MAGIC || m == VMDK_COWD_MAGIC)
            return 100;
    }
    if (head_len >= 8 && le64(head) == VMDK_SESPARSE_MAGIC)
        return 100;
    if (file_size <= VMDK_DESC_MAX && vmdk_looks_like_descriptor(head, head_len))
        return 100;
    return 0;
}

/* ---------------------------------------------------------- sparse open */

/* Decode and validate a hosted sparse extent header (512 bytes at b). */
static int vmdk_parse_header(const uint8_t *b, const char *name, struct vmdk_sparse *sp,
                             struct vd_error *err)
{
    sp->version = le32(b + 4);
    sp->flags = le32(b + 8);
    sp->capacity = le64(b + 12);
    sp->grain_sectors = le64(b + 20);
    sp->desc_sector = le64(b + 28);
    sp->desc_sectors = le64(b + 36);
    sp->gtes_per_gt = le32(b + 44);
    sp->rgd_sector = le64(b + 48);
    sp->gd_sector = le64(b + 56);
    sp->overhead = le64(b + 64);
    sp->compress_algo = le16(b + 77);
    if (sp->version == 0 || sp->version > 3)
        return vd_err(err, -ENOTSUP, "vmdk: %s: sparse extent header version %u is not supported",
                      name, sp->version);
    if (!is_pow2(sp->grain_sectors) || sp->grain_sectors > VMDK_MAX_GRAIN_SECTORS)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain size %" PRIu64
                      " sectors is invalid (must be a power of two, at most %u)",
                      name, sp->grain_sectors, VMDK_MAX_GRAIN_SECTORS);
    if (sp->gtes_per_gt == 0 || sp->gtes_per_gt > VMDK_MAX_GTES)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: %u grain table entries per grain table is invalid (1 to %u)", name,
                      sp->gtes_per_gt, VMDK_MAX_GTES);
    if (sp->capacity == 0 || sp->capacity > VMDK_MAX_VIRTUAL / VMDK_SECTOR)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: capacity %" PRIu64 " sectors is invalid (1 sector to 256 TiB)",
                      name, sp->capacity);
    if ((sp->flags & VMDK4_FLAG_COMPRESS) && sp->compress_algo != 1)
        return vd_err(err, -ENOTSUP,
                      "vmdk: %s: compression algorithm %u is not supported (only 1, deflate)", name,
                      sp->compress_algo);
    sp->compressed = sp->compress_algo == 1;
    sp->markers = (sp->flags & VMDK4_FLAG_MARKER) != 0;
    sp->grain_bytes = (uint32_t)(sp->grain_sectors * VMDK_SECTOR);
    sp->ngrains = div_round_up(sp->capacity, sp->grain_sectors);
    uint64_t ngts = div_round_up(sp->ngrains, sp->gtes_per_gt);
    if (ngts > VMDK_MAX_GD_ENTRIES)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain directory of %" PRIu64 " entries is too large (max %u)",
                      name, ngts, VMDK_MAX_GD_ENTRIES);
    sp->ngts = (uint32_t)ngts;
    return 0;
}

/* streamOptimized with gdOffset = -1: the footer (a header copy holding the
 * real gdOffset) sits before the end-of-stream marker. */
static int vmdk_read_footer(struct vd_io *io, const char *name, struct vmdk_sparse *sp,
                            struct vd_error *err)
{
    uint8_t b[3 * VMDK_SECTOR];
    if (io->size < 4 * VMDK_SECTOR)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain directory is at the end of the stream (gdOffset -1) but "
                      "the file is too short to hold a footer",
                      name);
    int r = vd_io_pread_full(io, b, sizeof(b), io->size - sizeof(b), err);
    if (r < 0)
        return r;
    /* [footer marker][footer][EOS marker], or, without EOS, the last two. */
    const uint8_t *mk = NULL;
    if (le32(b + 8) == 0 && le32(b + 12) == VMDK_MARKER_FOOTER &&
        le32(b + VMDK_SECTOR) == VMDK4_MAGIC && le64(b + 1024) == 0 && le32(b + 1032) == 0 &&
        le32(b + 1036) == VMDK_MARKER_EOS)
        mk = b;
    else if (le32(b + 512 + 8) == 0 && le32(b + 512 + 12) == VMDK_MARKER_FOOTER &&
             le32(b + 1024) == VMDK4_MAGIC)
        mk = b + 512;
    if (!mk)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain directory is at the end of the stream (gdOffset -1) but "
                      "there is no footer before end of file (%" PRIu64 " bytes)",
                      name, io->size);
    struct vmdk_sparse f = {0};
    r = vmdk_parse_header(mk + VMDK_SECTOR, name, &f, err);
    if (r < 0)
        return r;
    if (f.gd_sector == VMDK_GD_AT_END)
        return vd_err(err, -EINVAL, "vmdk: %s: footer has gdOffset -1 too", name);
    if (f.grain_sectors != sp->grain_sectors || f.capacity != sp->capacity ||
        f.gtes_per_gt != sp->gtes_per_gt)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: footer disagrees with the header (capacity, grain size or grain "
                      "table size)",
                      name);
    sp->gd_sector = f.gd_sector;
    sp->rgd_sector = f.rgd_sector;
    return 0;
}

static bool vmdk_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Read the header at head, the footer if needed, and the grain directory. */
static int vmdk_sparse_init(struct vmdk_extent *x, const uint8_t *head, const char *name,
                            struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    struct vd_io *io = x->io;
    int r = vmdk_parse_header(head, name, sp, err);
    if (r < 0)
        return r;
    if (sp->gd_sector == VMDK_GD_AT_END) {
        sp->gd_at_end = true;
        r = vmdk_read_footer(io, name, sp, err);
        if (r < 0)
            return r;
    }
    uint64_t gd_bytes = (uint64_t)sp->ngts * 4, gd_off, gd_end;
    if (sp->gd_sector == 0 || ck_mul(sp->gd_sector, VMDK_SECTOR, &gd_off) ||
        ck_add(gd_off, gd_bytes, &gd_end) || gd_end > io->size)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain directory (%" PRIu64 " bytes at sector %" PRIu64
                      ") is past end of file (%" PRIu64 " bytes)",
                      name, gd_bytes, sp->gd_sector, io->size);
    sp->gd = malloc(gd_bytes);
    sp->gts = calloc(sp->ngts, sizeof(*sp->gts));
    if (!sp->gd || !sp->gts)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory for the grain directory", name);
    r = vd_io_pread_full(io, sp->gd, gd_bytes, gd_off, err);
    if (r < 0)
        return r;
    uint64_t gt_bytes = (uint64_t)sp->gtes_per_gt * 4;
    uint64_t gt_sectors = div_round_up(gt_bytes, VMDK_SECTOR);
    for (uint32_t i = 0; i < sp->ngts; i++) {
        uint32_t s = le32(&sp->gd[i]);
        sp->gd[i] = s;
        if (s == 0)
            continue; /* no grain table: every grain in it is unallocated */
        if ((uint64_t)s * VMDK_SECTOR + gt_bytes > io->size)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain directory entry %u points to a grain table at sector "
                          "%u, past end of file (%" PRIu64 " bytes)",
                          name, i, s, io->size);
        if (vmdk_overlap(s, gt_sectors, sp->gd_sector, div_round_up(gd_bytes, VMDK_SECTOR)))
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain directory entry %u points to a grain table at sector "
                          "%u, inside the grain directory",
                          name, i, s);
    }
    /* The redundant GD is only needed to keep it in step when writing; a
     * broken one does not stop reads (check reports it). */
    uint64_t rgd_off;
    if ((sp->flags & VMDK4_FLAG_RGD) && sp->rgd_sector && !sp->gd_at_end &&
        !ck_mul(sp->rgd_sector, VMDK_SECTOR, &rgd_off) && rgd_off <= io->size &&
        gd_bytes <= io->size - rgd_off && (sp->rgd = malloc(gd_bytes)) &&
        vd_io_pread_full(io, sp->rgd, gd_bytes, rgd_off, NULL) == 0) {
        for (uint32_t i = 0; i < sp->ngts; i++) {
            sp->rgd[i] = le32(&sp->rgd[i]);
            if ((uint64_t)sp->rgd[i] * VMDK_SECTOR + gt_bytes > io->size ||
                (sp->rgd[i] == 0) != (sp->gd[i] == 0)) {
                free(sp->rgd);
                sp->rgd = NULL;
                break;
            }
        }
    } else if (sp->rgd) {
        free(sp->rgd);
        sp->rgd = NULL;
    }
    return 0;
}

/* Why GTE v of grain table t cannot point at a grain of this extent, or
 * NULL when it can: an allocated grain lies inside the file and outside the
 * header, the grain directory and its own grain table. */
static const char *vmdk_gte_problem(const struct vmdk_extent *x, uint32_t t, uint32_t v)
{
    const struct vmdk_sparse *sp = &x->sp;
    uint64_t gt_sectors = div_round_up((uint64_t)sp->gtes_per_gt * 4, VMDK_SECTOR);
    uint64_t gd_sectors = div_round_up((uint64_t)sp->ngts * 4, VMDK_SECTOR);
    uint64_t min_len = sp->compressed ? (sp->markers ? 12 : 1) : sp->grain_bytes;
    uint64_t span = sp->compressed ? 1 : sp->grain_sectors;
    if ((uint64_t)v * VMDK_SECTOR + min_len > x->io->size)
        return "past end of file";
    if (v < sp->overhead)
        return "inside the header area";
    if (vmdk_overlap(v, span, sp->gd[t], gt_sectors))
        return "inside its own grain table";
    if (vmdk_overlap(v, span, sp->gd_sector, gd_sectors))
        return "inside the grain directory";
    return NULL;
}

static void vmdk_gte_message(const struct vmdk_extent *x, uint32_t t, uint32_t j, uint32_t v,
                             const char *what, char *buf, size_t len)
{
    uint64_t grain = (uint64_t)t * x->sp.gtes_per_gt + j;
    snprintf(buf, len,
             "vmdk: %s: grain table %u entry %u (grain %" PRIu64 ") points to sector %u, %s",
             vd_io_basename(x->io), t, j, grain, v, what);
}

/* Load and publish grain table t. Entries are validated when used
 * (vmdk_gte) rather than here, so one bad entry, as in a truncated image,
 * fails only the reads of its own grain and the rest of the table stays
 * readable. */
static int vmdk_load_gt(struct vmdk_extent *x, uint32_t t, uint32_t **out, struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    const char *name = vd_io_basename(x->io);
    uint64_t gt_bytes = (uint64_t)sp->gtes_per_gt * 4;
    uint32_t *gt = malloc(gt_bytes);
    if (!gt)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
    int r = vd_io_pread_full(x->io, gt, gt_bytes, (uint64_t)sp->gd[t] * VMDK_SECTOR, err);
    if (r < 0) {
        free(gt);
        return r;
    }
    for (uint32_t j = 0; j < sp->gtes_per_gt; j++)
        gt[j] = le32(&gt[j]);
    uint32_t *expected = NULL;
    if (!__atomic_compare_exchange_n(&sp->gts[t], &expected, gt, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        free(gt); /* another thread won the race; use its copy */
        gt = expected;
    }
    *out = gt;
    return 0;
}

/* GTE of grain g: 0 unallocated, 1 zero grain, else the grain's sector. */
static int vmdk_gte(struct vmdk_extent *x, uint64_t g, uint32_t *out, struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    if (g >= sp->ngrains) {
        *out = 0; /* descriptor larger than the extent's capacity */
        return 0;
    }
    uint32_t t = (uint32_t)(g / sp->gtes_per_gt);
    if (__atomic_load_n(&sp->gd[t], __ATOMIC_ACQUIRE) == 0) {
        *out = 0;
        return 0;
    }
    uint32_t *gt = __atomic_load_n(&sp->gts[t], __ATOMIC_ACQUIRE);
    if (!gt) {
        int r = vmdk_load_gt(x, t, &gt, err);
        if (r < 0)
            return r;
    }
    uint32_t j = (uint32_t)(g % sp->gtes_per_gt), v = __atomic_load_n(&gt[j], __ATOMIC_RELAXED);
    const char *what = v > 1 ? vmdk_gte_problem(x, t, v) : NULL;
    if (what) {
        char msg[VD_ERROR_MAX];
        vmdk_gte_message(x, t, j, v, what, msg, sizeof(msg));
        return vd_err(err, -EINVAL, "%s", msg);
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------- grain decoding */

/* Inflate compressed grain g stored at sector v into dst (grain_bytes). */
static int vmdk_decode_grain(struct vmdk_extent *x, uint64_t g, uint32_t v, uint8_t *dst,
                             struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    const char *name = vd_io_basename(x->io);
    uint64_t off = (uint64_t)v * VMDK_SECTOR;
    uint64_t avail = x->io->size - off; /* > 0: vmdk_gte checked the entry */
    uint64_t max_comp = (uint64_t)sp->grain_bytes * 2 + 4096;
    size_t want = (size_t)VD_MIN(avail, (uint64_t)sp->grain_bytes + VMDK_SECTOR);
    /* Streams store grains in order, so the next grain's sector usually
     * bounds this one: read just that much (the marker still rules). */
    if (g + 1 < sp->ngrains && (g + 1) % sp->gtes_per_gt != 0) {
        const uint32_t *gt = __atomic_load_n(&sp->gts[g / sp->gtes_per_gt], __ATOMIC_ACQUIRE);
        uint32_t w = gt ? __atomic_load_n(&gt[(g + 1) % sp->gtes_per_gt], __ATOMIC_RELAXED) : 0;
        if (w > v)
            want = (size_t)VD_MIN((uint64_t)want, (uint64_t)(w - v) * VMDK_SECTOR);
    }
    uint8_t *buf = malloc(sp->markers ? want : (size_t)VD_MIN(avail, max_comp));
    const uint8_t *src;
    size_t src_len, n = 0;
    int r;
    if (!buf)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
    if (sp->markers) {
        r = vd_io_pread_full(x->io, buf, want, off, err);
        if (r < 0)
            goto out;
        uint64_t lba = le64(buf);
        uint32_t size = le32(buf + 8);
        if (size == 0) {
            r = vd_err(err, -EINVAL,
                       "vmdk: %s: grain %" PRIu64 ": expected a grain marker at offset %" PRIu64
                       ", found a metadata marker of type %u",
                       name, g, off, want >= 16 ? le32(buf + 12) : 0);
            goto out;
        }
        if (lba != g * sp->grain_sectors) {
            r = vd_err(err, -EINVAL,
                       "vmdk: %s: grain %" PRIu64 ": grain marker at offset %" PRIu64
                       " is for sector %" PRIu64 ", expected %" PRIu64,
                       name, g, off, lba, g * sp->grain_sectors);
            goto out;
        }
        if (size > max_comp || 12 + (uint64_t)size > avail) {
            r = vd_err(err, -EINVAL,
                       "vmdk: %s: grain %" PRIu64 ": grain marker at offset %" PRIu64
                       " gives a compressed size of %u bytes, %s",
                       name, g, off, size,
                       size > max_comp ? "larger than any grain compresses to"
                                       : "past end of file");
            goto out;
        }
        if (12 + (size_t)size > want) {
            uint8_t *nb = realloc(buf, 12 + (size_t)size);
            if (!nb) {
                r = vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
                goto out;
            }
            buf = nb;
            r = vd_io_pread_full(x->io, buf + want, 12 + (size_t)size - want, off + want, err);
            if (r < 0)
                goto out;
        }
        src = buf + 12;
        src_len = size;
    } else {
        src_len = (size_t)VD_MIN(avail, max_comp);
        r = vd_io_pread_full(x->io, buf, src_len, off, err);
        if (r < 0)
            goto out;
        src = buf;
    }
    r = vd_codec_zlib_decompress(src, src_len, dst, sp->grain_bytes, &n);
    if (r == -E2BIG) {
        r = vd_err(err, -EINVAL,
                   "vmdk: %s: grain %" PRIu64 " at offset %" PRIu64
                   " decompresses to more than the grain size (%u bytes)",
                   name, g, off, sp->grain_bytes);
        goto out;
    }
    if (r < 0) {
        r = vd_err(err, r == -ENOMEM ? -ENOMEM : -EINVAL,
                   "vmdk: %s: grain %" PRIu64 " at offset %" PRIu64 ": %s", name, g, off,
                   r == -ENOMEM ? "out of memory" : "corrupt compressed data");
        goto out;
    }
    /* Only the last grain may be short, and only past the capacity. */
    uint64_t need = VD_MIN((uint64_t)sp->grain_bytes,
                           sp->capacity * VMDK_SECTOR - g * (uint64_t)sp->grain_bytes);
    if (n < need) {
        r = vd_err(err, -EINVAL,
                   "vmdk: %s: grain %" PRIu64 " at offset %" PRIu64
                   " decompressed to %zu bytes, expected %" PRIu64,
                   name, g, off, n, need);
        goto out;
    }
    if (n < sp->grain_bytes)
        memset(dst + n, 0, sp->grain_bytes - n);
out:
    free(buf);
    return r;
}

static unsigned vmdk_slot_of(struct vmdk_state *s, uint64_t key)
{
    return (unsigned)((key ^ (key >> 40) * 7919u) % s->nslots);
}

static void *vmdk_worker(void *arg);

/* fork() safety. A process that forks after readahead workers started (a
 * FUSE daemon that opens its sources before daemonising) would lose the
 * workers in the child, and with them any lock or BUSY slot they held. The
 * handlers take every state's lock around fork() and, in the child, forget
 * the workers and their unfinished slots, which are simply decoded again. */
static pthread_mutex_t vmdk_fork_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t vmdk_fork_once = PTHREAD_ONCE_INIT;
static struct vmdk_state *vmdk_fork_list;

static void vmdk_prefork(void)
{
    pthread_mutex_lock(&vmdk_fork_lock);
    for (struct vmdk_state *s = vmdk_fork_list; s; s = s->fork_next)
        pthread_mutex_lock(&s->lock);
}

static void vmdk_postfork_parent(void)
{
    for (struct vmdk_state *s = vmdk_fork_list; s; s = s->fork_next)
        pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&vmdk_fork_lock);
}

static void vmdk_postfork_child(void)
{
    for (struct vmdk_state *s = vmdk_fork_list; s; s = s->fork_next) {
        s->nworkers = 0;
        s->qlen = 0;
        s->ra_last = VMDK_KEY_NONE;
        for (unsigned i = 0; i < s->nslots; i++)
            if (s->slots[i].state == SLOT_BUSY) {
                s->slots[i].state = SLOT_EMPTY;
                s->slots[i].key = VMDK_KEY_NONE;
            }
        pthread_cond_init(&s->slot_cond, NULL);
        pthread_cond_init(&s->queue_cond, NULL);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&vmdk_fork_lock);
}

static void vmdk_fork_init(void)
{
    (void)pthread_atfork(vmdk_prefork, vmdk_postfork_parent, vmdk_postfork_child);
}

static void vmdk_fork_register(struct vmdk_state *s)
{
    pthread_once(&vmdk_fork_once, vmdk_fork_init);
    pthread_mutex_lock(&vmdk_fork_lock);
    s->fork_next = vmdk_fork_list;
    vmdk_fork_list = s;
    s->registered = true;
    pthread_mutex_unlock(&vmdk_fork_lock);
}

static void vmdk_fork_unregister(struct vmdk_state *s)
{
    if (!s->registered)
        return;
    pthread_mutex_lock(&vmdk_fork_lock);
    for (struct vmdk_state **pp = &vmdk_fork_list; *pp; pp = &(*pp)->fork_next)
        if (*pp == s) {
            *pp = s->fork_next;
            break;
        }
    s->registered = false;
    pthread_mutex_unlock(&vmdk_fork_lock);
}

/* Note a read of grains [g_start, g_end) of x and, when reads look
 * sequential, queue the grains after g_end for the workers. The reader
 * decodes its own grains; the workers work on what the next reads will
 * want, so both run in parallel instead of the reader waiting for a worker
 * that is one grain ahead of it. */
static void vmdk_readahead(struct vmdk_state *s, struct vmdk_extent *x, uint64_t g_start,
                           uint64_t g_end)
{
    if (s->max_workers == 0)
        return;
    uint64_t ks = VMDK_KEY(x->idx, g_start), ke = VMDK_KEY(x->idx, g_end);
    pthread_mutex_lock(&s->lock);
    /* FUSE delivers the reads of one sequential stream slightly out of
     * order (several threads), so "sequential" is a window. */
    bool seq = s->ra_last != VMDK_KEY_NONE && ks + VMDK_RA_GRAINS >= s->ra_last &&
               ks <= s->ra_last + VMDK_RA_GRAINS;
    if (!seq) {
        s->ra_last = ke;
        s->ra_next = ke;
        s->qlen = 0; /* drop stale work from an earlier stream */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->ra_last = VD_MAX(s->ra_last, ke);
    uint64_t end = VD_MIN(ke + VMDK_RA_GRAINS, VMDK_KEY(x->idx, x->sp.ngrains));
    uint64_t k = VD_MAX(s->ra_next, ke);
    for (; k < end && s->qlen < VD_ARRAY_SIZE(s->queue); k++) {
        s->queue[(s->qhead + s->qlen) % VD_ARRAY_SIZE(s->queue)] = k;
        s->qlen++;
    }
    s->ra_next = VD_MAX(s->ra_next, k);
    if (s->nworkers < s->max_workers) {
        if (pthread_create(&s->workers[s->nworkers], NULL, vmdk_worker, s) == 0)
            s->nworkers++;
        else
            s->max_workers = s->nworkers; /* run without */
    }
    pthread_cond_signal(&s->queue_cond);
    pthread_mutex_unlock(&s->lock);
}

/* Readahead worker: decodes queued grains into free cache slots. */
static void *vmdk_worker(void *arg)
{
    struct vmdk_state *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        if (s->qlen == 0) {
            pthread_cond_wait(&s->queue_cond, &s->lock);
            continue;
        }
        uint64_t key = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % VD_ARRAY_SIZE(s->queue);
        s->qlen--;
        struct vmdk_slot *slot = &s->slots[vmdk_slot_of(s, key)];
        if (slot->key == key || slot->state == SLOT_BUSY || slot->pins)
            continue;
        slot->key = key;
        slot->state = SLOT_BUSY;
        pthread_mutex_unlock(&s->lock);
        struct vmdk_extent *x = &s->ext[key >> 40];
        uint64_t g = key & ((1ull << 40) - 1);
        uint32_t v = 0;
        struct vd_error e = {0};
        int r = vmdk_gte(x, g, &v, &e);
        if (r == 0 && v > 1)
            r = vmdk_decode_grain(x, g, v, slot->data, &e);
        pthread_mutex_lock(&s->lock);
        if (r == 0 && v > 1) {
            slot->state = SLOT_READY;
        } else { /* errors are reported again by the reader that needs it */
            slot->state = SLOT_EMPTY;
            slot->key = VMDK_KEY_NONE;
        }
        pthread_cond_broadcast(&s->slot_cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Copy [in, in+n) of compressed grain g (at sector v) into p, through the
 * decoded-grain cache. */
static int vmdk_read_cgrain(struct vmdk_state *s, struct vmdk_extent *x, uint64_t g, uint32_t v,
                            uint32_t in, uint8_t *p, size_t n, struct vd_error *err)
{
    uint64_t key = VMDK_KEY(x->idx, g);
    int r;
    if (x->sp.grain_bytes > s->slot_bytes)
        goto private_decode;
    pthread_mutex_lock(&s->lock);
    struct vmdk_slot *slot = &s->slots[vmdk_slot_of(s, key)];
    for (;;) {
        if (slot->key == key && slot->state == SLOT_READY) {
            /* Pinned slots are not reused, so copy without the lock. */
            slot->pins++;
            pthread_mutex_unlock(&s->lock);
            memcpy(p, slot->data + in, n);
            pthread_mutex_lock(&s->lock);
            slot->pins--;
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        if (slot->state != SLOT_BUSY && slot->pins == 0)
            break;
        if (slot->key != key || slot->state != SLOT_BUSY) {
            /* busy with (or pinned for) another grain: do not wait */
            pthread_mutex_unlock(&s->lock);
            goto private_decode;
        }
        pthread_cond_wait(&s->slot_cond, &s->lock);
    }
    slot->key = key;
    slot->state = SLOT_BUSY;
    pthread_mutex_unlock(&s->lock);
    r = vmdk_decode_grain(x, g, v, slot->data, err);
    if (r == 0)
        memcpy(p, slot->data + in, n); /* still ours: BUSY */
    pthread_mutex_lock(&s->lock);
    if (r == 0) {
        slot->state = SLOT_READY;
    } else {
        slot->state = SLOT_EMPTY;
        slot->key = VMDK_KEY_NONE;
    }
    pthread_cond_broadcast(&s->slot_cond);
    pthread_mutex_unlock(&s->lock);
    return r;

private_decode:;
    uint8_t *tmp = malloc(x->sp.grain_bytes);
    if (!tmp)
        return vd_err(err, -ENOMEM, "vmdk: out of memory");
    r = vmdk_decode_grain(x, g, v, tmp, err);
    if (r == 0)
        memcpy(p, tmp + in, n);
    free(tmp);
    return r;
}

/* ---------------------------------------------------------------- reads */

static struct vmdk_extent *vmdk_find_extent(struct vmdk_state *s, uint64_t off)
{
    size_t lo = 0, hi = s->nextents;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ext[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &s->ext[lo];
}

/* Read [xoff, xoff+n) of sparse extent x; voff is the same byte's virtual
 * offset (for the backing chain). */
static int vmdk_read_sparse(struct vd_image *img, struct vmdk_extent *x, uint8_t *p, size_t n,
                            uint64_t xoff, uint64_t voff, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = &x->sp;
    uint64_t gb = sp->grain_bytes;
    if (sp->compressed) {
        /* Walk the grains backwards: a readahead worker queued by the
         * previous read is decoding this one's grains front to back, so the
         * two meet in the middle instead of queueing behind each other. */
        uint64_t g0 = xoff / gb, g1 = (xoff + n - 1) / gb;
        if (s->slots)
            vmdk_readahead(s, x, g0, g1 + 1);
        for (uint64_t g = g1 + 1; g-- > g0;) {
            uint64_t a = VD_MAX(g * gb, xoff), b = VD_MIN(g * gb + gb, xoff + n);
            uint8_t *dst = p + (a - xoff);
            uint32_t v;
            int r = vmdk_gte(x, g, &v, err);
            if (r == 0 && v > 1)
                r = vmdk_read_cgrain(s, x, g, v, (uint32_t)(a - g * gb), dst, (size_t)(b - a), err);
            else if (r == 0 && v == 1)
                memset(dst, 0, (size_t)(b - a));
            else if (r == 0)
                r = vd_image_read_backing(img, dst, (size_t)(b - a), voff + (a - xoff), err);
            if (r < 0)
                return r;
        }
        return 0;
    }
    while (n > 0) {
        uint64_t g = xoff / gb;
        uint32_t in = (uint32_t)(xoff % gb), v;
        size_t chunk = (size_t)VD_MIN((uint64_t)n, gb - in);
        int r = vmdk_gte(x, g, &v, err);
        if (r < 0)
            return r;
        {
            /* Coalesce following grains of the same kind (contiguous on disk
             * for allocated ones) into one request. */
            uint64_t ng = g + 1;
            while (chunk < n) {
                uint32_t w;
                r = vmdk_gte(x, ng, &w, err);
                if (r < 0)
                    return r;
                bool same = v > 1 ? w == v + (ng - g) * sp->grain_sectors : w == v;
                if (!same)
                    break;
                chunk = (size_t)VD_MIN((uint64_t)n, chunk + gb);
                ng++;
            }
            if (v == 0)
                r = vd_image_read_backing(img, p, chunk, voff, err);
            else if (v == 1)
                memset(p, 0, chunk);
            else
                r = vd_io_pread_full(x->io, p, chunk, (uint64_t)v * VMDK_SECTOR + in, err);
        }
        if (r < 0)
            return r;
        p += chunk;
        n -= chunk;
        xoff += chunk;
        voff += chunk;
    }
    return 0;
}

static int vmdk_pread(struct vd_image *img, void *buf, size_t len, uint64_t off,
                      struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    uint8_t *p = buf;
    while (len > 0) {
        struct vmdk_extent *x = vmdk_find_extent(s, off);
        uint64_t xoff = off - x->start;
        size_t n = (size_t)VD_MIN((uint64_t)len, x->len - xoff);
        int r = 0;
        switch (x->type) {
        case VMDK_EXT_ZERO:
            memset(p, 0, n);
            break;
        case VMDK_EXT_SPARSE:
            r = vmdk_read_sparse(img, x, p, n, xoff, off, err);
            break;
        default:
            r = vd_io_pread_full(x->io, p, n, x->file_off + xoff, err);
            break;
        }
        if (r < 0)
            return r;
        p += n;
        len -= n;
        off += n;
    }
    return 0;
}

/* Zero-copy reads (splice): flat extents, and runs of uncompressed grains
 * that lie one after another in the file (as VMware and qemu allocate
 * them). Compressed grains, zero and unallocated ones are read by pread. */
static int vmdk_map(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum,
                    struct vd_io **io, uint64_t *io_off, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_extent *x = vmdk_find_extent(s, off);
    uint64_t xoff = off - x->start;
    len = VD_MIN(len, x->len - xoff);
    *pnum = len;
    if (x->type == VMDK_EXT_ZERO)
        return 0;
    if (x->type != VMDK_EXT_SPARSE) {
        *io = x->io;
        *io_off = x->file_off + xoff;
        return 1;
    }
    struct vmdk_sparse *sp = &x->sp;
    uint64_t gb = sp->grain_bytes, g = xoff / gb, in = xoff % gb;
    uint32_t v, w;
    int r = vmdk_gte(x, g, &v, err);
    if (r < 0)
        return r;
    uint64_t n = VD_MIN(len, gb - in);
    if (sp->compressed || v <= 1) {
        *pnum = n;
        return 0;
    }
    for (uint64_t ng = g + 1; n < len; ng++) {
        if ((r = vmdk_gte(x, ng, &w, err)) < 0)
            return r;
        if (w != v + (ng - g) * sp->grain_sectors)
            break;
        n = VD_MIN(len, n + gb);
    }
    *pnum = n;
    *io = x->io;
    *io_off = (uint64_t)v * VMDK_SECTOR + in;
    return 1;
}

static int vmdk_block_status(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum,
                             struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_extent *x = vmdk_find_extent(s, off);
    uint64_t xoff = off - x->start;
    len = VD_MIN(len, x->len - xoff);
    if (x->type == VMDK_EXT_ZERO) {
        *pnum = len;
        return VD_STATUS_ZERO;
    }
    if (x->type != VMDK_EXT_SPARSE) {
        *pnum = len;
        return VD_STATUS_DATA;
    }
    struct vmdk_sparse *sp = &x->sp;
    uint64_t gb = sp->grain_bytes, done = 0;
    int st = -1;
    while (done < len) {
        uint64_t g = (xoff + done) / gb;
        uint64_t step = gb - (xoff + done) % gb;
        uint32_t v = 0;
        if (g < sp->ngrains &&
            __atomic_load_n(&sp->gd[g / sp->gtes_per_gt], __ATOMIC_ACQUIRE) == 0) {
            /* whole grain table unallocated */
            uint64_t gt_end = (g / sp->gtes_per_gt + 1) * sp->gtes_per_gt;
            step += (gt_end - g - 1) * gb;
        } else {
            int r = vmdk_gte(x, g, &v, err);
            if (r < 0)
                return r;
        }
        int cur = v == 0 ? VD_STATUS_BACKING : v == 1 ? VD_STATUS_ZERO : VD_STATUS_DATA;
        if (st >= 0 && cur != st)
            break;
        st = cur;
        done += step;
    }
    *pnum = VD_MIN(done, len);
    return st;
}

static uint64_t vmdk_allocated(struct vd_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    uint64_t sum = 0;
    for (size_t i = 0; i < s->nextents; i++) {
        struct vd_io *io = s->ext[i].io;
        bool seen = !io;
        for (size_t j = 0; j < i && !seen; j++)
            seen = s->ext[j].io == io;
        if (!seen)
            sum += io->size;
    }
    return sum;
}

/* --------------------------------------------------------------- writes */

/* Give the image a new CID before its first write, as VMware and qemu do,
 * so that children made from it detect the change (parentCID check). The
 * "CID=" value is rewritten in the embedded descriptor or descriptor file. */
static int vmdk_bump_cid(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    if (!s->have_desc)
        return 0;
    struct vmdk_extent *x = &s->ext[0];
    bool embedded = s->nextents == 1 && x->type == VMDK_EXT_SPARSE && x->io == img->io;
    uint64_t off = embedded ? x->sp.desc_sector * VMDK_SECTOR : 0;
    uint64_t cap = embedded ? x->sp.desc_sectors * VMDK_SECTOR : img->io->size;
    if (cap == 0 || cap > VMDK_DESC_MAX)
        return 0;
    char *text = calloc(1, cap + 16), *out = NULL;
    int r = text ? vd_io_pread_full(img->io, text, cap, off, err) : -ENOMEM;
    if (r < 0)
        goto done;
    size_t len = strnlen(text, cap);
    char *c = NULL;
    for (char *p = text; p && p < text + len; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, "CID=", 4)) {
            c = p + 4;
            break;
        }
    if (!c)
        goto done; /* no CID line: nothing to keep in step */
    size_t digits = strspn(c, "0123456789abcdefABCDEF");
    uint32_t cid;
    do {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cid = (uint32_t)(ts.tv_nsec ^ ts.tv_sec * 2654435761u ^ (uintptr_t)s);
    } while (cid == s->desc.cid || cid >= 0xfffffffeu);
    size_t newlen = len - digits + 8;
    if (newlen > cap && embedded)
        goto done; /* no room (never seen: descriptors are NUL-padded) */
    size_t outcap = VD_MAX(newlen, embedded ? (size_t)cap : newlen);
    if (!(out = calloc(1, outcap + 1))) {
        r = -ENOMEM;
        goto done;
    }
    size_t pre = (size_t)(c - text);
    memcpy(out, text, pre);
    snprintf(out + pre, 9, "%08x", cid);
    memcpy(out + pre + 8, c + digits, len - pre - digits);
    r = vd_io_pwrite_full(img->io, out, embedded ? outcap : newlen, off, err);
    if (r == 0)
        s->desc.cid = cid;
done:
    if (r == -ENOMEM)
        vd_err(err, r, "vmdk: %s: out of memory", img->name);
    free(text);
    free(out);
    return r;
}

/* Allocate grain g of x at the end of the file with content data (one
 * grain), creating its grain table(s) if the GD has none. Called with
 * s->wlock held. */
static int vmdk_alloc_grain(struct vmdk_extent *x, uint64_t g, const uint8_t *data,
                            struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    struct vd_io *io = x->io;
    const char *name = vd_io_basename(io);
    uint32_t t = (uint32_t)(g / sp->gtes_per_gt), j = (uint32_t)(g % sp->gtes_per_gt);
    uint64_t gt_bytes = (uint64_t)sp->gtes_per_gt * 4;
    uint64_t gt_sectors = div_round_up(gt_bytes, VMDK_SECTOR);
    uint64_t next = div_round_up(io->size, VMDK_SECTOR);
    uint64_t need = sp->grain_sectors + (sp->gd[t] ? 0 : gt_sectors * (sp->rgd ? 2 : 1));
    uint8_t le[4];
    int r;
    if (next + need > UINT32_MAX)
        return vd_err(err, -EFBIG, "vmdk: %s: a sparse extent cannot grow past 2 TiB", name);
    if (!sp->gd[t]) {
        /* New grain tables (zeroed on disk and in memory), then GD entries. */
        uint32_t *gt = calloc(sp->gtes_per_gt, 4);
        uint8_t *zero = calloc(gt_sectors, VMDK_SECTOR);
        uint32_t gsec = (uint32_t)next, rsec = (uint32_t)(next + gt_sectors);
        r = gt && zero ? 0 : vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
        if (r == 0)
            r = vd_io_pwrite_full(io, zero, gt_sectors * VMDK_SECTOR, gsec * (uint64_t)VMDK_SECTOR,
                                  err);
        if (r == 0 && sp->rgd)
            r = vd_io_pwrite_full(io, zero, gt_sectors * VMDK_SECTOR, rsec * (uint64_t)VMDK_SECTOR,
                                  err);
        free(zero);
        if (r == 0) {
            put_le32(le, gsec);
            r = vd_io_pwrite_full(io, le, 4, sp->gd_sector * VMDK_SECTOR + t * 4ull, err);
        }
        if (r == 0 && sp->rgd) {
            put_le32(le, rsec);
            r = vd_io_pwrite_full(io, le, 4, sp->rgd_sector * VMDK_SECTOR + t * 4ull, err);
        }
        if (r < 0) {
            free(gt);
            return r;
        }
        uint32_t *old = __atomic_exchange_n(&sp->gts[t], gt, __ATOMIC_ACQ_REL);
        free(old); /* never set while gd[t] == 0; defensive */
        if (sp->rgd)
            sp->rgd[t] = rsec;
        __atomic_store_n(&sp->gd[t], gsec, __ATOMIC_RELEASE);
        next += gt_sectors * (sp->rgd ? 2 : 1);
    }
    uint32_t *gt;
    r = vmdk_gte(x, g, &(uint32_t){0}, err); /* loads the GT */
    if (r < 0)
        return r;
    gt = __atomic_load_n(&sp->gts[t], __ATOMIC_ACQUIRE);
    /* Data first, then the table entries that point at it. */
    r = vd_io_pwrite_full(io, data, sp->grain_bytes, next * VMDK_SECTOR, err);
    if (r < 0)
        return r;
    put_le32(le, (uint32_t)next);
    r = vd_io_pwrite_full(io, le, 4, (uint64_t)sp->gd[t] * VMDK_SECTOR + j * 4ull, err);
    if (r == 0 && sp->rgd)
        r = vd_io_pwrite_full(io, le, 4, (uint64_t)sp->rgd[t] * VMDK_SECTOR + j * 4ull, err);
    if (r == 0)
        __atomic_store_n(&gt[j], (uint32_t)next, __ATOMIC_RELEASE);
    return r;
}

static int vmdk_write_sparse(struct vd_image *img, struct vmdk_extent *x, const uint8_t *p,
                             size_t n, uint64_t xoff, uint64_t voff, struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    uint64_t gb = sp->grain_bytes;
    uint8_t *tmp = NULL;
    int r = 0;
    while (n > 0) {
        uint64_t g = xoff / gb;
        uint32_t in = (uint32_t)(xoff % gb), v;
        size_t chunk = (size_t)VD_MIN((uint64_t)n, gb - in);
        if (g >= sp->ngrains) {
            r = vd_err(err, -EINVAL,
                       "vmdk: %s: write past the capacity of extent %s (descriptor and header "
                       "disagree)",
                       img->name, vd_io_basename(x->io));
            break;
        }
        r = vmdk_gte(x, g, &v, err);
        if (r < 0)
            break;
        if (v > 1) {
            r = vd_io_pwrite_full(x->io, p, chunk, (uint64_t)v * VMDK_SECTOR + in, err);
        } else if (chunk == gb) {
            r = vmdk_alloc_grain(x, g, p, err);
        } else {
            /* Partial grain: start from what it reads as now. */
            if (!tmp && !(tmp = malloc(gb))) {
                r = vd_err(err, -ENOMEM, "vmdk: %s: out of memory", img->name);
                break;
            }
            uint64_t gstart = voff - in;
            memset(tmp, 0, gb);
            if (v == 0 && gstart < img->size)
                r = vd_image_read_backing(img, tmp, (size_t)VD_MIN(gb, img->size - gstart), gstart,
                                          err);
            if (r == 0) {
                memcpy(tmp + in, p, chunk);
                r = vmdk_alloc_grain(x, g, tmp, err);
            }
        }
        if (r < 0)
            break;
        p += chunk;
        n -= chunk;
        xoff += chunk;
        voff += chunk;
    }
    free(tmp);
    return r;
}

static bool vmdk_all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

static int vmdk_pwrite(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                       struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    const uint8_t *p = buf;
    int r = 0;
    pthread_mutex_lock(&s->wlock);
    if (!s->cid_bumped) {
        r = vmdk_bump_cid(img, err);
        if (r < 0)
            goto out;
        s->cid_bumped = true;
    }
    while (len > 0) {
        struct vmdk_extent *x = vmdk_find_extent(s, off);
        uint64_t xoff = off - x->start;
        size_t n = (size_t)VD_MIN((uint64_t)len, x->len - xoff);
        switch (x->type) {
        case VMDK_EXT_ZERO:
            if (!vmdk_all_zero(p, n))
                r = vd_err(err, -EROFS,
                           "vmdk: %s: cannot write data at offset %" PRIu64 " into ZERO extent %u",
                           img->name, off, x->idx + 1);
            break;
        case VMDK_EXT_SPARSE:
            r = vmdk_write_sparse(img, x, p, n, xoff, off, err);
            break;
        default:
            r = vd_io_pwrite_full(x->io, p, n, x->file_off + xoff, err);
            break;
        }
        if (r < 0)
            goto out;
        p += n;
        len -= n;
        off += n;
    }
out:
    pthread_mutex_unlock(&s->wlock);
    return r;
}

static int vmdk_flush(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    for (size_t i = 0; i < s->nextents; i++) {
        struct vd_io *io = s->ext[i].io;
        if (io && io->writable && io->ops->flush) {
            int r = io->ops->flush(io, err);
            if (r < 0)
                return r;
        }
    }
    if (img->io->writable && img->io->ops->flush)
        return img->io->ops->flush(img->io, err);
    return 0;
}

/* ----------------------------------------------------------------- open */

static int vmdk_open_sparse_extent(struct vmdk_extent *x, const char *name, struct vd_error *err)
{
    uint8_t head[VMDK_SECTOR];
    int r = vd_io_pread_zfill(x->io, head, sizeof(head), 0, err);
    if (r < 0)
        return r;
    if (x->io->size < VMDK_SECTOR || le32(head) != VMDK4_MAGIC) {
        if (le32(head) == VMDK_COWD_MAGIC)
            return vd_err(err, -ENOTSUP, "vmdk: %s: vmfsSparse (COWD) extents are not supported",
                          name);
        if (le64(head) == VMDK_SESPARSE_MAGIC)
            return vd_err(err, -ENOTSUP, "vmdk: %s: seSparse extents are not supported", name);
        return vd_err(err, -EINVAL, "vmdk: %s: not a sparse extent (no KDMV header)", name);
    }
    return vmdk_sparse_init(x, head, name, err);
}

static const char *vmdk_unsupported_type(enum vmdk_ext_type t)
{
    switch (t) {
    case VMDK_EXT_VMFSSPARSE:
        return "vmfsSparse (COWD)";
    case VMDK_EXT_SESPARSE:
        return "seSparse";
    case VMDK_EXT_VMFSRDM:
    case VMDK_EXT_VMFSRAW:
        return "raw device mapping (VMFSRDM/VMFSRAW)";
    default:
        return NULL;
    }
}

/* A sparse extent opened directly (monolithicSparse, streamOptimized, or
 * one -s00N.vmdk file): the file is the only extent, whatever name its
 * embedded descriptor gives it. */
static int vmdk_open_monolithic(struct vd_image *img, const uint8_t *head, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    s->ext = calloc(1, sizeof(*s->ext));
    if (!s->ext)
        return vd_err(err, -ENOMEM, "out of memory");
    s->nextents = 1;
    struct vmdk_extent *x = &s->ext[0];
    x->type = VMDK_EXT_SPARSE;
    x->io = img->io;
    vd_io_ref(img->io);
    int r = vmdk_sparse_init(x, head, img->name, err);
    if (r < 0)
        return r;
    x->len = x->sp.capacity * VMDK_SECTOR;
    if (x->sp.desc_sector && x->sp.desc_sectors) {
        uint64_t doff, dlen, dend;
        if (x->sp.desc_sectors > VMDK_DESC_MAX / VMDK_SECTOR ||
            ck_mul(x->sp.desc_sector, VMDK_SECTOR, &doff) ||
            ck_mul(x->sp.desc_sectors, VMDK_SECTOR, &dlen) || ck_add(doff, dlen, &dend) ||
            dend > img->io->size)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: embedded descriptor (%" PRIu64 " sectors at sector %" PRIu64
                          ") is past end of file or too large",
                          img->name, x->sp.desc_sectors, x->sp.desc_sector);
        char *text = malloc(dlen);
        if (!text)
            return vd_err(err, -ENOMEM, "out of memory");
        r = vd_io_pread_full(img->io, text, dlen, doff, err);
        if (r == 0)
            r = vd_vmdk_desc_parse(text, dlen, img->name, &s->desc, err);
        free(text);
        if (r < 0)
            return r;
        s->have_desc = true;
    }
    const char *ct = s->have_desc && s->desc.create_type ? s->desc.create_type
                     : x->sp.compressed                  ? "streamOptimized"
                                                         : "monolithicSparse";
    snprintf(s->subformat, sizeof(s->subformat), "%s", ct);
    return 0;
}

/* A text descriptor naming extents beside it. */
static int vmdk_open_descriptor(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vd_io *io = img->io;
    if (io->size > VMDK_DESC_MAX)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: not a sparse extent, and too large (%" PRIu64
                      " bytes) for a descriptor file",
                      img->name, io->size);
    char *text = malloc(io->size + 1);
    if (!text)
        return vd_err(err, -ENOMEM, "out of memory");
    int r = vd_io_pread_full(io, text, io->size, 0, err);
    if (r == 0)
        r = vd_vmdk_desc_parse(text, io->size, img->name, &s->desc, err);
    free(text);
    if (r < 0)
        return r;
    s->have_desc = true;
    struct vmdk_desc *d = &s->desc;
    if (d->nextents == 0)
        return vd_err(err, -EINVAL, "vmdk: %s: descriptor lists no extents", img->name);
    static const char *const devices[] = {"fullDevice", "partitionedDevice", "vmfsRaw",
                                          "vmfsRawDeviceMap", "vmfsPassthroughRawDeviceMap"};
    for (size_t i = 0; d->create_type && i < VD_ARRAY_SIZE(devices); i++)
        if (!strcmp(d->create_type, devices[i]))
            return vd_err(err, -ENOTSUP,
                          "vmdk: %s: createType %s (a physical disk or raw device) is not "
                          "supported",
                          img->name, d->create_type);
    for (size_t i = 0; i < d->nextents; i++) {
        const char *what = vmdk_unsupported_type(d->extents[i].type);
        if (what)
            return vd_err(err, -ENOTSUP, "vmdk: %s: %s extents are not supported", img->name, what);
    }
    s->ext = calloc(d->nextents, sizeof(*s->ext));
    if (!s->ext)
        return vd_err(err, -ENOMEM, "out of memory");
    uint64_t start = 0;
    for (size_t i = 0; i < d->nextents; i++) {
        struct vmdk_desc_extent *de = &d->extents[i];
        struct vmdk_extent *x = &s->ext[i];
        x->type = de->type;
        x->access = de->access;
        x->idx = (unsigned)i;
        x->start = start;
        if (de->sectors > VMDK_MAX_VIRTUAL / VMDK_SECTOR ||
            ck_muladd(de->sectors, VMDK_SECTOR, start, &start) || start > VMDK_MAX_VIRTUAL)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: extents add up to more than 256 TiB (at extent %zu)",
                          img->name, i + 1);
        x->len = start - x->start;
        s->nextents = i + 1;
        if (x->type == VMDK_EXT_ZERO)
            continue;
        struct vd_error e = {0};
        char what[32];
        snprintf(what, sizeof(what), "extent %zu", i + 1);
        r = vd_image_open_file(img, de->file, img->opts.writable, x->type != VMDK_EXT_SPARSE, what,
                               &x->io, &e);
        const char *slash = strrchr(de->file, '/');
        if ((r == -ENOENT || r == -EPERM) && slash && slash[1]) {
            /* ESX descriptors may name extents by absolute datastore path
             * (/vmfs/volumes/...): look beside the descriptor too. */
            struct vd_error e2 = {0};
            if (vd_image_open_file(img, slash + 1, img->opts.writable, x->type != VMDK_EXT_SPARSE,
                                   what, &x->io, &e2) == 0)
                r = 0;
        }
        if (r < 0)
            return vd_err(err, r, "vmdk: %s: extent %zu ('%s'): %s", img->name, i + 1, de->file,
                          e.msg);
        vd_io_ref(x->io); /* the image holds one reference, the extent another */
        const char *xname = vd_io_basename(x->io);
        if (x->type == VMDK_EXT_SPARSE) {
            r = vmdk_open_sparse_extent(x, xname, err);
            if (r < 0)
                return r;
            continue;
        }
        uint64_t end;
        if (ck_mul(de->offset, VMDK_SECTOR, &x->file_off) || ck_add(x->file_off, x->len, &end) ||
            end > x->io->size)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: extent %zu: %s is %" PRIu64 " bytes, shorter than the %" PRIu64
                          " bytes at offset %" PRIu64 " the descriptor gives it",
                          img->name, i + 1, xname, x->io->size, x->len, de->offset * VMDK_SECTOR);
    }
    snprintf(s->subformat, sizeof(s->subformat), "%s", d->create_type ? d->create_type : "custom");
    return 0;
}

static int vmdk_open_parent(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    const char *hint = s->desc.parent_hint;
    struct vd_error e = {0};
    int r = vd_image_open_backing(img, hint, NULL, &e);
    if ((r == -ENOENT || r == -EPERM) && strpbrk(hint, "\\/")) {
        /* A path from the machine that made it (C:\VMs\base.vmdk): try the
         * file name beside the child. */
        const char *b = hint + strlen(hint);
        while (b > hint && b[-1] != '\\' && b[-1] != '/')
            b--;
        if (*b) {
            vd_err_clear(&e);
            r = vd_image_open_backing(img, b, NULL, &e);
        }
    }
    if (r < 0)
        return vd_err(err, r, "vmdk: %s: cannot open parent '%s': %s", img->name, hint, e.msg);
    struct vd_image *p = img->backing;
    if (s->desc.parent_cid != VMDK_NO_PARENT && p->ops == &vd_format_vmdk) {
        struct vmdk_state *ps = vmdk_state(p);
        if (ps->have_desc && ps->desc.cid != s->desc.parent_cid)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: parentCID %08x does not match CID %08x of parent %s (the "
                          "parent changed after this snapshot was taken)",
                          img->name, s->desc.parent_cid, ps->desc.cid, p->name);
    }
    return 0;
}

static int vmdk_open(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    uint8_t head[VMDK_SECTOR];
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return vd_err(err, -ENOMEM, "vmdk: %s: cannot create a mutex", img->name);
    pthread_cond_init(&s->slot_cond, NULL);
    pthread_cond_init(&s->queue_cond, NULL);
    s->lock_init = true;
    s->ra_last = VMDK_KEY_NONE;
    if (img->io->size < 4)
        return vd_err(err, -EINVAL, "vmdk: %s: file is too small (%" PRIu64 " bytes) for a VMDK",
                      img->name, img->io->size);
    int r = vd_io_pread_zfill(img->io, head, sizeof(head), 0, err);
    if (r < 0)
        return r;
    if (le32(head) == VMDK4_MAGIC) {
        if (img->io->size < VMDK_SECTOR)
            return vd_err(err, -EINVAL, "vmdk: %s: truncated sparse extent header", img->name);
        r = vmdk_open_monolithic(img, head, err);
    } else if (le32(head) == VMDK_COWD_MAGIC) {
        r = vd_err(err, -ENOTSUP, "vmdk: %s: vmfsSparse (COWD) extents are not supported",
                   img->name);
    } else if (img->io->size >= 8 && le64(head) == VMDK_SESPARSE_MAGIC) {
        r = vd_err(err, -ENOTSUP, "vmdk: %s: seSparse extents are not supported", img->name);
    } else {
        r = vmdk_open_descriptor(img, err);
    }
    if (r < 0)
        return r;
    img->size = s->ext[s->nextents - 1].start + s->ext[s->nextents - 1].len;
    img->subformat = s->subformat;
    if (img->opts.writable) {
        for (size_t i = 0; i < s->nextents; i++)
            if (s->ext[i].type == VMDK_EXT_SPARSE && s->ext[i].sp.compressed)
                return vd_err(err, -EROFS,
                              "vmdk: %s: %s images (compressed grains) cannot be written in "
                              "place; mount it read-only, keep the changes in an overlay (-o "
                              "overlay=FILE), or write to a converted copy",
                              img->name, s->subformat);
        if (pthread_mutex_init(&s->wlock, NULL) != 0)
            return vd_err(err, -ENOMEM, "vmdk: %s: cannot create a mutex", img->name);
        s->wlock_init = true;
    }

    /* Grain cache for compressed extents. */
    uint32_t max_grain = 0;
    for (size_t i = 0; i < s->nextents; i++)
        if (s->ext[i].type == VMDK_EXT_SPARSE && s->ext[i].sp.compressed)
            max_grain = VD_MAX(max_grain, s->ext[i].sp.grain_bytes);
    if (max_grain) {
        s->slot_bytes = max_grain;
        s->nslots = VD_MAX(2 * VMDK_RA_GRAINS + 8, VMDK_CACHE_BYTES / max_grain);
        s->slots = calloc(s->nslots, sizeof(*s->slots));
        if (!s->slots)
            return vd_err(err, -ENOMEM, "out of memory");
        for (unsigned i = 0; i < s->nslots; i++) {
            s->slots[i].key = VMDK_KEY_NONE;
            if (!(s->slots[i].data = malloc(max_grain)))
                return vd_err(err, -ENOMEM, "out of memory");
        }
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        s->max_workers = ncpu > 1 ? (unsigned)VD_MIN(ncpu - 1, 3) : 0;
        if (s->max_workers && !(s->workers = calloc(s->max_workers, sizeof(*s->workers))))
            s->max_workers = 0;
        if (s->max_workers)
            vmdk_fork_register(s);
    }

    if (s->have_desc && s->desc.parent_hint && s->desc.parent_hint[0])
        return vmdk_open_parent(img, err);
    return 0;
}

static void vmdk_close(struct vd_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    vmdk_fork_unregister(s);
    if (s->lock_init) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->queue_cond);
        pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < s->nworkers; i++)
            pthread_join(s->workers[i], NULL);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->slot_cond);
        pthread_cond_destroy(&s->queue_cond);
    }
    if (s->wlock_init)
        pthread_mutex_destroy(&s->wlock);
    free(s->workers);
    for (unsigned i = 0; s->slots && i < s->nslots; i++)
        free(s->slots[i].data);
    free(s->slots);
    for (size_t i = 0; i < s->nextents; i++) {
        struct vmdk_extent *x = &s->ext[i];
        for (uint32_t t = 0; x->sp.gts && t < x->sp.ngts; t++)
            free(x->sp.gts[t]);
        free(x->sp.gts);
        free(x->sp.gd);
        free(x->sp.rgd);
        vd_io_unref(x->io);
    }
    free(s->ext);
    vd_vmdk_desc_free(&s->desc);
}

/* ----------------------------------------------------------- info/check */

static void vmdk_json_cid(struct vd_json *j, const char *key, uint32_t v)
{
    char b[12];
    snprintf(b, sizeof(b), "%08x", v);
    vd_json_str(j, key, b);
}

static void vmdk_info(struct vd_image *img, struct vd_json *j)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_desc *d = &s->desc;
    vd_json_obj_begin(j, "vmdk");
    vd_json_str(j, "create_type", s->subformat);
    if (s->have_desc) {
        vmdk_json_cid(j, "cid", d->cid);
        vmdk_json_cid(j, "parent_cid", d->parent_cid);
        if (d->parent_hint)
            vd_json_str(j, "parent_file_name_hint", d->parent_hint);
        vd_json_str(j, "adapter_type", d->adapter_type);
        vd_json_str(j, "hw_version", d->hw_version);
    }
    struct vmdk_extent *first = NULL;
    for (size_t i = 0; i < s->nextents && !first; i++)
        if (s->ext[i].type == VMDK_EXT_SPARSE)
            first = &s->ext[i];
    if (first) {
        vd_json_u64(j, "version", first->sp.version);
        vd_json_u64(j, "flags", first->sp.flags);
        vd_json_u64(j, "grain_size", first->sp.grain_bytes);
        vd_json_bool(j, "compressed", first->sp.compressed);
        vd_json_bool(j, "gd_at_end", first->sp.gd_at_end);
    }
    vd_json_arr_begin(j, "extents");
    static const char *const acc[] = {"RW", "RDONLY", "NOACCESS"};
    for (size_t i = 0; i < s->nextents; i++) {
        struct vmdk_extent *x = &s->ext[i];
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "access", acc[x->access]);
        vd_json_u64(j, "sectors", x->len / VMDK_SECTOR);
        vd_json_str(j, "type", vd_vmdk_ext_type_name(x->type));
        vd_json_str(j, "file", x->io ? vd_io_basename(x->io) : NULL);
        if (x->type == VMDK_EXT_FLAT || x->type == VMDK_EXT_VMFS)
            vd_json_u64(j, "offset", x->file_off);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_obj_end(j);
}

struct vmdk_alloc {
    uint64_t off, end, grain;
};

static int vmdk_alloc_cmp(const void *a, const void *b)
{
    const struct vmdk_alloc *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int vmdk_check_extent(struct vmdk_extent *x, vd_check_cb cb, void *opaque, int *rc,
                             struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    const char *name = vd_io_basename(x->io);
    char msg[VD_ERROR_MAX + 64];
    struct vmdk_alloc *a = NULL;
    size_t na = 0, cap = 0;
    int r = 0;
    for (uint32_t t = 0; t < sp->ngts; t++) {
        if (!sp->gd[t])
            continue;
        uint32_t *gt = __atomic_load_n(&sp->gts[t], __ATOMIC_ACQUIRE);
        struct vd_error e = {0};
        if (!gt && vmdk_load_gt(x, t, &gt, &e) < 0) {
            cb(opaque, true, e.msg);
            *rc = VD_CHECK_CORRUPT;
            continue;
        }
        if (sp->rgd) {
            /* The redundant GT must say the same as the primary. */
            uint64_t gt_bytes = (uint64_t)sp->gtes_per_gt * 4;
            uint8_t *rgt = malloc(gt_bytes);
            struct vd_error e2 = {0};
            if (!rgt) {
                r = vd_err(err, -ENOMEM, "out of memory");
                goto out;
            }
            if (vd_io_pread_full(x->io, rgt, gt_bytes, (uint64_t)sp->rgd[t] * VMDK_SECTOR, &e2) <
                0) {
                cb(opaque, true, e2.msg);
                *rc = VD_CHECK_CORRUPT;
            } else {
                for (uint32_t j = 0; j < sp->gtes_per_gt; j++)
                    if (le32(rgt + 4 * j) != gt[j]) {
                        snprintf(msg, sizeof(msg),
                                 "vmdk: %s: redundant grain table %u entry %u is %u, the primary "
                                 "says %u",
                                 name, t, j, le32(rgt + 4 * j), gt[j]);
                        cb(opaque, true, msg);
                        *rc = VD_CHECK_CORRUPT;
                        break;
                    }
            }
            free(rgt);
        }
        for (uint32_t j = 0; j < sp->gtes_per_gt; j++) {
            uint64_t g = (uint64_t)t * sp->gtes_per_gt + j;
            if (gt[j] <= 1 || g >= sp->ngrains)
                continue;
            const char *what = vmdk_gte_problem(x, t, gt[j]);
            if (what) {
                vmdk_gte_message(x, t, j, gt[j], what, msg, sizeof(msg));
                cb(opaque, true, msg);
                *rc = VD_CHECK_CORRUPT;
                continue;
            }
            uint64_t off = (uint64_t)gt[j] * VMDK_SECTOR, end = off + sp->grain_bytes;
            if (sp->compressed && sp->markers) {
                uint8_t m[12];
                struct vd_error e2 = {0};
                if (vd_io_pread_full(x->io, m, sizeof(m), off, &e2) < 0) {
                    cb(opaque, true, e2.msg);
                    *rc = VD_CHECK_CORRUPT;
                    continue;
                }
                end = off + 12 + le32(m + 8);
                if (le32(m + 8) == 0 || le64(m) != g * sp->grain_sectors || end > x->io->size) {
                    snprintf(msg, sizeof(msg),
                             "vmdk: %s: grain %" PRIu64 ": bad grain marker at offset %" PRIu64,
                             name, g, off);
                    cb(opaque, true, msg);
                    *rc = VD_CHECK_CORRUPT;
                }
            } else if (sp->compressed) {
                end = off + 1;
            }
            if (na == cap) {
                cap = cap ? cap * 2 : 1024;
                struct vmdk_alloc *n = realloc(a, cap * sizeof(*a));
                if (!n) {
                    r = vd_err(err, -ENOMEM, "out of memory");
                    goto out;
                }
                a = n;
            }
            a[na++] = (struct vmdk_alloc){off, end, g};
        }
    }
    if (na > 1)
        qsort(a, na, sizeof(*a), vmdk_alloc_cmp);
    for (size_t i = 1; i < na; i++) {
        if (a[i].off < a[i - 1].end) {
            snprintf(msg, sizeof(msg),
                     "vmdk: %s: grains %" PRIu64 " and %" PRIu64 " overlap at offset %" PRIu64,
                     name, a[i - 1].grain, a[i].grain, a[i].off);
            cb(opaque, true, msg);
            *rc = VD_CHECK_CORRUPT;
        }
    }
out:
    free(a);
    return r;
}

static int vmdk_check(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    int rc = VD_CHECK_CLEAN;
    for (size_t i = 0; i < s->nextents; i++) {
        if (s->ext[i].type != VMDK_EXT_SPARSE)
            continue;
        int r = vmdk_check_extent(&s->ext[i], cb, opaque, &rc, err);
        if (r < 0)
            return r;
    }
    return rc;
}

const struct vd_format_ops vd_format_vmdk = {
    .name = "vmdk",
    .priv_size = sizeof(struct vmdk_state),
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .legacy_pread = vmdk_pread,
    .legacy_map = vmdk_map,
    .legacy_pwrite = vmdk_pwrite,
    .flush = vmdk_flush,
    .legacy_block_status = vmdk_block_status,
    .allocated = vmdk_allocated,
    .info = vmdk_info,
    .check = vmdk_check,
};
