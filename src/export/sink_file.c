/*
 * Local file sink. The output never exists under its final name until it
 * is complete: it is written as an unnamed file in DEST's directory
 * (O_TMPFILE, same filesystem, so it can be linked in), and commit links
 * it as DIR/.vdisk-XXXXXX and renames that over DIR/NAME (atomic). Where
 * the filesystem has no O_TMPFILE (NFS, many FUSE filesystems), it is
 * written as DIR/.vdisk-XXXXXX from the start. Either way abort leaves
 * nothing, and a killed process leaves nothing (O_TMPFILE) or a
 * .vdisk-XXXXXX dot-file, never a complete-looking DIR/NAME. The temporary
 * name is 13 bytes whatever NAME is, so every NAME the directory accepts
 * works (a name derived from NAME failed with ENAMETOOLONG from about 241
 * bytes on). Appends use pwrite(2) at pos; skip() just advances pos,
 * leaving a hole, and commit sets the final length with ftruncate(2).
 *
 * Mode: the one asked for (vd_export_opts.mode, set exactly with fchmod),
 * or what open(2) with 0666 gives under the process umask.
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

#include "export/encoder.h"
#include "export/sink.h"

#define TMP_PREFIX ".vdisk-"
#define TMP_LEN    (sizeof(TMP_PREFIX) - 1 + 6) /* ".vdisk-XXXXXX" */

struct file_sink {
    struct vd_sink s; /* first */
    int fd;
    int dirfd;             /* DEST's directory */
    const char *base;      /* DEST's last component, inside s.name */
    char tmp[TMP_LEN + 1]; /* the temporary name in dirfd; "" while unnamed or once gone */
    bool done;
    uint64_t kicked; /* output before this offset has had writeback started */
};

/* A fresh ".vdisk-XXXXXX" (62^6 names; callers retry on EEXIST). */
static void file_sink_tmpname(char out[TMP_LEN + 1])
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint8_t rnd[6];
    vd_export_random(rnd, sizeof(rnd));
    memcpy(out, TMP_PREFIX, sizeof(TMP_PREFIX) - 1);
    for (size_t i = 0; i < sizeof(rnd); i++)
        out[sizeof(TMP_PREFIX) - 1 + i] = set[rnd[i] % (sizeof(set) - 1)];
    out[TMP_LEN] = '\0';
}

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

/* Give the unnamed file a temporary name in its directory. */
static int file_sink_link(struct file_sink *f, struct vd_error *err)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
    for (int tries = 0; tries < 100; tries++) {
        file_sink_tmpname(f->tmp);
        /* Through /proc, as open(2) shows for O_TMPFILE: linkat with
         * AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH. */
        int rc = linkat(AT_FDCWD, proc, f->dirfd, f->tmp, AT_SYMLINK_FOLLOW);
        if (rc != 0 && errno == ENOENT) /* no /proc: try the privileged way */
            rc = linkat(f->fd, "", f->dirfd, f->tmp, AT_EMPTY_PATH);
        if (rc == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    f->tmp[0] = '\0';
    return vd_err(err, -e, "export: %s: cannot name the finished output in its directory: %s",
                  f->s.name, strerror(e));
}

static int file_sink_commit(struct vd_sink *s, struct vd_error *err)
{
    struct file_sink *f = (struct file_sink *)s;
    struct stat st;
    if (ftruncate(f->fd, (off_t)s->pos) != 0 ||
        (__atomic_load_n(&s->fsync, __ATOMIC_RELAXED) && fdatasync(f->fd) != 0) ||
        fstat(f->fd, &st) != 0) {
        int e = errno;
        return vd_err(err, -e, "export: %s: %s", s->name, strerror(e));
    }
    int r;
    if (!f->tmp[0] && (r = file_sink_link(f, err)) < 0)
        return r;
    if (renameat(f->dirfd, f->tmp, f->dirfd, f->base) != 0) {
        int e = errno;
        return vd_err(err, -e, "export: %s: rename from %s: %s", s->name, f->tmp, strerror(e));
    }
    f->tmp[0] = '\0';
    f->done = true;
    s->dev = (uint64_t)st.st_dev;
    s->ino = (uint64_t)st.st_ino;
    return 0;
}

static void file_sink_abort(struct vd_sink *s)
{
    struct file_sink *f = (struct file_sink *)s;
    if (f->tmp[0])
        (void)unlinkat(f->dirfd, f->tmp, 0);
    f->tmp[0] = '\0';
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
    if (f->dirfd >= 0)
        close(f->dirfd);
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

/* Open the output's file in f->dirfd: unnamed if the filesystem can,
 * else as a fresh .vdisk-XXXXXX. */
static int file_sink_create(struct file_sink *f, unsigned mode, struct vd_error *err)
{
    mode_t m = mode ? (mode_t)(mode & 07777) : 0666;
    if (!getenv("VD_EXPORT_NO_TMPFILE")) { /* tests: the fallback, on any filesystem */
        f->fd = openat(f->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, m);
        /* EISDIR or ENOENT from kernels without O_TMPFILE, EOPNOTSUPP from
         * filesystems without it. */
        if (f->fd < 0 && errno != EISDIR && errno != ENOENT && errno != EOPNOTSUPP &&
            errno != EINVAL) {
            int e = errno;
            return vd_err(err, -e, "export: %s: cannot create temporary file: %s", f->s.name,
                          strerror(e));
        }
    }
    for (int tries = 0; f->fd < 0 && tries < 100; tries++) {
        file_sink_tmpname(f->tmp);
        f->fd = openat(f->dirfd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, m);
        if (f->fd < 0 && errno != EEXIST) {
            int e = errno;
            f->tmp[0] = '\0';
            return vd_err(err, -e, "export: %s: cannot create temporary file: %s", f->s.name,
                          strerror(e));
        }
    }
    if (f->fd < 0) {
        f->tmp[0] = '\0';
        return vd_err(err, -EEXIST, "export: %s: no free temporary name beside it", f->s.name);
    }
    /* An explicit mode is exact, not masked again by this process' umask. */
    if (mode && fchmod(f->fd, m) != 0) {
        int e = errno;
        return vd_err(err, -e, "export: %s: cannot set mode %04o: %s", f->s.name, (unsigned)m,
                      strerror(e));
    }
    return 0;
}

int vd_sink_file_open(const char *path, bool fsync, unsigned mode, struct vd_sink **out,
                      struct vd_error *err)
{
    struct file_sink *f = calloc(1, sizeof(*f));
    int r;
    *out = NULL;
    if (!f || !(f->s.name = strdup(path))) {
        free(f);
        return vd_err(err, -ENOMEM, "export: %s: out of memory", path);
    }
    f->s.fsync = fsync;
    f->s.ops = &file_sink_ops;
    f->fd = -1;
    f->dirfd = -1;
    char *slash = strrchr(f->s.name, '/');
    f->base = slash ? slash + 1 : f->s.name;
    if (!*f->base) {
        r = vd_err(err, -EISDIR, "export: %s: destination is a directory", path);
        goto fail;
    }
    if (slash == f->s.name) {
        f->dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    } else if (slash) {
        *slash = '\0';
        f->dirfd = open(f->s.name, O_PATH | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
    } else {
        f->dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (f->dirfd < 0) {
        int e = errno;
        r = vd_err(err, -e, "export: %s: cannot create temporary file: %s", path, strerror(e));
        goto fail;
    }
    if ((r = file_sink_create(f, mode, err)) < 0)
        goto fail;
    *out = &f->s;
    return 0;
fail:
    file_sink_free(&f->s);
    return r;
}

int vd_sink_file_withdraw(const char *path, uint64_t dev, uint64_t ino, struct vd_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        int e = errno;
        return vd_err(err, -e, "export: %s: %s", path, strerror(e));
    }
    if ((uint64_t)st.st_dev != dev || (uint64_t)st.st_ino != ino)
        return vd_err(err, -ESTALE, "export: %s: replaced since it was committed; left alone",
                      path);
    if (unlink(path) != 0) {
        int e = errno;
        return vd_err(err, -e, "export: %s: cannot remove it: %s", path, strerror(e));
    }
    return 0;
}
