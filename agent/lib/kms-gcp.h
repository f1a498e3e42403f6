/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Google Cloud KMS provider (provider kind "gcp-kms"), on the HTTP core
 * (http.h).
 *
 * Protocol: Cloud KMS REST v1 (https://cloud.google.com/kms/docs/reference/rest):
 *   wrap       POST {endpoint}/v1/{key}:encrypt
 *   unwrap     POST {endpoint}/v1/{key}:decrypt
 *   key_state  GET  {endpoint}/v1/{key}          (CryptoKey, its "primary"
 *              CryptoKeyVersion and that version's "state")
 * where {key} is the key reference
 *   projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>
 * and {endpoint} https://cloudkms.googleapis.com unless overridden (a
 * regional endpoint https://cloudkms.<location>.rep.googleapis.com, a
 * private endpoint, tests).  Bodies are JSON with proto3 JSON mapping:
 * bytes as standard base64, int64 (the CRC32C fields) as decimal strings.
 *
 * Every encrypt and decrypt carries the KEK context (the whole
 * "lakecrypt:v2;volume=...;keyconfig=..." string) as
 * additionalAuthenticatedData, so Cloud KMS binds the blob to the volume.
 * Integrity ("Verifying end-to-end data integrity", Cloud KMS docs): the
 * request carries plaintextCrc32c / additionalAuthenticatedDataCrc32c /
 * ciphertextCrc32c (CRC32C, Castagnoli, RFC 3720 appendix B.4); the
 * encrypt reply must say verifiedPlaintextCrc32c and
 * verifiedAdditionalAuthenticatedDataCrc32c true and carry a
 * ciphertextCrc32c that matches the ciphertext; the decrypt reply a
 * plaintextCrc32c that matches the plaintext.  Any mismatch or missing
 * verification is TRANSIENT (Google: retry a limited number of times),
 * never accepted.  The encrypt reply's "name" (the CryptoKeyVersion used)
 * goes to lc_provider_reply.key_version.
 *
 * Access tokens (OAuth 2.0 bearer), "credentials" in the configuration:
 *   metadata         GET {metadata}/computeMetadata/v1/instance/
 *                    service-accounts/default/token with Metadata-Flavor:
 *                    Google ({metadata} default http://metadata.google.internal,
 *                    $GCE_METADATA_HOST honoured as the SDKs do);
 *   service-account  a service-account JSON key file (key_file, else
 *                    $GOOGLE_APPLICATION_CREDENTIALS): an RS256 JWT (RFC 7519,
 *                    RFC 7515; claims iss, scope, aud = LC_KMS_GCP_JWT_AUD,
 *                    iat, exp)
 *                    signed with its private key and exchanged at its
 *                    https token_uri with grant_type
 *                    urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523).
 *                    The file must be a regular file, owned by the agent's
 *                    user or root and not accessible by group or others;
 *   auto (default)   service-account if a key file is configured or
 *                    $GOOGLE_APPLICATION_CREDENTIALS is set, else metadata.
 * Tokens are cached in the shared bearer-token cache (oauth-token.h, as
 * Azure's) until LC_KMS_GCP_REFRESH_S before they expire (half their life
 * if shorter), timed on the monotonic clock; one fetch at a time; a 401
 * from Cloud KMS drops the token it came with (not one another call
 * already renewed), fetches a new one and retries once.
 * Tokens, JWTs, private keys and request bodies with key material live in
 * locked memory and are wiped; none is ever logged or put in an error.
 *
 * Errors: the google.rpc.Status of the reply ({"error": {"code", "status",
 * "message", "details": [...]}}), its google.rpc.ErrorInfo "reason" first:
 *   reason SERVICE_DISABLED, USER_PROJECT_DENIED, BILLING_DISABLED,
 *   CONSUMER_INVALID, ACCESS_TOKEN_SCOPE_INSUFFICIENT, API_KEY_* -> MISCONFIG
 *   reason RATE_LIMIT_EXCEEDED, RESOURCE_QUOTA_EXCEEDED -> TRANSIENT
 *   FAILED_PRECONDITION of Cloud KMS itself: no google.rpc.PreconditionFailure
 *   detail and the message ends "current state is: DISABLED|DESTROYED|
 *   DESTROY_SCHEDULED." (the version is not usable; Status has no
 *   structured field for it), PERMISSION_DENIED          -> DENIED
 *   FAILED_PRECONDITION with a google.rpc.PreconditionFailure: Cloud EKM
 *   (Cloud KMS "Cloud EKM errors" reference: violation[0] the EKM key's
 *   state, violation[1].type the error domain: external key manager
 *   unreachable, timed out, refused, the external key unavailable): a
 *   system outside Cloud KMS failed, an outage   -> TRANSIENT.  Cloud EKM
 *   disables the version itself when the external key is refused for
 *   good, and the key state then says so authoritatively.
 *   FAILED_PRECONDITION naming no such state     -> TRANSIENT (never a kill)
 *   NOT_FOUND naming the requested CryptoKey (google.rpc.ResourceInfo),
 *   through an endpoint that serves the key's location  -> DENIED
 *   NOT_FOUND otherwise (wrong project, location, key ring, or a regional
 *   endpoint of another location)                       -> MISCONFIG
 *   INVALID_ARGUMENT on decrypt (the AAD, i.e. the context, does not match,
 *   or the blob is not from this key)                   -> INVALID
 *   INVALID_ARGUMENT otherwise, UNAUTHENTICATED after one refresh, any
 *   other status                                        -> MISCONFIG
 *   UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, INTERNAL, ABORTED,
 *   HTTP 429, 408 and 5xx, connection, TLS, timeouts, a malformed,
 *   truncated or oversized reply, a CRC32C mismatch       -> TRANSIENT
 * Key state of a key name reads the CryptoKey's primary version; of a
 * version name ("<key>/cryptoKeyVersions/N", the cmk_version a volume's
 * header records from the encrypt reply's "name") it GETs that version
 * (cloudkms.cryptoKeyVersions.get): Cloud KMS decrypt takes no version,
 * so a blob made by an older version is refused when that version is
 * disabled while the primary stays enabled, and only the version's own
 * state shows it.
 * Version states: ENABLED -> enabled; DISABLED -> disabled; DESTROYED ->
 * destroyed; DESTROY_SCHEDULED -> pending_deletion (destroyTime as the
 * date); PENDING_GENERATION, PENDING_IMPORT -> TRANSIENT, any other state
 * or no primary version -> MISCONFIG, with reply state unknown: a state
 * lakecrypt does not know never revokes.
 */
#ifndef LC_KMS_GCP_H
#define LC_KMS_GCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lc-error.h"
#include "lc-types.h"
#include "provider.h"
#include "secmem.h"

#define LC_KMS_GCP_NAME			"gcp-kms"
#define LC_KMS_GCP_ENDPOINT		"https://cloudkms.googleapis.com"
#define LC_KMS_GCP_METADATA		"http://metadata.google.internal"
#define LC_KMS_GCP_SCOPE		"https://www.googleapis.com/auth/cloudkms"
/* The JWT audience Google's token endpoint requires, whatever token_uri
 * is (Google Identity, "Using OAuth 2.0 for Server to Server
 * Applications"; google-auth sends the same). */
#define LC_KMS_GCP_JWT_AUD		"https://oauth2.googleapis.com/token"
#define LC_KMS_GCP_MAX_RESPONSE		(64 * 1024)	/* bytes of a reply */
#define LC_KMS_GCP_MAX_PLAINTEXT	(64 * 1024)	/* Cloud KMS encrypt limit */
#define LC_KMS_GCP_MAX_BLOB		(66 * 1024)	/* plaintext + overhead, bytes */
#define LC_KMS_GCP_MAX_AAD		(64 * 1024)
#define LC_KMS_GCP_METADATA_TIMEOUT_MS	2000
#define LC_KMS_GCP_REFRESH_S		300		/* renew tokens this early */
#define LC_KMS_GCP_KEYFILE_MAX		(64 * 1024)	/* bytes of a key file */

/* ---- CRC32C -------------------------------------------------------------- */

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor
 * 0xFFFFFFFF) of @len bytes, as RFC 3720 section B.4 and Cloud KMS use it.
 * Continue a running value by passing the previous result as @crc (0 to
 * start). */
uint32_t lc_crc32c(uint32_t crc, const void *data, size_t len);

/* ---- key references ------------------------------------------------------- */

/* Split @ref, projects/P/locations/L/keyRings/R/cryptoKeys/K, each part
 * 1..63 characters of [A-Za-z0-9_-] (project ids also '.' and ':', as in
 * "example.com:p"), total below LC_PROVIDER_KEYID_MAX.  @location gets L
 * (may be NULL).  0 or -EINVAL. */
int lc_gcp_key_ref_check(const char *ref, char location[64]);

/* ---- replies (exposed for the fuzzer and unit tests) ---------------------- */

/* GET_VERSION: GET of one CryptoKeyVersion (its own "state"), for the key
 * state of a version name (below). */
enum lc_gcp_op { LC_GCP_ENCRYPT, LC_GCP_DECRYPT, LC_GCP_GET_KEY, LC_GCP_GET_VERSION };

/* @ref is "<key name>/cryptoKeyVersions/<1..20 digits>" with a key name
 * lc_gcp_key_ref_check() accepts: 0, else -EINVAL. */
int lc_gcp_version_ref_check(const char *ref);

struct lc_gcp_result {
	struct lc_buf blob;			/* encrypt: ciphertext (malloc'd) */
	struct lc_secret plaintext;		/* decrypt: plaintext (locked) */
	char key_version[LC_PROVIDER_VERSION_MAX]; /* version name, "" if none */
	char version_state[40];			/* get: primary.state as sent */
	enum lc_key_state state;		/* get */
	int64_t deletion_date;			/* get: primary.destroyTime, epoch s */
	bool unauthenticated;			/* HTTP 401: refresh the token */
};

/*
 * Read one reply of @op: HTTP @status and @len bytes of @body.  @key_ref
 * is the requested key; @endpoint_location the location a regional
 * endpoint serves ("" for the global endpoint: all).  For encrypt,
 * @sent_crc is unused; for decrypt the plaintext's CRC32C is checked
 * against plaintextCrc32c.  0 and @res filled, or a negative errno with
 * the class of the table above.  lc_gcp_result_free() in both cases.
 */
int lc_gcp_parse_response(enum lc_gcp_op op, long status, const char *body, size_t len,
			  const char *key_ref, const char *endpoint_location,
			  struct lc_gcp_result *res, struct lc_error *err);
void lc_gcp_result_free(struct lc_gcp_result *res);

/* ---- JWT (exposed for unit tests) ------------------------------------------ */

/*
 * The signed assertion of RFC 7523 for a service-account key: base64url
 * header {"alg":"RS256","typ":"JWT","kid":@kid} . claims {"iss":@iss,
 * "scope":@scope,"aud":@aud,"iat":@now,"exp":@now+3600} . RS256 signature
 * (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 section 3.3) with @pem_key
 * (PKCS#8 or PKCS#1 PEM, @pem_len bytes).  The result lands in @jwt (locked,
 * NUL-terminated).  0, -EINVAL (MISCONFIG: not an RSA private key),
 * -ENOMEM.  Strings must be JSON-safe (checked: -EINVAL).
 */
int lc_gcp_jwt_sign(const char *pem_key, size_t pem_len, const char *kid, const char *iss,
		    const char *scope, const char *aud, int64_t now, struct lc_secret *jwt,
		    struct lc_error *err);

/* ---- the provider ---------------------------------------------------------- */

struct lc_kms_gcp_config {
	const char *endpoint;		/* https://host[:port], NULL: LC_KMS_GCP_ENDPOINT */
	const char *ca_file;		/* PEM CA bundle, NULL: system CAs */
	const char *credentials;	/* "auto" (NULL), "metadata", "service-account" */
	const char *key_file;		/* service-account JSON key file */
	const char *metadata_endpoint;	/* NULL: $GCE_METADATA_HOST or LC_KMS_GCP_METADATA */
	uint64_t connect_timeout_ms;	/* 0: LC_HTTP_DEFAULT_CONNECT_MS */
	uint64_t metadata_timeout_ms;	/* per metadata request, 0: default */
};

struct lc_kms_gcp;

/* 0, -EINVAL (MISCONFIG: unknown credentials source, bad endpoint or CA
 * bundle, key file path not absolute), -ENOMEM.  Tokens are fetched at
 * the first call. */
int lc_kms_gcp_new(struct lc_kms_gcp **gcp, const struct lc_kms_gcp_config *cfg,
		   struct lc_error *err);
void lc_kms_gcp_free(struct lc_kms_gcp *gcp);

/* @p owns @gcp: lc_provider_close() frees it. */
void lc_kms_gcp_provider_init(struct lc_provider *p, struct lc_kms_gcp *gcp);
extern const struct lc_provider_ops lc_kms_gcp_ops;

/*
 * Identity (kms-gcp-ident.c; provider.h ops->identity): the service
 * account email of the credential in use, from the key file's
 * client_email or, for metadata credentials, GET
 * {metadata}/computeMetadata/v1/instance/service-accounts/default/email
 * (Metadata-Flavor: Google, the metadata timeout).  Checked here: @n
 * bytes of @s (trailing CR/LF dropped), 3..LC_GCP_EMAIL_MAX characters of
 * [0-9A-Za-z._+-] with exactly one '@' inside, copied to @out (@size
 * bytes).  0, or -EPROTO (TRANSIENT: an answer that names nobody).
 */
#define LC_GCP_EMAIL_MAX	254
int lc_gcp_email_check(const char *s, size_t n, char *out, size_t size, struct lc_error *err);

#endif /* LC_KMS_GCP_H */
