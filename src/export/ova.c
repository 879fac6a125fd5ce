/*
 * OVA encoder: a ustar archive holding an OVF 1.x descriptor, its manifest
 * and one streamOptimized VMDK, in the order OVF 1.x (DSP0243 1.1, 5.3)
 * requires: descriptor first, manifest second, then the disk.
 *
 *   [ustar hdr][NAME.ovf, fixed length, padded to 512]
 *   [ustar hdr][NAME.mf: "SHA256(NAME.ovf)= hex" and the disk's line]
 *   [ustar hdr, size patched][NAME-disk1.vmdk: the VMDK encoder's output]
 *   [two zero blocks]
 *
 * Everything up to and including the VMDK's own head is this encoder's
 * patchable head: the descriptor's ovf:capacity and File ovf:size, the
 * manifest and the disk member's size are only known at the end. The OVF
 * text is generated with room for 20-digit numbers and padded with spaces
 * inside the <Disk> element, so its length never changes. The disk digest
 * is computed while streaming (re-read from a local file if the VMDK head
 * had to be patched). Member sizes over 8 GiB use GNU base-256.
 * Unsupported: several disks, certificates, S3 destinations when the size
 * is only known at the end (the manifest needs the patched head re-read).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "common/checked.h"
#include "export/encoder.h"

#define OVA_BLOCK    512u
#define OVA_NAME_MAX 80u

struct ova_enc {
    char stem[OVA_NAME_MAX + 1];
    char ovf_name[OVA_NAME_MAX + 8], mf_name[OVA_NAME_MAX + 8], disk_name[OVA_NAME_MAX + 16];
    size_t ovf_len, mf_len;                          /* member lengths (fixed) */
    uint64_t ovf_data, mf_data, disk_hdr, disk_data; /* offsets in the output */
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

/* The OVF descriptor; pad spaces keep its length fixed. Returns length. */
static int ova_ovf(const struct ova_enc *o, uint64_t capacity, uint64_t file_size, int pad,
                   char *out, size_t cap)
{
    return snprintf(out, cap,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\""
                    " xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\""
                    " xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
                    "CIM_ResourceAllocationSettingData\""
                    " xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
                    "CIM_VirtualSystemSettingData\""
                    " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
                    "  <References>\n"
                    "    <File ovf:href=\"%s\" ovf:id=\"file1\" ovf:size=\"%" PRIu64 "\"/>\n"
                    "  </References>\n"
                    "  <DiskSection>\n"
                    "    <Info>Virtual disk information</Info>\n"
                    "    <Disk ovf:capacity=\"%" PRIu64 "\" ovf:capacityAllocationUnits=\"byte\""
                    " ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\""
                    " ovf:format=\"http://www.vmware.com/interfaces/specifications/"
                    "vmdk.html#streamOptimized\"%*s/>\n"
                    "  </DiskSection>\n"
                    "  <NetworkSection>\n"
                    "    <Info>The list of logical networks</Info>\n"
                    "    <Network ovf:name=\"VM Network\">\n"
                    "      <Description>The VM Network network</Description>\n"
                    "    </Network>\n"
                    "  </NetworkSection>\n"
                    "  <VirtualSystem ovf:id=\"%s\">\n"
                    "    <Info>A virtual machine</Info>\n"
                    "    <Name>%s</Name>\n"
                    "    <OperatingSystemSection ovf:id=\"1\">\n"
                    "      <Info>The kind of installed guest operating system</Info>\n"
                    "    </OperatingSystemSection>\n"
                    "    <VirtualHardwareSection>\n"
                    "      <Info>Virtual hardware requirements</Info>\n"
                    "      <System>\n"
                    "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
                    "        <vssd:InstanceID>0</vssd:InstanceID>\n"
                    "        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>\n"
                    "        <vssd:VirtualSystemType>vmx-07</vssd:VirtualSystemType>\n"
                    "      </System>\n"
                    "      <Item>\n"
                    "        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
                    "        <rasd:Description>Number of Virtual CPUs</rasd:Description>\n"
                    "        <rasd:ElementName>1 virtual CPU(s)</rasd:ElementName>\n"
                    "        <rasd:InstanceID>1</rasd:InstanceID>\n"
                    "        <rasd:ResourceType>3</rasd:ResourceType>\n"
                    "        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>\n"
                    "      </Item>\n"
                    "      <Item>\n"
                    "        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
                    "        <rasd:Description>Memory Size</rasd:Description>\n"
                    "        <rasd:ElementName>1024MB of memory</rasd:ElementName>\n"
                    "        <rasd:InstanceID>2</rasd:InstanceID>\n"
                    "        <rasd:ResourceType>4</rasd:ResourceType>\n"
                    "        <rasd:VirtualQuantity>1024</rasd:VirtualQuantity>\n"
                    "      </Item>\n"
                    "      <Item>\n"
                    "        <rasd:Address>0</rasd:Address>\n"
                    "        <rasd:Description>SCSI Controller</rasd:Description>\n"
                    "        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>\n"
                    "        <rasd:InstanceID>3</rasd:InstanceID>\n"
                    "        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n"
                    "        <rasd:ResourceType>6</rasd:ResourceType>\n"
                    "      </Item>\n"
                    "      <Item>\n"
                    "        <rasd:AddressOnParent>0</rasd:AddressOnParent>\n"
                    "        <rasd:ElementName>Hard Disk 1</rasd:ElementName>\n"
                    "        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>\n"
                    "        <rasd:InstanceID>4</rasd:InstanceID>\n"
                    "        <rasd:Parent>3</rasd:Parent>\n"
                    "        <rasd:ResourceType>17</rasd:ResourceType>\n"
                    "      </Item>\n"
                    "      <Item>\n"
                    "        <rasd:AddressOnParent>7</rasd:AddressOnParent>\n"
                    "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
                    "        <rasd:Connection>VM Network</rasd:Connection>\n"
                    "        <rasd:Description>E1000 ethernet adapter on &quot;VM "
                    "Network&quot;</rasd:Description>\n"
                    "        <rasd:ElementName>Network adapter 1</rasd:ElementName>\n"
                    "        <rasd:InstanceID>5</rasd:InstanceID>\n"
                    "        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>\n"
                    "        <rasd:ResourceType>10</rasd:ResourceType>\n"
                    "      </Item>\n"
                    "    </VirtualHardwareSection>\n"
                    "  </VirtualSystem>\n"
                    "</Envelope>\n",
                    o->disk_name, file_size, capacity, pad, "", o->stem, o->stem, o->stem);
}

static int ova_mf(const struct ova_enc *o, const char *algo, const char *ovf_hex,
                  const char *disk_hex, char *out, size_t cap)
{
    return snprintf(out, cap, "%s(%s)= %s\n%s(%s)= %s\n", algo, o->ovf_name, ovf_hex, algo,
                    o->disk_name, disk_hex);
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
    snprintf(o->disk_name, sizeof(o->disk_name), "%s-disk1.vmdk", o->stem);
}

static int ova_begin(struct vd_encoder *enc, struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    const char *algo = strcmp(enc->opts->ova_manifest, "sha1") == 0 ? "SHA1" : "SHA256";
    size_t hexlen = algo[3] == '1' ? 40 : 64;
    char zeros[65];
    uint8_t *head = NULL;
    int r;
    ova_names(o, enc->base);
    time_t now = time(NULL);
    o->mtime = now > 0 ? (uint32_t)now : 0;
    memset(zeros, '0', hexlen);
    zeros[hexlen] = '\0';
    int n = ova_ovf(o, UINT64_MAX, UINT64_MAX, 0, NULL, 0);
    int m = ova_mf(o, algo, zeros, zeros, NULL, 0);
    if (n < 0 || m < 0)
        return vd_err(err, -EINVAL, "ova: %s: cannot format the descriptor", enc->base);
    o->ovf_len = (size_t)n;
    o->mf_len = (size_t)m;
    o->ovf_data = OVA_BLOCK;
    o->mf_data = o->ovf_data + ova_pad(o->ovf_len) + OVA_BLOCK;
    o->disk_hdr = o->mf_data + ova_pad(o->mf_len);
    o->disk_data = o->disk_hdr + OVA_BLOCK;
    if (!(head = calloc(1, o->disk_data + 1))) {
        r = vd_err(err, -ENOMEM, "ova: %s: out of memory", enc->base);
        goto out;
    }
    vd_export_tar_header(head, o->ovf_name, o->ovf_len, o->mtime);
    ova_ovf(o, 0, 0, n - ova_ovf(o, 0, 0, 0, NULL, 0), (char *)head + o->ovf_data, o->ovf_len + 1);
    vd_export_tar_header(head + o->mf_data - OVA_BLOCK, o->mf_name, o->mf_len, o->mtime);
    ova_mf(o, algo, zeros, zeros, (char *)head + o->mf_data, o->mf_len + 1);
    vd_export_tar_header(head + o->disk_hdr, o->disk_name, 0, o->mtime);
    if ((r = vd_sink_set_head(enc->sink, o->disk_data + VD_EXPORT_VMDK_HEAD_LEN, err)) < 0 ||
        (r = vd_sink_write(enc->sink, head, o->disk_data, err)) < 0)
        goto out;
    if ((r = vd_sink_tap_open(enc->sink, o->disk_data, enc->opts->ova_manifest, &o->disk_tap,
                              err)) < 0 ||
        (r = vd_encoder_new(&vd_encoder_vmdk, o->disk_tap, enc->opts, o->disk_name, &o->vmdk,
                            err)) < 0)
        goto out;
    o->vmdk->size = enc->size;
    o->vmdk->size_final = enc->size_final;
    r = o->vmdk->ops->begin(o->vmdk, err);
out:
    free(head);
    return r;
}

static int ova_chunk(struct vd_encoder *enc, uint64_t idx, const uint8_t *data,
                     struct vd_error *err)
{
    struct ova_enc *o = enc->priv;
    return o->vmdk->ops->chunk(o->vmdk, idx, data, err);
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
    const char *algo = strcmp(enc->opts->ova_manifest, "sha1") == 0 ? "SHA1" : "SHA256";
    char disk_hex[129], ovf_hex[129];
    char *ovf = NULL, *mf = NULL;
    int r = o->vmdk->ops->finish(o->vmdk, size, err);
    if (r < 0)
        return r;
    uint64_t disk_len = o->disk_tap->pos;
    uint8_t zero[2 * OVA_BLOCK] = {0};
    if ((r = vd_sink_write(enc->sink, zero, (size_t)(ova_pad(disk_len) - disk_len), err)) < 0 ||
        (r = vd_sink_write(enc->sink, zero, sizeof(zero), err)) < 0)
        return r;
    if ((r = vd_sink_tap_digest(o->disk_tap, disk_hex, err)) < 0) {
        if (r == -ENOTSUP)
            vd_err(err, r,
                   "ova: %s: the manifest needs the disk re-read, which %s cannot do; "
                   "use vdisk convert so the size is known up front",
                   enc->base, enc->sink->name);
        return r;
    }
    uint64_t capacity = div_round_up(size, 512) * 512; /* = the VMDK header capacity */
    int pad = (int)o->ovf_len - ova_ovf(o, capacity, disk_len, 0, NULL, 0);
    if (!(ovf = malloc(o->ovf_len + 1)) || !(mf = malloc(o->mf_len + 1))) {
        r = vd_err(err, -ENOMEM, "ova: %s: out of memory", enc->base);
        goto out;
    }
    ova_ovf(o, capacity, disk_len, pad, ovf, o->ovf_len + 1);
    if (ova_digest(enc->opts->ova_manifest, ovf, o->ovf_len, ovf_hex) < 0) {
        r = vd_err(err, -EIO, "ova: %s: digest failed", enc->base);
        goto out;
    }
    ova_mf(o, algo, ovf_hex, disk_hex, mf, o->mf_len + 1);
    uint8_t hdr[OVA_BLOCK];
    vd_export_tar_header(hdr, o->disk_name, disk_len, o->mtime);
    if ((r = vd_sink_patch(enc->sink, o->ovf_data, ovf, o->ovf_len, err)) < 0 ||
        (r = vd_sink_patch(enc->sink, o->mf_data, mf, o->mf_len, err)) < 0)
        goto out;
    r = vd_sink_patch(enc->sink, o->disk_hdr, hdr, sizeof(hdr), err);
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
