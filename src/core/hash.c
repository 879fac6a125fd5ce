/*
 * Digest of an image's raw content (OpenSSL EVP). Ranges that block_status
 * reports as zero are hashed from a zero buffer without being read, so a
 * sparse 1 TiB disk hashes at memory speed.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "core/driver.h"

#define HASH_CHUNK (4u << 20)

int vd_image_hash(struct vd_image *img, const char *algo, char *out, vd_progress_cb progress,
                  void *opaque, struct vd_error *err)
{
    const EVP_MD *md = EVP_get_digestbyname(algo);
    if (!md || (strcmp(algo, "md5") && strcmp(algo, "sha1") && strcmp(algo, "sha256")))
        return vd_err(err, -EINVAL, "unknown digest '%s' (use md5, sha1 or sha256)", algo);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HASH_CHUNK), *zero = calloc(1, HASH_CHUNK);
    int r = 0;
    if (!ctx || !buf || !zero || !EVP_DigestInit_ex(ctx, md, NULL)) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t off = 0; off < img->size;) {
        uint64_t want = VD_MIN((uint64_t)HASH_CHUNK, img->size - off), n;
        int st = vd_image_block_status(img, off, want, &n, err);
        if (st < 0) {
            r = st;
            goto out;
        }
        if (st == VD_STATUS_ZERO) {
            EVP_DigestUpdate(ctx, zero, (size_t)n);
        } else {
            r = vd_image_pread(img, buf, (size_t)n, off, err);
            if (r < 0)
                goto out;
            EVP_DigestUpdate(ctx, buf, (size_t)n);
        }
        off += n;
        if (progress && progress(opaque, off, img->size)) {
            r = vd_err(err, -ECANCELED, "hash: cancelled");
            goto out;
        }
    }
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(ctx, dig, &dlen);
    for (unsigned i = 0; i < dlen; i++)
        sprintf(out + 2 * i, "%02x", dig[i]);
    out[2 * dlen] = '\0';
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    free(zero);
    return r;
}
