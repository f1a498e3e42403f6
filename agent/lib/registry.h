/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key configurations and workspace bindings (the delegation model of the
 * product brief): a security admin registers a key configuration (a CMK
 * reference in one provider) and binds workspaces to it; volumes formatted
 * in a workspace are encrypted under the CMK of its key configuration.
 *
 * Persisted as one JSON file, <state_dir>/registry.json (0600), rewritten
 * atomically (lc_file_write_atomic) on every change:
 *   {"version": 1,
 *    "keyconfigs": [{"name", "provider", "key_ref", "cmk_id", "created",
 *                    "canary", "canary_sha256" (both optional),
 *                    "kms_identity" (optional)}],
 *    "workspaces": [{"workspace", "keyconfig", "created",
 *                    "operators": [group, ...], "devices": [pattern, ...],
 *                    "hook": {...} (optional, lc_hook_to_json())}]}
 * A change that cannot be written is undone in memory too, so memory and
 * disk never disagree.
 *
 * Rules: names are 1 to 63 characters from A-Z a-z 0-9 . _ -, the first a
 * letter or digit (the header's name rule), and not "control" (the name of
 * /dev/mapper/control, which the kernel refuses for a volume; one rule for
 * every name, as lakecrypt-generator's is_name); a key configuration name is
 * unique; a binding needs an existing key configuration; a key
 * configuration cannot be deleted while a workspace is bound to it.
 */
#ifndef LC_REGISTRY_H
#define LC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <lakecrypt/ondisk.h>

#include "hook.h"
#include "lc-error.h"

#define LC_REGISTRY_FILE	"registry.json"
#define LC_REGISTRY_VERSION	1

#define LC_CANARY_BLOB_MAX	2048	/* wrapped canary, bytes */
#define LC_CANARY_B64_SIZE	(4 * ((LC_CANARY_BLOB_MAX + 2) / 3) + 1)
#define LC_CANARY_LEN		32	/* plaintext bytes */
#define LC_CANARY_CONTEXT_PREFIX "lakecrypt:v2;canary;keyconfig="

struct lc_keyconfig {
	char name[LC_HDR_NAME_SIZE];
	char provider[LC_HDR_PROVIDER_SIZE];	/* provider kind: "local", ... */
	char key_ref[LC_HDR_PROVIDER_REF_SIZE];	/* the provider's CMK reference */
	char cmk_id[LC_HDR_CMK_ID_SIZE];	/* CMK id as the provider reported it */
	int64_t created;			/* epoch seconds */
	/* The revocation probe's canary (lakecrypt-agent.md): 32 random bytes
	 * wrapped under the CMK with context LC_CANARY_CONTEXT_PREFIX<name>,
	 * base64 (RFC 4648), and the hex SHA-256 of the plaintext, which is
	 * never stored.  "" while there is none yet. */
	char canary[LC_CANARY_B64_SIZE];
	char canary_sha256[65];
	/* The KMS principal the agent was when the configuration was made
	 * (provider.h, ops->identity; agent/daemon/kms-ident.c), printable
	 * ASCII; "" unbound (made before identity binding, or the provider
	 * names none): a denial is then taken as today. */
	char kms_identity[512];
	/* etcd backend: the mod_revision of <prefix>keyconfigs/<name> this
	 * copy is from (compare-and-swap of a change); 0 with the file. */
	int64_t mod_revision;
};

#define LC_WS_MAX_GROUPS	16
#define LC_WS_GROUP_SIZE	33	/* group names: 1..32 characters */
#define LC_WS_MAX_DEVICES	32
#define LC_WS_DEVICE_SIZE	256	/* absolute glob(7) patterns, 1..255 */

/*
 * Who may operate a workspace and on which block devices.  Operators are
 * members of one of @groups (admins always may); operators format, open
 * and cache only block devices that one of @devices matches: each pattern
 * is an absolute glob(7) pattern, e.g. "/dev/disk/by-id/nvme-Amazon*" or
 * "/dev/vd[b-z]", expanded when checked; a device is allowed when its
 * device number is that of a match (symlinks followed), so the check holds
 * for the descriptor actually opened, whatever path named it.  Empty
 * lists allow nothing.
 */
struct lc_ws_access {
	char groups[LC_WS_MAX_GROUPS][LC_WS_GROUP_SIZE];
	size_t ngroups;
	char devices[LC_WS_MAX_DEVICES][LC_WS_DEVICE_SIZE];
	size_t ndevices;
};

struct lc_binding {
	char workspace[LC_HDR_NAME_SIZE];
	char keyconfig[LC_HDR_NAME_SIZE];
	int64_t created;
	struct lc_ws_access access;
	struct lc_ws_hook hook;		/* compute termination after a revocation */
	int64_t mod_revision;		/* etcd: of <prefix>bindings/<workspace>; 0 file */
};

struct lc_regetcd;

/*
 * The registry in memory, and where it is kept: the file (path set, etcd
 * NULL) or etcd (registry-etcd.h: etcd set, path NULL; the arrays are the
 * copy kept by its watch, changed only under the caller's lock).  The
 * functions below are the same for both: a change is written first (the
 * file atomically; etcd as a compare-and-swap transaction) and is in
 * memory only once written.
 */
struct lc_registry {
	struct lc_regetcd *etcd;
	char *path;
	struct lc_keyconfig *kc;
	size_t nkc;
	struct lc_binding *bind;
	size_t nbind;
};

/* 0 if @s is a valid name (see above); else -EINVAL with a message that
 * calls it @what ("workspace", "key configuration name", ...). */
int lc_name_check(const char *what, const char *s, struct lc_error *err);

/* String member @key of JSON object @o (registry.json or an etcd value) into
 * @out (@size bytes, NUL included): true when it is a string shorter than
 * @size with no NUL and only printable ASCII; a missing member is "" and
 * true unless @required. */
bool lc_registry_json_string(json_object *o, const char *key, char *out, size_t size,
			     bool required);

/* Load <state_dir>/registry.json (an empty registry if it does not exist). */
int lc_registry_open(struct lc_registry *reg, const char *state_dir, struct lc_error *err);
void lc_registry_close(struct lc_registry *reg);

const struct lc_keyconfig *lc_registry_keyconfig(const struct lc_registry *reg, const char *name);
const struct lc_binding *lc_registry_binding(const struct lc_registry *reg, const char *workspace);

/* The key configuration a workspace is bound to; -ENOENT (INVALID) with
 * "workspace X is not bound to a key configuration; ..." if none. */
int lc_registry_resolve(const struct lc_registry *reg, const char *workspace,
			const struct lc_keyconfig **kc, struct lc_error *err);

/* Number of workspaces bound to key configuration @name. */
size_t lc_registry_bound_count(const struct lc_registry *reg, const char *name);

/* Add @kc (name, provider, key_ref, cmk_id; created is set here).
 * -EEXIST if the name is taken. */
int lc_registry_keyconfig_add(struct lc_registry *reg, const struct lc_keyconfig *kc,
			      struct lc_error *err);
/* -ENOENT if unknown; -EBUSY (INVALID) while a workspace is bound to it. */
int lc_registry_keyconfig_delete(struct lc_registry *reg, const char *name, struct lc_error *err);

/* Bind @workspace to @keyconfig (replacing an earlier binding of that
 * workspace; its volumes then open only once re-keyed to the new one).
 * @acc: the workspace's operators and devices; NULL keeps those of an
 * earlier binding (none for a new one).  -ENOENT (INVALID) if the key
 * configuration does not exist, -EINVAL for a bad group or pattern. */
int lc_registry_bind(struct lc_registry *reg, const char *workspace, const char *keyconfig,
		     const struct lc_ws_access *acc, struct lc_error *err);

/* Check a group name (1..32 of A-Z a-z 0-9 . _ -, first not '-') and a
 * device pattern (absolute, printable, no "/../", 1..255 characters). */
int lc_ws_group_check(const char *g, struct lc_error *err);
int lc_ws_device_check(const char *pattern, struct lc_error *err);
/* -ENOENT if the workspace is not bound. */
int lc_registry_unbind(struct lc_registry *reg, const char *workspace, struct lc_error *err);

/* Store the canary of key configuration @name: @b64 (base64 of at most
 * LC_CANARY_BLOB_MAX bytes), @sha256_hex (64 lower-case hex digits).
 * -ENOENT if there is no such key configuration, -EINVAL for bad values. */
int lc_registry_set_canary(struct lc_registry *reg, const char *name, const char *b64,
			   const char *sha256_hex, struct lc_error *err);

/* Set (@hook checked with lc_hook_check()) or, with NULL, clear the
 * termination hook of bound @workspace.  -ENOENT if it is not bound. */
int lc_registry_set_hook(struct lc_registry *reg, const char *workspace,
			 const struct lc_ws_hook *hook, struct lc_error *err);

/* ---- for the backends (registry-etcd.c) ---- */

/* An entry as JSON, the shape of registry.json's entries (new object). */
json_object *lc_keyconfig_to_json(const struct lc_keyconfig *kc);
json_object *lc_binding_to_json(const struct lc_binding *b);
/* An entry from JSON, every field checked as registry.json's are (unknown
 * members ignored; mod_revision 0).  0, or -EINVAL and *@why. */
int lc_keyconfig_from_json(json_object *o, struct lc_keyconfig *kc, const char **why);
int lc_binding_from_json(json_object *o, struct lc_binding *b, const char **why);
/* Memory only, no write: add or replace the entry of that name; remove it
 * (absent: nothing).  -ENOMEM. */
int lc_registry_mem_put_keyconfig(struct lc_registry *reg, const struct lc_keyconfig *kc);
int lc_registry_mem_put_binding(struct lc_registry *reg, const struct lc_binding *b);
void lc_registry_mem_del_keyconfig(struct lc_registry *reg, const char *name);
void lc_registry_mem_del_binding(struct lc_registry *reg, const char *workspace);

#endif /* LC_REGISTRY_H */
