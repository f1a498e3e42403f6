// SPDX-License-Identifier: GPL-2.0
/*
 * etcd v3 client on the HTTP/JSON gateway (see etcd.h).  Request bodies
 * are built with lc_sb, replies read with lc_json_parse() (duplicate names
 * refused) and the strict field readers below; base64 is http.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "etcd.h"
#include "http.h"

#define ETCD_POOL	4	/* idle easy handles kept (each keeps its connections) */
#define ETCD_ERRBODY	4096	/* bytes of a non-200 body kept to read its error */

struct lc_etcd {
	char *ep[LC_ETCD_MAX_ENDPOINTS];
	size_t n;
	_Atomic size_t cur;		/* the member that answered last */
	char *ca, *cert, *key;
	uint64_t connect_ms, timeout_ms;
	size_t max_response;
	CURL *idle[ETCD_POOL];
	unsigned int nidle;
	pthread_mutex_t lock;		/* idle[] */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int readable(const char *what, const char *path, struct lc_error *err)
{
	if (access(path, R_OK))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "etcd: %s %s is not readable: %s",
			      what, path, strerror(errno));
	return 0;
}

/* https://host[:port], nothing after: paths are this client's. */
static bool endpoint_ok(const char *ep)
{
	const char *h;
	size_t n = strlen(ep);

	if (strncmp(ep, "https://", 8) || n <= 8 || n > 256)
		return false;
	h = ep + 8;
	for (const char *q = h; *q; q++)
		if (!isalnum((unsigned char)*q) && !strchr(".-:[]", *q))
			return false;
	return true;
}

int lc_etcd_new(struct lc_etcd **ep, const struct lc_etcd_opts *o, struct lc_error *err)
{
	struct lc_etcd *e;
	int r;

	*ep = NULL;
	if (!o->n_endpoints || o->n_endpoints > LC_ETCD_MAX_ENDPOINTS || !o->endpoints)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "etcd: %zu endpoints given: 1 to %d expected",
			      o->n_endpoints, LC_ETCD_MAX_ENDPOINTS);
	for (size_t i = 0; i < o->n_endpoints; i++)
		if (!o->endpoints[i] || !endpoint_ok(o->endpoints[i]))
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "etcd: endpoint %zu is not https://host[:port] (no path, no user)", i + 1);
	if (!o->ca_file || !*o->ca_file)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "etcd: a CA file is required");
	if ((r = readable("CA file", o->ca_file, err)))
		return r;
	if (!o->cert_file != !o->key_file)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "etcd: a client certificate needs its key, and a key its certificate");
	if (o->cert_file && ((r = readable("client certificate", o->cert_file, err)) ||
			     (r = readable("client key", o->key_file, err))))
		return r;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "libcurl initialisation failed");
	e = calloc(1, sizeof(*e));
	if (!e)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	pthread_mutex_init(&e->lock, NULL);
	e->n = o->n_endpoints;
	for (size_t i = 0; i < e->n; i++)
		if (!(e->ep[i] = strdup(o->endpoints[i])))
			goto nomem;
	if (!(e->ca = strdup(o->ca_file)) ||
	    (o->cert_file && (!(e->cert = strdup(o->cert_file)) || !(e->key = strdup(o->key_file)))))
		goto nomem;
	e->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : LC_ETCD_DEFAULT_CONNECT_MS;
	e->timeout_ms = o->timeout_ms ? o->timeout_ms : LC_ETCD_DEFAULT_TIMEOUT_MS;
	e->max_response = o->max_response ? o->max_response : LC_ETCD_DEFAULT_MAX_RESPONSE;
	*ep = e;
	return 0;
nomem:
	lc_etcd_free(e);
	return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
}

void lc_etcd_free(struct lc_etcd *e)
{
	if (!e)
		return;
	for (unsigned int i = 0; i < e->nidle; i++)
		curl_easy_cleanup(e->idle[i]);
	for (size_t i = 0; i < e->n; i++)
		free(e->ep[i]);
	free(e->ca);
	free(e->cert);
	free(e->key);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

size_t lc_etcd_current(const struct lc_etcd *e)
{
	return atomic_load(&e->cur);
}

static CURL *get_handle(struct lc_etcd *e)
{
	CURL *c = NULL;

	pthread_mutex_lock(&e->lock);
	if (e->nidle)
		c = e->idle[--e->nidle];
	pthread_mutex_unlock(&e->lock);
	return c ? c : curl_easy_init();
}

static void put_handle(struct lc_etcd *e, CURL *c)
{
	pthread_mutex_lock(&e->lock);
	if (e->nidle < ETCD_POOL) {
		e->idle[e->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (c)
		curl_easy_cleanup(c);
}

/* The options every request shares: TLS with the configured CA only,
 * client certificate, HTTP/1.1, no redirect, no proxy. */
static void setup(struct lc_etcd *e, CURL *c, const char *url, struct curl_slist *hl,
		  char *errbuf, const char *body, size_t body_len)
{
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_CAINFO, e->ca);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);	/* the cluster's CA only, not the system's */
	if (e->cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->key);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "lakecrypt-agent");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
}

struct reply {
	char *p;
	size_t len, max;
	bool too_big, nomem;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct reply *r = arg;
	size_t n = size * nmemb;

	if (n > r->max - r->len) {
		r->too_big = true;
		return 0;
	}
	if (!r->p && !(r->p = malloc(r->max + 1))) {	/* one buffer of the bound */
		r->nomem = true;
		return 0;
	}
	memcpy(r->p + r->len, data, n);
	r->len += n;
	r->p[r->len] = 0;
	return n;
}

static int refused_error(const char *host, const char *path, const char *detail, struct lc_error *err)
{
	return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
		      "etcd: %s %s: the member refused our client certificate (not from its --trusted-ca-file CA, or none given): %s",
		      host, path, detail);
}

/* A curl failure: its class, and whether the request may have reached
 * the member: a TLS handshake completed, or request bytes written (a
 * connection kept from an earlier request has no handshake of its own). */
static int curl_fail(CURL *c, CURLcode rc, const char *host, const char *path, const char *detail,
		     bool too_big, bool nomem, size_t max, bool *sent, struct lc_error *err)
{
	curl_off_t app = 0;
	long reqsize = 0;
	int code = -EIO;
	const char *what = "transfer failed";

	curl_easy_getinfo(c, CURLINFO_APPCONNECT_TIME_T, &app);
	curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &reqsize);
	*sent = app > 0 || reqsize > 0;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		code = -ETIMEDOUT;
		what = *sent ? "timed out (outcome unknown)" : "timed out connecting";
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		code = -EHOSTUNREACH;
		what = "cannot resolve the host name";
		break;
	case CURLE_COULDNT_CONNECT:
		code = -ECONNREFUSED;
		what = "cannot connect";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
		code = -EPROTO;
		what = "TLS handshake failed (server certificate not from the configured CA, not naming the host, or our client certificate refused)";
		break;
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "etcd: %s: the client certificate, key or CA file cannot be used: %s", host, detail);
	case CURLE_WRITE_ERROR:
		if (nomem)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		if (too_big)
			return lc_err(err, -EMSGSIZE, LC_ERRC_TRANSIENT,
				      "etcd: %s %s: reply larger than %zu bytes", host, path, max);
		break;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		code = -EPIPE;
		what = "connection broken";
		break;
	case CURLE_OUT_OF_MEMORY:
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	default:
		break;
	}
	/* With TLS 1.3 the member checks our certificate after our side of
	 * the handshake is done: its refusal is an alert on the first read
	 * (bad certificate, certificate required, unknown CA).  The cluster
	 * does not know this client: fix the certificate or the cluster's CA. */
	if (detail && strstr(detail, "alert") &&
	    (strstr(detail, "certificate") || strstr(detail, "unknown ca")))
		return refused_error(host, path, detail, err);
	return lc_err(err, code, LC_ERRC_TRANSIENT, "etcd: %s %s: %s%s%s", host, path, what,
		      detail && *detail ? ": " : "", detail ? detail : "");
}

/*
 * A member that refuses our client certificate under TLS 1.3 does so
 * after our side of the handshake: it sends an alert and closes, and
 * when our request was already on its way the close is a reset that
 * can swallow the alert ("connection broken").  So a connection broken
 * before any answer is checked with one more handshake, TLS 1.2 only
 * and sending nothing, where the certificate is judged inside the
 * handshake and the alert arrives before a plain close.  True if that
 * handshake was refused with a certificate alert.
 */
static bool cert_refused(struct lc_etcd *e, const char *url, char *detail, size_t size)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (!c)
		return false;
	setup(e, c, url, NULL, errbuf, NULL, 0);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->connect_ms);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK && strstr(errbuf, "alert") &&
	    (strstr(errbuf, "certificate") || strstr(errbuf, "unknown ca"))) {
		curl_easy_cleanup(c);
		snprintf(detail, size, "%s", errbuf);
		return true;
	}
	curl_easy_cleanup(c);
	return false;
}

/* gRPC status codes (grpc/codes) -> errno and class.  @msg: etcd's text. */
static int grpc_error(long code, const char *msg, const char *host, const char *path, bool *retry,
		      struct lc_error *err)
{
	char m[200];
	int e = -EIO;
	enum lc_err_class cls = LC_ERRC_TRANSIENT;

	lc_copy_printable(m, sizeof(m), msg ? msg : "");
	*retry = false;
	switch (code) {
	case 3:		/* InvalidArgument */
	case 9:		/* FailedPrecondition */
	case 11:	/* OutOfRange */
		cls = LC_ERRC_INVALID;
		e = strstr(m, "has been compacted") ? -ERANGE : -EINVAL;
		break;
	case 5:		/* NotFound (a lease) */
		cls = LC_ERRC_INVALID;
		e = -ENOENT;
		break;
	case 7:		/* PermissionDenied */
	case 16:	/* Unauthenticated */
		cls = LC_ERRC_MISCONFIG;
		e = -EACCES;
		break;
	case 12:	/* Unimplemented: not an etcd v3 gateway */
		cls = LC_ERRC_MISCONFIG;
		e = -EPROTONOSUPPORT;
		break;
	case 14:	/* Unavailable: no leader, request timed out, stopping */
		*retry = true;
		e = -EAGAIN;
		break;
	default:	/* Canceled, Unknown, DeadlineExceeded, ResourceExhausted, Aborted, Internal, ... */
		e = -EIO;
		break;
	}
	return lc_err(err, e, cls, "etcd: %s %s: gRPC code %ld: %s", host, path, code, m);
}

/* An HTTP answer other than 200: grpc-gateway's {"error","code","message"}. */
static int http_error(long status, const char *body, size_t len, const char *host, const char *path,
		      bool *retry, struct lc_error *err)
{
	json_object *o = body ? lc_json_parse(body, len) : NULL;
	json_object *v;
	int r;

	if (o && json_object_object_get_ex(o, "code", &v) && json_object_is_type(v, json_type_int)) {
		int64_t code = json_object_get_int64(v);

		r = grpc_error(code >= 0 && code <= 16 ? (long)code : 2, lc_json_str(o, "message"), host, path,
			       retry, err);
		json_object_put(o);
		return r;
	}
	json_object_put(o);
	*retry = status >= 500 || status == 429;
	return lc_err(err, -EIO, *retry ? LC_ERRC_TRANSIENT : LC_ERRC_INVALID,
		      "etcd: %s %s: HTTP %ld without a gateway error body (not an etcd v3 gateway?)",
		      host, path, status);
}

enum req_kind { REQ_READ, REQ_WRITE };

/*
 * POST @body to @path on the members in turn (see failover in etcd.h).
 * 0 and *@out the reply's JSON object (for a stream path, the first
 * message's "result"); else negative errno with @err.
 */
static int request(struct lc_etcd *e, const char *path, const struct lc_sb *body, enum req_kind kind,
		   bool stream, json_object **out, struct lc_error *err)
{
	struct lc_error last = { 0 };
	size_t start = atomic_load(&e->cur);
	int r = -EIO;

	*out = NULL;
	if (body->oom)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	for (size_t i = 0; i < e->n; i++) {
		size_t idx = (start + i) % e->n;
		char url[320], host[256], errbuf[CURL_ERROR_SIZE] = "";
		struct reply rep = { .max = e->max_response };
		struct curl_slist *hl = NULL, *t;
		bool sent = false, retry = false;
		long status = 0;
		CURLcode rc;
		CURL *c;

		snprintf(url, sizeof(url), "%s%s", e->ep[idx], path);
		lc_url_host(url, host, sizeof(host));
		c = get_handle(e);
		t = curl_slist_append(NULL, "Content-Type: application/json");
		if (t)
			hl = curl_slist_append(t, "Expect:");
		if (!c || !hl) {
			curl_slist_free_all(hl ? hl : t);
			if (c)
				curl_easy_cleanup(c);
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		}
		setup(e, c, url, hl, errbuf, body->p, body->len);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &rep);
		rc = curl_easy_perform(c);
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		else
			r = curl_fail(c, rc, host, path, errbuf, rep.too_big, rep.nomem, rep.max, &sent, &last);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
		put_handle(e, c);
		curl_slist_free_all(hl);

		if (rc != CURLE_OK) {
			char d[CURL_ERROR_SIZE];

			if (r == -EPIPE && !rep.len && cert_refused(e, url, d, sizeof(d)))
				r = refused_error(host, path, d, &last);
			free(rep.p);
			if (last.cls != LC_ERRC_TRANSIENT || (kind == REQ_WRITE && sent && r == -ETIMEDOUT) ||
			    (kind == REQ_WRITE && sent && r == -EPIPE))
				break;	/* not another member's business, or maybe applied */
			continue;
		}
		if (status != 200) {
			r = http_error(status, rep.p, rep.len, host, path, &retry, &last);
			free(rep.p);
			/* A write refused as Unavailable was not applied only if
			 * the member had no leader to propose it to. */
			if (retry && (kind == REQ_READ || strstr(last.msg, "no leader")))
				continue;
			break;
		}
		{
			size_t len = rep.len;
			json_object *o, *res;

			while (len && (rep.p[len - 1] == '\n' || rep.p[len - 1] == '\r'))
				len--;
			/* A stream path (lease keepalive) answers one line here. */
			if (stream && memchr(rep.p ? rep.p : "", '\n', len))
				o = NULL;
			else
				o = rep.p ? lc_json_parse(rep.p, len) : NULL;
			free(rep.p);
			if (o && stream) {
				if (json_object_object_get_ex(o, "result", &res) &&
				    json_object_is_type(res, json_type_object)) {
					json_object_get(res);
					json_object_put(o);
					o = res;
				} else {
					json_object *ev, *gc;
					const char *m = NULL;
					long code = 2;

					/* grpc-gateway v1's stream error: {"error":{"grpc_code":N,"message":...}} */
					if (json_object_object_get_ex(o, "error", &ev) &&
					    json_object_is_type(ev, json_type_object)) {
						m = lc_json_str(ev, "message");
						if (json_object_object_get_ex(ev, "grpc_code", &gc) &&
						    json_object_is_type(gc, json_type_int) &&
						    json_object_get_int64(gc) >= 0 && json_object_get_int64(gc) <= 16)
							code = (long)json_object_get_int64(gc);
					}
					r = grpc_error(code, m ? m : "a stream answer without result", host, path,
						       &retry, &last);
					json_object_put(o);
					if (kind == REQ_READ)
						continue;
					break;
				}
			}
			if (!o) {
				r = lc_err(&last, -EBADMSG, LC_ERRC_TRANSIENT,
					   "etcd: %s %s: the reply is not one well-formed JSON object (duplicate names refused)",
					   host, path);
				if (kind == REQ_READ)
					continue;
				break;
			}
			atomic_store(&e->cur, idx);
			*out = o;
			return 0;
		}
	}
	if (err)
		*err = last;
	return r;
}

/* ---- strict JSON readers -------------------------------------------------- */

static int parse_i64(const char *s, int64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (!n || n > 19)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > INT64_MAX)
		return -EBADMSG;
	*out = (int64_t)v;
	return 0;
}

int lc_etcd_json_int64(json_object *o, const char *name, int64_t *out)
{
	json_object *v;

	*out = 0;
	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EBADMSG;
	return parse_i64(json_object_get_string(v), out);
}

static int get_bool(json_object *o, const char *name, bool *out)
{
	json_object *v;

	*out = false;
	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return -EBADMSG;
	*out = json_object_get_boolean(v);
	return 0;
}

/* An optional member that must be an object (or absent: NULL). */
static int json_obj(json_object *o, const char *name, json_object **out)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return -EBADMSG;
	*out = v;
	return 0;
}

/* A bytes field: base64, at most @max bytes decoded; absent: empty. */
static int json_bytes(json_object *o, const char *name, size_t max, uint8_t **out, size_t *len)
{
	json_object *v;
	const char *s = "";
	size_t n = 0, dl;

	*out = NULL;
	*len = 0;
	if (json_object_object_get_ex(o, name, &v)) {
		if (!json_object_is_type(v, json_type_string))
			return -EBADMSG;
		s = json_object_get_string(v);
		n = (size_t)json_object_get_string_len(v);
	}
	if (n % 4 || n / 4 * 3 > max + 2)
		return n % 4 ? -EBADMSG : -E2BIG;
	dl = lc_base64_decoded_len(s, n);
	if (dl > max)
		return -E2BIG;
	*out = malloc(dl + 1);
	if (!*out)
		return -ENOMEM;
	if (n && (lc_base64_decode(s, n, *out, len) || *len != dl)) {
		free(*out);
		*out = NULL;
		*len = 0;
		return -EBADMSG;
	}
	(*out)[*len] = 0;
	return 0;
}

/* ResponseHeader.revision (absent header: 0). */
static int header_revision(json_object *o, int64_t *rev)
{
	json_object *h;

	*rev = 0;
	if (json_obj(o, "header", &h))
		return -EBADMSG;
	return h ? lc_etcd_json_int64(h, "revision", rev) : 0;
}

void lc_etcd_kv_free(struct lc_etcd_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

static int parse_kv(json_object *o, struct lc_etcd_kv *kv)
{
	int r;

	memset(kv, 0, sizeof(*kv));
	if (!json_object_is_type(o, json_type_object))
		return -EBADMSG;
	if ((r = json_bytes(o, "key", LC_ETCD_MAX_KEY, &kv->key, &kv->key_len)) ||
	    (r = json_bytes(o, "value", LC_ETCD_MAX_VALUE, &kv->value, &kv->value_len)) ||
	    (r = lc_etcd_json_int64(o, "create_revision", &kv->create_revision)) ||
	    (r = lc_etcd_json_int64(o, "mod_revision", &kv->mod_revision)) ||
	    (r = lc_etcd_json_int64(o, "version", &kv->version)) ||
	    (r = lc_etcd_json_int64(o, "lease", &kv->lease))) {
		lc_etcd_kv_free(kv);
		return r;
	}
	/* etcd has no empty key; revisions start at 1 and a key's changes
	 * come after its creation. */
	if (!kv->key_len || kv->mod_revision < 1 || kv->create_revision > kv->mod_revision) {
		lc_etcd_kv_free(kv);
		return -EBADMSG;
	}
	return 0;
}

static int bad_reply(struct lc_etcd *e, const char *path, int r, struct lc_error *err)
{
	char host[256];

	lc_url_host(e->ep[atomic_load(&e->cur)], host, sizeof(host));
	if (r == -ENOMEM)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	return lc_err(err, r == -E2BIG ? -E2BIG : -EBADMSG, LC_ERRC_TRANSIENT,
		      "etcd: %s %s: malformed reply (a field of the wrong type, out of range or too large)",
		      host, path);
}

/* ---- request bodies --------------------------------------------------------- */

static void put_b64(struct lc_sb *b, const void *p, size_t n)
{
	const uint8_t *in = p;
	char t[4 * 48 / 3 + 1];

	for (size_t i = 0; i < n; i += 48) {	/* whole 3-byte groups but the last */
		size_t c = n - i < 48 ? n - i : 48;

		lc_sb_putn(b, t, lc_base64_encode(in + i, c, t));
	}
}

static void put_field_b64(struct lc_sb *b, const char *name, const void *p, size_t n)
{
	lc_sb_puts(b, "\"");
	lc_sb_puts(b, name);
	lc_sb_puts(b, "\":\"");
	put_b64(b, p, n);
	lc_sb_puts(b, "\"");
}

static void put_field_i64(struct lc_sb *b, const char *name, int64_t v)
{
	char t[64];

	snprintf(t, sizeof(t), "\"%s\":\"%" PRId64 "\"", name, v);
	lc_sb_puts(b, t);
}

size_t lc_etcd_prefix_end(const uint8_t *key, size_t n, uint8_t *out)
{
	while (n && key[n - 1] == 0xff)
		n--;
	if (!n) {
		out[0] = 0;
		return 1;
	}
	memcpy(out, key, n);
	out[n - 1]++;
	return n;
}

static void put_range_end(struct lc_sb *b, const void *key, size_t n)
{
	uint8_t end[LC_ETCD_MAX_KEY + 1];

	lc_sb_puts(b, ",");
	put_field_b64(b, "range_end", end, lc_etcd_prefix_end(key, n, end));
}

static int check_key(const void *key, size_t n, struct lc_error *err)
{
	if (!key || !n || n > LC_ETCD_MAX_KEY)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: a key of %zu bytes: 1 to %d expected",
			      key ? n : 0, LC_ETCD_MAX_KEY);
	return 0;
}

/* ---- KV ---------------------------------------------------------------------- */

void lc_etcd_range_result_free(struct lc_etcd_range_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		lc_etcd_kv_free(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

/* Byte order of keys, as etcd sorts them (a prefix first). */
static int keycmp(const struct lc_etcd_kv *a, const struct lc_etcd_kv *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);

	if (c)
		return c;
	return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static int parse_range(json_object *o, size_t limit, struct lc_etcd_range_result *res)
{
	json_object *kvs = NULL;
	size_t n = 0;
	int r;

	if ((r = header_revision(o, &res->revision)) || (r = lc_etcd_json_int64(o, "count", &res->count)) ||
	    (r = get_bool(o, "more", &res->more)))
		return r;
	if (json_object_object_get_ex(o, "kvs", &kvs)) {
		if (!json_object_is_type(kvs, json_type_array))
			return -EBADMSG;
		n = json_object_array_length(kvs);
		if (n > limit)
			return -E2BIG;
	}
	if (res->revision < 1 || (size_t)res->count < n)
		return -EBADMSG;
	if (n && !(res->kvs = calloc(n, sizeof(*res->kvs))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((r = parse_kv(json_object_array_get_idx(kvs, i), &res->kvs[i])))
			return r;
		res->n++;
		/* in key order, each key once, none newer than the read */
		if (res->kvs[i].mod_revision > res->revision ||
		    (i && keycmp(&res->kvs[i - 1], &res->kvs[i]) >= 0))
			return -EBADMSG;
	}
	return 0;
}

/* One RangeRequest from @key to @end (@end_len 0: @key alone). */
static int range_req(struct lc_etcd *e, const void *key, size_t key_len, const void *end,
		     size_t end_len, int64_t revision, size_t limit,
		     struct lc_etcd_range_result *res, struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o;
	int r;

	memset(res, 0, sizeof(*res));
	lc_sb_puts(&b, "{");
	put_field_b64(&b, "key", key, key_len);
	if (end_len) {
		lc_sb_puts(&b, ",");
		put_field_b64(&b, "range_end", end, end_len);
	}
	if (revision) {
		lc_sb_puts(&b, ",");
		put_field_i64(&b, "revision", revision);
	}
	lc_sb_puts(&b, ",");
	put_field_i64(&b, "limit", (int64_t)limit);
	lc_sb_puts(&b, "}");
	r = request(e, "/v3/kv/range", &b, REQ_READ, false, &o, err);
	free(b.p);
	if (r)
		return r;
	r = parse_range(o, limit, res);
	json_object_put(o);
	if (r) {
		lc_etcd_range_result_free(res);
		return bad_reply(e, "/v3/kv/range", r, err);
	}
	return 0;
}

int lc_etcd_range(struct lc_etcd *e, const void *key, size_t key_len, bool prefix, int64_t revision,
		  size_t limit, struct lc_etcd_range_result *res, struct lc_error *err)
{
	uint8_t end[LC_ETCD_MAX_KEY + 1];
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = check_key(key, key_len, err)))
		return r;
	if (revision < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: negative revision");
	if (!limit || limit > LC_ETCD_MAX_KVS)
		limit = LC_ETCD_MAX_KVS;
	return range_req(e, key, key_len, end, prefix ? lc_etcd_prefix_end(key, key_len, end) : 0,
			 revision, limit, res, err);
}

int lc_etcd_range_prefix_all(struct lc_etcd *e, const void *prefix, size_t prefix_len, size_t page,
			     size_t max_kvs, struct lc_etcd_range_result *res, struct lc_error *err)
{
	uint8_t end[LC_ETCD_MAX_KEY + 1], from[LC_ETCD_MAX_KEY + 1];
	size_t end_len, from_len = prefix_len, bytes = 0;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = check_key(prefix, prefix_len, err)))
		return r;
	if (!page || page > LC_ETCD_MAX_KVS)
		page = LC_ETCD_MAX_KVS;
	if (!max_kvs || max_kvs > LC_ETCD_MAX_RANGE_ALL)
		max_kvs = LC_ETCD_MAX_RANGE_ALL;
	end_len = lc_etcd_prefix_end(prefix, prefix_len, end);
	memcpy(from, prefix, prefix_len);
	for (;;) {
		struct lc_etcd_range_result pg;
		struct lc_etcd_kv *t;

		/* every page at the first page's revision: one snapshot */
		r = range_req(e, from, from_len, end, end_len, res->revision, page, &pg, err);
		if (r)
			break;
		if ((res->revision && pg.revision != res->revision) ||
		    (res->n && pg.n && keycmp(&res->kvs[res->n - 1], &pg.kvs[0]) >= 0)) {
			lc_etcd_range_result_free(&pg);
			r = bad_reply(e, "/v3/kv/range", -EBADMSG, err);
			break;
		}
		if (pg.n > max_kvs - res->n) {
			lc_etcd_range_result_free(&pg);
			r = lc_err(err, -E2BIG, LC_ERRC_MISCONFIG,
				   "etcd: more than %zu keys under the prefix", max_kvs);
			break;
		}
		for (size_t i = 0; i < pg.n; i++)
			bytes += pg.kvs[i].key_len + pg.kvs[i].value_len;
		if (bytes > LC_ETCD_MAX_RANGE_ALL_BYTES) {
			lc_etcd_range_result_free(&pg);
			r = lc_err(err, -E2BIG, LC_ERRC_MISCONFIG,
				   "etcd: more than %d MiB under the prefix",
				   LC_ETCD_MAX_RANGE_ALL_BYTES >> 20);
			break;
		}
		t = pg.n ? realloc(res->kvs, (res->n + pg.n) * sizeof(*t)) : res->kvs;
		if (pg.n && !t) {
			lc_etcd_range_result_free(&pg);
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "etcd: out of memory");
			break;
		}
		res->kvs = t;
		if (pg.n)
			memcpy(res->kvs + res->n, pg.kvs, pg.n * sizeof(*t));
		res->n += pg.n;
		res->revision = pg.revision;
		free(pg.kvs);	/* the kvs' contents moved */
		if (!pg.more)
			break;
		/* a page that says "more" and is empty, or a key that cannot
		 * be followed: not etcd */
		if (!pg.n || res->kvs[res->n - 1].key_len >= LC_ETCD_MAX_KEY) {
			r = bad_reply(e, "/v3/kv/range", -EBADMSG, err);
			break;
		}
		/* the next page starts right after the last key: key + "\0" */
		from_len = res->kvs[res->n - 1].key_len;
		memcpy(from, res->kvs[res->n - 1].key, from_len);
		from[from_len++] = 0;
	}
	if (r) {
		lc_etcd_range_result_free(res);
		return r;
	}
	res->count = (int64_t)res->n;
	res->more = false;
	return 0;
}

/* A write's reply: header.revision >= 1.  Puts @o. */
static int write_reply(struct lc_etcd *e, const char *path, json_object *o, int64_t *revision,
		       struct lc_error *err)
{
	int64_t rev;
	int r = header_revision(o, &rev);

	json_object_put(o);
	if (r || rev < 1)
		return bad_reply(e, path, -EBADMSG, err);
	if (revision)
		*revision = rev;
	return 0;
}

static int check_value(size_t n, struct lc_error *err)
{
	if (n > LC_ETCD_MAX_VALUE)
		return lc_err(err, -E2BIG, LC_ERRC_INVALID, "etcd: a value of %zu bytes: at most %d", n,
			      LC_ETCD_MAX_VALUE);
	return 0;
}

int lc_etcd_put(struct lc_etcd *e, const void *key, size_t key_len, const void *value, size_t value_len,
		int64_t lease, int64_t *revision, struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o;
	int r;

	if ((r = check_key(key, key_len, err)) || (r = check_value(value_len, err)))
		return r;
	lc_sb_puts(&b, "{");
	put_field_b64(&b, "key", key, key_len);
	lc_sb_puts(&b, ",");
	put_field_b64(&b, "value", value, value_len);
	if (lease) {
		lc_sb_puts(&b, ",");
		put_field_i64(&b, "lease", lease);
	}
	lc_sb_puts(&b, "}");
	r = request(e, "/v3/kv/put", &b, REQ_WRITE, false, &o, err);
	free(b.p);
	if (r)
		return r;
	return write_reply(e, "/v3/kv/put", o, revision, err);
}

int lc_etcd_delete(struct lc_etcd *e, const void *key, size_t key_len, bool prefix, int64_t *deleted,
		   int64_t *revision, struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o;
	int64_t d;
	int r;

	if ((r = check_key(key, key_len, err)))
		return r;
	lc_sb_puts(&b, "{");
	put_field_b64(&b, "key", key, key_len);
	if (prefix)
		put_range_end(&b, key, key_len);
	lc_sb_puts(&b, "}");
	r = request(e, "/v3/kv/deleterange", &b, REQ_WRITE, false, &o, err);
	free(b.p);
	if (r)
		return r;
	if (lc_etcd_json_int64(o, "deleted", &d)) {
		json_object_put(o);
		return bad_reply(e, "/v3/kv/deleterange", -EBADMSG, err);
	}
	if (deleted)
		*deleted = d;
	return write_reply(e, "/v3/kv/deleterange", o, revision, err);
}

static const char *const cmp_target[] = { "VERSION", "CREATE", "MOD" };
static const char *const cmp_result[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
static const char *const cmp_field[] = { "version", "create_revision", "mod_revision" };

static int put_ops(struct lc_sb *b, const char *name, const struct lc_etcd_op *ops, size_t n,
		   struct lc_error *err)
{
	int r;

	lc_sb_puts(b, ",\"");
	lc_sb_puts(b, name);
	lc_sb_puts(b, "\":[");
	for (size_t i = 0; i < n; i++) {
		if ((r = check_key(ops[i].key, ops[i].key_len, err)))
			return r;
		lc_sb_puts(b, i ? "," : "");
		if (ops[i].type == LC_ETCD_OP_PUT) {
			if ((r = check_value(ops[i].value_len, err)))
				return r;
			lc_sb_puts(b, "{\"request_put\":{");
			put_field_b64(b, "key", ops[i].key, ops[i].key_len);
			lc_sb_puts(b, ",");
			put_field_b64(b, "value", ops[i].value, ops[i].value_len);
			if (ops[i].lease) {
				lc_sb_puts(b, ",");
				put_field_i64(b, "lease", ops[i].lease);
			}
		} else if (ops[i].type == LC_ETCD_OP_DELETE) {
			lc_sb_puts(b, "{\"request_delete_range\":{");
			put_field_b64(b, "key", ops[i].key, ops[i].key_len);
			if (ops[i].prefix)
				put_range_end(b, ops[i].key, ops[i].key_len);
		} else {
			return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: unknown transaction operation");
		}
		lc_sb_puts(b, "}}");
	}
	lc_sb_puts(b, "]");
	return 0;
}

int lc_etcd_txn(struct lc_etcd *e, const struct lc_etcd_cmp *cmp, size_t ncmp,
		const struct lc_etcd_op *success, size_t nsuccess,
		const struct lc_etcd_op *failure, size_t nfailure,
		bool *succeeded, int64_t *revision, struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o, *resp;
	int r;

	*succeeded = false;
	if (ncmp > LC_ETCD_MAX_TXN_OPS || nsuccess > LC_ETCD_MAX_TXN_OPS || nfailure > LC_ETCD_MAX_TXN_OPS)
		return lc_err(err, -E2BIG, LC_ERRC_INVALID, "etcd: more than %d compares or operations",
			      LC_ETCD_MAX_TXN_OPS);
	lc_sb_puts(&b, "{\"compare\":[");
	for (size_t i = 0; i < ncmp; i++) {
		if ((r = check_key(cmp[i].key, cmp[i].key_len, err)))
			goto out;
		if ((unsigned int)cmp[i].target > LC_ETCD_CMP_MOD || (unsigned int)cmp[i].result > LC_ETCD_NOT_EQUAL ||
		    cmp[i].value < 0) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: bad compare");
			goto out;
		}
		lc_sb_puts(&b, i ? ",{" : "{");
		put_field_b64(&b, "key", cmp[i].key, cmp[i].key_len);
		if (cmp[i].prefix)
			put_range_end(&b, cmp[i].key, cmp[i].key_len);
		lc_sb_puts(&b, ",\"target\":\"");
		lc_sb_puts(&b, cmp_target[cmp[i].target]);
		lc_sb_puts(&b, "\",\"result\":\"");
		lc_sb_puts(&b, cmp_result[cmp[i].result]);
		lc_sb_puts(&b, "\",");
		put_field_i64(&b, cmp_field[cmp[i].target], cmp[i].value);
		lc_sb_puts(&b, "}");
	}
	lc_sb_puts(&b, "]");
	if ((r = put_ops(&b, "success", success, nsuccess, err)) ||
	    (r = put_ops(&b, "failure", failure, nfailure, err)))
		goto out;
	lc_sb_puts(&b, "}");
	r = request(e, "/v3/kv/txn", &b, REQ_WRITE, false, &o, err);
	if (r)
		goto out;
	/* responses: one per op of the branch that ran */
	if (get_bool(o, "succeeded", succeeded) ||
	    (json_object_object_get_ex(o, "responses", &resp) &&
	     (!json_object_is_type(resp, json_type_array) ||
	      json_object_array_length(resp) != (*succeeded ? nsuccess : nfailure)))) {
		json_object_put(o);
		*succeeded = false;
		r = bad_reply(e, "/v3/kv/txn", -EBADMSG, err);
		goto out;
	}
	r = write_reply(e, "/v3/kv/txn", o, revision, err);
	if (r)
		*succeeded = false;
out:
	free(b.p);
	return r;
}

int lc_etcd_cas(struct lc_etcd *e, const void *key, size_t key_len, int64_t expect_mod,
		const void *value, size_t value_len, int64_t lease, int64_t *revision,
		struct lc_error *err)
{
	struct lc_etcd_cmp c = { key, key_len, LC_ETCD_CMP_MOD, LC_ETCD_EQUAL, expect_mod, false };
	struct lc_etcd_op op = { .type = LC_ETCD_OP_PUT, .key = key, .key_len = key_len,
				 .value = value, .value_len = value_len, .lease = lease };
	bool ok;
	int r;

	if (expect_mod < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: negative mod_revision");
	r = lc_etcd_txn(e, &c, 1, &op, 1, NULL, 0, &ok, revision, err);
	if (r)
		return r;
	if (!ok)
		return lc_err(err, -ECANCELED, LC_ERRC_NONE,
			      "etcd: the key changed since mod_revision %" PRId64 ": re-read", expect_mod);
	return 0;
}

/* ---- leases ----------------------------------------------------------------- */

int lc_etcd_lease_grant(struct lc_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted, struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o;
	int64_t i, t;
	int r;

	if (ttl_s < 1 || ttl_s > 9000000000LL)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: lease TTL %" PRId64 " s: 1 to 9e9 expected", ttl_s);
	lc_sb_puts(&b, "{");
	put_field_i64(&b, "TTL", ttl_s);
	lc_sb_puts(&b, "}");
	r = request(e, "/v3/lease/grant", &b, REQ_WRITE, false, &o, err);
	free(b.p);
	if (r)
		return r;
	if (lc_etcd_json_int64(o, "ID", &i) || lc_etcd_json_int64(o, "TTL", &t) || i < 1 || t < 1 ||
	    lc_json_str(o, "error")) {
		json_object_put(o);
		return bad_reply(e, "/v3/lease/grant", -EBADMSG, err);
	}
	json_object_put(o);
	*id = i;
	if (granted)
		*granted = t;
	return 0;
}

int lc_etcd_lease_keepalive(struct lc_etcd *e, int64_t id, int64_t *ttl_s, struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o;
	int64_t i, t;
	int r;

	if (id < 1)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: lease ID %" PRId64, id);
	lc_sb_puts(&b, "{");
	put_field_i64(&b, "ID", id);
	lc_sb_puts(&b, "}");
	r = request(e, "/v3/lease/keepalive", &b, REQ_READ, true, &o, err);
	free(b.p);
	if (r)
		return r;
	if (lc_etcd_json_int64(o, "ID", &i) || lc_etcd_json_int64(o, "TTL", &t) || i != id) {
		json_object_put(o);
		return bad_reply(e, "/v3/lease/keepalive", -EBADMSG, err);
	}
	json_object_put(o);
	if (!t)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID, "etcd: lease %" PRIx64 " has expired or was revoked",
			      (uint64_t)id);
	if (ttl_s)
		*ttl_s = t;
	return 0;
}

/* A write whose request is one int64 field, {"@field": @v}, and whose reply
 * is a header alone (lease revoke, compaction). */
static int write_one_i64(struct lc_etcd *e, const char *path, const char *field, int64_t v,
			 struct lc_error *err)
{
	struct lc_sb b = { 0 };
	json_object *o;
	int r;

	lc_sb_puts(&b, "{");
	put_field_i64(&b, field, v);
	lc_sb_puts(&b, "}");
	r = request(e, path, &b, REQ_WRITE, false, &o, err);
	free(b.p);
	if (r)
		return r;
	return write_reply(e, path, o, NULL, err);
}

int lc_etcd_lease_revoke(struct lc_etcd *e, int64_t id, struct lc_error *err)
{
	if (id < 1)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: lease ID %" PRId64, id);
	return write_one_i64(e, "/v3/lease/revoke", "ID", id, err);
}

int lc_etcd_compact(struct lc_etcd *e, int64_t revision, struct lc_error *err)
{
	if (revision < 1)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: compaction revision %" PRId64, revision);
	return write_one_i64(e, "/v3/kv/compaction", "revision", revision, err);
}

/* ---- watch stream parser ------------------------------------------------------ */

void lc_etcd_watch_parser_init(struct lc_etcd_watch_parser *p, int64_t start_revision, size_t max_msg,
			       lc_etcd_watch_cb cb, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->start_revision = start_revision > 0 ? start_revision : 0;
	p->last_revision = p->start_revision ? p->start_revision - 1 : 0;
	p->max_msg = max_msg ? max_msg : LC_ETCD_DEFAULT_MAX_RESPONSE;
	p->cb = cb;
	p->arg = arg;
}

void lc_etcd_watch_parser_free(struct lc_etcd_watch_parser *p)
{
	free(p->line);
	p->line = NULL;
	p->len = p->cap = 0;
}

int64_t lc_etcd_watch_next_revision(const struct lc_etcd_watch_parser *p)
{
	if (!p->start_revision && !p->created)
		return 0;	/* nothing known yet: "from now" again */
	return p->last_revision + 1;
}

static int wbad(struct lc_etcd_watch_parser *p, int r, const char *what, struct lc_error *err)
{
	p->done = true;
	if (r == -ENOMEM)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	return lc_err(err, r, LC_ERRC_TRANSIENT, "etcd watch: %s", what);
}

static void free_events(struct lc_etcd_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lc_etcd_kv_free(&ev[i].kv);
	free(ev);
}

/* WatchResponse.watch_id: int64, -1 for a watch that could not be made. */
static int watch_id(json_object *o, int64_t *id)
{
	json_object *v;

	if (json_object_object_get_ex(o, "watch_id", &v) && json_object_is_type(v, json_type_string) &&
	    !strcmp(json_object_get_string(v), "-1")) {
		*id = -1;
		return 0;
	}
	return lc_etcd_json_int64(o, "watch_id", id);
}

/* One line: a whole JSON object. */
static int watch_line(struct lc_etcd_watch_parser *p, const char *line, size_t len, struct lc_error *err)
{
	struct lc_etcd_watch_msg m = { 0 };
	struct lc_etcd_event *ev = NULL;
	json_object *o, *res, *v, *evs = NULL;
	bool created, canceled, fragment;
	size_t n = 0;
	int r = 0;

	o = lc_json_parse(line, len);
	if (!o)
		return wbad(p, -EBADMSG, "a message is not one well-formed JSON object (duplicate names refused)", err);
	if (json_object_object_get_ex(o, "error", &v)) {
		/* grpc-gateway v1 stream error: {"error":{"grpc_code":N,"message":...}} */
		const char *msg = json_object_is_type(v, json_type_object) ? lc_json_str(v, "message") :
				  json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		json_object *c = NULL;
		long code = 2;
		bool retry;

		if (json_object_is_type(v, json_type_object) && json_object_object_get_ex(v, "grpc_code", &c) &&
		    json_object_is_type(c, json_type_int) && json_object_get_int64(c) >= 0 &&
		    json_object_get_int64(c) <= 16)
			code = (long)json_object_get_int64(c);
		p->done = true;
		r = grpc_error(code, msg ? msg : "(no message)", "stream", "/v3/watch", &retry, err);
		json_object_put(o);
		return r;
	}
	if (json_obj(o, "result", &res) || !res) {
		json_object_put(o);
		return wbad(p, -EBADMSG, "a message without a result object", err);
	}
	if (header_revision(res, &m.revision) || watch_id(res, &m.watch_id) ||
	    lc_etcd_json_int64(res, "compact_revision", &m.compact_revision) ||
	    get_bool(res, "created", &created) || get_bool(res, "canceled", &canceled) ||
	    get_bool(res, "fragment", &fragment) ||
	    (json_object_object_get_ex(res, "cancel_reason", &v) && !json_object_is_type(v, json_type_string)) ||
	    (json_object_object_get_ex(res, "events", &evs) && !json_object_is_type(evs, json_type_array))) {
		json_object_put(o);
		return wbad(p, -EBADMSG, "a field of the wrong type or out of range", err);
	}
	n = evs ? json_object_array_length(evs) : 0;
	if (n > LC_ETCD_MAX_EVENTS) {
		json_object_put(o);
		return wbad(p, -E2BIG, "too many events in one message", err);
	}
	/* fragment is never asked for; created comes once, first. */
	/* etcd answers a watch it cannot create (permission denied, a bad
	 * range) with created and canceled together, watch_id -1. */
	if (fragment || (created && (n || p->created)) || (canceled && n) || (!created && !p->created) ||
	    m.watch_id < -1) {
		json_object_put(o);
		return wbad(p, -EBADMSG, "messages out of protocol (created first and once; events, created and canceled apart; no fragments)",
			    err);
	}
	if (n && !(ev = calloc(n, sizeof(*ev)))) {
		json_object_put(o);
		return wbad(p, -ENOMEM, "", err);
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(evs, i), *kv;
		const char *type;

		if (!json_object_is_type(e, json_type_object) || json_obj(e, "kv", &kv) || !kv) {
			r = -EBADMSG;
			break;
		}
		/* mvccpb.Event.EventType: PUT = 0 (left out), DELETE = 1 */
		if (json_object_object_get_ex(e, "type", &v)) {
			type = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
			if (!strcmp(type, "DELETE"))
				ev[i].type = LC_ETCD_EV_DELETE;
			else if (strcmp(type, "PUT")) {
				r = -EBADMSG;
				break;
			}
		}
		if ((r = parse_kv(kv, &ev[i].kv)))
			break;
		/* revisions never go back, and none is older than asked */
		if (ev[i].kv.mod_revision <= (i ? ev[i - 1].kv.mod_revision - 1 : p->last_revision) ||
		    (m.revision && ev[i].kv.mod_revision > m.revision) ||
		    (ev[i].type == LC_ETCD_EV_PUT && ev[i].kv.version < 1)) {
			lc_etcd_kv_free(&ev[i].kv);
			r = -EBADMSG;
			break;
		}
	}
	if (r) {
		free_events(ev, n);
		json_object_put(o);
		return wbad(p, r, r == -E2BIG ? "a key or value too large" :
			    "a malformed event, or events out of revision order", err);
	}
	if (created && !canceled) {
		m.kind = LC_ETCD_W_CREATED;
		p->created = true;
		if (!p->start_revision)
			p->last_revision = m.revision;	/* "from now": what follows is newer */
	} else if (canceled) {
		p->created = true;
		m.kind = m.compact_revision > 0 ? LC_ETCD_W_COMPACTED : LC_ETCD_W_CANCELED;
		if (json_object_object_get_ex(res, "cancel_reason", &v))
			lc_copy_printable(m.reason, sizeof(m.reason), json_object_get_string(v));
		p->done = true;
		p->end_kind = m.kind;
		p->compact_revision = m.compact_revision;
		memcpy(p->reason, m.reason, sizeof(p->reason));
	} else if (n) {
		m.kind = LC_ETCD_W_EVENTS;
		m.events = ev;
		m.nevents = n;
		p->last_revision = ev[n - 1].kv.mod_revision;
	} else {
		m.kind = LC_ETCD_W_PROGRESS;
		if (m.revision < p->last_revision) {
			json_object_put(o);
			return wbad(p, -EBADMSG, "a progress notification below revisions already delivered", err);
		}
		p->last_revision = m.revision;
	}
	json_object_put(o);
	r = p->cb ? p->cb(p->arg, &m) : 0;
	free_events(ev, n);
	if (r && !p->done) {
		p->done = true;
		p->end_kind = LC_ETCD_W_CREATED;
	}
	return p->done ? 1 : 0;
}

int lc_etcd_watch_feed(struct lc_etcd_watch_parser *p, const char *data, size_t len, struct lc_error *err)
{
	while (len) {
		const char *nl;
		size_t take;
		int r;

		if (p->done)
			return wbad(p, -EBADMSG, "bytes after the end of the watch", err);
		nl = memchr(data, '\n', len);
		take = nl ? (size_t)(nl - data) : len;
		if (take > p->max_msg - p->len)
			return wbad(p, -E2BIG, "a message longer than the bound", err);
		if (p->len + take + 1 > p->cap) {
			size_t cap = p->cap ? p->cap : 4096;
			char *q;

			while (cap < p->len + take + 1)
				cap *= 2;
			if (cap > p->max_msg + 1)
				cap = p->max_msg + 1;
			q = realloc(p->line, cap);
			if (!q)
				return wbad(p, -ENOMEM, "", err);
			p->line = q;
			p->cap = cap;
		}
		memcpy(p->line + p->len, data, take);
		p->len += take;
		data += take;
		len -= take;
		if (!nl)
			break;
		data++;	/* the newline */
		len--;
		take = p->len;
		p->len = 0;
		if (take && p->line[take - 1] == '\r')
			take--;
		if (!take)
			continue;	/* blank line */
		r = watch_line(p, p->line, take, err);
		if (r < 0)
			return r;
		if (r > 0)
			return 1;
	}
	return 0;
}

/* ---- watch over the network ----------------------------------------------------- */

struct wstate {
	struct lc_etcd_watch_parser *p;
	struct lc_error *err;
	int r;			/* feed's result once non-zero */
	CURL *c;
	long status;
	struct reply errbody;	/* a non-200 answer */
	const atomic_bool *stop;
	uint64_t idle_ms;
	struct timespec last;
	curl_off_t seen;
	bool idle, stopped, got;
};

static uint64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t->tv_sec) * 1000 + (uint64_t)((now.tv_nsec - t->tv_nsec) / 1000000);
}

static size_t on_watch(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wstate *w = arg;
	size_t n = size * nmemb;

	if (!w->status)
		curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status != 200)
		return on_body(data, size, nmemb, &w->errbody);
	w->got = true;
	w->r = lc_etcd_watch_feed(w->p, data, n, w->err);
	return w->r ? 0 : n;	/* stop the transfer on an end or an error */
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct wstate *w = arg;

	(void)dltotal;
	(void)ultotal;
	(void)ulnow;
	if (w->stop && atomic_load(w->stop)) {
		w->stopped = true;
		return 1;
	}
	if (dlnow != w->seen) {
		w->seen = dlnow;
		clock_gettime(CLOCK_MONOTONIC, &w->last);
	} else if (w->idle_ms && ms_since(&w->last) > w->idle_ms) {
		w->idle = true;
		return 1;
	}
	return 0;
}

int lc_etcd_watch(struct lc_etcd *e, const void *key, size_t key_len, bool prefix, int64_t start_revision,
		  uint64_t idle_timeout_ms, const atomic_bool *stop, lc_etcd_watch_cb cb, void *arg,
		  int64_t *next_revision, struct lc_error *err)
{
	struct lc_etcd_watch_parser p;
	struct lc_error last = { 0 };
	struct lc_sb b = { 0 };
	size_t start = atomic_load(&e->cur);
	int r = -EIO;

	if (next_revision)
		*next_revision = start_revision > 0 ? start_revision : 0;
	if ((r = check_key(key, key_len, err)))
		return r;
	if (start_revision < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "etcd: negative revision");
	lc_sb_puts(&b, "{\"create_request\":{");
	put_field_b64(&b, "key", key, key_len);
	if (prefix)
		put_range_end(&b, key, key_len);
	if (start_revision) {
		lc_sb_puts(&b, ",");
		put_field_i64(&b, "start_revision", start_revision);
	}
	lc_sb_puts(&b, ",\"progress_notify\":true}}");
	if (b.oom) {
		free(b.p);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	lc_etcd_watch_parser_init(&p, start_revision, e->max_response, cb, arg);
	r = -EIO;
	for (size_t i = 0; i < e->n; i++) {
		size_t idx = (start + i) % e->n;
		char url[320], host[256], errbuf[CURL_ERROR_SIZE] = "";
		struct wstate w = { .p = &p, .err = &last, .stop = stop, .idle_ms = idle_timeout_ms,
				    .errbody = { .max = ETCD_ERRBODY } };
		struct curl_slist *hl = NULL, *t;
		bool sent, retry = false;
		CURLcode rc;

		snprintf(url, sizeof(url), "%s/v3/watch", e->ep[idx]);
		lc_url_host(url, host, sizeof(host));
		w.c = get_handle(e);
		t = curl_slist_append(NULL, "Content-Type: application/json");
		if (t)
			hl = curl_slist_append(t, "Expect:");
		if (!w.c || !hl) {
			curl_slist_free_all(hl ? hl : t);
			if (w.c)
				curl_easy_cleanup(w.c);
			r = lc_err(&last, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			break;
		}
		setup(e, w.c, url, hl, errbuf, b.p, b.len);
		curl_easy_setopt(w.c, CURLOPT_WRITEFUNCTION, on_watch);
		curl_easy_setopt(w.c, CURLOPT_WRITEDATA, &w);
		curl_easy_setopt(w.c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(w.c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(w.c, CURLOPT_XFERINFODATA, &w);
		clock_gettime(CLOCK_MONOTONIC, &w.last);
		rc = curl_easy_perform(w.c);
		if (rc == CURLE_OK && !w.status)
			curl_easy_getinfo(w.c, CURLINFO_RESPONSE_CODE, &w.status);
		if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR && rc != CURLE_ABORTED_BY_CALLBACK)
			r = curl_fail(w.c, rc, host, "/v3/watch", errbuf, false, false, 0, &sent, &last);
		curl_easy_setopt(w.c, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(w.c, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(w.c, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(w.c, CURLOPT_XFERINFODATA, NULL);
		/* A handle whose transfer was cut mid-stream is not reused. */
		if (rc == CURLE_OK)
			put_handle(e, w.c);
		else
			curl_easy_cleanup(w.c);
		curl_slist_free_all(hl);

		if (w.status && w.status != 200) {
			r = http_error(w.status, w.errbody.p, w.errbody.len, host, "/v3/watch", &retry, &last);
			free(w.errbody.p);
			if (retry && !p.created)
				continue;
			break;
		}
		free(w.errbody.p);
		if (w.r > 0 || w.stopped) {
			atomic_store(&e->cur, idx);
			if (p.end_kind == LC_ETCD_W_COMPACTED)
				r = lc_err(&last, -ERANGE, LC_ERRC_INVALID,
					   "etcd: %s: watch start revision %" PRId64 " compacted (oldest kept %" PRId64 "): re-read everything",
					   host, start_revision, p.compact_revision);
			else if (p.end_kind == LC_ETCD_W_CANCELED)
				r = lc_err(&last, -ECANCELED, LC_ERRC_TRANSIENT, "etcd: %s: watch canceled: %s",
					   host, p.reason[0] ? p.reason : "(no reason)");
			else
				r = 0;
			break;
		}
		if (w.r < 0) {
			r = w.r;	/* the parser's error, in last */
			break;
		}
		if (w.idle) {
			r = lc_err(&last, -ETIMEDOUT, LC_ERRC_TRANSIENT,
				   "etcd: %s: watch stream idle for more than %" PRIu64 " ms", host, idle_timeout_ms);
			break;
		}
		if (rc == CURLE_OK) {
			r = lc_err(&last, -EPIPE, LC_ERRC_TRANSIENT, "etcd: %s: the watch stream ended", host);
			break;
		}
		/* A transport failure: before anything came, the next member. */
		if (r == -EPIPE && !w.got) {
			char d[CURL_ERROR_SIZE];

			if (cert_refused(e, url, d, sizeof(d))) {
				r = refused_error(host, "/v3/watch", d, &last);
				break;
			}
		}
		if (last.cls == LC_ERRC_TRANSIENT && !w.got)
			continue;
		break;
	}
	if (next_revision)
		*next_revision = lc_etcd_watch_next_revision(&p);
	lc_etcd_watch_parser_free(&p);
	free(b.p);
	if (err)
		*err = last;
	return r;
}
