/*
 * VMDK descriptor parser: text -> struct vmdk_desc (see vmdk.h for the
 * syntax). Pure: no I/O, so the fuzzer and unit tests call it directly.
 * Unknown keys and DDB entries are ignored; malformed extent lines and
 * malformed CIDs are errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "formats/vmdk.h"

static const char *const vmdk_type_names[] = {
    [VMDK_EXT_FLAT] = "FLAT",
    [VMDK_EXT_SPARSE] = "SPARSE",
    [VMDK_EXT_ZERO] = "ZERO",
    [VMDK_EXT_VMFS] = "VMFS",
    [VMDK_EXT_VMFSSPARSE] = "VMFSSPARSE",
    [VMDK_EXT_SESPARSE] = "SESPARSE",
    [VMDK_EXT_VMFSRDM] = "VMFSRDM",
    [VMDK_EXT_VMFSRAW] = "VMFSRAW",
};

const char *vd_vmdk_ext_type_name(enum vmdk_ext_type t)
{
    return (unsigned)t < VD_ARRAY_SIZE(vmdk_type_names) ? vmdk_type_names[t] : "?";
}

void vd_vmdk_desc_free(struct vmdk_desc *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nextents; i++)
        free(d->extents[i].file);
    free(d->extents);
    free(d->create_type);
    free(d->parent_hint);
    free(d->adapter_type);
    free(d->hw_version);
    memset(d, 0, sizeof(*d));
}

static bool vmdk_isspace(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim [*s, *e) of blanks. */
static void vmdk_trim(const char **s, const char **e)
{
    while (*s < *e && vmdk_isspace(**s))
        ++*s;
    while (*e > *s && vmdk_isspace((*e)[-1]))
        --*e;
}

/* Decimal u64 in [s, e); true on success. */
static bool vmdk_parse_u64(const char *s, const char *e, uint64_t *out)
{
    uint64_t v = 0;
    if (s == e)
        return false;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9' || ck_muladd(v, 10, (uint64_t)(*s - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

static bool vmdk_parse_hex32(const char *s, const char *e, uint32_t *out)
{
    uint32_t v = 0;
    if (s == e || e - s > 8)
        return false;
    for (; s < e; s++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

static int vmdk_set_str(char **dst, const char *s, const char *e)
{
    char *v = strndup(s, (size_t)(e - s));
    if (!v)
        return -ENOMEM;
    free(*dst);
    *dst = v;
    return 0;
}

static bool vmdk_word_is(const char *s, const char *e, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(e - s) == n && !memcmp(s, w, n);
}

/* One extent line: ACCESS SECTORS TYPE ["FILE" [OFFSET]]. */
static int vmdk_parse_extent(const char *s, const char *e, unsigned lineno, const char *name,
                             struct vmdk_desc *d, struct vd_error *err)
{
    struct vmdk_desc_extent x = {0};
    const char *w = s;
    while (w < e && !vmdk_isspace(*w))
        w++;
    if (vmdk_word_is(s, w, "RW"))
        x.access = VMDK_RW;
    else if (vmdk_word_is(s, w, "RDONLY"))
        x.access = VMDK_RDONLY;
    else
        x.access = VMDK_NOACCESS;
    s = w;
    vmdk_trim(&s, &e);
    for (w = s; w < e && !vmdk_isspace(*w);)
        w++;
    if (!vmdk_parse_u64(s, w, &x.sectors) || x.sectors == 0)
        return vd_err(err, -EINVAL, "vmdk: %s: descriptor line %u: bad extent size '%.*s'", name,
                      lineno, (int)VD_MIN(w - s, 40), s);
    s = w;
    vmdk_trim(&s, &e);
    for (w = s; w < e && !vmdk_isspace(*w);)
        w++;
    size_t t;
    for (t = 0; t < VD_ARRAY_SIZE(vmdk_type_names); t++)
        if (vmdk_word_is(s, w, vmdk_type_names[t]))
            break;
    if (t == VD_ARRAY_SIZE(vmdk_type_names))
        return vd_err(err, -EINVAL, "vmdk: %s: descriptor line %u: unknown extent type '%.*s'",
                      name, lineno, (int)VD_MIN(w - s, 40), s);
    x.type = (enum vmdk_ext_type)t;
    s = w;
    vmdk_trim(&s, &e);
    if (x.type != VMDK_EXT_ZERO) {
        if (s == e || *s != '"')
            return vd_err(err, -EINVAL,
                          "vmdk: %s: descriptor line %u: %s extent has no quoted file name", name,
                          lineno, vmdk_type_names[t]);
        const char *q = memchr(s + 1, '"', (size_t)(e - s - 1));
        if (!q || q == s + 1)
            return vd_err(err, -EINVAL,
                          "vmdk: %s: descriptor line %u: extent file name is empty or unterminated",
                          name, lineno);
        if (memchr(s + 1, '\0', (size_t)(q - s - 1)))
            return vd_err(err, -EINVAL, "vmdk: %s: descriptor line %u: NUL in file name", name,
                          lineno);
        const char *fs = s + 1, *fe = q;
        s = q + 1;
        vmdk_trim(&s, &e);
        if (s < e) {
            for (w = s; w < e && !vmdk_isspace(*w);)
                w++;
            if (!vmdk_parse_u64(s, w, &x.offset))
                return vd_err(err, -EINVAL, "vmdk: %s: descriptor line %u: bad extent offset", name,
                              lineno);
        }
        if (d->nextents >= VMDK_MAX_EXTENTS)
            return vd_err(err, -EINVAL, "vmdk: %s: descriptor lists more than %u extents", name,
                          VMDK_MAX_EXTENTS);
        if (!(x.file = strndup(fs, (size_t)(fe - fs))))
            return vd_err(err, -ENOMEM, "out of memory");
    } else if (d->nextents >= VMDK_MAX_EXTENTS) {
        return vd_err(err, -EINVAL, "vmdk: %s: descriptor lists more than %u extents", name,
                      VMDK_MAX_EXTENTS);
    }
    if (d->nextents == d->extents_cap) {
        size_t cap = d->extents_cap ? d->extents_cap * 2 : 4;
        struct vmdk_desc_extent *n = realloc(d->extents, cap * sizeof(*n));
        if (!n) {
            free(x.file);
            return vd_err(err, -ENOMEM, "out of memory");
        }
        d->extents = n;
        d->extents_cap = cap;
    }
    d->extents[d->nextents++] = x;
    return 0;
}

int vd_vmdk_desc_parse(const char *buf, size_t len, const char *name, struct vmdk_desc *out,
                       struct vd_error *err)
{
    struct vmdk_desc d = {.version = 1, .cid = 0xffffffff, .parent_cid = 0xffffffff};
    int r = 0;
    const char *nul = memchr(buf, '\0', len);
    const char *end = nul ? nul : buf + len;
    unsigned lineno = 0;
    if ((size_t)(end - buf) > VMDK_DESC_MAX) {
        r = vd_err(err, -EINVAL, "vmdk: %s: descriptor is larger than %u bytes", name,
                   VMDK_DESC_MAX);
        goto fail;
    }
    for (const char *p = buf; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        lineno++;
        vmdk_trim(&s, &e);
        if (s == e || *s == '#')
            continue;
        const char *w = s;
        while (w < e && !vmdk_isspace(*w) && *w != '=')
            w++;
        if (w < e && *w != '=' &&
            (vmdk_word_is(s, w, "RW") || vmdk_word_is(s, w, "RDONLY") ||
             vmdk_word_is(s, w, "NOACCESS"))) {
            r = vmdk_parse_extent(s, e, lineno, name, &d, err);
            if (r < 0)
                goto fail;
            continue;
        }
        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (!eq)
            continue; /* lenient, like qemu and VMware: ignore junk lines */
        const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
        vmdk_trim(&ks, &ke);
        vmdk_trim(&vs, &ve);
        if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
            vs++;
            ve--;
        }
        if (vmdk_word_is(ks, ke, "CID") || vmdk_word_is(ks, ke, "parentCID")) {
            uint32_t v;
            if (!vmdk_parse_hex32(vs, ve, &v)) {
                r = vd_err(err, -EINVAL, "vmdk: %s: descriptor line %u: bad %.*s '%.*s'", name,
                           lineno, (int)(ke - ks), ks, (int)VD_MIN(ve - vs, 40), vs);
                goto fail;
            }
            if (ke - ks == 3)
                d.cid = v;
            else
                d.parent_cid = v;
        } else if (vmdk_word_is(ks, ke, "version")) {
            uint64_t v;
            if (!vmdk_parse_u64(vs, ve, &v) || v > 1000) {
                r = vd_err(err, -EINVAL, "vmdk: %s: descriptor line %u: bad version", name, lineno);
                goto fail;
            }
            d.version = (unsigned)v;
        } else if (vmdk_word_is(ks, ke, "createType")) {
            r = vmdk_set_str(&d.create_type, vs, ve);
        } else if (vmdk_word_is(ks, ke, "parentFileNameHint")) {
            r = vmdk_set_str(&d.parent_hint, vs, ve);
        } else if (vmdk_word_is(ks, ke, "ddb.adapterType")) {
            r = vmdk_set_str(&d.adapter_type, vs, ve);
        } else if (vmdk_word_is(ks, ke, "ddb.virtualHWVersion")) {
            r = vmdk_set_str(&d.hw_version, vs, ve);
        } else if (vmdk_word_is(ks, ke, "ddb.logicalSectorSize")) {
            /* 4Kn, as VMware's open-vmdk writes it (vmdk-convert -s 4096):
             * the DDB alone says so; offsets stay in 512-byte sectors. */
            uint64_t v;
            if (!vmdk_parse_u64(vs, ve, &v) || (v != 512 && v != 4096)) {
                r = vd_err(err, -EINVAL,
                           "vmdk: %s: descriptor line %u: ddb.logicalSectorSize '%.*s' is not "
                           "512 or 4096",
                           name, lineno, (int)VD_MIN(ve - vs, 40), vs);
                goto fail;
            }
            d.logical_sector = (uint32_t)v;
        }
        if (r < 0) {
            r = vd_err(err, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    vd_vmdk_desc_free(&d);
    return r;
}
