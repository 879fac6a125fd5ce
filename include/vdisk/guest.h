/*
 * libvdisk guest block devices: what the guest's kernel would see as block
 * devices on the disks of one source. Each disk, each partition (libblkid),
 * and each LVM2 logical volume found on them (src/guest/lvm.c parses the
 * LVM2 label and text metadata; nothing is activated on the host, so a
 * guest VG named like a host VG never clashes).
 *
 * The same list backs the mount's files (disk-p1.raw, lvm-VG-LV.raw), the
 * mount's info.json and `vdisk info`, fixup, and `vdisk inspect`.
 */
#ifndef VDISK_GUEST_H
#define VDISK_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"
#include "vdisk/vdisk.h"

struct vd_guest;

enum vd_bdev_kind {
    VD_BDEV_DISK = 0, /* a whole disk */
    VD_BDEV_PART = 1, /* a partition of a disk */
    VD_BDEV_LV = 2,   /* an LVM2 logical volume */
};

/* One block device. Pointers stay valid until vd_guest_close(). */
struct vd_bdev {
    enum vd_bdev_kind kind;
    /* View name without ".raw": "disk", "disk2", "disk-p1", "disk2-p5",
     * "lvm-VG-LV" (a '-' inside VG or LV is doubled, as device-mapper
     * does, so the name splits back unambiguously). */
    const char *name;
    unsigned disk; /* 1-based disk this device lies on (LV: its first PV's disk) */
    unsigned part; /* PART: libblkid's partition number; 0 otherwise */
    uint64_t size; /* bytes; 0 for an LV that is listed but not exposed */

    /* What libblkid found on the device ("" when nothing). */
    char fstype[32]; /* "ext4", "xfs", "vfat", "ntfs", "swap", "LVM2_member"... */
    char uuid[64];
    char label[64];

    /* PART: the partition table's own fields (GPT type GUID or MBR "0x83"). */
    const char *part_type;
    const char *part_uuid;

    /* LV only. */
    const char *vg, *lv, *lv_uuid;
    const char *segtype; /* "linear", "striped", "thin", "raid1", "snapshot"... */
    /* NULL when the LV is readable; else why it is listed but not exposed:
     * "thin volumes are not supported", "PV pv1 (uuid ...) is missing"... */
    const char *unsupported;
};

/* The block devices of all disks of src (OVA: every disk, so a VG spanning
 * several disks of one OVA is assembled). The guest borrows src: close the
 * guest first. Scanning reads only partition tables, LVM labels and
 * metadata, and the first MiB and last 64 KiB of each device for libblkid. */
int vd_guest_open(struct vd_source *src, struct vd_guest **out, struct vd_error *err);
/* The same over several sources in order (disk numbers run on). */
int vd_guest_open_sources(struct vd_source *const *srcs, size_t nsrcs, struct vd_guest **out,
                          struct vd_error *err);
/* The same over images already open (the mount's overlay views): disk
 * n is imgs[n-1]; named "disk" when n == 1, else "diskN". The guest
 * borrows the images. */
int vd_guest_open_images(struct vd_image *const *imgs, size_t n, struct vd_guest **out,
                         struct vd_error *err);
void vd_guest_close(struct vd_guest *g);

/* What the scan left out and why (a partition table that cannot be read,
 * a damaged LVM label or metadata area, a VG found twice): one message
 * each, for info.json, `vdisk info` and logs. */
size_t vd_guest_nwarnings(const struct vd_guest *g);
const char *vd_guest_warning(const struct vd_guest *g, size_t i);

/* vd_source_info_json() with the block devices and VGs of g (opened over
 * src's disks or views of them) instead of a new scan: the mount renders
 * info.json often and keeps one guest per source. g may be NULL. */
int vd_source_info_json_guest(struct vd_source *src, const struct vd_guest *g, char **out,
                              struct vd_error *err);

size_t vd_guest_ndevs(const struct vd_guest *g);
const struct vd_bdev *vd_guest_dev(const struct vd_guest *g, size_t i);
/* By view name ("disk-p1", "lvm-vg0-root"), or NULL. */
const struct vd_bdev *vd_guest_find(const struct vd_guest *g, const char *name);
/* The image of disk n (1-based), or NULL. */
struct vd_image *vd_guest_disk(const struct vd_guest *g, unsigned n);
/* The partition table of disk n as vd_image_partitions() gave it. */
const struct vd_partition_table *vd_guest_partitions(const struct vd_guest *g, unsigned n);

/* Read or write a device. Reads past its size fail with -EINVAL; an
 * unsupported LV fails with -ENOTSUP and its reason. Thread-safe. */
int vd_bdev_pread(const struct vd_bdev *b, void *buf, size_t len, uint64_t off,
                  struct vd_error *err);
int vd_bdev_pwrite(const struct vd_bdev *b, const void *buf, size_t len, uint64_t off,
                   struct vd_error *err);
/* Where [off, off+len) of the device lies on a disk: *img and *img_off,
 * for *run bytes (0 < *run <= len; a stripe or segment boundary ends a
 * run). For the mount's read path and for writes. */
int vd_bdev_map(const struct vd_bdev *b, uint64_t off, uint64_t len, struct vd_image **img,
                uint64_t *img_off, uint64_t *run, struct vd_error *err);

#endif
