// SPDX-License-Identifier: GPL-2.0
/*
 * The provider call layer: the one place where KMS calls are retried
 * (TRANSIENT failures only, exponential backoff with jitter, bounded by
 * attempts and an overall deadline), timed and counted.  Providers make
 * single attempts; the agent only ever calls lc_provider_*().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "provider.h"

const char *lc_key_state_name(enum lc_key_state st)
{
	switch (st) {
	case LC_KEY_ENABLED:
		return "enabled";
	case LC_KEY_DISABLED:
		return "disabled";
	case LC_KEY_PENDING_DELETION:
		return "pending_deletion";
	case LC_KEY_DESTROYED:
		return "destroyed";
	case LC_KEY_UNKNOWN:
		break;
	}
	return "unknown";
}

static uint64_t real_now_ns(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void real_sleep_ns(void *arg, uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000u, .tv_nsec = ns % 1000000000u };

	(void)arg;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static const struct lc_clock real_clock = { real_now_ns, real_sleep_ns, NULL };

void lc_provider_init(struct lc_provider *p, const struct lc_provider_ops *ops, void *priv)
{
	static const struct lc_retry_policy def = LC_RETRY_POLICY_DEFAULT;

	memset(p, 0, sizeof(*p));
	p->ops = ops;
	p->priv = priv;
	p->policy = def;
	p->clock = &real_clock;
}

void lc_provider_close(struct lc_provider *p)
{
	if (!p)
		return;
	if (p->ops && p->ops->destroy)
		p->ops->destroy(p->priv);
	memset(p, 0, sizeof(*p));
}

int lc_provider_set_policy(struct lc_provider *p, const struct lc_retry_policy *pol,
			   struct lc_error *err)
{
	if (pol->max_attempts < 1 || pol->max_attempts > 100)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "retry policy: max attempts %u out of range: expected 1 to 100",
			      pol->max_attempts);
	if (pol->jitter_pct > 100)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "retry policy: jitter %u%% out of range: expected 0 to 100",
			      pol->jitter_pct);
	if (pol->max_delay_ms < pol->base_delay_ms)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "retry policy: max delay %" PRIu64 " ms is below the base delay %" PRIu64 " ms",
			      pol->max_delay_ms, pol->base_delay_ms);
	p->policy = *pol;
	return 0;
}

void lc_provider_set_clock(struct lc_provider *p, const struct lc_clock *clock)
{
	p->clock = clock ? clock : &real_clock;
}

void lc_provider_counters(const struct lc_provider *p, struct lc_provider_counters *c)
{
	c->wrap = atomic_load_explicit(&p->n_wrap, memory_order_relaxed);
	c->unwrap = atomic_load_explicit(&p->n_unwrap, memory_order_relaxed);
	c->key_state = atomic_load_explicit(&p->n_key_state, memory_order_relaxed);
	c->retries = atomic_load_explicit(&p->n_retries, memory_order_relaxed);
	c->failures = atomic_load_explicit(&p->n_failures, memory_order_relaxed);
	c->calls = atomic_load_explicit(&p->n_calls, memory_order_relaxed);
	c->latency_us_sum = atomic_load_explicit(&p->lat_sum_us, memory_order_relaxed);
	c->latency_us_max = atomic_load_explicit(&p->lat_max_us, memory_order_relaxed);
	c->denied = atomic_load_explicit(&p->n_denied, memory_order_relaxed);
	c->transient = atomic_load_explicit(&p->n_transient, memory_order_relaxed);
	c->misconfig = atomic_load_explicit(&p->n_misconfig, memory_order_relaxed);
	c->invalid = atomic_load_explicit(&p->n_invalid, memory_order_relaxed);
}

void lc_provider_counters_reset(struct lc_provider *p)
{
	atomic_store(&p->n_wrap, 0);
	atomic_store(&p->n_unwrap, 0);
	atomic_store(&p->n_key_state, 0);
	atomic_store(&p->n_retries, 0);
	atomic_store(&p->n_failures, 0);
	atomic_store(&p->n_calls, 0);
	atomic_store(&p->lat_sum_us, 0);
	atomic_store(&p->lat_max_us, 0);
	atomic_store(&p->n_denied, 0);
	atomic_store(&p->n_transient, 0);
	atomic_store(&p->n_misconfig, 0);
	atomic_store(&p->n_invalid, 0);
}

/* Latency and outcome of one whole call, for status. */
static void count_call(struct lc_provider *p, uint64_t latency_us, int r, enum lc_err_class cls)
{
	uint64_t max = atomic_load_explicit(&p->lat_max_us, memory_order_relaxed);

	atomic_fetch_add_explicit(&p->n_calls, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->lat_sum_us, latency_us, memory_order_relaxed);
	while (latency_us > max &&
	       !atomic_compare_exchange_weak_explicit(&p->lat_max_us, &max, latency_us,
						      memory_order_relaxed, memory_order_relaxed))
		;
	if (!r)
		return;
	switch (cls) {
	case LC_ERRC_DENIED:
		atomic_fetch_add_explicit(&p->n_denied, 1, memory_order_relaxed);
		break;
	case LC_ERRC_TRANSIENT:
		atomic_fetch_add_explicit(&p->n_transient, 1, memory_order_relaxed);
		break;
	case LC_ERRC_MISCONFIG:
		atomic_fetch_add_explicit(&p->n_misconfig, 1, memory_order_relaxed);
		break;
	case LC_ERRC_INVALID:
		atomic_fetch_add_explicit(&p->n_invalid, 1, memory_order_relaxed);
		break;
	default:
		break;
	}
}

uint64_t lc_retry_delay_ms(const struct lc_retry_policy *pol, unsigned int attempt)
{
	uint64_t d = pol->base_delay_ms;

	for (unsigned int i = 2; i < attempt && d < pol->max_delay_ms; i++)
		d *= 2;
	return d < pol->max_delay_ms ? d : pol->max_delay_ms;
}

static uint64_t jittered(const struct lc_retry_policy *pol, uint64_t d)
{
	uint32_t r = 0;

	if (!pol->jitter_pct || !d)
		return d;
	/* Not secret: any failure leaves r = 0, the full delay. */
	(void)RAND_bytes((unsigned char *)&r, sizeof(r));
	return d - (uint64_t)((double)d * pol->jitter_pct / 100.0 * (r / 4294967296.0));
}

enum op { OP_WRAP, OP_UNWRAP, OP_KEY_STATE };

struct call {
	enum op op;
	const char *key_ref;
	const char *context;
	const struct lc_secret *pt_in;
	const struct lc_buf *blob_in;
	struct lc_buf *blob_out;
	struct lc_secret *pt_out;
};

static const char *op_name(enum op op)
{
	return op == OP_WRAP ? "wrap" : op == OP_UNWRAP ? "unwrap" : "key state";
}

static int attempt(struct lc_provider *p, struct call *c, uint64_t timeout_ms,
		   struct lc_provider_reply *reply, struct lc_error *e)
{
	const struct lc_provider_ops *ops = p->ops;

	switch (c->op) {
	case OP_WRAP:
		atomic_fetch_add_explicit(&p->n_wrap, 1, memory_order_relaxed);
		return ops->wrap(p->priv, c->key_ref, c->pt_in, c->context, timeout_ms,
				 c->blob_out, reply, e);
	case OP_UNWRAP:
		atomic_fetch_add_explicit(&p->n_unwrap, 1, memory_order_relaxed);
		return ops->unwrap(p->priv, c->key_ref, c->blob_in, c->context, timeout_ms,
				   c->pt_out, reply, e);
	case OP_KEY_STATE:
		atomic_fetch_add_explicit(&p->n_key_state, 1, memory_order_relaxed);
		return ops->key_state(p->priv, c->key_ref, timeout_ms, reply, e);
	}
	return -EINVAL;
}

/* Leave no output behind a failed attempt. */
static void drop_output(struct call *c)
{
	if (c->blob_out) {
		free(c->blob_out->p);
		c->blob_out->p = NULL;
		c->blob_out->len = 0;
	}
	if (c->pt_out)
		lc_secret_free(c->pt_out);
}

static int run(struct lc_provider *p, struct call *c, struct lc_provider_reply *reply,
	       struct lc_error *err)
{
	const struct lc_retry_policy *pol = &p->policy;
	const struct lc_clock *clk = p->clock;
	struct lc_provider_reply local;
	struct lc_error e;
	const char *why = NULL;
	uint64_t start, elapsed_ms = 0;
	unsigned int n;
	int r = -EIO;

	if (!reply)
		reply = &local;
	memset(reply, 0, sizeof(*reply));
	if (!p->ops)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "no KMS provider is configured");
	if (!c->key_ref || !*c->key_ref)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "%s: no CMK reference given", p->ops->name);

	start = clk->now_ns(clk->arg);
	for (n = 1;; n++) {
		uint64_t timeout = pol->attempt_timeout_ms;
		uint64_t delay;

		if (pol->deadline_ms) {
			uint64_t left;

			/* A sleep that overshot must not leave an attempt with
			 * no bound (0) or a wrapped, huge one. */
			if (n > 1 && elapsed_ms >= pol->deadline_ms) {
				why = "deadline reached";
				n--;	/* attempts made */
				break;
			}
			left = elapsed_ms < pol->deadline_ms ? pol->deadline_ms - elapsed_ms : 1;
			if (!timeout || left < timeout)
				timeout = left;
		}
		lc_err_clear(&e);
		memset(reply, 0, sizeof(*reply));
		r = attempt(p, c, timeout, reply, &e);
		elapsed_ms = (clk->now_ns(clk->arg) - start) / 1000000u;
		if (r == 0)
			break;
		drop_output(c);
		if (r > 0 || e.cls == LC_ERRC_NONE || e.code == 0) {
			/* A provider that fails without saying how is a bug. */
			if (r >= 0)
				r = -EIO;
			lc_err(&e, r, LC_ERRC_INTERNAL, "%s %s failed without an error class (%s)",
			       p->ops->name, op_name(c->op), e.msg[0] ? e.msg : "no message");
		}
		r = e.code;
		if (e.cls != LC_ERRC_TRANSIENT)
			break;
		if (n >= pol->max_attempts) {
			why = "attempts exhausted";
			break;
		}
		delay = jittered(pol, lc_retry_delay_ms(pol, n + 1));
		if (reply->retry_after_ms > delay)	/* the KMS's own hint, capped */
			delay = reply->retry_after_ms < pol->max_delay_ms ? reply->retry_after_ms
									  : pol->max_delay_ms;
		if (pol->deadline_ms && elapsed_ms + delay >= pol->deadline_ms) {
			why = "deadline reached";
			break;
		}
		clk->sleep_ns(clk->arg, delay * 1000000u);
		atomic_fetch_add_explicit(&p->n_retries, 1, memory_order_relaxed);
		elapsed_ms = (clk->now_ns(clk->arg) - start) / 1000000u;
	}
	reply->attempts = n;
	reply->latency_us = (clk->now_ns(clk->arg) - start) / 1000u;
	count_call(p, reply->latency_us, r, e.cls);
	if (r == 0) {
		lc_err_clear(err);
		return 0;
	}
	atomic_fetch_add_explicit(&p->n_failures, 1, memory_order_relaxed);
	if (why)
		return lc_err(err, r, e.cls, "%s (%s after %u attempts in %" PRIu64 " ms)",
			      e.msg, why, n, reply->latency_us / 1000);
	return lc_err(err, r, e.cls, "%s", e.msg);
}

int lc_provider_wrap(struct lc_provider *p, const char *key_ref,
		     const struct lc_secret *plaintext, const char *context,
		     struct lc_buf *blob, struct lc_provider_reply *reply,
		     struct lc_error *err)
{
	struct call c = { .op = OP_WRAP, .key_ref = key_ref, .context = context,
			  .pt_in = plaintext, .blob_out = blob };

	blob->p = NULL;
	blob->len = 0;
	if (!plaintext || !plaintext->p || !plaintext->len)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "nothing to wrap");
	return run(p, &c, reply, err);
}

int lc_provider_unwrap(struct lc_provider *p, const char *key_ref,
		       const struct lc_buf *blob, const char *context,
		       struct lc_secret *plaintext, struct lc_provider_reply *reply,
		       struct lc_error *err)
{
	struct call c = { .op = OP_UNWRAP, .key_ref = key_ref, .context = context,
			  .blob_in = blob, .pt_out = plaintext };

	plaintext->p = NULL;
	plaintext->len = 0;
	plaintext->locked = false;
	if (!blob || !blob->p || !blob->len)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "no wrapped key to unwrap (empty blob)");
	return run(p, &c, reply, err);
}

int lc_provider_key_state(struct lc_provider *p, const char *key_ref,
			  struct lc_provider_reply *reply, struct lc_error *err)
{
	struct call c = { .op = OP_KEY_STATE, .key_ref = key_ref };

	return run(p, &c, reply, err);
}
