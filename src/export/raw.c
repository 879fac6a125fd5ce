/*
 * raw encoder: the disk bytes themselves, exactly `size` bytes long. Holes
 * become holes in a local file (vd_sink_zeros) and zeros on S3. The last
 * chunk is held back until finish so it can be cut at the final size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "export/encoder.h"

struct raw_enc {
    uint8_t *pending; /* last chunk, not yet written */
    uint64_t pending_idx;
    bool has_pending;
};

static int raw_begin(struct vd_encoder *enc, struct vd_error *err)
{
    struct raw_enc *w = enc->priv;
    if (!(w->pending = malloc(VD_EXPORT_CHUNK)))
        return vd_err(err, -ENOMEM, "raw: %s: out of memory", enc->base);
    return 0;
}

static int raw_flush(struct vd_encoder *enc, uint64_t limit, struct vd_error *err)
{
    struct raw_enc *w = enc->priv;
    if (!w->has_pending)
        return 0;
    uint64_t off = w->pending_idx * VD_EXPORT_CHUNK;
    uint64_t len = VD_MIN((uint64_t)VD_EXPORT_CHUNK, limit > off ? limit - off : 0);
    int r = vd_sink_zeros(enc->sink, off - enc->sink->pos, err);
    if (r == 0 && len)
        r = vd_sink_write(enc->sink, w->pending, (size_t)len, err);
    w->has_pending = false;
    return r;
}

static int raw_chunk(struct vd_encoder *enc, uint64_t idx, const uint8_t *data,
                     struct vd_error *err)
{
    struct raw_enc *w = enc->priv;
    int r = raw_flush(enc, UINT64_MAX, err);
    if (r < 0)
        return r;
    memcpy(w->pending, data, VD_EXPORT_CHUNK);
    w->pending_idx = idx;
    w->has_pending = true;
    return 0;
}

static int raw_finish(struct vd_encoder *enc, uint64_t size, struct vd_error *err)
{
    int r = raw_flush(enc, size, err);
    if (r == 0 && enc->sink->pos < size)
        r = vd_sink_zeros(enc->sink, size - enc->sink->pos, err);
    return r;
}

static void raw_free(struct vd_encoder *enc)
{
    struct raw_enc *w = enc->priv;
    free(w->pending);
}

const struct vd_encoder_ops vd_encoder_raw = {
    .name = "raw",
    .priv_size = sizeof(struct raw_enc),
    .max_size = 1ull << 62,
    .begin = raw_begin,
    .chunk = raw_chunk,
    .finish = raw_finish,
    .free = raw_free,
};
