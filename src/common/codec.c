/*
 * Grain codec (see codec.h). Per-thread state lives in thread-local
 * pointers; a pthread key's destructor frees it when the thread exits, so
 * FUSE worker threads that come and go do not leak.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/codec.h"

#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#else
#include <zlib.h>
#endif

struct codec_tls {
#ifdef HAVE_LIBDEFLATE
    struct libdeflate_decompressor *dec;
    struct libdeflate_compressor *enc;
    int enc_level;
#else
    int unused;
#endif
};

static pthread_key_t codec_key;
static pthread_once_t codec_once = PTHREAD_ONCE_INIT;
static __thread struct codec_tls *codec_tls_ptr;

static void codec_tls_free(void *p)
{
    struct codec_tls *t = p;
    if (!t)
        return;
#ifdef HAVE_LIBDEFLATE
    libdeflate_free_decompressor(t->dec);
    libdeflate_free_compressor(t->enc);
#endif
    free(t);
}

static void codec_key_init(void)
{
    (void)pthread_key_create(&codec_key, codec_tls_free);
}

static struct codec_tls *codec_tls(void)
{
    if (codec_tls_ptr)
        return codec_tls_ptr;
    pthread_once(&codec_once, codec_key_init);
    struct codec_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    codec_tls_ptr = t;
    (void)pthread_setspecific(codec_key, t);
    return t;
}

const char *vd_codec_name(void)
{
#ifdef HAVE_LIBDEFLATE
    return "libdeflate";
#else
    return "zlib";
#endif
}

#ifdef HAVE_LIBDEFLATE

int vd_codec_zlib_decompress(const void *src, size_t src_len, void *dst, size_t dst_cap,
                             size_t *out_len)
{
    struct codec_tls *t = codec_tls();
    if (!t)
        return -ENOMEM;
    if (!t->dec && !(t->dec = libdeflate_alloc_decompressor()))
        return -ENOMEM;
    size_t n = 0;
    enum libdeflate_result r = libdeflate_zlib_decompress(t->dec, src, src_len, dst, dst_cap, &n);
    if (r == LIBDEFLATE_INSUFFICIENT_SPACE)
        return -E2BIG;
    if (r != LIBDEFLATE_SUCCESS)
        return -EINVAL;
    *out_len = n;
    return 0;
}

size_t vd_codec_zlib_bound(size_t src_len)
{
    /* libdeflate_zlib_compress_bound(NULL, n) is a pure function of n. */
    return libdeflate_zlib_compress_bound(NULL, src_len);
}

int vd_codec_zlib_compress(const void *src, size_t src_len, void *dst, size_t dst_cap,
                           size_t *out_len, int level)
{
    struct codec_tls *t = codec_tls();
    if (!t)
        return -ENOMEM;
    level = level < 0 ? 0 : level > 12 ? 12 : level;
    if (t->enc && t->enc_level != level) {
        libdeflate_free_compressor(t->enc);
        t->enc = NULL;
    }
    if (!t->enc) {
        if (!(t->enc = libdeflate_alloc_compressor(level)))
            return -ENOMEM;
        t->enc_level = level;
    }
    size_t n = libdeflate_zlib_compress(t->enc, src, src_len, dst, dst_cap);
    if (n == 0)
        return -ENOSPC;
    *out_len = n;
    return 0;
}

#else /* zlib */

int vd_codec_zlib_decompress(const void *src, size_t src_len, void *dst, size_t dst_cap,
                             size_t *out_len)
{
    z_stream zs = {0};
    if (src_len > UINT_MAX || dst_cap > UINT_MAX)
        return -E2BIG;
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)src_len;
    zs.next_out = dst;
    zs.avail_out = (uInt)dst_cap;
    int zr = inflate(&zs, Z_FINISH);
    int r = 0;
    if (zr == Z_STREAM_END)
        *out_len = zs.total_out;
    else if (zr == Z_BUF_ERROR && zs.avail_out == 0)
        r = -E2BIG;
    else if (zr == Z_MEM_ERROR)
        r = -ENOMEM;
    else
        r = -EINVAL;
    inflateEnd(&zs);
    return r;
}

size_t vd_codec_zlib_bound(size_t src_len)
{
    return (size_t)compressBound((uLong)src_len) + 16;
}

int vd_codec_zlib_compress(const void *src, size_t src_len, void *dst, size_t dst_cap,
                           size_t *out_len, int level)
{
    (void)codec_tls;
    level = level < 0 ? 0 : level > 9 ? 9 : level;
    uLongf n = (uLongf)dst_cap;
    int zr = compress2(dst, &n, src, (uLong)src_len, level);
    if (zr == Z_BUF_ERROR)
        return -ENOSPC;
    if (zr != Z_OK)
        return -ENOMEM;
    *out_len = n;
    return 0;
}

#endif
