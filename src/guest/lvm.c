/*
 * LVM2 physical volumes, volume groups and logical volumes, read from the
 * on-disk format without device-mapper or the host's lvm (lvm2's
 * lib/label/label.c, lib/format_text/layout.h, format-text.c and
 * lib/config/config.c are the reference; lvm2 2.03 writes what is read
 * here).
 *
 *   device
 *   +-----------+ sector 0..3: one holds the label (LABELONE)
 *   | label     |   id[8] sector_xl[8] crc_xl[4] offset_xl[4] type[8]
 *   |  pv_header|   at offset_xl: uuid[32] device_size[8]
 *   |           |   data areas {offset[8], size[8]}..., {0,0}
 *   |           |   metadata areas {offset[8], size[8]}..., {0,0}
 *   +-----------+ metadata area (usually at 4 KiB, 1020 KiB)
 *   | mda_header|   crc[4] magic[16] version[4] start[8] size[8]
 *   |           |   raw_locn {offset[8], size[8], crc[4], flags[4]}..., 0
 *   | text ...  |   circular buffer after the 512-byte header; the text
 *   +-----------+   may wrap back to start + 512
 *   | extents   | pe_start (sectors, from the metadata): extent 0
 *   +-----------+
 *
 * The metadata text is LVM's config syntax: `name { ... }` sections and
 * `key = value` with integers, "strings" (\ escapes the next byte) and
 * [arrays]; `#` starts a comment. The VG is the one top-level section.
 *
 * Exposed: LVs whose segments are all "striped" (stripe_count 1 is
 * linear) on PVs that are present. Every other segment type (thin,
 * thin-pool, raid*, mirror, snapshot, cache, vdo, writecache, integrity)
 * is listed with the reason; so is any LV whose extents fall outside its
 * PVs, overlap another LV, or whose segments leave gaps. A VG found on
 * several PVs is taken from the copy with the highest seqno.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "guest/lvm.h"

#define LABEL_SCAN_SECTORS 4
#define SECTOR             512u
#define MDA_HEADER_SIZE    512u
#define MDA_MAGIC          " LVM2 x[5A%r0N*>"
#define RAW_LOCN_IGNORED   1u
#define MAX_CFG_NODES      200000
#define MAX_PVS            4096
#define MAX_LVS            4096
#define MAX_SEGS           65536
#define MAX_STRIPES        128 /* lvm2's MAX_STRIPES */

/* ---- CRC ---- */

static uint32_t crc_tab[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
        crc_tab[i] = c;
    }
}

uint32_t vd_lvm_crc(uint32_t crc, const void *buf, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        crc = (crc >> 8) ^ crc_tab[(crc ^ p[i]) & 0xff];
    return crc;
}

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CRC_OK(a, b) ((void)(a), (void)(b), 1)
#else
#define CRC_OK(a, b) ((a) == (b))
#endif

/* ---- label, pv_header, metadata area ---- */

static char *lvm_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *lvm_strdupf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Read the newest metadata of the mda at [off, off+size) of the device;
 * 1 with *text, 0 when the area holds none (empty or ignored), -EINVAL
 * with *why (allocated) when it is damaged. */
static int lvm_read_mda(vd_lvm_pread_fn rd, void *opaque, uint64_t dev_bytes, const char *devname,
                        uint64_t off, uint64_t size, char **text, size_t *text_len, char **why,
                        struct vd_error *err)
{
    uint8_t h[MDA_HEADER_SIZE];
    uint64_t end;
    *text = NULL;
    if (size < MDA_HEADER_SIZE + SECTOR || ck_add(off, size, &end) || end > dev_bytes) {
        *why = lvm_strdupf("lvm: %s: metadata area at %" PRIu64 " (%" PRIu64
                           " bytes) does not fit the device (%" PRIu64 " bytes)",
                           devname, off, size, dev_bytes);
        return -EINVAL;
    }
    int r = rd(opaque, h, sizeof(h), off, err);
    if (r < 0)
        return r;
    if (memcmp(h + 4, MDA_MAGIC, 16) || le32(h + 20) != 1) {
        *why = lvm_strdupf("lvm: %s: metadata area at %" PRIu64
                           ": no mda_header magic or version 1 (damaged metadata area)",
                           devname, off);
        return -EINVAL;
    }
    if (!CRC_OK(vd_lvm_crc(VD_LVM_INITIAL_CRC, h + 4, MDA_HEADER_SIZE - 4), le32(h))) {
        *why = lvm_strdupf("lvm: %s: metadata area at %" PRIu64 ": mda_header checksum mismatch",
                           devname, off);
        return -EINVAL;
    }
    if (le64(h + 24) != off || le64(h + 32) != size) {
        *why = lvm_strdupf("lvm: %s: metadata area at %" PRIu64 ": mda_header says start %" PRIu64
                           " size %" PRIu64 ", the label says %" PRIu64 " size %" PRIu64,
                           devname, off, le64(h + 24), le64(h + 32), off, size);
        return -EINVAL;
    }
    /* raw_locn[0] is the committed metadata (format-text.c). */
    const uint8_t *rl = h + 40;
    uint64_t toff = le64(rl), tlen = le64(rl + 8);
    uint32_t tcrc = le32(rl + 16), flags = le32(rl + 20);
    if (tlen == 0 || (flags & RAW_LOCN_IGNORED))
        return 0;
    if (tlen > VD_LVM_MAX_META || tlen > size - MDA_HEADER_SIZE || toff < MDA_HEADER_SIZE ||
        toff >= size) {
        *why = lvm_strdupf("lvm: %s: metadata area at %" PRIu64 ": raw_locn offset %" PRIu64
                           " size %" PRIu64 " is outside the area (%" PRIu64
                           " bytes) or above the %u MiB cap",
                           devname, off, toff, tlen, size, VD_LVM_MAX_META >> 20);
        return -EINVAL;
    }
    char *t = malloc((size_t)tlen + 1);
    if (!t)
        return vd_err(err, -ENOMEM, "lvm: %s: out of memory for %" PRIu64 " bytes of metadata",
                      devname, tlen);
    /* The text may wrap round the circular buffer to just after the
     * header (format-text.c, _vg_read_raw_area). */
    uint64_t first = VD_MIN(tlen, size - toff);
    r = rd(opaque, t, (size_t)first, off + toff, err);
    if (r == 0 && first < tlen)
        r = rd(opaque, t + first, (size_t)(tlen - first), off + MDA_HEADER_SIZE, err);
    if (r < 0) {
        free(t);
        return r;
    }
    if (!CRC_OK(vd_lvm_crc(VD_LVM_INITIAL_CRC, t, (size_t)tlen), tcrc)) {
        free(t);
        *why = lvm_strdupf("lvm: %s: metadata area at %" PRIu64
                           ": metadata text checksum mismatch (damaged metadata)",
                           devname, off);
        return -EINVAL;
    }
    t[tlen] = '\0';
    *text = t;
    *text_len = strlen(t); /* LVM stores a terminating NUL */
    return 1;
}

int vd_lvm_read_pv(vd_lvm_pread_fn rd, void *opaque, uint64_t dev_bytes, const char *devname,
                   struct vd_lvm_pvdev *out, struct vd_error *err)
{
    uint8_t s[SECTOR];
    memset(out, 0, sizeof(*out));
    out->devname = devname;
    out->dev_bytes = dev_bytes;
    int found = -1;
    for (unsigned i = 0; i < LABEL_SCAN_SECTORS && (uint64_t)(i + 1) * SECTOR <= dev_bytes; i++) {
        int r = rd(opaque, s, SECTOR, (uint64_t)i * SECTOR, err);
        if (r < 0)
            return r;
        if (memcmp(s, "LABELONE", 8))
            continue;
        /* label.c: sector_xl must name the sector the label is in. */
        if (le64(s + 8) != i)
            continue;
        if (!CRC_OK(vd_lvm_crc(VD_LVM_INITIAL_CRC, s + 20, SECTOR - 20), le32(s + 16)))
            return vd_err(err, -EINVAL, "lvm: %s: LVM label in sector %u: checksum mismatch",
                          devname, i);
        if (memcmp(s + 24, "LVM2 001", 8))
            return vd_err(err, -ENOTSUP,
                          "lvm: %s: LVM label in sector %u has type \"%.8s\", not \"LVM2 001\"",
                          devname, i, (const char *)(s + 24));
        found = (int)i;
        break;
    }
    if (found < 0)
        return 0;
    uint32_t ph = le32(s + 20);
    /* pv_header: uuid, size, then two zero-terminated lists of 16-byte
     * disk_locn, all inside the label sector. */
    if (ph < 32 || ph > SECTOR - 40 - 32)
        return vd_err(err, -EINVAL, "lvm: %s: LVM label: pv_header offset %u is outside the label",
                      devname, ph);
    for (int i = 0; i < 32; i++) {
        char c = (char)s[ph + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return vd_err(err, -EINVAL, "lvm: %s: pv_header: PV UUID has a byte 0x%02x", devname,
                          (unsigned)(uint8_t)c);
        out->uuid[i] = c;
    }
    out->uuid[32] = '\0';
    out->hdr_size = le64(s + ph + 32);
    size_t pos = ph + 40;
    int list = 0; /* 0: data areas, 1: metadata areas */
    while (list < 2) {
        if (pos + 16 > SECTOR)
            return vd_err(err, -EINVAL, "lvm: %s: pv_header: %s area list is not terminated",
                          devname, list ? "metadata" : "data");
        uint64_t aoff = le64(s + pos), asize = le64(s + pos + 8);
        pos += 16;
        if (aoff == 0) {
            list++;
            continue;
        }
        if (list == 0 || out->meta)
            continue; /* data areas: pe_start in the metadata is what counts */
        char *why = NULL;
        int r = lvm_read_mda(rd, opaque, dev_bytes, devname, aoff, asize, &out->meta,
                             &out->meta_len, &why, err);
        if (r == -EINVAL) {
            if (!why)
                return vd_err(err, -ENOMEM, "out of memory");
            if (!out->meta_error)
                out->meta_error = why;
            else
                free(why);
            continue;
        }
        if (r < 0)
            return r;
    }
    if (out->meta) {
        free(out->meta_error);
        out->meta_error = NULL;
    }
    return 1;
}

void vd_lvm_pvdev_free(struct vd_lvm_pvdev *p)
{
    if (!p)
        return;
    free(p->meta);
    free(p->meta_error);
    p->meta = p->meta_error = NULL;
}

/* ---- config text parser ---- */

enum cfg_type { CFG_SECTION, CFG_INT, CFG_FLOAT, CFG_STR, CFG_ARRAY };

struct cfg_node {
    char *key; /* NULL for array elements */
    enum cfg_type type;
    int64_t num;
    char *str;
    struct cfg_node *child, *next; /* SECTION, ARRAY: children in order */
};

struct cfg_parser {
    const char *p, *end;
    unsigned line;
    size_t nodes;
    bool oom;
    char msg[160];
};

static void cfg_free(struct cfg_node *n)
{
    while (n) {
        struct cfg_node *next = n->next;
        cfg_free(n->child); /* depth is bounded by VD_LVM_MAX_DEPTH */
        free(n->key);
        free(n->str);
        free(n);
        n = next;
    }
}

static int cfg_fail(struct cfg_parser *ps, const char *what)
{
    if (!strcmp(what, "out of memory"))
        ps->oom = true;
    if (!ps->msg[0])
        snprintf(ps->msg, sizeof(ps->msg), "line %u: %s", ps->line, what);
    return -EINVAL;
}

static void cfg_skip(struct cfg_parser *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n') {
            ps->line++;
            ps->p++;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else {
            break;
        }
    }
}

static bool cfg_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '+' || c == '.' || c == '-' || c == '/';
}

static struct cfg_node *cfg_new(struct cfg_parser *ps, enum cfg_type t)
{
    if (++ps->nodes > MAX_CFG_NODES) {
        cfg_fail(ps, "more than 200000 entries");
        return NULL;
    }
    struct cfg_node *n = calloc(1, sizeof(*n));
    if (n)
        n->type = t;
    else
        cfg_fail(ps, "out of memory");
    return n;
}

static int cfg_value(struct cfg_parser *ps, struct cfg_node **out, bool in_array);

static int cfg_string(struct cfg_parser *ps, char **out)
{
    const char *s = ++ps->p; /* after the opening quote */
    size_t n = 0;
    for (const char *q = s; q < ps->end && *q != '"'; q++, n++)
        if (*q == '\\' && q + 1 < ps->end)
            q++;
    char *d = malloc(n + 1);
    if (!d)
        return cfg_fail(ps, "out of memory");
    size_t o = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\' && ps->p + 1 < ps->end)
            ps->p++;
        if (*ps->p == '\n')
            ps->line++;
        d[o++] = *ps->p++;
    }
    d[o] = '\0';
    if (ps->p >= ps->end) {
        free(d);
        return cfg_fail(ps, "unterminated string");
    }
    ps->p++;
    *out = d;
    return 0;
}

static int cfg_number(struct cfg_parser *ps, struct cfg_node *n)
{
    bool neg = false;
    uint64_t v = 0;
    if (*ps->p == '-') {
        neg = true;
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return cfg_fail(ps, "expected a value");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (ck_muladd(v, 10, (uint64_t)(*ps->p - '0'), &v) || v > (uint64_t)INT64_MAX)
            return cfg_fail(ps, "number out of range");
        ps->p++;
    }
    n->type = CFG_INT;
    if (ps->p < ps->end && *ps->p == '.') { /* floats: kept as their integer part */
        n->type = CFG_FLOAT;
        ps->p++;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    n->num = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static int cfg_value(struct cfg_parser *ps, struct cfg_node **out, bool in_array)
{
    cfg_skip(ps);
    if (ps->p >= ps->end)
        return cfg_fail(ps, "expected a value");
    struct cfg_node *n = cfg_new(ps, CFG_INT);
    if (!n)
        return -EINVAL;
    int r = 0;
    if (*ps->p == '"') {
        n->type = CFG_STR;
        r = cfg_string(ps, &n->str);
    } else if (*ps->p == '[' && !in_array) {
        n->type = CFG_ARRAY;
        ps->p++;
        struct cfg_node **tail = &n->child;
        for (;;) {
            cfg_skip(ps);
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                break;
            }
            if (n->child) {
                if (ps->p >= ps->end || *ps->p != ',') {
                    r = cfg_fail(ps, "expected ',' or ']' in an array");
                    break;
                }
                ps->p++;
            }
            if ((r = cfg_value(ps, tail, true)) < 0)
                break;
            tail = &(*tail)->next;
        }
    } else {
        r = cfg_number(ps, n);
    }
    if (r < 0) {
        cfg_free(n);
        return r;
    }
    *out = n;
    return 0;
}

/* items until '}' (depth > 0) or the end (depth 0). */
static int cfg_items(struct cfg_parser *ps, struct cfg_node **head, unsigned depth)
{
    struct cfg_node **tail = head;
    if (depth > VD_LVM_MAX_DEPTH)
        return cfg_fail(ps, "sections nested too deeply");
    for (;;) {
        cfg_skip(ps);
        if (ps->p >= ps->end || *ps->p == '\0') {
            if (depth > 0)
                return cfg_fail(ps, "missing '}'");
            return 0;
        }
        if (*ps->p == '}') {
            if (depth == 0)
                return cfg_fail(ps, "unexpected '}'");
            ps->p++;
            return 0;
        }
        const char *k = ps->p;
        while (ps->p < ps->end && cfg_ident_char(*ps->p))
            ps->p++;
        if (ps->p == k)
            return cfg_fail(ps, "expected a name");
        size_t klen = (size_t)(ps->p - k);
        cfg_skip(ps);
        if (ps->p >= ps->end)
            return cfg_fail(ps, "expected '=' or '{'");
        struct cfg_node *n;
        int r;
        if (*ps->p == '{') {
            ps->p++;
            if (!(n = cfg_new(ps, CFG_SECTION)))
                return -EINVAL;
            r = cfg_items(ps, &n->child, depth + 1);
        } else if (*ps->p == '=') {
            ps->p++;
            n = NULL;
            r = cfg_value(ps, &n, false);
        } else {
            return cfg_fail(ps, "expected '=' or '{'");
        }
        if (n && !(n->key = strndup(k, klen))) {
            cfg_free(n);
            return cfg_fail(ps, "out of memory");
        }
        if (n) {
            *tail = n;
            tail = &n->next;
        }
        if (r < 0)
            return r;
    }
}

static const struct cfg_node *cfg_get(const struct cfg_node *sec, const char *key)
{
    for (const struct cfg_node *n = sec ? sec->child : NULL; n; n = n->next)
        if (n->key && !strcmp(n->key, key))
            return n;
    return NULL;
}

static bool cfg_u64(const struct cfg_node *sec, const char *key, uint64_t *v)
{
    const struct cfg_node *n = cfg_get(sec, key);
    if (!n || n->type != CFG_INT || n->num < 0)
        return false;
    *v = (uint64_t)n->num;
    return true;
}

static const char *cfg_str(const struct cfg_node *sec, const char *key)
{
    const struct cfg_node *n = cfg_get(sec, key);
    return n && n->type == CFG_STR ? n->str : NULL;
}

static bool cfg_has_flag(const struct cfg_node *sec, const char *key, const char *flag)
{
    const struct cfg_node *n = cfg_get(sec, key);
    if (!n || n->type != CFG_ARRAY)
        return false;
    for (const struct cfg_node *e = n->child; e; e = e->next)
        if (e->type == CFG_STR && !strcmp(e->str, flag))
            return true;
    return false;
}

/* ---- assembling VGs ---- */

struct lvm_build {
    struct vd_lvm *l;
    const struct vd_lvm_pvdev *pvs;
    size_t npvs;
    int oom;
};

static void lvm_warn(struct lvm_build *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void lvm_warn(struct lvm_build *b, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    char **w = s ? realloc(b->l->warnings, (b->l->nwarnings + 1) * sizeof(*w)) : NULL;
    if (!w) {
        free(s);
        b->oom = 1;
        return;
    }
    b->l->warnings = w;
    w[b->l->nwarnings++] = s;
}

/* Mark lv unreadable with the first reason given. */
static void lv_refuse(struct lvm_build *b, struct vd_lvm_lv *lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lv_refuse(struct lvm_build *b, struct vd_lvm_lv *lv, const char *fmt, ...)
{
    if (lv->unsupported)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
        b->oom = 1;
    }
    va_end(ap);
    lv->unsupported = s;
}

static void vg_clear(struct vd_lvm_vg *vg)
{
    for (size_t i = 0; i < vg->npvs; i++) {
        free(vg->pvs[i].name);
        free(vg->pvs[i].uuid);
    }
    free(vg->pvs);
    for (size_t i = 0; i < vg->nlvs; i++) {
        struct vd_lvm_lv *lv = &vg->lvs[i];
        for (size_t s = 0; s < lv->nsegs; s++) {
            free(lv->segs[s].type);
            free(lv->segs[s].areas);
        }
        free(lv->segs);
        free(lv->name);
        free(lv->uuid);
        free(lv->unsupported);
    }
    free(vg->lvs);
    free(vg->name);
    free(vg->uuid);
    memset(vg, 0, sizeof(*vg));
}

void vd_lvm_free(struct vd_lvm *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nvgs; i++)
        vg_clear(&l->vgs[i]);
    free(l->vgs);
    for (size_t i = 0; i < l->nwarnings; i++)
        free(l->warnings[i]);
    free(l->warnings);
    free(l);
}

static const char *segtype_family(const char *t)
{
    static const struct {
        const char *prefix, *what;
    } fam[] = {
        {"thin", "thin volumes"},     {"raid", "RAID volumes"},
        {"mirror", "mirror volumes"}, {"snapshot", "snapshots"},
        {"cache", "cache volumes"},   {"writecache", "writecache volumes"},
        {"vdo", "VDO volumes"},       {"integrity", "integrity volumes"},
        {"error", "error targets"},   {"zero", "zero targets"},
    };
    for (size_t i = 0; i < VD_ARRAY_SIZE(fam); i++)
        if (!strncmp(t, fam[i].prefix, strlen(fam[i].prefix)))
            return fam[i].what;
    return NULL;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct vd_lvm_seg *x = a, *y = b;
    return x->start_extent < y->start_extent ? -1 : x->start_extent > y->start_extent;
}

/* One segmentN section of lv; sg is zeroed. Problems refuse the LV. */
static int lvm_parse_seg(struct lvm_build *b, struct vd_lvm_vg *vg, struct vd_lvm_lv *lv,
                         const struct cfg_node *sn, struct vd_lvm_seg *sg)
{
    const char *type = cfg_str(sn, "type");
    if (!(sg->type = strdup(type ? type : "")))
        return -ENOMEM;
    if (!cfg_u64(sn, "start_extent", &sg->start_extent) ||
        !cfg_u64(sn, "extent_count", &sg->extent_count) || sg->extent_count == 0) {
        lv_refuse(b, lv, "VG %s, LV %s, %s: start_extent or extent_count missing or invalid",
                  vg->name, lv->name, sn->key);
        return 0;
    }
    if (!type) {
        lv_refuse(b, lv, "VG %s, LV %s, %s: no segment type", vg->name, lv->name, sn->key);
        return 0;
    }
    if (strcmp(type, "striped") && strcmp(type, "linear")) {
        const char *fam = segtype_family(type);
        if (fam)
            lv_refuse(b, lv, "%s are not supported (VG %s, LV %s, %s: type \"%s\")", fam, vg->name,
                      lv->name, sn->key, type);
        else
            lv_refuse(b, lv, "segment type \"%s\" is not supported (VG %s, LV %s, %s)", type,
                      vg->name, lv->name, sn->key);
        return 0;
    }
    uint64_t n = 1;
    if (!strcmp(type, "striped") && !cfg_u64(sn, "stripe_count", &n)) {
        lv_refuse(b, lv, "VG %s, LV %s, %s: stripe_count missing", vg->name, lv->name, sn->key);
        return 0;
    }
    if (n == 0 || n > MAX_STRIPES) {
        lv_refuse(b, lv, "VG %s, LV %s, %s: stripe_count %" PRIu64 " is not 1 to %u", vg->name,
                  lv->name, sn->key, n, MAX_STRIPES);
        return 0;
    }
    if (n > 1) {
        /* dm-stripe: the length splits evenly into stripes, and each
         * stripe's share into whole chunks. */
        uint64_t per;
        if (!cfg_u64(sn, "stripe_size", &sg->stripe_size) || sg->stripe_size == 0 ||
            sg->extent_count % n || ck_mul(sg->extent_count / n, vg->extent_size, &per) ||
            per % sg->stripe_size) {
            lv_refuse(b, lv,
                      "VG %s, LV %s, %s: stripe_size %" PRIu64 " sectors and stripe_count %" PRIu64
                      " do not divide extent_count %" PRIu64 " of %" PRIu64 "-sector extents",
                      vg->name, lv->name, sn->key, sg->stripe_size, n, sg->extent_count,
                      vg->extent_size);
            return 0;
        }
    }
    const struct cfg_node *st = cfg_get(sn, "stripes");
    if (!st || st->type != CFG_ARRAY) {
        lv_refuse(b, lv, "VG %s, LV %s, %s: no stripes list", vg->name, lv->name, sn->key);
        return 0;
    }
    if (!(sg->areas = calloc((size_t)n, sizeof(*sg->areas))))
        return -ENOMEM;
    const struct cfg_node *e = st->child;
    uint32_t i = 0;
    for (; i < n && e && e->next; i++, e = e->next->next) {
        const struct cfg_node *pe = e->next;
        if (e->type != CFG_STR || pe->type != CFG_INT || pe->num < 0)
            break;
        size_t k = 0;
        while (k < vg->npvs && strcmp(vg->pvs[k].name, e->str))
            k++;
        if (k == vg->npvs) {
            lv_refuse(b, lv,
                      "VG %s, LV %s, %s: stripe %u is on \"%s\", which is not a PV of the VG "
                      "(areas on other LVs, as pvmove uses, are not supported)",
                      vg->name, lv->name, sn->key, i + 1, e->str);
            sg->stripes = i;
            return 0;
        }
        sg->areas[i].pv = k;
        sg->areas[i].start_pe = (uint64_t)pe->num;
    }
    sg->stripes = i;
    if (i != n || e) {
        lv_refuse(b, lv,
                  "VG %s, LV %s, %s: stripes list does not hold stripe_count %" PRIu64
                  " pairs of \"pvN\", extent",
                  vg->name, lv->name, sn->key, n);
        return 0;
    }
    return 0;
}

/* Bounds of every area on its PV, and the LV's segments in order. */
static void lvm_check_lv(struct lvm_build *b, struct vd_lvm_vg *vg, struct vd_lvm_lv *lv)
{
    if (lv->nsegs > 1)
        qsort(lv->segs, lv->nsegs, sizeof(*lv->segs), seg_cmp);
    uint64_t next = 0;
    const char *t0 = lv->nsegs ? lv->segs[0].type : "";
    lv->segtype = t0[0] ? t0 : "unknown";
    for (size_t s = 0; s < lv->nsegs; s++) {
        struct vd_lvm_seg *sg = &lv->segs[s];
        if (strcmp(sg->type, t0))
            lv->segtype = "mixed";
        if (sg->start_extent != next) {
            lv_refuse(b, lv,
                      "VG %s, LV %s: segments %s at extent %" PRIu64 " (expected %" PRIu64 ")",
                      vg->name, lv->name, sg->start_extent < next ? "overlap" : "leave a gap",
                      sg->start_extent, next);
            return;
        }
        if (ck_add(next, sg->extent_count, &next)) {
            lv_refuse(b, lv, "VG %s, LV %s: extent counts overflow", vg->name, lv->name);
            return;
        }
        for (uint32_t a = 0; a < sg->stripes; a++) {
            const struct vd_lvm_vgpv *pv = &vg->pvs[sg->areas[a].pv];
            uint64_t len = sg->extent_count / sg->stripes, endpe, endb;
            if (ck_add(sg->areas[a].start_pe, len, &endpe) || endpe > pv->pe_count) {
                lv_refuse(b, lv,
                          "VG %s, LV %s: extents %" PRIu64 "-%" PRIu64 " of %s lie past its "
                          "pe_count %" PRIu64,
                          vg->name, lv->name, sg->areas[a].start_pe,
                          sg->areas[a].start_pe + len - 1, pv->name, pv->pe_count);
                return;
            }
            if (pv->dev < 0)
                continue; /* reported below */
            uint64_t dev = b->pvs[pv->dev].dev_bytes;
            if (ck_mul(endpe, vg->extent_size, &endb) || ck_add(endb, pv->pe_start, &endb) ||
                ck_mul(endb, SECTOR, &endb) || endb > dev) {
                lv_refuse(b, lv,
                          "VG %s, LV %s: extents %" PRIu64 "-%" PRIu64 " of %s lie past the end "
                          "of its device %s (%" PRIu64 " bytes; a truncated disk?)",
                          vg->name, lv->name, sg->areas[a].start_pe, endpe - 1, pv->name,
                          b->pvs[pv->dev].devname, dev);
                return;
            }
        }
    }
    lv->extents = next;
    if (!strcmp(lv->segtype, "striped")) {
        bool striped = false;
        for (size_t s = 0; s < lv->nsegs; s++)
            striped |= lv->segs[s].stripes > 1;
        if (!striped)
            lv->segtype = "linear";
    }
    if (lv->unsupported)
        return;
    if (ck_mul(next, vg->extent_size, &lv->size) || ck_mul(lv->size, SECTOR, &lv->size)) {
        lv_refuse(b, lv, "VG %s, LV %s: size overflows", vg->name, lv->name);
        lv->size = 0;
        return;
    }
    for (size_t s = 0; s < lv->nsegs; s++)
        for (uint32_t a = 0; a < lv->segs[s].stripes; a++) {
            const struct vd_lvm_vgpv *pv = &vg->pvs[lv->segs[s].areas[a].pv];
            if (pv->dev < 0) {
                lv_refuse(b, lv, "PV %s (uuid %s) of VG %s is missing", pv->name, pv->uuid,
                          vg->name);
                return;
            }
        }
    if (lv->nsegs == 0)
        lv_refuse(b, lv, "VG %s, LV %s: no segments", vg->name, lv->name);
}

struct lvm_ext {
    size_t pv;
    uint64_t start, end; /* extents [start, end) */
    struct vd_lvm_lv *lv;
};

static int ext_cmp(const void *a, const void *b)
{
    const struct lvm_ext *x = a, *y = b;
    if (x->pv != y->pv)
        return x->pv < y->pv ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* No extent may belong to two LVs: both are refused when one does. */
static int lvm_check_overlap(struct lvm_build *b, struct vd_lvm_vg *vg)
{
    size_t n = 0;
    for (size_t i = 0; i < vg->nlvs; i++)
        for (size_t s = 0; s < vg->lvs[i].nsegs; s++)
            n += vg->lvs[i].segs[s].stripes;
    struct lvm_ext *x = calloc(n ? n : 1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    n = 0;
    for (size_t i = 0; i < vg->nlvs; i++)
        for (size_t s = 0; s < vg->lvs[i].nsegs; s++) {
            const struct vd_lvm_seg *sg = &vg->lvs[i].segs[s];
            for (uint32_t a = 0; a < sg->stripes; a++) {
                x[n].pv = sg->areas[a].pv;
                x[n].start = sg->areas[a].start_pe;
                x[n].lv = &vg->lvs[i];
                /* an area that wraps was refused already: nothing to compare */
                if (!ck_add(x[n].start, sg->extent_count / sg->stripes, &x[n].end))
                    n++;
            }
        }
    qsort(x, n, sizeof(*x), ext_cmp);
    size_t far = 0; /* the area reaching furthest so far on this PV */
    for (size_t i = 1; i < n; i++) {
        if (x[i].pv != x[far].pv) {
            far = i;
            continue;
        }
        if (x[i].start < x[far].end) {
            const char *pvn = vg->pvs[x[i].pv].name;
            lv_refuse(b, x[i].lv, "VG %s, LV %s: extent %" PRIu64 " of %s is also used by LV %s",
                      vg->name, x[i].lv->name, x[i].start, pvn, x[far].lv->name);
            lv_refuse(b, x[far].lv, "VG %s, LV %s: extent %" PRIu64 " of %s is also used by LV %s",
                      vg->name, x[far].lv->name, x[i].start, pvn, x[i].lv->name);
        }
        if (x[i].end > x[far].end)
            far = i;
    }
    free(x);
    return 0;
}

/* "xxxxxx-xxxx-..." equals the label's 32 characters without dashes. */
static bool uuid_eq(const char *dashed, const char *plain)
{
    size_t k = 0;
    for (const char *p = dashed; *p; p++) {
        if (*p == '-')
            continue;
        if (k >= 32 || *p != plain[k++])
            return false;
    }
    return k == 32;
}

/* Build vg from the parsed metadata of pv index src. 0, or -EINVAL with
 * a warning already given, or -ENOMEM. */
static int lvm_build_vg(struct lvm_build *b, const struct cfg_node *root, size_t src,
                        struct vd_lvm_vg *vg)
{
    const char *dn = b->pvs[src].devname;
    const struct cfg_node *vs = NULL;
    for (const struct cfg_node *n = root; n; n = n->next)
        if (n->type == CFG_SECTION) {
            if (vs) {
                lvm_warn(b, "lvm: %s: metadata holds more than one VG section (%s, %s)", dn,
                         vs->key, n->key);
                return -EINVAL;
            }
            vs = n;
        }
    if (!vs) {
        lvm_warn(b, "lvm: %s: metadata holds no VG section", dn);
        return -EINVAL;
    }
    const char *id = cfg_str(vs, "id");
    if (!(vg->name = strdup(vs->key)) || !(vg->uuid = strdup(id ? id : "")))
        return -ENOMEM;
    if (!id || !cfg_u64(vs, "seqno", &vg->seqno) || !cfg_u64(vs, "extent_size", &vg->extent_size) ||
        vg->extent_size == 0 || vg->extent_size > (1ull << 32)) {
        lvm_warn(b, "lvm: %s: VG %s: id, seqno or extent_size missing or invalid", dn, vg->name);
        return -EINVAL;
    }
    const struct cfg_node *pvs = cfg_get(vs, "physical_volumes");
    for (const struct cfg_node *p = pvs && pvs->type == CFG_SECTION ? pvs->child : NULL; p;
         p = p->next) {
        if (p->type != CFG_SECTION)
            continue;
        if (vg->npvs == MAX_PVS) {
            lvm_warn(b, "lvm: %s: VG %s: more than %d PVs", dn, vg->name, MAX_PVS);
            return -EINVAL;
        }
        struct vd_lvm_vgpv *v = realloc(vg->pvs, (vg->npvs + 1) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        vg->pvs = v;
        v = &vg->pvs[vg->npvs++];
        memset(v, 0, sizeof(*v));
        v->dev = -1;
        const char *pid = cfg_str(p, "id");
        if (!(v->name = strdup(p->key)) || !(v->uuid = strdup(pid ? pid : "")))
            return -ENOMEM;
        if (!pid || !cfg_u64(p, "pe_start", &v->pe_start) ||
            !cfg_u64(p, "pe_count", &v->pe_count)) {
            lvm_warn(b, "lvm: %s: VG %s, %s: id, pe_start or pe_count missing or invalid", dn,
                     vg->name, v->name);
            return -EINVAL;
        }
        for (size_t d = 0; d < b->npvs; d++) {
            if (!uuid_eq(pid, b->pvs[d].uuid))
                continue;
            if (v->dev >= 0) {
                lvm_warn(b,
                         "lvm: VG %s, %s (uuid %s): found on both %s and %s (a cloned disk?); "
                         "using %s",
                         vg->name, v->name, pid, b->pvs[v->dev].devname, b->pvs[d].devname,
                         b->pvs[v->dev].devname);
                continue;
            }
            v->dev = (long)d;
        }
    }
    const struct cfg_node *lvs = cfg_get(vs, "logical_volumes");
    for (const struct cfg_node *l = lvs && lvs->type == CFG_SECTION ? lvs->child : NULL; l;
         l = l->next) {
        if (l->type != CFG_SECTION)
            continue;
        if (vg->nlvs == MAX_LVS) {
            lvm_warn(b, "lvm: %s: VG %s: more than %d LVs", dn, vg->name, MAX_LVS);
            return -EINVAL;
        }
        struct vd_lvm_lv *lv = realloc(vg->lvs, (vg->nlvs + 1) * sizeof(*lv));
        if (!lv)
            return -ENOMEM;
        vg->lvs = lv;
        lv = &vg->lvs[vg->nlvs++];
        memset(lv, 0, sizeof(*lv));
        lv->vg = vg;
        const char *lid = cfg_str(l, "id");
        if (!(lv->name = strdup(l->key)) || !(lv->uuid = strdup(lid ? lid : "")))
            return -ENOMEM;
        lv->visible = cfg_has_flag(l, "status", "VISIBLE");
        for (const struct cfg_node *s = l->child; s; s = s->next) {
            if (s->type != CFG_SECTION || strncmp(s->key, "segment", 7))
                continue;
            if (lv->nsegs == MAX_SEGS) {
                lv_refuse(b, lv, "VG %s, LV %s: more than %d segments", vg->name, lv->name,
                          MAX_SEGS);
                break;
            }
            struct vd_lvm_seg *sg = realloc(lv->segs, (lv->nsegs + 1) * sizeof(*sg));
            if (!sg)
                return -ENOMEM;
            lv->segs = sg;
            sg = &lv->segs[lv->nsegs++];
            memset(sg, 0, sizeof(*sg));
            if (lvm_parse_seg(b, vg, lv, s, sg) < 0)
                return -ENOMEM;
        }
    }
    /* Segment order and extent ranges need every LV's areas parsed. */
    for (size_t i = 0; i < vg->nlvs; i++) {
        struct vd_lvm_lv *lv = &vg->lvs[i];
        if (!lv->unsupported) {
            lvm_check_lv(b, vg, lv);
        } else {
            const char *t0 = lv->nsegs ? lv->segs[0].type : "";
            lv->segtype = t0[0] ? t0 : "unknown";
            for (size_t s = 0; s < lv->nsegs; s++)
                if (strcmp(lv->segs[s].type, t0))
                    lv->segtype = "mixed";
        }
    }
    if (lvm_check_overlap(b, vg) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < vg->nlvs; i++)
        if (vg->lvs[i].unsupported)
            vg->lvs[i].size = 0;
    return b->oom ? -ENOMEM : 0;
}

int vd_lvm_assemble(const struct vd_lvm_pvdev *pvs, size_t npvs, struct vd_lvm **out,
                    struct vd_error *err)
{
    struct lvm_build b = {.pvs = pvs, .npvs = npvs};
    if (!(b.l = calloc(1, sizeof(*b.l))))
        return vd_err(err, -ENOMEM, "out of memory");
    int r = 0;
    for (size_t i = 0; i < npvs && r == 0; i++) {
        if (!pvs[i].meta)
            continue;
        struct cfg_parser ps = {.p = pvs[i].meta, .end = pvs[i].meta + pvs[i].meta_len, .line = 1};
        struct cfg_node *root = NULL;
        if (cfg_items(&ps, &root, 0) < 0) {
            cfg_free(root);
            if (ps.oom) {
                r = -ENOMEM;
                break;
            }
            lvm_warn(&b, "lvm: %s: metadata: %s", pvs[i].devname, ps.msg);
            continue;
        }
        struct vd_lvm_vg vg = {0};
        r = lvm_build_vg(&b, root, i, &vg);
        cfg_free(root);
        if (r == -EINVAL) {
            vg_clear(&vg);
            r = 0;
            continue;
        }
        if (r < 0) {
            vg_clear(&vg);
            break;
        }
        /* The same VG from another PV: keep the newest copy. */
        size_t k = 0;
        while (k < b.l->nvgs && strcmp(b.l->vgs[k].uuid, vg.uuid))
            k++;
        if (k < b.l->nvgs) {
            if (vg.seqno > b.l->vgs[k].seqno) {
                vg_clear(&b.l->vgs[k]);
                b.l->vgs[k] = vg;
            } else {
                vg_clear(&vg);
            }
            continue;
        }
        for (size_t q = 0; q < b.l->nvgs; q++)
            if (!strcmp(b.l->vgs[q].name, vg.name))
                lvm_warn(&b,
                         "lvm: two VGs are named %s (uuid %s and %s): the second is not exposed",
                         vg.name, b.l->vgs[q].uuid, vg.uuid);
        struct vd_lvm_vg *v = realloc(b.l->vgs, (b.l->nvgs + 1) * sizeof(*v));
        if (!v) {
            vg_clear(&vg);
            r = -ENOMEM;
            break;
        }
        b.l->vgs = v;
        b.l->vgs[b.l->nvgs++] = vg;
    }
    /* The lv->vg back pointers move with the array: set them last. */
    for (size_t k = 0; k < b.l->nvgs; k++)
        for (size_t i = 0; i < b.l->vgs[k].nlvs; i++)
            b.l->vgs[k].lvs[i].vg = &b.l->vgs[k];
    if (r < 0 || b.oom) {
        vd_lvm_free(b.l);
        return vd_err(err, -ENOMEM, "lvm: out of memory assembling volume groups");
    }
    *out = b.l;
    return 0;
}

int vd_lvm_map(const struct vd_lvm_lv *lv, uint64_t off, uint64_t len, size_t *dev,
               uint64_t *dev_off, uint64_t *run, struct vd_error *err)
{
    const struct vd_lvm_vg *vg = lv->vg;
    if (lv->unsupported)
        return vd_err(err, -ENOTSUP, "lvm: VG %s, LV %s: %s", vg->name, lv->name, lv->unsupported);
    uint64_t es = vg->extent_size * SECTOR; /* checked when the size was */
    uint64_t end;
    if (len == 0 || ck_add(off, len, &end) || end > lv->size)
        return vd_err(err, -EINVAL, "lvm: VG %s, LV %s: range past the end", vg->name, lv->name);
    uint64_t ext = off / es;
    size_t lo = 0, hi = lv->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (lv->segs[mid].start_extent <= ext)
            lo = mid;
        else
            hi = mid;
    }
    const struct vd_lvm_seg *sg = &lv->segs[lo];
    uint64_t soff = off - sg->start_extent * es, slen = sg->extent_count * es;
    if (soff >= slen)
        return vd_err(err, -EIO, "lvm: VG %s, LV %s: no segment holds offset %" PRIu64, vg->name,
                      lv->name, off);
    const struct vd_lvm_area *a;
    uint64_t aoff, r = VD_MIN(len, slen - soff);
    if (sg->stripes == 1) {
        a = &sg->areas[0];
        aoff = soff;
    } else {
        uint64_t cs = sg->stripe_size * SECTOR, chunk = soff / cs, in = soff % cs;
        a = &sg->areas[chunk % sg->stripes];
        aoff = (chunk / sg->stripes) * cs + in;
        r = VD_MIN(r, cs - in);
    }
    const struct vd_lvm_vgpv *pv = &vg->pvs[a->pv];
    if (pv->dev < 0)
        return vd_err(err, -ENOTSUP, "lvm: VG %s, LV %s: PV %s is missing", vg->name, lv->name,
                      pv->name);
    *dev = (size_t)pv->dev;
    *dev_off = pv->pe_start * SECTOR + a->start_pe * es + aoff;
    *run = r;
    return 0;
}
