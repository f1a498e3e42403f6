// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for header authentication (version 2 MAC,
 * agent/lib/header.c: lc_header_mac_key, lc_header_verify).
 *
 * One genuine header is sealed with a fixed test KEK.  Each input is a
 * list of edits, 3 bytes each (be16 offset modulo the header size, xor
 * byte), applied to a copy of it; the first input byte says whether the
 * checksum is then made to match (bit 0) so that decoding gets past it.
 * Whatever still decodes must verify under the genuine key exactly when
 * no authenticated byte (everything but the copy index and checksum) and
 * no MAC byte changed, and never verify under any other key.  Anything
 * else is a bug: trap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "header.h"

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

static uint8_t *genuine;
static size_t glen;
static struct lc_secret mac_key, wrong_key;

static void setup(void)
{
	static const uint8_t uuid[LC_UUID_LEN] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
						   0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	static const char ctx[] = "lakecrypt:v2;volume=12345678-9abc-4def-8123-456789abcdef;"
				  "workspace=ws1;project=p1;keyconfig=kc1";
	struct lc_secret kek = { 0 };
	struct lc_header *h = lc_header_new(4, 64);

	CHECK(h);
	memcpy(h->uuid, uuid, LC_UUID_LEN);
	h->created = 1700000000;
	h->seqno = 7;
	strcpy(h->workspace, "ws1");
	strcpy(h->project, "p1");
	strcpy(h->keyconfig, "kc1");
	strcpy(h->provider, "local");
	strcpy(h->provider_ref, "lk-0123456789abcdef0123456789abcdef");
	strcpy(h->cmk_id, "lk-0123456789abcdef0123456789abcdef");
	strcpy(h->cmk_version, "1");
	h->segment_sectors = 8;
	h->data_offset = 2048;
	h->wrap_context.len = strlen(ctx);
	h->wrap_context.p = (uint8_t *)strdup(ctx);
	h->wrapped_kek.len = 48;
	h->wrapped_kek.p = calloc(1, 48);
	CHECK(h->wrap_context.p && h->wrapped_kek.p);
	for (uint32_t i = 0; i < 4; i++) {
		h->deks[i].generation = 1;
		memset(h->deks[i].nonce, (int)i + 1, sizeof(h->deks[i].nonce));
		memset(h->deks[i].ct, (int)i + 9, 64);
	}
	CHECK(lc_secret_alloc(&kek, LC_KEK_LEN) == 0);
	memset(kek.p, 0x42, LC_KEK_LEN);
	CHECK(lc_header_mac_key(&kek, h->uuid, &mac_key, NULL) == 0);
	kek.p[0] ^= 1;
	CHECK(lc_header_mac_key(&kek, h->uuid, &wrong_key, NULL) == 0);
	lc_secret_free(&kek);
	h->mac_key = mac_key.p;
	CHECK(lc_header_encode(h, 0, &genuine, &glen, NULL) == 0);
	h->mac_key = NULL;
	lc_header_free(h);
}

/* Offsets that are not authenticated by the MAC. */
static int field_of(size_t off)
{
	if (off >= LC_HDR_OFF_COPY && off < LC_HDR_OFF_COPY + 2)
		return 1;	/* copy index */
	if (off >= LC_HDR_OFF_CHECKSUM && off < LC_HDR_OFF_CHECKSUM + LC_HDR_CHECKSUM_LEN)
		return 2;	/* checksum */
	if (off >= LC_HDR_OFF_MAC && off < LC_HDR_OFF_MAC + LC_HDR_MAC_LEN)
		return 3;	/* the MAC itself */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lc_header *h = NULL;
	bool changed = false;
	uint8_t *buf;
	int r;

	if (!genuine)
		setup();
	if (size < 1)
		return 0;
	buf = malloc(glen);
	CHECK(buf);
	memcpy(buf, genuine, glen);
	for (size_t i = 1; i + 3 <= size; i += 3) {
		size_t off = (((size_t)data[i] << 8) | data[i + 1]) % glen;

		buf[off] ^= data[i + 2];
	}
	if (data[0] & 1)
		CHECK(lc_header_checksum(buf, glen, buf + LC_HDR_OFF_CHECKSUM) == 0);
	for (size_t off = 0; off < glen; off++)
		if (buf[off] != genuine[off] && (field_of(off) == 0 || field_of(off) == 3))
			changed = true;
	r = lc_header_decode(buf, glen, &h, NULL, NULL);
	if (r == 0) {
		CHECK((lc_header_verify(h, mac_key.p, NULL) == 0) == !changed);
		CHECK(lc_header_verify(h, wrong_key.p, NULL) != 0);
		lc_header_free(h);
	}
	free(buf);
	return 0;
}
