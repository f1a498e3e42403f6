// SPDX-License-Identifier: GPL-2.0
/*
 * Key configurations and workspace bindings, persisted atomically.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "fileio.h"
#include "registry.h"
#include "registry-etcd.h"

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int lc_name_check(const char *what, const char *s, struct lc_error *err)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n >= LC_HDR_NAME_SIZE)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s \"%.80s\" must be 1 to %d characters long", what, s ? s : "",
			      LC_HDR_NAME_SIZE - 1);
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]) || (i == 0 && (s[i] == '.' || s[i] == '_' || s[i] == '-')))
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "%s \"%s\" is not a valid name: expected characters from A-Z a-z 0-9 . _ -, the first a letter or digit",
				      what, s);
	/* "." and ".." start with '.'; /dev/mapper/control is device-mapper's
	 * own node, a name the kernel refuses (DM_CONTROL_NODE). */
	if (!strcmp(s, "control"))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s \"control\" is reserved: /dev/mapper/control is device-mapper's own device",
			      what);
	return 0;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void registry_clear(struct lc_registry *reg)
{
	free(reg->kc);
	free(reg->bind);
	reg->kc = NULL;
	reg->bind = NULL;
	reg->nkc = reg->nbind = 0;
}

void lc_registry_close(struct lc_registry *reg)
{
	if (reg->etcd)
		lc_regetcd_close(reg);
	registry_clear(reg);
	free(reg->path);
	reg->path = NULL;
}

const struct lc_keyconfig *lc_registry_keyconfig(const struct lc_registry *reg, const char *name)
{
	for (size_t i = 0; name && i < reg->nkc; i++)
		if (!strcmp(reg->kc[i].name, name))
			return &reg->kc[i];
	return NULL;
}

const struct lc_binding *lc_registry_binding(const struct lc_registry *reg, const char *workspace)
{
	for (size_t i = 0; workspace && i < reg->nbind; i++)
		if (!strcmp(reg->bind[i].workspace, workspace))
			return &reg->bind[i];
	return NULL;
}

size_t lc_registry_bound_count(const struct lc_registry *reg, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < reg->nbind; i++)
		n += !strcmp(reg->bind[i].keyconfig, name);
	return n;
}

int lc_registry_resolve(const struct lc_registry *reg, const char *workspace,
			const struct lc_keyconfig **kc, struct lc_error *err)
{
	const struct lc_binding *b = lc_registry_binding(reg, workspace);

	*kc = NULL;
	if (!b)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "workspace \"%s\" is not bound to a key configuration; an admin must bind it first (workspace.bind)",
			      workspace ? workspace : "");
	*kc = lc_registry_keyconfig(reg, b->keyconfig);
	if (!*kc)	/* load() and the delete rule make this impossible */
		return lc_err(err, -ENOENT, LC_ERRC_INTERNAL,
			      "workspace \"%s\" is bound to key configuration \"%s\", which does not exist",
			      workspace, b->keyconfig);
	return 0;
}

/* ---- workspace access ---- */

int lc_ws_group_check(const char *g, struct lc_error *err)
{
	size_t n = g ? strlen(g) : 0;

	if (n < 1 || n >= LC_WS_GROUP_SIZE || g[0] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!name_char(g[i]))
			goto bad;
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "operator group \"%.40s\" is not a valid group name: 1 to %d characters from A-Z a-z 0-9 . _ -",
		      g ? g : "", LC_WS_GROUP_SIZE - 1);
}

int lc_ws_device_check(const char *p, struct lc_error *err)
{
	size_t n = p ? strlen(p) : 0;

	if (n < 2 || n >= LC_WS_DEVICE_SIZE || p[0] != '/' || !printable(p) ||
	    strstr(p, "/../") || (n >= 3 && !strcmp(p + n - 3, "/..")))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device pattern \"%.60s\" is not usable: expected an absolute glob pattern of at most %d printable characters without \"..\", e.g. /dev/disk/by-id/nvme-*",
			      p ? p : "", LC_WS_DEVICE_SIZE - 1);
	return 0;
}

static json_object *access_groups_json(const struct lc_ws_access *a)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < a->ngroups; i++)
		json_object_array_add(arr, json_object_new_string(a->groups[i]));
	return arr;
}

static json_object *access_devices_json(const struct lc_ws_access *a)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < a->ndevices; i++)
		json_object_array_add(arr, json_object_new_string(a->devices[i]));
	return arr;
}

static int access_check(const struct lc_ws_access *a, struct lc_error *err)
{
	int r;

	if (a->ngroups > LC_WS_MAX_GROUPS || a->ndevices > LC_WS_MAX_DEVICES)
		return lc_err(err, -E2BIG, LC_ERRC_INVALID,
			      "a workspace has at most %d operator groups and %d device patterns",
			      LC_WS_MAX_GROUPS, LC_WS_MAX_DEVICES);
	for (size_t i = 0; i < a->ngroups; i++)
		if ((r = lc_ws_group_check(a->groups[i], err)) < 0)
			return r;
	for (size_t i = 0; i < a->ndevices; i++)
		if ((r = lc_ws_device_check(a->devices[i], err)) < 0)
			return r;
	return 0;
}

/* Optional string array @key of @o into @out (@max entries of @size). */
static bool get_list(json_object *o, const char *key, char *out, size_t size, size_t max,
		     size_t *n)
{
	json_object *a;

	*n = 0;
	if (!json_object_object_get_ex(o, key, &a))
		return true;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > max)
		return false;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *v = json_object_array_get_idx(a, i);
		size_t len;

		if (!json_object_is_type(v, json_type_string))
			return false;
		len = (size_t)json_object_get_string_len(v);
		if (len >= size || strlen(json_object_get_string(v)) != len)
			return false;
		memcpy(out + i * size, json_object_get_string(v), len + 1);
		(*n)++;
	}
	return true;
}

static int canary_check(const char *b64, const char *hex, struct lc_error *err)
{
	size_t n = strlen(b64);

	if (!n || n >= LC_CANARY_B64_SIZE || n % 4 || strspn(b64,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n ||
	    strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "a canary is base64 of at most %d bytes and the 64 hex digits of its SHA-256",
			      LC_CANARY_BLOB_MAX);
	return 0;
}

/* ---- persistence ---- */

static int save(struct lc_registry *reg, struct lc_error *err)
{
	json_object *o = json_object_new_object(), *a;
	const char *s;
	size_t len;
	int r;

	if (!o)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_object_object_add(o, "version", json_object_new_int(LC_REGISTRY_VERSION));
	a = json_object_new_array();
	for (size_t i = 0; i < reg->nkc; i++)
		json_object_array_add(a, lc_keyconfig_to_json(&reg->kc[i]));
	json_object_object_add(o, "keyconfigs", a);
	a = json_object_new_array();
	for (size_t i = 0; i < reg->nbind; i++)
		json_object_array_add(a, lc_binding_to_json(&reg->bind[i]));
	json_object_object_add(o, "workspaces", a);
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	r = s ? lc_file_write_atomic(reg->path, s, len, 0600, err)
	      : lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_object_put(o);
	return r;
}

static int bad_file(const struct lc_registry *reg, struct lc_error *err, const char *what)
{
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
		      "%s is not a valid lakecrypt registry: %s; restore it from a backup or remove it (every key configuration and binding is then lost)",
		      reg->path, what);
}

bool lc_registry_json_string(json_object *o, const char *key, char *out, size_t size,
			     bool required)
{
	json_object *v;
	size_t n;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v))
		return !required;
	if (!json_object_is_type(v, json_type_string))
		return false;
	n = (size_t)json_object_get_string_len(v);
	if (n >= size)
		return false;
	memcpy(out, json_object_get_string(v), n + 1);
	return strlen(out) == n && printable(out);
}

static bool get_string(json_object *o, const char *key, char *out, size_t size)
{
	return lc_registry_json_string(o, key, out, size, true);
}

static bool get_int64(json_object *o, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

/* ---- entries as JSON (registry.json's entries; etcd values) ---- */

json_object *lc_keyconfig_to_json(const struct lc_keyconfig *kc)
{
	json_object *k = json_object_new_object();

	json_object_object_add(k, "name", json_object_new_string(kc->name));
	json_object_object_add(k, "provider", json_object_new_string(kc->provider));
	json_object_object_add(k, "key_ref", json_object_new_string(kc->key_ref));
	json_object_object_add(k, "cmk_id", json_object_new_string(kc->cmk_id));
	json_object_object_add(k, "created", json_object_new_int64(kc->created));
	if (kc->canary[0]) {
		json_object_object_add(k, "canary", json_object_new_string(kc->canary));
		json_object_object_add(k, "canary_sha256", json_object_new_string(kc->canary_sha256));
	}
	if (kc->kms_identity[0])
		json_object_object_add(k, "kms_identity", json_object_new_string(kc->kms_identity));
	return k;
}

json_object *lc_binding_to_json(const struct lc_binding *b)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "workspace", json_object_new_string(b->workspace));
	json_object_object_add(o, "keyconfig", json_object_new_string(b->keyconfig));
	json_object_object_add(o, "created", json_object_new_int64(b->created));
	json_object_object_add(o, "operators", access_groups_json(&b->access));
	json_object_object_add(o, "devices", access_devices_json(&b->access));
	if (lc_hook_is_set(&b->hook))
		json_object_object_add(o, "hook", lc_hook_to_json(&b->hook));
	return o;
}

int lc_keyconfig_from_json(json_object *k, struct lc_keyconfig *kc, const char **why)
{
	memset(kc, 0, sizeof(*kc));
	if (!json_object_is_type(k, json_type_object) ||
	    !get_string(k, "name", kc->name, sizeof(kc->name)) ||
	    !get_string(k, "provider", kc->provider, sizeof(kc->provider)) ||
	    !get_string(k, "key_ref", kc->key_ref, sizeof(kc->key_ref)) ||
	    !get_string(k, "cmk_id", kc->cmk_id, sizeof(kc->cmk_id)) ||
	    !get_int64(k, "created", &kc->created) ||
	    lc_name_check("key configuration name", kc->name, NULL) || !kc->provider[0] ||
	    !kc->key_ref[0]) {
		*why = "a key configuration entry is malformed";
		return -EINVAL;
	}
	if (json_object_object_get_ex(k, "canary", NULL) &&
	    (!get_string(k, "canary", kc->canary, sizeof(kc->canary)) ||
	     !get_string(k, "canary_sha256", kc->canary_sha256, sizeof(kc->canary_sha256)) ||
	     canary_check(kc->canary, kc->canary_sha256, NULL) < 0)) {
		*why = "a key configuration's canary is malformed";
		return -EINVAL;
	}
	/* optional: printable ASCII (get_string checks it), fits */
	if (json_object_object_get_ex(k, "kms_identity", NULL)) {
		if (!get_string(k, "kms_identity", kc->kms_identity, sizeof(kc->kms_identity))) {
			*why = "a key configuration's kms_identity is malformed";
			return -EINVAL;
		}
	}
	return 0;
}

int lc_binding_from_json(json_object *k, struct lc_binding *b, const char **why)
{
	json_object *v;

	memset(b, 0, sizeof(*b));
	if (!json_object_is_type(k, json_type_object) ||
	    !get_string(k, "workspace", b->workspace, sizeof(b->workspace)) ||
	    !get_string(k, "keyconfig", b->keyconfig, sizeof(b->keyconfig)) ||
	    !get_int64(k, "created", &b->created) ||
	    !get_list(k, "operators", &b->access.groups[0][0], LC_WS_GROUP_SIZE,
		      LC_WS_MAX_GROUPS, &b->access.ngroups) ||
	    !get_list(k, "devices", &b->access.devices[0][0], LC_WS_DEVICE_SIZE,
		      LC_WS_MAX_DEVICES, &b->access.ndevices) ||
	    access_check(&b->access, NULL) ||
	    lc_name_check("workspace", b->workspace, NULL)) {
		*why = "a workspace binding is malformed";
		return -EINVAL;
	}
	if (json_object_object_get_ex(k, "hook", &v) && lc_hook_from_json(v, &b->hook, NULL) < 0) {
		*why = "a workspace's hook is malformed";
		return -EINVAL;
	}
	return 0;
}

static int load(struct lc_registry *reg, struct lc_error *err)
{
	_cleanup_free_ char *text = NULL;
	json_object *o, *a, *v;
	size_t len;
	int r;

	registry_clear(reg);
	r = lc_file_read(reg->path, &text, &len, err);
	if (r == -ENOENT) {
		lc_err_clear(err);
		return 0;
	}
	if (r < 0)
		return r;
	o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return bad_file(reg, err, "not a JSON object");
	}
	r = 0;
	if (!json_object_object_get_ex(o, "version", &v) || json_object_get_int(v) != LC_REGISTRY_VERSION) {
		r = bad_file(reg, err, "unknown version");
		goto out;
	}
	if (!json_object_object_get_ex(o, "keyconfigs", &a) || !json_object_is_type(a, json_type_array)) {
		r = bad_file(reg, err, "\"keyconfigs\" is not an array");
		goto out;
	}
	reg->nkc = json_object_array_length(a);
	reg->kc = calloc(reg->nkc ? reg->nkc : 1, sizeof(*reg->kc));
	if (!reg->kc) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < reg->nkc; i++) {
		json_object *k = json_object_array_get_idx(a, i);
		struct lc_keyconfig *kc = &reg->kc[i];

		const char *why;

		if (lc_keyconfig_from_json(k, kc, &why) < 0) {
			r = bad_file(reg, err, why);
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(reg->kc[j].name, kc->name)) {
				r = bad_file(reg, err, "a key configuration name appears twice");
				goto out;
			}
	}
	if (!json_object_object_get_ex(o, "workspaces", &a) || !json_object_is_type(a, json_type_array)) {
		r = bad_file(reg, err, "\"workspaces\" is not an array");
		goto out;
	}
	reg->nbind = json_object_array_length(a);
	reg->bind = calloc(reg->nbind ? reg->nbind : 1, sizeof(*reg->bind));
	if (!reg->bind) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < reg->nbind; i++) {
		json_object *k = json_object_array_get_idx(a, i);
		struct lc_binding *b = &reg->bind[i];

		const char *why;

		if (lc_binding_from_json(k, b, &why) < 0) {
			r = bad_file(reg, err, why);
			goto out;
		}
		if (!lc_registry_keyconfig(reg, b->keyconfig)) {
			r = bad_file(reg, err, "a workspace is bound to a key configuration that does not exist");
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(reg->bind[j].workspace, b->workspace)) {
				r = bad_file(reg, err, "a workspace is bound twice");
				goto out;
			}
	}
out:
	json_object_put(o);
	if (r < 0)
		registry_clear(reg);
	return r;
}

/* ---- memory only (the backends) ---- */

int lc_registry_mem_put_keyconfig(struct lc_registry *reg, const struct lc_keyconfig *kc)
{
	struct lc_keyconfig *t = (struct lc_keyconfig *)lc_registry_keyconfig(reg, kc->name);

	if (!t) {
		t = realloc(reg->kc, (reg->nkc + 1) * sizeof(*t));
		if (!t)
			return -ENOMEM;
		reg->kc = t;
		t = &reg->kc[reg->nkc++];
	}
	*t = *kc;
	return 0;
}

int lc_registry_mem_put_binding(struct lc_registry *reg, const struct lc_binding *b)
{
	struct lc_binding *t = (struct lc_binding *)lc_registry_binding(reg, b->workspace);

	if (!t) {
		t = realloc(reg->bind, (reg->nbind + 1) * sizeof(*t));
		if (!t)
			return -ENOMEM;
		reg->bind = t;
		t = &reg->bind[reg->nbind++];
	}
	*t = *b;
	return 0;
}

void lc_registry_mem_del_keyconfig(struct lc_registry *reg, const char *name)
{
	const struct lc_keyconfig *kc = lc_registry_keyconfig(reg, name);
	size_t i;

	if (!kc)
		return;
	i = (size_t)(kc - reg->kc);
	memmove(&reg->kc[i], &reg->kc[i + 1], (reg->nkc - i - 1) * sizeof(*reg->kc));
	reg->nkc--;
}

void lc_registry_mem_del_binding(struct lc_registry *reg, const char *workspace)
{
	const struct lc_binding *b = lc_registry_binding(reg, workspace);
	size_t i;

	if (!b)
		return;
	i = (size_t)(b - reg->bind);
	memmove(&reg->bind[i], &reg->bind[i + 1], (reg->nbind - i - 1) * sizeof(*reg->bind));
	reg->nbind--;
}

int lc_registry_open(struct lc_registry *reg, const char *state_dir, struct lc_error *err)
{
	char path[PATH_MAX];

	memset(reg, 0, sizeof(*reg));
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, LC_REGISTRY_FILE) >= (int)sizeof(path))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "state directory %s: path too long",
			      state_dir);
	reg->path = strdup(path);
	if (!reg->path)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_file_clean_temps(path);
	return load(reg, err);
}

/* Write the changed registry; if that fails, go back to what is on disk. */
static int commit(struct lc_registry *reg, struct lc_error *err)
{
	int r = save(reg, err);

	if (r < 0) {
		struct lc_error ignore;

		if (load(reg, &ignore) < 0)
			lc_error_log("registry %s could not be reloaded after a failed write: %s",
				     reg->path, ignore.msg);
	}
	return r;
}

int lc_registry_keyconfig_add(struct lc_registry *reg, const struct lc_keyconfig *kc,
			      struct lc_error *err)
{
	struct lc_keyconfig *t;
	int r;

	r = lc_name_check("key configuration name", kc->name, err);
	if (r < 0)
		return r;
	if (!kc->provider[0] || !kc->key_ref[0] || !printable(kc->key_ref) ||
	    strnlen(kc->key_ref, sizeof(kc->key_ref)) >= sizeof(kc->key_ref))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "a key configuration needs a provider and a printable key reference of at most %d characters",
			      LC_HDR_PROVIDER_REF_SIZE - 1);
	if (lc_registry_keyconfig(reg, kc->name))
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "key configuration \"%s\" already exists; delete it first or choose another name",
			      kc->name);
	if (reg->etcd) {
		struct lc_keyconfig n = *kc;

		n.created = (int64_t)time(NULL);
		n.mod_revision = 0;	/* create: the key must not exist */
		return lc_regetcd_put_keyconfig(reg, &n, err);
	}
	t = realloc(reg->kc, (reg->nkc + 1) * sizeof(*t));
	if (!t)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	reg->kc = t;
	t[reg->nkc] = *kc;
	t[reg->nkc].created = (int64_t)time(NULL);
	reg->nkc++;
	return commit(reg, err);
}

int lc_registry_keyconfig_delete(struct lc_registry *reg, const char *name, struct lc_error *err)
{
	const struct lc_keyconfig *kc = lc_registry_keyconfig(reg, name);
	size_t n, i;

	if (!kc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no key configuration \"%s\" (keyconfig.list shows them)",
			      name ? name : "");
	n = lc_registry_bound_count(reg, name);
	if (n) {
		char list[256] = "";
		size_t off = 0;

		for (i = 0; i < reg->nbind && off < sizeof(list) - 1; i++)
			if (!strcmp(reg->bind[i].keyconfig, name))
				off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
							off ? ", " : "", reg->bind[i].workspace);
		return lc_err(err, -EBUSY, LC_ERRC_INVALID,
			      "key configuration \"%s\" is bound to %zu workspace(s) (%s): unbind them first",
			      name, n, list);
	}
	if (reg->etcd) {
		struct lc_keyconfig old = *kc;

		return lc_regetcd_delete_keyconfig(reg, &old, err);
	}
	i = (size_t)(kc - reg->kc);
	memmove(&reg->kc[i], &reg->kc[i + 1], (reg->nkc - i - 1) * sizeof(*reg->kc));
	reg->nkc--;
	return commit(reg, err);
}

int lc_registry_bind(struct lc_registry *reg, const char *workspace, const char *keyconfig,
		     const struct lc_ws_access *acc, struct lc_error *err)
{
	struct lc_binding *b;
	int r;

	r = lc_name_check("workspace", workspace, err);
	if (!r && acc)
		r = access_check(acc, err);
	if (r < 0)
		return r;
	if (!lc_registry_keyconfig(reg, keyconfig))
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no key configuration \"%s\": create it first (keyconfig.create)",
			      keyconfig ? keyconfig : "");
	b = (struct lc_binding *)lc_registry_binding(reg, workspace);
	if (reg->etcd) {
		struct lc_binding n;
		struct lc_keyconfig k = *lc_registry_keyconfig(reg, keyconfig);

		if (b)
			n = *b;		/* mod_revision: the one to compare */
		else {
			memset(&n, 0, sizeof(n));
			snprintf(n.workspace, sizeof(n.workspace), "%s", workspace);
		}
		snprintf(n.keyconfig, sizeof(n.keyconfig), "%s", keyconfig);
		if (acc)
			n.access = *acc;
		n.created = (int64_t)time(NULL);
		return lc_regetcd_put_binding(reg, &n, &k, err);
	}
	if (!b) {
		b = realloc(reg->bind, (reg->nbind + 1) * sizeof(*b));
		if (!b)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		reg->bind = b;
		b = &reg->bind[reg->nbind++];
		memset(b, 0, sizeof(*b));
		snprintf(b->workspace, sizeof(b->workspace), "%s", workspace);
	}
	snprintf(b->keyconfig, sizeof(b->keyconfig), "%s", keyconfig);
	if (acc)
		b->access = *acc;
	b->created = (int64_t)time(NULL);
	return commit(reg, err);
}

int lc_registry_unbind(struct lc_registry *reg, const char *workspace, struct lc_error *err)
{
	const struct lc_binding *b = lc_registry_binding(reg, workspace);
	size_t i;

	if (!b)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID, "workspace \"%s\" is not bound",
			      workspace ? workspace : "");
	if (reg->etcd) {
		struct lc_binding old = *b;

		return lc_regetcd_delete_binding(reg, &old, err);
	}
	i = (size_t)(b - reg->bind);
	memmove(&reg->bind[i], &reg->bind[i + 1], (reg->nbind - i - 1) * sizeof(*reg->bind));
	reg->nbind--;
	return commit(reg, err);
}

int lc_registry_set_hook(struct lc_registry *reg, const char *workspace,
			 const struct lc_ws_hook *hook, struct lc_error *err)
{
	struct lc_binding *b = (struct lc_binding *)lc_registry_binding(reg, workspace);
	int r;

	if (!b)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "workspace \"%s\" is not bound: bind it first (workspace.bind)",
			      workspace ? workspace : "");
	if (hook && (r = lc_hook_check(hook, err)) < 0)
		return r;
	if (reg->etcd) {
		struct lc_binding n = *b;

		if (hook)
			n.hook = *hook;
		else
			memset(&n.hook, 0, sizeof(n.hook));
		return lc_regetcd_put_binding(reg, &n, NULL, err);
	}
	if (hook)
		b->hook = *hook;
	else
		memset(&b->hook, 0, sizeof(b->hook));
	return commit(reg, err);
}

int lc_registry_set_canary(struct lc_registry *reg, const char *name, const char *b64,
			   const char *sha256_hex, struct lc_error *err)
{
	struct lc_keyconfig *kc = (struct lc_keyconfig *)lc_registry_keyconfig(reg, name);
	int r;

	if (!kc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID, "there is no key configuration \"%s\"",
			      name ? name : "");
	if ((r = canary_check(b64, sha256_hex, err)) < 0)
		return r;
	if (reg->etcd) {
		struct lc_keyconfig n = *kc;

		snprintf(n.canary, sizeof(n.canary), "%s", b64);
		snprintf(n.canary_sha256, sizeof(n.canary_sha256), "%s", sha256_hex);
		return lc_regetcd_put_keyconfig(reg, &n, err);
	}
	snprintf(kc->canary, sizeof(kc->canary), "%s", b64);
	snprintf(kc->canary_sha256, sizeof(kc->canary_sha256), "%s", sha256_hex);
	return commit(reg, err);
}
