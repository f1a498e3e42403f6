// SPDX-License-Identifier: GPL-2.0
/*
 * Operator operations (volumes, caches, status, audit trail) and the
 * admin's volume.rewrap and revoke.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "header.h"

#define JADD(o, k, v) json_object_object_add(o, k, v)
#define AUDIT_TAIL_DEFAULT	50
#define AUDIT_TAIL_MAX		10000
/* Text of one audit.tail page: its JSON stays well inside LC_PROTO_MAX_MSG. */
#define AUDIT_PAGE_BYTES	(256 * 1024)

int op_ping(struct agent *a, struct client *c, json_object *args, json_object **result,
	    struct lc_error *err)
{
	(void)a;
	(void)args;
	(void)err;
	*result = json_object_new_object();
	JADD(*result, "version", json_object_new_string(LC_AGENT_VERSION));
	JADD(*result, "role", json_object_new_string(lc_role_name(c->role)));
	JADD(*result, "uid", json_object_new_int64(c->peer.uid));
	return 0;
}

/* The agent does not share the client's working directory. */
static int arg_path(json_object *args, const char *name, bool required, const char **out,
		    struct lc_error *err)
{
	int r = arg_str(args, name, required, out, err);

	if (r < 0 || !*out || **out == '/')
		return r;
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "argument \"%s\" is \"%s\": expected an absolute path (the agent does not share the caller's working directory)",
		      name, *out);
}

/*
 * The detached header argument: a bare name (what operators give) is a
 * file in the agent's own header directory; an absolute path anywhere
 * else is an admin's choice only.
 */
int arg_header(struct agent *a, struct client *c, json_object *args, char *buf, size_t size,
	       const char **out, struct lc_error *err)
{
	const char *h;
	int r = arg_str(args, "header", false, &h, err);

	*out = NULL;
	if (r < 0 || !h)
		return r;
	if (strchr(h, '/')) {
		if (h[0] != '/')
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "argument \"header\" is \"%s\": expected a name (kept in the agent's header directory) or, for admins, an absolute path",
				      h);
		if (c->role != LC_ROLE_ADMIN)
			return lc_err(err, -EACCES, LC_ERRC_REFUSED,
				      "only an admin may put a detached header at a path (%s); operators give a name, and the header is kept in %s",
				      h, a->header_dir);
		*out = h;
		return 0;
	}
	r = lc_name_check("detached header name", h, err);
	if (r < 0)
		return r;
	if (snprintf(buf, size, "%s/%s", a->header_dir, h) >= (int)size)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INVALID, "header path too long");
	*out = buf;
	return 0;
}

/*
 * Room for one more detached header in the agent's header directory: the
 * state directory also holds the registry, the rollback memory and the
 * local KMS, which an operator must not be able to starve.  At most
 * HEADER_DIR_MAX files, and the file system keeps HEADER_DIR_RESERVE bytes
 * (64 MiB) and a tenth of its size free.
 */
#define HEADER_DIR_MAX		1024
#define HEADER_DIR_RESERVE	(64ull << 20)
static int header_room(struct agent *a, struct lc_error *err)
{
	struct statvfs sv;
	uint64_t free_b, total_b;
	size_t n = 0;
	DIR *d;

	if (statvfs(a->header_dir, &sv) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot check %s: %s", a->header_dir,
			      strerror(errno));
	free_b = (uint64_t)sv.f_bavail * sv.f_frsize;
	total_b = (uint64_t)sv.f_blocks * sv.f_frsize;
	/* ramfs (f_blocks 0) keeps no account: only the count applies. */
	if (total_b && (free_b < HEADER_DIR_RESERVE || free_b < total_b / 10))
		return lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			      "the agent's header directory %s has %" PRIu64 " MiB free, less than it keeps for itself: an admin removes old headers or puts the header at a path",
			      a->header_dir, free_b >> 20);
	d = opendir(a->header_dir);
	for (struct dirent *de; d && (de = readdir(d));)
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	if (n >= HEADER_DIR_MAX)
		return lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			      "the agent's header directory %s holds %zu headers, its limit: an admin removes old ones",
			      a->header_dir, n);
	return 0;
}

/* The device allow-list that applies to @c in @workspace, copied into
 * @copy (the lock is dropped while it is used); NULL for an admin. */
static const struct lc_ws_access *device_policy(struct agent *a, struct client *c,
						const char *workspace, struct lc_ws_access *copy)
{
	const struct lc_binding *b;

	if (c->role == LC_ROLE_ADMIN)
		return NULL;
	b = lc_registry_binding(&a->reg, workspace);
	if (b)
		*copy = b->access;
	else
		memset(copy, 0, sizeof(*copy));
	return copy;
}

static int no_volume(const char *name, struct lc_error *err)
{
	return lc_err(err, -ENOENT, LC_ERRC_INVALID,
		      "no open volume is called \"%s\" (status lists the open volumes)", name);
}

/* A slot as status shows it, taken under the lock. */
struct slot_view {
	struct lc_volume *v;		/* copy, no KEK */
	enum slot_revoke rs;
	const char *rs_name;
	unsigned int attempts;
	char error[LC_ERROR_MSG_MAX];
};

static int view_take(const struct vol_slot *s, struct slot_view *w)
{
	w->v = slot_snapshot(s, false);
	if (w->v)
		w->v->have_kek = s->v->have_kek;	/* shown, not copied */
	w->rs = s->rs;
	w->rs_name = agent_slot_state(s);
	w->attempts = s->attempts;
	snprintf(w->error, sizeof(w->error), "%s", s->error);
	return w->v ? 0 : -ENOMEM;
}

/*
 * The "open volume" object.  "state" is the kernel's (status of the
 * mapping), "unknown" if it cannot be read, never the agent's belief;
 * "revocation" says what the agent did about it.  Blocking dm call: call
 * without the lock.
 */
static json_object *view_json(const struct lc_volume_env *env, struct slot_view *w)
{
	struct lc_dm_status st;
	struct lc_error e;
	json_object *o, *rv;
	bool have = lc_volume_status(env, w->v, &st, &e) == 0;

	o = lc_volume_to_json(w->v, have ? &st : NULL);
	if (!o)
		return NULL;
	if (!have)
		JADD(o, "dm_error", json_object_new_string(e.msg));
	JADD(o, "state", json_object_new_string(!have ? "unknown" :
						 st.state == LC_DM_STATE_REVOKED ? "revoked" :
						 "active"));
	rv = json_object_new_object();
	JADD(rv, "state", json_object_new_string(w->rs_name));
	JADD(rv, "attempts", json_object_new_int64(w->attempts));
	if (w->error[0])
		JADD(rv, "error", json_object_new_string(w->error));
	JADD(o, "revocation", rv);
	return o;
}

/* The object of one slot: copied under the lock, status read without. */
static json_object *volume_json(struct agent *a, struct client *c, const struct vol_slot *s)
{
	struct slot_view w;
	json_object *o;

	if (view_take(s, &w) < 0)
		return NULL;
	agent_unlock(a);
	o = view_json(&c->env, &w);
	agent_relock(a);
	lc_volume_free(w.v);
	return o;
}

int op_volume_format(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err)
{
	struct lc_format_args fa = { 0 };
	const struct lc_keyconfig *kc;
	struct lc_keyconfig kcopy;
	struct lc_ws_access acopy;
	struct lc_header *h = NULL;
	struct uuid_claim uk = { 0 };
	struct lc_storage_pin pins[2];
	uint64_t key_size = a->cfg.key_size, seg = a->cfg.segment_sectors * 512, ss = 512;
	char uuid[LC_UUID_STR_LEN], hbuf[PATH_MAX];
	json_object *o;
	int r;

	if ((r = arg_path(args, "device", true, &fa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &fa.workspace, err)) < 0 ||
	    (r = arg_str(args, "project", true, &fa.project, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &fa.header, err)) < 0 ||
	    (r = arg_str(args, "cipher", false, &fa.cipher, err)) < 0 ||
	    (r = arg_u64(args, "key_size", false, &key_size, err)) < 0 ||
	    (r = arg_u64(args, "segment_size", false, &seg, err)) < 0 ||
	    (r = arg_u64(args, "sector_size", false, &ss, err)) < 0 ||
	    (r = arg_bool(args, "force", &fa.force, err)) < 0)
		return r;
	if (!fa.cipher)
		fa.cipher = a->cfg.cipher;
	if (key_size > UINT32_MAX || ss > UINT32_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "key_size or sector_size is out of range");
	fa.key_size = (uint32_t)key_size;
	fa.segment_size = seg;
	fa.sector_size = (uint32_t)ss;
	r = lc_name_check("workspace", fa.workspace, err);
	if (r < 0)
		return r;
	r = agent_ws_access(a, c, fa.workspace, "volume.format", err);
	if (r < 0)
		return r;
	if (fa.force && c->role != LC_ROLE_ADMIN)
		return lc_err(err, -EACCES, LC_ERRC_REFUSED,
			      "overwriting what is on a device (force) is an admin's decision");
	r = lc_registry_resolve(&a->reg, fa.workspace, &kc, err);
	if (r < 0)
		return r;
	if (fa.header == hbuf && (r = header_room(a, err)) < 0)
		return r;
	kcopy = *kc;
	fa.allow = device_policy(a, c, fa.workspace, &acopy);
	/* Over a volume (force): not one open or being opened under another
	 * path, and none of them opened until this ends (uuid-claim.c).
	 * Without force a volume there is refused by itself, but the data
	 * device of one with a detached header has no header: its storage
	 * is claimed all the same. */
	if (fa.force)
		r = agent_uuid_claim(a, &uk, &agent_uc_format, fa.device, fa.header, err);
	else
		r = agent_storage_claim(a, &uk, &agent_uc_format_plain, fa.device, fa.header,
					fa.allow, fa.workspace, err);
	if (r < 0)
		return r;
	/* ... and what is written is the storage the claim checked, not
	 * what the paths name by the time the library opens them. */
	fa.pin_device = agent_uuid_pin(&uk, 0, &pins[0]);
	fa.pin_header = agent_uuid_pin(&uk, 1, &pins[1]);
	agent_unlock(a);
	r = lc_volume_format(&c->env, &kcopy, &fa, &h, err);
	agent_relock(a);
	agent_uuid_release(a, &uk);
	if (r < 0)
		return r;
	lc_header_uuid_str(h, uuid);
	o = json_object_new_object();
	JADD(o, "uuid", json_object_new_string(uuid));
	JADD(o, "device", json_object_new_string(fa.device));
	if (fa.header)
		JADD(o, "header", json_object_new_string(fa.header));
	JADD(o, "detached", json_object_new_boolean(fa.header != NULL));
	JADD(o, "workspace", json_object_new_string(h->workspace));
	JADD(o, "project", json_object_new_string(h->project));
	JADD(o, "keyconfig", json_object_new_string(h->keyconfig));
	JADD(o, "provider", json_object_new_string(h->provider));
	JADD(o, "cmk_id", json_object_new_string(h->cmk_id));
	JADD(o, "cmk_version", json_object_new_string(h->cmk_version));
	JADD(o, "cipher", json_object_new_string(h->cipher));
	JADD(o, "key_size", json_object_new_int64(h->key_size));
	JADD(o, "sector_size", json_object_new_int64(h->sector_size));
	JADD(o, "segments", json_object_new_int64(h->segment_count));
	JADD(o, "segment_size", json_object_new_uint64(h->segment_sectors * 512));
	JADD(o, "data_offset", json_object_new_uint64(h->data_offset));
	lc_header_free(h);
	*result = o;
	return 0;
}

/* Close and re-wrap work on a copy; one of them at a time per volume. */
static int slot_busy(const struct vol_slot *s, struct lc_error *err)
{
	if (!s->busy)
		return 0;
	return lc_err(err, -EBUSY, LC_ERRC_TRANSIENT,
		      "another close or re-wrap of volume %s is in progress: try again when it is done",
		      s->v->name);
}

/* The reply to an open of a volume that is open already (open-claim.c). */
static json_object *already_open(struct agent *a, struct client *c, const char *name)
{
	json_object *o = volume_json(a, c, agent_volume(a, name));

	if (o)
		json_object_object_add(o, "already_open", json_object_new_boolean(1));
	return o;
}

/*
 * A mapping of a volume that is not the one lakecrypttab names for the
 * name, which could not be removed (someone holds /dev/mapper/NAME open):
 * it must not serve anyone.  Revoked at once (keys wiped from the target,
 * its I/O fails), listed as revoked so that status shows it and close
 * removes it once it is free, and the open fails (-EPERM).  @v is owned.
 */
static int refuse_wrong_held(struct agent *a, struct client *c, struct open_claim *k,
			     struct lc_volume *v, uint64_t epoch, const struct lc_error *ce,
			     struct lc_error *err)
{
	struct lc_error re = { 0 }, ae = { 0 };
	char cause[256], uuid[LC_UUID_STR_LEN], name[LC_HDR_NAME_SIZE];
	struct vol_slot *s;
	int rr, ar;

	snprintf(uuid, sizeof(uuid), "%s", v->uuid);
	snprintf(name, sizeof(name), "%s", v->name);
	snprintf(cause, sizeof(cause), "not volume %s, which %.100s line %u reserves the name for",
		 k->tab_uuid, a->cfg.lakecrypttab, k->tab_line);
	agent_unlock(a);
	rr = lc_volume_revoke(&c->env, v, cause, false, &re);
	agent_relock(a);
	if (rr < 0)
		v->revoked = false;	/* the kernel did not take it: retried below */
	ar = agent_volume_add(a, v, epoch, &c->env, &ae);
	s = agent_volume(a, name);
	if (s && s->v == v && s->rs == SLOT_LIVE) {
		s->rs = SLOT_REVOKE_FAILED;
		snprintf(s->cause, sizeof(s->cause), "%s", cause);
		s->revoker = -1;
		/* The watcher's revocation thread confirms it with the kernel
		 * and retries while the kernel does not say revoked. */
		agent_slot_revoke_again(a, s);
	}
	lc_error_log("%s: volume %s is not volume %s (%s line %u), and removing /dev/mapper/%s again failed (%s): revoked%s%s",
		     name, uuid, k->tab_uuid, a->cfg.lakecrypttab, k->tab_line, name, ce->msg,
		     rr < 0 ? "; the revoke message failed too, retried: " : "", rr < 0 ? re.msg : "");
	return lc_err(err, -EPERM, LC_ERRC_INVALID,
		      "the name \"%s\" belongs to volume %s (%s line %u): %s is volume %s; /dev/mapper/%s could not be removed again (%s), so it is revoked: its keys are wiped and its I/O fails; close it once nothing holds it open%s%s",
		      k->name, k->tab_uuid, a->cfg.lakecrypttab, k->tab_line, k->device_arg, uuid,
		      name, ce->msg, ar < 0 ? " (" : "", ar < 0 ? ae.msg : "");
}

/*
 * After the open of claim @k (a->lock held): close what was made and fail
 * when it is not the volume lakecrypttab names for the name (-EPERM; the
 * library refuses that before mapping anything, this is the backstop),
 * or when its client went away meanwhile and nobody else waits for it
 * (systemd gave up on the unit; its next start opens anew: -ECANCELED).
 * 0: keep @v.  A wrong volume that cannot be removed is revoked and the
 * open fails all the same (refuse_wrong_held()).
 */
static int undo_if_abandoned(struct agent *a, struct client *c, struct open_claim *k,
			     struct lc_volume *v, uint64_t epoch, struct lc_error *err)
{
	struct lc_error ce = { 0 };
	bool wrong = k->tab_uuid[0] && strcmp(k->tab_uuid, v->uuid);
	int r;

	/* Waiters whose clients left too take nothing: undone all the same. */
	if (!wrong && (!agent_client_gone(c) || agent_claim_live_waiters(k)))
		return 0;
	agent_unlock(a);
	r = lc_volume_close(&c->env, v, &ce);
	agent_relock(a);
	if (r < 0 && wrong)
		return refuse_wrong_held(a, c, k, v, epoch, &ce, err);
	if (r < 0) {
		lc_warn("%s: its client went away before the open finished, and closing it again failed (%s): kept open",
			v->name, ce.msg);
		return 0;
	}
	if (wrong) {
		r = lc_err(err, -EPERM, LC_ERRC_INVALID,
			   "the name \"%s\" belongs to volume %s (%s line %u): %s is volume %s; not opened",
			   k->name, k->tab_uuid, a->cfg.lakecrypttab, k->tab_line, k->device_arg,
			   v->uuid);
		lc_volume_free(v);
		return r;
	}
	lc_warn("%s: its client went away before the open finished: closed again", v->name);
	lc_volume_free(v);
	return lc_err(err, -ECANCELED, LC_ERRC_TRANSIENT,
		      "the client went away before the open of %s finished: closed again", k->name);
}

/*
 * The end of an open or cache open, once the library returned @r with @v
 * (a->lock held again; @kcopy NULL: it failed before the library was
 * called, with @r < 0): the CMK's trackers hear of it, an open whose
 * clients all left is undone, the volume is added, and claim @k is
 * released and freed.  0 with *@result, or -errno with @err.
 */
static int open_finish(struct agent *a, struct client *c, struct open_claim *k,
		       const struct lc_keyconfig *kcopy, int r, struct lc_volume *v,
		       uint64_t epoch, const char *what, json_object **result,
		       struct lc_error *err)
{
	char name[LC_HDR_NAME_SIZE];

	/* A success is an observation of the CMK; a denial only triggers a
	 * probe of it, whose answer counts (probe.c). */
	if (kcopy)
		r = agent_open_observed(a, kcopy, r, err, what);
	if (r >= 0)
		snprintf(name, sizeof(name), "%s", v->name);
	if (r >= 0 && (r = undo_if_abandoned(a, c, k, v, epoch, err)) >= 0 &&
	    (r = agent_volume_add(a, v, epoch, &c->env, err)) >= 0)
		*result = volume_json(a, c, agent_volume(a, name));
	/* Past the claim, the open may have written its record (adopt.c). */
	if (k->id && kcopy)
		agent_open_record_end(a, &c->env, k->name);
	if (k->id)
		agent_open_release(a, k);
	free(k);
	return r < 0 ? r : 0;
}

int op_volume_open(struct agent *a, struct client *c, json_object *args,
		   json_object **result, struct lc_error *err)
{
	struct lc_open_args oa = { 0 };
	const struct lc_keyconfig *kc;
	struct lc_keyconfig kcopy;
	struct lc_ws_access acopy;
	struct lc_volume *v = NULL;
	struct open_claim *k;
	struct vol_slot *held;
	struct uuid_claim uk;
	char hbuf[PATH_MAX], tabsrc[PATH_MAX + 32], vuuid[LC_UUID_STR_LEN];
	uint64_t epoch;
	int r;

	if ((r = arg_path(args, "device", true, &oa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &oa.workspace, err)) < 0 ||
	    (r = arg_str(args, "name", true, &oa.name, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &oa.header, err)) < 0 ||
	    (r = lc_name_check("workspace", oa.workspace, err)) < 0 ||
	    (r = agent_ws_access(a, c, oa.workspace, "volume.open", err)) < 0)
		return r;
	k = calloc(1, sizeof(*k));
	if (!k)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	*k = (struct open_claim){ .name = oa.name, .workspace = oa.workspace,
				  .device_arg = oa.device, .header_arg = oa.header,
				  .kind = LC_VOLUME_PROJECT };
	r = agent_open_claim(a, c, k, &held, err);
	if (r > 0) {
		free(k);
		*result = already_open(a, c, oa.name);
		return 0;
	}
	if (r < 0 || (r = lc_registry_resolve(&a->reg, oa.workspace, &kc, err)) < 0)
		return open_finish(a, c, k, NULL, r, NULL, 0, NULL, result, err);
	/* The lock is dropped for the KMS: work on copies of the binding. */
	kcopy = *kc;
	oa.kc = &kcopy;
	oa.allow = device_policy(a, c, oa.workspace, &acopy);
	/* lakecrypttab's UUID=: another volume is refused before the KMS. */
	if (k->tab_uuid[0]) {
		snprintf(tabsrc, sizeof(tabsrc), "%s line %u", a->cfg.lakecrypttab, k->tab_line);
		oa.uuid = k->tab_uuid;
		oa.uuid_source = tabsrc;
	}
	/* Not while a rekey-segment rewrites this volume, nor on storage a
	 * writer writes (uuid-claim.c); an operator's device is looked at
	 * only if the workspace's list allows it. */
	if ((r = agent_storage_claim(a, &uk, NULL, oa.device, oa.header, oa.allow, oa.workspace,
				     err)) < 0)
		return open_finish(a, c, k, NULL, r, NULL, 0, NULL, result, err);
	/* A revocation that comes while the KMS unwraps must still win. */
	epoch = agent_revoke_epoch(a);
	agent_unlock(a);
	r = lc_volume_open(&c->env, &oa, &v, err);
	agent_relock(a);
	snprintf(vuuid, sizeof(vuuid), "%s", r >= 0 && v ? v->uuid : "");
	r = open_finish(a, c, k, &kcopy, r, v, epoch, "an open's unwrap", result, err);
	/* Its storage identity stays with the volume (uuid-claim.c). */
	agent_uuid_attach(a, oa.name, vuuid, &uk);
	agent_uuid_release(a, &uk);
	return r;
}

int op_cache_open(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err)
{
	struct lc_cache_args ca = { 0 };
	const struct lc_keyconfig *kc;
	struct lc_keyconfig kcopy;
	struct lc_ws_access acopy;
	struct lc_volume *v = NULL;
	uint64_t seg = a->cfg.segment_sectors * 512, epoch;
	struct open_claim *k;
	struct vol_slot *held;
	struct uuid_claim uk = { 0 };
	struct lc_storage_pin pin;
	char vuuid[LC_UUID_STR_LEN];
	int r;

	if ((r = arg_path(args, "device", true, &ca.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &ca.workspace, err)) < 0 ||
	    (r = arg_str(args, "name", true, &ca.name, err)) < 0 ||
	    (r = arg_u64(args, "segment_size", false, &seg, err)) < 0 ||
	    (r = arg_bool(args, "force", &ca.force, err)) < 0 ||
	    (r = lc_name_check("workspace", ca.workspace, err)) < 0 ||
	    (r = agent_ws_access(a, c, ca.workspace, "cache.open", err)) < 0)
		return r;
	if (ca.force && c->role != LC_ROLE_ADMIN)
		return lc_err(err, -EACCES, LC_ERRC_REFUSED,
			      "a cache over what is on a device (force) is an admin's decision");
	k = calloc(1, sizeof(*k));
	if (!k)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	*k = (struct open_claim){ .name = ca.name, .workspace = ca.workspace,
				  .device_arg = ca.device, .kind = LC_VOLUME_CACHE,
				  .segment_size = seg };
	r = agent_open_claim(a, c, k, &held, err);
	if (r > 0) {
		free(k);
		*result = already_open(a, c, ca.name);
		return 0;
	}
	/* A cache's uuid is new every time: never the volume UUID= names. */
	if (!r && k->tab_uuid[0])
		r = lc_err(err, -EPERM, LC_ERRC_INVALID,
			   "the name \"%s\" belongs to volume %s (%s line %u): a cache is not that volume; choose another name",
			   ca.name, k->tab_uuid, a->cfg.lakecrypttab, k->tab_line);
	if (r < 0 || (r = lc_registry_resolve(&a->reg, ca.workspace, &kc, err)) < 0)
		return open_finish(a, c, k, NULL, r, NULL, 0, NULL, result, err);
	ca.allow = device_policy(a, c, ca.workspace, &acopy);
	ca.segment_size = seg;
	ca.cipher = a->cfg.cipher;
	ca.key_size = a->cfg.key_size;
	kcopy = *kc;
	/* Over a volume (force): as a format (uuid-claim.c); without force,
	 * its storage all the same. */
	if (ca.force)
		r = agent_uuid_claim(a, &uk, &agent_uc_cache, ca.device, NULL, err);
	else
		r = agent_storage_claim(a, &uk, &agent_uc_cache_plain, ca.device, NULL, ca.allow,
					ca.workspace, err);
	if (r < 0)
		return open_finish(a, c, k, NULL, r, NULL, 0, NULL, result, err);
	ca.pin_device = agent_uuid_pin(&uk, 0, &pin);
	epoch = agent_revoke_epoch(a);
	agent_unlock(a);
	r = lc_volume_cache_open(&c->env, &kcopy, &ca, &v, err);
	agent_relock(a);
	snprintf(vuuid, sizeof(vuuid), "%s", r >= 0 && v ? v->uuid : "");
	r = open_finish(a, c, k, &kcopy, r, v, epoch, "a cache's wrap", result, err);
	agent_uuid_attach(a, ca.name, vuuid, &uk);
	agent_uuid_release(a, &uk);
	return r;
}

/* volume.close with if_open: nothing (the caller may see) to close. */
static int if_open_none(const char *name, json_object **result)
{
	*result = json_object_new_object();
	JADD(*result, "name", json_object_new_string(name));
	JADD(*result, "closed", json_object_new_boolean(0));
	return 0;
}

/* volume.close with if_open of a name being opened (@k): busy (try
 * again) for whoever may see its workspace, nothing to close for others. */
static int being_opened(struct agent *a, struct client *c, const struct open_claim *k,
			const char *name, json_object **result, struct lc_error *err)
{
	if (!agent_ws_visible(a, c, k->workspace))
		return if_open_none(name, result);
	return lc_err(err, -EBUSY, LC_ERRC_TRANSIENT,
		      "volume %s is being opened right now: close it when the open has ended", name);
}

int op_volume_close(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err)
{
	struct vol_slot *s;
	struct lc_volume *v;
	const char *name, *ws;
	bool if_open = false;
	struct lc_error ne = { 0 };
	int r;

	if ((r = arg_str(args, "name", true, &name, err)) < 0 ||
	    (r = arg_str(args, "workspace", false, &ws, err)) < 0 ||
	    (r = arg_bool(args, "if_open", &if_open, err)) < 0)
		return r;
	s = agent_volume(a, name);
	/* if_open: a lakecrypt device of that name that this agent does not
	 * know (its list of open volumes, volumes.json, lost) is open all
	 * the same: not "nothing to close" (final issue-11 review). */
	if (!s && if_open && lc_name_check("name", name, &ne) == 0) {
		const struct open_claim *k = open_claim_named(a, name);
		struct lc_volume *probe;
		struct lc_dm_status st;
		struct lc_error e = { 0 };
		int known;

		/* Being opened (its device is made before its slot): not a
		 * lost one; nothing to close for whoever may not see it. */
		if (k)
			return being_opened(a, c, k, name, result, err);
		probe = calloc(1, sizeof(*probe));
		if (!probe)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		snprintf(probe->name, sizeof(probe->name), "%s", name);
		agent_unlock(a);
		known = lc_volume_status(&c->env, probe, &st, &e);
		agent_relock(a);
		free(probe);
		s = agent_volume(a, name);	/* it may have come meanwhile */
		k = open_claim_named(a, name);
		if (!s && k)
			return being_opened(a, c, k, name, result, err);
		if (!s && known == 0)
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "/dev/mapper/%s is a lakecrypt device this agent does not know (its list of open volumes was lost?): not closed; remove it with dmsetup remove %s (the kernel wipes its keys)",
				      name, name);
	}
	/* if_open (a lakecrypttab unit's stop): nothing open under the name
	 * (or nothing the caller may see, alike) is done, as
	 * systemd-cryptsetup detaches an inactive volume; every other
	 * failure stays one. */
	if ((!s || !agent_ws_visible(a, c, s->v->workspace)) && if_open)
		return if_open_none(name, result);
	if (!s || !agent_ws_visible(a, c, s->v->workspace))
		return no_volume(name, err);
	/* A lakecrypttab unit closes its own volume, never another that
	 * took the name meanwhile. */
	if (ws && strcmp(ws, s->v->workspace))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "/dev/mapper/%s is a volume of workspace \"%s\", not of workspace \"%s\": not closed",
			      name, s->v->workspace, ws);
	r = slot_busy(s, err);
	if (r < 0)
		return r;
	v = slot_snapshot(s, false);
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	/* Busy: no other close or re-wrap frees @s meanwhile. */
	s->busy++;
	agent_unlock(a);
	r = lc_volume_close(&c->env, v, err);
	agent_relock(a);
	s->busy--;
	lc_volume_free(v);
	if (r < 0)
		return r;
	agent_volume_remove(a, s);
	return 0;
}

int op_volume_migrate(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	struct lc_open_args oa = { 0 };
	const struct lc_keyconfig *kc;
	struct lc_keyconfig kcopy;
	struct lc_header *h = NULL;
	struct uuid_claim uk;
	char hbuf[PATH_MAX], uuid[LC_UUID_STR_LEN];
	int r;

	if ((r = arg_path(args, "device", true, &oa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &oa.workspace, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &oa.header, err)) < 0 ||
	    (r = lc_name_check("workspace", oa.workspace, err)) < 0 ||
	    (r = lc_registry_resolve(&a->reg, oa.workspace, &kc, err)) < 0)
		return r;
	kcopy = *kc;
	oa.kc = &kcopy;
	/* Not while it is open or being opened, under any path; nor opened
	 * until the new header is written (uuid-claim.c). */
	if ((r = agent_uuid_claim(a, &uk, &agent_uc_migrate, oa.device, oa.header, err)) < 0)
		return r;
	agent_unlock(a);
	r = lc_volume_migrate(&c->env, &oa, &h, err);
	agent_relock(a);
	agent_uuid_release(a, &uk);
	if (r < 0)
		return r;
	lc_header_uuid_str(h, uuid);
	*result = json_object_new_object();
	JADD(*result, "uuid", json_object_new_string(uuid));
	JADD(*result, "version", json_object_new_int(h->version));
	JADD(*result, "workspace", json_object_new_string(h->workspace));
	JADD(*result, "project", json_object_new_string(h->project));
	JADD(*result, "keyconfig", json_object_new_string(h->keyconfig));
	lc_header_free(h);
	return 0;
}

int op_volume_rewrap(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err)
{
	struct vol_slot *s;
	struct lc_volume *v;
	const char *name, *kc;
	bool all = false;
	int r;

	if ((r = arg_bool(args, "all", &all, err)) < 0 ||
	    (r = arg_str(args, "name", false, &name, err)) < 0 ||
	    (r = arg_str(args, "keyconfig", false, &kc, err)) < 0)
		return r;
	if (all == !!name || (kc && !all))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "volume.rewrap takes either \"name\" or \"all\": true (optionally with \"keyconfig\")");
	if (all)
		return op_volume_rewrap_all(a, c, args, result, err);
	s = agent_volume(a, name);
	if (!s)
		return no_volume(name, err);
	r = slot_busy(s, err);
	if (r < 0)
		return r;
	if (s->rs != SLOT_LIVE)
		return lc_err(err, -EKEYREVOKED, LC_ERRC_INVALID,
			      "volume %s is revoked (revocation %s): close it, and open it again once the CMK allows",
			      name, agent_slot_state(s));
	/* The copy has its own KEK: a revoke meanwhile wipes only the slot's. */
	v = slot_snapshot(s, true);
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	s->busy++;
	agent_unlock(a);
	r = lc_volume_rewrap(&c->env, v, err);
	agent_relock(a);
	s->busy--;
	if (!r) {
		snprintf(s->v->cmk_id, sizeof(s->v->cmk_id), "%s", v->cmk_id);
		snprintf(s->v->cmk_version, sizeof(s->v->cmk_version), "%s", v->cmk_version);
		(void)agent_volumes_save(a, NULL);
	}
	lc_volume_free(v);
	if (r < 0)
		return r;
	*result = volume_json(a, c, s);
	return 0;
}

int op_volume_resize(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err)
{
	struct vol_slot *s;
	struct lc_volume *v;
	const char *name;
	uint64_t size = 0;
	int r;

	if ((r = arg_str(args, "name", true, &name, err)) < 0 ||
	    (r = arg_u64(args, "size", false, &size, err)) < 0)
		return r;
	s = agent_volume(a, name);
	if (!s || !agent_ws_visible(a, c, s->v->workspace))
		return no_volume(name, err);
	r = slot_busy(s, err);
	if (r < 0)
		return r;
	if (s->rs != SLOT_LIVE)
		return lc_err(err, -EKEYREVOKED, LC_ERRC_INVALID,
			      "volume %s is revoked (revocation %s): it cannot be resized", name,
			      agent_slot_state(s));
	v = slot_snapshot(s, true);
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	s->busy++;
	agent_unlock(a);
	r = lc_volume_resize(&c->env, v, size, err);
	agent_relock(a);
	s->busy--;
	/* The table may have changed even if the call failed late. */
	s->v->length = v->length;
	s->v->segments = v->segments;
	(void)agent_volumes_save(a, NULL);
	lc_volume_free(v);
	/* A revoke meanwhile may have hit the table this resize replaced:
	 * the kill switch goes to the new one too. */
	agent_slot_revoke_again(a, s);
	if (r < 0)
		return r;
	*result = volume_json(a, c, s);
	return 0;
}

/*
 * "fail_closed_at" on each CMK of status's "cmks" (agent_watches_json())
 * whose fail-closed deadline is armed: [revocation] fail_closed_after_s is
 * set and no authoritative answer came since the outage began (last
 * outcome "unknown", or an outage_s counted).  Unix seconds, UTC: the
 * outage start (now - outage_s, whole seconds) + fail_closed_after_s; in
 * the past once the verdict is fail-closed.  Absent otherwise.
 */
static void cmks_fail_closed_at(const struct agent *a, json_object *cmks)
{
	int64_t now = (int64_t)time(NULL);

	if (!a->cfg.fail_closed_after_s || !json_object_is_type(cmks, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(cmks); i++) {
		json_object *o = json_object_array_get_idx(cmks, i), *x;
		int64_t outage = 0;
		bool unknown = false;

		if (json_object_object_get_ex(o, "outage_s", &x))
			outage = json_object_get_int64(x);
		if (json_object_object_get_ex(o, "last", &x))
			unknown = !strcmp(json_object_get_string(x), "unknown");
		if (outage > 0 || unknown)
			JADD(o, "fail_closed_at", json_object_new_int64(now - (outage > 0 ? outage : 0) +
									(int64_t)a->cfg.fail_closed_after_s));
	}
}

int op_status(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err)
{
	struct slot_view *w;
	const char *name;
	json_object *arr, *ag;
	unsigned int quarantined = 0;
	size_t n = 0;
	struct lc_error qe;
	int r;

	r = arg_str(args, "name", false, &name, err);
	if (r < 0)
		return r;
	/* Operators see only the volumes of their workspaces. */
	if (name && (!agent_volume(a, name) ||
		     !agent_ws_visible(a, c, agent_volume(a, name)->v->workspace)))
		return no_volume(name, err);
	w = calloc(a->nvols + 1, sizeof(*w));
	if (!w)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	for (size_t i = 0; i < a->nvols; i++)
		if ((!name || !strcmp(a->vols[i]->v->name, name)) &&
		    agent_ws_visible(a, c, a->vols[i]->v->workspace) && !view_take(a->vols[i], &w[n]))
			n++;
	ag = json_object_new_object();
	JADD(ag, "connections", json_object_new_uint64(a->nclients));
	JADD(ag, "threads", json_object_new_uint64(a->threads));
	{
		uint64_t probing = 0;	/* watcher probes waiting for the KMS now */

		for (size_t i = 0; i < LC_AGENT_MAX_CHECKS; i++)
			probing += a->checking[i] != NULL;
		JADD(ag, "probes_running", json_object_new_uint64(probing));
	}
	JADD(ag, "oversized_replies", json_object_new_uint64(a->oversized_replies));
	/* The kernel's view of each, asked without the lock. */
	agent_unlock(a);
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object_array_add(arr, view_json(&c->env, &w[i]));
		lc_volume_free(w[i].v);
	}
	free(w);
	if (lc_kms_local_quarantined(a->kms, &quarantined, &qe) < 0)
		lc_warn("%s", qe.msg);
	agent_relock(a);
	*result = json_object_new_object();
	JADD(*result, "volumes", arr);
	JADD(*result, "kms_calls", agent_kms_calls_json(a));
	JADD(*result, "providers", agent_providers_json(a));
	JADD(*result, "hooks", agent_terminate_json(a, c));
	if (c->role == LC_ROLE_ADMIN) {
		json_object *cmks = agent_watches_json(a);

		cmks_fail_closed_at(a, cmks);
		JADD(*result, "cmks", cmks);
	}
	JADD(ag, "kms_quarantined", json_object_new_uint64(quarantined));
	JADD(*result, "agent", ag);
	JADD(*result, "registry", agent_registry_json(a));
	return 0;
}

int op_revoke(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err)
{
	const struct lc_keyconfig *kc;
	const char *kcname, *cmk;
	json_object *names, *pending;
	char cause[512], prov[LC_HDR_PROVIDER_SIZE] = "", ref[LC_HDR_PROVIDER_REF_SIZE] = "";
	char cmk_id[LC_HDR_CMK_ID_SIZE] = "", fkey[512] = "", ferr[LC_ERROR_MSG_MAX] = "";
	int r, fr = 0;

	if ((r = arg_str(args, "keyconfig", false, &kcname, err)) < 0 ||
	    (r = arg_str(args, "cmk", false, &cmk, err)) < 0)
		return r;
	if (!kcname == !cmk)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "revoke needs exactly one of the arguments \"keyconfig\" (a key configuration name) or \"cmk\" (a CMK id)");
	if (kcname) {
		/* The key configuration names a CMK; volumes are matched by that
		 * CMK's identity (its reference or the id the KMS reports),
		 * never by a key configuration name a header carried. */
		kc = lc_registry_keyconfig(&a->reg, kcname);
		if (!kc)
			return lc_err(err, -ENOENT, LC_ERRC_INVALID,
				      "there is no key configuration \"%s\": revoke by CMK with cmk (status shows each volume's cmk_id)",
				      kcname);
		snprintf(cause, sizeof(cause), "revoked by uid %u (key configuration %s, CMK %.300s)",
			 (unsigned int)c->peer.uid, kcname, kc->cmk_id[0] ? kc->cmk_id : kc->key_ref);
		snprintf(prov, sizeof(prov), "%s", kc->provider);
		snprintf(ref, sizeof(ref), "%s", kc->key_ref);
		snprintf(cmk_id, sizeof(cmk_id), "%s", kc->cmk_id);
	} else {
		size_t known = 0;

		/* A CMK no open volume (revoked or not) names is more likely a
		 * typo than a kill that did nothing: say so. */
		for (size_t i = 0; i < a->nvols; i++)
			known += !strcmp(a->vols[i]->v->cmk_id, cmk) ||
				 !strcmp(a->vols[i]->v->provider_ref, cmk);
		/* In a fleet (etcd) the CMK may be another node's: the record
		 * goes out all the same. */
		if (!known && !a->reg.etcd)
			return lc_err(err, -ENOENT, LC_ERRC_INVALID,
				      "no open volume is under CMK \"%.300s\" (lakecryptctl status shows each volume's CMK id): nothing revoked",
				      cmk);
		snprintf(cause, sizeof(cause), "revoked by uid %u (CMK %.400s)",
			 (unsigned int)c->peer.uid, cmk);
		snprintf(ref, sizeof(ref), "%s", cmk);
	}
	names = json_object_new_array();
	pending = json_object_new_array();
	/* The registry may change while the lock is dropped: copies above. */
	r = agent_revoke_matching(a, cmk_id, prov, ref, cause, false, c->peer.uid,
				  a->cfg.revoke_wait_ms, names, pending, err);
	/* The fleet next (etcd): every agent kills its own volumes under it. */
	if (a->reg.etcd) {
		struct lc_error pe;

		fr = agent_fleet_publish(a, prov, cmk_id, ref, NULL, cause, fkey, sizeof(fkey), &pe);
		if (fr < 0)
			snprintf(ferr, sizeof(ferr), "%s", pe.msg);
	}
	if (r < 0) {
		struct lc_error first = *err;

		lc_err(err, r, first.cls,
		       "%zu volume(s) revoked (%s), %zu not confirmed by the kernel within %u ms (%s); the agent keeps trying, status shows each (first: %s)",
		       json_object_array_length(names), json_object_to_json_string(names),
		       json_object_array_length(pending), a->cfg.revoke_wait_ms,
		       json_object_to_json_string(pending), first.msg);
		json_object_put(names);
		json_object_put(pending);
		return r;
	}
	json_object_put(pending);
	*result = json_object_new_object();
	JADD(*result, "revoked", names);
	if (a->reg.etcd && !fr)
		JADD(*result, "fleet_record", json_object_new_string(fkey));
	else if (a->reg.etcd)
		JADD(*result, "fleet_error", json_object_new_string(ferr));
	return 0;
}

/*
 * One page of the audit log: the records that end at or before byte @end
 * (the log's size if larger), at most @n of them and at most
 * AUDIT_PAGE_BYTES of text, oldest first, into @arr.  *@first is where the
 * oldest one returned starts: the "before" of the next page back (0: the
 * beginning was reached).  A line that does not parse is skipped.
 */
static int tail_page(int fd, uint64_t end, size_t n, json_object *arr, uint64_t *first,
		     struct lc_error *err)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	uint64_t start;
	size_t len, lines = 0;
	char *p, *q, *e;
	ssize_t got;

	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "stat of the audit log: %s", strerror(errno));
	if (end > (uint64_t)st.st_size)
		end = (uint64_t)st.st_size;
	start = end > AUDIT_PAGE_BYTES ? end - AUDIT_PAGE_BYTES : 0;
	len = (size_t)(end - start);
	*first = 0;
	buf = malloc(len + 1);
	if (!buf)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	got = len ? pread(fd, buf, len, (off_t)start) : 0;
	if (got != (ssize_t)len)
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "reading the audit log failed");
	buf[len] = '\0';
	/* Whole lines only: [p, q) starts after the first newline of the
	 * window (unless it is the file's start) and ends at the last one. */
	p = buf;
	if (start > 0) {
		p = memchr(buf, '\n', len);
		p = p ? p + 1 : buf + len;
	}
	q = memrchr(p, '\n', (size_t)(buf + len - p));
	q = q ? q + 1 : p;
	/* Back from the end to the n-th line. */
	e = q;
	while (e > p && lines < n) {
		char *nl = e - 1 > p ? memrchr(p, '\n', (size_t)(e - 1 - p)) : NULL;

		e = nl ? nl + 1 : p;
		lines++;
	}
	*first = start + (uint64_t)(e - buf);
	for (char *l = e; l < q;) {
		char *nl = memchr(l, '\n', (size_t)(q - l));
		json_object *o;

		*nl = '\0';
		o = json_tokener_parse(l);
		if (o && json_object_is_type(o, json_type_object))
			json_object_array_add(arr, o);
		else
			json_object_put(o);
		l = nl + 1;
	}
	return 0;
}

int op_audit_tail(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err)
{
	_cleanup_close_ int fd = -1;
	uint64_t n = AUDIT_TAIL_DEFAULT, before = UINT64_MAX, first = 0;
	json_object *arr;
	int r;

	r = arg_u64(args, "lines", false, &n, err);
	if (!r)
		r = arg_u64(args, "before", false, &before, err);
	if (r < 0)
		return r;
	if (n < 1 || n > AUDIT_TAIL_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"lines\" is %" PRIu64 ": expected 1 to %d (page further with \"before\")",
			      n, AUDIT_TAIL_MAX);
	fd = open(a->cfg.audit_log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot read the audit log %s: %s",
			      a->cfg.audit_log, strerror(errno));
	arr = json_object_new_array();
	r = tail_page(fd, before, (size_t)n, arr, &first, err);
	if (r < 0) {
		json_object_put(arr);
		return r;
	}
	/* Operators read only their workspaces' records. */
	if (c->role != LC_ROLE_ADMIN) {
		json_object *mine = json_object_new_array();

		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *rec = json_object_array_get_idx(arr, i), *ws;

			if (json_object_object_get_ex(rec, "workspace", &ws) &&
			    json_object_is_type(ws, json_type_string) &&
			    agent_ws_visible(a, c, json_object_get_string(ws)))
				json_object_array_add(mine, json_object_get(rec));
		}
		json_object_put(arr);
		arr = mine;
	}
	*result = json_object_new_object();
	JADD(*result, "records", arr);
	JADD(*result, "next_before", first ? json_object_new_uint64(first) : NULL);
	return 0;
}
