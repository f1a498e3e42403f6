/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One cached OAuth 2.0 bearer token (RFC 6749 section 5.1, RFC 6750) for
 * the cloud providers' HTTP core: the "Authorization: Bearer ..." header
 * in locked memory, renewed before it expires, and dropped once after the
 * server answers 401 so that the caller fetches a fresh one and tries
 * again once.
 *
 *   - Renewal: at expiry minus @margin_s (lc_token_cache_init), or at half
 *     the lifetime for tokens shorter than twice the margin.  Timed on the
 *     monotonic clock: a wall clock that jumps (NTP, a resumed VM) neither
 *     keeps an expired token nor throws away a fresh one.
 *   - One fetch at a time per cache: callers that find the token missing or
 *     due wait on the cache's lock while one of them fetches.
 *   - A drop after a 401 names the generation the caller used: a token
 *     another caller fetched meanwhile is kept.
 * The header is never logged or copied anywhere but into the caller's
 * locked copy.
 */
#ifndef LC_OAUTH_TOKEN_H
#define LC_OAUTH_TOKEN_H

#include <pthread.h>
#include <stdint.h>

#include "lc-error.h"
#include "secmem.h"

/*
 * Fetch a token: @auth gets "Authorization: Bearer <token>" + NUL in
 * locked memory (lc_secret_alloc; its len counts the NUL-less text + 1 or
 * more), @lifetime_s its lifetime from now in seconds (> 0).  0, or a
 * negative errno with @err (and *@retry_after_ms, a server's hint, may be
 * set).  Called with the cache's lock held.
 */
typedef int (*lc_token_fetch_fn)(void *arg, struct lc_secret *auth, int64_t *lifetime_s,
				 uint64_t *retry_after_ms, struct lc_error *err);

struct lc_token_cache {
	pthread_mutex_t lock;
	struct lc_secret auth;		/* the header + NUL; len 0: none */
	uint64_t refresh_mono_ms;	/* CLOCK_MONOTONIC ms: renew from here */
	unsigned int gen;		/* bumped at each fetch */
	int64_t margin_s;
};

void lc_token_cache_init(struct lc_token_cache *c, int64_t margin_s);
void lc_token_cache_destroy(struct lc_token_cache *c);

/*
 * A locked copy of the header in @hdr (lc_secret_free it), fetched with
 * @fetch(@arg, ...) first if missing or due; *@gen: its generation, for
 * lc_token_drop.  0 or @fetch's error.
 */
int lc_token_get(struct lc_token_cache *c, lc_token_fetch_fn fetch, void *arg,
		 struct lc_secret *hdr, unsigned int *gen, uint64_t *retry_after_ms,
		 struct lc_error *err);

/* After a 401 with the token of generation @gen: forget it, unless another
 * caller already renewed it. */
void lc_token_drop(struct lc_token_cache *c, unsigned int gen);

/* When to renew a token of @lifetime_s seconds, in seconds from now:
 * lifetime - margin, or lifetime / 2 if lifetime < 2 * margin (>= 0). */
int64_t lc_token_renew_after(int64_t lifetime_s, int64_t margin_s);

#endif /* LC_OAUTH_TOKEN_H */
