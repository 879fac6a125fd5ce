/*
 * VHDX parsers and log replay, called directly on (buf, len), plus a whole
 * image built here in memory and read through the driver (also from several
 * threads at once).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/crc32c.h"
#include "core/driver.h"
#include "formats/vhdx.h"
#include "io/io.h"
#include "io/mem.h"
#include "check.h"

#define MIB (1024u * 1024u)

static const uint8_t LOG_GUID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void put_crc(uint8_t *p, size_t n)
{
    put_le32(p + 4, 0);
    put_le32(p + 4, vd_crc32c(0, p, n));
}

/* On-disk bytes of a GUID given as its canonical string. */
static void guid(uint8_t out[16], const char *s)
{
    unsigned a, b, c, d[8];
    sscanf(s, "%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x", &a, &b, &c, &d[0], &d[1], &d[2], &d[3],
           &d[4], &d[5], &d[6], &d[7]);
    put_le32(out, a);
    put_le16(out + 4, (uint16_t)b);
    put_le16(out + 6, (uint16_t)c);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)d[i];
}

static void test_header(void)
{
    uint8_t h[4096] = {0};
    struct vhdx_header hd;
    const char *why = NULL;
    memcpy(h, "head", 4);
    put_le64(h + 8, 42);
    put_le16(h + 66, 1);
    put_le32(h + 68, MIB);
    put_le64(h + 72, MIB);
    put_crc(h, sizeof(h));
    CHECK(vhdx_parse_header(h, sizeof(h), &hd, &why) == 0, "valid header");
    CHECK(hd.seq == 42 && hd.log_length == MIB, "fields");
    h[1000] ^= 1;
    CHECK(vhdx_parse_header(h, sizeof(h), &hd, &why) == -EINVAL && !strcmp(why, "bad checksum"),
          "bad crc: %s", why);
    h[0] = 'x';
    CHECK(vhdx_parse_header(h, sizeof(h), &hd, &why) == -EINVAL && !strcmp(why, "bad signature"),
          "bad sig");
    CHECK(vhdx_parse_header(h, 100, &hd, &why) == -EINVAL, "short");
}

static uint8_t *region_table(int extra_kind)
{
    uint8_t *t = calloc(1, 65536);
    memcpy(t, "regi", 4);
    put_le32(t + 8, extra_kind ? 3 : 2);
    guid(t + 16, "2DC27766-F623-4200-9D64-115E9BFD4A08");
    put_le64(t + 32, 3 * MIB);
    put_le32(t + 40, MIB);
    put_le32(t + 44, 1);
    guid(t + 48, "8B7CA206-4790-4B9A-B8FE-575F050F886E");
    put_le64(t + 64, 2 * MIB);
    put_le32(t + 72, MIB);
    put_le32(t + 76, 1);
    if (extra_kind) {
        guid(t + 80, extra_kind == 3 ? "2DC27766-F623-4200-9D64-115E9BFD4A08"
                                     : "01234567-89AB-CDEF-0123-456789ABCDEF");
        put_le64(t + 96, 10 * MIB);
        put_le32(t + 104, MIB);
        put_le32(t + 108, extra_kind == 1 ? 1 : 0);
    }
    put_crc(t, 65536);
    return t;
}

static void test_region_table(void)
{
    struct vhdx_regions r;
    char why[160];
    uint8_t *t = region_table(0);
    CHECK(vhdx_parse_region_table(t, 65536, &r, why, sizeof(why)) == 0, "valid: %s", why);
    CHECK(r.bat.off == 3 * MIB && r.meta.off == 2 * MIB, "offsets");
    t[70] ^= 1;
    CHECK(vhdx_parse_region_table(t, 65536, &r, why, sizeof(why)) == -EINVAL, "bad crc");
    free(t);
    t = region_table(1);
    CHECK(vhdx_parse_region_table(t, 65536, &r, why, sizeof(why)) == -ENOTSUP &&
              !strcmp(why, "unknown required region {01234567-89ab-cdef-0123-456789abcdef}"),
          "unknown required: %s", why);
    free(t);
    t = region_table(2);
    CHECK(vhdx_parse_region_table(t, 65536, &r, why, sizeof(why)) == 0, "unknown optional");
    free(t);
    t = region_table(3);
    CHECK(vhdx_parse_region_table(t, 65536, &r, why, sizeof(why)) == -EINVAL, "dup BAT");
    free(t);
    t = region_table(0);
    put_le32(t + 8, 5000);
    put_crc(t, 65536);
    CHECK(vhdx_parse_region_table(t, 65536, &r, why, sizeof(why)) == -EINVAL, "count");
    free(t);
}

/* Metadata region with the standard items; locator optional. */
static size_t meta_item(uint8_t *m, int i, const char *g, uint32_t off, const void *data,
                        uint32_t len, uint32_t flags)
{
    uint8_t *e = m + 32 + 32 * i;
    guid(e, g);
    put_le32(e + 16, off);
    put_le32(e + 20, len);
    put_le32(e + 24, flags);
    memcpy(m + off, data, len);
    return off + 4096;
}

static uint8_t *metadata(uint32_t bs, uint64_t vsize, uint32_t lss, bool parent, int extra)
{
    uint8_t *m = calloc(1, MIB);
    uint8_t v[8];
    uint32_t off = 65536;
    int n = 0;
    memcpy(m, "metadata", 8);
    put_le32(v, bs);
    put_le32(v + 4, parent ? 2 : 0);
    off = (uint32_t)meta_item(m, n++, "CAA16737-FA36-4D43-B3B6-33F0AA44E76B", off, v, 8, 4);
    put_le64(v, vsize);
    off = (uint32_t)meta_item(m, n++, "2FA54224-CD1B-4876-B211-5DBED83BF4B8", off, v, 8, 6);
    put_le32(v, lss);
    off = (uint32_t)meta_item(m, n++, "8141BF1D-A96F-4709-BA47-F233A8FAAB5F", off, v, 4, 6);
    put_le32(v, 4096);
    off = (uint32_t)meta_item(m, n++, "CDA348C7-445D-4471-9CC9-E9885251C556", off, v, 4, 6);
    if (parent) {
        /* locator: type, count 2: parent_linkage, relative_path (with a
         * non-BMP character as a surrogate pair) */
        uint8_t pl[256] = {0};
        guid(pl, "B04AEFB7-D19E-4A81-B789-25B8E9445913");
        put_le16(pl + 18, 2);
        const char *k1 = "parent_linkage", *v1 = "{00000000-0000-0000-0000-000000000001}",
                   *k2 = "relative_path";
        uint32_t o = 20 + 24;
        uint8_t *e = pl + 20;
        put_le32(e, o);
        put_le16(e + 8, (uint16_t)(2 * strlen(k1)));
        for (size_t i = 0; k1[i]; i++)
            put_le16(pl + o + 2 * i, (uint16_t)k1[i]);
        o += 2 * (uint32_t)strlen(k1);
        put_le32(e + 4, o);
        put_le16(e + 10, (uint16_t)(2 * strlen(v1)));
        for (size_t i = 0; v1[i]; i++)
            put_le16(pl + o + 2 * i, (uint16_t)v1[i]);
        o += 2 * (uint32_t)strlen(v1);
        e += 12;
        put_le32(e, o);
        put_le16(e + 8, (uint16_t)(2 * strlen(k2)));
        for (size_t i = 0; k2[i]; i++)
            put_le16(pl + o + 2 * i, (uint16_t)k2[i]);
        o += 2 * (uint32_t)strlen(k2);
        put_le32(e + 4, o);
        put_le16(e + 10, 8);
        put_le16(pl + o, 'a');
        put_le16(pl + o + 2, 0xd83d); /* U+1F600 */
        put_le16(pl + o + 4, 0xde00);
        put_le16(pl + o + 6, 'b');
        o += 8;
        off = (uint32_t)meta_item(m, n++, "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C", off, pl, o, 4);
    }
    if (extra) {
        uint8_t z[4] = {0};
        off = (uint32_t)meta_item(m, n++, "11111111-2222-3333-4444-555555555555", off, z, 4,
                                  extra == 1 ? 4 : 0);
    }
    put_le16(m + 10, (uint16_t)n);
    return m;
}

static void test_metadata(void)
{
    struct vhdx_meta m;
    struct vd_error err = {0};
    uint8_t *b = metadata(32 * MIB, 100 * MIB, 512, false, 0);
    CHECK(vhdx_parse_metadata(b, MIB, "t", &m, &err) == 0, "valid: %s", err.msg);
    CHECK(m.block_size == 32 * MIB && m.virtual_size == 100 * MIB && m.logical_sector_size == 512,
          "fields");
    vhdx_meta_free(&m);
    CHECK(vhdx_parse_metadata(b, 1000, "t", &m, &err) == -EINVAL, "short region");
    vhdx_meta_free(&m);
    free(b);

    static const struct {
        uint32_t bs;
        uint64_t vs;
        uint32_t lss;
        const char *msg;
    } bad[] = {
        {3 * MIB, MIB, 512,
         "vhdx: t: block size 3145728 is invalid (must be a power of two from 1 MiB to 256 MiB)"},
        {MIB / 2, MIB, 512,
         "vhdx: t: block size 524288 is invalid (must be a power of two from 1 MiB to 256 MiB)"},
        {512 * MIB, MIB, 512,
         "vhdx: t: block size 536870912 is invalid (must be a power of two from 1 MiB to 256 "
         "MiB)"},
        {MIB, (64ull << 40) + 4096, 4096,
         "vhdx: t: virtual disk size 70368744181760 is invalid (a multiple of the 4096-byte "
         "sector, at most 64 TiB)"},
        {MIB, 1000, 512,
         "vhdx: t: virtual disk size 1000 is invalid (a multiple of the 512-byte sector, at most "
         "64 TiB)"},
        {MIB, MIB, 1024, "vhdx: t: logical sector size 1024 is invalid (512 or 4096)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vd_err_clear(&err);
        b = metadata(bad[i].bs, bad[i].vs, bad[i].lss, false, 0);
        CHECK(vhdx_parse_metadata(b, MIB, "t", &m, &err) == -EINVAL && !strcmp(err.msg, bad[i].msg),
              "bad %zu: %s", i, err.msg);
        vhdx_meta_free(&m);
        free(b);
    }
    vd_err_clear(&err);
    b = metadata(MIB, MIB, 512, false, 1);
    CHECK(vhdx_parse_metadata(b, MIB, "t", &m, &err) == -ENOTSUP &&
              !strcmp(err.msg, "vhdx: t: unknown required metadata item "
                               "{11111111-2222-3333-4444-555555555555}"),
          "unknown required: %s", err.msg);
    vhdx_meta_free(&m);
    free(b);
    vd_err_clear(&err);
    b = metadata(MIB, MIB, 512, false, 2);
    CHECK(vhdx_parse_metadata(b, MIB, "t", &m, &err) == 0, "unknown optional");
    vhdx_meta_free(&m);
    free(b);
    /* item outside the region */
    vd_err_clear(&err);
    b = metadata(MIB, MIB, 512, false, 0);
    put_le32(b + 32 + 16, MIB - 4);
    CHECK(vhdx_parse_metadata(b, MIB, "t", &m, &err) == -EINVAL &&
              strstr(err.msg, "lies outside the metadata region"),
          "outside: %s", err.msg);
    vhdx_meta_free(&m);
    free(b);
    /* parent locator with a surrogate pair */
    vd_err_clear(&err);
    b = metadata(MIB, MIB, 512, true, 0);
    CHECK(vhdx_parse_metadata(b, MIB, "t", &m, &err) == 0, "locator: %s", err.msg);
    const char *rp = vhdx_meta_locator(&m, "relative_path");
    CHECK(m.has_parent && rp &&
              !strcmp(rp, "a\xf0\x9f\x98\x80"
                          "b"),
          "utf-16 decode: %s", rp ? rp : "(null)");
    CHECK(
        !strcmp(vhdx_meta_locator(&m, "parent_linkage"), "{00000000-0000-0000-0000-000000000001}"),
        "linkage");
    vhdx_meta_free(&m);
    free(b);
}

/* ---- log ---- */

struct desc {
    bool zero;
    uint64_t off, len;
    uint8_t fill;
};

/* Write one entry at pos (wrapping) into log; returns its length. */
static size_t log_entry(uint8_t *log, size_t log_len, size_t pos, uint64_t seq, uint32_t tail,
                        const struct desc *d, size_t n, bool bad_crc)
{
    size_t dsec = (64 + 32 * n + 4095) / 4096, ndata = 0;
    for (size_t i = 0; i < n; i++)
        ndata += !d[i].zero;
    size_t len = (dsec + ndata) * 4096;
    uint8_t *e = calloc(1, len);
    memcpy(e, "loge", 4);
    put_le32(e + 8, (uint32_t)len);
    put_le32(e + 12, tail);
    put_le64(e + 16, seq);
    put_le32(e + 24, (uint32_t)n);
    memcpy(e + 32, LOG_GUID, 16);
    put_le64(e + 48, 0);
    put_le64(e + 56, 0);
    size_t ds = dsec * 4096;
    for (size_t i = 0; i < n; i++) {
        uint8_t *x = e + 64 + 32 * i;
        put_le64(x + 16, d[i].off);
        put_le64(x + 24, seq);
        if (d[i].zero) {
            memcpy(x, "zero", 4);
            put_le64(x + 8, d[i].len);
        } else {
            memcpy(x, "desc", 4);
            memset(x + 4, d[i].fill ^ 0xf0, 4); /* trailing */
            memset(x + 8, d[i].fill ^ 0x0f, 8); /* leading */
            memcpy(e + ds, "data", 4);
            put_le32(e + ds + 4, (uint32_t)(seq >> 32));
            memset(e + ds + 8, d[i].fill, 4084);
            put_le32(e + ds + 4092, (uint32_t)seq);
            ds += 4096;
        }
    }
    put_crc(e, len);
    if (bad_crc)
        e[len - 100] ^= 1;
    for (size_t i = 0; i < len; i += 4096)
        memcpy(log + (pos + i) % log_len, e + i, 4096);
    free(e);
    return len;
}

static bool page_is(const struct vhdx_overlay *ov, uint64_t off, uint8_t fill)
{
    uint8_t b[4096], want[4096];
    memset(b, 0x99, sizeof(b));
    vhdx_overlay_apply(ov, b, sizeof(b), off);
    memset(want, fill, 4096);
    if (fill != 0 && fill != 0x99) {
        memset(want, fill ^ 0x0f, 8);
        memset(want + 4092, fill ^ 0xf0, 4);
    }
    return !memcmp(b, want, 4096);
}

static void test_log(void)
{
    size_t log_len = MIB;
    uint8_t *log = calloc(1, log_len);
    struct vhdx_overlay ov;
    struct vd_error err = {0};
    const uint64_t A = 4 * MIB, B = 4 * MIB + 4096, C = 8 * MIB;

    /* Empty log: nothing to replay. */
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == 0 && ov.entries == 0,
          "empty log");
    vhdx_overlay_free(&ov);

    /* Stale complete sequence (seq 5) in the middle; active one (10..12)
     * starting 4 KiB before the end, wrapping. Entry 11 zeroes a range that
     * covers entry 10's page A, entry 12 writes B again inside it. */
    uint32_t stale = 512 * 1024;
    struct desc s1[] = {{false, A, 0, 0x55}};
    log_entry(log, log_len, stale, 5, stale, s1, 1, false);
    uint32_t tail = (uint32_t)(log_len - 4096);
    struct desc d10[] = {{false, A, 0, 0x10}, {false, C, 0, 0x20}};
    struct desc d11[] = {{true, A, 16 * 4096, 0}};
    struct desc d12[] = {{false, B, 0, 0x30}};
    size_t pos = tail;
    pos = (pos + log_entry(log, log_len, pos, 10, tail, d10, 2, false)) % log_len;
    pos = (pos + log_entry(log, log_len, pos, 11, tail, d11, 1, false)) % log_len;
    size_t p12 = pos;
    log_entry(log, log_len, pos, 12, tail, d12, 1, false);
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == 0, "replay: %s", err.msg);
    CHECK(ov.entries == 3 && ov.head_seq == 12, "entries %llu head %llu",
          (unsigned long long)ov.entries, (unsigned long long)ov.head_seq);
    CHECK(page_is(&ov, A, 0), "A zeroed by the later zero descriptor");
    CHECK(page_is(&ov, B, 0x30), "B rewritten after the zero");
    CHECK(page_is(&ov, A + 2 * 4096, 0), "rest of zero range");
    CHECK(page_is(&ov, A + 16 * 4096, 0x99), "past the zero range untouched");
    CHECK(page_is(&ov, C, 0x20), "C from entry 10");
    CHECK(ov.end == C + 4096, "end");
    {
        /* unaligned apply across extents */
        uint8_t b[10000];
        memset(b, 0x99, sizeof(b));
        vhdx_overlay_apply(&ov, b, sizeof(b), B - 100);
        CHECK(b[0] == 0 && b[99] == 0 && b[100] == (0x30 ^ 0x0f) && b[108] == 0x30 &&
                  b[4196] == 0 && b[9999] == 0,
              "unaligned apply");
    }
    vhdx_overlay_free(&ov);

    /* Wrong GUID: nothing. */
    uint8_t other[16] = {9};
    CHECK(vhdx_log_replay(log, log_len, other, "t", &ov, &err) == 0 && ov.entries == 0,
          "other guid");
    vhdx_overlay_free(&ov);

    /* Torn entry 12: replay stops after 11. */
    log_entry(log, log_len, p12, 12, tail, d12, 1, true);
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == 0 && ov.entries == 2 &&
              ov.head_seq == 11,
          "torn: %llu", (unsigned long long)ov.entries);
    CHECK(page_is(&ov, B, 0), "B stays zero without entry 12");
    vhdx_overlay_free(&ov);

    /* Tail pointing outside the run: that run is incomplete; the stale one
     * wins. */
    memset(log, 0, log_len);
    log_entry(log, log_len, stale, 5, stale, s1, 1, false);
    log_entry(log, log_len, 0, 20, 8192, d12, 1, false);
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == 0 && ov.head_seq == 5 &&
              page_is(&ov, A, 0x55),
          "incomplete run ignored");
    vhdx_overlay_free(&ov);

    /* Descriptor into the headers: entry invalid. */
    memset(log, 0, log_len);
    struct desc hd[] = {{false, 65536, 0, 1}};
    log_entry(log, log_len, 0, 1, 0, hd, 1, false);
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == 0 && ov.entries == 0,
          "header write refused");
    vhdx_overlay_free(&ov);

    /* Hostile: every sector starts a log-long entry with a bad checksum.
     * The search is bounded and says so. */
    memset(log, 0, log_len);
    for (size_t p = 0; p < log_len; p += 4096) {
        memcpy(log + p, "loge", 4);
        put_le32(log + p + 8, (uint32_t)log_len);
        put_le64(log + p + 16, 1);
        memcpy(log + p + 32, LOG_GUID, 16);
    }
    vd_err_clear(&err);
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == -EINVAL &&
              !strcmp(err.msg, "vhdx: t: log is too damaged to search (over 16 passes of "
                               "checksums)"),
          "hostile log: %s", err.msg);
    vhdx_overlay_free(&ov);

    /* Many descriptors (several descriptor sectors). */
    memset(log, 0, log_len);
    struct desc many[200];
    for (int i = 0; i < 200; i++)
        many[i] =
            (struct desc){i % 3 == 0, 2 * MIB + (uint64_t)i * 4096, 4096, (uint8_t)(i % 100 + 1)};
    log_entry(log, log_len, 0, 7, 0, many, 200, false);
    CHECK(vhdx_log_replay(log, log_len, LOG_GUID, "t", &ov, &err) == 0 && ov.entries == 1,
          "many descriptors");
    bool ok = true;
    for (int i = 0; i < 200; i++)
        ok &= page_is(&ov, 2 * MIB + (uint64_t)i * 4096, i % 3 == 0 ? 0 : (uint8_t)(i % 100 + 1));
    CHECK(ok, "many descriptors content");
    vhdx_overlay_free(&ov);
    free(log);
}

/* ---- a whole image in memory ---- */

#define IMG_VSIZE (5 * MIB + 512 * 3)
#define IMG_SIZE  (8 * MIB)

/* 1 MiB blocks, blocks 0 and 3 present (pattern), 1 zero, 2 not present,
 * 5 (the last, partial) present. Layout: log 1M, meta 2M, BAT 3M, data 4M+ */
static uint8_t *build_image(uint8_t *expect)
{
    uint8_t *f = calloc(1, IMG_SIZE);
    memcpy(f, "vhdxfile", 8);
    for (int i = 0; i < 2; i++) {
        uint8_t *h = f + (i ? 128 : 64) * 1024;
        memcpy(h, "head", 4);
        put_le64(h + 8, (uint64_t)i + 1);
        h[32] = 0xd0;
        put_le16(h + 66, 1);
        put_le32(h + 68, MIB);
        put_le64(h + 72, MIB);
        put_crc(h, 4096);
    }
    uint8_t *rt = region_table(0);
    memcpy(f + 192 * 1024, rt, 65536);
    memcpy(f + 256 * 1024, rt, 65536);
    free(rt);
    uint8_t *m = metadata(MIB, IMG_VSIZE, 512, false, 0);
    memcpy(f + 2 * MIB, m, MIB);
    free(m);
    memset(expect, 0, IMG_VSIZE);
    static const int present[] = {0, 3, 5};
    for (int i = 0; i < 3; i++) {
        int blk = present[i];
        uint64_t off = (uint64_t)(4 + i) * MIB;
        put_le64(f + 3 * MIB + 8 * blk, 6 | (off / MIB) << 20);
        for (uint32_t k = 0; k < MIB; k++)
            f[off + k] = (uint8_t)(k * 7 + blk * 13 + k / 4096);
        uint64_t n = blk == 5 ? IMG_VSIZE - 5 * MIB : MIB;
        memcpy(expect + (uint64_t)blk * MIB, f + off, n);
    }
    put_le64(f + 3 * MIB + 8, 2); /* block 1 ZERO */
    return f;
}

struct reader {
    struct vd_image *img;
    const uint8_t *expect;
    unsigned seed;
    int bad;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint8_t *buf = malloc(300000);
    for (int i = 0; i < 300; i++) {
        r->seed = r->seed * 1103515245 + 12345;
        uint64_t off = (r->seed >> 4) % IMG_VSIZE;
        size_t len = (size_t)((r->seed >> 8) % 300000);
        if (off + len > IMG_VSIZE)
            len = (size_t)(IMG_VSIZE - off);
        struct vd_error err = {0};
        if (vd_image_pread(r->img, buf, len, off, &err) < 0 || memcmp(buf, r->expect + off, len))
            r->bad++;
    }
    free(buf);
    return NULL;
}

static void test_image(void)
{
    uint8_t *expect = malloc(IMG_VSIZE);
    uint8_t *f = build_image(expect);
    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_error err = {0};
    CHECK(vd_io_mem_open(f, IMG_SIZE, "mem.vhdx", &io, &err) == 0, "mem io");
    int r = vd_image_open_io(io, "mem.vhdx", NULL, 0, &img, &err);
    CHECK(r == 0, "open: %s", err.msg);
    if (r == 0) {
        CHECK(img->ops == &vd_format_vhdx, "probed as vhdx");
        CHECK(img->size == IMG_VSIZE, "size");
        uint8_t *buf = malloc(IMG_VSIZE);
        CHECK(vd_image_pread(img, buf, IMG_VSIZE, 0, &err) == 0 && !memcmp(buf, expect, IMG_VSIZE),
              "whole read");
        free(buf);
        uint64_t n;
        CHECK(vd_image_block_status(img, 0, IMG_VSIZE, &n, &err) == VD_STATUS_DATA && n == MIB,
              "status 0");
        CHECK(vd_image_block_status(img, MIB + 5, IMG_VSIZE, &n, &err) == VD_STATUS_ZERO &&
                  n == 2 * MIB - 5,
              "status 1-2: %llu", (unsigned long long)n);
        pthread_t th[4];
        struct reader rd[4];
        for (int i = 0; i < 4; i++) {
            rd[i] = (struct reader){img, expect, (unsigned)i * 77 + 1, 0};
            pthread_create(&th[i], NULL, reader_main, &rd[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECK(rd[i].bad == 0, "thread %d: %d bad reads", i, rd[i].bad);
        }
        vd_image_close(img);
    }
    /* Truncating the image anywhere must fail cleanly or read. */
    for (uint64_t cut = 0; cut < IMG_SIZE; cut += 256 * 1024 + 4096) {
        vd_err_clear(&err);
        CHECK(vd_io_mem_open(f, cut, "cut.vhdx", &io, &err) == 0, "mem io");
        struct vd_open_opts o = {.format = "vhdx"};
        if (vd_image_open_io(io, "cut.vhdx", &o, 0, &img, &err) == 0) {
            uint8_t *buf = malloc(IMG_VSIZE);
            vd_image_pread(img, buf, IMG_VSIZE, 0, &err);
            free(buf);
            vd_image_close(img);
        } else {
            CHECK(err.msg[0] != 0, "error message at cut %llu", (unsigned long long)cut);
        }
    }
    free(f);
    free(expect);
}

static void check_count_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)msg;
    *(int *)opaque += corrupt;
}

static struct vd_image *open_mem(const uint8_t *f, size_t n, struct vd_error *err)
{
    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_open_opts o = {.format = "vhdx"};
    if (vd_io_mem_open(f, n, "m.vhdx", &io, err) < 0)
        return NULL;
    if (vd_image_open_io(io, "m.vhdx", &o, 0, &img, err) < 0)
        return NULL;
    return img;
}

static int count_corrupt(struct vd_image *img)
{
    int n = 0;
    struct vd_error err = {0};
    int v = img->ops->check(img, check_count_cb, &n, &err);
    return v == VD_CHECK_CORRUPT ? n : -1;
}

/* The answers map gives, the metadata it declares, and BAT entries that
 * wrap or point into metadata (issue 9): refused with the entry named. */
static void test_map(void)
{
    uint8_t *expect = malloc(IMG_VSIZE);
    uint8_t *f = build_image(expect);
    struct vd_error err = {0};
    struct vd_map m;
    struct vd_image *img = open_mem(f, IMG_SIZE, &err);
    CHECK(img != NULL, "open: %s", err.msg);
    if (img) {
        CHECK(img->nmeta == 4 && img->meta[0].off == 0 && img->meta[0].len == MIB &&
                  !strcmp(img->meta[0].what, "header area") && !strcmp(img->meta[1].what, "log") &&
                  !strcmp(img->meta[2].what, "metadata region") &&
                  !strcmp(img->meta[3].what, "BAT region") && img->meta[3].off == 3 * MIB,
              "declared metadata: %zu ranges", img->nmeta);
        CHECK(vd_image_map_checked(img, 0, IMG_VSIZE, &m, &err) == 0 && m.kind == VD_MAP_DATA &&
                  m.io == img->io && m.io_off == 4 * MIB && m.len == MIB,
              "block 0: data at 4 MiB");
        CHECK(vd_image_map_checked(img, MIB + 5, IMG_VSIZE - MIB - 5, &m, &err) == 0 &&
                  m.kind == VD_MAP_ZERO && m.len == 2 * MIB - 5,
              "blocks 1 (zero) and 2 (not present): one zero run");
        CHECK(vd_image_map_checked(img, 3 * MIB + 7, 100, &m, &err) == 0 && m.kind == VD_MAP_DATA &&
                  m.io_off == 5 * MIB + 7 && m.len == 100,
              "inside block 3");
        CHECK(count_corrupt(img) == -1, "check: clean");
        vd_image_close(img);
    }
    /* Block 1 right after block 0 in the file: one answer for both. */
    put_le64(f + 3 * MIB + 8, 6 | (uint64_t)5 << 20);
    img = open_mem(f, IMG_SIZE, &err);
    if (img) {
        CHECK(vd_image_map_checked(img, 4096, IMG_VSIZE - 4096, &m, &err) == 0 &&
                  m.kind == VD_MAP_DATA && m.io_off == 4 * MIB + 4096 && m.len == 2 * MIB - 4096,
              "blocks 0-1 contiguous: one run of %llu", (unsigned long long)m.len);
        vd_image_close(img);
    }
    put_le64(f + 3 * MIB + 8, 2);

    static const struct {
        uint64_t entry;
        const char *msg;
    } bad[] = {
        {6 | (uint64_t)0xFFFFFFFFFFF << 20,
         "vhdx: m.vhdx: BAT entry 3 (payload block 3) points to file offset 18446744073708503040, "
         "past end of file (8388608 bytes)"},
        {6 | (uint64_t)2 << 20, "vhdx: m.vhdx: BAT entry 3 (payload block 3) points to file offset "
                                "2097152, over the metadata region (2097152..3145728): the image "
                                "is corrupt or crafted; refused"},
        {6, "vhdx: m.vhdx: BAT entry 3 (payload block 3) points to file offset 0, over the header "
            "area (0..1048576): the image is corrupt or crafted; refused"},
    };
    uint8_t *buf = malloc(MIB);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_le64(f + 3 * MIB + 8 * 3, bad[i].entry);
        vd_err_clear(&err);
        img = open_mem(f, IMG_SIZE, &err);
        CHECK(img != NULL, "open with bad entry %zu: %s", i, err.msg);
        if (!img)
            continue;
        vd_err_clear(&err);
        CHECK(vd_image_map_checked(img, 3 * MIB + MIB / 2, 4096, &m, &err) == -EIO &&
                  !strcmp(err.msg, bad[i].msg),
              "map, bad entry %zu: %s", i, err.msg);
        vd_err_clear(&err);
        CHECK(vd_image_pread(img, buf, MIB, 3 * MIB, &err) == -EIO && !strcmp(err.msg, bad[i].msg),
              "pread, bad entry %zu: %s", i, err.msg);
        CHECK(count_corrupt(img) > 0, "check, bad entry %zu: corrupt", i);
        CHECK(vd_image_pread(img, buf, MIB, 0, &err) == 0 && !memcmp(buf, expect, MIB),
              "block 0 still reads");
        vd_image_close(img);
    }
    free(buf);
    free(f);
    free(expect);
}

/* ---- writing: builders, then a writable image in a temporary file ---- */

static void test_build(void)
{
    uint8_t cur[4096], out[4096];
    struct vhdx_header h = {0}, back;
    const char *why = NULL;
    memset(cur, 0, sizeof(cur));
    cur[3000] = 0x5a; /* reserved bytes are kept */
    h.seq = 77;
    memcpy(h.file_write_guid, LOG_GUID, 16);
    h.data_write_guid[3] = 9;
    h.log_guid[15] = 1;
    h.version = 1;
    h.log_length = MIB;
    h.log_offset = 3 * MIB;
    vhdx_build_header(out, cur, &h);
    CHECK(vhdx_parse_header(out, sizeof(out), &back, &why) == 0, "built header parses: %s", why);
    CHECK(back.seq == 77 && back.log_offset == 3 * MIB && back.log_length == MIB &&
              back.version == 1 && !memcmp(back.file_write_guid, LOG_GUID, 16) &&
              back.data_write_guid[3] == 9 && back.log_guid[15] == 1 && out[3000] == 0x5a,
          "header fields round trip");

    /* A log entry with two pages, replayed by the reader. */
    size_t elen = vhdx_log_entry_size(2);
    CHECK(elen == 3 * 4096, "entry size %zu", elen);
    CHECK(vhdx_log_entry_size(127) == 2 * 4096 + 127 * 4096, "127 descriptors need 2 sectors");
    uint8_t *pages = malloc(2 * 4096), *log = calloc(1, MIB);
    for (int i = 0; i < 2 * 4096; i++)
        pages[i] = (uint8_t)(i * 31 + i / 4096);
    uint64_t offs[2] = {5 * MIB, 192 * 1024};
    CHECK(vhdx_log_build_entry(log + 8192, MIB - 8192, 0x100000005ull, 8192, LOG_GUID, 6 * MIB,
                               7 * MIB, offs, pages, 2) == 0,
          "build entry");
    struct vhdx_overlay ov;
    struct vd_error err = {0};
    CHECK(vhdx_log_replay(log, MIB, LOG_GUID, "t", &ov, &err) == 0 && ov.entries == 1 &&
              ov.head_seq == 0x100000005ull && ov.flushed_file_offset == 6 * MIB &&
              ov.last_file_offset == 7 * MIB,
          "built entry replays: %s", err.msg);
    uint8_t got[4096];
    for (int i = 0; i < 2; i++) {
        memset(got, 0xee, sizeof(got));
        vhdx_overlay_apply(&ov, got, sizeof(got), offs[i]);
        CHECK(!memcmp(got, pages + i * 4096, 4096), "page %d replayed", i);
    }
    vhdx_overlay_free(&ov);
    log[8192 + 2 * 4096 + 100] ^= 1; /* torn data sector */
    CHECK(vhdx_log_replay(log, MIB, LOG_GUID, "t", &ov, &err) == 0 && ov.entries == 0,
          "torn built entry is not replayed");
    vhdx_overlay_free(&ov);
    /* What the reader would reject is not built. */
    uint64_t low = 128 * 1024, odd = 5 * MIB + 512;
    CHECK(vhdx_log_build_entry(log, MIB, 0, 0, LOG_GUID, 0, 0, offs, pages, 1) == -EINVAL, "seq 0");
    CHECK(vhdx_log_build_entry(log, MIB, 1, 100, LOG_GUID, 0, 0, offs, pages, 1) == -EINVAL,
          "tail");
    CHECK(vhdx_log_build_entry(log, MIB, 1, 0, LOG_GUID, 0, 0, &low, pages, 1) == -EINVAL,
          "header area");
    CHECK(vhdx_log_build_entry(log, MIB, 1, 0, LOG_GUID, 0, 0, &odd, pages, 1) == -EINVAL,
          "unaligned");
    CHECK(vhdx_log_build_entry(log, 8191, 1, 0, LOG_GUID, 0, 0, offs, pages, 1) == -EINVAL,
          "short buffer");
    CHECK(vhdx_log_build_entry(log, MIB, 1, 0, LOG_GUID, 0, 0, offs, pages, 0) == -EINVAL,
          "no pages");
    free(pages);
    free(log);
}

static int write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = fwrite(b, 1, n, fp);
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

static struct vd_image *open_file(const char *path, bool writable, struct vd_error *err)
{
    struct vd_io *io;
    struct vd_image *img = NULL;
    struct vd_open_opts o = {.writable = writable, .format = "vhdx"};
    if (vd_io_file_open(path, writable, &io, err) < 0)
        return NULL;
    if (vd_image_open_io(io, "w.vhdx", &o, 0, &img, err) < 0)
        return NULL;
    return img;
}

/* Both headers valid with sequence numbers seq and seq + 1 and an empty
 * log (LogGuid zero); DataWriteGuid changed from build_image's when
 * data_changed. */
static void check_headers(const char *path, uint64_t seq, bool data_changed)
{
    uint8_t *b = malloc(192 * 1024);
    FILE *fp = fopen(path, "rb");
    CHECK(fp && fread(b, 1, 192 * 1024, fp) == 192 * 1024, "read headers");
    if (fp)
        fclose(fp);
    static const uint8_t zero[16];
    for (int i = 0; i < 2; i++) {
        struct vhdx_header h;
        const char *why = "";
        CHECK(vhdx_parse_header(b + (i + 1) * 65536, 4096, &h, &why) == 0, "header %d: %s", i + 1,
              why);
        CHECK(h.seq == seq + (uint64_t)i, "header %d sequence %llu", i + 1,
              (unsigned long long)h.seq);
        CHECK(!memcmp(h.log_guid, zero, 16), "header %d: log is empty", i + 1);
        /* build_image's is d0 00 .. 00; a new random one may start with d0 */
        bool same = h.data_write_guid[0] == 0xd0 && !memcmp(h.data_write_guid + 1, zero, 15);
        CHECK(same != data_changed, "header %d DataWriteGuid", i + 1);
        CHECK(memcmp(h.file_write_guid, zero, 16) != 0, "header %d FileWriteGuid set", i + 1);
    }
    free(b);
}

struct writer {
    struct vd_image *img;
    uint8_t *expect; /* this writer's ranges only */
    int id, bad;
};

/* Each writer owns every fourth 64 KiB piece of blocks 0-2 and 4: blocks 1
 * (ZERO), 2 and 4 (not present) are allocated by whichever writer comes
 * first while the others wait and write into them. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    uint8_t *buf = malloc(65536 + 1000);
    static const int blocks[] = {2, 0, 1, 4};
    for (int b = 0; b < 4; b++)
        for (int k = w->id; k < 16; k += 4) {
            uint64_t off = (uint64_t)blocks[b] * MIB + (uint64_t)k * 65536 + 333;
            size_t n = 65536 - 333 - (k == 15 ? 1000 : 0);
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)(i * 13 + k + b * 7 + w->id + 1);
            struct vd_error err = {0};
            if (vd_image_pwrite(w->img, buf, n, off, &err) < 0)
                w->bad++;
            memcpy(w->expect + off, buf, n);
        }
    free(buf);
    return NULL;
}

static void test_write(void)
{
    char path[] = "/tmp/test_vhdx_w.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    close(fd);
    uint8_t *expect = malloc(IMG_VSIZE);
    uint8_t *f = build_image(expect);
    struct vd_error err = {0};

    /* A dirty log (allocating block 2 at 7 MiB) is replayed into the file
     * by a writable open and emptied. */
    uint8_t page[4096];
    memcpy(page, f + 3 * MIB, 4096);
    put_le64(page + 16, 6 | (uint64_t)7 << 20);
    uint64_t poff = 3 * MIB;
    CHECK(vhdx_log_build_entry(f + MIB, MIB, 3, 0, LOG_GUID, IMG_SIZE, IMG_SIZE, &poff, page, 1) ==
              0,
          "log entry");
    for (uint32_t k = 0; k < MIB; k++)
        f[7 * MIB + k] = (uint8_t)(k / 512 + 1);
    memcpy(expect + 2 * MIB, f + 7 * MIB, MIB);
    uint8_t *h2 = f + 128 * 1024; /* the current header (sequence 2) */
    memcpy(h2 + 48, LOG_GUID, 16);
    put_crc(h2, 4096);
    CHECK(write_file(path, f, IMG_SIZE) == 0, "write %s", path);

    struct vd_image *img = open_file(path, false, &err);
    CHECK(img != NULL, "open read-only: %s", err.msg);
    if (img) {
        /* Read-only: the log replayed in memory, answers on a view of the
         * file that applies it (kept with the image), metadata declared
         * there. */
        struct vd_map m;
        uint8_t *buf = malloc(IMG_VSIZE);
        CHECK(vd_image_map_checked(img, 2 * MIB + 1, MIB - 1, &m, &err) == 0 &&
                  m.kind == VD_MAP_DATA && m.io != img->io && img->nfiles == 1 &&
                  m.io == img->files[0] && m.io_off == 7 * MIB + 1,
              "dirty log: block 2 answered on the replayed view: %s", err.msg);
        CHECK(img->nmeta > 0 && img->meta[0].io == img->files[0], "metadata declared on the view");
        CHECK(vd_image_pread(img, buf, IMG_VSIZE, 0, &err) == 0 && !memcmp(buf, expect, IMG_VSIZE),
              "dirty log read in memory");
        free(buf);
        CHECK(vd_image_pwrite(img, page, 10, 0, &err) == -EROFS, "read-only refuses writes");
        vd_image_close(img);
    }
    img = open_file(path, true, &err);
    CHECK(img != NULL, "open writable: %s", err.msg);
    if (!img)
        goto out;
    vd_image_close(img);
    check_headers(path, 3, false);
    img = open_file(path, false, &err);
    if (img) {
        uint8_t *buf = malloc(IMG_VSIZE);
        CHECK(vd_image_pread(img, buf, IMG_VSIZE, 0, &err) == 0 && !memcmp(buf, expect, IMG_VSIZE),
              "replayed into the file");
        free(buf);
        vd_image_close(img);
    }

    /* Four writers at once, two of them into each new block. */
    img = open_file(path, true, &err);
    CHECK(img != NULL, "reopen writable: %s", err.msg);
    if (!img)
        goto out;
    pthread_t th[4];
    struct writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){img, expect, i, 0};
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].bad == 0, "writer %d: %d failed writes", i, w[i].bad);
    }
    uint8_t *buf = malloc(IMG_VSIZE);
    CHECK(vd_image_pread(img, buf, IMG_VSIZE, 0, &err) == 0 && !memcmp(buf, expect, IMG_VSIZE),
          "read back while open");
    CHECK(vd_image_flush(img, &err) == 0, "flush: %s", err.msg);
    uint64_t n;
    CHECK(vd_image_block_status(img, 4 * MIB, MIB, &n, &err) == VD_STATUS_DATA, "block 4 data");
    vd_image_close(img);
    /* New DataWriteGuid (2 updates), then per allocated block (1, 2 was
     * replayed, 4) a LogGuid set and a LogGuid cleared (2 updates each). */
    check_headers(path, 3 + 2 + 8, true);
    img = open_file(path, false, &err);
    CHECK(img != NULL, "reopen: %s", err.msg);
    if (img) {
        CHECK(vd_image_pread(img, buf, IMG_VSIZE, 0, &err) == 0 && !memcmp(buf, expect, IMG_VSIZE),
              "read back after reopening");
        vd_image_close(img);
    }
    free(buf);
out:
    unlink(path);
    free(f);
    free(expect);
}

int main(void)
{
    test_header();
    test_region_table();
    test_metadata();
    test_log();
    test_image();
    test_map();
    test_build();
    test_write();
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    else
        printf("vhdx: all tests passed\n");
    return failures ? 1 : 0;
}
