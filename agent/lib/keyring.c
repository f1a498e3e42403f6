// SPDX-License-Identifier: GPL-2.0
/*
 * Logon keys for dm-lakecrypt through libkeyutils.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyutils.h>

#include "keyring.h"

#define RING_DESC_MAX 128

static int key_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static int keyring_unusable(int r, struct lc_error *err, const char *what)
{
	if (r == -ENOSYS || r == -EPERM || r == -EACCES)
		return lc_err(err, r, LC_ERRC_MISCONFIG,
			      "%s: the kernel keyring is not usable here (%s): a kernel with CONFIG_KEYS and no seccomp filter on keyctl/add_key is needed",
			      what, strerror(-r));
	if (r == -EDQUOT)
		return lc_err(err, r, LC_ERRC_MISCONFIG,
			      "%s: key quota exceeded: run the agent as root or raise /proc/sys/kernel/keys/maxkeys and maxbytes",
			      what);
	return lc_err(err, r, LC_ERRC_INTERNAL, "%s: %s", what, strerror(-r));
}

int lc_keyring_available(struct lc_error *err)
{
	key_serial_t id = keyctl_get_keyring_ID(KEY_SPEC_PROCESS_KEYRING, 1);

	if (id < 0)
		return keyring_unusable(key_errno(), err, "creating the process keyring");
	return 0;
}

int lc_keyring_open(struct lc_keyring *kr, const char *name, const char *prefix,
		    struct lc_error *err)
{
	char desc[RING_DESC_MAX];
	size_t plen;
	int n;

	memset(kr, 0, sizeof(*kr));
	if (!name || !*name || strpbrk(name, " \t\n"))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "keyring name \"%s\" must be non-empty and without spaces",
			      name ? name : "");
	plen = prefix ? strlen(prefix) : 0;
	if (plen <= strlen(LC_KEY_PREFIX) || plen > LAKECRYPT_MAX_KEY_PREFIX ||
	    strncmp(prefix, LC_KEY_PREFIX, strlen(LC_KEY_PREFIX)) || strpbrk(prefix, " \t\n"))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key prefix \"%s\" must start with \"%s\", have more after it and be at most %d characters without spaces",
			      prefix ? prefix : "", LC_KEY_PREFIX, LAKECRYPT_MAX_KEY_PREFIX);
	n = snprintf(desc, sizeof(desc), LC_KEY_PREFIX "%s", name);
	if (n < 0 || (size_t)n >= sizeof(desc))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "keyring name \"%s\" is too long", name);

	/* A keyring cannot be updated, so this replaces one of the same name. */
	kr->ring = add_key("keyring", desc, NULL, 0, KEY_SPEC_PROCESS_KEYRING);
	if (kr->ring < 0) {
		int r = key_errno();

		kr->ring = 0;
		return keyring_unusable(r, err, "creating the agent's keyring");
	}
	memcpy(kr->prefix, prefix, plen + 1);
	return 0;
}

/* Make keys[] cover segments [lo, hi). */
static int cover(struct lc_keyring *kr, uint32_t lo, uint32_t hi)
{
	uint32_t nlo, nhi;
	int32_t *k;

	if (kr->nkeys) {
		nlo = lo < kr->base ? lo : kr->base;
		nhi = hi > kr->base + kr->nkeys ? hi : kr->base + kr->nkeys;
	} else {
		nlo = lo;
		nhi = hi;
	}
	if (kr->nkeys && nlo == kr->base && nhi == kr->base + kr->nkeys)
		return 0;
	k = calloc(nhi - nlo, sizeof(*k));
	if (!k)
		return -ENOMEM;
	if (kr->nkeys)
		memcpy(k + (kr->base - nlo), kr->keys, kr->nkeys * sizeof(*k));
	free(kr->keys);
	kr->keys = k;
	kr->base = nlo;
	kr->nkeys = nhi - nlo;
	return 0;
}

int lc_keyring_add(struct lc_keyring *kr, uint32_t first, uint32_t count,
		   const uint8_t *payloads, size_t key_size, unsigned int timeout_s,
		   struct lc_error *err)
{
	char desc[LAKECRYPT_MAX_KEY_PREFIX + 16];
	size_t plen = strlen(kr->prefix);
	uint32_t i, bad = 0;
	int r;

	if (!kr->ring)
		return lc_err(err, -EBADF, LC_ERRC_INTERNAL, "keyring is not open");
	if (!count)
		return 0;
	if (key_size < 1 || key_size > LAKECRYPT_MAX_KEY_SIZE || !payloads)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key size %zu is out of range: expected 1 to %d bytes", key_size,
			      LAKECRYPT_MAX_KEY_SIZE);
	if (count > LAKECRYPT_MAX_SEGMENTS || first > LAKECRYPT_MAX_SEGMENTS - count)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segments %u..%u are beyond the target's limit of %u",
			      first, first + (count - 1), LAKECRYPT_MAX_SEGMENTS);
	if (cover(kr, first, first + count) < 0)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");

	memcpy(desc, kr->prefix, plen);
	for (i = 0; i < count; i++) {
		uint32_t n = first + i;
		int32_t *slot = &kr->keys[n - kr->base];
		key_serial_t id;

		snprintf(desc + plen, sizeof(desc) - plen, "%u", n);
		id = add_key(LAKECRYPT_KEY_TYPE, desc, payloads + (size_t)i * key_size, key_size,
			     kr->ring);
		if (id < 0) {
			r = key_errno();
			bad = n;
			goto fail;
		}
		*slot = id;
		if (timeout_s && keyctl_set_timeout(id, timeout_s) < 0) {
			r = key_errno();
			bad = n;
			i++;
			goto fail;
		}
	}
	return 0;

fail:
	{
		uint32_t done = i;

		while (i-- > 0) {
			int32_t *slot = &kr->keys[first + i - kr->base];

			if (*slot > 0)
				(void)keyctl_invalidate(*slot);
			*slot = 0;
		}
		if (r == -ENOSYS || r == -EPERM || r == -EACCES || r == -EDQUOT)
			return keyring_unusable(r, err, "adding segment keys to the keyring");
		return lc_err(err, r, LC_ERRC_INTERNAL,
			      "adding key %s%u to the keyring failed after %u of %u keys: %s",
			      kr->prefix, bad, done, count, strerror(-r));
	}
}

int lc_keyring_drop(struct lc_keyring *kr, struct lc_error *err)
{
	free(kr->keys);
	kr->keys = NULL;
	kr->base = kr->nkeys = 0;
	if (kr->ring <= 0)
		return 0;
	/*
	 * The keyring holds the only reference to each key, so clearing it
	 * lets the key garbage collector destroy (and zero) every payload
	 * right away: one syscall instead of one keyctl_invalidate() per key,
	 * which costs ~4 us each at 65,536 keys.  The keys vanish from
	 * /proc/keys once the collector has run (tens of milliseconds).
	 */
	if (keyctl_clear(kr->ring) < 0 && errno != ENOKEY) {
		int r = key_errno();

		return lc_err(err, r, LC_ERRC_INTERNAL,
			      "clearing the agent's keyring failed: %s; lc_keyring_purge() sweeps what is left",
			      strerror(-r));
	}
	return 0;
}

void lc_keyring_close(struct lc_keyring *kr)
{
	(void)lc_keyring_drop(kr, NULL);
	if (kr->ring > 0) {
		(void)keyctl_unlink(kr->ring, KEY_SPEC_PROCESS_KEYRING);
		(void)keyctl_invalidate(kr->ring);
	}
	kr->ring = 0;
}

/* ---- purge ---- */

struct sweep {
	key_serial_t *seen;
	size_t nseen, cap;
	unsigned int removed;
};

static bool seen(struct sweep *s, key_serial_t id)
{
	for (size_t i = 0; i < s->nseen; i++)
		if (s->seen[i] == id)
			return true;
	if (s->nseen == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		key_serial_t *t = realloc(s->seen, ncap * sizeof(*t));

		if (!t)
			return true;	/* out of memory: stop descending */
		s->seen = t;
		s->cap = ncap;
	}
	s->seen[s->nseen++] = id;
	return false;
}

/* "type;uid;gid;perm;description" */
static int describe(key_serial_t id, char **type, char **desc, char **buf)
{
	char *p;
	int i;

	if (keyctl_describe_alloc(id, buf) < 0)
		return key_errno();
	*type = *buf;
	p = *buf;
	for (i = 0; i < 4 && (p = strchr(p, ';')); i++)
		*p++ = '\0';
	if (i != 4)
		return -EINVAL;
	*desc = p;
	return 0;
}

static bool ours(const char *desc)
{
	return !strncmp(desc, LC_KEY_PREFIX, strlen(LC_KEY_PREFIX));
}

static void sweep_ring(struct sweep *s, key_serial_t ring, int depth)
{
	_cleanup_free_ key_serial_t *ids = NULL;
	int len;

	if (depth > 8 || seen(s, ring))
		return;
	len = keyctl_read_alloc(ring, (void **)&ids);
	if (len < 0)
		return;
	for (size_t i = 0; i < (size_t)len / sizeof(key_serial_t); i++) {
		_cleanup_free_ char *buf = NULL;
		char *type = NULL, *desc = NULL;

		if (describe(ids[i], &type, &desc, &buf) < 0)
			continue;
		if (!strcmp(type, "keyring")) {
			sweep_ring(s, ids[i], depth + 1);
			if (ours(desc)) {
				(void)keyctl_unlink(ids[i], ring);
				(void)keyctl_invalidate(ids[i]);
			}
		} else if (!strcmp(type, LAKECRYPT_KEY_TYPE) && ours(desc)) {
			if (keyctl_invalidate(ids[i]) == 0)
				s->removed++;
			else
				(void)keyctl_unlink(ids[i], ring);
		}
	}
}

/* Keys listed in /proc/keys that are ours and still alive. */
static void sweep_proc(struct sweep *s, unsigned int *left)
{
	FILE *f = fopen("/proc/keys", "re");
	char line[1024];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char flags[16], type[32], rest[768], *colon;
		unsigned int id;

		if (sscanf(line, "%x %15s %*s %*s %*s %*s %*s %31s %767[^\n]", &id, flags, type,
			   rest) != 4)
			continue;
		/* 'i' invalidated, 'R' revoked, 'D' dead: already on their way out. */
		if (strpbrk(flags, "iRD"))
			continue;
		colon = strrchr(rest, ':');
		if (colon && colon[1] == ' ')
			*colon = '\0';
		if (!ours(rest) || (strcmp(type, LAKECRYPT_KEY_TYPE) && strcmp(type, "keyring")))
			continue;
		if (keyctl_invalidate((key_serial_t)id) == 0) {
			if (!strcmp(type, LAKECRYPT_KEY_TYPE))
				s->removed++;
		} else if (errno != ENOKEY && errno != EKEYREVOKED && errno != EKEYEXPIRED) {
			(*left)++;
		}
	}
	fclose(f);
}

int lc_keyring_purge(unsigned int *removed, unsigned int *left, struct lc_error *err)
{
	static const key_serial_t roots[] = {
		KEY_SPEC_THREAD_KEYRING, KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_SESSION_KEYRING,
		KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING,
	};
	struct sweep s = { 0 };
	unsigned int nleft = 0;

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		key_serial_t id = keyctl_get_keyring_ID(roots[i], 0);

		if (id > 0)
			sweep_ring(&s, id, 0);
	}
	sweep_proc(&s, &nleft);
	free(s.seen);
	if (removed)
		*removed = s.removed;
	if (left)
		*left = nleft;
	if (nleft)
		return lc_err(err, -EACCES, LC_ERRC_INTERNAL,
			      "%u lakecrypt key(s) in /proc/keys could not be invalidated by this process (another user's or not possessed): remove them as their owner",
			      nleft);
	return 0;
}
