/*
 * VMDK descriptor parser (vmdk_desc.c), shared by the driver (vmdk.c), its
 * unit tests and fuzzer. The descriptor is the text part of a VMDK: either
 * a file of its own, or embedded in a sparse extent at descriptorOffset.
 * VMware "Virtual Disk Format 1.1", section "The Descriptor File".
 *
 *   # Disk DescriptorFile
 *   version=1
 *   CID=fffffffe
 *   parentCID=ffffffff
 *   createType="twoGbMaxExtentSparse"
 *   parentFileNameHint="base.vmdk"          (delta disks only)
 *   RW 4192256 SPARSE "disk-s001.vmdk"      access sectors type ["file" [offset]]
 *   RW 2048 FLAT "disk-flat.vmdk" 0
 *   RDONLY 1024 ZERO
 *   ddb.adapterType = "lsilogic"
 */
#ifndef VD_FORMATS_VMDK_H
#define VD_FORMATS_VMDK_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

/* Longest descriptor accepted (separate file or embedded), and most extents. */
#define VMDK_DESC_MAX    (1u << 20)
#define VMDK_MAX_EXTENTS 65536

enum vmdk_ext_type {
    VMDK_EXT_FLAT,
    VMDK_EXT_SPARSE,
    VMDK_EXT_ZERO,
    VMDK_EXT_VMFS,       /* flat, on VMFS */
    VMDK_EXT_VMFSSPARSE, /* COWD redo log: unsupported */
    VMDK_EXT_SESPARSE,   /* unsupported */
    VMDK_EXT_VMFSRDM,    /* raw device mappings: unsupported */
    VMDK_EXT_VMFSRAW,
};

enum vmdk_access { VMDK_RW, VMDK_RDONLY, VMDK_NOACCESS };

struct vmdk_desc_extent {
    enum vmdk_access access;
    uint64_t sectors;
    enum vmdk_ext_type type;
    char *file;      /* NULL for ZERO */
    uint64_t offset; /* sectors into the file (FLAT/VMFS) */
};

struct vmdk_desc {
    unsigned version;
    uint32_t cid, parent_cid; /* 0xffffffff parent_cid: no parent */
    char *create_type;        /* NULL if absent */
    char *parent_hint;        /* parentFileNameHint, NULL if absent */
    char *adapter_type;       /* ddb.adapterType */
    char *hw_version;         /* ddb.virtualHWVersion */
    uint32_t logical_sector;  /* ddb.logicalSectorSize: 512 or 4096; 0 if absent */
    size_t nextents, extents_cap;
    struct vmdk_desc_extent *extents;
};

/* Parse descriptor text buf[0, len) (stops at the first NUL, as embedded
 * descriptors are NUL-padded). name is used in messages. Returns 0 or
 * -EINVAL/-ENOMEM with err set; on failure *out is freed. */
int vd_vmdk_desc_parse(const char *buf, size_t len, const char *name, struct vmdk_desc *out,
                       struct vd_error *err);
void vd_vmdk_desc_free(struct vmdk_desc *d);
/* "SPARSE", "FLAT", ... as written in descriptors. */
const char *vd_vmdk_ext_type_name(enum vmdk_ext_type t);

#endif
