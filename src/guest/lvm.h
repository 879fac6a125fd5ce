/*
 * LVM2 on-disk format, read without device-mapper (src/guest/lvm.c).
 *
 * Two pure steps over a pread callback, so tests and the fuzzer drive them
 * without images:
 *   vd_lvm_read_pv()   label, pv_header, mda_header and the newest
 *                      metadata text of one device;
 *   vd_lvm_assemble()  VGs and LVs from every PV found, by PV UUID, with
 *                      each LV either mappable (linear, striped) or
 *                      carrying the reason it is not exposed.
 * vd_lvm_map() turns an LV offset into (PV device, offset) runs.
 */
#ifndef VD_GUEST_LVM_H
#define VD_GUEST_LVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

/* Largest metadata text we read or parse: LVM's own default metadata area
 * is 1 MiB and real VGs use a few KiB. */
#define VD_LVM_MAX_META (4u << 20)
/* Config nesting deeper than this is not LVM metadata (real depth is 4). */
#define VD_LVM_MAX_DEPTH 16

typedef int (*vd_lvm_pread_fn)(void *opaque, void *buf, size_t len, uint64_t off,
                               struct vd_error *err);

/* One device holding an LVM2 label. */
struct vd_lvm_pvdev {
    char uuid[33];      /* pv_header UUID: 32 characters, no dashes */
    uint64_t dev_bytes; /* size of the device the label is on */
    uint64_t hdr_size;  /* pv_header device_size_xl (bytes; 0 = unknown) */
    char *meta;         /* newest metadata text (NUL-terminated), or NULL */
    size_t meta_len;
    char *meta_error;    /* why meta is NULL when the PV has metadata areas */
    const char *devname; /* borrowed, for messages */
};

/* Read the label of a device of dev_bytes bytes. Returns 1 and fills out
 * when a label is found, 0 when the device holds none, -errno (message in
 * err) when reading fails or the label is corrupt. A damaged metadata
 * area is not fatal: out->meta_error says why. */
int vd_lvm_read_pv(vd_lvm_pread_fn rd, void *opaque, uint64_t dev_bytes, const char *devname,
                   struct vd_lvm_pvdev *out, struct vd_error *err);
void vd_lvm_pvdev_free(struct vd_lvm_pvdev *p);

/* LVM's CRC (lib/misc/crc.c): CRC-32 (reflected 0xedb88320) with no
 * pre- or post-inversion, seeded with 0xf597a6cf. */
#define VD_LVM_INITIAL_CRC 0xf597a6cfu
uint32_t vd_lvm_crc(uint32_t crc, const void *buf, size_t len);

struct vd_lvm_area {
    size_t pv;         /* index into the VG's pvs */
    uint64_t start_pe; /* first extent on that PV */
};

struct vd_lvm_seg {
    uint64_t start_extent, extent_count;
    char *type;           /* "striped", "thin", "raid1"... */
    uint32_t stripes;     /* areas (1 = linear) */
    uint64_t stripe_size; /* sectors; 0 when stripes == 1 */
    struct vd_lvm_area *areas;
};

struct vd_lvm_vgpv {
    char *name;                  /* "pv0" */
    char *uuid;                  /* as in the metadata, with dashes */
    uint64_t pe_start, pe_count; /* sectors, extents */
    long dev;                    /* index into the pvdevs given to vd_lvm_assemble, -1: missing */
};

struct vd_lvm_vg;

struct vd_lvm_lv {
    char *name, *uuid;
    struct vd_lvm_vg *vg;
    bool visible;
    uint64_t extents;    /* sum of the segments' extent counts */
    uint64_t size;       /* bytes (0 when not exposed) */
    const char *segtype; /* first segment's type, "mixed" if they differ */
    size_t nsegs;
    struct vd_lvm_seg *segs;
    char *unsupported; /* NULL: readable */
};

struct vd_lvm_vg {
    char *name, *uuid;
    uint64_t seqno;
    uint64_t extent_size; /* sectors */
    size_t npvs;
    struct vd_lvm_vgpv *pvs;
    size_t nlvs;
    struct vd_lvm_lv *lvs;
};

struct vd_lvm {
    size_t nvgs;
    struct vd_lvm_vg *vgs;
    size_t nwarnings;
    char **warnings; /* VGs or PVs left out, and why */
};

/* Assemble VGs from the PVs found (the newest metadata per VG by seqno).
 * Only -ENOMEM fails; everything wrong with the input ends as a warning
 * or an LV's unsupported reason. */
int vd_lvm_assemble(const struct vd_lvm_pvdev *pvs, size_t npvs, struct vd_lvm **out,
                    struct vd_error *err);
void vd_lvm_free(struct vd_lvm *l);

/* Where byte off of a readable LV lies: *dev (index into the pvdevs given
 * to vd_lvm_assemble) at *dev_off, for *run bytes (0 < *run <= len; a
 * segment or stripe chunk boundary ends it). */
int vd_lvm_map(const struct vd_lvm_lv *lv, uint64_t off, uint64_t len, size_t *dev,
               uint64_t *dev_off, uint64_t *run, struct vd_error *err);

#endif
