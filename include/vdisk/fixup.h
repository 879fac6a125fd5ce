/*
 * libvdisk fixup: the guest changes AWS VM Import/Export documents
 * ("Programmatic modifications made to VMs by VM Import/Export",
 * https://docs.aws.amazon.com/vm-import/latest/userguide/import-modify-vm.html),
 * applied offline to a Linux guest's root filesystem. See docs/fixup.md.
 *
 * Two layers:
 *   - rewriters: each takes one file's text (buf, len) and returns the new
 *     text in a vd_fixup_buf plus one plain-words line per change in `why`.
 *     No I/O, so unit tests and fuzzers call them directly. They return 1
 *     if the text changed, 0 if not, -errno (with err set) on bad input.
 *   - vd_fixup_root(): reads the guest's files under a root directory
 *     (symlinks resolved inside that root, never on the host), runs the
 *     rewriters, keeps each original as NAME.vdisk-orig and reports every
 *     change (and, for a dry run, the diff) through a callback.
 */
#ifndef VDISK_FIXUP_H
#define VDISK_FIXUP_H

#include <stdbool.h>
#include <stddef.h>

#include "vdisk/error.h"

/* Files larger than this are refused (-EFBIG): guest config files are small. */
#define VD_FIXUP_MAX_FILE (1u << 20)

/* A growable byte buffer, always NUL-terminated after len. Zero-init. */
struct vd_fixup_buf {
    char *data;
    size_t len, cap;
};
void vd_fixup_buf_free(struct vd_fixup_buf *b);

/* ---- device map: what /dev/sdXN meant on the old machine ---- */

/* One filesystem (or swap) found on the guest's disks. Disk 1 is sda (or
 * hda, xvda, vda, nvme0n1), disk 2 sdb... part 0 is the whole disk. */
struct vd_fixup_dev {
    unsigned disk, part;
    char uuid[64];
    char type[32]; /* "ext4", "swap", "xfs"... */
    char label[64];
};
struct vd_fixup_devmap {
    size_t n;
    struct vd_fixup_dev *devs;
    unsigned ndisks; /* disks seen, so /dev/sdc on a 2-disk guest is "absent" */
};
void vd_fixup_devmap_free(struct vd_fixup_devmap *m);

/* Probe every partition of every disk of SOURCE (any image vdisk opens;
 * OVA: all its disks) with libblkid and append to m, numbering its disks
 * after those already in m. */
int vd_fixup_devmap_add_source(struct vd_fixup_devmap *m, const char *uri, struct vd_error *err);
/* The same for a vdiskfs view folder (MNT/name holding disk.raw,
 * disk-p1.raw... or disk1.raw, disk1-p1.raw...). */
int vd_fixup_devmap_add_view(struct vd_fixup_devmap *m, const char *dir, struct vd_error *err);

/* Parse a kernel disk path: /dev/sdXN, /dev/hdXN, /dev/xvdXN, /dev/vdXN
 * (X = a..z, aa..zz; N optional) or /dev/nvmeCnNpP. Returns true and the
 * 1-based disk and partition (0 = whole disk) if it is one; disk is 0 for
 * an NVMe namespace other than 1 (a disk that cannot be numbered). */
bool vd_fixup_parse_devpath(const char *path, size_t len, unsigned *disk, unsigned *part);
/* The map entry for (disk, part) that has a UUID, or NULL. */
const struct vd_fixup_dev *vd_fixup_devmap_find(const struct vd_fixup_devmap *m, unsigned disk,
                                                unsigned part);

/* ---- rewriters (no I/O) ---- */

/* /etc/fstab: kernel device paths -> UUID=; unresolvable or absent
 * devices get nofail (commented out when nofail would not save the boot:
 * bind mounts); cifs/smbfs/vboxsf/sshfs entries commented out. Fails with
 * -ENOENT if the root (/) entry names a device that does not resolve. */
int vd_fixup_fstab(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                   struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* /etc/default/grub: GRUB_DEFAULT=0 and GRUB_TIMEOUT=VD_FIXUP_GRUB_TIMEOUT;
 * root=/resume= kernel device names in GRUB_CMDLINE_LINUX* -> UUID=. */
#define VD_FIXUP_GRUB_TIMEOUT 1
int vd_fixup_grub_default(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                          struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* grub.cfg: root=/dev/sdXN and resume=/dev/sdXN -> UUID=, `set timeout=N`
 * -> the same timeout, `set default=...` -> "0" (except ${next_entry}). */
int vd_fixup_grub_cfg(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                      struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* Interface names (docs/fixup.md, "Interface names"): the new machine's
 * NIC has another name than the old one had (VMware ens192, KVM ens3,
 * Nitro ens5, Xen eth0). Fixup puts net.ifnames=0 biosdevname=0 on the
 * kernel command line (grub rewriters), so the first NIC is VD_FIXUP_NIC on
 * every hypervisor, and the network rewriters rename the one configuration
 * of the guest's primary interface to it. struct vd_fixup_nic carries
 * "a configuration already names the primary NIC" from file to file, so a
 * second one is not renamed too; configurations that stay bound to a name
 * the new machine lacks get a "warning: " line in why (even when the file
 * is otherwise unchanged). nic may be NULL (a fresh state). */
#define VD_FIXUP_NIC "eth0"
struct vd_fixup_nic {
    bool taken;
};
/* A Boot Loader Specification entry (/boot/loader/entries/NAME.conf, as
 * RHEL 8+ and Fedora boot): root=/resume= device names on its options
 * line -> UUID=, and net.ifnames=0 biosdevname=0 unless the line takes
 * its words from grubenv's $kernelopts. */
int vd_fixup_bls_entry(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                       struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* A GRUB environment block (boot/grub2/grubenv): the same on its
 * kernelopts= line; the block keeps its size ('#' padding), -ENOSPC if
 * the new text does not fit. A file that is not such a block is left. */
int vd_fixup_grubenv(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                     struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* GRUB legacy (menu.lst, grub.conf): default 0, timeout 1, and on each
 * kernel line root=/resume= -> UUID= and the NIC naming words. */
int vd_fixup_grub_legacy(const char *buf, size_t len, const struct vd_fixup_devmap *m,
                         struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);

/* Debian /etc/network/interfaces: the first non-loopback `inet`
 * stanza's interface is renamed to eth0 (its iface, auto and allow-*
 * lines), and if static it becomes `inet dhcp`, its
 * address/netmask/gateway/... lines go. */
int vd_fixup_interfaces(const char *buf, size_t len, struct vd_fixup_nic *nic,
                        struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* RHEL ifcfg-*: BOOTPROTO=dhcp; IPADDR*, NETMASK*, PREFIX*, GATEWAY*,
 * HWADDR, MACADDR, UUID removed; DEVICE= (and a NAME= equal to it) -> eth0,
 * or DEVICE=eth0 added. Loopback, bridge/bond/VLAN and enslaved
 * interfaces are left alone. */
int vd_fixup_ifcfg(const char *buf, size_t len, struct vd_fixup_nic *nic, struct vd_fixup_buf *out,
                   struct vd_fixup_buf *why, struct vd_error *err);
/* netplan YAML: each ethernets entry gets dhcp4: true; addresses,
 * gateway4/6 and routes removed; match: macaddress removed (and the match
 * block and set-name with it when nothing else was matched); the first
 * entry named by its id is renamed to eth0. */
int vd_fixup_netplan(const char *buf, size_t len, struct vd_fixup_nic *nic,
                     struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* systemd-networkd .network (systemd.network(5)) of an Ethernet link:
 * [Match] Name=X -> eth0 (a single name), MACAddress= removed,
 * [Network] Address=/Gateway= removed and DHCP=ipv4 (or yes for ipv6),
 * [Address] and [Route] sections removed. lo, bond/bridge ports and
 * Type= other than ether are left alone. */
int vd_fixup_networkd(const char *buf, size_t len, struct vd_fixup_nic *nic,
                      struct vd_fixup_buf *out, struct vd_fixup_buf *why, struct vd_error *err);
/* NetworkManager keyfile (nm-settings-keyfile(5)) of an Ethernet profile:
 * interface-name= and [ethernet] mac-address= removed (the profile then
 * applies to any Ethernet NIC, whatever its name), [ipv4] method=manual ->
 * auto, its address/route/gateway keys removed. */
int vd_fixup_nmconnection(const char *buf, size_t len, struct vd_fixup_buf *out,
                          struct vd_fixup_buf *why, struct vd_error *err);

/* A unified-diff-like listing of old -> new (lines "-old", "+new", with
 * one line of context and "@@ -a,b +c,d @@" hunk heads). */
int vd_fixup_diff(const char *a, size_t alen, const char *b, size_t blen, struct vd_fixup_buf *out,
                  struct vd_error *err);

/* ---- driver ---- */

struct vd_fixup_opts {
    bool dry_run;        /* report, change nothing */
    const char *profile; /* "aws" (the default and only one) or NULL */
};

/* Called once per file changed (or that would change): path inside the
 * guest ("/etc/fstab"), action ("rewritten", "removed"; also "skipped" for
 * a symlink left alone, "note" for something not checked, "root" for the
 * partition a view edit uses), the backup name
 * (NULL for a dry run), the plain-words reasons (one per line) and, for a
 * dry run, the diff (NULL otherwise). */
struct vd_fixup_change {
    const char *path;
    const char *action;
    const char *backup;
    const char *why;
    const char *diff;
};
typedef void (*vd_fixup_report_cb)(void *opaque, const struct vd_fixup_change *c);

/* Apply the profile to the guest tree at root. Every file is rewritten
 * in memory first; if any fails (e.g. fstab's root does not resolve)
 * nothing is written. Returns the number of files changed, or -errno. */
int vd_fixup_root(const char *root, const struct vd_fixup_devmap *m,
                  const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                  struct vd_error *err);

/* The same on a vdiskfs view folder (MNT/name) without a kernel mount:
 * the ext2/3/4 partition file holding /etc/fstab (disk-pN.raw) is edited
 * in place with libext2fs. Needs a writable view (vdiskfs -o rw) unless
 * opts->dry_run; -EROFS with a message naming -o rw and --root otherwise.
 * The first report names the partition file used (action "root"). */
int vd_fixup_view(const char *view, const struct vd_fixup_devmap *m,
                  const struct vd_fixup_opts *opts, vd_fixup_report_cb cb, void *opaque,
                  struct vd_error *err);

/* ---- Windows guests: the SYSTEM registry hive, edited with hivex ----
 * See src/fixup/windows.c and docs/fixup.md ("Windows"). */

/* The storage drivers (service key names) set to boot start when their
 * service key exists in the current control set. NULL-terminated. */
extern const char *const vd_fixup_win_boot_drivers[];
/* "ControlSet001" for Select\Current = 1. -EINVAL for 0 or > 999. */
int vd_fixup_win_controlset(unsigned long current, char *buf, size_t cap);
/* A hive's base block (buf, len >= 512): 1 if it is a hive that was
 * closed cleanly (the two sequence numbers agree), 0 if it is dirty
 * (a write was interrupted; its .LOG files hold changes that Windows
 * would replay over ours), -EINVAL if it is not a registry hive. */
int vd_fixup_win_hive_clean(const unsigned char *buf, size_t len);
/* A REG_MULTI_SZ (UTF-16LE) as ASCII "a, b" into out (non-ASCII as '?',
 * truncated to cap). Returns whether it holds an address other than ""
 * and "0.0.0.0" (a static IP setting that DHCP would replace). */
bool vd_fixup_win_multisz_addrs(const char *buf, size_t len, char *out, size_t cap);

/* Whether root holds Windows/System32/config/SYSTEM (names matched
 * without regard to case, as NTFS does; symlinks are not followed). */
bool vd_fixup_is_windows_root(const char *root);
/* Apply the AWS profile's registry changes to the Windows guest at root:
 * storage drivers to boot start, the DHCP client service enabled,
 * RealTimeIsUniversal = 1, static TCP/IP interfaces to DHCP. The hive is
 * edited in memory, written to a temporary file and renamed over SYSTEM;
 * the original stays as SYSTEM.vdisk.orig (.2, .3... if taken). Reports
 * one change for the hive (path "/Windows/System32/config/SYSTEM" as
 * found). Returns 1 if the hive changed (or would), 0 if nothing to do,
 * -errno with err set (nothing written). */
int vd_fixup_windows_root(const char *root, const struct vd_fixup_opts *opts, vd_fixup_report_cb cb,
                          void *opaque, struct vd_error *err);
/* The same on a vdiskfs view folder (MNT/name) without a kernel mount: the
 * partition file that is an NTFS holding Windows/System32/config/SYSTEM
 * is edited with libntfs-3g (the hive itself on a host temporary copy).
 * *found is false (and 0 returned) when no partition of the view is such
 * an NTFS, or when vdisk was built without libntfs-3g; the first report
 * names the partition file (action "root"). Needs vdiskfs -o rw unless
 * opts->dry_run (-EROFS otherwise); -EBUSY for a hibernated NTFS. */
int vd_fixup_windows_view(const char *view, const struct vd_fixup_opts *opts, vd_fixup_report_cb cb,
                          void *opaque, bool *found, struct vd_error *err);

#endif
