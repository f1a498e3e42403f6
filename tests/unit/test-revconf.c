// SPDX-License-Identifier: GPL-2.0
/*
 * Revocation confirmation with a fake clock: what kills, what never does,
 * what resets the count (revconf.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "revconf.h"

static uint64_t fake_ns;

static uint64_t fake_now(void *arg)
{
	(void)arg;
	return fake_ns;
}

static void fake_sleep(void *arg, uint64_t ns)
{
	(void)arg;
	fake_ns += ns;
}

static const struct lc_clock fake = { fake_now, fake_sleep, NULL };

#define S(x) ((uint64_t)(x) * 1000000000ULL)

static enum lc_revconf_verdict at(struct lc_revconf *t, const struct lc_revconf_policy *p,
				  uint64_t sec, enum lc_probe_outcome o)
{
	fake_ns = S(sec);
	return lc_revconf_observe(t, p, o, &fake);
}

static void test_policy(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 0, .confirm_window_ms = 1000 };
	struct lc_error e;

	(void)state;
	assert_int_equal(lc_revconf_policy_check(&p, &e), -EINVAL);
	p.confirm_denials = 17;
	assert_int_equal(lc_revconf_policy_check(&p, &e), -EINVAL);
	p.confirm_denials = 3;
	p.confirm_window_ms = 0;
	assert_int_equal(lc_revconf_policy_check(&p, &e), -EINVAL);
	p.confirm_window_ms = 1;
	assert_int_equal(lc_revconf_policy_check(&p, &e), 0);
	/* three denials 30 s apart need a window of 60 s at least */
	p.min_gap_ms = 30000;
	p.confirm_window_ms = 59999;
	assert_int_equal(lc_revconf_policy_check(&p, &e), -EINVAL);
	p.confirm_window_ms = 60000;
	assert_int_equal(lc_revconf_policy_check(&p, &e), 0);
}

/* Denials closer than min_gap to the last counted one are seen but not
 * counted (two checks a few seconds apart at 3 a.m.); a confirmation
 * spans at least (confirm_denials - 1) * min_gap. */
static void test_spacing(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 2, .confirm_window_ms = 300000,
				       .min_gap_ms = 30000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 1000, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_true(t.last_counted);
	for (unsigned int i = 1; i < 30; i++) {
		assert_int_equal(at(&t, &p, 1000 + i, LC_PROBE_DENIED), LC_VERDICT_PENDING);
		assert_false(t.last_counted);
	}
	assert_int_equal(t.ndenials, 1);
	assert_int_equal(t.uncounted, 29);
	assert_int_equal(t.last_denied_ns, S(1029));
	/* min_gap after the counted one: confirmed */
	assert_int_equal(at(&t, &p, 1030, LC_PROBE_DENIED), LC_VERDICT_REVOKE);

	/* an uncounted denial is still an authoritative answer: it ends an outage */
	p.fail_closed_after_ms = 100000;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 0, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 1, LC_PROBE_UNKNOWN), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 2, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(t.outage_since_ns, 0);
	assert_int_equal(at(&t, &p, 101, LC_PROBE_UNKNOWN), LC_VERDICT_PENDING);
	/* and OK forgets the counted one: the next denial starts over */
	assert_int_equal(at(&t, &p, 102, LC_PROBE_OK), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 103, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_true(t.last_counted);
	assert_int_equal(t.ndenials, 1);
}

/* confirm_denials denials within the window kill; fewer do not. */
static void test_confirmed(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 3, .confirm_window_ms = 60000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 100, LC_PROBE_OK), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 110, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 120, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 130, LC_PROBE_DENIED), LC_VERDICT_REVOKE);
	/* Spent: nothing changes the verdict any more. */
	assert_int_equal(at(&t, &p, 140, LC_PROBE_OK), LC_VERDICT_REVOKE);

	/* One denial with confirm_denials = 1 kills at once. */
	p.confirm_denials = 1;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 1, LC_PROBE_DENIED), LC_VERDICT_REVOKE);
}

/* A stray denial followed by a success: the count starts over. */
static void test_success_resets(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 2, .confirm_window_ms = 60000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	for (unsigned int i = 0; i < 50; i++) {
		assert_int_equal(at(&t, &p, 10 * i, LC_PROBE_DENIED), LC_VERDICT_PENDING);
		assert_int_equal(at(&t, &p, 10 * i + 5, LC_PROBE_OK), LC_VERDICT_KEEP);
	}
	assert_int_equal(t.ndenials, 0);
}

/* Denials further apart than the window never add up. */
static void test_window(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 2, .confirm_window_ms = 30000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 0, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 31, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 62, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	/* Exactly the window apart still counts. */
	assert_int_equal(at(&t, &p, 92, LC_PROBE_DENIED), LC_VERDICT_REVOKE);
}

/* Unreachable, throttled, unknown states: never a kill, however long,
 * and they do not reset denials either. */
static void test_unknown(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 2, .confirm_window_ms = 60000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 0, LC_PROBE_OK), LC_VERDICT_KEEP);
	for (unsigned int i = 1; i <= 100000; i++)
		assert_int_equal(at(&t, &p, i * 60, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	/* Transient errors mixed with successes. */
	for (unsigned int i = 0; i < 1000; i++)
		assert_int_equal(at(&t, &p, 7000000 + i,
				     i % 3 ? LC_PROBE_UNKNOWN : LC_PROBE_OK), LC_VERDICT_KEEP);
	/* A denial, an outage, a denial: confirmed (the outage is not an OK). */
	assert_int_equal(at(&t, &p, 8000000, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 8000010, LC_PROBE_UNKNOWN), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 8000020, LC_PROBE_DENIED), LC_VERDICT_REVOKE);
}

/* fail_closed_after: an outage that long kills; an answer in between
 * (OK or a denial) starts the outage clock over. */
static void test_fail_closed(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 3, .confirm_window_ms = 60000,
				       .fail_closed_after_ms = 600000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 1000, LC_PROBE_OK), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 1010, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 1500, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 1600, LC_PROBE_OK), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 1700, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 2200, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 2210, LC_PROBE_UNKNOWN), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 2809, LC_PROBE_UNKNOWN), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 2810, LC_PROBE_UNKNOWN), LC_VERDICT_FAIL_CLOSED);
	assert_int_equal(at(&t, &p, 2811, LC_PROBE_OK), LC_VERDICT_FAIL_CLOSED);
}

/* Observations dated earlier than the tracker's latest (the agent dates a
 * probe by its start; a check and the watcher's probe may overlap): never
 * a difference that wraps.  An earlier outage reading does not fail closed
 * at once; an earlier denial is one too close to the last, not a spaced
 * one that confirms. */
static void test_out_of_order(void **state)
{
	struct lc_revconf_policy p = { .confirm_denials = 2, .confirm_window_ms = 300000,
				       .fail_closed_after_ms = 600000, .min_gap_ms = 30000 };
	struct lc_revconf t;

	(void)state;
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 1000, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 990, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	assert_int_equal(at(&t, &p, 1100, LC_PROBE_UNKNOWN), LC_VERDICT_KEEP);
	lc_revconf_reset(&t);
	assert_int_equal(at(&t, &p, 2000, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(at(&t, &p, 1995, LC_PROBE_DENIED), LC_VERDICT_PENDING);
	assert_int_equal(t.ndenials, 1);
	assert_int_equal(t.uncounted, 1);
	assert_int_equal(at(&t, &p, 1990, LC_PROBE_UNKNOWN), LC_VERDICT_PENDING);
	/* a gap after the first: confirmed */
	assert_int_equal(at(&t, &p, 2030, LC_PROBE_DENIED), LC_VERDICT_REVOKE);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(lc_probe_outcome_name(LC_PROBE_DENIED), "denied");
	assert_string_equal(lc_revconf_verdict_name(LC_VERDICT_FAIL_CLOSED), "fail-closed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_confirmed),
		cmocka_unit_test(test_spacing),
		cmocka_unit_test(test_success_resets),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_fail_closed),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
