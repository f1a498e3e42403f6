// SPDX-License-Identifier: GPL-2.0
/*
 * volume.revoked: the kernel says a mapped device was revoked.
 *
 * The target sends a change uevent (LAKECRYPT_EVENT=revoked) whenever it
 * is revoked, also when nobody asked the agent (a `dmsetup message ...
 * revoke` by hand).  udev/61-lakecrypt.rules hands that event to
 * `lakecryptctl notify-revoked`, which sends this operation.  The event is
 * only a hint: the agent believes the target's own status, not the
 * caller.  If the target is revoked and the agent still held the volume
 * as active, the agent finishes the kill switch as lc_volume_revoke()
 * does (every lakecrypt key purged from the keyrings, KEK wiped, volume
 * marked revoked with its cause, the list of open volumes saved, a revoke
 * audit record) without sending the target a second revoke.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "secmem.h"

#define NOTIFY_CAUSE "revoked in the kernel, not through the agent (reported by udev)"

int op_volume_revoked(struct agent *a, struct client *c, json_object *args, json_object **result,
		      struct lc_error *err)
{
	struct lc_dm_status st;
	struct lc_volume *v;
	struct lc_error e = { 0 };
	const char *name, *volume;
	unsigned int removed = 0, left = 0;
	int r;

	if ((r = arg_str(args, "name", true, &name, err)) < 0 ||
	    (r = arg_str(args, "volume", false, &volume, err)) < 0)
		return r;
	v = agent_volume(a, name);
	if (!v)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "no open volume is named \"%s\": the agent did not open that device",
			      name);
	if (volume && strcmp(volume, v->uuid))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device %s is volume %s, not volume \"%s\" as the event says", name,
			      v->uuid, volume);
	if (!v->revoked) {
		r = lc_volume_status(&a->env, v, &st, err);
		if (r < 0)
			return r;
		if (st.state != LC_DM_STATE_REVOKED)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "the target of %s is %s, not revoked: the notification is ignored",
				      name, lc_dm_state_name(st.state));
		if (a->env.be->kr_purge(a->env.be_ctx, &removed, &left, &e) < 0)
			lc_error_log("volume %s: keyring purge: %s", v->uuid, e.msg);
		lc_secret_free(&v->kek);
		v->have_kek = false;
		v->revoked = true;
		snprintf(v->revoke_cause, sizeof(v->revoke_cause), "%s", NOTIFY_CAUSE);
		lc_warn("REVOKED volume %s (/dev/mapper/%s, workspace %s, CMK %s): %s; %u key(s) purged",
			v->uuid, v->name, v->workspace, v->cmk_id, NOTIFY_CAUSE, removed);
		agent_volumes_save(a);
		agent_audit_simple(a, "revoke", e.code ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
				   c->peer.uid, v->workspace, v->keyconfig, v->provider,
				   v->cmk_id[0] ? v->cmk_id : v->provider_ref, e.code ? &e : NULL);
	}
	if (lc_volume_status(&a->env, v, &st, &e) < 0)
		*result = lc_volume_to_json(v, NULL);
	else
		*result = lc_volume_to_json(v, &st);
	return 0;
}
