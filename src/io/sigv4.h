/*
 * AWS Signature Version 4 (header-based), our own code on OpenSSL
 * HMAC/SHA-256. Spec: AWS General Reference, "Signature Version 4 signing
 * process" (create a canonical request, a string to sign, a signature),
 * with the S3 rules: the path is URI-encoded once and never normalised.
 *
 * The signer does no I/O and keeps no state; the caller decides which
 * headers are sent and passes every one it wants signed (S3 callers pass
 * host, x-amz-date, x-amz-content-sha256, and x-amz-security-token when
 * the credentials carry a session token).
 */
#ifndef VD_IO_SIGV4_H
#define VD_IO_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VD_SHA256_HEX_LEN 64
/* SHA-256 of the empty string, the payload hash of GET/HEAD/DELETE. */
#define VD_SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct vd_sigv4_header {
    const char *name;  /* any case; lowered for signing */
    const char *value; /* trimmed and space-collapsed for signing */
};

struct vd_sigv4_request {
    const char *method; /* "GET" */
    const char *path;   /* decoded path ("/bucket/my key"); encoded once by the signer */
    const char *query;  /* query string without '?', raw or %-encoded; NULL = none */
    const struct vd_sigv4_header *headers;
    size_t nheaders;
    const char *payload_hash; /* lowercase hex SHA-256, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;     /* "20150830T123600Z" */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "s3" */
    const char *access_key;
    const char *secret_key;
};

/* Results; every string is malloc'ed and owned by the struct. */
struct vd_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char signature[VD_SHA256_HEX_LEN + 1];
    char *authorization; /* value of the Authorization header */
};

/* Sign a request. Returns 0, -ENOMEM, or -EINVAL for a malformed request
 * (missing field, bad %-escape in the query). */
int vd_sigv4_sign(const struct vd_sigv4_request *req, struct vd_sigv4_result *out);
void vd_sigv4_result_free(struct vd_sigv4_result *r);

/* Append s[0..len) to out, %-encoding every byte except RFC 3986 unreserved
 * (A-Z a-z 0-9 - . _ ~) and, when keep_slash, '/'. Uppercase hex. out must
 * have room for 3*len+1 bytes. Returns the encoded length. */
size_t vd_uri_encode(const char *s, size_t len, bool keep_slash, char *out);
/* Malloc'ed encoding of a NUL-terminated string (NULL on ENOMEM). */
char *vd_uri_encode_dup(const char *s, bool keep_slash);

/* Lowercase hex SHA-256 of buf into out (65 bytes). */
void vd_sha256_hex(const void *buf, size_t len, char out[VD_SHA256_HEX_LEN + 1]);

/* Format t (seconds since the epoch, UTC) as "YYYYMMDDTHHMMSSZ" (17 bytes). */
void vd_amz_date(int64_t t, char out[17]);

#endif
