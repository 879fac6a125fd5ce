/*
 * /etc/fstab rewriter, following what AWS VM Import/Export documents
 * ("Programmatic modifications made to VMs by VM Import/Export",
 * https://docs.aws.amazon.com/vm-import/latest/userguide/import-modify-vm.html):
 *
 *   "Modifying /etc/fstab, commenting out invalid entries and replacing
 *    device names with UUIDs. If no matching UUID can be found for a
 *    device, the nofail option is added to the device description. [...]
 *    Entries in /etc/fstab that contain non-standard file system types
 *    (cifs, smbfs, vboxsf, sshfs, etc.) are disabled."
 *
 * fstab(5): one entry per line, fields separated by blanks:
 *
 *   <spec>       <file>  <vfstype>  <mntops>            <freq> <passno>
 *   /dev/sda1    /       ext4       errors=remount-ro   0      1
 *
 * Only the spec field of a changed line is replaced (and ",nofail"
 * inserted after mntops), so the spacing of every line is kept; comments,
 * blank lines, UUID=/LABEL=/PARTUUID= and other specs are left as they are.
 * Not handled: fstab escapes (\040) in a kernel device name (there are
 * none), /dev/disk/by-path names (left alone), LVM names (stable anyway).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixup/fixup_int.h"

static const char FSTAB[] = "/etc/fstab";

/* Removable media nodes: on an EC2 instance there is no such drive. */
static bool fstab_is_removable(const char *s, size_t n)
{
    static const char *const names[] = {"/dev/cdrom", "/dev/dvd",  "/dev/cdrw",   "/dev/floppy",
                                        "/dev/fd0",   "/dev/fd1",  "/dev/sr0",    "/dev/sr1",
                                        "/dev/scd0",  "/dev/scd1", "/dev/cdrom0", "/dev/cdrom1"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && !memcmp(s, names[i], n))
            return true;
    return false;
}

/* AWS: "non-standard file system types (cifs, smbfs, vboxsf, sshfs, etc.)
 * are disabled". */
static bool fstab_is_nonstandard(const char *s, size_t n)
{
    static const char *const types[] = {"cifs", "smbfs", "smb3", "vboxsf", "sshfs", "fuse.sshfs"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strlen(types[i]) == n && !memcmp(s, types[i], n))
            return true;
    return false;
}

/* Comment the whole line out, preceded by a line that says why. */
static int fstab_comment_out(struct vd_fixup_buf *out, const struct vd_fx_line *l,
                             const char *reason)
{
    if (vd_fx_printf(out, "# vdisk fixup: %s%s#", reason, l->eol[0] ? l->eol : "\n") < 0 ||
        vd_fx_put(out, l->s, l->len) < 0 || vd_fx_puts(out, l->eol) < 0)
        return -ENOMEM;
    return 0;
}

/* Copy the line with ",nofail" after the options (or a nofail field
 * after the type when there are only three fields). */
static int fstab_add_nofail(struct vd_fixup_buf *out, const struct vd_fx_line *l,
                            const struct vd_fx_fields *f)
{
    size_t at = f->n >= 4 ? f->off[3] + f->len[3] : f->off[2] + f->len[2];
    const char *ins = f->n >= 4 ? ",nofail" : "\tnofail";
    if (vd_fx_put(out, l->s, at) < 0 || vd_fx_puts(out, ins) < 0 ||
        vd_fx_put(out, l->s + at, l->len - at) < 0 || vd_fx_puts(out, l->eol) < 0)
        return -ENOMEM;
    return 0;
}

/* Mount points that will not be mounted on the new machine: those of
 * entries on devices that will not be there and of disabled network
 * filesystems. A bind mount from under one of them would fail. */
#define FSTAB_MAX_GONE 64
struct fstab_gone {
    size_t n;
    const char *s[FSTAB_MAX_GONE];
    size_t len[FSTAB_MAX_GONE];
};

static void fstab_collect_gone(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                               struct fstab_gone *g)
{
    size_t pos = 0;
    struct vd_fx_line l = {0};
    g->n = 0;
    while (g->n < FSTAB_MAX_GONE && vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n < 3 || l.s[f.off[0]] == '#' || l.s[f.off[1]] != '/' || f.len[1] < 2)
            continue;
        unsigned disk, part;
        bool gone = fstab_is_removable(l.s + f.off[0], f.len[0]) ||
                    fstab_is_nonstandard(l.s + f.off[2], f.len[2]) ||
                    (vd_fixup_parse_devpath(l.s + f.off[0], f.len[0], &disk, &part) &&
                     !vd_fixup_devmap_find(m, disk, part));
        if (gone) {
            g->s[g->n] = l.s + f.off[1];
            g->len[g->n++] = f.len[1];
        }
    }
}

/* The gone mount point that path (a bind source) lies under, or -1. */
static int fstab_under_gone(const struct fstab_gone *g, const char *path, size_t n)
{
    for (size_t i = 0; i < g->n; i++) {
        size_t k = g->len[i];
        while (k > 1 && g->s[i][k - 1] == '/')
            k--;
        if (n >= k && !memcmp(path, g->s[i], k) && (n == k || path[k] == '/'))
            return (int)i;
    }
    return -1;
}

bool vd_fx_fstab_mounts(const char *buf, size_t len, const char *mp)
{
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n >= 2 && l.s[f.off[0]] != '#' && vd_fx_field_is(l.s, &f, 1, mp))
            return true;
    }
    return false;
}

int vd_fixup_fstab(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                   struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, FSTAB, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    struct fstab_gone gone;
    fstab_collect_gone(buf, len, m, &gone);
    bool changed = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n < 2 || l.s[f.off[0]] == '#')
            goto copy;
        const char *spec = l.s + f.off[0], *file = l.s + f.off[1];
        int speclen = (int)f.len[0], filelen = (int)f.len[1];
        bool has_opts = f.n >= 4, is_root = vd_fx_field_is(l.s, &f, 1, "/");
        bool nofail = has_opts && vd_fx_has_opt(l.s + f.off[3], f.len[3], "nofail");
        bool noauto = has_opts && vd_fx_has_opt(l.s + f.off[3], f.len[3], "noauto");
        bool bind = has_opts && (vd_fx_has_opt(l.s + f.off[3], f.len[3], "bind") ||
                                 vd_fx_has_opt(l.s + f.off[3], f.len[3], "rbind"));

        if (f.n >= 3 && fstab_is_nonstandard(l.s + f.off[2], f.len[2]) && !is_root) {
            char reason[160];
            snprintf(reason, sizeof(reason), "disabled %.*s, a network/host-shared filesystem",
                     (int)f.len[2] > 40 ? 40 : (int)f.len[2], l.s + f.off[2]);
            if (fstab_comment_out(out, &l, reason) < 0 ||
                vd_fx_printf(why,
                             "line %u: commented out the %.*s mount of %.*s on %.*s (AWS disables "
                             "non-standard filesystem types)\n",
                             l.no, (int)f.len[2], l.s + f.off[2], speclen, spec, filelen, file) < 0)
                return vd_fx_oom(err, FSTAB);
            changed = true;
            continue;
        }

        int g = bind && !is_root ? fstab_under_gone(&gone, spec, f.len[0]) : -1;
        if (g >= 0) {
            if (fstab_comment_out(out, &l,
                                  "bind mount from a filesystem that will not be mounted") < 0 ||
                vd_fx_printf(why,
                             "line %u: commented out the bind mount of %.*s on %.*s: %.*s will not "
                             "be mounted on the new machine\n",
                             l.no, speclen, spec, filelen, file, (int)gone.len[g], gone.s[g]) < 0)
                return vd_fx_oom(err, FSTAB);
            changed = true;
            continue;
        }

        unsigned disk, part;
        bool kernel = vd_fixup_parse_devpath(spec, f.len[0], &disk, &part);
        const struct vd_fixup_dev *d = kernel ? vd_fixup_devmap_find(m, disk, part) : NULL;
        if (d) {
            if (vd_fx_put(out, l.s, f.off[0]) < 0 || vd_fx_printf(out, "UUID=%s", d->uuid) < 0 ||
                vd_fx_put(out, spec + f.len[0], l.len - f.off[0] - f.len[0]) < 0 ||
                vd_fx_puts(out, l.eol) < 0 ||
                vd_fx_printf(why, "line %u: %.*s -> UUID=%s (the %s on disk %u%s%.0u)\n", l.no,
                             speclen, spec, d->uuid, d->type[0] ? d->type : "filesystem", disk,
                             part ? ", partition " : "", part) < 0)
                return vd_fx_oom(err, FSTAB);
            /* "%.0u" prints nothing for 0; the partition number otherwise */
            changed = true;
            continue;
        }
        if (!kernel && !fstab_is_removable(spec, f.len[0]))
            goto copy;
        /* A device that will not be there on the new machine. */
        if (is_root)
            return vd_err(err, -ENOENT,
                          "fixup: %s: line %u: the root filesystem's device %.*s is not on the "
                          "given disks (no filesystem with a UUID there); nothing was changed",
                          FSTAB, l.no, speclen > 64 ? 64 : speclen, spec);
        if (bind) {
            if (fstab_comment_out(out, &l, "bind mount of a device that is not present") < 0 ||
                vd_fx_printf(why,
                             "line %u: commented out the bind mount of %.*s on %.*s: the device "
                             "will not exist on the new machine\n",
                             l.no, speclen, spec, filelen, file) < 0)
                return vd_fx_oom(err, FSTAB);
            changed = true;
            continue;
        }
        if (nofail || noauto || f.n < 3)
            goto copy;
        if (fstab_add_nofail(out, &l, &f) < 0 ||
            vd_fx_printf(why,
                         "line %u: %.*s (%.*s) %s: added nofail so boot does not wait for it\n",
                         l.no, speclen, spec, filelen, file,
                         kernel ? "is not on the given disks" : "is removable media") < 0)
            return vd_fx_oom(err, FSTAB);
        changed = true;
        continue;
    copy:
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, FSTAB);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, FSTAB);
    return changed;
}
