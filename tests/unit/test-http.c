// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTP/JSON core, offline: JSON bounds, status classes, URL hosts,
 * and transport failures that need no server (refused connection, plain
 * http:// refused, unreadable CA bundle).  Answers from real and fake
 * servers are tested in tests/kms.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "http.h"

static void test_json(void **state)
{
	json_object *o;
	char deep[64];

	(void)state;
	o = lc_json_parse("{\"a\":\"b\"}", 9);
	assert_non_null(o);
	assert_string_equal(lc_json_str(o, "a"), "b");
	assert_null(lc_json_str(o, "x"));
	lc_json_put_wiped(o);
	assert_null(lc_json_parse("[1]", 3));		/* not an object */
	assert_null(lc_json_parse("{} {}", 5));		/* trailing data */
	assert_null(lc_json_parse("{\"a\":\"b\"", 8));	/* truncated */
	assert_null(lc_json_parse("{\"a\":'b'}", 9));	/* not strict JSON */
	memset(deep, '[', sizeof(deep));
	deep[0] = '{';
	assert_null(lc_json_parse(deep, sizeof(deep)));
}

/* Member names: a duplicate (json-c would free the first value unwiped)
 * or an escaped name is refused before json-c parses; the same name in
 * different objects, names inside strings and nested objects are fine. */
static void test_json_names(void **state)
{
	static const struct {
		const char *text;
		int r;
	} t[] = {
		{ "{\"Plaintext\":\"AAAA\",\"KeyId\":\"k\"}", 0 },
		{ "{\"Plaintext\":\"AAAA\",\"Plaintext\":\"BBBB\"}", -EBADMSG },
		{ "{\"plaintext\":\"AAAA\",\"x\":1,\"plaintext\":\"BBBB\"}", -EBADMSG },
		{ "{\"Pl\\u0061intext\":\"AAAA\",\"Plaintext\":\"BBBB\"}", -EBADMSG },	/* escaped */
		{ "{\"a\":{\"b\":1,\"b\":2}}", -EBADMSG },			/* nested */
		{ "{\"a\":[{\"b\":1},{\"b\":2}],\"b\":3}", 0 },		/* other objects */
		{ "{\"a\":{\"a\":{\"a\":1}},\"b\":\"a\",\"c\":\"{\\\"a\\\":1,\\\"a\\\":2}\"}", 0 },
		{ "{\"a\":\"x\\\"\",\"a\":1}", -EBADMSG },		/* after an escaped quote */
		{ "{\"access_token\":\"t1\",\"expires_in\":3599,\"access_token\":\"t2\"}", -EBADMSG },
		{ "{\"a\":[1,2,{\"c\":1}],\"a2\":{}}", 0 },
		{ "{\"a\":1", -EINVAL },
		{ "{\"a\":\"b", -EINVAL },
		{ "{\"a\":[1}", -EINVAL },
		{ "}", -EINVAL },
	};
	char *many;
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (lc_json_check_names(t[i].text, strlen(t[i].text)) != t[i].r)
			fail_msg("case %zu (%s): %d", i, t[i].text,
				 lc_json_check_names(t[i].text, strlen(t[i].text)));
		if (t[i].r)
			assert_null(lc_json_parse(t[i].text, strlen(t[i].text)));
	}
	/* More names than LC_JSON_MAX_NAMES in one object. */
	many = malloc(16 * (LC_JSON_MAX_NAMES + 2));
	assert_non_null(many);
	many[n++] = '{';
	for (int i = 0; i <= LC_JSON_MAX_NAMES; i++)
		n += (size_t)sprintf(many + n, "%s\"k%d\":1", i ? "," : "", i);
	many[n++] = '}';
	assert_int_equal(lc_json_check_names(many, n), -E2BIG);
	free(many);
}

static void test_status(void **state)
{
	(void)state;
	assert_int_equal(lc_http_status_class(200), LC_ERRC_NONE);
	assert_int_equal(lc_http_status_class(429), LC_ERRC_TRANSIENT);
	assert_int_equal(lc_http_status_class(500), LC_ERRC_TRANSIENT);
	assert_int_equal(lc_http_status_class(503), LC_ERRC_TRANSIENT);
	assert_int_equal(lc_http_status_class(403), LC_ERRC_DENIED);
	assert_int_equal(lc_http_status_class(404), LC_ERRC_MISCONFIG);
	assert_int_equal(lc_http_status_class(400), LC_ERRC_INVALID);
}

static void test_url_host(void **state)
{
	char h[64];

	(void)state;
	lc_url_host("https://kms.eu-west-1.amazonaws.com/", h, sizeof(h));
	assert_string_equal(h, "kms.eu-west-1.amazonaws.com");
	lc_url_host("https://127.0.0.1:8443", h, sizeof(h));
	assert_string_equal(h, "127.0.0.1:8443");
	lc_url_host("https://user:secret@host/", h, sizeof(h));	/* never userinfo */
	assert_string_equal(h, "?");
	lc_url_host("nope", h, sizeof(h));
	assert_string_equal(h, "?");
}

static void test_transport_errors(void **state)
{
	struct lc_http_opts o = { .what = "test", .connect_timeout_ms = 1000 };
	struct lc_http_response resp;
	struct lc_error err = { 0 };
	struct lc_http *h;
	struct timespec a, b;

	(void)state;
	assert_int_equal(lc_http_new(&h, &o, &err), 0);
	/* Nothing listens on port 1 of loopback: refused, transient, fast. */
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_true(lc_http_request(h, "POST", "https://127.0.0.1:1/", NULL, "{}", 2, NULL, 2000,
				    &resp, &err) < 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	assert_true(b.tv_sec - a.tv_sec < 3);
	assert_null(resp.body.p);
	/* Plain HTTP is refused unless the client allows it. */
	assert_true(lc_http_request(h, "GET", "http://127.0.0.1:1/", NULL, NULL, 0, NULL, 2000,
				    &resp, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	lc_http_free(h);
	o.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(lc_http_new(&h, &o, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_null(h);
}

/* A server's error text that echoes a credential is withheld; any other
 * text is kept. */
static void test_msg_scrub(void **state)
{
	static const char *const bad[] = {
		"echo Bearer eyJ0eXAiOiJKV1QifQ.x",
		"echo tok=IQoJb3JpZ2luX2VjEJr//////////wEaCX",
		"auth=AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-2/kms/aws4_request, Signature=af7dc732",
		"token ya29.a0AfH6SMB",
		"-----BEGIN PRIVATE KEY-----",
	};
	char msg[160];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(msg, sizeof(msg), "%s", bad[i]);
		lc_http_msg_scrub(msg, sizeof(msg));
		assert_string_equal(msg, "(message withheld: it seems to carry a credential)");
	}
	snprintf(msg, sizeof(msg), "Key not found: cmk-1");
	lc_http_msg_scrub(msg, sizeof(msg));
	assert_string_equal(msg, "Key not found: cmk-1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_scrub),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_names),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_url_host),
		cmocka_unit_test(test_transport_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
