/*
 * tar: the archive format of OVA packages, read in place.
 *
 * Spec: POSIX.1-2017 "pax" (XCU pax, sections "ustar Interchange Format"
 * and "pax Interchange Format"), plus the GNU tar manual, "Basic Tar
 * Format" (GNU extensions: 'L' long names, base-256 numbers, 'S' sparse).
 *
 *   offset 0        512        512+roundup(size)
 *          +--------+--------------------+--------+-----    ---+--------+--------+
 *          | header | member data ...pad | header | data  ...  | 0 x512 | 0 x512 |
 *          +--------+--------------------+--------+-----    ---+--------+--------+
 *
 *   header block (512 bytes, numbers in octal ASCII, NUL/space terminated):
 *     0 name[100]  100 mode[8]  108 uid[8]  116 gid[8]  124 size[12]
 *     136 mtime[12]  148 chksum[8]  156 typeflag  157 linkname[100]
 *     257 magic[6]  263 version[2]  265 uname[32]  297 gname[32]
 *     329 devmajor[8]  337 devminor[8]  345 prefix[155]  (ustar only)
 *   A size whose first byte has the high bit set is GNU base-256: the
 *   remaining bits, big-endian, are the value (members of 8 GiB and over).
 *   'x' (next member) and 'g' (all later members) headers carry pax records
 *   "LEN key=value\n"; path= and size= override the header fields.
 *   'L' carries the next member's name (GNU); 'K' its link name (ignored).
 *
 * Formats: v7, ustar, GNU, pax. The checksum is verified (unsigned sum, or
 * the signed sum some old tars wrote). The walk ends at the first zero block
 * (the second is not required), or at EOF on a block boundary.
 *
 * Not supported: reading the data of sparse members (GNU 'S', pax
 * GNU.sparse.*: walked over and flagged, never exposed), multi-volume
 * archives ('M'), compressed archives (.ova is never compressed as a whole).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "formats/tar.h"

#define TAR_NAME               0
#define TAR_SIZE               124
#define TAR_CHKSUM             148
#define TAR_TYPEFLAG           156
#define TAR_MAGIC              257
#define TAR_VERSION            263
#define TAR_PREFIX             345
#define TAR_GNU_ISEXTENDED     482
#define TAR_GNU_EXT_ISEXTENDED 504
#define TAR_MAX_SPARSE_EXT     4096 /* GNU sparse extension blocks after one header */

/* Decode an octal field: optional leading spaces, octal digits, then NUL,
 * space or the end of the field. An all-blank field is 0. */
static int tar_octal(const uint8_t *f, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && f[i] == ' ')
        i++;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 61)
            return -1;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return -1;
    *out = v;
    return 0;
}

/* A numeric field: octal, or GNU base-256 (first byte 0x80; 0xff is a
 * negative number, never a valid size). */
static int tar_number(const uint8_t *f, size_t n, uint64_t *out)
{
    if (!(f[0] & 0x80))
        return tar_octal(f, n, out);
    if (f[0] != 0x80)
        return -1;
    uint64_t v = 0;
    for (size_t i = 1; i < n; i++) {
        if (v >> 56)
            return -1;
        v = v << 8 | f[i];
    }
    *out = v;
    return 0;
}

static bool tar_is_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Sums of the block with the checksum field read as eight spaces. */
static void tar_sums(const uint8_t *blk, uint64_t *usum, int64_t *ssum)
{
    uint64_t u = 0;
    int64_t s = 0;
    for (size_t i = 0; i < VD_TAR_BLOCK; i++) {
        uint8_t c = (i >= TAR_CHKSUM && i < TAR_CHKSUM + 8) ? ' ' : blk[i];
        u += c;
        s += (int8_t)c;
    }
    *usum = u;
    *ssum = s;
}

static bool tar_checksum_ok(const uint8_t *blk, uint64_t *stored, uint64_t *computed)
{
    uint64_t u, st;
    int64_t s;
    tar_sums(blk, &u, &s);
    *computed = u;
    if (tar_octal(blk + TAR_CHKSUM, 8, &st) < 0)
        return false;
    *stored = st;
    /* An empty field parses as 0. The unsigned sum is at least 256 (the
     * eight spaces), but the signed one of old tars can be 0: an MBR whose
     * random disk signature balances its 0x55AA probed as a tar 1 time in a
     * few hundred. No writer stores 0, so it is never a valid checksum. */
    return st != 0 && (st == u || (s >= 0 && st == (uint64_t)s));
}

bool vd_tar_probe(const uint8_t *blk, size_t len)
{
    uint64_t stored = 0, computed, size;
    if (len < VD_TAR_BLOCK || tar_is_zero(blk, VD_TAR_BLOCK))
        return false;
    return tar_checksum_ok(blk, &stored, &computed) && tar_number(blk + TAR_SIZE, 12, &size) == 0;
}

static void tar_copy_field(char *dst, const uint8_t *f, size_t n)
{
    size_t l = strnlen((const char *)f, n);
    memcpy(dst, f, l);
    dst[l] = '\0';
}

int vd_tar_parse_header(const uint8_t *blk, size_t len, const char *file, uint64_t off,
                        struct vd_tar_header *h, struct vd_error *err)
{
    uint64_t stored = 0, computed;
    if (len < VD_TAR_BLOCK)
        return vd_err(err, -EINVAL, "tar: %s: header at offset %" PRIu64 ": truncated (%zu bytes)",
                      file, off, len);
    if (tar_is_zero(blk, VD_TAR_BLOCK))
        return 1;
    if (!tar_checksum_ok(blk, &stored, &computed)) {
        char field[9];
        tar_copy_field(field, blk + TAR_CHKSUM, 8);
        for (char *p = field; *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                *p = '?';
        return vd_err(err, -EINVAL,
                      "tar: %s: header at offset %" PRIu64
                      ": checksum mismatch (stored '%s', computed %06" PRIo64 ")",
                      file, off, field, computed);
    }
    memset(h, 0, sizeof(*h));
    if (!memcmp(blk + TAR_MAGIC, "ustar\0", 6))
        h->kind = VD_TAR_USTAR;
    else if (!memcmp(blk + TAR_MAGIC, "ustar  \0", 8))
        h->kind = VD_TAR_GNU;
    else
        h->kind = VD_TAR_V7;
    if (tar_number(blk + TAR_SIZE, 12, &h->size) < 0 || h->size > VD_TAR_MAX_SIZE)
        return vd_err(err, -EINVAL, "tar: %s: header at offset %" PRIu64 ": bad size field", file,
                      off);
    h->typeflag = (char)blk[TAR_TYPEFLAG];
    size_t plen = h->kind == VD_TAR_USTAR ? strnlen((const char *)blk + TAR_PREFIX, 155) : 0;
    if (plen) {
        memcpy(h->name, blk + TAR_PREFIX, plen);
        h->name[plen] = '/';
        tar_copy_field(h->name + plen + 1, blk + TAR_NAME, 100);
    } else {
        tar_copy_field(h->name, blk + TAR_NAME, 100);
    }
    return 0;
}

void vd_tar_pax_clear(struct vd_tar_pax *pax)
{
    free(pax->path);
    memset(pax, 0, sizeof(*pax));
}

static int tar_pax_decimal(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int vd_tar_parse_pax(const uint8_t *buf, size_t len, const char *file, uint64_t off,
                     struct vd_tar_pax *pax, struct vd_error *err)
{
    const char *p = (const char *)buf;
    size_t pos = 0;
    while (pos < len) {
        /* Trailing NUL padding ends the record list. */
        if (p[pos] == '\0' && tar_is_zero(buf + pos, len - pos))
            break;
        size_t rec = pos, i = pos;
        uint64_t rlen = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9' && i - pos < 19)
            rlen = rlen * 10 + (uint64_t)(p[i++] - '0');
        if (i == pos || i >= len || p[i] != ' ' || rlen <= i - pos + 1 || rlen > len - pos ||
            p[pos + rlen - 1] != '\n')
            return vd_err(err, -EINVAL,
                          "tar: %s: pax header at offset %" PRIu64 ": malformed record at byte %zu",
                          file, off, rec);
        const char *kv = p + i + 1, *end = p + pos + rlen - 1; /* end: the '\n' */
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq || eq == kv)
            return vd_err(err, -EINVAL,
                          "tar: %s: pax header at offset %" PRIu64
                          ": record at byte %zu has no key",
                          file, off, rec);
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
        const char *val = eq + 1;
        if (klen == 4 && !memcmp(kv, "path", 4)) {
            if (memchr(val, '\0', vlen))
                return vd_err(err, -EINVAL,
                              "tar: %s: pax header at offset %" PRIu64 ": path contains a NUL byte",
                              file, off);
            char *s = strndup(val, vlen);
            if (!s)
                return vd_err(err, -ENOMEM, "out of memory");
            free(pax->path);
            pax->path = s;
        } else if (klen == 4 && !memcmp(kv, "size", 4)) {
            uint64_t v;
            if (vlen == 0) {
                pax->has_size = false; /* an empty value restores the header's field */
            } else if (tar_pax_decimal(val, vlen, &v) < 0 || v > VD_TAR_MAX_SIZE) {
                return vd_err(err, -EINVAL,
                              "tar: %s: pax header at offset %" PRIu64 ": bad size '%.*s'", file,
                              off, (int)VD_MIN(vlen, (size_t)40), val);
            } else {
                pax->has_size = true;
                pax->size = v;
            }
        } else if (klen > 11 && !memcmp(kv, "GNU.sparse.", 11)) {
            pax->sparse = true;
        }
        pos += (size_t)rlen;
    }
    return 0;
}

char *vd_tar_normalize(const char *name, bool *unsafe)
{
    size_t n = strlen(name);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    *unsafe = false;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 2 && p[0] == '.' && p[1] == '.')
            *unsafe = true;
        if (cl && !(cl == 1 && p[0] == '.')) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, cl);
            o += cl;
        }
        p += cl;
        if (*p == '/')
            p++;
    }
    out[o] = '\0';
    return out;
}

/* Read a member's whole data (a pax header or a GNU long name), capped. */
static int tar_read_data(struct vd_io *io, uint64_t off, uint64_t size, uint64_t cap,
                         const char *what, uint8_t **out, struct vd_error *err)
{
    *out = NULL; /* on every path: callers free it, GCC -O3 cannot see vd_err() < 0 */
    if (size > cap)
        return vd_err(err, -EINVAL,
                      "tar: %s: %s at offset %" PRIu64 " is %" PRIu64 " bytes (limit %" PRIu64 ")",
                      io->name, what, off, size, cap);
    uint8_t *b = malloc((size_t)size + 1);
    if (!b)
        return vd_err(err, -ENOMEM, "out of memory");
    int r = vd_io_pread_full(io, b, (size_t)size, off, err);
    if (r < 0) {
        free(b);
        return r;
    }
    b[size] = 0;
    *out = b;
    return 0;
}

static int tar_add(struct vd_tar *t, size_t *cap, const struct vd_tar_member *m)
{
    if (t->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct vd_tar_member *nm = realloc(t->m, nc * sizeof(*nm));
        if (!nm)
            return -ENOMEM;
        t->m = nm;
        *cap = nc;
    }
    t->m[t->n++] = *m;
    return 0;
}

/* Types whose size field does not count data blocks (POSIX: links, devices,
 * directories, FIFOs). */
static bool tar_type_has_no_data(char t)
{
    return t >= '1' && t <= '6';
}

int vd_tar_walk(struct vd_io *io, struct vd_tar *out, struct vd_error *err)
{
    struct vd_tar t = {0};
    struct vd_tar_pax local = {0}, global = {0};
    char *longname = NULL;
    size_t cap = 0, nheaders = 0;
    uint64_t off = 0;
    uint8_t blk[VD_TAR_BLOCK];
    int r = 0;

    for (;;) {
        if (off >= io->size)
            break;
        if (io->size - off < VD_TAR_BLOCK) {
            size_t rest = (size_t)(io->size - off);
            r = vd_io_pread_full(io, blk, rest, off, err);
            if (r < 0)
                goto fail;
            if (tar_is_zero(blk, rest))
                break;
            r = vd_err(err, -EINVAL,
                       "tar: %s: header at offset %" PRIu64 ": truncated (%zu bytes before EOF)",
                       io->name, off, rest);
            goto fail;
        }
        r = vd_io_pread_full(io, blk, sizeof(blk), off, err);
        if (r < 0)
            goto fail;
        struct vd_tar_header h;
        r = vd_tar_parse_header(blk, sizeof(blk), io->name, off, &h, err);
        if (r < 0)
            goto fail;
        if (r == 1) {
            r = 0;
            break;
        }
        if (++nheaders > VD_TAR_MAX_HEADERS) {
            r = vd_err(err, -EINVAL, "tar: %s: more than %d headers (hostile archive?)", io->name,
                       VD_TAR_MAX_HEADERS);
            goto fail;
        }
        uint64_t hdr_off = off, data_off = off + VD_TAR_BLOCK, size = h.size, end;
        /* GNU sparse: extension blocks of sparse map sit between the header
         * and the data. */
        if (h.typeflag == 'S' && blk[TAR_GNU_ISEXTENDED]) {
            uint8_t ext[VD_TAR_BLOCK];
            int n = 0;
            do {
                if (++n > TAR_MAX_SPARSE_EXT) {
                    r = vd_err(err, -EINVAL,
                               "tar: %s: header at offset %" PRIu64
                               ": too many sparse extension blocks",
                               io->name, hdr_off);
                    goto fail;
                }
                r = vd_io_pread_full(io, ext, sizeof(ext), data_off, err);
                if (r < 0)
                    goto fail;
                data_off += VD_TAR_BLOCK;
            } while (ext[TAR_GNU_EXT_ISEXTENDED]);
        }
        bool member = false;
        if (h.typeflag == 'X')
            h.typeflag = 'x'; /* Solaris tar and old star: pax 'x' under another letter */
        if (h.typeflag != 'x' && h.typeflag != 'g' && h.typeflag != 'L' && h.typeflag != 'K') {
            member = true;
            if (local.has_size)
                size = local.size;
            else if (global.has_size)
                size = global.size;
            if (tar_type_has_no_data(h.typeflag))
                size = 0;
        }
        if (ck_add(data_off, size, &end) || end > io->size) {
            const char *nm = member && local.path && local.path[0] ? local.path
                             : member && longname                  ? longname
                                                                   : h.name;
            r = vd_err(err, -EINVAL,
                       "tar: %s: member '%s' (header at offset %" PRIu64 "): %" PRIu64
                       " bytes of data run past the end of the archive (%" PRIu64 " bytes)",
                       io->name, nm, hdr_off, size, io->size);
            goto fail;
        }
        switch (h.typeflag) {
        case 'x':
        case 'g': {
            uint8_t *d;
            r = tar_read_data(io, data_off, size, VD_TAR_MAX_PAX, "pax header", &d, err);
            if (r < 0)
                goto fail;
            r = vd_tar_parse_pax(d, (size_t)size, io->name, data_off,
                                 h.typeflag == 'x' ? &local : &global, err);
            free(d);
            if (r < 0)
                goto fail;
            break;
        }
        case 'L': {
            uint8_t *d;
            r = tar_read_data(io, data_off, size, VD_TAR_MAX_LONGNAME, "GNU long name", &d, err);
            if (r < 0)
                goto fail;
            free(longname);
            longname = (char *)d; /* NUL-terminated by tar_read_data; stops at the first NUL */
            break;
        }
        case 'K':
            break;
        default: {
            const char *name = local.path && local.path[0]     ? local.path
                               : global.path && global.path[0] ? global.path
                               : longname                      ? longname
                                                               : h.name;
            struct vd_tar_member m = {
                .hdr_offset = hdr_off,
                .offset = data_off,
                .size = size,
                .typeflag = (h.typeflag == '\0' || h.typeflag == '7') ? '0' : h.typeflag,
                .sparse = h.typeflag == 'S' || local.sparse,
            };
            m.name = vd_tar_normalize(name, &m.unsafe);
            if (!m.name || tar_add(&t, &cap, &m) < 0) {
                free(m.name);
                r = vd_err(err, -ENOMEM, "out of memory");
                goto fail;
            }
            vd_tar_pax_clear(&local);
            free(longname);
            longname = NULL;
            break;
        }
        }
        /* end + padding to the next block; end <= io->size so no overflow. */
        off = end + (VD_TAR_BLOCK - end % VD_TAR_BLOCK) % VD_TAR_BLOCK;
    }
    vd_tar_pax_clear(&local);
    vd_tar_pax_clear(&global);
    free(longname);
    *out = t;
    return 0;

fail:
    vd_tar_pax_clear(&local);
    vd_tar_pax_clear(&global);
    free(longname);
    vd_tar_free(&t);
    return r;
}

void vd_tar_free(struct vd_tar *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->m[i].name);
    free(t->m);
    t->m = NULL;
    t->n = 0;
}

const struct vd_tar_member *vd_tar_find(const struct vd_tar *t, const char *name)
{
    bool unsafe;
    char *n = vd_tar_normalize(name, &unsafe);
    const struct vd_tar_member *found = NULL;
    if (!n || unsafe || !n[0])
        goto out;
    for (size_t i = 0; i < t->n && !found; i++)
        if (!t->m[i].unsafe && !strcmp(t->m[i].name, n))
            found = &t->m[i];
out:
    free(n);
    return found;
}
