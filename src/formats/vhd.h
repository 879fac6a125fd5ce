/*
 * VHD parsers (src/formats/vhd.c), exposed for unit tests and fuzzers. They
 * take (buf, len), do no I/O and validate every field they return.
 */
#ifndef VD_FORMATS_VHD_H
#define VD_FORMATS_VHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

#define VHD_SECTOR          512u
#define VHD_FOOTER_SIZE     512u
#define VHD_DYN_HEADER_SIZE 1024u
#define VHD_BAT_UNUSED      0xFFFFFFFFu
#define VHD_MIN_BLOCK       512u
#define VHD_MAX_BLOCK       (256u << 20)
#define VHD_MAX_BAT_ENTRIES (1u << 24) /* 64 MiB of BAT, 32 TiB at 2 MiB blocks */
#define VHD_NLOCATORS       8

enum vhd_disk_type { VHD_FIXED = 2, VHD_DYNAMIC = 3, VHD_DIFF = 4 };

/* Hard disk footer (spec section "Hard Disk Footer Format"), decoded. */
struct vhd_footer {
    uint32_t features;
    uint32_t version;
    uint64_t data_offset; /* dynamic header offset; ~0 for fixed disks */
    uint32_t timestamp;   /* seconds since 2000-01-01 UTC */
    char creator_app[5];  /* NUL-terminated copy of the 4 bytes */
    uint32_t creator_version;
    char creator_os[5];
    uint64_t original_size;
    uint64_t current_size;
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors_per_track;
    uint32_t disk_type;
    uint32_t checksum;          /* as stored */
    uint32_t computed_checksum; /* over the footer with the field as zero */
    uint8_t uuid[16];
    bool saved_state;
};

struct vhd_locator {
    char code[5]; /* "W2ru", "W2ku", "MacX", ... */
    uint32_t data_space;
    uint32_t data_length;
    uint64_t data_offset;
};

/* Dynamic disk header ("cxsparse"), decoded. */
struct vhd_dyn_header {
    uint64_t table_offset;
    uint32_t header_version;
    uint32_t max_table_entries;
    uint32_t block_size;
    uint32_t checksum;
    uint32_t computed_checksum;
    uint8_t parent_uuid[16];
    uint32_t parent_timestamp;
    char parent_name[1024]; /* parent unicode name as UTF-8 */
    struct vhd_locator loc[VHD_NLOCATORS];
};

/* Ones' complement of the byte sum of buf[0..len) skipping the 4 bytes at
 * skip (the checksum field). */
uint32_t vd_vhd_checksum(const uint8_t *buf, size_t len, size_t skip);

/* Decode a footer from buf (len >= 511; a 511-byte footer from writers
 * before Virtual PC 2004 is padded with one zero byte). Checks the cookie
 * only: -EINVAL "no 'conectix' cookie" otherwise. The checksum is computed
 * but its verdict is left to the caller. name is for messages. */
int vd_vhd_parse_footer(const uint8_t *buf, size_t len, const char *name, struct vhd_footer *f,
                        struct vd_error *err);

/* Decode a dynamic disk header (len >= 1024): cookie, block size (a power of
 * two in [512, 256 MiB]) and table size (<= VHD_MAX_BAT_ENTRIES) are
 * validated; the checksum is computed for the caller to judge. */
int vd_vhd_parse_dyn_header(const uint8_t *buf, size_t len, const char *name,
                            struct vhd_dyn_header *h, struct vd_error *err);

/* UTF-16 (big- or little-endian) to UTF-8, stopping at a NUL character or
 * after len bytes. Unpaired surrogates become U+FFFD. Always NUL-terminates
 * out (outlen > 0). Returns the number of bytes written (without the NUL). */
size_t vd_vhd_utf16_to_utf8(const uint8_t *src, size_t len, bool big_endian, char *out,
                            size_t outlen);

#endif
