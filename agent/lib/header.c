// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt volume header: the codec and the two-copy update protocol.
 * Layout: include/lakecrypt/ondisk.h; prose: Documentation/on-disk-format.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "header.h"
#include "envelope.h"

/* The field table of ondisk.h must tile the fixed part exactly. */
#define TILES(a, size, b) _Static_assert((a) + (size) == (b), #a " + " #size " != " #b)
TILES(LC_HDR_OFF_MAGIC, LC_HDR_MAGIC_LEN, LC_HDR_OFF_VERSION);
TILES(LC_HDR_OFF_VERSION, 2, LC_HDR_OFF_COPY);
TILES(LC_HDR_OFF_COPY, 2, LC_HDR_OFF_FLAGS);
TILES(LC_HDR_OFF_FLAGS, 4, LC_HDR_OFF_SEQNO);
TILES(LC_HDR_OFF_SEQNO, 8, LC_HDR_OFF_HDR_SIZE);
TILES(LC_HDR_OFF_HDR_SIZE, 8, LC_HDR_OFF_AREA_SIZE);
TILES(LC_HDR_OFF_AREA_SIZE, 8, LC_HDR_OFF_CREATED);
TILES(LC_HDR_OFF_CREATED, 8, LC_HDR_OFF_CHECKSUM);
TILES(LC_HDR_OFF_CHECKSUM, LC_HDR_CHECKSUM_LEN, LC_HDR_OFF_UUID);
TILES(LC_HDR_OFF_UUID, LC_UUID_LEN, LC_HDR_OFF_KEY_SIZE);
TILES(LC_HDR_OFF_KEY_SIZE, 4, LC_HDR_OFF_SEGMENT_COUNT);
TILES(LC_HDR_OFF_SEGMENT_COUNT, 4, LC_HDR_OFF_SEGMENT_SECTORS);
TILES(LC_HDR_OFF_SEGMENT_SECTORS, 8, LC_HDR_OFF_DATA_OFFSET);
TILES(LC_HDR_OFF_DATA_OFFSET, 8, LC_HDR_OFF_DEK_STRIDE);
TILES(LC_HDR_OFF_DEK_STRIDE, 4, LC_HDR_OFF_DEK_TABLE);
TILES(LC_HDR_OFF_DEK_TABLE, 4, LC_HDR_OFF_KEK_LEN);
TILES(LC_HDR_OFF_KEK_LEN, 4, LC_HDR_OFF_WRAP_CTX_LEN);
TILES(LC_HDR_OFF_WRAP_CTX_LEN, 4, LC_HDR_OFF_SECTOR_SIZE);
TILES(LC_HDR_OFF_SECTOR_SIZE, 4, LC_HDR_OFF_MAC);
TILES(LC_HDR_OFF_MAC, LC_HDR_MAC_LEN, LC_HDR_OFF_RESERVED1);
TILES(LC_HDR_OFF_RESERVED1, LC_HDR_RESERVED1_SIZE, LC_HDR_OFF_WORKSPACE);
TILES(LC_HDR_OFF_WORKSPACE, LC_HDR_NAME_SIZE, LC_HDR_OFF_PROJECT);
TILES(LC_HDR_OFF_PROJECT, LC_HDR_NAME_SIZE, LC_HDR_OFF_KEYCONFIG);
TILES(LC_HDR_OFF_KEYCONFIG, LC_HDR_NAME_SIZE, LC_HDR_OFF_PROVIDER);
TILES(LC_HDR_OFF_PROVIDER, LC_HDR_PROVIDER_SIZE, LC_HDR_OFF_CIPHER);
TILES(LC_HDR_OFF_CIPHER, LC_HDR_CIPHER_SIZE, LC_HDR_OFF_CMK_VERSION);
TILES(LC_HDR_OFF_CMK_VERSION, LC_HDR_CMK_VERSION_SIZE, LC_HDR_OFF_RESERVED2);
TILES(LC_HDR_OFF_RESERVED2, LC_HDR_RESERVED2_SIZE, LC_HDR_OFF_PROVIDER_REF);
TILES(LC_HDR_OFF_PROVIDER_REF, LC_HDR_PROVIDER_REF_SIZE, LC_HDR_OFF_CMK_ID);
TILES(LC_HDR_OFF_CMK_ID, LC_HDR_CMK_ID_SIZE, LC_HDR_OFF_WRAP_CTX);
TILES(LC_HDR_OFF_WRAP_CTX, LC_HDR_WRAP_CTX_MAX, LC_HDR_OFF_KEK);
TILES(LC_HDR_OFF_KEK, LC_HDR_KEK_MAX, LC_HDR_OFF_RESERVED3);
TILES(LC_HDR_OFF_RESERVED3, LC_HDR_RESERVED3_SIZE, LC_HDR_FIXED_SIZE);
_Static_assert(LC_HDR_KEY_SIZE_MAX == LAKECRYPT_MAX_KEY_SIZE, "key size limit");
_Static_assert(LC_HDR_SEGMENTS_MAX == LAKECRYPT_MAX_SEGMENTS, "segment limit");
_Static_assert(LC_HDR_SEGMENT_SECTORS_MIN == LAKECRYPT_MIN_SEGMENT_SECTORS, "segment size");
_Static_assert(LC_HDR_AREA_MIN << (LC_HDR_AREA_CANDIDATES - 1) == LC_HDR_AREA_MAX, "areas");
_Static_assert(LC_HDR_FIXED_SIZE + (uint64_t)LC_HDR_SEGMENTS_MAX *
	       ((LC_DEK_REC_HDR + LC_HDR_KEY_SIZE_MAX + LC_DEK_REC_ALIGN - 1) /
		LC_DEK_REC_ALIGN * LC_DEK_REC_ALIGN) <= LC_HDR_AREA_MAX, "largest header fits");

#define ERASE_LEN 4096		/* bytes zeroed over a stale copy's start */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static const char *copy_name(int copy)
{
	return copy ? "B" : "A";
}

uint32_t lc_header_dek_stride(uint32_t key_size)
{
	if (key_size < LC_HDR_KEY_SIZE_MIN || key_size > LC_HDR_KEY_SIZE_MAX)
		return 0;
	return (LC_DEK_REC_HDR + key_size + LC_DEK_REC_ALIGN - 1) / LC_DEK_REC_ALIGN *
	       LC_DEK_REC_ALIGN;
}

int lc_header_layout(uint32_t segment_count, uint32_t key_size, uint64_t *hdr_bytes,
		     uint64_t *area_bytes, uint64_t *data_offset_sectors, struct lc_error *err)
{
	uint32_t stride = lc_header_dek_stride(key_size);
	uint64_t hdr, area, data;

	if (!stride)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key size %" PRIu32 " out of range: expected %d..%d bytes",
			      key_size, LC_HDR_KEY_SIZE_MIN, LC_HDR_KEY_SIZE_MAX);
	if (segment_count < LC_HDR_SEGMENTS_MIN || segment_count > LC_HDR_SEGMENTS_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment count %" PRIu32 " out of range: expected %u..%u",
			      segment_count, LC_HDR_SEGMENTS_MIN, LC_HDR_SEGMENTS_MAX);
	hdr = LC_HDR_FIXED_SIZE + (uint64_t)segment_count * stride;
	for (area = LC_HDR_AREA_MIN; area < hdr; area <<= 1)
		;
	data = (2 * area + LC_HDR_DATA_ALIGN - 1) / LC_HDR_DATA_ALIGN * LC_HDR_DATA_ALIGN;
	if (hdr_bytes)
		*hdr_bytes = hdr;
	if (area_bytes)
		*area_bytes = area;
	if (data_offset_sectors)
		*data_offset_sectors = data / 512;
	return 0;
}

struct lc_header *lc_header_new(uint32_t segment_count, uint32_t key_size)
{
	struct lc_header *h;

	if (lc_header_layout(segment_count, key_size, NULL, NULL, NULL, NULL))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->deks = calloc(segment_count, sizeof(*h->deks));
	if (!h->deks) {
		free(h);
		return NULL;
	}
	h->version = LC_HDR_VERSION;
	h->segment_count = segment_count;
	h->key_size = key_size;
	h->sector_size = LC_HDR_SECTOR_SIZE_MIN;
	snprintf(h->cipher, sizeof(h->cipher), "aes-xts-plain64");
	return h;
}

void lc_header_free(struct lc_header *h)
{
	if (!h)
		return;
	free(h->deks);
	free(h->wrapped_kek.p);
	free(h->wrap_context.p);
	free(h);
}

static int buf_dup(struct lc_buf *dst, const struct lc_buf *src)
{
	dst->len = src->len;
	dst->p = src->len ? malloc(src->len) : NULL;
	if (src->len && !dst->p)
		return -ENOMEM;
	if (src->len)
		memcpy(dst->p, src->p, src->len);
	return 0;
}

struct lc_header *lc_header_resized(const struct lc_header *h, uint32_t segment_count)
{
	struct lc_header *n = lc_header_new(segment_count, h->key_size);
	struct lc_wrapped_dek *deks;

	if (!n)
		return NULL;
	deks = n->deks;
	*n = *h;
	n->deks = deks;
	n->segment_count = segment_count;
	n->mac_key = NULL;
	n->wrapped_kek.p = NULL;
	n->wrap_context.p = NULL;
	memcpy(n->deks, h->deks,
	       (size_t)(segment_count < h->segment_count ? segment_count : h->segment_count) *
	       sizeof(*n->deks));
	if (buf_dup(&n->wrapped_kek, &h->wrapped_kek) ||
	    buf_dup(&n->wrap_context, &h->wrap_context)) {
		lc_header_free(n);
		return NULL;
	}
	return n;
}

void lc_header_uuid_str(const struct lc_header *h, char out[37])
{
	lc_uuid_format(h->uuid, out);
}

/* ---- field rules: the one place that decides what a valid header is ---- */

enum str_kind {
	STR_NAME,	/* 1.. chars of [A-Za-z0-9._-], first alphanumeric */
	STR_PRINT,	/* 1.. printable ASCII */
	STR_PRINT0,	/* 0.. printable ASCII */
	STR_CIPHER,	/* dm-crypt spec ending in -plain64 */
};

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int check_str(const char *s, size_t size, enum str_kind kind, const char *what,
		     struct lc_error *err)
{
	const char *nul = memchr(s, '\0', size);
	size_t len;

	if (!nul)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s is not NUL-terminated within its %zu-byte field", what, size);
	len = (size_t)(nul - s);
	if (len == 0 && kind != STR_PRINT0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "%s is empty", what);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok;

		switch (kind) {
		case STR_NAME:
			ok = is_alnum(c) || (i > 0 && (c == '.' || c == '_' || c == '-'));
			break;
		case STR_CIPHER:
			ok = is_alnum(c) || strchr("(),:_-", c);
			break;
		default:
			ok = c >= 0x20 && c <= 0x7e;
			break;
		}
		if (!ok)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "%s has a forbidden character (byte 0x%02x at position %zu); "
				      "expected %s", what, (unsigned char)c, i,
				      kind == STR_NAME ? "letters, digits, '.', '_', '-', starting with a letter or digit" :
				      kind == STR_CIPHER ? "a dm-crypt cipher spec" :
				      "printable ASCII");
	}
	if (kind == STR_CIPHER) {
		size_t sl = strlen(LC_HDR_CIPHER_SUFFIX);

		if (len <= sl || strcmp(s + len - sl, LC_HDR_CIPHER_SUFFIX))
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "%s \"%s\" does not use the plain64 IV: expected <cipher>%s",
				      what, s, LC_HDR_CIPHER_SUFFIX);
	}
	return 0;
}

/* The re-key journal against the rest of @h (ondisk.h, version 3). */
static int check_journal(const struct lc_header *h, struct lc_error *err)
{
	const struct lc_rekey_journal *j = &h->journal;
	uint64_t sectors = h->segment_sectors / (h->sector_size / 512);

	if (j->segment >= h->segment_count)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "re-key journal: segment %" PRIu32 " beyond the %" PRIu32 " segments",
			      j->segment, h->segment_count);
	if (j->old_gen == LC_DEK_GEN_SHREDDED || j->new_gen != j->old_gen + 1 ||
	    j->dek.generation != j->new_gen)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "re-key journal: generations %" PRIu32 " -> %" PRIu32
			      " (record %" PRIu32 "): expected old >= 1 and new = old + 1",
			      j->old_gen, j->new_gen, j->dek.generation);
	if (h->deks && h->deks[j->segment].generation != j->old_gen)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "re-key journal: old generation %" PRIu32 " but segment %" PRIu32
			      " holds generation %" PRIu32, j->old_gen, j->segment,
			      h->deks[j->segment].generation);
	if (j->zone > LC_RKJ_ZONE_MAX || j->done > sectors || j->zone > sectors - j->done)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "re-key journal: zone of %" PRIu32 " sectors after %" PRIu64
			      " does not fit the segment's %" PRIu64 " (at most %d per zone)",
			      j->zone, j->done, sectors, LC_RKJ_ZONE_MAX);
	for (uint32_t i = j->zone; i < LC_RKJ_ZONE_MAX; i++)
		if (!all_zero(j->old_digest[i], LC_RKJ_DIGEST_LEN) ||
		    !all_zero(j->new_digest[i], LC_RKJ_DIGEST_LEN))
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "re-key journal: digests beyond the zone are not zero");
	return 0;
}

static int check_fields(const struct lc_header *h, bool need_deks, struct lc_error *err)
{
	uint64_t area, span;
	int r;

	if (!h)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "no header");
	r = lc_header_layout(h->segment_count, h->key_size, NULL, &area, NULL, err);
	if (r)
		return r;
	if (h->version && h->version != LC_HDR_VERSION && h->version != LC_HDR_VERSION_V1 &&
	    h->version != LC_HDR_VERSION_V3)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "header version %u: expected %d, %d or %d",
			      h->version, LC_HDR_VERSION_V1, LC_HDR_VERSION, LC_HDR_VERSION_V3);
	if ((h->version == LC_HDR_VERSION_V3) != h->journal.active)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      h->journal.active ? "a re-key journal needs header version %d" :
			      "header version %d without a re-key journal", LC_HDR_VERSION_V3);
	if (h->flags & ~LC_HDR_F_ALL)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "unknown flags 0x%08" PRIx32 " (this build knows 0x%08x)",
			      h->flags & ~LC_HDR_F_ALL, LC_HDR_F_ALL);
	if (all_zero(h->uuid, LC_UUID_LEN))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "volume uuid is all zeros");
	if (!is_pow2(h->segment_sectors) || h->segment_sectors < LC_HDR_SEGMENT_SECTORS_MIN ||
	    h->segment_sectors > LC_HDR_SEGMENT_SECTORS_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment size %" PRIu64 " sectors: expected a power of two in %d..%llu",
			      h->segment_sectors, LC_HDR_SEGMENT_SECTORS_MIN,
			      LC_HDR_SEGMENT_SECTORS_MAX);
	if (!is_pow2(h->sector_size) || h->sector_size < LC_HDR_SECTOR_SIZE_MIN ||
	    h->sector_size > LC_HDR_SECTOR_SIZE_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "sector size %" PRIu32 ": expected a power of two in %d..%d",
			      h->sector_size, LC_HDR_SECTOR_SIZE_MIN, LC_HDR_SECTOR_SIZE_MAX);
	if (h->data_offset % (h->sector_size / 512))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "data offset %" PRIu64 " is not a multiple of the %" PRIu32
			      "-byte sector size", h->data_offset, h->sector_size);
	span = (uint64_t)h->segment_count * h->segment_sectors;	/* <= 2^52 */
	if (h->data_offset > LC_HDR_MAX_SECTORS - span)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "data area (offset %" PRIu64 ", %" PRIu64 " sectors) ends beyond "
			      "sector 2^55", h->data_offset, span);
	if (!(h->flags & LC_HDR_F_DETACHED) && h->data_offset < 2 * area / 512)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "data offset %" PRIu64 " sectors overlaps the header copies, which "
			      "end at sector %" PRIu64 " (use a detached header to put data at 0)",
			      h->data_offset, 2 * area / 512);
	if ((r = check_str(h->workspace, sizeof(h->workspace), STR_NAME, "workspace", err)) ||
	    (r = check_str(h->project, sizeof(h->project), STR_NAME, "project name", err)) ||
	    (r = check_str(h->keyconfig, sizeof(h->keyconfig), STR_NAME,
			   "key configuration name", err)) ||
	    (r = check_str(h->provider, sizeof(h->provider), STR_NAME, "provider kind", err)) ||
	    (r = check_str(h->provider_ref, sizeof(h->provider_ref), STR_PRINT,
			   "provider key reference", err)) ||
	    (r = check_str(h->cmk_id, sizeof(h->cmk_id), STR_PRINT, "CMK id", err)) ||
	    (r = check_str(h->cmk_version, sizeof(h->cmk_version), STR_PRINT0, "CMK version",
			   err)) ||
	    (r = check_str(h->cipher, sizeof(h->cipher), STR_CIPHER, "cipher", err)))
		return r;
	if (!h->wrapped_kek.p || h->wrapped_kek.len < 1 || h->wrapped_kek.len > LC_HDR_KEK_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "wrapped KEK length %zu: expected 1..%d bytes", h->wrapped_kek.len,
			      LC_HDR_KEK_MAX);
	if (!h->wrap_context.p || h->wrap_context.len < 1 ||
	    h->wrap_context.len > LC_HDR_WRAP_CTX_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "wrap context length %zu: expected 1..%d bytes", h->wrap_context.len,
			      LC_HDR_WRAP_CTX_MAX);
	if (need_deks && !h->deks)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "no DEK table");
	return h->journal.active ? check_journal(h, err) : 0;
}

int lc_header_check(const struct lc_header *h, struct lc_error *err)
{
	return check_fields(h, true, err);
}

/* ---- codec ---- */

int lc_header_checksum(const void *buf, size_t hdr_size, uint8_t out[LC_HDR_CHECKSUM_LEN])
{
	static const uint8_t zero[LC_HDR_CHECKSUM_LEN];
	const uint8_t *p = buf;
	unsigned int olen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if (hdr_size < LC_HDR_OFF_CHECKSUM + LC_HDR_CHECKSUM_LEN)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(ctx, p, LC_HDR_OFF_CHECKSUM) &&
	     EVP_DigestUpdate(ctx, zero, sizeof(zero)) &&
	     EVP_DigestUpdate(ctx, p + LC_HDR_OFF_UUID, hdr_size - LC_HDR_OFF_UUID) &&
	     EVP_DigestFinal_ex(ctx, out, &olen) && olen == LC_HDR_CHECKSUM_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

static void put_str(uint8_t *buf, size_t off, const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	memcpy(buf + off, s, n);	/* the rest of the field stays zero */
}

/* Encode into @buf (hdr_size bytes, zeroed by the caller); no checksum. */
static void encode_into(const struct lc_header *h, int copy, uint64_t seqno, uint8_t *buf,
			uint64_t hdr, uint64_t area)
{
	uint32_t stride = lc_header_dek_stride(h->key_size);
	uint8_t *rec = buf + LC_HDR_FIXED_SIZE;

	memcpy(buf + LC_HDR_OFF_MAGIC, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN);
	put16(buf + LC_HDR_OFF_VERSION, h->version ? h->version : LC_HDR_VERSION);
	put16(buf + LC_HDR_OFF_COPY, (uint16_t)copy);
	put32(buf + LC_HDR_OFF_FLAGS, h->flags);
	put64(buf + LC_HDR_OFF_SEQNO, seqno);
	put64(buf + LC_HDR_OFF_HDR_SIZE, hdr);
	put64(buf + LC_HDR_OFF_AREA_SIZE, area);
	put64(buf + LC_HDR_OFF_CREATED, h->created);
	memcpy(buf + LC_HDR_OFF_UUID, h->uuid, LC_UUID_LEN);
	put32(buf + LC_HDR_OFF_KEY_SIZE, h->key_size);
	put32(buf + LC_HDR_OFF_SEGMENT_COUNT, h->segment_count);
	put64(buf + LC_HDR_OFF_SEGMENT_SECTORS, h->segment_sectors);
	put64(buf + LC_HDR_OFF_DATA_OFFSET, h->data_offset);
	put32(buf + LC_HDR_OFF_DEK_STRIDE, stride);
	put32(buf + LC_HDR_OFF_DEK_TABLE, LC_HDR_FIXED_SIZE);
	put32(buf + LC_HDR_OFF_KEK_LEN, (uint32_t)h->wrapped_kek.len);
	put32(buf + LC_HDR_OFF_WRAP_CTX_LEN, (uint32_t)h->wrap_context.len);
	put32(buf + LC_HDR_OFF_SECTOR_SIZE, h->sector_size);
	put_str(buf, LC_HDR_OFF_WORKSPACE, h->workspace, LC_HDR_NAME_SIZE);
	put_str(buf, LC_HDR_OFF_PROJECT, h->project, LC_HDR_NAME_SIZE);
	put_str(buf, LC_HDR_OFF_KEYCONFIG, h->keyconfig, LC_HDR_NAME_SIZE);
	put_str(buf, LC_HDR_OFF_PROVIDER, h->provider, LC_HDR_PROVIDER_SIZE);
	put_str(buf, LC_HDR_OFF_CIPHER, h->cipher, LC_HDR_CIPHER_SIZE);
	put_str(buf, LC_HDR_OFF_CMK_VERSION, h->cmk_version, LC_HDR_CMK_VERSION_SIZE);
	put_str(buf, LC_HDR_OFF_PROVIDER_REF, h->provider_ref, LC_HDR_PROVIDER_REF_SIZE);
	put_str(buf, LC_HDR_OFF_CMK_ID, h->cmk_id, LC_HDR_CMK_ID_SIZE);
	memcpy(buf + LC_HDR_OFF_WRAP_CTX, h->wrap_context.p, h->wrap_context.len);
	memcpy(buf + LC_HDR_OFF_KEK, h->wrapped_kek.p, h->wrapped_kek.len);
	if (h->version != LC_HDR_VERSION_V1)
		memcpy(buf + LC_HDR_OFF_MAC, h->mac, LC_HDR_MAC_LEN);
	if (h->journal.active) {
		const struct lc_rekey_journal *j = &h->journal;
		uint8_t *p = buf + LC_HDR_OFF_JOURNAL;

		memcpy(p, LC_RKJ_MAGIC, LC_RKJ_MAGIC_LEN);
		put32(p + LC_RKJ_OFF_SEGMENT, j->segment);
		put32(p + LC_RKJ_OFF_OLD_GEN, j->old_gen);
		put32(p + LC_RKJ_OFF_NEW_GEN, j->new_gen);
		put32(p + LC_RKJ_OFF_ZONE, j->zone);
		put64(p + LC_RKJ_OFF_DONE, j->done);
		put32(p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_GENERATION, j->dek.generation);
		memcpy(p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_NONCE, j->dek.nonce, LC_DEK_NONCE_LEN);
		memcpy(p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_TAG, j->dek.tag, LC_DEK_TAG_LEN);
		memcpy(p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_CT, j->dek.ct, h->key_size);
		for (uint32_t i = 0; i < j->zone && i < LC_RKJ_ZONE_MAX; i++) {
			memcpy(p + LC_RKJ_OFF_DIGESTS + 2 * i * LC_RKJ_DIGEST_LEN, j->old_digest[i],
			       LC_RKJ_DIGEST_LEN);
			memcpy(p + LC_RKJ_OFF_DIGESTS + (2 * i + 1) * LC_RKJ_DIGEST_LEN,
			       j->new_digest[i], LC_RKJ_DIGEST_LEN);
		}
	}
	for (uint32_t i = 0; i < h->segment_count; i++, rec += stride) {
		const struct lc_wrapped_dek *d = &h->deks[i];

		put32(rec + LC_DEK_REC_OFF_GENERATION, d->generation);
		memcpy(rec + LC_DEK_REC_OFF_NONCE, d->nonce, LC_DEK_NONCE_LEN);
		memcpy(rec + LC_DEK_REC_OFF_TAG, d->tag, LC_DEK_TAG_LEN);
		memcpy(rec + LC_DEK_REC_OFF_CT, d->ct, h->key_size);
	}
}

/* Set the copy index and seal with the checksum. */
static int seal(uint8_t *buf, size_t hdr, int copy)
{
	put16(buf + LC_HDR_OFF_COPY, (uint16_t)copy);
	return lc_header_checksum(buf, hdr, buf + LC_HDR_OFF_CHECKSUM);
}

/*
 * HMAC-SHA256 with @key (LC_HDR_MAC_LEN bytes) over the copy in @buf
 * (@hdr bytes) with its copy index, checksum and MAC fields as zeros.
 */
static int header_mac(const uint8_t *buf, size_t hdr, const uint8_t *key,
		      uint8_t out[LC_HDR_MAC_LEN])
{
	static const uint8_t zero[LC_HDR_CHECKSUM_LEN + LC_HDR_MAC_LEN];
	const struct { size_t off, len; bool zero; } parts[] = {
		{ 0, LC_HDR_OFF_COPY, false },
		{ LC_HDR_OFF_COPY, 2, true },
		{ LC_HDR_OFF_FLAGS, LC_HDR_OFF_CHECKSUM - LC_HDR_OFF_FLAGS, false },
		{ LC_HDR_OFF_CHECKSUM, LC_HDR_CHECKSUM_LEN, true },
		{ LC_HDR_OFF_UUID, LC_HDR_OFF_MAC - LC_HDR_OFF_UUID, false },
		{ LC_HDR_OFF_MAC, LC_HDR_MAC_LEN, true },
		{ LC_HDR_OFF_RESERVED1, hdr - LC_HDR_OFF_RESERVED1, false },
	};
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t outl = 0;
	int ok;

	ok = ctx && EVP_MAC_init(ctx, key, LC_HDR_MAC_LEN, params);
	for (size_t i = 0; ok && i < sizeof(parts) / sizeof(parts[0]); i++)
		ok = EVP_MAC_update(ctx, parts[i].zero ? zero : buf + parts[i].off, parts[i].len);
	ok = ok && EVP_MAC_final(ctx, out, &outl, LC_HDR_MAC_LEN) && outl == LC_HDR_MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok ? 0 : -EIO;
}

int lc_header_mac_key(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		      struct lc_secret *key, struct lc_error *err)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5];
	int ok = 0, r;

	if (!kek || !kek->p || kek->len != LC_KEK_LEN)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "KEK missing or not %d bytes",
			      LC_KEK_LEN);
	r = lc_secret_alloc(key, LC_HDR_MAC_LEN);
	if (r)
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot allocate key memory");
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, kek->p, kek->len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)uuid,
						      LC_UUID_LEN);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						      (char *)LC_HDR_MAC_INFO,
						      sizeof(LC_HDR_MAC_INFO) - 1);
	params[4] = OSSL_PARAM_construct_end();
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf)
		ctx = EVP_KDF_CTX_new(kdf);
	if (ctx)
		ok = EVP_KDF_derive(ctx, key->p, LC_HDR_MAC_LEN, params) == 1;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	if (!ok) {
		lc_secret_free(key);
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "HKDF-SHA256 failed");
	}
	return 0;
}

static int encode_seq(const struct lc_header *h, int copy, uint64_t seqno, uint8_t **out,
		      size_t *len, struct lc_error *err)
{
	uint64_t hdr, area;
	uint8_t *buf;
	int r;

	r = lc_header_check(h, err);
	if (r)
		return r;
	lc_header_layout(h->segment_count, h->key_size, &hdr, &area, NULL, NULL);
	buf = calloc(1, hdr);
	if (!buf)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL,
			      "out of memory for a %" PRIu64 "-byte header", hdr);
	encode_into(h, copy, seqno, buf, hdr, area);
	if (h->mac_key && h->version != LC_HDR_VERSION_V1 &&
	    header_mac(buf, hdr, h->mac_key, buf + LC_HDR_OFF_MAC)) {
		free(buf);
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "HMAC-SHA256 failed");
	}
	r = seal(buf, hdr, copy);
	if (r) {
		free(buf);
		return lc_err(err, r, LC_ERRC_INTERNAL, "SHA-256 failed");
	}
	*out = buf;
	*len = hdr;
	return 0;
}

int lc_header_encode(const struct lc_header *h, int copy, uint8_t **buf, size_t *len,
		     struct lc_error *err)
{
	if (copy != 0 && copy != 1)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "copy index %d: expected 0 or 1", copy);
	return encode_seq(h, copy, h ? h->seqno : 0, buf, len, err);
}

int lc_header_verify(const struct lc_header *h, const uint8_t *key, struct lc_error *err)
{
	uint8_t want[LC_HDR_MAC_LEN];
	uint8_t *buf = NULL;
	size_t len;
	int r;

	if (h->version == LC_HDR_VERSION_V1)
		return lc_err(err, -EPROTO, LC_ERRC_INVALID,
			      "version 1 header: it has no MAC, so its identity and layout cannot be authenticated");
	r = encode_seq(h, 0, h->seqno, &buf, &len, err);
	if (r)
		return r;
	r = header_mac(buf, len, key, want);
	free(buf);
	if (r)
		return lc_err(err, r, LC_ERRC_INTERNAL, "HMAC-SHA256 failed");
	r = CRYPTO_memcmp(want, h->mac, LC_HDR_MAC_LEN);
	OPENSSL_cleanse(want, sizeof(want));
	if (r)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "header authentication failed: a field that decides how data is read (identity, cipher, sizes, offsets, wrapped keys) is not what the holder of the volume's KEK wrote");
	return 0;
}

/* Copy a string field, which must be NUL-terminated and zero-padded. */
static int get_str(char *dst, const uint8_t *buf, size_t off, size_t size, const char *what,
		   struct lc_error *err)
{
	const uint8_t *s = buf + off;
	const uint8_t *nul = memchr(s, 0, size);

	if (!nul)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s is not NUL-terminated within its %zu-byte field", what, size);
	if (!all_zero(nul, size - (size_t)(nul - s)))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s field has non-zero bytes after its terminating NUL", what);
	memcpy(dst, s, size);
	return 0;
}

static int get_blob(struct lc_buf *dst, const uint8_t *buf, size_t off, uint32_t len,
		    size_t max, const char *what, struct lc_error *err)
{
	if (len < 1 || len > max)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s length %" PRIu32 " out of range: expected 1..%zu", what, len, max);
	if (!all_zero(buf + off + len, max - len))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s field has non-zero bytes after its %" PRIu32 "-byte value", what,
			      len);
	dst->p = malloc(len);
	if (!dst->p)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	memcpy(dst->p, buf + off, len);
	dst->len = len;
	return 0;
}

/*
 * The header and area sizes that @segs segments of @key_size-byte keys
 * give (lc_header_layout()), and nothing else: checked on the fixed part
 * before anything past it is read, so that a hostile size field never
 * makes a reader (the udev probe on any disk) read or hold more than a
 * genuine header of the geometry it claims.
 */
static int check_sizes(uint64_t hdr, uint64_t area, uint32_t segs, uint32_t key_size,
		       struct lc_error *err)
{
	uint64_t want_hdr = 0, want_area = 0;
	int r;

	r = lc_header_layout(segs, key_size, &want_hdr, &want_area, NULL, err);
	if (r)
		return r;
	if (hdr != want_hdr || area != want_area)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "header size %" PRIu64 " / area size %" PRIu64 " inconsistent with %"
			      PRIu32 " segments of %" PRIu32 "-byte keys: expected %" PRIu64
			      " / %" PRIu64, hdr, area, segs, key_size, want_hdr, want_area);
	return 0;
}

/* decode_ex() flags */
#define DECODE_FIXED_ONLY 1	/* @data is the fixed part only; its checksum was
				 * verified by streaming (or is not verified at all:
				 * lc_header_identify_io()); no DEK record is read */

static int decode_ex(const void *data, size_t len, struct lc_header **out, int *copy_out,
		     int flags, struct lc_error *err);

int lc_header_decode(const void *data, size_t len, struct lc_header **out, int *copy_out,
		     struct lc_error *err)
{
	return decode_ex(data, len, out, copy_out, 0, err);
}

static int decode_ex(const void *data, size_t len, struct lc_header **out, int *copy_out,
		     int flags, struct lc_error *err)
{
	const bool fixed_only = flags & DECODE_FIXED_ONLY;
	const uint8_t *buf = data;
	uint8_t sum[LC_HDR_CHECKSUM_LEN];
	uint64_t hdr, area;
	uint32_t stride, table;
	struct lc_header *h;
	uint16_t version, copy;
	const uint8_t *rec;
	int r;

	if (out)
		*out = NULL;
	if (!buf || len < LC_HDR_MAGIC_LEN || memcmp(buf, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "bad magic (not a lakecrypt header)");
	if (len < LC_HDR_FIXED_SIZE)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "truncated: %zu bytes, the fixed part alone is %d", len,
			      LC_HDR_FIXED_SIZE);
	version = get16(buf + LC_HDR_OFF_VERSION);
	if (version != LC_HDR_VERSION && version != LC_HDR_VERSION_V1 &&
	    version != LC_HDR_VERSION_V3)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "unsupported header version %u (this build reads versions %d, %d and %d)",
			      version, LC_HDR_VERSION_V1, LC_HDR_VERSION, LC_HDR_VERSION_V3);
	copy = get16(buf + LC_HDR_OFF_COPY);
	if (copy > 1)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "bad copy index %u: expected 0 (A) or 1 (B)", copy);
	hdr = get64(buf + LC_HDR_OFF_HDR_SIZE);
	if (hdr < LC_HDR_FIXED_SIZE || hdr > LC_HDR_AREA_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "header size %" PRIu64 " out of range: expected %d..%llu", hdr,
			      LC_HDR_FIXED_SIZE, LC_HDR_AREA_MAX);
	if (!fixed_only && hdr > len)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "truncated: the header is %" PRIu64 " bytes, only %zu are there",
			      hdr, len);
	if (!fixed_only && lc_header_checksum(buf, hdr, sum))
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "SHA-256 failed");
	if (!fixed_only && memcmp(sum, buf + LC_HDR_OFF_CHECKSUM, sizeof(sum)))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "bad checksum (header corrupted)");

	/* The checksum holds: now every field, as if the writer were hostile. */
	h = calloc(1, sizeof(*h));
	if (!h)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	h->version = version;
	memcpy(h->mac, buf + LC_HDR_OFF_MAC, LC_HDR_MAC_LEN);
	h->flags = get32(buf + LC_HDR_OFF_FLAGS);
	h->seqno = get64(buf + LC_HDR_OFF_SEQNO);
	h->created = get64(buf + LC_HDR_OFF_CREATED);
	memcpy(h->uuid, buf + LC_HDR_OFF_UUID, LC_UUID_LEN);
	h->key_size = get32(buf + LC_HDR_OFF_KEY_SIZE);
	h->segment_count = get32(buf + LC_HDR_OFF_SEGMENT_COUNT);
	h->segment_sectors = get64(buf + LC_HDR_OFF_SEGMENT_SECTORS);
	h->data_offset = get64(buf + LC_HDR_OFF_DATA_OFFSET);
	h->sector_size = get32(buf + LC_HDR_OFF_SECTOR_SIZE);
	area = get64(buf + LC_HDR_OFF_AREA_SIZE);
	stride = get32(buf + LC_HDR_OFF_DEK_STRIDE);
	table = get32(buf + LC_HDR_OFF_DEK_TABLE);

	r = lc_header_layout(h->segment_count, h->key_size, NULL, NULL, NULL, err);
	if (r)
		goto fail;
	if (stride != lc_header_dek_stride(h->key_size) || table != LC_HDR_FIXED_SIZE) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "DEK table at offset %" PRIu32 " with %" PRIu32 "-byte records: "
			   "expected offset %d and %" PRIu32 "-byte records for %" PRIu32
			   "-byte keys", table, stride, LC_HDR_FIXED_SIZE,
			   lc_header_dek_stride(h->key_size), h->key_size);
		goto fail;
	}
	r = check_sizes(hdr, area, h->segment_count, h->key_size, err);
	if (r)
		goto fail;
	if (!all_zero(buf + LC_HDR_OFF_RESERVED1, LC_HDR_RESERVED1_SIZE) ||
	    (version == LC_HDR_VERSION_V1 && !all_zero(h->mac, LC_HDR_MAC_LEN)) ||
	    !all_zero(buf + LC_HDR_OFF_RESERVED2, LC_HDR_RESERVED2_SIZE) ||
	    (version != LC_HDR_VERSION_V3 &&
	     !all_zero(buf + LC_HDR_OFF_RESERVED3, LC_HDR_RESERVED3_SIZE))) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "reserved bytes are not zero (written by a newer version?)");
		goto fail;
	}
	if (version == LC_HDR_VERSION_V3) {
		const uint8_t *p = buf + LC_HDR_OFF_JOURNAL;
		struct lc_rekey_journal *j = &h->journal;
		uint32_t used = lc_header_dek_stride(h->key_size);

		if (memcmp(p, LC_RKJ_MAGIC, LC_RKJ_MAGIC_LEN) ||
		    !all_zero(p + LC_RKJ_OFF_DEK + LC_DEK_REC_HDR + h->key_size,
			      LC_RKJ_DEK_SIZE - LC_DEK_REC_HDR - h->key_size) ||
		    !all_zero(p + LC_RKJ_END, LC_HDR_JOURNAL_SIZE - LC_RKJ_END) ||
		    used > LC_RKJ_DEK_SIZE) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "version 3 header with a malformed re-key journal");
			goto fail;
		}
		j->active = true;
		j->segment = get32(p + LC_RKJ_OFF_SEGMENT);
		j->old_gen = get32(p + LC_RKJ_OFF_OLD_GEN);
		j->new_gen = get32(p + LC_RKJ_OFF_NEW_GEN);
		j->zone = get32(p + LC_RKJ_OFF_ZONE);
		j->done = get64(p + LC_RKJ_OFF_DONE);
		j->dek.generation = get32(p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_GENERATION);
		memcpy(j->dek.nonce, p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_NONCE, LC_DEK_NONCE_LEN);
		memcpy(j->dek.tag, p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_TAG, LC_DEK_TAG_LEN);
		memcpy(j->dek.ct, p + LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_CT, h->key_size);
		for (uint32_t i = 0; i < LC_RKJ_ZONE_MAX; i++) {
			memcpy(j->old_digest[i], p + LC_RKJ_OFF_DIGESTS + 2 * i * LC_RKJ_DIGEST_LEN,
			       LC_RKJ_DIGEST_LEN);
			memcpy(j->new_digest[i],
			       p + LC_RKJ_OFF_DIGESTS + (2 * i + 1) * LC_RKJ_DIGEST_LEN,
			       LC_RKJ_DIGEST_LEN);
		}
		/* the table's record of the segment must hold the old generation */
		if (!fixed_only && j->segment < h->segment_count &&
		    get32(buf + LC_HDR_FIXED_SIZE + (size_t)j->segment * stride) != j->old_gen) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "re-key journal: old generation %" PRIu32
				   " but segment %" PRIu32 " holds another", j->old_gen, j->segment);
			goto fail;
		}
	}
	if ((r = get_str(h->workspace, buf, LC_HDR_OFF_WORKSPACE, LC_HDR_NAME_SIZE, "workspace",
			 err)) ||
	    (r = get_str(h->project, buf, LC_HDR_OFF_PROJECT, LC_HDR_NAME_SIZE, "project name",
			 err)) ||
	    (r = get_str(h->keyconfig, buf, LC_HDR_OFF_KEYCONFIG, LC_HDR_NAME_SIZE,
			 "key configuration name", err)) ||
	    (r = get_str(h->provider, buf, LC_HDR_OFF_PROVIDER, LC_HDR_PROVIDER_SIZE,
			 "provider kind", err)) ||
	    (r = get_str(h->cipher, buf, LC_HDR_OFF_CIPHER, LC_HDR_CIPHER_SIZE, "cipher", err)) ||
	    (r = get_str(h->cmk_version, buf, LC_HDR_OFF_CMK_VERSION, LC_HDR_CMK_VERSION_SIZE,
			 "CMK version", err)) ||
	    (r = get_str(h->provider_ref, buf, LC_HDR_OFF_PROVIDER_REF,
			 LC_HDR_PROVIDER_REF_SIZE, "provider key reference", err)) ||
	    (r = get_str(h->cmk_id, buf, LC_HDR_OFF_CMK_ID, LC_HDR_CMK_ID_SIZE, "CMK id", err)) ||
	    (r = get_blob(&h->wrap_context, buf, LC_HDR_OFF_WRAP_CTX,
			  get32(buf + LC_HDR_OFF_WRAP_CTX_LEN), LC_HDR_WRAP_CTX_MAX, "wrap context",
			  err)) ||
	    (r = get_blob(&h->wrapped_kek, buf, LC_HDR_OFF_KEK, get32(buf + LC_HDR_OFF_KEK_LEN),
			  LC_HDR_KEK_MAX, "wrapped KEK", err)))
		goto fail;

	/* Every record's padding must be zero; a validate-only call stops there. */
	rec = buf + LC_HDR_FIXED_SIZE;
	if (!fixed_only && stride > LC_DEK_REC_HDR + h->key_size) {
		size_t pad = stride - LC_DEK_REC_HDR - h->key_size;

		for (uint32_t i = 0; i < h->segment_count; i++)
			if (!all_zero(rec + (size_t)i * stride + LC_DEK_REC_HDR + h->key_size, pad)) {
				r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
					   "DEK record %" PRIu32 " has non-zero padding", i);
				goto fail;
			}
	}
	if (out && !fixed_only) {
		h->deks = malloc((size_t)h->segment_count * sizeof(*h->deks));
		if (!h->deks) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL,
				   "out of memory for %" PRIu32 " DEK records", h->segment_count);
			goto fail;
		}
		for (uint32_t i = 0; i < h->segment_count; i++, rec += stride) {
			struct lc_wrapped_dek *d = &h->deks[i];

			d->generation = get32(rec + LC_DEK_REC_OFF_GENERATION);
			memcpy(d->nonce, rec + LC_DEK_REC_OFF_NONCE, LC_DEK_NONCE_LEN);
			memcpy(d->tag, rec + LC_DEK_REC_OFF_TAG, LC_DEK_TAG_LEN);
			memcpy(d->ct, rec + LC_DEK_REC_OFF_CT, h->key_size);
			memset(d->ct + h->key_size, 0, sizeof(d->ct) - h->key_size);
		}
	}
	r = check_fields(h, false, err);
	if (r)
		goto fail;
	if (copy_out)
		*copy_out = copy;
	if (out)
		*out = h;
	else
		lc_header_free(h);
	return 0;
fail:
	lc_header_free(h);
	return r;
}

/* ---- I/O ---- */

static int read_full(const struct lc_header_io *io, void *buf, size_t len, uint64_t off,
		     size_t *got)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->pread(io->ctx, (uint8_t *)buf + done, len - done, off + done);

		if (n < 0) {
			*got = done;
			return (int)n;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

static int write_full(const struct lc_header_io *io, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->pwrite(io->ctx, (const uint8_t *)buf + done, len - done, off + done);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* One copy as found on the storage. */
struct probe {
	bool valid;
	bool magic;		/* the magic is there: a lakecrypt header, maybe damaged */
	uint64_t off;
	uint64_t area_hint;	/* area_size field of a damaged copy, 0 if unusable */
	struct lc_header *h;
	uint8_t *raw;		/* the encoded copy (valid only; NULL when identifying) */
	size_t raw_len;
	bool checked;		/* valid and its checksum verified */
	uint8_t content[32];	/* identifying: SHA-256 of what same_contents() compares */
	char why[LC_ERROR_MSG_MAX];
};

static void probe_release(struct probe *p)
{
	lc_header_free(p->h);
	free(p->raw);
	p->h = NULL;
	p->raw = NULL;
}

/* How a read goes: in full (the agent), or identifying (the udev probe:
 * streamed, fixed part decoded, bounded by @budget). */
struct reader {
	const struct lc_header_io *io;
	bool identify;
	uint64_t budget;	/* identify: bytes past the fixed parts still allowed */
};

static bool is_candidate(uint64_t area)
{
	return area >= LC_HDR_AREA_MIN && area <= LC_HDR_AREA_MAX && is_pow2(area);
}

#define IDENTIFY_CHUNK (64u << 10)	/* bytes per read when streaming a copy */

/*
 * Identifying: the fixed part (in @fixed, sizes consistent with the layout)
 * decoded field by field, then the rest of the copy (@hdr bytes in all, at
 * byte @off) streamed through SHA-256 in IDENTIFY_CHUNK pieces when it
 * fits in rd->budget: the checksum is verified without holding the copy.
 * A copy that does not fit is not read further: valid but unchecked.
 * Returns 0 with p->h (no DEK records) and *found_copy set, or -errno with
 * p->why set.
 */
static int stream_copy(struct reader *rd, uint64_t off, const uint8_t *fixed, uint64_t hdr,
		       struct probe *p, int *found_copy)
{
	static const uint8_t zero[LC_HDR_CHECKSUM_LEN];
	uint64_t rest = hdr - LC_HDR_FIXED_SIZE;
	uint8_t sum[LC_HDR_CHECKSUM_LEN];
	EVP_MD_CTX *sha = NULL, *con = NULL;
	struct lc_error e = { 0 };
	unsigned int l1 = 0, l2 = 0;
	uint8_t *chunk = NULL, gen[4] = { 0 };
	uint64_t stride, used, gen_at = 0;
	size_t got;
	int r;

	r = decode_ex(fixed, LC_HDR_FIXED_SIZE, &p->h, found_copy, DECODE_FIXED_ONLY, &e);
	if (r) {
		snprintf(p->why, sizeof(p->why), "%s", e.msg);
		return r;
	}
	/* What lc_header_decode() checks in the DEK table, checked as it
	 * streams by: zero record padding, and a re-key journal's segment
	 * record holding the journal's old generation (its first 4 bytes). */
	stride = lc_header_dek_stride(p->h->key_size);
	used = LC_DEK_REC_HDR + (uint64_t)p->h->key_size;
	if (p->h->journal.active && p->h->journal.segment < p->h->segment_count)
		gen_at = LC_HDR_FIXED_SIZE + (uint64_t)p->h->journal.segment * stride;
	if (rest > rd->budget)
		return 0;	/* unchecked: the probe's budget is spent */
	rd->budget -= rest;
	r = -ENOMEM;
	snprintf(p->why, sizeof(p->why), "out of memory");
	sha = EVP_MD_CTX_new();
	con = EVP_MD_CTX_new();
	chunk = malloc(IDENTIFY_CHUNK);
	if (!sha || !con || !chunk)
		goto out;
	r = -EIO;
	snprintf(p->why, sizeof(p->why), "SHA-256 failed");
	/* the checksum's input as lc_header_checksum() has it, and the bytes
	 * same_contents() compares */
	if (!EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(con, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(sha, fixed, LC_HDR_OFF_CHECKSUM) ||
	    !EVP_DigestUpdate(sha, zero, sizeof(zero)) ||
	    !EVP_DigestUpdate(sha, fixed + LC_HDR_OFF_UUID, LC_HDR_FIXED_SIZE - LC_HDR_OFF_UUID) ||
	    !EVP_DigestUpdate(con, fixed + LC_HDR_OFF_FLAGS, LC_HDR_OFF_CHECKSUM - LC_HDR_OFF_FLAGS) ||
	    !EVP_DigestUpdate(con, fixed + LC_HDR_OFF_UUID, LC_HDR_FIXED_SIZE - LC_HDR_OFF_UUID))
		goto out;
	for (uint64_t at = LC_HDR_FIXED_SIZE; at < hdr; at += got) {
		size_t want = hdr - at < IDENTIFY_CHUNK ? (size_t)(hdr - at) : IDENTIFY_CHUNK;

		r = read_full(rd->io, chunk, want, off + at, &got);
		if (r < 0) {
			snprintf(p->why, sizeof(p->why), "read error at offset %" PRIu64 ": %s",
				 off + at + got, strerror(-r));
			goto out;
		}
		if (got < want) {
			r = -EINVAL;
			snprintf(p->why, sizeof(p->why),
				 "truncated: the header is %" PRIu64 " bytes, only %" PRIu64
				 " are there", hdr, at + got);
			goto out;
		}
		r = -EIO;
		snprintf(p->why, sizeof(p->why), "SHA-256 failed");
		if (!EVP_DigestUpdate(sha, chunk, got) || !EVP_DigestUpdate(con, chunk, got))
			goto out;
		for (uint64_t j = 0, rel = (at - LC_HDR_FIXED_SIZE) % stride; j < got; j++) {
			if (rel >= used && chunk[j]) {
				r = -EINVAL;
				snprintf(p->why, sizeof(p->why), "DEK record %" PRIu64
					 " has non-zero padding", (at + j - LC_HDR_FIXED_SIZE) / stride);
				goto out;
			}
			if (gen_at && at + j >= gen_at && at + j < gen_at + 4)
				gen[at + j - gen_at] = chunk[j];
			if (++rel == stride)
				rel = 0;
		}
	}
	if (!EVP_DigestFinal_ex(sha, sum, &l1) || l1 != sizeof(sum) ||
	    !EVP_DigestFinal_ex(con, p->content, &l2) || l2 != sizeof(p->content))
		goto out;
	if (memcmp(sum, fixed + LC_HDR_OFF_CHECKSUM, sizeof(sum))) {
		r = -EINVAL;
		snprintf(p->why, sizeof(p->why), "bad checksum (header corrupted)");
		goto out;
	}
	if (gen_at && get32(gen) != p->h->journal.old_gen) {
		r = -EINVAL;
		snprintf(p->why, sizeof(p->why), "re-key journal: old generation %" PRIu32
			 " but segment %" PRIu32 " holds another", p->h->journal.old_gen,
			 p->h->journal.segment);
		goto out;
	}
	p->checked = true;
	p->why[0] = '\0';
	r = 0;
out:
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(con);
	free(chunk);
	return r;
}

/* Read and decode the copy @copy expected at byte @off. */
static void read_copy(struct reader *rd, uint64_t off, int copy, struct probe *p)
{
	const struct lc_header_io *io = rd->io;
	uint8_t *fixed = NULL, *buf = NULL;
	struct lc_error e = { 0 };
	uint64_t hdr, area, want_area;
	size_t got, have, cap;
	int r, found_copy;

	memset(p, 0, sizeof(*p));
	p->off = off;
	fixed = malloc(LC_HDR_FIXED_SIZE);
	if (!fixed) {
		snprintf(p->why, sizeof(p->why), "out of memory");
		return;
	}
	r = read_full(io, fixed, LC_HDR_FIXED_SIZE, off, &got);
	if (r < 0) {
		snprintf(p->why, sizeof(p->why), "read error at offset %" PRIu64 ": %s", off,
			 strerror(-r));
		goto out;
	}
	if (got < LC_HDR_MAGIC_LEN || memcmp(fixed, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN)) {
		snprintf(p->why, sizeof(p->why), got ? "bad magic (not a lakecrypt header)" :
			 "missing (storage ends before offset %" PRIu64 ")", off);
		goto out;
	}
	p->magic = true;
	if (got < LC_HDR_FIXED_SIZE) {
		snprintf(p->why, sizeof(p->why),
			 "truncated: storage ends %zu bytes into the header", got);
		goto out;
	}
	area = get64(fixed + LC_HDR_OFF_AREA_SIZE);
	if (is_candidate(area))
		p->area_hint = area;
	hdr = get64(fixed + LC_HDR_OFF_HDR_SIZE);
	if (hdr < LC_HDR_FIXED_SIZE || hdr > LC_HDR_AREA_MAX) {
		r = lc_header_decode(fixed, LC_HDR_FIXED_SIZE, NULL, NULL, &e);
		snprintf(p->why, sizeof(p->why), "%s", e.msg);
		goto out;
	}
	if (check_sizes(hdr, area, get32(fixed + LC_HDR_OFF_SEGMENT_COUNT),
			get32(fixed + LC_HDR_OFF_KEY_SIZE), &e)) {
		snprintf(p->why, sizeof(p->why), "%s", e.msg);
		goto out;
	}
	if (rd->identify) {
		if (stream_copy(rd, off, fixed, hdr, p, &found_copy))
			goto out;
		goto decoded;
	}
	/* Grow the buffer as the data comes, so that a hostile size field on
	 * short storage costs no more memory than the storage holds. */
	have = LC_HDR_FIXED_SIZE;
	cap = have;
	buf = fixed;
	fixed = NULL;
	while (have < hdr) {
		size_t ncap = cap * 2 < hdr ? cap * 2 : hdr;
		uint8_t *nbuf = realloc(buf, ncap);

		if (!nbuf) {
			snprintf(p->why, sizeof(p->why), "out of memory for %zu bytes", ncap);
			goto out;
		}
		buf = nbuf;
		cap = ncap;
		r = read_full(io, buf + have, cap - have, off + have, &got);
		if (r < 0) {
			snprintf(p->why, sizeof(p->why), "read error at offset %" PRIu64 ": %s",
				 off + have, strerror(-r));
			goto out;
		}
		have += got;
		if (have < cap)
			break;
	}
	r = lc_header_decode(buf, have, &p->h, &found_copy, &e);
	if (r) {
		snprintf(p->why, sizeof(p->why), "%s", e.msg);
		goto out;
	}
	p->checked = true;
decoded:
	lc_header_layout(p->h->segment_count, p->h->key_size, NULL, &want_area, NULL, NULL);
	if (found_copy != copy) {
		snprintf(p->why, sizeof(p->why), "holds copy %s where copy %s belongs",
			 copy_name(found_copy), copy_name(copy));
		goto out;
	}
	if (copy == 1 && want_area != off) {
		snprintf(p->why, sizeof(p->why),
			 "found at offset %" PRIu64 " but its layout puts copy B at %" PRIu64, off,
			 want_area);
		goto out;
	}
	p->valid = true;
	p->raw = buf;
	p->raw_len = hdr;
	buf = NULL;
out:
	if (!p->valid) {
		p->checked = false;
		lc_header_free(p->h);
		p->h = NULL;
	}
	free(buf);
	free(fixed);
}

/*
 * Copy A is unusable: look for copy B at every offset the format allows.
 * Bounded, whatever the device holds: the fixed part (16 KiB) is read at
 * each of the LC_HDR_AREA_CANDIDATES offsets, and only the
 * PROBE_FULL_READS plausible candidates with the highest seqnos (copy
 * index 1, area_size equal to the offset, sizes consistent with the
 * layout) are read and checksummed in full, one at a time.
 */
#define PROBE_FULL_READS 2
static void probe_b(struct reader *rd, uint64_t skip, struct probe *b)
{
	const struct lc_header_io *io = rd->io;
	struct probe best = { 0 }, cur;
	struct { uint64_t off, seqno; } cand[LC_HDR_AREA_CANDIDATES];
	uint8_t fixed[LC_HDR_OFF_SECTOR_SIZE];
	size_t ncand = 0, got;
	uint64_t damaged_at = 0;

	snprintf(best.why, sizeof(best.why),
		 "not found at any possible offset (%llu..%llu, powers of two)", LC_HDR_AREA_MIN,
		 LC_HDR_AREA_MAX);
	for (uint64_t c = LC_HDR_AREA_MIN; c <= LC_HDR_AREA_MAX; c <<= 1) {
		uint64_t want_hdr, want_area;

		if (c == skip)
			continue;
		if (read_full(io, fixed, sizeof(fixed), c, &got) < 0 || got < sizeof(fixed) ||
		    memcmp(fixed, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN) ||
		    get64(fixed + LC_HDR_OFF_AREA_SIZE) != c)
			continue;
		if (!damaged_at)
			damaged_at = c;	/* a copy B that says it is here, maybe damaged */
		if (get16(fixed + LC_HDR_OFF_COPY) != 1 ||
		    lc_header_layout(get32(fixed + LC_HDR_OFF_SEGMENT_COUNT),
				     get32(fixed + LC_HDR_OFF_KEY_SIZE), &want_hdr, &want_area,
				     NULL, NULL) ||
		    want_area != c || want_hdr != get64(fixed + LC_HDR_OFF_HDR_SIZE))
			continue;
		cand[ncand].off = c;
		cand[ncand++].seqno = get64(fixed + LC_HDR_OFF_SEQNO);
	}
	for (int n = 0; n < PROBE_FULL_READS && ncand; n++) {
		size_t top = 0;

		for (size_t i = 1; i < ncand; i++)
			if (cand[i].seqno > cand[top].seqno)
				top = i;
		read_copy(rd, cand[top].off, 1, &cur);
		cand[top] = cand[--ncand];
		if (cur.valid) {
			*b = cur;
			return;
		}
		probe_release(&cur);
	}
	if (damaged_at) {
		best.magic = true;
		best.off = damaged_at;
		snprintf(best.why, sizeof(best.why),
			 "the copy at offset %" PRIu64 " is damaged or inconsistent", damaged_at);
	}
	*b = best;
}

/* Same volume, same layout? */
static bool same_volume(const struct lc_header *x, const struct lc_header *y)
{
	return !memcmp(x->uuid, y->uuid, LC_UUID_LEN) && x->segment_count == y->segment_count &&
	       x->key_size == y->key_size;
}

/* Same contents apart from the copy index and checksum?  Identifying, by
 * digest; a copy whose checksum was not verified is not called different. */
static bool same_contents(const struct probe *x, const struct probe *y)
{
	if (!x->raw || !y->raw)
		return !x->checked || !y->checked ||
		       !memcmp(x->content, y->content, sizeof(x->content));
	return x->raw_len == y->raw_len &&
	       !memcmp(x->raw + LC_HDR_OFF_FLAGS, y->raw + LC_HDR_OFF_FLAGS,
		       LC_HDR_OFF_CHECKSUM - LC_HDR_OFF_FLAGS) &&
	       !memcmp(x->raw + LC_HDR_OFF_UUID, y->raw + LC_HDR_OFF_UUID,
		       x->raw_len - LC_HDR_OFF_UUID);
}

/* Both copies into @pr (the caller releases them); the index of the one to
 * use, or -errno when neither is valid. */
static int read_both(struct reader *rd, struct probe pr[2],
		     struct lc_header_info *info, struct lc_error *err)
{
	uint64_t hint = 0;
	int used, other;

	memset(info, 0, sizeof(*info));

	read_copy(rd, 0, 0, &pr[0]);
	if (pr[0].valid)
		lc_header_layout(pr[0].h->segment_count, pr[0].h->key_size, NULL, &hint, NULL, NULL);
	else
		hint = pr[0].area_hint;
	if (hint) {
		read_copy(rd, hint, 1, &pr[1]);
		if (!pr[1].valid && !pr[0].valid) {
			struct probe alt;

			probe_b(rd, hint, &alt);
			if (alt.valid) {
				probe_release(&pr[1]);
				pr[1] = alt;
			} else {
				probe_release(&alt);
			}
		}
	} else {
		probe_b(rd, 0, &pr[1]);
		if (!pr[1].valid && !pr[1].magic)
			pr[1].off = LC_HDR_AREA_MIN;
	}

	for (int i = 0; i < 2; i++) {
		info->offset[i] = pr[i].off;
		info->state[i] = pr[i].valid ? LC_COPY_VALID : LC_COPY_DAMAGED;
		info->checked[i] = pr[i].checked;
		if (pr[i].valid)
			info->seqno[i] = pr[i].h->seqno;
		else
			snprintf(info->why[i], sizeof(info->why[i]), "%s", pr[i].why);
	}
	if (!pr[0].valid && !pr[1].valid) {
		int code = pr[0].magic || pr[1].magic ? -EINVAL : -ENOENT;

		lc_err(err, code, LC_ERRC_INVALID,
		       "no valid lakecrypt header: copy A: %s; copy B: %s", pr[0].why, pr[1].why);
		return code;
	}

	if (pr[0].valid && pr[1].valid) {
		if (!same_volume(pr[0].h, pr[1].h)) {
			used = 0;
			info->state[1] = LC_COPY_DAMAGED;
			snprintf(info->why[1], sizeof(info->why[1]),
				 "belongs to another volume or layout than copy A");
		} else {
			used = pr[1].h->seqno > pr[0].h->seqno ? 1 : 0;
			other = !used;
			if (pr[other].h->seqno < pr[used].h->seqno) {
				info->state[other] = LC_COPY_STALE;
			} else if (!same_contents(&pr[0], &pr[1])) {
				info->state[other] = LC_COPY_DAMAGED;
				snprintf(info->why[other], sizeof(info->why[other]),
					 "differs from copy %s with the same seqno %" PRIu64,
					 copy_name(used), pr[used].h->seqno);
			}
		}
	} else {
		used = pr[0].valid ? 0 : 1;
	}
	info->used = used;
	return used;
}

int lc_header_read_io(const struct lc_header_io *io, struct lc_header **out,
		      struct lc_header_info *info, struct lc_error *err)
{
	struct reader rd = { .io = io };
	struct lc_header_info tmp;
	struct probe pr[2];
	int used;

	if (out)
		*out = NULL;
	used = read_both(&rd, pr, info ? info : &tmp, err);
	if (used >= 0 && out) {
		*out = pr[used].h;
		pr[used].h = NULL;
	}
	probe_release(&pr[0]);
	probe_release(&pr[1]);
	return used < 0 ? used : 0;
}

int lc_header_identify_io(const struct lc_header_io *io, uint64_t budget,
			  struct lc_header **out, struct lc_header_info *info,
			  struct lc_error *err)
{
	struct reader rd = { .io = io, .identify = true, .budget = budget };
	struct lc_header_info tmp;
	struct probe pr[2];
	int used;

	if (out)
		*out = NULL;
	used = read_both(&rd, pr, info ? info : &tmp, err);
	/* Two copies of different volumes or layouts: the reader takes copy
	 * A, as lc_header_read_io() does when A's checksum is right; but if
	 * it is not, that reader takes B.  Unverified A: nobody can tell. */
	if (used >= 0 && pr[0].valid && pr[1].valid && !pr[0].checked &&
	    !same_volume(pr[0].h, pr[1].h)) {
		char ua[LC_UUID_STR_LEN], ub[LC_UUID_STR_LEN];

		lc_header_uuid_str(pr[0].h, ua);
		lc_header_uuid_str(pr[1].h, ub);
		used = lc_err(err, -EUCLEAN, LC_ERRC_INVALID,
			      "header copies A (volume %s, %" PRIu32 " segments) and B (volume %s, %" PRIu32 " segments) disagree and copy A is too large to verify within %" PRIu64 " bytes: which one is the volume is known only when the header is read in full",
			      ua, pr[0].h->segment_count, ub, pr[1].h->segment_count, budget);
	}
	if (used >= 0 && out) {
		*out = pr[used].h;
		pr[used].h = NULL;
	}
	probe_release(&pr[0]);
	probe_release(&pr[1]);
	return used < 0 ? used : 0;
}

int lc_header_read_copies_io(const struct lc_header_io *io, struct lc_header *copies[2],
			     struct lc_header_info *info, struct lc_error *err)
{
	struct reader rd = { .io = io };
	struct probe pr[2];
	int used;

	copies[0] = copies[1] = NULL;
	used = read_both(&rd, pr, info, err);
	for (int i = 0; used >= 0 && i < 2; i++)
		if (info->state[i] != LC_COPY_DAMAGED) {
			copies[i] = pr[i].h;
			pr[i].h = NULL;
		}
	probe_release(&pr[0]);
	probe_release(&pr[1]);
	return used < 0 ? used : 0;
}

/* A format or a change of layout: erase header copies at the offsets a
 * reader would probe, except where the new copies go, so that an old copy
 * can never be taken for the new volume's copy B. */
static int erase_stale(const struct lc_header_io *io, uint64_t keep)
{
	uint8_t magic[LC_HDR_MAGIC_LEN];
	uint8_t *zero;
	bool wrote = false;
	size_t got;
	int r = 0;

	zero = calloc(1, ERASE_LEN);
	if (!zero)
		return -ENOMEM;
	for (uint64_t c = LC_HDR_AREA_MIN; c <= LC_HDR_AREA_MAX; c <<= 1) {
		if (c == keep)
			continue;
		if (read_full(io, magic, sizeof(magic), c, &got) < 0 || got < sizeof(magic) ||
		    memcmp(magic, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN))
			continue;
		r = write_full(io, zero, ERASE_LEN, c);
		if (r)
			break;
		wrote = true;
	}
	free(zero);
	if (!r && wrote)
		r = io->sync(io->ctx);
	return r;
}

int lc_header_write_io(const struct lc_header_io *io, struct lc_header *h, struct lc_error *err)
{
	struct lc_header_info info;
	struct lc_header *old = NULL;
	struct lc_error e = { 0 };
	uint64_t hdr, area, seq, off[2];
	uint8_t *buf = NULL;
	size_t len;
	int first = 0, relayout = 0, r;
	bool same_layout = false;

	r = lc_header_check(h, err);
	if (r)
		return r;
	lc_header_layout(h->segment_count, h->key_size, &hdr, &area, NULL, NULL);
	off[0] = 0;
	off[1] = area;

	seq = h->seqno;
	if (lc_header_read_io(io, &old, &info, &e) == 0) {
		uint64_t old_area;
		bool same_uuid = !memcmp(old->uuid, h->uuid, LC_UUID_LEN);

		/* A sealed write comes from the holder of the KEK, whose @h is
		 * the authenticated header: its seqno is the truth, and a copy
		 * that only passes the checksum (forged, say with seqno 2^64-1)
		 * must not decide the next one. */
		for (int i = 0; i < 2 && !h->mac_key; i++)
			if (info.state[i] != LC_COPY_DAMAGED && info.seqno[i] > seq)
				seq = info.seqno[i];
		lc_header_layout(old->segment_count, old->key_size, NULL, &old_area, NULL, NULL);
		same_layout = old_area == area;
		/* Write first the copy that is not the current one. */
		first = info.used == 0 ? 1 : 0;
		/*
		 * The same volume in a larger or smaller area (a resize): write
		 * first the new copy that does not overlap the current copy A,
		 * so that a valid copy exists at every moment, and erase the
		 * old copy B only after both new copies are in place.  Growing:
		 * new B (at area >= 2 * old area, past both old copies), then
		 * A (over old B).  Shrinking: new A (hdr_size <= area < old
		 * area: old B stays intact), then new B (in old A's tail).
		 */
		if (!same_layout && same_uuid)
			relayout = area > old_area ? 1 : 2;
		lc_header_free(old);
		/* Each order overwrites one old copy while the other must still
		 * hold the current header: both must be valid and current, or
		 * a cut could leave none, or only a stale one. */
		if (relayout &&
		    (info.state[0] != LC_COPY_VALID || info.state[1] != LC_COPY_VALID))
			return lc_err(err, -EAGAIN, LC_ERRC_INVALID,
				      "header copy %s is %s: write the current header once (a repair) before its area changes size",
				      info.state[0] != LC_COPY_VALID ? "A" : "B",
				      info.state[0] != LC_COPY_VALID ? (info.state[0] == LC_COPY_STALE ? "stale" : "damaged")
				      : (info.state[1] == LC_COPY_STALE ? "stale" : "damaged"));
	}
	if (seq == UINT64_MAX)
		return lc_err(err, -EOVERFLOW, LC_ERRC_INVALID, "header sequence number exhausted");
	seq++;
	if (relayout) {
		first = relayout == 1 ? 1 : 0;
	} else if (!same_layout) {
		first = 0;
		r = erase_stale(io, area);
		if (r)
			return lc_err(err, r, LC_ERRC_INTERNAL,
				      "cannot erase an old header copy: %s", strerror(-r));
	}

	r = encode_seq(h, first, seq, &buf, &len, err);
	if (r)
		return r;
	for (int step = 0; step < 2; step++) {
		int copy = step == 0 ? first : !first;

		if (step == 1 && seal(buf, len, copy)) {
			r = lc_err(err, -EIO, LC_ERRC_INTERNAL, "SHA-256 failed");
			goto out;
		}
		r = write_full(io, buf, len, off[copy]);
		if (!r)
			r = io->sync(io->ctx);
		if (r) {
			r = lc_err(err, r, LC_ERRC_INTERNAL,
				   "writing header copy %s at offset %" PRIu64 " failed: %s%s",
				   copy_name(copy), off[copy], strerror(-r),
				   step ? " (copy written first is intact)" : "");
			goto out;
		}
	}
	h->seqno = seq;
	if (relayout) {
		/* Both new copies are valid: a stale copy B at another offset
		 * is only clutter now, but a reader must never probe it. */
		int e2 = erase_stale(io, area);

		if (e2)
			lc_error_log("the header was written, but the old copy B could not be erased (harmless: its seqno is lower): %s",
				     strerror(-e2));
	}
out:
	free(buf);
	return r;
}

/* ---- file descriptors and paths ---- */

static ssize_t fd_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	if (off > INT64_MAX)
		return 0;
	do
		n = pread(*(int *)ctx, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t fd_pwrite(void *ctx, const void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	if (off > INT64_MAX)
		return -EFBIG;
	do
		n = pwrite(*(int *)ctx, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int fd_sync(void *ctx)
{
	return fsync(*(int *)ctx) ? -errno : 0;
}

struct lc_header_io lc_header_io_fd(int *fd)
{
	struct lc_header_io io = { fd, fd_pread, fd_pwrite, fd_sync };

	return io;
}

int lc_header_read(int fd, struct lc_header **out, struct lc_header_info *info,
		   struct lc_error *err)
{
	struct lc_header_io io = { &fd, fd_pread, fd_pwrite, fd_sync };

	return lc_header_read_io(&io, out, info, err);
}

int lc_header_write(int fd, struct lc_header *h, struct lc_error *err)
{
	struct lc_header_io io = { &fd, fd_pread, fd_pwrite, fd_sync };

	return lc_header_write_io(&io, h, err);
}

int lc_header_read_path(const char *path, struct lc_header **out,
			struct lc_header_info *info, struct lc_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot open %s: %s", path,
			      strerror(errno));
	r = lc_header_read(fd, out, info, err);
	if (r && err) {
		char msg[LC_ERROR_MSG_MAX];

		memcpy(msg, err->msg, sizeof(msg));
		lc_err(err, r, err->cls, "%s: %s", path, msg);
	}
	return r;
}

int lc_header_read_copies(int fd, struct lc_header *copies[2], struct lc_header_info *info,
			  struct lc_error *err)
{
	struct lc_header_io io = { &fd, fd_pread, fd_pwrite, fd_sync };

	return lc_header_read_copies_io(&io, copies, info, err);
}

int lc_header_extent(int fd, uint64_t *end)
{
	uint8_t fixed[LC_HDR_OFF_CREATED];
	uint64_t e = 0, area;
	ssize_t n;

	n = pread(fd, fixed, sizeof(fixed), 0);
	if (n == (ssize_t)sizeof(fixed) && !memcmp(fixed, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN)) {
		area = get64(fixed + LC_HDR_OFF_AREA_SIZE);
		e = 2 * (is_candidate(area) ? area : LC_HDR_AREA_MIN);
	}
	for (uint64_t c = LC_HDR_AREA_MIN; c <= LC_HDR_AREA_MAX; c <<= 1) {
		n = pread(fd, fixed, sizeof(fixed), (off_t)c);
		if (n < 0)
			return -errno;
		if (n == (ssize_t)sizeof(fixed) && !memcmp(fixed, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN) &&
		    2 * c > e)
			e = 2 * c;
	}
	*end = e;
	return 0;
}

int lc_header_write_path(const char *path, bool create, struct lc_header *h,
			 struct lc_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);

	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot open %s for writing: %s",
			      path, strerror(errno));
	return lc_header_write(fd, h, err);
}

/* ---- dump: never key material ---- */

/* "sha256:" and the first 8 bytes of a digest in hex. */
static void digest_str(const uint8_t md[32], char out[24])
{
	snprintf(out, 24, "sha256:%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2],
		 md[3], md[4], md[5], md[6], md[7]);
}

static void fingerprint(const void *p, size_t len, char out[24])
{
	uint8_t md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		snprintf(out, 24, "sha256:?");
		return;
	}
	digest_str(md, out);
}

/* Fingerprint of the DEK table (wrapped keys, generations) as encoded. */
static void table_fingerprint(const struct lc_header *h, char out[24],
			      uint32_t *gmin, uint32_t *gmax)
{
	uint8_t md[32], rec[LC_DEK_REC_HDR + LC_DEK_MAX_LEN];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

	*gmin = UINT32_MAX;
	*gmax = 0;
	for (uint32_t i = 0; i < h->segment_count; i++) {
		const struct lc_wrapped_dek *d = &h->deks[i];

		if (d->generation < *gmin)
			*gmin = d->generation;
		if (d->generation > *gmax)
			*gmax = d->generation;
		put32(rec, d->generation);
		memcpy(rec + LC_DEK_REC_OFF_NONCE, d->nonce, LC_DEK_NONCE_LEN);
		memcpy(rec + LC_DEK_REC_OFF_TAG, d->tag, LC_DEK_TAG_LEN);
		memcpy(rec + LC_DEK_REC_OFF_CT, d->ct, h->key_size);
		ok = ok && EVP_DigestUpdate(ctx, rec, LC_DEK_REC_HDR + h->key_size);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		snprintf(out, 24, "sha256:?");
		return;
	}
	digest_str(md, out);
}

static bool printable(const struct lc_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->p[i] < 0x20 || b->p[i] > 0x7e)
			return false;
	return true;
}

static char *hex(const struct lc_buf *b)
{
	char *s = malloc(2 * b->len + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < b->len; i++)
		snprintf(s + 2 * i, 3, "%02x", b->p[i]);
	s[2 * b->len] = '\0';
	return s;
}

static void time_str(uint64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > (uint64_t)INT64_MAX || !gmtime_r(&tt, &tm) ||
	    !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "?");
}

static const char *state_name(enum lc_copy_state s)
{
	return s == LC_COPY_VALID ? "valid" : s == LC_COPY_STALE ? "stale" : "damaged";
}

#define JADD(o, k, v) json_object_object_add(o, k, v)

int lc_header_to_json(const struct lc_header *h, const struct lc_header_info *info,
		      char **json, struct lc_error *err)
{
	json_object *o, *sub;
	char uuid[37], fp[24], when[32];
	uint64_t hdr, area, dflt;
	uint32_t gmin, gmax;
	const char *s;

	*json = NULL;
	if (lc_header_check(h, err))
		return err ? err->code : -EINVAL;
	lc_header_layout(h->segment_count, h->key_size, &hdr, &area, &dflt, NULL);
	o = json_object_new_object();
	if (!o)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	lc_header_uuid_str(h, uuid);
	time_str(h->created, when);
	JADD(o, "version", json_object_new_int(h->version ? h->version : LC_HDR_VERSION));
	JADD(o, "authenticated", json_object_new_boolean(h->version != LC_HDR_VERSION_V1));
	JADD(o, "uuid", json_object_new_string(uuid));
	JADD(o, "seqno", json_object_new_uint64(h->seqno));
	JADD(o, "created", json_object_new_string(when));
	JADD(o, "detached", json_object_new_boolean(!!(h->flags & LC_HDR_F_DETACHED)));
	JADD(o, "workspace", json_object_new_string(h->workspace));
	JADD(o, "project", json_object_new_string(h->project));
	JADD(o, "key_configuration", json_object_new_string(h->keyconfig));
	JADD(o, "provider", json_object_new_string(h->provider));
	JADD(o, "provider_key_ref", json_object_new_string(h->provider_ref));
	JADD(o, "cmk_id", json_object_new_string(h->cmk_id));
	JADD(o, "cmk_version", json_object_new_string(h->cmk_version));
	JADD(o, "cipher", json_object_new_string(h->cipher));
	JADD(o, "key_size", json_object_new_int64(h->key_size));
	JADD(o, "sector_size", json_object_new_int64(h->sector_size));
	JADD(o, "segment_sectors", json_object_new_uint64(h->segment_sectors));
	JADD(o, "segment_count", json_object_new_int64(h->segment_count));
	JADD(o, "data_offset", json_object_new_uint64(h->data_offset));

	sub = json_object_new_object();
	JADD(sub, "header_bytes", json_object_new_uint64(hdr));
	JADD(sub, "area_bytes", json_object_new_uint64(area));
	JADD(sub, "copy_b_offset", json_object_new_uint64(area));
	JADD(o, "layout", sub);

	fingerprint(h->wrapped_kek.p, h->wrapped_kek.len, fp);
	sub = json_object_new_object();
	JADD(sub, "length", json_object_new_uint64(h->wrapped_kek.len));
	JADD(sub, "fingerprint", json_object_new_string(fp));
	JADD(o, "wrapped_kek", sub);

	if (printable(&h->wrap_context)) {
		JADD(o, "wrap_context", json_object_new_string_len((const char *)h->wrap_context.p,
								   (int)h->wrap_context.len));
	} else {
		char *x = hex(&h->wrap_context);

		JADD(o, "wrap_context_hex", x ? json_object_new_string(x) : NULL);
		free(x);
	}

	table_fingerprint(h, fp, &gmin, &gmax);
	sub = json_object_new_object();
	JADD(sub, "count", json_object_new_int64(h->segment_count));
	JADD(sub, "record_bytes", json_object_new_int64(lc_header_dek_stride(h->key_size)));
	JADD(sub, "generation_min", json_object_new_int64(gmin));
	JADD(sub, "generation_max", json_object_new_int64(gmax));
	JADD(sub, "fingerprint", json_object_new_string(fp));
	JADD(o, "wrapped_deks", sub);
	if (h->journal.active) {
		sub = json_object_new_object();
		JADD(sub, "segment", json_object_new_int64(h->journal.segment));
		JADD(sub, "old_generation", json_object_new_int64(h->journal.old_gen));
		JADD(sub, "new_generation", json_object_new_int64(h->journal.new_gen));
		JADD(sub, "sectors_done", json_object_new_uint64(h->journal.done));
		JADD(sub, "zone_sectors", json_object_new_int64(h->journal.zone));
		JADD(o, "segment_rekey", sub);
	}

	if (info) {
		json_object *arr = json_object_new_array();

		for (int i = 0; i < 2; i++) {
			sub = json_object_new_object();
			JADD(sub, "copy", json_object_new_string(copy_name(i)));
			JADD(sub, "offset", json_object_new_uint64(info->offset[i]));
			JADD(sub, "state", json_object_new_string(state_name(info->state[i])));
			JADD(sub, "used", json_object_new_boolean(info->used == i));
			if (info->state[i] == LC_COPY_DAMAGED)
				JADD(sub, "error", json_object_new_string(info->why[i]));
			else
				JADD(sub, "seqno", json_object_new_uint64(info->seqno[i]));
			json_object_array_add(arr, sub);
		}
		JADD(o, "copies", arr);
	}
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	*json = s ? strdup(s) : NULL;
	json_object_put(o);
	if (!*json)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	return 0;
}

int lc_header_dump_text(const struct lc_header *h, const struct lc_header_info *info, FILE *f)
{
	char uuid[37], fp[24], when[32];
	uint64_t hdr, area, dflt;
	uint32_t gmin, gmax;

	if (lc_header_check(h, NULL))
		return -EINVAL;
	lc_header_layout(h->segment_count, h->key_size, &hdr, &area, &dflt, NULL);
	lc_header_uuid_str(h, uuid);
	time_str(h->created, when);
	fprintf(f, "lakecrypt header version %d%s\n", h->version ? h->version : LC_HDR_VERSION,
		h->version == LC_HDR_VERSION_V1 ? " (not authenticated: refused by open)" : "");
	fprintf(f, "UUID:              %s\n", uuid);
	fprintf(f, "Seqno:             %" PRIu64 "\n", h->seqno);
	fprintf(f, "Created:           %s\n", when);
	fprintf(f, "Detached:          %s\n", h->flags & LC_HDR_F_DETACHED ? "yes" : "no");
	fprintf(f, "Workspace:         %s\n", h->workspace);
	fprintf(f, "Project:           %s\n", h->project);
	fprintf(f, "Key configuration: %s\n", h->keyconfig);
	fprintf(f, "Provider:          %s\n", h->provider);
	fprintf(f, "Provider key ref:  %s\n", h->provider_ref);
	fprintf(f, "CMK id:            %s\n", h->cmk_id);
	fprintf(f, "CMK version:       %s\n", h->cmk_version[0] ? h->cmk_version : "-");
	fprintf(f, "Cipher:            %s\n", h->cipher);
	fprintf(f, "Key size:          %" PRIu32 " bytes\n", h->key_size);
	fprintf(f, "Sector size:       %" PRIu32 " bytes\n", h->sector_size);
	fprintf(f, "Segment size:      %" PRIu64 " sectors\n", h->segment_sectors);
	fprintf(f, "Segments:          %" PRIu32 "\n", h->segment_count);
	fprintf(f, "Data offset:       %" PRIu64 " sectors\n", h->data_offset);
	fprintf(f, "Header size:       %" PRIu64 " bytes per copy, area %" PRIu64 " bytes\n",
		hdr, area);
	fingerprint(h->wrapped_kek.p, h->wrapped_kek.len, fp);
	fprintf(f, "Wrapped KEK:       %zu bytes, %s\n", h->wrapped_kek.len, fp);
	if (printable(&h->wrap_context)) {
		fprintf(f, "Wrap context:      %.*s\n", (int)h->wrap_context.len,
			(const char *)h->wrap_context.p);
	} else {
		char *x = hex(&h->wrap_context);

		fprintf(f, "Wrap context:      hex %s\n", x ? x : "?");
		free(x);
	}
	table_fingerprint(h, fp, &gmin, &gmax);
	fprintf(f, "Wrapped DEKs:      %" PRIu32 " of %" PRIu32 " bytes, generations %" PRIu32
		"..%" PRIu32 ", %s\n", h->segment_count, lc_header_dek_stride(h->key_size), gmin,
		gmax, fp);
	if (h->journal.active)
		fprintf(f, "Re-key running:    segment %" PRIu32 ", generation %" PRIu32 " -> %" PRIu32
			", %" PRIu64 " sectors done, %" PRIu32 " in flight (open refuses it: run lakecryptctl rekey-segment --resume)\n",
			h->journal.segment, h->journal.old_gen, h->journal.new_gen, h->journal.done,
			h->journal.zone);
	if (info)
		for (int i = 0; i < 2; i++)
			fprintf(f, "Copy %s:            offset %" PRIu64 ", %s%s%s%s\n",
				copy_name(i), info->offset[i], state_name(info->state[i]),
				info->used == i ? " (used)" : "",
				info->state[i] == LC_COPY_DAMAGED ? ": " : "",
				info->state[i] == LC_COPY_DAMAGED ? info->why[i] : "");
	return ferror(f) ? -EIO : 0;
}
