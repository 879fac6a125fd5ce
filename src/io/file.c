/*
 * Local file backend: pread(2)/pwrite(2) on one descriptor, which is
 * thread-safe without locks. A source opened read-only is opened O_RDONLY,
 * so no code path can write it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/io.h"

struct file_io {
    struct vd_io io; /* first: "subclassing" */
    int fd;
    bool dense; /* read-only and every byte allocated at open: no holes to find */
};

static ssize_t file_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    struct file_io *f = (struct file_io *)io;
    for (;;) {
        ssize_t n = pread(f->fd, buf, len, (off_t)off);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        int e = errno;
        return vd_err(err, -e, "%s: read at offset %llu: %s", io->name, (unsigned long long)off,
                      strerror(e));
    }
}

static ssize_t file_pwrite(struct vd_io *io, const void *buf, size_t len, uint64_t off,
                           struct vd_error *err)
{
    struct file_io *f = (struct file_io *)io;
    for (;;) {
        ssize_t n = pwrite(f->fd, buf, len, (off_t)off);
        if (n >= 0) {
            /* Concurrent writers (FUSE threads) race here: an atomic max,
             * so a smaller end never overwrites a larger one. */
            uint64_t end = off + (uint64_t)n, cur = __atomic_load_n(&io->size, __ATOMIC_RELAXED);
            while (end > cur && !__atomic_compare_exchange_n(&io->size, &cur, end, true,
                                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                ;
            return n;
        }
        if (errno == EINTR)
            continue;
        int e = errno;
        return vd_err(err, -e, "%s: write at offset %llu: %s", io->name, (unsigned long long)off,
                      strerror(e));
    }
}

static int file_flush(struct vd_io *io, struct vd_error *err)
{
    struct file_io *f = (struct file_io *)io;
    if (fdatasync(f->fd) != 0) {
        int e = errno;
        return vd_err(err, -e, "%s: fdatasync: %s", io->name, strerror(e));
    }
    return 0;
}

/* Holes of a sparse local file, through SEEK_DATA/SEEK_HOLE. Filesystems
 * without support report all data, which is always correct. */
static int file_block_status(struct vd_io *io, uint64_t off, uint64_t len, uint64_t *pnum,
                             struct vd_error *err)
{
    struct file_io *f = (struct file_io *)io;
    *pnum = len;
    if (off >= io->size)
        return VD_IO_HOLE;
    if (f->dense)
        return VD_IO_DATA; /* the core asks at every data answer: spare the lseeks */
    off_t data = lseek(f->fd, (off_t)off, SEEK_DATA);
    if (data < 0)
        return errno == ENXIO ? VD_IO_HOLE : VD_IO_DATA; /* ENXIO: hole to EOF */
    if ((uint64_t)data > off) {
        *pnum = (uint64_t)data - off < len ? (uint64_t)data - off : len;
        return VD_IO_HOLE;
    }
    off_t hole = lseek(f->fd, (off_t)off, SEEK_HOLE);
    if (hole > (off_t)off && (uint64_t)hole - off < len)
        *pnum = (uint64_t)hole - off;
    return VD_IO_DATA;
}

static void file_close(struct vd_io *io)
{
    struct file_io *f = (struct file_io *)io;
    close(f->fd);
    free(f);
}

static int file_fd(struct vd_io *io, uint64_t *base)
{
    *base = 0;
    return ((struct file_io *)io)->fd;
}

/* The file as it is now: a write through another descriptor changes mtime
 * and ctime (nanoseconds), a rename or chmod only ctime, a copy dev/ino. */
static int file_identity(struct vd_io *io, struct vd_io_identity *id, struct vd_error *err)
{
    struct file_io *f = (struct file_io *)io;
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        int e = errno;
        return vd_err(err, -e, "%s: stat: %s", io->name, strerror(e));
    }
    /* A device node's times do not move when the device is written: it
     * has no identity to offer (the caller compares content instead). */
    if (!S_ISREG(st.st_mode))
        return 0;
    id->kind = VD_IO_ID_FILE;
    id->size = id->length = (uint64_t)st.st_size;
    id->mtime_sec = (int64_t)st.st_mtim.tv_sec;
    id->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
    id->ctime_sec = (int64_t)st.st_ctim.tv_sec;
    id->ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return 0;
}

static const struct vd_io_ops file_ops = {
    .name = "file",
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .block_status = file_block_status,
    .close = file_close,
    .fd = file_fd,
    .identity = file_identity,
};

bool vd_io_is_file(const struct vd_io *io)
{
    return io->ops == &file_ops;
}

/* Wrap an open descriptor (consumed, even on failure). */
static int file_from_fd(int fd, const char *path, bool writable, struct vd_io **out,
                        struct vd_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vd_err(err, -e, "%s: stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return vd_err(err, -EISDIR, "%s: is a directory, not a disk image", path);
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        close(fd);
        return vd_err(err, -EINVAL,
                      "%s: not a regular file or block device (a pipe or character device "
                      "cannot be read at random offsets)",
                      path);
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        size = end > 0 ? (uint64_t)end : 0;
    }
    struct file_io *f = calloc(1, sizeof(*f));
    if (!f || vd_io_init(&f->io, &file_ops, path, size) != 0) {
        close(fd);
        free(f);
        return vd_err(err, -ENOMEM, "%s: out of memory", path);
    }
    f->fd = fd;
    f->io.writable = writable;
    f->dense = !writable && S_ISREG(st.st_mode) && (uint64_t)st.st_blocks * 512 >= size;
    f->io.id_dev = (uint64_t)st.st_dev;
    f->io.id_ino = (uint64_t)st.st_ino;
    *out = &f->io;
    return 0;
}

int vd_io_file_open(const char *path, bool writable, struct vd_io **out, struct vd_error *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
     * below, and the flag is cleared for regular files and devices. */
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return vd_err(err, -e, "%s: cannot open: %s", path, strerror(e));
    }
    return file_from_fd(fd, path, writable, out, err);
}

int vd_io_file_open_beneath(const char *dir, const char *rel, bool writable, struct vd_io **out,
                            struct vd_error *err)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) >= sizeof(path))
        return vd_err(err, -ENAMETOOLONG, "%s/%s: path too long", dir, rel);
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int e = errno;
        return vd_err(err, -e, "%s: cannot open directory: %s", dir, strerror(e));
    }
    struct open_how how = {
        .flags = (uint64_t)((writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
    int e = errno;
    close(dfd);
    if (fd < 0) {
        if (e == EXDEV)
            return vd_err(err, -EXDEV, "%s: leaves the directory %s", rel, dir);
        return vd_err(err, -e, "%s: cannot open: %s", rel, strerror(e));
    }
    return file_from_fd((int)fd, path, writable, out, err);
}
