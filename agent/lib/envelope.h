/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Envelope crypto below the CMK: the volume's KEK and its per-segment DEKs.
 *
 *   KEK   32 random bytes (RAND_priv_bytes), one per volume; stored only
 *         as the provider's ciphertext blob, wrapped by the CMK with the
 *         context lc_kek_context() builds from the volume's identity
 *         (uuid, workspace, project, key configuration).
 *   DEK   key_size random bytes per segment, wrapped by the KEK with
 *         AES-256-GCM, a random 12-byte nonce and
 *           AAD = "lakecrypt-dek-v1" || uuid[16] || be32 segment || be32 generation
 *         so a wrapped DEK moved to another segment, volume or generation
 *         fails authentication.
 *
 * All plaintext keys are struct lc_secret (locked memory).  Functions
 * return 0 or a negative errno and fill @err.
 */
#ifndef LC_ENVELOPE_H
#define LC_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "lc-error.h"
#include "lc-types.h"
#include "secmem.h"

#define LC_DEK_AAD_LABEL	"lakecrypt-dek-v1"
#define LC_DEK_AAD_LEN		(16 + LC_UUID_LEN + 4 + 4)
#define LC_DEK_MIN_LEN		16

/* Version 1 headers: "lakecrypt:volume:<uuid>" (read for migration only). */
#define LC_KEK_CONTEXT_V1_PREFIX "lakecrypt:volume:"
/* Version 2: "lakecrypt:v2;volume=<uuid>;workspace=<w>;project=<p>;keyconfig=<k>" */
#define LC_KEK_CONTEXT_PREFIX	"lakecrypt:v2"
/* prefix + 4 ";key=" labels (at most 11 bytes each) + uuid + 3 names of
 * at most 63 characters + NUL */
#define LC_KEK_CONTEXT_MAX	(sizeof(LC_KEK_CONTEXT_PREFIX) + 4 * 11 + 36 + 3 * 63 + 1)
#define LC_UUID_STR_LEN		37	/* 36 characters + NUL */

/* Who a KEK belongs to: what its encryption context binds. */
struct lc_kek_identity {
	const uint8_t *uuid;		/* LC_UUID_LEN bytes */
	const char *workspace;		/* names: 1..63 of A-Z a-z 0-9 . _ - */
	const char *project;
	const char *keyconfig;
};

/* Canonical lower-case text form of a uuid: 8-4-4-4-12 hex digits. */
void lc_uuid_format(const uint8_t uuid[LC_UUID_LEN], char out[LC_UUID_STR_LEN]);

/*
 * The encryption context (AWS) / AAD (GCP, Azure binding, KMIP, PKCS#11,
 * local KMS) under which the CMK wraps a volume's KEK:
 *   "lakecrypt:v2;volume=<uuid>;workspace=<w>;project=<p>;keyconfig=<k>"
 * The names' alphabet has no ';' or '=', so the string is unambiguous and
 * splits into key=value pairs for providers whose context is a map (AWS:
 * {"lakecrypt:volume": uuid, "lakecrypt:workspace": w, ...}).  The KMS
 * enforces it on unwrap and shows it in the customer's audit trail.
 * -EINVAL if a name is not a valid name (the context is then not built).
 */
int lc_kek_context(const struct lc_kek_identity *id, char out[LC_KEK_CONTEXT_MAX]);
/*
 * The context as key/value pairs, for providers whose context is a map
 * (AWS KMS EncryptionContext): "lakecrypt:volume" -> uuid,
 * "lakecrypt:workspace" -> w, "lakecrypt:project" -> p,
 * "lakecrypt:keyconfig" -> k, in that order.  Only a well-formed version 2
 * context splits (the four labels once each, in order, valid uuid and
 * names); anything else is -EINVAL.  Values point into @buf, a copy of
 * the context (LC_KEK_CONTEXT_MAX bytes) the pairs live in.
 */
#define LC_KEK_CONTEXT_PAIRS	4
#define LC_KEK_CONTEXT_KEY_PREFIX "lakecrypt:"
struct lc_kek_context_pair {
	const char *key;	/* static: "lakecrypt:volume", ... */
	const char *value;	/* in @buf */
};
int lc_kek_context_split(const char *context, char buf[LC_KEK_CONTEXT_MAX],
			 struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS]);
/*
 * The revocation probe's canary context (agent/daemon/probe.c), one per
 * key configuration: "lakecrypt:v2;canary;keyconfig=<k>".  As a map (AWS
 * KMS EncryptionContext) it is {"lakecrypt:purpose": "canary",
 * "lakecrypt:keyconfig": <k>}: no volume, workspace or project key, so a
 * key-policy statement for volumes never matches it by accident and the
 * documented canary statement (Documentation/kms-providers.md) allows it.
 */
#define LC_KEK_CANARY_PREFIX	"lakecrypt:v2;canary;keyconfig="
#define LC_KEK_CANARY_PAIRS	2
/* Build the canary context of key configuration @keyconfig (a name as
 * above); -EINVAL if the name is not valid. */
int lc_canary_context(const char *keyconfig, char out[LC_KEK_CONTEXT_MAX]);
/*
 * Either form of the context as key/value pairs: a volume context
 * (LC_KEK_CONTEXT_PAIRS pairs, as lc_kek_context_split) or a canary
 * context (LC_KEK_CANARY_PAIRS pairs: "lakecrypt:purpose" -> "canary",
 * "lakecrypt:keyconfig" -> k).  Returns the number of pairs, or -EINVAL
 * for anything else (a v1 context, a bad name, trailing text).
 */
int lc_context_pairs(const char *context, char buf[LC_KEK_CONTEXT_MAX],
		     struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS]);
/* The version 1 context, "lakecrypt:volume:<uuid>" (migration only). */
void lc_kek_context_v1(const uint8_t uuid[LC_UUID_LEN], char out[LC_KEK_CONTEXT_MAX]);

/* A fresh random KEK (LC_KEK_LEN bytes) in @kek, allocated here. */
int lc_kek_generate(struct lc_secret *kek, struct lc_error *err);

/* @count fresh random DEKs of @key_size bytes each, back to back in @deks. */
int lc_deks_generate(struct lc_secret *deks, uint32_t count, size_t key_size,
		     struct lc_error *err);

/* Wrap one DEK of @key_size bytes for (uuid, segment, generation). */
int lc_dek_wrap(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		uint32_t segment, uint32_t generation, const uint8_t *dek,
		size_t key_size, struct lc_wrapped_dek *out, struct lc_error *err);

/*
 * Unwrap one DEK into @dek (key_size bytes, caller's secret memory).
 * -EBADMSG / LC_ERRC_INVALID if it does not authenticate for
 * (uuid, segment, in->generation).
 */
int lc_dek_unwrap(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		  uint32_t segment, const struct lc_wrapped_dek *in, size_t key_size,
		  uint8_t *dek, struct lc_error *err);

/*
 * Whole volume.  lc_deks_wrap_all wraps DEK i of @deks (count * key_size
 * bytes) for segment i into recs[i], with the generation the caller has
 * already put in recs[i].generation (the rest of the record is filled).
 * lc_deks_unwrap_all allocates @deks (count * key_size bytes, locked) and
 * unwraps recs[i] for segment i into it; on any failure nothing is
 * returned (the partial result is wiped) and @err names the segment.
 * One EVP_CIPHER_CTX and one key schedule serve the whole volume.
 */
int lc_deks_wrap_all(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		     const struct lc_secret *deks, uint32_t count, size_t key_size,
		     struct lc_wrapped_dek *recs, struct lc_error *err);
int lc_deks_unwrap_all(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		       const struct lc_wrapped_dek *recs, uint32_t count, size_t key_size,
		       struct lc_secret *deks, struct lc_error *err);

#endif /* LC_ENVELOPE_H */
