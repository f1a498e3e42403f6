// SPDX-License-Identifier: GPL-2.0
/*
 * Revocation records as etcd holds them, for the admin's `lakecryptctl
 * revocation list` and `revocation clear` (registry-etcd.h,
 * Documentation/etcd.md "Revocation records"): a read of
 * <prefix>revocations/ and a delete that compares mod_revision.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "registry-etcd.h"

#define REV_DIR		"revocations/"
#define REV_DIR_LEN	12
#define KEY_MAX		1024

static bool id_char_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '/';
}

int lc_regetcd_revocation_key(struct lc_registry *reg, const char *id, char *key, size_t size,
			      struct lc_error *err)
{
	const char *prefix = lc_regetcd_prefix(reg);
	size_t plen = strlen(prefix), n;
	int w;

	if (!lc_regetcd_etcd(reg))
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_INVALID,
			      "revocation records exist only with [registry] backend = etcd");
	/* The whole key, as list prints it under "key", is accepted too. */
	if (!strncmp(id, prefix, plen) && !strncmp(id + plen, REV_DIR, REV_DIR_LEN))
		id += plen + REV_DIR_LEN;
	n = strlen(id);
	if (!n || n >= LC_REVOCATION_ID_SIZE)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!id_char_ok((unsigned char)id[i]))
			goto bad;
	w = snprintf(key, size, "%s%s%s", prefix, REV_DIR, id);
	if (w < 0 || (size_t)w >= size)
		goto bad;
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "\"%.64s%s\" is not a revocation record: expected its id as `lakecryptctl revocation list` shows it (64 hex digits, the SHA-256 of the CMK id), or its whole key %s%s<id>",
		      id, strlen(id) > 64 ? "..." : "", prefix, REV_DIR);
}

/* @kv (a key under <prefix>revocations/) into @ent: never fails; a value
 * the agents would refuse is marked so, with why. */
static void entry_of(const char *prefix, const struct lc_etcd_kv *kv,
		     struct lc_revocation_entry *ent)
{
	size_t skip = strlen(prefix) + REV_DIR_LEN, n = kv->key_len - skip, i;
	const char *why = NULL;
	json_object *o = NULL, *v;
	char hex[65];

	memset(ent, 0, sizeof(*ent));
	ent->id_exact = n > 0 && n < sizeof(ent->id);
	for (i = 0; i < n && i + 1 < sizeof(ent->id); i++) {
		unsigned char c = kv->key[skip + i];

		ent->id[i] = id_char_ok(c) ? (char)c : '?';
		ent->id_exact &= id_char_ok(c);
	}
	ent->id[i] = '\0';
	ent->create_revision = kv->create_revision;
	ent->version = kv->version;
	if (!kv->value || kv->value_len > 64 * 1024 ||
	    memchr(kv->value, '\0', kv->value_len))
		why = "value too large or not text";
	else if (!(o = lc_json_parse((const char *)kv->value, kv->value_len)) ||
		 !json_object_is_type(o, json_type_object))
		why = "value is not a JSON object";
	else if (!json_object_object_get_ex(o, "v", &v) || !json_object_is_type(v, json_type_int) ||
		 json_object_get_int(v) != 1)
		why = "value has no \"v\": 1";
	else if (lc_revocation_from_json(o, &ent->rec, &why) == 0)
		ent->valid = true;
	json_object_put(o);
	if (!ent->valid)
		snprintf(ent->why, sizeof(ent->why), "%s", why ? why : "refused");
	ent->rec.mod_revision = kv->mod_revision;
	if (ent->valid) {
		lc_revocation_hash(&ent->rec, hex);
		ent->hash_ok = ent->id_exact && !strcmp(ent->id, hex);
	}
}

int lc_regetcd_revocations_list(struct lc_registry *reg, struct lc_revocation_entry **out,
				size_t *n, int64_t *revision, struct lc_error *err)
{
	struct lc_etcd *e = lc_regetcd_etcd(reg);
	const char *prefix = lc_regetcd_prefix(reg);
	struct lc_etcd_range_result res = { 0 };
	char dir[KEY_MAX];
	int r;

	*out = NULL;
	*n = 0;
	if (!e)
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_INVALID,
			      "revocation records exist only with [registry] backend = etcd");
	snprintf(dir, sizeof(dir), "%s%s", prefix, REV_DIR);
	r = lc_etcd_range_prefix_all(e, dir, strlen(dir), 0, LC_REVOCATION_LIST_MAX, &res, err);
	if (r == -E2BIG)
		return lc_err(err, r, LC_ERRC_INVALID,
			      "more than %d keys under %s: list them with etcdctl get --prefix",
			      LC_REVOCATION_LIST_MAX, dir);
	if (r < 0)
		return lc_err(err, r, err->cls, "registry (etcd): revocation records not read: %s",
			      err->msg);
	if (res.n) {
		*out = calloc(res.n, sizeof(**out));
		if (!*out) {
			lc_etcd_range_result_free(&res);
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		}
	}
	for (size_t i = 0; i < res.n; i++) {
		/* The range is the prefix: every key starts with dir (etcd.c
		 * checks order, not this; a hostile member is refused here). */
		if (res.kvs[i].key_len <= strlen(dir) || memcmp(res.kvs[i].key, dir, strlen(dir)))
			continue;
		entry_of(prefix, &res.kvs[i], &(*out)[(*n)++]);
	}
	if (revision)
		*revision = res.revision;
	lc_etcd_range_result_free(&res);
	return 0;
}

int lc_regetcd_revocation_get(struct lc_registry *reg, const char *key,
			      struct lc_revocation_entry *ent, struct lc_error *err)
{
	struct lc_etcd *e = lc_regetcd_etcd(reg);
	struct lc_etcd_range_result res = { 0 };
	int r;

	if (!e)
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_INVALID,
			      "revocation records exist only with [registry] backend = etcd");
	r = lc_etcd_range(e, key, strlen(key), false, 0, 1, &res, err);
	if (r < 0)
		return lc_err(err, r, err->cls, "registry (etcd): record %s not read: %s", key,
			      err->msg);
	if (res.n != 1 || res.kvs[0].key_len != strlen(key) || memcmp(res.kvs[0].key, key, res.kvs[0].key_len)) {
		lc_etcd_range_result_free(&res);
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "there is no revocation record %s (cleared already, here or on another node? `lakecryptctl revocation list` shows those there are)",
			      key);
	}
	entry_of(lc_regetcd_prefix(reg), &res.kvs[0], ent);
	lc_etcd_range_result_free(&res);
	return 0;
}

int lc_regetcd_revocation_delete(struct lc_registry *reg, const char *key, int64_t mod_revision,
				 int64_t *revision, struct lc_error *err)
{
	struct lc_etcd *e = lc_regetcd_etcd(reg);
	struct lc_etcd_cmp c = { key, strlen(key), LC_ETCD_CMP_MOD, LC_ETCD_EQUAL, mod_revision,
				 false };
	struct lc_etcd_op op = { .type = LC_ETCD_OP_DELETE, .key = key, .key_len = strlen(key) };
	struct lc_revocation_entry now;
	struct lc_error ge = { 0 };
	bool ok = false;
	int r;

	if (!e)
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_INVALID,
			      "revocation records exist only with [registry] backend = etcd");
	if (mod_revision <= 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "a record is deleted at the revision it was read at (> 0)");
	r = lc_etcd_txn(e, &c, 1, &op, 1, NULL, 0, &ok, revision, err);
	if (r < 0)
		return lc_err(err, r, err->cls,
			      "registry (etcd): record %s not deleted: %s; look again with `lakecryptctl revocation list`",
			      key, err->msg);
	if (ok)
		return 0;
	/* Lost the compare: gone, or written again since. */
	r = lc_regetcd_revocation_get(reg, key, &now, &ge);
	if (r == -ENOENT)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "revocation record %s is gone already (cleared on another node?): nothing deleted",
			      key);
	if (r < 0)
		return lc_err(err, -ESTALE, LC_ERRC_INVALID,
			      "revocation record %s changed since revision %" PRId64 ": nothing deleted (%s)",
			      key, mod_revision, ge.msg);
	return lc_err(err, -ESTALE, LC_ERRC_INVALID,
		      "revocation record %s was written again since revision %" PRId64 " (now revision %" PRId64 ", by agent %s: %.200s): nothing deleted; look again (revocation list) and clear it at the revision shown if the KMS grants access again",
		      key, mod_revision, now.rec.mod_revision, now.valid ? now.rec.agent : "?",
		      now.valid ? now.rec.cause : now.why);
}
