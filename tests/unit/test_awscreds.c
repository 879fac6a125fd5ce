/* Expiring AWS credential sources (src/io/awscreds.c, src/common/jsonparse.c):
 * the JSON reader, credential documents of credential_process and the
 * IMDS/container endpoints with their exact error texts, RFC 3339 times,
 * command splitting, and credential_process through vd_awsconf_resolve()
 * with a refresh. The HTTP sources are covered by
 * tests/integration/t-s3-creds.sh against a fake server. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/jsonparse.h"
#include "io/awsconf.h"
#include "io/awscreds.h"

static char dir[] = "/tmp/vdawscredsXXXXXX";

/* Parse and expect an error text. */
static void json_bad(const char *text, const char *want)
{
    struct vd_jobject o;
    char why[200] = "";
    int r = vd_jobject_parse(text, strlen(text), &o, why, sizeof(why));
    CHECK(r == -EINVAL, "%s: r=%d", text, r);
    CHECK(!strcmp(why, want), "%s\n  got:  %s\n  want: %s", text, why, want);
    CHECK(o.n == 0 && o.m == NULL, "%s: left members behind", text);
}

static void test_json(void)
{
    struct vd_jobject o;
    char why[200];
    const char *doc =
        " {\"a\": \"x\\\"y\\\\z\\/\\n\", \"n\": -12.5e+3, \"t\": true, \"f\": false,"
        " \"z\": null, \"u\": \"\\u00e9\\ud83d\\ude00\", \"nest\": {\"k\": [1, {\"q\":"
        " []}, \"s\"]}, \"arr\": [], \"e\": \"\"}\r\n";
    CHECK(vd_jobject_parse(doc, strlen(doc), &o, why, sizeof(why)) == 0, "%s", why);
    CHECK(o.n == 9, "n=%zu", o.n);
    const struct vd_jmember *m;
    CHECK((m = vd_jobject_get(&o, "a")) && m->type == VD_JSTR && !strcmp(m->val, "x\"y\\z/\n"),
          "a");
    CHECK((m = vd_jobject_get(&o, "n")) && m->type == VD_JNUM && !strcmp(m->val, "-12.5e+3"), "n");
    CHECK((m = vd_jobject_get(&o, "t")) && m->type == VD_JBOOL && !strcmp(m->val, "true"), "t");
    CHECK((m = vd_jobject_get(&o, "f")) && m->type == VD_JBOOL && !strcmp(m->val, "false"), "f");
    CHECK((m = vd_jobject_get(&o, "z")) && m->type == VD_JNULL && !m->val, "z");
    CHECK((m = vd_jobject_get(&o, "u")) && !strcmp(m->val, "\xc3\xa9\xf0\x9f\x98\x80"), "u");
    CHECK((m = vd_jobject_get(&o, "nest")) && m->type == VD_JNESTED && !m->val, "nest");
    CHECK((m = vd_jobject_get(&o, "arr")) && m->type == VD_JNESTED, "arr");
    CHECK((m = vd_jobject_get(&o, "e")) && m->type == VD_JSTR && !strcmp(m->val, ""), "e");
    CHECK(!vd_jobject_get(&o, "A"), "keys are case-sensitive");
    vd_jobject_free(&o);
    CHECK(vd_jobject_parse("{}", 2, &o, why, sizeof(why)) == 0 && o.n == 0, "{}");
    vd_jobject_free(&o);

    json_bad("", "offset 0: empty document");
    json_bad("[1]", "offset 0: expected '{'");
    json_bad("{\"a\" 1}", "offset 5: expected ':' after a key");
    json_bad("{\"a\":1,}", "offset 7: expected a key");
    json_bad("{\"a\":1 \"b\":2}", "offset 7: expected ',' or '}'");
    json_bad("{\"a\":1,\"a\":2}", "offset 7: duplicate key");
    json_bad("{\"a\":1}x", "offset 7: data after the object");
    json_bad("{\"a\":1}{}", "offset 7: data after the object");
    json_bad("{\"a\":\"x", "offset 5: unterminated string");
    json_bad("{\"a\":\"x\ty\"}", "offset 7: control character in a string");
    json_bad("{\"a\":\"\\q\"}", "offset 7: bad escape in a string");
    json_bad("{\"a\":\"\\u0000\"}", "offset 12: \\u0000 in a string");
    json_bad("{\"a\":\"\\u12G4\"}", "offset 8: bad hex digit in \\u escape");
    json_bad("{\"a\":\"\\ud800x\"}", "offset 12: high surrogate without a low one");
    json_bad("{\"a\":\"\\udc00\"}", "offset 12: lone low surrogate");
    json_bad("{\"a\":01}", "offset 6: expected ',' or '}'");
    json_bad("{\"a\":-}", "offset 6: bad number");
    json_bad("{\"a\":1.}", "offset 7: bad number");
    json_bad("{\"a\":tru}", "offset 5: unexpected character");
    json_bad("{\"a\":[1,]}", "offset 8: unexpected character");
    json_bad("{\"a\":{\"b\"}}", "offset 9: expected ':' after a key");
    json_bad("{\"a\":1", "offset 6: unterminated object");
    json_bad("{\"a\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}", "offset 20: nested too deeply");

    /* Size and member caps. */
    size_t big = VD_JSON_MAX_INPUT + 1;
    char *b = malloc(big);
    memset(b, ' ', big);
    b[0] = '{';
    b[big - 1] = '}';
    CHECK(vd_jobject_parse(b, big, &o, why, sizeof(why)) == -EINVAL &&
              !strcmp(why, "65537 bytes, more than the 65536 allowed"),
          "%s", why);
    free(b);
    char many[2000] = "{";
    for (int i = 0; i <= VD_JSON_MAX_MEMBERS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"k%d\":%d", i ? "," : "", i,
                 i);
    strcat(many, "}");
    CHECK(vd_jobject_parse(many, strlen(many), &o, why, sizeof(why)) == -EINVAL &&
              strstr(why, ": too many members"),
          "%s", why);
}

static void creds_bad(enum vd_awscreds_doc doc, const char *text, const char *want)
{
    struct vd_awscreds *c = NULL;
    char why[200] = "";
    int r = vd_awscreds_parse(text, strlen(text), doc, 1795856400 - 3600, &c, why, sizeof(why));
    CHECK(r == -EINVAL && !c, "%s: r=%d", text, r);
    CHECK(!strcmp(why, want), "%s\n  got:  %s\n  want: %s", text, why, want);
}

static void test_docs(void)
{
    struct vd_awscreds *c = NULL;
    char why[200] = "";
    int64_t now = 1795856400 - 3600; /* an hour before 2026-11-28T09:00:00Z */
    const char *p = "{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC\", \"SecretAccessKey\": \"s/k+\","
                    " \"SessionToken\": \"tok\", \"Expiration\": \"2026-11-28T09:00:00Z\"}";
    CHECK(vd_awscreds_parse(p, strlen(p), VD_AWSCREDS_PROCESS, now, &c, why, sizeof(why)) == 0,
          "%s", why);
    CHECK(c && !strcmp(c->access_key, "ASIAPROC") && !strcmp(c->secret_key, "s/k+") &&
              !strcmp(c->session_token, "tok") && c->expires == 1795856400,
          "process doc");
    vd_awscreds_put(c);
    /* Long-term keys: no token, no expiry. */
    p = "{\"Version\":1,\"AccessKeyId\":\"AKIA\",\"SecretAccessKey\":\"s\",\"AccountId\":\"1\"}";
    c = NULL;
    CHECK(vd_awscreds_parse(p, strlen(p), VD_AWSCREDS_PROCESS, now, &c, why, sizeof(why)) == 0,
          "%s", why);
    CHECK(c && !c->session_token && c->expires == 0, "static process doc");
    vd_awscreds_put(c);
    /* IMDS answer. */
    const char *h = "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-28T07:00:00Z\",\n"
                    "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIMDS\",\n"
                    "  \"SecretAccessKey\" : \"sec\",\n  \"Token\" : \"T\",\n"
                    "  \"Expiration\" : \"2026-11-28T14:30:00+05:30\"\n}";
    c = NULL;
    CHECK(vd_awscreds_parse(h, strlen(h), VD_AWSCREDS_HTTP, now, &c, why, sizeof(why)) == 0, "%s",
          why);
    CHECK(c && !strcmp(c->session_token, "T") && c->expires == 1795856400, "imds doc");
    vd_awscreds_put(c);

    creds_bad(VD_AWSCREDS_PROCESS, "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"}",
              "no Version");
    creds_bad(VD_AWSCREDS_PROCESS,
              "{\"Version\":2,\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"}",
              "Version is 2, expected 1");
    creds_bad(VD_AWSCREDS_PROCESS, "{\"Version\":\"1\",\"AccessKeyId\":\"a\"}",
              "Version is not the number 1");
    creds_bad(VD_AWSCREDS_PROCESS, "{\"Version\":1,\"SecretAccessKey\":\"s\"}", "no AccessKeyId");
    creds_bad(VD_AWSCREDS_PROCESS, "{\"Version\":1,\"AccessKeyId\":\"a\"}", "no SecretAccessKey");
    creds_bad(VD_AWSCREDS_PROCESS, "{\"Version\":1,\"AccessKeyId\":7,\"SecretAccessKey\":\"s\"}",
              "AccessKeyId is not a string");
    creds_bad(VD_AWSCREDS_PROCESS, "{\"Version\":1,\"AccessKeyId\":\"\",\"SecretAccessKey\":\"s\"}",
              "AccessKeyId is empty");
    creds_bad(VD_AWSCREDS_PROCESS,
              "{\"Version\":1,\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Expiration\":"
              "\"tomorrow\"}",
              "Expiration 'tomorrow' is not an RFC 3339 date-time");
    creds_bad(VD_AWSCREDS_PROCESS,
              "{\"Version\":1,\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Expiration\":"
              "\"2026-11-28T07:59:59Z\"}",
              "the credentials expired at 2026-11-28T07:59:59Z");
    creds_bad(VD_AWSCREDS_PROCESS, "Error: not logged in\n", "offset 0: expected '{'");
    creds_bad(VD_AWSCREDS_HTTP,
              "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"no trust\",\"AccessKeyId\":"
              "\"a\"}",
              "Code is 'AssumeRoleUnauthorizedAccess': no trust");
    creds_bad(VD_AWSCREDS_HTTP, "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Token\":\"t\"}",
              "no Expiration");
    creds_bad(VD_AWSCREDS_HTTP, "{\"code\":\"x\"}", "no AccessKeyId");
}

static void test_time(void)
{
    int64_t t = -1;
    CHECK(vd_rfc3339_parse("2026-11-28T09:00:00Z", &t) && t == 1795856400, "%lld", (long long)t);
    CHECK(vd_rfc3339_parse("2026-11-28T09:00:00.123456Z", &t) && t == 1795856400, "fraction");
    CHECK(vd_rfc3339_parse("2026-11-28t03:30:00-05:30", &t) && t == 1795856400, "offset");
    CHECK(vd_rfc3339_parse("1970-01-01T00:00:00Z", &t) && t == 0, "epoch");
    CHECK(vd_rfc3339_parse("2000-02-29T23:59:59Z", &t) && t == 951868799, "leap day");
    const char *bad[] = {"2026-11-28 09:00:00Z",
                         "2026-11-28T09:00:00",
                         "2026-13-01T00:00:00Z",
                         "2026-11-28T09:00:00.Z",
                         "2026-11-28T24:00:00Z",
                         "2026-11-28T09:00:00+0530",
                         "",
                         "2026-11-28T09:00:00Zjunk",
                         "2026-02-30T00:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!vd_rfc3339_parse(bad[i], &t), "accepted '%s'", bad[i]);
}

static void test_split(void)
{
    char **v = NULL, why[100] = "";
    CHECK(vd_cmdline_split(" /opt/bin/creds  --user \"helen h\" 'a b\"c' x\\ y \"q\\\"\\$\\n\" ",
                           &v, why, sizeof(why)) == 0,
          "%s", why);
    const char *want[] = {"/opt/bin/creds", "--user", "helen h", "a b\"c", "x y", "q\"$\\n", NULL};
    for (int i = 0; want[i] || v[i]; i++) {
        CHECK(want[i] && v[i] && !strcmp(v[i], want[i]), "word %d: %s", i, v[i] ? v[i] : "(end)");
        if (!want[i] || !v[i])
            break;
    }
    vd_argv_free(v);
    CHECK(vd_cmdline_split("a 'b", &v, why, sizeof(why)) == -EINVAL &&
              !strcmp(why, "unterminated ' quote"),
          "%s", why);
    CHECK(vd_cmdline_split("a \"b", &v, why, sizeof(why)) == -EINVAL &&
              !strcmp(why, "unterminated \" quote"),
          "%s", why);
    CHECK(vd_cmdline_split("  ", &v, why, sizeof(why)) == -EINVAL && !strcmp(why, "empty command"),
          "%s", why);
    CHECK(vd_cmdline_split("a\\", &v, why, sizeof(why)) == -EINVAL &&
              !strcmp(why, "backslash at the end"),
          "%s", why);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void env_for(const char *profile)
{
    static const char *vars[] = {"AWS_ACCESS_KEY_ID",
                                 "AWS_SECRET_ACCESS_KEY",
                                 "AWS_SESSION_TOKEN",
                                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                 "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                 "AWS_WEB_IDENTITY_TOKEN_FILE",
                                 "VD_AWS_REFRESH_SECS",
                                 "VD_AWS_PROCESS_TIMEOUT"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_PROFILE", profile, 1);
}

/* credential_process through the chain: exact errors, then a refresh. */
static void test_process(void)
{
    char path[300], conf[300], creds[300], state[300], text[2000];
    struct vd_awsconf c;
    struct vd_error err = {0};
    snprintf(conf, sizeof(conf), "%s/config", dir);
    snprintf(creds, sizeof(creds), "%s/credentials", dir);
    snprintf(state, sizeof(state), "%s/calls", dir);
    setenv("AWS_CONFIG_FILE", conf, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    write_file(creds, "[static]\naws_access_key_id=AKSTATIC\naws_secret_access_key=S\n", 0600);

    /* Each run appends to the state file; the first answer expires in 100 s
     * (inside the 300 s window), later ones in an hour. */
    snprintf(path, sizeof(path), "%s/creds helper.sh", dir);
    snprintf(text, sizeof(text),
             "#!/bin/sh\n"
             "echo run >>'%s'\n"
             "n=$(wc -l <'%s' | tr -d ' ')\n"
             "if [ \"$n\" = 1 ]; then ttl=100; else ttl=3600; fi\n"
             "exp=$(date -u -d \"@$(( $(date +%%s) + ttl ))\" +%%Y-%%m-%%dT%%H:%%M:%%SZ)\n"
             "echo \"arg=$1\" >&2\n"
             "printf '{\"Version\": 1, \"AccessKeyId\": \"ASIA%%s\", \"SecretAccessKey\": \"sk\", "
             "\"SessionToken\": \"tok%%s\", \"Expiration\": \"%%s\"}' \"$n\" \"$n\" \"$exp\"\n",
             state, state);
    write_file(path, text, 0755);
    snprintf(
        text, sizeof(text),
        "[profile proc]\ncredential_process = \"%s\" --user helen\n"
        "[profile static]\ncredential_process = /nonexistent\n"
        "[profile fail]\ncredential_process = sh -c 'echo token expired, run login >&2; exit 3'\n"
        "[profile junk]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": 5}'\n"
        "[profile missing]\ncredential_process = /nonexistent/helper --x\n"
        "[profile slow]\ncredential_process = sleep 30\n"
        "[profile quote]\ncredential_process = \"/bin/true\n"
        "[profile both]\naws_access_key_id = AKCFG\naws_secret_access_key = S\n"
        "credential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"AKPROC\", "
        "\"SecretAccessKey\": \"s\"}'\n",
        path);
    write_file(conf, text, 0600);

    /* Static keys in the credentials file come first (botocore's order). */
    env_for("static");
    CHECK(vd_awsconf_resolve(NULL, &c, &err) == 0, "%s", err.msg);
    CHECK(c.access_key && !strcmp(c.access_key, "AKSTATIC") && !c.provider, "static first");
    vd_awsconf_free(&c);

    /* credential_process beats keys in the config file; long-term keys
     * from a process have no expiry and need no refresh. */
    env_for("both");
    vd_err_clear(&err);
    CHECK(vd_awsconf_resolve(NULL, &c, &err) == 0, "%s", err.msg);
    CHECK(c.access_key && !strcmp(c.access_key, "AKPROC") && !strcmp(c.cred_source, "process"),
          "process before config keys: %s", c.access_key);
    vd_awsconf_free(&c);
    /* Environment keys beat everything: the helper does not run. */
    env_for("proc");
    unlink(state);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    CHECK(vd_awsconf_resolve(NULL, &c, &err) == 0 && !strcmp(c.access_key, "AKENV") && !c.provider,
          "env first");
    vd_awsconf_free(&c);
    CHECK(access(state, F_OK) != 0, "credential_process ran although env keys are set");

    env_for("proc");
    unlink(state);
    vd_err_clear(&err);
    CHECK(vd_awsconf_resolve(NULL, &c, &err) == 0, "%s", err.msg);
    CHECK(!strcmp(c.cred_source, "process") && c.provider, "source %s", c.cred_source);
    CHECK(c.access_key && !strcmp(c.access_key, "ASIA1") && !strcmp(c.session_token, "tok1"),
          "first set: %s", c.access_key);
    if (c.provider) {
        struct vd_awscreds *k = NULL;
        char why[300] = "";
        /* Due (100 s left < 300 s): refreshed on first use. */
        CHECK(vd_awscreds_provider_get(c.provider, &k, why, sizeof(why)) == 0, "%s", why);
        CHECK(k && !strcmp(k->access_key, "ASIA2") && !strcmp(k->session_token, "tok2"),
              "refreshed: %s", k ? k->access_key : "-");
        vd_awscreds_put(k);
        /* Fresh for an hour: no further run. */
        CHECK(vd_awscreds_provider_get(c.provider, &k, why, sizeof(why)) == 0, "%s", why);
        CHECK(k && !strcmp(k->access_key, "ASIA2"), "kept");
        vd_awscreds_put(k);
        /* A window longer than the lifetime makes it due again, but a
         * refresh was tried less than 30 s ago: kept, no run. */
        setenv("VD_AWS_REFRESH_SECS", "7200", 1);
        CHECK(vd_awscreds_provider_get(c.provider, &k, why, sizeof(why)) == 0, "%s", why);
        CHECK(k && !strcmp(k->access_key, "ASIA2"), "rate limited");
        vd_awscreds_put(k);
        unsetenv("VD_AWS_REFRESH_SECS");
    }
    vd_awsconf_free(&c);
    FILE *f = fopen(state, "r");
    int runs = 0;
    char line[64];
    while (f && fgets(line, sizeof(line), f))
        runs++;
    if (f)
        fclose(f);
    CHECK(runs == 2, "helper ran %d times, want 2", runs);

    struct {
        const char *profile;
        int code;
        const char *msg;
    } bad[] = {
        {"fail", -EACCES,
         "s3: profile fail: credential_process 'sh -c 'echo token expired, run login >&2; exit "
         "3'' exited with status 3: token expired, run login"},
        {"junk", -EINVAL,
         "s3: profile junk: credential_process 'echo '{\"Version\": 1, \"AccessKeyId\": 5}'': bad "
         "output: AccessKeyId is not a string"},
        {"missing", -EIO,
         "s3: profile missing: credential_process '/nonexistent/helper --x': cannot run "
         "/nonexistent/helper: No such file or directory"},
        {"quote", -EINVAL,
         "s3: profile quote: credential_process '\"/bin/true': unterminated \" quote"},
        {"slow", -EIO,
         "s3: profile slow: credential_process 'sleep 30' did not finish within 1 s "
         "(VD_AWS_PROCESS_TIMEOUT)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_for(bad[i].profile);
        setenv("VD_AWS_PROCESS_TIMEOUT", "1", 1);
        vd_err_clear(&err);
        int r = vd_awsconf_resolve(NULL, &c, &err);
        CHECK(r == bad[i].code, "%s: r=%d", bad[i].profile, r);
        CHECK_MSG(err, bad[i].msg);
    }
    unsetenv("VD_AWS_PROCESS_TIMEOUT");
    unlink(path);
    unlink(state);
    unlink(conf);
    unlink(creds);
}

struct racer {
    struct vd_awscreds_provider *p;
    char key[32];
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct vd_awscreds *k = NULL;
    char why[300];
    r->rc = vd_awscreds_provider_get(r->p, &k, why, sizeof(why));
    if (k)
        snprintf(r->key, sizeof(r->key), "%s", k->access_key);
    vd_awscreds_put(k);
    return NULL;
}

/* Many threads find the credentials due at once: one runs the helper, the
 * others keep signing with the still-valid set meanwhile. */
static void test_concurrent_refresh(void)
{
    char path[300], conf[300], state[300], text[1500];
    snprintf(conf, sizeof(conf), "%s/config", dir);
    snprintf(state, sizeof(state), "%s/calls", dir);
    snprintf(path, sizeof(path), "%s/slow.sh", dir);
    snprintf(text, sizeof(text),
             "#!/bin/sh\n"
             "echo run >>'%s'\n"
             "n=$(wc -l <'%s' | tr -d ' ')\n"
             "if [ \"$n\" = 1 ]; then ttl=100; else ttl=3600; sleep 0.3; fi\n"
             "exp=$(date -u -d \"@$(( $(date +%%s) + ttl ))\" +%%Y-%%m-%%dT%%H:%%M:%%SZ)\n"
             "printf '{\"Version\": 1, \"AccessKeyId\": \"ASIA%%s\", \"SecretAccessKey\": \"sk\", "
             "\"Expiration\": \"%%s\"}' \"$n\" \"$exp\"\n",
             state, state);
    write_file(path, text, 0755);
    snprintf(text, sizeof(text), "[profile race]\ncredential_process = %s\n", path);
    write_file(conf, text, 0600);
    setenv("AWS_CONFIG_FILE", conf, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
    env_for("race");
    unlink(state);
    struct vd_awsconf c;
    struct vd_error err = {0};
    CHECK(vd_awsconf_resolve(NULL, &c, &err) == 0 && c.provider, "%s", err.msg);
    if (c.provider) {
        enum { N = 8 };
        struct racer r[N];
        pthread_t th[N];
        for (int i = 0; i < N; i++) {
            r[i] = (struct racer){.p = c.provider};
            pthread_create(&th[i], NULL, race, &r[i]);
        }
        int fresh = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            CHECK(r[i].rc == 0 && (!strcmp(r[i].key, "ASIA1") || !strcmp(r[i].key, "ASIA2")),
                  "thread %d: rc %d key %s", i, r[i].rc, r[i].key);
            fresh += !strcmp(r[i].key, "ASIA2");
        }
        CHECK(fresh >= 1, "nobody got the refreshed set");
        struct vd_awscreds *k = vd_awscreds_provider_current(c.provider);
        CHECK(!strcmp(k->access_key, "ASIA2"), "after the race: %s", k->access_key);
        vd_awscreds_put(k);
    }
    vd_awsconf_free(&c);
    FILE *f = fopen(state, "r");
    int runs = 0;
    char line[64];
    while (f && fgets(line, sizeof(line), f))
        runs++;
    if (f)
        fclose(f);
    CHECK(runs == 2, "helper ran %d times, want 2 (one refresh for 8 threads)", runs);
    unlink(path);
    unlink(state);
    unlink(conf);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_json();
    test_docs();
    test_time();
    test_split();
    test_process();
    test_concurrent_refresh();
    rmdir(dir);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
