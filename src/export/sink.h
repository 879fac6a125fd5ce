/*
 * Append-only sinks for encoders: a local file (written unnamed or under a
 * short temporary name and renamed on commit) or an S3 multipart upload
 * (aborted on failure).
 *
 * An encoder may need to rewrite its head after the data (VHD dynamic BAT,
 * VHDX headers and BAT, the OVA's OVF and tar size fields). It declares the
 * head length up front with vd_sink_set_head(); head bytes may then be
 * rewritten with patch() until commit. The S3 sink holds the head back as
 * part 1 and uploads it last, so no sink ever needs a seek.
 *
 * Every call returns 0 or -errno with err filled. After any failure the
 * owner calls abort(); after abort or commit only free() is valid.
 */
#ifndef VD_EXPORT_SINK_H
#define VD_EXPORT_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

struct vd_sink;

struct vd_sink_ops {
    const char *name; /* "file", "s3" */
    /* Append len bytes at s->pos (and advance it). */
    int (*write)(struct vd_sink *s, const void *buf, size_t len, struct vd_error *err);
    /* Rewrite bytes inside the declared head: off + len <= s->head_len and
     * off + len <= s->pos. */
    int (*patch)(struct vd_sink *s, uint64_t off, const void *buf, size_t len,
                 struct vd_error *err);
    /* Make the object appear at its final name, complete. */
    int (*commit)(struct vd_sink *s, struct vd_error *err);
    /* Discard everything: no file or object is left at the final name. */
    void (*abort)(struct vd_sink *s);
    void (*free)(struct vd_sink *s);
    /* Optional (NULL = write zeros): append len zero bytes, e.g. as a hole
     * in a local file. Use vd_sink_zeros(), which picks. */
    int (*skip)(struct vd_sink *s, uint64_t len, struct vd_error *err);
    /* Optional (NULL = cannot): read back bytes already written, off + len
     * <= pos, patches included. Used to hash the output after a head patch. */
    int (*read)(struct vd_sink *s, uint64_t off, void *buf, size_t len, struct vd_error *err);
};

struct vd_sink {
    const struct vd_sink_ops *ops;
    char *name;        /* final path or URL, for messages; owned */
    uint64_t pos;      /* bytes appended so far */
    uint64_t head_len; /* patchable prefix, set before the first write */
    bool fsync;        /* durable before commit returns (atomic: may be set
                        * by vd_export_fsync while the worker writes) */
    /* Set by a successful commit: what was committed, for withdraw. */
    uint64_t dev, ino; /* local file */
    char etag[160];    /* S3 object, "" if the answer had none */
};

struct vd_s3_target;
/* Open a sink for DEST, a local path or s3://bucket/key. fsync: a local
 * file is on stable storage before it is renamed into place (S3 objects
 * always are once the upload completes). mode: a local file's permission
 * bits, 0 for 0666 less the umask. near: NULL, or an S3 target in DEST's
 * "directory" whose resolved endpoint and credentials DEST reuses. */
int vd_sink_open(const char *dest, const struct vd_io_opts *opts, const struct vd_s3_target *near,
                 bool fsync, unsigned mode, struct vd_sink **out, struct vd_error *err);
int vd_sink_file_open(const char *path, bool fsync, unsigned mode, struct vd_sink **out,
                      struct vd_error *err);
int vd_sink_s3_open(const char *uri, const struct vd_io_opts *opts, const struct vd_s3_target *near,
                    struct vd_sink **out, struct vd_error *err);
/* Declare the patchable head; only before the first write. */
int vd_sink_set_head(struct vd_sink *s, uint64_t head_len, struct vd_error *err);
static inline int vd_sink_write(struct vd_sink *s, const void *buf, size_t len,
                                struct vd_error *err)
{
    return s->ops->write(s, buf, len, err);
}
static inline int vd_sink_patch(struct vd_sink *s, uint64_t off, const void *buf, size_t len,
                                struct vd_error *err)
{
    return s->ops->patch(s, off, buf, len, err);
}
/* Append len zero bytes (ops->skip when there is one). */
int vd_sink_zeros(struct vd_sink *s, uint64_t len, struct vd_error *err);
int vd_sink_commit(struct vd_sink *s, struct vd_error *err);
void vd_sink_abort(struct vd_sink *s);
void vd_sink_free(struct vd_sink *s);
/* Remove a committed output again: the local file PATH if it is still
 * inode (dev, ino), or the S3 object if its ETag is still etag (any ETag
 * when etag is ""). -ESTALE if it was replaced, -ENOENT if it is gone. */
int vd_sink_file_withdraw(const char *path, uint64_t dev, uint64_t ino, struct vd_error *err);
int vd_sink_s3_withdraw(const char *uri, const struct vd_io_opts *opts, const char *etag,
                        struct vd_error *err);

#endif
