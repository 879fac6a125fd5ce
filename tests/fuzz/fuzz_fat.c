/*
 * Fuzz the FAT reader (src/fs/fat.c) through the public vd_fs API on a
 * memory device: open, statfs, then a bounded walk of the whole tree with
 * stat, readdir, read and pread; plus lookups that exercise the resolver.
 *
 * Invariants, beyond "no crash":
 *   - every device read the reader asks for lies inside the device;
 *   - statfs: free space is at most the total;
 *   - readdir names are non-empty, hold no '/', and are not "." or "..";
 *   - a successful read returns exactly the size stat gave, and a pread of
 *     its first bytes returns the same bytes;
 *   - every name readdir gives can be stat'ed (lookup finds what the
 *     listing shows) unless the entry itself is corrupt (an error, never a
 *     different success).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INV(c)                                                                                     \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct mem {
    const uint8_t *data;
    size_t size;
};

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    struct mem *m = opaque;
    INV(off <= m->size && len <= m->size - off);
    memcpy(buf, m->data + off, len);
    return 0;
}

static unsigned budget;

static void walk(struct vd_fs *fs, const char *path, int depth)
{
    struct vd_error err = {0};
    char **names = NULL;
    size_t n = 0;
    if (depth > 6 || vd_fs_readdir(fs, path, &names, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n && budget > 0; i++, budget--) {
        const char *nm = names[i];
        INV(nm[0] && !strchr(nm, '/') && strcmp(nm, ".") && strcmp(nm, ".."));
        char sub[2048];
        if (snprintf(sub, sizeof(sub), "%s/%s", strcmp(path, "/") ? path : "", nm) >=
            (int)sizeof(sub))
            continue;
        struct vd_fs_stat st;
        vd_err_clear(&err);
        int r = vd_fs_stat(fs, sub, false, &st, &err);
        INV(r == 0 || r == -EINVAL || r == -EIO || r == -ENOMEM);
        if (r < 0)
            continue;
        if (st.type == VD_FS_DIR) {
            walk(fs, sub, depth + 1);
        } else if (st.type == VD_FS_REG) {
            char *buf = NULL;
            size_t len = 0;
            r = vd_fs_read(fs, sub, 1 << 20, &buf, &len, &err);
            if (r == 0) {
                INV(len == st.size && buf[len] == '\0');
                char part[64];
                size_t got = 0;
                size_t want = len < sizeof(part) ? len : sizeof(part);
                INV(vd_fs_pread(fs, sub, part, want, 0, &got, &err) == 0 && got == want &&
                    !memcmp(part, buf, want));
            }
            free(buf);
        }
    }
    vd_fs_names_free(names, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem m = {data, size};
    struct vd_fs_dev dev = {.name = "fuzz", .size = size, .opaque = &m, .pread = mem_pread};
    struct vd_fs *fs = NULL;
    struct vd_error err = {0};
    if (vd_fs_open(&dev, "vfat", &fs, &err) < 0)
        return 0;
    uint64_t total = 0, fr = 0;
    if (vd_fs_statfs(fs, &total, &fr, &err) == 0)
        INV(fr <= total);
    budget = 2000;
    walk(fs, "/", 0);
    struct vd_fs_stat st;
    vd_fs_stat(fs, "/EFI/BOOT/BOOTX64.EFI", true, &st, &err);
    vd_fs_stat(fs, "/efi/../EFI/./boot/", true, &st, &err);
    vd_fs_close(fs);
    return 0;
}
