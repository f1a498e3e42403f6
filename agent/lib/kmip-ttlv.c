// SPDX-License-Identifier: GPL-2.0
/*
 * KMIP TTLV codec (see kmip-ttlv.h; KMIP 1.2/1.4 section 9.1).
 */
#include <errno.h>
#include <string.h>

#include "kmip-ttlv.h"

/* ---- encoder -------------------------------------------------------------- */

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

void lc_ttlv_enc_init(struct lc_ttlv_enc *e, uint8_t *buf, size_t cap)
{
	memset(e, 0, sizeof(*e));
	e->buf = buf;
	e->cap = cap;
}

/* Room for a header and @vlen value bytes (padded); the header written. */
static uint8_t *put_hdr(struct lc_ttlv_enc *e, uint32_t tag, uint8_t type, size_t vlen)
{
	size_t need = LC_TTLV_HDR + pad8(vlen);
	uint8_t *p;

	if (e->overflow || vlen > UINT32_MAX || need > e->cap - e->len) {
		e->overflow = true;
		return NULL;
	}
	p = e->buf + e->len;
	put32(p, tag << 8 | type);
	put32(p + 4, (uint32_t)vlen);
	memset(p + LC_TTLV_HDR, 0, pad8(vlen));
	e->len += need;
	return p + LC_TTLV_HDR;
}

void lc_ttlv_begin(struct lc_ttlv_enc *e, uint32_t tag)
{
	if (e->depth >= LC_TTLV_MAX_DEPTH) {
		e->overflow = true;
		return;
	}
	if (!put_hdr(e, tag, LC_TTLV_STRUCTURE, 0))
		return;
	e->open[e->depth++] = e->len - LC_TTLV_HDR;
}

void lc_ttlv_end(struct lc_ttlv_enc *e)
{
	size_t at;

	if (e->overflow)
		return;
	if (!e->depth) {
		e->overflow = true;
		return;
	}
	at = e->open[--e->depth];
	put32(e->buf + at + 4, (uint32_t)(e->len - at - LC_TTLV_HDR));
}

void lc_ttlv_int(struct lc_ttlv_enc *e, uint32_t tag, int32_t v)
{
	uint8_t *p = put_hdr(e, tag, LC_TTLV_INTEGER, 4);

	if (p)
		put32(p, (uint32_t)v);
}

void lc_ttlv_enum(struct lc_ttlv_enc *e, uint32_t tag, uint32_t v)
{
	uint8_t *p = put_hdr(e, tag, LC_TTLV_ENUM, 4);

	if (p)
		put32(p, v);
}

static void put_8(struct lc_ttlv_enc *e, uint32_t tag, uint8_t type, uint64_t v)
{
	uint8_t *p = put_hdr(e, tag, type, 8);

	if (p) {
		put32(p, (uint32_t)(v >> 32));
		put32(p + 4, (uint32_t)v);
	}
}

void lc_ttlv_bool(struct lc_ttlv_enc *e, uint32_t tag, bool v)
{
	put_8(e, tag, LC_TTLV_BOOL, v ? 1 : 0);
}

void lc_ttlv_long(struct lc_ttlv_enc *e, uint32_t tag, int64_t v)
{
	put_8(e, tag, LC_TTLV_LONG, (uint64_t)v);
}

void lc_ttlv_datetime(struct lc_ttlv_enc *e, uint32_t tag, int64_t epoch_s)
{
	put_8(e, tag, LC_TTLV_DATETIME, (uint64_t)epoch_s);
}

void lc_ttlv_text(struct lc_ttlv_enc *e, uint32_t tag, const char *s)
{
	size_t n = strlen(s);
	uint8_t *p = put_hdr(e, tag, LC_TTLV_TEXT, n);

	if (p)
		memcpy(p, s, n);
}

void lc_ttlv_bytes(struct lc_ttlv_enc *e, uint32_t tag, const void *v, size_t n)
{
	uint8_t *p = put_hdr(e, tag, LC_TTLV_BYTES, n);

	if (p && n)
		memcpy(p, v, n);
}

size_t lc_ttlv_enc_done(const struct lc_ttlv_enc *e)
{
	return e->overflow || e->depth ? 0 : e->len;
}

/* ---- decoder -------------------------------------------------------------- */

/* The buffer is a whole message (its length came with it): what does not
 * decode is a protocol violation, INVALID, never retried (lc-error.h). */
#define bad(off, fmt, ...) lc_err(err, -EBADMSG, LC_ERRC_INVALID, \
				  "KMIP TTLV at byte %zu: " fmt, (size_t)(off), ##__VA_ARGS__)

/*
 * Decode the items in [off, end) as children of @parent at @depth.
 * Iterative over siblings, recursive over structures (bounded by depth).
 */
static int decode_seq(const uint8_t *buf, size_t off, size_t end, int parent, unsigned int depth,
		      struct lc_ttlv_tree *t, struct lc_error *err)
{
	int prev = -1;

	while (off < end) {
		struct lc_ttlv_item *it;
		uint32_t tt, len;
		uint8_t type;
		size_t plen;
		int idx, r;

		if (end - off < LC_TTLV_HDR)
			return bad(off, "%zu bytes left, an item header needs 8 (truncated)", end - off);
		tt = get32(buf + off);
		len = get32(buf + off + 4);
		type = (uint8_t)tt;
		plen = pad8(len);
		if (plen < len || plen > end - off - LC_TTLV_HDR)
			return bad(off, "item of %u bytes does not fit in the %zu bytes left of its container (truncated)",
				   len, end - off - LC_TTLV_HDR);
		switch (type) {
		case LC_TTLV_STRUCTURE:
			if (len % 8)
				return bad(off, "structure length %u is not a multiple of 8", len);
			break;
		case LC_TTLV_INTEGER:
		case LC_TTLV_ENUM:
		case LC_TTLV_INTERVAL:
			if (len != 4)
				return bad(off, "type 0x%02x must be 4 bytes long, not %u", type, len);
			break;
		case LC_TTLV_LONG:
		case LC_TTLV_BOOL:
		case LC_TTLV_DATETIME:
			if (len != 8)
				return bad(off, "type 0x%02x must be 8 bytes long, not %u", type, len);
			if (type == LC_TTLV_BOOL && get64(buf + off + LC_TTLV_HDR) > 1)
				return bad(off, "a Boolean must be 0 or 1");
			break;
		case LC_TTLV_BIG_INTEGER:
			if (len % 8 || !len)
				return bad(off, "Big Integer length %u is not a non-zero multiple of 8", len);
			break;
		case LC_TTLV_TEXT:
		case LC_TTLV_BYTES:
			break;
		default:
			return bad(off, "unknown item type 0x%02x", type);
		}
		for (size_t i = len; i < plen; i++)
			if (buf[off + LC_TTLV_HDR + i])
				return bad(off, "padding byte %zu is not zero", i - len);
		if (t->n >= LC_TTLV_MAX_ITEMS)
			return bad(off, "more than %d items in one message", LC_TTLV_MAX_ITEMS);
		idx = t->n++;
		it = &t->items[idx];
		it->tag = tt >> 8;
		it->type = type;
		it->len = len;
		it->val = buf + off + LC_TTLV_HDR;
		it->parent = parent;
		it->next = -1;
		it->child = -1;
		if (prev >= 0)
			t->items[prev].next = idx;
		else if (parent >= 0)
			t->items[parent].child = idx;
		prev = idx;
		if (type == LC_TTLV_STRUCTURE && len) {
			if (depth + 1 >= LC_TTLV_MAX_DEPTH)
				return bad(off, "structures nested deeper than %d", LC_TTLV_MAX_DEPTH);
			r = decode_seq(buf, off + LC_TTLV_HDR, off + LC_TTLV_HDR + len, idx, depth + 1,
				       t, err);
			if (r < 0)
				return r;
		}
		off += LC_TTLV_HDR + plen;
	}
	return 0;
}

int lc_ttlv_decode(const uint8_t *buf, size_t len, struct lc_ttlv_tree *t, struct lc_error *err)
{
	uint32_t ilen;
	int r;

	t->n = 0;
	if (len < LC_TTLV_HDR)
		return bad(0, "a message of %zu bytes is shorter than one item header", len);
	ilen = get32(buf + 4);
	if (pad8(ilen) + LC_TTLV_HDR != len || (ilen % 8))
		return bad(0, "the message's length field says %u bytes, %zu followed", ilen,
			   len - LC_TTLV_HDR);
	r = decode_seq(buf, 0, len, -1, 0, t, err);
	if (r < 0)
		t->n = 0;
	return r;
}

int lc_ttlv_find(const struct lc_ttlv_tree *t, int parent, uint32_t tag)
{
	if (parent < 0 || parent >= t->n || t->items[parent].type != LC_TTLV_STRUCTURE)
		return -1;
	for (int i = t->items[parent].child; i >= 0; i = t->items[i].next)
		if (t->items[i].tag == tag)
			return i;
	return -1;
}

int lc_ttlv_find_next(const struct lc_ttlv_tree *t, int after, uint32_t tag)
{
	if (after < 0 || after >= t->n)
		return -1;
	for (int i = t->items[after].next; i >= 0; i = t->items[i].next)
		if (t->items[i].tag == tag)
			return i;
	return -1;
}

static const struct lc_ttlv_item *typed(const struct lc_ttlv_tree *t, int i, uint8_t type)
{
	if (i < 0 || i >= t->n || t->items[i].type != type)
		return NULL;
	return &t->items[i];
}

int lc_ttlv_get_int(const struct lc_ttlv_tree *t, int i, int32_t *v)
{
	const struct lc_ttlv_item *it = typed(t, i, LC_TTLV_INTEGER);

	if (!it)
		return -EBADMSG;
	*v = (int32_t)get32(it->val);
	return 0;
}

int lc_ttlv_get_enum(const struct lc_ttlv_tree *t, int i, uint32_t *v)
{
	const struct lc_ttlv_item *it = typed(t, i, LC_TTLV_ENUM);

	if (!it)
		return -EBADMSG;
	*v = get32(it->val);
	return 0;
}

int lc_ttlv_get_bool(const struct lc_ttlv_tree *t, int i, bool *v)
{
	const struct lc_ttlv_item *it = typed(t, i, LC_TTLV_BOOL);

	if (!it)
		return -EBADMSG;
	*v = get64(it->val) != 0;
	return 0;
}

int lc_ttlv_get_datetime(const struct lc_ttlv_tree *t, int i, int64_t *v)
{
	const struct lc_ttlv_item *it = typed(t, i, LC_TTLV_DATETIME);

	if (!it)
		return -EBADMSG;
	*v = (int64_t)get64(it->val);
	return 0;
}

int lc_ttlv_get_bytes(const struct lc_ttlv_tree *t, int i, const uint8_t **p, size_t *n)
{
	const struct lc_ttlv_item *it = typed(t, i, LC_TTLV_BYTES);

	if (!it)
		return -EBADMSG;
	*p = it->val;
	*n = it->len;
	return 0;
}

int lc_ttlv_get_text(const struct lc_ttlv_tree *t, int i, char *out, size_t size)
{
	const struct lc_ttlv_item *it = typed(t, i, LC_TTLV_TEXT);

	if (!it || !size)
		return -EBADMSG;
	if (it->len >= size)
		return -ENAMETOOLONG;
	for (uint32_t k = 0; k < it->len; k++) {
		uint8_t c = it->val[k];

		if (!c)
			return -EBADMSG;
		out[k] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[it->len] = '\0';
	return 0;
}
