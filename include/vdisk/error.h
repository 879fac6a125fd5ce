/*
 * Error reporting for libvdisk.
 *
 * Functions named as commands return 0 or -errno and, on failure, fill a
 * struct vd_error. The first error wins: later calls to vd_err() on the same
 * struct keep the original message, so the innermost, most precise cause
 * reaches the user. Messages read "<component>: <object>: <what>: <detail>",
 * e.g. "vmdk: disk.vmdk: grain directory offset 1234 is past end of file".
 *
 * -EINVAL: corrupt input.  -ENOTSUP: valid but unsupported.  -EIO: backend.
 * The library never prints.
 */
#ifndef VDISK_ERROR_H
#define VDISK_ERROR_H

#include <stdbool.h>

#define VD_ERROR_MAX 512

struct vd_error {
    int code;               /* -errno of the first failure, 0 if none */
    char msg[VD_ERROR_MAX]; /* human-readable, NUL-terminated */
};

/* Record an error (if none is recorded yet) and return code (a -errno value).
 * err may be NULL. */
int vd_err(struct vd_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear a previously recorded error. */
void vd_err_clear(struct vd_error *err);

static inline bool vd_err_isset(const struct vd_error *err)
{
    return err && err->code != 0;
}

#endif
