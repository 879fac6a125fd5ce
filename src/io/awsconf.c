/* AWS credentials/region/endpoint resolution; see awsconf.h for the order. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/awsconf.h"
#include "io/awscreds.h"

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

int vd_awsconf_resolve(const struct vd_io_opts *opts, struct vd_awsconf *out, struct vd_error *err)
{
    static const struct vd_io_opts none;
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
    for (int pass = 0; pass < 3 && !out->access_key; pass++) {
        if (pass == 1) {
            /* credential_process, between the two files as botocore has it. */
            char *cmd = conf ? vd_ini_get(conf, flen, csect, "credential_process") : NULL;
            if (!cmd && creds)
                cmd = vd_ini_get(creds, clen, profile, "credential_process");
            if (cmd) {
                r = vd_awscreds_provider_new(VD_AWSCREDS_KIND_PROCESS, profile, cmd, &out->provider,
                                             NULL, 0, err);
                free(cmd);
                if (r)
                    goto out_free;
                out->cred_source = "process";
                break;
            }
            continue;
        }
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
    if (!out->access_key && !out->provider && explicit_profile && eak && esk) {
        if ((r = awsconf_dup(&out->access_key, eak)) || (r = awsconf_dup(&out->secret_key, esk)) ||
            (r = awsconf_dup(&out->session_token, awsconf_env("AWS_SESSION_TOKEN"))))
            goto out_free;
        out->cred_source = "env";
    }
    char container_why[200] = "container: not set", imds_why[300] = "";
    if (!out->access_key && !out->provider) {
        r = vd_awscreds_provider_new(VD_AWSCREDS_KIND_CONTAINER, NULL, NULL, &out->provider,
                                     container_why, sizeof(container_why), err);
        if (r == 0)
            out->cred_source = "container";
        else if (r != -ENOENT)
            goto out_free;
    }
    if (!out->access_key && !out->provider) {
        r = vd_awscreds_provider_new(VD_AWSCREDS_KIND_IMDS, NULL, NULL, &out->provider, imds_why,
                                     sizeof(imds_why), err);
        if (r == 0)
            out->cred_source = "imds";
        else if (r != -ENOENT)
            goto out_free;
    }
    r = 0;
    if (out->provider) {
        struct vd_awscreds *c = vd_awscreds_provider_current(out->provider);
        r = awsconf_dup(&out->access_key, c->access_key);
        if (!r)
            r = awsconf_dup(&out->secret_key, c->secret_key);
        if (!r)
            r = awsconf_dup(&out->session_token, c->session_token);
        vd_awscreds_put(c);
        if (r)
            goto out_free;
    }
    if (!out->access_key) {
        out->cred_source = "none";
        char note[700];
        snprintf(note, sizeof(note),
                 "no credentials found (tried: env; %sprofile %s: no keys or credential_process; "
                 "%s; %s)",
                 awsconf_env("AWS_WEB_IDENTITY_TOKEN_FILE") ? "web identity: not supported; " : "",
                 profile, container_why, imds_why);
        if ((r = awsconf_dup(&out->cred_note, note)) != 0)
            goto out_free;
    }

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
    free(c->cred_note);
    vd_awscreds_provider_unref(c->provider);
    memset(c, 0, sizeof(*c));
}

int vd_awsconf_copy(struct vd_awsconf *dst, const struct vd_awsconf *src)
{
    *dst = *src;
    dst->provider = vd_awscreds_provider_ref(src->provider);
    char **fields[] = {&dst->profile, &dst->access_key, &dst->secret_key, &dst->session_token,
                       &dst->region,  &dst->endpoint,   &dst->cred_note};
    int r = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *v = *fields[i];
        *fields[i] = NULL;
        if (!r && v && !(*fields[i] = strdup(v)))
            r = -ENOMEM;
    }
    if (r)
        vd_awsconf_free(dst);
    return r;
}
