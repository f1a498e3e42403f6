/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The registry kept in etcd ([registry] backend = etcd; Documentation/
 * etcd.md): key configurations, workspace bindings (with their operator
 * groups, device allow-lists and hooks) and revocation records under one
 * prefix, shared by every agent of a fleet.
 *
 * Key layout (values are JSON objects, "v": 1, in the shape of
 * registry.json's entries; none is a secret):
 *   <prefix>keyconfigs/<name>        lc_keyconfig_to_json()
 *   <prefix>bindings/<workspace>     lc_binding_to_json()
 *   <prefix>revocations/<hash>       struct lc_revocation; <hash> is the
 *                                    lower-case hex SHA-256 of the CMK's
 *                                    identity (its cmk_id, else key_ref)
 *   <prefix>probe/<unit>             struct lc_probe_holder, under the
 *                                    holder's lease (probe-share.h)
 *   <prefix>probe-result/<unit>      struct lc_probe_result, same lease
 * Other keys under the prefix are ignored (later: agents/).
 *
 * The copy in memory (struct lc_registry's arrays) is filled by one range
 * read of the prefix, then kept by a watch from that read's revision + 1
 * on a thread of its own; a broken watch resumes from the revision after
 * the last one it applied (on another member), a compacted one (-ERANGE)
 * means a full re-read.  While etcd is unreachable the copy stays as it
 * was: the agent keeps working on it, retrying with a doubling pause up
 * to retry_max_ms, and status says so.  The thread changes the copy only
 * under the caller's lock (hooks).
 *
 * Changes are etcd transactions (rpc.proto TxnRequest) with compares, so
 * that two admins racing on two nodes never lose a change:
 *   keyconfig create   keyconfigs/<n> mod_revision == 0 (does not exist)
 *   keyconfig change   keyconfigs/<n> mod_revision == the copy's (canary)
 *   keyconfig delete   the same, and every key under bindings/ has
 *                      mod_revision < the copy's revision + 1 (no binding
 *                      was made or changed since the copy showed none
 *                      naming it; Compare.range_end)
 *   bind (new/change)  bindings/<w> mod_revision == the copy's (0: new),
 *                      keyconfigs/<k> version > 0 (it exists)
 *   unbind, hook       bindings/<w> mod_revision == the copy's
 * A lost compare is -ECANCELED (-EEXIST for a create), class INVALID,
 * with a message that says the entry changed on another node and nothing
 * was written.  A write whose outcome is unknown (etcd.h: TRANSIENT,
 * "outcome unknown") is reported as it is: look again, then retry.
 *
 * Revocation records only ever kill: the hook gets each record put (and,
 * on every full read, each record there, since a record may have come
 * while the watch was down); a record is never a reason to open anything.
 */
#ifndef LC_REGISTRY_ETCD_H
#define LC_REGISTRY_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "config.h"
#include "etcd.h"
#include "lc-error.h"
#include "probe-share.h"
#include "registry.h"

#define LC_REVOCATION_CAUSE_SIZE	256
#define LC_REVOCATION_AGENT_SIZE	65	/* host name */
#define LC_REGETCD_RECENT		16	/* records shown in status */

/* A revocation record (<prefix>revocations/<hash>). */
struct lc_revocation {
	char provider[LC_HDR_PROVIDER_SIZE];	/* "": any provider */
	char cmk_id[LC_HDR_CMK_ID_SIZE];	/* the CMK id the KMS reported, or "" */
	char key_ref[LC_HDR_PROVIDER_REF_SIZE];	/* its reference, or "" (not both "") */
	char keyconfig[LC_HDR_NAME_SIZE];	/* "": every volume under the CMK */
	char agent[LC_REVOCATION_AGENT_SIZE];	/* who wrote it (host name) */
	char cause[LC_REVOCATION_CAUSE_SIZE];	/* printable */
	int64_t time;				/* epoch seconds, as the writer saw it */
	int64_t mod_revision;			/* etcd's; 0 before written */
};

/* A shared probe's key changed (probe-share.h), already checked: the
 * unit is 64 hex digits, a value parses, and a result's own fields hash
 * to its unit. */
struct lc_probe_event {
	bool reset;			/* a full read: forget every holder and result,
					 * the puts that follow are all there is */
	bool result;			/* probe-result/<unit>, else probe/<unit> */
	bool del;			/* deleted (a lease expired or was revoked) */
	const char *unit;
	int64_t lease;			/* the key's lease (puts) */
	int64_t create_revision, mod_revision;
	const struct lc_probe_holder *holder;	/* put of probe/ */
	const struct lc_probe_result *res;	/* put of probe-result/ */
};

struct lc_regetcd_hooks {
	/* The lock that guards the registry (the agent's a->lock). */
	void (*lock)(void *arg);
	void (*unlock)(void *arg);
	/* A revocation record arrived (lock held; may drop and retake it). */
	void (*revocation)(void *arg, const struct lc_revocation *rec);
	/* A shared probe's key (lock held; must not drop it).  May be NULL. */
	void (*probe)(void *arg, const struct lc_probe_event *ev);
	void *arg;
};

/* The etcd client of [registry] (endpoints split at commas): no member is
 * contacted; files are read.  0, or -EINVAL (MISCONFIG) naming what. */
int lc_regetcd_client(const struct lc_config *cfg, struct lc_etcd **e, struct lc_error *err);

/*
 * Open @reg on etcd: the client (a MISCONFIG error is returned: the agent
 * does not start), then one read of the prefix.  etcd unreachable is not
 * an error: the registry starts empty, status says so, and the thread
 * reads again.  Hooks are copied.  Close with lc_registry_close().
 */
int lc_regetcd_open(struct lc_registry *reg, const struct lc_config *cfg,
		    const struct lc_regetcd_hooks *hooks, struct lc_error *err);
/* Start the watch thread (its signal mask is the caller's).  It first
 * hands the records of the opening read to the hook. */
int lc_regetcd_start(struct lc_registry *reg, struct lc_error *err);
/* Stop the thread and wait for it (at most about a second plus one
 * request timeout); the lock must not be held.  No-op without etcd. */
void lc_regetcd_stop(struct lc_registry *reg);
/* Stop, then free everything (lc_registry_close() calls it). */
void lc_regetcd_close(struct lc_registry *reg);

/* The writes of registry.c (called with the lock held; they drop it
 * around the request and take it again): see the compares above.  @kc of
 * put_binding: the key configuration it names (NULL: not compared).  On
 * success the copy holds the entry at its new mod_revision. */
int lc_regetcd_put_keyconfig(struct lc_registry *reg, const struct lc_keyconfig *kc,
			     struct lc_error *err);
int lc_regetcd_delete_keyconfig(struct lc_registry *reg, const struct lc_keyconfig *kc,
				struct lc_error *err);
int lc_regetcd_put_binding(struct lc_registry *reg, const struct lc_binding *b,
			   const struct lc_keyconfig *kc, struct lc_error *err);
int lc_regetcd_delete_binding(struct lc_registry *reg, const struct lc_binding *b,
			      struct lc_error *err);

/* Write revocation record @rec (the lock NOT held: a network request).
 * agent and time are filled here if empty.  *@key_out (may be NULL,
 * at least 256 bytes): the key written.  0, or etcd's errors. */
int lc_regetcd_revoke(struct lc_registry *reg, const struct lc_revocation *rec, char *key_out,
		      size_t key_size, struct lc_error *err);

/* For the shared probes (fleet-probe.c): the registry's client (NULL
 * without etcd), its prefix, and whether its watch last reached etcd
 * (lock held). */
struct lc_etcd *lc_regetcd_etcd(struct lc_registry *reg);
const char *lc_regetcd_prefix(struct lc_registry *reg);
bool lc_regetcd_reachable(struct lc_registry *reg);

/* The record's key suffix: hex SHA-256 of cmk_id, else of key_ref. */
void lc_revocation_hash(const struct lc_revocation *rec, char hex[65]);
/* A record from / to its JSON value; every field checked (printable,
 * bounded; cmk_id or key_ref set).  0 or -EINVAL with *@why. */
int lc_revocation_from_json(json_object *o, struct lc_revocation *rec, const char **why);
json_object *lc_revocation_to_json(const struct lc_revocation *rec);

/* ---- the records as etcd holds them (lakecryptctl revocation list/clear) ---- */

#define LC_REVOCATION_ID_SIZE	257	/* a record's id shown: at most 256 bytes */
#define LC_REVOCATION_LIST_MAX	10000	/* records one list reads */

/* One key under <prefix>revocations/, whatever its value. */
struct lc_revocation_entry {
	char id[LC_REVOCATION_ID_SIZE];	/* the key after <prefix>revocations/ ('?' for a
					 * byte that is not printable ASCII, cut at 256) */
	bool id_exact;			/* id is the key's suffix exactly (clear can name it) */
	bool valid;			/* the value is a record (lc_revocation_from_json) */
	bool hash_ok;			/* id is the hash of the record's CMK */
	char why[128];			/* !valid: why the agents refuse it */
	struct lc_revocation rec;	/* valid: the record; mod_revision always set */
	int64_t create_revision;
	int64_t version;		/* puts since it was created */
};

/* The key of record @id: @id is the part after <prefix>revocations/
 * (1..256 printable ASCII bytes, no '/'), or the whole key.  0, or
 * -EINVAL (INVALID) saying what a record id looks like. */
int lc_regetcd_revocation_key(struct lc_registry *reg, const char *id, char *key, size_t size,
			      struct lc_error *err);

/*
 * Every key under <prefix>revocations/, read from etcd (not the copy, which
 * keeps the last LC_REGETCD_RECENT), in key order, at one revision
 * (*@revision).  Values that the agents refuse are listed too (valid false,
 * why), since clear may remove them.  The lock NOT held (network).
 * *@out is malloc'ed (free()), *@n its length.  0; -EOPNOTSUPP (INVALID)
 * without etcd; -E2BIG beyond LC_REVOCATION_LIST_MAX; else etcd's errors.
 */
int lc_regetcd_revocations_list(struct lc_registry *reg, struct lc_revocation_entry **out,
				size_t *n, int64_t *revision, struct lc_error *err);

/* Record @key as etcd holds it now (lock NOT held).  0; -ENOENT (INVALID)
 * if there is none; else etcd's errors. */
int lc_regetcd_revocation_get(struct lc_registry *reg, const char *key,
			      struct lc_revocation_entry *ent, struct lc_error *err);

/*
 * Delete record @key if its mod_revision is still @mod_revision (> 0): one
 * transaction (rpc.proto TxnRequest: Compare MOD EQUAL, then
 * DeleteRangeRequest), so a record written again since the caller read it
 * is never lost.  The lock NOT held.  0 and *@revision (may be NULL) the
 * store's revision after the delete; -ESTALE (INVALID) if it was written
 * again since (the message gives its revision now); -ENOENT (INVALID) if it
 * is gone; else etcd's errors ("outcome unknown": look again).  Deleting a
 * record opens nothing: the agents do not act on deletes.
 */
int lc_regetcd_revocation_delete(struct lc_registry *reg, const char *key, int64_t mod_revision,
				 int64_t *revision, struct lc_error *err);

/*
 * Status (lock held): {"backend": "etcd", "reachable", "endpoint" (the
 * member that answered last), "prefix", "watch_revision", "last_full_read"
 * (epoch s, 0 never), "full_reads", "compactions", "watch_restarts",
 * "last_error", "unreachable_since" (epoch s, 0 while reachable),
 * "bad_values" (entries refused), "revocations_seen",
 * "revocations": [the last LC_REGETCD_RECENT records]}.
 */
json_object *lc_regetcd_status_json(struct lc_registry *reg);

#endif /* LC_REGISTRY_ETCD_H */
