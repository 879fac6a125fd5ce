/*
 * The bridge from the public open options to the io layer's own (issue 9:
 * src/io does not include the public header). Used where the core and the
 * export layer open ios.
 */
#ifndef VD_CORE_IOOPTS_H
#define VD_CORE_IOOPTS_H

#include "io/io.h"
#include "vdisk/vdisk.h"

_Static_assert(VD_IO_DATA == VD_STATUS_DATA && VD_IO_HOLE == VD_STATUS_ZERO,
               "io block status values match the public ones");

static inline struct vd_io_opts vd_io_opts_of(const struct vd_open_opts *o)
{
    struct vd_io_opts io = {0};
    if (o) {
        io.cache_size = o->cache_size;
        io.region = o->region;
        io.endpoint = o->endpoint;
        io.profile = o->profile;
        io.path_style = o->path_style;
    }
    return io;
}

#endif
