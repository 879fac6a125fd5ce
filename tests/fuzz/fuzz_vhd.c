/*
 * Fuzz the VHD driver on a memory io: footer selection (end of file, copy at
 * offset 0, 511-byte footers), dynamic header, BAT, bitmaps, then the
 * semantic invariants of tests/fuzz/invariants.h: every map answer lies
 * inside the file and outside declared metadata (I1), a clean check means
 * nothing is refused (I2), pread equals the bytes assembled from the
 * answers (I3), and on a writable copy, a write reads back, changes nothing
 * else, and leaves the declared metadata alone except the BAT entries of
 * the blocks it allocated (I4). Also feeds the input to the (buf, len)
 * parsers directly.
 *
 * Chains: the input is also read as "VDCH" + le32 child length + child +
 * parent. The child sits on a small io whose open_relative opens the parent
 * bytes (whatever name a locator gives), so differencing reads, sector
 * bitmaps and parent checks are fuzzed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/json.h"
#include "core/driver.h"
#include "formats/vhd.h"
#include "invariants.h"
#include "io/mem.h"

static void fuzz_check_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)opaque;
    (void)corrupt;
    (void)msg;
}

/* A child io: reads from a memory io, opens "relatives" as the parent. */
struct chain_io {
    struct vd_io io;
    struct vd_io *inner;
    const uint8_t *parent;
    size_t parent_len;
};

static ssize_t chain_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                           struct vd_error *err)
{
    struct vd_io *in = ((struct chain_io *)io)->inner;
    return in->ops->pread(in, buf, len, off, err);
}

static int chain_open_relative(struct vd_io *io, const char *rel, bool writable, struct vd_io **out,
                               struct vd_error *err)
{
    struct chain_io *c = (struct chain_io *)io;
    (void)writable;
    return vd_io_mem_open(c->parent, c->parent_len, rel, out, err);
}

static void chain_close(struct vd_io *io)
{
    vd_io_unref(((struct chain_io *)io)->inner);
    free(io);
}

static const struct vd_io_ops chain_ops = {
    .name = "fuzz-chain",
    .pread = chain_pread,
    .open_relative = chain_open_relative,
    .close = chain_close,
};

/* A writable memory io that grows (zero-filled) up to GROW_MAX bytes. */
#define GROW_MAX (16u << 20)
struct grow_io {
    struct vd_io io;
    uint8_t *buf;
};

static ssize_t grow_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    (void)err;
    if (off >= io->size)
        return 0;
    if (len > io->size - off)
        len = (size_t)(io->size - off);
    memcpy(buf, ((struct grow_io *)io)->buf + off, len);
    return (ssize_t)len;
}

static ssize_t grow_pwrite(struct vd_io *io, const void *buf, size_t len, uint64_t off,
                           struct vd_error *err)
{
    struct grow_io *g = (struct grow_io *)io;
    if (off > GROW_MAX || len > GROW_MAX - off)
        return vd_err(err, -ENOSPC, "grow: write past %u bytes", GROW_MAX);
    if (off + len > io->size) {
        uint8_t *n = realloc(g->buf, (size_t)(off + len));
        if (!n)
            return vd_err(err, -ENOMEM, "grow: out of memory");
        memset(n + io->size, 0, (size_t)(off + len - io->size));
        g->buf = n;
        io->size = off + len;
    }
    memcpy(g->buf + off, buf, len);
    return (ssize_t)len;
}

static void grow_close(struct vd_io *io)
{
    free(((struct grow_io *)io)->buf);
    free(io);
}

static const struct vd_io_ops grow_ops = {
    .name = "fuzz-grow",
    .pread = grow_pread,
    .pwrite = grow_pwrite,
    .close = grow_close,
};

static void exercise(struct vd_image *img)
{
    struct vd_error err = {0};
    static uint8_t buf[65536];
    uint64_t vsize = vd_image_size(img);
    uint64_t offs[] = {0, 511, 4096, 1 << 20, 2 << 20, vsize / 2, vsize - 1};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        if (offs[i] >= vsize)
            continue;
        size_t n = (size_t)(vsize - offs[i] < sizeof(buf) ? vsize - offs[i] : sizeof(buf));
        vd_err_clear(&err);
        (void)vd_image_pread(img, buf, n, offs[i], &err);
        inv_compare_read(img, offs[i], n < 8192 ? n : 8192); /* I3 */
    }
    uint64_t off = 0;
    for (int i = 0; i < 256 && off < vsize; i++) {
        uint64_t pnum = 0;
        vd_err_clear(&err);
        if (vd_image_block_status(img, off, vsize - off, &pnum, &err) < 0)
            break;
        off += pnum;
    }
    (void)inv_walk(img, 0, 256); /* I1 */
    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    if (img->ops->info)
        img->ops->info(img, &j);
    vd_json_obj_end(&j);
    free(vd_json_finish(&j));
    (void)vd_image_allocated(img);
    for (struct vd_image *b = img; b; b = b->backing)
        if (b->ops->check)
            (void)b->ops->check(b, fuzz_check_cb, NULL, &err);
    (void)inv_check_clean(img, 256); /* I2 */
}

static void fuzz_chain(const uint8_t *data, size_t size)
{
    if (size < 8 || memcmp(data, "VDCH", 4) != 0)
        return;
    size_t clen = le32(data + 4);
    if (clen > size - 8)
        return;
    struct vd_error err = {0};
    struct vd_io *inner;
    if (vd_io_mem_open(data + 8, clen, "child.vhd", &inner, &err) < 0)
        return;
    struct chain_io *c = calloc(1, sizeof(*c));
    if (!c || vd_io_init(&c->io, &chain_ops, "child.vhd", clen) < 0) {
        vd_io_unref(inner);
        free(c);
        return;
    }
    c->inner = inner;
    c->parent = data + 8 + clen;
    c->parent_len = size - 8 - clen;
    struct vd_image *img = NULL;
    struct vd_open_opts opts = {.format = "vhd"};
    if (vd_image_open_io(&c->io, "child.vhd", &opts, 0, &img, &err) < 0)
        return;
    exercise(img);
    vd_image_close(img);
}

/* The BAT of a dynamic disk as the writable open sees it (the footer at the
 * end is sound there: damaged disks are refused for writing). */
static bool bat_location(const uint8_t *data, size_t size, uint64_t *table, uint32_t *block)
{
    struct vhd_footer f;
    struct vhd_dyn_header *h = malloc(sizeof(*h));
    bool ok = false;
    if (!h || size < VHD_FOOTER_SIZE)
        goto out;
    if (vd_vhd_parse_footer(data + size - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE, "", &f, NULL) < 0 &&
        vd_vhd_parse_footer(data + size - (VHD_FOOTER_SIZE - 1), VHD_FOOTER_SIZE - 1, "", &f,
                            NULL) < 0)
        goto out;
    if (f.disk_type != VHD_DYNAMIC || f.data_offset > size ||
        size - f.data_offset < VHD_DYN_HEADER_SIZE ||
        vd_vhd_parse_dyn_header(data + f.data_offset, VHD_DYN_HEADER_SIZE, "", h, NULL) < 0)
        goto out;
    *table = h->table_offset;
    *block = h->block_size;
    ok = true;
out:
    free(h);
    return ok;
}

/* I4 on a writable copy of the input: each write reads back, the bytes
 * around it do not change, and no declared metadata byte changes except
 * the BAT entries of the blocks written. */
static void fuzz_write(const uint8_t *data, size_t size)
{
    struct vd_error err = {0};
    struct grow_io *g = calloc(1, sizeof(*g));
    if (!g || size == 0 || vd_io_init(&g->io, &grow_ops, "w.vhd", size) < 0) {
        free(g);
        return;
    }
    g->io.writable = true;
    g->buf = malloc(size);
    if (!g->buf) {
        vd_io_unref(&g->io);
        return;
    }
    memcpy(g->buf, data, size);
    struct vd_image *img = NULL;
    struct vd_open_opts opts = {.format = "vhd", .writable = true};
    if (vd_image_open_io(&g->io, "w.vhd", &opts, 0, &img, &err) < 0)
        return;
    INV_ASSERT(vd_image_can_write(img));
    uint64_t table = 0;
    uint32_t block = 0;
    bool dynamic = bat_location(data, size, &table, &block);

    /* Snapshot the declared metadata of the file as it is. */
    size_t nm = img->nmeta, snap_len = 0;
    struct vd_meta_range *ranges = malloc((nm ? nm : 1) * sizeof(*ranges));
    uint8_t *snap = inv_meta_snapshot(img, img->io, g->buf, size, &snap_len);
    if (!ranges || !snap)
        goto out;
    memcpy(ranges, img->meta, nm * sizeof(*ranges));

    uint64_t vsize = img->size;
    uint64_t offs[] = {0, vsize / 2 + 7, vsize > 700 ? vsize - 700 : 0};
    size_t lens[] = {4096, 1000, 700};
    uint64_t first[3], last[3]; /* blocks each write touched */
    size_t ntouched = 0;
    for (size_t i = 0; i < 3; i++) {
        uint64_t off = offs[i];
        size_t n = lens[i];
        if (off >= vsize)
            continue;
        if (n > vsize - off)
            n = (size_t)(vsize - off);
        /* the window: the write and up to 4 KiB around it */
        uint64_t w0 = off > 4096 ? off - 4096 : 0;
        size_t wn = (size_t)((off + n + 4096 < vsize ? off + n + 4096 : vsize) - w0);
        uint8_t *before = malloc(wn), *after = malloc(wn), *pat = malloc(n);
        if (!before || !after || !pat) {
            free(before);
            free(after);
            free(pat);
            break;
        }
        for (size_t k = 0; k < n; k++)
            pat[k] = (uint8_t)(0x5a ^ (k * 7) ^ i);
        vd_err_clear(&err);
        bool have_before = vd_image_pread(img, before, wn, w0, &err) == 0;
        vd_err_clear(&err);
        int r = vd_image_pwrite(img, pat, n, off, &err);
        /* a checked-clean image takes every write, or runs out of room */
        INV_ASSERT(r == 0 || r == -ENOSPC || r == -EFBIG || r == -ENOMEM);
        if (r == 0) {
            if (dynamic) {
                first[ntouched] = off / block;
                last[ntouched++] = (off + n - 1) / block;
            }
            vd_err_clear(&err);
            INV_ASSERT(vd_image_pread(img, after, wn, w0, &err) == 0);
            if (have_before)
                memcpy(before + (off - w0), pat, n);
            INV_ASSERT(memcmp(after + (off - w0), pat, n) == 0);
            if (have_before)
                INV_ASSERT(memcmp(before, after, wn) == 0);
        }
        free(before);
        free(after);
        free(pat);
        inv_compare_read(img, off, n);
    }

    /* Bytes of the metadata declared before the writes that are still
     * declared must be unchanged, except the BAT entries written. */
    const uint8_t *p = snap;
    for (size_t i = 0; i < nm; i++) {
        const struct vd_meta_range *r = &ranges[i];
        if (r->io != img->io || r->off >= size)
            continue;
        uint64_t n = r->off + r->len > size ? size - r->off : r->len;
        for (uint64_t b = r->off; b < r->off + n; b++, p++) {
            if (!vd_image_meta_overlap(img, img->io, b, 1))
                continue; /* moved (the footer) */
            bool entry = false;
            for (size_t t = 0; t < ntouched; t++)
                if (b >= table && (b - table) / 4 >= first[t] && (b - table) / 4 <= last[t])
                    entry = true;
            if (!entry)
                INV_ASSERT(g->buf[b] == *p);
        }
    }
    {
        struct inv_check_count c = {0};
        vd_err_clear(&err);
        INV_ASSERT(img->ops->check(img, inv_check_cb, &c, &err) != VD_CHECK_CORRUPT);
    }
out:
    free(ranges);
    free(snap);
    vd_image_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vd_error err = {0};
    struct vhd_footer f;
    struct vhd_dyn_header *h = malloc(sizeof(*h));
    if (!h)
        return 0;
    (void)vd_vhd_parse_footer(data, size, "fuzz.vhd", &f, &err);
    (void)vd_vhd_parse_dyn_header(data, size, "fuzz.vhd", h, &err);
    free(h);
    fuzz_chain(data, size);

    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_open_opts opts = {.format = "vhd"};
    if (vd_io_mem_open(data, size, "fuzz.vhd", &io, &err) < 0)
        return 0;
    if (vd_image_open_io(io, "fuzz.vhd", &opts, 0, &img, &err) < 0)
        return 0;
    exercise(img);
    vd_image_close(img);
    fuzz_write(data, size);
    return 0;
}
