/*
 * VHD encoder, dynamic (default) and fixed.
 *
 * Spec: Microsoft "Virtual Hard Disk Image Format Specification" 1.0:
 * "Hard Disk Footer Format", "Dynamic Disk Header Format", "Block
 * Allocation Table and Data Blocks", Appendix "CHS Calculation".
 *
 *   dynamic:  0     footer copy (512)
 *             512   dynamic disk header (1024), table offset 1536
 *             1536  BAT, u32 BE sector of each 2 MiB block, 0xFFFFFFFF = none;
 *                   room reserved for 2040 GiB (4 MiB) unless the size is
 *                   known up front (vdisk convert)
 *             ...   blocks in disk order: sector bitmap (512, all ones) + 2 MiB,
 *                   the bitmap placed so that the data is 4 KiB aligned (the
 *                   sectors before it are a hole), as Windows 10 lays them
 *                   out (node-vhd and dissect samples: bitmaps at sector
 *                   15 + 4104k). Unaligned data cost the page cache a
 *                   partial page on every write (VHD export 0.35 -> s).
 *             end   footer (512)
 *   fixed:    the disk bytes, then the footer
 *
 * Footer: creator "win " 0x000a0000 on "Wi2k" (so qemu and Hyper-V take the
 * current size, not the CHS size), current = original size = the size
 * rounded up to 1 MiB (Azure wants that), CHS from the spec's algorithm.
 * Blocks never written, or all zeros, stay unallocated. The head (footer
 * copy, header, BAT) is patched at the end. Unsupported: differencing disks.
 *
 * target=azure (export.c makes it fixed and refuses vhd_type=dynamic) needs
 * nothing else here, because every VHD we write already has what Azure
 * checks (docs/vhd.md, "Azure"):
 *  - fixed type (disk type 2): "The VHDX format isn't supported in Azure,
 *    only fixed VHD" (learn.microsoft.com, azure/virtual-machines/windows/
 *    prepare-for-upload-vhd-image);
 *  - virtual size a whole MiB, and the file that size plus the 512-byte
 *    footer: "Disks in Azure must have a virtual size aligned to 1 MiB ...
 *    FileSize ... equal to Size plus 512 bytes for the VHD footer" (same
 *    page); a managed-disk upload is refused unless "the upload size in
 *    bytes - 512 bytes for the VHD footer" is a multiple of MiB, between
 *    20 MiB and 32 TiB (DiskCreationData.UploadSizeBytes);
 *  - cookie "conectix", features 2, version 1.0, data offset all ones,
 *    current size = original size = the file's length less the footer
 *    (the size Azure checks is the current size; CHS is for BIOSes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "export/encoder.h"

#define VHD_BLOCK    (2u << 20)
#define VHD_MAX_SIZE (2040ull << 30)
/* target=azure: fixed only, so no BAT limits it; Azure takes up to 32 TiB
 * ("between 20972032 (20 MiB + 512 bytes for the VHD footer) and
 * 35183298347520 bytes (32 TiB + 512 bytes ...)", UploadSizeBytes). */
#define VHD_AZURE_MAX_SIZE (32ull << 40)
#define VHD_HEAD_FIXED     1536u /* footer copy + dynamic header */
#define VHD_MIB            (1ull << 20)

struct vhd_enc {
    bool fixed;
    uint32_t *bat;     /* host order; `reserved` entries */
    uint64_t reserved; /* BAT entries the head has room for */
    uint64_t head_len;
    uint64_t cur_block;  /* block being filled when in_block */
    uint64_t block_fill; /* bytes of it written (data part) */
    bool in_block;
    uint8_t uuid[16];
    uint32_t stamp;
};

static uint32_t vhd_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    return ~sum;
}

/* CHS per the spec's appendix; packed as cylinders(16) heads(8) spt(8). */
static uint32_t vhd_chs(uint64_t size)
{
    uint64_t total = size / 512, spt, heads, cth;
    if (total > 65535ull * 16 * 255)
        total = 65535ull * 16 * 255;
    if (total >= 65535ull * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        spt = 17;
        cth = total / spt;
        heads = (cth + 1023) / 1024;
        if (heads < 4)
            heads = 4;
        if (cth >= heads * 1024 || heads > 16) {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if (cth >= heads * 1024) {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
    }
    uint64_t cyl = cth / heads;
    return (uint32_t)(cyl << 16 | heads << 8 | spt);
}

static void vhd_footer(const struct vhd_enc *h, uint64_t vsize, uint8_t *f)
{
    memset(f, 0, 512);
    memcpy(f, "conectix", 8);
    put_be32(f + 8, 2);
    put_be32(f + 12, 0x00010000);
    put_be64(f + 16, h->fixed ? UINT64_MAX : 512);
    put_be32(f + 24, h->stamp);
    memcpy(f + 28, "win ", 4);
    put_be32(f + 32, 0x000a0000);
    memcpy(f + 36, "Wi2k", 4);
    put_be64(f + 40, vsize);
    put_be64(f + 48, vsize);
    put_be32(f + 56, vhd_chs(vsize));
    put_be32(f + 60, h->fixed ? 2 : 3);
    memcpy(f + 68, h->uuid, 16);
    put_be32(f + 64, vhd_checksum(f, 512));
}

static void vhd_dyn_header(uint64_t entries, uint8_t *d)
{
    memset(d, 0, 1024);
    memcpy(d, "cxsparse", 8);
    put_be64(d + 8, UINT64_MAX);
    put_be64(d + 16, VHD_HEAD_FIXED);
    put_be32(d + 24, 0x00010000);
    put_be32(d + 28, (uint32_t)entries);
    put_be32(d + 32, VHD_BLOCK);
    put_be32(d + 36, vhd_checksum(d, 1024));
}

static uint64_t vhd_vsize(uint64_t size)
{
    return div_round_up(size, VHD_MIB) * VHD_MIB;
}

static int vhd_begin(struct vd_encoder *enc, struct vd_error *err)
{
    struct vhd_enc *h = enc->priv;
    h->fixed = strcmp(enc->opts->vhd_type, "fixed") == 0;
    vd_export_random(h->uuid, sizeof(h->uuid));
    time_t now = time(NULL);
    h->stamp = now > 946684800 ? (uint32_t)(now - 946684800) : 0;
    if (h->fixed)
        return 0;
    uint64_t max = enc->size_final ? vhd_vsize(enc->size) : VHD_MAX_SIZE;
    h->reserved = VD_MAX(div_round_up(max, VHD_BLOCK), 1);
    uint64_t bat_bytes = div_round_up(h->reserved * 4, 512) * 512;
    h->head_len = VHD_HEAD_FIXED + bat_bytes;
    uint8_t *head = malloc(h->head_len);
    h->bat = malloc(h->reserved * sizeof(*h->bat));
    if (!head || !h->bat) {
        free(head);
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory", enc->base);
    }
    memset(h->bat, 0xff, h->reserved * sizeof(*h->bat));
    vhd_footer(h, vhd_vsize(enc->size), head);
    vhd_dyn_header(div_round_up(vhd_vsize(enc->size), VHD_BLOCK), head + 512);
    memset(head + VHD_HEAD_FIXED, 0xff, bat_bytes);
    int r = vd_sink_set_head(enc->sink, h->head_len, err);
    if (r == 0)
        r = vd_sink_write(enc->sink, head, h->head_len, err);
    free(head);
    return r;
}

/* Pad the block being filled with zeros to its end. */
static int vhd_close_block(struct vd_encoder *enc, struct vd_error *err)
{
    struct vhd_enc *h = enc->priv;
    if (!h->in_block)
        return 0;
    h->in_block = false;
    return vd_sink_zeros(enc->sink, VHD_BLOCK - h->block_fill, err);
}

static int vhd_chunk(struct vd_encoder *enc, uint64_t idx, const uint8_t *data,
                     struct vd_error *err)
{
    struct vhd_enc *h = enc->priv;
    uint64_t off = idx * VD_EXPORT_CHUNK;
    int r;
    if (h->fixed) {
        r = vd_sink_zeros(enc->sink, off - enc->sink->pos, err);
        return r < 0 ? r : vd_sink_write(enc->sink, data, VD_EXPORT_CHUNK, err);
    }
    uint64_t b = off / VHD_BLOCK;
    if (!h->in_block || b != h->cur_block) {
        if ((r = vhd_close_block(enc, err)) < 0)
            return r;
        if (b >= h->reserved)
            return vd_err(err, -EFBIG, "vhd: %s: block %llu is past the BAT room reserved",
                          enc->base, (unsigned long long)b);
        uint64_t pad = (4096 - (enc->sink->pos + 512) % 4096) % 4096;
        if ((enc->sink->pos + pad) / 512 > UINT32_MAX)
            return vd_err(err, -EFBIG, "vhd: %s: output passes 2 TiB", enc->base);
        /* Pad and bitmap in one write of real zeros, not a hole: a hole
         * per block split the output into an extent per 2 MiB. */
        uint8_t lead[4096];
        memset(lead, 0, pad);
        memset(lead + pad, 0xff, 512);
        h->bat[b] = (uint32_t)((enc->sink->pos + pad) / 512);
        if ((r = vd_sink_write(enc->sink, lead, pad + 512, err)) < 0)
            return r;
        h->cur_block = b;
        h->block_fill = 0;
        h->in_block = true;
    }
    uint64_t in = off % VHD_BLOCK;
    if ((r = vd_sink_zeros(enc->sink, in - h->block_fill, err)) < 0 ||
        (r = vd_sink_write(enc->sink, data, VD_EXPORT_CHUNK, err)) < 0)
        return r;
    h->block_fill = in + VD_EXPORT_CHUNK;
    return 0;
}

static int vhd_finish(struct vd_encoder *enc, uint64_t size, struct vd_error *err)
{
    struct vhd_enc *h = enc->priv;
    uint64_t vsize = vhd_vsize(size);
    uint8_t footer[512];
    int r;
    vhd_footer(h, vsize, footer);
    if (h->fixed) {
        r = vd_sink_zeros(enc->sink, vsize - enc->sink->pos, err);
        return r < 0 ? r : vd_sink_write(enc->sink, footer, sizeof(footer), err);
    }
    if ((r = vhd_close_block(enc, err)) < 0)
        return r;
    uint64_t entries = div_round_up(vsize, VHD_BLOCK);
    if (entries > h->reserved)
        return vd_err(err, -EFBIG, "vhd: %s: size grew past the BAT room reserved", enc->base);
    if ((r = vd_sink_write(enc->sink, footer, sizeof(footer), err)) < 0)
        return r;
    uint8_t hdr[1024];
    vhd_dyn_header(entries, hdr);
    if ((r = vd_sink_patch(enc->sink, 0, footer, sizeof(footer), err)) < 0 ||
        (r = vd_sink_patch(enc->sink, 512, hdr, sizeof(hdr), err)) < 0)
        return r;
    size_t bat_bytes = (size_t)(div_round_up(entries * 4, 512) * 512);
    uint8_t *bat = malloc(bat_bytes);
    if (!bat)
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory", enc->base);
    memset(bat, 0xff, bat_bytes);
    for (uint64_t i = 0; i < entries; i++)
        put_be32(bat + 4 * i, h->bat[i]);
    r = vd_sink_patch(enc->sink, VHD_HEAD_FIXED, bat, bat_bytes, err);
    free(bat);
    return r;
}

static void vhd_free(struct vd_encoder *enc)
{
    struct vhd_enc *h = enc->priv;
    free(h->bat);
}

const struct vd_encoder_ops vd_encoder_vhd = {
    .name = "vhd",
    .priv_size = sizeof(struct vhd_enc),
    .max_size = VHD_MAX_SIZE,
    .patches_head = true,
    .begin = vhd_begin,
    .chunk = vhd_chunk,
    .finish = vhd_finish,
    .free = vhd_free,
};

/* target=azure: the same encoder (export.c makes it fixed) with Azure's
 * ceiling instead of Hyper-V's 2040 GiB, which only the BAT of a dynamic
 * disk imposes. */
const struct vd_encoder_ops vd_encoder_vhd_azure = {
    .name = "vhd",
    .priv_size = sizeof(struct vhd_enc),
    .max_size = VHD_AZURE_MAX_SIZE,
    .patches_head = true,
    .begin = vhd_begin,
    .chunk = vhd_chunk,
    .finish = vhd_finish,
    .free = vhd_free,
};
