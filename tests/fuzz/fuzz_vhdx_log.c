/*
 * Fuzz VHDX log replay (vhdx_log_replay) on a raw log buffer: the input,
 * cut to a multiple of 4 KiB (at most 1 MiB), is the log; entries must carry
 * the GUID 01 02 .. 10 (the seeds from gen-vhdx.py fuzzseeds do). The
 * overlay is then applied over a few ranges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/vhdx.h"

static const uint8_t fuzz_guid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = size / 4096 * 4096;
    if (len > (1u << 20))
        len = 1u << 20;
    if (len == 0)
        return 0;
    struct vhdx_overlay ov;
    struct vd_error err = {0};
    if (vhdx_log_replay(data, len, fuzz_guid, "fuzz", &ov, &err) == 0) {
        uint8_t *buf = malloc(3 * 4096 + 17);
        if (buf) {
            for (size_t i = 0; i < ov.n && i < 64; i++) {
                uint64_t off = ov.ext[i].off > 5 ? ov.ext[i].off - 5 : 0;
                vhdx_overlay_apply(&ov, buf, 3 * 4096 + 17, off);
            }
            free(buf);
        }
        vhdx_overlay_free(&ov);
    }
    return 0;
}
