/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DEKs on their way to the kernel, as logon keys (libkeyutils, never the
 * keyctl program).
 *
 * dm-lakecrypt finds segment N's key with request_key("logon",
 * "<prefix>N") in the context of the process that sends "key load", which
 * searches that process's thread, process and session keyrings and the
 * keyrings linked inside them.  So the agent puts a volume's keys into a
 * dedicated keyring (type "keyring", description "lakecrypt:<name>") linked
 * into its own process keyring: the kernel finds them when the agent sends
 * "key load", no other process does, and nothing outlives the agent.  After
 * the load the keyring is cleared: the target keeps its own copy, and a
 * logon key's payload is never readable from user space anyway.
 *
 * Every key prefix must start with LC_KEY_PREFIX so lc_keyring_purge() can
 * find whatever the agent left behind.
 */
#ifndef LC_KEYRING_H
#define LC_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include <linux/dm-lakecrypt.h>

#include "lc-error.h"

#define LC_KEY_PREFIX "lakecrypt:"

struct lc_keyring {
	int32_t ring;		/* key_serial_t of the dedicated keyring, 0 if closed */
	char prefix[LAKECRYPT_MAX_KEY_PREFIX + 1];
	int32_t *keys;		/* serial of segment n at keys[n - base]; 0 if none */
	uint32_t base, nkeys;
};

/* 0 if this process may use the kernel keyring, else a negative errno and
 * a message naming the reason (no keyctl syscalls in a sandbox, ...). */
int lc_keyring_available(struct lc_error *err);

/*
 * Create keyring "lakecrypt:<name>" in the process keyring (replacing one
 * of that name) for keys "<prefix><n>".  @prefix must start with
 * LC_KEY_PREFIX and fit LAKECRYPT_MAX_KEY_PREFIX.
 */
int lc_keyring_open(struct lc_keyring *kr, const char *name, const char *prefix,
		    struct lc_error *err);

/*
 * Add logon keys "<prefix><first + i>" for i < @count, the payload of key i
 * at @payloads + i * @key_size.  @timeout_s > 0 makes each key expire on
 * its own after that many seconds, should the agent die before it drops
 * them.  On failure the keys added by this call are removed again.
 */
int lc_keyring_add(struct lc_keyring *kr, uint32_t first, uint32_t count,
		   const uint8_t *payloads, size_t key_size, unsigned int timeout_s,
		   struct lc_error *err);

/* Forget every key added to @kr (after "key load" copied them): the
 * keyring is cleared, which leaves the keys unreferenced, and the kernel's
 * key garbage collector destroys them within milliseconds. */
int lc_keyring_drop(struct lc_keyring *kr, struct lc_error *err);

/* Drop the keys, then unlink and invalidate the keyring itself.  Safe on a
 * closed or zeroed struct. */
void lc_keyring_close(struct lc_keyring *kr);

/*
 * The kill switch's keyring sweep: invalidate every logon key whose
 * description starts with LC_KEY_PREFIX in the keyrings this process
 * possesses (thread, process, session, user, recursively) and any other
 * this process is allowed to invalidate (from /proc/keys).  @removed and
 * @left (may be NULL) count the keys invalidated and the keys still
 * listed that could not be; -EACCES if any is left.
 */
int lc_keyring_purge(unsigned int *removed, unsigned int *left, struct lc_error *err);

#endif /* LC_KEYRING_H */
