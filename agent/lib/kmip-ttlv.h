/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KMIP TTLV codec: the binary encoding of KMIP messages (OASIS KMIP
 * Specification v1.2 / v1.4, section 9.1 "TTLV Encoding").
 *
 * An item is Tag (3 bytes, big endian, 0x42xxxx for standard tags), Type
 * (1 byte), Length (4 bytes, big endian: the value's length without
 * padding) and Value, padded with zero bytes to a multiple of 8.  A
 * Structure's value is a sequence of items.  Types (9.1.1.2):
 *   0x01 Structure   0x02 Integer (4)   0x03 Long Integer (8)
 *   0x04 Big Integer (multiple of 8)    0x05 Enumeration (4)
 *   0x06 Boolean (8, 0 or 1)            0x07 Text String (UTF-8)
 *   0x08 Byte String  0x09 Date-Time (8, POSIX seconds)  0x0A Interval (4)
 *
 * The decoder is strict, for a KMS reply is hostile input: every length
 * is checked against its type and its container, padding must be zero,
 * a structure's length must be exactly the sum of its items, nesting is at
 * most LC_TTLV_MAX_DEPTH and the item count LC_TTLV_MAX_ITEMS.  Unknown
 * tags are kept in the tree and simply never looked up, so a server's
 * extensions are skipped.  The encoder writes into caller memory (locked
 * memory for requests that carry key material) and never reallocates.
 */
#ifndef LC_KMIP_TTLV_H
#define LC_KMIP_TTLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lc-error.h"

enum lc_ttlv_type {
	LC_TTLV_STRUCTURE	= 0x01,
	LC_TTLV_INTEGER		= 0x02,
	LC_TTLV_LONG		= 0x03,
	LC_TTLV_BIG_INTEGER	= 0x04,
	LC_TTLV_ENUM		= 0x05,
	LC_TTLV_BOOL		= 0x06,
	LC_TTLV_TEXT		= 0x07,
	LC_TTLV_BYTES		= 0x08,
	LC_TTLV_DATETIME	= 0x09,
	LC_TTLV_INTERVAL	= 0x0A,
};

#define LC_TTLV_HDR		8	/* tag + type + length */
#define LC_TTLV_MAX_DEPTH	16	/* structures inside structures */
#define LC_TTLV_MAX_ITEMS	1024	/* items in one message */

/* ---- encoder -------------------------------------------------------------- */

struct lc_ttlv_enc {
	uint8_t *buf;		/* caller's memory */
	size_t cap, len;
	size_t open[LC_TTLV_MAX_DEPTH];	/* offsets of open structures */
	unsigned int depth;
	bool overflow;		/* out of room or nesting: the message is unusable */
};

void lc_ttlv_enc_init(struct lc_ttlv_enc *e, uint8_t *buf, size_t cap);
void lc_ttlv_begin(struct lc_ttlv_enc *e, uint32_t tag);	/* a Structure */
void lc_ttlv_end(struct lc_ttlv_enc *e);			/* its length is set */
void lc_ttlv_int(struct lc_ttlv_enc *e, uint32_t tag, int32_t v);
void lc_ttlv_enum(struct lc_ttlv_enc *e, uint32_t tag, uint32_t v);
void lc_ttlv_bool(struct lc_ttlv_enc *e, uint32_t tag, bool v);
void lc_ttlv_long(struct lc_ttlv_enc *e, uint32_t tag, int64_t v);
void lc_ttlv_datetime(struct lc_ttlv_enc *e, uint32_t tag, int64_t epoch_s);
void lc_ttlv_text(struct lc_ttlv_enc *e, uint32_t tag, const char *s);
void lc_ttlv_bytes(struct lc_ttlv_enc *e, uint32_t tag, const void *p, size_t n);
/* The encoded length, or 0 if anything overflowed or a structure is open. */
size_t lc_ttlv_enc_done(const struct lc_ttlv_enc *e);

/* ---- decoder -------------------------------------------------------------- */

struct lc_ttlv_item {
	uint32_t tag;
	uint8_t type;
	uint32_t len;		/* value length, without padding */
	const uint8_t *val;	/* into the decoded buffer */
	int parent;		/* index, -1 for the top item */
	int next;		/* next sibling, -1 if none */
	int child;		/* first child (structures), -1 if none */
};

struct lc_ttlv_tree {
	struct lc_ttlv_item items[LC_TTLV_MAX_ITEMS];
	int n;
};

/*
 * Decode exactly one top-level item filling all @len bytes of @buf.
 * 0, or -EBADMSG (class INVALID: @buf is a whole message as its length
 * said, so what does not decode violates the protocol) with a message
 * saying which byte offset is wrong and why (truncated, bad padding, bad
 * length for its type, nesting, trailing bytes, too many items).  The
 * tree points into @buf.
 */
int lc_ttlv_decode(const uint8_t *buf, size_t len, struct lc_ttlv_tree *t, struct lc_error *err);

/* The first child of structure @parent with @tag (any type), or -1. */
int lc_ttlv_find(const struct lc_ttlv_tree *t, int parent, uint32_t tag);
/* The next sibling after @after with @tag, or -1. */
int lc_ttlv_find_next(const struct lc_ttlv_tree *t, int after, uint32_t tag);

/* Typed reads of item @i: 0, or -EBADMSG if @i < 0 or of another type. */
int lc_ttlv_get_int(const struct lc_ttlv_tree *t, int i, int32_t *v);
int lc_ttlv_get_enum(const struct lc_ttlv_tree *t, int i, uint32_t *v);
int lc_ttlv_get_bool(const struct lc_ttlv_tree *t, int i, bool *v);
int lc_ttlv_get_datetime(const struct lc_ttlv_tree *t, int i, int64_t *v);
int lc_ttlv_get_bytes(const struct lc_ttlv_tree *t, int i, const uint8_t **p, size_t *n);
/* Text String copied into @out (@size bytes, NUL-terminated), control
 * bytes replaced by '?'; -EBADMSG if it holds a NUL, -ENAMETOOLONG if it
 * does not fit. */
int lc_ttlv_get_text(const struct lc_ttlv_tree *t, int i, char *out, size_t size);

#endif /* LC_KMIP_TTLV_H */
