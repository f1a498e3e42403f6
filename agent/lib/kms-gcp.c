// SPDX-License-Identifier: GPL-2.0
/*
 * Google Cloud KMS provider (see kms-gcp.h): CRC32C, key references, the
 * encrypt / decrypt / get requests and the reading of their replies,
 * OAuth 2.0 access tokens from the metadata server or a service-account
 * key (RS256 JWT).  One attempt per call (plus one after a 401 with a
 * fresh token); provider.c retries.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "envelope.h"
#include "http.h"
#include "kms-gcp.h"
#include "oauth-token.h"

/* ---- CRC32C (RFC 3720 section B.4) ------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t lc_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- string builder ------------------------------------------------------ */

/* Add to @err's message, keeping code and class. */
static void __attribute__((format(printf, 2, 3))) err_append(struct lc_error *err, const char *fmt, ...)
{
	size_t l;
	va_list ap;

	if (!err)
		return;
	l = strnlen(err->msg, sizeof(err->msg));
	if (l + 1 >= sizeof(err->msg))
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg + l, sizeof(err->msg) - l, fmt, ap);
	va_end(ap);
}

/* ---- key references ------------------------------------------------------ */

static bool seg_ok(const char *s, size_t n, bool project)
{
	if (n < 1 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '-' && c != '_' && !(project && (c == '.' || c == ':')))
			return false;
	}
	return true;
}

int lc_gcp_key_ref_check(const char *ref, char location[64])
{
	static const char *const lit[] = { "projects", "locations", "keyRings", "cryptoKeys" };
	const char *p = ref;

	if (location)
		location[0] = 0;
	if (!ref || strlen(ref) >= LC_PROVIDER_KEYID_MAX)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		size_t l = strlen(lit[i]), n;

		if (strncmp(p, lit[i], l) || p[l] != '/')
			return -EINVAL;
		p += l + 1;
		n = strcspn(p, "/");
		if (!seg_ok(p, n, i == 0))
			return -EINVAL;
		if (i == 1 && location) {
			memcpy(location, p, n);
			location[n] = 0;
		}
		p += n;
		if (i < 3) {
			if (*p != '/')
				return -EINVAL;
			p++;
		}
	}
	return *p ? -EINVAL : 0;
}

/* ---- replies ------------------------------------------------------------ */

void lc_gcp_result_free(struct lc_gcp_result *res)
{
	if (!res)
		return;
	free(res->blob.p);
	lc_secret_free(&res->plaintext);
	memset(res, 0, sizeof(*res));
}

static const char *op_name(enum lc_gcp_op op)
{
	return op == LC_GCP_ENCRYPT ? "encrypt" : op == LC_GCP_DECRYPT ? "decrypt" :
	       op == LC_GCP_GET_VERSION ? "get version" : "get";
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t l = strlen(s), m = strlen(suffix);

	return l >= m && !strcmp(s + l - m, suffix);
}

/* What details[] says: google.rpc.ErrorInfo and google.rpc.ResourceInfo. */
struct rpc_details {
	char reason[64];
	char service[64];
	char consumer[96];
	char resource[LC_PROVIDER_KEYID_MAX];
	bool have_resource;
	/* google.rpc.PreconditionFailure: Cloud EKM's (ekm_errors reference:
	 * violation[0] the EKM key's state, violation[1].type the "error
	 * domain" of the call to the external key manager). */
	bool have_precondition;
	char domain[64];		/* the last violation's type */
};

static void read_details(json_object *e, struct rpc_details *d)
{
	json_object *arr, *md;

	memset(d, 0, sizeof(*d));
	if (!json_object_object_get_ex(e, "details", &arr) || !json_object_is_type(arr, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(arr) && i < 16; i++) {
		json_object *x = json_object_array_get_idx(arr, i);
		const char *t = lc_json_str(x, "@type");

		if (!t)
			continue;
		if (ends_with(t, "/google.rpc.ErrorInfo") && !d->reason[0]) {
			lc_copy_printable(d->reason, sizeof(d->reason), lc_json_str(x, "reason"));
			if (json_object_object_get_ex(x, "metadata", &md) &&
			    json_object_is_type(md, json_type_object)) {
				lc_copy_printable(d->service, sizeof(d->service), lc_json_str(md, "service"));
				lc_copy_printable(d->consumer, sizeof(d->consumer), lc_json_str(md, "consumer"));
			}
		} else if (ends_with(t, "/google.rpc.PreconditionFailure") && !d->have_precondition) {
			json_object *v;

			d->have_precondition = true;
			if (json_object_object_get_ex(x, "violations", &v) &&
			    json_object_is_type(v, json_type_array))
				for (size_t j = 0; j < json_object_array_length(v) && j < 8; j++)
					lc_copy_printable(d->domain, sizeof(d->domain),
							  lc_json_str(json_object_array_get_idx(v, j), "type"));
		} else if (ends_with(t, "/google.rpc.ResourceInfo") && !d->have_resource) {
			const char *n = lc_json_str(x, "resourceName");

			if (n) {
				lc_copy_printable(d->resource, sizeof(d->resource), n);
				d->have_resource = true;
			}
		}
	}
}

/* A FAILED_PRECONDITION message of Cloud KMS about a version's state:
 * "... is not enabled, current state is: DISABLED." (or DESTROYED,
 * DESTROY_SCHEDULED).  google.rpc.Status carries no structured detail for
 * it, so the state named at the end is read, and only these three count. */
static bool precondition_state(const char *msg)
{
	static const char *const states[] = { "DISABLED", "DESTROYED", "DESTROY_SCHEDULED", NULL };
	const char *p = strstr(msg, "current state is: ");
	size_t n;

	if (!p)
		return false;
	p += 18;
	for (int i = 0; states[i]; i++) {
		n = strlen(states[i]);
		if (!strncmp(p, states[i], n) && (p[n] == '\0' || p[n] == '.'))
			return true;
	}
	return false;
}

static bool reason_is(const char *r, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(r, list[i]))
			return true;
	return false;
}

static int error_reply(enum lc_gcp_op op, long status, json_object *o, const char *key_ref,
		       const char *endpoint_location, struct lc_gcp_result *res,
		       struct lc_error *err)
{
	static const char *const misconfig_reasons[] = { "SERVICE_DISABLED", "USER_PROJECT_DENIED",
		"BILLING_DISABLED", "CONSUMER_INVALID", "CONSUMER_SUSPENDED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
		"ACCESS_TOKEN_TYPE_UNSUPPORTED", "API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED",
		"API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED", "SERVICE_DISABLED_BY_ORG_POLICY",
		"LOCATION_POLICY_VIOLATED", "ORG_RESTRICTION_VIOLATION", "SECURITY_POLICY_VIOLATED", NULL };
	static const char *const transient_reasons[] = { "RATE_LIMIT_EXCEEDED", "RESOURCE_QUOTA_EXCEEDED",
		"RESOURCE_PROJECT_INVALID_TEMPORARILY", NULL };
	static const char *const transient_status[] = { "UNAVAILABLE", "RESOURCE_EXHAUSTED",
		"DEADLINE_EXCEEDED", "INTERNAL", "ABORTED", "CANCELLED", NULL };
	const char *what = op_name(op);
	json_object *e = NULL;
	struct rpc_details d;
	char st[40] = "", msg[160] = "", loc[64] = "";
	bool version_unusable = false;
	const char *m;

	if (o && json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_object)) {
		lc_copy_printable(st, sizeof(st), lc_json_str(e, "status"));
		m = lc_json_str(e, "message");
		/* read whole: a long key name would push the state out of msg */
		version_unusable = m && precondition_state(m);
		lc_copy_printable(msg, sizeof(msg), m);
		/* The message goes to logs: never one that echoes a credential
		 * (an access token, a JWT, a key) back. */
		lc_http_msg_scrub(msg, sizeof(msg));
		read_details(e, &d);
	} else {
		e = NULL;
		memset(&d, 0, sizeof(d));
	}
#define MSGTAIL msg[0] ? ": " : "", msg
	if (status == 401) {
		res->unauthenticated = true;
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
			      "Cloud KMS %s: HTTP 401 %s: the access token was not accepted (credentials rejected)%s%s",
			      what, st[0] ? st : "UNAUTHENTICATED", MSGTAIL);
	}
	/* An outage is never a revocation nor a configuration error, whatever
	 * the body of a 5xx says. */
	if (status == 429 || status == 408 || status >= 500)
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "Cloud KMS %s: HTTP %ld%s%s%s%s", what,
			      status, st[0] ? " " : "", st, MSGTAIL);
	if (d.reason[0] && reason_is(d.reason, misconfig_reasons)) {
		const char *why = !strcmp(d.reason, "SERVICE_DISABLED") ?
			"the Cloud KMS API is not enabled in the project (enable cloudkms.googleapis.com)" :
			!strcmp(d.reason, "USER_PROJECT_DENIED") ?
			"the caller may not use the quota/billing project" :
			!strcmp(d.reason, "BILLING_DISABLED") ? "billing is disabled for the project" :
			!strncmp(d.reason, "ACCESS_TOKEN_", 13) ?
			"the access token lacks the cloudkms (or cloud-platform) scope" :
			!strcmp(d.reason, "SECURITY_POLICY_VIOLATED") ?
			"a VPC Service Controls perimeter refused the request (a network or organisation policy, not the key's owner)" :
			"the project or credentials are not usable for Cloud KMS";

		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "Cloud KMS %s: %s %s: %s%s%s%s%s%s", what,
			      st[0] ? st : "error", d.reason, why, d.consumer[0] ? " [" : "", d.consumer,
			      d.consumer[0] ? "]" : "", MSGTAIL);
	}
	if (d.reason[0] && reason_is(d.reason, transient_reasons))
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "Cloud KMS %s: %s %s (HTTP %ld)%s%s", what,
			      st[0] ? st : "error", d.reason, status, MSGTAIL);
	if (reason_is(st, transient_status))
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "Cloud KMS %s: HTTP %ld%s%s%s%s", what,
			      status, st[0] ? " " : "", st, MSGTAIL);
	if (!e)
		return lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
			      "Cloud KMS %s: HTTP %ld without a google.rpc.Status body (not a Cloud KMS endpoint?)",
			      what, status);
	/* A google.rpc code comes with its own HTTP status (google.rpc.Code,
	 * AIP-193): under another status (a redirect, a proxy's page) the body
	 * is not Cloud KMS's word and never a revocation. */
	{
		long want = !strcmp(st, "PERMISSION_DENIED") ? 403 : !strcmp(st, "NOT_FOUND") ? 404 :
			    !strcmp(st, "FAILED_PRECONDITION") ? 400 : status;

		if (status != want)
			return lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
				      "Cloud KMS %s: %s under HTTP %ld, where Cloud KMS sends HTTP %ld: not Cloud KMS's answer (a redirect or a proxy?), never a revocation%s%s",
				      what, st, status, want, MSGTAIL);
	}
	if (!strcmp(st, "FAILED_PRECONDITION")) {
		/* Cloud EKM (external key manager unreachable, external key
		 * unavailable, its permission refused) answers
		 * FAILED_PRECONDITION with a google.rpc.PreconditionFailure:
		 * an outage of a system outside Cloud KMS, never a kill (when
		 * the external key itself is refused, Cloud EKM disables the
		 * version, which the key state then says authoritatively). */
		if (d.have_precondition)
			return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT,
				      "Cloud KMS %s: FAILED_PRECONDITION from Cloud EKM%s%s: the external key manager did not serve the request (an outage, not a revocation)%s%s",
				      what, d.domain[0] ? " " : "", d.domain, MSGTAIL);
		/* Without it, Cloud KMS's own refusal of a version that is not
		 * ENABLED: "<version> is not enabled, current state is: S." */
		if (version_unusable)
			return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
				      "Cloud KMS %s: FAILED_PRECONDITION: the key version is not usable (disabled, destroyed or scheduled for destruction)%s%s",
				      what, MSGTAIL);
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT,
			      "Cloud KMS %s: FAILED_PRECONDITION that names no disabled or destroyed version: not a revocation%s%s",
			      what, MSGTAIL);
	}
	if (!strcmp(st, "PERMISSION_DENIED"))
		return lc_err(err, -EACCES, LC_ERRC_DENIED,
			      "Cloud KMS %s: PERMISSION_DENIED%s%s: no permission: the agent's service account is not allowed this operation on the key (IAM)%s%s",
			      what, d.reason[0] ? " " : "", d.reason, MSGTAIL);
	if (!strcmp(st, "NOT_FOUND")) {
		lc_gcp_key_ref_check(key_ref, loc);
		if (endpoint_location && *endpoint_location && loc[0] && strcmp(loc, endpoint_location))
			return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				      "Cloud KMS %s: NOT_FOUND: the key is in location %s but the endpoint serves %s: set the endpoint for %s",
				      what, loc, endpoint_location, loc);
		if (d.have_resource && !strcmp(d.resource, key_ref))
			return lc_err(err, -ENOENT, LC_ERRC_DENIED,
				      "Cloud KMS %s: NOT_FOUND: the key does not exist (its key ring does)%s%s",
				      what, MSGTAIL);
		return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
			      "Cloud KMS %s: NOT_FOUND: the project, location or key ring of the key reference does not exist%s%s%s",
			      what, d.have_resource ? " (" : "", d.have_resource ? d.resource : "",
			      d.have_resource ? " not found)" : "");
	}
	if (!strcmp(st, "INVALID_ARGUMENT") && op == LC_GCP_DECRYPT)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Cloud KMS decrypt: INVALID_ARGUMENT: the additional authenticated data (encryption context) did not match, or the blob was not made by this key%s%s",
			      MSGTAIL);
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "Cloud KMS %s: %s (HTTP %ld)%s%s", what,
		      st[0] ? st : "unrecognised error", status, MSGTAIL);
#undef MSGTAIL
}

static int bad_reply(enum lc_gcp_op op, const char *why, struct lc_error *err)
{
	return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "Cloud KMS %s: malformed reply: %s",
		      op_name(op), why);
}

/* An int64 of the proto3 JSON mapping (a decimal string, or a number)
 * that fits 32 bits unsigned; -EINVAL otherwise. */
static int json_u32(json_object *o, const char *key, uint32_t *out)
{
	json_object *v;
	const char *s;
	uint64_t x = 0;

	if (!json_object_object_get_ex(o, key, &v))
		return -ENOENT;
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);

		if (i < 0 || i > UINT32_MAX)
			return -EINVAL;
		*out = (uint32_t)i;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	if (!*s || strlen(s) > 10)
		return -EINVAL;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	if (x > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)x;
	return 0;
}

static bool json_true(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

static int b64_field(json_object *o, const char *name, size_t max, uint8_t *out, size_t *out_len)
{
	const char *s = lc_json_str(o, name);
	size_t l = s ? strlen(s) : 0;

	/* @out holds @max bytes: what does not fit is refused before
	 * anything is written. */
	if (!s || !l || l % 4 || lc_base64_decoded_len(s, l) > max)
		return -EINVAL;
	return lc_base64_decode(s, l, out, out_len);
}

static int64_t parse_rfc3339(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* Record the version name; if it does not fit, its "cryptoKeyVersions/N". */
static void set_version(char out[LC_PROVIDER_VERSION_MAX], const char *name)
{
	const char *v;

	if (strlen(name) < LC_PROVIDER_VERSION_MAX) {
		lc_copy_printable(out, LC_PROVIDER_VERSION_MAX, name);
		return;
	}
	v = strstr(name, "cryptoKeyVersions/");
	lc_copy_printable(out, LC_PROVIDER_VERSION_MAX, v ? v : "");
}

/* @name is a version of @key_ref: "<key_ref>/cryptoKeyVersions/<digits>". */
static bool version_of(const char *name, const char *key_ref)
{
	size_t l = strlen(key_ref);
	const char *v;

	if (!name || strncmp(name, key_ref, l) || strncmp(name + l, "/cryptoKeyVersions/", 19))
		return false;
	v = name + l + 19;
	if (!*v || strlen(v) > 20)
		return false;
	for (; *v; v++)
		if (!isdigit((unsigned char)*v))
			return false;
	return true;
}

int lc_gcp_version_ref_check(const char *ref)
{
	char key[LC_PROVIDER_KEYID_MAX];
	const char *v = ref ? strstr(ref, "/cryptoKeyVersions/") : NULL;

	if (!v || (size_t)(v - ref) >= sizeof(key))
		return -EINVAL;
	memcpy(key, ref, (size_t)(v - ref));
	key[v - ref] = '\0';
	if (lc_gcp_key_ref_check(key, NULL) || !version_of(ref, key))
		return -EINVAL;
	return 0;
}

static enum lc_key_state version_state(const char *s)
{
	if (!strcmp(s, "ENABLED"))
		return LC_KEY_ENABLED;
	if (!strcmp(s, "DISABLED"))
		return LC_KEY_DISABLED;
	if (!strcmp(s, "DESTROYED"))
		return LC_KEY_DESTROYED;
	if (!strcmp(s, "DESTROY_SCHEDULED"))
		return LC_KEY_PENDING_DELETION;
	return LC_KEY_UNKNOWN;
}

int lc_gcp_parse_response(enum lc_gcp_op op, long status, const char *body, size_t len,
			  const char *key_ref, const char *endpoint_location,
			  struct lc_gcp_result *res, struct lc_error *err)
{
	json_object *o, *pv;
	const char *s;
	uint32_t crc = 0;
	size_t n = 0;
	int r = 0;

	memset(res, 0, sizeof(*res));
	o = lc_json_parse(body, len);
	if (status < 200 || status >= 300) {
		r = error_reply(op, status, o, key_ref, endpoint_location, res, err);
		lc_json_put_wiped(o);
		return r;
	}
	if (!o)
		return bad_reply(op, "not a JSON object", err);
	switch (op) {
	case LC_GCP_ENCRYPT:
		s = lc_json_str(o, "name");
		if (!version_of(s, key_ref)) {
			r = bad_reply(op, "\"name\" is not a version of the requested key", err);
			break;
		}
		set_version(res->key_version, s);
		res->blob.p = malloc(LC_KMS_GCP_MAX_BLOB);
		if (!res->blob.p) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		if (b64_field(o, "ciphertext", LC_KMS_GCP_MAX_BLOB, res->blob.p, &n) || !n) {
			r = bad_reply(op, "no valid ciphertext", err);
			break;
		}
		res->blob.len = n;
		if (json_u32(o, "ciphertextCrc32c", &crc)) {
			r = bad_reply(op, "no valid ciphertextCrc32c", err);
			break;
		}
		if (crc != lc_crc32c(0, res->blob.p, n)) {
			r = lc_err(err, -EBADMSG, LC_ERRC_TRANSIENT,
				   "Cloud KMS encrypt: the ciphertext does not match its ciphertextCrc32c (corrupted in transit): not accepted");
			break;
		}
		if (!json_true(o, "verifiedPlaintextCrc32c") ||
		    !json_true(o, "verifiedAdditionalAuthenticatedDataCrc32c")) {
			r = lc_err(err, -EBADMSG, LC_ERRC_TRANSIENT,
				   "Cloud KMS encrypt: the reply does not confirm the plaintext and AAD checksums (verifiedPlaintextCrc32c, verifiedAdditionalAuthenticatedDataCrc32c): not accepted");
			break;
		}
		break;
	case LC_GCP_DECRYPT:
		if (lc_secret_alloc(&res->plaintext, LC_KMS_GCP_MAX_PLAINTEXT)) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		if (b64_field(o, "plaintext", LC_KMS_GCP_MAX_PLAINTEXT, res->plaintext.p, &n) || !n) {
			r = bad_reply(op, "no valid plaintext", err);
			break;
		}
		res->plaintext.len = n;
		if (json_u32(o, "plaintextCrc32c", &crc)) {
			r = bad_reply(op, "no valid plaintextCrc32c", err);
			break;
		}
		if (crc != lc_crc32c(0, res->plaintext.p, n)) {
			r = lc_err(err, -EBADMSG, LC_ERRC_TRANSIENT,
				   "Cloud KMS decrypt: the plaintext does not match its plaintextCrc32c (corrupted in transit): not accepted");
			break;
		}
		break;
	case LC_GCP_GET_VERSION:
		s = lc_json_str(o, "name");
		if (!s || strcmp(s, key_ref)) {
			r = bad_reply(op, "\"name\" is not the requested key version", err);
			break;
		}
		set_version(res->key_version, s);
		pv = o;
		goto state;
	case LC_GCP_GET_KEY:
		s = lc_json_str(o, "name");
		if (s && strcmp(s, key_ref)) {
			r = bad_reply(op, "\"name\" is not the requested key", err);
			break;
		}
		s = lc_json_str(o, "purpose");
		if (s && strcmp(s, "ENCRYPT_DECRYPT")) {
			char p[40];

			lc_copy_printable(p, sizeof(p), s);
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Cloud KMS get: the key's purpose is %s: lakecrypt needs a symmetric ENCRYPT_DECRYPT key",
				   p);
			break;
		}
		if (!json_object_object_get_ex(o, "primary", &pv) ||
		    !json_object_is_type(pv, json_type_object)) {
			r = lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				   "Cloud KMS get: the key has no primary version: not a revocation, but nothing can be encrypted (set a primary version)");
			break;
		}
		if (lc_json_str(pv, "name"))
			set_version(res->key_version, lc_json_str(pv, "name"));
state:
		s = lc_json_str(pv, "state");
		if (!s) {
			r = bad_reply(op, "version without a state", err);
			break;
		}
		lc_copy_printable(res->version_state, sizeof(res->version_state), s);
		res->state = version_state(s);
		if (res->state == LC_KEY_UNKNOWN) {
			bool passing = !strcmp(s, "PENDING_GENERATION") || !strcmp(s, "PENDING_IMPORT");

			r = lc_err(err, passing ? -EAGAIN : -EPROTO,
				   passing ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
				   "Cloud KMS %s: %s version state \"%s\" is %s: not a revocation",
				   op_name(op), op == LC_GCP_GET_KEY ? "primary" : "the",
				   res->version_state, passing ? "passing" : "not one lakecrypt knows");
			break;
		}
		if (res->state == LC_KEY_PENDING_DELETION)
			res->deletion_date = parse_rfc3339(lc_json_str(pv, "destroyTime"));
		break;
	}
	lc_json_put_wiped(o);
	if (r) {
		enum lc_key_state st = res->state;
		char ver[LC_PROVIDER_VERSION_MAX], vs[40];

		memcpy(ver, res->key_version, sizeof(ver));
		memcpy(vs, res->version_state, sizeof(vs));
		lc_gcp_result_free(res);
		/* What is known stays for the audit log (never a key). */
		memcpy(res->key_version, ver, sizeof(ver));
		memcpy(res->version_state, vs, sizeof(vs));
		res->state = op == LC_GCP_GET_KEY || op == LC_GCP_GET_VERSION ? st : LC_KEY_UNKNOWN;
		return r;
	}
	return 0;
}

/* ---- JWT (RFC 7519, RFC 7515, RFC 7523) -------------------------------- */

/* base64url without padding (RFC 4648 section 5) of @len bytes into @out
 * (room for 4 * ceil(len / 3) + 1); returns the length. */
static size_t b64url(const uint8_t *in, size_t len, char *out)
{
	size_t n = lc_base64_encode(in, len, out);

	while (n && out[n - 1] == '=')
		out[--n] = 0;
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return n;
}

static bool json_safe(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s >= 0x7f)
			return false;
	return s != NULL;
}

int lc_gcp_jwt_sign(const char *pem_key, size_t pem_len, const char *kid, const char *iss,
		    const char *scope, const char *aud, int64_t now, struct lc_secret *jwt,
		    struct lc_error *err)
{
	char hdr[300], claims[1200], *hb = NULL, *cb = NULL;
	uint8_t *sig = NULL;
	size_t siglen = 0, n, hl, cl;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = NULL;
	struct lc_sb input = { 0 };
	int r;

	memset(jwt, 0, sizeof(*jwt));
	if ((kid && !json_safe(kid)) || !json_safe(iss) || !json_safe(scope) || !json_safe(aud) ||
	    strlen(iss) > 256 || strlen(scope) > 256 || strlen(aud) > 512 || (kid && strlen(kid) > 128))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "service-account key: client_email, private_key_id or token_uri is too long or has characters that cannot be in a JWT");
	if (kid && *kid)
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
	else
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	snprintf(claims, sizeof(claims),
		 "{\"iss\":\"%s\",\"scope\":\"%s\",\"aud\":\"%s\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
		 iss, scope, aud, now, now + 3600);
	hl = strlen(hdr);
	cl = strlen(claims);
	hb = malloc(4 * ((hl + 2) / 3) + 1);
	cb = malloc(4 * ((cl + 2) / 3) + 1);
	if (!hb || !cb) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	b64url((const uint8_t *)hdr, hl, hb);
	b64url((const uint8_t *)claims, cl, cb);
	lc_sb_puts(&input, hb);
	lc_sb_puts(&input, ".");
	lc_sb_puts(&input, cb);
	if (input.oom) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	if (pem_len > INT32_MAX || !(bio = BIO_new_mem_buf(pem_key, (int)pem_len)) ||
	    !(pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) ||
	    EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pk) < 2048) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "service-account key: private_key is not an RSA private key of 2048 bits or more in PEM");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const uint8_t *)input.p, input.len) != 1 ||
	    !(sig = malloc(siglen)) ||
	    EVP_DigestSign(md, sig, &siglen, (const uint8_t *)input.p, input.len) != 1) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "service-account key: RS256 signing failed");
		goto out;
	}
	n = input.len + 1 + 4 * ((siglen + 2) / 3) + 1;
	if (lc_secret_alloc(jwt, n)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	memcpy(jwt->p, input.p, input.len);
	jwt->p[input.len] = '.';
	jwt->len = input.len + 1 + b64url(sig, siglen, (char *)jwt->p + input.len + 1);
	jwt->p[jwt->len] = 0;
	r = 0;
out:
	if (sig)
		lc_wipe(sig, siglen);
	free(sig);
	free(hb);
	free(cb);
	free(input.p);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return r;
}

/* ---- the provider --------------------------------------------------------- */

enum cred_src { CRED_AUTO, CRED_METADATA, CRED_SERVICE_ACCOUNT };
static const char *const cred_names[] = { "auto", "metadata", "service-account" };

struct lc_kms_gcp {
	struct lc_http *http;		/* Cloud KMS and the token endpoint */
	struct lc_http *meta;		/* metadata server (plain HTTP allowed) */
	char *endpoint;
	char endpoint_location[64];	/* "" for a global endpoint */
	enum cred_src src;
	char *key_file;			/* NULL: $GOOGLE_APPLICATION_CREDENTIALS */
	char *metadata;
	uint64_t metadata_timeout_ms;
	struct lc_token_cache tok;	/* the access token (oauth-token.h) */
};

/* Read a key file into locked memory after checking who may read it. */
static int read_key_file(const char *path, struct lc_secret *out, struct lc_error *err)
{
	struct stat st;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);	/* symlinks followed: Kubernetes secret volumes */

	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG,
			      "service-account key file %.200s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "service-account key file %.200s: not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "service-account key file %.200s: mode %04o lets group or others access it: chmod 600 (it holds a private key)",
			      path, (unsigned int)(st.st_mode & 07777));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "service-account key file %.200s: owned by uid %u, not by the agent's user or root",
			      path, (unsigned int)st.st_uid);
	}
	if (st.st_size <= 0 || st.st_size > LC_KMS_GCP_KEYFILE_MAX ||
	    lc_secret_alloc(out, (size_t)st.st_size + 1)) {
		close(fd);
		return lc_err(err, -EFBIG, LC_ERRC_MISCONFIG,
			      "service-account key file %.200s: empty or larger than %d bytes", path,
			      LC_KMS_GCP_KEYFILE_MAX);
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, out->p + n, (size_t)st.st_size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	out->p[n] = 0;
	out->len = n;
	return 0;
}

/* The token of an OAuth 2.0 token reply (RFC 6749 section 5.1):
 * "Authorization: Bearer <token>" + NUL into @auth (locked), its
 * lifetime (expires_in, 1..86400 s; 3600 if absent) into @lifetime_s. */
static int take_token(const char *what, const struct lc_http_response *resp,
		      struct lc_secret *auth, int64_t *lifetime_s, struct lc_error *err)
{
	json_object *o = lc_json_parse((const char *)resp->body.p, resp->len), *v;
	const char *tok = lc_json_str(o, "access_token"), *type = lc_json_str(o, "token_type");
	int64_t expires_in = 3600;
	size_t l = tok ? strlen(tok) : 0;
	int r = 0;

	if (!o) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "%s: malformed token reply (not a JSON object)", what);
		goto out;
	}
	if (!tok || !l || l > 8192 || (type && strcasecmp(type, "Bearer"))) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "%s: token reply without a bearer access_token", what);
		goto out;
	}
	for (size_t i = 0; i < l; i++)
		if (tok[i] <= 0x20 || tok[i] >= 0x7f) {
			r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "%s: access_token has characters outside printable ASCII", what);
			goto out;
		}
	if (json_object_object_get_ex(o, "expires_in", &v) && json_object_is_type(v, json_type_int)) {
		expires_in = json_object_get_int64(v);
		if (expires_in < 1 || expires_in > 86400)
			expires_in = 60;
	}
	if (lc_secret_alloc(auth, l + 32)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	snprintf((char *)auth->p, l + 32, "Authorization: Bearer %s", tok);
	*lifetime_s = expires_in;
out:
	lc_json_put_wiped(o);
	return r;
}

/* What an HTTP error of a token source is: 5xx/429/408 TRANSIENT, else MISCONFIG. */
static enum lc_err_class token_status_class(long status)
{
	return status == 429 || status == 408 || status >= 500 ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG;
}

/* GET <metadata>/computeMetadata/v1/instance/service-accounts/default/@leaf
 * with "Metadata-Flavor: Google" (the GCE metadata server's API, "Access
 * VM metadata" in the Compute Engine documentation), in at most the
 * smaller of @timeout_ms (0: no limit of its own) and [gcp-kms]
 * metadata_timeout_ms.  HTTP 200: 0, the reply in @resp (the caller frees
 * it).  Another status: -EACCES, TRANSIENT or MISCONFIG as
 * token_status_class says, "GCP metadata server: @what answered HTTP
 * <status>", then @hint404 after a 404; @resp freed.  Transport errors:
 * lc_http_request's. */
static int metadata_get(struct lc_kms_gcp *a, const char *leaf, const char *what, const char *hint404,
			uint64_t timeout_ms, struct lc_http_response *resp, struct lc_error *err)
{
	static const char *const hdrs[] = { "Metadata-Flavor: Google", NULL };
	char url[700];
	uint64_t t = a->metadata_timeout_ms;
	int r;

	if (timeout_ms && timeout_ms < t)
		t = timeout_ms;
	snprintf(url, sizeof(url), "%s/computeMetadata/v1/instance/service-accounts/default/%s",
		 a->metadata, leaf);
	r = lc_http_request(a->meta, "GET", url, hdrs, NULL, 0, NULL, t, resp, err);
	if (r || resp->status == 200)
		return r;
	r = lc_err(err, -EACCES, token_status_class(resp->status), "GCP metadata server: %s answered HTTP %ld%s",
		   what, resp->status, resp->status == 404 ? hint404 : "");
	lc_http_response_free(resp);
	return r;
}

/* Whether the credentials are the service-account key file: [gcp-kms]
 * credentials = service-account, or auto with a key_file or
 * $GOOGLE_APPLICATION_CREDENTIALS set (else the metadata server). */
static bool use_key_file(const struct lc_kms_gcp *a)
{
	const char *env = getenv("GOOGLE_APPLICATION_CREDENTIALS");

	return a->src == CRED_SERVICE_ACCOUNT || (a->src == CRED_AUTO && (a->key_file || (env && *env)));
}

/* The service-account key file ([gcp-kms] key_file, else
 * $GOOGLE_APPLICATION_CREDENTIALS): its path in @path, its bytes in
 * @file (locked, read_key_file's bounds), its JSON in @o (NULL when it is
 * not JSON: the caller says what it lacks).  0, or -ENOENT MISCONFIG when
 * no file is named, or read_key_file's error.  The caller frees @file and
 * puts @o (lc_json_put_wiped) in every case. */
static int load_key_file(const struct lc_kms_gcp *a, const char **path, struct lc_secret *file, json_object **o,
			 struct lc_error *err)
{
	int r;

	*path = a->key_file ? a->key_file : getenv("GOOGLE_APPLICATION_CREDENTIALS");
	*o = NULL;
	if (!*path || !**path)
		return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
			      "GCP credentials: no service-account key file ([gcp-kms] key_file or GOOGLE_APPLICATION_CREDENTIALS)");
	r = read_key_file(*path, file, err);
	if (!r)
		*o = lc_json_parse((const char *)file->p, file->len);
	return r;
}

static int token_from_metadata(struct lc_kms_gcp *a, uint64_t timeout_ms, struct lc_secret *auth,
			       int64_t *lifetime_s, struct lc_error *err)
{
	struct lc_http_response resp = { 0 };
	int r = metadata_get(a, "token", "token request", " (no service account attached to the instance?)",
			     timeout_ms, &resp, err);

	if (r)
		return r;
	r = take_token("GCP metadata server", &resp, auth, lifetime_s, err);
	lc_http_response_free(&resp);
	return r;
}

static int token_from_key_file(struct lc_kms_gcp *a, uint64_t timeout_ms, struct lc_secret *auth,
			       int64_t *lifetime_s, struct lc_error *err)
{
	static const char *const hdrs[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
	static const char grant[] = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
	const char *path;
	struct lc_secret file = { 0 }, jwt = { 0 }, body = { 0 };
	struct lc_http_response resp = { 0 };
	json_object *o;
	const char *type, *email, *pkey, *kid, *uri;
	char turi[600];
	int r;

	r = load_key_file(a, &path, &file, &o, err);
	if (r)
		goto out;
	type = lc_json_str(o, "type");
	email = lc_json_str(o, "client_email");
	pkey = lc_json_str(o, "private_key");
	kid = lc_json_str(o, "private_key_id");
	uri = lc_json_str(o, "token_uri");
	if (!o || !type || strcmp(type, "service_account") || !email || !pkey) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "service-account key file %.200s: not a service_account JSON key (type, client_email, private_key)",
			   path);
		goto out;
	}
	snprintf(turi, sizeof(turi), "%s", uri ? uri : "https://oauth2.googleapis.com/token");
	if (strncmp(turi, "https://", 8) || strlen(turi) > 500) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "service-account key file %.200s: token_uri is not an https:// URL", path);
		goto out;
	}
	r = lc_gcp_jwt_sign(pkey, strlen(pkey), kid, email, LC_KMS_GCP_SCOPE, LC_KMS_GCP_JWT_AUD, (int64_t)time(NULL),
			    &jwt, err);
	if (r)
		goto out;
	if (lc_secret_alloc(&body, sizeof(grant) + jwt.len)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	memcpy(body.p, grant, sizeof(grant) - 1);
	memcpy(body.p + sizeof(grant) - 1, jwt.p, jwt.len);	/* base64url and '.': no escaping */
	body.len = sizeof(grant) - 1 + jwt.len;
	r = lc_http_request(a->http, "POST", turi, hdrs, body.p, body.len, NULL, timeout_ms, &resp, err);
	if (r) {
		err_append(err, " (service-account token endpoint)");
		goto out;
	}
	if (resp.status != 200) {
		json_object *eo = lc_json_parse((const char *)resp.body.p, resp.len);
		char code[64];

		lc_copy_printable(code, sizeof(code), lc_json_str(eo, "error"));
		lc_json_put_wiped(eo);
		r = lc_err(err, -EACCES, token_status_class(resp.status),
			   "GCP token endpoint refused the service-account assertion of %.100s: HTTP %ld%s%s%s",
			   email, resp.status, code[0] ? " " : "", code,
			   !strcmp(code, "invalid_grant") ? " (key deleted or disabled, or clock skew)" : "");
		goto out;
	}
	r = take_token("GCP token endpoint", &resp, auth, lifetime_s, err);
out:
	lc_http_response_free(&resp);
	lc_json_put_wiped(o);
	lc_secret_free(&file);
	lc_secret_free(&jwt);
	lc_secret_free(&body);
	return r;
}

struct fetch_arg {
	struct lc_kms_gcp *a;
	uint64_t timeout_ms;
};

/* Fetch a token (lc_token_fetch_fn, oauth-token.h): from the
 * service-account key if one is configured (or in
 * $GOOGLE_APPLICATION_CREDENTIALS for "auto"), else from the metadata
 * server.  Called with the cache's lock held. */
static int token_fetch(void *arg, struct lc_secret *auth, int64_t *lifetime_s,
		       uint64_t *retry_after_ms, struct lc_error *err)
{
	const struct fetch_arg *f = arg;
	struct lc_kms_gcp *a = f->a;
	bool sa = use_key_file(a);
	int r;

	(void)retry_after_ms;
	r = sa ? token_from_key_file(a, f->timeout_ms, auth, lifetime_s, err)
	       : token_from_metadata(a, f->timeout_ms, auth, lifetime_s, err);
	if (r)
		lc_secret_free(auth);
	else
		lc_debug("Cloud KMS: new access token from %s",
			 sa ? "the service-account key" : "the metadata server");
	return r;
}

/* The identity operation (kms-gcp.h): the key file's client_email, or
 * the metadata server's default service account email. */
static int gcp_identity(void *priv, const char *key_ref, uint64_t timeout_ms, char principal[],
			size_t size, struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_gcp *a = priv;
	struct lc_http_response resp = { 0 };
	struct lc_secret file = { 0 };
	json_object *o;
	const char *path, *email;
	int r;

	(void)key_ref, (void)reply;
	if (size)
		principal[0] = 0;
	if (use_key_file(a)) {
		r = load_key_file(a, &path, &file, &o, err);
		if (!r) {
			email = lc_json_str(o, "client_email");
			r = email ? lc_gcp_email_check(email, strlen(email), principal, size, err)
				  : lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
					   "service-account key file %.200s has no client_email", path);
		}
		lc_json_put_wiped(o);
		lc_secret_free(&file);
		return r;
	}
	r = metadata_get(a, "email", "the service account email request", "", timeout_ms, &resp, err);
	if (r)
		return r;
	r = lc_gcp_email_check((const char *)resp.body.p, resp.len, principal, size, err);
	lc_http_response_free(&resp);
	return r;
}

int lc_kms_gcp_new(struct lc_kms_gcp **out, const struct lc_kms_gcp_config *cfg,
		   struct lc_error *err)
{
	struct lc_http_opts o = { .ca_file = cfg->ca_file, .connect_timeout_ms = cfg->connect_timeout_ms,
				  .max_response = LC_KMS_GCP_MAX_RESPONSE, .what = "Cloud KMS" };
	struct lc_http_opts mo = { .max_response = 16 * 1024, .allow_http = true,
				   .what = "GCP metadata server" };
	const char *gmh = getenv("GCE_METADATA_HOST");
	struct lc_kms_gcp *a;
	char host[256];
	int r;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_token_cache_init(&a->tok, LC_KMS_GCP_REFRESH_S);
	if (cfg->credentials && *cfg->credentials) {
		size_t i;

		for (i = 0; i < sizeof(cred_names) / sizeof(cred_names[0]); i++)
			if (!strcmp(cfg->credentials, cred_names[i]))
				break;
		if (i == sizeof(cred_names) / sizeof(cred_names[0])) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Cloud KMS: unknown credentials source \"%.64s\": expected auto, metadata or service-account",
				   cfg->credentials);
			goto fail;
		}
		a->src = (enum cred_src)i;
	}
	if (cfg->key_file && *cfg->key_file) {
		if (cfg->key_file[0] != '/') {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Cloud KMS: key_file \"%.200s\" is not an absolute path", cfg->key_file);
			goto fail;
		}
		a->key_file = strdup(cfg->key_file);
	}
	a->endpoint = strdup(cfg->endpoint && *cfg->endpoint ? cfg->endpoint : LC_KMS_GCP_ENDPOINT);
	if (a->endpoint) {
		size_t l = strlen(a->endpoint);

		if (strncmp(a->endpoint, "https://", 8) || l < 9 || l > 400) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Cloud KMS: endpoint \"%.100s\" is not an https:// URL", a->endpoint);
			goto fail;
		}
		if (a->endpoint[l - 1] == '/')
			a->endpoint[l - 1] = 0;
		/* A regional endpoint, cloudkms.<location>.rep.googleapis.com,
		 * serves its location only. */
		lc_url_host(a->endpoint, host, sizeof(host));
		if (!strncmp(host, "cloudkms.", 9) && strstr(host + 9, ".rep.googleapis.com")) {
			size_t n = (size_t)(strstr(host + 9, ".rep.googleapis.com") - (host + 9));

			if (n && n < sizeof(a->endpoint_location)) {
				memcpy(a->endpoint_location, host + 9, n);
				a->endpoint_location[n] = 0;
			}
		}
	}
	if (cfg->metadata_endpoint && *cfg->metadata_endpoint)
		a->metadata = strdup(cfg->metadata_endpoint);
	else if (gmh && *gmh && strlen(gmh) < 200 && !strchr(gmh, '/')) {
		if (asprintf(&a->metadata, "http://%s", gmh) < 0)
			a->metadata = NULL;
	} else
		a->metadata = strdup(LC_KMS_GCP_METADATA);
	if (a->metadata) {
		size_t l = strlen(a->metadata);

		if (l && a->metadata[l - 1] == '/')
			a->metadata[l - 1] = 0;
	}
	if (!a->endpoint || !a->metadata || (cfg->key_file && *cfg->key_file && !a->key_file)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto fail;
	}
	a->metadata_timeout_ms = cfg->metadata_timeout_ms ? cfg->metadata_timeout_ms
							  : LC_KMS_GCP_METADATA_TIMEOUT_MS;
	mo.connect_timeout_ms = a->metadata_timeout_ms;
	r = lc_http_new(&a->http, &o, err);
	if (!r)
		r = lc_http_new(&a->meta, &mo, err);
	if (r)
		goto fail;
	*out = a;
	return 0;
fail:
	lc_kms_gcp_free(a);
	return r;
}

void lc_kms_gcp_free(struct lc_kms_gcp *a)
{
	if (!a)
		return;
	lc_token_cache_destroy(&a->tok);
	lc_http_free(a->http);
	lc_http_free(a->meta);
	free(a->endpoint);
	free(a->key_file);
	free(a->metadata);
	free(a);
}

/*
 * One Cloud KMS request for @key_ref (@verb ":encrypt", ":decrypt" or ""
 * for a GET), with one more after a 401 and a fresh token.  @body (may
 * hold key material: the caller's locked buffer).  On 0, @res holds the
 * parsed reply.
 */
static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What is left of the attempt's @timeout_ms started at @start (0: no
 * bound); 0 and a TRANSIENT error when nothing is. */
static int time_left(uint64_t start, uint64_t timeout_ms, uint64_t *left, struct lc_error *err)
{
	uint64_t used = mono_ms() - start;

	*left = 0;
	if (!timeout_ms)
		return 0;
	if (used >= timeout_ms)
		return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
			      "Cloud KMS: the attempt's %" PRIu64 " ms were used up (token and request)",
			      timeout_ms);
	*left = timeout_ms - used;
	return 0;
}

static int kms_call(struct lc_kms_gcp *a, enum lc_gcp_op op, const char *key_ref,
		    const char *body, size_t body_len, uint64_t timeout_ms,
		    struct lc_gcp_result *res, struct lc_provider_reply *reply,
		    struct lc_error *err)
{
	char url[1100];
	uint64_t start = mono_ms(), left;
	unsigned int gen = 0;
	int r = 0;

	memset(res, 0, sizeof(*res));
	if (op == LC_GCP_GET_VERSION ? lc_gcp_version_ref_check(key_ref) != 0 :
	    lc_gcp_key_ref_check(key_ref, NULL) != 0)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Cloud KMS: \"%.200s\" is not a key name (expected projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>, or a version of it: .../cryptoKeyVersions/<n>)",
			      key_ref);
	snprintf(url, sizeof(url), "%s/v1/%s%s", a->endpoint, key_ref,
		 op == LC_GCP_ENCRYPT ? ":encrypt" : op == LC_GCP_DECRYPT ? ":decrypt" : "");
	for (int attempt = 0; attempt < 2; attempt++) {
		struct lc_secret auth = { 0 };
		struct lc_http_response resp = { 0 };
		const char *hdrs[3] = { NULL, NULL, NULL };

		/* Token, request, and the one retry after a 401 share the
		 * attempt's time. */
		r = time_left(start, timeout_ms, &left, err);
		if (!r) {
			struct fetch_arg f = { a, left };
			uint64_t hint = 0;

			r = lc_token_get(&a->tok, token_fetch, &f, &auth, &gen, &hint, err);
		}
		if (!r)
			r = time_left(start, timeout_ms, &left, err);
		if (r) {
			lc_secret_free(&auth);
			return r;
		}
		hdrs[0] = (const char *)auth.p;
		hdrs[1] = body ? "Content-Type: application/json" : NULL;
		r = lc_http_request(a->http, body ? "POST" : "GET", url, hdrs, body, body_len,
				    NULL, left, &resp, err);
		lc_secret_free(&auth);
		if (r)
			return r;
		if (reply && resp.request_id[0])
			snprintf(reply->request_id, sizeof(reply->request_id), "%.127s", resp.request_id);
		r = lc_gcp_parse_response(op, resp.status, (const char *)resp.body.p, resp.len, key_ref,
					  a->endpoint_location, res, err);
		lc_http_response_free(&resp);
		if (!r || !res->unauthenticated)
			break;
		if (attempt == 0) {
			lc_debug("Cloud KMS %s: HTTP 401, fetching a new access token and trying once more",
				 op_name(op));
			lc_gcp_result_free(res);
			lc_token_drop(&a->tok, gen);
		}
	}
	return r;
}

/* The AAD is the context string itself: a volume's KEK context or the
 * revocation probe's canary context "lakecrypt:v2;canary;keyconfig=<k>"
 * (lc_context_pairs, envelope.h); nothing else is sent. */
static int check_context(const char *context, struct lc_error *err)
{
	char buf[LC_KEK_CONTEXT_MAX];
	struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS];

	if (!context || lc_context_pairs(context, buf, pairs) < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "Cloud KMS: the KEK context is not a lakecrypt v2 context (volume, workspace, project, keyconfig) nor a canary context");
	return 0;
}

/* ,"additionalAuthenticatedData":"<b64>","additionalAuthenticatedDataCrc32c":"<n>"} */
static void put_aad(struct lc_sb *b, const char *context)
{
	size_t l = strlen(context);
	char *b64 = malloc(4 * ((l + 2) / 3) + 1), crc[16];

	if (!b64) {
		b->oom = true;
		return;
	}
	lc_base64_encode((const uint8_t *)context, l, b64);
	snprintf(crc, sizeof(crc), "%" PRIu32, lc_crc32c(0, context, l));
	lc_sb_puts(b, "\",\"additionalAuthenticatedData\":\"");
	lc_sb_puts(b, b64);
	lc_sb_puts(b, "\",\"additionalAuthenticatedDataCrc32c\":\"");
	lc_sb_puts(b, crc);
	lc_sb_puts(b, "\"}");
	free(b64);
}

static void fill_reply(struct lc_provider_reply *reply, const struct lc_gcp_result *res,
		       const char *key_ref)
{
	if (!reply)
		return;
	snprintf(reply->key_id, sizeof(reply->key_id), "%s", key_ref);
	if (res->key_version[0])
		snprintf(reply->key_version, sizeof(reply->key_version), "%s", res->key_version);
}

static int gcp_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		    const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		    struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_gcp *a = priv;
	struct lc_sb tail = { 0 };
	struct lc_secret body = { 0 };
	struct lc_gcp_result res;
	char head[64];
	size_t n, hl;
	int r;

	if (!pt->len || pt->len > LC_KMS_GCP_MAX_PLAINTEXT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "Cloud KMS: plaintext empty or above 64 KiB");
	r = check_context(context, err);
	if (r)
		return r;
	/* {"plaintext":"<b64>","plaintextCrc32c":"<n>" + AAD */
	hl = (size_t)snprintf(head, sizeof(head), "\",\"plaintextCrc32c\":\"%" PRIu32,
			      lc_crc32c(0, pt->p, pt->len));
	put_aad(&tail, context);
	if (tail.oom) {
		free(tail.p);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	n = 14 + 4 * ((pt->len + 2) / 3) + hl + tail.len + 1;
	if (lc_secret_alloc(&body, n)) {
		free(tail.p);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	memcpy(body.p, "{\"plaintext\":\"", 14);
	n = 14 + lc_base64_encode(pt->p, pt->len, (char *)body.p + 14);
	memcpy(body.p + n, head, hl);
	n += hl;
	memcpy(body.p + n, tail.p, tail.len);
	n += tail.len;
	body.p[n] = 0;
	free(tail.p);
	r = kms_call(a, LC_GCP_ENCRYPT, key_ref, (const char *)body.p, n, timeout_ms, &res, reply, err);
	lc_secret_free(&body);
	fill_reply(reply, &res, key_ref);
	if (r) {
		lc_gcp_result_free(&res);
		return r;
	}
	*blob = res.blob;
	res.blob.p = NULL;
	lc_gcp_result_free(&res);
	return 0;
}

static int gcp_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
		      const char *context, uint64_t timeout_ms, struct lc_secret *pt,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_gcp *a = priv;
	struct lc_sb b = { 0 };
	struct lc_gcp_result res;
	char *b64, crc[16];
	int r;

	if (!blob->len || blob->len > LC_KMS_GCP_MAX_BLOB)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Cloud KMS: wrapped key of %zu bytes is empty or above the limit of %d",
			      blob->len, LC_KMS_GCP_MAX_BLOB);
	r = check_context(context, err);
	if (r)
		return r;
	b64 = malloc(4 * ((blob->len + 2) / 3) + 1);
	if (!b64)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_base64_encode(blob->p, blob->len, b64);
	snprintf(crc, sizeof(crc), "%" PRIu32, lc_crc32c(0, blob->p, blob->len));
	lc_sb_puts(&b, "{\"ciphertext\":\"");
	lc_sb_puts(&b, b64);
	lc_sb_puts(&b, "\",\"ciphertextCrc32c\":\"");
	lc_sb_puts(&b, crc);
	free(b64);
	put_aad(&b, context);
	if (b.oom)
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	else
		r = kms_call(a, LC_GCP_DECRYPT, key_ref, b.p, b.len, timeout_ms, &res, reply, err);
	free(b.p);
	if (r) {
		if (!b.oom)
			lc_gcp_result_free(&res);
		return r;
	}
	fill_reply(reply, &res, key_ref);
	*pt = res.plaintext;
	memset(&res.plaintext, 0, sizeof(res.plaintext));
	lc_gcp_result_free(&res);
	return 0;
}

static int gcp_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			 struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_gcp *a = priv;
	struct lc_gcp_result res;
	int r;

	/* A version name: that version's own state (kms-gcp.h). */
	r = kms_call(a, strstr(key_ref, "/cryptoKeyVersions/") ? LC_GCP_GET_VERSION : LC_GCP_GET_KEY,
		     key_ref, NULL, 0, timeout_ms, &res, reply, err);
	fill_reply(reply, &res, key_ref);
	if (reply) {
		reply->state = r ? LC_KEY_UNKNOWN : res.state;
		reply->deletion_date = r ? 0 : res.deletion_date;
	}
	lc_gcp_result_free(&res);
	return r;
}

static void gcp_destroy(void *priv)
{
	lc_kms_gcp_free(priv);
}

const struct lc_provider_ops lc_kms_gcp_ops = {
	.name = LC_KMS_GCP_NAME,
	.wrap = gcp_wrap,
	.unwrap = gcp_unwrap,
	.key_state = gcp_key_state,
	.destroy = gcp_destroy,
	.version_state = true,
	.identity = gcp_identity,
};

void lc_kms_gcp_provider_init(struct lc_provider *p, struct lc_kms_gcp *gcp)
{
	lc_provider_init(p, &lc_kms_gcp_ops, gcp);
}
