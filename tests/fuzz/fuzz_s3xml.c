/* Fuzz the S3 response XML reader (src/io/s3req.c: vd_s3_xml_tag), which
 * reads UploadId, Code and Message out of untrusted server answers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/s3req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *tags[] = {"UploadId", "Code", "Message", "ETag"};
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        char *v = vd_s3_xml_tag((const char *)data, size, tags[i]);
        if (v && strlen(v) > size)
            abort(); /* content never outgrows its input: no entity expansion */
        free(v);
    }
    return 0;
}
