/*
 * vhd: Microsoft Virtual Hard Disk (Virtual PC / Virtual Server / Hyper-V
 * "VHD", qemu's "vpc"). Follows "Virtual Hard Disk Image Format
 * Specification" v1.0 (Microsoft, 2006): Hard Disk Footer Format, Dynamic
 * Disk Header Format, Block Allocation Table and Data Blocks, Implementing a
 * Differencing Hard Disk. All fields are big-endian.
 *
 *   fixed:         [ data: current_size bytes ............ ][ footer 512 ]
 *
 *   dynamic/diff:  [ footer copy 512 ][ dyn header 1024 ][ BAT: u32 sector
 *                  numbers, padded to 512 ][ parent locator data ... ]
 *                  [ block: sector bitmap (rounded to 512) | block_size data ]
 *                  ... [ footer 512 ]
 *
 * The footer at the end of the file is authoritative; dynamic disks keep a
 * copy at offset 0 that we use (with a note in info) when the last sector is
 * damaged or missing. Writers before Virtual PC 2004 wrote a 511-byte footer.
 * The virtual size is the footer's current_size (the spec calls it the size
 * of the hard disk; CHS geometry is for the BIOS only): see docs/vhd.md.
 *
 * The driver only answers map() (docs/trust-boundary.md): a fixed disk is
 * DATA where it lies; in a dynamic disk an unallocated block is ZERO and an
 * allocated one DATA after its bitmap (which is not consulted, like qemu:
 * writers fill new blocks with zeros); in a differencing disk an unallocated
 * block, or a run of clear bitmap bits, is BACKING (the parent), a run of set
 * bits DATA. Bad checksums are read anyway (like libvhdi) and reported by
 * check() and info(). A missing parent is an error.
 *
 * Metadata declared to the core at open: the footer copy at 0, the dynamic
 * header, the BAT (padded to 512), parent locator data and the footer at
 * the end (which moves when a block is appended). Per-block sector bitmaps
 * are not declared: one range per allocated block would cost up to 16 Mi
 * ranges; instead map() refuses any block whose bitmap or data overlaps
 * metadata, naming the BAT entry, and check() reports blocks overlapping
 * metadata or each other as corrupt (so writable opens refuse them).
 *
 * Writes in place (mount -o rw) work on sound fixed and dynamic disks; a new
 * block is appended where the footer was, with a full bitmap (like qemu).
 *
 * Unsupported: writing differencing disks, the "Mac " alias-record locator
 * (only tried as a plain path), batmap/keyhole extensions of Xen's blktap.
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
#include "common/json.h"
#include "core/driver.h"
#include "formats/vhd.h"

#define VHD_LOCATOR_MAX 65536u /* bytes of a parent locator we read */
#define VHD_PATH_MAX    4096u
#define VHD_BM_SLOTS    16u /* sector bitmaps of differencing blocks kept */
#define VHD_NMETA       (3 + VHD_NLOCATORS)

/* A metadata structure of the image, for messages and overlap checks. */
struct vhd_meta {
    uint64_t off, len;
    const char *what;
};

struct vhd_state {
    struct vhd_footer footer;  /* the footer in use */
    struct vhd_dyn_header hdr; /* dynamic and differencing disks */
    uint8_t tail_raw[VHD_FOOTER_SIZE], head_raw[VHD_FOOTER_SIZE];
    bool have_copy; /* a "conectix" sector at offset 0 */
    bool footer_copy_used;
    /* The end-of-file footer: [data_end, data_end + footer_len), footer_len
     * 512 or 511, or 0 if absent. Written under alloc_lock, read with
     * atomic loads (a block append moves it). */
    uint64_t data_end;
    unsigned footer_len;
    /* Fixed metadata of a dynamic or differencing disk (not the footer at
     * the end): footer copy, dynamic header, BAT, locator data. */
    struct vhd_meta meta[VHD_NMETA];
    unsigned nmeta;
    uint32_t *bat; /* host-order sector numbers; entries change only
                    * from unallocated to allocated, under alloc_lock,
                    * and are read with vhd_bat() (acquire) */
    uint32_t nbat;
    uint32_t block_size, bitmap_size;
    unsigned block_shift;
    /* Differencing disks (read-only, so bitmaps never change): the sector
     * bitmaps of the last blocks read, slot blk % VHD_BM_SLOTS, so that the
     * runs of one block cost one bitmap read. bm_lock. */
    uint8_t *bm_data;
    uint32_t bm_blk[VHD_BM_SLOTS]; /* UINT32_MAX: empty */
    pthread_mutex_t bm_lock;
    char parent_path[VHD_PATH_MAX]; /* the candidate that opened */
    char parent_via[8];             /* "W2ru", ..., or "name" */
    char note[256];                 /* footer recovery note, or "" */
    pthread_mutex_t alloc_lock;     /* block allocation */
    bool lock_init;
};

static uint32_t vhd_bat(const struct vhd_state *st, uint32_t i)
{
    return __atomic_load_n(&st->bat[i], __ATOMIC_ACQUIRE);
}

static const uint8_t vhd_cookie[8] = {'c', 'o', 'n', 'e', 'c', 't', 'i', 'x'};
static const uint8_t vhd_dyn_cookie[8] = {'c', 'x', 's', 'p', 'a', 'r', 's', 'e'};

/* ---- parsers: (buf, len), no I/O ---- */

uint32_t vd_vhd_checksum(const uint8_t *buf, size_t len, size_t skip)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        if (i < skip || i >= skip + 4)
            sum += buf[i];
    return ~sum;
}

/* Four-character field as text: a NUL ends it ("tap\0" -> "tap"),
 * unprintable bytes become '?'. */
static void vhd_copy4(char out[5], const uint8_t *p)
{
    for (int i = 0; i < 4; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : (p[i] ? '?' : '\0');
    out[4] = '\0';
}

int vd_vhd_parse_footer(const uint8_t *buf, size_t len, const char *name, struct vhd_footer *f,
                        struct vd_error *err)
{
    uint8_t b[VHD_FOOTER_SIZE] = {0};
    if (len < VHD_FOOTER_SIZE - 1)
        return vd_err(err, -EINVAL, "vhd: %s: footer is %zu bytes, need 511 or 512", name, len);
    memcpy(b, buf, VD_MIN(len, (size_t)VHD_FOOTER_SIZE));
    if (memcmp(b, vhd_cookie, 8) != 0)
        return vd_err(err, -EINVAL, "vhd: %s: no 'conectix' cookie in footer", name);
    memset(f, 0, sizeof(*f));
    f->features = be32(b + 8);
    f->version = be32(b + 12);
    f->data_offset = be64(b + 16);
    f->timestamp = be32(b + 24);
    vhd_copy4(f->creator_app, b + 28);
    f->creator_version = be32(b + 32);
    vhd_copy4(f->creator_os, b + 36);
    f->original_size = be64(b + 40);
    f->current_size = be64(b + 48);
    f->cylinders = be16(b + 56);
    f->heads = b[58];
    f->sectors_per_track = b[59];
    f->disk_type = be32(b + 60);
    f->checksum = be32(b + 64);
    f->computed_checksum = vd_vhd_checksum(b, VHD_FOOTER_SIZE, 64);
    memcpy(f->uuid, b + 68, 16);
    f->saved_state = b[84] != 0;
    return 0;
}

size_t vd_vhd_utf16_to_utf8(const uint8_t *src, size_t len, bool big_endian, char *out,
                            size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i + 1 < len;) {
        uint32_t c = big_endian ? be16(src + i) : le16(src + i);
        i += 2;
        if (c == 0)
            break;
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < len) {
            uint32_t lo = big_endian ? be16(src + i) : le16(src + i);
            if (lo >= 0xDC00 && lo < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                i += 2;
            } else {
                c = 0xFFFD;
            }
        } else if (c >= 0xD800 && c < 0xE000) {
            c = 0xFFFD;
        }
        uint8_t tmp[4];
        size_t n;
        if (c < 0x80) {
            tmp[0] = (uint8_t)c;
            n = 1;
        } else if (c < 0x800) {
            tmp[0] = (uint8_t)(0xC0 | c >> 6);
            tmp[1] = (uint8_t)(0x80 | (c & 0x3F));
            n = 2;
        } else if (c < 0x10000) {
            tmp[0] = (uint8_t)(0xE0 | c >> 12);
            tmp[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            tmp[2] = (uint8_t)(0x80 | (c & 0x3F));
            n = 3;
        } else {
            tmp[0] = (uint8_t)(0xF0 | c >> 18);
            tmp[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            tmp[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            tmp[3] = (uint8_t)(0x80 | (c & 0x3F));
            n = 4;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    if (outlen)
        out[o] = '\0';
    return o;
}

int vd_vhd_parse_dyn_header(const uint8_t *b, size_t len, const char *name,
                            struct vhd_dyn_header *h, struct vd_error *err)
{
    if (len < VHD_DYN_HEADER_SIZE)
        return vd_err(err, -EINVAL, "vhd: %s: dynamic header is %zu bytes, need 1024", name, len);
    if (memcmp(b, vhd_dyn_cookie, 8) != 0)
        return vd_err(err, -EINVAL, "vhd: %s: no 'cxsparse' cookie in dynamic header", name);
    memset(h, 0, sizeof(*h));
    h->table_offset = be64(b + 16);
    h->header_version = be32(b + 24);
    h->max_table_entries = be32(b + 28);
    h->block_size = be32(b + 32);
    h->checksum = be32(b + 36);
    h->computed_checksum = vd_vhd_checksum(b, VHD_DYN_HEADER_SIZE, 36);
    memcpy(h->parent_uuid, b + 40, 16);
    h->parent_timestamp = be32(b + 56);
    vd_vhd_utf16_to_utf8(b + 64, 512, true, h->parent_name, sizeof(h->parent_name));
    for (int i = 0; i < VHD_NLOCATORS; i++) {
        const uint8_t *e = b + 576 + 24 * i;
        struct vhd_locator *l = &h->loc[i];
        memcpy(l->code, e, 4);
        l->code[4] = '\0';
        l->data_space = be32(e + 4);
        l->data_length = be32(e + 8);
        l->data_offset = be64(e + 16);
    }
    if (!is_pow2(h->block_size) || h->block_size < VHD_MIN_BLOCK || h->block_size > VHD_MAX_BLOCK)
        return vd_err(err, -EINVAL,
                      "vhd: %s: block size %" PRIu32
                      " is invalid (must be a power of two from 512 bytes to 256 MiB)",
                      name, h->block_size);
    if (h->max_table_entries > VHD_MAX_BAT_ENTRIES)
        return vd_err(err, -EINVAL, "vhd: %s: BAT of %" PRIu32 " entries exceeds the limit of %u",
                      name, h->max_table_entries, VHD_MAX_BAT_ENTRIES);
    return 0;
}

/* ---- helpers ---- */

static const char *vhd_type_name(uint32_t t)
{
    switch (t) {
    case VHD_FIXED:
        return "fixed";
    case VHD_DYNAMIC:
        return "dynamic";
    case VHD_DIFF:
        return "differencing";
    default:
        return "unknown";
    }
}

static void vhd_uuid_str(const uint8_t u[16], char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

static uint64_t vhd_chs_size(const struct vhd_footer *f)
{
    return (uint64_t)f->cylinders * f->heads * f->sectors_per_track * VHD_SECTOR;
}

/* ---- probe ---- */

static int vhd_probe_footer(const uint8_t *p, size_t len)
{
    struct vhd_footer f;
    if (vd_vhd_parse_footer(p, len, "", &f, NULL) < 0)
        return 0;
    if (f.disk_type < VHD_FIXED || f.disk_type > VHD_DIFF)
        return 10;
    return f.checksum == f.computed_checksum ? 100 : 60;
}

static int vhd_probe(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                     uint64_t file_size)
{
    int score = 0;
    if (tail_len >= VHD_FOOTER_SIZE)
        score = vhd_probe_footer(tail + tail_len - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE);
    if (!score && tail_len >= VHD_FOOTER_SIZE - 1)
        score = vhd_probe_footer(tail + tail_len - (VHD_FOOTER_SIZE - 1), VHD_FOOTER_SIZE - 1);
    if (head_len >= VHD_FOOTER_SIZE && memcmp(head, vhd_cookie, 8) == 0) {
        /* A copy at offset 0 only exists for dynamic and differencing disks. */
        uint32_t t = be32(head + 60);
        if (t == VHD_DYNAMIC || t == VHD_DIFF)
            score = VD_MAX(score, 100);
    }
    return score;
}

/* ---- open ---- */

/* Pick the footer: the one at end of file when it is sound, else the copy
 * at offset 0, else a damaged end-of-file footer (read like libvhdi does). */
static int vhd_read_footer(struct vd_image *img, struct vhd_state *st, struct vd_error *err)
{
    struct vd_io *io = img->io;
    uint64_t size = io->size;
    struct vhd_footer tail, copy;
    bool have_tail = false, have_copy = false;
    int r;

    if (size < VHD_FOOTER_SIZE - 1)
        return vd_err(err, -EINVAL, "vhd: %s: file of %" PRIu64 " bytes is too small for a VHD",
                      img->name, size);
    if (size >= VHD_FOOTER_SIZE) {
        r = vd_io_pread_full(io, st->tail_raw, VHD_FOOTER_SIZE, size - VHD_FOOTER_SIZE, err);
        if (r < 0)
            return r;
        if (memcmp(st->tail_raw, vhd_cookie, 8) == 0) {
            st->footer_len = VHD_FOOTER_SIZE;
        } else if (memcmp(st->tail_raw + 1, vhd_cookie, 8) == 0) {
            memmove(st->tail_raw, st->tail_raw + 1, VHD_FOOTER_SIZE - 1);
            st->tail_raw[VHD_FOOTER_SIZE - 1] = 0;
            st->footer_len = VHD_FOOTER_SIZE - 1;
        }
        r = vd_io_pread_full(io, st->head_raw, VHD_FOOTER_SIZE, 0, err);
        if (r < 0)
            return r;
        have_copy = vd_vhd_parse_footer(st->head_raw, VHD_FOOTER_SIZE, img->name, &copy, NULL) == 0;
    } else {
        r = vd_io_pread_full(io, st->tail_raw, VHD_FOOTER_SIZE - 1, 0, err);
        if (r < 0)
            return r;
        if (memcmp(st->tail_raw, vhd_cookie, 8) == 0)
            st->footer_len = VHD_FOOTER_SIZE - 1;
    }
    if (st->footer_len)
        have_tail = vd_vhd_parse_footer(st->tail_raw, VHD_FOOTER_SIZE, img->name, &tail, NULL) == 0;
    st->have_copy = have_copy;
    st->data_end = size - st->footer_len;

    bool tail_ok = have_tail && tail.checksum == tail.computed_checksum;
    bool copy_ok = have_copy && copy.checksum == copy.computed_checksum &&
                   (copy.disk_type == VHD_DYNAMIC || copy.disk_type == VHD_DIFF);
    if (tail_ok) {
        st->footer = tail;
    } else if (have_tail && copy_ok) {
        st->footer = copy;
        st->footer_copy_used = true;
        snprintf(st->note, sizeof(st->note),
                 "footer at end of file has a bad checksum (stored 0x%08" PRIx32
                 ", computed 0x%08" PRIx32 "); using the copy at offset 0",
                 tail.checksum, tail.computed_checksum);
    } else if (have_tail) {
        st->footer = tail;
    } else if (have_copy && (copy.disk_type == VHD_DYNAMIC || copy.disk_type == VHD_DIFF)) {
        st->footer = copy;
        st->footer_copy_used = true;
        snprintf(st->note, sizeof(st->note),
                 "no footer at end of file (truncated or damaged); using the copy at offset 0");
    } else {
        return vd_err(err, -EINVAL,
                      "vhd: %s: no VHD footer ('conectix' cookie) at end of file or at offset 0",
                      img->name);
    }
    return 0;
}

static int vhd_open_fixed(struct vd_image *img, struct vhd_state *st, struct vd_error *err)
{
    if (st->footer_copy_used || !st->footer_len)
        return vd_err(err, -EINVAL, "vhd: %s: fixed disk without a footer at end of file",
                      img->name);
    if (st->footer.current_size > st->data_end)
        return vd_err(err, -EINVAL,
                      "vhd: %s: fixed disk of %" PRIu64 " bytes but only %" PRIu64
                      " bytes precede the footer (truncated?)",
                      img->name, st->footer.current_size, st->data_end);
    return 0;
}

static int vhd_open_dynamic(struct vd_image *img, struct vhd_state *st, struct vd_error *err)
{
    struct vd_io *io = img->io;
    uint8_t buf[VHD_DYN_HEADER_SIZE];
    uint64_t end;
    int r;

    if (ck_add(st->footer.data_offset, VHD_DYN_HEADER_SIZE, &end) || end > io->size)
        return vd_err(err, -EINVAL,
                      "vhd: %s: dynamic header offset %" PRIu64 " is past end of file (%" PRIu64
                      " bytes)",
                      img->name, st->footer.data_offset, io->size);
    r = vd_io_pread_full(io, buf, sizeof(buf), st->footer.data_offset, err);
    if (r < 0)
        return r;
    r = vd_vhd_parse_dyn_header(buf, sizeof(buf), img->name, &st->hdr, err);
    if (r < 0)
        return r;
    struct vhd_dyn_header *h = &st->hdr;
    st->block_size = h->block_size;
    st->block_shift = (unsigned)__builtin_ctz(h->block_size);
    st->bitmap_size =
        (uint32_t)(div_round_up(div_round_up(h->block_size / VHD_SECTOR, 8), VHD_SECTOR) *
                   VHD_SECTOR);
    st->nbat = h->max_table_entries;
    if (((uint64_t)st->nbat << st->block_shift) < st->footer.current_size)
        return vd_err(err, -EINVAL,
                      "vhd: %s: BAT has %" PRIu32 " entries of %" PRIu32
                      " bytes, too few for the virtual size of %" PRIu64 " bytes",
                      img->name, st->nbat, st->block_size, st->footer.current_size);
    uint64_t bat_bytes = (uint64_t)st->nbat * 4;
    if (ck_add(h->table_offset, bat_bytes, &end) || end > io->size)
        return vd_err(err, -EINVAL,
                      "vhd: %s: BAT (%" PRIu32 " entries at offset %" PRIu64
                      ") extends past end of file (%" PRIu64 " bytes)",
                      img->name, st->nbat, h->table_offset, io->size);
    st->bat = malloc(bat_bytes ? bat_bytes : 1);
    if (!st->bat)
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory for a BAT of %" PRIu32 " entries",
                      img->name, st->nbat);
    r = vd_io_pread_full(io, st->bat, bat_bytes, h->table_offset, err);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < st->nbat; i++)
        st->bat[i] = be32(&st->bat[i]);
    return 0;
}

/* Read one parent locator's path as UTF-8 into out. The data length is in
 * bytes by the spec, but some writers store sectors: when the byte reading
 * gives a fragment and the sector reading a longer printable path, take it. */
static int vhd_read_locator(struct vd_image *img, const struct vhd_locator *l, char *out,
                            size_t outlen, struct vd_error *err)
{
    bool utf16 = !strcmp(l->code, "W2ru") || !strcmp(l->code, "W2ku");
    uint64_t avail;
    out[0] = '\0';
    if (l->data_offset >= img->io->size || l->data_length == 0)
        return 0;
    avail = VD_MIN(img->io->size - l->data_offset, (uint64_t)VHD_LOCATOR_MAX);
    size_t n = (size_t)VD_MIN(avail, (uint64_t)l->data_length * VHD_SECTOR);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory", img->name);
    int r = vd_io_pread_full(img->io, buf, n, l->data_offset, err);
    if (r < 0)
        goto out_free;
    size_t nbytes = VD_MIN(n, (size_t)VD_MIN((uint64_t)l->data_length, avail));
    char *alt = malloc(outlen);
    if (!alt) {
        r = vd_err(err, -ENOMEM, "vhd: %s: out of memory", img->name);
        goto out_free;
    }
    size_t a, b;
    if (utf16) {
        a = vd_vhd_utf16_to_utf8(buf, nbytes, false, out, outlen);
        b = vd_vhd_utf16_to_utf8(buf, n, false, alt, outlen);
    } else {
        const uint8_t *za = memchr(buf, 0, nbytes), *zb = memchr(buf, 0, n);
        a = za ? (size_t)(za - buf) : nbytes;
        b = zb ? (size_t)(zb - buf) : n;
        a = VD_MIN(a, outlen - 1);
        b = VD_MIN(b, outlen - 1);
        memcpy(out, buf, a);
        out[a] = '\0';
        memcpy(alt, buf, b);
        alt[b] = '\0';
    }
    if (b > a) {
        bool printable = true;
        for (size_t i = 0; i < b; i++)
            if ((unsigned char)alt[i] < 0x20 || alt[i] == 0x7f)
                printable = false;
        if (printable)
            memcpy(out, alt, b + 1);
    }
    free(alt);
out_free:
    free(buf);
    return r;
}

struct vhd_candidates {
    char path[16][VHD_PATH_MAX];
    char via[16][8];
    int n;
};

static void vhd_add_candidate(struct vhd_candidates *c, const char *p, const char *via)
{
    if (!p[0] || c->n >= (int)VD_ARRAY_SIZE(c->path))
        return;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->path[i], p))
            return;
    snprintf(c->path[c->n], VHD_PATH_MAX, "%s", p);
    snprintf(c->via[c->n], sizeof(c->via[0]), "%s", via);
    c->n++;
}

static int vhd_hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Turn one locator or name string into paths to try, in order: the path as
 * it is (relative to the child, or absolute), then its base name beside the
 * child. Windows separators become '/', drive-letter paths are only tried by
 * base name, file:// URLs (MacX) are decoded. */
static void vhd_expand_candidates(struct vhd_candidates *c, char *s, const char *via)
{
    if (!strncmp(s, "file://", 7)) {
        char *p = s + 7;
        if (!strncmp(p, "localhost/", 10))
            p += 9;
        size_t o = 0;
        for (size_t i = 0; p[i]; i++) {
            int hi, lo;
            if (p[i] == '%' && (hi = vhd_hexval(p[i + 1])) >= 0 &&
                (lo = vhd_hexval(p[i + 2])) >= 0) {
                s[o++] = (char)(hi << 4 | lo);
                i += 2;
            } else {
                s[o++] = p[i];
            }
        }
        s[o] = '\0';
    }
    for (char *p = s; *p; p++)
        if (*p == '\\')
            *p = '/';
    bool drive = ((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z' && s[1] == ':');
    if (!drive) {
        const char *p = s;
        while (!strncmp(p, "./", 2))
            p += 2;
        vhd_add_candidate(c, p, via);
    }
    const char *base = strrchr(s, '/');
    base = base ? base + 1 : (drive ? s + 2 : s);
    vhd_add_candidate(c, base, via);
}

/* Open the parent through the core (vd_image_open_backing), which applies
 * the path policy (only files beside the child, or in a directory the user
 * allowed) and refuses loops by file identity. Candidates are tried in
 * order; one that does not exist is skipped, one that opens must carry the
 * unique id the child names. */
static int vhd_open_parent(struct vd_image *img, struct vhd_state *st, struct vd_error *err)
{
    static const char *const order[] = {"W2ru", "W2ku", "MacX", "Mac ", "Wi2r", "Wi2k"};
    struct vhd_dyn_header *h = &st->hdr;
    char want[37];
    int r = 0;
    vhd_uuid_str(h->parent_uuid, want);

    struct vhd_candidates *c = calloc(1, sizeof(*c));
    char *s = malloc(VHD_PATH_MAX);
    if (!c || !s) {
        r = vd_err(err, -ENOMEM, "vhd: %s: out of memory", img->name);
        goto out;
    }
    for (size_t k = 0; k < VD_ARRAY_SIZE(order); k++) {
        for (int i = 0; i < VHD_NLOCATORS; i++) {
            if (strcmp(h->loc[i].code, order[k]) != 0)
                continue;
            r = vhd_read_locator(img, &h->loc[i], s, VHD_PATH_MAX, err);
            if (r < 0)
                goto out;
            vhd_expand_candidates(c, s, order[k]);
        }
    }
    snprintf(s, VHD_PATH_MAX, "%s", h->parent_name);
    vhd_expand_candidates(c, s, "name");

    struct vd_error first = {0};
    bool found_any = false;
    for (int i = 0; i < c->n; i++) {
        struct vd_error e = {0};
        r = vd_image_open_backing(img, c->path[i], "vhd", &e);
        if (r == -ELOOP) { /* the core's message says which file loops */
            vd_err(err, r, "%s", e.msg);
            goto out;
        }
        if (r == -ENOENT || r == -ENOTDIR || r == -ENOTSUP || r == -ENAMETOOLONG)
            continue;
        found_any = true;
        if (r == -EPERM) { /* the path policy: its message names the option */
            vd_err(&first, r, "vhd: %s", e.msg);
            continue;
        }
        if (r < 0) {
            vd_err(&first, r, "vhd: %s: parent '%s': %s", img->name, c->path[i], e.msg);
            continue;
        }
        struct vhd_state *ps = img->backing->priv;
        if (memcmp(ps->footer.uuid, h->parent_uuid, 16) != 0) {
            char got[37];
            vhd_uuid_str(ps->footer.uuid, got);
            vd_err(&first, -EINVAL,
                   "vhd: %s: parent '%s' has unique id %s but the child expects %s", img->name,
                   c->path[i], got, want);
            vd_image_close(img->backing);
            img->backing = NULL;
            continue;
        }
        snprintf(st->parent_path, sizeof(st->parent_path), "%s", c->path[i]);
        snprintf(st->parent_via, sizeof(st->parent_via), "%s", c->via[i]);
        r = 0;
        goto out;
    }
    if (found_any) {
        r = vd_err(err, first.code, "%s", first.msg);
        goto out;
    }
    {
        char tried[320];
        size_t o = 0;
        tried[0] = '\0';
        for (int i = 0; i < c->n && o < sizeof(tried); i++)
            o +=
                (size_t)snprintf(tried + o, sizeof(tried) - o, "%s'%s'", i ? ", " : "", c->path[i]);
        r = vd_err(err, -ENOENT, "vhd: %s: parent disk (unique id %s) not found; tried %s",
                   img->name, want, c->n ? tried : "nothing (no locators and no parent name)");
    }
out:
    free(s);
    free(c);
    return r;
}

/* Record the fixed metadata of a dynamic or differencing disk in st->meta
 * (for map's per-block check and for check()). Locator data counts for
 * differencing disks only, as the bytes its length gives (rounded up to a
 * sector; some writers store a sector count there, whose first sector is
 * covered too), when it starts inside the file. */
static void vhd_collect_meta(struct vd_image *img, struct vhd_state *st)
{
    static const char *const loc_what[VHD_NLOCATORS] = {
        "parent locator 0 data", "parent locator 1 data", "parent locator 2 data",
        "parent locator 3 data", "parent locator 4 data", "parent locator 5 data",
        "parent locator 6 data", "parent locator 7 data",
    };
    uint64_t bat_len = div_round_up((uint64_t)st->nbat * 4, VHD_SECTOR) * VHD_SECTOR;
    st->nmeta = 0;
    st->meta[st->nmeta++] = (struct vhd_meta){0, VHD_FOOTER_SIZE, "footer copy"};
    st->meta[st->nmeta++] =
        (struct vhd_meta){st->footer.data_offset, VHD_DYN_HEADER_SIZE, "dynamic header"};
    st->meta[st->nmeta++] = (struct vhd_meta){st->hdr.table_offset, bat_len, "BAT"};
    for (int i = 0; i < VHD_NLOCATORS && st->footer.disk_type == VHD_DIFF; i++) {
        const struct vhd_locator *l = &st->hdr.loc[i];
        uint64_t len = div_round_up(l->data_length, VHD_SECTOR) * VHD_SECTOR, end;
        if (!l->code[0] || !len || l->data_offset >= img->io->size ||
            ck_add(l->data_offset, len, &end))
            continue;
        st->meta[st->nmeta++] = (struct vhd_meta){l->data_offset, len, loc_what[i]};
    }
}

/* Declare every metadata range to the core (docs/trust-boundary.md): no
 * data answer may cover them. The header and BAT offsets were checked
 * against the file size at open, so none of these sums wraps. */
static int vhd_declare_meta(struct vd_image *img, struct vhd_state *st, struct vd_error *err)
{
    int r = 0;
    if (st->footer_len)
        r = vd_image_declare_meta(img, img->io, st->data_end, st->footer_len, "footer", err);
    if (st->footer.disk_type == VHD_FIXED)
        return r;
    vhd_collect_meta(img, st);
    for (unsigned i = 0; i < st->nmeta && r == 0; i++)
        r = vd_image_declare_meta(img, img->io, st->meta[i].off, st->meta[i].len, st->meta[i].what,
                                  err);
    return r;
}

static int vhd_open(struct vd_image *img, struct vd_error *err)
{
    struct vhd_state *st = img->priv;
    int r = vhd_read_footer(img, st, err);
    if (r < 0)
        return r;
    struct vhd_footer *f = &st->footer;
    switch (f->disk_type) {
    case VHD_FIXED:
        r = vhd_open_fixed(img, st, err);
        break;
    case VHD_DYNAMIC:
    case VHD_DIFF:
        r = vhd_open_dynamic(img, st, err);
        break;
    default:
        return vd_err(err, -ENOTSUP, "vhd: %s: disk type %" PRIu32 " is not supported", img->name,
                      f->disk_type);
    }
    if (r < 0)
        return r;
    img->size = f->current_size;
    img->subformat = vhd_type_name(f->disk_type);
    if (img->opts.writable) {
        const char *why = NULL;
        if (f->disk_type == VHD_DIFF)
            why = "differencing disks cannot be written in place";
        else if (f->saved_state)
            why = "the disk is in a saved state (its VM is suspended)";
        else if (st->note[0] || f->checksum != f->computed_checksum ||
                 (f->disk_type == VHD_DYNAMIC && st->hdr.checksum != st->hdr.computed_checksum))
            why = "the disk is damaged (see vdisk check)";
        if (why)
            return vd_err(err, -EROFS,
                          "vhd: %s: %s; mount it read-only, keep the changes in an overlay (-o "
                          "overlay=FILE), or write to a converted copy",
                          img->name, why);
    }
    if ((r = vhd_declare_meta(img, st, err)) < 0)
        return r;
    if (pthread_mutex_init(&st->alloc_lock, NULL) != 0)
        return vd_err(err, -ENOMEM, "vhd: %s: cannot create a lock", img->name);
    if (pthread_mutex_init(&st->bm_lock, NULL) != 0) {
        pthread_mutex_destroy(&st->alloc_lock);
        return vd_err(err, -ENOMEM, "vhd: %s: cannot create a lock", img->name);
    }
    st->lock_init = true;
    if (f->disk_type != VHD_DIFF)
        return 0;
    st->bm_data = malloc((size_t)VHD_BM_SLOTS * st->bitmap_size);
    if (!st->bm_data)
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory", img->name);
    for (unsigned i = 0; i < VHD_BM_SLOTS; i++)
        st->bm_blk[i] = UINT32_MAX;
    return vhd_open_parent(img, st, err);
}

static void vhd_close(struct vd_image *img)
{
    struct vhd_state *st = img->priv;
    free(st->bat);
    st->bat = NULL;
    free(st->bm_data);
    st->bm_data = NULL;
    if (st->lock_init) {
        pthread_mutex_destroy(&st->alloc_lock);
        pthread_mutex_destroy(&st->bm_lock);
    }
    st->lock_init = false;
}

/* ---- map ---- */

/* Bytes of block blk that must be in the file: its bitmap and its data up
 * to the virtual size (the last block may be cut there). */
static uint64_t vhd_block_need(const struct vhd_state *st, uint32_t blk)
{
    uint64_t vstart = (uint64_t)blk << st->block_shift, need = st->bitmap_size;
    if (vstart < st->footer.current_size)
        need += VD_MIN((uint64_t)st->block_size, st->footer.current_size - vstart);
    return need;
}

/* Block blk, stored at sector e, must not overlap the image's own
 * metadata: its bytes would be served as data (issue 9: a BAT entry
 * pointing at the dynamic header), and a write would land on them. -EIO
 * naming the BAT entry otherwise. The whole block is checked, not only the
 * range asked, so that no byte of such a block is ever served. */
static int vhd_block_check(struct vd_image *img, const struct vhd_state *st, uint32_t blk,
                           uint32_t e, struct vd_error *err)
{
    uint64_t s = (uint64_t)e * VHD_SECTOR, end = s + vhd_block_need(st, blk); /* < 2^42 */
    const struct vhd_meta *hit = NULL;
    struct vhd_meta tail = {__atomic_load_n(&st->data_end, __ATOMIC_ACQUIRE),
                            __atomic_load_n(&st->footer_len, __ATOMIC_ACQUIRE),
                            "footer at end of file"};
    for (unsigned i = 0; i < st->nmeta && !hit; i++)
        if (s < st->meta[i].off + st->meta[i].len && st->meta[i].off < end)
            hit = &st->meta[i];
    if (!hit && tail.len && s < tail.off + tail.len && tail.off < end)
        hit = &tail;
    if (!hit)
        return 0;
    return vd_err(err, -EIO,
                  "vhd: %s: BAT entry %" PRIu32 ": block at offset %" PRIu64
                  " overlaps the %s (%" PRIu64 "..%" PRIu64
                  "); refused, its bytes are the image's own metadata (the image is corrupt or "
                  "crafted: see vdisk check)",
                  img->name, blk, s, hit->what, hit->off, hit->off + hit->len);
}

static int vhd_past_eof(struct vd_image *img, uint32_t blk, uint32_t e, uint64_t off, uint64_t n,
                        struct vd_error *err)
{
    uint64_t size = __atomic_load_n(&img->io->size, __ATOMIC_ACQUIRE);
    if (off + n <= size) /* off < 2^43, n < 2^32: no wrap */
        return 0;
    return vd_err(err, -EIO,
                  "vhd: %s: BAT entry %" PRIu32 ": block at offset %" PRIu64
                  " lies past end of file (%" PRIu64 " bytes)",
                  img->name, blk, (uint64_t)e * VHD_SECTOR, size);
}

static bool vhd_bit(const uint8_t *bm, uint64_t i)
{
    return (bm[i / 8] >> (7 - i % 8)) & 1; /* MSB first */
}

/* In the sector bitmap bm of a block, from byte pos of the block for up to
 * len bytes: the length of the run of sectors whose bits equal the first
 * one's (*set). Whole bytes of equal bits are skipped at once. */
static uint64_t vhd_bitmap_scan(const uint8_t *bm, uint64_t pos, uint64_t len, bool *set)
{
    uint64_t sec = pos / VHD_SECTOR, last = div_round_up(pos + len, VHD_SECTOR);
    bool b = vhd_bit(bm, sec);
    uint8_t same = b ? 0xff : 0x00;
    uint64_t i = sec + 1;
    while (i < last) {
        if (i % 8 == 0 && i + 8 <= last && bm[i / 8] == same) {
            i += 8;
            continue;
        }
        if (vhd_bit(bm, i) != b)
            break;
        i++;
    }
    *set = b;
    return VD_MIN(i * VHD_SECTOR, pos + len) - pos;
}

/* Differencing block blk at sector e, from byte pos for up to len bytes:
 * the run of sectors whose bitmap bits equal the first one. The block's
 * bitmap is read whole once and kept in a small cache, so the many runs of
 * one block cost one read. */
static int vhd_bitmap_run(struct vd_image *img, struct vhd_state *st, uint32_t blk, uint32_t e,
                          uint64_t pos, uint64_t len, bool *set, uint64_t *run,
                          struct vd_error *err)
{
    unsigned slot = blk % VHD_BM_SLOTS;
    uint8_t *cached = st->bm_data + (size_t)slot * st->bitmap_size;
    pthread_mutex_lock(&st->bm_lock);
    if (st->bm_blk[slot] == blk) {
        *run = vhd_bitmap_scan(cached, pos, len, set);
        pthread_mutex_unlock(&st->bm_lock);
        return 0;
    }
    pthread_mutex_unlock(&st->bm_lock);
    uint64_t s = (uint64_t)e * VHD_SECTOR;
    int r = vhd_past_eof(img, blk, e, s, st->bitmap_size, err);
    if (r < 0)
        return r;
    uint8_t *bm = malloc(st->bitmap_size);
    if (!bm)
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory", img->name);
    r = vd_io_pread_full(img->io, bm, st->bitmap_size, s, err);
    if (r == 0) {
        *run = vhd_bitmap_scan(bm, pos, len, set);
        pthread_mutex_lock(&st->bm_lock);
        memcpy(cached, bm, st->bitmap_size);
        st->bm_blk[slot] = blk;
        pthread_mutex_unlock(&st->bm_lock);
    }
    free(bm);
    return r;
}

/* What backs [off, off+len): see the top of the file. Runs of unallocated
 * blocks are answered at once; DATA runs end at the block (the next
 * block's bitmap lies between). */
static int vhd_map(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                   struct vd_error *err)
{
    struct vhd_state *st = img->priv;
    m->what = "BAT";
    if (st->footer.disk_type == VHD_FIXED) {
        m->kind = VD_MAP_DATA; /* current_size <= data_end, checked at open */
        m->len = len;
        m->io = img->io;
        m->io_off = off;
        return 0;
    }
    bool diff = st->footer.disk_type == VHD_DIFF;
    uint32_t blk = (uint32_t)(off >> st->block_shift); /* < nbat, checked at open */
    uint64_t pos = off & (st->block_size - 1);
    uint64_t run = VD_MIN(len, (uint64_t)st->block_size - pos);
    uint32_t e = vhd_bat(st, blk);
    if (e != VHD_BAT_UNUSED) {
        int r = vhd_block_check(img, st, blk, e, err);
        if (r < 0)
            return r;
        bool set = true;
        if (diff && (r = vhd_bitmap_run(img, st, blk, e, pos, run, &set, &run, err)) < 0)
            return r;
        if (set) {
            uint64_t io_off = (uint64_t)e * VHD_SECTOR + st->bitmap_size + pos; /* < 2^43 */
            if ((r = vhd_past_eof(img, blk, e, io_off, run, err)) < 0)
                return r;
            m->kind = VD_MAP_DATA;
            m->len = run;
            m->io = img->io;
            m->io_off = io_off;
            return 0;
        }
    }
    /* Not held here. A run reaching the block's end goes on over the
     * following unallocated blocks. */
    if (pos + run == st->block_size)
        while (run < len && ++blk < st->nbat && vhd_bat(st, blk) == VHD_BAT_UNUSED)
            run += VD_MIN(len - run, (uint64_t)st->block_size);
    m->kind = diff ? VD_MAP_BACKING : VD_MAP_ZERO;
    m->len = run;
    return 0;
}

/* ---- write (fixed and dynamic disks) ---- */

/* Append block blk at the end of the data, where the footer was: the footer
 * is written first at the new end (the block's data area becomes a hole that
 * reads as zeros), then a full sector bitmap (like qemu), then the BAT entry
 * on disk and last in memory, so a crash at any point leaves a readable
 * file. The footer's declared range moves with it. Caller holds
 * alloc_lock. */
static int vhd_alloc_block(struct vd_image *img, struct vhd_state *st, uint32_t blk,
                           struct vd_error *err)
{
    uint64_t old = st->data_end, start, end;
    unsigned old_len = st->footer_len;
    bool wrap = ck_add(old, VHD_SECTOR - 1, &start);
    start -= start % VHD_SECTOR;
    if (wrap || start / VHD_SECTOR >= VHD_BAT_UNUSED ||
        ck_add(start, (uint64_t)st->bitmap_size + st->block_size, &end))
        return vd_err(err, -EFBIG, "vhd: %s: no room for block %" PRIu32 " in a 32-bit BAT",
                      img->name, blk);
    /* Declared before anything is written: if that fails, the file is
     * untouched. */
    int r = vd_image_declare_meta(img, img->io, end, VHD_FOOTER_SIZE, "footer", err);
    if (r < 0)
        return r;
    uint8_t *bm = malloc(st->bitmap_size);
    if (!bm) {
        r = vd_err(err, -ENOMEM, "vhd: %s: out of memory", img->name);
        goto fail;
    }
    memset(bm, 0xff, st->bitmap_size);
    uint8_t be[4];
    put_be32(be, (uint32_t)(start / VHD_SECTOR));
    r = vd_io_pwrite_full(img->io, st->tail_raw, VHD_FOOTER_SIZE, end, err);
    if (r == 0)
        r = vd_io_pwrite_full(img->io, bm, st->bitmap_size, start, err);
    if (r == 0)
        r = vd_io_pwrite_full(img->io, be, 4, st->hdr.table_offset + 4ull * blk, err);
    free(bm);
    if (r < 0)
        goto fail;
    __atomic_store_n(&st->footer_len, VHD_FOOTER_SIZE, __ATOMIC_RELEASE);
    __atomic_store_n(&st->data_end, end, __ATOMIC_RELEASE);
    __atomic_store_n(&st->bat[blk], (uint32_t)(start / VHD_SECTOR), __ATOMIC_RELEASE);
    /* The old footer now lies under the block's bitmap. A failure to forget
     * it only keeps a stale range that no data answer can reach (the data
     * starts a bitmap, at least one sector, after it). */
    struct vd_error e2 = {0};
    (void)vd_image_forget_meta(img, img->io, old, old_len, &e2);
    return 0;

fail:
    (void)vd_image_forget_meta(img, img->io, end, VHD_FOOTER_SIZE, &(struct vd_error){0});
    return r;
}

/* Make [off, off+len) writable: allocate its block if needed, then answer
 * as map does (DATA). Differencing disks are refused at a writable open;
 * fixed disks are DATA everywhere already. */
static int vhd_alloc(struct vd_image *img, uint64_t off, uint64_t len, const uint8_t *data,
                     struct vd_map *m, struct vd_error *err)
{
    (void)data; /* a new block is a hole (zeros) until the core writes it */
    struct vhd_state *st = img->priv;
    if (st->footer.disk_type == VHD_DIFF)
        return vd_err(err, -EROFS, "vhd: %s: differencing disks cannot be written in place",
                      img->name);
    if (st->footer.disk_type == VHD_DYNAMIC) {
        uint32_t blk = (uint32_t)(off >> st->block_shift);
        int r = 0;
        pthread_mutex_lock(&st->alloc_lock);
        if (vhd_bat(st, blk) == VHD_BAT_UNUSED)
            r = vhd_alloc_block(img, st, blk, err);
        pthread_mutex_unlock(&st->alloc_lock);
        if (r < 0)
            return r;
    }
    return vhd_map(img, off, len, m, err);
}

static int vhd_flush(struct vd_image *img, struct vd_error *err)
{
    return img->io->ops->flush ? img->io->ops->flush(img->io, err) : 0;
}

static uint64_t vhd_allocated(struct vd_image *img)
{
    struct vhd_state *st = img->priv;
    if (st->footer.disk_type == VHD_FIXED)
        return img->io->size;
    uint64_t n = 0;
    for (uint32_t i = 0; i < st->nbat; i++)
        n += vhd_bat(st, i) != VHD_BAT_UNUSED;
    return VD_MIN(n * ((uint64_t)st->bitmap_size + st->block_size), img->io->size);
}

/* ---- info ---- */

static void vhd_info(struct vd_image *img, struct vd_json *j)
{
    struct vhd_state *st = img->priv;
    struct vhd_footer *f = &st->footer;
    char u[37], ver[24];
    vd_json_obj_begin(j, "vhd");
    vd_json_str(j, "disk_type", vhd_type_name(f->disk_type));
    vd_json_u64(j, "current_size", f->current_size);
    vd_json_u64(j, "chs_size", vhd_chs_size(f));
    vd_json_str(j, "size_from", "current_size");
    vd_json_obj_begin(j, "geometry");
    vd_json_u64(j, "cylinders", f->cylinders);
    vd_json_u64(j, "heads", f->heads);
    vd_json_u64(j, "sectors_per_track", f->sectors_per_track);
    vd_json_obj_end(j);
    vd_json_str(j, "creator_app", f->creator_app);
    snprintf(ver, sizeof(ver), "%u.%u", f->creator_version >> 16, f->creator_version & 0xffff);
    vd_json_str(j, "creator_version", ver);
    vd_json_str(j, "creator_os", f->creator_os);
    vhd_uuid_str(f->uuid, u);
    vd_json_str(j, "uuid", u);
    vd_json_u64(j, "timestamp", f->timestamp);
    vd_json_bool(j, "saved_state", f->saved_state);
    vd_json_bool(j, "footer_copy_used", st->footer_copy_used);
    vd_json_bool(j, "footer_checksum_ok", f->checksum == f->computed_checksum);
    if (f->disk_type != VHD_FIXED) {
        vd_json_u64(j, "block_size", st->block_size);
        vd_json_u64(j, "bat_entries", st->nbat);
        vd_json_bool(j, "header_checksum_ok", st->hdr.checksum == st->hdr.computed_checksum);
    }
    if (f->disk_type == VHD_DIFF) {
        vd_json_obj_begin(j, "parent");
        vhd_uuid_str(st->hdr.parent_uuid, u);
        vd_json_str(j, "uuid", u);
        vd_json_str(j, "unicode_name", st->hdr.parent_name);
        vd_json_u64(j, "timestamp", st->hdr.parent_timestamp);
        vd_json_str(j, "opened", st->parent_path[0] ? st->parent_path : NULL);
        vd_json_str(j, "located_by", st->parent_via[0] ? st->parent_via : NULL);
        vd_json_obj_end(j);
    }
    vd_json_arr_begin(j, "notes");
    if (st->note[0])
        vd_json_str(j, NULL, st->note);
    if (f->checksum != f->computed_checksum)
        vd_json_str(j, NULL, "footer checksum is bad; read anyway");
    if (f->disk_type != VHD_FIXED && st->hdr.checksum != st->hdr.computed_checksum)
        vd_json_str(j, NULL, "dynamic header checksum is bad; read anyway");
    vd_json_arr_end(j);
    vd_json_obj_end(j);
}

/* ---- check ---- */

struct vhd_range {
    uint64_t start, end;
    int64_t blk; /* BAT index, or -1 for metadata */
    const char *what;
};

/* By start; at one start metadata first, then blocks by BAT index, so that
 * the later of two overlapping ranges is the block to blame. */
static int vhd_range_cmp(const void *a, const void *b)
{
    const struct vhd_range *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->blk < y->blk ? -1 : x->blk > y->blk;
}

static void vhd_report(vd_check_cb cb, void *opaque, bool corrupt, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void vhd_report(vd_check_cb cb, void *opaque, bool corrupt, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cb(opaque, corrupt, msg);
}

/* One line for two overlapping ranges, from the block's side when one is a
 * block: "BAT entry 3: block at offset 512 overlaps the dynamic header
 * (512..1536)". */
static void vhd_report_overlap(vd_check_cb cb, void *opaque, const char *nm,
                               const struct vhd_range *a, const struct vhd_range *b)
{
    if (b->blk < 0 && a->blk >= 0) {
        const struct vhd_range *t = a;
        a = b;
        b = t;
    }
    char other[64];
    if (a->blk >= 0)
        snprintf(other, sizeof(other), "the block of BAT entry %" PRId64, a->blk);
    else
        snprintf(other, sizeof(other), "the %s", a->what);
    if (b->blk >= 0)
        vhd_report(cb, opaque, true,
                   "vhd: %s: BAT entry %" PRId64 ": block at offset %" PRIu64
                   " overlaps %s (%" PRIu64 "..%" PRIu64 ")",
                   nm, b->blk, b->start, other, a->start, a->end);
    else
        vhd_report(cb, opaque, true,
                   "vhd: %s: the %s (%" PRIu64 "..%" PRIu64 ") overlaps %s (%" PRIu64 "..%" PRIu64
                   ")",
                   nm, b->what, b->start, b->end, other, a->start, a->end);
}

static int vhd_check(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    struct vhd_state *st = img->priv;
    struct vhd_footer *f = &st->footer;
    const char *nm = img->name;
    bool corrupt = false;
    uint64_t leaked = 0;

    if (st->note[0]) {
        vhd_report(cb, opaque, true, "vhd: %s: %s", nm, st->note);
        corrupt = true;
    }
    if (f->checksum != f->computed_checksum) {
        vhd_report(cb, opaque, true,
                   "vhd: %s: footer checksum 0x%08" PRIx32 " does not match computed 0x%08" PRIx32,
                   nm, f->checksum, f->computed_checksum);
        corrupt = true;
    }
    if (f->disk_type == VHD_FIXED)
        return corrupt ? VD_CHECK_CORRUPT : VD_CHECK_CLEAN;

    if (!st->have_copy) {
        vhd_report(cb, opaque, true, "vhd: %s: no footer copy at offset 0", nm);
        corrupt = true;
    } else if (st->footer_len && !st->footer_copy_used &&
               memcmp(st->head_raw, st->tail_raw, VHD_FOOTER_SIZE) != 0) {
        vhd_report(cb, opaque, true,
                   "vhd: %s: footer copy at offset 0 differs from the footer at end of file", nm);
        corrupt = true;
    }
    if (st->hdr.checksum != st->hdr.computed_checksum) {
        vhd_report(cb, opaque, true,
                   "vhd: %s: dynamic header checksum 0x%08" PRIx32
                   " does not match computed 0x%08" PRIx32,
                   nm, st->hdr.checksum, st->hdr.computed_checksum);
        corrupt = true;
    }

    /* Every structure of the file as a range: the fixed metadata, then each
     * allocated block (bitmap and data up to the virtual size). Sorted, any
     * overlap is corruption: a block over metadata would serve it as data
     * and a write would overwrite it; two blocks over each other would mix
     * their data. */
    uint64_t data_end = __atomic_load_n(&st->data_end, __ATOMIC_ACQUIRE);
    unsigned footer_len = __atomic_load_n(&st->footer_len, __ATOMIC_ACQUIRE);
    size_t n = 0;
    struct vhd_range *rg = malloc(((size_t)st->nbat + VHD_NMETA) * sizeof(*rg));
    if (!rg)
        return vd_err(err, -ENOMEM, "vhd: %s: out of memory", nm);
    for (unsigned i = 0; i < st->nmeta; i++) {
        const struct vhd_meta *m = &st->meta[i];
        rg[n++] = (struct vhd_range){m->off, m->off + m->len, -1, m->what};
        if (footer_len && m->off < data_end + footer_len && data_end < m->off + m->len) {
            vhd_report(cb, opaque, true,
                       "vhd: %s: the %s (%" PRIu64 "..%" PRIu64
                       ") overlaps the footer at end of file (%" PRIu64 "..%" PRIu64 ")",
                       nm, m->what, m->off, m->off + m->len, data_end, data_end + footer_len);
            corrupt = true;
        }
    }
    uint64_t blk_bytes = (uint64_t)st->bitmap_size + st->block_size;
    for (uint32_t i = 0; i < st->nbat; i++) {
        uint32_t e = vhd_bat(st, i);
        if (e == VHD_BAT_UNUSED)
            continue;
        uint64_t s = (uint64_t)e * VHD_SECTOR, need = vhd_block_need(st, i);
        if (s + need > data_end) {
            vhd_report(cb, opaque, true,
                       "vhd: %s: BAT entry %" PRIu32 ": block at offset %" PRIu64
                       " extends past end of data (%" PRIu64 " bytes)",
                       nm, i, s, data_end);
            corrupt = true;
            continue; /* not a range of this file: no overlap or leak maths */
        }
        rg[n++] = (struct vhd_range){s, s + need, i, "block"};
    }
    qsort(rg, n, sizeof(*rg), vhd_range_cmp);
    uint64_t prev_end = 0;
    size_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && rg[i].start < prev_end) {
            vhd_report_overlap(cb, opaque, nm, &rg[prev], &rg[i]);
            corrupt = true;
        } else if (i > 0 && rg[i].start - prev_end >= blk_bytes && rg[i].blk >= 0 &&
                   rg[prev].blk >= 0) {
            leaked += rg[i].start - prev_end;
            vhd_report(cb, opaque, false, "vhd: %s: %" PRIu64 " unused bytes at offset %" PRIu64,
                       nm, rg[i].start - prev_end, prev_end);
        }
        if (rg[i].end > prev_end) {
            prev_end = rg[i].end;
            prev = i;
        }
    }
    free(rg);
    if (data_end > prev_end && data_end - prev_end >= blk_bytes) {
        leaked += data_end - prev_end;
        vhd_report(cb, opaque, false, "vhd: %s: %" PRIu64 " unused bytes at offset %" PRIu64, nm,
                   data_end - prev_end, prev_end);
    }
    if (corrupt)
        return VD_CHECK_CORRUPT;
    return leaked ? VD_CHECK_LEAKS : VD_CHECK_CLEAN;
}

const struct vd_format_ops vd_format_vhd = {
    .name = "vhd",
    .priv_size = sizeof(struct vhd_state),
    .probe = vhd_probe,
    .open = vhd_open,
    .close = vhd_close,
    .map = vhd_map,
    .alloc = vhd_alloc,
    .flush = vhd_flush,
    .allocated = vhd_allocated,
    .info = vhd_info,
    .check = vhd_check,
};
