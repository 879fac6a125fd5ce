/*
 * Fuzz the VHDX driver on whole images held in memory. A VHDX file is at
 * least a few MiB of mostly zeros, so the input is a sparse description:
 *
 *   u32 le file_size (capped at 16 MiB)
 *   { u32 le offset, u16 le length, length bytes }...   written over zeros
 *
 * (tests/data/gen-vhdx.py fuzzseeds turns real images into this form.) The
 * harness opens the image as vhdx read-only, builds the info JSON, and
 * asserts the invariants of tests/fuzz/invariants.h, not only "no crash":
 *   I1  every map answer the core accepts lies inside its io and outside
 *       the declared metadata (walked from the start, and on every read);
 *   I2  when check calls the image clean, no answer is refused;
 *   I3  vd_image_pread equals the bytes assembled from the answers (start,
 *       end, an unaligned range and one the input picks).
 * It also walks block status and reads the start and end of the disk. Then,
 * when check does not call it corrupt, the same bytes are opened writable
 * in a memfd (I4): a pattern written at three places reads back, while
 * open and after reopening the file read-only; and of the bytes declared
 * as metadata only the two headers, the log, and BAT entries turned
 * FULLY_PRESENT at a new block past the old end of file may change.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/json.h"
#include "core/driver.h"
#include "io/mem.h"
#include "invariants.h"

#define FUZZ_MAX_FILE (16u << 20)
#define NWRITES       3

struct fuzz_write {
    uint64_t off;
    size_t len;
    bool ok;
};

static void fuzz_pattern(uint8_t *p, size_t n, unsigned k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + k * 7 + 1) | 1; /* never zero: always allocates */
}

/* Read [off, off+n) of fd (zeros past its end). */
static void fuzz_pread_fd(int fd, uint8_t *buf, size_t n, uint64_t off)
{
    memset(buf, 0, n);
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
        if (r <= 0)
            break;
        done += (size_t)r;
    }
}

/* I4 on the metadata of one range: byte-identical, except the headers and
 * the log (rewritten by every update) and BAT entries that became
 * FULLY_PRESENT at or past the old end of file. Compared a 4 KiB page at a
 * time with memcmp: a byte loop is most of a run under the fuzzer's
 * instrumentation. */
static void fuzz_check_meta(const struct vd_meta_range *r, const uint8_t *a, const uint8_t *b,
                            size_t n, uint64_t old_size)
{
    if (!strcmp(r->what, "log"))
        return;
    for (size_t pg = 0; pg < n; pg += 4096) {
        size_t pn = n - pg < 4096 ? n - pg : 4096;
        uint64_t off = r->off + pg;
        if (!memcmp(a + pg, b + pg, pn))
            continue;
        if (!strcmp(r->what, "header area")) {
            /* the two headers are 4 KiB, 4 KiB aligned */
            INV_ASSERT(off % 4096 == 0 && (off == 64 * 1024 || off == 128 * 1024));
            continue;
        }
        INV_ASSERT(!strcmp(r->what, "BAT region"));
        for (size_t e = pg; e < pg + pn; e += 8) {
            INV_ASSERT(e + 8 <= n);
            uint64_t was = le64(a + e), now = le64(b + e);
            if (was == now)
                continue;
            INV_ASSERT((was & 7) != 6 && (now & 7) == 6);
            INV_ASSERT((now & ~(uint64_t)0xfffff) >= old_size);
        }
    }
}

static void fuzz_writable(const uint8_t *file, size_t fsize, const uint8_t *data, size_t size)
{
    static int mfd = -1;
    char path[64];
    if (mfd < 0 && (mfd = memfd_create("fuzz_vhdx", 0)) < 0)
        return;
    if (ftruncate(mfd, 0) != 0 || pwrite(mfd, file, fsize, 0) != (ssize_t)fsize)
        return;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_error err = {0};
    struct vd_open_opts o = {.format = "vhdx", .writable = true};
    if (vd_io_file_open(path, true, &io, &err) < 0 ||
        vd_image_open_io(io, "fuzz.vhdx", &o, 0, &img, &err) < 0)
        return;
    /* The open may have replayed a dirty log into the file: snapshot now. */
    uint64_t old_size = img->io->size;
    size_t nmeta = img->nmeta, total = 0;
    struct vd_meta_range *meta = malloc((nmeta ? nmeta : 1) * sizeof(*meta));
    for (size_t i = 0; meta && i < nmeta; i++) {
        meta[i] = img->meta[i];
        INV_ASSERT(meta[i].io == img->io); /* writable: no replayed view */
        meta[i].len = meta[i].off < old_size ? VD_MIN(meta[i].len, old_size - meta[i].off) : 0;
        total += (size_t)meta[i].len;
    }
    uint8_t *before = malloc(total ? total : 1), *after = malloc(total ? total : 1);
    for (size_t i = 0, p = 0; before && meta && i < nmeta; p += meta[i].len, i++)
        fuzz_pread_fd(mfd, before + p, (size_t)meta[i].len, meta[i].off);

    struct fuzz_write w[NWRITES];
    uint64_t pick = size >= 8 ? le32(data + size - 4) : 0;
    w[0] = (struct fuzz_write){0, 512, false};
    w[1] = (struct fuzz_write){img->size > 1000 ? img->size - 1000 : 0, 1000, false};
    w[2] = (struct fuzz_write){pick % img->size, 4096 + 17, false};
    uint8_t *buf = malloc(8192), *back = malloc(8192);
    for (unsigned k = 0; buf && back && k < NWRITES; k++) {
        w[k].len = (size_t)VD_MIN((uint64_t)w[k].len, img->size - w[k].off);
        fuzz_pattern(buf, w[k].len, k);
        vd_err_clear(&err);
        w[k].ok = vd_image_pwrite(img, buf, w[k].len, w[k].off, &err) == 0;
        if (!w[k].ok)
            INV_ASSERT(err.code != 0 && err.msg[0]);
    }
    for (unsigned k = 0; buf && back && k < NWRITES; k++) {
        /* A later write may overlap an earlier one: compare the last. */
        bool later = false;
        for (unsigned j = k + 1; j < NWRITES; j++)
            later |= w[j].off < w[k].off + w[k].len && w[k].off < w[j].off + w[j].len;
        if (!w[k].ok || later)
            continue;
        fuzz_pattern(buf, w[k].len, k);
        vd_err_clear(&err);
        INV_ASSERT(vd_image_pread(img, back, w[k].len, w[k].off, &err) == 0);
        INV_ASSERT(memcmp(buf, back, w[k].len) == 0);
        inv_compare_read(img, w[k].off, w[k].len);
    }
    inv_walk(img, 0, 256);
    vd_image_close(img);

    for (size_t i = 0, p = 0; before && after && meta && i < nmeta; p += meta[i].len, i++) {
        fuzz_pread_fd(mfd, after + p, (size_t)meta[i].len, meta[i].off);
        fuzz_check_meta(&meta[i], before + p, after + p, (size_t)meta[i].len, old_size);
    }
    /* What we wrote is accepted again, and reads back. */
    o.writable = false;
    img = NULL;
    vd_err_clear(&err);
    INV_ASSERT(vd_io_file_open(path, false, &io, &err) == 0);
    INV_ASSERT(vd_image_open_io(io, "fuzz.vhdx", &o, 0, &img, &err) == 0);
    for (unsigned k = 0; buf && back && k < NWRITES; k++) {
        bool later = false;
        for (unsigned j = k + 1; j < NWRITES; j++)
            later |= w[j].off < w[k].off + w[k].len && w[k].off < w[j].off + w[j].len;
        if (!w[k].ok || later)
            continue;
        fuzz_pattern(buf, w[k].len, k);
        INV_ASSERT(vd_image_pread(img, back, w[k].len, w[k].off, &err) == 0);
        INV_ASSERT(memcmp(buf, back, w[k].len) == 0);
    }
    vd_image_close(img);
    free(buf);
    free(back);
    free(before);
    free(after);
    free(meta);
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
    if (vd_image_open_io(io, "fuzz.vhdx", &o, 0, &img, &err) < 0) {
        INV_ASSERT(err.code != 0 && err.msg[0]);
        goto out;
    }
    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    if (img->ops->info)
        img->ops->info(img, &j);
    vd_json_obj_end(&j);
    free(vd_json_finish(&j));

    int verdict = inv_check_clean(img, 4096); /* I2, and I1 on the walk */
    inv_walk(img, 0, 256);                    /* I1 */
    inv_compare_read(img, 0, 65536);          /* I3 */
    inv_compare_read(img, img->size > 70000 ? img->size - 70000 : 0, 70000);
    inv_compare_read(img, 999, 200000);
    if (size >= 8)
        inv_compare_read(img, le32(data + size - 8) % img->size, 4096 * 3 + 5);

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
    free(buf);
    bool diff = img->backing != NULL || (img->subformat && !strcmp(img->subformat, "differencing"));
    vd_image_close(img);
    img = NULL;
    /* I4 where a writable open is allowed (not corrupt, no parent). */
    if (verdict != VD_CHECK_CORRUPT && verdict >= 0 && !diff)
        fuzz_writable(file, fsize, data, size);
out:
    vd_image_close(img);
    return 0;
}
