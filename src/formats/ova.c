/*
 * OVA: an OVF package as one tar archive (DMTF DSP0243 2.1.1, section 5.3
 * "Distribution as a single file"). The descriptor comes first, then
 * usually the manifest and certificate, then the disk files:
 *
 *   +-----+-----------+-----+--------+-----+-----------------+-----+----
 *   | hdr | vm.ovf    | hdr | vm.mf  | hdr | vm-disk1.vmdk   | hdr | ...
 *   +-----+-----------+-----+--------+-----+-----------------+-----+----
 *              |                               ^
 *              | DiskSection/Disk ovf:fileRef -> References/File ovf:href
 *              +-------------------------------+
 *
 * Nothing is extracted: each disk is the offset window of its tar member
 * (tar.c), which the core opens with a slice io and the normal probe. The
 * descriptor is the first member named *.ovf (ovf.c); hrefs resolve
 * relative to its directory (macOS "._x.ovf" AppleDouble members are
 * skipped). The manifest is <descriptor stem>.mf, else the first *.mf member; lines read
 * "SHA256(name)= hex" (also SHA1, SHA384, SHA512, MD5) and are verified by vd_ova_check() only.
 *
 * Not supported: compressed (ovf:compression="gzip") or chunked
 * (ovf:chunkSize) disk files (-ENOTSUP), files outside the archive
 * (href URLs), disks with no ovf:fileRef (created empty at deploy time:
 * listed in the info JSON, not exposed), certificate (.cert) checks.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/checked.h"
#include "common/json.h"
#include "formats/ova.h"
#include "formats/ovf.h"
#include "formats/tar.h"

#define OVA_MAX_DESCRIPTOR (16u << 20)
#define OVA_MAX_MANIFEST   (1u << 20)
#define OVA_HASH_CHUNK     (1u << 20)

struct ova_priv {
    struct vd_io *io;
    struct vd_tar tar;
    struct vd_ovf *ovf;
    char *dir;                      /* descriptor's directory in the archive: "" or "a/b/" */
    const struct vd_tar_member *mf; /* manifest, or NULL */
};

bool vd_ova_probe(const uint8_t *head, size_t head_len)
{
    return vd_tar_probe(head, head_len);
}

static bool ova_has_suffix(const char *s, const char *suffix)
{
    size_t l = strlen(s), sl = strlen(suffix);
    return l > sl && !strcasecmp(s + l - sl, suffix);
}

static bool ova_is_plain(const struct vd_tar_member *m)
{
    return m->typeflag == '0' && !m->unsafe && !m->sparse;
}

/* A descriptor or manifest candidate: plain, and not one of the "._name"
 * AppleDouble files that macOS tar adds before each real file. */
static bool ova_is_candidate(const struct vd_tar_member *m, const char *suffix)
{
    const char *base = strrchr(m->name, '/');
    base = base ? base + 1 : m->name;
    return ova_is_plain(m) && strncmp(base, "._", 2) && ova_has_suffix(m->name, suffix);
}

static bool ova_is_url(const char *href)
{
    const char *p = href;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    return p != href && !strncmp(p, "://", 3);
}

static int ova_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The member an href (relative to the descriptor) names: as written, then
 * percent-decoded (hrefs are URI references). NULL if not in the archive. */
static const struct vd_tar_member *ova_lookup(const struct ova_priv *p, const char *href)
{
    if (ova_is_url(href))
        return NULL;
    size_t dl = strlen(p->dir), hl = strlen(href);
    char *path = malloc(dl + hl + 1);
    if (!path)
        return NULL;
    memcpy(path, p->dir, dl);
    memcpy(path + dl, href, hl + 1);
    const struct vd_tar_member *m = vd_tar_find(&p->tar, path);
    if (!m && strchr(href, '%')) {
        char *o = path + dl;
        for (const char *s = href; *s; s++) {
            int hi, lo;
            if (*s == '%' && (hi = ova_hexval(s[1])) >= 0 && (lo = ova_hexval(s[2])) >= 0 &&
                (hi || lo)) {
                *o++ = (char)(hi << 4 | lo);
                s += 2;
            } else {
                *o++ = *s;
            }
        }
        *o = '\0';
        m = vd_tar_find(&p->tar, path);
    }
    free(path);
    return m;
}

static int ova_read_member(struct vd_io *io, const struct vd_tar_member *m, uint64_t cap,
                           const char *what, char **out, size_t *len, struct vd_error *err)
{
    if (m->size > cap)
        return vd_err(err, -EINVAL, "ova: %s: %s %s is %" PRIu64 " bytes (limit %" PRIu64 ")",
                      io->name, what, m->name, m->size, cap);
    char *b = malloc((size_t)m->size + 1);
    if (!b)
        return vd_err(err, -ENOMEM, "out of memory");
    int r = vd_io_pread_full(io, b, (size_t)m->size, m->offset, err);
    if (r < 0) {
        free(b);
        return r;
    }
    b[m->size] = '\0';
    *out = b;
    *len = (size_t)m->size;
    return 0;
}

static int ova_add_disk(struct vd_ova *ova, const struct vd_ovf_disk *d, struct vd_error *err)
{
    struct ova_priv *p = ova->priv;
    struct vd_io *io = p->io;
    const struct vd_ovf_file *f = vd_ovf_find_file(p->ovf, d->file_ref);
    if (f->compression)
        return vd_err(err, -ENOTSUP,
                      "ova: %s: disk %s: file %s is compressed (ovf:compression=\"%s\"): "
                      "not supported",
                      io->name, d->disk_id, f->href, f->compression);
    if (f->has_chunk_size)
        return vd_err(err, -ENOTSUP,
                      "ova: %s: disk %s: file %s is split into chunks (ovf:chunkSize): "
                      "not supported",
                      io->name, d->disk_id, f->href);
    const struct vd_tar_member *m = ova_lookup(p, f->href);
    if (!m)
        return vd_err(err, -EINVAL, "ova: %s: disk %s: file %s is not in the archive", io->name,
                      d->disk_id, f->href);
    if (m->typeflag != '0')
        return vd_err(err, -EINVAL,
                      "ova: %s: disk %s: archive member %s is not a regular file (type '%c')",
                      io->name, d->disk_id, m->name, m->typeflag);
    if (m->sparse)
        return vd_err(err, -ENOTSUP,
                      "ova: %s: disk %s: archive member %s is a GNU sparse member: not supported",
                      io->name, d->disk_id, m->name);
    struct vd_ova_disk *od = &ova->disks[ova->ndisks];
    od->disk_id = strdup(d->disk_id);
    od->member = strdup(m->name);
    od->format = d->format ? strdup(d->format) : NULL;
    ova->ndisks++; /* counted before the check so close() frees a partial entry */
    if (!od->disk_id || !od->member || (d->format && !od->format))
        return vd_err(err, -ENOMEM, "out of memory");
    od->offset = m->offset;
    od->size = m->size;
    od->capacity = d->capacity;
    return 0;
}

int vd_ova_open(struct vd_io *io, struct vd_ova **out, struct vd_error *err)
{
    int r;
    struct vd_ova *ova = calloc(1, sizeof(*ova));
    struct ova_priv *p = calloc(1, sizeof(*p));
    if (!ova || !p) {
        free(ova);
        free(p);
        return vd_err(err, -ENOMEM, "out of memory");
    }
    ova->priv = p;
    vd_io_ref(io);
    p->io = io;

    r = vd_tar_walk(io, &p->tar, err);
    if (r < 0)
        goto fail;
    const struct vd_tar_member *desc = NULL;
    for (size_t i = 0; i < p->tar.n && !desc; i++)
        if (ova_is_candidate(&p->tar.m[i], ".ovf"))
            desc = &p->tar.m[i];
    if (!desc) {
        r = vd_err(err, -EINVAL, "ova: %s: no .ovf descriptor in the archive (%zu members)",
                   io->name, p->tar.n);
        goto fail;
    }
    const char *slash = strrchr(desc->name, '/');
    size_t dl = slash ? (size_t)(slash - desc->name) + 1 : 0;
    p->dir = strndup(desc->name, dl);
    ova->ovf_name = strdup(desc->name);
    if (!p->dir || !ova->ovf_name) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto fail;
    }
    r = ova_read_member(io, desc, OVA_MAX_DESCRIPTOR, "descriptor", &ova->ovf_text, &ova->ovf_len,
                        err);
    if (r < 0)
        goto fail;
    /* Messages name the descriptor as "web01.ova/web01.ovf". */
    char *label = NULL;
    if (asprintf(&label, "%s/%s", vd_io_basename(io), desc->name) < 0) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto fail;
    }
    r = vd_ovf_parse(ova->ovf_text, ova->ovf_len, label, &p->ovf, err);
    free(label);
    if (r < 0)
        goto fail;

    /* Manifest: <stem>.mf beside the descriptor, else the first *.mf. */
    size_t nl = strlen(desc->name);
    char *mfname = malloc(nl + 1);
    if (!mfname) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(mfname, desc->name, nl - 4);
    memcpy(mfname + nl - 4, ".mf", 4);
    p->mf = vd_tar_find(&p->tar, mfname);
    free(mfname);
    if (p->mf && !ova_is_plain(p->mf))
        p->mf = NULL;
    for (size_t i = 0; i < p->tar.n && !p->mf; i++)
        if (ova_is_candidate(&p->tar.m[i], ".mf"))
            p->mf = &p->tar.m[i];

    if (p->ovf->ndisks) {
        ova->disks = calloc(p->ovf->ndisks, sizeof(*ova->disks));
        if (!ova->disks) {
            r = vd_err(err, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < p->ovf->ndisks; i++) {
        if (!p->ovf->disks[i].file_ref)
            continue; /* an empty disk to create at deploy time: nothing to read */
        r = ova_add_disk(ova, &p->ovf->disks[i], err);
        if (r < 0)
            goto fail;
    }
    *out = ova;
    return 0;

fail:
    vd_ova_close(ova);
    return r;
}

void vd_ova_close(struct vd_ova *ova)
{
    if (!ova)
        return;
    struct ova_priv *p = ova->priv;
    for (size_t i = 0; i < ova->ndisks; i++) {
        free(ova->disks[i].disk_id);
        free(ova->disks[i].member);
        free(ova->disks[i].format);
    }
    free(ova->disks);
    free(ova->ovf_name);
    free(ova->ovf_text);
    if (p) {
        vd_ovf_free(p->ovf);
        vd_tar_free(&p->tar);
        vd_io_unref(p->io);
        free(p->dir);
        free(p);
    }
    free(ova);
}

void vd_ova_info(struct vd_ova *ova, struct vd_json *j)
{
    struct ova_priv *p = ova->priv;
    const struct vd_ovf *o = p->ovf;
    vd_json_obj_begin(j, "ovf");
    vd_json_str(j, "descriptor", ova->ovf_name);
    vd_json_str(j, "version", o->version);
    vd_json_str(j, "manifest", p->mf ? p->mf->name : NULL);
    vd_json_str(j, "name", o->name);
    vd_json_str(j, "os", o->os);
    if (o->has_os_id)
        vd_json_u64(j, "os_id", o->os_id);
    else
        vd_json_null(j, "os_id");
    vd_json_str(j, "os_type", o->os_type);
    if (o->has_cpus)
        vd_json_u64(j, "cpus", o->cpus);
    else
        vd_json_null(j, "cpus");
    if (o->has_memory)
        vd_json_u64(j, "memory_bytes", o->memory_bytes);
    else
        vd_json_null(j, "memory_bytes");
    vd_json_arr_begin(j, "disks");
    for (size_t i = 0; i < o->ndisks; i++) {
        const struct vd_ovf_disk *d = &o->disks[i];
        const struct vd_ovf_file *f = d->file_ref ? vd_ovf_find_file(o, d->file_ref) : NULL;
        vd_json_obj_begin(j, NULL);
        vd_json_str(j, "disk_id", d->disk_id);
        vd_json_str(j, "file", f ? f->href : NULL);
        vd_json_u64(j, "capacity", d->capacity);
        vd_json_str(j, "format", d->format);
        vd_json_obj_end(j);
    }
    vd_json_arr_end(j);
    vd_json_arr_begin(j, "networks");
    for (size_t i = 0; i < o->nnetworks; i++)
        vd_json_str(j, NULL, o->networks[i]);
    vd_json_arr_end(j);
    vd_json_obj_end(j);
}

/* ---- check ---- */

struct ova_report {
    vd_check_cb cb;
    void *opaque;
    int worst;
};

static void ova_report(struct ova_report *rep, bool corrupt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ova_report(struct ova_report *rep, bool corrupt, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (corrupt)
        rep->worst = VD_CHECK_CORRUPT;
    if (rep->cb)
        rep->cb(rep->opaque, corrupt, msg);
}

static const EVP_MD *ova_digest(const char *algo, size_t len)
{
    static const struct {
        const char *name;
        const char *evp;
    } algos[] = {{"SHA1", "sha1"},
                 {"SHA256", "sha256"},
                 {"SHA384", "sha384"},
                 {"SHA512", "sha512"},
                 {"MD5", "md5"}};
    for (size_t i = 0; i < VD_ARRAY_SIZE(algos); i++)
        if (strlen(algos[i].name) == len && !strncasecmp(algo, algos[i].name, len))
            return EVP_get_digestbyname(algos[i].evp);
    return NULL;
}

/* Digest of a member's data, read through the io; hex into out. */
static int ova_hash_member(struct vd_io *io, const struct vd_tar_member *m, const EVP_MD *md,
                           char *out, struct vd_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(OVA_HASH_CHUNK);
    int r = 0;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, md, NULL)) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t done = 0; done < m->size;) {
        size_t n = (size_t)VD_MIN((uint64_t)OVA_HASH_CHUNK, m->size - done);
        r = vd_io_pread_full(io, buf, n, m->offset + done, err);
        if (r < 0)
            goto out;
        EVP_DigestUpdate(ctx, buf, n);
        done += n;
    }
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(ctx, dig, &dlen);
    for (unsigned i = 0; i < dlen; i++)
        sprintf(out + 2 * i, "%02x", dig[i]);
    out[2 * dlen] = '\0';
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return r;
}

/* One manifest line "ALGO(name)= hex" (spaces around '=' tolerated). */
static int ova_check_line(struct ova_priv *p, char *line, size_t lineno, struct ova_report *rep,
                          bool *listed, struct vd_error *err)
{
    const char *mfn = p->mf->name;
    char *open = strchr(line, '('), *eq = strrchr(line, '=');
    char *close = NULL;
    if (open && eq && eq > open) {
        close = eq;
        while (close > open && close[-1] == ' ')
            close--;
        close = close > open && close[-1] == ')' ? close - 1 : NULL;
    }
    const EVP_MD *md = open ? ova_digest(line, (size_t)(open - line)) : NULL;
    if (!close) {
        ova_report(rep, true, "manifest: %s: line %zu is not a digest line", mfn, lineno);
        return 0;
    }
    if (!md) {
        ova_report(rep, true, "manifest: %s: line %zu: unsupported digest '%.*s'", mfn, lineno,
                   (int)VD_MIN((size_t)(open - line), (size_t)20), line);
        return 0;
    }
    *close = '\0';
    const char *name = open + 1, *hex = eq + 1;
    while (*hex == ' ')
        hex++;
    char algo[16];
    snprintf(algo, sizeof(algo), "%.*s", (int)(open - line), line);
    for (char *a = algo; *a; a++)
        if (*a >= 'a' && *a <= 'z')
            *a = (char)(*a - 'a' + 'A');
    size_t want = 2 * (size_t)EVP_MD_get_size(md), hl = strlen(hex);
    bool hex_ok = hl == want;
    for (size_t i = 0; i < hl && hex_ok; i++)
        hex_ok = ova_hexval(hex[i]) >= 0;
    if (!hex_ok) {
        ova_report(rep, true, "manifest: %s: %s: %s digest '%.140s' is not %zu hex digits", mfn,
                   name, algo, hex, want);
        return 0;
    }
    const struct vd_tar_member *m = ova_lookup(p, name);
    if (!m || m->typeflag != '0') {
        ova_report(rep, true, "manifest: %s: listed in the manifest but not in the archive", name);
        return 0;
    }
    listed[m - p->tar.m] = true;
    char actual[2 * EVP_MAX_MD_SIZE + 1];
    int r = ova_hash_member(p->io, m, md, actual, err);
    if (r < 0)
        return r;
    if (strcasecmp(actual, hex))
        ova_report(rep, true, "manifest: %s: %s mismatch (manifest %s, actual %s)", name, algo, hex,
                   actual);
    return 0;
}

static int ova_check_manifest(struct ova_priv *p, struct ova_report *rep, bool *listed,
                              struct vd_error *err)
{
    char *text;
    size_t len;
    int r = ova_read_member(p->io, p->mf, OVA_MAX_MANIFEST, "manifest", &text, &len, err);
    if (r < 0)
        return r;
    size_t lineno = 0;
    for (char *s = text; s < text + len && r == 0;) {
        char *nl = memchr(s, '\n', (size_t)(text + len - s));
        char *e = nl ? nl : text + len;
        *e = '\0';
        lineno++;
        size_t l = (size_t)(e - s);
        while (l && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
            s[--l] = '\0';
        if (memchr(s, '\0', l)) {
            ova_report(rep, true, "manifest: %s: line %zu contains a NUL byte", p->mf->name,
                       lineno);
        } else if (l) {
            r = ova_check_line(p, s, lineno, rep, listed, err);
        }
        s = e + 1;
    }
    free(text);
    return r;
}

int vd_ova_check(struct vd_ova *ova, vd_check_cb cb, void *opaque, struct vd_error *err)
{
    struct ova_priv *p = ova->priv;
    struct ova_report rep = {.cb = cb, .opaque = opaque, .worst = VD_CHECK_CLEAN};
    bool *listed = calloc(p->tar.n ? p->tar.n : 1, sizeof(*listed));
    int r = 0;
    if (!listed)
        return vd_err(err, -ENOMEM, "out of memory");

    if (p->mf) {
        r = ova_check_manifest(p, &rep, listed, err);
        if (r < 0)
            goto out;
    }
    for (size_t i = 0; i < p->ovf->nfiles; i++) {
        const struct vd_ovf_file *f = &p->ovf->files[i];
        if (ova_is_url(f->href))
            continue; /* lives outside the package */
        const struct vd_tar_member *m = ova_lookup(p, f->href);
        if (!m || m->typeflag != '0') {
            ova_report(&rep, true, "ovf: %s (%s): not in the archive", f->href, f->id);
            continue;
        }
        size_t copies = 0;
        for (size_t k = 0; k < p->tar.n; k++)
            copies += !p->tar.m[k].unsafe && !strcmp(p->tar.m[k].name, m->name);
        if (copies > 1)
            ova_report(&rep, true,
                       "ovf: %s: the archive holds %zu members of that name; the first is used",
                       f->href, copies);
        if (f->has_size && !f->has_chunk_size && f->size != m->size)
            ova_report(&rep, true,
                       "ovf: %s: ovf:size is %" PRIu64 " but the archive member has %" PRIu64
                       " bytes",
                       f->href, f->size, m->size);
        if (p->mf && !listed[m - p->tar.m])
            ova_report(&rep, true, "manifest: %s: referenced by the OVF but not in the manifest",
                       f->href);
    }
out:
    free(listed);
    return r < 0 ? r : rep.worst;
}
