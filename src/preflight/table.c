/*
 * The AWS VM Import support table: data/aws-vmimport.txt, one rule a line
 * (the file documents its own syntax and cites its sources). Kept out of
 * the code so that a change on AWS's side is an edit of that file only.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preflight/preflight_int.h"

#define PF_TABLE_NAME "aws-vmimport.txt"
#define PF_TABLE_MAX  (1u << 20)
#define PF_MAX_FIELDS 32

static int add_str(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void pf_table_free(struct pf_table *t)
{
    if (!t)
        return;
    free(t->source);
    free_strs(t->linux_fs, t->nlinux_fs);
    free_strs(t->windows_fs, t->nwindows_fs);
    for (size_t i = 0; i < t->nlinux; i++) {
        struct pf_linux_row *r = &t->linux_rows[i];
        free(r->id);
        free(r->vmin);
        free(r->vmax);
        free_strs(r->kernels, r->nkernels);
        free(r->name);
    }
    free(t->linux_rows);
    free_strs(t->windows, t->nwindows);
    free(t);
}

/* Split line (modified in place) at blanks into f[]; the text after a '#'
 * is dropped. Returns the field count. rest[i] points at field i's start in
 * the original line, for rules whose last field is free text. */
static size_t split(char *line, char **f, const char **rest, const char *orig)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    size_t n = 0;
    char *p = line;
    while (n < PF_MAX_FIELDS) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            break;
        f[n] = p;
        rest[n] = orig + (p - line);
        n++;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || !isdigit((unsigned char)*s))
        return -1;
    *v = x;
    return 0;
}

/* The free text of a rule from field i to the end (comment and trailing
 * blanks dropped). */
static char *tail_text(const char *from)
{
    size_t n = strcspn(from, "#\r\n");
    while (n && (from[n - 1] == ' ' || from[n - 1] == '\t'))
        n--;
    return strndup(from, n);
}

static int parse_line(struct pf_table *t, char *line, const char *orig, const char **why)
{
    char *f[PF_MAX_FIELDS];
    const char *rest[PF_MAX_FIELDS];
    size_t n = split(line, f, rest, orig);
    if (n == 0)
        return 0;
    if (!strcmp(f[0], "source")) {
        if (n < 2)
            return *why = "source wants a URL", -EINVAL;
        free(t->source);
        return (t->source = tail_text(rest[1])) ? 0 : -ENOMEM;
    }
    if (!strcmp(f[0], "limit")) {
        uint64_t v;
        if (n != 3 || parse_u64(f[2], &v) < 0)
            return *why = "limit wants a name and a number", -EINVAL;
        if (!strcmp(f[1], "disk-max-bytes"))
            t->disk_max = v;
        else if (!strcmp(f[1], "manifest-above-bytes"))
            t->manifest_above = v;
        else if (!strcmp(f[1], "max-volumes") && v <= UINT32_MAX)
            t->max_volumes = (unsigned)v;
        else if (!strcmp(f[1], "linux-min-free-bytes"))
            t->linux_min_free = v;
        else if (!strcmp(f[1], "windows-min-free-bytes"))
            t->windows_min_free = v;
        else
            return *why = "unknown limit", -EINVAL;
        return 0;
    }
    if (!strcmp(f[0], "fs")) {
        if (n != 3)
            return *why = "fs wants an OS (linux, windows) and a type", -EINVAL;
        if (!strcmp(f[1], "linux"))
            return add_str(&t->linux_fs, &t->nlinux_fs, f[2]);
        if (!strcmp(f[1], "windows"))
            return add_str(&t->windows_fs, &t->nwindows_fs, f[2]);
        return *why = "fs wants an OS (linux, windows) and a type", -EINVAL;
    }
    if (!strcmp(f[0], "linux")) {
        if (n < 6)
            return *why = "linux wants ID VERSION-MIN VERSION-MAX KERNELS NAME", -EINVAL;
        struct pf_linux_row *nr = realloc(t->linux_rows, (t->nlinux + 1) * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        t->linux_rows = nr;
        struct pf_linux_row *r = &nr[t->nlinux++];
        memset(r, 0, sizeof(*r));
        r->id = strdup(f[1]);
        r->vmin = strdup(f[2]);
        r->vmax = strdup(f[3]);
        r->name = tail_text(rest[5]);
        if (!r->id || !r->vmin || !r->vmax || !r->name)
            return -ENOMEM;
        if (pf_version_cmp(r->vmin, r->vmax) > 0)
            return *why = "VERSION-MIN is above VERSION-MAX", -EINVAL;
        char *save = NULL;
        for (char *k = strtok_r(f[4], ",", &save); k; k = strtok_r(NULL, ",", &save))
            if (add_str(&r->kernels, &r->nkernels, k) < 0)
                return -ENOMEM;
        if (!r->nkernels)
            return *why = "linux wants at least one kernel", -EINVAL;
        return 0;
    }
    if (!strcmp(f[0], "windows")) {
        if (n < 2)
            return *why = "windows wants a product name", -EINVAL;
        char *s = tail_text(rest[1]);
        if (!s)
            return -ENOMEM;
        int r = add_str(&t->windows, &t->nwindows, s);
        free(s);
        return r;
    }
    return *why = "unknown rule (source, limit, fs, linux, windows)", -EINVAL;
}

int pf_table_parse(const char *text, size_t len, const char *name, struct pf_table **out,
                   struct vd_error *err)
{
    *out = NULL;
    if (len > PF_TABLE_MAX)
        return vd_err(err, -EFBIG, "preflight: %s: table is %zu bytes, more than %u", name, len,
                      PF_TABLE_MAX);
    if (memchr(text, '\0', len))
        return vd_err(err, -EINVAL, "preflight: %s: table holds a NUL byte: not a text file", name);
    struct pf_table *t = calloc(1, sizeof(*t));
    char *line = malloc(len + 1), *orig = malloc(len + 1);
    int r = 0;
    if (!t || !line || !orig) {
        r = vd_err(err, -ENOMEM, "preflight: %s: out of memory", name);
        goto out;
    }
    unsigned no = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        memcpy(line, text + pos, n);
        line[n] = '\0';
        memcpy(orig, line, n + 1);
        no++;
        const char *why = "out of memory";
        if ((r = parse_line(t, line, orig, &why)) < 0) {
            r = vd_err(err, r, "preflight: %s: line %u: %s", name, no, why);
            goto out;
        }
        pos += n + (nl ? 1 : 0);
    }
    if (!t->disk_max || !t->max_volumes || !t->nlinux || !t->nlinux_fs) {
        r = vd_err(err, -EINVAL,
                   "preflight: %s: table lacks a rule (limit disk-max-bytes, limit "
                   "max-volumes, a linux row and an fs linux row are needed)",
                   name);
        goto out;
    }
    if (!t->source && !(t->source = strdup(""))) {
        r = vd_err(err, -ENOMEM, "preflight: %s: out of memory", name);
        goto out;
    }
    *out = t;
    t = NULL;
out:
    free(line);
    free(orig);
    pf_table_free(t);
    return r;
}

static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -errno;
    char *b = malloc(PF_TABLE_MAX + 1);
    if (!b) {
        fclose(fp);
        return -ENOMEM;
    }
    size_t n = fread(b, 1, PF_TABLE_MAX + 1, fp);
    int r = ferror(fp) ? -EIO : 0;
    fclose(fp);
    if (r < 0) {
        free(b);
        return r;
    }
    *buf = b;
    *len = n;
    return 0;
}

int pf_table_load(const char *path, struct pf_table **out, struct vd_error *err)
{
    char cand[3][4096];
    size_t nc = 0;
    if (path) {
        snprintf(cand[nc++], sizeof(cand[0]), "%s", path);
    } else {
        const char *env = getenv("VDISK_DATA_DIR");
        if (env && *env)
            snprintf(cand[nc++], sizeof(cand[0]), "%s/%s", env, PF_TABLE_NAME);
#ifdef VDISK_DATADIR
        snprintf(cand[nc++], sizeof(cand[0]), "%s/%s", VDISK_DATADIR, PF_TABLE_NAME);
#endif
#ifdef VDISK_SOURCE_DATADIR
        snprintf(cand[nc++], sizeof(cand[0]), "%s/%s", VDISK_SOURCE_DATADIR, PF_TABLE_NAME);
#endif
    }
    for (size_t i = 0; i < nc; i++) {
        char *buf = NULL;
        size_t len = 0;
        int r = read_file(cand[i], &buf, &len);
        if (r == -ENOENT && !path)
            continue;
        if (r < 0)
            return vd_err(err, r, "preflight: %s: cannot read the AWS support table: %s", cand[i],
                          strerror(-r));
        r = pf_table_parse(buf, len, cand[i], out, err);
        free(buf);
        return r;
    }
    return vd_err(err, -ENOENT,
                  "preflight: %s: the AWS support table is not installed; set VDISK_DATA_DIR "
                  "to the folder holding it, or pass its path",
                  PF_TABLE_NAME);
}
