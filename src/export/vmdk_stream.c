/*
 * streamOptimized VMDK encoder.
 *
 * Spec: VMware "Virtual Disk Format 5.0", sections "Hosted Sparse Extent
 * Header", "Grain Directories and Grain Tables" and "Stream-Optimized
 * Compressed Sparse Extents" (markers, GD at end, footer).
 *
 *   sector 0        SparseExtentHeader v3, flags 0x30001 (valid NL test,
 *                   compressed grains, markers), gdOffset = -1 (GD_AT_END)
 *   sector 1..20    embedded descriptor (createType "streamOptimized", one
 *                   RW extent naming this file, the DDB keys VMware's
 *                   open-vmdk writes), zero padded
 *   capacity        the size in 512-byte sectors, rounded up only to a
 *                   whole logical sector (not to a grain): the disk must not
 *                   grow (docs/vmdk.md compares every field with VMware's)
 *   sector 128...   grain marker {u64 lba, u32 size} + zlib data, padded to
 *                   a sector, for each non-zero grain, in LBA order;
 *                   after the grains of each 512-grain range:
 *                   GT marker {u64 4, u32 0, u32 1} + GT (4 sectors)
 *   ...             GD marker {u64 n, 0, 2} + GD (u32 sector of each GT,
 *                   0 where the range holds no grain)
 *                   footer marker {1, 0, 3} + header copy with the real gdOffset
 *                   end-of-stream marker (a zero sector)
 *
 * The head (header + descriptor, 64 KiB) is written first with the size
 * known then; when the size changed by the end (FUSE writes), the header's
 * capacity and the descriptor's extent size are patched through the sink.
 * Grains are deflated on a small thread pool and written in order.
 *
 * vmdk_type=monolithicSparse (vd_encoder_vmdk_sparse) shares the head:
 * header v1, flags 0x3 (valid NL test, redundant GD), no compression; raw
 * 64 KiB grains from sector 128 in LBA order, then at the end the redundant
 * GTs + RGD and the GTs + GD (0 entries for ranges without grains), and the
 * head patched with both offsets.
 * Unsupported: grain sizes other than 64 KiB.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/codec.h"
#include "export/encoder.h"

#define VMDK_SECTOR        512u
#define VMDK_GRAIN_SECTORS 128u
#define VMDK_GRAIN         (VMDK_GRAIN_SECTORS * VMDK_SECTOR)
#define VMDK_GTES          512u
#define VMDK_GT_BYTES      (VMDK_GTES * 4u)
#define VMDK_DESC_SECTORS  20u
#define VMDK_HEAD_SECTORS  128u
#define VMDK_HEAD_LEN      (VMDK_HEAD_SECTORS * VMDK_SECTOR)
#define VMDK_MARKER_EOS    0u
#define VMDK_MARKER_GT     1u
#define VMDK_MARKER_GD     2u
#define VMDK_MARKER_FOOTER 3u
/* GT sectors are u32: the file must stay below 2 TiB of sectors; cap the
 * virtual size at 64 TiB (VMware's own limit is 62 TB). */
#define VMDK_MAX_SIZE (64ull << 40)

_Static_assert(VMDK_GRAIN == VD_EXPORT_CHUNK, "one chunk is one grain");
_Static_assert(VMDK_HEAD_LEN == VD_EXPORT_VMDK_HEAD_LEN, "OVA reserves this head");

enum { JOB_FREE, JOB_QUEUED, JOB_DONE };

struct vmdk_job {
    uint64_t grain;
    int state;
    int r;
    size_t out_len; /* marker + data + padding */
    uint8_t *in;
    uint8_t *out;
};

struct vmdk_stream {
    /* thread pool: the ring jobs[tail..head) in submission order; workers
     * take them at `claim`; the encoder thread writes them at `tail`. */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    bool pool_up, stop;
    pthread_t *threads;
    unsigned nthreads;
    struct vmdk_job *jobs;
    size_t njobs, out_cap;
    uint64_t head, claim, tail;
    int level;

    uint32_t *gt;      /* the grain table being filled */
    uint64_t gt_index; /* which 512-grain range gt covers */
    bool gt_used;
    uint32_t *gd; /* sector of each GT, indexed by range; grows */
    uint64_t gd_len, gd_cap;
    uint8_t head_buf[VMDK_HEAD_LEN]; /* what was written at offset 0 */
    uint32_t cid;
    uint8_t uuid[16];
    uint32_t sector_size; /* logical: 512, or 4096 (sector_size=4096) */
    bool sparse;          /* monolithicSparse: no pool, GTs kept until the end */
    struct vmdk_saved_gt {
        uint64_t index;
        uint32_t *gt;
    } * saved;
    size_t nsaved, saved_cap;
};

static void *vmdk_worker(void *arg)
{
    struct vmdk_stream *v = arg;
    pthread_mutex_lock(&v->mu);
    for (;;) {
        while (!v->stop && v->claim == v->head)
            pthread_cond_wait(&v->work_cv, &v->mu);
        if (v->stop)
            break;
        struct vmdk_job *j = &v->jobs[v->claim++ % v->njobs];
        pthread_mutex_unlock(&v->mu);
        size_t n = 0;
        int r =
            vd_codec_zlib_compress(j->in, VMDK_GRAIN, j->out + 12, v->out_cap - 12, &n, v->level);
        if (r == 0) {
            put_le64(j->out, j->grain * VMDK_GRAIN_SECTORS);
            put_le32(j->out + 8, (uint32_t)n);
            size_t total = div_round_up(12 + n, VMDK_SECTOR) * VMDK_SECTOR;
            memset(j->out + 12 + n, 0, total - 12 - n);
            j->out_len = total;
        }
        pthread_mutex_lock(&v->mu);
        j->r = r;
        j->state = JOB_DONE;
        pthread_cond_broadcast(&v->done_cv);
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

static int vmdk_marker(struct vd_sink *s, uint64_t val, uint32_t type, struct vd_error *err)
{
    uint8_t m[VMDK_SECTOR] = {0};
    put_le64(m, val);
    put_le32(m + 12, type);
    return vd_sink_write(s, m, sizeof(m), err);
}

/* monolithicSparse: keep the finished GT for the end. */
static int vmdk_save_gt(struct vd_encoder *enc, struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    if (v->nsaved == v->saved_cap) {
        size_t cap = v->saved_cap ? 2 * v->saved_cap : 64;
        struct vmdk_saved_gt *n = realloc(v->saved, cap * sizeof(*n));
        if (!n)
            return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
        v->saved = n;
        v->saved_cap = cap;
    }
    v->saved[v->nsaved].index = v->gt_index;
    v->saved[v->nsaved].gt = v->gt;
    v->nsaved++;
    v->gt = calloc(VMDK_GTES, sizeof(*v->gt));
    v->gt_used = false;
    if (!v->gt)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
    return 0;
}

static int vmdk_flush_gt(struct vd_encoder *enc, struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    struct vd_sink *s = enc->sink;
    if (!v->gt_used)
        return 0;
    if (v->sparse)
        return vmdk_save_gt(enc, err);
    if (v->gt_index >= v->gd_cap) {
        uint64_t cap = VD_MAX(v->gt_index + 1, v->gd_cap * 2);
        uint32_t *gd = realloc(v->gd, cap * sizeof(*gd));
        if (!gd)
            return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
        memset(gd + v->gd_cap, 0, (cap - v->gd_cap) * sizeof(*gd));
        v->gd = gd;
        v->gd_cap = cap;
    }
    int r = vmdk_marker(s, VMDK_GT_BYTES / VMDK_SECTOR, VMDK_MARKER_GT, err);
    if (r < 0)
        return r;
    if ((s->pos / VMDK_SECTOR) > UINT32_MAX)
        return vd_err(err, -EFBIG, "vmdk: %s: output passes 2 TiB", enc->base);
    v->gd[v->gt_index] = (uint32_t)(s->pos / VMDK_SECTOR);
    v->gd_len = VD_MAX(v->gd_len, v->gt_index + 1);
    uint8_t gt[VMDK_GT_BYTES];
    for (unsigned i = 0; i < VMDK_GTES; i++)
        put_le32(gt + 4 * i, v->gt[i]);
    r = vd_sink_write(s, gt, sizeof(gt), err);
    memset(v->gt, 0, VMDK_GT_BYTES);
    v->gt_used = false;
    return r;
}

/* Write the oldest job (waiting for it) and free its slot. */
static int vmdk_write_oldest(struct vd_encoder *enc, struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    struct vmdk_job *j = &v->jobs[v->tail % v->njobs];
    pthread_mutex_lock(&v->mu);
    while (j->state != JOB_DONE)
        pthread_cond_wait(&v->done_cv, &v->mu);
    pthread_mutex_unlock(&v->mu);
    int r = j->r;
    if (r < 0) {
        r = vd_err(err, r, "vmdk: %s: compressing grain %" PRIu64 ": %s", enc->base, j->grain,
                   strerror(-r));
        goto out;
    }
    uint64_t gti = j->grain / VMDK_GTES;
    if (gti != v->gt_index) {
        r = vmdk_flush_gt(enc, err);
        if (r < 0)
            goto out;
        v->gt_index = gti;
    }
    uint64_t sector = enc->sink->pos / VMDK_SECTOR;
    if (sector > UINT32_MAX) {
        r = vd_err(err, -EFBIG, "vmdk: %s: output passes 2 TiB", enc->base);
        goto out;
    }
    v->gt[j->grain % VMDK_GTES] = (uint32_t)sector;
    v->gt_used = true;
    r = vd_sink_write(enc->sink, j->out, j->out_len, err);
out:
    j->state = JOB_FREE;
    v->tail++;
    return r;
}

/* Cylinders as VMware's open-vmdk (sparse.c, makeDiskDescriptorFile) and
 * vmware-vdiskmanager compute them: rounded up over 255 heads x 63 sectors,
 * capped at 65535. */
static uint64_t vmdk_cylinders(uint64_t sectors)
{
    return VD_MIN(VD_MAX(div_round_up(sectors, 255 * 63), 1), 65535);
}

/* The embedded descriptor, with the keys and the order VMware's own stream
 * writer (open-vmdk vmdk-convert, which makes the disks of VMware's OVAs)
 * uses; docs/vmdk.md lists each key and why it is there. */
static int vmdk_descriptor(const struct vd_encoder *enc, uint64_t sectors, char *out, size_t cap)
{
    const struct vmdk_stream *v = enc->priv;
    const uint8_t *u = v->uuid;
    char sector_keys[128] = "";
    /* 4Kn: VMware records the logical sector size in the DDB only; every
     * offset and the capacity stay in 512-byte units (open-vmdk, -s). */
    if (v->sector_size != VMDK_SECTOR)
        snprintf(sector_keys, sizeof(sector_keys),
                 "ddb.logicalSectorSize = \"%" PRIu32 "\"\n"
                 "ddb.physicalSectorSize = \"%" PRIu32 "\"\n",
                 v->sector_size, v->sector_size);
    int n = snprintf(
        out, cap,
        "# Disk DescriptorFile\n"
        "version=1\n"
        "encoding=\"UTF-8\"\n"
        "CID=%08" PRIx32 "\n"
        "parentCID=ffffffff\n"
        "createType=\"%s\"\n"
        "\n"
        "# Extent description\n"
        "RW %" PRIu64 " SPARSE \"%s\"\n"
        "\n"
        "# The Disk Data Base\n"
        "#DDB\n"
        "\n"
        "ddb.longContentID = \"%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%08" PRIx32 "\"\n"
        "ddb.virtualHWVersion = \"4\"\n"
        "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
        "ddb.geometry.heads = \"255\"\n"
        "ddb.geometry.sectors = \"63\"\n"
        "%s"
        "ddb.adapterType = \"lsilogic\"\n"
        "ddb.toolsInstallType = \"4\"\n"
        "ddb.toolsVersion = \"2147483647\"\n"
        "ddb.uuid = \"%02x %02x %02x %02x %02x %02x %02x %02x-%02x %02x %02x %02x %02x %02x %02x "
        "%02x\"\n",
        v->cid, v->sparse ? "monolithicSparse" : "streamOptimized", sectors, enc->base, u[0], u[1],
        u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], v->cid,
        vmdk_cylinders(sectors), sector_keys, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8],
        u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return n;
}

static void vmdk_header(uint8_t *h, uint64_t sectors, uint64_t gd_offset, uint64_t rgd_offset,
                        bool sparse)
{
    memset(h, 0, VMDK_SECTOR);
    memcpy(h, "KDMV", 4);
    put_le32(h + 4, sparse ? 1 : 3);
    put_le32(h + 8, sparse ? 0x3 : 0x30001);
    put_le64(h + 12, sectors);
    put_le64(h + 20, VMDK_GRAIN_SECTORS);
    put_le64(h + 28, 1);
    put_le64(h + 36, VMDK_DESC_SECTORS);
    put_le32(h + 44, VMDK_GTES);
    put_le64(h + 48, rgd_offset);
    put_le64(h + 56, gd_offset);
    put_le64(h + 64, VMDK_HEAD_SECTORS);
    h[72] = 0;
    h[73] = '\n';
    h[74] = ' ';
    h[75] = '\r';
    h[76] = '\n';
    put_le16(h + 77, sparse ? 0 : 1); /* none / deflate */
}

/* The header's capacity in 512-byte sectors: the disk's size exactly, as
 * VMware writes it (open-vmdk: CEILING(capacity, 512)), not rounded to a
 * grain, so the disk does not grow; a size that is not a whole logical
 * sector is rounded up to one (512, or 4096 for 4Kn). */
static uint64_t vmdk_capacity(const struct vmdk_stream *v, uint64_t size)
{
    return div_round_up(size, v->sector_size) * (v->sector_size / VMDK_SECTOR);
}

/* Build header + descriptor for a disk of `size` bytes into head. */
static int vmdk_build_head(struct vd_encoder *enc, uint64_t size, uint64_t gd, uint64_t rgd,
                           uint8_t *head, struct vd_error *err)
{
    const struct vmdk_stream *v = enc->priv;
    uint64_t sectors = vmdk_capacity(v, size);
    memset(head, 0, VMDK_HEAD_LEN);
    vmdk_header(head, sectors, gd, rgd, v->sparse);
    if (vmdk_descriptor(enc, sectors, (char *)head + VMDK_SECTOR, VMDK_DESC_SECTORS * VMDK_SECTOR) <
        0)
        return vd_err(err, -ENAMETOOLONG, "vmdk: %s: file name too long for the descriptor",
                      enc->base);
    return 0;
}

static int vmdk_begin(struct vd_encoder *enc, struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    int r;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->work_cv, NULL);
    pthread_cond_init(&v->done_cv, NULL);
    v->pool_up = true;
    v->sector_size = enc->opts->sector_size ? enc->opts->sector_size : VMDK_SECTOR;
    if (v->sector_size != VMDK_SECTOR && v->sector_size != 4096)
        return vd_err(err, -EINVAL, "vmdk: %s: sector_size=%" PRIu32 ": expected 512 or 4096",
                      enc->base, v->sector_size);
    v->level = enc->opts->compress_level > 0                ? enc->opts->compress_level
               : strcmp(vd_codec_name(), "libdeflate") == 0 ? 5
                                                            : 6;
    vd_export_random(&v->cid, sizeof(v->cid));
    vd_export_random(v->uuid, sizeof(v->uuid));
    v->gt_index = UINT64_MAX;
    if (v->sparse) {
        if (!(v->gt = calloc(VMDK_GTES, sizeof(*v->gt))))
            return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
        r = vmdk_build_head(enc, enc->size, 0, 0, v->head_buf, err);
        if (r == 0)
            r = vd_sink_set_head(enc->sink, VMDK_HEAD_LEN, err);
        return r < 0 ? r : vd_sink_write(enc->sink, v->head_buf, VMDK_HEAD_LEN, err);
    }
    v->nthreads = VD_MAX(enc->opts->threads, 1u);
    v->njobs = VD_MAX(64u, 32u * v->nthreads); /* 4+ MiB ahead: the producer stalls on reads */
    v->out_cap = 12 + vd_codec_zlib_bound(VMDK_GRAIN) + VMDK_SECTOR;
    v->jobs = calloc(v->njobs, sizeof(*v->jobs));
    v->gt = calloc(VMDK_GTES, sizeof(*v->gt));
    v->threads = calloc(v->nthreads, sizeof(*v->threads));
    if (!v->jobs || !v->gt || !v->threads)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
    for (size_t i = 0; i < v->njobs; i++)
        if (!(v->jobs[i].in = malloc(VMDK_GRAIN)) || !(v->jobs[i].out = malloc(v->out_cap)))
            return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
    for (unsigned i = 0; i < v->nthreads; i++) {
        r = pthread_create(&v->threads[i], NULL, vmdk_worker, v);
        if (r != 0) {
            v->nthreads = i;
            return vd_err(err, -r, "vmdk: %s: cannot start a compression thread: %s", enc->base,
                          strerror(r));
        }
    }
    r = vmdk_build_head(enc, enc->size, UINT64_MAX, 0, v->head_buf, err);
    if (r == 0)
        r = vd_sink_set_head(enc->sink, VMDK_HEAD_LEN, err);
    if (r == 0)
        r = vd_sink_write(enc->sink, v->head_buf, VMDK_HEAD_LEN, err);
    return r;
}

static int vmdk_chunk(struct vd_encoder *enc, uint64_t idx, const uint8_t *data,
                      struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    if (v->head - v->tail == v->njobs) {
        int r = vmdk_write_oldest(enc, err);
        if (r < 0)
            return r;
    }
    struct vmdk_job *j = &v->jobs[v->head % v->njobs];
    memcpy(j->in, data, VMDK_GRAIN);
    j->grain = idx;
    pthread_mutex_lock(&v->mu);
    j->state = JOB_QUEUED;
    v->head++;
    pthread_cond_signal(&v->work_cv);
    pthread_mutex_unlock(&v->mu);
    return 0;
}

static int vmdk_finish(struct vd_encoder *enc, uint64_t size, struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    struct vd_sink *s = enc->sink;
    uint8_t *buf = NULL, *head = NULL;
    int r = 0;
    while (v->tail < v->head)
        if ((r = vmdk_write_oldest(enc, err)) < 0)
            return r;
    if ((r = vmdk_flush_gt(enc, err)) < 0)
        return r;
    uint64_t grains = div_round_up(size, VMDK_GRAIN);
    uint64_t sectors = vmdk_capacity(v, size);
    uint64_t ngt = div_round_up(grains, VMDK_GTES);
    uint64_t gd_bytes = div_round_up(ngt * 4, VMDK_SECTOR) * VMDK_SECTOR;
    if (v->gd_len > ngt)
        return vd_err(err, -EIO, "vmdk: %s: grain past the disk size (bug)", enc->base);
    if (gd_bytes > SIZE_MAX / 2 || !(buf = calloc(1, gd_bytes ? gd_bytes : 1)) ||
        !(head = malloc(VMDK_HEAD_LEN))) {
        r = vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
        goto out;
    }
    for (uint64_t i = 0; i < v->gd_len; i++)
        put_le32(buf + 4 * i, v->gd[i]);
    if ((r = vmdk_marker(s, gd_bytes / VMDK_SECTOR, VMDK_MARKER_GD, err)) < 0)
        goto out;
    uint64_t gd_sector = s->pos / VMDK_SECTOR;
    if (gd_bytes && (r = vd_sink_write(s, buf, gd_bytes, err)) < 0)
        goto out;
    uint8_t footer[VMDK_SECTOR];
    vmdk_header(footer, sectors, gd_sector, 0, false);
    if ((r = vmdk_marker(s, 1, VMDK_MARKER_FOOTER, err)) < 0 ||
        (r = vd_sink_write(s, footer, sizeof(footer), err)) < 0 ||
        (r = vmdk_marker(s, 0, VMDK_MARKER_EOS, err)) < 0)
        goto out;
    if ((r = vmdk_build_head(enc, size, UINT64_MAX, 0, head, err)) < 0)
        goto out;
    if (memcmp(head, v->head_buf, VMDK_HEAD_LEN) != 0)
        r = vd_sink_patch(s, 0, head, VMDK_HEAD_SECTORS * VMDK_SECTOR, err);
out:
    free(buf);
    free(head);
    return r;
}

static void vmdk_free(struct vd_encoder *enc)
{
    struct vmdk_stream *v = enc->priv;
    for (size_t i = 0; i < v->nsaved; i++)
        free(v->saved[i].gt);
    free(v->saved);
    if (!v->pool_up) {
        free(v->gt);
        return;
    }
    pthread_mutex_lock(&v->mu);
    v->stop = true;
    pthread_cond_broadcast(&v->work_cv);
    pthread_mutex_unlock(&v->mu);
    for (unsigned i = 0; i < v->nthreads; i++)
        pthread_join(v->threads[i], NULL);
    if (v->jobs)
        for (size_t i = 0; i < v->njobs; i++) {
            free(v->jobs[i].in);
            free(v->jobs[i].out);
        }
    free(v->jobs);
    free(v->threads);
    free(v->gt);
    free(v->gd);
    pthread_cond_destroy(&v->work_cv);
    pthread_cond_destroy(&v->done_cv);
    pthread_mutex_destroy(&v->mu);
}

/* ---- monolithicSparse ---- */

static int vmdk_sparse_begin(struct vd_encoder *enc, struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    v->sparse = true;
    return vmdk_begin(enc, err);
}

static int vmdk_sparse_chunk(struct vd_encoder *enc, uint64_t idx, const uint8_t *data,
                             struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    uint64_t gti = idx / VMDK_GTES;
    int r;
    if (gti != v->gt_index) {
        if ((r = vmdk_flush_gt(enc, err)) < 0)
            return r;
        v->gt_index = gti;
    }
    uint64_t sector = enc->sink->pos / VMDK_SECTOR;
    if (sector > UINT32_MAX)
        return vd_err(err, -EFBIG, "vmdk: %s: output passes 2 TiB", enc->base);
    v->gt[idx % VMDK_GTES] = (uint32_t)sector;
    v->gt_used = true;
    return vd_sink_write(enc->sink, data, VMDK_GRAIN, err);
}

/* Write every saved GT, then a directory of their sectors; *dir_sector
 * gets the directory's sector. */
static int vmdk_sparse_tables(struct vd_encoder *enc, uint64_t ngt, uint64_t *dir_sector,
                              struct vd_error *err)
{
    struct vmdk_stream *v = enc->priv;
    uint64_t gd_bytes = div_round_up(ngt * 4, VMDK_SECTOR) * VMDK_SECTOR;
    uint8_t *gd = calloc(1, gd_bytes ? gd_bytes : 1), gt[VMDK_GT_BYTES];
    int r = 0;
    if (!gd)
        return vd_err(err, -ENOMEM, "vmdk: %s: out of memory", enc->base);
    for (size_t i = 0; i < v->nsaved && r == 0; i++) {
        if (v->saved[i].index >= ngt || enc->sink->pos / VMDK_SECTOR > UINT32_MAX) {
            r = vd_err(err, -EFBIG, "vmdk: %s: grain table out of range", enc->base);
            break;
        }
        put_le32(gd + 4 * v->saved[i].index, (uint32_t)(enc->sink->pos / VMDK_SECTOR));
        for (unsigned k = 0; k < VMDK_GTES; k++)
            put_le32(gt + 4 * k, v->saved[i].gt[k]);
        r = vd_sink_write(enc->sink, gt, sizeof(gt), err);
    }
    *dir_sector = enc->sink->pos / VMDK_SECTOR;
    if (r == 0 && gd_bytes)
        r = vd_sink_write(enc->sink, gd, gd_bytes, err);
    free(gd);
    return r;
}

static int vmdk_sparse_finish(struct vd_encoder *enc, uint64_t size, struct vd_error *err)
{
    uint64_t rgd = 0, gd = 0, ngt = div_round_up(div_round_up(size, VMDK_GRAIN), VMDK_GTES);
    uint8_t *head = malloc(VMDK_HEAD_LEN);
    int r = head ? vmdk_flush_gt(enc, err) : vd_err(err, -ENOMEM, "vmdk: out of memory");
    if (r == 0)
        r = vmdk_sparse_tables(enc, ngt, &rgd, err);
    if (r == 0)
        r = vmdk_sparse_tables(enc, ngt, &gd, err);
    if (r == 0)
        r = vmdk_build_head(enc, size, gd, rgd, head, err);
    if (r == 0)
        r = vd_sink_patch(enc->sink, 0, head, VMDK_HEAD_LEN, err);
    free(head);
    return r;
}

const struct vd_encoder_ops vd_encoder_vmdk_sparse = {
    .name = "vmdk",
    .priv_size = sizeof(struct vmdk_stream),
    .max_size = 2ull << 40, /* raw grains: sector offsets are u32 */
    .patches_head = true,
    .begin = vmdk_sparse_begin,
    .chunk = vmdk_sparse_chunk,
    .finish = vmdk_sparse_finish,
    .free = vmdk_free,
};

const struct vd_encoder_ops vd_encoder_vmdk = {
    .name = "vmdk",
    .priv_size = sizeof(struct vmdk_stream),
    .max_size = VMDK_MAX_SIZE,
    .begin = vmdk_begin,
    .chunk = vmdk_chunk,
    .finish = vmdk_finish,
    .free = vmdk_free,
};
