/*
 * AWS credentials, region and endpoint resolution for S3 sources and sinks.
 *
 * Order (first that is set wins):
 *   profile     opts->profile, AWS_PROFILE, "default"
 *   credentials when opts->profile is given: that profile's files first;
 *               otherwise AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
 *               (+ AWS_SESSION_TOKEN); then [profile] in the credentials file
 *               (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials); then
 *               aws_access_key_id in the config file's profile section.
 *               None: anonymous (unsigned) requests.
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

#include "vdisk/error.h"
#include "vdisk/vdisk.h"

struct vd_awsconf {
    char *profile;
    char *access_key; /* NULL: anonymous */
    char *secret_key;
    char *session_token; /* NULL unless session credentials */
    char *region;
    char *endpoint; /* NULL: AWS (https://s3.REGION.amazonaws.com) */
    bool path_style;
    const char *cred_source; /* "options", "env", "credentials file", "config file", "none" */
};

/* Resolve from opts, the environment and the shared files. Returns 0,
 * -ENOMEM, or -EINVAL (a key id without a secret, say). */
int vd_awsconf_resolve(const struct vd_open_opts *opts, struct vd_awsconf *out,
                       struct vd_error *err);
void vd_awsconf_free(struct vd_awsconf *c);

/* Look key up in [section] of INI text buf[0..len). Keys match
 * case-insensitively; values are trimmed; indented lines (nested
 * "s3 =" blocks) are skipped. Returns a malloc'ed value or NULL. */
char *vd_ini_get(const char *buf, size_t len, const char *section, const char *key);

/* Does this endpoint URL call for path-style addressing (IP host,
 * "localhost", or an explicit port)? */
bool vd_endpoint_wants_path_style(const char *endpoint);

#endif
