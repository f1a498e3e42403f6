// SPDX-License-Identifier: GPL-2.0
/*
 * KEK and DEK generation, and DEK wrapping by the KEK (AES-256-GCM bound to
 * volume, segment and generation).  The bulk functions set the KEK once on
 * one EVP_CIPHER_CTX and only change the nonce per record: opening a
 * 65,536-segment volume is 65,536 small GCM operations, no key schedules.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "envelope.h"

void lc_uuid_format(const uint8_t uuid[LC_UUID_LEN], char out[LC_UUID_STR_LEN])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (int i = 0; i < LC_UUID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[uuid[i] >> 4];
		out[o++] = hex[uuid[i] & 0xf];
	}
	out[o] = '\0';
}

void lc_kek_context_v1(const uint8_t uuid[LC_UUID_LEN], char out[LC_KEK_CONTEXT_MAX])
{
	char u[LC_UUID_STR_LEN];

	lc_uuid_format(uuid, u);
	snprintf(out, LC_KEK_CONTEXT_MAX, "%s%s", LC_KEK_CONTEXT_V1_PREFIX, u);
}

/* The header's name rule: 1..63 of A-Z a-z 0-9 . _ -, first alphanumeric. */
static bool context_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 63 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

int lc_kek_context(const struct lc_kek_identity *id, char out[LC_KEK_CONTEXT_MAX])
{
	char u[LC_UUID_STR_LEN];
	int n;

	out[0] = '\0';
	if (!id->uuid || !context_name(id->workspace) || !context_name(id->project) ||
	    !context_name(id->keyconfig))
		return -EINVAL;
	lc_uuid_format(id->uuid, u);
	n = snprintf(out, LC_KEK_CONTEXT_MAX,
		     "%s;volume=%s;workspace=%s;project=%s;keyconfig=%s", LC_KEK_CONTEXT_PREFIX,
		     u, id->workspace, id->project, id->keyconfig);
	if (n < 0 || n >= (int)LC_KEK_CONTEXT_MAX) {
		out[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

static bool context_uuid(const char *s)
{
	if (strlen(s) != LC_UUID_STR_LEN - 1)
		return false;
	for (int i = 0; s[i]; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

int lc_kek_context_split(const char *context, char buf[LC_KEK_CONTEXT_MAX],
			 struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS])
{
	static const char *const labels[LC_KEK_CONTEXT_PAIRS] = {
		"volume", "workspace", "project", "keyconfig" };
	static const char *const keys[LC_KEK_CONTEXT_PAIRS] = {
		LC_KEK_CONTEXT_KEY_PREFIX "volume", LC_KEK_CONTEXT_KEY_PREFIX "workspace",
		LC_KEK_CONTEXT_KEY_PREFIX "project", LC_KEK_CONTEXT_KEY_PREFIX "keyconfig" };
	size_t plen = strlen(LC_KEK_CONTEXT_PREFIX);
	char *p;

	buf[0] = '\0';
	memset(pairs, 0, sizeof(*pairs) * LC_KEK_CONTEXT_PAIRS);
	if (!context || strlen(context) >= LC_KEK_CONTEXT_MAX ||
	    strncmp(context, LC_KEK_CONTEXT_PREFIX, plen) || context[plen] != ';')
		return -EINVAL;
	strcpy(buf, context);
	p = buf + plen;
	for (int i = 0; i < LC_KEK_CONTEXT_PAIRS; i++) {
		size_t l = strlen(labels[i]);
		char *end;

		if (*p != ';' || strncmp(p + 1, labels[i], l) || p[1 + l] != '=')
			goto bad;
		p += 2 + l;
		end = strchr(p, ';');
		if (end)
			*end = '\0';
		if (i == LC_KEK_CONTEXT_PAIRS - 1 ? end != NULL : end == NULL)
			goto bad;
		if (i == 0 ? !context_uuid(p) : !context_name(p))
			goto bad;
		pairs[i].key = keys[i];
		pairs[i].value = p;
		if (end) {
			*end = ';';	/* restored below, once all are checked */
			p = end;
		}
	}
	/* Cut the values apart now that the shape is known to be right. */
	for (int i = 0; i < LC_KEK_CONTEXT_PAIRS - 1; i++)
		*strchr(pairs[i].value, ';') = '\0';
	return 0;
bad:
	buf[0] = '\0';
	memset(pairs, 0, sizeof(*pairs) * LC_KEK_CONTEXT_PAIRS);
	return -EINVAL;
}

int lc_canary_context(const char *keyconfig, char out[LC_KEK_CONTEXT_MAX])
{
	out[0] = '\0';
	if (!context_name(keyconfig))
		return -EINVAL;
	snprintf(out, LC_KEK_CONTEXT_MAX, "%s%s", LC_KEK_CANARY_PREFIX, keyconfig);
	return 0;
}

int lc_context_pairs(const char *context, char buf[LC_KEK_CONTEXT_MAX],
		     struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS])
{
	size_t plen = strlen(LC_KEK_CANARY_PREFIX);

	if (context && !strncmp(context, LC_KEK_CANARY_PREFIX, plen)) {
		buf[0] = '\0';
		memset(pairs, 0, sizeof(*pairs) * LC_KEK_CONTEXT_PAIRS);
		if (strlen(context) >= LC_KEK_CONTEXT_MAX || !context_name(context + plen))
			return -EINVAL;
		strcpy(buf, context + plen);
		pairs[0].key = LC_KEK_CONTEXT_KEY_PREFIX "purpose";
		pairs[0].value = "canary";
		pairs[1].key = LC_KEK_CONTEXT_KEY_PREFIX "keyconfig";
		pairs[1].value = buf;
		return LC_KEK_CANARY_PAIRS;
	}
	return lc_kek_context_split(context, buf, pairs) ? -EINVAL : LC_KEK_CONTEXT_PAIRS;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void dek_aad(uint8_t aad[LC_DEK_AAD_LEN], const uint8_t uuid[LC_UUID_LEN],
		    uint32_t segment, uint32_t generation)
{
	memcpy(aad, LC_DEK_AAD_LABEL, 16);
	memcpy(aad + 16, uuid, LC_UUID_LEN);
	put_be32(aad + 16 + LC_UUID_LEN, segment);
	put_be32(aad + 20 + LC_UUID_LEN, generation);
}

static int check_key_size(size_t key_size, struct lc_error *err)
{
	if (key_size < LC_DEK_MIN_LEN || key_size > LC_DEK_MAX_LEN)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "DEK size %zu bytes is out of range: expected %d to %d",
			      key_size, LC_DEK_MIN_LEN, LC_DEK_MAX_LEN);
	return 0;
}

static int check_kek(const struct lc_secret *kek, struct lc_error *err)
{
	if (!kek || !kek->p || kek->len != LC_KEK_LEN)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL,
			      "KEK missing or not %d bytes", LC_KEK_LEN);
	return 0;
}

int lc_kek_generate(struct lc_secret *kek, struct lc_error *err)
{
	int r = lc_secret_alloc(kek, LC_KEK_LEN);

	if (r)
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot allocate key memory for the KEK");
	r = lc_rand_bytes(kek->p, LC_KEK_LEN, true, "a KEK", err);
	if (r < 0)
		lc_secret_free(kek);
	return r;
}

int lc_deks_generate(struct lc_secret *deks, uint32_t count, size_t key_size,
		     struct lc_error *err)
{
	int r = check_key_size(key_size, err);

	if (r)
		return r;
	if (count == 0 || count > LAKECRYPT_MAX_SEGMENTS)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment count %u is out of range: expected 1 to %u",
			      count, LAKECRYPT_MAX_SEGMENTS);
	r = lc_secret_alloc(deks, (size_t)count * key_size);
	if (r)
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot allocate key memory for %u DEKs", count);
	/* RAND_priv_bytes takes an int length: draw in slices. */
	for (size_t off = 0; off < deks->len; off += 1 << 20) {
		size_t n = deks->len - off < (1 << 20) ? deks->len - off : (1 << 20);

		r = lc_rand_bytes(deks->p + off, n, true, "DEKs", err);
		if (r < 0) {
			lc_secret_free(deks);
			return r;
		}
	}
	return 0;
}

/* One EVP_CIPHER_CTX keyed with the KEK, for a run of records. */
static int gcm_ctx(const struct lc_secret *kek, int enc, EVP_CIPHER_CTX **out,
		   struct lc_error *err)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	*out = NULL;
	if (!ctx)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory for a cipher context");
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, LC_DEK_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, kek->p, NULL, enc) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "OpenSSL cannot set up AES-256-GCM");
	}
	*out = ctx;
	return 0;
}

static int wrap_one(EVP_CIPHER_CTX *ctx, const uint8_t uuid[LC_UUID_LEN], uint32_t segment,
		    const uint8_t *dek, size_t key_size, struct lc_wrapped_dek *out,
		    struct lc_error *err)
{
	uint8_t aad[LC_DEK_AAD_LEN];
	int n, fin;

	dek_aad(aad, uuid, segment, out->generation);
	memset(out->ct, 0, sizeof(out->ct));
	if (lc_rand_bytes(out->nonce, LC_DEK_NONCE_LEN, false, "a nonce", err) < 0)
		return -EIO;
	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, out->nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, out->ct, &n, dek, (int)key_size) != 1 ||
	    EVP_EncryptFinal_ex(ctx, out->ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, LC_DEK_TAG_LEN, out->tag) != 1)
		return lc_err(err, -EIO, LC_ERRC_INTERNAL,
			      "AES-256-GCM failed to wrap the DEK of segment %u", segment);
	return 0;
}

static int unwrap_one(EVP_CIPHER_CTX *ctx, const uint8_t uuid[LC_UUID_LEN], uint32_t segment,
		      const struct lc_wrapped_dek *in, size_t key_size, uint8_t *dek,
		      struct lc_error *err)
{
	uint8_t aad[LC_DEK_AAD_LEN];
	uint8_t tail[16];
	int n, fin;

	dek_aad(aad, uuid, segment, in->generation);
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, in->nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, dek, &n, in->ct, (int)key_size) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, LC_DEK_TAG_LEN, (void *)in->tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, tail, &fin) != 1) {
		lc_wipe(dek, key_size);
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "wrapped DEK of segment %u (generation %u) does not authenticate under this volume's KEK: the header is corrupt, or the record belongs to another segment, volume or generation",
			      segment, in->generation);
	}
	return 0;
}

int lc_dek_wrap(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		uint32_t segment, uint32_t generation, const uint8_t *dek,
		size_t key_size, struct lc_wrapped_dek *out, struct lc_error *err)
{
	EVP_CIPHER_CTX *ctx;
	int r;

	r = check_kek(kek, err);
	if (!r)
		r = check_key_size(key_size, err);
	if (r)
		return r;
	r = gcm_ctx(kek, 1, &ctx, err);
	if (r)
		return r;
	out->generation = generation;
	r = wrap_one(ctx, uuid, segment, dek, key_size, out, err);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int lc_dek_unwrap(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		  uint32_t segment, const struct lc_wrapped_dek *in, size_t key_size,
		  uint8_t *dek, struct lc_error *err)
{
	EVP_CIPHER_CTX *ctx;
	int r;

	r = check_kek(kek, err);
	if (!r)
		r = check_key_size(key_size, err);
	if (r)
		return r;
	r = gcm_ctx(kek, 0, &ctx, err);
	if (r)
		return r;
	r = unwrap_one(ctx, uuid, segment, in, key_size, dek, err);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

static int check_bulk(const struct lc_secret *kek, uint32_t count, size_t key_size,
		      struct lc_error *err)
{
	int r = check_kek(kek, err);

	if (!r)
		r = check_key_size(key_size, err);
	if (!r && (count == 0 || count > LAKECRYPT_MAX_SEGMENTS))
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "segment count %u is out of range: expected 1 to %u",
			   count, LAKECRYPT_MAX_SEGMENTS);
	return r;
}

int lc_deks_wrap_all(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		     const struct lc_secret *deks, uint32_t count, size_t key_size,
		     struct lc_wrapped_dek *recs, struct lc_error *err)
{
	EVP_CIPHER_CTX *ctx;
	int r = check_bulk(kek, count, key_size, err);

	if (r)
		return r;
	if (!deks || !deks->p || deks->len < (size_t)count * key_size)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL,
			      "DEK buffer holds fewer than %u keys of %zu bytes", count, key_size);
	r = gcm_ctx(kek, 1, &ctx, err);
	if (r)
		return r;
	for (uint32_t i = 0; i < count && !r; i++)
		r = wrap_one(ctx, uuid, i, deks->p + (size_t)i * key_size, key_size, &recs[i], err);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int lc_deks_unwrap_all(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		       const struct lc_wrapped_dek *recs, uint32_t count, size_t key_size,
		       struct lc_secret *deks, struct lc_error *err)
{
	EVP_CIPHER_CTX *ctx;
	int r = check_bulk(kek, count, key_size, err);

	deks->p = NULL;
	deks->len = 0;
	if (r)
		return r;
	r = lc_secret_alloc(deks, (size_t)count * key_size);
	if (r)
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot allocate key memory for %u DEKs", count);
	r = gcm_ctx(kek, 0, &ctx, err);
	if (r) {
		lc_secret_free(deks);
		return r;
	}
	for (uint32_t i = 0; i < count && !r; i++)
		r = unwrap_one(ctx, uuid, i, &recs[i], key_size, deks->p + (size_t)i * key_size, err);
	EVP_CIPHER_CTX_free(ctx);
	if (r)
		lc_secret_free(deks);
	return r;
}
