/*
 * Fuzz the text parsers of `vdisk inspect` (src/inspect/inspect_int.h):
 * os-release and the older release files, grubenv, grub.cfg, BLS entries,
 * GRUB legacy menu.lst, fstab with device resolution, and the network
 * configurations (ifupdown, ifcfg, netplan, NetworkManager, networkd);
 * the ELF and PE header readers get the raw bytes.
 *
 * Invariants beyond "no crash":
 *   T1  every string a parser returns is NUL-terminated inside its field
 *       and holds no line break (fields come from within one line);
 *   T2  a comment line appended ("\n# c\n") changes no result: comments are
 *       skipped by every format here (unless the input ends in a lone CR,
 *       which the appended LF would turn into a CRLF terminator);
 *   T3  a resolved fstab spec is one of the devices offered; a driver name
 *       is one of vd_ins_drivers; an architecture is NULL or a short name.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect/inspect_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct fz_out {
    char *buf;
    size_t len, cap;
};

/* T1 and record the field into the transcript. */
static void fz_str(struct fz_out *o, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    FZ_ASSERT(n < cap);
    FZ_ASSERT(!memchr(s, '\n', n));
    if (o->len + n + 2 > o->cap) {
        size_t c = (o->len + n + 2) * 2;
        char *p = realloc(o->buf, c);
        if (!p)
            abort();
        o->buf = p;
        o->cap = c;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len++] = '|';
}
#define FZ_FIELD(o, f) fz_str(o, f, sizeof(f))

static struct vd_bdev fz_d1 = {.kind = VD_BDEV_DISK, .name = "disk", .disk = 1};
static struct vd_bdev fz_p1 = {.kind = VD_BDEV_PART,
                               .name = "disk-p1",
                               .disk = 1,
                               .part = 1,
                               .part_uuid = "0a0b0c0d-01",
                               .uuid = "1111-AAAA",
                               .fstype = "ext4",
                               .label = "root"};
static struct vd_bdev fz_lv = {.kind = VD_BDEV_LV, .name = "lvm-vg0-root", .disk = 1};

static int fz_net_cb(void *opaque, const struct vd_ins_net *n)
{
    struct fz_out *o = opaque;
    FZ_FIELD(o, n->iface);
    FZ_FIELD(o, n->mac);
    fz_str(o, n->dhcp ? "d" : "-", 2);
    fz_str(o, n->static_addr ? "s" : "-", 2);
    return 0;
}

static void fz_src_cb(void *opaque, const char *p)
{
    fz_str(opaque, p, VD_INS_STR);
}

static int fz_fstab_cb(void *opaque, const struct vd_ins_fstab_ent *e)
{
    struct fz_out *o = opaque;
    const struct vd_bdev *devs[] = {&fz_d1, &fz_p1, &fz_lv};
    FZ_FIELD(o, e->spec);
    FZ_FIELD(o, e->mountpoint);
    FZ_FIELD(o, e->type);
    FZ_FIELD(o, e->options);
    const struct vd_bdev *b = vd_ins_resolve(devs, 3, e->spec);
    FZ_ASSERT(!b || b == &fz_d1 || b == &fz_p1 || b == &fz_lv); /* T3 */
    fz_str(o, b ? b->name : "", 64);
    return 0;
}

static void fz_boot(struct fz_out *o, const struct vd_ins_bootent *e)
{
    FZ_FIELD(o, e->title);
    FZ_FIELD(o, e->kernel);
    FZ_FIELD(o, e->initrd);
}

/* Every text parser over (in, len); the transcript into o. */
static void fz_all(const char *in, size_t len, struct fz_out *o)
{
    static const char *const rel[] = {"redhat-release", "SuSE-release", "lsb-release",
                                      "debian_version", "alpine-release"};
    struct vd_ins_release r;
    vd_ins_os_release(in, len, &r);
    FZ_FIELD(o, r.id);
    FZ_FIELD(o, r.version);
    FZ_FIELD(o, r.product);
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        vd_ins_release_file(rel[i], in, len, &r);
        FZ_FIELD(o, r.id);
        FZ_FIELD(o, r.version);
        FZ_FIELD(o, r.product);
    }
    char v[64], saved[VD_INS_STR] = "";
    if (vd_ins_grubenv(in, len, "saved_entry", saved, sizeof(saved)))
        FZ_FIELD(o, saved);
    struct vd_ins_bootent e;
    vd_ins_grub_cfg(in, len, saved, &e);
    fz_boot(o, &e);
    vd_ins_grub_cfg(in, len, "1>0", &e);
    fz_boot(o, &e);
    vd_ins_bls_entry(in, len, &e, v, sizeof(v));
    fz_boot(o, &e);
    FZ_FIELD(o, v);
    vd_ins_menu_lst(in, len, 1, &e);
    fz_boot(o, &e);
    if (vd_ins_kernel_version(e.kernel, v, sizeof(v))) {
        FZ_FIELD(o, v);
        FZ_ASSERT(!strchr(v, '/'));
    }
    vd_ins_fstab(in, len, fz_fstab_cb, o);
    vd_ins_net_ifupdown(in, len, fz_net_cb, o, fz_src_cb, o);
    vd_ins_net_ifcfg("ifcfg-eth0", in, len, fz_net_cb, o);
    vd_ins_net_netplan(in, len, fz_net_cb, o);
    vd_ins_net_nmkeyfile(in, len, fz_net_cb, o);
    vd_ins_net_networkd(in, len, fz_net_cb, o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    /* Header readers on the raw bytes (T3: a short name or NULL). */
    const char *a = vd_ins_elf_arch(data, size);
    FZ_ASSERT(!a || strlen(a) < 16);
    a = vd_ins_pe_arch(data, size);
    FZ_ASSERT(!a || strlen(a) < 16);

    /* Not NUL-terminated on purpose: parsers take (buf, len). */
    char *in = malloc(size + 5);
    if (!in)
        return 0;
    memcpy(in, data, size);
    struct fz_out o1 = {0}, o2 = {0};
    fz_all(in, size, &o1);
    if (!(size && in[size - 1] == '\r')) {
        memcpy(in + size, "\n# c\n", 5);
        fz_all(in, size + 5, &o2);
        FZ_ASSERT(o1.len == o2.len && (!o1.len || !memcmp(o1.buf, o2.buf, o1.len))); /* T2 */
    }
    /* A spec of the input's first line resolves only to offered devices. */
    char spec[128];
    const char *nl = memchr(in, '\n', size);
    size_t n = nl ? (size_t)(nl - in) : size;
    snprintf(spec, sizeof(spec), "%.*s", (int)(n < sizeof(spec) ? n : sizeof(spec) - 1), in);
    const struct vd_bdev *devs[] = {&fz_d1, &fz_p1, &fz_lv};
    const struct vd_bdev *b = vd_ins_resolve(devs, 3, spec);
    FZ_ASSERT(!b || b == &fz_d1 || b == &fz_p1 || b == &fz_lv);
    const char *drv = vd_ins_driver_of(spec);
    if (drv) {
        bool known = false;
        for (size_t i = 0; vd_ins_drivers[i]; i++)
            known |= drv == vd_ins_drivers[i];
        FZ_ASSERT(known);
    }
    free(o1.buf);
    free(o2.buf);
    free(in);
    return 0;
}
