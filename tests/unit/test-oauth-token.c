// SPDX-License-Identifier: GPL-2.0
/*
 * The shared bearer-token cache (agent/lib/oauth-token.c): fetched once
 * and reused, renewed when due, one fetch at a time, a 401 drop that
 * spares a token renewed meanwhile, fetch errors passed through.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "oauth-token.h"

struct fake {
	int calls;
	int64_t life;
	int fail;		/* errno to return, 0: ok */
	uint64_t hint;
	pthread_mutex_t lock;
};

static int fake_fetch(void *arg, struct lc_secret *auth, int64_t *life, uint64_t *ra,
		      struct lc_error *err)
{
	struct fake *f = arg;
	char h[64];
	int n;

	pthread_mutex_lock(&f->lock);
	n = ++f->calls;
	pthread_mutex_unlock(&f->lock);
	if (f->fail) {
		*ra = f->hint;
		return lc_err(err, -f->fail, LC_ERRC_TRANSIENT, "token endpoint down");
	}
	snprintf(h, sizeof(h), "Authorization: Bearer tok%d", n);
	if (lc_secret_alloc(auth, strlen(h) + 1))
		return -ENOMEM;
	memcpy(auth->p, h, strlen(h) + 1);
	auth->len = strlen(h);
	*life = f->life;
	return 0;
}

static void test_cache(void **state)
{
	struct lc_token_cache c;
	struct fake f = { .life = 3600, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct lc_secret h = { 0 };
	struct lc_error err = { 0 };
	unsigned int g1 = 0, g2 = 0;
	uint64_t ra = 0;

	(void)state;
	lc_token_cache_init(&c, 300);
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g1, &ra, &err), 0);
	assert_string_equal((const char *)h.p, "Authorization: Bearer tok1");
	lc_secret_free(&h);
	/* Cached: no second fetch. */
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g2, &ra, &err), 0);
	assert_int_equal(f.calls, 1);
	assert_int_equal(g1, g2);
	lc_secret_free(&h);
	/* A 401 with it: dropped, the next call fetches tok2. */
	lc_token_drop(&c, g1);
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g2, &ra, &err), 0);
	assert_string_equal((const char *)h.p, "Authorization: Bearer tok2");
	assert_int_not_equal(g1, g2);
	lc_secret_free(&h);
	/* A late 401 from a caller of the old generation spares tok2. */
	lc_token_drop(&c, g1);
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g1, &ra, &err), 0);
	assert_int_equal(f.calls, 2);
	lc_secret_free(&h);
	/* A fetch error comes back with its class and hint; nothing cached. */
	lc_token_drop(&c, g1);
	f.fail = EAGAIN;
	f.hint = 1500;
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g1, &ra, &err), -EAGAIN);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	assert_int_equal(ra, 1500);
	assert_null(h.p);
	f.fail = 0;
	/* A token of 1 s life is renewed at half of it: due at once here. */
	f.life = 1;
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g1, &ra, &err), 0);
	lc_secret_free(&h);
	assert_int_equal(lc_token_get(&c, fake_fetch, &f, &h, &g1, &ra, &err), 0);
	assert_int_equal(f.calls, 5);	/* 2 ok, 1 failed, then one per call: due at once */
	lc_secret_free(&h);
	lc_token_cache_destroy(&c);
}

static void test_renew_after(void **state)
{
	(void)state;
	assert_int_equal(lc_token_renew_after(3600, 300), 3300);
	assert_int_equal(lc_token_renew_after(600, 300), 300);	/* = 2 * margin: half */
	assert_int_equal(lc_token_renew_after(601, 300), 301);
	assert_int_equal(lc_token_renew_after(100, 300), 50);
	assert_int_equal(lc_token_renew_after(1, 300), 0);
	assert_int_equal(lc_token_renew_after(0, 300), 0);
	assert_int_equal(lc_token_renew_after(-5, 300), 0);
}

/* Eight callers at once on an empty cache: one fetch. */
struct racer {
	struct lc_token_cache *c;
	struct fake *f;
	int r;
};

static void *race(void *arg)
{
	struct racer *x = arg;
	struct lc_secret h = { 0 };
	struct lc_error err = { 0 };
	unsigned int g;
	uint64_t ra = 0;

	x->r = lc_token_get(x->c, fake_fetch, x->f, &h, &g, &ra, &err);
	lc_secret_free(&h);
	return NULL;
}

static void test_one_fetch(void **state)
{
	struct lc_token_cache c;
	struct fake f = { .life = 3600, .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t t[8];
	struct racer x[8];

	(void)state;
	lc_token_cache_init(&c, 300);
	for (int i = 0; i < 8; i++) {
		x[i] = (struct racer){ .c = &c, .f = &f };
		assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(x[i].r, 0);
	}
	assert_int_equal(f.calls, 1);
	lc_token_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_renew_after),
		cmocka_unit_test(test_one_fetch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
