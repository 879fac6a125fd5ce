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

int fx_put(struct vd_fixup_buf *b, const char *s, size_t n);
int fx_puts(struct vd_fixup_buf *b, const char *s);
int fx_printf(struct vd_fixup_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Refuse what is not a small text file: over VD_FIXUP_MAX_FILE bytes
 * (-EFBIG) or holding a NUL byte (-EINVAL). name is used in messages. */
int fx_check_text(const char *buf, size_t len, const char *name, struct vd_error *err);

struct fx_line {
    const char *s;   /* line content, terminator excluded */
    size_t len;      /* "\r" of a CRLF is not counted */
    const char *eol; /* "\n", "\r\n" or "" (last line without newline) */
    unsigned no;     /* 1-based */
};
/* Next line from buf at *pos; false at end. */
bool fx_next_line(const char *buf, size_t len, size_t *pos, struct fx_line *l);
/* The terminator to use for added lines: the file's first one, or "\n". */
const char *fx_eol_of(const char *buf, size_t len);

#define FX_MAX_FIELDS 8
struct fx_fields {
    size_t n;
    size_t off[FX_MAX_FIELDS], len[FX_MAX_FIELDS]; /* within the line */
};
/* Split a line at spaces and tabs (at most FX_MAX_FIELDS; the last holds
 * the rest). */
void fx_split(const char *s, size_t len, struct fx_fields *f);
bool fx_field_is(const char *s, const struct fx_fields *f, size_t i, const char *word);
/* Length of leading spaces/tabs. */
size_t fx_indent(const char *s, size_t len);
/* Whether s[0..len) starts with prefix. */
bool fx_starts(const char *s, size_t len, const char *prefix);
/* Whether the comma-separated option list holds opt exactly. */
bool fx_has_opt(const char *s, size_t len, const char *opt);

/* Start a rewrite: reset out and why. */
void fx_begin(struct vd_fixup_buf *out, struct vd_fixup_buf *why);
int fx_oom(struct vd_error *err, const char *name);

#endif
