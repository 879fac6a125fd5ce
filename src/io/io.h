/*
 * Byte sources: the io layer. Each backend (local file, slice of another io,
 * S3, HTTP) fills a struct vd_io_ops; formats read through vd_io_pread*()
 * and never know which backend they sit on.
 *
 * Contract (like SQLite's xRead): pread returns the number of bytes read,
 * which is short only at end of file, or -errno with err filled. Every
 * backend's pread is thread-safe (the FUSE driver is multithreaded).
 * An io is reference counted: a slice holds a reference to its parent.
 */
#ifndef VD_IO_IO_H
#define VD_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vdisk/error.h"

/* What the io layer takes from the caller's options: the remote backend's
 * settings. The core fills it from struct vd_open_opts (core/ioopts.h), so
 * this layer does not depend on the public API. */
struct vd_io_opts {
    uint64_t cache_size; /* remote block cache bytes (0 = default) */
    const char *region;  /* S3 overrides (NULL = environment/config) */
    const char *endpoint;
    const char *profile;
    bool path_style;
};

/* block_status answers (the same values as the public VD_STATUS_DATA and
 * VD_STATUS_ZERO; core/ioopts.h checks). */
#define VD_IO_DATA 0
#define VD_IO_HOLE 1

struct vd_io;
struct vd_json;

/* What a byte source is, so that a later open can tell whether it changed
 * (overlay files record it: src/formats/overlay.c). */
enum vd_io_id_kind {
    VD_IO_ID_NONE,   /* the backend cannot say (memory, block devices) */
    VD_IO_ID_FILE,   /* a local regular file: size, mtime, ctime, device, inode */
    VD_IO_ID_REMOTE, /* an S3 or HTTP object: size and ETag */
};
struct vd_io_identity {
    enum vd_io_id_kind kind;
    uint64_t size;           /* bytes of the whole file or object */
    uint64_t offset, length; /* the window of it this io reads (a slice: an OVA member) */
    int64_t mtime_sec, ctime_sec;
    uint32_t mtime_nsec, ctime_nsec;
    uint64_t dev, ino;
    char etag[160];   /* REMOTE: as the server sent it at open, "" when none */
    const char *name; /* path or URL of the file, for messages; the io's, not owned */
};

struct vd_io_ops {
    const char *name; /* "file", "slice", "s3", "http" */
    ssize_t (*pread)(struct vd_io *io, void *buf, size_t len, uint64_t off, struct vd_error *err);
    /* NULL for read-only backends. Writes may extend the file. */
    ssize_t (*pwrite)(struct vd_io *io, const void *buf, size_t len, uint64_t off,
                      struct vd_error *err);
    int (*flush)(struct vd_io *io, struct vd_error *err); /* may be NULL */
    /* Open a file named relative to this one (VMDK extents, VHD/VHDX/VMDK
     * parents): same directory for local files, same key prefix for S3.
     * An absolute rel is taken as it is (local files only). */
    int (*open_relative)(struct vd_io *io, const char *rel, bool writable, struct vd_io **out,
                         struct vd_error *err);
    /* Optional: is [off, off+len) backed by data? Returns VD_IO_DATA or
     * VD_IO_HOLE (a hole in a sparse local file) with the run length in
     * *pnum. NULL means all data. */
    int (*block_status)(struct vd_io *io, uint64_t off, uint64_t len, uint64_t *pnum,
                        struct vd_error *err);
    /* Add backend statistics (bytes fetched, cache hit rate) to an open JSON
     * object. May be NULL. */
    void (*stats)(struct vd_io *io, struct vd_json *j);
    /* Optional: the local file descriptor holding this io's bytes, for
     * zero-copy reads (splice); *base is the fd offset of the io's byte 0.
     * NULL or a negative return: there is none (remote backends). */
    int (*fd)(struct vd_io *io, uint64_t *base);
    /* Optional: fill *id, which vd_io_identity() has zeroed and set to
     * kind NONE, the window [0, size) and the io's name. A backend reports
     * the source as it is now (fstat), or as pinned at open when every read
     * is checked against that (S3 If-Match). NULL: kind NONE. */
    int (*identity)(struct vd_io *io, struct vd_io_identity *id, struct vd_error *err);
    /* Optional hint, like posix_fadvise(POSIX_FADV_WILLNEED): [off, off+len)
     * will be read soon, in some order. A remote backend starts fetching it
     * now, as one range, so readers that then take it piece by piece (and
     * backwards) wait once instead of a round trip each. NULL: no effect. */
    void (*willneed)(struct vd_io *io, uint64_t off, uint64_t len);
    void (*close)(struct vd_io *io); /* frees the backend's object */
};

struct vd_io {
    const struct vd_io_ops *ops;
    char *name;    /* path or URL, for messages; owned */
    uint64_t size; /* bytes; fixed at open for read-only sources */
    bool writable;
    int refcnt; /* atomic; see vd_io_ref/vd_io_unref */
    /* File identity (st_dev, st_ino) for local files, so the core can tell
     * the same file under two names; 0/0 for other backends. */
    uint64_t id_dev, id_ino;
    struct vd_io_opts opts; /* copied at open; strings not owned */
};

/* Open a path, s3:// or http(s):// URI. */
int vd_io_open(const char *uri, const struct vd_io_opts *opts, bool writable, struct vd_io **out,
               struct vd_error *err);
/* Local file backend (src/io/file.c). */
int vd_io_file_open(const char *path, bool writable, struct vd_io **out, struct vd_error *err);
/* Open rel inside the directory dir and nowhere else: openat2(2) with
 * RESOLVE_BENEATH, so neither "..", an absolute path, nor a symlink can
 * leave dir (-EXDEV when one tries). */
int vd_io_file_open_beneath(const char *dir, const char *rel, bool writable, struct vd_io **out,
                            struct vd_error *err);
/* Is io a local file (its name is a path)? */
bool vd_io_is_file(const struct vd_io *io);
/* S3 and HTTP backend (src/io/s3.c): uri starts with s3://, http:// or https://. */
int vd_io_remote_open(const char *uri, const struct vd_io_opts *opts, struct vd_io **out,
                      struct vd_error *err);
bool vd_io_is_remote_uri(const char *uri);
/* A read-only window [off, off+len) of parent, which gets a new reference.
 * name is used in messages. */
int vd_io_slice(struct vd_io *parent, uint64_t off, uint64_t len, const char *name,
                struct vd_io **out, struct vd_error *err);

/* Base-object helpers for backends: set ops/name/size, refcnt = 1. */
int vd_io_init(struct vd_io *io, const struct vd_io_ops *ops, const char *name, uint64_t size);
void vd_io_ref(struct vd_io *io);
void vd_io_unref(struct vd_io *io); /* NULL is a no-op */

/* The willneed hint, where the backend takes one (a no-op otherwise). */
void vd_io_willneed(struct vd_io *io, uint64_t off, uint64_t len);
/* Read exactly len bytes at off: a short read (truncated file) is -EIO with a
 * message naming the file, offset and size. */
int vd_io_pread_full(struct vd_io *io, void *buf, size_t len, uint64_t off, struct vd_error *err);
/* Read up to len bytes; bytes past EOF are zero-filled. Returns 0 or -errno. */
int vd_io_pread_zfill(struct vd_io *io, void *buf, size_t len, uint64_t off, struct vd_error *err);
int vd_io_pwrite_full(struct vd_io *io, const void *buf, size_t len, uint64_t off,
                      struct vd_error *err);
int vd_io_open_relative(struct vd_io *io, const char *rel, bool writable, struct vd_io **out,
                        struct vd_error *err);
/* The identity of io's source (see struct vd_io_identity). */
int vd_io_identity(struct vd_io *io, struct vd_io_identity *id, struct vd_error *err);
/* Last path component of io->name (for messages): "disk.vmdk". */
const char *vd_io_basename(const struct vd_io *io);

#endif
