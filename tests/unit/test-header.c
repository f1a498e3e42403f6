// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the lakecrypt volume header (agent/lib/header.c): layout,
 * round trips, every way a copy can be damaged or hostile, copy selection,
 * crash safety of the two-copy update (the write sequence is cut at every
 * 512-byte sector and at every sync), detached headers, the dump, the
 * fuzz corpus as regression cases, and speed at 65,536 segments.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "header.h"

/* ---------- test data ---------- */

static uint64_t rng_state;

static uint8_t rnd8(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint8_t)(rng_state >> 24);
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = rnd8();
}

static void set_buf(struct lc_buf *b, const void *p, size_t len)
{
	free(b->p);
	b->p = malloc(len);
	assert_non_null(b->p);
	memcpy(b->p, p, len);
	b->len = len;
}

/* A complete, valid header, different for every @seed. */
static struct lc_header *make_header(uint32_t count, uint32_t key_size, uint64_t seed)
{
	struct lc_header *h = lc_header_new(count, key_size);
	uint8_t kek[300];
	char uuid[37];

	assert_non_null(h);
	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	fill(h->uuid, sizeof(h->uuid));
	h->uuid[0] |= 1;
	h->created = 1700000000 + seed;
	h->segment_sectors = 2048;
	assert_int_equal(lc_header_layout(count, key_size, NULL, NULL, &h->data_offset, NULL), 0);
	snprintf(h->workspace, sizeof(h->workspace), "ws-%" PRIu64, seed);
	snprintf(h->project, sizeof(h->project), "project.%" PRIu64, seed);
	snprintf(h->keyconfig, sizeof(h->keyconfig), "kc_%" PRIu64, seed);
	snprintf(h->provider, sizeof(h->provider), "local");
	snprintf(h->provider_ref, sizeof(h->provider_ref),
		 "arn:aws:kms:eu-west-1:111122223333:key/%" PRIu64, seed);
	snprintf(h->cmk_id, sizeof(h->cmk_id), "cmk-%" PRIu64, seed);
	snprintf(h->cmk_version, sizeof(h->cmk_version), "v%" PRIu64, seed);
	fill(kek, sizeof(kek));
	set_buf(&h->wrapped_kek, kek, 100 + seed % 200);
	lc_header_uuid_str(h, uuid);
	set_buf(&h->wrap_context, uuid, strlen(uuid));
	for (uint32_t i = 0; i < count; i++) {
		h->deks[i].generation = (uint32_t)(seed + i % 3);
		fill(h->deks[i].nonce, LC_DEK_NONCE_LEN);
		fill(h->deks[i].tag, LC_DEK_TAG_LEN);
		fill(h->deks[i].ct, key_size);
	}
	return h;
}

/* Equal apart from the seqno? */
static void assert_same_header(const struct lc_header *a, const struct lc_header *b)
{
	assert_int_equal(a->flags, b->flags);
	assert_memory_equal(a->uuid, b->uuid, LC_UUID_LEN);
	assert_int_equal(a->created, b->created);
	assert_string_equal(a->workspace, b->workspace);
	assert_string_equal(a->project, b->project);
	assert_string_equal(a->keyconfig, b->keyconfig);
	assert_string_equal(a->provider, b->provider);
	assert_string_equal(a->provider_ref, b->provider_ref);
	assert_string_equal(a->cmk_id, b->cmk_id);
	assert_string_equal(a->cmk_version, b->cmk_version);
	assert_string_equal(a->cipher, b->cipher);
	assert_int_equal(a->wrapped_kek.len, b->wrapped_kek.len);
	assert_memory_equal(a->wrapped_kek.p, b->wrapped_kek.p, a->wrapped_kek.len);
	assert_int_equal(a->wrap_context.len, b->wrap_context.len);
	assert_memory_equal(a->wrap_context.p, b->wrap_context.p, a->wrap_context.len);
	assert_int_equal(a->key_size, b->key_size);
	assert_int_equal(a->sector_size, b->sector_size);
	assert_int_equal(a->segment_sectors, b->segment_sectors);
	assert_int_equal(a->data_offset, b->data_offset);
	assert_int_equal(a->segment_count, b->segment_count);
	for (uint32_t i = 0; i < a->segment_count; i++) {
		assert_int_equal(a->deks[i].generation, b->deks[i].generation);
		assert_memory_equal(a->deks[i].nonce, b->deks[i].nonce, LC_DEK_NONCE_LEN);
		assert_memory_equal(a->deks[i].tag, b->deks[i].tag, LC_DEK_TAG_LEN);
		assert_memory_equal(a->deks[i].ct, b->deks[i].ct, a->key_size);
	}
}

static bool same_header(const struct lc_header *a, const struct lc_header *b)
{
	if (a->flags != b->flags || memcmp(a->uuid, b->uuid, LC_UUID_LEN) ||
	    a->created != b->created || strcmp(a->cmk_version, b->cmk_version) ||
	    a->wrapped_kek.len != b->wrapped_kek.len ||
	    memcmp(a->wrapped_kek.p, b->wrapped_kek.p, a->wrapped_kek.len) ||
	    a->segment_count != b->segment_count || a->key_size != b->key_size ||
	    strcmp(a->workspace, b->workspace) || strcmp(a->project, b->project))
		return false;
	for (uint32_t i = 0; i < a->segment_count; i++)
		if (a->deks[i].generation != b->deks[i].generation ||
		    memcmp(a->deks[i].nonce, b->deks[i].nonce, LC_DEK_NONCE_LEN) ||
		    memcmp(a->deks[i].tag, b->deks[i].tag, LC_DEK_TAG_LEN) ||
		    memcmp(a->deks[i].ct, b->deks[i].ct, a->key_size))
			return false;
	return true;
}

/* ---------- an in-memory disk that can lose power ---------- */

#define SECTOR 512

struct memdisk {
	uint8_t *img;		/* what reads see (page cache) */
	uint8_t *durable;	/* what survives power loss for sure */
	uint8_t *dirty;		/* per sector: written since the last sync */
	size_t size;		/* bytes in use */
	size_t cap;
	long budget;		/* sectors still accepted before power loss; -1: no limit */
	long syncs_left;	/* syncs that succeed before power loss; -1: no limit */
	bool dead;
	bool ignore_sync;	/* a disk that lies about flushes */
	size_t max_io;		/* split reads and writes into short transfers */
	unsigned int writes, syncs;
};

static void md_init(struct memdisk *d, size_t cap)
{
	memset(d, 0, sizeof(*d));
	d->cap = cap;
	d->img = calloc(1, cap);
	d->durable = calloc(1, cap);
	d->dirty = calloc(1, cap / SECTOR + 1);
	assert_true(d->img && d->durable && d->dirty);
	d->budget = -1;
	d->syncs_left = -1;
}

static void md_free(struct memdisk *d)
{
	free(d->img);
	free(d->durable);
	free(d->dirty);
}

static void md_copy(struct memdisk *dst, const struct memdisk *src)
{
	md_init(dst, src->cap);
	memcpy(dst->img, src->img, src->cap);
	memcpy(dst->durable, src->durable, src->cap);
	dst->size = src->size;
}

static ssize_t md_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct memdisk *d = ctx;

	if (off >= d->size)
		return 0;
	if (len > d->size - off)
		len = d->size - off;
	if (d->max_io && len > d->max_io)
		len = d->max_io;
	memcpy(buf, d->img + off, len);
	return (ssize_t)len;
}

static ssize_t md_pwrite(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct memdisk *d = ctx;
	size_t done = 0;

	d->writes++;
	if (d->dead)
		return -EIO;
	assert_true(off + len <= d->cap);
	if (d->max_io && len > d->max_io)
		len = d->max_io;
	/* sector by sector, so that power can fail in the middle */
	while (done < len) {
		uint64_t pos = off + done;
		size_t n = SECTOR - pos % SECTOR;

		if (n > len - done)
			n = len - done;
		if (d->budget == 0) {
			d->dead = true;
			return done ? (ssize_t)done : -EIO;
		}
		if (d->budget > 0)
			d->budget--;
		memcpy(d->img + pos, (const uint8_t *)buf + done, n);
		d->dirty[pos / SECTOR] = 1;
		done += n;
		if (pos + n > d->size)
			d->size = pos + n;
	}
	return (ssize_t)done;
}

static int md_sync(void *ctx)
{
	struct memdisk *d = ctx;

	d->syncs++;
	if (d->dead)
		return -EIO;
	if (d->syncs_left == 0) {
		d->dead = true;
		return -EIO;
	}
	if (d->syncs_left > 0)
		d->syncs_left--;
	if (d->ignore_sync)
		return 0;
	for (size_t s = 0; s < d->cap / SECTOR; s++)
		if (d->dirty[s]) {
			memcpy(d->durable + s * SECTOR, d->img + s * SECTOR, SECTOR);
			d->dirty[s] = 0;
		}
	return 0;
}

static struct lc_header_io md_io(struct memdisk *d)
{
	struct lc_header_io io = { d, md_pread, md_pwrite, md_sync };

	return io;
}

/* After power loss: durable data plus the unsynced sectors that @mode keeps:
 * 0 all, 1 none, 2 the first half, 3 the second half, >= 4 a random subset. */
static void md_crash(struct memdisk *d, int mode)
{
	size_t n = d->cap / SECTOR, ndirty = 0, k = 0;

	for (size_t s = 0; s < n; s++)
		ndirty += d->dirty[s];
	rng_state = (uint64_t)mode * 7919 + 3;
	for (size_t s = 0; s < n; s++) {
		bool keep;

		if (!d->dirty[s])
			continue;
		keep = mode == 0 || (mode == 2 && k < ndirty / 2) ||
		       (mode == 3 && k >= ndirty / 2) || (mode >= 4 && (rnd8() & 1));
		k++;
		if (!keep)
			memcpy(d->img + s * SECTOR, d->durable + s * SECTOR, SECTOR);
		memcpy(d->durable + s * SECTOR, d->img + s * SECTOR, SECTOR);
		d->dirty[s] = 0;
	}
	d->dead = false;
	d->budget = -1;
	d->syncs_left = -1;
}

/* Place an encoded copy on the disk as durable data. */
static void md_put(struct memdisk *d, const struct lc_header *h, int copy, uint64_t off)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(lc_header_encode(h, copy, &buf, &len, NULL), 0);
	assert_true(off + len <= d->cap);
	memcpy(d->img + off, buf, len);
	memcpy(d->durable + off, buf, len);
	if (off + len > d->size)
		d->size = off + len;
	free(buf);
}

static uint64_t area_of(const struct lc_header *h)
{
	uint64_t area;

	assert_int_equal(lc_header_layout(h->segment_count, h->key_size, NULL, &area, NULL, NULL), 0);
	return area;
}

static void expect_read_error(struct memdisk *d, const char *needle)
{
	struct lc_header_io io = md_io(d);
	struct lc_header *h = (struct lc_header *)1;
	struct lc_error err = { 0 };

	assert_true(lc_header_read_io(&io, &h, NULL, &err) < 0);
	assert_null(h);
	if (!strstr(err.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
}

/* ---------- layout and round trips ---------- */

static void test_layout(void **state)
{
	uint64_t hdr, area, data;
	struct lc_error err = { 0 };

	(void)state;
	assert_int_equal(lc_header_layout(1, 64, &hdr, &area, &data, &err), 0);
	assert_int_equal(hdr, 16384 + 96);
	assert_int_equal(area, 32768);
	assert_int_equal(data, 2048);		/* 1 MiB */
	assert_int_equal(lc_header_layout(65536, 64, &hdr, &area, &data, &err), 0);
	assert_int_equal(hdr, 16384 + 65536ull * 96);
	assert_int_equal(area, 8ull << 20);
	assert_int_equal(data, (16ull << 20) / 512);
	assert_int_equal(lc_header_layout(1u << 20, 128, &hdr, &area, &data, &err), 0);
	assert_int_equal(hdr, 16384 + (1ull << 20) * 160);
	assert_int_equal(area, 1ull << 28);
	assert_int_equal(data, (1ull << 29) / 512);
	assert_int_equal(lc_header_layout(3, 40, &hdr, NULL, NULL, &err), 0);
	assert_int_equal(hdr, 16384 + 3 * 80);	/* 32 + 40 rounded to 16 */
	assert_int_equal(lc_header_dek_stride(16), 48);
	assert_int_equal(lc_header_dek_stride(15), 0);
	assert_int_equal(lc_header_dek_stride(129), 0);

	assert_int_equal(lc_header_layout(0, 64, &hdr, &area, &data, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "segment count 0 out of range"));
	assert_int_equal(lc_header_layout((1u << 20) + 1, 64, NULL, NULL, NULL, &err), -EINVAL);
	assert_int_equal(lc_header_layout(8, 129, NULL, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "key size 129"));
	assert_int_equal(lc_header_layout(8, 0, NULL, NULL, NULL, &err), -EINVAL);
	assert_null(lc_header_new(0, 64));
	assert_null(lc_header_new(4, 8));
}

static void roundtrip(uint32_t count, uint32_t key_size, uint32_t flags, uint64_t data_offset)
{
	struct lc_header *h = make_header(count, key_size, count + key_size);
	struct lc_header *d = NULL;
	struct lc_error err = { 0 };
	uint8_t *buf, *buf2;
	size_t len, len2;
	uint64_t hdr;
	int copy = -1;

	h->flags = flags;
	if (flags & LC_HDR_F_DETACHED)
		h->data_offset = data_offset;
	h->seqno = 42;
	assert_int_equal(lc_header_encode(h, 1, &buf, &len, &err), 0);
	assert_int_equal(lc_header_layout(count, key_size, &hdr, NULL, NULL, NULL), 0);
	assert_int_equal(len, hdr);
	assert_int_equal(lc_header_decode(buf, len, &d, &copy, &err), 0);
	assert_int_equal(copy, 1);
	assert_int_equal(d->seqno, 42);
	assert_same_header(h, d);
	/* canonical: decode then encode gives the same bytes */
	assert_int_equal(lc_header_encode(d, 1, &buf2, &len2, &err), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	/* validate-only decode */
	assert_int_equal(lc_header_decode(buf, len, NULL, NULL, &err), 0);
	free(buf);
	free(buf2);
	lc_header_free(d);
	lc_header_free(h);
}

static void test_roundtrip(void **state)
{
	(void)state;
	roundtrip(1, 16, 0, 0);
	roundtrip(1, 64, 0, 0);
	roundtrip(7, 40, 0, 0);
	roundtrip(64, 64, 0, 0);
	roundtrip(333, 128, 0, 0);
	roundtrip(4096, 32, 0, 0);
	roundtrip(5, 64, LC_HDR_F_DETACHED, 0);
	roundtrip(5, 64, LC_HDR_F_DETACHED, 8);
}

static void test_check_rejects(void **state)
{
	struct lc_header *h = make_header(4, 64, 1);
	struct lc_error err = { 0 };
	uint8_t *buf = NULL;
	size_t len;

	(void)state;
	assert_int_equal(lc_header_check(h, &err), 0);
#define REJECT(stmt, undo, needle)                                                  \
	do {                                                                        \
		stmt;                                                               \
		assert_int_equal(lc_header_encode(h, 0, &buf, &len, &err), -EINVAL);\
		if (!strstr(err.msg, needle))                                       \
			fail_msg("\"%s\" does not mention \"%s\"", err.msg, needle);\
		undo;                                                               \
		assert_int_equal(lc_header_check(h, &err), 0);                     \
	} while (0)
	REJECT(h->segment_sectors = 12, h->segment_sectors = 2048, "segment size 12");
	REJECT(h->segment_sectors = 4, h->segment_sectors = 2048, "power of two");
	REJECT(h->segment_sectors = 1ull << 33, h->segment_sectors = 2048, "segment size");
	REJECT(h->sector_size = 1000, h->sector_size = 512, "sector size 1000");
	REJECT(h->sector_size = 8192, h->sector_size = 512, "sector size 8192");
	REJECT((h->sector_size = 4096, h->data_offset = 2049), (h->sector_size = 512,
	       h->data_offset = 2048), "not a multiple");
	REJECT(h->data_offset = 0, h->data_offset = 2048, "overlaps the header copies");
	REJECT(h->data_offset = 127, h->data_offset = 2048, "overlaps");
	REJECT(h->data_offset = UINT64_MAX - 1, h->data_offset = 2048, "beyond");
	REJECT(h->flags = 0x80, h->flags = 0, "unknown flags");
	REJECT(memset(h->uuid, 0, 16), h->uuid[0] = 1, "uuid is all zeros");
	REJECT(h->workspace[0] = 0, h->workspace[0] = 'w', "workspace is empty");
	REJECT(h->workspace[0] = '-', h->workspace[0] = 'w', "workspace has a forbidden");
	REJECT(h->project[1] = ' ', h->project[1] = 'r', "project name has a forbidden");
	REJECT(h->project[1] = '/', h->project[1] = 'r', "forbidden character");
	REJECT(memset(h->keyconfig, 'k', sizeof(h->keyconfig)), strcpy(h->keyconfig, "kc"),
	       "not NUL-terminated");
	REJECT(h->provider_ref[3] = '\n', h->provider_ref[3] = ':', "byte 0x0a at position 3");
	REJECT(h->cmk_id[0] = 0, h->cmk_id[0] = 'c', "CMK id is empty");
	REJECT(strcpy(h->cipher, "aes-xts-essiv:sha256"), strcpy(h->cipher, "aes-xts-plain64"),
	       "plain64");
	REJECT(strcpy(h->cipher, "-plain64"), strcpy(h->cipher, "aes-xts-plain64"), "plain64");
	REJECT(strcpy(h->cipher, "aes xts-plain64"), strcpy(h->cipher, "aes-xts-plain64"),
	       "cipher has a forbidden");
	REJECT(h->wrapped_kek.len = 0, h->wrapped_kek.len = 101, "wrapped KEK length 0");
	REJECT(h->wrapped_kek.len = LC_HDR_KEK_MAX + 1, h->wrapped_kek.len = 101, "1..8192");
	REJECT(h->wrap_context.len = 0, h->wrap_context.len = 36, "wrap context length 0");
	REJECT(h->wrap_context.len = 1025, h->wrap_context.len = 36, "wrap context length");
	REJECT(h->segment_count = 0, h->segment_count = 4, "segment count 0");
	REJECT(h->key_size = 200, h->key_size = 64, "key size 200");
	/* empty CMK version is allowed; capi: ciphers too */
	h->cmk_version[0] = 0;
	strcpy(h->cipher, "capi:xts(aes)-plain64");
	assert_int_equal(lc_header_check(h, &err), 0);
	lc_header_free(h);
}

/* ---------- damaged and hostile copies ---------- */

static uint8_t *encoded(uint32_t count, uint32_t key_size, size_t *len)
{
	struct lc_header *h = make_header(count, key_size, 7);
	uint8_t *buf;

	assert_int_equal(lc_header_encode(h, 0, &buf, len, NULL), 0);
	lc_header_free(h);
	return buf;
}

static void expect_decode_error(const uint8_t *buf, size_t len, const char *needle)
{
	struct lc_header *h = (struct lc_header *)1;
	struct lc_error err = { 0 };
	int r = lc_header_decode(buf, len, &h, NULL, &err);

	if (r == 0)
		fail_msg("decoded although it should fail with \"%s\"", needle);
	assert_int_equal(err.code, r);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_null(h);
	if (!strstr(err.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
}

static void test_truncated(void **state)
{
	size_t len;
	uint8_t *buf = encoded(64, 64, &len);

	(void)state;
	expect_decode_error(NULL, 0, "bad magic");
	for (size_t n = 0; n < LC_HDR_MAGIC_LEN; n++)
		expect_decode_error(buf, n, "bad magic");
	for (size_t n = LC_HDR_MAGIC_LEN; n < LC_HDR_FIXED_SIZE; n += n < 600 ? 1 : 97)
		expect_decode_error(buf, n, "truncated");
	for (size_t n = LC_HDR_FIXED_SIZE; n < len; n++)
		expect_decode_error(buf, n, "truncated");
	assert_int_equal(lc_header_decode(buf, len, NULL, NULL, NULL), 0);
	free(buf);
}

/* Every byte of the fixed part and of the DEK table is covered by the checksum. */
static void test_bit_flips(void **state)
{
	size_t len;
	uint8_t *buf = encoded(3, 40, &len);

	(void)state;
	for (size_t i = 0; i < len; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));

		buf[i] ^= bit;
		if (i < LC_HDR_MAGIC_LEN)
			expect_decode_error(buf, len, "bad magic");
		else if (i >= LC_HDR_OFF_VERSION && i < LC_HDR_OFF_VERSION + 2)
			/* 2 ^ 1 = 3 is a known version: then the checksum fails */
			expect_decode_error(buf, len, buf[LC_HDR_OFF_VERSION] == LC_HDR_VERSION_V3 &&
					    !buf[LC_HDR_OFF_VERSION + 1] ? "bad checksum" :
					    "unsupported header version");
		else if (i >= LC_HDR_OFF_COPY && i < LC_HDR_OFF_COPY + 2 &&
			 (buf[LC_HDR_OFF_COPY] > 1 || buf[LC_HDR_OFF_COPY + 1]))
			expect_decode_error(buf, len, "bad copy index");
		else if (i >= LC_HDR_OFF_HDR_SIZE && i < LC_HDR_OFF_HDR_SIZE + 8)
			expect_decode_error(buf, len, "");	/* size or truncation */
		else
			expect_decode_error(buf, len, "bad checksum");
		buf[i] ^= bit;
	}
	assert_int_equal(lc_header_decode(buf, len, NULL, NULL, NULL), 0);
	free(buf);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A hostile writer: change a field and make the checksum match again. */
static void hostile(uint32_t count, uint32_t key_size, size_t off, uint64_t v, int n,
		    const char *needle)
{
	size_t len;
	uint8_t *buf = encoded(count, key_size, &len);

	put_le(buf + off, v, n);
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	expect_decode_error(buf, len, needle);
	free(buf);
}

static void hostile_bytes(size_t off, const void *p, size_t n, const char *needle)
{
	size_t len;
	uint8_t *buf = encoded(4, 64, &len);

	memcpy(buf + off, p, n);
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	expect_decode_error(buf, len, needle);
	free(buf);
}

static void test_hostile_fields(void **state)
{
	uint8_t a64[LC_HDR_NAME_SIZE];

	(void)state;
	hostile(4, 64, LC_HDR_OFF_VERSION, 3, 2, "malformed re-key journal");	/* v3 without one */
	hostile(4, 64, LC_HDR_OFF_VERSION, 4, 2, "unsupported header version 4");
	hostile(4, 64, LC_HDR_OFF_COPY, 2, 2, "bad copy index 2");
	hostile(4, 64, LC_HDR_OFF_HDR_SIZE, UINT64_MAX, 8, "out of range");
	hostile(4, 64, LC_HDR_OFF_HDR_SIZE, 1u << 30, 8, "out of range");
	hostile(4, 64, LC_HDR_OFF_HDR_SIZE, 100, 8, "out of range");
	hostile(4, 64, LC_HDR_OFF_HDR_SIZE, 16384 + 4 * 96 + 1, 8, "truncated");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_COUNT, 0, 4, "segment count 0");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_COUNT, 5, 4, "inconsistent");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_COUNT, 3, 4, "inconsistent");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_COUNT, (1u << 20) + 1, 4, "segment count");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_COUNT, UINT32_MAX, 4, "segment count");
	hostile(4, 64, LC_HDR_OFF_KEY_SIZE, 0, 4, "key size 0");
	hostile(4, 64, LC_HDR_OFF_KEY_SIZE, 15, 4, "key size 15");
	hostile(4, 64, LC_HDR_OFF_KEY_SIZE, 129, 4, "key size 129");
	hostile(4, 64, LC_HDR_OFF_KEY_SIZE, UINT32_MAX, 4, "key size");
	hostile(4, 64, LC_HDR_OFF_KEY_SIZE, 48, 4, "DEK table");	/* stride 80 != 96 */
	hostile(4, 64, LC_HDR_OFF_KEY_SIZE, 56, 4, "non-zero padding");	/* same stride */
	hostile(4, 64, LC_HDR_OFF_AREA_SIZE, 65536, 8, "area size");
	hostile(4, 64, LC_HDR_OFF_AREA_SIZE, 0, 8, "area size");
	hostile(4, 64, LC_HDR_OFF_DEK_STRIDE, 64, 4, "DEK table");
	hostile(4, 64, LC_HDR_OFF_DEK_STRIDE, UINT32_MAX, 4, "DEK table");
	hostile(4, 64, LC_HDR_OFF_DEK_TABLE, 0, 4, "DEK table at offset 0");
	hostile(4, 64, LC_HDR_OFF_DEK_TABLE, 8192, 4, "DEK table");
	hostile(4, 64, LC_HDR_OFF_KEK_LEN, 0, 4, "wrapped KEK length 0");
	hostile(4, 64, LC_HDR_OFF_KEK_LEN, 8193, 4, "wrapped KEK length 8193");
	hostile(4, 64, LC_HDR_OFF_KEK_LEN, UINT32_MAX, 4, "wrapped KEK length");
	hostile(4, 64, LC_HDR_OFF_KEK_LEN, 50, 4, "non-zero bytes after");	/* tail not zero */
	hostile(4, 64, LC_HDR_OFF_WRAP_CTX_LEN, 0, 4, "wrap context length 0");
	hostile(4, 64, LC_HDR_OFF_WRAP_CTX_LEN, 1025, 4, "wrap context length 1025");
	hostile(4, 64, LC_HDR_OFF_WRAP_CTX_LEN, 10, 4, "non-zero bytes after");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_SECTORS, 0, 8, "segment size 0");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_SECTORS, 12, 8, "segment size 12");
	hostile(4, 64, LC_HDR_OFF_SEGMENT_SECTORS, UINT64_MAX, 8, "segment size");
	hostile(4, 64, LC_HDR_OFF_SECTOR_SIZE, 0, 4, "sector size 0");
	hostile(4, 64, LC_HDR_OFF_SECTOR_SIZE, 520, 4, "sector size 520");
	hostile(4, 64, LC_HDR_OFF_DATA_OFFSET, 0, 8, "overlaps the header copies");
	hostile(4, 64, LC_HDR_OFF_DATA_OFFSET, UINT64_MAX, 8, "beyond");
	hostile(4, 64, LC_HDR_OFF_DATA_OFFSET, 1ull << 55, 8, "beyond");
	hostile(4, 64, LC_HDR_OFF_FLAGS, 2, 4, "unknown flags");
	hostile(4, 64, LC_HDR_OFF_RESERVED1, 1, 1, "reserved bytes");
	hostile(4, 64, LC_HDR_OFF_RESERVED2 + 7, 0xff, 1, "reserved bytes");
	hostile(4, 64, LC_HDR_OFF_RESERVED3 + 2047, 1, 1, "reserved bytes");
	hostile(3, 40, LC_HDR_FIXED_SIZE + 80 + 72, 1, 1, "DEK record 1 has non-zero padding");

	/* strings: missing NUL, garbage after the NUL, forbidden characters */
	memset(a64, 'a', sizeof(a64));
	hostile_bytes(LC_HDR_OFF_WORKSPACE, a64, LC_HDR_NAME_SIZE, "workspace is not NUL-terminated");
	hostile_bytes(LC_HDR_OFF_PROJECT, a64, LC_HDR_NAME_SIZE, "project name is not NUL");
	hostile_bytes(LC_HDR_OFF_KEYCONFIG, a64, LC_HDR_NAME_SIZE, "key configuration name is not");
	hostile_bytes(LC_HDR_OFF_PROVIDER, a64, LC_HDR_PROVIDER_SIZE, "provider kind is not");
	hostile_bytes(LC_HDR_OFF_CIPHER + 64, a64, 64, "cipher field has non-zero bytes");
	hostile_bytes(LC_HDR_OFF_CMK_VERSION + LC_HDR_CMK_VERSION_SIZE - 64, a64, 64,
		      "CMK version field has non-zero bytes");
	{
		uint8_t v[LC_HDR_CMK_VERSION_SIZE];

		memset(v, 'v', sizeof(v));
		hostile_bytes(LC_HDR_OFF_CMK_VERSION, v, sizeof(v), "CMK version is not NUL");
	}
	hostile_bytes(LC_HDR_OFF_WORKSPACE + 40, "x", 1, "workspace field has non-zero bytes");
	hostile_bytes(LC_HDR_OFF_PROVIDER_REF + 2047, "x", 1, "provider key reference field");
	hostile_bytes(LC_HDR_OFF_PROJECT, "..", 2, "project name has a forbidden");
	hostile_bytes(LC_HDR_OFF_WORKSPACE, "a b", 3, "workspace has a forbidden");
	hostile_bytes(LC_HDR_OFF_PROVIDER_REF, "\x1b[2J", 4, "provider key reference has a forbidden");
	hostile_bytes(LC_HDR_OFF_CMK_ID, "\xff", 1, "CMK id has a forbidden");
	hostile_bytes(LC_HDR_OFF_CIPHER, "aes-xts-plain\0\0", 16, "plain64 IV");
	{
		static const uint8_t z[LC_HDR_CMK_ID_SIZE];

		hostile_bytes(LC_HDR_OFF_UUID, z, LC_UUID_LEN, "uuid is all zeros");
		hostile_bytes(LC_HDR_OFF_CMK_ID, z, LC_HDR_CMK_ID_SIZE, "CMK id is empty");
	}
}

/* Hostile but self-consistent: 2^20 segments claimed in a short buffer. */
static void test_huge_counts(void **state)
{
	size_t len;
	uint8_t *buf = encoded(1, 128, &len);
	uint64_t hdr;

	(void)state;
	assert_int_equal(lc_header_layout(1u << 20, 128, &hdr, NULL, NULL, NULL), 0);
	put_le(buf + LC_HDR_OFF_SEGMENT_COUNT, 1u << 20, 4);
	put_le(buf + LC_HDR_OFF_HDR_SIZE, hdr, 8);
	put_le(buf + LC_HDR_OFF_AREA_SIZE, 1u << 28, 8);
	expect_decode_error(buf, len, "truncated: the header is 167788544 bytes");
	free(buf);
}

/* A sparse device of @size bytes holding @fixed at offset 0 and zeros
 * elsewhere; counts the bytes read. */
struct sparse {
	const uint8_t *fixed;
	size_t fixed_len;
	uint64_t size;
	uint64_t bytes_read;
};

static ssize_t sparse_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct sparse *sp = ctx;

	if (off >= sp->size)
		return 0;
	if (len > sp->size - off)
		len = sp->size - off;
	memset(buf, 0, len);
	if (off < sp->fixed_len)
		memcpy(buf, sp->fixed + off, len < sp->fixed_len - off ? len : sp->fixed_len - off);
	sp->bytes_read += len;
	return (ssize_t)len;
}

/*
 * From the hostile review of the udev probe: a fixed part whose header and
 * area sizes say 256 MiB (the most the format allows) while its segment
 * count and key size give 16 KiB + 4 records.  Before, every reader (the
 * probe on any disk udev sees) read and held 256 MiB for copy A, then as
 * much for a copy B candidate.  The sizes are now checked against the
 * layout on the fixed part, before anything past it is read.
 */
static void test_hostile_size_read_bounded(void **state)
{
	struct sparse sp = { 0 };
	struct lc_header_io io = { &sp, sparse_pread, NULL, NULL };
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };
	size_t len;
	uint8_t *buf = encoded(4, 64, &len);

	(void)state;
	put_le(buf + LC_HDR_OFF_HDR_SIZE, 1ull << 28, 8);
	put_le(buf + LC_HDR_OFF_AREA_SIZE, 1ull << 28, 8);
	sp.fixed = buf;
	sp.fixed_len = LC_HDR_FIXED_SIZE;
	sp.size = 600ull << 20;
	assert_int_equal(lc_header_read_io(&io, &h, NULL, &err), -EINVAL);
	assert_null(h);
	print_message("# hostile 256 MiB size fields: %" PRIu64 " bytes read (%s)\n", sp.bytes_read,
		      err.msg);
	assert_true(sp.bytes_read <= 1u << 20);
	free(buf);
}

/* ---------- reading two copies ---------- */

struct two {
	struct memdisk d;
	struct lc_header *h;
	uint64_t area;
};

static void two_setup(struct two *t, uint64_t seq_a, uint64_t seq_b)
{
	t->h = make_header(64, 64, 3);
	t->area = area_of(t->h);
	md_init(&t->d, 4 * t->area);
	t->h->seqno = seq_a;
	md_put(&t->d, t->h, 0, 0);
	t->h->seqno = seq_b;
	md_put(&t->d, t->h, 1, t->area);
}

static void two_free(struct two *t)
{
	md_free(&t->d);
	lc_header_free(t->h);
}

static struct lc_header *read_ok(struct memdisk *d, struct lc_header_info *info)
{
	struct lc_header_io io = md_io(d);
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };

	if (lc_header_read_io(&io, &h, info, &err))
		fail_msg("read failed: %s", err.msg);
	return h;
}

static void test_read_both_valid(void **state)
{
	struct lc_header_info info;
	struct lc_header *h;
	struct two t;

	(void)state;
	two_setup(&t, 5, 5);
	h = read_ok(&t.d, &info);
	assert_same_header(h, t.h);
	assert_int_equal(info.used, 0);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	assert_int_equal(info.offset[1], t.area);
	assert_int_equal(info.seqno[1], 5);
	lc_header_free(h);
	two_free(&t);
}

static void test_read_stale(void **state)
{
	struct lc_header_info info;
	struct lc_header *h;
	struct two t;

	(void)state;
	two_setup(&t, 7, 6);
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 0);
	assert_int_equal(h->seqno, 7);
	assert_int_equal(info.state[1], LC_COPY_STALE);
	lc_header_free(h);
	two_free(&t);

	two_setup(&t, 6, 9);
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 1);
	assert_int_equal(h->seqno, 9);
	assert_int_equal(info.state[0], LC_COPY_STALE);
	assert_int_equal(info.seqno[0], 6);
	lc_header_free(h);
	two_free(&t);
}

static void test_read_one_corrupted(void **state)
{
	struct lc_header_info info;
	struct lc_header *h;
	struct two t;

	(void)state;
	/* copy A: one bit in a DEK record */
	two_setup(&t, 3, 3);
	t.d.img[LC_HDR_FIXED_SIZE + 100] ^= 4;
	h = read_ok(&t.d, &info);
	assert_same_header(h, t.h);
	assert_int_equal(info.used, 1);
	assert_int_equal(info.state[0], LC_COPY_DAMAGED);
	assert_non_null(strstr(info.why[0], "bad checksum"));
	lc_header_free(h);
	two_free(&t);

	/* copy B: its magic */
	two_setup(&t, 3, 3);
	t.d.img[t.area] = 'X';
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 0);
	assert_int_equal(info.state[1], LC_COPY_DAMAGED);
	assert_non_null(strstr(info.why[1], "bad magic"));
	lc_header_free(h);
	two_free(&t);

	/* copy A wiped: copy B is found by probing */
	two_setup(&t, 3, 3);
	memset(t.d.img, 0, LC_HDR_FIXED_SIZE);
	h = read_ok(&t.d, &info);
	assert_same_header(h, t.h);
	assert_int_equal(info.used, 1);
	assert_int_equal(info.offset[1], t.area);
	assert_non_null(strstr(info.why[0], "bad magic"));
	lc_header_free(h);
	two_free(&t);

	/* copy A's area field damaged (so the hint is wrong): still found */
	two_setup(&t, 3, 3);
	put_le(t.d.img + LC_HDR_OFF_AREA_SIZE, 1u << 20, 8);
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 1);
	assert_int_equal(info.offset[1], t.area);
	lc_header_free(h);
	two_free(&t);
}

static void test_read_both_bad(void **state)
{
	struct two t;

	(void)state;
	two_setup(&t, 3, 3);
	t.d.img[200] ^= 1;
	t.d.img[t.area + 1] ^= 1;
	expect_read_error(&t.d, "no valid lakecrypt header: copy A: bad checksum (header "
			  "corrupted); copy B: bad magic");
	two_free(&t);

	/* never formatted */
	md_init(&t.d, 1 << 20);
	t.d.size = 1 << 20;
	{
		struct lc_header_io io = md_io(&t.d);
		struct lc_error err = { 0 };
		struct lc_header *h;

		assert_int_equal(lc_header_read_io(&io, &h, NULL, &err), -ENOENT);
		assert_non_null(strstr(err.msg, "copy A: bad magic"));
		assert_non_null(strstr(err.msg, "copy B: not found at any possible offset"));
	}
	md_free(&t.d);

	/* empty storage */
	md_init(&t.d, 4096);
	expect_read_error(&t.d, "copy A: missing");
	md_free(&t.d);

	/* truncated after copy A's fixed part, at many points */
	two_setup(&t, 1, 1);
	for (size_t n = 8; n < LC_HDR_FIXED_SIZE + 64 * 96; n = n * 3 / 2 + 1) {
		t.d.size = n;
		expect_read_error(&t.d, "truncated");
	}
	two_free(&t);
}

static void test_read_mismatch(void **state)
{
	struct lc_header_info info;
	struct lc_header *h, *other;
	struct two t;

	(void)state;
	/* same seqno, different contents: copy A wins, B flagged */
	two_setup(&t, 4, 4);
	t.h->deks[5].generation++;
	md_put(&t.d, t.h, 1, t.area);
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 0);
	assert_int_equal(info.state[1], LC_COPY_DAMAGED);
	assert_non_null(strstr(info.why[1], "differs from copy A with the same seqno 4"));
	assert_int_equal(h->deks[5].generation, t.h->deks[5].generation - 1);
	lc_header_free(h);
	two_free(&t);

	/* copy B of another volume with a higher seqno: never mixed in */
	two_setup(&t, 4, 4);
	other = make_header(64, 64, 99);
	other->seqno = 50;
	md_put(&t.d, other, 1, t.area);
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 0);
	assert_same_header(h, t.h);
	assert_int_equal(info.state[1], LC_COPY_DAMAGED);
	assert_non_null(strstr(info.why[1], "another volume"));
	lc_header_free(h);
	lc_header_free(other);
	two_free(&t);

	/* copy B where copy A belongs */
	two_setup(&t, 4, 4);
	md_put(&t.d, t.h, 1, 0);
	h = read_ok(&t.d, &info);
	assert_int_equal(info.used, 1);
	assert_non_null(strstr(info.why[0], "holds copy B where copy A belongs"));
	lc_header_free(h);
	two_free(&t);
}

/* ---------- writing ---------- */

static void test_write_and_repair(void **state)
{
	struct lc_header *h = make_header(100, 64, 5), *r;
	struct lc_header_info info;
	struct memdisk d;
	struct lc_header_io io;
	struct lc_error err = { 0 };
	uint64_t area = area_of(h);

	(void)state;
	md_init(&d, 4 * area);
	d.max_io = 3000;		/* short reads and writes everywhere */
	io = md_io(&d);
	h->seqno = 0;
	assert_int_equal(lc_header_write_io(&io, h, &err), 0);
	assert_int_equal(h->seqno, 1);
	assert_true(d.syncs >= 2);
	r = read_ok(&d, &info);
	assert_same_header(r, h);
	assert_int_equal(r->seqno, 1);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	lc_header_free(r);

	/* damage copy A, read from B, write back: both valid again */
	d.img[LC_HDR_OFF_WORKSPACE] ^= 0x20;
	r = read_ok(&d, &info);
	assert_int_equal(info.used, 1);
	assert_int_equal(info.state[0], LC_COPY_DAMAGED);
	assert_int_equal(lc_header_write_io(&io, r, &err), 0);
	assert_int_equal(r->seqno, 2);
	lc_header_free(r);
	r = read_ok(&d, &info);
	assert_int_equal(r->seqno, 2);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	assert_same_header(r, h);
	lc_header_free(r);

	/* a caller's stale seqno never goes backwards */
	h->seqno = 0;
	assert_int_equal(lc_header_write_io(&io, h, &err), 0);
	assert_int_equal(h->seqno, 3);

	/* an invalid header is never written */
	h->segment_sectors = 3;
	assert_int_equal(lc_header_write_io(&io, h, &err), -EINVAL);
	r = read_ok(&d, NULL);
	assert_int_equal(r->seqno, 3);
	lc_header_free(r);
	lc_header_free(h);
	md_free(&d);
}

/* Reformat with a smaller layout: the old copy B must not come back. */
static void test_reformat_erases_stale(void **state)
{
	struct lc_header *big = make_header(4096, 64, 11), *small = make_header(64, 64, 12), *r;
	struct lc_header_info info;
	struct memdisk d;
	struct lc_header_io io;
	uint64_t big_area = area_of(big), small_area = area_of(small);

	(void)state;
	assert_true(big_area > small_area);
	md_init(&d, 3 * big_area);
	io = md_io(&d);
	for (int i = 0; i < 5; i++)
		assert_int_equal(lc_header_write_io(&io, big, NULL), 0);
	assert_int_equal(big->seqno, 5);
	assert_int_equal(lc_header_write_io(&io, small, NULL), 0);
	assert_int_equal(small->seqno, 6);	/* above anything seen on the disk */
	assert_memory_not_equal(d.img + big_area, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN);

	memset(d.img, 0, LC_HDR_FIXED_SIZE);	/* copy A destroyed */
	r = read_ok(&d, &info);
	assert_same_header(r, small);
	assert_int_equal(info.used, 1);
	assert_int_equal(info.offset[1], small_area);
	lc_header_free(r);
	lc_header_free(big);
	lc_header_free(small);
	md_free(&d);
}

/*
 * Crash safety.  Start from a disk in @initial state holding @old, write
 * @new, lose power after every possible number of sectors and at every
 * sync, keep each subset of unsynced sectors that md_crash() can make, and
 * read: always old or new, never an error, never a mix.
 */
enum initial { BOTH, A_DAMAGED, B_DAMAGED, A_STALE, B_STALE };

static void make_initial(struct memdisk *d, const struct lc_header *old_in, enum initial init,
			 uint64_t *old_seq, size_t cap)
{
	struct lc_header *old = (struct lc_header *)old_in;	/* seqno only */
	uint64_t area = area_of(old);
	uint64_t keep = old->seqno;

	md_init(d, cap ? cap : 3 * area);
	old->seqno = 10;
	md_put(d, old, 0, 0);
	md_put(d, old, 1, area);
	*old_seq = 10;
	switch (init) {
	case BOTH:
		break;
	case A_DAMAGED:
		d->img[LC_HDR_OFF_UUID] ^= 1;
		d->durable[LC_HDR_OFF_UUID] ^= 1;
		break;
	case B_DAMAGED:
		d->img[area + LC_HDR_FIXED_SIZE + 5] ^= 1;
		d->durable[area + LC_HDR_FIXED_SIZE + 5] ^= 1;
		break;
	case A_STALE:	/* copy A holds an older header */
		old->seqno = 9;
		old->deks[0].generation += 100;
		md_put(d, old, 0, 0);
		old->deks[0].generation -= 100;
		break;
	case B_STALE:
		old->seqno = 9;
		old->deks[1].generation += 100;
		md_put(d, old, 1, area);
		old->deks[1].generation -= 100;
		break;
	}
	old->seqno = keep;
}

/* Returns the number of readbacks that were neither old nor new.  @cap:
 * disk size (0: 3 areas of @old); @want: what the write returns when
 * nothing cuts it. */
static int crash_run_cap(const struct lc_header *old, struct lc_header *new, enum initial init,
			 long budget, long syncs, bool ignore_sync, unsigned int *checked,
			 size_t cap, int want)
{
	struct memdisk base, d;
	struct lc_header_io io;
	uint64_t old_seq;
	int bad = 0;
	int r;

	make_initial(&base, old, init, &old_seq, cap);
	md_copy(&d, &base);
	d.budget = budget;
	d.syncs_left = syncs;
	d.ignore_sync = ignore_sync;
	io = md_io(&d);
	new->seqno = 0;
	r = lc_header_write_io(&io, new, NULL);
	if (budget < 0 && syncs < 0)
		assert_int_equal(r, want);
	if (want < 0)
		assert_int_equal(d.writes, 0);
	for (int mode = 0; mode < 12; mode++) {
		struct memdisk c;
		struct lc_header_io cio;
		struct lc_header *h = NULL;
		struct lc_error err = { 0 };

		md_copy(&c, &d);
		memcpy(c.dirty, d.dirty, d.cap / SECTOR + 1);
		md_crash(&c, mode);
		cio = md_io(&c);
		(*checked)++;
		if (lc_header_read_io(&cio, &h, NULL, &err)) {
			if (!ignore_sync)
				print_error("budget %ld syncs %ld mode %d: %s\n", budget, syncs,
					    mode, err.msg);
			bad++;
		} else if (!(h->seqno == old_seq && same_header(h, old)) &&
			   !(h->seqno == old_seq + 1 && same_header(h, new))) {
			if (!ignore_sync)
				print_error("budget %ld syncs %ld mode %d: seqno %" PRIu64
					    " is neither old nor new\n", budget, syncs, mode,
					    h->seqno);
			bad++;
		}
		lc_header_free(h);
		md_free(&c);
	}
	md_free(&d);
	md_free(&base);
	return bad;
}

static int crash_run(const struct lc_header *old, struct lc_header *new, enum initial init,
		     long budget, long syncs, bool ignore_sync, unsigned int *checked)
{
	return crash_run_cap(old, new, init, budget, syncs, ignore_sync, checked, 0, 0);
}

static void crash_all(enum initial init, unsigned int *checked)
{
	struct lc_header *old = make_header(40, 64, 21);
	struct lc_header *new = make_header(40, 64, 21);
	uint64_t hdr;
	long sectors;

	/* an update: new KEK wrap under a rotated CMK, two DEKs re-wrapped */
	snprintf(new->cmk_version, sizeof(new->cmk_version), "v22");
	new->wrapped_kek.p[0] ^= 0xff;
	new->wrapped_kek.len -= 7;
	new->deks[0].generation++;
	new->deks[39].generation++;
	new->deks[39].ct[63] ^= 1;
	assert_int_equal(lc_header_layout(40, 64, &hdr, NULL, NULL, NULL), 0);
	sectors = (long)(2 * ((hdr + SECTOR - 1) / SECTOR + 1));
	for (long b = 0; b <= sectors; b++)
		assert_int_equal(crash_run(old, new, init, b, -1, false, checked), 0);
	for (long s = 0; s <= 3; s++)
		assert_int_equal(crash_run(old, new, init, -1, s, false, checked), 0);
	assert_int_equal(crash_run(old, new, init, -1, -1, false, checked), 0);
	lc_header_free(old);
	lc_header_free(new);
}

static void test_crash_every_point(void **state)
{
	unsigned int checked = 0;

	(void)state;
	crash_all(BOTH, &checked);
	crash_all(A_DAMAGED, &checked);
	crash_all(B_DAMAGED, &checked);
	crash_all(A_STALE, &checked);
	crash_all(B_STALE, &checked);
	print_message("# %u power-loss images read back, each old or new\n", checked);
	assert_true(checked >= 5 * 80 * 12);
}

/*
 * A resize moves the header to another area size: 40 segments (32 KiB
 * area) to 400 (64 KiB) and back, same volume, same data offset.  Cut at
 * every sector and sync; every readback is the old or the new header.  A
 * resize from a state without two current copies is refused, untouched.
 */
static void relayout_all(uint32_t from, uint32_t to, enum initial init, unsigned int *checked)
{
	struct lc_header *old = make_header(from, 64, 33);
	struct lc_header *new = make_header(to, 64, 33);
	uint64_t hdr, area_old = area_of(old), area_new = area_of(new);
	size_t cap = 3 * (area_old > area_new ? area_old : area_new);
	int want = init != BOTH ? -EAGAIN : 0;
	long sectors;

	assert_true(area_old != area_new);
	new->data_offset = old->data_offset;
	/* the segments both have keep their records */
	for (uint32_t i = 0; i < (from < to ? from : to); i++)
		new->deks[i] = old->deks[i];
	assert_int_equal(lc_header_layout(to, 64, &hdr, NULL, NULL, NULL), 0);
	sectors = (long)(2 * ((hdr + SECTOR - 1) / SECTOR + 1));
	for (long b = 0; b <= sectors; b++)
		assert_int_equal(crash_run_cap(old, new, init, b, -1, false, checked, cap, want), 0);
	for (long sy = 0; sy <= 4; sy++)
		assert_int_equal(crash_run_cap(old, new, init, -1, sy, false, checked, cap, want), 0);
	assert_int_equal(crash_run_cap(old, new, init, -1, -1, false, checked, cap, want), 0);
	lc_header_free(old);
	lc_header_free(new);
}

static void test_crash_relayout(void **state)
{
	unsigned int checked = 0;

	(void)state;
	for (int init = BOTH; init <= B_STALE; init++) {
		relayout_all(40, 400, init, &checked);
		relayout_all(400, 40, init, &checked);
	}
	print_message("# %u power-loss images of grow and shrink read back, each old or new\n",
		      checked);
	assert_true(checked >= 10 * 150 * 12);
}

/* After a complete grow, nothing probes the old copy B: it is erased. */
static void test_relayout_erases_old_b(void **state)
{
	struct lc_header *old = make_header(40, 64, 34);
	struct lc_header *new = make_header(400, 64, 34);
	uint64_t area_old = area_of(old), area_new = area_of(new);
	struct lc_header_info info;
	struct lc_header *r = NULL;
	struct lc_header_io io;
	struct memdisk d;

	(void)state;
	md_init(&d, 3 * area_new);
	md_put(&d, old, 0, 0);
	md_put(&d, old, 1, area_old);
	new->data_offset = old->data_offset;
	io = md_io(&d);
	assert_int_equal(lc_header_write_io(&io, new, NULL), 0);
	/* new copy A covers old B's offset; old B's magic is gone */
	assert_memory_not_equal(d.img + area_old, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN);
	/* with copy A destroyed, the probe finds the new copy B */
	memset(d.img, 0, 4096);
	assert_int_equal(lc_header_read_io(&io, &r, &info, NULL), 0);
	assert_int_equal(info.used, 1);
	assert_int_equal(info.offset[1], area_new);
	assert_int_equal(r->segment_count, 400);
	lc_header_free(r);
	/* and back: the shrink erases the copy B at the large offset */
	md_put(&d, new, 0, 0);
	md_put(&d, new, 1, area_new);
	old->seqno = 0;
	assert_int_equal(lc_header_write_io(&io, old, NULL), 0);
	assert_memory_not_equal(d.img + area_new, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN);
	assert_int_equal(lc_header_read_io(&io, &r, &info, NULL), 0);
	assert_int_equal(r->segment_count, 40);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	lc_header_free(r);
	lc_header_free(old);
	lc_header_free(new);
	md_free(&d);
}

/* The harness itself can fail: a disk that ignores flushes breaks the
 * protocol, and the crash test must notice. */
static void test_crash_harness_detects_lost_flush(void **state)
{
	struct lc_header *old = make_header(40, 64, 21);
	struct lc_header *new = make_header(40, 64, 22);
	unsigned int checked = 0;
	int bad = 0;

	(void)state;
	for (long b = 0; b < 200; b += 3)
		bad += crash_run(old, new, A_DAMAGED, b, -1, true, &checked);
	assert_true(bad > 0);
	lc_header_free(old);
	lc_header_free(new);
}

/* ---------- real files: detached header ---------- */

static void test_detached_file(void **state)
{
	char dir[] = "/tmp/lc-header-XXXXXX", path[64];
	struct lc_header *h = make_header(10, 64, 31), *r = NULL;
	struct lc_header_info info;
	struct lc_error err = { 0 };
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/hdr", dir);
	h->flags = LC_HDR_F_DETACHED;
	h->data_offset = 0;

	assert_int_equal(lc_header_read_path(path, &r, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(lc_header_write_path(path, false, h, &err), -ENOENT);
	assert_int_equal(lc_header_write_path(path, true, h, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal((uint64_t)st.st_size, area_of(h) + 16384 + 10 * 96);

	assert_int_equal(lc_header_read_path(path, &r, &info, &err), 0);
	assert_same_header(r, h);
	assert_int_equal(r->data_offset, 0);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	lc_header_free(r);

	/* corrupt copy B on the file, read, repair through an fd */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "zz", 2, (off_t)area_of(h) + 300), 2);
	assert_int_equal(lc_header_read(fd, &r, &info, &err), 0);
	assert_int_equal(info.state[1], LC_COPY_DAMAGED);
	assert_int_equal(lc_header_write(fd, r, &err), 0);
	lc_header_free(r);
	assert_int_equal(lc_header_read(fd, &r, &info, &err), 0);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	assert_int_equal(r->seqno, 2);
	lc_header_free(r);

	/* both copies corrupted: a clear error naming the file */
	assert_int_equal(pwrite(fd, "zz", 2, 300), 2);
	assert_int_equal(pwrite(fd, "zz", 2, (off_t)area_of(h) + 300), 2);
	close(fd);
	assert_int_equal(lc_header_read_path(path, &r, NULL, &err), -EINVAL);
	assert_null(r);
	assert_non_null(strstr(err.msg, "no valid lakecrypt header: copy A: "));
	assert_non_null(strstr(err.msg, path));

	unlink(path);
	rmdir(dir);
	lc_header_free(h);
}

/* ---------- dump ---------- */

static bool contains_hex(const char *s, const uint8_t *p, size_t n)
{
	char x[2 * 16 + 1];

	if (n > 16)
		n = 16;
	for (size_t i = 0; i < n; i++)
		snprintf(x + 2 * i, 3, "%02x", p[i]);
	return strstr(s, x) != NULL;
}

static void test_dump(void **state)
{
	struct lc_header *h = make_header(8, 64, 41);
	struct lc_header_info info = { .used = 1, .state = { LC_COPY_DAMAGED, LC_COPY_VALID },
				       .seqno = { 0, 3 }, .offset = { 0, 32768 } };
	struct lc_error err = { 0 };
	json_object *o, *v;
	char *json, *text = NULL, uuid[37];
	size_t tlen = 0;
	FILE *f;

	(void)state;
	snprintf(info.why[0], sizeof(info.why[0]), "bad checksum (header corrupted)");
	h->seqno = 3;
	lc_header_uuid_str(h, uuid);
	assert_int_equal(lc_header_to_json(h, &info, &json, &err), 0);
	o = json_tokener_parse(json);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "uuid", &v));
	assert_string_equal(json_object_get_string(v), uuid);
	assert_true(json_object_object_get_ex(o, "segment_count", &v));
	assert_int_equal(json_object_get_int64(v), 8);
	assert_true(json_object_object_get_ex(o, "provider_key_ref", &v));
	assert_string_equal(json_object_get_string(v), h->provider_ref);
	assert_true(json_object_object_get_ex(o, "wrap_context", &v));
	assert_string_equal(json_object_get_string(v), uuid);
	assert_true(json_object_object_get_ex(o, "wrapped_kek", &v));
	assert_true(json_object_object_get_ex(v, "length", &v));
	assert_int_equal(json_object_get_int64(v), h->wrapped_kek.len);
	assert_true(json_object_object_get_ex(o, "copies", &v));
	assert_int_equal(json_object_array_length(v), 2);
	v = json_object_array_get_idx(v, 0);
	assert_true(json_object_object_get_ex(v, "error", &v));
	assert_string_equal(json_object_get_string(v), info.why[0]);
	json_object_put(o);

	f = open_memstream(&text, &tlen);
	assert_non_null(f);
	assert_int_equal(lc_header_dump_text(h, &info, f), 0);
	fclose(f);
	assert_non_null(strstr(text, uuid));
	assert_non_null(strstr(text, "Segments:          8\n"));
	assert_non_null(strstr(text, "Copy A:            offset 0, damaged: bad checksum"));

	/* no wrapped key bytes, in any form */
	for (uint32_t i = 0; i < h->segment_count; i++) {
		assert_false(contains_hex(json, h->deks[i].ct, 8));
		assert_false(contains_hex(text, h->deks[i].ct, 8));
		assert_false(contains_hex(json, h->deks[i].tag, 8));
	}
	assert_false(contains_hex(json, h->wrapped_kek.p, 8));
	assert_false(contains_hex(text, h->wrapped_kek.p, 8));
	assert_null(memmem(json, strlen(json), h->wrapped_kek.p, 8));
	free(json);
	free(text);
	lc_header_free(h);
}

/* ---------- the fuzz corpus as regression cases ---------- */

static void test_fuzz_corpus(void **state)
{
	char dir[4096], path[8192];
	struct dirent *e;
	unsigned int n = 0, valid = 0;
	DIR *dp;

	(void)state;
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	*strrchr(dir, '/') = '\0';
	strncat(dir, "/../fuzz/corpus/header", sizeof(dir) - strlen(dir) - 1);
	dp = opendir(dir);
	if (!dp)
		fail_msg("cannot open the fuzz corpus %s", dir);
	while ((e = readdir(dp))) {
		struct memdisk d;
		struct lc_header_io io;
		struct lc_header *h = NULL;
		struct stat st;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		assert_int_equal(stat(path, &st), 0);
		if (st.st_size < 2)
			continue;
		/* byte 0 is the fuzzer's mode, the rest one copy or a disk image */
		md_init(&d, (size_t)st.st_size);
		f = fopen(path, "rb");
		assert_non_null(f);
		assert_int_equal(fgetc(f) >= 0, 1);
		d.size = (size_t)st.st_size - 1;
		assert_int_equal(fread(d.img, 1, d.size, f), d.size);
		fclose(f);
		if (lc_header_decode(d.img, d.size, NULL, NULL, NULL) == 0)
			valid++;
		io = md_io(&d);
		if (lc_header_read_io(&io, &h, NULL, NULL) == 0) {
			char *json = NULL;

			assert_int_equal(lc_header_to_json(h, NULL, &json, NULL), 0);
			free(json);
			lc_header_free(h);
		}
		md_free(&d);
		n++;
	}
	closedir(dp);
	print_message("# %u corpus files, %u hold a valid copy\n", n, valid);
	assert_true(n >= 4);
	assert_true(valid >= 1);
}

/* ---------- speed ---------- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_speed_65536(void **state)
{
	struct lc_header *h = make_header(65536, 64, 51), *r = NULL;
	struct memdisk d;
	struct lc_header_io io;
	uint8_t *buf;
	size_t len;
	double t0, enc, dec, rd, wr;

	(void)state;
	t0 = now_ms();
	assert_int_equal(lc_header_encode(h, 0, &buf, &len, NULL), 0);
	enc = now_ms() - t0;
	t0 = now_ms();
	assert_int_equal(lc_header_decode(buf, len, &r, NULL, NULL), 0);
	dec = now_ms() - t0;
	assert_same_header(r, h);
	lc_header_free(r);
	free(buf);

	md_init(&d, 3 * area_of(h));
	io = md_io(&d);
	t0 = now_ms();
	assert_int_equal(lc_header_write_io(&io, h, NULL), 0);
	wr = now_ms() - t0;
	t0 = now_ms();
	assert_int_equal(lc_header_read_io(&io, &r, NULL, NULL), 0);
	rd = now_ms() - t0;
	lc_header_free(r);
	md_free(&d);
	print_message("# 65536 segments, %zu-byte copy: encode %.1f ms, decode %.1f ms, "
		      "read both copies %.1f ms, write both copies %.1f ms\n", len, enc, dec,
		      rd, wr);
	lc_header_free(h);
}

/* ---- version 3: the segment re-key journal ---- */

/* A valid version 3 header: segment 2 of 4 being re-keyed from its
 * generation, 512-byte sectors, 2048-sector segments, zone 5 after 64. */
static struct lc_header *make_v3(void)
{
	struct lc_header *h = make_header(4, 64, 11);
	struct lc_rekey_journal *j = &h->journal;

	h->version = LC_HDR_VERSION_V3;
	j->active = true;
	j->segment = 2;
	j->old_gen = h->deks[2].generation;
	j->new_gen = j->old_gen + 1;
	j->zone = 5;
	j->done = 64;
	j->dek.generation = j->new_gen;
	fill(j->dek.nonce, LC_DEK_NONCE_LEN);
	fill(j->dek.tag, LC_DEK_TAG_LEN);
	fill(j->dek.ct, 64);
	for (uint32_t i = 0; i < j->zone; i++) {
		fill(j->old_digest[i], LC_RKJ_DIGEST_LEN);
		fill(j->new_digest[i], LC_RKJ_DIGEST_LEN);
	}
	return h;
}

static uint8_t *encoded_v3(size_t *len)
{
	struct lc_header *h = make_v3();
	uint8_t *buf;

	assert_int_equal(lc_header_encode(h, 0, &buf, len, NULL), 0);
	lc_header_free(h);
	return buf;
}

static void test_v3_roundtrip(void **state)
{
	struct lc_header *h = make_v3(), *d = NULL;
	struct lc_error err = { 0 };
	uint8_t *buf, *again;
	size_t len, len2;

	(void)state;
	assert_int_equal(lc_header_encode(h, 1, &buf, &len, &err), 0);
	assert_int_equal(buf[LC_HDR_OFF_VERSION], LC_HDR_VERSION_V3);
	assert_memory_equal(buf + LC_HDR_OFF_JOURNAL, LC_RKJ_MAGIC, LC_RKJ_MAGIC_LEN);
	assert_int_equal(lc_header_decode(buf, len, &d, NULL, &err), 0);
	assert_int_equal(d->version, LC_HDR_VERSION_V3);
	assert_true(d->journal.active);
	assert_int_equal(d->journal.segment, 2);
	assert_int_equal(d->journal.new_gen, h->journal.old_gen + 1);
	assert_int_equal(d->journal.zone, 5);
	assert_int_equal(d->journal.done, 64);
	assert_memory_equal(&d->journal.dek, &h->journal.dek, sizeof(d->journal.dek));
	assert_memory_equal(d->journal.old_digest, h->journal.old_digest,
			    sizeof(d->journal.old_digest));
	assert_memory_equal(d->journal.new_digest, h->journal.new_digest,
			    sizeof(d->journal.new_digest));
	/* one encoding */
	assert_int_equal(lc_header_encode(d, 1, &again, &len2, &err), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, again, len);
	free(again);
	/* back to version 2: the journal bytes are zero again */
	d->version = LC_HDR_VERSION;
	memset(&d->journal, 0, sizeof(d->journal));
	assert_int_equal(lc_header_encode(d, 1, &again, &len2, &err), 0);
	for (size_t i = 0; i < LC_HDR_JOURNAL_SIZE; i++)
		assert_int_equal(again[LC_HDR_OFF_JOURNAL + i], 0);
	free(again);
	/* version and journal go together, in the encoder too */
	d->version = LC_HDR_VERSION_V3;
	assert_int_equal(lc_header_encode(d, 0, &again, &len2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "without a re-key journal"));
	d->version = LC_HDR_VERSION;
	d->journal = h->journal;
	assert_int_equal(lc_header_encode(d, 0, &again, &len2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "needs header version 3"));
	free(buf);
	lc_header_free(d);
	lc_header_free(h);
}

/* What a version 2 reader sees: the version it does not know, and, even
 * with the version edited back to 2, reserved bytes that are not zero. */
static void test_v2_reader_refuses_v3(void **state)
{
	size_t len;
	uint8_t *buf = encoded_v3(&len);

	(void)state;
	put_le(buf + LC_HDR_OFF_VERSION, LC_HDR_VERSION, 2);
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	expect_decode_error(buf, len, "reserved bytes are not zero");
	/* and this build refuses versions beyond 3 */
	put_le(buf + LC_HDR_OFF_VERSION, 4, 2);
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	expect_decode_error(buf, len, "unsupported header version 4");
	free(buf);
}

static void hostile_v3(size_t joff, uint64_t v, int n, const char *needle)
{
	size_t len;
	uint8_t *buf = encoded_v3(&len);

	put_le(buf + LC_HDR_OFF_JOURNAL + joff, v, n);
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	expect_decode_error(buf, len, needle);
	free(buf);
}

static void test_v3_hostile_journal(void **state)
{
	struct lc_header *h = make_v3();
	uint32_t g = h->journal.old_gen;
	uint64_t sectors = h->segment_sectors;	/* 512-byte sectors */

	(void)state;
	hostile_v3(0, 0x4c4c4c4c, 4, "malformed re-key journal");		/* magic */
	hostile_v3(LC_RKJ_OFF_SEGMENT, 4, 4, "segment 4 beyond");
	hostile_v3(LC_RKJ_OFF_SEGMENT, UINT32_MAX, 4, "beyond");
	hostile_v3(LC_RKJ_OFF_SEGMENT, 1, 4, "old generation");	/* seg 1 has another gen */
	hostile_v3(LC_RKJ_OFF_OLD_GEN, g + 1, 4, "old generation");
	hostile_v3(LC_RKJ_OFF_NEW_GEN, g + 2, 4, "expected old >= 1 and new = old + 1");
	hostile_v3(LC_RKJ_OFF_NEW_GEN, g, 4, "new = old + 1");
	hostile_v3(LC_RKJ_OFF_DEK + LC_DEK_REC_OFF_GENERATION, g, 4, "new = old + 1");
	hostile_v3(LC_RKJ_OFF_ZONE, LC_RKJ_ZONE_MAX + 1, 4, "at most 64 per zone");
	hostile_v3(LC_RKJ_OFF_ZONE, 4, 4, "digests beyond the zone");	/* digest 4 is set */
	hostile_v3(LC_RKJ_OFF_DONE, sectors, 8, "does not fit");
	hostile_v3(LC_RKJ_OFF_DONE, sectors - 4, 8, "does not fit");
	hostile_v3(LC_RKJ_OFF_DONE, UINT64_MAX, 8, "does not fit");
	hostile_v3(LC_RKJ_OFF_DEK + LC_DEK_REC_HDR + 64, 1, 1, "malformed");	/* record pad */
	hostile_v3(LC_RKJ_OFF_DIGESTS + 5 * 2 * LC_RKJ_DIGEST_LEN, 1, 1, "beyond the zone");
	hostile_v3(LC_RKJ_END, 1, 1, "malformed");
	hostile_v3(LC_HDR_JOURNAL_SIZE - 1, 1, 1, "malformed");
	lc_header_free(h);
	/* a journal for a shredded segment (generation 0) */
	h = make_v3();
	memset(&h->deks[2], 0, sizeof(h->deks[2]));
	h->journal.old_gen = 0;
	h->journal.new_gen = h->journal.dek.generation = 1;
	{
		uint8_t *buf;
		size_t len;
		struct lc_error err = { 0 };

		assert_int_equal(lc_header_encode(h, 0, &buf, &len, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "expected old >= 1"));
	}
	lc_header_free(h);
}

/* The MAC covers the journal: an edit of its progress with the checksum
 * fixed up decodes, and fails authentication. */
static void test_v3_mac_covers_journal(void **state)
{
	struct lc_header *h = make_v3(), *d = NULL;
	struct lc_error err = { 0 };
	uint8_t key[LC_HDR_MAC_LEN];
	uint8_t *buf;
	size_t len;

	(void)state;
	fill(key, sizeof(key));
	h->mac_key = key;
	assert_int_equal(lc_header_encode(h, 0, &buf, &len, &err), 0);
	assert_int_equal(lc_header_decode(buf, len, &d, NULL, &err), 0);
	assert_int_equal(lc_header_verify(d, key, &err), 0);
	lc_header_free(d);
	put_le(buf + LC_HDR_OFF_JOURNAL + LC_RKJ_OFF_DONE, 0, 8);	/* "nothing done" */
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	assert_int_equal(lc_header_decode(buf, len, &d, NULL, &err), 0);
	assert_int_equal(lc_header_verify(d, key, &err), -EBADMSG);
	lc_header_free(d);
	put_le(buf + LC_HDR_OFF_JOURNAL + LC_RKJ_OFF_DONE, 64, 8);
	buf[LC_HDR_OFF_JOURNAL + LC_RKJ_OFF_DIGESTS] ^= 1;		/* one digest */
	assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
	assert_int_equal(lc_header_decode(buf, len, &d, NULL, &err), 0);
	assert_int_equal(lc_header_verify(d, key, &err), -EBADMSG);
	lc_header_free(d);
	free(buf);
	h->mac_key = NULL;
	lc_header_free(h);
}

static void test_v3_dump(void **state)
{
	struct lc_header *h = make_v3();
	char *json = NULL;

	(void)state;
	assert_int_equal(lc_header_to_json(h, NULL, &json, NULL), 0);
	assert_non_null(strstr(json, "\"segment_rekey\""));
	assert_non_null(strstr(json, "\"new_generation\""));
	assert_non_null(strstr(json, "\"version\": 3"));
	free(json);
	lc_header_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_check_rejects),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_hostile_fields),
		cmocka_unit_test(test_huge_counts),
		cmocka_unit_test(test_read_both_valid),
		cmocka_unit_test(test_read_stale),
		cmocka_unit_test(test_read_one_corrupted),
		cmocka_unit_test(test_read_both_bad),
		cmocka_unit_test(test_read_mismatch),
		cmocka_unit_test(test_write_and_repair),
		cmocka_unit_test(test_reformat_erases_stale),
		cmocka_unit_test(test_crash_every_point),
		cmocka_unit_test(test_crash_relayout),
		cmocka_unit_test(test_relayout_erases_old_b),
		cmocka_unit_test(test_crash_harness_detects_lost_flush),
		cmocka_unit_test(test_detached_file),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_fuzz_corpus),
		cmocka_unit_test(test_hostile_size_read_bounded),
		cmocka_unit_test(test_speed_65536),
		cmocka_unit_test(test_v3_roundtrip),
		cmocka_unit_test(test_v2_reader_refuses_v3),
		cmocka_unit_test(test_v3_hostile_journal),
		cmocka_unit_test(test_v3_mac_covers_journal),
		cmocka_unit_test(test_v3_dump),
	};

	return cmocka_run_group_tests_name("header", tests, NULL, NULL);
}
