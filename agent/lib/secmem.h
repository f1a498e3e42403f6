/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Secret memory: every plaintext key (KEK, DEKs, CMK material of the local
 * KMS) lives in a struct lc_secret, which is its own anonymous mapping,
 * locked in RAM (never swapped), left out of core dumps, not inherited by
 * fork() children, and zeroed before it is unmapped.
 */
#ifndef LC_SECMEM_H
#define LC_SECMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lc-error.h"

struct lc_secret {
	uint8_t *p;
	size_t len;	/* bytes in use; a holder may lower it */
	bool locked;	/* mlock() succeeded (see lc_secret_alloc) */
	size_t maplen;	/* bytes mapped by lc_secret_alloc: what is wiped and freed */
};

/* Largest single secret: every DEK of the biggest volume, plus room. */
#define LC_SECRET_MAX_LEN	((size_t)LC_SECRET_MAX_MIB << 20)
#define LC_SECRET_MAX_MIB	256

/*
 * Allocate @len zeroed bytes of secret memory.  0 or -EINVAL (len 0 or
 * above LC_SECRET_MAX_LEN), -ENOMEM.  Locking is best effort, as in
 * cryptsetup and libsodium: if RLIMIT_MEMLOCK is too small even after
 * raising the soft limit to the hard one, the memory is still excluded from
 * core dumps, s->locked is false and one warning is logged.  The agent runs
 * with CAP_IPC_LOCK, where locking cannot fail for lack of limit.
 */
int lc_secret_alloc(struct lc_secret *s, size_t len);

/* Zero, unlock and unmap; safe on a zeroed or already freed secret. */
void lc_secret_free(struct lc_secret *s);

/* _cleanup_secret_ struct lc_secret kek = {0}; wiped on every return. */
#define _cleanup_secret_ _cleanup_(lc_secret_free)

/* Zero memory in a way the compiler cannot elide. */
void lc_wipe(void *p, size_t len);

/*
 * Fill @len bytes at @buf from OpenSSL's generator (@priv: RAND_priv_bytes,
 * for key material; else RAND_bytes).  A failure is retried, at most
 * LC_RAND_ATTEMPTS calls in all with no sleep (a DRBG that cannot reseed
 * does not heal by waiting); then @buf is zeroed and -EIO (INTERNAL)
 * returned with @what ("a volume uuid", ...) in the message.
 */
#define LC_RAND_ATTEMPTS	3
int lc_rand_bytes(void *buf, size_t len, bool priv, const char *what, struct lc_error *err);
/* For tests: the next @n generator calls made by lc_rand_bytes fail. */
void lc_rand_fail_next(unsigned int n);

/*
 * For the agent at start: no core files (RLIMIT_CORE 0) and not dumpable
 * (PR_SET_DUMPABLE 0: no core, no ptrace attach by the same uid,
 * /proc/<pid>/mem unreadable by others).  0 or negative errno.
 */
int lc_process_harden(struct lc_error *err);

#endif /* LC_SECMEM_H */
