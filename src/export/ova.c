/*
 * OVA encoder: a ustar archive holding an OVF 1.x descriptor, its manifest
 * and one streamOptimized VMDK per disk, in the order OVF 1.x (DSP0243 1.1,
 * 5.3) requires: descriptor first, manifest second, then the disks in
 * References order.
 *
 *   [ustar hdr][NAME.ovf, fixed length, padded to 512]
 *   [ustar hdr][NAME.mf: "SHA256(NAME.ovf)= hex" and one line per disk]
 *   [ustar hdr, size patched][NAME-disk1.vmdk: the VMDK encoder's output]
 *   [ustar hdr, size patched][NAME-disk2.vmdk] ...  (several disks)
 *   [two zero blocks]
 *
 * The VM the OVF describes (docs/ova.md) is either a source descriptor
 * rebuilt by vd_ovf_rebuild (its VirtualSystem kept; only References and
 * the DiskSection change) or one generated from the vm_* options for the
 * target (esxi-X.Y / vmware / virtualbox / dmtf). Either way the text has
 * "#VDnnn#" tokens where the File ovf:size and Disk ovf:capacity go, and
 * each token is filled with the number and padded with spaces after the
 * closing quote (legal white space between attributes) to 22 bytes, so the
 * descriptor's length is known at begin and never changes.
 *
 * Everything up to and including the first VMDK's own head is this
 * encoder's patchable head. With several disks, the later member headers
 * are patched too, so the whole output is declared head: only a local
 * destination can take that (an S3 upload holds its head in memory).
 * A disk's digest is computed while streaming, or re-read from the local
 * file when the VMDK head had to be patched. Member sizes over 8 GiB use
 * GNU base-256. Unsupported: certificates; S3 destinations when the size is
 * only known at the end (the manifest needs the patched head re-read).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "export/encoder.h"
#include "export/ova.h"
#include "formats/ovf.h"
#include "vdisk/vdisk.h"

#define OVA_BLOCK    512u
#define OVA_NAME_MAX 80u

#define OVA_MAX_DISKS 64u

struct ova_enc {
    char stem[OVA_NAME_MAX + 1];
    char ovf_name[OVA_NAME_MAX + 8], mf_name[OVA_NAME_MAX + 8];
    char disk_names[OVA_MAX_DISKS][OVA_NAME_MAX + 32];
    size_t ndisks, cur;                /* disks; the one being encoded */
    bool multi;                        /* several disks: sizes known up front */
    uint64_t sizes[OVA_MAX_DISKS];     /* virtual sizes (multi) */
    uint64_t bases[OVA_MAX_DISKS + 1]; /* where each starts in the raw stream */
    uint64_t hdr_off[OVA_MAX_DISKS];   /* its tar header in the output */
    uint64_t lens[OVA_MAX_DISKS];      /* member (VMDK) bytes */
    uint64_t caps[OVA_MAX_DISKS];      /* VMDK capacity */
    char hex[OVA_MAX_DISKS][129];      /* member digests */
    const char *md, *algo;             /* "sha256", "SHA256" */
    char *tmpl;                        /* descriptor with "#VDnnn#" tokens */
    size_t ovf_len, mf_len;            /* member lengths (fixed) */
    uint64_t ovf_data, mf_data;        /* offsets in the output */
    struct vd_sink *disk_tap;
    struct vd_encoder *vmdk;
    uint32_t mtime;
};

static uint64_t ova_pad(uint64_t n)
{
    return div_round_up(n, OVA_BLOCK) * OVA_BLOCK;
}

static void ova_octal(char *field, size_t width, uint64_t v)
{
    snprintf(field, width, "%0*" PRIo64, (int)width - 1, v);
}

void vd_export_tar_header(uint8_t *h, const char *name, uint64_t size, uint32_t mtime)
{
    memset(h, 0, OVA_BLOCK);
    snprintf((char *)h, 100, "%s", name);
    ova_octal((char *)h + 100, 8, 0644);
    ova_octal((char *)h + 108, 8, 0);
    ova_octal((char *)h + 116, 8, 0);
    if (size < (1ull << 33)) {
        ova_octal((char *)h + 124, 12, size);
    } else { /* GNU base-256: high bit set, big-endian value */
        h[124] = 0x80;
        put_be64(h + 128, size);
    }
    ova_octal((char *)h + 136, 12, mtime);
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    snprintf((char *)h + 265, 32, "root");
    snprintf((char *)h + 297, 32, "root");
    unsigned sum = 0;
    for (unsigned i = 0; i < OVA_BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

/* ---- targets and options ---- */

enum ova_kind { OVA_VMWARE, OVA_VBOX, OVA_DMTF };

struct ova_target {
    const char *version; /* after "esxi-", "vmware-" or "vcenter-" */
    unsigned hw_max;     /* highest vmx-N the host accepts */
    bool sha1;           /* only SHA1 manifests */
};

/* ESXi (and the vCenter of the same version) and the newest virtual
 * hardware each accepts: VMware KB 2007240 / 1003746 ("ESXi/ESX hosts and
 * compatible virtual machine hardware versions"). vSphere 6.0 and earlier
 * refuse a SHA256 manifest (KB 2151537: "The OVF package is invalid and
 * cannot be deployed"), so those targets get SHA1. */
static const struct ova_target ova_esxi[] = {
    {"5.0", 8, true},     {"5.1", 9, true},     {"5.5", 10, true},    {"6.0", 11, true},
    {"6.5", 13, false},   {"6.7", 14, false},   {"6.7u2", 15, false}, {"7.0", 17, false},
    {"7.0u1", 18, false}, {"7.0u2", 19, false}, {"8.0", 20, false},   {"8.0u1", 20, false},
    {"8.0u2", 21, false}, {"8.0u3", 21, false},
};

#define OVA_HW_DEFAULT 13u /* ESXi 6.5: the oldest host that takes a SHA256 manifest */
#define OVA_HW_NEWEST  21u /* ESXi 8.0 U2 */

struct ova_profile {
    enum ova_kind kind;
    unsigned hw_max; /* 0: no ceiling */
    bool sha1;
    const char *name; /* for messages */
};

/* Resolve target (NULL or "" = none). Returns false for an unknown one. */
static bool ova_profile_of(const char *target, struct ova_profile *p)
{
    *p = (struct ova_profile){OVA_VMWARE, OVA_HW_NEWEST, false, "vmware"};
    if (!target || !*target || !strcasecmp(target, "vmware") || !strcasecmp(target, "esxi") ||
        !strcasecmp(target, "vcenter"))
        return true;
    if (!strcasecmp(target, "virtualbox") || !strcasecmp(target, "vbox")) {
        *p = (struct ova_profile){OVA_VBOX, 0, false, "virtualbox"};
        return true;
    }
    if (!strcasecmp(target, "dmtf")) {
        *p = (struct ova_profile){OVA_DMTF, 0, false, "dmtf"};
        return true;
    }
    const char *v = NULL;
    if (!strncasecmp(target, "esxi-", 5))
        v = target + 5;
    else if (!strncasecmp(target, "vmware-", 7))
        v = target + 7;
    else if (!strncasecmp(target, "vcenter-", 8))
        v = target + 8;
    for (size_t i = 0; v && i < VD_ARRAY_SIZE(ova_esxi); i++)
        if (!strcasecmp(v, ova_esxi[i].version)) {
            *p = (struct ova_profile){OVA_VMWARE, ova_esxi[i].hw_max, ova_esxi[i].sha1, target};
            return true;
        }
    return false;
}

bool vd_export_ova_target_known(const char *target)
{
    struct ova_profile p;
    return target && *target && ova_profile_of(target, &p);
}

/* A name for XML text and attributes: printable ASCII without markup. */
static bool ova_plain(const char *v)
{
    for (const char *p = v; *p; p++)
        if (*p < 0x20 || *p > 0x7e || strchr("<>&\"'", *p))
            return false;
    return true;
}

int vd_export_ova_opt(struct vd_export_opts *o, const char *key, const char *val,
                      struct vd_error *err)
{
    static const char *const firmwares[] = {"bios", "efi", NULL};
    static const char *const buses[] = {"scsi", "pvscsi", "sata", "nvme", "ide", NULL};
    static const char *const nics[] = {"vmxnet3", "e1000", "e1000e", "none", NULL};
    const char *const *choices = NULL;
    const char **dst = NULL;
    char *end;
    if (!strcmp(key, "vm_name") || !strcmp(key, "vm_os")) {
        char *d = key[3] == 'n' ? o->vm_name : o->vm_os;
        size_t n = strlen(val);
        if (!n || n >= sizeof(o->vm_name) || !ova_plain(val))
            return vd_err(err, -EINVAL,
                          "export: %s=%s: expected 1 to 63 printable characters without <>&\"'",
                          key, val);
        memcpy(d, val, n + 1);
        return 1;
    }
    if (!strcmp(key, "vm_cpus")) {
        errno = 0;
        unsigned long v = strtoul(val, &end, 10);
        if (errno || end == val || *end || *val == '-' || v < 1 || v > 768)
            return vd_err(err, -EINVAL, "export: vm_cpus=%s: expected 1..768", val);
        o->vm_cpus = (unsigned)v;
        return 1;
    }
    if (!strcmp(key, "vm_hw_version")) {
        const char *p = strncasecmp(val, "vmx-", 4) ? val : val + 4;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || *end || *p == '-' || v < 4 || v > OVA_HW_NEWEST)
            return vd_err(err, -EINVAL, "export: vm_hw_version=%s: expected 4..%u (vmx-N)", val,
                          OVA_HW_NEWEST);
        o->vm_hw_version = (unsigned)v;
        return 1;
    }
    if (!strcmp(key, "vm_memory")) {
        /* A bare number is MiB, as in VMware's OVFs and ova-compose. */
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        unsigned shift = 20;
        if (*end && !end[1]) {
            const char *u = strchr("kKmMgGtT", *end);
            shift = u ? (unsigned)((u - "kKmMgGtT") / 2 + 1) * 10 : 0;
            end += u ? 1 : 0;
        }
        if (errno || end == val || *end || *val == '-' || !shift || v == 0 ||
            v > (4ull << 40) >> shift || ((v << shift) & ((1ull << 20) - 1)))
            return vd_err(err, -EINVAL,
                          "export: vm_memory=%s: expected a whole number of MiB up to 4T "
                          "(a bare number is MiB; K/M/G/T suffixes)",
                          val);
        o->vm_memory = (uint64_t)v << shift;
        return 1;
    }
    if (!strcmp(key, "vm_firmware")) {
        choices = firmwares;
        dst = &o->vm_firmware;
    } else if (!strcmp(key, "vm_disk_bus")) {
        choices = buses;
        dst = &o->vm_disk_bus;
    } else if (!strcmp(key, "vm_nic")) {
        choices = nics;
        dst = &o->vm_nic;
    } else {
        return 0;
    }
    for (size_t i = 0; choices[i]; i++)
        if (!strcasecmp(val, choices[i])) {
            *dst = choices[i];
            return 1;
        }
    char list[128] = "";
    for (size_t i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 choices[i]);
    return vd_err(err, -EINVAL, "export: %s=%s: expected one of %s", key, val, list);
}

/* ---- a growing text buffer ---- */

struct ova_buf {
    char *p;
    size_t len, cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void ova_put(struct ova_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom) {
        b->oom = true;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- the VM from options ---- */

/* CIM_OperatingSystem OSType numbers (CIM schema 2.x, CIM_OperatingSystem
 * OSType value map) for the VMware guest id families people pass most, 32-
 * and 64-bit; the rest are "Other" (1) or "Other 64-Bit" (102), which every
 * importer accepts. */
static unsigned ova_cim_os(const char *vmw)
{
    static const struct {
        const char *prefix;
        unsigned id32, id64;
    } map[] = {
        {"debian", 95, 96},        {"ubuntu", 93, 94},        {"rhel", 79, 80},
        {"centos", 107, 108},      {"sles", 84, 85},          {"oracleLinux", 109, 110},
        {"freebsd", 42, 78},       {"otherLinux", 36, 101},   {"other3xLinux", 36, 101},
        {"other4xLinux", 36, 101}, {"other5xLinux", 36, 101}, {"other6xLinux", 36, 101},
    };
    if (!vmw || !*vmw)
        return 1;
    bool is64 = strstr(vmw, "64") != NULL;
    for (size_t i = 0; i < VD_ARRAY_SIZE(map); i++)
        if (!strncmp(vmw, map[i].prefix, strlen(map[i].prefix)))
            return is64 ? map[i].id64 : map[i].id32;
    return is64 ? 102 : 1;
}

struct ova_vm {
    const char *name, *os, *firmware, *bus, *nic;
    unsigned cpus, hw;
    uint64_t memory_mib;
};

/* Settle the VM for the profile: defaults, then what the target cannot
 * take is refused (never silently changed). */
static int ova_vm_of(const struct vd_export_opts *o, const struct ova_profile *p, const char *stem,
                     size_t ndisks, struct ova_vm *vm, const char *base, struct vd_error *err)
{
    vm->name = o->vm_name[0] ? o->vm_name : stem;
    vm->os = o->vm_os[0] ? o->vm_os : NULL;
    vm->cpus = o->vm_cpus ? o->vm_cpus : 1;
    vm->memory_mib = o->vm_memory ? o->vm_memory >> 20 : 1024;
    vm->firmware = o->vm_firmware ? o->vm_firmware : "bios";
    vm->bus = o->vm_disk_bus ? o->vm_disk_bus : p->kind == OVA_VBOX ? "sata" : "scsi";
    vm->nic = o->vm_nic ? o->vm_nic : p->kind == OVA_VBOX ? "e1000" : "vmxnet3";
    vm->hw = o->vm_hw_version ? o->vm_hw_version : OVA_HW_DEFAULT;
    if (p->hw_max && vm->hw > p->hw_max)
        vm->hw = o->vm_hw_version ? vm->hw : p->hw_max;
    if (p->hw_max && vm->hw > p->hw_max)
        return vd_err(err, -EINVAL,
                      "ova: %s: vm_hw_version=%u is newer than target %s accepts (vmx-%u at most)",
                      base, vm->hw, p->name, p->hw_max);
    if (p->kind == OVA_VBOX) {
        if (o->vm_hw_version)
            return vd_err(err, -EINVAL,
                          "ova: %s: vm_hw_version is VMware's; target virtualbox has no "
                          "hardware version",
                          base);
        const char *bad = !strcmp(vm->firmware, "efi")  ? "vm_firmware=efi"
                          : !strcmp(vm->bus, "nvme")    ? "vm_disk_bus=nvme"
                          : !strcmp(vm->bus, "pvscsi")  ? "vm_disk_bus=pvscsi"
                          : !strcmp(vm->nic, "vmxnet3") ? "vm_nic=vmxnet3"
                                                        : NULL;
        if (bad)
            return vd_err(err, -EINVAL,
                          "ova: %s: %s cannot be said in an OVF VirtualBox imports; use "
                          "target=vmware, or leave it out",
                          base, bad);
    }
    if (p->kind == OVA_DMTF && !strcmp(vm->firmware, "efi"))
        return vd_err(err, -EINVAL,
                      "ova: %s: vm_firmware=efi has no DMTF (CIM) element; only VMware's "
                      "vmw:Config says it: use target=vmware",
                      base);
    if (p->kind != OVA_VBOX) {
        /* The first hardware version with the device (VMware's "hardware
         * features available with virtual machine compatibility" table). */
        unsigned need = !strcmp(vm->bus, "nvme")       ? 13
                        : !strcmp(vm->bus, "sata")     ? 10
                        : !strcmp(vm->nic, "e1000e")   ? 8
                        : !strcmp(vm->firmware, "efi") ? 8
                                                       : 4;
        if (vm->hw < need)
            return vd_err(err, -EINVAL,
                          "ova: %s: vmx-%u cannot hold %s (it needs vmx-%u); raise vm_hw_version",
                          base, vm->hw,
                          !strcmp(vm->bus, "nvme") || !strcmp(vm->bus, "sata") ? vm->bus
                          : !strcmp(vm->nic, "e1000e")                         ? "e1000e"
                                                                               : "efi",
                          need);
    }
    size_t per_bus = !strcmp(vm->bus, "ide") ? 2 : !strcmp(vm->bus, "sata") ? 30 : 15;
    if (ndisks > per_bus)
        return vd_err(err, -EINVAL, "ova: %s: %zu disks do not fit one %s controller (%zu at most)",
                      base, ndisks, vm->bus, per_bus);
    return 0;
}

/* The descriptor of a VM from options, with the "#VDnnn#" tokens. */
static void ova_gen_ovf(struct ova_buf *b, const struct ova_vm *vm, const struct ova_profile *p,
                        size_t ndisks, char (*disk_names)[OVA_NAME_MAX + 32])
{
    bool vmw = p->kind == OVA_VMWARE;
    ova_put(b,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Envelope ovf:version=\"1.0\" xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\""
            " xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\""
            " xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
            "CIM_ResourceAllocationSettingData\""
            " xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
            "CIM_VirtualSystemSettingData\"%s"
            " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
            "  <References>\n",
            vmw ? " xmlns:vmw=\"http://www.vmware.com/schema/ovf\"" : "");
    for (size_t i = 0; i < ndisks; i++)
        ova_put(b, "    <File ovf:href=\"%s\" ovf:id=\"file%zu\" ovf:size=\"#VD%03zu#\"/>\n",
                disk_names[i], i + 1, 2 * i);
    ova_put(b, "  </References>\n"
               "  <DiskSection>\n"
               "    <Info>Virtual disk information</Info>\n");
    for (size_t i = 0; i < ndisks; i++)
        ova_put(b,
                "    <Disk ovf:capacity=\"#VD%03zu#\" ovf:capacityAllocationUnits=\"byte\""
                " ovf:diskId=\"vmdisk%zu\" ovf:fileRef=\"file%zu\" ovf:format=\"%s\"/>\n",
                2 * i + 1, i + 1, i + 1, VD_OVF_STREAM_VMDK);
    ova_put(b, "  </DiskSection>\n");
    if (strcmp(vm->nic, "none"))
        ova_put(b, "  <NetworkSection>\n"
                   "    <Info>The list of logical networks</Info>\n"
                   "    <Network ovf:name=\"VM Network\">\n"
                   "      <Description>The VM Network network</Description>\n"
                   "    </Network>\n"
                   "  </NetworkSection>\n");
    ova_put(b,
            "  <VirtualSystem ovf:id=\"%s\">\n"
            "    <Info>A virtual machine</Info>\n"
            "    <Name>%s</Name>\n"
            "    <OperatingSystemSection ovf:id=\"%u\"",
            vm->name, vm->name, ova_cim_os(vm->os));
    if (vmw && vm->os)
        ova_put(b, " vmw:osType=\"%s\"", vm->os);
    ova_put(b, ">\n      <Info>The kind of installed guest operating system</Info>\n");
    if (vm->os)
        ova_put(b, "      <Description>%s</Description>\n", vm->os);
    ova_put(b, "    </OperatingSystemSection>\n");
    char type[24];
    if (p->kind == OVA_VBOX)
        snprintf(type, sizeof(type), "virtualbox-2.2");
    else
        snprintf(type, sizeof(type), "vmx-%02u", vm->hw);
    ova_put(b,
            "    <VirtualHardwareSection>\n"
            "      <Info>Virtual hardware requirements</Info>\n"
            "      <System>\n"
            "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
            "        <vssd:InstanceID>0</vssd:InstanceID>\n"
            "        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>\n"
            "        <vssd:VirtualSystemType>%s</vssd:VirtualSystemType>\n"
            "      </System>\n"
            "      <Item>\n"
            "        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
            "        <rasd:Description>Number of Virtual CPUs</rasd:Description>\n"
            "        <rasd:ElementName>%u virtual CPU(s)</rasd:ElementName>\n"
            "        <rasd:InstanceID>1</rasd:InstanceID>\n"
            "        <rasd:ResourceType>3</rasd:ResourceType>\n"
            "        <rasd:VirtualQuantity>%u</rasd:VirtualQuantity>\n"
            "      </Item>\n"
            "      <Item>\n"
            "        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
            "        <rasd:Description>Memory Size</rasd:Description>\n"
            "        <rasd:ElementName>%" PRIu64 "MB of memory</rasd:ElementName>\n"
            "        <rasd:InstanceID>2</rasd:InstanceID>\n"
            "        <rasd:ResourceType>4</rasd:ResourceType>\n"
            "        <rasd:VirtualQuantity>%" PRIu64 "</rasd:VirtualQuantity>\n"
            "      </Item>\n",
            vm->name, type, vm->cpus, vm->cpus, vm->memory_mib, vm->memory_mib);
    /* The controller as ova-compose writes it (RasdScsiController,
     * RasdSataController, RasdNvmeController, RasdIdeController);
     * VirtualBox names AHCI and PIIX4 itself. */
    const char *desc, *sub;
    unsigned rt;
    if (!strcmp(vm->bus, "sata")) {
        rt = 20, desc = "SATA Controller", sub = vmw ? "vmware.sata.ahci" : "AHCI";
    } else if (!strcmp(vm->bus, "nvme")) {
        rt = 20, desc = "NVME Controller", sub = "vmware.nvme.controller";
    } else if (!strcmp(vm->bus, "ide")) {
        rt = 5, desc = "IDE Controller", sub = p->kind == OVA_VBOX ? "PIIX4" : NULL;
    } else {
        rt = 6, desc = "SCSI Controller",
        sub = !strcmp(vm->bus, "pvscsi") ? "VirtualSCSI" : "lsilogic";
    }
    ova_put(b,
            "      <Item>\n"
            "        <rasd:Address>0</rasd:Address>\n"
            "        <rasd:Description>%s</rasd:Description>\n"
            "        <rasd:ElementName>%s 0</rasd:ElementName>\n"
            "        <rasd:InstanceID>3</rasd:InstanceID>\n",
            desc, desc);
    if (sub)
        ova_put(b, "        <rasd:ResourceSubType>%s</rasd:ResourceSubType>\n", sub);
    ova_put(b, "        <rasd:ResourceType>%u</rasd:ResourceType>\n      </Item>\n", rt);
    unsigned id = 4;
    for (size_t i = 0; i < ndisks; i++, id++)
        ova_put(b,
                "      <Item>\n"
                "        <rasd:AddressOnParent>%zu</rasd:AddressOnParent>\n"
                "        <rasd:ElementName>Hard Disk %zu</rasd:ElementName>\n"
                "        <rasd:HostResource>ovf:/disk/vmdisk%zu</rasd:HostResource>\n"
                "        <rasd:InstanceID>%u</rasd:InstanceID>\n"
                "        <rasd:Parent>3</rasd:Parent>\n"
                "        <rasd:ResourceType>17</rasd:ResourceType>\n"
                "      </Item>\n",
                i, i + 1, i + 1, id);
    if (strcmp(vm->nic, "none")) {
        const char *nic = !strcmp(vm->nic, "vmxnet3")  ? "VmxNet3"
                          : !strcmp(vm->nic, "e1000e") ? "E1000e"
                                                       : "E1000";
        ova_put(b,
                "      <Item>\n"
                "        <rasd:AddressOnParent>7</rasd:AddressOnParent>\n"
                "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
                "        <rasd:Connection>VM Network</rasd:Connection>\n"
                "        <rasd:Description>%s ethernet adapter on &quot;VM "
                "Network&quot;</rasd:Description>\n"
                "        <rasd:ElementName>Network adapter 1</rasd:ElementName>\n"
                "        <rasd:InstanceID>%u</rasd:InstanceID>\n"
                "        <rasd:ResourceSubType>%s</rasd:ResourceSubType>\n"
                "        <rasd:ResourceType>10</rasd:ResourceType>\n"
                "      </Item>\n",
                nic, id, nic);
    }
    /* Firmware: a vmw:Config of the VirtualHardwareSection, as VMware's
     * templates carry it ("firmware" = "bios" | "efi"). */
    if (vmw)
        ova_put(b,
                "      <vmw:Config ovf:required=\"false\" vmw:key=\"firmware\""
                " vmw:value=\"%s\"/>\n",
                vm->firmware);
    ova_put(b, "    </VirtualHardwareSection>\n"
               "  </VirtualSystem>\n"
               "</Envelope>\n");
}

/* ---- tokens ---- */

#define OVA_TOK_LEN  8u  /* #VDnnn#" */
#define OVA_FILL_LEN 22u /* 20 digits, the quote, a space at least */

/* Length of tmpl once filled. */
static size_t ova_filled_len(const char *tmpl, size_t len)
{
    size_t n = len;
    for (const char *p = tmpl; (p = strstr(p, "#VD")); p += 3)
        n += OVA_FILL_LEN - OVA_TOK_LEN;
    return n;
}

/* Fill tmpl into out (ova_filled_len + 1 bytes): token nnn gets vals[nnn]. */
static void ova_fill(const char *tmpl, const uint64_t *vals, size_t nvals, char *out)
{
    const char *p = tmpl, *t;
    while ((t = strstr(p, "#VD"))) {
        memcpy(out, p, (size_t)(t - p));
        out += t - p;
        unsigned k = (unsigned)((t[3] - '0') * 100 + (t[4] - '0') * 10 + (t[5] - '0'));
        int n = snprintf(out, OVA_FILL_LEN + 1, "%" PRIu64 "\"", k < nvals ? vals[k] : 0);
        memset(out + n, ' ', OVA_FILL_LEN - (size_t)n);
        out += OVA_FILL_LEN;
        p = t + OVA_TOK_LEN;
    }
    strcpy(out, p);
}

/* Member names from the output's base name: "web.ova" -> "web". Only
 * characters safe in XML attributes and tar names are kept. */
static void ova_names(struct ova_enc *o, const char *base)
{
    size_t n = 0;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    for (size_t i = 0; i < len && n < OVA_NAME_MAX; i++) {
        char c = base[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        o->stem[n++] = ok ? c : '_';
    }
    o->stem[n] = '\0';
    if (n == 0)
        snprintf(o->stem, sizeof(o->stem), "vm");
    snprintf(o->ovf_name, sizeof(o->ovf_name), "%s.ovf", o->stem);
    snprintf(o->mf_name, sizeof(o->mf_name), "%s.mf", o->stem);
    for (size_t i = 0; i < o->ndisks; i++)
        snprintf(o->disk_names[i], sizeof(o->disk_names[i]), "%s-disk%zu.vmdk", o->stem, i + 1);
}

uint64_t vd_export_ova_disk_offset(const struct vd_export_opts *o, size_t i)
{
    uint64_t off = 0;
    for (size_t j = 0; o && o->ova_disk_sizes && j < i && j < o->ova_ndisks; j++)
        off += div_round_up(o->ova_disk_sizes[j], VD_EXPORT_CHUNK) * VD_EXPORT_CHUNK;
    return off;
}

/* The manifest: the descriptor's line, then one per disk. */
static size_t ova_mf(const struct ova_enc *o, const char *ovf_hex, char *out, size_t cap)
{
    size_t n = 0;
    int k = snprintf(out, cap, "%s(%s)= %s\n", o->algo, o->ovf_name, ovf_hex);
    n += k > 0 ? (size_t)k : 0;
    for (size_t i = 0; i < o->ndisks; i++) {
        k = snprintf(out ? out + n : NULL, out ? cap - n : 0, "%s(%s)= %s\n", o->algo,
                     o->disk_names[i], o->hex[i]);
        n += k > 0 ? (size_t)k : 0;
    }
    return n;
}

/* The descriptor text with tokens, from the source or from options. */
static int ova_template(struct vd_encoder *enc, const struct ova_profile *prof,
                        struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    const struct vd_export_opts *op = enc->opts;
    int r;
    if (op->ova_source_ovf) {
        const char *why = op->vm_name[0]    ? "vm_name"
                          : op->vm_cpus     ? "vm_cpus"
                          : op->vm_memory   ? "vm_memory"
                          : op->vm_os[0]    ? "vm_os"
                          : op->vm_firmware ? "vm_firmware"
                          : op->vm_disk_bus ? "vm_disk_bus"
                          : op->vm_nic      ? "vm_nic"
                                            : NULL;
        if (why)
            return vd_err(err, -EINVAL,
                          "ova: %s: %s= describes a new VM, but this export keeps the VM of %s "
                          "(only vm_hw_version= changes it); edit that descriptor instead",
                          enc->base, why, op->ova_source_name ? op->ova_source_name : "the source");
        size_t src_disk[OVA_MAX_DISKS];
        const char *hrefs[OVA_MAX_DISKS];
        for (size_t i = 0; i < o->ndisks; i++) {
            src_disk[i] = op->ova_source_disk ? op->ova_source_disk[i] : i;
            hrefs[i] = o->disk_names[i];
        }
        struct vd_ovf_rebuild_opts ro = {
            .ndisks = o->ndisks,
            .src_disk = src_disk,
            .hrefs = hrefs,
            .hw_version = op->vm_hw_version,
            .hw_ceiling = prof->kind == OVA_VMWARE && op->target[0] ? prof->hw_max : 0,
            .target = prof->name,
        };
        size_t len;
        r = vd_ovf_rebuild(op->ova_source_ovf, op->ova_source_ovf_len,
                           op->ova_source_name ? op->ova_source_name : enc->base, &ro, &o->tmpl,
                           &len, err);
        if (r < 0)
            return r;
    } else {
        struct ova_vm vm;
        struct ova_buf b = {0};
        if ((r = ova_vm_of(op, prof, o->stem, o->ndisks, &vm, enc->base, err)) < 0)
            return r;
        ova_gen_ovf(&b, &vm, prof, o->ndisks, o->disk_names);
        if (b.oom) {
            free(b.p);
            return vd_err(err, -ENOMEM, "ova: %s: out of memory", enc->base);
        }
        o->tmpl = b.p;
    }
    /* Exactly our tokens, each well formed: a source whose text happens
     * to hold "#VD" would otherwise be filled in the wrong place. */
    size_t ntok = 0;
    bool seen[2 * OVA_MAX_DISKS] = {false};
    for (const char *p = o->tmpl; (p = strstr(p, "#VD")); p += 3, ntok++) {
        bool digits =
            p[3] >= '0' && p[3] <= '9' && p[4] >= '0' && p[4] <= '9' && p[5] >= '0' && p[5] <= '9';
        unsigned k =
            digits ? (unsigned)((p[3] - '0') * 100 + (p[4] - '0') * 10 + (p[5] - '0')) : UINT32_MAX;
        if (!digits || p[6] != '#' || p[7] != '"' || k >= 2 * o->ndisks || seen[k])
            return vd_err(err, -EINVAL,
                          "ova: %s: the source descriptor's text holds \"#VD\", which this "
                          "encoder uses as a placeholder; remove it from the descriptor",
                          enc->base);
        seen[k] = true;
    }
    if (ntok != 2 * o->ndisks)
        return vd_err(err, -EINVAL, "ova: %s: descriptor has %zu size fields for %zu disks",
                      enc->base, ntok, o->ndisks);
    return 0;
}

/* Start disk i's member: its tar header (disk 0's is in the head) and a
 * VMDK encoder writing through a tap that digests it. */
static int ova_disk_start(struct vd_encoder *enc, size_t i, struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    int r;
    if (i > 0) {
        uint8_t hdr[OVA_BLOCK];
        o->hdr_off[i] = enc->sink->pos;
        vd_export_tar_header(hdr, o->disk_names[i], 0, o->mtime);
        if ((r = vd_sink_write(enc->sink, hdr, sizeof(hdr), err)) < 0)
            return r;
    }
    if ((r = vd_sink_tap_open(enc->sink, o->hdr_off[i] + OVA_BLOCK, o->md, &o->disk_tap, err)) <
            0 ||
        (r = vd_encoder_new(&vd_encoder_vmdk, o->disk_tap, enc->opts, o->disk_names[i], &o->vmdk,
                            err)) < 0)
        return r;
    o->vmdk->size = o->multi ? o->sizes[i] : enc->size;
    o->vmdk->size_final = o->multi ? true : enc->size_final;
    o->cur = i;
    return o->vmdk->ops->begin(o->vmdk, err);
}

/* Finish disk cur: the VMDK's tail, the member's padding, its digest and
 * its tar header's size. */
static int ova_disk_end(struct vd_encoder *enc, uint64_t size, struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    size_t i = o->cur;
    uint8_t zero[OVA_BLOCK] = {0}, hdr[OVA_BLOCK];
    int r = o->vmdk->ops->finish(o->vmdk, size, err);
    if (r < 0)
        return r;
    o->lens[i] = o->disk_tap->pos;
    o->caps[i] = div_round_up(size, 512) * 512; /* = the VMDK header's capacity */
    if ((r = vd_sink_write(enc->sink, zero, (size_t)(ova_pad(o->lens[i]) - o->lens[i]), err)) < 0)
        return r;
    if ((r = vd_sink_tap_digest(o->disk_tap, o->hex[i], err)) < 0) {
        if (r == -ENOTSUP)
            vd_err(err, r,
                   "ova: %s: the manifest needs the disk re-read, which %s cannot do; "
                   "use vdisk convert so the size is known up front",
                   enc->base, enc->sink->name);
        return r;
    }
    vd_export_tar_header(hdr, o->disk_names[i], o->lens[i], o->mtime);
    if ((r = vd_sink_patch(enc->sink, o->hdr_off[i], hdr, sizeof(hdr), err)) < 0)
        return r;
    vd_encoder_free(o->vmdk);
    vd_sink_free(o->disk_tap);
    o->vmdk = NULL;
    o->disk_tap = NULL;
    return 0;
}

static int ova_begin(struct vd_encoder *enc, struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    const struct vd_export_opts *op = enc->opts;
    struct ova_profile prof;
    uint8_t *head = NULL;
    char *filled = NULL, *mf = NULL;
    int r;
    if (!ova_profile_of(op->target, &prof))
        return vd_err(err, -EINVAL, "ova: %s: target=%s is not an OVA target", enc->base,
                      op->target);
    o->md = prof.sha1 || !strcmp(op->ova_manifest, "sha1") ? "sha1" : "sha256";
    o->algo = o->md[3] == '1' ? "SHA1" : "SHA256";
    o->ndisks = op->ova_disk_sizes && op->ova_ndisks ? op->ova_ndisks : 1;
    o->multi = op->ova_disk_sizes && op->ova_ndisks > 1;
    if (o->ndisks > OVA_MAX_DISKS)
        return vd_err(err, -EINVAL, "ova: %s: %zu disks; an OVA export holds %u at most", enc->base,
                      o->ndisks, OVA_MAX_DISKS);
    if (o->multi && !strncmp(enc->sink->name, "s3://", 5))
        return vd_err(err, -ENOTSUP,
                      "ova: %s: an OVA of several disks is written to a local file only (each "
                      "member's size is patched in place); convert to a file and upload it",
                      enc->base);
    for (size_t i = 0; i < o->ndisks; i++) {
        o->sizes[i] = op->ova_disk_sizes ? op->ova_disk_sizes[i] : 0;
        o->bases[i] = vd_export_ova_disk_offset(op, i);
    }
    o->bases[o->ndisks] = o->multi ? vd_export_ova_disk_offset(op, o->ndisks) : UINT64_MAX;
    ova_names(o, enc->base);
    time_t now = time(NULL);
    o->mtime = now > 0 ? (uint32_t)now : 0;
    size_t hexlen = o->md[3] == '1' ? 40 : 64;
    for (size_t i = 0; i < o->ndisks; i++) {
        memset(o->hex[i], '0', hexlen);
        o->hex[i][hexlen] = '\0';
    }
    if ((r = ova_template(enc, &prof, err)) < 0)
        return r;
    o->ovf_len = ova_filled_len(o->tmpl, strlen(o->tmpl));
    o->mf_len = ova_mf(o, o->hex[0], NULL, 0);
    o->ovf_data = OVA_BLOCK;
    o->mf_data = o->ovf_data + ova_pad(o->ovf_len) + OVA_BLOCK;
    o->hdr_off[0] = o->mf_data + ova_pad(o->mf_len);
    uint64_t head_len = o->hdr_off[0] + OVA_BLOCK;
    uint64_t zeros[2 * OVA_MAX_DISKS] = {0};
    if (!(head = calloc(1, head_len)) || !(filled = malloc(o->ovf_len + 1)) ||
        !(mf = malloc(o->mf_len + 1))) {
        r = vd_err(err, -ENOMEM, "ova: %s: out of memory", enc->base);
        goto out;
    }
    ova_fill(o->tmpl, zeros, VD_ARRAY_SIZE(zeros), filled);
    ova_mf(o, o->hex[0], mf, o->mf_len + 1);
    vd_export_tar_header(head, o->ovf_name, o->ovf_len, o->mtime);
    memcpy(head + o->ovf_data, filled, o->ovf_len);
    vd_export_tar_header(head + o->mf_data - OVA_BLOCK, o->mf_name, o->mf_len, o->mtime);
    memcpy(head + o->mf_data, mf, o->mf_len);
    vd_export_tar_header(head + o->hdr_off[0], o->disk_names[0], 0, o->mtime);
    /* Several disks: every member header is patched, so all is head. */
    if ((r = vd_sink_set_head(
             enc->sink, o->multi ? UINT64_MAX / 4 : head_len + VD_EXPORT_VMDK_HEAD_LEN, err)) < 0 ||
        (r = vd_sink_write(enc->sink, head, head_len, err)) < 0)
        goto out;
    r = ova_disk_start(enc, 0, err);
out:
    free(head);
    free(filled);
    free(mf);
    return r;
}

static int ova_chunk(struct vd_encoder *enc, uint64_t idx, const uint8_t *data,
                     struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    uint64_t off = idx * VD_EXPORT_CHUNK;
    int r;
    while (off >= o->bases[o->cur + 1]) {
        if (o->cur + 1 >= o->ndisks)
            return vd_err(err, -EFBIG, "ova: %s: write at %" PRIu64 " is past the last disk",
                          enc->base, off);
        if ((r = ova_disk_end(enc, o->sizes[o->cur], err)) < 0 ||
            (r = ova_disk_start(enc, o->cur + 1, err)) < 0)
            return r;
    }
    return o->vmdk->ops->chunk(o->vmdk, idx - o->bases[o->cur] / VD_EXPORT_CHUNK, data, err);
}

static int ova_digest(const char *md, const void *buf, size_t len, char *hex)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_Digest(buf, len, d, &n, strcmp(md, "sha1") == 0 ? EVP_sha1() : EVP_sha256(), NULL) != 1)
        return -EIO;
    for (unsigned i = 0; i < n; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
    return 0;
}

static int ova_finish(struct vd_encoder *enc, uint64_t size, struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    char ovf_hex[129];
    char *ovf = NULL, *mf = NULL;
    int r;
    if (o->multi && size > o->bases[o->ndisks])
        return vd_err(err, -EFBIG, "ova: %s: %" PRIu64 " bytes written, the disks hold %" PRIu64,
                      enc->base, size, o->bases[o->ndisks]);
    if ((r = ova_disk_end(enc, o->multi ? o->sizes[o->cur] : size, err)) < 0)
        return r;
    /* Disks after the last byte written are all zeros: whole members still. */
    while (o->multi && o->cur + 1 < o->ndisks)
        if ((r = ova_disk_start(enc, o->cur + 1, err)) < 0 ||
            (r = ova_disk_end(enc, o->sizes[o->cur], err)) < 0)
            return r;
    uint8_t zero[2 * OVA_BLOCK] = {0};
    if ((r = vd_sink_write(enc->sink, zero, sizeof(zero), err)) < 0)
        return r;
    uint64_t vals[2 * OVA_MAX_DISKS];
    for (size_t i = 0; i < o->ndisks; i++) {
        vals[2 * i] = o->lens[i];
        vals[2 * i + 1] = o->caps[i];
    }
    if (!(ovf = malloc(o->ovf_len + 1)) || !(mf = malloc(o->mf_len + 1))) {
        r = vd_err(err, -ENOMEM, "ova: %s: out of memory", enc->base);
        goto out;
    }
    ova_fill(o->tmpl, vals, 2 * o->ndisks, ovf);
    if (ova_digest(o->md, ovf, o->ovf_len, ovf_hex) < 0) {
        r = vd_err(err, -EIO, "ova: %s: digest failed", enc->base);
        goto out;
    }
    ova_mf(o, ovf_hex, mf, o->mf_len + 1);
    if ((r = vd_sink_patch(enc->sink, o->ovf_data, ovf, o->ovf_len, err)) < 0)
        goto out;
    r = vd_sink_patch(enc->sink, o->mf_data, mf, o->mf_len, err);
out:
    free(ovf);
    free(mf);
    return r;
}

static void ova_free(struct vd_encoder *enc)
{
    struct ova_enc *o = enc->priv;
    vd_encoder_free(o->vmdk);
    vd_sink_free(o->disk_tap);
    free(o->tmpl);
}

const struct vd_encoder_ops vd_encoder_ova = {
    .name = "ova",
    .priv_size = sizeof(struct ova_enc),
    .max_size = 64ull << 40,
    .patches_head = true,
    .begin = ova_begin,
    .chunk = ova_chunk,
    .finish = ova_finish,
    .free = ova_free,
};

int vd_convert_disks(struct vd_image *const *srcs, size_t n, const char *dest,
                     const struct vd_export_opts *o, vd_progress_cb progress, void *opaque,
                     struct vd_error *err)
{
    const size_t bufsz = 1u << 20;
    struct vd_export *e = NULL;
    struct vd_export_opts co;
    uint64_t sizes[OVA_MAX_DISKS], total = 0;
    uint8_t *buf = NULL;
    int r;
    if (n == 0 || n > OVA_MAX_DISKS)
        return vd_err(err, -EINVAL, "export: %s: %zu disks (1..%u)", dest, n, OVA_MAX_DISKS);
    if (o)
        co = *o;
    else
        vd_export_opts_init(&co);
    for (size_t i = 0; i < n; i++) {
        sizes[i] = vd_image_size(srcs[i]);
        total += div_round_up(sizes[i], VD_EXPORT_CHUNK) * VD_EXPORT_CHUNK;
    }
    co.ova_disk_sizes = sizes;
    co.ova_ndisks = n;
    if (!co.reorder_window)
        co.reorder_window = 2 * bufsz; /* in order and final, as vd_convert */
    if ((r = vd_export_begin(dest, "ova", &co, &e, err)) < 0)
        return r;
    if (!(buf = malloc(bufsz))) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto fail;
    }
    if ((r = vd_export_truncate(e, total, err)) < 0)
        goto fail;
    uint64_t done = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t base = vd_export_ova_disk_offset(&co, i);
        for (uint64_t off = 0; off < sizes[i];) {
            uint64_t want = VD_MIN((uint64_t)bufsz, sizes[i] - off), got = 0;
            r = vd_image_block_status(srcs[i], off, want, &got, err);
            if (r < 0)
                goto fail;
            if (got == 0 || got > want)
                got = want;
            if (r != VD_STATUS_ZERO) {
                r = vd_image_pread(srcs[i], buf, (size_t)got, off, err);
                if (r == 0)
                    r = vd_export_pwrite(e, buf, (size_t)got, base + off, err);
                if (r < 0)
                    goto fail;
            }
            off += got;
            done += got;
            if (progress && progress(opaque, done, total)) {
                r = vd_err(err, -ECANCELED, "export: %s: cancelled", dest);
                goto fail;
            }
        }
    }
    free(buf);
    return vd_export_finish(e, NULL, NULL, err);
fail:
    free(buf);
    vd_export_abort(e);
    return r;
}
