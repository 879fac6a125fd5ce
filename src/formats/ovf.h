/*
 * OVF descriptors (the .ovf XML inside an OVA), parsed with libxml2 into
 * what vdiskfs needs: the file references, the disks, and a summary of the
 * virtual system. The parser takes (buf, len) and does no I/O: no network,
 * no external entities, no DTD. See ovf.c for the spec sections followed.
 */
#ifndef VD_FORMATS_OVF_H
#define VD_FORMATS_OVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

#define VD_OVF_MAX_ITEMS    4096         /* Files, Disks, Networks each */
#define VD_OVF_MAX_CAPACITY (1ull << 60) /* 1 EiB: anything larger is absurd */

struct vd_ovf_file {
    char *id;   /* ovf:id */
    char *href; /* ovf:href */
    bool has_size;
    uint64_t size;     /* ovf:size */
    char *compression; /* ovf:compression, or NULL ("identity" is stored as NULL) */
    bool has_chunk_size;
    uint64_t chunk_size; /* ovf:chunkSize */
};

struct vd_ovf_disk {
    char *disk_id;     /* ovf:diskId */
    char *file_ref;    /* ovf:fileRef, or NULL (an empty disk created at deploy) */
    uint64_t capacity; /* bytes: ovf:capacity x ovf:capacityAllocationUnits */
    char *format;      /* ovf:format URI, or NULL */
};

struct vd_ovf {
    char *version; /* Envelope ovf:version, else "1.x"/"2.x" from the namespace, or NULL */
    size_t nfiles;
    struct vd_ovf_file *files;
    size_t ndisks;
    struct vd_ovf_disk *disks; /* DiskSection order */
    size_t nnetworks;
    char **networks; /* NetworkSection/Network ovf:name */
    /* First VirtualSystem (depth-first): NULL/false when absent. */
    char *name; /* Name element, else ovf:id */
    char *os;   /* OperatingSystemSection Description */
    bool has_os_id;
    uint64_t os_id; /* OperatingSystemSection ovf:id (CIM OS type) */
    char *os_type;  /* vmw:osType attribute or vbox:OSType element */
    bool has_cpus;
    uint64_t cpus; /* ResourceType 3 VirtualQuantity */
    bool has_memory;
    uint64_t memory_bytes; /* ResourceType 4 VirtualQuantity x AllocationUnits */
};

/* Parse a descriptor. name is the file name for messages. Returns 0, or
 * -EINVAL (not XML, not an OVF envelope, malformed disk or file entry,
 * absurd capacity) or -ENOMEM, with err filled. */
int vd_ovf_parse(const char *buf, size_t len, const char *name, struct vd_ovf **out,
                 struct vd_error *err);
void vd_ovf_free(struct vd_ovf *ovf); /* NULL is a no-op */

const struct vd_ovf_file *vd_ovf_find_file(const struct vd_ovf *ovf, const char *id);

/* Multiplier in bytes of a DSP0004 programmatic unit ("byte", "byte * 2^30",
 * "byte*1024", "byte * 10^6") or a legacy name ("KiloBytes", "MegaBytes",
 * "GigaBytes", "KB", "MB", "GB"). NULL or "" is 1. Returns 0 or -1. */
int vd_ovf_units(const char *units, uint64_t *mult);

#define VD_OVF_STREAM_VMDK                                                                         \
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

/* What an export changes in a source descriptor: everything else (the
 * VirtualSystem above all: CPUs, memory, OS, firmware, NICs, controllers,
 * product and property sections) is kept as the source wrote it. */
struct vd_ovf_rebuild_opts {
    size_t ndisks;            /* disks the export carries */
    const size_t *src_disk;   /* [ndisks]: index among the source's Disks that have a file */
    const char *const *hrefs; /* [ndisks]: member names of the new files */
    unsigned hw_version;      /* 0, or the vmx-N to write as VirtualSystemType */
    unsigned hw_ceiling;      /* 0, or the highest vmx-N the target accepts */
    const char *target;       /* the target's name, for messages */
};

/* Rebuild a source descriptor for an export: References holds only the
 * exported files (their ids kept), each carried Disk points at its file
 * with ovf:capacity in bytes and the streamOptimized format, Disks not
 * carried are removed with the Items that attach them, and HostResources
 * naming files not carried (ISOs) are dropped. The new File ovf:size and
 * Disk ovf:capacity values are the tokens "#VDnnn#" (nnn = 2i for disk i's
 * file size, 2i+1 for its capacity) that the encoder fills in. *out is
 * malloc'd (NUL-terminated, *out_len bytes). -EINVAL with err naming the
 * problem (a missing DiskSection, a VM above the hardware ceiling). */
int vd_ovf_rebuild(const char *buf, size_t len, const char *name,
                   const struct vd_ovf_rebuild_opts *ro, char **out, size_t *out_len,
                   struct vd_error *err);

#endif
