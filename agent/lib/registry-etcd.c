// SPDX-License-Identifier: GPL-2.0
/*
 * The registry kept in etcd: a copy in memory, a watch thread, and the
 * registry's writes as compare-and-swap transactions (registry-etcd.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "http.h"
#include "registry-etcd.h"

#define KEY_MAX		1024
#define VALUE_VERSION	1

struct lc_regetcd {
	struct lc_etcd *e;		/* thread-safe (etcd.c) */
	struct lc_regetcd_hooks h;
	char prefix[256];
	size_t prefix_len;
	uint64_t idle_ms, retry_max_ms;
	char pause_file[LC_CONFIG_PATH_MAX];	/* [test] registry_pause_file */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	/* Under the hooks' lock: */
	int64_t revision;		/* the copy holds every change up to it */
	bool reachable;
	int64_t unreachable_since, last_full_read;
	uint64_t full_reads, compactions, watch_restarts, bad_values, revocations_seen;
	char last_error[LC_ERROR_MSG_MAX];
	struct lc_revocation recent[LC_REGETCD_RECENT];
	size_t nrecent, recent_next;
	/* Records of the opening read, handed to the hook once the thread
	 * starts (the agent's volumes are known by then). */
	struct lc_revocation *pending;
	size_t npending;
};

/* ---- keys and values ---- */

static int make_key(const struct lc_regetcd *re, const char *kind, const char *name, char *out,
		    size_t size)
{
	int n = snprintf(out, size, "%s%s/%s", re->prefix, kind, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
}

void lc_revocation_hash(const struct lc_revocation *rec, char hex[65])
{
	const char *id = rec->cmk_id[0] ? rec->cmk_id : rec->key_ref;
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[64] = '\0';
}

int lc_revocation_from_json(json_object *o, struct lc_revocation *rec, const char **why)
{
	json_object *v;

	memset(rec, 0, sizeof(*rec));
	if (!json_object_is_type(o, json_type_object)) {
		*why = "not a JSON object";
		return -EINVAL;
	}
	if (!lc_registry_json_string(o, "provider", rec->provider, sizeof(rec->provider), false) ||
	    !lc_registry_json_string(o, "cmk_id", rec->cmk_id, sizeof(rec->cmk_id), false) ||
	    !lc_registry_json_string(o, "key_ref", rec->key_ref, sizeof(rec->key_ref), false) ||
	    !lc_registry_json_string(o, "keyconfig", rec->keyconfig, sizeof(rec->keyconfig), false) ||
	    !lc_registry_json_string(o, "agent", rec->agent, sizeof(rec->agent), false) ||
	    !lc_registry_json_string(o, "cause", rec->cause, sizeof(rec->cause), false)) {
		*why = "a field is not a printable string of its size";
		return -EINVAL;
	}
	if (!rec->cmk_id[0] && !rec->key_ref[0]) {
		*why = "it names no CMK (cmk_id or key_ref)";
		return -EINVAL;
	}
	if (rec->keyconfig[0] && lc_name_check("key configuration", rec->keyconfig, NULL) < 0) {
		*why = "its keyconfig is not a valid name";
		return -EINVAL;
	}
	if (json_object_object_get_ex(o, "time", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
			*why = "time is not a number of seconds";
			return -EINVAL;
		}
		rec->time = json_object_get_int64(v);
	}
	return 0;
}

json_object *lc_revocation_to_json(const struct lc_revocation *rec)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "v", json_object_new_int(VALUE_VERSION));
	json_object_object_add(o, "provider", json_object_new_string(rec->provider));
	json_object_object_add(o, "cmk_id", json_object_new_string(rec->cmk_id));
	json_object_object_add(o, "key_ref", json_object_new_string(rec->key_ref));
	json_object_object_add(o, "keyconfig", json_object_new_string(rec->keyconfig));
	json_object_object_add(o, "agent", json_object_new_string(rec->agent));
	json_object_object_add(o, "cause", json_object_new_string(rec->cause));
	json_object_object_add(o, "time", json_object_new_int64(rec->time));
	return o;
}

/* A value as JSON text with "v": 1 added (malloc'ed; NULL: no memory). */
static char *value_text(json_object *o, size_t *len)
{
	const char *s;
	char *t = NULL;

	if (!o)
		return NULL;
	if (!json_object_object_get_ex(o, "v", NULL))
		json_object_object_add(o, "v", json_object_new_int(VALUE_VERSION));
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, len);
	if (s)
		t = strndup(s, *len);
	json_object_put(o);
	return t;
}

/* The value's JSON: an object with "v": 1 (hostile until checked). */
static json_object *value_json(const struct lc_etcd_kv *kv, const char **why)
{
	json_object *o, *v;

	if (kv->value_len > 64 * 1024 || memchr(kv->value, '\0', kv->value_len)) {
		*why = "value too large or not text";
		return NULL;
	}
	o = lc_json_parse((const char *)kv->value, kv->value_len);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*why = "value is not a JSON object";
		return NULL;
	}
	if (!json_object_object_get_ex(o, "v", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) != VALUE_VERSION) {
		json_object_put(o);
		*why = "value has no \"v\": 1";
		return NULL;
	}
	return o;
}

/* ---- applying what etcd says (lock held) ---- */

static void note_revocation(struct lc_regetcd *re, const struct lc_revocation *rec)
{
	re->recent[re->recent_next] = *rec;
	re->recent_next = (re->recent_next + 1) % LC_REGETCD_RECENT;
	if (re->nrecent < LC_REGETCD_RECENT)
		re->nrecent++;
	re->revocations_seen++;
}

/*
 * One key of the prefix, put (@del false) or deleted, into @reg.  A
 * revocation record is noted and, with @act, handed to the hook (which
 * may drop the lock: nothing here is used after the call).  A bad value
 * is refused, logged and counted; what the copy held for that key stays.
 */
static void apply_kv(struct lc_registry *reg, const struct lc_etcd_kv *kv, bool del, bool act)
{
	struct lc_regetcd *re = reg->etcd;
	const char *rest, *why = "";
	char name[KEY_MAX];
	json_object *o = NULL;
	size_t n;

	if (kv->key_len <= re->prefix_len || kv->key_len >= sizeof(name) ||
	    memcmp(kv->key, re->prefix, re->prefix_len))
		return;
	n = kv->key_len - re->prefix_len;
	memcpy(name, kv->key + re->prefix_len, n);
	name[n] = '\0';
	if (strlen(name) != n)
		goto bad_key;
	if (!strncmp(name, "keyconfigs/", 11)) {
		struct lc_keyconfig kc;

		rest = name + 11;
		if (lc_name_check("key configuration", rest, NULL) < 0)
			goto bad_key;
		if (del) {
			lc_registry_mem_del_keyconfig(reg, rest);
			return;
		}
		if (!(o = value_json(kv, &why)) || lc_keyconfig_from_json(o, &kc, &why) < 0)
			goto bad_value;
		if (strcmp(kc.name, rest)) {
			why = "its name is not the key's";
			goto bad_value;
		}
		kc.mod_revision = kv->mod_revision;
		if (lc_registry_mem_put_keyconfig(reg, &kc) < 0)
			lc_error_log("registry: out of memory: %s is not in the copy", name);
	} else if (!strncmp(name, "bindings/", 9)) {
		struct lc_binding b;

		rest = name + 9;
		if (lc_name_check("workspace", rest, NULL) < 0)
			goto bad_key;
		if (del) {
			lc_registry_mem_del_binding(reg, rest);
			return;
		}
		if (!(o = value_json(kv, &why)) || lc_binding_from_json(o, &b, &why) < 0)
			goto bad_value;
		if (strcmp(b.workspace, rest)) {
			why = "its workspace is not the key's";
			goto bad_value;
		}
		b.mod_revision = kv->mod_revision;
		if (lc_registry_mem_put_binding(reg, &b) < 0)
			lc_error_log("registry: out of memory: %s is not in the copy", name);
	} else if (!strncmp(name, "probe/", 6) || !strncmp(name, "probe-result/", 13)) {
		struct lc_probe_event ev = { .del = del, .lease = kv->lease,
					     .create_revision = kv->create_revision,
					     .mod_revision = kv->mod_revision };
		struct lc_probe_holder h;
		struct lc_probe_result res;
		char hex[LC_PROBE_UNIT_HEX];

		ev.result = name[5] == '-';
		ev.unit = name + (ev.result ? 13 : 6);
		if (!lc_probe_unit_valid(ev.unit, strlen(ev.unit)))
			goto bad_key;
		if (!del && !(o = value_json(kv, &why)))
			goto bad_value;
		if (!del && !ev.result) {
			if (lc_probe_holder_from_json(o, &h, &why) < 0)
				goto bad_value;
			ev.holder = &h;
		} else if (!del) {
			if (lc_probe_result_from_json(o, &res, &why) < 0)
				goto bad_value;
			lc_probe_unit_hash(res.provider, res.key_ref, res.keyconfig, hex);
			if (strcmp(hex, ev.unit)) {
				why = "the result is not of the unit its key names";
				goto bad_value;
			}
			ev.res = &res;
		}
		json_object_put(o);
		if (re->h.probe)
			re->h.probe(re->h.arg, &ev);
		return;
	} else if (!strncmp(name, "revocations/", 12)) {
		struct lc_revocation rec;
		char hex[65];

		if (del)
			return;		/* an admin cleared it: nothing opens by itself */
		if (!(o = value_json(kv, &why)) || lc_revocation_from_json(o, &rec, &why) < 0)
			goto bad_value;
		lc_revocation_hash(&rec, hex);
		if (strcmp(name + 12, hex)) {
			/* Acted on all the same: a record only ever kills. */
			lc_warn("registry: revocation record %s is not under the hash of its CMK (%s)",
				name, hex);
		}
		rec.mod_revision = kv->mod_revision;
		note_revocation(re, &rec);
		json_object_put(o);
		if (act && re->h.revocation)
			re->h.revocation(re->h.arg, &rec);
		return;
	}
	json_object_put(o);
	return;
bad_key:
	why = "not a valid name";
bad_value:
	json_object_put(o);
	re->bad_values++;
	lc_error_log("registry: etcd key %.*s refused (%s): the copy keeps what it had for it",
		     (int)(kv->key_len > 300 ? 300 : kv->key_len), (const char *)kv->key, why);
}

static bool is_record(const struct lc_regetcd *re, const struct lc_etcd_kv *kv)
{
	return kv->key_len > re->prefix_len + 12 && !memcmp(kv->key, re->prefix, re->prefix_len) &&
	       !memcmp(kv->key + re->prefix_len, "revocations/", 12);
}

static void set_unreachable(struct lc_regetcd *re, const struct lc_error *e)
{
	if (re->reachable || !re->unreachable_since)
		re->unreachable_since = (int64_t)time(NULL);
	re->reachable = false;
	snprintf(re->last_error, sizeof(re->last_error), "%s", e->msg);
}

static void set_reachable(struct lc_regetcd *re)
{
	if (!re->reachable)
		lc_info("registry: etcd reachable (revision %" PRId64 ")", re->revision);
	re->reachable = true;
	re->unreachable_since = 0;
}

/*
 * Read the whole prefix (no lock held; in pages of LC_ETCD_MAX_KVS, one
 * snapshot), then replace the copy with it (lock held).  @act: hand the
 * records to the hook.  0, or the range's error (-E2BIG beyond
 * LC_ETCD_MAX_RANGE_ALL keys).
 */
static int full_read(struct lc_registry *reg, bool act, bool locked_caller, struct lc_error *err)
{
	struct lc_regetcd *re = reg->etcd;
	struct lc_etcd_range_result res = { 0 };
	int r;

	r = lc_etcd_range_prefix_all(re->e, re->prefix, re->prefix_len, 0, 0, &res, err);
	if (!locked_caller)
		re->h.lock(re->h.arg);
	if (r < 0) {
		set_unreachable(re, err);
	} else {
		free(reg->kc);
		free(reg->bind);
		reg->kc = NULL;
		reg->bind = NULL;
		reg->nkc = reg->nbind = 0;
		re->revision = res.revision;
		re->last_full_read = (int64_t)time(NULL);
		re->full_reads++;
		set_reachable(re);
		if (re->h.probe)
			re->h.probe(re->h.arg, &(struct lc_probe_event){ .reset = true });
		/* Entries first, records after: the hook may drop the lock. */
		for (size_t i = 0; i < res.n; i++)
			if (!is_record(re, &res.kvs[i]))
				apply_kv(reg, &res.kvs[i], false, false);
		for (size_t i = 0; i < res.n; i++) {
			struct lc_revocation rec;
			json_object *o;
			const char *why;

			if (!is_record(re, &res.kvs[i]))
				continue;
			if (act) {
				apply_kv(reg, &res.kvs[i], false, true);
				continue;
			}
			/* The opening read: noted, handed over at start. */
			apply_kv(reg, &res.kvs[i], false, false);
			o = value_json(&res.kvs[i], &why);
			if (o && !lc_revocation_from_json(o, &rec, &why)) {
				struct lc_revocation *t = realloc(re->pending,
								  (re->npending + 1) * sizeof(*t));

				if (t) {
					re->pending = t;
					t[re->npending++] = rec;
				}
			}
			json_object_put(o);
		}
	}
	if (!locked_caller)
		re->h.unlock(re->h.arg);
	lc_etcd_range_result_free(&res);
	return r;
}

/* ---- the watch thread ---- */

static bool paused(const struct lc_regetcd *re)
{
	return re->pause_file[0] && access(re->pause_file, F_OK) == 0;
}

static int watch_cb(void *arg, const struct lc_etcd_watch_msg *m)
{
	struct lc_registry *reg = arg;
	struct lc_regetcd *re = reg->etcd;

	if (paused(re))
		return 1;	/* not applied: the watch resumes after re->revision */
	re->h.lock(re->h.arg);
	switch (m->kind) {
	case LC_ETCD_W_CREATED:
		set_reachable(re);
		break;
	case LC_ETCD_W_EVENTS:
		set_reachable(re);
		for (size_t i = 0; i < m->nevents; i++) {
			const struct lc_etcd_event *ev = &m->events[i];

			apply_kv(reg, &ev->kv, ev->type == LC_ETCD_EV_DELETE, true);
			if (ev->kv.mod_revision > re->revision)
				re->revision = ev->kv.mod_revision;
		}
		break;
	case LC_ETCD_W_PROGRESS:
		set_reachable(re);
		if (m->revision > re->revision)
			re->revision = m->revision;
		break;
	default:
		break;
	}
	re->h.unlock(re->h.arg);
	return atomic_load(&re->stop) ? 1 : 0;
}

/* Sleep @ms, waking every 100 ms to see whether to stop. */
static void pause_ms(struct lc_regetcd *re, uint64_t ms)
{
	for (uint64_t t = 0; t < ms && !atomic_load(&re->stop); t += 100)
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000L }, NULL);
}

static void *watch_thread(void *arg)
{
	struct lc_registry *reg = arg;
	struct lc_regetcd *re = reg->etcd;
	uint64_t backoff = 100;
	bool need_read;
	int64_t from;

	re->h.lock(re->h.arg);
	/* The opening read's records, now that the agent knows its volumes. */
	for (size_t i = 0; i < re->npending && re->h.revocation; i++)
		re->h.revocation(re->h.arg, &re->pending[i]);
	free(re->pending);
	re->pending = NULL;
	re->npending = 0;
	need_read = re->last_full_read == 0;
	from = re->revision + 1;
	re->h.unlock(re->h.arg);

	while (!atomic_load(&re->stop)) {
		struct lc_error e = { 0 };
		int64_t next = from;
		int r;

		if (need_read) {
			if (full_read(reg, true, false, &e) < 0) {
				lc_warn("registry: etcd read failed (%s); the copy stays as it was, again in %" PRIu64 " ms",
					e.msg, backoff);
				pause_ms(re, backoff);
				backoff = backoff * 2 > re->retry_max_ms ? re->retry_max_ms : backoff * 2;
				continue;
			}
			need_read = false;
			re->h.lock(re->h.arg);
			from = re->revision + 1;
			re->h.unlock(re->h.arg);
		}
		while (paused(re) && !atomic_load(&re->stop))
			pause_ms(re, 100);
		r = lc_etcd_watch(re->e, re->prefix, re->prefix_len, true, from, re->idle_ms,
				  &re->stop, watch_cb, reg, &next, &e);
		if (atomic_load(&re->stop))
			break;
		re->h.lock(re->h.arg);
		re->watch_restarts++;
		(void)next;
		if (r == -ERANGE) {
			re->compactions++;
			lc_warn("registry: etcd compacted past revision %" PRId64 ": reading everything again",
				from);
			need_read = true;
			backoff = 100;
		} else {
			/* Resume after the last change applied: every event up
			 * to re->revision is in the copy (a message the
			 * callback did not take is not). */
			from = re->revision + 1;
			if (r < 0) {
				bool was = re->reachable;

				set_unreachable(re, &e);
				if (was)
					lc_warn("registry: etcd watch broke (%s); the agent keeps its copy and retries",
						e.msg);
			}
		}
		if (re->reachable)
			backoff = 100;
		re->h.unlock(re->h.arg);
		if (!need_read) {
			pause_ms(re, backoff);
			backoff = backoff * 2 > re->retry_max_ms ? re->retry_max_ms : backoff * 2;
		}
	}
	return NULL;
}

/* ---- set-up ---- */

int lc_regetcd_client(const struct lc_config *cfg, struct lc_etcd **e, struct lc_error *err)
{
	char buf[sizeof(cfg->registry_endpoints)], *save = NULL;
	const char *eps[LC_ETCD_MAX_ENDPOINTS];
	size_t n = 0;
	struct lc_etcd_opts o = { 0 };
	int r;

	snprintf(buf, sizeof(buf), "%s", cfg->registry_endpoints);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		for (char *z = t + strlen(t); z > t && (z[-1] == ' ' || z[-1] == '\t'); z--)
			z[-1] = '\0';
		if (n == LC_ETCD_MAX_ENDPOINTS)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[registry] endpoints: more than %d", LC_ETCD_MAX_ENDPOINTS);
		eps[n++] = t;
	}
	o.endpoints = eps;
	o.n_endpoints = n;
	o.ca_file = cfg->registry_ca;
	o.cert_file = cfg->registry_cert[0] ? cfg->registry_cert : NULL;
	o.key_file = cfg->registry_key[0] ? cfg->registry_key : NULL;
	o.connect_timeout_ms = cfg->registry_connect_timeout_ms;
	o.timeout_ms = cfg->registry_timeout_ms;
	r = lc_etcd_new(e, &o, err);
	if (r < 0)
		return lc_err(err, r, err->cls ? err->cls : LC_ERRC_MISCONFIG, "[registry]: %s",
			      err->msg);
	return 0;
}

int lc_regetcd_open(struct lc_registry *reg, const struct lc_config *cfg,
		    const struct lc_regetcd_hooks *hooks, struct lc_error *err)
{
	struct lc_regetcd *re;
	struct lc_error e = { 0 };
	int r;

	memset(reg, 0, sizeof(*reg));
	re = calloc(1, sizeof(*re));
	if (!re)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	r = lc_regetcd_client(cfg, &re->e, err);
	if (r < 0) {
		free(re);
		return r;
	}
	re->h = *hooks;
	snprintf(re->prefix, sizeof(re->prefix), "%s", cfg->registry_prefix);
	re->prefix_len = strlen(re->prefix);
	re->idle_ms = (uint64_t)cfg->registry_watch_idle_s * 1000;
	re->retry_max_ms = cfg->registry_retry_max_ms;
	snprintf(re->pause_file, sizeof(re->pause_file), "%s", cfg->test_registry_pause_file);
	atomic_init(&re->stop, false);
	reg->etcd = re;
	re->h.lock(re->h.arg);
	r = full_read(reg, false, true, &e);
	re->h.unlock(re->h.arg);
	if (r < 0 && e.cls == LC_ERRC_MISCONFIG) {
		/* Our certificate refused, no permission: it will not mend. */
		lc_regetcd_close(reg);
		return lc_err(err, r, LC_ERRC_MISCONFIG, "registry: %s", e.msg);
	}
	if (r < 0)
		lc_warn("registry: etcd unreachable at start (%s): starting with an empty registry, reading again in the background",
			e.msg);
	else
		lc_info("registry: etcd %s: %zu key configuration(s), %zu binding(s) at revision %" PRId64,
			re->prefix, reg->nkc, reg->nbind, re->revision);
	return 0;
}

int lc_regetcd_start(struct lc_registry *reg, struct lc_error *err)
{
	struct lc_regetcd *re = reg->etcd;
	int r;

	if (!re || re->started)
		return 0;
	r = pthread_create(&re->thread, NULL, watch_thread, reg);
	if (r)
		return lc_err(err, -r, LC_ERRC_INTERNAL, "cannot start the registry watch: %s",
			      strerror(r));
	re->started = true;
	return 0;
}

void lc_regetcd_stop(struct lc_registry *reg)
{
	struct lc_regetcd *re = reg->etcd;

	if (!re || !re->started)
		return;
	atomic_store(&re->stop, true);
	pthread_join(re->thread, NULL);
	re->started = false;
}

void lc_regetcd_close(struct lc_registry *reg)
{
	struct lc_regetcd *re = reg->etcd;

	if (!re)
		return;
	lc_regetcd_stop(reg);
	lc_etcd_free(re->e);
	free(re->pending);
	free(re);
	reg->etcd = NULL;
}

/* ---- writes ---- */

/*
 * Run one transaction with the lock dropped.  0 and *@rev if it applied;
 * -ECANCELED (INVALID, @what in the message) if a compare failed; else
 * etcd's error, with "outcome unknown" kept in its message.
 */
static int txn(struct lc_registry *reg, const struct lc_etcd_cmp *cmp, size_t ncmp,
	       const struct lc_etcd_op *op, const char *what, int64_t *rev, struct lc_error *err)
{
	struct lc_regetcd *re = reg->etcd;
	bool ok = false;
	int r;

	re->h.unlock(re->h.arg);
	r = lc_etcd_txn(re->e, cmp, ncmp, op, 1, NULL, 0, &ok, rev, err);
	re->h.lock(re->h.arg);
	if (r < 0)
		return lc_err(err, r, err->cls, "registry (etcd): %s not written: %s", what, err->msg);
	if (!ok)
		return lc_err(err, -ECANCELED, LC_ERRC_INVALID,
			      "conflict: %s was changed on another node at the same time; nothing was written: look again (list) and retry",
			      what);
	return 0;
}

int lc_regetcd_put_keyconfig(struct lc_registry *reg, const struct lc_keyconfig *kc,
			     struct lc_error *err)
{
	char key[KEY_MAX], what[LC_HDR_NAME_SIZE + 40], *val;
	struct lc_keyconfig n = *kc;
	size_t vlen;
	int64_t rev = 0;
	int r;

	if (make_key(reg->etcd, "keyconfigs", kc->name, key, sizeof(key)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INVALID, "registry key too long");
	val = value_text(lc_keyconfig_to_json(kc), &vlen);
	if (!val)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	snprintf(what, sizeof(what), "key configuration \"%s\"", kc->name);
	{
		struct lc_etcd_cmp c = { key, strlen(key), LC_ETCD_CMP_MOD, LC_ETCD_EQUAL,
					 kc->mod_revision, false };
		struct lc_etcd_op op = { .type = LC_ETCD_OP_PUT, .key = key, .key_len = strlen(key),
					 .value = val, .value_len = vlen };

		r = txn(reg, &c, 1, &op, what, &rev, err);
	}
	free(val);
	if (r == -ECANCELED && !kc->mod_revision)
		return lc_err(err, -EEXIST, LC_ERRC_INVALID,
			      "conflict: key configuration \"%s\" was created on another node at the same time; nothing was written: choose another name or look again (keyconfig list)",
			      kc->name);
	if (r < 0)
		return r;
	n.mod_revision = rev;
	{
		const struct lc_keyconfig *cur = lc_registry_keyconfig(reg, kc->name);

		/* The watch may have applied it (or something newer) already. */
		if ((!cur || cur->mod_revision < rev) && lc_registry_mem_put_keyconfig(reg, &n) < 0)
			lc_error_log("registry: out of memory: the watch brings %s", what);
	}
	return 0;
}

int lc_regetcd_delete_keyconfig(struct lc_registry *reg, const struct lc_keyconfig *kc,
				struct lc_error *err)
{
	struct lc_regetcd *re = reg->etcd;
	char key[KEY_MAX], bkey[KEY_MAX], what[LC_HDR_NAME_SIZE + 40];
	int64_t rev = 0;
	int r;

	if (make_key(re, "keyconfigs", kc->name, key, sizeof(key)) < 0 ||
	    make_key(re, "bindings", "", bkey, sizeof(bkey)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INVALID, "registry key too long");
	snprintf(what, sizeof(what), "key configuration \"%s\"", kc->name);
	{
		struct lc_etcd_cmp c[2] = {
			{ key, strlen(key), LC_ETCD_CMP_MOD, LC_ETCD_EQUAL, kc->mod_revision, false },
			/* No binding made or changed since the copy's revision,
			 * at which none named it. */
			{ bkey, strlen(bkey), LC_ETCD_CMP_MOD, LC_ETCD_LESS, re->revision + 1, true },
		};
		struct lc_etcd_op op = { .type = LC_ETCD_OP_DELETE, .key = key,
					 .key_len = strlen(key) };

		r = txn(reg, c, 2, &op, what, &rev, err);
	}
	if (r == -ECANCELED)
		return lc_err(err, r, LC_ERRC_INVALID,
			      "conflict: key configuration \"%s\" or a workspace binding was changed on another node at the same time; nothing was deleted: look again (keyconfig list, workspace list) and retry",
			      kc->name);
	if (r < 0)
		return r;
	{
		const struct lc_keyconfig *cur = lc_registry_keyconfig(reg, kc->name);

		if (cur && cur->mod_revision <= kc->mod_revision)
			lc_registry_mem_del_keyconfig(reg, kc->name);
	}
	return 0;
}

int lc_regetcd_put_binding(struct lc_registry *reg, const struct lc_binding *b,
			   const struct lc_keyconfig *kc, struct lc_error *err)
{
	struct lc_regetcd *re = reg->etcd;
	char key[KEY_MAX], kkey[KEY_MAX], what[LC_HDR_NAME_SIZE + 40], *val;
	struct lc_binding n = *b;
	size_t vlen;
	int64_t rev = 0;
	int r;

	if (make_key(re, "bindings", b->workspace, key, sizeof(key)) < 0 ||
	    make_key(re, "keyconfigs", kc ? kc->name : "", kkey, sizeof(kkey)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INVALID, "registry key too long");
	val = value_text(lc_binding_to_json(b), &vlen);
	if (!val)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	snprintf(what, sizeof(what), "the binding of workspace \"%s\"", b->workspace);
	{
		struct lc_etcd_cmp c[2] = {
			{ key, strlen(key), LC_ETCD_CMP_MOD, LC_ETCD_EQUAL, b->mod_revision, false },
			{ kkey, strlen(kkey), LC_ETCD_CMP_VERSION, LC_ETCD_GREATER, 0, false },
		};
		struct lc_etcd_op op = { .type = LC_ETCD_OP_PUT, .key = key, .key_len = strlen(key),
					 .value = val, .value_len = vlen };

		r = txn(reg, c, kc ? 2 : 1, &op, what, &rev, err);
	}
	free(val);
	if (r == -ECANCELED)
		return lc_err(err, r, LC_ERRC_INVALID,
			      "conflict: workspace \"%s\"'s binding%s%s%s was changed on another node at the same time; nothing was written: look again (workspace list) and retry",
			      b->workspace, kc ? " or key configuration \"" : "", kc ? kc->name : "",
			      kc ? "\"" : "");
	if (r < 0)
		return r;
	n.mod_revision = rev;
	{
		const struct lc_binding *cur = lc_registry_binding(reg, b->workspace);

		if ((!cur || cur->mod_revision < rev) && lc_registry_mem_put_binding(reg, &n) < 0)
			lc_error_log("registry: out of memory: the watch brings %s", what);
	}
	return 0;
}

int lc_regetcd_delete_binding(struct lc_registry *reg, const struct lc_binding *b,
			      struct lc_error *err)
{
	char key[KEY_MAX], what[LC_HDR_NAME_SIZE + 40];
	int64_t rev = 0;
	int r;

	if (make_key(reg->etcd, "bindings", b->workspace, key, sizeof(key)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INVALID, "registry key too long");
	snprintf(what, sizeof(what), "the binding of workspace \"%s\"", b->workspace);
	{
		struct lc_etcd_cmp c = { key, strlen(key), LC_ETCD_CMP_MOD, LC_ETCD_EQUAL,
					 b->mod_revision, false };
		struct lc_etcd_op op = { .type = LC_ETCD_OP_DELETE, .key = key,
					 .key_len = strlen(key) };

		r = txn(reg, &c, 1, &op, what, &rev, err);
	}
	if (r < 0)
		return r;
	{
		const struct lc_binding *cur = lc_registry_binding(reg, b->workspace);

		if (cur && cur->mod_revision <= b->mod_revision)
			lc_registry_mem_del_binding(reg, b->workspace);
	}
	return 0;
}

int lc_regetcd_revoke(struct lc_registry *reg, const struct lc_revocation *rec, char *key_out,
		      size_t key_size, struct lc_error *err)
{
	struct lc_regetcd *re = reg->etcd;
	struct lc_revocation r2 = *rec;
	char hex[65], key[KEY_MAX], *val;
	size_t vlen;
	int r;

	if (!re)
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_MISCONFIG, "the registry is not in etcd");
	if (!r2.cmk_id[0] && !r2.key_ref[0])
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "a revocation record names a CMK");
	if (!r2.agent[0] && gethostname(r2.agent, sizeof(r2.agent) - 1) < 0)
		snprintf(r2.agent, sizeof(r2.agent), "unknown");
	r2.agent[sizeof(r2.agent) - 1] = '\0';
	for (char *p = r2.agent; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	for (char *p = r2.cause; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	if (!r2.time)
		r2.time = (int64_t)time(NULL);
	lc_revocation_hash(&r2, hex);
	if (make_key(re, "revocations", hex, key, sizeof(key)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INVALID, "registry key too long");
	val = value_text(lc_revocation_to_json(&r2), &vlen);
	if (!val)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	r = lc_etcd_put(re->e, key, strlen(key), val, vlen, 0, NULL, err);
	free(val);
	if (key_out)
		snprintf(key_out, key_size, "%s", key);
	return r;
}

struct lc_etcd *lc_regetcd_etcd(struct lc_registry *reg)
{
	return reg->etcd ? reg->etcd->e : NULL;
}

const char *lc_regetcd_prefix(struct lc_registry *reg)
{
	return reg->etcd ? reg->etcd->prefix : "";
}

bool lc_regetcd_reachable(struct lc_registry *reg)
{
	return reg->etcd && reg->etcd->reachable;
}

/* ---- status ---- */

json_object *lc_regetcd_status_json(struct lc_registry *reg)
{
	struct lc_regetcd *re = reg->etcd;
	json_object *o = json_object_new_object(), *arr;

	json_object_object_add(o, "backend", json_object_new_string("etcd"));
	if (!re)
		return o;
	json_object_object_add(o, "reachable", json_object_new_boolean(re->reachable));
	json_object_object_add(o, "endpoint_index",
			       json_object_new_uint64(lc_etcd_current(re->e)));
	json_object_object_add(o, "prefix", json_object_new_string(re->prefix));
	json_object_object_add(o, "watch_revision", json_object_new_int64(re->revision));
	json_object_object_add(o, "last_full_read", json_object_new_int64(re->last_full_read));
	json_object_object_add(o, "full_reads", json_object_new_uint64(re->full_reads));
	json_object_object_add(o, "compactions", json_object_new_uint64(re->compactions));
	json_object_object_add(o, "watch_restarts", json_object_new_uint64(re->watch_restarts));
	json_object_object_add(o, "unreachable_since", json_object_new_int64(re->unreachable_since));
	json_object_object_add(o, "last_error", json_object_new_string(re->last_error));
	json_object_object_add(o, "bad_values", json_object_new_uint64(re->bad_values));
	json_object_object_add(o, "revocations_seen", json_object_new_uint64(re->revocations_seen));
	arr = json_object_new_array();
	for (size_t i = 0; i < re->nrecent; i++) {
		const struct lc_revocation *rec =
			&re->recent[(re->recent_next + LC_REGETCD_RECENT - re->nrecent + i) %
				    LC_REGETCD_RECENT];
		json_object *x = lc_revocation_to_json(rec);

		json_object_object_add(x, "mod_revision", json_object_new_int64(rec->mod_revision));
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "revocations", arr);
	return o;
}
