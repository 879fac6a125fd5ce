/* Fuzz the readers of untrusted credential documents: the flat-object JSON
 * reader (src/common/jsonparse.c) and the credential_process / IMDS /
 * container document checks, RFC 3339 times and command splitting
 * (src/io/awscreds.c). Answers come from a local process or a metadata
 * endpoint, and a proxy or a buggy helper can send anything. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonparse.h"
#include "io/awscreds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char why[200];
    struct vd_jobject o;
    if (vd_jobject_parse(text, size, &o, why, sizeof(why)) == 0) {
        for (size_t i = 0; i < o.n; i++) {
            if (vd_jobject_get(&o, o.m[i].key) != &o.m[i])
                abort(); /* keys are unique */
            if (o.m[i].val && strlen(o.m[i].val) > size)
                abort(); /* decoding never grows a value */
        }
        vd_jobject_free(&o);
    }
    for (int doc = 0; doc < 2; doc++) {
        struct vd_awscreds *c = NULL;
        if (vd_awscreds_parse(text, size, doc ? VD_AWSCREDS_HTTP : VD_AWSCREDS_PROCESS, 1700000000,
                              &c, why, sizeof(why)) == 0) {
            if (!c || !c->access_key[0] || !c->secret_key[0] ||
                (c->expires && c->expires <= 1700000000))
                abort();
            vd_awscreds_put(c);
        }
    }
    /* As a NUL-terminated string: a time and a command line. */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t t;
    (void)vd_rfc3339_parse(s, &t);
    char **argv = NULL;
    if (vd_cmdline_split(s, &argv, why, sizeof(why)) == 0) {
        if (!argv[0])
            abort();
        vd_argv_free(argv);
    }
    free(s);
    return 0;
}
