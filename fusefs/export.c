/*
 * The export/ directory of the mount (see export.h and docs/export.md).
 *
 * Every file created in export/ is one vd_export from <vdisk/export.h>,
 * whose format comes from the name's extension and whose output goes to
 * DEST/NAME (written unnamed or as DEST/.vdisk-XXXXXX and renamed, or an
 * S3 multipart upload).
 *
 * When the image is finished. An export commits only what its writers
 * finished, and a writer has finished when it closed the file itself or
 * exited without being killed by a signal. What FUSE shows: one OPEN per
 * open(2), a FLUSH per close(2) of any descriptor of it (dups and
 * inherited copies included, also the implicit closes of exit), sent by
 * the closing task and waited for by close(2), and one RELEASE, sent
 * asynchronously when the last reference to the open file is gone.
 *
 * - A FLUSH from a task killed by a signal aborts the export: the kernel
 *   closes a dying task's files in do_exit(), after it has set PF_EXITING
 *   and exit_code (the signal, /proc/TID/stat fields 9 and 52), so the
 *   daemon reads them while the task waits for the answer (xtask_read).
 * - A FLUSH from a live task finishes the export, so that close(2) - and
 *   so `cp` - sees any encode or upload error and DEST/NAME exists when
 *   close(2) returns, if it is the last writable handle, data or a
 *   truncate arrived, and no process still has a descriptor of the file
 *   open: /proc/PID/fd of the closing task first (bash's `printf >&3`
 *   closes a dup while fd 3 stays open), then of the tasks seen opening
 *   or writing it, then of every process created since the export
 *   started (a copy of a descriptor is inherited at fork, so a child
 *   holding one is younger than the open; every process once the export
 *   is older than 10 s, as pids may have wrapped) (xheld). When that
 *   cannot be told (another user's process and no right to look), the
 *   FLUSH leaves it to RELEASE.
 * - A RELEASE of the last writable handle finishes what is still
 *   unfinished (nothing was written, or the FLUSH could not tell).
 * - A descriptor the scan cannot see (passed over a Unix socket to an
 *   older process that has not written yet, opened through a bind mount
 *   or from another mount namespace, whose path differs) can
 *   still write after the export was finished: that write, or a truncate,
 *   fails with EIO, withdraws the committed output and turns the entry
 *   into an error, so no image that misses a writer's data stays at DEST.
 *
 * One writer at a time: opening with O_TRUNC (cp, >, tee, dd without
 * conv=notrunc) a name that is being written gets EBUSY, as does a
 * truncate that would drop what another handle wrote; opening it without
 * O_TRUNC joins the export (`exec 3>x; dd of=x conv=notrunc ...`).
 * A finished entry stays listed with the output's size, and the xattr
 * user.vdisk.status says "writing <output bytes>", "done <bytes> <sha256>"
 * or "error: <message>"; user.vdisk.progress the bytes written (of how
 * many, once sized), the rate and a note about the output. Refusals and
 * failures are logged too (vdfs_log): errno is all a writer sees.
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
 * running write. Nothing slow runs under `g_lock`: vd_export_begin (which
 * resolves S3 credentials, possibly running credential_process or asking
 * the instance metadata service), finish, abort and withdraw (S3 requests)
 * run with it dropped, the entry held by a reference and marked
 * X_STARTING or detached from its export first. Entries are reference
 * counted (the list holds one, each open handle one, each such operation
 * one), so an unlinked entry lives until its last close.
 */
#include <dirent.h>
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

#define STATUS_XATTR   "user.vdisk.status"
#define PROGRESS_XATTR "user.vdisk.progress"
#define XSEEN_MAX      8 /* tasks remembered per export */

/* include/linux/sched.h; /proc/PID/stat field 9 shows them. */
#define PF_EXITING 0x00000004u /* in do_exit() */
#define PF_SIGNALED                                                                                \
    0x00000400u /* killed by a signal (also set on the other                                       \
                   threads of any group exit) */

enum xstate {
    X_STARTING, /* vd_export_begin running without g_lock; e is NULL */
    X_WRITING,
    X_DONE,
    X_ERROR,
};

struct xfile {
    struct xfile *next;
    char *name;
    int refs;
    int writers; /* open writable handles of this generation */
    bool listed;
    bool dirty;       /* written or truncated since it started */
    bool had_data;    /* a non-zero byte was written since it started */
    bool withdrawing; /* X_ERROR, the committed output is being removed */
    enum xstate state;
    struct vd_export *e;          /* X_WRITING only; NULL while finishing */
    uint64_t snap_size, snap_out; /* sizes when finishing began */
    pthread_rwlock_t rw;
    unsigned gen; /* bumped by each start: stale handles and digests are ignored */
    bool hashing; /* X_DONE, digest thread running; getxattr waits (g_hash_cv) */
    mode_t mode;  /* the output's permission bits, from the create */
    /* Who may hold it, for xheld: the last pid allocated when it started,
     * and the tasks seen opening, writing or closing it. */
    long pid_mark;
    struct timespec started; /* CLOCK_MONOTONIC */
    pid_t seen[XSEEN_MAX];
    int nseen;
    bool seen_all;               /* more than XSEEN_MAX: scan every process */
    struct vd_export_result res; /* X_DONE: what was committed, to withdraw it */
    char sha[65];
    char msg[VD_ERROR_MAX]; /* X_ERROR, or the first failed write's message */
    struct timespec mtime;
    /* Progress (user.vdisk.progress): raw bytes the writers handed in
     * (atomic, not under g_lock), whether a truncate or a sized start gave
     * the virtual size, and when the export ended. */
    uint64_t in_bytes;
    bool sized;
    struct timespec ended; /* CLOCK_MONOTONIC; zero while writing */
};

struct xhandle {
    struct xfile *x;
    unsigned gen; /* the export this handle writes to */
    bool writer;
};

/* What /proc says about the task behind a FUSE request. */
struct xtask {
    pid_t tid;
    int killed; /* 0: alive or exiting normally; > 0: killed by that signal; -1: by a signal */
    char comm[32];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hash_cv = PTHREAD_COND_INITIALIZER; /* a digest thread ended */
static int g_hashers;                                       /* digest threads running */
static bool g_stopping;                                     /* unmount: cancel them */
static struct xfile *g_files;
static char *g_dest;
static struct vd_export_dir *g_dir; /* g_dest, resolved once (S3 credentials) */
static char *g_xdir; /* "<real mount point>/export/", as /proc/PID/fd links show it */
static struct vd_export_opts g_opts;
static bool g_opts_ready;
static struct timespec g_start; /* export/'s times: the mount's start */
/* -o export_vm=SOURCE.ova (docs/ova.md): every OVA exported here carries
 * that OVA's VM, and expects its disks one after the other. Read once at
 * export_init, immutable after. */
static char *g_vm_path;
static char *g_vm_ovf, *g_vm_name;
static size_t g_vm_ovf_len, g_vm_ndisks;
static uint64_t g_vm_sizes[64];

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
    if (strcmp(key, "export_vm") == 0) {
        if (!val || !*val) {
            fprintf(stderr, "vdiskfs: export_vm= needs an OVA whose VM the OVA exports keep\n");
            return -1;
        }
        free(g_vm_path);
        g_vm_path = strdup(val);
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

/* Load -o export_vm=: the OVA's descriptor and its disks' sizes. */
static int export_vm_load(void)
{
    struct vd_error err = {0};
    struct vd_source *src = NULL;
    size_t len = 0;
    if (vd_source_open(g_vm_path, &g_opts.remote, &src, &err) < 0) {
        vdfs_log("export_vm=%s: %s", g_vm_path, err.msg);
        return -1;
    }
    const char *ovf = vd_source_ovf_text(src, &len);
    g_vm_ndisks = vd_source_ndisks(src);
    if (!ovf || g_vm_ndisks == 0 || g_vm_ndisks > 64) {
        vdfs_log("export_vm=%s: %s", g_vm_path,
                 !ovf ? "not an OVA (no OVF descriptor): name the OVA whose VM to keep"
                      : "an OVA of 1 to 64 disks is needed");
        vd_source_close(src);
        return -1;
    }
    for (size_t i = 0; i < g_vm_ndisks; i++)
        g_vm_sizes[i] = vd_image_size(vd_source_disk(src, i));
    const char *name = vd_source_ovf_name(src);
    g_vm_ovf = malloc(len + 1);
    g_vm_name = strdup(name ? name : g_vm_path);
    if (g_vm_ovf)
        memcpy(g_vm_ovf, ovf, len);
    g_vm_ovf_len = len;
    vd_source_close(src);
    if (!g_vm_ovf || !g_vm_name) {
        fprintf(stderr, "vdiskfs: out of memory\n");
        return -1;
    }
    return 0;
}

int export_init(const char *mountpoint)
{
    export_opts_ready();
    clock_gettime(CLOCK_REALTIME, &g_start);
    if (!g_dest) {
        if (g_vm_path) {
            vdfs_log("export_vm= goes with export=DEST");
            return -1;
        }
        return 0;
    }
    if (g_vm_path && export_vm_load() < 0)
        return -1;
    /* The kernel shows a descriptor's file as its path from the root:
     * the mount point with symlinks resolved. */
    char *mnt = realpath(mountpoint, NULL);
    if (asprintf(&g_xdir, "%s/export/", mnt ? mnt : mountpoint) < 0) {
        free(mnt);
        fprintf(stderr, "vdiskfs: out of memory\n");
        return -1;
    }
    free(mnt);
    if (strncmp(g_dest, "s3://", 5) == 0) {
        /* Credentials once, now: an export/ create holds the directory's
         * lock in the kernel, so one that ran a credential_process (or
         * waited for the metadata service) would stall every lookup and
         * listing of export/ meanwhile. */
        struct vd_error err = {0};
        if (vd_export_dir_open(g_dest, &g_opts, &g_dir, &err) < 0) {
            vdfs_log("export=%s: %s", g_dest, err.msg);
            return -1;
        }
        return 0;
    }
    struct stat st;
    if (stat(g_dest, &st) != 0) {
        vdfs_log("export=%s: %s", g_dest, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        vdfs_log("export=%s: not a directory", g_dest);
        return -1;
    }
    /* The daemon chdirs to /: keep an absolute path. */
    char *abs = realpath(g_dest, NULL);
    if (!abs) {
        vdfs_log("export=%s: %s", g_dest, strerror(errno));
        return -1;
    }
    free(g_dest);
    g_dest = abs;
    struct vd_error err = {0};
    if (vd_export_dir_open(g_dest, &g_opts, &g_dir, &err) < 0) {
        vdfs_log("export=%s: %s", g_dest, err.msg);
        return -1;
    }
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

/* Drop a reference; g_lock held. Every path that ends an export detaches
 * and aborts it outside the lock first, so `e` is NULL here but for a bug. */
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

/* DEST/NAME or s3://bucket/prefix/NAME (malloc'd; NULL when out of memory). */
static char *xdest(const char *name)
{
    char *dest = NULL;
    size_t dl = strlen(g_dest);
    if (asprintf(&dest, "%s%s%s", g_dest, dl && g_dest[dl - 1] == '/' ? "" : "/", name) < 0)
        return NULL;
    return dest;
}

static bool all_zero(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i])
            return false;
    return true;
}

/* ---- who is closing, who still holds it ---- */

/* Read /proc/TID/stat of the task behind a request. While a task exits,
 * do_exit() sets PF_EXITING and its exit code (the signal number, plus
 * 0x80 for a core dump, when a signal killed it; status << 8 after
 * exit(2)) before exit_files() closes what it still has open, so a
 * FLUSH from a dying task shows both. exit_code reads 0 when we may not
 * ptrace-read the task (another user's, daemon not root); then the
 * PF_SIGNALED flag, always shown, decides, at the price of counting the
 * other threads of a multithreaded writer that called exit(2) as killed. */
static void xtask_read(struct xtask *t)
{
    struct fuse_context *ctx = fuse_get_context();
    char path[64], buf[1024];
    memset(t, 0, sizeof(*t));
    t->tid = ctx ? ctx->pid : 0;
    if (t->tid <= 0) /* a task outside our pid namespace: cannot tell */
        return;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)t->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    /* "pid (comm) state ...": comm may hold spaces and parentheses. */
    char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren)
        return;
    snprintf(t->comm, sizeof(t->comm), "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
    unsigned long long flags = 0;
    long long exit_code = 0;
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(close_paren + 1, " \n", &save); tok;
         tok = strtok_r(NULL, " \n", &save), field++) {
        if (field == 9)
            flags = strtoull(tok, NULL, 10);
        else if (field == 52)
            exit_code = strtoll(tok, NULL, 10);
    }
    if (!(flags & PF_EXITING))
        return;
    if (exit_code & 0x7f) {
        t->killed = (int)(exit_code & 0x7f);
        return;
    }
    bool may_read = geteuid() == 0 || (ctx && ctx->uid == geteuid());
    if (exit_code == 0 && (flags & PF_SIGNALED) && !may_read)
        t->killed = -1;
}

/* Does process PID have a descriptor open on PATH? 1 yes, 0 no (or it is
 * gone), -1 cannot tell (no right to look). Reading links never calls into
 * this mount: the kernel prints the path it has. */
static int xholds(const char *pid, const char *path)
{
    char dir[64], link[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
    DIR *d = opendir(dir);
    if (!d)
        return errno == EACCES || errno == EPERM ? -1 : 0;
    int r = 0;
    size_t pl = strlen(path);
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link));
        if (n == (ssize_t)pl && memcmp(link, path, pl) == 0)
            r = 1;
    }
    closedir(d);
    return r;
}

/* The last pid the kernel handed out in our pid namespace (it counts up
 * and wraps at pid_max), or -1 where /proc/sys/kernel/ns_last_pid is
 * missing (no CONFIG_CHECKPOINT_RESTORE). */
static long xlast_pid(void)
{
    char buf[32];
    int fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* Which processes a flush must look at besides the known ones: those
 * created since the export started (a copy of a descriptor is inherited
 * at fork, so any other holder is younger than the open), i.e. pids in the
 * cyclic range (mark, now]. A scan of every process instead when that
 * cannot be told: no ns_last_pid, the export older than XSCAN_ALL_AFTER
 * (pids may have wrapped around since), more holders seen than recorded. */
#define XSCAN_ALL_AFTER 10 /* seconds */
struct xscan {
    char path[PATH_MAX + 16]; /* "<mount>/export/NAME", as the kernel shows it */
    bool all;
    long mark, now;
    pid_t known[XSEEN_MAX + 1];
    int nknown;
};

static bool xscan_wants(const struct xscan *sc, long pid)
{
    if (sc->all)
        return true;
    if (sc->now >= sc->mark)
        return pid > sc->mark && pid <= sc->now;
    return pid > sc->mark || pid <= sc->now; /* wrapped at pid_max */
}

/* Is export/NAME still open anywhere, after the close being flushed? 1
 * yes, 0 no, -1 cannot tell. known[0] is the closing task: a dup closed
 * while another stays open, the common case, costs one directory. Then
 * the other known tasks (openers, writers), then the processes created
 * since the export started. */
static int xheld(const struct xscan *sc)
{
    char pid[24];
    int r = 0;
    for (int i = 0; i < sc->nknown && r == 0; i++) {
        snprintf(pid, sizeof(pid), "%d", (int)sc->known[i]);
        r = xholds(pid, sc->path);
        if (r < 0 && i > 0)
            r = 0; /* only the closing task's answer must be known */
    }
    DIR *d = r == 0 ? opendir("/proc") : NULL;
    struct dirent *de;
    while (d && r == 0 && (de = readdir(d)))
        if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
            xscan_wants(sc, strtol(de->d_name, NULL, 10)) &&
            xholds(de->d_name, sc->path) == 1) /* others we may not see: see the top */
            r = 1;
    if (d)
        closedir(d);
    return r;
}

/* Remember task tid as one that used x (g_lock held). Cheap for the
 * common case of one task writing: the last one seen is checked first. */
static void xsee(struct xfile *x, pid_t tid)
{
    if (tid <= 0 || (x->nseen && x->seen[x->nseen - 1] == tid))
        return;
    for (int i = 0; i < x->nseen; i++)
        if (x->seen[i] == tid)
            return;
    if (x->nseen == XSEEN_MAX)
        x->seen_all = true;
    else
        x->seen[x->nseen++] = tid;
}

/* What xheld needs for x, closed by task tid (g_lock held). */
static void xscan_init(struct xscan *sc, const struct xfile *x, const char *name, pid_t tid)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(sc->path, sizeof(sc->path), "%s%s", g_xdir ? g_xdir : "", name);
    sc->mark = x->pid_mark;
    sc->now = xlast_pid();
    sc->all = x->seen_all || sc->mark < 0 || sc->now < 0 ||
              now.tv_sec - x->started.tv_sec > XSCAN_ALL_AFTER;
    sc->nknown = 0;
    sc->known[sc->nknown++] = tid;
    for (int i = 0; i < x->nseen; i++)
        if (x->seen[i] != tid)
            sc->known[sc->nknown++] = x->seen[i];
}

/* ---- starting, finishing, aborting ---- */

static int xhandle_new(struct xfile *x, bool writer, struct fuse_file_info *fi)
{
    struct xhandle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    struct fuse_context *ctx = fuse_get_context();
    h->x = x;
    h->gen = x->gen;
    h->writer = writer;
    xsee(x, ctx ? ctx->pid : 0);
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

/* Start a fresh export for x at virtual size `size` and, with fi, open a
 * writable handle on it. g_lock held on entry and return, dropped while
 * vd_export_begin runs (it creates the output, and the file system may
 * be slow). x must not be starting or writing. On failure x may have been
 * freed (unlisted by an unlink meanwhile): the caller must not touch it. */
static int xstart_open(struct xfile *x, uint64_t size, struct fuse_file_info *fi)
{
    struct vd_error err = {0};
    struct vd_export *e = NULL;
    struct vd_export_opts o = g_opts;
    int r;
    x->state = X_STARTING;
    x->gen++;
    x->writers = 0;
    x->hashing = false;
    x->withdrawing = false;
    x->sha[0] = '\0';
    x->msg[0] = '\0';
    x->dirty = false;
    x->had_data = false;
    x->snap_size = x->snap_out = 0;
    __atomic_store_n(&x->in_bytes, 0, __ATOMIC_RELAXED);
    x->sized = size > 0;
    memset(&x->ended, 0, sizeof(x->ended));
    memset(&x->res, 0, sizeof(x->res));
    x->nseen = 0;
    x->seen_all = false;
    x->pid_mark = xlast_pid();
    clock_gettime(CLOCK_MONOTONIC, &x->started);
    clock_gettime(CLOCK_REALTIME, &x->mtime);
    x->refs++;
    o.mode = x->mode;
    const char *fmt = vd_export_format_for(x->name);
    if (g_vm_ovf && fmt && !strcmp(fmt, "ova")) {
        o.ova_source_ovf = g_vm_ovf;
        o.ova_source_ovf_len = g_vm_ovf_len;
        o.ova_source_name = g_vm_name;
        o.ova_disk_sizes = g_vm_sizes;
        o.ova_ndisks = g_vm_ndisks;
    }
    pthread_mutex_unlock(&g_lock);
    r = vd_export_begin_in(g_dir, x->name, fmt, &o, &e, &err);
    if (r == 0 && size && (r = vd_export_truncate(e, size, &err)) < 0) {
        vd_export_abort(e);
        e = NULL;
    }
    pthread_mutex_lock(&g_lock);
    if (r == 0 && fi && (r = xhandle_new(x, true, fi)) < 0)
        vd_err(&err, r, "export: %s: out of memory", x->name);
    if (r == 0 && !fi && !x->listed)
        r = vd_err(&err, -ECANCELED, "export: %s: removed before it was finished", x->name);
    if (r < 0) {
        x->state = X_ERROR;
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        vdfs_log("export/%s: refused: %s", x->name, err.msg);
        if (e) {
            pthread_mutex_unlock(&g_lock);
            vd_export_abort(e);
            pthread_mutex_lock(&g_lock);
        }
    } else {
        x->e = e;
        x->state = X_WRITING;
        if (size)
            x->dirty = true; /* a sized start (qemu-img's reopen) counts as a truncate */
    }
    xput(x);
    return r;
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
        vdfs_log("export/%s: digest of the output: %s", h->x->name, err.msg);
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
    if (!x->res.local || g_stopping || !(path = xdest(x->name)))
        return;
    if (!(h = calloc(1, sizeof(*h))) || vd_source_open(path, &oo, &h->out, &err) < 0) {
        if (h)
            vdfs_log("export/%s: digest of the output: %s", x->name, err.msg);
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

/* Finish (or abort, when unlisted) generation gen of x's export, if at
 * most max_writers handles are still open on it (the closing one, for a
 * flush: a join since it looked must not be cut off). Caller holds no
 * lock. Returns what close(2) should see. */
static int xfinish(struct xfile *x, unsigned gen, int max_writers)
{
    struct vd_export_result res;
    struct vd_error err = {0};
    int r;
    pthread_rwlock_wrlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    struct vd_export *e =
        x->gen == gen && x->state == X_WRITING && x->writers <= max_writers ? x->e : NULL;
    bool abort_it = !x->listed;
    if (e) {
        x->snap_size = vd_export_size(e);
        x->snap_out = vd_export_output_bytes(e);
        x->e = NULL;
    }
    r = x->gen == gen && x->state == X_ERROR ? -EIO : 0;
    pthread_mutex_unlock(&g_lock);
    if (!e) {
        pthread_rwlock_unlock(&x->rw);
        return r;
    }
    if (abort_it) {
        vd_export_abort(e);
        r = vd_err(&err, -ECANCELED, "export: %s: removed before it was finished", x->name);
    } else {
        r = vd_export_commit(e, &res, &err);
    }
    pthread_mutex_lock(&g_lock);
    clock_gettime(CLOCK_MONOTONIC, &x->ended);
    if (r < 0) {
        x->state = X_ERROR;
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        if (!abort_it)
            vdfs_log("export/%s: failed: %s", x->name, err.msg);
    } else {
        x->state = X_DONE;
        x->res = res;
        if (res.sha256[0])
            snprintf(x->sha, sizeof(x->sha), "%s", res.sha256);
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

/* Generation gen of x did not get all its writers' data: abort it while it
 * is being written, or withdraw its committed output once finished; the
 * entry shows `msg` as its error. Caller holds no lock. */
static void xfail(struct xfile *x, unsigned gen, const char *msg)
{
    struct vd_export_result res;
    struct vd_error err = {0};
    pthread_rwlock_wrlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    if (x->gen != gen || (x->state != X_WRITING && x->state != X_DONE)) {
        pthread_mutex_unlock(&g_lock);
        pthread_rwlock_unlock(&x->rw);
        return;
    }
    bool done = x->state == X_DONE;
    struct vd_export *e = x->e;
    if (e) {
        x->snap_size = vd_export_size(e);
        x->snap_out = vd_export_output_bytes(e);
    }
    x->e = NULL;
    res = x->res;
    x->state = X_ERROR;
    x->hashing = false; /* a digest still running is dropped */
    x->withdrawing = done;
    x->refs++;
    clock_gettime(CLOCK_MONOTONIC, &x->ended);
    snprintf(x->msg, sizeof(x->msg), "%s", msg);
    clock_gettime(CLOCK_REALTIME, &x->mtime);
    pthread_cond_broadcast(&g_hash_cv);
    pthread_mutex_unlock(&g_lock);
    char *dest = done ? xdest(x->name) : NULL;
    int r = 0;
    if (e)
        vd_export_abort(e);
    else if (done)
        r = dest ? vd_export_withdraw(dest, &g_opts, &res, &err)
                 : vd_err(&err, -ENOMEM, "export: %s: out of memory", x->name);
    free(dest);
    pthread_rwlock_unlock(&x->rw);
    pthread_mutex_lock(&g_lock);
    x->withdrawing = false;
    if (r < 0 && r != -ENOENT) {
        size_t n = strlen(x->msg);
        snprintf(x->msg + n, sizeof(x->msg) - n, "; removing the output failed: %s", err.msg);
    }
    vdfs_log("%s", x->msg); /* it names the output and says what to do */
    xput(x);
    pthread_mutex_unlock(&g_lock);
    xinvalidate(x->name);
}

/* "signal 9 (SIGKILL)", or "a signal" when /proc could not say which. */
static void xsigname(int sig, char *out, size_t len)
{
    const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;
    if (sig <= 0)
        snprintf(out, len, "a signal");
    else
        snprintf(out, len, "signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
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
            size = x->had_data ? x->res.bytes : x->snap_size;
        else if (x->state == X_ERROR || x->state == X_STARTING)
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

/* In a transition nobody may join or restart: starting, finishing (the
 * export detached by xfinish, still X_WRITING) or withdrawing (no new
 * output may be committed under a withdraw). */
static bool xmoving(const struct xfile *x)
{
    return x->state == X_STARTING || (x->state == X_WRITING && !x->e) || x->withdrawing;
}

/* Being written: in a transition, or a writable handle is open. */
static bool xbusy(const struct xfile *x)
{
    return xmoving(x) || (x->state == X_WRITING && x->writers > 0);
}

int export_create(const char *name, mode_t mode, struct fuse_file_info *fi)
{
    if (!valid_name(name)) {
        vdfs_log("export/%s: refused: not a name export/ takes (one component, not starting "
                 "with '.')",
                 name);
        return -EINVAL;
    }
    const char *fmt = vd_export_format_for(name);
    if (!fmt) { /* the extension picks the format */
        const char *dot = strrchr(name, '.');
        vdfs_log("export/%s: refused: unknown format '%s'; the extension picks the format: "
                 ".vmdk, .vhd, .vhdx, .ova, .raw or .img",
                 name, dot ? dot + 1 : "");
        return -EINVAL;
    }
    if (!strcmp(fmt, "ova") && g_vm_ndisks > 1 && !strncmp(g_dest, "s3://", 5)) {
        /* src/export/ova.c patches each member's tar header in place, which
         * an S3 upload cannot do; it would only say so once the data came. */
        vdfs_log("export/%s: refused: an OVA of %zu disks (export_vm=%s) cannot be written to "
                 "S3 (each disk's size is patched into the archive in place); write it to a "
                 "local file (export=DIR, or `vdisk convert SOURCE.ova FILE.ova`) and upload "
                 "that",
                 name, g_vm_ndisks, g_vm_path);
        return -EOPNOTSUPP;
    }
    struct fuse_context *ctx = fuse_get_context();
    int r;
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (x && (xbusy(x) || x->state == X_WRITING)) {
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
    /* The output gets the mode the creator asked for under its umask, as a
     * file it created in DEST would (the kernel masks `mode` already unless
     * the filesystem asked it not to; masking again is harmless). */
    x->mode = mode & 0777 & ~(ctx ? ctx->umask : 022);
    x->listed = true;
    x->next = g_files;
    g_files = x;
    r = xstart_open(x, 0, fi);
out:
    pthread_mutex_unlock(&g_lock);
    if (r == -EBUSY)
        vdfs_log("export/%s: refused: it is being written by another descriptor; wait for "
                 "it to be closed, or write under another name",
                 name);
    return r;
}

int export_open(const char *name, struct fuse_file_info *fi)
{
    static const char busy[] = "it is being written by another descriptor; wait for it to be "
                               "closed, or write under another name";
    const char *why = NULL; /* a refusal, logged */
    int r;
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (!x) {
        r = -ENOENT;
    } else if ((fi->flags & O_ACCMODE) == O_RDONLY) {
        r = -EACCES; /* export files are write-only */
        why = "export files are write-only; read the output at DEST";
    } else if (xmoving(x)) {
        r = -EBUSY;
        why = "it is being started or finished; try again";
    } else if (xbusy(x)) {
        /* Another writer has it: O_TRUNC would drop its data, so only a
         * descriptor that keeps it (dd conv=notrunc) may join. */
        r = fi->flags & O_TRUNC ? -EBUSY : xhandle_new(x, true, fi);
        why = r == -EBUSY ? busy : NULL;
    } else if (x->state == X_WRITING) {
        /* Started by a truncate(2) of the path, no handle yet. */
        r = xhandle_new(x, true, fi);
        if (r == 0 && (fi->flags & O_TRUNC)) {
            struct vd_error err = {0};
            if (vd_export_truncate(x->e, 0, &err) < 0)
                snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        }
    } else if (fi->flags & O_TRUNC) {
        /* O_TRUNC on a finished export starts it over. */
        r = xstart_open(x, 0, fi);
    } else if (x->state == X_DONE && !x->had_data) {
        /* So does opening one that holds only zeros, at the same size,
         * which loses nothing (`qemu-img convert` creates the file, sizes
         * it, zeroes its first 4 KiB, closes it, then opens it again to
         * write). A finished image with data cannot be modified. */
        r = xstart_open(x, x->snap_size, fi);
    } else {
        r = -EBUSY;
        why = "a finished export cannot be modified; open it with O_TRUNC (cp, >) to write "
              "it again";
    }
    pthread_mutex_unlock(&g_lock);
    if (why)
        vdfs_log("export/%s: refused: %s", name, why);
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
    bool current = x->gen == h->gen;
    struct vd_export *e = current && x->state == X_WRITING ? x->e : NULL;
    bool late = current && x->state == X_DONE;
    if (e) {
        struct fuse_context *ctx = fuse_get_context();
        x->dirty = true;
        if (!x->had_data && !all_zero(buf, size))
            x->had_data = true;
        xsee(x, ctx ? ctx->pid : 0);
    }
    pthread_mutex_unlock(&g_lock);
    int r = e ? vd_export_pwrite(e, buf, size, (uint64_t)off, &err) : -EIO;
    if (r >= 0) {
        /* No g_lock on the hot path: xprogress reads it atomically too. */
        __atomic_add_fetch(&x->in_bytes, size, __ATOMIC_RELAXED);
    } else if (e) {
        pthread_mutex_lock(&g_lock);
        bool first = !x->msg[0];
        if (first)
            snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        pthread_mutex_unlock(&g_lock);
        if (first)
            vdfs_log("export/%s: write of %zu bytes at %lld refused: %s", name, size,
                     (long long)off, err.msg);
    }
    pthread_rwlock_unlock(&x->rw);
    if (late) {
        char msg[VD_ERROR_MAX], *dest = xdest(name);
        snprintf(msg, sizeof(msg),
                 "export: %s: withdrawn: %zu bytes came at offset %lld after the last close "
                 "the mount could see had finished it (a descriptor passed over a socket, "
                 "opened through another path to the mount such as a bind mount, or held by "
                 "a process it may not inspect); write the image again",
                 dest ? dest : name, size, (long long)off);
        free(dest);
        xfail(x, h->gen, msg);
    }
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
    if (h && h->gen != x->gen) {
        pthread_mutex_unlock(&g_lock);
        return -EIO; /* the name was started over since this handle opened it */
    }
    if (h && x->state == X_DONE) {
        /* Finished at a close, and a descriptor we did not see changes it. */
        unsigned gen = h->gen;
        pthread_mutex_unlock(&g_lock);
        char msg[VD_ERROR_MAX], *dest = xdest(name);
        snprintf(msg, sizeof(msg),
                 "export: %s: withdrawn: truncated to %lld bytes after the last close the "
                 "mount could see had finished it; write the image again",
                 dest ? dest : name, (long long)size);
        free(dest);
        xfail(x, gen, msg);
        return -EIO;
    }
    if (h && x->state == X_ERROR) {
        pthread_mutex_unlock(&g_lock);
        return -EIO; /* this descriptor's export failed */
    }
    if (xmoving(x)) {
        pthread_mutex_unlock(&g_lock);
        return -EBUSY;
    }
    if (x->state != X_WRITING) {
        /* truncate of a finished export to 0 (open without atomic O_TRUNC)
         * or of one that never got data starts it over at that size;
         * anything else cannot change a finished image. */
        r = size == 0                            ? xstart_open(x, 0, NULL)
            : x->state == X_DONE && !x->had_data ? xstart_open(x, (uint64_t)size, NULL)
                                                 : -EPERM;
        pthread_mutex_unlock(&g_lock);
        return r;
    }
    /* Shrinking drops written data: refused while another handle writes
     * (dd without conv=notrunc opens, then truncates to its seek point). */
    if (x->dirty && (uint64_t)size < vd_export_size(x->e) && x->writers > (h ? 1 : 0)) {
        pthread_mutex_unlock(&g_lock);
        return -EBUSY;
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
    if (r == 0 && size > 0)
        x->sized = true;
    if (r < 0 && e && !x->msg[0]) {
        snprintf(x->msg, sizeof(x->msg), "%s", err.msg);
        vdfs_log("export/%s: truncate to %lld refused: %s", name, (long long)size, err.msg);
    }
    xput(x);
    pthread_mutex_unlock(&g_lock);
    return r;
}

int export_flush(const char *name, struct fuse_file_info *fi)
{
    struct xhandle *h = xhandle(fi);
    struct xtask t;
    if (!h || !h->writer)
        return 0;
    struct xfile *x = h->x;
    xtask_read(&t);
    if (t.killed) {
        /* The writer did not finish: whatever it still meant to write is
         * missing, so nothing may be committed. */
        char msg[VD_ERROR_MAX], sig[48], *dest = xdest(name);
        xsigname(t.killed, sig, sizeof(sig));
        snprintf(msg, sizeof(msg),
                 "export: %s: not committed: process %d (%s) was killed by %s while it had "
                 "export/%s open for writing; write the image again",
                 dest ? dest : name, (int)t.tid, t.comm, sig, name);
        free(dest);
        xfail(x, h->gen, msg);
        return 0;
    }
    struct xscan *sc = malloc(sizeof(*sc));
    if (!sc)
        return 0; /* the release finishes it */
    pthread_mutex_lock(&g_lock);
    bool current = x->gen == h->gen;
    int r = current && x->state == X_ERROR ? -EIO : 0;
    bool last = current && x->state == X_WRITING && x->writers == 1 && x->dirty;
    if (last)
        xscan_init(sc, x, name, t.tid);
    pthread_mutex_unlock(&g_lock);
    if (last && t.tid > 0 && xheld(sc) == 0)
        r = xfinish(x, h->gen, 1);
    /* else another descriptor stays open, or we cannot tell: later */
    free(sc);
    return r;
}

int export_release(const char *name, struct fuse_file_info *fi)
{
    struct xhandle *h = xhandle(fi);
    if (!h)
        return 0;
    struct xfile *x = h->x;
    pthread_mutex_lock(&g_lock);
    bool current = h->writer && x->gen == h->gen;
    bool finish = current && --x->writers == 0 && x->state == X_WRITING;
    pthread_mutex_unlock(&g_lock);
    if (finish)
        (void)xfinish(x, h->gen, 0); /* the last reference is gone: errors go to the xattr */
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
    unsigned gen = x->gen;
    x->refs++;
    pthread_mutex_unlock(&g_lock);
    if (abort_now)
        (void)xfinish(x, gen, 0); /* unlisted: aborts */
    pthread_mutex_lock(&g_lock);
    x->refs--; /* the list's; ours keeps it alive */
    xput(x);   /* ours */
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* user.vdisk.progress (g_lock held): raw bytes written, of how many when
 * the size is known, the rate since the export started, the output's
 * bytes, and a note about the output (a VHD's size rounded up). */
static void xprogress(const struct xfile *x, char *out, size_t len)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (x->ended.tv_sec || x->ended.tv_nsec)
        now = x->ended;
    double secs =
        (double)(now.tv_sec - x->started.tv_sec) + (double)(now.tv_nsec - x->started.tv_nsec) / 1e9;
    uint64_t in = __atomic_load_n(&x->in_bytes, __ATOMIC_RELAXED);
    double rate = secs > 0 ? (double)in / secs / 1e6 : 0;
    bool writing = x->state == X_WRITING || x->state == X_STARTING;
    uint64_t vsize = x->e ? vd_export_size(x->e) : x->snap_size;
    uint64_t out_bytes = x->state == X_DONE ? x->res.bytes
                         : x->e             ? vd_export_output_bytes(x->e)
                                            : x->snap_out;
    int n;
    if (writing && x->sized && vsize)
        n = snprintf(out, len, "written %llu of %llu bytes (%u%%), %.1f MB/s, output %llu bytes",
                     (unsigned long long)in, (unsigned long long)vsize,
                     (unsigned)(in >= vsize ? 100 : in * 100 / vsize), rate,
                     (unsigned long long)out_bytes);
    else
        n = snprintf(out, len, "written %llu bytes%s in %.1f s, %.1f MB/s, output %llu bytes",
                     (unsigned long long)in, writing ? " so far" : "", secs, rate,
                     (unsigned long long)out_bytes);
    if (n > 0 && (size_t)n < len && x->state == X_DONE && x->res.note[0])
        snprintf(out + n, len - (size_t)n, "; note: %s", x->res.note);
}

int export_getxattr(const char *name, const char *attr, char *value, size_t size)
{
    char status[VD_ERROR_MAX + 64];
    bool progress = strcmp(attr, PROGRESS_XATTR) == 0;
    if (!*name || (strcmp(attr, STATUS_XATTR) != 0 && !progress))
        return -ENODATA; /* before any wait: ls -l asks for ACLs */
    pthread_mutex_lock(&g_lock);
    struct xfile *x = xfind(name);
    if (!x) {
        pthread_mutex_unlock(&g_lock);
        return -ENOENT;
    }
    x->refs++; /* an unlink while we wait must not free it */
    while (!progress && x->state == X_DONE && x->hashing)
        pthread_cond_wait(&g_hash_cv, &g_lock);
    if (progress)
        xprogress(x, status, sizeof(status));
    else if (x->state == X_DONE)
        snprintf(status, sizeof(status), "done %llu %s", (unsigned long long)x->res.bytes, x->sha);
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
    static const char names[] = STATUS_XATTR "\0" PROGRESS_XATTR; /* each with its NUL */
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
    if (h->x->gen == h->gen && h->x->state == X_WRITING && h->x->e)
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
    for (;;) {
        struct vd_export *e = NULL;
        for (struct xfile *x = g_files; x && !e; x = x->next)
            if (x->state == X_WRITING && x->e) {
                e = x->e;
                x->e = NULL;
                x->state = X_ERROR;
                snprintf(x->msg, sizeof(x->msg), "export: %s: unmounted before it was finished",
                         x->name);
            }
        if (!e)
            break;
        pthread_mutex_unlock(&g_lock); /* S3: AbortMultipartUpload */
        vd_export_abort(e);
        pthread_mutex_lock(&g_lock);
    }
    pthread_mutex_unlock(&g_lock);
}
