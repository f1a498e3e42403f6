// SPDX-License-Identifier: GPL-2.0
/*
 * Secret memory: mmap + mlock + MADV_DONTDUMP + MADV_WIPEONFORK, and
 * explicit_bzero before munmap.  One mapping per secret so that locking,
 * dump exclusion and wiping cover exactly the secret and nothing else.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "secmem.h"

static size_t page_round(size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (len + pg - 1) & ~(pg - 1);
}

void lc_wipe(void *p, size_t len)
{
	if (p && len)
		explicit_bzero(p, len);
}

static atomic_uint rand_faults;

void lc_rand_fail_next(unsigned int n)
{
	atomic_store(&rand_faults, n);
}

/* One generator call over all of @buf; RAND_*bytes take an int length. */
static bool rand_once(uint8_t *buf, size_t len, bool priv)
{
	unsigned int f = atomic_load(&rand_faults);

	while (f && !atomic_compare_exchange_weak(&rand_faults, &f, f - 1))
		;
	if (f)
		return false;
	for (size_t off = 0; off < len;) {
		int n = len - off > INT_MAX ? INT_MAX : (int)(len - off);

		if ((priv ? RAND_priv_bytes(buf + off, n) : RAND_bytes(buf + off, n)) != 1)
			return false;
		off += (size_t)n;
	}
	return true;
}

int lc_rand_bytes(void *buf, size_t len, bool priv, const char *what, struct lc_error *err)
{
	for (unsigned int i = 0; i < LC_RAND_ATTEMPTS; i++)
		if (rand_once(buf, len, priv))
			return 0;
	lc_wipe(buf, len);
	return lc_err(err, -EIO, LC_ERRC_INTERNAL,
		      "the random generator failed %d times in a row while making %s",
		      LC_RAND_ATTEMPTS, what);
}

/* mlock, raising the soft RLIMIT_MEMLOCK to the hard one if needed. */
static bool lock_pages(void *p, size_t maplen)
{
	struct rlimit rl;

	if (mlock(p, maplen) == 0)
		return true;
	if ((errno != ENOMEM && errno != EPERM) || getrlimit(RLIMIT_MEMLOCK, &rl))
		return false;
	if (rl.rlim_cur == rl.rlim_max)
		return false;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		return false;
	return mlock(p, maplen) == 0;
}

int lc_secret_alloc(struct lc_secret *s, size_t len)
{
	static bool warned;
	size_t maplen;
	void *p;

	s->p = NULL;
	s->len = 0;
	s->maplen = 0;
	s->locked = false;
	if (len == 0 || len > LC_SECRET_MAX_LEN)
		return -EINVAL;
	maplen = page_round(len);
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	/* Dump exclusion is not optional: refuse memory we cannot hide. */
	if (madvise(p, maplen, MADV_DONTDUMP)) {
		munmap(p, maplen);
		return -ENOMEM;
	}
	/* Children of fork() see zeroes (Linux >= 4.14; older: ignored). */
	(void)madvise(p, maplen, MADV_WIPEONFORK);
	s->locked = lock_pages(p, maplen);
	if (!s->locked && !warned) {
		warned = true;
		lc_warn("cannot lock %zu bytes of key memory in RAM (RLIMIT_MEMLOCK too low, no CAP_IPC_LOCK): keys may be swapped",
			maplen);
	}
	s->p = p;
	s->len = len;
	s->maplen = maplen;
	return 0;
}

void lc_secret_free(struct lc_secret *s)
{
	size_t maplen;

	if (!s || !s->p)
		return;
	maplen = s->maplen ? s->maplen : page_round(s->len);
	explicit_bzero(s->p, maplen);
	if (s->locked)
		munlock(s->p, maplen);
	munmap(s->p, maplen);
	s->p = NULL;
	s->len = 0;
	s->maplen = 0;
	s->locked = false;
}

int lc_process_harden(struct lc_error *err)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl))
		return lc_err(err, -errno, LC_ERRC_INTERNAL,
			      "cannot disable core dumps (setrlimit RLIMIT_CORE): %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return lc_err(err, -errno, LC_ERRC_INTERNAL,
			      "cannot make the process non-dumpable (PR_SET_DUMPABLE): %s", strerror(errno));
	return 0;
}
