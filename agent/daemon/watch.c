// SPDX-License-Identifier: GPL-2.0
/*
 * The list of open volumes, the kill switch over it, and the revocation
 * watcher: every watch_interval_s the state of each CMK in use is asked
 * for; an authoritative answer (disabled, pending deletion, destroyed,
 * access denied) revokes every volume under it; an unreachable KMS
 * (transient) never does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

struct lc_volume *agent_volume(struct agent *a, const char *name)
{
	for (size_t i = 0; name && i < a->nvols; i++)
		if (!strcmp(a->vols[i]->name, name))
			return a->vols[i];
	return NULL;
}

void agent_volumes_save(struct agent *a)
{
	struct lc_error e;

	if (lc_volumes_save(a->runtime_path, a->vols, a->nvols, &e) < 0)
		lc_error_log("the list of open volumes could not be saved (a restarted agent will not find them): %s",
			     e.msg);
}

int agent_volume_add(struct agent *a, struct lc_volume *v, struct lc_error *err)
{
	struct lc_volume **t = realloc(a->vols, (a->nvols + 1) * sizeof(*t));

	if (!t)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	a->vols = t;
	a->vols[a->nvols++] = v;
	agent_volumes_save(a);
	return 0;
}

void agent_volume_remove(struct agent *a, struct lc_volume *v)
{
	for (size_t i = 0; i < a->nvols; i++) {
		if (a->vols[i] != v)
			continue;
		memmove(&a->vols[i], &a->vols[i + 1], (a->nvols - i - 1) * sizeof(*a->vols));
		a->nvols--;
		lc_volume_free(v);
		break;
	}
	agent_volumes_save(a);
}

static bool under(const struct lc_volume *v, const char *keyconfig, const char *provider,
		  const char *key_ref)
{
	/* By the CMK's identity only, never by a name a header carried. */
	(void)keyconfig;
	if (!key_ref || (provider && strcmp(v->provider, provider)))
		return false;
	return !strcmp(v->cmk_id, key_ref) || !strcmp(v->provider_ref, key_ref);
}

int agent_revoke_matching(struct agent *a, const char *keyconfig, const char *provider,
			  const char *key_ref, const char *cause, bool denied,
			  json_object *names, struct lc_error *err)
{
	struct lc_error first = { 0 };
	size_t n = 0, failed = 0;

	for (size_t i = 0; i < a->nvols; i++) {
		struct lc_volume *v = a->vols[i];
		struct lc_error e;

		if (v->revoked || !under(v, keyconfig, provider, key_ref))
			continue;
		/* Every volume is revoked even if one of them fails. */
		if (lc_volume_revoke(&a->env, v, cause, denied, &e) < 0) {
			if (!failed++)
				first = e;
		}
		n++;
		if (names)
			json_object_array_add(names, json_object_new_string(v->name));
	}
	if (n)
		agent_volumes_save(a);
	if (failed)
		return lc_err(err, first.code, LC_ERRC_INTERNAL,
			      "%zu volume(s) revoked (KEKs wiped), but %zu of them reported: %s", n,
			      failed, first.msg);
	lc_info("revocation (%s): %zu volume(s) revoked", cause, n);
	return 0;
}

static void audit_state(struct agent *a, const struct lc_volume *v,
			const struct lc_provider_reply *rep, int r, const struct lc_error *e)
{
	struct lc_audit_event ev;

	lc_audit_event_init(&ev, "cmk.key_state", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS);
	ev.keyconfig = v->keyconfig[0] ? v->keyconfig : NULL;
	ev.provider = v->provider;
	ev.cmk_id = v->cmk_id[0] ? v->cmk_id : v->provider_ref;
	ev.cmk_version = rep->key_version[0] ? rep->key_version : NULL;
	ev.request_id = rep->request_id[0] ? rep->request_id : NULL;
	ev.latency_ms = (int64_t)(rep->latency_us / 1000);
	if (r)
		ev.error_class = e->cls;
	else if (rep->state != LC_KEY_ENABLED)
		ev.error_class = LC_ERRC_DENIED;
	(void)lc_audit_write(&a->audit, &ev, NULL);
}

/* Ask for the state of the CMK of @v; revoke everything under it if the
 * answer is authoritative. */
static void check_cmk(struct agent *a, const struct lc_volume *v)
{
	struct lc_provider *p = agent_provider(a, v->provider);
	struct lc_provider_reply rep;
	struct lc_error e = { 0 }, e2;
	char cause[LC_ERROR_MSG_MAX + 64], provider[LC_HDR_PROVIDER_SIZE];
	char ref[LC_HDR_PROVIDER_REF_SIZE];
	int r;

	if (!p) {
		lc_warn("volume %s uses provider %s, which this agent does not have: its CMK cannot be watched",
			v->name, v->provider);
		return;
	}
	r = lc_provider_key_state(p, v->provider_ref, &rep, &e);
	if (!r && rep.state == LC_KEY_ENABLED) {
		lc_debug("watcher: CMK %s is enabled", v->provider_ref);
		return;
	}
	audit_state(a, v, &rep, r, &e);
	if (r < 0 && e.cls != LC_ERRC_DENIED) {
		/* Unreachable is not revoked: keep serving from what is unwrapped. */
		lc_warn("watcher: state of CMK %s unknown (%s: %s); volumes keep running, not a revocation",
			v->provider_ref, lc_err_class_name(e.cls), e.msg);
		return;
	}
	if (r < 0)
		snprintf(cause, sizeof(cause), "KMS denied CMK %.200s: %.300s", v->provider_ref, e.msg);
	else
		snprintf(cause, sizeof(cause), "CMK %.200s is %s", v->provider_ref,
			 lc_key_state_name(rep.state));
	lc_warn("watcher: %s: revoking every volume under it", cause);
	/* @v is revoked too: keep the key apart from it. */
	snprintf(provider, sizeof(provider), "%s", v->provider);
	snprintf(ref, sizeof(ref), "%s", v->provider_ref);
	(void)agent_revoke_matching(a, NULL, provider, ref, cause, true, NULL, &e2);
}

void agent_watch_tick(struct agent *a)
{
	struct lc_error e;
	unsigned int n = 0;

	if (lc_kms_local_purge(a->kms, &n, &e) < 0)
		lc_warn("local KMS purge: %s", e.msg);
	else if (n)
		lc_info("local KMS: erased the material of %u key(s) past their deletion date", n);

	for (size_t i = 0; i < a->nvols; i++) {
		const struct lc_volume *v = a->vols[i];
		bool seen = false;

		if (v->revoked)
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !a->vols[j]->revoked && !strcmp(a->vols[j]->provider, v->provider) &&
			       !strcmp(a->vols[j]->provider_ref, v->provider_ref);
		if (!seen)
			check_cmk(a, v);
	}
}
