/*
 * Listing an initramfs: the member paths of every cpio archive in it, as
 * the kernel's init/initramfs.c unpacks them
 * (Documentation/driver-api/early-userspace/buffer-format.rst):
 *
 *   initramfs  := ("\0" | cpio_archive | cpio_compressed_archive)*
 *   cpio       := (header name pad4 data pad4)* "TRAILER!!!" entry
 *   header     := "070701" or "070702", 13 fields of 8 hex digits (110 bytes)
 *
 * Debian and RHEL put an uncompressed early-microcode cpio first, then a
 * compressed one (gzip, xz, zstd, lz4 legacy frames as `lz4 -l` and the
 * kernel's scripts write, bzip2, lzma). One push parser walks the newc
 * entries of both: over the raw bytes directly, and over the output of
 * libarchive, used only as a decompressor (filter_all + format_raw), for
 * a compressed part. Zero padding between archives is skipped, as the
 * kernel does. A compressed part runs to the end of the data:
 * libarchive's filters read concatenated members of one compressor (gzip
 * members, xz streams, zstd frames), not a second compressor after the
 * first; no initramfs tool writes that.
 *
 * Limits against decompression bombs and corrupt headers: at most
 * INITRAMFS_MAX_MEMBERS members, INITRAMFS_MAX_BYTES decoded bytes, names
 * up to INITRAMFS_MAX_NAME bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"

#ifdef HAVE_LIBARCHIVE
#include <archive.h>
#endif

#define INITRAMFS_MAX_MEMBERS 1000000
#define INITRAMFS_MAX_BYTES   (4ull << 30)
#define INITRAMFS_MAX_NAME    4096
#define CPIO_HDR              110

enum cpio_state { CPIO_START, CPIO_HEADER, CPIO_NAME, CPIO_SKIP };

struct cpio_parser {
    enum cpio_state state;
    uint64_t pos; /* bytes seen in this stream (alignment is relative to it) */
    uint8_t hdr[CPIO_HDR];
    size_t have; /* bytes of hdr or name collected */
    uint32_t namesize;
    uint64_t skip; /* bytes of data and padding still to skip */
    char name[INITRAMFS_MAX_NAME + 1];
    uint64_t members;
    vd_initramfs_cb cb;
    void *opaque;
    int cb_rc; /* the callback's non-zero answer */
    const char *where;
    struct vd_error *err;
};

static int cpio_hex(const uint8_t *p, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 8; i++) {
        uint8_t c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

static uint64_t pad4(uint64_t x)
{
    return (4 - (x & 3)) & 3;
}

/* A complete header and name: report the member, set up the data skip. */
static int cpio_member(struct cpio_parser *p)
{
    uint32_t filesize = 0;
    cpio_hex(p->hdr + 54, &filesize);
    p->skip = filesize + pad4(filesize); /* data starts aligned after the name's pad */
    if (p->name[p->namesize - 1] != '\0')
        return vd_err(p->err, -EINVAL,
                      "initramfs: %s: cpio member name is not NUL-terminated (c_namesize %u)",
                      p->where, p->namesize);
    if (!strcmp(p->name, "TRAILER!!!")) {
        p->state = CPIO_SKIP; /* then back to START: zeros, another archive, or the end */
        return 0;
    }
    if (++p->members > INITRAMFS_MAX_MEMBERS)
        return vd_err(p->err, -EFBIG, "initramfs: %s: more than %d members", p->where,
                      INITRAMFS_MAX_MEMBERS);
    const char *n = p->name;
    while (n[0] == '/' || (n[0] == '.' && n[1] == '/'))
        n += n[0] == '/' ? 1 : 2;
    if (n[0] && strcmp(n, ".")) {
        int rc = p->cb(p->opaque, n);
        if (rc) {
            p->cb_rc = rc;
            return 1;
        }
    }
    p->state = CPIO_SKIP;
    return 0;
}

/* Feed n bytes. *used gets how many were consumed; it stops early (return
 * 0 with *used < n) only in the START state on a byte that begins neither
 * zero padding nor a cpio header: a compressed archive, for the caller.
 * Returns 1 when the callback stopped the walk, -errno on corruption. */
static int cpio_feed(struct cpio_parser *p, const uint8_t *b, size_t n, size_t *used)
{
    size_t i = 0;
    int r = 0;
    while (i < n) {
        switch (p->state) {
        case CPIO_START:
            if (b[i] == 0) {
                i++;
                p->pos++;
                continue;
            }
            /* the kernel's test: a '0' at a 4-aligned offset starts a
             * header; anything else starts a compressed archive */
            if (b[i] != '0' || (p->pos & 3))
                goto stop;
            p->state = CPIO_HEADER;
            p->have = 0;
            continue;
        case CPIO_HEADER: {
            size_t k = CPIO_HDR - p->have < n - i ? CPIO_HDR - p->have : n - i;
            memcpy(p->hdr + p->have, b + i, k);
            p->have += k;
            i += k;
            p->pos += k;
            if (p->have < CPIO_HDR)
                continue;
            uint32_t v;
            if (memcmp(p->hdr, "07070", 5) || (p->hdr[5] != '1' && p->hdr[5] != '2'))
                return vd_err(p->err, -EINVAL,
                              "initramfs: %s: no newc cpio magic 070701/070702 at offset %llu "
                              "(old binary or odc cpio is not what the kernel reads)",
                              p->where, (unsigned long long)(p->pos - CPIO_HDR));
            for (int f = 0; f < 13; f++)
                if (cpio_hex(p->hdr + 6 + 8 * f, &v) < 0)
                    return vd_err(p->err, -EINVAL,
                                  "initramfs: %s: cpio header at offset %llu has a non-hex "
                                  "field %d",
                                  p->where, (unsigned long long)(p->pos - CPIO_HDR), f);
            cpio_hex(p->hdr + 94, &p->namesize);
            if (p->namesize == 0 || p->namesize > INITRAMFS_MAX_NAME)
                return vd_err(p->err, -EINVAL,
                              "initramfs: %s: cpio c_namesize %u at offset %llu is out of "
                              "range (1..%d)",
                              p->where, p->namesize, (unsigned long long)(p->pos - CPIO_HDR),
                              INITRAMFS_MAX_NAME);
            p->state = CPIO_NAME;
            p->have = 0;
            continue;
        }
        case CPIO_NAME: {
            /* the name, then padding so header + name is 4-aligned */
            size_t want = p->namesize + (size_t)pad4(CPIO_HDR + p->namesize);
            size_t k = want - p->have < n - i ? want - p->have : n - i;
            size_t keep = p->have < p->namesize ? p->namesize - p->have : 0;
            if (keep > k)
                keep = k;
            memcpy(p->name + p->have, b + i, keep);
            p->have += k;
            i += k;
            p->pos += k;
            if (p->have < want)
                continue;
            p->name[p->namesize] = '\0';
            r = cpio_member(p);
            if (r)
                goto out;
            continue;
        }
        case CPIO_SKIP: {
            uint64_t k = p->skip < n - i ? p->skip : n - i;
            p->skip -= k;
            i += (size_t)k;
            p->pos += k;
            if (p->skip == 0)
                p->state = CPIO_START;
            continue;
        }
        }
    }
stop:
out:
    *used = i;
    return r;
}

static int cpio_finish(struct cpio_parser *p)
{
    if (p->state != CPIO_START)
        return vd_err(p->err, -EINVAL,
                      "initramfs: %s: the archive ends inside a cpio member (truncated)", p->where);
    return 0;
}

#ifdef HAVE_LIBARCHIVE
/* Decompress data (whatever filter libarchive recognises) into the parser. */
static int initramfs_compressed(struct cpio_parser *p, const void *data, size_t len,
                                uint64_t *decoded, struct vd_error *err)
{
    struct archive *a = archive_read_new();
    if (!a)
        return vd_err(err, -ENOMEM, "initramfs: out of memory");
    int r = 0;
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    struct archive_entry *e;
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK ||
        archive_read_next_header(a, &e) != ARCHIVE_OK) {
        r = vd_err(err, -EINVAL,
                   "initramfs: %s: neither a cpio archive nor a compressed one libarchive "
                   "knows: %s",
                   p->where, archive_error_string(a) ? archive_error_string(a) : "no detail");
        goto out;
    }
    if (archive_filter_count(a) < 2) {
        r = vd_err(err, -EINVAL,
                   "initramfs: %s: data that is neither cpio nor compressed (first byte %#x)",
                   p->where, ((const uint8_t *)data)[0]);
        goto out;
    }
    p->where = archive_filter_name(a, 0);
    p->pos = 0;
    uint8_t *buf = malloc(1 << 16);
    if (!buf) {
        r = vd_err(err, -ENOMEM, "initramfs: out of memory");
        goto out;
    }
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, 1 << 16);
        if (n == 0)
            break;
        if (n < 0) {
            r = vd_err(err, -EINVAL, "initramfs: %s stream: %s", p->where, archive_error_string(a));
            break;
        }
        *decoded += (uint64_t)n;
        if (*decoded > INITRAMFS_MAX_BYTES) {
            r = vd_err(err, -EFBIG, "initramfs: %s stream: decodes to more than %llu bytes",
                       p->where, (unsigned long long)INITRAMFS_MAX_BYTES);
            break;
        }
        size_t used = 0;
        r = cpio_feed(p, buf, (size_t)n, &used);
        if (r)
            break;
        if (used < (size_t)n) {
            r = vd_err(err, -EINVAL,
                       "initramfs: %s stream: data at offset %llu is not a cpio header", p->where,
                       (unsigned long long)p->pos);
            break;
        }
    }
    free(buf);
    if (r == 0)
        r = cpio_finish(p);
out:
    archive_read_free(a);
    return r;
}
#endif

int vd_initramfs_list(const void *data, size_t len, vd_initramfs_cb cb, void *opaque,
                      struct vd_error *err)
{
    struct cpio_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return vd_err(err, -ENOMEM, "initramfs: out of memory");
    p->cb = cb;
    p->opaque = opaque;
    p->where = "cpio";
    p->err = err;
    size_t used = 0;
    int r = cpio_feed(p, data, len, &used);
    if (r == 0 && used < len) {
        uint64_t decoded = 0;
        /* a compressed archive from here to the end */
#ifdef HAVE_LIBARCHIVE
        p->state = CPIO_START;
        r = initramfs_compressed(p, (const uint8_t *)data + used, len - used, &decoded, err);
#else
        r = vd_err(err, -ENOTSUP,
                   "initramfs: a compressed archive at offset %zu is not read: vdisk was built "
                   "without libarchive (install libarchive-dev and rebuild)",
                   used);
#endif
    } else if (r == 0) {
        r = cpio_finish(p);
    }
    if (r == 1)
        r = p->cb_rc < 0 ? p->cb_rc : 0;
    free(p);
    return r;
}
