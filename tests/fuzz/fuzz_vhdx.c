/*
 * Fuzz the VHDX driver on whole images held in memory. A VHDX file is at
 * least a few MiB of mostly zeros, so the input is a sparse description:
 *
 *   u32 le file_size (capped at 16 MiB)
 *   { u32 le offset, u16 le length, length bytes }...   written over zeros
 *
 * (tests/data/gen-vhdx.py fuzzseeds turns real images into this form.) The
 * harness opens the image as vhdx, builds the info JSON, runs check, walks
 * block status and reads the start and end of the virtual disk.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/json.h"
#include "core/driver.h"
#include "io/mem.h"

#define FUZZ_MAX_FILE (16u << 20)

static void fuzz_check_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)opaque;
    (void)corrupt;
    (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t fsize = le32(data);
    if (fsize > FUZZ_MAX_FILE)
        fsize = FUZZ_MAX_FILE;
    /* One buffer for all runs: a fresh 16 MiB calloc per run is most of the
     * time under ASan. */
    static uint8_t *file;
    if (!file && !(file = malloc(FUZZ_MAX_FILE)))
        return 0;
    memset(file, 0, fsize);
    size_t p = 4;
    while (p + 6 <= size) {
        uint32_t off = le32(data + p);
        uint16_t len = le16(data + p + 4);
        p += 6;
        if (len > size - p)
            len = (uint16_t)(size - p);
        if (off < fsize) {
            size_t n = len < fsize - off ? len : fsize - off;
            memcpy(file + off, data + p, n);
        }
        p += len;
    }

    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_error err = {0};
    struct vd_open_opts o = {.format = "vhdx"};
    if (vd_io_mem_open(file, fsize, "fuzz.vhdx", &io, &err) < 0)
        goto out;
    if (vd_image_open_io(io, "fuzz.vhdx", &o, 0, &img, &err) < 0)
        goto out;
    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    if (img->ops->info)
        img->ops->info(img, &j);
    vd_json_obj_end(&j);
    free(vd_json_finish(&j));
    img->ops->check(img, fuzz_check_cb, NULL, &err);

    uint64_t off = 0;
    for (int i = 0; i < 256 && off < img->size; i++) {
        uint64_t n = 0;
        vd_err_clear(&err);
        if (vd_image_block_status(img, off, img->size - off, &n, &err) < 0)
            break;
        off += n;
    }
    enum { CH = 65536 };
    uint8_t *buf = malloc(CH);
    uint64_t starts[2] = {0, img->size > (1u << 20) ? img->size - (1u << 20) : 0};
    for (int s = 0; buf && s < 2; s++) {
        for (uint64_t a = starts[s]; a < img->size && a < starts[s] + (1u << 20); a += CH) {
            size_t n = (size_t)(img->size - a < CH ? img->size - a : CH);
            vd_err_clear(&err);
            vd_image_pread(img, buf, n, a, &err);
        }
    }
    /* An unaligned read across blocks. */
    if (buf && img->size > 1000)
        vd_image_pread(img, buf, img->size - 999 < CH ? (size_t)(img->size - 999) : CH, 999, &err);
    free(buf);
out:
    vd_image_close(img);
    return 0;
}
