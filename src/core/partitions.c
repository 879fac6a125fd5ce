/*
 * Partition discovery with libblkid.
 *
 * libblkid probes file descriptors, but our disk is virtual. So we build a
 * sparse memfd of the virtual size holding only the sectors a partition
 * table can live in: the first and last MiB (MBR, GPT primary and backup)
 * and, for MBR extended partitions, each EBR of the chain. Following the EBR
 * chain needs only its link entry (2nd slot, offset 462); everything else is
 * left to libblkid, which then numbers partitions as the kernel does
 * (logical partitions from 5).
 */
#include <blkid/blkid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "core/driver.h"

#define EDGE_BYTES (1024 * 1024)
#define MAX_EBRS   256

static int copy_range(struct vd_image *img, int fd, uint64_t off, uint64_t len, uint8_t *buf,
                      struct vd_error *err)
{
    if (off >= img->size)
        return 0;
    len = VD_MIN(len, img->size - off);
    int r = vd_image_pread(img, buf, (size_t)len, off, err);
    if (r < 0)
        return r;
    if (pwrite(fd, buf, (size_t)len, (off_t)off) != (ssize_t)len)
        return vd_err(err, -errno, "%s: partition probe buffer: %s", img->name, strerror(errno));
    return 0;
}

static bool is_extended(uint8_t type)
{
    return type == 0x05 || type == 0x0f || type == 0x85;
}

/* Copy every EBR of each extended partition in the MBR at buf. */
static int copy_ebrs(struct vd_image *img, int fd, const uint8_t *mbr, uint8_t *buf,
                     struct vd_error *err)
{
    uint64_t ss = img->sector_size;
    if (mbr[510] != 0x55 || mbr[511] != 0xaa)
        return 0;
    for (int i = 0; i < 4; i++) {
        const uint8_t *e = mbr + 446 + 16 * i;
        if (!is_extended(e[4]))
            continue;
        uint64_t ext_start = le32(e + 8);
        uint64_t ebr = ext_start;
        for (int n = 0; n < MAX_EBRS && ebr != 0; n++) {
            uint64_t off;
            if (ck_mul(ebr, ss, &off) || off >= img->size)
                break;
            int r = copy_range(img, fd, off, ss, buf, err);
            if (r < 0)
                return r;
            uint64_t next = le32(buf + 462 + 8);
            if (buf[510] != 0x55 || buf[511] != 0xaa || next == 0 || !is_extended(buf[450 + 16]))
                break;
            if (ext_start + next <= ebr)
                break; /* links must move forward: no loops */
            ebr = ext_start + next;
        }
    }
    return 0;
}

int vd_image_partitions(struct vd_image *img, struct vd_partition_table *out, struct vd_error *err)
{
    memset(out, 0, sizeof(*out));
    if (img->size < 2 * img->sector_size)
        return 0;
    uint8_t *buf = malloc(EDGE_BYTES);
    int fd = memfd_create("vdisk-partprobe", MFD_CLOEXEC);
    int r = 0;
    blkid_probe pr = NULL;
    if (!buf || fd < 0) {
        r = vd_err(err, -ENOMEM, "%s: cannot allocate partition probe buffer", img->name);
        goto out;
    }
    if (ftruncate(fd, (off_t)img->size) != 0) {
        r = vd_err(err, -errno, "%s: partition probe buffer: %s", img->name, strerror(errno));
        goto out;
    }
    uint64_t tail = img->size > EDGE_BYTES ? img->size - EDGE_BYTES : 0;
    if ((r = copy_range(img, fd, tail, EDGE_BYTES, buf, err)) < 0 ||
        (r = copy_range(img, fd, 0, EDGE_BYTES, buf, err)) < 0)
        goto out;
    uint8_t mbr[512];
    memcpy(mbr, buf, sizeof(mbr));
    if ((r = copy_ebrs(img, fd, mbr, buf, err)) < 0)
        goto out;

    pr = blkid_new_probe();
    if (!pr || blkid_probe_set_device(pr, fd, 0, (blkid_loff_t)img->size) != 0) {
        r = vd_err(err, -ENOMEM, "%s: libblkid probe setup failed", img->name);
        goto out;
    }
    blkid_probe_set_sectorsize(pr, img->sector_size);
    blkid_probe_enable_superblocks(pr, 0);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
    if (blkid_do_fullprobe(pr) != 0)
        goto out; /* no partition table: not an error */
    blkid_partlist ls = blkid_probe_get_partitions(pr);
    if (!ls)
        goto out;
    blkid_parttable root = blkid_partlist_get_table(ls);
    if (root)
        snprintf(out->scheme, sizeof(out->scheme), "%s", blkid_parttable_get_type(root));
    int n = blkid_partlist_numof_partitions(ls);
    if (n <= 0)
        goto out;
    out->parts = calloc((size_t)n, sizeof(*out->parts));
    if (!out->parts) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        blkid_partition p = blkid_partlist_get_partition(ls, i);
        struct vd_partition *vp = &out->parts[out->n];
        blkid_loff_t start = blkid_partition_get_start(p), size = blkid_partition_get_size(p);
        if (start < 0 || size <= 0)
            continue;
        /* libblkid reports 512-byte sectors whatever the logical size. */
        vp->offset = (uint64_t)start * 512;
        vp->size = (uint64_t)size * 512;
        vp->table_size = vp->size;
        if (vp->offset >= img->size) {
            out->beyond_end++; /* a truncated image: say so, do not show it */
            continue;
        }
        if (vp->size > img->size - vp->offset)
            vp->size = img->size - vp->offset; /* clamp a table that overhangs the disk */
        vp->number = (unsigned)blkid_partition_get_partno(p);
        const char *t = blkid_partition_get_type_string(p);
        if (t)
            snprintf(vp->type, sizeof(vp->type), "%s", t);
        else
            snprintf(vp->type, sizeof(vp->type), "0x%02x", blkid_partition_get_type(p));
        const char *u = blkid_partition_get_uuid(p);
        if (u)
            snprintf(vp->uuid, sizeof(vp->uuid), "%s", u);
        const char *nm = blkid_partition_get_name(p);
        if (nm)
            snprintf(vp->name, sizeof(vp->name), "%s", nm);
        /* An extended partition is a container, not a volume: hide it. */
        if (!strcmp(out->scheme, "dos") && blkid_partition_is_extended(p))
            continue;
        out->n++;
    }
out:
    if (pr)
        blkid_free_probe(pr);
    if (fd >= 0)
        close(fd);
    free(buf);
    if (r < 0)
        vd_partition_table_free(out);
    return r;
}

void vd_partition_table_free(struct vd_partition_table *t)
{
    free(t->parts);
    t->parts = NULL;
    t->n = 0;
}
