/*
 * HTTP on libcurl for the S3/HTTP backend and the S3 sink: a pool of easy
 * handles, each keeping its connection alive between requests, shared by
 * every thread (FUSE readers, readahead workers, upload workers). One
 * request runs on the calling thread; parallelism comes from several
 * threads using the pool at once.
 */
#ifndef VD_IO_HTTP_H
#define VD_IO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_http_pool;

/* Receives body bytes; returns false to abort the transfer. */
typedef bool (*vd_http_sink_fn)(void *opaque, const void *data, size_t len);

struct vd_http_req {
    const char *method; /* GET HEAD PUT POST DELETE */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t nheaders;
    const void *body; /* PUT/POST body (may be NULL with body_len 0) */
    size_t body_len;
    vd_http_sink_fn sink; /* body consumer; NULL: collect up to max_body bytes */
    void *sink_opaque;
    size_t max_body;     /* cap for collected bodies (error XML, CompleteMultipartUpload) */
    long low_speed_secs; /* 0: the pool's; for calls the server may think about long */
};

struct vd_http_resp {
    long status;            /* 0 when no response arrived */
    int curl_code;          /* CURLcode; 0 = transfer completed */
    char curl_msg[256];     /* curl's error text when curl_code != 0 */
    uint64_t received;      /* body bytes received */
    int64_t content_length; /* -1 when absent */
    char etag[160];
    char content_range[96];
    char bucket_region[64]; /* x-amz-bucket-region (S3 names the right region) */
    char *body;             /* collected body (NUL-terminated), when sink was NULL */
    size_t body_len;
    bool body_truncated; /* over max_body: the transfer was stopped there */
};

/* max_idle: easy handles kept for reuse. Returns NULL on ENOMEM. */
struct vd_http_pool *vd_http_pool_new(size_t max_idle);
void vd_http_pool_free(struct vd_http_pool *p);
/* Bytes of timeout policy: abort a transfer that moves under 1 KiB/s for
 * low_speed_secs (VD_S3_TIMEOUT env overrides, default 30). */
void vd_http_pool_set_timeout(struct vd_http_pool *p, long low_speed_secs);

/* Run one request. Returns 0 when an HTTP response was received (any
 * status), or -EIO for a transport failure (resp->curl_msg says which);
 * -ENOMEM. resp must be released with vd_http_resp_free(). */
int vd_http_do(struct vd_http_pool *p, const struct vd_http_req *req, struct vd_http_resp *resp);
void vd_http_resp_free(struct vd_http_resp *r);

#endif
