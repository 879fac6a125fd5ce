/*
 * vd_initramfs_list against archives made by the real tools: GNU cpio -H
 * newc, compressed with gzip, xz, zstd, lz4 -l (legacy frames, as the
 * kernel's scripts write them), bzip2; an uncompressed early cpio followed
 * by a compressed main one; and this host's own Debian initrd compared
 * with lsinitramfs (initramfs-tools) when both are there. The expected
 * list comes from `cpio -it`, an independent reader.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "vdisk/fs.h"

static char tmp[64];

struct list {
    char **v;
    size_t n, cap;
    size_t stop_after;
};

static int add(void *opaque, const char *path)
{
    struct list *l = opaque;
    CHECK(path[0] && path[0] != '/' && strncmp(path, "./", 2), "path not normalised: %s", path);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = strdup(path);
    return l->stop_after && l->n == l->stop_after ? 7 : 0;
}

static void list_free(struct list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        *len = (size_t)n;
    return b;
}

/* The expected list: lines of a text file, "./" and "." dropped. */
static void read_expected(const char *path, struct list *l)
{
    FILE *f = fopen(path, "r");
    CHECK(f, "open %s", path);
    if (!f)
        return;
    char line[8192];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *p = line;
        while (p[0] == '/' || (p[0] == '.' && p[1] == '/'))
            p += p[0] == '/' ? 1 : 2;
        if (!p[0] || !strcmp(p, "."))
            continue;
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->v = realloc(l->v, l->cap * sizeof(char *));
        }
        l->v[l->n++] = strdup(p);
    }
    fclose(f);
}

static void check_archive(const char *img, const char *expected, const char *what)
{
    size_t len = 0;
    char *data = slurp(img, &len);
    CHECK(data, "%s: read %s", what, img);
    if (!data)
        return;
    struct list got = {0}, want = {0};
    struct vd_error err = {0};
    int r = vd_initramfs_list(data, len, add, &got, &err);
    CHECK(r == 0, "%s: %d %s", what, r, err.msg);
    read_expected(expected, &want);
    if (got.n)
        qsort(got.v, got.n, sizeof(char *), cmpstr);
    if (want.n)
        qsort(want.v, want.n, sizeof(char *), cmpstr);
    CHECK(got.n == want.n && want.n > 0, "%s: %zu members, expected %zu", what, got.n, want.n);
    for (size_t i = 0; i < got.n && i < want.n; i++)
        if (strcmp(got.v[i], want.v[i])) {
            CHECK(0, "%s: member %s, expected %s", what, got.v[i], want.v[i]);
            break;
        }
    list_free(&got);
    list_free(&want);
    free(data);
}

int main(void)
{
    if (sh("command -v cpio >/dev/null && command -v gzip >/dev/null") < 0) {
        fprintf(stderr, "SKIP: cpio or gzip missing\n");
        return 77;
    }
    snprintf(tmp, sizeof(tmp), "/tmp/vd-test-initramfs-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    /* a main tree and an early-microcode tree, as Debian builds them */
    CHECK(sh("set -e; cd %s; mkdir -p main/usr/lib/modules/6.1/kernel/drivers/nvme "
             "main/etc early/kernel/x86/microcode; "
             "head -c 200000 /dev/urandom > main/usr/lib/modules/6.1/kernel/drivers/nvme/nvme.ko; "
             "for i in $(seq 1 50); do echo $i > main/etc/f$i; done; ln -s usr/lib main/lib; "
             "printf x > main/odd; head -c 3 /dev/zero > main/z3; "
             "head -c 5000 /dev/urandom > early/kernel/x86/microcode/GenuineIntel.bin; "
             "(cd main && find . | sort | cpio -o -H newc --quiet > ../main.cpio); "
             "(cd early && find . | sort | cpio -o -H newc --quiet > ../early.cpio); "
             "cpio -it --quiet < main.cpio > main.list; cpio -it --quiet < early.cpio > "
             "early.list; cat early.list main.list > both.list",
             tmp) == 0,
          "build archives");
    char img[256], exp[256];
    snprintf(img, sizeof(img), "%s/main.cpio", tmp);
    snprintf(exp, sizeof(exp), "%s/main.list", tmp);
    check_archive(img, exp, "uncompressed");

    static const char *const comp[][2] = {
        {"gzip", "gzip -9 -n -c"}, {"xz", "xz --check=crc32 -c"}, {"zstd", "zstd -q -19 -c"},
        {"lz4", "lz4 -l -q -c"},   {"bzip2", "bzip2 -c"},         {"lzma", "xz --format=lzma -c"},
    };
    snprintf(exp, sizeof(exp), "%s/both.list", tmp);
    for (size_t i = 0; i < sizeof(comp) / sizeof(comp[0]); i++) {
        if (sh("command -v %s >/dev/null", comp[i][0]) < 0 &&
            sh("command -v %.2s >/dev/null", comp[i][0]) < 0) {
            fprintf(stderr, "SKIP %s: tool missing\n", comp[i][0]);
            continue;
        }
        snprintf(img, sizeof(img), "%s/initrd.%s", tmp, comp[i][0]);
        CHECK(sh("cd %s && { cat early.cpio; %s main.cpio; } > %s", tmp, comp[i][1], img) == 0,
              "build %s", comp[i][0]);
        check_archive(img, exp, comp[i][0]);
    }
    /* two uncompressed archives with zero padding between, as the kernel allows */
    snprintf(img, sizeof(img), "%s/padded", tmp);
    CHECK(sh("cd %s && { cat early.cpio; head -c 1024 /dev/zero; cat main.cpio; } > %s", tmp,
             img) == 0,
          "padded");
    check_archive(img, exp, "two uncompressed with padding");

    /* corrupt and truncated input: an error naming what is wrong, never a crash */
    {
        size_t len = 0;
        snprintf(img, sizeof(img), "%s/initrd.gzip", tmp);
        char *d = slurp(img, &len);
        struct list got = {0};
        struct vd_error err = {0};
        int r = d ? vd_initramfs_list(d, len - 100, add, &got, &err) : -1;
        CHECK(r == -EINVAL, "truncated gzip: %d %s", r, err.msg);
        list_free(&got);
        /* the callback stops the walk: its non-zero answer ends it cleanly */
        got.stop_after = 3;
        vd_err_clear(&err);
        r = d ? vd_initramfs_list(d, len, add, &got, &err) : -1;
        CHECK(r == 0 && got.n == 3, "stop: %d %zu", r, got.n);
        list_free(&got);
        free(d);
        /* a truncated uncompressed archive */
        snprintf(img, sizeof(img), "%s/main.cpio", tmp);
        d = slurp(img, &len);
        vd_err_clear(&err);
        r = d ? vd_initramfs_list(d, 300, add, &got, &err) : -1;
        CHECK(r == -EINVAL && !strcmp(err.msg, "initramfs: cpio: the archive ends inside a cpio "
                                               "member (truncated)"),
              "truncated cpio: %d %s", r, err.msg);
        list_free(&got);
        free(d);
    }

    /* this host's Debian initrd against lsinitramfs */
    FILE *p = popen("ls /boot/initrd.img-* 2>/dev/null | head -1", "r");
    char host[256] = {0};
    if (p) {
        if (!fgets(host, sizeof(host), p))
            host[0] = '\0';
        pclose(p);
    }
    host[strcspn(host, "\n")] = '\0';
    if (host[0] && sh("command -v lsinitramfs >/dev/null") == 0) {
        snprintf(exp, sizeof(exp), "%s/host.list", tmp);
        CHECK(sh("lsinitramfs %s > %s", host, exp) == 0, "lsinitramfs %s", host);
        check_archive(host, exp, host);
    } else {
        fprintf(stderr, "SKIP host initrd: no /boot/initrd.img-* or no lsinitramfs\n");
    }
    if (!getenv("VD_TEST_KEEP"))
        sh("rm -rf %s", tmp);
    return failures != 0;
}
