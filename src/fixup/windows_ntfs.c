/*
 * Windows fixup inside a vdiskfs view, without a kernel mount: the NTFS
 * partition file of the view (disk-pN.raw) that holds
 * Windows/System32/config/SYSTEM is opened with libntfs-3g (the library of
 * ntfs-3g and ntfsprogs), and the hive is edited by the same code as with
 * --root (windows.c), on a copy in a host temporary folder:
 *
 *   MNT/name/disk-p2.raw --ntfs_mount()--> /Windows/System32/config/
 *        SYSTEM --read--> $TMPDIR/vdisk-hive.XXXXXX/SYSTEM --hivex--> new bytes
 *        SYSTEM.vdisk.orig   new file: the original bytes (written first)
 *        SYSTEM              rewritten in place with the new bytes
 *
 * Lookups go through libntfs-3g from the volume's root, so nothing leaves
 * the guest. libntfs-3g refuses a volume that Windows hibernated or left
 * with fast startup (it would be overwritten at the next boot); the
 * message says so. Names are matched as NTFS does: Win32 names without
 * regard to case, POSIX names (made by ntfs-3g) exactly.
 *
 * Not supported: compressed or encrypted hive files (libntfs-3g reads
 * compressed ones but we do not rewrite them), a hive over 1 GiB.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixup/fixup_int.h"
#include "fixup/windows.h"

#if defined(HAVE_NTFS3G) && defined(HAVE_HIVEX)
#include <ntfs-3g/types.h>

#include <ntfs-3g/attrib.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/logging.h>
#include <ntfs-3g/unistr.h>
#include <ntfs-3g/volume.h>

#define NTFS_CFG      "/Windows/System32/config"
#define NTFS_MAX_HIVE (1ull << 30)

static int nt_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether the partition file starts with an NTFS boot sector. */
static bool nt_is_ntfs(const char *path)
{
    unsigned char b[11];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = pread(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b) && !memcmp(b + 3, "NTFS    ", 8);
    close(fd);
    return ok;
}

static bool nt_has_hive(const char *path)
{
    ntfs_volume *vol = ntfs_mount(path, NTFS_MNT_RDONLY | NTFS_MNT_IGNORE_HIBERFILE);
    if (!vol)
        return false;
    ntfs_inode *ni = ntfs_pathname_to_inode(vol, NULL, NTFS_CFG "/SYSTEM");
    bool ok = ni != NULL;
    if (ni)
        ntfs_inode_close(ni);
    ntfs_umount(vol, FALSE);
    return ok;
}

/* The first partition file (in name order) that is an NTFS holding the
 * hive, into path; 0 found, -ENOENT none, -errno. */
static int nt_find(const char *view, char *path, size_t cap, struct vd_error *err)
{
    DIR *dh = opendir(view);
    if (!dh)
        return vd_err(err, -errno, "fixup: %s: %s", view, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    int rc = -ENOENT;
    struct dirent *de;
    while ((de = readdir(dh))) {
        unsigned d, p;
        if (!vd_fx_view_name(de->d_name, &d, &p))
            continue;
        char **nl = realloc(names, (n + 1) * sizeof(*nl));
        if (!nl || !(nl[n] = strdup(de->d_name))) {
            if (nl)
                names = nl;
            rc = vd_err(err, -ENOMEM, "fixup: out of memory");
            break;
        }
        names = nl;
        n++;
    }
    closedir(dh);
    if (names)
        qsort(names, n, sizeof(*names), nt_cmp);
    for (size_t i = 0; i < n && rc == -ENOENT; i++) {
        snprintf(path, cap, "%s/%s", view, names[i]);
        if (nt_is_ntfs(path) && nt_has_hive(path))
            rc = 0;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Read the unnamed data stream of ni (malloc'd). */
static int nt_read(ntfs_inode *ni, char **data, size_t *len, const char *label,
                   struct vd_error *err)
{
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na)
        return vd_err(err, -errno, "fixup: %s: no data stream: %s", label, strerror(errno));
    int rc = 0;
    if (na->data_size < 0 || (unsigned long long)na->data_size > NTFS_MAX_HIVE) {
        rc = vd_err(err, -EFBIG, "fixup: %s: %lld bytes, more than a registry hive can be", label,
                    (long long)na->data_size);
        goto out;
    }
    *len = (size_t)na->data_size;
    *data = malloc(*len ? *len : 1);
    if (!*data) {
        rc = vd_err(err, -ENOMEM, "fixup: out of memory");
        goto out;
    }
    if (ntfs_attr_pread(na, 0, (s64)*len, *data) != (s64)*len) {
        rc = vd_err(err, -EIO, "fixup: %s: short read: %s", label, strerror(errno));
        free(*data);
        *data = NULL;
    }
out:
    ntfs_attr_close(na);
    return rc;
}

/* Replace ni's data with data[0..len). */
static int nt_write(ntfs_inode *ni, const char *data, size_t len)
{
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na)
        return -errno;
    int rc = 0;
    if (ntfs_attr_truncate(na, (s64)len) < 0 ||
        (len && ntfs_attr_pwrite(na, 0, (s64)len, data) != (s64)len))
        rc = -(errno ? errno : EIO);
    ntfs_attr_close(na);
    return rc;
}

/* Host file name -> data of a whole file. */
static int nt_slurp(int dfd, const char *name, char **data, size_t *len)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len ? *len : 1);
    if (!*data) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t got = 0; got < *len;) {
        ssize_t r = read(fd, *data + got, *len - got);
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            free(*data);
            *data = NULL;
            break;
        }
        got += (size_t)r;
    }
out:
    close(fd);
    return rc;
}

static int nt_spill(int dfd, const char *name, const char *data, size_t len)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t o = 0; o < len && rc == 0;) {
        ssize_t w = write(fd, data + o, len - o);
        if (w < 0)
            rc = -errno;
        else
            o += (size_t)w;
    }
    close(fd);
    return rc;
}

/* Create the backup SYSTEM.vdisk.orig (.2, .3... if taken) in cfg with
 * the original bytes; its name into bname. */
static int nt_backup(ntfs_inode *cfg, const char *data, size_t len, char *bname, size_t cap)
{
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(bname, cap, "SYSTEM.vdisk.orig");
        else
            snprintf(bname, cap, "SYSTEM.vdisk.orig.%d", i);
        errno = 0;
        if (ntfs_inode_lookup_by_mbsname(cfg, bname) != (u64)-1)
            continue;
        if (errno != ENOENT)
            return -(errno ? errno : EIO);
        ntfschar *u = NULL;
        int ulen = ntfs_mbstoucs(bname, &u);
        if (ulen <= 0)
            return -EINVAL;
        ntfs_inode *ni = ntfs_create(cfg, const_cpu_to_le32(0), u, (u8)ulen, S_IFREG);
        free(u);
        if (!ni)
            return -(errno ? errno : EIO);
        int rc = nt_write(ni, data, len);
        /* the parent is open: its index gets the new name's sizes */
        if (ntfs_inode_close_in_dir(ni, cfg) < 0 && rc == 0)
            rc = -(errno ? errno : EIO);
        return rc;
    }
    return -EEXIST;
}

static void nt_rmtmp(int dfd, const char *dir)
{
    static const char *const names[] = {"SYSTEM", "SYSTEM.vdisk.orig", ".SYSTEM.vdisk-tmp"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlinkat(dfd, names[i], 0);
    close(dfd);
    rmdir(dir);
}

int vd_fixup_windows_view(const char *view, const struct vd_fixup_opts *opts, vd_fixup_report_cb cb,
                          void *opaque, bool *found, struct vd_error *err)
{
    *found = false;
    if (opts && opts->profile && strcmp(opts->profile, "aws"))
        return vd_err(err, -ENOTSUP, "fixup: profile '%s' is not known (only 'aws')",
                      opts->profile);
    /* the library never prints (VD_NTFS_DEBUG=1: libntfs-3g's own messages) */
    ntfs_log_set_handler(getenv("VD_NTFS_DEBUG") ? ntfs_log_handler_stderr : ntfs_log_handler_null);
    char path[4096];
    int rc = nt_find(view, path, sizeof(path), err);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    *found = true;
    bool dry = opts && opts->dry_run;
    if (!dry) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return vd_err(err,
                          errno == EROFS || errno == EACCES || errno == EPERM ? -EROFS : -errno,
                          "fixup: %s: the view is read-only (%s); mount the source with "
                          "vdiskfs -o overlay=FILE (any source; the edits go to FILE, the "
                          "source stays untouched) or -o rw (a local VMDK, VHD, VHDX or raw "
                          "file, edited in place), or mount the NTFS with ntfs-3g and use "
                          "--root DIR",
                          path, strerror(errno));
        close(fd);
    }
    char label[4400];
    snprintf(label, sizeof(label), "%s:" NTFS_CFG "/SYSTEM", path);
    errno = 0;
    ntfs_volume *vol = ntfs_mount(path, dry ? NTFS_MNT_RDONLY : NTFS_MNT_NONE);
    if (!vol) {
        int e = errno ? errno : EIO;
        return vd_err(err, e == EPERM ? -EBUSY : -e,
                      e == EPERM ? "fixup: %s: libntfs-3g will not write to this NTFS: Windows "
                                   "hibernated it or left it with fast startup (boot Windows and "
                                   "shut it down fully: shutdown /s /t 0)"
                                 : "fixup: %s: libntfs-3g cannot open it: %s",
                      path, strerror(e));
    }
    if (cb) {
        struct vd_fixup_change ch = {.path = path,
                                     .action = "root",
                                     .why =
                                         "the Windows partition (NTFS, edited with libntfs-3g)\n"};
        cb(opaque, &ch);
    }
    char *orig = NULL, *neu = NULL;
    size_t olen = 0, nlen = 0;
    struct vd_fixup_buf why = {0};
    char tdir[4096], bname[300];
    int tfd = -1;
    ntfs_inode *cfg = ntfs_pathname_to_inode(vol, NULL, NTFS_CFG);
    ntfs_inode *sys = cfg ? ntfs_pathname_to_inode(vol, cfg, "SYSTEM") : NULL;
    if (!sys) {
        rc = vd_err(err, -ENOENT, "fixup: %s: not found", label);
        goto out;
    }
    if ((rc = nt_read(sys, &orig, &olen, label, err)) < 0)
        goto out;
    const char *tmp = getenv("TMPDIR");
    snprintf(tdir, sizeof(tdir), "%s/vdisk-hive.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tdir)) {
        rc = vd_err(err, -errno, "fixup: %s: %s", tdir, strerror(errno));
        goto out;
    }
    tfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tfd < 0 || (rc = nt_spill(tfd, "SYSTEM", orig, olen)) < 0) {
        rc = vd_err(err, tfd < 0 ? -errno : rc, "fixup: %s/SYSTEM: %s", tdir,
                    strerror(tfd < 0 ? errno : -rc));
        goto out_tmp;
    }
    rc = vd_fx_win_fix(tfd, "SYSTEM", label, dry, &why, bname, sizeof(bname), err);
    if (rc <= 0 || dry)
        goto report;
    if ((rc = nt_slurp(tfd, "SYSTEM", &neu, &nlen)) < 0) {
        rc = vd_err(err, rc, "fixup: %s/SYSTEM: %s", tdir, strerror(-rc));
        goto out_tmp;
    }
    /* the backup first: if it cannot be made, the hive is not touched */
    if ((rc = nt_backup(cfg, orig, olen, bname, sizeof(bname))) < 0) {
        rc = vd_err(err, rc, "fixup: %s: keeping the original: %s", label,
                    rc == -EEXIST ? "99 backups exist already" : strerror(-rc));
        goto out_tmp;
    }
    if ((rc = nt_write(sys, neu, nlen)) < 0) {
        rc = vd_err(err, rc, "fixup: %s: writing the new hive: %s (the original is in %s)", label,
                    strerror(-rc), bname);
        goto out_tmp;
    }
    rc = 1;
report:
    if (rc > 0 && cb) {
        struct vd_fixup_change ch = {.path = NTFS_CFG "/SYSTEM",
                                     .action = "rewritten",
                                     .why = why.data,
                                     .backup = dry ? NULL : bname};
        cb(opaque, &ch);
    }
out_tmp:
    nt_rmtmp(tfd, tdir);
out:
    vd_fixup_buf_free(&why);
    free(orig);
    free(neu);
    if (sys && ntfs_inode_close_in_dir(sys, cfg) < 0 && rc >= 0)
        rc = vd_err(err, -EIO, "fixup: %s: writing the file record: %s", label, strerror(errno));
    if (cfg)
        ntfs_inode_close(cfg);
    if (ntfs_umount(vol, FALSE) < 0 && rc >= 0)
        rc = vd_err(err, -EIO, "fixup: %s: writing the volume's metadata: %s", path,
                    strerror(errno));
    return rc;
}

#else /* no libntfs-3g or no hivex */

int vd_fixup_windows_view(const char *view, const struct vd_fixup_opts *opts, vd_fixup_report_cb cb,
                          void *opaque, bool *found, struct vd_error *err)
{
    *found = false; /* the ext2/3/4 path then reports what it finds */
    return 0;
}

#endif
