/*
 * libFuzzer target for the two byte parsers of the Windows fixup
 * (src/fixup/windows.c): the REG_MULTI_SZ address list reader, with every
 * output size from 0 to 40, and the hive base block's clean/dirty check.
 * Invariants: the output is always NUL-terminated within its size, and a
 * list without any address other than 0.0.0.0 never claims one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/fixup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    char out[41];
    bool first = vd_fixup_win_multisz_addrs(copy, size, out, sizeof(out));
    if (!memchr(out, '\0', sizeof(out)))
        abort();
    for (size_t cap = 0; cap < sizeof(out); cap++) {
        memset(out, 'x', sizeof(out));
        if (vd_fixup_win_multisz_addrs(copy, size, cap ? out : NULL, cap) != first)
            abort(); /* the answer must not depend on the output size */
        if (cap && !memchr(out, '\0', cap))
            abort();
    }
    int clean = vd_fixup_win_hive_clean((const unsigned char *)copy, size);
    if (clean != -22 && clean != 0 && clean != 1)
        abort();
    free(copy);
    return 0;
}
