/*
 * VHDX: Hyper-V virtual hard disk v2.
 * Spec: Microsoft [MS-VHDX] v20160714: headers 2.2 (updates 2.2.2.1),
 * regions 2.2.3, log 2.3 (replayed and written by vhdx_log.c), BAT 2.5,
 * metadata 2.6.
 *
 *   0        64K       128K      192K      256K      320K        1M
 *   | ident  | header1 | header2 | region1 | region2 | reserved  | log, BAT,
 *   |"vhdxfile"|"head" | "head"  | "regi"  | "regi"  |           | metadata,
 *                                                                  payload
 *   BAT (one 64-bit entry per block, state in bits 0-2, FileOffsetMB in
 *   bits 20-63), a sector-bitmap entry after every chunk_ratio payload ones:
 *     [pb0 pb1 ... pb(cr-1) sb0 pb(cr) ... sb1 ...]
 *     chunk_ratio = 2^23 * logical_sector_size / block_size
 *   metadata region: 64 KiB table ("metadata", 32-byte entries) then items:
 *     file parameters, virtual disk size, page 83 id, logical/physical
 *     sector size, parent locator (UTF-16LE key/value pairs).
 *
 * Headers and region tables are CRC-32C checked; the valid header with the
 * highest sequence number is used, and the first valid region table. A
 * non-empty log is replayed into an overlay in memory; a read-only open then
 * reads the file through an io that applies it (vhdx_overlay_io_open), so a
 * source opened read-only is never written. Differencing disks (.avhdx) name
 * their parent in the parent locator; the core opens it under its path
 * policy (vd_image_open_backing) and we check its DataWriteGuid.
 *
 * The driver only answers map (core/driver.h): per payload block, DATA at
 * FileOffsetMB << 20, zeros, the parent, or for a partially present block
 * the runs of its sector bitmap; the core reads. Declared metadata: the
 * first MiB, the log, the BAT and metadata regions, present sector bitmaps.
 *
 * Writing (opts.writable, fixed and dynamic disks only): at open a dirty log
 * is replayed into the file and emptied; the first write gives the headers
 * a new FileWriteGuid and DataWriteGuid (write_begin); a write into a block
 * that is not present has alloc append a 1 MiB-aligned block at the end of
 * the file (a hole: zeros), whose BAT entry goes through the log (extend,
 * flush, log entry, flush, BAT, flush, empty log); the core then writes the
 * data. See docs/vhdx.md "Writing".
 *
 * Unsupported: writing differencing disks, user metadata items (ignored),
 * logs longer than 32 MiB.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "common/crc32c.h"
#include "common/json.h"
#include "core/driver.h"
#include "formats/vhdx.h"

#define GUID_BAT             "{2dc27766-f623-4200-9d64-115e9bfd4a08}"
#define GUID_METADATA        "{8b7ca206-4790-4b9a-b8fe-575f050f886e}"
#define GUID_FILE_PARAMS     "{caa16737-fa36-4d43-b3b6-33f0aa44e76b}"
#define GUID_VIRTUAL_SIZE    "{2fa54224-cd1b-4876-b211-5dbed83bf4b8}"
#define GUID_PAGE83          "{beca12ab-b2e6-4523-93ef-c309e000c746}"
#define GUID_LOGICAL_SECTOR  "{8141bf1d-a96f-4709-ba47-f233a8faab5f}"
#define GUID_PHYSICAL_SECTOR "{cda348c7-445d-4471-9cc9-e9885251c556}"
#define GUID_PARENT_LOCATOR  "{a8d35f2d-b30b-454d-abf7-d3d84834ab0c}"
#define GUID_LOCATOR_TYPE    "{b04aefb7-d19e-4a81-b789-25b8e9445913}"

#define VHDX_META_TABLE_SIZE  (64u * 1024u)
#define VHDX_MAX_ENTRIES      2047u
#define VHDX_MAX_VIRTUAL_SIZE (64ull << 40)
#define VHDX_MAX_META_REGION  (256u * VHDX_MIB)
#define VHDX_SB_BLOCK         VHDX_MIB

enum {
    PAYLOAD_NOT_PRESENT = 0,
    PAYLOAD_UNDEFINED = 1,
    PAYLOAD_ZERO = 2,
    PAYLOAD_UNMAPPED = 3,
    PAYLOAD_FULLY_PRESENT = 6,
    PAYLOAD_PARTIALLY_PRESENT = 7,
    SB_NOT_PRESENT = 0,
    SB_PRESENT = 6,
};

struct vhdx_state {
    struct vhdx_header hdr;            /* the current header (write_lock once writable) */
    int hdr_index;                     /* 1 or 2 */
    uint8_t hdr_raw[VHDX_HEADER_SIZE]; /* its bytes, the template for updates */
    struct vhdx_regions regions;
    struct vhdx_meta meta;
    struct vhdx_overlay ov; /* log replay; empty when the log was clean */
    /* The io map answers name and metadata is declared on: img->io, or a
     * view of it with the replayed log applied (vhdx_overlay_io_open, kept
     * with the image by the core). */
    struct vd_io *dio;
    uint64_t file_size; /* io size, extended by the log's LastFileOffset;
                           atomic: allocation grows it */
    uint64_t *bat;      /* decoded entries; atomic, set only by allocation */
    uint64_t bat_entries;
    uint64_t data_blocks;
    uint64_t chunk_ratio;
    uint64_t past_eof; /* present blocks past end of file or inside the first MiB */
    char subformat[16];
    /* Writing (rw true only when opened writable on a writable io). */
    bool rw;
    bool lock_init;
    pthread_mutex_t write_lock; /* header updates, the log, allocation */
    bool writing;               /* atomic: headers carry the new GUIDs */
    bool broken;                /* write_lock: a metadata update failed */
    uint8_t file_write_guid[16];
    uint64_t file_end; /* write_lock: file size, where the next block goes */
    uint64_t log_seq;  /* write_lock: last log entry's sequence number */
};

static uint64_t vhdx_fsize(const struct vhdx_state *st)
{
    return __atomic_load_n(&st->file_size, __ATOMIC_ACQUIRE);
}

/* FileOffsetMB of an entry as a byte offset (bits 20-63: cannot wrap). */
static uint64_t vhdx_entry_off(uint64_t e)
{
    return e & ~(uint64_t)(VHDX_MIB - 1);
}

/* ---- small helpers ---- */

void vhdx_guid_str(const uint8_t g[16], char out[VHDX_GUID_STR])
{
    snprintf(out, VHDX_GUID_STR, "{%08" PRIx32 "-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
             le32(g), le16(g + 4), le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14],
             g[15]);
}

static bool vhdx_guid_zero(const uint8_t g[16])
{
    for (int i = 0; i < 16; i++)
        if (g[i])
            return false;
    return true;
}

/* CRC-32C of n bytes with the 4-byte checksum field at csum_off zeroed. */
static uint32_t vhdx_crc_skip(const uint8_t *p, size_t n, size_t csum_off)
{
    static const uint8_t zero4[4];
    uint32_t c = vd_crc32c(0, p, csum_off);
    c = vd_crc32c(c, zero4, 4);
    return vd_crc32c(c, p + csum_off + 4, n - csum_off - 4);
}

/* UTF-16LE (n bytes) to a new NUL-terminated UTF-8 string. Bad surrogates
 * become U+FFFD. */
static char *vhdx_utf16_to_utf8(const uint8_t *p, size_t n)
{
    size_t units = n / 2;
    char *out = malloc(units * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < units; i++) {
        uint32_t c = le16(p + 2 * i);
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
            uint32_t d = le16(p + 2 * i + 2);
            if (d >= 0xdc00 && d < 0xe000) {
                c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
                i++;
            } else {
                c = 0xfffd;
            }
        } else if (c >= 0xd800 && c < 0xe000) {
            c = 0xfffd;
        }
        if (c == 0)
            break;
        if (c < 0x80) {
            *o++ = (char)c;
        } else if (c < 0x800) {
            *o++ = (char)(0xc0 | c >> 6);
            *o++ = (char)(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            *o++ = (char)(0xe0 | c >> 12);
            *o++ = (char)(0x80 | ((c >> 6) & 0x3f));
            *o++ = (char)(0x80 | (c & 0x3f));
        } else {
            /* 4 bytes from 2 units: fits the 6 bytes reserved for them */
            *o++ = (char)(0xf0 | c >> 18);
            *o++ = (char)(0x80 | ((c >> 12) & 0x3f));
            *o++ = (char)(0x80 | ((c >> 6) & 0x3f));
            *o++ = (char)(0x80 | (c & 0x3f));
        }
    }
    *o = 0;
    return out;
}

/* ---- parsers: (buf, len), no I/O ---- */

int vhdx_parse_header(const uint8_t *buf, size_t len, struct vhdx_header *out, const char **why)
{
    if (len < VHDX_HEADER_SIZE || memcmp(buf, "head", 4) != 0) {
        *why = "bad signature";
        return -EINVAL;
    }
    if (!vhdx_crc_matches(vhdx_crc_skip(buf, VHDX_HEADER_SIZE, 4), le32(buf + 4))) {
        *why = "bad checksum";
        return -EINVAL;
    }
    out->seq = le64(buf + 8);
    memcpy(out->file_write_guid, buf + 16, 16);
    memcpy(out->data_write_guid, buf + 32, 16);
    memcpy(out->log_guid, buf + 48, 16);
    out->log_version = le16(buf + 64);
    out->version = le16(buf + 66);
    out->log_length = le32(buf + 68);
    out->log_offset = le64(buf + 72);
    return 0;
}

void vhdx_build_header(uint8_t out[VHDX_HEADER_SIZE], const uint8_t cur[VHDX_HEADER_SIZE],
                       const struct vhdx_header *h)
{
    memcpy(out, cur, VHDX_HEADER_SIZE);
    memcpy(out, "head", 4);
    put_le32(out + 4, 0);
    put_le64(out + 8, h->seq);
    memcpy(out + 16, h->file_write_guid, 16);
    memcpy(out + 32, h->data_write_guid, 16);
    memcpy(out + 48, h->log_guid, 16);
    put_le16(out + 64, h->log_version);
    put_le16(out + 66, h->version);
    put_le32(out + 68, h->log_length);
    put_le64(out + 72, h->log_offset);
    put_le32(out + 4, vd_crc32c(0, out, VHDX_HEADER_SIZE));
}

int vhdx_parse_region_table(const uint8_t *buf, size_t len, struct vhdx_regions *out, char *why,
                            size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (len < VHDX_REGION_SIZE || memcmp(buf, "regi", 4) != 0) {
        snprintf(why, whylen, "bad signature");
        return -EINVAL;
    }
    if (!vhdx_crc_matches(vhdx_crc_skip(buf, VHDX_REGION_SIZE, 4), le32(buf + 4))) {
        snprintf(why, whylen, "bad checksum");
        return -EINVAL;
    }
    uint32_t count = le32(buf + 8);
    if (count > VHDX_MAX_ENTRIES) {
        snprintf(why, whylen, "%" PRIu32 " entries (at most %u allowed)", count, VHDX_MAX_ENTRIES);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = buf + 16 + (size_t)i * 32;
        uint64_t off = le64(e + 16);
        uint32_t rlen = le32(e + 24);
        bool required = le32(e + 28) & 1;
        struct vhdx_region *r = NULL;
        char g[VHDX_GUID_STR];
        vhdx_guid_str(e, g);
        if (!strcasecmp(g, GUID_BAT))
            r = &out->bat;
        else if (!strcasecmp(g, GUID_METADATA))
            r = &out->meta;
        else if (required) {
            snprintf(why, whylen, "unknown required region %s", g);
            return -ENOTSUP;
        } else
            continue;
        if (r->present) {
            snprintf(why, whylen, "region %s listed twice", g);
            return -EINVAL;
        }
        if (off % VHDX_MIB || off < VHDX_MIB || rlen == 0 || rlen % VHDX_MIB) {
            snprintf(why, whylen,
                     "region %s at offset %" PRIu64 " length %" PRIu32 " is not 1 MiB aligned", g,
                     off, rlen);
            return -EINVAL;
        }
        r->off = off;
        r->len = rlen;
        r->present = true;
    }
    if (!out->bat.present || !out->meta.present) {
        snprintf(why, whylen, "%s region missing", out->bat.present ? "metadata" : "BAT");
        return -EINVAL;
    }
    return 0;
}

void vhdx_meta_free(struct vhdx_meta *m)
{
    for (size_t i = 0; i < m->nlocator; i++) {
        free(m->locator[i].key);
        free(m->locator[i].value);
    }
    m->nlocator = 0;
}

const char *vhdx_meta_locator(const struct vhdx_meta *m, const char *key)
{
    for (size_t i = 0; i < m->nlocator; i++)
        if (!strcmp(m->locator[i].key, key))
            return m->locator[i].value;
    return NULL;
}

static int vhdx_parse_locator(const uint8_t *p, uint32_t n, const char *name, struct vhdx_meta *m,
                              struct vd_error *err)
{
    if (n < 20)
        return vd_err(err, -EINVAL, "vhdx: %s: parent locator is %" PRIu32 " bytes, too short",
                      name, n);
    char g[VHDX_GUID_STR];
    vhdx_guid_str(p, g);
    if (strcasecmp(g, GUID_LOCATOR_TYPE) != 0)
        return vd_err(err, -ENOTSUP, "vhdx: %s: parent locator type %s is not supported", name, g);
    uint32_t count = le16(p + 18);
    if ((uint64_t)count * 12 > n - 20)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: parent locator has %" PRIu32 " entries but only %" PRIu32 " bytes",
                      name, count, n);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = p + 20 + (size_t)i * 12;
        uint32_t ko = le32(e), vo = le32(e + 4);
        uint16_t kl = le16(e + 8), vl = le16(e + 10);
        if ((uint64_t)ko + kl > n || (uint64_t)vo + vl > n || kl == 0 || kl % 2 || vl % 2)
            return vd_err(err, -EINVAL,
                          "vhdx: %s: parent locator entry %" PRIu32 " lies outside the item", name,
                          i);
        if (m->nlocator == VHDX_MAX_LOCATOR)
            continue;
        struct vhdx_locator_entry *le = &m->locator[m->nlocator];
        le->key = vhdx_utf16_to_utf8(p + ko, kl);
        le->value = vhdx_utf16_to_utf8(p + vo, vl);
        m->nlocator++;
        if (!le->key || !le->value)
            return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", name);
    }
    m->have_locator = true;
    return 0;
}

int vhdx_parse_metadata(const uint8_t *buf, size_t len, const char *name, struct vhdx_meta *m,
                        struct vd_error *err)
{
    bool have_fp = false, have_vs = false, have_ls = false;
    memset(m, 0, sizeof(*m));
    if (len < VHDX_META_TABLE_SIZE || memcmp(buf, "metadata", 8) != 0)
        return vd_err(err, -EINVAL, "vhdx: %s: metadata table has a bad signature", name);
    uint32_t count = le16(buf + 10);
    if (count > VHDX_MAX_ENTRIES)
        return vd_err(err, -EINVAL, "vhdx: %s: metadata table has %" PRIu32 " entries (max %u)",
                      name, count, VHDX_MAX_ENTRIES);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = buf + 32 + (size_t)i * 32;
        uint32_t off = le32(e + 16), ilen = le32(e + 20), flags = le32(e + 24);
        bool is_user = flags & 1, required = flags & 4;
        char g[VHDX_GUID_STR];
        vhdx_guid_str(e, g);
        if (ilen && (off < VHDX_META_TABLE_SIZE || (uint64_t)off + ilen > len))
            return vd_err(err, -EINVAL,
                          "vhdx: %s: metadata item %s (offset %" PRIu32 ", %" PRIu32
                          " bytes) lies outside the metadata region (%zu bytes)",
                          name, g, off, ilen, len);
        const uint8_t *p = ilen ? buf + off : buf; /* off is checked only when ilen > 0 */
        if (is_user)
            continue;
        if (!strcasecmp(g, GUID_FILE_PARAMS)) {
            if (ilen < 8)
                goto short_item;
            m->block_size = le32(p);
            m->leave_blocks_allocated = le32(p + 4) & 1;
            m->has_parent = le32(p + 4) & 2;
            have_fp = true;
        } else if (!strcasecmp(g, GUID_VIRTUAL_SIZE)) {
            if (ilen < 8)
                goto short_item;
            m->virtual_size = le64(p);
            have_vs = true;
        } else if (!strcasecmp(g, GUID_PAGE83)) {
            if (ilen < 16)
                goto short_item;
            memcpy(m->page83, p, 16);
            m->have_page83 = true;
        } else if (!strcasecmp(g, GUID_LOGICAL_SECTOR)) {
            if (ilen < 4)
                goto short_item;
            m->logical_sector_size = le32(p);
            have_ls = true;
        } else if (!strcasecmp(g, GUID_PHYSICAL_SECTOR)) {
            if (ilen < 4)
                goto short_item;
            m->physical_sector_size = le32(p);
        } else if (!strcasecmp(g, GUID_PARENT_LOCATOR)) {
            if (m->have_locator)
                return vd_err(err, -EINVAL, "vhdx: %s: two parent locators", name);
            int r = vhdx_parse_locator(p, ilen, name, m, err);
            if (r < 0)
                return r;
        } else if (required) {
            return vd_err(err, -ENOTSUP, "vhdx: %s: unknown required metadata item %s", name, g);
        }
        continue;
    short_item:
        return vd_err(err, -EINVAL, "vhdx: %s: metadata item %s is only %" PRIu32 " bytes", name, g,
                      ilen);
    }
    if (!have_fp || !have_vs || !have_ls)
        return vd_err(err, -EINVAL, "vhdx: %s: required metadata item %s is missing", name,
                      !have_fp   ? "file parameters"
                      : !have_vs ? "virtual disk size"
                                 : "logical sector size");
    if (!is_pow2(m->block_size) || m->block_size < VHDX_MIB || m->block_size > 256 * VHDX_MIB)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: block size %" PRIu32
                      " is invalid (must be a power of two from 1 MiB to 256 MiB)",
                      name, m->block_size);
    if (m->logical_sector_size != 512 && m->logical_sector_size != 4096)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: logical sector size %" PRIu32 " is invalid (512 or 4096)", name,
                      m->logical_sector_size);
    if (m->physical_sector_size && m->physical_sector_size != 512 &&
        m->physical_sector_size != 4096)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: physical sector size %" PRIu32 " is invalid (512 or 4096)", name,
                      m->physical_sector_size);
    if (m->virtual_size == 0 || m->virtual_size > VHDX_MAX_VIRTUAL_SIZE ||
        m->virtual_size % m->logical_sector_size)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: virtual disk size %" PRIu64
                      " is invalid (a multiple of the %" PRIu32 "-byte sector, at most 64 TiB)",
                      name, m->virtual_size, m->logical_sector_size);
    if (m->has_parent && !m->have_locator)
        return vd_err(err, -EINVAL, "vhdx: %s: differencing disk without a parent locator", name);
    return 0;
}

/* ---- reading the file through the log overlay ---- */

/* Read [off, off+len) of the file as the replayed log leaves it. Bytes
 * between the real end of file and the log's LastFileOffset read as zeros;
 * beyond that is an error. */
static int vhdx_read_file(struct vd_image *img, void *buf, size_t len, uint64_t off,
                          struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint64_t end, fsize = vhdx_fsize(st);
    if (ck_add(off, len, &end) || end > fsize)
        return vd_err(err, -EIO,
                      "vhdx: %s: read of %zu bytes at offset %" PRIu64
                      " is past end of file (%" PRIu64 " bytes)",
                      img->name, len, off, fsize);
    /* Writable: the file really is file_size bytes (the log was replayed
     * into it), and io->size changes under concurrent writes. */
    int r = st->rw || end <= img->io->size ? vd_io_pread_full(img->io, buf, len, off, err)
                                           : vd_io_pread_zfill(img->io, buf, len, off, err);
    if (r < 0)
        return r;
    vhdx_overlay_apply(&st->ov, buf, len, off);
    return 0;
}

/* Read a whole 64 KiB-or-larger structure into a new buffer. */
static int vhdx_read_alloc(struct vd_image *img, uint64_t off, size_t len, uint8_t **out,
                           struct vd_error *err)
{
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
    int r = vhdx_read_file(img, b, len, off, err);
    if (r < 0) {
        free(b);
        return r;
    }
    *out = b;
    return 0;
}

/* ---- probe/open ---- */

static int vhdx_probe(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                      uint64_t file_size)
{
    return head_len >= 8 && !memcmp(head, "vhdxfile", 8) ? 100 : 0;
}

static int vhdx_open_headers(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    struct vhdx_header h[2];
    const char *why[2] = {"", ""};
    bool ok[2];
    uint8_t *buf = malloc(2 * VHDX_HEADER_SIZE);
    if (!buf)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
    for (int i = 0; i < 2; i++) {
        uint64_t off = i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF;
        uint8_t *b = buf + i * VHDX_HEADER_SIZE;
        ok[i] = false;
        if (off + VHDX_HEADER_SIZE > img->io->size) {
            why[i] = "past end of file";
            continue;
        }
        int r = vd_io_pread_full(img->io, b, VHDX_HEADER_SIZE, off, err);
        if (r < 0) {
            free(buf);
            return r;
        }
        ok[i] = vhdx_parse_header(b, VHDX_HEADER_SIZE, &h[i], &why[i]) == 0;
    }
    if (!ok[0] && !ok[1]) {
        free(buf);
        return vd_err(err, -EINVAL,
                      "vhdx: %s: both headers are invalid (header 1: %s, header 2: %s)", img->name,
                      why[0], why[1]);
    }
    int c = !ok[0] || (ok[1] && h[1].seq > h[0].seq);
    st->hdr = h[c];
    st->hdr_index = c + 1;
    memcpy(st->hdr_raw, buf + c * VHDX_HEADER_SIZE, VHDX_HEADER_SIZE);
    free(buf);
    if (st->hdr.version != 1)
        return vd_err(err, -ENOTSUP, "vhdx: %s: header version %u is not supported (only 1)",
                      img->name, st->hdr.version);
    return 0;
}

static int vhdx_open_log(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    const struct vhdx_header *h = &st->hdr;
    uint64_t end;
    if (vhdx_guid_zero(h->log_guid) || h->log_length == 0)
        return 0; /* no log to replay (2.2.2: LogGuid zero) */
    if (h->log_version != 0)
        return vd_err(err, -ENOTSUP, "vhdx: %s: log version %u is not supported", img->name,
                      h->log_version);
    if (h->log_length == 0 || h->log_length % VHDX_MIB || h->log_offset < VHDX_MIB ||
        h->log_offset % VHDX_MIB)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: log at offset %" PRIu64 " length %" PRIu32 " is not 1 MiB aligned",
                      img->name, h->log_offset, h->log_length);
    if (h->log_length > VHDX_LOG_MAX)
        return vd_err(err, -ENOTSUP,
                      "vhdx: %s: the log needs replaying but is %" PRIu32
                      " bytes (at most %u supported)",
                      img->name, h->log_length, VHDX_LOG_MAX);
    if (ck_add(h->log_offset, h->log_length, &end) || end > img->io->size)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: log (offset %" PRIu64 ", %" PRIu32
                      " bytes) is past end of file (%" PRIu64 " bytes)",
                      img->name, h->log_offset, h->log_length, img->io->size);
    uint8_t *log;
    int r = vhdx_read_alloc(img, h->log_offset, h->log_length, &log, err);
    if (r < 0)
        return r;
    r = vhdx_log_replay(log, h->log_length, h->log_guid, img->name, &st->ov, err);
    free(log);
    if (r < 0)
        return r;
    if (st->ov.entries == 0)
        return 0;
    if (st->ov.flushed_file_offset > img->io->size)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: the log says the file was flushed at %" PRIu64
                      " bytes but it has only %" PRIu64 " (truncated)",
                      img->name, st->ov.flushed_file_offset, img->io->size);
    st->file_size = VD_MAX(st->file_size, st->ov.last_file_offset);
    st->file_size = VD_MAX(st->file_size, st->ov.end);
    return 0;
}

static int vhdx_open_regions(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    char why[2][160];
    int code[2];
    uint8_t *buf = NULL;
    for (int i = 0; i < 2; i++) {
        uint64_t off = i ? VHDX_REGION2_OFF : VHDX_REGION1_OFF;
        if (off + VHDX_REGION_SIZE > st->file_size) {
            snprintf(why[i], sizeof(why[i]), "past end of file");
            code[i] = -EINVAL;
            continue;
        }
        int r = vhdx_read_alloc(img, off, VHDX_REGION_SIZE, &buf, err);
        if (r < 0)
            return r;
        code[i] =
            vhdx_parse_region_table(buf, VHDX_REGION_SIZE, &st->regions, why[i], sizeof(why[i]));
        free(buf);
        if (code[i] == 0)
            break;
        if (code[i] == -ENOTSUP)
            return vd_err(err, -ENOTSUP, "vhdx: %s: region table %d: %s", img->name, i + 1, why[i]);
    }
    if (code[0] < 0 && code[1] < 0)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: both region tables are invalid (region table 1: %s, region "
                      "table 2: %s)",
                      img->name, why[0], why[1]);
    const struct vhdx_region *rs[2] = {&st->regions.bat, &st->regions.meta};
    for (int i = 0; i < 2; i++) {
        uint64_t end;
        if (ck_add(rs[i]->off, rs[i]->len, &end) || end > st->file_size)
            return vd_err(err, -EINVAL,
                          "vhdx: %s: %s region (offset %" PRIu64 ", %" PRIu32
                          " bytes) is past end of file (%" PRIu64 " bytes)",
                          img->name, i ? "metadata" : "BAT", rs[i]->off, rs[i]->len, st->file_size);
    }
    return 0;
}

static int vhdx_open_metadata(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    const struct vhdx_region *mr = &st->regions.meta;
    if (mr->len > VHDX_MAX_META_REGION)
        return vd_err(err, -ENOTSUP, "vhdx: %s: metadata region of %" PRIu32 " bytes is too big",
                      img->name, mr->len);
    uint8_t *buf;
    int r = vhdx_read_alloc(img, mr->off, mr->len, &buf, err);
    if (r < 0)
        return r;
    r = vhdx_parse_metadata(buf, mr->len, img->name, &st->meta, err);
    free(buf);
    return r;
}

static int vhdx_open_bat(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    const struct vhdx_meta *m = &st->meta;
    uint64_t bs = m->block_size;
    st->chunk_ratio = ((uint64_t)1 << 23) * m->logical_sector_size / bs;
    st->data_blocks = div_round_up(m->virtual_size, bs);
    uint64_t sb_blocks = div_round_up(st->data_blocks, st->chunk_ratio);
    if (m->has_parent)
        st->bat_entries = sb_blocks * (st->chunk_ratio + 1);
    else
        st->bat_entries = st->data_blocks + (st->data_blocks - 1) / st->chunk_ratio;
    /* Sizes are bounded: 64 TiB / 1 MiB blocks = 64 Mi entries. */
    if (st->bat_entries * 8 > st->regions.bat.len)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: BAT region of %" PRIu32 " bytes is too small for %" PRIu64
                      " entries",
                      img->name, st->regions.bat.len, st->bat_entries);
    size_t nbytes = (size_t)(st->bat_entries * 8);
    uint8_t *raw;
    int r = vhdx_read_alloc(img, st->regions.bat.off, nbytes, &raw, err);
    if (r < 0)
        return r;
    st->bat = malloc(nbytes);
    if (!st->bat) {
        free(raw);
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory for the BAT", img->name);
    }
    for (uint64_t i = 0; i < st->bat_entries; i++)
        st->bat[i] = le64(raw + i * 8);
    free(raw);

    for (uint64_t i = 0; i < st->bat_entries; i++) {
        bool is_sb = i % (st->chunk_ratio + 1) == st->chunk_ratio;
        unsigned s = st->bat[i] & 7;
        uint64_t off = vhdx_entry_off(st->bat[i]);
        bool present;
        if (is_sb) {
            if (s != SB_NOT_PRESENT && s != SB_PRESENT)
                return vd_err(err, -EINVAL,
                              "vhdx: %s: BAT entry %" PRIu64 " (sector bitmap %" PRIu64
                              ") has invalid state %u",
                              img->name, i, i / (st->chunk_ratio + 1), s);
            present = s == SB_PRESENT;
        } else {
            if (s == 4 || s == 5)
                return vd_err(err, -EINVAL,
                              "vhdx: %s: BAT entry %" PRIu64 " (payload block %" PRIu64
                              ") has invalid state %u",
                              img->name, i, i - i / (st->chunk_ratio + 1), s);
            present = s == PAYLOAD_FULLY_PRESENT || s == PAYLOAD_PARTIALLY_PRESENT;
            if (s == PAYLOAD_PARTIALLY_PRESENT && m->has_parent) {
                uint64_t sbi =
                    (i / (st->chunk_ratio + 1)) * (st->chunk_ratio + 1) + st->chunk_ratio;
                if (sbi >= st->bat_entries || (st->bat[sbi] & 7) != SB_PRESENT)
                    return vd_err(err, -EINVAL,
                                  "vhdx: %s: BAT entry %" PRIu64
                                  " is partially present but its sector bitmap is not",
                                  img->name, i);
            }
        }
        uint64_t size = is_sb ? VHDX_SB_BLOCK : bs, end;
        if (present && (off < VHDX_MIB || ck_add(off, size, &end) || end > st->file_size))
            st->past_eof++;
    }
    return 0;
}

/* A Windows path: drive letter ("C:"), or "\\?\..." / "\\server\..." (after
 * '\' became '/'). It names nothing on this machine. */
static bool vhdx_is_windows_path(const char *p)
{
    return (p[0] && p[1] == ':') || !strncmp(p, "//", 2);
}

/* Open the parent named by the locator. Candidates, in this order:
 * relative_path, absolute_win32_path, volume_path, '\' read as '/'. A path
 * that means something here (relative, or absolute in POSIX form) is
 * handed to the core as it is, so the one path policy decides (inside the
 * child's directory, or one the user allowed with allow_path); a Windows
 * path (drive letter, \\?\Volume, UNC) is looked for by its last component
 * beside the child. A candidate that is missing or refused by the policy
 * lets the next one be tried; when none opens, a refusal is reported over
 * "not found", since it tells the user what to allow. A loop or any other
 * failure ends the search. */
static int vhdx_open_parent(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    const struct vhdx_meta *m = &st->meta;
    static const char *const keys[] = {"relative_path", "absolute_win32_path", "volume_path"};
    char tried[3][256];
    size_t ntried = 0;
    struct vd_error refused = {0};
    int r = -ENOENT;
    for (size_t k = 0; k < VD_ARRAY_SIZE(keys); k++) {
        const char *v = vhdx_meta_locator(m, keys[k]);
        if (!v || !*v)
            continue;
        char *path = strdup(v);
        if (!path)
            return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
        for (char *c = path; *c; c++)
            if (*c == '\\')
                *c = '/';
        const char *rel = path;
        if (vhdx_is_windows_path(rel)) {
            const char *b = strrchr(rel, '/');
            rel = b ? b + 1 : rel + 2; /* "C:x.vhdx" is x.vhdx on drive C */
        }
        while (!strncmp(rel, "./", 2))
            rel += 2;
        bool dup = !*rel;
        for (size_t t = 0; t < ntried; t++)
            dup |= !strcmp(tried[t], rel);
        if (dup) {
            free(path);
            continue;
        }
        snprintf(tried[ntried++], sizeof(tried[0]), "%s", rel);
        struct vd_error e2 = {0};
        r = vd_image_open_backing(img, rel, "vhdx", &e2);
        free(path);
        if (r == 0)
            break;
        if (r == -EPERM && !refused.code)
            refused = e2;
        else if (r != -ENOENT && r != -EPERM) {
            vd_err(err, r, "%s", e2.msg);
            return r;
        }
    }
    if (r < 0) {
        if (refused.code)
            return vd_err(err, refused.code, "%s", refused.msg);
        if (ntried == 0)
            return vd_err(err, -EINVAL, "vhdx: %s: parent locator names no parent path", img->name);
        return vd_err(err, -ENOENT, "vhdx: %s: parent not found (tried %s%s%s%s%s)", img->name,
                      tried[0], ntried > 1 ? ", " : "", ntried > 1 ? tried[1] : "",
                      ntried > 2 ? ", " : "", ntried > 2 ? tried[2] : "");
    }
    /* The parent must be the exact data the child was made against. */
    struct vd_image *p = img->backing;
    const struct vhdx_state *ps = p->priv;
    char pguid[VHDX_GUID_STR];
    vhdx_guid_str(ps->hdr.data_write_guid, pguid);
    const char *l1 = vhdx_meta_locator(m, "parent_linkage");
    const char *l2 = vhdx_meta_locator(m, "parent_linkage2");
    if (l2 && !strcmp(l2, "{00000000-0000-0000-0000-000000000000}"))
        l2 = NULL; /* Hyper-V writes an all-zero parent_linkage2 */
    if (!l1)
        return vd_err(err, -EINVAL, "vhdx: %s: parent locator has no parent_linkage", img->name);
    if (strcasecmp(l1, pguid) != 0 && (!l2 || strcasecmp(l2, pguid) != 0))
        return vd_err(err, -EINVAL,
                      "vhdx: %s: parent %s has DataWriteGuid %s but the child expects "
                      "parent_linkage %s%s%s: the parent changed after the child was made",
                      img->name, p->name, pguid, l1, l2 ? " or " : "", l2 ? l2 : "");
    return 0;
}

/* ---- writing: headers, log, open ---- */

/* A random (version 4) GUID in on-disk byte order. */
static int vhdx_new_guid(struct vd_image *img, uint8_t g[16], struct vd_error *err)
{
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(g + got, 16 - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return vd_err(err, -errno, "vhdx: %s: getrandom: %s", img->name, strerror(errno));
        }
        got += (size_t)n;
    }
    g[7] = (uint8_t)((g[7] & 0x0f) | 0x40); /* Data3 is little-endian: version nibble */
    g[8] = (uint8_t)((g[8] & 0x3f) | 0x80);
    return 0;
}

static int vhdx_sync(struct vd_image *img, struct vd_error *err)
{
    return img->io->ops->flush ? img->io->ops->flush(img->io, err) : 0;
}

/* Update the headers as 2.2.2.1 says: the non-current header gets the
 * current one's SequenceNumber + 1 and the new fields, is written and
 * flushed, and becomes current. Done twice (as qemu does) so that both
 * headers hold the new values. The session's FileWriteGuid goes into every
 * update; data_guid and log_guid replace those fields when not NULL.
 * Caller holds write_lock (or is the single-threaded open). */
static int vhdx_update_headers(struct vd_image *img, const uint8_t *data_guid,
                               const uint8_t *log_guid, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint8_t *buf = malloc(VHDX_HEADER_SIZE);
    int r = 0;
    if (!buf)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
    for (int k = 0; k < 2 && r == 0; k++) {
        struct vhdx_header h = st->hdr;
        int idx = st->hdr_index == 1 ? 2 : 1;
        h.seq = st->hdr.seq + 1;
        memcpy(h.file_write_guid, st->file_write_guid, 16);
        if (data_guid)
            memcpy(h.data_write_guid, data_guid, 16);
        if (log_guid)
            memcpy(h.log_guid, log_guid, 16);
        vhdx_build_header(buf, st->hdr_raw, &h);
        r = vd_io_pwrite_full(img->io, buf, VHDX_HEADER_SIZE,
                              idx == 1 ? VHDX_HEADER1_OFF : VHDX_HEADER2_OFF, err);
        if (r == 0)
            r = vhdx_sync(img, err);
        if (r == 0) {
            st->hdr = h;
            st->hdr_index = idx;
            memcpy(st->hdr_raw, buf, VHDX_HEADER_SIZE);
        }
    }
    free(buf);
    return r;
}

/* Write the replayed log (the in-memory overlay) into the file, extend the
 * file to what the log says, flush, and empty the log (LogGuid zero), as
 * 2.3.3 requires before the file is written. Single-threaded (open). */
static int vhdx_replay_into_file(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    static const uint8_t zero_guid[16];
    const size_t zchunk = 64 * 1024;
    uint8_t *zeros = calloc(1, zchunk);
    int r = 0;
    if (!zeros)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
    uint64_t real = img->io->size;
    for (size_t i = 0; i < st->ov.n && r == 0; i++) {
        const struct vhdx_overlay_ext *x = &st->ov.ext[i];
        if (x->data) {
            r = vd_io_pwrite_full(img->io, x->data, (size_t)x->len, x->off, err);
            continue;
        }
        /* Zeros past the old end of file are holes already. */
        uint64_t end = VD_MIN(x->off + x->len, real);
        for (uint64_t o = x->off; o < end && r == 0; o += zchunk)
            r = vd_io_pwrite_full(img->io, zeros, (size_t)VD_MIN(zchunk, end - o), o, err);
    }
    if (r == 0 && img->io->size < st->file_size)
        r = vd_io_pwrite_full(img->io, zeros, 1, st->file_size - 1, err);
    free(zeros);
    if (r == 0)
        r = vhdx_sync(img, err);
    if (r == 0)
        r = vhdx_update_headers(img, NULL, zero_guid, err);
    if (r < 0)
        return r;
    vhdx_overlay_free(&st->ov);
    return 0;
}

static int vhdx_check(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err);

static void vhdx_count_corrupt(void *opaque, bool corrupt, const char *msg)
{
    (void)msg;
    *(int *)opaque += corrupt;
}

/* Opened writable: refuse what cannot be written in place, then replay a
 * dirty log into the file. */
static int vhdx_open_write(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    const char *why = NULL;
    uint64_t log_end;
    int corrupt = 0, r;
    if (st->meta.has_parent)
        why = "differencing disks cannot be written in place";
    else if (st->hdr.log_length == 0 || st->hdr.log_length % VHDX_MIB ||
             st->hdr.log_offset < VHDX_MIB || st->hdr.log_offset % VHDX_MIB ||
             ck_add(st->hdr.log_offset, st->hdr.log_length, &log_end) || log_end > img->io->size ||
             st->hdr.log_version != 0)
        why = "it has no usable log region for metadata updates";
    if (!why) {
        /* Anything `vdisk check` calls corrupt (a bad header or region
         * table, blocks past the end of file, overlapping blocks, log or
         * regions, partially present blocks) is not written to. */
        if ((r = vhdx_check(img, vhdx_count_corrupt, &corrupt, err)) < 0)
            return r;
        if (corrupt || st->past_eof)
            why = "the disk is damaged (see vdisk check)";
    }
    if (why)
        return vd_err(err, -EROFS,
                      "vhdx: %s: %s; mount it read-only, keep the changes in an overlay (-o "
                      "overlay=FILE), or write to a converted copy",
                      img->name, why);
    if (!img->io->writable || !img->io->ops->pwrite)
        return vd_err(err, -EROFS, "vhdx: %s: the file is not open for writing", img->name);
    if (pthread_mutex_init(&st->write_lock, NULL) != 0)
        return vd_err(err, -ENOMEM, "vhdx: %s: cannot create a lock", img->name);
    st->lock_init = true;
    st->rw = true;
    r = vhdx_new_guid(img, st->file_write_guid, err);
    if (r == 0 && (st->ov.entries > 0 || !vhdx_guid_zero(st->hdr.log_guid)))
        r = vhdx_replay_into_file(img, err);
    if (r < 0)
        return r;
    st->file_size = img->io->size;
    st->file_end = img->io->size;
    return 0;
}

static int vhdx_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The io reads and answers go through: the file, or (read-only, a log
 * replayed in memory, or a file the log extends) a view of the file as the
 * replayed log leaves it, kept with the image. */
static int vhdx_open_view(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    struct vd_io *v;
    if (st->rw || (st->ov.n == 0 && st->file_size <= img->io->size)) {
        st->dio = img->io;
        return 0;
    }
    int r = vhdx_overlay_io_open(img->io, &st->ov, st->file_size, &v, err);
    if (r == 0)
        r = vd_image_add_io(img, v, err);
    if (r == 0)
        st->dio = v;
    return r;
}

/* Declare the metadata no data answer may cover (core/driver.h): the first
 * MiB (file identifier, headers, region tables), the log, the BAT and
 * metadata regions, and every present sector bitmap block inside the file
 * (1 MiB each, one per chunk of 2^23 sectors: a 64 TiB disk has at most
 * 16384; declared in file order so each lands at the end of the table). */
static int vhdx_declare_meta(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    const struct vhdx_header *h = &st->hdr;
    uint64_t end, n = 0, fsize = vhdx_fsize(st);
    int r;
    if ((r = vd_image_declare_meta(img, st->dio, 0, VHDX_MIB, "header area", err)) < 0)
        return r;
    /* An unusable log region is check's to report; declare what is real. */
    if (h->log_length && !ck_add(h->log_offset, h->log_length, &end) &&
        (r = vd_image_declare_meta(img, st->dio, h->log_offset, h->log_length, "log", err)) < 0)
        return r;
    if ((r = vd_image_declare_meta(img, st->dio, st->regions.bat.off, st->regions.bat.len,
                                   "BAT region", err)) < 0 ||
        (r = vd_image_declare_meta(img, st->dio, st->regions.meta.off, st->regions.meta.len,
                                   "metadata region", err)) < 0)
        return r;
    uint64_t nsb = st->bat_entries / (st->chunk_ratio + 1);
    uint64_t *sb = malloc((nsb ? nsb : 1) * sizeof(*sb));
    if (!sb)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
    for (uint64_t i = st->chunk_ratio; i < st->bat_entries; i += st->chunk_ratio + 1) {
        uint64_t off = vhdx_entry_off(st->bat[i]);
        if ((st->bat[i] & 7) == SB_PRESENT && !ck_add(off, VHDX_SB_BLOCK, &end) && end <= fsize)
            sb[n++] = off;
    }
    qsort(sb, n, sizeof(*sb), vhdx_u64_cmp);
    for (uint64_t i = 0; i < n && r == 0; i++)
        r = vd_image_declare_meta(img, st->dio, sb[i], VHDX_SB_BLOCK, "sector bitmap", err);
    free(sb);
    return r;
}

static int vhdx_open(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint8_t ident[8];
    int r;
    st->file_size = img->io->size;
    if (img->io->size < VHDX_MIB)
        return vd_err(err, -EINVAL,
                      "vhdx: %s: file is %" PRIu64 " bytes, shorter than the 1 MiB header area",
                      img->name, img->io->size);
    r = vd_io_pread_full(img->io, ident, sizeof(ident), 0, err);
    if (r < 0)
        return r;
    if (memcmp(ident, "vhdxfile", 8) != 0)
        return vd_err(err, -EINVAL, "vhdx: %s: no \"vhdxfile\" signature", img->name);
    if ((r = vhdx_open_headers(img, err)) < 0 || (r = vhdx_open_log(img, err)) < 0 ||
        (r = vhdx_open_regions(img, err)) < 0 || (r = vhdx_open_metadata(img, err)) < 0 ||
        (r = vhdx_open_bat(img, err)) < 0)
        return r;
    img->size = st->meta.virtual_size;
    img->sector_size = st->meta.logical_sector_size;
    /* No format field says "fixed"; Hyper-V and qemu set LeaveBlockAllocated
     * on fixed disks (and only there). */
    snprintf(st->subformat, sizeof(st->subformat), "%s",
             st->meta.has_parent               ? "differencing"
             : st->meta.leave_blocks_allocated ? "fixed"
                                               : "dynamic");
    img->subformat = st->subformat;
    if (img->opts.writable && (r = vhdx_open_write(img, err)) < 0)
        return r;
    if ((r = vhdx_open_view(img, err)) < 0 || (r = vhdx_declare_meta(img, err)) < 0)
        return r;
    if (st->meta.has_parent && (r = vhdx_open_parent(img, err)) < 0)
        return r;
    return 0;
}

static void vhdx_close(struct vd_image *img)
{
    struct vhdx_state *st = img->priv;
    if (st->rw && __atomic_load_n(&st->writing, __ATOMIC_ACQUIRE) && img->io->ops->flush) {
        struct vd_error e = {0};
        (void)img->io->ops->flush(img->io, &e); /* data writes; metadata is already stable */
    }
    if (st->lock_init)
        pthread_mutex_destroy(&st->write_lock);
    st->lock_init = false;
    vhdx_meta_free(&st->meta);
    vhdx_overlay_free(&st->ov);
    free(st->bat);
    st->bat = NULL;
}

/* ---- map: what backs a run of the virtual disk ---- */

static uint64_t vhdx_payload_entry(const struct vhdx_state *st, uint64_t blk)
{
    return __atomic_load_n(&st->bat[blk + blk / st->chunk_ratio], __ATOMIC_ACQUIRE);
}

enum vhdx_kind { VHDX_DATA, VHDX_ZERO, VHDX_BACKING, VHDX_BITMAP };

/* How a payload block with entry e reads (2.5.1.1; docs/vhdx.md table). */
static enum vhdx_kind vhdx_block_kind(const struct vhdx_state *st, uint64_t e)
{
    unsigned s = e & 7;
    if (s == PAYLOAD_FULLY_PRESENT || (s == PAYLOAD_PARTIALLY_PRESENT && !st->meta.has_parent))
        return VHDX_DATA;
    if (s == PAYLOAD_PARTIALLY_PRESENT)
        return VHDX_BITMAP;
    if (s == PAYLOAD_ZERO || !st->meta.has_parent)
        return VHDX_ZERO;
    return VHDX_BACKING;
}

/* Where present payload block blk (entry e) starts in the file. The whole
 * block must lie inside the file and outside the declared metadata
 * (headers, log, BAT, metadata region, sector bitmaps): else -EIO naming
 * the entry. The core checks every answer again; this check gives the
 * message its BAT entry, and is computed without wrapping (issue 9: a
 * FileOffsetMB of 0xFFFFFFFFFFF plus a block size wraps to the header). */
static int vhdx_block_where(struct vd_image *img, uint64_t blk, uint64_t e, uint64_t *boff,
                            struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint64_t off = vhdx_entry_off(e), end, fsize = vhdx_fsize(st);
    uint64_t idx = blk + blk / st->chunk_ratio;
    if (ck_add(off, st->meta.block_size, &end) || end > fsize)
        return vd_err(err, -EIO,
                      "vhdx: %s: BAT entry %" PRIu64 " (payload block %" PRIu64
                      ") points to file offset %" PRIu64 ", past end of file (%" PRIu64 " bytes)",
                      img->name, idx, blk, off, fsize);
    /* Ranges are declared at open only, so the one found stays valid. */
    const struct vd_meta_range *m = vd_image_meta_overlap(img, st->dio, off, st->meta.block_size);
    if (m) {
        /* Name the first structure the block runs into. */
        const struct vd_meta_range *m2;
        while (m->off > off && (m2 = vd_image_meta_overlap(img, st->dio, off, m->off - off)))
            m = m2;
        return vd_err(err, -EIO,
                      "vhdx: %s: BAT entry %" PRIu64 " (payload block %" PRIu64
                      ") points to file offset %" PRIu64 ", over the %s (%" PRIu64 "..%" PRIu64
                      "): the image is corrupt or crafted; refused",
                      img->name, idx, blk, off, m->what, m->off, m->off + m->len);
    }
    *boff = off;
    return 0;
}

/* Most blocks one data answer covers: bounds the work of one map call (each
 * block is checked) while a fixed disk still reads in few answers. */
#define VHDX_MAP_MAX_BLOCKS 4096u

/* A present block at blk: DATA, extended over the following blocks that
 * are present and follow it in the file. */
static int vhdx_map_data(struct vd_image *img, uint64_t blk, uint64_t inblk, uint64_t e,
                         uint64_t len, struct vd_map *m, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint64_t bs = st->meta.block_size, boff;
    int r = vhdx_block_where(img, blk, e, &boff, err);
    if (r < 0)
        return r;
    m->kind = VD_MAP_DATA;
    m->io = st->dio;
    m->io_off = boff + inblk; /* inside the file: checked above */
    m->what = "BAT";
    uint64_t next = boff + bs;
    struct vd_error e2 = {0};
    for (unsigned i = 1; i < VHDX_MAP_MAX_BLOCKS && m->len < len; i++) {
        uint64_t e3 = vhdx_payload_entry(st, blk + i), b3;
        if (vhdx_block_kind(st, e3) != VHDX_DATA || vhdx_entry_off(e3) != next ||
            vhdx_block_where(img, blk + i, e3, &b3, &e2) < 0)
            break; /* the next call answers (or refuses) that block */
        m->len = VD_MIN(len, m->len + bs);
        next += bs;
    }
    return 0;
}

/* A partially present block of a differencing disk (2.5.1.2): the run of
 * sectors from inblk (at most n bytes) whose sector bitmap bits agree; set
 * = this file's block, clear = the parent. Only the bitmap bytes the run
 * needs are read, 512 at a time. */
static int vhdx_map_bitmap(struct vd_image *img, uint64_t blk, uint64_t inblk, uint64_t e,
                           uint64_t n, struct vd_map *m, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint64_t lss = st->meta.logical_sector_size, bs = st->meta.block_size;
    uint64_t chunk = blk / st->chunk_ratio;
    uint64_t sbi = chunk * (st->chunk_ratio + 1) + st->chunk_ratio;
    uint64_t sboff = vhdx_entry_off(st->bat[sbi]), end, fsize = vhdx_fsize(st);
    if (ck_add(sboff, VHDX_SB_BLOCK, &end) || end > fsize)
        return vd_err(err, -EIO,
                      "vhdx: %s: BAT entry %" PRIu64 " (sector bitmap %" PRIu64
                      ") points to file offset %" PRIu64 ", past end of file (%" PRIu64 " bytes)",
                      img->name, sbi, chunk, sboff, fsize);
    /* Sector numbers within the chunk: < 2^23, so bytes < 1 MiB. */
    uint64_t base = (blk % st->chunk_ratio) * (bs / lss);
    uint64_t s0 = base + inblk / lss, slast = base + (inblk + n - 1) / lss, s = s0;
    uint8_t bm[512];
    bool mine = false;
    while (s <= slast) {
        uint64_t byte0 = s / 8;
        size_t nb = (size_t)VD_MIN((uint64_t)sizeof(bm), slast / 8 - byte0 + 1);
        int r = vd_io_pread_full(st->dio, bm, nb, sboff + byte0, err);
        if (r < 0)
            return r;
        if (s == s0)
            mine = bm[0] >> (s % 8) & 1;
        for (; s <= slast && s / 8 - byte0 < nb; s++)
            if ((bool)(bm[s / 8 - byte0] >> (s % 8) & 1) != mine)
                goto run_end;
    }
run_end:
    m->len = VD_MIN(n, (s - base) * lss - inblk);
    if (!mine) {
        m->kind = VD_MAP_BACKING;
        return 0;
    }
    uint64_t boff;
    int r = vhdx_block_where(img, blk, e, &boff, err);
    if (r < 0)
        return r;
    m->kind = VD_MAP_DATA;
    m->io = st->dio;
    m->io_off = boff + inblk;
    m->what = "BAT";
    return 0;
}

/* The run at off: one block's answer, or several blocks of one kind
 * (zeros, the parent, data contiguous in the file). */
static int vhdx_map(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                    struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint64_t bs = st->meta.block_size;
    uint64_t blk = off / bs, inblk = off % bs;
    uint64_t e = vhdx_payload_entry(st, blk);
    enum vhdx_kind kind = vhdx_block_kind(st, e);
    m->len = VD_MIN(len, bs - inblk);
    switch (kind) {
    case VHDX_DATA:
        return vhdx_map_data(img, blk, inblk, e, len, m, err);
    case VHDX_BITMAP:
        return vhdx_map_bitmap(img, blk, inblk, e, m->len, m, err);
    case VHDX_ZERO:
    case VHDX_BACKING:
        m->kind = kind == VHDX_ZERO ? VD_MAP_ZERO : VD_MAP_BACKING;
        /* The run stays inside the disk: off + len <= size. */
        while (m->len < len && vhdx_block_kind(st, vhdx_payload_entry(st, ++blk)) == kind)
            m->len = VD_MIN(len, m->len + bs);
        return 0;
    }
    return vd_err(err, -EIO, "vhdx: %s: BAT entry for block %" PRIu64 " has no meaning", img->name,
                  blk);
}

/* ---- writes (fixed and dynamic disks) ---- */

/* Before the first modification of user data (2.2.2: DataWriteGuid, and
 * FileWriteGuid before any write) the headers get the new GUIDs. Called by
 * the core once, before the first write. */
static int vhdx_write_begin(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    uint8_t data_guid[16];
    int r = 0;
    if (!st->rw)
        return vd_err(err, -EROFS, "vhdx: %s: opened read-only", img->name);
    pthread_mutex_lock(&st->write_lock);
    if (st->broken)
        r = vd_err(err, -EIO, "vhdx: %s: an earlier metadata update failed", img->name);
    else if (!__atomic_load_n(&st->writing, __ATOMIC_ACQUIRE)) {
        r = vhdx_new_guid(img, data_guid, err);
        if (r == 0)
            r = vhdx_update_headers(img, data_guid, NULL, err);
        if (r == 0)
            __atomic_store_n(&st->writing, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&st->write_lock);
    return r;
}

/* Give payload block blk a new block at the end of the file, then point its
 * BAT entry there through the log (2.3):
 *   1. extend the file to the block's end (its last byte): the block is a
 *      hole past the old end of file, so it reads as zeros, as the
 *      not-present block did; flush: a crash now leaks the space;
 *   2. headers get a new LogGuid (2.2.2.1), flushed;
 *   3. log entry at log offset 0 (the log is empty) with one data descriptor
 *      for the BAT's 4 KiB page, FlushedFileOffset = LastFileOffset = the
 *      new file size, flushed: from here a crash replays the entry;
 *   4. the same page written to the BAT, flushed;
 *   5. headers get LogGuid zero (the log is empty again), as qemu does
 *      after applying its log, so other readers need no replay;
 *   6. the in-memory entry is published (release): a reader that sees it
 *      finds the block in the file.
 * The core then writes the data into the block. A crash before that leaves
 * the block reading as zeros, as it read before the write.
 * Caller holds write_lock. */
static int vhdx_alloc_block(struct vd_image *img, uint64_t blk, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    static const uint8_t zero_guid[16];
    uint64_t bs = st->meta.block_size;
    uint64_t idx = blk + blk / st->chunk_ratio;
    uint64_t boff = div_round_up(st->file_end, VHDX_MIB) * VHDX_MIB, end;
    if (ck_add(boff, bs, &end) || end > (1ull << 52))
        return vd_err(err, -EFBIG, "vhdx: %s: no room for block %" PRIu64, img->name, blk);
    uint64_t entry = boff | PAYLOAD_FULLY_PRESENT;
    uint64_t ent_off = st->regions.bat.off + idx * 8;
    uint64_t page_off = ent_off & ~(uint64_t)(VHDX_LOG_SECTOR - 1);
    size_t elen = vhdx_log_entry_size(1);
    uint8_t *page = malloc(VHDX_LOG_SECTOR), *log = malloc(elen);
    uint8_t log_guid[16];
    int r = -ENOMEM;
    if (!page || !log) {
        vd_err(err, r, "vhdx: %s: out of memory", img->name);
        goto out;
    }
    /* 1 */
    r = vd_io_pwrite_full(img->io, "", 1, end - 1, err);
    if (r == 0)
        r = vhdx_sync(img, err);
    if (r < 0)
        goto out;
    st->file_end = end;
    __atomic_store_n(&st->file_size, end, __ATOMIC_RELEASE);
    /* From here a failure may leave the metadata half updated. */
    st->broken = true;
    /* 2 */
    if ((r = vhdx_new_guid(img, log_guid, err)) < 0 ||
        (r = vhdx_update_headers(img, NULL, log_guid, err)) < 0)
        goto out;
    /* 3 */
    if ((r = vd_io_pread_full(img->io, page, VHDX_LOG_SECTOR, page_off, err)) < 0)
        goto out;
    put_le64(page + (ent_off - page_off), entry);
    if (vhdx_log_build_entry(log, elen, ++st->log_seq, 0, log_guid, end, end, &page_off, page, 1) <
        0) {
        r = vd_err(err, -EINVAL, "vhdx: %s: cannot build a log entry for BAT entry %" PRIu64,
                   img->name, idx);
        goto out;
    }
    if ((r = vd_io_pwrite_full(img->io, log, elen, st->hdr.log_offset, err)) < 0 ||
        (r = vhdx_sync(img, err)) < 0)
        goto out;
    /* 4 */
    if ((r = vd_io_pwrite_full(img->io, page, VHDX_LOG_SECTOR, page_off, err)) < 0 ||
        (r = vhdx_sync(img, err)) < 0)
        goto out;
    /* 5 */
    if ((r = vhdx_update_headers(img, NULL, zero_guid, err)) < 0)
        goto out;
    st->broken = false;
    /* 6 */
    __atomic_store_n(&st->bat[idx], entry, __ATOMIC_RELEASE);
out:
    free(page);
    free(log);
    return r;
}

/* The core found [off, off+len) reading as zeros (not present, zero,
 * unmapped or undefined: no parent here) and has non-zero bytes for it:
 * allocate its block (once, under write_lock; a writer that lost the race
 * finds it present) and answer where the run goes. */
static int vhdx_alloc(struct vd_image *img, uint64_t off, uint64_t len, const uint8_t *data,
                      struct vd_map *m, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    (void)data; /* a new block is a hole (zeros) until the core writes it */
    uint64_t bs = st->meta.block_size;
    uint64_t blk = off / bs, inblk = off % bs;
    int r = 0;
    if (!st->rw)
        return vd_err(err, -EROFS, "vhdx: %s: opened read-only", img->name);
    pthread_mutex_lock(&st->write_lock);
    if (st->broken)
        r = vd_err(err, -EIO, "vhdx: %s: an earlier metadata update failed", img->name);
    else if ((vhdx_payload_entry(st, blk) & 7) != PAYLOAD_FULLY_PRESENT)
        r = vhdx_alloc_block(img, blk, err);
    pthread_mutex_unlock(&st->write_lock);
    if (r < 0)
        return r;
    uint64_t e = vhdx_payload_entry(st, blk), boff;
    if ((r = vhdx_block_where(img, blk, e, &boff, err)) < 0)
        return r;
    m->kind = VD_MAP_DATA;
    m->len = VD_MIN(len, bs - inblk);
    m->io = st->dio;
    m->io_off = boff + inblk;
    m->what = "BAT";
    return 0;
}

static int vhdx_flush(struct vd_image *img, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    return st->rw ? vhdx_sync(img, err) : 0;
}

static uint64_t vhdx_allocated(struct vd_image *img)
{
    struct vhdx_state *st = img->priv;
    uint64_t total = VHDX_MIB + st->regions.bat.len + st->regions.meta.len + st->hdr.log_length;
    for (uint64_t i = 0; i < st->bat_entries; i++) {
        bool is_sb = i % (st->chunk_ratio + 1) == st->chunk_ratio;
        unsigned s = __atomic_load_n(&st->bat[i], __ATOMIC_RELAXED) & 7; /* writers append */
        if (is_sb && s == SB_PRESENT)
            total += VHDX_SB_BLOCK;
        else if (!is_sb && (s == PAYLOAD_FULLY_PRESENT || s == PAYLOAD_PARTIALLY_PRESENT))
            total += st->meta.block_size;
    }
    return VD_MIN(total, img->io->size);
}

/* ---- info ---- */

static void vhdx_json_guid(struct vd_json *j, const char *key, const uint8_t g[16])
{
    char s[VHDX_GUID_STR];
    vhdx_guid_str(g, s);
    vd_json_str(j, key, s);
}

static void vhdx_info(struct vd_image *img, struct vd_json *j)
{
    struct vhdx_state *st = img->priv;
    const struct vhdx_meta *m = &st->meta;
    if (st->lock_init) /* writers update the header */
        pthread_mutex_lock(&st->write_lock);
    vd_json_obj_begin(j, "vhdx");
    vd_json_u64(j, "block_size", m->block_size);
    vd_json_u64(j, "logical_sector_size", m->logical_sector_size);
    if (m->physical_sector_size)
        vd_json_u64(j, "physical_sector_size", m->physical_sector_size);
    else
        vd_json_null(j, "physical_sector_size");
    vd_json_u64(j, "virtual_size", m->virtual_size);
    vd_json_bool(j, "has_parent", m->has_parent);
    vd_json_bool(j, "leave_blocks_allocated", m->leave_blocks_allocated);
    if (m->have_page83)
        vhdx_json_guid(j, "page83_id", m->page83);
    else
        vd_json_null(j, "page83_id");
    vhdx_json_guid(j, "data_write_guid", st->hdr.data_write_guid);
    vhdx_json_guid(j, "file_write_guid", st->hdr.file_write_guid);
    vhdx_json_guid(j, "log_guid", st->hdr.log_guid);
    vd_json_u64(j, "header", (uint64_t)st->hdr_index);
    vd_json_u64(j, "header_sequence", st->hdr.seq);
    vd_json_u64(j, "log_offset", st->hdr.log_offset);
    vd_json_u64(j, "log_length", st->hdr.log_length);
    vd_json_bool(j, "log_replayed", st->ov.entries > 0);
    vd_json_u64(j, "log_entries", st->ov.entries);
    if (st->ov.entries)
        vd_json_u64(j, "log_head_sequence", st->ov.head_seq);
    vd_json_u64(j, "chunk_ratio", st->chunk_ratio);
    vd_json_u64(j, "bat_entries", st->bat_entries);
    vd_json_u64(j, "blocks_past_eof", st->past_eof);
    if (m->have_locator) {
        vd_json_obj_begin(j, "parent_locator");
        for (size_t i = 0; i < m->nlocator; i++)
            vd_json_str(j, m->locator[i].key, m->locator[i].value);
        vd_json_obj_end(j);
    }
    vd_json_obj_end(j);
    if (st->lock_init)
        pthread_mutex_unlock(&st->write_lock);
}

/* ---- check ---- */

struct vhdx_used {
    uint64_t off, len, idx; /* idx: BAT entry, or UINT64_MAX - k for fixed structures */
};

static int vhdx_used_cmp(const void *a, const void *b)
{
    const struct vhdx_used *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void vhdx_report(vd_check_cb cb, void *opaque, bool corrupt, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void vhdx_report(vd_check_cb cb, void *opaque, bool corrupt, const char *fmt, ...)
{
    char msg[VD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cb(opaque, corrupt, msg);
}

static void vhdx_used_name(const struct vhdx_state *st, const struct vhdx_used *u, char *b,
                           size_t n)
{
    static const char *const fixed[] = {"header area", "log", "BAT region", "metadata region"};
    if (u->idx >= UINT64_MAX - 3)
        snprintf(b, n, "%s", fixed[UINT64_MAX - u->idx]);
    else if (u->idx % (st->chunk_ratio + 1) == st->chunk_ratio)
        snprintf(b, n, "BAT entry %" PRIu64 " (sector bitmap)", u->idx);
    else
        snprintf(b, n, "BAT entry %" PRIu64 " (payload block %" PRIu64 ")", u->idx,
                 u->idx - u->idx / (st->chunk_ratio + 1));
}

static int vhdx_check(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    struct vhdx_state *st = img->priv;
    int result = VD_CHECK_CLEAN, r;
    uint8_t *buf = malloc(VHDX_REGION_SIZE);
    struct vhdx_used *used = NULL;
    if (!buf)
        return vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
    for (int i = 0; i < 2; i++) {
        uint64_t off = i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF;
        struct vhdx_header h;
        const char *why = "";
        if ((r = vd_io_pread_full(img->io, buf, VHDX_HEADER_SIZE, off, err)) < 0)
            goto fail;
        if (vhdx_parse_header(buf, VHDX_HEADER_SIZE, &h, &why) < 0) {
            vhdx_report(cb, opaque, true, "vhdx: %s: header %d at offset %" PRIu64 ": %s",
                        img->name, i + 1, off, why);
            result = VD_CHECK_CORRUPT;
        }
    }
    for (int i = 0; i < 2; i++) {
        uint64_t off = i ? VHDX_REGION2_OFF : VHDX_REGION1_OFF;
        struct vhdx_regions rg;
        char why[160];
        if ((r = vhdx_read_file(img, buf, VHDX_REGION_SIZE, off, err)) < 0)
            goto fail;
        if (vhdx_parse_region_table(buf, VHDX_REGION_SIZE, &rg, why, sizeof(why)) < 0) {
            vhdx_report(cb, opaque, true, "vhdx: %s: region table %d at offset %" PRIu64 ": %s",
                        img->name, i + 1, off, why);
            result = VD_CHECK_CORRUPT;
        }
    }
    uint64_t npresent = 0;
    for (uint64_t i = 0; i < st->bat_entries; i++) {
        unsigned s = st->bat[i] & 7;
        npresent +=
            s == PAYLOAD_FULLY_PRESENT || s == PAYLOAD_PARTIALLY_PRESENT; /* == SB_PRESENT */
    }
    used = malloc((npresent + 4) * sizeof(*used));
    if (!used) {
        r = vd_err(err, -ENOMEM, "vhdx: %s: out of memory", img->name);
        goto fail;
    }
    size_t n = 0;
    uint64_t end, fsize = vhdx_fsize(st);
    used[n++] = (struct vhdx_used){0, VHDX_MIB, UINT64_MAX};
    if (st->hdr.log_length) {
        if (ck_add(st->hdr.log_offset, st->hdr.log_length, &end) || end > fsize) {
            vhdx_report(cb, opaque, true,
                        "vhdx: %s: log (offset %" PRIu64 ", %" PRIu32
                        " bytes) is past end of file (%" PRIu64 " bytes)",
                        img->name, st->hdr.log_offset, st->hdr.log_length, fsize);
            result = VD_CHECK_CORRUPT;
        } else {
            used[n++] = (struct vhdx_used){st->hdr.log_offset, st->hdr.log_length, UINT64_MAX - 1};
        }
    }
    used[n++] = (struct vhdx_used){st->regions.bat.off, st->regions.bat.len, UINT64_MAX - 2};
    used[n++] = (struct vhdx_used){st->regions.meta.off, st->regions.meta.len, UINT64_MAX - 3};
    for (uint64_t i = 0; i < st->bat_entries; i++) {
        bool is_sb = i % (st->chunk_ratio + 1) == st->chunk_ratio;
        unsigned s = st->bat[i] & 7;
        uint64_t off = vhdx_entry_off(st->bat[i]);
        uint64_t size = is_sb ? VHDX_SB_BLOCK : st->meta.block_size;
        bool present = is_sb ? s == SB_PRESENT
                             : (s == PAYLOAD_FULLY_PRESENT || s == PAYLOAD_PARTIALLY_PRESENT);
        if (!is_sb && s == PAYLOAD_PARTIALLY_PRESENT && !st->meta.has_parent) {
            vhdx_report(cb, opaque, true,
                        "vhdx: %s: BAT entry %" PRIu64
                        " is partially present in a disk without a parent",
                        img->name, i);
            result = VD_CHECK_CORRUPT;
        }
        if (is_sb && present && !st->meta.has_parent) {
            /* 2.5.1: only differencing disks use sector bitmaps */
            vhdx_report(cb, opaque, false,
                        "vhdx: %s: BAT entry %" PRIu64
                        " allocates a sector bitmap in a disk without a parent (unused space)",
                        img->name, i);
            if (result == VD_CHECK_CLEAN)
                result = VD_CHECK_LEAKS;
        }
        if (!present)
            continue;
        /* Checked: FileOffsetMB 0xFFFFFFFFFFF plus a block wraps to 0. */
        if (ck_add(off, size, &end) || end > fsize) {
            vhdx_report(cb, opaque, true,
                        "vhdx: %s: BAT entry %" PRIu64 " points to file offset %" PRIu64
                        ", past end of file (%" PRIu64 " bytes)",
                        img->name, i, off, fsize);
            result = VD_CHECK_CORRUPT;
            continue;
        }
        used[n++] = (struct vhdx_used){off, size, i};
    }
    qsort(used, n, sizeof(*used), vhdx_used_cmp);
    uint64_t reach = 0;
    size_t reach_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && used[i].off < reach) {
            char a[80], b[80];
            vhdx_used_name(st, &used[reach_i], a, sizeof(a));
            vhdx_used_name(st, &used[i], b, sizeof(b));
            vhdx_report(cb, opaque, true, "vhdx: %s: %s overlaps %s at file offset %" PRIu64,
                        img->name, b, a, used[i].off);
            result = VD_CHECK_CORRUPT;
        }
        if (used[i].off + used[i].len > reach) {
            reach = used[i].off + used[i].len;
            reach_i = i;
        }
    }
    free(used);
    free(buf);
    return result;
fail:
    free(used);
    free(buf);
    return r;
}

const struct vd_format_ops vd_format_vhdx = {
    .name = "vhdx",
    .priv_size = sizeof(struct vhdx_state),
    .probe = vhdx_probe,
    .open = vhdx_open,
    .close = vhdx_close,
    .map = vhdx_map,
    .write_begin = vhdx_write_begin,
    .alloc = vhdx_alloc,
    .flush = vhdx_flush,
    .allocated = vhdx_allocated,
    .info = vhdx_info,
    .check = vhdx_check,
};
