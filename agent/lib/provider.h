/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KMS providers: the one interface behind which the local KMS, AWS KMS,
 * Azure Key Vault / Managed HSM, Google Cloud KMS, KMIP and PKCS#11 each
 * live in one file, and the one place (provider.c) where calls are
 * retried, bounded in time, timed and counted.
 *
 * A provider implements three operations on a CMK reference (key_ref, in
 * the provider's own syntax: a local key id, an ARN, a key URL, ...):
 *   wrap       plaintext + context -> opaque ciphertext blob
 *   unwrap     blob + context      -> plaintext (locked memory)
 *   key_state  is the CMK enabled, disabled, pending deletion, destroyed?
 * Every failure carries an error class (lc-error.h):
 *   DENIED     authoritative: key disabled, pending deletion, destroyed,
 *              access denied.  Never retried; the agent pulls the kill switch.
 *   TRANSIENT  timeout, throttling, 5xx, connection: retried here.
 *   MISCONFIG  unknown key, bad endpoint or credentials format.
 *   INVALID    wrong context, corrupt or foreign blob.
 *   INTERNAL   out of memory, bug.
 * A provider never retries or sleeps itself; it makes one attempt within
 * the timeout it is given.
 */
#ifndef LC_PROVIDER_H
#define LC_PROVIDER_H

#include <stdatomic.h>
#include <stdint.h>

#include "lc-error.h"
#include "lc-types.h"
#include "secmem.h"

enum lc_key_state {
	LC_KEY_UNKNOWN = 0,
	LC_KEY_ENABLED,
	LC_KEY_DISABLED,
	LC_KEY_PENDING_DELETION,
	LC_KEY_DESTROYED,
};

const char *lc_key_state_name(enum lc_key_state st);	/* "enabled", ... */

#define LC_PROVIDER_REQID_MAX	128
#define LC_PROVIDER_KEYID_MAX	512
#define LC_PROVIDER_VERSION_MAX	256	/* = LC_HDR_CMK_VERSION_SIZE: a full versioned key URL fits */

/* What the provider said, for the audit log.  Filled on success and, as
 * far as known, on failure. */
struct lc_provider_reply {
	char request_id[LC_PROVIDER_REQID_MAX];	/* provider's request id, "" if none */
	char key_id[LC_PROVIDER_KEYID_MAX];	/* CMK id as the provider reports it */
	char key_version[LC_PROVIDER_VERSION_MAX]; /* CMK version used / primary */
	enum lc_key_state state;		/* key_state only */
	int64_t deletion_date;			/* key_state: epoch s, 0 if none */
	uint64_t latency_us;			/* whole call, retries included */
	unsigned int attempts;			/* provider calls made */
	uint64_t retry_after_ms;		/* failed attempt: the provider asks to wait at
						 * least this long (Retry-After); provider.c
						 * honours it up to the policy's max_delay_ms */
	/* key_state only: the reference that ties this key to where it was
	 * found (AWS: the key ARN; KMIP: UID and server identity; PKCS#11:
	 * the token's serial), which keyconfig create stores instead of the
	 * reference given, so that a configuration change or replaced
	 * hardware reads as MISCONFIG, never as a destroyed key.  "" if the
	 * given reference is already bound (or the provider has no binding). */
	char bound_ref[LC_PROVIDER_KEYID_MAX];
};

struct lc_provider_ops {
	const char *name;			/* "local", "aws-kms", ... */
	/* One attempt each; timeout_ms bounds this attempt (0: none). */
	int (*wrap)(void *priv, const char *key_ref, const struct lc_secret *plaintext,
		    const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		    struct lc_provider_reply *reply, struct lc_error *err);
	int (*unwrap)(void *priv, const char *key_ref, const struct lc_buf *blob,
		      const char *context, uint64_t timeout_ms, struct lc_secret *plaintext,
		      struct lc_provider_reply *reply, struct lc_error *err);
	int (*key_state)(void *priv, const char *key_ref, uint64_t timeout_ms,
			 struct lc_provider_reply *reply, struct lc_error *err);
	void (*destroy)(void *priv);		/* optional */
	/* key_state also takes a key version's name, "<key_ref>/<...>" as
	 * reply.key_version gives it (Cloud KMS): the revocation probe then
	 * asks the versions open volumes were wrapped by (probe.c). */
	bool version_state;
	/* Optional (NULL: the provider names no principal).  Who the agent
	 * is at the KMS for @key_ref (AWS: sts:GetCallerIdentity's Arn;
	 * ...): one attempt within @timeout_ms, the principal (printable
	 * ASCII, < LC_PROVIDER_IDENTITY_MAX) in @principal.  keyconfig
	 * create binds it to the key configuration; a later DENIED is
	 * re-checked against it (agent/daemon/kms-ident.c): another
	 * principal makes the denial MISCONFIG, never a kill.  Errors as the
	 * other operations (a denied identity call is DENIED). */
	int (*identity)(void *priv, const char *key_ref, uint64_t timeout_ms,
			char principal[], size_t size, struct lc_provider_reply *reply,
			struct lc_error *err);
	/* Optional (NULL: strcmp): is principal @now the one @bound names?
	 * (AWS: an assumed role's session name is not compared.) */
	bool (*identity_match)(const char *bound, const char *now);
};

#define LC_PROVIDER_IDENTITY_MAX	512	/* principal, NUL included */

/* Retry policy: only TRANSIENT failures are retried. */
struct lc_retry_policy {
	unsigned int max_attempts;	/* >= 1 */
	uint64_t base_delay_ms;		/* delay before the 2nd attempt */
	uint64_t max_delay_ms;		/* cap of the exponential delay */
	uint64_t attempt_timeout_ms;	/* per attempt, passed to the provider */
	uint64_t deadline_ms;		/* whole call, sleeps included (0: none) */
	unsigned int jitter_pct;	/* 0..100: delay drawn in [d*(1-j), d] */
};

#define LC_RETRY_POLICY_DEFAULT { \
	.max_attempts = 5, .base_delay_ms = 200, .max_delay_ms = 5000, \
	.attempt_timeout_ms = 10000, .deadline_ms = 30000, .jitter_pct = 50 }

/* Time source, replaceable by tests (nanoseconds, monotonic). */
struct lc_clock {
	uint64_t (*now_ns)(void *arg);
	void (*sleep_ns)(void *arg, uint64_t ns);
	void *arg;
};

/* KMS calls made, per operation (attempts, retries included). */
struct lc_provider_counters {
	uint64_t wrap;
	uint64_t unwrap;
	uint64_t key_state;
	uint64_t retries;	/* attempts after a transient failure */
	uint64_t failures;	/* calls that returned an error */
	uint64_t calls;		/* lc_provider_*() calls that reached the provider */
	uint64_t latency_us_sum;	/* whole calls, retries and sleeps included */
	uint64_t latency_us_max;
	uint64_t denied;	/* failed calls by class of the last attempt */
	uint64_t transient;
	uint64_t misconfig;
	uint64_t invalid;
};

struct lc_provider {
	const struct lc_provider_ops *ops;
	void *priv;
	struct lc_retry_policy policy;
	const struct lc_clock *clock;
	_Atomic uint64_t n_wrap, n_unwrap, n_key_state, n_retries, n_failures;
	_Atomic uint64_t n_calls, lat_sum_us, lat_max_us, n_denied, n_transient, n_misconfig,
		n_invalid;
};

/* Set up @p around @ops/@priv with the default policy and the real clock. */
void lc_provider_init(struct lc_provider *p, const struct lc_provider_ops *ops, void *priv);
/* Call ops->destroy(priv), if any, and clear @p. */
void lc_provider_close(struct lc_provider *p);
/* 0, or -EINVAL (MISCONFIG) for an unusable policy. */
int lc_provider_set_policy(struct lc_provider *p, const struct lc_retry_policy *pol,
			   struct lc_error *err);
void lc_provider_set_clock(struct lc_provider *p, const struct lc_clock *clock);
void lc_provider_counters(const struct lc_provider *p, struct lc_provider_counters *c);
void lc_provider_counters_reset(struct lc_provider *p);

/*
 * The calls the agent makes.  @reply may be NULL.  On success @blob
 * (malloc'd, free() it) or @plaintext (lc_secret_free it) is filled; on
 * failure they are left empty and @err has the class of the last attempt.
 */
int lc_provider_wrap(struct lc_provider *p, const char *key_ref,
		     const struct lc_secret *plaintext, const char *context,
		     struct lc_buf *blob, struct lc_provider_reply *reply,
		     struct lc_error *err);
int lc_provider_unwrap(struct lc_provider *p, const char *key_ref,
		       const struct lc_buf *blob, const char *context,
		       struct lc_secret *plaintext, struct lc_provider_reply *reply,
		       struct lc_error *err);
int lc_provider_key_state(struct lc_provider *p, const char *key_ref,
			  struct lc_provider_reply *reply, struct lc_error *err);

/* The delay before attempt @attempt (2, 3, ...) without jitter, in ms. */
uint64_t lc_retry_delay_ms(const struct lc_retry_policy *pol, unsigned int attempt);

#endif /* LC_PROVIDER_H */
