/*
 * libFuzzer target: a whole VMDK image from memory (sparse or stream
 * extent with embedded descriptor; descriptor files fail cleanly as the
 * memory io cannot open extents). Opens, reads the first and last MiB and a
 * few grains, walks block_status, runs check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "core/driver.h"
#include "io/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)opaque;
    (void)corrupt;
    (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vd_error err = {0};
    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_open_opts opts = {.format = "vmdk"};
    if (vd_io_mem_open(data, size, "fuzz.vmdk", &io, &err) < 0)
        return 0;
    if (vd_image_open_io(io, "fuzz.vmdk", &opts, 0, &img, &err) < 0) {
        if (err.code == 0)
            __builtin_trap();
        return 0;
    }
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    uint64_t vsize = vd_image_size(img);
    uint64_t offs[] = {0, vsize > CHUNK ? vsize - CHUNK : 0, vsize / 2, vsize / 3};
    for (size_t i = 0; buf && i < sizeof(offs) / sizeof(offs[0]); i++) {
        size_t n = (size_t)(vsize - offs[i] < CHUNK ? vsize - offs[i] : CHUNK);
        vd_err_clear(&err);
        if (n)
            (void)vd_image_pread(img, buf, n, offs[i], &err);
    }
    uint64_t off = 0;
    for (int i = 0; i < 64 && off < vsize; i++) {
        uint64_t pnum = 0;
        vd_err_clear(&err);
        if (vd_image_block_status(img, off, vsize - off, &pnum, &err) < 0 || pnum == 0)
            break;
        off += pnum;
    }
    vd_err_clear(&err);
    if (img->ops->check)
        (void)img->ops->check(img, fuzz_check_cb, NULL, &err);
    (void)vd_image_allocated(img);
    if (img->ops->info) {
        struct vd_json j;
        vd_json_init(&j);
        vd_json_obj_begin(&j, NULL);
        img->ops->info(img, &j);
        vd_json_obj_end(&j);
        free(vd_json_finish(&j));
    }
    free(buf);
    vd_image_close(img);
    return 0;
}
