/*
 * libvdisk guest inspection (`vdisk inspect`, src/inspect/) and the AWS
 * VM Import pre-flight (`vdisk preflight`, src/preflight/): what
 * virt-inspector reports, read offline through the guest's block devices
 * (vdisk/guest.h) and filesystems (vdisk/fs.h), without booting anything.
 * See docs/inspect.md and docs/preflight.md.
 *
 * All strings are owned by the result and NUL-terminated; "" when unknown.
 */
#ifndef VDISK_INSPECT_H
#define VDISK_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"
#include "vdisk/guest.h"

#define VD_INSPECT_UNKNOWN UINT64_MAX

/* Every filesystem (or swap, or LVM PV) found on a block device. */
struct vd_inspect_fs {
    const char *dev; /* block device name: "disk-p1", "lvm-vg0-root" */
    const char *type, *uuid, *label;
    uint64_t size, free; /* bytes; free VD_INSPECT_UNKNOWN if not read */
    /* NULL if its files were read; else why not ("btrfs is not read"). */
    const char *not_inspected;
};

/* One fstab entry, resolved against the guest's devices. */
struct vd_inspect_mount {
    const char *spec;       /* as written: "UUID=...", "/dev/mapper/vg-root" */
    const char *mountpoint; /* "/", "/boot", "swap" */
    const char *type, *options;
    const char *dev; /* the device it resolves to, or NULL when it does not */
};

struct vd_inspect_kernel {
    const char *version; /* "6.1.0-13-amd64" */
    const char *path;    /* "/boot/vmlinuz-6.1.0-13-amd64" */
    const char *initrd;  /* "/boot/initrd.img-..." or "" */
    size_t nmodules;     /* modules in /lib/modules/VERSION (modules.dep, else .ko* files) */
    /* Storage and network drivers present in the initramfs, by module
     * name ("nvme", "ena", "xen-blkfront", "virtio_blk", "virtio_scsi",
     * "virtio_net"...), as modules or built in (modules.builtin). */
    const char **initramfs_drivers;
    size_t ninitramfs_drivers;
    bool initramfs_read; /* false: absent or unreadable (see why) */
    const char *initramfs_why;
};

/* One network configuration binding. */
struct vd_inspect_net {
    const char *file;  /* "/etc/network/interfaces" */
    const char *stack; /* "ifupdown", "ifcfg", "netplan", "networkmanager", "networkd", "wicked" */
    const char *iface; /* interface name it binds to, "" if by MAC or any */
    const char *mac;   /* MAC it binds to, "" if none */
    bool dhcp;         /* asks for DHCP (v4) */
    bool static_addr;  /* holds a static address */
};

enum vd_boot_mode { VD_BOOT_UNKNOWN = 0, VD_BOOT_BIOS, VD_BOOT_UEFI, VD_BOOT_BOTH };

struct vd_inspect_os {
    const char *type;      /* "linux", "windows" */
    const char *distro;    /* os-release ID ("debian", "rhel", "ubuntu"), "windows" */
    const char *product;   /* PRETTY_NAME, or Windows ProductName */
    const char *version;   /* VERSION_ID ("12", "9.3"), Windows "10.0" */
    unsigned major, minor; /* from version */
    const char *arch;      /* "x86_64", "i386", "aarch64" (ELF/PE machine) */
    const char *arch_from; /* the binary it was read from: "/bin/sh" */
    const char *hostname;
    const char *root_dev; /* block device holding / */
    const char *root_fstype;

    /* Linux */
    struct vd_inspect_mount *mounts;
    size_t nmounts;
    bool fstab_read; /* false: /etc/fstab missing or unreadable */
    struct vd_inspect_kernel *kernels;
    size_t nkernels;
    const char *default_kernel; /* version of the default boot entry, "" if unknown */
    const char *bootloader;     /* "grub2", "grub2-bls", "bls", "grub-legacy", "" */
    const char *bootloader_cfg; /* "/boot/grub/grub.cfg" */
    struct vd_inspect_net *nets;
    size_t nnets;
    bool dhcp_client; /* dhclient, dhcpcd, NetworkManager, systemd-networkd... */
    const char *dhcp_client_name;

    /* Both */
    /* BIOS: boot code in a disk's MBR or a BIOS boot partition; UEFI: an
     * ESP with /EFI (uefi_fallback says whether BOOTX64.EFI is there).
     * The same for every OS of the guest. docs/inspect.md, "Boot mode". */
    enum vd_boot_mode boot_mode;
    const char *esp_dev;         /* ESP holding EFI/BOOT/BOOTX64.EFI, or "" */
    bool uefi_fallback;          /* EFI/BOOT/BOOTX64.EFI present */
    const char *bootloader_disk; /* "disk", "disk2": where the boot code lives */

    /* Windows (SOFTWARE and SYSTEM hives) */
    const char *win_build;    /* CurrentBuildNumber */
    const char *win_edition;  /* EditionID */
    const char *win_install;  /* InstallationType: "Client", "Server", "Nano Server" */
    const char *win_language; /* "en-US" */
    const char *win_systemroot;
    const char **win_boot_drivers; /* storage services with Start = 0 */
    size_t nwin_boot_drivers;
    bool win_dhcp_enabled; /* Dhcp service not disabled */
    const char *win_pagefile;
    uint64_t free_bytes; /* free space on the root filesystem */
};

struct vd_inspect {
    struct vd_inspect_fs *fss;
    size_t nfss;
    struct vd_inspect_os *oss;
    size_t noss;
    /* Things inspection could not read, one line each (for the user). */
    const char **warnings;
    size_t nwarnings;
};

/* Inspect the guest. Missing or unreadable files are reported in the
 * result (fields empty, warnings), not as errors; -errno only when the
 * disks themselves cannot be read. */
int vd_inspect_guest(struct vd_guest *g, struct vd_inspect **out, struct vd_error *err);
/* The same with options. no_initramfs: do not list the default kernel's
 * initramfs (tens of MB; preflight's import-image route does not need its
 * drivers, and over S3 it would be most of the bytes fetched). */
struct vd_inspect_opts {
    bool no_initramfs;
};
int vd_inspect_guest_opts(struct vd_guest *g, const struct vd_inspect_opts *opts,
                          struct vd_inspect **out, struct vd_error *err);
void vd_inspect_free(struct vd_inspect *r);
/* JSON (docs/inspect.md). Caller frees. */
int vd_inspect_json(const struct vd_inspect *r, char **out, struct vd_error *err);
/* "bios", "uefi", "both", "unknown" (as in the JSON). */
const char *vd_inspect_boot_mode_name(enum vd_boot_mode m);

/* ---- pre-flight: what AWS VM Import would refuse ---- */

enum vd_pf_severity {
    VD_PF_NOTE = 0, /* worth knowing; import proceeds */
    VD_PF_RISK = 1, /* may fail, or the instance may not boot or be reachable */
    VD_PF_FAIL = 2, /* AWS would refuse the import */
};
struct vd_pf_finding {
    const char *check; /* stable id: "kernel-supported", "uefi-fallback"... */
    enum vd_pf_severity severity;
    const char *message;  /* what we found, naming file, device, field */
    const char *aws_text; /* the target's (AWS's, Azure's) own wording, or "" */
    const char *fix;      /* what to do ("run vdisk fixup VIEW"...) */
};
struct vd_preflight {
    struct vd_pf_finding *findings;
    size_t n;
    const char **passed; /* ids of checks that ran and passed */
    size_t npassed;
    const char *target; /* "aws" or "azure" (static) */
};
/* Exit codes of `vdisk preflight`. */
enum { VD_PF_READY = 0, VD_PF_CANNOT_CHECK = 1, VD_PF_WOULD_FAIL = 2, VD_PF_RISKS = 3 };

struct vd_preflight_opts {
    const char *target;    /* "aws" (default) or "azure" (VHD container checks only) */
    const char *route;     /* "import-image" (default) or "import-snapshot" */
    const char *data_file; /* the AWS support table (NULL: the installed one) */
    /* Read every allocated byte (VMDK grains decompress to their length):
     * the whole image, so off by default (over S3 it is the full download). */
    bool deep;
};
/* Run every check on the sources (container and integrity checks) and the
 * guest inspection result. g and ins may be NULL when the guest could not
 * be opened or inspected (a corrupt image): the container checks still
 * run, and say why AWS would refuse it. */
int vd_preflight(struct vd_source *const *srcs, size_t nsrcs, struct vd_guest *g,
                 const struct vd_inspect *ins, const struct vd_preflight_opts *opts,
                 struct vd_preflight **out, struct vd_error *err);
void vd_preflight_free(struct vd_preflight *p);
int vd_preflight_json(const struct vd_preflight *p, char **out, struct vd_error *err);
/* VD_PF_READY, VD_PF_WOULD_FAIL or VD_PF_RISKS for the findings. */
int vd_preflight_status(const struct vd_preflight *p);

#endif
