/* OVA container: archives built in memory (test_tar_build.h) around
 * synthetic OVFs with raw disks, and around the COT samples whose upstream
 * manifests are the independent oracle for the digest checks. Covers disk
 * order and windows, href resolution, the info JSON, manifest and file-ref
 * checks with their exact lines, refusals with their exact messages, and
 * the path through vd_source_open on a real file. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "formats/ova.h"
#include "io/mem.h"
#include "test_tar_build.h"
#include "check.h"

static void sha256_hex(const void *d, size_t n, char *out)
{
    unsigned char dig[32];
    unsigned int l;
    EVP_Digest(d, n, dig, &l, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", dig[i]);
}

/* ---- check callback collecting lines ---- */
struct lines {
    char buf[8192];
    int n;
};

static void collect(void *opaque, bool corrupt, const char *msg)
{
    struct lines *l = opaque;
    size_t len = strlen(l->buf);
    snprintf(l->buf + len, sizeof(l->buf) - len, "%s%s\n", corrupt ? "" : "(info) ", msg);
    l->n++;
}

static int open_tb(const struct tb *t, struct vd_io **io, struct vd_ova **ova, struct vd_error *err)
{
    vd_err_clear(err);
    *ova = NULL;
    if (vd_io_mem_open(t->buf, t->len, "t.ova", io, err) < 0)
        return -ENOMEM;
    int r = vd_ova_open(*io, ova, err);
    vd_io_unref(*io); /* the ova holds its own reference */
    return r;
}

#define OVF_HEAD                                                                                   \
    "<?xml version=\"1.0\"?>\n"                                                                    \
    "<Envelope ovf:version=\"1.0\" xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "              \
    "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "                                        \
    "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"                              \
    "CIM_ResourceAllocationSettingData\">\n"

static const char ovf2[] =
    OVF_HEAD "<References>\n"
             "  <File ovf:id=\"f1\" ovf:href=\"disk1.raw\" ovf:size=\"2048\"/>\n"
             "  <File ovf:id=\"f2\" ovf:href=\"disk2.raw\" ovf:size=\"1024\"/>\n"
             "</References>\n"
             "<DiskSection><Info>d</Info>\n"
             "  <Disk ovf:diskId=\"second\" ovf:fileRef=\"f2\" ovf:capacity=\"1024\" "
             "ovf:format=\"raw\"/>\n"
             "  <Disk ovf:diskId=\"first\" ovf:fileRef=\"f1\" ovf:capacity=\"2\" "
             "ovf:capacityAllocationUnits=\"byte * 2^10\"/>\n"
             "</DiskSection>\n"
             "<NetworkSection><Network ovf:name=\"lan\"/><Network ovf:name=\"dmz\"/>"
             "</NetworkSection>\n"
             "<VirtualSystem ovf:id=\"vm1\"><Name>web \"01\"</Name>\n"
             "  <OperatingSystemSection ovf:id=\"101\"><Description>Debian</Description>"
             "</OperatingSystemSection>\n"
             "  <VirtualHardwareSection>\n"
             "    <Item><rasd:ResourceType>3</rasd:ResourceType>"
             "<rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>\n"
             "    <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>"
             "<rasd:ResourceType>4</rasd:ResourceType>"
             "<rasd:VirtualQuantity>768</rasd:VirtualQuantity></Item>\n"
             "  </VirtualHardwareSection>\n"
             "</VirtualSystem></Envelope>\n";

static uint8_t disk1[2048], disk2[1024];

/* vm.ovf, vm.mf (optional, with extra lines), disk1.raw, disk2.raw */
static void build(struct tb *t, const char *ovf, bool manifest, const char *extra_mf)
{
    memset(t, 0, sizeof(*t));
    tb_file_str(t, "vm.ovf", ovf);
    if (manifest) {
        char mf[2048], h[65];
        size_t n = 0;
        sha256_hex(ovf, strlen(ovf), h);
        n += (size_t)snprintf(mf + n, sizeof(mf) - n, "SHA256(vm.ovf)= %s\n", h);
        sha256_hex(disk1, sizeof(disk1), h);
        n += (size_t)snprintf(mf + n, sizeof(mf) - n, "SHA256(disk1.raw)= %s\n", h);
        sha256_hex(disk2, sizeof(disk2), h);
        n += (size_t)snprintf(mf + n, sizeof(mf) - n, "SHA256(disk2.raw)= %s\n", h);
        if (extra_mf)
            snprintf(mf + n, sizeof(mf) - n, "%s", extra_mf);
        tb_file_str(t, "vm.mf", mf);
    }
    tb_file(t, "disk1.raw", disk1, sizeof(disk1), TB_USTAR);
    tb_file(t, "disk2.raw", disk2, sizeof(disk2), TB_USTAR);
    tb_end(t);
}

static void test_basic(void)
{
    struct tb t;
    struct vd_io *io;
    struct vd_ova *ova;
    struct vd_error err;
    build(&t, ovf2, true, NULL);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "open: %s", err.msg);
    if (!ova)
        return;
    CHECK(!strcmp(ova->ovf_name, "vm.ovf") && ova->ovf_len == strlen(ovf2) &&
              !strcmp(ova->ovf_text, ovf2),
          "descriptor");
    CHECK(ova->ndisks == 2, "ndisks %zu", ova->ndisks);
    if (ova->ndisks == 2) {
        /* DiskSection order: "second" (disk2.raw) first */
        CHECK(!strcmp(ova->disks[0].disk_id, "second") &&
                  !strcmp(ova->disks[0].member, "disk2.raw") && ova->disks[0].size == 1024 &&
                  !memcmp(t.buf + ova->disks[0].offset, disk2, 1024) &&
                  ova->disks[0].capacity == 1024 && !strcmp(ova->disks[0].format, "raw"),
              "disk 0");
        CHECK(!strcmp(ova->disks[1].member, "disk1.raw") && ova->disks[1].size == 2048 &&
                  !memcmp(t.buf + ova->disks[1].offset, disk1, 2048) &&
                  ova->disks[1].capacity == 2048 && ova->disks[1].format == NULL,
              "disk 1");
    }

    struct vd_json j;
    vd_json_init(&j);
    vd_json_obj_begin(&j, NULL);
    vd_ova_info(ova, &j);
    vd_json_obj_end(&j);
    char *s = vd_json_finish(&j);
    const char *want = "{\n"
                       "  \"ovf\": {\n"
                       "    \"descriptor\": \"vm.ovf\",\n"
                       "    \"version\": \"1.0\",\n"
                       "    \"manifest\": \"vm.mf\",\n"
                       "    \"name\": \"web \\\"01\\\"\",\n"
                       "    \"os\": \"Debian\",\n"
                       "    \"os_id\": 101,\n"
                       "    \"os_type\": null,\n"
                       "    \"cpus\": 2,\n"
                       "    \"memory_bytes\": 805306368,\n"
                       "    \"disks\": [\n"
                       "      {\n"
                       "        \"disk_id\": \"second\",\n"
                       "        \"file\": \"disk2.raw\",\n"
                       "        \"capacity\": 1024,\n"
                       "        \"format\": \"raw\"\n"
                       "      },\n"
                       "      {\n"
                       "        \"disk_id\": \"first\",\n"
                       "        \"file\": \"disk1.raw\",\n"
                       "        \"capacity\": 2048,\n"
                       "        \"format\": null\n"
                       "      }\n"
                       "    ],\n"
                       "    \"networks\": [\n"
                       "      \"lan\",\n"
                       "      \"dmz\"\n"
                       "    ]\n"
                       "  }\n"
                       "}\n";
    CHECK(s && !strcmp(s, want), "info JSON\n  got:  %s  want: %s", s, want);
    free(s);

    struct lines l = {0};
    CHECK(vd_ova_check(ova, collect, &l, &err) == VD_CHECK_CLEAN, "check clean: %s", l.buf);
    CHECK(l.n == 0, "clean check reported: %s", l.buf);
    vd_ova_close(ova);

    /* flip a byte of disk1's data: exactly one mismatch line */
    char before[65], after[65];
    sha256_hex(disk1, sizeof(disk1), before);
    size_t off1 = 0;
    for (size_t i = 0; i + 512 <= t.len; i += 512)
        if (!memcmp(t.buf + i, "disk1.raw", 10)) {
            off1 = i + 512;
            break;
        }
    t.buf[off1 + 100] ^= 0xff;
    sha256_hex(t.buf + off1, sizeof(disk1), after);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "reopen: %s", err.msg);
    memset(&l, 0, sizeof(l));
    CHECK(vd_ova_check(ova, collect, &l, &err) == VD_CHECK_CORRUPT, "check corrupt");
    char wantl[400];
    snprintf(wantl, sizeof(wantl),
             "manifest: disk1.raw: SHA256 mismatch (manifest %s, actual %s)\n", before, after);
    CHECK(!strcmp(l.buf, wantl), "mismatch line\n  got:  %s  want: %s", l.buf, wantl);
    vd_ova_close(ova);
    free(t.buf);

    /* no manifest: clean and silent */
    build(&t, ovf2, false, NULL);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "open: %s", err.msg);
    memset(&l, 0, sizeof(l));
    CHECK(vd_ova_check(ova, collect, &l, &err) == VD_CHECK_CLEAN && l.n == 0, "no manifest: %s",
          l.buf);
    vd_ova_close(ova);
    free(t.buf);
}

static void test_check_problems(void)
{
    struct tb t;
    struct vd_io *io;
    struct vd_ova *ova;
    struct vd_error err;
    struct lines l = {0};
    char h1[65];
    sha256_hex(disk1, sizeof(disk1), h1);
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "SHA1(missing.iso)= 0123456789012345678901234567890123456789\r\n"
             "\n"
             "garbage line\n"
             "SHA999(disk1.raw)= 00\n"
             "SHA256(disk1.raw)=%s\n"  /* no space after '=': accepted */
             "sha1(disk2.raw) = abc\n" /* wrong length */
             "SHA1(disk2.raw)= %s\n",  /* a SHA-256 hex under SHA1 */
             h1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    /* ovf:size of f2 wrong, f3 missing, f4 an URL (skipped) */
    static const char ovf[] =
        OVF_HEAD "<References><File ovf:id=\"f1\" ovf:href=\"disk1.raw\"/>"
                 "<File ovf:id=\"f2\" ovf:href=\"disk2.raw\" ovf:size=\"1000\"/>"
                 "<File ovf:id=\"f3\" ovf:href=\"gone.iso\"/>"
                 "<File ovf:id=\"f4\" ovf:href=\"https://example.com/x.iso\"/></References>"
                 "<DiskSection><Disk ovf:diskId=\"d1\" ovf:fileRef=\"f1\" ovf:capacity=\"2048\"/>"
                 "</DiskSection></Envelope>";
    build(&t, ovf, true, extra);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "open: %s", err.msg);
    if (!ova)
        return;
    CHECK(ova->ndisks == 1, "one disk");
    CHECK(vd_ova_check(ova, collect, &l, &err) == VD_CHECK_CORRUPT, "corrupt: %s", err.msg);
    char d2[65];
    sha256_hex(disk2, sizeof(disk2), d2);
    unsigned char s1[20];
    EVP_Digest(disk2, sizeof(disk2), s1, NULL, EVP_sha1(), NULL);
    char d2sha1[41];
    for (int i = 0; i < 20; i++)
        sprintf(d2sha1 + 2 * i, "%02x", s1[i]);
    char want[4096];
    snprintf(want, sizeof(want),
             "manifest: missing.iso: listed in the manifest but not in the archive\n"
             "manifest: vm.mf: line 6 is not a digest line\n"
             "manifest: vm.mf: line 7: unsupported digest 'SHA999'\n"
             "manifest: vm.mf: disk2.raw: SHA1 digest 'abc' is not 40 hex digits\n"
             "manifest: disk2.raw: SHA1 mismatch (manifest "
             "a9993e364706816aba3e25717850c26c9cd0d89d, actual %s)\n"
             "ovf: disk2.raw: ovf:size is 1000 but the archive member has 1024 bytes\n"
             "ovf: gone.iso (f3): not in the archive\n",
             d2sha1);
    CHECK(!strcmp(l.buf, want), "lines\n  got:\n%s  want:\n%s", l.buf, want);
    vd_ova_close(ova);
    free(t.buf);

    /* a file the OVF references but the manifest leaves out */
    memset(&l, 0, sizeof(l));
    memset(&t, 0, sizeof(t));
    char mf[200];
    sha256_hex(disk1, sizeof(disk1), h1);
    snprintf(mf, sizeof(mf), "SHA256(disk1.raw)= %s\n", h1);
    tb_file_str(&t, "vm.ovf", ovf2);
    tb_file_str(&t, "vm.mf", mf);
    tb_file(&t, "disk1.raw", disk1, sizeof(disk1), TB_USTAR);
    tb_file(&t, "disk2.raw", disk2, sizeof(disk2), TB_USTAR);
    tb_end(&t);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "open: %s", err.msg);
    CHECK(vd_ova_check(ova, collect, &l, &err) == VD_CHECK_CORRUPT, "unlisted");
    CHECK(!strcmp(l.buf, "manifest: disk2.raw: referenced by the OVF but not in the manifest\n"),
          "unlisted line: %s", l.buf);
    vd_ova_close(ova);
    free(t.buf);
}

/* A name stored twice: the first copy is used, and check says so. */
static void test_duplicate(void)
{
    struct tb t = {0};
    struct vd_io *io;
    struct vd_ova *ova;
    struct vd_error err;
    struct lines l = {0};
    tb_file_str(&t, "vm.ovf", ovf2);
    tb_file(&t, "disk1.raw", disk1, sizeof(disk1), TB_USTAR);
    tb_file(&t, "disk2.raw", disk2, sizeof(disk2), TB_USTAR);
    tb_file(&t, "./disk2.raw", disk1, 512, TB_USTAR);
    tb_end(&t);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "open: %s", err.msg);
    if (ova) {
        CHECK(ova->disks[0].size == sizeof(disk2), "first copy used");
        CHECK(vd_ova_check(ova, collect, &l, &err) == VD_CHECK_CORRUPT, "dup corrupt");
        CHECK(!strcmp(l.buf, "ovf: disk2.raw: the archive holds 2 members of that name; the "
                             "first is used\n"),
              "dup line: %s", l.buf);
        vd_ova_close(ova);
    }
    free(t.buf);
}

static void test_refusals(void)
{
    struct tb t = {0};
    struct vd_io *io;
    struct vd_ova *ova;
    struct vd_error err;

    tb_file(&t, "disk1.raw", disk1, sizeof(disk1), TB_USTAR);
    tb_end(&t);
    CHECK(open_tb(&t, &io, &ova, &err) == -EINVAL, "no ovf");
    CHECK_MSG(err, "ova: t.ova: no .ovf descriptor in the archive (1 members)");
    free(t.buf);

    static const struct {
        const char *ovf;
        int code;
        const char *msg;
    } cases[] = {
        {OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"nope.vmdk\"/></References>"
                  "<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1\"/>"
                  "</DiskSection></Envelope>",
         -EINVAL, "ova: t.ova: disk d: file nope.vmdk is not in the archive"},
        {OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"disk1.raw\" "
                  "ovf:compression=\"gzip\"/></References>"
                  "<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1\"/>"
                  "</DiskSection></Envelope>",
         -ENOTSUP,
         "ova: t.ova: disk d: file disk1.raw is compressed (ovf:compression=\"gzip\"): not "
         "supported"},
        {OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"disk1.raw\" "
                  "ovf:chunkSize=\"1024\"/></References>"
                  "<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1\"/>"
                  "</DiskSection></Envelope>",
         -ENOTSUP,
         "ova: t.ova: disk d: file disk1.raw is split into chunks (ovf:chunkSize): not "
         "supported"},
        {OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"link\"/></References>"
                  "<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1\"/>"
                  "</DiskSection></Envelope>",
         -EINVAL, "ova: t.ova: disk d: archive member link is not a regular file (type '2')"},
        {OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"../disk1.raw\"/></References>"
                  "<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1\"/>"
                  "</DiskSection></Envelope>",
         -EINVAL, "ova: t.ova: disk d: file ../disk1.raw is not in the archive"},
        {OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"evil\"/></References>"
                  "<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1\"/>"
                  "</DiskSection></Envelope>",
         -EINVAL, "ova: t.ova: disk d: file evil is not in the archive"},
        {"not xml", -EINVAL,
         "ovf: t.ova/vm.ovf: not well-formed XML: line 1: Start tag expected, '<' not found"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&t, 0, sizeof(t));
        tb_file_str(&t, "vm.ovf", cases[i].ovf);
        tb_file(&t, "disk1.raw", disk1, sizeof(disk1), TB_USTAR);
        tb_header(&t, "link", 0, '2', TB_USTAR);
        tb_file(&t, "../evil", disk1, 512, TB_USTAR); /* never matched */
        tb_end(&t);
        int r = open_tb(&t, &io, &ova, &err);
        CHECK(r == cases[i].code && !ova, "case %zu: r=%d", i, r);
        CHECK_MSG(err, cases[i].msg);
        vd_ova_close(ova);
        free(t.buf);
    }

    /* descriptor in a subdirectory, percent-encoded href, pax-named disk,
     * a disk with no fileRef (skipped) */
    static const char sub[] =
        OVF_HEAD "<References><File ovf:id=\"f\" ovf:href=\"my%20disk.raw\"/></References>"
                 "<DiskSection><Disk ovf:diskId=\"blank\" ovf:capacity=\"10\"/>"
                 "<Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"2048\"/>"
                 "</DiskSection></Envelope>";
    memset(&t, 0, sizeof(t));
    tb_file(&t, "notes.txt", "x", 1, TB_USTAR);
    tb_file(&t, "pkg/._vm.ovf", "\0\5\26\7", 4, TB_USTAR); /* macOS AppleDouble */
    tb_file(&t, "pkg/vm.ovf", sub, strlen(sub), TB_GNU);
    tb_file(&t, "my disk.raw", disk2, sizeof(disk2), TB_USTAR); /* wrong directory */
    const char *x[] = {"path=./pkg/my disk.raw"};
    tb_pax(&t, 'x', x, 1);
    tb_file(&t, "short", disk1, sizeof(disk1), TB_USTAR);
    tb_end(&t);
    CHECK(open_tb(&t, &io, &ova, &err) == 0, "subdir: %s", err.msg);
    if (ova) {
        CHECK(!strcmp(ova->ovf_name, "pkg/vm.ovf"), "ovf name %s", ova->ovf_name);
        CHECK(ova->ndisks == 1 && !strcmp(ova->disks[0].member, "pkg/my disk.raw") &&
                  ova->disks[0].size == 2048 && !memcmp(t.buf + ova->disks[0].offset, disk1, 2048),
              "subdir disk");
        vd_ova_close(ova);
    }
    free(t.buf);
}

/* The COT samples: upstream's manifests verify the upstream files. */
static char *load_xz(const char *rel, size_t *len)
{
    const char *dir = getenv("VD_TEST_DATA");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "xz -dc '%s/samples/%s'", dir ? dir : "tests/data", rel);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0, k;
    char *b = malloc(cap);
    while ((k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    if (pclose(f) != 0) {
        free(b);
        return NULL;
    }
    *len = n;
    return b;
}

static void test_cot(void)
{
    static const struct {
        const char *ovf, *mf, *vmdk;
        const char *want;
    } cases[] = {
        {"ubuntu.2.0.ovf", "ubuntu.2.0.mf", "ubuntu.2.0-disk1.vmdk", ""},
        {"input.ovf", "input.mf", "input.vmdk",
         "manifest: input.iso: listed in the manifest but not in the archive\n"
         "manifest: sample_cfg.txt: listed in the manifest but not in the archive\n"
         "ovf: input.iso (file2): not in the archive\n"
         "ovf: sample_cfg.txt (textfile): not in the archive\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *names[3] = {cases[i].ovf, cases[i].mf, cases[i].vmdk};
        struct tb t = {0};
        bool ok = true;
        for (int k = 0; k < 3; k++) {
            char rel[256];
            size_t n;
            snprintf(rel, sizeof(rel), "cot/%s.xz", names[k]);
            char *d = load_xz(rel, &n);
            CHECK(d, "cannot read %s", rel);
            if (!d) {
                ok = false;
                break;
            }
            tb_file(&t, names[k], d, n, TB_USTAR);
            free(d);
        }
        tb_end(&t);
        struct vd_io *io;
        struct vd_ova *ova = NULL;
        struct vd_error err;
        if (ok)
            CHECK(open_tb(&t, &io, &ova, &err) == 0, "%s: %s", cases[i].ovf, err.msg);
        if (ova) {
            CHECK(ova->ndisks == 1 && !strcmp(ova->disks[0].member, cases[i].vmdk), "disk");
            struct lines l = {0};
            int r = vd_ova_check(ova, collect, &l, &err);
            CHECK(r == (cases[i].want[0] ? VD_CHECK_CORRUPT : VD_CHECK_CLEAN), "%s: r=%d %s",
                  cases[i].ovf, r, err.msg);
            CHECK(!strcmp(l.buf, cases[i].want), "%s lines\n  got:\n%s  want:\n%s", cases[i].ovf,
                  l.buf, cases[i].want);
            vd_ova_close(ova);
        }
        free(t.buf);
    }
}

/* No other sample image may probe as a tar (an OVA); the OVA sample must. */
static void test_probe_samples(void)
{
    const char *dir = getenv("VD_TEST_DATA");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd '%s/samples' && for f in */*.xz */*.gz; do printf '%%s\\n' \"$f\"; done",
             dir ? dir : "tests/data");
    FILE *list = popen(cmd, "r");
    char name[512];
    int n = 0;
    while (list && fgets(name, sizeof(name), list)) {
        name[strcspn(name, "\n")] = 0;
        const char *tool = strstr(name, ".gz") ? "gzip" : "xz";
        snprintf(cmd, sizeof(cmd), "%s -dc '%s/samples/%s' 2>/dev/null | head -c 512", tool,
                 dir ? dir : "tests/data", name);
        FILE *f = popen(cmd, "r");
        uint8_t head[512] = {0};
        size_t got = f ? fread(head, 1, sizeof(head), f) : 0;
        if (f)
            pclose(f);
        bool want = strstr(name, ".ova.") != NULL;
        CHECK(got < 512 || vd_ova_probe(head, got) == want, "probe %s: %d", name, !want);
        n++;
    }
    if (list)
        pclose(list);
    CHECK(n >= 10, "only %d samples probed", n);
}

/* The whole path the CLI and the mount take: vd_source_open on a file. */
static void test_source(void)
{
    struct tb t;
    build(&t, ovf2, true, NULL);
    char path[] = "/tmp/test_ova.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, t.buf, t.len) == (ssize_t)t.len, "temp file");
    close(fd);
    struct vd_source *src = NULL;
    struct vd_error err = {0};
    CHECK(vd_source_open(path, NULL, &src, &err) == 0, "source: %s", err.msg);
    if (src) {
        CHECK(!strcmp(vd_source_format(src), "ova") && vd_source_ndisks(src) == 2, "format");
        uint8_t buf[1024];
        struct vd_image *d0 = vd_source_disk(src, 0), *d1 = vd_source_disk(src, 1);
        CHECK(vd_image_size(d0) == 1024 && vd_image_size(d1) == 2048, "sizes");
        CHECK(vd_image_pread(d1, buf, 1024, 1024, &err) == 0 && !memcmp(buf, disk1 + 1024, 1024),
              "disk 2 bytes");
        CHECK(!strcmp(vd_image_format(d0), "raw"), "raw inside");
        size_t len;
        CHECK(!strcmp(vd_source_ovf_name(src), "vm.ovf") &&
                  !strcmp(vd_source_ovf_text(src, &len), ovf2),
              "ovf text");
        char *json = NULL;
        CHECK(vd_source_info_json(src, &json, &err) == 0 && strstr(json, "\"ovf\": {") &&
                  strstr(json, "\"memory_bytes\": 805306368"),
              "info json: %s", json);
        free(json);
        struct lines l = {0};
        CHECK(vd_source_check(src, collect, &l, &err) == VD_CHECK_CLEAN, "source check %s", l.buf);
        vd_source_close(src);
    }
    unlink(path);
    free(t.buf);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(disk1); i++)
        disk1[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof(disk2); i++)
        disk2[i] = (uint8_t)(i * 13 + 5);
    test_basic();
    test_check_problems();
    test_refusals();
    test_duplicate();
    test_cot();
    test_probe_samples();
    test_source();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
