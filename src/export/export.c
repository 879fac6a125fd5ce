/*
 * Export core: options, the reorder window and the export lifecycle (see
 * <vdisk/export.h> and docs/export.md).
 *
 * Reorder window. Writes are copied into 64 KiB chunk buffers kept in a
 * ring of window/64K + 2 slots indexed by chunk number. `done` is the
 * encoded point: everything below it has gone to the encoder. It only
 * moves forward, to floor64K(hi - window) where hi is the highest byte
 * written, so any write at or after hi - window is accepted (dd in reverse
 * within the window, a rewrite of something just written) and memory never
 * exceeds the window. Chunks that were never written, or hold only zeros,
 * are not passed to the encoder at all; a jump over a hole costs nothing.
 * Any failure poisons the export: later writes fail and finish aborts, so
 * a rejected write can never produce a complete-looking but wrong image.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/checked.h"
#include "export/encoder.h"
#include "vdisk/export.h"

#define C VD_EXPORT_CHUNK

struct export_slot {
    uint64_t idx;
    uint8_t *data; /* NULL: empty */
};

struct vd_export {
    pthread_mutex_t lock; /* guards everything below */
    struct vd_export_opts opts;
    struct vd_sink *sink; /* the real sink (file, S3); owned */
    struct vd_sink *tap;  /* sha256 tap over sink, given to the encoder; owned */
    struct vd_encoder *enc;
    char *base; /* DEST's last component, for descriptors and OVA members */
    bool begun;
    bool size_final;
    uint64_t size;   /* virtual size */
    uint64_t hi;     /* end of the highest write (<= size) */
    uint64_t done;   /* encoded point, multiple of C */
    uint64_t window; /* multiple of C */
    size_t nslots;
    struct export_slot *slots;
    uint8_t **spare; /* emptied chunk buffers kept for reuse (a stack) */
    size_t nspare;   /* at most nslots */
    int failed;      /* -errno once poisoned */
    struct vd_error ferr;
};

/* ---- options ---- */

void vd_export_opts_init(struct vd_export_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->compress_level = -1;
}

static int export_parse_size(const char *val, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *val == '-')
        return -EINVAL;
    uint64_t mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    case '\0':
        break;
    default:
        return -EINVAL;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || ck_mul(v, mul, out))
        return -EINVAL;
    return 0;
}

static int export_pick(const char *val, const char *const *choices, const char **out)
{
    for (size_t i = 0; choices[i]; i++)
        if (strcasecmp(val, choices[i]) == 0) {
            *out = choices[i];
            return 0;
        }
    return -EINVAL;
}

int vd_export_opt(struct vd_export_opts *o, const char *key, const char *val, struct vd_error *err)
{
    static const char *const vmdk_types[] = {"streamOptimized", "monolithicSparse", NULL};
    static const char *const dyn_fixed[] = {"dynamic", "fixed", NULL};
    static const char *const manifests[] = {"sha256", "sha1", NULL};
    uint64_t v;
    if (!val)
        val = "";
    if (strcmp(key, "vmdk_type") == 0) {
        if (export_pick(val, vmdk_types, &o->vmdk_type) < 0)
            return vd_err(err, -EINVAL,
                          "export: vmdk_type=%s: expected streamOptimized or monolithicSparse",
                          val);
    } else if (strcmp(key, "vhd_type") == 0 || strcmp(key, "vhdx_type") == 0) {
        const char **dst = key[3] == 'x' ? &o->vhdx_type : &o->vhd_type;
        if (export_pick(val, dyn_fixed, dst) < 0)
            return vd_err(err, -EINVAL, "export: %s=%s: expected dynamic or fixed", key, val);
    } else if (strcmp(key, "ova_manifest") == 0) {
        if (export_pick(val, manifests, &o->ova_manifest) < 0)
            return vd_err(err, -EINVAL, "export: ova_manifest=%s: expected sha256 or sha1", val);
    } else if (strcmp(key, "compress_level") == 0) {
        if (export_parse_size(val, &v) < 0 || v < 1 || v > 12)
            return vd_err(err, -EINVAL, "export: compress_level=%s: expected 1..12", val);
        o->compress_level = (int)v;
    } else if (strcmp(key, "threads") == 0) {
        if (export_parse_size(val, &v) < 0 || v > 256)
            return vd_err(err, -EINVAL, "export: threads=%s: expected 0..256", val);
        o->threads = (unsigned)v;
    } else if (strcmp(key, "reorder_window") == 0) {
        if (export_parse_size(val, &v) < 0 || v < 2 * C || v > (16ull << 30))
            return vd_err(err, -EINVAL, "export: reorder_window=%s: expected 128K..16G", val);
        o->reorder_window = v;
    } else if (strcmp(key, "vhdx_block_size") == 0) {
        if (export_parse_size(val, &v) < 0 || !is_pow2(v) || v < (1u << 20) || v > (256u << 20))
            return vd_err(err, -EINVAL,
                          "export: vhdx_block_size=%s: expected a power of two, 1M..256M", val);
        o->vhdx_block_size = (uint32_t)v;
    } else {
        return 0;
    }
    return 1;
}

const char *vd_export_format_for(const char *filename)
{
    static const char *const formats[][2] = {
        {"vmdk", "vmdk"}, {"vhd", "vhd"}, {"vhdx", "vhdx"},
        {"ova", "ova"},   {"raw", "raw"}, {"img", "raw"},
    };
    const char *dot = filename ? strrchr(filename, '.') : NULL;
    if (!dot || dot == filename)
        return NULL;
    for (size_t i = 0; i < VD_ARRAY_SIZE(formats); i++)
        if (strcasecmp(dot + 1, formats[i][0]) == 0)
            return formats[i][1];
    return NULL;
}

static const struct vd_encoder_ops *export_encoder_for(const char *format)
{
    static const struct vd_encoder_ops *const encoders[] = {
        &vd_encoder_vmdk, &vd_encoder_vhd, &vd_encoder_vhdx, &vd_encoder_ova, &vd_encoder_raw,
    };
    for (size_t i = 0; format && i < VD_ARRAY_SIZE(encoders); i++)
        if (strcasecmp(format, encoders[i]->name) == 0)
            return encoders[i];
    return NULL;
}

/* ---- small helpers shared by encoders ---- */

bool vd_export_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0 && ((uintptr_t)p & 7)) {
        if (*p++)
            return false;
        len--;
    }
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (; len >= 64; len -= 64, w += 8)
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
            return false;
    p = (const uint8_t *)w;
    while (len--)
        if (*p++)
            return false;
    return true;
}

void vd_export_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
    if (len > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uintptr_t)buf ^
                     (uint64_t)getpid() << 16;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[i] = (uint8_t)x;
        }
    }
}

int vd_encoder_new(const struct vd_encoder_ops *ops, struct vd_sink *sink,
                   const struct vd_export_opts *opts, const char *base, struct vd_encoder **out,
                   struct vd_error *err)
{
    struct vd_encoder *enc = calloc(1, sizeof(*enc));
    *out = NULL;
    if (!enc || (ops->priv_size && !(enc->priv = calloc(1, ops->priv_size)))) {
        free(enc);
        return vd_err(err, -ENOMEM, "export: out of memory");
    }
    enc->ops = ops;
    enc->sink = sink;
    enc->opts = opts;
    enc->base = base;
    *out = enc;
    return 0;
}

void vd_encoder_free(struct vd_encoder *enc)
{
    if (!enc)
        return;
    enc->ops->free(enc);
    free(enc->priv);
    free(enc);
}

/* ---- the export ---- */

static int export_fail(struct vd_export *e, int r, struct vd_error *err)
{
    if (!e->failed) {
        e->failed = r < 0 ? r : -EIO;
        if (vd_err_isset(err))
            e->ferr = *err;
        else
            vd_err(&e->ferr, e->failed, "export: %s: failed", e->sink->name);
    }
    return r;
}

int vd_export_begin(const char *dest, const char *format, const struct vd_export_opts *o,
                    struct vd_export **out, struct vd_error *err)
{
    const struct vd_encoder_ops *ops = export_encoder_for(format);
    struct vd_export *e = NULL;
    int r;
    *out = NULL;
    if (!ops)
        return vd_err(err, -EINVAL, "export: %s: unknown format '%s' (vmdk, vhd, vhdx, ova, raw)",
                      dest, format ? format : "");
    e = calloc(1, sizeof(*e));
    if (!e)
        return vd_err(err, -ENOMEM, "export: out of memory");
    pthread_mutex_init(&e->lock, NULL);
    if (o)
        e->opts = *o;
    else
        vd_export_opts_init(&e->opts);
    struct vd_export_opts *eo = &e->opts;
    if (!eo->vmdk_type)
        eo->vmdk_type = "streamOptimized";
    if (!eo->vhd_type)
        eo->vhd_type = "dynamic";
    if (!eo->vhdx_type)
        eo->vhdx_type = "dynamic";
    if (!eo->ova_manifest)
        eo->ova_manifest = "sha256";
    if (ops == &vd_encoder_vmdk && strcasecmp(eo->vmdk_type, "monolithicSparse") == 0)
        ops = &vd_encoder_vmdk_sparse;
    if (eo->compress_level <= 0)
        eo->compress_level = -1;
    if (!eo->threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        eo->threads = n > 0 ? (unsigned)VD_MIN(n, 64) : 1;
    }
    e->window = eo->reorder_window ? eo->reorder_window : VD_EXPORT_DEFAULT_WINDOW;
    e->window = VD_MAX(e->window / C * C, 2ull * C);
    e->nslots = (size_t)(e->window / C) + 2;
    e->slots = calloc(e->nslots, sizeof(*e->slots));
    e->spare = calloc(e->nslots, sizeof(*e->spare));
    if (!e->slots || !e->spare) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto fail;
    }
    r = vd_sink_open(dest, &eo->remote, &e->sink, err);
    if (r < 0)
        goto fail;
    r = vd_sink_tap_open(e->sink, 0, "sha256", &e->tap, err);
    if (r < 0)
        goto fail;
    if (ops->patches_head)
        vd_sink_tap_off(e->tap);
    const char *slash = strrchr(dest, '/');
    if (!(e->base = strdup(slash ? slash + 1 : dest))) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto fail;
    }
    r = vd_encoder_new(ops, e->tap, eo, e->base, &e->enc, err);
    if (r < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    vd_export_abort(e);
    return r;
}

static int export_begin_encoder(struct vd_export *e, struct vd_error *err)
{
    if (e->begun)
        return 0;
    e->begun = true;
    e->enc->size = e->size;
    e->enc->size_final = e->size_final;
    return e->enc->ops->begin(e->enc, err);
}

/* Empty slot s, keeping its buffer for the next chunk: a fresh calloc per
 * chunk cost a page fault per 4 KiB and a 64 KiB memset (malloc hands
 * freed arena memory back to the kernel), a third of the copy path. */
static void export_empty(struct vd_export *e, struct export_slot *s)
{
    if (e->nspare < e->nslots)
        e->spare[e->nspare++] = s->data;
    else
        free(s->data);
    s->data = NULL;
}

/* Hand slot s (chunk idx) to the encoder and empty it. */
static int export_deliver(struct vd_export *e, struct export_slot *s, struct vd_error *err)
{
    int r = 0;
    if (!vd_export_is_zero(s->data, C)) {
        r = export_begin_encoder(e, err);
        if (r == 0)
            r = e->enc->ops->chunk(e->enc, s->idx, s->data, err);
    }
    export_empty(e, s);
    return r;
}

/* Move the encoded point to target (a multiple of C), delivering every
 * buffered chunk below it in order. */
static int export_advance(struct vd_export *e, uint64_t target, struct vd_error *err)
{
    if (target <= e->done)
        return 0;
    uint64_t first = e->done / C, last = target / C;
    /* Every buffered chunk lies in [first, first + nslots). */
    uint64_t stop = VD_MIN(last, first + e->nslots);
    for (uint64_t idx = first; idx < stop; idx++) {
        struct export_slot *s = &e->slots[idx % e->nslots];
        if (s->data && s->idx == idx) {
            int r = export_deliver(e, s, err);
            if (r < 0)
                return r;
        }
    }
    e->done = target;
    return 0;
}

static int export_store(struct vd_export *e, const uint8_t *buf, size_t len, uint64_t off,
                        struct vd_error *err)
{
    uint64_t end = off + len;
    uint64_t hi = VD_MAX(e->hi, end);
    uint64_t target = hi > e->window ? (hi - e->window) / C * C : 0;
    int r = export_advance(e, VD_MIN(target, off / C * C), err);
    if (r < 0)
        return r;
    uint64_t idx = off / C;
    struct export_slot *s = &e->slots[idx % e->nslots];
    size_t in = (size_t)(off - idx * C);
    if (!s->data) {
        /* A reused buffer holds an old chunk: zero what this write leaves
         * out (nothing, for a whole-chunk write). */
        s->data = e->nspare ? e->spare[--e->nspare] : malloc(C);
        if (!s->data)
            return vd_err(err, -ENOMEM, "export: %s: out of memory", e->sink->name);
        s->idx = idx;
        memset(s->data, 0, in);
        memset(s->data + in + len, 0, C - in - len);
    } else if (s->idx != idx) {
        return vd_err(err, -EIO, "export: %s: reorder ring collision (bug)", e->sink->name);
    }
    memcpy(s->data + in, buf, len);
    e->hi = hi;
    if (hi > e->size)
        __atomic_store_n(&e->size, hi, __ATOMIC_RELAXED);
    return 0;
}

int vd_export_pwrite(struct vd_export *e, const void *buf, size_t len, uint64_t off,
                     struct vd_error *err)
{
    const uint8_t *p = buf;
    uint64_t end;
    int r = 0;
    pthread_mutex_lock(&e->lock);
    if (e->failed) {
        r = vd_err(err, e->failed == -EINVAL ? -EIO : e->failed, "%s", e->ferr.msg);
        goto out;
    }
    if (ck_add(off, len, &end) || end > e->enc->ops->max_size) {
        r = vd_err(err, -EFBIG,
                   "export: %s: write at offset %" PRIu64 " passes the %s limit of %" PRIu64
                   " bytes",
                   e->sink->name, off, e->enc->ops->name, e->enc->ops->max_size);
        goto poison;
    }
    if (len > 0 && off < e->done) {
        r = vd_err(err, -EINVAL,
                   "export: %s: write at offset %" PRIu64 " is behind the encoded point %" PRIu64
                   ": writes must stay within reorder_window=%" PRIu64
                   " bytes of the highest offset written",
                   e->sink->name, off, e->done, e->window);
        goto poison;
    }
    while (len > 0) {
        size_t n = (size_t)VD_MIN((uint64_t)len, C - off % C);
        r = export_store(e, p, n, off, err);
        if (r < 0)
            goto poison;
        p += n;
        off += n;
        len -= n;
    }
    goto out;
poison:
    export_fail(e, r, err);
out:
    pthread_mutex_unlock(&e->lock);
    return r;
}

int vd_export_truncate(struct vd_export *e, uint64_t size, struct vd_error *err)
{
    int r = 0;
    pthread_mutex_lock(&e->lock);
    if (e->failed) {
        r = vd_err(err, e->failed == -EINVAL ? -EIO : e->failed, "%s", e->ferr.msg);
        goto out;
    }
    if (size > e->enc->ops->max_size) {
        r = vd_err(err, -EFBIG,
                   "export: %s: size %" PRIu64 " passes the %s limit of %" PRIu64 " bytes",
                   e->sink->name, size, e->enc->ops->name, e->enc->ops->max_size);
        goto out; /* nothing changed: not poisoned */
    }
    if (size < e->done) {
        r = vd_err(err, -EINVAL,
                   "export: %s: cannot shrink to %" PRIu64 " bytes: %" PRIu64
                   " bytes are already encoded",
                   e->sink->name, size, e->done);
        export_fail(e, r, err);
        goto out;
    }
    if (size < e->hi) {
        for (size_t i = 0; i < e->nslots; i++) {
            struct export_slot *s = &e->slots[i];
            if (!s->data)
                continue;
            uint64_t start = s->idx * C;
            if (start >= size) {
                export_empty(e, s);
            } else if (start + C > size) {
                memset(s->data + (size - start), 0, (size_t)(start + C - size));
            }
        }
        e->hi = size;
    }
    __atomic_store_n(&e->size, size, __ATOMIC_RELAXED);
out:
    pthread_mutex_unlock(&e->lock);
    return r;
}

/* Lock-free, so a stat never waits behind a write stalled on compression. */
uint64_t vd_export_size(const struct vd_export *e)
{
    return __atomic_load_n(&e->size, __ATOMIC_RELAXED);
}

uint64_t vd_export_output_bytes(const struct vd_export *e)
{
    return __atomic_load_n(&e->sink->pos, __ATOMIC_RELAXED);
}

static void export_free(struct vd_export *e)
{
    if (!e)
        return;
    vd_encoder_free(e->enc);
    vd_sink_free(e->tap);
    vd_sink_free(e->sink);
    if (e->slots)
        for (size_t i = 0; i < e->nslots; i++)
            free(e->slots[i].data);
    free(e->slots);
    for (size_t i = 0; i < e->nspare; i++)
        free(e->spare[i]);
    free(e->spare);
    free(e->base);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

void vd_export_abort(struct vd_export *e)
{
    if (!e)
        return;
    vd_encoder_free(e->enc); /* stops worker threads before the sink goes */
    e->enc = NULL;
    vd_sink_abort(e->sink);
    export_free(e);
}

int vd_export_finish(struct vd_export *e, uint64_t *out_bytes, char sha256_hex[65],
                     struct vd_error *err)
{
    char hex[129] = "";
    int r;
    if (out_bytes)
        *out_bytes = 0;
    if (sha256_hex)
        sha256_hex[0] = '\0';
    pthread_mutex_lock(&e->lock);
    if (e->failed) {
        r = vd_err(err, e->failed == -EINVAL ? -EIO : e->failed, "%s", e->ferr.msg);
        goto fail;
    }
    uint64_t end = div_round_up(e->hi, C) * C;
    r = export_advance(e, end, err);
    if (r == 0)
        r = export_begin_encoder(e, err);
    if (r == 0)
        r = e->enc->ops->finish(e->enc, e->size, err);
    if (r < 0)
        goto fail;
    struct vd_error derr = {0};
    if (sha256_hex && vd_sink_tap_digest(e->tap, hex, &derr) < 0 && derr.code != -ENOTSUP) {
        r = vd_err(err, derr.code, "%s", derr.msg);
        goto fail;
    }
    r = vd_sink_commit(e->sink, err);
    if (r < 0)
        goto fail;
    if (out_bytes)
        *out_bytes = e->sink->pos;
    if (sha256_hex)
        snprintf(sha256_hex, 65, "%.64s", hex); /* sha256: 64 hex digits */
    pthread_mutex_unlock(&e->lock);
    export_free(e);
    return 0;
fail:
    pthread_mutex_unlock(&e->lock);
    vd_export_abort(e);
    return r;
}

int vd_convert(struct vd_image *src, const char *dest, const char *format,
               const struct vd_export_opts *o, vd_progress_cb progress, void *opaque,
               struct vd_error *err)
{
    const size_t bufsz = 1u << 20;
    uint64_t size = vd_image_size(src);
    struct vd_export *e = NULL;
    uint8_t *buf = NULL;
    int r = vd_export_begin(dest, format, o, &e, err);
    if (r < 0)
        return r;
    if (!(buf = malloc(bufsz))) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto fail;
    }
    r = vd_export_truncate(e, size, err);
    if (r < 0)
        goto fail;
    e->size_final = true;
    vd_sink_tap_off(e->tap); /* vd_convert reports no digest */
    for (uint64_t off = 0; off < size;) {
        uint64_t want = VD_MIN((uint64_t)bufsz, size - off), n = 0;
        r = vd_image_block_status(src, off, want, &n, err);
        if (r < 0)
            goto fail;
        if (n == 0 || n > want)
            n = want;
        if (r != VD_STATUS_ZERO) {
            r = vd_image_pread(src, buf, (size_t)n, off, err);
            if (r == 0)
                r = vd_export_pwrite(e, buf, (size_t)n, off, err);
            if (r < 0)
                goto fail;
        }
        off += n;
        if (progress)
            progress(opaque, off, size);
    }
    free(buf);
    return vd_export_finish(e, NULL, NULL, err);
fail:
    free(buf);
    vd_export_abort(e);
    return r;
}
