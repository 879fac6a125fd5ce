/*
 * libvdisk export API: encode raw disk bytes into VMDK (streamOptimized),
 * VHD (dynamic/fixed), VHDX (dynamic/fixed), OVA or raw, written to a
 * local path or s3://bucket/key through an append-only sink. The FUSE
 * export/ directory and `vdisk convert` are both thin faces over this.
 *
 * Write model (docs/export.md): bytes arrive at any offset at or after
 * (highest byte written so far - reorder window); older offsets have already
 * been encoded and a write there fails with -EINVAL and poisons the export
 * (finish then fails too, so nothing corrupt is left at DEST). Gaps read as
 * zeros. Memory is bounded by the window, nothing is spooled to disk.
 */
#ifndef VDISK_EXPORT_H
#define VDISK_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"
#include "vdisk/vdisk.h"

struct vd_export_opts {         /* zero-init = defaults */
    const char *vmdk_type;      /* "streamOptimized" (default) | "monolithicSparse" (optional) */
    const char *vhd_type;       /* "dynamic" (default) | "fixed" */
    const char *vhdx_type;      /* "dynamic" (default) | "fixed" */
    int compress_level;         /* 1..12; -1 or 0 = default (libdeflate 5 / zlib 6) */
    const char *ova_manifest;   /* "sha256" (default) | "sha1" */
    unsigned threads;           /* 0 = all cores */
    uint64_t reorder_window;    /* bytes; 0 = default (64 MiB) */
    struct vd_open_opts remote; /* S3 settings for s3:// DEST */
    uint32_t vhdx_block_size;   /* bytes, power of two 1..256 MiB; 0 = 32 MiB */
    bool fsync;                 /* local DEST: fdatasync before the rename */
};

#define VD_EXPORT_DEFAULT_WINDOW (64ull << 20)

void vd_export_opts_init(struct vd_export_opts *o);
/* Parse "key=value" export options (vmdk_type=, vhd_type=, vhdx_type=,
 * compress_level=, ova_manifest=, threads=, reorder_window=,
 * vhdx_block_size=, fsync=on|off; a bare "fsync" is on). Sizes accept K/M/G suffixes. Returns 1
 * consumed, 0 unknown key, -EINVAL bad value (err says which). String values are stored as pointers
 * to static strings, so val need not outlive the call. */
int vd_export_opt(struct vd_export_opts *o, const char *key, const char *val, struct vd_error *err);
/* Format from a file name's extension ("vmdk","vhd","vhdx","ova","raw",
 * also "img" -> "raw") or NULL. */
const char *vd_export_format_for(const char *filename);

struct vd_export;
/* Begin encoding FORMAT into DEST (local path or s3://bucket/key). A local
 * DEST is written as DIR/.NAME.partial-XXXXXX and renamed by finish. */
int vd_export_begin(const char *dest, const char *format, const struct vd_export_opts *o,
                    struct vd_export **out, struct vd_error *err);
/* Raw disk bytes at off; out-of-order within the reorder window; gaps read
 * as zeros. Thread-safe against concurrent calls on the same export.
 * -EINVAL: off is behind the encoded point (message names the window);
 * -EFBIG: past the format's maximum size; -EIO: encoder/sink failure. */
int vd_export_pwrite(struct vd_export *e, const void *buf, size_t len, uint64_t off,
                     struct vd_error *err);
/* Set the virtual size (ftruncate). Shrinking below the encoded point fails
 * with -EINVAL. */
int vd_export_truncate(struct vd_export *e, uint64_t size, struct vd_error *err);
uint64_t vd_export_size(const struct vd_export *e); /* current virtual size */
/* Ask for a durable output from now on, as fsync=on does (an fsync(2) on
 * an export file in the mount): finish then syncs before it commits. */
void vd_export_fsync(struct vd_export *e);
/* Output bytes produced so far (for progress / status). */
uint64_t vd_export_output_bytes(const struct vd_export *e);
/* Finish: encode the rest, commit the sink (rename / complete upload).
 * Outputs bytes written and the sha256 hex of the output (out_bytes and
 * sha256_hex may be NULL). The digest is the one computed while streaming;
 * sha256_hex is "" when there is none because the encoder rewrote its head
 * at the end (VHD, VHDX, OVA, or a VMDK whose size was only known then):
 * finish never reads the output back, so hash DEST if you need it (the
 * mount does so after close). On failure, aborts (no file left at DEST)
 * and returns -errno. Frees e in all cases. */
int vd_export_finish(struct vd_export *e, uint64_t *out_bytes, char sha256_hex[65],
                     struct vd_error *err);
void vd_export_abort(struct vd_export *e); /* frees e, leaves nothing at DEST */
/* Convert a whole image: reads src (skipping VD_STATUS_ZERO ranges from
 * vd_image_block_status without reading them), encodes to dest. */
int vd_convert(struct vd_image *src, const char *dest, const char *format,
               const struct vd_export_opts *o, vd_progress_cb progress, void *opaque,
               struct vd_error *err);

#endif
