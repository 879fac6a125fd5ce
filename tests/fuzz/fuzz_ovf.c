/*
 * Fuzz the OVF descriptor parser (libxml2 underneath) on (buf, len), and
 * the allocation-unit parser on a NUL-terminated copy of the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ovf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vd_error err = {0};
    struct vd_ovf *o = NULL;
    if (vd_ovf_parse((const char *)data, size, "fuzz.ovf", &o, &err) == 0) {
        for (size_t i = 0; i < o->ndisks; i++)
            if (o->disks[i].file_ref)
                (void)vd_ovf_find_file(o, o->disks[i].file_ref);
        vd_ovf_free(o);
    }
    if (size < 256) {
        char s[256];
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t m;
        (void)vd_ovf_units(s, &m);
    }
    return 0;
}
