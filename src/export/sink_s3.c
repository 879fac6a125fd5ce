/* S3 multipart sink: placeholder until the S3 helper lands it (returns -ENOTSUP). */
#include <errno.h>

#include "export/sink.h"

int vd_sink_s3_open(const char *uri, const struct vd_open_opts *opts, struct vd_sink **out,
                    struct vd_error *err)
{
    (void)opts;
    *out = NULL;
    return vd_err(err, -ENOTSUP, "export: %s: S3 destinations are not supported yet", uri);
}
