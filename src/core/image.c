/*
 * Image open/probe and the one reader. The core owns struct vd_image and the
 * driver's private state; drivers only fill them. Drivers describe where
 * bytes are (map); everything that moves bytes is here, after the answer
 * was checked against the image's files and declared metadata
 * (docs/trust-boundary.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "core/driver.h"

static int probe_format(struct vd_io *io, const struct vd_format_ops **out, struct vd_error *err)
{
    size_t head_len = (size_t)VD_MIN(io->size, (uint64_t)VD_PROBE_HEAD);
    size_t tail_len = (size_t)VD_MIN(io->size, (uint64_t)VD_PROBE_TAIL);
    uint8_t *head = malloc(VD_PROBE_HEAD), *tail = malloc(VD_PROBE_TAIL);
    int r = -ENOMEM, best = 0;
    if (!head || !tail) {
        vd_err(err, r, "%s: out of memory", io->name);
        goto out;
    }
    r = vd_io_pread_full(io, head, head_len, 0, err);
    if (r == 0)
        r = vd_io_pread_full(io, tail, tail_len, io->size - tail_len, err);
    if (r < 0)
        goto out;
    *out = &vd_format_raw;
    for (size_t i = 0; vd_formats[i]; i++) {
        int score = vd_formats[i]->probe(head, head_len, tail, tail_len, io->size);
        if (score > best) {
            best = score;
            *out = vd_formats[i];
        }
    }
out:
    free(head);
    free(tail);
    return r;
}

static void image_count_corrupt(void *opaque, bool corrupt, const char *msg)
{
    struct {
        unsigned n;
        char first[VD_ERROR_MAX];
    } *c = opaque;
    if (corrupt && c->n++ == 0)
        snprintf(c->first, sizeof(c->first), "%s", msg);
}

/* Writable opens are checked first (issue 9): an image whose tables point
 * into metadata or at each other would have us write over its own
 * structure. Leaks are fine to write to; corruption is refused. */
static int image_check_writable(struct vd_image *img, struct vd_error *err)
{
    struct {
        unsigned n;
        char first[VD_ERROR_MAX];
    } c = {0};
    if (!img->ops->check)
        return 0;
    int r = img->ops->check(img, image_count_corrupt, &c, err);
    if (r < 0)
        return r;
    if (r == VD_CHECK_CORRUPT)
        return vd_err(err, -EUCLEAN,
                      "%s: refusing to open for writing: `vdisk check` finds %u problem%s (first: "
                      "%s); open it read-only, or write through an overlay (-o overlay=FILE)",
                      img->name, c.n, c.n == 1 ? "" : "s", c.n ? c.first : "corrupt");
    img->checked_writable = true;
    return 0;
}

static int image_open(struct vd_io *io, const char *name, const struct vd_open_opts *opts,
                      int depth, const struct vd_image *opts_child, struct vd_image **out,
                      struct vd_error *err);

int vd_image_open_io(struct vd_io *io, const char *name, const struct vd_open_opts *opts, int depth,
                     struct vd_image **out, struct vd_error *err)
{
    return image_open(io, name, opts, depth, NULL, out, err);
}

int vd_image_open_child_of(struct vd_io *io, const char *name, const struct vd_open_opts *opts,
                           const struct vd_image *child, struct vd_image **out,
                           struct vd_error *err)
{
    return image_open(io, name, opts, child->depth + 1, child, out, err);
}

static int image_open(struct vd_io *io, const char *name, const struct vd_open_opts *opts,
                      int depth, const struct vd_image *opts_child, struct vd_image **out,
                      struct vd_error *err)
{
    static const struct vd_open_opts none;
    const struct vd_format_ops *ops = NULL;
    struct vd_image *img = NULL;
    int r;

    if (!opts)
        opts = &none;
    if (opts->format) {
        ops = vd_format_find(opts->format);
        if (!ops) {
            r = vd_err(err, -EINVAL, "%s: unknown format '%s'", io->name, opts->format);
            goto fail;
        }
    } else {
        r = probe_format(io, &ops, err);
        if (r < 0)
            goto fail;
    }
    if (!ops->map) { /* every driver answers the mapping question */
        r = vd_err(err, -ENOTSUP, "%s: the %s driver cannot be read", io->name, ops->name);
        goto fail;
    }
    img = calloc(1, sizeof(*img));
    if (!img || !(img->name = strdup(name)) ||
        (ops->priv_size && !(img->priv = calloc(1, ops->priv_size)))) {
        r = vd_err(err, -ENOMEM, "%s: out of memory", io->name);
        goto fail;
    }
    img->ops = ops;
    img->io = io;
    io = NULL; /* owned by img now */
    img->opts = *opts;
    img->depth = depth;
    img->sector_size = 512;
    img->child = opts_child;
    pthread_rwlock_init(&img->meta_lock, NULL);
    pthread_mutex_init(&img->once_lock, NULL);
    img->locks_init = true;
    r = ops->open(img, err);
    img->child = NULL;
    if (r < 0)
        goto fail;
    if (img->opts.writable && img->io->writable && ops->alloc) {
        r = image_check_writable(img, err);
        if (r < 0)
            goto fail;
    }
    *out = img;
    return 0;

fail:
    vd_io_unref(io);
    vd_image_close(img);
    return r;
}

void vd_image_close(struct vd_image *img)
{
    if (!img)
        return;
    vd_grain_cache_free(img->grains); /* its workers call the driver */
    img->grains = NULL;
    if (img->ops && img->priv)
        img->ops->close(img);
    if (!img->backing_borrowed)
        vd_image_close(img->backing);
    for (size_t i = 0; i < img->nfiles; i++)
        vd_io_unref(img->files[i]);
    free(img->files);
    free(img->files_shared);
    free(img->meta);
    if (img->locks_init) {
        pthread_rwlock_destroy(&img->meta_lock);
        pthread_mutex_destroy(&img->once_lock);
    }
    vd_io_unref(img->io);
    free(img->priv);
    free(img->name);
    free(img);
}

/* ---- metadata ranges ---- */

static int meta_cmp(const struct vd_meta_range *a, const struct vd_io *io, uint64_t off)
{
    if (a->io != io)
        return (uintptr_t)a->io < (uintptr_t)io ? -1 : 1;
    return a->off < off ? -1 : a->off > off;
}

/* Index of the first range >= (io, off). Caller holds meta_lock. */
static size_t meta_lower(const struct vd_image *img, const struct vd_io *io, uint64_t off)
{
    size_t lo = 0, hi = img->nmeta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (meta_cmp(&img->meta[mid], io, off) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int vd_image_declare_meta(struct vd_image *img, const struct vd_io *io, uint64_t off, uint64_t len,
                          const char *what, struct vd_error *err)
{
    uint64_t end;
    if (len == 0)
        return 0;
    if (ck_add(off, len, &end))
        return vd_err(err, -EINVAL, "%s: %s at offset %" PRIu64 " of %" PRIu64 " bytes overflows",
                      img->name, what, off, len);
    int r = 0;
    pthread_rwlock_wrlock(&img->meta_lock);
    /* Merge with every range it overlaps, so ranges never overlap and one
     * binary search answers an overlap query; and with the ranges it only
     * touches when they have the same name (a run of tables stays one
     * entry, while the header next to the log keeps its name in messages). */
    size_t i = meta_lower(img, io, off);
    if (i > 0 && img->meta[i - 1].io == io &&
        (img->meta[i - 1].off + img->meta[i - 1].len > off ||
         (img->meta[i - 1].off + img->meta[i - 1].len == off &&
          !strcmp(img->meta[i - 1].what, what))))
        i--;
    size_t j = i;
    uint64_t lo = off, hi = end;
    while (
        j < img->nmeta && img->meta[j].io == io &&
        (img->meta[j].off < hi || (img->meta[j].off == hi && !strcmp(img->meta[j].what, what)))) {
        lo = VD_MIN(lo, img->meta[j].off);
        hi = VD_MAX(hi, img->meta[j].off + img->meta[j].len);
        if (j == i)
            what = img->meta[j].what; /* keep the first name */
        j++;
    }
    if (j == i) {
        if (img->nmeta == img->meta_cap) {
            size_t cap = img->meta_cap ? img->meta_cap * 2 : 16;
            struct vd_meta_range *m = realloc(img->meta, cap * sizeof(*m));
            if (!m) {
                r = vd_err(err, -ENOMEM, "%s: out of memory", img->name);
                goto out;
            }
            img->meta = m;
            img->meta_cap = cap;
        }
        memmove(&img->meta[i + 1], &img->meta[i], (img->nmeta - i) * sizeof(*img->meta));
        img->nmeta++;
    } else if (j > i + 1) {
        memmove(&img->meta[i + 1], &img->meta[j], (img->nmeta - j) * sizeof(*img->meta));
        img->nmeta -= j - i - 1;
    }
    img->meta[i] = (struct vd_meta_range){.io = io, .off = lo, .len = hi - lo, .what = what};
out:
    pthread_rwlock_unlock(&img->meta_lock);
    return r;
}

int vd_image_forget_meta(struct vd_image *img, const struct vd_io *io, uint64_t off, uint64_t len,
                         struct vd_error *err)
{
    uint64_t end;
    if (len == 0)
        return 0;
    if (ck_add(off, len, &end))
        return vd_err(err, -EINVAL, "%s: forgetting metadata at offset %" PRIu64 " overflows",
                      img->name, off);
    int r = 0;
    pthread_rwlock_wrlock(&img->meta_lock);
    size_t i = meta_lower(img, io, off);
    if (i > 0 && img->meta[i - 1].io == io && img->meta[i - 1].off + img->meta[i - 1].len > off)
        i--;
    while (i < img->nmeta && img->meta[i].io == io && img->meta[i].off < end) {
        struct vd_meta_range *m = &img->meta[i];
        uint64_t mend = m->off + m->len;
        if (m->off < off && mend > end) {
            /* [off, end) is inside one range: split it in two. */
            if (img->nmeta == img->meta_cap) {
                size_t cap = img->meta_cap * 2;
                struct vd_meta_range *n = realloc(img->meta, cap * sizeof(*n));
                if (!n) {
                    r = vd_err(err, -ENOMEM, "%s: out of memory", img->name);
                    break;
                }
                img->meta = n;
                img->meta_cap = cap;
                m = &img->meta[i];
            }
            memmove(&img->meta[i + 2], &img->meta[i + 1],
                    (img->nmeta - i - 1) * sizeof(*img->meta));
            img->meta[i + 1] =
                (struct vd_meta_range){.io = io, .off = end, .len = mend - end, .what = m->what};
            m->len = off - m->off;
            img->nmeta++;
            break;
        }
        if (m->off < off) { /* keep the head */
            m->len = off - m->off;
            i++;
        } else if (mend > end) { /* keep the tail */
            m->len = mend - end;
            m->off = end;
            break;
        } else { /* wholly inside: drop it */
            memmove(m, m + 1, (img->nmeta - i - 1) * sizeof(*m));
            img->nmeta--;
        }
    }
    pthread_rwlock_unlock(&img->meta_lock);
    return r;
}

const struct vd_meta_range *vd_image_meta_overlap(struct vd_image *img, const struct vd_io *io,
                                                  uint64_t off, uint64_t len)
{
    const struct vd_meta_range *hit = NULL;
    uint64_t end = off + len; /* callers checked */
    pthread_rwlock_rdlock(&img->meta_lock);
    size_t i = meta_lower(img, io, end);
    if (i > 0) {
        const struct vd_meta_range *m = &img->meta[i - 1];
        if (m->io == io && m->off < end && off < m->off + m->len)
            hit = m;
    }
    pthread_rwlock_unlock(&img->meta_lock);
    return hit;
}

/* ---- checking a driver's answer ---- */

static bool image_owns_io(const struct vd_image *img, const struct vd_io *io)
{
    if (io == img->io)
        return true;
    for (size_t i = 0; i < img->nfiles; i++)
        if (img->files[i] == io)
            return true;
    return false;
}

static const char *map_kind_name(enum vd_map_kind k)
{
    switch (k) {
    case VD_MAP_DATA:
        return "data";
    case VD_MAP_ZERO:
        return "zeros";
    case VD_MAP_BACKING:
        return "backing";
    case VD_MAP_GRAIN:
        return "compressed grain";
    }
    return "?";
}

/* [io_off, io_off+n) of m->io may hold data: inside the io, outside its
 * metadata. */
static int map_check_bytes(struct vd_image *img, uint64_t off, const struct vd_map *m,
                           uint64_t io_off, uint64_t n, struct vd_error *err)
{
    uint64_t end, size = __atomic_load_n(&m->io->size, __ATOMIC_ACQUIRE);
    const char *why = m->what ? m->what : "the image's tables";
    if (ck_add(io_off, n, &end) || end > size)
        return vd_err(err, -EIO,
                      "%s: %s places the %s at virtual offset %" PRIu64 " at offset %" PRIu64
                      " of %s, past its end (%" PRIu64 " bytes): the image is corrupt or truncated",
                      img->name, why, map_kind_name(m->kind), off, io_off, vd_io_basename(m->io),
                      size);
    const struct vd_meta_range *hit = vd_image_meta_overlap(img, m->io, io_off, n);
    if (hit)
        return vd_err(err, -EIO,
                      "%s: %s places the %s at virtual offset %" PRIu64 " at offset %" PRIu64
                      " of %s, inside its %s (%" PRIu64 "..%" PRIu64
                      "): the image is corrupt or crafted; refused",
                      img->name, why, map_kind_name(m->kind), off, io_off, vd_io_basename(m->io),
                      hit->what, hit->off, hit->off + hit->len);
    return 0;
}

int vd_image_check_span(struct vd_image *img, const struct vd_map *m, uint64_t off, uint64_t io_off,
                        uint64_t n, struct vd_error *err)
{
    return map_check_bytes(img, off, m, io_off, n, err);
}

/* The first metadata range of io starting after off, or UINT64_MAX. */
static uint64_t meta_next_start(struct vd_image *img, const struct vd_io *io, uint64_t off)
{
    uint64_t r = UINT64_MAX;
    pthread_rwlock_rdlock(&img->meta_lock);
    size_t i = meta_lower(img, io, off);
    if (i < img->nmeta && img->meta[i].io == io)
        r = img->meta[i].off;
    pthread_rwlock_unlock(&img->meta_lock);
    return r;
}

static int map_validate(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                        struct vd_error *err)
{
    if (m->len == 0 || m->len > len)
        return vd_err(err, -EIO,
                      "%s: %s driver answered a run of %" PRIu64 " bytes at virtual offset %" PRIu64
                      " for a request of %" PRIu64,
                      img->name, img->ops->name, m->len, off, len);
    switch (m->kind) {
    case VD_MAP_ZERO:
    case VD_MAP_BACKING:
        return 0;
    case VD_MAP_DATA:
        if (!m->io || !image_owns_io(img, m->io))
            break;
        return map_check_bytes(img, off, m, m->io_off, m->len, err);
    case VD_MAP_GRAIN: {
        uint64_t uend, end;
        if (!m->io || !image_owns_io(img, m->io) || !img->ops->decode)
            break;
        if (m->unit_len == 0 || m->unit_len > VD_GRAIN_MAX_UNIT ||
            ck_add(m->unit_off, m->unit_len, &uend) || off < m->unit_off ||
            ck_add(off, m->len, &end) || end > uend)
            return vd_err(err, -EIO,
                          "%s: compressed unit at virtual offset %" PRIu64 " (%u bytes) does not "
                          "cover the %" PRIu64 " bytes asked at %" PRIu64,
                          img->name, m->unit_off, m->unit_len, m->len, off);
        if (m->clen == 0 || m->clen > VD_GRAIN_MAX_SRC)
            return vd_err(err, -EIO,
                          "%s: compressed unit at virtual offset %" PRIu64 " claims %" PRIu64
                          " stored bytes",
                          img->name, m->unit_off, m->clen);
        /* clen is an estimate: clip it at the end of the io and at the next
         * metadata range, then check what is left. */
        uint64_t size = __atomic_load_n(&m->io->size, __ATOMIC_ACQUIRE);
        if (m->io_off >= size)
            return map_check_bytes(img, off, m, m->io_off, 1, err);
        m->clen = VD_MIN(m->clen, size - m->io_off);
        uint64_t next = meta_next_start(img, m->io, m->io_off + 1);
        if (next > m->io_off)
            m->clen = VD_MIN(m->clen, next - m->io_off);
        return map_check_bytes(img, off, m, m->io_off, m->clen, err);
    }
    }
    return vd_err(err, -EIO, "%s: %s driver answered an invalid mapping at virtual offset %" PRIu64,
                  img->name, img->ops->name, off);
}

int vd_image_map_checked(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                         struct vd_error *err)
{
    memset(m, 0, sizeof(*m));
    int r = img->ops->map(img, off, len, m, err);
    if (r < 0)
        return r;
    return map_validate(img, off, len, m, err);
}

/* ---- reading ---- */

static int image_read(struct vd_image *img, void *buf, size_t len, uint64_t off,
                      struct vd_error *err);

int vd_image_read_backing(struct vd_image *img, void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    struct vd_image *b = img->backing;
    if (!b || off >= b->size) {
        memset(buf, 0, len);
        return 0;
    }
    /* A parent smaller than its child reads as zeros past its end. */
    size_t n = (size_t)VD_MIN((uint64_t)len, b->size - off);
    int r = image_read(b, buf, n, off, err);
    if (r == 0 && n < len)
        memset((uint8_t *)buf + n, 0, len - n);
    return r;
}

/* Compressed units of one read, decoded last to first: a readahead worker
 * queued by the previous read decodes them first to last, so the reader
 * and the worker meet in the middle instead of the reader waiting behind
 * the worker on each unit in turn (which halved sequential stream reads on
 * two CPUs). first is the read's first GRAIN answer, at off; the batch ends
 * at the first answer of another kind (left for the caller to map again),
 * or after GRAIN_BATCH units. Sets *done to the bytes read. */
#define GRAIN_BATCH 32

/* Tell the io the batch's compressed bytes are wanted: on S3 they then
 * arrive as one GET, not one round trip per unit read backwards. Only
 * when every unit lies in one io and the span is dense enough (a stream
 * VMDK's grains follow each other) that fetching the gaps costs little. */
static void grain_willneed(const struct vd_map *batch, size_t n)
{
    if (n < 2 || !batch[0].io->ops->willneed)
        return;
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (batch[i].io != batch[0].io)
            return;
        lo = VD_MIN(lo, batch[i].io_off);
        hi = VD_MAX(hi, batch[i].io_off + batch[i].clen); /* checked against the io's size */
        sum += batch[i].clen;
    }
    if (hi - lo <= 2 * sum)
        vd_io_willneed(batch[0].io, lo, hi - lo);
}

static int image_read_grains(struct vd_image *img, const struct vd_map *first, uint8_t *p,
                             size_t len, uint64_t off, size_t *done, struct vd_error *err)
{
    struct vd_map batch[GRAIN_BATCH];
    char what[GRAIN_BATCH][96]; /* a driver's what may live only until its next answer */
    size_t n = 0, pos = 0;
    batch[0] = *first;
    for (;;) {
        if (batch[n].what) {
            snprintf(what[n], sizeof(what[n]), "%s", batch[n].what);
            batch[n].what = what[n];
        }
        pos += (size_t)batch[n++].len;
        if (n == GRAIN_BATCH || pos >= len)
            break;
        struct vd_error e2 = {0}; /* a bad answer is reported when mapped again */
        if (vd_image_map_checked(img, off + pos, len - pos, &batch[n], &e2) < 0 ||
            batch[n].kind != VD_MAP_GRAIN)
            break;
    }
    *done = pos;
    grain_willneed(batch, n);
    for (size_t i = n; i-- > 0;) {
        pos -= (size_t)batch[i].len;
        int r = vd_grain_read(img, &batch[i], off + pos, p + pos, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The one reader: every byte of every format is read here, from a checked
 * answer. */
static int image_read(struct vd_image *img, void *buf, size_t len, uint64_t off,
                      struct vd_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        struct vd_map m;
        int r = vd_image_map_checked(img, off, len, &m, err);
        if (r < 0)
            return r;
        size_t n = (size_t)m.len;
        switch (m.kind) {
        case VD_MAP_DATA:
            r = vd_io_pread_full(m.io, p, n, m.io_off, err);
            break;
        case VD_MAP_ZERO:
            memset(p, 0, n);
            break;
        case VD_MAP_BACKING:
            r = vd_image_read_backing(img, p, n, off, err);
            break;
        case VD_MAP_GRAIN:
            r = image_read_grains(img, &m, p, len, off, &n, err);
            break;
        }
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int check_range(struct vd_image *img, size_t len, uint64_t off, struct vd_error *err)
{
    uint64_t end;
    if (ck_add(off, len, &end) || end > img->size)
        return vd_err(err, -EINVAL,
                      "%s: access of %zu bytes at offset %" PRIu64
                      " is past the virtual size (%" PRIu64 " bytes)",
                      img->name, len, off, img->size);
    return 0;
}

int vd_image_pread(struct vd_image *img, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    int r = check_range(img, len, off, err);
    if (r < 0 || len == 0)
        return r;
    return image_read(img, buf, len, off, err);
}

/* ---- writing ---- */

static bool all_zero(const uint8_t *p, size_t n)
{
    /* word at a time after the head: this runs on every write of a hole */
    while (n && ((uintptr_t)p & 7)) {
        if (*p++)
            return false;
        n--;
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w)
            return false;
    }
    while (n--)
        if (*p++)
            return false;
    return true;
}

static int image_write_begin(struct vd_image *img, struct vd_error *err)
{
    int r = 0;
    if (__atomic_load_n(&img->write_begun, __ATOMIC_ACQUIRE) || !img->ops->write_begin)
        return 0;
    pthread_mutex_lock(&img->once_lock);
    if (!img->write_begun) {
        r = img->ops->write_begin(img, err);
        if (r == 0)
            __atomic_store_n(&img->write_begun, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&img->once_lock);
    return r;
}

int vd_image_pwrite(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                    struct vd_error *err)
{
    if (!img->ops->alloc)
        return vd_err(err, -EROFS,
                      "%s: %s%s%s images cannot be written in place; mount it read-only, keep the "
                      "changes in an overlay (-o overlay=FILE), or write to a converted copy",
                      img->name, img->ops->name, img->subformat ? " " : "",
                      img->subformat ? img->subformat : "");
    if (!img->opts.writable)
        return vd_err(err, -EROFS, "%s: opened read-only", img->name);
    int r = check_range(img, len, off, err);
    if (r < 0 || len == 0)
        return r;
    if ((r = image_write_begin(img, err)) < 0)
        return r;
    const uint8_t *p = buf;
    while (len > 0) {
        struct vd_map m;
        r = vd_image_map_checked(img, off, len, &m, err);
        if (r < 0)
            return r;
        if (m.kind == VD_MAP_ZERO && all_zero(p, (size_t)m.len))
            goto next; /* already reads as these bytes: no allocation */
        if (m.kind != VD_MAP_DATA) {
            uint64_t asked = m.len;
            memset(&m, 0, sizeof(m));
            r = img->ops->alloc(img, off, asked, p, &m, err);
            if (r == 0)
                r = map_validate(img, off, asked, &m, err);
            if (r == 0 && m.kind != VD_MAP_DATA)
                r = vd_err(err, -EIO, "%s: %s driver allocated no data at virtual offset %" PRIu64,
                           img->name, img->ops->name, off);
            if (r < 0)
                return r;
        }
        if (!m.io->writable)
            return vd_err(err, -EROFS, "%s: %s is open read-only", img->name, vd_io_basename(m.io));
        r = vd_io_pwrite_full(m.io, p, (size_t)m.len, m.io_off, err);
        if (r < 0)
            return r;
    next:
        p += m.len;
        off += m.len;
        len -= (size_t)m.len;
    }
    return 0;
}

bool vd_image_can_write(const struct vd_image *img)
{
    return img->ops->alloc && img->opts.writable && img->io->writable;
}

int vd_image_flush(struct vd_image *img, struct vd_error *err)
{
    return img->ops->flush ? img->ops->flush(img, err) : 0;
}

/* ---- status and zero-copy ---- */

static int kind_status(enum vd_map_kind k)
{
    return k == VD_MAP_ZERO      ? VD_STATUS_ZERO
           : k == VD_MAP_BACKING ? VD_STATUS_BACKING
                                 : VD_STATUS_DATA;
}

/* Status of a data answer: a hole in a sparse local file reads as zeros. */
static int data_status(const struct vd_map *m, uint64_t *n, struct vd_error *err)
{
    if (m->kind != VD_MAP_DATA || !m->io->ops->block_status)
        return kind_status(m->kind);
    uint64_t pnum = m->len;
    int st = m->io->ops->block_status(m->io, m->io_off, m->len, &pnum, err);
    if (st < 0)
        return st;
    if (pnum > 0 && pnum < *n)
        *n = pnum;
    return st == VD_STATUS_ZERO ? VD_STATUS_ZERO : VD_STATUS_DATA;
}

/* Status of one layer for the run at off, coalescing following answers of
 * the same status (bounded, so one call stays cheap). */
static int layer_status(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum,
                        struct vd_error *err)
{
    struct vd_map m;
    int r = vd_image_map_checked(img, off, len, &m, err);
    if (r < 0)
        return r;
    uint64_t done = m.len;
    int st = data_status(&m, &done, err);
    if (st < 0 || done < m.len) {
        *pnum = done;
        return st;
    }
    for (unsigned i = 0; i < 4096 && done < len; i++) {
        struct vd_error e2 = {0};
        if (vd_image_map_checked(img, off + done, len - done, &m, &e2) < 0)
            break; /* reported when that range is asked for */
        uint64_t n = m.len;
        if (data_status(&m, &n, &e2) != st)
            break;
        done += n;
        if (n < m.len)
            break;
    }
    *pnum = done;
    return st;
}

int vd_image_block_status(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *len_out,
                          struct vd_error *err)
{
    if (off >= img->size || len == 0)
        return vd_err(err, -EINVAL, "%s: block status at %" PRIu64 " past end", img->name, off);
    len = VD_MIN(len, img->size - off);
    for (;;) {
        uint64_t pnum = 0;
        int st = layer_status(img, off, len, &pnum, err);
        if (st < 0)
            return st;
        *len_out = pnum;
        if (st != VD_STATUS_BACKING)
            return st;
        if (!img->backing || off >= img->backing->size)
            return VD_STATUS_ZERO;
        img = img->backing;
        len = VD_MIN(pnum, img->size - off);
    }
}

int vd_image_map(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum, int *fd,
                 uint64_t *fd_off, struct vd_error *err)
{
    struct vd_io *io = NULL;
    uint64_t n = 0, io_off = 0, base = 0;
    if (off >= img->size || len == 0)
        return vd_err(err, -EINVAL, "%s: map at %" PRIu64 " past end", img->name, off);
    len = VD_MIN(len, img->size - off);
    *pnum = len;
    for (;;) {
        struct vd_map m;
        int r = vd_image_map_checked(img, off, len, &m, err);
        if (r < 0)
            return r;
        *pnum = m.len;
        if (m.kind == VD_MAP_BACKING && img->backing && off < img->backing->size) {
            /* read through to the parent, the run cut at both layers */
            img = img->backing;
            len = VD_MIN(m.len, img->size - off);
            *pnum = len;
            continue;
        }
        if (m.kind != VD_MAP_DATA)
            return 0;
        io = m.io;
        io_off = m.io_off;
        n = m.len;
        break;
    }
    if (!io->ops->fd)
        return 0;
    int f = io->ops->fd(io, &base);
    if (f < 0 || ck_add(base, io_off, fd_off) || *fd_off > (uint64_t)INT64_MAX - n)
        return 0;
    *fd = f;
    return 1;
}

uint64_t vd_image_size(const struct vd_image *img)
{
    return img->size;
}
const char *vd_image_name(const struct vd_image *img)
{
    return img->name;
}
const char *vd_image_format(const struct vd_image *img)
{
    return img->ops->name;
}
const char *vd_image_subformat(const struct vd_image *img)
{
    return img->subformat;
}
struct vd_image *vd_image_backing(const struct vd_image *img)
{
    return img->backing;
}

uint32_t vd_image_sector_size(const struct vd_image *img)
{
    return img->sector_size;
}

uint64_t vd_image_allocated(struct vd_image *img)
{
    return img->ops->allocated ? img->ops->allocated(img) : img->io->size;
}

const char *vd_version(void)
{
    return "0.1.0";
}
