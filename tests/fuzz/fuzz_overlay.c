/*
 * Fuzz overlay files (src/formats/overlay.c). A valid version 2 overlay is
 * built once over a 2.5 MiB base file (one L2 unit of blocks:
 * partial writes, whose digest slots hold the copied bytes' digest, and a
 * whole-block write). Each input is a list of 4-byte edits (le24 offset
 * into the file, xor byte) applied to a copy, after which the header's
 * checksum and those of the source records are recomputed, so that most
 * inputs reach the fields behind them. The result is opened and attached
 * to a memory copy of the base: a source without an identity, so every
 * attach reads back the held blocks and their digest slots. Then it is
 * read whole, block-status walked, written, read back, flushed, and opened
 * and attached again. Invariants, not only "no crash":
 *   - a write that succeeded reads back as written, before and after the
 *     flush and a reopen;
 *   - a file the first open and attach accepted, and that our own write and
 *     flush then changed, is accepted again (we never write what we refuse).
 * The input's first bytes also go to vd_overlay_check_header as a raw
 * header.
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
#define WRITE_OFF 65000u
#define WRITE_LEN 70000u

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
    struct vd_image *base = NULL, *v = NULL;
    struct vd_source *src = NULL;
    struct vd_open_opts o = {.format = "raw"};
    char base_path[64];
    for (size_t i = 0; i < sizeof(base_bytes); i++)
        base_bytes[i] = (uint8_t)(i * 31 + (i >> 12));
    /* A local file, so that the record is a full "local file" one. */
    /* tmpfs when there is one: every flush syncs, which a disk makes slow. */
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(base_path, sizeof(base_path), "%s/fuzz_overlay_base.%d", dir, (int)getpid());
    snprintf(path, sizeof(path), "%s/fuzz_overlay.%d", dir, (int)getpid());
    FILE *f = fopen(base_path, "wb");
    if (!f || fwrite(base_bytes, 1, sizeof(base_bytes), f) != sizeof(base_bytes))
        abort();
    fclose(f);
    unlink(path);
    if (vd_source_open(base_path, &o, &src, NULL) < 0 || vd_overlay_open(path, &ov, NULL) < 0)
        abort();
    base = vd_source_disk(src, 0);
    if (vd_overlay_attach(ov, base, "f/disk", &v, NULL) < 0)
        abort();
    uint8_t buf[65536];
    memset(buf, 0xa5, sizeof(buf));
    for (uint64_t off = 1000; off + 5000 < BASE_SIZE; off += 300000)
        vd_image_pwrite(v, buf, 5000, off, NULL);
    vd_image_pwrite(v, buf, sizeof(buf), 65536 * 20, NULL); /* a whole block */
    vd_overlay_detach(v);
    vd_overlay_close(ov, NULL);
    vd_source_close(src);
    unlink(base_path);
    f = fopen(path, "rb");
    if (!f)
        abort();
    fseek(f, 0, SEEK_END);
    good_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    good = malloc(good_len);
    if (!good || fread(good, 1, good_len, f) != good_len || good_len < VD_OVERLAY_HEADER)
        abort();
    fclose(f);
}

static void fix_crcs(uint8_t *file, size_t len)
{
    if (len < VD_OVERLAY_HEADER)
        return;
    uint32_t n = le32(file + 16);
    for (uint32_t i = 0; i < n && i < 31; i++) {
        uint8_t *rec = file + 4096 + 512 * i;
        put_le32(rec, 0);
        put_le32(rec, vd_crc32c(0, rec, 512));
    }
    put_le32(file + 20, 0);
    put_le32(file + 20, vd_crc32c(0, file, 4096));
}

/* Open path and attach the memory base; NULL view when refused. */
static struct vd_image *attach(struct vd_overlay **ov, struct vd_image *base)
{
    struct vd_image *v = NULL;
    *ov = NULL;
    if (vd_overlay_open(path, ov, NULL) < 0)
        return NULL;
    if (vd_overlay_attach(*ov, base, "f/disk", &v, NULL) < 0)
        return NULL;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[BASE_SIZE], back[WRITE_LEN];
    if (!good)
        build_good();
    if (size >= 64) {
        uint8_t *h = calloc(1, VD_OVERLAY_HEADER);
        if (h) {
            memcpy(h, data, size < VD_OVERLAY_HEADER ? size : VD_OVERLAY_HEADER);
            vd_overlay_check_header(h, VD_OVERLAY_HEADER, size * 4096, NULL);
            free(h);
        }
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
    if (size % 8 != 5) /* and sometimes bad checksums */
        fix_crcs(file, good_len);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        (void)!write(fd, file, len);
        close(fd);
    }
    free(file);

    struct vd_overlay *ov = NULL;
    struct vd_image *base = open_base(), *v = NULL;
    if (base && (v = attach(&ov, base))) {
        vd_image_pread(v, buf, sizeof(buf), 0, NULL);
        uint64_t n;
        for (uint64_t off = 0; off < BASE_SIZE; off += n) {
            struct vd_error err = {0};
            if (vd_image_block_status(v, off, BASE_SIZE - off, &n, &err) < 0 || n == 0)
                break;
        }
        for (size_t i = 0; i < WRITE_LEN; i++)
            buf[i] = (uint8_t)(i * 7 + size);
        bool wrote = vd_image_pwrite(v, buf, WRITE_LEN, WRITE_OFF, NULL) == 0;
        if (wrote && (vd_image_pread(v, back, WRITE_LEN, WRITE_OFF, NULL) != 0 ||
                      memcmp(back, buf, WRITE_LEN) != 0))
            abort(); /* a write that succeeded does not read back */
        bool flushed = vd_image_flush(v, NULL) == 0;
        vd_overlay_detach(v);
        flushed = vd_overlay_close(ov, NULL) == 0 && flushed;
        ov = NULL;
        if (wrote && flushed) {
            /* What we wrote ourselves must open again, with the write. */
            v = attach(&ov, base);
            if (!v || vd_image_pread(v, back, WRITE_LEN, WRITE_OFF, NULL) != 0 ||
                memcmp(back, buf, WRITE_LEN) != 0)
                abort();
            vd_overlay_detach(v);
        }
    }
    vd_overlay_close(ov, NULL);
    vd_image_close(base);
    unlink(path);
    return 0;
}
