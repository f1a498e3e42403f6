// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTP/JSON core of the cloud providers (see http.h).  libcurl does
 * the transport; this file fixes its options (HTTPS only, verification on,
 * timeouts, size bound, no redirects, no proxy surprises from the
 * environment beyond curl's own), collects the body into locked memory and
 * turns curl's errors into lakecrypt's error classes.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <openssl/evp.h>

#include "http.h"

/* Idle easy handles kept for reuse (each keeps its connections alive). */
#define HTTP_POOL	4

struct lc_http {
	CURL *idle[HTTP_POOL];		/* LIFO: the last used is reused first */
	unsigned int nidle;
	pthread_mutex_t lock;		/* idle[] only: requests run unlocked */
	char *ca_file;
	uint64_t connect_ms;
	size_t max_response;
	bool allow_http;
	char what[64];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int lc_http_new(struct lc_http **hp, const struct lc_http_opts *opts, struct lc_error *err)
{
	struct lc_http *h;

	*hp = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "libcurl initialisation failed: %s",
			      curl_easy_strerror(curl_init_rc));
	if (opts->ca_file && *opts->ca_file && access(opts->ca_file, R_OK))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "%s: CA bundle %s is not readable: %s",
			      opts->what ? opts->what : "HTTP", opts->ca_file, strerror(errno));
	h = calloc(1, sizeof(*h));
	if (!h)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	pthread_mutex_init(&h->lock, NULL);
	h->idle[0] = curl_easy_init();
	h->nidle = h->idle[0] ? 1 : 0;
	if (!h->nidle || (opts->ca_file && *opts->ca_file && !(h->ca_file = strdup(opts->ca_file)))) {
		lc_http_free(h);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	h->connect_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : LC_HTTP_DEFAULT_CONNECT_MS;
	h->max_response = opts->max_response ? opts->max_response : LC_HTTP_DEFAULT_MAX_RESPONSE;
	h->allow_http = opts->allow_http;
	snprintf(h->what, sizeof(h->what), "%s", opts->what ? opts->what : "HTTP");
	*hp = h;
	return 0;
}

void lc_http_free(struct lc_http *h)
{
	if (!h)
		return;
	for (unsigned int i = 0; i < h->nidle; i++)
		curl_easy_cleanup(h->idle[i]);
	pthread_mutex_destroy(&h->lock);
	free(h->ca_file);
	free(h);
}

void lc_http_response_free(struct lc_http_response *resp)
{
	if (!resp)
		return;
	lc_secret_free(&resp->body);
	memset(resp, 0, sizeof(*resp));
}

struct sink {
	struct lc_http_response *resp;
	size_t max;
	bool too_big;
	bool nomem;
	const char *reqid_header;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	struct lc_http_response *r = s->resp;
	size_t n = size * nmemb;

	if (n > s->max - r->len) {
		s->too_big = true;
		return 0;	/* CURLE_WRITE_ERROR */
	}
	if (!r->body.p) {
		/* One locked buffer of the bound: no realloc leaving copies. */
		if (lc_secret_alloc(&r->body, s->max + 1)) {
			s->nomem = true;
			return 0;
		}
	}
	memcpy(r->body.p + r->len, data, n);
	r->len += n;
	return n;
}

static void header_value(const char *line, size_t n, char *out, size_t size)
{
	const char *v = memchr(line, ':', n);
	size_t len;

	if (!v)
		return;
	v++;
	n -= (size_t)(v - line);
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	len = n < size - 1 ? n : size - 1;
	for (size_t i = 0; i < len; i++)	/* printable ASCII only: it is logged */
		out[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
	out[len] = 0;
}

static bool header_is(const char *line, size_t n, const char *name)
{
	size_t l = strlen(name);

	return n > l && line[l] == ':' && !strncasecmp(line, name, l);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	/* A new status line (after 100-continue or a redirect) resets. */
	if (n > 5 && !strncmp(line, "HTTP/", 5)) {
		s->resp->request_id[0] = 0;
		s->resp->retry_after[0] = 0;
		s->resp->content_type[0] = 0;
		s->resp->date[0] = 0;
	} else if (s->reqid_header && header_is(line, n, s->reqid_header)) {
		header_value(line, n, s->resp->request_id, sizeof(s->resp->request_id));
	} else if (header_is(line, n, "retry-after")) {
		header_value(line, n, s->resp->retry_after, sizeof(s->resp->retry_after));
	} else if (header_is(line, n, "content-type")) {
		header_value(line, n, s->resp->content_type, sizeof(s->resp->content_type));
	} else if (header_is(line, n, "date")) {
		header_value(line, n, s->resp->date, sizeof(s->resp->date));
	}
	return n;
}

int64_t lc_http_server_time(const struct lc_http_response *resp)
{
	time_t t;

	if (!resp->date[0])
		return 0;
	t = curl_getdate(resp->date, NULL);
	return t > 0 ? (int64_t)t : 0;
}

void lc_url_host(const char *url, char *out, size_t size)
{
	const char *p = strstr(url ? url : "", "://");
	size_t n;

	snprintf(out, size, "?");
	if (!p)
		return;
	p += 3;
	n = strcspn(p, "/?#");
	if (memchr(p, '@', n))	/* never print userinfo */
		return;
	snprintf(out, size, "%.*s", (int)(n < 200 ? n : 200), p);
}

static int curl_error(struct lc_http *h, CURLcode rc, const char *method, const char *host,
		      const char *detail, const struct sink *s, uint64_t timeout_ms,
		      struct lc_error *err)
{
	enum lc_err_class cls = LC_ERRC_TRANSIENT;
	int code = -EIO;
	const char *what;

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		code = -ETIMEDOUT;
		what = "timed out";
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		code = -EHOSTUNREACH;
		what = "cannot resolve the host name";
		break;
	case CURLE_COULDNT_CONNECT:
		code = -ECONNREFUSED;
		what = "cannot connect";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		code = -EPROTO;
		what = h->ca_file ? "TLS: the server certificate does not verify against the configured CA bundle, or does not name the host"
				  : "TLS: the server certificate does not verify against the system CAs, or does not name the host";
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		code = -EPROTO;
		what = "TLS handshake failed";
		break;
	case CURLE_WRITE_ERROR:
		if (s->nomem) {
			cls = LC_ERRC_INTERNAL;
			code = -ENOMEM;
			what = "out of memory for the response";
		} else {
			code = -EMSGSIZE;
			what = "response body too large";
		}
		break;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		what = "connection broken (response truncated or missing)";
		break;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		cls = LC_ERRC_MISCONFIG;
		code = -EINVAL;
		what = h->allow_http ? "malformed or unsupported URL" : "malformed URL or not https://";
		break;
	case CURLE_OUT_OF_MEMORY:
		cls = LC_ERRC_INTERNAL;
		code = -ENOMEM;
		what = "out of memory";
		break;
	default:
		what = "transfer failed";
		break;
	}
	if (rc == CURLE_WRITE_ERROR && !s->nomem)
		return lc_err(err, code, cls, "%s: %s %s: %s (more than %zu bytes)", h->what,
			      method, host, what, h->max_response);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return lc_err(err, code, cls, "%s: %s %s: %s (limit %" PRIu64 " ms, connect %" PRIu64 " ms)",
			      h->what, method, host, what, timeout_ms, h->connect_ms);
	/* curl's detail names hosts and certificate subjects, never headers. */
	return lc_err(err, code, cls, "%s: %s %s: %s%s%s", h->what, method, host, what,
		      detail && *detail ? ": " : "", detail ? detail : "");
}

static void put_handle(struct lc_http *h, CURL *c)
{
	pthread_mutex_lock(&h->lock);
	if (h->nidle < HTTP_POOL) {
		h->idle[h->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->lock);
	if (c)
		curl_easy_cleanup(c);
}

/* Header lines may hold a bearer token, a session token or a signature:
 * wiped before libcurl frees its copies. */
static void free_headers(struct curl_slist *hl)
{
	for (struct curl_slist *t = hl; t; t = t->next)
		lc_wipe(t->data, strlen(t->data));
	curl_slist_free_all(hl);
}

int lc_http_request(struct lc_http *h, const char *method, const char *url,
		    const char *const *headers, const void *body, size_t body_len,
		    const char *request_id_header, uint64_t timeout_ms,
		    struct lc_http_response *resp, struct lc_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	char host[256];
	struct curl_slist *hl = NULL, *t;
	struct sink s = { .resp = resp, .max = h->max_response, .reqid_header = request_id_header };
	CURLcode rc;
	CURL *c = NULL;
	int r = 0;

	memset(resp, 0, sizeof(*resp));
	/* A handle of our own for this request: a call stalled on one
	 * endpoint never holds up another. */
	pthread_mutex_lock(&h->lock);
	if (h->nidle)
		c = h->idle[--h->nidle];
	pthread_mutex_unlock(&h->lock);
	if (!c)
		c = curl_easy_init();
	if (!c)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_url_host(url, host, sizeof(host));
	for (size_t i = 0; headers && headers[i]; i++) {
		/* A header line is one line: a token or key id with a control
		 * character (CR, LF: header injection) came from a broken or
		 * hostile metadata or token endpoint, and is not sent. */
		for (const char *q = headers[i]; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f) {
				free_headers(hl);
				put_handle(h, c);
				return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
					      "%s %s: a request header holds a control character (a malformed token or credential from a metadata or token endpoint?): not sent",
					      method, host);
			}
		t = curl_slist_append(hl, headers[i]);
		if (!t) {
			free_headers(hl);
			put_handle(h, c);
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		}
		hl = t;
	}
	/* libcurl would add "Expect: 100-continue" to large POSTs. */
	t = curl_slist_append(hl, "Expect:");
	if (t)
		hl = t;

	curl_easy_reset(c);	/* keeps the connection cache and TLS sessions */
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, h->allow_http ? "https,http" : "https");
	/* Metadata and credential endpoints (the only plain-http ones) are
	 * never reached through a proxy, as the cloud SDKs do: a proxy
	 * would see the tokens and could answer with credentials of its own. */
	if (h->allow_http)
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	/* A configured bundle is the only trust: libcurl's built-in CA path
	 * (Debian: /etc/ssl/certs) would otherwise be searched as well. */
	if (h->ca_file) {
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_ms);
	if (timeout_ms)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "lakecrypt-agent");
	if (!strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (!strcmp(method, "POST") || body) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
		}
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	/* Drop curl's pointers to our stack and the header list. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	put_handle(h, c);
	free_headers(hl);

	if (rc != CURLE_OK) {
		r = curl_error(h, rc, method, host, errbuf, &s, timeout_ms, err);
		lc_http_response_free(resp);
		return r;
	}
	if (!resp->body.p && lc_secret_alloc(&resp->body, 1)) {
		lc_http_response_free(resp);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	resp->body.p[resp->len] = 0;
	return 0;
}

struct json_name {
	size_t off, len;
};

int lc_json_check_names(const char *t, size_t len)
{
	struct {
		bool object, expect_name;
		size_t first;		/* its first name in names[] */
	} st[LC_HTTP_MAX_JSON_DEPTH + 1];
	struct json_name *names = NULL;
	size_t nnames = 0, cap = 0;
	int depth = 0, r = 0;

	for (size_t i = 0; i < len && !r; i++) {
		char c = t[i];

		if (c == '"') {
			size_t start = ++i;
			bool esc = false;

			for (; i < len && t[i] != '"'; i++)
				if (t[i] == '\\') {
					esc = true;
					i++;
				}
			if (i >= len) {
				r = -EINVAL;
				break;
			}
			if (!depth || !st[depth - 1].object || !st[depth - 1].expect_name)
				continue;	/* a value */
			st[depth - 1].expect_name = false;
			if (esc) {
				r = -EBADMSG;
				break;
			}
			for (size_t k = st[depth - 1].first; k < nnames && !r; k++)
				if (names[k].len == i - start && !memcmp(t + names[k].off, t + start, i - start))
					r = -EBADMSG;
			if (r)
				break;
			if (nnames - st[depth - 1].first >= LC_JSON_MAX_NAMES) {
				r = -E2BIG;
				break;
			}
			if (nnames == cap) {
				size_t ncap = cap ? cap * 2 : 32;
				struct json_name *n = realloc(names, ncap * sizeof(*n));

				if (!n) {
					r = -ENOMEM;
					break;
				}
				names = n;
				cap = ncap;
			}
			names[nnames].off = start;
			names[nnames++].len = i - start;
		} else if (c == '{' || c == '[') {
			if (depth > LC_HTTP_MAX_JSON_DEPTH) {
				r = -E2BIG;
				break;
			}
			st[depth].object = c == '{';
			st[depth].expect_name = c == '{';
			st[depth++].first = nnames;
		} else if (c == '}' || c == ']') {
			if (!depth || st[depth - 1].object != (c == '}')) {
				r = -EINVAL;
				break;
			}
			nnames = st[--depth].first;	/* its names are done */
		} else if (c == ',' && depth && st[depth - 1].object) {
			st[depth - 1].expect_name = true;
		}
	}
	if (!r && depth)
		r = -EINVAL;
	free(names);
	return r;
}

json_object *lc_json_parse(const char *text, size_t len)
{
	struct json_tokener *tok;
	json_object *o;
	enum json_tokener_error e;

	if (len > INT32_MAX || lc_json_check_names(text, len))
		return NULL;
	tok = json_tokener_new_ex(LC_HTTP_MAX_JSON_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	/* Grow the tokener's string buffer once, up front: a buffer that grew
	 * while assembling a key-bearing string would free an unwiped copy. */
	if (tok->pb && printbuf_memset(tok->pb, 0, 0, LC_HTTP_JSON_STRBUF) >= 0)
		printbuf_reset(tok->pb);
	o = json_tokener_parse_ex(tok, text, (int)len);
	e = json_tokener_get_error(tok);
	if (o && (e != json_tokener_success || json_tokener_get_parse_end(tok) != len ||
		  !json_object_is_type(o, json_type_object))) {
		lc_json_put_wiped(o);
		o = NULL;
	}
	/* The tokener assembles strings in its own buffer. */
	if (tok->pb && tok->pb->buf)
		lc_wipe(tok->pb->buf, (size_t)tok->pb->size);
	json_tokener_free(tok);
	return o;
}

static void wipe_strings(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		lc_wipe((char *)json_object_get_string(o), (size_t)json_object_get_string_len(o));
		break;
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			(void)k;
			wipe_strings(v);
		}
		break;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			wipe_strings(json_object_array_get_idx(o, i));
		break;
	default:
		break;
	}
}

void lc_json_put_wiped(json_object *o)
{
	if (!o)
		return;
	wipe_strings(o);
	json_object_put(o);
}

const char *lc_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

size_t lc_base64_encode(const uint8_t *in, size_t len, char *out)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void lc_sb_putn(struct lc_sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void lc_sb_puts(struct lc_sb *b, const char *s)
{
	lc_sb_putn(b, s, strlen(s));
}

size_t lc_form_encode(const char *s, size_t n, char *out)
{
	static const char hx[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hx[c >> 4];
			out[o++] = hx[c & 15];
		}
	}
	out[o] = 0;
	return o;
}

size_t lc_base64url_encode(const uint8_t *in, size_t len, char *out)
{
	size_t n = lc_base64_encode(in, len, out);

	while (n && out[n - 1] == '=')
		out[--n] = 0;
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return n;
}

/* Chunks through a stack buffer: the builder's own growth does the rest. */
void lc_sb_put_form(struct lc_sb *b, const char *s, size_t n)
{
	char t[3 * 64 + 1];

	for (size_t i = 0; i < n; i += 64) {
		size_t c = n - i < 64 ? n - i : 64;

		lc_sb_putn(b, t, lc_form_encode(s + i, c, t));
	}
}

void lc_sb_put_b64url(struct lc_sb *b, const void *p, size_t n)
{
	const uint8_t *in = p;
	char t[4 * 48 / 3 + 1];

	for (size_t i = 0; i < n; i += 48) {	/* whole 3-byte groups but the last */
		size_t c = n - i < 48 ? n - i : 48;

		lc_sb_putn(b, t, lc_base64url_encode(in + i, c, t));
	}
}

void lc_copy_printable(char *out, size_t size, const char *in)
{
	size_t i = 0;

	for (; in && in[i] && i + 1 < size; i++)
		out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	out[i] = 0;
}

void lc_http_msg_scrub(char *msg, size_t size)
{
	/* Shapes of what the agent sends and a server might echo back: bearer
	 * tokens and JWTs (Azure, Google), Google access tokens, AWS SigV4
	 * parts and session tokens (STS tokens begin with these bytes), PEM. */
	static const char *const shapes[] = { "Bearer", "bearer", "eyJ", "ya29.", "PRIVATE KEY",
		"Signature=", "Credential=", "X-Amz-Security-Token", "x-amz-security-token",
		"IQoJb3JpZ2lu", "FwoGZXIvYXdz", "AQoDYXdz", "Authorization", "authorization",
		"client_secret", "client_assertion", NULL };

	for (int i = 0; shapes[i]; i++)
		if (strstr(msg, shapes[i])) {
			snprintf(msg, size, "(message withheld: it seems to carry a credential)");
			return;
		}
}

size_t lc_base64_decoded_len(const char *in, size_t len)
{
	size_t n;

	if (!len || len % 4)
		return 0;
	n = len / 4 * 3;
	if (in[len - 1] == '=')
		n--;
	if (in[len - 2] == '=')
		n--;
	return n;
}

int lc_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	size_t o = 0;

	if (len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;

		for (int j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad)	/* data after padding */
				return -EINVAL;
			v[j] = b64val(in[i + j]);
			if (v[j] < 0)
				return -EINVAL;
		}
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	*out_len = o;
	return 0;
}
