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
 * Not handled: interface renaming (an eth0 stanza stays eth0; use
 * net.ifnames=0 or rename it after import), IPv6 static stanzas,
 * NetworkManager keyfiles, SUSE wicked, systemd-networkd .network files,
 * YAML flow mappings ({...}) for whole interfaces.
 */
#include <errno.h>
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

int vd_fixup_interfaces(const char *buf, size_t len, struct vd_fixup_buf *out,
                        struct vd_fixup_buf *why, struct vd_error *err)
{
    int rc = vd_fx_check_text(buf, len, IFACES, err);
    if (rc < 0)
        return rc;
    vd_fx_begin(out, why);
    bool done = false, in_primary = false, changed = false;
    size_t pos = 0;
    struct vd_fx_line l = {0};
    while (vd_fx_next_line(buf, len, &pos, &l)) {
        size_t ind = vd_fx_indent(l.s, l.len);
        const char *s = l.s + ind;
        size_t n = l.len - ind;
        if (n && s[0] != '#' && ifaces_is_stanza(s, n)) {
            in_primary = false;
            struct vd_fx_fields f;
            vd_fx_split(l.s, l.len, &f);
            bool inet = f.n >= 4 && vd_fx_field_is(l.s, &f, 0, "iface") &&
                        !vd_fx_field_is(l.s, &f, 1, "lo") && vd_fx_field_is(l.s, &f, 2, "inet");
            if (!done && inet) {
                /* the primary interface: the first IPv4 one that is not lo */
                done = true;
                if (!vd_fx_field_is(l.s, &f, 3, "static"))
                    goto copy;
                in_primary = changed = true;
                if (vd_fx_put(out, l.s, f.off[3]) < 0 || vd_fx_puts(out, "dhcp") < 0 ||
                    vd_fx_put(out, l.s + f.off[3] + 6, l.len - f.off[3] - 6) < 0 ||
                    vd_fx_puts(out, l.eol) < 0 ||
                    vd_fx_printf(why, "line %u: %.*s now uses DHCP (inet static -> inet dhcp)\n",
                                 l.no, (int)f.len[1], l.s + f.off[1]) < 0)
                    return vd_fx_oom(err, IFACES);
                continue;
            }
        } else if (in_primary && n && s[0] != '#' && ifaces_is_static_opt(s, n)) {
            if (vd_fx_printf(why,
                             "line %u: removed \"%.*s\" (a static setting of the old network)\n",
                             l.no, (int)(n > 80 ? 80 : n), s) < 0)
                return vd_fx_oom(err, IFACES);
            continue;
        }
    copy:
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, IFACES);
    }
    if (vd_fx_put(out, "", 0) < 0 || vd_fx_put(why, "", 0) < 0)
        return vd_fx_oom(err, IFACES);
    return changed;
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

int vd_fixup_ifcfg(const char *buf, size_t len, struct vd_fixup_buf *out, struct vd_fixup_buf *why,
                   struct vd_error *err)
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
            } else if (ifcfg_key_is(k, kn, "IPADDR", true) ||
                       ifcfg_key_is(k, kn, "NETMASK", true) ||
                       ifcfg_key_is(k, kn, "PREFIX", true) ||
                       ifcfg_key_is(k, kn, "GATEWAY", true) ||
                       ifcfg_key_is(k, kn, "HWADDR", false) ||
                       ifcfg_key_is(k, kn, "MACADDR", false) ||
                       ifcfg_key_is(k, kn, "UUID", false)) {
                bool nic = k[0] == 'H' || k[0] == 'M' || k[0] == 'U';
                if (vd_fx_printf(why, "line %u: removed %.*s (%s)\n", l.no, (int)kn, k,
                                 nic ? "pinned to the old NIC"
                                     : "a static setting of the old network") < 0)
                    return vd_fx_oom(err, IFCFG);
                changed = true;
                continue;
            }
        }
        if (vd_fx_put(out, l.s, l.len) < 0 || vd_fx_puts(out, l.eol) < 0)
            return vd_fx_oom(err, IFCFG);
    }
    if (!seen_proto) {
        if ((out->len && out->data[out->len - 1] != '\n' &&
             vd_fx_puts(out, vd_fx_eol_of(buf, len)) < 0) ||
            vd_fx_printf(out, "BOOTPROTO=dhcp%s", vd_fx_eol_of(buf, len)) < 0 ||
            vd_fx_puts(why, "added BOOTPROTO=dhcp\n") < 0)
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

/* Does the interface block after pos (keys at key_ind) have a match
 * block on the MAC address only? */
static bool np_iface_mac_only(const char *buf, size_t len, size_t pos, size_t id_ind,
                              size_t key_ind)
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
            return np_match_mac_only(buf, len, pos, ci);
    }
    return false;
}

int vd_fixup_netplan(const char *buf, size_t len, struct vd_fixup_buf *out,
                     struct vd_fixup_buf *why, struct vd_error *err)
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
            mac_only = np_iface_mac_only(buf, len, pos, ind, key_ind);
            snprintf(idname, sizeof(idname), "%.*s", (int)(kn > 100 ? 100 : kn), k);
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
