/*
 * Internal: the Windows registry fixup shared by windows.c (--root on a
 * host folder) and windows_ntfs.c (an NTFS partition of a vdiskfs view,
 * through libntfs-3g, where the hive is edited in a host temporary folder).
 */
#ifndef VD_FIXUP_WINDOWS_H
#define VD_FIXUP_WINDOWS_H

#include <stdbool.h>
#include <stddef.h>

#include "vdisk/fixup.h"

/* Edit the hive sysname in the folder cfgfd: refuse a dirty or foreign
 * hive, apply the AWS profile's edits with hivex and, unless dry, write it
 * back (temporary file renamed over it, original kept as sysname.vdisk.orig,
 * the backup's name in bname). label names the hive in messages. On
 * success *why holds one line per change (caller frees). Returns 1 if the
 * hive changed (or would), 0 if nothing to do, -errno with err set. */
int vd_fx_win_fix(int cfgfd, const char *sysname, const char *label, bool dry,
                  struct vd_fixup_buf *why, char *bname, size_t bcap, struct vd_error *err);

#endif
