/*
 * Sink dispatch and the wrappers every sink shares (see sink.h): DEST with
 * an s3:// scheme goes to the S3 multipart sink, anything else is a local
 * path written under a temporary name.
 */
#include <errno.h>
#include <string.h>

#include "common/checked.h"
#include "export/sink.h"
#include "io/io.h"

int vd_sink_open(const char *dest, const struct vd_io_opts *opts, const struct vd_s3_target *near,
                 bool fsync, unsigned mode, struct vd_sink **out, struct vd_error *err)
{
    *out = NULL;
    if (!dest || !*dest)
        return vd_err(err, -EINVAL, "export: empty destination");
    if (strncmp(dest, "s3://", 5) == 0)
        return vd_sink_s3_open(dest, opts, near, out, err);
    if (strstr(dest, "://"))
        return vd_err(err, -ENOTSUP,
                      "export: %s: only local paths and s3:// destinations are supported", dest);
    return vd_sink_file_open(dest, fsync, mode, out, err);
}

int vd_sink_set_head(struct vd_sink *s, uint64_t head_len, struct vd_error *err)
{
    if (s->pos != 0)
        return vd_err(err, -EINVAL, "export: %s: head declared after %llu bytes were written",
                      s->name, (unsigned long long)s->pos);
    s->head_len = head_len;
    return 0;
}

int vd_sink_zeros(struct vd_sink *s, uint64_t len, struct vd_error *err)
{
    static const uint8_t zero[65536];
    if (s->ops->skip)
        return s->ops->skip(s, len, err);
    while (len > 0) {
        size_t n = (size_t)VD_MIN(len, (uint64_t)sizeof(zero));
        int r = s->ops->write(s, zero, n, err);
        if (r < 0)
            return r;
        len -= n;
    }
    return 0;
}

int vd_sink_commit(struct vd_sink *s, struct vd_error *err)
{
    return s->ops->commit(s, err);
}

void vd_sink_abort(struct vd_sink *s)
{
    if (s)
        s->ops->abort(s);
}

void vd_sink_free(struct vd_sink *s)
{
    if (s)
        s->ops->free(s);
}
