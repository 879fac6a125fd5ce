/*
 * vd_guest over two sources (vd_guest_open_sources): one VG whose PVs are
 * the two whole disks, an LV with a segment on each, names with '-'
 * (doubled in the view name as device-mapper does), libblkid's
 * LVM2_member on the disks, reads across the segment boundary, and the
 * -ENOTSUP of an LV whose PV is absent when one source is opened alone.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/byteorder.h"
#include "guest/lvm.h"
#include "vdisk/guest.h"

#define DEV_SIZE (4u << 20)
#define MDA_OFF  4096u
#define MDA_SIZE ((1u << 20) - 4096u)

/* A whole-disk PV (label, one metadata area with text) in buf. */
static void mkpv(uint8_t *b, const char *uuid, const char *text)
{
    uint8_t *l = b + 512;
    memcpy(l, "LABELONE", 8);
    put_le64(l + 8, 1);
    put_le32(l + 20, 32);
    memcpy(l + 24, "LVM2 001", 8);
    memcpy(l + 32, uuid, 32);
    put_le64(l + 64, DEV_SIZE);
    put_le64(l + 72, 1u << 20);
    put_le64(l + 104, MDA_OFF);
    put_le64(l + 112, MDA_SIZE);
    put_le32(l + 16, vd_lvm_crc(VD_LVM_INITIAL_CRC, l + 20, 512 - 20));
    uint8_t *h = b + MDA_OFF;
    size_t len = strlen(text) + 1;
    memcpy(h + 4, " LVM2 x[5A%r0N*>", 16);
    put_le32(h + 20, 1);
    put_le64(h + 24, MDA_OFF);
    put_le64(h + 32, MDA_SIZE);
    put_le64(h + 40, 512);
    put_le64(h + 48, len);
    put_le32(h + 56, vd_lvm_crc(VD_LVM_INITIAL_CRC, text, len));
    memcpy(h + 512, text, len);
    put_le32(h, vd_lvm_crc(VD_LVM_INITIAL_CRC, h + 4, 512 - 4));
}

static const char meta[] =
    "my-vg {\nid = \"vgid\"\nseqno = 1\nextent_size = 2048\n"
    "physical_volumes {\n"
    "pv0 {\nid = \"AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA0\"\npe_start = 2048\npe_count = 3\n}\n"
    "pv1 {\nid = \"AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA1\"\npe_start = 2048\npe_count = 3\n}\n}\n"
    "logical_volumes {\n"
    "a-b {\nid = \"lvid\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n"
    "segment1 {\nstart_extent = 0\nextent_count = 2\ntype = \"striped\"\nstripe_count = 1\n"
    "stripes = [\"pv0\", 1]\n}\n"
    "segment2 {\nstart_extent = 2\nextent_count = 1\ntype = \"striped\"\nstripe_count = 1\n"
    "stripes = [\"pv1\", 2]\n}\n}\n}\n}\n";

static int write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

int main(void)
{
    char dir[] = "/tmp/test_guest.XXXXXX", p1[64], p2[64];
    if (!mkdtemp(dir))
        return 77;
    snprintf(p1, sizeof(p1), "%s/d1.raw", dir);
    snprintf(p2, sizeof(p2), "%s/d2.raw", dir);
    uint8_t *d1 = calloc(1, DEV_SIZE), *d2 = calloc(1, DEV_SIZE);
    mkpv(d1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0", meta);
    mkpv(d2, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1", meta);
    /* LV bytes: extents 0-1 at pv0 extent 1, extent 2 at pv1 extent 2. */
    for (size_t i = 0; i < (2u << 20); i++)
        d1[(2u << 20) + i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < (1u << 20); i++)
        d2[(3u << 20) + i] = (uint8_t)(((2u << 20) + i) * 7 + 1);
    CHECK(write_file(p1, d1, DEV_SIZE) == 0 && write_file(p2, d2, DEV_SIZE) == 0, "write");

    struct vd_error err = {0};
    struct vd_source *s[2] = {NULL, NULL};
    struct vd_open_opts o = {.format = "raw"};
    CHECK(vd_source_open(p1, &o, &s[0], &err) == 0, "%s", err.msg);
    CHECK(vd_source_open(p2, &o, &s[1], &err) == 0, "%s", err.msg);
    struct vd_guest *g = NULL;
    if (s[0] && s[1])
        CHECK(vd_guest_open_sources(s, 2, &g, &err) == 0, "%s", err.msg);
    if (g) {
        CHECK(vd_guest_ndevs(g) == 3, "%zu devices", vd_guest_ndevs(g));
        const struct vd_bdev *k1 = vd_guest_find(g, "disk1"), *k2 = vd_guest_find(g, "disk2");
        CHECK(k1 && k2 && !strcmp(k1->fstype, "LVM2_member") && !strcmp(k2->fstype, "LVM2_member"),
              "disks: %s", k1 ? k1->fstype : "(absent)");
        const struct vd_bdev *lv = vd_guest_find(g, "lvm-my--vg-a--b");
        CHECK(lv && lv->kind == VD_BDEV_LV && !lv->unsupported && lv->size == (3u << 20) &&
                  lv->disk == 1 && !strcmp(lv->vg, "my-vg") && !strcmp(lv->lv, "a-b") &&
                  !strcmp(lv->segtype, "linear"),
              "LV: %s", lv ? (lv->unsupported ? lv->unsupported : lv->name) : "(absent)");
        if (lv) {
            uint8_t buf[8192];
            uint64_t at = (2u << 20) - 4096; /* across the segment boundary */
            CHECK(vd_bdev_pread(lv, buf, sizeof(buf), at, &err) == 0, "%s", err.msg);
            int bad = 0;
            for (size_t i = 0; i < sizeof(buf); i++)
                bad += buf[i] != (uint8_t)((at + i) * 7 + 1);
            CHECK(bad == 0, "%d bytes differ across the boundary", bad);
            struct vd_image *img;
            uint64_t off, run;
            CHECK(vd_bdev_map(lv, at, sizeof(buf), &img, &off, &run, &err) == 0 && run == 4096 &&
                      off == (4u << 20) - 4096 && img == vd_guest_disk(g, 1),
                  "map: run %llu off %llu", (unsigned long long)run, (unsigned long long)off);
            vd_err_clear(&err);
            CHECK(vd_bdev_pread(lv, buf, 2, (3u << 20) - 1, &err) == -EINVAL, "past the end");
        }
        vd_guest_close(g);
    }
    /* disk 1 alone: the LV is listed, not readable. */
    g = NULL;
    vd_err_clear(&err);
    if (s[0])
        CHECK(vd_guest_open(s[0], &g, &err) == 0, "%s", err.msg);
    if (g) {
        const struct vd_bdev *lv = vd_guest_find(g, "lvm-my--vg-a--b");
        CHECK(lv && lv->size == 0 && lv->unsupported &&
                  !strcmp(lv->unsupported, "PV pv1 (uuid AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA1) "
                                           "of VG my-vg is missing"),
              "alone: %s", lv && lv->unsupported ? lv->unsupported : "(readable or absent)");
        uint8_t c;
        vd_err_clear(&err);
        CHECK(lv && vd_bdev_pread(lv, &c, 1, 0, &err) == -ENOTSUP, "read of an unsupported LV");
        vd_guest_close(g);
    }
    vd_source_close(s[0]);
    vd_source_close(s[1]);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    free(d1);
    free(d2);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures != 0;
}
