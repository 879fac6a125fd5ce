/*
 * vdiskfs: the FUSE face of libvdisk. It maps paths to libvdisk calls and
 * nothing more; every format, io and encoder lives in the library.
 *
 * Layout (../docs/vdiskfs.1, DESIGN.md "Mount layout"):
 *
 *   MNT/<name>/disk.raw        flat view of a single-disk source
 *   MNT/<name>/diskN.raw       one per disk of an OVA, DiskSection order
 *   MNT/<name>/disk-pN.raw     partition N (diskN-pM.raw for several disks)
 *   MNT/<name>/lvm-VG-LV.raw   LVM2 logical volume LV of VG (docs/lvm.md)
 *   MNT/<name>/info.json       vd_source_info_json(), rendered per open
 *   MNT/<name>/<file>.ovf      OVA only: the descriptor as stored
 *   MNT/export/                with -o export=DEST (fusefs/export.c)
 *
 * The tree of sources is built once before mounting and never changes, so
 * lookups need no lock. Disks, partitions and LVs are the source's guest
 * block devices (vdisk/guest.h); reads map each range with vd_bdev_map
 * and go straight to vd_image_pread, which is thread-safe; the FUSE loop
 * is multithreaded.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "vdisk/guest.h"
#include "vdisk/overlay.h"
#include "vdisk/vdisk.h"
#include "export.h"
#include "viewperm.h"

#define VD_MAX_ALLOW 16 /* allow_path= directories */

enum node_kind { NODE_DEV, NODE_INFO, NODE_OVF };

struct node {
    char name[NAME_MAX + 1];
    enum node_kind kind;
    const struct vd_bdev *dev; /* DEV: a disk, partition or LV */
    uint64_t size;             /* DEV, OVF */
};

struct srcdir {
    char name[NAME_MAX + 1];
    struct vd_source *src;
    size_t nnodes;
    struct node *nodes;
    size_t nviews;
    struct vd_image **views; /* overlay= views of the source's disks, owned */
    struct vd_guest *guest;  /* block devices over the disks (or views) */
    struct viewperm perm;    /* owner and mode of this folder and its files */
};

static struct {
    size_t nsrc;
    struct srcdir *srcs;
    bool writable; /* disk files accept writes (rw, or overlay=) */
    bool foreground;
    struct vd_open_opts opts;            /* opts.writable: the sources themselves (rw only) */
    const char *allow[VD_MAX_ALLOW + 1]; /* allow_path=DIR..., NULL-terminated */
    size_t nallow;
    const char *overlay_path;
    struct vd_overlay *overlay;
    time_t mount_time;
    int notify_fd;        /* daemon mode: tells the waiting parent the mount is up */
    const char *log_path; /* -o log=FILE, as given */
    FILE *log;            /* opened before daemonizing, line-buffered */
    bool syslog;          /* a daemon, and /dev/log exists */
} g = {.notify_fd = -1};

/* Messages for the user (export.h): every refused operation and failed
 * export, with the file and the reason. In the foreground they go to
 * stderr; a daemon's stderr is /dev/null once the mount is up, so they go
 * to syslog when there is one (/dev/log: many containers have none) and
 * to the -o log=FILE file, opened before daemonizing. */
void vdfs_log(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (g.foreground || g.notify_fd >= 0) /* stderr is still the user's */
        fprintf(stderr, "vdiskfs: %s\n", msg);
    if (g.log) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        fprintf(g.log, "%s vdiskfs[%d]: %s\n", stamp, (int)getpid(), msg);
    }
    if (g.syslog)
        syslog(LOG_ERR, "%s", msg);
}

/* ---- building the tree ---- */

static int add_node(struct srcdir *d, const char *name, enum node_kind kind,
                    const struct vd_bdev *dev, uint64_t size)
{
    struct node *n = realloc(d->nodes, (d->nnodes + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    d->nodes = n;
    n = &d->nodes[d->nnodes++];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->kind = kind;
    n->dev = dev;
    n->size = size;
    return 0;
}

/* <name> = file name without its last extension; a clash gets -2, -3... */
static void dir_name_for(const char *uri, char *out, size_t len)
{
    const char *base = strrchr(uri, '/');
    base = base && base[1] ? base + 1 : uri;
    char tmp[NAME_MAX + 1];
    snprintf(tmp, sizeof(tmp), "%s", base);
    char *q = strchr(tmp, '?'); /* presigned URL query */
    if (q)
        *q = '\0';
    char *dot = strrchr(tmp, '.');
    if (dot && dot != tmp)
        *dot = '\0';
    if (!tmp[0] || !strcmp(tmp, "export") || !strcmp(tmp, ".") || !strcmp(tmp, ".."))
        snprintf(tmp, sizeof(tmp), "source");
    snprintf(out, len, "%s", tmp);
    for (int n = 2;; n++) {
        bool clash = false;
        for (size_t i = 0; i < g.nsrc; i++)
            if (!strcmp(g.srcs[i].name, out))
                clash = true;
        if (!clash)
            return;
        snprintf(out, len, "%.*s-%d", (int)(len - 12), tmp, n);
    }
}

static int add_source(const char *uri)
{
    struct vd_error err = {0};
    struct vd_source *src;
    if (vd_source_open(uri, &g.opts, &src, &err) < 0) {
        vdfs_log("%s", err.msg);
        return -1;
    }
    uint64_t size0 = vd_source_ndisks(src) ? vd_image_size(vd_source_disk(src, 0)) : 0;
    if (!strcmp(vd_source_format_chosen(src), "fallback") && size0 % 512)
        vdfs_log("warning: %s: no image format recognised, so it is shown as a raw disk, but "
                 "its %" PRIu64 " bytes are not a whole number of 512-byte sectors: is it a disk "
                 "image at all? (-o format=raw silences this)",
                 uri, size0);
    struct srcdir *dirs = realloc(g.srcs, (g.nsrc + 1) * sizeof(*dirs));
    if (!dirs) {
        vd_source_close(src);
        return -1;
    }
    g.srcs = dirs;
    struct srcdir *d = &g.srcs[g.nsrc];
    memset(d, 0, sizeof(*d));
    dir_name_for(uri, d->name, sizeof(d->name));
    d->src = src;
    viewperm_for_source(uri,
                        g.overlay    ? VIEWPERM_OVERLAY
                        : g.writable ? VIEWPERM_RW
                                     : VIEWPERM_RO,
                        &d->perm);
    g.nsrc++;

    size_t ndisks = vd_source_ndisks(src);
    struct vd_image **imgs = calloc(ndisks ? ndisks : 1, sizeof(*imgs));
    if (!imgs)
        return -1;
    for (size_t i = 0; i < ndisks; i++) {
        struct vd_image *img = vd_source_disk(src, i);
        char view[32];
        vd_source_disk_view_name(src, i, view, sizeof(view));
        if (g.overlay) {
            /* Writes go to the overlay; the source stays read-only. */
            struct vd_image **views = realloc(d->views, (d->nviews + 1) * sizeof(*views));
            char key[NAME_MAX + 40];
            if (!views)
                goto fail;
            d->views = views;
            snprintf(key, sizeof(key), "%s/%s", d->name, view);
            if (vd_overlay_attach(g.overlay, img, key, &img, &err) < 0) {
                vdfs_log("%s", err.msg);
                goto fail;
            }
            d->views[d->nviews++] = img;
        }
        if (g.writable && !vd_image_can_write(img)) {
            vdfs_log("%s: %s%s%s images cannot be written in place; mount read-only, keep the "
                     "changes in an overlay (-o overlay=FILE), or convert to a writable copy "
                     "(vdisk convert -O vhd) and mount that rw",
                     uri, vd_image_format(img), vd_image_subformat(img) ? " " : "",
                     vd_image_subformat(img) ? vd_image_subformat(img) : "");
            goto fail;
        }
        imgs[i] = img;
    }
    /* Disks, partitions and LVs: the guest names them as the files are
     * named (disk, disk2-p1, lvm-VG-LV). An LV that is not exposed is
     * only listed in info.json, with the reason. */
    if (vd_guest_open_images(imgs, ndisks, &d->guest, &err) < 0) {
        vdfs_log("%s: %s", uri, err.msg);
        goto fail;
    }
    free(imgs);
    for (size_t i = 0; i < vd_guest_nwarnings(d->guest); i++)
        vdfs_log("warning: %s: %s", uri, vd_guest_warning(d->guest, i));
    for (size_t i = 0; i < vd_guest_ndevs(d->guest); i++) {
        const struct vd_bdev *b = vd_guest_dev(d->guest, i);
        char name[NAME_MAX + 1];
        if (b->unsupported || strlen(b->name) + 4 > NAME_MAX)
            continue;
        snprintf(name, sizeof(name), "%s.raw", b->name);
        if (add_node(d, name, NODE_DEV, b, b->size) < 0)
            return -1;
    }
    size_t ovf_len;
    if (vd_source_ovf_text(src, &ovf_len)) {
        const char *ovf = vd_source_ovf_name(src);
        const char *base = strrchr(ovf, '/');
        if (add_node(d, base ? base + 1 : ovf, NODE_OVF, NULL, ovf_len) < 0)
            return -1;
    }
    return add_node(d, "info.json", NODE_INFO, NULL, 0);
fail:
    free(imgs);
    return -1;
}

/* ---- path resolution ---- */

static bool is_export(const char *path, const char **rest)
{
    if (!export_enabled() || strncmp(path, "/export", 7) || (path[7] && path[7] != '/'))
        return false;
    *rest = path[7] ? path + 8 : "";
    return true;
}

static struct srcdir *find_dir(const char *path, const char **rest)
{
    const char *p = path + 1;
    size_t len = strcspn(p, "/");
    for (size_t i = 0; i < g.nsrc; i++) {
        if (strlen(g.srcs[i].name) == len && !strncmp(g.srcs[i].name, p, len)) {
            *rest = p[len] ? p + len + 1 : "";
            return &g.srcs[i];
        }
    }
    return NULL;
}

static struct node *find_node(const char *path, struct srcdir **dir)
{
    const char *rest;
    struct srcdir *d = find_dir(path, &rest);
    if (!d || !rest[0] || strchr(rest, '/'))
        return NULL;
    for (size_t i = 0; i < d->nnodes; i++) {
        if (!strcmp(d->nodes[i].name, rest)) {
            if (dir)
                *dir = d;
            return &d->nodes[i];
        }
    }
    return NULL;
}

static char *render_info(struct srcdir *d, size_t *len)
{
    char *json = NULL;
    struct vd_error err = {0};
    if (vd_source_info_json_guest(d->src, d->guest, &json, &err) < 0) {
        vdfs_log("%s: info.json: %s", d->name, err.msg);
        return NULL;
    }
    *len = strlen(json);
    return json;
}

/* ---- FUSE operations ---- */

static void fill_times(struct stat *st)
{
    st->st_atime = st->st_mtime = st->st_ctime = g.mount_time;
    st->st_uid = getuid();
    st->st_gid = getgid();
}

/* The owner and mode of a view (viewperm.c): never wider than its source. */
static void set_view_attr(struct stat *st, mode_t type, const struct viewperm_attr *a)
{
    st->st_mode = type | a->mode;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
}

static int vfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    const char *rest;
    memset(st, 0, sizeof(*st));
    fill_times(st);
    if (!strcmp(path, "/")) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    if (is_export(path, &rest))
        return export_getattr(rest, st);
    struct srcdir *d = find_dir(path, &rest);
    if (!d)
        return -ENOENT;
    if (!rest[0]) {
        set_view_attr(st, S_IFDIR, &d->perm.dir);
        st->st_nlink = 2;
        return 0;
    }
    struct node *n = find_node(path, NULL);
    if (!n)
        return -ENOENT;
    bool disk = n->kind == NODE_DEV;
    set_view_attr(st, S_IFREG, disk ? &d->perm.disk : &d->perm.data);
    st->st_nlink = 1;
    st->st_size = (off_t)n->size;
    if (n->kind == NODE_INFO) {
        size_t len = 0;
        char *json = render_info(d, &len);
        free(json);
        st->st_size = (off_t)len;
    }
    st->st_blksize = 1 << 20; /* cp and other readers size buffers from it */
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    return 0;
}

static int vfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_readdir(rest, buf, filler);
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    if (!strcmp(path, "/")) {
        for (size_t i = 0; i < g.nsrc; i++)
            filler(buf, g.srcs[i].name, NULL, 0, 0);
        if (export_enabled())
            filler(buf, "export", NULL, 0, 0);
        return 0;
    }
    struct srcdir *d = find_dir(path, &rest);
    if (!d || rest[0])
        return -ENOENT;
    for (size_t i = 0; i < d->nnodes; i++)
        filler(buf, d->nodes[i].name, NULL, 0, 0);
    return 0;
}

/* Per-open state for generated files (info.json): the text is rendered once
 * per open so that a reader sees one consistent snapshot. */
struct open_text {
    char *text;
    size_t len;
};

static int vfs_open(const char *path, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_open(rest, fi);
    struct srcdir *d;
    struct node *n = find_node(path, &d);
    if (!n)
        return -ENOENT;
    int acc = fi->flags & O_ACCMODE;
    if (acc != O_RDONLY) {
        if (!g.writable || n->kind != NODE_DEV)
            return -EROFS;
    }
    fi->fh = 0;
    if (n->kind == NODE_INFO) {
        struct open_text *t = calloc(1, sizeof(*t));
        if (!t)
            return -ENOMEM;
        t->text = render_info(d, &t->len);
        if (!t->text) {
            free(t);
            return -EIO;
        }
        fi->fh = (uint64_t)(uintptr_t)t;
        fi->direct_io = 1; /* size changes between renders (io stats) */
    } else if (!g.writable) {
        fi->keep_cache = 1; /* read-only content never changes under us */
    }
    return 0;
}

static int vfs_release(const char *path, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_release(rest, fi);
    struct open_text *t = (struct open_text *)(uintptr_t)fi->fh;
    if (t) {
        free(t->text);
        free(t);
    }
    return 0;
}

static int vfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_read(rest, buf, size, off, fi);
    struct srcdir *d;
    struct node *n = find_node(path, &d);
    if (!n || off < 0)
        return -ENOENT;
    if (n->kind == NODE_INFO) {
        struct open_text *t = (struct open_text *)(uintptr_t)fi->fh;
        if (!t || (uint64_t)off >= t->len)
            return 0;
        size_t cnt = t->len - (size_t)off < size ? t->len - (size_t)off : size;
        memcpy(buf, t->text + off, cnt);
        return (int)cnt;
    }
    if ((uint64_t)off >= n->size)
        return 0;
    if (size > n->size - (uint64_t)off)
        size = (size_t)(n->size - (uint64_t)off);
    if (n->kind == NODE_OVF) {
        size_t len;
        const char *text = vd_source_ovf_text(d->src, &len);
        memcpy(buf, text + off, size);
        return (int)size;
    }
    struct vd_error err = {0};
    if (vd_bdev_pread(n->dev, buf, size, (uint64_t)off, &err) < 0) {
        vdfs_log("%s/%s: read of %zu bytes at %" PRId64 ": %s", d->name, n->name, size,
                 (int64_t)off, err.msg);
        return err.code == -ENOMEM ? -ENOMEM : -EIO;
    }
    return (int)size;
}

/* The vector libfuse frees (fuse_free_buf: memory segments, then it). */
static struct fuse_bufvec *bufvec_new(size_t nbufs)
{
    struct fuse_bufvec *bv = calloc(1, sizeof(*bv) + (nbufs - 1) * sizeof(bv->buf[0]));
    return bv;
}

static void bufvec_free(struct fuse_bufvec *bv)
{
    for (size_t i = 0; bv && i < bv->count; i++)
        if (!(bv->buf[i].flags & FUSE_BUF_IS_FD))
            free(bv->buf[i].mem);
    free(bv);
}

/* At most this many segments per read: a 1 MiB request spans a few VHD
 * or VHDX blocks; whatever is left after READ_SEGS - 1 is read into one
 * memory segment. */
#define READ_SEGS 16

/* Reads of disk and partition views: ranges stored contiguously in a local
 * file (vd_image_map) go back as fd segments, which libfuse splices into
 * /dev/fuse (one copy fewer than pread into a buffer); everything else
 * (compressed grains, zeros, parents, remote sources) is read into memory
 * segments by vd_image_pread. Other files go through vfs_read. */
static int vfs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
    const char *rest;
    struct srcdir *d = NULL;
    struct node *n = is_export(path, &rest) ? NULL : find_node(path, &d);
    struct vd_error err = {0};
    struct fuse_bufvec *bv;
    *bufp = NULL;
    if (!n || n->kind != NODE_DEV || off < 0) {
        bv = bufvec_new(1);
        void *mem = malloc(size ? size : 1);
        if (!bv || !mem) {
            free(bv);
            free(mem);
            return -ENOMEM;
        }
        int r = vfs_read(path, mem, size, off, fi);
        if (r < 0) {
            free(mem);
            free(bv);
            return r;
        }
        bv->count = 1;
        bv->buf[0].mem = mem;
        bv->buf[0].size = (size_t)r;
        *bufp = bv;
        return 0;
    }
    if (!(bv = bufvec_new(READ_SEGS)))
        return -ENOMEM;
    if ((uint64_t)off >= n->size)
        size = 0;
    else if (size > n->size - (uint64_t)off)
        size = (size_t)(n->size - (uint64_t)off);
    uint64_t pos = (uint64_t)off;
    size_t left = size;
    if (size == 0)
        bv->count = 1; /* one empty memory segment */
    while (left > 0) {
        struct fuse_buf *b = &bv->buf[bv->count];
        uint64_t run, fd_off = 0, img_off;
        struct vd_image *img;
        int fd = -1, m = 0;
        /* An LV's segment or stripe chunk ends a run. */
        if (vd_bdev_map(n->dev, pos, left, &img, &img_off, &run, &err) < 0)
            goto fail;
        if (bv->count < READ_SEGS - 1) {
            m = vd_image_map(img, img_off, run, &run, &fd, &fd_off, &err);
            if (m < 0)
                goto fail;
        } else {
            run = left; /* the rest in one memory segment */
        }
        if (m == 1) {
            b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
            b->fd = fd;
            b->pos = (off_t)fd_off;
        } else {
            if (!(b->mem = malloc((size_t)run))) {
                bufvec_free(bv);
                return -ENOMEM;
            }
            bv->count++; /* freed with the vector from here on */
            if (vd_bdev_pread(n->dev, b->mem, (size_t)run, pos, &err) < 0)
                goto fail;
            bv->count--;
        }
        b->size = (size_t)run;
        bv->count++;
        pos += run;
        left -= (size_t)run;
    }
    *bufp = bv;
    return 0;
fail:
    vdfs_log("%s/%s: read of %zu bytes at %" PRId64 ": %s", d->name, n->name, size, (int64_t)off,
             err.msg);
    bufvec_free(bv);
    return err.code == -ENOMEM ? -ENOMEM : -EIO;
}

/* The errno a writer gets for a failed disk write or flush: a full or
 * over-quota overlay filesystem is the writer's to know; other failures
 * are EIO. */
static int write_errno(int code)
{
    return code == -EROFS || code == -ENOSPC || code == -EDQUOT ? code : -EIO;
}

static int vfs_write(const char *path, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_write(rest, buf, size, off, fi);
    struct srcdir *d;
    struct node *n = find_node(path, &d);
    if (!n || off < 0)
        return -ENOENT;
    if (!g.writable || n->kind != NODE_DEV)
        return -EROFS;
    if ((uint64_t)off >= n->size)
        return -ENOSPC;
    if (size > n->size - (uint64_t)off)
        size = (size_t)(n->size - (uint64_t)off);
    struct vd_error err = {0};
    if (vd_bdev_pwrite(n->dev, buf, size, (uint64_t)off, &err) < 0) {
        vdfs_log("%s/%s: write of %zu bytes at %" PRId64 ": %s", d->name, n->name, size,
                 (int64_t)off, err.msg);
        return write_errno(err.code);
    }
    return (int)size;
}

/* Flush the disks under a device view: its own disk, or every disk of
 * the source for an LV (its PVs may lie on several). */
static int flush_node(const char *path, const char *what)
{
    struct srcdir *d;
    struct node *n = find_node(path, &d);
    if (!n || n->kind != NODE_DEV)
        return 0;
    for (unsigned k = 1; vd_guest_disk(d->guest, k); k++) {
        struct vd_error err = {0};
        if (n->dev->kind != VD_BDEV_LV && k != n->dev->disk)
            continue;
        if (vd_image_flush(vd_guest_disk(d->guest, k), &err) < 0) {
            vdfs_log("%s: %s: %s", path, what, err.msg);
            return write_errno(err.code);
        }
    }
    return 0;
}

static int vfs_flush(const char *path, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_flush(rest, fi);
    /* The close of a disk opened for writing is a flush point: an overlay's
     * new mappings reach its file here (see src/formats/overlay.c). */
    if (!g.writable || (fi->flags & O_ACCMODE) == O_RDONLY)
        return 0;
    return flush_node(path, "flush");
}

static int vfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_fsync(rest, fi);
    if (!g.writable)
        return 0;
    return flush_node(path, "fsync");
}

static int vfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_create(rest, mode, fi);
    return -EROFS;
}

static int vfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_truncate(rest, size, fi);
    struct node *n = find_node(path, NULL);
    if (!n)
        return -ENOENT;
    /* A disk's size is fixed; truncating to its own size is a no-op (cp
     * and dd conv=notrunc may do that). */
    if (g.writable && n->kind == NODE_DEV && (uint64_t)size == n->size)
        return 0;
    return g.writable ? -EPERM : -EROFS;
}

static int vfs_unlink(const char *path)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_unlink(rest);
    return -EROFS;
}

static int vfs_getxattr(const char *path, const char *name, char *value, size_t size)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_getxattr(rest, name, value, size);
    return -ENODATA;
}

static int vfs_listxattr(const char *path, char *list, size_t size)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_listxattr(rest, list, size);
    return 0;
}

static int vfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return 0; /* cp -p and touch: accepted, times are not stored */
    return g.writable ? 0 : -EROFS;
}

static int vfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    const char *rest;
    return is_export(path, &rest) ? 0 : -EROFS;
}

static int vfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    const char *rest;
    return is_export(path, &rest) ? 0 : -EROFS;
}

/* SEEK_DATA/SEEK_HOLE through the image's extent map, so `cp --sparse`
 * and other sparse-aware readers skip unallocated ranges cheaply. */
static off_t vfs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    const char *rest;
    if (is_export(path, &rest))
        return export_lseek(rest, off, whence, fi);
    struct node *n = find_node(path, NULL);
    if (!n)
        return -ENOENT;
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    if (off < 0 || (uint64_t)off >= n->size)
        return -ENXIO;
    if (n->kind != NODE_DEV)
        return whence == SEEK_DATA ? off : (off_t)n->size;
    uint64_t pos = (uint64_t)off;
    while (pos < n->size) {
        uint64_t len, img_off, run;
        struct vd_image *img;
        struct vd_error err = {0};
        int st = vd_bdev_map(n->dev, pos, n->size - pos, &img, &img_off, &run, &err);
        if (st == 0)
            st = vd_image_block_status(img, img_off, run, &len, &err);
        if (st < 0) {
            vdfs_log("%s: lseek: %s", path, err.msg);
            return -EIO;
        }
        bool data = st == VD_STATUS_DATA;
        if ((whence == SEEK_DATA) == data)
            return (off_t)pos;
        pos += len;
    }
    return whence == SEEK_DATA ? -ENXIO : (off_t)n->size;
}

/* Daemon mode: the mount is up, so release the parent that waits in
 * daemonize() with success, and detach from the terminal. */
static void notify_parent(void)
{
    if (g.notify_fd < 0)
        return;
    char ok = 0;
    if (write(g.notify_fd, &ok, 1) != 1)
        vdfs_log("cannot notify the parent process: %s", strerror(errno));
    close(g.notify_fd);
    g.notify_fd = -1;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
}

static void *vfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    notify_parent();
    cfg->use_ino = 0;
    /* rm of an export/ file still open must not try a hidden rename. */
    cfg->hard_remove = 1;
    cfg->entry_timeout = 60;
    cfg->attr_timeout = 1;
    cfg->negative_timeout = 1;
    /* Large sequential reads: let the kernel read ahead up to 1 MiB. */
    if (conn->max_readahead < (1u << 20))
        conn->max_readahead = 1u << 20;
    /* Raising max_write also raises the kernel's max_pages, which bounds
     * read requests too: 1 MiB requests instead of 128 KiB. */
    conn->max_write = 1u << 20;
    /* Let vfs_read_buf's fd segments be spliced (libfuse copies instead
     * when its pipe cannot grow to the request size). Not SPLICE_MOVE:
     * with it, reads of dynamic VHD/VHDX images got slower (0.37 s ->
     * 0.44 s per GiB), as if the image file's own cached pages were
     * stolen and then read again. */
    conn->want |= conn->capable & FUSE_CAP_SPLICE_WRITE;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    return NULL;
}

static void vfs_destroy(void *private_data)
{
    export_shutdown();
}

static const struct fuse_operations vfs_ops = {
    .init = vfs_init,
    .destroy = vfs_destroy,
    .getattr = vfs_getattr,
    .readdir = vfs_readdir,
    .open = vfs_open,
    .create = vfs_create,
    .read = vfs_read,
    .read_buf = vfs_read_buf,
    .write = vfs_write,
    .flush = vfs_flush,
    .fsync = vfs_fsync,
    .release = vfs_release,
    .truncate = vfs_truncate,
    .unlink = vfs_unlink,
    .getxattr = vfs_getxattr,
    .listxattr = vfs_listxattr,
    .utimens = vfs_utimens,
    .chmod = vfs_chmod,
    .chown = vfs_chown,
    .lseek = vfs_lseek,
};

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: vdiskfs [-f] [-d] [-o OPTIONS] SOURCE... MOUNTPOINT\n"
               "       vdiskfs -o export=DEST [-o OPTIONS] MOUNTPOINT     (export/ only)\n"
               "\n"
               "Mount VMDK, VHD, VHDX, OVA and raw images (local paths, s3://bucket/key or\n"
               "http(s):// URLs) as flat raw disks, one folder per SOURCE:\n"
               "  MOUNTPOINT/<name>/disk.raw, disk-pN.raw, info.json (see vdiskfs(1)).\n"
               "\n"
               "  -f                 stay in the foreground\n"
               "  -d                 debug: foreground and log every FUSE call\n"
               "  -s                 single-threaded\n"
               "  -h, --help         this help\n"
               "  -V, --version      version\n"
               "\n"
               "Options (-o a,b=c):\n"
               "  ro                 read-only (default): sources are never written\n"
               "  rw                 write through into images whose format allows it\n"
               "  allow_path=DIR     images may name extents and parents in DIR too (repeatable;\n"
               "                     by default only files beside the image are opened)\n"
               "  overlay=FILE       writable disks whose writes all go to FILE (created when\n"
               "                     absent); the sources are never written\n"
               "  format=FMT         skip probing (vmdk, vhd, vhdx, ova, raw)\n"
               "  log=FILE           append messages (refusals, failed exports) to FILE;\n"
               "                     also stderr with -f, syslog when /dev/log exists\n"
               "  export=DEST        show export/: files created there are encoded to DEST\n"
               "                     (a directory or s3://bucket/prefix/); see vdiskfs(1)\n"
               "  vmdk_type= vhd_type= vhdx_type= compress_level= ova_manifest=\n"
               "                     encoder options for export/\n"
               "  fsync=on           sync each export before renaming it into place\n"
               "  region= endpoint= profile= path_style cache_size= connections=\n"
               "                     S3 settings (default: the AWS environment)\n"
               "  allow_other ...    FUSE's own options go to FUSE (see mount.fuse3(8))\n");
}

static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        break;
    default:
        break;
    }
    return v;
}

/* Our -o names, for suggestions ("=" marks those that take a value):
 * handle_opt's, export.c's and vd_export_opt's (src/export/export.c). */
static const char *const our_opts[] = {"ro",
                                       "rw",
                                       "format=",
                                       "overlay=",
                                       "allow_path=",
                                       "log=",
                                       "region=",
                                       "endpoint=",
                                       "profile=",
                                       "path_style",
                                       "cache_size=",
                                       "export=",
                                       "export_vm=",
                                       "vmdk_type=",
                                       "vhd_type=",
                                       "vhdx_type=",
                                       "vhdx_block_size=",
                                       "compress_level=",
                                       "ova_manifest=",
                                       "threads=",
                                       "reorder_window=",
                                       "fsync=",
                                       "target=",
                                       "sector_size=",
                                       "vm_name=",
                                       "vm_cpus=",
                                       "vm_memory=",
                                       "vm_os=",
                                       "vm_firmware=",
                                       "vm_disk_bus=",
                                       "vm_nic=",
                                       "vm_hw_version=",
                                       NULL};

/* The mount options libfuse 3 and the kernel take (mount.fuse3(8),
 * fuse(8)); anything else is a typo, not a FUSE option. */
static const char *const fuse_known[] = {"allow_other",
                                         "allow_root",
                                         "auto_unmount",
                                         "default_permissions",
                                         "fsname=",
                                         "subtype=",
                                         "blkdev",
                                         "blksize=",
                                         "max_read=",
                                         "kernel_cache",
                                         "auto_cache",
                                         "noauto_cache",
                                         "umask=",
                                         "uid=",
                                         "gid=",
                                         "entry_timeout=",
                                         "negative_timeout=",
                                         "attr_timeout=",
                                         "ac_attr_timeout=",
                                         "noforget",
                                         "remember=",
                                         "nopath",
                                         "intr",
                                         "intr_signal=",
                                         "modules=",
                                         "hard_remove",
                                         "use_ino",
                                         "readdir_ino",
                                         "direct_io",
                                         "max_idle_threads=",
                                         "max_threads=",
                                         "clone_fd",
                                         "dev",
                                         "nodev",
                                         "suid",
                                         "nosuid",
                                         "exec",
                                         "noexec",
                                         "atime",
                                         "noatime",
                                         "relatime",
                                         "norelatime",
                                         "strictatime",
                                         "nodiratime",
                                         "sync",
                                         "async",
                                         "dirsync",
                                         "context=",
                                         "fscontext=",
                                         "defcontext=",
                                         "rootcontext=",
                                         "debug",
                                         NULL};

static const char *const formats[] = {"vmdk", "vhd", "vhdx", "ova", "raw", NULL};

/* Edit distance with adjacent transpositions (optimal string alignment):
 * "overlya" is one step from "overlay". Names are short (< 32). */
static size_t name_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[33][33];
    if (la > 32 || lb > 32)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

/* The entry of `list` nearest to `word` ("=" ignored), or NULL when none
 * is within 2 edits (1 for words of 4 letters or fewer: "foo" is not "ro"). */
static const char *nearest_name(const char *word, const char *const *list)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; list[i]; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(list[i], "="), list[i]);
        size_t dist = name_distance(word, name);
        if (dist < best_d && dist <= (strlen(word) <= 4 ? 1u : 2u)) {
            best = list[i];
            best_d = dist;
        }
    }
    return best;
}

static bool name_in(const char *word, const char *const *list)
{
    size_t len = strlen(word);
    for (size_t i = 0; list[i]; i++)
        if (!strncmp(list[i], word, len) && (!list[i][len] || list[i][len] == '='))
            return true;
    return false;
}

/* format=: one of ours, or a message listing them (and the nearest). */
static int check_format(const char *val)
{
    if (val && name_in(val, formats))
        return 0;
    const char *near = val && *val ? nearest_name(val, formats) : NULL;
    fprintf(stderr,
            "vdiskfs: format=%s: unknown format%s%s%s; the formats are vmdk, vhd, vhdx, "
            "ova, raw\n",
            val ? val : "", near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
    return -1;
}

/* Handle one -o item; unknown items are appended to fuse_opts. */
static int handle_opt(char *item, char *fuse_opts, size_t cap)
{
    char *val = strchr(item, '=');
    if (val)
        *val++ = '\0';
    if (!strcmp(item, "ro")) {
        g.writable = false;
    } else if (!strcmp(item, "rw")) {
        g.writable = true;
    } else if (!strcmp(item, "format")) {
        if (check_format(val) < 0)
            return -1;
        g.opts.format = strdup(val);
    } else if (!strcmp(item, "log")) {
        if (!val || !*val) {
            fprintf(stderr, "vdiskfs: log= needs a file name (messages are appended to it)\n");
            return -1;
        }
        g.log_path = strdup(val);
    } else if (!strcmp(item, "overlay")) {
        if (!val || !*val) {
            fprintf(stderr, "vdiskfs: overlay= needs a file name\n");
            return -1;
        }
        g.overlay_path = strdup(val);
    } else if (!strcmp(item, "allow_path")) {
        /* Where images may name extents and parents besides their own
         * directory (docs/trust-boundary.md); resolved now, before the
         * daemon leaves the working directory. */
        char *dir = val && *val ? realpath(val, NULL) : NULL;
        if (!dir || g.nallow == VD_MAX_ALLOW) {
            fprintf(stderr, "vdiskfs: allow_path=%s: %s\n", val ? val : "",
                    !val || !*val ? "needs a directory"
                    : dir         ? "too many directories"
                                  : strerror(errno));
            free(dir);
            return -1;
        }
        g.allow[g.nallow++] = dir;
        g.opts.allow_paths = g.allow;
    } else if (!strcmp(item, "region") && val) {
        g.opts.region = strdup(val);
    } else if (!strcmp(item, "endpoint") && val) {
        g.opts.endpoint = strdup(val);
    } else if (!strcmp(item, "profile") && val) {
        g.opts.profile = strdup(val);
    } else if (!strcmp(item, "path_style")) {
        g.opts.path_style = true;
    } else if (!strcmp(item, "cache_size") && val) {
        g.opts.cache_size = parse_size(val);
    } else if (!strcmp(item, "connections") && val) {
        /* S3 connections per source and per export (src/io/s3.c reads it). */
        if (atoi(val) < 1 || atoi(val) > 64) {
            fprintf(stderr, "vdiskfs: -o connections=%s: give a number from 1 to 64\n", val);
            return -1;
        }
        setenv("VD_S3_CONNECTIONS", val, 1);
    } else {
        int r = export_opt(item, val);
        if (r < 0)
            return -1;
        if (r == 0 && !name_in(item, fuse_known)) {
            /* Refused here rather than by FUSE's bare "unknown option(s)". */
            const char *near = nearest_name(item, our_opts);
            if (!near)
                near = nearest_name(item, fuse_known);
            fprintf(stderr, "vdiskfs: unknown option -o %s%s%s%s; see vdiskfs --help\n", item,
                    near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
            return -1;
        }
        if (r == 0) {
            size_t len = strlen(fuse_opts);
            snprintf(fuse_opts + len, cap - len, "%s%s%s%s", len ? "," : "", item, val ? "=" : "",
                     val ? val : "");
        }
    }
    return 0;
}

/* Undo the octal escapes of /proc/self/mountinfo (\\040 for a space). */
static void mountinfo_unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Is a vdiskfs (fuse.vdiskfs) mounted on this directory? */
static bool mounted_vdiskfs(const char *mountpoint)
{
    char *real = realpath(mountpoint, NULL);
    FILE *f = real ? fopen("/proc/self/mountinfo", "re") : NULL;
    char line[4096];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f)) {
        /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SRC OPTS" */
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        char *mnt = NULL;
        for (int i = 0; tok && i < 4; i++)
            tok = strtok_r(NULL, " ", &save);
        mnt = tok;
        while (tok && strcmp(tok, "-"))
            tok = strtok_r(NULL, " ", &save);
        char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
        if (!mnt || !fstype || strcmp(fstype, "fuse.vdiskfs"))
            continue;
        mountinfo_unescape(mnt);
        found = !strcmp(mnt, real);
    }
    if (f)
        fclose(f);
    free(real);
    return found;
}

/*
 * Go to the background BEFORE opening any source: drivers and the S3 backend
 * start threads (readahead, uploads), and threads do not survive fork().
 * The parent waits until the child has opened every source and the kernel
 * has sent FUSE INIT (notify_parent), or has failed, and exits with the
 * child's verdict, so `vdiskfs SRC MNT && ls MNT` works and errors still
 * reach the terminal with a non-zero exit code.
 */
static int daemonize(void)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("vdiskfs: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("vdiskfs: fork");
        return -1;
    }
    if (pid > 0) {
        close(fds[1]);
        char status;
        ssize_t n;
        do {
            n = read(fds[0], &status, 1);
        } while (n < 0 && errno == EINTR);
        if (n == 1)
            _exit(status);
        /* The child died before the mount came up: report its exit code. */
        int ws = 0;
        waitpid(pid, &ws, 0);
        _exit(WIFEXITED(ws) && WEXITSTATUS(ws) ? WEXITSTATUS(ws) : 1);
    }
    close(fds[0]);
    g.notify_fd = fds[1];
    setsid();
    return 0;
}

int main(int argc, char **argv)
{
    char fuse_opts[4096] = "";
    /* Positional arguments are compacted into argv[0..npos) in place: the
     * write index never passes the read index. */
    char **positional = argv;
    int npos = 0, r = 1;
    bool debug = false, single = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("vdiskfs %s\n", vd_version());
            return 0;
        } else if (!strcmp(a, "-f")) {
            g.foreground = true;
        } else if (!strcmp(a, "-d")) {
            debug = g.foreground = true;
        } else if (!strcmp(a, "-s")) {
            single = true;
        } else if (!strncmp(a, "-o", 2)) {
            const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!list) {
                fprintf(stderr, "vdiskfs: -o needs an argument\n");
                return 2;
            }
            char *copy = strdup(list), *save = NULL;
            for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save))
                if (handle_opt(it, fuse_opts, sizeof(fuse_opts)) < 0) {
                    free(copy);
                    return 2;
                }
            free(copy);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "vdiskfs: unknown option '%s' (see --help)\n", a);
            return 2;
        } else {
            positional[npos++] = argv[i];
        }
    }
    /* Sources are optional when export/ is the point of the mount. */
    if (npos < 1 || (npos < 2 && !export_enabled())) {
        usage(stderr);
        return 2;
    }
    const char *mountpoint = positional[npos - 1];
    struct stat mst;
    if (stat(mountpoint, &mst) != 0) {
        int e = errno;
        if (e == ENOTCONN) /* the FUSE daemon that served it is gone */
            fprintf(stderr,
                    "vdiskfs: mount point %s: %s: the daemon that served it has died; run "
                    "`fusermount3 -u %s` first\n",
                    mountpoint, strerror(e), mountpoint);
        else
            fprintf(stderr, "vdiskfs: mount point %s: %s\n", mountpoint, strerror(e));
        return 1;
    }
    if (!S_ISDIR(mst.st_mode)) {
        fprintf(stderr, "vdiskfs: mount point %s: not a directory\n", mountpoint);
        return 1;
    }
    if (mounted_vdiskfs(mountpoint)) {
        /* Another mount on top would hide this one, and need two unmounts. */
        fprintf(stderr,
                "vdiskfs: mount point %s: a vdiskfs is already mounted there; unmount it first "
                "with `fusermount3 -u %s`\n",
                mountpoint, mountpoint);
        return 1;
    }
    if (g.log_path) {
        /* Opened now: the daemon's working directory is / later, and an
         * unwritable log is the user's to know before the mount is up. */
        char *abs = g.log_path[0] == '/' ? NULL : realpath(".", NULL);
        char *path = NULL;
        if (asprintf(&path, "%s%s%s", abs ? abs : "", abs ? "/" : "", g.log_path) < 0)
            path = NULL;
        free(abs);
        int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : -1;
        if (fd < 0 || !(g.log = fdopen(fd, "a"))) {
            fprintf(stderr, "vdiskfs: log=%s: %s\n", g.log_path, strerror(path ? errno : ENOMEM));
            if (fd >= 0)
                close(fd);
            free(path);
            return 1;
        }
        free(path);
        setvbuf(g.log, NULL, _IOLBF, 0);
    }
    if (!g.foreground) {
        struct stat dl;
        g.syslog = stat("/dev/log", &dl) == 0; /* else syslog(3) drops every message */
    }
    if (!g.foreground && daemonize() < 0)
        return 1;
    if (g.overlay_path) {
        struct vd_error err = {0};
        if (vd_overlay_open(g.overlay_path, &g.overlay, &err) < 0) {
            vdfs_log("%s", err.msg);
            return 1;
        }
        g.writable = true; /* the view; sources stay read-only even with rw */
        g.opts.writable = false;
    } else {
        g.opts.writable = g.writable;
    }
    g.mount_time = time(NULL);
    for (int i = 0; i < npos - 1; i++)
        if (add_source(positional[i]) < 0)
            goto out;
    export_set_remote(&g.opts);
    if (export_init(mountpoint) < 0)
        goto out;

    /* Without export/ and rw the kernel mount itself is read-only too. */
    char opts[4200];
    /* max_idle_threads: libfuse 3.14 warns about its own unset default. */
    snprintf(opts, sizeof(opts),
             "fsname=vdiskfs,subtype=vdiskfs,default_permissions,max_idle_threads=8%s%s%s",
             !g.writable && !export_enabled() ? ",ro" : "", fuse_opts[0] ? "," : "", fuse_opts);
    static char prog[] = "vdiskfs", o_flag[] = "-o", f_flag[] = "-f", d_flag[] = "-d",
                s_flag[] = "-s";
    char *fargv[10];
    int fargc = 0;
    fargv[fargc++] = prog;
    fargv[fargc++] = (char *)mountpoint;
    fargv[fargc++] = o_flag;
    fargv[fargc++] = opts;
    fargv[fargc++] = f_flag; /* we daemonize ourselves, see daemonize() */
    if (debug)
        fargv[fargc++] = d_flag;
    if (single)
        fargv[fargc++] = s_flag;
    fargv[fargc] = NULL;
    if (g.syslog)
        openlog("vdiskfs", LOG_PID, LOG_DAEMON);
    r = fuse_main(fargc, fargv, &vfs_ops, NULL);
out:
    for (size_t i = 0; i < g.nsrc; i++) {
        vd_guest_close(g.srcs[i].guest); /* it borrows the views */
        g.srcs[i].guest = NULL;
        for (size_t k = 0; k < g.srcs[i].nviews; k++)
            vd_overlay_detach(g.srcs[i].views[k]);
        free(g.srcs[i].views);
    }
    if (g.overlay) {
        struct vd_error err = {0};
        if (vd_overlay_close(g.overlay, &err) < 0) {
            vdfs_log("%s", err.msg);
            r = 1;
        }
    }
    for (size_t i = 0; i < g.nsrc; i++) {
        vd_source_close(g.srcs[i].src);
        free(g.srcs[i].nodes);
    }
    free(g.srcs);
    return r;
}
