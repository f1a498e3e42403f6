/* SPDX-License-Identifier: GPL-2.0 */
/*
 * AWS KMS provider (provider kind "aws-kms"), on the HTTP core (http.h).
 *
 * Protocol: AWS KMS JSON 1.1 (POST / with Content-Type
 * application/x-amz-json-1.1 and X-Amz-Target TrentService.<Operation>),
 * as in the AWS KMS API Reference and botocore's kms/2014-11-01 service
 * model.  Operations used: Encrypt (wrap), Decrypt with KeyId (unwrap),
 * DescribeKey (key_state).  Every Encrypt and Decrypt carries the KEK
 * context as EncryptionContext, split into {"lakecrypt:volume": uuid,
 * "lakecrypt:workspace": w, "lakecrypt:project": p, "lakecrypt:keyconfig":
 * k} (lc_kek_context_split), so CloudTrail shows them and KMS enforces them.
 * Requests are signed with AWS Signature Version 4 in the Authorization
 * header (AWS General Reference, "Signature Version 4 signing process").
 *
 * Key reference: a key ARN arn:<partition>:kms:<region>:<account>:key/<id>
 * (aliases are refused: one can be repointed to another key or deleted,
 * and the watcher must follow the CMK itself), whose region picks the endpoint
 * https://kms.<region>.amazonaws.com (amazonaws.com.cn in aws-cn); a bare
 * key id needs a configured region.  An endpoint override (FIPS,
 * VPC endpoint, tests) replaces the URL, not the signing region; with a
 * configured region, an ARN of another region is MISCONFIG before any
 * request (that endpoint cannot hold the key).  key_state of a bare key
 * id returns DescribeKey's KeyMetadata.Arn in reply->bound_ref (a key ARN
 * of the region asked, for that id), which keyconfig create stores.
 *
 * Credentials, as the AWS SDKs look for them ("auto"), first found wins:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *      AWS_SESSION_TOKEN (optional);
 *   2. shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)
 *      section [<profile>], then AWS_CONFIG_FILE (~/.aws/config) section
 *      [profile <profile>] ([default] for default); profile from the
 *      configuration, else AWS_PROFILE, else "default";
 *   3. web identity: AssumeRoleWithWebIdentity at STS with the token of
 *      $AWS_WEB_IDENTITY_TOKEN_FILE for $AWS_ROLE_ARN (session name
 *      $AWS_ROLE_SESSION_NAME); STS at $AWS_ENDPOINT_URL_STS or
 *      https://sts.<region>.amazonaws.com, over the KMS client's TLS;
 *   4. container credentials (ECS task role, EKS Pod Identity): GET
 *      $AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to loopback or
 *      the ECS/EKS agent addresses) or http://169.254.170.2 +
 *      $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, Authorization from
 *      $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN; bounded as 5.;
 *   5. EC2 instance metadata, IMDSv2: PUT /latest/api/token, then GET
 *      /latest/meta-data/iam/security-credentials/[<role>] with the token;
 *      every request with connect and total timeouts, so an endpoint that
 *      accepts and never answers costs at most imds_timeout_ms per request.
 * Temporary credentials are cached and fetched again 5 minutes before
 * they expire, or after ExpiredTokenException.
 * Secrets (secret key, session token, request bodies with key material,
 * Decrypt answers) live in locked memory and are wiped; none is logged.
 *
 * Errors (AWS "__type" of a 4xx answer; status alone for 5xx):
 *   DisabledException, AccessDeniedException, NotFoundException for a
 *   key ARN of the endpoint's region           -> DENIED
 *   NotFoundException for an ARN of another region than the endpoint's,
 *   or for a bare key id (it names no region: a region or endpoint
 *   change cannot be told from a deleted key)  -> MISCONFIG
 *   InvalidCiphertextException                 -> INVALID ("the encryption
 *                                                 context did not match ...")
 *   IncorrectKeyException (a blob made under another key: a foreign or
 *   tampered header must not revoke the CMK's volumes) -> INVALID
 *   KMSInvalidStateException (also a disconnected custom key store: the
 *   key state from DescribeKey decides)        -> TRANSIENT
 *   ThrottlingException (HTTP 400), LimitExceededException,
 *   KMSInternalException, DependencyTimeoutException,
 *   KeyUnavailableException, ExpiredTokenException, 5xx, connection, TLS,
 *   a malformed, truncated or oversized answer -> TRANSIENT
 *   anything else (credentials rejected, validation, unknown type)
 *                                              -> MISCONFIG: never a kill.
 * DescribeKey KeyState: Enabled -> enabled; Disabled, PendingImport,
 * Unavailable -> disabled; PendingDeletion, PendingReplicaDeletion ->
 * pending_deletion; Creating, Updating -> TRANSIENT; any other -> MISCONFIG
 * (a state lakecrypt does not know never revokes).
 */
#ifndef LC_KMS_AWS_H
#define LC_KMS_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lc-error.h"
#include "lc-types.h"
#include "provider.h"
#include "secmem.h"

#define LC_KMS_AWS_NAME			"aws-kms"
#define LC_KMS_AWS_MAX_RESPONSE		(64 * 1024)	/* bytes of a KMS answer */
#define LC_KMS_AWS_MAX_PLAINTEXT	4096		/* KMS Encrypt limit */
#define LC_KMS_AWS_MAX_BLOB		6144		/* CiphertextBlob limit */
#define LC_KMS_AWS_IMDS_TIMEOUT_MS	2000
#define LC_KMS_AWS_REFRESH_S		300		/* renew credentials this early */
#define LC_AWS_REGION_MAX		32

/* ---- SigV4 ------------------------------------------------------------ */

struct lc_sigv4_header {
	const char *name;
	const char *value;
};

struct lc_sigv4_request {
	const char *method;			/* "POST" */
	const char *path;			/* as on the wire, before '?' */
	const char *query;			/* after '?', NULL if none */
	const struct lc_sigv4_header *headers;	/* Host included; not X-Amz-Date */
	size_t nheaders;
	const void *body;
	size_t body_len;
	bool normalize_path;			/* remove dot segments, merge '/' */
	bool sign_body;				/* add x-amz-content-sha256 */
	bool omit_session_token;		/* token sent but not signed */
};

struct lc_sigv4_creds {
	const char *access_key_id;
	const char *secret_key;			/* in locked memory */
	const char *session_token;		/* NULL if none */
};

struct lc_sigv4_result {
	char amz_date[17];			/* YYYYMMDDTHHMMSSZ */
	char payload_hash[65];			/* hex SHA-256 of the body */
	char signature[65];			/* hex */
	char *canonical_request;		/* malloc'd */
	char *string_to_sign;			/* malloc'd */
	char *authorization;			/* malloc'd: the header's value */
};

/*
 * Sign @req at time @when for @region/@service: the canonical request,
 * string to sign, signature and Authorization value of SigV4 (header
 * form).  0, -ENOMEM, -EINVAL (bad escape in the query).  The derived
 * signing keys are wiped.  Free with lc_sigv4_result_free().
 */
int lc_sigv4_sign(const struct lc_sigv4_request *req, const struct lc_sigv4_creds *creds,
		  const char *region, const char *service, time_t when,
		  struct lc_sigv4_result *res);
void lc_sigv4_result_free(struct lc_sigv4_result *res);

/* ---- key references ----------------------------------------------------- */

/* Region of a KMS ARN (arn:<partition>:kms:<region>:<account>:key/...|alias/...);
 * -EINVAL if @ref is not a KMS ARN.  @partition (may be NULL) gets "aws", ... */
int lc_aws_arn_region(const char *ref, char region[LC_AWS_REGION_MAX],
		      char partition[LC_AWS_REGION_MAX]);

/* ---- responses (exposed for the fuzzer and unit tests) ------------------ */

enum lc_aws_op { LC_AWS_ENCRYPT, LC_AWS_DECRYPT, LC_AWS_DESCRIBE_KEY };

struct lc_aws_result {
	struct lc_buf blob;			/* Encrypt: CiphertextBlob (malloc'd) */
	struct lc_secret plaintext;		/* Decrypt: Plaintext (locked) */
	char key_id[LC_PROVIDER_KEYID_MAX];	/* KeyId / KeyMetadata.Arn */
	enum lc_key_state state;		/* DescribeKey */
	int64_t deletion_date;			/* DescribeKey, epoch s */
	char aws_state[32];			/* KeyState as AWS says it */
	bool expired_token;			/* ExpiredTokenException */
};

/*
 * Read one answer of @op: HTTP @status and @len bytes of @body.
 * @key_region: region of the requested key ("" for a bare key id: then
 * NotFoundException is MISCONFIG),
 * @endpoint_region: region the endpoint serves (for NotFoundException).
 * 0 and @res filled, or a negative errno and the class above.
 * lc_aws_result_free() in both cases.
 */
int lc_aws_parse_response(enum lc_aws_op op, long status, const char *body, size_t len,
			  const char *key_region, const char *endpoint_region,
			  struct lc_aws_result *res, struct lc_error *err);
void lc_aws_result_free(struct lc_aws_result *res);

/*
 * STS GetCallerIdentity (kms-aws-sts.c; AWS STS API Reference), the
 * provider's identity operation: read one answer, HTTP @status and @len
 * bytes of NUL-terminated @body.  0 and the principal ARN in @arn (@size
 * bytes, < LC_PROVIDER_IDENTITY_MAX), or a negative errno: an error
 * answer (403 AccessDenied -> DENIED; 429, 5xx, Throttling -> TRANSIENT;
 * any other -> MISCONFIG), a 200 that is not one GetCallerIdentityResult
 * with exactly one Arn of an IAM/STS principal
 * (arn:<partition>:iam|sts::<12 digits>:<resource>, printable ASCII) whose
 * Account, if given, is the ARN's, or an Arn that does not fit
 * -> TRANSIENT (never DENIED: a broken answer names nobody).
 */
int lc_aws_parse_caller_identity(long status, const char *body, size_t len, char *arn,
				 size_t size, struct lc_error *err);
/* Do principal ARNs @bound and @now name the same principal?  An assumed
 * role (arn:<p>:sts::<acct>:assumed-role/<role>/<session>) is compared on
 * the role: its session name changes with every session. */
bool lc_aws_principal_match(const char *bound, const char *now);

/* ---- the provider ------------------------------------------------------ */

struct lc_kms_aws_config {
	const char *endpoint;		/* https://host[:port] override, NULL: from region */
	const char *region;		/* for key ids without ARN / the endpoint's region */
	const char *ca_file;		/* PEM CA bundle, NULL: system CAs */
	const char *credentials;	/* "auto" (NULL), "env", "profile", "web-identity",
					 * "container", "imds" */
	const char *profile;		/* NULL: $AWS_PROFILE or "default" */
	const char *imds_endpoint;	/* NULL: $AWS_EC2_METADATA_SERVICE_ENDPOINT or
					 * http://169.254.169.254 */
	uint64_t connect_timeout_ms;	/* 0: LC_HTTP_DEFAULT_CONNECT_MS */
	uint64_t imds_timeout_ms;	/* per metadata request, 0: default */
	const char *sts_endpoint;	/* https://host[:port][/path] for GetCallerIdentity,
					 * NULL: $AWS_ENDPOINT_URL_STS, else
					 * https://sts.<key's region>.amazonaws.com */
};

struct lc_kms_aws;

/* 0, -EINVAL (MISCONFIG: unknown credentials source, bad endpoint or CA
 * bundle), -ENOMEM.  Credentials are looked up at the first call. */
int lc_kms_aws_new(struct lc_kms_aws **aws, const struct lc_kms_aws_config *cfg,
		   struct lc_error *err);
void lc_kms_aws_free(struct lc_kms_aws *aws);

/* @p owns @aws: lc_provider_close() frees it. */
void lc_kms_aws_provider_init(struct lc_provider *p, struct lc_kms_aws *aws);
extern const struct lc_provider_ops lc_kms_aws_ops;

/*
 * The identity operation (provider.h ops->identity): sts:GetCallerIdentity,
 * a POST of "Action=GetCallerIdentity&Version=2011-06-15", signed with
 * SigV4 for service "sts" in the signing region of @key_ref (as its KMS
 * calls), with the same credentials and TLS settings, at the STS endpoint
 * above; the answer read by lc_aws_parse_caller_identity().  Any
 * principal may call it (no IAM permission is needed).
 */

/* For tests: fixed clock for signing (0: real time). */
void lc_kms_aws_set_time(struct lc_kms_aws *aws, time_t when);

#endif /* LC_KMS_AWS_H */
