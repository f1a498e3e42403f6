/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Azure Key Vault / Managed HSM provider (provider kind "azure-kv"), on the
 * HTTP core (http.h).
 *
 * Protocol: Key Vault REST API, api-version 7.4 (LC_AZURE_API_VERSION),
 * as in the "Azure Key Vault REST API reference" (Keys: Get Key, Wrap Key,
 * Unwrap Key, Get Deleted Key) and the azure-keyvault-keys SDK:
 *   GET  {vault}/keys/{name}[/{version}]?api-version=7.4   key_state, wrap
 *   POST {kid}/wrapkey?api-version=7.4   {"alg":A,"value":b64url}  -> {"kid","value"}
 *   POST {kid}/unwrapkey?api-version=7.4 {"alg":A,"value":b64url}  -> {"kid","value"}
 *   GET  {vault}/deletedkeys/{name}?api-version=7.4           after a 404
 * Algorithms: RSA-OAEP-256 for RSA / RSA-HSM keys (vaults and Managed
 * HSM), A256KW (RFC 3394) for oct / oct-HSM keys (Managed HSM).  The key
 * type is read with a GET before each wrap (it also gives the current
 * version); unwrap takes algorithm and versioned kid from the blob.
 *
 * Key reference: https://VAULT.vault.azure.net/keys/NAME[/VERSION] or
 * https://HSM.managedhsm.azure.net/keys/NAME[/VERSION] (any https host is
 * accepted, for private endpoints and tests); NAME is 1-127 of
 * [0-9A-Za-z-], VERSION 1-64 of [0-9A-Za-z].  Without a version, wrap uses
 * the key's current version.
 *
 * Key Vault wrapkey takes no additional data, so lakecrypt binds the KEK
 * context itself.  What is sent to wrapkey ("bound plaintext"):
 *   offset 0   8  "LCAZctx1"          magic and version of this layout
 *          8  32  SHA-256 of the context string (no NUL)
 *         40   n  the plaintext (KEK); n is 8..LC_AZURE_MAX_PLAINTEXT, a
 *                 multiple of 8 (A256KW needs the whole to be one)
 * After unwrapkey, magic and hash are compared (the hash in constant time,
 * CRYPTO_memcmp): a mismatch is INVALID, "the encryption context did not
 * match".
 *
 * The opaque blob wrap returns (and the volume header stores):
 *   offset 0   4  "LCAZ"
 *          4   1  format version, 1
 *          5   1  algorithm: 1 RSA-OAEP-256, 2 A256KW
 *          6   2  K, big-endian: length of the versioned kid, 1..LC_AZURE_KID_MAX
 *          8   K  the versioned kid the vault answered wrapkey with (ASCII)
 *        8+K   2  W, big-endian: length of the wrapped bytes, 1..LC_AZURE_WRAPPED_MAX
 *       10+K   W  the wrapped bytes ("value" of the wrapkey answer)
 * and nothing after.  On unwrap the kid must be a version of the configured
 * key (same scheme, host and port, same key name, a version present): a
 * hostile header cannot send the agent to another vault or key (INVALID).
 * Unwrap always uses the blob's versioned kid, so blobs made before a new
 * key version keep working.  The reply's key_version is that versioned kid
 * (so the header's cmk_version records it), key_id the key without version.
 *
 * Tokens (Microsoft identity platform), cached per resource in the shared
 * token cache (oauth-token.h: monotonic clock) until 5 minutes before they
 * expire (LC_AZURE_REFRESH_S), fetched again once after a 401:
 *   managed-identity   IMDS: GET {imds}/metadata/identity/oauth2/token?
 *                      api-version=2018-02-01&resource=R[&client_id=ID] with
 *                      "Metadata: true" (plain http to the link-local or a
 *                      configured endpoint), bounded by imds_timeout_ms;
 *   client-secret      POST {authority}/{tenant}/oauth2/v2.0/token,
 *                      grant_type=client_credentials, scope=R/.default,
 *                      client_secret from a file (RFC 6749 section 4.4);
 *   client-certificate the same with client_assertion_type
 *                      urn:ietf:params:oauth:client-assertion-type:jwt-bearer
 *                      and client_assertion a JWT (RFC 7523) signed RS256
 *                      with the certificate's key, header x5t = base64url
 *                      SHA-1 of the DER certificate, claims aud (the token
 *                      URL), iss = sub = client id, jti, nbf, iat, exp (+10 min).
 * R is https://managedhsm.azure.net for hosts under managedhsm.azure.net,
 * else https://vault.azure.net (or the configured resource).  Secret and
 * certificate files must be regular files not readable or writable by
 * group or others.  Tokens, secrets and assertions are kept in locked
 * memory, wiped, and never logged or put in an error message.
 *
 * Errors (error.code and error.innererror.code of the answer, never the
 * message):
 *   403 KeyDisabled, ForbiddenByPolicy, ForbiddenByRbac, AccessDenied;
 *   404 KeyNotFound                               -> DENIED (authoritative)
 *   a GET showing enabled false                  -> wrap DENIED, key_state
 *                                                    disabled
 *   a GET showing exp past / nbf ahead by the vault's own clock (below)
 *                                                 -> wrap MISCONFIG (Key Vault
 *                                                    refuses wrapKey), key_state
 *                                                    still enabled
 *   404 KeyNotFound and the key in /deletedkeys   -> key_state pending_deletion
 *   429 (Retry-After passed to provider.c as a delay hint, capped at
 *   LC_AZURE_RETRY_AFTER_MAX_MS), 408, 5xx, connection, TLS, malformed,
 *   truncated or oversized answers, token endpoint 429/5xx, IMDS
 *   404/410/429/5xx                               -> TRANSIENT
 *   400 BadParameter and other 4xx, 401 after one token refresh, 403 or 404
 *   with another code (firewall, proxy, wrong path), token endpoint 400/401
 *                                                 -> MISCONFIG: never a kill
 *   context mismatch, blob not of the format above, kid of another key
 *                                                 -> INVALID
 */
/*
 * Clocks.  Key Vault keeps attributes.exp and nbf (epoch s), and by its
 * documentation (learn.microsoft.com/azure/key-vault/keys/about-keys-details,
 * "Date-time controlled operations") a key outside its nbf..exp window is
 * refused for encrypt, wrapKey and sign (403) but still serves decrypt,
 * unwrapKey and verify.  So an expired key still opens every volume: the
 * window never makes key_state "disabled" (which arms the kill switch) —
 * only attributes.enabled false, a 403 KeyDisabled, or KeyNotFound do,
 * answers of the vault that do not depend on any clock.  The window is
 * judged only to refuse a wrap early with a clear message, and then against
 * the vault's own clock (the HTTP Date header of the Get Key answer, RFC
 * 9110 section 6.6.1) with LC_AZURE_WINDOW_SLACK_S of slack, never against
 * the host's clock, which may be hours off (lost NTP, a resumed VM).
 * Without a Date header the wrap is sent and the vault decides.
 */
#ifndef LC_KMS_AZURE_H
#define LC_KMS_AZURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lc-error.h"
#include "lc-types.h"
#include "provider.h"
#include "secmem.h"

#define LC_KMS_AZURE_NAME		"azure-kv"
#define LC_AZURE_API_VERSION		"7.4"
#define LC_AZURE_MAX_RESPONSE		(64 * 1024)	/* bytes of a vault or token answer */
#define LC_AZURE_MAX_PLAINTEXT		128		/* bytes of a KEK to wrap */
#define LC_AZURE_BIND_HDR		40		/* magic + SHA-256 */
#define LC_AZURE_KID_MAX		255		/* bytes of a versioned kid */
#define LC_AZURE_WRAPPED_MAX		1024		/* bytes: RSA-8192 ciphertext */
#define LC_AZURE_BLOB_MAX		(10 + LC_AZURE_KID_MAX + LC_AZURE_WRAPPED_MAX)
#define LC_AZURE_TOKEN_MAX		16384		/* bytes of an access token */
#define LC_AZURE_REFRESH_S		300
#define LC_AZURE_WINDOW_SLACK_S		60		/* s: exp/nbf against the vault's Date */
#define LC_AZURE_RETRY_AFTER_MAX_MS	60000
#define LC_AZURE_IMDS_TIMEOUT_MS	2000

enum lc_azure_alg { LC_AZURE_ALG_NONE = 0, LC_AZURE_RSA_OAEP_256 = 1, LC_AZURE_A256KW = 2 };

/* ---- key references and blobs (exposed for unit tests and the fuzzer) ---- */

struct lc_azure_keyref {
	char base[300];		/* https://host[:port] */
	char host[260];		/* host[:port], lower case */
	char name[128];
	char version[65];	/* "" if none */
	bool hsm;		/* host under managedhsm.azure.net / .cn / .us */
};

/* Parse a key URL https://host[:port]/keys/NAME[/VERSION][/].  0, or
 * -EINVAL with a MISCONFIG message saying what is wrong. */
int lc_azure_keyref_parse(const char *ref, struct lc_azure_keyref *k, struct lc_error *err);

/*
 * The principal an access token names (kms-azure-ident.c): @len bytes of
 * the bare JWT @token (RFC 7519); its payload (at most 16 KiB of
 * base64url) must be one JSON object with string claims "oid" and "tid"
 * (1..64 of [0-9A-Za-z-], Microsoft identity platform access token
 * claims), giving "oid=<oid>;tid=<tid>" in @out (@size bytes).  0, or
 * -EPROTO (TRANSIENT: a token that names nobody) / -ENOMEM.  The token's
 * signature is not checked (it is read, not trusted for access).
 * The provider's identity operation (provider.h) is this on the token
 * it holds for @key_ref's resource (fetched first if none).
 */
int lc_azure_token_principal(const char *token, size_t len, char *out, size_t size,
			     struct lc_error *err);

/* Build the blob above from @alg, @kid and @wrapped (@wlen bytes): 0,
 * -EINVAL (out of bounds), -ENOMEM.  @blob->p is malloc'd. */
int lc_azure_blob_build(enum lc_azure_alg alg, const char *kid, const uint8_t *wrapped,
			size_t wlen, struct lc_buf *blob);
/* Read a blob: 0 with @alg, @kid (NUL-terminated) and @wrapped/@wlen
 * pointing into @blob; -EBADMSG with an INVALID message otherwise. */
int lc_azure_blob_parse(const uint8_t *blob, size_t len, enum lc_azure_alg *alg,
			char kid[LC_AZURE_KID_MAX + 1], const uint8_t **wrapped, size_t *wlen,
			struct lc_error *err);

/* ---- answers (exposed for the fuzzer and unit tests) ------------------- */

enum lc_azure_op {
	LC_AZURE_GET_KEY,	/* GET keys/NAME[/VERSION] */
	LC_AZURE_DELETED_KEY,	/* GET deletedkeys/NAME */
	LC_AZURE_WRAP,
	LC_AZURE_UNWRAP,
	LC_AZURE_TOKEN,		/* IMDS or token endpoint */
};

struct lc_azure_result {
	char kid[LC_AZURE_KID_MAX + 1];		/* key.kid or kid */
	char kty[16];				/* GET: key.kty */
	enum lc_azure_alg alg;			/* GET: algorithm for this key type */
	enum lc_key_state state;		/* GET / deleted key */
	int64_t deletion_date;			/* deleted key: scheduledPurgeDate, epoch s */
	char state_why[96];			/* why not enabled, for messages */
	struct lc_buf value;			/* wrap: wrapped bytes (malloc'd) */
	struct lc_secret secret;		/* unwrap: bytes (<= LC_AZURE_WRAPPED_MAX);
						 * token: the Authorization header + NUL */
	int64_t expires_at;			/* token: epoch s */
	uint64_t retry_after_ms;		/* 429/503 Retry-After, capped */
	bool can_wrap, can_unwrap;		/* GET: key_ops allow (or none listed) */
	bool unauthorized;			/* HTTP 401 */
	bool not_found;				/* 404 KeyNotFound */
	int64_t exp, nbf;			/* GET: attributes.exp / nbf, epoch s (0: none) */
	int64_t server_now;			/* the answer's Date header, epoch s (0: none);
						 * set by the provider, not by the parser */
};

/*
 * Read one answer of @op: HTTP @status, @len bytes of @body, the
 * Retry-After header value (may be NULL), the wall clock @now (epoch s)
 * for exp/nbf and token lifetimes, @imds: a token answer from IMDS (its
 * 404/410 are passing).  0 and @res filled, or a negative errno and the
 * class above.  lc_azure_result_free() in both cases.
 */
int lc_azure_parse_response(enum lc_azure_op op, long status, const char *body, size_t len,
			    const char *retry_after, int64_t now, bool imds,
			    struct lc_azure_result *res, struct lc_error *err);
void lc_azure_result_free(struct lc_azure_result *res);

/*
 * Is a key's validity window (@res->nbf, @res->exp, epoch s) closed at
 * @server_now, the vault's own clock (the Date header of the same answer)?
 * false when @server_now is 0 (no Date: nothing is judged) or the window
 * is open within LC_AZURE_WINDOW_SLACK_S seconds; true with a reason in
 * @why (@size bytes).  The host's clock is never used: see "Clocks" above.
 */
bool lc_azure_window_closed(const struct lc_azure_result *res, int64_t server_now, char *why,
			    size_t size);

/* ---- the provider ------------------------------------------------------ */

struct lc_kms_azure_config {
	const char *credentials;	/* "managed-identity" (NULL), "client-secret",
					 * "client-certificate" */
	const char *tenant_id;		/* client-*: directory (tenant) id */
	const char *client_id;		/* client-*: application id; managed identity:
					 * user-assigned identity's client id (optional) */
	const char *client_secret_file;	/* client-secret: file holding the secret */
	const char *client_certificate_file;	/* client-certificate: PEM key + certificate */
	const char *authority;		/* NULL: https://login.microsoftonline.com */
	const char *imds_endpoint;	/* NULL: http://169.254.169.254 */
	const char *resource;		/* NULL: from the key's host */
	const char *ca_file;		/* PEM CA bundle, NULL: system CAs */
	uint64_t connect_timeout_ms;	/* 0: LC_HTTP_DEFAULT_CONNECT_MS */
	uint64_t imds_timeout_ms;	/* per IMDS request, 0: LC_AZURE_IMDS_TIMEOUT_MS */
};

struct lc_kms_azure;

/* 0, -EINVAL (MISCONFIG: unknown credentials kind, missing tenant or
 * client id, bad URL, unreadable or too open secret file, certificate
 * without key), -ENOMEM.  Secret files are read here; tokens at the first
 * call. */
int lc_kms_azure_new(struct lc_kms_azure **az, const struct lc_kms_azure_config *cfg,
		     struct lc_error *err);
void lc_kms_azure_free(struct lc_kms_azure *az);

/* @p owns @az: lc_provider_close() frees it. */
void lc_kms_azure_provider_init(struct lc_provider *p, struct lc_kms_azure *az);
extern const struct lc_provider_ops lc_kms_azure_ops;

#endif /* LC_KMS_AZURE_H */
