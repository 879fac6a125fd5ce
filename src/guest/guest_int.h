/*
 * Library-internal helpers of src/guest/ for src/core/source.c.
 */
#ifndef VD_GUEST_GUEST_INT_H
#define VD_GUEST_GUEST_INT_H

#include "common/json.h"
#include "vdisk/guest.h"

/* Add "block_devices", "volume_groups" and "guest_warnings" to the open
 * top-level object of the info JSON (docs/info-json.md). */
void vd_guest_info_json(const struct vd_guest *g, struct vd_json *j);

#endif
