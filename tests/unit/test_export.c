/* Export core: option parsing, format names, the reorder window (accepted
 * and rejected writes with their exact messages), truncate, finish/abort
 * leaving nothing behind, and exact raw output bytes and sha256.
 *
 * Also a tiny CLI for the integration tests until `vdisk convert` exists:
 *   test_export --convert SRC DEST FORMAT [key=value ...]
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <pthread.h>

#include "common/byteorder.h"
#include "common/crc32c.h"
#include "export/encoder.h"
#include "vdisk/export.h"
#include "vdisk/vdisk.h"
#include "check.h"

static char dir[256];

static int count_entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    if (d)
        closedir(d);
    return n;
}

static bool vd_export_is_zero_for_test(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void sha256_hex(const void *buf, size_t len, char *hex)
{
    unsigned char d[32];
    unsigned n;
    EVP_Digest(buf, len, d, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
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
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void test_opts(void)
{
    struct vd_export_opts o;
    struct vd_error err = {0};
    vd_export_opts_init(&o);
    CHECK(o.compress_level == -1, "default level");
    CHECK(vd_export_opt(&o, "vhd_type", "fixed", &err) == 1 && strcmp(o.vhd_type, "fixed") == 0,
          "vhd_type");
    CHECK(vd_export_opt(&o, "reorder_window", "8M", &err) == 1 && o.reorder_window == 8 << 20,
          "window");
    CHECK(vd_export_opt(&o, "threads", "3", &err) == 1 && o.threads == 3, "threads");
    CHECK(vd_export_opt(&o, "nope", "1", &err) == 0, "unknown key");
    CHECK(vd_export_opt(&o, "vhdx_type", "sparse", &err) == -EINVAL, "bad vhdx_type");
    CHECK(strcmp(err.msg, "export: vhdx_type=sparse: expected dynamic or fixed") == 0, "%s",
          err.msg);
    vd_err_clear(&err);
    CHECK(vd_export_opt(&o, "compress_level", "13", &err) == -EINVAL, "bad level");
    CHECK(strcmp(err.msg, "export: compress_level=13: expected 1..12") == 0, "%s", err.msg);
    CHECK(!strcmp(vd_export_format_for("a/b.VMDK"), "vmdk"), "vmdk ext");
    CHECK(!strcmp(vd_export_format_for("x.vhdx"), "vhdx"), "vhdx ext");
    CHECK(!strcmp(vd_export_format_for("x.img"), "raw"), "img ext");
    CHECK(vd_export_format_for("x.qcow2") == NULL && vd_export_format_for("vhd") == NULL,
          "unknown ext");
}

/* Writes in mixed order within the window, a hole, truncate: exact bytes. */
static void test_raw_window(void)
{
    const size_t size = (3u << 20) + 1234;
    uint8_t *want = calloc(1, size);
    char dest[300], hex[65], ref[65];
    struct vd_export_opts o;
    struct vd_export *e;
    struct vd_error err = {0};
    uint64_t bytes = 0;
    vd_export_opts_init(&o);
    o.reorder_window = 1 << 20;
    snprintf(dest, sizeof(dest), "%s/a.raw", dir);
    CHECK(vd_export_begin(dest, "raw", &o, &e, &err) == 0, "begin: %s", err.msg);
    for (size_t i = 0; i < size; i++)
        want[i] = (uint8_t)(i * 7 + i / 4096);
    memset(want + (1u << 20), 0, 300000); /* a hole never written */
    /* 64 KiB blocks of the first MiB in reverse, then the rest forwards
     * in odd-sized pieces, skipping the hole. */
    for (int b = 15; b >= 0; b--)
        CHECK(vd_export_pwrite(e, want + b * 65536, 65536, (uint64_t)b * 65536, &err) == 0,
              "reverse %d: %s", b, err.msg);
    for (size_t off = (1u << 20) + 300000; off < size - 1000;) {
        size_t n = off + 77777 > size - 1000 ? size - 1000 - off : 77777;
        CHECK(vd_export_pwrite(e, want + off, n, off, &err) == 0, "fwd: %s", err.msg);
        off += n;
    }
    memset(want + size - 1000, 0, 1000); /* trailing hole: size from truncate */
    CHECK(vd_export_truncate(e, size, &err) == 0, "truncate: %s", err.msg);
    CHECK(vd_export_size(e) == size, "size");
    CHECK(vd_export_finish(e, &bytes, hex, &err) == 0, "finish: %s", err.msg);
    size_t got_len = 0;
    uint8_t *got = slurp(dest, &got_len);
    CHECK(got && got_len == size && memcmp(got, want, size) == 0, "raw bytes differ");
    CHECK(bytes == size, "out bytes %llu", (unsigned long long)bytes);
    sha256_hex(want, size, ref);
    CHECK(strcmp(hex, ref) == 0, "sha256 %s vs %s", hex, ref);
    CHECK(count_entries() == 1, "only a.raw in the dir");
    unlink(dest);
    free(got);
    free(want);
}

static void test_rejects(void)
{
    char dest[300];
    uint8_t buf[4096];
    struct vd_export_opts o;
    struct vd_export *e;
    struct vd_error err = {0};
    memset(buf, 0xab, sizeof(buf));
    vd_export_opts_init(&o);
    o.reorder_window = 1 << 20;
    snprintf(dest, sizeof(dest), "%s/b.vmdk", dir);

    /* Behind the window: exact message, the export is poisoned. */
    CHECK(vd_export_begin(dest, "vmdk", &o, &e, &err) == 0, "begin: %s", err.msg);
    CHECK(vd_export_pwrite(e, buf, sizeof(buf), 8 << 20, &err) == 0, "far write");
    CHECK(vd_export_pwrite(e, buf, sizeof(buf), (7 << 20) + 65536, &err) == 0, "in window");
    CHECK(vd_export_pwrite(e, buf, sizeof(buf), 4096, &err) == -EINVAL, "behind window");
    CHECK(strstr(err.msg, "b.vmdk: write at offset 4096 is behind the encoded point 7340032: "
                          "writes must stay within reorder_window=1048576 bytes of the "
                          "highest offset written") != NULL,
          "%s", err.msg);
    vd_err_clear(&err);
    CHECK(vd_export_pwrite(e, buf, sizeof(buf), 9 << 20, &err) == -EIO, "poisoned");
    vd_err_clear(&err);
    CHECK(vd_export_finish(e, NULL, NULL, &err) == -EIO, "finish fails");
    CHECK(count_entries() == 0, "nothing left after a failed finish");

    /* Shrinking below the encoded point. */
    vd_err_clear(&err);
    CHECK(vd_export_begin(dest, "vmdk", &o, &e, &err) == 0, "begin");
    CHECK(vd_export_pwrite(e, buf, sizeof(buf), 8 << 20, &err) == 0, "far write");
    CHECK(vd_export_truncate(e, 1 << 20, &err) == -EINVAL, "shrink");
    CHECK(strstr(err.msg, "cannot shrink to 1048576 bytes: 7340032 bytes are already encoded"),
          "%s", err.msg);
    vd_export_abort(e);
    CHECK(count_entries() == 0, "nothing left after abort");

    /* Format limits and names. */
    vd_err_clear(&err);
    CHECK(vd_export_begin(dest, "qcow2", &o, &e, &err) == -EINVAL, "unknown format");
    CHECK(strstr(err.msg, "unknown format 'qcow2'"), "%s", err.msg);
    vd_err_clear(&err);
    snprintf(dest, sizeof(dest), "%s/c.vhd", dir);
    CHECK(vd_export_begin(dest, "vhd", &o, &e, &err) == 0, "begin vhd");
    CHECK(vd_export_pwrite(e, buf, 512, 2041ull << 30, &err) == -EFBIG, "vhd limit");
    CHECK(strstr(err.msg, "passes the vhd limit of 2190433320960 bytes"), "%s", err.msg);
    vd_export_abort(e);
    vd_err_clear(&err);
    snprintf(dest, sizeof(dest), "%s/nodir/c.vhd", dir);
    CHECK(vd_export_begin(dest, "vhd", &o, &e, &err) == -ENOENT, "missing dir");
    CHECK(strstr(err.msg, "/nodir/c.vhd: cannot create temporary file: No such file or directory"),
          "%s", err.msg);
    CHECK(count_entries() == 0, "nothing left");
}

/* Empty and zero-only exports still produce valid (empty) images. */
static void test_empty(void)
{
    static const char *const fmts[] = {"raw", "vmdk", "vhd", "vhdx", "ova"};
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        char dest[300], hex[65];
        struct vd_export *e;
        struct vd_error err = {0};
        uint64_t bytes;
        snprintf(dest, sizeof(dest), "%s/e.%s", dir, fmts[i]);
        CHECK(vd_export_begin(dest, fmts[i], NULL, &e, &err) == 0, "begin %s", fmts[i]);
        CHECK(vd_export_finish(e, &bytes, hex, &err) == 0, "finish %s: %s", fmts[i], err.msg);
        struct stat st;
        CHECK(stat(dest, &st) == 0 && (uint64_t)st.st_size == bytes, "%s size", fmts[i]);
        /* A digest only where it streamed (raw, VMDK); formats that patch
         * their head report none rather than read the output back. */
        size_t len = 0;
        uint8_t *got = slurp(dest, &len);
        char ref[65];
        sha256_hex(got, len, ref);
        bool streams = i < 2;
        CHECK(streams ? strcmp(hex, ref) == 0 : hex[0] == '\0', "%s sha '%s'", fmts[i], hex);
        free(got);
        unlink(dest);
    }
}

/* Build a 20 MiB disk (random head, zeros, a tail block) as FORMAT into
 * dir/NAME and return the output bytes (caller frees). */
static uint8_t *make(const char *name, const char *format, const char *opt, size_t *len)
{
    static uint8_t buf[1 << 20];
    char dest[300];
    struct vd_export_opts o;
    struct vd_export *e;
    struct vd_error err = {0};
    vd_export_opts_init(&o);
    if (opt) {
        char k[64], *v;
        snprintf(k, sizeof(k), "%s", opt);
        v = strchr(k, '=');
        *v++ = '\0';
        vd_export_opt(&o, k, v, &err);
    }
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + (i >> 9));
    snprintf(dest, sizeof(dest), "%s/%s", dir, name);
    if (vd_export_begin(dest, format, &o, &e, &err) < 0 ||
        vd_export_pwrite(e, buf, sizeof(buf), 0, &err) < 0 ||
        vd_export_pwrite(e, buf, 4096, (19u << 20) + 8192, &err) < 0 ||
        vd_export_truncate(e, 20u << 20, &err) < 0 || vd_export_finish(e, NULL, NULL, &err) < 0) {
        CHECK(0, "make %s: %s", name, err.msg);
        return NULL;
    }
    uint8_t *out = slurp(dest, len);
    unlink(dest);
    return out;
}

/* Header fields the spec and the brief require, read from our own output
 * (the qemu/libyal oracles check the data; this checks the metadata). */
static void test_vmdk_fields(void)
{
    size_t len = 0;
    uint8_t *f = make("f.vmdk", "vmdk", NULL, &len);
    if (!f)
        return;
    CHECK(memcmp(f, "KDMV", 4) == 0 && le32(f + 4) == 3, "magic/version");
    CHECK(le32(f + 8) == 0x30001, "flags %x", le32(f + 8));
    CHECK(le64(f + 12) == 40960 && le64(f + 20) == 128, "capacity/grain");
    CHECK(le64(f + 28) == 1 && le32(f + 44) == 512, "descriptor offset, GTEs");
    CHECK(le64(f + 56) == UINT64_MAX, "gdOffset in the head is GD_AT_END");
    CHECK(le16(f + 77) == 1 && f[73] == '\n' && f[75] == '\r', "compression, NL test");
    const char *d = (const char *)f + 512;
    CHECK(strstr(d, "createType=\"streamOptimized\"") != NULL, "createType");
    CHECK(strstr(d, "\nRW 40960 SPARSE \"f.vmdk\"\n") != NULL, "extent line: %.300s", d);
    CHECK(strstr(d, "ddb.adapterType = \"lsilogic\"") != NULL, "adapter");
    /* 40960/(255*63) rounded up, as VMware's open-vmdk computes it */
    CHECK(strstr(d, "ddb.geometry.cylinders = \"3\"") != NULL, "cylinders");
    CHECK(strstr(d, "ddb.toolsInstallType = \"4\"\nddb.toolsVersion = \"2147483647\"\n"),
          "tools keys as vmdk-convert writes them");
    CHECK(strstr(d, "ddb.virtualHWVersion = \"4\"") != NULL, "hw version");
    CHECK(strstr(d, "ddb.uuid = \"") != NULL && strstr(d, "\nCID=") != NULL, "uuid, CID");
    /* tail: footer marker, footer, end-of-stream marker */
    const uint8_t *eos = f + len - 512, *footer = eos - 512, *fm = footer - 512;
    CHECK(vd_export_is_zero_for_test(eos, 512), "EOS marker");
    CHECK(le64(fm) == 1 && le32(fm + 8) == 0 && le32(fm + 12) == 3, "footer marker");
    CHECK(memcmp(footer, "KDMV", 4) == 0 && le64(footer + 12) == 40960, "footer header");
    uint64_t gd = le64(footer + 56);
    CHECK(gd > 128 && gd * 512 < len, "footer gdOffset %llu", (unsigned long long)gd);
    const uint8_t *gdm = f + (gd - 1) * 512;
    CHECK(le64(gdm) == 1 && le32(gdm + 12) == 2, "GD marker");
    uint32_t gt = le32(f + gd * 512);
    CHECK(gt > 128 && le32(f + (uint64_t)(gt - 1) * 512 + 12) == 1, "GT marker before GT 0");
    uint32_t g0 = le32(f + (uint64_t)gt * 512);
    CHECK(g0 == 128 && le64(f + 128 * 512) == 0, "grain 0 marker at sector 128, LBA 0");
    uint32_t g2 = le32(f + (uint64_t)gt * 512 + 4 * 16);
    CHECK(g2 == 0, "zero grain 16 not stored");
    free(f);
}

static void test_vhd_fields(void)
{
    size_t len = 0;
    uint8_t *f = make("f.vhd", "vhd", NULL, &len);
    if (!f)
        return;
    const uint8_t *ft = f + len - 512;
    CHECK(memcmp(ft, f, 512) == 0, "footer copy at 0");
    CHECK(memcmp(ft, "conectix", 8) == 0 && memcmp(ft + 28, "win ", 4) == 0 &&
              be32(ft + 32) == 0x000a0000 && memcmp(ft + 36, "Wi2k", 4) == 0,
          "creator");
    CHECK(be64(ft + 40) == 20u << 20 && be64(ft + 48) == 20u << 20, "sizes");
    /* CHS by the spec for 40960 sectors: 17 spt, 4 heads, 2409/4 = 602 cyl */
    CHECK(be16(ft + 56) == 602 && ft[58] == 4 && ft[59] == 17, "CHS %u/%u/%u", be16(ft + 56),
          ft[58], ft[59]);
    CHECK(be32(ft + 60) == 3, "dynamic");
    uint32_t sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 64 && i < 68) ? 0 : ft[i];
    CHECK(~sum == be32(ft + 64), "footer checksum");
    const uint8_t *dh = f + 512;
    CHECK(memcmp(dh, "cxsparse", 8) == 0 && be64(dh + 16) == 1536 && be32(dh + 28) == 10 &&
              be32(dh + 32) == 2u << 20,
          "dynamic header");
    const uint8_t *bat = f + 1536;
    CHECK(be32(bat) != 0xffffffffu && be32(bat + 4) == 0xffffffffu && be32(bat + 36) != 0xffffffffu,
          "BAT: block 0 and 9 allocated, 1 not");
    const uint8_t *b0 = f + (uint64_t)be32(bat) * 512;
    CHECK(b0[0] == 0xff && b0[511] == 0xff, "sector bitmap all ones");
    free(f);
    f = make("g.vhd", "vhd", "vhd_type=fixed", &len);
    CHECK(f && len == (20u << 20) + 512 && be32(f + len - 512 + 60) == 2, "fixed VHD");
    free(f);
}

static void test_vhdx_fields(void)
{
    size_t len = 0;
    uint8_t *f = make("f.vhdx", "vhdx", NULL, &len);
    if (!f)
        return;
    CHECK(memcmp(f, "vhdxfile", 8) == 0, "file type identifier");
    for (int h = 0; h < 2; h++) {
        uint8_t *p = f + 65536 * (1 + h), copy[4096];
        memcpy(copy, p, 4096);
        memset(copy + 4, 0, 4);
        CHECK(memcmp(p, "head", 4) == 0 && le32(p + 4) == vd_crc32c(0, copy, 4096), "header %d crc",
              h);
        CHECK(le64(p + 8) == (uint64_t)h + 1 && vd_export_is_zero_for_test(p + 48, 16),
              "seq, LogGuid");
        CHECK(le32(p + 68) == 1u << 20 && le64(p + 72) == 1u << 20, "log at 1 MiB");
    }
    static uint8_t copy[65536];
    for (int r = 0; r < 2; r++) {
        uint8_t *p = f + 196608 + 65536 * r;
        memcpy(copy, p, 65536);
        memset(copy + 4, 0, 4);
        CHECK(memcmp(p, "regi", 4) == 0 && le32(p + 4) == vd_crc32c(0, copy, 65536),
              "region %d crc", r);
        uint64_t bat = le64(p + 16 + 16);
        CHECK(bat % (1u << 20) == 0 && bat + le32(p + 16 + 24) == len, "BAT at the end, aligned");
        if (r == 0) {
            const uint8_t *b = f + bat;
            CHECK((le64(b) & 7) == 6 && (le64(b) >> 20) == 3, "block 0 present at 3 MiB");
        }
    }
    const uint8_t *m = f + (2u << 20);
    CHECK(memcmp(m, "metadata", 8) == 0 && le16(m + 10) == 5, "metadata table");
    CHECK(le64(m + 65536 + 4096) == 20u << 20, "virtual disk size");
    CHECK(le32(m + 65536) == 1u << 20, "default block size 1 MiB (docs/vhdx.md)");
    free(f);
}

/* ustar headers: octal below 8 GiB, GNU base-256 above, as GNU tar reads. */
static void test_tar_header(void)
{
    uint8_t h[512 * 3] = {0};
    vd_export_tar_header(h, "big-disk1.vmdk", 9663676416ull, 1700000000u);
    CHECK(h[124] == 0x80 && be64(h + 128) == 9663676416ull, "base-256 size");
    CHECK(memcmp(h + 257, "ustar", 6) == 0, "magic");
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    CHECK(strtoul((char *)h + 148, NULL, 8) == sum, "checksum");
    uint8_t s[512];
    vd_export_tar_header(s, "a.ovf", 3557, 1700000000u);
    CHECK(memcmp(s + 124, "00000006745", 12) == 0, "octal size %.12s", s + 124);
    char path[300], cmd[400], line[512] = "";
    snprintf(path, sizeof(path), "%s/h.tar", dir);
    FILE *f = fopen(path, "wb");
    fwrite(h, 1, sizeof(h), f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "tar tvf %s 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof(line), p))
            line[0] = '\0';
        pclose(p);
        if (line[0]) /* GNU tar present */
            CHECK(strstr(line, " 9663676416 ") && strstr(line, "big-disk1.vmdk"), "tar: %s", line);
    }
    unlink(path);
}

struct writer_arg {
    struct vd_export *e;
    const uint8_t *data;
    int part;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    struct vd_error err = {0};
    for (size_t off = (size_t)a->part * 16384; off < (8u << 20); off += 4 * 16384)
        if (vd_export_pwrite(a->e, a->data + off, 16384, off, &err) < 0)
            return (void *)1;
    return NULL;
}

/* Four threads write interleaved 16 KiB pieces of one export at once. */
static void test_threads(void)
{
    const size_t size = 8u << 20;
    uint8_t *data = malloc(size);
    char dest[300];
    struct vd_export *e;
    struct vd_error err = {0};
    pthread_t t[4];
    struct writer_arg a[4];
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i ^ (i >> 11));
    snprintf(dest, sizeof(dest), "%s/t.raw", dir);
    CHECK(vd_export_begin(dest, "raw", NULL, &e, &err) == 0, "begin");
    for (int i = 0; i < 4; i++) {
        a[i] = (struct writer_arg){e, data, i};
        pthread_create(&t[i], NULL, writer, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        CHECK(rv == NULL, "writer %d failed", i);
    }
    CHECK(vd_export_finish(e, NULL, NULL, &err) == 0, "finish: %s", err.msg);
    size_t len = 0;
    uint8_t *got = slurp(dest, &len);
    CHECK(got && len == size && memcmp(got, data, size) == 0, "threaded raw differs");
    unlink(dest);
    free(got);
    free(data);
}

static int cli_convert(int argc, char **argv)
{
    struct vd_export_opts o;
    struct vd_error err = {0};
    struct vd_source *src;
    vd_export_opts_init(&o);
    for (int i = 5; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            return 2;
        *eq = '\0';
        if (vd_export_opt(&o, argv[i], eq + 1, &err) != 1) {
            fprintf(stderr, "bad option %s: %s\n", argv[i], err.msg);
            return 2;
        }
    }
    if (vd_source_open(argv[2], NULL, &src, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int r = vd_convert(vd_source_disk(src, 0), argv[3], argv[4], &o, NULL, NULL, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    vd_source_close(src);
    return r < 0 ? 1 : 0;
}

/* The only entry of dir, or "" (none or several). */
static void only_entry(char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    out[0] = '\0';
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && n++ == 0)
            snprintf(out, len, "%s", de->d_name);
    if (d)
        closedir(d);
    if (n != 1)
        out[0] = '\0';
}

/* Write 3 chunks of raw bytes to DIR/name and commit; while writing, the
 * directory holds nothing visible (O_TMPFILE) or one .vdisk-XXXXXX. */
static void export_small(const char *name, const char *format, bool fallback,
                         const struct vd_export_opts *opts, struct vd_export_result *res)
{
    static uint8_t buf[3 * 65536];
    char dest[600], seen[300];
    struct vd_export *e = NULL;
    struct vd_error err = {0};
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    snprintf(dest, sizeof(dest), "%s/%s", dir, name);
    if (fallback)
        setenv("VD_EXPORT_NO_TMPFILE", "1", 1);
    CHECK(vd_export_begin(dest, format, opts, &e, &err) == 0, "begin %s: %s", name, err.msg);
    unsetenv("VD_EXPORT_NO_TMPFILE");
    if (!e)
        return;
    CHECK(vd_export_pwrite(e, buf, sizeof(buf), 0, &err) == 0, "write: %s", err.msg);
    only_entry(seen, sizeof(seen));
    if (fallback)
        CHECK(strlen(seen) == 13 && strncmp(seen, ".vdisk-", 7) == 0,
              "temporary name while writing: '%s'", seen);
    else
        CHECK(count_entries() == 0, "something visible in DEST while writing (%d entries)",
              count_entries());
    CHECK(vd_export_commit(e, res, &err) == 0, "commit %s: %s", name, err.msg);
    only_entry(seen, sizeof(seen));
    CHECK(strcmp(seen, name) == 0, "after commit: '%s'", seen);
    if (strcmp(format, "raw") == 0) {
        size_t len = 0;
        uint8_t *got = slurp(dest, &len);
        CHECK(got && len == sizeof(buf) && memcmp(got, buf, len) == 0, "%s: bytes differ", name);
        free(got);
    }
}

/* A name of 241..255 bytes works: the temporary name does not grow with
 * it (".NAME.partial-XXXXXX" made 255 - 14 the longest). Both ways of
 * keeping the output hidden until commit. */
static void test_long_names(void)
{
    struct vd_export_opts o;
    struct vd_export_result res;
    char name[256], dest[600];
    vd_export_opts_init(&o);
    for (int fallback = 0; fallback < 2; fallback++)
        for (size_t len = 241; len <= 255; len += 7) {
            memset(name, 'n', len - 4);
            memcpy(name + len - 4, ".vhd", 5);
            export_small(name, "vhd", fallback, &o, &res);
            snprintf(dest, sizeof(dest), "%s/%s", dir, name);
            struct stat st;
            CHECK(stat(dest, &st) == 0 && (uint64_t)st.st_size == res.bytes,
                  "%zu-byte name (fallback %d): %s", len, fallback, strerror(errno));
            unlink(dest);
        }
    memset(name, 'r', 251);
    memcpy(name + 251, ".raw", 5);
    export_small(name, "raw", true, &o, &res);
    snprintf(dest, sizeof(dest), "%s/%s", dir, name);
    unlink(dest);
    CHECK(count_entries() == 0, "left behind: %d entries", count_entries());
}

/* The output's mode: the one asked for, exactly; else 0666 less the umask,
 * as open(2) gives (it was 0644 whatever the umask). */
static void test_mode(void)
{
    struct vd_export_opts o;
    struct vd_export_result res;
    struct stat st;
    char dest[300];
    vd_export_opts_init(&o);
    mode_t old = umask(027);
    for (int fallback = 0; fallback < 2; fallback++) {
        o.mode = 0;
        export_small("m.raw", "raw", fallback, &o, &res);
        snprintf(dest, sizeof(dest), "%s/m.raw", dir);
        CHECK(stat(dest, &st) == 0 && (st.st_mode & 07777) == 0640, "umask 027: mode %04o",
              (unsigned)(st.st_mode & 07777));
        unlink(dest);
        o.mode = 0604; /* not masked again by this process' umask */
        export_small("m.raw", "raw", fallback, &o, &res);
        CHECK(stat(dest, &st) == 0 && (st.st_mode & 07777) == 0604, "mode 0604: got %04o",
              (unsigned)(st.st_mode & 07777));
        unlink(dest);
    }
    umask(0);
    o.mode = 0;
    export_small("m.raw", "raw", false, &o, &res);
    CHECK(stat(dest, &st) == 0 && (st.st_mode & 07777) == 0666, "umask 0: mode %04o",
          (unsigned)(st.st_mode & 07777));
    unlink(dest);
    umask(old);
}

/* vd_export_withdraw removes the output committed, and only that one. */
static void test_withdraw(void)
{
    struct vd_export_opts o;
    struct vd_export_result res;
    struct vd_error err = {0};
    struct stat st;
    char dest[300], other[300];
    vd_export_opts_init(&o);
    snprintf(dest, sizeof(dest), "%s/w.vhd", dir);
    export_small("w.vhd", "vhd", false, &o, &res);
    CHECK(res.local && stat(dest, &st) == 0 && res.dev == (uint64_t)st.st_dev &&
              res.ino == (uint64_t)st.st_ino && res.bytes == (uint64_t)st.st_size,
          "result does not describe the file");
    CHECK(vd_export_withdraw(dest, &o, &res, &err) == 0, "withdraw: %s", err.msg);
    CHECK(count_entries() == 0, "w.vhd still there");
    CHECK(vd_export_withdraw(dest, &o, &res, &err) == -ENOENT, "withdraw twice");
    /* Written over since: left alone. */
    vd_err_clear(&err);
    export_small("w.vhd", "vhd", false, &o, &res);
    snprintf(other, sizeof(other), "%s/other", dir);
    FILE *f = fopen(other, "w");
    if (f)
        fclose(f);
    CHECK(rename(other, dest) == 0, "rename over w.vhd");
    CHECK(vd_export_withdraw(dest, &o, &res, &err) == -ESTALE, "withdraw of a replaced file");
    CHECK(strstr(err.msg, "w.vhd: replaced since it was committed; left alone"), "%s", err.msg);
    CHECK(stat(dest, &st) == 0 && st.st_size == 0, "the replacement was removed");
    unlink(dest);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--convert") == 0)
        return cli_convert(argc, argv);
    snprintf(dir, sizeof(dir), "%s/vdexport.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    test_opts();
    test_raw_window();
    test_rejects();
    test_empty();
    test_vmdk_fields();
    test_vhd_fields();
    test_vhdx_fields();
    test_threads();
    test_tar_header();
    test_long_names();
    test_mode();
    test_withdraw();
    rmdir(dir);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
