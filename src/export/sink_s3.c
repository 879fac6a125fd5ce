/*
 * S3 multipart sink: encoders append bytes, and they reach s3://bucket/key
 * as a multipart upload (S3 API: CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload).
 *
 *   part:    1 (held back)    2        3       ...  1001     ...   last
 *   bytes:   [head..8 MiB)    [8 MiB]  [8 MiB] ...  [16 MiB] ...   [rest]
 *            patched in memory, uploaded at commit
 *
 * Part sizes start at 8 MiB and double every 1000 parts (VD_S3_PART_DOUBLE_EVERY
 * overrides, for tests), capped at 4 GiB, so 10,000 parts hold ~7.8 TiB,
 * more than S3's 5 TiB object limit. Part 1 holds max(head_len, 8 MiB) bytes
 * of the beginning; it stays in memory so vd_sink_patch() can rewrite the
 * declared head, and it is uploaded last. Other parts upload on their own
 * threads as soon as they are full, at most VD_S3_UPLOADS (default: the
 * readers' connection count, vd_s3_connections(): 16, or VD_S3_CONNECTIONS)
 * at a time: memory is bounded by (uploads + 2) parts.
 *
 * An object no bigger than part 1 is sent as one PutObject at commit.
 * Every failure, abort() and free() without commit send
 * AbortMultipartUpload, so no object appears and no parts stay behind.
 * CompleteMultipartUpload can fail inside a 200 answer: its body is checked
 * for <Error>.
 *
 * Not supported: reading back what was written (ops->read is NULL), objects
 * over 10,000 parts.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/sink.h"
#include "io/s3req.h"
#include "io/sigv4.h"

#define S3SINK_PART_MIN  (8ull * 1024 * 1024)
#define S3SINK_PART_MAX  (4ull * 1024 * 1024 * 1024)
#define S3SINK_MAX_PARTS 10000
#define S3SINK_HEAD_MAX  (5ull * 1024 * 1024 * 1024)

struct s3sink_part {
    char etag[160];
};

struct s3sink {
    struct vd_sink s; /* first */
    struct vd_s3_target *t;
    struct vd_http_pool *pool;
    uint64_t double_every;
    int max_uploads;
    char *upload_id;    /* NULL until CreateMultipartUpload */
    uint8_t *head;      /* part 1 */
    uint64_t part1_len; /* 0 until the first write fixes it */
    uint64_t head_fill;
    uint8_t *cur; /* the part being filled (2, 3, ...) */
    uint64_t cur_len, cur_size;
    int cur_no;
    /* under lock: */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inflight;
    struct s3sink_part *parts; /* [0] is part 1 */
    int nparts;
    int err_code;
    char err_msg[VD_ERROR_MAX];
    bool finished; /* committed or aborted */
};

struct s3sink_job {
    struct s3sink *k;
    int no;
    uint8_t *buf;
    uint64_t len;
};

static uint64_t s3sink_part_size(const struct s3sink *k, int no)
{
    uint64_t shift = (uint64_t)(no - 1) / k->double_every;
    uint64_t sz = shift >= 9 ? S3SINK_PART_MAX : S3SINK_PART_MIN << shift;
    return sz > S3SINK_PART_MAX ? S3SINK_PART_MAX : sz;
}

/* Record the first failure (lock held or not yet shared). */
static void s3sink_fail(struct s3sink *k, int code, const char *msg)
{
    if (k->err_code == 0) {
        k->err_code = code;
        snprintf(k->err_msg, sizeof(k->err_msg), "%s", msg);
    }
}

static int s3sink_failed(struct s3sink *k, struct vd_error *err)
{
    pthread_mutex_lock(&k->lock);
    int code = k->err_code;
    char msg[VD_ERROR_MAX];
    snprintf(msg, sizeof(msg), "%s", k->err_msg);
    pthread_mutex_unlock(&k->lock);
    return code ? vd_err(err, code, "%s", msg) : 0;
}

/* One request with retries; on success resp is kept for the caller (free
 * it). what names the call in messages. */
static int s3sink_call(struct s3sink *k, const char *what, const struct vd_s3_call *c,
                       long want_status, struct vd_http_resp *resp, struct vd_error *err)
{
    int attempts = vd_s3_max_attempts(), attempt;
    char why[400] = "";
    for (attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1)
            vd_s3_backoff(attempt - 1);
        int rc = vd_s3_call(k->pool, k->t, c, resp);
        if (rc == 0 && resp->status == want_status)
            return 0;
        vd_s3_describe(rc, resp, why, sizeof(why));
        bool again = vd_s3_retryable(rc, resp);
        vd_http_resp_free(resp);
        if (rc == -ENOMEM)
            return vd_err(err, -ENOMEM, "export: %s: %s: out of memory", k->s.name, what);
        if (!again)
            return vd_err(err, -EIO, "export: %s: %s: %s", k->s.name, what, why);
    }
    return vd_err(err, -EIO, "export: %s: %s failed %d times, giving up: %s", k->s.name, what,
                  attempts, why);
}

static int s3sink_create(struct s3sink *k, struct vd_error *err)
{
    struct vd_s3_call c = {.method = "POST", .query = "uploads"};
    struct vd_http_resp resp;
    int r = s3sink_call(k, "CreateMultipartUpload", &c, 200, &resp, err);
    if (r)
        return r;
    k->upload_id = vd_s3_xml_tag(resp.body, resp.body_len, "UploadId");
    vd_http_resp_free(&resp);
    if (!k->upload_id || !k->upload_id[0])
        return vd_err(err, -EIO, "export: %s: CreateMultipartUpload: no UploadId in the answer",
                      k->s.name);
    return 0;
}

static int s3sink_upload_part(struct s3sink *k, int no, const uint8_t *buf, uint64_t len,
                              struct vd_error *err)
{
    char *id = vd_uri_encode_dup(k->upload_id, false);
    if (!id)
        return vd_err(err, -ENOMEM, "export: %s: out of memory", k->s.name);
    size_t ql = strlen(id) + 48;
    char *q = malloc(ql);
    if (!q) {
        free(id);
        return vd_err(err, -ENOMEM, "export: %s: out of memory", k->s.name);
    }
    snprintf(q, ql, "partNumber=%d&uploadId=%s", no, id);
    free(id);
    char sha[VD_SHA256_HEX_LEN + 1], what[64];
    vd_sha256_hex(buf, (size_t)len, sha);
    snprintf(what, sizeof(what), "UploadPart %d (%" PRIu64 " bytes)", no, len);
    struct vd_s3_call c = {
        .method = "PUT", .query = q, .body = buf, .body_len = (size_t)len, .body_sha256 = sha};
    struct vd_http_resp resp;
    int r = s3sink_call(k, what, &c, 200, &resp, err);
    free(q);
    if (r)
        return r;
    if (!resp.etag[0]) {
        vd_http_resp_free(&resp);
        return vd_err(err, -EIO, "export: %s: %s: no ETag in the answer", k->s.name, what);
    }
    pthread_mutex_lock(&k->lock);
    snprintf(k->parts[no - 1].etag, sizeof(k->parts[no - 1].etag), "%s", resp.etag);
    pthread_mutex_unlock(&k->lock);
    vd_http_resp_free(&resp);
    return 0;
}

static void *s3sink_thread(void *arg)
{
    struct s3sink_job *j = arg;
    struct s3sink *k = j->k;
    struct vd_error err = {0};
    int r = 0;
    pthread_mutex_lock(&k->lock);
    bool skip = k->err_code != 0;
    pthread_mutex_unlock(&k->lock);
    if (!skip)
        r = s3sink_upload_part(k, j->no, j->buf, j->len, &err);
    free(j->buf);
    pthread_mutex_lock(&k->lock);
    if (r)
        s3sink_fail(k, r, err.msg);
    k->inflight--;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
    free(j);
    return NULL;
}

static void s3sink_wait_idle(struct s3sink *k)
{
    pthread_mutex_lock(&k->lock);
    while (k->inflight > 0)
        pthread_cond_wait(&k->cond, &k->lock);
    pthread_mutex_unlock(&k->lock);
}

/* Hand the full current part to an upload thread (blocks while too many
 * are in flight). */
static int s3sink_dispatch(struct s3sink *k, struct vd_error *err)
{
    int r;
    if (!k->upload_id && (r = s3sink_create(k, err)) != 0)
        return r;
    if (k->cur_no > S3SINK_MAX_PARTS)
        return vd_err(err, -EFBIG, "export: %s: more than %d parts", k->s.name, S3SINK_MAX_PARTS);
    struct s3sink_job *j = malloc(sizeof(*j));
    if (!j)
        return vd_err(err, -ENOMEM, "export: %s: out of memory", k->s.name);
    *j = (struct s3sink_job){.k = k, .no = k->cur_no, .buf = k->cur, .len = k->cur_len};
    pthread_mutex_lock(&k->lock);
    while (k->inflight >= k->max_uploads && k->err_code == 0)
        pthread_cond_wait(&k->cond, &k->lock);
    if (k->err_code) {
        pthread_mutex_unlock(&k->lock);
        free(j);
        return s3sink_failed(k, err);
    }
    if (k->cur_no > k->nparts)
        k->nparts = k->cur_no;
    k->inflight++;
    pthread_mutex_unlock(&k->lock);
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, s3sink_thread, j) != 0) {
        pthread_attr_destroy(&attr);
        pthread_mutex_lock(&k->lock);
        k->inflight--;
        pthread_mutex_unlock(&k->lock);
        free(j);
        return vd_err(err, -EAGAIN, "export: %s: cannot start an upload thread", k->s.name);
    }
    pthread_attr_destroy(&attr);
    k->cur = NULL; /* the thread owns and frees it */
    k->cur_len = 0;
    k->cur_no++;
    return 0;
}

static int s3sink_write(struct vd_sink *s, const void *buf, size_t len, struct vd_error *err)
{
    struct s3sink *k = (struct s3sink *)s;
    const uint8_t *p = buf;
    int r;
    if (k->finished)
        return vd_err(err, -EINVAL, "export: %s: write after commit or abort", s->name);
    if ((r = s3sink_failed(k, err)) != 0)
        return r;
    if (k->part1_len == 0) {
        if (s->head_len > S3SINK_HEAD_MAX)
            return vd_err(err, -EFBIG, "export: %s: head of %" PRIu64 " bytes is over 5 GiB",
                          s->name, s->head_len);
        k->part1_len = s->head_len > S3SINK_PART_MIN ? s->head_len : S3SINK_PART_MIN;
        k->head = malloc((size_t)k->part1_len);
        if (!k->head)
            return vd_err(err, -ENOMEM, "export: %s: out of memory", s->name);
    }
    while (len > 0) {
        if (k->head_fill < k->part1_len) {
            uint64_t n = k->part1_len - k->head_fill;
            if (n > len)
                n = len;
            memcpy(k->head + k->head_fill, p, (size_t)n);
            k->head_fill += n;
            p += n;
            len -= (size_t)n;
            s->pos += n;
            continue;
        }
        if (!k->cur) {
            k->cur_size = s3sink_part_size(k, k->cur_no);
            k->cur = malloc((size_t)k->cur_size);
            if (!k->cur)
                return vd_err(err, -ENOMEM, "export: %s: out of memory for a %" PRIu64 "-byte part",
                              s->name, k->cur_size);
        }
        uint64_t n = k->cur_size - k->cur_len;
        if (n > len)
            n = len;
        memcpy(k->cur + k->cur_len, p, (size_t)n);
        k->cur_len += n;
        p += n;
        len -= (size_t)n;
        s->pos += n;
        if (k->cur_len == k->cur_size && (r = s3sink_dispatch(k, err)) != 0)
            return r;
    }
    return 0;
}

static int s3sink_patch(struct vd_sink *s, uint64_t off, const void *buf, size_t len,
                        struct vd_error *err)
{
    struct s3sink *k = (struct s3sink *)s;
    if (off > s->head_len || len > s->head_len - off || off + len > s->pos ||
        off + len > k->head_fill)
        return vd_err(err, -EINVAL,
                      "export: %s: patch of %zu bytes at %" PRIu64 " is outside the head (%" PRIu64
                      " bytes declared, %" PRIu64 " written)",
                      s->name, len, off, s->head_len, s->pos);
    memcpy(k->head + off, buf, len);
    return 0;
}

static void s3sink_abort_upload(struct s3sink *k)
{
    s3sink_wait_idle(k);
    if (!k->upload_id)
        return;
    char *id = vd_uri_encode_dup(k->upload_id, false);
    if (id) {
        size_t ql = strlen(id) + 16;
        char *q = malloc(ql);
        if (q) {
            snprintf(q, ql, "uploadId=%s", id);
            struct vd_s3_call c = {.method = "DELETE", .query = q};
            struct vd_http_resp resp;
            struct vd_error e = {0};
            if (s3sink_call(k, "AbortMultipartUpload", &c, 204, &resp, &e) == 0)
                vd_http_resp_free(&resp);
            free(q);
        }
        free(id);
    }
    free(k->upload_id);
    k->upload_id = NULL;
}

/* The committed object's ETag, for vd_sink_s3_withdraw ("" if none). */
static void s3sink_complete_etag(struct s3sink *k, const struct vd_http_resp *resp)
{
    char *etag = vd_s3_xml_tag(resp->body, resp->body_len, "ETag");
    /* The XML escapes the quotes that the ETag header carries verbatim. */
    const char *v = etag ? etag : "";
    if (!strncmp(v, "&quot;", 6)) {
        size_t n = strlen(v);
        if (n >= 12 && !strcmp(v + n - 6, "&quot;"))
            snprintf(k->s.etag, sizeof(k->s.etag), "\"%.*s\"", (int)(n - 12), v + 6);
    } else {
        snprintf(k->s.etag, sizeof(k->s.etag), "%s", v);
    }
    free(etag);
}

static int s3sink_complete(struct s3sink *k, struct vd_error *err)
{
    size_t cap = (size_t)k->nparts * 256 + 128;
    char *xml = malloc(cap);
    if (!xml)
        return vd_err(err, -ENOMEM, "export: %s: out of memory", k->s.name);
    size_t n = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
    for (int i = 0; i < k->nparts; i++)
        n += (size_t)snprintf(xml + n, cap - n,
                              "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              k->parts[i].etag);
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    char *id = vd_uri_encode_dup(k->upload_id, false);
    size_t ql = id ? strlen(id) + 16 : 0;
    char *q = id ? malloc(ql) : NULL;
    if (!q) {
        free(id);
        free(xml);
        return vd_err(err, -ENOMEM, "export: %s: out of memory", k->s.name);
    }
    snprintf(q, ql, "uploadId=%s", id);
    free(id);
    struct vd_s3_call c = {.method = "POST",
                           .query = q,
                           .headers = (const char *const[]){"Content-Type: application/xml"},
                           .nheaders = 1,
                           .body = xml,
                           .body_len = n,
                           .max_body = 1 << 20,
                           /* Assembling a big object takes a while; S3 sends
                            * keep-alive whitespace, other servers may not. */
                           .low_speed_secs = 900};
    struct vd_http_resp resp;
    int r = 0, attempts = vd_s3_max_attempts();
    for (int attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1)
            vd_s3_backoff(attempt - 1);
        r = s3sink_call(k, "CompleteMultipartUpload", &c, 200, &resp, err);
        if (r)
            break;
        /* S3 may answer 200 and still fail: the error is in the body.
         * InternalError and SlowDown there mean "retry". */
        char *code = resp.body ? vd_s3_xml_tag(resp.body, resp.body_len, "Code") : NULL;
        bool is_error = resp.body && strstr(resp.body, "<Error>");
        if (!is_error && !code && resp.body && strstr(resp.body, "CompleteMultipartUploadResult")) {
            s3sink_complete_etag(k, &resp);
            vd_http_resp_free(&resp);
            r = 0;
            break;
        }
        bool again = code && (!strcmp(code, "InternalError") || !strcmp(code, "SlowDown"));
        char *msg = resp.body ? vd_s3_xml_tag(resp.body, resp.body_len, "Message") : NULL;
        if (!again || attempt == attempts)
            r = vd_err(err, -EIO, "export: %s: CompleteMultipartUpload: %s%s%s", k->s.name,
                       code ? code : "no CompleteMultipartUploadResult in the answer",
                       msg ? ": " : "", msg ? msg : "");
        free(msg);
        free(code);
        vd_http_resp_free(&resp);
        if (!again)
            break;
    }
    free(q);
    free(xml);
    return r;
}

static int s3sink_commit(struct vd_sink *s, struct vd_error *err)
{
    struct s3sink *k = (struct s3sink *)s;
    int r;
    if (k->finished)
        return vd_err(err, -EINVAL, "export: %s: commit after commit or abort", s->name);
    if ((r = s3sink_failed(k, err)) != 0)
        goto fail;
    if (!k->upload_id && !k->cur) {
        /* Small: one PutObject. */
        struct vd_s3_call c = {.method = "PUT",
                               .body = k->head ? k->head : (const void *)"",
                               .body_len = (size_t)k->head_fill};
        struct vd_http_resp resp;
        if ((r = s3sink_call(k, "PutObject", &c, 200, &resp, err)) != 0)
            goto fail;
        snprintf(s->etag, sizeof(s->etag), "%s", resp.etag);
        vd_http_resp_free(&resp);
        k->finished = true;
        return 0;
    }
    if (k->cur && k->cur_len > 0 && (r = s3sink_dispatch(k, err)) != 0)
        goto fail;
    if (!k->upload_id && (r = s3sink_create(k, err)) != 0)
        goto fail;
    s3sink_wait_idle(k);
    if ((r = s3sink_failed(k, err)) != 0)
        goto fail;
    if ((r = s3sink_upload_part(k, 1, k->head, k->head_fill, err)) != 0)
        goto fail;
    if ((r = s3sink_complete(k, err)) != 0)
        goto fail;
    free(k->upload_id);
    k->upload_id = NULL;
    k->finished = true;
    return 0;
fail:
    s3sink_abort_upload(k);
    k->finished = true;
    return r;
}

static void s3sink_abort(struct vd_sink *s)
{
    struct s3sink *k = (struct s3sink *)s;
    pthread_mutex_lock(&k->lock);
    s3sink_fail(k, -ECANCELED, "export: aborted");
    pthread_mutex_unlock(&k->lock);
    s3sink_abort_upload(k);
    k->finished = true;
}

static void s3sink_free(struct vd_sink *s)
{
    if (!s)
        return;
    struct s3sink *k = (struct s3sink *)s;
    if (!k->finished)
        s3sink_abort(s);
    s3sink_wait_idle(k);
    free(k->head);
    free(k->cur);
    free(k->parts);
    free(k->upload_id);
    vd_s3_target_free(k->t);
    vd_http_pool_free(k->pool);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    free(s->name);
    free(k);
}

static const struct vd_sink_ops s3sink_ops = {
    .name = "s3",
    .write = s3sink_write,
    .patch = s3sink_patch,
    .commit = s3sink_commit,
    .abort = s3sink_abort,
    .free = s3sink_free,
};

int vd_sink_s3_open(const char *uri, const struct vd_io_opts *opts, const struct vd_s3_target *near,
                    struct vd_sink **out, struct vd_error *err)
{
    *out = NULL;
    struct s3sink *k = calloc(1, sizeof(*k));
    if (!k)
        return vd_err(err, -ENOMEM, "export: out of memory");
    const char *base = strrchr(uri, '/');
    int r = -1;
    /* Beside a resolved target: its endpoint and credentials, no lookup
     * (vd_s3_target_relative refuses names that look absolute: resolve). */
    if (near && base && (r = vd_s3_target_relative(near, base + 1, &k->t, err)) == 0 &&
        strcmp(k->t->uri, uri) != 0) {
        vd_s3_target_free(k->t);
        k->t = NULL;
        r = -1;
    }
    if (r != 0) {
        vd_err_clear(err);
        r = vd_s3_target_open(uri, opts, &k->t, err);
    }
    if (r) {
        free(k);
        return r;
    }
    const char *e = getenv("VD_S3_PART_DOUBLE_EVERY");
    k->double_every = e && atol(e) > 0 ? (uint64_t)atol(e) : 1000;
    /* As many uploads at once as reads get connections (one S3 connection
     * moves tens of MB/s; see src/io/s3.c): 16 x 8 MiB parts by default. */
    e = getenv("VD_S3_UPLOADS");
    k->max_uploads = e && atoi(e) > 0 && atoi(e) <= 64 ? atoi(e) : vd_s3_connections(0);
    k->pool = vd_http_pool_new((size_t)k->max_uploads + 2);
    k->parts = calloc(S3SINK_MAX_PARTS, sizeof(*k->parts));
    k->s.ops = &s3sink_ops;
    k->s.name = strdup(uri);
    k->cur_no = 2;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    if (!k->pool || !k->parts || !k->s.name) {
        s3sink_free(&k->s);
        return vd_err(err, -ENOMEM, "export: out of memory");
    }
    if (!k->t->is_s3) {
        s3sink_free(&k->s);
        return vd_err(err, -ENOTSUP, "export: %s: only s3:// destinations are supported", uri);
    }
    *out = &k->s;
    return 0;
}

/* HEAD or DELETE of the object, with the retry policy of the upload calls. */
static int s3sink_object_call(struct s3sink *k, const char *method, long want,
                              struct vd_http_resp *resp, struct vd_error *err)
{
    struct vd_s3_call c = {.method = method};
    return s3sink_call(k, method, &c, want, resp, err);
}

int vd_sink_s3_withdraw(const char *uri, const struct vd_io_opts *opts, const char *etag,
                        struct vd_error *err)
{
    struct s3sink k = {.s.name = (char *)uri};
    struct vd_http_resp resp;
    int r = vd_s3_target_open(uri, opts, &k.t, err);
    if (r)
        return r;
    if (!(k.pool = vd_http_pool_new(1))) {
        r = vd_err(err, -ENOMEM, "export: out of memory");
        goto out;
    }
    /* S3 has no conditional DELETE: compare the ETag first, so an object
     * written over ours since is left alone (a narrow race remains). */
    if (etag && etag[0]) {
        struct vd_error herr = {0};
        if (s3sink_object_call(&k, "HEAD", 200, &resp, &herr) != 0) {
            r = vd_err(err, -ENOENT, "%s", herr.msg);
            goto out;
        }
        bool same = strcmp(resp.etag, etag) == 0;
        vd_http_resp_free(&resp);
        if (!same) {
            r = vd_err(err, -ESTALE, "export: %s: replaced since it was committed; left alone",
                       uri);
            goto out;
        }
    }
    if ((r = s3sink_object_call(&k, "DELETE", 204, &resp, err)) == 0)
        vd_http_resp_free(&resp);
out:
    vd_http_pool_free(k.pool);
    vd_s3_target_free(k.t);
    return r;
}
