// SPDX-License-Identifier: GPL-2.0
/*
 * The list of open volumes, the kill switch over it, and the revocation
 * watcher: every watch_interval_s (+- jitter_pct) each CMK in use is
 * probed (probe.c: key state, then a real unwrap of its canary); a
 * confirmed authoritative denial (disabled, pending deletion, destroyed,
 * access denied, confirm_denials times within confirm_window_s) revokes
 * every volume under it; an unreachable KMS (transient) never does, unless
 * the operator set fail_closed_after_s.
 *
 * A volume counts as revoked when the kernel's status says so, not when
 * the agent sent the message: each revocation runs on a thread of its own
 * (a stalled backing device holds back only its volume), sends "revoke",
 * reads the status back, and retries; the watcher's tick restarts the ones
 * that still failed.  Each CMK is asked on a thread of its own, and not
 * again while that one still waits for the KMS.  Everything here runs with a->lock held, except where
 * agent_unlock() says otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

struct vol_slot *agent_volume(struct agent *a, const char *name)
{
	for (size_t i = 0; name && i < a->nvols; i++)
		if (!strcmp(a->vols[i]->v->name, name))
			return a->vols[i];
	return NULL;
}

struct lc_volume *slot_snapshot(const struct vol_slot *s, bool kek)
{
	struct lc_volume *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	*c = *s->v;
	memset(&c->kek, 0, sizeof(c->kek));
	c->have_kek = false;
	if (kek && s->v->have_kek) {
		if (lc_secret_alloc(&c->kek, s->v->kek.len) < 0) {
			free(c);
			return NULL;
		}
		memcpy(c->kek.p, s->v->kek.p, s->v->kek.len);
		c->have_kek = true;
	}
	return c;
}

uint64_t agent_revoke_epoch(struct agent *a)
{
	return a->revoke_epoch;
}

const char *agent_slot_state(const struct vol_slot *s)
{
	switch (s->rs) {
	case SLOT_REVOKING:
		return "revoking";
	case SLOT_REVOKE_FAILED:
		return "failed";
	case SLOT_REVOKED:
		return "revoked";
	case SLOT_GONE:
		return "gone";
	case SLOT_LIVE:
		break;
	}
	return "none";
}

int agent_volumes_save(struct agent *a, struct lc_error *err)
{
	_cleanup_free_ struct lc_volume **vs = calloc(a->nvols + 1, sizeof(*vs));
	struct lc_error e;
	size_t n = 0;
	int r;

	if (!vs)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	/* A mapping not adopted whose keys are not wiped (adopt.c) stays out:
	 * the next start finds it unknown and fails it closed again. */
	for (size_t i = 0; i < a->nvols; i++)
		if (!(a->vols[i]->rs == SLOT_REVOKE_FAILED && !a->vols[i]->v->revoked &&
		      !a->vols[i]->v->cmk_id[0] && !a->vols[i]->v->keyconfig[0]))
			vs[n++] = a->vols[i]->v;
	r = lc_volumes_save(a->runtime_path, vs, n, &e);
	if (r < 0) {
		lc_error_log("the list of open volumes could not be saved (a restarted agent will not find them): %s",
			     e.msg);
		if (err)
			*err = e;
	}
	return r;
}

static void slot_free(struct vol_slot *s)
{
	lc_volume_free(s->v);
	free(s);
}

/* Unlist @s; freed now, or by its revocation job when that ends. */
static void unlist(struct agent *a, struct vol_slot *s)
{
	for (size_t i = 0; i < a->nvols; i++) {
		if (a->vols[i] != s)
			continue;
		memmove(&a->vols[i], &a->vols[i + 1], (a->nvols - i - 1) * sizeof(*a->vols));
		a->nvols--;
		break;
	}
	lc_secret_free(&s->v->kek);
	s->v->have_kek = false;
	if (s->job)
		s->removed = true;
	else
		slot_free(s);
}

void agent_volume_remove(struct agent *a, struct vol_slot *s)
{
	unlist(a, s);
	(void)agent_volumes_save(a, NULL);
}

/* Is @v under the CMK that @provider calls @key_ref or @cmk_id (either may
 * be NULL or "")?  By the CMK's identity only, never by a name a header
 * carried: the volume's CMK id as the KMS reported it, or its reference. */
static bool under(const struct lc_volume *v, const char *cmk_id, const char *provider,
		  const char *key_ref, const char *keyconfig)
{
	const char *ids[2] = { key_ref, cmk_id };

	if (provider && provider[0] && strcmp(v->provider, provider))
		return false;
	if (keyconfig && keyconfig[0] && strcmp(v->keyconfig, keyconfig))
		return false;
	for (int i = 0; i < 2; i++)
		if (ids[i] && ids[i][0] &&
		    (!strcmp(v->cmk_id, ids[i]) || !strcmp(v->provider_ref, ids[i])))
			return true;
	return false;
}

/* ---- revocation jobs ---- */

/* Send "revoke" to a copy of the volume, then read the kernel's status
 * back: only that decides.  Retries with a doubling pause.  With a->lock
 * held, dropped around the kernel calls and pauses; frees @j. */
void agent_revoke_job_run(struct agent *a, struct revoke_job *j)
{
	struct vol_slot *s = j->s;
	unsigned int delay_ms = 100;

	for (unsigned int n = 1; !s->removed; n++) {
		struct lc_volume *copy = slot_snapshot(s, false);
		struct lc_volume_env quiet = j->env;
		struct lc_dm_status st;
		struct lc_error e = { 0 }, se = { 0 };
		char cause[sizeof(s->cause)];
		bool denied = s->denied, done = false;
		int64_t t0 = agent_now_ms();
		int r, sr;

		snprintf(cause, sizeof(cause), "%s", s->cause);
		s->again = false;
		s->attempts++;
		agent_unlock(a);
		/* The audit record is written after the slot says what the
		 * kernel did: a stalled audit disk must not hold that back. */
		quiet.audit = NULL;
		if (!copy) {
			r = lc_err(&e, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			sr = -ENOMEM;
		} else {
			r = lc_volume_revoke(&quiet, copy, cause, denied, &e);
			sr = lc_volume_status(&j->env, copy, &st, &se);
		}
		agent_relock(a);
		if (!s->removed && !sr && st.state == LC_DM_STATE_REVOKED) {
			s->rs = SLOT_REVOKED;
			s->error[0] = '\0';
			s->v->revoked = true;
			snprintf(s->v->revoke_cause, sizeof(s->v->revoke_cause), "%s", cause);
			(void)agent_volumes_save(a, NULL);
			done = true;
		} else if (!s->removed && (sr == -ENXIO || sr == -ENODEV)) {
			/* No device, no I/O; but nothing the kernel confirmed. */
			s->rs = SLOT_GONE;
			snprintf(s->error, sizeof(s->error),
				 "/dev/mapper/%s no longer exists: removed outside the agent", s->v->name);
			lc_warn("volume %s: %s", s->v->name, s->error);
			done = true;
		}
		if (copy) {
			pthread_cond_broadcast(&a->changed);
			agent_unlock(a);
			lc_volume_audit_revoke(&j->env, copy, denied, r < 0 ? &e : NULL,
					       agent_now_ms() - t0);
			agent_relock(a);
			lc_volume_free(copy);
		}
		if (s->removed || (done && !s->again))
			break;
		if (done)
			continue;	/* asked again meanwhile (a new table): once more */
		s->rs = SLOT_REVOKE_FAILED;
		if (r < 0)
			snprintf(s->error, sizeof(s->error), "%s", e.msg);
		else if (sr < 0)
			snprintf(s->error, sizeof(s->error), "status after revoke: %.400s", se.msg);
		else
			snprintf(s->error, sizeof(s->error),
				 "the kernel accepted revoke but its status says %s",
				 lc_dm_state_name(st.state));
		lc_error_log("volume %s: revoke not confirmed (attempt %u): %s", s->v->name,
			     s->attempts, s->error);
		if (n >= LC_AGENT_REVOKE_RETRIES && !s->again)
			break;
		agent_unlock(a);
		nanosleep(&(struct timespec){ .tv_sec = delay_ms / 1000,
					      .tv_nsec = (long)(delay_ms % 1000) * 1000000 }, NULL);
		agent_relock(a);
		if (delay_ms < 2000)
			delay_ms *= 2;
	}
	s->job = false;
	/* Revoked, or given up on: stop what uses it (terminate.c). */
	if (!s->removed && (s->rs == SLOT_REVOKED || s->rs == SLOT_REVOKE_FAILED))
		agent_terminate(a, s->v->workspace);
	if (s->removed)
		slot_free(s);
	free(j);
}

static void *revoke_thread(void *arg)
{
	struct revoke_job *j = arg;
	struct agent *a = j->a;

	agent_relock(a);
	agent_revoke_job_run(a, j);
	agent_thread_done(a);
	agent_unlock(a);
	return NULL;
}

/* Mark @s for revocation and make sure a job runs on it. */
static void start_revoke(struct agent *a, struct vol_slot *s, const char *cause, bool denied,
			 int64_t uid)
{
	struct revoke_job *j;
	int r;

	/* The KEK goes at once; copies held by a re-wrap die with it. */
	lc_secret_free(&s->v->kek);
	s->v->have_kek = false;
	snprintf(s->cause, sizeof(s->cause), "%s", cause ? cause : "revoked");
	s->denied = denied;
	s->revoker = uid;
	if (s->job) {
		s->again = true;
		return;
	}
	s->rs = SLOT_REVOKING;
	j = calloc(1, sizeof(*j));
	r = j ? 0 : -ENOMEM;
	if (j) {
		j->a = a;
		j->s = s;
		j->env = a->env;
		j->env.peer_uid = uid;
		s->job = true;
		r = agent_spawn(a, revoke_thread, j);
		if (r < 0 && a->reserve_cv_ready && !a->reserve_stop) {
			/* No thread to be had (TasksMax, say): the kill does not
			 * depend on one; the reserve thread runs it (reserve.c). */
			lc_warn("volume %s: cannot start a revocation thread (%s): the reserve thread revokes it",
				s->v->name, strerror(-r));
			agent_reserve_job(a, j);
			r = 0;
		} else if (r < 0) {
			s->job = false;
			free(j);
		}
	}
	if (r < 0) {
		s->rs = SLOT_REVOKE_FAILED;
		snprintf(s->error, sizeof(s->error), "cannot start a revocation thread: %s",
			 strerror(-r));
		lc_error_log("volume %s: %s (retried at the next watcher tick)", s->v->name, s->error);
	}
}

void agent_slot_revoke_again(struct agent *a, struct vol_slot *s)
{
	char cause[sizeof(s->cause)];

	/* start_revoke() writes s->cause from its argument: not from itself. */
	snprintf(cause, sizeof(cause), "%s", s->cause);
	if (s->rs != SLOT_LIVE && s->rs != SLOT_GONE)
		start_revoke(a, s, cause, s->denied, s->revoker);
}

static bool settled(const struct vol_slot *s)
{
	return !s || s->rs == SLOT_REVOKED || s->rs == SLOT_GONE ||
	       (s->rs == SLOT_REVOKE_FAILED && !s->job);
}

int agent_revoke_matching(struct agent *a, const char *cmk_id, const char *provider,
			  const char *key_ref, const char *cause, bool denied, int64_t uid,
			  unsigned int wait_ms, json_object *done, json_object *pending,
			  struct lc_error *err)
{
	return agent_revoke_matching_kc(a, cmk_id, provider, key_ref, NULL, cause, denied, uid,
					wait_ms, done, pending, err);
}

int agent_revoke_matching_kc(struct agent *a, const char *cmk_id, const char *provider,
			     const char *key_ref, const char *keyconfig, const char *cause,
			     bool denied, int64_t uid, unsigned int wait_ms, json_object *done,
			     json_object *pending, struct lc_error *err)
{
	struct revoke_rec *rec;
	char (*names)[LC_HDR_NAME_SIZE];
	size_t n = 0, npending = 0;
	struct timespec dl;
	int r = 0;

	rec = &a->revlog[++a->revoke_epoch % LC_AGENT_REVOKE_LOG];
	memset(rec, 0, sizeof(*rec));
	rec->epoch = a->revoke_epoch;
	snprintf(rec->cmk_id, sizeof(rec->cmk_id), "%s", cmk_id ? cmk_id : "");
	snprintf(rec->provider, sizeof(rec->provider), "%s", provider ? provider : "");
	snprintf(rec->key_ref, sizeof(rec->key_ref), "%s", key_ref ? key_ref : "");
	snprintf(rec->keyconfig, sizeof(rec->keyconfig), "%s", keyconfig ? keyconfig : "");

	names = calloc(a->nvols + 1, sizeof(*names));
	if (!names)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	for (size_t i = 0; i < a->nvols; i++) {
		struct vol_slot *s = a->vols[i];

		/* A mapping not adopted whose keys could not be wiped has no
		 * known CMK (adopt.c): every revocation reaches it. */
		bool unknown = s->rs == SLOT_REVOKE_FAILED && !s->v->cmk_id[0] &&
			       !s->v->keyconfig[0];

		if (s->rs == SLOT_REVOKED || s->rs == SLOT_GONE ||
		    (!unknown && !under(s->v, cmk_id, provider, key_ref, keyconfig)))
			continue;
		start_revoke(a, s, cause, denied, uid);
		snprintf(names[n++], LC_HDR_NAME_SIZE, "%s", s->v->name);
	}

	/* On the reserve thread the jobs just queued run next, on the same
	 * thread: answer at once, with what is still pending (reserve.c). */
	if (agent_on_reserve())
		wait_ms = 0;
	/* Wait for the kernel's word, never past the deadline. */
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += wait_ms / 1000;
	dl.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	/* Key-lifecycle operations under this CMK stop (ops-life.c), within
	 * the same deadline; the lock is dropped while it waits (the jobs
	 * above run meanwhile), as in the wait below. */
	(void)agent_ops_abort(a, cmk_id, provider, key_ref, keyconfig, cause, wait_ms);
	for (;;) {
		bool all = true;

		for (size_t i = 0; i < n && all; i++)
			all = settled(agent_volume(a, names[i]));
		all = all && !agent_ops_aborted_running(a);	/* they wipe their keys */
		/* A client that hung up waits no more (its slot is held
		 * while it does): the jobs go on all the same. */
		if (all || !wait_ms || agent_request_gone() ||
		    pthread_cond_timedwait(&a->changed, &a->lock, &dl) == ETIMEDOUT)
			break;
	}
	for (size_t i = 0; i < n; i++) {
		struct vol_slot *s = agent_volume(a, names[i]);
		bool ok = !s || s->rs == SLOT_REVOKED || s->rs == SLOT_GONE;

		if (!ok && !npending++ && !r)
			r = lc_err(err, -EINPROGRESS, LC_ERRC_INTERNAL,
				   "%s: %s", names[i], s->error[0] ? s->error : "no answer from the kernel yet");
		if (ok && done)
			json_object_array_add(done, json_object_new_string(names[i]));
		if (!ok && pending)
			json_object_array_add(pending, json_object_new_string(names[i]));
	}
	free(names);
	if (npending) {
		lc_warn("revocation (%s): %zu of %zu volume(s) not confirmed by the kernel yet; retried",
			cause, npending, n);
		return r;
	}
	lc_info("revocation (%s): %zu volume(s) revoked", cause, n);
	return 0;
}

/* Was a revocation of @v's CMK recorded after @epoch?  If the log has
 * wrapped since, say yes: a spurious refusal beats a live volume. */
static bool revoked_since(struct agent *a, const struct lc_volume *v, uint64_t epoch)
{
	if (a->revoke_epoch - epoch >= LC_AGENT_REVOKE_LOG)
		return true;
	for (uint64_t e = epoch + 1; e <= a->revoke_epoch; e++) {
		const struct revoke_rec *rec = &a->revlog[e % LC_AGENT_REVOKE_LOG];

		if (under(v, rec->cmk_id, rec->provider, rec->key_ref, rec->keyconfig))
			return true;
	}
	return false;
}

int agent_volume_add(struct agent *a, struct lc_volume *v, uint64_t epoch,
		     const struct lc_volume_env *env, struct lc_error *err)
{
	struct vol_slot *s = calloc(1, sizeof(*s)), **t;
	struct lc_error e, e2;
	int r;

	t = s ? realloc(a->vols, (a->nvols + 1) * sizeof(*t)) : NULL;
	if (!t) {
		free(s);
		agent_unlock(a);
		(void)lc_volume_close(env, v, &e2);
		agent_relock(a);
		lc_volume_free(v);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	a->vols = t;
	s->v = v;
	s->revoker = -1;
	a->vols[a->nvols++] = s;
	if (revoked_since(a, v, epoch)) {
		char cause[256];

		snprintf(cause, sizeof(cause), "its CMK %.200s was revoked while it opened",
			 v->cmk_id[0] ? v->cmk_id : v->provider_ref);
		start_revoke(a, s, cause, false, env->peer_uid);
		(void)agent_volumes_save(a, NULL);
		return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "volume %s: %s; /dev/mapper/%s is revoked (status shows it)", v->name,
			      cause, v->name);
	}
	r = agent_volumes_save(a, &e);
	if (r >= 0)
		return 0;
	/* Unlisted while it closes: a restarted agent could not find it. */
	for (size_t i = 0; i < a->nvols; i++)
		if (a->vols[i] == s)
			a->vols[i] = a->vols[--a->nvols];
	agent_unlock(a);
	r = lc_volume_close(env, v, &e2);
	agent_relock(a);
	if (r < 0) {
		/* Still mapped: keep it listed, so revoke and the watcher see it. */
		a->vols[a->nvols++] = s;
		return lc_err(err, -EIO, LC_ERRC_INTERNAL,
			      "the list of open volumes could not be saved (%s) and closing /dev/mapper/%s again failed (%s): it stays open in this agent only",
			      e.msg, v->name, e2.msg);
	}
	slot_free(s);
	return lc_err(err, -EIO, LC_ERRC_INTERNAL,
		      "the open was undone: the list of open volumes could not be saved (%s), and a restarted agent could neither watch nor revoke the volume",
		      e.msg);
}

/* ---- the watcher ---- */

/* Probe the CMK of @v (a copy) without the lock (probe.c): only a
 * confirmed denial, or an outage past fail_closed_after_s, revokes. */
static void check_cmk(struct agent *a, const struct lc_volume *v)
{
	json_object *rep = a->fp ? json_object_new_object() : NULL;

	if (agent_probe_cmk(a, v, rep) == 0 && rep)
		agent_probe_publish(a, v, rep);	/* shared probes: if this agent holds it */
	json_object_put(rep);
}

/* One probe per CMK and key configuration: each has its own canary. */
static bool same_cmk(const struct lc_volume *x, const struct lc_volume *y)
{
	return !strcmp(x->provider, y->provider) && !strcmp(x->provider_ref, y->provider_ref) &&
	       !strcmp(x->keyconfig, y->keyconfig);
}

struct check_job {
	struct agent *a;
	size_t i;		/* a->checking[i] is this job's copy */
};

/* One CMK's check (@j's copy, freed with @j); without a->lock.  @thread:
 * on its own thread (cmk_thread), else on the watcher's. */
static void check_job_run(struct check_job *j, bool thread)
{
	struct agent *a = j->a;
	struct lc_volume *v = a->checking[j->i];	/* set before the job started */

	check_cmk(a, v);
	agent_relock(a);
	a->checking[j->i] = NULL;
	if (thread)
		agent_thread_done(a);
	agent_unlock(a);
	lc_volume_free(v);
	free(j);
}

/* One CMK's check: a KMS that stalls on one CMK delays no other. */
static void *cmk_thread(void *arg)
{
	check_job_run(arg, true);
	return NULL;
}

/*
 * Start a check of @v's CMK (a copy, taken) unless one is running: on a
 * thread of its own, or, when none can be started (TasksMax, memory), the
 * job is returned for the watcher to run itself after this round's starts.
 */
static struct check_job *start_check(struct agent *a, struct lc_volume *v)
{
	struct check_job *j;
	size_t free_i = LC_AGENT_MAX_CHECKS;

	for (size_t i = 0; i < LC_AGENT_MAX_CHECKS; i++) {
		if (a->checking[i] && same_cmk(a->checking[i], v)) {
			lc_warn("watcher: the last check of CMK %s still waits for the KMS; not asking again",
				v->provider_ref);
			lc_volume_free(v);
			return NULL;
		}
		if (!a->checking[i] && free_i == LC_AGENT_MAX_CHECKS)
			free_i = i;
	}
	j = free_i < LC_AGENT_MAX_CHECKS ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		lc_warn("watcher: %d CMK checks already wait for the KMS; CMK %s is not checked this time",
			LC_AGENT_MAX_CHECKS, v->provider_ref);
		lc_volume_free(v);
		return NULL;
	}
	j->a = a;
	j->i = free_i;
	a->checking[free_i] = v;
	if (agent_spawn(a, cmk_thread, j) == 0)
		return NULL;
	lc_warn("watcher: no new thread to check CMK %s; the watcher checks it itself",
		v->provider_ref);
	return j;
}

/* Start the check of @v (a copy, taken) unless the fleet's shared probe
 * spares it this time (fleet-probe.c); a job start_check() could not give
 * a thread is returned (the watcher runs it). */
static struct check_job *want_check(struct agent *a, struct lc_volume *v)
{
	const char *why;

	if (!agent_probe_wanted(a, v, &why)) {
		lc_debug("watcher: CMK %s: another agent probes it for the fleet and its last result is ok",
			 v->provider_ref);
		lc_volume_free(v);
		return NULL;
	}
	if (why[0])
		lc_debug("watcher: CMK %s: probing (%s)", v->provider_ref, why);
	return start_check(a, v);
}

/* [test] watch_keyconfig: key configuration @name's CMK is probed as if an
 * open volume used it (as check --cmk probes a key configuration): hosts
 * without device-mapper hold no volume (tests/etcd). */
static struct check_job *watch_keyconfig(struct agent *a, const char *name)
{
	const struct lc_keyconfig *kc = lc_registry_keyconfig(&a->reg, name);
	struct lc_volume *v;

	if (!kc || !(v = agent_keyconfig_volume(kc)))
		return NULL;
	for (size_t i = 0; i < a->nvols; i++)
		if (a->vols[i]->rs == SLOT_LIVE && same_cmk(a->vols[i]->v, v)) {
			lc_volume_free(v);	/* probed as a volume's already */
			return NULL;
		}
	return want_check(a, v);
}

/*
 * One round of the watcher (a->lock held; dropped around the file I/O and
 * the checks it runs itself): the local KMS's purge, the kernel's word on
 * every volume, then one check per CMK in use.
 */
static void watch_round(struct agent *a)
{
	struct check_job *own[LC_AGENT_MAX_CHECKS];
	size_t nown = 0;
	struct lc_error e;
	unsigned int n = 0;

	agent_unlock(a);
	if (lc_kms_local_purge(a->kms, &n, &e) < 0)
		lc_warn("local KMS purge: %s", e.msg);
	else if (n)
		lc_info("local KMS: erased the material of %u key(s) past their deletion date", n);
	agent_relock(a);
	/* The kernel's word first: a revoke whose udev event was lost. */
	agent_check_kernel_revoked(a);
	/* Tests only ([test] watch_pause_file): no probe while it exists, so
	 * a test decides which probes a CMK gets. */
	for (size_t i = 0; i < a->nvols && (!a->cfg.test_watch_pause_file[0] ||
					    access(a->cfg.test_watch_pause_file, F_OK) < 0); i++) {
		const struct vol_slot *s = a->vols[i];
		struct check_job *j;
		bool seen = false;
		struct lc_volume *v;

		if (s->rs != SLOT_LIVE)
			continue;
		for (size_t k = 0; k < i && !seen; k++)
			seen = a->vols[k]->rs == SLOT_LIVE && same_cmk(a->vols[k]->v, s->v);
		if (!seen && (v = slot_snapshot(s, false)) && (j = want_check(a, v)))
			own[nown++] = j;	/* at most LC_AGENT_MAX_CHECKS: one slot each */
	}
	if (a->cfg.test_watch_keyconfig[0] && (!a->cfg.test_watch_pause_file[0] ||
					       access(a->cfg.test_watch_pause_file, F_OK) < 0)) {
		struct check_job *j = watch_keyconfig(a, a->cfg.test_watch_keyconfig);

		if (j && nown < LC_AGENT_MAX_CHECKS)
			own[nown++] = j;
	}
	if (!nown)
		return;
	agent_unlock(a);
	for (size_t i = 0; i < nown; i++)
		check_job_run(own[i], false);
	agent_relock(a);
}

/*
 * The watcher's thread, started with the agent (agent_watcher_start()):
 * a round at each tick (agent_watch_tick(); ticks during a round make one
 * more round after it).  It is never started anew, so detection, like the
 * kill (reserve.c), needs no thread that may not be had.
 */
static void *watcher_thread(void *arg)
{
	struct agent *a = arg;
	sigset_t all;

	/* Signals are the loop's (signalfd): never this thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	agent_relock(a);
	while (!a->watch_stop) {
		if (!a->watch_kick) {
			pthread_cond_wait(&a->watch_cv, &a->lock);
			continue;
		}
		a->watch_kick = false;
		a->watching = true;
		watch_round(a);
		a->watching = false;
	}
	agent_thread_done(a);
	agent_unlock(a);
	return NULL;
}

int agent_watcher_start(struct agent *a, struct lc_error *err)
{
	int r;

	pthread_cond_init(&a->watch_cv, NULL);
	a->watch_cv_ready = true;
	agent_relock(a);
	r = agent_spawn(a, watcher_thread, a);
	agent_unlock(a);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot start the watcher's thread: %s",
			      strerror(-r));
	return 0;
}

void agent_watcher_stop(struct agent *a)
{
	if (!a->watch_cv_ready)
		return;
	a->watch_stop = true;
	pthread_cond_broadcast(&a->watch_cv);
}

/* The next tick after the interval with jitter_pct of jitter either way,
 * so that many agents do not ask one KMS in step. */
static void rearm(struct agent *a)
{
	uint64_t ms = (uint64_t)a->cfg.watch_interval_s * 1000, span;
	uint32_t rnd = 0;
	struct itimerspec its = { 0 };

	if (a->timer_fd < 0 || !a->cfg.jitter_pct)
		return;
	span = ms * a->cfg.jitter_pct / 100;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)agent_now_ms();
	if (span)
		ms = ms - span + (uint64_t)rnd % (2 * span + 1);
	if (ms < 100)
		ms = 100;
	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	its.it_interval.tv_sec = a->cfg.watch_interval_s;	/* if a tick is missed */
	(void)timerfd_settime(a->timer_fd, 0, &its, NULL);
}

void agent_watch_now(struct agent *a)
{
	agent_relock(a);
	if (a->watch_cv_ready) {
		a->watch_kick = true;
		pthread_cond_broadcast(&a->watch_cv);
	}
	agent_unlock(a);
}

void agent_watch_tick(struct agent *a)
{
	rearm(a);
	agent_relock(a);
	/* Revocations the kernel has not confirmed: again, whatever the KMS does. */
	for (size_t i = 0; i < a->nvols; i++) {
		struct vol_slot *s = a->vols[i];

		if (s->rs == SLOT_REVOKE_FAILED && !s->job)
			start_revoke(a, s, s->cause, s->denied, s->revoker);
	}
	if (a->watch_cv_ready) {
		a->watch_kick = true;
		pthread_cond_broadcast(&a->watch_cv);
	}
	agent_unlock(a);
}
