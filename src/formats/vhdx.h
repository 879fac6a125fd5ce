/*
 * VHDX internals shared by vhdx.c (the driver), vhdx_log.c (log replay), the
 * unit tests and the fuzzers. All parsers take (buf, len) and do no I/O.
 * See vhdx.c for the format overview and docs/vhdx.md for behaviour.
 */
#ifndef VD_FORMATS_VHDX_H
#define VD_FORMATS_VHDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

struct vd_io;

#define VHDX_KIB         1024u
#define VHDX_MIB         (1024u * 1024u)
#define VHDX_HEADER_SIZE 4096u         /* checksummed part of a header */
#define VHDX_HEADER1_OFF (64u * 1024u) /* [MS-VHDX] 2.2.2 */
#define VHDX_HEADER2_OFF (128u * 1024u)
#define VHDX_REGION_SIZE (64u * 1024u) /* 2.2.3 */
#define VHDX_REGION1_OFF (192u * 1024u)
#define VHDX_REGION2_OFF (256u * 1024u)
#define VHDX_LOG_SECTOR  4096u
#define VHDX_LOG_MAX     (32u * VHDX_MIB) /* longest log we replay */
#define VHDX_GUID_STR    39               /* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" + NUL */

/* Checksum comparison. Fuzzing builds (-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION,
 * the libFuzzer/OSS-Fuzz convention) accept any checksum so the fuzzer can
 * reach the parsers behind them. */
static inline bool vhdx_crc_matches(uint32_t computed, uint32_t stored)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)computed;
    (void)stored;
    return true;
#else
    return computed == stored;
#endif
}

/* A parsed header (2.2.2). */
struct vhdx_header {
    uint64_t seq;
    uint8_t file_write_guid[16];
    uint8_t data_write_guid[16];
    uint8_t log_guid[16];
    uint16_t log_version;
    uint16_t version;
    uint32_t log_length;
    uint64_t log_offset;
};

/* Validate and decode one header from buf (at least 4096 bytes). Returns 0,
 * or -EINVAL with *why set to a static reason ("bad signature", "bad
 * checksum"). */
int vhdx_parse_header(const uint8_t *buf, size_t len, struct vhdx_header *out, const char **why);
/* Encode h into out (4096 bytes): the bytes of cur (the header it
 * replaces, whose reserved bytes are kept) with signature, fields and a new
 * CRC-32C. The inverse of vhdx_parse_header. */
void vhdx_build_header(uint8_t out[VHDX_HEADER_SIZE], const uint8_t cur[VHDX_HEADER_SIZE],
                       const struct vhdx_header *h);

struct vhdx_region {
    uint64_t off;
    uint32_t len;
    bool present;
};
struct vhdx_regions {
    struct vhdx_region bat, meta;
};
/* Validate and decode a region table (64 KiB). Returns 0; -EINVAL with *why
 * for a damaged table (signature, checksum, entry count, duplicate or
 * misaligned entries); -ENOTSUP with *why for an unknown required region.
 * why points at buf-independent storage of whylen bytes. */
int vhdx_parse_region_table(const uint8_t *buf, size_t len, struct vhdx_regions *out, char *why,
                            size_t whylen);

#define VHDX_MAX_LOCATOR 16 /* parent locator entries kept */
struct vhdx_locator_entry {
    char *key;   /* UTF-8, owned */
    char *value; /* UTF-8, owned */
};
struct vhdx_meta {
    uint32_t block_size;
    bool leave_blocks_allocated;
    bool has_parent;
    uint64_t virtual_size;
    uint32_t logical_sector_size;
    uint32_t physical_sector_size; /* 0 when absent */
    bool have_page83;
    uint8_t page83[16];
    size_t nlocator;
    struct vhdx_locator_entry locator[VHDX_MAX_LOCATOR];
    bool have_locator;
};
/* Parse the metadata region (the whole region: table plus items). Fills out
 * (free with vhdx_meta_free, also on failure). Errors carry name. */
int vhdx_parse_metadata(const uint8_t *buf, size_t len, const char *name, struct vhdx_meta *out,
                        struct vd_error *err);
void vhdx_meta_free(struct vhdx_meta *m);
/* Parent locator value for key, or NULL. */
const char *vhdx_meta_locator(const struct vhdx_meta *m, const char *key);

/* In-memory result of a log replay: sorted, non-overlapping file extents
 * that replace the file's bytes. data == NULL means zeros. */
struct vhdx_overlay_ext {
    uint64_t off, len;
    const uint8_t *data; /* len bytes, owned by the overlay, or NULL */
};
struct vhdx_overlay {
    struct vhdx_overlay_ext *ext;
    size_t n;
    uint8_t *pages;    /* storage for the data extents */
    uint64_t entries;  /* log entries replayed */
    uint64_t head_seq; /* sequence number of the newest entry */
    uint64_t flushed_file_offset, last_file_offset;
    uint64_t end; /* highest byte the overlay writes */
};

/* Find the active sequence in a log (log_len bytes, a multiple of 4 KiB, as
 * read from the file) whose entries carry guid, and build its overlay.
 * Finding no valid sequence is not an error (ov->entries == 0). */
int vhdx_log_replay(const uint8_t *log, size_t log_len, const uint8_t guid[16], const char *name,
                    struct vhdx_overlay *ov, struct vd_error *err);
/* Replace buf's bytes (the file's [off, off+len)) with the overlay's. */
void vhdx_overlay_apply(const struct vhdx_overlay *ov, uint8_t *buf, size_t len, uint64_t off);
void vhdx_overlay_free(struct vhdx_overlay *ov);

/* The file as the replayed log leaves it, as a read-only io of size bytes
 * (the file's size extended to the log's LastFileOffset: bytes past the end
 * of base read as zeros) over base (which gets a new reference), with ov
 * applied to every read. ov is borrowed: it must outlive every read of the
 * io (the VHDX driver frees it only once the image is closing). Named as
 * base, so that messages name the file. */
int vhdx_overlay_io_open(struct vd_io *base, const struct vhdx_overlay *ov, uint64_t size,
                         struct vd_io **out, struct vd_error *err);

/* Bytes of a log entry holding npages data descriptors (2.3.1): the header
 * and descriptor sectors plus one 4 KiB data sector per page. */
size_t vhdx_log_entry_size(uint32_t npages);
/* Build a log entry (2.3.1) into out (vhdx_log_entry_size(npages) bytes):
 * header with seq, tail, guid, flushed_file_offset and last_file_offset, one
 * "desc" descriptor and data sector per 4 KiB page (pages[i*4096..] goes to
 * file offset offs[i]), CRC-32C over the whole entry. Returns 0, or -EINVAL
 * for an entry vhdx_log_replay would reject (seq 0, tail not 4 KiB aligned,
 * offsets not 4 KiB aligned or below 192 KiB, npages 0, out_len too small). */
int vhdx_log_build_entry(uint8_t *out, size_t out_len, uint64_t seq, uint32_t tail,
                         const uint8_t guid[16], uint64_t flushed_file_offset,
                         uint64_t last_file_offset, const uint64_t *offs, const uint8_t *pages,
                         uint32_t npages);

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" from the on-disk (mixed-endian)
 * GUID bytes. */
void vhdx_guid_str(const uint8_t g[16], char out[VHDX_GUID_STR]);

#endif
