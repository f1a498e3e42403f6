// SPDX-License-Identifier: GPL-2.0
/*
 * Control socket protocol: newline-delimited JSON over a Unix stream
 * socket, and SO_PEERCRED roles.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define READ_CHUNK (64 * 1024)

/* ---- connection ---- */

void lc_proto_conn_init(struct lc_proto_conn *c, int fd, int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	c->max_msg = LC_PROTO_MAX_MSG;
}

void lc_proto_conn_close(struct lc_proto_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for @events until @deadline (< 0: forever).  0, -ETIMEDOUT or errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int t = -1, r;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			t = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(&p, 1, t);
		if (r > 0)
			return 0;	/* readable, writable, HUP or ERR: the I/O call tells */
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

static int write_all(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline);

			if (r < 0)
				return r;
			continue;
		}
		return w < 0 ? -errno : -EIO;
	}
	return 0;
}

int lc_proto_send(struct lc_proto_conn *c, struct json_object *msg, struct lc_error *err)
{
	int64_t deadline = deadline_of(c->timeout_ms);
	const char *s;
	size_t len;
	int r;

	if (!json_object_is_type(msg, json_type_object))
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "a protocol message must be a JSON object");
	s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!s)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory serialising a message");
	if (len + 1 > c->max_msg)
		return lc_err(err, -EMSGSIZE, LC_ERRC_INVALID,
			      "message of %zu bytes exceeds the protocol limit of %zu bytes",
			      len + 1, c->max_msg);
	r = write_all(c->fd, s, len, deadline);
	if (!r)
		r = write_all(c->fd, "\n", 1, deadline);
	if (r == -ETIMEDOUT)
		return lc_err(err, r, LC_ERRC_TRANSIENT,
			      "sending on the control socket timed out after %d ms", c->timeout_ms);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_TRANSIENT, "sending on the control socket failed: %s",
			      strerror(-r));
	return 0;
}

int lc_proto_parse(const char *line, size_t len, struct json_object **msg, struct lc_error *err)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error je;
	size_t end;

	*msg = NULL;
	if (memchr(line, '\0', len))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "malformed message: it contains a NUL byte; expected one JSON object per line");
	tok = json_tokener_new();
	if (!tok)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT
#ifdef JSON_TOKENER_VALIDATE_UTF8
				    | JSON_TOKENER_VALIDATE_UTF8
#endif
	);
	o = json_tokener_parse_ex(tok, line, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!o && je == json_tokener_continue && end == len) {
		/* The line is complete: a bare number is only finished by what
		 * follows it, so give the tokener a blank to end on. */
		o = json_tokener_parse_ex(tok, " ", 1);
		je = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);
	if (!o && je == json_tokener_continue)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "malformed message: the JSON text ends early (%zu bytes); expected one complete JSON object per line",
			      len);
	if (je != json_tokener_success || !o) {
		json_object_put(o);
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "malformed message: %s at byte %zu; expected one JSON object per line",
			      json_tokener_error_desc(je), end);
	}
	while (end < len && (line[end] == ' ' || line[end] == '\t' || line[end] == '\r'))
		end++;
	if (end != len) {
		json_object_put(o);
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "malformed message: unexpected data after the JSON object at byte %zu",
			      end);
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "malformed message: it is a JSON %s, expected an object",
			      json_type_to_name(json_object_get_type(o)));
	}
	*msg = o;
	return 0;
}

int lc_proto_recv(struct lc_proto_conn *c, struct json_object **msg, struct lc_error *err)
{
	int64_t deadline = deadline_of(c->timeout_ms);
	size_t scanned = 0;

	*msg = NULL;
	for (;;) {
		char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
		ssize_t n;
		size_t want;
		int r;

		if (nl) {
			size_t line = (size_t)(nl - c->buf);

			if (line + 1 > c->max_msg)
				break;
			r = lc_proto_parse(c->buf, line, msg, err);
			memmove(c->buf, nl + 1, c->len - line - 1);
			c->len -= line + 1;
			return r;
		}
		scanned = c->len;
		if (c->len >= c->max_msg)
			break;
		if (c->cap - c->len < READ_CHUNK && c->cap < c->max_msg) {
			size_t ncap = c->cap ? c->cap * 2 : READ_CHUNK;
			char *b;

			if (ncap > c->max_msg)
				ncap = c->max_msg;
			if (ncap < c->len + 1)
				ncap = c->len + 1;
			b = realloc(c->buf, ncap);
			if (!b)
				return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			c->buf = b;
			c->cap = ncap;
		}
		want = c->cap - c->len;
		n = recv(c->fd, c->buf + c->len, want, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			if (c->len == 0)
				return lc_err(err, -ENODATA, LC_ERRC_TRANSIENT,
					      "the peer closed the control connection");
			return lc_err(err, -ECONNRESET, LC_ERRC_TRANSIENT,
				      "the peer closed the control connection in the middle of a message (%zu bytes without a newline)",
				      c->len);
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return lc_err(err, -errno, LC_ERRC_TRANSIENT,
				      "reading the control socket failed: %s", strerror(errno));
		r = wait_fd(c->fd, POLLIN, deadline);
		if (r == -ETIMEDOUT)
			return lc_err(err, r, LC_ERRC_TRANSIENT,
				      "no complete message on the control socket within %d ms",
				      c->timeout_ms);
		if (r < 0)
			return lc_err(err, r, LC_ERRC_TRANSIENT, "waiting on the control socket failed: %s",
				      strerror(-r));
	}
	/* Too long: the buffer is garbage now; the caller must close. */
	c->len = 0;
	return lc_err(err, -EMSGSIZE, LC_ERRC_INVALID,
		      "message exceeds the protocol limit of %zu bytes per line; closing the connection",
		      c->max_msg);
}

/* ---- sockets ---- */

static int fill_addr(const char *path, struct sockaddr_un *sa, struct lc_error *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!path || !*path || strlen(path) >= sizeof(sa->sun_path))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG,
			      "socket path \"%s\" must be 1 to %zu characters", path ? path : "",
			      sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

static int mkdir_parents(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *p;

	snprintf(buf, sizeof(buf), "%s", path);
	p = strrchr(buf, '/');
	if (!p || p == buf)
		return 0;
	*p = '\0';
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int lc_proto_listen(const char *path, mode_t mode, struct lc_error *err)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	struct stat st;
	int r;

	r = fill_addr(path, &sa, err);
	if (r < 0)
		return r;
	r = mkdir_parents(path);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_MISCONFIG,
			      "cannot create the directory of socket %s: %s", path, strerror(-r));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "socket: %s", strerror(errno));
	if (lstat(path, &st) == 0) {
		_cleanup_close_ int probe = -1;

		if (!S_ISSOCK(st.st_mode))
			return lc_err(err, -EEXIST, LC_ERRC_MISCONFIG,
				      "%s exists and is not a socket: remove it or choose another socket path",
				      path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return lc_err(err, -EADDRINUSE, LC_ERRC_MISCONFIG,
				      "another agent is already listening on %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return lc_err(err, -errno, LC_ERRC_MISCONFIG,
				      "cannot remove the stale socket %s: %s", path, strerror(errno));
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot bind %s: %s", path,
			      strerror(errno));
	if (chmod(path, mode) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		unlink(path);
		return lc_err(err, r, LC_ERRC_MISCONFIG, "cannot set up socket %s: %s", path,
			      strerror(-r));
	}
	r = fd;
	fd = -1;
	return r;
}

int lc_proto_accept(int listen_fd, struct lc_proto_conn *c, int timeout_ms, struct lc_error *err)
{
	int64_t deadline = deadline_of(timeout_ms);

	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		int r;

		if (fd >= 0) {
			lc_proto_conn_init(c, fd, LC_PROTO_TIMEOUT_MS);
			return 0;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return lc_err(err, -errno, LC_ERRC_INTERNAL, "accept: %s", strerror(errno));
		r = wait_fd(listen_fd, POLLIN, deadline);
		if (r < 0)
			return lc_err(err, r, LC_ERRC_TRANSIENT, "no connection on the control socket: %s",
				      strerror(-r));
	}
}

int lc_proto_connect(const char *path, int timeout_ms, struct lc_proto_conn *c,
		     struct lc_error *err)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	int r;

	r = fill_addr(path, &sa, err);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "socket: %s", strerror(errno));
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		if (r == -ENOENT || r == -ECONNREFUSED)
			return lc_err(err, r, LC_ERRC_TRANSIENT,
				      "cannot reach the agent at %s: %s; is lakecrypt-agent running?",
				      path, strerror(-r));
		if (r == -EACCES)
			return lc_err(err, r, LC_ERRC_MISCONFIG,
				      "no permission to connect to %s: join the group that owns it (the agent's operator_group, lakecrypt by default; admins by group need it too) or run as root",
				      path);
		return lc_err(err, r, LC_ERRC_TRANSIENT, "connecting to %s failed: %s", path,
			      strerror(-r));
	}
	lc_proto_conn_init(c, fd, timeout_ms);
	fd = -1;
	return 0;
}

/* ---- messages ---- */

struct json_object *lc_proto_request_new(const char *op, struct json_object *args, int64_t id)
{
	struct json_object *o = json_object_new_object();

	if (!o) {
		json_object_put(args);
		return NULL;
	}
	json_object_object_add(o, "op", json_object_new_string(op));
	json_object_object_add(o, "args", args ? args : json_object_new_object());
	json_object_object_add(o, "id", json_object_new_int64(id));
	return o;
}

int lc_proto_request_parse(struct json_object *msg, struct lc_proto_request *req,
			   struct lc_error *err)
{
	struct json_object *v;

	memset(req, 0, sizeof(*req));
	req->id = -1;
	if (!json_object_is_type(msg, json_type_object))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID, "bad request: expected a JSON object");
	if (json_object_object_get_ex(msg, "id", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad request: \"id\" must be an integer >= 0");
		req->id = json_object_get_int64(v);
	}
	json_object_object_foreach(msg, key, val) {
		(void)val;
		if (strcmp(key, "op") && strcmp(key, "args") && strcmp(key, "id"))
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad request: unknown member \"%.64s\"; a request has only \"op\", \"args\" and \"id\"",
				      key);
	}
	if (req->id < 0)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad request: \"id\" is missing; expected {\"op\": ..., \"args\": {...}, \"id\": n}");
	if (!json_object_object_get_ex(msg, "op", &v))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad request: \"op\" is missing; expected {\"op\": ..., \"args\": {...}, \"id\": n}");
	if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad request: \"op\" must be a non-empty string");
	req->op = json_object_get_string(v);
	if (json_object_object_get_ex(msg, "args", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad request: \"args\" must be a JSON object");
		req->args = v;
	} else {
		req->args = json_object_new_object();
		if (!req->args)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		/* Owned by @msg from here, like a received "args". */
		json_object_object_add(msg, "args", req->args);
	}
	return 0;
}

static struct json_object *reply_new(int64_t id, bool ok)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "id", id < 0 ? NULL : json_object_new_int64(id));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	return o;
}

struct json_object *lc_proto_reply_ok(int64_t id, struct json_object *result)
{
	struct json_object *o = reply_new(id, true);

	if (!o) {
		json_object_put(result);
		return NULL;
	}
	json_object_object_add(o, "result", result ? result : json_object_new_object());
	return o;
}

struct json_object *lc_proto_reply_error(int64_t id, const struct lc_error *e)
{
	struct json_object *o = reply_new(id, false), *eo;
	int code = e && e->code < 0 ? e->code : -EIO;

	if (!o)
		return NULL;
	eo = json_object_new_object();
	json_object_object_add(eo, "code", json_object_new_int(code));
	json_object_object_add(eo, "class",
			       json_object_new_string(lc_err_class_name(e ? e->cls : LC_ERRC_INTERNAL)));
	json_object_object_add(eo, "message",
			       json_object_new_string(e && e->msg[0] ? e->msg : strerror(-code)));
	json_object_object_add(o, "error", eo);
	return o;
}

int lc_proto_class_from_name(const char *name, enum lc_err_class *cls)
{
	for (int c = LC_ERRC_NONE; c <= LC_ERRC_REFUSED; c++)
		if (!strcmp(name, lc_err_class_name((enum lc_err_class)c))) {
			*cls = (enum lc_err_class)c;
			return 0;
		}
	return -EINVAL;
}

int lc_proto_reply_parse(struct json_object *msg, struct lc_proto_reply *rep,
			 struct lc_error *remote, struct lc_error *err)
{
	struct json_object *v, *code, *cls, *text;
	enum lc_err_class c;

	memset(rep, 0, sizeof(*rep));
	rep->id = -1;
	if (!json_object_is_type(msg, json_type_object))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID, "bad reply: expected a JSON object");
	json_object_object_foreach(msg, key, val) {
		(void)val;
		if (strcmp(key, "id") && strcmp(key, "ok") && strcmp(key, "result") &&
		    strcmp(key, "error"))
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad reply: unknown member \"%.64s\"", key);
	}
	if (!json_object_object_get_ex(msg, "id", &v))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID, "bad reply: \"id\" is missing");
	if (v) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad reply: \"id\" must be an integer >= 0 or null");
		rep->id = json_object_get_int64(v);
	}
	if (!json_object_object_get_ex(msg, "ok", &v) || !json_object_is_type(v, json_type_boolean))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad reply: \"ok\" must be true or false");
	rep->ok = json_object_get_boolean(v);
	if (rep->ok) {
		if (json_object_object_get_ex(msg, "error", NULL))
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad reply: \"ok\": true with an \"error\"");
		if (!json_object_object_get_ex(msg, "result", &v) ||
		    !json_object_is_type(v, json_type_object))
			return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
				      "bad reply: \"result\" must be an object when \"ok\" is true");
		rep->result = v;
		return 0;
	}
	if (json_object_object_get_ex(msg, "result", NULL))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad reply: \"ok\": false with a \"result\"");
	if (!json_object_object_get_ex(msg, "error", &v) || !json_object_is_type(v, json_type_object) ||
	    !json_object_object_get_ex(v, "code", &code) || !json_object_is_type(code, json_type_int) ||
	    !json_object_object_get_ex(v, "class", &cls) || !json_object_is_type(cls, json_type_string) ||
	    !json_object_object_get_ex(v, "message", &text) || !json_object_is_type(text, json_type_string))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad reply: \"error\" must be {\"code\": -errno, \"class\": ..., \"message\": ...}");
	if (json_object_get_int64(code) >= 0 || json_object_get_int64(code) < -4095)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "bad reply: error code %" PRId64 " is not a negative errno",
			      (int64_t)json_object_get_int64(code));
	if (lc_proto_class_from_name(json_object_get_string(cls), &c) < 0)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID, "bad reply: unknown error class \"%.32s\"",
			      json_object_get_string(cls));
	return lc_err(remote, (int)json_object_get_int64(code), c, "%s", json_object_get_string(text));
}

static atomic_llong next_id;

int lc_proto_call(struct lc_proto_conn *c, const char *op, struct json_object *args,
		  struct json_object **result, struct lc_error *err)
{
	int64_t id = (int64_t)atomic_fetch_add(&next_id, 1);
	struct json_object *req = lc_proto_request_new(op, args, id), *rep = NULL;
	struct lc_proto_reply r;
	struct lc_error remote = { 0 };
	int ret;

	*result = NULL;
	if (!req)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	ret = lc_proto_send(c, req, err);
	json_object_put(req);
	if (ret < 0)
		return ret;
	ret = lc_proto_recv(c, &rep, err);
	if (ret == -ENODATA)
		return lc_err(err, -ECONNRESET, LC_ERRC_TRANSIENT,
			      "the agent closed the connection without answering \"%s\"", op);
	if (ret < 0)
		return ret;
	ret = lc_proto_reply_parse(rep, &r, &remote, err);
	if (ret < 0 && !remote.code) {
		json_object_put(rep);
		return ret;
	}
	if (r.id >= 0 && r.id != id) {
		json_object_put(rep);
		return lc_err(err, -EBADMSG, LC_ERRC_INTERNAL,
			      "the agent answered request %" PRId64 " while %" PRId64 " was expected",
			      r.id, id);
	}
	if (!r.ok) {
		json_object_put(rep);
		if (err)
			*err = remote;
		return remote.code;
	}
	*result = json_object_get(r.result);
	json_object_put(rep);
	return 0;
}

/* ---- peers and roles ---- */

int lc_proto_peer(int fd, struct lc_peer *peer, struct lc_error *err)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || len != sizeof(uc))
		return lc_err(err, -errno ? -errno : -EIO, LC_ERRC_INTERNAL,
			      "cannot identify the peer (SO_PEERCRED): %s", strerror(errno));
	peer->pid = uc.pid;
	peer->uid = uc.uid;
	peer->gid = uc.gid;
	return 0;
}

static long buf_size(int name)
{
	long n = sysconf(name);

	return n > 0 ? n : 16384;
}

static int sys_user_groups(void *ctx, uid_t uid, gid_t gid, gid_t **groups, size_t *n)
{
	_cleanup_free_ char *buf = NULL;
	struct passwd pw, *res = NULL;
	size_t blen = (size_t)buf_size(_SC_GETPW_R_SIZE_MAX);
	gid_t *g = NULL;
	int r, ng = 32;
	bool have = false;

	(void)ctx;
	*groups = NULL;
	*n = 0;
	for (;;) {
		free(buf);
		buf = malloc(blen);
		if (!buf)
			return -ENOMEM;
		r = getpwuid_r(uid, &pw, buf, blen, &res);
		if (r != ERANGE)
			break;
		blen *= 2;
	}
	if (r)
		return -r;
	if (res) {
		for (;;) {
			gid_t *t = realloc(g, ((size_t)ng + 1) * sizeof(*g));
			int want = ng;

			if (!t) {
				free(g);
				return -ENOMEM;
			}
			g = t;
			if (getgrouplist(pw.pw_name, pw.pw_gid, g, &want) >= 0) {
				ng = want;
				break;
			}
			ng = want > ng ? want : ng * 2;
		}
	} else {
		g = malloc(sizeof(*g));
		if (!g)
			return -ENOMEM;
		ng = 0;
	}
	for (int i = 0; i < ng; i++)
		have |= g[i] == gid;
	if (!have)
		g[ng++] = gid;	/* room was kept for it */
	*groups = g;
	*n = (size_t)ng;
	return 0;
}

static int sys_group_gid(void *ctx, const char *name, gid_t *gid)
{
	_cleanup_free_ char *buf = NULL;
	struct group gr, *res = NULL;
	size_t blen = (size_t)buf_size(_SC_GETGR_R_SIZE_MAX);
	int r;

	(void)ctx;
	for (;;) {
		free(buf);
		buf = malloc(blen);
		if (!buf)
			return -ENOMEM;
		r = getgrnam_r(name, &gr, buf, blen, &res);
		if (r != ERANGE)
			break;
		blen *= 2;
	}
	if (r)
		return -r;
	if (!res)
		return -ENOENT;
	*gid = gr.gr_gid;
	return 0;
}

const struct lc_group_db lc_group_db_system = {
	.user_groups = sys_user_groups,
	.group_gid = sys_group_gid,
};

/* 1 if a member, 0 if not (or no such group), negative errno on failure. */
static int member(const struct lc_group_db *db, const char *group, const gid_t *groups, size_t n,
		  struct lc_error *err)
{
	gid_t g;
	int r;

	if (!group || !*group)
		return 0;
	r = db->group_gid(db->ctx, group, &g);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "looking up group %s failed: %s", group,
			      strerror(-r));
	for (size_t i = 0; i < n; i++)
		if (groups[i] == g)
			return 1;
	return 0;
}

int lc_role_resolve(const struct lc_peer *peer, const struct lc_role_policy *pol,
		    const struct lc_group_db *db, enum lc_role *role, struct lc_error *err)
{
	_cleanup_free_ gid_t *groups = NULL;
	size_t n = 0;
	int r;

	*role = LC_ROLE_NONE;
	if (peer->uid == 0) {
		*role = LC_ROLE_ADMIN;
		return 0;
	}
	r = db->user_groups(db->ctx, peer->uid, peer->gid, &groups, &n);
	if (r == -ENOENT) {
		/* No passwd entry: only the primary gid counts. */
		groups = malloc(sizeof(*groups));
		if (!groups)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		groups[0] = peer->gid;
		n = 1;
	} else if (r < 0) {
		return lc_err(err, r, LC_ERRC_INTERNAL, "looking up the groups of uid %u failed: %s",
			      (unsigned int)peer->uid, strerror(-r));
	}
	r = member(db, pol->admin_group, groups, n, err);
	if (r < 0)
		return r;
	if (r) {
		*role = LC_ROLE_ADMIN;
		return 0;
	}
	r = member(db, pol->operator_group, groups, n, err);
	if (r < 0)
		return r;
	if (r)
		*role = LC_ROLE_OPERATOR;
	return 0;
}

const char *lc_role_name(enum lc_role role)
{
	switch (role) {
	case LC_ROLE_ADMIN:
		return "admin";
	case LC_ROLE_OPERATOR:
		return "operator";
	case LC_ROLE_NONE:
		break;
	}
	return "none";
}
