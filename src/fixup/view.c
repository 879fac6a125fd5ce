/*
 * Fixup on a vdiskfs view folder (MNT/name), with nothing mounted by the
 * user: find the guest's root among the view's block device files, open
 * it and the filesystem its fstab mounts at /boot, and run the profile
 * over the two as one tree.
 *
 *   MNT/name/disk-p1.raw        ext4 /boot   --libext2fs-->  boot/...
 *   MNT/name/lvm-rhel-root.raw  xfs  /       --loop mount--> /, etc/...
 *
 * Block device files: partitions (diskN-pM.raw), LVM logical volumes
 * (lvm-VG-LV.raw) and whole disks (diskN.raw), probed with libblkid.
 *   - ext2/3/4 is edited with libext2fs on the file itself (ext2.c);
 *   - XFS and btrfs have no library that writes them, so the kernel does:
 *     a loop mount of the view file (libmount; XFS with nouuid, as the
 *     host may have mounted a filesystem with the same UUID, and for a dry
 *     run ro,norecovery so nothing is written), edited through the --root
 *     code (fixup.c) and unmounted. That needs root; the message says so.
 *     A btrfs root may live in a subvolume: the top level, "@" (Ubuntu,
 *     SUSE) and "root" (Fedora) are tried.
 * The root is the first filesystem holding etc/fstab (partitions in disk
 * order, then volumes, then whole disks). /boot is resolved from that
 * fstab: UUID=, LABEL=, /dev/disk/by-uuid/, /dev/mapper/VG-LV, /dev/VG/LV
 * and kernel names (/dev/sda1).
 */
#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_LIBMOUNT
#include <libmount.h>
#endif

#include "fixup/fixup_int.h"

#define VIEW_MAX_DEVS 512

struct view_dev {
    char name[256]; /* file name in the view */
    char path[PATH_MAX];
    char type[32], uuid[64], label[64];
    unsigned disk, part; /* from the name; disk 0 for a volume */
    int rank;            /* 0 partition, 1 volume, 2 whole disk */
};

/* An opened filesystem: through libext2fs, or a loop mount at mnt. */
struct view_fs {
    struct vd_fx_fs *fs;
    bool e2;
    char mnt[64]; /* "" when not mounted */
    const struct view_dev *dev;
};

static bool view_is_lv(const char *n)
{
    size_t len = strlen(n);
    return len > 8 && !strncmp(n, "lvm-", 4) && !strcmp(n + len - 4, ".raw");
}

static void view_probe(struct view_dev *d)
{
    blkid_probe pr = blkid_new_probe_from_filename(d->path);
    if (!pr)
        return;
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr,
                                      BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
    if (blkid_do_safeprobe(pr) == 0) {
        const char *v;
        if (!blkid_probe_lookup_value(pr, "TYPE", &v, NULL))
            snprintf(d->type, sizeof(d->type), "%s", v);
        if (!blkid_probe_lookup_value(pr, "UUID", &v, NULL))
            snprintf(d->uuid, sizeof(d->uuid), "%s", v);
        if (!blkid_probe_lookup_value(pr, "LABEL", &v, NULL))
            snprintf(d->label, sizeof(d->label), "%s", v);
    }
    blkid_free_probe(pr);
}

static int view_cmp(const void *a, const void *b)
{
    const struct view_dev *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    if (x->disk != y->disk)
        return x->disk < y->disk ? -1 : 1;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The view's block device files, probed and in root-search order. */
static int view_scan(const char *dir, struct view_dev **out, size_t *n, struct vd_error *err)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return vd_err(err, -errno, "fixup: %s: %s", dir, strerror(errno));
    struct view_dev *v = calloc(VIEW_MAX_DEVS, sizeof(*v));
    if (!v) {
        closedir(dh);
        return vd_err(err, -ENOMEM, "fixup: out of memory");
    }
    size_t k = 0;
    struct dirent *de;
    while ((de = readdir(dh)) && k < VIEW_MAX_DEVS) {
        unsigned disk = 0, part = 0;
        bool lv = view_is_lv(de->d_name);
        if (!lv && !vd_fx_view_name(de->d_name, &disk, &part))
            continue;
        struct view_dev *d = &v[k];
        if (strlen(de->d_name) >= sizeof(d->name) ||
            (size_t)snprintf(d->path, sizeof(d->path), "%s/%s", dir, de->d_name) >= sizeof(d->path))
            continue;
        strcpy(d->name, de->d_name);
        d->disk = disk;
        d->part = part;
        d->rank = lv ? 1 : part ? 0 : 2;
        view_probe(d);
        k++;
    }
    closedir(dh);
    qsort(v, k, sizeof(*v), view_cmp);
    *out = v;
    *n = k;
    return 0;
}

static bool view_is_ext(const char *t)
{
    return !strcmp(t, "ext2") || !strcmp(t, "ext3") || !strcmp(t, "ext4");
}

static bool view_is_kernel_fs(const char *t)
{
    return !strcmp(t, "xfs") || !strcmp(t, "btrfs");
}

#ifdef HAVE_LIBMOUNT
/* Loop-mount dev at a new private folder (into mnt). */
static int view_mount(const struct view_dev *d, bool rw, char *mnt, size_t cap,
                      struct vd_error *err)
{
    if (geteuid() != 0)
        return vd_err(err, -EPERM,
                      "fixup: %s: %s is edited through a kernel loop mount, which needs root; "
                      "run vdisk fixup as root, or mount it yourself and use --root DIR",
                      d->path, d->type);
    snprintf(mnt, cap, "/tmp/vdisk-fixup.XXXXXX");
    if (!mkdtemp(mnt))
        return vd_err(err, -errno, "fixup: a mount folder in /tmp: %s", strerror(errno));
    bool xfs = !strcmp(d->type, "xfs");
    const char *opts =
        xfs ? (rw ? "loop,nouuid" : "loop,ro,norecovery,nouuid") : (rw ? "loop" : "loop,ro");
    struct libmnt_context *cxt = mnt_new_context();
    int rc = 0;
    if (!cxt || mnt_context_set_source(cxt, d->path) || mnt_context_set_target(cxt, mnt) ||
        mnt_context_set_fstype(cxt, d->type) || mnt_context_set_options(cxt, opts)) {
        rc = vd_err(err, -ENOMEM, "fixup: out of memory");
    } else {
        int r = mnt_context_mount(cxt);
        if (r != 0) {
            char msg[256] = "";
            mnt_context_get_excode(cxt, r, msg, sizeof(msg));
            rc = vd_err(err, -EIO, "fixup: %s: loop-mounting its %s (%s) failed: %s", d->path,
                        d->type, opts, msg[0] ? msg : "no reason given");
        }
    }
    mnt_free_context(cxt);
    if (rc < 0) {
        rmdir(mnt);
        mnt[0] = '\0';
    }
    return rc;
}

static int view_umount(char *mnt, struct vd_error *err)
{
    if (!mnt[0])
        return 0;
    struct libmnt_context *cxt = mnt_new_context();
    int rc = 0;
    if (!cxt || mnt_context_set_target(cxt, mnt) || mnt_context_umount(cxt) != 0)
        rc = vd_err(err, -EBUSY,
                    "fixup: %s: unmounting the loop mount failed; unmount it by hand "
                    "(umount %s) before unmounting the view",
                    mnt, mnt);
    mnt_free_context(cxt);
    if (rc == 0)
        rmdir(mnt);
    mnt[0] = '\0';
    return rc;
}
#else
static int view_mount(const struct view_dev *d, bool rw, char *mnt, size_t cap,
                      struct vd_error *err)
{
    return vd_err(err, -ENOTSUP,
                  "fixup: %s: %s needs a loop mount and vdisk was built without libmount; "
                  "mount it yourself and use --root DIR",
                  d->path, d->type);
}

static int view_umount(char *mnt, struct vd_error *err)
{
    return 0;
}
#endif

/* Where a btrfs root may sit: the top level or a distribution's subvolume. */
static const char *const BTRFS_SUBVOLS[] = {"", "@", "root", "@rootfs"};

/* Whether the mounted tree at mnt holds etc/fstab; the subfolder into sub. */
static bool view_tree_has_fstab(const char *mnt, const char *type, const char **sub)
{
    size_t nsub = !strcmp(type, "btrfs") ? sizeof(BTRFS_SUBVOLS) / sizeof(BTRFS_SUBVOLS[0]) : 1;
    for (size_t i = 0; i < nsub; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s%setc/fstab", mnt, BTRFS_SUBVOLS[i],
                 BTRFS_SUBVOLS[i][0] ? "/" : "");
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            *sub = BTRFS_SUBVOLS[i];
            return true;
        }
    }
    return false;
}

static int view_close(struct view_fs *o, struct vd_error *err)
{
    int rc = 0;
    if (o->e2)
        rc = vd_fx_e2_close(o->fs, err);
    else if (o->fs)
        vd_fx_host_close(o->fs);
    o->fs = NULL;
    int r2 = view_umount(o->mnt, err);
    return rc < 0 ? rc : r2;
}

/* Open d (read-only, or rw); need names a file its tree must hold (the
 * root's etc/fstab), or NULL. Returns 1 if opened, 0 if need is absent. */
static int view_open(const struct view_dev *d, bool rw, const char *need, struct view_fs *o,
                     struct vd_error *err)
{
    memset(o, 0, sizeof(*o));
    o->dev = d;
    if (view_is_ext(d->type)) {
        if (need && !vd_fx_e2_has(d->path, need))
            return 0;
        o->e2 = true;
        int rc = vd_fx_e2_open(d->path, rw, &o->fs, err);
        return rc < 0 ? rc : 1;
    }
    if (!view_is_kernel_fs(d->type))
        return vd_err(err, -ENOTSUP, "fixup: %s: %s is not edited (ext2/3/4, XFS and btrfs are)",
                      d->path, d->type[0] ? d->type : "an unknown filesystem");
    int rc = view_mount(d, rw, o->mnt, sizeof(o->mnt), err);
    if (rc < 0)
        return rc;
    const char *sub = "";
    if (need && !view_tree_has_fstab(o->mnt, d->type, &sub)) {
        view_umount(o->mnt, err);
        return 0;
    }
    char top[PATH_MAX];
    snprintf(top, sizeof(top), "%s%s%s", o->mnt, sub[0] ? "/" : "", sub);
    rc = vd_fx_host_open(top, &o->fs, err);
    if (rc < 0) {
        view_umount(o->mnt, err);
        return rc;
    }
    return 1;
}

/* The view file an fstab spec names, or NULL. */
static const struct view_dev *view_resolve(const struct view_dev *v, size_t n, const char *spec)
{
    const char *uuid = NULL, *label = NULL;
    if (!strncmp(spec, "UUID=", 5))
        uuid = spec + 5;
    else if (!strncmp(spec, "/dev/disk/by-uuid/", 18))
        uuid = spec + 18;
    else if (!strncmp(spec, "LABEL=", 6))
        label = spec + 6;
    else if (!strncmp(spec, "/dev/disk/by-label/", 19))
        label = spec + 19;
    char lvname[300] = "";
    if (!strncmp(spec, "/dev/mapper/", 12)) {
        /* device-mapper names double a '-' inside VG and LV, as ours do */
        snprintf(lvname, sizeof(lvname), "lvm-%s.raw", spec + 12);
    } else if (!strncmp(spec, "/dev/", 5) && !uuid && !label) {
        const char *vg = spec + 5, *slash = strchr(vg, '/');
        if (slash && !strchr(slash + 1, '/')) {
            size_t k = (size_t)snprintf(lvname, sizeof(lvname), "lvm-");
            for (const char *p = vg; *p && k + 3 < sizeof(lvname); p++) {
                if (p == slash) {
                    lvname[k++] = '-';
                    continue;
                }
                lvname[k++] = *p;
                if (*p == '-')
                    lvname[k++] = '-';
            }
            snprintf(lvname + k, sizeof(lvname) - k, ".raw");
        }
    }
    unsigned disk, part;
    bool kname = vd_fixup_parse_devpath(spec, strlen(spec), &disk, &part);
    for (size_t i = 0; i < n; i++) {
        const struct view_dev *d = &v[i];
        if ((uuid && d->uuid[0] && !strcasecmp(d->uuid, uuid)) ||
            (label && d->label[0] && !strcmp(d->label, label)) ||
            (lvname[0] && !strcmp(d->name, lvname)) ||
            (kname && d->rank != 1 && d->disk == disk && d->part == part))
            return d;
    }
    return NULL;
}

/* The spec fstab mounts at mp ("/boot"), into spec; false if none. */
static bool view_fstab_spec(const char *buf, size_t len, const char *mp, char *spec, size_t cap)
{
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n < 2 || l.s[f.off[0]] == '#' || !vd_fx_field_is(l.s, &f, 1, mp))
            continue;
        size_t sn = f.len[0];
        if (sn >= cap)
            return false;
        memcpy(spec, l.s + f.off[0], sn);
        spec[sn] = '\0';
        return true;
    }
    return false;
}

/* ---- the two filesystems as one tree ---- */

struct view_tree {
    struct vd_fx_fs *root, *boot;
};

/* The filesystem a guest folder lives on, and the folder within it. */
static struct vd_fx_fs *view_route(struct vd_fx_fs *x, const char *dir, const char **sub)
{
    struct view_tree *t = x->priv;
    if (t->boot && !strncmp(dir, "boot", 4) && (dir[4] == '\0' || dir[4] == '/')) {
        *sub = dir[4] ? dir + 5 : ".";
        return t->boot;
    }
    *sub = dir;
    return t->root;
}

static int vt_load(struct vd_fx_fs *x, const char *dir, const char *name, struct vd_fx_file *f,
                   bool *is_link, struct vd_error *err)
{
    const char *sub;
    struct vd_fx_fs *fs = view_route(x, dir, &sub);
    return fs->ops->load(fs, sub, name, f, is_link, err);
}

static int vt_list(struct vd_fx_fs *x, const char *dir, char ***names, size_t *n,
                   struct vd_error *err)
{
    const char *sub;
    struct vd_fx_fs *fs = view_route(x, dir, &sub);
    return fs->ops->list(fs, sub, names, n, err);
}

static int vt_create(struct vd_fx_fs *x, const char *dir, const char *name, const char *data,
                     size_t len, const struct vd_fx_file *like, struct vd_error *err)
{
    const char *sub;
    struct vd_fx_fs *fs = view_route(x, dir, &sub);
    return fs->ops->create(fs, sub, name, data, len, like, err);
}

static int vt_replace(struct vd_fx_fs *x, const char *dir, const char *name, const char *data,
                      size_t len, const struct vd_fx_file *like, struct vd_error *err)
{
    const char *sub;
    struct vd_fx_fs *fs = view_route(x, dir, &sub);
    return fs->ops->replace(fs, sub, name, data, len, like, err);
}

static int vt_rename(struct vd_fx_fs *x, const char *dir, const char *from, const char *to,
                     struct vd_error *err)
{
    const char *sub;
    struct vd_fx_fs *fs = view_route(x, dir, &sub);
    return fs->ops->rename(fs, sub, from, to, err);
}

static const struct vd_fx_fs_ops view_tree_ops = {
    .load = vt_load,
    .list = vt_list,
    .create = vt_create,
    .replace = vt_replace,
    .rename = vt_rename,
};

static void view_report(vd_fixup_report_cb cb, void *opaque, const struct view_fs *o,
                        const char *role, const char *spec)
{
    if (!cb)
        return;
    char why[400];
    if (o->e2 && !spec)
        snprintf(why, sizeof(why), "the root filesystem (ext2/3/4, edited with libext2fs)\n");
    else if (o->e2)
        snprintf(why, sizeof(why), "%s (%s, fstab's %s; edited with libext2fs)\n", role,
                 o->dev->type, spec);
    else
        snprintf(why, sizeof(why), "%s (%s%s%s; edited through a loop mount at %s)\n", role,
                 o->dev->type, spec ? ", fstab's " : "", spec ? spec : "", o->mnt);
    struct vd_fixup_change ch = {.path = o->dev->path, .action = "root", .why = why};
    cb(opaque, &ch);
}

int vd_fixup_view(const char *view, const struct vd_fixup_devmap *m,
                  const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                  struct vd_error *err)
{
    bool dry = opts && opts->dry_run;
    struct view_dev *v = NULL;
    size_t n = 0;
    int rc = view_scan(view, &v, &n, err);
    if (rc < 0)
        return rc;
    /* The root: the first filesystem holding etc/fstab, looked at
     * read-only (a kernel filesystem that cannot be looked at without root
     * is remembered for the message). */
    struct view_fs root = {0}, boot = {0};
    const struct view_dev *rootdev = NULL, *unseen = NULL;
    struct vd_error first = {0}; /* why a filesystem with etc/fstab could not be opened */
    for (size_t i = 0; i < n && !rootdev; i++) {
        if (!view_is_ext(v[i].type) && !view_is_kernel_fs(v[i].type))
            continue;
        if (view_is_kernel_fs(v[i].type) && geteuid() != 0) {
            unseen = unseen ? unseen : &v[i];
            continue;
        }
        struct vd_error e2 = {0};
        int r = view_open(&v[i], false, "etc/fstab", &root, &e2);
        if (r > 0) {
            rootdev = &v[i];
            view_close(&root, &e2);
        } else if (r < 0 && !first.code && r != -ENOTSUP) {
            first = e2;
        }
    }
    if (!rootdev) {
        if (first.code)
            rc = vd_err(err, first.code, "%s", first.msg);
        else if (unseen)
            rc = vd_err(err, -EPERM,
                        "fixup: %s: no ext2/3/4 filesystem with /etc/fstab in this view, and "
                        "%s holds %s, which is looked at through a kernel loop mount: run vdisk "
                        "fixup as root, or mount the root yourself and use --root DIR",
                        view, unseen->name, unseen->type);
        else
            rc = vd_err(err, -ENOENT,
                        "fixup: %s: no ext2/3/4, XFS or btrfs filesystem with /etc/fstab in this "
                        "view; mount the root filesystem and use --root DIR",
                        view);
        goto out;
    }
    if (!dry) {
        int fd = open(rootdev->path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            rc = vd_err(err, errno == EROFS || errno == EACCES || errno == EPERM ? -EROFS : -errno,
                        "fixup: %s: the view is read-only (%s); mount the source with vdiskfs "
                        "-o overlay=FILE (any source; the edits go to FILE, the source stays "
                        "untouched) or -o rw (a local VMDK, VHD, VHDX or raw file, edited in "
                        "place), or mount the root filesystem and use --root DIR",
                        rootdev->path, strerror(errno));
            goto out;
        }
        close(fd);
    }
    rc = view_open(rootdev, !dry, NULL, &root, err);
    if (rc < 0)
        goto out;
    view_report(cb, opaque, &root, "the root filesystem", NULL);
    /* A separate /boot, from the root's fstab. */
    struct vd_fx_file f = {0};
    bool is_link = false;
    char spec[256];
    int r = root.fs->ops->load(root.fs, "etc", "fstab", &f, &is_link, err);
    if (r < 0) {
        rc = r;
        goto out_root;
    }
    const struct view_dev *bootdev = NULL;
    if (r > 0 && view_fstab_spec(f.data, f.len, "/boot", spec, sizeof(spec)))
        bootdev = view_resolve(v, n, spec);
    free(f.data);
    if (bootdev && bootdev != rootdev) {
        rc = view_open(bootdev, !dry, NULL, &boot, err);
        if (rc < 0)
            goto out_root;
        view_report(cb, opaque, &boot, "/boot", spec);
    }
    struct view_tree t = {.root = root.fs, .boot = boot.fs};
    struct vd_fx_fs x = {.ops = &view_tree_ops, .label = rootdev->path, .priv = &t};
    rc = vd_fx_fixup_fs(&x, m, opts, cb, opaque, err);
    if (boot.dev) {
        int r2 = view_close(&boot, err);
        if (rc >= 0 && r2 < 0)
            rc = r2;
    }
out_root:;
    int r3 = view_close(&root, err);
    if (rc >= 0 && r3 < 0)
        rc = r3;
out:
    free(v);
    return rc;
}
