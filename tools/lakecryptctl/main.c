// SPDX-License-Identifier: GPL-2.0
/*
 * lakecryptctl: the admin CLI of lakecrypt.  Parses the command line,
 * sends one request to lakecrypt-agent (Documentation/agent-protocol.md)
 * or runs a local command (dump, table), prints the result and exits with
 * a documented code (Documentation/lakecryptctl.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "proto.h"

static void fail(const char *topic, const char *msg)
{
	fprintf(stderr, "%s: %s%s%s\n", LC_CTL_PROG, topic && *topic ? topic : "",
		topic && *topic ? ": " : "", msg);
}

/* format without --force: ask on the terminal, as cryptsetup does. */
static int confirm(const struct lc_ctl_cmd *cmd)
{
	char answer[16];

	bool shred = !strcmp(cmd->topic, "shred");

	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s: %s: refusing to %s %s without confirmation: standard input is not a terminal; pass --batch to %s without asking\n",
			LC_CTL_PROG, cmd->topic, shred ? "shred segments of" : "overwrite", cmd->path,
			cmd->topic);
		return LC_CTL_EXIT_USAGE;
	}
	fprintf(stderr, "WARNING: this %s %s irrevocably.\n"
		"Are you sure? (Type 'yes' in capital letters): ",
		shred ? "destroys the data of the named segments of volume" : "overwrites the data on",
		cmd->path);
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin) || strcmp(answer, "YES\n")) {
		fprintf(stderr, "Operation aborted: nothing was written.\n");
		return LC_CTL_EXIT_FAILED;
	}
	return LC_CTL_EXIT_OK;
}

static const char *class_hint(const char *cls)
{
	if (!strcmp(cls, "refused"))
		return " (refused: your role does not allow this operation)";
	if (!strcmp(cls, "denied"))
		return " (denied by the KMS)";
	if (!strcmp(cls, "transient"))
		return " (KMS unavailable: retry later)";
	return "";
}

#define AUDIT_PAGE_LINES	10000	/* the agent's most per call */

/*
 * audit --lines N: the agent answers at most AUDIT_PAGE_LINES records (and
 * 256 KiB of them) per call, newest page first, each with "next_before"
 * to page further back.  Ask on one connection until N records or the
 * log's start; *@result is {"records": [...]} oldest first.  0, or the
 * agent's or the connection's error in @e.
 */
static int audit_pages(struct lc_proto_conn *conn, struct json_object *args,
		       struct json_object **result, struct lc_error *e)
{
	struct json_object *lines = NULL, **pages = NULL, *all;
	uint64_t want = 50, got = 0, before = 0;
	size_t n = 0;
	int r = 0;

	if (json_object_object_get_ex(args, "lines", &lines))
		want = (uint64_t)json_object_get_int64(lines);
	while (got < want) {
		uint64_t ask = want - got < AUDIT_PAGE_LINES ? want - got : AUDIT_PAGE_LINES;
		struct json_object *a = json_object_new_object(), *page = NULL, *recs, *next, **np;

		json_object_object_add(a, "lines", json_object_new_uint64(ask));
		if (n)
			json_object_object_add(a, "before", json_object_new_uint64(before));
		r = lc_proto_call(conn, "audit.tail", a, &page, e);
		if (r < 0)
			break;
		np = realloc(pages, (n + 1) * sizeof(*pages));
		if (!np || !json_object_object_get_ex(page, "records", &recs) ||
		    !json_object_is_type(recs, json_type_array)) {
			json_object_put(page);
			r = lc_err(e, np ? -EBADMSG : -ENOMEM, LC_ERRC_INTERNAL,
				   np ? "the agent sent audit.tail without \"records\"" : "out of memory");
			pages = np ? np : pages;
			break;
		}
		pages = np;
		pages[n++] = page;
		got += json_object_array_length(recs);
		/* An operator's page may be empty (records of other workspaces
		 * filtered out) with more further back: go on while there is. */
		if (!json_object_object_get_ex(page, "next_before", &next) || !next)
			break;
		before = (uint64_t)json_object_get_int64(next);
	}
	all = json_object_new_array();
	/* Pages came newest first; records inside a page oldest first. */
	for (size_t i = n; r == 0 && i-- > 0;) {
		struct json_object *recs;
		size_t len, skip = 0;

		json_object_object_get_ex(pages[i], "records", &recs);
		len = json_object_array_length(recs);
		if (i == n - 1 && got > want)
			skip = (size_t)(got - want);
		for (size_t j = skip; j < len; j++)
			json_object_array_add(all, json_object_get(json_object_array_get_idx(recs, j)));
	}
	for (size_t i = 0; i < n; i++)
		json_object_put(pages[i]);
	free(pages);
	if (r < 0) {
		json_object_put(all);
		return r;
	}
	*result = json_object_new_object();
	json_object_object_add(*result, "records", all);
	return 0;
}

static int run_audit(struct lc_ctl_cmd *cmd)
{
	struct lc_proto_conn conn;
	struct lc_error e = { 0 };
	struct json_object *result = NULL;
	int r, rc;

	r = lc_proto_connect(cmd->socket, cmd->timeout_ms, &conn, &e);
	if (r < 0) {
		fail(NULL, e.msg);
		return lc_ctl_exit_for_connect(r);
	}
	r = audit_pages(&conn, cmd->args, &result, &e);
	lc_proto_conn_close(&conn);
	if (r < 0) {
		char msg[sizeof(e.msg) + 64];

		snprintf(msg, sizeof(msg), "%s%s", e.msg, class_hint(lc_err_class_name(e.cls)));
		fail(cmd->topic, msg);
		return r == -ETIMEDOUT || r == -ECONNRESET ? LC_CTL_EXIT_UNREACHABLE :
		       lc_ctl_exit_for_class(lc_err_class_name(e.cls));
	}
	r = cmd->json ? lc_ctl_render_json(stdout, result) :
			lc_ctl_render_human(stdout, cmd->render, result);
	rc = r < 0 ? LC_CTL_EXIT_FAILED : LC_CTL_EXIT_OK;
	json_object_put(result);
	return rc;
}

/* One request to the agent.  @st is NULL, or (open, cache: see
 * ctl-retry.c) where to say that the failure may be retried and to keep
 * the --json error object instead of printing it. */
static int run_agent(struct lc_ctl_cmd *cmd, struct lc_ctl_retry *st, void *ctx)
{
	struct lc_proto_conn conn;
	struct lc_error e = { 0 };
	struct lc_ctl_error re;
	struct json_object *req, *reply = NULL, *result = NULL;
	const int64_t id = 1;
	int r, rc;

	(void)ctx;
	r = lc_proto_connect(cmd->socket, cmd->timeout_ms, &conn, &e);
	if (r < 0) {
		fail(NULL, e.msg);
		if (st)
			st->again = lc_ctl_connect_retryable(r, cmd->socket);
		return lc_ctl_exit_for_connect(r);
	}
	/* cmd->args stays with cmd (lc_ctl_cmd_free()) for another attempt */
	req = lc_proto_request_new(cmd->op, json_object_get(cmd->args), id);
	if (!req) {
		lc_proto_conn_close(&conn);
		fail(NULL, "out of memory");
		return LC_CTL_EXIT_FAILED;
	}
	r = lc_proto_send(&conn, req, &e);
	json_object_put(req);
	if (r == 0)
		r = lc_proto_recv(&conn, &reply, &e);
	lc_proto_conn_close(&conn);
	if (r == -ENODATA || r == -ECONNRESET || r == -EPIPE) {
		fail(cmd->topic, "the agent closed the connection without answering: see its log");
		/* An agent restarted (or crashed) in the middle of the request:
		 * open and cache are idempotent (already_open), so try again. */
		if (st)
			st->again = true;
		return LC_CTL_EXIT_UNREACHABLE;
	}
	if (r == -EBADMSG || r == -EMSGSIZE) {
		char msg[LC_ERROR_MSG_MAX + 64];

		snprintf(msg, sizeof(msg), "the agent sent a malformed reply: %s", e.msg);
		fail(cmd->topic, msg);
		return LC_CTL_EXIT_FAILED;
	}
	if (r < 0) {
		char msg[LC_ERROR_MSG_MAX + 64];

		snprintf(msg, sizeof(msg), "no answer from the agent: %s", e.msg);
		fail(cmd->topic, r == -ETIMEDOUT ?
		     "no answer from the agent in time (see --timeout)" : msg);
		return LC_CTL_EXIT_UNREACHABLE;
	}

	r = lc_ctl_reply_check(reply, id, &result, &re);
	if (r < 0) {
		fail(cmd->topic, re.msg);
		rc = LC_CTL_EXIT_FAILED;
	} else if (r == 1) {
		char msg[sizeof(re.msg) + 64];
		struct json_object *err;

		snprintf(msg, sizeof(msg), "%s%s", re.msg, class_hint(re.cls));
		fail(cmd->topic, msg);
		if (st) {
			st->again = lc_ctl_class_retryable(re.cls);
			json_object_put(st->err);
			st->err = NULL;
		}
		if (cmd->json && json_object_object_get_ex(reply, "error", &err)) {
			if (st)
				st->err = json_object_get(err);
			else
				lc_ctl_render_json(stdout, err);
		}
		rc = lc_ctl_exit_for_class(re.cls);
	} else {
		struct json_object *nf, *closed;

		r = cmd->json ? lc_ctl_render_json(stdout, result) :
				lc_ctl_render_human(stdout, cmd->render, result);
		rc = r < 0 ? LC_CTL_EXIT_FAILED : LC_CTL_EXIT_OK;
		/* close --if-open of a name nothing is open under */
		if (!strcmp(cmd->op, "volume.close") && json_object_is_type(result, json_type_object) &&
		    json_object_object_get_ex(result, "closed", &closed) &&
		    !json_object_get_boolean(closed)) {
			struct json_object *nm = NULL;
			char msg[160];

			json_object_object_get_ex(result, "name", &nm);
			snprintf(msg, sizeof(msg), "no open volume is called \"%.63s\": nothing to close (--if-open)",
				 nm && json_object_is_type(nm, json_type_string) ? json_object_get_string(nm) : "?");
			fail(cmd->topic, msg);
		}
		/* rewrap --all, workspace rekey: any volume that failed */
		if (cmd->render == LC_R_RESULTS && json_object_object_get_ex(result, "failed", &nf) &&
		    json_object_get_int64(nf) > 0) {
			fail(cmd->topic, "some volumes failed (see the list)");
			rc = LC_CTL_EXIT_FAILED;
		}
	}
	json_object_put(reply);
	return rc;
}

/* open, cache: run_agent() until it succeeds or --timeout runs out. */
static int run_retried(struct lc_ctl_cmd *cmd)
{
	struct lc_ctl_retry st = { 0 };
	int rc = lc_ctl_retry(cmd, run_agent, NULL, &st, stderr);

	if (st.err && rc != LC_CTL_EXIT_OK)
		lc_ctl_render_json(stdout, st.err);
	json_object_put(st.err);
	return rc;
}

int main(int argc, char *argv[])
{
	struct lc_ctl_cmd cmd;
	struct lc_error e = { 0 };
	char err[1024], hint[96], sockbuf[108];
	int rc;

	rc = lc_ctl_parse(argc, argv, &cmd, err, sizeof(err));
	if (rc != LC_CTL_EXIT_OK) {
		lc_ctl_try_hint(cmd.topic, hint, sizeof(hint));
		fprintf(stderr, "%s: %s\n%s\n", LC_CTL_PROG, err, hint);
		lc_ctl_cmd_free(&cmd);
		return rc;
	}
	switch (cmd.action) {
	case LC_CTL_HELP:
		rc = lc_ctl_help(stdout, cmd.topic) < 0 ? LC_CTL_EXIT_USAGE : LC_CTL_EXIT_OK;
		break;
	case LC_CTL_VERSION:
		printf("%s %s\n", LC_CTL_PROG, LC_CTL_VERSION_STR);
		break;
	case LC_CTL_DUMP:
	case LC_CTL_TABLE:
		if (lc_ctl_local(&cmd, stdout, &e) < 0) {
			fail(cmd.topic, e.msg);
			rc = LC_CTL_EXIT_FAILED;
		}
		break;
	case LC_CTL_AGENT:
		/* no --socket: the one agent.conf gives the agent (ctl-conf.c) */
		if (cmd.socket == (const char *)LC_PROTO_DEFAULT_SOCKET) {
			if (lc_ctl_conf_socket(sockbuf, sizeof(sockbuf), err, sizeof(err)) < 0) {
				fail(NULL, err);
				rc = LC_CTL_EXIT_FAILED;
				break;
			}
			cmd.socket = sockbuf;
		}
		if (cmd.confirm)
			rc = confirm(&cmd);
		if (rc == LC_CTL_EXIT_OK)
			rc = cmd.op && !strcmp(cmd.op, "audit.tail") ? run_audit(&cmd) :
			     lc_ctl_op_retries(cmd.op) ? run_retried(&cmd) : run_agent(&cmd, NULL, NULL);
		break;
	}
	lc_ctl_cmd_free(&cmd);
	if (fflush(stdout) != 0 && rc == LC_CTL_EXIT_OK) {
		fail(NULL, "cannot write the output");
		rc = LC_CTL_EXIT_FAILED;
	}
	return rc;
}
