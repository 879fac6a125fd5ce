/*
 * Windows guests for `vdisk inspect`: the SOFTWARE and SYSTEM registry
 * hives under Windows/System32/config, read with hivex, and the PE header
 * of ntoskrnl.exe for the architecture.
 *
 *   SOFTWARE\Microsoft\Windows NT\CurrentVersion
 *       ProductName, CurrentBuildNumber, EditionID, InstallationType,
 *       CurrentMajorVersionNumber/CurrentMinorVersionNumber (Windows 10+)
 *       or CurrentVersion ("6.3"), SystemRoot
 *   SYSTEM\Select\Current -> ControlSetNNN
 *       Control\MUI\UILanguages\<tag> or Control\Nls\Language InstallLanguage
 *       Services\<name>\Start (0 = boot), Type, Group
 *       Control\Session Manager\Memory Management\PagingFiles
 *
 * hivex opens only a path, so the hive bytes (read through vd_fs) go to a
 * memfd, opened as /proc/self/fd/N: nothing is written to the host's disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "inspect/inspect_int.h"
#include "vdisk/fixup.h"
#include "vdisk/fs.h"

#ifdef HAVE_HIVEX
#include <hivex.h>
#endif

#define WIN_MAX_HIVE (256u << 20)
#define WIN_CONFIG   "/Windows/System32/config"

bool vd_ins_is_windows(struct vd_fs *fs)
{
    struct vd_fs_stat st;
    struct vd_error err = {0};
    return (vd_fs_stat(fs, WIN_CONFIG "/SYSTEM", true, &st, &err) == 0 ||
            vd_fs_stat(fs, WIN_CONFIG "/SOFTWARE", true, &st, &err) == 0) &&
           st.type == VD_FS_REG;
}

static const struct {
    unsigned lcid;
    const char *tag;
} win_lcids[] = {
    {0x0401, "ar-SA"}, {0x0404, "zh-TW"}, {0x0405, "cs-CZ"}, {0x0406, "da-DK"}, {0x0407, "de-DE"},
    {0x0408, "el-GR"}, {0x0409, "en-US"}, {0x040b, "fi-FI"}, {0x040c, "fr-FR"}, {0x040d, "he-IL"},
    {0x040e, "hu-HU"}, {0x0410, "it-IT"}, {0x0411, "ja-JP"}, {0x0412, "ko-KR"}, {0x0413, "nl-NL"},
    {0x0414, "nb-NO"}, {0x0415, "pl-PL"}, {0x0416, "pt-BR"}, {0x0419, "ru-RU"}, {0x041d, "sv-SE"},
    {0x041f, "tr-TR"}, {0x0804, "zh-CN"}, {0x0809, "en-GB"}, {0x080a, "es-MX"}, {0x0816, "pt-PT"},
    {0x0c0a, "es-ES"}, {0x0c0c, "fr-CA"},
};

const char *vd_ins_lcid_tag(unsigned lcid)
{
    for (size_t i = 0; i < sizeof(win_lcids) / sizeof(win_lcids[0]); i++)
        if (win_lcids[i].lcid == lcid)
            return win_lcids[i].tag;
    return NULL;
}

/* Storage drivers worth naming when they start at boot: Windows' own, the
 * hypervisors' and AWS's (see also vd_fixup_win_boot_drivers). */
static const char *const win_storage[] = {
    "atapi",   "intelide", "pciide",   "msahci",   "storahci", "iaStorV", "iaStorAV", "stornvme",
    "AWSNVMe", "LSI_SAS",  "LSI_SAS2", "LSI_SAS3", "LSI_SCSI", "megasas", "pvscsi",   "vmscsi",
    "storvsc", "viostor",  "vioscsi",  "xenvbd",   "disk",     NULL,
};

static void win_arch(struct vd_ins_ctx *c, struct vd_fs *fs, struct vd_inspect_os *os)
{
    static const char *const bins[] = {"/Windows/System32/ntoskrnl.exe",
                                       "/Windows/System32/kernel32.dll", NULL};
    unsigned char *h = malloc(4096);
    if (!h)
        return;
    for (size_t i = 0; bins[i]; i++) {
        size_t got = 0;
        struct vd_error err = {0};
        if (vd_fs_pread(fs, bins[i], h, 4096, 0, &got, &err) < 0)
            continue;
        const char *a = vd_ins_pe_arch(h, got);
        if (a) {
            os->arch = a;
            os->arch_from = bins[i];
            break;
        }
    }
    free(h);
}

#ifdef HAVE_HIVEX
/* Open a hive read through vd_fs, via a memfd. */
static hive_h *win_open(struct vd_ins_ctx *c, struct vd_fs *fs, const char *name, int *fdp)
{
    char path[128], *data;
    size_t len;
    struct vd_error err = {0};
    snprintf(path, sizeof(path), WIN_CONFIG "/%s", name);
    *fdp = -1;
    int rc = vd_fs_read(fs, path, WIN_MAX_HIVE, &data, &len, &err);
    if (rc < 0) {
        vd_ins_warn(c, "%s: %s", path, err.msg);
        return NULL;
    }
    int fd = memfd_create("vdisk-hive", MFD_CLOEXEC);
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            fd = -1;
            break;
        }
        off += (size_t)w;
    }
    free(data);
    if (fd < 0) {
        vd_ins_warn(c, "%s: cannot stage the hive in memory: %s", path, strerror(errno));
        return NULL;
    }
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    hive_h *h = hivex_open(proc, 0);
    if (!h) {
        vd_ins_warn(c, "%s: not a registry hive hivex can read: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    *fdp = fd;
    return h;
}

static void win_close(hive_h *h, int fd)
{
    if (h)
        hivex_close(h);
    if (fd >= 0)
        close(fd);
}

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

/* A string value (REG_SZ / REG_EXPAND_SZ) as UTF-8 (malloc'd), or NULL. */
static char *win_str(hive_h *h, hive_node_h node, const char *name)
{
    if (!node)
        return NULL;
    hive_value_h v = hivex_node_get_value(h, node, name);
    return v ? hivex_value_string(h, v) : NULL;
}

static bool win_dword(hive_h *h, hive_node_h node, const char *name, uint32_t *out)
{
    if (!node)
        return false;
    hive_value_h v = hivex_node_get_value(h, node, name);
    hive_type t;
    size_t len;
    if (!v || hivex_value_type(h, v, &t, &len) < 0 || t != hive_t_REG_DWORD || len < 4)
        return false;
    *out = (uint32_t)hivex_value_dword(h, v);
    return true;
}

static void win_set_str(struct vd_ins_ctx *c, const char **dst, char *s)
{
    if (s)
        *dst = vd_ins_str(c, s);
    free(s);
}

static void win_software(struct vd_ins_ctx *c, struct vd_fs *fs, struct vd_inspect_os *os)
{
    int fd;
    hive_h *h = win_open(c, fs, "SOFTWARE", &fd);
    if (!h)
        return;
    hive_node_h cv = win_path(h, hivex_root(h), "Microsoft\\Windows NT\\CurrentVersion");
    if (!cv) {
        vd_ins_warn(c, WIN_CONFIG "/SOFTWARE: no Microsoft\\Windows NT\\CurrentVersion key: "
                                  "product unknown");
        win_close(h, fd);
        return;
    }
    win_set_str(c, &os->product, win_str(h, cv, "ProductName"));
    win_set_str(c, &os->win_build, win_str(h, cv, "CurrentBuildNumber"));
    win_set_str(c, &os->win_edition, win_str(h, cv, "EditionID"));
    win_set_str(c, &os->win_install, win_str(h, cv, "InstallationType"));
    win_set_str(c, &os->win_systemroot, win_str(h, cv, "SystemRoot"));
    uint32_t maj, min = 0;
    char v[32];
    if (win_dword(h, cv, "CurrentMajorVersionNumber", &maj)) {
        /* Windows 10 and later keep CurrentVersion at "6.3" for old
         * programs; the real version is in these two */
        win_dword(h, cv, "CurrentMinorVersionNumber", &min);
        snprintf(v, sizeof(v), "%u.%u", maj, min);
        os->version = vd_ins_str(c, v);
    } else {
        win_set_str(c, &os->version, win_str(h, cv, "CurrentVersion"));
    }
    vd_ins_version_numbers(os->version, &os->major, &os->minor);
    win_close(h, fd);
}

static void win_system(struct vd_ins_ctx *c, struct vd_fs *fs, struct vd_inspect_os *os)
{
    int fd;
    hive_h *h = win_open(c, fs, "SYSTEM", &fd);
    if (!h)
        return;
    hive_node_h root = hivex_root(h);
    uint32_t cur;
    char csname[32];
    if (!win_dword(h, win_path(h, root, "Select"), "Current", &cur) ||
        vd_fixup_win_controlset(cur, csname, sizeof(csname)) < 0) {
        vd_ins_warn(c, WIN_CONFIG "/SYSTEM: no valid Select\\Current: control set unknown");
        win_close(h, fd);
        return;
    }
    hive_node_h cs = win_path(h, root, csname);
    if (!cs) {
        vd_ins_warn(c, WIN_CONFIG "/SYSTEM: Select\\Current names %s, which is missing", csname);
        win_close(h, fd);
        return;
    }
    /* Language: the MUI UI language (its subkey is the tag), else the
     * install language's LCID. */
    hive_node_h ui = win_path(h, cs, "Control\\MUI\\UILanguages");
    hive_node_h *kids = ui ? hivex_node_children(h, ui) : NULL;
    if (kids && kids[0]) {
        char *name = hivex_node_name(h, kids[0]);
        win_set_str(c, &os->win_language, name);
    }
    free(kids);
    if (!os->win_language[0]) {
        char *lang = win_str(h, win_path(h, cs, "Control\\Nls\\Language"), "InstallLanguage");
        if (lang) {
            const char *tag = vd_ins_lcid_tag((unsigned)strtoul(lang, NULL, 16));
            os->win_language = vd_ins_str(c, tag ? tag : lang);
        }
        free(lang);
    }
    hive_node_h svcs = win_path(h, cs, "Services");
    for (size_t i = 0; svcs && win_storage[i]; i++) {
        uint32_t start;
        if (win_dword(h, hivex_node_get_child(h, svcs, win_storage[i]), "Start", &start) &&
            start == 0)
            vd_ins_push(c, &os->win_boot_drivers, &os->nwin_boot_drivers, win_storage[i]);
    }
    uint32_t dstart;
    hive_node_h dhcp = svcs ? hivex_node_get_child(h, svcs, "Dhcp") : 0;
    /* Start 4 is SERVICE_DISABLED */
    os->win_dhcp_enabled = dhcp && win_dword(h, dhcp, "Start", &dstart) && dstart != 4;
    hive_node_h mm = win_path(h, cs, "Control\\Session Manager\\Memory Management");
    hive_value_h pf = mm ? hivex_node_get_value(h, mm, "PagingFiles") : 0;
    char **pfs = pf ? hivex_value_multiple_strings(h, pf) : NULL;
    if (pfs && pfs[0])
        os->win_pagefile = vd_ins_str(c, pfs[0]);
    for (size_t i = 0; pfs && pfs[i]; i++)
        free(pfs[i]);
    free(pfs);
    win_close(h, fd);
}
#endif

void vd_ins_windows(struct vd_ins_ctx *c, struct vd_fs *fs, struct vd_inspect_os *os)
{
    os->type = "windows";
    os->distro = "windows";
    win_arch(c, fs, os);
#ifdef HAVE_HIVEX
    win_software(c, fs, os);
    win_system(c, fs, os);
#else
    vd_ins_warn(c,
                "%s: a Windows root, but vdisk was built without hivex: product, version and "
                "drivers unknown (install libhivex-dev and rebuild)",
                os->root_dev);
#endif
}
