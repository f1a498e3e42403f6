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
		if ((r = lc_hook_command_check(cmd, err)) < 0)
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
		if (!clear && h->signal) {
			/* Said now, not found out after a revocation. */
			char missing[96];
			json_object *w = json_object_new_array();

			if (lc_hook_caps_missing(missing, sizeof(missing)) != 0) {
				char msg[256];

				snprintf(msg, sizeof(msg),
					 "the agent lacks %s: it cannot find or signal other users' processes (see lakecrypt-agent(8), termination hooks)",
					 missing[0] ? missing : "its capability set (unreadable)");
				lc_warn("workspace %s: %s", wsc, msg);
				json_object_array_add(w, json_object_new_string(msg));
			}
			json_object_object_add(*result, "warnings", w);
		}
		{
			const struct lc_binding *b = lc_registry_binding(&a->reg, wsc);

			json_object_object_add(*result, "hook", b ? lc_hook_to_json(&b->hook) : NULL);
		}
	}
out:
	free(h);
	return r;
}
