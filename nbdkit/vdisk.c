/*
 * nbdkit-vdisk-plugin: serve the views of any source libvdisk opens (VMDK,
 * VHD, VHDX, OVA, raw; local, S3 or HTTP; differencing chains) over NBD.
 * The third thin face over libvdisk, beside vdiskfs and vdisk: everything
 * here is configuration, the nbdkit callbacks, and errno mapping.
 *
 *   nbdkit vdisk SOURCE [disk=N|device=NAME] [overlay=FILE] [S3 options]
 *
 * Exports are the mount's files without ".raw": "disk" (or "disk1",
 * "disk2"... for several disks), partitions "disk-p1", LVM volumes
 * "lvm-VG-LV"; the default export is the disk= / device= choice (disk 1).
 * Writes need overlay=FILE, the same file `vdiskfs -o overlay=FILE` and
 * `vdisk --overlay` use, so edits move between the three. docs/nbd.md.
 *
 * nbdkit forks into the background after get_ready, and threads (S3
 * readahead, grain decoders) do not survive fork(): get_ready opens
 * everything once so that every mistake is reported on the terminal with
 * nbdkit's exit status, then closes it; after_fork opens it for serving.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/guest.h"
#include "vdisk/overlay.h"
#include "vdisk/vdisk.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define MAX_ALLOW 16

static struct {
    /* Configuration (config keys; paths made absolute, since nbdkit
     * changes directory to / when it goes to the background). */
    char *source;
    char *overlay_path;
    char *format;
    char *region, *endpoint, *profile;
    bool path_style;
    uint64_t cache_size;
    unsigned disk; /* 1-based; 0 = not given */
    char *device;  /* default export by view name */
    char *allow[MAX_ALLOW + 1];
    size_t nallow;

    /* Open state (after_fork until cleanup). */
    struct vd_source *src;
    struct vd_overlay *ov;
    struct vd_image **views; /* overlay views, one per disk (overlay= only) */
    size_t nviews;
    struct vd_guest *guest;
    const struct vd_bdev *dflt; /* the default export */
    bool remote;
} g;

struct handle {
    const struct vd_bdev *dev;
};

/* NBD knows few errors (NBD protocol, "Error values"): EPERM, EIO,
 * ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN. Ours say more;
 * the message in nbdkit's log keeps the detail. */
static int nbd_errno(int code)
{
    switch (-code) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return ENOSPC;
    case EPERM:
    case EACCES:
    case EROFS:
        return EPERM;
    case ENOMEM:
        return ENOMEM;
    case ENOTSUP:
        return ENOTSUP;
    case EINVAL:
        return EINVAL;
    default:
        return EIO;
    }
}

static int fail(const struct vd_error *err, int code)
{
    nbdkit_error("%s", err->msg[0] ? err->msg : strerror(-code));
    nbdkit_set_error(nbd_errno(code));
    return -1;
}

static bool is_url(const char *s)
{
    return !strncmp(s, "s3://", 5) || !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static int set_string(char **dst, const char *value)
{
    free(*dst);
    *dst = strdup(value);
    return *dst ? 0 : -1;
}

static int set_path(char **dst, const char *value)
{
    free(*dst);
    *dst = is_url(value) ? strdup(value) : nbdkit_absolute_path(value);
    return *dst ? 0 : -1;
}

static int vdisk_config(const char *key, const char *value)
{
    if (!strcmp(key, "source"))
        return set_path(&g.source, value);
    if (!strcmp(key, "overlay"))
        return set_path(&g.overlay_path, value);
    if (!strcmp(key, "format"))
        return set_string(&g.format, value);
    if (!strcmp(key, "device"))
        return set_string(&g.device, value);
    if (!strcmp(key, "region"))
        return set_string(&g.region, value);
    if (!strcmp(key, "endpoint"))
        return set_string(&g.endpoint, value);
    if (!strcmp(key, "profile"))
        return set_string(&g.profile, value);
    if (!strcmp(key, "allow-path") || !strcmp(key, "allow_path")) {
        if (g.nallow == MAX_ALLOW) {
            nbdkit_error("allow-path: at most %d directories", MAX_ALLOW);
            return -1;
        }
        return set_path(&g.allow[g.nallow++], value);
    }
    if (!strcmp(key, "path-style") || !strcmp(key, "path_style")) {
        int r = nbdkit_parse_bool(value);
        if (r < 0)
            return -1;
        g.path_style = r;
        return 0;
    }
    if (!strcmp(key, "disk")) {
        if (nbdkit_parse_unsigned("disk", value, &g.disk) < 0)
            return -1;
        if (g.disk == 0) {
            nbdkit_error("disk=%s: disks are numbered from 1", value);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "cache-size") || !strcmp(key, "cache_size")) {
        int64_t v = nbdkit_parse_size(value);
        if (v < 0)
            return -1;
        g.cache_size = (uint64_t)v;
        return 0;
    }
    nbdkit_error("unknown parameter '%s' (see nbdkit vdisk --help, or nbdkit-vdisk-plugin(1))",
                 key);
    return -1;
}

static int vdisk_config_complete(void)
{
    if (!g.source) {
        nbdkit_error("no SOURCE given: nbdkit vdisk SOURCE (a path, s3://bucket/key or URL)");
        return -1;
    }
    if (g.disk && g.device) {
        nbdkit_error("give disk=N or device=NAME, not both");
        return -1;
    }
    return 0;
}

static void close_all(void)
{
    vd_guest_close(g.guest);
    g.guest = NULL;
    g.dflt = NULL;
    for (size_t i = 0; i < g.nviews; i++)
        vd_overlay_detach(g.views[i]);
    free(g.views);
    g.views = NULL;
    g.nviews = 0;
    if (g.ov) {
        struct vd_error err = {0};
        if (vd_overlay_close(g.ov, &err) < 0)
            nbdkit_error("%s", err.msg);
        g.ov = NULL;
    }
    vd_source_close(g.src);
    g.src = NULL;
}

static int open_all(void)
{
    struct vd_error err = {0};
    struct vd_open_opts o = {0};
    o.format = g.format;
    o.cache_size = g.cache_size;
    o.region = g.region;
    o.endpoint = g.endpoint;
    o.profile = g.profile;
    o.path_style = g.path_style;
    o.allow_paths = g.nallow ? (const char *const *)g.allow : NULL;
    g.remote = is_url(g.source);

    int r = vd_source_open(g.source, &o, &g.src, &err);
    if (r < 0)
        goto fail;
    size_t n = vd_source_ndisks(g.src);
    if (g.disk > n) {
        r = vd_err(&err, -EINVAL, "%s: no disk %u (it has %zu)", g.source, g.disk, n);
        goto fail;
    }
    struct vd_image **imgs = calloc(n ? n : 1, sizeof(*imgs));
    if (!imgs) {
        r = vd_err(&err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        imgs[i] = vd_source_disk(g.src, i);
    if (g.overlay_path) {
        /* Every disk gets its view, as in a mount, so the overlay records
         * them all before the first write (include/vdisk/overlay.h). */
        g.views = calloc(n ? n : 1, sizeof(*g.views));
        r = g.views ? vd_overlay_open(g.overlay_path, &g.ov, &err)
                    : vd_err(&err, -ENOMEM, "out of memory");
        for (size_t i = 0; r >= 0 && i < n; i++) {
            char key[160];
            vd_overlay_key(g.source, g.src, i, key, sizeof(key));
            r = vd_overlay_attach(g.ov, imgs[i], key, &imgs[i], &err);
            if (r >= 0)
                g.views[g.nviews++] = imgs[i];
        }
    }
    if (r >= 0)
        r = vd_guest_open_images(imgs, n, &g.guest, &err);
    free(imgs);
    if (r < 0)
        goto fail;
    for (size_t i = 0; i < vd_guest_nwarnings(g.guest); i++)
        nbdkit_debug("%s: %s", g.source, vd_guest_warning(g.guest, i));

    if (g.device) {
        g.dflt = vd_guest_find(g.guest, g.device);
        if (!g.dflt) {
            r = vd_err(&err, -ENOENT,
                       "%s: no device '%s' (names as in a mount without .raw: disk, disk-p1, "
                       "lvm-VG-LV; list them with nbdinfo --list)",
                       g.source, g.device);
            goto fail;
        }
    } else {
        unsigned want = g.disk ? g.disk : 1;
        for (size_t i = 0; i < vd_guest_ndevs(g.guest) && !g.dflt; i++) {
            const struct vd_bdev *b = vd_guest_dev(g.guest, i);
            if (b->kind == VD_BDEV_DISK && b->disk == want)
                g.dflt = b;
        }
        if (!g.dflt) {
            r = vd_err(&err, -ENOENT, "%s: holds no disk", g.source);
            goto fail;
        }
    }
    if (g.dflt->unsupported) {
        r = vd_err(&err, -ENOTSUP, "%s: %s: %s", g.source, g.dflt->name, g.dflt->unsupported);
        goto fail;
    }
    return 0;
fail:
    nbdkit_error("%s", err.msg[0] ? err.msg : strerror(-r));
    close_all();
    return -1;
}

static int vdisk_get_ready(void)
{
    if (open_all() < 0)
        return -1;
    close_all();
    return 0;
}

static int vdisk_after_fork(void)
{
    return open_all();
}

static void vdisk_cleanup(void)
{
    close_all();
}

static void vdisk_unload(void)
{
    free(g.source);
    free(g.overlay_path);
    free(g.format);
    free(g.device);
    free(g.region);
    free(g.endpoint);
    free(g.profile);
    for (size_t i = 0; i < g.nallow; i++)
        free(g.allow[i]);
}

static int vdisk_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
    (void)readonly;
    (void)is_tls;
    for (size_t i = 0; i < vd_guest_ndevs(g.guest); i++) {
        const struct vd_bdev *b = vd_guest_dev(g.guest, i);
        if (b->unsupported)
            continue;
        char desc[160];
        snprintf(desc, sizeof(desc), "%s%s%s", b->kind == VD_BDEV_DISK ? "disk" : b->fstype,
                 b->kind == VD_BDEV_LV ? " on LVM " : "", b->kind == VD_BDEV_LV ? b->segtype : "");
        if (nbdkit_add_export(exports, b->name, desc) < 0)
            return -1;
    }
    return 0;
}

static const char *vdisk_default_export(int readonly, int is_tls)
{
    (void)readonly;
    (void)is_tls;
    return g.dflt ? g.dflt->name : "";
}

static void *vdisk_open(int readonly)
{
    (void)readonly;
    const char *name = nbdkit_export_name();
    const struct vd_bdev *b = g.dflt;
    if (name && name[0]) {
        b = vd_guest_find(g.guest, name);
        if (!b) {
            nbdkit_error("%s: no export '%s' (nbdinfo --list shows them)", g.source, name);
            nbdkit_set_error(ENOENT);
            return NULL;
        }
        if (b->unsupported) {
            nbdkit_error("%s: %s: %s", g.source, b->name, b->unsupported);
            nbdkit_set_error(ENOTSUP);
            return NULL;
        }
    }
    struct handle *h = malloc(sizeof(*h));
    if (!h) {
        nbdkit_error("out of memory");
        return NULL;
    }
    h->dev = b;
    return h;
}

static void vdisk_close(void *handle)
{
    free(handle);
}

static const char *vdisk_export_description(void *handle)
{
    struct handle *h = handle;
    return h->dev->label[0] ? h->dev->label : NULL;
}

static int64_t vdisk_get_size(void *handle)
{
    struct handle *h = handle;
    return (int64_t)h->dev->size;
}

/* Writable only through an overlay: the source itself is never opened
 * for writing (a forensic user's guarantee). */
static int vdisk_can_write(void *handle)
{
    (void)handle;
    return g.ov != NULL;
}

static int vdisk_can_flush(void *handle)
{
    (void)handle;
    return g.ov != NULL;
}

static int vdisk_can_fua(void *handle)
{
    (void)handle;
    return g.ov ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
}

/* Every connection reads the same images, and a flush syncs the one
 * overlay all of them write to: what one connection flushed, all see
 * (NBD protocol, NBD_FLAG_CAN_MULTI_CONN). */
static int vdisk_can_multi_conn(void *handle)
{
    (void)handle;
    return 1;
}

/* A cache request on a remote source fills the block cache (a pread whose
 * bytes are dropped); a local file has the kernel's page cache. */
static int vdisk_can_cache(void *handle)
{
    (void)handle;
    return g.remote ? NBDKIT_CACHE_EMULATE : NBDKIT_CACHE_NONE;
}

static int vdisk_can_extents(void *handle)
{
    (void)handle;
    return 1;
}

static int vdisk_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)flags;
    struct handle *h = handle;
    struct vd_error err = {0};
    int r = vd_bdev_pread(h->dev, buf, count, offset, &err);
    return r < 0 ? fail(&err, r) : 0;
}

static int vdisk_flush(void *handle, uint32_t flags)
{
    (void)handle;
    (void)flags;
    struct vd_error err = {0};
    for (size_t i = 0; i < g.nviews; i++) {
        int r = vd_image_flush(g.views[i], &err);
        if (r < 0)
            return fail(&err, r);
    }
    return 0;
}

static int vdisk_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset,
                        uint32_t flags)
{
    struct handle *h = handle;
    struct vd_error err = {0};
    int r = vd_bdev_pwrite(h->dev, buf, count, offset, &err);
    if (r < 0)
        return fail(&err, r);
    return flags & NBDKIT_FLAG_FUA ? vdisk_flush(handle, 0) : 0;
}

/* Allocation from the image's own map (grain tables, BAT, overlay
 * bitmap, the raw file's holes): VD_STATUS_ZERO is a hole that reads as
 * zeros, so nbdcopy and qemu-img skip it without reading. */
static int vdisk_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                         struct nbdkit_extents *extents)
{
    struct handle *h = handle;
    struct vd_error err = {0};
    uint64_t end = offset + count;
    while (offset < end) {
        struct vd_image *img;
        uint64_t img_off, run, n;
        int r = vd_bdev_map(h->dev, offset, end - offset, &img, &img_off, &run, &err);
        if (r < 0)
            return fail(&err, r);
        r = vd_image_block_status(img, img_off, run, &n, &err);
        if (r < 0)
            return fail(&err, r);
        if (n == 0 || n > run) {
            nbdkit_error("%s: %s: block status at %" PRIu64 " made no progress", g.source,
                         h->dev->name, offset);
            nbdkit_set_error(EIO);
            return -1;
        }
        uint32_t type = r == VD_STATUS_ZERO ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
        if (nbdkit_add_extent(extents, offset, n, type) < 0)
            return -1;
        offset += n;
        if (flags & NBDKIT_FLAG_REQ_ONE)
            break;
    }
    return 0;
}

static void vdisk_dump_plugin(void)
{
    printf("vdisk_version=%s\n", vd_version());
    printf("vdisk_formats=vmdk,vhd,vhdx,ova,raw\n");
    printf("vdisk_remote=s3,http\n");
}

#define VDISK_CONFIG_HELP                                                                          \
    "[source=]SOURCE       Image: a path, s3://bucket/key or http(s):// URL (required).\n"         \
    "disk=N                Default export: disk N of an OVA (1-based; default 1).\n"               \
    "device=NAME           Default export by name: disk2, disk-p1, lvm-VG-LV.\n"                   \
    "overlay=FILE          Make the export writable; writes land in FILE (vdiskfs -o overlay).\n"  \
    "format=FMT            Force the format (vmdk, vhd, vhdx, ova, raw) instead of probing.\n"     \
    "allow-path=DIR        Let the image name files under DIR too (repeatable).\n"                 \
    "region=, endpoint=, profile=, path-style=true, cache-size=SIZE   S3 settings."

static struct nbdkit_plugin plugin = {
    .name = "vdisk",
    .longname = "vdiskfs: VMDK, VHD, VHDX, OVA and raw images, local or in S3",
    .version = VDISK_VERSION,
    .description = "Serve a disk, partition or LVM volume of a VM image over NBD",
    .magic_config_key = "source",
    .config = vdisk_config,
    .config_complete = vdisk_config_complete,
    .config_help = VDISK_CONFIG_HELP,
    .get_ready = vdisk_get_ready,
    .after_fork = vdisk_after_fork,
    .cleanup = vdisk_cleanup,
    .unload = vdisk_unload,
    .dump_plugin = vdisk_dump_plugin,
    .list_exports = vdisk_list_exports,
    .default_export = vdisk_default_export,
    .open = vdisk_open,
    .close = vdisk_close,
    .export_description = vdisk_export_description,
    .get_size = vdisk_get_size,
    .can_write = vdisk_can_write,
    .can_flush = vdisk_can_flush,
    .can_fua = vdisk_can_fua,
    .can_multi_conn = vdisk_can_multi_conn,
    .can_cache = vdisk_can_cache,
    .can_extents = vdisk_can_extents,
    .pread = vdisk_pread,
    .pwrite = vdisk_pwrite,
    .flush = vdisk_flush,
    .extents = vdisk_extents,
    .errno_is_preserved = 0,
};

/* NBDKIT_REGISTER_PLUGIN defines plugin_init, nbdkit's entry point, which
 * nbdkit-plugin.h does not declare. */
NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init(void);
NBDKIT_REGISTER_PLUGIN(plugin)
