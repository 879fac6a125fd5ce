/*
 * Permissions of the views (viewperm.h; docs/vdiskfs.1, PERMISSIONS).
 *
 * The rule: a view is as open as its source, never more.
 *   - owner and group are the source's;
 *   - read bits are the source's, less those of a class (owner, group,
 *     other) that a directory on the source's real path does not let search;
 *   - write bits: none on a read-only view; the source's (reach-masked) on
 *     an -o rw view, whose writes land in the source;
 *   - with -o overlay=FILE the writes land in the mounting user's FILE, not
 *     in the source: the views become the mounting user's, owner rw, and
 *     group and others keep only the source's (reach-masked) read bits;
 *   - execute, setuid, setgid and sticky bits are never copied (a disk view
 *     is data); directories get x where they have r.
 * One exception keeps a mount usable by the user who made it: a mounting
 * user other than root who opened the source but would be refused by the
 * rule (their access came through a directory group we cannot see from
 * the mode bits, or an ACL) owns the views instead, with the access they
 * had. Nobody else gains anything from it.
 */
#include "viewperm.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VIEWPERM_MAX_GROUPS 256

mode_t viewperm_reach_mask(const struct stat *file, const struct stat *dirs, size_t ndirs)
{
    mode_t mask = 0777;
    for (size_t i = 0; i < ndirs; i++) {
        const struct stat *d = &dirs[i];
        bool same_uid = d->st_uid == file->st_uid, same_gid = d->st_gid == file->st_gid;
        /* Which of the directory's classes can a user of each of the file's
         * classes fall in? The file's owner: the directory's owner class
         * when they own it too, else its group or other class (we do not
         * know the owner's groups, so both must allow). A member of the
         * file's group: the directory's owner, its group, and its other
         * class unless the groups are the same. Any other user: all three,
         * less those the file's owner and group exclude. */
        mode_t need_owner = same_uid ? S_IXUSR : S_IXGRP | S_IXOTH;
        mode_t need_group = (same_uid ? 0 : S_IXUSR) | S_IXGRP | (same_gid ? 0 : S_IXOTH);
        mode_t need_other = (same_uid ? 0 : S_IXUSR) | (same_gid ? 0 : S_IXGRP) | S_IXOTH;
        if ((d->st_mode & need_owner) != need_owner)
            mask &= ~(mode_t)S_IRWXU;
        if ((d->st_mode & need_group) != need_group)
            mask &= ~(mode_t)S_IRWXG;
        if ((d->st_mode & need_other) != need_other)
            mask &= ~(mode_t)S_IRWXO;
    }
    return mask;
}

static bool viewperm_in_group(const struct viewperm_cred *c, gid_t gid)
{
    if (c->gid == gid)
        return true;
    for (size_t i = 0; i < c->ngroups; i++)
        if (c->groups[i] == gid)
            return true;
    return false;
}

bool viewperm_may(const struct viewperm_attr *a, const struct viewperm_cred *cred, int want)
{
    if (cred->uid == 0)
        return true;
    int shift = cred->uid == a->uid ? 6 : viewperm_in_group(cred, a->gid) ? 3 : 0;
    mode_t have = (a->mode >> shift) & 07, need = 0;
    if (want & R_OK)
        need |= 04;
    if (want & W_OK)
        need |= 02;
    return (have & need) == need;
}

/* r-x for every class that may read. */
static mode_t viewperm_dir_mode(mode_t files)
{
    mode_t r = files & 0444;
    return r | (r >> 2);
}

static void viewperm_set_dir(struct viewperm *out)
{
    out->dir.uid = out->data.uid;
    out->dir.gid = out->data.gid;
    out->dir.mode = viewperm_dir_mode(out->data.mode | out->disk.mode);
}

void viewperm_private(enum viewperm_kind kind, const struct viewperm_cred *me, struct viewperm *out)
{
    out->data = (struct viewperm_attr){me->uid, me->gid, 0400};
    out->disk = out->data;
    if (kind != VIEWPERM_RO)
        out->disk.mode = 0600;
    viewperm_set_dir(out);
}

void viewperm_from_stat(const struct stat *file, mode_t reach, enum viewperm_kind kind,
                        const struct viewperm_cred *me, struct viewperm *out)
{
    mode_t r = file->st_mode & 0444 & reach, w = file->st_mode & 0222 & reach;
    out->data = (struct viewperm_attr){file->st_uid, file->st_gid, r};
    out->disk = out->data;
    if (kind == VIEWPERM_RW)
        out->disk.mode = r | w;
    if (kind == VIEWPERM_OVERLAY) {
        /* The mounting user read the source to open it, and the overlay
         * that takes the writes is theirs. */
        out->data = (struct viewperm_attr){me->uid, file->st_gid, S_IRUSR | (r & 0044)};
        out->disk = out->data;
        out->disk.mode |= S_IWUSR;
    }
    int want = kind == VIEWPERM_RO ? R_OK : R_OK | W_OK;
    if (!viewperm_may(&out->data, me, R_OK) || !viewperm_may(&out->disk, me, want)) {
        out->data.uid = out->disk.uid = me->uid;
        out->data.mode |= S_IRUSR;
        out->disk.mode |= kind == VIEWPERM_RO ? S_IRUSR : S_IRUSR | S_IWUSR;
    }
    viewperm_set_dir(out);
}

static bool viewperm_is_remote(const char *uri)
{
    return !strncmp(uri, "s3://", 5) || !strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8);
}

/* stat every directory above `real` (an absolute path from realpath):
 * "/a/b/f" gives "/a/b", "/a" and "/". 0 or -errno. */
static int viewperm_stat_dirs(const char *real, struct stat **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = real; *p; p++)
        cap += *p == '/';
    struct stat *dirs = calloc(cap, sizeof(*dirs));
    char *path = strdup(real);
    int r = 0;
    *n = 0;
    if (!dirs || !path) {
        r = -ENOMEM;
        goto out;
    }
    for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
        if (slash == path) {
            if (!path[1])
                break; /* "/" done */
            slash[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (*n == cap || stat(path, &dirs[*n]) != 0) {
            r = *n == cap ? -EOVERFLOW : -errno;
            goto out;
        }
        (*n)++;
    }
out:
    free(path);
    if (r < 0) {
        free(dirs);
        dirs = NULL;
        *n = 0;
    }
    *out = dirs;
    return r;
}

void viewperm_for_source(const char *uri, enum viewperm_kind kind, struct viewperm *out)
{
    gid_t groups[VIEWPERM_MAX_GROUPS];
    int ng = getgroups(VIEWPERM_MAX_GROUPS, groups);
    struct viewperm_cred me = {getuid(), getgid(), groups, ng > 0 ? (size_t)ng : 0};
    struct stat st;
    char *real = NULL;
    struct stat *dirs = NULL;
    size_t ndirs = 0;

    if (viewperm_is_remote(uri) || stat(uri, &st) != 0 || !(real = realpath(uri, NULL)) ||
        viewperm_stat_dirs(real, &dirs, &ndirs) < 0) {
        viewperm_private(kind, &me, out);
    } else {
        viewperm_from_stat(&st, viewperm_reach_mask(&st, dirs, ndirs), kind, &me, out);
    }
    free(dirs);
    free(real);
}
