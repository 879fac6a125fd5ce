/*
 * Fixup for Windows guests: the registry changes that let Windows boot and
 * reach the network on EC2's virtual hardware, made offline in the SYSTEM
 * hive (Windows/System32/config/SYSTEM) with hivex (libhivex, the library
 * virt-v2v and virt-win-reg use).
 *
 * What AWS documents, and what we do for it:
 *   - "Programmatic modifications made to VMs by VM Import/Export"
 *     (https://docs.aws.amazon.com/vm-import/latest/userguide/import-modify-vm.html),
 *     Windows: "Modifying registry settings to make the VM bootable." The
 *     page names no keys. What makes a Windows disk bootable behind another
 *     storage controller is documented by Microsoft (KB 922976, "Error
 *     message occurs after you change the SATA mode of the boot drive",
 *     STOP 0x7B INACCESSIBLE_BOOT_DEVICE): setup disables the storage
 *     drivers it did not need, and the new controller's driver must be set
 *     to boot start (Services\<driver>\Start = 0) before the move. We do
 *     that for the drivers in vd_fixup_win_boot_drivers whose service key
 *     exists; we never create a service (installing drivers is not done).
 *   - "Required configuration for VM export"
 *     (https://docs.aws.amazon.com/vm-import/latest/userguide/prepare-vm-image.html):
 *     "Your source VM must have a functional DHCP client service. Ensure
 *     that the service can start and is not disabled administratively. All
 *     static IP addresses currently assigned to the source VM are removed
 *     during import." -> Services\Dhcp\Start 4 (disabled) becomes 2
 *     (automatic, Windows' default); each Tcpip\Parameters\Interfaces\{..}
 *     with EnableDHCP = 0 gets EnableDHCP = 1 and its IPAddress, SubnetMask,
 *     DefaultGateway and DefaultGatewayMetric emptied (NameServer stays).
 *     Windows: "Set the RealTimeIsUniversal registry key" (EC2 keeps the
 *     hardware clock in UTC; see "Setting the time",
 *     https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/windows-set-time.html)
 *     -> Control\TimeZoneInformation\RealTimeIsUniversal = REG_DWORD 1.
 *
 * All edits go to the current control set (Select\Current -> ControlSetNNN),
 * which is what CurrentControlSet is at boot.
 *
 *   ROOT/Windows/System32/config/          (names matched without case)
 *     SYSTEM              <- rename(.SYSTEM.vdisk-tmp)   hivex_commit() output
 *     SYSTEM.vdisk.orig   hard link to the original inode (a copy if the
 *                         filesystem has no hard links); never overwritten
 *
 * Safety: the path is walked one component at a time from the root folder
 * with O_NOFOLLOW, so a symlink never leads outside the guest. A hive whose
 * base block says a write was interrupted (sequence numbers differ) is
 * refused: Windows would replay SYSTEM.LOG1/LOG2 over our edits.
 *
 * Not done: installing drivers (AWS PV, ENA, NVMe), CriticalDeviceDatabase
 * or DriverDatabase entries (needed only for a driver that was never
 * installed), StartOverride subkeys, other control sets (LastKnownGood),
 * and the SOFTWARE hive. windows_ntfs.c reuses vd_fx_win_fix() for an NTFS
 * inside a vdiskfs view.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "fixup/fixup_int.h"
#include "fixup/windows.h"

const char *const vd_fixup_win_boot_drivers[] = {
    "storahci", /* Windows 8+ AHCI SATA */
    "msahci",   /* Windows Vista/7 AHCI SATA (KB 922976) */
    "iaStorV",  /* Intel RAID/AHCI (KB 922976) */
    "stornvme", /* Windows' own NVMe driver: EBS volumes on Nitro are NVMe */
    "AWSNVMe",  /* the AWS NVMe driver, where installed */
    "atapi",    /* IDE: Xen HVM instances emulate an IDE controller */
    "intelide", "pciide", NULL};

int vd_fixup_win_controlset(unsigned long current, char *buf, size_t cap)
{
    if (current == 0 || current > 999 || cap < 14)
        return -EINVAL;
    snprintf(buf, cap, "ControlSet%03lu", current);
    return 0;
}

int vd_fixup_win_hive_clean(const unsigned char *buf, size_t len)
{
    /* base block: "regf", u32 primary sequence, u32 secondary sequence */
    if (len < 512 || memcmp(buf, "regf", 4))
        return -EINVAL;
    return le32(buf + 4) == le32(buf + 8);
}

bool vd_fixup_win_multisz_addrs(const char *buf, size_t len, char *out, size_t cap)
{
    bool any = false;
    size_t o = 0, start = 0;
    char cur[64];
    size_t cn = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i + 1 < len; i += 2) {
        unsigned c = (unsigned char)buf[i] | (unsigned)(unsigned char)buf[i + 1] << 8;
        if (c != 0) {
            if (cn < sizeof(cur) - 1)
                cur[cn++] = c < 0x80 ? (char)c : '?';
            continue;
        }
        if (cn == 0)
            break; /* the empty string ends the list */
        cur[cn] = '\0';
        if (strcmp(cur, "0.0.0.0"))
            any = true;
        if (cap && o + 3 < cap) {
            int w = snprintf(out + o, cap - o, "%s%s", o > start ? ", " : "", cur);
            o = w > 0 && (size_t)w < cap - o ? o + (size_t)w : cap - 1;
        }
        cn = 0;
    }
    if (cn) { /* not terminated: take what is there */
        cur[cn] = '\0';
        if (strcmp(cur, "0.0.0.0"))
            any = true;
        if (cap && o + 3 < cap)
            snprintf(out + o, cap - o, "%s%s", o > start ? ", " : "", cur);
    }
    return any;
}

/* ---- the path, matched without case, never following symlinks ---- */

/* Find name in dfd without regard to case (an exact match wins); the
 * name as stored goes to found. 0, or -ENOENT, -errno. */
static int win_find(int dfd, const char *name, char *found, size_t cap)
{
    int d = dup(dfd);
    if (d < 0)
        return -errno;
    DIR *dh = fdopendir(d);
    if (!dh) {
        int e = -errno;
        close(d);
        return e;
    }
    int rc = -ENOENT;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (!strcmp(de->d_name, name)) {
            snprintf(found, cap, "%s", de->d_name);
            rc = 0;
            break;
        }
        if (rc == -ENOENT && !strcasecmp(de->d_name, name)) {
            snprintf(found, cap, "%s", de->d_name);
            rc = 0; /* keep looking for an exact match */
        }
    }
    closedir(dh);
    return rc;
}

/* The config folder's fd and the SYSTEM file's name as stored, with the
 * guest path "/Windows/System32/config/SYSTEM" as found into gpath.
 * -ENOENT if any part is missing or is not a folder / regular file. */
static int win_locate(int rootfd, int *cfgfd, char *sysname, size_t cap, char *gpath, size_t gcap)
{
    static const char *const dirs[] = {"Windows", "System32", "config"};
    int fd = dup(rootfd);
    if (fd < 0)
        return -errno;
    size_t g = 0;
    gpath[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        char nm[256];
        int r = win_find(fd, dirs[i], nm, sizeof(nm));
        int nfd = r < 0 ? r : openat(fd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (r == 0 && nfd < 0)
            r = errno == ELOOP || errno == ENOTDIR ? -ENOENT : -errno;
        close(fd);
        if (r < 0)
            return r;
        fd = nfd;
        g += (size_t)snprintf(gpath + g, g < gcap ? gcap - g : 0, "/%s", nm);
    }
    struct stat st;
    int r = win_find(fd, "SYSTEM", sysname, cap);
    if (r == 0 && (fstatat(fd, sysname, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)))
        r = -ENOENT;
    if (r < 0) {
        close(fd);
        return r;
    }
    if (g < gcap)
        snprintf(gpath + g, gcap - g, "/%s", sysname);
    *cfgfd = fd;
    return 0;
}

bool vd_fixup_is_windows_root(const char *root)
{
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return false;
    int cfg;
    char nm[256], gp[1100];
    bool ok = win_locate(rootfd, &cfg, nm, sizeof(nm), gp, sizeof(gp)) == 0;
    if (ok)
        close(cfg);
    close(rootfd);
    return ok;
}

#ifdef HAVE_HIVEX
#include <hivex.h>

struct win_ctx {
    hive_h *h;
    const char *label; /* ROOT/Windows/System32/config/SYSTEM, for messages */
    char cs[16];       /* ControlSetNNN */
    struct vd_fixup_buf why;
    unsigned changes;
};

static const char *win_start_name(uint32_t v)
{
    static const char *const n[] = {"boot", "system", "automatic", "manual", "disabled"};
    return v < 5 ? n[v] : "unknown";
}

/* 1 and *v for a REG_DWORD value, 0 if absent, -EINVAL for another type. */
static int win_dword(hive_h *h, hive_node_h node, const char *name, uint32_t *v)
{
    errno = 0;
    hive_value_h val = hivex_node_get_value(h, node, name);
    if (!val)
        return errno && errno != ENOENT ? -errno : 0;
    hive_type t;
    size_t len;
    char *data = hivex_value_value(h, val, &t, &len);
    if (!data)
        return -errno;
    int rc = -EINVAL;
    if (t == hive_t_REG_DWORD && len >= 4) {
        *v = le32((const unsigned char *)data);
        rc = 1;
    }
    free(data);
    return rc;
}

/* A value's raw bytes (malloc'd) and type; NULL if absent. */
static char *win_raw(hive_h *h, hive_node_h node, const char *name, hive_type *t, size_t *len)
{
    errno = 0;
    hive_value_h val = hivex_node_get_value(h, node, name);
    return val ? hivex_value_value(h, val, t, len) : NULL;
}

/* Set one value (hivex copies the data). 0, or -1 with errno set. */
static int win_set(struct win_ctx *c, hive_node_h node, const char *name, hive_type t,
                   const void *data, size_t len)
{
    hive_set_value v = {.key = (char *)name, .t = t, .len = len, .value = (char *)data};
    errno = 0;
    return hivex_node_set_value(c->h, node, &v, 0) < 0 ? -1 : 0;
}

static int win_set_dword(struct win_ctx *c, hive_node_h node, const char *name, uint32_t v,
                         struct vd_error *err, const char *where)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    if (win_set(c, node, name, hive_t_REG_DWORD, b, 4) < 0)
        return vd_err(err, -EIO, "fixup: %s: %s\\%s: hivex cannot set the value: %s", c->label,
                      where, name, strerror(errno ? errno : EIO));
    return 0;
}

/* child by path "A\B\C" under node; 0 if any part is missing */
static hive_node_h win_path(hive_h *h, hive_node_h node, const char *path)
{
    char part[128];
    while (node && *path) {
        size_t n = strcspn(path, "\\");
        if (n >= sizeof(part))
            return 0;
        memcpy(part, path, n);
        part[n] = '\0';
        node = hivex_node_get_child(h, node, part);
        path += n + (path[n] ? 1 : 0);
    }
    return node;
}

static int win_why(struct win_ctx *c, struct vd_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int win_why(struct win_ctx *c, struct vd_error *err, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->changes++;
    if (vd_fx_puts(&c->why, line) < 0 || vd_fx_puts(&c->why, "\n") < 0)
        return vd_fx_oom(err, "fixup");
    return 0;
}

/* Storage drivers: Start -> 0 (boot) where the service exists. */
static int win_drivers(struct win_ctx *c, hive_node_h services, struct vd_error *err)
{
    for (size_t i = 0; vd_fixup_win_boot_drivers[i]; i++) {
        const char *drv = vd_fixup_win_boot_drivers[i];
        hive_node_h svc = hivex_node_get_child(c->h, services, drv);
        if (!svc)
            continue;
        uint32_t start;
        char where[160];
        snprintf(where, sizeof(where), "%s\\Services\\%s", c->cs, drv);
        int r = win_dword(c->h, svc, "Start", &start);
        if (r < 0)
            return vd_err(err, -EINVAL, "fixup: %s: %s\\Start is not a REG_DWORD", c->label, where);
        if (r == 0 || start == 0)
            continue;
        if (win_set_dword(c, svc, "Start", 0, err, where) < 0 ||
            win_why(c, err,
                    "%s\\Start: %u (%s) -> 0 (boot): the storage driver loads at boot, so "
                    "Windows finds its disk behind the new controller (STOP 0x7B otherwise)",
                    where, start, win_start_name(start)) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* AWS: the DHCP client service must be able to start. */
static int win_dhcp_service(struct win_ctx *c, hive_node_h services, struct vd_error *err)
{
    hive_node_h svc = hivex_node_get_child(c->h, services, "Dhcp");
    uint32_t start;
    if (!svc || win_dword(c->h, svc, "Start", &start) != 1 || start != 4)
        return 0;
    char where[160];
    snprintf(where, sizeof(where), "%s\\Services\\Dhcp", c->cs);
    if (win_set_dword(c, svc, "Start", 2, err, where) < 0)
        return -EIO;
    return win_why(c, err,
                   "%s\\Start: 4 (disabled) -> 2 (automatic): AWS needs a DHCP client service "
                   "that can start; the instance's address comes from DHCP",
                   where);
}

/* AWS: set RealTimeIsUniversal (EC2 keeps the hardware clock in UTC). */
static int win_clock(struct win_ctx *c, hive_node_h cs, struct vd_error *err)
{
    char where[160];
    snprintf(where, sizeof(where), "%s\\Control\\TimeZoneInformation", c->cs);
    hive_node_h tz = win_path(c->h, cs, "Control\\TimeZoneInformation");
    if (!tz)
        return 0; /* not a key a real SYSTEM hive lacks; nothing to edit */
    uint32_t v = 0;
    int r = win_dword(c->h, tz, "RealTimeIsUniversal", &v);
    if (r == 1 && v == 1)
        return 0;
    if (win_set_dword(c, tz, "RealTimeIsUniversal", 1, err, where) < 0)
        return -EIO;
    char was[32];
    if (r == 1)
        snprintf(was, sizeof(was), "%u", v);
    else
        snprintf(was, sizeof(was), "%s", r == 0 ? "absent" : "not a REG_DWORD");
    return win_why(c, err,
                   "%s\\RealTimeIsUniversal: %s -> 1: EC2 keeps the hardware clock in UTC, "
                   "so Windows must read it as UTC (AWS asks for this key)",
                   where, was);
}

/* AWS: static IP addresses are removed; interfaces use DHCP. */
static int win_interfaces(struct win_ctx *c, hive_node_h services, struct vd_error *err)
{
    hive_node_h ifs = win_path(c->h, services, "Tcpip\\Parameters\\Interfaces");
    if (!ifs)
        return 0;
    hive_node_h *kids = hivex_node_children(c->h, ifs);
    if (!kids)
        return vd_err(err, -EINVAL,
                      "fixup: %s: %s\\Services\\Tcpip\\Parameters\\Interfaces: "
                      "hivex cannot list it: %s",
                      c->label, c->cs, strerror(errno ? errno : EIO));
    static const unsigned char empty[2] = {0, 0}; /* REG_MULTI_SZ with no strings */
    static const char *const cleared[] = {"IPAddress", "SubnetMask", "DefaultGateway",
                                          "DefaultGatewayMetric"};
    int rc = 0;
    for (size_t i = 0; kids[i] && rc == 0; i++) {
        uint32_t dhcp;
        if (win_dword(c->h, kids[i], "EnableDHCP", &dhcp) != 1 || dhcp != 0)
            continue;
        char *name = hivex_node_name(c->h, kids[i]);
        char where[400], addrs[160] = "", gw[160] = "";
        snprintf(where, sizeof(where), "%s\\Services\\Tcpip\\Parameters\\Interfaces\\%s", c->cs,
                 name ? name : "?");
        free(name);
        hive_type t;
        size_t len;
        char *ip = win_raw(c->h, kids[i], "IPAddress", &t, &len);
        if (ip && t == hive_t_REG_MULTI_SZ)
            vd_fixup_win_multisz_addrs(ip, len, addrs, sizeof(addrs));
        free(ip);
        char *g = win_raw(c->h, kids[i], "DefaultGateway", &t, &len);
        if (g && t == hive_t_REG_MULTI_SZ)
            vd_fixup_win_multisz_addrs(g, len, gw, sizeof(gw));
        free(g);
        if ((rc = win_set_dword(c, kids[i], "EnableDHCP", 1, err, where)) < 0)
            break;
        for (size_t k = 0; k < sizeof(cleared) / sizeof(cleared[0]) && rc == 0; k++) {
            if (!hivex_node_get_value(c->h, kids[i], cleared[k]))
                continue;
            if (win_set(c, kids[i], cleared[k], hive_t_REG_MULTI_SZ, empty, sizeof(empty)) < 0)
                rc = vd_err(err, -EIO, "fixup: %s: %s\\%s: hivex cannot set the value: %s",
                            c->label, where, cleared[k], strerror(errno ? errno : EIO));
        }
        if (rc == 0)
            rc = win_why(c, err,
                         "%s: static address %s%s%s -> DHCP (EnableDHCP 0 -> 1; IPAddress, "
                         "SubnetMask, DefaultGateway emptied): in a VPC the address comes from "
                         "DHCP",
                         where, addrs[0] ? addrs : "(none)", gw[0] ? ", gateway " : "", gw);
    }
    free(kids);
    return rc;
}

static int win_edit(struct win_ctx *c, struct vd_error *err)
{
    hive_node_h root = hivex_root(c->h);
    hive_node_h sel = root ? hivex_node_get_child(c->h, root, "Select") : 0;
    uint32_t cur;
    int r = sel ? win_dword(c->h, sel, "Current", &cur) : 0;
    if (r != 1)
        return vd_err(err, -EINVAL,
                      "fixup: %s: no Select\\Current REG_DWORD value: not a SYSTEM hive", c->label);
    if (vd_fixup_win_controlset(cur, c->cs, sizeof(c->cs)) < 0)
        return vd_err(err, -EINVAL, "fixup: %s: Select\\Current is %u, not a control set number",
                      c->label, cur);
    hive_node_h cs = hivex_node_get_child(c->h, root, c->cs);
    if (!cs)
        return vd_err(err, -EINVAL,
                      "fixup: %s: the current control set %s (Select\\Current = %u) is missing",
                      c->label, c->cs, cur);
    hive_node_h services = hivex_node_get_child(c->h, cs, "Services");
    if (!services)
        return vd_err(err, -EINVAL, "fixup: %s: %s has no Services key", c->label, c->cs);
    if ((r = win_drivers(c, services, err)) < 0 || (r = win_dhcp_service(c, services, err)) < 0 ||
        (r = win_clock(c, cs, err)) < 0 || (r = win_interfaces(c, services, err)) < 0)
        return r;
    return 0;
}

/* Copy the original to the backup name (O_EXCL) when hard links fail. */
static int win_copy(int dfd, const char *from, const char *to, const struct stat *st)
{
    int in = openat(dfd, from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out =
        openat(dfd, to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 07777);
    if (out < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t o = 0; o < n;) {
            ssize_t w = write(out, buf + o, (size_t)(n - o));
            if (w < 0) {
                rc = -errno;
                break;
            }
            o += w;
        }
        if (rc)
            break;
    }
    if (rc == 0 && fsync(out) < 0)
        rc = -errno;
    close(out);
    close(in);
    if (rc < 0)
        unlinkat(dfd, to, 0);
    return rc;
}

/* Keep the original as NAME.vdisk.orig (.2, .3... if taken). */
static int win_backup(int dfd, const char *name, const struct stat *st, char *bname, size_t cap)
{
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(bname, cap, "%s.vdisk.orig", name);
        else
            snprintf(bname, cap, "%s.vdisk.orig.%d", name, i);
        int r = linkat(dfd, name, dfd, bname, 0) < 0 ? -errno : 0;
        if (r == -EPERM || r == -ENOTSUP || r == -EMLINK || r == -EOPNOTSUPP)
            r = win_copy(dfd, name, bname, st);
        if (r != -EEXIST)
            return r;
    }
    return -EEXIST;
}

static int win_write(struct win_ctx *c, int cfgfd, const char *sysname, char *bname, size_t bcap,
                     struct vd_error *err)
{
    struct stat st;
    if (fstatat(cfgfd, sysname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return vd_err(err, -errno, "fixup: %s: %s", c->label, strerror(errno));
    char tmp[300], tpath[400];
    snprintf(tmp, sizeof(tmp), ".%s.vdisk-tmp", sysname);
    snprintf(tpath, sizeof(tpath), "/proc/self/fd/%d/%s", cfgfd, tmp);
    unlinkat(cfgfd, tmp, 0);
    if (hivex_commit(c->h, tpath, 0) < 0) {
        int e = errno ? errno : EIO;
        unlinkat(cfgfd, tmp, 0);
        return vd_err(err, -e, "fixup: %s: hivex cannot write the new hive: %s", c->label,
                      strerror(e));
    }
    int rc = 0;
    int fd = openat(cfgfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        rc = -errno;
    else {
        /* owner first: chown clears set-id bits that fchmod then restores */
        if (fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM)
            rc = -errno;
        if (rc == 0 && (fchmod(fd, st.st_mode & 07777) < 0 || fsync(fd) < 0))
            rc = -errno;
        close(fd);
    }
    if (rc < 0) {
        unlinkat(cfgfd, tmp, 0);
        return vd_err(err, rc, "fixup: %s: writing the new hive: %s", c->label, strerror(-rc));
    }
    rc = win_backup(cfgfd, sysname, &st, bname, bcap);
    if (rc < 0) {
        unlinkat(cfgfd, tmp, 0);
        return vd_err(err, rc, "fixup: %s: keeping the original: %s", c->label,
                      rc == -EEXIST ? "99 backups exist already" : strerror(-rc));
    }
    if (renameat(cfgfd, tmp, cfgfd, sysname) < 0) {
        rc = -errno;
        unlinkat(cfgfd, tmp, 0);
        return vd_err(err, rc, "fixup: %s: replacing the hive: %s (the original is unchanged)",
                      c->label, strerror(-rc));
    }
    fsync(cfgfd);
    return 0;
}

int vd_fx_win_fix(int cfgfd, const char *sysname, const char *label, bool dry,
                  struct vd_fixup_buf *why, char *bname, size_t bcap, struct vd_error *err)
{
    struct win_ctx c = {.label = label};
    int rc;
    /* refuse a dirty hive before hivex sees it */
    unsigned char base[512];
    int fd = openat(cfgfd, sysname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : pread(fd, base, sizeof(base), 0);
    if (got < 0) {
        rc = vd_err(err, -errno, "fixup: %s: %s", label, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    close(fd);
    int clean =
        got == (ssize_t)sizeof(base) ? vd_fixup_win_hive_clean(base, sizeof(base)) : -EINVAL;
    if (clean < 0)
        return vd_err(err, -EINVAL, "fixup: %s: not a registry hive (no regf header)", label);
    if (clean == 0)
        return vd_err(err, -EBUSY,
                      "fixup: %s: the hive was not closed cleanly (its sequence numbers differ), "
                      "so Windows would replay SYSTEM.LOG1/LOG2 over any edit; boot the guest and "
                      "shut it down cleanly first; nothing was changed",
                      label);
    char hpath[400];
    snprintf(hpath, sizeof(hpath), "/proc/self/fd/%d/%s", cfgfd, sysname);
    c.h = hivex_open(hpath, HIVEX_OPEN_WRITE);
    if (!c.h) {
        int e = errno ? errno : EINVAL;
        return vd_err(err, -EINVAL, "fixup: %s: hivex cannot open the registry hive (corrupt?): %s",
                      label, strerror(e));
    }
    rc = win_edit(&c, err);
    if (rc == 0 && c.changes && !dry)
        rc = win_write(&c, cfgfd, sysname, bname, bcap, err);
    hivex_close(c.h);
    if (rc == 0) {
        *why = c.why;
        return c.changes ? 1 : 0;
    }
    vd_fixup_buf_free(&c.why);
    return rc;
}

int vd_fixup_windows_root(const char *root, const struct vd_fixup_opts *opts, vd_fixup_report_cb cb,
                          void *opaque, struct vd_error *err)
{
    if (opts && opts->profile && strcmp(opts->profile, "aws"))
        return vd_err(err, -ENOTSUP, "fixup: profile '%s' is not known (only 'aws')",
                      opts->profile);
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return vd_err(err, -errno, "fixup: %s: %s", root, strerror(errno));
    int cfgfd = -1;
    char sysname[256], gpath[1100], label[4096], bname[300];
    int rc = win_locate(rootfd, &cfgfd, sysname, sizeof(sysname), gpath, sizeof(gpath));
    close(rootfd);
    if (rc < 0)
        return vd_err(err, rc,
                      "fixup: %s: not a Windows root (no Windows/System32/config/SYSTEM): %s", root,
                      strerror(-rc));
    snprintf(label, sizeof(label), "%s%s", root, gpath);
    bool dry = opts && opts->dry_run;
    struct vd_fixup_buf why = {0};
    rc = vd_fx_win_fix(cfgfd, sysname, label, dry, &why, bname, sizeof(bname), err);
    close(cfgfd);
    if (rc > 0 && cb) {
        struct vd_fixup_change ch = {
            .path = gpath, .action = "rewritten", .why = why.data, .backup = dry ? NULL : bname};
        cb(opaque, &ch);
    }
    vd_fixup_buf_free(&why);
    return rc;
}

#else /* !HAVE_HIVEX */

int vd_fixup_windows_root(const char *root, const struct vd_fixup_opts *opts, vd_fixup_report_cb cb,
                          void *opaque, struct vd_error *err)
{
    return vd_err(err, -ENOTSUP,
                  "fixup: %s: a Windows guest, but this vdisk was built without hivex "
                  "(libhivex-dev), so its registry cannot be edited",
                  root);
}

#endif
