/*
 * Text plumbing for the fixup rewriters (see fixup_int.h) and the
 * unified-diff-like listing of what a dry run would change.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixup/fixup_int.h"

void vd_fixup_buf_free(struct vd_fixup_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int vd_fx_reserve(struct vd_fixup_buf *b, size_t more)
{
    if (more > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int vd_fx_put(struct vd_fixup_buf *b, const char *s, size_t n)
{
    if (vd_fx_reserve(b, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int vd_fx_puts(struct vd_fixup_buf *b, const char *s)
{
    return vd_fx_put(b, s, strlen(s));
}

int vd_fx_printf(struct vd_fixup_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || vd_fx_reserve(b, (size_t)n) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int vd_fx_check_text(const char *buf, size_t len, const char *name, struct vd_error *err)
{
    if (len > VD_FIXUP_MAX_FILE)
        return vd_err(err, -EFBIG,
                      "fixup: %s: %zu bytes, more than the %u-byte limit for a config file", name,
                      len, VD_FIXUP_MAX_FILE);
    const char *nul = len ? memchr(buf, '\0', len) : NULL;
    if (nul) {
        unsigned line = 1;
        for (const char *p = buf; p < nul; p++)
            line += *p == '\n';
        return vd_err(err, -EINVAL, "fixup: %s: line %u holds a NUL byte; not a text file", name,
                      line);
    }
    return 0;
}

bool vd_fx_next_line(const char *buf, size_t len, size_t *pos, struct vd_fx_line *l)
{
    if (*pos >= len)
        return false;
    const char *s = buf + *pos;
    size_t rest = len - *pos;
    const char *nl = memchr(s, '\n', rest);
    size_t n = nl ? (size_t)(nl - s) : rest;
    l->s = s;
    l->no++;
    if (nl && n > 0 && s[n - 1] == '\r') {
        l->len = n - 1;
        l->eol = "\r\n";
    } else {
        l->len = n;
        l->eol = nl ? "\n" : "";
    }
    *pos += n + (nl ? 1 : 0);
    return true;
}

const char *vd_fx_eol_of(const char *buf, size_t len)
{
    const char *nl = len ? memchr(buf, '\n', len) : NULL;
    return nl && nl > buf && nl[-1] == '\r' ? "\r\n" : "\n";
}

void vd_fx_split(const char *s, size_t len, struct vd_fx_fields *f)
{
    size_t i = 0;
    f->n = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= len)
            break;
        size_t start = i;
        if (f->n == VD_FX_MAX_FIELDS - 1) {
            /* the rest, trailing blanks trimmed */
            size_t end = len;
            while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
                end--;
            f->off[f->n] = start;
            f->len[f->n++] = end - start;
            return;
        }
        while (i < len && s[i] != ' ' && s[i] != '\t')
            i++;
        f->off[f->n] = start;
        f->len[f->n++] = i - start;
    }
}

bool vd_fx_field_is(const char *s, const struct vd_fx_fields *f, size_t i, const char *word)
{
    size_t n = strlen(word);
    return i < f->n && f->len[i] == n && !memcmp(s + f->off[i], word, n);
}

size_t vd_fx_indent(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

bool vd_fx_starts(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && !memcmp(s, prefix, n);
}

bool vd_fx_has_opt(const char *s, size_t len, const char *opt)
{
    size_t n = strlen(opt), i = 0;
    while (i <= len) {
        const char *c = memchr(s + i, ',', len - i);
        size_t e = c ? (size_t)(c - s) : len;
        if (e - i == n && !memcmp(s + i, opt, n))
            return true;
        i = e + 1;
    }
    return false;
}

void vd_fx_begin(struct vd_fixup_buf *out, struct vd_fixup_buf *why)
{
    out->len = 0;
    why->len = 0;
}

int vd_fx_oom(struct vd_error *err, const char *name)
{
    return vd_err(err, -ENOMEM, "fixup: %s: out of memory", name);
}

/* ---- diff ---- */

struct vd_fx_span {
    const char *s;
    size_t len;
};

static size_t vd_fx_split_lines(const char *buf, size_t len, struct vd_fx_span *v)
{
    size_t n = 0, pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        if (v) {
            v[n].s = l.s;
            v[n].len = l.len;
        }
        n++;
    }
    return n;
}

static bool vd_fx_span_eq(const struct vd_fx_span *a, const struct vd_fx_span *b)
{
    return a->len == b->len && !memcmp(a->s, b->s, a->len);
}

/* Edit script: 'e' equal, 'd' delete from a, 'i' insert from b. Longest
 * common subsequence on the lines between the common prefix and suffix;
 * past 4M cells every middle line is shown as changed. */
static int vd_fx_lcs(const struct vd_fx_span *a, size_t na, const struct vd_fx_span *b, size_t nb,
                     char *ops, size_t *nops)
{
    size_t pre = 0, suf = 0, k = 0;
    while (pre < na && pre < nb && vd_fx_span_eq(&a[pre], &b[pre]))
        pre++;
    while (suf < na - pre && suf < nb - pre && vd_fx_span_eq(&a[na - 1 - suf], &b[nb - 1 - suf]))
        suf++;
    size_t ma = na - pre - suf, mb = nb - pre - suf;
    for (size_t i = 0; i < pre; i++)
        ops[k++] = 'e';
    if (ma && mb && ma <= (1u << 22) / mb) {
        uint32_t *t = calloc((ma + 1) * (mb + 1), sizeof(*t));
        if (!t)
            return -ENOMEM;
#define T(i, j) t[(i) * (mb + 1) + (j)]
        for (size_t i = ma; i-- > 0;)
            for (size_t j = mb; j-- > 0;)
                T(i, j) = vd_fx_span_eq(&a[pre + i], &b[pre + j])
                              ? T(i + 1, j + 1) + 1
                              : (T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j) : T(i, j + 1));
        size_t i = 0, j = 0;
        while (i < ma || j < mb) {
            if (i < ma && j < mb && vd_fx_span_eq(&a[pre + i], &b[pre + j])) {
                ops[k++] = 'e';
                i++;
                j++;
            } else if (j >= mb || (i < ma && T(i + 1, j) >= T(i, j + 1))) {
                ops[k++] = 'd';
                i++;
            } else {
                ops[k++] = 'i';
                j++;
            }
        }
#undef T
        free(t);
    } else {
        for (size_t i = 0; i < ma; i++)
            ops[k++] = 'd';
        for (size_t j = 0; j < mb; j++)
            ops[k++] = 'i';
    }
    for (size_t i = 0; i < suf; i++)
        ops[k++] = 'e';
    *nops = k;
    return 0;
}

int vd_fixup_diff(const char *a, size_t alen, const char *b, size_t blen, struct vd_fixup_buf *out,
                  struct vd_error *err)
{
    struct vd_fx_span *va = NULL, *vb = NULL;
    char *ops = NULL;
    int rc = -ENOMEM;
    size_t na = vd_fx_split_lines(a, alen, NULL), nb = vd_fx_split_lines(b, blen, NULL), nops = 0;
    va = calloc(na + 1, sizeof(*va));
    vb = calloc(nb + 1, sizeof(*vb));
    ops = malloc(na + nb + 1);
    if (!va || !vb || !ops)
        goto out_free;
    vd_fx_split_lines(a, alen, va);
    vd_fx_split_lines(b, blen, vb);
    if (vd_fx_lcs(va, na, vb, nb, ops, &nops) < 0)
        goto out_free;
    out->len = 0;
    /* Hunks: runs of changes with one line of context either side. */
    size_t k = 0, ia = 0, ib = 0;
    while (k < nops) {
        if (ops[k] == 'e') {
            k++, ia++, ib++;
            continue;
        }
        size_t hk = k, ha = ia, hb = ib;
        if (k > 0) /* one line of context before */
            hk--, ha--, hb--;
        size_t end = k;
        for (;;) {
            while (end < nops && ops[end] != 'e')
                end++;
            /* merge with the next change if only 0..2 equal lines apart */
            size_t eq = end;
            while (eq < nops && ops[eq] == 'e' && eq - end < 3)
                eq++;
            if (eq < nops && ops[eq] != 'e' && eq - end < 3)
                end = eq;
            else
                break;
        }
        if (end < nops) /* one line of context after */
            end++;
        size_t ca = 0, cb = 0;
        for (size_t x = hk; x < end; x++) {
            ca += ops[x] != 'i';
            cb += ops[x] != 'd';
        }
        if (vd_fx_printf(out, "@@ -%zu,%zu +%zu,%zu @@\n", ha + 1, ca, hb + 1, cb) < 0)
            goto out_free;
        for (size_t x = hk; x < end; x++) {
            const struct vd_fx_span *s = ops[x] == 'i' ? &vb[hb] : &va[ha];
            char c = ops[x] == 'e' ? ' ' : ops[x] == 'd' ? '-' : '+';
            if (vd_fx_printf(out, "%c%.*s\n", c, (int)s->len, s->s) < 0)
                goto out_free;
            ha += ops[x] != 'i';
            hb += ops[x] != 'd';
        }
        k = end;
        ia = ha;
        ib = hb;
    }
    if (vd_fx_put(out, "", 0) < 0)
        goto out_free;
    rc = 0;
out_free:
    free(va);
    free(vb);
    free(ops);
    if (rc < 0)
        return vd_err(err, rc, "fixup: diff: out of memory");
    return rc;
}
