/*
 * Unit tests for the VHD parsers (formats/vhd.h) and for the driver on an
 * in-memory image built here by the spec: checksums, 511-byte footers,
 * UTF-16 decoding, header validation, reads of allocated/unallocated blocks
 * with odd offsets, block status, the map answers and the refusal of a block
 * over the image's own metadata, and the error for a parent that cannot be
 * opened from a memory io.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "core/driver.h"
#include "formats/vhd.h"
#include "io/mem.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond);                       \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        if (strcmp((got), (want)) != 0) {                                                          \
            fprintf(stderr, "%s:%d: FAIL:\n  got  '%s'\n  want '%s'\n", __FILE__, __LINE__, (got), \
                    (want));                                                                       \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void make_footer(uint8_t *f, uint32_t type, uint64_t size, uint64_t data_offset)
{
    memset(f, 0, 512);
    memcpy(f, "conectix", 8);
    put_be32(f + 8, 2);
    put_be32(f + 12, 0x00010000);
    put_be64(f + 16, data_offset);
    memcpy(f + 28, "test", 4);
    put_be32(f + 32, 0x00010002);
    memcpy(f + 36, "Wi2k", 4);
    put_be64(f + 40, size);
    put_be64(f + 48, size);
    put_be16(f + 56, 3);
    f[58] = 4;
    f[59] = 17;
    put_be32(f + 60, type);
    for (int i = 0; i < 16; i++)
        f[68 + i] = (uint8_t)(0x10 + i);
    put_be32(f + 64, vd_vhd_checksum(f, 512, 64));
}

static void test_footer(void)
{
    uint8_t f[512];
    struct vhd_footer ft;
    struct vd_error err = {0};
    make_footer(f, VHD_FIXED, 104448, ~0ull);
    CHECK(vd_vhd_parse_footer(f, 512, "x.vhd", &ft, &err) == 0);
    CHECK(ft.checksum == ft.computed_checksum);
    CHECK(ft.current_size == 104448 && ft.disk_type == VHD_FIXED);
    CHECK(ft.cylinders == 3 && ft.heads == 4 && ft.sectors_per_track == 17);
    CHECK_STR(ft.creator_app, "test");
    CHECK(ft.uuid[0] == 0x10 && ft.uuid[15] == 0x1f && !ft.saved_state);
    /* 511-byte footer: the last reserved byte is missing, checksum still ok */
    CHECK(vd_vhd_parse_footer(f, 511, "x.vhd", &ft, &err) == 0);
    CHECK(ft.checksum == ft.computed_checksum);
    CHECK(vd_vhd_parse_footer(f, 510, "x.vhd", &ft, &err) == -EINVAL);
    CHECK_STR(err.msg, "vhd: x.vhd: footer is 510 bytes, need 511 or 512");
    /* the checksum excludes its own field: a flipped byte is detected */
    f[40] ^= 1;
    vd_err_clear(&err);
    CHECK(vd_vhd_parse_footer(f, 512, "x.vhd", &ft, &err) == 0);
    CHECK(ft.checksum != ft.computed_checksum);
    f[0] = 'C';
    CHECK(vd_vhd_parse_footer(f, 512, "x.vhd", &ft, &err) == -EINVAL);
    CHECK_STR(err.msg, "vhd: x.vhd: no 'conectix' cookie in footer");
    /* spec example checksum: ones' complement of the byte sum */
    uint8_t b[8] = {1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd};
    CHECK(vd_vhd_checksum(b, 8, 4) == ~(uint32_t)10);
}

static void test_utf16(void)
{
    char out[64];
    const uint8_t le[] = {'C', 0, ':', 0, '\\', 0, 0xe9, 0, 'x', 0, 0, 0, 'y', 0};
    CHECK(vd_vhd_utf16_to_utf8(le, sizeof(le), false, out, sizeof(out)) == 6);
    CHECK_STR(out, "C:\\\xc3\xa9x");
    /* surrogate pair U+1F600 big-endian, then an unpaired low surrogate */
    const uint8_t be[] = {0xd8, 0x3d, 0xde, 0x00, 0xdc, 0x00, 0x00, 'a'};
    vd_vhd_utf16_to_utf8(be, sizeof(be), true, out, sizeof(out));
    CHECK_STR(out, "\xf0\x9f\x98\x80\xef\xbf\xbd"
                   "a");
    /* odd length and a tiny output buffer never overflow */
    vd_vhd_utf16_to_utf8(le, 3, false, out, sizeof(out));
    CHECK_STR(out, "C");
    vd_vhd_utf16_to_utf8(le, sizeof(le), false, out, 3);
    CHECK_STR(out, "C:");
}

static void make_header(uint8_t *h, uint64_t table, uint32_t entries, uint32_t bs)
{
    memset(h, 0, 1024);
    memcpy(h, "cxsparse", 8);
    put_be64(h + 8, ~0ull);
    put_be64(h + 16, table);
    put_be32(h + 24, 0x00010000);
    put_be32(h + 28, entries);
    put_be32(h + 32, bs);
    put_be32(h + 36, vd_vhd_checksum(h, 1024, 36));
}

static void test_header(void)
{
    uint8_t h[1024];
    struct vhd_dyn_header dh;
    struct vd_error err = {0};
    make_header(h, 1536, 3, 2 << 20);
    /* parent name "p.vhd" in UTF-16BE, one W2ru locator */
    const char *pn = "p.vhd";
    for (int i = 0; pn[i]; i++)
        h[64 + 2 * i + 1] = (uint8_t)pn[i];
    memcpy(h + 576, "W2ru", 4);
    put_be32(h + 580, 512);
    put_be32(h + 584, 10);
    put_be64(h + 592, 4096);
    CHECK(vd_vhd_parse_dyn_header(h, 1024, "d.vhd", &dh, &err) == 0);
    CHECK(dh.table_offset == 1536 && dh.max_table_entries == 3 && dh.block_size == 2 << 20);
    CHECK_STR(dh.parent_name, "p.vhd");
    CHECK_STR(dh.loc[0].code, "W2ru");
    CHECK(dh.loc[0].data_length == 10 && dh.loc[0].data_offset == 4096);
    CHECK(dh.checksum != dh.computed_checksum); /* edited after checksumming */
    make_header(h, 1536, 3, 3 << 20);
    CHECK(vd_vhd_parse_dyn_header(h, 1024, "d.vhd", &dh, &err) == -EINVAL);
    CHECK_STR(err.msg, "vhd: d.vhd: block size 3145728 is invalid (must be a power of two from "
                       "512 bytes to 256 MiB)");
    vd_err_clear(&err);
    make_header(h, 1536, 3, 256);
    CHECK(vd_vhd_parse_dyn_header(h, 1024, "d.vhd", &dh, &err) == -EINVAL);
    vd_err_clear(&err);
    make_header(h, 1536, VHD_MAX_BAT_ENTRIES + 1, 2 << 20);
    CHECK(vd_vhd_parse_dyn_header(h, 1024, "d.vhd", &dh, &err) == -EINVAL);
    CHECK_STR(err.msg, "vhd: d.vhd: BAT of 16777217 entries exceeds the limit of 16777216");
    vd_err_clear(&err);
    CHECK(vd_vhd_parse_dyn_header(h, 1000, "d.vhd", &dh, &err) == -EINVAL);
    CHECK_STR(err.msg, "vhd: d.vhd: dynamic header is 1000 bytes, need 1024");
}

/* A 3-block dynamic disk with 4 KiB blocks (bitmap 512 bytes): block 0 holds
 * bytes i&0xff, block 1 unallocated, block 2 holds 0xAB; 10 KiB virtual. */
#define BS 4096u
static uint8_t *build_dynamic(size_t *len, uint32_t type)
{
    size_t n = 512 + 1024 + 512 + 2 * (512 + BS) + 512;
    uint8_t *img = calloc(1, n);
    make_footer(img, type, 10240, 512);
    make_header(img + 512, 1536, 3, BS);
    uint32_t blk0 = 2048 / 512, blk2 = (2048 + 512 + BS) / 512;
    put_be32(img + 1536, blk0);
    put_be32(img + 1540, 0xFFFFFFFF);
    put_be32(img + 1544, blk2);
    memset(img + 2048, 0xff, 1); /* sectors 0-7 of block 0 */
    for (uint32_t i = 0; i < BS; i++)
        img[2048 + 512 + i] = (uint8_t)i;
    img[blk2 * 512] = 0x80; /* only sector 0 of block 2 */
    memset(img + blk2 * 512 + 512, 0xab, BS);
    memcpy(img + n - 512, img, 512);
    *len = n;
    return img;
}

static void test_image(void)
{
    size_t len;
    uint8_t *buf = build_dynamic(&len, VHD_DYNAMIC);
    struct vd_io *io;
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    CHECK(vd_io_mem_open(buf, len, "mem.vhd", &io, &err) == 0);
    CHECK(vd_image_open_io(io, "mem.vhd", NULL, 0, &img, &err) == 0);
    if (!img) {
        fprintf(stderr, "open: %s\n", err.msg);
        failures++;
        free(buf);
        return;
    }
    CHECK_STR(vd_image_format(img), "vhd");
    CHECK_STR(vd_image_subformat(img), "dynamic");
    CHECK(vd_image_size(img) == 10240);
    uint8_t out[10240];
    CHECK(vd_image_pread(img, out, sizeof(out), 0, &err) == 0);
    int ok = 1;
    for (uint32_t i = 0; i < 10240; i++) {
        uint8_t want = i < BS ? (uint8_t)i : i < 2 * BS ? 0 : 0xab;
        if (out[i] != want)
            ok = 0;
    }
    CHECK(ok);
    /* an unaligned read across the block boundary */
    CHECK(vd_image_pread(img, out, 3, BS - 1, &err) == 0);
    CHECK(out[0] == 0xff && out[1] == 0 && out[2] == 0);
    uint64_t pnum;
    CHECK(vd_image_block_status(img, 0, 10240, &pnum, &err) == VD_STATUS_DATA && pnum == BS);
    CHECK(vd_image_block_status(img, BS, 10240 - BS, &pnum, &err) == VD_STATUS_ZERO && pnum == BS);
    CHECK(vd_image_pread(img, out, 1, 10240, &err) == -EINVAL);
    vd_image_close(img);

    /* the same bytes as a differencing disk: the parent cannot be opened
     * beside a memory io, which is a clear error, never zeros */
    free(buf);
    buf = build_dynamic(&len, VHD_DIFF);
    uint8_t *h = buf + 512;
    const char *pn = "base.vhd";
    for (int i = 0; pn[i]; i++)
        h[64 + 2 * i + 1] = (uint8_t)pn[i];
    h[40] = 0x42;
    put_be32(h + 36, 0);
    put_be32(h + 36, vd_vhd_checksum(h, 1024, 36));
    vd_err_clear(&err);
    CHECK(vd_io_mem_open(buf, len, "child.vhd", &io, &err) == 0);
    CHECK(vd_image_open_io(io, "child.vhd", NULL, 0, &img, &err) == -ENOENT);
    CHECK_STR(err.msg,
              "vhd: child.vhd: parent disk (unique id 42000000-0000-0000-0000-000000000000) "
              "not found; tried 'base.vhd'");
    free(buf);
}

static void count_corrupt(void *opaque, bool corrupt, const char *msg)
{
    (void)msg;
    *(int *)opaque += corrupt;
}

/* The answers map() gives (the core reads from them), and a BAT entry
 * pointing at the dynamic header: refused with EIO naming the entry,
 * whatever part of the block is asked, and reported by check. */
static void test_map(void)
{
    size_t len;
    uint8_t *buf = build_dynamic(&len, VHD_DYNAMIC);
    struct vd_io *io;
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    struct vd_map m;
    CHECK(vd_io_mem_open(buf, len, "m.vhd", &io, &err) == 0);
    CHECK(vd_image_open_io(io, "m.vhd", NULL, 0, &img, &err) == 0);
    if (!img) {
        failures++;
        free(buf);
        return;
    }
    CHECK(vd_image_map_checked(img, 10, 10240 - 10, &m, &err) == 0);
    CHECK(m.kind == VD_MAP_DATA && m.len == BS - 10 && m.io_off == 2048 + 512 + 10);
    CHECK(vd_image_map_checked(img, BS, 10240 - BS, &m, &err) == 0);
    CHECK(m.kind == VD_MAP_ZERO && m.len == BS);
    CHECK(vd_image_map_checked(img, 2 * BS + 1, 100, &m, &err) == 0);
    CHECK(m.kind == VD_MAP_DATA && m.len == 100 && m.io_off == 2048 + 2 * 512 + BS + 1);
    /* footer copy, header and BAT merge into one declared range; the end-of-file footer */
    CHECK(vd_image_meta_overlap(img, img->io, 0, 2048) != NULL);
    CHECK(vd_image_meta_overlap(img, img->io, len - 512, 512) != NULL);
    CHECK(vd_image_meta_overlap(img, img->io, 2048, len - 512 - 2048) == NULL);
    vd_image_close(img);

    put_be32(buf + 1544, 1); /* block 2 -> sector 1, the dynamic header */
    CHECK(vd_io_mem_open(buf, len, "m.vhd", &io, &err) == 0);
    CHECK(vd_image_open_io(io, "m.vhd", NULL, 0, &img, &err) == 0);
    if (img) {
        uint8_t out[16];
        vd_err_clear(&err);
        CHECK(vd_image_map_checked(img, 2 * BS + 1024, 16, &m, &err) == -EIO);
        CHECK_STR(err.msg, "vhd: m.vhd: BAT entry 2: block at offset 512 overlaps the dynamic "
                           "header (512..1536); refused, its bytes are the image's own metadata "
                           "(the image is corrupt or crafted: see vdisk check)");
        vd_err_clear(&err);
        CHECK(vd_image_pread(img, out, sizeof(out), 10240 - 16, &err) == -EIO);
        int corrupt = 0;
        CHECK(img->ops->check(img, count_corrupt, &corrupt, &err) == VD_CHECK_CORRUPT);
        CHECK(corrupt > 0);
        vd_image_close(img);
    }
    free(buf);
}

int main(void)
{
    test_footer();
    test_utf16();
    test_header();
    test_image();
    test_map();
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    else
        printf("ok\n");
    return failures ? 1 : 0;
}
