/*
 * Network configurations of a Linux guest, for `vdisk inspect`: which
 * interface (by name or MAC) each one binds to, and whether it asks for
 * DHCP or holds a static address. A guest moved to new hardware gets new
 * interface names and MACs, so a binding to the old ones leaves it
 * unreachable (AWS VM Import: "configure ... to use DHCP").
 *
 * Formats: Debian interfaces(5); RHEL/SUSE ifcfg-* (sysconfig shell
 * variables); netplan YAML (the subset netplan's own examples use, read by
 * indentation, not a full YAML parser); NetworkManager keyfiles
 * (nm-settings-keyfile(5)); systemd.network(5). Pure parsers: what cannot
 * be read is skipped.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "fixup/fixup_int.h"
#include "inspect/inspect_int.h"

static void nt_copy(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void nt_trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Strip one level of matching quotes. */
static void nt_unquote(const char **s, size_t *n)
{
    nt_trim(s, n);
    if (*n >= 2 && ((*s)[0] == '"' || (*s)[0] == '\'') && (*s)[*n - 1] == (*s)[0]) {
        (*s)++;
        *n -= 2;
    }
}

static bool nt_eq(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && !strncasecmp(s, w, n);
}

static bool nt_true(const char *s, size_t n)
{
    return nt_eq(s, n, "true") || nt_eq(s, n, "yes") || nt_eq(s, n, "on") || nt_eq(s, n, "1");
}

/* ---- ifupdown ---- */

int vd_ins_net_ifupdown(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque,
                        void (*src_cb)(void *opaque, const char *path), void *src_opaque)
{
    struct vd_ins_net cur;
    bool open = false;
    int rc = 0;
    struct vd_fx_line l;
    size_t pos = 0;
    memset(&cur, 0, sizeof(cur));
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (!f.n || l.s[f.off[0]] == '#')
            continue;
        const char *s = l.s;
        bool top = vd_fx_field_is(s, &f, 0, "iface") || vd_fx_field_is(s, &f, 0, "mapping") ||
                   vd_fx_field_is(s, &f, 0, "auto") || vd_fx_field_is(s, &f, 0, "source") ||
                   vd_fx_field_is(s, &f, 0, "source-directory") ||
                   vd_fx_starts(s + f.off[0], f.len[0], "allow-");
        if (top && open) {
            open = false;
            if ((rc = cb(opaque, &cur)) != 0)
                return rc;
        }
        if ((vd_fx_field_is(s, &f, 0, "source") || vd_fx_field_is(s, &f, 0, "source-directory")) &&
            f.n >= 2 && src_cb) {
            char p[VD_INS_STR];
            nt_copy(p, sizeof(p), s + f.off[1], f.len[1]);
            src_cb(src_opaque, p);
            continue;
        }
        if (vd_fx_field_is(s, &f, 0, "iface") && f.n >= 4) {
            memset(&cur, 0, sizeof(cur));
            nt_copy(cur.iface, sizeof(cur.iface), s + f.off[1], f.len[1]);
            if (vd_fx_field_is(s, &f, 3, "loopback") || !strcmp(cur.iface, "lo"))
                continue;
            bool v4 = vd_fx_field_is(s, &f, 2, "inet");
            if (vd_fx_field_is(s, &f, 3, "dhcp"))
                cur.dhcp = v4;
            else if (vd_fx_field_is(s, &f, 3, "static"))
                cur.static_addr = true;
            open = true;
            continue;
        }
        if (open && vd_fx_field_is(s, &f, 0, "hwaddress") && f.n >= 2) {
            size_t i = f.n >= 3 && vd_fx_field_is(s, &f, 1, "ether") ? 2 : 1;
            nt_copy(cur.mac, sizeof(cur.mac), s + f.off[i], f.len[i]);
        }
    }
    if (open)
        rc = cb(opaque, &cur);
    return rc;
}

/* ---- ifcfg ---- */

int vd_ins_net_ifcfg(const char *fname, const char *buf, size_t len, vd_ins_net_cb cb, void *opaque)
{
    struct vd_ins_net n;
    char proto[32] = "";
    bool ip = false;
    struct vd_fx_line l;
    size_t pos = 0;
    memset(&n, 0, sizeof(n));
    const char *b = strrchr(fname, '/');
    b = b ? b + 1 : fname;
    if (!strncmp(b, "ifcfg-", 6))
        snprintf(n.iface, sizeof(n.iface), "%s", b + 6);
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        const char *s = l.s + vd_fx_indent(l.s, l.len);
        size_t sn = l.len - (size_t)(s - l.s);
        const char *eq = memchr(s, '=', sn);
        if (!sn || s[0] == '#' || !eq)
            continue;
        size_t kn = (size_t)(eq - s);
        const char *v = eq + 1;
        size_t vn = sn - kn - 1;
        nt_unquote(&v, &vn);
        if (nt_eq(s, kn, "DEVICE") && vn)
            nt_copy(n.iface, sizeof(n.iface), v, vn);
        else if ((nt_eq(s, kn, "HWADDR") || nt_eq(s, kn, "MACADDR")) && vn)
            nt_copy(n.mac, sizeof(n.mac), v, vn);
        else if (nt_eq(s, kn, "BOOTPROTO"))
            nt_copy(proto, sizeof(proto), v, vn);
        else if ((vd_fx_starts(s, kn, "IPADDR") || vd_fx_starts(s, kn, "IPV6ADDR")) && vn)
            ip = true;
    }
    if (!strcmp(n.iface, "lo"))
        return 0;
    /* initscripts: "dhcp" and "bootp" ask DHCP; wicked adds "dhcp4",
     * "dhcp+autoip" */
    n.dhcp = !strncasecmp(proto, "dhcp", 4) || !strcasecmp(proto, "bootp");
    n.static_addr = ip && !n.dhcp;
    return cb(opaque, &n);
}

/* ---- netplan ---- */

static bool np_kind(const char *k)
{
    return !strcmp(k, "ethernets") || !strcmp(k, "wifis") || !strcmp(k, "bonds") ||
           !strcmp(k, "bridges") || !strcmp(k, "vlans");
}

struct np_dev {
    char id[64], match_name[64], mac[32];
    bool match, dhcp, addr, open;
};

static int np_flush(struct np_dev *d, vd_ins_net_cb cb, void *opaque)
{
    if (!d->open)
        return 0;
    d->open = false;
    struct vd_ins_net n;
    memset(&n, 0, sizeof(n));
    if (d->match)
        snprintf(n.iface, sizeof(n.iface), "%s", d->match_name);
    else
        snprintf(n.iface, sizeof(n.iface), "%s", d->id);
    snprintf(n.mac, sizeof(n.mac), "%s", d->mac);
    n.dhcp = d->dhcp;
    n.static_addr = d->addr;
    return cb(opaque, &n);
}

int vd_ins_net_netplan(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque)
{
    /* keys[i]: the key open at depth i, ind[i] its indentation */
    char keys[8][64];
    size_t ind[8];
    int depth = 0, rc;
    struct np_dev d;
    struct vd_fx_line l;
    size_t pos = 0;
    memset(&d, 0, sizeof(d));
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        size_t in = vd_fx_indent(l.s, l.len);
        const char *s = l.s + in;
        size_t n = l.len - in;
        if (!n || s[0] == '#')
            continue;
        bool item = s[0] == '-';
        if (item) {
            /* a list item belongs to the key above it */
            if (depth == 4 && !strcmp(keys[3], "addresses"))
                d.addr = true;
            continue;
        }
        while (depth && ind[depth - 1] >= in)
            depth--;
        const char *colon = memchr(s, ':', n);
        if (!colon)
            continue;
        const char *k = s;
        size_t kn = (size_t)(colon - s);
        const char *v = colon + 1;
        size_t vn = n - kn - 1; /* before kn is trimmed */
        nt_unquote(&k, &kn);
        /* drop a trailing comment */
        for (size_t i = 0; i < vn; i++)
            if (v[i] == '#' && (i == 0 || v[i - 1] == ' ')) {
                vn = i;
                break;
            }
        nt_unquote(&v, &vn);
        if (depth <= 2 && d.open && (rc = np_flush(&d, cb, opaque)) != 0)
            return rc;
        if (depth >= 8)
            continue;
        nt_copy(keys[depth], sizeof(keys[depth]), k, kn);
        ind[depth] = in;
        if (depth == 2 && !strcmp(keys[0], "network") && np_kind(keys[1])) {
            memset(&d, 0, sizeof(d));
            d.open = true;
            snprintf(d.id, sizeof(d.id), "%s", keys[2]);
        } else if (depth == 3 && d.open) {
            if (!strcmp(keys[3], "dhcp4"))
                d.dhcp = nt_true(v, vn);
            else if (!strcmp(keys[3], "addresses") && vn > 2)
                d.addr = true; /* [10.0.0.2/24] */
            else if (!strcmp(keys[3], "match"))
                d.match = true;
        } else if (depth == 4 && d.open && !strcmp(keys[3], "match")) {
            if (!strcmp(keys[4], "macaddress"))
                nt_copy(d.mac, sizeof(d.mac), v, vn);
            else if (!strcmp(keys[4], "name"))
                nt_copy(d.match_name, sizeof(d.match_name), v, vn);
        }
        depth++;
    }
    return np_flush(&d, cb, opaque);
}

/* ---- ini-style: NetworkManager keyfiles and systemd.network ---- */

struct ini_kv {
    char section[64];
    const char *k, *v;
    size_t kn, vn;
};
/* Walk KEY=VALUE lines of an ini file, calling fn for each. */
static void ini_walk(const char *buf, size_t len, void (*fn)(void *o, const struct ini_kv *kv),
                     void *o)
{
    struct ini_kv kv;
    struct vd_fx_line l;
    size_t pos = 0;
    memset(&kv, 0, sizeof(kv));
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        const char *s = l.s;
        size_t n = l.len;
        nt_trim(&s, &n);
        if (!n || s[0] == '#' || s[0] == ';')
            continue;
        if (s[0] == '[') {
            const char *e = memchr(s, ']', n);
            if (e)
                nt_copy(kv.section, sizeof(kv.section), s + 1, (size_t)(e - s - 1));
            continue;
        }
        const char *eq = memchr(s, '=', n);
        if (!eq)
            continue;
        kv.k = s;
        kv.kn = (size_t)(eq - s);
        nt_trim(&kv.k, &kv.kn);
        kv.v = eq + 1;
        kv.vn = n - (size_t)(eq + 1 - s);
        nt_trim(&kv.v, &kv.vn);
        fn(o, &kv);
    }
}

struct nm_state {
    struct vd_ins_net n;
    char type[32];
};

static void nm_kv(void *o, const struct ini_kv *kv)
{
    struct nm_state *st = o;
    const char *sec = kv->section;
    if (!strcmp(sec, "connection") && nt_eq(kv->k, kv->kn, "interface-name"))
        nt_copy(st->n.iface, sizeof(st->n.iface), kv->v, kv->vn);
    else if (!strcmp(sec, "connection") && nt_eq(kv->k, kv->kn, "type"))
        nt_copy(st->type, sizeof(st->type), kv->v, kv->vn);
    else if ((!strcmp(sec, "ethernet") || !strcmp(sec, "802-3-ethernet")) &&
             nt_eq(kv->k, kv->kn, "mac-address"))
        nt_copy(st->n.mac, sizeof(st->n.mac), kv->v, kv->vn);
    else if (!strcmp(sec, "ipv4") && nt_eq(kv->k, kv->kn, "method"))
        st->n.dhcp = nt_eq(kv->v, kv->vn, "auto");
    else if ((!strcmp(sec, "ipv4") || !strcmp(sec, "ipv6")) &&
             (vd_fx_starts(kv->k, kv->kn, "address") && kv->vn))
        st->n.static_addr = true;
}

int vd_ins_net_nmkeyfile(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque)
{
    struct nm_state st;
    memset(&st, 0, sizeof(st));
    ini_walk(buf, len, nm_kv, &st);
    if (!strcmp(st.type, "loopback") || !strcmp(st.n.iface, "lo"))
        return 0;
    return cb(opaque, &st.n);
}

struct nd_state {
    struct vd_ins_net n;
};

static void nd_kv(void *o, const struct ini_kv *kv)
{
    struct nd_state *st = o;
    const char *sec = kv->section;
    if (!strcmp(sec, "Match") && nt_eq(kv->k, kv->kn, "Name"))
        nt_copy(st->n.iface, sizeof(st->n.iface), kv->v, kv->vn);
    else if (!strcmp(sec, "Match") && nt_eq(kv->k, kv->kn, "MACAddress"))
        nt_copy(st->n.mac, sizeof(st->n.mac), kv->v, kv->vn);
    else if (!strcmp(sec, "Network") && nt_eq(kv->k, kv->kn, "DHCP"))
        st->n.dhcp =
            nt_true(kv->v, kv->vn) || nt_eq(kv->v, kv->vn, "ipv4") || nt_eq(kv->v, kv->vn, "both");
    else if ((!strcmp(sec, "Network") || !strcmp(sec, "Address")) &&
             nt_eq(kv->k, kv->kn, "Address") && kv->vn)
        st->n.static_addr = true;
}

int vd_ins_net_networkd(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque)
{
    struct nd_state st;
    memset(&st, 0, sizeof(st));
    ini_walk(buf, len, nd_kv, &st);
    if (!strcmp(st.n.iface, "lo"))
        return 0;
    return cb(opaque, &st.n);
}
