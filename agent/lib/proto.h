/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's control socket: a Unix stream socket (default
 * LC_PROTO_DEFAULT_SOCKET) carrying JSON objects, one per line.
 *
 *   request  {"op": "<name>", "args": {...}, "id": <n>}
 *            "op" (non-empty string) and "id" (integer >= 0) are required,
 *            "args" (object) is optional; any other member is an error.
 *   reply    {"id": <n>, "ok": true, "result": {...}}
 *            {"id": <n>, "ok": false,
 *             "error": {"code": -errno, "class": "<class>", "message": "..."}}
 *            "id" is null when the request was too broken to have one;
 *            "class" is one of lc_err_class_name().
 *
 * A line is at most LC_PROTO_MAX_MSG bytes including its newline; longer
 * input is refused with -EMSGSIZE and the connection should be closed
 * (the rest of the line cannot be told from the next message).
 *
 * Peers are identified by SO_PEERCRED and mapped to a role: ADMIN (uid 0
 * or a member of the admin group), OPERATOR (member of the operator
 * group), NONE (to be refused).  Membership is the peer's primary gid plus
 * getgrouplist() of its passwd entry.
 */
#ifndef LC_PROTO_H
#define LC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "lc-error.h"

#define LC_PROTO_DEFAULT_SOCKET	"/run/lakecrypt/agent.sock"
#define LC_PROTO_MAX_MSG	(1024 * 1024)
#define LC_PROTO_TIMEOUT_MS	30000

struct lc_proto_conn {
	int fd;
	int timeout_ms;		/* per send/recv; < 0: wait forever */
	size_t max_msg;		/* LC_PROTO_MAX_MSG unless set lower */
	char *buf;		/* bytes received past the last full line */
	size_t len, cap;
};

/* Wrap a connected socket (the conn owns fd from here on). */
void lc_proto_conn_init(struct lc_proto_conn *c, int fd, int timeout_ms);
void lc_proto_conn_close(struct lc_proto_conn *c);

/* Server: create the parent directory (0755) if missing, replace a stale
 * socket, bind, chmod to @mode, listen.  Returns the listening fd. */
int lc_proto_listen(const char *path, mode_t mode, struct lc_error *err);
/* Accept one connection (CLOEXEC) into @c. */
int lc_proto_accept(int listen_fd, struct lc_proto_conn *c, int timeout_ms,
		    struct lc_error *err);
/* Client: connect to @path. */
int lc_proto_connect(const char *path, int timeout_ms, struct lc_proto_conn *c,
		     struct lc_error *err);

/* Send one JSON object as one line; all or an error (-ETIMEDOUT, -EPIPE...). */
int lc_proto_send(struct lc_proto_conn *c, struct json_object *msg, struct lc_error *err);
/*
 * Receive one line and parse it as a JSON object into *@msg (caller
 * json_object_put()s it).  -ENODATA at a clean end of stream between
 * messages, -ECONNRESET if the peer stopped mid-line, -EMSGSIZE if the line
 * is too long, -EBADMSG if it is not one well-formed JSON object.
 */
int lc_proto_recv(struct lc_proto_conn *c, struct json_object **msg, struct lc_error *err);

/* Parse a line already in memory (no newline) the way lc_proto_recv does. */
int lc_proto_parse(const char *line, size_t len, struct json_object **msg,
		   struct lc_error *err);

struct lc_proto_request {
	const char *op;			/* points into the message */
	int64_t id;
	struct json_object *args;	/* borrowed; if absent, an empty object is
					 * added to the message */
};

/* Build a request; takes ownership of @args (may be NULL). */
struct json_object *lc_proto_request_new(const char *op, struct json_object *args, int64_t id);
/* Validate a received request; @req borrows from @msg.  -EBADMSG with the
 * reason; req->id is the id if it could be read, else -1. */
int lc_proto_request_parse(struct json_object *msg, struct lc_proto_request *req,
			   struct lc_error *err);

/* Build replies; @id < 0 gives "id": null.  ok takes ownership of @result
 * (NULL: an empty object). */
struct json_object *lc_proto_reply_ok(int64_t id, struct json_object *result);
struct json_object *lc_proto_reply_error(int64_t id, const struct lc_error *e);

struct lc_proto_reply {
	int64_t id;			/* -1 if null */
	bool ok;
	struct json_object *result;	/* borrowed, ok only */
};

/* Validate a received reply; on "ok": false also fill @remote with the
 * peer's error (code, class, message) and return its code. */
int lc_proto_reply_parse(struct json_object *msg, struct lc_proto_reply *rep,
			 struct lc_error *remote, struct lc_error *err);

/*
 * Client round trip: send {op, args, id}, wait for the reply with that id.
 * On success *@result is the result object (caller puts it).  A refusal or
 * failure from the agent comes back as its code with @err filled from the
 * reply.  Takes ownership of @args.
 */
int lc_proto_call(struct lc_proto_conn *c, const char *op, struct json_object *args,
		  struct json_object **result, struct lc_error *err);

/* Map a class name back to enum lc_err_class; -EINVAL if unknown. */
int lc_proto_class_from_name(const char *name, enum lc_err_class *cls);

/* ---- peers and roles ---- */

enum lc_role { LC_ROLE_NONE = 0, LC_ROLE_OPERATOR, LC_ROLE_ADMIN };

struct lc_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* SO_PEERCRED of a connected Unix socket. */
int lc_proto_peer(int fd, struct lc_peer *peer, struct lc_error *err);

/*
 * Group database access, injectable for tests.  Both return 0 or a
 * negative errno; -ENOENT for "no such user/group".
 *   user_groups: the groups of @uid (primary @gid included); *groups is
 *                malloc'd, *n its length.
 *   group_gid:   gid of the group called @name.
 */
struct lc_group_db {
	int (*user_groups)(void *ctx, uid_t uid, gid_t gid, gid_t **groups, size_t *n);
	int (*group_gid)(void *ctx, const char *name, gid_t *gid);
	void *ctx;
};

/* The system's database: getpwuid_r + getgrouplist, getgrnam_r. */
extern const struct lc_group_db lc_group_db_system;

struct lc_role_policy {
	const char *admin_group;	/* e.g. "lakecrypt-admin" */
	const char *operator_group;	/* e.g. "lakecrypt" */
};

/* Resolve @peer to a role.  A group that does not exist has no members;
 * an error of the database itself is an error (never a guess). */
int lc_role_resolve(const struct lc_peer *peer, const struct lc_role_policy *pol,
		    const struct lc_group_db *db, enum lc_role *role, struct lc_error *err);
const char *lc_role_name(enum lc_role role);

#endif /* LC_PROTO_H */
