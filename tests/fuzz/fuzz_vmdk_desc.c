/* libFuzzer target: the VMDK descriptor parser on arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formats/vmdk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vmdk_desc d;
    struct vd_error err = {0};
    if (vd_vmdk_desc_parse((const char *)data, size, "fuzz.vmdk", &d, &err) == 0) {
        for (size_t i = 0; i < d.nextents; i++)
            if (d.extents[i].file && !d.extents[i].file[0])
                __builtin_trap(); /* the parser promises non-empty names */
        vd_vmdk_desc_free(&d);
    } else if (err.code == 0 || !memchr(err.msg, '\0', sizeof(err.msg))) {
        __builtin_trap(); /* failures always carry a message */
    }
    return 0;
}
