// SPDX-License-Identifier: GPL-2.0
/*
 * Azure: who the agent is, from the access token the provider already
 * obtains (kms-azure.h, the provider's identity operation).  The token
 * is a JWT (RFC 7519) whose payload (the second dot-separated part,
 * base64url without padding, RFC 7515 section 2) holds the Microsoft
 * identity platform's claims ("Access token claims reference"): "oid",
 * the object id of the principal (the service principal of an app
 * registration, or the managed identity), and "tid", its tenant.  The
 * token's signature is not checked here: it comes from the token
 * endpoint over TLS, and is only read to name the principal.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "http.h"
#include "kms-azure.h"
#include "secmem.h"

#define JWT_PAYLOAD_MAX	(16 * 1024)	/* base64url characters */
#define CLAIM_MAX	64

/* Claim @name of @o: 1..CLAIM_MAX characters of [0-9A-Za-z-] (a GUID). */
static bool guid_claim(json_object *o, const char *name, char out[CLAIM_MAX + 1])
{
	json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (!n || n > CLAIM_MAX || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-'))
			return false;
	memcpy(out, s, n + 1);
	return true;
}

int lc_azure_token_principal(const char *token, size_t len, char *out, size_t size,
			     struct lc_error *err)
{
	const char *p, *q, *end = token + len;
	char oid[CLAIM_MAX + 1], tid[CLAIM_MAX + 1];
	struct json_tokener *tk = NULL;
	json_object *o = NULL;
	struct lc_secret b64 = { 0 }, js = { 0 };
	size_t n, k, dl = 0;
	int r;

	if (size)
		out[0] = 0;
	p = token ? memchr(token, '.', len) : NULL;
	q = p ? memchr(p + 1, '.', (size_t)(end - p - 1)) : NULL;
	if (!q)
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "Azure: the access token is not a JWT (header.payload.signature)");
	n = (size_t)(q - p - 1);
	if (!n || n > JWT_PAYLOAD_MAX)
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "Azure: the access token's payload is empty or longer than %d characters",
			      JWT_PAYLOAD_MAX);
	/* base64url -> padded base64 (the claims are not secret, but they
	 * sit in the token: locked and wiped as it is) */
	if (lc_secret_alloc(&b64, n + 4) || lc_secret_alloc(&js, n + 4)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	for (k = 0; k < n; k++) {
		char c = p[1 + k];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
			r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
				   "Azure: the access token's payload is not base64url");
			goto out;
		}
		b64.p[k] = (uint8_t)c;
	}
	if (n % 4 == 1) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "Azure: the access token's payload is not base64url");
		goto out;
	}
	while (k % 4)
		b64.p[k++] = '=';
	if (lc_base64_decode((const char *)b64.p, k, js.p, &dl) < 0 || !dl) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "Azure: the access token's payload does not decode");
		goto out;
	}
	tk = json_tokener_new_ex(16);
	if (!tk) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	o = json_tokener_parse_ex(tk, (const char *)js.p, (int)dl);
	if (!o || json_tokener_get_error(tk) != json_tokener_success ||
	    json_tokener_get_parse_end(tk) != dl || !json_object_is_type(o, json_type_object)) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			   "Azure: the access token's payload is not one JSON object");
		goto out;
	}
	if (!guid_claim(o, "oid", oid) || !guid_claim(o, "tid", tid)) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			   "Azure: the access token has no usable oid and tid claims (strings of at most %d letters, digits and '-')",
			   CLAIM_MAX);
		goto out;
	}
	if ((size_t)snprintf(out, size, "oid=%s;tid=%s", oid, tid) >= size) {
		out[0] = 0;
		r = lc_err(err, -E2BIG, LC_ERRC_INTERNAL, "Azure: the principal does not fit");
		goto out;
	}
	r = 0;
out:
	lc_json_put_wiped(o);
	if (tk)
		json_tokener_free(tk);
	lc_secret_free(&b64);
	lc_secret_free(&js);
	return r;
}
