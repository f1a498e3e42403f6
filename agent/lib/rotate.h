/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key lifecycle of an open project volume, on top of volume.c: every one
 * of these is one crash-safe header update (lc_header_write_io(): the copy
 * not in use first, fsync, then the other, fsync), so a power cut at any
 * write leaves a header that opens with either the old or the new keys.
 * Documentation/key-hierarchy.md ("Rotation and re-keying") says what
 * each guarantees; the header format is unchanged (on-disk-format.md).
 *
 *   rotate-kek  a fresh KEK (RAND_priv_bytes), every live DEK unwrapped
 *               under the old one and wrapped under the new one (fresh
 *               nonces, same generations), the new KEK wrapped by the
 *               volume's CMK (one wrap call, audited), the header sealed
 *               with the MAC key of the new KEK and written; the old KEK
 *               is wiped from memory.  Nothing reaches the kernel: the
 *               DEKs do not change, so the volume stays online.
 *   rekey       the same KEK wrapped under another key configuration
 *               (another CMK, possibly another provider): the context's
 *               keyconfig=<k> and the header's keyconfig, provider,
 *               provider_ref, cmk_id and cmk_version change together, in
 *               one write.  No data and no DEK changes.
 *   shred       segments [first, last]: "key wipe" to the target (I/O to
 *               them fails from here on), their DEK records zeroed
 *               (LC_DEK_GEN_SHREDDED) in both copies together with a KEK
 *               rotation, then their data range zeroed (BLKZEROOUT) and
 *               discarded (BLKSECDISCARD, else BLKDISCARD) where the
 *               device supports it.
 *
 * All take the open volume @v (the caller's copy: v->kek is the KEK the
 * agent holds; on success v's KEK and CMK fields are the new ones, on
 * failure v is unchanged) and @io: NULL to use the volume's header
 * device or file, or a test's storage.  Errors: 0 or -errno with @err;
 * -EBADMSG (INVALID) when no header copy is authenticated by v->kek,
 * -ESTALE when the storage holds another volume, and the provider's
 * classes for the CMK call.  Audited as "rotate-kek", "rekey", "shred",
 * with the CMK call as "cmk.wrap".
 */
#ifndef LC_ROTATE_H
#define LC_ROTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "header.h"
#include "registry.h"
#include "volume.h"

/* A DEK record whose generation is LC_DEK_GEN_SHREDDED and whose nonce,
 * tag and ciphertext are all zero: the segment was crypto-shredded. */
bool lc_dek_is_shredded(const struct lc_wrapped_dek *d, uint32_t key_size);

/* Number of shredded records among the first @count of @h. */
uint32_t lc_header_shredded(const struct lc_header *h, uint32_t count);

int lc_volume_rotate_kek(const struct lc_volume_env *env, struct lc_volume *v,
			 const struct lc_header_io *io, struct lc_error *err);

/* Re-wrap @v's KEK under @to (the workspace's new key configuration).
 * -EALREADY (INVALID) if the header is already under @to. */
int lc_volume_rekey(const struct lc_volume_env *env, struct lc_volume *v,
		    const struct lc_keyconfig *to, const struct lc_header_io *io,
		    struct lc_error *err);

/*
 * Re-key a *closed* volume (an admin's operation, after a workspace
 * re-key): the header at @a->header (detached) or @a->device must belong
 * to workspace @a->workspace and be wrapped under key configuration
 * @from; its KEK is unwrapped under @from's CMK (one KMS call), the MAC
 * verified and the seqno checked against the rollback memory, then the
 * KEK is wrapped under @a->kc (the workspace's binding, one KMS call) and
 * the header written as lc_volume_rekey() does.  -EALREADY if the header
 * is already under @a->kc; -EPERM naming both when it is under neither.
 * @out (may be NULL) receives the new header.
 */
int lc_volume_rekey_closed(const struct lc_volume_env *env, const struct lc_open_args *a,
			   const struct lc_keyconfig *from, struct lc_header **out,
			   struct lc_error *err);

/* What a shred did to the data range (besides the header). */
struct lc_shred_result {
	uint32_t first, last;		/* segments shredded */
	uint64_t offset, length;	/* bytes of the data device zeroed */
	bool wiped;			/* "key wipe" sent to the target */
	bool zeroed;			/* BLKZEROOUT (or zeros written to a file) */
	const char *discard;		/* "secure", "discard", "unsupported", "none" */
};

/* Shred segments @first..@last (inclusive, < the header's segment
 * count) of open volume @v.  -EINVAL for a range out of bounds. */
int lc_volume_shred(const struct lc_volume_env *env, struct lc_volume *v, uint32_t first,
		    uint32_t last, const struct lc_header_io *io, struct lc_shred_result *res,
		    struct lc_error *err);

/* Parse "N" or "A-B" (decimal, A <= B) into *@first, *@last. */
int lc_segment_range_parse(const char *s, uint32_t *first, uint32_t *last, struct lc_error *err);

#endif /* LC_ROTATE_H */
