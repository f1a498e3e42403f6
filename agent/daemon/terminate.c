// SPDX-License-Identifier: GPL-2.0
/*
 * Compute termination: once the kernel confirms a volume revoked (or the
 * revocation job gives up on it), its workspace's hook (registry binding,
 * lib/hook.h) runs for it: systemd units stopped, the processes holding
 * the revoked devices signalled, a command run.  The same happens after a
 * revoke the kernel reported on its own (volume.revoked, udev).
 *
 * One thread per workspace at a time: volumes of a workspace revoked while
 * its hook runs are covered by a second run right after it, and a volume
 * is covered once (vol_slot.hooked).  Each run is audited
 * ("workspace.terminate", detail = what each step did) and its outcome is
 * kept for status.  a->lock is held except around the run itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "hook.h"

struct ws_term {
	char workspace[LC_HDR_NAME_SIZE];
	bool running, again;
	struct ws_term *reserve_next;	/* in a->reserve_terms */
	uint64_t runs;
	/* The last run (have_last). */
	bool have_last;
	int64_t last_at;		/* epoch seconds, its end */
	char volumes[1024];
	char reason[256];
	struct lc_hook_result res;
};

static struct ws_term *term_of(struct agent *a, const char *ws, bool create)
{
	struct ws_term **t, *n;

	for (size_t i = 0; i < a->nterms; i++)
		if (!strcmp(a->terms[i]->workspace, ws))
			return a->terms[i];
	if (!create)
		return NULL;
	n = calloc(1, sizeof(*n));
	t = n ? realloc(a->terms, (a->nterms + 1) * sizeof(*t)) : NULL;
	if (!t) {
		free(n);
		return NULL;
	}
	a->terms = t;
	snprintf(n->workspace, sizeof(n->workspace), "%s", ws);
	a->terms[a->nterms++] = n;
	return n;
}

static bool needs_hook(const struct vol_slot *s, const char *ws)
{
	return !s->hooked && !strcmp(s->v->workspace, ws) &&
	       (s->rs == SLOT_REVOKED || (s->rs == SLOT_REVOKE_FAILED && !s->job));
}

/* One run over the volumes not covered yet; the lock is dropped around it. */
static void run_once(struct agent *a, struct ws_term *t)
{
	const struct lc_binding *b = lc_registry_binding(&a->reg, t->workspace);
	struct lc_ws_hook *hook = NULL;
	char (*names)[LC_HDR_NAME_SIZE] = NULL;
	char volumes[sizeof(t->volumes)] = "", reason[sizeof(t->reason)] = "";
	dev_t *devs = NULL;
	size_t n = 0, off = 0;
	struct lc_hook_result res;
	struct lc_audit_event ev;
	struct lc_error ae;
	bool regular = a->env.be && a->env.be->regular_files;

	names = calloc(a->nvols + 1, sizeof(*names));
	if (b && lc_hook_is_set(&b->hook) && (hook = malloc(sizeof(*hook))))
		*hook = b->hook;
	for (size_t i = 0; names && i < a->nvols; i++) {
		struct vol_slot *s = a->vols[i];

		if (!needs_hook(s, t->workspace))
			continue;
		s->hooked = true;
		snprintf(names[n++], LC_HDR_NAME_SIZE, "%s", s->v->name);
		if (!reason[0])
			snprintf(reason, sizeof(reason), "%s", s->cause);
	}
	if (!n || !hook) {
		if (n)
			lc_debug("workspace %s has no termination hook: %zu revoked volume(s), nothing to run",
				 t->workspace, n);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (off < sizeof(volumes))
			off += (size_t)snprintf(volumes + off, sizeof(volumes) - off, "%s%s",
						i ? "," : "", names[i]);
	t->runs++;
	agent_unlock(a);
	devs = calloc(n, sizeof(*devs));
	for (size_t i = 0; devs && i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		snprintf(path, sizeof(path), "/dev/mapper/%s", names[i]);
		if (!regular && stat(path, &st) == 0 && S_ISBLK(st.st_mode))
			devs[i] = st.st_rdev;
	}
	lc_warn("workspace %s: running its termination hook for %s (%s)", t->workspace, volumes,
		reason);
	(void)lc_hook_run(hook, NULL, t->workspace, volumes, reason, devs, devs ? n : 0, &res);
	if (res.ok)
		lc_info("workspace %s: termination hook done in %llu ms: %s", t->workspace,
			(unsigned long long)res.duration_ms, res.detail);
	else
		lc_error_log("workspace %s: termination hook FAILED after %llu ms: %s",
			     t->workspace, (unsigned long long)res.duration_ms, res.detail);
	lc_audit_event_init(&ev, "workspace.terminate",
			    res.ok ? LC_AUDIT_SUCCESS : LC_AUDIT_FAILURE);
	ev.workspace = t->workspace;	/* t lives as long as the agent */
	ev.latency_ms = (int64_t)res.duration_ms;
	ev.detail = res.detail;
	if (!res.ok)
		ev.error_class = LC_ERRC_INTERNAL;
	if (lc_audit_write(&a->audit, &ev, &ae) < 0)
		lc_error_log("audit record for workspace.terminate could not be written: %s", ae.msg);
	agent_relock(a);
	t->have_last = true;
	t->last_at = (int64_t)time(NULL);
	t->res = res;
	snprintf(t->volumes, sizeof(t->volumes), "%s", volumes);
	snprintf(t->reason, sizeof(t->reason), "%s", reason);
	pthread_cond_broadcast(&a->changed);
out:
	free(devs);
	free(names);
	free(hook);
}

struct term_job {
	struct agent *a;
	struct ws_term *t;
};

static void *term_job_thread(void *arg)
{
	struct term_job *j = arg;
	struct agent *a = j->a;
	struct ws_term *t = j->t;

	free(j);
	agent_relock(a);
	agent_terminate_run(a, t);
	agent_thread_done(a);
	agent_unlock(a);
	return NULL;
}

void agent_terminate_run(struct agent *a, struct ws_term *t)
{
	while (t->again) {
		t->again = false;
		run_once(a, t);
	}
	t->running = false;
}

struct ws_term **agent_terminate_next(struct ws_term *t)
{
	return &t->reserve_next;
}

void agent_terminate(struct agent *a, const char *workspace)
{
	struct ws_term *t;
	struct term_job *j;

	if (!workspace || !workspace[0])
		return;
	t = term_of(a, workspace, true);
	if (!t) {
		lc_error_log("workspace %s: out of memory: its termination hook does not run",
			     workspace);
		return;
	}
	t->again = true;
	if (t->running)
		return;
	j = malloc(sizeof(*j));
	if (j) {
		j->a = a;
		j->t = t;
		t->running = true;
		if (agent_spawn(a, term_job_thread, j) == 0)
			return;
		free(j);
	}
	/* No thread to be had (TasksMax, memory): the kill switch's own. */
	if (agent_reserve_term(a, t) == 0) {
		lc_warn("workspace %s: no new thread for its termination hook; it runs on the kill switch's reserve thread",
			workspace);
		return;
	}
	t->running = false;
	lc_error_log("workspace %s: cannot start a thread for its termination hook; it runs at the next revocation report",
		     workspace);
}

static const char *step_status(int st, char *buf, size_t size)
{
	if (st == -1)
		return NULL;
	if (st == -2)
		return "timeout";
	if (st == -3)
		return "not started";
	if (st == -4)
		return "refused (unsafe program)";
	snprintf(buf, size, st >= 128 ? "signal %d" : "exit %d", st >= 128 ? st - 128 : st);
	return buf;
}

json_object *agent_terminate_json(struct agent *a, struct client *c)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < a->nterms; i++) {
		const struct ws_term *t = a->terms[i];
		json_object *o, *l;
		char b1[32], b2[32];
		const char *s;

		if (!agent_ws_visible(a, c, t->workspace))
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "workspace", json_object_new_string(t->workspace));
		json_object_object_add(o, "running", json_object_new_boolean(t->running));
		json_object_object_add(o, "runs", json_object_new_uint64(t->runs));
		if (t->have_last) {
			l = json_object_new_object();
			json_object_object_add(l, "at", json_object_new_int64(t->last_at));
			json_object_object_add(l, "outcome",
					       json_object_new_string(t->res.ok ? "success" : "failure"));
			json_object_object_add(l, "volumes", json_object_new_string(t->volumes));
			json_object_object_add(l, "reason", json_object_new_string(t->reason));
			json_object_object_add(l, "detail", json_object_new_string(t->res.detail));
			json_object_object_add(l, "signalled", json_object_new_uint64(t->res.signalled));
			json_object_object_add(l, "survivors", json_object_new_uint64(t->res.survivors));
			if ((s = step_status(t->res.units_status, b1, sizeof(b1))))
				json_object_object_add(l, "units", json_object_new_string(s));
			if ((s = step_status(t->res.command_status, b2, sizeof(b2))))
				json_object_object_add(l, "command", json_object_new_string(s));
			json_object_object_add(l, "duration_ms",
					       json_object_new_uint64(t->res.duration_ms));
			json_object_object_add(o, "last", l);
		}
		json_object_array_add(arr, o);
	}
	return arr;
}

void agent_terminate_free(struct agent *a)
{
	for (size_t i = 0; i < a->nterms; i++)
		free(a->terms[i]);
	free(a->terms);
	a->terms = NULL;
	a->nterms = 0;
}
