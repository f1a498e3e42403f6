/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kill switch's hold on a running key-lifecycle operation (rotate-kek,
 * shred, rewrap, rekey of an open or a closed volume, rekey-segment).
 *
 * The agent registers each such operation with the CMKs it works under
 * (daemon/ops-life.c); a revocation of one of them calls
 * lc_op_guard_abort().  The operation (agent/lib/rotate.c, segrekey.c,
 * volume.c, given the guard in lc_volume_env.guard) brackets every write
 * it makes to the header or the data -- each a commit of some state --
 * with lc_op_guard_enter() / lc_op_guard_leave(), and checks
 * lc_op_guard_check() between steps (between zones of a segment re-key,
 * while the test pause holds it).  So once lc_op_guard_abort() returned
 * true, the operation writes nothing more: it fails with -EKEYREVOKED
 * (DENIED) "aborted: the CMK was revoked (<cause>)", wipes its keys and
 * data buffers on the way out, and what it left on disk is what a power
 * cut at that point leaves (for a segment re-key: a journal that
 * --resume finishes, once the CMK allows an unwrap again).
 *
 * A write under way when the abort comes is waited for, up to the abort's
 * bound; past it lc_op_guard_abort() returns false (the write started
 * before the kill: it counts as done before it) and the flag still stops
 * everything after it.
 */
#ifndef LC_OPGUARD_H
#define LC_OPGUARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lc-error.h"

#define LC_OP_GUARD_CAUSE_MAX	256

struct lc_op_guard {
	pthread_mutex_t mu;		/* held by the operation around each write */
	atomic_bool aborted;
	char cause[LC_OP_GUARD_CAUSE_MAX];	/* under mu */
};

void lc_op_guard_init(struct lc_op_guard *g);
void lc_op_guard_destroy(struct lc_op_guard *g);

/* The kill: mark @g aborted for @cause (copied, at most
 * LC_OP_GUARD_CAUSE_MAX - 1 bytes).  Waits at most @wait_ms (0: not at
 * all) for a write in progress to end.  true: nothing more will be
 * written; false: a write that began before the call was still running. */
bool lc_op_guard_abort(struct lc_op_guard *g, const char *cause, unsigned int wait_ms);

/* Has @g been aborted?  NULL: never. */
bool lc_op_guard_aborted(struct lc_op_guard *g);

/* 0, or -EKEYREVOKED (DENIED) "aborted: the CMK was revoked (cause)"
 * naming @what (what was stopped, e.g. "re-key of segment 3").  NULL @g: 0. */
int lc_op_guard_check(struct lc_op_guard *g, const char *what, struct lc_error *err);

/* Before a write: lc_op_guard_check(), and on 0 @g stays held until
 * lc_op_guard_leave().  NULL @g: 0, nothing held. */
int lc_op_guard_enter(struct lc_op_guard *g, const char *what, struct lc_error *err);
void lc_op_guard_leave(struct lc_op_guard *g);

#endif /* LC_OPGUARD_H */
