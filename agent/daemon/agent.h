/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lakecrypt-agent: the daemon's state, shared by its files.
 *
 *   main.c       command line, start-up, the poll() loop, shutdown
 *   clients.c    connections: framing, peers and roles
 *   ops.c        the operation table, argument checking, dispatch
 *   ops-admin.c  kms.*, keyconfig.*, workspace.*
 *   ops-volume.c volume.*, cache.open, status, revoke, audit.tail
 *   providers.c  the KMS provider table, keyed by provider kind
 *   watch.c      the revocation watcher and the kill switch over volumes
 *   ops-notify.c volume.revoked: a revoke the kernel reported (udev)
 *   notify.c     readiness and status for systemd (Type=notify)
 */
#ifndef LC_AGENT_H
#define LC_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "audit.h"
#include "config.h"
#include "kms-local.h"
#include "lc-error.h"
#include "proto.h"
#include "provider.h"
#include "registry.h"
#include "volume.h"

#define LC_AGENT_VERSION	"1.0.0"
#define LC_AGENT_MAX_CLIENTS	64
#define LC_AGENT_SEND_TIMEOUT_MS 5000
#define LC_AGENT_RUNTIME_FILE	"volumes.json"
#define LC_AGENT_PID_FILE	"agent.pid"
#define LC_AGENT_KMS_DIR	"kms"

struct client {
	struct lc_proto_conn conn;
	struct lc_peer peer;
	enum lc_role role;
};

/* One KMS provider per kind ("local", later "aws-kms", ...). */
struct provider_slot {
	const char *kind;
	bool ready;
	struct lc_provider p;
};

#define LC_AGENT_MAX_PROVIDERS	8

struct agent {
	struct lc_config cfg;
	const char *config_path;
	bool foreground;

	int listen_fd;
	int signal_fd;
	int timer_fd;
	bool stop;

	struct lc_kms_local *kms;
	struct lc_registry reg;
	struct lc_audit audit;
	struct provider_slot providers[LC_AGENT_MAX_PROVIDERS];
	size_t nproviders;
	struct lc_volume_env env;
	const struct lc_group_db *groups;

	struct lc_volume **vols;
	size_t nvols;
	char runtime_path[PATH_MAX];

	struct client *clients[LC_AGENT_MAX_CLIENTS];
	size_t nclients;
};

/* providers.c */
int agent_providers_init(struct agent *a, struct lc_error *err);
void agent_providers_close(struct agent *a);
struct lc_provider *agent_provider(void *agent, const char *kind);
json_object *agent_kms_calls_json(struct agent *a);

/* clients.c */
void agent_client_accept(struct agent *a);
/* Serve what @c has sent; false if the connection must be closed. */
bool agent_client_serve(struct agent *a, struct client *c);
void agent_client_free(struct client *c);

/* ops.c */
json_object *agent_handle(struct agent *a, struct client *c, json_object *msg);
void agent_audit_simple(struct agent *a, const char *op, enum lc_audit_outcome o,
			int64_t peer_uid, const char *workspace, const char *keyconfig,
			const char *provider, const char *cmk_id, const struct lc_error *e);

/* Operation handlers: 0 and *result (NULL: empty object), or -errno and @err. */
typedef int (*agent_op_fn)(struct agent *a, struct client *c, json_object *args,
			   json_object **result, struct lc_error *err);

/* Argument access: required ones fail with a message naming them. */
int arg_str(json_object *args, const char *name, bool required, const char **out,
	    struct lc_error *err);
int arg_u64(json_object *args, const char *name, bool required, uint64_t *out,
	    struct lc_error *err);
int arg_bool(json_object *args, const char *name, bool *out, struct lc_error *err);

/* ops-admin.c */
int op_kms(struct agent *a, struct client *c, json_object *args, json_object **result,
	   struct lc_error *err, const char *op);
int op_keyconfig_create(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err);
int op_keyconfig_list(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);
int op_keyconfig_delete(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err);
int op_workspace_bind(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);
int op_workspace_unbind(struct agent *a, struct client *c, json_object *args,
			json_object **result, struct lc_error *err);
int op_workspace_list(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err);

/* ops-volume.c */
int op_ping(struct agent *a, struct client *c, json_object *args, json_object **result,
	    struct lc_error *err);
int op_volume_format(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err);
int op_volume_open(struct agent *a, struct client *c, json_object *args,
		   json_object **result, struct lc_error *err);
int op_volume_close(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err);
int op_cache_open(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err);
int op_volume_rewrap(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err);
int op_status(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err);
int op_revoke(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err);
/* notify.c: sd_notify(3) protocol; 1 sent, 0 not under systemd, -errno. */
int agent_notify(const char *state);
void agent_notify_ready(struct agent *a);

/* ops-notify.c */
int op_volume_revoked(struct agent *a, struct client *c, json_object *args, json_object **result,
		      struct lc_error *err);
int op_audit_tail(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err);

/* watch.c and the volume list */
struct lc_volume *agent_volume(struct agent *a, const char *name);
int agent_volume_add(struct agent *a, struct lc_volume *v, struct lc_error *err);
void agent_volume_remove(struct agent *a, struct lc_volume *v);
void agent_volumes_save(struct agent *a);
/* Revoke every open, not yet revoked volume whose CMK is (provider,
 * key_ref) or whose key configuration is @keyconfig; names go to @names. */
int agent_revoke_matching(struct agent *a, const char *keyconfig, const char *provider,
			  const char *key_ref, const char *cause, bool denied,
			  json_object *names, struct lc_error *err);
void agent_watch_tick(struct agent *a);

#endif /* LC_AGENT_H */
