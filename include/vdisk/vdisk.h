/*
 * libvdisk public API: open virtual-disk sources (VMDK, VHD, VHDX, OVA, raw;
 * local, S3 or HTTP), read them as flat raw disks, describe, hash and check
 * them. fusefs/ and tools/ use only this header and <vdisk/export.h>.
 *
 * Object model:
 *   vd_source  what one SOURCE argument opened: a container (OVA) or a
 *              single image; it holds one or more disks.
 *   vd_image   one virtual disk, readable as a flat byte array of
 *              vd_image_size() bytes. Images may have a backing (parent)
 *              chain. All read functions are thread-safe.
 */
#ifndef VDISK_VDISK_H
#define VDISK_VDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

struct vd_source;
struct vd_image;

/* Options for opening a source. Zero-initialise, then set what you need. */
struct vd_open_opts {
    bool writable;       /* open for in-place writes (mount -o rw) */
    const char *format;  /* force a format driver by name, or NULL to probe */
    uint64_t cache_size; /* remote block cache bytes (0 = default) */
    const char *region;  /* S3 overrides (NULL = environment/config) */
    const char *endpoint;
    const char *profile;
    bool path_style;
    /* Directories (NULL-terminated list) where an image may name files
     * besides its own directory: extents and parents outside them are
     * refused (docs/trust-boundary.md). NULL: the image's directory only. */
    const char *const *allow_paths;
};

/* ---- sources ---- */

/* Open SOURCE (a path, s3://bucket/key or http(s):// URL). */
int vd_source_open(const char *uri, const struct vd_open_opts *opts, struct vd_source **out,
                   struct vd_error *err);
void vd_source_close(struct vd_source *src);

/* Container format ("ova") or the disk's own format for single-image sources. */
const char *vd_source_format(const struct vd_source *src);
/* How it was chosen: "forced" (format=), "probed" (a signature matched) or
 * "fallback" (raw, as nothing else matched: any bytes pass as a raw disk). */
const char *vd_source_format_chosen(const struct vd_source *src);
size_t vd_source_ndisks(const struct vd_source *src);
struct vd_image *vd_source_disk(const struct vd_source *src, size_t i);
/* OVA only: the OVF descriptor's member name and text (NULL otherwise). */
const char *vd_source_ovf_name(const struct vd_source *src);
const char *vd_source_ovf_text(const struct vd_source *src, size_t *len);

/* Mount-layout name of disk i without extension: "disk" for a single-disk
 * source, "disk1", "disk2"... for several (DESIGN.md, mount layout). */
void vd_source_disk_view_name(const struct vd_source *src, size_t i, char *buf, size_t len);

/* JSON description of the whole source (see docs/info-json.md). Caller frees.
 * Used both by `vdisk info --json` and by the mount's info.json. */
int vd_source_info_json(struct vd_source *src, char **out, struct vd_error *err);

/* Structural check. Each problem found is passed to cb (one line each).
 * Returns VD_CHECK_CLEAN, VD_CHECK_CORRUPT or VD_CHECK_LEAKS (qemu-img check
 * exit codes), or -errno if the check could not run. */
enum { VD_CHECK_CLEAN = 0, VD_CHECK_CORRUPT = 2, VD_CHECK_LEAKS = 3 };
typedef void (*vd_check_cb)(void *opaque, bool corrupt, const char *msg);
int vd_source_check(struct vd_source *src, vd_check_cb cb, void *opaque, struct vd_error *err);

/* ---- images ---- */

uint64_t vd_image_size(const struct vd_image *img);
const char *vd_image_name(const struct vd_image *img);      /* file name */
const char *vd_image_format(const struct vd_image *img);    /* "vmdk" */
const char *vd_image_subformat(const struct vd_image *img); /* "streamOptimized" */
struct vd_image *vd_image_backing(const struct vd_image *img);
/* Logical sector bytes: 512, or 4096 for a 4Kn disk (VHDX LogicalSectorSize,
 * a VMDK descriptor's sector size). Partition tables are read with it. */
uint32_t vd_image_sector_size(const struct vd_image *img);

/* Read len bytes at off. Reads past the virtual size fail with -EINVAL;
 * unallocated ranges read as zeros (or from the backing chain). Thread-safe. */
int vd_image_pread(struct vd_image *img, void *buf, size_t len, uint64_t off, struct vd_error *err);
/* Write in place (sources opened writable, formats that allow it). */
int vd_image_pwrite(struct vd_image *img, const void *buf, size_t len, uint64_t off,
                    struct vd_error *err);
int vd_image_flush(struct vd_image *img, struct vd_error *err);
/* True if the image's format can be written in place (and it was opened
 * writable); false for streamOptimized, OVA members, remote sources... */
bool vd_image_can_write(const struct vd_image *img);

/* Allocation status of the range starting at off: sets *len_out to the number
 * of bytes (>0, <= len) that share one status and returns it. Walks the
 * backing chain. */
enum vd_status {
    VD_STATUS_DATA = 0, /* allocated: must be read */
    VD_STATUS_ZERO = 1, /* reads as zeros (unallocated everywhere, or zero grain) */
};
int vd_image_block_status(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *len_out,
                          struct vd_error *err);

/* Where [off, off+len) of the image lies contiguously in a local file, for
 * zero-copy reads (splice): returns 1 with *fd and *fd_off set (the fd
 * belongs to the image: do not close it), or 0 when the range must be
 * read with vd_image_pread (compressed, zero, from a parent, remote); the
 * run length is in *pnum (0 < *pnum <= len) either way. -errno on error. */
int vd_image_map(struct vd_image *img, uint64_t off, uint64_t len, uint64_t *pnum, int *fd,
                 uint64_t *fd_off, struct vd_error *err);

/* Bytes of the image's files that hold data (like qemu-img's disk size). */
uint64_t vd_image_allocated(struct vd_image *img);

/* ---- partitions (libblkid) ---- */
struct vd_partition {
    unsigned number;     /* 1-based, as libblkid numbers them (logical >= 5) */
    uint64_t offset;     /* bytes */
    uint64_t size;       /* bytes */
    char type[40];       /* MBR type "0x83" or GPT type GUID */
    char uuid[40];       /* GPT partition UUID, or "" */
    char name[72];       /* GPT name (UTF-8), or "" */
    uint64_t table_size; /* size the table gives; > size when clipped at the disk's end */
};
struct vd_partition_table {
    char scheme[8]; /* "dos", "gpt", or "" */
    size_t n;
    struct vd_partition *parts;
    size_t beyond_end; /* entries starting past the end of the disk (not in parts) */
};
int vd_image_partitions(struct vd_image *img, struct vd_partition_table *out, struct vd_error *err);
void vd_partition_table_free(struct vd_partition_table *t);

/* ---- hashing ---- */
/* Digest of the raw content, algo "md5", "sha1" or "sha256"; hex into out
 * (at least 129 bytes). progress (may be NULL) gets bytes done so far and
 * stops the work with -ECANCELED by returning non-zero. */
typedef int (*vd_progress_cb)(void *opaque, uint64_t done, uint64_t total);
int vd_image_hash(struct vd_image *img, const char *algo, char *out, vd_progress_cb progress,
                  void *opaque, struct vd_error *err);

/* Library version string. */
const char *vd_version(void);

#endif
