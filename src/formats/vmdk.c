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
 * The driver only answers map (docs/trust-boundary.md): FLAT/VMFS extents
 * are DATA in their file, ZERO extents ZERO, sparse grains BACKING (GTE 0),
 * ZERO (GTE 1), DATA (uncompressed) or GRAIN (compressed, decoded by
 * vmdk_decode); the core reads, caches decoded grains and reads ahead.
 * Every structure of a sparse extent is declared as metadata at open
 * (header area, embedded descriptor, GD, RGD, every GT and RGT, stream
 * markers and footer), and each GT a write allocates, so no answer can
 * place data on them. Extent files and the parent are opened by the core
 * under its path policy (src/core/names.c).
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
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
/*
 * Table memory of one image, all extents together: grain directories,
 * redundant GDs, the GT index, the metadata ranges declared to the core, and
 * the grain tables loaded so far. A real image needs a few MiB (62 TiB with
 * 64 KiB grains: 2M GD entries, 32 MiB fixed); a crafted header with 512-byte
 * grains asks for 16M entries per extent. The fixed part is reserved at open,
 * before anything is read, and an image over the cap is refused; grain
 * tables past the cap are not kept (each lookup reads its table again).
 */
#define VMDK_META_MAX (128ull << 20)
/* Bytes counted per declared metadata range (the core's sorted array,
 * which grows by doubling). */
#define VMDK_RANGE_COST 64u

/* Decoded-grain cache key: unique per (extent, grain) within the image.
 * Grains of one extent are < 2^39 (capacity <= 2^39 sectors). */
#define VMDK_KEY(ext, g) ((uint64_t)(ext) << 40 | (g))
#define VMDK_KEY_GRAIN   ((1ull << 40) - 1)

/* A redundant GD the header announces but that cannot be kept in step. */
enum { VMDK_RGD_OK, VMDK_RGD_PAST_EOF, VMDK_RGD_ENTRY_PAST_EOF, VMDK_RGD_ENTRY_DIFFERS };

struct vmdk_sparse {
    uint32_t version, flags;
    uint64_t capacity;      /* sectors */
    uint64_t grain_sectors; /* power of two */
    uint32_t grain_bytes;
    uint32_t gtes_per_gt;
    uint32_t gt_sectors; /* sectors one GT occupies */
    uint64_t desc_sector, desc_sectors;
    uint64_t gd_sector, rgd_sector, overhead;
    uint64_t footer_off; /* GD at end: first byte of the footer marker */
    uint16_t compress_algo;
    bool compressed, markers, gd_at_end;
    /* Grains and GD entries as the extent uses them: the header's capacity,
     * cut to the descriptor's extent length (the GD need not be read past
     * what the disk can reach). */
    uint64_t ngrains;
    uint32_t ngts;
    uint32_t *gd;           /* ngts entries, host order; atomic (writes allocate GTs) */
    uint32_t *rgd;          /* redundant GD if present and valid, else NULL */
    uint32_t **gts;         /* GT i once loaded (host order); published under gt_lock */
    uint8_t rgd_bad;        /* why the header's RGD is not used (VMDK_RGD_*) */
    uint32_t rgd_bad_entry; /* the entry that made it unusable */
    unsigned gen;           /* bumped under gt_lock by every GTE write */
};

struct vmdk_extent {
    enum vmdk_ext_type type;
    enum vmdk_access access;
    uint64_t start, len; /* virtual bytes */
    struct vd_io *io;    /* NULL for ZERO; the image holds the reference */
    uint64_t file_off;   /* FLAT/VMFS: bytes into the file */
    unsigned idx;
    struct vmdk_sparse sp;
};

struct vmdk_state {
    struct vmdk_desc desc;
    bool have_desc;
    size_t nextents;
    struct vmdk_extent *ext;
    char subformat[40];
    pthread_mutex_t wlock;   /* serialises allocating writers */
    pthread_mutex_t gt_lock; /* GT publication against GTE writes */
    bool locks_init;
    uint64_t meta_bytes; /* table memory reserved so far (atomic) */
};

/* A view of one grain table for a lookup: the cached copy, or a private
 * read of it when the table memory cap is reached. */
struct vmdk_gt_view {
    uint32_t t; /* UINT32_MAX: none yet */
    const uint32_t *gt;
    uint32_t buf[VMDK_MAX_GTES];
};

static struct vmdk_state *vmdk_state(struct vd_image *img)
{
    return img->priv;
}

/* Reserve n bytes of table memory; false when the cap would be passed. */
static bool vmdk_meta_reserve(struct vmdk_state *s, uint64_t n)
{
    uint64_t cur = __atomic_load_n(&s->meta_bytes, __ATOMIC_RELAXED), next;
    do {
        if (ck_add(cur, n, &next) || next > VMDK_META_MAX)
            return false;
    } while (!__atomic_compare_exchange_n(&s->meta_bytes, &cur, next, true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return true;
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
    (void)tail;
    (void)tail_len;
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
    sp->gt_sectors = (uint32_t)div_round_up((uint64_t)sp->gtes_per_gt * 4, VMDK_SECTOR);
    return 0;
}

/* How much of the extent the tables must cover: the header's capacity, cut
 * to the length the descriptor gives the extent (len bytes). */
static int vmdk_size_tables(struct vmdk_sparse *sp, uint64_t len, const char *name,
                            struct vd_error *err)
{
    uint64_t used = VD_MIN(sp->capacity, len / VMDK_SECTOR);
    sp->ngrains = div_round_up(used, sp->grain_sectors);
    uint64_t ngts = div_round_up(sp->ngrains, sp->gtes_per_gt);
    if (ngts > VMDK_MAX_GD_ENTRIES)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain directory of %" PRIu64 " entries is too large (max %u)",
                      name, ngts, VMDK_MAX_GD_ENTRIES);
    sp->ngts = (uint32_t)ngts;
    return 0;
}

/* Fixed table memory of a sparse extent: GD, RGD and the GT index. */
static uint64_t vmdk_fixed_bytes(const struct vmdk_sparse *sp)
{
    uint64_t per = 4 + sizeof(uint32_t *) + ((sp->flags & VMDK4_FLAG_RGD) ? 4 : 0);
    return (uint64_t)sp->ngts * per;
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
        le32(b + 1036) == VMDK_MARKER_EOS) {
        mk = b;
        sp->footer_off = io->size - 3 * VMDK_SECTOR;
    } else if (le32(b + 512 + 8) == 0 && le32(b + 512 + 12) == VMDK_MARKER_FOOTER &&
               le32(b + 1024) == VMDK4_MAGIC) {
        mk = b + 512;
        sp->footer_off = io->size - 2 * VMDK_SECTOR;
    }
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

/* Pass 1 of a sparse extent: its header (and footer) from head, and how
 * many table entries it needs. Reads nothing else. */
static int vmdk_sparse_header(struct vmdk_extent *x, const uint8_t *head, const char *name,
                              struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    int r = vmdk_parse_header(head, name, sp, err);
    if (r < 0)
        return r;
    if (sp->gd_sector == VMDK_GD_AT_END) {
        sp->gd_at_end = true;
        r = vmdk_read_footer(x->io, name, sp, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool vmdk_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Metadata ranges collected at open, declared to the core in (io, offset)
 * order so that each declaration appends to its sorted array. */
struct vmdk_range {
    const struct vd_io *io;
    uint64_t off, len;
    const char *what;
};

struct vmdk_ranges {
    struct vmdk_range *r;
    size_t n, cap;
};

/* Add [off, off+len) of io, clipped to the file (a range past the end
 * holds nothing to protect). Sector numbers come from the file: checked. */
static int vmdk_range_add(struct vmdk_ranges *rs, const struct vd_io *io, uint64_t sector,
                          uint64_t nsectors, const char *what)
{
    uint64_t off, len;
    if (ck_mul(sector, VMDK_SECTOR, &off) || off >= io->size)
        return 0;
    if (ck_mul(nsectors, VMDK_SECTOR, &len) || len > io->size - off)
        len = io->size - off;
    if (len == 0)
        return 0;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        struct vmdk_range *nr = realloc(rs->r, cap * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        rs->r = nr;
        rs->cap = cap;
    }
    rs->r[rs->n++] = (struct vmdk_range){io, off, len, what};
    return 0;
}

static int vmdk_range_cmp(const void *a, const void *b)
{
    const struct vmdk_range *x = a, *y = b;
    if (x->io != y->io)
        return (uintptr_t)x->io < (uintptr_t)y->io ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Pass 2 of a sparse extent: read and check its grain directory (and the
 * redundant one), and collect every metadata range it has. */
static int vmdk_sparse_tables(struct vmdk_extent *x, const char *name, struct vmdk_ranges *rs,
                              struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    struct vd_io *io = x->io;
    uint64_t gd_bytes = (uint64_t)sp->ngts * 4, gd_off, gd_end;
    uint64_t gd_sectors = div_round_up(gd_bytes, VMDK_SECTOR);
    int r;
    if (sp->gd_sector == 0 || ck_mul(sp->gd_sector, VMDK_SECTOR, &gd_off) ||
        ck_add(gd_off, gd_bytes, &gd_end) || gd_end > io->size)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain directory (%" PRIu64 " bytes at sector %" PRIu64
                      ") is past end of file (%" PRIu64 " bytes)",
                      name, gd_bytes, sp->gd_sector, io->size);
    sp->gd = malloc(gd_bytes ? gd_bytes : 1);
    sp->gts = calloc(sp->ngts ? sp->ngts : 1, sizeof(*sp->gts));
    if (!sp->gd || !sp->gts)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory for the grain directory", name);
    r = vd_io_pread_full(io, sp->gd, gd_bytes, gd_off, err);
    if (r < 0)
        return r;
    uint64_t gt_bytes = (uint64_t)sp->gtes_per_gt * 4;
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
        if (vmdk_overlap(s, sp->gt_sectors, sp->gd_sector, gd_sectors))
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain directory entry %u points to a grain table at sector "
                          "%u, inside the grain directory",
                          name, i, s);
    }
    /* The redundant GD is only needed to keep it in step when writing; a
     * broken one does not stop reads. check reports it, so that writes
     * (which could not keep it in step) are refused. */
    uint64_t rgd_off;
    if ((sp->flags & VMDK4_FLAG_RGD) && sp->rgd_sector && !sp->gd_at_end) {
        sp->rgd_bad = VMDK_RGD_PAST_EOF;
        if (!ck_mul(sp->rgd_sector, VMDK_SECTOR, &rgd_off) && rgd_off <= io->size &&
            gd_bytes <= io->size - rgd_off && (sp->rgd = malloc(gd_bytes ? gd_bytes : 1)) &&
            vd_io_pread_full(io, sp->rgd, gd_bytes, rgd_off, NULL) == 0)
            sp->rgd_bad = VMDK_RGD_OK;
        for (uint32_t i = 0; sp->rgd_bad == VMDK_RGD_OK && i < sp->ngts; i++) {
            sp->rgd[i] = le32(&sp->rgd[i]);
            if ((uint64_t)sp->rgd[i] * VMDK_SECTOR + gt_bytes > io->size)
                sp->rgd_bad = VMDK_RGD_ENTRY_PAST_EOF;
            else if ((sp->rgd[i] == 0) != (sp->gd[i] == 0))
                sp->rgd_bad = VMDK_RGD_ENTRY_DIFFERS;
            sp->rgd_bad_entry = i;
        }
        if (sp->rgd_bad != VMDK_RGD_OK) {
            free(sp->rgd);
            sp->rgd = NULL;
        }
    }

    /* Everything that is not grain data: the header and what writers put
     * before the first grain (overHead), ... */
    r = vmdk_range_add(rs, io, 0, VD_MAX(sp->overhead, 1), "header area");
    if (r == 0 && sp->desc_sector && sp->desc_sectors)
        r = vmdk_range_add(rs, io, sp->desc_sector, sp->desc_sectors, "embedded descriptor");
    if (r == 0)
        r = vmdk_range_add(rs, io, sp->gd_sector, gd_sectors, "grain directory");
    if (r == 0 && sp->rgd)
        r = vmdk_range_add(rs, io, sp->rgd_sector, gd_sectors, "redundant grain directory");
    /* VMware streams: each GT and the GD follow a marker sector; the footer
     * marker, footer and end-of-stream marker end the file. */
    if (r == 0 && sp->gd_at_end && sp->markers)
        r = vmdk_range_add(rs, io, sp->gd_sector - 1, 1, "grain directory marker");
    if (r == 0 && sp->gd_at_end)
        r = vmdk_range_add(rs, io, sp->footer_off / VMDK_SECTOR,
                           div_round_up(io->size - sp->footer_off, VMDK_SECTOR), "stream footer");
    for (uint32_t i = 0; r == 0 && i < sp->ngts; i++) {
        if (!sp->gd[i])
            continue;
        if (sp->gd_at_end && sp->markers)
            r = vmdk_range_add(rs, io, sp->gd[i] - 1, 1, "grain table marker");
        if (r == 0)
            r = vmdk_range_add(rs, io, sp->gd[i], sp->gt_sectors, "grain table");
        if (r == 0 && sp->rgd)
            r = vmdk_range_add(rs, io, sp->rgd[i], sp->gt_sectors, "redundant grain table");
    }
    if (r < 0)
        return vd_err(err, r, "vmdk: %s: out of memory", name);
    return 0;
}

/* Why GTE v of grain table t cannot point at a grain of this extent, or
 * NULL when it can: inside the file, outside the header area, the grain
 * directory and its own grain table. (Every other metadata range is checked
 * by the core on each answer, and by check.) */
static const char *vmdk_gte_problem(const struct vmdk_extent *x, uint32_t t, uint32_t v)
{
    const struct vmdk_sparse *sp = &x->sp;
    uint64_t gd_sectors = div_round_up((uint64_t)sp->ngts * 4, VMDK_SECTOR);
    uint64_t min_len = sp->compressed ? (sp->markers ? 12 : 1) : sp->grain_bytes;
    uint64_t span = sp->compressed ? 1 : sp->grain_sectors;
    if ((uint64_t)v * VMDK_SECTOR + min_len > __atomic_load_n(&x->io->size, __ATOMIC_ACQUIRE))
        return "past end of file";
    if (v < sp->overhead)
        return "inside the header area";
    if (vmdk_overlap(v, span, sp->gd[t], sp->gt_sectors))
        return "inside its own grain table";
    if (vmdk_overlap(v, span, sp->gd_sector, gd_sectors))
        return "inside the grain directory";
    return NULL;
}

static int vmdk_gte_error(const struct vmdk_extent *x, uint32_t t, uint32_t j, uint32_t v,
                          const char *what, struct vd_error *err)
{
    uint64_t grain = (uint64_t)t * x->sp.gtes_per_gt + j;
    return vd_err(err, -EINVAL,
                  "vmdk: %s: grain table %u entry %u (grain %" PRIu64 ") points to sector %u, %s",
                  vd_io_basename(x->io), t, j, grain, v, what);
}

/* Read grain table t from the file into gt (host order). */
static int vmdk_read_gt(const struct vmdk_extent *x, uint32_t t, uint32_t *gt, struct vd_error *err)
{
    const struct vmdk_sparse *sp = &x->sp;
    uint32_t sec = __atomic_load_n(&sp->gd[t], __ATOMIC_ACQUIRE);
    int r =
        vd_io_pread_full(x->io, gt, (size_t)sp->gtes_per_gt * 4, (uint64_t)sec * VMDK_SECTOR, err);
    if (r < 0)
        return r;
    for (uint32_t j = 0; j < sp->gtes_per_gt; j++)
        gt[j] = le32(&gt[j]);
    return 0;
}

/* Point view at grain table t (allocated in the GD): the cached copy,
 * loading and publishing it if the table memory allows, else a private
 * read. Entries are validated when used (vmdk_gte), so one bad entry, as in
 * a truncated image, fails only the reads of its own grain. */
static int vmdk_gt_get(struct vd_image *img, struct vmdk_extent *x, uint32_t t,
                       struct vmdk_gt_view *view, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = &x->sp;
    if (view->t == t)
        return 0;
    view->t = UINT32_MAX;
    uint32_t *gt = __atomic_load_n(&sp->gts[t], __ATOMIC_ACQUIRE);
    if (gt) {
        view->gt = gt;
        view->t = t;
        return 0;
    }
    uint64_t gt_bytes = (uint64_t)sp->gtes_per_gt * 4;
    if (!vmdk_meta_reserve(s, gt_bytes) || !(gt = malloc(gt_bytes))) {
        int r = vmdk_read_gt(x, t, view->buf, err);
        if (r < 0)
            return r;
        view->gt = view->buf;
        view->t = t;
        return 0;
    }
    /* A reader that needs table t will need the next ones soon. In a
     * stream VMDK each table follows its grains, so on S3 it lies past the
     * sequential readahead and would cost a round trip with every reader
     * waiting on it: ask for the next two now (a no-op for local files).
     * Only when the reader came from table t - 1 (or starts the disk), so
     * random reads fetch no tables they do not use. */
    bool seq = t == 0 || __atomic_load_n(&sp->gts[t - 1], __ATOMIC_ACQUIRE) != NULL;
    for (uint32_t k = t + 1; seq && k <= t + 2 && k < sp->ngts; k++) {
        uint32_t sec = __atomic_load_n(&sp->gd[k], __ATOMIC_ACQUIRE);
        if (sec && !__atomic_load_n(&sp->gts[k], __ATOMIC_ACQUIRE))
            vd_io_willneed(x->io, (uint64_t)sec * VMDK_SECTOR, gt_bytes);
    }
    /* A writer may change an entry while we read: publish only a copy read
     * while no GTE write of this extent happened (gen unchanged). */
    unsigned gen = __atomic_load_n(&sp->gen, __ATOMIC_ACQUIRE);
    int r = vmdk_read_gt(x, t, gt, err);
    if (r < 0) {
        free(gt);
        __atomic_sub_fetch(&s->meta_bytes, gt_bytes, __ATOMIC_RELAXED);
        return r;
    }
    pthread_mutex_lock(&s->gt_lock);
    uint32_t *cur = sp->gts[t];
    if (!cur && sp->gen == gen) {
        __atomic_store_n(&sp->gts[t], gt, __ATOMIC_RELEASE);
        cur = gt;
        gt = NULL;
    }
    pthread_mutex_unlock(&s->gt_lock);
    if (gt) {
        /* lost the race, or raced a writer: use this copy once */
        memcpy(view->buf, cur ? cur : gt, gt_bytes);
        free(gt);
        __atomic_sub_fetch(&s->meta_bytes, gt_bytes, __ATOMIC_RELAXED);
        view->gt = view->buf;
    } else {
        view->gt = cur;
    }
    view->t = t;
    return 0;
}

/* GTE of grain g (< ngrains): 0 unallocated, 1 zero grain, else the
 * grain's sector, checked. */
static int vmdk_gte(struct vd_image *img, struct vmdk_extent *x, uint64_t g,
                    struct vmdk_gt_view *view, uint32_t *out, struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    uint32_t t = (uint32_t)(g / sp->gtes_per_gt), j = (uint32_t)(g % sp->gtes_per_gt);
    if (__atomic_load_n(&sp->gd[t], __ATOMIC_ACQUIRE) == 0) {
        *out = 0;
        return 0;
    }
    int r = vmdk_gt_get(img, x, t, view, err);
    if (r < 0)
        return r;
    uint32_t v = __atomic_load_n(&view->gt[j], __ATOMIC_RELAXED);
    const char *what = v > 1 ? vmdk_gte_problem(x, t, v) : NULL;
    if (what)
        return vmdk_gte_error(x, t, j, v, what, err);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ map */

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

/* The table entry behind an answer, for the core's messages. One per
 * thread: the core formats its message right after map returns, on the
 * same thread. */
static __thread char vmdk_what[96];

static const char *vmdk_what_gte(const struct vmdk_extent *x, uint64_t g)
{
    snprintf(vmdk_what, sizeof(vmdk_what), "extent %u grain table %" PRIu64 " entry %" PRIu64,
             x->idx + 1, g / x->sp.gtes_per_gt, g % x->sp.gtes_per_gt);
    return vmdk_what;
}

/* Stored bytes of a compressed grain at sector v, as far as this extent's
 * tables tell: streams store grains in order, so the next grain's sector
 * usually bounds it (the marker still rules: decode asks for more). */
static uint64_t vmdk_clen_estimate(const struct vmdk_extent *x, uint64_t g, uint32_t v,
                                   const struct vmdk_gt_view *view)
{
    const struct vmdk_sparse *sp = &x->sp;
    uint64_t est = sp->markers ? (uint64_t)sp->grain_bytes + VMDK_SECTOR
                               : (uint64_t)sp->grain_bytes * 2 + 4096;
    if (g + 1 < sp->ngrains && (g + 1) % sp->gtes_per_gt != 0 && view->gt) {
        uint32_t w = __atomic_load_n(&view->gt[(g + 1) % sp->gtes_per_gt], __ATOMIC_RELAXED);
        if (w > v)
            est = VD_MIN(est, (uint64_t)(w - v) * VMDK_SECTOR);
    }
    return est;
}

static int vmdk_map_sparse(struct vd_image *img, struct vmdk_extent *x, uint64_t off, uint64_t xoff,
                           uint64_t len, struct vd_map *m, struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    uint64_t gb = sp->grain_bytes, g = xoff / gb, in = xoff % gb;
    struct vmdk_gt_view view = {.t = UINT32_MAX};
    uint32_t v;
    if (g >= sp->ngrains) {
        /* The descriptor gives the extent more than the header's capacity:
         * nothing is stored there. */
        m->kind = VD_MAP_BACKING;
        m->len = len;
        return 0;
    }
    int r = vmdk_gte(img, x, g, &view, &v, err);
    if (r < 0)
        return r;
    uint64_t n = VD_MIN(len, gb - in);
    if (v > 1 && sp->compressed) {
        m->kind = VD_MAP_GRAIN;
        m->len = n;
        m->io = x->io;
        m->io_off = (uint64_t)v * VMDK_SECTOR;
        m->clen = vmdk_clen_estimate(x, g, v, &view);
        m->unit_off = off - in; /* x->start + g * gb <= off: no wrap */
        m->unit_len = sp->grain_bytes;
        m->key = VMDK_KEY(x->idx, g);
        m->what = vmdk_what_gte(x, g);
        return 0;
    }
    /* Coalesce the following grains of the same kind: unallocated or zero
     * ones, or allocated ones that follow each other in the file (as VMware
     * and qemu allocate them). A bad entry ends the run; it is reported
     * when its own grain is read. */
    for (uint64_t ng = g + 1; n < len; ng++) {
        uint32_t w;
        if (ng >= sp->ngrains) {
            if (v == 0)
                n = len; /* past the capacity: nothing stored either */
            break;
        }
        uint32_t t = (uint32_t)(ng / sp->gtes_per_gt);
        if (v == 0 && ng % sp->gtes_per_gt == 0 &&
            __atomic_load_n(&sp->gd[t], __ATOMIC_ACQUIRE) == 0) {
            /* a whole unallocated grain table */
            n = VD_MIN(len, n + (uint64_t)sp->gtes_per_gt * gb);
            ng += sp->gtes_per_gt - 1;
            continue;
        }
        struct vd_error e2 = {0};
        if (vmdk_gte(img, x, ng, &view, &w, &e2) < 0)
            break;
        if (v > 1 ? w != v + (ng - g) * sp->grain_sectors : w != v)
            break;
        n = VD_MIN(len, n + gb);
    }
    m->len = n;
    if (v == 0) {
        m->kind = VD_MAP_BACKING;
    } else if (v == 1) {
        m->kind = VD_MAP_ZERO;
    } else {
        m->kind = VD_MAP_DATA;
        m->io = x->io;
        m->io_off = (uint64_t)v * VMDK_SECTOR + in;
        m->what = vmdk_what_gte(x, g);
        /* A run must not end on metadata its first grains do not touch: cut
         * it before the first grain that does, which is then refused on
         * its own, naming its own entry. */
        const struct vd_meta_range *hit;
        while (n > gb - in && (hit = vd_image_meta_overlap(img, x->io, m->io_off, n)) != NULL) {
            uint64_t base = (uint64_t)v * VMDK_SECTOR;
            uint64_t keep = hit->off > base ? (hit->off - base) / gb * gb : 0;
            if (keep <= in)
                break;
            n = VD_MIN(n, keep - in);
        }
        m->len = n;
    }
    return 0;
}

static int vmdk_map(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                    struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_extent *x = vmdk_find_extent(s, off);
    uint64_t xoff = off - x->start;
    len = VD_MIN(len, x->len - xoff);
    switch (x->type) {
    case VMDK_EXT_ZERO:
        m->kind = VD_MAP_ZERO;
        m->len = len;
        return 0;
    case VMDK_EXT_SPARSE:
        return vmdk_map_sparse(img, x, off, xoff, len, m, err);
    default: /* FLAT, VMFS: the open checked file_off + len against the file */
        m->kind = VD_MAP_DATA;
        m->len = len;
        m->io = x->io;
        if (ck_add(x->file_off, xoff, &m->io_off))
            return vd_err(err, -EIO, "vmdk: %s: extent %u: offset overflows", img->name,
                          x->idx + 1);
        snprintf(vmdk_what, sizeof(vmdk_what), "descriptor extent %u", x->idx + 1);
        m->what = vmdk_what;
        return 0;
    }
}

/* ------------------------------------------------------- grain decoding */

/* Inflate the compressed grain m describes, stored as src[0, src_len),
 * into dst (one grain). Pure: the marker (streams) must name this grain
 * and give a plausible size; when it says the grain is longer than src,
 * ask for it (-EAGAIN with *need). */
static int vmdk_decode(struct vd_image *img, const struct vd_map *m, const uint8_t *src,
                       size_t src_len, uint8_t *dst, size_t *need, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    uint64_t xi = m->key >> 40, g = m->key & VMDK_KEY_GRAIN;
    if (xi >= s->nextents || s->ext[xi].type != VMDK_EXT_SPARSE)
        return vd_err(err, -EIO, "vmdk: %s: grain key %" PRIx64 " names no sparse extent",
                      img->name, m->key);
    struct vmdk_extent *x = &s->ext[xi];
    struct vmdk_sparse *sp = &x->sp;
    const char *name = vd_io_basename(x->io);
    uint64_t off = m->io_off;
    uint64_t max_comp = (uint64_t)sp->grain_bytes * 2 + 4096;
    size_t n = 0;
    if (m->unit_len != sp->grain_bytes)
        return vd_err(err, -EIO, "vmdk: %s: grain %" PRIu64 ": unit of %u bytes, grain is %u", name,
                      g, m->unit_len, sp->grain_bytes);
    if (sp->markers) {
        if (src_len < 12)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain %" PRIu64
                          ": no room for a grain marker at offset %" PRIu64
                          " (%zu bytes before end of file or metadata)",
                          name, g, off, src_len);
        uint64_t lba = le64(src);
        uint32_t size = le32(src + 8);
        if (size == 0)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain %" PRIu64 ": expected a grain marker at offset %" PRIu64
                          ", found a metadata marker of type %u",
                          name, g, off, src_len >= 16 ? le32(src + 12) : 0);
        if (lba != g * sp->grain_sectors)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain %" PRIu64 ": grain marker at offset %" PRIu64
                          " is for sector %" PRIu64 ", expected %" PRIu64,
                          name, g, off, lba, g * sp->grain_sectors);
        if (size > max_comp)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: grain %" PRIu64 ": grain marker at offset %" PRIu64
                          " gives a compressed size of %u bytes, larger than any grain "
                          "compresses to",
                          name, g, off, size);
        if (12 + (size_t)size > src_len) {
            *need = 12 + (size_t)size;
            return -EAGAIN;
        }
        src += 12;
        src_len = size;
    }
    int r = vd_codec_zlib_decompress(src, src_len, dst, sp->grain_bytes, &n);
    if (r == -E2BIG)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain %" PRIu64 " at offset %" PRIu64
                      " decompresses to more than the grain size (%u bytes)",
                      name, g, off, sp->grain_bytes);
    if (r < 0)
        return vd_err(err, r == -ENOMEM ? -ENOMEM : -EINVAL,
                      "vmdk: %s: grain %" PRIu64 " at offset %" PRIu64 ": %s", name, g, off,
                      r == -ENOMEM ? "out of memory" : "corrupt compressed data");
    /* Only the last grain may be short, and only past the capacity. */
    uint64_t want = VD_MIN((uint64_t)sp->grain_bytes,
                           sp->capacity * VMDK_SECTOR - g * (uint64_t)sp->grain_bytes);
    if (n < want)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: grain %" PRIu64 " at offset %" PRIu64
                      " decompressed to %zu bytes, expected %" PRIu64,
                      name, g, off, n, want);
    if (n < sp->grain_bytes)
        memset(dst + n, 0, sp->grain_bytes - n);
    return 0;
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
static int vmdk_write_begin(struct vd_image *img, struct vd_error *err)
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

/* Write entry j of grain table t (and of its redundant copy) as v, on disk
 * and in the cached copy. Caller holds wlock. */
static int vmdk_set_gte(struct vd_image *img, struct vmdk_extent *x, uint32_t t, uint32_t j,
                        uint32_t v, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = &x->sp;
    uint8_t le[4];
    put_le32(le, v);
    pthread_mutex_lock(&s->gt_lock);
    int r = vd_io_pwrite_full(x->io, le, 4, (uint64_t)sp->gd[t] * VMDK_SECTOR + j * 4ull, err);
    if (r == 0 && sp->rgd)
        r = vd_io_pwrite_full(x->io, le, 4, (uint64_t)sp->rgd[t] * VMDK_SECTOR + j * 4ull, err);
    if (r == 0 && sp->gts[t])
        __atomic_store_n(&sp->gts[t][j], v, __ATOMIC_RELEASE);
    __atomic_add_fetch(&sp->gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->gt_lock);
    return r;
}

/* Append a zeroed grain table for GD entry t (and its redundant copy) at
 * sector *next, declare them as metadata, then enter them in GD and RGD.
 * Caller holds wlock. */
static int vmdk_alloc_gt(struct vd_image *img, struct vmdk_extent *x, uint32_t t, uint64_t *next,
                         struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = &x->sp;
    const char *name = vd_io_basename(x->io);
    uint64_t gt_bytes = (uint64_t)sp->gt_sectors * VMDK_SECTOR;
    uint32_t gsec = (uint32_t)*next, rsec = (uint32_t)(*next + sp->gt_sectors);
    uint8_t *zero = calloc(1, gt_bytes);
    uint8_t le[4];
    int r = zero ? 0 : vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
    if (r == 0)
        r = vd_io_pwrite_full(x->io, zero, gt_bytes, gsec * (uint64_t)VMDK_SECTOR, err);
    if (r == 0 && sp->rgd)
        r = vd_io_pwrite_full(x->io, zero, gt_bytes, rsec * (uint64_t)VMDK_SECTOR, err);
    free(zero);
    if (r == 0)
        r = vd_image_declare_meta(img, x->io, gsec * (uint64_t)VMDK_SECTOR, gt_bytes, "grain table",
                                  err);
    if (r == 0 && sp->rgd)
        r = vd_image_declare_meta(img, x->io, rsec * (uint64_t)VMDK_SECTOR, gt_bytes,
                                  "redundant grain table", err);
    if (r == 0) {
        put_le32(le, gsec);
        r = vd_io_pwrite_full(x->io, le, 4, sp->gd_sector * VMDK_SECTOR + t * 4ull, err);
    }
    if (r == 0 && sp->rgd) {
        put_le32(le, rsec);
        r = vd_io_pwrite_full(x->io, le, 4, sp->rgd_sector * VMDK_SECTOR + t * 4ull, err);
    }
    if (r < 0)
        return r;
    /* Cache the new (zero) table when the table memory allows; otherwise
     * lookups read it from the file. */
    uint32_t *gt = NULL;
    if (vmdk_meta_reserve(s, (uint64_t)sp->gtes_per_gt * 4)) {
        gt = calloc(sp->gtes_per_gt, 4);
        if (!gt)
            __atomic_sub_fetch(&s->meta_bytes, (uint64_t)sp->gtes_per_gt * 4, __ATOMIC_RELAXED);
    }
    pthread_mutex_lock(&s->gt_lock);
    uint32_t *old = sp->gts[t]; /* never set while gd[t] == 0; defensive */
    __atomic_store_n(&sp->gts[t], gt, __ATOMIC_RELEASE);
    if (sp->rgd)
        sp->rgd[t] = rsec;
    __atomic_store_n(&sp->gd[t], gsec, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->gt_lock);
    free(old);
    *next += (uint64_t)sp->gt_sectors * (sp->rgd ? 2 : 1);
    return 0;
}

/* Make [xoff, xoff+len) of sparse extent x writable: append the grains it
 * touches that are not allocated yet (up to the end of their grain table)
 * at the end of the file, then point the GT entries at them, and answer
 * DATA for the run from off (the core then writes the data there). A grain
 * is first filled with what it read as (the parent's bytes, or zeros)
 * unless the write covers it whole and it read as zeros anyway, so that a
 * crash before the data lands leaves the old content. */
static int vmdk_alloc_sparse(struct vd_image *img, struct vmdk_extent *x, uint64_t off,
                             uint64_t xoff, uint64_t len, struct vd_map *m, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = &x->sp;
    struct vd_io *io = x->io;
    const char *name = vd_io_basename(io);
    uint64_t gb = sp->grain_bytes, g = xoff / gb, in = xoff % gb;
    struct vmdk_gt_view view = {.t = UINT32_MAX};
    uint32_t kinds[VMDK_MAX_GTES]; /* GTE (0 or 1) of each grain of the run */
    uint8_t *buf = NULL;
    int r;
    if (g >= sp->ngrains)
        return vd_err(err, -EINVAL,
                      "vmdk: %s: write at offset %" PRIu64 " past the capacity of extent %u (%s): "
                      "descriptor and header disagree",
                      img->name, off, x->idx + 1, name);
    pthread_mutex_lock(&s->wlock);
    r = vmdk_gte(img, x, g, &view, &kinds[0], err);
    if (r < 0)
        goto out;
    if (kinds[0] > 1) { /* another writer allocated it meanwhile */
        m->kind = VD_MAP_DATA;
        m->len = VD_MIN(len, gb - in);
        m->io = io;
        m->io_off = (uint64_t)kinds[0] * VMDK_SECTOR + in;
        goto out;
    }
    uint32_t t = (uint32_t)(g / sp->gtes_per_gt);
    uint64_t last = VD_MIN((xoff + len - 1) / gb, (uint64_t)(t + 1) * sp->gtes_per_gt - 1);
    last = VD_MIN(last, sp->ngrains - 1);
    uint64_t cnt = 1;
    for (uint64_t ng = g + 1; ng <= last; ng++) {
        struct vd_error e2 = {0};
        if (vmdk_gte(img, x, ng, &view, &kinds[cnt], &e2) < 0 || kinds[cnt] > 1)
            break;
        cnt++;
    }
    /* After the end of the file, and never inside the header area (a file
     * cut short before its overHead would put grains there). */
    uint64_t next = div_round_up(__atomic_load_n(&io->size, __ATOMIC_ACQUIRE), VMDK_SECTOR);
    uint64_t need = cnt * sp->grain_sectors, end;
    next = VD_MAX(next, sp->overhead);
    if (!sp->gd[t])
        need += (uint64_t)sp->gt_sectors * (sp->rgd ? 2 : 1);
    if (ck_add(next, need, &end) || end > UINT32_MAX) {
        r = vd_err(err, -EFBIG, "vmdk: %s: a sparse extent cannot grow past 2 TiB", name);
        goto out;
    }
    if (!sp->gd[t] && (r = vmdk_alloc_gt(img, x, t, &next, err)) < 0)
        goto out;
    uint64_t wend = VD_MIN(xoff + len, (g + cnt) * gb); /* end of the write, extent bytes */
    bool extended = false;
    for (uint64_t k = 0; k < cnt; k++) {
        uint64_t fg = g + k, voff = x->start + fg * gb;
        bool whole = xoff <= fg * gb && wend >= (fg + 1) * gb;
        bool parent = kinds[k] == 0 && img->backing;
        if (whole && !parent)
            continue;
        if (!buf && !(buf = malloc(gb))) {
            r = vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
            goto out;
        }
        memset(buf, 0, gb);
        if (parent && voff < img->size)
            r = vd_image_read_backing(img, buf, (size_t)VD_MIN(gb, img->size - voff), voff, err);
        if (r == 0)
            r = vd_io_pwrite_full(io, buf, gb, (next + k * sp->grain_sectors) * VMDK_SECTOR, err);
        if (r < 0)
            goto out;
        extended = k == cnt - 1;
    }
    if (!extended) {
        /* the last grain is left to the data write: make the file reach it */
        static const uint8_t zero[VMDK_SECTOR];
        r = vd_io_pwrite_full(io, zero, VMDK_SECTOR,
                              (next + cnt * sp->grain_sectors - 1) * VMDK_SECTOR, err);
        if (r < 0)
            goto out;
    }
    for (uint64_t k = 0; k < cnt; k++) {
        uint32_t gj = (uint32_t)((g + k) % sp->gtes_per_gt);
        r = vmdk_set_gte(img, x, t, gj, (uint32_t)(next + k * sp->grain_sectors), err);
        if (r < 0)
            goto out;
    }
    m->kind = VD_MAP_DATA;
    m->len = VD_MIN(len, cnt * gb - in);
    m->io = io;
    m->io_off = next * VMDK_SECTOR + in;
out:
    pthread_mutex_unlock(&s->wlock);
    free(buf);
    return r;
}

static int vmdk_alloc(struct vd_image *img, uint64_t off, uint64_t len, const uint8_t *data,
                      struct vd_map *m, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    (void)data; /* a new grain is filled from the parent or zeros first */
    struct vmdk_extent *x = vmdk_find_extent(s, off);
    uint64_t xoff = off - x->start;
    len = VD_MIN(len, x->len - xoff);
    switch (x->type) {
    case VMDK_EXT_ZERO:
        return vd_err(err, -EROFS,
                      "vmdk: %s: cannot write data at offset %" PRIu64 " into ZERO extent %u",
                      img->name, off, x->idx + 1);
    case VMDK_EXT_SPARSE:
        if (x->sp.compressed) /* refused at open; defensive */
            return vd_err(err, -EROFS, "vmdk: %s: compressed grains cannot be written", img->name);
        return vmdk_alloc_sparse(img, x, off, xoff, len, m, err);
    default:
        return vmdk_map(img, off, len, m, err);
    }
}

static int vmdk_flush(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    for (size_t i = 0; i < s->nextents; i++) {
        struct vd_io *io = s->ext[i].io;
        bool seen = !io || io == img->io;
        for (size_t j = 0; j < i && !seen; j++)
            seen = s->ext[j].io == io;
        if (!seen && io->writable && io->ops->flush) {
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

static int vmdk_check_magic(struct vd_io *io, const uint8_t *head, const char *name,
                            struct vd_error *err)
{
    if (io->size >= VMDK_SECTOR && le32(head) == VMDK4_MAGIC)
        return 0;
    if (le32(head) == VMDK_COWD_MAGIC)
        return vd_err(err, -ENOTSUP, "vmdk: %s: vmfsSparse (COWD) extents are not supported", name);
    if (le64(head) == VMDK_SESPARSE_MAGIC)
        return vd_err(err, -ENOTSUP, "vmdk: %s: seSparse extents are not supported", name);
    return vd_err(err, -EINVAL, "vmdk: %s: not a sparse extent (no KDMV header)", name);
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
    x->io = img->io; /* borrowed: the image holds it */
    int r = vmdk_sparse_header(x, head, img->name, err);
    if (r < 0)
        return r;
    x->len = x->sp.capacity * VMDK_SECTOR;
    return 0;
}

/* The descriptor embedded in a monolithic sparse file (read after its
 * tables, so that a cut-off file reports its grain directory first). */
static int vmdk_open_embedded_desc(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_extent *x = &s->ext[0];
    int r;
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

/* Open the file extent i names, through the core (path policy, identity).
 * A message of the core already names the image and the extent. */
static int vmdk_open_extent_file(struct vd_image *img, size_t i, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_desc_extent *de = &s->desc.extents[i];
    struct vmdk_extent *x = &s->ext[i];
    struct vd_error e = {0};
    char what[32];
    bool shared = x->type != VMDK_EXT_SPARSE; /* a raw window; sparse files allocate */
    snprintf(what, sizeof(what), "extent %zu", i + 1);
    int r = vd_image_open_file(img, de->file, img->opts.writable, shared, what, &x->io, &e);
    const char *slash = strrchr(de->file, '/');
    if ((r == -ENOENT || r == -EPERM) && slash && slash[1]) {
        /* ESX descriptors may name extents by absolute datastore path
         * (/vmfs/volumes/...): look beside the descriptor too. */
        struct vd_error e2 = {0};
        if (vd_image_open_file(img, slash + 1, img->opts.writable, shared, what, &x->io, &e2) == 0)
            r = 0;
    }
    if (r == 0)
        return 0;
    size_t nl = strlen(img->name);
    if (!strncmp(e.msg, img->name, nl) && e.msg[nl] == ':')
        return vd_err(err, r, "vmdk: %s", e.msg);
    return vd_err(err, r, "vmdk: %s: extent %zu ('%s'): %s", img->name, i + 1, de->file, e.msg);
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
        r = vmdk_open_extent_file(img, i, err);
        if (r < 0)
            return r;
        const char *xname = vd_io_basename(x->io);
        if (x->type == VMDK_EXT_SPARSE) {
            /* Headers only: the tables are read once every extent is known
             * (vmdk_open_tables), so an image over the table memory cap is
             * refused before any of it is allocated. */
            uint8_t head[VMDK_SECTOR];
            r = vd_io_pread_zfill(x->io, head, sizeof(head), 0, err);
            if (r == 0)
                r = vmdk_check_magic(x->io, head, xname, err);
            if (r == 0)
                r = vmdk_sparse_header(x, head, xname, err);
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

static int vmdk_cap_error(struct vd_image *img, const struct vmdk_extent *x, uint64_t total,
                          struct vd_error *err)
{
    const struct vmdk_sparse *sp = &x->sp;
    return vd_err(err, -ENOTSUP,
                  "vmdk: %s: extent %u (%s): grain directory of %u entries (grains of %u bytes, %u "
                  "per grain table) brings the image's table memory to %" PRIu64
                  " MiB, over the cap of %llu MiB; refused (real VMDKs need a few MiB; see "
                  "docs/vmdk.md)",
                  img->name, x->idx + 1, vd_io_basename(x->io), sp->ngts, sp->grain_bytes,
                  sp->gtes_per_gt, div_round_up(total, 1u << 20), VMDK_META_MAX >> 20);
}

/* Pass 2 of every sparse extent: reserve their fixed table memory (all of
 * it before reading anything), read their grain directories, and declare
 * every metadata range of the image to the core. */
static int vmdk_open_tables(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_ranges rs = {0};
    int r = 0;
    for (size_t i = 0; i < s->nextents; i++) {
        struct vmdk_extent *x = &s->ext[i];
        if (x->type != VMDK_EXT_SPARSE)
            continue;
        const char *xname = x->io == img->io ? img->name : vd_io_basename(x->io);
        if ((r = vmdk_size_tables(&x->sp, x->len, xname, err)) < 0)
            return r;
        uint64_t need = vmdk_fixed_bytes(&x->sp);
        if (!vmdk_meta_reserve(s, need))
            return vmdk_cap_error(img, x, s->meta_bytes + need, err);
    }
    for (size_t i = 0; i < s->nextents && r == 0; i++) {
        struct vmdk_extent *x = &s->ext[i];
        if (x->type == VMDK_EXT_SPARSE)
            r = vmdk_sparse_tables(x, x->io == img->io ? img->name : vd_io_basename(x->io), &rs,
                                   err);
    }
    /* The descriptor file itself (extents cannot name it: the core refuses
     * a file the image already is). */
    if (r == 0 && s->ext[0].io != img->io &&
        vmdk_range_add(&rs, img->io, 0, div_round_up(img->io->size, VMDK_SECTOR),
                       "descriptor file") < 0)
        r = vd_err(err, -ENOMEM, "vmdk: %s: out of memory", img->name);
    if (r == 0 && !vmdk_meta_reserve(s, (uint64_t)rs.n * VMDK_RANGE_COST)) {
        for (size_t i = s->nextents; i-- > 0;)
            if (s->ext[i].type == VMDK_EXT_SPARSE) {
                r = vmdk_cap_error(img, &s->ext[i],
                                   s->meta_bytes + (uint64_t)rs.n * VMDK_RANGE_COST, err);
                break;
            }
    }
    if (r == 0 && rs.n > 1)
        qsort(rs.r, rs.n, sizeof(*rs.r), vmdk_range_cmp);
    for (size_t i = 0; i < rs.n && r == 0; i++)
        r = vd_image_declare_meta(img, rs.r[i].io, rs.r[i].off, rs.r[i].len, rs.r[i].what, err);
    free(rs.r);
    return r;
}

/* Open the parent the descriptor names, through the core (path policy,
 * loops by file identity), and check its CID. */
static int vmdk_open_parent(struct vd_image *img, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    const char *hint = s->desc.parent_hint;
    struct vd_error e = {0};
    int r = vd_image_open_backing(img, hint, NULL, &e);
    if ((r == -ENOENT || r == -EPERM) && strpbrk(hint, "\\/")) {
        /* A path from the machine that made it (C:\VMs\base.vmdk): try the
         * file name beside the child; if that fails too, report the first
         * error (the refusal of a path outside the image's directory). */
        const char *b = hint + strlen(hint);
        while (b > hint && b[-1] != '\\' && b[-1] != '/')
            b--;
        struct vd_error e2 = {0};
        if (*b && vd_image_open_backing(img, b, NULL, &e2) == 0)
            r = 0;
    }
    if (r < 0) {
        /* A loop, or a failure further down the chain, is already told by
         * the image where it happened: say it once, not once per level. */
        size_t nl = strlen(img->name);
        if (r == -ELOOP || strstr(e.msg, "cannot open parent"))
            return vd_err(err, r, "%s%s", strncmp(e.msg, "vmdk: ", 6) ? "vmdk: " : "", e.msg);
        if (!strncmp(e.msg, img->name, nl) && e.msg[nl] == ':')
            return vd_err(err, r, "vmdk: %s", e.msg);
        return vd_err(err, r, "vmdk: %s: cannot open parent '%s': %s", img->name, hint, e.msg);
    }
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
    if (pthread_mutex_init(&s->wlock, NULL) != 0)
        return vd_err(err, -ENOMEM, "vmdk: %s: cannot create a mutex", img->name);
    if (pthread_mutex_init(&s->gt_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->wlock);
        return vd_err(err, -ENOMEM, "vmdk: %s: cannot create a mutex", img->name);
    }
    s->locks_init = true;
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
    if (r == 0)
        r = vmdk_open_tables(img, err);
    if (r == 0 && s->ext[0].io == img->io)
        r = vmdk_open_embedded_desc(img, err);
    if (r < 0)
        return r;
    img->size = s->ext[s->nextents - 1].start + s->ext[s->nextents - 1].len;
    img->subformat = s->subformat;
    if (s->have_desc && s->desc.logical_sector == 4096) {
        /* 4Kn as VMware records it (DDB only; capacity and offsets stay in
         * 512-byte units): partitions are found in 4 KiB LBAs. */
        img->sector_size = 4096;
    }
    if (img->opts.writable) {
        for (size_t i = 0; i < s->nextents; i++)
            if (s->ext[i].type == VMDK_EXT_SPARSE && s->ext[i].sp.compressed)
                return vd_err(err, -EROFS,
                              "vmdk: %s: %s images (compressed grains) cannot be written in "
                              "place; mount it read-only, keep the changes in an overlay (-o "
                              "overlay=FILE), or write to a converted copy",
                              img->name, s->subformat);
    }
    if (s->have_desc && s->desc.parent_hint && s->desc.parent_hint[0])
        return vmdk_open_parent(img, err);
    return 0;
}

/* Frees what the driver allocated; the ios belong to the image. */
static void vmdk_close(struct vd_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    for (size_t i = 0; i < s->nextents; i++) {
        struct vmdk_sparse *sp = &s->ext[i].sp;
        for (uint32_t t = 0; sp->gts && t < sp->ngts; t++)
            free(sp->gts[t]);
        free(sp->gts);
        free(sp->gd);
        free(sp->rgd);
    }
    free(s->ext);
    vd_vmdk_desc_free(&s->desc);
    if (s->locks_init) {
        pthread_mutex_destroy(&s->wlock);
        pthread_mutex_destroy(&s->gt_lock);
    }
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

/* One structure of a sparse extent (or one grain), in sectors, for the
 * overlap checks. */
struct vmdk_span {
    uint64_t start, end;
    const char *what; /* "grain table", "grain", ... */
    uint64_t index;   /* GD entry or grain number */
};

struct vmdk_spans {
    struct vmdk_span *v;
    size_t n, cap;
};

static int vmdk_span_add(struct vmdk_spans *sv, uint64_t start, uint64_t end, const char *what,
                         uint64_t index)
{
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 1024;
        struct vmdk_span *n = realloc(sv->v, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        sv->v = n;
        sv->cap = cap;
    }
    sv->v[sv->n++] = (struct vmdk_span){start, end, what, index};
    return 0;
}

static int vmdk_span_cmp(const void *a, const void *b)
{
    const struct vmdk_span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static void vmdk_report(vd_check_cb cb, void *opaque, int *rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void vmdk_report(vd_check_cb cb, void *opaque, int *rc, const char *fmt, ...)
{
    char msg[VD_ERROR_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cb(opaque, true, msg);
    *rc = VD_CHECK_CORRUPT;
}

/* Report every pair of overlapping spans (sorted by start): two tables,
 * a table and the header or descriptor, or two grains, that share bytes,
 * so that writing one would change the other. */
static void vmdk_report_overlaps(const char *name, struct vmdk_spans *sv, vd_check_cb cb,
                                 void *opaque, int *rc)
{
    if (sv->n > 1)
        qsort(sv->v, sv->n, sizeof(*sv->v), vmdk_span_cmp);
    size_t far = 0; /* the span reaching furthest so far */
    for (size_t i = 1; i < sv->n; i++) {
        const struct vmdk_span *a = &sv->v[far], *b = &sv->v[i];
        if (b->start < a->end) {
            if (!strcmp(a->what, "grain") && !strcmp(b->what, "grain"))
                vmdk_report(cb, opaque, rc,
                            "vmdk: %s: grains %" PRIu64 " and %" PRIu64
                            " overlap at offset %" PRIu64,
                            name, a->index, b->index, b->start * VMDK_SECTOR);
            else
                vmdk_report(cb, opaque, rc,
                            "vmdk: %s: %s %" PRIu64 " (sectors %" PRIu64 "..%" PRIu64
                            ") overlaps %s %" PRIu64 " (sectors %" PRIu64 "..%" PRIu64 ")",
                            name, a->what, a->index, a->start, a->end, b->what, b->index, b->start,
                            b->end);
        }
        if (b->end > a->end)
            far = i;
    }
}

/* A span of sv (sorted by start) sharing a sector with [start, end), or
 * NULL. For messages only: looks at the few spans starting just before. */
static const struct vmdk_span *vmdk_span_find(const struct vmdk_spans *sv, uint64_t start,
                                              uint64_t end)
{
    size_t lo = 0, hi = sv->n;
    while (lo < hi) { /* first span starting at or after end */
        size_t mid = lo + (hi - lo) / 2;
        if (sv->v[mid].start < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo, k = 0; i-- > 0 && k < 64; k++)
        if (sv->v[i].end > start)
            return &sv->v[i];
    return NULL;
}

/* Check one sparse extent: its tables against each other, and every grain
 * table entry: inside the file, outside every metadata range, grains not
 * sharing bytes, markers of streams naming their grain, redundant tables
 * equal to the primary ones. */
static int vmdk_check_extent(struct vd_image *img, struct vmdk_extent *x, vd_check_cb cb,
                             void *opaque, int *rc, struct vd_error *err)
{
    struct vmdk_sparse *sp = &x->sp;
    const char *name = vd_io_basename(x->io);
    struct vmdk_spans tables = {0}, grains = {0};
    struct vmdk_gt_view view = {.t = UINT32_MAX};
    uint32_t *rgt = NULL;
    uint64_t gd_sectors = div_round_up((uint64_t)sp->ngts * 4, VMDK_SECTOR);
    int r = vmdk_span_add(&tables, 0, 1, "sparse extent header", 0);
    if (r == 0 && sp->desc_sector && sp->desc_sectors)
        r = vmdk_span_add(&tables, sp->desc_sector, sp->desc_sector + sp->desc_sectors,
                          "embedded descriptor", 0);
    if (r == 0)
        r = vmdk_span_add(&tables, sp->gd_sector, sp->gd_sector + gd_sectors, "grain directory", 0);
    if (r == 0 && sp->rgd)
        r = vmdk_span_add(&tables, sp->rgd_sector, sp->rgd_sector + gd_sectors,
                          "redundant grain directory", 0);
    for (uint32_t t = 0; r == 0 && t < sp->ngts; t++) {
        if (sp->gd[t])
            r = vmdk_span_add(&tables, sp->gd[t], (uint64_t)sp->gd[t] + sp->gt_sectors,
                              "grain table", t);
        if (r == 0 && sp->rgd && sp->rgd[t])
            r = vmdk_span_add(&tables, sp->rgd[t], (uint64_t)sp->rgd[t] + sp->gt_sectors,
                              "redundant grain table", t);
    }
    if (r < 0)
        goto nomem;
    vmdk_report_overlaps(name, &tables, cb, opaque, rc);
    if (sp->overhead > x->io->size / VMDK_SECTOR + (x->io->size % VMDK_SECTOR != 0))
        vmdk_report(cb, opaque, rc,
                    "vmdk: %s: header area (overHead %" PRIu64
                    " sectors) ends past the end of the file (%" PRIu64
                    " bytes): the file is cut short",
                    name, sp->overhead, x->io->size);
    if (sp->rgd_bad == VMDK_RGD_PAST_EOF)
        vmdk_report(cb, opaque, rc,
                    "vmdk: %s: redundant grain directory (%u entries at sector %" PRIu64
                    ") is past end of file",
                    name, sp->ngts, sp->rgd_sector);
    else if (sp->rgd_bad == VMDK_RGD_ENTRY_PAST_EOF)
        vmdk_report(cb, opaque, rc,
                    "vmdk: %s: redundant grain directory entry %u points past end of file", name,
                    sp->rgd_bad_entry);
    else if (sp->rgd_bad == VMDK_RGD_ENTRY_DIFFERS)
        vmdk_report(cb, opaque, rc,
                    "vmdk: %s: redundant grain directory entry %u is %s, the grain directory "
                    "entry is %s",
                    name, sp->rgd_bad_entry, sp->gd[sp->rgd_bad_entry] ? "0" : "not 0",
                    sp->gd[sp->rgd_bad_entry] ? "not 0" : "0");
    if (sp->rgd && !(rgt = malloc((size_t)sp->gtes_per_gt * 4)))
        goto nomem;

    for (uint32_t t = 0; t < sp->ngts; t++) {
        if (!sp->gd[t])
            continue;
        struct vd_error e = {0};
        if (vmdk_gt_get(img, x, t, &view, &e) < 0) {
            cb(opaque, true, e.msg);
            *rc = VD_CHECK_CORRUPT;
            continue;
        }
        if (sp->rgd) {
            /* The redundant GT must say the same as the primary. */
            struct vd_error e2 = {0};
            if (vd_io_pread_full(x->io, rgt, (size_t)sp->gtes_per_gt * 4,
                                 (uint64_t)sp->rgd[t] * VMDK_SECTOR, &e2) < 0) {
                cb(opaque, true, e2.msg);
                *rc = VD_CHECK_CORRUPT;
            } else {
                for (uint32_t j = 0; j < sp->gtes_per_gt; j++)
                    if (le32(&rgt[j]) != view.gt[j]) {
                        vmdk_report(cb, opaque, rc,
                                    "vmdk: %s: redundant grain table %u entry %u is %u, the "
                                    "primary says %u",
                                    name, t, j, le32(&rgt[j]), view.gt[j]);
                        break;
                    }
            }
        }
        for (uint32_t j = 0; j < sp->gtes_per_gt; j++) {
            uint64_t g = (uint64_t)t * sp->gtes_per_gt + j;
            uint32_t v = view.gt[j];
            if (v <= 1 || g >= sp->ngrains)
                continue;
            const char *what = vmdk_gte_problem(x, t, v);
            if (what) {
                struct vd_error e2 = {0};
                vmdk_gte_error(x, t, j, v, what, &e2);
                cb(opaque, true, e2.msg);
                *rc = VD_CHECK_CORRUPT;
                continue;
            }
            uint64_t off = (uint64_t)v * VMDK_SECTOR, end = off + sp->grain_bytes;
            if (sp->compressed && sp->markers) {
                uint8_t mk[12];
                struct vd_error e2 = {0};
                if (vd_io_pread_full(x->io, mk, sizeof(mk), off, &e2) < 0) {
                    cb(opaque, true, e2.msg);
                    *rc = VD_CHECK_CORRUPT;
                    continue;
                }
                end = off + 12 + le32(mk + 8);
                if (le32(mk + 8) == 0 || le64(mk) != g * sp->grain_sectors || end > x->io->size) {
                    vmdk_report(cb, opaque, rc,
                                "vmdk: %s: grain %" PRIu64 ": bad grain marker at offset %" PRIu64,
                                name, g, off);
                    end = off + 12;
                }
            } else if (sp->compressed) {
                end = off + 1;
            }
            /* Every table, the footer and the markers: what the core
             * would refuse to read from, and a write must not touch. */
            const struct vd_meta_range *hit = vd_image_meta_overlap(img, x->io, off, end - off);
            if (hit) {
                const struct vmdk_span *tb =
                    vmdk_span_find(&tables, v, div_round_up(end, VMDK_SECTOR));
                char in[96];
                if (tb && strstr(tb->what, "grain table"))
                    snprintf(in, sizeof(in), "%s %" PRIu64, tb->what, tb->index);
                else
                    snprintf(in, sizeof(in), "the %s", tb ? tb->what : hit->what);
                vmdk_report(cb, opaque, rc,
                            "vmdk: %s: grain table %u entry %u (grain %" PRIu64
                            ") points to sector %u, inside %s",
                            name, t, j, g, v, in);
                continue;
            }
            if (vmdk_span_add(&grains, v, div_round_up(end, VMDK_SECTOR), "grain", g) < 0)
                goto nomem;
        }
    }
    vmdk_report_overlaps(name, &grains, cb, opaque, rc);
    free(rgt);
    free(tables.v);
    free(grains.v);
    return 0;
nomem:
    free(rgt);
    free(tables.v);
    free(grains.v);
    return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", name);
}

static int vmdk_check(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    struct vmdk_state *s = vmdk_state(img);
    int rc = VD_CHECK_CLEAN;
    for (size_t i = 0; i < s->nextents; i++) {
        if (s->ext[i].type != VMDK_EXT_SPARSE)
            continue;
        int r = vmdk_check_extent(img, &s->ext[i], cb, opaque, &rc, err);
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
    .map = vmdk_map,
    .decode = vmdk_decode,
    .write_begin = vmdk_write_begin,
    .alloc = vmdk_alloc,
    .flush = vmdk_flush,
    .allocated = vmdk_allocated,
    .info = vmdk_info,
    .check = vmdk_check,
};
