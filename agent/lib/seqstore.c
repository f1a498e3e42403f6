// SPDX-License-Identifier: GPL-2.0
/*
 * Rollback memory of header seqnos (seqstore.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fileio.h"
#include "seqstore.h"

static bool uuid_ok(const char *u)
{
	if (!u || strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? u[i] != '-' : !strchr("0123456789abcdef", u[i]))
			return false;
	}
	return true;
}

static struct lc_seq_entry *find(struct lc_seqstore *s, const char *uuid)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->e[i].uuid, uuid))
			return &s->e[i];
	return NULL;
}

static int bad(const struct lc_seqstore *s, const char *what, struct lc_error *err)
{
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
		      "%s is not a valid rollback record: %s; restore it from a backup (removing it forgets which header generations were seen)",
		      s->path, what);
}

static int load(struct lc_seqstore *s, struct lc_error *err)
{
	_cleanup_free_ char *text = NULL;
	json_object *o, *v, *vols;
	size_t len;
	int r;

	r = lc_file_read(s->path, &text, &len, err);
	if (r == -ENOENT) {
		lc_err_clear(err);
		return 0;
	}
	if (r < 0)
		return r;
	o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "version", &v) || json_object_get_int(v) != 1 ||
	    !json_object_object_get_ex(o, "volumes", &vols) ||
	    !json_object_is_type(vols, json_type_object)) {
		json_object_put(o);
		return bad(s, "not {\"version\": 1, \"volumes\": {...}}", err);
	}
	s->e = calloc((size_t)json_object_object_length(vols) + 1, sizeof(*s->e));
	if (!s->e) {
		json_object_put(o);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	json_object_object_foreach(vols, k, val) {
		if (!uuid_ok(k) || !json_object_is_type(val, json_type_int) ||
		    (json_object_get_int64(val) < 0 && json_object_get_uint64(val) <= INT64_MAX)) {
			json_object_put(o);
			free(s->e);
			s->e = NULL;
			s->n = 0;
			return bad(s, "an entry is not \"<uuid>\": <seqno>", err);
		}
		snprintf(s->e[s->n].uuid, sizeof(s->e[s->n].uuid), "%s", k);
		s->e[s->n++].seqno = json_object_get_uint64(val);
	}
	json_object_put(o);
	return 0;
}

int lc_seqstore_open(struct lc_seqstore *s, const char *state_dir, struct lc_error *err)
{
	char path[PATH_MAX];
	int r;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, LC_SEQSTORE_FILE) >= (int)sizeof(path))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "state directory %s: path too long",
			      state_dir);
	s->path = strdup(path);
	if (!s->path)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_file_clean_temps(path);
	r = load(s, err);
	if (r < 0) {
		free(s->path);
		s->path = NULL;
	}
	return r;
}

void lc_seqstore_close(struct lc_seqstore *s)
{
	free(s->path);
	free(s->e);
	s->path = NULL;
	s->e = NULL;
	s->n = 0;
	pthread_mutex_destroy(&s->lock);
}

int lc_seqstore_check(struct lc_seqstore *s, const char *uuid, uint64_t seqno,
		      struct lc_error *err)
{
	struct lc_seq_entry *e;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	e = find(s, uuid);
	if (e && seqno < e->seqno)
		r = lc_err(err, -ESTALE, LC_ERRC_INVALID,
			   "the header of volume %s is at seqno %" PRIu64 ", older than seqno %" PRIu64
			   " which this agent already saw: a restored or rolled-back header is refused (restore the current header, or see Documentation/key-hierarchy.md on rollback)",
			   uuid, seqno, e->seqno);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int save(struct lc_seqstore *s, struct lc_error *err)
{
	json_object *o = json_object_new_object(), *vols = json_object_new_object();
	const char *text;
	size_t len;
	int r;

	json_object_object_add(o, "version", json_object_new_int(1));
	for (size_t i = 0; i < s->n; i++)
		json_object_object_add(vols, s->e[i].uuid, json_object_new_uint64(s->e[i].seqno));
	json_object_object_add(o, "volumes", vols);
	text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	r = text ? lc_file_write_atomic(s->path, text, len, 0600, err)
		 : lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_object_put(o);
	return r;
}

int lc_seqstore_record(struct lc_seqstore *s, const char *uuid, uint64_t seqno,
		       struct lc_error *err)
{
	struct lc_seq_entry *e, *ne;
	uint64_t old = 0;
	bool added = false;
	int r;

	if (!uuid_ok(uuid))
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "bad uuid or seqno for the rollback record");
	pthread_mutex_lock(&s->lock);
	e = find(s, uuid);
	if (e && e->seqno >= seqno) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (!e) {
		ne = realloc(s->e, (s->n + 1) * sizeof(*ne));
		if (!ne) {
			pthread_mutex_unlock(&s->lock);
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		}
		s->e = ne;
		e = &s->e[s->n++];
		snprintf(e->uuid, sizeof(e->uuid), "%s", uuid);
		added = true;
	}
	old = e->seqno;
	e->seqno = seqno;
	r = save(s, err);
	if (r < 0) {
		if (added)
			s->n--;
		else
			e->seqno = old;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}
