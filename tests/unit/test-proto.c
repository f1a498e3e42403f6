// SPDX-License-Identifier: GPL-2.0
/* Control socket protocol and peer roles. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

static void pair(struct lc_proto_conn *a, struct lc_proto_conn *b, int timeout_ms)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	lc_proto_conn_init(a, sv[0], timeout_ms);
	lc_proto_conn_init(b, sv[1], timeout_ms);
}

static void raw_write(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* ---- a tiny server in a thread: answers "echo" and refuses the rest ---- */

static void serve_one(struct lc_proto_conn *c)
{
	for (;;) {
		struct json_object *msg = NULL, *rep;
		struct lc_proto_request req;
		struct lc_error e = { 0 };
		int r = lc_proto_recv(c, &msg, &e);

		if (r == -ENODATA || r == -ECONNRESET || r == -EMSGSIZE)
			break;
		if (r == 0)
			r = lc_proto_request_parse(msg, &req, &e);
		else
			req.id = -1;
		if (r < 0) {
			rep = lc_proto_reply_error(req.id, &e);
		} else if (!strcmp(req.op, "echo")) {
			rep = lc_proto_reply_ok(req.id, json_object_get(req.args));
		} else {
			lc_err(&e, -EACCES, LC_ERRC_DENIED, "operation \"%s\" refused", req.op);
			rep = lc_proto_reply_error(req.id, &e);
		}
		assert_int_equal(lc_proto_send(c, rep, &e), 0);
		json_object_put(rep);
		json_object_put(msg);
	}
}

static void *server_thread(void *arg)
{
	serve_one(arg);
	return NULL;
}

static void test_round_trip(void **state)
{
	struct lc_proto_conn cli, srv;
	struct json_object *args, *res = NULL, *v;
	struct lc_error e = { 0 };
	pthread_t th;

	(void)state;
	pair(&cli, &srv, 5000);
	assert_int_equal(pthread_create(&th, NULL, server_thread, &srv), 0);

	args = json_object_new_object();
	json_object_object_add(args, "volume", json_object_new_string("db1\n\"quoted\" \xc3\xa9"));
	json_object_object_add(args, "segments", json_object_new_int64(65536));
	assert_int_equal(lc_proto_call(&cli, "echo", args, &res, &e), 0);
	assert_true(json_object_object_get_ex(res, "volume", &v));
	assert_string_equal(json_object_get_string(v), "db1\n\"quoted\" \xc3\xa9");
	assert_true(json_object_object_get_ex(res, "segments", &v));
	assert_int_equal(json_object_get_int64(v), 65536);
	json_object_put(res);

	/* A refusal comes back as the agent's code, class and message. */
	assert_int_equal(lc_proto_call(&cli, "revoke", NULL, &res, &e), -EACCES);
	assert_null(res);
	assert_int_equal(e.cls, LC_ERRC_DENIED);
	assert_string_equal(e.msg, "operation \"revoke\" refused");

	lc_proto_conn_close(&cli);
	assert_int_equal(pthread_join(th, NULL), 0);
	lc_proto_conn_close(&srv);
}

static void expect_parse_bad(const char *line, const char *needle)
{
	struct json_object *o = (void *)1;
	struct lc_error e = { 0 };

	assert_int_equal(lc_proto_parse(line, strlen(line), &o, &e), -EBADMSG);
	assert_null(o);
	if (!strstr(e.msg, needle))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, e.msg, needle);
}

static void test_malformed_json(void **state)
{
	struct json_object *o = NULL;
	struct lc_error e = { 0 };

	(void)state;
	expect_parse_bad("", "ends early");
	expect_parse_bad("{", "ends early");
	expect_parse_bad("{\"op\": \"x\"", "ends early");
	expect_parse_bad("[1, 2]", "expected an object");
	expect_parse_bad("42", "expected an object");
	expect_parse_bad("\"op\"", "expected an object");
	expect_parse_bad("{\"op\": \"x\"} {}", "byte 12");
	expect_parse_bad("{\"op\": \"x\"}x", "byte 11");
	expect_parse_bad("{'op': 'x'}", "malformed");
	expect_parse_bad("{\"a\": 1,}", "malformed");
	expect_parse_bad("{\"a\": nul}", "malformed");
	expect_parse_bad("{\"a\": \"\xff\xfe\"}", "malformed");	/* not UTF-8 */
	assert_int_equal(lc_proto_parse("{\"a\":\0}", 7, &o, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "NUL"));
	/* Blanks around are fine. */
	assert_int_equal(lc_proto_parse("{\"a\": 1}  \r", 11, &o, &e), 0);
	json_object_put(o);
}

static void expect_req_bad(const char *line, const char *needle, int64_t want_id)
{
	struct json_object *o = NULL;
	struct lc_proto_request req;
	struct lc_error e = { 0 };

	assert_int_equal(lc_proto_parse(line, strlen(line), &o, &e), 0);
	assert_int_equal(lc_proto_request_parse(o, &req, &e), -EBADMSG);
	assert_int_equal(req.id, want_id);
	if (!strstr(e.msg, needle))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, e.msg, needle);
	json_object_put(o);
}

static void test_missing_fields(void **state)
{
	struct json_object *o = NULL;
	struct lc_proto_request req;
	struct lc_error e = { 0 };
	const char *line = "{\"op\": \"status\", \"id\": 7}";

	(void)state;
	expect_req_bad("{\"args\": {}, \"id\": 1}", "\"op\" is missing", 1);
	expect_req_bad("{\"op\": \"status\"}", "\"id\" is missing", -1);
	expect_req_bad("{\"op\": \"\", \"id\": 1}", "non-empty string", 1);
	expect_req_bad("{\"op\": 5, \"id\": 1}", "non-empty string", 1);
	expect_req_bad("{\"op\": \"x\", \"id\": -1}", "integer >= 0", -1);
	expect_req_bad("{\"op\": \"x\", \"id\": \"1\"}", "integer >= 0", -1);
	expect_req_bad("{\"op\": \"x\", \"id\": 1.5}", "integer >= 0", -1);
	expect_req_bad("{\"op\": \"x\", \"id\": 1, \"args\": []}", "must be a JSON object", 1);
	expect_req_bad("{\"op\": \"x\", \"id\": 1, \"key\": \"00\"}", "unknown member \"key\"", 1);

	/* "args" may be left out: an empty object stands in. */
	assert_int_equal(lc_proto_parse(line, strlen(line), &o, &e), 0);
	assert_int_equal(lc_proto_request_parse(o, &req, &e), 0);
	assert_string_equal(req.op, "status");
	assert_int_equal(req.id, 7);
	assert_true(json_object_is_type(req.args, json_type_object));
	assert_int_equal(json_object_object_length(req.args), 0);
	json_object_put(o);
}

static void test_reply_parse(void **state)
{
	static const char *const bad[] = {
		"{\"ok\": true, \"result\": {}}",
		"{\"id\": 1, \"result\": {}}",
		"{\"id\": 1, \"ok\": 1, \"result\": {}}",
		"{\"id\": 1, \"ok\": true}",
		"{\"id\": 1, \"ok\": true, \"result\": {}, \"error\": {}}",
		"{\"id\": 1, \"ok\": false}",
		"{\"id\": 1, \"ok\": false, \"error\": {\"code\": 5, \"class\": \"denied\", \"message\": \"m\"}}",
		"{\"id\": 1, \"ok\": false, \"error\": {\"code\": -5, \"class\": \"bogus\", \"message\": \"m\"}}",
		"{\"id\": 1, \"ok\": false, \"error\": {\"code\": -5, \"class\": \"denied\"}}",
		"{\"id\": 1, \"ok\": true, \"result\": {}, \"extra\": 1}",
	};
	struct json_object *o;
	struct lc_proto_reply rep;
	struct lc_error e = { 0 }, remote = { 0 }, in;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(lc_proto_parse(bad[i], strlen(bad[i]), &o, &e), 0);
		memset(&remote, 0, sizeof(remote));
		if (lc_proto_reply_parse(o, &rep, &remote, &e) != -EBADMSG)
			fail_msg("reply accepted: %s", bad[i]);
		assert_int_equal(remote.code, 0);
		json_object_put(o);
	}
	/* Error replies keep code, class and message; a null id is allowed. */
	lc_err(&in, -ENOKEY, LC_ERRC_MISCONFIG, "no key configuration \"kc9\" in workspace \"ws\"");
	o = lc_proto_reply_error(-1, &in);
	assert_int_equal(lc_proto_reply_parse(o, &rep, &remote, &e), -ENOKEY);
	assert_int_equal(rep.id, -1);
	assert_false(rep.ok);
	assert_int_equal(remote.code, -ENOKEY);
	assert_int_equal(remote.cls, LC_ERRC_MISCONFIG);
	assert_string_equal(remote.msg, in.msg);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"id\":null,\"ok\":false,\"error\":{\"code\":-126,\"class\":\"misconfigured\",\"message\":\"no key configuration \\\"kc9\\\" in workspace \\\"ws\\\"\"}}");
	json_object_put(o);
}

struct writer {
	int fd;
	const char *data;
	size_t len, chunk;
	int delay_us;
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;

	for (size_t off = 0; off < w->len;) {
		size_t n = w->len - off < w->chunk ? w->len - off : w->chunk;
		ssize_t r = write(w->fd, w->data + off, n);

		if (r <= 0)
			break;
		off += (size_t)r;
		if (w->delay_us)
			usleep((useconds_t)w->delay_us);
	}
	return NULL;
}

static void test_partial_and_batched(void **state)
{
	const char *data = "{\"op\":\"a\",\"id\":1}\n{\"op\":\"b\",\"id\":2}\n{\"op\":\"c\",\"id\":3}\n";
	struct lc_proto_conn a, b;
	struct writer w;
	struct json_object *o;
	struct lc_proto_request req;
	struct lc_error e = { 0 };
	pthread_t th;
	const char *want[] = { "a", "b", "c" };

	(void)state;
	/* Byte by byte, slowly: recv assembles the lines. */
	pair(&a, &b, 60000);
	w = (struct writer){ .fd = a.fd, .data = data, .len = strlen(data), .chunk = 1, .delay_us = 200 };
	assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lc_proto_recv(&b, &o, &e), 0);
		assert_int_equal(lc_proto_request_parse(o, &req, &e), 0);
		assert_string_equal(req.op, want[i]);
		assert_int_equal(req.id, i + 1);
		json_object_put(o);
	}
	pthread_join(th, NULL);
	/* Clean end of stream between messages. */
	lc_proto_conn_close(&a);
	assert_int_equal(lc_proto_recv(&b, &o, &e), -ENODATA);
	lc_proto_conn_close(&b);

	/* All in one write: three messages from one read. */
	pair(&a, &b, 60000);
	raw_write(a.fd, data, strlen(data));
	raw_write(a.fd, "{\"op\":", 6);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lc_proto_recv(&b, &o, &e), 0);
		json_object_put(o);
	}
	/* Peer gone in the middle of a line. */
	lc_proto_conn_close(&a);
	assert_int_equal(lc_proto_recv(&b, &o, &e), -ECONNRESET);
	assert_non_null(strstr(e.msg, "middle of a message"));
	lc_proto_conn_close(&b);
}

static void test_oversize(void **state)
{
	struct lc_proto_conn a, b;
	struct writer w;
	struct json_object *o = NULL, *big;
	struct lc_error e = { 0 };
	pthread_t th;
	size_t n = LC_PROTO_MAX_MSG + 4096;
	char *data = malloc(n);

	(void)state;
	assert_non_null(data);
	/* A line of exactly the limit (newline included) passes... */
	memset(data, ' ', n);
	data[0] = '{';
	data[LC_PROTO_MAX_MSG - 2] = '}';
	data[LC_PROTO_MAX_MSG - 1] = '\n';
	pair(&a, &b, 60000);
	w = (struct writer){ .fd = a.fd, .data = data, .len = LC_PROTO_MAX_MSG, .chunk = 65536 };
	assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
	assert_int_equal(lc_proto_recv(&b, &o, &e), 0);
	json_object_put(o);
	pthread_join(th, NULL);

	/* ...one byte more does not. */
	data[LC_PROTO_MAX_MSG - 1] = ' ';
	data[LC_PROTO_MAX_MSG - 1] = '}';
	data[LC_PROTO_MAX_MSG - 2] = ' ';
	data[LC_PROTO_MAX_MSG] = '\n';
	w = (struct writer){ .fd = a.fd, .data = data, .len = LC_PROTO_MAX_MSG + 1, .chunk = 65536 };
	assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
	assert_int_equal(lc_proto_recv(&b, &o, &e), -EMSGSIZE);
	assert_null(o);
	assert_non_null(strstr(e.msg, "limit"));
	lc_proto_conn_close(&b);	/* unblocks the writer */
	pthread_join(th, NULL);
	lc_proto_conn_close(&a);

	/* No newline at all: refused once the limit is reached, without
	 * waiting for the rest. */
	memset(data, 'x', n);
	pair(&a, &b, 60000);
	w = (struct writer){ .fd = a.fd, .data = data, .len = n, .chunk = 65536 };
	assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
	assert_int_equal(lc_proto_recv(&b, &o, &e), -EMSGSIZE);
	lc_proto_conn_close(&b);
	pthread_join(th, NULL);
	lc_proto_conn_close(&a);

	/* The sender refuses to build one. */
	pair(&a, &b, 60000);
	data[LC_PROTO_MAX_MSG] = '\0';
	big = json_object_new_object();
	json_object_object_add(big, "blob", json_object_new_string(data));
	assert_int_equal(lc_proto_send(&a, big, &e), -EMSGSIZE);
	json_object_put(big);
	lc_proto_conn_close(&a);
	lc_proto_conn_close(&b);
	free(data);
}

static void test_timeout(void **state)
{
	struct lc_proto_conn a, b;
	struct json_object *o;
	struct lc_error e = { 0 };
	struct timespec t0, t1;
	long ms;

	(void)state;
	pair(&a, &b, 150);
	raw_write(a.fd, "{\"op\"", 5);	/* a partial message, then silence */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(lc_proto_recv(&b, &o, &e), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 140 && ms < 60000);	/* fired, and did not hang */
	lc_proto_conn_close(&a);
	lc_proto_conn_close(&b);
}

static void test_listen_connect(void **state)
{
	char dir[] = "/tmp/lc-proto-XXXXXX", path[128], file[128];
	struct lc_proto_conn cli, srv;
	struct json_object *res = NULL;
	struct lc_error e = { 0 };
	struct stat st;
	pthread_t th;
	int lfd, lfd2, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/run/agent.sock", dir);
	lfd = lc_proto_listen(path, 0660, &e);
	assert_true(lfd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);

	assert_int_equal(lc_proto_connect(path, 5000, &cli, &e), 0);
	assert_int_equal(lc_proto_accept(lfd, &srv, 5000, &e), 0);
	assert_int_equal(pthread_create(&th, NULL, server_thread, &srv), 0);
	assert_int_equal(lc_proto_call(&cli, "echo", NULL, &res, &e), 0);
	assert_int_equal(json_object_object_length(res), 0);
	json_object_put(res);
	lc_proto_conn_close(&cli);
	pthread_join(th, NULL);
	lc_proto_conn_close(&srv);

	/* A second agent on the same path is refused (its probe shows up as
	 * a connection that closes at once). */
	assert_int_equal(lc_proto_listen(path, 0660, &e), -EADDRINUSE);
	assert_non_null(strstr(e.msg, "already listening"));

	/* A stale socket (its agent gone) is replaced. */
	close(lfd);
	lfd2 = lc_proto_listen(path, 0600, &e);
	assert_true(lfd2 >= 0);
	close(lfd2);
	unlink(path);

	/* Nobody listening: a clear message. */
	assert_int_equal(lc_proto_connect(path, 1000, &cli, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "is lakecrypt-agent running?"));

	/* A regular file in the way is not deleted. */
	snprintf(file, sizeof(file), "%s/run/file", dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(lc_proto_listen(file, 0660, &e), -EEXIST);
	assert_int_equal(stat(file, &st), 0);
	unlink(file);
	/* Too long for sun_path. */
	assert_int_equal(lc_proto_listen("/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock", 0660, &e), -ENAMETOOLONG);
	snprintf(file, sizeof(file), "%s/run", dir);
	rmdir(file);
	rmdir(dir);
}

/* ---- roles ---- */

struct fake_db {
	int fail_users, fail_groups;
	uid_t no_passwd_uid;
	/* groups per uid: uid 1000 admin, 1001 operator, 1002 both, 1003 none */
};

enum { GID_ADMIN = 900, GID_OPER = 901, GID_OTHER = 902 };

static int fake_user_groups(void *ctx, uid_t uid, gid_t gid, gid_t **groups, size_t *n)
{
	struct fake_db *db = ctx;
	gid_t g[4];
	size_t k = 0;

	if (db->fail_users)
		return -EIO;
	if (uid == db->no_passwd_uid)
		return -ENOENT;
	g[k++] = gid;
	if (uid == 1000 || uid == 1002)
		g[k++] = GID_ADMIN;
	if (uid == 1001 || uid == 1002)
		g[k++] = GID_OPER;
	g[k++] = GID_OTHER;
	*groups = malloc(k * sizeof(gid_t));
	if (!*groups)
		return -ENOMEM;
	memcpy(*groups, g, k * sizeof(gid_t));
	*n = k;
	return 0;
}

static int fake_group_gid(void *ctx, const char *name, gid_t *gid)
{
	struct fake_db *db = ctx;

	if (db->fail_groups)
		return -EIO;
	if (!strcmp(name, "lakecrypt-admin"))
		*gid = GID_ADMIN;
	else if (!strcmp(name, "lakecrypt"))
		*gid = GID_OPER;
	else
		return -ENOENT;
	return 0;
}

static enum lc_role role_of(struct fake_db *fdb, const struct lc_role_policy *pol, uid_t uid,
			    gid_t gid, int want_rc)
{
	struct lc_group_db db = { fake_user_groups, fake_group_gid, fdb };
	struct lc_peer peer = { .pid = 1, .uid = uid, .gid = gid };
	struct lc_error e = { 0 };
	enum lc_role role = LC_ROLE_ADMIN;

	assert_int_equal(lc_role_resolve(&peer, pol, &db, &role, &e), want_rc);
	if (want_rc)
		assert_true(e.msg[0] != '\0');
	return role;
}

static void test_roles(void **state)
{
	struct lc_role_policy pol = { "lakecrypt-admin", "lakecrypt" };
	struct fake_db fdb = { .no_passwd_uid = 4242 };

	(void)state;
	assert_int_equal(role_of(&fdb, &pol, 0, 0, 0), LC_ROLE_ADMIN);
	assert_int_equal(role_of(&fdb, &pol, 1000, 100, 0), LC_ROLE_ADMIN);
	assert_int_equal(role_of(&fdb, &pol, 1001, 100, 0), LC_ROLE_OPERATOR);
	assert_int_equal(role_of(&fdb, &pol, 1002, 100, 0), LC_ROLE_ADMIN);
	/* Refusals: in neither group; unknown user; unknown user whose
	 * primary gid alone is the operator group counts as operator. */
	assert_int_equal(role_of(&fdb, &pol, 1003, 100, 0), LC_ROLE_NONE);
	assert_int_equal(role_of(&fdb, &pol, 4242, 100, 0), LC_ROLE_NONE);
	assert_int_equal(role_of(&fdb, &pol, 4242, GID_OPER, 0), LC_ROLE_OPERATOR);
	/* Primary gid is the admin group. */
	assert_int_equal(role_of(&fdb, &pol, 1003, GID_ADMIN, 0), LC_ROLE_ADMIN);
	/* Group names come from the policy: renamed groups that do not exist
	 * have no members, so admins and operators lose their roles. */
	pol.admin_group = "secadmins";
	assert_int_equal(role_of(&fdb, &pol, 1000, 100, 0), LC_ROLE_NONE);
	assert_int_equal(role_of(&fdb, &pol, 1002, 100, 0), LC_ROLE_OPERATOR);
	pol.operator_group = NULL;
	assert_int_equal(role_of(&fdb, &pol, 1001, 100, 0), LC_ROLE_NONE);
	assert_int_equal(role_of(&fdb, &pol, 0, 0, 0), LC_ROLE_ADMIN);
	/* A failing database is an error, never a role. */
	pol = (struct lc_role_policy){ "lakecrypt-admin", "lakecrypt" };
	fdb.fail_users = 1;
	assert_int_equal(role_of(&fdb, &pol, 1000, 100, -EIO), LC_ROLE_NONE);
	fdb.fail_users = 0;
	fdb.fail_groups = 1;
	assert_int_equal(role_of(&fdb, &pol, 1000, 100, -EIO), LC_ROLE_NONE);
	assert_string_equal(lc_role_name(LC_ROLE_OPERATOR), "operator");
}

static void test_peercred_socketpair(void **state)
{
	struct lc_proto_conn a, b;
	struct lc_peer peer;
	struct lc_error e = { 0 };
	struct lc_role_policy pol = { "lakecrypt-admin", "lakecrypt" };
	enum lc_role role;

	(void)state;
	pair(&a, &b, 1000);
	assert_int_equal(lc_proto_peer(b.fd, &peer, &e), 0);
	assert_int_equal(peer.pid, getpid());
	assert_int_equal(peer.uid, getuid());
	assert_int_equal(peer.gid, getgid());
	/* The real group database answers for the real peer. */
	assert_int_equal(lc_role_resolve(&peer, &pol, &lc_group_db_system, &role, &e), 0);
	if (getuid() == 0)
		assert_int_equal(role, LC_ROLE_ADMIN);
	lc_proto_conn_close(&a);
	lc_proto_conn_close(&b);
}

static void test_system_group_db(void **state)
{
	gid_t *g = NULL, gid;
	size_t n = 0;
	bool have = false;

	(void)state;
	/* root exists everywhere and is in group 0. */
	assert_int_equal(lc_group_db_system.user_groups(NULL, 0, 0, &g, &n), 0);
	for (size_t i = 0; i < n; i++)
		have |= g[i] == 0;
	assert_true(have);
	free(g);
	assert_int_equal(lc_group_db_system.group_gid(NULL, "root", &gid), 0);
	assert_int_equal(gid, 0);
	assert_int_equal(lc_group_db_system.group_gid(NULL, "no-such-group-lc", &gid), -ENOENT);
	/* A uid without a passwd entry still has its primary gid. */
	assert_int_equal(lc_group_db_system.user_groups(NULL, 3999999, 777, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g[0], 777);
	free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_partial_and_batched),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_listen_connect),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_peercred_socketpair),
		cmocka_unit_test(test_system_group_db),
	};

	/* The oversize test closes the reader while the writer still sends. */
	signal(SIGPIPE, SIG_IGN);

	return cmocka_run_group_tests(tests, NULL, NULL);
}
