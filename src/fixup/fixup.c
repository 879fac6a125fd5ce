/*
 * vd_fixup_root(): apply the AWS profile to a Linux guest tree.
 *
 * Files, all optional (a guest has some of them):
 *   etc/fstab                                  vd_fixup_fstab
 *   etc/default/grub                           vd_fixup_grub_default
 *   boot/grub/grub.cfg, boot/grub2/grub.cfg    vd_fixup_grub_cfg
 *   etc/network/interfaces                     vd_fixup_interfaces
 *   etc/sysconfig/network-scripts/ifcfg-*      vd_fixup_ifcfg
 *   etc/netplan/ *.yaml                        vd_fixup_netplan
 *   etc/udev/rules.d/70-persistent-net.rules   removed (it pins eth0 to the
 *                                              old MAC, so the new NIC would
 *                                              become eth1)
 *
 * Safety: paths are resolved with openat2(RESOLVE_IN_ROOT), so a guest's
 * absolute symlink (etc -> /etc) stays inside the guest tree and never
 * reaches the host. A file that is itself a symlink is not edited (the
 * report says so). Everything is computed in memory first; nothing is
 * written unless every rewriter succeeded. Each changed file's original
 * is kept as NAME.vdisk.orig in the same folder (the ".orig" ending is one
 * that RHEL initscripts and NetworkManager skip, so the old ifcfg-eth0
 * does not come back as a second interface); an existing backup is never
 * overwritten (NAME.vdisk.orig.2, .3... are used instead). The new text
 * goes to a temporary file, is synced, then renamed over the original
 * with the original's mode and owner.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixup/fixup_int.h"

#define FIXUP_BACKUP_SUFFIX ".vdisk.orig"
#define FIXUP_MAX_PLANS     256

enum fixup_kind { FIX_FSTAB, FIX_GRUBDEF, FIX_GRUBCFG, FIX_IFACES, FIX_IFCFG, FIX_NETPLAN };

struct fixup_plan {
    char path[512]; /* inside the guest, "/etc/fstab" */
    char name[256]; /* file name within its folder */
    int dirfd;      /* the folder, opened inside the root */
    bool remove;
    struct stat st;
    char *old;
    size_t oldlen;
    struct vd_fixup_buf new, why;
};

struct fixup_ctx {
    int rootfd;
    const char *root;
    const struct vd_fixup_devmap *map;
    struct fixup_plan plans[FIXUP_MAX_PLANS];
    size_t n;
    vd_fixup_report_cb cb;
    void *opaque;
};

static int fixup_openat2(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

/* Open folder dir (relative, inside the root): fd, or -ENOENT/-errno. */
static int fixup_open_dir(struct fixup_ctx *c, const char *dir)
{
    return fixup_openat2(c->rootfd, dir, O_RDONLY | O_DIRECTORY);
}

static void fixup_plan_free(struct fixup_plan *p)
{
    free(p->old);
    vd_fixup_buf_free(&p->new);
    vd_fixup_buf_free(&p->why);
    if (p->dirfd >= 0)
        close(p->dirfd);
    p->dirfd = -1;
}

/* Read name in dirfd into a new plan. Returns 1 if a plan was added, 0 if
 * the file is absent or not a regular file (symlink: reported), -errno. */
static int fixup_load(struct fixup_ctx *c, int dirfd, const char *dir, const char *name,
                      struct fixup_plan **out, struct vd_error *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return vd_err(err, -errno, "fixup: %s/%s/%s: %s", c->root, dir, name, strerror(errno));
    }
    if (S_ISLNK(st.st_mode) && c->cb) {
        char path[600], why[200];
        snprintf(path, sizeof(path), "/%s/%s", dir, name);
        snprintf(why, sizeof(why), "is a symbolic link; not changed (edit its target by hand)\n");
        struct vd_fixup_change ch = {.path = path, .action = "skipped", .why = why};
        c->cb(c->opaque, &ch);
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    if (c->n == FIXUP_MAX_PLANS)
        return vd_err(err, -E2BIG, "fixup: %s/%s: more than %d files to change", c->root, dir,
                      FIXUP_MAX_PLANS);
    if (st.st_size > VD_FIXUP_MAX_FILE)
        return vd_err(err, -EFBIG, "fixup: %s/%s/%s: %lld bytes, more than the %u-byte limit",
                      c->root, dir, name, (long long)st.st_size, VD_FIXUP_MAX_FILE);
    struct fixup_plan *p = &c->plans[c->n];
    memset(p, 0, sizeof(*p));
    p->dirfd = -1;
    snprintf(p->path, sizeof(p->path), "/%s/%s", dir, name);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->st = st;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return vd_err(err, -errno, "fixup: %s%s: %s", c->root, p->path, strerror(errno));
    p->old = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (p->old && got < (size_t)st.st_size) {
        ssize_t r = read(fd, p->old + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!p->old || got != (size_t)st.st_size) {
        free(p->old);
        return vd_err(err, p->old ? -EIO : -ENOMEM, "fixup: %s%s: short read", c->root, p->path);
    }
    p->oldlen = got;
    p->dirfd = dup(dirfd);
    c->n++;
    *out = p;
    return 1;
}

/* Run one rewriter over the plan; drop the plan if nothing changed. */
static int fixup_rewrite(struct fixup_ctx *c, struct fixup_plan *p, enum fixup_kind kind,
                         struct vd_error *err)
{
    int r;
    switch (kind) {
    case FIX_FSTAB:
        r = vd_fixup_fstab(p->old, p->oldlen, c->map, &p->new, &p->why, err);
        break;
    case FIX_GRUBDEF:
        r = vd_fixup_grub_default(p->old, p->oldlen, &p->new, &p->why, err);
        break;
    case FIX_GRUBCFG:
        r = vd_fixup_grub_cfg(p->old, p->oldlen, c->map, &p->new, &p->why, err);
        break;
    case FIX_IFACES:
        r = vd_fixup_interfaces(p->old, p->oldlen, &p->new, &p->why, err);
        break;
    case FIX_IFCFG:
        r = vd_fixup_ifcfg(p->old, p->oldlen, &p->new, &p->why, err);
        break;
    default:
        r = vd_fixup_netplan(p->old, p->oldlen, &p->new, &p->why, err);
        break;
    }
    if (r <= 0) {
        fixup_plan_free(p);
        c->n--;
    }
    return r < 0 ? r : 0;
}

static int fixup_file(struct fixup_ctx *c, const char *dir, const char *name, enum fixup_kind kind,
                      struct vd_error *err)
{
    int dfd = fixup_open_dir(c, dir);
    if (dfd == -ENOENT || dfd == -ENOTDIR)
        return 0;
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", c->root, dir, strerror(-dfd));
    struct fixup_plan *p;
    int r = fixup_load(c, dfd, dir, name, &p, err);
    close(dfd);
    if (r > 0)
        r = fixup_rewrite(c, p, kind, err);
    return r;
}

static bool fixup_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Every file of dir named prefix* ending in suffix (sorted by name). */
static int fixup_glob(struct fixup_ctx *c, const char *dir, const char *prefix, const char *suffix,
                      enum fixup_kind kind, struct vd_error *err)
{
    int dfd = fixup_open_dir(c, dir);
    if (dfd == -ENOENT || dfd == -ENOTDIR)
        return 0;
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", c->root, dir, strerror(-dfd));
    int rc = 0;
    DIR *dh = fdopendir(dup(dfd));
    char **names = NULL;
    size_t nn = 0;
    if (!dh) {
        rc = vd_err(err, -errno, "fixup: %s/%s: %s", c->root, dir, strerror(errno));
        goto out_dir;
    }
    struct dirent *de;
    while ((de = readdir(dh))) {
        const char *nm = de->d_name;
        if (strncmp(nm, prefix, strlen(prefix)) || !fixup_ends(nm, suffix) ||
            strstr(nm, FIXUP_BACKUP_SUFFIX) || !strcmp(nm, "ifcfg-lo"))
            continue;
        char **nl = realloc(names, (nn + 1) * sizeof(*nl));
        if (!nl || !(nl[nn] = strdup(nm))) {
            names = nl ? nl : names;
            rc = vd_err(err, -ENOMEM, "fixup: out of memory");
            break;
        }
        names = nl;
        nn++;
    }
    closedir(dh);
    for (size_t i = 0; i + 1 < nn; i++) /* few names: insertion sort */
        for (size_t j = i + 1; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < nn && rc >= 0; i++) {
        struct fixup_plan *p;
        int r = fixup_load(c, dfd, dir, names[i], &p, err);
        if (r > 0)
            r = fixup_rewrite(c, p, kind, err);
        if (r < 0)
            rc = r;
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
out_dir:
    close(dfd);
    return rc;
}

static int fixup_plan_removal(struct fixup_ctx *c, const char *dir, const char *name,
                              const char *why, struct vd_error *err)
{
    int dfd = fixup_open_dir(c, dir);
    if (dfd == -ENOENT || dfd == -ENOTDIR)
        return 0;
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", c->root, dir, strerror(-dfd));
    struct fixup_plan *p;
    int r = fixup_load(c, dfd, dir, name, &p, err);
    close(dfd);
    if (r > 0) {
        p->remove = true;
        if (fx_puts(&p->why, why) < 0)
            return vd_err(err, -ENOMEM, "fixup: out of memory");
    }
    return r < 0 ? r : 0;
}

static int fixup_write_all(int dirfd, const char *name, const char *data, size_t len, mode_t mode)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0) {
            int e = -errno;
            close(fd);
            unlinkat(dirfd, name, 0);
            return e;
        }
        done += (size_t)w;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        int e = -errno;
        close(fd);
        unlinkat(dirfd, name, 0);
        return e;
    }
    close(fd);
    return 0;
}

/* Write the backup: NAME.vdisk.orig, or .2, .3... if taken. */
static int fixup_backup(struct fixup_plan *p, char *bname, size_t cap)
{
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(bname, cap, "%s%s", p->name, FIXUP_BACKUP_SUFFIX);
        else
            snprintf(bname, cap, "%s%s.%d", p->name, FIXUP_BACKUP_SUFFIX, i);
        int r;
        if (p->remove)
            r = renameat2(p->dirfd, p->name, p->dirfd, bname, RENAME_NOREPLACE) < 0 ? -errno : 0;
        else
            r = fixup_write_all(p->dirfd, bname, p->old, p->oldlen, p->st.st_mode & 07777);
        if (r != -EEXIST) {
            if (r == 0 && !p->remove)
                (void)fchownat(p->dirfd, bname, p->st.st_uid, p->st.st_gid, AT_SYMLINK_NOFOLLOW);
            return r;
        }
    }
    return -EEXIST;
}

static int fixup_apply(struct fixup_ctx *c, struct fixup_plan *p, bool dry_run,
                       struct vd_error *err)
{
    struct vd_fixup_change ch = {.path = p->path,
                                 .action = p->remove ? "removed" : "rewritten",
                                 .why = p->why.data ? p->why.data : ""};
    struct vd_fixup_buf diff = {0};
    char bname[300], tname[300];
    int r = 0;
    if (dry_run) {
        r = vd_fixup_diff(p->old, p->oldlen, p->remove ? "" : p->new.data,
                          p->remove ? 0 : p->new.len, &diff, err);
        if (r < 0)
            return r;
        ch.diff = diff.data;
        if (c->cb)
            c->cb(c->opaque, &ch);
        vd_fixup_buf_free(&diff);
        return 0;
    }
    r = fixup_backup(p, bname, sizeof(bname));
    if (r < 0)
        return vd_err(err, r, "fixup: %s%s: cannot keep the original: %s", c->root, p->path,
                      strerror(-r));
    ch.backup = bname;
    if (!p->remove) {
        snprintf(tname, sizeof(tname), ".%s.vdisk-tmp", p->name);
        unlinkat(p->dirfd, tname, 0);
        r = fixup_write_all(p->dirfd, tname, p->new.data, p->new.len, p->st.st_mode & 07777);
        if (r == 0) {
            (void)fchownat(p->dirfd, tname, p->st.st_uid, p->st.st_gid, AT_SYMLINK_NOFOLLOW);
            if (renameat(p->dirfd, tname, p->dirfd, p->name) < 0) {
                r = -errno;
                unlinkat(p->dirfd, tname, 0);
            }
        }
        if (r < 0)
            return vd_err(err, r,
                          "fixup: %s%s: writing the new file: %s (the original is kept "
                          "as %s)",
                          c->root, p->path, strerror(-r), bname);
        fsync(p->dirfd);
    }
    if (c->cb)
        c->cb(c->opaque, &ch);
    return 0;
}

int vd_fixup_root(const char *root, const struct vd_fixup_devmap *m,
                  const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                  struct vd_error *err)
{
    if (opts && opts->profile && strcmp(opts->profile, "aws"))
        return vd_err(err, -ENOTSUP, "fixup: profile '%s' is not known (only 'aws')",
                      opts->profile);
    struct fixup_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return vd_err(err, -ENOMEM, "fixup: out of memory");
    c->root = root;
    c->map = m;
    c->cb = cb;
    c->opaque = opaque;
    int rc = 0;
    c->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->rootfd < 0) {
        rc = vd_err(err, -errno, "fixup: %s: %s", root, strerror(errno));
        goto out_ctx;
    }
    struct stat st;
    if (fstatat(c->rootfd, "etc", &st, 0) < 0 || !S_ISDIR(st.st_mode)) {
        rc = vd_err(err, -ENOENT, "fixup: %s: not a Linux root filesystem (no etc folder)", root);
        goto out_root;
    }
    if ((rc = fixup_file(c, "etc", "fstab", FIX_FSTAB, err)) < 0 ||
        (rc = fixup_file(c, "etc/default", "grub", FIX_GRUBDEF, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub", "grub.cfg", FIX_GRUBCFG, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub2", "grub.cfg", FIX_GRUBCFG, err)) < 0 ||
        (rc = fixup_file(c, "etc/network", "interfaces", FIX_IFACES, err)) < 0 ||
        (rc = fixup_glob(c, "etc/sysconfig/network-scripts", "ifcfg-", "", FIX_IFCFG, err)) < 0 ||
        (rc = fixup_glob(c, "etc/netplan", "", ".yaml", FIX_NETPLAN, err)) < 0 ||
        (rc = fixup_plan_removal(c, "etc/udev/rules.d", "70-persistent-net.rules",
                                 "it ties interface names to the old NICs' MAC addresses, so "
                                 "the new NIC would not be eth0\n",
                                 err)) < 0)
        goto out_plans;
    for (size_t i = 0; i < c->n && rc >= 0; i++)
        rc = fixup_apply(c, &c->plans[i], opts && opts->dry_run, err);
    if (rc >= 0)
        rc = (int)c->n;
out_plans:
    for (size_t i = 0; i < c->n; i++)
        fixup_plan_free(&c->plans[i]);
out_root:
    close(c->rootfd);
out_ctx:
    free(c);
    return rc;
}
