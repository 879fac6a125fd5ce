/*
 * Fuzz the OVF descriptor parser (libxml2 underneath) on (buf, len), and
 * the allocation-unit parser on a NUL-terminated copy of the input.
 *
 * Invariants (issue 9): a parsed descriptor stays inside its caps (items,
 * capacity), every string it hands out is NUL-terminated and non-NULL
 * where the struct says so, a disk's fileRef is found only as a File of
 * that id, and a failed parse says why.
 *
 * The export's rebuild of a source descriptor (vd_ovf_rebuild, issue 13)
 * runs on every descriptor that parses with a disk that has a file: its
 * output is NUL-terminated at out_len, and with the size tokens filled in
 * it parses again, with exactly the carried disks' files in References.
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

static void fuzz_rebuild(const uint8_t *data, size_t size, size_t ndisks)
{
    static const size_t src_disk[2] = {0, 1};
    static const char *const hrefs[2] = {"disk1.vmdk", "disk2.vmdk"};
    struct vd_ovf_rebuild_opts ro = {
        .ndisks = ndisks, .src_disk = src_disk, .hrefs = hrefs, .target = "fuzz"};
    struct vd_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    if (vd_ovf_rebuild((const char *)data, size, "fuzz.ovf", &ro, &out, &out_len, &err) < 0) {
        INV(err.code != 0 && err.msg[0] && !out);
        return;
    }
    INV(out && strlen(out) == out_len);
    /* The encoder fills "#VDnnn#" tokens with sizes: do the same. */
    for (char *t = out; (t = strstr(t, "#VD")) != NULL;) {
        if (t + 7 <= out + out_len && t[6] == '#')
            memcpy(t, "4096000", 7);
        t += 3;
    }
    struct vd_ovf *o = NULL;
    struct vd_error err2 = {0};
    INV(vd_ovf_parse(out, out_len, "rebuilt.ovf", &o, &err2) == 0);
    INV(o->nfiles == ndisks);
    vd_ovf_free(o);
    free(out);
}

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
        size_t with_file = 0;
        for (size_t i = 0; i < o->ndisks; i++)
            with_file += o->disks[i].file_ref && vd_ovf_find_file(o, o->disks[i].file_ref);
        vd_ovf_free(o);
        if (with_file)
            fuzz_rebuild(data, size, with_file > 1 ? 2 : 1);
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
