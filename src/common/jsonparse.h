/*
 * A minimal JSON reader for one flat object, for the small documents that
 * AWS credential sources answer with (credential_process output, the EC2
 * instance metadata and container credential endpoints):
 *
 *   {"Version": 1, "AccessKeyId": "AK..", "Expiration": "2026-11-28T10:00:00Z"}
 *
 * The text must be exactly one object (RFC 8259 syntax, whitespace around
 * it allowed). Member values that are strings, numbers, true, false or null
 * are kept; nested objects and arrays are validated and skipped (type
 * VD_JNESTED). Strings are decoded (escapes, \uXXXX with surrogate pairs, to
 * UTF-8); "\u0000", raw control characters, duplicate keys, and inputs over
 * VD_JSON_MAX_INPUT bytes, VD_JSON_MAX_MEMBERS members or VD_JSON_MAX_DEPTH
 * levels are refused. No I/O: unit tests and tests/fuzz/fuzz_awscreds.c
 * call it directly.
 */
#ifndef VD_COMMON_JSONPARSE_H
#define VD_COMMON_JSONPARSE_H

#include <stddef.h>

#define VD_JSON_MAX_INPUT   (64u * 1024)
#define VD_JSON_MAX_MEMBERS 64
#define VD_JSON_MAX_DEPTH   16

enum vd_jtype { VD_JSTR, VD_JNUM, VD_JBOOL, VD_JNULL, VD_JNESTED };

struct vd_jmember {
    char *key;
    char *val; /* decoded string, number text, "true"/"false"; NULL for null and nested */
    enum vd_jtype type;
};

struct vd_jobject {
    struct vd_jmember *m;
    size_t n;
};

/* Parse buf[0..len). Returns 0, -EINVAL (why says what and at which byte
 * offset, e.g. "offset 12: expected ':' after a key"), or -ENOMEM. On
 * failure out is left empty. */
int vd_jobject_parse(const char *buf, size_t len, struct vd_jobject *out, char *why, size_t whylen);
/* The member named key (case-sensitive), or NULL. */
const struct vd_jmember *vd_jobject_get(const struct vd_jobject *o, const char *key);
void vd_jobject_free(struct vd_jobject *o);

#endif
