// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the etcd watch-stream parser (lc_etcd_watch_feed),
 * which sees whatever a member, a proxy or an attacker on the path sends
 * in the body of /v3/watch.  Byte 0 picks the start revision (0: "from
 * now"), byte 1 the chunk size the stream is cut into; the rest is the
 * stream.  Any outcome is fine; a crash, a leak or UB is not, and neither
 * is a delivered message that breaks what callers rely on:
 *   - CREATED first and once; nothing after COMPACTED or CANCELED;
 *   - events with a key of 1..LC_ETCD_MAX_KEY bytes, a value within
 *     LC_ETCD_MAX_VALUE, revisions >= the start and never going back,
 *     progress never below an event already delivered;
 *   - an error comes with a class and a message;
 *   - the same stream cut into 1-byte pieces or fed whole gives the same
 *     messages and the same outcome.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	int64_t start, last;
	bool created, ended;
	uint64_t hash;
	unsigned int msgs;
};

static void mix(struct seen *s, uint64_t v)
{
	s->hash = (s->hash ^ v) * 1099511628211ULL;
}

static int on_msg(void *arg, const struct lc_etcd_watch_msg *m)
{
	struct seen *s = arg;

	if (s->ended)
		abort();
	mix(s, (uint64_t)m->kind);
	mix(s, (uint64_t)m->revision);
	s->msgs++;
	switch (m->kind) {
	case LC_ETCD_W_CREATED:
		if (s->created)
			abort();
		s->created = true;
		if (!s->start)
			s->last = m->revision;
		break;
	case LC_ETCD_W_EVENTS:
		if (!s->created || !m->nevents || m->nevents > LC_ETCD_MAX_EVENTS)
			abort();
		for (size_t i = 0; i < m->nevents; i++) {
			const struct lc_etcd_kv *kv = &m->events[i].kv;

			if (!kv->key || !kv->key_len || kv->key_len > LC_ETCD_MAX_KEY ||
			    kv->value_len > LC_ETCD_MAX_VALUE || (kv->value_len && !kv->value) ||
			    kv->mod_revision < s->start || kv->mod_revision <= s->last - (i ? 1 : 0) ||
			    kv->mod_revision < 1)
				abort();
			if (i && kv->mod_revision < m->events[i - 1].kv.mod_revision)
				abort();
			mix(s, (uint64_t)kv->mod_revision);
			mix(s, kv->key_len);
			mix(s, kv->key[0]);
		}
		s->last = m->events[m->nevents - 1].kv.mod_revision;
		break;
	case LC_ETCD_W_PROGRESS:
		if (!s->created || m->revision < s->last)
			abort();
		s->last = m->revision;
		break;
	case LC_ETCD_W_COMPACTED:
		s->created = true;
		if (m->compact_revision < 1)
			abort();
		s->ended = true;
		break;
	case LC_ETCD_W_CANCELED:
		s->created = true;	/* may come first, with created=true */
		if (strlen(m->reason) >= sizeof(m->reason))
			abort();
		s->ended = true;
		break;
	default:
		abort();
	}
	return 0;
}

static int run(const uint8_t *d, size_t n, int64_t start, size_t chunk, struct seen *s)
{
	struct lc_etcd_watch_parser p;
	struct lc_error err = { 0 };
	int r = 0;

	memset(s, 0, sizeof(*s));
	s->start = start;
	s->last = start ? start - 1 : 0;
	lc_etcd_watch_parser_init(&p, start, 64 * 1024, on_msg, s);
	for (size_t i = 0; i < n && !r; i += chunk)
		r = lc_etcd_watch_feed(&p, (const char *)d + i, n - i < chunk ? n - i : chunk, &err);
	if (r < 0 && (err.cls == LC_ERRC_NONE || !err.msg[0] || err.code != r))
		abort();
	if (r == 0 && lc_etcd_watch_next_revision(&p) < 0)
		abort();
	lc_etcd_watch_parser_free(&p);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t starts[] = { 0, 1, 2, 5, 100, INT64_MAX };
	struct seen a, b, c;
	int64_t start;
	size_t chunk;
	int ra, rb, rc;

	if (size < 2)
		return 0;
	start = starts[data[0] % (sizeof(starts) / sizeof(starts[0]))];
	chunk = (size_t)data[1] + 1;
	data += 2;
	size -= 2;
	ra = run(data, size, start, size ? size : 1, &a);
	rb = run(data, size, start, 1, &b);
	rc = run(data, size, start, chunk, &c);
	/* a stream cut anywhere parses the same */
	if (ra != rb || ra != rc || a.hash != b.hash || a.hash != c.hash || a.msgs != b.msgs)
		abort();
	return 0;
}
