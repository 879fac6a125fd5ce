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

/* Returned by block_status for ranges this layer does not hold: the core
 * asks the backing image (or reports zeros when there is none). */
#define VD_STATUS_BACKING 2

struct vd_format_ops {
    const char *name; /* "vmdk" */
    size_t priv_size; /* bytes of driver state the core allocates */
    /* Score 0..100 for how sure the driver is that this is its format.
     * head = first min(64 KiB, size) bytes, tail = last min(64 KiB, size). */
    int (*probe)(const uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len,
                 uint64_t file_size);
    /* img->io, img->name, img->opts are set; priv is zeroed. Must set
     * img->size and img->subformat. Opens the backing chain with
     * vd_image_open_backing(). On failure the core calls close(). */
    int (*open)(struct vd_image *img, struct vd_error *err);
    /* Must accept a half-opened image. Do not free img or img->priv. */
    void (*close)(struct vd_image *img);
    /* Read [off, off+len), already checked to lie within img->size. Ranges
     * this layer does not hold read from img->backing (vd_image_pread) or as
     * zeros when there is none. Thread-safe. */
    int (*pread)(struct vd_image *img, void *buf, size_t len, uint64_t off, struct vd_error *err);
    /* Optional (NULL = read-only format). Same range guarantee as pread. */
    int (*pwrite)(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                  struct vd_error *err);
    int (*flush)(struct vd_image *img, struct vd_error *err);
    /* Optional: status of the range at off (VD_STATUS_DATA, VD_STATUS_ZERO
     * or VD_STATUS_BACKING) and its length in *pnum (0 < *pnum <= len).
     * NULL means all data. */
    int (*block_status)(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum,
                        struct vd_error *err);
    /* Optional: is [off, off+len) (within img->size) stored as it reads,
     * contiguously in one io? Returns 1 with *io and *io_off set, or 0
     * (read it with pread), the run length in *pnum (0 < *pnum <= len)
     * either way. Must map only bytes pread would return unchanged: no
     * zero fill, backing read or overlay. NULL means never. Thread-safe. */
    int (*map)(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum, struct vd_io **io,
               uint64_t *io_off, struct vd_error *err);
    /* Optional: bytes of the image files holding data (qemu's disk size). */
    uint64_t (*allocated)(struct vd_image *img);
    /* Optional: add format-specific keys to the disk's open JSON object
     * (documented in docs/info-json.md). */
    void (*info)(struct vd_image *img, struct vd_json *j);
    /* Optional: structural check; report each problem through cb and return
     * VD_CHECK_CLEAN/CORRUPT/LEAKS, or -errno if it could not run. */
    int (*check)(struct vd_image *img, vd_check_cb cb, void *opaque, struct vd_error *err);
};

struct vd_image {
    const struct vd_format_ops *ops;
    void *priv;
    struct vd_io *io;         /* the image's main file (one reference) */
    char *name;               /* file name for messages and info; owned */
    uint64_t size;            /* virtual size in bytes */
    const char *subformat;    /* static or inside priv; may be NULL */
    struct vd_image *backing; /* parent in a chain, or NULL; owned */
    struct vd_open_opts opts;
    int depth;            /* 0 for the top image */
    uint32_t sector_size; /* logical sector bytes (512 unless the format says) */
};

extern const struct vd_format_ops vd_format_raw;
extern const struct vd_format_ops vd_format_vmdk;
extern const struct vd_format_ops vd_format_vhd;
extern const struct vd_format_ops vd_format_vhdx;

/* Registry (src/core/registry.c): NULL-terminated, raw last. */
extern const struct vd_format_ops *const vd_formats[];
const struct vd_format_ops *vd_format_find(const char *name);

/* Open an image on io (consumes the caller's reference to io, even on
 * failure). name is used in messages; depth is the chain depth. */
int vd_image_open_io(struct vd_io *io, const char *name, const struct vd_open_opts *opts, int depth,
                     struct vd_image **out, struct vd_error *err);
/* For drivers: open the parent named rel (relative to img->io) as
 * img->backing. fmt forces a driver (NULL = probe). Refuses chains deeper
 * than VD_MAX_CHAIN and a parent that is the image itself. */
int vd_image_open_backing(struct vd_image *img, const char *rel, const char *fmt,
                          struct vd_error *err);
void vd_image_close(struct vd_image *img);

/* For drivers: read [off, off+len) from the backing chain, or zeros. */
int vd_image_read_backing(struct vd_image *img, void *buf, size_t len, uint64_t off,
                          struct vd_error *err);

#endif
