// SPDX-License-Identifier: GPL-2.0
/*
 * lakecryptctl output: reply checking, exit codes, and rendering of the
 * agent's results, as aligned tables (lists) or "Label: value" blocks
 * (single objects).  The human text is built from the same JSON that
 * --json prints.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* ---- replies and exit codes ---- */

static int bad_reply(struct lc_ctl_error *e, const char *what)
{
	e->code = -EBADMSG;
	snprintf(e->cls, sizeof(e->cls), "internal");
	snprintf(e->msg, sizeof(e->msg), "the agent sent a malformed reply: %s", what);
	return -EBADMSG;
}

int lc_ctl_reply_check(struct json_object *reply, int64_t id, struct json_object **result,
		       struct lc_ctl_error *e)
{
	struct json_object *v, *err, *code, *cls, *msg;

	memset(e, 0, sizeof(*e));
	*result = NULL;
	if (!json_object_is_type(reply, json_type_object))
		return bad_reply(e, "expected a JSON object");
	if (!json_object_object_get_ex(reply, "ok", &v) || !json_object_is_type(v, json_type_boolean))
		return bad_reply(e, "\"ok\" must be true or false");
	if (json_object_get_boolean(v)) {
		if (!json_object_object_get_ex(reply, "id", &v) || !json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) != id)
			return bad_reply(e, "it does not answer the request sent (wrong \"id\")");
		if (!json_object_object_get_ex(reply, "result", &v) ||
		    !json_object_is_type(v, json_type_object))
			return bad_reply(e, "\"result\" must be an object");
		*result = v;
		return 0;
	}
	/* An error may carry "id": null (request too broken to have one). */
	if (!json_object_object_get_ex(reply, "id", &v) ||
	    (v && (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != id)))
		return bad_reply(e, "it does not answer the request sent (wrong \"id\")");
	if (!json_object_object_get_ex(reply, "error", &err) || !json_object_is_type(err, json_type_object) ||
	    !json_object_object_get_ex(err, "code", &code) || !json_object_is_type(code, json_type_int) ||
	    !json_object_object_get_ex(err, "class", &cls) || !json_object_is_type(cls, json_type_string) ||
	    !json_object_object_get_ex(err, "message", &msg) || !json_object_is_type(msg, json_type_string))
		return bad_reply(e, "\"error\" must be {\"code\": -errno, \"class\": ..., \"message\": ...}");
	e->code = json_object_get_int64(code) < 0 && json_object_get_int64(code) >= -4095 ?
		  (int)json_object_get_int64(code) : -EIO;
	lc_ctl_sanitize(json_object_get_string(cls), e->cls, sizeof(e->cls));
	lc_ctl_sanitize(json_object_get_string(msg), e->msg, sizeof(e->msg));
	return 1;
}

int lc_ctl_exit_for_class(const char *cls)
{
	if (!cls)
		return LC_CTL_EXIT_FAILED;
	if (!strcmp(cls, "refused"))
		return LC_CTL_EXIT_REFUSED;
	if (!strcmp(cls, "denied"))
		return LC_CTL_EXIT_DENIED;
	if (!strcmp(cls, "transient"))
		return LC_CTL_EXIT_UNAVAILABLE;
	/* invalid, misconfigured, internal and anything unknown */
	return LC_CTL_EXIT_FAILED;
}

int lc_ctl_exit_for_connect(int code)
{
	if (code == -EACCES || code == -EPERM)
		return LC_CTL_EXIT_REFUSED;
	return LC_CTL_EXIT_UNREACHABLE;
}

/* ---- values ---- */

void lc_ctl_sanitize(const char *s, char *out, size_t len)
{
	size_t i = 0;

	if (!len)
		return;
	for (; s && *s && i + 1 < len; s++)
		out[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	out[i] = '\0';
}

static bool is_time_key(const char *key)
{
	return !strcmp(key, "created") || !strcmp(key, "deletion_date") || !strcmp(key, "opened") ||
	       !strcmp(key, "time") ||
	       !strcmp(key, "last_at") || !strcmp(key, "fail_closed_at");
}

static bool is_size_key(const char *key)
{
	return !strcmp(key, "segment_size");
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "%" PRId64, t);
}

static void fmt_size(int64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	int u = -1;
	int64_t x = v;

	while (u < 3 && x >= 1024 && x % 1024 == 0) {
		x /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRId64 " bytes", v);
	else
		snprintf(buf, len, "%" PRId64 " %s", x, units[u]);
}

/* Text of a value for people.  @key decides special formats. */
static void value_str(const char *key, struct json_object *v, char *buf, size_t len)
{
	if (!v) {
		snprintf(buf, len, "-");
		return;
	}
	switch (json_object_get_type(v)) {
	case json_type_null:
		snprintf(buf, len, "-");
		break;
	case json_type_boolean:
		snprintf(buf, len, "%s", json_object_get_boolean(v) ? "yes" : "no");
		break;
	case json_type_int:
		if (key && !strcmp(key, "last_at") && json_object_get_int64(v) <= 0)
			snprintf(buf, len, "never");
		else if (key && is_time_key(key))
			fmt_time(json_object_get_int64(v), buf, len);
		else if (key && is_size_key(key))
			fmt_size(json_object_get_int64(v), buf, len);
		else
			snprintf(buf, len, "%" PRId64, json_object_get_int64(v));
		break;
	case json_type_string:
		lc_ctl_sanitize(*json_object_get_string(v) ? json_object_get_string(v) : "-", buf, len);
		break;
	case json_type_array: {
		/* A list of names or patterns: "a, b"; "-" when empty. */
		size_t off = 0, n = json_object_array_length(v);
		char one[512];

		snprintf(buf, len, "-");
		for (size_t i = 0; i < n && off < len; i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (!json_object_is_type(e, json_type_string))
				goto raw;
			lc_ctl_sanitize(json_object_get_string(e), one, sizeof(one));
			off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", one);
		}
		break;
	}
	raw:
	default:
		lc_ctl_sanitize(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE),
				buf, len);
		break;
	}
}

static const struct {
	const char *key, *label;
} labels[] = {
	{ "key_id", "Key ID" }, { "uuid", "UUID" }, { "dm_device", "Mapped device" },
	{ "keyconfig", "Key configuration" }, { "key_ref", "Key reference" },
	{ "cmk_id", "CMK id" }, { "cmk_version", "CMK version" }, { "io_errors", "I/O errors" },
	{ "kms_calls", "KMS calls" }, { "cmk", "CMK" }, { "kek_held", "KEK held" },
	{ "kms_identity", "KMS identity" },
};

static void label_of(const char *key, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		if (!strcmp(labels[i].key, key)) {
			snprintf(buf, len, "%s", labels[i].label);
			return;
		}
	lc_ctl_sanitize(key, buf, len);
	for (char *p = buf; *p; p++)
		if (*p == '_')
			*p = ' ';
	if (buf[0] >= 'a' && buf[0] <= 'z')
		buf[0] = (char)(buf[0] - 'a' + 'A');
}

/* ---- "Label: value" blocks ---- */

static const char *const key_order[] = { "key_id", "description", "state", "primary_version",
					 "versions", "created", "deletion_date", NULL };
static const char *const volume_order[] = {
	"name", "kind", "state", "uuid", "device", "dm_device", "header", "workspace", "project",
	"keyconfig", "provider", "cmk_id", "cmk_version", "cipher", "key_size", "sector_size",
	"segments", "segment_size", "keys_loaded", "reads", "writes", "io_errors", "discard", NULL
};
static const char *const keyconfig_order[] = { "name", "provider", "key_ref", NULL };
static const char *const ping_order[] = { "version", "role", "uid", NULL };
static const char *const binding_order[] = { "workspace", "keyconfig", NULL };

static bool in_list(const char *const *order, const char *key)
{
	for (; order && *order; order++)
		if (!strcmp(*order, key))
			return true;
	return false;
}

static void print_pair(FILE *f, int width, const char *key, struct json_object *v)
{
	char label[64], val[1024];

	label_of(key, label, sizeof(label));
	value_str(key, v, val, sizeof(val));
	fprintf(f, "%s:%*s%s\n", label, width - (int)strlen(label) + 1, "", val);
}

/* Known members in @order first (if present), then every other member. */
static void render_object(FILE *f, struct json_object *o, const char *const *order)
{
	struct json_object *v;
	char label[64];
	int width = 0;

	json_object_object_foreach(o, key, val) {
		(void)val;
		label_of(key, label, sizeof(label));
		if ((int)strlen(label) > width)
			width = (int)strlen(label);
	}
	for (const char *const *k = order; k && *k; k++)
		if (json_object_object_get_ex(o, *k, &v))
			print_pair(f, width, *k, v);
	json_object_object_foreach(o, key2, val2)
		if (!in_list(order, key2))
			print_pair(f, width, key2, val2);
}

/* ---- tables ---- */

struct column {
	const char *title;
	const char *key;	/* NULL: the rest of the members as key=value */
};

#define CELL_MAX 256

static void cell(struct json_object *row, const struct column *col, char *buf, size_t len,
		 const struct column *cols, size_t ncols)
{
	struct json_object *v = NULL;

	if (col->key) {
		if (json_object_is_type(row, json_type_object))
			json_object_object_get_ex(row, col->key, &v);
		else if (col == cols && json_object_is_type(row, json_type_string))
			v = row;	/* a list of names */
		value_str(col->key, v, buf, len);
		return;
	}
	/* details: every member not shown in another column */
	buf[0] = '\0';
	if (!json_object_is_type(row, json_type_object))
		return;	/* a plain string row is shown whole in the first column */
	{
		size_t off = 0;

		json_object_object_foreach(row, key, val) {
			char text[CELL_MAX];
			bool shown = false;

			for (size_t i = 0; i < ncols; i++)
				if (cols[i].key && !strcmp(cols[i].key, key))
					shown = true;
			if (shown || off + 1 >= len)
				continue;
			value_str(key, val, text, sizeof(text));
			off += (size_t)snprintf(buf + off, len - off, "%s%s=%s", off ? " " : "", key, text);
		}
		if (off >= len)
			buf[len - 1] = '\0';
	}
}

static void render_table(FILE *f, struct json_object *rows, const struct column *cols, size_t ncols)
{
	size_t n = json_object_array_length(rows);
	int width[16] = { 0 };
	char buf[CELL_MAX];

	for (size_t c = 0; c < ncols; c++)
		width[c] = (int)strlen(cols[c].title);
	for (size_t r = 0; r < n; r++)
		for (size_t c = 0; c + 1 < ncols; c++) {
			cell(json_object_array_get_idx(rows, r), &cols[c], buf, sizeof(buf), cols, ncols);
			if ((int)strlen(buf) > width[c])
				width[c] = (int)strlen(buf);
		}
	for (size_t c = 0; c < ncols; c++)
		fprintf(f, c + 1 < ncols ? "%-*s  " : "%-*s\n", c + 1 < ncols ? width[c] : 0,
			cols[c].title);
	for (size_t r = 0; r < n; r++)
		for (size_t c = 0; c < ncols; c++) {
			cell(json_object_array_get_idx(rows, r), &cols[c], buf, sizeof(buf), cols, ncols);
			if (c + 1 < ncols)
				fprintf(f, "%-*s  ", width[c], buf);
			else
				fprintf(f, "%s\n", buf);
		}
}

static const struct column key_cols[] = {
	{ "KEY ID", "key_id" }, { "STATE", "state" }, { "VERSION", "primary_version" },
	{ "CREATED", "created" }, { "DESCRIPTION", "description" },
};
static const struct column keyconfig_cols[] = {
	{ "NAME", "name" }, { "PROVIDER", "provider" }, { "KEY", "key_ref" },
};
static const struct column binding_cols[] = {
	{ "WORKSPACE", "workspace" }, { "KEYCONFIG", "keyconfig" }, { "OPERATORS", "operators" },
	{ "DEVICES", "devices" },
};
static const struct column volume_cols[] = {
	{ "NAME", "name" }, { "KIND", "kind" }, { "STATE", "state" }, { "SEGMENTS", "segments" },
	{ "KEYS", "keys_loaded" }, { "WORKSPACE", "workspace" }, { "PROJECT", "project" },
	{ "CMK", "cmk_id" }, { "VER", "cmk_version" }, { "DEVICE", "device" },
};
static const struct column audit_cols[] = {
	{ "TIME", "time" }, { "UID", "peer_uid" }, { "OP", "op" }, { "OUTCOME", "outcome" },
	{ "DETAILS", NULL },
};

static const struct column check_cols[] = {
	{ "CMK", "cmk" }, { "KEYCONFIG", "keyconfig" }, { "STATE", "state" }, { "CANARY", "canary" },
	{ "OUTCOME", "outcome" }, { "VERDICT", "verdict" }, { "DENIALS", "denials" },
	{ "COUNTED", "counted" }, { "KMS CALLS", "kms_calls" },
	{ "DETAIL", "detail" },
};

/* status's "cmks" (admins only): the watcher's view of each CMK in use,
 * one row for the key itself (KEYCONFIG empty: its state) and one per key
 * configuration on it (its canary). */
static const struct column cmk_cols[] = {
	{ "PROVIDER", "provider" }, { "CMK", "cmk" }, { "KEYCONFIG", "keyconfig" }, { "STATE", "verdict" },
	{ "LAST PROBE", "last_at" }, { "OUTCOME", "last" }, { "DENIALS", "denials" },
	{ "FAIL-CLOSED AT", "fail_closed_at" }, { "DETAIL", "last_detail" },
};

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* Render result member @member (an array) as a table, or say @empty. */
static int list(FILE *f, struct json_object *result, const char *member, const struct column *cols,
		size_t ncols, const char *empty)
{
	struct json_object *rows;

	if (!json_object_object_get_ex(result, member, &rows) ||
	    !json_object_is_type(rows, json_type_array)) {
		render_object(f, result, NULL);	/* not what we expect: show it all */
		return 0;
	}
	if (!json_object_array_length(rows)) {
		fprintf(f, "%s\n", empty);
		return 0;
	}
	render_table(f, rows, cols, ncols);
	return 0;
}

/* "a=1, b=2" for the members of @o. */
static void counters(FILE *f, struct json_object *o)
{
	char k[64], val[256];
	bool first = true;

	json_object_object_foreach(o, key, v) {
		lc_ctl_sanitize(key, k, sizeof(k));
		value_str(NULL, v, val, sizeof(val));
		fprintf(f, "%s %s=%s", first ? "" : ",", k, val);
		first = false;
	}
	if (first)
		fprintf(f, " none");
}

/* "KMS calls: unwrap=1" for flat counters, one line per provider for
 * {"<provider>": {counters}}. */
static void kms_calls(FILE *f, struct json_object *result)
{
	struct json_object *kc;
	char val[256];
	bool nested = false;

	if (!json_object_object_get_ex(result, "kms_calls", &kc))
		return;
	fprintf(f, "\n");
	if (!json_object_is_type(kc, json_type_object)) {
		value_str(NULL, kc, val, sizeof(val));
		fprintf(f, "KMS calls: %s\n", val);
		return;
	}
	json_object_object_foreach(kc, key, v) {
		(void)key;
		if (json_object_is_type(v, json_type_object))
			nested = true;
	}
	if (!nested) {
		fprintf(f, "KMS calls:");
		counters(f, kc);
		fprintf(f, "\n");
		return;
	}
	json_object_object_foreach(kc, key2, v2) {
		char k[64];

		lc_ctl_sanitize(key2, k, sizeof(k));
		fprintf(f, "KMS calls (%s):", k);
		if (json_object_is_type(v2, json_type_object)) {
			counters(f, v2);
		} else {
			value_str(NULL, v2, val, sizeof(val));
			fprintf(f, " %s", val);
		}
		fprintf(f, "\n");
	}
}

/* "Provider P UNAVAILABLE: why" for each provider the agent could not set
 * up at start (status "providers"); available ones are not listed. */
static void unavailable_providers(FILE *f, struct json_object *result)
{
	struct json_object *ps, *x;

	if (!json_object_object_get_ex(result, "providers", &ps) ||
	    !json_object_is_type(ps, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(ps); i++) {
		struct json_object *p = json_object_array_get_idx(ps, i);
		char kind[64], why[1024];

		if (!json_object_is_type(p, json_type_object) ||
		    !json_object_object_get_ex(p, "available", &x) || json_object_get_boolean(x))
			continue;
		lc_ctl_sanitize(json_object_object_get_ex(p, "provider", &x) ?
				json_object_get_string(x) : "?", kind, sizeof(kind));
		lc_ctl_sanitize(json_object_object_get_ex(p, "error", &x) ?
				json_object_get_string(x) : "", why, sizeof(why));
		fprintf(f, "Provider %s UNAVAILABLE: %s\n", kind, why);
	}
}

/* The registry's backend; with etcd: reachable or not, the watch's
 * revision, the last full read and the revocation records acted on. */
static void registry_line(FILE *f, struct json_object *result)
{
	struct json_object *r, *x;
	char backend[16], err[512], when[64] = "never";
	int64_t last, since;

	if (!json_object_object_get_ex(result, "registry", &r) ||
	    !json_object_is_type(r, json_type_object))
		return;
	lc_ctl_sanitize(json_object_object_get_ex(r, "backend", &x) ? json_object_get_string(x) : "?",
			backend, sizeof(backend));
	if (strcmp(backend, "etcd")) {
		fprintf(f, "Registry: %s\n", backend);
		return;
	}
	last = json_object_object_get_ex(r, "last_full_read", &x) ? json_object_get_int64(x) : 0;
	since = json_object_object_get_ex(r, "unreachable_since", &x) ? json_object_get_int64(x) : 0;
	if (last > 0) {
		time_t t = (time_t)last;
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	fprintf(f, "Registry: etcd %s, watch revision %" PRId64 ", last full read %s, full reads %" PRId64 ", compactions %" PRId64 ", revocation records acted on %" PRId64 " (volumes killed %" PRId64 ")\n",
		json_object_object_get_ex(r, "reachable", &x) && json_object_get_boolean(x) ?
		"reachable" : "UNREACHABLE",
		json_object_object_get_ex(r, "watch_revision", &x) ? json_object_get_int64(x) : 0,
		when,
		json_object_object_get_ex(r, "full_reads", &x) ? json_object_get_int64(x) : 0,
		json_object_object_get_ex(r, "compactions", &x) ? json_object_get_int64(x) : 0,
		json_object_object_get_ex(r, "records_acted", &x) ? json_object_get_int64(x) : 0,
		json_object_object_get_ex(r, "volumes_killed", &x) ? json_object_get_int64(x) : 0);
	if (since > 0 && json_object_object_get_ex(r, "last_error", &x)) {
		lc_ctl_sanitize(json_object_get_string(x), err, sizeof(err));
		fprintf(f, "Registry etcd unreachable since %" PRId64 " (epoch s): %s; the agent works on its copy\n",
			since, err);
	}
}

static int status(FILE *f, struct json_object *result, bool detail)
{
	struct json_object *vols, *cmks;

	if (!json_object_object_get_ex(result, "volumes", &vols) ||
	    !json_object_is_type(vols, json_type_array)) {
		render_object(f, result, NULL);
		return 0;
	}
	if (!json_object_array_length(vols))
		fprintf(f, "No open volumes.\n");
	else if (!detail)
		render_table(f, vols, volume_cols, NCOLS(volume_cols));
	else
		for (size_t i = 0; i < json_object_array_length(vols); i++) {
			struct json_object *v = json_object_array_get_idx(vols, i);

			if (i)
				fprintf(f, "\n");
			if (json_object_is_type(v, json_type_object))
				render_object(f, v, volume_order);
		}
	/* The CMKs (admins see them): one row each, as the watcher has it. */
	if (json_object_object_get_ex(result, "cmks", &cmks) &&
	    json_object_is_type(cmks, json_type_array) && json_object_array_length(cmks)) {
		fprintf(f, "\n");
		render_table(f, cmks, cmk_cols, NCOLS(cmk_cols));
	}
	kms_calls(f, result);
	unavailable_providers(f, result);
	registry_line(f, result);
	return 0;
}

/* Per-volume outcomes of rewrap --all and workspace rekey. */
static const struct column result_cols[] = {
	{ "NAME", "name" }, { "OUTCOME", "outcome" }, { "KEYCONFIG", "keyconfig" },
	{ "CMK VERSION", "cmk_version" }, { "ERROR", "error" },
};
static const char *const shred_order[] = {
	"name", "first", "last", "keys_wiped", "kek_rotated", "zeroed", "offset", "length",
	"discard", NULL,
};

static void results(FILE *f, struct json_object *result)
{
	struct json_object *v;

	if (!json_object_object_get_ex(result, "results", &v)) {
		render_object(f, result, volume_order);	/* one volume */
		return;
	}
	list(f, result, "results", result_cols, NCOLS(result_cols), "No open volume matched.");
	fprintf(f, "%" PRId64 " done, %" PRId64 " already, %" PRId64 " failed\n",
		json_object_object_get_ex(result, "done", &v) ? json_object_get_int64(v) : 0,
		json_object_object_get_ex(result, "already", &v) ? json_object_get_int64(v) : 0,
		json_object_object_get_ex(result, "failed", &v) ? json_object_get_int64(v) : 0);
}

static int revoked(FILE *f, struct json_object *result)
{
	struct json_object *names, *x;
	char buf[512];

	if (!json_object_object_get_ex(result, "revoked", &names) ||
	    !json_object_is_type(names, json_type_array)) {
		render_object(f, result, NULL);
		return 0;
	}
	if (!json_object_array_length(names))
		fprintf(f, "No open volume was under it: nothing revoked.\n");
	for (size_t i = 0; i < json_object_array_length(names); i++) {
		value_str(NULL, json_object_array_get_idx(names, i), buf, sizeof(buf));
		fprintf(f, "Revoked %s\n", buf);
	}
	/* With the registry in etcd: the record every agent acts on. */
	if (json_object_object_get_ex(result, "fleet_record", &x)) {
		lc_ctl_sanitize(json_object_get_string(x), buf, sizeof(buf));
		fprintf(f, "Revocation record written for the fleet: %s\n", buf);
	} else if (json_object_object_get_ex(result, "fleet_error", &x)) {
		lc_ctl_sanitize(json_object_get_string(x), buf, sizeof(buf));
		fprintf(f, "Revocation record NOT written (other agents rely on their own KMS probes): %s\n", buf);
	}
	return 0;
}

/* revocation list: one "Label: value" block per record. */
static const char *const revocation_order[] = {
	"id", "mod_revision", "provider", "cmk_id", "key_ref", "scope", "keyconfig", "agent",
	"cause", "time", "valid", "error", "key", NULL,
};

static void revocations(FILE *f, struct json_object *result)
{
	struct json_object *recs, *x;
	char prefix[256] = "?";
	size_t n;

	if (!json_object_object_get_ex(result, "records", &recs) ||
	    !json_object_is_type(recs, json_type_array)) {
		render_object(f, result, NULL);
		return;
	}
	if (json_object_object_get_ex(result, "prefix", &x))
		lc_ctl_sanitize(json_object_get_string(x), prefix, sizeof(prefix));
	n = json_object_array_length(recs);
	if (!n) {
		fprintf(f, "No revocation records under %srevocations/ (etcd revision %" PRId64 ").\n",
			prefix, json_object_object_get_ex(result, "revision", &x) ?
			json_object_get_int64(x) : 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *rec = json_object_array_get_idx(recs, i);

		if (i)
			fprintf(f, "\n");
		if (json_object_is_type(rec, json_type_object))
			render_object(f, rec, revocation_order);
	}
	fprintf(f, "\n%zu record(s) at etcd revision %" PRId64 ".  Each is acted on again (its volumes killed) at every full read until cleared: lakecryptctl revocation clear ID --revision MOD_REVISION\n",
		n, json_object_object_get_ex(result, "revision", &x) ? json_object_get_int64(x) : 0);
}

static void cleared(FILE *f, struct json_object *result)
{
	struct json_object *x, *rec;
	char buf[1024];

	if (!json_object_object_get_ex(result, "cleared", &x)) {
		render_object(f, result, NULL);
		return;
	}
	lc_ctl_sanitize(json_object_get_string(x), buf, sizeof(buf));
	fprintf(f, "Cleared %s", buf);
	if (json_object_object_get_ex(result, "record", &rec) &&
	    json_object_object_get_ex(rec, "mod_revision", &x))
		fprintf(f, " (it was at mod_revision %" PRId64 ")", json_object_get_int64(x));
	fprintf(f, "\n");
	if (json_object_object_get_ex(result, "kms_check", &x)) {
		lc_ctl_sanitize(json_object_get_string(x), buf, sizeof(buf));
		fprintf(f, "KMS check: %s", buf);
		if (json_object_object_get_ex(result, "kms_detail", &x) && *json_object_get_string(x)) {
			lc_ctl_sanitize(json_object_get_string(x), buf, sizeof(buf));
			fprintf(f, " (%s)", buf);
		}
		fprintf(f, "\n");
	}
	if (json_object_object_get_ex(result, "warning", &x)) {
		lc_ctl_sanitize(json_object_get_string(x), buf, sizeof(buf));
		fprintf(f, "Warning: %s\n", buf);
	}
	fprintf(f, "Nothing was reopened: volumes it killed open again with a normal open, which asks the KMS.\n");
}

int lc_ctl_render_human(FILE *f, enum lc_ctl_render r, struct json_object *result)
{
	if (r == LC_R_NONE)
		return ferror(f) ? -EIO : 0;
	if (!json_object_is_type(result, json_type_object))
		return -EINVAL;
	switch (r) {
	case LC_R_NONE:
		break;
	case LC_R_KEY:
		render_object(f, result, key_order);
		break;
	case LC_R_PING:
		render_object(f, result, ping_order);
		break;
	case LC_R_KEYS:
		list(f, result, "keys", key_cols, NCOLS(key_cols), "No keys.");
		break;
	case LC_R_KEYCONFIG:
		render_object(f, result, keyconfig_order);
		break;
	case LC_R_KEYCONFIGS:
		list(f, result, "keyconfigs", keyconfig_cols, NCOLS(keyconfig_cols),
		     "No key configurations.");
		break;
	case LC_R_BINDING:
		render_object(f, result, binding_order);
		break;
	case LC_R_BINDINGS:
		list(f, result, "workspaces", binding_cols, NCOLS(binding_cols),
		     "No workspace bindings.");
		break;
	case LC_R_VOLUME:
		render_object(f, result, volume_order);
		break;
	case LC_R_STATUS:
	case LC_R_STATUS_DETAIL:
		status(f, result, r == LC_R_STATUS_DETAIL);
		break;
	case LC_R_REVOKED:
		revoked(f, result);
		break;
	case LC_R_AUDIT:
		list(f, result, "records", audit_cols, NCOLS(audit_cols), "No audit records.");
		break;
	case LC_R_CHECK: {
		struct json_object *n;

		list(f, result, "checks", check_cols, NCOLS(check_cols), "No CMK in use.");
		if (json_object_object_get_ex(result, "kms_calls", &n))
			fprintf(f, "KMS calls: %" PRId64 "\n", json_object_get_int64(n));
		break;
	}
	case LC_R_RESULTS:
		results(f, result);
		break;
	case LC_R_SHRED:
		render_object(f, result, shred_order);
		break;
	case LC_R_REVOCATIONS:
		revocations(f, result);
		break;
	case LC_R_CLEARED:
		cleared(f, result);
		break;
	}
	return ferror(f) ? -EIO : 0;
}

int lc_ctl_render_json(FILE *f, struct json_object *result)
{
	const char *s = json_object_to_json_string_ext(result, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE);

	if (!s)
		return -ENOMEM;
	fprintf(f, "%s\n", s);
	return ferror(f) ? -EIO : 0;
}
