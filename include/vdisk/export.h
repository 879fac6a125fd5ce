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
    uint32_t vhdx_block_size;   /* bytes, power of two 1..256 MiB; 0 = 1 MiB */
    bool fsync;                 /* local DEST: fdatasync before the rename */
    unsigned mode;              /* local DEST: permission bits (07777 at most); 0 = what
                                 * open(2) with 0666 gives: 0666 less the process umask */
    /* What the output must satisfy (issue 13), checked by the format's
     * encoder at begin: "azure" (VHD: fixed, whole MiB), "vmware",
     * "vmware-X.Y" / "esxi-X.Y" (OVA: hardware ceiling, manifest form),
     * "virtualbox", "dmtf"; "" = the format's default. */
    char target[32];
    uint32_t sector_size; /* logical sector bytes of the output: 512 (0) or 4096 */
    /* OVA: the VM the OVF describes (docs/ova.md), when there is no source
     * descriptor (ova_source_ovf). 0 / "" = the default of the target. */
    char vm_name[64];        /* VirtualSystem name; default: the output's stem */
    unsigned vm_cpus;        /* 1..768 */
    uint64_t vm_memory;      /* bytes, a whole number of MiB */
    char vm_os[64];          /* VMware guest id, e.g. "debian12_64Guest" */
    const char *vm_firmware; /* "bios" | "efi" */
    const char *vm_disk_bus; /* "scsi" (LSI Logic) | "pvscsi" | "sata" | "nvme" | "ide" */
    const char *vm_nic;      /* "vmxnet3" | "e1000" | "e1000e" | "none" */
    unsigned vm_hw_version;  /* vmx-N, 4..21; also overrides a source descriptor's */
    /* OVA: a source OVF descriptor whose VirtualSystem the output keeps
     * (vdisk convert of an OVA passes its own); not owned, must live until
     * the export finishes. NULL: the VM comes from the vm_* fields. */
    const char *ova_source_ovf;
    size_t ova_source_ovf_len;
    const char *ova_source_name; /* its name, for messages */
    /* OVA: the source disk (index among its Disks with a file) each output
     * disk stands for; NULL = disk i for output disk i. */
    const size_t *ova_source_disk;
    /* OVA with several disks: their virtual sizes. The raw stream written
     * to the export is the disks one after the other, disk i starting at
     * vd_export_ova_disk_offset(o, i) (64 KiB aligned). NULL/0: one disk. */
    const uint64_t *ova_disk_sizes;
    size_t ova_ndisks;
};

#define VD_EXPORT_DEFAULT_WINDOW (64ull << 20)

void vd_export_opts_init(struct vd_export_opts *o);
/* Parse "key=value" export options (vmdk_type=, vhd_type=, vhdx_type=,
 * compress_level=, ova_manifest=, threads=, reorder_window=,
 * vhdx_block_size=, target=, sector_size=512|4096, fsync=on|off; a bare "fsync" is on;
 * OVA: vm_name=, vm_cpus=, vm_memory=, vm_os=, vm_firmware=, vm_disk_bus=, vm_nic=,
 * vm_hw_version=). Sizes accept K/M/G suffixes. Returns 1
 * consumed, 0 unknown key, -EINVAL bad value (err says which). String values are stored as pointers
 * to static strings, so val need not outlive the call. */
int vd_export_opt(struct vd_export_opts *o, const char *key, const char *val, struct vd_error *err);
/* Format from a file name's extension ("vmdk","vhd","vhdx","ova","raw",
 * also "img" -> "raw") or NULL. */
const char *vd_export_format_for(const char *filename);

struct vd_export;
/* Begin encoding FORMAT into DEST (local path or s3://bucket/key). A local
 * DEST is written as an unnamed file in DIR (O_TMPFILE) or, where DIR's
 * filesystem has none, as DIR/.vdisk-XXXXXX, and appears as DEST only when
 * finish renames it into place: no length of NAME that DIR accepts is too
 * long for the temporary name. */
int vd_export_begin(const char *dest, const char *format, const struct vd_export_opts *o,
                    struct vd_export **out, struct vd_error *err);
/* A destination for many exports, resolved once: a local directory, or
 * s3://bucket/prefix/ with its endpoint and credentials (a
 * credential_process runs, or the instance metadata service is asked,
 * here and not at each export; expiring credentials are refreshed during
 * the uploads). Fails as vd_export_begin would on that destination. */
struct vd_export_dir;
int vd_export_dir_open(const char *dir, const struct vd_export_opts *o, struct vd_export_dir **out,
                       struct vd_error *err);
void vd_export_dir_close(struct vd_export_dir *d); /* NULL is fine */
/* vd_export_begin of DIR/NAME (NAME: one path component). */
int vd_export_begin_in(const struct vd_export_dir *d, const char *name, const char *format,
                       const struct vd_export_opts *o, struct vd_export **out,
                       struct vd_error *err);
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
/* What vd_export_commit committed, enough to withdraw that output later. */
struct vd_export_result {
    uint64_t bytes;  /* output size */
    char sha256[65]; /* as vd_export_finish's sha256_hex: "" when not streamed */
    bool local;      /* a local file (dev, ino) rather than an S3 object (etag) */
    uint64_t dev, ino;
    char etag[160]; /* the object's ETag as S3 answered it; "" if none came */
    /* What the user should know about the output that is not an error,
     * e.g. "virtual size 10485761 rounded up to 11534336" (a VHD's size is
     * a whole MiB, as Azure requires); "" when nothing. */
    char note[128];
};
/* vd_export_finish, returning the output's identity too. */
int vd_export_commit(struct vd_export *e, struct vd_export_result *res, struct vd_error *err);
/* Remove an output that vd_export_commit made at DEST, once its writer
 * turned out not to have finished (a write after the last close). Only
 * that output goes: a local file that is no longer the one committed (its
 * inode differs) or an S3 object whose ETag changed is left alone and
 * -ESTALE is returned. -ENOENT when nothing is there any more. */
int vd_export_withdraw(const char *dest, const struct vd_export_opts *o,
                       const struct vd_export_result *res, struct vd_error *err);
void vd_export_abort(struct vd_export *e); /* frees e, leaves nothing at DEST */
/* Convert a whole image: reads src (skipping VD_STATUS_ZERO ranges from
 * vd_image_block_status without reading them), encodes to dest. */
int vd_convert(struct vd_image *src, const char *dest, const char *format,
               const struct vd_export_opts *o, vd_progress_cb progress, void *opaque,
               struct vd_error *err);
/* Offset of disk i in the raw stream of a multi-disk OVA export. */
uint64_t vd_export_ova_disk_offset(const struct vd_export_opts *o, size_t i);
/* vd_convert of n disks into one OVA (format "ova"): the disks in order,
 * each a streamOptimized member, one OVF describing them all. */
int vd_convert_disks(struct vd_image *const *srcs, size_t n, const char *dest,
                     const struct vd_export_opts *o, vd_progress_cb progress, void *opaque,
                     struct vd_error *err);

#endif
