/*
 * Grain codec: zlib-wrapped DEFLATE (RFC 1950) as VMDK streamOptimized
 * grains use it. libdeflate when built with HAVE_LIBDEFLATE (2-3x faster),
 * zlib otherwise; both produce and accept the same streams. Each thread
 * keeps its own (de)compressor, so every function is thread-safe and
 * allocation-free after a thread's first call.
 */
#ifndef VD_COMMON_CODEC_H
#define VD_COMMON_CODEC_H

#include <stddef.h>

/* Inflate the zlib stream src[0, src_len) into dst (dst_cap bytes). Bytes
 * after the end of the stream are ignored. On success *out_len is the
 * number of bytes produced. Returns 0; -EINVAL for corrupt data; -E2BIG if
 * the data inflates to more than dst_cap bytes; -ENOMEM. */
int vd_codec_zlib_decompress(const void *src, size_t src_len, void *dst, size_t dst_cap,
                             size_t *out_len);

/* Worst-case compressed size of src_len bytes. */
size_t vd_codec_zlib_bound(size_t src_len);

/* Deflate src into a zlib stream at level (0..9 for zlib, 0..12 for
 * libdeflate; clamped). Returns 0 with *out_len set; -ENOSPC if dst_cap is
 * too small (use vd_codec_zlib_bound); -ENOMEM. */
int vd_codec_zlib_compress(const void *src, size_t src_len, void *dst, size_t dst_cap,
                           size_t *out_len, int level);

/* Name of the implementation in use: "libdeflate" or "zlib". */
const char *vd_codec_name(void);

#endif
