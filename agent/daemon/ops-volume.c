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
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "header.h"

#define JADD(o, k, v) json_object_object_add(o, k, v)
#define AUDIT_TAIL_DEFAULT	50
#define AUDIT_TAIL_MAX		10000

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
static int arg_header(struct agent *a, struct client *c, json_object *args, char *buf,
		      size_t size, const char **out, struct lc_error *err)
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

/* The device allow-list that applies to @c in @workspace (NULL: admin). */
static const struct lc_ws_access *device_policy(struct agent *a, struct client *c,
						const char *workspace)
{
	static const struct lc_ws_access none;
	const struct lc_binding *b;

	if (c->role == LC_ROLE_ADMIN)
		return NULL;
	b = lc_registry_binding(&a->reg, workspace);
	return b ? &b->access : &none;
}

static int no_volume(const char *name, struct lc_error *err)
{
	return lc_err(err, -ENOENT, LC_ERRC_INVALID,
		      "no open volume is called \"%s\" (status lists the open volumes)", name);
}

static json_object *volume_json(struct agent *a, const struct lc_volume *v)
{
	struct lc_dm_status st;
	struct lc_error e;
	json_object *o;

	if (lc_volume_status(&a->env, v, &st, &e) < 0) {
		o = lc_volume_to_json(v, NULL);
		JADD(o, "dm_error", json_object_new_string(e.msg));
		return o;
	}
	return lc_volume_to_json(v, &st);
}

int op_volume_format(struct agent *a, struct client *c, json_object *args,
		     json_object **result, struct lc_error *err)
{
	struct lc_format_args fa = { 0 };
	const struct lc_keyconfig *kc;
	struct lc_header *h = NULL;
	char hbuf[PATH_MAX];
	uint64_t key_size = a->cfg.key_size, seg = a->cfg.segment_sectors * 512, ss = 512;
	char uuid[LC_UUID_STR_LEN];
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
	fa.allow = device_policy(a, c, fa.workspace);
	r = lc_volume_format(&a->env, kc, &fa, &h, err);
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

static int name_free(struct agent *a, const char *name, struct lc_error *err)
{
	if (name && agent_volume(a, name))
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "a volume called \"%s\" is already open (/dev/mapper/%s): close it or choose another name",
			      name, name);
	return 0;
}

int op_volume_open(struct agent *a, struct client *c, json_object *args,
		   json_object **result, struct lc_error *err)
{
	struct lc_open_args oa = { 0 };
	struct lc_volume *v = NULL;
	char hbuf[PATH_MAX];
	int r;

	if ((r = arg_path(args, "device", true, &oa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &oa.workspace, err)) < 0 ||
	    (r = arg_str(args, "name", true, &oa.name, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &oa.header, err)) < 0 ||
	    (r = lc_name_check("workspace", oa.workspace, err)) < 0 ||
	    (r = agent_ws_access(a, c, oa.workspace, "volume.open", err)) < 0 ||
	    (r = name_free(a, oa.name, err)) < 0 ||
	    (r = lc_registry_resolve(&a->reg, oa.workspace, &oa.kc, err)) < 0)
		return r;
	oa.allow = device_policy(a, c, oa.workspace);
	r = lc_volume_open(&a->env, &oa, &v, err);
	if (r < 0)
		return r;
	r = agent_volume_add(a, v, err);
	if (r < 0) {
		struct lc_error e2;

		(void)lc_volume_close(&a->env, v, &e2);
		lc_volume_free(v);
		return r;
	}
	*result = volume_json(a, v);
	return 0;
}

int op_cache_open(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err)
{
	struct lc_cache_args ca = { 0 };
	const struct lc_keyconfig *kc;
	struct lc_volume *v = NULL;
	uint64_t seg = a->cfg.segment_sectors * 512;
	int r;

	if ((r = arg_path(args, "device", true, &ca.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &ca.workspace, err)) < 0 ||
	    (r = arg_str(args, "name", true, &ca.name, err)) < 0 ||
	    (r = arg_u64(args, "segment_size", false, &seg, err)) < 0 ||
	    (r = lc_name_check("workspace", ca.workspace, err)) < 0 ||
	    (r = agent_ws_access(a, c, ca.workspace, "cache.open", err)) < 0 ||
	    (r = name_free(a, ca.name, err)) < 0 ||
	    (r = lc_registry_resolve(&a->reg, ca.workspace, &kc, err)) < 0)
		return r;
	ca.allow = device_policy(a, c, ca.workspace);
	ca.segment_size = seg;
	ca.cipher = a->cfg.cipher;
	ca.key_size = a->cfg.key_size;
	r = lc_volume_cache_open(&a->env, kc, &ca, &v, err);
	if (r < 0)
		return r;
	r = agent_volume_add(a, v, err);
	if (r < 0) {
		struct lc_error e2;

		(void)lc_volume_close(&a->env, v, &e2);
		lc_volume_free(v);
		return r;
	}
	*result = volume_json(a, v);
	return 0;
}

int op_volume_close(struct agent *a, struct client *c, json_object *args,
		    json_object **result, struct lc_error *err)
{
	struct lc_volume *v;
	const char *name;
	int r;

	(void)result;
	r = arg_str(args, "name", true, &name, err);
	if (r < 0)
		return r;
	v = agent_volume(a, name);
	if (!v || !agent_ws_visible(a, c, v->workspace))
		return no_volume(name, err);
	r = lc_volume_close(&a->env, v, err);
	if (r < 0)
		return r;
	agent_volume_remove(a, v);
	return 0;
}

int op_volume_migrate(struct agent *a, struct client *c, json_object *args,
		      json_object **result, struct lc_error *err)
{
	struct lc_open_args oa = { 0 };
	struct lc_header *h = NULL;
	char hbuf[PATH_MAX], uuid[LC_UUID_STR_LEN];
	int r;

	if ((r = arg_path(args, "device", true, &oa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &oa.workspace, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &oa.header, err)) < 0 ||
	    (r = lc_name_check("workspace", oa.workspace, err)) < 0 ||
	    (r = lc_registry_resolve(&a->reg, oa.workspace, &oa.kc, err)) < 0)
		return r;
	r = lc_volume_migrate(&a->env, &oa, &h, err);
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
	struct lc_volume *v;
	const char *name;
	int r;

	(void)c;
	r = arg_str(args, "name", true, &name, err);
	if (r < 0)
		return r;
	v = agent_volume(a, name);
	if (!v)
		return no_volume(name, err);
	r = lc_volume_rewrap(&a->env, v, err);
	if (r < 0)
		return r;
	agent_volumes_save(a);
	*result = volume_json(a, v);
	return 0;
}

int op_status(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err)
{
	const char *name;
	json_object *arr;
	int r;

	r = arg_str(args, "name", false, &name, err);
	if (r < 0)
		return r;
	/* Operators see only the volumes of their workspaces. */
	if (name && (!agent_volume(a, name) ||
		     !agent_ws_visible(a, c, agent_volume(a, name)->workspace)))
		return no_volume(name, err);
	arr = json_object_new_array();
	for (size_t i = 0; i < a->nvols; i++)
		if ((!name || !strcmp(a->vols[i]->name, name)) &&
		    agent_ws_visible(a, c, a->vols[i]->workspace))
			json_object_array_add(arr, volume_json(a, a->vols[i]));
	*result = json_object_new_object();
	JADD(*result, "volumes", arr);
	JADD(*result, "kms_calls", agent_kms_calls_json(a));
	return 0;
}

int op_revoke(struct agent *a, struct client *c, json_object *args, json_object **result,
	      struct lc_error *err)
{
	const struct lc_keyconfig *kc;
	const char *kcname, *cmk;
	json_object *names;
	char cause[512];
	int r;

	if ((r = arg_str(args, "keyconfig", false, &kcname, err)) < 0 ||
	    (r = arg_str(args, "cmk", false, &cmk, err)) < 0)
		return r;
	if (!kcname == !cmk)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "revoke needs exactly one of the arguments \"keyconfig\" (a key configuration name) or \"cmk\" (a CMK id)");
	names = json_object_new_array();
	if (kcname) {
		/* The key configuration names a CMK; volumes are matched by that
		 * CMK's identity (provider and key id or reference). */
		kc = lc_registry_keyconfig(&a->reg, kcname);
		if (!kc) {
			json_object_put(names);
			return lc_err(err, -ENOENT, LC_ERRC_INVALID,
				      "there is no key configuration \"%s\": revoke by CMK with cmk (status shows each volume's cmk_id)",
				      kcname);
		}
		snprintf(cause, sizeof(cause), "revoked by uid %u (key configuration %s, CMK %.300s)",
			 (unsigned int)c->peer.uid, kcname, kc->cmk_id[0] ? kc->cmk_id : kc->key_ref);
		r = agent_revoke_matching(a, NULL, kc->provider, kc->key_ref, cause, false, names,
					  err);
		if (!r && kc->cmk_id[0] && strcmp(kc->cmk_id, kc->key_ref))
			r = agent_revoke_matching(a, NULL, kc->provider, kc->cmk_id, cause, false,
						  names, err);
	} else {
		snprintf(cause, sizeof(cause), "revoked by uid %u (CMK %.400s)",
			 (unsigned int)c->peer.uid, cmk);
		r = agent_revoke_matching(a, NULL, NULL, cmk, cause, false, names, err);
	}
	if (r < 0) {
		json_object_put(names);
		return r;
	}
	*result = json_object_new_object();
	JADD(*result, "revoked", names);
	return 0;
}

/* The last @n lines of @fd, oldest first, as JSON objects. */
static int tail_lines(int fd, size_t n, json_object *arr, struct lc_error *err)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t cap = 0, len = 0, lines = 0;
	off_t pos;
	char *p, *end;

	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "stat of the audit log: %s", strerror(errno));
	pos = st.st_size;
	/* Read backwards in chunks until n + 1 newlines are in hand. */
	while (pos > 0 && lines <= n) {
		size_t chunk = pos > 65536 ? 65536 : (size_t)pos;
		char *nb;
		ssize_t got;

		if (len + chunk > 64u << 20)
			break;
		nb = malloc(len + chunk + 1);
		if (!nb)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		pos -= (off_t)chunk;
		got = pread(fd, nb, chunk, pos);
		if (got != (ssize_t)chunk) {
			free(nb);
			return lc_err(err, -EIO, LC_ERRC_INTERNAL, "reading the audit log failed");
		}
		if (len)
			memcpy(nb + chunk, buf, len);
		free(buf);
		buf = nb;
		len += chunk;
		cap = len;
		lines = 0;
		for (size_t i = 0; i < len; i++)
			lines += buf[i] == '\n';
	}
	(void)cap;
	if (!buf)
		return 0;
	buf[len] = '\0';
	/* Skip a partial first line unless it starts the file. */
	p = buf;
	if (pos > 0) {
		p = strchr(buf, '\n');
		p = p ? p + 1 : buf + len;
	}
	/* Count complete lines and drop the oldest beyond n. */
	lines = 0;
	for (char *q = p; (q = strchr(q, '\n')); q++)
		lines++;
	while (lines > n) {
		p = strchr(p, '\n') + 1;
		lines--;
	}
	for (; *p && (end = strchr(p, '\n')); p = end + 1) {
		json_object *o;

		*end = '\0';
		o = json_tokener_parse(p);
		if (o && json_object_is_type(o, json_type_object))
			json_object_array_add(arr, o);
		else
			json_object_put(o);
	}
	return 0;
}

int op_audit_tail(struct agent *a, struct client *c, json_object *args,
		  json_object **result, struct lc_error *err)
{
	_cleanup_close_ int fd = -1;
	uint64_t n = AUDIT_TAIL_DEFAULT;
	json_object *arr;
	int r;

	r = arg_u64(args, "lines", false, &n, err);
	if (r < 0)
		return r;
	if (n < 1 || n > AUDIT_TAIL_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"lines\" is %" PRIu64 ": expected 1 to %d", n, AUDIT_TAIL_MAX);
	fd = open(a->cfg.audit_log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot read the audit log %s: %s",
			      a->cfg.audit_log, strerror(errno));
	arr = json_object_new_array();
	r = tail_lines(fd, (size_t)n, arr, err);
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
	return 0;
}
