/*
 * Digesting pass-through sink (see encoder.h). Appends are hashed as they
 * stream by; a patch that changes bytes marks the digest stale, and
 * vd_sink_tap_digest() then hashes the output again by reading it back
 * from the underlying sink (local files can; S3 cannot).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/checked.h"
#include "export/encoder.h"

struct tap_sink {
    struct vd_sink s; /* first */
    struct vd_sink *next;
    uint64_t base_off;
    const EVP_MD *md;
    EVP_MD_CTX *ctx;
    bool stale;
    bool off; /* not digesting (nobody asks): a pure pass-through */
};

/* The head declared on the tap becomes the head of next (declared there
 * before its first byte), or must lie inside the head next already has. */
static int tap_head(struct tap_sink *t, struct vd_error *err)
{
    if (t->s.pos != 0 || t->s.head_len == 0)
        return 0;
    uint64_t end = t->base_off + t->s.head_len;
    if (t->next->pos == 0 && t->next->head_len < end)
        return vd_sink_set_head(t->next, end, err);
    if (end > t->next->head_len)
        return vd_err(err, -EINVAL, "export: %s: member head outside the container head",
                      t->s.name);
    return 0;
}

static int tap_write(struct vd_sink *s, const void *buf, size_t len, struct vd_error *err)
{
    struct tap_sink *t = (struct tap_sink *)s;
    int r = tap_head(t, err);
    if (r == 0)
        r = t->next->ops->write(t->next, buf, len, err);
    if (r < 0)
        return r;
    if (!t->off)
        EVP_DigestUpdate(t->ctx, buf, len);
    s->pos += len;
    return 0;
}

static int tap_skip(struct vd_sink *s, uint64_t len, struct vd_error *err)
{
    static const uint8_t zero[65536];
    struct tap_sink *t = (struct tap_sink *)s;
    int r = tap_head(t, err);
    if (r == 0)
        r = vd_sink_zeros(t->next, len, err);
    if (r < 0)
        return r;
    s->pos += len;
    while (!t->off && len > 0) {
        size_t n = (size_t)VD_MIN(len, (uint64_t)sizeof(zero));
        EVP_DigestUpdate(t->ctx, zero, n);
        len -= n;
    }
    return 0;
}

static int tap_read(struct vd_sink *s, uint64_t off, void *buf, size_t len, struct vd_error *err)
{
    struct tap_sink *t = (struct tap_sink *)s;
    if (!t->next->ops->read)
        return vd_err(err, -ENOTSUP, "export: %s: cannot read back", s->name);
    return t->next->ops->read(t->next, t->base_off + off, buf, len, err);
}

static int tap_patch(struct vd_sink *s, uint64_t off, const void *buf, size_t len,
                     struct vd_error *err)
{
    struct tap_sink *t = (struct tap_sink *)s;
    if (off + len > s->head_len || off + len > s->pos)
        return vd_err(err, -EINVAL, "export: %s: patch [%llu, +%zu) outside the head", s->name,
                      (unsigned long long)off, len);
    t->stale = true;
    return t->next->ops->patch(t->next, t->base_off + off, buf, len, err);
}

static int tap_commit(struct vd_sink *s, struct vd_error *err)
{
    struct tap_sink *t = (struct tap_sink *)s;
    return t->next->ops->commit(t->next, err);
}

static void tap_abort(struct vd_sink *s)
{
    struct tap_sink *t = (struct tap_sink *)s;
    t->next->ops->abort(t->next);
}

static void tap_free(struct vd_sink *s)
{
    struct tap_sink *t = (struct tap_sink *)s;
    if (!t)
        return;
    EVP_MD_CTX_free(t->ctx);
    free(t->s.name);
    free(t);
}

static const struct vd_sink_ops tap_ops = {
    .name = "tap",
    .write = tap_write,
    .patch = tap_patch,
    .commit = tap_commit,
    .abort = tap_abort,
    .free = tap_free,
    .skip = tap_skip,
    .read = tap_read,
};

int vd_sink_tap_open(struct vd_sink *next, uint64_t base_off, const char *md, struct vd_sink **out,
                     struct vd_error *err)
{
    struct tap_sink *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t || !(t->s.name = strdup(next->name)) || !(t->ctx = EVP_MD_CTX_new())) {
        tap_free(t ? &t->s : NULL);
        return vd_err(err, -ENOMEM, "export: out of memory");
    }
    t->s.ops = &tap_ops;
    t->next = next;
    t->base_off = base_off;
    t->md = strcmp(md, "sha1") == 0 ? EVP_sha1() : EVP_sha256();
    if (EVP_DigestInit_ex(t->ctx, t->md, NULL) != 1) {
        tap_free(&t->s);
        return vd_err(err, -EIO, "export: %s: digest init failed", md);
    }
    *out = &t->s;
    return 0;
}

void vd_sink_tap_off(struct vd_sink *s)
{
    ((struct tap_sink *)s)->off = true;
}

bool vd_sink_tap_streamed(const struct vd_sink *s)
{
    const struct tap_sink *t = (const struct tap_sink *)s;
    return !t->stale && !t->off;
}

static void tap_hex(const unsigned char *d, unsigned n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

int vd_sink_tap_digest(struct vd_sink *s, char *hex, struct vd_error *err)
{
    struct tap_sink *t = (struct tap_sink *)s;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    hex[0] = '\0';
    if (!t->stale && !t->off) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c || EVP_MD_CTX_copy_ex(c, t->ctx) != 1 || EVP_DigestFinal_ex(c, d, &n) != 1) {
            EVP_MD_CTX_free(c);
            return vd_err(err, -ENOMEM, "export: digest failed");
        }
        EVP_MD_CTX_free(c);
        tap_hex(d, n, hex);
        return 0;
    }
    if (!t->next->ops->read)
        return vd_err(err, -ENOTSUP, "export: %s: cannot read the output back to digest it",
                      s->name);
    const size_t bufsz = 1u << 20;
    uint8_t *buf = malloc(bufsz);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int r = 0;
    if (!buf || !c || EVP_DigestInit_ex(c, t->md, NULL) != 1) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto out;
    }
    for (uint64_t off = 0; off < s->pos;) {
        size_t len = (size_t)VD_MIN((uint64_t)bufsz, s->pos - off);
        r = t->next->ops->read(t->next, t->base_off + off, buf, len, err);
        if (r < 0)
            goto out;
        EVP_DigestUpdate(c, buf, len);
        off += len;
    }
    EVP_DigestFinal_ex(c, d, &n);
    tap_hex(d, n, hex);
out:
    EVP_MD_CTX_free(c);
    free(buf);
    return r;
}
