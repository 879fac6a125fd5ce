/*
 * Local file sink. The output is written as DIR/.NAME.partial-XXXXXX (same
 * directory, so the final rename(2) is atomic) and renamed to DIR/NAME on
 * commit; abort unlinks it. A killed process or a failed export therefore
 * never leaves a complete-looking DIR/NAME, only a dot-file. Appends use
 * pwrite(2) at pos; skip() just advances pos, leaving a hole, and commit
 * sets the final length with ftruncate(2).
 *
 * Durability is opt-in (fsync=on), as with cp, rsync and qemu-img convert
 * (which syncs only the empty image it creates, before any data, per
 * strace of qemu-img 7.2): without it the kernel writes the
 * data back at its own pace, and a power cut shortly after the export can
 * leave DIR/NAME with its final size but blocks never written. With it,
 * writeback of each 8 MiB is started as soon as it is appended, and the
 * file is fdatasync'd before the rename, so the disk works while the
 * encoder does and the export costs about what the disk's bandwidth does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/sink.h"

struct file_sink {
    struct vd_sink s; /* first */
    int fd;
    char *tmp; /* temporary path, NULL once renamed or unlinked */
    bool done;
    uint64_t kicked; /* output before this offset has had writeback started */
};

/* Start writeback of what was appended since the last kick, without
 * waiting, so the fdatasync at commit finds little left to write and the
 * disk works while the encoder does (1 GiB VHD: commit 0.39 s -> ~0). */
#define WRITE_BEHIND (8u << 20)

static int file_sink_pwrite(struct file_sink *f, const void *buf, size_t len, uint64_t off,
                            struct vd_error *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            return vd_err(err, -e, "export: %s: write at offset %llu: %s", f->s.name,
                          (unsigned long long)off, strerror(e));
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int file_sink_write(struct vd_sink *s, const void *buf, size_t len, struct vd_error *err)
{
    struct file_sink *f = (struct file_sink *)s;
    int r = file_sink_pwrite(f, buf, len, s->pos, err);
    if (r == 0)
        s->pos += len;
    if (r == 0 && __atomic_load_n(&s->fsync, __ATOMIC_RELAXED) &&
        s->pos - f->kicked >= WRITE_BEHIND) {
        /* Advisory: errors surface at fdatasync in commit. */
        (void)sync_file_range(f->fd, (off_t)f->kicked, (off_t)(s->pos - f->kicked),
                              SYNC_FILE_RANGE_WRITE);
        f->kicked = s->pos;
    }
    return r;
}

static int file_sink_skip(struct vd_sink *s, uint64_t len, struct vd_error *err)
{
    s->pos += len;
    return 0;
}

static int file_sink_patch(struct vd_sink *s, uint64_t off, const void *buf, size_t len,
                           struct vd_error *err)
{
    if (off + len > s->head_len || off + len > s->pos)
        return vd_err(err, -EINVAL, "export: %s: patch [%llu, +%zu) outside the head", s->name,
                      (unsigned long long)off, len);
    return file_sink_pwrite((struct file_sink *)s, buf, len, off, err);
}

static int file_sink_read(struct vd_sink *s, uint64_t off, void *buf, size_t len,
                          struct vd_error *err)
{
    struct file_sink *f = (struct file_sink *)s;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(f->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            return vd_err(err, -e, "export: %s: read back at offset %llu: %s", s->name,
                          (unsigned long long)off, strerror(e));
        }
        if (n == 0) { /* a trailing hole not yet extended by ftruncate */
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int file_sink_commit(struct vd_sink *s, struct vd_error *err)
{
    struct file_sink *f = (struct file_sink *)s;
    if (ftruncate(f->fd, (off_t)s->pos) != 0 ||
        (__atomic_load_n(&s->fsync, __ATOMIC_RELAXED) && fdatasync(f->fd) != 0)) {
        int e = errno;
        return vd_err(err, -e, "export: %s: %s", s->name, strerror(e));
    }
    if (rename(f->tmp, s->name) != 0) {
        int e = errno;
        return vd_err(err, -e, "export: %s: rename from %s: %s", s->name, f->tmp, strerror(e));
    }
    free(f->tmp);
    f->tmp = NULL;
    f->done = true;
    return 0;
}

static void file_sink_abort(struct vd_sink *s)
{
    struct file_sink *f = (struct file_sink *)s;
    if (f->tmp) {
        (void)unlink(f->tmp);
        free(f->tmp);
        f->tmp = NULL;
    }
    f->done = true;
}

static void file_sink_free(struct vd_sink *s)
{
    struct file_sink *f = (struct file_sink *)s;
    if (!f)
        return;
    if (!f->done)
        file_sink_abort(s);
    if (f->fd >= 0)
        close(f->fd);
    free(f->s.name);
    free(f);
}

static const struct vd_sink_ops file_sink_ops = {
    .name = "file",
    .write = file_sink_write,
    .patch = file_sink_patch,
    .commit = file_sink_commit,
    .abort = file_sink_abort,
    .free = file_sink_free,
    .skip = file_sink_skip,
    .read = file_sink_read,
};

int vd_sink_file_open(const char *path, bool fsync, struct vd_sink **out, struct vd_error *err)
{
    struct file_sink *f = calloc(1, sizeof(*f));
    *out = NULL;
    if (!f || !(f->s.name = strdup(path)))
        goto nomem;
    f->s.fsync = fsync;
    f->s.ops = &file_sink_ops;
    f->fd = -1;
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) {
        file_sink_free(&f->s);
        return vd_err(err, -EISDIR, "export: %s: destination is a directory", path);
    }
    if (asprintf(&f->tmp, "%.*s.%s.partial-XXXXXX", (int)dirlen, path, base) < 0) {
        f->tmp = NULL;
        goto nomem;
    }
    f->fd = mkostemp(f->tmp, O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        free(f->tmp);
        f->tmp = NULL;
        f->done = true;
        vd_err(err, -e, "export: %s: cannot create temporary file: %s", path, strerror(e));
        file_sink_free(&f->s);
        return -e;
    }
    (void)fchmod(f->fd, 0644);
    *out = &f->s;
    return 0;
nomem:
    if (f)
        f->done = true;
    file_sink_free(f ? &f->s : NULL);
    return vd_err(err, -ENOMEM, "export: %s: out of memory", path);
}
