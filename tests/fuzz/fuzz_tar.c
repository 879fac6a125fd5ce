/*
 * Fuzz the OVA container path on a memory io: the tar walk (headers, pax,
 * GNU long names, base-256), then, when it holds an .ovf, the OVA open
 * (OVF parse, href lookup), the info JSON and the manifest check. Also
 * feeds the first block to the header parser and the whole input to the
 * pax record parser.
 *
 * Invariants (issue 9), beyond "no crash":
 *   - every member's data window is block aligned, lies after its header,
 *     inside the file, and overlaps no other member's header or data;
 *   - names are normalised (no leading "/", no "." or empty component) and
 *     a member is unsafe exactly when a component is "..";
 *   - vd_tar_find never returns an unsafe member, and what it returns has
 *     the name asked for;
 *   - every OVA disk is the data window of one safe member of the tar.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "formats/ova.h"
#include "formats/tar.h"
#include "io/mem.h"

static void fuzz_check_cb(void *opaque, bool corrupt, const char *msg)
{
    (void)opaque;
    (void)corrupt;
    (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INV(c)                                                                                     \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static bool has_dotdot(const char *n)
{
    for (const char *p = n; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += len + (e != NULL);
    }
    return false;
}

static void check_name(const char *n)
{
    INV(n[0] != '/');
    for (const char *p = n; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        INV(len > 0);                    /* no empty component */
        INV(!(len == 1 && p[0] == '.')); /* no "." component */
        p += len + (e != NULL);
    }
}

static void check_tar(const struct vd_tar *t, uint64_t file_size)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct vd_tar_member *m = &t->m[i];
        uint64_t end;
        INV(m->offset % VD_TAR_BLOCK == 0 && m->hdr_offset % VD_TAR_BLOCK == 0);
        INV(m->offset >= m->hdr_offset + VD_TAR_BLOCK);
        INV(!__builtin_add_overflow(m->offset, m->size, &end) && end <= file_size);
        check_name(m->name);
        INV(m->unsafe == has_dotdot(m->name));
        /* archive order: the next member's headers start after this data */
        if (i + 1 < t->n)
            INV(t->m[i + 1].hdr_offset >= m->offset + m->size);
        const struct vd_tar_member *f = vd_tar_find(t, m->name);
        if (m->unsafe)
            INV(f == NULL || !f->unsafe);
        if (f) {
            INV(!f->unsafe);
            INV(strcmp(f->name, m->name) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vd_error err = {0};
    struct vd_tar_header h;
    if (size >= VD_TAR_BLOCK) {
        (void)vd_tar_probe(data, size);
        (void)vd_tar_parse_header(data, VD_TAR_BLOCK, "fuzz", 0, &h, &err);
    }
    struct vd_tar_pax pax = {0};
    vd_err_clear(&err);
    (void)vd_tar_parse_pax(data, size, "fuzz", 0, &pax, &err);
    vd_tar_pax_clear(&pax);

    struct vd_io *io;
    if (vd_io_mem_open(data, size, "fuzz.ova", &io, &err) < 0)
        return 0;
    struct vd_tar tar;
    vd_err_clear(&err);
    bool walked = vd_tar_walk(io, &tar, &err) == 0;
    if (walked)
        check_tar(&tar, size);
    else
        INV(err.code != 0 && err.msg[0]);
    struct vd_ova *ova = NULL;
    vd_err_clear(&err);
    if (vd_ova_open(io, &ova, &err) == 0) {
        struct vd_json j;
        vd_json_init(&j);
        vd_json_obj_begin(&j, NULL);
        vd_ova_info(ova, &j);
        vd_json_obj_end(&j);
        free(vd_json_finish(&j));
        vd_err_clear(&err);
        (void)vd_ova_check(ova, fuzz_check_cb, NULL, &err);
        /* every disk is exactly one safe member's data window */
        INV(walked);
        for (size_t d = 0; d < ova->ndisks; d++) {
            bool found = false;
            for (size_t i = 0; i < tar.n && !found; i++)
                found = !tar.m[i].unsafe && tar.m[i].offset == ova->disks[d].offset &&
                        tar.m[i].size == ova->disks[d].size;
            INV(found);
        }
        vd_ova_close(ova);
    }
    if (walked)
        vd_tar_free(&tar);
    vd_io_unref(io);
    return 0;
}
