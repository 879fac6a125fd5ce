/*
 * SigV4 signer against the AWS SigV4 test suite (aws-c-auth copy, header
 * and query signing) and the S3 documentation's worked examples, plus the
 * S3 rules the suite does not cover (keys encoded once, never normalised;
 * ?uploads signs as "uploads=").
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/sigv4.h"

static int failures, checked;

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        checked++;                                                                                 \
        if (!(c)) {                                                                                \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Value of "key" in a flat JSON object: string contents or a bare word. */
static void json_get(const char *json, const char *key, char *out, size_t outlen)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    out[0] = '\0';
    const char *p = strstr(json, pat);
    if (!p)
        return;
    p = strchr(p + strlen(pat), ':');
    if (!p)
        return;
    p++;
    while (*p == ' ' || *p == '\n')
        p++;
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (*p && *p != '"' && n + 1 < outlen)
            out[n++] = *p++;
    } else {
        while (*p && *p != ',' && *p != '}' && *p != '\n' && *p != ' ' && n + 1 < outlen)
            out[n++] = *p++;
    }
    out[n] = '\0';
}

struct parsed {
    char method[16];
    char path[3072];
    char query[2048];
    struct vd_sigv4_header h[32];
    char *hbuf[32];
    char *vbuf[32];
    size_t nh;
    const char *body;
    size_t body_len;
};

/* request.txt: "METHOD PATH[?QUERY] HTTP/1.1", header lines "Name:value"
 * (lines starting with a space continue the previous value), a blank line,
 * then the body. */
static int parse_request(char *txt, size_t len, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    char *eol = strchr(txt, '\n');
    if (!eol)
        return -1;
    *eol = '\0';
    char *sp1 = strchr(txt, ' '), *sp2 = strrchr(txt, ' ');
    if (!sp1 || sp2 == sp1)
        return -1;
    snprintf(p->method, sizeof(p->method), "%.*s", (int)(sp1 - txt), txt);
    char target[3072];
    snprintf(target, sizeof(target), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        snprintf(p->query, sizeof(p->query), "%s", q + 1);
    }
    snprintf(p->path, sizeof(p->path), "%s", target);
    char *line = eol + 1;
    while (line < txt + len) {
        char *e = strchr(line, '\n');
        char *next = e ? e + 1 : txt + len;
        if (e)
            *e = '\0';
        if (*line == '\0') {
            p->body = next;
            p->body_len = (size_t)(txt + len - next);
            return 0;
        }
        if ((*line == ' ' || *line == '\t') && p->nh > 0) {
            const char *prev = p->h[p->nh - 1].value;
            size_t n = strlen(prev) + strlen(line) + 2;
            char *cat = malloc(n);
            snprintf(cat, n, "%s\n%s", prev, line);
            free(p->vbuf[p->nh - 1]);
            p->vbuf[p->nh - 1] = cat;
            p->h[p->nh - 1].value = cat;
        } else if (p->nh < 32) {
            char *c = strchr(line, ':');
            if (!c)
                return -1;
            p->hbuf[p->nh] = strdup(line);
            char *hc = p->hbuf[p->nh] + (c - line);
            *hc = '\0';
            p->h[p->nh].name = p->hbuf[p->nh];
            p->h[p->nh].value = hc + 1;
            p->nh++;
        }
        line = next;
    }
    p->body = "";
    return 0;
}

static void strip_trailing_nl(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static void expect_file(const char *dir, const char *file, const char *got, const char *what)
{
    char *want = slurp(dir, file, NULL);
    if (!want) {
        CHECK(0, "%s: missing %s", dir, file);
        return;
    }
    strip_trailing_nl(want);
    CHECK(got && !strcmp(got, want), "%s: %s differs\n--- got:\n%s\n--- want:\n%s", dir, what,
          got ? got : "(null)", want);
    free(want);
}

static void run_suite_case(const char *dir)
{
    char *ctx = slurp(dir, "context.json", NULL);
    size_t rlen;
    char *req = slurp(dir, "request.txt", &rlen);
    if (!ctx || !req) {
        CHECK(0, "%s: unreadable", dir);
        free(ctx);
        free(req);
        return;
    }
    char ak[64], sk[128], token[1024], region[32], service[32], ts[32], sign_body[8], omit[8];
    json_get(ctx, "access_key_id", ak, sizeof(ak));
    json_get(ctx, "secret_access_key", sk, sizeof(sk));
    json_get(ctx, "token", token, sizeof(token));
    json_get(ctx, "region", region, sizeof(region));
    json_get(ctx, "service", service, sizeof(service));
    json_get(ctx, "timestamp", ts, sizeof(ts));
    json_get(ctx, "sign_body", sign_body, sizeof(sign_body));
    json_get(ctx, "omit_session_token", omit, sizeof(omit));
    /* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
    char date[17];
    size_t o = 0;
    for (const char *c = ts; *c && o < 16; c++)
        if (*c != '-' && *c != ':')
            date[o++] = *c;
    date[o] = '\0';
    bool with_token = token[0] && strcmp(omit, "true") != 0;

    struct parsed p;
    CHECK(parse_request(req, rlen, &p) == 0, "%s: request.txt unparsable", dir);
    char body_hash[VD_SHA256_HEX_LEN + 1];
    vd_sha256_hex(p.body, p.body_len, body_hash);

    /* Header signing. */
    struct vd_sigv4_header hs[40];
    size_t nh = 0;
    for (size_t i = 0; i < p.nh; i++)
        hs[nh++] = p.h[i];
    hs[nh++] = (struct vd_sigv4_header){"X-Amz-Date", date};
    if (with_token)
        hs[nh++] = (struct vd_sigv4_header){"X-Amz-Security-Token", token};
    if (!strcmp(sign_body, "true"))
        hs[nh++] = (struct vd_sigv4_header){"X-Amz-Content-Sha256", body_hash};
    struct vd_sigv4_request r = {
        .method = p.method,
        .path = p.path,
        .query = p.query,
        .headers = hs,
        .nheaders = nh,
        .payload_hash = body_hash,
        .amz_date = date,
        .region = region,
        .service = service,
        .access_key = ak,
        .secret_key = sk,
    };
    struct vd_sigv4_result res;
    int rc = vd_sigv4_sign(&r, &res);
    CHECK(rc == 0, "%s: sign failed %d", dir, rc);
    if (rc == 0) {
        expect_file(dir, "header-canonical-request.txt", res.canonical_request,
                    "header canonical request");
        expect_file(dir, "header-string-to-sign.txt", res.string_to_sign, "header string to sign");
        expect_file(dir, "header-signature.txt", res.signature, "header signature");
        vd_sigv4_result_free(&res);
    }

    /* Query (presigned) signing: the X-Amz-* parameters join the query and
     * only the request's own headers are signed. */
    char signed_list[512] = "";
    {
        /* Lowercased, sorted, de-duplicated names of the request headers. */
        char names[32][64];
        size_t n = 0;
        for (size_t i = 0; i < p.nh; i++) {
            char lower[64];
            snprintf(lower, sizeof(lower), "%s", p.h[i].name);
            for (char *c = lower; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup |= !strcmp(names[j], lower);
            if (!dup)
                snprintf(names[n++], 64, "%s", lower);
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (strcmp(names[i], names[j]) > 0) {
                    char t[64];
                    memcpy(t, names[i], 64);
                    memcpy(names[i], names[j], 64);
                    memcpy(names[j], t, 64);
                }
        for (size_t i = 0; i < n; i++) {
            if (i)
                strcat(signed_list, ";");
            strcat(signed_list, names[i]);
        }
    }
    char q[4096];
    snprintf(q, sizeof(q),
             "%s%sX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s/%.8s/%s/%s/aws4_request"
             "&X-Amz-Date=%s&X-Amz-Expires=3600&X-Amz-SignedHeaders=%s%s%s",
             p.query, p.query[0] ? "&" : "", ak, date, region, service, date, signed_list,
             with_token ? "&X-Amz-Security-Token=" : "", with_token ? token : "");
    r.query = q;
    r.headers = p.h;
    r.nheaders = p.nh;
    rc = vd_sigv4_sign(&r, &res);
    CHECK(rc == 0, "%s: query sign failed %d", dir, rc);
    if (rc == 0) {
        expect_file(dir, "query-canonical-request.txt", res.canonical_request,
                    "query canonical request");
        expect_file(dir, "query-signature.txt", res.signature, "query signature");
        vd_sigv4_result_free(&res);
    }
    for (size_t i = 0; i < p.nh; i++) {
        free(p.hbuf[i]);
        free(p.vbuf[i]);
    }
    free(ctx);
    free(req);
}

static void run_suite(const char *root)
{
    char base[4096];
    snprintf(base, sizeof(base), "%s/sigv4/v4", root);
    DIR *d = opendir(base);
    CHECK(d != NULL, "cannot open %s", base);
    if (!d)
        return;
    struct dirent *e;
    int ncases = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(e->d_name);
        /* Path normalisation is for non-S3 services; S3 never does it. */
        if (n > 11 && !strcmp(e->d_name + n - 11, "-normalized"))
            continue;
        char dir[8192];
        snprintf(dir, sizeof(dir), "%s/%s", base, e->d_name);
        run_suite_case(dir);
        ncases++;
    }
    closedir(d);
    CHECK(ncases >= 28, "only %d suite cases found", ncases);
    printf("aws-c-auth suite: %d cases\n", ncases);
}

/* S3 documentation examples (tests/data/sigv4/s3_doc_examples.json). */
#define S3_AK   "AKIAIOSFODNN7EXAMPLE"
#define S3_SK   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_DATE "20130524T000000Z"
#define S3_HOST "examplebucket.s3.amazonaws.com"

static void s3_example(const char *json, const char *name, const char *method, const char *path,
                       const char *query, const struct vd_sigv4_header *h, size_t nh,
                       const char *payload_hash)
{
    /* Find this example's expected signature and canonical request. */
    char pat[128];
    snprintf(pat, sizeof(pat), "\"name\": \"%s\"", name);
    const char *at = strstr(json, pat);
    CHECK(at != NULL, "example %s not in json", name);
    if (!at)
        return;
    char sig[80], creq[2048];
    json_get(at, "signature", sig, sizeof(sig));
    json_get(at, "canonical_request", creq, sizeof(creq));
    /* Unescape \n. */
    char *w = creq;
    for (const char *c = creq; *c; c++) {
        if (c[0] == '\\' && c[1] == 'n') {
            *w++ = '\n';
            c++;
        } else {
            *w++ = *c;
        }
    }
    *w = '\0';
    struct vd_sigv4_request r = {
        .method = method,
        .path = path,
        .query = query,
        .headers = h,
        .nheaders = nh,
        .payload_hash = payload_hash,
        .amz_date = S3_DATE,
        .region = "us-east-1",
        .service = "s3",
        .access_key = S3_AK,
        .secret_key = S3_SK,
    };
    struct vd_sigv4_result res;
    int rc = vd_sigv4_sign(&r, &res);
    CHECK(rc == 0, "%s: sign failed", name);
    if (rc)
        return;
    CHECK(!strcmp(res.canonical_request, creq),
          "%s: canonical request\n--- got:\n%s\n--- want:\n%s", name, res.canonical_request, creq);
    CHECK(!strcmp(res.signature, sig), "%s: signature %s, want %s", name, res.signature, sig);
    vd_sigv4_result_free(&res);
}

static void run_s3_examples(const char *root)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/sigv4", root);
    char *json = slurp(dir, "s3_doc_examples.json", NULL);
    CHECK(json != NULL, "no s3_doc_examples.json");
    if (!json)
        return;
    const char *e = VD_SHA256_EMPTY;
    struct vd_sigv4_header get_range[] = {{"Host", S3_HOST},
                                          {"Range", "bytes=0-9"},
                                          {"x-amz-content-sha256", e},
                                          {"x-amz-date", S3_DATE}};
    s3_example(json, "GET Object (Range)", "GET", "/test.txt", NULL, get_range, 4, e);

    char put_hash[VD_SHA256_HEX_LEN + 1];
    vd_sha256_hex("Welcome to Amazon S3.", 21, put_hash);
    struct vd_sigv4_header put[] = {{"Host", S3_HOST},
                                    {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                    {"x-amz-date", S3_DATE},
                                    {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                                    {"x-amz-content-sha256", put_hash}};
    /* The key is "test$file.text": '$' is encoded, once. */
    s3_example(json, "PUT Object", "PUT", "/test$file.text", NULL, put, 5, put_hash);

    struct vd_sigv4_header get[] = {
        {"Host", S3_HOST}, {"x-amz-content-sha256", e}, {"x-amz-date", S3_DATE}};
    s3_example(json, "GET Bucket Lifecycle", "GET", "/", "lifecycle", get, 3, e);
    s3_example(json, "GET Bucket (List Objects)", "GET", "/", "max-keys=2&prefix=J", get, 3, e);

    struct vd_sigv4_header host[] = {{"Host", S3_HOST}};
    s3_example(json, "Presigned GET URL (X-Amz-Expires=86400)", "GET", "/test.txt",
               "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" S3_AK
               "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=" S3_DATE
               "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host",
               host, 1, "UNSIGNED-PAYLOAD");
    free(json);
}

/* Canonical request of an S3 request, for the rules the suites skip. */
static char *s3_creq(const char *method, const char *path, const char *query)
{
    struct vd_sigv4_header h[] = {{"host", "b.s3.amazonaws.com"}};
    struct vd_sigv4_request r = {.method = method,
                                 .path = path,
                                 .query = query,
                                 .headers = h,
                                 .nheaders = 1,
                                 .payload_hash = VD_SHA256_EMPTY,
                                 .amz_date = S3_DATE,
                                 .region = "us-east-1",
                                 .service = "s3",
                                 .access_key = S3_AK,
                                 .secret_key = S3_SK};
    struct vd_sigv4_result res;
    if (vd_sigv4_sign(&r, &res) != 0)
        return NULL;
    char *c = strdup(res.canonical_request);
    vd_sigv4_result_free(&res);
    /* Keep only the first three lines: method, uri, query. */
    char *nl = strchr(c, '\n');
    nl = nl ? strchr(nl + 1, '\n') : NULL;
    nl = nl ? strchr(nl + 1, '\n') : NULL;
    if (nl)
        *nl = '\0';
    return c;
}

static void expect_creq(const char *method, const char *path, const char *query, const char *want)
{
    char *got = s3_creq(method, path, query);
    CHECK(got && !strcmp(got, want), "creq(%s %s ? %s) = '%s', want '%s'", method, path,
          query ? query : "", got ? got : "(null)", want);
    free(got);
}

static void run_s3_rules(void)
{
    /* Keys: '/' kept, everything else outside the unreserved set encoded
     * once; no "." / ".." / "//" normalisation. */
    expect_creq("GET", "/bucket/a b+c=d&e", NULL, "GET\n/bucket/a%20b%2Bc%3Dd%26e\n");
    expect_creq("GET", "/bucket//x/./y/../z", NULL, "GET\n/bucket//x/./y/../z\n");
    expect_creq("GET", "/bucket/dir/\xc3\xa9t\xc3\xa9~_-.txt", NULL,
                "GET\n/bucket/dir/%C3%A9t%C3%A9~_-.txt\n");
    expect_creq("GET", "/bucket/100%", NULL, "GET\n/bucket/100%25\n");
    /* Multipart query strings. */
    expect_creq("POST", "/b/k", "uploads", "POST\n/b/k\nuploads=");
    expect_creq("PUT", "/b/k", "uploadId=2~abc%2Bd&partNumber=10",
                "PUT\n/b/k\npartNumber=10&uploadId=2~abc%2Bd");
    expect_creq("GET", "/b", "prefix=a%20b&delimiter=%2F&list-type=2",
                "GET\n/b\ndelimiter=%2F&list-type=2&prefix=a%20b");
    /* A broken escape is refused, not signed. */
    struct vd_sigv4_header h[] = {{"host", "x"}};
    struct vd_sigv4_request r = {.method = "GET",
                                 .path = "/",
                                 .query = "a=%G1",
                                 .headers = h,
                                 .nheaders = 1,
                                 .payload_hash = VD_SHA256_EMPTY,
                                 .amz_date = S3_DATE,
                                 .region = "us-east-1",
                                 .service = "s3",
                                 .access_key = S3_AK,
                                 .secret_key = S3_SK};
    struct vd_sigv4_result res;
    CHECK(vd_sigv4_sign(&r, &res) == -EINVAL, "bad escape accepted");
    r.query = "a=%4";
    CHECK(vd_sigv4_sign(&r, &res) == -EINVAL, "truncated escape accepted");

    char d[17];
    vd_amz_date(1440938160, d);
    CHECK(!strcmp(d, "20150830T123600Z"), "amz date %s", d);
}

int main(void)
{
    const char *root = getenv("VD_TEST_DATA");
    if (!root) {
        fprintf(stderr, "VD_TEST_DATA is not set\n");
        return 1;
    }
    run_suite(root);
    run_s3_examples(root);
    run_s3_rules();
    printf("%d checks, %d failures\n", checked, failures);
    return failures ? 1 : 0;
}
