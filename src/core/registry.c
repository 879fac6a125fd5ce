/* The static table of format drivers. Probing picks the highest score; raw
 * (score 1) is last and always matches. */
#include <string.h>

#include "core/driver.h"

const struct vd_format_ops *const vd_formats[] = {
    &vd_format_vmdk, &vd_format_vhdx, &vd_format_vhd, &vd_format_raw, NULL,
};

const struct vd_format_ops *vd_format_find(const char *name)
{
    for (size_t i = 0; vd_formats[i]; i++)
        if (!strcmp(vd_formats[i]->name, name))
            return vd_formats[i];
    return NULL;
}
