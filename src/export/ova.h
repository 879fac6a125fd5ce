/*
 * The OVA encoder's option keys and targets (issue 13), called by the
 * export core: vd_export_opt hands it the vm_* keys, export_begin asks it
 * which target= names it honours.
 */
#ifndef VD_EXPORT_OVA_H
#define VD_EXPORT_OVA_H

#include <stdbool.h>

#include "vdisk/error.h"
#include "vdisk/export.h"

/* vd_export_opt for the vm_* keys: 1 consumed, 0 not an OVA key, -EINVAL. */
int vd_export_ova_opt(struct vd_export_opts *o, const char *key, const char *val,
                      struct vd_error *err);
/* Is target (esxi-X.Y, vmware[-X.Y], vcenter-X.Y, virtualbox, dmtf) one the
 * OVA encoder honours? */
bool vd_export_ova_target_known(const char *target);

#endif
