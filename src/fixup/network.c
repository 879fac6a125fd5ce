/*
 * Network configuration to DHCP, following AWS VM Import/Export
 * ("Modifying network scripts to replace static IPs with dynamic IPs",
 * https://docs.aws.amazon.com/vm-import/latest/userguide/import-modify-vm.html).
 * An EC2 instance gets its address from the VPC's DHCP server, and its
 * NIC has a new MAC address, so settings pinned to the old NIC go too.
 *
 * Three formats:
 *   Debian ifupdown  /etc/network/interfaces(5):
 *                      iface eth0 inet static      iface eth0 inet dhcp
 *                          address 10.0.0.5    ->
 *                          gateway 10.0.0.1
 *   RHEL initscripts /etc/sysconfig/network-scripts/ifcfg-*:
 *                      BOOTPROTO=none          ->  BOOTPROTO=dhcp
 *                      IPADDR=10.0.0.5             (IPADDR, NETMASK, PREFIX,
 *                      HWADDR=00:50:56:...          GATEWAY, HWADDR, MACADDR,
 *                                                   UUID lines removed)
 *   netplan          /etc/netplan/NAME.yaml, each network.ethernets entry:
 *                      addresses: [...]        ->  dhcp4: true
 *                      gateway4: ...               (addresses, gateway4/6,
 *                      match: {macaddress: ..}      routes, MAC match removed)
 * and, below, systemd-networkd .network files and NetworkManager keyfiles.
 *
 * Interface names: the primary interface's configuration is renamed to
 * VD_FIXUP_NIC (eth0), which the new machine's first NIC is called once
 * grub.c has put net.ifnames=0 biosdevname=0 on the kernel command line;
 * struct vd_fixup_nic makes sure only one configuration is renamed.
 * Configurations bound to other names get a "warning: " line
 * (docs/fixup.md, "Interface names").
 * SUSE wicked files (ifcfg format, named by the file) are renamed by
 * fixup.c. Not handled: IPv6 static stanzas, YAML flow mappings
 * ({...}) for whole interfaces.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "fixup/fixup_int.h"

static const char IFACES[] = "/etc/network/interfaces", IFCFG[] = "ifcfg", NETPLAN[] = "netplan";

/* ---- /etc/network/interfaces ---- */

static bool ifaces_is_stanza(const char *s, size_t n)
{
    static const char *const kw[] = {"iface", "auto", "mapping", "source", "source-directory",
                                     "allow-"};
    struct vd_fx_fields f;
    vd_fx_split(s, n, &f);
    if (f.n == 0)
        return false;
    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
        size_t kn = strlen(kw[i]);
        if (kw[i][kn - 1] == '-' ? vd_fx_starts(s + f.off[0], f.len[0], kw[i])
                                 : vd_fx_field_is(s, &f, 0, kw[i]))
            return true;
    }
    return false;
}

/* Options of a static stanza that make no sense with DHCP. */
static bool ifaces_is_static_opt(const char *s, size_t n)
{
    static const char *const opts[] = {"address",   "netmask",     "gateway",  "network",
                                       "broadcast", "pointopoint", "hwaddress"};
    struct vd_fx_fields f;
    vd_fx_split(s, n, &f);
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (vd_fx_field_is(s, &f, 0, opts[i]))
            return true;
    return false;
}

/* Whether name is what the new machine will call one of its NICs with
 * net.ifnames=0 (eth0, eth1...), so a stanza for it can stay. */
static bool nic_kernel_name(const char *s, size_t n)
{
    if (n < 4 || memcmp(s, "eth", 3))
        return false;
    for (size_t i = 3; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Token t[0..tn) names interface x (x itself, or its alias x:N / VLAN x.N). */
static bool ifaces_names(const char *t, size_t tn, const char *x, size_t xn)
{
    return xn && tn >= xn && !memcmp(t, x, xn) && (tn == xn || t[xn] == ':' || t[xn] == '.');
}

/* The line with every interface token naming x renamed to VD_FIXUP_NIC:
 * field 1 of an iface line, fields 1.. of auto and allow-* lines. */
static int ifaces_rename(const char *s, size_t n, const char *x, size_t xn,
                         struct vd_fixup_buf *tmp, bool *hit)
{
    struct vd_fx_fields f;
    vd_fx_split(s, n, &f);
    size_t copied = 0, last = vd_fx_field_is(s, &f, 0, "iface") ? 1 : f.n - 1;
    tmp->len = 0;
    *hit = false;
    for (size_t i = 1; i <= last && i < f.n; i++) {
        /* the last field holds the rest of the line: split it further */
        size_t o = f.off[i], e = o;
        while (e < f.off[i] + f.len[i] && s[e] != ' ' && s[e] != '\t')
            e++;
        if (!ifaces_names(s + o, e - o, x, xn))
            continue;
        if (vd_fx_put(tmp, s + copied, o - copied) < 0 || vd_fx_puts(tmp, VD_FIXUP_NIC) < 0)
            return -ENOMEM;
        copied = o + xn;
        *hit = true;
    }
    if (vd_fx_put(tmp, s + copied, n - copied) < 0)
        return -ENOMEM;
    return 0;
}

int vd_fixup_interfaces(const char *buf, size_t len, struct vd_fixup_nic *nic,
                        struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, IFACES, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    /* First pass: the primary interface (the first IPv4 one that is not
     * lo), whose name the new machine will not have. */
    char x[64] = "";
    size_t xn = 0, pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        struct vd_fx_fields f;
        vd_fx_split(l.s, l.len, &f);
        if (f.n >= 4 && vd_fx_field_is(l.s, &f, 0, "iface") && !vd_fx_field_is(l.s, &f, 1, "lo") &&
            vd_fx_field_is(l.s, &f, 2, "inet") && f.len[1] < sizeof(x)) {
            memcpy(x, l.s + f.off[1], f.len[1]);
            xn = f.len[1];
            x[xn] = '\0';
            break;
        }
    }
    bool rename = false;
    if (xn) {
        bool taken = nic && nic->taken;
        rename =
            !taken && strcmp(x, VD_FIXUP_NIC) != 0 && !memchr(x, ':', xn) && !memchr(x, '.', xn);
        if (nic)
            nic->taken = true;
    }
    bool done = false, in_primary = false, changed = false;
    struct vd_fixup_buf tmp = {0};
    pos = 0;
    l.no = 0;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        size_t ind = vd_fx_indent(l.s, l.len);
        const char *s = l.s + ind;
        size_t n = l.len - ind;
        if (n && s[0] != '#' && ifaces_is_stanza(s, n)) {
            in_primary = false;
            bool hit = false;
            if (rename) {
                if (ifaces_rename(l.s, l.len, x, xn, &tmp, &hit) < 0)
                    goto oom;
                if (hit) {
                    if (vd_fx_printf(
                            why, "line %u: %s -> " VD_FIXUP_NIC " (the new machine's first NIC)\n",
                            l.no, x) < 0)
                        goto oom;
                    l.s = tmp.data;
                    l.len = tmp.len;
                    changed = true;
                }
            }
            struct vd_fx_fields f;
            vd_fx_split(l.s, l.len, &f);
            bool inet = f.n >= 4 && vd_fx_field_is(l.s, &f, 0, "iface") &&
                        !vd_fx_field_is(l.s, &f, 1, "lo") && vd_fx_field_is(l.s, &f, 2, "inet");
            if (!done && inet) {
                /* the primary interface */
                done = true;
                if (!vd_fx_field_is(l.s, &f, 3, "static"))
                    goto copy;
                in_primary = changed = true;
                if (vd_fx_put(out, l.s, f.off[3]) < 0 || vd_fx_puts(out, "dhcp") < 0 ||
                    vd_fx_put(out, l.s + f.off[3] + 6, l.len - f.off[3] - 6) < 0 ||
                    vd_fx_puts(out, l.eol) < 0 ||
                    vd_fx_printf(why, "line %u: %.*s now uses DHCP (inet static -> inet dhcp)\n",
                                 l.no, (int)f.len[1], l.s + f.off[1]) < 0)
                    goto oom;
                continue;
            }
            if (f.n >= 2 && vd_fx_field_is(l.s, &f, 0, "iface") &&
                !vd_fx_field_is(l.s, &f, 1, "lo") && !hit &&
                !nic_kernel_name(l.s + f.off[1], f.len[1]) &&
                vd_fx_printf(why,
                             "warning: line %u: %.*s: the new machine will have no interface of "
                             "that name (its NICs are eth0, eth1...); left as is\n",
                             l.no, (int)(f.len[1] > 40 ? 40 : f.len[1]), l.s + f.off[1]) < 0)
                goto oom;
        } else if (in_primary && n && s[0] != '#' && ifaces_is_static_opt(s, n)) {
            if (vd_fx_printf(why,
                             "line %u: removed \"%.*s\" (a static setting of the old network)\n",
                             l.no, (int)(n > 80 ? 80 : n), s) < 0)
                goto oom;
            continue;
        }
    copy:
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            goto oom;
    }
    vd_fixup_buf_free(&tmp);
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, IFACES);
    return changed;
oom:
    vd_fixup_buf_free(&tmp);
    return vd_fx_oom(err, IFACES);
}

/* ---- ifcfg-* ---- */

/* KEY of a KEY=value line (after optional blanks), or false. */
static bool ifcfg_key(const char *s, size_t n, const char **k, size_t *kn, const char **v,
                      size_t *vn)
{
    size_t i = vd_fx_indent(s, n), st = i;
    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        i++;
    if (i == st || i >= n || s[i] != '=')
        return false;
    *k = s + st;
    *kn = i - st;
    *v = s + i + 1;
    *vn = n - i - 1;
    if (*vn >= 2 && ((*v)[0] == '"' || (*v)[0] == '\'') && (*v)[*vn - 1] == (*v)[0]) {
        (*v)++;
        *vn -= 2;
    }
    return true;
}

static bool ifcfg_key_is(const char *k, size_t kn, const char *name, bool numbered)
{
    size_t n = strlen(name);
    if (kn < n || memcmp(k, name, n))
        return false;
    if (kn == n)
        return true;
    if (!numbered)
        return false;
    for (size_t i = n; i < kn; i++)
        if (k[i] < '0' || k[i] > '9')
            return false;
    return true;
}

static bool ifcfg_val_is(const char *v, size_t vn, const char *want)
{
    size_t n = strlen(want);
    if (vn != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((v[i] | 0x20) != want[i])
            return false;
    return true;
}

int vd_fixup_ifcfg(const char *buf, size_t len, struct vd_fixup_nic *nic, struct vd_fixup_buf *out,
                   struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, IFCFG, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    /* First pass: is this an Ethernet interface we should touch? */
    size_t pos = 0;
    struct vd_fx_line l = {0};
    const char *k, *v;
    size_t kn, vn;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        if (!ifcfg_key(l.s, l.len, &k, &kn, &v, &vn))
            continue;
        bool skip = (ifcfg_key_is(k, kn, "DEVICE", false) && ifcfg_val_is(v, vn, "lo")) ||
                    (ifcfg_key_is(k, kn, "TYPE", false) && !ifcfg_val_is(v, vn, "ethernet")) ||
                    ifcfg_key_is(k, kn, "MASTER", false) || ifcfg_key_is(k, kn, "BRIDGE", false) ||
                    ifcfg_key_is(k, kn, "TEAM_MASTER", false) ||
                    (ifcfg_key_is(k, kn, "VLAN", false) && ifcfg_val_is(v, vn, "yes")) ||
                    (ifcfg_key_is(k, kn, "SLAVE", false) && ifcfg_val_is(v, vn, "yes"));
        if (skip) {
            if (vd_fx_put(out, buf, len) < 0 || vd_fx_put(why, "", 0) < 0)
                return vd_fx_oom(err, IFCFG);
            return 0;
        }
    }
    /* The interface's name: DEVICE=, else (initscripts) the file name,
     * which we do not see: then DEVICE=eth0 is added. */
    char dev[64] = "";
    bool has_dev = false;
    pos = 0;
    l.no = 0;
    while (vd_fx_next_line(buf, len, &pos, &l))
        if (ifcfg_key(l.s, l.len, &k, &kn, &v, &vn) && ifcfg_key_is(k, kn, "DEVICE", false)) {
            has_dev = true;
            snprintf(dev, sizeof(dev), "%.*s", (int)(vn > 60 ? 60 : vn), v);
        }
    bool rename = !(nic && nic->taken) && strcmp(dev, VD_FIXUP_NIC) != 0 && !strchr(dev, '.') &&
                  !strchr(dev, ':');
    if (nic)
        nic->taken = true;
    if (!rename && has_dev && !nic_kernel_name(dev, strlen(dev)) &&
        vd_fx_printf(why,
                     "warning: DEVICE=%s: the new machine will have no interface of that name "
                     "(its NICs are eth0, eth1...); left as is\n",
                     dev) < 0)
        return vd_fx_oom(err, IFCFG);
    bool changed = false, seen_proto = false;
    pos = 0;
    l.no = 0;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        if (ifcfg_key(l.s, l.len, &k, &kn, &v, &vn)) {
            if (ifcfg_key_is(k, kn, "BOOTPROTO", false)) {
                seen_proto = true;
                if (!ifcfg_val_is(v, vn, "dhcp")) {
                    if (vd_fx_printf(out, "BOOTPROTO=dhcp%s", l.eol) < 0 ||
                        vd_fx_printf(why, "line %u: BOOTPROTO=%.*s -> dhcp\n", l.no,
                                     (int)(vn > 40 ? 40 : vn), v) < 0)
                        return vd_fx_oom(err, IFCFG);
                    changed = true;
                    continue;
                }
            } else if (rename && (ifcfg_key_is(k, kn, "DEVICE", false) ||
                                  (ifcfg_key_is(k, kn, "NAME", false) && vn == strlen(dev) &&
                                   !memcmp(v, dev, vn)))) {
                if (vd_fx_printf(out, "%.*s=" VD_FIXUP_NIC "%s", (int)kn, k, l.eol) < 0 ||
                    vd_fx_printf(
                        why, "line %u: %.*s=%s -> " VD_FIXUP_NIC " (the new machine's first NIC)\n",
                        l.no, (int)kn, k, dev) < 0)
                    return vd_fx_oom(err, IFCFG);
                changed = true;
                continue;
            } else if (ifcfg_key_is(k, kn, "IPADDR", true) ||
                       ifcfg_key_is(k, kn, "NETMASK", true) ||
                       ifcfg_key_is(k, kn, "PREFIX", true) ||
                       ifcfg_key_is(k, kn, "GATEWAY", true) ||
                       ifcfg_key_is(k, kn, "HWADDR", false) ||
                       ifcfg_key_is(k, kn, "MACADDR", false) ||
                       ifcfg_key_is(k, kn, "UUID", false)) {
                bool pinned = k[0] == 'H' || k[0] == 'M' || k[0] == 'U';
                if (vd_fx_printf(why, "line %u: removed %.*s (%s)\n", l.no, (int)kn, k,
                                 pinned ? "pinned to the old NIC"
                                        : "a static setting of the old network") < 0)
                    return vd_fx_oom(err, IFCFG);
                changed = true;
                continue;
            }
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, IFCFG);
    }
    if (!seen_proto || (rename && !has_dev)) {
        if (out->len && out->data[out->len - 1] != '\n' &&
            vd_fx_puts(out, vd_fx_eol_of(buf, len)) < 0)
            return vd_fx_oom(err, IFCFG);
    }
    if (!seen_proto) {
        if (vd_fx_printf(out, "BOOTPROTO=dhcp%s", vd_fx_eol_of(buf, len)) < 0 ||
            vd_fx_puts(why, "added BOOTPROTO=dhcp\n") < 0)
            return vd_fx_oom(err, IFCFG);
        changed = true;
    }
    if (rename && !has_dev) {
        if (vd_fx_printf(out, "DEVICE=" VD_FIXUP_NIC "%s", vd_fx_eol_of(buf, len)) < 0 ||
            vd_fx_puts(why,
                       "added DEVICE=" VD_FIXUP_NIC
                       " (the new machine's first NIC; the file name no longer names it)\n") < 0)
            return vd_fx_oom(err, IFCFG);
        changed = true;
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, IFCFG);
    return changed;
}

/* ---- netplan ---- */

/* A YAML mapping line "key:" or "key: value" (not a list item, not a
 * comment): key span and the value span (trimmed, comment not removed). */
static bool yaml_key(const char *s, size_t n, size_t ind, const char **k, size_t *kn,
                     const char **v, size_t *vn)
{
    if (ind >= n || s[ind] == '#' || s[ind] == '-')
        return false;
    size_t i = ind;
    while (i < n && s[i] != ':' && s[i] != ' ' && s[i] != '\t')
        i++;
    if (i >= n || s[i] != ':' || (i + 1 < n && s[i + 1] != ' ' && s[i + 1] != '\t'))
        return false;
    *k = s + ind;
    *kn = i - ind;
    size_t j = i + 1;
    j += vd_fx_indent(s + j, n - j);
    size_t e = n;
    while (e > j && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    *v = s + j;
    *vn = e - j;
    return true;
}

static bool yaml_key_is(const char *k, size_t kn, const char *name)
{
    return kn == strlen(name) && !memcmp(k, name, kn);
}

/* Scan the match block starting after the line ending at pos (the
 * "match:" line, indent ind): does it match on the MAC address only? */
static bool np_match_mac_only(const char *buf, size_t len, size_t pos, size_t ind)
{
    struct vd_fx_line c = {0};
    bool mac = false, other = false;
    while (vd_fx_next_line(buf, len, &pos, &c)) {
        size_t ci = vd_fx_indent(c.s, c.len);
        if (ci == c.len || c.s[ci] == '#')
            continue;
        if (ci <= ind)
            break;
        const char *ck, *cv;
        size_t ckn, cvn;
        if (yaml_key(c.s, c.len, ci, &ck, &ckn, &cv, &cvn) && yaml_key_is(ck, ckn, "macaddress"))
            mac = true;
        else
            other = true;
    }
    return mac && !other;
}

/* Indent of the interface's own keys: the smallest indent in its block
 * (the lines after pos deeper than the id at id_ind); 0 if empty. Taking
 * the smallest keeps a second pass stable on badly indented files. */
static size_t np_iface_key_ind(const char *buf, size_t len, size_t pos, size_t id_ind)
{
    struct vd_fx_line c = {0};
    size_t key_ind = 0;
    while (vd_fx_next_line(buf, len, &pos, &c)) {
        size_t ci = vd_fx_indent(c.s, c.len);
        if (ci == c.len || c.s[ci] == '#')
            continue;
        if (ci <= id_ind)
            break;
        if (!key_ind || ci < key_ind)
            key_ind = ci;
    }
    return key_ind;
}

/* The interface block after pos (keys at key_ind): 0 without a match
 * block, 1 with one on the MAC address only, 2 with one on more. */
static int np_iface_match(const char *buf, size_t len, size_t pos, size_t id_ind, size_t key_ind)
{
    struct vd_fx_line c = {0};
    while (vd_fx_next_line(buf, len, &pos, &c)) {
        size_t ci = vd_fx_indent(c.s, c.len);
        if (ci == c.len || c.s[ci] == '#')
            continue;
        if (ci <= id_ind)
            break;
        const char *ck, *cv;
        size_t ckn, cvn;
        if (ci == key_ind && yaml_key(c.s, c.len, ci, &ck, &ckn, &cv, &cvn) &&
            yaml_key_is(ck, ckn, "match") && cvn == 0)
            return np_match_mac_only(buf, len, pos, ci) ? 1 : 2;
    }
    return 0;
}

int vd_fixup_netplan(const char *buf, size_t len, struct vd_fixup_nic *nic,
                     struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, NETPLAN, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    const char *eol = vd_fx_eol_of(buf, len);
    bool changed = false;
    /* Indents: of "ethernets:" (its children are interface ids), of the
     * current interface id, and of a key whose block we are dropping. */
    size_t eth_ind = 0, id_ind = 0, drop_ind = 0, key_ind = 0;
    bool in_eth = false, in_id = false, dropping = false, dhcp_seen = false, mac_only = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    char idname[128] = "";
    for (;;) {
        bool more = vd_fx_next_line(buf, len, &pos, &l);
        size_t ind = more ? vd_fx_indent(l.s, l.len) : 0;
        bool blank = more && (ind == l.len || l.s[ind] == '#');
        const char *k = NULL, *v = NULL;
        size_t kn = 0, vn = 0;
        bool is_key = more && !blank && yaml_key(l.s, l.len, ind, &k, &kn, &v, &vn);
        bool item = more && !blank && l.s[ind] == '-';
        /* A dropped key owns deeper lines and list items at its own indent. */
        if (dropping && more && (blank || ind > drop_ind || (item && ind == drop_ind)))
            continue;
        dropping = false;
        /* Leaving the interface: add dhcp4 if it had none. */
        if (in_id && (!more || (!blank && ind <= id_ind))) {
            if (!dhcp_seen && key_ind) {
                if ((out->len && out->data[out->len - 1] != '\n' && vd_fx_puts(out, eol) < 0) ||
                    vd_fx_printf(out, "%*sdhcp4: true%s", (int)key_ind, "", eol) < 0 ||
                    vd_fx_printf(why, "%s: added dhcp4: true\n", idname) < 0)
                    return vd_fx_oom(err, NETPLAN);
                changed = true;
            }
            in_id = false;
        }
        if (!more)
            break;
        if (in_eth && !blank && ind <= eth_ind)
            in_eth = false;
        if (is_key && !in_eth && yaml_key_is(k, kn, "ethernets") && vn == 0) {
            in_eth = true;
            eth_ind = ind;
            id_ind = 0;
        } else if (is_key && in_eth && !in_id && ind > eth_ind && vn == 0) {
            in_id = true;
            id_ind = ind;
            key_ind = np_iface_key_ind(buf, len, pos, ind);
            dhcp_seen = false;
            int match = np_iface_match(buf, len, pos, ind, key_ind);
            mac_only = match == 1;
            snprintf(idname, sizeof(idname), "%.*s", (int)(kn > 100 ? 100 : kn), k);
            /* Without a match block (or with a MAC one, dropped below),
             * the id is the interface's name: the first becomes eth0. */
            bool by_name = match != 2;
            bool rename = by_name && !(nic && nic->taken) && strcmp(idname, VD_FIXUP_NIC) != 0 &&
                          !strchr(idname, '.') && !strchr(idname, ':') && kn <= 100;
            if (nic)
                nic->taken = true;
            if (rename) {
                if (vd_fx_put(out, l.s, ind) < 0 ||
                    vd_fx_printf(out, VD_FIXUP_NIC ":%.*s%s", (int)(l.len - ind - kn - 1),
                                 l.s + ind + kn + 1, l.eol) < 0 ||
                    vd_fx_printf(why,
                                 "line %u: %s -> " VD_FIXUP_NIC " (the new machine's first NIC)\n",
                                 l.no, idname) < 0)
                    return vd_fx_oom(err, NETPLAN);
                snprintf(idname, sizeof(idname), "%s", VD_FIXUP_NIC);
                changed = true;
                continue;
            }
            if (by_name && !nic_kernel_name(idname, strlen(idname)) &&
                vd_fx_printf(why,
                             "warning: line %u: %s: the new machine will have no interface of "
                             "that name (its NICs are eth0, eth1...); left as is\n",
                             l.no, idname) < 0)
                return vd_fx_oom(err, NETPLAN);
        } else if (is_key && in_id && ind > id_ind) {
            if (ind == key_ind) {
                if (yaml_key_is(k, kn, "dhcp4")) {
                    dhcp_seen = true;
                    bool yes = (vn == 4 && !memcmp(v, "true", 4)) ||
                               (vn == 3 && !memcmp(v, "yes", 3)) ||
                               (vn == 2 && !memcmp(v, "on", 2));
                    if (!yes) {
                        if (vd_fx_printf(out, "%*sdhcp4: true%s", (int)ind, "", l.eol) < 0 ||
                            vd_fx_printf(why, "line %u: %s: dhcp4: %.*s -> true\n", l.no, idname,
                                         (int)(vn > 20 ? 20 : vn), v) < 0)
                            return vd_fx_oom(err, NETPLAN);
                        changed = true;
                        continue;
                    }
                } else if (yaml_key_is(k, kn, "addresses") || yaml_key_is(k, kn, "gateway4") ||
                           yaml_key_is(k, kn, "gateway6") || yaml_key_is(k, kn, "routes") ||
                           (mac_only && yaml_key_is(k, kn, "set-name")) ||
                           (mac_only && yaml_key_is(k, kn, "match"))) {
                    const char *reason = k[0] == 's'
                                             ? "it needs the MAC match, which names the old NIC"
                                         : k[0] == 'm' ? "it matched the old NIC's MAC address"
                                                       : "a static setting of the old network";
                    if (vd_fx_printf(why, "line %u: %s: removed %.*s (%s)\n", l.no, idname, (int)kn,
                                     k, reason) < 0)
                        return vd_fx_oom(err, NETPLAN);
                    dropping = true;
                    drop_ind = ind;
                    changed = true;
                    continue;
                }
            } else if (yaml_key_is(k, kn, "macaddress") && ind > key_ind) {
                /* inside a match block that also matches on something else */
                if (vd_fx_printf(why,
                                 "line %u: %s: removed the match on the old NIC's MAC address\n",
                                 l.no, idname) < 0)
                    return vd_fx_oom(err, NETPLAN);
                changed = true;
                continue;
            }
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, NETPLAN);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, NETPLAN);
    return changed;
}

/* ---- INI-style files: NetworkManager keyfiles, systemd-networkd ---- */

static const char NMCONN[] = "NetworkManager keyfile", NETWORKD[] = "systemd-networkd .network";

/* "[name]" section header: its name span, or false. */
static bool ini_section(const char *s, size_t n, const char **name, size_t *nn)
{
    size_t i = vd_fx_indent(s, n);
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n - i < 2 || s[i] != '[' || s[n - 1] != ']')
        return false;
    *name = s + i + 1;
    *nn = n - i - 2;
    return true;
}

/* "key=value" (blanks around '=' allowed, as both formats do). */
static bool ini_kv(const char *s, size_t n, const char **k, size_t *kn, const char **v, size_t *vn)
{
    size_t i = vd_fx_indent(s, n);
    if (i >= n || s[i] == '#' || s[i] == ';' || s[i] == '[')
        return false;
    const char *eq = memchr(s + i, '=', n - i);
    if (!eq)
        return false;
    size_t e = (size_t)(eq - s);
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    *k = s + i;
    *kn = e - i;
    size_t j = (size_t)(eq - s) + 1;
    j += vd_fx_indent(s + j, n - j);
    size_t ve = n;
    while (ve > j && (s[ve - 1] == ' ' || s[ve - 1] == '\t'))
        ve--;
    *v = s + j;
    *vn = ve - j;
    return true;
}

static bool span_is(const char *s, size_t n, const char *w)
{
    return n == strlen(w) && !memcmp(s, w, n);
}

/* Key name with an optional number suffix: address1, route2... */
static bool ini_key_numbered(const char *k, size_t kn, const char *name)
{
    size_t n = strlen(name);
    if (kn < n || memcmp(k, name, n))
        return false;
    for (size_t i = n; i < kn; i++)
        if (k[i] < '0' || k[i] > '9')
            return false;
    return true;
}

int vd_fixup_nmconnection(const char *buf, size_t len, struct vd_fixup_buf *out,
                          struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, NMCONN, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    /* Only a plain Ethernet profile (nm-settings-keyfile(5): type=ethernet
     * or 802-3-ethernet, not a port of a bond or bridge). */
    size_t pos = 0;
    struct vd_fx_line l = {0};
    const char *sec = "", *k, *v;
    size_t secn = 0, kn, vn;
    bool ether = false, port = false;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        if (ini_section(l.s, l.len, &sec, &secn))
            continue;
        if (span_is(sec, secn, "connection") && ini_kv(l.s, l.len, &k, &kn, &v, &vn)) {
            if (span_is(k, kn, "type"))
                ether = span_is(v, vn, "ethernet") || span_is(v, vn, "802-3-ethernet");
            if (span_is(k, kn, "master") || span_is(k, kn, "controller") ||
                span_is(k, kn, "slave-type") || span_is(k, kn, "port-type"))
                port = true;
        }
    }
    if (!ether || port) {
        if (vd_fx_put(out, buf, len) < 0 || vd_fx_put(why, "", 0) < 0)
            return vd_fx_oom(err, NMCONN);
        return 0;
    }
    bool changed = false;
    pos = 0;
    l.no = 0;
    sec = "";
    secn = 0;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        const char *why_s = NULL;
        if (!ini_section(l.s, l.len, &sec, &secn) && ini_kv(l.s, l.len, &k, &kn, &v, &vn)) {
            if (span_is(sec, secn, "connection") && span_is(k, kn, "interface-name"))
                why_s = "without it the profile applies to whichever Ethernet NIC the new "
                        "machine has";
            else if ((span_is(sec, secn, "ethernet") || span_is(sec, secn, "802-3-ethernet")) &&
                     span_is(k, kn, "mac-address"))
                why_s = "pinned to the old NIC";
            else if (span_is(sec, secn, "ipv4") &&
                     (ini_key_numbered(k, kn, "address") || ini_key_numbered(k, kn, "addresses") ||
                      ini_key_numbered(k, kn, "route") || ini_key_numbered(k, kn, "routes") ||
                      span_is(k, kn, "gateway")))
                why_s = "a static setting of the old network";
            else if (span_is(sec, secn, "ipv4") && span_is(k, kn, "method") &&
                     span_is(v, vn, "manual")) {
                if (vd_fx_put(out, l.s, (size_t)(v - l.s)) < 0 ||
                    vd_fx_printf(out, "auto%s", l.eol) < 0 ||
                    vd_fx_printf(why, "line %u: [ipv4] method=manual -> auto (DHCP)\n", l.no) < 0)
                    return vd_fx_oom(err, NMCONN);
                changed = true;
                continue;
            }
        }
        if (why_s) {
            if (vd_fx_printf(why, "line %u: removed %.*s (%s)\n", l.no, (int)(kn > 40 ? 40 : kn), k,
                             why_s) < 0)
                return vd_fx_oom(err, NMCONN);
            changed = true;
            continue;
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, NMCONN);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, NMCONN);
    return changed;
}

/* DHCP= values that leave IPv4 without DHCP (systemd.network(5)). */
static bool networkd_no_dhcp4(const char *v, size_t vn)
{
    return span_is(v, vn, "no") || span_is(v, vn, "false") || span_is(v, vn, "off") ||
           span_is(v, vn, "0") || span_is(v, vn, "ipv6");
}

/* Whether a [Match] Name= list (globs, space-separated) takes eth0. */
static bool networkd_names_eth0(const char *names)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", names);
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (fnmatch(t, VD_FIXUP_NIC, 0) == 0 || nic_kernel_name(t, strlen(t)))
            return true;
    return false;
}

int vd_fixup_networkd(const char *buf, size_t len, struct vd_fixup_nic *nic,
                      struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, NETWORKD, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    /* First pass: is it a physical Ethernet link's file, and what does its
     * [Match] name? */
    size_t pos = 0;
    struct vd_fx_line l = {0};
    const char *sec = "", *k, *v;
    size_t secn = 0, kn, vn;
    bool skip = false, has_network = false, has_name = false;
    char name[64] = "";
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        if (ini_section(l.s, l.len, &sec, &secn)) {
            has_network |= span_is(sec, secn, "Network");
            continue;
        }
        if (!ini_kv(l.s, l.len, &k, &kn, &v, &vn))
            continue;
        if (span_is(sec, secn, "Match") && span_is(k, kn, "Name")) {
            has_name = true;
            snprintf(name, sizeof(name), "%.*s", (int)(vn > 60 ? 60 : vn), v);
            skip |= span_is(v, vn, "lo");
        }
        if (span_is(sec, secn, "Match") && (span_is(k, kn, "Type") && !span_is(v, vn, "ether")))
            skip = true;
        if (span_is(sec, secn, "Network") &&
            (span_is(k, kn, "Bond") || span_is(k, kn, "Bridge") || span_is(k, kn, "VRF")))
            skip = true;
    }
    if (skip) {
        if (vd_fx_put(out, buf, len) < 0 || vd_fx_put(why, "", 0) < 0)
            return vd_fx_oom(err, NETWORKD);
        return 0;
    }
    /* A single name (not a list or a glob) that the new machine will not
     * have is renamed; a glob or list is left, with a warning if it cannot
     * match eth0. */
    bool single = has_name && name[0] && !strpbrk(name, " \t*?[!");
    bool rename = single && !(nic && nic->taken) && strcmp(name, VD_FIXUP_NIC) != 0;
    if (nic && has_name)
        nic->taken = true;
    if (has_name && !rename && !networkd_names_eth0(name))
        if (vd_fx_printf(why,
                         "warning: [Match] Name=%s: the new machine's NICs are eth0, eth1...; "
                         "left as is\n",
                         name) < 0)
            return vd_fx_oom(err, NETWORKD);
    bool changed = false, dhcp_seen = false, dropping = false;
    pos = 0;
    l.no = 0;
    sec = "";
    secn = 0;
    const char *eol = vd_fx_eol_of(buf, len);
    for (;;) {
        bool more = vd_fx_next_line(buf, len, &pos, &l);
        const char *nsec;
        size_t nsecn;
        bool is_sec = more && ini_section(l.s, l.len, &nsec, &nsecn);
        /* Leaving [Network] (or the file) without DHCP=: add it. */
        if ((!more || is_sec) && span_is(sec, secn, "Network") && !dhcp_seen) {
            if ((out->len && out->data[out->len - 1] != '\n' && vd_fx_puts(out, eol) < 0) ||
                vd_fx_printf(out, "DHCP=ipv4%s", eol) < 0 ||
                vd_fx_puts(why, "[Network]: added DHCP=ipv4\n") < 0)
                return vd_fx_oom(err, NETWORKD);
            dhcp_seen = changed = true;
        }
        if (!more)
            break;
        if (is_sec) {
            sec = nsec;
            secn = nsecn;
            /* static addresses and routes of the old network */
            dropping = span_is(sec, secn, "Address") || span_is(sec, secn, "Route");
            if (dropping) {
                if (vd_fx_printf(why,
                                 "line %u: removed the [%.*s] section (a static setting of "
                                 "the old network)\n",
                                 l.no, (int)secn, sec) < 0)
                    return vd_fx_oom(err, NETWORKD);
                changed = true;
                continue;
            }
        } else if (dropping) {
            continue;
        } else if (ini_kv(l.s, l.len, &k, &kn, &v, &vn)) {
            const char *why_s = NULL;
            if (span_is(sec, secn, "Match") &&
                (span_is(k, kn, "MACAddress") || span_is(k, kn, "PermanentMACAddress"))) {
                why_s = "it matched the old NIC's MAC address";
                if (!has_name) {
                    /* an empty [Match] would take every link, lo too */
                    if (vd_fx_printf(out, "Name=" VD_FIXUP_NIC "%s", l.eol) < 0)
                        return vd_fx_oom(err, NETWORKD);
                    has_name = true;
                    if (nic)
                        nic->taken = true;
                    why_s = "it matched the old NIC's MAC address; Name=eth0 instead";
                }
            } else if (rename && span_is(sec, secn, "Match") && span_is(k, kn, "Name")) {
                if (vd_fx_put(out, l.s, (size_t)(v - l.s)) < 0 ||
                    vd_fx_printf(out, VD_FIXUP_NIC "%s", l.eol) < 0 ||
                    vd_fx_printf(
                        why, "line %u: Name=%s -> " VD_FIXUP_NIC " (the new machine's first NIC)\n",
                        l.no, name) < 0)
                    return vd_fx_oom(err, NETWORKD);
                changed = true;
                continue;
            } else if (span_is(sec, secn, "Network") &&
                       (span_is(k, kn, "Address") || span_is(k, kn, "Gateway"))) {
                why_s = "a static setting of the old network";
            } else if (span_is(sec, secn, "Network") && span_is(k, kn, "DHCP")) {
                dhcp_seen = true;
                if (networkd_no_dhcp4(v, vn)) {
                    const char *nv = span_is(v, vn, "ipv6") ? "yes" : "ipv4";
                    if (vd_fx_put(out, l.s, (size_t)(v - l.s)) < 0 ||
                        vd_fx_printf(out, "%s%s", nv, l.eol) < 0 ||
                        vd_fx_printf(why, "line %u: DHCP=%.*s -> %s\n", l.no,
                                     (int)(vn > 20 ? 20 : vn), v, nv) < 0)
                        return vd_fx_oom(err, NETWORKD);
                    changed = true;
                    continue;
                }
            }
            if (why_s) {
                if (vd_fx_printf(why, "line %u: removed %.*s (%s)\n", l.no, (int)kn, k, why_s) < 0)
                    return vd_fx_oom(err, NETWORKD);
                changed = true;
                continue;
            }
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, NETWORKD);
    }
    if (!has_network) {
        if ((out->len && out->data[out->len - 1] != '\n' && vd_fx_puts(out, eol) < 0) ||
            vd_fx_printf(out, "[Network]%sDHCP=ipv4%s", eol, eol) < 0 ||
            vd_fx_puts(why, "added [Network] DHCP=ipv4\n") < 0)
            return vd_fx_oom(err, NETWORKD);
        changed = true;
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, NETWORKD);
    return changed;
}

bool vd_fx_link_binds_mac(const char *buf, size_t len)
{
    size_t pos = 0;
    struct vd_fx_line l = {0};
    const char *sec = "", *k, *v;
    size_t secn = 0, kn, vn;
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        if (ini_section(l.s, l.len, &sec, &secn))
            continue;
        if (span_is(sec, secn, "Match") && ini_kv(l.s, l.len, &k, &kn, &v, &vn) &&
            (span_is(k, kn, "MACAddress") || span_is(k, kn, "PermanentMACAddress")))
            return true;
    }
    return false;
}
