/*
 * Owner, group and mode of the files vdiskfs shows for one source, so that
 * `-o allow_other` never lets a user read through the mount what they could
 * not read on the host (docs/vdiskfs.1, PERMISSIONS). The kernel enforces
 * them: vdiskfs always mounts with default_permissions.
 *
 * Pure functions over struct stat, plus viewperm_for_source(), which stats
 * the source and the directories above it; vdiskfs.c calls it once per
 * source before mounting and copies the result in getattr.
 */
#ifndef VDISKFS_VIEWPERM_H
#define VDISKFS_VIEWPERM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Who mounts: uid 0 passes every check, as the kernel's DAC override does. */
struct viewperm_cred {
    uid_t uid;
    gid_t gid;
    const gid_t *groups; /* supplementary groups */
    size_t ngroups;
};

struct viewperm_attr {
    uid_t uid;
    gid_t gid;
    mode_t mode; /* permission bits only (no S_IFMT, never setuid/sticky) */
};

/* How the disk views of a mount may be written. */
enum viewperm_kind {
    VIEWPERM_RO,      /* default: nothing is writable */
    VIEWPERM_RW,      /* -o rw: writes go through to the source */
    VIEWPERM_OVERLAY, /* -o overlay=FILE: writes go to the mounting user's FILE */
};

struct viewperm {
    struct viewperm_attr data; /* info.json, the .ovf: never writable */
    struct viewperm_attr disk; /* diskN.raw and its partitions */
    struct viewperm_attr dir;  /* MNT/<name>/ */
};

/* The bits of `file`'s mode that survive the directories above it (dirs[]):
 * a class (owner, group, other) of the file keeps its bits only if every
 * directory lets every user of that class search it. Conservative: bits the
 * host might grant through a group we cannot see are removed, none added. */
mode_t viewperm_reach_mask(const struct stat *file, const struct stat *dirs, size_t ndirs);

/* Would `cred` get `want` (R_OK, W_OK, or both) on a file with `a`? The
 * kernel's rule: owner bits for the owner, else group bits for a member of
 * the group, else other bits. */
bool viewperm_may(const struct viewperm_attr *a, const struct viewperm_cred *cred, int want);

/* The views of a local source whose stat is `file`, `reach` from
 * viewperm_reach_mask(), for a mount by `me`. */
void viewperm_from_stat(const struct stat *file, mode_t reach, enum viewperm_kind kind,
                        const struct viewperm_cred *me, struct viewperm *out);

/* The views of a source with no owner or mode to copy (s3://, http(s)://,
 * or a local file that can no longer be stat'ed): the mounting user's,
 * 0400 (0600 when writable), as only their credentials reached it. */
void viewperm_private(enum viewperm_kind kind, const struct viewperm_cred *me,
                      struct viewperm *out);

/* Everything above for `uri` as given on the command line: stats a local
 * path and every directory of its real path, and uses the caller's
 * credentials (getuid, getgid, getgroups). Never fails: when a stat does,
 * the views are private (viewperm_private). */
void viewperm_for_source(const char *uri, enum viewperm_kind kind, struct viewperm *out);

#endif
