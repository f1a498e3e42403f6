// SPDX-License-Identifier: GPL-2.0
/*
 * KMIP provider, offline: the TTLV codec (KMIP 1.4 section 9.1) against
 * the spec's own encoding examples and malformed input, the reading of
 * replies (error classes, batch item checks, attribute values) and the
 * blob format.  Replies are built with the encoder, and a few are replies
 * of PyKMIP 0.10's server captured for the fuzz corpus.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "kms-kmip.h"

static struct lc_ttlv_tree tree;

/* KMIP 1.4 section 9.1.2 examples, byte for byte. */
static void test_spec_examples(void **state)
{
	static const uint8_t int8[] = { 0x42, 0x00, 0x20, 0x02, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 0 };
	static const uint8_t text[] = { 0x42, 0x00, 0x20, 0x07, 0, 0, 0, 0x0B, 'H', 'e', 'l', 'l',
					'o', ' ', 'W', 'o', 'r', 'l', 'd', 0, 0, 0, 0, 0 };
	static const uint8_t bytes[] = { 0x42, 0x00, 0x20, 0x08, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0 };
	static const uint8_t st[] = { 0x42, 0x00, 0x20, 0x01, 0, 0, 0, 0x20,
				      0x42, 0x00, 0x04, 0x05, 0, 0, 0, 4, 0, 0, 0, 0xFE, 0, 0, 0, 0,
				      0x42, 0x00, 0x05, 0x02, 0, 0, 0, 4, 0, 0, 0, 0xFF, 0, 0, 0, 0 };
	uint8_t buf[64];
	struct lc_ttlv_enc e;
	struct lc_error err;
	int32_t v;
	uint32_t en;
	char s[32];

	(void)state;
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_int(&e, 0x420020, 8);
	assert_int_equal(lc_ttlv_enc_done(&e), sizeof(int8));
	assert_memory_equal(buf, int8, sizeof(int8));
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_text(&e, 0x420020, "Hello World");
	assert_memory_equal(buf, text, sizeof(text));
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_bytes(&e, 0x420020, "\x01\x02\x03", 3);
	assert_memory_equal(buf, bytes, sizeof(bytes));
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_begin(&e, 0x420020);
	lc_ttlv_enum(&e, 0x420004, 254);
	lc_ttlv_int(&e, 0x420005, 255);
	lc_ttlv_end(&e);
	assert_int_equal(lc_ttlv_enc_done(&e), sizeof(st));
	assert_memory_equal(buf, st, sizeof(st));

	assert_int_equal(lc_ttlv_decode(st, sizeof(st), &tree, &err), 0);
	assert_int_equal(tree.n, 3);
	assert_int_equal(lc_ttlv_get_enum(&tree, lc_ttlv_find(&tree, 0, 0x420004), &en), 0);
	assert_int_equal(en, 254);
	assert_int_equal(lc_ttlv_get_int(&tree, lc_ttlv_find(&tree, 0, 0x420005), &v), 0);
	assert_int_equal(v, 255);
	/* Wrong type asked: refused. */
	assert_int_equal(lc_ttlv_get_int(&tree, lc_ttlv_find(&tree, 0, 0x420004), &v), -EBADMSG);
	assert_int_equal(lc_ttlv_find(&tree, 0, 0x420099), -1);
	assert_int_equal(lc_ttlv_decode(text, sizeof(text), &tree, &err), -EBADMSG);	/* not a structure's length */
	{
		uint8_t m[40] = { 0x42, 0, 0x20, 0x01, 0, 0, 0, 0x18 };

		memcpy(m + 8, text, sizeof(text));
		assert_int_equal(lc_ttlv_decode(m, 8 + sizeof(text), &tree, &err), 0);
		assert_int_equal(lc_ttlv_get_text(&tree, 1, s, sizeof(s)), 0);
		assert_string_equal(s, "Hello World");
		assert_int_equal(lc_ttlv_get_text(&tree, 1, s, 5), -ENAMETOOLONG);
	}
}

static void test_encoder_bounds(void **state)
{
	uint8_t buf[24];
	struct lc_ttlv_enc e;

	(void)state;
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_begin(&e, 0x420078);
	lc_ttlv_int(&e, 0x420001, 1);
	lc_ttlv_int(&e, 0x420001, 2);	/* 8 + 16 + 16 > 24 */
	lc_ttlv_end(&e);
	assert_int_equal(lc_ttlv_enc_done(&e), 0);
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_begin(&e, 0x420078);	/* never closed */
	assert_int_equal(lc_ttlv_enc_done(&e), 0);
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	lc_ttlv_end(&e);		/* nothing open */
	assert_int_equal(lc_ttlv_enc_done(&e), 0);
}

/* A structure holding one item of @type with value length @len, as raw bytes. */
static size_t raw_item(uint8_t *m, uint8_t type, uint32_t len, uint32_t padded)
{
	memset(m, 0, 8 + 8 + padded);
	m[0] = 0x42; m[2] = 0x78; m[3] = 1;
	m[7] = (uint8_t)(8 + padded);
	m[8] = 0x42; m[10] = 0x01; m[11] = type;
	m[15] = (uint8_t)len;
	return 16 + padded;
}

static void test_decoder_strict(void **state)
{
	uint8_t m[256];
	struct lc_error err;
	size_t n;

	(void)state;
	n = raw_item(m, LC_TTLV_INTEGER, 4, 8);
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), 0);
	m[16 + 5] = 1;	/* padding byte */
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);	/* a whole message: not retried */
	assert_non_null(strstr(err.msg, "padding"));
	n = raw_item(m, LC_TTLV_INTEGER, 8, 8);		/* Integer of 8 bytes */
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), -EBADMSG);
	n = raw_item(m, LC_TTLV_BOOL, 8, 8);
	m[16 + 7] = 2;					/* Boolean 2 */
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), -EBADMSG);
	n = raw_item(m, 0x0B, 8, 8);			/* unknown type */
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), -EBADMSG);
	n = raw_item(m, LC_TTLV_BYTES, 17, 24);		/* 17 bytes, padded to 24 */
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), 0);
	assert_int_equal(lc_ttlv_decode(m, n - 8, &tree, &err), -EBADMSG);	/* truncated */
	m[7] = 8 + 16;	/* the outer length says less than the inner item */
	assert_int_equal(lc_ttlv_decode(m, n - 8, &tree, &err), -EBADMSG);
	n = raw_item(m, LC_TTLV_BYTES, 200, 8);		/* inner length past its container */
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "truncated"));
	n = raw_item(m, LC_TTLV_INTEGER, 4, 8);
	assert_int_equal(lc_ttlv_decode(m, n + 8, &tree, &err), -EBADMSG);	/* trailing bytes */
	assert_int_equal(lc_ttlv_decode(m, 5, &tree, &err), -EBADMSG);
	/* An unknown tag is kept and skipped over. */
	m[8] = 0x54; m[9] = 0xAB; m[10] = 0xCD;
	assert_int_equal(lc_ttlv_decode(m, n, &tree, &err), 0);
	assert_int_equal(lc_ttlv_find(&tree, 0, 0x420001), -1);
}

static void test_nesting_and_count(void **state)
{
	uint8_t buf[8 * 40];
	struct lc_ttlv_enc e;
	struct lc_error err;
	size_t n;

	(void)state;
	/* LC_TTLV_MAX_DEPTH nested structures decode, one more does not. */
	for (int depth = LC_TTLV_MAX_DEPTH; depth <= LC_TTLV_MAX_DEPTH + 1; depth++) {
		memset(buf, 0, sizeof(buf));
		for (int i = 0; i < depth; i++) {
			uint32_t len = (uint32_t)(8 * (depth - 1 - i));

			buf[8 * i] = 0x42; buf[8 * i + 2] = 0x01; buf[8 * i + 3] = 1;
			buf[8 * i + 4] = (uint8_t)(len >> 24); buf[8 * i + 5] = (uint8_t)(len >> 16);
			buf[8 * i + 6] = (uint8_t)(len >> 8); buf[8 * i + 7] = (uint8_t)len;
		}
		n = (size_t)(8 * depth);
		assert_int_equal(lc_ttlv_decode(buf, n, &tree, &err),
				 depth <= LC_TTLV_MAX_DEPTH ? 0 : -EBADMSG);
	}
	/* The encoder refuses to nest deeper than it can. */
	lc_ttlv_enc_init(&e, buf, sizeof(buf));
	for (int i = 0; i <= LC_TTLV_MAX_DEPTH; i++)
		lc_ttlv_begin(&e, 0x420001);
	assert_true(e.overflow);
	/* More items than LC_TTLV_MAX_ITEMS: refused. */
	{
		size_t cap = 8 + 16 * LC_TTLV_MAX_ITEMS;	/* the root and 1024 more */
		uint8_t *big = malloc(cap);

		lc_ttlv_enc_init(&e, big, cap);
		lc_ttlv_begin(&e, 0x42007B);
		for (int i = 0; i < LC_TTLV_MAX_ITEMS; i++)
			lc_ttlv_int(&e, 0x420001, i);
		lc_ttlv_end(&e);
		n = lc_ttlv_enc_done(&e);
		assert_int_equal(n, cap);
		assert_int_equal(lc_ttlv_decode(big, n, &tree, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "items"));
		free(big);
	}
}

static const uint8_t bid[LC_KMIP_BATCH_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

struct reply_spec {
	uint32_t op;
	int batch_count;
	int items;
	const uint8_t *batch_id;
	uint32_t status, reason;
	bool payload;
	const char *uid;
	const char *msg;
	int32_t state;		/* -1: none */
	int64_t deact;
	bool gcm_tag;
};

static size_t build_reply(uint8_t *buf, size_t cap, const struct reply_spec *r)
{
	struct lc_ttlv_enc e;

	lc_ttlv_enc_init(&e, buf, cap);
	lc_ttlv_begin(&e, 0x42007B);
	lc_ttlv_begin(&e, 0x42007A);
	lc_ttlv_begin(&e, 0x420069);
	lc_ttlv_int(&e, 0x42006A, 1);
	lc_ttlv_int(&e, 0x42006B, 4);
	lc_ttlv_end(&e);
	lc_ttlv_datetime(&e, 0x420092, 1700000000);
	lc_ttlv_int(&e, 0x42000D, r->batch_count);
	lc_ttlv_end(&e);
	for (int i = 0; i < r->items; i++) {
		lc_ttlv_begin(&e, 0x42000F);
		lc_ttlv_enum(&e, 0x42005C, r->op);
		if (r->batch_id)
			lc_ttlv_bytes(&e, 0x420093, r->batch_id, LC_KMIP_BATCH_ID_LEN);
		lc_ttlv_enum(&e, 0x42007F, r->status);
		if (r->reason)
			lc_ttlv_enum(&e, 0x42007E, r->reason);
		if (r->msg)
			lc_ttlv_text(&e, 0x42007D, r->msg);
		if (r->payload) {
			lc_ttlv_begin(&e, 0x42007C);
			if (r->uid)
				lc_ttlv_text(&e, 0x420094, r->uid);
			if (r->op == LC_KMIP_OP_ENCRYPT || r->op == LC_KMIP_OP_DECRYPT)
				lc_ttlv_bytes(&e, 0x4200C2, "0123456789abcdef0123456789abcdef", 32);
			if (r->gcm_tag)
				lc_ttlv_bytes(&e, 0x4200FF, "TTTTTTTTTTTTTTTT", 16);
			lc_ttlv_text(&e, 0x54FFFF, "vendor extension, skipped");
			if (r->state >= 0) {
				lc_ttlv_begin(&e, 0x420008);
				lc_ttlv_text(&e, 0x42000A, "State");
				lc_ttlv_enum(&e, 0x42000B, (uint32_t)r->state);
				lc_ttlv_end(&e);
			}
			if (r->deact) {
				lc_ttlv_begin(&e, 0x420008);
				lc_ttlv_text(&e, 0x42000A, "Deactivation Date");
				lc_ttlv_datetime(&e, 0x42000B, r->deact);
				lc_ttlv_end(&e);
			}
			lc_ttlv_end(&e);
		}
		lc_ttlv_end(&e);
	}
	lc_ttlv_end(&e);
	return lc_ttlv_enc_done(&e);
}

static int parse(const struct reply_spec *r, struct lc_kmip_result *res, struct lc_error *err)
{
	static uint8_t buf[4096];
	size_t n = build_reply(buf, sizeof(buf), r);

	assert_true(n > 0);
	return lc_kmip_parse_response(r->op, bid, buf, n, res, err);
}

static void test_replies(void **state)
{
	struct reply_spec ok = { .op = LC_KMIP_OP_GET_ATTRIBUTES, .batch_count = 1, .items = 1,
				 .batch_id = bid, .payload = true, .uid = "42", .state = 2,
				 .deact = 1800000000 };
	struct reply_spec r;
	struct lc_kmip_result res;
	struct lc_error err;
	static const struct { uint32_t op, reason; enum lc_err_class cls; } classes[] = {
		{ LC_KMIP_OP_DECRYPT, 0x01, LC_ERRC_DENIED },		/* Item Not Found */
		{ LC_KMIP_OP_DECRYPT, 0x0C, LC_ERRC_DENIED },		/* Permission Denied */
		{ LC_KMIP_OP_ENCRYPT, 0x0D, LC_ERRC_DENIED },		/* Object Archived */
		{ LC_KMIP_OP_DECRYPT, 0x0A, LC_ERRC_INVALID },		/* Cryptographic Failure */
		{ LC_KMIP_OP_ENCRYPT, 0x0A, LC_ERRC_MISCONFIG },
		{ LC_KMIP_OP_DECRYPT, 0x03, LC_ERRC_MISCONFIG },	/* Authentication Not Successful */
		{ LC_KMIP_OP_DECRYPT, 0x05, LC_ERRC_MISCONFIG },	/* Operation Not Supported */
		{ LC_KMIP_OP_DECRYPT, 0x07, LC_ERRC_MISCONFIG },	/* Invalid Field */
		{ LC_KMIP_OP_DECRYPT, 0x0B, LC_ERRC_MISCONFIG },	/* Illegal Operation: never a kill */
		{ LC_KMIP_OP_DECRYPT, 0x100, LC_ERRC_TRANSIENT },	/* General Failure */
		{ LC_KMIP_OP_DECRYPT, 0x09, LC_ERRC_TRANSIENT },	/* Canceled */
		{ LC_KMIP_OP_DECRYPT, 0x77, LC_ERRC_MISCONFIG },	/* unknown */
	};

	(void)state;
	assert_int_equal(parse(&ok, &res, &err), 0);
	assert_true(res.has_state);
	assert_int_equal(res.state, 2);
	assert_int_equal(res.deactivation_date, 1800000000);
	assert_string_equal(res.uid, "42");
	assert_int_equal(res.time_stamp, 1700000000);
	assert_int_equal(res.version_minor, 4);
	/* Deactivation Date judged by the reply's Time Stamp, not the host's clock. */
	assert_false(lc_kmip_deactivated_by_server(&res));	/* 1.8e9 > 1.7e9 */
	res.time_stamp = 1800000000;
	assert_true(lc_kmip_deactivated_by_server(&res));	/* reached, by the server */
	res.time_stamp = 1799999999;
	assert_false(lc_kmip_deactivated_by_server(&res));
	res.deactivation_date = 0;
	res.time_stamp = 1900000000;
	assert_false(lc_kmip_deactivated_by_server(&res));	/* no date: never */

	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		r = (struct reply_spec){ .op = classes[i].op, .batch_count = 1, .items = 1,
					 .batch_id = bid, .status = 1, .reason = classes[i].reason,
					 .msg = "said the server\n", .state = -1 };
		assert_true(parse(&r, &res, &err) < 0);
		assert_int_equal(err.cls, classes[i].cls);
		assert_int_equal(res.reason, classes[i].reason);
		assert_non_null(strstr(err.msg, "said the server?"));	/* control byte neutralised */
	}
	r = ok; r.status = 2;	/* Operation Pending */
	assert_true(parse(&r, &res, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	r = ok; r.batch_count = 2; r.items = 2;
	assert_true(parse(&r, &res, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_INVALID);	/* malformed: never retried, never denied */
	r = ok; r.items = 2;	/* count says 1, two items follow */
	assert_true(parse(&r, &res, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_INVALID);	/* malformed: never retried, never denied */
	r = ok; r.batch_id = (const uint8_t *)"XXXXXXXX";
	assert_true(parse(&r, &res, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_INVALID);	/* malformed: never retried, never denied */
	assert_non_null(strstr(err.msg, "Batch Item ID"));
	r = ok; r.batch_id = NULL;	/* absent (PyKMIP's error replies): accepted */
	assert_int_equal(parse(&r, &res, &err), 0);
	r = ok; r.op = LC_KMIP_OP_DECRYPT;	/* parsed as Decrypt, answers GetAttributes */
	{
		static uint8_t buf[4096];
		size_t n = build_reply(buf, sizeof(buf), &ok);

		assert_true(lc_kmip_parse_response(LC_KMIP_OP_DECRYPT, bid, buf, n, &res, &err) < 0);
		assert_non_null(strstr(err.msg, "another operation"));
		assert_int_equal(err.cls, LC_ERRC_INVALID);
	}
	r = ok; r.payload = false;
	assert_true(parse(&r, &res, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_INVALID);	/* malformed: never retried, never denied */
	r = ok; r.op = LC_KMIP_OP_ENCRYPT; r.state = -1; r.deact = 0; r.gcm_tag = true;
	assert_int_equal(parse(&r, &res, &err), 0);
	assert_int_equal(res.data_len, 32);
	assert_int_equal(res.tag_len, 16);
	r.uid = NULL;	/* Encrypt reply without the key's id */
	assert_true(parse(&r, &res, &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_INVALID);	/* malformed: never retried, never denied */
}

static void test_blob(void **state)
{
	uint8_t b[LC_KMIP_MAX_BLOB] = "LKM1";
	struct lc_kmip_blob kb;
	struct lc_error err;
	size_t n = LC_KMIP_BLOB_HDR + 12 + 16 + 32;

	(void)state;
	b[4] = LC_KMIP_MODE_GCM; b[5] = 12; b[6] = 16; b[40] = 0; b[41] = 32;
	assert_int_equal(lc_kmip_blob_parse(b, n, &kb, &err), 0);
	assert_int_equal(kb.ct_len, 32);
	assert_ptr_equal(kb.ct, b + LC_KMIP_BLOB_HDR + 28);
	assert_int_equal(lc_kmip_blob_parse(b, n - 1, &kb, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_int_equal(lc_kmip_blob_parse(b, n + 1, &kb, &err), -EINVAL);
	b[6] = 0;	/* GCM without a tag */
	assert_int_equal(lc_kmip_blob_parse(b, n - 16, &kb, &err), -EINVAL);
	b[4] = LC_KMIP_MODE_CBC_BOUND; b[5] = 16;
	assert_int_equal(lc_kmip_blob_parse(b, LC_KMIP_BLOB_HDR + 16 + 32, &kb, &err), 0);
	b[4] = 3;
	assert_int_equal(lc_kmip_blob_parse(b, LC_KMIP_BLOB_HDR + 16 + 32, &kb, &err), -EINVAL);
	b[4] = LC_KMIP_MODE_CBC_BOUND; b[7] = 1;	/* reserved byte */
	assert_int_equal(lc_kmip_blob_parse(b, LC_KMIP_BLOB_HDR + 16 + 32, &kb, &err), -EINVAL);
	b[7] = 0; b[0] = 'X';
	assert_int_equal(lc_kmip_blob_parse(b, LC_KMIP_BLOB_HDR + 16 + 32, &kb, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a lakecrypt KMIP blob"));
}

/* Key references: a UID, or a UID bound to the server's public key. */
static void test_parse_ref(void **state)
{
	static const char sid[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct lc_kmip_ref r;
	struct lc_error e = { 0 };
	char ref[400];

	(void)state;
	assert_int_equal(lc_kmip_parse_ref("42", &r, &e), 0);
	assert_false(r.bound);
	assert_string_equal(r.uid, "42");
	snprintf(ref, sizeof(ref), "server-sha256=%s;uid=a-b:c", sid);
	assert_int_equal(lc_kmip_parse_ref(ref, &r, &e), 0);
	assert_true(r.bound);
	assert_string_equal(r.uid, "a-b:c");
	assert_int_equal(r.server_id[0], 0x00);
	assert_int_equal(r.server_id[1], 0x11);
	assert_int_equal(r.server_id[31], 0xff);
	{
		char bad[6][400];

		snprintf(bad[0], sizeof(bad[0]), "server-sha256=%.63s;uid=1", sid);	/* short */
		snprintf(bad[1], sizeof(bad[1]), "server-sha256=%sA;uid=1", sid);	/* long */
		snprintf(bad[2], sizeof(bad[2]), "server-sha256=%s;uid=", sid);	/* no UID */
		snprintf(bad[3], sizeof(bad[3]), "server-sha256=%s;id=1", sid);
		snprintf(bad[4], sizeof(bad[4]), "server-sha256=%s;uid=1 2", sid);
		snprintf(bad[5], sizeof(bad[5]), "server-sha256=00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff;uid=1");
		for (int i = 0; i < 6; i++) {
			memset(&e, 0, sizeof(e));
			if (lc_kmip_parse_ref(bad[i], &r, &e) != -EINVAL)
				fail_msg("\"%s\" was accepted", bad[i]);
			assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
		}
	}
	assert_int_equal(lc_kmip_parse_ref("", &r, &e), -EINVAL);
	assert_int_equal(lc_kmip_parse_ref(NULL, &r, &e), -EINVAL);
}

static void test_config(void **state)
{
	struct lc_kms_kmip *k;
	struct lc_error err;
	struct lc_kms_kmip_config c = { .ca_file = "/x", .cert_file = "/x", .key_file = "/x" };
	static const char *const bad[] = { NULL, "", "a b", "host:0", "host:65536", "host:x",
					   "::1", "[::1", "[::1]x", "user@host", "host:" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.server = bad[i];
		assert_int_equal(lc_kms_kmip_new(&k, &c, &err), -EINVAL);
		assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
		assert_null(k);
	}
	c.server = "127.0.0.1:5696";
	c.max_minor = 5;
	assert_int_equal(lc_kms_kmip_new(&k, &c, &err), -EINVAL);
	c.max_minor = 0;
	c.key_file = NULL;
	assert_int_equal(lc_kms_kmip_new(&k, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "mutual TLS"));
	c.key_file = "/x";
	c.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(lc_kms_kmip_new(&k, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "ca_bundle"));
}

/* [kmip] in agent.conf (config.c). */
static void test_agent_conf(void **state)
{
	static const char good[] =
		"[kmip]\n"
		"server = kmip.example.com:5696\n"
		"ca_bundle = /etc/lakecrypt/kmip-ca.pem\n"
		"client_cert = /etc/lakecrypt/kmip-client.pem\n"
		"client_key = /etc/lakecrypt/kmip-client.key\n"
		"max_version = 1.2\n"
		"connect_timeout_ms = 2500\n";
	static const struct { const char *text, *msg; } bad[] = {
		{ "[kmip]\nclient_key = kmip.key\n", "client_key = \"kmip.key\" is not an absolute path" },
		{ "[kmip]\nserver = a b\n", "must be a single word" },
		{ "[kmip]\nconnect_timeout_ms = 0\n", "connect_timeout_ms = \"0\" is not usable" },
		{ "[kmip]\npassword = x\n", "unknown key \"password\" in [kmip]: expected one of server" },
	};
	struct lc_config c;
	struct lc_error err;

	(void)state;
	lc_config_defaults(&c);
	assert_string_equal(c.kmip_server, "");
	assert_int_equal(lc_config_parse(&c, good, sizeof(good) - 1, "agent.conf", &err), 0);
	assert_string_equal(c.kmip_server, "kmip.example.com:5696");
	assert_string_equal(c.kmip_ca_bundle, "/etc/lakecrypt/kmip-ca.pem");
	assert_string_equal(c.kmip_client_cert, "/etc/lakecrypt/kmip-client.pem");
	assert_string_equal(c.kmip_client_key, "/etc/lakecrypt/kmip-client.key");
	assert_string_equal(c.kmip_max_version, "1.2");
	assert_int_equal(c.kmip_connect_timeout_ms, 2500);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lc_config_defaults(&c);
		assert_int_equal(lc_config_parse(&c, bad[i].text, strlen(bad[i].text), "agent.conf", &err),
				 -EINVAL);
		assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("%s: got \"%s\"", bad[i].text, err.msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_examples),
		cmocka_unit_test(test_encoder_bounds),
		cmocka_unit_test(test_decoder_strict),
		cmocka_unit_test(test_nesting_and_count),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_blob),
		cmocka_unit_test(test_parse_ref),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_agent_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
