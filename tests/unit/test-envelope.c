// SPDX-License-Identifier: GPL-2.0
/* KEK/DEK envelope: wrap, unwrap, binding to volume/segment/generation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "envelope.h"

static const uint8_t uuid_a[LC_UUID_LEN] = {
	0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
static const uint8_t uuid_b[LC_UUID_LEN] = {
	0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xee };

static void test_context_strings(void **state)
{
	char u[LC_UUID_STR_LEN], c[LC_KEK_CONTEXT_MAX];

	(void)state;
	lc_uuid_format(uuid_a, u);
	assert_string_equal(u, "12345678-9abc-def0-0123-456789abcdef");
	lc_kek_context_v1(uuid_a, c);
	assert_string_equal(c, "lakecrypt:volume:12345678-9abc-def0-0123-456789abcdef");
}

/* The v2 context binds the whole identity, and every part of it. */
static void test_context_v2(void **state)
{
	char c[LC_KEK_CONTEXT_MAX], d[LC_KEK_CONTEXT_MAX], n63[64];
	struct lc_kek_identity id = { uuid_a, "finance", "ledger", "kc-1" };

	(void)state;
	assert_int_equal(lc_kek_context(&id, c), 0);
	assert_string_equal(c, "lakecrypt:v2;volume=12345678-9abc-def0-0123-456789abcdef;"
			       "workspace=finance;project=ledger;keyconfig=kc-1");
	id.workspace = "finance2";
	assert_int_equal(lc_kek_context(&id, d), 0);
	assert_string_not_equal(c, d);
	id.workspace = "finance";
	id.uuid = uuid_b;
	assert_int_equal(lc_kek_context(&id, d), 0);
	assert_string_not_equal(c, d);
	/* Names that could forge another pair are refused. */
	id.project = "x;workspace=evil";
	assert_int_equal(lc_kek_context(&id, d), -EINVAL);
	assert_string_equal(d, "");
	id.project = "a=b";
	assert_int_equal(lc_kek_context(&id, d), -EINVAL);
	id.project = "";
	assert_int_equal(lc_kek_context(&id, d), -EINVAL);
	id.project = NULL;
	assert_int_equal(lc_kek_context(&id, d), -EINVAL);
	/* The longest identity fits. */
	memset(n63, 'a', 63);
	n63[63] = '\0';
	id.workspace = id.project = id.keyconfig = n63;
	assert_int_equal(lc_kek_context(&id, d), 0);
	assert_true(strlen(d) < LC_KEK_CONTEXT_MAX);
}

/* The canary context and its map form (AWS EncryptionContext), and the
 * volume form through the same door. */
static void test_context_canary(void **state)
{
	struct lc_kek_context_pair pairs[LC_KEK_CONTEXT_PAIRS];
	char ctx[LC_KEK_CONTEXT_MAX], buf[LC_KEK_CONTEXT_MAX];

	(void)state;
	assert_int_equal(lc_canary_context("finance-kc", ctx), 0);
	assert_string_equal(ctx, "lakecrypt:v2;canary;keyconfig=finance-kc");
	assert_int_equal(lc_context_pairs(ctx, buf, pairs), LC_KEK_CANARY_PAIRS);
	assert_string_equal(pairs[0].key, "lakecrypt:purpose");
	assert_string_equal(pairs[0].value, "canary");
	assert_string_equal(pairs[1].key, "lakecrypt:keyconfig");
	assert_string_equal(pairs[1].value, "finance-kc");
	assert_int_equal(lc_context_pairs("lakecrypt:v2;volume=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0;workspace=w;project=p;keyconfig=k",
					  buf, pairs), LC_KEK_CONTEXT_PAIRS);
	assert_string_equal(pairs[3].key, "lakecrypt:keyconfig");
	assert_string_equal(pairs[3].value, "k");
	/* Bad names, extra fields, no name, v1: refused. */
	assert_int_equal(lc_canary_context("-x", ctx), -EINVAL);
	assert_string_equal(ctx, "");
	assert_int_equal(lc_context_pairs("lakecrypt:v2;canary;keyconfig=", buf, pairs), -EINVAL);
	assert_int_equal(lc_context_pairs("lakecrypt:v2;canary;keyconfig=k;x=y", buf, pairs), -EINVAL);
	assert_int_equal(lc_context_pairs("lakecrypt:v2;canary;keyconfig=k\"", buf, pairs), -EINVAL);
	assert_int_equal(lc_context_pairs("lakecrypt:v2;canary", buf, pairs), -EINVAL);
	assert_int_equal(lc_context_pairs("lakecrypt:volume:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", buf, pairs),
			 -EINVAL);
}

static void test_kek_generate(void **state)
{
	_cleanup_secret_ struct lc_secret a = { 0 }, b = { 0 };
	struct lc_error err = { 0 };

	(void)state;
	assert_int_equal(lc_kek_generate(&a, &err), 0);
	assert_int_equal(lc_kek_generate(&b, &err), 0);
	assert_int_equal(a.len, LC_KEK_LEN);
	assert_memory_not_equal(a.p, b.p, LC_KEK_LEN);
}

static void roundtrip(size_t key_size)
{
	_cleanup_secret_ struct lc_secret kek = { 0 }, dek = { 0 }, out = { 0 };
	struct lc_wrapped_dek w;
	struct lc_error err = { 0 };

	assert_int_equal(lc_kek_generate(&kek, &err), 0);
	assert_int_equal(lc_deks_generate(&dek, 1, key_size, &err), 0);
	assert_int_equal(lc_secret_alloc(&out, key_size), 0);
	assert_int_equal(lc_dek_wrap(&kek, uuid_a, 7, 3, dek.p, key_size, &w, &err), 0);
	assert_int_equal(w.generation, 3);
	assert_memory_not_equal(w.ct, dek.p, key_size);
	assert_int_equal(lc_dek_unwrap(&kek, uuid_a, 7, &w, key_size, out.p, &err), 0);
	assert_memory_equal(out.p, dek.p, key_size);
}

static void test_roundtrip(void **state)
{
	(void)state;
	roundtrip(64);
	roundtrip(32);
	roundtrip(16);
	roundtrip(LC_DEK_MAX_LEN);
}

static void expect_bad(const struct lc_secret *kek, const uint8_t *uuid, uint32_t seg,
		       const struct lc_wrapped_dek *w)
{
	uint8_t out[64];
	struct lc_error err = { 0 };

	memset(out, 0xee, sizeof(out));
	assert_int_equal(lc_dek_unwrap(kek, uuid, seg, w, 64, out, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_non_null(strstr(err.msg, "does not authenticate"));
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0);	/* nothing half-decrypted left */
}

/* A wrapped DEK only opens for its own (volume, segment, generation). */
static void test_binding(void **state)
{
	_cleanup_secret_ struct lc_secret kek = { 0 }, kek2 = { 0 }, dek = { 0 };
	struct lc_wrapped_dek w, t;
	struct lc_error err = { 0 };

	(void)state;
	assert_int_equal(lc_kek_generate(&kek, &err), 0);
	assert_int_equal(lc_kek_generate(&kek2, &err), 0);
	assert_int_equal(lc_deks_generate(&dek, 1, 64, &err), 0);
	assert_int_equal(lc_dek_wrap(&kek, uuid_a, 5, 1, dek.p, 64, &w, &err), 0);

	expect_bad(&kek, uuid_a, 6, &w);	/* another segment */
	expect_bad(&kek, uuid_a, 4, &w);
	expect_bad(&kek, uuid_b, 5, &w);	/* another volume */
	expect_bad(&kek2, uuid_a, 5, &w);	/* another KEK */
	t = w;
	t.generation = 2;			/* another generation */
	expect_bad(&kek, uuid_a, 5, &t);
	t = w;
	t.ct[10] ^= 1;				/* tampered ciphertext */
	expect_bad(&kek, uuid_a, 5, &t);
	t = w;
	t.tag[0] ^= 0x80;			/* tampered tag */
	expect_bad(&kek, uuid_a, 5, &t);
	t = w;
	t.nonce[11] ^= 1;			/* tampered nonce */
	expect_bad(&kek, uuid_a, 5, &t);
}

static void test_bad_arguments(void **state)
{
	_cleanup_secret_ struct lc_secret kek = { 0 }, deks = { 0 }, shortkek = { 0 };
	struct lc_wrapped_dek w;
	struct lc_error err = { 0 };
	uint8_t dek[LC_DEK_MAX_LEN + 1] = { 0 };

	(void)state;
	assert_int_equal(lc_kek_generate(&kek, &err), 0);
	assert_int_equal(lc_dek_wrap(&kek, uuid_a, 0, 0, dek, 8, &w, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_int_equal(lc_dek_wrap(&kek, uuid_a, 0, 0, dek, LC_DEK_MAX_LEN + 1, &w, &err), -EINVAL);
	assert_int_equal(lc_deks_generate(&deks, 0, 64, &err), -EINVAL);
	assert_int_equal(lc_deks_generate(&deks, LAKECRYPT_MAX_SEGMENTS + 1, 64, &err), -EINVAL);
	assert_int_equal(lc_secret_alloc(&shortkek, 16), 0);
	assert_int_equal(lc_dek_wrap(&shortkek, uuid_a, 0, 0, dek, 64, &w, &err), -EINVAL);
	assert_int_equal(lc_deks_unwrap_all(&kek, uuid_a, &w, 0, 64, &deks, &err), -EINVAL);
	assert_null(deks.p);
}

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1e3 + (b.tv_nsec - a->tv_nsec) / 1e6;
}

/* A whole volume: wrap all, unwrap all, and the time it takes. */
static void test_bulk_65536(void **state)
{
	const uint32_t n = 65536;
	_cleanup_secret_ struct lc_secret kek = { 0 }, deks = { 0 }, out = { 0 };
	struct lc_wrapped_dek *recs = calloc(n, sizeof(*recs));
	struct lc_error err = { 0 };
	struct timespec t0;
	double wrap_ms, unwrap_ms;

	(void)state;
	assert_non_null(recs);
	assert_int_equal(lc_kek_generate(&kek, &err), 0);
	assert_int_equal(lc_deks_generate(&deks, n, 64, &err), 0);
	for (uint32_t i = 0; i < n; i++)
		recs[i].generation = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(lc_deks_wrap_all(&kek, uuid_a, &deks, n, 64, recs, &err), 0);
	wrap_ms = ms_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(lc_deks_unwrap_all(&kek, uuid_a, recs, n, 64, &out, &err), 0);
	unwrap_ms = ms_since(&t0);
	assert_int_equal(out.len, (size_t)n * 64);
	assert_memory_equal(out.p, deks.p, out.len);
	assert_int_equal(recs[n - 1].generation, 1);
	/* Diagnostic only: no timed assertion (sanitizers, loaded machines). */
	printf("# bulk: wrap %u DEKs in %.1f ms, unwrap in %.1f ms (%.2f us per DEK)\n",
	       n, wrap_ms, unwrap_ms, unwrap_ms * 1000 / n);
	free(recs);
}

/* Swapping two records of a volume makes the whole unwrap fail. */
static void test_bulk_swap(void **state)
{
	const uint32_t n = 1024;
	_cleanup_secret_ struct lc_secret kek = { 0 }, deks = { 0 }, out = { 0 };
	struct lc_wrapped_dek *recs = calloc(n, sizeof(*recs)), tmp;
	struct lc_error err = { 0 };

	(void)state;
	assert_non_null(recs);
	assert_int_equal(lc_kek_generate(&kek, &err), 0);
	assert_int_equal(lc_deks_generate(&deks, n, 64, &err), 0);
	assert_int_equal(lc_deks_wrap_all(&kek, uuid_a, &deks, n, 64, recs, &err), 0);
	tmp = recs[100];
	recs[100] = recs[200];
	recs[200] = tmp;
	assert_int_equal(lc_deks_unwrap_all(&kek, uuid_a, recs, n, 64, &out, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_non_null(strstr(err.msg, "segment 100 "));
	assert_null(out.p);
	/* Swapped back, it opens; under another volume's uuid it does not. */
	recs[200] = recs[100];
	recs[100] = tmp;
	assert_int_equal(lc_deks_unwrap_all(&kek, uuid_b, recs, n, 64, &out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "segment 0 "));
	assert_int_equal(lc_deks_unwrap_all(&kek, uuid_a, recs, n, 64, &out, &err), 0);
	assert_memory_equal(out.p, deks.p, out.len);
	free(recs);
}

/* KEK rotation: unwrap with the old KEK, rewrap in place with a new one;
 * generations are kept, the old KEK no longer opens the records. */
static void test_kek_rotation(void **state)
{
	const uint32_t n = 64;
	_cleanup_secret_ struct lc_secret k1 = { 0 }, k2 = { 0 }, deks = { 0 }, out = { 0 };
	struct lc_wrapped_dek recs[64];
	struct lc_error err = { 0 };

	(void)state;
	assert_int_equal(lc_kek_generate(&k1, &err), 0);
	assert_int_equal(lc_kek_generate(&k2, &err), 0);
	assert_int_equal(lc_deks_generate(&deks, n, 32, &err), 0);
	for (uint32_t i = 0; i < n; i++)
		recs[i].generation = i % 3;
	assert_int_equal(lc_deks_wrap_all(&k1, uuid_a, &deks, n, 32, recs, &err), 0);
	assert_int_equal(lc_deks_unwrap_all(&k1, uuid_a, recs, n, 32, &out, &err), 0);
	assert_int_equal(lc_deks_wrap_all(&k2, uuid_a, &out, n, 32, recs, &err), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(recs[i].generation, i % 3);
	lc_secret_free(&out);
	assert_int_equal(lc_deks_unwrap_all(&k1, uuid_a, recs, n, 32, &out, &err), -EBADMSG);
	assert_int_equal(lc_deks_unwrap_all(&k2, uuid_a, recs, n, 32, &out, &err), 0);
	assert_memory_equal(out.p, deks.p, out.len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_context_strings),
		cmocka_unit_test(test_context_v2),
		cmocka_unit_test(test_context_canary),
		cmocka_unit_test(test_kek_generate),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_binding),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_bulk_65536),
		cmocka_unit_test(test_bulk_swap),
		cmocka_unit_test(test_kek_rotation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
