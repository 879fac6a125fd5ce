/*
 * Fuzz VHDX log replay (vhdx_log_replay) on a raw log buffer: the input,
 * cut to a multiple of 4 KiB (at most 1 MiB), is the log; entries must carry
 * the GUID 01 02 .. 10 (the seeds from gen-vhdx.py fuzzseeds do). The
 * overlay is then applied over a few ranges.
 *
 * Then the writer's side: a log entry built by vhdx_log_build_entry from the
 * input's first bytes (sequence, tail, file offsets, page contents) must be
 * rejected by the builder or replay exactly, placed at its tail in an
 * otherwise empty log.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "formats/vhdx.h"

static const uint8_t fuzz_guid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void fuzz_build(const uint8_t *data, size_t size)
{
    enum { LOG_LEN = 64 * 1024, MAXP = 4 };
    if (size < 24)
        return;
    uint64_t seq = le64(data);
    uint32_t tail = le32(data + 8) % LOG_LEN;
    uint32_t np = data[12] % (MAXP + 1);
    uint64_t offs[MAXP];
    for (uint32_t i = 0; i < np; i++)
        offs[i] = (uint64_t)le16(data + 13 + 2 * i) << (data[21] & 1 ? 12 : 9);
    uint8_t *pages = calloc(MAXP, 4096), *log = calloc(1, LOG_LEN), *entry = calloc(1, LOG_LEN);
    if (!pages || !log || !entry)
        goto out;
    memcpy(pages, data + 22, size - 22 < MAXP * 4096 ? size - 22 : MAXP * 4096);
    size_t elen = vhdx_log_entry_size(np);
    if (vhdx_log_build_entry(entry, LOG_LEN, seq, tail, fuzz_guid, 1, 2, offs, pages, np) < 0)
        goto out;
    /* Place it at tail, wrapping around the end of the log. */
    for (size_t i = 0; i < elen; i++)
        log[(tail + i) % LOG_LEN] = entry[i];
    struct vhdx_overlay ov;
    struct vd_error err = {0};
    if (elen > LOG_LEN || vhdx_log_replay(log, LOG_LEN, fuzz_guid, "fuzz", &ov, &err) < 0)
        goto out;
    if (ov.entries != 1)
        abort();
    uint8_t got[4096];
    for (uint32_t i = 0; i < np; i++) {
        bool later = false; /* a later page for the same offset wins */
        for (uint32_t j = i + 1; j < np; j++)
            later |= offs[j] == offs[i];
        if (later)
            continue;
        memset(got, 0xa5, sizeof(got));
        vhdx_overlay_apply(&ov, got, sizeof(got), offs[i]);
        if (memcmp(got, pages + (size_t)i * 4096, 4096) != 0)
            abort();
    }
    vhdx_overlay_free(&ov);
out:
    free(pages);
    free(log);
    free(entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_build(data, size);
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
