/*
 * The fixup driver: which guest files the AWS profile edits, and how each
 * edit is made safe. The rewriters (fstab.c, grub.c, network.c) decide the
 * new text; this file reads the files, keeps originals and writes results
 * through a small filesystem vtable (struct vd_fx_fs_ops): a host folder here
 * (--root DIR), an ext2/3/4 image in ext2.c (a vdiskfs view, no mount).
 *
 * Files, all optional (a guest has some of them):
 *   etc/fstab                                  vd_fixup_fstab
 *   etc/default/grub                           vd_fixup_grub_default
 *   boot/grub/grub.cfg, boot/grub2/grub.cfg    vd_fixup_grub_cfg
 *   boot/loader/entries/NAME.conf              vd_fixup_bls_entry
 *   boot/grub2/grubenv, boot/grub/grubenv      vd_fixup_grubenv
 *   boot/grub/menu.lst, boot/grub/grub.conf    vd_fixup_grub_legacy
 *   etc/network/interfaces                     vd_fixup_interfaces
 *   etc/sysconfig/network-scripts/ifcfg-*      vd_fixup_ifcfg
 *   etc/sysconfig/network/ifcfg-*              vd_fixup_ifcfg, SUSE wicked:
 *                                              the primary one renamed to
 *                                              ifcfg-eth0
 *   etc/netplan/NAME.yaml                      vd_fixup_netplan
 *   etc/systemd/network/NAME.network           vd_fixup_networkd
 *   etc/NetworkManager/system-connections/NAME vd_fixup_nmconnection
 *   etc/systemd/network/NAME.link              removed when it matches a
 *                                              MAC address (the old NIC's)
 *   etc/udev/rules.d/70-persistent-net.rules   removed (it pins eth0 to the
 *                                              old MAC, so the new NIC would
 *                                              become eth1)
 *
 * Safety: on a host folder, paths are resolved with openat2
 * (RESOLVE_IN_ROOT), so a guest's absolute symlink (etc -> /etc) stays
 * inside the guest tree and never reaches the host. A file that is itself
 * a symlink is not edited (the report says so). Everything is computed in
 * memory first; nothing is written unless every rewriter succeeded. Each
 * changed file's original is kept as NAME.vdisk.orig in the same folder
 * (an ".orig" ending, which RHEL initscripts and NetworkManager skip, so
 * the old ifcfg-eth0 does not come back as a second interface); an
 * existing backup is never overwritten (NAME.vdisk.orig.2, .3... instead).
 * On a host folder the new text goes to a temporary file, is synced, then
 * renamed over the original with the original's mode and owner.
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

enum fixup_kind {
    FIX_FSTAB,
    FIX_GRUBDEF,
    FIX_GRUBCFG,
    FIX_BLS,
    FIX_GRUBENV,
    FIX_LEGACY,
    FIX_IFACES,
    FIX_IFCFG,
    FIX_WICKED,
    FIX_NETPLAN,
    FIX_NETWORKD,
    FIX_NMCONN,
    FIX_LINK,
};

struct fixup_plan {
    char dir[128];  /* inside the guest, "etc" */
    char name[256]; /* file name within dir */
    char path[400]; /* "/etc/fstab", for reports */
    bool remove;
    char rename_to[64]; /* with remove: the new content goes to this name */
    struct vd_fx_file old;
    struct vd_fixup_buf new, why;
};

struct fixup_ctx {
    struct vd_fx_fs *fs;
    const struct vd_fixup_devmap *map;
    struct fixup_plan plans[FIXUP_MAX_PLANS];
    size_t n;
    vd_fixup_report_cb cb;
    void *opaque;
    bool boot_in_fstab;      /* fstab mounts a separate /boot */
    struct vd_fixup_nic nic; /* a network config names the primary NIC */
    bool grubcfg_seen;       /* a grub.cfg was found (changed or not) */
};

static void fixup_plan_free(struct fixup_plan *p)
{
    free(p->old.data);
    p->old.data = NULL;
    vd_fixup_buf_free(&p->new);
    vd_fixup_buf_free(&p->why);
}

/* Load dir/name into a new plan. 1 if added, 0 if absent or not a
 * regular file (a symlink is reported as skipped), -errno. *out is the
 * plan when 1, NULL otherwise: vd_err() and the fs ops live in other
 * files, so the compiler cannot prove they only return <= 0 there. */
static int fixup_load(struct fixup_ctx *c, const char *dir, const char *name,
                      struct fixup_plan **out, struct vd_error *err)
{
    *out = NULL;
    if (c->n == FIXUP_MAX_PLANS)
        return vd_err(err, -E2BIG, "fixup: %s: more than %d files to change", c->fs->label,
                      FIXUP_MAX_PLANS);
    struct fixup_plan *p = &c->plans[c->n];
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "%s", dir);
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->path, sizeof(p->path), "/%s/%s", dir, name);
    bool is_link = false;
    int r = c->fs->ops->load(c->fs, dir, name, &p->old, &is_link, err);
    if (r <= 0) {
        if (r == 0 && is_link && c->cb) {
            struct vd_fixup_change ch = {
                .path = p->path,
                .action = "skipped",
                .why = "is a symbolic link; not changed (edit its target by hand)\n"};
            c->cb(c->opaque, &ch);
        }
        return r;
    }
    c->n++;
    *out = p;
    return 1;
}

/* SUSE wicked (/etc/sysconfig/network/ifcfg-NAME): the ifcfg rewriter's
 * edits, but the interface is named by the file, not by DEVICE= (which
 * wicked does not read). So the primary interface's file is renamed to
 * ifcfg-eth0: the plan keeps the old one as its backup and writes the
 * new text under the new name. */
static int fixup_wicked(struct fixup_ctx *c, struct fixup_plan *p, struct vd_error *err)
{
    struct vd_fixup_nic named = {.taken = true}; /* no DEVICE= edits */
    int r = vd_fixup_ifcfg(p->old.data, p->old.len, &named, &p->new, &p->why, err);
    if (r < 0)
        return r;
    const char *x = p->name + 6; /* after "ifcfg-" */
    bool dhcp = r > 0 || strstr(p->old.data, "BOOTPROTO='dhcp") ||
                strstr(p->old.data, "BOOTPROTO=\"dhcp") || strstr(p->old.data, "BOOTPROTO=dhcp");
    bool kname = !strncmp(x, "eth", 3) && x[3] && strspn(x + 3, "0123456789") == strlen(x + 3);
    if (!dhcp)
        return r; /* a bridge, bond or other file the rewriter left alone */
    struct vd_fx_file other = {0};
    bool other_link = false;
    int e = c->fs->ops->load(c->fs, p->dir, "ifcfg-" VD_FIXUP_NIC, &other, &other_link, err);
    free(other.data);
    if (e < 0)
        return e;
    if (!c->nic.taken && strcmp(x, VD_FIXUP_NIC) != 0 && e == 0 && !other_link) {
        c->nic.taken = true;
        p->remove = true;
        snprintf(p->rename_to, sizeof(p->rename_to), "ifcfg-" VD_FIXUP_NIC);
        if (vd_fx_puts(&p->why, "renamed to ifcfg-" VD_FIXUP_NIC
                                " (the new machine's first NIC; wicked names the interface "
                                "after the file)\n") < 0)
            return vd_fx_oom(err, p->path);
        return 1;
    }
    c->nic.taken = true;
    if (!kname && vd_fx_printf(&p->why,
                               "warning: %s: the new machine will have no interface of that name "
                               "(its NICs are eth0, eth1...); left as is\n",
                               x) < 0)
        return vd_fx_oom(err, p->path);
    return r;
}

/* Run one rewriter over the plan; drop the plan if nothing changed. */
static int fixup_rewrite(struct fixup_ctx *c, struct fixup_plan *p, enum fixup_kind kind,
                         struct vd_error *err)
{
    const char *in = p->old.data;
    size_t len = p->old.len;
    int r;
    switch (kind) {
    case FIX_FSTAB:
        r = vd_fixup_fstab(in, len, c->map, &p->new, &p->why, err);
        break;
    case FIX_GRUBDEF:
        r = vd_fixup_grub_default(in, len, c->map, &p->new, &p->why, err);
        break;
    case FIX_GRUBCFG:
        r = vd_fixup_grub_cfg(in, len, c->map, &p->new, &p->why, err);
        break;
    case FIX_BLS:
        r = vd_fixup_bls_entry(in, len, c->map, &p->new, &p->why, err);
        break;
    case FIX_GRUBENV:
        r = vd_fixup_grubenv(in, len, c->map, &p->new, &p->why, err);
        break;
    case FIX_LEGACY:
        r = vd_fixup_grub_legacy(in, len, c->map, &p->new, &p->why, err);
        break;
    case FIX_IFACES:
        r = vd_fixup_interfaces(in, len, &c->nic, &p->new, &p->why, err);
        break;
    case FIX_IFCFG:
        r = vd_fixup_ifcfg(in, len, &c->nic, &p->new, &p->why, err);
        break;
    case FIX_WICKED:
        r = fixup_wicked(c, p, err);
        break;
    case FIX_NETPLAN:
        r = vd_fixup_netplan(in, len, &c->nic, &p->new, &p->why, err);
        break;
    case FIX_NETWORKD:
        r = vd_fixup_networkd(in, len, &c->nic, &p->new, &p->why, err);
        break;
    case FIX_NMCONN:
        r = vd_fixup_nmconnection(in, len, &p->new, &p->why, err);
        break;
    default: /* FIX_LINK: a .link file naming the old NIC's MAC goes */
        r = vd_fx_link_binds_mac(in, len);
        if (r) {
            p->remove = true;
            if (vd_fx_puts(&p->why, "it names the old NIC by its MAC address, which the new "
                                    "machine's NIC does not have\n") < 0)
                return vd_fx_oom(err, p->path);
        }
        break;
    }
    if (r == 0 && p->why.len && c->cb) {
        /* unchanged, but something the user should know */
        struct vd_fixup_change ch = {.path = p->path, .action = "warning", .why = p->why.data};
        c->cb(c->opaque, &ch);
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
    struct fixup_plan *p;
    int r = fixup_load(c, dir, name, &p, err);
    if (r <= 0)
        return r;
    if (kind == FIX_FSTAB)
        c->boot_in_fstab = vd_fx_fstab_mounts(p->old.data, p->old.len, "/boot");
    if (kind == FIX_GRUBCFG || kind == FIX_BLS || kind == FIX_LEGACY)
        c->grubcfg_seen = true;
    return fixup_rewrite(c, p, kind, err);
}

static bool fixup_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Names that initscripts' is_ignored_file() and NetworkManager skip:
 * editor and package-manager leftovers, never live configuration. */
static bool fixup_ignored(const char *nm)
{
    static const char *const ends[] = {"~",          ".bak",      ".old",     ".orig",
                                       ".rpmnew",    ".rpmorig",  ".rpmsave", ".dpkg-old",
                                       ".dpkg-dist", ".dpkg-new", ".augnew",  ".augtmp"};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
        if (fixup_ends(nm, ends[i]))
            return true;
    return false;
}

static int fixup_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file of dir named prefix* ending in suffix, in name order. */
static int fixup_glob(struct fixup_ctx *c, const char *dir, const char *prefix, const char *suffix,
                      enum fixup_kind kind, struct vd_error *err)
{
    char **names = NULL;
    size_t nn = 0;
    int rc = c->fs->ops->list(c->fs, dir, &names, &nn, err);
    if (rc == -ENOENT || rc == -ENOTDIR)
        return 0;
    if (rc < 0)
        return rc;
    qsort(names, nn, sizeof(*names), fixup_cmp);
    for (size_t i = 0; i < nn && rc >= 0; i++) {
        const char *nm = names[i];
        if (strncmp(nm, prefix, strlen(prefix)) || !fixup_ends(nm, suffix) ||
            strstr(nm, FIXUP_BACKUP_SUFFIX) || nm[0] == '.' || !strcmp(nm, "ifcfg-lo") ||
            fixup_ignored(nm))
            continue;
        rc = fixup_file(c, dir, nm, kind, err);
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int fixup_plan_removal(struct fixup_ctx *c, const char *dir, const char *name,
                              const char *why, struct vd_error *err)
{
    struct fixup_plan *p;
    int r = fixup_load(c, dir, name, &p, err);
    if (r > 0) {
        p->remove = true;
        if (vd_fx_puts(&p->why, why) < 0)
            return vd_err(err, -ENOMEM, "fixup: out of memory");
    }
    return r < 0 ? r : 0;
}

/* Keep the original: NAME.vdisk.orig, or .2, .3... if taken. */
static int fixup_backup(struct fixup_ctx *c, struct fixup_plan *p, char *bname, size_t cap,
                        struct vd_error *err)
{
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(bname, cap, "%s%s", p->name, FIXUP_BACKUP_SUFFIX);
        else
            snprintf(bname, cap, "%s%s.%d", p->name, FIXUP_BACKUP_SUFFIX, i);
        int r = p->remove ? c->fs->ops->rename(c->fs, p->dir, p->name, bname, err)
                          : c->fs->ops->create(c->fs, p->dir, bname, p->old.data, p->old.len,
                                               &p->old, err);
        if (r != -EEXIST)
            return r;
    }
    return vd_err(err, -EEXIST, "fixup: %s%s: 99 backups exist already", c->fs->label, p->path);
}

static int fixup_apply(struct fixup_ctx *c, struct fixup_plan *p, bool dry_run,
                       struct vd_error *err)
{
    char renamed[96];
    snprintf(renamed, sizeof(renamed), "renamed to %s", p->rename_to);
    struct vd_fixup_change ch = {.path = p->path,
                                 .action = p->rename_to[0] ? renamed
                                           : p->remove     ? "removed"
                                                           : "rewritten",
                                 .why = p->why.data ? p->why.data : ""};
    bool gone = p->remove && !p->rename_to[0];
    char bname[300];
    int r;
    if (dry_run) {
        struct vd_fixup_buf diff = {0};
        r = vd_fixup_diff(p->old.data, p->old.len, gone ? "" : p->new.data, gone ? 0 : p->new.len,
                          &diff, err);
        if (r < 0)
            return r;
        ch.diff = diff.data;
        if (c->cb)
            c->cb(c->opaque, &ch);
        vd_fixup_buf_free(&diff);
        return 0;
    }
    r = fixup_backup(c, p, bname, sizeof(bname), err);
    if (r < 0)
        return r;
    ch.backup = bname;
    if (p->rename_to[0]) {
        r = c->fs->ops->create(c->fs, p->dir, p->rename_to, p->new.data, p->new.len, &p->old, err);
        if (r == -EEXIST)
            r = vd_err(err, -EEXIST,
                       "fixup: %s/%s exists already, so %s was not renamed to it (its original "
                       "is kept as %s); merge the two by hand",
                       p->dir, p->rename_to, p->path, bname);
        if (r < 0)
            return r;
    } else if (!p->remove) {
        r = c->fs->ops->replace(c->fs, p->dir, p->name, p->new.data, p->new.len, &p->old, err);
        if (r < 0)
            return r;
    }
    if (c->cb)
        c->cb(c->opaque, &ch);
    return 0;
}

int vd_fx_fixup_fs(struct vd_fx_fs *fs, const struct vd_fixup_devmap *m,
                   const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                   struct vd_error *err)
{
    if (opts && opts->profile && strcmp(opts->profile, "aws"))
        return vd_err(err, -ENOTSUP, "fixup: profile '%s' is not known (only 'aws')",
                      opts->profile);
    struct fixup_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return vd_err(err, -ENOMEM, "fixup: out of memory");
    c->fs = fs;
    c->map = m;
    c->cb = cb;
    c->opaque = opaque;
    int rc;
    if ((rc = fixup_file(c, "etc", "fstab", FIX_FSTAB, err)) < 0 ||
        (rc = fixup_file(c, "etc/default", "grub", FIX_GRUBDEF, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub", "grub.cfg", FIX_GRUBCFG, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub2", "grub.cfg", FIX_GRUBCFG, err)) < 0 ||
        (rc = fixup_glob(c, "boot/loader/entries", "", ".conf", FIX_BLS, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub2", "grubenv", FIX_GRUBENV, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub", "grubenv", FIX_GRUBENV, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub", "menu.lst", FIX_LEGACY, err)) < 0 ||
        (rc = fixup_file(c, "boot/grub", "grub.conf", FIX_LEGACY, err)) < 0 ||
        (rc = fixup_file(c, "etc/network", "interfaces", FIX_IFACES, err)) < 0 ||
        (rc = fixup_glob(c, "etc/sysconfig/network-scripts", "ifcfg-", "", FIX_IFCFG, err)) < 0 ||
        (rc = fixup_glob(c, "etc/sysconfig/network", "ifcfg-", "", FIX_WICKED, err)) < 0 ||
        (rc = fixup_glob(c, "etc/netplan", "", ".yaml", FIX_NETPLAN, err)) < 0 ||
        (rc = fixup_glob(c, "etc/systemd/network", "", ".network", FIX_NETWORKD, err)) < 0 ||
        (rc = fixup_glob(c, "etc/NetworkManager/system-connections", "", "", FIX_NMCONN, err)) <
            0 ||
        (rc = fixup_glob(c, "etc/systemd/network", "", ".link", FIX_LINK, err)) < 0 ||
        (rc = fixup_plan_removal(c, "etc/udev/rules.d", "70-persistent-net.rules",
                                 "it ties interface names to the old NICs' MAC addresses, so "
                                 "the new NIC would not be eth0\n",
                                 err)) < 0)
        goto out_plans;
    if (c->boot_in_fstab && !c->grubcfg_seen && cb) {
        /* /boot is its own filesystem and it is not here (not mounted
         * under --root, or another partition of the view) */
        struct vd_fixup_change ch = {
            .path = "/boot",
            .action = "note",
            .why = "is a separate filesystem that is not part of this tree, so its grub.cfg was "
                   "not checked (with --root, mount it at DIR/boot and run again)\n"};
        cb(opaque, &ch);
    }
    for (size_t i = 0; i < c->n && rc >= 0; i++)
        rc = fixup_apply(c, &c->plans[i], opts && opts->dry_run, err);
    if (rc >= 0)
        rc = (int)c->n;
out_plans:
    for (size_t i = 0; i < c->n; i++)
        fixup_plan_free(&c->plans[i]);
    free(c);
    return rc;
}

/* ---- a host folder (--root DIR) ---- */

struct host_fs {
    int rootfd;
};

/* Open dir inside the root (RESOLVE_IN_ROOT): fd or -errno. */
static int host_open_dir(struct vd_fx_fs *fs, const char *dir)
{
    struct host_fs *h = fs->priv;
    struct open_how how = {
        .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, h->rootfd, dir, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

static int host_load(struct vd_fx_fs *fs, const char *dir, const char *name, struct vd_fx_file *f,
                     bool *is_link, struct vd_error *err)
{
    int dfd = host_open_dir(fs, dir);
    if (dfd == -ENOENT || dfd == -ENOTDIR)
        return 0;
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", fs->label, dir, strerror(-dfd));
    struct stat st;
    int rc = 0;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            rc = vd_err(err, -errno, "fixup: %s/%s/%s: %s", fs->label, dir, name, strerror(errno));
        goto out_dir;
    }
    *is_link = S_ISLNK(st.st_mode);
    if (!S_ISREG(st.st_mode))
        goto out_dir;
    if (st.st_size > VD_FIXUP_MAX_FILE) {
        rc = vd_err(err, -EFBIG, "fixup: %s/%s/%s: %lld bytes, more than the %u-byte limit",
                    fs->label, dir, name, (long long)st.st_size, VD_FIXUP_MAX_FILE);
        goto out_dir;
    }
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = vd_err(err, -errno, "fixup: %s/%s/%s: %s", fs->label, dir, name, strerror(errno));
        goto out_dir;
    }
    f->data = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (f->data && got < (size_t)st.st_size) {
        ssize_t r = read(fd, f->data + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!f->data || got != (size_t)st.st_size) {
        rc = vd_err(err, f->data ? -EIO : -ENOMEM, "fixup: %s/%s/%s: short read", fs->label, dir,
                    name);
        free(f->data);
        f->data = NULL;
        goto out_dir;
    }
    f->data[got] = '\0';
    f->len = got;
    f->mode = st.st_mode & 07777;
    f->uid = st.st_uid;
    f->gid = st.st_gid;
    rc = 1;
out_dir:
    close(dfd);
    return rc;
}

static int host_list(struct vd_fx_fs *fs, const char *dir, char ***names, size_t *n,
                     struct vd_error *err)
{
    int dfd = host_open_dir(fs, dir);
    if (dfd < 0)
        return dfd == -ENOENT || dfd == -ENOTDIR
                   ? dfd
                   : vd_err(err, dfd, "fixup: %s/%s: %s", fs->label, dir, strerror(-dfd));
    DIR *dh = fdopendir(dfd);
    if (!dh) {
        close(dfd);
        return vd_err(err, -errno, "fixup: %s/%s: %s", fs->label, dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *de;
    *names = NULL;
    *n = 0;
    while ((de = readdir(dh))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char **nl = realloc(*names, (*n + 1) * sizeof(*nl));
        if (!nl || !(nl[*n] = strdup(de->d_name))) {
            if (nl)
                *names = nl;
            rc = vd_err(err, -ENOMEM, "fixup: out of memory");
            break;
        }
        *names = nl;
        (*n)++;
    }
    closedir(dh);
    return rc;
}

static int host_write_new(int dfd, const char *name, const char *data, size_t len,
                          const struct vd_fx_file *like)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    int rc = 0;
    while (done < len && rc == 0) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0)
            rc = -errno;
        else
            done += (size_t)w;
    }
    /* owner first: chown clears set-id bits that fchmod then restores */
    if (rc == 0 && (fchown(fd, like->uid, like->gid) < 0 && errno != EPERM))
        rc = -errno;
    if (rc == 0 && (fchmod(fd, like->mode) < 0 || fsync(fd) < 0))
        rc = -errno;
    close(fd);
    if (rc < 0)
        unlinkat(dfd, name, 0);
    return rc;
}

static int host_create(struct vd_fx_fs *fs, const char *dir, const char *name, const char *data,
                       size_t len, const struct vd_fx_file *like, struct vd_error *err)
{
    int dfd = host_open_dir(fs, dir);
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", fs->label, dir, strerror(-dfd));
    int r = host_write_new(dfd, name, data, len, like);
    if (r < 0 && r != -EEXIST)
        vd_err(err, r, "fixup: %s/%s/%s: %s", fs->label, dir, name, strerror(-r));
    close(dfd);
    return r;
}

static int host_replace(struct vd_fx_fs *fs, const char *dir, const char *name, const char *data,
                        size_t len, const struct vd_fx_file *like, struct vd_error *err)
{
    int dfd = host_open_dir(fs, dir);
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", fs->label, dir, strerror(-dfd));
    char tmp[300];
    snprintf(tmp, sizeof(tmp), ".%s.vdisk-tmp", name);
    unlinkat(dfd, tmp, 0);
    int r = host_write_new(dfd, tmp, data, len, like);
    if (r == 0 && renameat(dfd, tmp, dfd, name) < 0) {
        r = -errno;
        unlinkat(dfd, tmp, 0);
    }
    if (r == 0)
        fsync(dfd);
    else
        vd_err(err, r, "fixup: %s/%s/%s: writing the new file: %s", fs->label, dir, name,
               strerror(-r));
    close(dfd);
    return r;
}

static int host_rename(struct vd_fx_fs *fs, const char *dir, const char *from, const char *to,
                       struct vd_error *err)
{
    int dfd = host_open_dir(fs, dir);
    if (dfd < 0)
        return vd_err(err, dfd, "fixup: %s/%s: %s", fs->label, dir, strerror(-dfd));
    int r = renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) < 0 ? -errno : 0;
    if (r < 0 && r != -EEXIST)
        vd_err(err, r, "fixup: %s/%s/%s: rename to %s: %s", fs->label, dir, from, to, strerror(-r));
    close(dfd);
    return r;
}

static const struct vd_fx_fs_ops host_ops = {
    .load = host_load,
    .list = host_list,
    .create = host_create,
    .replace = host_replace,
    .rename = host_rename,
};

int vd_fx_host_open(const char *dir, struct vd_fx_fs **out, struct vd_error *err)
{
    struct vd_fx_fs *x = calloc(1, sizeof(*x) + sizeof(struct host_fs) + strlen(dir) + 1);
    if (!x)
        return vd_err(err, -ENOMEM, "fixup: out of memory");
    struct host_fs *h = (struct host_fs *)(x + 1);
    h->rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (h->rootfd < 0) {
        int rc = vd_err(err, -errno, "fixup: %s: %s", dir, strerror(errno));
        free(x);
        return rc;
    }
    char *label = (char *)(h + 1);
    strcpy(label, dir);
    x->ops = &host_ops;
    x->label = label;
    x->priv = h;
    *out = x;
    return 0;
}

void vd_fx_host_close(struct vd_fx_fs *x)
{
    if (!x)
        return;
    close(((struct host_fs *)x->priv)->rootfd);
    free(x);
}

int vd_fixup_root(const char *root, const struct vd_fixup_devmap *m,
                  const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                  struct vd_error *err)
{
    struct host_fs h;
    h.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (h.rootfd < 0)
        return vd_err(err, -errno, "fixup: %s: %s", root, strerror(errno));
    struct stat st;
    int rc;
    if (fstatat(h.rootfd, "etc", &st, 0) < 0 || !S_ISDIR(st.st_mode)) {
        /* Windows: the SYSTEM registry hive instead (windows.c) */
        if (vd_fixup_is_windows_root(root))
            rc = vd_fixup_windows_root(root, opts, cb, opaque, err);
        else
            rc = vd_err(err, -ENOENT,
                        "fixup: %s: not a Linux root filesystem (no etc folder) nor a Windows "
                        "one (no Windows/System32/config/SYSTEM)",
                        root);
    } else {
        struct vd_fx_fs fs = {.ops = &host_ops, .label = root, .priv = &h};
        rc = vd_fx_fixup_fs(&fs, m, opts, cb, opaque, err);
    }
    close(h.rootfd);
    return rc;
}
