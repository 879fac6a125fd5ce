/*
 * Device map for fixup: which filesystem (UUID, type, label) sat behind
 * each kernel disk name of the old machine. /dev/sda is disk 1, sdb disk 2
 * (the order of --disk arguments, and within an OVA the OVF disk order);
 * hdX, xvdX and vdX count the same way and /dev/nvmeCnN is disk C+1.
 *
 * Filesystems are found with libblkid. libblkid 2.38 probes only file
 * descriptors (there is no blkid_probe_set_buffer), so for an image the
 * first VD_FIXUP_PROBE_BYTES of each partition are copied into a sparse
 * memfd as long as the partition: every superblock blkid looks for at the
 * start (ext2/3/4, xfs, btrfs at 64 KiB, swap, vfat, ntfs, LVM, iso9660)
 * is there, and the rest reads as zeros. A vdiskfs view folder already
 * has one file per partition, which blkid probes directly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkid.h>

#include "fixup/fixup_int.h"
#include "vdisk/vdisk.h"

#define VD_FIXUP_PROBE_BYTES (4u << 20)
#define VD_FIXUP_MAX_DISKS   702 /* sda..sdzz */

void vd_fixup_devmap_free(struct vd_fixup_devmap *m)
{
    if (!m)
        return;
    free(m->devs);
    m->devs = NULL;
    m->n = 0;
    m->ndisks = 0;
}

static bool devmap_digits(const char *s, size_t n, unsigned *out)
{
    if (n == 0 || n > 4 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool vd_fixup_parse_devpath(const char *path, size_t len, unsigned *disk, unsigned *part)
{
    if (!vd_fx_starts(path, len, "/dev/"))
        return false;
    const char *s = path + 5;
    size_t n = len - 5;
    if (vd_fx_starts(s, n, "nvme")) {
        /* nvme<ctrl>n<ns>[p<part>]; only namespace 1 is a disk we number */
        size_t i = 4, j;
        unsigned ctrl, ns, p = 0;
        for (j = i; j < n && s[j] >= '0' && s[j] <= '9'; j++)
            ;
        if (!devmap_digits(s + i, j - i, &ctrl) || j >= n || s[j] != 'n')
            return false;
        for (i = ++j; j < n && s[j] >= '0' && s[j] <= '9'; j++)
            ;
        if (!devmap_digits(s + i, j - i, &ns) || ns == 0)
            return false;
        if (j < n) {
            if (s[j] != 'p' || !devmap_digits(s + j + 1, n - j - 1, &p) || p == 0)
                return false;
        }
        if (ctrl + 1 > VD_FIXUP_MAX_DISKS)
            return false;
        /* namespaces past the first are disks we cannot number: disk 0
         * never resolves, so such entries get nofail */
        *disk = ns == 1 ? ctrl + 1 : 0;
        *part = p;
        return true;
    }
    size_t pre;
    if (vd_fx_starts(s, n, "sd") || vd_fx_starts(s, n, "hd") || vd_fx_starts(s, n, "vd"))
        pre = 2;
    else if (vd_fx_starts(s, n, "xvd"))
        pre = 3;
    else
        return false;
    size_t i = pre;
    while (i < n && s[i] >= 'a' && s[i] <= 'z')
        i++;
    size_t letters = i - pre;
    unsigned d;
    if (letters == 1)
        d = (unsigned)(s[pre] - 'a') + 1;
    else if (letters == 2)
        d = 26 * ((unsigned)(s[pre] - 'a') + 1) + (unsigned)(s[pre + 1] - 'a') + 1;
    else
        return false;
    unsigned p = 0;
    if (i < n && (!devmap_digits(s + i, n - i, &p) || p == 0))
        return false;
    *disk = d;
    *part = p;
    return true;
}

const struct vd_fixup_dev *vd_fixup_devmap_find(const struct vd_fixup_devmap *m, unsigned disk,
                                                unsigned part)
{
    if (!m)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (m->devs[i].disk == disk && m->devs[i].part == part && m->devs[i].uuid[0])
            return &m->devs[i];
    return NULL;
}

static int devmap_push(struct vd_fixup_devmap *m, const struct vd_fixup_dev *d)
{
    struct vd_fixup_dev *p = realloc(m->devs, (m->n + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    m->devs = p;
    m->devs[m->n++] = *d;
    return 0;
}

static void devmap_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Probe fd (size bytes) for a filesystem; fill d and return 1 if one was
 * found, 0 if none (or ambiguous), -errno on failure. */
static int devmap_probe_fd(int fd, uint64_t size, struct vd_fixup_dev *d)
{
    blkid_probe pr = blkid_new_probe();
    if (!pr)
        return -ENOMEM;
    int found = 0;
    if (blkid_probe_set_device(pr, fd, 0, (blkid_loff_t)size) < 0) {
        found = -EIO;
        goto out_probe;
    }
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr,
                                      BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
    blkid_probe_enable_partitions(pr, 0);
    if (blkid_do_safeprobe(pr) == 0) {
        const char *v = NULL;
        if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
            devmap_copy(d->uuid, sizeof(d->uuid), v);
        if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
            devmap_copy(d->type, sizeof(d->type), v);
        if (blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
            devmap_copy(d->label, sizeof(d->label), v);
        found = d->type[0] != '\0';
    }
out_probe:
    blkid_free_probe(pr);
    return found;
}

/* Copy the head of [off, off+size) of img into a sparse memfd of size
 * bytes and probe that. */
static int devmap_probe_range(struct vd_image *img, uint64_t off, uint64_t size,
                              struct vd_fixup_dev *d, struct vd_error *err)
{
    size_t head = size < VD_FIXUP_PROBE_BYTES ? (size_t)size : VD_FIXUP_PROBE_BYTES;
    char *buf = malloc(head ? head : 1);
    int fd = -1, rc;
    if (!buf)
        return vd_err(err, -ENOMEM, "fixup: %s: out of memory", vd_image_name(img));
    rc = vd_image_pread(img, buf, head, off, err);
    if (rc < 0)
        goto out_buf;
    fd = memfd_create("vdisk-fixup-probe", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || pwrite(fd, buf, head, 0) != (ssize_t)head) {
        rc = vd_err(err, -errno, "fixup: %s: memfd for probing: %s", vd_image_name(img),
                    strerror(errno));
        goto out_fd;
    }
    rc = devmap_probe_fd(fd, size, d);
    if (rc < 0)
        vd_err(err, rc, "fixup: %s: libblkid probe failed at offset %llu", vd_image_name(img),
               (unsigned long long)off);
out_fd:
    if (fd >= 0)
        close(fd);
out_buf:
    free(buf);
    return rc;
}

int vd_fixup_devmap_add_source(struct vd_fixup_devmap *m, const char *uri, struct vd_error *err)
{
    struct vd_open_opts o = {0};
    struct vd_source *src;
    int rc = vd_source_open(uri, &o, &src, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < vd_source_ndisks(src) && rc >= 0; i++) {
        struct vd_image *img = vd_source_disk(src, i);
        unsigned disk = ++m->ndisks;
        struct vd_partition_table pt;
        rc = vd_image_partitions(img, &pt, err);
        if (rc < 0)
            break;
        if (pt.n == 0) { /* a filesystem on the whole disk */
            struct vd_fixup_dev d = {.disk = disk, .part = 0};
            rc = devmap_probe_range(img, 0, vd_image_size(img), &d, err);
            if (rc > 0 && devmap_push(m, &d) < 0)
                rc = vd_err(err, -ENOMEM, "fixup: %s: out of memory", uri);
        }
        for (size_t k = 0; k < pt.n && rc >= 0; k++) {
            struct vd_fixup_dev d = {.disk = disk, .part = pt.parts[k].number};
            rc = devmap_probe_range(img, pt.parts[k].offset, pt.parts[k].size, &d, err);
            if (rc > 0 && devmap_push(m, &d) < 0)
                rc = vd_err(err, -ENOMEM, "fixup: %s: out of memory", uri);
        }
        vd_partition_table_free(&pt);
    }
    vd_source_close(src);
    return rc < 0 ? rc : 0;
}

/* "disk.raw" -> (1, 0); "disk2-p3.raw" -> (2, 3); false for other names. */
bool vd_fx_view_name(const char *name, unsigned *disk, unsigned *part)
{
    size_t n = strlen(name);
    if (n < 8 || strncmp(name, "disk", 4) || strcmp(name + n - 4, ".raw"))
        return false;
    const char *s = name + 4, *end = name + n - 4;
    const char *dash = memchr(s, '-', (size_t)(end - s));
    const char *dend = dash ? dash : end;
    *disk = 1;
    if (dend > s && !devmap_digits(s, (size_t)(dend - s), disk))
        return false;
    *part = 0;
    if (dash &&
        (dash[1] != 'p' || !devmap_digits(dash + 2, (size_t)(end - dash - 2), part) || *part == 0))
        return false;
    return *disk > 0 && *disk <= VD_FIXUP_MAX_DISKS;
}

int vd_fixup_devmap_add_view(struct vd_fixup_devmap *m, const char *dir, struct vd_error *err)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return vd_err(err, -errno, "fixup: %s: %s", dir, strerror(errno));
    unsigned base = m->ndisks, maxdisk = 0;
    int rc = 0;
    bool any = false;
    struct dirent *de;
    while (rc >= 0 && (de = readdir(dh))) {
        unsigned disk, part;
        if (!vd_fx_view_name(de->d_name, &disk, &part))
            continue;
        any = true;
        if (disk > maxdisk)
            maxdisk = disk;
        int fd = openat(dirfd(dh), de->d_name, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            rc = vd_err(err, -errno, "fixup: %s/%s: %s", dir, de->d_name, strerror(errno));
            if (fd >= 0)
                close(fd);
            break;
        }
        struct vd_fixup_dev d = {.disk = base + disk, .part = part};
        int found = devmap_probe_fd(fd, (uint64_t)st.st_size, &d);
        close(fd);
        if (found < 0)
            rc = vd_err(err, found, "fixup: %s/%s: libblkid probe failed", dir, de->d_name);
        else if (found > 0 && devmap_push(m, &d) < 0)
            rc = vd_err(err, -ENOMEM, "fixup: %s: out of memory", dir);
    }
    closedir(dh);
    if (rc >= 0 && !any)
        rc = vd_err(err, -ENOENT, "fixup: %s: not a vdiskfs view (no disk.raw or disk1.raw in it)",
                    dir);
    if (rc >= 0)
        m->ndisks = base + maxdisk;
    return rc < 0 ? rc : 0;
}
