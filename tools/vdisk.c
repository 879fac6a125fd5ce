/*
 * vdisk: the command-line face of libvdisk (info, hash, check, convert,
 * fixup, inspect, preflight; serve runs nbdkit with our plugin).
 * Thin by design: argument parsing, progress display and output formatting;
 * all work happens in the library.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "vdisk/overlay.h"
#include "vdisk/guest.h"
#include "vdisk/vdisk.h"
#if __has_include("vdisk/export.h")
#include "vdisk/export.h"
#define HAVE_EXPORT 1
#endif
#include "vdisk/fixup.h"
#include "vdisk/guest.h"
#include "vdisk/inspect.h"

static const char *prog = "vdisk";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vdisk COMMAND [OPTIONS] ARGS\n"
            "\n"
            "Commands:\n"
            "  info [--json] SOURCE                  format, sizes, backing chain, partitions\n"
            "  hash [--md5|--sha1|--sha256] [-q|--progress] SOURCE\n"
            "                                        digest of the raw disk content\n"
            "  check SOURCE                          structural check (exit 0 clean, 2 corrupt,\n"
            "                                        3 leaked space only, 1 could not check)\n"
            "  convert [-O FMT] [-o OPTS] [-q|--progress] SOURCE DEST\n"
            "                                        encode to vmdk, vhd, vhdx, ova or raw\n"
            "  fixup [--dry-run] VIEW | --root DIR --disk SOURCE|VIEW...\n"
            "                                        AWS VM Import's guest changes, offline:\n"
            "                                        Linux (fstab UUIDs, GRUB, DHCP), Windows\n"
            "                                        (SYSTEM hive: boot drivers, DHCP, clock)\n"
            "  inspect [--json] SOURCE...|VIEW       the guest's OSes, kernels, boot mode,\n"
            "                                        mounts, network, without booting it\n"
            "  preflight --target aws [--json] SOURCE...|VIEW\n"
            "                                        what AWS VM Import would refuse (exit 0\n"
            "                                        ready, 2 would fail, 3 risks, 1 could not)\n"
            "  serve [--overlay FILE] [--tcp PORT] SOURCE\n"
            "                                        serve the disks over NBD (nbdkit)\n"
            "  status [--json] MNT/export[/NAME]     an export's status (written, done, error)\n"
            "\n"
            "SOURCE is a path, s3://bucket/key or http(s):// URL; DEST a path or s3:// URL.\n"
            "Common options: -f FORMAT (skip probing), --disk N (OVA: disk N, from 1);\n"
            "hash and convert: --overlay FILE (the disk with a mount's overlay edits);\n"
            "--allow-path DIR: extents and parents may also be opened in DIR (by default\n"
            "only beside the image that names them; see docs/trust-boundary.md).\n"
            "Run 'vdisk COMMAND --help' for details, or see vdisk(1).\n"
            "Exit status: 0 done, 1 failed, 2 usage error (check and preflight keep 2\n"
            "for their findings: a usage error exits 1 there).\n");
}

/* ---- usage errors: one line, exit 2 ---- */

static const char *cur_cmd = "vdisk"; /* the command being run, for messages */

/* The exit code of a usage error: 2, as getopt-based tools and `fixup`
 * always did; but check and preflight keep 2 for "corrupt" and "would
 * fail", so that a script never mistakes a typo for a finding: they exit 1,
 * their documented "could not check". */
static int usage_code(void)
{
    return strcmp(cur_cmd, "check") && strcmp(cur_cmd, "preflight") ? 2 : 1;
}

/* Every usage error is one line that names the command and points at its
 * --help, and exits usage_code(). */
__attribute__((format(printf, 1, 2))) static int usage_err(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: %s: ", prog, cur_cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see 'vdisk %s --help'\n", cur_cmd);
    return usage_code();
}

/* Wrong number of operands: GOT given; MISSING names what none gives,
 * WANT what is expected. */
static int args_err(int got, const char *missing, const char *want)
{
    if (got == 0)
        return usage_err("missing %s", missing);
    return usage_err("expected %s, got %d argument%s", want, got, got == 1 ? "" : "s");
}

/* Levenshtein distance, for "did you mean"; long words are not compared. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The candidate nearest to WORD, or NULL when none is close (at most 2
 * edits, or WORD is a prefix of it). */
static const char *nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d >= 3 && *word && !strncmp(cands[i], word, strlen(word)))
            d = 2; /* a prefix getopt found ambiguous */
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

/* getopt_long (opterr = 0, optstring starting with ':') returned '?' or ':'
 * for argv[optind - 1]: say which option and what is wrong with it. */
static int bad_option(int c, const struct option *lo, char **argv)
{
    const char *arg = argv[optind - 1];
    bool is_long = !strncmp(arg, "--", 2);
    if (c == ':') {
        if (is_long)
            return usage_err("option '%s' needs a value", arg);
        return usage_err("option '-%c' needs a value", optopt);
    }
    if (!is_long)
        return usage_err("unknown option '-%c'", optopt);
    char name[64];
    snprintf(name, sizeof(name), "%s", arg + 2);
    char *eq = strchr(name, '=');
    if (eq)
        *eq = '\0';
    const char *names[64];
    size_t n = 0, nprefix = 0;
    for (const struct option *o = lo; o->name && n < 64; o++) {
        if (eq && !strcmp(o->name, name) && o->has_arg == no_argument)
            return usage_err("option '--%s' takes no value", name);
        nprefix += *name && !strncmp(o->name, name, strlen(name));
        names[n++] = o->name;
    }
    if (nprefix > 1)
        return usage_err("option '--%s' is ambiguous; give more of its name", name);
    const char *near = nearest(name, names, n);
    if (near)
        return usage_err("unknown option '--%s' (did you mean '--%s'?)", name, near);
    return usage_err("unknown option '--%s'", name);
}

/* ---- progress (stderr) ----
 * On a terminal: one line redrawn with \r, a bar, rate and ETA, once a
 * second. Elsewhere only with --progress: a plain line every few seconds
 * (VDISK_PROGRESS_INTERVAL seconds, default 5; a log keeps every line) and
 * a last one with the total time. -q: nothing. */

enum progress_mode { PROGRESS_AUTO, PROGRESS_QUIET, PROGRESS_FORCE };

struct progress {
    bool on, tty, finished;
    const char *what;
    double interval, last; /* seconds since start of the last line */
    struct timespec start;
};

static void fmt_duration(char *buf, size_t len, double secs)
{
    unsigned long s = secs < 0 ? 0 : (unsigned long)(secs + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%lu:%02lu", s / 60, s % 60);
}

static int progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    struct progress *p = opaque;
    if (!p->on || p->finished)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double secs = (double)(ts.tv_sec - p->start.tv_sec) + (ts.tv_nsec - p->start.tv_nsec) / 1e9;
    bool end = done >= total;
    if (!end && secs - p->last < p->interval)
        return 0;
    p->last = secs;
    p->finished = end;
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    double rate = secs > 0 ? (double)done / secs : 0.0; /* bytes/s */
    char eta[32];
    if (end)
        fmt_duration(eta, sizeof(eta), secs);
    else if (rate > 0)
        fmt_duration(eta, sizeof(eta), (double)(total - done) / rate);
    else
        snprintf(eta, sizeof(eta), "?");
    if (p->tty) {
        int width = 30, fill = (int)(pct * width / 100);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%%  %" PRIu64 " MiB  %.0f MiB/s  %s %s ", p->what, bar, pct,
                done >> 20, rate / (1 << 20), end ? "in" : "ETA", eta);
        if (end)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %.1f%% %" PRIu64 " of %" PRIu64 " MiB, %.1f MiB/s, %s %s\n", p->what,
                pct, done >> 20, total >> 20, rate / (1 << 20), end ? "done in" : "ETA", eta);
    }
    return 0;
}

static void progress_init(struct progress *p, const char *what, enum progress_mode mode)
{
    memset(p, 0, sizeof(*p));
    p->tty = isatty(STDERR_FILENO);
    p->on = mode == PROGRESS_FORCE || (mode == PROGRESS_AUTO && p->tty);
    p->what = what;
    p->interval = p->tty ? 1 : 5;
    const char *env = getenv("VDISK_PROGRESS_INTERVAL");
    if (env && *env)
        p->interval = strtod(env, NULL);
    p->last = -1e9; /* the first call prints */
    clock_gettime(CLOCK_MONOTONIC, &p->start);
}

/* ---- shared option handling ---- */

#define MAX_ALLOW 16
/* --allow-path strings live until exit; kept reachable here so that
 * LeakSanitizer does not report them once a command's options go away. */
static char *volatile allow_kept[MAX_ALLOW];

struct common {
    struct vd_open_opts open;
    const char *allow[MAX_ALLOW + 1]; /* --allow-path DIR..., NULL-terminated */
    size_t nallow;
    long disk;           /* 1-based; 0 = the only disk */
    const char *overlay; /* --overlay FILE: read the disk with the mount's edits */
    struct vd_overlay *ov;
    struct vd_image *view;
    struct vd_image *views[64]; /* every view attached (convert of all disks) */
    size_t nviews;
};

static struct vd_source *open_source(const char *uri, struct common *c)
{
    struct vd_error err = {0};
    struct vd_source *src;
    if (vd_source_open(uri, &c->open, &src, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return NULL;
    }
    return src;
}

static struct vd_image *pick_disk(struct vd_source *src, const char *uri, struct common *c)
{
    size_t n = vd_source_ndisks(src);
    if (c->disk == 0 && n > 1) {
        fprintf(stderr, "%s: %s holds %zu disks; choose one with --disk 1..%zu\n", prog, uri, n, n);
        return NULL;
    }
    size_t idx = c->disk ? (size_t)c->disk - 1 : 0;
    if (idx >= n) {
        fprintf(stderr, "%s: %s: no disk %ld (it has %zu)\n", prog, uri, c->disk, n);
        return NULL;
    }
    if (!c->overlay)
        return vd_source_disk(src, idx);
    /* The disk as a mount with -o overlay=FILE shows it. The key is the
     * mount's folder/disk name; a renamed source is found by fingerprint. */
    struct vd_error err = {0};
    struct stat st;
    char key[160];
    if (stat(c->overlay, &st) != 0) {
        fprintf(stderr, "%s: %s: no such overlay file\n", prog, c->overlay);
        return NULL;
    }
    vd_overlay_key(uri, src, idx, key, sizeof(key));
    if ((!c->ov && vd_overlay_open(c->overlay, &c->ov, &err) < 0) || c->nviews == 64 ||
        vd_overlay_attach(c->ov, vd_source_disk(src, idx), key, &c->view, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, c->nviews == 64 ? "too many disks" : err.msg);
        return NULL;
    }
    return c->views[c->nviews++] = c->view;
}

/* Release what pick_disk opened for --overlay (before closing the source). */
static void common_close(struct common *c)
{
    while (c->nviews)
        vd_overlay_detach(c->views[--c->nviews]);
    c->view = NULL;
    vd_overlay_close(c->ov, NULL);
    c->ov = NULL;
}

/* ---- info ---- */

/* LVM2 logical volumes (docs/lvm.md): each exposed one with its view
 * file, the others with the reason; then what the scan left out. */
static void print_guest_lvm(struct vd_source *src)
{
    struct vd_guest *g;
    struct vd_error err = {0};
    if (vd_guest_open(src, &g, &err) < 0) {
        printf("block devices: %s\n", err.msg);
        return;
    }
    bool any = false;
    for (size_t i = 0; i < vd_guest_ndevs(g); i++) {
        const struct vd_bdev *b = vd_guest_dev(g, i);
        if (b->kind != VD_BDEV_LV)
            continue;
        if (!any)
            printf("logical volumes (LVM2):\n");
        any = true;
        if (b->unsupported)
            printf("  VG %s LV %s  %s  not exposed: %s\n", b->vg, b->lv, b->segtype,
                   b->unsupported);
        else
            printf("  %s.raw  VG %s LV %s  size %" PRIu64 "  %s%s%s\n", b->name, b->vg, b->lv,
                   b->size, b->segtype, b->fstype[0] ? "  " : "", b->fstype);
    }
    for (size_t i = 0; i < vd_guest_nwarnings(g); i++)
        printf("warning: %s\n", vd_guest_warning(g, i));
    vd_guest_close(g);
}

static void print_human(struct vd_source *src)
{
    printf("format: %s\n", vd_source_format(src));
    for (size_t i = 0; i < vd_source_ndisks(src); i++) {
        struct vd_image *img = vd_source_disk(src, i);
        char view[32];
        vd_source_disk_view_name(src, i, view, sizeof(view));
        printf("%s:\n", view);
        printf("  file: %s\n", vd_image_name(img));
        printf("  format: %s%s%s\n", vd_image_format(img), vd_image_subformat(img) ? " " : "",
               vd_image_subformat(img) ? vd_image_subformat(img) : "");
        printf("  virtual size: %" PRIu64 " bytes (%.2f GiB)\n", vd_image_size(img),
               (double)vd_image_size(img) / (1 << 30));
        printf("  allocated: %" PRIu64 " bytes\n", vd_image_allocated(img));
        if (vd_image_sector_size(img) != 512)
            printf("  logical sector size: %" PRIu32 " bytes\n", vd_image_sector_size(img));
        for (struct vd_image *b = vd_image_backing(img); b; b = vd_image_backing(b))
            printf("  backing: %s (%s%s%s, %" PRIu64 " bytes)\n", vd_image_name(b),
                   vd_image_format(b), vd_image_subformat(b) ? " " : "",
                   vd_image_subformat(b) ? vd_image_subformat(b) : "", vd_image_size(b));
        struct vd_partition_table pt;
        struct vd_error err = {0};
        if (vd_image_partitions(img, &pt, &err) == 0) {
            if (pt.scheme[0])
                printf("  partition table: %s\n", pt.scheme);
            for (size_t k = 0; k < pt.n; k++)
                printf("    %s-p%u.raw  offset %" PRIu64 "  size %" PRIu64 "  type %s\n", view,
                       pt.parts[k].number, pt.parts[k].offset, pt.parts[k].size, pt.parts[k].type);
            vd_partition_table_free(&pt);
        } else {
            printf("  partitions: %s\n", err.msg);
        }
    }
    print_guest_lvm(src);
}

/* Parse the options every command shares; returns the getopt result for
 * anything else. */
static int common_opt(int c, struct common *co)
{
    switch (c) {
    case 'f':
        co->open.format = optarg;
        return 0;
    case 'V':
        co->overlay = optarg;
        return 0;
    case 'A': {
        char *dir = realpath(optarg, NULL);
        if (!dir || co->nallow == MAX_ALLOW) {
            usage_err("--allow-path %s: %s", optarg,
                      dir ? "too many directories" : strerror(errno));
            free(dir);
            return -1;
        }
        allow_kept[co->nallow] = dir;
        co->allow[co->nallow++] = dir; /* lives until exit */
        co->open.allow_paths = co->allow;
        return 0;
    }
    case 'D': {
        char *end;
        co->disk = strtol(optarg, &end, 10);
        if (!*optarg || *end || co->disk < 1) {
            usage_err("--disk %s: expected a disk number from 1", optarg);
            return -1;
        }
        return 0;
    }
    }
    return c;
}

static int cmd_info(int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct common co = {0};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":jf:h", lo, NULL)) != -1) {
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        if (c == 'j') {
            json = true;
        } else if (c == 'h') {
            printf("usage: vdisk info [--json] [-f FORMAT] SOURCE\n"
                   "Show format, subformat, virtual size, allocated bytes, the backing\n"
                   "chain, disks and partitions. --json prints the stable JSON of\n"
                   "docs/info-json.md (the same as the mount's info.json).\n");
            return 0;
        } else {
            return bad_option(c, lo, argv);
        }
    }
    if (optind + 1 != argc)
        return args_err(argc - optind, "SOURCE", "one SOURCE");
    struct vd_source *src = open_source(argv[optind], &co);
    if (!src)
        return 1;
    int rc = 0;
    if (json) {
        char *text;
        struct vd_error err = {0};
        if (vd_source_info_json(src, &text, &err) < 0) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 1;
        } else {
            fputs(text, stdout);
            free(text);
        }
    } else {
        print_human(src);
    }
    vd_source_close(src);
    return rc;
}

/* ---- hash ---- */

static int cmd_hash(int argc, char **argv)
{
    static const struct option lo[] = {{"md5", no_argument, NULL, '5'},
                                       {"sha1", no_argument, NULL, '1'},
                                       {"sha256", no_argument, NULL, '2'},
                                       {"disk", required_argument, NULL, 'D'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"overlay", required_argument, NULL, 'V'},
                                       {"progress", no_argument, NULL, 'P'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct common co = {0};
    const char *algo = "sha256";
    enum progress_mode pmode = PROGRESS_AUTO;
    int c;
    while ((c = getopt_long(argc, argv, ":f:qh", lo, NULL)) != -1) {
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        switch (c) {
        case '5':
            algo = "md5";
            break;
        case '1':
            algo = "sha1";
            break;
        case '2':
            algo = "sha256";
            break;
        case 'q':
            pmode = PROGRESS_QUIET;
            break;
        case 'P':
            pmode = PROGRESS_FORCE;
            break;
        case 'h':
            printf("usage: vdisk hash [--md5|--sha1|--sha256] [--disk N] [--overlay FILE]\n"
                   "                  [-q|--progress] SOURCE\n"
                   "Digest of the raw disk content (default sha256), printed as\n"
                   "'<hex>  SOURCE' like sha256sum. Unallocated ranges are not read.\n"
                   "--overlay FILE: the disk with the edits a mount kept in FILE\n"
                   "(vdiskfs -o overlay=FILE; unmount it first).\n"
                   "Progress (stderr): on a terminal, a bar with rate and ETA; --progress\n"
                   "prints a line every few seconds elsewhere too; -q prints none.\n");
            return 0;
        default:
            return bad_option(c, lo, argv);
        }
    }
    if (optind + 1 != argc)
        return args_err(argc - optind, "SOURCE", "one SOURCE");
    const char *uri = argv[optind];
    struct vd_source *src = open_source(uri, &co);
    if (!src)
        return 1;
    struct vd_image *img = pick_disk(src, uri, &co);
    int rc = 1;
    if (img) {
        char hex[160];
        struct vd_error err = {0};
        struct progress p;
        progress_init(&p, "hashing", pmode);
        if (vd_image_hash(img, algo, hex, progress_cb, &p, &err) < 0) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
        } else {
            printf("%s  %s\n", hex, uri);
            rc = 0;
        }
    }
    common_close(&co);
    vd_source_close(src);
    return rc;
}

/* ---- check ---- */

static void check_cb(void *opaque, bool corrupt, const char *msg)
{
    printf("%s: %s\n", corrupt ? "ERROR" : "Leaked", msg);
}

static int cmd_check(int argc, char **argv)
{
    static const struct option lo[] = {{"format", required_argument, NULL, 'f'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct common co = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":f:h", lo, NULL)) != -1) {
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        if (c == 'h') {
            printf("usage: vdisk check SOURCE\n"
                   "Validate structure (tables, checksums, blocks past EOF, OVA manifest).\n"
                   "Each problem is printed on its own line. Exit codes follow qemu-img\n"
                   "check: 0 clean, 2 corrupt, 3 leaked/unused space only, 1 could not check.\n"
                   "A usage error exits 1 too, with one line on stderr and nothing on stdout.\n");
            return 0;
        }
        return bad_option(c, lo, argv);
    }
    if (optind + 1 != argc)
        return args_err(argc - optind, "SOURCE", "one SOURCE");
    struct vd_source *src = open_source(argv[optind], &co);
    if (!src)
        return 1;
    struct vd_error err = {0};
    int r = vd_source_check(src, check_cb, NULL, &err);
    vd_source_close(src);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    if (r == VD_CHECK_CLEAN)
        printf("No errors were found on the image.\n");
    return r;
}

/* ---- convert ---- */

#ifdef HAVE_EXPORT
/* " (did you mean 'X'?)" for a misspelt -o name, else "". The list is
 * what vd_export_opt accepts (src/export/export.c). */
static const char *convert_opt_hint(const char *name)
{
    static const char *const names[] = {
        "vmdk_type",   "vhd_type",    "vhdx_type",    "vhdx_block_size", "compress_level",
        "target",      "sector_size", "ova_manifest", "threads",         "reorder_window",
        "fsync",       "vm_name",     "vm_cpus",      "vm_memory",       "vm_os",
        "vm_firmware", "vm_disk_bus", "vm_nic",       "vm_hw_version"};
    static char buf[96];
    const char *near = nearest(name, names, sizeof(names) / sizeof(names[0]));
    if (!near)
        return "";
    snprintf(buf, sizeof(buf), " (did you mean '%s'?)", near);
    return buf;
}
#endif

static int cmd_convert(int argc, char **argv)
{
#ifdef HAVE_EXPORT
    static const struct option lo[] = {{"disk", required_argument, NULL, 'D'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"progress", no_argument, NULL, 'P'},
                                       {"overlay", required_argument, NULL, 'V'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct common co = {0};
    struct vd_export_opts eo;
    struct vd_error err = {0};
    const char *fmt = NULL;
    enum progress_mode pmode = PROGRESS_AUTO;
    int c;
    vd_export_opts_init(&eo);
    bool all = false; /* --disk all: every disk into one OVA */
    while ((c = getopt_long(argc, argv, ":f:O:o:qh", lo, NULL)) != -1) {
        if (c == 'D' && !strcmp(optarg, "all")) {
            all = true;
            continue;
        }
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        switch (c) {
        case 'O':
            fmt = optarg;
            break;
        case 'o': {
            char *copy = strdup(optarg), *save = NULL;
            for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
                char *val = strchr(it, '=');
                if (val)
                    *val++ = '\0';
                int r = vd_export_opt(&eo, it, val ? val : "", &err);
                if (r == 0)
                    usage_err("unknown -o option '%s'%s", it, convert_opt_hint(it));
                else if (r < 0)
                    usage_err("%s", err.msg);
                if (r <= 0) {
                    free(copy);
                    return usage_code();
                }
            }
            free(copy);
            break;
        }
        case 'q':
            pmode = PROGRESS_QUIET;
            break;
        case 'P':
            pmode = PROGRESS_FORCE;
            break;
        case 'h':
            printf(
                "usage: vdisk convert [-O FORMAT] [-o OPTS] [--disk N|all] [--overlay FILE]\n"
                "                     [-q|--progress] SOURCE DEST\n"
                "Encode SOURCE's raw content as FORMAT (vmdk, vhd, vhdx, ova, raw; default:\n"
                "from DEST's extension) into DEST, a path or s3://bucket/key. The same\n"
                "encoders as the mount's export/. Unallocated ranges are not read.\n"
                "OPTS: vmdk_type=streamOptimized|monolithicSparse, vhd_type=dynamic|fixed,\n"
                "      vhdx_type=dynamic|fixed, vhdx_block_size=BYTES, compress_level=N,\n"
                "      target=azure (VHD: fixed, whole MiB), sector_size=512|4096 (VHDX),\n"
                "      ova_manifest=sha256|sha1, threads=N, reorder_window=BYTES,\n"
                "      fsync=on|off (sync DEST before renaming it into place; default off)\n"
                "OVA: target=esxi-X.Y|vmware|virtualbox|dmtf, vm_name=, vm_cpus=, vm_memory=,\n"
                "      vm_os=, vm_firmware=bios|efi, vm_disk_bus=scsi|pvscsi|sata|nvme|ide,\n"
                "      vm_nic=vmxnet3|e1000|e1000e|none, vm_hw_version=N (docs/ova.md).\n"
                "      An OVA source keeps its VM and all its disks (--disk N: one; --disk all).\n"
                "--overlay FILE: convert the disk with the edits a mount kept in FILE\n"
                "(vdiskfs -o overlay=FILE; unmount it first).\n"
                "Progress (stderr): on a terminal, a bar with rate and ETA; --progress\n"
                "prints a line every few seconds elsewhere too; -q prints none.\n");
            return 0;
        default:
            return bad_option(c, lo, argv);
        }
    }
    if (optind + 2 != argc)
        return args_err(argc - optind, "SOURCE and DEST", "SOURCE and DEST");
    const char *uri = argv[optind], *dest = argv[optind + 1];
    if (!fmt)
        fmt = vd_export_format_for(dest);
    if (!fmt)
        return usage_err("%s: cannot tell the format from the name; use -O FORMAT", dest);
    if (all && strcasecmp(fmt, "ova"))
        return usage_err("%s: --disk all writes one OVA; use -O ova", dest);
    eo.remote = co.open;
    struct vd_source *src = open_source(uri, &co);
    if (!src)
        return 1;
    /* OVA to OVA keeps the source's VM (docs/ova.md) unless vm_* options
     * describe a new one, and carries every disk unless --disk picks one. */
    size_t n = vd_source_ndisks(src), ovf_len = 0, idx[64];
    bool to_ova = !strcasecmp(fmt, "ova");
    const char *ovf = to_ova ? vd_source_ovf_text(src, &ovf_len) : NULL;
    bool new_vm = eo.vm_name[0] || eo.vm_cpus || eo.vm_memory || eo.vm_os[0] || eo.vm_firmware ||
                  eo.vm_disk_bus || eo.vm_nic;
    struct vd_image *imgs[64] = {NULL}, *img = NULL;
    int rc = 1;
    if ((all && !to_ova) || n > 64) {
        fprintf(stderr, "%s: %s: --disk all writes one OVA of up to 64 disks; use -O ova\n", prog,
                dest);
        goto done;
    }
    all = all || (ovf && !co.disk && n > 1);
    if (ovf && !new_vm) {
        eo.ova_source_ovf = ovf;
        eo.ova_source_ovf_len = ovf_len;
        eo.ova_source_name = vd_source_ovf_name(src);
        eo.ova_source_disk = idx;
    }
    for (size_t i = 0; i < (all ? n : 1); i++) {
        if (all)
            co.disk = (long)i + 1;
        idx[i] = co.disk ? (size_t)co.disk - 1 : 0;
        if (!(imgs[i] = img = pick_disk(src, uri, &co)))
            goto done;
    }
    struct progress p;
    progress_init(&p, "converting", pmode);
    if ((all ? vd_convert_disks(imgs, n, dest, &eo, progress_cb, &p, &err)
             : vd_convert(img, dest, fmt, &eo, progress_cb, &p, &err)) < 0)
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    else
        rc = 0;
    /* Azure takes whole MiB only: the VHD encoder rounded up, say so. */
    uint64_t vsize = img ? vd_image_size(img) : 0;
    if (!rc && !all && !strcasecmp(fmt, "vhd") && !strcasecmp(eo.target, "azure") &&
        vsize % (1u << 20))
        fprintf(stderr,
                "%s: warning: %s: target=azure: virtual size %" PRIu64
                " bytes rounded up to %" PRIu64 " (a whole MiB, as Azure requires)\n",
                prog, dest, vsize, (vsize | ((1u << 20) - 1)) + 1);
done:
    common_close(&co);
    vd_source_close(src);
    return rc;
#else
    fprintf(stderr, "%s: convert is not built in this version\n", prog);
    return 1;
#endif
}

/* ---- fixup ---- */

static void fixup_report(void *opaque, const struct vd_fixup_change *c)
{
    bool dry = *(bool *)opaque;
    if (!strcmp(c->action, "root")) {
        printf("editing %s: %s", c->path, c->why);
        return;
    }
    if (!strcmp(c->action, "note")) {
        printf("note: %s %s", c->path, c->why);
        return;
    }
    if (!strcmp(c->action, "skipped"))
        printf("%s: %s", c->path, c->why);
    else if (!strcmp(c->action, "warning"))
        printf("%s: unchanged\n", c->path);
    else if (dry)
        printf("%s: would be %s\n", c->path, c->action);
    else if (c->backup)
        printf("%s: %s (original kept as %s)\n", c->path, c->action, c->backup);
    else
        printf("%s: %s\n", c->path, c->action);
    if (strcmp(c->action, "skipped")) {
        for (const char *w = c->why; *w;) {
            const char *nl = strchr(w, '\n');
            int n = nl ? (int)(nl - w) : (int)strlen(w);
            printf("  %.*s\n", n, w);
            w += n + (nl ? 1 : 0);
        }
    }
    if (c->diff && *c->diff)
        printf("--- %s\n+++ %s (after fixup)\n%s", c->path, c->path, c->diff);
}

static int cmd_fixup(int argc, char **argv)
{
    static const struct option lo[] = {{"dry-run", no_argument, NULL, 'n'},
                                       {"profile", required_argument, NULL, 'P'},
                                       {"root", required_argument, NULL, 'r'},
                                       {"disk", required_argument, NULL, 'D'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct vd_fixup_opts fo = {.profile = "aws"};
    const char *root = NULL;
    const char *disks[32];
    size_t ndisks = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":nh", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            fo.dry_run = true;
            break;
        case 'P':
            fo.profile = optarg;
            break;
        case 'r':
            root = optarg;
            break;
        case 'D':
            if (ndisks == sizeof(disks) / sizeof(disks[0]))
                return usage_err("at most %zu --disk options", ndisks);
            disks[ndisks++] = optarg;
            break;
        case 'h':
            printf("usage: vdisk fixup [--dry-run] [--profile aws] --root DIR [--disk "
                   "SOURCE|VIEW]...\n"
                   "       vdisk fixup [--dry-run] [--profile aws] VIEW\n"
                   "Apply the changes AWS VM Import/Export makes to a Linux guest, offline:\n"
                   "/etc/fstab device names -> UUID= (nofail or commented out for devices that\n"
                   "will not exist), GRUB default entry 0 and a 1 s timeout (also in grub.cfg,\n"
                   "with root=/dev/sdXN -> root=UUID=), static network settings -> DHCP\n"
                   "(interfaces, ifcfg-*, netplan, systemd-networkd, NetworkManager), the\n"
                   "primary NIC's configuration renamed to eth0 with net.ifnames=0\n"
                   "biosdevname=0 on the kernel command line (the new NIC's name differs\n"
                   "on every hypervisor), 70-persistent-net.rules and MAC-bound .link files\n"
                   "removed.\n"
                   "A Windows DIR (Windows/System32/config/SYSTEM) gets its registry edited\n"
                   "with hivex instead: storage drivers (storahci, stornvme, atapi...) set to\n"
                   "boot start, the DHCP client service enabled, RealTimeIsUniversal=1, static\n"
                   "TCP/IP interfaces switched to DHCP; the hive keeps SYSTEM.vdisk.orig.\n"
                   "A VIEW whose NTFS partition holds that hive is edited with libntfs-3g.\n"
                   "DIR is the guest's root filesystem, mounted read-write. Each --disk is an\n"
                   "image (any SOURCE vdisk opens) or a vdiskfs view folder (MNT/name); the\n"
                   "first is sda, the second sdb... With a VIEW (a vdiskfs -o rw mount's\n"
                   "MNT/name) instead, the ext2/3/4 partition holding /etc/fstab is edited in\n"
                   "place with libext2fs, no kernel mount needed, and the view's partitions\n"
                   "resolve the device names. Every changed file keeps its original as\n"
                   "NAME.vdisk.orig. --dry-run prints the changes as a diff and writes nothing.\n"
                   "Exit status: 0 done (or nothing to do), 1 error (nothing written), 2 usage.\n"
                   "See docs/fixup.md.\n");
            return 0;
        default:
            return bad_option(c, lo, argv);
        }
    }
    if (fo.profile && strcmp(fo.profile, "aws"))
        return usage_err("unknown profile '%s' (only 'aws')", fo.profile);
    if (!root && ndisks)
        return usage_err("--disk goes with --root; a VIEW names its own disks");
    if (root && optind != argc)
        return usage_err("--root DIR takes no VIEW; give the disks with --disk SOURCE|VIEW");
    if (!root && optind + 1 != argc)
        return args_err(argc - optind, "VIEW (or --root DIR --disk SOURCE)", "one VIEW");
    struct stat vst;
    if (!root && (stat(argv[optind], &vst) != 0 || !S_ISDIR(vst.st_mode)))
        return usage_err("%s is not a view: give a mounted view directory such as MNT/web01 "
                         "(vdiskfs -o rw SOURCE MNT), or --root DIR --disk SOURCE",
                         argv[optind]);
    struct vd_fixup_devmap map = {0};
    struct vd_error err = {0};
    int rc = 0;
    for (size_t i = 0; i < ndisks && rc >= 0; i++) {
        struct stat st;
        if (stat(disks[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = vd_fixup_devmap_add_view(&map, disks[i], &err);
        else
            rc = vd_fixup_devmap_add_source(&map, disks[i], &err);
    }
    /* VIEW mode: the view itself says what sda1, sda2... are */
    if (rc >= 0 && !root)
        rc = vd_fixup_devmap_add_view(&map, argv[optind], &err);
    if (rc >= 0) {
        bool dry = fo.dry_run;
        bool win = false;
        if (root)
            rc = vd_fixup_root(root, &map, &fo, fixup_report, &dry, &err);
        else if ((rc = vd_fixup_windows_view(argv[optind], &fo, fixup_report, &dry, &win, &err)) >=
                     0 &&
                 !win)
            rc = vd_fixup_view(argv[optind], &map, &fo, fixup_report, &dry, &err);
    }
    vd_fixup_devmap_free(&map);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        if (rc == -ENOENT && !root) {
            /* Not a view: say which form of the command fits the folder. */
            char fstab[PATH_MAX];
            struct stat fst;
            snprintf(fstab, sizeof(fstab), "%s/etc/fstab", argv[optind]);
            if (stat(fstab, &fst) == 0)
                fprintf(stderr,
                        "%s: %s holds etc/fstab: for a guest's root filesystem mounted there, "
                        "run vdisk fixup --root %s --disk SOURCE (the guest's disk images, "
                        "first is sda)\n",
                        prog, argv[optind], argv[optind]);
            else
                fprintf(stderr,
                        "%s: give a view (MNT/name of a vdiskfs -o rw SOURCE MNT mount), or a "
                        "guest's root filesystem with --root DIR --disk SOURCE\n",
                        prog);
        }
        return 1;
    }
    if (rc == 0)
        printf("nothing to change\n");
    else if (fo.dry_run)
        printf("dry run: %d file%s would change; nothing was written\n", rc, rc == 1 ? "" : "s");
    else
        printf("%d file%s changed\n", rc, rc == 1 ? "" : "s");
    return 0;
}

/* ---- inspect ---- */

#define INSPECT_MAX_SRCS 32

/* A vdiskfs view folder: its disk.raw / diskN.raw files (not -pN, not
 * LVs), in disk order. */
static int view_disks(const char *dir, char **paths, size_t cap, size_t *n)
{
    *n = 0;
    for (unsigned d = 1; d <= cap; d++) {
        char p[4096];
        struct stat st;
        if (d == 1) {
            snprintf(p, sizeof(p), "%s/disk.raw", dir);
            if (stat(p, &st) != 0)
                snprintf(p, sizeof(p), "%s/disk1.raw", dir);
        } else {
            snprintf(p, sizeof(p), "%s/disk%u.raw", dir, d);
        }
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
            break;
        if (!(paths[(*n)++] = strdup(p)))
            return -ENOMEM;
    }
    return *n ? 0 : -ENOENT;
}

static const char *or_dash(const char *s)
{
    return s && s[0] ? s : "-";
}

static void print_size(uint64_t v)
{
    if (v == VD_INSPECT_UNKNOWN)
        printf("?");
    else if (v >= (1ull << 30))
        printf("%.1f GiB", (double)v / (1ull << 30));
    else
        printf("%.1f MiB", (double)v / (1ull << 20));
}

static void print_inspect(const struct vd_inspect *r)
{
    printf("filesystems:\n");
    for (size_t i = 0; i < r->nfss; i++) {
        const struct vd_inspect_fs *f = &r->fss[i];
        printf("  %-16s %-8s uuid %s label %s size ", f->dev, or_dash(f->type), or_dash(f->uuid),
               or_dash(f->label));
        print_size(f->size);
        printf(" free ");
        print_size(f->free);
        if (f->not_inspected)
            printf("  (not inspected: %s)", f->not_inspected);
        printf("\n");
    }
    if (!r->noss)
        printf("no operating system found\n");
    for (size_t i = 0; i < r->noss; i++) {
        const struct vd_inspect_os *o = &r->oss[i];
        printf("\nOS %zu: %s (%s %s, %s)\n", i + 1, or_dash(o->product), or_dash(o->distro),
               or_dash(o->version), o->type);
        printf("  root:         %s (%s), free ", o->root_dev, or_dash(o->root_fstype));
        print_size(o->free_bytes);
        printf("\n  architecture: %s (from %s)\n", or_dash(o->arch), or_dash(o->arch_from));
        printf("  boot mode:    %s", vd_inspect_boot_mode_name(o->boot_mode));
        if (o->bootloader_disk[0])
            printf(", BIOS boot code on %s", o->bootloader_disk);
        if (o->esp_dev[0])
            printf(", ESP %s (EFI/BOOT/BOOTX64.EFI %s)", o->esp_dev,
                   o->uefi_fallback ? "present" : "MISSING");
        printf("\n");
        if (!strcmp(o->type, "windows")) {
            printf("  build:        %s, edition %s, %s\n", or_dash(o->win_build),
                   or_dash(o->win_edition), or_dash(o->win_install));
            printf("  language:     %s\n", or_dash(o->win_language));
            printf("  boot drivers:");
            for (size_t k = 0; k < o->nwin_boot_drivers; k++)
                printf(" %s", o->win_boot_drivers[k]);
            printf("%s\n  DHCP client:  %s\n", o->nwin_boot_drivers ? "" : " none",
                   o->win_dhcp_enabled ? "enabled" : "disabled");
            printf("  pagefile:     %s\n", or_dash(o->win_pagefile));
            continue;
        }
        printf("  hostname:     %s\n", or_dash(o->hostname));
        printf("  boot loader:  %s (%s), default kernel %s\n", or_dash(o->bootloader),
               or_dash(o->bootloader_cfg), or_dash(o->default_kernel));
        printf("  fstab:%s\n", o->fstab_read ? "" : "        not read");
        for (size_t k = 0; k < o->nmounts; k++) {
            const struct vd_inspect_mount *m = &o->mounts[k];
            printf("    %-12s %-6s %s -> %s\n", m->mountpoint, or_dash(m->type), m->spec,
                   m->dev ? m->dev : "NOT FOUND");
        }
        printf("  kernels:\n");
        for (size_t k = 0; k < o->nkernels; k++) {
            const struct vd_inspect_kernel *kn = &o->kernels[k];
            printf("    %s%s  %zu modules  initrd %s\n", kn->version,
                   !strcmp(kn->version, o->default_kernel) ? " (default)" : "", kn->nmodules,
                   or_dash(kn->initrd));
            printf("      drivers:");
            for (size_t d = 0; d < kn->ninitramfs_drivers; d++)
                printf(" %s", kn->initramfs_drivers[d]);
            if (!kn->initramfs_read)
                printf(" (initramfs not read: %s)", kn->initramfs_why);
            printf("\n");
        }
        printf("  network:\n");
        for (size_t k = 0; k < o->nnets; k++) {
            const struct vd_inspect_net *e = &o->nets[k];
            printf("    %-14s %-10s %s%s%s%s%s\n", e->stack, e->iface[0] ? e->iface : "(any)",
                   e->dhcp ? "dhcp" : "", e->dhcp && e->static_addr ? "+" : "",
                   e->static_addr ? "static" : "", e->mac[0] ? " mac " : "", e->mac);
            printf("      in %s\n", e->file);
        }
        printf("  DHCP client:  %s\n", o->dhcp_client ? o->dhcp_client_name : "none found");
    }
    if (r->nwarnings)
        printf("\nwarnings:\n");
    for (size_t i = 0; i < r->nwarnings; i++)
        printf("  %s\n", r->warnings[i]);
}

static int cmd_inspect(int argc, char **argv)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'},       {"format", required_argument, NULL, 'f'},
        {"disk", required_argument, NULL, 'D'}, {"allow-path", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},       {0}};
    struct common co = {0};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":jf:h", lo, NULL)) != -1) {
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        if (c == 'j') {
            json = true;
        } else if (c == 'h') {
            printf("usage: vdisk inspect [--json] [--disk N] [-f FORMAT] SOURCE... | VIEW\n"
                   "Find the operating systems on a guest's disks and report what\n"
                   "virt-inspector does, without booting or mounting anything: distribution,\n"
                   "version, architecture, hostname, the root device and the fstab mounts\n"
                   "resolved against the disks and LVM volumes, kernels and their modules,\n"
                   "the default boot entry, boot mode (BIOS, UEFI, both), network configs,\n"
                   "the initramfs's storage and network drivers, every filesystem's size and\n"
                   "free space; for Windows the product, build, edition, language, boot-start\n"
                   "storage drivers, DHCP client and pagefile from the registry.\n"
                   "Several SOURCEs are the guest's disks in order (sda, sdb...). A VIEW (a\n"
                   "vdiskfs mount's MNT/name folder) is read through its diskN.raw files.\n"
                   "--disk N reads only disk N of a multi-disk source (an OVA).\n"
                   "--json prints the JSON of docs/inspect.md.\n"
                   "Exit status: 0 inspected (even if no OS was found), 1 the disks could not\n"
                   "be read, 2 usage.\n");
            return 0;
        } else {
            return bad_option(c, lo, argv);
        }
    }
    if (optind >= argc)
        return args_err(0, "SOURCE... or VIEW", "");
    char *paths[INSPECT_MAX_SRCS] = {0};
    struct vd_source *srcs[INSPECT_MAX_SRCS] = {0};
    struct vd_image *imgs[INSPECT_MAX_SRCS];
    size_t npaths = 0, nsrcs = 0, nimgs = 0;
    int rc = 1;
    struct stat st;
    if (optind + 1 == argc && stat(argv[optind], &st) == 0 && S_ISDIR(st.st_mode)) {
        if (view_disks(argv[optind], paths, INSPECT_MAX_SRCS, &npaths) < 0) {
            fprintf(stderr,
                    "%s: inspect: %s: no disk.raw or disk1.raw in this folder; give a vdiskfs "
                    "view (MNT/name) or an image\n",
                    prog, argv[optind]);
            goto out;
        }
        co.open.format = "raw";
    } else {
        for (int i = optind; i < argc; i++) {
            if (npaths == INSPECT_MAX_SRCS) {
                rc = usage_err("at most %d sources", INSPECT_MAX_SRCS);
                goto out;
            }
            paths[npaths++] = strdup(argv[i]);
        }
    }
    for (size_t i = 0; i < npaths; i++) {
        if (!paths[i] || !(srcs[nsrcs] = open_source(paths[i], &co)))
            goto out;
        struct vd_source *src = srcs[nsrcs++];
        size_t nd = vd_source_ndisks(src);
        if (co.disk && (size_t)co.disk > nd) {
            fprintf(stderr, "%s: %s: no disk %ld (it has %zu)\n", prog, paths[i], co.disk, nd);
            goto out;
        }
        for (size_t d = 0; d < nd; d++) {
            if (co.disk && d + 1 != (size_t)co.disk)
                continue;
            if (nimgs == INSPECT_MAX_SRCS) {
                fprintf(stderr, "%s: inspect: at most %d disks\n", prog, INSPECT_MAX_SRCS);
                goto out;
            }
            imgs[nimgs++] = vd_source_disk(src, d);
        }
    }
    struct vd_error err = {0};
    struct vd_guest *g = NULL;
    struct vd_inspect *r = NULL;
    if (vd_guest_open_images(imgs, nimgs, &g, &err) < 0 || vd_inspect_guest(g, &r, &err) < 0) {
        fprintf(stderr, "%s: inspect: %s\n", prog, err.msg);
        vd_guest_close(g);
        goto out;
    }
    rc = 0;
    if (json) {
        char *text;
        if (vd_inspect_json(r, &text, &err) < 0) {
            fprintf(stderr, "%s: inspect: %s\n", prog, err.msg);
            rc = 1;
        } else {
            fputs(text, stdout);
            free(text);
        }
    } else {
        print_inspect(r);
    }
    vd_inspect_free(r);
    vd_guest_close(g);
out:
    for (size_t i = 0; i < nsrcs; i++)
        vd_source_close(srcs[i]);
    for (size_t i = 0; i < npaths; i++)
        free(paths[i]);
    return rc;
}

/* ---- preflight ---- */

static int pf_name_cmp(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* A vdiskfs view folder: its whole-disk files (disk.raw, disk1.raw...), in
 * disk order, as raw sources. Partition and LV files are left out: the
 * guest finds those again on the disks. */
static int pf_view_disks(const char *dir, char ***paths, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    char **v = NULL;
    size_t nv = 0;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        if (strncmp(nm, "disk", 4) || l < 8 || strcmp(nm + l - 4, ".raw") || strchr(nm, '-'))
            continue;
        char **nv2 = realloc(v, (nv + 1) * sizeof(*v));
        if (!nv2 || asprintf(&nv2[nv], "%s/%s", dir, nm) < 0) {
            closedir(d);
            free(nv2 ? nv2 : v);
            return -ENOMEM;
        }
        v = nv2;
        nv++;
    }
    closedir(d);
    qsort(v, nv, sizeof(*v), pf_name_cmp);
    *paths = v;
    *n = nv;
    return 0;
}

static void pf_print_text(const struct vd_preflight *p, const struct vd_inspect *ins,
                          const char *route)
{
    const char *head[] = {
        "NOTES", ("RISKS (the import may pass; the instance may not boot or be reachable)"),
        "WOULD FAIL (AWS refuses the import)"};
    size_t cnt[3] = {0};
    bool az = p->target && !strcmp(p->target, "azure");
    for (size_t i = 0; i < p->n; i++)
        cnt[p->findings[i].severity]++;
    if (az)
        head[VD_PF_FAIL] = "WOULD FAIL (Azure refuses the upload)";
    printf("%s pre-flight (%s): %zu would fail, %zu risk%s, %zu note%s\n",
           az ? "Azure VHD upload" : "AWS VM Import", az ? "fixed VHD" : route, cnt[VD_PF_FAIL],
           cnt[VD_PF_RISK], cnt[VD_PF_RISK] == 1 ? "" : "s", cnt[VD_PF_NOTE],
           cnt[VD_PF_NOTE] == 1 ? "" : "s");
    for (int sev = VD_PF_FAIL; sev >= VD_PF_NOTE; sev--) {
        if (!cnt[sev])
            continue;
        printf("\n%s\n", head[sev]);
        for (size_t i = 0; i < p->n; i++) {
            const struct vd_pf_finding *x = &p->findings[i];
            if ((int)x->severity != sev)
                continue;
            printf("  [%s] %s\n", x->check, x->message);
            if (*x->aws_text)
                printf("    %s says: \"%s\"\n", az ? "Azure" : "AWS", x->aws_text);
            if (*x->fix)
                printf("    fix: %s\n", x->fix);
        }
    }
    if (ins && ins->nwarnings) {
        printf("\nNOT READ (inspection)\n");
        for (size_t i = 0; i < ins->nwarnings; i++)
            printf("  %s\n", ins->warnings[i]);
    }
    if (p->npassed) {
        printf("\npassed:");
        for (size_t i = 0; i < p->npassed; i++)
            printf(" %s", p->passed[i]);
        printf("\n");
    }
    int st = vd_preflight_status(p);
    printf("\nresult: %s (exit %d)\n",
           st == VD_PF_READY        ? "ready"
           : st == VD_PF_WOULD_FAIL ? "would fail"
                                    : "risks only",
           st);
}

static int cmd_preflight(int argc, char **argv)
{
    static const struct option lo[] = {{"target", required_argument, NULL, 't'},
                                       {"route", required_argument, NULL, 'r'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"deep", no_argument, NULL, 'd'},
                                       {"data", required_argument, NULL, 'T'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct common co = {0};
    struct vd_preflight_opts po = {.target = NULL, .route = "import-image"};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":f:h", lo, NULL)) != -1) {
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        switch (c) {
        case 't':
            po.target = optarg;
            break;
        case 'r':
            po.route = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'd':
            po.deep = true;
            break;
        case 'T':
            po.data_file = optarg;
            break;
        case 'h':
            printf("usage: vdisk preflight --target aws [--route import-image|import-snapshot]\n"
                   "                        [--deep] [--json] [--data FILE] SOURCE...|VIEW\n"
                   "       vdisk preflight --target azure [--json] SOURCE...\n"
                   "Check offline, before the upload, what AWS VM Import/Export would refuse or\n"
                   "what would keep the instance from booting: container and integrity (VHD\n"
                   "footers, VMDK subformat), disk size and count, one 64-bit Linux or Windows\n"
                   "OS, the distribution and kernel against AWS's table, root file system,\n"
                   "boot mode and UEFI fallback loader, fstab, LVM, DHCP and network configs,\n"
                   "free space; with --route import-snapshot, nvme and ena in the initramfs.\n"
                   "Each finding gives AWS's own error text where AWS has one, and the fix.\n"
                   "SOURCE...: the VM's disks in order (or one OVA); VIEW: a vdiskfs view\n"
                   "folder (MNT/name). --deep also reads every allocated byte, so that each\n"
                   "compressed VMDK grain is inflated (the whole image: slow over S3).\n"
                   "--data FILE: another AWS table than the installed aws-vmimport.txt.\n"
                   "--target azure: what Azure refuses in an uploaded disk (a fixed VHD of a\n"
                   "whole MiB, 20 MiB..32 TiB, its footer at the end); no guest checks.\n"
                   "Exit status: 0 ready, 2 would fail, 3 risks only, 1 could not check.\n"
                   "A usage error exits 1 too, with one line on stderr and nothing on stdout.\n"
                   "See docs/preflight.md.\n");
            return 0;
        default:
            return bad_option(c, lo, argv);
        }
    }
    if (!po.target)
        return usage_err("--target aws or --target azure is required");
    if (strcmp(po.target, "aws") && strcmp(po.target, "azure"))
        return usage_err("--target %s: expected aws or azure", po.target);
    if (strcmp(po.route, "import-image") && strcmp(po.route, "import-snapshot"))
        return usage_err("--route %s: expected import-image or import-snapshot", po.route);
    if (optind >= argc)
        return args_err(0, "SOURCE... or VIEW", "");
    char **paths = argv + optind, **owned = NULL;
    size_t npaths = (size_t)(argc - optind);
    struct stat st;
    if (npaths == 1 && stat(paths[0], &st) == 0 && S_ISDIR(st.st_mode)) {
        int r = pf_view_disks(paths[0], &owned, &npaths);
        if (r < 0 || npaths == 0) {
            fprintf(stderr, "%s: preflight: %s: %s\n", prog, paths[0],
                    r < 0 ? strerror(-r) : "no disk*.raw in this folder: not a vdiskfs view");
            free(owned);
            return 1;
        }
        paths = owned;
        if (!co.open.format)
            co.open.format = "raw";
    }
    struct vd_source **srcs = calloc(npaths, sizeof(*srcs));
    struct vd_guest *g = NULL;
    struct vd_inspect *ins = NULL;
    struct vd_preflight *p = NULL;
    struct vd_error err = {0};
    int rc = 1;
    if (!srcs)
        goto out;
    for (size_t i = 0; i < npaths; i++)
        if (!(srcs[i] = open_source(paths[i], &co)))
            goto out;
    /* A guest that cannot be opened or inspected (a corrupt image) still
     * gets the container checks: they say why AWS would refuse it. */
    struct vd_error gerr = {0};
    /* ImportImage installs the drivers itself: only the snapshot route
     * needs the initramfs listed (tens of MB, most of an S3 read). */
    struct vd_inspect_opts io = {.no_initramfs = strcmp(po.route, "import-snapshot") != 0};
    bool az = !strcmp(po.target, "azure"); /* container checks only: no guest */
    if (!az && (vd_guest_open_sources(srcs, npaths, &g, &gerr) < 0 ||
                vd_inspect_guest_opts(g, &io, &ins, &gerr) < 0)) {
        vd_inspect_free(ins);
        ins = NULL;
    }
    if (vd_preflight(srcs, npaths, vd_err_isset(&gerr) ? NULL : g, ins, &po, &p, &err) < 0) {
        fprintf(stderr, "%s: preflight: %s\n", prog, err.msg);
        goto out;
    }
    if (json) {
        char *text = NULL;
        if (vd_preflight_json(p, &text, &err) < 0) {
            fprintf(stderr, "%s: preflight: %s\n", prog, err.msg);
            goto out;
        }
        fputs(text, stdout);
        free(text);
    } else {
        pf_print_text(p, ins, po.route);
    }
    rc = vd_preflight_status(p);
    if (vd_err_isset(&gerr)) {
        fprintf(stderr, "%s: preflight: the guest could not be inspected: %s\n", prog, gerr.msg);
        if (rc != VD_PF_WOULD_FAIL)
            rc = 1;
    }
out:
    vd_preflight_free(p);
    vd_inspect_free(ins);
    vd_guest_close(g);
    for (size_t i = 0; srcs && i < npaths; i++)
        vd_source_close(srcs[i]);
    free(srcs);
    for (size_t i = 0; owned && i < npaths; i++)
        free(owned[i]);
    free(owned);
    return rc;
}

/* ---- serve: a thin wrapper that runs nbdkit with our plugin ---- */

/* The plugin beside this binary in a build tree, else the installed one,
 * else nbdkit's own search by name. VDISK_NBDKIT_PLUGIN overrides. */
static const char *serve_plugin(char *buf, size_t len)
{
    const char *env = getenv("VDISK_NBDKIT_PLUGIN");
    if (env && env[0])
        return env;
    ssize_t n = readlink("/proc/self/exe", buf, len - 32);
    if (n > 0) {
        buf[n] = '\0';
        char *slash = strrchr(buf, '/');
        if (slash) {
            strcpy(slash + 1, "nbdkit-vdisk-plugin.so");
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
#ifdef VDISK_NBDKIT_PLUGIN
    if (access(VDISK_NBDKIT_PLUGIN, R_OK) == 0)
        return VDISK_NBDKIT_PLUGIN;
#endif
    return "vdisk";
}

/* nbdkit leaves a socket file it was given behind when it stops: remove
 * one nobody listens on, refuse one that is live. */
static int serve_stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "%s: serve: %s exists and is not a socket; choose another --socket\n", prog,
                path);
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "%s: serve: %s: socket path too long\n", prog, path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (r == 0) {
        fprintf(stderr,
                "%s: serve: %s is in use by a running server; stop it, or choose another "
                "--socket\n",
                prog, path);
        return -1;
    }
    unlink(path);
    return 0;
}

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: vdisk serve [OPTIONS] SOURCE [-- NBDKIT-OPTIONS...]\n"
               "Serve SOURCE's disks, partitions and LVM volumes over NBD with nbdkit and\n"
               "the vdisk plugin (nbdkit-vdisk-plugin(1), docs/nbd.md), in the foreground\n"
               "until interrupted. Read-only unless --overlay is given.\n"
               "  --socket PATH      listen on a Unix socket (default: vdisk-NAME.sock in\n"
               "                     $XDG_RUNTIME_DIR, else /tmp)\n"
               "  --tcp [ADDR:]PORT  listen on TCP instead (plain text unless --tls)\n"
               "  --tls on|require   passed to nbdkit, with --tls-certificates DIR\n"
               "  --disk N           default export: disk N of an OVA (others by name)\n"
               "  --device NAME      default export by name: disk-p1, lvm-VG-LV\n"
               "  --overlay FILE     writable: writes land in FILE (shared with vdiskfs)\n"
               "  --run CMD          run CMD with $uri set, then stop (nbdkit --run)\n"
               "  -f, --format FMT   skip probing;  --allow-path DIR  as for other commands\n"
               "Exports are named as the mount's files without .raw (nbdinfo --list).\n"
               "NBDKIT selects the nbdkit binary; VDISK_NBDKIT_PLUGIN the plugin.\n");
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option lo[] = {{"socket", required_argument, NULL, 'S'},
                                       {"tcp", required_argument, NULL, 'T'},
                                       {"tls", required_argument, NULL, 'L'},
                                       {"tls-certificates", required_argument, NULL, 'C'},
                                       {"disk", required_argument, NULL, 'D'},
                                       {"device", required_argument, NULL, 'N'},
                                       {"overlay", required_argument, NULL, 'V'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"allow-path", required_argument, NULL, 'A'},
                                       {"run", required_argument, NULL, 'R'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    struct common co = {0};
    const char *sock = NULL, *tcp = NULL, *tls = NULL, *certs = NULL, *device = NULL, *run = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "+:f:h", lo, NULL)) != -1) {
        if ((c = common_opt(c, &co)) <= 0) {
            if (c < 0)
                return usage_code();
            continue;
        }
        switch (c) {
        case 'S':
            sock = optarg;
            break;
        case 'T':
            tcp = optarg;
            break;
        case 'L':
            tls = optarg;
            break;
        case 'C':
            certs = optarg;
            break;
        case 'N':
            device = optarg;
            break;
        case 'R':
            run = optarg;
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            return bad_option(c, lo, argv);
        }
    }
    if (optind >= argc || (optind + 1 < argc && strcmp(argv[optind + 1], "--") != 0))
        return usage_err("expected one SOURCE");
    if (sock && tcp)
        return usage_err("give --socket or --tcp, not both");
    if (co.disk && device)
        return usage_err("give --disk or --device, not both");
    const char *source = argv[optind];
    char **extra = optind + 1 < argc ? &argv[optind + 2] : &argv[argc];
    int nextra = (int)(&argv[argc] - extra);

    char plugin_buf[4096], sock_buf[4096], port_buf[64], addr_buf[256];
    const char *plugin = serve_plugin(plugin_buf, sizeof(plugin_buf));
    const char *nbdkit = getenv("NBDKIT");
    if (!nbdkit || !nbdkit[0])
        nbdkit = "nbdkit";

    /* nbdkit goes to / before serving: hand it absolute paths. */
    char *abs_src = NULL, *abs_ov = NULL;
    if (!strstr(source, "://")) {
        abs_src = realpath(source, NULL);
        if (!abs_src) {
            fprintf(stderr, "%s: serve: %s: %s\n", prog, source, strerror(errno));
            return 1;
        }
        source = abs_src;
    }
    if (co.overlay) {
        /* The overlay may not exist yet (nbdkit creates it): resolve its
         * directory. */
        char *dup = strdup(co.overlay), *slash = dup ? strrchr(dup, '/') : NULL;
        const char *dir = slash ? (slash == dup ? "/" : (*slash = '\0', dup)) : ".";
        char *rdir = dup ? realpath(dir, NULL) : NULL;
        const char *base = strrchr(co.overlay, '/') ? strrchr(co.overlay, '/') + 1 : co.overlay;
        if (!rdir || asprintf(&abs_ov, "%s/%s", rdir, base) < 0) {
            fprintf(stderr, "%s: serve: --overlay %s: %s\n", prog, co.overlay, strerror(errno));
            free(dup);
            free(rdir);
            free(abs_src);
            return 1;
        }
        free(dup);
        free(rdir);
    }

    char uri[4200];
    if (!tcp && !sock && run) {
        sock = "-"; /* nbdkit makes a private socket and sets $uri */
    } else if (!tcp && !sock) {
        const char *dir = getenv("XDG_RUNTIME_DIR");
        char stem[96];
        const char *b = strrchr(source, '/');
        snprintf(stem, sizeof(stem), "%s", b && b[1] ? b + 1 : source);
        char *cut = strchr(stem, '?');
        if (cut)
            *cut = '\0';
        if ((cut = strrchr(stem, '.')) && cut != stem)
            *cut = '\0';
        snprintf(sock_buf, sizeof(sock_buf), "%s/vdisk-%s.sock", dir && dir[0] ? dir : "/tmp",
                 stem);
        sock = sock_buf;
    }
    if (sock && strcmp(sock, "-") != 0 && serve_stale_socket(sock) < 0) {
        free(abs_src);
        free(abs_ov);
        return 1;
    }
    if (sock) {
        snprintf(uri, sizeof(uri), "nbd%s+unix:///?socket=%s", tls ? "s" : "", sock);
    } else {
        const char *colon = strrchr(tcp, ':');
        if (colon) {
            snprintf(addr_buf, sizeof(addr_buf), "%.*s", (int)(colon - tcp), tcp);
            snprintf(port_buf, sizeof(port_buf), "%s", colon + 1);
        } else {
            addr_buf[0] = '\0';
            snprintf(port_buf, sizeof(port_buf), "%s", tcp);
        }
        snprintf(uri, sizeof(uri), "nbd%s://%s:%s/", tls ? "s" : "",
                 addr_buf[0] ? addr_buf : "localhost", port_buf);
        if (!tls)
            fprintf(stderr,
                    "%s: serve: warning: TCP without --tls: anyone who can reach port %s "
                    "reads the disk%s\n",
                    prog, port_buf, co.overlay ? " and writes to the overlay" : "");
    }

    const char *args[64 + 32];
    int n = 0;
    char disk_arg[64], *opt_args[8] = {0};
    int nopt = 0;
    args[n++] = nbdkit;
    args[n++] = "--foreground";
    if (!co.overlay)
        args[n++] = "--readonly";
    if (sock) {
        args[n++] = "--unix";
        args[n++] = sock;
    } else {
        if (addr_buf[0]) {
            args[n++] = "--ipaddr";
            args[n++] = addr_buf;
        }
        args[n++] = "--port";
        args[n++] = port_buf;
    }
    if (tls && asprintf(&opt_args[nopt], "--tls=%s", tls) >= 0)
        args[n++] = opt_args[nopt++];
    if (certs && asprintf(&opt_args[nopt], "--tls-certificates=%s", certs) >= 0)
        args[n++] = opt_args[nopt++];
    if (run) {
        args[n++] = "--run";
        args[n++] = run;
    }
    for (int i = 0; i < nextra && n < 64; i++)
        args[n++] = extra[i];
    args[n++] = plugin;
    if (asprintf(&opt_args[nopt], "source=%s", source) >= 0)
        args[n++] = opt_args[nopt++];
    if (co.disk) {
        snprintf(disk_arg, sizeof(disk_arg), "disk=%ld", co.disk);
        args[n++] = disk_arg;
    }
    if (device && asprintf(&opt_args[nopt], "device=%s", device) >= 0)
        args[n++] = opt_args[nopt++];
    if (abs_ov && asprintf(&opt_args[nopt], "overlay=%s", abs_ov) >= 0)
        args[n++] = opt_args[nopt++];
    if (co.open.format && asprintf(&opt_args[nopt], "format=%s", co.open.format) >= 0)
        args[n++] = opt_args[nopt++];
    for (size_t i = 0; i < co.nallow && n < 90; i++) {
        char *a;
        if (asprintf(&a, "allow-path=%s", co.allow[i]) >= 0)
            args[n++] = a; /* lives until exec */
    }
    args[n] = NULL;
    if (!run)
        fprintf(stderr, "%s: serving %s%s at %s (Ctrl-C stops)\n", prog, source,
                co.overlay ? " with writes to the overlay" : " read-only", uri);
    fflush(NULL);
    /* execvp's argv is char *const[] for historical reasons; it does not
     * write to the strings (POSIX, exec "Rationale"). */
    execvp(nbdkit, (char *const *)args);
    fprintf(stderr, "%s: serve: cannot run %s: %s%s\n", prog, nbdkit, strerror(errno),
            errno == ENOENT ? " (install nbdkit: apt install nbdkit)" : "");
    return 1;
}

/* ---- status: an export's xattrs, without getfattr ---- */

#define STATUS_PREFIX "user.vdisk."

static void json_str(const char *v)
{
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

/* Print the user.vdisk.* attributes of PATH (fusefs/export.c sets
 * user.vdisk.status: "writing N", "done N SHA256", "error: MSG"; others
 * may add keys): "LABEL: key: value" lines (no "LABEL: " when LABEL is
 * NULL), or a JSON object indented by INDENT. Returns how many were
 * printed (0: PATH has none, nothing printed) or -errno. */
static int status_print(const char *path, const char *label, bool json, const char *indent)
{
    char names[4096], value[8192];
    ssize_t len = listxattr(path, names, sizeof(names) - 1);
    if (len < 0 && errno != ENOTSUP && errno != ENODATA)
        return -errno;
    int n = 0;
    for (ssize_t off = 0; len > 0 && off < len; off += (ssize_t)strlen(names + off) + 1) {
        const char *name = names + off;
        if (strncmp(name, STATUS_PREFIX, strlen(STATUS_PREFIX)) != 0)
            continue;
        ssize_t vl = getxattr(path, name, value, sizeof(value) - 1);
        if (vl < 0)
            return -errno;
        value[vl] = '\0';
        const char *key = name + strlen(STATUS_PREFIX);
        if (json) {
            printf("%s%s  ", n ? ",\n" : "{\n", indent);
            json_str(key);
            printf(": ");
            json_str(value);
        } else {
            printf("%s%s%s: %s\n", label ? label : "", label ? ": " : "", key, value);
        }
        n++;
    }
    if (json && n)
        printf("\n%s}", indent);
    return n;
}

static int status_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* MNT/export: the status of each export in it, by name. */
static int status_dir(const char *dir, bool json)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: status: %s: %s\n", prog, dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t nn = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char **grown = realloc(names, (nn + 1) * sizeof(*names));
        if (!grown || !(grown[nn] = strdup(e->d_name))) {
            names = grown ? grown : names;
            rc = 1;
            fprintf(stderr, "%s: status: %s: out of memory\n", prog, dir);
            break;
        }
        names = grown;
        nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof(*names), status_name_cmp);
    int shown = 0;
    for (size_t i = 0; i < nn && !rc; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (json) {
            /* the key first, then the object: nothing printed for an
             * entry without status, so probe it before */
            char probe[8];
            if (listxattr(path, probe, 0) <= 0)
                continue;
            printf("%s  ", shown ? ",\n" : "{\n");
            json_str(names[i]);
            printf(": ");
        }
        int r = status_print(path, names[i], json, json ? "  " : "");
        if (r < 0) {
            fprintf(stderr, "%s: status: %s: %s\n", prog, path, strerror(-r));
            rc = 1;
        } else if (json && r == 0) {
            printf("{}");
        }
        shown += r > 0 || json;
    }
    if (!rc && json)
        printf("%s}\n", shown ? "\n" : "{");
    else if (!rc && !shown)
        printf("no exports in %s\n", dir);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int cmd_status(int argc, char **argv)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":jh", lo, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if (c == 'h') {
            printf("usage: vdisk status [--json] MNT/export/NAME | MNT/export\n"
                   "Print the status of an export in a vdiskfs mount's export/ folder, as the\n"
                   "mount keeps it in the file's user.vdisk.* extended attributes (what\n"
                   "getfattr -d -m user.vdisk shows): one 'key: value' line each, e.g.\n"
                   "'status: writing BYTES', 'status: done BYTES SHA256' or\n"
                   "'status: error: MESSAGE'. --json prints them as one JSON object.\n"
                   "Given the export/ folder, each export's lines start with its name\n"
                   "(JSON: an object per name). Reading a finished local export's status\n"
                   "waits for its digest.\n"
                   "Exit status: 0 printed, 1 not an export or unreadable, 2 usage.\n");
            return 0;
        } else {
            return bad_option(c, lo, argv);
        }
    }
    if (optind + 1 != argc)
        return args_err(argc - optind, "MNT/export/NAME", "one MNT/export/NAME");
    const char *path = argv[optind];
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: status: %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    if (S_ISDIR(st.st_mode))
        return status_dir(path, json);
    int n = status_print(path, NULL, json, "");
    if (n < 0) {
        fprintf(stderr, "%s: status: %s: %s\n", prog, path, strerror(-n));
        return 1;
    }
    if (!n) {
        fprintf(stderr,
                "%s: status: %s: no export status here; give a file in a vdiskfs mount's "
                "export/ folder (MNT/export/NAME)\n",
                prog, path);
        return 1;
    }
    if (json)
        printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const cmds[] = {"info",    "hash",      "check", "convert", "fixup",
                                       "inspect", "preflight", "serve", "status"};
    opterr = 0; /* bad_option says what is wrong, in one line */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("vdisk %s\n", vd_version());
        return 0;
    }
    argv[1] = argv[0];
    argc--;
    argv++;
    cur_cmd = cmd;
    if (!strcmp(cmd, "info"))
        return cmd_info(argc, argv);
    if (!strcmp(cmd, "hash"))
        return cmd_hash(argc, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc, argv);
    if (!strcmp(cmd, "fixup"))
        return cmd_fixup(argc, argv);
    if (!strcmp(cmd, "inspect"))
        return cmd_inspect(argc, argv);
    if (!strcmp(cmd, "preflight"))
        return cmd_preflight(argc, argv);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc, argv);
    if (!strcmp(cmd, "status"))
        return cmd_status(argc, argv);
    const char *near = nearest(cmd, cmds, sizeof(cmds) / sizeof(cmds[0]));
    if (near)
        fprintf(stderr, "%s: unknown command '%s' (did you mean '%s'?); see 'vdisk --help'\n", prog,
                cmd, near);
    else
        fprintf(stderr, "%s: unknown command '%s'; see 'vdisk --help'\n", prog, cmd);
    return 2;
}
