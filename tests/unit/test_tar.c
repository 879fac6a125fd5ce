/* tar header, pax and walker tests on archives crafted in memory:
 * ustar/v7/GNU headers, GNU base-256 sizes, pax path=/size= (x and g),
 * GNU long names, bad checksums (exact message), truncation, hostile
 * sizes and names, the header cap. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tar.h"
#include "io/mem.h"
#include "test_tar_build.h"
#include "check.h"

static int walk(const struct tb *t, struct vd_tar *out, struct vd_error *err)
{
    struct vd_io *io;
    vd_err_clear(err);
    if (vd_io_mem_open(t->buf, t->len, "t.ova", &io, err) < 0)
        return -ENOMEM;
    int r = vd_tar_walk(io, out, err);
    vd_io_unref(io);
    return r;
}

static void test_headers(void)
{
    uint8_t blk[512];
    struct vd_tar_header h;
    struct vd_error err = {0};

    tb_fill(blk, "disk1.vmdk", 123456, '0', TB_USTAR);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 0, "ustar: %s", err.msg);
    CHECK(!strcmp(h.name, "disk1.vmdk") && h.size == 123456 && h.typeflag == '0' &&
              h.kind == VD_TAR_USTAR,
          "ustar fields: %s %llu", h.name, (unsigned long long)h.size);
    CHECK(vd_tar_probe(blk, 512), "probe ustar");

    /* ustar prefix + name */
    memcpy(blk + 345, "some/dir", 8);
    tb_checksum(blk);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 0, "prefix");
    CHECK(!strcmp(h.name, "some/dir/disk1.vmdk"), "prefix joined: %s", h.name);

    /* a 100-byte name with no NUL */
    char longn[101];
    memset(longn, 'a', 100);
    longn[100] = 0;
    tb_fill(blk, longn, 0, '0', TB_V7);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 0, "v7");
    CHECK(strlen(h.name) == 100 && h.kind == VD_TAR_V7, "v7 100-char name");

    /* GNU base-256: 9 GiB */
    tb_fill(blk, "big.raw", 9ull << 30, '0', TB_GNU);
    CHECK(blk[124] == 0x80, "builder wrote base-256");
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 0, "gnu: %s", err.msg);
    CHECK(h.size == 9ull << 30 && h.kind == VD_TAR_GNU, "base-256 size %llu",
          (unsigned long long)h.size);
    /* GNU tar also writes prefix-less names: the prefix bytes are atime etc. */
    memcpy(blk + 345, "00000000000", 11);
    tb_checksum(blk);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 0 && !strcmp(h.name, "big.raw"),
          "gnu ignores prefix: %s", h.name);

    /* base-256 negative (0xff) */
    tb_fill(blk, "neg", 0, '0', TB_GNU);
    memset(blk + 124, 0xff, 12);
    tb_checksum(blk);
    vd_err_clear(&err);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 1024, &h, &err) == -EINVAL, "negative size");
    CHECK_MSG(err, "tar: t.ova: header at offset 1024: bad size field");

    /* bad octal digit in size */
    tb_fill(blk, "x", 0, '0', TB_USTAR);
    memcpy(blk + 124, "0000000009", 10);
    tb_checksum(blk);
    vd_err_clear(&err);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == -EINVAL, "octal 9");

    /* bad checksum: exact message naming the offset */
    tb_fill(blk, "disk1.vmdk", 512, '0', TB_USTAR);
    blk[0] = 'D';
    vd_err_clear(&err);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 1536, &h, &err) == -EINVAL, "bad checksum");
    char want[200];
    uint8_t good[512];
    tb_fill(good, "disk1.vmdk", 512, '0', TB_USTAR);
    char stored[8];
    memcpy(stored, good + 148, 7);
    stored[6] = 0;
    snprintf(want, sizeof(want),
             "tar: t.ova: header at offset 1536: checksum mismatch (stored '%s', computed %06o)",
             stored, (unsigned)strtoul(stored, NULL, 8) - ('d' - 'D'));
    CHECK_MSG(err, want);
    CHECK(!vd_tar_probe(blk, 512), "probe rejects bad checksum");

    /* signed checksum (old Sun/BSD tars summed chars as signed) */
    tb_fill(blk, "\xe9t\xe9.ovf", 10, '0', TB_USTAR);
    memset(blk + 148, ' ', 8);
    int ssum = 0;
    for (int i = 0; i < 512; i++)
        ssum += (int8_t)blk[i];
    tb_octal(blk + 148, 7, (uint64_t)ssum);
    vd_err_clear(&err);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 0, "signed sum: %s", err.msg);

    /* zero block, truncated block */
    memset(blk, 0, 512);
    CHECK(vd_tar_parse_header(blk, 512, "t.ova", 0, &h, &err) == 1, "zero block");
    CHECK(!vd_tar_probe(blk, 512), "probe zero block");
    vd_err_clear(&err);
    CHECK(vd_tar_parse_header(blk, 100, "t.ova", 512, &h, &err) == -EINVAL, "short");
    CHECK_MSG(err, "tar: t.ova: header at offset 512: truncated (100 bytes)");

    /* an MBR is not a tar header */
    memset(blk, 0, 512);
    blk[510] = 0x55;
    blk[511] = 0xaa;
    CHECK(!vd_tar_probe(blk, 512), "probe MBR");
    /* ... not even when its signed byte sum is 0, which an empty checksum
     * field (read as 0) used to match: spaces 256 + 0x55 (85) + 0xaa (-86)
     * + a disk signature summing to -255, as sfdisk's random one can */
    blk[440] = 0x80; /* -128 */
    blk[441] = 0x81; /* -127 */
    CHECK(!vd_tar_probe(blk, 512), "probe MBR with signed sum 0");
}

static void test_pax(void)
{
    struct vd_tar_pax pax = {0};
    struct vd_error err = {0};
    const char *ok = "29 path=dir/a very long name\n"
                     "20 size=10737418240\n"
                     "30 mtime=1700000000.123456789\n"
                     "22 GNU.sparse.major=1\n";
    CHECK(vd_tar_parse_pax((const uint8_t *)ok, strlen(ok), "t.ova", 512, &pax, &err) == 0,
          "pax: %s", err.msg);
    CHECK(pax.path && !strcmp(pax.path, "dir/a very long name"), "pax path %s", pax.path);
    CHECK(pax.has_size && pax.size == 10737418240ull, "pax size");
    CHECK(pax.sparse, "pax sparse");
    vd_tar_pax_clear(&pax);

    const char *padded = "12 path=abc\n\0\0\0\0";
    CHECK(vd_tar_parse_pax((const uint8_t *)padded, 16, "t.ova", 0, &pax, &err) == 0,
          "NUL padding");
    vd_tar_pax_clear(&pax);

    static const struct {
        const char *rec;
        const char *msg;
    } bad[] = {
        {"13 path=abc\n", "tar: t.ova: pax header at offset 512: malformed record at byte 0"},
        {"99 path=abc\n", "tar: t.ova: pax header at offset 512: malformed record at byte 0"},
        {"x path=abc\n", "tar: t.ova: pax header at offset 512: malformed record at byte 0"},
        {"11 path=ab\r", "tar: t.ova: pax header at offset 512: malformed record at byte 0"},
        {"7 =abc\n", "tar: t.ova: pax header at offset 512: record at byte 0 has no key"},
        {"12 size=-12\n", "tar: t.ova: pax header at offset 512: bad size '-12'"},
        {"29 size=99999999999999999999\n",
         "tar: t.ova: pax header at offset 512: bad size '99999999999999999999'"},
        {"3 \n", "tar: t.ova: pax header at offset 512: record at byte 0 has no key"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vd_err_clear(&err);
        CHECK(vd_tar_parse_pax((const uint8_t *)bad[i].rec, strlen(bad[i].rec), "t.ova", 512, &pax,
                               &err) == -EINVAL,
              "bad pax %zu accepted", i);
        CHECK_MSG(err, bad[i].msg);
        vd_tar_pax_clear(&pax);
    }
    const char nul[] = "12 path=a\0c\n";
    vd_err_clear(&err);
    CHECK(vd_tar_parse_pax((const uint8_t *)nul, 12, "t.ova", 0, &pax, &err) == -EINVAL,
          "NUL in path");
    vd_tar_pax_clear(&pax);
}

static void test_normalize(void)
{
    static const struct {
        const char *in, *out;
        bool unsafe;
    } cases[] = {
        {"disk.vmdk", "disk.vmdk", false},
        {"./disk.vmdk", "disk.vmdk", false},
        {"/abs/disk", "abs/disk", false},
        {"a//b/./c/", "a/b/c", false},
        {"../x", "../x", true},
        {"a/../../b", "a/../../b", true},
        {"..foo/x", "..foo/x", false},
        {".", "", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool unsafe;
        char *n = vd_tar_normalize(cases[i].in, &unsafe);
        CHECK(n && !strcmp(n, cases[i].out) && unsafe == cases[i].unsafe,
              "normalize '%s' -> '%s' %d", cases[i].in, n, unsafe);
        free(n);
    }
}

static void test_walk(void)
{
    struct tb t = {0};
    struct vd_tar tar;
    struct vd_error err = {0};
    static const char data[] = "hello";

    /* ustar, GNU long name, pax x (path+size), pax g, dir, symlink, v7 */
    tb_file_str(&t, "./vm.ovf", "<Envelope/>");
    tb_header(&t, "dir/", 0, '5', TB_USTAR);
    char longname[300];
    memset(longname, 'L', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    tb_header(&t, "././@LongLink", sizeof(longname), 'L', TB_GNU);
    tb_data(&t, longname, sizeof(longname));
    tb_header(&t, "truncated-name", 5, '0', TB_GNU);
    tb_data(&t, data, 5);
    const char *x[] = {"path=pax/name.vmdk", "size=5"};
    tb_pax(&t, 'x', x, 2);
    tb_header(&t, "ignored", 999, '0', TB_USTAR); /* pax size= overrides */
    tb_data(&t, data, 5);
    tb_header(&t, "link", 1000, '2', TB_USTAR); /* size of a symlink counts no data */
    tb_file(&t, "v7file", data, 5, TB_V7);
    size_t before_end = t.len;
    tb_end(&t);

    CHECK(walk(&t, &tar, &err) == 0, "walk: %s", err.msg);
    CHECK(tar.n == 6, "members %zu", tar.n);
    if (tar.n == 6) {
        CHECK(!strcmp(tar.m[0].name, "vm.ovf") && tar.m[0].offset == 512 && tar.m[0].size == 11,
              "m0 %s", tar.m[0].name);
        CHECK(tar.m[1].typeflag == '5' && !strcmp(tar.m[1].name, "dir"), "m1");
        CHECK(!strcmp(tar.m[2].name, longname) && tar.m[2].size == 5, "long name");
        CHECK(!strcmp(tar.m[3].name, "pax/name.vmdk") && tar.m[3].size == 5, "pax name %s",
              tar.m[3].name);
        CHECK(!memcmp(t.buf + tar.m[3].offset, "hello", 5), "pax data offset");
        CHECK(tar.m[4].typeflag == '2' && tar.m[4].size == 0, "symlink");
        CHECK(!strcmp(tar.m[5].name, "v7file") && !memcmp(t.buf + tar.m[5].offset, "hello", 5),
              "v7 member");
    }
    CHECK(vd_tar_find(&tar, "pax/./name.vmdk") == &tar.m[3], "find normalised");
    CHECK(vd_tar_find(&tar, "../vm.ovf") == NULL, "find unsafe");
    vd_tar_free(&tar);

    /* EOF right after the last member (no end blocks), and a short zero tail */
    size_t full = t.len;
    t.len = before_end;
    CHECK(walk(&t, &tar, &err) == 0 && tar.n == 6, "no end blocks: %s", err.msg);
    vd_tar_free(&tar);
    t.len = before_end + 100;
    CHECK(walk(&t, &tar, &err) == 0 && tar.n == 6, "zero tail: %s", err.msg);
    vd_tar_free(&tar);
    t.len = full;

    /* a global pax header applies to later members; x overrides it */
    struct tb g = {0};
    const char *gs[] = {"comment=made by git", "size=3"};
    tb_pax(&g, 'g', gs, 2);
    tb_header(&g, "a", 100, '0', TB_USTAR);
    tb_data(&g, "abc", 3);
    const char *xs[] = {"size=5"};
    tb_pax(&g, 'X', xs, 1); /* Solaris spelling of 'x' */
    tb_header(&g, "b", 100, '0', TB_USTAR);
    tb_data(&g, data, 5);
    tb_end(&g);
    CHECK(walk(&g, &tar, &err) == 0 && tar.n == 2, "global: %s", err.msg);
    if (tar.n == 2)
        CHECK(tar.m[0].size == 3 && tar.m[1].size == 5, "global size");
    vd_tar_free(&tar);
    free(g.buf);

    /* member data past EOF */
    struct tb p = {0};
    tb_file_str(&p, "vm.ovf", "<Envelope/>");
    tb_header(&p, "disk.vmdk", 1ull << 40, '0', TB_GNU);
    tb_data(&p, data, 5);
    CHECK(walk(&p, &tar, &err) == -EINVAL, "past EOF accepted");
    CHECK_MSG(err, "tar: t.ova: member 'disk.vmdk' (header at offset 1024): 1099511627776 bytes "
                   "of data run past the end of the archive (2048 bytes)");
    free(p.buf);

    /* corrupt checksum in the second header */
    struct tb c = {0};
    tb_file_str(&c, "vm.ovf", "<Envelope/>");
    tb_file_str(&c, "disk.raw", "x");
    c.buf[1024 + 5] ^= 1;
    tb_end(&c);
    CHECK(walk(&c, &tar, &err) == -EINVAL, "bad checksum accepted");
    CHECK(strstr(err.msg, "tar: t.ova: header at offset 1024: checksum mismatch"), "%s", err.msg);

    /* truncated header */
    c.len = 1024 + 300;
    c.buf[1024 + 5] ^= 1;
    CHECK(walk(&c, &tar, &err) == -EINVAL, "truncated header accepted");
    CHECK_MSG(err, "tar: t.ova: header at offset 1024: truncated (300 bytes before EOF)");
    free(c.buf);

    /* a huge pax header and a huge long name are capped */
    struct tb h = {0};
    tb_header(&h, "PaxHeaders/big", VD_TAR_MAX_PAX + 1, 'x', TB_USTAR);
    tb_reserve(&h, VD_TAR_MAX_PAX + 1024);
    h.len += VD_TAR_MAX_PAX + 512;
    CHECK(walk(&h, &tar, &err) == -EINVAL, "huge pax accepted");
    CHECK_MSG(err, "tar: t.ova: pax header at offset 512 is 1048577 bytes (limit 1048576)");
    free(h.buf);

    /* header-count cap */
    struct tb many = {0};
    for (int i = 0; i <= VD_TAR_MAX_HEADERS; i++)
        tb_header(&many, "f", 0, '0', TB_USTAR);
    CHECK(walk(&many, &tar, &err) == -EINVAL, "header cap");
    CHECK_MSG(err, "tar: t.ova: more than 100000 headers (hostile archive?)");
    free(many.buf);
    free(t.buf);
}

int main(void)
{
    test_headers();
    test_pax();
    test_normalize();
    test_walk();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
