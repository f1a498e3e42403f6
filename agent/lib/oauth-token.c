// SPDX-License-Identifier: GPL-2.0
/*
 * The cloud providers' shared bearer-token cache: oauth-token.h.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "oauth-token.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t lc_token_renew_after(int64_t lifetime_s, int64_t margin_s)
{
	if (lifetime_s <= 0)
		return 0;
	return lifetime_s > 2 * margin_s ? lifetime_s - margin_s : lifetime_s / 2;
}

void lc_token_cache_init(struct lc_token_cache *c, int64_t margin_s)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->margin_s = margin_s;
}

void lc_token_cache_destroy(struct lc_token_cache *c)
{
	lc_secret_free(&c->auth);
	pthread_mutex_destroy(&c->lock);
}

int lc_token_get(struct lc_token_cache *c, lc_token_fetch_fn fetch, void *arg,
		 struct lc_secret *hdr, unsigned int *gen, uint64_t *retry_after_ms,
		 struct lc_error *err)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (!c->auth.len || mono_ms() >= c->refresh_mono_ms) {
		struct lc_secret fresh = { 0 };
		int64_t life = 0;

		r = fetch(arg, &fresh, &life, retry_after_ms, err);
		if (!r && (!fresh.len || life <= 0)) {
			lc_secret_free(&fresh);
			r = lc_err(err, -EPROTO, LC_ERRC_INTERNAL, "a token fetch returned no token");
		}
		if (!r) {
			lc_secret_free(&c->auth);
			c->auth = fresh;
			c->refresh_mono_ms = mono_ms() + 1000u * (uint64_t)lc_token_renew_after(life, c->margin_s);
			c->gen++;
		}
	}
	if (!r) {
		size_t n = strnlen((const char *)c->auth.p, c->auth.len);

		if (lc_secret_alloc(hdr, n + 1)) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		} else {
			memcpy(hdr->p, c->auth.p, n);
			hdr->p[n] = 0;
			*gen = c->gen;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

void lc_token_drop(struct lc_token_cache *c, unsigned int gen)
{
	pthread_mutex_lock(&c->lock);
	if (c->gen == gen) {
		lc_secret_free(&c->auth);
		c->refresh_mono_ms = 0;
	}
	pthread_mutex_unlock(&c->lock);
}
