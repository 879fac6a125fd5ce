/*
 * src/guest/lvm.c on PVs built in memory: label and metadata area with
 * LVM's CRCs, metadata text wrapping round the circular buffer, the
 * mapping of linear and striped LVs, and each damaged or hostile field
 * with the exact message or reason users see.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/byteorder.h"
#include "guest/lvm.h"

#define DEV_SIZE (2u << 20)
#define MDA_OFF  4096u
#define MDA_SIZE ((1u << 20) - 4096u)

struct dev {
    uint8_t *b;
    size_t n;
};

static int dev_pread(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    struct dev *d = opaque;
    if (off > d->n || len > d->n - off)
        return vd_err(err, -EIO, "read past the end");
    memcpy(buf, d->b + off, len);
    return 0;
}

/* A PV of DEV_SIZE bytes whose label says uuid and whose one metadata
 * area holds text at toff (relative to the area; it wraps when it runs
 * past the area's end, as LVM's circular buffer does). */
static void mkpv(struct dev *d, const char *uuid, const char *text, uint64_t toff)
{
    d->n = DEV_SIZE;
    d->b = calloc(1, d->n);
    uint8_t *l = d->b + 512; /* label in sector 1, as lvm2 writes it */
    memcpy(l, "LABELONE", 8);
    put_le64(l + 8, 1);
    put_le32(l + 20, 32);
    memcpy(l + 24, "LVM2 001", 8);
    memcpy(l + 32, uuid, 32);
    put_le64(l + 64, DEV_SIZE);
    put_le64(l + 72, 1u << 20); /* data area, size 0: to the end */
    put_le64(l + 104, MDA_OFF);
    put_le64(l + 112, MDA_SIZE);
    put_le32(l + 16, vd_lvm_crc(VD_LVM_INITIAL_CRC, l + 20, 512 - 20));
    uint8_t *h = d->b + MDA_OFF;
    size_t len = strlen(text) + 1;
    memcpy(h + 4, " LVM2 x[5A%r0N*>", 16);
    put_le32(h + 20, 1);
    put_le64(h + 24, MDA_OFF);
    put_le64(h + 32, MDA_SIZE);
    put_le64(h + 40, toff);
    put_le64(h + 48, len);
    put_le32(h + 56, vd_lvm_crc(VD_LVM_INITIAL_CRC, text, len));
    size_t first = len < MDA_SIZE - toff ? len : MDA_SIZE - toff;
    memcpy(h + toff, text, first);
    memcpy(h + 512, text + first, len - first);
    put_le32(h, vd_lvm_crc(VD_LVM_INITIAL_CRC, h + 4, 512 - 4));
}

#define PVU0 "pv0000000000000000000000000000AA"
#define PVU1 "pv0000000000000000000000000000BB"

/* VG "vg" (4 KiB extents; PVs pe_start 1 MiB, 256 extents) with the LV
 * sections given. */
static char *vgtext(const char *lvs)
{
    char *s = NULL;
    if (asprintf(&s,
                 "vg {\nid = \"vgid\"\nseqno = 7\nextent_size = 8\n"
                 "physical_volumes {\n"
                 "pv0 {\nid = \"pv0000-0000-0000-0000-0000-0000-0000AA\"\npe_start = 2048\n"
                 "pe_count = 256\n}\n"
                 "pv1 {\nid = \"pv0000-0000-0000-0000-0000-0000-0000BB\"\npe_start = 2048\n"
                 "pe_count = 256\n}\n}\n"
                 "logical_volumes {\n%s\n}\n}\n# comment\ncontents = \"Text Format Volume "
                 "Group\"\nversion = 1\n",
                 lvs) < 0)
        abort();
    return s;
}

#define LV(name, segs)                                                                             \
    name " {\nid = \"" name "-id\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n" segs "}\n"
#define SEG(n, start, count, body)                                                                 \
    "segment" #n " {\nstart_extent = " #start "\nextent_count = " #count "\n" body "}\n"
#define LINEAR(pv, pe) "type = \"striped\"\nstripe_count = 1\nstripes = [\"" pv "\", " #pe "]\n"

struct fixture {
    struct dev d[2];
    struct vd_lvm_pvdev pv[2];
    struct vd_lvm *l;
};

/* Both PVs carry the same text; assemble them. */
static void setup(struct fixture *f, const char *lvs)
{
    char *t = vgtext(lvs);
    memset(f, 0, sizeof(*f));
    mkpv(&f->d[0], PVU0, t, 512);
    mkpv(&f->d[1], PVU1, t, 512);
    free(t);
    struct vd_error err = {0};
    for (int i = 0; i < 2; i++) {
        int r = vd_lvm_read_pv(dev_pread, &f->d[i], f->d[i].n, i ? "disk-p2" : "disk-p1", &f->pv[i],
                               &err);
        CHECK(r == 1, "read_pv %d: %d %s", i, r, err.msg);
    }
    CHECK(vd_lvm_assemble(f->pv, 2, &f->l, &err) == 0, "assemble: %s", err.msg);
}

static void teardown(struct fixture *f)
{
    vd_lvm_free(f->l);
    for (int i = 0; i < 2; i++) {
        vd_lvm_pvdev_free(&f->pv[i]);
        free(f->d[i].b);
    }
}

static const struct vd_lvm_lv *find_lv(const struct fixture *f, const char *name)
{
    for (size_t v = 0; f->l && v < f->l->nvgs; v++)
        for (size_t i = 0; i < f->l->vgs[v].nlvs; i++)
            if (!strcmp(f->l->vgs[v].lvs[i].name, name))
                return &f->l->vgs[v].lvs[i];
    return NULL;
}

static void check_reason(const char *lvs, const char *lv, const char *want)
{
    struct fixture f;
    setup(&f, lvs);
    const struct vd_lvm_lv *x = find_lv(&f, lv);
    CHECK(x != NULL, "LV %s not listed", lv);
    if (x) {
        CHECK(x->unsupported && !strcmp(x->unsupported, want),
              "reason of %s\n  got:  %s\n  want: %s", lv,
              x->unsupported ? x->unsupported : "(readable)", want);
        CHECK(x->size == 0, "unsupported LV %s has size %llu", lv, (unsigned long long)x->size);
    }
    teardown(&f);
}

static void test_map(void)
{
    struct fixture f;
    /* A: 3 extents at pv0:10, then 2 at pv1:0. S: 2 stripes of 8 KiB
     * (16 sectors), 8 extents, pv0:100 and pv1:50. */
    setup(&f, LV("a", SEG(1, 0, 3, LINEAR("pv0", 10)) SEG(2, 3, 2, LINEAR("pv1", 0)))
                  LV("s", SEG(1, 0, 8,
                              "type = \"striped\"\nstripe_count = 2\nstripe_size = 16\n"
                              "stripes = [\n\"pv0\", 100,\n\"pv1\", 50\n]\n")));
    const struct vd_lvm_lv *a = find_lv(&f, "a"), *s = find_lv(&f, "s");
    CHECK(a && !a->unsupported && a->size == 5 * 4096, "a: %s", a ? a->unsupported : "absent");
    CHECK(s && !s->unsupported && s->size == 8 * 4096, "s: %s", s ? s->unsupported : "absent");
    CHECK(a && !strcmp(a->segtype, "linear"), "a segtype %s", a ? a->segtype : "");
    CHECK(s && !strcmp(s->segtype, "striped"), "s segtype %s", s ? s->segtype : "");
    size_t dev;
    uint64_t off, run;
    struct vd_error err = {0};
    if (a) {
        CHECK(vd_lvm_map(a, 100, 1 << 20, &dev, &off, &run, &err) == -EINVAL, "past the end");
        vd_err_clear(&err);
        CHECK(vd_lvm_map(a, 100, 5 * 4096 - 100, &dev, &off, &run, &err) == 0, "%s", err.msg);
        CHECK(dev == 0 && off == (1u << 20) + 10 * 4096 + 100 && run == 3 * 4096 - 100,
              "a@100: dev %zu off %llu run %llu", dev, (unsigned long long)off,
              (unsigned long long)run);
        CHECK(vd_lvm_map(a, 3 * 4096 + 5, 10, &dev, &off, &run, &err) == 0, "%s", err.msg);
        CHECK(dev == 1 && off == (1u << 20) + 5 && run == 10, "a seg2: dev %zu off %llu", dev,
              (unsigned long long)off);
    }
    if (s) {
        /* a chunk boundary ends the run */
        CHECK(vd_lvm_map(s, 1, 20000, &dev, &off, &run, &err) == 0, "%s", err.msg);
        CHECK(dev == 0 && off == (1u << 20) + 100 * 4096 + 1 && run == 8191,
              "s chunk 0: dev %zu off %llu run %llu", dev, (unsigned long long)off,
              (unsigned long long)run);
        /* chunk 3 (bytes 24-32 KiB) is stripe 1, row 1 */
        CHECK(vd_lvm_map(s, 3 * 8192 + 1, 8191, &dev, &off, &run, &err) == 0, "%s", err.msg);
        CHECK(dev == 1 && off == (1u << 20) + 50 * 4096 + 8192 + 1 && run == 8191,
              "s chunk 3: dev %zu off %llu run %llu", dev, (unsigned long long)off,
              (unsigned long long)run);
    }
    teardown(&f);
}

static void test_wrap(void)
{
    /* The text starts 100 bytes before the end of the area and continues
     * after the 512-byte header. */
    char *t = vgtext(LV("w", SEG(1, 0, 1, LINEAR("pv0", 0))));
    struct dev d;
    mkpv(&d, PVU0, t, MDA_SIZE - 100);
    struct vd_lvm_pvdev pv;
    struct vd_error err = {0};
    CHECK(vd_lvm_read_pv(dev_pread, &d, d.n, "disk", &pv, &err) == 1, "%s", err.msg);
    CHECK(pv.meta && !strcmp(pv.meta, t), "wrapped text differs: %s",
          pv.meta_error ? pv.meta_error : "");
    vd_lvm_pvdev_free(&pv);
    free(t);
    free(d.b);
}

static void test_damaged(void)
{
    char *t = vgtext("");
    struct dev d;
    struct vd_lvm_pvdev pv;
    struct vd_error err = {0};

    mkpv(&d, PVU0, t, 512);
    d.b[512 + 40] ^= 1; /* inside the CRC'd part of the label sector */
    CHECK(vd_lvm_read_pv(dev_pread, &d, d.n, "disk-p1", &pv, &err) == -EINVAL, "label crc");
    CHECK_MSG(err, "lvm: disk-p1: LVM label in sector 1: checksum mismatch");
    free(d.b);

    mkpv(&d, PVU0, t, 512);
    d.b[MDA_OFF + 512 + 3] ^= 1; /* metadata text */
    vd_err_clear(&err);
    CHECK(vd_lvm_read_pv(dev_pread, &d, d.n, "disk-p1", &pv, &err) == 1, "%s", err.msg);
    CHECK(!pv.meta && pv.meta_error &&
              !strcmp(pv.meta_error, "lvm: disk-p1: metadata area at 4096: metadata text checksum "
                                     "mismatch (damaged metadata)"),
          "text crc: %s", pv.meta_error ? pv.meta_error : "(none)");
    vd_lvm_pvdev_free(&pv);
    free(d.b);

    /* A metadata size above the cap, with a valid header CRC. */
    mkpv(&d, PVU0, t, 512);
    put_le64(d.b + MDA_OFF + 48, 5u << 20);
    put_le32(d.b + MDA_OFF, vd_lvm_crc(VD_LVM_INITIAL_CRC, d.b + MDA_OFF + 4, 508));
    CHECK(vd_lvm_read_pv(dev_pread, &d, d.n, "disk-p1", &pv, &err) == 1, "%s", err.msg);
    CHECK(pv.meta_error &&
              !strcmp(pv.meta_error,
                      "lvm: disk-p1: metadata area at 4096: raw_locn offset 512 size 5242880 is "
                      "outside the area (1044480 bytes) or above the 4 MiB cap"),
          "cap: %s", pv.meta_error ? pv.meta_error : "(none)");
    vd_lvm_pvdev_free(&pv);
    free(d.b);

    /* A metadata area that the label puts past the device's end. */
    mkpv(&d, PVU0, t, 512);
    put_le64(d.b + 512 + 104, DEV_SIZE - 4096);
    put_le32(d.b + 512 + 16, vd_lvm_crc(VD_LVM_INITIAL_CRC, d.b + 512 + 20, 492));
    CHECK(vd_lvm_read_pv(dev_pread, &d, d.n, "disk-p1", &pv, &err) == 1, "%s", err.msg);
    CHECK(pv.meta_error &&
              !strcmp(pv.meta_error, "lvm: disk-p1: metadata area at 2093056 (1044480 bytes) does "
                                     "not fit the device (2097152 bytes)"),
          "mda past end: %s", pv.meta_error ? pv.meta_error : "(none)");
    vd_lvm_pvdev_free(&pv);
    free(d.b);
    free(t);
}

/* Metadata text that does not parse: a warning, no VG. */
static void check_parse_warning(const char *text, const char *want)
{
    struct dev d;
    struct vd_lvm_pvdev pv;
    struct vd_lvm *l = NULL;
    struct vd_error err = {0};
    mkpv(&d, PVU0, text, 512);
    CHECK(vd_lvm_read_pv(dev_pread, &d, d.n, "disk", &pv, &err) == 1, "%s", err.msg);
    CHECK(vd_lvm_assemble(&pv, 1, &l, &err) == 0, "%s", err.msg);
    CHECK(l && l->nvgs == 0 && l->nwarnings == 1 && !strcmp(l->warnings[0], want),
          "parse warning\n  got:  %s\n  want: %s", l && l->nwarnings ? l->warnings[0] : "(none)",
          want);
    vd_lvm_free(l);
    vd_lvm_pvdev_free(&pv);
    free(d.b);
}

static void test_parser(void)
{
    char deep[200] = "";
    for (int i = 0; i < 20; i++)
        strcat(deep, "a {\n");
    check_parse_warning(deep, "lvm: disk: metadata: line 17: sections nested too deeply");
    check_parse_warning("vg {\nid = \"abc\n", "lvm: disk: metadata: line 3: unterminated string");
    check_parse_warning("vg {\nseqno = 99999999999999999999\n}\n",
                        "lvm: disk: metadata: line 2: number out of range");
    check_parse_warning("vg {\nx = [1, [2]]\n}\n", "lvm: disk: metadata: line 2: expected a value");
    check_parse_warning("vg {\nid = \"a\"\n}\n",
                        "lvm: disk: VG vg: id, seqno or extent_size missing or invalid");
    check_parse_warning("vg {\n}\nvg2 {\n}\n",
                        "lvm: disk: metadata holds more than one VG section (vg, vg2)");
    /* Escapes: \" inside a string. */
    struct fixture f;
    setup(&f,
          "q {\nid = \"a\\\"b\"\nstatus = [\"VISIBLE\"]\n" SEG(1, 0, 1, LINEAR("pv0", 0)) "}\n");
    const struct vd_lvm_lv *q = find_lv(&f, "q");
    CHECK(q && !strcmp(q->uuid, "a\"b") && !q->unsupported, "escaped id: %s",
          q ? q->uuid : "(absent)");
    teardown(&f);
}

static void test_reasons(void)
{
    check_reason(LV("t", SEG(1, 0, 4, "type = \"thin\"\nthin_pool = \"pool\"\n")), "t",
                 "thin volumes are not supported (VG vg, LV t, segment1: type \"thin\")");
    check_reason(LV("m", SEG(1, 0, 1, "type = \"raid1\"\n")), "m",
                 "RAID volumes are not supported (VG vg, LV m, segment1: type \"raid1\")");
    check_reason(LV("x", SEG(1, 0, 1, "type = \"frobnicate\"\n")), "x",
                 "segment type \"frobnicate\" is not supported (VG vg, LV x, segment1)");
    check_reason(LV("o", SEG(1, 0, 9223372036854775807, LINEAR("pv0", 0))), "o",
                 "VG vg, LV o: extents 0-9223372036854775806 of pv0 lie past its pe_count 256");
    check_reason(LV("p", SEG(1, 0, 10, LINEAR("pv0", 250))), "p",
                 "VG vg, LV p: extents 250-259 of pv0 lie past its pe_count 256");
    check_reason(LV("g", SEG(1, 0, 2, LINEAR("pv0", 0)) SEG(2, 3, 1, LINEAR("pv0", 5))), "g",
                 "VG vg, LV g: segments leave a gap at extent 3 (expected 2)");
    check_reason(LV("v", SEG(1, 0, 2, LINEAR("pv0", 0)) SEG(2, 1, 1, LINEAR("pv0", 5))), "v",
                 "VG vg, LV v: segments overlap at extent 1 (expected 2)");
    check_reason(LV("a", SEG(1, 0, 4, LINEAR("pv0", 0))) LV("b", SEG(1, 0, 4, LINEAR("pv0", 3))),
                 "b", "VG vg, LV b: extent 3 of pv0 is also used by LV a");
    check_reason(LV("a", SEG(1, 0, 4, LINEAR("pv0", 0))) LV("b", SEG(1, 0, 4, LINEAR("pv0", 3))),
                 "a", "VG vg, LV a: extent 3 of pv0 is also used by LV b");
    check_reason(LV("s", SEG(1, 0, 3,
                             "type = \"striped\"\nstripe_count = 2\nstripe_size = 16\n"
                             "stripes = [\"pv0\", 0, \"pv1\", 0]\n")),
                 "s",
                 "VG vg, LV s, segment1: stripe_size 16 sectors and stripe_count 2 do not divide "
                 "extent_count 3 of 8-sector extents");
    check_reason(LV("n", SEG(1, 0, 1, LINEAR("lvx", 0))), "n",
                 "VG vg, LV n, segment1: stripe 1 is on \"lvx\", which is not a PV of the VG "
                 "(areas on other LVs, as pvmove uses, are not supported)");
    check_reason(
        LV("c", SEG(1, 0, 1, "type = \"striped\"\nstripe_count = 4000000000\nstripes = []\n")), "c",
        "VG vg, LV c, segment1: stripe_count 4000000000 is not 1 to 128");
}

static void test_missing_and_dup(void)
{
    /* Only pv0 is present: an LV on pv1 says so. */
    char *t =
        vgtext(LV("on1", SEG(1, 0, 1, LINEAR("pv1", 0))) LV("on0", SEG(1, 0, 1, LINEAR("pv0", 0))));
    struct dev d[2];
    struct vd_lvm_pvdev pv[2];
    struct vd_lvm *l = NULL;
    struct vd_error err = {0};
    mkpv(&d[0], PVU0, t, 512);
    mkpv(&d[1], PVU0, t, 512); /* a clone: the same PV UUID */
    for (int i = 0; i < 2; i++)
        CHECK(vd_lvm_read_pv(dev_pread, &d[i], d[i].n, i ? "disk2-p1" : "disk1-p1", &pv[i], &err) ==
                  1,
              "%s", err.msg);
    CHECK(vd_lvm_assemble(pv, 2, &l, &err) == 0, "%s", err.msg);
    CHECK(l && l->nvgs == 1, "one VG");
    if (l && l->nvgs == 1) {
        const struct vd_lvm_lv *on1 = &l->vgs[0].lvs[0], *on0 = &l->vgs[0].lvs[1];
        CHECK(
            on1->unsupported &&
                !strcmp(on1->unsupported,
                        "PV pv1 (uuid pv0000-0000-0000-0000-0000-0000-0000BB) of VG vg is missing"),
            "missing: %s", on1->unsupported ? on1->unsupported : "(readable)");
        CHECK(!on0->unsupported, "on0: %s", on0->unsupported);
        CHECK(l->nwarnings >= 1 &&
                  !strcmp(l->warnings[0], "lvm: VG vg, pv0 (uuid "
                                          "pv0000-0000-0000-0000-0000-0000-0000AA): found on both "
                                          "disk1-p1 and disk2-p1 (a cloned disk?); using disk1-p1"),
              "dup warning: %s", l->nwarnings ? l->warnings[0] : "(none)");
    }
    vd_lvm_free(l);
    for (int i = 0; i < 2; i++) {
        vd_lvm_pvdev_free(&pv[i]);
        free(d[i].b);
    }
    free(t);
}

static void test_truncated_pv(void)
{
    /* pe_count says 256 extents but the device ends after 100 of them. */
    char *t = vgtext(LV("ok", SEG(1, 0, 10, LINEAR("pv0", 0)))
                         LV("cut", SEG(1, 0, 10, LINEAR("pv0", 95))));
    struct dev d;
    struct vd_lvm_pvdev pv;
    struct vd_lvm *l = NULL;
    struct vd_error err = {0};
    mkpv(&d, PVU0, t, 512);
    uint64_t cut = (1u << 20) + 100 * 4096;
    CHECK(vd_lvm_read_pv(dev_pread, &d, cut, "disk", &pv, &err) == 1, "%s", err.msg);
    CHECK(vd_lvm_assemble(&pv, 1, &l, &err) == 0, "%s", err.msg);
    const struct vd_lvm_lv *ok = &l->vgs[0].lvs[0], *c = &l->vgs[0].lvs[1];
    CHECK(!ok->unsupported, "ok: %s", ok->unsupported);
    CHECK(c->unsupported && !strcmp(c->unsupported,
                                    "VG vg, LV cut: extents 95-104 of pv0 lie past the end of its "
                                    "device disk (1458176 bytes; a truncated disk?)"),
          "cut: %s", c->unsupported ? c->unsupported : "(readable)");
    vd_lvm_free(l);
    vd_lvm_pvdev_free(&pv);
    free(d.b);
    free(t);
}

int main(void)
{
    test_map();
    test_wrap();
    test_damaged();
    test_parser();
    test_reasons();
    test_missing_and_dup();
    test_truncated_pv();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures != 0;
}
