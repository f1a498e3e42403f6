// SPDX-License-Identifier: GPL-2.0
/* The kill switch's hold on a running key-lifecycle operation (opguard.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "opguard.h"

void lc_op_guard_init(struct lc_op_guard *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	atomic_init(&g->aborted, false);
}

void lc_op_guard_destroy(struct lc_op_guard *g)
{
	pthread_mutex_destroy(&g->mu);
}

bool lc_op_guard_abort(struct lc_op_guard *g, const char *cause, unsigned int wait_ms)
{
	struct timespec dl;
	int r;

	clock_gettime(CLOCK_REALTIME, &dl);	/* pthread_mutex_timedlock's clock */
	dl.tv_sec += wait_ms / 1000;
	dl.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	r = wait_ms ? pthread_mutex_timedlock(&g->mu, &dl) : pthread_mutex_trylock(&g->mu);
	if (r == 0) {
		/* The first cause, also when an earlier call could not take
		 * the lock to write it. */
		if (!g->cause[0])
			snprintf(g->cause, sizeof(g->cause), "%s", cause ? cause : "revoked");
		atomic_store(&g->aborted, true);
		pthread_mutex_unlock(&g->mu);
		return true;
	}
	/* A write is under way past the bound: it stops everything after it. */
	atomic_store(&g->aborted, true);
	return false;
}

bool lc_op_guard_aborted(struct lc_op_guard *g)
{
	return g && atomic_load(&g->aborted);
}

/* With g->mu held. */
static int aborted_err(struct lc_op_guard *g, const char *what, struct lc_error *err)
{
	return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
		      "aborted: the CMK was revoked (%s) while the %s ran: nothing more was written",
		      g->cause[0] ? g->cause : "revocation", what);
}

int lc_op_guard_check(struct lc_op_guard *g, const char *what, struct lc_error *err)
{
	int r;

	if (!lc_op_guard_aborted(g))
		return 0;
	pthread_mutex_lock(&g->mu);
	r = aborted_err(g, what, err);
	pthread_mutex_unlock(&g->mu);
	return r;
}

int lc_op_guard_enter(struct lc_op_guard *g, const char *what, struct lc_error *err)
{
	int r;

	if (!g)
		return 0;
	pthread_mutex_lock(&g->mu);
	if (!atomic_load(&g->aborted))
		return 0;
	r = aborted_err(g, what, err);
	pthread_mutex_unlock(&g->mu);
	return r;
}

void lc_op_guard_leave(struct lc_op_guard *g)
{
	if (g)
		pthread_mutex_unlock(&g->mu);
}
