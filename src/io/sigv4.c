/*
 * AWS Signature Version 4, header-based signing (see sigv4.h).
 *
 *   CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n
 *                      CanonicalHeaders \n SignedHeaders \n PayloadHash
 *   StringToSign     = "AWS4-HMAC-SHA256" \n AmzDate \n Scope \n hex(SHA256(CR))
 *   Scope            = YYYYMMDD/region/service/aws4_request
 *   SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service),
 *                           "aws4_request")
 *   Signature        = hex(HMAC(SigningKey, StringToSign))
 *
 * S3 specifics: the canonical URI is the path encoded once, '/' kept, no
 * "."/".." or "//" normalisation (object keys may contain any of those).
 * Query parameters are decoded, re-encoded with the unreserved set, and
 * sorted by name then value; a parameter without '=' gets an empty value
 * ("?uploads" signs as "uploads=").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "io/sigv4.h"

struct sb {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void sb_putn(struct sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_putc(struct sb *b, char c)
{
    sb_putn(b, &c, 1);
}

static bool sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

size_t vd_uri_encode(const char *s, size_t len, bool keep_slash, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sigv4_unreserved(c) || (keep_slash && c == '/')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

char *vd_uri_encode_dup(const char *s, bool keep_slash)
{
    size_t len = strlen(s);
    char *out = malloc(3 * len + 1);
    if (out)
        vd_uri_encode(s, len, keep_slash, out);
    return out;
}

static void sigv4_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void vd_sha256_hex(const void *buf, size_t len, char out[VD_SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = sizeof(md);
    EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
    sigv4_hex(md, 32, out);
}

void vd_amz_date(int64_t t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int sigv4_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode %XX escapes of s[0..n) and append the canonical encoding to b. */
static int sigv4_reencode(struct sb *b, const char *s, size_t n)
{
    char enc[4];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int h = sigv4_hexval(s[i + 1]), l = sigv4_hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -EINVAL;
            c = (unsigned char)(h * 16 + l);
            i += 2;
        }
        char ch = (char)c;
        sb_putn(b, enc, vd_uri_encode(&ch, 1, false, enc));
    }
    return 0;
}

struct sigv4_param {
    char *key, *val; /* canonical (encoded) */
};

static int sigv4_param_cmp(const void *a, const void *b)
{
    const struct sigv4_param *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->val, y->val);
}

static int sigv4_canonical_query(struct sb *out, const char *q)
{
    struct sigv4_param *ps = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    const char *p = q ? q : "";
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            struct sb k = {0}, v = {0};
            sb_putn(&k, "", 0);
            sb_putn(&v, "", 0);
            r = sigv4_reencode(&k, p, klen);
            if (r == 0 && eq)
                r = sigv4_reencode(&v, eq + 1, len - klen - 1);
            if (r == 0 && (k.oom || v.oom))
                r = -ENOMEM;
            if (r == 0 && n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct sigv4_param *np = realloc(ps, nc * sizeof(*np));
                if (!np)
                    r = -ENOMEM;
                else {
                    ps = np;
                    cap = nc;
                }
            }
            if (r != 0) {
                free(k.buf);
                free(v.buf);
                goto out_free;
            }
            ps[n].key = k.buf;
            ps[n].val = v.buf;
            n++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (n > 1)
        qsort(ps, n, sizeof(*ps), sigv4_param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_putc(out, '&');
        sb_puts(out, ps[i].key);
        sb_putc(out, '=');
        sb_puts(out, ps[i].val);
    }
out_free:
    for (size_t i = 0; i < n; i++) {
        free(ps[i].key);
        free(ps[i].val);
    }
    free(ps);
    return r;
}

struct sigv4_hdr {
    char *name;  /* lowercase */
    char *value; /* trimmed, collapsed */
    size_t order;
};

static int sigv4_hdr_cmp(const void *a, const void *b)
{
    const struct sigv4_hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Trim, and collapse runs of whitespace (including folded line breaks) into
 * one space, as the spec's Trimall does. */
static char *sigv4_trimall(const char *v)
{
    size_t n = strlen(v), o = 0;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = o > 0;
            continue;
        }
        if (space) {
            out[o++] = ' ';
            space = false;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

static void sigv4_hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &olen);
}

int vd_sigv4_sign(const struct vd_sigv4_request *req, struct vd_sigv4_result *out)
{
    struct sb cr = {0}, signed_hdrs = {0}, sts = {0}, auth = {0};
    struct sigv4_hdr *h = NULL;
    int r = 0;
    memset(out, 0, sizeof(*out));
    if (!req->method || !req->path || !req->payload_hash || !req->amz_date || !req->region ||
        !req->service || !req->access_key || !req->secret_key || strlen(req->amz_date) != 16)
        return -EINVAL;

    sb_puts(&cr, req->method);
    sb_putc(&cr, '\n');
    const char *path = req->path[0] ? req->path : "/";
    char *epath = vd_uri_encode_dup(path, true);
    if (!epath) {
        r = -ENOMEM;
        goto out_free;
    }
    sb_puts(&cr, epath);
    free(epath);
    sb_putc(&cr, '\n');
    r = sigv4_canonical_query(&cr, req->query);
    if (r)
        goto out_free;
    sb_putc(&cr, '\n');

    h = calloc(req->nheaders ? req->nheaders : 1, sizeof(*h));
    if (!h) {
        r = -ENOMEM;
        goto out_free;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        h[i].name = strdup(req->headers[i].name);
        h[i].value = sigv4_trimall(req->headers[i].value ? req->headers[i].value : "");
        h[i].order = i;
        if (!h[i].name || !h[i].value) {
            r = -ENOMEM;
            goto out_free;
        }
        for (char *c = h[i].name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    if (req->nheaders > 1)
        qsort(h, req->nheaders, sizeof(*h), sigv4_hdr_cmp);
    for (size_t i = 0; i < req->nheaders; i++) {
        bool same = i > 0 && !strcmp(h[i].name, h[i - 1].name);
        if (same) {
            /* Repeated header: values joined with ',' in request order. */
            cr.len--; /* drop the '\n' */
            sb_putc(&cr, ',');
        } else {
            if (signed_hdrs.len)
                sb_putc(&signed_hdrs, ';');
            sb_puts(&signed_hdrs, h[i].name);
            sb_puts(&cr, h[i].name);
            sb_putc(&cr, ':');
        }
        sb_puts(&cr, h[i].value);
        sb_putc(&cr, '\n');
    }
    sb_putc(&cr, '\n');
    sb_puts(&cr, signed_hdrs.buf ? signed_hdrs.buf : "");
    sb_putc(&cr, '\n');
    sb_puts(&cr, req->payload_hash);
    if (cr.oom || signed_hdrs.oom) {
        r = -ENOMEM;
        goto out_free;
    }

    char date[9], crhash[VD_SHA256_HEX_LEN + 1];
    memcpy(date, req->amz_date, 8);
    date[8] = '\0';
    vd_sha256_hex(cr.buf, cr.len, crhash);
    sb_puts(&sts, "AWS4-HMAC-SHA256\n");
    sb_puts(&sts, req->amz_date);
    sb_putc(&sts, '\n');
    sb_puts(&sts, date);
    sb_putc(&sts, '/');
    sb_puts(&sts, req->region);
    sb_putc(&sts, '/');
    sb_puts(&sts, req->service);
    sb_puts(&sts, "/aws4_request\n");
    sb_puts(&sts, crhash);

    size_t slen = strlen(req->secret_key);
    char *k0 = malloc(slen + 5);
    if (!k0 || sts.oom) {
        free(k0);
        r = -ENOMEM;
        goto out_free;
    }
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, req->secret_key, slen + 1);
    unsigned char k[32], sig[32];
    sigv4_hmac(k0, slen + 4, date, k);
    free(k0);
    sigv4_hmac(k, 32, req->region, k);
    sigv4_hmac(k, 32, req->service, k);
    sigv4_hmac(k, 32, "aws4_request", k);
    sigv4_hmac(k, 32, sts.buf, sig);
    sigv4_hex(sig, 32, out->signature);

    sb_puts(&auth, "AWS4-HMAC-SHA256 Credential=");
    sb_puts(&auth, req->access_key);
    sb_putc(&auth, '/');
    sb_puts(&auth, date);
    sb_putc(&auth, '/');
    sb_puts(&auth, req->region);
    sb_putc(&auth, '/');
    sb_puts(&auth, req->service);
    sb_puts(&auth, "/aws4_request, SignedHeaders=");
    sb_puts(&auth, signed_hdrs.buf ? signed_hdrs.buf : "");
    sb_puts(&auth, ", Signature=");
    sb_puts(&auth, out->signature);
    if (auth.oom) {
        r = -ENOMEM;
        goto out_free;
    }
    out->canonical_request = cr.buf;
    out->string_to_sign = sts.buf;
    out->authorization = auth.buf;
    cr.buf = sts.buf = auth.buf = NULL;

out_free:
    if (h) {
        for (size_t i = 0; i < req->nheaders; i++) {
            free(h[i].name);
            free(h[i].value);
        }
        free(h);
    }
    free(cr.buf);
    free(signed_hdrs.buf);
    free(sts.buf);
    free(auth.buf);
    return r;
}

void vd_sigv4_result_free(struct vd_sigv4_result *r)
{
    if (!r)
        return;
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->authorization);
    memset(r, 0, sizeof(*r));
}
