// SPDX-License-Identifier: GPL-2.0
/*
 * Control connections, on the loop thread: accept within the limits (all
 * connections, and per peer uid), read requests as they arrive without
 * waiting, run each on a worker thread, queue its reply and send it as
 * the peer reads (POLLOUT).  A connection that sends half a request and
 * stops, or stays idle, is closed after idle_timeout_s; one that stops
 * reading its replies, after send_timeout_s.  None of them delays another.
 * A connection whose peer hangs up while its request runs stays listed,
 * counted against both limits, until its worker ends: the limits bound
 * the request threads, not only the sockets.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

void agent_client_free(struct client *c)
{
	if (!c)
		return;
	lc_proto_conn_close(&c->conn);
	json_object_put(c->request);
	json_object_put(c->reply);
	free(c->out);
	free(c);
}

static void client_unlist(struct agent *a, struct client *c)
{
	for (size_t i = 0; i < a->nclients; i++)
		if (a->clients[i] == c) {
			a->clients[i] = a->clients[--a->nclients];
			break;
		}
}

void agent_client_drop(struct agent *a, struct client *c)
{
	if (!c->busy) {
		client_unlist(a, c);
		agent_client_free(c);
		return;
	}
	if (c->dead)
		return;
	/*
	 * The worker still has it: the connection closes now, but the client
	 * stays listed -- counted against max_clients and its uid's
	 * max_clients_per_uid -- until the worker ends, when its reply is
	 * thrown away (agent_clients_collect()).  Otherwise a peer that sends
	 * a request that waits and hangs up could start thread after thread.
	 * A worker waiting on another operation sees the flag at once.
	 */
	atomic_store(&c->gone, true);
	lc_proto_conn_close(&c->conn);
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->stalled_ms = 0;
	c->dead = true;
	agent_relock(a);
	pthread_cond_broadcast(&a->changed);
	agent_unlock(a);
}

void agent_clients_close_all(struct agent *a)
{
	while (a->nclients) {
		struct client *c = a->clients[0];

		client_unlist(a, c);
		if (!c->busy) {
			agent_client_free(c);
			continue;
		}
		/* Freed by agent_clients_collect() when its worker ends. */
		if (!c->dead) {
			atomic_store(&c->gone, true);
			lc_proto_conn_close(&c->conn);
			c->dead = true;
		}
	}
	if (a->sync_ready) {
		agent_relock(a);
		pthread_cond_broadcast(&a->changed);
		agent_unlock(a);
	}
}

/* Tell a refused peer why, if its socket takes it at once; never wait. */
static void refuse_conn(struct client *c, const struct lc_error *e)
{
	json_object *rep = lc_proto_reply_error(-1, e);
	size_t len = 0;
	const char *s = rep ? json_object_to_json_string_length(rep, JSON_C_TO_STRING_PLAIN, &len) :
			      NULL;

	if (s && send(c->conn.fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
		(void)send(c->conn.fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	json_object_put(rep);
	agent_client_free(c);
}

static void accept_one(struct agent *a, struct client *c)
{
	struct lc_error e;
	size_t same = 0, orphans = 0, cap = a->cfg.max_clients;

	if (lc_proto_peer(c->conn.fd, &c->peer, &e) < 0) {
		lc_warn("control socket: %s", e.msg);
		agent_client_free(c);
		return;
	}
	/* Clients whose peers hung up while their requests still run count
	 * too (agent_client_drop()): their threads do. */
	for (size_t i = 0; i < a->nclients; i++) {
		same += a->clients[i]->peer.uid == c->peer.uid;
		orphans += a->clients[i]->dead;
	}
	/* Root and admins keep a few connections no one else can take: four
	 * local uids filling max_clients must not lock an admin out of the
	 * kill switch.  The role is looked up only when the rest is full. */
	if (c->peer.uid == 0) {
		cap += LC_AGENT_ROOT_RESERVE;
	} else if (a->nclients >= cap) {
		struct lc_role_policy pol = { a->cfg.admin_group, a->cfg.operator_group };
		enum lc_role role = LC_ROLE_NONE;
		struct lc_error re;

		if (lc_role_resolve(&c->peer, &pol, a->groups, &role, &re) == 0 &&
		    role == LC_ROLE_ADMIN)
			cap += LC_AGENT_ROOT_RESERVE;
	}
	if (a->nclients >= cap || a->nclients >= LC_AGENT_CONN_MAX) {
		lc_err(&e, -EUSERS, LC_ERRC_TRANSIENT,
		       "the agent has %zu connections open (%zu of them requests still running for clients that hung up), its limit (max_clients): try again later",
		       a->nclients, orphans);
		lc_warn("control socket: refused a connection from uid %u (pid %d): %zu connections open, %zu of them hung up with a request running",
			(unsigned int)c->peer.uid, (int)c->peer.pid, a->nclients, orphans);
		refuse_conn(c, &e);
		return;
	}
	if (c->peer.uid != 0 && same >= a->cfg.max_clients_per_uid) {
		lc_err(&e, -EUSERS, LC_ERRC_TRANSIENT,
		       "uid %u already has %zu connections open, its limit (max_clients_per_uid; a connection that hung up counts until its request ends): try again later",
		       (unsigned int)c->peer.uid, same);
		lc_warn("control socket: refused a connection from uid %u (pid %d): it has %zu open",
			(unsigned int)c->peer.uid, (int)c->peer.pid, same);
		refuse_conn(c, &e);
		return;
	}
	c->a = a;
	c->last_ms = agent_now_ms();
	lc_debug("connection from pid %d uid %u", (int)c->peer.pid, (unsigned int)c->peer.uid);
	a->clients[a->nclients++] = c;
}

void agent_client_accept(struct agent *a)
{
	for (;;) {
		struct client *c = calloc(1, sizeof(*c));
		struct lc_error e;

		if (!c)
			return;
		if (lc_proto_accept(a->listen_fd, &c->conn, 0, &e) < 0) {
			if (e.code != -ETIMEDOUT)
				lc_warn("control socket: %s", e.msg);
			free(c);
			return;
		}
		accept_one(a, c);
	}
}

/*
 * Queue @msg (taken) as @c's reply.  A reply over the protocol limit is
 * replaced by an error saying so: the client learns why, the connection
 * lives on.
 */
static bool queue(struct agent *a, struct client *c, json_object *msg)
{
	const char *s;
	size_t len = 0;

	if (!msg)
		return false;
	s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (s && len + 1 > c->conn.max_msg) {
		struct lc_error e;
		json_object *id = NULL;
		int64_t rid = -1;

		if (json_object_object_get_ex(msg, "id", &id) && id)
			rid = json_object_get_int64(id);
		a->oversized_replies++;
		lc_warn("reply to uid %u is %zu bytes, over the protocol limit of %zu: sent an error instead",
			(unsigned int)c->peer.uid, len + 1, c->conn.max_msg);
		lc_err(&e, -EMSGSIZE, LC_ERRC_INVALID,
		       "the reply would be %zu bytes, over the protocol limit of %zu: ask for less (audit.tail pages with \"before\")",
		       len + 1, c->conn.max_msg);
		json_object_put(msg);
		return queue(a, c, lc_proto_reply_error(rid, &e));
	}
	c->out = s ? malloc(len + 1) : NULL;
	if (!c->out) {
		json_object_put(msg);
		return false;
	}
	memcpy(c->out, s, len);
	c->out[len] = '\n';
	c->out_len = len + 1;
	c->out_off = 0;
	json_object_put(msg);
	return agent_client_flush(a, c);
}

bool agent_client_flush(struct agent *a, struct client *c)
{
	while (c->out && c->out_off < c->out_len) {
		ssize_t w = send(c->conn.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			c->out_off += (size_t)w;
			c->stalled_ms = 0;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->stalled_ms)
				c->stalled_ms = agent_now_ms();
			return true;
		}
		lc_debug("reply to uid %u not sent: %s", (unsigned int)c->peer.uid,
			 strerror(w < 0 ? errno : EIO));
		return false;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->stalled_ms = 0;
	c->last_ms = agent_now_ms();
	(void)a;
	return !c->close_after;
}

bool agent_client_ready(const struct client *c)
{
	return !c->busy && !c->out && c->conn.len && memchr(c->conn.buf, '\n', c->conn.len);
}

/* The client whose request the calling thread runs (NULL: none). */
static _Thread_local struct client *current;

bool agent_request_gone(void)
{
	return current && agent_client_gone(current);
}

void agent_request_run(struct agent *a, struct client *c)
{
	uint64_t one = 1;

	current = c;
	c->reply = agent_handle(a, c, c->request);
	current = NULL;
	json_object_put(c->request);
	c->request = NULL;
	pthread_mutex_lock(&a->done_lock);
	c->done_next = a->done;
	a->done = c;
	pthread_mutex_unlock(&a->done_lock);
	if (write(a->wake_fd, &one, sizeof(one)) < 0)
		lc_error_log("cannot wake the loop: %s", strerror(errno));
}

static void *request_thread(void *arg)
{
	struct client *c = arg;
	struct agent *a = c->a;

	agent_request_run(a, c);
	agent_relock(a);
	agent_thread_done(a);
	agent_unlock(a);
	return NULL;
}

/* revoke and volume.revoked: the kill (their roles are checked as any). */
static bool kill_request(json_object *msg)
{
	json_object *op = NULL;
	const char *s;

	if (!json_object_object_get_ex(msg, "op", &op) || !json_object_is_type(op, json_type_string))
		return false;
	s = json_object_get_string(op);
	return !strcmp(s, "revoke") || !strcmp(s, "volume.revoked");
}

bool agent_client_serve(struct agent *a, struct client *c)
{
	json_object *msg = NULL;
	struct lc_error e;
	int r;

	c->conn.timeout_ms = 0;	/* take what is there, never wait */
	r = lc_proto_recv(&c->conn, &msg, &e);
	if (r == -ETIMEDOUT)
		return true;
	if (r == -ENODATA || r == -ECONNRESET || r == -ENOMEM)
		return false;
	if (r == -EMSGSIZE) {
		c->close_after = true;
		return queue(a, c, lc_proto_reply_error(-1, &e));
	}
	if (r == -EBADMSG)
		return queue(a, c, lc_proto_reply_error(-1, &e));
	if (r < 0)
		return false;
	c->request = msg;
	c->busy = true;
	c->last_ms = agent_now_ms();
	agent_relock(a);
	r = agent_spawn(a, request_thread, c);
	/* The kill switch does not depend on a new thread (reserve.c). */
	if (r < 0 && kill_request(msg) && agent_reserve_request(a, c) == 0) {
		lc_warn("cannot start a thread for a request of uid %u (%s): the reserve thread runs it",
			(unsigned int)c->peer.uid, strerror(-r));
		r = 0;
	}
	agent_unlock(a);
	if (r < 0) {
		c->busy = false;
		c->request = NULL;
		json_object_put(msg);
		lc_err(&e, r, LC_ERRC_TRANSIENT, "the agent cannot start a thread for the request (%s): try again",
		       strerror(-r));
		lc_error_log("%s", e.msg);
		return queue(a, c, lc_proto_reply_error(-1, &e));
	}
	return true;
}

void agent_clients_collect(struct agent *a)
{
	struct client *c;

	pthread_mutex_lock(&a->done_lock);
	c = a->done;
	a->done = NULL;
	pthread_mutex_unlock(&a->done_lock);
	while (c) {
		struct client *next = c->done_next;
		json_object *rep = c->reply;

		c->reply = NULL;
		c->busy = false;
		c->last_ms = agent_now_ms();
		if (c->dead) {
			json_object_put(rep);
			client_unlist(a, c);
			agent_client_free(c);
		} else if (!queue(a, c, rep)) {
			agent_client_drop(a, c);
		}
		c = next;
	}
}

int agent_clients_expire(struct agent *a)
{
	int64_t now = agent_now_ms(), idle = (int64_t)a->cfg.idle_timeout_s * 1000;
	int64_t stall = (int64_t)a->cfg.send_timeout_s * 1000, next = 1000;

	for (size_t i = 0; i < a->nclients;) {
		struct client *c = a->clients[i];
		int64_t left;

		if (c->dead) {	/* hung up, its worker still runs */
			i++;
			continue;
		}
		if (c->out && c->stalled_ms) {
			left = c->stalled_ms + stall - now;
			if (left <= 0) {
				lc_warn("uid %u (pid %d) has not read its reply for %u s: connection closed",
					(unsigned int)c->peer.uid, (int)c->peer.pid, a->cfg.send_timeout_s);
				agent_client_drop(a, c);
				continue;
			}
		} else if (!c->busy && !c->out) {
			left = c->last_ms + idle - now;
			if (left <= 0) {
				lc_info("uid %u (pid %d): connection idle for %u s: closed",
					(unsigned int)c->peer.uid, (int)c->peer.pid, a->cfg.idle_timeout_s);
				agent_client_drop(a, c);
				continue;
			}
		} else {
			left = next;
		}
		if (left < next)
			next = left;
		i++;
	}
	return (int)next;
}
