/*
 * GRUB 2 settings, following AWS VM Import/Export ("Modifying grub
 * bootloader settings such as the default entry and timeout",
 * https://docs.aws.amazon.com/vm-import/latest/userguide/import-modify-vm.html).
 * AWS names the settings but not the values: we boot the first entry
 * (GRUB_DEFAULT=0) and wait VD_FIXUP_GRUB_TIMEOUT second(s), since nobody
 * sees an EC2 instance's boot menu. console=ttyS0 is not added: no AWS
 * page we found asks for it (docs/fixup.md).
 *
 * Two files:
 *   /etc/default/grub   shell assignments read by grub-mkconfig:
 *                         GRUB_DEFAULT=saved      -> GRUB_DEFAULT=0
 *                         GRUB_TIMEOUT=5          -> GRUB_TIMEOUT=1
 *                         GRUB_CMDLINE_LINUX="resume=/dev/sda2"
 *                                              -> "resume=UUID=..."
 *   /boot/grub{,2}/grub.cfg  the generated menu, edited too so the image
 *                       boots right without running grub-mkconfig:
 *                         linux ... root=/dev/sda1 -> root=UUID=...
 *                         set timeout=5          -> set timeout=1
 *                         set default="${saved_entry}" -> set default="0"
 * Not handled: GRUB legacy menu.lst/grub.conf, BLS entries
 * (/boot/loader/entries), GRUB_CMDLINE_LINUX words other than root=/resume=.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixup/fixup_int.h"

static const char DEFGRUB[] = "/etc/default/grub", GRUBCFG[] = "grub.cfg";

/* Value of a shell assignment: strip quotes and a trailing comment. */
static void grub_value(const char *s, size_t n, const char **v, size_t *vn)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s++;
        n -= 2;
    }
    *v = s;
    *vn = n;
}

static bool grub_timeout_small(const char *v, size_t n)
{
    if (n == 0 || n > 3)
        return false;
    unsigned t = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        t = t * 10 + (unsigned)(v[i] - '0');
    }
    return t <= VD_FIXUP_GRUB_TIMEOUT;
}

/* Rewrite root=/dev/... and resume=/dev/... words of one line into out.
 * Returns 1 if a word changed, 0 if not, -ENOMEM. */
static int grub_cfg_devices(const struct vd_fx_line *l, const struct vd_fixup_devmap *m,
                            struct vd_fixup_buf *out, struct vd_fixup_buf *why)
{
    static const char *const keys[] = {"root=", "resume="};
    size_t i = 0, copied = 0;
    int changed = 0;
    while (i < l->len) {
        if (i > 0 && !strchr(" \t\"'", l->s[i - 1])) {
            i++;
            continue;
        }
        size_t k;
        for (k = 0; k < 2; k++)
            if (vd_fx_starts(l->s + i, l->len - i, keys[k]))
                break;
        if (k == 2) {
            i++;
            continue;
        }
        size_t vs = i + strlen(keys[k]), ve = vs;
        while (ve < l->len && !strchr(" \t\"'", l->s[ve]))
            ve++;
        unsigned disk, part;
        const struct vd_fixup_dev *d = NULL;
        if (vd_fixup_parse_devpath(l->s + vs, ve - vs, &disk, &part))
            d = vd_fixup_devmap_find(m, disk, part);
        if (d) {
            if (vd_fx_put(out, l->s + copied, vs - copied) < 0 ||
                vd_fx_printf(out, "UUID=%s", d->uuid) < 0 ||
                vd_fx_printf(why, "line %u: %.*s -> %sUUID=%s (the %s on disk %u, partition %u)\n",
                             l->no, (int)(ve - i), l->s + i, keys[k], d->uuid,
                             d->type[0] ? d->type : "filesystem", disk, part) < 0)
                return -ENOMEM;
            copied = ve;
            changed = 1;
        }
        i = ve;
    }
    if (vd_fx_put(out, l->s + copied, l->len - copied) < 0)
        return -ENOMEM;
    return changed;
}

int vd_fixup_grub_default(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                          struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, DEFGRUB, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    bool changed = false, seen_default = false, seen_timeout = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        size_t ind = vd_fx_indent(l.s, l.len);
        const char *s = l.s + ind;
        size_t n = l.len - ind;
        bool is_def = vd_fx_starts(s, n, "GRUB_DEFAULT="),
             is_to = vd_fx_starts(s, n, "GRUB_TIMEOUT=");
        if (is_def || is_to) {
            size_t klen = sizeof("GRUB_DEFAULT=") - 1; /* = GRUB_TIMEOUT='s */
            const char *v;
            size_t vn;
            grub_value(s + klen, n - klen, &v, &vn);
            seen_default |= is_def;
            seen_timeout |= is_to;
            bool ok = is_def ? (vn == 1 && v[0] == '0') : grub_timeout_small(v, vn);
            if (!ok) {
                if (vd_fx_put(out, l.s, ind + klen) < 0 ||
                    vd_fx_printf(out, "%u%s", is_def ? 0 : VD_FIXUP_GRUB_TIMEOUT, l.eol) < 0 ||
                    vd_fx_printf(why, "line %u: %.*s -> %.*s%u (%s)\n", l.no,
                                 (int)(n > 80 ? 80 : n), s, (int)klen, s,
                                 is_def ? 0 : VD_FIXUP_GRUB_TIMEOUT,
                                 is_def ? "boot the first menu entry"
                                        : "do not wait at a boot menu nobody sees") < 0)
                    return vd_fx_oom(err, DEFGRUB);
                changed = true;
                continue;
            }
        }
        if (vd_fx_starts(s, n, "GRUB_CMDLINE_LINUX")) {
            /* root=/resume= device names, so that a later grub-mkconfig
             * keeps the UUIDs we put in grub.cfg */
            rc = grub_cfg_devices(&l, m, out, why);
            if (rc < 0 || vd_fx_puts(out, l.eol) < 0)
                return vd_fx_oom(err, DEFGRUB);
            changed |= rc > 0;
            continue;
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, DEFGRUB);
    }
    const char *eol = vd_fx_eol_of(buf, len);
    if ((!seen_default || !seen_timeout) && out->len && out->data[out->len - 1] != '\n' &&
        vd_fx_puts(out, eol) < 0)
        return vd_fx_oom(err, DEFGRUB);
    if (!seen_default) {
        if (vd_fx_printf(out, "GRUB_DEFAULT=0%s", eol) < 0 ||
            vd_fx_puts(why, "added GRUB_DEFAULT=0 (boot the first menu entry)\n") < 0)
            return vd_fx_oom(err, DEFGRUB);
        changed = true;
    }
    if (!seen_timeout) {
        if (vd_fx_printf(out, "GRUB_TIMEOUT=%u%s", VD_FIXUP_GRUB_TIMEOUT, eol) < 0 ||
            vd_fx_printf(why, "added GRUB_TIMEOUT=%u (do not wait at a boot menu nobody sees)\n",
                         VD_FIXUP_GRUB_TIMEOUT) < 0)
            return vd_fx_oom(err, DEFGRUB);
        changed = true;
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, DEFGRUB);
    return changed;
}

int vd_fixup_grub_cfg(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                      struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, GRUBCFG, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    bool changed = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        size_t ind = vd_fx_indent(l.s, l.len);
        const char *s = l.s + ind;
        size_t n = l.len - ind;
        if (n && s[0] == '#')
            goto copy;
        if (vd_fx_starts(s, n, "set timeout=") || vd_fx_starts(s, n, "set default=")) {
            bool to = s[4] == 't';
            const char *v;
            size_t vn;
            grub_value(s + 12, n - 12, &v, &vn);
            bool keep = to ? grub_timeout_small(v, vn)
                           : (vn == 1 && v[0] == '0') || memmem(v, vn, "next_entry", 10);
            if (!keep) {
                if (vd_fx_put(out, l.s, ind + 12) < 0 ||
                    (to ? vd_fx_printf(out, "%u%s", VD_FIXUP_GRUB_TIMEOUT, l.eol)
                        : vd_fx_printf(out, "\"0\"%s", l.eol)) < 0 ||
                    vd_fx_printf(why, "line %u: %.*s -> %.12s%s (%s)\n", l.no,
                                 (int)(n > 80 ? 80 : n), s, s, to ? "1" : "\"0\"",
                                 to ? "do not wait at a boot menu nobody sees"
                                    : "boot the first menu entry") < 0)
                    return vd_fx_oom(err, GRUBCFG);
                changed = true;
                continue;
            }
            goto copy;
        }
        rc = grub_cfg_devices(&l, m, out, why);
        if (rc < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, GRUBCFG);
        changed |= rc > 0;
        continue;
    copy:
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, GRUBCFG);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, GRUBCFG);
    return changed;
}
