// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: the kill switch's thread in reserve.
 *
 * Every request, revocation job and CMK check runs on a thread started
 * when it is needed (agent.h).  Starting one can fail: the unit's
 * TasksMax, the kernel's threads-max, memory.  The kill must not depend on
 * it.  So one thread is started with the agent (agent_reserve_start(), in
 * agent_setup()) and kept waiting on a->reserve_cv; it runs
 *
 *  - a volume's revocation job whose own thread could not be started
 *    (watch.c start_revoke()): the same job -- send "revoke", read the
 *    kernel's status back, retry -- only one volume after the other;
 *  - an admin's kill request (revoke, volume.revoked) whose request
 *    thread could not be started (clients.c): on this thread revoke does
 *    not wait for the kernel's word (the jobs it queued run here next), it
 *    answers at once with the volumes still pending (-EINPROGRESS), as it
 *    does after revoke_wait_ms;
 *  - a workspace's termination hook whose own thread could not be started
 *    (terminate.c agent_terminate()): the kill's last step, bounded by the
 *    hook's timeout_ms.
 *
 * Jobs come first, then hooks, then requests: a queued kill is never
 * behind a hook or a request (a kill queued while a hook runs waits at
 * most for the hook's timeout).  The thread takes nothing but a->lock,
 * which no holder keeps across a blocking call (agent.h), so it never
 * waits behind an operator's request either.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "agent.h"

static _Thread_local bool on_reserve;

bool agent_on_reserve(void)
{
	return on_reserve;
}

static void *reserve_thread(void *arg)
{
	struct agent *a = arg;
	sigset_t all;

	/* Signals are the loop's (signalfd): never this thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	on_reserve = true;
	agent_relock(a);
	while (!a->reserve_stop || a->reserve_jobs || a->reserve_terms || a->reserve_reqs) {
		if (a->reserve_jobs) {
			struct revoke_job *j = a->reserve_jobs;

			a->reserve_jobs = j->next;
			agent_revoke_job_run(a, j);	/* frees j, lock held again */
			continue;
		}
		if (a->reserve_terms) {
			struct ws_term *t = a->reserve_terms;

			a->reserve_terms = *agent_terminate_next(t);
			agent_terminate_run(a, t);	/* lock held again */
			continue;
		}
		if (a->reserve_reqs) {
			struct client *c = a->reserve_reqs;

			a->reserve_reqs = c->reserve_next;
			agent_unlock(a);
			agent_request_run(a, c);
			agent_relock(a);
			continue;
		}
		pthread_cond_wait(&a->reserve_cv, &a->lock);
	}
	agent_thread_done(a);
	agent_unlock(a);
	return NULL;
}

int agent_reserve_start(struct agent *a, struct lc_error *err)
{
	pthread_condattr_t ca;
	int r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->reserve_cv, &ca);
	pthread_condattr_destroy(&ca);
	a->reserve_cv_ready = true;
	agent_relock(a);
	r = agent_spawn(a, reserve_thread, a);
	agent_unlock(a);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL,
			      "cannot start the kill switch's reserve thread: %s", strerror(-r));
	return 0;
}

void agent_reserve_stop(struct agent *a)
{
	if (!a->reserve_cv_ready)
		return;
	a->reserve_stop = true;
	pthread_cond_broadcast(&a->reserve_cv);
}

void agent_reserve_job(struct agent *a, struct revoke_job *j)
{
	struct revoke_job **p = &a->reserve_jobs;

	while (*p)
		p = &(*p)->next;
	j->next = NULL;
	*p = j;
	pthread_cond_broadcast(&a->reserve_cv);
}

int agent_reserve_term(struct agent *a, struct ws_term *t)
{
	struct ws_term **p = &a->reserve_terms;

	if (!a->reserve_cv_ready || a->reserve_stop)
		return -ESRCH;
	while (*p)
		p = agent_terminate_next(*p);
	*agent_terminate_next(t) = NULL;
	*p = t;
	pthread_cond_broadcast(&a->reserve_cv);
	return 0;
}

int agent_reserve_request(struct agent *a, struct client *c)
{
	struct client **p = &a->reserve_reqs;

	if (!a->reserve_cv_ready || a->reserve_stop)
		return -ESRCH;
	while (*p)
		p = &(*p)->reserve_next;
	c->reserve_next = NULL;
	*p = c;
	pthread_cond_broadcast(&a->reserve_cv);
	return 0;
}
