/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Revocation confirmation: when do KMS answers about one CMK amount to a
 * revocation?  A pure state machine over observations and a clock, so the
 * rules are tested with a fake clock (struct lc_clock).
 *
 * Observations (one per probe: a watcher check, `lakecryptctl check`, or
 * the probe an open's denial triggers; an open's success is only
 * lc_revconf_answered(); one
 * tracker per CMK for its state and one per key configuration on it for
 * its canary, agent/daemon/probe.c):
 *   OK       authoritative success: the key is enabled and the canary
 *            unwrapped
 *   DENIED   authoritative denial: the provider's error class DENIED
 *            (access denied by policy or grant, key disabled, pending
 *            deletion, destroyed), or a key state of disabled, pending
 *            deletion or destroyed
 *   UNKNOWN  no authoritative answer: unreachable, timeout, throttling,
 *            5xx, a state the provider reports as unknown (AWS
 *            "Unavailable", "PendingImport", "Updating"), a misconfigured
 *            or corrupt probe
 *
 * Rules (the [revocation] settings of lakecrypt-agent.md):
 *   - A denial is confirmed when confirm_denials denials have been seen
 *     within confirm_window_ms of each other (the first and the last of
 *     them at most that far apart) with no OK between them.  Verdict
 *     REVOKE.  With confirm_denials = 1 the first denial kills.
 *   - Denials are spaced: a denial counts only when it comes at least
 *     min_gap_ms after the last one counted (the first always counts).
 *     One closer is seen (last_denied_ns, uncounted, verdict PENDING) but
 *     not counted, whatever asked: two on-demand checks seconds apart,
 *     or a check just before the watcher's tick, are one denial.  So a
 *     confirmation spans at least (confirm_denials - 1) * min_gap_ms: the
 *     denial has to last.  min_gap_ms = 0: no spacing.
 *   - OK forgets every denial counted so far.  UNKNOWN neither counts nor
 *     forgets: a KMS that flaps between a denial and a timeout is still
 *     denying.
 *   - Denials older than confirm_window_ms before the newest one are
 *     dropped (a stray 403 last week does not add to one today).
 *   - UNKNOWN never kills, unless fail_closed_after_ms > 0 (off by
 *     default): then when no authoritative answer (OK or DENIED) has come
 *     for fail_closed_after_ms since the first UNKNOWN after the last
 *     authoritative answer, the verdict is FAIL_CLOSED.
 *   - After REVOKE or FAIL_CLOSED the tracker is spent: later
 *     observations change nothing until lc_revconf_reset().
 */
#ifndef LC_REVCONF_H
#define LC_REVCONF_H

#include <stdbool.h>
#include <stdint.h>

#include "lc-error.h"
#include "provider.h"

#define LC_REVCONF_MAX_DENIALS	16

struct lc_revconf_policy {
	unsigned int confirm_denials;	/* 1..LC_REVCONF_MAX_DENIALS */
	uint64_t confirm_window_ms;	/* >= 1 */
	uint64_t fail_closed_after_ms;	/* 0: never */
	uint64_t min_gap_ms;		/* spacing of counted denials; 0: none */
};

enum lc_probe_outcome {
	LC_PROBE_OK,
	LC_PROBE_DENIED,
	LC_PROBE_UNKNOWN,
};

enum lc_revconf_verdict {
	LC_VERDICT_KEEP,	/* nothing to do */
	LC_VERDICT_PENDING,	/* a denial counted, not confirmed yet */
	LC_VERDICT_REVOKE,	/* confirmed denial: pull the kill switch */
	LC_VERDICT_FAIL_CLOSED,	/* the operator's outage limit passed */
};

struct lc_revconf {
	uint64_t denials_ns[LC_REVCONF_MAX_DENIALS];	/* oldest first */
	unsigned int ndenials;
	uint64_t outage_since_ns;	/* 0: none */
	uint64_t last_ok_ns;		/* 0: never */
	uint64_t last_denied_ns;	/* 0: never */
	uint64_t observations;
	uint64_t uncounted;		/* denials seen closer than min_gap_ms */
	bool last_counted;		/* was the last denial counted? */
	bool spent;
	enum lc_revconf_verdict spent_by;
};

const char *lc_probe_outcome_name(enum lc_probe_outcome o);	/* "ok", "denied", "unknown" */
const char *lc_revconf_verdict_name(enum lc_revconf_verdict v);

/* 0, or -EINVAL (MISCONFIG) for a policy out of range, or one whose
 * spacing makes confirmation impossible ((confirm_denials - 1) *
 * min_gap_ms > confirm_window_ms). */
int lc_revconf_policy_check(const struct lc_revconf_policy *p, struct lc_error *err);

/* The spacing of counted denials (min_gap_ms) for the agent's [revocation]
 * settings, in ms: half of @watch_interval_s (s), and at most
 * @confirm_window_s (s) / @confirm_denials when @confirm_denials > 1, so
 * that confirm_denials spaced denials always fit in the window (the
 * agent's agent_min_gap_ms(), agent/daemon/probe.c). */
uint64_t lc_revconf_min_gap_ms(unsigned int watch_interval_s, unsigned int confirm_denials,
			       unsigned int confirm_window_s);

void lc_revconf_reset(struct lc_revconf *t);

/* Record observation @o, made now by @clock (NULL: CLOCK_MONOTONIC).  A
 * time earlier than the tracker's latest observation is taken as that
 * latest (overlapping probes dated by their start): a denial closer than
 * min_gap_ms, never a wrapped difference. */
enum lc_revconf_verdict lc_revconf_observe(struct lc_revconf *t, const struct lc_revconf_policy *p,
					   enum lc_probe_outcome o, const struct lc_clock *clock);

/*
 * The KMS answered a use of the CMK other than a probe (an open's or a
 * cache's successful unwrap): the outage, if any, is over, and a spent
 * tracker (the CMK revoked, now working again) starts over.  It is not an
 * OK: it forgets no denial, because it proves only the blob it unwrapped
 * (another key version, or the canary's key-policy statement, may still
 * be denied), and a workload that opens volumes every interval must not
 * hold a revocation off for ever.
 */
void lc_revconf_answered(struct lc_revconf *t);

#endif /* LC_REVCONF_H */
