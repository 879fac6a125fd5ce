/*
 * tar archives, read in place: the container of an OVA (formats/ova.h).
 * Nothing is extracted; each member is an offset window [offset,
 * offset+size) of the archive, which the core reads through a slice io.
 *
 * The parsers take (buf, len) and do no I/O, so unit tests and fuzzers call
 * them directly; vd_tar_walk() reads the header blocks through an io.
 * See tar.c for the formats understood and the limits applied.
 */
#ifndef VD_FORMATS_TAR_H
#define VD_FORMATS_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "vdisk/error.h"

#define VD_TAR_BLOCK 512
/* Caps against hostile archives. */
#define VD_TAR_MAX_HEADERS  100000       /* header blocks walked (members + pax/L) */
#define VD_TAR_MAX_LONGNAME 65536        /* GNU 'L' long-name member */
#define VD_TAR_MAX_PAX      (1u << 20)   /* pax 'x'/'g' extended header */
#define VD_TAR_MAX_SIZE     (1ull << 62) /* member size */

enum vd_tar_kind {
    VD_TAR_V7 = 0, /* no magic: 7th edition Unix */
    VD_TAR_USTAR,  /* "ustar\0" "00": POSIX.1-1988 (and pax) */
    VD_TAR_GNU,    /* "ustar " " \0": GNU tar's own format */
};

/* One decoded 512-byte header block. */
struct vd_tar_header {
    char name[257]; /* ustar prefix + "/" + name, NUL-terminated */
    uint64_t size;  /* the size field (octal or GNU base-256) */
    char typeflag;  /* '0', '\0', '5', 'x', 'g', 'L', ... */
    enum vd_tar_kind kind;
};

/* Parse one header block (len must be 512) found at archive offset off;
 * file names the archive in messages. Returns 0, or 1 for an all-zero block
 * (an end-of-archive marker), or -EINVAL with err filled (bad checksum,
 * malformed numeric field). Both the unsigned and the signed checksum that
 * old tars computed are accepted. */
int vd_tar_parse_header(const uint8_t *blk, size_t len, const char *file, uint64_t off,
                        struct vd_tar_header *h, struct vd_error *err);

/* True if blk (at least 512 bytes) is a tar header with a valid checksum. */
bool vd_tar_probe(const uint8_t *blk, size_t len);

/* Records of a pax extended header that matter for locating members. */
struct vd_tar_pax {
    char *path;    /* "path=" (owned), NULL if absent; "" means "unset" */
    bool has_size; /* "size=" present */
    uint64_t size;
    bool sparse; /* any "GNU.sparse.*" record: member data is not flat */
};

/* Parse the data of a pax 'x' or 'g' header (records "LEN key=value\n")
 * into pax, overriding what it already holds. off is the archive offset of
 * the data, for messages. Returns 0 or -EINVAL/-ENOMEM. */
int vd_tar_parse_pax(const uint8_t *buf, size_t len, const char *file, uint64_t off,
                     struct vd_tar_pax *pax, struct vd_error *err);
void vd_tar_pax_clear(struct vd_tar_pax *pax);

/* Normalise a member name for lookup: leading "/" and "./" are dropped,
 * "." and empty components removed. Returns a new string (NULL on ENOMEM)
 * and sets *unsafe when a component is ".." (such names never match). */
char *vd_tar_normalize(const char *name, bool *unsafe);

struct vd_tar_member {
    char *name;          /* normalised (vd_tar_normalize) */
    uint64_t hdr_offset; /* offset of its (first) header block */
    uint64_t offset;     /* offset of its data */
    uint64_t size;       /* data bytes */
    char typeflag;       /* '0' for regular files ('\0' and '7' map to '0') */
    bool unsafe;         /* name had a ".." component */
    bool sparse;         /* GNU sparse ('S' or pax GNU.sparse): data not flat */
};

struct vd_tar {
    size_t n;
    struct vd_tar_member *m; /* archive order */
};

/* Walk the archive's headers through io: every member, with its data
 * window. Stops at two zero blocks, one zero block then EOF, or EOF on a
 * block boundary. A member whose data runs past EOF, a bad checksum or a
 * truncated header is -EINVAL with a message naming the offset. */
int vd_tar_walk(struct vd_io *io, struct vd_tar *out, struct vd_error *err);
void vd_tar_free(struct vd_tar *t); /* frees the contents; t itself is the caller's */

/* First member (of any type) whose normalised name equals the normalised
 * name, skipping unsafe members; NULL if none or if name itself is unsafe.
 * The caller checks typeflag and sparse. */
const struct vd_tar_member *vd_tar_find(const struct vd_tar *t, const char *name);

#endif
