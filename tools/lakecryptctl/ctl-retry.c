// SPDX-License-Identifier: GPL-2.0
/*
 * lakecryptctl open / cache: retry until --timeout runs out.
 *
 * The units lakecrypttab(5) makes run `lakecryptctl --timeout T open ...`
 * (or cache) once, as a oneshot without Restart=.  At boot the agent may
 * not listen yet or be restarting (its socket missing: ENOENT, or left
 * behind by RuntimeDirectoryPreserve=: ECONNREFUSED), and the KMS may be
 * unreachable for a while (the agent answers class "transient" at its own
 * KMS deadline).  Failing at once on those would leave the volume closed
 * for the whole boot, even with timeout=0 ("no limit").  So these two
 * commands try again, with exponential backoff (LC_CTL_RETRY_FIRST_MS
 * doubling up to LC_CTL_RETRY_MAX_MS), for as long as --timeout allows
 * (0: forever), and say every retry on stderr.  An agent that hangs up
 * in the middle of the request (restarted, crashed) is tried again too.
 * Every other error fails at once: a denial, a refusal, an invalid
 * request, a permission error on the socket, a malformed reply.
 *
 * An open is idempotent in the agent (Documentation/lakecrypttab.md: the
 * volume already open under NAME with the same workspace and device
 * succeeds as already_open), and neither failure retried here opened
 * anything (a hang-up may have: the open recorded itself before its
 * mapping existed, so the restarted agent has adopted the mapping, and
 * the retry finds it open, or, for an open that had not finished, wiped
 * and removed it, and the retry opens it again: Documentation/
 * lakecrypt-agent.md, "Restart"), so a retry cannot open a volume twice.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"

bool lc_ctl_op_retries(const char *op)
{
	return op && (!strcmp(op, "volume.open") || !strcmp(op, "cache.open"));
}

bool lc_ctl_connect_retryable(int code, const char *path)
{
	struct stat st;

	if (code == -ENOENT)
		return true;
	/* connect() to a file that is no socket also says ECONNREFUSED: a
	 * wrong --socket, which waiting will not mend. */
	return code == -ECONNREFUSED && path && stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

bool lc_ctl_class_retryable(const char *cls)
{
	return cls && !strcmp(cls, "transient");
}

int lc_ctl_backoff_ms(unsigned int attempt)
{
	int ms = LC_CTL_RETRY_FIRST_MS;

	for (unsigned int i = 1; i < attempt && ms < LC_CTL_RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < LC_CTL_RETRY_MAX_MS ? ms : LC_CTL_RETRY_MAX_MS;
}

static int64_t real_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct lc_ctl_clock lc_ctl_retry_clock = { real_now_ms, real_sleep_ms };

int lc_ctl_retry(struct lc_ctl_cmd *cmd, lc_ctl_attempt_fn attempt, void *ctx,
		 struct lc_ctl_retry *st, FILE *diag)
{
	const struct lc_ctl_clock *clk = &lc_ctl_retry_clock;
	const int total_ms = cmd->timeout_ms;	/* < 0: no limit */
	const int64_t deadline = total_ms < 0 ? 0 : clk->now_ms() + total_ms;
	/* the time the last attempt keeps to connect, ask and be answered:
	 * a quarter of --timeout, from LC_CTL_RETRY_LAST_MS to 2 s */
	const int last_ms = total_ms / 4 < LC_CTL_RETRY_LAST_MS ? LC_CTL_RETRY_LAST_MS :
			    total_ms / 4 > 2000 ? 2000 : total_ms / 4;
	int rc;

	unsigned int n;

	for (n = 1;; n++) {
		int64_t left = total_ms < 0 ? -1 : deadline - clk->now_ms();
		int delay;

		/* Each attempt may wait for the agent only for what is left. */
		if (total_ms >= 0)
			cmd->timeout_ms = left > 1 ? (int)left : 1;
		st->again = false;
		rc = attempt(cmd, st, ctx);
		if (rc == LC_CTL_EXIT_OK || !st->again)
			break;
		delay = lc_ctl_backoff_ms(n);
		left = total_ms < 0 ? -1 : deadline - clk->now_ms();
		/* The last attempt comes last_ms before the end, whatever the
		 * backoff says: an agent that comes up late in the window is
		 * still found, and has time to answer. */
		if (total_ms >= 0 && left > last_ms && delay > left - last_ms)
			delay = (int)(left - last_ms);
		if (total_ms >= 0 && left <= last_ms) {
			fprintf(diag, "%s: %s: giving up after %u attempt%s: --timeout %d.%03d s runs out\n",
				LC_CTL_PROG, cmd->topic, n, n == 1 ? "" : "s", total_ms / 1000,
				total_ms % 1000);
			break;
		}
		/* A unit that waits long (timeout=0, an agent that never comes)
		 * says every retry at first, then every LC_CTL_RETRY_QUIET-th:
		 * a few lines a minute per volume, not hundreds. */
		if (n <= LC_CTL_RETRY_QUIET || n % LC_CTL_RETRY_QUIET == 0) {
			fprintf(diag, "%s: %s: attempt %u failed; retrying in %d.%03d s (%s)%s\n",
				LC_CTL_PROG, cmd->topic, n, delay / 1000, delay % 1000,
				total_ms < 0 ? "no time limit: --timeout 0" : "until --timeout runs out",
				n == LC_CTL_RETRY_QUIET ? "; from now on every " LC_CTL_STR(LC_CTL_RETRY_QUIET) "th retry is said" : "");
			fflush(diag);
		}
		clk->sleep_ms(delay);
	}
	st->attempts = n;
	cmd->timeout_ms = total_ms;
	return rc;
}
