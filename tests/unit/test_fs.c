/*
 * Guest filesystems (src/fs/) against images made by independent tools:
 * mkfs.ext4 -d, mkfs.xfs + a loop mount + cp -a, mkfs.vfat + mcopy,
 * mkntfs + ntfs-3g. Every file of the source tree is compared byte for
 * byte, every directory's names and every link target; statfs against
 * dumpe2fs / xfs_db / mdir; the resolver's rules of fs.h on crafted links.
 * A filesystem whose tools are missing (or a loop mount that fails) is
 * skipped with the reason; the test skips (77) only if all are.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "vdisk/fs.h"

static char tmp[64];
static int ran;

struct file_dev {
    int fd;
    uint64_t base;
    uint64_t reads;
};

static int file_pread(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    struct file_dev *f = opaque;
    f->reads++;
    ssize_t n = pread(f->fd, buf, len, (off_t)(f->base + off));
    if (n != (ssize_t)len)
        return vd_err(err, -EIO, "test: short read at %" PRIu64, off);
    return 0;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return r == 0 ? 0 : -1;
}

static bool have(const char *tool)
{
    return sh("command -v %s >/dev/null 2>&1", tool) == 0;
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

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compare the tree under host dir hp with the filesystem's fp, recursively.
 * links: the filesystem holds the host's symlinks. */
static void compare_tree(struct vd_fs *fs, const char *hp, const char *fp, bool links)
{
    DIR *d = opendir(hp);
    CHECK(d, "opendir %s", hp);
    if (!d)
        return;
    char *hnames[4096];
    size_t hn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && hn < 4096) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        hnames[hn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(hnames, hn, sizeof(char *), cmpstr);

    struct vd_error err = {0};
    char **fnames = NULL;
    size_t fn = 0;
    int r = vd_fs_readdir(fs, fp[0] ? fp : "/", &fnames, &fn, &err);
    CHECK(r == 0, "readdir %s: %d %s", fp, r, err.msg);
    if (r == 0) {
        /* names the formatter adds at the root: not in the source tree */
        size_t k = 0;
        for (size_t i = 0; i < fn; i++) {
            if (!fp[0] && (!strcmp(fnames[i], "lost+found") ||
                           !strcmp(fnames[i], "System Volume Information")))
                free(fnames[i]);
            else
                fnames[k++] = fnames[i];
        }
        fn = k;
        if (fn)
            qsort(fnames, fn, sizeof(char *), cmpstr);
        CHECK(fn == hn, "%s: %zu names, host has %zu", fp, fn, hn);
        for (size_t i = 0; i < fn && i < hn; i++)
            CHECK(!strcmp(fnames[i], hnames[i]), "%s: name %s, host %s", fp, fnames[i], hnames[i]);
        vd_fs_names_free(fnames, fn);
    }
    for (size_t i = 0; i < hn; i++) {
        char h[4096], f[4096];
        snprintf(h, sizeof(h), "%s/%s", hp, hnames[i]);
        snprintf(f, sizeof(f), "%s/%s", fp, hnames[i]);
        struct stat hs;
        lstat(h, &hs);
        struct vd_fs_stat st;
        vd_err_clear(&err);
        r = vd_fs_stat(fs, f, false, &st, &err);
        CHECK(r == 0, "stat %s: %d %s", f, r, err.msg);
        if (r < 0)
            goto next;
        if (S_ISDIR(hs.st_mode)) {
            CHECK(st.type == VD_FS_DIR, "%s: type %d, want dir", f, st.type);
            compare_tree(fs, h, f, links);
        } else if (S_ISREG(hs.st_mode)) {
            CHECK(st.type == VD_FS_REG, "%s: type %d, want file", f, st.type);
            CHECK(st.size == (uint64_t)hs.st_size, "%s: size %" PRIu64 ", want %lld", f, st.size,
                  (long long)hs.st_size);
            size_t hl = 0, fl = 0;
            char *hb = slurp(h, &hl), *fb = NULL;
            r = vd_fs_read(fs, f, 64u << 20, &fb, &fl, &err);
            CHECK(r == 0, "read %s: %d %s", f, r, err.msg);
            if (r == 0 && hb)
                CHECK(fl == hl && !memcmp(fb, hb, hl), "%s: bytes differ from the host's", f);
            /* a pread in the middle crosses block/cluster boundaries */
            if (r == 0 && hl > 5000) {
                char part[3000];
                size_t got = 0;
                r = vd_fs_pread(fs, f, part, sizeof(part), 4000, &got, &err);
                CHECK(r == 0 && got == (hl - 4000 < 3000 ? hl - 4000 : 3000) &&
                          !memcmp(part, hb + 4000, got),
                      "pread %s at 4000: %d got %zu", f, r, got);
            }
            free(hb);
            free(fb);
        } else if (S_ISLNK(hs.st_mode) && links) {
            CHECK(st.type == VD_FS_LNK, "%s: type %d, want link", f, st.type);
            char ht[4096] = {0}, ft[4096];
            CHECK(readlink(h, ht, sizeof(ht) - 1) > 0, "readlink %s", h);
            r = vd_fs_readlink(fs, f, ft, sizeof(ft), &err);
            CHECK(r == 0 && !strcmp(ht, ft), "readlink %s: %d [%s] want [%s]", f, r,
                  r == 0 ? ft : "", ht);
        }
    next:
        free(hnames[i]);
    }
}

/* Build the source trees once. full: with symlinks (ext4, XFS); plain:
 * without (FAT, NTFS), with long and non-ASCII names instead. */
static int make_trees(void)
{
    return sh("set -e; cd %s; mkdir -p full/d1/d2 full/empty plain/Sub/Deeper; "
              "printf hello > full/a.txt; head -c 1500000 /dev/urandom > full/d1/big; "
              "for i in $(seq 1 300); do echo $i > full/d1/d2/file_with_a_long_name_$i; done; "
              "truncate -s 20M full/sparse; echo tail >> full/sparse; "
              "ln -s /a.txt full/abs; ln -s ../a.txt full/d1/rel; ln -s loop2 full/loop1; "
              "ln -s loop1 full/loop2; ln -s ../../../../a.txt full/d1/up; ln -s /d1 full/dlink; "
              "ln -s /nowhere full/dangling; mkdir full/many; "
              "(cd full/many && for i in $(seq 1 3000); do : > entry_number_$i; done); "
              "for i in $(seq 0 99); do dd if=/dev/urandom of=full/holey bs=4096 count=1 "
              "seek=$((i*2)) conv=notrunc status=none; done; "
              "ln -s \"/$(printf './%%.0s' $(seq 1 300))a.txt\" full/slowlink; "
              "printf 'ESP' > plain/README.TXT; head -c 70000 /dev/urandom > plain/Sub/big.bin; "
              "echo x > 'plain/Long File Name With Spaces.txt'; "
              "echo y > 'plain/\xc3\x84\xc3\x96-\xc3\xbcnicode.txt'; "
              "for i in $(seq 1 40); do echo $i > plain/Sub/Deeper/entry_$i.conf; done; "
              "head -c 5000 /dev/urandom > plain/Sub/Deeper/mixedCase.EFI",
              tmp);
}

static struct vd_fs *open_img(const char *img, const char *type, struct file_dev *fd,
                              struct vd_fs_dev *dev)
{
    memset(fd, 0, sizeof(*fd));
    fd->fd = open(img, O_RDONLY);
    CHECK(fd->fd >= 0, "open %s", img);
    struct stat s;
    fstat(fd->fd, &s);
    dev->name = img;
    dev->size = (uint64_t)s.st_size;
    dev->opaque = fd;
    dev->pread = file_pread;
    struct vd_fs *fs = NULL;
    struct vd_error err = {0};
    int r = vd_fs_open(dev, type, &fs, &err);
    CHECK(r == 0, "vd_fs_open %s: %d %s", img, r, err.msg);
    return fs;
}

static void resolver_checks(struct vd_fs *fs)
{
    struct vd_fs_stat st;
    struct vd_error err = {0};
    char *b = NULL;
    size_t n = 0;
    CHECK(vd_fs_read(fs, "/abs", 100, &b, &n, &err) == 0 && n == 5 && !memcmp(b, "hello", 5),
          "absolute link: %s", err.msg);
    free(b);
    CHECK(vd_fs_read(fs, "/d1/rel", 100, &b, &n, &err) == 0 && n == 5, "relative link");
    free(b);
    /* ../../../../a.txt from /d1: ".." stops at the root */
    CHECK(vd_fs_read(fs, "/d1/up", 100, &b, &n, &err) == 0 && n == 5, "link climbing out");
    free(b);
    CHECK(vd_fs_read(fs, "/slowlink", 100, &b, &n, &err) == 0 && n == 5, "605-byte link: %s",
          err.msg);
    free(b);
    CHECK(vd_fs_read(fs, "/../../a.txt", 100, &b, &n, &err) == 0 && n == 5, ".. at root");
    free(b);
    CHECK(vd_fs_stat(fs, "/loop1", true, &st, &err) == -ELOOP, "loop gives ELOOP");
    CHECK(vd_fs_stat(fs, "/loop1", false, &st, &err) == 0 && st.type == VD_FS_LNK, "lstat loop");
    CHECK(vd_fs_stat(fs, "/dangling", true, &st, &err) == -ENOENT, "dangling gives ENOENT");
    CHECK(vd_fs_stat(fs, "/dlink/d2/file_with_a_long_name_7", true, &st, &err) == 0 &&
              st.type == VD_FS_REG && st.size == 2,
          "link in the middle of a path");
    CHECK(vd_fs_stat(fs, "/dlink", false, &st, &err) == 0 && st.type == VD_FS_LNK, "lstat dlink");
    CHECK(vd_fs_stat(fs, "/dlink/", false, &st, &err) == 0 && st.type == VD_FS_DIR,
          "trailing slash follows");
    CHECK(vd_fs_stat(fs, "/a.txt/x", true, &st, &err) == -ENOTDIR, "file as a directory");
    CHECK(vd_fs_stat(fs, "/nope", true, &st, &err) == -ENOENT, "absent");
    CHECK(vd_fs_read(fs, "/d1/big", 1000, &b, &n, &err) == -EFBIG, "max");
    CHECK(vd_fs_read(fs, "/d1", 1000, &b, &n, &err) == -EISDIR, "read a dir");
    char t[8];
    CHECK(vd_fs_readlink(fs, "/slowlink", t, sizeof(t), &err) == -ENAMETOOLONG, "small buf");
}

static void test_ext4(void)
{
    if (!have("mkfs.ext4") || !have("dumpe2fs")) {
        fprintf(stderr, "SKIP ext4: mkfs.ext4/dumpe2fs missing (e2fsprogs)\n");
        return;
    }
    char img[128];
    snprintf(img, sizeof(img), "%s/ext4.img", tmp);
    CHECK(sh("mkfs.ext4 -q -F -d %s/full %s 64M", tmp, img) == 0, "mkfs.ext4");
    struct file_dev fd;
    struct vd_fs_dev dev;
    struct vd_fs *fs = open_img(img, NULL, &fd, &dev);
    if (!fs)
        return;
    ran++;
    CHECK(!strcmp(vd_fs_type(fs), "ext4"), "type %s", vd_fs_type(fs));
    char full[128];
    snprintf(full, sizeof(full), "%s/full", tmp);
    compare_tree(fs, full, "", true);
    resolver_checks(fs);
    uint64_t total = 0, fr = 0;
    struct vd_error err = {0};
    CHECK(vd_fs_statfs(fs, &total, &fr, &err) == 0, "statfs");
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "dumpe2fs -h %s 2>/dev/null | awk -F: '/^Block count/{c=$2}/^Free blocks/{f=$2}"
             "/^Block size/{b=$2}END{printf \"%%d %%d\", c*b, f*b}'",
             img);
    FILE *p = popen(cmd, "r");
    unsigned long long wt = 0, wf = 0;
    CHECK(p && fscanf(p, "%llu %llu", &wt, &wf) == 2, "dumpe2fs");
    if (p)
        pclose(p);
    CHECK(total == wt && fr == wf, "statfs %" PRIu64 "/%" PRIu64 ", dumpe2fs %llu/%llu", total, fr,
          wt, wf);
    vd_fs_close(fs);
    close(fd.fd);
}

/* FAT12, FAT16 and FAT32 images (the type follows the cluster count) */
static void test_fat(void)
{
    if (!have("mkfs.vfat") || !have("mcopy") || !have("mdir")) {
        fprintf(stderr, "SKIP fat: mkfs.vfat/mcopy missing (dosfstools, mtools)\n");
        return;
    }
    static const struct {
        const char *opts;
        unsigned kb;
    } v[] = {{"-F 12", 2048}, {"-F 16", 32768}, {"-F 32 -s 1", 66000}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char img[128];
        snprintf(img, sizeof(img), "%s/fat%zu.img", tmp, i);
        CHECK(sh("mkfs.vfat -C %s %s %u >/dev/null && MTOOLS_NO_VFAT=0 mcopy -s -i %s "
                 "%s/plain/* ::/",
                 v[i].opts, img, v[i].kb, img, tmp) == 0,
              "mkfs.vfat %s", v[i].opts);
        struct file_dev fd;
        struct vd_fs_dev dev;
        struct vd_fs *fs = open_img(img, NULL, &fd, &dev);
        if (!fs)
            continue;
        ran++;
        CHECK(!strcmp(vd_fs_type(fs), "vfat"), "type %s", vd_fs_type(fs));
        char plain[128];
        snprintf(plain, sizeof(plain), "%s/plain", tmp);
        compare_tree(fs, plain, "", false);
        struct vd_fs_stat st;
        struct vd_error err = {0};
        CHECK(vd_fs_stat(fs, "/sub/DEEPER/MIXEDCASE.efi", true, &st, &err) == 0 && st.size == 5000,
              "%s: case-insensitive lookup: %s", v[i].opts, err.msg);
        CHECK(vd_fs_stat(fs, "/LONGFI~1.TXT", true, &st, &err) == 0 && st.size == 2,
              "%s: short name of a long name", v[i].opts);
        uint64_t total = 0, fr = 0;
        CHECK(vd_fs_statfs(fs, &total, &fr, &err) == 0, "statfs");
        char cmd[512];
        snprintf(cmd, sizeof(cmd),
                 "mdir -i %s :: | awk '/bytes free/{gsub(/ /,\"\",$0); "
                 "print $0+0}'",
                 img);
        FILE *p = popen(cmd, "r");
        unsigned long long wf = 0;
        CHECK(p && fscanf(p, "%llu", &wf) == 1, "mdir");
        if (p)
            pclose(p);
        CHECK(fr == wf, "%s: free %" PRIu64 ", mdir says %llu", v[i].opts, fr, wf);
        vd_fs_close(fs);
        close(fd.fd);
    }
}

/* XFS as mkfs.xfs 6.1 makes it (v5, crc, ftype, sparse inodes, reflink,
 * bigtime), filled through a loop mount */
static void test_xfs(void)
{
    if (!have("mkfs.xfs") || !have("xfs_db")) {
        fprintf(stderr, "SKIP xfs: mkfs.xfs/xfs_db missing (xfsprogs)\n");
        return;
    }
    char img[128];
    snprintf(img, sizeof(img), "%s/xfs.img", tmp);
    CHECK(sh("truncate -s 320M %s && mkfs.xfs -q %s", img, img) == 0, "mkfs.xfs");
    if (sh("mkdir -p %s/mnt && mount -o loop %s %s/mnt 2>/dev/null", tmp, img, tmp) < 0) {
        fprintf(stderr, "SKIP xfs: loop mount failed (not root, or no loop devices)\n");
        return;
    }
    int r = sh("cp -a %s/full/. %s/mnt/ && xfs_bmap %s/mnt/holey | wc -l | "
               "awk '{exit $1 < 30}'",
               tmp, tmp, tmp);
    CHECK(sh("umount %s/mnt", tmp) == 0, "umount");
    CHECK(r == 0, "cp into xfs, or holey has too few extents for a btree fork");
    struct file_dev fd;
    struct vd_fs_dev dev;
    struct vd_fs *fs = open_img(img, NULL, &fd, &dev);
    if (!fs)
        return;
    ran++;
    CHECK(!strcmp(vd_fs_type(fs), "xfs"), "type %s", vd_fs_type(fs));
    char full[128];
    snprintf(full, sizeof(full), "%s/full", tmp);
    compare_tree(fs, full, "", true);
    resolver_checks(fs);
    uint64_t total = 0, fr = 0;
    struct vd_error err = {0};
    CHECK(vd_fs_statfs(fs, &total, &fr, &err) == 0, "statfs");
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "xfs_db -r -c 'sb 0' -c 'p blocksize dblocks fdblocks' %s | "
             "awk '{v[$1]=$3}END{printf \"%%d %%d\", v[\"dblocks\"]*v[\"blocksize\"], "
             "v[\"fdblocks\"]*v[\"blocksize\"]}'",
             img);
    FILE *p = popen(cmd, "r");
    unsigned long long wt = 0, wf = 0;
    CHECK(p && fscanf(p, "%llu %llu", &wt, &wf) == 2, "xfs_db");
    if (p)
        pclose(p);
    CHECK(total == wt && fr == wf && wt > 0, "statfs %" PRIu64 "/%" PRIu64 ", xfs_db %llu/%llu",
          total, fr, wt, wf);
    vd_fs_close(fs);
    close(fd.fd);
}

/* NTFS made by mkntfs and filled through the ntfs-3g FUSE driver (its
 * symlinks are NTFS reparse points) */
static void test_ntfs(const char *mopts)
{
    if (!have("mkntfs") || !have("ntfs-3g") || !have("ntfsinfo")) {
        fprintf(stderr, "SKIP ntfs: mkntfs/ntfs-3g/ntfsinfo missing (ntfs-3g)\n");
        return;
    }
    char img[128];
    snprintf(img, sizeof(img), "%s/ntfs.img", tmp);
    CHECK(sh("truncate -s 64M %s && mkntfs -F -Q -q %s >/dev/null 2>&1", img, img) == 0, "mkntfs");
    if (sh("mkdir -p %s/nmnt && ntfs-3g %s %s %s/nmnt 2>/dev/null", tmp, mopts, img, tmp) < 0) {
        fprintf(stderr, "SKIP ntfs: ntfs-3g mount failed (no /dev/fuse?)\n");
        return;
    }
    /* the tree: both source trees merged, plus a hiberfil.sys that says
     * "hibernated" (its first bytes, as ntfs-3g checks them) */
    CHECK(sh("rm -rf %s/merged && mkdir -p %s/merged && cp -a %s/plain/. %s/full/. %s/merged/ && "
             "{ printf hibr; head -c 8188 /dev/zero; } > %s/merged/hiberfil.sys",
             tmp, tmp, tmp, tmp, tmp, tmp) == 0,
          "merge");
    int r = sh("cp -a %s/merged/. %s/nmnt/", tmp, tmp);
    CHECK(sh("umount %s/nmnt", tmp) == 0, "umount");
    CHECK(r == 0, "cp into ntfs");
    /* ntfs-3g itself now calls it hibernated (and falls back to read-only) */
    CHECK(sh("ntfs-3g %s %s/nmnt 2>&1 | grep -q 'Windows is hibernated'; r=$?; "
             "umount %s/nmnt 2>/dev/null; exit $r",
             img, tmp, tmp) == 0,
          "ntfs-3g does not see the volume as hibernated");
    struct file_dev fd;
    struct vd_fs_dev dev;
    struct vd_fs *fs = open_img(img, NULL, &fd, &dev);
    if (!fs)
        return;
    ran++;
    CHECK(!strcmp(vd_fs_type(fs), "ntfs"), "type %s", vd_fs_type(fs));
    char merged[128];
    snprintf(merged, sizeof(merged), "%s/merged", tmp);
    compare_tree(fs, merged, "", true);
    resolver_checks(fs);
    struct vd_fs_stat st;
    struct vd_error err = {0};
    CHECK(vd_fs_stat(fs, "/sub/DEEPER/MIXEDCASE.efi", true, &st, &err) == 0 && st.size == 5000,
          "ntfs: case-insensitive lookup: %s", err.msg);
    uint64_t total = 0, fr = 0;
    CHECK(vd_fs_statfs(fs, &total, &fr, &err) == 0, "statfs");
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ntfsinfo -m %s 2>/dev/null | awk -F: '/Cluster Size/{c=$2}/Volume Size in "
             "Clusters/{n=$2}/Free Clusters/{f=$2+0}END{printf \"%%d %%d\", n*c, f*c}'",
             img);
    FILE *p = popen(cmd, "r");
    unsigned long long wt = 0, wf = 0;
    CHECK(p && fscanf(p, "%llu %llu", &wt, &wf) == 2, "ntfsinfo");
    if (p)
        pclose(p);
    CHECK(total == wt && fr == wf && wt > 0, "statfs %" PRIu64 "/%" PRIu64 ", ntfsinfo %llu/%llu",
          total, fr, wt, wf);
    vd_fs_close(fs);
    close(fd.fd);
}

struct mem_dev {
    uint8_t *data;
    size_t size;
};

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    struct mem_dev *m = opaque;
    memcpy(buf, m->data + off, len);
    return 0;
}

/* Corrupt inputs: the exact message a user sees. */
static void test_corrupt(void)
{
    char img[128];
    snprintf(img, sizeof(img), "%s/fat0.img", tmp);
    size_t len = 0;
    uint8_t *d = (uint8_t *)slurp(img, &len);
    if (!d) {
        fprintf(stderr, "SKIP corrupt FAT: no FAT12 image from test_fat\n");
    } else {
        struct mem_dev m = {d, len};
        struct vd_fs_dev dev = {.name = "mem", .size = len, .opaque = &m, .pread = mem_pread};
        struct vd_fs *fs = NULL;
        struct vd_error err = {0};
        /* a directory's FAT chain that points at itself: reported, not
         * followed forever (a file's chain is bounded by its size anyway) */
        CHECK(vd_fs_open(&dev, "vfat", &fs, &err) == 0, "open: %s", err.msg);
        struct vd_fs_stat st;
        CHECK(vd_fs_stat(fs, "/Sub", false, &st, &err) == 0, "stat Sub");
        uint32_t first = d[st.ino + 26] | (uint32_t)d[st.ino + 27] << 8;
        vd_fs_close(fs);
        uint32_t fat = (uint32_t)(d[14] | d[15] << 8) * (uint32_t)(d[11] | d[12] << 8);
        uint8_t *e = d + fat + first + first / 2; /* FAT12 entry (fatgen103 section 4) */
        if (first & 1) {
            e[0] = (uint8_t)((e[0] & 0x0f) | (first & 0x0f) << 4);
            e[1] = (uint8_t)(first >> 4);
        } else {
            e[0] = (uint8_t)first;
            e[1] = (uint8_t)((e[1] & 0xf0) | (first >> 8));
        }
        CHECK(vd_fs_open(&dev, "vfat", &fs, &err) == 0, "open: %s", err.msg);
        char **names = NULL;
        size_t n = 0;
        char want[128];
        snprintf(want, sizeof(want),
                 "fs: mem: fat: directory cluster chain from %u is broken or loops", first);
        vd_err_clear(&err);
        CHECK(fs && vd_fs_readdir(fs, "/Sub", &names, &n, &err) == -EINVAL, "loop");
        CHECK_MSG(err, want);
        vd_fs_close(fs);
        /* a sector size no formatter writes */
        d[11] = 0x2c;
        d[12] = 0x01;
        vd_err_clear(&err);
        CHECK(vd_fs_open(&dev, "vfat", &fs, &err) == -EINVAL, "bad BPB");
        CHECK_MSG(err, "fs: mem: fat: BPB_BytsPerSec 300 is not 512, 1024, 2048 or 4096");
        free(d);
    }

    /* an ext4 image cut in half: the device's bounds, named */
    snprintf(img, sizeof(img), "%s/ext4.img", tmp);
    d = (uint8_t *)slurp(img, &len);
    if (d) {
        struct mem_dev m = {d, 1 << 20};
        struct vd_fs_dev dev = {.name = "mem", .size = 1 << 20, .opaque = &m, .pread = mem_pread};
        struct vd_fs *fs = NULL;
        struct vd_error err = {0};
        int r = vd_fs_open(&dev, NULL, &fs, &err);
        if (r == 0) {
            char *b = NULL;
            size_t n = 0;
            r = vd_fs_read(fs, "/d1/big", 1 << 22, &b, &n, &err);
            free(b);
            vd_fs_close(fs);
        }
        CHECK(r == -EINVAL && strstr(err.msg, "fs: mem: ext2 read of block ") &&
                  strstr(err.msg, "is past the end of the device (1048576 bytes)"),
              "truncated ext4: %d %s", r, err.msg);
        free(d);
    }

    /* btrfs and anything else: -ENOTSUP with the reason */
    if (have("mkfs.btrfs")) {
        snprintf(img, sizeof(img), "%s/btrfs.img", tmp);
        CHECK(sh("truncate -s 128M %s && mkfs.btrfs -q %s >/dev/null 2>&1", img, img) == 0,
              "mkfs.btrfs");
        struct file_dev fd;
        struct vd_fs_dev dev;
        memset(&fd, 0, sizeof(fd));
        fd.fd = open(img, O_RDONLY);
        dev.name = "disk-p2";
        dev.size = 128u << 20;
        dev.opaque = &fd;
        dev.pread = file_pread;
        struct vd_fs *fs = NULL;
        struct vd_error err = {0};
        CHECK(vd_fs_open(&dev, NULL, &fs, &err) == -ENOTSUP, "btrfs");
        CHECK_MSG(err, "fs: disk-p2: btrfs is not read: no Debian library reads btrfs without a "
                       "kernel mount and vdisk has no btrfs reader (subvolumes, chunk tree, "
                       "compression); mount the view's partition file read-only to look inside");
        vd_err_clear(&err);
        CHECK(vd_fs_open(&dev, "swap", &fs, &err) == -ENOTSUP, "swap");
        CHECK_MSG(err, "fs: disk-p2: swap is not read: vdisk reads ext2/3/4, XFS, NTFS and FAT");
        close(fd.fd);
    }
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/vd-test-fs-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    if (make_trees() < 0) {
        fprintf(stderr, "cannot build the source trees\n");
        return 1;
    }
    /* VD_TEST_FS=xfs (or ext4, fat, ntfs) runs one filesystem only */
    const char *only = getenv("VD_TEST_FS");
    if (!only || !strcmp(only, "ext4"))
        test_ext4();
    if (!only || !strcmp(only, "fat"))
        test_fat();
    if (!only || !strcmp(only, "xfs"))
        test_xfs();
    if (!only)
        test_corrupt();
    if (only && strcmp(only, "ntfs"))
        goto done;
    test_ntfs("");                     /* symlinks as Interix files, ntfs-3g's default */
    test_ntfs("-o special_files=wsl"); /* symlinks as WSL reparse points */
done:
    if (!getenv("VD_TEST_KEEP"))
        sh("rm -rf %s", tmp);
    if (!ran && !failures) {
        fprintf(stderr, "SKIP: no filesystem tools\n");
        return 77;
    }
    return failures != 0;
}
