/* First-error-wins message recording; see include/vdisk/error.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vdisk/error.h"

int vd_err(struct vd_error *err, int code, const char *fmt, ...)
{
    if (!err || err->code != 0)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void vd_err_clear(struct vd_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
