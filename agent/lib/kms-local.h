/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The embedded local KMS: a software key management service inside the
 * agent, the default provider.  It behaves towards the agent as a cloud
 * KMS does: CMKs with ids, versions, states, an enforced encryption
 * context, and authoritative denials once a key is disabled, scheduled
 * for deletion or destroyed.
 *
 * State directory (0700, owned by the agent's user):
 *   .lock                 flock: shared for readers, exclusive for writers
 *   lk-<32 hex>.json      metadata of one key (no secrets), 0600
 *   lk-<32 hex>.v<N>.key  32 bytes of AES-256 material of version N, 0600
 *   .elapsed              seconds the store has been open, over every run
 *                         (CLOCK_BOOTTIME, saved at each purge and at close)
 *   quarantine/           files the store cannot account for, moved aside
 * Every file is written atomically (temp file, fsync, rename, fsync of the
 * directory); material is written before the metadata that names it and
 * erased (overwritten, fsynced, unlinked) after the metadata that stops
 * naming it, so an interruption at any step leaves a consistent store.
 *
 * Key states and transitions (as AWS KMS):
 *   create            -> enabled (version 1 primary)
 *   disable           enabled|disabled          -> disabled
 *   enable            enabled|disabled          -> enabled
 *   rotate            enabled: new primary version; old ones still decrypt
 *   schedule_deletion enabled|disabled, 7..30 days -> pending_deletion
 *   cancel_deletion   pending_deletion          -> disabled
 *   destroy           pending_deletion, once the date has passed (or with
 *                     LC_KMS_LOCAL_DESTROY_NOW) -> destroyed: material erased
 * A pending key counts as destroyed (every use is denied) once its date
 * has passed on the wall clock AND the store's elapsed time has passed the
 * elapsed date set with it (days * 86400 s later): setting the clock
 * forward destroys nothing.  Its material is erased by
 * lc_kms_local_purge(), which the agent runs periodically, never at
 * start.  Nothing is erased when the store opens: temp files, material no
 * metadata names and leftovers of destroyed keys are moved to quarantine/
 * and logged (lc_kms_local_quarantined() counts them).
 *
 * Ciphertext blob (self-describing):
 *   "LCK1" | u8 id_len | key id | be32 version | nonce[12] | ct | tag[16]
 * AES-256-GCM, AAD = the blob's header (magic .. version) || context.
 *
 * Errors: unknown key id -> MISCONFIG (-ENOENT); key disabled, pending
 * deletion or destroyed -> DENIED (-EKEYREVOKED); wrong context, corrupt
 * or foreign blob -> INVALID (-EBADMSG); refused admin transition ->
 * INVALID (-EPERM).
 */
#ifndef LC_KMS_LOCAL_H
#define LC_KMS_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lc-error.h"
#include "lc-types.h"
#include "provider.h"
#include "secmem.h"

#define LC_KMS_LOCAL_NAME		"local"
#define LC_KMS_LOCAL_ID_PREFIX		"lk-"
#define LC_KMS_LOCAL_ID_LEN		35	/* "lk-" + 32 hex digits */
#define LC_KMS_LOCAL_DESC_MAX		256
#define LC_KMS_LOCAL_MAX_PLAINTEXT	4096
#define LC_KMS_LOCAL_MAX_CONTEXT	4096	/* bytes of encryption context */
#define LC_KMS_LOCAL_MAX_VERSIONS	10000
#define LC_KMS_LOCAL_MIN_DELETION_DAYS	7
#define LC_KMS_LOCAL_MAX_DELETION_DAYS	30

#define LC_KMS_LOCAL_DESTROY_NOW	0x1	/* skip the waiting period */

struct lc_kms_local;

struct lc_kms_key_info {
	char key_id[LC_KMS_LOCAL_ID_LEN + 1];
	char description[LC_KMS_LOCAL_DESC_MAX + 1];
	enum lc_key_state state;
	uint32_t primary_version;
	uint32_t versions;		/* versions 1..versions exist */
	int64_t created;		/* epoch seconds */
	int64_t updated;		/* last state change or rotation */
	int64_t deletion_date;		/* pending: when; destroyed: when it was; else 0 */
	int64_t deletion_elapsed;	/* pending: store elapsed time (s) it needs too */
	bool policy_deny;		/* the key policy denies every use (state unchanged) */
};

/*
 * Open (creating it 0700 if missing; the parent must exist) the state
 * directory.  Refuses a directory or key file readable by group or others,
 * or not owned by this user (MISCONFIG).  Moves what interrupted writes
 * left (temp files, orphaned material, material of destroyed keys) to
 * quarantine/, erasing nothing.
 */
int lc_kms_local_open(struct lc_kms_local **kms, const char *state_dir, struct lc_error *err);
void lc_kms_local_close(struct lc_kms_local *kms);

/* Administration.  @info (may be NULL) receives the key after the change. */
int lc_kms_local_create(struct lc_kms_local *kms, const char *description,
			struct lc_kms_key_info *info, struct lc_error *err);
/* All keys, sorted by creation time then id; free(*keys). */
int lc_kms_local_list(struct lc_kms_local *kms, struct lc_kms_key_info **keys, size_t *n,
		      struct lc_error *err);
int lc_kms_local_describe(struct lc_kms_local *kms, const char *key_id,
			  struct lc_kms_key_info *info, struct lc_error *err);
int lc_kms_local_rotate(struct lc_kms_local *kms, const char *key_id,
			struct lc_kms_key_info *info, struct lc_error *err);
int lc_kms_local_disable(struct lc_kms_local *kms, const char *key_id,
			 struct lc_kms_key_info *info, struct lc_error *err);
int lc_kms_local_enable(struct lc_kms_local *kms, const char *key_id,
			struct lc_kms_key_info *info, struct lc_error *err);
/*
 * A key policy change, as an AWS key policy or grant removal: with @deny
 * every encrypt and decrypt is refused with AccessDenied (DENIED,
 * -EKEYREVOKED)
 * while the key's state stays what it is, so key_state still answers
 * "enabled".  !@deny restores the use.
 */
int lc_kms_local_set_policy(struct lc_kms_local *kms, const char *key_id, bool deny,
			    struct lc_kms_key_info *info, struct lc_error *err);
int lc_kms_local_schedule_deletion(struct lc_kms_local *kms, const char *key_id,
				   unsigned int days, struct lc_kms_key_info *info,
				   struct lc_error *err);
int lc_kms_local_cancel_deletion(struct lc_kms_local *kms, const char *key_id,
				 struct lc_kms_key_info *info, struct lc_error *err);
int lc_kms_local_destroy(struct lc_kms_local *kms, const char *key_id, unsigned int flags,
			 struct lc_kms_key_info *info, struct lc_error *err);
/* Erase every key whose deletion dates have passed (and leftovers of
 * destroyed keys); *@n (may be NULL) = how many keys.  Saves the elapsed
 * time. */
int lc_kms_local_purge(struct lc_kms_local *kms, unsigned int *n, struct lc_error *err);
/* Files in quarantine/ now (0 if there is none). */
int lc_kms_local_quarantined(struct lc_kms_local *kms, unsigned int *n, struct lc_error *err);
/* The store's elapsed time in seconds (see above). */
int64_t lc_kms_local_elapsed(const struct lc_kms_local *kms);

/*
 * Encrypt under the primary version; @blob is malloc'd (free() it).
 * Decrypt: @key_id may be NULL (the blob names its key); if given it must
 * be the blob's key.  @version (may be NULL) receives the version used.
 */
int lc_kms_local_encrypt(struct lc_kms_local *kms, const char *key_id,
			 const uint8_t *plaintext, size_t len, const char *context,
			 struct lc_buf *blob, uint32_t *version, struct lc_error *err);
int lc_kms_local_decrypt(struct lc_kms_local *kms, const char *key_id,
			 const uint8_t *blob, size_t len, const char *context,
			 struct lc_secret *plaintext, uint32_t *version,
			 struct lc_error *err);

/*
 * The local KMS as a provider.  @p borrows @kms: close the provider
 * before the KMS.  key_state answers 0 with the state for any existing
 * key (destroyed included) and MISCONFIG for an unknown one.
 */
void lc_kms_local_provider_init(struct lc_provider *p, struct lc_kms_local *kms);
extern const struct lc_provider_ops lc_kms_local_ops;

/* For tests: wall clock in epoch seconds (NULL: time()). */
void lc_kms_local_set_clock(struct lc_kms_local *kms, int64_t (*now)(void *arg), void *arg);
/* For tests: the boot-time clock in seconds (NULL: CLOCK_BOOTTIME); the
 * elapsed time so far is kept. */
void lc_kms_local_set_uptime(struct lc_kms_local *kms, int64_t (*uptime)(void *arg), void *arg);
/* For tests: make the @n-th file-system step from now fail with EIO (0: never). */
void lc_kms_local_fail_io_at(struct lc_kms_local *kms, unsigned int n);
/* For tests: file-system steps taken since the last lc_kms_local_fail_io_at(). */
unsigned int lc_kms_local_io_steps(const struct lc_kms_local *kms);

#endif /* LC_KMS_LOCAL_H */
