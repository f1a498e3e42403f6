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
 *
 * A udev event can be lost (the agent was down or stalled, the RUN timed
 * out; udev does not retry): agent_check_kernel_revoked() asks every
 * volume's target at the agent's start and at every watcher tick, and
 * finishes the same way for one found revoked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "secmem.h"

#define NOTIFY_CAUSE "revoked in the kernel, not through the agent (reported by udev)"
#define FOUND_CAUSE "revoked in the kernel, not through the agent (found by the agent's check of the target)"

/*
 * The target of slot @s (still the volume of @copy) is revoked and the
 * agent's slot is not: finish the kill switch as a revocation job would
 * leave it (KEK wiped, cause recorded, volumes.json saved), purge the
 * lakecrypt keys from the keyrings, audit a revoke record through @env
 * (the caller's, or the agent's own) and run the workspace's termination
 * hook.  No second "revoke" goes to the target (it refuses messages once
 * revoked).  Runs with a->lock held; drops it around the keyring purge and
 * the audit write (a stalled audit disk).
 */
static void kernel_revoked(struct agent *a, struct vol_slot *s, const struct lc_volume *copy,
			   const struct lc_volume_env *env, int64_t revoker, const char *cause)
{
	struct lc_error e = { 0 };
	unsigned int removed = 0, left = 0;

	lc_secret_free(&s->v->kek);
	s->v->have_kek = false;
	s->rs = SLOT_REVOKED;
	s->error[0] = '\0';
	s->revoker = revoker;
	snprintf(s->cause, sizeof(s->cause), "%s", cause);
	s->v->revoked = true;
	snprintf(s->v->revoke_cause, sizeof(s->v->revoke_cause), "%s", cause);
	(void)agent_volumes_save(a, NULL);
	agent_unlock(a);
	if (a->env.be->kr_purge(a->env.be_ctx, &removed, &left, &e) < 0)
		lc_error_log("volume %s: keyring purge: %s", copy->uuid, e.msg);
	lc_warn("REVOKED volume %s (/dev/mapper/%s, workspace %s, CMK %s): %s; %u key(s) purged",
		copy->uuid, copy->name, copy->workspace, copy->cmk_id, cause, removed);
	/* The record names the project, volume and device too. */
	lc_volume_audit_revoke(env, copy, false, e.code ? &e : NULL, -1);
	agent_relock(a);
	/* The same compute termination as a revocation the agent made, for
	 * the workspace of the volume that was revoked (the slot may be gone
	 * or reused by now). */
	agent_terminate(a, copy->workspace);
}

void agent_check_kernel_revoked(struct agent *a)
{
	char (*names)[LC_DM_NAME_MAX + 1];
	size_t n = a->nvols;

	if (!n)
		return;
	names = calloc(n, sizeof(*names));
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		snprintf(names[i], sizeof(names[i]), "%s", a->vols[i]->v->name);
	for (size_t i = 0; i < n; i++) {
		struct vol_slot *s = agent_volume(a, names[i]);
		struct lc_volume *copy;
		struct lc_dm_status st;
		struct lc_error e = { 0 };
		int r;

		if (!s || s->rs == SLOT_REVOKED || s->job)
			continue;
		copy = slot_snapshot(s, false);
		if (!copy)
			continue;
		agent_unlock(a);
		r = lc_volume_status(&a->env, copy, &st, &e);
		agent_relock(a);
		s = agent_volume(a, names[i]);
		if (r == 0 && st.state == LC_DM_STATE_REVOKED && s && !strcmp(s->v->uuid, copy->uuid) &&
		    s->rs != SLOT_REVOKED && !s->job)
			kernel_revoked(a, s, copy, &a->env, -1, FOUND_CAUSE);
		lc_volume_free(copy);
	}
	free(names);
}

int op_volume_revoked(struct agent *a, struct client *c, json_object *args, json_object **result,
		      struct lc_error *err)
{
	struct lc_volume *copy;
	struct lc_dm_status st;
	struct vol_slot *s;
	const char *name, *volume;
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
	if (s->rs != SLOT_REVOKED && !s->job)
		kernel_revoked(a, s, copy, &c->env, (int64_t)c->peer.uid, NOTIFY_CAUSE);
	s = agent_volume(a, name);
	*result = lc_volume_to_json(s ? s->v : copy, &st);
	lc_volume_free(copy);
	return 0;
}
