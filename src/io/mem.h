/*
 * Memory io backend (src/io/mem.c): a read-only io over a caller's buffer,
 * used by fuzzers and unit tests. The buffer is not copied and must outlive
 * the io. open_relative is not supported (extents/parents fail -ENOTSUP).
 */
#ifndef VD_IO_MEM_H
#define VD_IO_MEM_H

#include <stddef.h>

#include "io/io.h"

int vd_io_mem_open(const void *buf, size_t len, const char *name, struct vd_io **out,
                   struct vd_error *err);

#endif
