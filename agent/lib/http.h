/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one HTTP/JSON core of the cloud KMS providers (AWS KMS now; Azure
 * Key Vault and Google Cloud KMS later): libcurl over OpenSSL, json-c.
 *
 *   - One client per provider instance keeps a few idle libcurl easy
 *     handles, so connections (TLS sessions, HTTP/2 streams) are reused
 *     across calls; concurrent calls each take a handle of their own, so a
 *     call stalled on one endpoint or key never holds up another.
 *   - HTTPS only, peer and host name verification always on, against the
 *     system CAs or a configured CA bundle (PEM).  Plain HTTP only for a
 *     client made with allow_http (link-local metadata services).
 *   - Every request has a connect timeout and a total timeout (ms).
 *   - A response body is at most max_response bytes and lands in locked
 *     memory (struct lc_secret: a Decrypt answer holds key material);
 *     a longer one is cut off and reported.
 *   - No header, body, token or signature is ever logged or copied into an
 *     error message: messages name the method, the host and what failed.
 *
 * Error classes (lc-error.h), per the provider contract (provider.h):
 *   connection refused/reset, DNS, timeouts, TLS handshake or certificate
 *   verification failure, truncated or oversized body, HTTP 429 and 5xx
 *   -> TRANSIENT (never authoritative: an outage is not a revocation);
 *   a malformed URL or CA bundle path -> MISCONFIG; out of memory ->
 *   INTERNAL.  4xx answers are classified by the provider, which reads
 *   the error body: a status alone never says DENIED (a 401/403 may be a
 *   proxy's or an expired token's, a 404 a wrong URL).
 */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "lc-error.h"
#include "secmem.h"

#define LC_HTTP_DEFAULT_MAX_RESPONSE	(256 * 1024)	/* bytes */
#define LC_HTTP_DEFAULT_CONNECT_MS	3000
#define LC_HTTP_HEADER_VALUE_MAX	256
#define LC_HTTP_MAX_JSON_DEPTH		16
#define LC_HTTP_JSON_STRBUF		8192	/* bytes: longest string kept in one buffer */

struct lc_http_opts {
	const char *ca_file;		/* PEM bundle, the only CAs trusted; NULL: the system CAs */
	uint64_t connect_timeout_ms;	/* 0: LC_HTTP_DEFAULT_CONNECT_MS */
	size_t max_response;		/* bytes; 0: LC_HTTP_DEFAULT_MAX_RESPONSE */
	bool allow_http;		/* plain http:// too (metadata services) */
	const char *what;		/* "AWS KMS", for messages */
};

struct lc_http;

/* A response: status, body (locked, NUL-terminated, len bytes) and the
 * values of the headers asked for (truncated to fit, "" if absent). */
struct lc_http_response {
	long status;
	struct lc_secret body;		/* body.p[len] == 0; len bytes used */
	size_t len;
	char request_id[LC_HTTP_HEADER_VALUE_MAX];
	char retry_after[32];
	char content_type[LC_HTTP_HEADER_VALUE_MAX];
	char date[40];			/* Date (RFC 9110 section 6.6.1): the server's clock */
};

/* 0, -EINVAL (MISCONFIG: unreadable CA bundle), -ENOMEM (INTERNAL). */
int lc_http_new(struct lc_http **h, const struct lc_http_opts *opts, struct lc_error *err);
void lc_http_free(struct lc_http *h);

/*
 * One request.  @headers: NULL-terminated "Name: value" strings (may hold
 * credentials: never logged).  @body/@body_len: request body (may be
 * NULL/0).  @request_id_header: the response header whose value goes to
 * resp->request_id (e.g. "x-amzn-RequestId"), NULL for none.  @timeout_ms
 * bounds the whole exchange, connect included (0: the connect timeout
 * only bounds connecting; callers always give one).  Returns 0 when an
 * HTTP answer came (any status: check resp->status), else a negative errno
 * with the class above; resp is then empty.  lc_http_response_free()
 * in both cases.
 */
int lc_http_request(struct lc_http *h, const char *method, const char *url,
		    const char *const *headers, const void *body, size_t body_len,
		    const char *request_id_header, uint64_t timeout_ms,
		    struct lc_http_response *resp, struct lc_error *err);
void lc_http_response_free(struct lc_http_response *resp);

/* The server's clock from @resp's Date header (an IMF-fixdate, RFC 9110
 * section 5.6.7, read by libcurl's curl_getdate): epoch s, or 0 if the
 * header is absent or not a date. */
int64_t lc_http_server_time(const struct lc_http_response *resp);

/*
 * Parse @len bytes of JSON (an object at the top, depth at most
 * LC_HTTP_MAX_JSON_DEPTH, no trailing garbage, no object with a duplicate
 * or escaped member name: lc_json_check_names() first).  The tokener's own
 * copy of the text is wiped before it is freed (answers may carry keys);
 * its buffer is sized up front so strings below LC_HTTP_JSON_STRBUF bytes
 * never leave a freed copy behind.
 * NULL if not valid.
 */
json_object *lc_json_parse(const char *text, size_t len);
/*
 * Check @len bytes of JSON text before json-c sees it: every object's
 * member names are distinct and carry no backslash escape.  json-c keeps
 * the last of two equal names and frees the first value without wiping
 * it, so {"Plaintext":"<key>","Plaintext":"x"} would leave a key in freed
 * memory (and hand over a value the sender chose to hide); RFC 8259
 * section 4 leaves duplicate names' meaning open.  Names are compared as
 * sent: no KMS API escapes its ASCII member names, so a name with an
 * escape is refused rather than decoded (it could spell a duplicate).
 * Only the structure is followed (strings, {, [, ], }, ,); validity is
 * json-c's job.  0; -EBADMSG (a duplicate or escaped name); -E2BIG (more
 * than LC_JSON_MAX_NAMES names in one object, or nesting deeper than
 * LC_HTTP_MAX_JSON_DEPTH); -EINVAL (unbalanced or unterminated); -ENOMEM.
 */
#define LC_JSON_MAX_NAMES	1024
int lc_json_check_names(const char *text, size_t len);
/* Wipe every string of @o (recursively) in place, then put it. */
void lc_json_put_wiped(json_object *o);
/* The string member @key of object @o, or NULL if absent or not a string. */
const char *lc_json_str(json_object *o, const char *key);

/* Standard base64 (RFC 4648 section 4).  Encode: @out must hold
 * 4 * ceil(len / 3) + 1 bytes; returns the length written (NUL added). */
size_t lc_base64_encode(const uint8_t *in, size_t len, char *out);
/* Decode @len characters of padded base64 into @out (room for
 * 3 * len / 4 bytes); -EINVAL on bad input, else the length. */
int lc_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);
/* A growing NUL-terminated string for request bodies and canonical
 * requests; an allocation failure sets @oom and later puts do nothing.
 * Free @p with free() (or wipe it first if it held a secret). */
struct lc_sb {
	char *p;
	size_t len, cap;
	bool oom;
};
void lc_sb_putn(struct lc_sb *b, const char *s, size_t n);
void lc_sb_puts(struct lc_sb *b, const char *s);
/* Append @n bytes of @s percent-encoded (RFC 3986 section 2.1; the
 * unreserved characters of 2.3 kept), as a query or
 * application/x-www-form-urlencoded value.  Request text only: a secret
 * goes through lc_form_encode() into locked memory. */
void lc_sb_put_form(struct lc_sb *b, const char *s, size_t n);
/* Append base64url without padding (RFC 4648 section 5) of @n bytes. */
void lc_sb_put_b64url(struct lc_sb *b, const void *p, size_t n);

/* The same encodings into a caller's buffer (e.g. locked memory for a
 * secret), NUL-terminated; they return the length written.
 * lc_form_encode: @out holds 3 * @n + 1 bytes.
 * lc_base64url_encode: @out holds 4 * ceil(@len / 3) + 1 bytes (as for
 * lc_base64_encode, OpenSSL's encoder; the padding is then dropped). */
size_t lc_form_encode(const char *s, size_t n, char *out);
size_t lc_base64url_encode(const uint8_t *in, size_t len, char *out);

/* Copy @in (NULL: "") into @out (@size bytes, NUL-terminated, cut to fit),
 * every byte outside printable ASCII replaced by '?': for a server's text
 * in a message. */
void lc_copy_printable(char *out, size_t size, const char *in);

/* A server's error text goes into logs and error messages: replace @msg
 * (NUL-terminated, @size bytes) by a notice if it seems to echo a
 * credential back (a bearer token, a JWT, an AWS signature or session
 * token, a private key). */
void lc_http_msg_scrub(char *msg, size_t size);

/* Bytes that @len characters of padded base64 decode to (the size @out
 * must have); 0 if @len is 0 or not a multiple of 4.  Callers with a
 * fixed buffer check this first: lc_base64_decode() does not know it. */
size_t lc_base64_decoded_len(const char *in, size_t len);

/* "host" of an https://host[:port]/... URL, for messages; "?" if none. */
void lc_url_host(const char *url, char *out, size_t size);

#endif /* LC_HTTP_H */
