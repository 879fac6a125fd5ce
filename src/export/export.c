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
 *
 * Delivery. Chunks that fall below the encoded point are queued, in order,
 * to one worker thread per export that skips all-zero chunks and runs the
 * encoder and the sink. A writer (a FUSE request, vd_convert's read loop)
 * therefore only copies into the window and returns: reading the source,
 * encoding and writing the output overlap on separate cores, as qemu-img's
 * coroutines do (1 GiB VHD: 0.47 s -> see docs/performance.md). Writers
 * wait while the queue holds EXPORT_QUEUE_MAX chunks, so memory stays
 * bounded: at most window + queue, plus one window when a jump over a hole
 * flushes the whole ring at once. An encoder or sink failure in the worker
 * poisons the export, so the next write, truncate or finish reports it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/checked.h"
#include "core/ioopts.h"
#include "export/encoder.h"
#include "export/ova.h"
#include "io/s3req.h"
#include "vdisk/export.h"

#define C VD_EXPORT_CHUNK
/* Chunks queued for the worker before writers wait (8 MiB). */
#define EXPORT_QUEUE_MAX 128u
/* Jobs the worker takes per lock round trip (see export_worker). */
#define EXPORT_BATCH 32u

struct export_slot {
    uint64_t idx;
    uint8_t *data; /* NULL: empty */
};

struct vd_export {
    pthread_mutex_t lock;    /* guards everything below */
    pthread_cond_t cv_work;  /* worker: a job was queued, or stop */
    pthread_cond_t cv_space; /* writers, finish: the queue shrank or drained */
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
    /* Chunk buffers: an arena of narena chunks mapped per export, handed
     * out by a bump pointer and then reused last-freed-first, so the pages
     * touched stay what is in flight and all of it goes back to the
     * system when the export ends (64 KiB mallocs left the daemon's RSS at
     * 90 MB after a cp, and cost a page fault per 4 KiB). */
    uint8_t *arena;
    size_t narena, nbumped;
    uint8_t **spare; /* freed arena buffers (a stack of at most narena) */
    size_t nspare;
    /* Delivery queue: chunks below `done` in increasing order, for the
     * worker; a ring of qcap jobs that grows when a jump flushes the ring. */
    struct export_slot *q;
    size_t qcap, qhead, qlen;
    pthread_t worker;
    bool worker_started;
    bool busy;     /* the worker is running a job (outside the lock) */
    bool stopping; /* abort/free: the worker drops what is queued and exits */
    int failed;    /* -errno once poisoned */
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
    } else if (strcmp(key, "fsync") == 0) {
        static const char *const on[] = {"", "on", "yes", "true", "1", NULL};
        static const char *const off[] = {"off", "no", "false", "0", NULL};
        const char *pick;
        if (export_pick(val, on, &pick) == 0)
            o->fsync = true;
        else if (export_pick(val, off, &pick) == 0)
            o->fsync = false;
        else
            return vd_err(err, -EINVAL, "export: fsync=%s: expected on or off", val);
    } else if (strcmp(key, "target") == 0) {
        /* Which targets a format accepts is its encoder's business: an
         * unknown one is refused at begin, naming the accepted ones. */
        size_t n = strlen(val);
        if (!n || n >= sizeof(o->target) ||
            strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != n)
            return vd_err(err, -EINVAL,
                          "export: target=%s: expected a name such as azure, vmware, esxi-7.0, "
                          "virtualbox or dmtf",
                          val);
        memcpy(o->target, val, n + 1);
    } else if (strcmp(key, "sector_size") == 0) {
        if (export_parse_size(val, &v) < 0 || (v != 512 && v != 4096))
            return vd_err(err, -EINVAL, "export: sector_size=%s: expected 512 or 4096", val);
        o->sector_size = (uint32_t)v;
    } else if (strcmp(key, "vhdx_block_size") == 0) {
        if (export_parse_size(val, &v) < 0 || !is_pow2(v) || v < (1u << 20) || v > (256u << 20))
            return vd_err(err, -EINVAL,
                          "export: vhdx_block_size=%s: expected a power of two, 1M..256M", val);
        o->vhdx_block_size = (uint32_t)v;
    } else {
        return vd_export_ova_opt(o, key, val, err); /* vm_*, or 0: unknown */
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

static void *export_worker(void *arg);

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

/* Is target= (struct vd_export_opts.target) one this format's encoder
 * honours? Each entry is a format and a target it knows; an encoder that
 * learns a target adds it here, so no target is ever silently ignored. */
static bool export_target_known(const char *format, const char *target)
{
    static const char *const known[][2] = {
        {"vhd", "azure"}, /* fixed, whole MiB: src/export/vhd.c */
        {NULL, NULL},
    };
    /* OVA: esxi-X.Y / vmware[-X.Y] / vcenter-X.Y, virtualbox, dmtf (ova.c). */
    if (!strcasecmp(format, "ova") && vd_export_ova_target_known(target))
        return true;
    for (size_t i = 0; known[i][0]; i++)
        if (!strcmp(known[i][0], format) && !strcasecmp(known[i][1], target))
            return true;
    return false;
}

/* vd_export_begin, with an S3 target near DEST to reuse (or NULL). */
static int export_begin(const char *dest, const struct vd_s3_target *near, const char *format,
                        const struct vd_export_opts *o, struct vd_export **out,
                        struct vd_error *err)
{
    const struct vd_encoder_ops *ops = export_encoder_for(format);
    struct vd_export *e = NULL;
    int r;
    *out = NULL;
    if (!ops)
        return vd_err(err, -EINVAL, "export: %s: unknown format '%s' (vmdk, vhd, vhdx, ova, raw)",
                      dest, format ? format : "");
    if (o && o->target[0] && !export_target_known(format, o->target))
        return vd_err(err, -EINVAL, "export: %s: target=%s is not known for %s output", dest,
                      o->target, format);
    /* 4096-byte sectors: VHDX's LogicalSectorSize, a VMDK's DDB as VMware
     * writes it (vmdk_stream.c); other formats have no such field. */
    if (o && o->sector_size && o->sector_size != 512 && strcasecmp(format, "vhdx") &&
        strcasecmp(format, "vmdk"))
        return vd_err(err, -EINVAL,
                      "export: %s: sector_size=%u is not supported for %s output (vhdx and vmdk "
                      "only)",
                      dest, o->sector_size, format);
    /* Azure takes fixed VHDs only (docs/vhd.md): target=azure makes the VHD
     * fixed, and refuses an explicit vhd_type=dynamic rather than drop it. */
    if (o && !strcasecmp(format, "vhd") && !strcasecmp(o->target, "azure") && o->vhd_type &&
        strcasecmp(o->vhd_type, "fixed"))
        return vd_err(err, -EINVAL,
                      "export: %s: target=azure needs a fixed VHD (Azure refuses dynamic ones): "
                      "drop vhd_type=%s or use vhd_type=fixed",
                      dest, o->vhd_type);
    e = calloc(1, sizeof(*e));
    if (!e)
        return vd_err(err, -ENOMEM, "export: out of memory");
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cv_work, NULL);
    pthread_cond_init(&e->cv_space, NULL);
    if (o)
        e->opts = *o;
    else
        vd_export_opts_init(&e->opts);
    struct vd_export_opts *eo = &e->opts;
    if (!eo->vmdk_type)
        eo->vmdk_type = "streamOptimized";
    if (!eo->vhd_type)
        eo->vhd_type = strcasecmp(eo->target, "azure") ? "dynamic" : "fixed";
    if (!eo->vhdx_type)
        eo->vhdx_type = "dynamic";
    if (!eo->ova_manifest)
        eo->ova_manifest = "sha256";
    if (ops == &vd_encoder_vmdk && strcasecmp(eo->vmdk_type, "monolithicSparse") == 0)
        ops = &vd_encoder_vmdk_sparse;
    if (ops == &vd_encoder_vhd && !strcasecmp(eo->target, "azure"))
        ops = &vd_encoder_vhd_azure;
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
    /* In flight at most: the ring, what one write's advance queues (the
     * ring again), the queue writers wait on, and the worker's batch. */
    e->narena = 2 * e->nslots + EXPORT_QUEUE_MAX + EXPORT_BATCH;
    e->spare = calloc(e->narena, sizeof(*e->spare));
    e->arena = mmap(NULL, e->narena * C, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (e->arena == MAP_FAILED)
        e->arena = NULL;
    else
        (void)madvise(e->arena, e->narena * C, MADV_HUGEPAGE); /* advisory */
    if (!e->slots || !e->spare || !e->arena) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto fail;
    }
    struct vd_io_opts remote = vd_io_opts_of(&eo->remote);
    r = vd_sink_open(dest, &remote, near, eo->fsync, eo->mode, &e->sink, err);
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
    if ((r = -pthread_create(&e->worker, NULL, export_worker, e)) < 0) {
        vd_err(err, r, "export: %s: cannot start the encoder thread: %s", dest, strerror(-r));
        goto fail;
    }
    e->worker_started = true;
    *out = e;
    return 0;
fail:
    vd_export_abort(e);
    return r;
}

int vd_export_begin(const char *dest, const char *format, const struct vd_export_opts *o,
                    struct vd_export **out, struct vd_error *err)
{
    return export_begin(dest, NULL, format, o, out, err);
}

struct vd_export_dir {
    char *path;              /* as given, without trailing slashes */
    struct vd_s3_target *s3; /* s3://: a target for PREFIX/.vdisk, resolved */
};

void vd_export_dir_close(struct vd_export_dir *d)
{
    if (!d)
        return;
    vd_s3_target_free(d->s3);
    free(d->path);
    free(d);
}

int vd_export_dir_open(const char *dir, const struct vd_export_opts *o, struct vd_export_dir **out,
                       struct vd_error *err)
{
    struct vd_io_opts remote = vd_io_opts_of(o ? &o->remote : NULL);
    struct vd_export_dir *d = calloc(1, sizeof(*d));
    char *probe = NULL;
    int r = 0;
    *out = NULL;
    if (!d || !(d->path = strdup(dir ? dir : "")))
        goto nomem;
    size_t n = strlen(d->path);
    while (n > 1 && d->path[n - 1] == '/')
        d->path[--n] = '\0';
    if (!n)
        r = vd_err(err, -EINVAL, "export: empty destination");
    else if (strncmp(d->path, "s3://", 5) != 0)
        ; /* local: nothing to resolve, vd_export_begin_in reports DEST's errors */
    else if (asprintf(&probe, "%s/.vdisk", d->path) < 0)
        goto nomem;
    else
        r = vd_s3_target_open(probe, &remote, &d->s3, err);
    free(probe);
    if (r < 0) {
        vd_export_dir_close(d);
        return r;
    }
    *out = d;
    return 0;
nomem:
    vd_export_dir_close(d);
    return vd_err(err, -ENOMEM, "export: out of memory");
}

int vd_export_begin_in(const struct vd_export_dir *d, const char *name, const char *format,
                       const struct vd_export_opts *o, struct vd_export **out, struct vd_error *err)
{
    char *dest = NULL;
    *out = NULL;
    if (!name || !*name || strchr(name, '/'))
        return vd_err(err, -EINVAL, "export: '%s': not a file name", name ? name : "");
    if (asprintf(&dest, "%s%s%s", d->path, strcmp(d->path, "/") ? "/" : "", name) < 0)
        return vd_err(err, -ENOMEM, "export: out of memory");
    int r = export_begin(dest, d->s3, format, o, out, err);
    free(dest);
    return r;
}

/* Start the encoder once, with the size known now (the worker calls it
 * outside the lock; finish calls it when no chunk ever came). */
static int export_begin_encoder(struct vd_export *e, uint64_t size, bool size_final,
                                struct vd_error *err)
{
    if (e->begun)
        return 0;
    e->begun = true;
    e->enc->size = size;
    e->enc->size_final = size_final;
    return e->enc->ops->begin(e->enc, err);
}

/* Empty slot s, keeping its buffer for the next chunk: a fresh calloc per
 * chunk cost a page fault per 4 KiB and a 64 KiB memset (malloc hands
 * freed arena memory back to the kernel), a third of the copy path. */
static bool export_in_arena(const struct vd_export *e, const uint8_t *p)
{
    return e->arena && p >= e->arena && p < e->arena + e->narena * C;
}

/* A chunk buffer (lock held): the last one freed, else a fresh one from
 * the arena, else (never, by the bound above, but cheap insurance) malloc. */
static uint8_t *export_buffer(struct vd_export *e)
{
    if (e->nspare)
        return e->spare[--e->nspare];
    if (e->nbumped < e->narena)
        return e->arena + C * e->nbumped++;
    return malloc(C);
}

static void export_recycle(struct vd_export *e, uint8_t *data)
{
    if (export_in_arena(e, data))
        e->spare[e->nspare++] = data;
    else
        free(data);
}

static void export_empty(struct vd_export *e, struct export_slot *s)
{
    export_recycle(e, s->data);
    s->data = NULL;
}

/* Queue slot s (chunk idx) for the worker and empty it (its buffer goes
 * with the job). Never waits: writers wait for room before they start. */
static int export_deliver(struct vd_export *e, struct export_slot *s, struct vd_error *err)
{
    if (e->qlen == e->qcap) {
        size_t cap = e->qcap ? e->qcap * 2 : EXPORT_QUEUE_MAX;
        struct export_slot *q = malloc(cap * sizeof(*q));
        if (!q)
            return vd_err(err, -ENOMEM, "export: %s: out of memory", e->sink->name);
        for (size_t i = 0; i < e->qlen; i++)
            q[i] = e->q[(e->qhead + i) % e->qcap];
        free(e->q);
        e->q = q;
        e->qcap = cap;
        e->qhead = 0;
    }
    e->q[(e->qhead + e->qlen++) % e->qcap] = *s;
    s->data = NULL;
    if (e->qlen == 1) /* the worker only sleeps on an empty queue */
        pthread_cond_signal(&e->cv_work);
    return 0;
}

/* The worker: encode queued chunks in order until stopped. Only it calls
 * the encoder while the export is open; finish waits for it to be idle.
 * It takes up to EXPORT_BATCH jobs per lock round trip: taking the lock
 * twice per 64 KiB chunk made it sleep on the mutex behind writers
 * copying into the window, which serialized the two threads. */
static void *export_worker(void *arg)
{
    struct vd_export *e = arg;
    struct export_slot jobs[EXPORT_BATCH];
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->qlen && !e->stopping)
            pthread_cond_wait(&e->cv_work, &e->lock);
        if (e->stopping)
            break;
        size_t n = 0;
        for (; n < EXPORT_BATCH && e->qlen; n++, e->qlen--) {
            jobs[n] = e->q[e->qhead];
            e->qhead = (e->qhead + 1) % e->qcap;
        }
        uint64_t size = e->size;
        bool size_final = e->size_final;
        int r = 0;
        struct vd_error err = {0};
        if (!e->failed) {
            e->busy = true;
            pthread_mutex_unlock(&e->lock);
            for (size_t i = 0; i < n && r == 0; i++) {
                if (vd_export_is_zero(jobs[i].data, C))
                    continue;
                r = export_begin_encoder(e, size, size_final, &err);
                if (r == 0)
                    r = e->enc->ops->chunk(e->enc, jobs[i].idx, jobs[i].data, &err);
            }
            pthread_mutex_lock(&e->lock);
            e->busy = false;
        }
        for (size_t i = 0; i < n; i++)
            export_recycle(e, jobs[i].data);
        if (r < 0)
            export_fail(e, r, &err);
        pthread_cond_broadcast(&e->cv_space);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* Wait (lock held) until the worker has encoded everything queued. */
static void export_drain(struct vd_export *e)
{
    while (e->qlen || e->busy)
        pthread_cond_wait(&e->cv_space, &e->lock);
}

/* Stop and join the worker, dropping what is still queued. */
static void export_stop(struct vd_export *e)
{
    if (!e->worker_started)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->cv_work);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->worker, NULL);
    e->worker_started = false;
    for (; e->qlen; e->qlen--, e->qhead = (e->qhead + 1) % e->qcap)
        export_recycle(e, e->q[e->qhead].data);
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
        s->data = export_buffer(e);
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
    while (e->qlen >= EXPORT_QUEUE_MAX && !e->failed)
        pthread_cond_wait(&e->cv_space, &e->lock);
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

void vd_export_fsync(struct vd_export *e)
{
    __atomic_store_n(&e->sink->fsync, true, __ATOMIC_RELAXED);
}

uint64_t vd_export_output_bytes(const struct vd_export *e)
{
    return __atomic_load_n(&e->sink->pos, __ATOMIC_RELAXED);
}

static void export_free(struct vd_export *e)
{
    if (!e)
        return;
    export_stop(e);
    vd_encoder_free(e->enc);
    vd_sink_free(e->tap);
    vd_sink_free(e->sink);
    if (e->slots)
        for (size_t i = 0; i < e->nslots; i++)
            if (!export_in_arena(e, e->slots[i].data))
                free(e->slots[i].data);
    free(e->slots);
    if (e->arena)
        munmap(e->arena, e->narena * C);
    free(e->spare);
    free(e->q);
    free(e->base);
    pthread_cond_destroy(&e->cv_work);
    pthread_cond_destroy(&e->cv_space);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

void vd_export_abort(struct vd_export *e)
{
    if (!e)
        return;
    export_stop(e);          /* no job runs once the encoder is gone */
    vd_encoder_free(e->enc); /* stops worker threads before the sink goes */
    e->enc = NULL;
    vd_sink_abort(e->sink);
    export_free(e);
}

int vd_export_commit(struct vd_export *e, struct vd_export_result *res, struct vd_error *err)
{
    char hex[129] = "";
    int r;
    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&e->lock);
    if (e->failed) {
        r = vd_err(err, e->failed == -EINVAL ? -EIO : e->failed, "%s", e->ferr.msg);
        goto fail;
    }
    uint64_t end = div_round_up(e->hi, C) * C;
    r = export_advance(e, end, err);
    if (r < 0)
        goto fail;
    export_drain(e);
    if (e->failed) {
        r = vd_err(err, e->failed == -EINVAL ? -EIO : e->failed, "%s", e->ferr.msg);
        goto fail;
    }
    r = export_begin_encoder(e, e->size, e->size_final, err);
    if (r == 0)
        r = e->enc->ops->finish(e->enc, e->size, err);
    if (r < 0)
        goto fail;
    if (vd_sink_tap_streamed(e->tap) && (r = vd_sink_tap_digest(e->tap, hex, err)) < 0)
        goto fail;
    r = vd_sink_commit(e->sink, err);
    if (r < 0)
        goto fail;
    res->bytes = e->sink->pos;
    snprintf(res->sha256, sizeof(res->sha256), "%.64s", hex); /* sha256: 64 hex digits */
    res->local = strcmp(e->sink->ops->name, "file") == 0;
    res->dev = e->sink->dev;
    res->ino = e->sink->ino;
    snprintf(res->etag, sizeof(res->etag), "%s", e->sink->etag);
    /* VHD sizes are whole MiB (src/export/vhd.c): say so when that grew
     * the disk, since the guest sees the larger size. */
    if ((e->enc->ops == &vd_encoder_vhd || e->enc->ops == &vd_encoder_vhd_azure) &&
        e->size % (1u << 20))
        snprintf(res->note, sizeof(res->note), "virtual size %" PRIu64 " rounded up to %" PRIu64,
                 e->size, div_round_up(e->size, 1u << 20) << 20);
    pthread_mutex_unlock(&e->lock);
    export_free(e);
    return 0;
fail:
    pthread_mutex_unlock(&e->lock);
    vd_export_abort(e);
    return r;
}

int vd_export_finish(struct vd_export *e, uint64_t *out_bytes, char sha256_hex[65],
                     struct vd_error *err)
{
    struct vd_export_result res;
    if (!sha256_hex)
        vd_sink_tap_off(e->tap); /* nobody asks: do not hash while streaming */
    int r = vd_export_commit(e, &res, err);
    if (out_bytes)
        *out_bytes = r == 0 ? res.bytes : 0;
    if (sha256_hex)
        snprintf(sha256_hex, 65, "%s", r == 0 ? res.sha256 : "");
    return r;
}

int vd_export_withdraw(const char *dest, const struct vd_export_opts *o,
                       const struct vd_export_result *res, struct vd_error *err)
{
    struct vd_io_opts remote = vd_io_opts_of(o ? &o->remote : NULL);
    if (!dest || !*dest)
        return vd_err(err, -EINVAL, "export: empty destination");
    if (res->local)
        return vd_sink_file_withdraw(dest, res->dev, res->ino, err);
    return vd_sink_s3_withdraw(dest, &remote, res->etag, err);
}

int vd_convert(struct vd_image *src, const char *dest, const char *format,
               const struct vd_export_opts *o, vd_progress_cb progress, void *opaque,
               struct vd_error *err)
{
    const size_t bufsz = 1u << 20;
    uint64_t size = vd_image_size(src);
    struct vd_export *e = NULL;
    uint8_t *buf = NULL;
    struct vd_export_opts co;
    if (o)
        co = *o;
    else
        vd_export_opts_init(&co);
    /* Writes here are in order and final: a window of two reads keeps the
     * chunk buffers few and cache-hot (64 MiB of fresh buffers cost 16k
     * page faults, a quarter of a VHD convert's user time). */
    if (!co.reorder_window)
        co.reorder_window = 2 * bufsz;
    int r = vd_export_begin(dest, format, &co, &e, err);
    if (r < 0)
        return r;
    if (!(buf = malloc(bufsz))) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto fail;
    }
    r = vd_export_truncate(e, size, err);
    if (r < 0)
        goto fail;
    pthread_mutex_lock(&e->lock);
    e->size_final = true;
    pthread_mutex_unlock(&e->lock);
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
        if (progress && progress(opaque, off, size)) {
            r = vd_err(err, -ECANCELED, "export: %s: cancelled", dest);
            goto fail;
        }
    }
    free(buf);
    return vd_export_finish(e, NULL, NULL, err);
fail:
    free(buf);
    vd_export_abort(e);
    return r;
}
