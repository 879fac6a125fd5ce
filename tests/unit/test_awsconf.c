/* AWS configuration resolution (src/io/awsconf.c): precedence of options,
 * environment, credentials and config files; INI parsing corner cases. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/awsconf.h"
#include "io/s3req.h"

static int failures;

#define EXPECT_STR(got, want)                                                                      \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if ((g_ == NULL) != (w_ == NULL) || (g_ && strcmp(g_, w_))) {                              \
            fprintf(stderr, "FAIL %s:%d: %s = '%s', want '%s'\n", __FILE__, __LINE__, #got,        \
                    g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                       \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                           \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static char dir[] = "/tmp/vdawsconfXXXXXX";
static char credpath[256], confpath[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    static const char *vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_REGION",        "AWS_DEFAULT_REGION",    "AWS_ENDPOINT_URL",  "AWS_ENDPOINT_URL_S3"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("AWS_SHARED_CREDENTIALS_FILE", credpath, 1);
    setenv("AWS_CONFIG_FILE", confpath, 1);
    /* Hermetic: no container endpoint, no instance metadata. */
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void test_ini(void)
{
    const char *ini = "# comment\n"
                      "[default]\n"
                      "aws_access_key_id = AKDEF  \n"
                      "\n"
                      "[ other ]\n"
                      "  ; indented comment\n"
                      "AWS_Access_Key_Id=AKOTHER\n"
                      "s3 =\n"
                      "  endpoint_url = http://nested:9000\n"
                      "region = eu-west-1\n"
                      "[profile x]\n"
                      "region=ap-south-1\n";
    size_t n = strlen(ini);
    char *v;
    EXPECT_STR(v = vd_ini_get(ini, n, "default", "aws_access_key_id"), "AKDEF");
    free(v);
    EXPECT_STR(v = vd_ini_get(ini, n, "other", "aws_access_key_id"), "AKOTHER");
    free(v);
    EXPECT_STR(v = vd_ini_get(ini, n, "other", "region"), "eu-west-1");
    free(v);
    /* Nested "s3 =" blocks are not scalar values, nor are their lines. */
    EXPECT_STR(v = vd_ini_get(ini, n, "other", "s3"), NULL);
    EXPECT_STR(v = vd_ini_get(ini, n, "other", "endpoint_url"), NULL);
    EXPECT_STR(v = vd_ini_get(ini, n, "profile x", "region"), "ap-south-1");
    free(v);
    EXPECT_STR(v = vd_ini_get(ini, n, "x", "region"), NULL);
    EXPECT_STR(v = vd_ini_get(ini, n - 3, "profile x", "region"), "ap-south");
    free(v);
    EXPECT_STR(v = vd_ini_get("", 0, "default", "a"), NULL);
    EXPECT_STR(v = vd_ini_get("[default", 8, "default", "a"), NULL);
}

static void test_resolve(void)
{
    struct vd_awsconf c;
    struct vd_error err = {0};
    write_file(credpath, "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=SKFILE\n"
                         "[dev]\naws_access_key_id=AKDEV\naws_secret_access_key=SKDEV\n"
                         "aws_session_token=TOKDEV\n");
    write_file(confpath,
               "[default]\nregion=eu-central-1\n"
               "[profile dev]\nregion=us-west-2\nendpoint_url=http://minio.local:9000\n"
               "[profile cfgonly]\naws_access_key_id=AKCFG\naws_secret_access_key=SKCFG\n");

    /* Files only: [default] in both. */
    clear_env();
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == 0);
    EXPECT_STR(c.access_key, "AKFILE");
    EXPECT_STR(c.session_token, NULL);
    EXPECT_STR(c.region, "eu-central-1");
    EXPECT_STR(c.endpoint, NULL);
    EXPECT(!c.path_style);
    EXPECT_STR(c.cred_source, "credentials file");
    vd_awsconf_free(&c);

    /* Environment credentials beat the files; AWS_REGION beats
     * AWS_DEFAULT_REGION beats config; ENDPOINT_URL_S3 beats ENDPOINT_URL. */
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    setenv("AWS_SESSION_TOKEN", "TOKENV", 1);
    setenv("AWS_DEFAULT_REGION", "sa-east-1", 1);
    setenv("AWS_ENDPOINT_URL", "https://generic.example", 1);
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == 0);
    EXPECT_STR(c.access_key, "AKENV");
    EXPECT_STR(c.session_token, "TOKENV");
    EXPECT_STR(c.region, "sa-east-1");
    EXPECT_STR(c.endpoint, "https://generic.example");
    EXPECT(!c.path_style);
    vd_awsconf_free(&c);
    setenv("AWS_REGION", "ca-central-1", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4569/", 1);
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == 0);
    EXPECT_STR(c.region, "ca-central-1");
    EXPECT_STR(c.endpoint, "http://127.0.0.1:4569"); /* trailing '/' dropped */
    EXPECT(c.path_style);                            /* IP and port */
    vd_awsconf_free(&c);

    /* Options beat everything; an explicit profile beats env credentials. */
    struct vd_io_opts o = {.region = "me-south-1",
                           .endpoint = "https://s3.custom.example",
                           .profile = "dev",
                           .path_style = true};
    EXPECT(vd_awsconf_resolve(&o, &c, &err) == 0);
    EXPECT_STR(c.access_key, "AKDEV");
    EXPECT_STR(c.session_token, "TOKDEV");
    EXPECT_STR(c.region, "me-south-1");
    EXPECT_STR(c.endpoint, "https://s3.custom.example");
    EXPECT(c.path_style);
    vd_awsconf_free(&c);

    /* AWS_PROFILE picks [dev] and [profile dev]; env creds still win then. */
    clear_env();
    setenv("AWS_PROFILE", "dev", 1);
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == 0);
    EXPECT_STR(c.access_key, "AKDEV");
    EXPECT_STR(c.region, "us-west-2");
    EXPECT_STR(c.endpoint, "http://minio.local:9000");
    EXPECT(c.path_style); /* explicit port */
    vd_awsconf_free(&c);

    /* Keys may live in the config file only. */
    setenv("AWS_PROFILE", "cfgonly", 1);
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == 0);
    EXPECT_STR(c.access_key, "AKCFG");
    EXPECT_STR(c.cred_source, "config file");
    EXPECT_STR(c.region, "us-east-1"); /* nothing set: the default */
    vd_awsconf_free(&c);

    /* Nothing at all: anonymous. */
    setenv("AWS_PROFILE", "nobody", 1);
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == 0);
    EXPECT_STR(c.access_key, NULL);
    EXPECT_STR(c.cred_source, "none");
    EXPECT_STR(c.cred_note, "no credentials found (tried: env; profile nobody: no keys or "
                            "credential_process; container: not set; imds: disabled by "
                            "AWS_EC2_METADATA_DISABLED)");
    vd_awsconf_free(&c);

    /* Half the env pair is an error with a message. */
    clear_env();
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    vd_err_clear(&err);
    EXPECT(vd_awsconf_resolve(NULL, &c, &err) == -EINVAL);
    EXPECT_STR(err.msg, "s3: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    clear_env();
    struct vd_io_opts bad = {.endpoint = "minio:9000"};
    vd_err_clear(&err);
    EXPECT(vd_awsconf_resolve(&bad, &c, &err) == -EINVAL);
    EXPECT_STR(err.msg, "s3: endpoint 'minio:9000' is not a URL (http://host[:port])");
}

static void test_path_style(void)
{
    EXPECT(vd_endpoint_wants_path_style("http://127.0.0.1"));
    EXPECT(vd_endpoint_wants_path_style("http://localhost/"));
    EXPECT(vd_endpoint_wants_path_style("https://s3.example.com:8443"));
    EXPECT(vd_endpoint_wants_path_style("http://[::1]:9000"));
    EXPECT(!vd_endpoint_wants_path_style("https://s3.eu-west-1.amazonaws.com"));
    EXPECT(!vd_endpoint_wants_path_style("https://storage.example"));
}

/* Where requests go: URL, Host header and signed path. */
static void test_targets(void)
{
    struct vd_error err = {0};
    struct vd_s3_target *t, *r;
    clear_env();
    setenv("AWS_REGION", "eu-west-1", 1);
    EXPECT(vd_s3_target_open("s3://my-bucket/dir/a b+c.vmdk", NULL, &t, &err) == 0);
    EXPECT_STR(t->url, "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc.vmdk");
    EXPECT_STR(t->host, "my-bucket.s3.eu-west-1.amazonaws.com");
    EXPECT_STR(t->sign_path, "/dir/a b+c.vmdk");
    EXPECT(vd_s3_target_relative(t, "a b-s001.vmdk", &r, &err) == 0);
    EXPECT_STR(r->uri, "s3://my-bucket/dir/a b-s001.vmdk");
    EXPECT_STR(r->url, "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b-s001.vmdk");
    vd_s3_target_free(r);
    vd_err_clear(&err);
    EXPECT(vd_s3_target_relative(t, "C:\\vms\\parent.vhd", &r, &err) == -ENOENT);
    vd_s3_target_free(t);
    /* Dotted bucket names go path-style (TLS wildcard certificates). */
    EXPECT(vd_s3_target_open("s3://my.bucket/k", NULL, &t, &err) == 0);
    EXPECT_STR(t->url, "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
    EXPECT_STR(t->sign_path, "/my.bucket/k");
    vd_s3_target_free(t);
    struct vd_io_opts o = {.endpoint = "http://127.0.0.1:9000"};
    EXPECT(vd_s3_target_open("s3://b/top.vhd", &o, &t, &err) == 0);
    EXPECT_STR(t->url, "http://127.0.0.1:9000/b/top.vhd");
    EXPECT_STR(t->host, "127.0.0.1:9000");
    EXPECT(vd_s3_target_relative(t, "parent.vhd", &r, &err) == 0);
    EXPECT_STR(r->url, "http://127.0.0.1:9000/b/parent.vhd");
    vd_s3_target_free(r);
    vd_s3_target_free(t);
    /* Plain URLs: the sibling replaces the last component and drops the query. */
    EXPECT(vd_s3_target_open("https://h.example/x/y/disk.vmdk?X-Amz-Signature=abc", NULL, &t,
                             &err) == 0);
    EXPECT(!t->is_s3);
    EXPECT(vd_s3_target_relative(t, "disk-flat.vmdk", &r, &err) == 0);
    EXPECT_STR(r->url, "https://h.example/x/y/disk-flat.vmdk");
    vd_s3_target_free(r);
    vd_s3_target_free(t);
    vd_err_clear(&err);
    EXPECT(vd_s3_target_open("s3://bucketonly", NULL, &t, &err) == -EINVAL);
    EXPECT_STR(err.msg, "s3: s3://bucketonly: expected s3://bucket/key");
}

static void test_xml(void)
{
    const char *ok = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult xmlns=\"http://"
                     "s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>k</Key>"
                     "<UploadId>2~abc/def+g=</UploadId></InitiateMultipartUploadResult>";
    char *v = vd_s3_xml_tag(ok, strlen(ok), "UploadId");
    EXPECT_STR(v, "2~abc/def+g=");
    free(v);
    const char *err200 = "<?xml version=\"1.0\"?>\n\n<Error><Code>InternalError</Code>"
                         "<Message>We encountered an internal error.</Message></Error>";
    v = vd_s3_xml_tag(err200, strlen(err200), "Code");
    EXPECT_STR(v, "InternalError");
    free(v);
    EXPECT(vd_s3_xml_tag("<a><b>", 6, "b") == NULL || 1); /* malformed: no crash */
    EXPECT(vd_s3_xml_tag("", 0, "b") == NULL);
    const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/"
                      "passwd\">]><r><Code>&e;</Code></r>";
    v = vd_s3_xml_tag(xxe, strlen(xxe), "Code");
    EXPECT(v == NULL || strstr(v, "root:") == NULL); /* entities never expanded */
    free(v);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(credpath, sizeof(credpath), "%s/credentials", dir);
    snprintf(confpath, sizeof(confpath), "%s/config", dir);
    test_ini();
    test_resolve();
    test_path_style();
    test_targets();
    test_xml();
    unlink(credpath);
    unlink(confpath);
    rmdir(dir);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
