/*
 * Semantic invariants for the format fuzzers (issue 9): not only "no
 * crash", but what a crafted image must never get.
 *
 *   I1  Every map answer the core accepts lies inside its io and outside
 *       every declared metadata range (re-checked here independently of
 *       the core's own check, from the declared ranges).
 *   I2  When check() calls the image clean, no map answer is refused: a
 *       clean image maps nothing onto metadata or past its files.
 *   I3  vd_image_pread of a range equals the bytes assembled here from the
 *       map answers (DATA read from the io directly, ZERO, BACKING through
 *       the parent, GRAIN through a private decode), or fails.
 *   I4  (writable images) a write followed by a read returns what was
 *       written, and no declared metadata byte changes except through the
 *       driver's own table updates (caller snapshots and compares).
 *
 * Each violation calls __builtin_trap(), which libFuzzer reports with the
 * input. Header-only so each fuzz target includes it once.
 */
#ifndef VD_FUZZ_INVARIANTS_H
#define VD_FUZZ_INVARIANTS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/driver.h"
#include "io/io.h"

#define INV_ASSERT(c)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* I1 for one accepted answer at virtual offset off. */
static inline void inv_check_answer(struct vd_image *img, uint64_t off, uint64_t asked,
                                    const struct vd_map *m)
{
    INV_ASSERT(m->len > 0 && m->len <= asked);
    if (m->kind != VD_MAP_DATA && m->kind != VD_MAP_GRAIN)
        return;
    uint64_t start = m->io_off, n = m->kind == VD_MAP_DATA ? m->len : m->clen, end;
    INV_ASSERT(m->io != NULL);
    INV_ASSERT(!__builtin_add_overflow(start, n, &end));
    INV_ASSERT(end <= m->io->size);
    for (size_t i = 0; i < img->nmeta; i++) {
        const struct vd_meta_range *r = &img->meta[i];
        if (r->io == m->io)
            INV_ASSERT(end <= r->off || start >= r->off + r->len);
    }
    if (m->kind == VD_MAP_GRAIN)
        INV_ASSERT(m->unit_off <= off && off + m->len <= m->unit_off + m->unit_len);
}

/* Walk up to max_steps answers from off; returns how many answers the core
 * refused (EIO). Checks I1 on every accepted one. */
static inline unsigned inv_walk(struct vd_image *img, uint64_t off, unsigned max_steps)
{
    unsigned refused = 0;
    if (!img->ops->map)
        return 0;
    for (unsigned i = 0; i < max_steps && off < img->size; i++) {
        struct vd_map m;
        struct vd_error e = {0};
        uint64_t asked = img->size - off;
        if (vd_image_map_checked(img, off, asked, &m, &e) < 0) {
            INV_ASSERT(e.code != 0 && e.msg[0]);
            refused++;
            /* skip ahead one sector: the next answer may be fine */
            off += 512;
            continue;
        }
        inv_check_answer(img, off, asked, &m);
        off += m.len;
    }
    return refused;
}

/* I3: assemble [off, off+len) from map answers into out. Returns 0, or -1
 * when an answer or a read failed (then pread must fail too, or the
 * failure was transient: the caller only compares on success of both). */
static inline int inv_assemble(struct vd_image *img, uint8_t *out, size_t len, uint64_t off,
                               int depth)
{
    if (depth > VD_MAX_CHAIN)
        return -1;
    if (!img->ops->map) {
        struct vd_error e = {0};
        return vd_image_pread(img, out, len, off, &e) < 0 ? -1 : 0;
    }
    while (len > 0) {
        struct vd_map m;
        struct vd_error e = {0};
        if (vd_image_map_checked(img, off, len, &m, &e) < 0)
            return -1;
        inv_check_answer(img, off, len, &m);
        size_t n = (size_t)m.len;
        switch (m.kind) {
        case VD_MAP_DATA:
            if (vd_io_pread_full(m.io, out, n, m.io_off, &e) < 0)
                return -1;
            break;
        case VD_MAP_ZERO:
            memset(out, 0, n);
            break;
        case VD_MAP_BACKING: {
            struct vd_image *b = img->backing;
            size_t have = 0;
            if (b && off < b->size) {
                have = (size_t)(b->size - off < n ? b->size - off : n);
                if (inv_assemble(b, out, have, off, depth + 1) < 0)
                    return -1;
            }
            memset(out + have, 0, n - have);
            break;
        }
        case VD_MAP_GRAIN: {
            uint8_t *src = malloc((size_t)m.clen), *dst = malloc(m.unit_len);
            size_t need = 0;
            int r = -1;
            if (src && dst && vd_io_pread_full(m.io, src, (size_t)m.clen, m.io_off, &e) == 0) {
                r = img->ops->decode(img, &m, src, (size_t)m.clen, dst, &need, &e);
                if (r == -EAGAIN) {
                    uint8_t *big = need > m.clen && need <= m.clen + VD_GRAIN_MAX_SRC &&
                                           m.io_off + need <= m.io->size
                                       ? malloc(need)
                                       : NULL;
                    r = -1;
                    if (big && vd_io_pread_full(m.io, big, need, m.io_off, &e) == 0) {
                        struct vd_map bm = m;
                        bm.clen = need;
                        r = img->ops->decode(img, &bm, big, need, dst, &need, &e);
                    }
                    free(big);
                }
                if (r == 0)
                    memcpy(out, dst + (off - m.unit_off), n);
            }
            free(src);
            free(dst);
            if (r != 0)
                return -1;
            break;
        }
        }
        out += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* I3 on one range: both succeed and agree, or pread fails. */
static inline void inv_compare_read(struct vd_image *img, uint64_t off, size_t len)
{
    if (len == 0 || off >= img->size)
        return;
    if (len > img->size - off)
        len = (size_t)(img->size - off);
    uint8_t *a = malloc(len), *b = malloc(len);
    struct vd_error e = {0};
    if (a && b) {
        int ra = vd_image_pread(img, a, len, off, &e);
        int rb = inv_assemble(img, b, len, off, 0);
        if (ra == 0 && rb == 0)
            INV_ASSERT(memcmp(a, b, len) == 0);
        if (ra == 0)
            INV_ASSERT(e.code == 0);
        else
            INV_ASSERT(e.code != 0 && e.msg[0]);
    }
    free(a);
    free(b);
}

struct inv_check_count {
    unsigned corrupt, leaks;
};

static inline void inv_check_cb(void *opaque, bool corrupt, const char *msg)
{
    struct inv_check_count *c = opaque;
    (void)msg;
    if (corrupt)
        c->corrupt++;
    else
        c->leaks++;
}

/* I2: run check; when it says clean, walking the whole map must refuse
 * nothing. Returns check's verdict. */
static inline int inv_check_clean(struct vd_image *img, unsigned max_steps)
{
    struct inv_check_count c = {0};
    struct vd_error e = {0};
    if (!img->ops->check)
        return -1;
    int v = img->ops->check(img, inv_check_cb, &c, &e);
    if (v == VD_CHECK_CLEAN) {
        INV_ASSERT(c.corrupt == 0);
        INV_ASSERT(inv_walk(img, 0, max_steps) == 0);
    }
    if (v == VD_CHECK_CORRUPT)
        INV_ASSERT(c.corrupt > 0);
    return v;
}

/* I4 helpers: snapshot the bytes of every declared metadata range of io. */
static inline uint8_t *inv_meta_snapshot(struct vd_image *img, const struct vd_io *io,
                                         const uint8_t *file, size_t file_len, size_t *out_len)
{
    size_t total = 0;
    for (size_t i = 0; i < img->nmeta; i++)
        if (img->meta[i].io == io && img->meta[i].off < file_len)
            total += (size_t)(img->meta[i].off + img->meta[i].len > file_len
                                  ? file_len - img->meta[i].off
                                  : img->meta[i].len);
    uint8_t *s = malloc(total ? total : 1), *p = s;
    for (size_t i = 0; s && i < img->nmeta; i++) {
        const struct vd_meta_range *r = &img->meta[i];
        if (r->io != io || r->off >= file_len)
            continue;
        size_t n = (size_t)(r->off + r->len > file_len ? file_len - r->off : r->len);
        memcpy(p, file + r->off, n);
        p += n;
    }
    *out_len = total;
    return s;
}

#endif
