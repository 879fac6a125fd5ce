/* Overlay files (src/formats/overlay.c): random writes through a view read
 * back exactly (against a reference buffer, not our own reader), survive a
 * close and reopen, never touch the base file; concurrent writers to one
 * block both land; a file made for another disk, a corrupt header or
 * table, and a second user are refused with their exact messages.
 * Version 2: every field of the source records, the digest slots and the
 * table layout refused when corrupt, with its message; a source changed
 * inside a held block (memory, a copy) or written in place refused; a copy
 * with the same bytes accepted and recorded at the next writing flush, and
 * only then; version 1 files still read and written. */
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
#include "core/driver.h"
#include "io/mem.h"
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

static void check_view_against(struct vd_image *v, const uint8_t *ref, const char *what)
{
    uint8_t *got = malloc(SIZE);
    struct vd_error err = {0};
    CHECK(vd_image_pread(v, got, SIZE, 0, &err) == 0, "%s: read: %s", what, err.msg);
    size_t i = 0;
    while (i < SIZE && got[i] == ref[i])
        i++;
    CHECK(i == SIZE, "%s: first difference at byte %zu", what, i);
    free(got);
}

static void check_view(struct vd_image *v, const char *what)
{
    check_view_against(v, want, what);
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

static void spit(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, len, f);
        fclose(f);
    }
}

/* Recompute the header's CRC and those of the source records of its disks,
 * so that a test's edit reaches the field checks behind them. */
static void fix_crcs(uint8_t *f)
{
    uint32_t n = le32(f + 16);
    for (uint32_t i = 0; i < n && i < 31 && le32(f + 8) >= 2; i++) {
        uint8_t *rec = f + 4096 + 512 * i;
        put_le32(rec, 0);
        put_le32(rec, vd_crc32c(0, rec, 512));
    }
    put_le32(f + 20, 0);
    put_le32(f + 20, vd_crc32c(0, f, 4096));
}

/* Open (and attach to src's disk, when src is given) path, expecting code
 * and the message "overlay: PATH: " + want. */
static void expect_refusal(const char *path, struct vd_source *src, int code, const char *tail,
                           const char *what)
{
    struct vd_error err = {0};
    struct vd_overlay *ov = NULL;
    struct vd_image *v = NULL;
    char msg[700];
    int r = vd_overlay_open(path, &ov, &err);
    if (r == 0 && src) {
        r = vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err);
        if (r == 0)
            vd_overlay_detach(v);
    }
    if (ov)
        vd_overlay_close(ov, NULL);
    CHECK(r == code, "%s: got %d, want %d (%s)", what, r, code, err.msg);
    if (code == 0)
        snprintf(msg, sizeof(msg), "%s", tail);
    else
        snprintf(msg, sizeof(msg), "overlay: %s: %s", path, tail);
    CHECK(!strcmp(err.msg, msg), "%s: message\n  got:  %s\n  want: %s", what, err.msg, msg);
}

/* An overlay over base_path holding block 2 as a copy (a 100-byte write
 * in it: kind 1 digest) and block 4 whole (kind 0). */
static void make_v2(const char *path, struct vd_source *src)
{
    struct vd_error err = {0};
    struct vd_overlay *ov = NULL;
    struct vd_image *v = NULL;
    uint8_t blk[65536];
    memset(blk, 0x77, sizeof(blk));
    unlink(path);
    CHECK(vd_overlay_open(path, &ov, &err) == 0, "create: %s", err.msg);
    CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0, "attach: %s",
          err.msg);
    CHECK(vd_image_pwrite(v, blk, 100, 2 * 65536 + 500, &err) == 0, "write: %s", err.msg);
    CHECK(vd_image_pwrite(v, blk, 65536, 4 * 65536, &err) == 0, "write: %s", err.msg);
    vd_overlay_detach(v);
    CHECK(vd_overlay_close(ov, &err) == 0, "close: %s", err.msg);
}

/* Each version 2 field, made wrong alone with valid checksums, is refused
 * with its message. */
static void test_v2_fields(void)
{
    struct vd_source *src = open_base();
    char bad[300];
    size_t len = 0;
    if (!src)
        return;
    snprintf(bad, sizeof(bad), "%s/bad2.ovl", dir);
    make_v2(ov_path, src);
    uint8_t *good = slurp(ov_path, &len), *f = malloc(len);
    CHECK(good && len > 4 * 65536 && le32(good + 8) == 2, "a version 2 file of %zu bytes", len);
    uint8_t *rec = f + 4096;
    uint64_t l1 = le64(good + 64 + 104), unit = le64(good + l1);
    CHECK(l1 == 65536 && unit == 131072, "L1 at %llu, first unit at %llu", (unsigned long long)l1,
          (unsigned long long)unit);
    CHECK(le32(good + 4096 + 4) == 1 && !strcmp((char *)good + 4096 + 256, base_path),
          "the record names a local file: kind %u, name %s", le32(good + 4096 + 4),
          (char *)good + 4096 + 256);
    CHECK(good[unit + 65536 + 16 * 2] == 1 && good[unit + 65536 + 16 * 4] == 0,
          "digest kinds: block 2 %u (copied), block 4 %u (whole)", good[unit + 65536 + 32],
          good[unit + 65536 + 64]);
    struct {
        const char *what;
        size_t off;   /* into the file */
        uint64_t val; /* stored little-endian in width bytes */
        int width;
        int code;
        const char *msg;
        int keep_crc; /* leave the checksums as they are */
    } cases[] = {
        {"record checksum", 4096 + 300, 0x41, 1, -EINVAL,
         "header: disk 0: source record: checksum mismatch", 1},
        {"record kind", 4096 + 4, 3, 4, -EINVAL, "header: disk 0: source record: kind 3 unknown",
         0},
        {"mtime ns", 4096 + 40, 1000000000, 4, -EINVAL,
         "header: disk 0: source record: nanoseconds out of range", 0},
        {"ctime ns", 4096 + 44, 0xffffffff, 4, -EINVAL,
         "header: disk 0: source record: nanoseconds out of range", 0},
        {"remote kind with inode", 4096 + 4, 2, 4, -EINVAL,
         "header: disk 0: source record: file times or inode on a source that is not a local "
         "file",
         0},
        {"parents", 4096 + 72, 65, 4, -EINVAL,
         "header: disk 0: source record: parents field invalid", 0},
        {"record reserved", 4096 + 76, 1, 4, -EINVAL,
         "header: disk 0: source record: parents field invalid", 0},
        {"parents digest without parents", 4096 + 90, 1, 1, -EINVAL,
         "header: disk 0: source record: parents field invalid", 0},
        {"ETag on a file", 4096 + 112, 'x', 1, -EINVAL,
         "header: disk 0: source record: ETag invalid", 0},
        {"name with an escape", 4096 + 256, 0x1b, 1, -EINVAL,
         "header: disk 0: source record: name invalid", 0},
        {"name not terminated", 4096 + 511, 'x', 1, -EINVAL,
         "header: disk 0: source record: name invalid", 0},
        {"header reserved", 30, 1, 1, -EINVAL, "header: reserved bytes are not zero", 0},
        {"entry reserved", 64 + 120, 1, 1, -EINVAL, "header: disk 0: reserved bytes are not zero",
         0},
        {"unused entry", 64 + 128 + 5, 1, 1, -EINVAL, "header: reserved bytes are not zero", 0},
        {"unused record", 4096 + 512 + 9, 1, 1, -EINVAL,
         "header: source records past the last disk are not zero", 0},
        {"version 3", 8, 3, 4, -ENOTSUP, "overlay version 3, this build reads versions 1 and 2", 0},
        {"L1 in the header block", 64 + 104, 4096 * 3, 8, -EINVAL,
         "header: disk 0: L1 table at 12288 outside the file (", 0 /* size appended below */},
        {"L2 unit on the L1 table", 65536, 65536, 8, -EINVAL,
         "the L2 table at 65536 overlaps another table (corrupt overlay)", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char exp[700];
        memcpy(f, good, len);
        for (int b = 0; b < cases[i].width; b++)
            f[cases[i].off + (size_t)b] = (uint8_t)(cases[i].val >> (8 * b));
        if (!cases[i].keep_crc)
            fix_crcs(f);
        spit(bad, f, len);
        snprintf(exp, sizeof(exp), "%s", cases[i].msg);
        if (cases[i].off == 64 + 104)
            snprintf(exp, sizeof(exp), "%s%zu bytes)", cases[i].msg, len);
        expect_refusal(bad, NULL, cases[i].code, exp, cases[i].what);
    }
    /* The window: 8 bytes at an offset as large as the file. */
    memcpy(f, good, len);
    put_le64(rec + 16, le64(good + 4096 + 8));
    fix_crcs(f);
    spit(bad, f, len);
    char exp[700];
    snprintf(exp, sizeof(exp),
             "header: disk 0: source record: window of %u bytes at %u outside the %u-byte file",
             SIZE, SIZE, SIZE);
    expect_refusal(bad, NULL, -EINVAL, exp, "window");
    /* A data block mapped onto a table: found when its L2 table loads. */
    struct {
        uint64_t to;
        const char *what;
    } onto[] = {{unit, "onto its own L2 table"},
                {unit + 65536, "onto the digest table"},
                {l1, "onto the L1 table"}};
    for (size_t i = 0; i < 3; i++) {
        memcpy(f, good, len);
        put_le64(f + unit + 8 * 7, onto[i].to);
        spit(bad, f, len);
        struct vd_error err = {0};
        struct vd_overlay *ov = NULL;
        struct vd_image *v = NULL;
        uint8_t buf[16];
        CHECK(vd_overlay_open(bad, &ov, &err) == 0, "%s: open: %s", onto[i].what, err.msg);
        if (!ov)
            continue;
        CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0,
              "%s: attach: %s", onto[i].what, err.msg);
        if (v) {
            CHECK(vd_image_pread(v, buf, sizeof(buf), 0, &err) == -EINVAL, "%s: read",
                  onto[i].what);
            snprintf(exp, sizeof(exp),
                     "overlay: %s: disk b/disk: block 7 maps to %llu, onto a table (corrupt "
                     "overlay)",
                     bad, (unsigned long long)onto[i].to);
            CHECK_MSG(err, exp);
            vd_overlay_detach(v);
        }
        vd_overlay_close(ov, NULL);
    }
    /* A digest slot of an unknown kind: read when the source must be
     * compared by content (a copy of it). */
    char copy[300];
    snprintf(copy, sizeof(copy), "%s/copy.raw", dir);
    size_t blen = 0;
    uint8_t *bb = slurp(base_path, &blen);
    spit(copy, bb, blen);
    free(bb);
    struct vd_open_opts o = {.format = "raw"};
    struct vd_source *csrc = NULL;
    struct vd_error err = {0};
    CHECK(vd_source_open(copy, &o, &csrc, &err) == 0, "open copy: %s", err.msg);
    memcpy(f, good, len);
    f[unit + 65536 + 16 * 2] = 2;
    spit(bad, f, len);
    expect_refusal(bad, src, 0, "", "a bad slot under the same source is not read");
    err.msg[0] = 0;
    expect_refusal(bad, csrc, -EINVAL,
                   "disk b/disk: digest slot of block 2 invalid (kind 2; corrupt overlay)",
                   "a bad slot read for a copy");
    memcpy(f, good, len);
    f[unit + 65536 + 16 * 4 + 3] = 1; /* kind 0 with a digest */
    spit(bad, f, len);
    expect_refusal(bad, csrc, -EINVAL,
                   "disk b/disk: digest slot of block 4 invalid (kind 0; corrupt overlay)",
                   "a kind 0 slot with bytes");
    vd_source_close(csrc);
    unlink(copy);
    unlink(bad);
    free(good);
    free(f);
    vd_source_close(src);
}

/* Attach over a memory base: no identity, so the held blocks are compared
 * at every attach. Returns the attach's result. */
static int attach_mem(const uint8_t *bytes, struct vd_error *err)
{
    struct vd_open_opts o = {.format = "raw"};
    struct vd_io *io = NULL;
    struct vd_image *img = NULL, *v = NULL;
    struct vd_overlay *ov = NULL;
    int r = vd_io_mem_open(bytes, SIZE, "mem", &io, err);
    if (r == 0)
        r = vd_image_open_io(io, "mem", &o, 0, &img, err);
    if (r == 0)
        r = vd_overlay_open(ov_path, &ov, err);
    if (r == 0)
        r = vd_overlay_attach(ov, img, "m/disk", &v, err);
    if (v)
        vd_overlay_detach(v);
    vd_overlay_close(ov, NULL);
    vd_image_close(img);
    return r;
}

static void test_source_changes(const uint8_t *base_bytes)
{
    struct vd_error err = {0};
    struct vd_overlay *ov = NULL;
    struct vd_image *v = NULL;
    char msg[700], copy[300];
    uint8_t *m = malloc(SIZE);
    memcpy(m, base_bytes, SIZE);

    /* Memory: changed inside held block 2 away from the write: refused. */
    unlink(ov_path);
    struct vd_open_opts o = {.format = "raw"};
    struct vd_io *io = NULL;
    struct vd_image *img = NULL;
    CHECK(vd_io_mem_open(m, SIZE, "mem", &io, &err) == 0 &&
              vd_image_open_io(io, "mem", &o, 0, &img, &err) == 0 &&
              vd_overlay_open(ov_path, &ov, &err) == 0 &&
              vd_overlay_attach(ov, img, "m/disk", &v, &err) == 0,
          "memory base: %s", err.msg);
    uint8_t w[100];
    memset(w, 0x3c, sizeof(w));
    CHECK(vd_image_pwrite(v, w, sizeof(w), 2 * 65536 + 500, &err) == 0, "write: %s", err.msg);
    vd_overlay_detach(v);
    vd_overlay_close(ov, NULL);
    vd_image_close(img);
    CHECK(attach_mem(m, &err) == 0, "same memory again: %s", err.msg);
    m[2 * 65536 + 40000] ^= 1;
    vd_err_clear(&err);
    CHECK(attach_mem(m, &err) == -ESTALE, "memory changed in block 2");
    snprintf(msg, sizeof(msg),
             "overlay: %s: disk m/disk: the source changed since the overlay copied blocks of it "
             "(its identity cannot be read (mem)): block 2 (bytes 131072-196607) no longer holds "
             "what was copied, and the edits would mix with bytes they were not made against; "
             "mount the source the overlay was made with (mem), or use a new overlay file",
             ov_path);
    CHECK_MSG(err, msg);
    m[2 * 65536 + 40000] ^= 1;
    m[3 * 65536] ^= 1; /* outside the held block: memory has no identity to see it */
    vd_err_clear(&err);
    CHECK(attach_mem(m, &err) == 0, "memory changed outside held blocks: %s", err.msg);
    vd_err_clear(&err);

    /* A local file: a copy with the same bytes attaches; nothing is
     * recorded until a flush that writes; then its identity is. */
    struct vd_source *src = open_base();
    make_v2(ov_path, src);
    vd_source_close(src);
    snprintf(copy, sizeof(copy), "%s/copy.raw", dir);
    size_t len = 0;
    uint8_t *before = slurp(ov_path, &len);
    spit(copy, base_bytes, SIZE);
    struct vd_source *csrc = NULL;
    CHECK(vd_source_open(copy, &o, &csrc, &err) == 0, "open copy: %s", err.msg);
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0 &&
              vd_overlay_attach(ov, vd_source_disk(csrc, 0), "b/disk", &v, &err) == 0,
          "a copy with the same bytes: %s", err.msg);
    vd_overlay_detach(v);
    vd_overlay_close(ov, NULL);
    size_t len2 = 0;
    uint8_t *after = slurp(ov_path, &len2);
    CHECK(len2 == len && !memcmp(before, after, len), "an attach that writes nothing changed FILE");
    free(after);
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0 &&
              vd_overlay_attach(ov, vd_source_disk(csrc, 0), "b/disk", &v, &err) == 0,
          "the copy again: %s", err.msg);
    CHECK(vd_image_pwrite(v, w, 10, 6 * 65536 + 3, &err) == 0, "write: %s", err.msg);
    vd_overlay_detach(v);
    CHECK(vd_overlay_close(ov, &err) == 0, "close: %s", err.msg);
    after = slurp(ov_path, &len2);
    struct stat cst;
    stat(copy, &cst);
    CHECK(after && le64(after + 4096 + 64) == (uint64_t)cst.st_ino,
          "the record now names the copy's inode");
    free(after);
    free(before);

    /* The copy written in place, outside every held block: refused. */
    vd_source_close(csrc);
    usleep(10000);
    FILE *cf = fopen(copy, "r+b");
    fseek(cf, 20 * 65536, SEEK_SET);
    fputc(0x55 ^ base_bytes[20 * 65536], cf);
    fclose(cf);
    CHECK(vd_source_open(copy, &o, &csrc, &err) == 0, "open copy: %s", err.msg);
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0, "open: %s", err.msg);
    CHECK(vd_overlay_attach(ov, vd_source_disk(csrc, 0), "b/disk", &v, &err) == -ESTALE,
          "a copy written in place");
    snprintf(msg, sizeof(msg),
             "overlay: %s: disk b/disk: %s was written after the overlay "
             "copied blocks of it (mtime ",
             ov_path, copy);
    CHECK(!strncmp(err.msg, msg, strlen(msg)) &&
              strstr(err.msg, "Z): the edits would mix with bytes they were not made against; "
                              "restore the source, or use a new overlay file"),
          "in place message: %s", err.msg);
    vd_err_clear(&err);
    /* The refusal let the disk go: the original, another file now but
     * with the bytes the overlay copied, attaches. */
    src = open_base();
    CHECK(vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0,
          "the original after a refusal: %s", err.msg);
    if (v)
        vd_overlay_detach(v);
    vd_overlay_close(ov, NULL);
    vd_source_close(src);
    vd_source_close(csrc);
    unlink(copy);
    free(m);
}

/* A version 1 file (a version 2 one with its version set to 1 and no
 * records: version 1 L2 units are 64 KiB, the rest is unused space) reads,
 * takes writes in its own layout, and keeps its old guarantee. */
static void test_v1(const uint8_t *base_bytes)
{
    struct vd_error err = {0};
    struct vd_overlay *ov = NULL;
    struct vd_image *v = NULL;
    struct vd_source *src = open_base();
    size_t len = 0;
    make_v2(ov_path, src);
    uint8_t *f = slurp(ov_path, &len);
    put_le32(f + 8, 1);
    memset(f + 4096, 0, 16384);
    fix_crcs(f);
    spit(ov_path, f, len);
    free(f);
    uint8_t *want_v = malloc(SIZE);
    memcpy(want_v, base_bytes, SIZE);
    memset(want_v + 2 * 65536 + 500, 0x77, 100);
    memset(want_v + 4 * 65536, 0x77, 65536);
    memset(want_v + 600000 * 5, 0x19, 70000);
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0 &&
              vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0,
          "version 1: %s", err.msg);
    if (v) {
        CHECK(vd_image_pwrite(v, want_v + 600000 * 5, 70000, 600000 * 5, &err) == 0,
              "version 1 write: %s", err.msg);
        vd_overlay_detach(v);
    }
    CHECK(vd_overlay_close(ov, &err) == 0, "close: %s", err.msg);
    f = slurp(ov_path, &len);
    CHECK(f && le32(f + 8) == 1, "still version 1");
    free(f);
    CHECK(vd_overlay_open(ov_path, &ov, &err) == 0 &&
              vd_overlay_attach(ov, vd_source_disk(src, 0), "b/disk", &v, &err) == 0,
          "version 1 reopened: %s", err.msg);
    if (v) {
        check_view_against(v, want_v, "version 1");
        vd_overlay_detach(v);
    }
    vd_overlay_close(ov, NULL);
    free(want_v);
    vd_source_close(src);
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
    test_v2_fields();
    test_source_changes(base_copy);
    test_v1(base_copy);

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
