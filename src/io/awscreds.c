/*
 * Expiring AWS credential sources: credential_process, the container
 * endpoint and EC2 instance metadata (IMDSv2), plus the refreshing provider
 * that the S3 request layer signs with. See awscreds.h for the contract.
 *
 * Documents followed:
 *   https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
 *   https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html
 *   https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html
 *   https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html
 *   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
 *
 * Not supported: web identity (AssumeRoleWithWebIdentity), SSO, role_arn /
 * source_profile chaining, IMDS over IPv6 (set the endpoint instead).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/jsonparse.h"
#include "io/awscreds.h"

extern char **environ;

#define AC_MSG             400
#define AC_MAX_BODY        VD_JSON_MAX_INPUT
#define AC_RETRY_SECS      30 /* between failed refreshes while still valid */
#define AC_EXPIRY_MARGIN   10 /* never sign with credentials this close to expiry */
#define AC_IMDS_TOKEN_TTL  21600
#define AC_CONTAINER_BASE  "http://169.254.170.2"
#define AC_IMDS_DEFAULT    "http://169.254.169.254"
#define AC_IMDS_TOKEN_HDR  "X-aws-ec2-metadata-token"
#define AC_IMDS_ROLES_PATH "/latest/meta-data/iam/security-credentials/"

static int64_t ac_now(void)
{
    return (int64_t)time(NULL);
}

static const char *ac_env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static bool ac_env_true(const char *name)
{
    const char *v = ac_env(name);
    return v && !strcasecmp(v, "true");
}

/* ---- credentials documents ---- */

void vd_awscreds_put(struct vd_awscreds *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(c->access_key);
    if (c->secret_key) {
        explicit_bzero(c->secret_key, strlen(c->secret_key));
        free(c->secret_key);
    }
    free(c->session_token);
    free(c);
}

static struct vd_awscreds *ac_get_ref(struct vd_awscreds *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

static int64_t ac_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool ac_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool vd_rfc3339_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 20 || !ac_digits(s, 4, &y) || s[4] != '-' || !ac_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !ac_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !ac_digits(s + 11, 2, &h) || s[13] != ':' || !ac_digits(s + 14, 2, &mi) || s[16] != ':' ||
        !ac_digits(s + 17, 2, &se))
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int64_t off = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!ac_digits(p + 1, 2, &oh) || !ac_digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        off = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    } else {
        return false;
    }
    *out = ac_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    return true;
}

static int ac_why(char *why, size_t whylen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ac_why(char *why, size_t whylen, int code, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A string member, or NULL (why set) when absent, empty, or not a string. */
static const char *ac_str(const struct vd_jobject *o, const char *key, bool required, char *why,
                          size_t whylen)
{
    const struct vd_jmember *m = vd_jobject_get(o, key);
    if (!m || m->type == VD_JNULL) {
        if (required)
            ac_why(why, whylen, 0, "no %s", key);
        return NULL;
    }
    if (m->type != VD_JSTR) {
        ac_why(why, whylen, 0, "%s is not a string", key);
        return NULL;
    }
    if (!m->val[0]) {
        ac_why(why, whylen, 0, "%s is empty", key);
        return NULL;
    }
    return m->val;
}

int vd_awscreds_parse(const char *buf, size_t len, enum vd_awscreds_doc doc, int64_t now,
                      struct vd_awscreds **out, char *why, size_t whylen)
{
    struct vd_jobject o;
    int r = vd_jobject_parse(buf, len, &o, why, whylen);
    if (r)
        return r;
    struct vd_awscreds *c = NULL;
    r = -EINVAL;
    if (why && whylen)
        why[0] = '\0';
    if (doc == VD_AWSCREDS_PROCESS) {
        const struct vd_jmember *v = vd_jobject_get(&o, "Version");
        if (!v) {
            ac_why(why, whylen, 0, "no Version");
            goto out;
        }
        if (v->type != VD_JNUM) {
            ac_why(why, whylen, 0, "Version is not the number 1");
            goto out;
        }
        if (strcmp(v->val, "1")) {
            ac_why(why, whylen, 0, "Version is %.20s, expected 1", v->val);
            goto out;
        }
    } else {
        const struct vd_jmember *code = vd_jobject_get(&o, "Code");
        if (code && (code->type != VD_JSTR || strcmp(code->val, "Success"))) {
            const char *msg = ac_str(&o, "Message", false, NULL, 0);
            ac_why(why, whylen, 0, "Code is '%s'%s%s",
                   code->type == VD_JSTR ? code->val : "(not a string)", msg ? ": " : "",
                   msg ? msg : "");
            goto out;
        }
    }
    const char *ak = ac_str(&o, "AccessKeyId", true, why, whylen);
    const char *sk = ak ? ac_str(&o, "SecretAccessKey", true, why, whylen) : NULL;
    if (!ak || !sk)
        goto out;
    const char *tokkey = doc == VD_AWSCREDS_PROCESS ? "SessionToken" : "Token";
    const struct vd_jmember *tm = vd_jobject_get(&o, tokkey);
    const char *tok = NULL;
    if (tm && tm->type != VD_JNULL && !(tok = ac_str(&o, tokkey, false, why, whylen)))
        goto out;
    int64_t exp = 0;
    const struct vd_jmember *em = vd_jobject_get(&o, "Expiration");
    if (em && em->type != VD_JNULL) {
        const char *es = ac_str(&o, "Expiration", false, why, whylen);
        if (!es)
            goto out;
        if (!vd_rfc3339_parse(es, &exp)) {
            ac_why(why, whylen, 0, "Expiration '%.40s' is not an RFC 3339 date-time", es);
            goto out;
        }
        if (exp <= now) {
            ac_why(why, whylen, 0, "the credentials expired at %s", es);
            goto out;
        }
    } else if (doc == VD_AWSCREDS_HTTP && tok) {
        ac_why(why, whylen, 0, "no Expiration");
        goto out;
    }
    r = -ENOMEM;
    if (!(c = calloc(1, sizeof(*c))) || !(c->access_key = strdup(ak)) ||
        !(c->secret_key = strdup(sk)) || (tok && !(c->session_token = strdup(tok)))) {
        ac_why(why, whylen, 0, "out of memory");
        goto out;
    }
    c->refs = 1;
    c->expires = exp;
    *out = c;
    c = NULL;
    r = 0;
out:
    if (c) {
        c->refs = 1;
        vd_awscreds_put(c);
    }
    vd_jobject_free(&o);
    return r;
}

/* ---- command line ---- */

void vd_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

int vd_cmdline_split(const char *cmd, char ***argv, char *why, size_t whylen)
{
    size_t n = strlen(cmd);
    /* At most n/2+1 words, each no longer than cmd. */
    char **v = calloc(n / 2 + 2, sizeof(*v));
    char *word = malloc(n + 1);
    size_t nv = 0;
    int r = -ENOMEM;
    if (!v || !word)
        goto fail;
    const char *p = cmd;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        size_t wl = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) {
                    r = ac_why(why, whylen, -EINVAL, "unterminated ' quote");
                    goto fail;
                }
                memcpy(word + wl, p + 1, (size_t)(e - p - 1));
                wl += (size_t)(e - p - 1);
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == '$' || p[1] == '`'))
                        p++;
                    word[wl++] = *p++;
                }
                if (!*p) {
                    r = ac_why(why, whylen, -EINVAL, "unterminated \" quote");
                    goto fail;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    r = ac_why(why, whylen, -EINVAL, "backslash at the end");
                    goto fail;
                }
                word[wl++] = p[1];
                p += 2;
            } else {
                word[wl++] = *p++;
            }
        }
        if (!(v[nv] = strndup(word, wl)))
            goto fail;
        nv++;
    }
    if (nv == 0) {
        r = ac_why(why, whylen, -EINVAL, "empty command");
        goto fail;
    }
    free(word);
    *argv = v;
    return 0;
fail:
    if (r == -ENOMEM)
        ac_why(why, whylen, r, "out of memory");
    free(word);
    vd_argv_free(v);
    return r;
}

/* ---- credential_process ---- */

static long ac_process_timeout(void)
{
    const char *e = ac_env("VD_AWS_PROCESS_TIMEOUT");
    long s = e ? atol(e) : 60;
    return s > 0 && s <= 3600 ? s : 60;
}

/* The last non-empty line of a process's stderr, for messages. */
static void ac_last_line(const char *buf, size_t len, char *out, size_t outlen)
{
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    size_t s = len;
    while (s > 0 && buf[s - 1] != '\n')
        s--;
    size_t n = len - s;
    if (n > 200)
        n = 200;
    snprintf(out, outlen, "%.*s", (int)n, buf + s);
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
}

static int ac_run_process(const char *profile, const char *command, struct vd_awscreds **out,
                          char *msg, size_t msglen)
{
    char **argv = NULL, why[200];
    int r = vd_cmdline_split(command, &argv, why, sizeof(why));
    if (r)
        return ac_why(msg, msglen, r, "s3: profile %s: credential_process '%s': %s", profile,
                      command, why);
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    char *obuf = malloc(AC_MAX_BODY + 1);
    char ebuf[2048];
    size_t olen = 0, elen = 0;
    bool spawned = false, too_big = false, timed_out = false;
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    bool fa_init = false;
    if (!obuf) {
        r = ac_why(msg, msglen, -ENOMEM, "s3: out of memory");
        goto out;
    }
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || posix_spawn_file_actions_init(&fa)) {
        r = ac_why(msg, msglen, -EIO, "s3: profile %s: credential_process '%s': pipe: %s", profile,
                   command, strerror(errno));
        goto out;
    }
    fa_init = true;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    int se = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (se) {
        r = ac_why(msg, msglen, -EIO, "s3: profile %s: credential_process '%s': cannot run %s: %s",
                   profile, command, argv[0], strerror(se));
        goto out;
    }
    spawned = true;
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long limit_ms = ac_process_timeout() * 1000;
    bool oeof = false, eeof = false;
    while (!oeof || !eeof) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long left =
            limit_ms - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pf[2] = {{.fd = oeof ? -1 : po[0], .events = POLLIN},
                               {.fd = eeof ? -1 : pe[0], .events = POLLIN}};
        int pr = poll(pf, 2, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            break;
        if (!oeof && pf[0].revents) {
            char tmp[4096];
            ssize_t k = read(po[0], tmp, sizeof(tmp));
            if (k <= 0 && !(k < 0 && errno == EINTR)) {
                oeof = true;
            } else if (k > 0) {
                if (olen + (size_t)k > AC_MAX_BODY) {
                    too_big = true;
                    break;
                }
                memcpy(obuf + olen, tmp, (size_t)k);
                olen += (size_t)k;
            }
        }
        if (!eeof && pf[1].revents) {
            char tmp[1024];
            ssize_t k = read(pe[0], tmp, sizeof(tmp));
            if (k <= 0 && !(k < 0 && errno == EINTR)) {
                eeof = true;
            } else if (k > 0) {
                /* Keep the tail: the last line is the one worth showing
                 * (tmp is smaller than ebuf). */
                if (elen + (size_t)k > sizeof(ebuf)) {
                    size_t drop = elen + (size_t)k - sizeof(ebuf);
                    memmove(ebuf, ebuf + drop, elen - drop);
                    elen -= drop;
                }
                memcpy(ebuf + elen, tmp, (size_t)k);
                elen += (size_t)k;
            }
        }
    }
    if (timed_out || too_big)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    spawned = false;
    char last[220];
    ac_last_line(ebuf, elen, last, sizeof(last));
    if (timed_out) {
        r = ac_why(msg, msglen, -EIO,
                   "s3: profile %s: credential_process '%s' did not finish within %ld s "
                   "(VD_AWS_PROCESS_TIMEOUT)",
                   profile, command, ac_process_timeout());
    } else if (too_big) {
        r = ac_why(msg, msglen, -EINVAL,
                   "s3: profile %s: credential_process '%s' wrote more than %u bytes", profile,
                   command, AC_MAX_BODY);
    } else if (WIFSIGNALED(status)) {
        r = ac_why(msg, msglen, -EIO,
                   "s3: profile %s: credential_process '%s' killed by signal %d%s%s", profile,
                   command, WTERMSIG(status), last[0] ? ": " : "", last);
    } else if (WEXITSTATUS(status) != 0) {
        r = ac_why(msg, msglen, -EACCES,
                   "s3: profile %s: credential_process '%s' exited with status %d%s%s", profile,
                   command, WEXITSTATUS(status), last[0] ? ": " : "", last);
    } else {
        r = vd_awscreds_parse(obuf, olen, VD_AWSCREDS_PROCESS, ac_now(), out, why, sizeof(why));
        if (r)
            ac_why(msg, msglen, r, "s3: profile %s: credential_process '%s': bad output: %s",
                   profile, command, why);
    }
out:
    if (spawned) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
    }
    if (obuf) {
        explicit_bzero(obuf, olen);
        free(obuf);
    }
    vd_argv_free(argv);
    return r;
}

/* ---- HTTP (container, IMDS) ---- */

struct ac_resp {
    long status;
    char *body;
    size_t len;
    bool unreachable; /* no connection: refused, timed out, no route, no name */
    char err[CURL_ERROR_SIZE];
};

static size_t ac_write(char *data, size_t sz, size_t nm, void *opaque)
{
    struct ac_resp *r = opaque;
    size_t n = sz * nm;
    if (r->len + n > AC_MAX_BODY)
        return 0; /* aborts the transfer */
    char *nb = realloc(r->body, r->len + n + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static pthread_once_t ac_curl_once = PTHREAD_ONCE_INIT;
static void ac_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long ac_connect_ms(void)
{
    const char *e = ac_env("AWS_METADATA_SERVICE_TIMEOUT");
    double s = e ? atof(e) : 1.0;
    return s > 0 && s <= 60 ? (long)(s * 1000) : 1000;
}

/* One request. Returns 0 when a response arrived (any status), -EIO
 * otherwise (r->err, r->unreachable), -ENOMEM. */
static int ac_http(const char *method, const char *url, const char *const *hdrs, size_t nh,
                   struct ac_resp *r)
{
    memset(r, 0, sizeof(*r));
    pthread_once(&ac_curl_once, ac_curl_init);
    CURL *c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    struct curl_slist *hl = NULL;
    int rc = -ENOMEM;
    for (size_t i = 0; i < nh; i++) {
        struct curl_slist *n = curl_slist_append(hl, hdrs[i]);
        if (!n)
            goto out;
        hl = n;
    }
    struct curl_slist *n = curl_slist_append(hl, "Content-Type:");
    if (!n)
        goto out;
    hl = n;
    long cms = ac_connect_ms();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* link-local and loopback: never via a proxy */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cms + 4000);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ac_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(cc));
        r->unreachable = cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ||
                         cc == CURLE_COULDNT_RESOLVE_HOST;
        if (cc == CURLE_WRITE_ERROR)
            snprintf(r->err, sizeof(r->err), "answer longer than %u bytes", AC_MAX_BODY);
        rc = -EIO;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    rc = 0;
out:
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}

static void ac_resp_free(struct ac_resp *r)
{
    if (r->body) {
        explicit_bzero(r->body, r->len);
        free(r->body);
    }
    r->body = NULL;
}

/* A short printable excerpt of an error body. */
static void ac_excerpt(const struct ac_resp *r, char *out, size_t outlen)
{
    char why[100];
    struct vd_jobject o;
    out[0] = '\0';
    if (!r->body || !r->len)
        return;
    /* Container endpoints answer {"code": ..., "message": ...}. */
    if (vd_jobject_parse(r->body, r->len, &o, why, sizeof(why)) == 0) {
        const char *code = ac_str(&o, "code", false, NULL, 0);
        const char *m = ac_str(&o, "message", false, NULL, 0);
        if (code || m)
            snprintf(out, outlen, ": %s%s%s", code ? code : "", code && m ? ": " : "", m ? m : "");
        vd_jobject_free(&o);
        if (out[0])
            return;
    }
    ac_last_line(r->body, r->len, why, sizeof(why));
    if (why[0])
        snprintf(out, outlen, ": %s", why);
}

/* Is host (from a FULL_URI) one the container provider may talk to in
 * clear text: loopback, 169.254.170.2, 169.254.170.23, fd00:ec2::23? Every
 * address it resolves to must be. */
static bool ac_host_allowed(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
        return false;
    bool ok = true;
    for (struct addrinfo *a = ai; a && ok; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            uint32_t ip = ntohl(((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr.s_addr);
            ok = (ip >> 24) == 127 || ip == 0xA9FEAA02u || ip == 0xA9FEAA17u;
        } else if (a->ai_family == AF_INET6) {
            const unsigned char *b = ((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr.s6_addr;
            static const unsigned char lo[16] = {[15] = 1};
            static const unsigned char eks[16] = {0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23};
            ok = !memcmp(b, lo, 16) || !memcmp(b, eks, 16);
        } else {
            ok = false;
        }
    }
    freeaddrinfo(ai);
    return ok;
}

static int ac_container(struct vd_awscreds **out, char *msg, size_t msglen)
{
    const char *rel = ac_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = ac_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[2048], hdr[4200], why[200];
    struct ac_resp resp = {0};
    int r;
    if (rel) {
        snprintf(url, sizeof(url), "%s%s%s", AC_CONTAINER_BASE, rel[0] == '/' ? "" : "/", rel);
    } else if (full) {
        snprintf(url, sizeof(url), "%s", full);
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, full, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
        if (ok && strcasecmp(scheme, "https")) {
            size_t hl = strlen(host);
            if (hl > 2 && host[0] == '[') { /* IPv6 literal */
                memmove(host, host + 1, hl - 2);
                host[hl - 2] = '\0';
            }
            ok = !strcasecmp(scheme, "http") && ac_host_allowed(host);
        }
        curl_free(scheme);
        curl_free(host);
        curl_url_cleanup(u);
        if (!ok)
            return ac_why(msg, msglen, -EINVAL,
                          "s3: container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI '%s' must "
                          "be https, or http to a loopback address, 169.254.170.2, 169.254.170.23 "
                          "or fd00:ec2::23",
                          full);
    } else {
        return ac_why(msg, msglen, -ENOENT, "container: not set");
    }
    const char *lines[1];
    size_t nl = 0;
    const char *tfile = ac_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = ac_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char tbuf[4096];
    if (tfile) {
        FILE *f = fopen(tfile, "rb");
        if (!f)
            return ac_why(msg, msglen, -EIO,
                          "s3: container credentials (%s): AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
                          "%s: %s",
                          url, tfile, strerror(errno));
        size_t n = fread(tbuf, 1, sizeof(tbuf) - 1, f);
        fclose(f);
        tbuf[n] = '\0';
        while (n > 0 && (tbuf[n - 1] == '\n' || tbuf[n - 1] == '\r' || tbuf[n - 1] == ' '))
            tbuf[--n] = '\0';
        tok = tbuf;
    }
    if (tok) {
        if (strpbrk(tok, "\r\n"))
            return ac_why(msg, msglen, -EINVAL,
                          "s3: container credentials (%s): the authorization token contains a "
                          "line break",
                          url);
        snprintf(hdr, sizeof(hdr), "Authorization: %s", tok);
        lines[nl++] = hdr;
    }
    r = ac_http("GET", url, lines, nl, &resp);
    explicit_bzero(hdr, sizeof(hdr));
    explicit_bzero(tbuf, sizeof(tbuf));
    if (r == -ENOMEM)
        return ac_why(msg, msglen, r, "s3: out of memory");
    if (r) {
        r = ac_why(msg, msglen, -EIO, "s3: container credentials (%s): %s", url, resp.err);
    } else if (resp.status != 200) {
        char ex[200];
        ac_excerpt(&resp, ex, sizeof(ex));
        r = ac_why(msg, msglen, resp.status == 401 || resp.status == 403 ? -EACCES : -EIO,
                   "s3: container credentials (%s): HTTP %ld%s", url, resp.status, ex);
    } else if ((r = vd_awscreds_parse(resp.body, resp.len, VD_AWSCREDS_HTTP, ac_now(), out, why,
                                      sizeof(why))) != 0) {
        ac_why(msg, msglen, r, "s3: container credentials (%s): bad answer: %s", url, why);
    }
    ac_resp_free(&resp);
    return r;
}

/* ---- IMDS ---- */

struct ac_imds {
    char *token; /* NULL: none yet, or IMDSv1 */
    int64_t token_expires;
    bool v1;
    bool worked; /* fetched once: outages are then retried, never cached */
};

/* IMDS endpoints found unreachable in this process: not asked again. */
static pthread_mutex_t ac_dead_lock = PTHREAD_MUTEX_INITIALIZER;
static char ac_dead[256];

static void ac_imds_endpoint(char *out, size_t outlen)
{
    const char *e = ac_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    snprintf(out, outlen, "%s", e ? e : AC_IMDS_DEFAULT);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

/* A GET with the session token (if any). */
static int ac_imds_get(const char *url, const struct ac_imds *st, struct ac_resp *resp)
{
    char th[300];
    const char *lines[1] = {th};
    snprintf(th, sizeof(th), AC_IMDS_TOKEN_HDR ": %s", st->token ? st->token : "");
    return ac_http("GET", url, lines, st->token ? 1 : 0, resp);
}

static int ac_imds_token(const char *ep, struct ac_imds *st, char *msg, size_t msglen)
{
    char url[400], ttl[80];
    const char *lines[1] = {ttl};
    struct ac_resp resp;
    snprintf(url, sizeof(url), "%s/latest/api/token", ep);
    snprintf(ttl, sizeof(ttl), "X-aws-ec2-metadata-token-ttl-seconds: %d", AC_IMDS_TOKEN_TTL);
    int r = ac_http("PUT", url, lines, 1, &resp);
    if (r == -ENOMEM)
        return ac_why(msg, msglen, r, "s3: out of memory");
    if (r) {
        if (resp.unreachable && !st->worked) {
            pthread_mutex_lock(&ac_dead_lock);
            snprintf(ac_dead, sizeof(ac_dead), "%s", ep);
            pthread_mutex_unlock(&ac_dead_lock);
        }
        r = ac_why(msg, msglen, -ENOENT, "imds (%s): %s", ep, resp.err);
    } else if (resp.status == 200 && resp.len > 0 && resp.len < 200 &&
               !strpbrk(resp.body, "\r\n")) {
        free(st->token);
        st->token = strdup(resp.body);
        st->token_expires = ac_now() + AC_IMDS_TOKEN_TTL - 60;
        st->v1 = false;
        r = st->token ? 0 : ac_why(msg, msglen, -ENOMEM, "s3: out of memory");
    } else if ((resp.status == 403 || resp.status == 404 || resp.status == 405) &&
               !ac_env_true("AWS_EC2_METADATA_V1_DISABLED")) {
        /* The SDKs' IMDSv1 fallback: only for these non-retryable answers. */
        free(st->token);
        st->token = NULL;
        st->v1 = true;
        r = 0;
    } else {
        r = ac_why(msg, msglen, -ENOENT, "imds (%s): token PUT: HTTP %ld%s", ep, resp.status,
                   resp.status == 200 ? " with an unusable token" : "");
    }
    ac_resp_free(&resp);
    return r;
}

static int ac_imds(struct ac_imds *st, struct vd_awscreds **out, char *msg, size_t msglen)
{
    char ep[256], url[600], why[200];
    struct ac_resp resp = {0};
    int r;
    if (ac_env_true("AWS_EC2_METADATA_DISABLED"))
        return ac_why(msg, msglen, -ENOENT, "imds: disabled by AWS_EC2_METADATA_DISABLED");
    ac_imds_endpoint(ep, sizeof(ep));
    pthread_mutex_lock(&ac_dead_lock);
    bool dead = !st->worked && !strcmp(ac_dead, ep);
    pthread_mutex_unlock(&ac_dead_lock);
    if (dead)
        return ac_why(msg, msglen, -ENOENT, "imds (%s): unreachable earlier", ep);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!st->v1 && (!st->token || ac_now() >= st->token_expires) &&
            (r = ac_imds_token(ep, st, msg, msglen)) != 0)
            return r;
        snprintf(url, sizeof(url), "%s" AC_IMDS_ROLES_PATH, ep);
        if ((r = ac_imds_get(url, st, &resp)) != 0)
            goto fail_transport;
        if (resp.status == 401 && st->token && attempt == 0) {
            /* The token went stale (instance stopped and started): a new one. */
            free(st->token);
            st->token = NULL;
            ac_resp_free(&resp);
            continue;
        }
        if (resp.status == 404) {
            r = ac_why(msg, msglen, -ENOENT, "imds (%s): no IAM role attached to this instance",
                       ep);
            goto out;
        }
        if (resp.status != 200 || !resp.len) {
            r = ac_why(msg, msglen, -ENOENT, "imds (%s): role listing: HTTP %ld", ep, resp.status);
            goto out;
        }
        char role[200];
        size_t rl = strcspn(resp.body, "\r\n");
        const char *bad = strpbrk(resp.body, "/?#% ");
        if (rl == 0 || rl >= sizeof(role) || (bad && (size_t)(bad - resp.body) < rl)) {
            r = ac_why(msg, msglen, -ENOENT, "imds (%s): unusable role name", ep);
            goto out;
        }
        snprintf(role, sizeof(role), "%.*s", (int)rl, resp.body);
        ac_resp_free(&resp);
        snprintf(url, sizeof(url), "%s" AC_IMDS_ROLES_PATH "%s", ep, role);
        if ((r = ac_imds_get(url, st, &resp)) != 0)
            goto fail_transport;
        if (resp.status == 401 && st->token && attempt == 0) {
            free(st->token);
            st->token = NULL;
            ac_resp_free(&resp);
            continue;
        }
        if (resp.status != 200) {
            r = ac_why(msg, msglen, -ENOENT, "imds (%s): role %s: HTTP %ld", ep, role, resp.status);
            goto out;
        }
        r = vd_awscreds_parse(resp.body, resp.len, VD_AWSCREDS_HTTP, ac_now(), out, why,
                              sizeof(why));
        st->worked |= r == 0;
        if (r)
            ac_why(msg, msglen, r == -ENOMEM ? r : -ENOENT, "imds (%s): role %s: bad answer: %s",
                   ep, role, why);
        if (r && r != -ENOMEM)
            r = -ENOENT;
        goto out;
    }
    r = ac_why(msg, msglen, -ENOENT, "imds (%s): HTTP 401 with a fresh token", ep);
    goto out;
fail_transport:
    if (r != -ENOMEM)
        r = ac_why(msg, msglen, -ENOENT, "imds (%s): %s", ep, resp.err);
    else
        ac_why(msg, msglen, r, "s3: out of memory");
out:
    ac_resp_free(&resp);
    return r;
}

/* ---- provider ---- */

struct vd_awscreds_provider {
    int refs;
    enum vd_awscreds_kind kind;
    char *profile, *command;
    struct ac_imds imds; /* used by the one fetching thread only */
    pthread_mutex_t lock;
    pthread_cond_t done;
    struct vd_awscreds *cur; /* under lock */
    bool refreshing;         /* under lock */
    int64_t last_try;        /* under lock */
};

const char *vd_awscreds_kind_name(enum vd_awscreds_kind kind)
{
    return kind == VD_AWSCREDS_KIND_PROCESS     ? "process"
           : kind == VD_AWSCREDS_KIND_CONTAINER ? "container"
                                                : "imds";
}

static int ac_fetch(struct vd_awscreds_provider *p, struct vd_awscreds **out, char *msg,
                    size_t msglen)
{
    switch (p->kind) {
    case VD_AWSCREDS_KIND_PROCESS:
        return ac_run_process(p->profile, p->command, out, msg, msglen);
    case VD_AWSCREDS_KIND_CONTAINER:
        return ac_container(out, msg, msglen);
    default:
        return ac_imds(&p->imds, out, msg, msglen);
    }
}

static void ac_provider_free(struct vd_awscreds_provider *p)
{
    vd_awscreds_put(p->cur);
    free(p->profile);
    free(p->command);
    free(p->imds.token);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->done);
    free(p);
}

int vd_awscreds_provider_new(enum vd_awscreds_kind kind, const char *profile, const char *command,
                             struct vd_awscreds_provider **out, char *why, size_t whylen,
                             struct vd_error *err)
{
    struct vd_awscreds_provider *p = calloc(1, sizeof(*p));
    if (!p || (profile && !(p->profile = strdup(profile))) ||
        (command && !(p->command = strdup(command)))) {
        if (p) {
            free(p->profile);
            free(p);
        }
        return vd_err(err, -ENOMEM, "s3: out of memory");
    }
    p->refs = 1;
    p->kind = kind;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->done, NULL);
    char msg[AC_MSG];
    int r = ac_fetch(p, &p->cur, msg, sizeof(msg));
    if (r) {
        if (r == -ENOENT)
            ac_why(why, whylen, r, "%s", msg);
        else
            vd_err(err, r, "%s", msg);
        ac_provider_free(p);
        return r;
    }
    *out = p;
    return 0;
}

struct vd_awscreds_provider *vd_awscreds_provider_ref(struct vd_awscreds_provider *p)
{
    if (p)
        __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void vd_awscreds_provider_unref(struct vd_awscreds_provider *p)
{
    if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ac_provider_free(p);
}

struct vd_awscreds *vd_awscreds_provider_current(struct vd_awscreds_provider *p)
{
    pthread_mutex_lock(&p->lock);
    struct vd_awscreds *c = ac_get_ref(p->cur);
    pthread_mutex_unlock(&p->lock);
    return c;
}

static int64_t ac_window(void)
{
    const char *e = ac_env("VD_AWS_REFRESH_SECS");
    long s = e ? atol(e) : 300;
    return s >= 0 && s <= 86400 ? s : 300;
}

int vd_awscreds_provider_get(struct vd_awscreds_provider *p, struct vd_awscreds **out, char *why,
                             size_t whylen)
{
    int64_t window = ac_window();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        int64_t now = ac_now();
        const struct vd_awscreds *c = p->cur;
        bool usable = !c->expires || now + AC_EXPIRY_MARGIN < c->expires;
        bool due = c->expires && c->expires - now < window &&
                   (!usable || now - p->last_try >= AC_RETRY_SECS || !p->last_try);
        if (!due || (p->refreshing && usable)) {
            *out = ac_get_ref(p->cur);
            pthread_mutex_unlock(&p->lock);
            return 0;
        }
        if (!p->refreshing)
            break;
        pthread_cond_wait(&p->done, &p->lock);
    }
    p->refreshing = true;
    p->last_try = ac_now();
    pthread_mutex_unlock(&p->lock);

    struct vd_awscreds *fresh = NULL;
    char msg[AC_MSG];
    int r = ac_fetch(p, &fresh, msg, sizeof(msg));

    pthread_mutex_lock(&p->lock);
    p->refreshing = false;
    pthread_cond_broadcast(&p->done);
    if (r == 0) {
        vd_awscreds_put(p->cur);
        p->cur = fresh;
    } else if (ac_now() + AC_EXPIRY_MARGIN >= p->cur->expires) {
        pthread_mutex_unlock(&p->lock);
        return ac_why(why, whylen, -EIO, "%s credentials expired and the refresh failed: %s",
                      vd_awscreds_kind_name(p->kind), msg);
    }
    *out = ac_get_ref(p->cur);
    pthread_mutex_unlock(&p->lock);
    return 0;
}
