/*
 * Fuzz the initramfs lister (src/fs/initramfs.c): the newc push parser on
 * raw bytes and on libarchive's decompressed output.
 *
 * Invariants, beyond "no crash":
 *   - every path is non-empty, has no leading "/" or "./", is shorter than
 *     the name limit (4096) and is never the "TRAILER!!!" marker;
 *   - the member count stays under the 1,000,000 cap;
 *   - a callback's non-zero answer stops the walk at once, and the walk
 *     then reports success (the same members as before, up to there);
 *   - the result is 0 or a negative errno with a message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INV(c)                                                                                     \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct count {
    size_t n, stop_at;
    bool stopped;
};

static int member(void *opaque, const char *path)
{
    struct count *c = opaque;
    INV(!c->stopped);
    size_t len = strlen(path);
    INV(len > 0 && len < 4096);
    INV(path[0] != '/' && strncmp(path, "./", 2) != 0);
    INV(strcmp(path, "TRAILER!!!") != 0);
    c->n++;
    INV(c->n <= 1000000);
    if (c->stop_at && c->n == c->stop_at) {
        c->stopped = true;
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct count c = {0};
    struct vd_error err = {0};
    int r = vd_initramfs_list(data, size, member, &c, &err);
    INV(r <= 0);
    INV(r == 0 || (err.code == r && err.msg[0]));
    if (c.n >= 2) {
        struct count s = {.stop_at = 2};
        vd_err_clear(&err);
        r = vd_initramfs_list(data, size, member, &s, &err);
        INV(r == 0 && s.n == 2 && s.stopped);
    }
    return 0;
}
