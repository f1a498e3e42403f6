/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lakecryptctl internals, split so that the pure parts (argument parsing,
 * reply checking, exit codes, rendering, table line building) can be
 * linked by the unit tests without main() or a running agent.
 *
 *   ctl-args.c    command line -> struct lc_ctl_cmd (agent op + JSON args,
 *                 or a local action), size/number parsing, help texts
 *   ctl-output.c  reply checking, error class -> exit code, human and JSON
 *                 rendering of results
 *   ctl-local.c   dump and table: read the header locally, never keys
 *   main.c        glue: connect, call, print, exit
 *
 * The agent protocol is Documentation/agent-protocol.md.
 */
#ifndef LC_CTL_H
#define LC_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "header.h"

#define LC_CTL_VERSION_STR	LC_VERSION_STRING	/* lc-types.h */
#define LC_CTL_PROG		"lakecryptctl"
#define LC_CTL_TIMEOUT_S	30
#define LC_CTL_TIMEOUT_MAX_S	86400

/* Exit codes (documented in --help and Documentation/lakecryptctl.md). */
enum lc_ctl_exit {
	LC_CTL_EXIT_OK = 0,		/* success */
	LC_CTL_EXIT_FAILED = 1,		/* the operation failed (invalid, misconfigured, internal) */
	LC_CTL_EXIT_USAGE = 2,		/* wrong command line */
	LC_CTL_EXIT_UNREACHABLE = 3,	/* the agent cannot be reached or did not answer */
	LC_CTL_EXIT_REFUSED = 4,	/* the caller's role does not allow it */
	LC_CTL_EXIT_DENIED = 5,		/* authoritative KMS denial (key disabled, destroyed...) */
	LC_CTL_EXIT_UNAVAILABLE = 6,	/* KMS unreachable, transient: retry later */
};

enum lc_ctl_action {
	LC_CTL_AGENT,		/* send cmd->op with cmd->args to the agent */
	LC_CTL_DUMP,		/* local: print the header of cmd->path */
	LC_CTL_TABLE,		/* local: print the dm table line of cmd->path */
	LC_CTL_HELP,		/* print help for cmd->topic ("" = global) */
	LC_CTL_VERSION,		/* print the version */
};

/* How a result is shown to a person. */
enum lc_ctl_render {
	LC_R_NONE,		/* result-less operation: nothing on stdout */
	LC_R_KEY,		/* key info */
	LC_R_KEYS,		/* {"keys": [key info...]} */
	LC_R_KEYCONFIG,
	LC_R_KEYCONFIGS,	/* {"keyconfigs": [...]} */
	LC_R_BINDING,
	LC_R_BINDINGS,		/* {"workspaces": [...]} */
	LC_R_VOLUME,		/* volume info / open volume */
	LC_R_STATUS,		/* {"volumes": [...], "kms_calls": {...}} as a table */
	LC_R_STATUS_DETAIL,	/* the same, one key: value block per volume */
	LC_R_REVOKED,		/* {"revoked": [names...]} */
	LC_R_AUDIT,		/* {"records": [...]} */
	LC_R_PING,		/* {"version", "role", "uid"} */
	LC_R_CHECK,		/* {"checks": [...], "kms_calls": N} */
	LC_R_RESULTS,		/* {"results": [per volume], "done", "failed", ...} */
	LC_R_SHRED,		/* {"name", "first", "last", "zeroed", "discard", ...} */
	LC_R_REVOCATIONS,	/* {"records": [...], "revision", "prefix"} */
	LC_R_CLEARED,		/* {"cleared", "record", "kms_check", "warning"?...} */
};

struct lc_ctl_cmd {
	/* global options */
	const char *socket;		/* default LC_PROTO_DEFAULT_SOCKET */
	bool json;
	int timeout_ms;			/* < 0: wait forever */

	enum lc_ctl_action action;
	char topic[48];			/* "kms create", "format", "" (global) */

	/* LC_CTL_AGENT */
	const char *op;			/* protocol op, e.g. "kms.create" */
	struct json_object *args;	/* owned; always an object */
	enum lc_ctl_render render;
	bool confirm;			/* format without --force: ask first */

	/* LC_CTL_DUMP / LC_CTL_TABLE, and the device of format (for the prompt) */
	const char *path;
	const char *name;		/* table --name */
	const char *device;		/* table --device (detached header) */
};

/*
 * Parse argv (argv[0] is the program) into @cmd.  Returns LC_CTL_EXIT_OK,
 * or LC_CTL_EXIT_USAGE with @err holding what is wrong and what is
 * expected (no program prefix, no "Try" line); cmd->topic then names the
 * command whose --help to suggest.  Always call lc_ctl_cmd_free().
 */
int lc_ctl_parse(int argc, char *const argv[], struct lc_ctl_cmd *cmd, char *err, size_t errlen);
void lc_ctl_cmd_free(struct lc_ctl_cmd *cmd);

/* "Try 'lakecryptctl kms create --help'." for @topic ("" = global). */
void lc_ctl_try_hint(const char *topic, char *buf, size_t len);

/* Print the help of @topic ("" = global).  -ENOENT if there is no such
 * command. */
int lc_ctl_help(FILE *f, const char *topic);

/* Whole decimal number in [min, max]; no sign, no spaces, no junk. */
int lc_ctl_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Byte size: decimal number with an optional K, M, G or T suffix (binary
 * multiples, optionally followed by "iB" or "B"); overflow is an error. */
int lc_ctl_parse_size(const char *s, uint64_t *out);

/* ---- replies and exit codes ---- */

struct lc_ctl_error {
	int code;			/* negative errno from the agent */
	char cls[24];			/* the agent's class string */
	char msg[512];
};

/*
 * Check a reply to request @id.  0: ok, *@result borrowed from @reply.
 * 1: the agent said "ok": false; @e holds its error.  < 0: the reply is
 * malformed (message in @e->msg, cls "internal").  Unlike
 * lc_proto_reply_parse() it accepts any class string, "refused" included.
 */
int lc_ctl_reply_check(struct json_object *reply, int64_t id, struct json_object **result,
		       struct lc_ctl_error *e);

/* Exit code for an error class from the agent. */
int lc_ctl_exit_for_class(const char *cls);
/* Exit code for a failure to connect (negative errno). */
int lc_ctl_exit_for_connect(int code);

/* ---- rendering ---- */

/* Human output of @result (may be NULL for LC_R_NONE). */
int lc_ctl_render_human(FILE *f, enum lc_ctl_render r, struct json_object *result);
/* The exact JSON, pretty-printed, slashes unescaped, with a newline. */
int lc_ctl_render_json(FILE *f, struct json_object *result);
/* Copy @s into @out replacing control characters with '?' (terminal
 * safety for strings that come from the agent or the header). */
void lc_ctl_sanitize(const char *s, char *out, size_t len);

/* ---- local commands ---- */

/*
 * Table line for @h: key prefix "lakecrypt:<uuid>:", volume id <uuid>.
 * @device is the backing device to name in the line; @device_sectors its
 * size (0 if unknown: the full segment_count * segment_sectors is mapped).
 */
int lc_ctl_table_line(const struct lc_header *h, const char *device, uint64_t device_sectors,
		      char **line, struct lc_error *err);

/* Run dump or table (cmd->action) for cmd->path, printing to @out. */
int lc_ctl_local(const struct lc_ctl_cmd *cmd, FILE *out, struct lc_error *err);

/* ---- open / cache: retry until --timeout (ctl-retry.c) ---- */

#define LC_CTL_RETRY_FIRST_MS	250	/* first delay between attempts */
#define LC_CTL_RETRY_MAX_MS	5000	/* the delay doubles up to this */
#define LC_CTL_RETRY_LAST_MS	100	/* the last attempt at least this before --timeout ends (a quarter of it, at most 2 s) */
#define LC_CTL_RETRY_QUIET	12	/* retries said one by one; then every 12th */
#define LC_CTL_STR_(x)		#x
#define LC_CTL_STR(x)		LC_CTL_STR_(x)

/* State of a retried command, shared with each attempt. */
struct lc_ctl_retry {
	bool again;			/* set by an attempt: its failure may be retried */
	unsigned int attempts;		/* set by lc_ctl_retry(): attempts made */
	struct json_object *err;	/* --json: the last attempt's error object (owned) */
};

/* One attempt: an exit code; sets @st->again when the failure is worth
 * another attempt (lc_ctl_connect_retryable(), lc_ctl_class_retryable()). */
typedef int (*lc_ctl_attempt_fn)(struct lc_ctl_cmd *cmd, struct lc_ctl_retry *st, void *ctx);

/* Whether agent op @op is retried: volume.open and cache.open only. */
bool lc_ctl_op_retries(const char *op);
/* Whether a failure to connect to @path (negative errno) is retried: the
 * socket is missing (-ENOENT) or nobody listens on it (-ECONNREFUSED and
 * @path is a socket; not a regular file, which also gives ECONNREFUSED). */
bool lc_ctl_connect_retryable(int code, const char *path);
/* The agent's socket when no --socket is given: [agent] socket of the
 * agent's configuration ($LAKECRYPT_AGENT_CONF, else
 * LC_CONFIG_DEFAULT_PATH), read with the agent's parser; the built-in
 * LC_PROTO_DEFAULT_SOCKET when the file is missing or unreadable (-ENOENT,
 * -EACCES).  Writes the path into @buf (@len bytes, 108 suffice).
 * Returns 0, or a negative errno with @err (@errlen bytes) saying what is
 * wrong with the file (ctl-conf.c). */
int lc_ctl_conf_socket(char *buf, size_t len, char *err, size_t errlen);
/* Whether an agent error of class @cls is retried: "transient" only. */
bool lc_ctl_class_retryable(const char *cls);
/* Delay in ms before attempt @attempt + 1 (@attempt from 1):
 * LC_CTL_RETRY_FIRST_MS doubling, at most LC_CTL_RETRY_MAX_MS. */
int lc_ctl_backoff_ms(unsigned int attempt);
/* The clock of lc_ctl_retry() (monotonic ms, a sleep): the real one;
 * tests put a fake one in. */
struct lc_ctl_clock {
	int64_t (*now_ms)(void);
	void (*sleep_ms)(int ms);
};
extern struct lc_ctl_clock lc_ctl_retry_clock;
/*
 * Run @attempt until it succeeds, fails with st->again false, or
 * cmd->timeout_ms (< 0: no limit) runs out: the delay before the next
 * attempt is the backoff, cut so that the last attempt starts a quarter
 * of the timeout before the end (at least LC_CTL_RETRY_LAST_MS, at most
 * 2 s: its time to be answered); with no more than that left, it gives
 * up.  Each attempt gets the time left as cmd->timeout_ms (restored
 * on return).  Each retry and the final giving up are said on @diag.
 * Returns the last attempt's exit code.
 */
int lc_ctl_retry(struct lc_ctl_cmd *cmd, lc_ctl_attempt_fn attempt, void *ctx,
		 struct lc_ctl_retry *st, FILE *diag);

#endif /* LC_CTL_H */
