/*
 * Decoded-unit cache and readahead for compressed units (GRAIN answers:
 * streamOptimized VMDK grains). The driver says where a unit is stored and
 * how to decode its bytes (a pure function); this file reads, decodes,
 * caches and reads ahead, for every format alike.
 *
 * The cache is direct-mapped: slot = hash(key). A reader copies out of a
 * READY slot without the lock by pinning it; a BUSY slot is being decoded
 * by the reader or worker that claimed it. Sequential reads queue the next
 * units for worker threads (one per core, plus one), so decoding (the hot
 * path: see docs/performance.md) runs on all cores while the reader copies.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/checked.h"
#include "core/driver.h"

#define GRAIN_CACHE_BYTES (8u << 20)
#define GRAIN_RA_UNITS    32u
#define GRAIN_MAX_WORKERS 16
#define GRAIN_KEY_NONE    UINT64_MAX
#define GRAIN_NO_OFF      UINT64_MAX

enum { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };

struct grain_slot {
    uint64_t key;
    int state;
    unsigned pins; /* readers copying out of a READY slot without the lock */
    uint8_t *data;
};

struct vd_grain_cache {
    struct vd_image *img;
    uint32_t slot_bytes;
    unsigned nslots;
    struct grain_slot *slots;
    /* Everything below is protected by lock. */
    pthread_mutex_t lock;
    pthread_cond_t slot_cond;  /* a slot left SLOT_BUSY */
    pthread_cond_t queue_cond; /* readahead work queued, or stop */
    pthread_t *workers;
    unsigned nworkers, max_workers;
    bool stop;
    uint64_t queue[GRAIN_RA_UNITS * 2]; /* virtual offsets of units */
    uint32_t queue_len_unit;
    unsigned qhead, qlen;
    uint64_t ra_last, ra_next; /* virtual offsets: end of the last read, next to queue */
    struct vd_grain_cache *fork_next;
    bool registered;
};

/* ---- reading and decoding one unit ---- */

/* Decode the unit m describes into dst (m->unit_len bytes). */
static int grain_decode(struct vd_image *img, const struct vd_map *m, uint8_t *dst,
                        struct vd_error *err)
{
    size_t len = (size_t)m->clen, need = 0;
    uint8_t *buf = malloc(len);
    if (!buf)
        return vd_err(err, -ENOMEM, "%s: out of memory", img->name);
    int r = vd_io_pread_full(m->io, buf, len, m->io_off, err);
    if (r == 0)
        r = img->ops->decode(img, m, buf, len, dst, &need, err);
    if (r == -EAGAIN) {
        /* The unit is longer than the estimate: once more, checked again. */
        struct vd_map big = *m;
        uint8_t *nb;
        big.clen = need;
        if (need <= len || need > len + VD_GRAIN_MAX_SRC) {
            r = vd_err(err, -EIO,
                       "%s: compressed unit at offset %" PRIu64 " of %s asks for %zu "
                       "bytes",
                       img->name, m->io_off, vd_io_basename(m->io), need);
        } else if ((r = vd_image_check_span(img, &big, m->unit_off, m->io_off, need, err)) == 0) {
            if (!(nb = realloc(buf, need))) {
                r = vd_err(err, -ENOMEM, "%s: out of memory", img->name);
            } else {
                buf = nb;
                r = vd_io_pread_full(m->io, buf + len, need - len, m->io_off + len, err);
                if (r == 0)
                    r = img->ops->decode(img, &big, buf, need, dst, &need, err);
                if (r == -EAGAIN)
                    r = vd_err(err, -EIO,
                               "%s: compressed unit at offset %" PRIu64
                               " of %s: its length keeps growing",
                               img->name, m->io_off, vd_io_basename(m->io));
            }
        }
    }
    free(buf);
    return r;
}

/* ---- fork safety ----
 * A process that forks after workers started (a FUSE daemon that opens its
 * sources before daemonising) would lose them in the child, and with them
 * any lock or BUSY slot they held. The handlers take every cache's lock
 * around fork() and, in the child, forget the workers and their unfinished
 * slots, which are simply decoded again. */
static pthread_mutex_t grain_fork_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t grain_fork_once = PTHREAD_ONCE_INIT;
static struct vd_grain_cache *grain_fork_list;

static void grain_prefork(void)
{
    pthread_mutex_lock(&grain_fork_lock);
    for (struct vd_grain_cache *c = grain_fork_list; c; c = c->fork_next)
        pthread_mutex_lock(&c->lock);
}

static void grain_postfork_parent(void)
{
    for (struct vd_grain_cache *c = grain_fork_list; c; c = c->fork_next)
        pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&grain_fork_lock);
}

static void grain_postfork_child(void)
{
    for (struct vd_grain_cache *c = grain_fork_list; c; c = c->fork_next) {
        c->nworkers = 0;
        c->qlen = 0;
        c->ra_last = GRAIN_NO_OFF;
        for (unsigned i = 0; i < c->nslots; i++)
            if (c->slots[i].state == SLOT_BUSY) {
                c->slots[i].state = SLOT_EMPTY;
                c->slots[i].key = GRAIN_KEY_NONE;
            }
        pthread_cond_init(&c->slot_cond, NULL);
        pthread_cond_init(&c->queue_cond, NULL);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&grain_fork_lock);
}

static void grain_fork_init(void)
{
    (void)pthread_atfork(grain_prefork, grain_postfork_parent, grain_postfork_child);
}

static void grain_fork_register(struct vd_grain_cache *c)
{
    pthread_once(&grain_fork_once, grain_fork_init);
    pthread_mutex_lock(&grain_fork_lock);
    c->fork_next = grain_fork_list;
    grain_fork_list = c;
    c->registered = true;
    pthread_mutex_unlock(&grain_fork_lock);
}

static void grain_fork_unregister(struct vd_grain_cache *c)
{
    if (!c->registered)
        return;
    pthread_mutex_lock(&grain_fork_lock);
    for (struct vd_grain_cache **pp = &grain_fork_list; *pp; pp = &(*pp)->fork_next)
        if (*pp == c) {
            *pp = c->fork_next;
            break;
        }
    c->registered = false;
    pthread_mutex_unlock(&grain_fork_lock);
}

/* ---- the cache ---- */

static unsigned grain_slot_of(const struct vd_grain_cache *c, uint64_t key)
{
    return (unsigned)((key ^ (key >> 40) * 7919u) % c->nslots);
}

void vd_grain_cache_free(struct vd_grain_cache *c)
{
    if (!c)
        return;
    grain_fork_unregister(c);
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->queue_cond);
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = 0; i < c->nworkers; i++)
        pthread_join(c->workers[i], NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->slot_cond);
    pthread_cond_destroy(&c->queue_cond);
    for (unsigned i = 0; c->slots && i < c->nslots; i++)
        free(c->slots[i].data);
    free(c->slots);
    free(c->workers);
    free(c);
}

/* The image's cache, made at the first GRAIN answer with slots of that
 * unit's size. NULL when memory is short (readers decode privately). */
static struct vd_grain_cache *grain_cache_get(struct vd_image *img, uint32_t unit_len)
{
    struct vd_grain_cache *c = __atomic_load_n(&img->grains, __ATOMIC_ACQUIRE);
    if (c)
        return c;
    pthread_mutex_lock(&img->once_lock);
    c = img->grains;
    if (!c && (c = calloc(1, sizeof(*c))) != NULL) {
        c->img = img;
        c->slot_bytes = unit_len;
        c->nslots = VD_MAX(2 * GRAIN_RA_UNITS + 8, GRAIN_CACHE_BYTES / unit_len);
        c->ra_last = GRAIN_NO_OFF;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->slot_cond, NULL);
        pthread_cond_init(&c->queue_cond, NULL);
        bool ok = (c->slots = calloc(c->nslots, sizeof(*c->slots))) != NULL;
        for (unsigned i = 0; ok && i < c->nslots; i++) {
            c->slots[i].key = GRAIN_KEY_NONE;
            ok = (c->slots[i].data = malloc(unit_len)) != NULL;
        }
        /* One worker per core, plus one: on a remote source a worker waits
         * for the network as often as it decodes, and the reader decodes too,
         * so every core inflates while the next bytes arrive (issue 15). */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        c->max_workers = (unsigned)VD_MIN(VD_MAX(ncpu, 1) + 1, GRAIN_MAX_WORKERS);
        if (c->max_workers && !(c->workers = calloc(c->max_workers, sizeof(*c->workers))))
            c->max_workers = 0;
        if (!ok) {
            vd_grain_cache_free(c);
            c = NULL;
        } else {
            if (c->max_workers)
                grain_fork_register(c);
            __atomic_store_n(&img->grains, c, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&img->once_lock);
    return c;
}

static void *grain_worker(void *arg);

/* Note a read of the unit at [unit_off, unit_off + unit_len) and, when
 * reads look sequential, queue the units after it for the workers. The
 * reader decodes its own unit; the workers work on what the next reads will
 * want, so both run in parallel. */
static void grain_readahead(struct vd_grain_cache *c, const struct vd_map *m)
{
    if (c->max_workers == 0)
        return;
    uint64_t start = m->unit_off, end = m->unit_off + m->unit_len;
    uint64_t window = (uint64_t)GRAIN_RA_UNITS * m->unit_len;
    pthread_mutex_lock(&c->lock);
    /* FUSE delivers the reads of one sequential stream slightly out of
     * order (several threads), so "sequential" is a window. */
    bool seq =
        c->ra_last != GRAIN_NO_OFF && start + window >= c->ra_last && start <= c->ra_last + window;
    if (!seq || m->unit_len != c->queue_len_unit) {
        c->ra_last = end;
        c->ra_next = end;
        c->queue_len_unit = m->unit_len;
        c->qlen = 0; /* drop stale work from an earlier stream */
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->ra_last = VD_MAX(c->ra_last, end);
    uint64_t stop = VD_MIN(end + window, c->img->size);
    uint64_t o = VD_MAX(c->ra_next, end);
    for (; o < stop && c->qlen < VD_ARRAY_SIZE(c->queue); o += m->unit_len) {
        c->queue[(c->qhead + c->qlen) % VD_ARRAY_SIZE(c->queue)] = o;
        c->qlen++;
    }
    c->ra_next = VD_MAX(c->ra_next, o);
    if (c->nworkers < c->max_workers) {
        if (pthread_create(&c->workers[c->nworkers], NULL, grain_worker, c) == 0)
            c->nworkers++;
        else
            c->max_workers = c->nworkers; /* run without */
    }
    pthread_cond_signal(&c->queue_cond);
    pthread_mutex_unlock(&c->lock);
}

/* Readahead worker: decodes queued units into free slots. Errors are left
 * for the reader that needs the unit to report. */
static void *grain_worker(void *arg)
{
    struct vd_grain_cache *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        if (c->qlen == 0) {
            pthread_cond_wait(&c->queue_cond, &c->lock);
            continue;
        }
        uint64_t off = c->queue[c->qhead];
        c->qhead = (c->qhead + 1) % VD_ARRAY_SIZE(c->queue);
        c->qlen--;
        pthread_mutex_unlock(&c->lock);
        struct vd_map m;
        struct vd_error e = {0};
        int r = vd_image_map_checked(c->img, off, VD_MIN(c->img->size - off, 1), &m, &e);
        pthread_mutex_lock(&c->lock);
        if (r < 0 || m.kind != VD_MAP_GRAIN || m.unit_len > c->slot_bytes)
            continue;
        struct grain_slot *slot = &c->slots[grain_slot_of(c, m.key)];
        if (slot->key == m.key || slot->state == SLOT_BUSY || slot->pins)
            continue;
        slot->key = m.key;
        slot->state = SLOT_BUSY;
        pthread_mutex_unlock(&c->lock);
        r = grain_decode(c->img, &m, slot->data, &e);
        pthread_mutex_lock(&c->lock);
        if (r == 0) {
            slot->state = SLOT_READY;
        } else {
            slot->state = SLOT_EMPTY;
            slot->key = GRAIN_KEY_NONE;
        }
        pthread_cond_broadcast(&c->slot_cond);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static int grain_private(struct vd_image *img, const struct vd_map *m, uint64_t in, uint8_t *dst,
                         struct vd_error *err)
{
    uint8_t *tmp = malloc(m->unit_len);
    if (!tmp)
        return vd_err(err, -ENOMEM, "%s: out of memory", img->name);
    int r = grain_decode(img, m, tmp, err);
    if (r == 0)
        memcpy(dst, tmp + in, (size_t)m->len);
    free(tmp);
    return r;
}

int vd_grain_read(struct vd_image *img, const struct vd_map *m, uint64_t off, uint8_t *dst,
                  struct vd_error *err)
{
    uint64_t in = off - m->unit_off; /* checked: the unit covers the run */
    struct vd_grain_cache *c = grain_cache_get(img, m->unit_len);
    int r;
    if (!c || m->unit_len > c->slot_bytes)
        return grain_private(img, m, in, dst, err);
    grain_readahead(c, m);
    pthread_mutex_lock(&c->lock);
    struct grain_slot *slot = &c->slots[grain_slot_of(c, m->key)];
    for (;;) {
        if (slot->key == m->key && slot->state == SLOT_READY) {
            /* Pinned slots are not reused, so copy without the lock. */
            slot->pins++;
            pthread_mutex_unlock(&c->lock);
            memcpy(dst, slot->data + in, (size_t)m->len);
            pthread_mutex_lock(&c->lock);
            slot->pins--;
            pthread_mutex_unlock(&c->lock);
            return 0;
        }
        if (slot->state != SLOT_BUSY && slot->pins == 0)
            break;
        if (slot->key != m->key || slot->state != SLOT_BUSY) {
            /* busy with (or pinned for) another unit: do not wait */
            pthread_mutex_unlock(&c->lock);
            return grain_private(img, m, in, dst, err);
        }
        pthread_cond_wait(&c->slot_cond, &c->lock);
    }
    slot->key = m->key;
    slot->state = SLOT_BUSY;
    pthread_mutex_unlock(&c->lock);
    r = grain_decode(img, m, slot->data, err);
    if (r == 0)
        memcpy(dst, slot->data + in, (size_t)m->len); /* still ours: BUSY */
    pthread_mutex_lock(&c->lock);
    if (r == 0) {
        slot->state = SLOT_READY;
    } else {
        slot->state = SLOT_EMPTY;
        slot->key = GRAIN_KEY_NONE;
    }
    pthread_cond_broadcast(&c->slot_cond);
    pthread_mutex_unlock(&c->lock);
    return r;
}
