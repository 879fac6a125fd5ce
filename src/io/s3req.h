/*
 * The S3/HTTP client shared by the read backend (s3.c) and the multipart
 * sink (export/sink_s3.c): where an object lives (URL, signing path), how
 * one request is signed and sent, and the retry policy.
 */
#ifndef VD_IO_S3REQ_H
#define VD_IO_S3REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/awsconf.h"
#include "io/http.h"
#include "vdisk/error.h"

struct vd_s3_target {
    bool is_s3;      /* s3://bucket/key; else a plain http(s) URL, unsigned */
    char *uri;       /* as the user wrote it, for messages */
    char *bucket;    /* decoded (s3 only) */
    char *key;       /* decoded, no leading '/' (s3 only) */
    char *base;      /* "scheme://host[:port]" the requests go to */
    char *host;      /* Host header value */
    char *sign_path; /* decoded path that is signed and sent: "/bucket/key" or "/key" */
    char *url;       /* full URL (base + encoded sign_path, or the http URL) */
    struct vd_awsconf conf;
};

/* Parse uri (s3://bucket/key or http(s)://...) and resolve the AWS config.
 * Returns 0, -EINVAL (malformed URI), -ENOMEM. */
int vd_s3_target_open(const char *uri, const struct vd_io_opts *opts, struct vd_s3_target **out,
                      struct vd_error *err);
/* The object named rel beside t (same bucket, key in t's "directory"). */
int vd_s3_target_relative(const struct vd_s3_target *t, const char *rel, struct vd_s3_target **out,
                          struct vd_error *err);
void vd_s3_target_free(struct vd_s3_target *t);

struct vd_s3_call {
    const char *method;
    const char *query;          /* encoded query ("partNumber=2&uploadId=..."), or NULL */
    const char *const *headers; /* extra "Name: value" lines, signed too */
    size_t nheaders;
    const void *body;
    size_t body_len;
    const char *body_sha256; /* hex; NULL = computed here */
    vd_http_sink_fn sink;
    void *sink_opaque;
    size_t max_body;
    long low_speed_secs; /* 0: default (VD_S3_TIMEOUT) */
};

/* One attempt: sign (s3) and send. Same return as vd_http_do(). */
int vd_s3_call(struct vd_http_pool *pool, const struct vd_s3_target *t, const struct vd_s3_call *c,
               struct vd_http_resp *resp);

/* Should this outcome be retried (transport error, 5xx, 429, 408,
 * SlowDown/RequestTimeout/InternalError in an error body)? */
bool vd_s3_retryable(int rc, const struct vd_http_resp *resp);
/* Sleep before attempt number attempt (1, 2, ...): exponential backoff with
 * full jitter, base VD_S3_RETRY_MS (default 100 ms), capped at 10 s. */
void vd_s3_backoff(int attempt);
/* Attempts before giving up (VD_S3_RETRIES, default 6). */
int vd_s3_max_attempts(void);
/* Concurrent connections for one source or export: VD_S3_CONNECTIONS (1..64),
 * else as many 8 MiB ranges as fit half of budget bytes (0 = the default
 * 256 MiB cache), between 2 and 16. Readahead and part uploads both use it. */
int vd_s3_connections(uint64_t budget);
/* "<Code>: <Message>" from an S3 error body, or "HTTP <status>". */
void vd_s3_describe(int rc, const struct vd_http_resp *resp, char *out, size_t outlen);
/* Text of the first <tag>...</tag> in an XML body (no I/O; NULL if absent). */
char *vd_s3_xml_tag(const char *xml, size_t len, const char *tag);

#endif
