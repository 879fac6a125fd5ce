/*
 * Format drivers. Each format (raw, vmdk, vhd, vhdx) is one file exporting
 * one `const struct vd_format_ops vd_format_NAME`, listed in
 * src/core/registry.c. The core allocates and frees the driver's private
 * state (priv_size bytes, zeroed), so drivers never free their top object.
 *
 * Containers holding several disks (OVA) are not format drivers: see
 * formats/ova.h; the core opens each disk inside through a slice io.
 */
#ifndef VD_FORMATS_FORMAT_H
#define VD_FORMATS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#include "vdisk/vdisk.h"
#include "io/io.h"

struct vd_json;
struct vd_image;

/* Size of the head and tail buffers passed to probe(). */
#define VD_PROBE_HEAD 65536
#define VD_PROBE_TAIL 65536
/* Longest backing chain accepted; deeper means a loop or a hostile file. */
#define VD_MAX_CHAIN 64

/* Internal block status of one layer: the range is the backing image's. */
#define VD_STATUS_BACKING 2

/*
 * The mapping contract (docs/trust-boundary.md). A driver answers one
 * question, in the spirit of QEMU's block_status: what backs the run of the
 * virtual disk that starts at off? The core does all reading from that
 * answer (pread, splice, zero fill, backing reads, grain decode and its
 * cache, block status) and validates every answer before a byte moves:
 * checked arithmetic, inside its io, outside every metadata range the
 * driver declared (vd_image_declare_meta). A violation is -EIO with a
 * message naming the image and the range, never bytes.
 */
enum vd_map_kind {
    VD_MAP_DATA,    /* stored as it reads at (io, io_off) */
    VD_MAP_ZERO,    /* reads as zeros */
    VD_MAP_BACKING, /* not held by this layer: the backing image, else zeros */
    VD_MAP_GRAIN,   /* inside a compressed unit that decode() turns into bytes */
};

struct vd_map {
    enum vd_map_kind kind;
    uint64_t len;     /* run length from off: 0 < len <= the length asked */
    struct vd_io *io; /* DATA, GRAIN: one of the image's ios (borrowed) */
    uint64_t io_off;  /* DATA: where byte off lies; GRAIN: where the unit starts */
    /* GRAIN only. The unit covers [unit_off, unit_off + unit_len) of the
     * virtual disk and is stored in [io_off, io_off + clen) of io; clen may
     * be an estimate (decode asks for more). key names the unit in the
     * image's decoded-unit cache. */
    uint64_t clen;
    uint64_t unit_off;
    uint32_t unit_len;
    uint64_t key;
    const char *what; /* optional: the table entry that gave the answer, for messages */
};

/* Most bytes decode() may ask for beyond clen, and largest unit. */
#define VD_GRAIN_MAX_SRC  (4u << 20)
#define VD_GRAIN_MAX_UNIT (1u << 20)

struct vd_format_ops {
    const char *name; /* "vmdk" */
    size_t priv_size; /* bytes of driver state the core allocates */
    /* Score 0..100 for how sure the driver is that this is its format.
     * head = first min(64 KiB, size) bytes, tail = last min(64 KiB, size). */
    int (*probe)(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                 uint64_t file_size);
    /* img->io, img->name, img->opts are set; priv is zeroed. Must set
     * img->size and img->subformat, declare its metadata ranges
     * (vd_image_declare_meta), and open every other file the image names
     * through vd_image_open_file() / vd_image_open_backing(), never
     * directly. On failure the core calls close(). */
    int (*open)(struct vd_image *img, struct vd_error *err);
    /* Must accept a half-opened image. Do not free img or img->priv. */
    void (*close)(struct vd_image *img);

    /* What backs [off, off+len) (off < img->size, len > 0, within the size):
     * fill *m for the run starting at off. Thread-safe. The answer is
     * checked by the core; the driver need not range-check it, but must not
     * compute it with wrapping arithmetic (use common/checked.h). */
    int (*map)(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
               struct vd_error *err);
    /* GRAIN answers only: turn the unit's stored bytes src[0..src_len) into
     * m->unit_len bytes at dst. Pure: no I/O. When the unit is longer than
     * src_len, set *need to the bytes it needs (<= src_len +
     * VD_GRAIN_MAX_SRC) and return -EAGAIN; the core reads again, once. */
    int (*decode)(struct vd_image *img, const struct vd_map *m, const uint8_t *src, size_t src_len,
                  uint8_t *dst, size_t *need, struct vd_error *err);
    /* Writes (NULL = read-only format). Called once before the first write
     * of an open (new GUIDs, CID); may be NULL. */
    int (*write_begin)(struct vd_image *img, struct vd_error *err);
    /* Make [off, off+len) writable: allocate what is needed (filling it with
     * what the range read before: zeros or the backing image's bytes),
     * update the tables, and answer DATA for a run starting at off. The core
     * validates the answer and writes the data there. data holds the len
     * bytes about to be written: a driver may use them to skip copying what
     * they replace (a block written whole needs nothing from the parent) or
     * write them with the new block; the core writes them again, checked.
     * Thread-safe. */
    int (*alloc)(struct vd_image *img, uint64_t off, uint64_t len, const uint8_t *data,
                 struct vd_map *m, struct vd_error *err);
    int (*flush)(struct vd_image *img, struct vd_error *err);
    /* Optional: bytes of the image files holding data (qemu's disk size). */
    uint64_t (*allocated)(struct vd_image *img);
    /* Optional: add format-specific keys to the disk's open JSON object
     * (documented in docs/info-json.md). */
    void (*info)(struct vd_image *img, struct vd_json *j);
    /* Optional: structural check; report each problem through cb and return
     * VD_CHECK_CLEAN/CORRUPT/LEAKS, or -errno if it could not run. */
    int (*check)(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err);
};

/* A metadata range declared by a driver: bytes of one of its ios that a
 * data answer must never cover. */
struct vd_meta_range {
    const struct vd_io *io;
    uint64_t off, len;
    const char *what; /* static: "BAT", "grain table", ... */
};

struct vd_grain_cache; /* src/core/grain.c */

struct vd_image {
    const struct vd_format_ops *ops;
    void *priv;
    struct vd_io *io;         /* the image's main file (one reference) */
    char *name;               /* file name for messages and info; owned */
    uint64_t size;            /* virtual size in bytes */
    const char *subformat;    /* static or inside priv; may be NULL */
    struct vd_image *backing; /* parent in a chain, or NULL; owned unless borrowed */
    bool backing_borrowed;    /* a filter's base (overlay): not closed with it */
    struct vd_open_opts opts;
    int depth;            /* 0 for the top image */
    uint32_t sector_size; /* logical sector bytes (512 unless the format says) */

    /* Owned by the core. */
    const struct vd_image *child; /* the image that named this one (opening only) */
    struct vd_io **files;         /* every other file this image opened (references) */
    bool *files_shared;           /* per file: opened as a shared raw window */
    size_t nfiles;
    struct vd_meta_range *meta; /* sorted by (io, off); meta_lock */
    size_t nmeta, meta_cap;
    pthread_rwlock_t meta_lock;
    struct vd_grain_cache *grains; /* NULL until the first GRAIN answer */
    pthread_mutex_t once_lock;     /* write_begin, grain cache creation */
    bool write_begun;
    bool checked_writable; /* check() ran clean at a writable open */
    bool locks_init;
};

extern const struct vd_format_ops vd_format_raw;
extern const struct vd_format_ops vd_format_vmdk;
extern const struct vd_format_ops vd_format_vhd;
extern const struct vd_format_ops vd_format_vhdx;

/* Registry (src/core/registry.c): NULL-terminated, raw last. */
extern const struct vd_format_ops *const vd_formats[];
const struct vd_format_ops *vd_format_find(const char *name);

/* Open an image on io (consumes the caller's reference to io, even on
 * failure). name is used in messages; depth is the chain depth. A writable
 * open of a format that can write runs the driver's check first and
 * refuses anything it calls corrupt. */
int vd_image_open_io(struct vd_io *io, const char *name, const struct vd_open_opts *opts, int depth,
                     struct vd_image **out, struct vd_error *err);
/* The same, for a parent of child (names.c): the chain being opened is
 * followed through img->child for loop detection. */
int vd_image_open_child_of(struct vd_io *io, const char *name, const struct vd_open_opts *opts,
                           const struct vd_image *child, struct vd_image **out,
                           struct vd_error *err);
void vd_image_close(struct vd_image *img);

/*
 * Files an image names (src/core/names.c). Drivers never open files
 * themselves: they pass the name they found and the core resolves it under
 * the one path policy (a name resolves only to a file inside the directory
 * of the image that names it, after symlinks and "..", or inside a
 * directory the user allowed with allow_path), refuses a file already open
 * in this image or along the chain being opened (by file identity: a loop,
 * or one file named twice), and keeps the io with the image.
 *
 * what says what the name is for messages ("extent 2", "parent"). shared:
 * the file is only a raw window (a FLAT extent) that other shared uses in
 * this image may name too; false for files the image allocates in.
 */
int vd_image_open_file(struct vd_image *img, const char *name, bool writable, bool shared,
                       const char *what, struct vd_io **out, struct vd_error *err);
/* Open the parent named rel as img->backing (read-only). fmt forces a
 * driver (NULL = probe). Refuses chains deeper than VD_MAX_CHAIN and, by
 * file identity, any loop. */
int vd_image_open_backing(struct vd_image *img, const char *rel, const char *fmt,
                          struct vd_error *err);

/* Keep io with img, as one of its files: map answers may name it (the core
 * accepts answers only on img->io and its files), metadata may be declared
 * on it, and it is released with the image. For a view a driver builds over
 * its own file, e.g. VHDX's log replayed in memory. Consumes the caller's
 * reference, also on failure. */
int vd_image_add_io(struct vd_image *img, struct vd_io *io, struct vd_error *err);

/* Declare [off, off+len) of io (img->io or one from vd_image_open_file) as
 * metadata: no data answer may overlap it. Called at open, and when a write
 * allocates new metadata. Overlapping declarations merge. */
int vd_image_declare_meta(struct vd_image *img, const struct vd_io *io, uint64_t off, uint64_t len,
                          const char *what, struct vd_error *err);
/* Undeclare [off, off+len) of io: metadata that a write moved (a VHD footer
 * pushed back by an appended block). Parts of ranges outside it stay
 * declared. */
int vd_image_forget_meta(struct vd_image *img, const struct vd_io *io, uint64_t off, uint64_t len,
                         struct vd_error *err);
/* The metadata range of io overlapping [off, off+len), or NULL. */
const struct vd_meta_range *vd_image_meta_overlap(struct vd_image *img, const struct vd_io *io,
                                                  uint64_t off, uint64_t len);

/* The driver's map, with its answer validated (see struct vd_map): what the
 * reader, the fuzzers and check() use. */
int vd_image_map_checked(struct vd_image *img, uint64_t off, uint64_t len, struct vd_map *m,
                         struct vd_error *err);

/* For the grain reader: may [io_off, io_off+n) of m->io be read as the
 * stored bytes of the answer m (for virtual offset off)? Inside the io,
 * outside its metadata; -EIO with the reason otherwise. */
int vd_image_check_span(struct vd_image *img, const struct vd_map *m, uint64_t off, uint64_t io_off,
                        uint64_t n, struct vd_error *err);

/* Read [off, off+len) from the backing chain, or zeros. */
int vd_image_read_backing(struct vd_image *img, void *buf, size_t len, uint64_t off,
                          struct vd_error *err);

/* Decoded-unit cache and readahead for GRAIN answers (src/core/grain.c):
 * copy m->len bytes at virtual offset off, inside the unit m describes. */
int vd_grain_read(struct vd_image *img, const struct vd_map *m, uint64_t off, uint8_t *dst,
                  struct vd_error *err);
void vd_grain_cache_free(struct vd_grain_cache *c);

#endif
