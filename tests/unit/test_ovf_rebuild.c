/*
 * vd_ovf_rebuild (issue 13): what an OVA export changes in a source
 * descriptor - References, the carried Disks, HostResources of dropped
 * files, VirtualSystemType - and that it keeps the rest; the refusals with
 * their exact messages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "formats/ovf.h"

static const char src[] =
    "<?xml version=\"1.0\"?>\n"
    "<!-- vendor -->\n"
    "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\""
    " xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\""
    " xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
    "CIM_ResourceAllocationSettingData\""
    " xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
    "CIM_VirtualSystemSettingData\">\n"
    "  <References>\n"
    "    <File ovf:href=\"a.vmdk\" ovf:id=\"fa\" ovf:size=\"10\"/>\n"
    "    <File ovf:href=\"b.vmdk\" ovf:id=\"fb\" ovf:size=\"20\"/>\n"
    "    <File ovf:href=\"tools.iso\" ovf:id=\"iso\" ovf:size=\"30\"/>\n"
    "  </References>\n"
    "  <DiskSection><Info>d</Info>\n"
    "    <Disk ovf:diskId=\"d1\" ovf:fileRef=\"fa\" ovf:capacity=\"1\""
    " ovf:capacityAllocationUnits=\"byte * 2^30\" ovf:populatedSize=\"5\"/>\n"
    "    <Disk ovf:diskId=\"scratch\" ovf:capacity=\"2\" ovf:capacityAllocationUnits=\"byte * "
    "2^30\"/>\n"
    "    <Disk ovf:diskId=\"d2\" ovf:fileRef=\"fb\" ovf:capacity=\"3\""
    " ovf:capacityAllocationUnits=\"byte * 2^30\"/>\n"
    "  </DiskSection>\n"
    "  <VirtualSystem ovf:id=\"vm\"><Info>v</Info><Name>appliance</Name>\n"
    "    <VirtualHardwareSection><Info>h</Info>\n"
    "      <System><vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType></System>\n"
    "      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>"
    "<rasd:VirtualQuantity>6</rasd:VirtualQuantity></Item>\n"
    "      <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource>"
    "<rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>\n"
    "      <Item><rasd:HostResource>ovf:/disk/d2</rasd:HostResource>"
    "<rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>\n"
    "      <Item><rasd:HostResource>ovf:/file/iso</rasd:HostResource>"
    "<rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType></Item>\n"
    "    </VirtualHardwareSection>\n"
    "  </VirtualSystem>\n"
    "</Envelope>\n";

/* Replace each "#VDnnn#" by 100 + nnn, so vd_ovf_parse can read it back. */
static char *fill(const char *t)
{
    char *out = malloc(strlen(t) + 1), *o = out;
    for (const char *p = t; *p;) {
        if (!strncmp(p, "#VD", 3)) {
            o += sprintf(o, "%d", 100 + atoi(p + 3));
            p += 7;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static void test_one_of_two(void)
{
    struct vd_error err = {0};
    size_t src_disk[] = {1};
    const char *hrefs[] = {"out-disk1.vmdk"};
    struct vd_ovf_rebuild_opts ro = {1, src_disk, hrefs, 0, 0, "vmware"};
    char *out = NULL;
    size_t len = 0;
    int r = vd_ovf_rebuild(src, sizeof(src) - 1, "v.ovf", &ro, &out, &len, &err);
    CHECK(r == 0, "rebuild: %d %s", r, err.msg);
    if (r)
        return;
    CHECK(strlen(out) == len, "length");
    CHECK(strstr(out, "<!-- vendor -->"), "comment kept");
    CHECK(strstr(out, "ovf:href=\"out-disk1.vmdk\" ovf:id=\"fb\" ovf:size=\"#VD000#\""),
          "one File, id kept: %s", out);
    CHECK(!strstr(out, "a.vmdk") && !strstr(out, "tools.iso"), "other files dropped");
    CHECK(!strstr(out, "ovf:/disk/d1") && !strstr(out, "\"d1\""), "disk d1 and its Item gone");
    CHECK(!strstr(out, "ovf:/file/iso"), "ISO HostResource gone");
    CHECK(strstr(out, "<rasd:InstanceID>4</rasd:InstanceID>"), "the CD Item stays");
    CHECK(strstr(out, "ovf:diskId=\"d2\" ovf:fileRef=\"fb\" ovf:capacity=\"#VD001#\""
                      " ovf:capacityAllocationUnits=\"byte\""),
          "d2 capacity token in bytes: %s", out);
    CHECK(strstr(out, "ovf:format=\"" VD_OVF_STREAM_VMDK "\""), "format");
    CHECK(!strstr(out, "populatedSize"), "populatedSize dropped");
    CHECK(strstr(out, "diskId=\"scratch\""), "a Disk without file stays");
    CHECK(strstr(out, "vmx-19"), "hardware version kept");
    char *f = fill(out);
    struct vd_ovf *o = NULL;
    r = vd_ovf_parse(f, strlen(f), "v.ovf", &o, &err);
    CHECK(r == 0, "parse back: %s", err.msg);
    if (r == 0) {
        CHECK(o->nfiles == 1 && o->files[0].size == 100, "File size filled");
        CHECK(o->ndisks == 2 && o->disks[1].capacity == 101, "capacity filled");
        CHECK(o->has_cpus && o->cpus == 6, "CPUs kept");
        CHECK(!strcmp(o->name, "appliance"), "name kept");
    }
    vd_ovf_free(o);
    free(f);
    free(out);
}

static void test_hw(void)
{
    struct vd_error err = {0};
    size_t src_disk[] = {0, 1};
    const char *hrefs[] = {"x-disk1.vmdk", "x-disk2.vmdk"};
    struct vd_ovf_rebuild_opts ro = {2, src_disk, hrefs, 0, 14, "esxi-6.7"};
    char *out = NULL;
    size_t len;
    int r = vd_ovf_rebuild(src, sizeof(src) - 1, "v.ovf", &ro, &out, &len, &err);
    CHECK(r == -EINVAL && !out, "ceiling: %d", r);
    CHECK_MSG(err, "ova: v.ovf: the VM needs virtual hardware vmx-19 (VirtualSystemType 'vmx-19'), "
                   "but target esxi-6.7 accepts vmx-14 at most; pass vm_hw_version=14 to lower "
                   "it, or a newer target");
    ro.hw_version = 14;
    memset(&err, 0, sizeof(err));
    r = vd_ovf_rebuild(src, sizeof(src) - 1, "v.ovf", &ro, &out, &len, &err);
    CHECK(r == 0 && strstr(out, "<vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>"),
          "lowered: %d %s", r, err.msg);
    CHECK(r == 0 && strstr(out, "#VD002#") && strstr(out, "#VD003#"), "two disks' tokens");
    free(out);
    out = NULL;
    size_t bad[] = {2};
    struct vd_ovf_rebuild_opts ro2 = {1, bad, hrefs, 0, 0, "vmware"};
    memset(&err, 0, sizeof(err));
    r = vd_ovf_rebuild(src, sizeof(src) - 1, "v.ovf", &ro2, &out, &len, &err);
    CHECK(r == -EINVAL, "no disk 3: %d", r);
    CHECK_MSG(err, "ovf: v.ovf: the descriptor describes 2 disk(s) with a file, not a disk 3");
    free(out);
}

int main(void)
{
    test_one_of_two();
    test_hw();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
