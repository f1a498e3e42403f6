/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Rollback memory: the highest header seqno this agent has seen
 * authenticated for each volume, so that an older (but genuine) header put
 * back on the device — a restored backup, a snapshot, a replayed copy — is
 * refused instead of opened.
 *
 * Persisted as <state_dir>/seqnos.json, 0600, rewritten atomically:
 *   {"version": 1, "volumes": {"<uuid>": <seqno>, ...}}
 * What it protects: one agent's volumes against a header older than the
 * last one that agent opened, formatted or re-wrapped.  What it does not:
 * a volume first seen by this agent (nothing to compare with), an agent
 * whose state directory was lost or rolled back with the disk, and agents
 * that do not share it (see Documentation/key-hierarchy.md).
 *
 * Thread-safe: one mutex inside.  Functions return 0 or -errno and fill
 * @err.
 */
#ifndef LC_SEQSTORE_H
#define LC_SEQSTORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lc-error.h"

#define LC_SEQSTORE_FILE	"seqnos.json"

struct lc_seqstore {
	char *path;
	pthread_mutex_t lock;
	struct lc_seq_entry { char uuid[37]; uint64_t seqno; } *e;
	size_t n;
};

/* Load <state_dir>/seqnos.json (empty if missing; MISCONFIG if corrupt). */
int lc_seqstore_open(struct lc_seqstore *s, const char *state_dir, struct lc_error *err);
void lc_seqstore_close(struct lc_seqstore *s);

/* -ESTALE (INVALID, naming both numbers) if @seqno is below the highest
 * seen for @uuid (36-character text form). */
int lc_seqstore_check(struct lc_seqstore *s, const char *uuid, uint64_t seqno,
		      struct lc_error *err);

/* Remember @seqno for @uuid if it is higher than what is known, and
 * persist.  A failed write leaves memory and disk as they were. */
int lc_seqstore_record(struct lc_seqstore *s, const char *uuid, uint64_t seqno,
		       struct lc_error *err);

#endif /* LC_SEQSTORE_H */
