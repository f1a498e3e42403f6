// SPDX-License-Identifier: GPL-2.0
/*
 * volume.revoked: the kernel says a mapped device was revoked.
 *
 * The target sends a change uevent (LAKECRYPT_EVENT=revoked) whenever it
 * is revoked, also when nobody asked the agent (a `dmsetup message ...
 * revoke` by hand).  udev/61-lakecrypt.rules hands that event to
 * `lakecryptctl notify-revoked`, which sends this operation.  The event is
 * only a hint: the agent believes the target's own status, not the
 * caller.  If the target is revoked and the agent's slot is not, the slot
 * becomes SLOT_REVOKED as a revocation job would leave it (KEK wiped,
 * cause recorded, volumes.json saved), the lakecrypt keys are purged from
 * the keyrings and a revoke record is audited; no second "revoke" is sent
 * to the target (it refuses messages once revoked).  Runs with a->lock
 * held and drops it around the device-mapper and keyring calls.
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
	struct lc_volume *copy;
	struct lc_dm_status st;
	struct vol_slot *s;
	struct lc_error e = { 0 };
	const char *name, *volume;
	unsigned int removed = 0, left = 0;
	int r;

	if ((r = arg_str(args, "name", true, &name, err)) < 0 ||
	    (r = arg_str(args, "volume", false, &volume, err)) < 0)
		return r;
	s = agent_volume(a, name);
	if (!s)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "no open volume is named \"%s\": the agent did not open that device",
			      name);
	if (volume && strcmp(volume, s->v->uuid))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device %s is volume %s, not volume \"%s\" as the event says", name,
			      s->v->uuid, volume);
	copy = slot_snapshot(s, false);
	if (!copy)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	agent_unlock(a);
	r = lc_volume_status(&a->env, copy, &st, err);
	agent_relock(a);
	s = agent_volume(a, name);
	if (r < 0 || !s || strcmp(s->v->uuid, copy->uuid)) {
		lc_volume_free(copy);
		if (r < 0)
			return r;
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "volume %s was closed meanwhile", name);
	}
	if (st.state != LC_DM_STATE_REVOKED) {
		lc_volume_free(copy);
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "the target of %s is %s, not revoked: the notification is ignored",
			      name, lc_dm_state_name(st.state));
	}
	if (s->rs != SLOT_REVOKED && !s->job) {
		lc_secret_free(&s->v->kek);
		s->v->have_kek = false;
		s->rs = SLOT_REVOKED;
		s->error[0] = '\0';
		s->revoker = (int64_t)c->peer.uid;
		snprintf(s->cause, sizeof(s->cause), "%s", NOTIFY_CAUSE);
		s->v->revoked = true;
		snprintf(s->v->revoke_cause, sizeof(s->v->revoke_cause), "%s", NOTIFY_CAUSE);
		(void)agent_volumes_save(a, NULL);
		agent_unlock(a);
		if (a->env.be->kr_purge(a->env.be_ctx, &removed, &left, &e) < 0)
			lc_error_log("volume %s: keyring purge: %s", copy->uuid, e.msg);
		agent_relock(a);
		lc_warn("REVOKED volume %s (/dev/mapper/%s, workspace %s, CMK %s): %s; %u key(s) purged",
			copy->uuid, copy->name, copy->workspace, copy->cmk_id, NOTIFY_CAUSE, removed);
		agent_audit_simple(a, "revoke", e.code ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
				   c->peer.uid, copy->workspace, copy->keyconfig, copy->provider,
				   copy->cmk_id[0] ? copy->cmk_id : copy->provider_ref,
				   e.code ? &e : NULL);
		/* The same compute termination as a revocation the agent made. */
		s = agent_volume(a, name);
		if (s)
			agent_terminate(a, s->v->workspace);
	}
	s = agent_volume(a, name);
	*result = lc_volume_to_json(s ? s->v : copy, &st);
	lc_volume_free(copy);
	return 0;
}
