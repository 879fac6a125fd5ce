/* Flat-object JSON reader; see jsonparse.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonparse.h"

struct jp {
    const char *s;
    size_t len, pos;
    char *why;
    size_t whylen;
};

static int jp_fail(struct jp *p, const char *what)
{
    if (p->why && p->whylen)
        snprintf(p->why, p->whylen, "offset %zu: %s", p->pos, what);
    return -EINVAL;
}

static void jp_ws(struct jp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int jp_hex4(struct jp *p, unsigned *out)
{
    if (p->len - p->pos < 4)
        return jp_fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return jp_fail(p, "bad hex digit in \\u escape");
    }
    p->pos += 4;
    *out = v;
    return 0;
}

static size_t jp_utf8(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At '"': decode a string. out NULL: validate and skip. A decoded string is
 * never longer than its escaped form, so one allocation of that size fits. */
static int jp_string(struct jp *p, char **out)
{
    p->pos++; /* opening quote */
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        p->pos = start - 1; /* report the opening quote */
        return jp_fail(p, "unterminated string");
    }
    char *d = NULL;
    size_t n = 0;
    if (out && !(d = malloc(end - start + 1)))
        return -ENOMEM;
    int r = 0;
    while (p->pos < p->len && p->s[p->pos] != '"') {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            r = jp_fail(p, "control character in a string");
            goto fail;
        }
        if (c != '\\') {
            if (d)
                d[n++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        char e = p->s[p->pos++];
        char lit = 0;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            lit = e;
            break;
        case 'b':
            lit = '\b';
            break;
        case 'f':
            lit = '\f';
            break;
        case 'n':
            lit = '\n';
            break;
        case 'r':
            lit = '\r';
            break;
        case 't':
            lit = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if ((r = jp_hex4(p, &cp)) != 0)
                goto fail;
            if (cp == 0) {
                r = jp_fail(p, "\\u0000 in a string");
                goto fail;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                r = jp_fail(p, "lone low surrogate");
                goto fail;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    r = jp_fail(p, "high surrogate without a low one");
                    goto fail;
                }
                p->pos += 2;
                if ((r = jp_hex4(p, &lo)) != 0)
                    goto fail;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    r = jp_fail(p, "high surrogate without a low one");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (d)
                n += jp_utf8(cp, d + n);
            continue;
        }
        default:
            p->pos--;
            r = jp_fail(p, "bad escape in a string");
            goto fail;
        }
        if (d)
            d[n++] = lit;
    }
    p->pos++; /* closing quote */
    if (d) {
        d[n] = '\0';
        *out = d;
    }
    return 0;
fail:
    free(d);
    return r;
}

static bool jp_digit(const struct jp *p)
{
    return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9';
}

/* RFC 8259 number grammar; *out gets the text. */
static int jp_number(struct jp *p, char **out)
{
    size_t start = p->pos;
    if (p->s[p->pos] == '-')
        p->pos++;
    if (!jp_digit(p))
        return jp_fail(p, "bad number");
    if (p->s[p->pos] == '0')
        p->pos++;
    else
        while (jp_digit(p))
            p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!jp_digit(p))
            return jp_fail(p, "bad number");
        while (jp_digit(p))
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!jp_digit(p))
            return jp_fail(p, "bad number");
        while (jp_digit(p))
            p->pos++;
    }
    if (out && !(*out = strndup(p->s + start, p->pos - start)))
        return -ENOMEM;
    return 0;
}

static int jp_literal(struct jp *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
        return jp_fail(p, "unexpected character");
    p->pos += n;
    return 0;
}

/* Any value; nested containers are walked without keeping anything. */
static int jp_skip(struct jp *p, int depth)
{
    jp_ws(p);
    if (p->pos >= p->len)
        return jp_fail(p, "value expected");
    char c = p->s[p->pos];
    if (c == '"')
        return jp_string(p, NULL);
    if (c == '-' || (c >= '0' && c <= '9'))
        return jp_number(p, NULL);
    if (c == 't')
        return jp_literal(p, "true");
    if (c == 'f')
        return jp_literal(p, "false");
    if (c == 'n')
        return jp_literal(p, "null");
    if (c != '{' && c != '[')
        return jp_fail(p, "unexpected character");
    if (depth >= VD_JSON_MAX_DEPTH)
        return jp_fail(p, "nested too deeply");
    char close = c == '{' ? '}' : ']';
    p->pos++;
    jp_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        int r;
        if (close == '}') {
            jp_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return jp_fail(p, "expected a key");
            if ((r = jp_string(p, NULL)) != 0)
                return r;
            jp_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return jp_fail(p, "expected ':' after a key");
            p->pos++;
        }
        if ((r = jp_skip(p, depth + 1)) != 0)
            return r;
        jp_ws(p);
        if (p->pos >= p->len)
            return jp_fail(p, "unterminated object or array");
        if (p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        if (p->s[p->pos] != ',')
            return jp_fail(p, "expected ',' or the end of an object or array");
        p->pos++;
    }
}

/* One member value at the top level. */
static int jp_value(struct jp *p, struct vd_jmember *m)
{
    jp_ws(p);
    if (p->pos >= p->len)
        return jp_fail(p, "value expected");
    char c = p->s[p->pos];
    int r;
    if (c == '"') {
        m->type = VD_JSTR;
        return jp_string(p, &m->val);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        m->type = VD_JNUM;
        return jp_number(p, &m->val);
    }
    if (c == 't' || c == 'f') {
        m->type = VD_JBOOL;
        if ((r = jp_literal(p, c == 't' ? "true" : "false")) != 0)
            return r;
        return (m->val = strdup(c == 't' ? "true" : "false")) ? 0 : -ENOMEM;
    }
    if (c == 'n') {
        m->type = VD_JNULL;
        return jp_literal(p, "null");
    }
    m->type = VD_JNESTED;
    return jp_skip(p, 1);
}

const struct vd_jmember *vd_jobject_get(const struct vd_jobject *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->m[i].key, key))
            return &o->m[i];
    return NULL;
}

void vd_jobject_free(struct vd_jobject *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->m[i].key);
        free(o->m[i].val);
    }
    free(o->m);
    o->m = NULL;
    o->n = 0;
}

int vd_jobject_parse(const char *buf, size_t len, struct vd_jobject *out, char *why, size_t whylen)
{
    struct jp p = {.s = buf, .len = len, .why = why, .whylen = whylen};
    int r;
    out->m = NULL;
    out->n = 0;
    if (len > VD_JSON_MAX_INPUT) {
        if (why && whylen)
            snprintf(why, whylen, "%zu bytes, more than the %u allowed", len, VD_JSON_MAX_INPUT);
        return -EINVAL;
    }
    jp_ws(&p);
    if (p.pos >= len || buf[p.pos] != '{')
        return jp_fail(&p, p.pos >= len ? "empty document" : "expected '{'");
    p.pos++;
    jp_ws(&p);
    if (p.pos < len && buf[p.pos] == '}') {
        p.pos++;
        goto tail;
    }
    if (!(out->m = calloc(VD_JSON_MAX_MEMBERS, sizeof(*out->m))))
        return -ENOMEM;
    for (;;) {
        jp_ws(&p);
        if (p.pos >= len || buf[p.pos] != '"') {
            r = jp_fail(&p, "expected a key");
            goto fail;
        }
        if (out->n == VD_JSON_MAX_MEMBERS) {
            r = jp_fail(&p, "too many members");
            goto fail;
        }
        struct vd_jmember *m = &out->m[out->n];
        size_t keypos = p.pos;
        if ((r = jp_string(&p, &m->key)) != 0)
            goto fail;
        out->n++;
        for (size_t i = 0; i + 1 < out->n; i++)
            if (!strcmp(out->m[i].key, m->key)) {
                p.pos = keypos;
                r = jp_fail(&p, "duplicate key");
                goto fail;
            }
        jp_ws(&p);
        if (p.pos >= len || buf[p.pos] != ':') {
            r = jp_fail(&p, "expected ':' after a key");
            goto fail;
        }
        p.pos++;
        if ((r = jp_value(&p, m)) != 0)
            goto fail;
        jp_ws(&p);
        if (p.pos >= len) {
            r = jp_fail(&p, "unterminated object");
            goto fail;
        }
        if (buf[p.pos] == '}') {
            p.pos++;
            break;
        }
        if (buf[p.pos] != ',') {
            r = jp_fail(&p, "expected ',' or '}'");
            goto fail;
        }
        p.pos++;
    }
tail:
    jp_ws(&p);
    if (p.pos != len) {
        r = jp_fail(&p, "data after the object");
        goto fail;
    }
    return 0;
fail:
    if (r == -ENOMEM && why && whylen)
        snprintf(why, whylen, "out of memory");
    vd_jobject_free(out);
    return r;
}
