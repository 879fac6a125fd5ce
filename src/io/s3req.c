/* S3/HTTP request building, signing and retry policy; see s3req.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "io/awscreds.h"
#include "io/s3req.h"
#include "io/sigv4.h"

void vd_s3_target_free(struct vd_s3_target *t)
{
    if (!t)
        return;
    free(t->uri);
    free(t->bucket);
    free(t->key);
    free(t->base);
    free(t->host);
    free(t->sign_path);
    free(t->url);
    vd_awsconf_free(&t->conf);
    free(t);
}

/* Fill base/host/sign_path/url from bucket, key and conf. */
static int s3req_place(struct vd_s3_target *t, struct vd_error *err)
{
    const char *ep = t->conf.endpoint;
    char defep[256];
    if (!ep) {
        snprintf(defep, sizeof(defep), "https://s3.%s.amazonaws.com", t->conf.region);
        ep = defep;
    }
    const char *hs = strstr(ep, "://");
    if (!hs)
        return vd_err(err, -EINVAL, "s3: endpoint '%s' is not a URL", ep);
    size_t schemelen = (size_t)(hs - ep);
    hs += 3;
    size_t hl = strcspn(hs, "/?#");
    bool path_style = t->conf.path_style || strchr(t->bucket, '.') != NULL;
    size_t n = strlen(ep) + strlen(t->bucket) + 8;
    t->base = malloc(n);
    t->host = malloc(n);
    size_t pn = strlen(t->bucket) + strlen(t->key) + 3;
    t->sign_path = malloc(pn);
    if (!t->base || !t->host || !t->sign_path)
        return vd_err(err, -ENOMEM, "s3: out of memory");
    if (path_style) {
        snprintf(t->base, n, "%.*s://%.*s", (int)schemelen, ep, (int)hl, hs);
        snprintf(t->host, n, "%.*s", (int)hl, hs);
        snprintf(t->sign_path, pn, "/%s/%s", t->bucket, t->key);
    } else {
        snprintf(t->base, n, "%.*s://%s.%.*s", (int)schemelen, ep, t->bucket, (int)hl, hs);
        snprintf(t->host, n, "%s.%.*s", t->bucket, (int)hl, hs);
        snprintf(t->sign_path, pn, "/%s", t->key);
    }
    char *enc = vd_uri_encode_dup(t->sign_path, true);
    if (!enc)
        return vd_err(err, -ENOMEM, "s3: out of memory");
    size_t un = strlen(t->base) + strlen(enc) + 1;
    t->url = malloc(un);
    if (!t->url) {
        free(enc);
        return vd_err(err, -ENOMEM, "s3: out of memory");
    }
    snprintf(t->url, un, "%s%s", t->base, enc);
    free(enc);
    return 0;
}

int vd_s3_target_open(const char *uri, const struct vd_io_opts *opts, struct vd_s3_target **out,
                      struct vd_error *err)
{
    struct vd_s3_target *t = calloc(1, sizeof(*t));
    int r;
    if (!t || !(t->uri = strdup(uri))) {
        free(t);
        return vd_err(err, -ENOMEM, "s3: out of memory");
    }
    if (!strncmp(uri, "s3://", 5)) {
        t->is_s3 = true;
        const char *b = uri + 5, *slash = strchr(b, '/');
        if (!slash || slash == b || !slash[1]) {
            r = vd_err(err, -EINVAL, "s3: %s: expected s3://bucket/key", uri);
            goto fail;
        }
        t->bucket = strndup(b, (size_t)(slash - b));
        t->key = strdup(slash + 1);
        if (!t->bucket || !t->key) {
            r = vd_err(err, -ENOMEM, "s3: out of memory");
            goto fail;
        }
        if ((r = vd_awsconf_resolve(opts, &t->conf, err)) != 0)
            goto fail;
        if ((r = s3req_place(t, err)) != 0)
            goto fail;
    } else {
        t->url = strdup(uri);
        if (!t->url) {
            r = vd_err(err, -ENOMEM, "s3: out of memory");
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    vd_s3_target_free(t);
    return r;
}

int vd_s3_target_relative(const struct vd_s3_target *t, const char *rel, struct vd_s3_target **out,
                          struct vd_error *err)
{
    if (rel[0] == '/' || strchr(rel, '\\') || (rel[0] && rel[1] == ':'))
        return vd_err(err, -ENOENT, "%s: cannot open '%s' beside it: absolute paths are local",
                      t->uri, rel);
    struct vd_s3_target *n = calloc(1, sizeof(*n));
    if (!n)
        return vd_err(err, -ENOMEM, "s3: out of memory");
    int r = -ENOMEM;
    n->is_s3 = t->is_s3;
    if (t->is_s3) {
        const char *slash = strrchr(t->key, '/');
        size_t dl = slash ? (size_t)(slash - t->key + 1) : 0;
        size_t kl = dl + strlen(rel) + 1;
        n->bucket = strdup(t->bucket);
        n->key = malloc(kl);
        if (!n->bucket || !n->key)
            goto fail;
        snprintf(n->key, kl, "%.*s%s", (int)dl, t->key, rel);
        size_t ul = strlen(n->bucket) + kl + 8;
        n->uri = malloc(ul);
        if (!n->uri)
            goto fail;
        snprintf(n->uri, ul, "s3://%s/%s", n->bucket, n->key);
        if (vd_awsconf_copy(&n->conf, &t->conf) != 0)
            goto fail;
        if ((r = s3req_place(n, err)) != 0)
            goto fail;
    } else {
        /* Plain URL: replace the last path component, drop the query (a
         * presigned query is only valid for its own object). */
        const char *q = strchr(t->url, '?');
        size_t pl = q ? (size_t)(q - t->url) : strlen(t->url);
        const char *hs = strstr(t->url, "://");
        const char *ps = hs ? strchr(hs + 3, '/') : NULL;
        size_t dl = pl;
        if (ps && ps < t->url + pl) {
            while (dl > 0 && t->url[dl - 1] != '/')
                dl--;
        } else {
            dl = pl; /* no path: append "/rel" */
        }
        char *enc = vd_uri_encode_dup(rel, true);
        if (!enc)
            goto fail;
        size_t ul = dl + strlen(enc) + 2;
        n->url = malloc(ul);
        if (!n->url) {
            free(enc);
            goto fail;
        }
        snprintf(n->url, ul, "%.*s%s%s", (int)dl, t->url, (ps && ps < t->url + pl) ? "" : "/", enc);
        free(enc);
        n->uri = strdup(n->url);
        if (!n->uri)
            goto fail;
    }
    *out = n;
    return 0;
fail:
    vd_s3_target_free(n);
    return r == -ENOMEM ? vd_err(err, -ENOMEM, "s3: out of memory") : r;
}

int vd_s3_call(struct vd_http_pool *pool, const struct vd_s3_target *t, const struct vd_s3_call *c,
               struct vd_http_resp *resp)
{
    enum { MAXH = 16 };
    const char *lines[MAXH + 8];
    char hbuf[6][512];
    char *authz_line = NULL, *token_line = NULL;
    size_t nl = 0;
    int r;
    char *url = NULL;
    memset(resp, 0, sizeof(*resp));
    if (c->nheaders > MAXH)
        return -EINVAL;
    /* Expiring credentials: the provider's current set, refreshed when due.
     * A failed refresh after expiry is a transport-like failure (-EIO, the
     * reason in curl_msg), so the caller's retry policy applies. */
    struct vd_awscreds *creds = NULL;
    const char *ak = t->conf.access_key, *sk = t->conf.secret_key, *tok = t->conf.session_token;
    if (t->is_s3 && t->conf.provider) {
        char why[sizeof(resp->curl_msg) - 16];
        if (vd_awscreds_provider_get(t->conf.provider, &creds, why, sizeof(why)) != 0) {
            snprintf(resp->curl_msg, sizeof(resp->curl_msg), "credentials: %s", why);
            return -EIO;
        }
        ak = creds->access_key;
        sk = creds->secret_key;
        tok = creds->session_token;
    }
    if (c->query && c->query[0]) {
        size_t ul = strlen(t->url) + strlen(c->query) + 2;
        url = malloc(ul);
        if (!url) {
            vd_awscreds_put(creds);
            return -ENOMEM;
        }
        snprintf(url, ul, "%s?%s", t->url, c->query);
    }
    for (size_t i = 0; i < c->nheaders; i++)
        lines[nl++] = c->headers[i];
    if (t->is_s3 && ak) {
        char date[17], sha[VD_SHA256_HEX_LEN + 1];
        vd_amz_date((int64_t)time(NULL), date);
        if (c->body_sha256)
            snprintf(sha, sizeof(sha), "%s", c->body_sha256);
        else
            vd_sha256_hex(c->body ? c->body : "", c->body_len, sha);
        struct vd_sigv4_header sh[MAXH + 4];
        char names[MAXH][64];
        size_t ns = 0;
        sh[ns++] = (struct vd_sigv4_header){"host", t->host};
        sh[ns++] = (struct vd_sigv4_header){"x-amz-date", date};
        sh[ns++] = (struct vd_sigv4_header){"x-amz-content-sha256", sha};
        if (tok)
            sh[ns++] = (struct vd_sigv4_header){"x-amz-security-token", tok};
        for (size_t i = 0; i < c->nheaders; i++) {
            const char *colon = strchr(c->headers[i], ':');
            if (!colon)
                continue;
            snprintf(names[i], sizeof(names[i]), "%.*s", (int)(colon - c->headers[i]),
                     c->headers[i]);
            sh[ns++] = (struct vd_sigv4_header){names[i], colon + 1};
        }
        struct vd_sigv4_request sr = {.method = c->method,
                                      .path = t->sign_path,
                                      .query = c->query,
                                      .headers = sh,
                                      .nheaders = ns,
                                      .payload_hash = sha,
                                      .amz_date = date,
                                      .region = t->conf.region,
                                      .service = "s3",
                                      .access_key = ak,
                                      .secret_key = sk};
        struct vd_sigv4_result res;
        if ((r = vd_sigv4_sign(&sr, &res)) != 0)
            goto out;
        snprintf(hbuf[0], sizeof(hbuf[0]), "x-amz-date: %s", date);
        snprintf(hbuf[1], sizeof(hbuf[1]), "x-amz-content-sha256: %s", sha);
        lines[nl++] = hbuf[0];
        lines[nl++] = hbuf[1];
        size_t al = strlen(res.authorization) + 32;
        authz_line = malloc(al);
        if (authz_line)
            snprintf(authz_line, al, "Authorization: %s", res.authorization);
        vd_sigv4_result_free(&res);
        if (!authz_line) {
            r = -ENOMEM;
            goto out;
        }
        lines[nl++] = authz_line;
        if (tok) {
            size_t tl = strlen(tok) + 32;
            token_line = malloc(tl);
            if (!token_line) {
                r = -ENOMEM;
                goto out;
            }
            snprintf(token_line, tl, "x-amz-security-token: %s", tok);
            lines[nl++] = token_line;
        }
    } else if (t->is_s3) {
        /* Anonymous: still send the payload hash header some servers want. */
        snprintf(hbuf[1], sizeof(hbuf[1]), "x-amz-content-sha256: UNSIGNED-PAYLOAD");
        lines[nl++] = hbuf[1];
    }
    struct vd_http_req hr = {.method = c->method,
                             .url = url ? url : t->url,
                             .headers = lines,
                             .nheaders = nl,
                             .body = c->body,
                             .body_len = c->body_len,
                             .sink = c->sink,
                             .sink_opaque = c->sink_opaque,
                             .max_body = c->max_body ? c->max_body : 64 * 1024,
                             .low_speed_secs = c->low_speed_secs};
    r = vd_http_do(pool, &hr, resp);
out:
    free(url);
    free(authz_line);
    free(token_line);
    vd_awscreds_put(creds);
    return r;
}

char *vd_s3_xml_tag(const char *xml, size_t len, const char *tag)
{
    if (!xml || len == 0 || len > (16u << 20))
        return NULL;
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "s3.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return NULL;
    char *out = NULL;
    /* Depth-first walk for the first element named tag (any namespace). */
    xmlNodePtr n = xmlDocGetRootElement(doc);
    while (n && !out) {
        if (n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, (const xmlChar *)tag)) {
            /* Direct text children only: entity references stay unexpanded. */
            size_t cap = 1, used = 0;
            for (xmlNodePtr c = n->children; c; c = c->next)
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
                    cap += strlen((const char *)c->content);
            out = malloc(cap);
            if (!out)
                break;
            for (xmlNodePtr c = n->children; c; c = c->next)
                if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
                    size_t l = strlen((const char *)c->content);
                    memcpy(out + used, c->content, l);
                    used += l;
                }
            out[used] = '\0';
            break;
        }
        if (n->children) {
            n = n->children;
            continue;
        }
        while (n && !n->next)
            n = n->parent;
        if (n)
            n = n->next;
    }
    xmlFreeDoc(doc);
    return out;
}

bool vd_s3_retryable(int rc, const struct vd_http_resp *resp)
{
    if (rc == -EIO)
        return true; /* transport: reset, timeout, truncated body */
    if (rc != 0)
        return false;
    long s = resp->status;
    if (s == 500 || s == 502 || s == 503 || s == 504 || s == 429 || s == 408)
        return true;
    if (s >= 400 && resp->body) {
        return strstr(resp->body, "<Code>SlowDown</Code>") ||
               strstr(resp->body, "<Code>RequestTimeout</Code>") ||
               strstr(resp->body, "<Code>InternalError</Code>");
    }
    return false;
}

int vd_s3_max_attempts(void)
{
    const char *e = getenv("VD_S3_RETRIES");
    int n = e ? atoi(e) : 6;
    return n >= 1 && n <= 100 ? n : 6;
}

void vd_s3_backoff(int attempt)
{
    const char *e = getenv("VD_S3_RETRY_MS");
    long base = e && atol(e) >= 0 ? atol(e) : 100;
    long cap = base * (1L << (attempt < 8 ? attempt : 8));
    if (cap > 10000)
        cap = 10000;
    /* Full jitter: uniform in [cap/2, cap]. */
    static __thread unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    long ms = cap / 2 + (cap > 1 ? rand_r(&seed) % (cap / 2 + 1) : 0);
    if (ms > 0)
        usleep((useconds_t)ms * 1000);
}

void vd_s3_describe(int rc, const struct vd_http_resp *resp, char *out, size_t outlen)
{
    if (rc == -EIO) {
        snprintf(out, outlen, "%s", resp->curl_msg[0] ? resp->curl_msg : "transfer failed");
        return;
    }
    if (rc != 0) {
        snprintf(out, outlen, "%s", strerror(-rc));
        return;
    }
    char *code = resp->body ? vd_s3_xml_tag(resp->body, resp->body_len, "Code") : NULL;
    char *msg = resp->body ? vd_s3_xml_tag(resp->body, resp->body_len, "Message") : NULL;
    if (code)
        snprintf(out, outlen, "HTTP %ld %s%s%s", resp->status, code, msg ? ": " : "",
                 msg ? msg : "");
    else
        snprintf(out, outlen, "HTTP %ld", resp->status);
    free(code);
    free(msg);
}
