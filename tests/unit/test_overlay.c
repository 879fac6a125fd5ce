/* Overlay files (src/formats/overlay.c): random writes through a view read
 * back exactly (against a reference buffer, not our own reader), survive a
 * close and reopen, never touch the base file; concurrent writers to one
 * block both land; a file made for another disk, a corrupt header or
 * table, and a second user are refused with their exact messages. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/crc32c.h"
#include "vdisk/overlay.h"
#include "vdisk/vdisk.h"
#include "check.h"

#define SIZE ((3u << 20) + 12345u) /* not a multiple of the 64 KiB block */

static char dir[256], base_path[300], ov_path[300];
static uint8_t *want;

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static struct vd_source *open_base(void)
{
    struct vd_open_opts o = {.format = "raw"};
    struct vd_source *src = NULL;
    struct vd_error err = {0};
    CHECK(vd_source_open(base_path, &o, &src, &err) == 0, "open base: %s", err.msg);
    return src;
}

static void check_view(struct vd_image *v, const char *what)
{
    uint8_t *got = malloc(SIZE);
    struct vd_error err = {0};
    CHECK(vd_image_pread(v, got, SIZE, 0, &err) == 0, "%s: read: %s", what, err.msg);
    size_t i = 0;
    while (i < SIZE && got[i] == want[i])
        i++;
    CHECK(i == SIZE, "%s: first difference at byte %zu", what, i);
    free(got);
}

struct writer {
    struct vd_image *v;
    uint64_t off;
    size_t len;
};

static void *write_thread(void *arg)
{
    struct writer *w = arg;
    struct vd_error err = {0};
    CHECK(vd_image_pwrite(w->v, want + w->off, w->len, w->off, &err) == 0, "thread write: %s",
          err.msg);
    return NULL;
}

static void test_roundtrip(void)
{
    struct vd_error err = {0};
    struct vd_overlay *ov = NULL;
    struct vd_image *v = NULL;
    struct vd_source *src = open_base();
    if (!src)
        return;
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0, "create: %s", err.msg);
    CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0, "attach: %s",
          err.msg);
    CHECK(vd_image_can_write(v), "the view is writable");
    check_view(v, "fresh view");
    /* Random writes: partial blocks, across blocks, the partial last one. */
    for (int i = 0; i < 200; i++) {
        uint64_t off = rnd() % SIZE;
        size_t len = (size_t)(rnd() % 150000) + 1;
        if (off + len > SIZE)
            len = (size_t)(SIZE - off);
        for (size_t k = 0; k < len; k++)
            want[off + k] = (uint8_t)rnd();
        CHECK(vd_image_pwrite(v, want + off, len, off, &err) == 0, "write %d: %s", i, err.msg);
    }
    uint8_t tail[100];
    memset(tail, 0x5a, sizeof(tail));
    memcpy(want + SIZE - sizeof(tail), tail, sizeof(tail));
    CHECK(vd_image_pwrite(v, tail, sizeof(tail), SIZE - sizeof(tail), &err) == 0, "tail: %s",
          err.msg);
    /* Two threads writing halves of one block the overlay does not hold. */
    uint64_t blk = 40u * 65536u;
    for (size_t k = 0; k < 65536; k++)
        want[blk + k] = (uint8_t)(k * 13 + 1);
    struct writer w[2] = {{v, blk, 30000}, {v, blk + 30000, 65536 - 30000}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, write_thread, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    check_view(v, "after writes");
    CHECK(vd_image_pwrite(v, want, 1, SIZE, &err) == -EINVAL, "write past the end refused");
    vd_err_clear(&err);
    CHECK(vd_image_flush(v, &err) == 0, "flush: %s", err.msg);
    vd_overlay_detach(v);
    CHECK(vd_overlay_close(ov, &err) == 0, "close: %s", err.msg);

    /* Reopen: the edits are there; the base never changed. */
    ov = NULL;
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0, "reopen: %s", err.msg);
    CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0, "reattach: %s",
          err.msg);
    check_view(v, "reopened");
    uint64_t n = 0;
    int st = vd_image_block_status(v, 0, SIZE, &n, &err);
    CHECK(st == VD_STATUS_DATA && n > 0, "block status %d", st);
    vd_overlay_detach(v);
    CHECK(vd_overlay_close(ov, &err) == 0, "close: %s", err.msg);
    vd_source_close(src);
}

static void test_refusals(const uint8_t *base_bytes)
{
    struct vd_error err = {0};
    struct vd_overlay *ov = NULL, *ov2 = NULL;
    struct vd_image *v = NULL;
    struct vd_source *src = open_base();
    char other[300];
    if (!src)
        return;
    /* A second user of the same file. */
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0, "open: %s", err.msg);
    char msg[600];
    snprintf(msg, sizeof(msg), "overlay: %s: in use by another mount or process", ov_path);
    CHECK(vd_overlay_open(ov_path, &ov2, &err) == -EBUSY, "second open");
    CHECK_MSG(err, msg);
    vd_err_clear(&err);
    /* Another disk (same size, different bytes). */
    snprintf(other, sizeof(other), "%s/other.raw", dir);
    FILE *f = fopen(other, "wb");
    uint8_t *o = malloc(SIZE);
    memcpy(o, base_bytes, SIZE);
    o[(uint64_t)SIZE / 15 * 7] ^= 1; /* one byte inside a fingerprint sample */
    fwrite(o, 1, SIZE, f);
    fclose(f);
    free(o);
    struct vd_open_opts oo = {.format = "raw"};
    struct vd_source *osrc = NULL;
    CHECK(vd_source_open(other, &oo, &osrc, &err) == 0, "open other: %s", err.msg);
    CHECK(vd_overlay_attach(ov, vd_source_disk(osrc, 0), "b/disk", &v, &err) == -ESTALE,
          "another disk under the same key");
    CHECK(strstr(err.msg, "b/disk of 3158073 bytes (fingerprint ") &&
              strstr(err.msg, "another source, or the source changed since"),
          "%s", err.msg);
    vd_err_clear(&err);
    CHECK(vd_overlay_attach(ov, vd_source_disk(osrc, 0), "other/disk", &v, &err) == -ESTALE,
          "a new disk in a used overlay");
    CHECK(strstr(err.msg, "holds no disk like other/disk (3158073 bytes") &&
              strstr(err.msg, "it was made for other sources; use a new overlay file"),
          "%s", err.msg);
    vd_err_clear(&err);
    /* Renamed source: same bytes under another key attaches. */
    CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "renamed/disk", &v, &err) == 0,
          "renamed source: %s", err.msg);
    vd_overlay_detach(v);
    vd_source_close(osrc);
    CHECK(vd_overlay_close(ov, &err) == 0, "close");

    /* Corrupt header byte: checksum. */
    size_t len = 0;
    uint8_t *file = slurp(ov_path, &len);
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/bad.ovl", dir);
    file[100] ^= 0xff;
    f = fopen(bad, "wb");
    fwrite(file, 1, len, f);
    fclose(f);
    file[100] ^= 0xff;
    CHECK(vd_overlay_open(bad, &ov, &err) == -EINVAL, "bad checksum");
    snprintf(msg, sizeof(msg), "overlay: %s: header: checksum mismatch (corrupt overlay)", bad);
    CHECK_MSG(err, msg);
    vd_err_clear(&err);
    /* An L1 entry pointing past the end, with a valid checksum. */
    uint64_t l1 = le64(file + 64 + 104);
    put_le64(file + l1, (uint64_t)len + 65536 * 4);
    f = fopen(bad, "wb");
    fwrite(file, 1, len, f);
    fclose(f);
    CHECK(vd_overlay_open(bad, &ov, &err) == -EINVAL, "L1 past the end");
    snprintf(msg, sizeof(msg),
             "overlay: %s: disk b/disk: L1 entry 0 points to %llu, outside the file (corrupt "
             "overlay)",
             bad, (unsigned long long)len + 65536 * 4);
    CHECK_MSG(err, msg);
    vd_err_clear(&err);
    /* An L2 entry pointing past the end: found when the block is read. */
    free(file);
    file = slurp(ov_path, &len);
    uint64_t t = le64(file + l1);
    CHECK(t && t % 65536 == 0 && t + 65536 <= len, "first L2 table at %llu", (unsigned long long)t);
    if (t && t + 65536 <= len) {
        put_le64(file + t + 8 * 3, (uint64_t)len * 4);
        f = fopen(bad, "wb");
        fwrite(file, 1, len, f);
        fclose(f);
        CHECK(vd_overlay_open(bad, &ov, &err) == 0, "open with a bad L2: %s", err.msg);
        CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0, "attach");
        uint8_t buf[16];
        CHECK(vd_image_pread(v, buf, sizeof(buf), 3 * 65536, &err) == -EINVAL, "bad L2 read");
        snprintf(msg, sizeof(msg),
                 "overlay: %s: disk b/disk: block 3 maps to %llu, outside the file (corrupt "
                 "overlay)",
                 bad, (unsigned long long)len * 4);
        CHECK_MSG(err, msg);
        vd_overlay_detach(v);
        vd_overlay_close(ov, NULL);
    }
    free(file);
    unlink(bad);
    /* Not an overlay at all. */
    f = fopen(bad, "wb");
    fputs("hello", f);
    fclose(f);
    vd_err_clear(&err);
    CHECK(vd_overlay_open(bad, &ov, &err) < 0, "not an overlay");
    CHECK(strstr(err.msg, bad) != NULL, "message names the file: %s", err.msg);
    unlink(bad);
    vd_source_close(src);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_overlay.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(base_path, sizeof(base_path), "%s/base.raw", dir);
    snprintf(ov_path, sizeof(ov_path), "%s/o.ovl", dir);
    want = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        want[i] = (uint8_t)rnd();
    memset(want + (1u << 20), 0, 200000); /* a zero run in the base */
    FILE *f = fopen(base_path, "wb");
    fwrite(want, 1, SIZE, f);
    fclose(f);
    uint8_t *base_copy = malloc(SIZE);
    memcpy(base_copy, want, SIZE);
    struct stat before;
    stat(base_path, &before);

    test_roundtrip();
    size_t len = 0;
    uint8_t *after = slurp(base_path, &len);
    CHECK(after && len == SIZE && memcmp(after, base_copy, SIZE) == 0, "the base was written");
    free(after);
    test_refusals(base_copy);

    unlink(base_path);
    unlink(ov_path);
    char other[300];
    snprintf(other, sizeof(other), "%s/other.raw", dir);
    unlink(other);
    rmdir(dir);
    free(base_copy);
    free(want);
    return failures != 0;
}
