// SPDX-License-Identifier: GPL-2.0
/*
 * Shared probes in a fleet ([registry] backend = etcd, backstop_interval_s
 * > 0; Documentation/etcd.md "Shared probes"; values: probe-share.h).
 *
 * A unit is what one watcher probe covers: a CMK and the key
 * configuration whose canary it unwraps.  Per unit, one agent at a time
 * holds <prefix>probe/<unit>: created by a transaction that compares its
 * create_revision with 0 (it does not exist), attached to this agent's
 * probe lease (one lease per agent, kept alive by the thread below).  The
 * holder probes at watch_interval_s and publishes each result under
 * <prefix>probe-result/<unit> with the same lease.  The others see the
 * results through the registry's watch and skip their own probe while the
 * last one is "ok" and arrived within 2 intervals, probing at least every
 * backstop_interval_s all the same; they probe at their normal interval
 * when results stop, are not "ok", or etcd is unreachable, and at once
 * when the holder's key goes (its lease expired): then they also race to
 * take it, and one wins.  A published result never revokes anything on
 * another node: a confirmed denial reaches the fleet only as a revocation
 * record (fleet.c), as before.
 *
 * Locking: the units and the lease's state are under a->lock; etcd
 * requests run without it, on the thread below or a probe's thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "etcd.h"
#include "registry-etcd.h"

#define FP_TICK_MS	200	/* the thread's round */
#define FP_MAX_UNITS	4096	/* units remembered (others' included) */
#define FP_KEY_MAX	1024

struct fp_unit {
	char unit[LC_PROBE_UNIT_HEX];
	/* What this agent probes under it (set once the watcher wants it). */
	char provider[LC_HDR_PROVIDER_SIZE];
	char key_ref[LC_HDR_PROVIDER_REF_SIZE];
	char keyconfig[LC_HDR_NAME_SIZE];
	int64_t used_ms;		/* the watcher last wanted it (0: never) */
	/* From etcd (the registry's watch). */
	bool held;			/* probe/<unit> exists */
	int64_t holder_lease;
	int64_t holder_create;		/* its create_revision */
	char holder[LC_PROBE_AGENT_SIZE];
	bool have_result;
	int64_t result_lease;		/* its key's lease: the holder's, or it is not counted */
	int64_t result_ms;		/* when the last result arrived here (monotonic) */
	struct lc_probe_result last;
	/* This agent's part. */
	bool mine;			/* held under our lease */
	bool due;			/* probe at once (the holder went, or we took over) */
	int64_t own_ms;			/* our last own probe began (monotonic; 0: never) */
	uint64_t own_probes, skipped, published, publish_failed, takeovers, holder_lost;
	uint64_t seq;
};

struct fleet_probe {
	struct agent *a;
	char agent_id[LC_PROBE_AGENT_SIZE];
	int64_t lease;			/* 0: none */
	int64_t lease_ttl_s;
	int64_t keepalive_ms;		/* last good keepalive or grant (monotonic) */
	bool etcd_ok;			/* the lease's last request reached etcd */
	char last_error[LC_ERROR_MSG_MAX];
	uint64_t grants, leases_lost;
	struct fp_unit **u;
	size_t n;
	bool kick;			/* start the watcher at once (a->lock) */
	pthread_t th;
	bool started;
	atomic_bool stop;
};

static bool enabled(const struct agent *a)
{
	return a->fp && a->cfg.registry_backstop_interval_s > 0;
}

static int64_t interval_ms(const struct agent *a)
{
	return (int64_t)a->cfg.watch_interval_s * 1000;
}

static struct fp_unit *unit_find(struct fleet_probe *fp, const char *unit, bool create)
{
	struct fp_unit **t, *u;

	for (size_t i = 0; i < fp->n; i++)
		if (!strcmp(fp->u[i]->unit, unit))
			return fp->u[i];
	if (!create || fp->n >= FP_MAX_UNITS)
		return NULL;
	u = calloc(1, sizeof(*u));
	t = u ? realloc(fp->u, (fp->n + 1) * sizeof(*t)) : NULL;
	if (!t) {
		free(u);
		return NULL;
	}
	fp->u = t;
	snprintf(u->unit, sizeof(u->unit), "%s", unit);
	fp->u[fp->n++] = u;
	return u;
}

static bool in_use(const struct agent *a, const struct fp_unit *u, int64_t now)
{
	/* The watcher marks its units every interval: three missed ticks
	 * (or a volume closed) and it is no longer ours to probe. */
	return u->used_ms && now - u->used_ms <= 3 * interval_ms(a) + 1000;
}

/* ---- what etcd says (the registry's hook; a->lock held) ---- */

static void on_event(void *arg, const struct lc_probe_event *ev)
{
	struct agent *a = arg;
	struct fleet_probe *fp = a->fp;
	struct fp_unit *u;
	int64_t now = agent_now_ms();

	if (!fp)
		return;
	if (ev->reset) {
		/* A full read follows: what it holds is all there is. */
		for (size_t i = 0; i < fp->n; i++) {
			fp->u[i]->held = fp->u[i]->have_result = false;
			fp->u[i]->holder_lease = 0;
		}
		return;
	}
	u = unit_find(fp, ev->unit, !ev->del);
	if (!u)
		return;
	if (!ev->result) {
		if (ev->del) {
			bool was_mine = u->mine;

			u->held = u->mine = false;
			u->holder_lease = 0;
			if (in_use(a, u, now)) {
				/* The holder's lease expired (or it let go): probe
				 * now and race to take it over. */
				u->due = true;
				u->holder_lost++;
				fp->kick = true;
				lc_info("probe: the holder of CMK %s%s%s (%s) is gone%s: probing it now, and taking over if no other agent does first",
					u->key_ref, u->keyconfig[0] ? ", key configuration " : "",
					u->keyconfig, u->holder, was_mine ? " (it was this agent)" : "");
			}
			return;
		}
		u->held = true;
		u->holder_lease = ev->lease;
		u->holder_create = ev->create_revision;
		snprintf(u->holder, sizeof(u->holder), "%s", ev->holder->agent);
		u->mine = fp->lease && ev->lease == fp->lease;
		return;
	}
	if (ev->del) {
		u->have_result = false;
		return;
	}
	u->last = *ev->res;
	u->have_result = true;
	u->result_lease = ev->lease;
	u->result_ms = now;
}

/* ---- the watcher's questions (a->lock held) ---- */

bool agent_probe_wanted(struct agent *a, const struct lc_volume *v, const char **why)
{
	struct fleet_probe *fp = a->fp;
	char hex[LC_PROBE_UNIT_HEX];
	struct fp_unit *u;
	int64_t now = agent_now_ms(), iv = interval_ms(a);
	bool fresh;

	*why = "";
	if (!enabled(a))
		return true;
	lc_probe_unit_hash(v->provider, v->provider_ref, v->keyconfig, hex);
	u = unit_find(fp, hex, true);
	if (!u)
		return true;
	snprintf(u->provider, sizeof(u->provider), "%s", v->provider);
	snprintf(u->key_ref, sizeof(u->key_ref), "%s", v->provider_ref);
	snprintf(u->keyconfig, sizeof(u->keyconfig), "%s", v->keyconfig);
	u->used_ms = now;	/* the thread tries to take it if nobody holds it */
	/* Only the holder's own results count: put under its lease (a
	 * value put without it, or under another lease, spares nothing). */
	fresh = u->have_result && u->held && u->result_lease && u->result_lease == u->holder_lease &&
		now - u->result_ms <= 2 * iv && u->last.outcome == LC_PROBE_OK;
	if (!lc_regetcd_reachable(&a->reg) || !fp->etcd_ok)
		*why = "etcd unreachable: this agent probes by itself";
	else if (u->mine)
		*why = "this agent holds the probe";
	else if (u->due)
		*why = "the holder went";
	else if (!u->held && !fresh)
		*why = "no agent holds the probe";
	else if (!fresh)
		*why = !u->have_result ? "no result from the holder yet" :
		       u->result_lease != u->holder_lease ? "the last result is not under the holder's lease" :
		       u->last.outcome != LC_PROBE_OK ? "the holder's last result is not ok" :
		       "the holder's results stopped (older than 2 intervals)";
	else if (!u->own_ms || now - u->own_ms >= (int64_t)a->cfg.registry_backstop_interval_s * 1000)
		*why = "backstop";
	/* A watcher started early (a takeover elsewhere) does not probe
	 * again what was just probed. */
	if (**why && !u->due && u->own_ms && now - u->own_ms < iv / 2)
		*why = "";
	if (!**why) {
		u->skipped++;
		return false;
	}
	u->due = false;
	u->own_ms = now;
	u->own_probes++;
	return true;
}

/* ---- publishing (without a->lock) ---- */

void agent_probe_publish(struct agent *a, const struct lc_volume *v, json_object *report)
{
	struct fleet_probe *fp;
	struct lc_probe_result r;
	struct fp_unit *u;
	struct lc_error e = { 0 };
	char hex[LC_PROBE_UNIT_HEX], key[FP_KEY_MAX], *val = NULL;
	const char *s;
	json_object *x, *o;
	int64_t lease = 0;
	size_t vlen = 0;
	int rc;

	agent_relock(a);
	fp = a->fp;
	lc_probe_unit_hash(v->provider, v->provider_ref, v->keyconfig, hex);
	u = enabled(a) ? unit_find(fp, hex, false) : NULL;
	if (!u || !u->mine || !fp->lease || !report) {
		agent_unlock(a);
		return;
	}
	memset(&r, 0, sizeof(r));
	snprintf(r.agent, sizeof(r.agent), "%s", fp->agent_id);
	snprintf(r.provider, sizeof(r.provider), "%s", v->provider);
	snprintf(r.key_ref, sizeof(r.key_ref), "%s", v->provider_ref);
	snprintf(r.keyconfig, sizeof(r.keyconfig), "%s", v->keyconfig);
	r.outcome = LC_PROBE_UNKNOWN;
	s = json_object_object_get_ex(report, "outcome", &x) ? json_object_get_string(x) : "";
	if (!strcmp(s, "ok"))
		r.outcome = LC_PROBE_OK;
	else if (!strcmp(s, "denied"))
		r.outcome = LC_PROBE_DENIED;
	s = json_object_object_get_ex(report, "verdict", &x) ? json_object_get_string(x) : "";
	r.verdict = !strcmp(s, "pending") ? LC_VERDICT_PENDING : !strcmp(s, "revoke") ?
		    LC_VERDICT_REVOKE : !strcmp(s, "fail-closed") ? LC_VERDICT_FAIL_CLOSED :
		    LC_VERDICT_KEEP;
	r.time = (int64_t)time(NULL);
	r.seq = ++u->seq;
	lease = fp->lease;
	rc = snprintf(key, sizeof(key), "%sprobe-result/%s", lc_regetcd_prefix(&a->reg), hex);
	agent_unlock(a);
	if (rc < 0 || (size_t)rc >= sizeof(key))
		return;
	o = lc_probe_result_to_json(&r);
	if (o) {
		s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE, &vlen);
		val = s ? strndup(s, vlen) : NULL;
		json_object_put(o);
	}
	rc = val ? lc_etcd_put(lc_regetcd_etcd(&a->reg), key, strlen(key), val, vlen, lease, NULL, &e) :
		   lc_err(&e, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	free(val);
	agent_relock(a);
	if ((u = unit_find(a->fp, hex, false))) {
		if (rc < 0)
			u->publish_failed++;
		else
			u->published++;
	}
	agent_unlock(a);
	if (rc < 0)
		lc_warn("probe: the result for CMK %s was not published (%s): other agents probe by themselves once it is missed",
			v->provider_ref, e.msg);
}

/* ---- the lease and the elections (their own thread) ---- */

static void fp_error(struct agent *a, const struct lc_error *e)
{
	agent_relock(a);
	if (a->fp->etcd_ok)
		lc_warn("probe: etcd unreachable for the probe lease (%s): this agent probes its CMKs by itself",
			e->msg);
	a->fp->etcd_ok = false;
	snprintf(a->fp->last_error, sizeof(a->fp->last_error), "%s", e->msg);
	agent_unlock(a);
}

static void lease_lost(struct agent *a, const char *why)
{
	struct fleet_probe *fp = a->fp;

	agent_relock(a);
	lc_warn("probe: this agent's probe lease %" PRId64 " is gone (%s): it holds no probe any more",
		fp->lease, why);
	fp->lease = 0;
	fp->leases_lost++;
	for (size_t i = 0; i < fp->n; i++)
		fp->u[i]->mine = false;
	agent_unlock(a);
}

/* Grant or keep alive the lease.  true: a lease is held. */
static bool keep_lease(struct agent *a, struct lc_etcd *e)
{
	struct fleet_probe *fp = a->fp;
	struct lc_error err = { 0 };
	int64_t id = 0, ttl = 0, now = agent_now_ms(), lease, last;
	int r;

	agent_relock(a);
	lease = fp->lease;
	last = fp->keepalive_ms;
	agent_unlock(a);
	if (lease && now - last < fp->lease_ttl_s * 1000 / 3)
		return true;
	if (lease) {
		r = lc_etcd_lease_keepalive(e, lease, &ttl, &err);
		if (r == -ENOENT) {
			lease_lost(a, "expired");
			return false;
		}
	} else {
		r = lc_etcd_lease_grant(e, fp->lease_ttl_s, &id, &ttl, &err);
	}
	if (r < 0) {
		fp_error(a, &err);
		return false;
	}
	agent_relock(a);
	if (!fp->etcd_ok)
		lc_info("probe: etcd reachable again for the probe lease");
	fp->etcd_ok = true;
	fp->keepalive_ms = now;
	if (!lease) {
		fp->lease = id;
		fp->grants++;
		lc_info("probe: lease %" PRId64 " granted (TTL %" PRId64 " s)", id, ttl);
	}
	agent_unlock(a);
	return true;
}

/* Try to take the units this agent uses that nobody holds. */
static void elect(struct agent *a, struct lc_etcd *e)
{
	struct fleet_probe *fp = a->fp;
	char (*want)[LC_PROBE_UNIT_HEX] = NULL;
	size_t nwant = 0;
	int64_t now = agent_now_ms(), lease;
	struct lc_probe_holder h;
	json_object *o;
	const char *s;
	char *val = NULL;
	size_t vlen = 0;

	agent_relock(a);
	lease = fp->lease;
	want = fp->n ? calloc(fp->n, sizeof(*want)) : NULL;
	for (size_t i = 0; want && i < fp->n; i++)
		if (!fp->u[i]->held && in_use(a, fp->u[i], now))
			snprintf(want[nwant++], LC_PROBE_UNIT_HEX, "%s", fp->u[i]->unit);
	memset(&h, 0, sizeof(h));
	snprintf(h.agent, sizeof(h.agent), "%s", fp->agent_id);
	agent_unlock(a);
	h.since = (int64_t)time(NULL);
	if (nwant && lease && (o = lc_probe_holder_to_json(&h))) {
		s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &vlen);
		val = s ? strndup(s, vlen) : NULL;
		json_object_put(o);
	}
	for (size_t i = 0; val && i < nwant && !atomic_load(&fp->stop); i++) {
		char key[FP_KEY_MAX];
		struct lc_error err = { 0 };
		bool won = false;
		int64_t rev = 0;
		int r;

		r = snprintf(key, sizeof(key), "%sprobe/%s", lc_regetcd_prefix(&a->reg), want[i]);
		if (r < 0 || (size_t)r >= sizeof(key))
			continue;
		{
			struct lc_etcd_cmp c = { key, strlen(key), LC_ETCD_CMP_CREATE, LC_ETCD_EQUAL, 0, false };
			struct lc_etcd_op op = { .type = LC_ETCD_OP_PUT, .key = key, .key_len = strlen(key),
						 .value = val, .value_len = vlen, .lease = lease };

			r = lc_etcd_txn(e, &c, 1, &op, 1, NULL, 0, &won, &rev, &err);
		}
		if (r < 0) {
			/* Lease gone: the next keepalive says so; else etcd. */
			fp_error(a, &err);
			break;
		}
		agent_relock(a);
		{
			struct fp_unit *u = unit_find(fp, want[i], false);

			if (u && won) {
				u->held = u->mine = true;
				u->holder_lease = lease;
				u->holder_create = rev;
				snprintf(u->holder, sizeof(u->holder), "%s", fp->agent_id);
				u->takeovers++;
				u->due = true;
				fp->kick = true;
				lc_info("probe: this agent (%s) now probes CMK %s%s%s for the fleet",
					fp->agent_id, u->key_ref, u->keyconfig[0] ? ", key configuration " : "",
					u->keyconfig);
			} else if (u && !u->held) {
				/* Another agent won; its put is on its way to the watch. */
				u->held = true;
			}
		}
		agent_unlock(a);
	}
	free(val);
	free(want);
}

/* Let go of units no volume uses any more (their keys go with the
 * compare on their create_revision: never another holder's). */
static void release_unused(struct agent *a, struct lc_etcd *e)
{
	struct fleet_probe *fp = a->fp;
	int64_t now = agent_now_ms();

	for (;;) {
		char key[FP_KEY_MAX], rkey[FP_KEY_MAX], unit[LC_PROBE_UNIT_HEX];
		struct lc_error err = { 0 };
		int64_t create = 0;
		bool done = false;
		int r, r2;

		agent_relock(a);
		unit[0] = '\0';
		for (size_t i = 0; i < fp->n && !unit[0]; i++)
			if (fp->u[i]->mine && fp->u[i]->used_ms && !in_use(a, fp->u[i], now)) {
				snprintf(unit, sizeof(unit), "%s", fp->u[i]->unit);
				create = fp->u[i]->holder_create;
				fp->u[i]->mine = false;
			}
		r = snprintf(key, sizeof(key), "%sprobe/%s", lc_regetcd_prefix(&a->reg), unit);
		r2 = snprintf(rkey, sizeof(rkey), "%sprobe-result/%s", lc_regetcd_prefix(&a->reg), unit);
		agent_unlock(a);
		if (!unit[0] || r < 0 || (size_t)r >= sizeof(key) || r2 < 0 || (size_t)r2 >= sizeof(rkey))
			return;
		{
			struct lc_etcd_cmp c = { key, strlen(key), LC_ETCD_CMP_CREATE, LC_ETCD_EQUAL, create, false };
			struct lc_etcd_op op[2] = {
				{ .type = LC_ETCD_OP_DELETE, .key = key, .key_len = strlen(key) },
				{ .type = LC_ETCD_OP_DELETE, .key = rkey, .key_len = strlen(rkey) },
			};

			if (lc_etcd_txn(e, &c, 1, op, 2, NULL, 0, &done, NULL, &err) < 0)
				lc_warn("probe: letting go of unit %s failed (%s): its lease ends it", unit, err.msg);
		}
	}
}

static void *fp_thread(void *arg)
{
	struct agent *a = arg;
	struct fleet_probe *fp = a->fp;
	struct lc_etcd *e = lc_regetcd_etcd(&a->reg);
	int64_t pause_until = 0;

	while (!atomic_load(&fp->stop)) {
		int64_t now = agent_now_ms();
		bool kick;

		if (now >= pause_until) {
			if (keep_lease(a, e)) {
				elect(a, e);
				release_unused(a, e);
			} else {
				pause_until = now + 1000;	/* etcd down: once a second */
			}
		}
		agent_relock(a);
		kick = fp->kick;
		fp->kick = false;
		agent_unlock(a);
		if (kick)
			agent_watch_now(a);
		nanosleep(&(struct timespec){ .tv_nsec = FP_TICK_MS * 1000000L }, NULL);
	}
	return NULL;
}

/* ---- set-up, status ---- */

int agent_probes_init(struct agent *a, struct lc_regetcd_hooks *h)
{
	struct fleet_probe *fp;
	char host[LC_PROBE_AGENT_SIZE - 24] = "";

	if (!a->cfg.registry_etcd || !a->cfg.registry_backstop_interval_s)
		return 0;
	fp = calloc(1, sizeof(*fp));
	if (!fp)
		return -ENOMEM;
	fp->a = a;
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "unknown");
	for (char *p = host; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			*p = '?';
	snprintf(fp->agent_id, sizeof(fp->agent_id), "%s/%ld", host, (long)getpid());
	fp->lease_ttl_s = a->cfg.registry_probe_lease_s;
	fp->etcd_ok = true;
	a->fp = fp;
	h->probe = on_event;
	return 0;
}

int agent_probes_start(struct agent *a, struct lc_error *err)
{
	int r;

	if (!a->fp || a->fp->started)
		return 0;
	r = pthread_create(&a->fp->th, NULL, fp_thread, a);
	if (r)
		return lc_err(err, -r, LC_ERRC_INTERNAL, "cannot start the shared probes' thread: %s",
			      strerror(r));
	a->fp->started = true;
	return 0;
}

void agent_probes_stop(struct agent *a)
{
	struct fleet_probe *fp = a->fp;
	struct lc_error e = { 0 };
	int64_t lease;

	if (!fp || !fp->started)
		return;
	atomic_store(&fp->stop, true);
	pthread_join(fp->th, NULL);
	fp->started = false;
	agent_relock(a);
	lease = fp->lease;
	fp->lease = 0;
	for (size_t i = 0; i < fp->n; i++)
		fp->u[i]->mine = false;
	agent_unlock(a);
	/* Hand over at once: the keys go with the lease, the others race. */
	if (lease && lc_etcd_lease_revoke(lc_regetcd_etcd(&a->reg), lease, &e) < 0)
		lc_warn("probe: the lease was not revoked (%s): another agent takes over once it expires",
			e.msg);
}

void agent_probes_free(struct agent *a)
{
	struct fleet_probe *fp = a->fp;

	if (!fp)
		return;
	for (size_t i = 0; i < fp->n; i++)
		free(fp->u[i]);
	free(fp->u);
	free(fp);
	a->fp = NULL;
}

json_object *agent_probes_json(struct agent *a)
{
	struct fleet_probe *fp = a->fp;
	json_object *o = json_object_new_object(), *arr;
	int64_t now = agent_now_ms();

	json_object_object_add(o, "shared", json_object_new_boolean(enabled(a)));
	if (!enabled(a))
		return o;
	json_object_object_add(o, "agent", json_object_new_string(fp->agent_id));
	json_object_object_add(o, "lease", json_object_new_int64(fp->lease));
	json_object_object_add(o, "lease_ttl_s", json_object_new_int64(fp->lease_ttl_s));
	json_object_object_add(o, "backstop_interval_s",
			       json_object_new_int64(a->cfg.registry_backstop_interval_s));
	json_object_object_add(o, "etcd_ok", json_object_new_boolean(fp->etcd_ok));
	json_object_object_add(o, "last_error", json_object_new_string(fp->last_error));
	json_object_object_add(o, "grants", json_object_new_uint64(fp->grants));
	json_object_object_add(o, "leases_lost", json_object_new_uint64(fp->leases_lost));
	arr = json_object_new_array();
	for (size_t i = 0; i < fp->n; i++) {
		const struct fp_unit *u = fp->u[i];
		json_object *x;

		if (!u->used_ms)
			continue;	/* others' units: not this agent's business */
		x = json_object_new_object();
		json_object_object_add(x, "unit", json_object_new_string(u->unit));
		json_object_object_add(x, "cmk", json_object_new_string(u->key_ref));
		json_object_object_add(x, "provider", json_object_new_string(u->provider));
		json_object_object_add(x, "keyconfig", json_object_new_string(u->keyconfig));
		json_object_object_add(x, "in_use", json_object_new_boolean(in_use(a, u, now)));
		json_object_object_add(x, "holder", json_object_new_string(u->held ? u->holder : ""));
		json_object_object_add(x, "mine", json_object_new_boolean(u->mine));
		json_object_object_add(x, "last_result", json_object_new_string(
			u->have_result ? lc_probe_outcome_name(u->last.outcome) : ""));
		json_object_object_add(x, "last_result_agent",
				       json_object_new_string(u->have_result ? u->last.agent : ""));
		json_object_object_add(x, "last_result_age_ms",
				       json_object_new_int64(u->have_result ? now - u->result_ms : -1));
		json_object_object_add(x, "own_probes", json_object_new_uint64(u->own_probes));
		json_object_object_add(x, "skipped", json_object_new_uint64(u->skipped));
		json_object_object_add(x, "published", json_object_new_uint64(u->published));
		json_object_object_add(x, "publish_failed", json_object_new_uint64(u->publish_failed));
		json_object_object_add(x, "takeovers", json_object_new_uint64(u->takeovers));
		json_object_object_add(x, "holder_lost", json_object_new_uint64(u->holder_lost));
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "units", arr);
	return o;
}
