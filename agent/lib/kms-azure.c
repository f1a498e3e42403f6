// SPDX-License-Identifier: GPL-2.0
/*
 * Azure Key Vault / Managed HSM provider: key references, the blob and
 * context binding, answers, tokens (IMDS, client secret, certificate
 * assertion) and the three operations.  Protocol and formats: kms-azure.h.
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

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "http.h"
#include "kms-azure.h"
#include "oauth-token.h"

#define BIND_MAGIC	"LCAZctx1"
#define BLOB_MAGIC	"LCAZ"
#define BLOB_VERSION	1
#define DEFAULT_AUTHORITY	"https://login.microsoftonline.com"
#define DEFAULT_IMDS		"http://169.254.169.254"
#define RES_VAULT	"https://vault.azure.net"
#define RES_HSM		"https://managedhsm.azure.net"
#define SECRET_FILE_MAX	(64 * 1024)

/* ---- small helpers ------------------------------------------------------ */

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

static const char *alg_name(enum lc_azure_alg alg)
{
	return alg == LC_AZURE_RSA_OAEP_256 ? "RSA-OAEP-256" : alg == LC_AZURE_A256KW ? "A256KW" : "?";
}

/* Decode base64url (padding optional; the standard alphabet accepted too)
 * of at most @max decoded bytes into @out (room for @max + 2). */
static int b64url_decode(const char *in, size_t len, size_t max, uint8_t *out, size_t *out_len)
{
	char *t;
	size_t n = 0;
	int r;

	if (!len || len > 4 * ((max + 2) / 3))
		return -EINVAL;
	t = malloc(len + 4);
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '=' && i + 2 >= len)	/* padding, at the end only */
			break;
		t[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	if (n % 4 == 1) {
		free(t);
		return -EINVAL;
	}
	while (n % 4)
		t[n++] = '=';
	/* @out holds @max bytes: refuse before writing what would not fit */
	if (lc_base64_decoded_len(t, n) > max) {
		lc_wipe(t, n);
		free(t);
		return -EINVAL;
	}
	r = lc_base64_decode(t, n, out, out_len);
	lc_wipe(t, n);
	free(t);
	if (!r && *out_len > max)
		r = -EINVAL;
	return r;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What is left of an attempt's @timeout_ms started at @t0 (0: unbounded). */
static int left_ms(uint64_t t0, uint64_t timeout_ms, uint64_t *left, const char *what,
		   struct lc_error *err)
{
	uint64_t spent = mono_ms() - t0;

	*left = 0;
	if (!timeout_ms)
		return 0;
	if (spent >= timeout_ms)
		return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
			      "Azure Key Vault: the attempt's %" PRIu64 " ms were spent before %s",
			      timeout_ms, what);
	*left = timeout_ms - spent;
	return 0;
}

/* ---- key references ----------------------------------------------------- */

static bool host_hsm(const char *host)
{
	static const char *const sfx[] = { ".managedhsm.azure.net", ".managedhsm.azure.cn",
					   ".managedhsm.usgovcloudapi.net" };
	size_t hl = strcspn(host, ":");

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t sl = strlen(sfx[i]);

		if (hl > sl && !strncasecmp(host + hl - sl, sfx[i], sl))
			return true;
	}
	return false;
}

int lc_azure_keyref_parse(const char *ref, struct lc_azure_keyref *k, struct lc_error *err)
{
	const char *h, *p, *n, *v;
	size_t hl, nl, vl;

	memset(k, 0, sizeof(*k));
	if (!ref || strncasecmp(ref, "https://", 8))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key \"%.200s\" is not an https:// key URL (expected https://VAULT.vault.azure.net/keys/NAME[/VERSION] or https://HSM.managedhsm.azure.net/keys/NAME[/VERSION])",
			      ref ? ref : "");
	h = ref + 8;
	hl = strcspn(h, "/?#");
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != ':')
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "Azure Key Vault: key URL \"%.200s\": the host has a character other than letters, digits, '.', '-' or a :port",
				      ref);
	if (!hl || hl >= sizeof(k->host) || h[0] == ':' || h[0] == '.')
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key URL \"%.200s\" has no host, or one longer than %zu characters",
			      ref, sizeof(k->host) - 1);
	p = h + hl;
	if (strncmp(p, "/keys/", 6))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key URL \"%.200s\" has no /keys/NAME path (a secret or certificate URL is not a key)",
			      ref);
	n = p + 6;
	nl = strspn(n, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-");
	if (!nl || nl > 127)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key URL \"%.200s\": the key name must be 1-127 letters, digits or '-'",
			      ref);
	v = n + nl;
	vl = 0;
	if (*v == '/') {
		v++;
		vl = strspn(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
		if (vl > 64)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "Azure Key Vault: key URL \"%.200s\": the version must be at most 64 letters or digits",
				      ref);
	}
	if (v[vl] && !(v[vl] == '/' && !v[vl + 1]))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key URL \"%.200s\": unexpected \"%.40s\" after the key name and version (no query, fragment or operation)",
			      ref, v + vl);
	for (size_t i = 0; i < hl; i++)
		k->host[i] = (char)tolower((unsigned char)h[i]);
	/* https://host:443 and https://host name the same vault. */
	if (hl > 4 && !strcmp(k->host + hl - 4, ":443"))
		k->host[hl - 4] = 0;
	snprintf(k->base, sizeof(k->base), "https://%s", k->host);
	memcpy(k->name, n, nl);
	memcpy(k->version, v, vl);
	k->hsm = host_hsm(k->host);
	return 0;
}

/* Is @kid (from a vault answer or a blob) a version of @k's key?  0 and
 * @version filled, or -EINVAL. */
static int kid_of_key(const struct lc_azure_keyref *k, const char *kid, char version[65])
{
	struct lc_azure_keyref b;

	if (lc_azure_keyref_parse(kid, &b, NULL) || !b.version[0] || strcmp(b.host, k->host) ||
	    strcasecmp(b.name, k->name))
		return -EINVAL;
	memcpy(version, b.version, sizeof(b.version));
	return 0;
}

/* ---- blob ---------------------------------------------------------------- */

int lc_azure_blob_build(enum lc_azure_alg alg, const char *kid, const uint8_t *wrapped,
			size_t wlen, struct lc_buf *blob)
{
	size_t kl = kid ? strlen(kid) : 0, n = 0;
	uint8_t *p;

	blob->p = NULL;
	blob->len = 0;
	if ((alg != LC_AZURE_RSA_OAEP_256 && alg != LC_AZURE_A256KW) || !kl ||
	    kl > LC_AZURE_KID_MAX || !wlen || wlen > LC_AZURE_WRAPPED_MAX)
		return -EINVAL;
	p = malloc(10 + kl + wlen);
	if (!p)
		return -ENOMEM;
	memcpy(p, BLOB_MAGIC, 4);
	n = 4;
	p[n++] = BLOB_VERSION;
	p[n++] = (uint8_t)alg;
	p[n++] = (uint8_t)(kl >> 8);
	p[n++] = (uint8_t)kl;
	memcpy(p + n, kid, kl);
	n += kl;
	p[n++] = (uint8_t)(wlen >> 8);
	p[n++] = (uint8_t)wlen;
	memcpy(p + n, wrapped, wlen);
	blob->p = p;
	blob->len = n + wlen;
	return 0;
}

int lc_azure_blob_parse(const uint8_t *blob, size_t len, enum lc_azure_alg *alg,
			char kid[LC_AZURE_KID_MAX + 1], const uint8_t **wrapped, size_t *wlen,
			struct lc_error *err)
{
	size_t kl, wl;

	kid[0] = 0;
	*wrapped = NULL;
	*wlen = 0;
	*alg = LC_AZURE_ALG_NONE;
	if (len < 10 || memcmp(blob, BLOB_MAGIC, 4))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Azure Key Vault: the wrapped key is not an Azure blob (no LCAZ magic): made by another provider, or corrupt");
	if (blob[4] != BLOB_VERSION)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Azure Key Vault: wrapped key blob format %u is not one this agent reads (1)",
			      blob[4]);
	if (blob[5] != LC_AZURE_RSA_OAEP_256 && blob[5] != LC_AZURE_A256KW)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Azure Key Vault: wrapped key blob names unknown algorithm %u", blob[5]);
	kl = (size_t)blob[6] << 8 | blob[7];
	if (!kl || kl > LC_AZURE_KID_MAX || 8 + kl + 2 > len)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Azure Key Vault: wrapped key blob has a key id length of %zu (1..%d, within %zu bytes)",
			      kl, LC_AZURE_KID_MAX, len);
	for (size_t i = 0; i < kl; i++)
		if (blob[8 + i] < 0x21 || blob[8 + i] > 0x7e)
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "Azure Key Vault: wrapped key blob's key id is not printable ASCII");
	wl = (size_t)blob[8 + kl] << 8 | blob[9 + kl];
	if (!wl || wl > LC_AZURE_WRAPPED_MAX || 10 + kl + wl != len)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Azure Key Vault: wrapped key blob: %zu wrapped bytes announced, %zu present (1..%d)",
			      wl, len - 10 - kl, LC_AZURE_WRAPPED_MAX);
	memcpy(kid, blob + 8, kl);
	kid[kl] = 0;
	*alg = (enum lc_azure_alg)blob[5];
	*wrapped = blob + 10 + kl;
	*wlen = wl;
	return 0;
}

/* ---- answers ------------------------------------------------------------- */

void lc_azure_result_free(struct lc_azure_result *res)
{
	if (!res)
		return;
	free(res->value.p);
	lc_secret_free(&res->secret);
	memset(res, 0, sizeof(*res));
}

static const char *op_name(enum lc_azure_op op)
{
	static const char *const n[] = { "get key", "get deleted key", "wrapkey", "unwrapkey", "token" };

	return (unsigned int)op < sizeof(n) / sizeof(n[0]) ? n[op] : "?";
}

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3). */
static uint64_t retry_after_ms(const char *v, int64_t now)
{
	uint64_t ms = 0;

	if (!v || !*v)
		return 0;
	if (isdigit((unsigned char)*v)) {
		unsigned long long s = strtoull(v, NULL, 10);

		ms = s > LC_AZURE_RETRY_AFTER_MAX_MS / 1000 ? LC_AZURE_RETRY_AFTER_MAX_MS : s * 1000;
	} else {
		time_t t = curl_getdate(v, NULL);

		if (t > now)
			ms = (uint64_t)(t - now) * 1000;
	}
	return ms > LC_AZURE_RETRY_AFTER_MAX_MS ? LC_AZURE_RETRY_AFTER_MAX_MS : ms;
}

static bool code_is(const char *a, const char *b, const char *want)
{
	return !strcmp(a, want) || !strcmp(b, want);
}

static int error_answer(enum lc_azure_op op, long status, json_object *o, const char *ra,
			int64_t now, bool imds, struct lc_azure_result *res, struct lc_error *err)
{
	char code[64] = "", inner[64] = "", msg[160] = "", codes[140];
	const char *what = op_name(op);
	json_object *e = NULL, *ie;

	if (o && json_object_object_get_ex(o, "error", &e)) {
		if (json_object_is_type(e, json_type_object)) {
			lc_copy_printable(code, sizeof(code), lc_json_str(e, "code"));
			lc_copy_printable(msg, sizeof(msg), lc_json_str(e, "message"));
			lc_http_msg_scrub(msg, sizeof(msg));
			if (json_object_object_get_ex(e, "innererror", &ie) &&
			    json_object_is_type(ie, json_type_object))
				lc_copy_printable(inner, sizeof(inner), lc_json_str(ie, "code"));
		} else if (json_object_is_type(e, json_type_string)) {
			/* Microsoft identity platform: {"error":"invalid_client",
			 * "error_description":..., "error_codes":[7000215]} */
			json_object *ec, *c0;

			lc_copy_printable(code, sizeof(code), json_object_get_string(e));
			if (json_object_object_get_ex(o, "error_codes", &ec) &&
			    json_object_is_type(ec, json_type_array) && json_object_array_length(ec) &&
			    (c0 = json_object_array_get_idx(ec, 0)) && json_object_is_type(c0, json_type_int))
				snprintf(inner, sizeof(inner), "AADSTS%" PRId64, json_object_get_int64(c0));
		}
	}
	snprintf(codes, sizeof(codes), "%s%s%s%s", code[0] ? " " : "", code, inner[0] ? "/" : "", inner);
	res->retry_after_ms = retry_after_ms(ra, now);
	if (status == 429 || status == 408 || status >= 500 ||
	    (op == LC_AZURE_TOKEN && imds && (status == 404 || status == 410)))
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "Azure %s %s: HTTP %ld%s%s", op == LC_AZURE_TOKEN
			      ? (imds ? "managed identity (IMDS)" : "token endpoint") : "Key Vault", what,
			      status, codes, status == 429 ? " (throttled)" : "");
	if (op == LC_AZURE_TOKEN)
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
			      "Azure %s refused a token (HTTP %ld%s): check the %s",
			      imds ? "managed identity (IMDS)" : "token endpoint", status, codes,
			      imds ? "identity assigned to this machine and [azure-kv] client_id"
				   : "tenant, client id and secret or certificate in [azure-kv]");
	if (status == 401) {
		res->unauthorized = true;
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
			      "Key Vault %s: HTTP 401%s: the access token was refused (wrong tenant or resource for this vault?)",
			      what, codes);
	}
	if (status == 403) {
		static const struct { const char *code, *why; } denied[] = {
			{ "KeyDisabled", "the key is disabled" },
			{ "ForbiddenByPolicy", "no permission: the vault's access policy does not allow this operation to the agent's identity" },
			{ "ForbiddenByRbac", "no permission: no Azure RBAC role assignment allows this operation to the agent's identity" },
		};

		for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
			if (code_is(code, inner, denied[i].code))
				return lc_err(err, i ? -EACCES : -EKEYREVOKED, LC_ERRC_DENIED,
					      "Key Vault %s: HTTP 403 %s: %s%s%s", what, denied[i].code,
					      denied[i].why, msg[0] ? ": " : "", msg);
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
			      "Key Vault %s: HTTP 403%s: not an authoritative denial of the key (a firewall, network rule or proxy?)",
			      what, codes[0] ? codes : " without an error code");
	}
	if (status == 404) {
		if (code_is(code, inner, "KeyNotFound")) {
			res->not_found = true;
			return lc_err(err, -ENOENT, LC_ERRC_DENIED,
				      "Key Vault %s: HTTP 404 KeyNotFound: the key does not exist in this vault (deleted, or never created)",
				      what);
		}
		return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
			      "Key Vault %s: HTTP 404%s: not a Key Vault key answer (wrong host or path?)", what,
			      codes[0] ? codes : " without an error code");
	}
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "Key Vault %s: HTTP %ld%s%s%s", what, status,
		      codes[0] ? codes : " (no error code)", msg[0] ? ": " : "", msg);
}

static int bad_answer(enum lc_azure_op op, const char *why, struct lc_error *err)
{
	return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "Azure %s: malformed answer: %s",
		      op == LC_AZURE_TOKEN ? "token" : op_name(op), why);
}

/* An integer member, or a string of digits (IMDS sends "3599"). */
static bool int_member(json_object *o, const char *name, int64_t *v)
{
	json_object *m;

	if (!json_object_object_get_ex(o, name, &m))
		return false;
	if (json_object_is_type(m, json_type_int)) {
		*v = json_object_get_int64(m);
		return true;
	}
	if (json_object_is_type(m, json_type_string)) {
		const char *s = json_object_get_string(m);
		char *end;
		long long x;

		if (!s || !isdigit((unsigned char)*s) || strlen(s) > 12)
			return false;
		x = strtoll(s, &end, 10);
		if (*end)
			return false;
		*v = x;
		return true;
	}
	return false;
}

static int parse_key(json_object *o, int64_t now, struct lc_azure_result *res)
{
	json_object *key, *attr, *ops, *en;
	const char *kid, *kty;
	int64_t t;

	if (json_object_object_get_ex(o, "deletedDate", NULL)) {
		res->state = LC_KEY_PENDING_DELETION;
		if (int_member(o, "scheduledPurgeDate", &t) && t > 0 && t < 100000000000LL)
			res->deletion_date = t;
		snprintf(res->state_why, sizeof(res->state_why), "deleted, recoverable until it is purged");
	}
	if (!json_object_object_get_ex(o, "key", &key) || !json_object_is_type(key, json_type_object))
		return -EINVAL;
	kid = lc_json_str(key, "kid");
	kty = lc_json_str(key, "kty");
	if (!kid || !kty || strlen(kid) > LC_AZURE_KID_MAX)
		return -EINVAL;
	lc_copy_printable(res->kid, sizeof(res->kid), kid);
	lc_copy_printable(res->kty, sizeof(res->kty), kty);
	if (!strcmp(kty, "RSA") || !strcmp(kty, "RSA-HSM"))
		res->alg = LC_AZURE_RSA_OAEP_256;
	else if (!strcmp(kty, "oct") || !strcmp(kty, "oct-HSM"))
		res->alg = LC_AZURE_A256KW;
	res->can_wrap = res->can_unwrap = true;
	if (json_object_object_get_ex(key, "key_ops", &ops)) {
		if (!json_object_is_type(ops, json_type_array))
			return -EINVAL;
		res->can_wrap = res->can_unwrap = false;
		for (size_t i = 0; i < json_object_array_length(ops) && i < 32; i++) {
			json_object *e = json_object_array_get_idx(ops, i);
			const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";

			res->can_wrap |= !strcmp(s, "wrapKey");
			res->can_unwrap |= !strcmp(s, "unwrapKey");
		}
	}
	if (!json_object_object_get_ex(o, "attributes", &attr) ||
	    !json_object_is_type(attr, json_type_object) ||
	    !json_object_object_get_ex(attr, "enabled", &en) || !json_object_is_type(en, json_type_boolean))
		return -EINVAL;
	if (res->state == LC_KEY_PENDING_DELETION)
		return 0;
	res->state = LC_KEY_ENABLED;
	if (!json_object_get_boolean(en)) {
		res->state = LC_KEY_DISABLED;
		snprintf(res->state_why, sizeof(res->state_why), "disabled (attributes.enabled is false)");
	}
	/* Recorded, not judged here: see "Clocks" in kms-azure.h. */
	if (int_member(attr, "exp", &t) && t > 0)
		res->exp = t;
	if (int_member(attr, "nbf", &t) && t > 0)
		res->nbf = t;
	(void)now;
	return 0;
}

bool lc_azure_window_closed(const struct lc_azure_result *res, int64_t server_now, char *why,
			    size_t size)
{
	if (server_now <= 0)
		return false;
	if (res->exp && res->exp + LC_AZURE_WINDOW_SLACK_S <= server_now) {
		snprintf(why, size, "expired (attributes.exp %" PRId64 " is %" PRId64 " s before the vault's clock)",
			 res->exp, server_now - res->exp);
		return true;
	}
	if (res->nbf && res->nbf > server_now + LC_AZURE_WINDOW_SLACK_S) {
		snprintf(why, size, "not yet valid (attributes.nbf %" PRId64 " is %" PRId64 " s after the vault's clock)",
			 res->nbf, res->nbf - server_now);
		return true;
	}
	return false;
}

/* An access token goes into a header: only the characters of RFC 6750's
 * b64token (no CR, LF, space or quote can reach the request). */
static bool token_chars_ok(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && !strchr("-._~+/=", t[i]))
			return false;
	return n > 0;
}

int lc_azure_parse_response(enum lc_azure_op op, long status, const char *body, size_t len,
			    const char *retry_after, int64_t now, bool imds,
			    struct lc_azure_result *res, struct lc_error *err)
{
	json_object *o;
	const char *s;
	size_t n = 0;
	int r = 0;

	memset(res, 0, sizeof(*res));
	o = body ? lc_json_parse(body, len) : NULL;
	if (status < 200 || status >= 300) {
		r = error_answer(op, status, o, retry_after, now, imds, res, err);
		lc_json_put_wiped(o);
		return r;
	}
	if (!o)
		return bad_answer(op, "not a JSON object", err);
	switch (op) {
	case LC_AZURE_GET_KEY:
	case LC_AZURE_DELETED_KEY:
		if (parse_key(o, now, res))
			r = bad_answer(op, "no key.kid, key.kty or attributes.enabled", err);
		else if (op == LC_AZURE_DELETED_KEY && res->state != LC_KEY_PENDING_DELETION)
			r = bad_answer(op, "a deleted key without deletedDate", err);
		break;
	case LC_AZURE_WRAP:
		s = lc_json_str(o, "kid");
		if (!s || !*s || strlen(s) > LC_AZURE_KID_MAX) {
			r = bad_answer(op, "no kid of at most 255 characters", err);
			break;
		}
		lc_copy_printable(res->kid, sizeof(res->kid), s);
		res->value.p = malloc(LC_AZURE_WRAPPED_MAX + 2);
		if (!res->value.p) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		s = lc_json_str(o, "value");
		if (!s || b64url_decode(s, strlen(s), LC_AZURE_WRAPPED_MAX, res->value.p, &n) || !n) {
			r = bad_answer(op, "no base64url value of at most 1024 bytes", err);
			break;
		}
		res->value.len = n;
		break;
	case LC_AZURE_UNWRAP:
		lc_copy_printable(res->kid, sizeof(res->kid), lc_json_str(o, "kid"));
		/* Up to what an RSA-8192 key can wrap: a longer plaintext than
		 * lakecrypt's bound format is a foreign blob (INVALID, later). */
		if (lc_secret_alloc(&res->secret, LC_AZURE_WRAPPED_MAX + 2)) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		s = lc_json_str(o, "value");
		if (!s || b64url_decode(s, strlen(s), LC_AZURE_WRAPPED_MAX, res->secret.p, &n) || !n) {
			r = bad_answer(op, "no base64url value of at most 1024 bytes", err);
			break;
		}
		res->secret.len = n;
		break;
	case LC_AZURE_TOKEN: {
		static const char prefix[] = "Authorization: Bearer ";
		int64_t t;
		size_t tl;

		s = lc_json_str(o, "access_token");
		tl = s ? strlen(s) : 0;
		if (!tl || tl > LC_AZURE_TOKEN_MAX || !token_chars_ok(s, tl)) {
			r = bad_answer(op, "no access_token of base64url characters, at most 16 KiB", err);
			break;
		}
		if (int_member(o, "expires_in", &t) && t > 0 && t < 366 * 86400)
			res->expires_at = now + t;
		else if (int_member(o, "expires_on", &t) && t > now && t < now + 366 * 86400)
			res->expires_at = t;
		else {
			r = bad_answer(op, "no expires_in or expires_on in the coming year", err);
			break;
		}
		if (lc_secret_alloc(&res->secret, sizeof(prefix) + tl)) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		memcpy(res->secret.p, prefix, sizeof(prefix) - 1);
		memcpy(res->secret.p + sizeof(prefix) - 1, s, tl);
		res->secret.p[sizeof(prefix) - 1 + tl] = 0;
		res->secret.len = sizeof(prefix) - 1 + tl;
		break;
	}
	}
	lc_json_put_wiped(o);
	if (r) {
		lc_azure_result_free(res);
		return r;
	}
	return 0;
}

/* ---- the client ---------------------------------------------------------- */

enum cred_kind { CRED_MANAGED_IDENTITY, CRED_CLIENT_SECRET, CRED_CLIENT_CERTIFICATE };
static const char *const cred_names[] = { "managed-identity", "client-secret", "client-certificate" };

struct lc_kms_azure {
	struct lc_http *http;		/* vault and token endpoint (https only) */
	struct lc_http *imds;		/* managed identity (http allowed) */
	enum cred_kind kind;
	char tenant[80];
	char client_id[80];
	char *authority;
	char *imds_endpoint;
	char *resource;			/* configured, or NULL: by host */
	uint64_t imds_timeout_ms;
	struct lc_secret secret;	/* client secret, NUL-terminated */
	EVP_PKEY *pkey;			/* client certificate's key */
	char x5t[32];
	struct lc_token_cache tok[2];	/* 0: vault (or configured) resource, 1: Managed HSM */
};

/* Read a secret file into locked memory after checking that only its
 * owner (root or the agent's user) can read it. */
static int read_secret_file(const char *what, const char *path, struct lc_secret *out,
			    struct lc_error *err)
{
	struct stat st;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "Azure Key Vault: %s %s: %s", what, path,
			      strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "Azure Key Vault: %s %s is not a regular file",
			      what, path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: %s %s is open to group or others (mode %04o): chmod 600 it",
			      what, path, (unsigned int)(st.st_mode & 07777));
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		close(fd);
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: %s %s belongs to uid %u: it must belong to root or the agent's user",
			      what, path, (unsigned int)st.st_uid);
	}
	if (!st.st_size || st.st_size > SECRET_FILE_MAX || lc_secret_alloc(out, (size_t)st.st_size + 1)) {
		close(fd);
		return lc_err(err, -EFBIG, LC_ERRC_MISCONFIG, "Azure Key Vault: %s %s is empty or above %d bytes",
			      what, path, SECRET_FILE_MAX);
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

static int load_certificate(struct lc_kms_azure *a, const char *path, struct lc_error *err)
{
	struct lc_secret pem = { 0 };
	unsigned char der_hash[SHA_DIGEST_LENGTH];
	unsigned char *der = NULL;
	X509 *cert = NULL;
	BIO *b;
	int r, l;

	r = read_secret_file("client certificate", path, &pem, err);
	if (r)
		return r;
	b = BIO_new_mem_buf(pem.p, (int)pem.len);
	if (b)
		cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(pem.p, (int)pem.len);
	if (b)
		a->pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	lc_secret_free(&pem);
	if (!cert || !a->pkey) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "Azure Key Vault: client certificate %s must hold a PEM certificate and its unencrypted private key",
			   path);
		goto out;
	}
	if (EVP_PKEY_get_base_id(a->pkey) != EVP_PKEY_RSA || X509_check_private_key(cert, a->pkey) != 1) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "Azure Key Vault: client certificate %s: the key must be RSA (RS256 assertions) and match the certificate",
			   path);
		goto out;
	}
	l = i2d_X509(cert, &der);
	if (l <= 0 || !SHA1(der, (size_t)l, der_hash)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	lc_base64url_encode(der_hash, sizeof(der_hash), a->x5t);	/* 28 + 1 of 32 bytes */
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(cert);
	if (r) {
		EVP_PKEY_free(a->pkey);
		a->pkey = NULL;
	}
	return r;
}

static bool id_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

static char *url_dup(const char *u, const char *dflt, bool http_ok)
{
	char *d;
	size_t l;

	if (!u || !*u)
		u = dflt;
	l = strlen(u);
	if (l < 9 || l > 300 || (strncmp(u, "https://", 8) && !(http_ok && !strncmp(u, "http://", 7))))
		return NULL;
	for (size_t i = 0; i < l; i++)
		if (u[i] <= 0x20 || u[i] >= 0x7f || u[i] == '"' || u[i] == '\\' || u[i] == '?' || u[i] == '#')
			return NULL;
	d = strdup(u);
	if (d && d[l - 1] == '/')
		d[l - 1] = 0;
	return d;
}

int lc_kms_azure_new(struct lc_kms_azure **out, const struct lc_kms_azure_config *cfg,
		     struct lc_error *err)
{
	struct lc_http_opts o = { .ca_file = cfg->ca_file, .connect_timeout_ms = cfg->connect_timeout_ms,
				  .max_response = LC_AZURE_MAX_RESPONSE, .what = "Azure Key Vault" };
	struct lc_http_opts im = { .max_response = LC_AZURE_MAX_RESPONSE, .allow_http = true,
				   .what = "Azure managed identity (IMDS)" };
	struct lc_kms_azure *a;
	int r;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	for (int i = 0; i < 2; i++)
		lc_token_cache_init(&a->tok[i], LC_AZURE_REFRESH_S);
	a->kind = CRED_MANAGED_IDENTITY;
	if (cfg->credentials && *cfg->credentials) {
		size_t i;

		for (i = 0; i < sizeof(cred_names) / sizeof(cred_names[0]); i++)
			if (!strcmp(cfg->credentials, cred_names[i]))
				break;
		if (i == sizeof(cred_names) / sizeof(cred_names[0])) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: unknown credentials \"%.64s\": expected managed-identity, client-secret or client-certificate",
				   cfg->credentials);
			goto fail;
		}
		a->kind = (enum cred_kind)i;
	}
	if (cfg->client_id && *cfg->client_id) {
		if (!id_ok(cfg->client_id, sizeof(a->client_id))) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: client_id \"%.80s\" is not an application (client) id", cfg->client_id);
			goto fail;
		}
		snprintf(a->client_id, sizeof(a->client_id), "%s", cfg->client_id);
	}
	if (a->kind != CRED_MANAGED_IDENTITY) {
		if (!id_ok(cfg->tenant_id, sizeof(a->tenant)) || !a->client_id[0]) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: credentials %s need tenant_id (a directory id or domain) and client_id in [azure-kv]",
				   cred_names[a->kind]);
			goto fail;
		}
		snprintf(a->tenant, sizeof(a->tenant), "%s", cfg->tenant_id);
		a->authority = url_dup(cfg->authority, DEFAULT_AUTHORITY, false);
		if (!a->authority) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: authority \"%.100s\" is not an https:// URL without query",
				   cfg->authority ? cfg->authority : "");
			goto fail;
		}
	}
	if (a->kind == CRED_CLIENT_SECRET) {
		if (!cfg->client_secret_file || !*cfg->client_secret_file) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: credentials client-secret need client_secret_file in [azure-kv]");
			goto fail;
		}
		r = read_secret_file("client secret file", cfg->client_secret_file, &a->secret, err);
		if (r)
			goto fail;
		while (a->secret.len && isspace(a->secret.p[a->secret.len - 1]))
			a->secret.p[--a->secret.len] = 0;
		if (!a->secret.len) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "Azure Key Vault: client secret file %s is blank",
				   cfg->client_secret_file);
			goto fail;
		}
	} else if (a->kind == CRED_CLIENT_CERTIFICATE) {
		if (!cfg->client_certificate_file || !*cfg->client_certificate_file) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: credentials client-certificate need client_certificate_file in [azure-kv]");
			goto fail;
		}
		r = load_certificate(a, cfg->client_certificate_file, err);
		if (r)
			goto fail;
	}
	a->imds_endpoint = url_dup(cfg->imds_endpoint, DEFAULT_IMDS, true);
	if (!a->imds_endpoint) {
		r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			   "Azure Key Vault: imds_endpoint \"%.100s\" is not an http(s):// URL without query",
			   cfg->imds_endpoint ? cfg->imds_endpoint : "");
		goto fail;
	}
	if (cfg->resource && *cfg->resource) {
		a->resource = url_dup(cfg->resource, NULL, false);
		if (!a->resource) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: resource \"%.100s\" is not an https:// URL (https://vault.azure.net, https://managedhsm.azure.net)",
				   cfg->resource);
			goto fail;
		}
	}
	a->imds_timeout_ms = cfg->imds_timeout_ms ? cfg->imds_timeout_ms : LC_AZURE_IMDS_TIMEOUT_MS;
	im.connect_timeout_ms = a->imds_timeout_ms;
	r = lc_http_new(&a->http, &o, err);
	if (!r)
		r = lc_http_new(&a->imds, &im, err);
	if (r)
		goto fail;
	*out = a;
	return 0;
fail:
	lc_kms_azure_free(a);
	return r;
}

void lc_kms_azure_free(struct lc_kms_azure *a)
{
	if (!a)
		return;
	for (int i = 0; i < 2; i++)
		lc_token_cache_destroy(&a->tok[i]);
	lc_secret_free(&a->secret);
	EVP_PKEY_free(a->pkey);
	lc_http_free(a->http);
	lc_http_free(a->imds);
	free(a->authority);
	free(a->imds_endpoint);
	free(a->resource);
	free(a);
}

/* ---- tokens -------------------------------------------------------------- */

/*
 * Request text is built with lc_sb (http.h); whatever carries a secret (a
 * client secret, a signed assertion, a key to wrap) is written straight
 * into locked memory of its computed size instead.
 */

/* @pre (request text) then @n bytes of @secret form-encoded, into locked
 * @out (@len bytes used, NUL-terminated).  0 or -ENOMEM. */
static int locked_form(const struct lc_sb *pre, const char *secret, size_t n, struct lc_secret *out,
		       size_t *len)
{
	if (pre->oom || lc_secret_alloc(out, pre->len + 3 * n + 1))
		return -ENOMEM;
	memcpy(out->p, pre->p, pre->len);
	*len = pre->len + lc_form_encode(secret, n, (char *)out->p + pre->len);
	return 0;
}

/* {"alg":"ALG","value":"<base64url of @n bytes at @p>"} into locked @out
 * (@len bytes used): the wrapkey / unwrapkey request body. */
static int crypt_body(enum lc_azure_alg alg, const uint8_t *p, size_t n, struct lc_secret *out,
		      size_t *len, struct lc_error *err)
{
	char pre[48];
	int pl = snprintf(pre, sizeof(pre), "{\"alg\":\"%s\",\"value\":\"", alg_name(alg));
	size_t o;

	if (lc_secret_alloc(out, (size_t)pl + 4 * ((n + 2) / 3) + 3))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	memcpy(out->p, pre, (size_t)pl);
	o = (size_t)pl + lc_base64url_encode(p, n, (char *)out->p + pl);
	memcpy(out->p + o, "\"}", 3);
	*len = o + 2;
	return 0;
}

/* RFC 7523 client assertion: header.payload.signature, RS256, into locked
 * @out (@out_len bytes; the header and claims are not secret, the whole
 * signed assertion is a credential for its 10 minutes). */
static int make_assertion(struct lc_kms_azure *a, const char *aud, struct lc_secret *out,
			  size_t *out_len, struct lc_error *err)
{
	char hdr[128], payload[800], jti[37];
	uint8_t rnd[16];
	struct lc_sb sig_in = { 0 };
	unsigned char *sig = NULL;
	size_t sl = 0, o;
	EVP_MD_CTX *md = NULL;
	int64_t now = (int64_t)time(NULL);
	int r;

	r = lc_rand_bytes(rnd, sizeof(rnd), false, "a JWT id", err);
	if (r)
		return r;
	rnd[6] = (rnd[6] & 0x0f) | 0x40;
	rnd[8] = (rnd[8] & 0x3f) | 0x80;
	snprintf(jti, sizeof(jti), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9],
		 rnd[10], rnd[11], rnd[12], rnd[13], rnd[14], rnd[15]);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"%s\"}", a->x5t);
	/* aud is a checked URL (no quote or backslash), ids are [0-9A-Za-z.-]. */
	snprintf(payload, sizeof(payload),
		 "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"jti\":\"%s\",\"nbf\":%" PRId64
		 ",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
		 aud, a->client_id, a->client_id, jti, now, now, now + 600);
	lc_sb_put_b64url(&sig_in, hdr, strlen(hdr));
	lc_sb_puts(&sig_in, ".");
	lc_sb_put_b64url(&sig_in, payload, strlen(payload));
	if (sig_in.oom) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, a->pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &sl, (const unsigned char *)sig_in.p, sig_in.len) != 1 ||
	    !(sig = malloc(sl)) ||
	    EVP_DigestSign(md, sig, &sl, (const unsigned char *)sig_in.p, sig_in.len) != 1) {
		r = lc_err(err, -EIO, LC_ERRC_INTERNAL, "Azure Key Vault: cannot sign the client assertion (OpenSSL)");
		goto out;
	}
	if (lc_secret_alloc(out, sig_in.len + 1 + 4 * ((sl + 2) / 3) + 1)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	memcpy(out->p, sig_in.p, sig_in.len);
	out->p[sig_in.len] = '.';
	o = sig_in.len + 1;
	*out_len = o + lc_base64url_encode(sig, sl, (char *)out->p + o);
	r = 0;
out:
	if (sig)
		lc_wipe(sig, sl);
	free(sig);
	EVP_MD_CTX_free(md);
	free(sig_in.p);
	return r;
}

static const char *resource_of(const struct lc_kms_azure *a, const struct lc_azure_keyref *k, int *slot)
{
	*slot = 0;
	if (a->resource)
		return a->resource;
	if (k->hsm) {
		*slot = 1;
		return RES_HSM;
	}
	return RES_VAULT;
}

struct fetch_arg {
	struct lc_kms_azure *a;
	const char *resource;
	uint64_t t0, timeout_ms;
};

/* Fetch a token for @f->resource (lc_token_fetch_fn, oauth-token.h):
 * called with that resource's cache locked. */
static int token_fetch(void *arg, struct lc_secret *auth, int64_t *lifetime_s,
		       uint64_t *retry_after, struct lc_error *err)
{
	const struct fetch_arg *f = arg;
	struct lc_kms_azure *a = f->a;
	const char *resource = f->resource;
	uint64_t t0 = f->t0, timeout_ms = f->timeout_ms;
	struct lc_http_response resp = { 0 };
	struct lc_azure_result res;
	struct lc_sb url = { 0 }, pre = { 0 };
	struct lc_secret body = { 0 };
	size_t blen = 0;
	uint64_t left;
	bool imds = a->kind == CRED_MANAGED_IDENTITY;
	int r;

	r = left_ms(t0, timeout_ms, &left, "a token was fetched", err);
	if (r)
		return r;
	if (imds) {
		const char *hdrs[] = { "Metadata: true", NULL };

		if (!left || left > a->imds_timeout_ms)
			left = a->imds_timeout_ms;
		lc_sb_puts(&url, a->imds_endpoint);
		lc_sb_puts(&url, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=");
		lc_sb_put_form(&url, resource, strlen(resource));
		if (a->client_id[0]) {
			lc_sb_puts(&url, "&client_id=");
			lc_sb_puts(&url, a->client_id);
		}
		if (url.oom) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			goto out;
		}
		r = lc_http_request(a->imds, "GET", url.p, hdrs, NULL, 0, NULL, left, &resp, err);
	} else {
		const char *hdrs[] = { "Content-Type: application/x-www-form-urlencoded",
				       "Accept: application/json", NULL };

		lc_sb_puts(&url, a->authority);
		lc_sb_puts(&url, "/");
		lc_sb_puts(&url, a->tenant);
		lc_sb_puts(&url, "/oauth2/v2.0/token");
		lc_sb_puts(&pre, "grant_type=client_credentials&client_id=");
		lc_sb_puts(&pre, a->client_id);
		lc_sb_puts(&pre, "&scope=");
		lc_sb_put_form(&pre, resource, strlen(resource));
		lc_sb_put_form(&pre, "/.default", 9);
		if (url.oom || pre.oom) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			goto out;
		}
		if (a->kind == CRED_CLIENT_SECRET) {
			lc_sb_puts(&pre, "&client_secret=");
			r = locked_form(&pre, (const char *)a->secret.p, a->secret.len, &body, &blen);
		} else {
			struct lc_secret as = { 0 };
			size_t alen = 0;

			r = make_assertion(a, url.p, &as, &alen, err);
			if (r)
				goto out;
			lc_sb_puts(&pre, "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=");
			r = locked_form(&pre, (const char *)as.p, alen, &body, &blen);
			lc_secret_free(&as);
		}
		if (r) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			goto out;
		}
		r = lc_http_request(a->http, "POST", url.p, hdrs, body.p, blen, "x-ms-request-id", left,
				    &resp, err);
	}
	if (r) {
		err_append(err, " (fetching an access token%s)", imds ? " from the managed identity endpoint" : "");
		goto out;
	}
	r = lc_azure_parse_response(LC_AZURE_TOKEN, resp.status, (const char *)resp.body.p, resp.len,
				    resp.retry_after, (int64_t)time(NULL), imds, &res, err);
	if (r) {
		*retry_after = res.retry_after_ms;	/* a throttled token endpoint's hint */
		goto out;
	}
	*auth = res.secret;
	memset(&res.secret, 0, sizeof(res.secret));
	*lifetime_s = res.expires_at - (int64_t)time(NULL);
	if (*lifetime_s <= 0)	/* an already expired token: try once, renew next time */
		*lifetime_s = 1;
	lc_azure_result_free(&res);
	lc_debug("Azure Key Vault: access token for %s from %s", resource,
		 imds ? "the managed identity" : cred_names[a->kind]);
out:
	lc_secret_free(&body);
	free(url.p);
	free(pre.p);
	lc_http_response_free(&resp);
	return r;
}

/* A copy of the Authorization header for the key's resource (fetched if
 * missing or due); *@slotp, *@gen: for lc_token_drop after a 401. */
static int token_header(struct lc_kms_azure *a, const struct lc_azure_keyref *k, uint64_t t0,
			uint64_t timeout_ms, struct lc_secret *hdr, unsigned int *gen, int *slotp,
			uint64_t *retry_after, struct lc_error *err)
{
	int slot;
	struct fetch_arg f = { .a = a, .t0 = t0, .timeout_ms = timeout_ms };

	f.resource = resource_of(a, k, &slot);
	*slotp = slot;
	return lc_token_get(&a->tok[slot], token_fetch, &f, hdr, gen, retry_after, err);
}

/* ---- vault requests ------------------------------------------------------- */

/* One vault request, again once with a fresh token after a 401. */
static int vault_call(struct lc_kms_azure *a, const struct lc_azure_keyref *k, enum lc_azure_op op,
		      const char *method, const char *url, const char *body, size_t blen,
		      uint64_t t0, uint64_t timeout_ms, struct lc_azure_result *res,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	memset(res, 0, sizeof(*res));
	for (int tryn = 0;; tryn++) {
		struct lc_http_response resp = { 0 };
		struct lc_secret auth = { 0 };
		unsigned int gen = 0;
		uint64_t left, hint = 0;
		int slot, r;

		r = token_header(a, k, t0, timeout_ms, &auth, &gen, &slot, &hint, err);
		if (r && reply)
			reply->retry_after_ms = hint;
		if (!r)
			r = left_ms(t0, timeout_ms, &left, "the vault was asked", err);
		if (!r) {
			const char *hdrs[] = { (const char *)auth.p, "Content-Type: application/json",
					       "Accept: application/json", NULL };

			r = lc_http_request(a->http, method, url, hdrs, body, blen, "x-ms-request-id", left,
					    &resp, err);
		}
		lc_secret_free(&auth);
		if (r)
			return r;
		if (reply)
			snprintf(reply->request_id, sizeof(reply->request_id), "%.127s", resp.request_id);
		r = lc_azure_parse_response(op, resp.status, (const char *)resp.body.p, resp.len,
					    resp.retry_after, (int64_t)time(NULL), false, res, err);
		res->server_now = lc_http_server_time(&resp);
		if (r && res->unauthorized) {
			lc_token_drop(&a->tok[slot], gen);
			if (tryn == 0) {
				lc_http_response_free(&resp);
				lc_azure_result_free(res);
				continue;
			}
			err_append(err, " (and again with a freshly fetched token)");
		}
		if (r && reply)
			reply->retry_after_ms = res->retry_after_ms;
		if (r && resp.request_id[0])
			err_append(err, " [request %.80s]", resp.request_id);
		lc_http_response_free(&resp);
		return r;
	}
}

static void fill_reply(struct lc_provider_reply *reply, const struct lc_azure_keyref *k,
		       const char *version)
{
	if (!reply)
		return;
	snprintf(reply->key_id, sizeof(reply->key_id), "%s/keys/%s", k->base, k->name);
	if (version && *version) {
		char kid[600];
		int n = snprintf(kid, sizeof(kid), "%s/keys/%s/%s", k->base, k->name, version);

		/* The versioned kid; the bare version if that would not fit. */
		memcpy(reply->key_version, (size_t)n < sizeof(reply->key_version) ? kid : version,
		       (size_t)n < sizeof(reply->key_version) ? (size_t)n + 1 : strlen(version) + 1);
	}
}

static int get_key(struct lc_kms_azure *a, const struct lc_azure_keyref *k, bool deleted,
		   uint64_t t0, uint64_t timeout_ms, struct lc_azure_result *res,
		   struct lc_provider_reply *reply, struct lc_error *err)
{
	char url[600];

	if (deleted)
		snprintf(url, sizeof(url), "%s/deletedkeys/%s?api-version=" LC_AZURE_API_VERSION, k->base, k->name);
	else
		snprintf(url, sizeof(url), "%s/keys/%s%s%s?api-version=" LC_AZURE_API_VERSION, k->base, k->name,
			 k->version[0] ? "/" : "", k->version);
	return vault_call(a, k, deleted ? LC_AZURE_DELETED_KEY : LC_AZURE_GET_KEY, "GET", url, NULL, 0,
			  t0, timeout_ms, res, reply, err);
}

/* What makes an enabled key unusable for lakecrypt (MISCONFIG), or 0. */
static int key_usable(const struct lc_azure_keyref *k, const struct lc_azure_result *res,
		      struct lc_error *err)
{
	if (res->alg == LC_AZURE_ALG_NONE)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key %s/keys/%s is of type %s, which cannot wrap: use an RSA / RSA-HSM key (RSA-OAEP-256) or a Managed HSM oct-HSM key (A256KW)",
			      k->base, k->name, res->kty);
	if (!res->can_wrap || !res->can_unwrap)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "Azure Key Vault: key %s/keys/%s does not permit %s%s%s in its key_ops: add them (az keyvault key set-attributes --ops wrapKey unwrapKey ...)",
			      k->base, k->name, res->can_wrap ? "" : "wrapKey",
			      !res->can_wrap && !res->can_unwrap ? " and " : "", res->can_unwrap ? "" : "unwrapKey");
	return 0;
}

static int bind_context(const struct lc_secret *pt, const char *context, struct lc_secret *out,
			struct lc_error *err)
{
	if (!context || !*context)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "Azure Key Vault: no encryption context to bind");
	if (lc_secret_alloc(out, LC_AZURE_BIND_HDR + pt->len))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	memcpy(out->p, BIND_MAGIC, 8);
	SHA256((const unsigned char *)context, strlen(context), out->p + 8);
	memcpy(out->p + LC_AZURE_BIND_HDR, pt->p, pt->len);
	return 0;
}

static int azure_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		      const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_azure *a = priv;
	struct lc_azure_keyref k;
	struct lc_azure_result res = { 0 };
	struct lc_secret bound = { 0 };
	struct lc_secret body = { 0 };
	size_t blen = 0;
	char version[65], url[600];
	uint64_t t0 = mono_ms();
	enum lc_azure_alg alg;
	int r;

	r = lc_azure_keyref_parse(key_ref, &k, err);
	if (r)
		return r;
	if (pt->len < 8 || pt->len > LC_AZURE_MAX_PLAINTEXT || pt->len % 8)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "Azure Key Vault: a key to wrap must be 8..%d bytes, a multiple of 8 (got %zu)",
			      LC_AZURE_MAX_PLAINTEXT, pt->len);
	r = bind_context(pt, context, &bound, err);
	if (r)
		return r;
	/* The key's type (algorithm), state and current version. */
	r = get_key(a, &k, false, t0, timeout_ms, &res, reply, err);
	if (r)
		goto out;
	if (kid_of_key(&k, res.kid, version)) {
		r = lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
			   "Azure Key Vault: the vault answered for key \"%.200s\", not a version of %s/keys/%s",
			   res.kid, k.base, k.name);
		goto out;
	}
	if (res.state != LC_KEY_ENABLED) {
		r = lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED, "Azure Key Vault: key %s/keys/%s is %s",
			   k.base, k.name, res.state_why);
		goto out;
	}
	r = key_usable(&k, &res, err);
	if (r)
		goto out;
	{
		char why[128];

		/* Key Vault refuses wrapKey outside nbf..exp by its own clock;
		 * not a revocation (unwrap still works): MISCONFIG. */
		if (lc_azure_window_closed(&res, res.server_now, why, sizeof(why))) {
			r = lc_err(err, -EKEYEXPIRED, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: key %s/keys/%s is %s (Date: %" PRId64 "): Key Vault refuses wrapKey outside the key's nbf..exp window but still unwraps: extend exp (az keyvault key set-attributes --expires) or rotate to a valid key",
				   k.base, k.name, why, res.server_now);
			goto out;
		}
	}
	alg = res.alg;
	lc_azure_result_free(&res);
	snprintf(url, sizeof(url), "%s/keys/%s/%s/wrapkey?api-version=" LC_AZURE_API_VERSION, k.base,
		 k.name, version);
	r = crypt_body(alg, bound.p, bound.len, &body, &blen, err);	/* the KEK: locked */
	if (r)
		goto out;
	r = vault_call(a, &k, LC_AZURE_WRAP, "POST", url, (const char *)body.p, blen, t0,
		       timeout_ms, &res, reply, err);
	if (r)
		goto out;
	/* The answer's kid is what unwrap will use: it must be this key. */
	if (kid_of_key(&k, res.kid, version)) {
		r = lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
			   "Azure Key Vault: wrapkey answered with key \"%.200s\", not a version of %s/keys/%s",
			   res.kid, k.base, k.name);
		goto out;
	}
	{
		char kid[LC_AZURE_KID_MAX + 1];

		if ((size_t)snprintf(kid, sizeof(kid), "%s/keys/%s/%s", k.base, k.name, version) >= sizeof(kid)) {
			r = lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG,
				   "Azure Key Vault: the versioned key id of %s/keys/%s is above %d characters",
				   k.base, k.name, LC_AZURE_KID_MAX);
			goto out;
		}
		r = lc_azure_blob_build(alg, kid, res.value.p, res.value.len, blob);
		if (r) {
			r = lc_err(err, r, r == -ENOMEM ? LC_ERRC_INTERNAL : LC_ERRC_TRANSIENT,
				   "Azure Key Vault: wrapkey answer does not fit the blob");
			goto out;
		}
	}
	fill_reply(reply, &k, version);
out:
	lc_azure_result_free(&res);
	lc_secret_free(&bound);
	lc_secret_free(&body);
	return r;
}

static int azure_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_azure *a = priv;
	struct lc_azure_keyref k;
	struct lc_azure_result res = { 0 };
	struct lc_secret body = { 0 };
	size_t blen = 0;
	char kid[LC_AZURE_KID_MAX + 1], version[65], url[600];
	unsigned char want[SHA256_DIGEST_LENGTH];
	const uint8_t *wrapped;
	uint64_t t0 = mono_ms();
	enum lc_azure_alg alg;
	size_t wlen;
	int r;

	r = lc_azure_keyref_parse(key_ref, &k, err);
	if (r)
		return r;
	if (!context || !*context)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "Azure Key Vault: no encryption context to check");
	r = lc_azure_blob_parse(blob->p, blob->len, &alg, kid, &wrapped, &wlen, err);
	if (r)
		return r;
	if (kid_of_key(&k, kid, version))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "Azure Key Vault: the wrapped key names \"%.200s\", which is not a version of the configured key %s/keys/%s: refused (a header cannot choose the vault or key)",
			      kid, k.base, k.name);
	snprintf(url, sizeof(url), "%s/keys/%s/%s/unwrapkey?api-version=" LC_AZURE_API_VERSION, k.base,
		 k.name, version);
	r = crypt_body(alg, wrapped, wlen, &body, &blen, err);
	if (r)
		goto out;
	r = vault_call(a, &k, LC_AZURE_UNWRAP, "POST", url, (const char *)body.p, blen, t0,
		       timeout_ms, &res, reply, err);
	if (r)
		goto out;
	SHA256((const unsigned char *)context, strlen(context), want);
	if (res.secret.len < LC_AZURE_BIND_HDR + 8 ||
	    res.secret.len > LC_AZURE_BIND_HDR + LC_AZURE_MAX_PLAINTEXT || memcmp(res.secret.p, BIND_MAGIC, 8)) {
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "Azure Key Vault: the unwrapped key is not in lakecrypt's bound format (LCAZctx1): not wrapped by lakecrypt");
		goto out;
	}
	if (CRYPTO_memcmp(res.secret.p + 8, want, sizeof(want))) {
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "Azure Key Vault: the encryption context did not match: this wrapped key belongs to another volume, workspace, project or key configuration");
		goto out;
	}
	if (lc_secret_alloc(pt, res.secret.len - LC_AZURE_BIND_HDR)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	memcpy(pt->p, res.secret.p + LC_AZURE_BIND_HDR, pt->len);
	fill_reply(reply, &k, version);
out:
	lc_wipe(want, sizeof(want));
	lc_azure_result_free(&res);
	lc_secret_free(&body);
	return r;
}

static int azure_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			   struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_azure *a = priv;
	struct lc_azure_keyref k;
	struct lc_azure_result res = { 0 }, del = { 0 };
	char version[65] = "";
	uint64_t t0 = mono_ms();
	int r;

	r = lc_azure_keyref_parse(key_ref, &k, err);
	if (r)
		return r;
	r = get_key(a, &k, false, t0, timeout_ms, &res, reply, err);
	if (r && res.not_found) {
		/* Deleted but recoverable (soft delete) is pending deletion;
		 * without keys/deleted/read or if purged, KeyNotFound stands. */
		struct lc_error e2;

		if (!get_key(a, &k, true, t0, timeout_ms, &del, NULL, &e2) &&
		    del.state == LC_KEY_PENDING_DELETION) {
			fill_reply(reply, &k, NULL);
			if (reply) {
				reply->state = LC_KEY_PENDING_DELETION;
				reply->deletion_date = del.deletion_date;
			}
			lc_err_clear(err);
			r = 0;
		}
		goto out;
	}
	if (r)
		goto out;
	if (kid_of_key(&k, res.kid, version)) {
		r = lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
			   "Azure Key Vault: the vault answered for key \"%.200s\", not a version of %s/keys/%s",
			   res.kid, k.base, k.name);
		goto out;
	}
	if (res.state == LC_KEY_ENABLED) {
		r = key_usable(&k, &res, err);
		if (r)
			goto out;
	}
	fill_reply(reply, &k, version);
	if (reply) {
		reply->state = res.state;
		reply->deletion_date = res.deletion_date;
	}
	if (res.state != LC_KEY_ENABLED)
		lc_info("Azure Key Vault: key %s/keys/%s is %s", k.base, k.name, res.state_why);
	else {
		char why[128];

		/* Still enabled: Key Vault unwraps outside nbf..exp. */
		if (lc_azure_window_closed(&res, res.server_now, why, sizeof(why)))
			lc_warn("Azure Key Vault: key %s/keys/%s is %s: volumes still open (Key Vault unwraps), but new wraps are refused",
				k.base, k.name, why);
	}
out:
	lc_azure_result_free(&res);
	lc_azure_result_free(&del);
	return r;
}

/* The identity operation: the oid and tid of the token for @key_ref's
 * resource (kms-azure.h, lc_azure_token_principal). */
static int azure_identity(void *priv, const char *key_ref, uint64_t timeout_ms, char principal[],
			  size_t size, struct lc_provider_reply *reply, struct lc_error *err)
{
	static const char pre[] = "Authorization: Bearer ";
	struct lc_kms_azure *a = priv;
	struct lc_azure_keyref k;
	struct lc_secret hdr = { 0 };
	unsigned int gen = 0;
	uint64_t ra = 0;
	int slot = 0, r;

	(void)reply;
	if (size)
		principal[0] = 0;
	r = lc_azure_keyref_parse(key_ref, &k, err);
	if (!r)
		r = token_header(a, &k, mono_ms(), timeout_ms, &hdr, &gen, &slot, &ra, err);
	if (r)
		return r;
	if (strncmp((const char *)hdr.p, pre, sizeof(pre) - 1))
		r = lc_err(err, -EPROTO, LC_ERRC_INTERNAL, "Azure: the token header is not a Bearer token");
	else
		r = lc_azure_token_principal((const char *)hdr.p + sizeof(pre) - 1,
					     strlen((const char *)hdr.p + sizeof(pre) - 1), principal, size,
					     err);
	lc_secret_free(&hdr);
	return r;
}

static void azure_destroy(void *priv)
{
	lc_kms_azure_free(priv);
}

const struct lc_provider_ops lc_kms_azure_ops = {
	.name = LC_KMS_AZURE_NAME,
	.wrap = azure_wrap,
	.unwrap = azure_unwrap,
	.key_state = azure_key_state,
	.destroy = azure_destroy,
	.identity = azure_identity,
};

void lc_kms_azure_provider_init(struct lc_provider *p, struct lc_kms_azure *az)
{
	lc_provider_init(p, &lc_kms_azure_ops, az);
}
