// SPDX-License-Identifier: GPL-2.0
/*
 * Key-lifecycle operations: workspace.hook (the compute termination hook
 * of a workspace, kept with its binding).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "hook.h"

/*
 * workspace.hook {workspace, signal?, stop_units?, command?, timeout_ms?,
 * clear?}: replace the workspace's hook by the one given (the parts not
 * given are unset), or remove it with clear.  Admins only (the hook runs
 * as root).  Reply: {"workspace", "hook": {...} | null}.
 */
int op_workspace_hook(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	struct lc_ws_hook *h = calloc(1, sizeof(*h));
	const char *ws, *sig = NULL, *cmd = NULL;
	json_object *units = NULL;
	uint64_t timeout = LC_HOOK_TIMEOUT_DEFAULT_MS;
	bool clear = false, tgiven;
	char detail[160];
	int r;

	if (!h)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	tgiven = json_object_object_get_ex(args, "timeout_ms", NULL);
	if ((r = arg_str(args, "workspace", true, &ws, err)) < 0 ||
	    (r = arg_str(args, "signal", false, &sig, err)) < 0 ||
	    (r = arg_str(args, "command", false, &cmd, err)) < 0 ||
	    (r = arg_u64(args, "timeout_ms", false, &timeout, err)) < 0 ||
	    (r = arg_bool(args, "clear", &clear, err)) < 0)
		goto out;
	json_object_object_get_ex(args, "stop_units", &units);
	if (clear && (sig || cmd || units || tgiven)) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "\"clear\" removes the hook: give it alone, without signal, stop_units, command or timeout_ms");
		goto out;
	}
	if (!clear && !sig && !cmd && !units) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "a hook needs at least one of \"signal\", \"stop_units\" or \"command\" (or \"clear\" to remove it)");
		goto out;
	}
	if (sig && (r = lc_hook_signal_parse(sig, &h->signal, err)) < 0)
		goto out;
	if (units) {
		if (!json_object_is_type(units, json_type_array) || !json_object_array_length(units) ||
		    json_object_array_length(units) > LC_HOOK_MAX_UNITS) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "argument \"stop_units\" must be an array of 1 to %d unit names",
				   LC_HOOK_MAX_UNITS);
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(units); i++) {
			json_object *u = json_object_array_get_idx(units, i);
			const char *s = json_object_get_string(u);

			if (!json_object_is_type(u, json_type_string) ||
			    (r = lc_hook_unit_check(s, err)) < 0) {
				if (!json_object_is_type(u, json_type_string))
					r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
						   "argument \"stop_units\" must hold strings");
				goto out;
			}
			snprintf(h->units[h->nunits++], LC_HOOK_UNIT_SIZE, "%s", s);
		}
	}
	if (cmd) {
		if ((r = lc_hook_command_safe(cmd, err)) < 0)
			goto out;
		snprintf(h->command, sizeof(h->command), "%s", cmd);
	}
	if (timeout > LC_HOOK_TIMEOUT_MAX_MS) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "argument \"timeout_ms\" must be %d to %d", LC_HOOK_TIMEOUT_MIN_MS,
			   LC_HOOK_TIMEOUT_MAX_MS);
		goto out;
	}
	h->timeout_ms = (uint32_t)timeout;
	if (h->signal) {
		/* Said now, not found out after a revocation: without these the
		 * signal step finds and signals nobody but root's own. */
		char missing[96];

		if (lc_hook_caps_missing(missing, sizeof(missing)) != 0) {
			r = lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
				   "signal: the agent lacks %s, without which it cannot find or signal other users' processes; under systemd enable the drop-in hook-signal.conf of the examples (share/doc/lakecrypt/examples) as /etc/systemd/system/lakecrypt-agent.service.d/hook-signal.conf, then systemctl daemon-reload and restart lakecrypt-agent (lakecrypt-agent(8), The kill)",
				   missing[0] ? missing : "its capability set (unreadable)");
			goto out;
		}
	}
	r = lc_registry_set_hook(&a->reg, ws, clear ? NULL : h, err);
	if (clear)
		snprintf(detail, sizeof(detail), "hook cleared");
	else
		snprintf(detail, sizeof(detail), "signal=%s units=%zu command=%s timeout_ms=%" PRIu32,
			 h->signal ? lc_hook_signal_name(h->signal) : "none", h->nunits,
			 h->command[0] ? "yes" : "no", h->timeout_ms);
	{
		struct lc_audit_event ev;
		struct lc_error ae;
		char wsc[LC_HDR_NAME_SIZE];

		snprintf(wsc, sizeof(wsc), "%s", ws);
		lc_audit_event_init(&ev, "workspace.hook", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
		ev.peer_uid = c->peer.uid;
		ev.workspace = wsc;
		ev.detail = detail;
		if (r)
			ev.error_class = err->cls;
		agent_unlock(a);
		if (lc_audit_write(&a->audit, &ev, &ae) < 0)
			lc_error_log("audit record for workspace.hook could not be written: %s", ae.msg);
		agent_relock(a);
		if (r < 0)
			goto out;
		lc_info("uid %u set the termination hook of workspace %s: %s",
			(unsigned int)c->peer.uid, wsc, detail);
		*result = json_object_new_object();
		json_object_object_add(*result, "workspace", json_object_new_string(wsc));
		{
			const struct lc_binding *b = lc_registry_binding(&a->reg, wsc);

			json_object_object_add(*result, "hook", b ? lc_hook_to_json(&b->hook) : NULL);
		}
	}
out:
	free(h);
	return r;
}

/* Same CMK: provider and reference. */
/* One probe per CMK and key configuration (each has its own canary). */
static bool same_ref(const struct lc_volume *x, const struct lc_volume *y)
{
	return !strcmp(x->provider, y->provider) && !strcmp(x->provider_ref, y->provider_ref) &&
	       !strcmp(x->keyconfig, y->keyconfig);
}

/*
 * check {cmk?}: probe now every CMK (and key configuration) an open volume
 * depends on, or the one named (a volume's CMK reference or id, or a key
 * configuration's key reference), as the watcher does; each probe is an
 * observation towards confirmation, so a check may revoke, but a denial
 * closer than agent_min_gap_ms() to the last counted one is shown and not
 * counted (two checks seconds apart are one denial).  Reply: {"checks": [report...],
 * "kms_calls": N}.
 */
int op_check(struct agent *a, struct client *c, json_object *args, json_object **result,
	     struct lc_error *err)
{
	struct lc_volume **todo;
	size_t n = 0;
	const char *cmk;
	json_object *arr;
	int64_t calls = 0;
	int r;

	(void)c;
	if ((r = arg_str(args, "cmk", false, &cmk, err)) < 0)
		return r;
	todo = calloc(a->nvols + a->reg.nkc + 1, sizeof(*todo));
	if (!todo)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	for (size_t i = 0; i < a->nvols; i++) {
		const struct lc_volume *v = a->vols[i]->v;
		bool seen = false;

		if (cmk && strcmp(v->provider_ref, cmk) && strcmp(v->cmk_id, cmk))
			continue;
		for (size_t k = 0; k < n && !seen; k++)
			seen = same_ref(todo[k], v);
		if (!seen && (todo[n] = slot_snapshot(a->vols[i], false)))
			n++;
	}
	if (!n && cmk) {
		/* No open volume uses it: the key configurations that name it,
		 * each with its own canary. */
		for (size_t i = 0; i < a->reg.nkc; i++) {
			const struct lc_keyconfig *kc = &a->reg.kc[i];

			if (strcmp(kc->key_ref, cmk) && strcmp(kc->cmk_id, cmk))
				continue;
			todo[n] = agent_keyconfig_volume(kc);
			if (!todo[n])
				break;
			n++;
		}
	}
	if (!n && cmk) {
		free(todo);
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "no open volume and no key configuration uses CMK \"%s\"", cmk);
	}
	arr = json_object_new_array();
	agent_unlock(a);
	for (size_t i = 0; i < n; i++) {
		json_object *rep = json_object_new_object(), *x;

		if (agent_probe_cmk(a, todo[i], rep) < 0) {
			json_object_object_add(rep, "cmk", json_object_new_string(todo[i]->provider_ref));
			json_object_object_add(rep, "outcome", json_object_new_string("unknown"));
			json_object_object_add(rep, "detail",
					       json_object_new_string("this agent lacks the CMK's provider"));
		}
		if (json_object_object_get_ex(rep, "kms_calls", &x))
			calls += json_object_get_int64(x);
		json_object_array_add(arr, rep);
		lc_volume_free(todo[i]);
	}
	agent_relock(a);
	free(todo);
	*result = json_object_new_object();
	json_object_object_add(*result, "checks", arr);
	json_object_object_add(*result, "kms_calls", json_object_new_int64(calls));
	return 0;
}

/* ---- running key-lifecycle operations, for the kill switch ---- */

struct running_op {
	struct lc_op_guard guard;
	char what[64];
	struct {
		char provider[LC_HDR_PROVIDER_SIZE];
		char key_ref[LC_HDR_PROVIDER_REF_SIZE];
		char cmk_id[LC_HDR_CMK_ID_SIZE];
		char keyconfig[LC_HDR_NAME_SIZE];	/* "": not known */
	} cmk[2];
	bool aborted;			/* by agent_ops_abort() */
	unsigned int pins;		/* kills waiting on its guard, a->lock dropped */
	bool ended;			/* agent_op_end() ran while pinned: the last
					 * kill to unpin frees it */
	struct running_op *next;
};

static void op_free(struct running_op *op)
{
	lc_op_guard_destroy(&op->guard);
	free(op);
}

struct running_op *agent_op_begin(struct agent *a, struct client *c, const char *what,
				  const char *from_provider, const char *from_ref,
				  const char *from_cmk_id, const char *to_provider,
				  const char *to_ref, const char *to_cmk_id)
{
	struct running_op *op = calloc(1, sizeof(*op));
	const char *p[2] = { from_provider, to_provider }, *r[2] = { from_ref, to_ref };
	const char *id[2] = { from_cmk_id, to_cmk_id };

	if (!op)
		return NULL;
	lc_op_guard_init(&op->guard);
	snprintf(op->what, sizeof(op->what), "%s", what);
	for (int i = 0; i < 2; i++) {
		snprintf(op->cmk[i].provider, sizeof(op->cmk[i].provider), "%s", p[i] ? p[i] : "");
		snprintf(op->cmk[i].key_ref, sizeof(op->cmk[i].key_ref), "%s", r[i] ? r[i] : "");
		snprintf(op->cmk[i].cmk_id, sizeof(op->cmk[i].cmk_id), "%s", id[i] ? id[i] : "");
	}
	op->next = a->running;
	a->running = op;
	c->env.guard = &op->guard;
	return op;
}

void agent_op_keyconfigs(struct running_op *op, const char *from_kc, const char *to_kc)
{
	const char *k[2] = { from_kc, to_kc };

	for (int i = 0; op && i < 2; i++)
		snprintf(op->cmk[i].keyconfig, sizeof(op->cmk[i].keyconfig), "%s", k[i] ? k[i] : "");
}

bool agent_op_end(struct agent *a, struct client *c, struct running_op *op)
{
	bool aborted = op->aborted || lc_op_guard_aborted(&op->guard);

	for (struct running_op **pp = &a->running; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	if (c->env.guard == &op->guard)
		c->env.guard = NULL;
	if (op->pins)
		op->ended = true;	/* a kill still waits on its guard */
	else
		op_free(op);
	pthread_cond_broadcast(&a->changed);	/* a kill may wait for it */
	return aborted;
}

/* As watch.c's under(): by the CMK's identity, the provider if given,
 * and the key configuration if given and the operation's is known. */
static bool op_under(const struct running_op *op, int i, const char *cmk_id,
		     const char *provider, const char *key_ref, const char *keyconfig)
{
	const char *ids[2] = { key_ref, cmk_id };

	if (!op->cmk[i].provider[0] && !op->cmk[i].key_ref[0])
		return false;
	if (provider && provider[0] && strcmp(op->cmk[i].provider, provider))
		return false;
	if (keyconfig && keyconfig[0] && op->cmk[i].keyconfig[0] &&
	    strcmp(op->cmk[i].keyconfig, keyconfig))
		return false;
	for (int k = 0; k < 2; k++)
		if (ids[k] && ids[k][0] &&
		    ((op->cmk[i].cmk_id[0] && !strcmp(op->cmk[i].cmk_id, ids[k])) ||
		     !strcmp(op->cmk[i].key_ref, ids[k])))
			return true;
	return false;
}

/* One "revoke.abort" record for @op; @held: no write was under way. */
static void abort_audit(struct agent *a, const struct running_op *op, const char *cmk_id,
			const char *provider, const char *key_ref, const char *cause, bool held,
			unsigned int wait_ms)
{
	struct lc_audit_event ev;
	struct lc_error ae;
	char detail[200];

	if (held)
		lc_warn("revocation (%s): the running %s is aborted", cause, op->what);
	else
		lc_warn("revocation (%s): the running %s is aborted; a write it began before the revocation was still under way after %u ms",
			cause, op->what, wait_ms);
	/* One record per operation stopped: what, and under which CMK. */
	snprintf(detail, sizeof(detail),
		 "aborted: the CMK was revoked; the running %s stops%s", op->what,
		 held ? ", nothing more is written" : " after the write it had begun");
	lc_audit_event_init(&ev, "revoke.abort", LC_AUDIT_SUCCESS);
	ev.provider = provider && provider[0] ? provider : NULL;
	ev.cmk_id = cmk_id && cmk_id[0] ? cmk_id : key_ref;
	ev.detail = detail;
	if (lc_audit_write(&a->audit, &ev, &ae) < 0)
		lc_error_log("audit record for revoke.abort could not be written: %s", ae.msg);
}

size_t agent_ops_abort(struct agent *a, const char *cmk_id, const char *provider,
		       const char *key_ref, const char *keyconfig, const char *cause,
		       unsigned int wait_ms)
{
	int64_t end = agent_now_ms() + wait_ms, left;
	struct running_op **busy = NULL;
	size_t n = 0, nbusy = 0, cap = 0;

	/* Every match is flagged at once: none writes anything it had not
	 * begun.  Those in a write now are waited for below. */
	for (struct running_op *op = a->running; op; op = op->next) {
		if (op->aborted || (!op_under(op, 0, cmk_id, provider, key_ref, keyconfig) &&
				    !op_under(op, 1, cmk_id, provider, key_ref, keyconfig)))
			continue;
		op->aborted = true;
		n++;
		if (lc_op_guard_abort(&op->guard, cause, 0)) {
			abort_audit(a, op, cmk_id, provider, key_ref, cause, true, wait_ms);
			continue;
		}
		if (wait_ms && nbusy == cap) {
			struct running_op **t = realloc(busy, (cap ? 2 * cap : 4) * sizeof(*t));

			if (t) {
				busy = t;
				cap = cap ? 2 * cap : 4;
			}
		}
		if (!wait_ms || nbusy == cap) {
			abort_audit(a, op, cmk_id, provider, key_ref, cause, false, wait_ms);
			continue;
		}
		op->pins++;
		busy[nbusy++] = op;
	}
	/* A write under way: waited for within the one bound, a->lock
	 * dropped, so that the revocation jobs already started (and
	 * everything else) go on meanwhile.  The pin keeps @op. */
	for (size_t i = 0; i < nbusy; i++) {
		struct running_op *op = busy[i];
		bool held;

		left = end - agent_now_ms();
		agent_unlock(a);
		held = lc_op_guard_abort(&op->guard, cause, left > 0 ? (unsigned int)left : 0);
		agent_relock(a);
		abort_audit(a, op, cmk_id, provider, key_ref, cause, held, wait_ms);
		if (!--op->pins && op->ended)
			op_free(op);
	}
	free(busy);
	return n;
}

size_t agent_ops_aborted_running(struct agent *a)
{
	size_t n = 0;

	for (struct running_op *op = a->running; op; op = op->next)
		n += op->aborted;
	return n;
}
