/*
 * Fuzz the VHD driver on a memory io: footer selection (end of file, copy at
 * offset 0, 511-byte footers), dynamic header, BAT, bitmaps; then reads at a
 * few offsets, a block-status walk, info JSON and check. Also feeds the input
 * to the (buf, len) parsers directly.
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
    }
    uint64_t off = 0;
    for (int i = 0; i < 256 && off < vsize; i++) {
        uint64_t pnum = 0;
        vd_err_clear(&err);
        if (vd_image_block_status(img, off, vsize - off, &pnum, &err) < 0)
            break;
        off += pnum;
    }
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
    return 0;
}
