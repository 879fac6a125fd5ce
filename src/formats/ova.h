/*
 * OVA containers: a tar archive (parsed in-process, see tar.h) holding an OVF
 * descriptor (parsed with libxml2, see ovf.h), disk files and an optional
 * manifest. The core opens each disk of the DiskSection, in order, through
 * a slice io over the .ova: nothing is extracted.
 */
#ifndef VD_FORMATS_OVA_H
#define VD_FORMATS_OVA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/vdisk.h"
#include "io/io.h"

struct vd_json;

struct vd_ova_disk {
    char *disk_id;     /* ovf:diskId */
    char *member;      /* tar member name of the disk file (ovf:href) */
    uint64_t offset;   /* byte offset of the member's data in the .ova */
    uint64_t size;     /* member size in bytes */
    uint64_t capacity; /* ovf:capacity in bytes (after capacityAllocationUnits), 0 if absent */
    char *format;      /* ovf:format URI, or NULL */
};

struct vd_ova {
    char *ovf_name; /* tar member name of the descriptor */
    char *ovf_text; /* the descriptor as stored (NUL-terminated) */
    size_t ovf_len;
    size_t ndisks;
    struct vd_ova_disk *disks; /* DiskSection order */
    void *priv;                /* tar member list, parsed OVF: private to ova.c */
};

/* True if head looks like a tar archive (ustar magic or a valid old-style
 * header checksum). */
bool vd_ova_probe(const uint8_t *head, size_t head_len);
/* Parse the tar and the OVF; io gets a new reference held by the ova. */
int vd_ova_open(struct vd_io *io, struct vd_ova **out, struct vd_error *err);
void vd_ova_close(struct vd_ova *ova); /* NULL is a no-op */
/* Add an "ovf" object (summary: name, OS, CPUs, memory, disks, networks)
 * to an open JSON object. */
void vd_ova_info(struct vd_ova *ova, struct vd_json *j);
/* Verify the manifest (.mf, SHA1/SHA256 lines) and the OVF's file refs;
 * report each problem through cb. Returns VD_CHECK_* or -errno. */
int vd_ova_check(struct vd_ova *ova, vd_check_cb cb, void *opaque, struct vd_error *err);

#endif
