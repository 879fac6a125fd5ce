/*
 * AWS credentials, region and endpoint resolution for S3 sources and sinks.
 *
 * Order (first that is set wins):
 *   profile     opts->profile, AWS_PROFILE, "default"
 *   credentials the default chain of the AWS SDKs (botocore's order):
 *               1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+
 *                  AWS_SESSION_TOKEN), unless opts->profile is given (then
 *                  they come after that profile's files, before 5.);
 *               (web identity: not supported, named in the "tried" list)
 *               2. [profile] in the credentials file
 *                  (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials);
 *               3. credential_process of the profile (config file, else
 *                  credentials file): a failure is an error, not a skip;
 *               4. aws_access_key_id in the config file's profile section;
 *               5. the container endpoint, when AWS_CONTAINER_CREDENTIALS_*
 *                  is set (a failure is an error);
 *               6. EC2 instance metadata (IMDSv2), unless
 *                  AWS_EC2_METADATA_DISABLED=true (a failure is a skip).
 *               3, 5, 6 are refreshed before they expire (awscreds.h).
 *               None: anonymous (unsigned) requests; cred_note then lists
 *               what was tried, for the 403 message.
 *   region      opts->region, AWS_REGION, AWS_DEFAULT_REGION, config region,
 *               "us-east-1"
 *   endpoint    opts->endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
 *               config endpoint_url, else https://s3.REGION.amazonaws.com
 *   path style  opts->path_style, or a custom endpoint whose host is an IP
 *               address, "localhost", or carries an explicit port; or a
 *               bucket name with dots (virtual-hosted TLS would not match).
 * The config file (AWS_CONFIG_FILE, else ~/.aws/config) names sections
 * "[profile NAME]", except "[default]".
 */
#ifndef VD_IO_AWSCONF_H
#define VD_IO_AWSCONF_H

#include <stdbool.h>
#include <stddef.h>

#include "io/io.h"
#include "vdisk/error.h"

struct vd_awsconf {
    char *profile;
    char *access_key; /* NULL: anonymous */
    char *secret_key;
    char *session_token; /* NULL unless session credentials */
    char *region;
    char *endpoint; /* NULL: AWS (https://s3.REGION.amazonaws.com) */
    bool path_style;
    /* "env", "credentials file", "config file", "process", "container", "imds", "none" */
    const char *cred_source;
    /* Expiring credentials (process, container, imds): sign with what
     * vd_awscreds_provider_get() returns, not access_key & co (which hold
     * the first set). NULL for static credentials. */
    struct vd_awscreds_provider *provider;
    char *cred_note; /* anonymous only: "no credentials found (tried ...)" */
};

/* Resolve from opts, the environment, the shared files and the metadata
 * endpoints. Returns 0, -ENOMEM, -EINVAL (a key id without a secret, say),
 * or the error of a configured source that failed (credential_process,
 * container endpoint: -EACCES, -EIO, -EINVAL). */
int vd_awsconf_resolve(const struct vd_io_opts *opts, struct vd_awsconf *out, struct vd_error *err);
void vd_awsconf_free(struct vd_awsconf *c);
/* A deep copy (the provider is shared by reference). Returns 0 or -ENOMEM. */
int vd_awsconf_copy(struct vd_awsconf *dst, const struct vd_awsconf *src);

/* Look key up in [section] of INI text buf[0..len). Keys match
 * case-insensitively; values are trimmed; indented lines (nested
 * "s3 =" blocks) are skipped. Returns a malloc'ed value or NULL. */
char *vd_ini_get(const char *buf, size_t len, const char *section, const char *key);

/* Does this endpoint URL call for path-style addressing (IP host,
 * "localhost", or an explicit port)? */
bool vd_endpoint_wants_path_style(const char *endpoint);

#endif
