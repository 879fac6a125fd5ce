/*
 * The export/ directory of the mount (see export.h and docs/export.md).
 *
 * Every file created in export/ is one vd_export from <vdisk/export.h>,
 * whose format comes from the name's extension and whose output goes to
 * DEST/NAME (written as DEST/.NAME.partial-XXXXXX and renamed, or an S3
 * multipart upload). The image is finished when the last writable handle
 * is closed: in flush, so that close(2) - and so `cp` - sees any encode or
 * upload error; release only finishes when no flush did (nothing written,
 * fds closed by another process than the opener, a killed writer). A flush
 * before any write (`cmd > file` dups and closes the fd first) or from a
 * child closing an inherited fd does not finish.
 * A finished entry stays listed with the output's size, and the xattr
 * user.vdisk.status says "writing <output bytes>", "done <bytes> <sha256>"
 * or "error: <message>".
 *
 * The digest. Encoders that rewrite their head at the end (VHD, VHDX, OVA,
 * a VMDK sized only by then) cannot hash while streaming, and reading the
 * output back before close returned was 40% of the daemon's CPU and half
 * of cp's time for a VHD. A local output is therefore hashed by a
 * background thread after close, and a getxattr of the status waits for
 * it: `cp` is not slowed, and whoever asks still gets "done <bytes>
 * <sha256>", of the committed file as it is on disk. A read-back error
 * cannot fail close(2) any more; it is logged and the digest shows "-"
 * (the image itself was committed). S3 outputs show "-" (no read-back).
 *
 * Locking: `g_lock` guards the list and every field of struct xfile except
 * `e`'s own state; `x->rw` is held shared by writes and truncates and
 * exclusively by finish/abort, so an export is never finished under a
 * running write. Entries are reference counted (the list holds one, each
 * open handle one), so an unlinked entry lives until its last close.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export.h"
#include "vdisk/export.h"

#define STATUS_XATTR "user.vdisk.status"

enum xstate { X_WRITING, X_DONE, X_ERROR };

struct xfile {
    struct xfile *next;
    char *name;
    int refs;
    int writers;
    bool listed;
    bool dirty;    /* written or truncated since it started */
    bool had_data; /* a non-zero byte was written since it started */
    enum xstate state;
    struct vd_export *e;          /* X_WRITING only; NULL while finishing */
    uint64_t snap_size, snap_out; /* sizes when finishing began */
    pthread_rwlock_t rw;
    unsigned gen; /* bumped by each start: a stale digest thread's result is dropped */
    bool hashing; /* X_DONE, digest thread running; getxattr waits (g_hash_cv) */
    uint64_t out_bytes;
    char sha[65];
    char msg[VD_ERROR_MAX]; /* X_ERROR, or the first failed write's message */
    struct timespec mtime;
};

struct xhandle {
    struct xfile *x;
    pid_t pid; /* who opened it */
    bool writer;
    bool finished; /* this handle's flush finished the export */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hash_cv = PTHREAD_COND_INITIALIZER; /* a digest thread ended */
static int g_hashers;                                       /* digest threads running */
static bool g_stopping;                                     /* unmount: cancel them */
static struct xfile *g_files;
static char *g_dest;
static struct vd_export_opts g_opts;
static bool g_opts_ready;
static struct timespec g_start; /* export/'s times: the mount's start */

static void export_opts_ready(void)
{
    if (!g_opts_ready) {
        vd_export_opts_init(&g_opts);
        g_opts_ready = true;
    }
}

int export_opt(const char *key, const char *val)
{
    struct vd_error err = {0};
    export_opts_ready();
    if (strcmp(key, "export") == 0) {
        if (!val || !*val) {
            fprintf(stderr, "vdiskfs: export= needs a directory or s3://bucket/prefix/\n");
            return -1;
        }
        free(g_dest);
        g_dest = strdup(val);
        return 1;
    }
    int r = vd_export_opt(&g_opts, key, val ? val : "", &err);
    if (r < 0) {
        fprintf(stderr, "vdiskfs: %s\n", err.msg);
        return -1;
    }
    return r;
}

void export_set_remote(const struct vd_open_opts *remote)
{
    export_opts_ready();
    g_opts.remote = *remote;
}

bool export_enabled(void)
{
    return g_dest != NULL;
}

int export_init(void)
{
    export_opts_ready();
    clock_gettime(CLOCK_REALTIME, &g_start);
    if (!g_dest || strncmp(g_dest, "s3://", 5) == 0)
        return 0;
    struct stat st;
    if (stat(g_dest, &st) != 0) {
        fprintf(stderr, "vdiskfs: export=%s: %s\n", g_dest, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "vdiskfs: export=%s: not a directory\n", g_dest);
        return -1;
    }
    /* The daemon chdirs to /: keep an absolute path. */
    char *abs = realpath(g_dest, NULL);
    if (!abs) {
        fprintf(stderr, "vdiskfs: export=%s: %s\n", g_dest, strerror(errno));
        return -1;
    }
    free(g_dest);
    g_dest = abs;
    return 0;
}

/* ---- entries ---- */

static struct xfile *xfind(const char *name)
{
    for (struct xfile *x = g_files; x; x = x->next)
        if (strcmp(x->name, name) == 0)
            return x;
    return NULL;
}

static void xunlist(struct xfile *x)
{
    for (struct xfile **p = &g_files; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            x->listed = false;
            return;
        }
}

/* Drop a reference; g_lock held. */
static void xput(struct xfile *x)
{
    if (--x->refs > 0)
        return;
    if (x->e)
        vd_export_abort(x->e);
    pthread_rwlock_destroy(&x->rw);
    free(x->name);
    free(x);
}

static bool valid_name(const char *name)
{
    return *name && !strchr(name, '/') && name[0] != '.';
}

/* Start a fresh export for x (g_lock held, x not writing). */
static int xstart(struct xfile *x)
{
    struct vd_error err = {0};
    const char *fmt = vd_export_format_for(x->name);
    char *dest = NULL;
    size_t dl = strlen(g_dest);
    bool slash = dl && g_dest[dl - 1] == '/';
    if (asprintf(&dest, "%s%s%s", g_dest, slash ? "" : "/", x->name) < 0)
        return -ENOMEM;
    int r = vd_export_begin(dest, fmt, &g_opts, &x->e, &err);
    free(dest);
    x->gen++;
    x->hashing = false;
    x->sha[0] = '\0';
    x->out_bytes = 0;
    clock_gettime(CLOCK_REALTIME, &x->mtime);
    if (r < 0) {
        x->e = NULL;
        x->state = X_ERROR;
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        return r;
    }
    x->msg[0] = '\0';
    x->dirty = false;
    x->had_data = false;
    x->state = X_WRITING;
    return 0;
}

/* The process (thread group) of the calling thread: FUSE reports thread ids,
 * and a multithreaded writer may open and close on different threads. */
static pid_t caller_tgid(void)
{
    struct fuse_context *ctx = fuse_get_context();
    pid_t pid = ctx ? ctx->pid : 0, tgid = pid;
    char path[64], line[128];
    if (pid <= 0)
        return pid;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return pid;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Tgid: %d", &tgid) == 1)
            break;
    fclose(f);
    return tgid;
}

static bool all_zero(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i])
            return false;
    return true;
}

/* Start over with a virtual size already set (g_lock held). */
static int xrestart_sized(struct xfile *x, uint64_t size)
{
    struct vd_error err = {0};
    int r = xstart(x);
    if (r == 0 && size && (r = vd_export_truncate(x->e, size, &err)) < 0)
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
    return r;
}

static int xhandle_new(struct xfile *x, bool writer, struct fuse_file_info *fi)
{
    struct xhandle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->x = x;
    h->pid = caller_tgid();
    h->writer = writer;
    x->refs++;
    if (writer)
        x->writers++;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1; /* no page cache: sizes change under the kernel */
    return 0;
}

static struct xhandle *xhandle(struct fuse_file_info *fi)
{
    return fi ? (struct xhandle *)(uintptr_t)fi->fh : NULL;
}

struct xinval {
    struct fuse *fuse;
    char path[PATH_MAX];
};

static void *xinval_thread(void *arg)
{
    struct xinval *iv = arg;
    fuse_invalidate_path(iv->fuse, iv->path);
    free(iv);
    return NULL;
}

/* The size jumps from the virtual size to the output's when an export
 * finishes: drop the kernel's cached attributes. Not from this request's
 * thread (libfuse: notifications from a related op may deadlock). */
static void xinvalidate(const char *name)
{
    struct fuse_context *ctx = fuse_get_context();
    struct xinval *iv = ctx && ctx->fuse ? calloc(1, sizeof(*iv)) : NULL;
    pthread_t t;
    if (!iv)
        return;
    iv->fuse = ctx->fuse;
    snprintf(iv->path, sizeof(iv->path), "/export/%s", name);
    if (pthread_create(&t, NULL, xinval_thread, iv) == 0)
        pthread_detach(t);
    else
        free(iv);
}

struct xhash {
    struct xfile *x; /* holds a reference */
    unsigned gen;
    struct vd_source *out;
};

static int xhash_progress(void *opaque, uint64_t done, uint64_t total)
{
    (void)opaque, (void)done, (void)total;
    return __atomic_load_n(&g_stopping, __ATOMIC_RELAXED);
}

static void *xhash_thread(void *arg)
{
    struct xhash *h = arg;
    struct vd_error err = {0};
    char hex[129];
    int r = vd_image_hash(vd_source_disk(h->out, 0), "sha256", hex, xhash_progress, NULL, &err);
    vd_source_close(h->out);
    if (r < 0 && r != -ECANCELED)
        fprintf(stderr, "vdiskfs: %s: digest of the output: %s\n", h->x->name, err.msg);
    pthread_mutex_lock(&g_lock);
    if (h->x->gen == h->gen && h->x->hashing) {
        h->x->hashing = false;
        snprintf(h->x->sha, sizeof(h->x->sha), "%.64s", r == 0 ? hex : "-");
    }
    g_hashers--;
    pthread_cond_broadcast(&g_hash_cv);
    xput(h->x);
    pthread_mutex_unlock(&g_lock);
    free(h);
    return NULL;
}

/* x just finished without a streamed digest: hash its local output in the
 * background (g_lock held). The output is opened here, so a later export
 * renamed over the same name cannot be hashed in its place. */
static void xhash_start(struct xfile *x)
{
    struct vd_open_opts oo = {.format = "raw"};
    struct vd_error err = {0};
    struct xhash *h = NULL;
    char *path = NULL;
    pthread_t t;
    snprintf(x->sha, sizeof(x->sha), "-");
    if (strncmp(g_dest, "s3://", 5) == 0 || g_stopping)
        return;
    size_t dl = strlen(g_dest);
    if (asprintf(&path, "%s%s%s", g_dest, dl && g_dest[dl - 1] == '/' ? "" : "/", x->name) < 0)
        return;
    if (!(h = calloc(1, sizeof(*h))) || vd_source_open(path, &oo, &h->out, &err) < 0) {
        if (h)
            fprintf(stderr, "vdiskfs: %s: digest of the output: %s\n", x->name, err.msg);
        free(h);
        free(path);
        return;
    }
    free(path);
    h->x = x;
    h->gen = x->gen;
    x->refs++;
    x->hashing = true;
    x->sha[0] = '\0';
    g_hashers++;
    if (pthread_create(&t, NULL, xhash_thread, h) == 0) {
        pthread_detach(t);
        return;
    }
    g_hashers--;
    x->refs--;
    x->hashing = false;
    snprintf(x->sha, sizeof(x->sha), "-");
    vd_source_close(h->out);
    free(h);
}

/* Finish (or abort, when unlisted) x's export. Caller holds no lock. */
static int xfinish(struct xfile *x)
{
    struct vd_error err = {0};
    uint64_t bytes = 0;
    char sha[65] = "";
    int r;
    pthread_rwlock_wrlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    struct vd_export *e = x->state == X_WRITING ? x->e : NULL;
    bool abort_it = !x->listed;
    if (e) {
        x->snap_size = vd_export_size(e);
        x->snap_out = vd_export_output_bytes(e);
    }
    x->e = NULL;
    pthread_mutex_unlock(&g_lock);
    if (!e) {
        pthread_rwlock_unlock(&x->rw);
        return x->state == X_ERROR ? -EIO : 0;
    }
    if (abort_it) {
        vd_export_abort(e);
        r = vd_err(&err, -ECANCELED, "export: %s: removed before it was finished", x->name);
    } else {
        r = vd_export_finish(e, &bytes, sha, &err);
    }
    pthread_mutex_lock(&g_lock);
    if (r < 0) {
        x->state = X_ERROR;
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
    } else {
        x->state = X_DONE;
        x->out_bytes = bytes;
        if (sha[0])
            snprintf(x->sha, sizeof(x->sha), "%s", sha);
        else
            xhash_start(x);
    }
    clock_gettime(CLOCK_REALTIME, &x->mtime);
    pthread_mutex_unlock(&g_lock);
    pthread_rwlock_unlock(&x->rw);
    if (!abort_it)
        xinvalidate(x->name);
    return r;
}

/* ---- FUSE ops ---- */

int export_getattr(const char *name, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_uid = getuid();
    st->st_gid = getgid();
    if (!*name) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        st->st_mtim = st->st_ctim = st->st_atim = g_start;
        return 0;
    }
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (x) {
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
        /* A finished export lists its output's size, except one holding
         * only zeros (a created and sized file about to be reopened, as
         * qemu-img convert does): it lists the size it was given, which
         * the reopen continues from. */
        uint64_t size;
        if (x->state == X_DONE)
            size = x->had_data ? x->out_bytes : x->snap_size;
        else if (x->state == X_ERROR)
            size = 0;
        else
            size = x->e ? vd_export_size(x->e) : x->snap_size;
        st->st_size = (off_t)size;
        st->st_blocks = (st->st_size + 511) / 512;
        /* cp sizes its buffer from st_blksize: 1 MiB writes (the max_write
         * vdiskfs negotiates) cost an eighth of the FUSE round trips. */
        st->st_blksize = 1 << 20;
        st->st_mtim = st->st_ctim = st->st_atim = x->mtime;
    }
    pthread_mutex_unlock(&g_lock);
    return x ? 0 : -ENOENT;
}

int export_readdir(const char *name, void *buf, fuse_fill_dir_t filler)
{
    if (*name)
        return -ENOTDIR;
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    pthread_mutex_lock(&g_lock);
    for (struct xfile *x = g_files; x; x = x->next)
        filler(buf, x->name, NULL, 0, 0);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

int export_create(const char *name, mode_t mode, struct fuse_file_info *fi)
{
    if (!valid_name(name))
        return -EINVAL;
    if (!vd_export_format_for(name))
        return -EINVAL; /* the extension picks the format */
    int r;
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (x && x->state == X_WRITING) {
        r = -EBUSY;
        goto out;
    }
    if (x) { /* replace a finished entry */
        xunlist(x);
        xput(x);
    }
    x = calloc(1, sizeof(*x));
    if (!x || !(x->name = strdup(name))) {
        free(x);
        r = -ENOMEM;
        goto out;
    }
    pthread_rwlock_init(&x->rw, NULL);
    x->refs = 1;
    r = xstart(x);
    if (r < 0) {
        xput(x);
        goto out;
    }
    x->listed = true;
    x->next = g_files;
    g_files = x;
    r = xhandle_new(x, true, fi);
out:
    pthread_mutex_unlock(&g_lock);
    return r;
}

int export_open(const char *name, struct fuse_file_info *fi)
{
    int r;
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (!x) {
        r = -ENOENT;
    } else if ((fi->flags & O_ACCMODE) == O_RDONLY) {
        r = -EACCES; /* export files are write-only */
    } else {
        /* O_TRUNC on a finished export starts it over; so does opening one
         * that holds only zeros, at the same size, which loses nothing
         * (`qemu-img convert` creates the file, sizes it, zeroes its first
         * 4 KiB, closes it, then opens it again to write). A finished image
         * with data cannot be modified. */
        if (x->state == X_WRITING)
            r = 0;
        else if (fi->flags & O_TRUNC)
            r = xstart(x);
        else if (x->state == X_DONE && !x->had_data)
            r = xrestart_sized(x, x->snap_size);
        else
            r = -EBUSY;
        if (r == 0)
            r = xhandle_new(x, true, fi);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

int export_read(const char *name, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    return -EBADF;
}

int export_write(const char *name, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    struct xhandle *h = xhandle(fi);
    struct vd_error err = {0};
    if (!h || !h->writer)
        return -EBADF;
    struct xfile *x = h->x;
    pthread_rwlock_rdlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    struct vd_export *e = x->state == X_WRITING ? x->e : NULL;
    x->dirty = true;
    if (!x->had_data && !all_zero(buf, size))
        x->had_data = true;
    pthread_mutex_unlock(&g_lock);
    int r = e ? vd_export_pwrite(e, buf, size, (uint64_t)off, &err) : -EIO;
    if (r < 0 && e) {
        pthread_mutex_lock(&g_lock);
        if (!x->msg[0])
            snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        pthread_mutex_unlock(&g_lock);
    }
    pthread_rwlock_unlock(&x->rw);
    return r < 0 ? r : (int)size;
}

int export_truncate(const char *name, off_t size, struct fuse_file_info *fi)
{
    struct vd_error err = {0};
    struct xhandle *h = xhandle(fi);
    int r = 0;
    if (size < 0)
        return -EINVAL;
    pthread_mutex_lock(&g_lock);
    struct xfile *x = h ? h->x : xfind(name);
    if (!x) {
        pthread_mutex_unlock(&g_lock);
        return -ENOENT;
    }
    if (x->state != X_WRITING) {
        /* truncate of a finished export to 0 (open without atomic O_TRUNC)
         * or of one that never got data starts it over at that size;
         * anything else cannot change a finished image. */
        r = size == 0                            ? xstart(x)
            : x->state == X_DONE && !x->had_data ? xrestart_sized(x, (uint64_t)size)
                                                 : -EPERM;
        pthread_mutex_unlock(&g_lock);
        return r;
    }
    x->refs++;
    pthread_mutex_unlock(&g_lock);
    pthread_rwlock_rdlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    struct vd_export *e = x->state == X_WRITING ? x->e : NULL;
    x->dirty = true;
    pthread_mutex_unlock(&g_lock);
    r = e ? vd_export_truncate(e, (uint64_t)size, &err) : -EIO;
    pthread_rwlock_unlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    if (r < 0 && e && !x->msg[0])
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
    xput(x);
    pthread_mutex_unlock(&g_lock);
    return r;
}

int export_flush(const char *name, struct fuse_file_info *fi)
{
    struct xhandle *h = xhandle(fi);
    if (!h || !h->writer || h->finished)
        return 0;
    pthread_mutex_lock(&g_lock);
    /* A flush is not always the last close: `cmd > file` does open, dup2,
     * close before writing anything, and a child exiting closes the fds
     * it inherited. Only a flush after data arrived, from the process that
     * opened this handle, of the last writable handle, finishes. */
    pid_t pid = caller_tgid();
    bool last = h->x->writers == 1 && h->x->state == X_WRITING && h->x->dirty && pid == h->pid;
    pthread_mutex_unlock(&g_lock);
    if (!last)
        return 0;
    h->finished = true;
    return xfinish(h->x);
}

int export_release(const char *name, struct fuse_file_info *fi)
{
    struct xhandle *h = xhandle(fi);
    if (!h)
        return 0;
    struct xfile *x = h->x;
    pthread_mutex_lock(&g_lock);
    bool finish = h->writer && --x->writers == 0 && x->state == X_WRITING;
    pthread_mutex_unlock(&g_lock);
    if (finish)
        (void)xfinish(x); /* no flush came (killed writer): errors go to the xattr */
    pthread_mutex_lock(&g_lock);
    xput(x);
    pthread_mutex_unlock(&g_lock);
    free(h);
    return 0;
}

int export_unlink(const char *name)
{
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (!x) {
        pthread_mutex_unlock(&g_lock);
        return -ENOENT;
    }
    xunlist(x);
    bool abort_now = x->state == X_WRITING && x->writers == 0;
    x->refs++;
    pthread_mutex_unlock(&g_lock);
    if (abort_now)
        (void)xfinish(x); /* unlisted: aborts */
    pthread_mutex_lock(&g_lock);
    x->refs--; /* the list's; ours keeps it alive */
    xput(x);   /* ours */
    pthread_mutex_unlock(&g_lock);
    return 0;
}

int export_getxattr(const char *name, const char *attr, char *value, size_t size)
{
    char status[VD_ERROR_MAX + 64];
    if (!*name || strcmp(attr, STATUS_XATTR) != 0)
        return -ENODATA; /* before any wait: ls -l asks for ACLs */
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (!x) {
        pthread_mutex_unlock(&g_lock);
        return -ENOENT;
    }
    x->refs++; /* an unlink while we wait must not free it */
    while (x->state == X_DONE && x->hashing)
        pthread_cond_wait(&g_hash_cv, &g_lock);
    if (x->state == X_DONE)
        snprintf(status, sizeof(status), "done %llu %s", (unsigned long long)x->out_bytes, x->sha);
    else if (x->state == X_ERROR || x->msg[0])
        snprintf(status, sizeof(status), "error: %s", x->msg);
    else
        snprintf(status, sizeof(status), "writing %llu",
                 (unsigned long long)(x->e ? vd_export_output_bytes(x->e) : x->snap_out));
    xput(x);
    pthread_mutex_unlock(&g_lock);
    size_t len = strlen(status);
    if (size == 0)
        return (int)len;
    if (size < len)
        return -ERANGE;
    memcpy(value, status, len);
    return (int)len;
}

int export_listxattr(const char *name, char *list, size_t size)
{
    static const char names[] = STATUS_XATTR; /* one name, NUL included */
    if (!*name)
        return 0;
    if (size == 0)
        return (int)sizeof(names);
    if (size < sizeof(names))
        return -ERANGE;
    memcpy(list, names, sizeof(names));
    return (int)sizeof(names);
}

off_t export_lseek(const char *name, off_t off, int whence, struct fuse_file_info *fi)
{
    struct stat st;
    int r = export_getattr(name, &st);
    if (r < 0)
        return r;
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    if (off < 0 || off >= st.st_size)
        return -ENXIO;
    return whence == SEEK_DATA ? off : st.st_size;
}

int export_fsync(const char *name, struct fuse_file_info *fi)
{
    struct xhandle *h = xhandle(fi);
    (void)name;
    if (!h || !h->writer)
        return 0;
    pthread_mutex_lock(&g_lock);
    if (h->x->state == X_WRITING && h->x->e)
        vd_export_fsync(h->x->e);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void export_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    __atomic_store_n(&g_stopping, true, __ATOMIC_RELAXED); /* digest threads: next MiB */
    while (g_hashers > 0)
        pthread_cond_wait(&g_hash_cv, &g_lock);
    for (struct xfile *x = g_files; x; x = x->next)
        if (x->state == X_WRITING && x->e) {
            vd_export_abort(x->e);
            x->e = NULL;
            x->state = X_ERROR;
            snprintf(x->msg, sizeof(x->msg), "export: %s: unmounted before it was finished",
                     x->name);
        }
    pthread_mutex_unlock(&g_lock);
}
