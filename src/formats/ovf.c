/*
 * OVF: the XML descriptor of an OVF package (DMTF DSP0243, "Open
 * Virtualization Format Specification", 1.1.0 and 2.1.1; sections 7
 * "Envelope", 7.1 "File References", 9.1 "DiskSection", 9.2
 * "NetworkSection", 8.3 "VirtualHardwareSection", 9.5
 * "OperatingSystemSection", 9.8 "DeploymentOptionSection").
 *
 *   <Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1|2" ovf:version>
 *     <References>  <File ovf:id ovf:href ovf:size [ovf:compression] [ovf:chunkSize]/>
 *     <DiskSection> <Disk ovf:diskId ovf:fileRef ovf:capacity
 *                         [ovf:capacityAllocationUnits="byte * 2^30"] ovf:format/>
 *     <NetworkSection> <Network ovf:name/>
 *     [<DeploymentOptionSection> <Configuration ovf:id [ovf:default="true"]/>]
 *     <VirtualSystem ovf:id> (possibly inside a VirtualSystemCollection)
 *       <Name/> <OperatingSystemSection ovf:id><Description/>
 *       <VirtualHardwareSection> <Item [ovf:configuration]>
 *           <rasd:ResourceType>3 (CPU) | 4 (memory)</> <rasd:VirtualQuantity/>
 *           <rasd:AllocationUnits/>
 *
 * Elements and attributes are matched by local name, so OVF 1.x and 2.x
 * envelopes, default-namespace and "ovf:"-prefixed documents (VMware,
 * VirtualBox, COT) parse alike; OVF 0.9 <Section xsi:type="ovf:DiskSection_Type">
 * is recognised too. CPU and memory follow the default deployment option.
 * Memory without AllocationUnits is taken as MiB (what VMware assumes).
 *
 * Safety: libxml2 runs without XML_PARSE_NOENT/DTDLOAD and with
 * XML_PARSE_NONET; a document with a DOCTYPE is refused outright, so no
 * entity other than the predefined ones can appear.
 *
 * Not supported (reported by ova.c, not here): compressed (ovf:compression)
 * and chunked (ovf:chunkSize) files, property references ("${...}") in
 * ovf:capacity, signatures (.cert).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/checked.h"
#include "formats/ovf.h"

static pthread_once_t ovf_once = PTHREAD_ONCE_INIT;

static void ovf_init(void)
{
    xmlInitParser();
}

static bool ovf_is(const xmlNode *n, const char *local)
{
    return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, local);
}

static bool ovf_ns_is_ovf(const xmlNs *ns)
{
    const char *h = ns && ns->href ? (const char *)ns->href : "";
    return !strncmp(h, "http://schemas.dmtf.org/ovf/envelope/", 37) ||
           !strncmp(h, "http://www.vmware.com/schema/ovf/1/envelope", 43);
}

/* Attribute by local name: the OVF namespace first, then no namespace, then
 * any (some producers bind "ovf:" to an odd URI). */
static const xmlAttr *ovf_attr_node(const xmlNode *n, const char *local)
{
    const xmlAttr *nons = NULL, *any = NULL;
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        if (strcmp((const char *)a->name, local))
            continue;
        if (a->ns && ovf_ns_is_ovf(a->ns))
            return a;
        if (!a->ns && !nons)
            nons = a;
        else if (a->ns && !any)
            any = a;
    }
    return nons ? nons : any;
}

static char *ovf_trim_dup(xmlChar *s)
{
    if (!s)
        return NULL;
    char *p = (char *)s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    size_t l = strlen(p);
    while (l && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\n' || p[l - 1] == '\r'))
        l--;
    char *out = strndup(p, l);
    xmlFree(s);
    return out;
}

/* Attribute value, trimmed; NULL if absent. *oom is set on ENOMEM. */
static char *ovf_attr(const xmlNode *n, const char *local, bool *oom)
{
    const xmlAttr *a = ovf_attr_node(n, local);
    if (!a)
        return NULL;
    xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
    if (!v)
        v = xmlStrdup((const xmlChar *)"");
    char *s = ovf_trim_dup(v);
    if (!s)
        *oom = true;
    return s;
}

static char *ovf_text(const xmlNode *n, bool *oom)
{
    char *s = ovf_trim_dup(xmlNodeGetContent(n));
    if (!s)
        *oom = true;
    return s;
}

static const xmlNode *ovf_child(const xmlNode *n, const char *local)
{
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (ovf_is(c, local))
            return c;
    return NULL;
}

/* A section element: <NAME> or OVF 0.9's <Section xsi:type="ovf:NAME_Type">. */
static bool ovf_is_section(const xmlNode *n, const char *local)
{
    if (ovf_is(n, local))
        return true;
    if (!ovf_is(n, "Section"))
        return false;
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        if (strcmp((const char *)a->name, "type") || !a->children || !a->children->content)
            continue;
        const char *v = (const char *)a->children->content, *colon = strchr(v, ':');
        v = colon ? colon + 1 : v;
        size_t l = strlen(local);
        return !strncmp(v, local, l) && !strcmp(v + l, "_Type");
    }
    return false;
}

static const xmlNode *ovf_section(const xmlNode *parent, const char *local)
{
    for (const xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
        if (ovf_is_section(c, local))
            return c;
    return NULL;
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static int ovf_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || ck_muladd(v, 10, (uint64_t)(*s - '0'), &v))
            return -1;
    }
    *out = v;
    return 0;
}

static void ovf_skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

static int ovf_num(const char **p, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++)
        if (ck_muladd(v, 10, (uint64_t)(*s - '0'), &v))
            return -1;
    *p = s;
    *out = v;
    return 0;
}

int vd_ovf_units(const char *units, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } legacy[] = {
        {"bytes", 1},
        {"kilobytes", 1ull << 10},
        {"megabytes", 1ull << 20},
        {"gigabytes", 1ull << 30},
        {"terabytes", 1ull << 40},
        {"kb", 1ull << 10},
        {"mb", 1ull << 20},
        {"gb", 1ull << 30},
        {"tb", 1ull << 40},
    };
    const char *p = units ? units : "";
    ovf_skip_ws(&p);
    if (!*p) {
        *mult = 1;
        return 0;
    }
    for (size_t i = 0; i < VD_ARRAY_SIZE(legacy); i++) {
        size_t l = strlen(legacy[i].name);
        if (!strncasecmp(p, legacy[i].name, l)) {
            const char *q = p + l;
            ovf_skip_ws(&q);
            if (!*q) {
                *mult = legacy[i].mult;
                return 0;
            }
        }
    }
    if (strncasecmp(p, "byte", 4))
        return -1;
    p += 4;
    uint64_t m = 1;
    for (;;) {
        ovf_skip_ws(&p);
        if (!*p)
            break;
        if (*p != '*')
            return -1;
        p++;
        ovf_skip_ws(&p);
        uint64_t base, exp = 1, f = 1;
        if (ovf_num(&p, &base) < 0)
            return -1;
        ovf_skip_ws(&p);
        if (*p == '^') {
            p++;
            ovf_skip_ws(&p);
            if (ovf_num(&p, &exp) < 0 || exp > 64)
                return -1;
        }
        for (uint64_t i = 0; i < exp; i++)
            if (ck_mul(f, base, &f))
                return -1;
        if (ck_mul(m, f, &m))
            return -1;
    }
    *mult = m;
    return 0;
}

static int ovf_grow(void **arr, size_t *n, size_t *cap, size_t elem)
{
    if (*n < *cap)
        return 0;
    if (*n >= VD_OVF_MAX_ITEMS)
        return -E2BIG;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return -ENOMEM;
    memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return 0;
}

static int ovf_grow_err(int r, const char *name, const char *what, struct vd_error *err)
{
    if (r == -E2BIG)
        return vd_err(err, -EINVAL, "ovf: %s: more than %d %s entries", name, VD_OVF_MAX_ITEMS,
                      what);
    return vd_err(err, -ENOMEM, "out of memory");
}

static int ovf_parse_files(struct vd_ovf *o, const xmlNode *refs, const char *name,
                           struct vd_error *err)
{
    size_t cap = 0;
    bool oom = false;
    for (const xmlNode *c = refs ? refs->children : NULL; c; c = c->next) {
        if (!ovf_is(c, "File"))
            continue;
        int r = ovf_grow((void **)&o->files, &o->nfiles, &cap, sizeof(*o->files));
        if (r < 0)
            return ovf_grow_err(r, name, "File", err);
        struct vd_ovf_file *f = &o->files[o->nfiles++];
        f->id = ovf_attr(c, "id", &oom);
        f->href = ovf_attr(c, "href", &oom);
        char *size = ovf_attr(c, "size", &oom), *chunk = ovf_attr(c, "chunkSize", &oom);
        f->compression = ovf_attr(c, "compression", &oom);
        if (f->compression && (!f->compression[0] || !strcmp(f->compression, "identity"))) {
            free(f->compression);
            f->compression = NULL;
        }
        if (oom) {
            free(size);
            free(chunk);
            return vd_err(err, -ENOMEM, "out of memory");
        }
        if (!f->id || !f->href || !f->id[0] || !f->href[0]) {
            r = vd_err(err, -EINVAL, "ovf: %s: References/File #%zu has no ovf:%s", name, o->nfiles,
                       !f->id || !f->id[0] ? "id" : "href");
        } else if (size && ovf_u64(size, &f->size) < 0) {
            r = vd_err(err, -EINVAL, "ovf: %s: File %s: ovf:size '%.40s' is not a number", name,
                       f->id, size);
        } else if (chunk && ovf_u64(chunk, &f->chunk_size) < 0) {
            r = vd_err(err, -EINVAL, "ovf: %s: File %s: ovf:chunkSize '%.40s' is not a number",
                       name, f->id, chunk);
        }
        f->has_size = size != NULL;
        f->has_chunk_size = chunk != NULL;
        free(size);
        free(chunk);
        if (r < 0)
            return r;
    }
    return 0;
}

static int ovf_parse_disks(struct vd_ovf *o, const xmlNode *sec, const char *name,
                           struct vd_error *err)
{
    size_t cap = 0;
    bool oom = false;
    for (const xmlNode *c = sec ? sec->children : NULL; c; c = c->next) {
        if (!ovf_is(c, "Disk"))
            continue;
        int r = ovf_grow((void **)&o->disks, &o->ndisks, &cap, sizeof(*o->disks));
        if (r < 0)
            return ovf_grow_err(r, name, "Disk", err);
        struct vd_ovf_disk *d = &o->disks[o->ndisks++];
        d->disk_id = ovf_attr(c, "diskId", &oom);
        d->file_ref = ovf_attr(c, "fileRef", &oom);
        d->format = ovf_attr(c, "format", &oom);
        char *cap_s = ovf_attr(c, "capacity", &oom);
        char *units = ovf_attr(c, "capacityAllocationUnits", &oom);
        uint64_t v = 0, mult = 1;
        if (oom) {
            r = vd_err(err, -ENOMEM, "out of memory");
        } else if (!d->disk_id || !d->disk_id[0]) {
            r = vd_err(err, -EINVAL, "ovf: %s: DiskSection/Disk #%zu has no ovf:diskId", name,
                       o->ndisks);
        } else if (!cap_s) {
            r = vd_err(err, -EINVAL, "ovf: %s: Disk %s has no ovf:capacity", name, d->disk_id);
        } else if (ovf_u64(cap_s, &v) < 0) {
            r = vd_err(err, -EINVAL, "ovf: %s: Disk %s: ovf:capacity '%.40s' is not a number", name,
                       d->disk_id, cap_s);
        } else if (vd_ovf_units(units, &mult) < 0) {
            r = vd_err(err, -EINVAL,
                       "ovf: %s: Disk %s: unknown ovf:capacityAllocationUnits '%.40s'", name,
                       d->disk_id, units);
        } else if (ck_mul(v, mult, &d->capacity) || d->capacity > VD_OVF_MAX_CAPACITY) {
            r = vd_err(err, -EINVAL,
                       "ovf: %s: Disk %s: capacity %s x %s is absurd (more than 1 EiB)", name,
                       d->disk_id, cap_s, units ? units : "byte");
        } else if (d->file_ref && !vd_ovf_find_file(o, d->file_ref)) {
            r = vd_err(err, -EINVAL,
                       "ovf: %s: Disk %s: ovf:fileRef '%s' names no File in References", name,
                       d->disk_id, d->file_ref);
        }
        free(cap_s);
        free(units);
        if (r < 0)
            return r;
    }
    return 0;
}

static int ovf_parse_networks(struct vd_ovf *o, const xmlNode *sec, struct vd_error *err,
                              const char *name)
{
    size_t cap = 0;
    bool oom = false;
    for (const xmlNode *c = sec ? sec->children : NULL; c; c = c->next) {
        if (!ovf_is(c, "Network"))
            continue;
        char *n = ovf_attr(c, "name", &oom);
        if (oom)
            return vd_err(err, -ENOMEM, "out of memory");
        if (!n)
            continue;
        int r = ovf_grow((void **)&o->networks, &o->nnetworks, &cap, sizeof(*o->networks));
        if (r < 0) {
            free(n);
            return ovf_grow_err(r, name, "Network", err);
        }
        o->networks[o->nnetworks++] = n;
    }
    return 0;
}

static const xmlNode *ovf_find_vs(const xmlNode *n, int depth)
{
    /* The tree is at most a few levels deep; libxml2 itself caps nesting. */
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (ovf_is(c, "VirtualSystem"))
            return c;
        if (ovf_is(c, "VirtualSystemCollection") && depth < 16) {
            const xmlNode *v = ovf_find_vs(c, depth + 1);
            if (v)
                return v;
        }
    }
    return NULL;
}

/* Does the space-separated list contain word? */
static bool ovf_list_has(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == wl && !strncmp(p, word, wl))
            return true;
        p = e;
    }
    return false;
}

/* Item of ResourceType rt for the deployment option cfg (NULL: none):
 * one naming cfg beats one with no ovf:configuration; ranges (ovf:bound
 * min/max) are skipped. */
static const xmlNode *ovf_hw_item(const xmlNode *hw, int rt, const char *cfg, bool *oom)
{
    const xmlNode *generic = NULL, *specific = NULL;
    for (const xmlNode *c = hw ? hw->children : NULL; c && !specific; c = c->next) {
        if (!ovf_is(c, "Item"))
            continue;
        const xmlNode *t = ovf_child(c, "ResourceType");
        char *ts = t ? ovf_text(t, oom) : NULL;
        uint64_t tv;
        bool match = ts && ovf_u64(ts, &tv) == 0 && tv == (uint64_t)rt;
        free(ts);
        if (!match)
            continue;
        char *bound = ovf_attr(c, "bound", oom);
        bool range = bound && strcmp(bound, "normal");
        free(bound);
        if (range)
            continue;
        char *conf = ovf_attr(c, "configuration", oom);
        if (!conf || !conf[0]) {
            if (!generic)
                generic = c;
        } else if (cfg && ovf_list_has(conf, cfg)) {
            specific = c;
        }
        free(conf);
    }
    return specific ? specific : generic;
}

static bool ovf_item_quantity(const xmlNode *item, uint64_t *q, char **units, bool *oom)
{
    const xmlNode *vq = ovf_child(item, "VirtualQuantity");
    const xmlNode *au = ovf_child(item, "AllocationUnits");
    char *s = vq ? ovf_text(vq, oom) : NULL;
    bool ok = s && ovf_u64(s, q) == 0;
    free(s);
    *units = au ? ovf_text(au, oom) : NULL;
    return ok;
}

static int ovf_parse_system(struct vd_ovf *o, const xmlNode *env, struct vd_error *err)
{
    bool oom = false;
    const xmlNode *vs = ovf_find_vs(env, 0);
    if (!vs)
        return 0;
    const xmlNode *nm = ovf_child(vs, "Name");
    o->name = nm ? ovf_text(nm, &oom) : ovf_attr(vs, "id", &oom);
    const xmlNode *os = ovf_section(vs, "OperatingSystemSection");
    if (os) {
        const xmlNode *d = ovf_child(os, "Description");
        o->os = d ? ovf_text(d, &oom) : NULL;
        char *id = ovf_attr(os, "id", &oom);
        o->has_os_id = id && ovf_u64(id, &o->os_id) == 0;
        free(id);
        /* vmw:osType="rhel6_64Guest" or <vbox:OSType>Ubuntu_64</vbox:OSType> */
        const xmlNode *vt = ovf_child(os, "OSType");
        o->os_type = vt ? ovf_text(vt, &oom) : ovf_attr(os, "osType", &oom);
    }

    /* Default deployment option: ovf:default="true", else the first. */
    char *cfg = NULL;
    const xmlNode *dos = ovf_section(env, "DeploymentOptionSection");
    for (const xmlNode *c = dos ? dos->children : NULL; c; c = c->next) {
        if (!ovf_is(c, "Configuration"))
            continue;
        char *def = ovf_attr(c, "default", &oom);
        bool is_def = def && !strcmp(def, "true");
        free(def);
        if (!cfg || is_def) {
            free(cfg);
            cfg = ovf_attr(c, "id", &oom);
        }
        if (is_def)
            break;
    }

    const xmlNode *hw = ovf_section(vs, "VirtualHardwareSection");
    const xmlNode *cpu = ovf_hw_item(hw, 3, cfg, &oom);
    const xmlNode *mem = ovf_hw_item(hw, 4, cfg, &oom);
    char *units = NULL;
    if (cpu)
        o->has_cpus = ovf_item_quantity(cpu, &o->cpus, &units, &oom);
    free(units);
    units = NULL;
    uint64_t q, mult;
    if (mem && ovf_item_quantity(mem, &q, &units, &oom)) {
        /* No AllocationUnits: MiB, as VMware and VirtualBox write it. */
        if (!units)
            mult = 1ull << 20;
        else if (vd_ovf_units(units, &mult) < 0)
            mult = 0;
        o->has_memory = mult && !ck_mul(q, mult, &o->memory_bytes);
    }
    free(units);
    free(cfg);
    if (oom)
        return vd_err(err, -ENOMEM, "out of memory");
    return 0;
}

int vd_ovf_parse(const char *buf, size_t len, const char *name, struct vd_ovf **out,
                 struct vd_error *err)
{
    int r = 0;
    struct vd_ovf *o = NULL;
    xmlDocPtr doc = NULL;

    pthread_once(&ovf_once, ovf_init);
    if (len > INT32_MAX)
        return vd_err(err, -EINVAL, "ovf: %s: descriptor too large", name);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return vd_err(err, -ENOMEM, "out of memory");
    doc = xmlCtxtReadMemory(ctxt, buf, (int)len, name, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[200] = "parse error";
        if (e && e->message) {
            snprintf(msg, sizeof(msg), "%s", e->message);
            size_t l = strlen(msg);
            while (l && msg[l - 1] == '\n')
                msg[--l] = '\0';
        }
        r = vd_err(err, -EINVAL, "ovf: %s: not well-formed XML: line %d: %s", name, e ? e->line : 0,
                   msg);
        goto out;
    }
    if (doc->intSubset || doc->extSubset) {
        r = vd_err(err, -EINVAL, "ovf: %s: a DOCTYPE is not allowed in an OVF descriptor", name);
        goto out;
    }
    const xmlNode *env = xmlDocGetRootElement(doc);
    if (!ovf_is(env, "Envelope")) {
        r = vd_err(err, -EINVAL,
                   "ovf: %s: not an OVF descriptor (root element is <%s>, not <Envelope>)", name,
                   env ? (const char *)env->name : "none");
        goto out;
    }
    o = calloc(1, sizeof(*o));
    if (!o) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    bool oom = false;
    o->version = ovf_attr(env, "version", &oom);
    if (!o->version && env->ns && env->ns->href) {
        const char *h = (const char *)env->ns->href, *v = NULL;
        if (!strcmp(h, "http://schemas.dmtf.org/ovf/envelope/1"))
            v = "1.x";
        else if (!strcmp(h, "http://schemas.dmtf.org/ovf/envelope/2"))
            v = "2.x";
        if (v && !(o->version = strdup(v)))
            oom = true;
    }
    if (oom) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    r = ovf_parse_files(o, ovf_child(env, "References"), name, err);
    if (r == 0)
        r = ovf_parse_disks(o, ovf_section(env, "DiskSection"), name, err);
    if (r == 0)
        r = ovf_parse_networks(o, ovf_section(env, "NetworkSection"), err, name);
    if (r == 0)
        r = ovf_parse_system(o, env, err);
out:
    if (doc)
        xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    if (r < 0) {
        vd_ovf_free(o);
        return r;
    }
    *out = o;
    return 0;
}

void vd_ovf_free(struct vd_ovf *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nfiles; i++) {
        free(o->files[i].id);
        free(o->files[i].href);
        free(o->files[i].compression);
    }
    free(o->files);
    for (size_t i = 0; i < o->ndisks; i++) {
        free(o->disks[i].disk_id);
        free(o->disks[i].file_ref);
        free(o->disks[i].format);
    }
    free(o->disks);
    for (size_t i = 0; i < o->nnetworks; i++)
        free(o->networks[i]);
    free(o->networks);
    free(o->version);
    free(o->name);
    free(o->os);
    free(o->os_type);
    free(o);
}

const struct vd_ovf_file *vd_ovf_find_file(const struct vd_ovf *ovf, const char *id)
{
    for (size_t i = 0; i < ovf->nfiles; i++)
        if (ovf->files[i].id && !strcmp(ovf->files[i].id, id))
            return &ovf->files[i];
    return NULL;
}

/* ---- rebuilding a descriptor for an export (issue 13) ---- */

/* Set attribute local on n: the existing one (in whatever namespace it
 * has) is rewritten, else a new one is added in ns (NULL: no namespace). */
static bool ovf_set_attr(xmlNode *n, xmlNs *ns, const char *local, const char *val)
{
    const xmlAttr *a = ovf_attr_node(n, local);
    return xmlSetNsProp(n, a ? a->ns : ns, (const xmlChar *)local, (const xmlChar *)val) != NULL;
}

static void ovf_unset_attr(xmlNode *n, const char *local)
{
    const xmlAttr *a;
    while ((a = ovf_attr_node(n, local)))
        xmlRemoveProp((xmlAttr *)(uintptr_t)a);
}

/* The highest N of "vmx-N" in a VirtualSystemType list ("vmx-13 vmx-14"),
 * 0 when there is none. */
static unsigned ovf_vmx_max(const char *types)
{
    unsigned best = 0;
    for (const char *p = types; (p = strstr(p, "vmx-"));) {
        p += 4;
        unsigned v = 0;
        while (*p >= '0' && *p <= '9' && v < 1000)
            v = v * 10 + (unsigned)(*p++ - '0');
        if (v > best)
            best = v;
    }
    return best;
}

/* Drop the Items of hw whose HostResource names what: "ovf:/disk/ID". */
static void ovf_drop_items(xmlNode *hw, const char *what)
{
    for (xmlNode *c = hw ? hw->children : NULL, *next; c; c = next) {
        next = c->next;
        const xmlNode *h = ovf_is(c, "Item") ? ovf_child(c, "HostResource") : NULL;
        bool oom = false;
        char *t = h ? ovf_text(h, &oom) : NULL;
        if (t && !strcmp(t, what)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
        }
        free(t);
    }
}

/* HostResource elements naming a file we do not carry ("ovf:/file/ID"):
 * the device (a CD drive's ISO) stays, empty. */
static void ovf_drop_file_refs(xmlNode *n, const char *const *keep, size_t nkeep)
{
    for (xmlNode *c = n ? n->children : NULL, *next; c; c = next) {
        next = c->next;
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (ovf_is(c, "HostResource")) {
            bool oom = false, kept = false;
            char *t = ovf_text(c, &oom);
            if (t && !strncmp(t, "ovf:/file/", 10)) {
                for (size_t i = 0; i < nkeep; i++)
                    kept |= !strcmp(t + 10, keep[i]);
                if (!kept) {
                    xmlUnlinkNode(c);
                    xmlFreeNode(c);
                }
            }
            free(t);
            continue;
        }
        ovf_drop_file_refs(c, keep, nkeep);
    }
}

int vd_ovf_rebuild(const char *buf, size_t len, const char *name,
                   const struct vd_ovf_rebuild_opts *ro, char **out, size_t *out_len,
                   struct vd_error *err)
{
    int r = 0;
    xmlDocPtr doc = NULL;
    xmlChar *mem = NULL;
    char **ids = NULL;
    *out = NULL;
    pthread_once(&ovf_once, ovf_init);
    if (len > INT32_MAX)
        return vd_err(err, -EINVAL, "ovf: %s: descriptor too large", name);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return vd_err(err, -ENOMEM, "out of memory");
    doc = xmlCtxtReadMemory(ctxt, buf, (int)len, name, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *env = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!doc || doc->intSubset || doc->extSubset || !ovf_is(env, "Envelope")) {
        /* vd_ovf_parse has accepted it before we get here; say so anyway. */
        r = vd_err(err, -EINVAL, "ovf: %s: not an OVF descriptor that can be rebuilt", name);
        goto out;
    }
    xmlNs *ovfns = env->ns ? xmlSearchNsByHref(doc, env, env->ns->href) : NULL;
    /* An attribute takes a namespace only through a prefix: a default
     * namespace does not apply to attributes (XML Namespaces 1.0, 6.2). */
    for (xmlNs *ns = env->nsDef; ovfns && !ovfns->prefix && ns; ns = ns->next)
        if (ns->prefix && ns->href && env->ns && !xmlStrcmp(ns->href, env->ns->href))
            ovfns = ns;
    if (ovfns && !ovfns->prefix)
        ovfns = NULL;
    xmlNode *refs = (xmlNode *)(uintptr_t)ovf_child(env, "References");
    xmlNode *dsec = (xmlNode *)(uintptr_t)ovf_section(env, "DiskSection");
    xmlNode *vs = (xmlNode *)(uintptr_t)ovf_find_vs(env, 0);
    xmlNode *hw = vs ? (xmlNode *)(uintptr_t)ovf_section(vs, "VirtualHardwareSection") : NULL;
    if (!refs || !dsec) {
        r = vd_err(err, -EINVAL, "ovf: %s: no %s to carry the exported disks", name,
                   refs ? "DiskSection" : "References");
        goto out;
    }
    /* The Disks that have a file, in document order: exported disk i
     * replaces the bytes of source disk ro->src_disk[i]. */
    size_t nfd = 0;
    xmlNode *fdisks[VD_OVF_MAX_ITEMS];
    for (xmlNode *c = dsec->children; c && nfd < VD_OVF_MAX_ITEMS; c = c->next)
        if (ovf_is(c, "Disk") && ovf_attr_node(c, "fileRef"))
            fdisks[nfd++] = c;
    if (!(ids = calloc(ro->ndisks + 1, sizeof(*ids)))) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ro->ndisks; i++)
        if (ro->src_disk[i] >= nfd) {
            r = vd_err(err, -EINVAL,
                       "ovf: %s: the descriptor describes %zu disk(s) with a file, not a disk %zu",
                       name, nfd, ro->src_disk[i] + 1);
            goto out;
        }
    bool oom = false;
    /* Disks we do not carry go, with the Items that attach them. */
    for (size_t d = 0; d < nfd; d++) {
        bool kept = false;
        for (size_t i = 0; i < ro->ndisks; i++)
            kept |= ro->src_disk[i] == d;
        if (kept)
            continue;
        char *id = ovf_attr(fdisks[d], "diskId", &oom), path[300];
        snprintf(path, sizeof(path), "ovf:/disk/%s", id ? id : "");
        ovf_drop_items(hw, path);
        free(id);
        xmlUnlinkNode(fdisks[d]);
        xmlFreeNode(fdisks[d]);
        fdisks[d] = NULL;
    }
    /* References: only our files, in disk order. Their ids are kept from
     * the source where it had one, so nothing else needs renaming. */
    for (size_t i = 0; i < ro->ndisks; i++)
        ids[i] = ovf_attr(fdisks[ro->src_disk[i]], "fileRef", &oom);
    for (xmlNode *c = refs->children, *next; c; c = next) {
        next = c->next;
        if (ovf_is(c, "File") || xmlIsBlankNode(c)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
        }
    }
    for (size_t i = 0; i < ro->ndisks && !oom; i++) {
        char tok[16];
        /* Indented as the source's Files were, for people who read it. */
        if (!xmlAddChild(refs, xmlNewText((const xmlChar *)"\n    ")))
            oom = true;
        xmlNode *f = xmlNewChild(refs, env->ns, (const xmlChar *)"File", NULL);
        snprintf(tok, sizeof(tok), "#VD%03zu#", 2 * i);
        if (!f || !ovf_set_attr(f, ovfns, "href", ro->hrefs[i]) ||
            !ovf_set_attr(f, ovfns, "id", ids[i] ? ids[i] : "file") ||
            !ovf_set_attr(f, ovfns, "size", tok))
            oom = true;
        xmlNode *d = fdisks[ro->src_disk[i]];
        snprintf(tok, sizeof(tok), "#VD%03zu#", 2 * i + 1);
        ovf_unset_attr(d, "populatedSize");
        if (!ovf_set_attr(d, ovfns, "capacity", tok) ||
            !ovf_set_attr(d, ovfns, "capacityAllocationUnits", "byte") ||
            !ovf_set_attr(d, ovfns, "format", VD_OVF_STREAM_VMDK))
            oom = true;
    }
    if (!xmlAddChild(refs, xmlNewText((const xmlChar *)"\n  ")))
        oom = true;
    ovf_drop_file_refs(vs, (const char *const *)ids, ro->ndisks);
    if (oom) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    /* The hardware version: a ceiling the target sets, or a new value. */
    xmlNode *sys = hw ? (xmlNode *)(uintptr_t)ovf_child(hw, "System") : NULL;
    xmlNode *vst = sys ? (xmlNode *)(uintptr_t)ovf_child(sys, "VirtualSystemType") : NULL;
    char *types = vst ? ovf_text(vst, &oom) : NULL;
    unsigned have = types ? ovf_vmx_max(types) : 0;
    if (ro->hw_version && vst) {
        char v[24];
        snprintf(v, sizeof(v), "vmx-%02u", ro->hw_version);
        xmlNodeSetContent(vst, (const xmlChar *)v);
        have = ro->hw_version;
    }
    if (ro->hw_ceiling && have > ro->hw_ceiling)
        r = vd_err(err, -EINVAL,
                   "ova: %s: the VM needs virtual hardware vmx-%u (VirtualSystemType '%s'), but "
                   "target %s accepts vmx-%u at most; pass vm_hw_version=%u to lower it, or a "
                   "newer target",
                   name, have, types ? types : "", ro->target, ro->hw_ceiling, ro->hw_ceiling);
    free(types);
    if (r < 0)
        goto out;
    int size = 0;
    xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 0);
    if (!mem || size <= 0 || !(*out = strndup((const char *)mem, (size_t)size))) {
        r = vd_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    *out_len = (size_t)size;
out:
    if (ids)
        for (size_t i = 0; i < ro->ndisks; i++)
            free(ids[i]);
    free(ids);
    xmlFree(mem);
    if (doc)
        xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    return r;
}
