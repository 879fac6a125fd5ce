/*
 * fstab(5) for `vdisk inspect`: each entry, and the guest block device its
 * first field names, resolved the way the guest's udev and device-mapper
 * would name them (UUID=, LABEL=, PARTUUID=, /dev/disk/by-*, /dev/mapper/
 * VG-LV, /dev/VG/LV, kernel names). Also the module-name matching of the
 * initramfs driver list. Pure functions (see inspect_int.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixup/fixup_int.h"
#include "inspect/inspect_int.h"

/* fstab field with its octal escapes (\040 for a space) decoded. */
static void fs_field(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        }
        if (o + 1 < cap)
            out[o++] = c ? c : '?';
    }
    out[o] = '\0';
}

int vd_ins_fstab(const char *buf, size_t len, vd_ins_fstab_cb cb, void *opaque)
{
    struct vd_fx_line l;
    size_t pos = 0;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n < 2 || l.s[f.off[0]] == '#')
            continue;
        if (f.n > 4)
            f.n = 4; /* dump and pass are not reported */
        struct vd_ins_fstab_ent e;
        memset(&e, 0, sizeof(e));
        fs_field(l.s + f.off[0], f.len[0], e.spec, sizeof(e.spec));
        fs_field(l.s + f.off[1], f.len[1], e.mountpoint, sizeof(e.mountpoint));
        if (f.n > 2)
            fs_field(l.s + f.off[2], f.len[2], e.type, sizeof(e.type));
        if (f.n > 3) {
            /* the last field may hold the rest of the line */
            size_t m = 0;
            while (m < f.len[3] && l.s[f.off[3] + m] != ' ' && l.s[f.off[3] + m] != '\t')
                m++;
            fs_field(l.s + f.off[3], m, e.options, sizeof(e.options));
        }
        int rc = cb(opaque, &e);
        if (rc)
            return rc;
    }
    return 0;
}

/* device-mapper's escaping of a VG or LV name: '-' doubled. */
static size_t fs_dm_escape(const char *s, size_t n, char *out, size_t cap, size_t o)
{
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        out[o++] = s[i];
        if (s[i] == '-')
            out[o++] = '-';
    }
    out[o] = '\0';
    return o;
}

static const struct vd_bdev *fs_by_name(const struct vd_bdev *const *devs, size_t n,
                                        const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(devs[i]->name, name))
            return devs[i];
    return NULL;
}

enum fs_key { FS_UUID, FS_LABEL, FS_PARTUUID };

static const struct vd_bdev *fs_by_key(const struct vd_bdev *const *devs, size_t n, enum fs_key key,
                                       const char *v)
{
    if (!v[0])
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct vd_bdev *b = devs[i];
        if (key == FS_UUID && b->uuid[0] && !strcasecmp(b->uuid, v) &&
            strcmp(b->fstype, "LVM2_member") != 0)
            return b;
        if (key == FS_LABEL && b->label[0] && !strcmp(b->label, v))
            return b;
        if (key == FS_PARTUUID && b->part_uuid && b->part_uuid[0] && !strcasecmp(b->part_uuid, v))
            return b;
    }
    return NULL;
}

/* udev's by-label links escape a space as \x20. */
static void fs_unhex(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 1 < cap; i++) {
        if (s[i] == '\\' && s[i + 1] == 'x' && isxdigit((unsigned char)s[i + 2]) &&
            isxdigit((unsigned char)s[i + 3])) {
            char h[3] = {s[i + 2], s[i + 3], 0};
            out[o++] = (char)strtoul(h, NULL, 16);
            i += 3;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

const struct vd_bdev *vd_ins_resolve(const struct vd_bdev *const *devs, size_t n, const char *spec)
{
    char v[VD_INS_STR];
    if (!strncmp(spec, "UUID=", 5))
        return fs_by_key(devs, n, FS_UUID, spec + 5);
    if (!strncmp(spec, "LABEL=", 6))
        return fs_by_key(devs, n, FS_LABEL, spec + 6);
    if (!strncmp(spec, "PARTUUID=", 9))
        return fs_by_key(devs, n, FS_PARTUUID, spec + 9);
    if (!strncmp(spec, "/dev/disk/by-uuid/", 18))
        return fs_by_key(devs, n, FS_UUID, spec + 18);
    if (!strncmp(spec, "/dev/disk/by-partuuid/", 22))
        return fs_by_key(devs, n, FS_PARTUUID, spec + 22);
    if (!strncmp(spec, "/dev/disk/by-label/", 19)) {
        fs_unhex(spec + 19, v, sizeof(v));
        return fs_by_key(devs, n, FS_LABEL, v);
    }
    if (!strncmp(spec, "/dev/mapper/", 12)) {
        /* the mapper name is already VG-LV with '-' doubled */
        snprintf(v, sizeof(v), "lvm-%s", spec + 12);
        return fs_by_name(devs, n, v);
    }
    unsigned disk, part;
    if (vd_fixup_parse_devpath(spec, strlen(spec), &disk, &part)) {
        if (!disk)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            const struct vd_bdev *b = devs[i];
            if (b->disk == disk && ((part == 0 && b->kind == VD_BDEV_DISK) ||
                                    (part && b->kind == VD_BDEV_PART && b->part == part)))
                return b;
        }
        return NULL;
    }
    if (!strncmp(spec, "/dev/", 5)) {
        /* /dev/VG/LV: exactly two components */
        const char *vg = spec + 5, *sl = strchr(vg, '/');
        if (!sl || sl == vg || !sl[1] || strchr(sl + 1, '/') || !strncmp(vg, "disk/", 5))
            return NULL;
        snprintf(v, sizeof(v), "lvm-");
        size_t o = fs_dm_escape(vg, (size_t)(sl - vg), v, sizeof(v), 4);
        if (o + 1 < sizeof(v)) {
            v[o++] = '-';
            v[o] = '\0';
        }
        fs_dm_escape(sl + 1, strlen(sl + 1), v, sizeof(v), o);
        return fs_by_name(devs, n, v);
    }
    return NULL;
}

const char *const vd_ins_drivers[] = {
    "nvme",       "nvme-core",   "ena",        "xen-blkfront", "xen-netfront",
    "virtio_blk", "virtio_scsi", "virtio_net", "virtio_pci",   NULL,
};

/* Module names compare with '-' and '_' as one (modprobe(8)). */
static bool fs_modeq(const char *a, size_t an, const char *b)
{
    if (strlen(b) != an)
        return false;
    for (size_t i = 0; i < an; i++) {
        char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
        if (x != y)
            return false;
    }
    return true;
}

const char *vd_ins_driver_of(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *ko = strstr(b, ".ko");
    if (!ko)
        return NULL;
    const char *ext = ko + 3;
    if (*ext && strcmp(ext, ".xz") && strcmp(ext, ".zst") && strcmp(ext, ".gz"))
        return NULL;
    for (size_t i = 0; vd_ins_drivers[i]; i++)
        if (fs_modeq(b, (size_t)(ko - b), vd_ins_drivers[i]))
            return vd_ins_drivers[i];
    return NULL;
}
