/*
 * Internal helpers shared by the fixup rewriters: growable buffers, a line
 * walker that keeps each line's own terminator (LF or CRLF) so untouched
 * lines come out byte for byte, and whitespace-separated field splitting.
 */
#ifndef VD_FIXUP_INT_H
#define VD_FIXUP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "vdisk/fixup.h"

int vd_fx_put(struct vd_fixup_buf *b, const char *s, size_t n);
int vd_fx_puts(struct vd_fixup_buf *b, const char *s);
int vd_fx_printf(struct vd_fixup_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Refuse what is not a small text file: over VD_FIXUP_MAX_FILE bytes
 * (-EFBIG) or holding a NUL byte (-EINVAL). name is used in messages. */
int vd_fx_check_text(const char *buf, size_t len, const char *name, struct vd_error *err);

struct vd_fx_line {
    const char *s;   /* line content, terminator excluded */
    size_t len;      /* "\r" of a CRLF is not counted */
    const char *eol; /* "\n", "\r\n" or "" (last line without newline) */
    unsigned no;     /* 1-based */
};
/* Next line from buf at *pos; false at end. */
bool vd_fx_next_line(const char *buf, size_t len, size_t *pos, struct vd_fx_line *l);
/* The terminator to use for added lines: the file's first one, or "\n". */
const char *vd_fx_eol_of(const char *buf, size_t len);

#define VD_FX_MAX_FIELDS 8
struct vd_fx_fields {
    size_t n;
    size_t off[VD_FX_MAX_FIELDS], len[VD_FX_MAX_FIELDS]; /* within the line */
};
/* Split a line at spaces and tabs (at most VD_FX_MAX_FIELDS; the last holds
 * the rest). */
void vd_fx_split(const char *s, size_t len, struct vd_fx_fields *f);
bool vd_fx_field_is(const char *s, const struct vd_fx_fields *f, size_t i, const char *word);
/* Length of leading spaces/tabs. */
size_t vd_fx_indent(const char *s, size_t len);
/* Whether s[0..len) starts with prefix. */
bool vd_fx_starts(const char *s, size_t len, const char *prefix);
/* Whether the comma-separated option list holds opt exactly. */
bool vd_fx_has_opt(const char *s, size_t len, const char *opt);

/* Start a rewrite: reset out and why. */
void vd_fx_begin(struct vd_fixup_buf *out, struct vd_fixup_buf *why);
int vd_fx_oom(struct vd_error *err, const char *name);

/* ---- the guest filesystem fixup.c edits, behind a small vtable ----
 * dir is relative to the guest's root ("etc/default"); name a plain file
 * name. Host trees (--root) and ext2/3/4 images (ext2.c) implement it. */
struct vd_fx_file {
    char *data; /* malloc'd, NUL-terminated */
    size_t len;
    unsigned mode, uid, gid; /* permission bits and owner, kept on rewrite */
};
struct vd_fx_fs;
struct vd_fx_fs_ops {
    /* 1: a regular file, loaded into f. 0: absent or not a regular file
     * (*is_link set if it is a symbolic link). -errno with err set. */
    int (*load)(struct vd_fx_fs *fs, const char *dir, const char *name, struct vd_fx_file *f,
                bool *is_link, struct vd_error *err);
    /* Names in dir (caller frees each and the array); -ENOENT if absent. */
    int (*list)(struct vd_fx_fs *fs, const char *dir, char ***names, size_t *n,
                struct vd_error *err);
    /* Create name with data; -EEXIST if it exists (no err then). */
    int (*create)(struct vd_fx_fs *fs, const char *dir, const char *name, const char *data,
                  size_t len, const struct vd_fx_file *like, struct vd_error *err);
    /* Replace name's content, keeping its mode and owner. */
    int (*replace)(struct vd_fx_fs *fs, const char *dir, const char *name, const char *data,
                   size_t len, const struct vd_fx_file *like, struct vd_error *err);
    /* Rename from -> to within dir; -EEXIST if to exists (no err then). */
    int (*rename)(struct vd_fx_fs *fs, const char *dir, const char *from, const char *to,
                  struct vd_error *err);
};
struct vd_fx_fs {
    const struct vd_fx_fs_ops *ops;
    const char *label; /* for messages: the root folder or the partition file */
    void *priv;
};

/* Whether an fstab text has an entry mounted at mp (not commented out). */
bool vd_fx_fstab_mounts(const char *buf, size_t len, const char *mp);
/* A systemd .link file whose [Match] names a MAC address (it would name
 * the old NIC; network.c). */
bool vd_fx_link_binds_mac(const char *buf, size_t len);

/* A vdiskfs view file name: "disk.raw" -> (1, 0), "disk2-p3.raw" -> (2, 3). */
bool vd_fx_view_name(const char *name, unsigned *disk, unsigned *part);

/* ext2/3/4 images through libext2fs (ext2.c): whether path holds one
 * with file (relative to its root); open it (read-only, or rw) as a
 * vd_fx_fs, refusing a journal that needs recovery (-EBUSY); close,
 * writing its metadata. */
int vd_fx_e2_has(const char *path, const char *file);
int vd_fx_e2_open(const char *path, bool rw, struct vd_fx_fs **out, struct vd_error *err);
int vd_fx_e2_close(struct vd_fx_fs *fs, struct vd_error *err);
/* A host folder as a vd_fx_fs (fixup.c; paths resolved inside it). */
int vd_fx_host_open(const char *dir, struct vd_fx_fs **out, struct vd_error *err);
void vd_fx_host_close(struct vd_fx_fs *fs);

/* Run the profile over fs (see vd_fixup_root). */
int vd_fx_fixup_fs(struct vd_fx_fs *fs, const struct vd_fixup_devmap *m,
                   const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                   struct vd_error *err);

#endif
