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
/* The server's clock from its Date header (IMF-fixdate, and the obsolete
 * forms RFC 9110 section 5.6.7 says to accept); 0 when absent or junk. */
static void test_server_time(void **state)
{
	struct lc_http_response r = { 0 };

	(void)state;
	assert_int_equal(lc_http_server_time(&r), 0);
	snprintf(r.date, sizeof(r.date), "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_int_equal(lc_http_server_time(&r), 784111777);
	snprintf(r.date, sizeof(r.date), "Sunday, 06-Nov-94 08:49:37 GMT");
	assert_int_equal(lc_http_server_time(&r), 784111777);
	snprintf(r.date, sizeof(r.date), "Fri, 15 Jan 2027 08:00:00 GMT");
	assert_int_equal(lc_http_server_time(&r), 1800000000);
	snprintf(r.date, sizeof(r.date), "yesterday-ish");
	assert_int_equal(lc_http_server_time(&r), 0);
}

/* Percent-encoding and base64url, into lc_sb and into a caller's buffer;
 * RFC 4648 section 10 vectors; inputs longer than the chunks lc_sb uses. */
static void test_encoders(void **state)
{
	static const char *const b64[][2] = { { "", "" }, { "f", "Zg" }, { "fo", "Zm8" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" } };
	struct lc_sb b = { 0 };
	char out[512], big[300];
	uint8_t bin[200];

	(void)state;
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		assert_int_equal(lc_base64url_encode((const uint8_t *)b64[i][0], strlen(b64[i][0]), out),
				 strlen(b64[i][1]));
		assert_string_equal(out, b64[i][1]);
	}
	assert_int_equal(lc_base64url_encode((const uint8_t *)"\xfb\xff", 2, out), 3);
	assert_string_equal(out, "-_8");	/* base64: "+/8=" */
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 37 + 11);
	lc_sb_put_b64url(&b, bin, sizeof(bin));	/* 200 bytes: across the 48-byte chunks */
	lc_base64url_encode(bin, sizeof(bin), out);
	assert_false(b.oom);
	assert_string_equal(b.p, out);
	assert_int_equal(b.len, 267);
	free(b.p);
	memset(&b, 0, sizeof(b));

	assert_int_equal(lc_form_encode("a b/c~-._*+\xc3\xa9&=%", 16, out), 34);
	assert_string_equal(out, "a%20b%2Fc~-._%2A%2B%C3%A9%26%3D%25");
	memset(big, '/', sizeof(big));
	lc_sb_puts(&b, "x=");
	lc_sb_put_form(&b, big, sizeof(big));	/* across the 64-byte chunks */
	assert_false(b.oom);
	assert_int_equal(b.len, 2 + 3 * sizeof(big));
	assert_memory_equal(b.p + 2 + 3 * 299, "%2F", 4);	/* and NUL-terminated */
	free(b.p);
	memset(&b, 0, sizeof(b));
	lc_sb_put_form(&b, "", 0);
	lc_sb_put_b64url(&b, "", 0);
	assert_int_equal(b.len, 0);
	free(b.p);
}

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
		cmocka_unit_test(test_server_time),
		cmocka_unit_test(test_encoders),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_names),
		cmocka_unit_test(test_url_host),
		cmocka_unit_test(test_transport_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
