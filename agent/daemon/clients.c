// SPDX-License-Identifier: GPL-2.0
/*
 * Control connections: accept, identify the peer, read requests as they
 * arrive (never blocking the loop on a slow client), answer each in turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

void agent_client_free(struct client *c)
{
	if (!c)
		return;
	lc_proto_conn_close(&c->conn);
	free(c);
}

void agent_client_accept(struct agent *a)
{
	struct client *c;
	struct lc_role_policy pol = { a->cfg.admin_group, a->cfg.operator_group };
	struct lc_error e;

	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	if (lc_proto_accept(a->listen_fd, &c->conn, 0, &e) < 0) {
		if (e.code != -ETIMEDOUT)
			lc_warn("control socket: %s", e.msg);
		free(c);
		return;
	}
	if (a->nclients >= LC_AGENT_MAX_CLIENTS) {
		lc_warn("control socket: %d connections already open; refusing another",
			LC_AGENT_MAX_CLIENTS);
		agent_client_free(c);
		return;
	}
	if (lc_proto_peer(c->conn.fd, &c->peer, &e) < 0) {
		lc_warn("control socket: %s", e.msg);
		agent_client_free(c);
		return;
	}
	/* A database error leaves the role NONE: refused, never guessed. */
	if (lc_role_resolve(&c->peer, &pol, a->groups, &c->role, &e) < 0) {
		lc_warn("control socket: peer uid %u: %s", (unsigned int)c->peer.uid, e.msg);
		c->role = LC_ROLE_NONE;
	}
	lc_debug("connection from pid %d uid %u: role %s", (int)c->peer.pid,
		 (unsigned int)c->peer.uid, lc_role_name(c->role));
	a->clients[a->nclients++] = c;
}

static bool reply(struct client *c, json_object *msg)
{
	struct lc_error e;
	int r;

	if (!msg)
		return false;
	c->conn.timeout_ms = LC_AGENT_SEND_TIMEOUT_MS;
	r = lc_proto_send(&c->conn, msg, &e);
	json_object_put(msg);
	if (r < 0) {
		lc_debug("reply to uid %u not sent: %s", (unsigned int)c->peer.uid, e.msg);
		return false;
	}
	return true;
}

bool agent_client_serve(struct agent *a, struct client *c)
{
	for (;;) {
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
			reply(c, lc_proto_reply_error(-1, &e));
			return false;
		}
		if (r == -EBADMSG) {
			if (!reply(c, lc_proto_reply_error(-1, &e)))
				return false;
			continue;
		}
		if (r < 0)
			return false;
		if (!reply(c, agent_handle(a, c, msg))) {
			json_object_put(msg);
			return false;
		}
		json_object_put(msg);
		if (a->stop)
			return true;
	}
}
