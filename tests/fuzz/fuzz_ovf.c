/*
 * Fuzz the OVF descriptor parser (libxml2 underneath) on (buf, len), and
 * the allocation-unit parser on a NUL-terminated copy of the input.
 *
 * Invariants (issue 9): a parsed descriptor stays inside its caps (items,
 * capacity), every string it hands out is NUL-terminated and non-NULL
 * where the struct says so, a disk's fileRef is found only as a File of
 * that id, and a failed parse says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ovf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INV(c)                                                                                     \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vd_error err = {0};
    struct vd_ovf *o = NULL;
    if (vd_ovf_parse((const char *)data, size, "fuzz.ovf", &o, &err) == 0) {
        INV(o->nfiles <= VD_OVF_MAX_ITEMS && o->ndisks <= VD_OVF_MAX_ITEMS &&
            o->nnetworks <= VD_OVF_MAX_ITEMS);
        for (size_t i = 0; i < o->nfiles; i++) {
            INV(o->files[i].id && o->files[i].href);
            (void)strlen(o->files[i].id);
            (void)strlen(o->files[i].href);
        }
        for (size_t i = 0; i < o->ndisks; i++) {
            INV(o->disks[i].capacity <= VD_OVF_MAX_CAPACITY);
            if (!o->disks[i].file_ref)
                continue;
            const struct vd_ovf_file *f = vd_ovf_find_file(o, o->disks[i].file_ref);
            if (f)
                INV(strcmp(f->id, o->disks[i].file_ref) == 0);
        }
        if (o->has_memory)
            (void)o->memory_bytes;
        vd_ovf_free(o);
    } else {
        INV(err.code != 0 && err.msg[0]);
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
