/* AWS credentials/region/endpoint resolution; see awsconf.h for the order. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/awsconf.h"

#define AWSCONF_MAX_FILE (1u << 20)

static const char *awsconf_env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static void awsconf_trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

char *vd_ini_get(const char *buf, size_t len, const char *section, const char *key)
{
    const char *p = buf, *end = buf + len;
    bool in = false;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *s = p, *e = le;
        bool indented = s < e && (*s == ' ' || *s == '\t');
        awsconf_trim(&s, &e);
        p = eol ? eol + 1 : end;
        if (s == e || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            const char *cb = memchr(s, ']', (size_t)(e - s));
            if (!cb)
                continue;
            const char *ns = s + 1, *ne = cb;
            awsconf_trim(&ns, &ne);
            in = strlen(section) == (size_t)(ne - ns) && !memcmp(ns, section, (size_t)(ne - ns));
            continue;
        }
        if (!in || indented)
            continue;
        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (!eq)
            continue;
        const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
        awsconf_trim(&ks, &ke);
        awsconf_trim(&vs, &ve);
        if (strlen(key) == (size_t)(ke - ks) && !strncasecmp(ks, key, (size_t)(ke - ks))) {
            if (vs == ve)
                return NULL; /* "s3 =" opens a nested block: no scalar value */
            return strndup(vs, (size_t)(ve - vs));
        }
    }
    return NULL;
}

/* Read a whole (small) file; NULL when it does not exist or is too big. */
static char *awsconf_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(AWSCONF_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, AWSCONF_MAX_FILE, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *awsconf_file(const char *env, const char *name, size_t *len)
{
    const char *path = awsconf_env(env);
    char tmp[4096];
    if (!path) {
        const char *home = awsconf_env("HOME");
        if (!home)
            return NULL;
        snprintf(tmp, sizeof(tmp), "%s/.aws/%s", home, name);
        path = tmp;
    }
    return awsconf_slurp(path, len);
}

bool vd_endpoint_wants_path_style(const char *endpoint)
{
    const char *h = strstr(endpoint, "://");
    h = h ? h + 3 : endpoint;
    size_t hl = strcspn(h, "/?#");
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(hl < 255 ? hl : 255), h);
    if (host[0] == '[')
        return true; /* IPv6 literal */
    if (strchr(host, ':'))
        return true; /* explicit port */
    char *dot = host;
    bool numeric = true;
    for (; *dot; dot++)
        if (!isdigit((unsigned char)*dot) && *dot != '.')
            numeric = false;
    return numeric || !strcasecmp(host, "localhost");
}

static int awsconf_dup(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -ENOMEM : 0;
}

int vd_awsconf_resolve(const struct vd_open_opts *opts, struct vd_awsconf *out,
                       struct vd_error *err)
{
    static const struct vd_open_opts none;
    if (!opts)
        opts = &none;
    memset(out, 0, sizeof(*out));
    size_t clen = 0, flen = 0;
    char *creds = awsconf_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", &clen);
    char *conf = awsconf_file("AWS_CONFIG_FILE", "config", &flen);
    int r = 0;
    const char *profile = opts->profile && opts->profile[0] ? opts->profile
                          : awsconf_env("AWS_PROFILE")      ? awsconf_env("AWS_PROFILE")
                                                            : "default";
    char csect[300];
    if (!strcmp(profile, "default"))
        snprintf(csect, sizeof(csect), "default");
    else
        snprintf(csect, sizeof(csect), "profile %s", profile);
    if ((r = awsconf_dup(&out->profile, profile)) != 0)
        goto out_free;

    /* Credentials. */
    bool explicit_profile = opts->profile && opts->profile[0];
    const char *eak = awsconf_env("AWS_ACCESS_KEY_ID"), *esk = awsconf_env("AWS_SECRET_ACCESS_KEY");
    if (!explicit_profile && eak) {
        if (!esk) {
            r = vd_err(err, -EINVAL,
                       "s3: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
            goto out_free;
        }
        if ((r = awsconf_dup(&out->access_key, eak)) || (r = awsconf_dup(&out->secret_key, esk)) ||
            (r = awsconf_dup(&out->session_token, awsconf_env("AWS_SESSION_TOKEN"))))
            goto out_free;
        out->cred_source = "env";
    }
    for (int pass = 0; pass < 2 && !out->access_key; pass++) {
        const char *buf = pass == 0 ? creds : conf;
        size_t blen = pass == 0 ? clen : flen;
        const char *sect = pass == 0 ? profile : csect;
        if (!buf)
            continue;
        char *ak = vd_ini_get(buf, blen, sect, "aws_access_key_id");
        char *sk = vd_ini_get(buf, blen, sect, "aws_secret_access_key");
        if (ak && sk) {
            out->access_key = ak;
            out->secret_key = sk;
            out->session_token = vd_ini_get(buf, blen, sect, "aws_session_token");
            out->cred_source = pass == 0 ? "credentials file" : "config file";
        } else {
            free(ak);
            free(sk);
        }
    }
    if (!out->access_key && explicit_profile && eak && esk) {
        if ((r = awsconf_dup(&out->access_key, eak)) || (r = awsconf_dup(&out->secret_key, esk)) ||
            (r = awsconf_dup(&out->session_token, awsconf_env("AWS_SESSION_TOKEN"))))
            goto out_free;
        out->cred_source = "env";
    }
    if (!out->access_key)
        out->cred_source = "none";

    /* Region. */
    const char *reg = opts->region && opts->region[0] ? opts->region : awsconf_env("AWS_REGION");
    if (!reg)
        reg = awsconf_env("AWS_DEFAULT_REGION");
    if (reg) {
        if ((r = awsconf_dup(&out->region, reg)) != 0)
            goto out_free;
    } else if (conf && (out->region = vd_ini_get(conf, flen, csect, "region")) != NULL) {
    } else if ((r = awsconf_dup(&out->region, "us-east-1")) != 0) {
        goto out_free;
    }

    /* Endpoint. */
    const char *ep =
        opts->endpoint && opts->endpoint[0] ? opts->endpoint : awsconf_env("AWS_ENDPOINT_URL_S3");
    if (!ep)
        ep = awsconf_env("AWS_ENDPOINT_URL");
    if (ep) {
        if ((r = awsconf_dup(&out->endpoint, ep)) != 0)
            goto out_free;
    } else if (conf) {
        out->endpoint = vd_ini_get(conf, flen, csect, "endpoint_url");
    }
    if (out->endpoint) {
        size_t n = strlen(out->endpoint);
        while (n > 0 && out->endpoint[n - 1] == '/')
            out->endpoint[--n] = '\0';
        if (!strstr(out->endpoint, "://")) {
            r = vd_err(err, -EINVAL, "s3: endpoint '%s' is not a URL (http://host[:port])",
                       out->endpoint);
            goto out_free;
        }
    }
    out->path_style =
        opts->path_style || (out->endpoint && vd_endpoint_wants_path_style(out->endpoint));

out_free:
    free(creds);
    free(conf);
    if (r) {
        if (r == -ENOMEM)
            vd_err(err, r, "s3: out of memory resolving AWS configuration");
        vd_awsconf_free(out);
    }
    return r;
}

void vd_awsconf_free(struct vd_awsconf *c)
{
    if (!c)
        return;
    free(c->profile);
    free(c->access_key);
    free(c->secret_key);
    free(c->session_token);
    free(c->region);
    free(c->endpoint);
    memset(c, 0, sizeof(*c));
}
