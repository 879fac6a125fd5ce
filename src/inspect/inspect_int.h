/*
 * Internal parsers of `vdisk inspect` (src/inspect/). Each takes a file's
 * bytes (buf, len), does no I/O and never fails on bad input: what it
 * cannot read stays empty. Unit tests and tests/fuzz/fuzz_inspect_text.c
 * call them directly; inspect.c feeds them files read through vd_fs.
 */
#ifndef VD_INSPECT_INT_H
#define VD_INSPECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/guest.h"
#include "vdisk/inspect.h"

#define VD_INS_STR 256

/* ---- linux.c: release files ---- */

struct vd_ins_release {
    char id[64];              /* os-release ID: "debian", "rhel", "ubuntu" */
    char version[64];         /* VERSION_ID: "12", "9.3" */
    char product[VD_INS_STR]; /* PRETTY_NAME, else NAME VERSION */
};
/* os-release(5): KEY=VALUE lines, values optionally quoted with " or '
 * (backslash escapes inside double quotes). Returns true if it named an
 * ID or a NAME. */
bool vd_ins_os_release(const char *buf, size_t len, struct vd_ins_release *r);
/* The older release files, by their name in /etc: "redhat-release",
 * "centos-release", "fedora-release", "SuSE-release", "lsb-release",
 * "debian_version", "alpine-release", "system-release". Returns true if
 * the text gave at least a distribution. */
bool vd_ins_release_file(const char *name, const char *buf, size_t len, struct vd_ins_release *r);
/* "9.3" -> 9, 3; "12" -> 12, 0; "bookworm/sid" -> 0, 0. */
void vd_ins_version_numbers(const char *v, unsigned *major, unsigned *minor);

/* ---- linux.c: boot loaders ---- */

/* grubenv (a "# GRUB Environment Block" of KEY=VALUE lines padded with
 * '#'): the value of key into out (cap bytes), true if present. */
bool vd_ins_grubenv(const char *buf, size_t len, const char *key, char *out, size_t cap);

/* What a boot loader configuration says the default entry boots. */
struct vd_ins_bootent {
    char title[VD_INS_STR];
    char kernel[VD_INS_STR]; /* path as written: "/boot/vmlinuz-6.1.0-13-amd64" */
    char initrd[VD_INS_STR];
    bool bls; /* grub.cfg runs blscfg: entries are in /boot/loader/entries */
};
/* grub.cfg (GRUB 2): the default entry from `set default=` (a number, a
 * "N>M" submenu path, a title or an --id; "${saved_entry}" takes
 * saved_entry; "${next_entry}" is a one-shot and is ignored), else the
 * first entry. Returns true if an entry was found; out->bls is set when
 * the file calls blscfg (then the entries come from BLS files). */
bool vd_ins_grub_cfg(const char *buf, size_t len, const char *saved_entry,
                     struct vd_ins_bootent *out);
/* A Boot Loader Specification entry (/boot/loader/entries/NAME.conf):
 * title, version, linux, initrd keys. Returns true if it has linux. */
bool vd_ins_bls_entry(const char *buf, size_t len, struct vd_ins_bootent *out, char *version,
                      size_t vcap);
/* GRUB legacy menu.lst / grub.conf: `default N` (0-based; "saved" takes
 * saved, else 0), `title`, `kernel PATH args`, `initrd PATH`. A kernel path
 * may carry a "(hd0,0)" device prefix, which is dropped. */
bool vd_ins_menu_lst(const char *buf, size_t len, unsigned saved, struct vd_ins_bootent *out);
/* The kernel version in a kernel file name: "/boot/vmlinuz-6.1.0-13-amd64"
 * -> "6.1.0-13-amd64" (vmlinuz-, vmlinux-, kernel-, bzImage- prefixes).
 * false if the name has none of them. */
bool vd_ins_kernel_version(const char *path, char *out, size_t cap);

/* ---- arch.c: executable headers ---- */

/* ELF: "x86_64", "i386", "aarch64", "arm", "ppc64le", "s390x", "riscv64"...
 * from e_ident's class and data and e_machine. NULL if not ELF or unknown. */
const char *vd_ins_elf_arch(const unsigned char *buf, size_t len);
/* PE (MZ + "PE\0\0" at e_lfanew): IMAGE_FILE_HEADER.Machine. */
const char *vd_ins_pe_arch(const unsigned char *buf, size_t len);

/* ---- net.c: network configurations ---- */

struct vd_ins_net {
    char iface[64];
    char mac[32];
    bool dhcp, static_addr;
};
/* Called once per interface binding found; non-zero stops. */
typedef int (*vd_ins_net_cb)(void *opaque, const struct vd_ins_net *n);
/* Debian interfaces(5): `iface NAME inet dhcp|static|manual` stanzas
 * (loopback skipped), `hwaddress` noted. Names of `source` and
 * `source-directory` lines are passed to src_cb (may be NULL). */
int vd_ins_net_ifupdown(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque,
                        void (*src_cb)(void *opaque, const char *path), void *src_opaque);
/* ifcfg-NAME (RHEL network-scripts, SUSE wicked): DEVICE, HWADDR/MACADDR,
 * BOOTPROTO, IPADDR*. fname is the file's name, whose suffix names the
 * interface when DEVICE is absent. Loopback is skipped. */
int vd_ins_net_ifcfg(const char *fname, const char *buf, size_t len, vd_ins_net_cb cb,
                     void *opaque);
/* netplan YAML: network: ethernets|wifis|bonds|bridges|vlans: NAME: with
 * dhcp4, addresses, match: macaddress / name, set-name. */
int vd_ins_net_netplan(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque);
/* NetworkManager keyfile: [connection] interface-name, [ethernet]
 * mac-address, [ipv4] method (auto = DHCP, manual = static) and address1. */
int vd_ins_net_nmkeyfile(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque);
/* systemd.network: [Match] Name= / MACAddress=, [Network] DHCP=, Address=,
 * [Address] Address=. */
int vd_ins_net_networkd(const char *buf, size_t len, vd_ins_net_cb cb, void *opaque);

/* ---- inspect.c: fstab ---- */

struct vd_ins_fstab_ent {
    char spec[VD_INS_STR], mountpoint[VD_INS_STR], type[32], options[VD_INS_STR];
};
typedef int (*vd_ins_fstab_cb)(void *opaque, const struct vd_ins_fstab_ent *e);
/* fstab(5) lines (octal escapes such as \040 decoded); comments and
 * lines with fewer than two fields skipped. */
int vd_ins_fstab(const char *buf, size_t len, vd_ins_fstab_cb cb, void *opaque);
/* The device (view name) an fstab spec names among devs, or NULL: UUID=,
 * LABEL=, PARTUUID=, PARTLABEL-less /dev/disk/by-{uuid,label,partuuid}/,
 * /dev/mapper/VG-LV, /dev/VG/LV, and kernel names /dev/sdXN, /dev/vdXN,
 * /dev/xvdXN, /dev/hdXN, /dev/nvmeCnNpP (disk C+1). */
const struct vd_bdev *vd_ins_resolve(const struct vd_bdev *const *devs, size_t n, const char *spec);

/* ---- initramfs drivers ---- */

/* The storage and network drivers inspect reports, NULL-terminated. */
extern const char *const vd_ins_drivers[];
/* The driver of vd_ins_drivers a module path names ("…/nvme-core.ko.zst"
 * -> "nvme-core"; '-' and '_' match each other, as modprobe does), or NULL. */
const char *vd_ins_driver_of(const char *path);

/* ---- inspect.c: the result under construction ---- */

struct vd_fs;
struct vd_ins_ctx;
/* A copy of s owned by the result; "" when memory ran out (noted). */
const char *vd_ins_str(struct vd_ins_ctx *c, const char *s);
/* Append a copy of s to a string array owned by the result. */
void vd_ins_push(struct vd_ins_ctx *c, const char ***arr, size_t *n, const char *s);
/* One line for the user about something inspection could not read. */
void vd_ins_warn(struct vd_ins_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- windows.c ---- */

/* Whether fs holds a Windows system root (Windows/System32/config/SYSTEM
 * or SOFTWARE). */
bool vd_ins_is_windows(struct vd_fs *fs);
/* Fill os from the SOFTWARE and SYSTEM hives of fs (hivex). What cannot be
 * read becomes a warning. */
void vd_ins_windows(struct vd_ins_ctx *c, struct vd_fs *fs, struct vd_inspect_os *os);
/* A Windows LCID ("0409") as a language tag ("en-US"), or NULL. */
const char *vd_ins_lcid_tag(unsigned lcid);

#endif
