// SPDX-License-Identifier: GPL-2.0
/*
 * Key lifecycle operations (admins): volume.rewrap with "all", volume.rotate-kek,
 * volume.shred and workspace.rekey (Documentation/agent-protocol.md,
 * key-hierarchy.md "Rotation and re-keying").
 *
 * Each works on a private copy of the slot's volume (slot_snapshot, with
 * the KEK) without a->lock, the slot marked busy; when the lock comes back
 * the slot's key configuration, provider, provider_ref, cmk_id and
 * cmk_version -- what the watcher and the kill switch match a volume by
 * -- and its KEK are replaced by the copy's, unless the volume was revoked
 * meanwhile (then the KEK stays wiped), and volumes.json is saved.
 */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "rotate.h"

#define JADD(o, k, v) json_object_object_add(o, k, v)

enum rot_kind { OPK_REWRAP, OPK_ROTATE_KEK, OPK_REKEY, OPK_SHRED };

struct rot_ctx {
	enum rot_kind kind;
	const struct lc_keyconfig *to;		/* OPK_REKEY, a copy */
	uint32_t first, last;			/* OPK_SHRED */
	struct lc_shred_result shred;
};

static int rot_slot_ready(const struct vol_slot *s, struct lc_error *err)
{
	if (s->busy)
		return lc_err(err, -EBUSY, LC_ERRC_TRANSIENT,
			      "another close, re-wrap, rotation, re-key or shred of volume %s is in progress: try again when it is done",
			      s->v->name);
	if (s->v->kind != LC_VOLUME_PROJECT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s is a cache volume: it has no header and no wrapped keys", s->v->name);
	if (s->rs != SLOT_LIVE || s->v->revoked)
		return lc_err(err, -EKEYREVOKED, LC_ERRC_INVALID,
			      "volume %s is revoked (revocation %s): close it, and open it again once the CMK allows",
			      s->v->name, agent_slot_state(s));
	return 0;
}

/* Put the copy's keys and CMK identity back into the slot (a->lock). */
static void rot_slot_update(struct agent *a, struct vol_slot *s, const struct lc_volume *v)
{
	struct lc_volume *sv = s->v;

	snprintf(sv->keyconfig, sizeof(sv->keyconfig), "%s", v->keyconfig);
	snprintf(sv->provider, sizeof(sv->provider), "%s", v->provider);
	snprintf(sv->provider_ref, sizeof(sv->provider_ref), "%s", v->provider_ref);
	snprintf(sv->cmk_id, sizeof(sv->cmk_id), "%s", v->cmk_id);
	snprintf(sv->cmk_version, sizeof(sv->cmk_version), "%s", v->cmk_version);
	/* A revocation while the lock was dropped wiped the slot's KEK: it
	 * stays wiped. */
	if (s->rs == SLOT_LIVE && sv->have_kek && v->have_kek &&
	    (sv->kek.len != v->kek.len || memcmp(sv->kek.p, v->kek.p, v->kek.len))) {
		struct lc_secret k = { 0 };

		if (lc_secret_alloc(&k, v->kek.len) == 0) {
			memcpy(k.p, v->kek.p, v->kek.len);
			lc_secret_free(&sv->kek);
			sv->kek = k;
		} else {
			/* The old KEK no longer opens the header: drop it. */
			lc_secret_free(&sv->kek);
			sv->have_kek = false;
			lc_error_log("volume %s: out of memory for its new KEK: the agent no longer holds one (close and open to re-wrap again)",
				     sv->name);
		}
	}
	(void)agent_volumes_save(a, NULL);
}

/* Run @o on slot @s: a copy without the lock, then back into the slot. */
static int rot_run_on_slot(struct agent *a, struct client *c, struct vol_slot *s, struct rot_ctx *o,
		       struct lc_error *err)
{
	static const char *const what[] = { "rewrap", "rotate-kek", "rekey", "shred" };
	struct running_op *op;
	struct lc_volume *v;
	char name[LC_HDR_NAME_SIZE + 32];
	bool aborted;
	int r = rot_slot_ready(s, err);

	if (r < 0)
		return r;
	v = slot_snapshot(s, true);
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	/* Registered with the kill switch under the volume's CMK and, for a
	 * re-key, the one it moves to: a revocation of either stops it
	 * before its header write (ops-life.c, lib/opguard.h). */
	snprintf(name, sizeof(name), "%s of volume %s", what[o->kind], v->name);
	op = agent_op_begin(a, c, name, v->provider, v->provider_ref, v->cmk_id,
			    o->kind == OPK_REKEY ? o->to->provider : NULL,
			    o->kind == OPK_REKEY ? o->to->key_ref : NULL,
			    o->kind == OPK_REKEY ? o->to->cmk_id : NULL);
	agent_op_keyconfigs(op, v->keyconfig, o->kind == OPK_REKEY ? o->to->name : NULL);
	if (!op) {
		lc_volume_free(v);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	s->busy++;
	agent_unlock(a);
	switch (o->kind) {
	case OPK_REWRAP:
		r = lc_volume_rewrap(&c->env, v, err);
		break;
	case OPK_ROTATE_KEK:
		r = lc_volume_rotate_kek(&c->env, v, NULL, err);
		break;
	case OPK_REKEY:
		r = lc_volume_rekey(&c->env, v, o->to, NULL, err);
		break;
	case OPK_SHRED:
		r = lc_volume_shred(&c->env, v, o->first, o->last, NULL, &o->shred, err);
		break;
	}
	agent_relock(a);
	aborted = agent_op_end(a, c, op);
	s->busy--;
	/* Whatever reached the header (a shred whose zeroing failed, a
	 * header whose seqno could not be remembered) is the volume's now. */
	rot_slot_update(a, s, v);
	/* Aborted, but its header write had begun before the revocation: if
	 * that moved the volume to the CMK being revoked, the kill did not
	 * match it by its old CMK: revoke it by the new one now. */
	if (aborted && s->rs == SLOT_LIVE && !r) {
		struct lc_error e;

		(void)agent_revoke_matching(a, v->cmk_id, v->provider, v->provider_ref,
					    "its CMK was revoked while the volume was moved to it", false,
					    c->peer.uid, 0, NULL, NULL, &e);
	}
	lc_volume_free(v);
	return r;
}

static json_object *rot_outcome_json(const struct vol_slot *s, const char *name, const char *what,
				 const struct lc_error *e)
{
	json_object *o = json_object_new_object();

	JADD(o, "name", json_object_new_string(name));
	if (s) {
		JADD(o, "uuid", json_object_new_string(s->v->uuid));
		JADD(o, "workspace", json_object_new_string(s->v->workspace));
		JADD(o, "keyconfig", json_object_new_string(s->v->keyconfig));
		JADD(o, "cmk_id", json_object_new_string(s->v->cmk_id));
		JADD(o, "cmk_version", json_object_new_string(s->v->cmk_version));
	}
	JADD(o, "outcome", json_object_new_string(what));
	if (e) {
		JADD(o, "error", json_object_new_string(e->msg));
		JADD(o, "class", json_object_new_string(lc_err_class_name(e->cls)));
	}
	return o;
}

/*
 * Run @o on every open project volume that @match accepts, one after the
 * other; one failure does not stop the others.  {"results": [...],
 * "done": n, "failed": n, "already": n}.
 */
static json_object *rot_run_all(struct agent *a, struct client *c, struct rot_ctx *o,
			    bool (*match)(const struct lc_volume *v, const void *arg), const void *arg,
			    const char *done_word)
{
	json_object *res = json_object_new_object(), *arr = json_object_new_array();
	char (*names)[LC_HDR_NAME_SIZE] = calloc(a->nvols + 1, sizeof(*names));
	size_t n = 0, done = 0, failed = 0, already = 0;

	for (size_t i = 0; names && i < a->nvols; i++)
		if (a->vols[i]->v->kind == LC_VOLUME_PROJECT && match(a->vols[i]->v, arg))
			snprintf(names[n++], LC_HDR_NAME_SIZE, "%s", a->vols[i]->v->name);
	for (size_t i = 0; i < n; i++) {
		/* Looked up again: the lock was dropped for the previous one. */
		struct vol_slot *s = agent_volume(a, names[i]);
		struct lc_error e = { 0 };
		int r;

		if (!s) {
			lc_err(&e, -ENOENT, LC_ERRC_INVALID, "closed meanwhile");
			json_object_array_add(arr, rot_outcome_json(NULL, names[i], "failed", &e));
			failed++;
			continue;
		}
		r = rot_run_on_slot(a, c, s, o, &e);
		s = agent_volume(a, names[i]);
		if (r == -EALREADY) {
			json_object_array_add(arr, rot_outcome_json(s, names[i], "already", NULL));
			already++;
		} else if (r < 0) {
			if (!e.code)
				lc_err(&e, r, LC_ERRC_INTERNAL, "%s", strerror(-r));
			json_object_array_add(arr, rot_outcome_json(s, names[i], "failed", &e));
			failed++;
		} else {
			json_object_array_add(arr, rot_outcome_json(s, names[i], done_word, NULL));
			done++;
		}
	}
	free(names);
	JADD(res, "results", arr);
	JADD(res, "done", json_object_new_uint64(done));
	JADD(res, "already", json_object_new_uint64(already));
	JADD(res, "failed", json_object_new_uint64(failed));
	return res;
}

static bool rot_match_keyconfig(const struct lc_volume *v, const void *arg)
{
	const char *kc = arg;

	return !kc || !strcmp(v->keyconfig, kc);
}

static int rot_no_volume(const char *name, struct lc_error *err)
{
	return lc_err(err, -ENOENT, LC_ERRC_INVALID,
		      "no open volume is called \"%s\" (status lists the open volumes)", name);
}

static json_object *rot_slot_json(struct agent *a, const struct vol_slot *s)
{
	struct lc_volume *v = slot_snapshot(s, false);
	json_object *o;

	if (!v)
		return NULL;
	v->have_kek = s->v->have_kek;
	o = lc_volume_to_json(v, NULL);
	lc_volume_free(v);
	(void)a;
	return o;
}

int op_volume_rewrap_all(struct agent *a, struct client *c, json_object *args,
			 json_object **result, struct lc_error *err)
{
	struct rot_ctx o = { .kind = OPK_REWRAP };
	const char *kc = NULL;
	int r;

	(void)c;
	r = arg_str(args, "keyconfig", false, &kc, err);
	if (r < 0)
		return r;
	if (kc && !lc_registry_keyconfig(&a->reg, kc))
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no key configuration \"%s\" (keyconfig list shows them)", kc);
	{
		char kcopy[LC_HDR_NAME_SIZE] = "";

		if (kc)
			snprintf(kcopy, sizeof(kcopy), "%s", kc);
		*result = rot_run_all(a, c, &o, rot_match_keyconfig, kc ? kcopy : NULL, "rewrapped");
	}
	return 0;
}

int op_volume_rotate_kek(struct agent *a, struct client *c, json_object *args,
			 json_object **result, struct lc_error *err)
{
	struct rot_ctx o = { .kind = OPK_ROTATE_KEK };
	struct vol_slot *s;
	const char *name;
	int r;

	r = arg_str(args, "name", true, &name, err);
	if (r < 0)
		return r;
	s = agent_volume(a, name);
	if (!s)
		return rot_no_volume(name, err);
	r = rot_run_on_slot(a, c, s, &o, err);
	if (r < 0)
		return r;
	s = agent_volume(a, name);
	*result = s ? rot_slot_json(a, s) : NULL;
	return 0;
}

int op_volume_shred(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err)
{
	struct rot_ctx o = { .kind = OPK_SHRED };
	struct vol_slot *s;
	const char *name, *range;
	json_object *res;
	int r;

	if ((r = arg_str(args, "name", true, &name, err)) < 0 ||
	    (r = arg_str(args, "segments", true, &range, err)) < 0 ||
	    (r = lc_segment_range_parse(range, &o.first, &o.last, err)) < 0)
		return r;
	s = agent_volume(a, name);
	if (!s)
		return rot_no_volume(name, err);
	if (o.last >= s->v->segments && s->v->kind == LC_VOLUME_PROJECT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segments %" PRIu32 "-%" PRIu32 " are out of range: volume %s maps segments 0-%" PRIu32,
			      o.first, o.last, name, s->v->segments - 1);
	r = rot_run_on_slot(a, c, s, &o, err);
	if (r < 0)
		return r;
	res = json_object_new_object();
	JADD(res, "name", json_object_new_string(name));
	JADD(res, "first", json_object_new_int64(o.shred.first));
	JADD(res, "last", json_object_new_int64(o.shred.last));
	JADD(res, "keys_wiped", json_object_new_boolean(o.shred.wiped));
	JADD(res, "kek_rotated", json_object_new_boolean(true));
	JADD(res, "zeroed", json_object_new_boolean(o.shred.zeroed));
	JADD(res, "offset", json_object_new_uint64(o.shred.offset));
	JADD(res, "length", json_object_new_uint64(o.shred.length));
	JADD(res, "discard", json_object_new_string(o.shred.discard));
	*result = res;
	return 0;
}

static bool rot_match_workspace(const struct lc_volume *v, const void *arg)
{
	return !strcmp(v->workspace, (const char *)arg);
}

int op_workspace_rekey(struct agent *a, struct client *c, json_object *args,
		       json_object **result, struct lc_error *err)
{
	struct rot_ctx o = { .kind = OPK_REKEY };
	struct lc_provider_reply rep;
	struct lc_audit_event ev;
	const struct lc_keyconfig *kc;
	struct lc_keyconfig to;
	struct lc_provider *p;
	char ws[LC_HDR_NAME_SIZE];
	const char *wsarg, *kcname;
	json_object *res;
	int r;

	if ((r = arg_str(args, "workspace", true, &wsarg, err)) < 0 ||
	    (r = arg_str(args, "keyconfig", true, &kcname, err)) < 0 ||
	    (r = lc_name_check("workspace", wsarg, err)) < 0)
		return r;
	snprintf(ws, sizeof(ws), "%s", wsarg);
	if (!lc_registry_binding(&a->reg, ws))
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "workspace %s is not bound: bind it with `lakecryptctl workspace bind %s --keyconfig %s`",
			      ws, ws, kcname);
	kc = lc_registry_keyconfig(&a->reg, kcname);
	if (!kc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no key configuration \"%s\" (keyconfig list shows them)", kcname);
	to = *kc;
	o.to = &to;
	p = agent_provider(a, to.provider);
	if (!p)
		return lc_err(err, -ENOPROTOOPT, LC_ERRC_MISCONFIG,
			      "KMS provider \"%s\" of key configuration %s is not available in this agent",
			      to.provider, to.name);
	/* The new CMK must be usable before anything moves to it. */
	agent_unlock(a);
	memset(&rep, 0, sizeof(rep));
	r = lc_provider_key_state(p, to.key_ref, &rep, err);
	if (!r && rep.state != LC_KEY_ENABLED)
		r = lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
			   "CMK %s of key configuration %s is %s: re-keying needs an enabled key",
			   to.key_ref, to.name, lc_key_state_name(rep.state));
	lc_audit_event_init(&ev, "cmk.key_state", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
	ev.peer_uid = c->peer.uid;
	ev.workspace = ws;
	ev.keyconfig = to.name;
	ev.provider = to.provider;
	ev.cmk_id = rep.key_id[0] ? rep.key_id : to.key_ref;
	ev.cmk_version = rep.key_version[0] ? rep.key_version : NULL;
	ev.request_id = rep.request_id[0] ? rep.request_id : NULL;
	ev.error_class = r ? err->cls : LC_ERRC_NONE;
	(void)lc_audit_write(&a->audit, &ev, NULL);
	agent_relock(a);
	if (r < 0)
		return r;
	/* The binding moves first: new volumes and re-opened ones use the
	 * new key configuration; a volume that fails below keeps running
	 * under the old CMK and is named in the reply (run the command
	 * again).  Operators and devices stay as they were. */
	r = lc_registry_bind(&a->reg, ws, to.name, NULL, err);
	agent_audit_locked(a, "workspace.rekey", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
			   c->peer.uid, ws, to.name, to.provider, to.cmk_id, err);
	if (r < 0)
		return r;
	lc_info("uid %u: workspace %s re-keyed to key configuration %s (%s %s)",
		(unsigned int)c->peer.uid, ws, to.name, to.provider, to.key_ref);
	res = rot_run_all(a, c, &o, rot_match_workspace, ws, "rekeyed");
	/* Cache volumes have no wrapped key: they belong to the workspace's
	 * CMK for revocation, so they follow it at once. */
	{
		json_object *arr, *n;
		int64_t done = 0;

		json_object_object_get_ex(res, "results", &arr);
		json_object_object_get_ex(res, "done", &n);
		for (size_t i = 0; i < a->nvols; i++) {
			struct vol_slot *s = a->vols[i];
			struct lc_volume *v = s->v;

			if (v->kind != LC_VOLUME_CACHE || strcmp(v->workspace, ws) || s->rs != SLOT_LIVE)
				continue;
			snprintf(v->keyconfig, sizeof(v->keyconfig), "%s", to.name);
			snprintf(v->provider, sizeof(v->provider), "%s", to.provider);
			snprintf(v->provider_ref, sizeof(v->provider_ref), "%s", to.key_ref);
			snprintf(v->cmk_id, sizeof(v->cmk_id), "%s", to.cmk_id[0] ? to.cmk_id : to.key_ref);
			snprintf(v->cmk_version, sizeof(v->cmk_version), "%s", rep.key_version);
			json_object_array_add(arr, rot_outcome_json(s, v->name, "rekeyed", NULL));
			done++;
		}
		if (done) {
			json_object_object_add(res, "done",
					       json_object_new_int64(json_object_get_int64(n) + done));
			(void)agent_volumes_save(a, NULL);
		}
	}
	JADD(res, "workspace", json_object_new_string(ws));
	JADD(res, "keyconfig", json_object_new_string(to.name));
	*result = res;
	return 0;
}

/* A closed volume, after its workspace was re-keyed (or to move it alone):
 * from the key configuration @from to the workspace's binding. */
int op_volume_rekey(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err)
{
	struct lc_open_args oa = { 0 };
	const struct lc_keyconfig *kc, *fkc;
	struct lc_keyconfig to, from;
	struct lc_header *h = NULL;
	struct running_op *op;
	struct uuid_claim uk;
	const char *fromname;
	char uuid[LC_UUID_STR_LEN], hbuf[PATH_MAX];
	int r;

	if ((r = arg_str(args, "device", true, &oa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &oa.workspace, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &oa.header, err)) < 0 ||
	    (r = arg_str(args, "from", true, &fromname, err)) < 0 ||
	    (r = lc_name_check("workspace", oa.workspace, err)) < 0 ||
	    (r = lc_registry_resolve(&a->reg, oa.workspace, &kc, err)) < 0)
		return r;
	if (oa.device[0] != '/')
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"device\" is \"%s\": expected an absolute path", oa.device);
	fkc = lc_registry_keyconfig(&a->reg, fromname);
	if (!fkc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no key configuration \"%s\" (keyconfig list shows them)", fromname);
	/* An open volume is re-keyed with workspace.rekey, which keeps what
	 * the watcher follows current; its (detached) header is not touched
	 * behind the agent's back. */
	{
		char rd[PATH_MAX], rh[PATH_MAX];
		bool have_d = agent_realpath(c, oa.device, rd);	/* paths.c */
		bool have_h = oa.header && agent_realpath(c, oa.header, rh);

		for (size_t i = 0; i < a->nvols; i++) {
			const struct lc_volume *ov = a->vols[i]->v;

			if ((have_d && !strcmp(ov->device, rd)) ||
			    (have_h && ov->header[0] && !strcmp(ov->header, rh)))
				return lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "%s is open as /dev/mapper/%s: re-key open volumes with `lakecryptctl workspace rekey %s --keyconfig %s`",
					      have_h && ov->header[0] && !strcmp(ov->header, rh) ? oa.header : oa.device,
					      ov->name, oa.workspace, kc->name);
		}
	}
	to = *kc;
	from = *fkc;
	oa.kc = &to;
	/* ... nor under another path (a loop device, a hard link): its uuid
	 * is claimed until the header is written (uuid-claim.c). */
	if ((r = agent_uuid_claim(a, &uk, &agent_uc_rekey, oa.device, oa.header, err)) < 0)
		return r;
	op = agent_op_begin(a, c, "rekey of a closed volume", from.provider, from.key_ref,
			    from.cmk_id, to.provider, to.key_ref, to.cmk_id);
	agent_op_keyconfigs(op, from.name, to.name);
	if (!op) {
		agent_uuid_release(a, &uk);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	agent_unlock(a);
	r = lc_volume_rekey_closed(&c->env, &oa, &from, &h, err);
	agent_relock(a);
	(void)agent_op_end(a, c, op);
	agent_uuid_release(a, &uk);
	if (r < 0)
		return r;
	lc_header_uuid_str(h, uuid);
	*result = json_object_new_object();
	JADD(*result, "uuid", json_object_new_string(uuid));
	JADD(*result, "workspace", json_object_new_string(h->workspace));
	JADD(*result, "project", json_object_new_string(h->project));
	JADD(*result, "keyconfig", json_object_new_string(h->keyconfig));
	JADD(*result, "provider", json_object_new_string(h->provider));
	JADD(*result, "cmk_id", json_object_new_string(h->cmk_id));
	JADD(*result, "cmk_version", json_object_new_string(h->cmk_version));
	lc_header_free(h);
	return 0;
}
