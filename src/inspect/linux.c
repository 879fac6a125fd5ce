/*
 * Linux guest text files for `vdisk inspect`: os-release(5) and the older
 * release files, and the boot loader configurations that name the default
 * kernel (GRUB 2 grub.cfg and grubenv, Boot Loader Specification entries,
 * GRUB legacy menu.lst). Pure parsers (see inspect_int.h): bad input
 * leaves fields empty, never an error.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixup/fixup_int.h"
#include "inspect/inspect_int.h"

/* Copy s[0..n) into out (cap bytes), truncating, always terminated. */
static void lx_copy(char *out, size_t cap, const char *s, size_t n)
{
    if (!cap)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void lx_trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* A shell-like value: "quoted" (with \ escapes), 'quoted', or bare up to
 * whitespace or '#'. */
static void lx_value(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    lx_trim(&s, &n);
    if (n && (s[0] == '"' || s[0] == '\'')) {
        char q = s[0];
        for (size_t i = 1; i < n && s[i] != q; i++) {
            char c = s[i];
            if (q == '"' && c == '\\' && i + 1 < n)
                c = s[++i];
            if (o + 1 < cap)
                out[o++] = c;
        }
    } else {
        for (size_t i = 0; i < n && !isspace((unsigned char)s[i]) && s[i] != '#'; i++)
            if (o + 1 < cap)
                out[o++] = s[i];
    }
    if (cap)
        out[o] = '\0';
}

/* If line is KEY=..., the value into out. */
static bool lx_keyval(const struct vd_fx_line *l, const char *key, char *out, size_t cap)
{
    const char *s = l->s;
    size_t n = l->len, k = strlen(key);
    size_t ind = vd_fx_indent(s, n);
    s += ind;
    n -= ind;
    if (n <= k || memcmp(s, key, k) != 0 || s[k] != '=')
        return false;
    lx_value(s + k + 1, n - k - 1, out, cap);
    return true;
}

bool vd_ins_os_release(const char *buf, size_t len, struct vd_ins_release *r)
{
    char name[128] = "", version[120] = "", pretty[VD_INS_STR] = "";
    struct vd_fx_line l;
    size_t pos = 0;
    memset(r, 0, sizeof(*r));
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        lx_keyval(&l, "ID", r->id, sizeof(r->id));
        lx_keyval(&l, "VERSION_ID", r->version, sizeof(r->version));
        lx_keyval(&l, "PRETTY_NAME", pretty, sizeof(pretty));
        lx_keyval(&l, "NAME", name, sizeof(name));
        lx_keyval(&l, "VERSION", version, sizeof(version));
    }
    if (pretty[0])
        snprintf(r->product, sizeof(r->product), "%s", pretty);
    else if (name[0])
        snprintf(r->product, sizeof(r->product), "%s%s%s", name, version[0] ? " " : "", version);
    if (!r->id[0] && name[0]) {
        /* os-release(5): ID defaults to "linux"; a NAME alone still says
         * which distribution, lower-cased up to its first space. */
        size_t i;
        for (i = 0; name[i] && name[i] != ' ' && i + 1 < sizeof(r->id); i++)
            r->id[i] = (char)tolower((unsigned char)name[i]);
        r->id[i] = '\0';
    }
    return r->id[0] || name[0];
}

/* The first "N" or "N.M..." in s: "CentOS Linux release 7.9.2009 (Core)"
 * -> "7.9.2009". */
static void lx_first_version(const char *s, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = s; *p; p++) {
        if (isdigit((unsigned char)*p) && (p == s || p[-1] == ' ')) {
            size_t n = 0;
            while (isdigit((unsigned char)p[n]) || p[n] == '.')
                n++;
            while (n && p[n - 1] == '.')
                n--;
            lx_copy(out, cap, p, n);
            return;
        }
    }
}

static const struct {
    const char *needle, *id;
} lx_redhat_names[] = {
    {"Red Hat Enterprise Linux", "rhel"},
    {"CentOS Stream", "centos"},
    {"CentOS", "centos"},
    {"Fedora", "fedora"},
    {"Rocky Linux", "rocky"},
    {"AlmaLinux", "almalinux"},
    {"Oracle Linux", "ol"},
    {"Scientific Linux", "scientific"},
    {"Amazon Linux", "amzn"},
};

bool vd_ins_release_file(const char *name, const char *buf, size_t len, struct vd_ins_release *r)
{
    struct vd_fx_line l;
    size_t pos = 0;
    memset(r, 0, sizeof(*r));
    if (!strcmp(name, "lsb-release")) {
        char desc[VD_INS_STR] = "", id[64] = "";
        while (vd_fx_next_line(buf, len, &pos, &l)) {
            lx_keyval(&l, "DISTRIB_ID", id, sizeof(id));
            lx_keyval(&l, "DISTRIB_RELEASE", r->version, sizeof(r->version));
            lx_keyval(&l, "DISTRIB_DESCRIPTION", desc, sizeof(desc));
        }
        for (size_t i = 0; id[i]; i++)
            r->id[i] = (char)tolower((unsigned char)id[i]);
        snprintf(r->product, sizeof(r->product), "%s", desc);
        return r->id[0] != '\0';
    }
    /* Every other one: the first line is the product. */
    if (!vd_fx_next_line(buf, len, &pos, &l))
        return false;
    const char *s = l.s;
    size_t n = l.len;
    lx_trim(&s, &n);
    if (!n)
        return false;
    lx_copy(r->product, sizeof(r->product), s, n);
    if (!strcmp(name, "debian_version")) {
        /* "12.4" or "bookworm/sid" (testing has no number) */
        snprintf(r->id, sizeof(r->id), "debian");
        if (isdigit((unsigned char)r->product[0]))
            lx_copy(r->version, sizeof(r->version), r->product, strlen(r->product));
        snprintf(r->product, sizeof(r->product), "Debian GNU/Linux %s", r->version);
        return true;
    }
    if (!strcmp(name, "alpine-release")) {
        snprintf(r->id, sizeof(r->id), "alpine");
        lx_copy(r->version, sizeof(r->version), r->product, strlen(r->product));
        snprintf(r->product, sizeof(r->product), "Alpine Linux %s", r->version);
        return true;
    }
    if (!strcmp(name, "SuSE-release")) {
        /* "SUSE Linux Enterprise Server 11 (x86_64)" then VERSION = 11,
         * PATCHLEVEL = 4 */
        char ver[32] = "", patch[32] = "";
        while (vd_fx_next_line(buf, len, &pos, &l)) {
            char tmp[32];
            const char *t = l.s;
            size_t tn = l.len;
            lx_trim(&t, &tn);
            if (vd_fx_starts(t, tn, "VERSION") || vd_fx_starts(t, tn, "PATCHLEVEL")) {
                const char *eq = memchr(t, '=', tn);
                if (!eq)
                    continue;
                lx_value(eq + 1, tn - (size_t)(eq + 1 - t), tmp, sizeof(tmp));
                snprintf(vd_fx_starts(t, tn, "VERSION") ? ver : patch, 32, "%s", tmp);
            }
        }
        snprintf(r->id, sizeof(r->id), strstr(r->product, "openSUSE") ? "opensuse" : "sles");
        snprintf(r->version, sizeof(r->version), "%s%s%s", ver, patch[0] ? "." : "", patch);
        return true;
    }
    for (size_t i = 0; i < sizeof(lx_redhat_names) / sizeof(lx_redhat_names[0]); i++) {
        if (strstr(r->product, lx_redhat_names[i].needle)) {
            snprintf(r->id, sizeof(r->id), "%s", lx_redhat_names[i].id);
            break;
        }
    }
    if (!r->id[0]) {
        /* Unknown vendor: the first word, lower-cased. */
        size_t i;
        for (i = 0; r->product[i] && r->product[i] != ' ' && i + 1 < sizeof(r->id); i++)
            r->id[i] = (char)tolower((unsigned char)r->product[i]);
        r->id[i] = '\0';
    }
    lx_first_version(r->product, r->version, sizeof(r->version));
    return r->id[0] != '\0';
}

void vd_ins_version_numbers(const char *v, unsigned *major, unsigned *minor)
{
    *major = *minor = 0;
    if (!isdigit((unsigned char)v[0]))
        return;
    char *end;
    unsigned long a = strtoul(v, &end, 10);
    *major = a > 100000 ? 0 : (unsigned)a;
    if (*end == '.' && isdigit((unsigned char)end[1])) {
        unsigned long b = strtoul(end + 1, NULL, 10);
        *minor = b > 100000 ? 0 : (unsigned)b;
    }
}

bool vd_ins_grubenv(const char *buf, size_t len, const char *key, char *out, size_t cap)
{
    struct vd_fx_line l;
    size_t pos = 0, k = strlen(key);
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        /* grub-editenv writes KEY=VALUE verbatim, no quoting */
        if (l.len > k && !memcmp(l.s, key, k) && l.s[k] == '=') {
            lx_copy(out, cap, l.s + k + 1, l.len - k - 1);
            return true;
        }
    }
    return false;
}

bool vd_ins_kernel_version(const char *path, char *out, size_t cap)
{
    static const char *const pre[] = {"vmlinuz-", "vmlinux-", "kernel-", "bzImage-"};
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
        size_t n = strlen(pre[i]);
        if (!strncmp(b, pre[i], n) && b[n]) {
            size_t m = strcspn(b + n, " \t");
            lx_copy(out, cap, b + n, m);
            return true;
        }
    }
    return false;
}

/* ---- grub.cfg ---- */

/* A GRUB word at *p (quoted '...' or "...", or bare), advancing *p. */
static bool lx_word(const char **p, const char *end, char *out, size_t cap)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s >= end)
        return false;
    size_t o = 0;
    while (s < end && *s != ' ' && *s != '\t') {
        if (*s == '\'' || *s == '"') {
            char q = *s++;
            while (s < end && *s != q) {
                if (q == '"' && *s == '\\' && s + 1 < end)
                    s++;
                if (o + 1 < cap)
                    out[o++] = *s;
                s++;
            }
            if (s < end)
                s++;
        } else {
            if (*s == '\\' && s + 1 < end)
                s++;
            if (o + 1 < cap)
                out[o++] = *s;
            s++;
        }
    }
    out[o] = '\0';
    *p = s;
    return true;
}

#define LX_MAX_ENTRIES 256
struct lx_entry {
    char title[VD_INS_STR], id[VD_INS_STR], kernel[VD_INS_STR], initrd[VD_INS_STR];
    int parent; /* index of its submenu, -1 at top level */
    bool submenu;
    unsigned index; /* position among its siblings */
};

static bool lx_match_entry(const struct lx_entry *e, const char *sel)
{
    return !strcmp(e->title, sel) || (e->id[0] && !strcmp(e->id, sel));
}

/* The entry that sel (one component of a "A>B" path) names among the
 * children of parent. */
static int lx_select(const struct lx_entry *es, size_t n, int parent, const char *sel)
{
    char *end;
    unsigned long idx = strtoul(sel, &end, 10);
    bool num = isdigit((unsigned char)sel[0]) && *end == '\0';
    for (size_t i = 0; i < n; i++) {
        if (es[i].parent != parent)
            continue;
        if (num ? es[i].index == idx : lx_match_entry(&es[i], sel))
            return (int)i;
    }
    return -1;
}

/* The first entry with a kernel at or under i (a submenu: its first child). */
static int lx_descend(const struct lx_entry *es, size_t n, int i)
{
    while (i >= 0 && es[i].submenu) {
        int child = -1;
        for (size_t j = (size_t)i + 1; j < n; j++)
            if (es[j].parent == i) {
                child = (int)j;
                break;
            }
        i = child;
    }
    return i;
}

bool vd_ins_grub_cfg(const char *buf, size_t len, const char *saved_entry,
                     struct vd_ins_bootent *out)
{
    struct lx_entry *es = calloc(LX_MAX_ENTRIES, sizeof(*es));
    char deflt[VD_INS_STR] = "";
    int stack[16], depth = 0; /* open blocks: entry index, or -2 for other braces */
    unsigned nchild_top = 0;
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    if (!es)
        return false;
    struct vd_fx_line l;
    size_t pos = 0;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        const char *s = l.s + vd_fx_indent(l.s, l.len), *end = l.s + l.len;
        char w[VD_INS_STR];
        const char *p = s;
        if (!lx_word(&p, end, w, sizeof(w)) || w[0] == '#')
            continue;
        int cur = -1; /* innermost entry we are in */
        for (int d = depth - 1; d >= 0; d--)
            if (stack[d] >= 0) {
                cur = stack[d];
                break;
            }
        if (!strcmp(w, "menuentry") || !strcmp(w, "submenu")) {
            if (n >= LX_MAX_ENTRIES)
                continue;
            struct lx_entry *e = &es[n];
            e->submenu = w[0] == 's';
            e->parent = cur;
            if (cur >= 0 && !es[cur].submenu)
                e->parent = -3; /* an entry inside an entry: never selected */
            unsigned idx = 0;
            for (size_t j = 0; j < n; j++)
                if (es[j].parent == e->parent)
                    idx++;
            e->index = e->parent == -1 ? nchild_top++ : idx;
            lx_word(&p, end, e->title, sizeof(e->title));
            char a[VD_INS_STR];
            while (lx_word(&p, end, a, sizeof(a))) {
                if (!strcmp(a, "{"))
                    break;
                if (!strcmp(a, "$menuentry_id_option") || !strcmp(a, "--id"))
                    lx_word(&p, end, e->id, sizeof(e->id));
                else if (!strncmp(a, "--id=", 5))
                    snprintf(e->id, sizeof(e->id), "%s", a + 5);
            }
            if (memchr(s, '{', (size_t)(end - s)) && depth < 16)
                stack[depth++] = (int)n;
            n++;
            continue;
        }
        if (!strcmp(w, "}")) {
            if (depth)
                depth--;
            continue;
        }
        if (!strcmp(w, "blscfg")) {
            out->bls = true;
            continue;
        }
        if (cur >= 0 && !es[cur].submenu &&
            (!strcmp(w, "linux") || !strcmp(w, "linux16") || !strcmp(w, "linuxefi") ||
             !strcmp(w, "kernel"))) {
            if (!es[cur].kernel[0])
                lx_word(&p, end, es[cur].kernel, sizeof(es[cur].kernel));
            continue;
        }
        if (cur >= 0 && !es[cur].submenu &&
            (!strcmp(w, "initrd") || !strcmp(w, "initrd16") || !strcmp(w, "initrdefi"))) {
            if (!es[cur].initrd[0])
                lx_word(&p, end, es[cur].initrd, sizeof(es[cur].initrd));
            continue;
        }
        if (!strcmp(w, "set") && cur < 0) {
            char a[VD_INS_STR];
            if (lx_word(&p, end, a, sizeof(a)) && !strncmp(a, "default=", 8)) {
                const char *v = a + 8;
                if (strstr(v, "next_entry"))
                    continue; /* a one-shot, set by grub-reboot */
                if (strstr(v, "saved_entry"))
                    v = saved_entry ? saved_entry : "";
                snprintf(deflt, sizeof(deflt), "%s", v[0] ? v : "0");
            }
            continue;
        }
        /* Other blocks that open a brace (if/function) keep depth right. */
        for (const char *c = s; c < end; c++) {
            if (*c == '{' && depth < 16)
                stack[depth++] = -2;
            else if (*c == '}' && depth)
                depth--;
        }
    }
    int sel = -1;
    if (deflt[0]) {
        /* "Advanced options for X>X, with Linux V" or "1>2" */
        char path[VD_INS_STR];
        snprintf(path, sizeof(path), "%s", deflt);
        int parent = -1;
        char *save = NULL;
        for (char *c = strtok_r(path, ">", &save); c; c = strtok_r(NULL, ">", &save)) {
            sel = lx_select(es, n, parent, c);
            if (sel < 0)
                break;
            parent = sel;
        }
    }
    if (sel < 0)
        sel = lx_select(es, n, -1, "0");
    sel = lx_descend(es, n, sel);
    bool ok = sel >= 0;
    if (ok) {
        snprintf(out->title, sizeof(out->title), "%s", es[sel].title);
        snprintf(out->kernel, sizeof(out->kernel), "%s", es[sel].kernel);
        snprintf(out->initrd, sizeof(out->initrd), "%s", es[sel].initrd);
    }
    free(es);
    return ok;
}

bool vd_ins_bls_entry(const char *buf, size_t len, struct vd_ins_bootent *out, char *version,
                      size_t vcap)
{
    struct vd_fx_line l;
    size_t pos = 0;
    memset(out, 0, sizeof(*out));
    out->bls = true;
    if (vcap)
        version[0] = '\0';
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        const char *s = l.s + vd_fx_indent(l.s, l.len);
        size_t n = l.len - (size_t)(s - l.s);
        size_t k = 0;
        while (k < n && s[k] != ' ' && s[k] != '\t')
            k++;
        const char *v = s + k;
        size_t vn = n - k;
        lx_trim(&v, &vn);
        if (k == 5 && !memcmp(s, "title", 5))
            lx_copy(out->title, sizeof(out->title), v, vn);
        else if (k == 7 && !memcmp(s, "version", 7))
            lx_copy(version, vcap, v, vn);
        else if (k == 5 && !memcmp(s, "linux", 5))
            lx_copy(out->kernel, sizeof(out->kernel), v, vn);
        else if (k == 6 && !memcmp(s, "initrd", 6) && !out->initrd[0]) {
            size_t m = 0;
            while (m < vn && v[m] != ' ' && v[m] != '\t')
                m++;
            lx_copy(out->initrd, sizeof(out->initrd), v, m);
        }
    }
    return out->kernel[0] != '\0';
}

/* "(hd0,0)/vmlinuz-x" -> "/vmlinuz-x" */
static void lx_strip_device(char *s)
{
    if (s[0] == '(') {
        char *c = strchr(s, ')');
        if (c)
            memmove(s, c + 1, strlen(c + 1) + 1);
    }
}

bool vd_ins_menu_lst(const char *buf, size_t len, unsigned saved, struct vd_ins_bootent *out)
{
    struct vd_fx_line l;
    size_t pos = 0;
    unsigned deflt = 0, cur = 0;
    bool in = false, found = false;
    memset(out, 0, sizeof(*out));
    /* First pass: the default. */
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        /* GRUB legacy takes "default N" and "default=N" (RHEL writes the
         * latter) */
        const char *dv = NULL;
        size_t dn = 0;
        if (f.n >= 2 && vd_fx_field_is(l.s, &f, 0, "default")) {
            dv = l.s + f.off[1];
            dn = f.len[1];
        } else if (f.n >= 1 && f.len[0] > 8 && !memcmp(l.s + f.off[0], "default=", 8)) {
            dv = l.s + f.off[0] + 8;
            dn = f.len[0] - 8;
        }
        if (dv && dn == 5 && !memcmp(dv, "saved", 5)) {
            deflt = saved;
        } else if (dv) {
            unsigned v = 0;
            for (size_t i = 0; i < dn && isdigit((unsigned char)dv[i]) && v < 100000; i++)
                v = v * 10 + (unsigned)(dv[i] - '0');
            deflt = v;
        }
        if (f.n >= 1 && vd_fx_field_is(l.s, &f, 0, "title"))
            break; /* global settings come before the first title */
    }
    pos = 0;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        const char *s = l.s;
        vd_fx_split(s, l.len, &f);
        if (!f.n)
            continue;
        if (vd_fx_field_is(s, &f, 0, "title")) {
            if (in)
                cur++;
            in = true;
            if (cur == deflt) {
                found = true;
                const char *t = f.n >= 2 ? s + f.off[1] : "";
                size_t tn = f.n >= 2 ? l.len - f.off[1] : 0;
                lx_trim(&t, &tn);
                lx_copy(out->title, sizeof(out->title), t, tn);
            }
            continue;
        }
        if (!in || cur != deflt || f.n < 2)
            continue;
        if (vd_fx_field_is(s, &f, 0, "kernel") && !out->kernel[0]) {
            lx_copy(out->kernel, sizeof(out->kernel), s + f.off[1], f.len[1]);
            lx_strip_device(out->kernel);
        } else if (vd_fx_field_is(s, &f, 0, "initrd") && !out->initrd[0]) {
            lx_copy(out->initrd, sizeof(out->initrd), s + f.off[1], f.len[1]);
            lx_strip_device(out->initrd);
        }
    }
    return found && out->kernel[0];
}
