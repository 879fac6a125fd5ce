/*
 * Fuzz the LVM2 reader (src/guest/lvm.c). The first byte picks the input:
 *
 *   0  a PV device: 8 bytes of device size (LE, capped at 1 TiB), then the
 *      device's first bytes (the rest reads as zeros): label, pv_header,
 *      mda_header and metadata text, as on disk;
 *   1  metadata text alone, on two PVs whose labels carry the UUIDs
 *      FUZZ_PV0/FUZZ_PV1 (the seeds' PVs use them) and a 64 MiB device.
 *
 * Invariants, beyond "no crash":
 *   - a readable LV has a size equal to extents x extent size, its
 *     segments follow each other from extent 0, and every map answer
 *     lies inside the data area of a PV that is present (after pe_start,
 *     within the device), with 0 < run <= asked;
 *   - the readable LVs of a VG never share a byte of a PV;
 *   - an LV that is not readable has a reason and size 0, and mapping it
 *     fails with -ENOTSUP.
 *
 * Seeds: tests/fuzz/corpus/fuzz_lvm (label sectors and metadata areas of
 * the t-lvm disks, and the metadata texts of tests/data/lvm).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "guest/lvm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INV(c)                                                                                     \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define FUZZ_PV0 "fuzz00000000000000000000000000p0"
#define FUZZ_PV1 "fuzz00000000000000000000000000p1"

struct fdev {
    const uint8_t *b;
    size_t n;
    uint64_t size;
};

static int fdev_pread(void *opaque, void *buf, size_t len, uint64_t off, struct vd_error *err)
{
    const struct fdev *d = opaque;
    INV(off <= d->size && len <= d->size - off); /* the reader stays inside the device */
    memset(buf, 0, len);
    if (off < d->n)
        memcpy(buf, d->b + off, len < d->n - off ? len : d->n - off);
    return 0;
}

struct span {
    size_t dev;
    uint64_t start, end;
    const struct vd_lvm_lv *lv;
};

static void check_lv(const struct vd_lvm_lv *lv, const struct vd_lvm_pvdev *pvs, size_t npvs,
                     struct span *spans, size_t *nspans, size_t cap)
{
    const struct vd_lvm_vg *vg = lv->vg;
    size_t dev;
    uint64_t off, run;
    struct vd_error err = {0};
    if (lv->unsupported) {
        INV(lv->size == 0);
        INV(vd_lvm_map(lv, 0, 1, &dev, &off, &run, &err) == -ENOTSUP);
        return;
    }
    uint64_t es = vg->extent_size * 512, next = 0;
    INV(lv->nsegs > 0 && lv->size == lv->extents * es && lv->size / es == lv->extents);
    for (size_t s = 0; s < lv->nsegs; s++) {
        const struct vd_lvm_seg *sg = &lv->segs[s];
        INV(sg->start_extent == next);
        next += sg->extent_count;
        for (uint32_t a = 0; a < sg->stripes; a++) {
            const struct vd_lvm_vgpv *pv = &vg->pvs[sg->areas[a].pv];
            INV(pv->dev >= 0 && (size_t)pv->dev < npvs);
            if (*nspans < cap) {
                uint64_t st = pv->pe_start * 512 + sg->areas[a].start_pe * es;
                spans[*nspans] = (struct span){(size_t)pv->dev, st,
                                               st + sg->extent_count / sg->stripes * es, lv};
                INV(spans[*nspans].end <= pvs[pv->dev].dev_bytes);
                (*nspans)++;
            }
        }
    }
    INV(next == lv->extents);
    /* Walk the LV from a few places, at most 64 answers each. */
    uint64_t starts[4] = {0, lv->size / 3, lv->size / 2, lv->size - 1};
    for (int i = 0; i < 4; i++) {
        uint64_t pos = starts[i];
        for (int k = 0; k < 64 && pos < lv->size; k++) {
            uint64_t len = lv->size - pos;
            INV(vd_lvm_map(lv, pos, len, &dev, &off, &run, &err) == 0);
            INV(run > 0 && run <= len && dev < npvs);
            INV(off + run <= pvs[dev].dev_bytes && off + run >= off);
            bool inside = false; /* inside one of this LV's own areas */
            for (size_t s = 0; s < *nspans; s++)
                if (spans[s].lv == lv && spans[s].dev == dev && off >= spans[s].start &&
                    off + run <= spans[s].end)
                    inside = true;
            INV(inside || *nspans >= cap);
            pos += run;
        }
    }
}

static void check(const struct vd_lvm *l, const struct vd_lvm_pvdev *pvs, size_t npvs)
{
    enum { CAP = 4096 };
    static struct span spans[CAP];
    for (size_t v = 0; v < l->nvgs; v++) {
        const struct vd_lvm_vg *vg = &l->vgs[v];
        size_t n = 0;
        for (size_t i = 0; i < vg->nlvs; i++) {
            INV(vg->lvs[i].vg == vg);
            check_lv(&vg->lvs[i], pvs, npvs, spans, &n, CAP);
        }
        for (size_t i = 0; i < n && n < CAP; i++)
            for (size_t k = i + 1; k < n; k++)
                if (spans[i].dev == spans[k].dev && spans[i].lv != spans[k].lv)
                    INV(spans[i].end <= spans[k].start || spans[k].end <= spans[i].start);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct vd_lvm_pvdev pvs[2];
    size_t npvs = 0;
    struct vd_error err = {0};
    memset(pvs, 0, sizeof(pvs));
    if (data[0] == 0) {
        if (size < 9)
            return 0;
        struct fdev d = {data + 9, size - 9, le64(data + 1)};
        if (d.size > (1ull << 40))
            d.size = 1ull << 40;
        if (vd_lvm_read_pv(fdev_pread, &d, d.size, "fuzz", &pvs[0], &err) == 1)
            npvs = 1;
    } else {
        if (size - 1 > VD_LVM_MAX_META)
            return 0;
        for (int i = 0; i < 2; i++) {
            memcpy(pvs[i].uuid, i ? FUZZ_PV1 : FUZZ_PV0, 33);
            pvs[i].dev_bytes = 64u << 20;
            pvs[i].devname = i ? "fuzz1" : "fuzz0";
        }
        pvs[0].meta = malloc(size);
        if (!pvs[0].meta)
            return 0;
        memcpy(pvs[0].meta, data + 1, size - 1);
        pvs[0].meta[size - 1] = '\0';
        pvs[0].meta_len = strlen(pvs[0].meta);
        npvs = 2;
    }
    struct vd_lvm *l = NULL;
    if (vd_lvm_assemble(pvs, npvs, &l, &err) == 0) {
        check(l, pvs, npvs);
        vd_lvm_free(l);
    }
    for (size_t i = 0; i < 2; i++)
        vd_lvm_pvdev_free(&pvs[i]);
    return 0;
}
