/*
 * Fuzz the OVA container path on a memory io: the tar walk (headers, pax,
 * GNU long names, base-256), then, when it holds an .ovf, the OVA open
 * (OVF parse, href lookup), the info JSON and the manifest check. Also
 * feeds the first block to the header parser and the whole input to the
 * pax record parser.
 */
#include <stdint.h>
#include <stdlib.h>

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
    if (vd_tar_walk(io, &tar, &err) == 0) {
        for (size_t i = 0; i < tar.n; i++)
            (void)vd_tar_find(&tar, tar.m[i].name);
        vd_tar_free(&tar);
    }
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
        vd_ova_close(ova);
    }
    vd_io_unref(io);
    return 0;
}
