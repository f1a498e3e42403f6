// SPDX-License-Identifier: GPL-2.0
/*
 * The etcd client offline: the watch-stream parser on good and hostile
 * streams (split at every byte), prefix range ends, option checks.  The
 * client against a real cluster and a hostile gateway: tests/etcd.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd.h"

#define H "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"4\",\"raft_term\":\"2\"}"
#define CREATED "{\"result\":{" H ",\"created\":true}}\n"

struct rec {
	char log[1024];
	int stop_after;		/* messages; 0: never */
	int n;
};

static int on_msg(void *arg, const struct lc_etcd_watch_msg *m)
{
	static const char *const kinds[] = { "created", "events", "progress", "compacted", "canceled" };
	struct rec *r = arg;
	size_t l = strlen(r->log);

	l += (size_t)snprintf(r->log + l, sizeof(r->log) - l, "%s@%lld", kinds[m->kind], (long long)m->revision);
	for (size_t i = 0; i < m->nevents; i++)
		l += (size_t)snprintf(r->log + l, sizeof(r->log) - l, " %s:%s=%s:%lld",
				      m->events[i].type == LC_ETCD_EV_PUT ? "put" : "del",
				      (const char *)m->events[i].kv.key,
				      m->events[i].kv.value_len ? (const char *)m->events[i].kv.value : "",
				      (long long)m->events[i].kv.mod_revision);
	if (m->kind == LC_ETCD_W_COMPACTED)
		l += (size_t)snprintf(r->log + l, sizeof(r->log) - l, " compact=%lld", (long long)m->compact_revision);
	if (m->reason[0])
		l += (size_t)snprintf(r->log + l, sizeof(r->log) - l, " (%s)", m->reason);
	snprintf(r->log + l, sizeof(r->log) - l, ";");
	return r->stop_after && ++r->n >= r->stop_after;
}

/* Feed @s whole and in pieces of every size 1..7: the same log and result. */
static int feed(const char *s, int64_t start, size_t max, struct rec *out, struct lc_error *err,
		int64_t *next)
{
	int first = 0;

	for (size_t chunk = 0; chunk <= 7; chunk++) {
		struct lc_etcd_watch_parser p;
		struct rec r = { .stop_after = out->stop_after };
		size_t len = strlen(s), c = chunk ? chunk : len;
		int res = 0;

		lc_etcd_watch_parser_init(&p, start, max, on_msg, &r);
		for (size_t i = 0; i < len && !res; i += c)
			res = lc_etcd_watch_feed(&p, s + i, len - i < c ? len - i : c, err);
		if (!chunk) {
			first = res;
			*out = r;
			*next = lc_etcd_watch_next_revision(&p);
		} else {
			assert_int_equal(res, first);
			assert_string_equal(r.log, out->log);
		}
		lc_etcd_watch_parser_free(&p);
	}
	return first;
}

static void test_good_stream(void **state)
{
	struct rec r = { 0 };
	struct lc_error err;
	int64_t next;
	const char *s = CREATED
		"{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"Zm9v\",\"create_revision\":\"2\","
		"\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"YmFy\"}},{\"type\":\"PUT\",\"kv\":{\"key\":\"Yg==\","
		"\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\"}}]}}\r\n"
		"\n"
		"{\"result\":{" H ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"3\"}}]}}\n"
		"{\"result\":{" H "}}\n";

	(void)state;
	assert_int_equal(feed(s, 2, 0, &r, &err, &next), 0);
	assert_string_equal(r.log, "created@4;events@4 put:foo=bar:2 put:b=:2;events@4 del:foo=:3;progress@4;");
	assert_int_equal(next, 5);
	/* "from now": what comes is newer than the created revision */
	memset(&r, 0, sizeof(r));
	assert_int_equal(feed(CREATED "{\"result\":{" H "}}\n", 0, 0, &r, &err, &next), 0);
	assert_int_equal(next, 5);
	/* nothing yet: from now again */
	memset(&r, 0, sizeof(r));
	assert_int_equal(feed("", 0, 0, &r, &err, &next), 0);
	assert_int_equal(next, 0);
}

static void test_end_of_watch(void **state)
{
	struct rec r = { 0 };
	struct lc_error err;
	int64_t next;

	(void)state;
	assert_int_equal(feed(CREATED "{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":true,"
			      "\"compact_revision\":\"9\"}}\n", 3, 0, &r, &err, &next), 1);
	assert_string_equal(r.log, "created@4;compacted@0 compact=9;");
	/* anything after the end is refused */
	memset(&r, 0, sizeof(r));
	assert_int_equal(feed(CREATED "{\"result\":{\"canceled\":true,\"compact_revision\":\"9\"}}\nX", 3, 0,
			      &r, &err, &next), 1);
	/* a watch etcd could not create: created and canceled together */
	memset(&r, 0, sizeof(r));
	assert_int_equal(feed("{\"result\":{" H ",\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,"
			      "\"cancel_reason\":\"etcdserver: permission denied\\n\"}}\n", 0, 0, &r, &err, &next), 1);
	assert_string_equal(r.log, "canceled@4 (etcdserver: permission denied?);");
	/* the callback stops it */
	memset(&r, 0, sizeof(r));
	r.stop_after = 1;
	assert_int_equal(feed(CREATED CREATED, 0, 0, &r, &err, &next), 1);
	assert_string_equal(r.log, "created@4;");
}

static void bad(const char *s, int64_t start, size_t max, int want, const char *log)
{
	struct rec r = { 0 };
	struct lc_error err = { 0 };
	int64_t next;

	assert_int_equal(feed(s, start, max, &r, &err, &next), want);
	assert_int_equal(err.code, want);
	assert_true(err.cls != LC_ERRC_NONE);
	assert_true(err.msg[0] != 0);
	assert_string_equal(r.log, log);
}

static void test_hostile_streams(void **state)
{
	char big[300];

	(void)state;
	/* duplicate member name (json-c would keep the last one) */
	bad("{\"result\":{" H ",\"created\":true,\"created\":false}}\n", 0, 0, -EBADMSG, "");
	/* events before created; created twice */
	bad("{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\",\"version\":\"1\"}}]}}\n",
	    0, 0, -EBADMSG, "");
	bad(CREATED CREATED, 0, 0, -EBADMSG, "created@4;");
	/* revisions going back: within a message, across messages, progress */
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\",\"version\":\"1\"}},"
	    "{\"kv\":{\"key\":\"Yg==\",\"mod_revision\":\"3\",\"version\":\"1\"}}]}}\n", 2, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"3\",\"version\":\"1\"}}]}}\n"
	    "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"3\",\"version\":\"2\"}}]}}\n",
	    2, 0, -EBADMSG, "created@4;events@4 put:a=:3;");
	bad(CREATED "{\"result\":{\"header\":{\"revision\":\"3\"}}}\n", 0, 0, -EBADMSG, "created@4;");
	/* an event older than the start revision, or newer than its header */
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"2\",\"version\":\"1\"}}]}}\n",
	    3, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\",\"version\":\"1\"}}]}}\n",
	    3, 0, -EBADMSG, "created@4;");
	/* numbers: not a string, negative, beyond int64, not decimal */
	bad("{\"result\":{\"header\":{\"revision\":4},\"created\":true}}\n", 0, 0, -EBADMSG, "");
	bad("{\"result\":{\"header\":{\"revision\":\"-4\"},\"created\":true}}\n", 0, 0, -EBADMSG, "");
	bad("{\"result\":{\"header\":{\"revision\":\"9223372036854775808\"},\"created\":true}}\n", 0, 0, -EBADMSG, "");
	bad("{\"result\":{\"header\":{\"revision\":\"0x10\"},\"created\":true}}\n", 0, 0, -EBADMSG, "");
	bad("{\"result\":{\"header\":{\"revision\":\"4\"},\"created\":\"true\"}}\n", 0, 0, -EBADMSG, "");
	/* events: bad base64, no key, unknown type, type as a number, a put of version 0, no kv */
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ=\",\"mod_revision\":\"4\",\"version\":\"1\"}}]}}\n",
	    0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"mod_revision\":\"4\",\"version\":\"1\"}}]}}\n",
	    0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"type\":\"EXPIRE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\"}}]}}\n",
	    0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"type\":1,\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\"}}]}}\n",
	    0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\"}}]}}\n",
	    0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"events\":[{}]}}\n", 0, 0, -EBADMSG, "created@4;");
	/* fragments are never asked for; events with canceled */
	bad(CREATED "{\"result\":{" H ",\"fragment\":true}}\n", 0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H ",\"canceled\":true,\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\",\"version\":\"1\"}}]}}\n",
	    0, 0, -EBADMSG, "created@4;");
	/* not JSON, two objects on a line, no result, an array */
	bad(CREATED "hello\n", 0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"result\":{" H "}}{\"result\":{" H "}}\n", 0, 0, -EBADMSG, "created@4;");
	bad(CREATED "{\"results\":{" H "}}\n", 0, 0, -EBADMSG, "created@4;");
	bad(CREATED "[" CREATED "]\n", 0, 0, -EBADMSG, "created@4;");
	/* a line longer than the bound, even with no newline yet */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	bad(big, 0, 200, -E2BIG, "");
	/* the gateway's stream error: its gRPC code decides */
	bad(CREATED "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}\n",
	    0, 0, -EAGAIN, "created@4;");
	bad(CREATED "{\"error\":{\"grpc_code\":7,\"message\":\"etcdserver: permission denied\"}}\n",
	    0, 0, -EACCES, "created@4;");
}

static void test_error_classes(void **state)
{
	struct lc_etcd_watch_parser p;
	struct lc_error err;
	struct rec r = { 0 };

	(void)state;
	/* a permission error is never DENIED (the KMS's word, the kill switch) */
	lc_etcd_watch_parser_init(&p, 0, 0, on_msg, &r);
	assert_int_equal(lc_etcd_watch_feed(&p, "{\"error\":{\"grpc_code\":7,\"message\":\"x\"}}\n", 40, &err), -EACCES);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	lc_etcd_watch_parser_free(&p);
	lc_etcd_watch_parser_init(&p, 0, 0, on_msg, &r);
	assert_int_equal(lc_etcd_watch_feed(&p, "{\"error\":{\"grpc_code\":14,\"message\":\"x\"}}\n", 41, &err), -EAGAIN);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	lc_etcd_watch_parser_free(&p);
}

static void test_prefix_end(void **state)
{
	uint8_t out[8];

	(void)state;
	assert_int_equal(lc_etcd_prefix_end((const uint8_t *)"abc", 3, out), 3);
	assert_memory_equal(out, "abd", 3);
	assert_int_equal(lc_etcd_prefix_end((const uint8_t *)"a\xff\xff", 3, out), 1);
	assert_memory_equal(out, "b", 1);
	assert_int_equal(lc_etcd_prefix_end((const uint8_t *)"\xff\xff", 2, out), 1);
	assert_int_equal(out[0], 0);
	assert_int_equal(lc_etcd_prefix_end((const uint8_t *)"/lc/", 4, out), 4);
	assert_memory_equal(out, "/lc0", 4);
}

static void test_options(void **state)
{
	const char *ok[] = { "https://127.0.0.1:2379" };
	const char *badep[] = { "http://127.0.0.1:2379" };
	const char *path[] = { "https://127.0.0.1:2379/v3" };
	const char *user[] = { "https://u:p@127.0.0.1:2379" };
	const char *many[LC_ETCD_MAX_ENDPOINTS + 1];
	struct lc_etcd_opts o = { .endpoints = ok, .n_endpoints = 1, .ca_file = "/dev/null" };
	struct lc_etcd *e;
	struct lc_error err;

	(void)state;
	assert_int_equal(lc_etcd_new(&e, &o, &err), 0);
	assert_int_equal(lc_etcd_current(e), 0);
	lc_etcd_free(e);
	for (int i = 0; i <= LC_ETCD_MAX_ENDPOINTS; i++)
		many[i] = ok[0];
	struct { const char **eps; size_t n; const char *ca, *cert, *key; } cases[] = {
		{ badep, 1, "/dev/null", NULL, NULL },
		{ path, 1, "/dev/null", NULL, NULL },
		{ user, 1, "/dev/null", NULL, NULL },
		{ ok, 0, "/dev/null", NULL, NULL },
		{ many, LC_ETCD_MAX_ENDPOINTS + 1, "/dev/null", NULL, NULL },
		{ ok, 1, NULL, NULL, NULL },
		{ ok, 1, "/nonexistent/ca.pem", NULL, NULL },
		{ ok, 1, "/dev/null", "/dev/null", NULL },
		{ ok, 1, "/dev/null", "/dev/null", "/nonexistent/key.pem" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lc_etcd_opts b = { .endpoints = cases[i].eps, .n_endpoints = cases[i].n,
					  .ca_file = cases[i].ca, .cert_file = cases[i].cert,
					  .key_file = cases[i].key };

		assert_int_equal(lc_etcd_new(&e, &b, &err), -EINVAL);
		assert_null(e);
		assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	}
	/* arguments checked before anything is sent */
	assert_int_equal(lc_etcd_new(&e, &o, &err), 0);
	assert_int_equal(lc_etcd_put(e, "", 0, "v", 1, 0, NULL, &err), -EINVAL);
	{
		static char k[LC_ETCD_MAX_KEY + 1];

		memset(k, 'k', sizeof(k));
		assert_int_equal(lc_etcd_put(e, k, sizeof(k), "v", 1, 0, NULL, &err), -EINVAL);
		assert_int_equal(lc_etcd_put(e, "k", 1, k, (size_t)LC_ETCD_MAX_VALUE + 1, 0, NULL, &err), -E2BIG);
	}
	assert_int_equal(lc_etcd_lease_grant(e, 0, &(int64_t){ 0 }, NULL, &err), -EINVAL);
	assert_int_equal(lc_etcd_cas(e, "k", 1, -1, "v", 1, 0, NULL, &err), -EINVAL);
	lc_etcd_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_stream),
		cmocka_unit_test(test_end_of_watch),
		cmocka_unit_test(test_hostile_streams),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_prefix_end),
		cmocka_unit_test(test_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
