// SPDX-License-Identifier: GPL-2.0
/*
 * Admin operations: the local KMS (kms.*), key configurations and
 * workspace bindings.
 */
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "http.h"
#include "kms-aws.h"
#include "kms-azure.h"
#include "kms-gcp.h"
#include "kms-kmip.h"
#include "kms-pkcs11.h"

#define JADD(o, k, v) json_object_object_add(o, k, v)

static json_object *key_info_json(const struct lc_kms_key_info *k)
{
	json_object *o = json_object_new_object();

	JADD(o, "key_id", json_object_new_string(k->key_id));
	JADD(o, "description", json_object_new_string(k->description));
	JADD(o, "state", json_object_new_string(lc_key_state_name(k->state)));
	JADD(o, "primary_version", json_object_new_int64(k->primary_version));
	JADD(o, "versions", json_object_new_int64(k->versions));
	JADD(o, "created", json_object_new_int64(k->created));
	JADD(o, "deletion_date", k->deletion_date ? json_object_new_int64(k->deletion_date) : NULL);
	JADD(o, "policy", json_object_new_string(k->policy_deny ? "deny" : "allow"));
	return o;
}

int op_kms(struct agent *a, struct client *c, json_object *args, json_object **result,
	   struct lc_error *err, const char *op)
{
	struct lc_kms_key_info info;
	const char *key_id = NULL, *desc = NULL;
	uint64_t days = 0;
	bool now = false;
	int r;

	if (!strcmp(op, "kms.list")) {
		_cleanup_free_ struct lc_kms_key_info *keys = NULL;
		json_object *arr;
		size_t n = 0;

		r = lc_kms_local_list(a->kms, &keys, &n, err);
		if (r < 0)
			return r;
		arr = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, key_info_json(&keys[i]));
		*result = json_object_new_object();
		JADD(*result, "keys", arr);
		return 0;
	}
	if (!strcmp(op, "kms.create")) {
		r = arg_str(args, "description", false, &desc, err);
		if (r < 0)
			return r;
		r = lc_kms_local_create(a->kms, desc ? desc : "", &info, err);
		agent_audit_simple(a, op, r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, c->peer.uid, NULL,
				   NULL, LC_KMS_LOCAL_NAME, r ? NULL : info.key_id, err);
		if (r < 0)
			return r;
		lc_info("uid %u created local CMK %s", (unsigned int)c->peer.uid, info.key_id);
		*result = key_info_json(&info);
		return 0;
	}
	r = arg_str(args, "key_id", true, &key_id, err);
	if (r < 0)
		return r;
	if (!strcmp(op, "kms.describe")) {
		r = lc_kms_local_describe(a->kms, key_id, &info, err);
	} else if (!strcmp(op, "kms.rotate")) {
		r = lc_kms_local_rotate(a->kms, key_id, &info, err);
	} else if (!strcmp(op, "kms.disable")) {
		r = lc_kms_local_disable(a->kms, key_id, &info, err);
	} else if (!strcmp(op, "kms.enable")) {
		r = lc_kms_local_enable(a->kms, key_id, &info, err);
	} else if (!strcmp(op, "kms.deny") || !strcmp(op, "kms.allow")) {
		r = lc_kms_local_set_policy(a->kms, key_id, !strcmp(op, "kms.deny"), &info, err);
	} else if (!strcmp(op, "kms.cancel-deletion")) {
		r = lc_kms_local_cancel_deletion(a->kms, key_id, &info, err);
	} else if (!strcmp(op, "kms.schedule-deletion")) {
		r = arg_u64(args, "days", true, &days, err);
		if (!r && (days < LC_KMS_LOCAL_MIN_DELETION_DAYS || days > LC_KMS_LOCAL_MAX_DELETION_DAYS))
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "argument \"days\" is %" PRIu64 ": expected %d to %d", days,
				   LC_KMS_LOCAL_MIN_DELETION_DAYS, LC_KMS_LOCAL_MAX_DELETION_DAYS);
		if (!r)
			r = lc_kms_local_schedule_deletion(a->kms, key_id, (unsigned int)days, &info,
							   err);
	} else if (!strcmp(op, "kms.destroy")) {
		r = arg_bool(args, "now", &now, err);
		if (!r)
			r = lc_kms_local_destroy(a->kms, key_id, now ? LC_KMS_LOCAL_DESTROY_NOW : 0,
						 &info, err);
	} else {
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_INTERNAL, "no handler for %s", op);
	}
	if (strcmp(op, "kms.describe"))
		agent_audit_simple(a, op, r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, c->peer.uid, NULL,
				   NULL, LC_KMS_LOCAL_NAME, key_id, err);
	if (r < 0)
		return r;
	if (strcmp(op, "kms.describe"))
		lc_info("uid %u: %s %s: now %s, primary version %" PRIu32,
			(unsigned int)c->peer.uid, op, key_id, lc_key_state_name(info.state),
			info.primary_version);
	*result = key_info_json(&info);
	return 0;
}

/* ---- key configurations ---- */

static json_object *keyconfig_json(struct agent *a, const struct lc_keyconfig *kc)
{
	json_object *o = json_object_new_object(), *ws = json_object_new_array();

	JADD(o, "name", json_object_new_string(kc->name));
	JADD(o, "provider", json_object_new_string(kc->provider));
	JADD(o, "key_ref", json_object_new_string(kc->key_ref));
	JADD(o, "cmk_id", json_object_new_string(kc->cmk_id));
	JADD(o, "created", json_object_new_int64(kc->created));
	JADD(o, "canary", json_object_new_boolean(kc->canary[0] != '\0'));
	/* the KMS principal bound at create (kms-ident.c); "unbound": none */
	JADD(o, "kms_identity", json_object_new_string(kc->kms_identity[0] ? kc->kms_identity : "unbound"));
	for (size_t i = 0; i < a->reg.nbind; i++)
		if (!strcmp(a->reg.bind[i].keyconfig, kc->name))
			json_object_array_add(ws, json_object_new_string(a->reg.bind[i].workspace));
	JADD(o, "workspaces", ws);
	return o;
}

/*
 * What keyconfig.create says of the CMK's key_state answer (@r, @rep,
 * @err).  Nothing uses the key yet, so nothing here is a revocation: a
 * key the KMS denies or does not know (PKCS#11 and KMIP report a missing
 * object as destroyed; AWS, Azure and Cloud KMS deny a key they do not
 * show this identity) is most often a mistyped id or a missing
 * permission, and a disabled key one to enable first.  All are MISCONFIG,
 * with the provider's own detail kept (it names no secret: providers
 * never put tokens or PINs in messages).  Other failures pass unchanged.
 */
static int create_key_error(const char *provider, const char *key_ref, int r,
			    const struct lc_provider_reply *rep, struct lc_error *err)
{
	char detail[LC_ERROR_MSG_MAX];

	if (!r && rep->state == LC_KEY_ENABLED)
		return 0;
	if (!r && (rep->state == LC_KEY_DISABLED || rep->state == LC_KEY_PENDING_DELETION))
		return lc_err(err, -EKEYREJECTED, LC_ERRC_MISCONFIG,
			      "key %s is %s at %s: a key configuration needs an enabled key (enable it%s first)",
			      key_ref, lc_key_state_name(rep->state), provider,
			      rep->state == LC_KEY_PENDING_DELETION ? ", cancelling its deletion," : "");
	/* Nothing uses the key yet: a denial, or a key the KMS says it does
	 * not have (a provider's "not found" that is MISCONFIG because the
	 * reference is not yet bound to a region, server or token), is a
	 * creation error, never "destroyed". */
	if (r < 0 && err->cls != LC_ERRC_DENIED &&
	    !(err->cls == LC_ERRC_MISCONFIG && (r == -ENOENT || r == -ENOKEY)))
		return r;
	if (r < 0)
		snprintf(detail, sizeof(detail), "%s", err->msg);
	else if (rep->state == LC_KEY_DESTROYED)
		snprintf(detail, sizeof(detail),
			 "the KMS has no usable key by that id: mistyped, never created or deleted");
	else
		snprintf(detail, sizeof(detail), "the KMS reports a key state (%s) no key configuration can use",
			 lc_key_state_name(rep->state));
	return lc_err(err, -ENOKEY, LC_ERRC_MISCONFIG,
		      "key %s not found or not usable by this identity at %s: check the key id and its policy/permissions (%s)",
		      key_ref, provider, detail);
}

static int keyconfig_create(struct agent *a, struct client *c, json_object *args,
			    char cmk_id[LC_HDR_CMK_ID_SIZE], json_object **result,
			    struct lc_error *err)
{
	struct lc_keyconfig kc;
	struct lc_provider_reply rep;
	struct lc_audit_event ev;
	struct lc_provider *p;
	const char *name, *provider, *key_ref;
	int r;

	if ((r = arg_str(args, "name", true, &name, err)) < 0 ||
	    (r = arg_str(args, "provider", true, &provider, err)) < 0 ||
	    (r = arg_str(args, "key_ref", true, &key_ref, err)) < 0 ||
	    (r = lc_name_check("key configuration name", name, err)) < 0)
		return r;
	if (lc_registry_keyconfig(&a->reg, name))
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "key configuration \"%s\" already exists; delete it first or choose another name",
			      name);
	p = agent_provider(a, provider);
	if (!p)
		return lc_err(err, -ENOPROTOOPT, LC_ERRC_MISCONFIG,
			      "unknown provider \"%s\": this agent offers \"%s\", \"%s\", \"%s\", \"%s\", \"%s\" and \"%s\"",
			      provider, LC_KMS_LOCAL_NAME, LC_KMS_AWS_NAME, LC_KMS_AZURE_NAME,
			      LC_KMS_GCP_NAME, LC_KMS_KMIP_NAME, LC_KMS_PKCS11_NAME);
	if (strlen(key_ref) >= sizeof(kc.key_ref))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"key_ref\" is longer than %zu characters", sizeof(kc.key_ref) - 1);

	/* The CMK must exist and be usable now: one key_state call, audited,
	 * without the lock (the provider table does not change). */
	agent_unlock(a);
	r = lc_provider_key_state(p, key_ref, &rep, err);
	agent_relock(a);
	r = create_key_error(provider, key_ref, r, &rep, err);
	lc_audit_event_init(&ev, "cmk.key_state", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
	ev.peer_uid = c->peer.uid;
	ev.keyconfig = name;
	ev.provider = provider;
	ev.cmk_id = rep.key_id[0] ? rep.key_id : key_ref;
	ev.cmk_version = rep.key_version[0] ? rep.key_version : NULL;
	ev.request_id = rep.request_id[0] ? rep.request_id : NULL;
	ev.latency_ms = (int64_t)(rep.latency_us / 1000);
	ev.error_class = r ? err->cls : LC_ERRC_NONE;
	(void)lc_audit_write(&a->audit, &ev, NULL);
	if (r < 0)
		return r;

	memset(&kc, 0, sizeof(kc));
	snprintf(kc.name, sizeof(kc.name), "%s", name);
	snprintf(kc.provider, sizeof(kc.provider), "%s", provider);
	/* The provider's bound reference (AWS ARN, KMIP server identity,
	 * PKCS#11 token serial: provider.h) is what volumes will carry. */
	if (rep.bound_ref[0]) {
		if (strlen(rep.bound_ref) >= sizeof(kc.key_ref))
			return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG,
				      "the bound reference of CMK %s is longer than %zu characters",
				      key_ref, sizeof(kc.key_ref) - 1);
		key_ref = rep.bound_ref;
	}
	snprintf(kc.key_ref, sizeof(kc.key_ref), "%s", key_ref);
	snprintf(kc.cmk_id, sizeof(kc.cmk_id), "%s", rep.key_id[0] ? rep.key_id : key_ref);
	/* The principal the agent is at the KMS, bound to the configuration
	 * (kms-ident.c): a later denial to another one is no revocation. */
	if (p->ops->identity) {
		struct lc_error ie = { 0 };
		char det[LC_PROVIDER_IDENTITY_MAX + 80];
		int ir;

		agent_unlock(a);
		ir = agent_kms_whoami(a, p, provider, key_ref, false, kc.kms_identity, &ie);
		if (ir < 0)
			snprintf(det, sizeof(det), "unbound: %.200s", ie.msg);
		else
			snprintf(det, sizeof(det), "bound %s", kc.kms_identity);
		lc_audit_event_init(&ev, "cmk.identity", ir ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
		ev.peer_uid = c->peer.uid;
		ev.keyconfig = name;
		ev.provider = provider;
		ev.cmk_id = key_ref;
		ev.error_class = ir ? ie.cls : LC_ERRC_NONE;
		ev.detail = det;
		(void)lc_audit_write(&a->audit, &ev, NULL);
		agent_relock(a);
		if (ir < 0)
			lc_warn("key configuration %s: not bound to a KMS principal (%s): a denial under it is taken as a revocation, as before identity binding",
				name, ie.msg);
		if (lc_registry_keyconfig(&a->reg, name))
			return lc_err(err, -EEXIST, LC_ERRC_INVALID,
				      "key configuration \"%s\" was created meanwhile", name);
	}
	/* The revocation probe's canary (probe.c); made later if not now. */
	if (a->cfg.canary) {
		struct lc_error ce;

		agent_unlock(a);
		if (agent_canary_make(a, c->peer.uid, p, key_ref, name, kc.canary, kc.canary_sha256,
				      NULL, &ce) < 0) {
			lc_warn("key configuration %s: no canary yet (%s); the watcher makes it later",
				name, ce.msg);
			kc.canary[0] = kc.canary_sha256[0] = '\0';
		}
		agent_relock(a);
		if (lc_registry_keyconfig(&a->reg, name))
			return lc_err(err, -EEXIST, LC_ERRC_INVALID,
				      "key configuration \"%s\" was created meanwhile", name);
	}
	r = lc_registry_keyconfig_add(&a->reg, &kc, err);
	if (r < 0)
		return r;
	snprintf(cmk_id, LC_HDR_CMK_ID_SIZE, "%s", kc.cmk_id);
	*result = keyconfig_json(a, lc_registry_keyconfig(&a->reg, name));
	return 0;
}

/* keyconfig.create is audited whatever its end: a refusal (name taken,
 * unknown provider, key not usable, registry not saved) leaves a failure
 * record with what the request gave, as far as it is sound: a valid name,
 * a provider this agent has, a printable key reference. */
int op_keyconfig_create(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err)
{
	char cmk_id[LC_HDR_CMK_ID_SIZE] = "", ref[LC_HDR_CMK_ID_SIZE] = "";
	const char *name = NULL, *provider = NULL;
	json_object *x;
	int r = keyconfig_create(a, c, args, cmk_id, result, err);

	if (json_object_object_get_ex(args, "name", &x) && json_object_is_type(x, json_type_string) &&
	    !lc_name_check("name", json_object_get_string(x), NULL))
		name = json_object_get_string(x);
	if (json_object_object_get_ex(args, "provider", &x) && json_object_is_type(x, json_type_string) &&
	    agent_provider(a, json_object_get_string(x)))
		provider = json_object_get_string(x);
	if (!cmk_id[0] && json_object_object_get_ex(args, "key_ref", &x) &&
	    json_object_is_type(x, json_type_string))
		lc_copy_printable(ref, sizeof(ref), json_object_get_string(x));
	agent_audit_locked(a, "keyconfig.create", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
			   c->peer.uid, NULL, name, provider, cmk_id[0] ? cmk_id : ref[0] ? ref : NULL,
			   err);
	return r;
}

int op_keyconfig_list(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	json_object *arr = json_object_new_array();

	(void)c;
	(void)args;
	(void)err;
	for (size_t i = 0; i < a->reg.nkc; i++)
		json_object_array_add(arr, keyconfig_json(a, &a->reg.kc[i]));
	*result = json_object_new_object();
	JADD(*result, "keyconfigs", arr);
	return 0;
}

int op_keyconfig_show(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	const struct lc_keyconfig *kc;
	const char *name;
	int r;

	(void)c;
	if ((r = arg_str(args, "name", true, &name, err)) < 0)
		return r;
	kc = lc_registry_keyconfig(&a->reg, name);
	if (!kc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no key configuration \"%.63s\" (keyconfig list shows them)", name);
	*result = keyconfig_json(a, kc);
	return 0;
}

int op_keyconfig_delete(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err)
{
	const struct lc_keyconfig *kc;
	char provider[LC_HDR_PROVIDER_SIZE] = "", cmk[LC_HDR_CMK_ID_SIZE] = "";
	const char *name;
	int r;

	(void)result;
	r = arg_str(args, "name", true, &name, err);
	if (r < 0)
		return r;
	kc = lc_registry_keyconfig(&a->reg, name);
	if (kc) {
		snprintf(provider, sizeof(provider), "%s", kc->provider);
		snprintf(cmk, sizeof(cmk), "%s", kc->cmk_id);
	}
	/* Its canary is what watches its open volumes' key-policy statement:
	 * deleted under them, their revocation would go unseen. */
	r = 0;
	for (size_t i = 0; kc && i < a->nvols && !r; i++) {
		const struct lc_volume *v = a->vols[i]->v;

		if (v && !strcmp(v->keyconfig, name))
			r = lc_err(err, -EBUSY, LC_ERRC_INVALID,
				   "key configuration \"%s\" is in use by open volume %s: close its volumes, or move them to another key configuration (lakecryptctl workspace rekey), first; its canary watches them",
				   name, v->name);
	}
	if (!r)
		r = lc_registry_keyconfig_delete(&a->reg, name, err);
	agent_audit_locked(a, "keyconfig.delete", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
			   c->peer.uid, NULL, name, provider[0] ? provider : NULL,
			   cmk[0] ? cmk : NULL, err);
	return r;
}

/* ---- workspaces ---- */

static json_object *binding_json(struct agent *a, const char *workspace)
{
	const struct lc_binding *b = lc_registry_binding(&a->reg, workspace);
	const struct lc_keyconfig *kc = b ? lc_registry_keyconfig(&a->reg, b->keyconfig) : NULL;
	json_object *o = json_object_new_object();

	JADD(o, "workspace", json_object_new_string(workspace));
	JADD(o, "keyconfig", json_object_new_string(b ? b->keyconfig : ""));
	if (kc) {
		JADD(o, "provider", json_object_new_string(kc->provider));
		JADD(o, "key_ref", json_object_new_string(kc->key_ref));
		JADD(o, "cmk_id", json_object_new_string(kc->cmk_id));
	}
	if (b) {
		json_object *g = json_object_new_array(), *d = json_object_new_array();

		JADD(o, "created", json_object_new_int64(b->created));
		for (size_t i = 0; i < b->access.ngroups; i++)
			json_object_array_add(g, json_object_new_string(b->access.groups[i]));
		for (size_t i = 0; i < b->access.ndevices; i++)
			json_object_array_add(d, json_object_new_string(b->access.devices[i]));
		JADD(o, "operators", g);
		JADD(o, "devices", d);
		JADD(o, "hook", lc_hook_to_json(&b->hook));
	}
	return o;
}

/* Block devices (device numbers) that the patterns of @acc name now. */
static size_t pattern_devs(const struct lc_ws_access *acc, dev_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < acc->ndevices; i++) {
		glob_t g;

		if (glob(acc->devices[i], GLOB_NOSORT, NULL, &g) != 0)
			continue;
		for (size_t j = 0; j < g.gl_pathc && n < max; j++) {
			struct stat st;

			if (stat(g.gl_pathv[j], &st) == 0 && S_ISBLK(st.st_mode))
				out[n++] = st.st_rdev;
		}
		globfree(&g);
	}
	return n;
}

/*
 * Workspaces whose operators may use a device that @ws's operators may
 * use too: a detached-header volume's data device carries no signature,
 * so one workspace's operators could format over the other's data.  Said
 * in the reply and the log; an admin may mean it.
 */
static json_object *overlaps(struct agent *a, const char *ws)
{
	const struct lc_binding *b = lc_registry_binding(&a->reg, ws);
	json_object *arr = json_object_new_array();
	dev_t mine[256], theirs[256];
	size_t nm, nt;

	if (!b)
		return arr;
	nm = pattern_devs(&b->access, mine, 256);
	for (size_t i = 0; i < a->reg.nbind && nm; i++) {
		const struct lc_binding *o = &a->reg.bind[i];
		bool hit = false;

		if (!strcmp(o->workspace, ws))
			continue;
		nt = pattern_devs(&o->access, theirs, 256);
		for (size_t x = 0; x < nm && !hit; x++)
			for (size_t y = 0; y < nt && !hit; y++)
				hit = mine[x] == theirs[y];
		if (hit) {
			lc_warn("workspaces %s and %s may use the same block devices", ws, o->workspace);
			json_object_array_add(arr, json_object_new_string(o->workspace));
		}
	}
	return arr;
}

/* Optional array of strings @name into @out (@max entries of @size bytes). */
static int arg_list(json_object *args, const char *name, char *out, size_t size, size_t max,
		    size_t *n, bool *given, struct lc_error *err)
{
	json_object *v;

	*n = 0;
	*given = false;
	if (!json_object_object_get_ex(args, name, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > max)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"%s\" must be an array of at most %zu strings", name, max);
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *s = json_object_array_get_idx(v, i);
		size_t len;

		if (!json_object_is_type(s, json_type_string))
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "argument \"%s\" must be an array of strings", name);
		len = (size_t)json_object_get_string_len(s);
		if (!len || len >= size || strlen(json_object_get_string(s)) != len)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "argument \"%s\": entry %zu is empty, has a NUL or is longer than %zu characters",
				      name, i, size - 1);
		memcpy(out + i * size, json_object_get_string(s), len + 1);
		(*n)++;
	}
	*given = true;
	return 0;
}

int op_workspace_bind(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	const struct lc_keyconfig *kc;
	const struct lc_binding *old;
	struct lc_ws_access acc = { 0 };
	bool gg = false, dg = false;
	const char *ws, *kcname;
	int r;

	if ((r = arg_str(args, "workspace", true, &ws, err)) < 0 ||
	    (r = arg_str(args, "keyconfig", true, &kcname, err)) < 0 ||
	    (r = arg_list(args, "operators", &acc.groups[0][0], LC_WS_GROUP_SIZE, LC_WS_MAX_GROUPS,
			  &acc.ngroups, &gg, err)) < 0 ||
	    (r = arg_list(args, "devices", &acc.devices[0][0], LC_WS_DEVICE_SIZE,
			  LC_WS_MAX_DEVICES, &acc.ndevices, &dg, err)) < 0)
		return r;
	/* What is not given stays as it was. */
	old = lc_registry_binding(&a->reg, ws);
	if (old && !gg) {
		memcpy(acc.groups, old->access.groups, sizeof(acc.groups));
		acc.ngroups = old->access.ngroups;
	}
	if (old && !dg) {
		memcpy(acc.devices, old->access.devices, sizeof(acc.devices));
		acc.ndevices = old->access.ndevices;
	}
	r = lc_registry_bind(&a->reg, ws, kcname, &acc, err);
	kc = lc_registry_keyconfig(&a->reg, kcname);
	agent_audit_locked(a, "workspace.bind", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
			   c->peer.uid, ws, kcname, kc ? kc->provider : NULL,
			   kc ? kc->cmk_id : NULL, err);
	if (r < 0)
		return r;
	lc_info("uid %u bound workspace %s to key configuration %s", (unsigned int)c->peer.uid,
		ws, kcname);
	*result = binding_json(a, ws);
	json_object_object_add(*result, "shares_devices_with", overlaps(a, ws));
	{
		/* A group that does not exist has no members: say so. */
		json_object *unknown = json_object_new_array();

		for (size_t i = 0; i < acc.ngroups; i++) {
			gid_t g;

			if (a->groups->group_gid(a->groups->ctx, acc.groups[i], &g) < 0) {
				lc_warn("workspace %s: operator group %s does not exist", ws,
					acc.groups[i]);
				json_object_array_add(unknown, json_object_new_string(acc.groups[i]));
			}
		}
		json_object_object_add(*result, "unknown_groups", unknown);
	}
	return 0;
}

int op_workspace_unbind(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err)
{
	const struct lc_binding *b;
	char kcname[LC_HDR_NAME_SIZE] = "";
	const char *ws;
	int r;

	(void)result;
	r = arg_str(args, "workspace", true, &ws, err);
	if (r < 0)
		return r;
	b = lc_registry_binding(&a->reg, ws);
	if (b)
		snprintf(kcname, sizeof(kcname), "%s", b->keyconfig);
	r = lc_registry_unbind(&a->reg, ws, err);
	agent_audit_locked(a, "workspace.unbind", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS,
			   c->peer.uid, ws, kcname[0] ? kcname : NULL, NULL, NULL, err);
	return r;
}

int op_workspace_list(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	json_object *arr = json_object_new_array();

	(void)c;
	(void)args;
	(void)err;
	for (size_t i = 0; i < a->reg.nbind; i++)
		json_object_array_add(arr, binding_json(a, a->reg.bind[i].workspace));
	*result = json_object_new_object();
	JADD(*result, "workspaces", arr);
	return 0;
}
