// SPDX-License-Identifier: GPL-2.0
/*
 * AWS KMS provider (see kms-aws.h): SigV4 signing, credentials, the
 * Encrypt / Decrypt / DescribeKey requests and the reading of their
 * answers.  One attempt per call; provider.c retries.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "config.h"
#include "envelope.h"
#include "http.h"
#include "kms-aws.h"

/* ---- string builder ----------------------------------------------------- */

static void sb_putc(struct lc_sb *b, char c)
{
	lc_sb_putn(b, &c, 1);
}

static bool unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* AWS URI encoding: unreserved kept, everything else %XX (upper case). */
static void sb_uri_encode(struct lc_sb *b, const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c) || (keep_slash && c == '/')) {
			sb_putc(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			lc_sb_putn(b, e, 3);
		}
	}
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = 0;
}

static void sha256_hex(const void *data, size_t n, char out[65])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(data, n, md);
	hex_encode(md, sizeof(md), out);
}

static int hmac256(const void *key, size_t klen, const char *msg, size_t mlen, uint8_t out[32])
{
	unsigned int olen = 32;

	return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &olen)
		? 0 : -ENOMEM;
}

/* ---- SigV4 -------------------------------------------------------------- */

/* RFC 3986 section 5.2.4 dot-segment removal, and "//" merged. */
static char *normalize_path(const char *in)
{
	size_t n = strlen(in);
	char *out = malloc(n + 2), *o = out;
	const char *p = in;

	if (!out)
		return NULL;
	while (*p) {
		const char *seg;
		size_t l;

		while (*p == '/')
			p++;
		seg = p;
		l = strcspn(p, "/");
		p += l;
		if (l == 0)
			break;
		if (l == 1 && seg[0] == '.')
			continue;
		if (l == 2 && seg[0] == '.' && seg[1] == '.') {
			while (o > out && *--o != '/')
				;
			continue;
		}
		*o++ = '/';
		memcpy(o, seg, l);
		o += l;
	}
	if (o == out || (n && in[n - 1] == '/' && o[-1] != '/'))
		*o++ = '/';
	*o = 0;
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode @n bytes of @s into a new string. */
static char *uri_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			*o++ = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

struct qparam {
	char *k;	/* encoded */
	char *v;
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c ? c : strcmp(x->v, y->v);
}

static int canonical_query(struct lc_sb *b, const char *q)
{
	struct qparam *ps = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	while (q && *q) {
		size_t l = strcspn(q, "&");
		const char *eq = memchr(q, '=', l);
		size_t kl = eq ? (size_t)(eq - q) : l;
		char *k = uri_decode(q, kl), *v = eq ? uri_decode(eq + 1, l - kl - 1) : strdup("");
		struct lc_sb ek = { 0 }, ev = { 0 };

		if (l && (!k || !v)) {
			free(k);
			free(v);
			r = -ENOMEM;
			break;
		}
		if (l) {
			if (n == cap) {
				struct qparam *np = realloc(ps, (cap = cap ? 2 * cap : 8) * sizeof(*ps));

				if (!np) {
					free(k);
					free(v);
					r = -ENOMEM;
					break;
				}
				ps = np;
			}
			sb_uri_encode(&ek, k, strlen(k), false);
			sb_uri_encode(&ev, v, strlen(v), false);
			lc_sb_puts(&ek, "");
			lc_sb_puts(&ev, "");
			free(k);
			free(v);
			if (ek.oom || ev.oom) {
				free(ek.p);
				free(ev.p);
				r = -ENOMEM;
				break;
			}
			ps[n].k = ek.p;
			ps[n].v = ev.p;
			n++;
		} else {
			free(k);
			free(v);
		}
		q += l;
		if (*q == '&')
			q++;
	}
	if (!r) {
		if (n)
			qsort(ps, n, sizeof(*ps), qparam_cmp);
		for (size_t i = 0; i < n; i++) {
			if (i)
				sb_putc(b, '&');
			lc_sb_puts(b, ps[i].k);
			sb_putc(b, '=');
			lc_sb_puts(b, ps[i].v);
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(ps[i].k);
		free(ps[i].v);
	}
	free(ps);
	return r;
}

struct chdr {
	char *name;	/* lower case */
	const char *value;
	size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Value with leading/trailing blanks removed and inner runs made one space. */
static void sb_trimmed(struct lc_sb *b, const char *v)
{
	bool space = false, any = false;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') {
			space = any;
			continue;
		}
		if (space)
			sb_putc(b, ' ');
		space = false;
		any = true;
		sb_putc(b, *v);
	}
}

int lc_sigv4_sign(const struct lc_sigv4_request *req, const struct lc_sigv4_creds *creds,
		  const char *region, const char *service, time_t when,
		  struct lc_sigv4_result *res)
{
	struct lc_sb cr = { 0 }, sts = { 0 }, auth = { 0 }, signed_names = { 0 };
	struct chdr *hs = NULL;
	size_t nh = 0;
	char date[9], scope[160], hash[65];
	uint8_t k1[32], k2[32], k3[32], k4[32], sig[32];
	struct tm tm;
	char *path = NULL;
	size_t klen;
	char *kbuf = NULL;
	int r = -ENOMEM;

	memset(res, 0, sizeof(*res));
	gmtime_r(&when, &tm);
	strftime(res->amz_date, sizeof(res->amz_date), "%Y%m%dT%H%M%SZ", &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, res->payload_hash);

	/* Headers: the caller's, then x-amz-content-sha256, x-amz-date, token. */
	hs = calloc(req->nheaders + 3, sizeof(*hs));
	if (!hs)
		goto out;
	for (size_t i = 0; i < req->nheaders; i++) {
		hs[nh].name = strdup(req->headers[i].name);
		if (!hs[nh].name)
			goto out;
		for (char *c = hs[nh].name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		hs[nh].value = req->headers[i].value;
		hs[nh].order = nh;
		nh++;
	}
	if (req->sign_body) {
		hs[nh].name = strdup("x-amz-content-sha256");
		hs[nh].value = res->payload_hash;
		hs[nh].order = nh;
		if (!hs[nh++].name)
			goto out;
	}
	hs[nh].name = strdup("x-amz-date");
	hs[nh].value = res->amz_date;
	hs[nh].order = nh;
	if (!hs[nh++].name)
		goto out;
	if (creds->session_token && *creds->session_token && !req->omit_session_token) {
		hs[nh].name = strdup("x-amz-security-token");
		hs[nh].value = creds->session_token;
		hs[nh].order = nh;
		if (!hs[nh++].name)
			goto out;
	}
	qsort(hs, nh, sizeof(*hs), chdr_cmp);

	/* Canonical request. */
	lc_sb_puts(&cr, req->method);
	sb_putc(&cr, '\n');
	if (req->normalize_path) {
		path = normalize_path(req->path && *req->path ? req->path : "/");
		if (!path)
			goto out;
		sb_uri_encode(&cr, path, strlen(path), true);
	} else {
		const char *p = req->path && *req->path ? req->path : "/";

		sb_uri_encode(&cr, p, strlen(p), true);
	}
	sb_putc(&cr, '\n');
	r = canonical_query(&cr, req->query);
	if (r)
		goto out;
	r = -ENOMEM;
	sb_putc(&cr, '\n');
	for (size_t i = 0; i < nh; i++) {
		if (i && !strcmp(hs[i].name, hs[i - 1].name)) {
			/* a repeated header: values joined with ',' in order */
			cr.len--;	/* drop the '\n' */
			sb_putc(&cr, ',');
		} else {
			lc_sb_puts(&cr, hs[i].name);
			sb_putc(&cr, ':');
			if (signed_names.len)
				sb_putc(&signed_names, ';');
			lc_sb_puts(&signed_names, hs[i].name);
		}
		sb_trimmed(&cr, hs[i].value);
		sb_putc(&cr, '\n');
	}
	sb_putc(&cr, '\n');
	lc_sb_puts(&cr, signed_names.p ? signed_names.p : "");
	sb_putc(&cr, '\n');
	lc_sb_puts(&cr, res->payload_hash);
	if (cr.oom || signed_names.oom)
		goto out;

	/* String to sign. */
	snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, region, service);
	sha256_hex(cr.p, cr.len, hash);
	lc_sb_puts(&sts, "AWS4-HMAC-SHA256\n");
	lc_sb_puts(&sts, res->amz_date);
	sb_putc(&sts, '\n');
	lc_sb_puts(&sts, scope);
	sb_putc(&sts, '\n');
	lc_sb_puts(&sts, hash);
	if (sts.oom)
		goto out;

	/* Signing key: HMAC chain from "AWS4" + secret; all wiped. */
	klen = 4 + strlen(creds->secret_key);
	kbuf = malloc(klen + 1);
	if (!kbuf)
		goto out;
	memcpy(kbuf, "AWS4", 4);
	memcpy(kbuf + 4, creds->secret_key, klen - 4);
	if (hmac256(kbuf, klen, date, strlen(date), k1) ||
	    hmac256(k1, 32, region, strlen(region), k2) ||
	    hmac256(k2, 32, service, strlen(service), k3) ||
	    hmac256(k3, 32, "aws4_request", 12, k4) ||
	    hmac256(k4, 32, sts.p, sts.len, sig))
		goto out;
	hex_encode(sig, sizeof(sig), res->signature);

	lc_sb_puts(&auth, "AWS4-HMAC-SHA256 Credential=");
	lc_sb_puts(&auth, creds->access_key_id);
	sb_putc(&auth, '/');
	lc_sb_puts(&auth, scope);
	lc_sb_puts(&auth, ", SignedHeaders=");
	lc_sb_puts(&auth, signed_names.p);
	lc_sb_puts(&auth, ", Signature=");
	lc_sb_puts(&auth, res->signature);
	if (auth.oom)
		goto out;
	res->canonical_request = cr.p;
	res->string_to_sign = sts.p;
	res->authorization = auth.p;
	cr.p = sts.p = auth.p = NULL;
	r = 0;
out:
	if (kbuf) {
		lc_wipe(kbuf, klen);
		free(kbuf);
	}
	lc_wipe(k1, sizeof(k1));
	lc_wipe(k2, sizeof(k2));
	lc_wipe(k3, sizeof(k3));
	lc_wipe(k4, sizeof(k4));
	lc_wipe(sig, sizeof(sig));
	for (size_t i = 0; hs && i < nh; i++)
		free(hs[i].name);
	free(hs);
	free(path);
	/* The canonical request may hold a session token. */
	if (cr.p)
		lc_wipe(cr.p, cr.len);
	free(cr.p);
	free(sts.p);
	free(auth.p);
	free(signed_names.p);
	if (r)
		lc_sigv4_result_free(res);
	return r;
}

void lc_sigv4_result_free(struct lc_sigv4_result *res)
{
	if (res->canonical_request)
		lc_wipe(res->canonical_request, strlen(res->canonical_request));
	free(res->canonical_request);
	free(res->string_to_sign);
	free(res->authorization);
	memset(res, 0, sizeof(*res));
}

/* ---- ARNs --------------------------------------------------------------- */

int lc_aws_arn_region(const char *ref, char region[LC_AWS_REGION_MAX],
		      char partition[LC_AWS_REGION_MAX])
{
	const char *f[6];
	const char *p = ref;

	region[0] = 0;
	if (!ref || strncmp(ref, "arn:", 4))
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		f[i] = p;
		if (i < 5) {
			p = strchr(p, ':');
			if (!p)
				return -EINVAL;
			p++;
		}
	}
	/* f: arn, partition, service, region, account, resource */
	if (strncmp(f[2], "kms:", 4) || f[4] - f[3] < 2 || f[4] - f[3] > LC_AWS_REGION_MAX ||
	    f[3] - f[1] < 2 || f[3] - f[1] > LC_AWS_REGION_MAX ||
	    (strncmp(f[5], "key/", 4) && strncmp(f[5], "alias/", 6)) || !f[5][4])
		return -EINVAL;
	for (const char *c = f[3]; c < f[4] - 1; c++)
		if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '-')
			return -EINVAL;
	for (const char *c = f[4]; c < f[5] - 1; c++)
		if (!isdigit((unsigned char)*c))
			return -EINVAL;
	memcpy(region, f[3], (size_t)(f[4] - f[3] - 1));
	region[f[4] - f[3] - 1] = 0;
	if (partition) {
		memcpy(partition, f[1], (size_t)(f[2] - f[1] - 1));
		partition[f[2] - f[1] - 1] = 0;
	}
	return 0;
}

/* ---- answers ------------------------------------------------------------ */

void lc_aws_result_free(struct lc_aws_result *res)
{
	if (!res)
		return;
	free(res->blob.p);
	lc_secret_free(&res->plaintext);
	memset(res, 0, sizeof(*res));
}

static enum lc_key_state aws_key_state(const char *s)
{
	if (!s)
		return LC_KEY_UNKNOWN;
	if (!strcmp(s, "Enabled"))
		return LC_KEY_ENABLED;
	/* PendingImport (no key material) and Unavailable (custom key store
	 * disconnected) are not revocations: they come back without the key
	 * owner deciding anything about lakecrypt (LC_KEY_UNKNOWN below). */
	if (!strcmp(s, "Disabled"))
		return LC_KEY_DISABLED;
	if (!strcmp(s, "PendingDeletion") || !strcmp(s, "PendingReplicaDeletion"))
		return LC_KEY_PENDING_DELETION;
	return LC_KEY_UNKNOWN;
}

static const char *op_name(enum lc_aws_op op)
{
	return op == LC_AWS_ENCRYPT ? "Encrypt" : op == LC_AWS_DECRYPT ? "Decrypt" : "DescribeKey";
}

static int error_answer(enum lc_aws_op op, long status, json_object *o, const char *key_region,
			const char *endpoint_region, struct lc_aws_result *res,
			struct lc_error *err)
{
	static const char *const transient[] = { "ThrottlingException", "LimitExceededException",
		"KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
		"ServiceUnavailableException", "InternalFailure", "RequestTimeoutException",
		"ExpiredTokenException", "RequestExpired", NULL };
	/*
	 * Not denials, although they name the key: IncorrectKeyException
	 * (the blob was made under another key: a foreign or forged blob in
	 * a header, INVALID below; as a denial it would let one tampered
	 * header revoke every volume under the CMK) and
	 * KMSInvalidStateException (for a key in a custom key store it is
	 * "a general failure with many possible causes", an outage; a key
	 * pending deletion is found by DescribeKey's state instead).
	 */
	static const char *const denied[] = { "DisabledException", "AccessDeniedException", NULL };
	static const char *const denied_why[] = { "the key is disabled",
		"no permission: the agent's AWS identity is not allowed this operation on the key (IAM or key policy)" };
	char type[96] = "", msg[200] = "";
	const char *t = lc_json_str(o, "__type"), *m = lc_json_str(o, "message");
	const char *what = op_name(op);

	if (!m)
		m = lc_json_str(o, "Message");
	if (t) {
		const char *h = strrchr(t, '#');

		lc_copy_printable(type, sizeof(type), h ? h + 1 : t);
		type[strcspn(type, ":")] = 0;	/* "Type:http://..." form */
	}
	lc_copy_printable(msg, sizeof(msg), m ? m : "");
	lc_http_msg_scrub(msg, sizeof(msg));
	if (status >= 500)
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "AWS KMS %s: HTTP %ld%s%s%s%s", what,
			      status, type[0] ? " " : "", type, msg[0] ? ": " : "", msg);
	if (status == 429 || status == 408)
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "AWS KMS %s: HTTP %ld%s%s%s%s", what,
			      status, type[0] ? " " : "", type, msg[0] ? ": " : "", msg);
	/* KMS answers errors with 4xx: an error body under any other status
	 * (a redirect, a proxy's page) is not KMS speaking, and never a kill. */
	if (status < 400)
		return lc_err(err, -EPROTO, LC_ERRC_MISCONFIG,
			      "AWS KMS %s: HTTP %ld with an error body (%s): not an answer of KMS (a proxy or a wrong endpoint?)",
			      what, status, type[0] ? type : "no type");
	for (int i = 0; transient[i]; i++)
		if (!strcmp(type, transient[i])) {
			if (!strcmp(type, "ExpiredTokenException") || !strcmp(type, "RequestExpired"))
				res->expired_token = true;
			return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT, "AWS KMS %s: %s (HTTP %ld)%s%s",
				      what, type, status, msg[0] ? ": " : "", msg);
		}
	for (int i = 0; denied[i]; i++)
		if (!strcmp(type, denied[i]))
			return lc_err(err, i == 1 ? -EACCES : -EKEYREVOKED, LC_ERRC_DENIED,
				      "AWS KMS %s: %s: %s%s%s", what, type, denied_why[i],
				      msg[0] ? ": " : "", msg);
	if (!strcmp(type, "NotFoundException")) {
		if (key_region && *key_region && endpoint_region && *endpoint_region &&
		    strcmp(key_region, endpoint_region))
			return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				      "AWS KMS %s: NotFoundException: the key ARN is in region %s but the endpoint serves %s: set the region or endpoint for %s",
				      what, key_region, endpoint_region, key_region);
		/* A bare key id names no region: after a region or endpoint
		 * change the new region does not know it, which is no
		 * deletion.  Only a key ARN of the endpoint's region is
		 * authoritatively not found. */
		if (!key_region || !*key_region)
			return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				      "AWS KMS %s: NotFoundException in region %s for a bare key id: a key id names no region, so this cannot tell a deleted key from a changed region or endpoint; give the key ARN (keyconfig create stores the ARN; move older volumes with lakecryptctl workspace rekey)%s%s",
				      what, endpoint_region && *endpoint_region ? endpoint_region : "?",
				      msg[0] ? ": " : "", msg);
		return lc_err(err, -ENOENT, LC_ERRC_DENIED,
			      "AWS KMS %s: NotFoundException: the key does not exist in region %s (deleted, or never created)%s%s",
			      what, endpoint_region && *endpoint_region ? endpoint_region : "?",
			      msg[0] ? ": " : "", msg);
	}
	if (!strcmp(type, "KMSInvalidStateException"))
		return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT,
			      "AWS KMS %s: KMSInvalidStateException: the key cannot be used in its current state (its key store may be disconnected; DescribeKey tells the state)%s%s",
			      what, msg[0] ? ": " : "", msg);
	if (!strcmp(type, "IncorrectKeyException"))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "AWS KMS %s: IncorrectKeyException: the wrapped key was made under another KMS key (a foreign or tampered header)%s%s",
			      what, msg[0] ? ": " : "", msg);
	if (!strcmp(type, "InvalidCiphertextException"))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "AWS KMS %s: InvalidCiphertextException: the encryption context did not match, or the blob was not made by this key%s%s",
			      what, msg[0] ? ": " : "", msg);
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "AWS KMS %s: %s (HTTP %ld)%s%s", what,
		      type[0] ? type : "unrecognised error", status, msg[0] ? ": " : "", msg);
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

static int bad_answer(enum lc_aws_op op, const char *why, struct lc_error *err)
{
	return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT, "AWS KMS %s: malformed answer: %s",
		      op_name(op), why);
}

int lc_aws_parse_response(enum lc_aws_op op, long status, const char *body, size_t len,
			  const char *key_region, const char *endpoint_region,
			  struct lc_aws_result *res, struct lc_error *err)
{
	json_object *o, *md;
	const char *s;
	size_t n = 0;
	int r = 0;

	memset(res, 0, sizeof(*res));
	o = lc_json_parse(body, len);
	if (status < 200 || status >= 300) {
		r = error_answer(op, status, o, key_region, endpoint_region, res, err);
		lc_json_put_wiped(o);
		return r;
	}
	if (!o)
		return bad_answer(op, "not a JSON object", err);
	switch (op) {
	case LC_AWS_ENCRYPT:
		res->blob.p = malloc(LC_KMS_AWS_MAX_BLOB);
		if (!res->blob.p) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		if (b64_field(o, "CiphertextBlob", LC_KMS_AWS_MAX_BLOB, res->blob.p, &n) || !n) {
			r = bad_answer(op, "no valid CiphertextBlob", err);
			break;
		}
		res->blob.len = n;
		lc_copy_printable(res->key_id, sizeof(res->key_id), lc_json_str(o, "KeyId"));
		break;
	case LC_AWS_DECRYPT:
		if (lc_secret_alloc(&res->plaintext, LC_KMS_AWS_MAX_PLAINTEXT)) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		if (b64_field(o, "Plaintext", LC_KMS_AWS_MAX_PLAINTEXT, res->plaintext.p, &n) || !n) {
			r = bad_answer(op, "no valid Plaintext", err);
			break;
		}
		res->plaintext.len = n;
		lc_copy_printable(res->key_id, sizeof(res->key_id), lc_json_str(o, "KeyId"));
		break;
	case LC_AWS_DESCRIBE_KEY:
		if (!json_object_object_get_ex(o, "KeyMetadata", &md) ||
		    !json_object_is_type(md, json_type_object)) {
			r = bad_answer(op, "no KeyMetadata object", err);
			break;
		}
		s = lc_json_str(md, "KeyState");
		if (!s) {
			r = bad_answer(op, "no KeyState", err);
			break;
		}
		lc_copy_printable(res->aws_state, sizeof(res->aws_state), s);
		res->state = aws_key_state(s);
		/* Only a state we understand may lead to a revocation. */
		if (res->state == LC_KEY_UNKNOWN) {
			bool passing = !strcmp(s, "Creating") || !strcmp(s, "Updating") ||
				       !strcmp(s, "Unavailable");

			r = lc_err(err, passing ? -EAGAIN : -EPROTO,
				   passing ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
				   "AWS KMS DescribeKey: key state \"%s\" is %s: not a revocation",
				   res->aws_state, passing ? "passing" : "not one lakecrypt knows");
			break;
		}
		lc_copy_printable(res->key_id, sizeof(res->key_id),
			       lc_json_str(md, "Arn") ? lc_json_str(md, "Arn") : lc_json_str(md, "KeyId"));
		if (json_object_object_get_ex(md, "DeletionDate", &md) &&
		    (json_object_is_type(md, json_type_double) || json_object_is_type(md, json_type_int))) {
			double d = json_object_get_double(md);

			if (d > 0 && d < 1e12)
				res->deletion_date = (int64_t)d;
		}
		break;
	}
	lc_json_put_wiped(o);
	if (r) {
		lc_aws_result_free(res);
		return r;
	}
	return 0;
}

/* ---- credentials -------------------------------------------------------- */

/* Add to @err's message, keeping code and class. */
static void __attribute__((format(printf, 2, 3))) err_append(struct lc_error *err, const char *fmt, ...)
{
	size_t l = strnlen(err->msg, sizeof(err->msg));
	va_list ap;

	if (l + 1 >= sizeof(err->msg))
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg + l, sizeof(err->msg) - l, fmt, ap);
	va_end(ap);
}

enum cred_src { CRED_AUTO, CRED_ENV, CRED_PROFILE, CRED_IMDS, CRED_CONTAINER, CRED_WEB_IDENTITY };

struct creds {
	char access_key_id[128];
	struct lc_secret secret;	/* NUL-terminated */
	struct lc_secret token;		/* NUL-terminated, len 0 if none */
	int64_t expiration;		/* epoch s, 0: does not expire */
	const char *source;
};

struct lc_kms_aws {
	struct lc_http *http;
	struct lc_http *imds;
	char *endpoint;			/* NULL: from the region */
	char region[LC_AWS_REGION_MAX];
	enum cred_src src;
	char *profile;
	char *imds_endpoint;
	char *sts_endpoint;		/* NULL: $AWS_ENDPOINT_URL_STS or by region */
	uint64_t imds_timeout_ms;
	time_t fixed_time;
	/* a->lock guards the cached credentials and is never held across
	 * network I/O: one call fetches new credentials (refreshing), the
	 * others wait on a->refreshed no longer than their own deadline. */
	pthread_mutex_t lock;
	pthread_cond_t refreshed;	/* CLOCK_MONOTONIC */
	bool refreshing;
	struct creds cred;
	bool have_cred;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The timeout of one credentials request: @want ms, cut to what is left
 * of the attempt's deadline @dl (monotonic ms, 0: none). */
static int cred_budget(uint64_t dl, uint64_t want, uint64_t *out, struct lc_error *err)
{
	uint64_t now = mono_ms();

	if (!dl) {
		*out = want;
		return 0;
	}
	if (now >= dl)
		return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
			      "AWS credentials: the attempt's deadline passed while fetching credentials");
	*out = dl - now < want ? dl - now : want;
	return 0;
}

static void creds_clear(struct creds *c)
{
	lc_secret_free(&c->secret);
	lc_secret_free(&c->token);
	memset(c, 0, sizeof(*c));
}

static int secret_str(struct lc_secret *s, const char *v, size_t n)
{
	if (lc_secret_alloc(s, n + 1))
		return -ENOMEM;
	memcpy(s->p, v, n);
	s->p[n] = 0;
	s->len = n;
	return 0;
}

static int creds_from_env(struct creds *c, struct lc_error *err)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");

	if (!id || !*id || !sk || !*sk)
		return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
			      "AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set");
	if (strlen(id) >= sizeof(c->access_key_id))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "AWS credentials: AWS_ACCESS_KEY_ID is too long");
	snprintf(c->access_key_id, sizeof(c->access_key_id), "%s", id);
	if (secret_str(&c->secret, sk, strlen(sk)) ||
	    (tok && *tok && secret_str(&c->token, tok, strlen(tok))))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	c->source = "environment";
	return 0;
}

/* Read a small file into locked memory (it may hold secret keys). */
static int read_secret_file(const char *path, struct lc_secret *out)
{
	struct stat st;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size > 1024 * 1024 || lc_secret_alloc(out, (size_t)st.st_size + 1)) {
		close(fd);
		return -EFBIG;
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

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h)
		return h;
	pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/";
}

/*
 * The INI files of the AWS CLI: find section @section, then the keys
 * aws_access_key_id, aws_secret_access_key, aws_session_token.  1 if the
 * section has both keys, 0 if not found, negative errno.
 */
static int creds_from_ini(struct creds *c, const char *path, const char *section)
{
	struct lc_secret f = { 0 };
	char *line, *next;
	bool in = false;
	int r = read_secret_file(path, &f);

	if (r)
		return r == -ENOENT ? 0 : r;
	for (line = (char *)f.p; line && *line; line = next) {
		char *eq, *k, *v, *e;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		while (*line == ' ' || *line == '\t')
			line++;
		e = line + strlen(line);
		while (e > line && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		if (*line == '#' || *line == ';' || !*line)
			continue;
		if (*line == '[') {
			char *rb = strchr(line, ']');

			if (rb)
				*rb = 0;
			k = line + 1;
			while (*k == ' ')
				k++;
			e = k + strlen(k);
			while (e > k && e[-1] == ' ')
				*--e = 0;
			in = !strcmp(k, section);
			continue;
		}
		if (!in || !(eq = strchr(line, '=')))
			continue;
		*eq = 0;
		k = line;
		v = eq + 1;
		e = eq;
		while (e > k && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!strcmp(k, "aws_access_key_id"))
			snprintf(c->access_key_id, sizeof(c->access_key_id), "%s", v);
		else if (!strcmp(k, "aws_secret_access_key") && !c->secret.p)
			r = secret_str(&c->secret, v, strlen(v));
		else if (!strcmp(k, "aws_session_token") && !c->token.p)
			r = secret_str(&c->token, v, strlen(v));
		if (r)
			break;
	}
	lc_secret_free(&f);
	if (r)
		return r;
	if (c->access_key_id[0] && c->secret.p && c->secret.len)
		return 1;
	creds_clear(c);
	return 0;
}

/*
 * The default shared files are under the home directory, which
 * lakecrypt-agent.service's ProtectHome=yes hides: systemd mounts an empty
 * directory of mode 0000 over /root, /home and /run/user, so ~/.aws/credentials
 * is "not there" although the admin sees it.  True when @home is such a
 * directory (mode 0000) or one of those places: the message then asks.
 */
static bool home_maybe_hidden(const char *home)
{
	struct stat st;

	if (!stat(home, &st) && S_ISDIR(st.st_mode) && !(st.st_mode & 07777))
		return true;
	return !strcmp(home, "/root") || !strncmp(home, "/root/", 6) || !strncmp(home, "/home/", 6) ||
	       !strcmp(home, "/home") || !strncmp(home, "/run/user/", 10);
}

/* -errno of stat(@path): 0 when it is there. */
static int stat_errno(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -errno : 0;
}

#define HIDDEN_HOME_HINT \
	"is %s hidden by the unit's ProtectHome=yes? Give the agent a file outside the home directory: a drop-in with Environment=AWS_SHARED_CREDENTIALS_FILE=" LC_SYSCONFDIR "/lakecrypt/aws-credentials (kms-providers.md, \"AWS credentials under systemd\")"

static int creds_from_profile(struct lc_kms_aws *a, struct creds *c, bool required,
			      struct lc_error *err)
{
	const char *profile = a->profile ? a->profile : getenv("AWS_PROFILE");
	const char *cf = getenv("AWS_SHARED_CREDENTIALS_FILE"), *kf = getenv("AWS_CONFIG_FILE");
	char p1[4096], p2[4096], sect[300];
	int r;

	if (!profile || !*profile)
		profile = "default";
	if (cf && *cf)
		snprintf(p1, sizeof(p1), "%s", cf);
	else
		snprintf(p1, sizeof(p1), "%s/.aws/credentials", home_dir());
	if (kf && *kf)
		snprintf(p2, sizeof(p2), "%s", kf);
	else
		snprintf(p2, sizeof(p2), "%s/.aws/config", home_dir());
	r = creds_from_ini(c, p1, profile);
	if (r == 0) {
		if (strcmp(profile, "default"))
			snprintf(sect, sizeof(sect), "profile %s", profile);
		else
			snprintf(sect, sizeof(sect), "default");
		r = creds_from_ini(c, p2, sect);
	}
	/* Neither file readable where the default puts them, in a home
	 * directory the unit may hide (issue 11 review, finding 3). */
	if (required && (r == 0 || r == -EACCES) && !(cf && *cf) && home_maybe_hidden(home_dir())) {
		int e1 = stat_errno(p1), e2 = stat_errno(p2);

		if ((e1 == -ENOENT || e1 == -EACCES || r == -EACCES) && (e2 == -ENOENT || e2 == -EACCES || r == -EACCES))
			return lc_err(err, r ? r : -ENOENT, LC_ERRC_MISCONFIG,
				      "AWS credentials: profile \"%s\": cannot read %s or %s (%s): " HIDDEN_HOME_HINT,
				      profile, p1, p2, strerror(r ? -r : (e1 ? -e1 : -e2)), home_dir());
	}
	if (r < 0)
		return lc_err(err, r, r == -ENOMEM ? LC_ERRC_INTERNAL : LC_ERRC_MISCONFIG,
			      "AWS credentials: cannot read %s or %s: %s", p1, p2, strerror(-r));
	if (r == 0)
		return required ? lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
					 "AWS credentials: profile \"%s\" has no aws_access_key_id and aws_secret_access_key in %s or %s",
					 profile, p1, p2) : -ENOENT;
	c->source = "shared credentials file";
	return 0;
}

static int64_t parse_iso8601(const char *s)
{
	struct tm tm;
	const char *e;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
		return -1;
	return (int64_t)timegm(&tm);
}

/* IMDSv2: token, role name, role credentials.  Each request bounded. */
static int creds_from_imds(struct lc_kms_aws *a, struct creds *c, uint64_t dl, struct lc_error *err)
{
	uint64_t tmo;
	struct lc_http_response resp = { 0 };
	char url[600], tokhdr[300], role[128];
	const char *hdrs[2] = { NULL, NULL };
	static const char *const put_hdrs[] = { "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL };
	json_object *o = NULL;
	const char *id, *sk, *tok, *exp, *code;
	int r;

	snprintf(url, sizeof(url), "%s/latest/api/token", a->imds_endpoint);
	r = cred_budget(dl, a->imds_timeout_ms, &tmo, err);
	if (!r)
		r = lc_http_request(a->imds, "PUT", url, put_hdrs, NULL, 0, NULL, tmo, &resp, err);
	if (r)
		return r;
	if (resp.status != 200 || !resp.len || resp.len > 200) {
		r = lc_err(err, -EAGAIN, resp.status >= 500 || resp.status == 429 ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
			   "AWS credentials: instance metadata token request answered HTTP %ld", resp.status);
		goto out;
	}
	snprintf(tokhdr, sizeof(tokhdr), "X-aws-ec2-metadata-token: %.*s", (int)resp.len, (char *)resp.body.p);
	lc_http_response_free(&resp);
	hdrs[0] = tokhdr;
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", a->imds_endpoint);
	r = cred_budget(dl, a->imds_timeout_ms, &tmo, err);
	if (!r)
		r = lc_http_request(a->imds, "GET", url, hdrs, NULL, 0, NULL, tmo, &resp, err);
	if (r)
		goto out;
	if (resp.status != 200 || !resp.len || resp.len >= sizeof(role)) {
		r = lc_err(err, -EAGAIN, resp.status >= 500 ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
			   "AWS credentials: no IAM role in the instance metadata (HTTP %ld)", resp.status);
		goto out;
	}
	memcpy(role, resp.body.p, resp.len);
	role[resp.len] = 0;
	role[strcspn(role, "\r\n")] = 0;
	for (char *p = role; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("+=,.@_-", *p)) {
			r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
				   "AWS credentials: instance metadata role name is malformed");
			goto out;
		}
	lc_http_response_free(&resp);
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", a->imds_endpoint, role);
	r = cred_budget(dl, a->imds_timeout_ms, &tmo, err);
	if (!r)
		r = lc_http_request(a->imds, "GET", url, hdrs, NULL, 0, NULL, tmo, &resp, err);
	if (r)
		goto out;
	o = resp.status == 200 ? lc_json_parse((char *)resp.body.p, resp.len) : NULL;
	code = lc_json_str(o, "Code");
	id = lc_json_str(o, "AccessKeyId");
	sk = lc_json_str(o, "SecretAccessKey");
	tok = lc_json_str(o, "Token");
	exp = lc_json_str(o, "Expiration");
	if (!o || (code && strcmp(code, "Success")) || !id || !sk || !*sk ||
	    strlen(id) >= sizeof(c->access_key_id)) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			   "AWS credentials: instance metadata credentials of role %s unusable (HTTP %ld)",
			   role, resp.status);
		goto out;
	}
	snprintf(c->access_key_id, sizeof(c->access_key_id), "%s", id);
	if (secret_str(&c->secret, sk, strlen(sk)) ||
	    (tok && *tok && secret_str(&c->token, tok, strlen(tok)))) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	c->expiration = exp ? parse_iso8601(exp) : 0;
	if (c->expiration < 0)
		c->expiration = 0;
	c->source = "instance metadata";
	r = 0;
out:
	lc_wipe(tokhdr, sizeof(tokhdr));
	lc_json_put_wiped(o);
	lc_http_response_free(&resp);
	if (r)
		creds_clear(c);
	return r;
}

/* The text of the first <tag>...</tag> in @xml (no nesting, no entities
 * expected: STS credentials are base64-ish), or NULL. */
static const char *xml_text(const char *xml, const char *tag, size_t *len)
{
	char open[64], close[64];
	const char *b, *e;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	b = strstr(xml, open);
	if (!b)
		return NULL;
	b += strlen(open);
	e = strstr(b, close);
	if (!e || memchr(b, '<', (size_t)(e - b)))
		return NULL;
	*len = (size_t)(e - b);
	return b;
}

/*
 * Web identity (EKS IRSA and the like): AssumeRoleWithWebIdentity at STS
 * (query protocol, unsigned POST, XML answer; AWS STS API Reference) with
 * the token in $AWS_WEB_IDENTITY_TOKEN_FILE for $AWS_ROLE_ARN, session
 * name $AWS_ROLE_SESSION_NAME or "lakecrypt-agent".  STS endpoint:
 * $AWS_ENDPOINT_URL_STS, else https://sts.<region>.amazonaws.com with the
 * configured region or $AWS_REGION, else https://sts.amazonaws.com.
 * -ENOENT if the variables are not set.  A refused token is MISCONFIG
 * (never a revocation), throttling and 5xx TRANSIENT.
 */
static int creds_from_web_identity(struct lc_kms_aws *a, struct creds *c, bool required,
				   uint64_t dl, struct lc_error *err)
{
	uint64_t tmo;
	const char *file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = getenv("AWS_ROLE_ARN");
	const char *sess = getenv("AWS_ROLE_SESSION_NAME"), *ep = getenv("AWS_ENDPOINT_URL_STS");
	const char *region = a->region[0] ? a->region : getenv("AWS_REGION");
	static const char *const hdrs[] = { "Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL };
	struct lc_http_response resp = { 0 };
	struct lc_secret tok = { 0 };
	struct lc_sb body = { 0 };
	const char *id, *sk, *st, *exp, *code;
	size_t idl = 0, skl = 0, stl = 0, expl = 0, codel = 0;
	char url[600], when[40];
	int r;

	if (!file || !*file || !role || !*role)
		return required ? lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
					 "AWS credentials: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not both set")
				: -ENOENT;
	if (ep && *ep)
		snprintf(url, sizeof(url), "%s", ep);
	else if (region && *region)
		snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com/", region);
	else
		snprintf(url, sizeof(url), "https://sts.amazonaws.com/");
	r = read_secret_file(file, &tok);
	if (r)
		return lc_err(err, r, LC_ERRC_MISCONFIG,
			      "AWS credentials: cannot read the web identity token %s: %s", file, strerror(-r));
	while (tok.len && (tok.p[tok.len - 1] == '\n' || tok.p[tok.len - 1] == '\r'))
		tok.p[--tok.len] = 0;
	lc_sb_puts(&body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=");
	sb_uri_encode(&body, role, strlen(role), false);
	lc_sb_puts(&body, "&RoleSessionName=");
	sb_uri_encode(&body, sess && *sess ? sess : "lakecrypt-agent",
		      strlen(sess && *sess ? sess : "lakecrypt-agent"), false);
	lc_sb_puts(&body, "&WebIdentityToken=");
	sb_uri_encode(&body, (const char *)tok.p, tok.len, false);
	lc_secret_free(&tok);
	if (body.oom) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	/* STS is reached through the KMS client: https only, same CA bundle. */
	r = cred_budget(dl, a->imds_timeout_ms * 2, &tmo, err);
	if (!r)
		r = lc_http_request(a->http, "POST", url, hdrs, body.p, body.len, "x-amzn-RequestId",
				    tmo, &resp, err);
	if (r)
		goto out;
	code = xml_text((const char *)resp.body.p, "Code", &codel);
	if (resp.status != 200) {
		char cbuf[64];
		bool again;

		snprintf(cbuf, sizeof(cbuf), "%.*s", code ? (int)(codel < 60 ? codel : 60) : 0, code ? code : "");
		for (char *q = cbuf; *q; q++)
			if (*q < 0x20 || *q > 0x7e)
				*q = '?';
		again = resp.status >= 500 || resp.status == 429 ||
			!strcmp(cbuf, "IDPCommunicationError") || !strcmp(cbuf, "Throttling");
		r = lc_err(err, -EACCES, again ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
			   "AWS credentials: STS AssumeRoleWithWebIdentity for %.200s answered HTTP %ld%s%s",
			   role, resp.status, cbuf[0] ? " " : "", cbuf);
		goto out;
	}
	id = xml_text((const char *)resp.body.p, "AccessKeyId", &idl);
	sk = xml_text((const char *)resp.body.p, "SecretAccessKey", &skl);
	st = xml_text((const char *)resp.body.p, "SessionToken", &stl);
	exp = xml_text((const char *)resp.body.p, "Expiration", &expl);
	if (!id || !idl || idl >= sizeof(c->access_key_id) || !sk || !skl || !st || !stl) {
		r = lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			   "AWS credentials: STS AssumeRoleWithWebIdentity answer has no credentials");
		goto out;
	}
	memcpy(c->access_key_id, id, idl);
	c->access_key_id[idl] = 0;
	if (secret_str(&c->secret, sk, skl) || secret_str(&c->token, st, stl)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(when, sizeof(when), "%.*s", exp ? (int)(expl < 39 ? expl : 39) : 0, exp ? exp : "");
	c->expiration = when[0] ? parse_iso8601(when) : 0;
	if (c->expiration < 0)
		c->expiration = 0;
	c->source = "web identity";
	r = 0;
out:
	if (body.p)
		lc_wipe(body.p, body.len);
	free(body.p);
	lc_http_response_free(&resp);
	if (r)
		creds_clear(c);
	return r;
}

/* Plain HTTP is allowed for the container endpoint on these hosts only
 * (as in the AWS SDKs): loopback and the ECS/EKS link-local agents. */
static bool container_host_ok(const char *url)
{
	static const char *const hosts[] = { "127.", "localhost", "[::1]", "169.254.170.2",
		"169.254.170.23", "[fd00:ec2::23]", NULL };
	char host[256];

	if (!strncmp(url, "https://", 8))
		return true;
	if (strncmp(url, "http://", 7))
		return false;
	lc_url_host(url, host, sizeof(host));
	for (int i = 0; hosts[i]; i++) {
		size_t l = strlen(hosts[i]);

		if (!strncmp(host, hosts[i], l) &&
		    (hosts[i][l - 1] == '.' || host[l] == 0 || host[l] == ':'))
			return true;
	}
	return false;
}

/*
 * Container credentials (ECS task role, EKS Pod Identity): GET
 * $AWS_CONTAINER_CREDENTIALS_FULL_URI, or http://169.254.170.2 +
 * $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, with the Authorization header
 * from $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN.  -ENOENT if
 * neither variable is set.
 */
static int creds_from_container(struct lc_kms_aws *a, struct creds *c, bool required,
				uint64_t dl, struct lc_error *err)
{
	uint64_t tmo;
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *tokfile = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct lc_http_response resp = { 0 };
	struct lc_secret tf = { 0 }, hdr = { 0 };
	const char *hdrs[2] = { NULL, NULL };
	const char *id, *sk, *st, *exp;
	json_object *o = NULL;
	char url[1024];
	int r;

	if (full && *full)
		snprintf(url, sizeof(url), "%s", full);
	else if (rel && *rel)
		snprintf(url, sizeof(url), "http://169.254.170.2%s", rel);
	else
		return required ? lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
					 "AWS credentials: neither AWS_CONTAINER_CREDENTIALS_FULL_URI nor AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set")
				: -ENOENT;
	if (!container_host_ok(url))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "AWS credentials: the container credentials URI must be https:// or name a loopback or ECS/EKS agent address");
	if (tokfile && *tokfile) {
		r = read_secret_file(tokfile, &tf);
		if (r)
			return lc_err(err, r, LC_ERRC_MISCONFIG,
				      "AWS credentials: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
				      tokfile, strerror(-r));
		while (tf.len && (tf.p[tf.len - 1] == '\n' || tf.p[tf.len - 1] == '\r'))
			tf.p[--tf.len] = 0;
		tok = (const char *)tf.p;
	}
	if (tok && *tok) {
		size_t l = strlen(tok);

		if (memchr(tok, '\n', l) || memchr(tok, '\r', l) || lc_secret_alloc(&hdr, l + 32)) {
			lc_secret_free(&tf);
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "AWS credentials: the container authorization token is not one line");
		}
		snprintf((char *)hdr.p, l + 32, "Authorization: %s", tok);
		hdrs[0] = (const char *)hdr.p;
	}
	r = cred_budget(dl, a->imds_timeout_ms, &tmo, err);
	if (!r)
		r = lc_http_request(a->imds, "GET", url, hdrs, NULL, 0, NULL, tmo, &resp, err);
	lc_secret_free(&tf);
	lc_secret_free(&hdr);
	if (r)
		return r;
	o = resp.status == 200 ? lc_json_parse((char *)resp.body.p, resp.len) : NULL;
	id = lc_json_str(o, "AccessKeyId");
	sk = lc_json_str(o, "SecretAccessKey");
	st = lc_json_str(o, "Token");
	exp = lc_json_str(o, "Expiration");
	if (!o || !id || !*id || !sk || !*sk || strlen(id) >= sizeof(c->access_key_id)) {
		r = lc_err(err, -EPROTO, resp.status >= 500 || resp.status == 200 ? LC_ERRC_TRANSIENT : LC_ERRC_MISCONFIG,
			   "AWS credentials: container credentials endpoint answered HTTP %ld without usable credentials",
			   resp.status);
		goto out;
	}
	snprintf(c->access_key_id, sizeof(c->access_key_id), "%s", id);
	if (secret_str(&c->secret, sk, strlen(sk)) || (st && *st && secret_str(&c->token, st, strlen(st)))) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	c->expiration = exp ? parse_iso8601(exp) : 0;
	if (c->expiration < 0)
		c->expiration = 0;
	c->source = "container credentials";
	r = 0;
out:
	lc_json_put_wiped(o);
	lc_http_response_free(&resp);
	if (r)
		creds_clear(c);
	return r;
}

static int64_t wall_now(const struct lc_kms_aws *a)
{
	return a->fixed_time ? (int64_t)a->fixed_time : (int64_t)time(NULL);
}

/* a->cred is there and not near expiry (a->lock held). */
static bool creds_fresh(const struct lc_kms_aws *a)
{
	return a->have_cred && (!a->cred.expiration ||
				a->cred.expiration - LC_KMS_AWS_REFRESH_S > wall_now(a));
}

/* Fetch credentials into @c from the configured source, each network
 * request bounded by the attempt's deadline @dl.  Called WITHOUT a->lock
 * (by the one call that set a->refreshing). */
static int creds_fetch(struct lc_kms_aws *a, struct creds *c_out, uint64_t dl,
		       struct lc_error *err)
{
	struct creds c = { 0 };
	int r;

	switch (a->src) {
	case CRED_ENV:
		r = creds_from_env(&c, err);
		break;
	case CRED_PROFILE:
		r = creds_from_profile(a, &c, true, err);
		break;
	case CRED_IMDS:
		r = creds_from_imds(a, &c, dl, err);
		break;
	case CRED_CONTAINER:
		r = creds_from_container(a, &c, true, dl, err);
		break;
	case CRED_WEB_IDENTITY:
		r = creds_from_web_identity(a, &c, true, dl, err);
		break;
	default:
		if (getenv("AWS_ACCESS_KEY_ID") || getenv("AWS_SECRET_ACCESS_KEY")) {
			r = creds_from_env(&c, err);
			break;
		}
		r = creds_from_profile(a, &c, false, err);
		if (r != -ENOENT)
			break;
		r = creds_from_web_identity(a, &c, false, dl, err);
		if (r != -ENOENT)
			break;
		r = creds_from_container(a, &c, false, dl, err);
		if (r != -ENOENT)
			break;
		r = creds_from_imds(a, &c, dl, err);
		if (r && err)
			err_append(err, "%s", " (no credentials in the environment, shared files, web identity or container endpoint either)");
		break;
	}
	if (r) {
		creds_clear(&c);
		return r;
	}
	*c_out = c;
	return 0;
}

/*
 * Make a->cred fresh; a->lock held on entry and on return, dropped while
 * one call fetches.  A call that finds another fetching waits for it, but
 * no longer than its own deadline @dl (then TRANSIENT): a stalled metadata
 * service costs each call at most its own attempt time.
 */
static int creds_get(struct lc_kms_aws *a, uint64_t dl, struct lc_error *err)
{
	int r = 0;

	while (!creds_fresh(a)) {
		struct creds c = { 0 };

		if (a->refreshing) {
			uint64_t until = dl ? dl : mono_ms() + 4 * a->imds_timeout_ms;
			struct timespec ts = { .tv_sec = (time_t)(until / 1000),
					       .tv_nsec = (long)(until % 1000) * 1000000 };

			if (pthread_cond_timedwait(&a->refreshed, &a->lock, &ts) == ETIMEDOUT &&
			    a->refreshing)
				return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
					      "AWS credentials: another call has been fetching credentials past this attempt's deadline (metadata or STS endpoint slow)");
			continue;
		}
		a->refreshing = true;
		pthread_mutex_unlock(&a->lock);
		r = creds_fetch(a, &c, dl, err);
		pthread_mutex_lock(&a->lock);
		a->refreshing = false;
		pthread_cond_broadcast(&a->refreshed);
		if (r)
			return r;
		creds_clear(&a->cred);
		a->cred = c;
		a->have_cred = true;
		lc_debug("AWS KMS: credentials %s from %s", a->cred.access_key_id, a->cred.source);
	}
	return 0;
}

/* ---- the provider ------------------------------------------------------- */

static const char *const cred_names[] = { "auto", "env", "profile", "imds", "container", "web-identity" };

int lc_kms_aws_new(struct lc_kms_aws **out, const struct lc_kms_aws_config *cfg,
		   struct lc_error *err)
{
	struct lc_http_opts o = { .ca_file = cfg->ca_file, .connect_timeout_ms = cfg->connect_timeout_ms,
				  .max_response = LC_KMS_AWS_MAX_RESPONSE, .what = "AWS KMS" };
	struct lc_http_opts im = { .connect_timeout_ms = 0, .max_response = 16 * 1024,
				   .allow_http = true, .what = "AWS instance metadata" };
	const char *ie = cfg->imds_endpoint ? cfg->imds_endpoint : getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	struct lc_kms_aws *a;
	int r;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	pthread_mutex_init(&a->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&a->refreshed, &ca);
		pthread_condattr_destroy(&ca);
	}
	a->src = CRED_AUTO;
	if (cfg->credentials) {
		size_t i;

		for (i = 0; i < sizeof(cred_names) / sizeof(cred_names[0]); i++)
			if (!strcmp(cfg->credentials, cred_names[i]))
				break;
		if (i == sizeof(cred_names) / sizeof(cred_names[0])) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "AWS KMS: unknown credentials source \"%.64s\": expected auto, env, profile, web-identity, container or imds",
				   cfg->credentials);
			goto fail;
		}
		a->src = (enum cred_src)i;
	}
	if (cfg->region && *cfg->region) {
		bool ok = strlen(cfg->region) < sizeof(a->region);

		for (const char *c = cfg->region; ok && *c; c++)
			ok = islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-';
		if (!ok) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "AWS KMS: region \"%.64s\" is not a region name such as eu-west-1",
				   cfg->region);
			goto fail;
		}
		snprintf(a->region, sizeof(a->region), "%s", cfg->region);
	}
	if (cfg->endpoint && *cfg->endpoint) {
		size_t l = strlen(cfg->endpoint);

		if (strncmp(cfg->endpoint, "https://", 8) || l < 9 || l > 500) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "AWS KMS: endpoint \"%.100s\" is not an https:// URL", cfg->endpoint);
			goto fail;
		}
		a->endpoint = strdup(cfg->endpoint);
		if (a->endpoint && a->endpoint[l - 1] == '/')
			a->endpoint[l - 1] = 0;
	}
	a->imds_endpoint = strdup(ie && *ie ? ie : "http://169.254.169.254");
	if (a->imds_endpoint) {
		size_t l = strlen(a->imds_endpoint);

		if (l && a->imds_endpoint[l - 1] == '/')
			a->imds_endpoint[l - 1] = 0;
	}
	if (cfg->sts_endpoint && *cfg->sts_endpoint) {
		size_t l = strlen(cfg->sts_endpoint);

		if (strncmp(cfg->sts_endpoint, "https://", 8) || l < 9 || l > 500) {
			r = lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				   "AWS KMS: sts_endpoint \"%.100s\" is not an https:// URL", cfg->sts_endpoint);
			goto fail;
		}
		a->sts_endpoint = strdup(cfg->sts_endpoint);
		if (!a->sts_endpoint) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			goto fail;
		}
	}
	a->profile = cfg->profile && *cfg->profile ? strdup(cfg->profile) : NULL;
	a->imds_timeout_ms = cfg->imds_timeout_ms ? cfg->imds_timeout_ms : LC_KMS_AWS_IMDS_TIMEOUT_MS;
	im.connect_timeout_ms = a->imds_timeout_ms;
	if ((cfg->endpoint && *cfg->endpoint && !a->endpoint) || !a->imds_endpoint ||
	    (cfg->profile && *cfg->profile && !a->profile)) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto fail;
	}
	r = lc_http_new(&a->http, &o, err);
	if (!r)
		r = lc_http_new(&a->imds, &im, err);
	if (r)
		goto fail;
	*out = a;
	return 0;
fail:
	lc_kms_aws_free(a);
	return r;
}

void lc_kms_aws_free(struct lc_kms_aws *a)
{
	if (!a)
		return;
	creds_clear(&a->cred);
	lc_http_free(a->http);
	lc_http_free(a->imds);
	free(a->endpoint);
	free(a->profile);
	free(a->imds_endpoint);
	free(a->sts_endpoint);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->refreshed);
	free(a);
}

void lc_kms_aws_set_time(struct lc_kms_aws *a, time_t when)
{
	a->fixed_time = when;
}

/* Where a request for @key_ref goes: URL, host, signing region. */
struct target {
	char url[600];
	char host[520];
	char key_region[LC_AWS_REGION_MAX];
	char region[LC_AWS_REGION_MAX];		/* signing = endpoint region */
};

static int resolve(struct lc_kms_aws *a, const char *key_ref, struct target *t,
		   struct lc_error *err)
{
	char part[LC_AWS_REGION_MAX] = "aws";
	bool arn = !strncmp(key_ref, "arn:", 4);

	memset(t, 0, sizeof(*t));
	if (strlen(key_ref) >= LC_PROVIDER_KEYID_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "AWS KMS: key reference too long");
	for (const char *c = key_ref; *c; c++)
		if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\')
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "AWS KMS: key reference has a character outside printable ASCII or a quote");
	/* An alias can be repointed to another key or deleted: the watcher
	 * would follow the alias, not the CMK, and read a deleted alias as a
	 * revocation.  Only the key itself is a CMK reference. */
	if (!strncmp(key_ref, "alias/", 6) || (arn && strstr(key_ref, ":alias/")))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "AWS KMS: \"%.200s\" is an alias, which can be repointed or deleted: give the key ARN (arn:aws:kms:<region>:<account>:key/<id>)",
			      key_ref);
	if (arn && lc_aws_arn_region(key_ref, t->key_region, part))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "AWS KMS: \"%.200s\" is not a KMS key ARN (expected arn:aws:kms:<region>:<account>:key/<id>)",
			      key_ref);
	snprintf(t->region, sizeof(t->region), "%s", a->region[0] ? a->region : t->key_region);
	if (!a->endpoint && t->key_region[0])	/* no override: the key's own region */
		snprintf(t->region, sizeof(t->region), "%s", t->key_region);
	if (!t->region[0])
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "AWS KMS: \"%.200s\" is not an ARN and no region is configured ([aws-kms] region)",
			      key_ref);
	/* An endpoint of another region cannot hold the key: whatever it
	 * answers (NotFound, AccessDenied) says nothing about the key. */
	if (t->key_region[0] && strcmp(t->key_region, t->region))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "AWS KMS: the key ARN is in region %s but the endpoint serves %s: set the region or endpoint for %s in [aws-kms]",
			      t->key_region, t->region, t->key_region);
	if (a->endpoint)
		snprintf(t->url, sizeof(t->url), "%s/", a->endpoint);
	else
		snprintf(t->url, sizeof(t->url), "https://kms.%s.amazonaws.com%s/", t->region,
			 !strcmp(part, "aws-cn") ? ".cn" : "");
	lc_url_host(t->url, t->host, sizeof(t->host));
	return 0;
}

/* Sign @req for @service in @region with the current credentials (a->lock
 * held); the session token's header, if any, in *@tok_hdr (free()).
 * 0, or -errno. */
static int sign_with_creds(struct lc_kms_aws *a, const struct lc_sigv4_request *req,
			   const char *region, const char *service,
			   struct lc_sigv4_result *sig, char **tok_hdr)
{
	struct lc_sigv4_creds sc = { .access_key_id = a->cred.access_key_id,
				     .secret_key = (const char *)a->cred.secret.p,
				     .session_token = a->cred.token.len ? (const char *)a->cred.token.p : NULL };
	int r = lc_sigv4_sign(req, &sc, region, service, a->fixed_time ? a->fixed_time : time(NULL),
			      sig);

	if (!r && sc.session_token &&
	    asprintf(tok_hdr, "X-Amz-Security-Token: %s", sc.session_token) < 0) {
		*tok_hdr = NULL;
		r = -ENOMEM;
	}
	return r;
}

/*
 * One signed KMS request.  @body is the JSON request (may hold key
 * material: it is the caller's locked buffer).  On 0, @res holds the
 * parsed answer.
 */
static int kms_call(struct lc_kms_aws *a, enum lc_aws_op op, const char *key_ref,
		    const char *body, size_t body_len, uint64_t timeout_ms,
		    struct lc_aws_result *res, struct lc_provider_reply *reply,
		    struct lc_error *err)
{
	struct target t;
	struct lc_sigv4_result sig = { 0 };
	struct lc_http_response resp = { 0 };
	char target_hdr[64], date_hdr[40], *auth_hdr = NULL, *tok_hdr = NULL;
	const char *hdrs[7];
	int r, nh = 0;

	uint64_t dl = timeout_ms ? mono_ms() + timeout_ms : 0, left = timeout_ms;

	memset(res, 0, sizeof(*res));
	r = resolve(a, key_ref, &t, err);
	if (r)
		return r;
	snprintf(target_hdr, sizeof(target_hdr), "TrentService.%s", op_name(op));
	pthread_mutex_lock(&a->lock);
	r = creds_get(a, dl, err);
	if (!r) {
		const struct lc_sigv4_header sh[] = {
			{ "Content-Type", "application/x-amz-json-1.1" },
			{ "Host", t.host },
			{ "X-Amz-Target", target_hdr },
		};
		struct lc_sigv4_request req = { .method = "POST", .path = "/", .headers = sh,
						.nheaders = 3, .body = body, .body_len = body_len,
						.normalize_path = true };
		r = sign_with_creds(a, &req, t.region, "kms", &sig, &tok_hdr);
		if (r)
			r = lc_err(err, r, LC_ERRC_INTERNAL, "AWS KMS: cannot sign the request: %s",
				   strerror(-r));
	}
	pthread_mutex_unlock(&a->lock);
	/* The KMS request gets what the credentials left of the attempt. */
	if (!r && dl)
		r = cred_budget(dl, timeout_ms, &left, err);
	if (r)
		goto out;
	if (asprintf(&auth_hdr, "Authorization: %s", sig.authorization) < 0) {
		auth_hdr = NULL;
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(date_hdr, sizeof(date_hdr), "X-Amz-Date: %s", sig.amz_date);
	{
		char th[80];

		snprintf(th, sizeof(th), "X-Amz-Target: %s", target_hdr);
		hdrs[nh++] = "Content-Type: application/x-amz-json-1.1";
		hdrs[nh++] = th;
		hdrs[nh++] = date_hdr;
		hdrs[nh++] = auth_hdr;
		if (tok_hdr)
			hdrs[nh++] = tok_hdr;
		hdrs[nh] = NULL;
		r = lc_http_request(a->http, "POST", t.url, hdrs, body, body_len, "x-amzn-RequestId",
				    left, &resp, err);
	}
	if (r)
		goto out;
	if (reply)
		snprintf(reply->request_id, sizeof(reply->request_id), "%.127s", resp.request_id);
	r = lc_aws_parse_response(op, resp.status, (const char *)resp.body.p, resp.len,
				  t.key_region, t.region, res, err);
	if (r && res->expired_token) {
		/* Fetch the credentials again before the retry. */
		pthread_mutex_lock(&a->lock);
		creds_clear(&a->cred);
		a->have_cred = false;
		pthread_mutex_unlock(&a->lock);
	}
	if (r && err && resp.request_id[0])
		err_append(err, " [request %.80s]", resp.request_id);
out:
	if (auth_hdr)
		lc_wipe(auth_hdr, strlen(auth_hdr));
	free(auth_hdr);
	if (tok_hdr)
		lc_wipe(tok_hdr, strlen(tok_hdr));
	free(tok_hdr);
	lc_sigv4_result_free(&sig);
	lc_http_response_free(&resp);
	return r;
}

/* "EncryptionContext":{"lakecrypt:volume":"...",...} from the KEK context,
 * or {"lakecrypt:purpose":"canary","lakecrypt:keyconfig":"..."} from the
 * revocation probe's canary context (lc_context_pairs, envelope.h). */
static int put_context(struct lc_sb *b, const char *context, struct lc_error *err)
{
	char buf[LC_KEK_CONTEXT_MAX];
	struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS];
	int n = context ? lc_context_pairs(context, buf, pairs) : -EINVAL;

	if (n < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "AWS KMS: the KEK context is not a lakecrypt v2 context (volume, workspace, project, keyconfig) nor a canary context");
	lc_sb_puts(b, ",\"EncryptionContext\":{");
	for (int i = 0; i < n; i++) {
		/* keys and values are of [A-Za-z0-9:._-]: nothing to escape */
		lc_sb_puts(b, i ? ",\"" : "\"");
		lc_sb_puts(b, pairs[i].key);
		lc_sb_puts(b, "\":\"");
		lc_sb_puts(b, pairs[i].value);
		sb_putc(b, '"');
	}
	sb_putc(b, '}');
	return 0;
}

static void fill_reply(struct lc_provider_reply *reply, const struct lc_aws_result *res,
		       const char *key_ref)
{
	if (!reply)
		return;
	snprintf(reply->key_id, sizeof(reply->key_id), "%s", res->key_id[0] ? res->key_id : key_ref);
}

/* Request bodies are built in locked memory: Encrypt's holds the KEK. */
static int body_alloc(struct lc_secret *s, size_t len, struct lc_error *err)
{
	if (lc_secret_alloc(s, len))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	return 0;
}

static int aws_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		    const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		    struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_aws *a = priv;
	struct lc_sb head = { 0 }, tail = { 0 };
	struct lc_secret body = { 0 };
	struct lc_aws_result res;
	size_t n;
	int r;

	if (pt->len > LC_KMS_AWS_MAX_PLAINTEXT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "AWS KMS: plaintext above 4096 bytes");
	lc_sb_puts(&head, "{\"KeyId\":\"");
	lc_sb_puts(&head, key_ref);
	lc_sb_puts(&head, "\",\"Plaintext\":\"");
	r = put_context(&tail, context, err);
	lc_sb_puts(&tail, "}");
	if (!r && (head.oom || tail.oom))
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	if (!r) {
		size_t b64 = 4 * ((pt->len + 2) / 3);

		r = body_alloc(&body, head.len + b64 + 1 + 1 + tail.len + 1, err);
		if (!r) {
			memcpy(body.p, head.p, head.len);
			n = head.len + lc_base64_encode(pt->p, pt->len, (char *)body.p + head.len);
			body.p[n++] = '"';
			memcpy(body.p + n, tail.p, tail.len);
			n += tail.len;
			body.p[n] = 0;
			r = kms_call(a, LC_AWS_ENCRYPT, key_ref, (const char *)body.p, n, timeout_ms,
				     &res, reply, err);
		}
	}
	free(head.p);
	free(tail.p);
	lc_secret_free(&body);
	if (r)
		return r;
	fill_reply(reply, &res, key_ref);
	*blob = res.blob;
	res.blob.p = NULL;
	lc_aws_result_free(&res);
	return 0;
}

static int aws_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
		      const char *context, uint64_t timeout_ms, struct lc_secret *pt,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_aws *a = priv;
	struct lc_sb b = { 0 };
	struct lc_aws_result res;
	char *b64;
	int r;

	if (blob->len > LC_KMS_AWS_MAX_BLOB)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "AWS KMS: wrapped key of %zu bytes is above the KMS limit of %d", blob->len,
			      LC_KMS_AWS_MAX_BLOB);
	b64 = malloc(4 * ((blob->len + 2) / 3) + 1);
	if (!b64)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_base64_encode(blob->p, blob->len, b64);
	lc_sb_puts(&b, "{\"CiphertextBlob\":\"");
	lc_sb_puts(&b, b64);
	lc_sb_puts(&b, "\",\"KeyId\":\"");
	lc_sb_puts(&b, key_ref);
	sb_putc(&b, '"');
	free(b64);
	r = put_context(&b, context, err);
	sb_putc(&b, '}');
	if (!r && b.oom)
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	if (!r)
		r = kms_call(a, LC_AWS_DECRYPT, key_ref, b.p, b.len, timeout_ms, &res, reply, err);
	free(b.p);
	if (r)
		return r;
	fill_reply(reply, &res, key_ref);
	*pt = res.plaintext;
	memset(&res.plaintext, 0, sizeof(res.plaintext));
	lc_aws_result_free(&res);
	return 0;
}

/*
 * A bare key id becomes the key ARN DescribeKey answered
 * (KeyMetadata.Arn), if that is a KMS key ARN (not an alias) of the
 * region the request went to and names the same key: what keyconfig
 * create stores (provider.h, bound_ref), so that a later region or
 * endpoint change reads as MISCONFIG, never as a deleted key.
 */
static void bind_arn(struct lc_kms_aws *a, const char *key_ref, const char *arn,
		     struct lc_provider_reply *reply)
{
	char kr[LC_AWS_REGION_MAX], part[LC_AWS_REGION_MAX];
	const char *id;
	struct target t;
	struct lc_error e;
	size_t n;

	reply->bound_ref[0] = 0;
	if (!strncmp(key_ref, "arn:", 4) || lc_aws_arn_region(arn, kr, part) ||
	    resolve(a, key_ref, &t, &e) || strcmp(kr, t.region))
		return;
	id = strstr(arn, ":key/");
	n = strlen(arn);
	if (!id || strcmp(id + 5, key_ref) || n >= sizeof(reply->bound_ref))
		return;
	for (const char *c = arn; *c; c++)
		if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\')
			return;
	memcpy(reply->bound_ref, arn, n + 1);
}

static int aws_key_state_op(void *priv, const char *key_ref, uint64_t timeout_ms,
			    struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_aws *a = priv;
	struct lc_sb b = { 0 };
	struct lc_aws_result res;
	int r;

	lc_sb_puts(&b, "{\"KeyId\":\"");
	lc_sb_puts(&b, key_ref);
	lc_sb_puts(&b, "\"}");
	if (b.oom) {
		free(b.p);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	r = kms_call(a, LC_AWS_DESCRIBE_KEY, key_ref, b.p, b.len, timeout_ms, &res, reply, err);
	free(b.p);
	if (r)
		return r;
	fill_reply(reply, &res, key_ref);
	if (reply) {
		reply->state = res.state;
		reply->deletion_date = res.deletion_date;
		bind_arn(a, key_ref, res.key_id, reply);
	}
	lc_aws_result_free(&res);
	return 0;
}

/*
 * sts:GetCallerIdentity for the identity binding (kms-aws.h).  The URL:
 * [aws-kms] sts_endpoint, else $AWS_ENDPOINT_URL_STS, else
 * https://sts.<region>.amazonaws.com[.cn], <region> the signing region of
 * @key_ref's KMS requests (resolve()); the signed path is the URL's.
 */
static int aws_identity_op(void *priv, const char *key_ref, uint64_t timeout_ms,
			   char principal[], size_t size, struct lc_provider_reply *reply,
			   struct lc_error *err)
{
	static const char body[] = "Action=GetCallerIdentity&Version=2011-06-15";
	static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
	struct lc_kms_aws *a = priv;
	struct target t;
	struct lc_sigv4_result sig = { 0 };
	struct lc_http_response resp = { 0 };
	char url[600], host[520], date_hdr[40], ct_hdr[96], *auth_hdr = NULL, *tok_hdr = NULL;
	const char *ep = a->sts_endpoint ? a->sts_endpoint : getenv("AWS_ENDPOINT_URL_STS");
	const char *path, *hdrs[6];
	uint64_t dl = timeout_ms ? mono_ms() + timeout_ms : 0, left = timeout_ms;
	int r, nh = 0;

	if (size)
		principal[0] = 0;
	r = resolve(a, key_ref, &t, err);
	if (r)
		return r;
	if (ep && *ep) {
		if (strncmp(ep, "https://", 8) || strlen(ep) > 500)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "AWS STS: endpoint \"%.100s\" is not an https:// URL", ep);
		snprintf(url, sizeof(url), "%s%s", ep, strchr(ep + 8, '/') ? "" : "/");
	} else {
		snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com%s/", t.region,
			 !strncmp(key_ref, "arn:aws-cn:", 11) ? ".cn" : "");
	}
	lc_url_host(url, host, sizeof(host));
	path = strchr(url + 8, '/');
	pthread_mutex_lock(&a->lock);
	r = creds_get(a, dl, err);
	if (!r) {
		const struct lc_sigv4_header sh[] = {
			{ "Content-Type", ctype },
			{ "Host", host },
		};
		struct lc_sigv4_request req = { .method = "POST", .path = path, .headers = sh,
						.nheaders = 2, .body = body, .body_len = sizeof(body) - 1,
						.normalize_path = true };
		r = sign_with_creds(a, &req, t.region, "sts", &sig, &tok_hdr);
		if (r)
			r = lc_err(err, r, LC_ERRC_INTERNAL, "AWS STS: cannot sign the request: %s",
				   strerror(-r));
	}
	pthread_mutex_unlock(&a->lock);
	if (!r && dl)
		r = cred_budget(dl, timeout_ms, &left, err);
	if (r)
		goto out;
	if (asprintf(&auth_hdr, "Authorization: %s", sig.authorization) < 0) {
		auth_hdr = NULL;
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(date_hdr, sizeof(date_hdr), "X-Amz-Date: %s", sig.amz_date);
	snprintf(ct_hdr, sizeof(ct_hdr), "Content-Type: %s", ctype);
	hdrs[nh++] = ct_hdr;
	hdrs[nh++] = date_hdr;
	hdrs[nh++] = auth_hdr;
	if (tok_hdr)
		hdrs[nh++] = tok_hdr;
	hdrs[nh] = NULL;
	r = lc_http_request(a->http, "POST", url, hdrs, body, sizeof(body) - 1, "x-amzn-RequestId",
			    left, &resp, err);
	if (r) {
		err_append(err, " (AWS STS GetCallerIdentity at %.200s)", url);
		goto out;
	}
	if (reply)
		snprintf(reply->request_id, sizeof(reply->request_id), "%.127s", resp.request_id);
	r = lc_aws_parse_caller_identity(resp.status, (const char *)resp.body.p, resp.len,
					 principal, size, err);
	if (r && resp.request_id[0])
		err_append(err, " [request %.80s]", resp.request_id);
out:
	if (auth_hdr)
		lc_wipe(auth_hdr, strlen(auth_hdr));
	free(auth_hdr);
	if (tok_hdr)
		lc_wipe(tok_hdr, strlen(tok_hdr));
	free(tok_hdr);
	lc_sigv4_result_free(&sig);
	lc_http_response_free(&resp);
	return r;
}

static void aws_destroy(void *priv)
{
	lc_kms_aws_free(priv);
}

const struct lc_provider_ops lc_kms_aws_ops = {
	.name = LC_KMS_AWS_NAME,
	.wrap = aws_wrap,
	.unwrap = aws_unwrap,
	.key_state = aws_key_state_op,
	.destroy = aws_destroy,
	.identity = aws_identity_op,
	.identity_match = lc_aws_principal_match,
};

void lc_kms_aws_provider_init(struct lc_provider *p, struct lc_kms_aws *aws)
{
	lc_provider_init(p, &lc_kms_aws_ops, aws);
}
