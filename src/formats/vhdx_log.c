/*
 * VHDX metadata log replay, in memory ([MS-VHDX] v20160714 section 2.3).
 *
 * The log is a circular buffer of 4 KiB sectors holding entries:
 *
 *   entry := [ header(64) | descriptors(32 each) ... pad to 4 KiB ]
 *            [ data sector ] ... one per "desc" descriptor
 *   header     "loge" crc32c entry_length tail seq desc_count rsvd
 *              log_guid flushed_file_offset last_file_offset
 *   "desc"     trailing(4) leading(8) file_offset seq  -> one 4 KiB write:
 *              leading(8) + data sector bytes 8..4091 + trailing(4)
 *   "zero"     rsvd zero_length file_offset seq        -> zero a range
 *   data sector "data" seq_high data[4084] seq_low
 *
 * The CRC-32C covers the whole entry with its checksum field zeroed. The
 * active sequence is the run of valid entries with consecutive sequence
 * numbers, each starting where the previous ends, whose newest (head) entry's
 * Tail names an entry of the run, and whose head has the highest sequence
 * number of all such runs. Entries from Tail to head are replayed in order.
 * A torn (bad CRC) last entry simply ends the run: the sequence before it is
 * what gets replayed, as after a crash.
 *
 * Nothing is written: the result is an overlay of file extents. The driver
 * reads its file through vhdx_overlay_io_open, an io that applies it, and
 * names that io in its map answers, so the core's reads see the replayed
 * file too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/crc32c.h"
#include "formats/vhdx.h"
#include "io/io.h"

#define LOG_HDR_SIZE  64
#define LOG_DESC_SIZE 32
/* Entries may not touch the file identifier and headers (2.3.1.2). */
#define LOG_MIN_FILE_OFFSET (192u * 1024u)
/* Writes beyond this are rejected as hostile (4 PiB). */
#define LOG_MAX_FILE_OFFSET (1ull << 52)
/* Bound on checksum work while searching, in passes over the log. */
#define LOG_CRC_PASSES 16

/* One write of the replayed sequence, in log order (idx). */
struct log_op {
    uint64_t off, len;
    const uint8_t *page; /* 4 KiB assembled in ov->pages, or NULL = zeros */
    size_t idx;
};

struct log_budget {
    uint64_t left; /* bytes we may still checksum */
    bool exhausted;
};

static uint32_t log_desc_sectors(uint32_t count)
{
    return (uint32_t)div_round_up(LOG_HDR_SIZE + (uint64_t)count * LOG_DESC_SIZE, VHDX_LOG_SECTOR);
}

/* Is the entry at p (contiguous, at most avail bytes) valid for guid? On
 * success sets *len_out, *seq_out and *ndata (data descriptors). */
static bool log_entry_valid(const uint8_t *p, size_t avail, const uint8_t guid[16],
                            struct log_budget *budget, uint32_t *len_out, uint64_t *seq_out)
{
    if (avail < VHDX_LOG_SECTOR || memcmp(p, "loge", 4) != 0)
        return false;
    uint32_t len = le32(p + 8);
    uint64_t seq = le64(p + 16);
    uint32_t count = le32(p + 24);
    if (len < VHDX_LOG_SECTOR || len % VHDX_LOG_SECTOR || len > avail || seq == 0 ||
        memcmp(p + 32, guid, 16) != 0)
        return false;
    if (le32(p + 12) % VHDX_LOG_SECTOR)
        return false;
    uint64_t dsec = log_desc_sectors(count);
    if (dsec * VHDX_LOG_SECTOR > len)
        return false;
    uint64_t data = dsec;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *d = p + LOG_HDR_SIZE + (size_t)i * LOG_DESC_SIZE;
        uint64_t foff = le64(d + 16), end;
        if (le64(d + 24) != seq || foff % VHDX_LOG_SECTOR || foff < LOG_MIN_FILE_OFFSET)
            return false;
        if (!memcmp(d, "zero", 4)) {
            uint64_t zl = le64(d + 8);
            if (zl == 0 || zl % VHDX_LOG_SECTOR || ck_add(foff, zl, &end) ||
                end > LOG_MAX_FILE_OFFSET)
                return false;
        } else if (!memcmp(d, "desc", 4)) {
            if (foff + VHDX_LOG_SECTOR > LOG_MAX_FILE_OFFSET)
                return false;
            if ((data + 1) * VHDX_LOG_SECTOR > len)
                return false;
            const uint8_t *s = p + data * VHDX_LOG_SECTOR;
            if (memcmp(s, "data", 4) != 0 || le32(s + 4) != (uint32_t)(seq >> 32) ||
                le32(s + 4092) != (uint32_t)seq)
                return false;
            data++;
        } else {
            return false;
        }
    }
    /* Checksumming is the costly step: a hostile log could make every
     * sector start a long entry. The caller bounds the total. */
    if (budget->left < len) {
        budget->exhausted = true;
        return false;
    }
    budget->left -= len;
    uint32_t crc = vd_crc32c(0, p, 4);
    static const uint8_t zero4[4];
    crc = vd_crc32c(crc, zero4, 4);
    crc = vd_crc32c(crc, p + 8, len - 8);
    if (!vhdx_crc_matches(crc, le32(p + 4)))
        return false;
    *len_out = len;
    *seq_out = seq;
    return true;
}

/* Max-heap of op indexes, for the sweep that resolves overlapping writes. */
struct log_heap {
    size_t *v;
    size_t n;
};
static void heap_push(struct log_heap *h, size_t x)
{
    size_t i = h->n++;
    h->v[i] = x;
    while (i && h->v[(i - 1) / 2] < h->v[i]) {
        size_t p = (i - 1) / 2, t = h->v[p];
        h->v[p] = h->v[i];
        h->v[i] = t;
        i = p;
    }
}
static void heap_pop(struct log_heap *h)
{
    h->v[0] = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l] > h->v[m])
            m = l;
        if (r < h->n && h->v[r] > h->v[m])
            m = r;
        if (m == i)
            break;
        size_t t = h->v[m];
        h->v[m] = h->v[i];
        h->v[i] = t;
        i = m;
    }
}

struct log_event {
    uint64_t pos;
    size_t op;
    bool start;
};
static int event_cmp(const void *a, const void *b)
{
    const struct log_event *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return (int)x->start - (int)y->start; /* ends first */
}

/* Resolve ops (later idx wins) into sorted, disjoint extents. */
static int log_build_extents(struct log_op *ops, size_t nops, struct vhdx_overlay *ov)
{
    int r = -ENOMEM;
    struct log_event *ev = NULL;
    struct log_heap h = {0};
    bool *ended = NULL;
    if (nops == 0)
        return 0;
    ev = malloc(2 * nops * sizeof(*ev));
    h.v = malloc(nops * sizeof(*h.v));
    ended = calloc(nops, sizeof(*ended));
    ov->ext = malloc(2 * nops * sizeof(*ov->ext));
    if (!ev || !h.v || !ended || !ov->ext)
        goto out;
    for (size_t i = 0; i < nops; i++) {
        ev[2 * i] = (struct log_event){ops[i].off, i, true};
        ev[2 * i + 1] = (struct log_event){ops[i].off + ops[i].len, i, false};
    }
    qsort(ev, 2 * nops, sizeof(*ev), event_cmp);
    for (size_t e = 0; e < 2 * nops;) {
        uint64_t pos = ev[e].pos;
        for (; e < 2 * nops && ev[e].pos == pos; e++) {
            if (ev[e].start)
                heap_push(&h, ev[e].op);
            else
                ended[ev[e].op] = true;
        }
        while (h.n && ended[h.v[0]])
            heap_pop(&h);
        if (!h.n || e == 2 * nops)
            continue;
        uint64_t next = ev[e].pos;
        const struct log_op *w = &ops[h.v[0]];
        const uint8_t *data = w->page ? w->page + (pos - w->off) : NULL;
        struct vhdx_overlay_ext *last = ov->n ? &ov->ext[ov->n - 1] : NULL;
        if (last && last->off + last->len == pos &&
            ((!data && !last->data) || (data && last->data && last->data + last->len == data))) {
            last->len += next - pos;
        } else {
            ov->ext[ov->n++] = (struct vhdx_overlay_ext){pos, next - pos, data};
        }
    }
    r = 0;
out:
    free(ev);
    free(h.v);
    free(ended);
    return r;
}

int vhdx_log_replay(const uint8_t *log, size_t log_len, const uint8_t guid[16], const char *name,
                    struct vhdx_overlay *ov, struct vd_error *err)
{
    int r = 0;
    uint8_t *ring = NULL; /* the log twice, so wrapped entries are contiguous */
    struct log_op *ops = NULL;
    size_t nsec = log_len / VHDX_LOG_SECTOR;
    memset(ov, 0, sizeof(*ov));
    if (log_len == 0 || log_len % VHDX_LOG_SECTOR || log_len > VHDX_LOG_MAX)
        return vd_err(err, -EINVAL, "vhdx: %s: log length %zu is invalid", name, log_len);
    ring = malloc(2 * log_len);
    if (!ring)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory for the log", name);
    memcpy(ring, log, log_len);
    memcpy(ring + log_len, log, log_len);

    /* Search for the active sequence (2.3.3). */
    /* A sane log checksums each byte about twice (search plus run
     * extension); 16 passes leave room for stale entries of earlier laps. */
    struct log_budget budget = {(uint64_t)LOG_CRC_PASSES * log_len, false};
    bool have = false;
    uint64_t best_head_seq = 0;
    size_t best_first = 0, best_count = 0;
    for (size_t pos = 0; pos < log_len;) {
        uint32_t elen;
        uint64_t seq;
        if (!log_entry_valid(ring + pos, log_len, guid, &budget, &elen, &seq)) {
            pos += VHDX_LOG_SECTOR;
            continue;
        }
        size_t start = pos, head = pos, count = 1, used = elen;
        uint64_t head_seq = seq;
        uint32_t head_len = elen;
        for (;;) {
            size_t nxt = (head + head_len) % log_len;
            uint32_t l2;
            uint64_t s2;
            if (used >= log_len || nxt == start)
                break;
            if (!log_entry_valid(ring + nxt, log_len - used, guid, &budget, &l2, &s2) ||
                s2 != head_seq + 1)
                break;
            head = nxt;
            head_seq = s2;
            head_len = l2;
            used += l2;
            count++;
        }
        /* Complete only if the head's Tail names an entry of the run. */
        uint32_t tail = le32(ring + head + 12);
        size_t e = start;
        for (size_t k = 0; k < count; k++) {
            if (e == tail) {
                if (!have || head_seq > best_head_seq) {
                    have = true;
                    best_head_seq = head_seq;
                    best_first = e;
                    best_count = count - k;
                }
                break;
            }
            e = (e + le32(ring + e + 8)) % log_len;
        }
        size_t after = start + used;
        if (after >= log_len)
            break; /* the run wrapped: every sector has been looked at */
        pos = after;
    }
    (void)nsec;
    if (budget.exhausted) {
        r = vd_err(err, -EINVAL,
                   "vhdx: %s: log is too damaged to search (over %d passes of checksums)", name,
                   LOG_CRC_PASSES);
        goto out;
    }
    if (!have)
        goto out;

    /* Count ops, then assemble the data pages. */
    size_t nops = 0, npages = 0;
    for (size_t k = 0, e = best_first; k < best_count; k++) {
        uint32_t cnt = le32(ring + e + 24);
        for (uint32_t i = 0; i < cnt; i++)
            npages += !memcmp(ring + e + LOG_HDR_SIZE + (size_t)i * LOG_DESC_SIZE, "desc", 4);
        nops += cnt;
        e = (e + le32(ring + e + 8)) % log_len;
    }
    ops = malloc((nops ? nops : 1) * sizeof(*ops));
    ov->pages = malloc(npages ? npages * VHDX_LOG_SECTOR : 1);
    if (!ops || !ov->pages) {
        r = vd_err(err, -ENOMEM, "vhdx: %s: out of memory replaying the log", name);
        goto out;
    }
    size_t oi = 0, pi = 0;
    for (size_t k = 0, e = best_first; k < best_count; k++) {
        const uint8_t *p = ring + e;
        uint32_t cnt = le32(p + 24);
        size_t data = log_desc_sectors(cnt);
        for (uint32_t i = 0; i < cnt; i++) {
            const uint8_t *d = p + LOG_HDR_SIZE + (size_t)i * LOG_DESC_SIZE;
            uint64_t foff = le64(d + 16);
            struct log_op *op = &ops[oi];
            op->idx = oi;
            op->off = foff;
            if (!memcmp(d, "zero", 4)) {
                op->len = le64(d + 8);
                op->page = NULL;
            } else {
                uint8_t *pg = ov->pages + pi++ * VHDX_LOG_SECTOR;
                const uint8_t *s = p + data++ * VHDX_LOG_SECTOR;
                memcpy(pg, d + 8, 8);
                memcpy(pg + 8, s + 8, 4084);
                memcpy(pg + 4092, d + 4, 4);
                op->len = VHDX_LOG_SECTOR;
                op->page = pg;
            }
            ov->end = VD_MAX(ov->end, op->off + op->len);
            oi++;
        }
        if (k + 1 == best_count) {
            ov->flushed_file_offset = le64(p + 48);
            ov->last_file_offset = le64(p + 56);
        }
        e = (e + le32(p + 8)) % log_len;
    }
    if (log_build_extents(ops, nops, ov) < 0) {
        r = vd_err(err, -ENOMEM, "vhdx: %s: out of memory replaying the log", name);
        goto out;
    }
    ov->entries = best_count;
    ov->head_seq = best_head_seq;
out:
    free(ops);
    free(ring);
    if (r < 0)
        vhdx_overlay_free(ov);
    return r;
}

void vhdx_overlay_apply(const struct vhdx_overlay *ov, uint8_t *buf, size_t len, uint64_t off)
{
    if (!ov || ov->n == 0 || len == 0)
        return;
    uint64_t end = off + len;
    /* First extent ending after off. */
    size_t lo = 0, hi = ov->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ov->ext[mid].off + ov->ext[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < ov->n && ov->ext[i].off < end; i++) {
        const struct vhdx_overlay_ext *x = &ov->ext[i];
        uint64_t a = VD_MAX(x->off, off), b = VD_MIN(x->off + x->len, end);
        if (x->data)
            memcpy(buf + (a - off), x->data + (a - x->off), (size_t)(b - a));
        else
            memset(buf + (a - off), 0, (size_t)(b - a));
    }
}

void vhdx_overlay_free(struct vhdx_overlay *ov)
{
    if (!ov)
        return;
    free(ov->ext);
    free(ov->pages);
    memset(ov, 0, sizeof(*ov));
}

/* ---- the replayed file as an io ---- */

struct vhdx_ov_io {
    struct vd_io io; /* first: "subclassing" */
    struct vd_io *base;
    const struct vhdx_overlay *ov;
};

static ssize_t ovio_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    struct vhdx_ov_io *v = (struct vhdx_ov_io *)io;
    if (off >= io->size)
        return 0;
    if (len > io->size - off)
        len = (size_t)(io->size - off);
    /* Past the real end of file, up to LastFileOffset: zeros (2.3.3). */
    int r = vd_io_pread_zfill(v->base, buf, len, off, err);
    if (r < 0)
        return r;
    vhdx_overlay_apply(v->ov, buf, len, off);
    return (ssize_t)len;
}

static void ovio_close(struct vd_io *io)
{
    struct vhdx_ov_io *v = (struct vhdx_ov_io *)io;
    vd_io_unref(v->base);
    free(v);
}

static const struct vd_io_ops ovio_ops = {
    .name = "vhdx-log",
    .pread = ovio_pread,
    .close = ovio_close,
};

int vhdx_overlay_io_open(struct vd_io *base, const struct vhdx_overlay *ov, uint64_t size,
                         struct vd_io **out, struct vd_error *err)
{
    struct vhdx_ov_io *v = calloc(1, sizeof(*v));
    if (!v || vd_io_init(&v->io, &ovio_ops, base->name, size) != 0) {
        if (v)
            free(v->io.name);
        free(v);
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", base->name);
    }
    vd_io_ref(base);
    v->base = base;
    v->ov = ov;
    v->io.opts = base->opts;
    *out = &v->io;
    return 0;
}

/* ---- writing entries (2.3.1) ---- */

size_t vhdx_log_entry_size(uint32_t npages)
{
    return ((size_t)log_desc_sectors(npages) + npages) * VHDX_LOG_SECTOR;
}

int vhdx_log_build_entry(uint8_t *out, size_t out_len, uint64_t seq, uint32_t tail,
                         const uint8_t guid[16], uint64_t flushed_file_offset,
                         uint64_t last_file_offset, const uint64_t *offs, const uint8_t *pages,
                         uint32_t npages)
{
    if (npages == 0 || npages > 1u << 16)
        return -EINVAL;
    size_t len = vhdx_log_entry_size(npages);
    if (seq == 0 || tail % VHDX_LOG_SECTOR || out_len < len || len > UINT32_MAX)
        return -EINVAL;
    for (uint32_t i = 0; i < npages; i++)
        if (offs[i] % VHDX_LOG_SECTOR || offs[i] < LOG_MIN_FILE_OFFSET ||
            offs[i] + VHDX_LOG_SECTOR > LOG_MAX_FILE_OFFSET)
            return -EINVAL;
    memset(out, 0, len);
    memcpy(out, "loge", 4);
    put_le32(out + 8, (uint32_t)len);
    put_le32(out + 12, tail);
    put_le64(out + 16, seq);
    put_le32(out + 24, npages);
    memcpy(out + 32, guid, 16);
    put_le64(out + 48, flushed_file_offset);
    put_le64(out + 56, last_file_offset);
    size_t data = log_desc_sectors(npages);
    for (uint32_t i = 0; i < npages; i++) {
        uint8_t *d = out + LOG_HDR_SIZE + (size_t)i * LOG_DESC_SIZE;
        const uint8_t *pg = pages + (size_t)i * VHDX_LOG_SECTOR;
        uint8_t *s = out + (data + i) * VHDX_LOG_SECTOR;
        /* The page's first 8 and last 4 bytes live in the descriptor, the
         * data sector's own ends hold its signature and the sequence. */
        memcpy(d, "desc", 4);
        memcpy(d + 4, pg + 4092, 4);
        memcpy(d + 8, pg, 8);
        put_le64(d + 16, offs[i]);
        put_le64(d + 24, seq);
        memcpy(s, "data", 4);
        put_le32(s + 4, (uint32_t)(seq >> 32));
        memcpy(s + 8, pg + 8, 4084);
        put_le32(s + 4092, (uint32_t)seq);
    }
    put_le32(out + 4, vd_crc32c(0, out, len));
    return 0;
}
