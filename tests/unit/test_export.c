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

#include "vdisk/export.h"
#include "vdisk/vdisk.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

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
    CHECK(strstr(err.msg, "cannot create temporary file: No such file or directory"), "%s",
          err.msg);
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
        CHECK(strlen(hex) == 64, "%s sha", fmts[i]);
        unlink(dest);
    }
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
    rmdir(dir);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
