/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The audit log: one JSON object per line, appended, for every CMK use and
 * every open, close, revoke, rotation and refusal.
 *
 *   {"time":"2024-05-01T12:00:00.123Z","peer_uid":1000,"op":"open",
 *    "workspace":"ws1","project":"db1","keyconfig":"kc1","provider":"local",
 *    "cmk_id":"k-1","cmk_version":"2","outcome":"failure",
 *    "error_class":"transient","latency_ms":12,"request_id":"r-9"}
 *
 * "time", "op" and "outcome" are always there; the others only when they
 * apply (a NULL string, peer_uid < 0, latency_ms < 0, error class NONE
 * leave the field out).  The members are exactly those of
 * lc_audit_fields[]: the API takes no key buffers and has no free-form
 * field, so key material has no way in.  Strings are written as valid
 * UTF-8 (invalid bytes become U+FFFD) with JSON escaping.
 *
 * Each record goes out in a single write() on an O_APPEND descriptor under
 * a mutex, so records from threads (and from other appenders) never
 * interleave; with fsync on, the record is on disk when lc_audit_write()
 * returns.
 */
#ifndef LC_AUDIT_H
#define LC_AUDIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lc-error.h"

enum lc_audit_outcome {
	LC_AUDIT_SUCCESS,
	LC_AUDIT_FAILURE,
	LC_AUDIT_REFUSED,
};

#define LC_AUDIT_FIELD_MAX 256	/* bytes per string field; longer is cut */

struct lc_audit_event {
	const char *op;			/* required: "open", "unwrap", "revoke", ... */
	enum lc_audit_outcome outcome;	/* required */
	int64_t peer_uid;		/* < 0: not applicable (agent's own action) */
	const char *workspace;
	const char *project;
	const char *keyconfig;
	const char *provider;
	const char *cmk_id;
	const char *cmk_version;
	enum lc_err_class error_class;	/* LC_ERRC_NONE: omitted */
	int64_t latency_ms;		/* < 0: omitted */
	const char *request_id;		/* the provider's, if it gave one */
	/* What an agent action did, in the agent's own words: built only
	 * from counts, names, signal names and exit statuses (a termination
	 * hook's steps, a revocation's confirmation); never from request
	 * data, provider replies or key buffers. */
	const char *detail;
};

/* Initialise @ev with every optional field "not applicable". */
void lc_audit_event_init(struct lc_audit_event *ev, const char *op,
			 enum lc_audit_outcome outcome);

/* Every member name a record may have, NULL-terminated. */
extern const char *const lc_audit_fields[];

const char *lc_audit_outcome_name(enum lc_audit_outcome o);

/* Format one record (with its newline) for time @ts into a malloc'd string. */
int lc_audit_format(const struct lc_audit_event *ev, const struct timespec *ts, char **line,
		    struct lc_error *err);

struct lc_audit {
	int fd;
	bool fsync_each;
	char *path;
	pthread_mutex_t lock;
};

/* Open (create 0640) @path for appending. */
int lc_audit_open(struct lc_audit *a, const char *path, bool fsync_each, struct lc_error *err);
/* Append one record stamped with the current time. */
int lc_audit_write(struct lc_audit *a, const struct lc_audit_event *ev, struct lc_error *err);
/* Reopen the path (after logrotate moved the file). */
int lc_audit_reopen(struct lc_audit *a, struct lc_error *err);
void lc_audit_close(struct lc_audit *a);

#endif /* LC_AUDIT_H */
