/*
 * libFuzzer target: a whole VMDK image from memory (sparse or stream
 * extent with embedded descriptor; descriptor files fail cleanly as the
 * memory io cannot open extents). Asserts the semantic invariants of
 * tests/fuzz/invariants.h, not only "no crash":
 *
 *   I1  every accepted map answer lies in its file, outside the metadata
 *       the driver declared (walk of the whole map);
 *   I2  when check calls the image clean, no answer is refused;
 *   I3  pread of a few ranges equals the bytes assembled from the answers
 *       (compressed grains through the driver's decode);
 *   I4  uncompressed sparse images check calls clean are copied to a file
 *       and opened writable: a pattern written at a few offsets reads back,
 *       survives a reopen, other ranges read as before, and no byte of the
 *       original metadata changes except grain directory and grain table
 *       entries and the descriptor's CID.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/json.h"
#include "core/driver.h"
#include "invariants.h"
#include "io/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_WRITE_FILE (8u << 20) /* I4 only on inputs up to this size */

static void fuzz_check_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)opaque;
    (void)corrupt;
    (void)msg;
}

static char fuzz_dir_path[64];

static void fuzz_dir_remove(void)
{
    rmdir(fuzz_dir_path);
}

/* A private directory for I4's copies: a descriptor inside the image can
 * only name files in it (the copy itself, refused as itself). */
static const char *fuzz_dir(void)
{
    char *dir = fuzz_dir_path;
    if (!dir[0]) {
        snprintf(dir, sizeof(fuzz_dir_path), "%s/fuzz-vmdk.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
            dir[0] = '\0';
        else
            atexit(fuzz_dir_remove);
    }
    return dir[0] ? dir : NULL;
}

static bool fuzz_write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0;
    while (ok && n > 0) {
        ssize_t w = write(fd, p, n);
        ok = w > 0;
        if (ok) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The first max bytes of the file at path (it may have grown past them:
 * only the original image's bytes are compared); *len is its full size. */
static uint8_t *fuzz_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        rewind(f);
        size_t want = n < 0 ? 0 : (size_t)n < max ? (size_t)n : max;
        if (n >= 0 && (b = malloc(want + 1)) && fread(b, 1, want, f) != want) {
            free(b);
            b = NULL;
        }
        *len = n > 0 ? (size_t)n : 0;
    }
    if (f)
        fclose(f);
    return b;
}

/* Mark the bytes of the original image (f, n bytes) that may change when
 * the driver writes: grain directory and grain table entries (it allocates),
 * their redundant copies, and the embedded descriptor from its CID on (the
 * CID is rewritten, and a shorter one moves the text after it). */
static uint8_t *fuzz_may_change(const uint8_t *f, size_t n)
{
    uint8_t *mask = calloc(1, n);
    uint64_t cap = le64(f + 12), gs = le64(f + 20), gtes = le32(f + 44);
    uint64_t dsec = le64(f + 28), dlen = le64(f + 36);
    if (!mask || !gs || !gtes)
        return mask;
    uint64_t ngts = ((cap + gs - 1) / gs + gtes - 1) / gtes;
    uint64_t dirs[2] = {le64(f + 56), le64(f + 48)};
    for (int k = 0; k < 2; k++) {
        uint64_t d = dirs[k];
        if (!d || d >= n / 512 + 1)
            continue;
        for (uint64_t t = 0; t < ngts && d * 512 + t * 4 + 4 <= n; t++) {
            memset(mask + d * 512 + t * 4, 1, 4);
            uint64_t s = le32(f + d * 512 + t * 4) * 512ull;
            if (s && s < n)
                memset(mask + s, 1, (size_t)(n - s < gtes * 4 ? n - s : gtes * 4));
        }
    }
    if (dsec && dlen && dsec <= n / 512 && dlen <= n / 512 + 1 && dsec * 512 < n) {
        const uint8_t *d = f + dsec * 512;
        size_t dn = (size_t)((dsec + dlen) * 512 <= n ? dlen * 512 : n - dsec * 512);
        for (size_t i = 0; i + 4 <= dn; i++)
            if ((i == 0 || d[i - 1] == '\n') && !memcmp(d + i, "CID=", 4)) {
                memset(mask + dsec * 512 + i, 1, dn - i);
                break;
            }
    }
    return mask;
}

static void fuzz_pattern(uint8_t *b, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((seed + i) * 2654435761u >> 13) | 1;
}

/* I4 on a writable copy of the input. */
static void fuzz_write(const uint8_t *data, size_t size, struct vd_image *ro)
{
    const char *dir = fuzz_dir();
    char path[128];
    if (!dir || size > FUZZ_MAX_WRITE_FILE)
        return;
    snprintf(path, sizeof(path), "%s/fuzz.vmdk", dir);
    if (!fuzz_write_file(path, data, size))
        return;
    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_error err = {0};
    struct vd_open_opts o = {.format = "vmdk", .writable = true};
    if (vd_io_file_open(path, true, &io, &err) < 0)
        goto out;
    if (vd_image_open_io(io, "fuzz.vmdk", &o, 0, &img, &err) < 0) {
        INV_ASSERT(err.code != 0);
        goto out;
    }
    uint64_t vs = img->size;
    INV_ASSERT(vs == ro->size);
    enum { W = 70000 }; /* a grain and a bit: crosses a grain boundary */
    uint64_t offs[3] = {0, vs / 2 + 4097, vs > W ? vs - W : 0};
    uint8_t *pat = malloc(W), *back = malloc(W), *before = malloc(W);
    bool wrote[3] = {false, false, false};
    for (int i = 0; pat && back && before && i < 3; i++) {
        size_t n = (size_t)(vs - offs[i] < W ? vs - offs[i] : W);
        if (n == 0)
            continue;
        fuzz_pattern(pat, n, offs[i]);
        vd_err_clear(&err);
        if (vd_image_pwrite(img, pat, n, offs[i], &err) < 0) {
            INV_ASSERT(err.code != 0 && err.msg[0]);
            continue;
        }
        vd_err_clear(&err);
        INV_ASSERT(vd_image_pread(img, back, n, offs[i], &err) == 0);
        INV_ASSERT(memcmp(back, pat, n) == 0);
        wrote[i] = true;
    }
    vd_err_clear(&err);
    (void)vd_image_flush(img, &err);
    vd_image_close(img);
    img = NULL;

    /* The file after the writes: metadata outside the table entries is as
     * it was, and a fresh open reads the patterns. */
    size_t nlen = 0;
    uint8_t *after = fuzz_read_file(path, size, &nlen);
    uint8_t *mask = after ? fuzz_may_change(data, size) : NULL;
    if (after && mask) {
        INV_ASSERT(nlen >= size);
        for (size_t i = 0; i < ro->nmeta; i++) {
            const struct vd_meta_range *m = &ro->meta[i];
            if (m->io != ro->io)
                continue;
            for (uint64_t b = m->off; b < m->off + m->len && b < size; b++)
                INV_ASSERT(after[b] == data[b] || mask[b]);
        }
    }
    free(after);
    free(mask);
    struct vd_open_opts ro_o = {.format = "vmdk"};
    vd_err_clear(&err);
    if (vd_io_file_open(path, false, &io, &err) == 0 &&
        vd_image_open_io(io, "fuzz.vmdk", &ro_o, 0, &img, &err) == 0) {
        for (int i = 0; i < 3; i++) {
            size_t n = (size_t)(vs - offs[i] < W ? vs - offs[i] : W);
            if (!wrote[i] || n == 0)
                continue;
            /* later writes may overlap earlier ones: only the last is checked */
            bool later = false;
            for (int k = i + 1; k < 3; k++)
                later |= wrote[k] && offs[k] < offs[i] + n && offs[i] < offs[k] + W;
            if (later)
                continue;
            fuzz_pattern(pat, n, offs[i]);
            vd_err_clear(&err);
            INV_ASSERT(vd_image_pread(img, back, n, offs[i], &err) == 0);
            INV_ASSERT(memcmp(back, pat, n) == 0);
        }
        /* a range no write touched reads as it did */
        uint64_t q = vs / 4;
        size_t n = (size_t)(vs - q < 4096 ? vs - q : 4096);
        bool touched = false;
        for (int i = 0; i < 3; i++)
            touched |= wrote[i] && offs[i] < q + n && q < offs[i] + W;
        struct vd_error e1 = {0}, e2 = {0};
        if (n && !touched && vd_image_pread(ro, before, n, q, &e1) == 0 &&
            vd_image_pread(img, back, n, q, &e2) == 0)
            INV_ASSERT(memcmp(before, back, n) == 0);
    }
    free(pat);
    free(back);
    free(before);
out:
    vd_image_close(img);
    unlink(path);
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
        INV_ASSERT(err.code != 0 && err.msg[0]);
        return 0;
    }
    uint64_t vsize = vd_image_size(img);
    (void)inv_walk(img, 0, 512);             /* I1 */
    int verdict = inv_check_clean(img, 512); /* I2 */
    uint64_t seed = size >= 8 ? le64(data + size - 8) : size;
    uint64_t offs[] = {0, vsize / 2, vsize > 65536 ? vsize - 65536 : 0, seed % (vsize ? vsize : 1)};
    size_t lens[] = {1 << 20, 200000, 65536, 1 + (size_t)(seed >> 40) % 300000};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) /* I3 */
        inv_compare_read(img, offs[i], lens[i]);

    uint64_t off = 0;
    for (int i = 0; i < 64 && off < vsize; i++) {
        uint64_t pnum = 0;
        vd_err_clear(&err);
        if (vd_image_block_status(img, off, vsize - off, &pnum, &err) < 0 || pnum == 0)
            break;
        off += pnum;
    }
    (void)vd_image_allocated(img);
    if (img->ops->info) {
        struct vd_json j;
        vd_json_init(&j);
        vd_json_obj_begin(&j, NULL);
        img->ops->info(img, &j);
        vd_json_obj_end(&j);
        free(vd_json_finish(&j));
    }
    /* I4: uncompressed sparse extents that check calls clean */
    if (verdict == VD_CHECK_CLEAN && size >= 512 && le32(data) == 0x564d444bu &&
        le16(data + 77) == 0 && !img->backing)
        fuzz_write(data, size, img);
    vd_image_close(img);
    (void)fuzz_check_cb;
    return 0;
}
