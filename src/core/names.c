/*
 * The files an image names: VMDK extents, VHD/VHDX/VMDK parents. Drivers
 * only say "my extent/parent is called X"; this file decides whether X may
 * be opened and opens it (docs/trust-boundary.md).
 *
 * One path policy. A name resolves only to a file inside the directory of
 * the image that names it, after symlinks and ".." are resolved, or inside a
 * directory the user allowed (vd_open_opts.allow_paths: vdiskfs -o
 * allow_path=DIR, vdisk --allow-path DIR). The open itself is
 * openat2(RESOLVE_BENEATH) on that directory, so a symlink swapped in
 * between the check and the open cannot leave it either. Remote sources
 * take names beside the object (same key prefix), without ".." segments.
 * This closes the class of CVE-2022-47951 (a VMDK flat extent naming
 * /etc/shadow served as the disk).
 *
 * Identity. Every file is compared by (st_dev, st_ino) with the files
 * already open in this image and along the chain being opened: a parent
 * that is an image below it (a loop, whatever its spelling) and a file
 * named twice (two extents sharing one sparse file would allocate the same
 * grains) are refused with a message that says so.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "core/driver.h"

/* Directory of a local io's file, symlinks resolved: where its names live. */
static int names_dir_of(const struct vd_io *io, char *out, struct vd_error *err)
{
    char tmp[PATH_MAX];
    const char *slash = strrchr(io->name, '/');
    if (!slash)
        snprintf(tmp, sizeof(tmp), ".");
    else if (slash == io->name)
        snprintf(tmp, sizeof(tmp), "/");
    else
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(slash - io->name), io->name);
    if (!realpath(tmp, out)) {
        int e = errno;
        return vd_err(err, -e, "%s: cannot resolve its directory: %s", io->name, strerror(e));
    }
    return 0;
}

/* If path (absolute, resolved) lies inside dir (resolved), point *rest at
 * the part below dir. */
static bool names_under(const char *path, const char *dir, const char **rest)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') {
        *rest = path + 1;
        return path[1] != '\0';
    }
    if (strncmp(path, dir, n) != 0 || path[n] != '/' || !path[n + 1])
        return false;
    *rest = path + n + 1;
    return true;
}

static bool names_has_dotdot(const char *s)
{
    for (const char *p = s; (p = strstr(p, "..")) != NULL; p += 2) {
        bool start = p == s || p[-1] == '/' || p[-1] == '\\';
        bool end = p[2] == '\0' || p[2] == '/' || p[2] == '\\';
        if (start && end)
            return true;
    }
    return false;
}

static int names_refuse(const struct vd_image *img, const char *what, const char *name,
                        const char *dir, struct vd_error *err)
{
    return vd_err(err, -EPERM,
                  "%s: %s '%s' resolves outside %s, the directory of the image that names it; "
                  "refused, as an image may only name files beside it (if you trust this image, "
                  "allow the directory holding that file with -o allow_path=DIR for vdiskfs or "
                  "--allow-path DIR for vdisk)",
                  img->name, what, name, dir);
}

/* Open name for img under the path policy. */
static int names_open_local(struct vd_image *img, const char *name, bool writable, const char *what,
                            struct vd_io **out, struct vd_error *err)
{
    char dir[PATH_MAX], full[PATH_MAX], resolved[PATH_MAX], allowed[PATH_MAX];
    const char *rest = NULL;
    struct vd_error e2 = {0};
    int r = names_dir_of(img->io, dir, err);
    if (r < 0)
        return r;
    if (!name[0])
        return vd_err(err, -EINVAL, "%s: %s has an empty file name", img->name, what);
    if (name[0] != '/') {
        r = vd_io_file_open_beneath(dir, name, writable, out, &e2);
        if (r != -EXDEV) {
            if (r < 0)
                vd_err(err, r, "%s", e2.msg);
            return r;
        }
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", dir, name) >= sizeof(full))
            return vd_err(err, -ENAMETOOLONG, "%s: %s: name too long", img->name, what);
    } else {
        snprintf(full, sizeof(full), "%s", name);
    }
    /* Absolute, or relative and leaving the directory: resolve it and see
     * whether it lands inside the image's directory or an allowed one. */
    if (!realpath(full, resolved)) {
        int e = errno;
        if (e != ENOENT)
            return vd_err(err, -e, "%s: %s '%s': %s", img->name, what, name, strerror(e));
        /* Say "not found" only for names the policy would allow. */
        return names_refuse(img, what, name, dir, err);
    }
    if (names_under(resolved, dir, &rest))
        return vd_io_file_open_beneath(dir, rest, writable, out, err);
    const char *const *ap = img->opts.allow_paths;
    for (size_t i = 0; ap && ap[i]; i++) {
        if (!realpath(ap[i], allowed))
            continue;
        if (names_under(resolved, allowed, &rest))
            return vd_io_file_open_beneath(allowed, rest, writable, out, err);
    }
    return names_refuse(img, what, name, dir, err);
}

static bool same_file(const struct vd_io *a, const struct vd_io *b)
{
    if (a == b)
        return true;
    if (a->id_ino || b->id_ino)
        return a->id_dev == b->id_dev && a->id_ino == b->id_ino;
    return a->ops == b->ops && !strcmp(a->name, b->name); /* remote: the URL */
}

/* The image (in this one or along the chain being opened) already holding
 * a file like io, or NULL. *as_file tells whether it is one of its named
 * files rather than its main file. */
static const struct vd_image *names_find(const struct vd_image *img, const struct vd_io *io,
                                         bool shared, bool *as_file)
{
    for (const struct vd_image *i = img; i; i = i->child) {
        if (same_file(i->io, io)) {
            *as_file = false;
            return i;
        }
        for (size_t k = 0; k < i->nfiles; k++)
            if (same_file(i->files[k], io)) {
                /* Raw windows of one file (FLAT extents at two offsets)
                 * may share it within an image; a file the image
                 * allocates in may not. */
                if (i == img && shared && i->files_shared[k])
                    continue;
                *as_file = true;
                return i;
            }
    }
    return NULL;
}

static int names_open(struct vd_image *img, const char *name, bool writable, const char *what,
                      struct vd_io **out, struct vd_error *err)
{
    if (vd_io_is_file(img->io))
        return names_open_local(img, name, writable, what, out, err);
    if (name[0] == '/' || names_has_dotdot(name))
        return vd_err(err, -EPERM,
                      "%s: %s '%s' is not a name beside the image (absolute or with '..'); "
                      "refused",
                      img->name, what, name);
    return vd_io_open_relative(img->io, name, writable, out, err);
}

/* Append io to img->files (consumes the reference, also on failure). */
static int names_keep(struct vd_image *img, struct vd_io *io, bool shared, struct vd_error *err)
{
    struct vd_io **f = realloc(img->files, (img->nfiles + 1) * sizeof(*f));
    if (!f) {
        vd_io_unref(io);
        return vd_err(err, -ENOMEM, "%s: out of memory", img->name);
    }
    img->files = f;
    bool *sh = realloc(img->files_shared, (img->nfiles + 1) * sizeof(*sh));
    if (!sh) {
        vd_io_unref(io);
        return vd_err(err, -ENOMEM, "%s: out of memory", img->name);
    }
    img->files_shared = sh;
    img->files_shared[img->nfiles] = shared;
    img->files[img->nfiles++] = io;
    return 0;
}

int vd_image_open_file(struct vd_image *img, const char *name, bool writable, bool shared,
                       const char *what, struct vd_io **out, struct vd_error *err)
{
    struct vd_io *io;
    int r = names_open(img, name, writable, what, &io, err);
    if (r < 0)
        return r;
    bool as_file;
    const struct vd_image *holder = names_find(img, io, shared, &as_file);
    if (holder) {
        r = vd_err(err, holder == img ? -EINVAL : -ELOOP,
                   "%s: %s names %s, which %s already %s; refused (a file may back one part of "
                   "one image only)",
                   img->name, what, io->name, holder == img ? "this image" : holder->name,
                   as_file ? "uses" : "is");
        vd_io_unref(io);
        return r;
    }
    if ((r = names_keep(img, io, shared, err)) < 0)
        return r;
    *out = io;
    return 0;
}

int vd_image_add_io(struct vd_image *img, struct vd_io *io, struct vd_error *err)
{
    return names_keep(img, io, false, err);
}

int vd_image_open_backing(struct vd_image *img, const char *rel, const char *fmt,
                          struct vd_error *err)
{
    struct vd_io *io;
    if (img->depth + 1 >= VD_MAX_CHAIN)
        return vd_err(err, -ELOOP, "%s: backing chain deeper than %d images at parent '%s'",
                      img->name, VD_MAX_CHAIN, rel);
    int r = names_open(img, rel, false, "parent", &io, err);
    if (r < 0)
        return r;
    bool as_file;
    const struct vd_image *holder = names_find(img, io, false, &as_file);
    if (holder) {
        if (holder == img && !as_file)
            r = vd_err(err, -ELOOP, "%s: names itself (as '%s') as its own parent: a loop",
                       img->name, rel);
        else
            r = vd_err(err, -ELOOP,
                       "%s: parent '%s' is %s, which is already open below it in this chain: a "
                       "loop; refused",
                       img->name, rel, holder->name);
        vd_io_unref(io);
        return r;
    }
    struct vd_open_opts o = img->opts;
    o.writable = false; /* parents are never written */
    o.format = fmt;
    const char *base = strrchr(io->name, '/');
    base = base ? base + 1 : io->name;
    char *name = strdup(base);
    if (!name) {
        vd_io_unref(io);
        return vd_err(err, -ENOMEM, "out of memory");
    }
    r = vd_image_open_child_of(io, name, &o, img, &img->backing, err);
    free(name);
    return r;
}
