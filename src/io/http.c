/* libcurl easy-handle pool; see http.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "io/http.h"

struct vd_http_pool {
    pthread_mutex_t lock;
    CURL **idle;
    size_t nidle, max_idle;
    long low_speed_secs;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;

static void http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct vd_http_pool *vd_http_pool_new(size_t max_idle)
{
    pthread_once(&http_once, http_global_init);
    struct vd_http_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_idle = max_idle ? max_idle : 8;
    p->idle = calloc(p->max_idle, sizeof(*p->idle));
    if (!p->idle) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    const char *t = getenv("VD_S3_TIMEOUT");
    p->low_speed_secs = t && atol(t) > 0 ? atol(t) : 30;
    return p;
}

void vd_http_pool_set_timeout(struct vd_http_pool *p, long low_speed_secs)
{
    if (low_speed_secs > 0)
        p->low_speed_secs = low_speed_secs;
}

void vd_http_pool_free(struct vd_http_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nidle; i++)
        curl_easy_cleanup(p->idle[i]);
    free(p->idle);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static CURL *http_get_handle(struct vd_http_pool *p)
{
    CURL *c = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->nidle > 0)
        c = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->lock);
    if (c)
        curl_easy_reset(c); /* keeps the connection cache */
    else
        c = curl_easy_init();
    return c;
}

static void http_put_handle(struct vd_http_pool *p, CURL *c)
{
    pthread_mutex_lock(&p->lock);
    if (p->nidle < p->max_idle) {
        p->idle[p->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (c)
        curl_easy_cleanup(c);
}

struct http_xfer {
    CURL *curl;
    const struct vd_http_req *req;
    struct vd_http_resp *resp;
    size_t body_cap;
    bool oom;
    const char *upload;
    size_t upload_left;
};

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct http_xfer *x = opaque;
    size_t n = size * nmemb;
    x->resp->received += n;
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    /* Error bodies (S3 error XML) are collected for the message, not sunk. */
    if (x->req->sink && status < 300)
        return x->req->sink(x->req->sink_opaque, data, n) ? n : 0;
    size_t max_body = x->req->sink ? 64 * 1024 : x->req->max_body;
    size_t room = max_body > x->resp->body_len ? max_body - x->resp->body_len : 0;
    size_t take = n < room ? n : room;
    if (take == 0) {
        /* Enough of an error or over-long body: stop the transfer (a server
         * that ignores Range would otherwise send the whole object). */
        x->resp->body_truncated = true;
        return 0;
    }
    if (take < n)
        x->resp->body_truncated = true;
    if (x->resp->body_len + take + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        while (cap < x->resp->body_len + take + 1)
            cap *= 2;
        char *nb = realloc(x->resp->body, cap);
        if (!nb) {
            x->oom = true;
            return 0;
        }
        x->resp->body = nb;
        x->body_cap = cap;
    }
    memcpy(x->resp->body + x->resp->body_len, data, take);
    x->resp->body_len += take;
    x->resp->body[x->resp->body_len] = '\0';
    return n;
}

static size_t http_read_cb(char *buf, size_t size, size_t nmemb, void *opaque)
{
    struct http_xfer *x = opaque;
    size_t n = size * nmemb;
    if (n > x->upload_left)
        n = x->upload_left;
    memcpy(buf, x->upload, n);
    x->upload += n;
    x->upload_left -= n;
    return n;
}

static int http_seek_cb(void *opaque, curl_off_t off, int origin)
{
    struct http_xfer *x = opaque;
    if (origin != SEEK_SET || off < 0 || (size_t)off > x->req->body_len)
        return CURL_SEEKFUNC_FAIL;
    x->upload = (const char *)x->req->body + off;
    x->upload_left = x->req->body_len - (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* Copy a header value (trimmed) into dst. */
static void http_hval(const char *v, size_t n, char *dst, size_t dlen)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= dlen)
        n = dlen - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t http_header_cb(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct http_xfer *x = opaque;
    size_t n = size * nmemb;
    /* A new status line (redirect, 100-continue) starts a new header set. */
    if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
        x->resp->etag[0] = '\0';
        x->resp->content_range[0] = '\0';
        x->resp->bucket_region[0] = '\0';
        x->resp->content_length = -1;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon)
        return n;
    size_t kl = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vl = n - kl - 1;
    if (kl == 4 && !strncasecmp(data, "ETag", 4)) {
        http_hval(v, vl, x->resp->etag, sizeof(x->resp->etag));
    } else if (kl == 13 && !strncasecmp(data, "Content-Range", 13)) {
        http_hval(v, vl, x->resp->content_range, sizeof(x->resp->content_range));
    } else if (kl == 19 && !strncasecmp(data, "x-amz-bucket-region", 19)) {
        http_hval(v, vl, x->resp->bucket_region, sizeof(x->resp->bucket_region));
    } else if (kl == 14 && !strncasecmp(data, "Content-Length", 14)) {
        char tmp[32];
        http_hval(v, vl, tmp, sizeof(tmp));
        char *end;
        long long cl = strtoll(tmp, &end, 10);
        x->resp->content_length = (end != tmp && cl >= 0) ? cl : -1;
    }
    return n;
}

int vd_http_do(struct vd_http_pool *p, const struct vd_http_req *req, struct vd_http_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    CURL *c = http_get_handle(p);
    if (!c)
        return -ENOMEM;
    struct curl_slist *hl = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        struct curl_slist *n = curl_slist_append(hl, req->headers[i]);
        if (!n) {
            curl_slist_free_all(hl);
            curl_easy_cleanup(c);
            return -ENOMEM;
        }
        hl = n;
    }
    /* No "Expect: 100-continue" round trip for uploads. */
    struct curl_slist *n2 = curl_slist_append(hl, "Expect:");
    if (n2)
        hl = n2;
    struct http_xfer x = {
        .curl = c, .req = req, .resp = resp, .upload = req->body, .upload_left = req->body_len};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                     req->low_speed_secs ? req->low_speed_secs : p->low_speed_secs);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Bigger than curl's 16 KiB/64 KiB defaults: a 8 MiB range or part then
     * costs a few hundred reads/writes, not thousands (issue 15: 16 of them
     * at once share two cores with the decoder). */
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(req->method, "PUT") || !strcmp(req->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, http_read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &x);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, http_seek_cb);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, &x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
        if (!strcmp(req->method, "POST"))
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    resp->curl_code = (int)cc;
    curl_slist_free_all(hl);
    if (cc == CURLE_WRITE_ERROR && resp->body_truncated && !x.oom) {
        /* We cut the body short on purpose; the answer itself arrived. */
        curl_easy_cleanup(c);
        return 0;
    }
    if (cc != CURLE_OK) {
        snprintf(resp->curl_msg, sizeof(resp->curl_msg), "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        /* A failed transfer may leave the connection in a bad state. */
        curl_easy_cleanup(c);
        if (x.oom)
            return -ENOMEM;
        return -EIO;
    }
    http_put_handle(p, c);
    return 0;
}

void vd_http_resp_free(struct vd_http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
