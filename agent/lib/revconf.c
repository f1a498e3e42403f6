// SPDX-License-Identifier: GPL-2.0
/*
 * Revocation confirmation (revconf.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "revconf.h"

const char *lc_probe_outcome_name(enum lc_probe_outcome o)
{
	switch (o) {
	case LC_PROBE_OK:
		return "ok";
	case LC_PROBE_DENIED:
		return "denied";
	case LC_PROBE_UNKNOWN:
		break;
	}
	return "unknown";
}

const char *lc_revconf_verdict_name(enum lc_revconf_verdict v)
{
	switch (v) {
	case LC_VERDICT_PENDING:
		return "pending";
	case LC_VERDICT_REVOKE:
		return "revoke";
	case LC_VERDICT_FAIL_CLOSED:
		return "fail-closed";
	case LC_VERDICT_KEEP:
		break;
	}
	return "keep";
}

int lc_revconf_policy_check(const struct lc_revconf_policy *p, struct lc_error *err)
{
	if (p->confirm_denials < 1 || p->confirm_denials > LC_REVCONF_MAX_DENIALS)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "confirm_denials %u is out of range: expected 1 to %d", p->confirm_denials,
			      LC_REVCONF_MAX_DENIALS);
	if (!p->confirm_window_ms)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "confirm_window must be at least 1 ms");
	if ((uint64_t)(p->confirm_denials - 1) * p->min_gap_ms > p->confirm_window_ms)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "%u denials spaced %" PRIu64 " ms apart never fit in a confirm window of %" PRIu64 " ms",
			      p->confirm_denials, p->min_gap_ms, p->confirm_window_ms);
	return 0;
}

uint64_t lc_revconf_min_gap_ms(unsigned int watch_interval_s, unsigned int confirm_denials,
			       unsigned int confirm_window_s)
{
	uint64_t gap = (uint64_t)watch_interval_s * 500;
	uint64_t fit = confirm_denials > 1 ? (uint64_t)confirm_window_s * 1000 / confirm_denials : gap;

	return gap < fit ? gap : fit;
}

void lc_revconf_reset(struct lc_revconf *t)
{
	memset(t, 0, sizeof(*t));
}

enum lc_revconf_verdict lc_revconf_observe(struct lc_revconf *t, const struct lc_revconf_policy *p,
					   enum lc_probe_outcome o, const struct lc_clock *clock)
{
	uint64_t now_ns;
	uint64_t window_ns = p->confirm_window_ms * 1000000ULL;
	unsigned int need = p->confirm_denials;

	if (clock) {
		now_ns = clock->now_ns(clock->arg);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	}
	/* Dated earlier than what the tracker has seen (the agent dates a
	 * probe by its start, and two probes may overlap): taken as the
	 * latest, never as a difference that wraps (an outage of 2^64 ns
	 * would fail closed at once, a denial would count as spaced). */
	if (now_ns < t->last_ok_ns)
		now_ns = t->last_ok_ns;
	if (now_ns < t->last_denied_ns)
		now_ns = t->last_denied_ns;
	if (now_ns < t->outage_since_ns)
		now_ns = t->outage_since_ns;
	if (need < 1)
		need = 1;
	if (need > LC_REVCONF_MAX_DENIALS)
		need = LC_REVCONF_MAX_DENIALS;
	if (t->spent)
		return t->spent_by;
	t->observations++;
	switch (o) {
	case LC_PROBE_OK:
		t->ndenials = 0;
		t->outage_since_ns = 0;
		t->last_ok_ns = now_ns;
		return LC_VERDICT_KEEP;
	case LC_PROBE_DENIED: {
		unsigned int keep = 0;

		t->outage_since_ns = 0;
		t->last_denied_ns = now_ns;
		/* Too close to the last counted one: seen, not counted. */
		if (t->ndenials && p->min_gap_ms &&
		    now_ns - t->denials_ns[t->ndenials - 1] < p->min_gap_ms * 1000000ULL) {
			t->uncounted++;
			t->last_counted = false;
			return LC_VERDICT_PENDING;
		}
		t->last_counted = true;
		/* Drop denials more than the window before this one. */
		for (unsigned int i = 0; i < t->ndenials; i++)
			if (now_ns - t->denials_ns[i] <= window_ns)
				t->denials_ns[keep++] = t->denials_ns[i];
		t->ndenials = keep;
		if (t->ndenials == LC_REVCONF_MAX_DENIALS) {
			memmove(&t->denials_ns[0], &t->denials_ns[1],
				(LC_REVCONF_MAX_DENIALS - 1) * sizeof(t->denials_ns[0]));
			t->ndenials--;
		}
		t->denials_ns[t->ndenials++] = now_ns;
		if (t->ndenials >= need) {
			t->spent = true;
			t->spent_by = LC_VERDICT_REVOKE;
			return LC_VERDICT_REVOKE;
		}
		return LC_VERDICT_PENDING;
	}
	case LC_PROBE_UNKNOWN:
		break;
	}
	if (!t->outage_since_ns)
		t->outage_since_ns = now_ns ? now_ns : 1;
	if (p->fail_closed_after_ms &&
	    now_ns - t->outage_since_ns >= p->fail_closed_after_ms * 1000000ULL) {
		t->spent = true;
		t->spent_by = LC_VERDICT_FAIL_CLOSED;
		return LC_VERDICT_FAIL_CLOSED;
	}
	return t->ndenials ? LC_VERDICT_PENDING : LC_VERDICT_KEEP;
}

void lc_revconf_answered(struct lc_revconf *t)
{
	if (t->spent)
		lc_revconf_reset(t);
	else
		t->outage_since_ns = 0;
}
