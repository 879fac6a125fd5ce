/*
 * AWS credentials that come from somewhere else and expire: the
 * credential_process of a profile, the container endpoint (ECS task roles,
 * EKS Pod Identity) and the EC2 instance metadata service (IMDSv2). See
 * awsconf.h for where they sit in the chain and docs/s3.md for the user view.
 *
 *   credential_process  the command is split like the AWS CLI splits it on
 *                       POSIX (shlex: quotes and backslashes, no shell),
 *                       run with stdin from /dev/null; stdout must be
 *                       {"Version": 1, "AccessKeyId", "SecretAccessKey",
 *                       "SessionToken"?, "Expiration"?}; non-zero exit, bad
 *                       JSON or VD_AWS_PROCESS_TIMEOUT (60 s) is an error.
 *   container           AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (under
 *                       http://169.254.170.2), else ..._FULL_URI (https, or
 *                       a loopback / 169.254.170.2 / 169.254.170.23 /
 *                       fd00:ec2::23 host), with Authorization from
 *                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read on each
 *                       fetch) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
 *   imds                PUT /latest/api/token, GET
 *                       /latest/meta-data/iam/security-credentials/ (role),
 *                       GET .../ROLE; the IMDSv1 fallback (no token) only
 *                       when the PUT answers 403, 404 or 405, as the SDKs
 *                       do, and never with AWS_EC2_METADATA_V1_DISABLED=true.
 *                       Endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT, else
 *                       http://169.254.169.254. Connect timeout
 *                       AWS_METADATA_SERVICE_TIMEOUT (1 s), whole request 4 s
 *                       more; container and IMDS never go through a proxy.
 *
 * A provider keeps the current credentials of one such source and fetches
 * new ones when less than 5 minutes remain (thread-safe; one thread fetches
 * while the others keep signing with the still-valid ones).
 */
#ifndef VD_IO_AWSCREDS_H
#define VD_IO_AWSCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/error.h"

/* One set of credentials; immutable once made, shared by reference. */
struct vd_awscreds {
    int refs;
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL: none */
    int64_t expires;     /* Unix seconds; 0: never */
};

void vd_awscreds_put(struct vd_awscreds *c); /* drop one reference; NULL ok */

enum vd_awscreds_doc {
    VD_AWSCREDS_PROCESS, /* credential_process stdout */
    VD_AWSCREDS_HTTP,    /* IMDS and container endpoints: "Token", optional "Code" */
};

/* Parse a credentials document (no I/O). now: Unix seconds, for refusing
 * credentials that have already expired. Returns 0, -EINVAL with why (e.g.
 * "Version is 2, expected 1", "no AccessKeyId", "offset 3: expected ':' after
 * a key"), or -ENOMEM. */
int vd_awscreds_parse(const char *buf, size_t len, enum vd_awscreds_doc doc, int64_t now,
                      struct vd_awscreds **out, char *why, size_t whylen);

/* RFC 3339 date-time ("2026-11-28T09:00:00Z", fractions and +hh:mm
 * offsets allowed) to Unix seconds. Returns false if malformed. */
bool vd_rfc3339_parse(const char *s, int64_t *out);

/* Split a credential_process command line into a NULL-terminated argv
 * (POSIX shlex rules: whitespace separates, '...' is literal, "..." keeps
 * \\ \" \$ \` escapes, a backslash outside quotes escapes the next
 * character). Returns 0, -EINVAL (why: "unterminated quote", "empty
 * command"), -ENOMEM. Free with vd_argv_free. */
int vd_cmdline_split(const char *cmd, char ***argv, char *why, size_t whylen);
void vd_argv_free(char **argv);

enum vd_awscreds_kind {
    VD_AWSCREDS_KIND_PROCESS,
    VD_AWSCREDS_KIND_CONTAINER,
    VD_AWSCREDS_KIND_IMDS
};

struct vd_awscreds_provider;

/* Fetch credentials once from a source. Returns 0; -ENOENT when the source
 * is not there (container variables unset, IMDS unreachable, disabled or no
 * role attached: why says which, for the "tried" list); -EACCES/-EIO/-EINVAL
 * when it is configured but fails (err names the source); -ENOMEM. On 0,
 * *out is a new provider holding the credentials. profile and command are
 * used by KIND_PROCESS only. */
int vd_awscreds_provider_new(enum vd_awscreds_kind kind, const char *profile, const char *command,
                             struct vd_awscreds_provider **out, char *why, size_t whylen,
                             struct vd_error *err);
struct vd_awscreds_provider *vd_awscreds_provider_ref(struct vd_awscreds_provider *p);
void vd_awscreds_provider_unref(struct vd_awscreds_provider *p); /* NULL ok */

/* Current credentials (a new reference), refreshed first when less than
 * the refresh window (VD_AWS_REFRESH_SECS, default 300) remains. A failed
 * refresh keeps the old credentials while they are valid (and is tried
 * again at most every 30 s); once they have expired it returns -EIO with
 * why. */
int vd_awscreds_provider_get(struct vd_awscreds_provider *p, struct vd_awscreds **out, char *why,
                             size_t whylen);
/* The credentials held now (a new reference), without refreshing. */
struct vd_awscreds *vd_awscreds_provider_current(struct vd_awscreds_provider *p);
/* "process", "container" or "imds". */
const char *vd_awscreds_kind_name(enum vd_awscreds_kind kind);

#endif
