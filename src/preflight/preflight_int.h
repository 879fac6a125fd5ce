/*
 * Internals of `vdisk preflight` (src/preflight/): the facts the checks run
 * on, the AWS support table, and the checks themselves.
 *
 * vd_preflight() (collect.c) gathers facts from the sources and the guest's
 * block devices, loads the table and calls pf_run() (preflight.c), which
 * looks only at these structs and the inspection result: no I/O, so unit
 * tests (tests/unit/test_preflight.c) build every case by hand.
 */
#ifndef VD_PREFLIGHT_INT_H
#define VD_PREFLIGHT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"
#include "vdisk/inspect.h"

/* One disk of the sources, in order (disk numbers as the guest's). */
struct pf_disk {
    const char *view;      /* "disk", "disk1", "disk2" */
    const char *file;      /* the image file ("web01-disk1.vmdk") */
    const char *format;    /* "vmdk", "vhd", "vhdx", "raw" */
    const char *subformat; /* "streamOptimized", "dynamic", "differencing"... or NULL */
    bool has_backing;      /* a parent (snapshot chain) */
    uint64_t size;         /* virtual size, bytes */
    const char *scheme;    /* partition table: "dos", "gpt", "" */
    /* What Azure reads (target azure): the file's length and its last 512
     * bytes taken as a VHD footer, whatever the driver made of them. */
    uint64_t file_size;
    bool footer_cookie;   /* "conectix" at file_size - 512 */
    uint32_t footer_type; /* disk type there (2 fixed, 3 dynamic, 4 diff) */
    uint64_t footer_size; /* current size there */
};

/* One block device of the guest (vdisk/guest.h, reduced to what checks use). */
struct pf_dev {
    const char *name; /* "disk-p1", "lvm-vg0-root" */
    unsigned disk;    /* 1-based */
    bool lv;          /* an LVM logical volume */
    const char *vg, *lv_name, *segtype;
    const char *unsupported; /* LV listed but not readable, and why; NULL if readable */
    const char *fstype;
    const char *part_type; /* GPT type GUID or MBR "0x83"; NULL for LVs */
};

/* A problem the container check or the deep read found. */
struct pf_problem {
    const char *file;
    const char *text; /* the check's own line */
    bool corrupt;     /* false: leaked space only */
    bool deep;        /* found by reading every grain (--deep) */
};

struct pf_facts {
    const char *container; /* first source's format: "ova", "vmdk"... */
    struct pf_disk *disks;
    size_t ndisks;
    struct pf_dev *devs;
    size_t ndevs;
    struct pf_problem *problems;
    size_t nproblems;
    bool checked;        /* the container check ran on every source */
    uint64_t check_skip; /* not deep: bytes of the sources whose check reads
                            them whole (stream-optimized VMDK, OVA) */
    bool deep;           /* every allocated byte was read (--deep) */
    uint64_t deep_skip;  /* not deep: compressed bytes a deep read would fetch */
};

/* ---- the AWS support table (table.c, data/aws-vmimport.txt) ---- */

struct pf_linux_row {
    char *id;          /* os-release ID */
    char *vmin, *vmax; /* version range */
    char **kernels;    /* prefixes ("~x": substring) */
    size_t nkernels;
    char *name; /* "Debian" */
};

struct pf_table {
    char *source; /* URL and date, for messages and JSON */
    uint64_t disk_max, manifest_above, linux_min_free, windows_min_free;
    unsigned max_volumes;
    char **linux_fs, **windows_fs;
    size_t nlinux_fs, nwindows_fs;
    struct pf_linux_row *linux_rows;
    size_t nlinux;
    char **windows;
    size_t nwindows;
};

/* Parse the table text (name for messages). -EINVAL with the line number
 * for a line it does not understand. */
int pf_table_parse(const char *text, size_t len, const char *name, struct pf_table **out,
                   struct vd_error *err);
/* Load path, or when NULL the first of: $VDISK_DATA_DIR/aws-vmimport.txt,
 * the installed ${datadir}/vdisk/aws-vmimport.txt, the source tree's
 * data/aws-vmimport.txt (a build that is not installed). */
int pf_table_load(const char *path, struct pf_table **out, struct vd_error *err);
void pf_table_free(struct pf_table *t);

/* Compare dotted versions over their common leading components: <0, 0, >0. */
int pf_version_cmp(const char *a, const char *b);
/* Does kernel version k ("5.10.0-26-amd64") match table entry pat ("5.10")? */
bool pf_kernel_match(const char *k, const char *pat);

const char *vd_pf_severity_name(enum vd_pf_severity s); /* "would-fail", "risk", "note" */

/* Azure's limits for an uploaded VHD (docs/preflight.md, "Azure"). */
#define PF_AZURE_MIB      ((uint64_t)1 << 20)
#define PF_AZURE_MIN_SIZE ((uint64_t)20 << 20) /* DiskCreationData.UploadSizeBytes: 20 MiB.. */
#define PF_AZURE_MAX_SIZE ((uint64_t)32 << 40) /* ..32 TiB, each plus the 512-byte footer */

/* The Azure checks (target azure): container, type, size and footer only;
 * no table, no guest. */
int pf_run_azure(const struct pf_facts *f, struct vd_preflight **out, struct vd_error *err);

/* Run every check; ins NULL: only the container and device checks (the
 * guest could not be inspected). route: "import-image" (NULL too) or "import-snapshot". */
int pf_run(const struct pf_facts *f, const struct vd_inspect *ins, const struct pf_table *t,
           const char *route, struct vd_preflight **out, struct vd_error *err);

#endif
