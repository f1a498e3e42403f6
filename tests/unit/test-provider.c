// SPDX-License-Identifier: GPL-2.0
/* The provider call layer: retries, backoff, deadline, counting, with a
 * scripted fake provider and a fake clock (no real sleeping). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider.h"

#define MS 1000000ull

struct fake {
	/* Script: the class each attempt fails with (NONE: success). */
	enum lc_err_class script[64];
	int codes[64];
	unsigned int n_script;
	unsigned int calls;
	uint64_t attempt_cost_ms;	/* fake time each attempt takes */
	uint64_t timeouts[64];		/* timeout_ms seen per attempt */
	uint64_t retry_after[64];	/* hint each attempt gives (ms) */
	int leak_on_failure;		/* allocate output, then fail */
	int no_class;			/* fail without setting a class */
	/* clock */
	uint64_t now;
	uint64_t sleeps[64];
	unsigned int n_sleeps;
};

static uint64_t fake_now(void *arg)
{
	return ((struct fake *)arg)->now;
}

static void fake_sleep(void *arg, uint64_t ns)
{
	struct fake *f = arg;

	f->sleeps[f->n_sleeps++] = ns / MS;
	f->now += ns;
}

static int step(struct fake *f, struct lc_provider_reply *reply, uint64_t timeout_ms,
		struct lc_error *err)
{
	unsigned int i = f->calls++;
	enum lc_err_class c = i < f->n_script ? f->script[i] : LC_ERRC_NONE;

	f->timeouts[i] = timeout_ms;
	f->now += f->attempt_cost_ms * MS;
	snprintf(reply->request_id, sizeof(reply->request_id), "req-%u", i + 1);
	snprintf(reply->key_id, sizeof(reply->key_id), "fake-key");
	snprintf(reply->key_version, sizeof(reply->key_version), "v%u", i + 1);
	reply->retry_after_ms = f->retry_after[i];
	if (c == LC_ERRC_NONE)
		return 0;
	if (f->no_class)
		return -EIO;
	return lc_err(err, f->codes[i] ? f->codes[i] : -EAGAIN, c, "fake failure %u (%s)", i + 1,
		      lc_err_class_name(c));
}

static int fake_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		     const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		     struct lc_provider_reply *reply, struct lc_error *err)
{
	struct fake *f = priv;
	int r;

	(void)key_ref;
	(void)context;
	blob->p = malloc(pt->len);
	blob->len = pt->len;
	memcpy(blob->p, pt->p, pt->len);
	r = step(f, reply, timeout_ms, err);
	if (r && !f->leak_on_failure) {
		free(blob->p);
		blob->p = NULL;
		blob->len = 0;
	}
	return r;
}

static int fake_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
		       const char *context, uint64_t timeout_ms, struct lc_secret *pt,
		       struct lc_provider_reply *reply, struct lc_error *err)
{
	struct fake *f = priv;
	int r;

	(void)key_ref;
	(void)context;
	if (lc_secret_alloc(pt, blob->len))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "oom");
	memcpy(pt->p, blob->p, blob->len);
	r = step(f, reply, timeout_ms, err);
	if (r && !f->leak_on_failure)
		lc_secret_free(pt);
	return r;
}

static int fake_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			  struct lc_provider_reply *reply, struct lc_error *err)
{
	int r = step(priv, reply, timeout_ms, err);

	(void)key_ref;
	if (!r)
		reply->state = LC_KEY_DISABLED;
	return r;
}

static int destroyed;

static void fake_destroy(void *priv)
{
	(void)priv;
	destroyed++;
}

static const struct lc_provider_ops fake_ops = {
	.name = "fake",
	.wrap = fake_wrap,
	.unwrap = fake_unwrap,
	.key_state = fake_key_state,
	.destroy = fake_destroy,
};

struct env {
	struct fake f;
	struct lc_clock clock;
	struct lc_provider p;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct lc_retry_policy pol = {
		.max_attempts = 5, .base_delay_ms = 100, .max_delay_ms = 1000,
		.attempt_timeout_ms = 2000, .deadline_ms = 10000, .jitter_pct = 0,
	};

	e->clock = (struct lc_clock){ fake_now, fake_sleep, &e->f };
	e->f.now = 1000 * MS;
	lc_provider_init(&e->p, &fake_ops, &e->f);
	lc_provider_set_clock(&e->p, &e->clock);
	assert_int_equal(lc_provider_set_policy(&e->p, &pol, NULL), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	lc_provider_close(&e->p);
	free(e);
	return 0;
}

static void script(struct fake *f, unsigned int n, ...)
{
	va_list ap;

	va_start(ap, n);
	for (unsigned int i = 0; i < n; i++)
		f->script[i] = va_arg(ap, enum lc_err_class);
	va_end(ap);
	f->n_script = n;
}

static int do_unwrap(struct env *e, struct lc_provider_reply *reply, struct lc_error *err)
{
	uint8_t b[8] = "blobdata";
	struct lc_buf blob = { b, sizeof(b) };
	struct lc_secret pt;
	int r = lc_provider_unwrap(&e->p, "fake-key", &blob, "ctx", &pt, reply, err);

	if (!r) {
		assert_int_equal(pt.len, 8);
		assert_memory_equal(pt.p, b, 8);
		lc_secret_free(&pt);
	} else {
		assert_null(pt.p);
	}
	return r;
}

static void test_success_first_time(void **state)
{
	struct env *e = *state;
	struct lc_provider_reply reply;
	struct lc_provider_counters c;
	struct lc_error err = { 0 };

	e->f.attempt_cost_ms = 7;
	assert_int_equal(do_unwrap(e, &reply, &err), 0);
	assert_int_equal(reply.attempts, 1);
	assert_string_equal(reply.request_id, "req-1");
	assert_string_equal(reply.key_id, "fake-key");
	assert_string_equal(reply.key_version, "v1");
	assert_int_equal(reply.latency_us, 7000);
	assert_int_equal(e->f.timeouts[0], 2000);
	lc_provider_counters(&e->p, &c);
	assert_int_equal(c.unwrap, 1);
	assert_int_equal(c.wrap, 0);
	assert_int_equal(c.retries, 0);
	assert_int_equal(c.failures, 0);
	assert_int_equal(e->f.n_sleeps, 0);
}

static void test_transient_then_success(void **state)
{
	struct env *e = *state;
	struct lc_provider_reply reply;
	struct lc_provider_counters c;
	struct lc_error err = { 0 };

	script(&e->f, 3, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_NONE);
	assert_int_equal(do_unwrap(e, &reply, &err), 0);
	assert_int_equal(err.code, 0);
	assert_int_equal(reply.attempts, 3);
	assert_string_equal(reply.request_id, "req-3");
	assert_int_equal(e->f.n_sleeps, 2);
	assert_int_equal(e->f.sleeps[0], 100);
	assert_int_equal(e->f.sleeps[1], 200);
	lc_provider_counters(&e->p, &c);
	assert_int_equal(c.unwrap, 3);	/* every attempt is a KMS call */
	assert_int_equal(c.retries, 2);
	assert_int_equal(c.failures, 0);
}

/* A KMS's Retry-After hint lengthens the delay, never beyond max_delay_ms;
 * a hint shorter than the backoff does not shorten it. */
static void test_retry_after_hint(void **state)
{
	struct env *e = *state;
	struct lc_provider_reply reply;
	struct lc_error err = { 0 };

	script(&e->f, 4, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_NONE);
	e->f.retry_after[0] = 700;	/* > backoff 100 */
	e->f.retry_after[1] = 60000;	/* capped at max_delay_ms 1000 */
	e->f.retry_after[2] = 10;	/* < backoff 400: backoff stands */
	assert_int_equal(do_unwrap(e, &reply, &err), 0);
	assert_int_equal(reply.attempts, 4);
	assert_int_equal(e->f.n_sleeps, 3);
	assert_int_equal(e->f.sleeps[0], 700);
	assert_int_equal(e->f.sleeps[1], 1000);
	assert_int_equal(e->f.sleeps[2], 400);
}

static void test_denied_not_retried(void **state)
{
	struct env *e = *state;
	struct lc_provider_reply reply;
	struct lc_error err = { 0 };

	script(&e->f, 1, LC_ERRC_DENIED);
	e->f.codes[0] = -EKEYREVOKED;
	assert_int_equal(do_unwrap(e, &reply, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_string_equal(err.msg, "fake failure 1 (denied)");
	assert_int_equal(e->f.calls, 1);
	assert_int_equal(e->f.n_sleeps, 0);
	assert_int_equal(reply.attempts, 1);
	assert_string_equal(reply.request_id, "req-1");	/* audit gets it */
}

static void test_other_classes_not_retried(void **state)
{
	static const enum lc_err_class cls[] = { LC_ERRC_MISCONFIG, LC_ERRC_INVALID,
						 LC_ERRC_INTERNAL };
	struct env *e = *state;
	struct lc_error err = { 0 };

	for (size_t i = 0; i < 3; i++) {
		e->f.calls = 0;
		script(&e->f, 1, cls[i]);
		e->f.codes[0] = -EINVAL;
		assert_int_equal(do_unwrap(e, NULL, &err), -EINVAL);
		assert_int_equal(err.cls, cls[i]);
		assert_int_equal(e->f.calls, 1);
	}
	assert_int_equal(e->f.n_sleeps, 0);
}

static void test_attempts_exhausted(void **state)
{
	struct env *e = *state;
	struct lc_provider_reply reply;
	struct lc_provider_counters c;
	struct lc_error err = { 0 };

	script(&e->f, 10, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT,
	       LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT,
	       LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT, LC_ERRC_TRANSIENT);
	assert_int_equal(do_unwrap(e, &reply, &err), -EAGAIN);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	assert_int_equal(e->f.calls, 5);
	assert_int_equal(reply.attempts, 5);
	assert_non_null(strstr(err.msg, "fake failure 5"));
	assert_non_null(strstr(err.msg, "attempts exhausted after 5 attempts"));
	/* 100, 200, 400, 800 ms */
	assert_int_equal(e->f.n_sleeps, 4);
	assert_int_equal(e->f.sleeps[3], 800);
	lc_provider_counters(&e->p, &c);
	assert_int_equal(c.failures, 1);
	assert_int_equal(c.retries, 4);
}

/* Slow attempts: the deadline stops retries, and each attempt's timeout
 * never reaches past it. */
static void test_deadline(void **state)
{
	struct env *e = *state;
	struct lc_retry_policy pol = {
		.max_attempts = 100, .base_delay_ms = 1000, .max_delay_ms = 1000,
		.attempt_timeout_ms = 3000, .deadline_ms = 10000, .jitter_pct = 0,
	};
	struct lc_provider_reply reply;
	struct lc_error err = { 0 };
	uint64_t start = e->f.now;

	assert_int_equal(lc_provider_set_policy(&e->p, &pol, NULL), 0);
	e->f.n_script = 64;
	for (int i = 0; i < 64; i++)
		e->f.script[i] = LC_ERRC_TRANSIENT;
	e->f.attempt_cost_ms = 2000;
	assert_int_equal(do_unwrap(e, &reply, &err), -EAGAIN);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	assert_non_null(strstr(err.msg, "deadline reached"));
	/* t=0 a1 (2 s) sleep 1 s, t=3 a2, sleep, t=6 a3, sleep, t=9 a4 -> t=11 */
	assert_int_equal(e->f.calls, 4);
	assert_int_equal(e->f.timeouts[0], 3000);
	assert_int_equal(e->f.timeouts[3], 1000);	/* only what is left */
	assert_true(e->f.now - start <= 11000 * MS);
	assert_int_equal(reply.latency_us, 11000000);
}

static void test_backoff_and_jitter(void **state)
{
	struct env *e = *state;
	struct lc_retry_policy pol = {
		.max_attempts = 8, .base_delay_ms = 100, .max_delay_ms = 1000,
		.attempt_timeout_ms = 0, .deadline_ms = 0, .jitter_pct = 50,
	};
	static const uint64_t expect[] = { 0, 0, 100, 200, 400, 800, 1000, 1000 };
	struct lc_error err = { 0 };

	for (unsigned int a = 2; a < 8; a++)
		assert_int_equal(lc_retry_delay_ms(&pol, a), expect[a]);
	assert_int_equal(lc_provider_set_policy(&e->p, &pol, NULL), 0);
	e->f.n_script = 8;
	for (int i = 0; i < 8; i++)
		e->f.script[i] = LC_ERRC_TRANSIENT;
	assert_int_equal(do_unwrap(e, NULL, &err), -EAGAIN);
	assert_int_equal(e->f.n_sleeps, 7);
	for (unsigned int i = 0; i < 7; i++) {
		uint64_t d = lc_retry_delay_ms(&pol, i + 2);

		assert_true(e->f.sleeps[i] <= d);
		assert_true(e->f.sleeps[i] >= d / 2);
	}
	assert_int_equal(e->f.timeouts[0], 0);	/* no limits: none passed */
}

static void test_policy_validation(void **state)
{
	struct env *e = *state;
	struct lc_retry_policy pol = LC_RETRY_POLICY_DEFAULT;
	struct lc_error err = { 0 };

	pol.max_attempts = 0;
	assert_int_equal(lc_provider_set_policy(&e->p, &pol, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	pol.max_attempts = 3;
	pol.jitter_pct = 101;
	assert_int_equal(lc_provider_set_policy(&e->p, &pol, &err), -EINVAL);
	pol.jitter_pct = 10;
	pol.max_delay_ms = pol.base_delay_ms - 1;
	assert_int_equal(lc_provider_set_policy(&e->p, &pol, &err), -EINVAL);
}

/* A provider that fails without a class is a bug: INTERNAL, not retried. */
static void test_classless_failure(void **state)
{
	struct env *e = *state;
	struct lc_error err = { 0 };

	script(&e->f, 1, LC_ERRC_TRANSIENT);
	e->f.no_class = 1;
	assert_int_equal(do_unwrap(e, NULL, &err), -EIO);
	assert_int_equal(err.cls, LC_ERRC_INTERNAL);
	assert_int_equal(e->f.calls, 1);
}

/* Output left behind by a failed attempt is released (ASan checks). */
static void test_failed_attempt_output_dropped(void **state)
{
	struct env *e = *state;
	struct lc_secret pt = { 0 };
	uint8_t k[32] = { 1 };
	struct lc_buf blob;
	struct lc_error err = { 0 };

	e->f.leak_on_failure = 1;
	script(&e->f, 2, LC_ERRC_TRANSIENT, LC_ERRC_DENIED);
	assert_int_equal(lc_secret_alloc(&pt, sizeof(k)), 0);
	memcpy(pt.p, k, sizeof(k));
	assert_int_equal(lc_provider_wrap(&e->p, "fake-key", &pt, "ctx", &blob, NULL, &err), -EAGAIN);
	assert_null(blob.p);
	assert_int_equal(blob.len, 0);
	lc_secret_free(&pt);
	e->f.calls = 0;
	assert_int_equal(do_unwrap(e, NULL, &err), -EAGAIN);
}

static void test_wrap_key_state_counters(void **state)
{
	struct env *e = *state;
	struct lc_provider_counters c;
	struct lc_provider_reply reply;
	struct lc_secret pt;
	struct lc_buf blob;
	struct lc_error err = { 0 };

	assert_int_equal(lc_secret_alloc(&pt, 16), 0);
	assert_int_equal(lc_provider_wrap(&e->p, "fake-key", &pt, "ctx", &blob, &reply, &err), 0);
	assert_int_equal(blob.len, 16);
	free(blob.p);
	lc_secret_free(&pt);
	assert_int_equal(lc_provider_key_state(&e->p, "fake-key", &reply, &err), 0);
	assert_int_equal(reply.state, LC_KEY_DISABLED);
	assert_string_equal(lc_key_state_name(reply.state), "disabled");
	assert_int_equal(lc_provider_key_state(&e->p, "", &reply, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	lc_provider_counters(&e->p, &c);
	assert_int_equal(c.wrap, 1);
	assert_int_equal(c.key_state, 1);
	assert_int_equal(c.unwrap, 0);
	assert_int_equal(c.calls, 2);		/* the refused empty reference is no call */
	assert_int_equal(c.denied + c.transient + c.misconfig + c.invalid, 0);
	lc_provider_counters_reset(&e->p);
	lc_provider_counters(&e->p, &c);
	assert_int_equal(c.wrap + c.key_state + c.calls + c.latency_us_sum, 0);
}

/* status: latency of whole calls (retries and sleeps included) and
 * failures by class. */
static void test_latency_and_classes(void **state)
{
	struct env *e = *state;
	struct lc_provider_counters c;
	struct lc_error err = { 0 };

	e->f.attempt_cost_ms = 30;
	e->f.script[0] = LC_ERRC_TRANSIENT;	/* call 1: 30 + backoff + 30 ms */
	e->f.script[1] = LC_ERRC_NONE;
	e->f.script[2] = LC_ERRC_DENIED;	/* call 2: 30 ms */
	e->f.script[3] = LC_ERRC_INVALID;	/* call 3: 30 ms */
	e->f.n_script = 4;
	assert_int_equal(lc_provider_key_state(&e->p, "fake-key", NULL, &err), 0);
	assert_true(lc_provider_key_state(&e->p, "fake-key", NULL, &err) < 0);
	assert_true(lc_provider_key_state(&e->p, "fake-key", NULL, &err) < 0);
	lc_provider_counters(&e->p, &c);
	assert_int_equal(c.calls, 3);
	assert_int_equal(c.denied, 1);
	assert_int_equal(c.invalid, 1);
	assert_int_equal(c.transient, 0);	/* retried to success: not a failure */
	assert_int_equal(c.failures, 2);
	assert_int_equal(c.latency_us_max, (60 + e->f.sleeps[0]) * 1000);
	assert_int_equal(c.latency_us_sum, (60 + e->f.sleeps[0] + 30 + 30) * 1000);
}

static void test_close_destroys(void **state)
{
	struct lc_provider p;
	int before = destroyed;

	(void)state;
	lc_provider_init(&p, &fake_ops, NULL);
	lc_provider_close(&p);
	assert_int_equal(destroyed, before + 1);
	assert_null(p.ops);
	lc_provider_close(&p);	/* idempotent */
	assert_int_equal(destroyed, before + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_success_first_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transient_then_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denied_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_classes_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_and_jitter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_classless_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_attempt_output_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_latency_and_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_hint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap_key_state_counters, setup, teardown),
		cmocka_unit_test(test_close_destroys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
