/*
 * Fuzz the VHD driver on a memory io: footer selection (end of file, copy at
 * offset 0, 511-byte footers), dynamic header, BAT, bitmaps; then reads at a
 * few offsets, a block-status walk, info JSON and check. Differencing disks
 * stop at the parent (a memory io cannot open files beside it). Also feeds
 * the input to the (buf, len) parsers directly.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/json.h"
#include "formats/format.h"
#include "formats/vhd.h"
#include "io/mem.h"

static void fuzz_check_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)opaque;
    (void)corrupt;
    (void)msg;
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

    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_open_opts opts = {.format = "vhd"};
    if (vd_io_mem_open(data, size, "fuzz.vhd", &io, &err) < 0)
        return 0;
    if (vd_image_open_io(io, "fuzz.vhd", &opts, 0, &img, &err) < 0)
        return 0;
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
    if (img->ops->check)
        (void)img->ops->check(img, fuzz_check_cb, NULL, &err);
    vd_image_close(img);
    return 0;
}
