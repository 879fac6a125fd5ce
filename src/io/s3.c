/* S3/HTTP backend: not built yet (issue 5). */
#include <errno.h>

#include "io/io.h"

int vd_io_remote_open(const char *uri, const struct vd_open_opts *opts, struct vd_io **out,
                      struct vd_error *err)
{
    (void)opts;
    (void)out;
    return vd_err(err, -ENOTSUP, "%s: S3 and HTTP sources are not supported yet", uri);
}
