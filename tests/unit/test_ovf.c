/* OVF descriptor parsing: the COT samples (OVF 1.x ovf:-prefixed with
 * deployment options, VirtualBox OVF 2.0 default namespace, VMware), the
 * forklift OVA's descriptor, OVF 0.9 sections, allocation units, and broken
 * descriptors with their exact messages. Expected values were read off the
 * XML by hand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ovf.h"
#include "check.h"

#define STREQ(a, b) ((a) && !strcmp((a), (b)))

/* Run a shell command and return its stdout (NUL-terminated). */
static char *run(const char *cmd, size_t *len)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            cap *= 2;
            b = realloc(b, cap);
        }
    }
    if (pclose(f) != 0 || !b) {
        free(b);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

static char *sample(const char *rel, size_t *len)
{
    const char *dir = getenv("VD_TEST_DATA");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "xz -dc '%s/samples/%s'", dir ? dir : "tests/data", rel);
    return run(cmd, len);
}

static struct vd_ovf *parse_sample(const char *rel)
{
    size_t len;
    struct vd_error err = {0};
    struct vd_ovf *o = NULL;
    char *text = sample(rel, &len);
    CHECK(text, "cannot read %s", rel);
    if (!text)
        return NULL;
    CHECK(vd_ovf_parse(text, len, rel, &o, &err) == 0, "%s: %s", rel, err.msg);
    free(text);
    return o;
}

static void test_cot_input(void)
{
    struct vd_ovf *o = parse_sample("cot/input.ovf.xz");
    if (!o)
        return;
    CHECK(STREQ(o->version, "1.x"), "version %s", o->version);
    CHECK(o->nfiles == 3, "files %zu", o->nfiles);
    if (o->nfiles == 3) {
        CHECK(STREQ(o->files[0].id, "file1") && STREQ(o->files[0].href, "input.vmdk") &&
                  o->files[0].has_size && o->files[0].size == 152576,
              "file1");
        CHECK(STREQ(o->files[2].id, "textfile") && o->files[2].size == 78, "textfile");
    }
    CHECK(o->ndisks == 1, "disks %zu", o->ndisks);
    if (o->ndisks == 1) {
        CHECK(STREQ(o->disks[0].disk_id, "vmdisk1") && STREQ(o->disks[0].file_ref, "file1"),
              "disk ids");
        CHECK(o->disks[0].capacity == 1ull << 30, "capacity %llu",
              (unsigned long long)o->disks[0].capacity);
        CHECK(STREQ(o->disks[0].format,
                    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"),
              "format");
    }
    CHECK(o->nnetworks == 1 && STREQ(o->networks[0], "VM Network"), "networks");
    CHECK(STREQ(o->name, "test"), "name %s", o->name);
    CHECK(STREQ(o->os, "DEVELOPMENT IMAGE"), "os %s", o->os);
    CHECK(o->has_os_id && o->os_id == 100, "os id");
    CHECK(STREQ(o->os_type, "other26xLinux64Guest"), "os type %s", o->os_type);
    /* default deployment option 4CPU-4GB-3NIC */
    CHECK(o->has_cpus && o->cpus == 4, "cpus %llu", (unsigned long long)o->cpus);
    CHECK(o->has_memory && o->memory_bytes == 4096ull << 20, "memory %llu",
          (unsigned long long)o->memory_bytes);
    CHECK(vd_ovf_find_file(o, "file2") == &o->files[1], "find file2");
    CHECK(vd_ovf_find_file(o, "nope") == NULL, "find nope");
    vd_ovf_free(o);
}

static void test_vbox_20(void)
{
    struct vd_ovf *o = parse_sample("cot/ubuntu.2.0.ovf.xz");
    if (!o)
        return;
    CHECK(STREQ(o->version, "2.0"), "version %s", o->version);
    CHECK(o->nfiles == 1 && STREQ(o->files[0].href, "ubuntu.2.0-disk1.vmdk") &&
              !o->files[0].has_size,
          "file");
    CHECK(o->ndisks == 1 && o->disks[0].capacity == 8589934592ull, "disk");
    CHECK(o->nnetworks == 1 && STREQ(o->networks[0], "NAT"), "networks");
    CHECK(STREQ(o->name, "ubuntu"), "name from ovf:id: %s", o->name);
    CHECK(STREQ(o->os, "Ubuntu_64") && o->os_id == 94, "os");
    CHECK(STREQ(o->os_type, "Ubuntu_64"), "vbox:OSType %s", o->os_type);
    CHECK(o->cpus == 1, "cpus");
    CHECK(o->memory_bytes == 512ull << 20, "MegaBytes memory %llu",
          (unsigned long long)o->memory_bytes);
    vd_ovf_free(o);
}

static void test_vmware(void)
{
    struct vd_ovf *o = parse_sample("cot/vmware.ovf.xz");
    if (!o)
        return;
    CHECK(STREQ(o->name, "vmw") && STREQ(o->os, "Red Hat Enterprise Linux 6 (64-bit)") &&
              o->os_id == 80 && STREQ(o->os_type, "rhel6_64Guest"),
          "system");
    CHECK(o->cpus == 2 && o->memory_bytes == 1536ull << 20, "hardware");
    CHECK(o->nnetworks == 1 && STREQ(o->networks[0], "lanethernet0"), "networks");
    CHECK(o->ndisks == 1 && o->disks[0].capacity == 1ull << 30, "disk");
    vd_ovf_free(o);
}

static void test_forklift(void)
{
    size_t len;
    char *text = NULL;
    const char *dir = getenv("VD_TEST_DATA");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "xz -dc '%s/samples/forklift-console-plugin/2nd_disk.ova.xz' | tar xOf - "
             "2nd_disk_v2.ovf",
             dir ? dir : "tests/data");
    text = run(cmd, &len);
    CHECK(text, "cannot extract the forklift descriptor");
    if (!text)
        return;
    struct vd_ovf *o = NULL;
    struct vd_error err = {0};
    CHECK(vd_ovf_parse(text, len, "2nd_disk_v2.ovf", &o, &err) == 0, "%s", err.msg);
    free(text);
    if (!o)
        return;
    CHECK(STREQ(o->name, "2nd-disk-vm") && o->os_id == 80 && o->cpus == 1 &&
              o->memory_bytes == 2048ull << 20 && o->nnetworks == 0,
          "forklift summary");
    CHECK(o->ndisks == 1 &&
              STREQ(o->disks[0].format, "http://www.vmware.com/interfaces/specifications/"
                                        "vmdk.html#monolithicSparse"),
          "forklift disk");
    vd_ovf_free(o);
}

static int parse_str(const char *xml, struct vd_ovf **o, struct vd_error *err)
{
    vd_err_clear(err);
    *o = NULL;
    return vd_ovf_parse(xml, strlen(xml), "t.ovf", o, err);
}

#define ENV1                                                                                       \
    "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "                                  \
    "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\">"

static void test_synthetic(void)
{
    struct vd_ovf *o;
    struct vd_error err;

    /* OVF 0.9 sections, unprefixed attributes, two disks in order, no-fileRef disk */
    const char *v09 = "<Envelope xmlns=\"http://www.vmware.com/schema/ovf/1/envelope\" "
                      "xmlns:ovf=\"http://www.vmware.com/schema/ovf/1/envelope\" "
                      "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                      "<References><File ovf:id=\"f1\" ovf:href=\"a.vmdk\"/><File id=\"f2\" "
                      "href=\"b.vmdk\" size=\"10\"/></References>"
                      "<Section xsi:type=\"ovf:DiskSection_Type\">"
                      "<Disk ovf:diskId=\"d2\" ovf:fileRef=\"f2\" ovf:capacity=\"2\" "
                      "ovf:capacityAllocationUnits=\"byte * 2^20\"/>"
                      "<Disk ovf:diskId=\"d1\" ovf:fileRef=\"f1\" ovf:capacity=\"1024\"/>"
                      "<Disk ovf:diskId=\"blank\" ovf:capacity=\"4096\"/>"
                      "</Section>"
                      "<Section xsi:type=\"ovf:NetworkSection_Type\"><Network ovf:name=\"n1\"/>"
                      "<Network ovf:name=\"n2\"/></Section>"
                      "<VirtualSystemCollection><VirtualSystem ovf:id=\"inner\">"
                      "<Section xsi:type=\"ovf:VirtualHardwareSection_Type\"><Item>"
                      "<rasd:ResourceType xmlns:rasd=\"urn:x\">4</rasd:ResourceType>"
                      "<rasd:VirtualQuantity xmlns:rasd=\"urn:x\">3</rasd:VirtualQuantity>"
                      "<rasd:AllocationUnits xmlns:rasd=\"urn:x\">GigaBytes</rasd:AllocationUnits>"
                      "</Item></Section></VirtualSystem></VirtualSystemCollection></Envelope>";
    CHECK(parse_str(v09, &o, &err) == 0, "ovf 0.9: %s", err.msg);
    if (o) {
        CHECK(o->ndisks == 3 && STREQ(o->disks[0].disk_id, "d2") &&
                  o->disks[0].capacity == 2ull << 20 && o->disks[1].capacity == 1024 &&
                  o->disks[2].file_ref == NULL,
              "0.9 disks");
        CHECK(o->files[1].has_size && o->files[1].size == 10 && STREQ(o->files[1].href, "b.vmdk"),
              "unprefixed attributes");
        CHECK(o->nnetworks == 2 && STREQ(o->networks[1], "n2"), "0.9 networks");
        CHECK(STREQ(o->name, "inner") && !o->has_cpus && o->memory_bytes == 3ull << 30,
              "collection system");
        CHECK(o->version == NULL, "no version");
        vd_ovf_free(o);
    }

    /* compression / chunkSize are parsed (ova.c refuses them) */
    CHECK(parse_str(ENV1 "<References><File ovf:id=\"f\" ovf:href=\"a.gz\" "
                         "ovf:compression=\"gzip\" ovf:chunkSize=\"1000\"/>"
                         "<File ovf:id=\"g\" ovf:href=\"b\" ovf:compression=\"identity\"/>"
                         "</References></Envelope>",
                    &o, &err) == 0,
          "compression: %s", err.msg);
    if (o) {
        CHECK(STREQ(o->files[0].compression, "gzip") && o->files[0].has_chunk_size &&
                  o->files[0].chunk_size == 1000 && o->files[1].compression == NULL,
              "compression fields");
        vd_ovf_free(o);
    }

    static const struct {
        const char *xml, *msg;
    } bad[] = {
        {"this is not xml",
         "ovf: t.ovf: not well-formed XML: line 1: Start tag expected, '<' not found"},
        {"<Envelope><References>", "ovf: t.ovf: not well-formed XML: line 1: "
                                   "Premature end of data in tag References line 1"},
        {"<vApp/>", "ovf: t.ovf: not an OVF descriptor (root element is <vApp>, not <Envelope>)"},
        {"<!DOCTYPE Envelope [<!ENTITY a \"aaaa\">]><Envelope>&a;</Envelope>",
         "ovf: t.ovf: a DOCTYPE is not allowed in an OVF descriptor"},
        {"<!DOCTYPE Envelope SYSTEM \"http://example.com/x.dtd\"><Envelope/>",
         "ovf: t.ovf: a DOCTYPE is not allowed in an OVF descriptor"},
        {ENV1 "<References><File ovf:id=\"f\" ovf:href=\"a\"/></References><DiskSection>"
              "<Disk ovf:diskId=\"d\" ovf:fileRef=\"g\" ovf:capacity=\"1\"/></DiskSection>"
              "</Envelope>",
         "ovf: t.ovf: Disk d: ovf:fileRef 'g' names no File in References"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"abc\"/></DiskSection>"
              "</Envelope>",
         "ovf: t.ovf: Disk d: ovf:capacity 'abc' is not a number"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"${disk.size}\"/>"
              "</DiskSection></Envelope>",
         "ovf: t.ovf: Disk d: ovf:capacity '${disk.size}' is not a number"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"-1\"/></DiskSection>"
              "</Envelope>",
         "ovf: t.ovf: Disk d: ovf:capacity '-1' is not a number"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"99999999999999999999\"/>"
              "</DiskSection></Envelope>",
         "ovf: t.ovf: Disk d: ovf:capacity '99999999999999999999' is not a number"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"2\" "
              "ovf:capacityAllocationUnits=\"byte * 2^60\"/></DiskSection></Envelope>",
         "ovf: t.ovf: Disk d: capacity 2 x byte * 2^60 is absurd (more than 1 EiB)"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"20000\" "
              "ovf:capacityAllocationUnits=\"byte * 2^50\"/></DiskSection></Envelope>",
         "ovf: t.ovf: Disk d: capacity 20000 x byte * 2^50 is absurd (more than 1 EiB)"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"2\" "
              "ovf:capacityAllocationUnits=\"furlongs\"/></DiskSection></Envelope>",
         "ovf: t.ovf: Disk d: unknown ovf:capacityAllocationUnits 'furlongs'"},
        {ENV1 "<DiskSection><Disk ovf:capacity=\"2\"/></DiskSection></Envelope>",
         "ovf: t.ovf: DiskSection/Disk #1 has no ovf:diskId"},
        {ENV1 "<DiskSection><Disk ovf:diskId=\"d\"/></DiskSection></Envelope>",
         "ovf: t.ovf: Disk d has no ovf:capacity"},
        {ENV1 "<References><File ovf:id=\"f\"/></References></Envelope>",
         "ovf: t.ovf: References/File #1 has no ovf:href"},
        {ENV1 "<References><File ovf:href=\"x\"/></References></Envelope>",
         "ovf: t.ovf: References/File #1 has no ovf:id"},
        {ENV1 "<References><File ovf:id=\"f\" ovf:href=\"x\" ovf:size=\"1k\"/></References>"
              "</Envelope>",
         "ovf: t.ovf: File f: ovf:size '1k' is not a number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse_str(bad[i].xml, &o, &err);
        CHECK(r == -EINVAL && !o, "bad %zu accepted", i);
        CHECK(!strcmp(err.msg, bad[i].msg), "bad %zu\n  got:  %s\n  want: %s", i, err.msg,
              bad[i].msg);
        vd_ovf_free(o);
    }
}

static void test_units(void)
{
    static const struct {
        const char *u;
        uint64_t m;
    } ok[] = {
        {NULL, 1},
        {"", 1},
        {"byte", 1},
        {"bytes", 1},
        {"byte * 2^30", 1ull << 30},
        {"byte*2^20", 1ull << 20},
        {"byte * 1024", 1024},
        {"byte * 10^6", 1000000},
        {"byte * 2^10 * 1000", 1024000},
        {"MegaBytes", 1ull << 20},
        {"KiloBytes", 1024},
        {"GB", 1ull << 30},
        {" byte * 2^40 ", 1ull << 40},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t m = 0;
        CHECK(vd_ovf_units(ok[i].u, &m) == 0 && m == ok[i].m, "units '%s' -> %llu", ok[i].u,
              (unsigned long long)m);
    }
    static const char *const bad[] = {"byte * 2^64", "byte * 2^",  "byte *",       "hertz * 10^6",
                                      "byte / 2",    "MegaBytesX", "byte * 10^20", "byte 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t m;
        CHECK(vd_ovf_units(bad[i], &m) < 0, "units '%s' accepted", bad[i]);
    }
}

int main(void)
{
    test_cot_input();
    test_vbox_20();
    test_vmware();
    test_forklift();
    test_synthetic();
    test_units();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
