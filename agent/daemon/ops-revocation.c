// SPDX-License-Identifier: GPL-2.0
/*
 * revocation.list and revocation.clear (admins; Documentation/
 * agent-protocol.md, Documentation/etcd.md "Revocation records"): the
 * fleet's revocation records as etcd holds them, and the deletion of one
 * with a compare on its mod_revision.
 *
 * Clearing a record never opens anything: the agents do not act on a
 * deleted record, and a volume killed by it is opened again only by a
 * normal open, which asks the KMS.  A clear probes the record's CMK at the
 * KMS first (the watcher's probe, through each key configuration that
 * names it) and refuses while the KMS still denies it, unless forced: a
 * record cleared then opens nothing either (the KMS denies the open), but
 * would tell the fleet the CMK is back when it is not.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "registry-etcd.h"

#define JADD(o, k, v) json_object_object_add(o, k, v)

static int file_backend(struct agent *a, struct lc_error *err)
{
	return lc_err(err, -EOPNOTSUPP, LC_ERRC_INVALID,
		      "revocation records exist only with [registry] backend = etcd; this agent's registry is the file %s/registry.json, where a revoke kills this node's volumes and writes no record",
		      a->cfg.state_dir);
}

static json_object *entry_json(struct lc_registry *reg, const struct lc_revocation_entry *ent)
{
	json_object *o = json_object_new_object();
	char key[1024];
	const struct lc_revocation *r = &ent->rec;

	snprintf(key, sizeof(key), "%srevocations/%s", lc_regetcd_prefix(reg), ent->id);
	JADD(o, "id", json_object_new_string(ent->id));
	JADD(o, "key", json_object_new_string(key));
	JADD(o, "mod_revision", json_object_new_int64(r->mod_revision));
	JADD(o, "valid", json_object_new_boolean(ent->valid));
	if (!ent->valid) {
		JADD(o, "error", json_object_new_string(ent->why));
	} else {
		JADD(o, "provider", json_object_new_string(r->provider));
		JADD(o, "cmk_id", json_object_new_string(r->cmk_id));
		JADD(o, "key_ref", json_object_new_string(r->key_ref));
		JADD(o, "keyconfig", json_object_new_string(r->keyconfig));
		JADD(o, "scope", json_object_new_string(r->keyconfig[0] ? "keyconfig" : "whole CMK"));
		JADD(o, "agent", json_object_new_string(r->agent));
		JADD(o, "cause", json_object_new_string(r->cause));
		JADD(o, "time", json_object_new_int64(r->time));
		JADD(o, "hash_ok", json_object_new_boolean(ent->hash_ok));
	}
	JADD(o, "create_revision", json_object_new_int64(ent->create_revision));
	JADD(o, "version", json_object_new_int64(ent->version));
	if (!ent->id_exact)
		JADD(o, "note", json_object_new_string("the key has bytes that are not printable ASCII: clear it with etcdctl"));
	return o;
}

int op_revocation_list(struct agent *a, struct client *c, json_object *args, json_object **result,
		       struct lc_error *err)
{
	struct lc_revocation_entry *ents = NULL;
	size_t n = 0;
	int64_t rev = 0;
	json_object *arr;
	int r;

	(void)c;
	(void)args;
	if (!a->reg.etcd)
		return file_backend(a, err);
	agent_unlock(a);
	r = lc_regetcd_revocations_list(&a->reg, &ents, &n, &rev, err);
	agent_relock(a);
	if (r < 0)
		return r;
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, entry_json(&a->reg, &ents[i]));
	free(ents);
	*result = json_object_new_object();
	JADD(*result, "records", arr);
	JADD(*result, "revision", json_object_new_int64(rev));
	JADD(*result, "prefix", json_object_new_string(lc_regetcd_prefix(&a->reg)));
	return 0;
}

/* Whether key configuration @kc names the CMK of record @rec. */
static bool kc_names(const struct lc_keyconfig *kc, const struct lc_revocation *rec)
{
	if (rec->provider[0] && strcmp(rec->provider, kc->provider))
		return false;
	if (rec->keyconfig[0] && strcmp(rec->keyconfig, kc->name))
		return false;
	return (rec->key_ref[0] && (!strcmp(rec->key_ref, kc->key_ref) ||
				    (kc->cmk_id[0] && !strcmp(rec->key_ref, kc->cmk_id)))) ||
	       (rec->cmk_id[0] && (!strcmp(rec->cmk_id, kc->key_ref) ||
				   (kc->cmk_id[0] && !strcmp(rec->cmk_id, kc->cmk_id))));
}

#define CLEAR_MAX_PROBES 8

/*
 * Probe the record's CMK at the KMS through each key configuration of the
 * registry that names it (at most CLEAR_MAX_PROBES; a->lock held, dropped
 * around the probes).  *@outcome: "granted" (every probe ok), "denied" (one
 * denied), "unknown" (no denial, one not ok) or "not checked" (no key
 * configuration names it).  @detail: what was asked and answered.
 */
static void kms_check(struct agent *a, const struct lc_revocation *rec, const char **outcome,
		      char *detail, size_t dsize, json_object *reports)
{
	struct lc_volume *todo[CLEAR_MAX_PROBES];
	size_t n = 0, off = 0;
	bool denied = false, unknown = false;

	for (size_t i = 0; i < a->reg.nkc && n < CLEAR_MAX_PROBES; i++) {
		const struct lc_keyconfig *kc = &a->reg.kc[i];

		if (!kc_names(kc, rec) || !(todo[n] = agent_keyconfig_volume(kc)))
			continue;
		n++;
	}
	detail[0] = '\0';
	if (!n) {
		*outcome = "not checked";
		snprintf(detail, dsize,
			 "no key configuration in the registry names CMK %.300s: this node cannot ask the KMS about it",
			 rec->cmk_id[0] ? rec->cmk_id : rec->key_ref);
		return;
	}
	agent_unlock(a);
	for (size_t i = 0; i < n; i++) {
		json_object *rep = json_object_new_object(), *x;
		const char *o = "unknown", *d = "this agent lacks the CMK's provider";

		if (agent_probe_cmk(a, todo[i], rep) == 0) {
			o = json_object_object_get_ex(rep, "outcome", &x) ? json_object_get_string(x) : "unknown";
			d = json_object_object_get_ex(rep, "detail", &x) ? json_object_get_string(x) : "";
		}
		denied |= !strcmp(o, "denied");
		unknown |= strcmp(o, "ok") != 0;
		if (off < dsize)
			off += (size_t)snprintf(detail + off, dsize - off, "%skey configuration %.64s: %s (%.200s)",
						i ? "; " : "", todo[i]->keyconfig, o, d);
		JADD(rep, "keyconfig", json_object_new_string(todo[i]->keyconfig));
		json_object_array_add(reports, rep);
		lc_volume_free(todo[i]);
	}
	agent_relock(a);
	*outcome = denied ? "denied" : unknown ? "unknown" : "granted";
}

static void clear_audit(struct agent *a, struct client *c, const struct lc_revocation_entry *ent,
			enum lc_audit_outcome o, const char *detail, const struct lc_error *e)
{
	struct lc_audit_event ev;
	struct lc_error ae;
	char id[LC_HDR_CMK_ID_SIZE], prov[LC_HDR_PROVIDER_SIZE], kc[LC_HDR_NAME_SIZE];

	snprintf(id, sizeof(id), "%s", ent->rec.cmk_id[0] ? ent->rec.cmk_id : ent->rec.key_ref);
	snprintf(prov, sizeof(prov), "%s", ent->rec.provider);
	snprintf(kc, sizeof(kc), "%s", ent->rec.keyconfig);
	lc_audit_event_init(&ev, "registry.revocation.clear", o);
	ev.peer_uid = c->peer.uid;
	ev.provider = prov[0] ? prov : NULL;
	ev.cmk_id = id[0] ? id : NULL;
	ev.keyconfig = kc[0] ? kc : NULL;
	ev.detail = detail;
	if (e && o != LC_AUDIT_SUCCESS)
		ev.error_class = e->cls;
	agent_unlock(a);
	if (lc_audit_write(&a->audit, &ev, &ae) < 0)
		lc_error_log("audit record for revocation.clear could not be written: %s", ae.msg);
	agent_relock(a);
}

int op_revocation_clear(struct agent *a, struct client *c, json_object *args, json_object **result,
			struct lc_error *err)
{
	struct lc_revocation_entry ent;
	const char *id, *kms = "not checked";
	char key[1024], kdetail[1024] = "", detail[1400], warn[1600] = "";
	uint64_t want = 0;
	bool force = false, have_rev;
	json_object *reports = NULL;
	int64_t rev = 0;
	int r;

	/* Every clear, done or refused, is audited (Documentation/etcd.md):
	 * refusals before the record is read name what was asked. */
	memset(&ent, 0, sizeof(ent));
	id = NULL;
	if ((r = arg_str(args, "record", true, &id, err)) < 0 ||
	    (r = arg_u64(args, "revision", false, &want, err)) < 0 ||
	    (r = arg_bool(args, "force", &force, err)) < 0)
		goto refused_early;
	have_rev = json_object_object_get_ex(args, "revision", NULL);
	if (have_rev && (want == 0 || want > (uint64_t)INT64_MAX)) {
		lc_err(err, -EINVAL, LC_ERRC_INVALID,
		       "argument \"revision\" must be the record's mod_revision as `lakecryptctl revocation list` shows it (1 or more)");
		goto refused_early;
	}
	if (!a->reg.etcd) {
		file_backend(a, err);
		goto refused_early;
	}
	if (lc_regetcd_revocation_key(&a->reg, id, key, sizeof(key), err) < 0)
		goto refused_early;
	agent_unlock(a);
	r = lc_regetcd_revocation_get(&a->reg, key, &ent, err);
	agent_relock(a);
	if (r < 0) {
		memset(&ent, 0, sizeof(ent));
		goto refused;
	}
	if (have_rev && (int64_t)want != ent.rec.mod_revision) {
		lc_err(err, -ESTALE, LC_ERRC_INVALID,
		       "revocation record %s was written again since revision %" PRIu64 " (now revision %" PRId64 ", by agent %s: %.200s): nothing deleted; look again (revocation list) and clear it at the revision shown if the KMS grants access again",
		       key, want, ent.rec.mod_revision, ent.valid ? ent.rec.agent : "?",
		       ent.valid ? ent.rec.cause : ent.why);
		goto refused;
	}
	reports = json_object_new_array();
	if (ent.valid)
		kms_check(a, &ent.rec, &kms, kdetail, sizeof(kdetail), reports);
	else
		snprintf(kdetail, sizeof(kdetail), "the record is not valid (%s): the agents never acted on it",
			 ent.why);
	if (!strcmp(kms, "denied") && !force) {
		lc_err(err, -EACCES, LC_ERRC_DENIED,
		       "the KMS still denies CMK %.300s (%s): revocation record %s stays. Clearing it would open nothing (an open asks the KMS, which denies), but would tell the fleet the CMK is back; clear it once the KMS grants access again, or with --force (a CMK destroyed for good)",
		       ent.rec.cmk_id[0] ? ent.rec.cmk_id : ent.rec.key_ref, kdetail, key);
		goto refused;
	}
	if (!strcmp(kms, "denied"))
		snprintf(warn, sizeof(warn),
			 "cleared with --force while the KMS still denies the CMK (%s): nothing reopens, every open is still denied",
			 kdetail);
	else if (strcmp(kms, "granted"))
		snprintf(warn, sizeof(warn),
			 "the CMK was not confirmed at the KMS (%s): nothing reopens because of the clear, an open still asks the KMS",
			 kdetail);
	agent_unlock(a);
	r = lc_regetcd_revocation_delete(&a->reg, key, ent.rec.mod_revision, &rev, err);
	agent_relock(a);
	if (r < 0)
		goto refused;
	snprintf(detail, sizeof(detail),
		 "record %.80s deleted at mod_revision %" PRId64 " (written by agent %.64s at %" PRId64 "); KMS: %s%s%.900s",
		 ent.id, ent.rec.mod_revision, ent.valid ? ent.rec.agent : "?", ent.rec.time, kms,
		 kdetail[0] ? ": " : "", kdetail);
	clear_audit(a, c, &ent, LC_AUDIT_SUCCESS, detail, NULL);
	lc_info("uid %u cleared revocation record %s (mod_revision %" PRId64 "); KMS: %s",
		(unsigned int)c->peer.uid, key, ent.rec.mod_revision, kms);
	*result = json_object_new_object();
	JADD(*result, "cleared", json_object_new_string(key));
	JADD(*result, "record", entry_json(&a->reg, &ent));
	JADD(*result, "revision", json_object_new_int64(rev));
	JADD(*result, "kms_check", json_object_new_string(kms));
	JADD(*result, "kms_detail", json_object_new_string(kdetail));
	JADD(*result, "kms_probes", reports);
	if (warn[0])
		JADD(*result, "warning", json_object_new_string(warn));
	return 0;
refused_early:
	/* The id as asked, cut and with what is not printable as '?'. */
	snprintf(key, sizeof(key), "%.200s", id ? id : "(none)");
	for (char *q = key; *q; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
			*q = '?';
refused:
	json_object_put(reports);
	snprintf(detail, sizeof(detail), "record %.80s not deleted: %.1200s", key, err->msg);
	clear_audit(a, c, &ent, LC_AUDIT_FAILURE,
		    detail, err);
	return -abs(err->code);
}
