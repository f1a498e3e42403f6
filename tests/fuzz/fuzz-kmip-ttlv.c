// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the KMIP TTLV decoder (lc_ttlv_decode) and the reply
 * reader on top of it (lc_kmip_parse_response), which see whatever a KMIP
 * server or anyone on the path sends, and the blob reader
 * (lc_kmip_blob_parse), which sees the volume header.  Byte 0 picks the
 * operation (GetAttributes, Encrypt, Decrypt, DiscoverVersions); the rest
 * is one reply.  The seeds are replies of PyKMIP 0.10's server, KMIP 1.2
 * and 1.4, captured on loopback.
 *
 * Checks beyond "no crash, no leak, no UB":
 *  - the decoder is canonical: a message it accepts, encoded again item by
 *    item with the encoder, gives the same bytes;
 *  - every decoded item lies inside the input;
 *  - a successful parse has the fields its operation needs, within bounds;
 *  - error classes: what does not decode is INVALID (a whole message that
 *    breaks the protocol: never retried, never a denial), and a failed
 *    parse is DENIED only for a Result Status of Operation Failed (the
 *    server's own word), never for a malformed reply.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms-kmip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t ops[] = { LC_KMIP_OP_GET_ATTRIBUTES, LC_KMIP_OP_ENCRYPT, LC_KMIP_OP_DECRYPT,
				LC_KMIP_OP_DISCOVER_VERSIONS };

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Encode item @i (and its children) again; false if a type has no encoder. */
static int reencode(struct lc_ttlv_enc *e, const struct lc_ttlv_tree *t, int i)
{
	const struct lc_ttlv_item *it = &t->items[i];
	uint64_t v8;

	switch (it->type) {
	case LC_TTLV_STRUCTURE:
		lc_ttlv_begin(e, it->tag);
		for (int c = it->child; c >= 0; c = t->items[c].next)
			if (!reencode(e, t, c))
				return 0;
		lc_ttlv_end(e);
		return 1;
	case LC_TTLV_INTEGER:
		lc_ttlv_int(e, it->tag, (int32_t)be32(it->val));
		return 1;
	case LC_TTLV_ENUM:
		lc_ttlv_enum(e, it->tag, be32(it->val));
		return 1;
	case LC_TTLV_LONG:
	case LC_TTLV_DATETIME:
	case LC_TTLV_BOOL:
		v8 = (uint64_t)be32(it->val) << 32 | be32(it->val + 4);
		if (it->type == LC_TTLV_LONG)
			lc_ttlv_long(e, it->tag, (int64_t)v8);
		else if (it->type == LC_TTLV_DATETIME)
			lc_ttlv_datetime(e, it->tag, (int64_t)v8);
		else
			lc_ttlv_bool(e, it->tag, v8 != 0);
		return 1;
	case LC_TTLV_BYTES:
		lc_ttlv_bytes(e, it->tag, it->val, it->len);
		return 1;
	default:
		return 0;	/* Text (may hold NUL), Big Integer, Interval */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lc_ttlv_tree t;
	struct lc_kmip_result res;
	struct lc_kmip_blob b;
	struct lc_error err;
	uint32_t op;
	bool decoded;

	if (size < 1)
		return 0;
	op = ops[data[0] % 4];
	data++;
	size--;

	decoded = !lc_ttlv_decode(data, size, &t, &err);
	if (!decoded && err.cls != LC_ERRC_INVALID)
		abort();
	if (decoded) {
		uint8_t *copy = malloc(size ? size : 1);
		struct lc_ttlv_enc e;

		if (t.n < 1 || t.n > LC_TTLV_MAX_ITEMS)
			abort();
		for (int i = 0; i < t.n; i++)
			if (t.items[i].val < data || t.items[i].val + t.items[i].len > data + size)
				abort();
		lc_ttlv_enc_init(&e, copy, size);
		if (copy && reencode(&e, &t, 0) && (lc_ttlv_enc_done(&e) != size ||
						    memcmp(copy, data, size)))
			abort();
		free(copy);
	} else if (err.cls == LC_ERRC_NONE || !err.msg[0]) {
		abort();
	}

	if (!lc_kmip_parse_response(op, NULL, data, size, &res, &err)) {
		if (res.status != 0)
			abort();
		if ((op == LC_KMIP_OP_ENCRYPT || op == LC_KMIP_OP_DECRYPT) &&
		    (!res.data || !res.data_len || res.data < data ||
		     res.data + res.data_len > data + size || !res.uid[0]))
			abort();
		if (res.nminors > sizeof(res.minors) / sizeof(res.minors[0]))
			abort();
	} else if (err.cls == LC_ERRC_NONE || !err.msg[0] || (!decoded && err.cls != LC_ERRC_INVALID) ||
		   (err.cls == LC_ERRC_DENIED && res.status != 1)) {
		abort();
	}

	if (!lc_kmip_blob_parse(data, size, &b, &err) &&
	    (b.ct + b.ct_len != data + size || !b.ct_len || b.ct_len > LC_KMIP_MAX_CT))
		abort();
	return 0;
}
