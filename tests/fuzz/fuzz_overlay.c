/*
 * Fuzz overlay files (src/formats/overlay.c). A valid overlay is built once
 * over a 2.5 MiB memory base (two L2 tables' worth of blocks written); each
 * input is a list of 4-byte edits (le24 offset into the file, xor byte)
 * applied to a copy, after which the header checksum is recomputed so that
 * most inputs get past it to the tables. The result is opened, attached,
 * read whole, block-status walked, written and flushed. The first 64 bytes
 * of the input also go to vd_overlay_check_header as a raw header.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/crc32c.h"
#include "core/driver.h"
#include "io/mem.h"
#include "vdisk/overlay.h"

#define BASE_SIZE ((5u << 19) + 777u)

static uint8_t base_bytes[BASE_SIZE];
static uint8_t *good;
static size_t good_len;
static char path[64];

static struct vd_image *open_base(void)
{
    struct vd_io *io = NULL;
    struct vd_image *img = NULL;
    struct vd_open_opts o = {.format = "raw"};
    if (vd_io_mem_open(base_bytes, sizeof(base_bytes), "base", &io, NULL) < 0)
        return NULL;
    if (vd_image_open_io(io, "base", &o, 0, &img, NULL) < 0)
        return NULL;
    return img;
}

static void build_good(void)
{
    struct vd_overlay *ov = NULL;
    struct vd_image *base, *v = NULL;
    for (size_t i = 0; i < sizeof(base_bytes); i++)
        base_bytes[i] = (uint8_t)(i * 31 + (i >> 12));
    base = open_base();
    snprintf(path, sizeof(path), "/tmp/fuzz_overlay.%d", (int)getpid());
    unlink(path);
    if (!base || vd_overlay_open(path, &ov, NULL) < 0)
        abort();
    if (vd_overlay_attach(ov, base, "f/disk", &v, NULL) < 0)
        abort();
    uint8_t buf[5000];
    memset(buf, 0xa5, sizeof(buf));
    for (uint64_t off = 1000; off + sizeof(buf) < BASE_SIZE; off += 300000)
        vd_image_pwrite(v, buf, sizeof(buf), off, NULL);
    vd_overlay_detach(v);
    vd_overlay_close(ov, NULL);
    vd_image_close(base);
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    fseek(f, 0, SEEK_END);
    good_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    good = malloc(good_len);
    if (!good || fread(good, 1, good_len, f) != good_len)
        abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!good)
        build_good();
    if (size >= 64) {
        uint8_t h[VD_OVERLAY_HEADER] = {0};
        memcpy(h, data, 64);
        vd_overlay_check_header(h, sizeof(h), size, NULL);
    }
    uint8_t *file = malloc(good_len);
    if (!file)
        return 0;
    memcpy(file, good, good_len);
    for (size_t i = 0; i + 4 <= size; i += 4) {
        size_t off =
            ((size_t)data[i] | (size_t)data[i + 1] << 8 | (size_t)data[i + 2] << 16) % good_len;
        file[off] ^= data[i + 3];
    }
    size_t len = good_len;
    if (size % 4 == 3) /* also truncations */
        len = good_len - (size_t)data[size - 1] * 4096 % good_len;
    put_le32(file + 20, 0);
    put_le32(file + 20, vd_crc32c(0, file, VD_OVERLAY_HEADER));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        (void)!write(fd, file, len);
        close(fd);
    }
    free(file);

    struct vd_overlay *ov = NULL;
    struct vd_image *base = open_base(), *v = NULL;
    if (base && vd_overlay_open(path, &ov, NULL) == 0) {
        if (vd_overlay_attach(ov, base, "f/disk", &v, NULL) == 0) {
            static uint8_t buf[BASE_SIZE];
            vd_image_pread(v, buf, sizeof(buf), 0, NULL);
            uint64_t n;
            for (uint64_t off = 0; off < BASE_SIZE; off += n) {
                struct vd_error err = {0};
                if (vd_image_block_status(v, off, BASE_SIZE - off, &n, &err) < 0 || n == 0)
                    break;
            }
            vd_image_pwrite(v, buf, 70000, 65000, NULL);
            vd_image_flush(v, NULL);
            vd_overlay_detach(v);
        }
        vd_overlay_close(ov, NULL);
    }
    vd_image_close(base);
    unlink(path);
    return 0;
}
