/*
 * Copy-on-write overlay files (vdiskfs -o overlay=FILE, vdisk --overlay):
 * a writable view of any disk - streamOptimized VMDK, an OVA member, an S3
 * object - whose writes all land in FILE, so the source is never opened for
 * writing. Mounting again with the same FILE shows the edits; a FILE made
 * for other disks is refused. Format and guarantees: docs/overlay.md.
 */
#ifndef VDISK_OVERLAY_H
#define VDISK_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"
#include "vdisk/vdisk.h"

struct vd_overlay;

/* Open FILE, or create it when it does not exist. The file is locked
 * (flock) for as long as it is open: a second user gets -EBUSY. */
int vd_overlay_open(const char *path, struct vd_overlay **out, struct vd_error *err);

/* A writable view of base (not owned: it must outlive the view) that reads
 * through to base and keeps every write in the overlay. key names the disk
 * within the overlay ("web01/disk1"; at most 63 bytes). A FILE that already
 * holds disks only attaches disks it recorded: matched by key, or by content
 * fingerprint when the source was renamed, and checked for size and
 * fingerprint either way. It also checks that base is the source its copied
 * blocks came from: the same identity (file size, mtime, ctime, device and
 * inode; S3 ETag), or else every copied block reads back from base with its
 * recorded digest; a local file written in place is refused either way
 * once the overlay holds a block of it.
 * Refusals are -ESTALE with a message saying what differs and which block.
 * This may read every block the overlay holds from base. A new FILE records
 * every disk attached before its first write. */
int vd_overlay_attach(struct vd_overlay *ov, struct vd_image *base, const char *key,
                      struct vd_image **out, struct vd_error *err);
/* The key a mount of the single source URI gives disk i of src in an
 * overlay: "<folder>/<view>", the folder being the source's file name
 * without its extension ("web01/disk1"). `vdisk --overlay` and the nbdkit
 * plugin use it, so one overlay FILE moves between the three faces. */
void vd_overlay_key(const char *uri, const struct vd_source *src, size_t i, char *buf, size_t len);

/* Free a view (before closing the overlay and the base). */
void vd_overlay_detach(struct vd_image *view);

/* Bytes of data blocks the overlay holds for all its disks. */
uint64_t vd_overlay_data_bytes(const struct vd_overlay *ov);

/* Sync and close. Returns the first error of the final sync. */
int vd_overlay_close(struct vd_overlay *ov, struct vd_error *err);

/* For tests and fuzzers: validate an overlay header (the first
 * VD_OVERLAY_HEADER bytes of FILE: the header proper and, in version 2, the
 * source records) against a file of file_size bytes. A version 1 header
 * needs only its first 4096 bytes. */
#define VD_OVERLAY_HEADER 20480u
int vd_overlay_check_header(const uint8_t *buf, size_t len, uint64_t file_size,
                            struct vd_error *err);

#endif
