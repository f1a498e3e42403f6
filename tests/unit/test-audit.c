// SPDX-License-Identifier: GPL-2.0
/* Audit log: format, escaping, allowed fields, atomic appends. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "audit.h"

static const struct timespec T0 = { .tv_sec = 1714564800, .tv_nsec = 123456789 };	/* 2024-05-01T12:00:00.123Z */

static char *fmt(const struct lc_audit_event *ev)
{
	struct lc_error e = { 0 };
	char *line = NULL;

	assert_int_equal(lc_audit_format(ev, &T0, &line, &e), 0);
	return line;
}

/* Parse one record and check every member is in lc_audit_fields[]. */
static struct json_object *parse_record(const char *line)
{
	size_t len = strlen(line);
	struct json_object *o;

	assert_true(len > 0 && line[len - 1] == '\n');
	assert_null(memchr(line, '\n', len - 1));	/* exactly one line */
	o = json_tokener_parse(line);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	json_object_object_foreach(o, key, val) {
		size_t i;

		(void)val;
		for (i = 0; lc_audit_fields[i]; i++)
			if (!strcmp(key, lc_audit_fields[i]))
				break;
		if (!lc_audit_fields[i])
			fail_msg("field \"%s\" is not in the allowed set", key);
	}
	return o;
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static void test_full_record(void **state)
{
	struct lc_audit_event ev;
	char *line;

	(void)state;
	lc_audit_event_init(&ev, "unwrap", LC_AUDIT_FAILURE);
	ev.peer_uid = 1000;
	ev.workspace = "ws1";
	ev.project = "db1";
	ev.keyconfig = "kc1";
	ev.provider = "local";
	ev.cmk_id = "k-1";
	ev.cmk_version = "2";
	ev.error_class = LC_ERRC_TRANSIENT;
	ev.latency_ms = 12;
	ev.request_id = "r-9";
	line = fmt(&ev);
	assert_string_equal(line,
		"{\"time\":\"2024-05-01T12:00:00.123Z\",\"peer_uid\":1000,\"op\":\"unwrap\","
		"\"workspace\":\"ws1\",\"project\":\"db1\",\"keyconfig\":\"kc1\",\"provider\":\"local\","
		"\"cmk_id\":\"k-1\",\"cmk_version\":\"2\",\"outcome\":\"failure\","
		"\"error_class\":\"transient\",\"latency_ms\":12,\"request_id\":\"r-9\"}\n");
	json_object_put(parse_record(line));
	free(line);
}

static void test_minimal_record(void **state)
{
	struct lc_audit_event ev;
	struct json_object *o;
	char *line;

	(void)state;
	/* The agent's own action (revocation watch): no peer, no latency. */
	lc_audit_event_init(&ev, "revoke", LC_AUDIT_SUCCESS);
	line = fmt(&ev);
	assert_string_equal(line, "{\"time\":\"2024-05-01T12:00:00.123Z\",\"op\":\"revoke\",\"outcome\":\"success\"}\n");
	o = parse_record(line);
	assert_int_equal(json_object_object_length(o), 3);
	json_object_put(o);
	free(line);

	/* uid 0 and latency 0 are real values, not "absent". */
	ev.peer_uid = 0;
	ev.latency_ms = 0;
	ev.outcome = LC_AUDIT_REFUSED;
	line = fmt(&ev);
	assert_string_equal(line, "{\"time\":\"2024-05-01T12:00:00.123Z\",\"peer_uid\":0,\"op\":\"revoke\",\"outcome\":\"refused\",\"latency_ms\":0}\n");
	free(line);
}

static void test_required_fields(void **state)
{
	struct lc_audit_event ev;
	struct lc_error e = { 0 };
	char *line = (char *)1;

	(void)state;
	lc_audit_event_init(&ev, NULL, LC_AUDIT_SUCCESS);
	assert_int_equal(lc_audit_format(&ev, &T0, &line, &e), -EINVAL);
	assert_null(line);
	assert_non_null(strstr(e.msg, "operation"));
	lc_audit_event_init(&ev, "", LC_AUDIT_SUCCESS);
	assert_int_equal(lc_audit_format(&ev, &T0, &line, &e), -EINVAL);
	lc_audit_event_init(&ev, "open", (enum lc_audit_outcome)7);
	assert_int_equal(lc_audit_format(&ev, &T0, &line, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "outcome"));
}

static void test_escaping(void **state)
{
	struct lc_audit_event ev;
	struct json_object *o;
	char *line, longv[1000];

	(void)state;
	lc_audit_event_init(&ev, "open", LC_AUDIT_REFUSED);
	ev.workspace = "a\"b\\c\nd\te\x01/";
	ev.project = "caf\xc3\xa9 \xff\xfe end";		/* invalid UTF-8 inside */
	ev.keyconfig = "\xe2\x82";			/* truncated sequence */
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	ev.cmk_id = longv;
	line = fmt(&ev);
	/* One line whatever the input; the JSON carries the exact text. */
	o = parse_record(line);
	assert_string_equal(str(o, "workspace"), "a\"b\\c\nd\te\x01/");
	assert_string_equal(str(o, "project"), "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end");
	assert_string_equal(str(o, "keyconfig"), "\xef\xbf\xbd\xef\xbf\xbd");
	assert_int_equal(strlen(str(o, "cmk_id")), LC_AUDIT_FIELD_MAX);
	assert_non_null(strstr(line, "\\\"b\\\\c\\nd\\te\\u0001/"));
	json_object_put(o);
	free(line);
}

/* Whatever the caller fills, only allowed fields come out: fill every
 * string with a "secret-looking" value and check names and that nothing
 * but the given values appears. */
static void test_only_allowed_fields(void **state)
{
	struct lc_audit_event ev;
	struct json_object *o;
	char *line;
	size_t n = 0;

	(void)state;
	lc_audit_event_init(&ev, "rotate", LC_AUDIT_FAILURE);
	ev.peer_uid = 5;
	ev.workspace = ev.project = ev.keyconfig = ev.provider = "v";
	ev.cmk_id = ev.cmk_version = ev.request_id = ev.detail = "v";
	ev.error_class = LC_ERRC_DENIED;
	ev.latency_ms = 1;
	line = fmt(&ev);
	o = parse_record(line);
	for (n = 0; lc_audit_fields[n]; n++)
		;
	/* Every allowed field is present when all apply... */
	assert_int_equal(json_object_object_length(o), n);
	/* ...and the allowed set is what the issue lists, nothing more. */
	assert_int_equal(n, 14);
	json_object_put(o);
	free(line);
}

static char dir[] = "/tmp/lc-audit-XXXXXX";
static char path[128];

struct worker {
	struct lc_audit *a;
	int id, n;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	char project[LC_AUDIT_FIELD_MAX + 1];

	/* Long records make interleaving likely if writes were split. */
	memset(project, 'a' + w->id, sizeof(project) - 1);
	project[sizeof(project) - 1] = '\0';
	for (int i = 0; i < w->n; i++) {
		struct lc_audit_event ev;
		struct lc_error e = { 0 };
		char req[32];

		lc_audit_event_init(&ev, "unwrap", LC_AUDIT_SUCCESS);
		snprintf(req, sizeof(req), "%d-%d", w->id, i);
		ev.request_id = req;
		ev.workspace = project;
		ev.project = project;
		ev.peer_uid = w->id;
		if (lc_audit_write(w->a, &ev, &e) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_append_threads(void **state)
{
	enum { THREADS = 4, PER = 500 };
	struct lc_audit a;
	struct lc_error e = { 0 };
	struct worker w[THREADS];
	pthread_t th[THREADS];
	int next[THREADS] = { 0 }, lines = 0, fd;
	char *buf = NULL;
	size_t cap = 0;
	FILE *f;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	/* An existing line stays: the log is appended to. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"old\":1}\n", 10), 10);
	close(fd);

	assert_int_equal(lc_audit_open(&a, path, false, &e), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ &a, i, PER };
		assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *ret;

		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	lc_audit_close(&a);

	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(getline(&buf, &cap, f) > 0);
	assert_string_equal(buf, "{\"old\":1}\n");
	while (getline(&buf, &cap, f) > 0) {
		struct json_object *o = parse_record(buf);
		int id, i;

		/* Each record intact, each thread's records in its order. */
		assert_int_equal(sscanf(str(o, "request_id"), "%d-%d", &id, &i), 2);
		assert_true(id >= 0 && id < THREADS);
		assert_int_equal(i, next[id]);
		next[id]++;
		assert_int_equal(strlen(str(o, "project")), LC_AUDIT_FIELD_MAX);
		assert_int_equal(str(o, "project")[0], 'a' + id);
		json_object_put(o);
		lines++;
	}
	free(buf);
	fclose(f);
	assert_int_equal(lines, THREADS * PER);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);	/* existing file's mode kept */
}

static void test_fsync_reopen(void **state)
{
	struct lc_audit a;
	struct lc_audit_event ev;
	struct lc_error e = { 0 };
	char moved[160], *buf = NULL;
	size_t cap = 0;
	struct stat st;
	FILE *f;

	(void)state;
	snprintf(moved, sizeof(moved), "%s.1", path);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(lc_audit_open(&a, path, true, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	lc_audit_event_init(&ev, "close", LC_AUDIT_SUCCESS);
	assert_int_equal(lc_audit_write(&a, &ev, &e), 0);
	/* logrotate moves the file; reopen starts a new one. */
	unlink(moved);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(lc_audit_reopen(&a, &e), 0);
	ev.op = "open";
	assert_int_equal(lc_audit_write(&a, &ev, &e), 0);
	lc_audit_close(&a);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(getline(&buf, &cap, f) > 0);
	assert_non_null(strstr(buf, "\"op\":\"open\""));
	assert_true(getline(&buf, &cap, f) < 0);
	fclose(f);
	free(buf);
	unlink(path);
	unlink(moved);
	rmdir(dir);
	/* Unwritable location: a message naming the path. */
	assert_int_equal(lc_audit_open(&a, "/nonexistent-dir/audit.log", true, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent-dir/audit.log"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_record),
		cmocka_unit_test(test_minimal_record),
		cmocka_unit_test(test_required_fields),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_only_allowed_fields),
		cmocka_unit_test(test_append_threads),
		cmocka_unit_test(test_fsync_reopen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
