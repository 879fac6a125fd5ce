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
 * Both also get net.ifnames=0 biosdevname=0 on every kernel command line
 * (GRUB_CMDLINE_LINUX; each linux/linux16/linuxefi line): see
 * grub_ifnames() and network.c.
 * Not handled: GRUB legacy menu.lst/grub.conf, BLS entries
 * (/boot/loader/entries), GRUB_CMDLINE_LINUX words other than root=/resume=.
 */
#include <errno.h>
#include <stdint.h>
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

/* The kernel command line words that make the first NIC eth0 on every
 * hypervisor, whatever the old machine called it (docs/fixup.md,
 * "Interface names"): systemd's predictable names follow the PCI slot
 * and differ between VMware (ens192), KVM (ens3) and Nitro (ens5).
 * AWS's ENA guide gives net.ifnames=0 for the same reason. */
static const char *const IFNAMES_KEYS[] = {"net.ifnames=", "biosdevname="};

/* Make the words net.ifnames=0 and biosdevname=0 hold in the command line
 * s[0..n): a word already there with another value gets 0, a missing one
 * is inserted at `at` (before a closing quote, or at the end). The line
 * goes to out. Returns 1 if it changed, 0 if not, -ENOMEM. */
static int grub_ifnames(const char *s, size_t n, size_t at, unsigned lineno,
                        struct vd_fixup_buf *out, struct vd_fixup_buf *why)
{
    size_t found[2] = {SIZE_MAX, SIZE_MAX}, vlen[2] = {0, 0};
    for (size_t k = 0; k < 2; k++) {
        size_t kn = strlen(IFNAMES_KEYS[k]);
        for (size_t i = 0; i + kn <= n; i++) {
            if ((i > 0 && !strchr(" \t\"'", s[i - 1])) || memcmp(s + i, IFNAMES_KEYS[k], kn))
                continue;
            size_t e = i + kn;
            while (e < n && !strchr(" \t\"'", s[e]))
                e++;
            found[k] = i + kn; /* last one wins, as the kernel reads it */
            vlen[k] = e - (i + kn);
        }
    }
    size_t copied = 0;
    int changed = 0;
    /* Fix values in place, in line order. */
    size_t order[2] = {0, 1};
    if (found[1] < found[0]) {
        order[0] = 1;
        order[1] = 0;
    }
    for (size_t j = 0; j < 2; j++) {
        size_t k = order[j];
        if (found[k] == SIZE_MAX || (vlen[k] == 1 && s[found[k]] == '0'))
            continue;
        if (vd_fx_put(out, s + copied, found[k] - copied) < 0 || vd_fx_puts(out, "0") < 0 ||
            vd_fx_printf(why, "line %u: %s%.*s -> %s0 (the new NIC must be eth0)\n", lineno,
                         IFNAMES_KEYS[k], (int)(vlen[k] > 20 ? 20 : vlen[k]), s + found[k],
                         IFNAMES_KEYS[k]) < 0)
            return -ENOMEM;
        copied = found[k] + vlen[k];
        changed = 1;
    }
    if (found[0] == SIZE_MAX || found[1] == SIZE_MAX) {
        if (at < copied)
            at = copied;
        if (vd_fx_put(out, s + copied, at - copied) < 0)
            return -ENOMEM;
        copied = at;
        bool space = at > 0 && !strchr(" \t\"'", s[at - 1]);
        for (size_t k = 0; k < 2; k++) {
            if (found[k] != SIZE_MAX)
                continue;
            if (vd_fx_printf(out, "%s%s0", space ? " " : "", IFNAMES_KEYS[k]) < 0)
                return -ENOMEM;
            space = true;
        }
        if (vd_fx_printf(why,
                         "line %u: added%s%s (the first NIC is eth0 on every hypervisor; "
                         "the network configuration now names eth0)\n",
                         lineno, found[0] == SIZE_MAX ? " net.ifnames=0" : "",
                         found[1] == SIZE_MAX ? " biosdevname=0" : "") < 0)
            return -ENOMEM;
        changed = 1;
    }
    if (vd_fx_put(out, s + copied, n - copied) < 0)
        return -ENOMEM;
    return changed;
}

/* A line already written to tmp (devices rewritten): pass it through
 * grub_ifnames into out. quoted: insert before the last quote (a shell
 * assignment); else at the end, before trailing blanks. */
static int grub_line_ifnames(struct vd_fixup_buf *tmp, bool quoted, unsigned lineno,
                             struct vd_fixup_buf *out, struct vd_fixup_buf *why)
{
    const char *s = tmp->data ? tmp->data : "";
    size_t n = tmp->len, at = n;
    while (at > 0 && (s[at - 1] == ' ' || s[at - 1] == '\t'))
        at--;
    if (quoted) {
        size_t q = at;
        while (q > 0 && s[q - 1] != '"' && s[q - 1] != '\'')
            q--;
        if (q == 0) /* GRUB_CMDLINE_LINUX=word without quotes: leave it */
            return vd_fx_put(out, s, n) < 0 ? -ENOMEM : 0;
        at = q - 1;
    }
    return grub_ifnames(s, n, at, lineno, out, why);
}

int vd_fixup_grub_default(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                          struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, DEFGRUB, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    bool changed = false, seen_default = false, seen_timeout = false, seen_cmdline = false;
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
             * keeps the UUIDs we put in grub.cfg; and, in the line every
             * entry gets (not _DEFAULT, which recovery entries lack), the
             * NIC naming words */
            bool all = vd_fx_starts(s, n, "GRUB_CMDLINE_LINUX=");
            seen_cmdline |= all;
            struct vd_fixup_buf tmp = {0};
            rc = grub_cfg_devices(&l, m, all ? &tmp : out, why);
            if (rc >= 0 && all) {
                int r2 = grub_line_ifnames(&tmp, true, l.no, out, why);
                rc = r2 < 0 ? r2 : rc | r2;
            }
            vd_fixup_buf_free(&tmp);
            if (rc < 0 || vd_fx_puts(out, l.eol) < 0)
                return vd_fx_oom(err, DEFGRUB);
            changed |= rc > 0;
            continue;
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, DEFGRUB);
    }
    const char *eol = vd_fx_eol_of(buf, len);
    if ((!seen_default || !seen_timeout || !seen_cmdline) && out->len &&
        out->data[out->len - 1] != '\n' && vd_fx_puts(out, eol) < 0)
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
    if (!seen_cmdline) {
        if (vd_fx_printf(out, "GRUB_CMDLINE_LINUX=\"net.ifnames=0 biosdevname=0\"%s", eol) < 0 ||
            vd_fx_puts(why, "added GRUB_CMDLINE_LINUX=\"net.ifnames=0 biosdevname=0\" (the first "
                            "NIC is eth0 on every hypervisor; the network configuration now "
                            "names eth0)\n") < 0)
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
        {
            struct vd_fx_fields f;
            vd_fx_split(s, n, &f);
            bool linux_line = f.n >= 2 && (vd_fx_field_is(s, &f, 0, "linux") ||
                                           vd_fx_field_is(s, &f, 0, "linux16") ||
                                           vd_fx_field_is(s, &f, 0, "linuxefi"));
            struct vd_fixup_buf tmp = {0};
            rc = grub_cfg_devices(&l, m, linux_line ? &tmp : out, why);
            if (rc >= 0 && linux_line) {
                int r2 = grub_line_ifnames(&tmp, false, l.no, out, why);
                rc = r2 < 0 ? r2 : rc | r2;
            }
            vd_fixup_buf_free(&tmp);
        }
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

/* ---- BLS entries, grubenv, GRUB legacy ---- */

static const char BLS[] = "BLS entry", GRUBENV[] = "grubenv", LEGACY[] = "GRUB legacy menu";

/* The words of a kernel command line that starts at l->s + start: root=
 * and resume= device names to UUID=, then the NIC naming words (unless
 * ifnames is false). The whole line goes to out, without its end. */
static int grub_cmdline(const struct vd_fx_line *l, size_t start, const struct vd_fixup_devmap *m,
                        bool ifnames, struct vd_fixup_buf *out, struct vd_fixup_buf *why)
{
    struct vd_fx_line tail = *l;
    tail.s = l->s + start;
    tail.len = l->len - start;
    struct vd_fixup_buf tmp = {0};
    int rc = vd_fx_put(out, l->s, start) < 0 ? -ENOMEM : 0;
    if (rc == 0)
        rc = grub_cfg_devices(&tail, m, ifnames ? &tmp : out, why);
    if (rc >= 0 && ifnames) {
        int r2 = grub_line_ifnames(&tmp, false, l->no, out, why);
        rc = r2 < 0 ? r2 : rc | r2;
    }
    vd_fixup_buf_free(&tmp);
    return rc;
}

int vd_fixup_bls_entry(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                       struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, BLS, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    bool changed = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n >= 2 && l.s[0] != '#' && vd_fx_field_is(l.s, &f, 0, "options")) {
            /* RHEL 8 entries read "options $kernelopts ...": the words
             * then go into grubenv's kernelopts (vd_fixup_grubenv) */
            bool from_env = memmem(l.s, l.len, "$kernelopts", 11) != NULL;
            rc = grub_cmdline(&l, f.off[1], m, !from_env, out, why);
            if (rc < 0 || vd_fx_puts(out, l.eol) < 0)
                return vd_fx_oom(err, BLS);
            changed |= rc > 0;
            continue;
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, BLS);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, BLS);
    return changed;
}

int vd_fixup_grubenv(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                     struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, GRUBENV, err);
    if (rc < 0)
        return rc;
    /* grub-editenv's block: "# GRUB Environment Block\n", name=value
     * lines, then '#' up to its size (1024 bytes), which GRUB reads as a
     * whole and which must keep its size. */
    static const char head[] = "# GRUB Environment Block\n";
    if (len < sizeof(head) - 1 || memcmp(buf, head, sizeof(head) - 1)) {
        vd_fx_begin(out, why);
        if (vd_fx_put(out, buf, len) < 0 || vd_fx_put(why, "", 0) < 0)
            return vd_fx_oom(err, GRUBENV);
        return 0; /* not an environment block: leave it */
    }
    size_t body = len;
    while (body > 0 && buf[body - 1] == '#')
        body--;
    if (body < sizeof(head) - 1 || buf[body - 1] != '\n')
        body = len; /* no padding run of its own */
    vd_fx_begin(out, why);
    bool changed = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, body, &pos, &l)) {
        if (vd_fx_starts(l.s, l.len, "kernelopts=")) {
            rc = grub_cmdline(&l, 11, m, true, out, why);
            if (rc < 0 || vd_fx_puts(out, l.eol) < 0)
                return vd_fx_oom(err, GRUBENV);
            changed |= rc > 0;
            continue;
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, GRUBENV);
    }
    if (changed && out->len > len)
        return vd_err(err, -ENOSPC,
                      "fixup: grubenv: the edited block needs %zu bytes, more than its %zu; "
                      "shorten kernelopts (grub2-editenv) and run fixup again",
                      out->len, len);
    while (out->len < len)
        if (vd_fx_puts(out, "#") < 0)
            return vd_fx_oom(err, GRUBENV);
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, GRUBENV);
    if (!changed && (out->len != len || memcmp(out->data, buf, len))) {
        /* a block we would only re-pad: leave it byte for byte */
        vd_fx_begin(out, why);
        if (vd_fx_put(out, buf, len) < 0 || vd_fx_put(why, "", 0) < 0)
            return vd_fx_oom(err, GRUBENV);
    }
    return changed;
}

/* A GRUB legacy "key value" or "key=value" line: the value span. */
static bool legacy_kv(const char *s, size_t n, const char *key, const char **v, size_t *vn)
{
    size_t kn = strlen(key);
    if (n <= kn || memcmp(s, key, kn) || (s[kn] != ' ' && s[kn] != '\t' && s[kn] != '='))
        return false;
    size_t i = kn;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '='))
        i++;
    size_t e = n;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    *v = s + i;
    *vn = e - i;
    return true;
}

int vd_fixup_grub_legacy(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                         struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, LEGACY, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    bool changed = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        size_t ind = vd_fx_indent(l.s, l.len);
        const char *s = l.s + ind, *v;
        size_t n = l.len - ind, vn;
        if (n && s[0] == '#')
            goto copy;
        bool is_def = legacy_kv(s, n, "default", &v, &vn);
        if (is_def || legacy_kv(s, n, "timeout", &v, &vn)) {
            bool keep = is_def ? vn == 1 && v[0] == '0' : grub_timeout_small(v, vn);
            if (!keep) {
                if (vd_fx_put(out, l.s, (size_t)(v - l.s)) < 0 ||
                    vd_fx_printf(out, "%u%s", is_def ? 0 : VD_FIXUP_GRUB_TIMEOUT, l.eol) < 0 ||
                    vd_fx_printf(why, "line %u: %.*s -> %u (%s)\n", l.no, (int)(n > 80 ? 80 : n), s,
                                 is_def ? 0 : VD_FIXUP_GRUB_TIMEOUT,
                                 is_def ? "boot the first menu entry"
                                        : "do not wait at a boot menu nobody sees") < 0)
                    return vd_fx_oom(err, LEGACY);
                changed = true;
                continue;
            }
            goto copy;
        }
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n >= 3 && vd_fx_field_is(l.s, &f, 0, "kernel")) {
            rc = grub_cmdline(&l, f.off[2], m, true, out, why);
            if (rc < 0 || vd_fx_puts(out, l.eol) < 0)
                return vd_fx_oom(err, LEGACY);
            changed |= rc > 0;
            continue;
        }
    copy:
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, LEGACY);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, LEGACY);
    return changed;
}
