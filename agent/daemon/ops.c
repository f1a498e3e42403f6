// SPDX-License-Identifier: GPL-2.0
/*
 * The operation table of the control protocol
 * (Documentation/agent-protocol.md), argument checking and dispatch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NOARGS ((const char *const[]){ NULL })

struct op {
	const char *name;
	enum lc_role role;
	const char *const *args;	/* every argument the op accepts */
	agent_op_fn fn;			/* NULL: a kms.* op, served by op_kms */
	bool quiet;			/* read-only: logged at debug level */
};

static const struct op ops[] = {
	{ "ping",		LC_ROLE_OPERATOR, NOARGS, op_ping, true },
	{ "kms.create",		LC_ROLE_ADMIN, ARGS("description"), NULL, false },
	{ "kms.list",		LC_ROLE_ADMIN, NOARGS, NULL, true },
	{ "kms.describe",	LC_ROLE_ADMIN, ARGS("key_id"), NULL, true },
	{ "kms.rotate",		LC_ROLE_ADMIN, ARGS("key_id"), NULL, false },
	{ "kms.disable",	LC_ROLE_ADMIN, ARGS("key_id"), NULL, false },
	{ "kms.enable",		LC_ROLE_ADMIN, ARGS("key_id"), NULL, false },
	{ "kms.deny",		LC_ROLE_ADMIN, ARGS("key_id"), NULL, false },
	{ "kms.allow",		LC_ROLE_ADMIN, ARGS("key_id"), NULL, false },
	{ "kms.cancel-deletion", LC_ROLE_ADMIN, ARGS("key_id"), NULL, false },
	{ "kms.schedule-deletion", LC_ROLE_ADMIN, ARGS("key_id", "days"), NULL, false },
	{ "kms.destroy",	LC_ROLE_ADMIN, ARGS("key_id", "now"), NULL, false },
	{ "keyconfig.create",	LC_ROLE_ADMIN, ARGS("name", "provider", "key_ref"),
	  op_keyconfig_create, false },
	{ "keyconfig.list",	LC_ROLE_ADMIN, NOARGS, op_keyconfig_list, true },
	{ "keyconfig.show",	LC_ROLE_ADMIN, ARGS("name"), op_keyconfig_show, true },
	{ "keyconfig.delete",	LC_ROLE_ADMIN, ARGS("name"), op_keyconfig_delete, false },
	{ "workspace.bind",	LC_ROLE_ADMIN, ARGS("workspace", "keyconfig", "operators", "devices"),
	  op_workspace_bind, false },
	{ "workspace.unbind",	LC_ROLE_ADMIN, ARGS("workspace"), op_workspace_unbind, false },
	{ "workspace.list",	LC_ROLE_ADMIN, NOARGS, op_workspace_list, true },
	{ "workspace.hook",	LC_ROLE_ADMIN,
	  ARGS("workspace", "signal", "stop_units", "command", "timeout_ms", "clear"),
	  op_workspace_hook, false },
	{ "volume.format",	LC_ROLE_OPERATOR,
	  ARGS("device", "workspace", "project", "header", "cipher", "key_size", "segment_size",
	       "sector_size", "force"), op_volume_format, false },
	{ "volume.open",	LC_ROLE_OPERATOR, ARGS("device", "workspace", "name", "header"),
	  op_volume_open, false },
	{ "volume.close",	LC_ROLE_OPERATOR, ARGS("name", "workspace", "if_open"), op_volume_close, false },
	{ "cache.open",		LC_ROLE_OPERATOR, ARGS("device", "workspace", "name", "segment_size", "force"),
	  op_cache_open, false },
	{ "volume.rewrap",	LC_ROLE_ADMIN, ARGS("name", "all", "keyconfig"), op_volume_rewrap, false },
	{ "volume.resize",	LC_ROLE_OPERATOR, ARGS("name", "size"), op_volume_resize, false },
	{ "volume.rotate-kek",	LC_ROLE_ADMIN, ARGS("name"), op_volume_rotate_kek, false },
	{ "volume.shred",	LC_ROLE_ADMIN, ARGS("name", "segments"), op_volume_shred, false },
	{ "workspace.rekey",	LC_ROLE_ADMIN, ARGS("workspace", "keyconfig"), op_workspace_rekey, false },
	{ "volume.rekey",	LC_ROLE_ADMIN, ARGS("device", "workspace", "header", "from"),
	  op_volume_rekey, false },
	{ "volume.rekey-segment", LC_ROLE_ADMIN,
	  ARGS("device", "workspace", "header", "segments", "resume"), op_volume_rekey_segment, false },
	{ "volume.migrate",	LC_ROLE_ADMIN, ARGS("device", "workspace", "header"),
	  op_volume_migrate, false },
	{ "status",		LC_ROLE_OPERATOR, ARGS("name"), op_status, true },
	{ "revoke",		LC_ROLE_ADMIN, ARGS("keyconfig", "cmk"), op_revoke, false },
	{ "check",		LC_ROLE_ADMIN, ARGS("cmk"), op_check, false },
	{ "volume.revoked",	LC_ROLE_ADMIN, ARGS("name", "volume"), op_volume_revoked, false },
	{ "revocation.list",	LC_ROLE_ADMIN, NOARGS, op_revocation_list, true },
	{ "revocation.clear",	LC_ROLE_ADMIN, ARGS("record", "revision", "force"), op_revocation_clear,
	  false },
	{ "audit.tail",		LC_ROLE_OPERATOR, ARGS("lines", "before"), op_audit_tail, true },
};

/* Ops that touch no slot and no registry entry run without a->lock: the
 * local KMS and the audit log have locks of their own. */
static bool unlocked_op(const struct op *op)
{
	return !op->fn || op->fn == op_ping || op->fn == op_audit_tail;
}

static const struct op *find_op(const char *name)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].name, name))
			return &ops[i];
	return NULL;
}

/* ---- arguments ---- */

static int missing(const char *name, const char *what, struct lc_error *err)
{
	return lc_err(err, -EINVAL, LC_ERRC_INVALID, "argument \"%s\" is missing: expected %s",
		      name, what);
}

int arg_str(json_object *args, const char *name, bool required, const char **out,
	    struct lc_error *err)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(args, name, &v) || !v)
		return required ? missing(name, "a non-empty string", err) : 0;
	if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"%s\" must be a non-empty string", name);
	if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"%s\" must not contain NUL characters", name);
	*out = json_object_get_string(v);
	return 0;
}

/* An integer >= 0, or a string with a binary K/M/G/T suffix ("1M"). */
int arg_u64(json_object *args, const char *name, bool required, uint64_t *out,
	    struct lc_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(args, name, &v) || !v)
		return required ? missing(name, "a non-negative integer", err) : 0;
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
		*out = (uint64_t)json_object_get_int64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		char *end;
		unsigned long long n;
		unsigned int shift = 0;

		errno = 0;
		n = strtoull(s, &end, 10);
		if (end != s && *s >= '0' && *s <= '9' && !errno) {
			switch (*end) {
			case 'K': case 'k': shift = 10; end++; break;
			case 'M': case 'm': shift = 20; end++; break;
			case 'G': case 'g': shift = 30; end++; break;
			case 'T': case 't': shift = 40; end++; break;
			}
			if (!*end && n <= (UINT64_MAX >> shift)) {
				*out = (uint64_t)n << shift;
				return 0;
			}
		}
	}
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "argument \"%s\" must be a non-negative integer (or a string like \"1M\")",
		      name);
}

int arg_bool(json_object *args, const char *name, bool *out, struct lc_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(args, name, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"%s\" must be true or false", name);
	*out = json_object_get_boolean(v);
	return 0;
}

static int check_args(const struct op *op, json_object *args, struct lc_error *err)
{
	json_object_object_foreach(args, key, val) {
		bool known = false;
		char list[256] = "";
		size_t off = 0;

		(void)val;
		for (size_t i = 0; op->args[i]; i++)
			known |= !strcmp(op->args[i], key);
		if (known)
			continue;
		for (size_t i = 0; op->args[i] && off < sizeof(list); i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
						i ? ", " : "", op->args[i]);
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "operation \"%s\" has no argument \"%.64s\"; it takes %s", op->name,
			      key, off ? list : "no arguments");
	}
	return 0;
}

/* ---- workspaces: who may act where ---- */

static bool in_ws_groups(struct agent *a, struct client *c, const struct lc_binding *b)
{
	_cleanup_free_ gid_t *gids = NULL;
	size_t n = 0;

	if (!b || a->groups->user_groups(a->groups->ctx, c->peer.uid, c->peer.gid, &gids, &n) < 0)
		return false;
	for (size_t i = 0; i < b->access.ngroups; i++) {
		gid_t g;

		if (a->groups->group_gid(a->groups->ctx, b->access.groups[i], &g) < 0)
			continue;
		for (size_t j = 0; j < n; j++)
			if (gids[j] == g)
				return true;
	}
	return false;
}

bool agent_ws_visible(struct agent *a, struct client *c, const char *workspace)
{
	if (c->role == LC_ROLE_ADMIN)
		return true;
	return workspace && in_ws_groups(a, c, lc_registry_binding(&a->reg, workspace));
}

int agent_ws_access(struct agent *a, struct client *c, const char *workspace, const char *op,
		    struct lc_error *err)
{
	const struct lc_binding *b;
	char list[LC_WS_MAX_GROUPS * LC_WS_GROUP_SIZE + 8] = "";
	size_t off = 0;

	if (agent_ws_visible(a, c, workspace))
		return 0;
	b = lc_registry_binding(&a->reg, workspace);
	for (size_t i = 0; b && i < b->access.ngroups; i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
					b->access.groups[i]);
	lc_err(err, -EACCES, LC_ERRC_REFUSED,
	       "uid %u is not an operator of workspace %s (%s%s): an admin grants it with `lakecryptctl workspace bind %s --keyconfig K --operators GROUP`",
	       (unsigned int)c->peer.uid, workspace, off ? "operator groups: " : "",
	       off ? list : b ? "it has no operator groups" : "it is not bound", workspace);
	lc_warn("refused \"%s\" in workspace %s to uid %u", op, workspace,
		(unsigned int)c->peer.uid);
	return -EACCES;	/* audited by agent_handle(), as every refusal */
}

/* ---- audit of the agent's own operations ---- */

void agent_audit_simple(struct agent *a, const char *op, enum lc_audit_outcome o,
			int64_t peer_uid, const char *workspace, const char *keyconfig,
			const char *provider, const char *cmk_id, const struct lc_error *e)
{
	struct lc_audit_event ev;
	struct lc_error ae;

	lc_audit_event_init(&ev, op, o);
	ev.peer_uid = peer_uid;
	ev.workspace = workspace;
	ev.keyconfig = keyconfig;
	ev.provider = provider;
	ev.cmk_id = cmk_id;
	if (e && e->cls != LC_ERRC_NONE)
		ev.error_class = e->cls;
	else if (o != LC_AUDIT_SUCCESS)
		ev.error_class = LC_ERRC_INTERNAL;
	if (lc_audit_write(&a->audit, &ev, &ae) < 0)
		lc_error_log("audit record for %s could not be written: %s", op, ae.msg);
}

void agent_audit_locked(struct agent *a, const char *op, enum lc_audit_outcome o,
			int64_t peer_uid, const char *workspace, const char *keyconfig,
			const char *provider, const char *cmk_id, const struct lc_error *e)
{
	char ws[LC_HDR_NAME_SIZE] = "", kc[LC_HDR_NAME_SIZE] = "";
	char prov[LC_HDR_PROVIDER_SIZE] = "", cmk[LC_HDR_CMK_ID_SIZE] = "";

	/* Copies: what the pointers name may change once the lock is gone. */
	snprintf(ws, sizeof(ws), "%s", workspace ? workspace : "");
	snprintf(kc, sizeof(kc), "%s", keyconfig ? keyconfig : "");
	snprintf(prov, sizeof(prov), "%s", provider ? provider : "");
	snprintf(cmk, sizeof(cmk), "%s", cmk_id ? cmk_id : "");
	agent_unlock(a);
	agent_audit_simple(a, op, o, peer_uid, ws[0] ? ws : NULL, kc[0] ? kc : NULL,
			   prov[0] ? prov : NULL, cmk[0] ? cmk : NULL, e);
	agent_relock(a);
}

/* ---- dispatch ---- */

static json_object *refuse(struct agent *a, struct client *c, const char *opname,
			   const struct op *op, int64_t id)
{
	struct lc_error e;

	if (op)
		lc_err(&e, -EACCES, LC_ERRC_REFUSED,
		       "operation \"%s\" needs the %s role; uid %u has the role %s (admins: root or group %s; operators: group %s)",
		       opname, lc_role_name(op->role), (unsigned int)c->peer.uid,
		       lc_role_name(c->role), a->cfg.admin_group, a->cfg.operator_group);
	else
		lc_err(&e, -EACCES, LC_ERRC_REFUSED,
		       "uid %u may not use the lakecrypt agent: join group %s (operators) or %s (admins)",
		       (unsigned int)c->peer.uid, a->cfg.operator_group, a->cfg.admin_group);
	lc_warn("refused \"%.64s\" from uid %u (pid %d, role %s)", opname,
		(unsigned int)c->peer.uid, (int)c->peer.pid, lc_role_name(c->role));
	agent_audit_simple(a, opname, LC_AUDIT_REFUSED, c->peer.uid, NULL, NULL, NULL, NULL, &e);
	return lc_proto_reply_error(id, &e);
}

json_object *agent_handle(struct agent *a, struct client *c, json_object *msg)
{
	struct lc_proto_request req;
	struct lc_error e = { 0 };
	json_object *result = NULL;
	const struct op *op;
	int r;

	struct lc_role_policy pol = { a->cfg.admin_group, a->cfg.operator_group };

	r = lc_proto_request_parse(msg, &req, &e);
	if (r < 0)
		return lc_proto_reply_error(req.id, &e);
	op = find_op(req.op);
	/* Every request: a peer removed from a group loses its role at once.
	 * A database error leaves the role NONE: refused, never guessed. */
	if (lc_role_resolve(&c->peer, &pol, a->groups, &c->role, &e) < 0) {
		lc_warn("control socket: peer uid %u: %s", (unsigned int)c->peer.uid, e.msg);
		c->role = LC_ROLE_NONE;
	}
	if (c->role == LC_ROLE_NONE || (op && c->role < op->role))
		return refuse(a, c, req.op, op, req.id);
	if (!op) {
		lc_err(&e, -EOPNOTSUPP, LC_ERRC_INVALID,
		       "unknown operation \"%.64s\"; see Documentation/agent-protocol.md for the operations",
		       req.op);
		return lc_proto_reply_error(req.id, &e);
	}
	r = check_args(op, req.args, &e);
	if (r < 0)
		return lc_proto_reply_error(req.id, &e);

	c->env = a->env;
	c->env.peer_uid = c->peer.uid;
	agent_paths_resolve(a, c, req.args);	/* before the lock: paths.c */
	if (!unlocked_op(op))
		agent_relock(a);
	if (op->fn)
		r = op->fn(a, c, req.args, &result, &e);
	else
		r = op_kms(a, c, req.args, &result, &e, op->name);
	if (!unlocked_op(op))
		agent_unlock(a);
	agent_paths_free(c);
	if (r < 0 && e.cls == LC_ERRC_REFUSED) {
		/* Every refusal is audited, whatever refused it (workspace,
		 * device, force, header path), with the workspace named. */
		json_object *ws = NULL;

		(void)json_object_object_get_ex(req.args, "workspace", &ws);
		agent_audit_simple(a, op->name, LC_AUDIT_REFUSED, c->peer.uid,
				   ws && json_object_is_type(ws, json_type_string) ?
				   json_object_get_string(ws) : NULL, NULL, NULL, NULL, &e);
	}
	if (r < 0) {
		json_object_put(result);
		if (!e.code)
			lc_err(&e, r, LC_ERRC_INTERNAL, "%s failed: %s", op->name, strerror(-r));
		lc_log(op->quiet ? LC_LOG_DEBUG : LC_LOG_INFO, "uid %u: %s failed (%s): %s",
		       (unsigned int)c->peer.uid, op->name, lc_err_class_name(e.cls), e.msg);
		return lc_proto_reply_error(req.id, &e);
	}
	lc_log(op->quiet ? LC_LOG_DEBUG : LC_LOG_INFO, "uid %u: %s done",
	       (unsigned int)c->peer.uid, op->name);
	return lc_proto_reply_ok(req.id, result);
}
