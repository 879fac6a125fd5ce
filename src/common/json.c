/* Minimal JSON writer; see json.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "common/json.h"

void vd_json_init(struct vd_json *j)
{
    memset(j, 0, sizeof(*j));
}

static void put(struct vd_json *j, const char *s, size_t n)
{
    if (j->oom)
        return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *nb = realloc(j->buf, cap);
        if (!nb) {
            j->oom = true;
            return;
        }
        j->buf = nb;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void puts_(struct vd_json *j, const char *s)
{
    put(j, s, strlen(s));
}

static void put_escaped(struct vd_json *j, const char *s, size_t n)
{
    put(j, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        switch (c) {
        case '"':
            puts_(j, "\\\"");
            break;
        case '\\':
            puts_(j, "\\\\");
            break;
        case '\n':
            puts_(j, "\\n");
            break;
        case '\r':
            puts_(j, "\\r");
            break;
        case '\t':
            puts_(j, "\\t");
            break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof(tmp), "\\u%04x", c);
                puts_(j, tmp);
            } else {
                put(j, (const char *)&c, 1);
            }
        }
    }
    put(j, "\"", 1);
}

static void indent(struct vd_json *j)
{
    put(j, "\n", 1);
    for (int i = 0; i < j->depth; i++)
        put(j, "  ", 2);
}

/* Emit the separator and key before a value. */
static void key(struct vd_json *j, const char *k)
{
    int d = j->depth < 32 ? j->depth : 31;
    if (j->depth > 0) {
        if (j->need_comma[d])
            put(j, ",", 1);
        indent(j);
    }
    j->need_comma[d] = true;
    if (k) {
        put_escaped(j, k, strlen(k));
        put(j, ": ", 2);
    }
}

static void open_(struct vd_json *j, const char *k, const char *brace)
{
    key(j, k);
    puts_(j, brace);
    j->depth++;
    if (j->depth < 32)
        j->need_comma[j->depth] = false;
}

static void close_(struct vd_json *j, const char *brace)
{
    bool had = j->depth < 32 && j->need_comma[j->depth];
    j->depth--;
    if (had)
        indent(j);
    puts_(j, brace);
}

void vd_json_obj_begin(struct vd_json *j, const char *k)
{
    open_(j, k, "{");
}
void vd_json_obj_end(struct vd_json *j)
{
    close_(j, "}");
}
void vd_json_arr_begin(struct vd_json *j, const char *k)
{
    open_(j, k, "[");
}
void vd_json_arr_end(struct vd_json *j)
{
    close_(j, "]");
}

void vd_json_strn(struct vd_json *j, const char *k, const char *v, size_t n)
{
    key(j, k);
    put_escaped(j, v, n);
}

void vd_json_str(struct vd_json *j, const char *k, const char *v)
{
    if (!v) {
        vd_json_null(j, k);
        return;
    }
    vd_json_strn(j, k, v, strlen(v));
}

void vd_json_u64(struct vd_json *j, const char *k, uint64_t v)
{
    char tmp[32];
    key(j, k);
    snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    puts_(j, tmp);
}

void vd_json_i64(struct vd_json *j, const char *k, int64_t v)
{
    char tmp[32];
    key(j, k);
    snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    puts_(j, tmp);
}

void vd_json_dbl(struct vd_json *j, const char *k, double v)
{
    char tmp[48];
    key(j, k);
    snprintf(tmp, sizeof(tmp), "%.6g", v);
    puts_(j, tmp);
}

void vd_json_bool(struct vd_json *j, const char *k, bool v)
{
    key(j, k);
    puts_(j, v ? "true" : "false");
}

void vd_json_null(struct vd_json *j, const char *k)
{
    key(j, k);
    puts_(j, "null");
}

char *vd_json_finish(struct vd_json *j)
{
    put(j, "\n", 1);
    if (j->oom) {
        vd_json_free(j);
        return NULL;
    }
    char *s = j->buf;
    vd_json_init(j);
    return s;
}

void vd_json_free(struct vd_json *j)
{
    free(j->buf);
    vd_json_init(j);
}
