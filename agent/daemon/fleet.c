// SPDX-License-Identifier: GPL-2.0
/*
 * The agent in a fleet ([registry] backend = etcd, registry-etcd.h): the
 * registry opened on the file or on etcd, revocation records written on
 * a confirmed denial or an admin's revoke, records from other agents
 * acted on (kill only), and the registry's part of status.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "registry-etcd.h"

static void fleet_lock(void *arg)
{
	agent_relock(arg);
}

static void fleet_unlock(void *arg)
{
	agent_unlock(arg);
}

/* A record from etcd (a->lock held; dropped around the audit write):
 * kill every volume under its CMK (and key configuration, if it names
 * one) at once.  Nothing is ever opened because of a record. */
static void fleet_record(void *arg, const struct lc_revocation *rec)
{
	struct agent *a = arg;
	struct lc_audit_event ev;
	json_object *done = json_object_new_array(), *pending = json_object_new_array();
	char cause[512], detail[160], id[LC_HDR_CMK_ID_SIZE], prov[LC_HDR_PROVIDER_SIZE];
	char kc[LC_HDR_NAME_SIZE];
	struct lc_error e;
	size_t n;

	snprintf(cause, sizeof(cause), "revocation record from agent %.64s (etcd revision %" PRId64 "): %.300s",
		 rec->agent, rec->mod_revision, rec->cause);
	(void)agent_revoke_matching_kc(a, rec->cmk_id, rec->provider, rec->key_ref, rec->keyconfig,
				       cause, false, -1, 0, done, pending, &e);
	n = (done ? json_object_array_length(done) : 0) +
	    (pending ? json_object_array_length(pending) : 0);
	json_object_put(done);
	json_object_put(pending);
	a->fleet_records++;
	a->fleet_volumes += n;
	lc_warn("registry: %s: %zu volume(s) under CMK %s killed", cause, n,
		rec->cmk_id[0] ? rec->cmk_id : rec->key_ref);
	snprintf(id, sizeof(id), "%s", rec->cmk_id[0] ? rec->cmk_id : rec->key_ref);
	snprintf(prov, sizeof(prov), "%s", rec->provider);
	snprintf(kc, sizeof(kc), "%s", rec->keyconfig);
	snprintf(detail, sizeof(detail), "etcd revision %" PRId64 ", %zu volume(s) killed",
		 rec->mod_revision, n);
	lc_audit_event_init(&ev, "registry.revocation", LC_AUDIT_SUCCESS);
	ev.provider = prov[0] ? prov : NULL;
	ev.cmk_id = id;
	ev.keyconfig = kc[0] ? kc : NULL;
	ev.detail = detail;
	agent_unlock(a);
	(void)lc_audit_write(&a->audit, &ev, NULL);
	agent_relock(a);
}

int agent_registry_open(struct agent *a, struct lc_error *err)
{
	struct lc_regetcd_hooks h = {
		.lock = fleet_lock, .unlock = fleet_unlock, .revocation = fleet_record, .arg = a,
	};

	if (!a->cfg.registry_etcd)
		return lc_registry_open(&a->reg, a->cfg.state_dir, err);
	if (agent_probes_init(a, &h) < 0)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	return lc_regetcd_open(&a->reg, &a->cfg, &h, err);
}

int agent_registry_start(struct agent *a, struct lc_error *err)
{
	int r = lc_regetcd_start(&a->reg, err);

	return r < 0 ? r : agent_probes_start(a, err);
}

void agent_registry_stop(struct agent *a)
{
	agent_probes_stop(a);
	lc_regetcd_stop(&a->reg);
}

int agent_fleet_publish(struct agent *a, const char *provider, const char *cmk_id,
			const char *key_ref, const char *keyconfig, const char *cause,
			char *key, size_t key_size, struct lc_error *err)
{
	struct lc_revocation rec;
	int r;

	if (!a->reg.etcd)
		return 0;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.provider, sizeof(rec.provider), "%s", provider ? provider : "");
	snprintf(rec.cmk_id, sizeof(rec.cmk_id), "%s", cmk_id ? cmk_id : "");
	snprintf(rec.key_ref, sizeof(rec.key_ref), "%s", key_ref ? key_ref : "");
	snprintf(rec.keyconfig, sizeof(rec.keyconfig), "%s", keyconfig ? keyconfig : "");
	snprintf(rec.cause, sizeof(rec.cause), "%s", cause ? cause : "");
	agent_unlock(a);
	r = lc_regetcd_revoke(&a->reg, &rec, key, key_size, err);
	agent_relock(a);
	if (r < 0)
		lc_error_log("registry: the revocation record for CMK %s was not written (%s): other agents learn of it only from their own KMS probes",
			     rec.cmk_id[0] ? rec.cmk_id : rec.key_ref, err->msg);
	else
		lc_info("registry: revocation record %s written", key ? key : "");
	return r;
}

json_object *agent_registry_json(struct agent *a)
{
	json_object *o;

	if (!a->reg.etcd) {
		o = json_object_new_object();
		json_object_object_add(o, "backend", json_object_new_string("file"));
		return o;
	}
	o = lc_regetcd_status_json(&a->reg);
	json_object_object_add(o, "records_acted", json_object_new_uint64(a->fleet_records));
	json_object_object_add(o, "volumes_killed", json_object_new_uint64(a->fleet_volumes));
	json_object_object_add(o, "probes", agent_probes_json(a));
	return o;
}
