/*
 * S3 and HTTP(S) byte source: s3://bucket/key (SigV4-signed, see sigv4.c,
 * awsconf.c) or any http(s):// URL that serves Range requests (a presigned
 * URL, say).
 *
 *   open      HEAD (s3) or GET bytes=0-1 (http) -> size, ETag (pinned)
 *   pread     block cache (64 KiB blocks, LRU, bounded by cache_size) ->
 *             on a miss, one ranged GET for the run of missing blocks,
 *             with If-Match: <pinned ETag>
 *   readahead per-reader streams; the third read in a row that continues a
 *             stream reads 1 MiB ahead, and the window quadruples each time
 *             the reader gets half way into the last growth, up to
 *             (connections x 2 ranges), or half the cache; it is topped up
 *             as the reader moves so every connection stays busy (s3_track).
 *             A seek starts a new stream with none, so random reads fetch
 *             only their blocks.
 *             Readahead GETs of up to 8 MiB run on worker threads, each on
 *             its own keep-alive connection
 *
 * Why many connections: one S3 connection serves tens of MB/s after a
 * first-byte latency of tens of ms; clients that reach line rate (the AWS
 * CRT, mountpoint-s3) run many ranged GETs of 8-16 MB at once (AWS,
 * "Performance design patterns for Amazon S3": byte-range fetches of 8-16 MB).
 * The count is VD_S3_CONNECTIONS, else as many ranges as fit a quarter of
 * the cache (16 with the default 256 MiB), so memory stays within cache_size.
 *
 * Every GET must answer 206 with "Content-Range: bytes A-B/SIZE" for
 * exactly the range asked and the pinned ETag, and deliver all B-A+1
 * bytes; anything else is retried (5xx, 429, SlowDown, resets, timeouts,
 * short bodies: exponential backoff with jitter, bounded) or fails with
 * -EIO. 412 (or another ETag) means the object was replaced: the source
 * fails every later read rather than mix versions.
 *
 * Objects opened beside this one (VMDK extents, parents) share its
 * context: one connection pool, one set of workers, one cache budget.
 *
 * Not supported: writes (remote sources are read-only; mount it read-only, or write to a converted
 * copy), objects that change during a mount, servers without Range support.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "io/io.h"
#include "io/s3req.h"

#define S3_BLOCK           (64u * 1024)
#define S3_RA_CHUNK_BLOCKS 128u /* 8 MiB per readahead GET */
#define S3_RA_CHUNK        ((uint64_t)S3_RA_CHUNK_BLOCKS * S3_BLOCK)
#define S3_RA_MIN          (256u * 1024)  /* the smallest window, for tiny caches */
#define S3_RA_START        (1024u * 1024) /* a stream's first window */
#define S3_RA_MIN_BLOCKS   16u            /* 1 MiB: the smallest readahead GET */
#define S3_CONN_DEFAULT    16 /* with the default cache: 16 x 8 MiB = a half of it in flight */
#define S3_CONN_MAX        64
#define S3_STREAMS         8
#define S3_SEQ_SLACK       (1024u * 1024) /* FUSE threads reorder reads a little */
#define S3_DEFAULT_CACHE   (256ull * 1024 * 1024)

enum s3_blk_state { BLK_LOADING, BLK_READY, BLK_ERROR };

struct s3_obj;

struct s3_blk {
    struct s3_obj *obj;
    uint64_t idx;
    uint8_t *data;
    enum s3_blk_state state;
    int waiters;
    int err_code;
    char *err_msg;
    struct s3_blk *hnext;               /* hash chain */
    struct s3_blk *lru_prev, *lru_next; /* READY blocks only; most recent first */
};

struct s3_job {
    struct s3_obj *obj;
    uint64_t first;
    size_t n;
    struct s3_job *next;
};

/* Shared by an object and everything opened beside it. All fields below
 * lock are protected by it. */
struct s3_ctx {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a block left LOADING, or a job finished */
    pthread_cond_t work;    /* the job queue gained an entry, or stop */
    int refcnt;
    struct vd_http_pool *pool;
    struct s3_blk **table;
    size_t tmask;
    struct s3_blk lru; /* sentinel */
    uint64_t cached_bytes, capacity;
    uint64_t peak_bytes; /* the most cached_bytes has been */
    void *spare;         /* free block buffers, linked through their first bytes */
    uint64_t nspare;     /* how many */
    struct s3_job *qhead, *qtail;
    pthread_t *workers;
    int nworkers;    /* wanted */
    int started;     /* running in this process */
    int running;     /* jobs being fetched */
    uint64_t ra_cap; /* readahead window at full size */
    bool stop;
    struct s3_ctx *all_next;
};

struct s3_stream {
    uint64_t next;    /* offset after the last read */
    uint64_t window;  /* readahead bytes; 0 until the stream proves sequential */
    int seq;          /* reads that continued this stream (capped) */
    uint64_t ra_next; /* readahead issued up to here */
    uint64_t marker;  /* the window grows when the reader gets here */
    uint64_t used;    /* tick of last use */
};

struct s3_obj {
    struct vd_io io; /* first */
    struct s3_ctx *ctx;
    struct vd_s3_target *t;
    char etag[160];
    bool use_if_match;
    /* under ctx->lock: */
    bool changed;
    char changed_msg[640];
    int jobs;
    struct s3_stream streams[S3_STREAMS];
    uint64_t tick;
    /* atomics */
    uint64_t bytes_fetched, requests, hits, misses, retries;
};

static const struct vd_io_ops s3_ops;
static void *s3_worker(void *arg);

/* ---- context ---- */

/*
 * Fork safety. vdiskfs opens its sources, then daemonizes with fork(): only
 * the forking thread survives in the child. Worker threads therefore start
 * lazily, on the first readahead, and a pthread_atfork handler quiesces
 * every context before a fork (no job queued or running, lock held) and
 * makes the child start its own workers again.
 */
static pthread_mutex_t s3_all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct s3_ctx *s3_all; /* every live context, under s3_all_lock */
static pthread_once_t s3_atfork_once = PTHREAD_ONCE_INIT;

static void s3_atfork_prepare(void)
{
    pthread_mutex_lock(&s3_all_lock);
    for (struct s3_ctx *c = s3_all; c; c = c->all_next) {
        pthread_mutex_lock(&c->lock);
        while (c->qhead || c->running > 0)
            pthread_cond_wait(&c->changed, &c->lock);
    }
}

static void s3_atfork_parent(void)
{
    for (struct s3_ctx *c = s3_all; c; c = c->all_next)
        pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&s3_all_lock);
}

static void s3_atfork_child(void)
{
    for (struct s3_ctx *c = s3_all; c; c = c->all_next) {
        /* The workers (and any waiters) did not survive the fork. */
        pthread_cond_init(&c->work, NULL);
        pthread_cond_init(&c->changed, NULL);
        c->started = 0;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&s3_all_lock);
}

static void s3_atfork_register(void)
{
    pthread_atfork(s3_atfork_prepare, s3_atfork_parent, s3_atfork_child);
}

static void s3_ctx_unref(struct s3_ctx *c)
{
    pthread_mutex_lock(&s3_all_lock);
    pthread_mutex_lock(&c->lock);
    bool last = --c->refcnt == 0;
    if (last) {
        c->stop = true;
        pthread_cond_broadcast(&c->work);
        struct s3_ctx **pp = &s3_all;
        while (*pp && *pp != c)
            pp = &(*pp)->all_next;
        if (*pp)
            *pp = c->all_next;
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&s3_all_lock);
    if (!last)
        return;
    for (int i = 0; i < c->started; i++)
        pthread_join(c->workers[i], NULL);
    free(c->workers);
    free(c->table); /* objects removed their blocks on close */
    while (c->spare) {
        void *p = c->spare;
        memcpy(&c->spare, p, sizeof(void *));
        free(p);
    }
    vd_http_pool_free(c->pool);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->changed);
    pthread_cond_destroy(&c->work);
    free(c);
}

/* Start the workers if this process has none yet. Lock held. */
static void s3_start_workers(struct s3_ctx *c)
{
    while (c->started < c->nworkers &&
           pthread_create(&c->workers[c->started], NULL, s3_worker, c) == 0)
        c->started++;
}

static struct s3_ctx *s3_ctx_new(uint64_t capacity)
{
    pthread_once(&s3_atfork_once, s3_atfork_register);
    struct s3_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->refcnt = 1;
    c->capacity = capacity ? capacity : S3_DEFAULT_CACHE;
    if (c->capacity < 4 * S3_BLOCK)
        c->capacity = 4 * S3_BLOCK;
    size_t ts = 1024;
    while (ts < c->capacity / S3_BLOCK * 2 && ts < (1u << 24))
        ts *= 2;
    c->tmask = ts - 1;
    c->table = calloc(ts, sizeof(*c->table));
    c->nworkers = vd_s3_connections(c->capacity);
    /* Two ranges per connection: one in flight, one queued behind it, so a
     * connection that finishes finds work at once. Never above half the
     * cache: the other half holds what the reader has not consumed yet. */
    c->ra_cap = 2 * (uint64_t)c->nworkers * S3_RA_CHUNK;
    if (c->ra_cap > c->capacity / 2)
        c->ra_cap = c->capacity / 2;
    if (c->ra_cap < S3_RA_MIN)
        c->ra_cap = S3_RA_MIN;
    c->pool = vd_http_pool_new((size_t)c->nworkers + 8);
    c->workers = calloc((size_t)c->nworkers, sizeof(*c->workers));
    c->lru.lru_next = c->lru.lru_prev = &c->lru;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    pthread_cond_init(&c->work, NULL);
    if (!c->table || !c->pool || !c->workers) {
        free(c->table);
        vd_http_pool_free(c->pool);
        free(c->workers);
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&s3_all_lock);
    c->all_next = s3_all;
    s3_all = c;
    pthread_mutex_unlock(&s3_all_lock);
    return c;
}

int vd_s3_connections(uint64_t budget)
{
    const char *e = getenv("VD_S3_CONNECTIONS");
    if (e && atoi(e) > 0)
        return atoi(e) < S3_CONN_MAX ? atoi(e) : S3_CONN_MAX;
    if (!budget)
        budget = S3_DEFAULT_CACHE;
    uint64_t n = budget / 2 / S3_RA_CHUNK;
    return n < 2 ? 2 : n > S3_CONN_DEFAULT ? S3_CONN_DEFAULT : (int)n;
}

static size_t s3_hash(const struct s3_ctx *c, const struct s3_obj *o, uint64_t idx)
{
    uint64_t h =
        ((uint64_t)(uintptr_t)o >> 4) * 0x9E3779B97F4A7C15ull ^ idx * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29)) & c->tmask;
}

static struct s3_blk *s3_lookup(struct s3_ctx *c, struct s3_obj *o, uint64_t idx)
{
    for (struct s3_blk *b = c->table[s3_hash(c, o, idx)]; b; b = b->hnext)
        if (b->obj == o && b->idx == idx)
            return b;
    return NULL;
}

static void s3_lru_unlink(struct s3_blk *b)
{
    if (b->lru_next) {
        b->lru_prev->lru_next = b->lru_next;
        b->lru_next->lru_prev = b->lru_prev;
        b->lru_next = b->lru_prev = NULL;
    }
}

static void s3_lru_front(struct s3_ctx *c, struct s3_blk *b)
{
    s3_lru_unlink(b);
    b->lru_next = c->lru.lru_next;
    b->lru_prev = &c->lru;
    c->lru.lru_next->lru_prev = b;
    c->lru.lru_next = b;
}

/*
 * Block buffers are recycled, not freed: with glibc every thread that
 * frees a 64 KiB buffer keeps it in its own arena, where the thread that
 * next allocates one does not look, so a mount reading past its cache grew
 * to 1.7x cache_size (445 MiB with 256 MiB). Buffers in the cache plus
 * spares stay within the capacity. Lock held.
 */
static uint8_t *s3_buf_get(struct s3_ctx *c)
{
    void *p = c->spare;
    if (!p)
        return malloc(S3_BLOCK);
    memcpy(&c->spare, p, sizeof(void *));
    c->nspare--;
    return p;
}

static void s3_buf_put(struct s3_ctx *c, uint8_t *p)
{
    if (c->cached_bytes + (c->nspare + 1) * S3_BLOCK > c->capacity + S3_RA_CHUNK) {
        free(p);
        return;
    }
    memcpy(p, &c->spare, sizeof(void *));
    c->spare = p;
    c->nspare++;
}

static void s3_remove(struct s3_ctx *c, struct s3_blk *b)
{
    struct s3_blk **pp = &c->table[s3_hash(c, b->obj, b->idx)];
    while (*pp && *pp != b)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = b->hnext;
    s3_lru_unlink(b);
    c->cached_bytes -= S3_BLOCK;
    s3_buf_put(c, b->data);
    free(b->err_msg);
    free(b);
}

/* Drop least recently used READY blocks until room bytes more fit in the
 * capacity; a block a reader is still waiting on stays until that reader
 * has copied it. */
static void s3_evict(struct s3_ctx *c, uint64_t room)
{
    struct s3_blk *b = c->lru.lru_prev;
    while (c->cached_bytes + room > c->capacity && b != &c->lru) {
        struct s3_blk *prev = b->lru_prev;
        if (b->waiters == 0)
            s3_remove(c, b);
        b = prev;
    }
}

/* Claim up to max consecutive absent blocks from first as LOADING. Returns
 * how many were claimed (0 if first is present or memory ran out). */
static size_t s3_claim(struct s3_ctx *c, struct s3_obj *o, uint64_t first, size_t max)
{
    size_t n = 0;
    uint64_t nblocks = (o->io.size + S3_BLOCK - 1) / S3_BLOCK;
    while (n < max && first + n < nblocks && !s3_lookup(c, o, first + n)) {
        /* Make room first, so blocks in flight count against the capacity
         * too and the buffers recycle (s3_buf_get) instead of growing. */
        s3_evict(c, S3_BLOCK);
        struct s3_blk *b = calloc(1, sizeof(*b));
        uint8_t *d = b ? s3_buf_get(c) : NULL;
        if (!d) {
            free(b);
            break;
        }
        b->obj = o;
        b->idx = first + n;
        b->data = d;
        b->state = BLK_LOADING;
        size_t h = s3_hash(c, o, b->idx);
        b->hnext = c->table[h];
        c->table[h] = b;
        c->cached_bytes += S3_BLOCK;
        if (c->cached_bytes > c->peak_bytes)
            c->peak_bytes = c->cached_bytes;
        n++;
    }
    return n;
}

/* Finish a fetch of [first, first+n): READY, or ERROR for waiters (removed
 * when nobody waits). Called with the lock held. */
static void s3_complete(struct s3_ctx *c, struct s3_obj *o, uint64_t first, size_t n, int rc,
                        const struct vd_error *err)
{
    for (size_t i = 0; i < n; i++) {
        struct s3_blk *b = s3_lookup(c, o, first + i);
        if (!b)
            continue;
        if (rc == 0) {
            b->state = BLK_READY;
            s3_lru_front(c, b);
        } else if (b->waiters > 0) {
            b->state = BLK_ERROR;
            b->err_code = rc;
            b->err_msg = strdup(err && err->msg[0] ? err->msg : "read failed");
        } else {
            s3_remove(c, b);
        }
    }
    s3_evict(c, 0);
    pthread_cond_broadcast(&c->changed);
}

/* ---- fetching ---- */

struct s3_scatter {
    struct s3_obj *o;
    uint64_t first;
    size_t n;
    uint64_t want, got;
    bool overflow;
    struct s3_blk **blks;
};

static bool s3_scatter_cb(void *opaque, const void *data, size_t len)
{
    struct s3_scatter *s = opaque;
    const uint8_t *p = data;
    if (s->got + len > s->want) {
        s->overflow = true;
        return false; /* longer than asked: refuse rather than guess */
    }
    while (len > 0) {
        size_t bi = (size_t)(s->got / S3_BLOCK), bo = (size_t)(s->got % S3_BLOCK);
        size_t take = S3_BLOCK - bo < len ? S3_BLOCK - bo : len;
        memcpy(s->blks[bi]->data + bo, p, take);
        p += take;
        len -= take;
        s->got += take;
    }
    return true;
}

/* Parse "bytes A-B/T" and compare with what was asked. */
static bool s3_range_ok(const char *cr, uint64_t a, uint64_t b, uint64_t total)
{
    unsigned long long ra, rb, rt;
    char tail;
    if (sscanf(cr, "bytes %llu-%llu/%llu%c", &ra, &rb, &rt, &tail) != 3)
        return false;
    return ra == a && rb == b && rt == total;
}

static void s3_mark_changed(struct s3_obj *o, const char *why)
{
    pthread_mutex_lock(&o->ctx->lock);
    if (!o->changed) {
        o->changed = true;
        snprintf(o->changed_msg, sizeof(o->changed_msg),
                 "s3: %s: object changed since mount (ETag %s at open; %s); remount to read "
                 "the new version",
                 o->t->uri, o->etag, why);
    }
    pthread_mutex_unlock(&o->ctx->lock);
}

/* GET blocks [first, first+n) into their LOADING entries (no lock held:
 * nobody else writes LOADING blocks). */
static int s3_fetch(struct s3_obj *o, uint64_t first, size_t n, struct vd_error *err)
{
    struct s3_ctx *c = o->ctx;
    struct s3_blk *stack[S3_RA_CHUNK_BLOCKS];
    struct s3_blk **blks = n <= S3_RA_CHUNK_BLOCKS ? stack : malloc(n * sizeof(*blks));
    if (!blks)
        return vd_err(err, -ENOMEM, "s3: out of memory");
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n; i++)
        blks[i] = s3_lookup(c, o, first + i);
    pthread_mutex_unlock(&c->lock);

    uint64_t a = first * S3_BLOCK;
    uint64_t b = (first + n) * S3_BLOCK;
    if (b > o->io.size)
        b = o->io.size;
    b -= 1;
    char range[80], ifm[200];
    snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, a, b);
    const char *hdrs[2] = {range, ifm};
    size_t nh = 1;
    if (o->use_if_match) {
        snprintf(ifm, sizeof(ifm), "If-Match: %s", o->etag);
        nh = 2;
    }
    int rc = 0, attempts = vd_s3_max_attempts(), attempt;
    char why[400] = "";
    for (attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1) {
            __atomic_add_fetch(&o->retries, 1, __ATOMIC_RELAXED);
            vd_s3_backoff(attempt - 1);
        }
        pthread_mutex_lock(&c->lock);
        bool changed = o->changed;
        pthread_mutex_unlock(&c->lock);
        if (changed) {
            rc = vd_err(err, -EIO, "%s", o->changed_msg);
            goto out;
        }
        struct s3_scatter sc = {.o = o, .first = first, .n = n, .want = b - a + 1, .blks = blks};
        struct vd_s3_call call = {.method = "GET",
                                  .headers = hdrs,
                                  .nheaders = nh,
                                  .sink = s3_scatter_cb,
                                  .sink_opaque = &sc};
        struct vd_http_resp resp;
        __atomic_add_fetch(&o->requests, 1, __ATOMIC_RELAXED);
        rc = vd_s3_call(c->pool, o->t, &call, &resp);
        __atomic_add_fetch(&o->bytes_fetched, resp.received, __ATOMIC_RELAXED);
        if (rc == 0 && resp.status == 206 && sc.got == sc.want &&
            s3_range_ok(resp.content_range, a, b, o->io.size) &&
            (!o->etag[0] || !resp.etag[0] || !strcmp(resp.etag, o->etag))) {
            vd_http_resp_free(&resp);
            rc = 0;
            goto out;
        }
        if (rc == 0 && (resp.status == 412 || (resp.status == 206 && o->etag[0] && resp.etag[0] &&
                                               strcmp(resp.etag, o->etag) != 0))) {
            char now[200];
            snprintf(now, sizeof(now),
                     resp.status == 412 ? "If-Match failed: HTTP 412" : "server now sends ETag %s",
                     resp.etag);
            vd_http_resp_free(&resp);
            s3_mark_changed(o, now);
            rc = vd_err(err, -EIO, "%s", o->changed_msg);
            goto out;
        }
        if (rc == 0 && resp.status == 206) {
            if (!s3_range_ok(resp.content_range, a, b, o->io.size))
                snprintf(why, sizeof(why), "answer has Content-Range '%s'", resp.content_range);
            else
                snprintf(why, sizeof(why), "short body: %" PRIu64 " of %" PRIu64 " bytes", sc.got,
                         sc.want);
            vd_http_resp_free(&resp);
            continue; /* a truncated or mangled answer: ask again */
        }
        if (rc == -EIO && sc.overflow) {
            snprintf(why, sizeof(why), "server sent more than the %" PRIu64 " bytes asked",
                     sc.want);
            vd_http_resp_free(&resp);
            continue;
        }
        vd_s3_describe(rc, &resp, why, sizeof(why));
        /* 200 to a Range request: a cache or proxy glitch (open() has
         * already proven that the server honours Range); ask again. */
        bool again = vd_s3_retryable(rc, &resp) || (rc == 0 && resp.status == 200);
        if (rc == 0 && resp.status == 200)
            snprintf(why, sizeof(why), "HTTP 200 to a Range request (whole object, not the range)");
        vd_http_resp_free(&resp);
        if (rc == -ENOMEM) {
            rc = vd_err(err, -ENOMEM, "s3: out of memory");
            goto out;
        }
        if (!again)
            break;
    }
    if (attempt > attempts)
        rc = vd_err(err, -EIO,
                    "s3: %s: GET bytes=%" PRIu64 "-%" PRIu64 " failed %d times, giving up: %s",
                    o->t->uri, a, b, attempts, why);
    else
        rc = vd_err(err, -EIO, "s3: %s: GET bytes=%" PRIu64 "-%" PRIu64 " failed: %s", o->t->uri, a,
                    b, why);
out:
    if (blks != stack)
        free(blks);
    return rc;
}

static void *s3_worker(void *arg)
{
    struct s3_ctx *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->stop && !c->qhead)
            pthread_cond_wait(&c->work, &c->lock);
        if (c->stop)
            break;
        struct s3_job *j = c->qhead;
        c->qhead = j->next;
        if (!c->qhead)
            c->qtail = NULL;
        c->running++;
        pthread_mutex_unlock(&c->lock);
        struct vd_error err = {0};
        int rc = s3_fetch(j->obj, j->first, j->n, &err);
        pthread_mutex_lock(&c->lock);
        s3_complete(c, j->obj, j->first, j->n, rc, &err);
        j->obj->jobs--;
        c->running--;
        pthread_cond_broadcast(&c->changed);
        free(j);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* The size of each readahead GET for a span of span bytes: the span split
 * over all connections (on a WAN each GET waits a first-byte latency, and
 * many in parallel move more than a few large ones), but not below 1 MiB,
 * which one S3 connection moves in about its first-byte latency (tens of
 * MB/s, tens of ms: smaller GETs would mostly wait, and each costs a
 * request), nor above 8 MiB (S3_RA_CHUNK), the range AWS recommends. In
 * blocks. */
static size_t s3_chunk_blocks(const struct s3_ctx *c, uint64_t span)
{
    uint64_t per = span / (uint64_t)(c->nworkers > 0 ? c->nworkers : 1) / S3_BLOCK;
    return per < S3_RA_MIN_BLOCKS     ? S3_RA_MIN_BLOCKS
           : per > S3_RA_CHUNK_BLOCKS ? S3_RA_CHUNK_BLOCKS
                                      : (size_t)per;
}

/* Queue GETs of chunk blocks for the absent blocks of [from, to) (byte
 * offsets). Lock held. */
static void s3_readahead(struct s3_obj *o, uint64_t from, uint64_t to, size_t chunk)
{
    struct s3_ctx *c = o->ctx;
    if (to > o->io.size)
        to = o->io.size;
    uint64_t bi = from / S3_BLOCK, be = (to + S3_BLOCK - 1) / S3_BLOCK;
    s3_start_workers(c);
    if (c->started == 0)
        return; /* no threads: no readahead, readers fetch for themselves */
    while (bi < be) {
        struct s3_blk *b = s3_lookup(c, o, bi);
        if (b) {
            bi++;
            continue;
        }
        size_t want = (size_t)(be - bi < chunk ? be - bi : chunk);
        struct s3_job *j = malloc(sizeof(*j));
        if (!j)
            return;
        size_t n = s3_claim(c, o, bi, want);
        if (n == 0) {
            free(j);
            return;
        }
        *j = (struct s3_job){.obj = o, .first = bi, .n = n};
        if (c->qtail)
            c->qtail->next = j;
        else
            c->qhead = j;
        c->qtail = j;
        o->jobs++;
        pthread_cond_signal(&c->work);
        bi += n;
    }
}

/*
 * Track sequential streams and keep their readahead window full. Lock held.
 *
 * As Linux's readahead does (mm/readahead.c, the "async" marker): a stream
 * that proves sequential gets a window of S3_RA_START bytes ahead of the
 * reader; each time the reader reaches the middle of the last growth, the
 * window quadruples, up to ra_cap. Between growths it is topped up as the
 * reader moves, so the connections never wait for the reader to catch up;
 * top-ups go out in whole GETs (1-8 MiB, s3_chunk_blocks), except the
 * object's tail, which is split over all connections so it does not arrive
 * last on one.
 */
static void s3_track(struct s3_obj *o, uint64_t off, size_t len)
{
    struct s3_stream *s = NULL, *lru = &o->streams[0];
    struct s3_ctx *c = o->ctx;
    o->tick++;
    for (int i = 0; i < S3_STREAMS; i++) {
        struct s3_stream *x = &o->streams[i];
        if (x->used && off + S3_SEQ_SLACK >= x->next && off <= x->next + S3_SEQ_SLACK) {
            s = x;
            break;
        }
        if (x->used < lru->used)
            lru = x;
    }
    uint64_t end = off + len;
    if (!s) {
        /* A seek: a new stream, no readahead until it proves sequential. */
        *lru = (struct s3_stream){.next = end, .window = 0, .ra_next = end, .used = o->tick};
        return;
    }
    s->used = o->tick;
    if (end > s->next)
        s->next = end;
    if (s->seq < 2)
        s->seq++;
    uint64_t cap = c->ra_cap;
    bool grew = true;
    if (s->window == 0) {
        /* Random reads land near an earlier one now and then (the slack is
         * 1 MiB); two continuations in a row are a sequential reader. */
        if (s->seq < 2)
            return;
        s->window = S3_RA_START < cap ? S3_RA_START : cap;
        s->marker = s->next + s->window / 2;
        if (s->ra_next < s->next)
            s->ra_next = s->next;
    } else if (s->next >= s->marker && s->window < cap) {
        /* The reader is into the last growth: quadruple (each step waits a
         * first-byte latency; 1 MiB to 128 MiB is then 4 steps, not 7). */
        uint64_t grown = 4 * s->window < cap ? 4 * s->window : cap;
        uint64_t from = s->ra_next > s->next ? s->ra_next : s->next;
        s->window = grown;
        s->marker = from + (s->next + grown - from) / 2;
    } else {
        grew = false;
    }
    if (s->ra_next < s->next)
        s->ra_next = s->next; /* the reader went past what was read ahead */
    uint64_t to = s->next + s->window;
    if (to > o->io.size)
        to = o->io.size;
    if (to <= s->ra_next)
        return;
    uint64_t gap = to - s->ra_next;
    size_t chunk = s3_chunk_blocks(c, s->window);
    /* Top up in whole GETs; with a small cache (a window under 2 MiB), in
     * halves of the window, or it would never be topped up at all. */
    uint64_t step = (uint64_t)chunk * S3_BLOCK;
    if (step > s->window / 2)
        step = s->window / 2;
    if (to < o->io.size && gap < step)
        return;
    if ((grew || to == o->io.size) && gap < (uint64_t)chunk * S3_BLOCK * (uint64_t)c->nworkers)
        chunk = s3_chunk_blocks(c, gap); /* a growth, or the tail: every connection */
    s3_readahead(o, s->ra_next, to, chunk);
    s->ra_next = to;
}

/* The caller will read [off, off+len) soon, in any order (a batch of
 * compressed grains, read last to first): fetch its missing blocks now, on
 * the workers, so those reads wait for one GET instead of a round trip
 * each. The stream tracker is left alone: this is not a sequential read. */
static void s3_willneed(struct vd_io *io, uint64_t off, uint64_t len)
{
    struct s3_obj *o = (struct s3_obj *)io;
    if (off >= io->size)
        return;
    if (len > io->size - off)
        len = io->size - off;
    pthread_mutex_lock(&o->ctx->lock);
    if (!o->changed && len <= o->ctx->ra_cap)
        s3_readahead(o, off, off + len, s3_chunk_blocks(o->ctx, len));
    pthread_mutex_unlock(&o->ctx->lock);
}

static ssize_t s3_pread(struct vd_io *io, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    struct s3_obj *o = (struct s3_obj *)io;
    struct s3_ctx *c = o->ctx;
    if (off >= io->size || len == 0)
        return 0;
    if (len > io->size - off)
        len = (size_t)(io->size - off);
    uint8_t *dst = buf;
    uint64_t pos = off, end = off + len;
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    if (o->changed) {
        rc = vd_err(err, -EIO, "%s", o->changed_msg);
        goto out_unlock;
    }
    s3_track(o, off, len);
    while (pos < end) {
        uint64_t idx = pos / S3_BLOCK;
        size_t bo = (size_t)(pos % S3_BLOCK);
        size_t take = S3_BLOCK - bo;
        if (take > end - pos)
            take = (size_t)(end - pos);
        struct s3_blk *b = s3_lookup(c, o, idx);
        if (b && b->state == BLK_READY) {
            memcpy(dst + (pos - off), b->data + bo, take);
            s3_lru_front(c, b);
            o->hits++;
            pos += take;
            continue;
        }
        if (b) {
            b->waiters++;
            while (b->state == BLK_LOADING)
                pthread_cond_wait(&c->changed, &c->lock);
            b->waiters--;
            if (b->state == BLK_ERROR) {
                rc = vd_err(err, b->err_code, "%s", b->err_msg ? b->err_msg : "read failed");
                if (b->waiters == 0)
                    s3_remove(c, b);
                goto out_unlock;
            }
            continue; /* READY now: copied on the next pass (a hit: readahead won) */
        }
        /* Miss: fetch the run of missing blocks this read needs. */
        uint64_t last = (end - 1) / S3_BLOCK;
        size_t n = s3_claim(c, o, idx, (size_t)(last - idx + 1));
        if (n == 0) {
            rc = vd_err(err, -ENOMEM, "s3: out of memory for the block cache");
            goto out_unlock;
        }
        o->misses += n;
        pthread_mutex_unlock(&c->lock);
        struct vd_error ferr = {0};
        int fr = s3_fetch(o, idx, n, &ferr);
        pthread_mutex_lock(&c->lock);
        if (fr != 0) {
            s3_complete(c, o, idx, n, fr, &ferr);
            rc = vd_err(err, fr, "%s", ferr.msg);
            goto out_unlock;
        }
        /* Copy straight away: the blocks could be evicted once unlocked. */
        for (size_t i = 0; i < n && pos < end; i++) {
            struct s3_blk *fb = s3_lookup(c, o, idx + i);
            size_t fo = (size_t)(pos % S3_BLOCK);
            size_t ft = S3_BLOCK - fo;
            if (ft > end - pos)
                ft = (size_t)(end - pos);
            memcpy(dst + (pos - off), fb->data + fo, ft);
            pos += ft;
        }
        s3_complete(c, o, idx, n, 0, NULL);
    }
out_unlock:
    pthread_mutex_unlock(&c->lock);
    return rc ? rc : (ssize_t)len;
}

static void s3_stats(struct vd_io *io, struct vd_json *j)
{
    struct s3_obj *o = (struct s3_obj *)io;
    pthread_mutex_lock(&o->ctx->lock);
    uint64_t hits = o->hits, misses = o->misses;
    pthread_mutex_unlock(&o->ctx->lock);
    vd_json_str(j, "backend", o->t->is_s3 ? "s3" : "http");
    vd_json_str(j, "url", o->t->uri);
    vd_json_str(j, "etag", o->etag[0] ? o->etag : NULL);
    if (o->t->is_s3) /* which source signed: "env", "imds", "none"... */
        vd_json_str(j, "credentials", o->t->conf.cred_source);
    vd_json_u64(j, "bytes_fetched", __atomic_load_n(&o->bytes_fetched, __ATOMIC_RELAXED));
    vd_json_u64(j, "requests", __atomic_load_n(&o->requests, __ATOMIC_RELAXED));
    vd_json_u64(j, "retries", __atomic_load_n(&o->retries, __ATOMIC_RELAXED));
    vd_json_u64(j, "cache_hits", hits);
    vd_json_u64(j, "cache_misses", misses);
    vd_json_dbl(j, "cache_hit_rate", hits + misses ? (double)hits / (double)(hits + misses) : 0.0);
    vd_json_u64(j, "cache_size", o->ctx->capacity);
    pthread_mutex_lock(&o->ctx->lock);
    uint64_t now = o->ctx->cached_bytes, peak = o->ctx->peak_bytes;
    pthread_mutex_unlock(&o->ctx->lock);
    vd_json_u64(j, "cache_bytes", now);
    vd_json_u64(j, "cache_peak_bytes", peak);
    vd_json_u64(j, "connections", (uint64_t)o->ctx->nworkers);
}

static void s3_close(struct vd_io *io)
{
    struct s3_obj *o = (struct s3_obj *)io;
    struct s3_ctx *c = o->ctx;
    pthread_mutex_lock(&c->lock);
    /* Drop queued readahead, wait for running jobs, then free our blocks. */
    struct s3_job **pp = &c->qhead;
    c->qtail = NULL;
    while (*pp) {
        struct s3_job *j = *pp;
        if (j->obj == o) {
            *pp = j->next;
            s3_complete(c, o, j->first, j->n, -ECANCELED, NULL);
            o->jobs--;
            free(j);
        } else {
            c->qtail = j;
            pp = &j->next;
        }
    }
    while (o->jobs > 0)
        pthread_cond_wait(&c->changed, &c->lock);
    for (size_t i = 0; i <= c->tmask; i++) {
        struct s3_blk *b = c->table[i];
        while (b) {
            struct s3_blk *next = b->hnext;
            if (b->obj == o)
                s3_remove(c, b);
            b = next;
        }
    }
    pthread_mutex_unlock(&c->lock);
    s3_ctx_unref(c);
    vd_s3_target_free(o->t);
    free(o);
}

/* Learn size and ETag: HEAD for S3, GET bytes=0-1 for plain URLs (a
 * presigned URL is signed for GET only, and this also proves Range works). */
static int s3_stat(struct s3_obj *o, struct vd_error *err)
{
    int attempts = vd_s3_max_attempts();
    char why[400] = "";
    bool head = o->t->is_s3;
    for (int attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1)
            vd_s3_backoff(attempt - 1);
        /* bytes=0-1, not 0-0: s3rver 3.7 reads an end of 0 as "to the end". */
        const char *hdrs[] = {"Range: bytes=0-1"};
        struct vd_s3_call call = {
            .method = head ? "HEAD" : "GET", .headers = hdrs, .nheaders = head ? 0 : 1};
        struct vd_http_resp resp;
        o->requests++;
        int rc = vd_s3_call(o->ctx->pool, o->t, &call, &resp);
        o->bytes_fetched += resp.received;
        if (rc == 0 && head && resp.status == 200 && resp.content_length >= 0) {
            o->io.size = (uint64_t)resp.content_length;
        } else if (rc == 0 && !head && resp.status == 206) {
            unsigned long long ra, rb, rt;
            if (sscanf(resp.content_range, "bytes %llu-%llu/%llu", &ra, &rb, &rt) != 3 || ra != 0 ||
                rb > 1 || rb >= rt) {
                snprintf(why, sizeof(why), "unusable Content-Range '%s'", resp.content_range);
                vd_http_resp_free(&resp);
                return vd_err(err, -EIO, "s3: %s: %s", o->t->uri, why);
            }
            o->io.size = rt;
        } else if (rc == 0 && !head && resp.status == 416) {
            o->io.size = 0; /* empty object */
        } else if (rc == 0 && !head && resp.status == 200) {
            vd_http_resp_free(&resp);
            return vd_err(err, -ENOTSUP,
                          "s3: %s: the server ignores Range requests (HTTP 200 to bytes=0-1)",
                          o->t->uri);
        } else {
            vd_s3_describe(rc, &resp, why, sizeof(why));
            bool again = vd_s3_retryable(rc, &resp);
            long st = resp.status;
            char region[64];
            snprintf(region, sizeof(region), "%s", resp.bucket_region);
            vd_http_resp_free(&resp);
            if (again)
                continue;
            if (rc == 0 && region[0] && o->t->conf.region && strcmp(region, o->t->conf.region)) {
                /* A HEAD has no error body; S3 names the bucket's region. */
                return vd_err(err, -EIO,
                              "s3: %s: HEAD: HTTP %ld: the bucket is in region %s, not %s; "
                              "pass -o region=%s or set AWS_REGION",
                              o->t->uri, st, region, o->t->conf.region, region);
            }
            int code = st == 404 ? -ENOENT : (st == 403 || st == 401) ? -EACCES : -EIO;
            if (head && (st == 404 || st == 403))
                snprintf(why, sizeof(why), "HTTP %ld (%s)", st,
                         st == 404 ? "no such object" : "access denied");
            if ((st == 403 || st == 401) && o->t->conf.cred_note)
                return vd_err(err, code, "s3: %s: %s: HTTP %ld, sent unsigned: %s", o->t->uri,
                              head ? "HEAD" : "GET", st, o->t->conf.cred_note);
            return vd_err(err, code, "s3: %s: %s %s: %s", o->t->uri, head ? "HEAD" : "GET",
                          o->t->url, why);
        }
        snprintf(o->etag, sizeof(o->etag), "%s", resp.etag);
        /* If-Match compares strongly: a weak ETag cannot be used. */
        o->use_if_match = o->etag[0] && strncmp(o->etag, "W/", 2) != 0;
        vd_http_resp_free(&resp);
        return 0;
    }
    return vd_err(err, -EIO, "s3: %s: %s failed %d times, giving up: %s", o->t->uri,
                  head ? "HEAD" : "GET", attempts, why);
}

static int s3_open_target(struct vd_s3_target *t, struct s3_ctx *c, struct vd_io **out,
                          struct vd_error *err)
{
    struct s3_obj *o = calloc(1, sizeof(*o));
    if (!o) {
        vd_s3_target_free(t);
        return vd_err(err, -ENOMEM, "s3: out of memory");
    }
    o->t = t;
    o->ctx = c;
    int r = vd_io_init(&o->io, &s3_ops, t->uri, 0);
    if (r == 0)
        r = s3_stat(o, err);
    if (r != 0) {
        free(o->io.name);
        vd_s3_target_free(t);
        free(o);
        if (r == -ENOMEM)
            vd_err(err, r, "s3: out of memory");
        return r;
    }
    pthread_mutex_lock(&c->lock);
    c->refcnt++;
    pthread_mutex_unlock(&c->lock);
    *out = &o->io;
    return 0;
}

static int s3_open_relative(struct vd_io *io, const char *rel, bool writable, struct vd_io **out,
                            struct vd_error *err)
{
    struct s3_obj *o = (struct s3_obj *)io;
    if (writable)
        return vd_err(err, -EROFS,
                      "%s: remote sources are read-only; mount it read-only, keep the changes in "
                      "an overlay (-o overlay=FILE), or write to a converted copy",
                      io->name);
    struct vd_s3_target *t;
    int r = vd_s3_target_relative(o->t, rel, &t, err);
    if (r)
        return r;
    return s3_open_target(t, o->ctx, out, err);
}

/* The size and ETag pinned at open: every read since was made with
 * If-Match on that ETag (or checked against it), so they are what was read. */
static int s3_identity(struct vd_io *io, struct vd_io_identity *id, struct vd_error *err)
{
    struct s3_obj *o = (struct s3_obj *)io;
    (void)err;
    id->kind = VD_IO_ID_REMOTE;
    snprintf(id->etag, sizeof(id->etag), "%s", o->etag);
    return 0;
}

static const struct vd_io_ops s3_ops = {
    .name = "s3",
    .pread = s3_pread,
    .open_relative = s3_open_relative,
    .stats = s3_stats,
    .identity = s3_identity,
    .willneed = s3_willneed,
    .close = s3_close,
};

int vd_io_remote_open(const char *uri, const struct vd_io_opts *opts, struct vd_io **out,
                      struct vd_error *err)
{
    struct vd_s3_target *t;
    int r = vd_s3_target_open(uri, opts, &t, err);
    if (r)
        return r;
    struct s3_ctx *c = s3_ctx_new(opts ? opts->cache_size : 0);
    if (!c) {
        vd_s3_target_free(t);
        return vd_err(err, -ENOMEM, "s3: out of memory");
    }
    r = s3_open_target(t, c, out, err);
    s3_ctx_unref(c); /* the object holds its own reference */
    return r;
}
