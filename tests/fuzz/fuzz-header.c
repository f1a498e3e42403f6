// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the lakecrypt header parser (agent/lib/header.c).
 *
 * Input: byte 0 selects the mode, the rest is the payload.
 *   mode 0  payload is one header copy: lc_header_decode()
 *   mode 1  the same, with the checksum made to match first, so that the
 *           fuzzer gets past it and reaches every field check
 *   mode 2  payload is a device image: lc_header_read_io() (both copies,
 *           probing for copy B), then lc_header_write_io() and read back
 *   mode 3  mode 2 with copy A's checksum made to match first
 * Whatever decodes must re-encode to the same bytes, dump without error and
 * survive a write and read back unchanged.  Anything else is a bug: trap.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "header.h"

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

struct disk {
	uint8_t *p;
	size_t size;
};

static ssize_t d_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct disk *d = ctx;

	if (off >= d->size)
		return 0;
	if (len > d->size - off)
		len = d->size - off;
	memcpy(buf, d->p + off, len);
	return (ssize_t)len;
}

static ssize_t d_pwrite(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct disk *d = ctx;

	if (off + len > d->size) {
		uint8_t *n;

		if (off + len > (64u << 20))
			return -27;	/* -EFBIG: no header this big comes from a fuzz input */
		n = realloc(d->p, off + len);
		if (!n)
			return -12;
		memset(n + d->size, 0, off + len - d->size);
		d->p = n;
		d->size = off + len;
	}
	memcpy(d->p + off, buf, len);
	return (ssize_t)len;
}

static int d_sync(void *ctx)
{
	(void)ctx;
	return 0;
}

static void reseal(uint8_t *p, size_t len)
{
	uint64_t hdr = 0;

	if (len < LC_HDR_FIXED_SIZE)
		return;
	for (int i = 7; i >= 0; i--)
		hdr = hdr << 8 | p[LC_HDR_OFF_HDR_SIZE + i];
	if (hdr < LC_HDR_OFF_UUID || hdr > len)
		hdr = len;
	lc_header_checksum(p, hdr, p + LC_HDR_OFF_CHECKSUM);
}

static void dump(const struct lc_header *h, const struct lc_header_info *info)
{
	char *json = NULL, *text = NULL;
	size_t tlen = 0;
	FILE *f;

	CHECK(lc_header_to_json(h, info, &json, NULL) == 0 && json);
	free(json);
	f = open_memstream(&text, &tlen);
	if (f) {
		CHECK(lc_header_dump_text(h, info, f) == 0);
		fclose(f);
		free(text);
	}
}

static void one_copy(const uint8_t *p, size_t len)
{
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };
	uint8_t *buf;
	size_t blen;
	int copy = -1;

	if (lc_header_decode(p, len, &h, &copy, &err)) {
		CHECK(!h && err.code < 0 && err.msg[0]);
		return;
	}
	CHECK(lc_header_check(h, NULL) == 0);
	CHECK(lc_header_decode(p, len, NULL, NULL, NULL) == 0);
	/* canonical: the bytes that decoded are the bytes the encoder writes */
	CHECK(lc_header_encode(h, copy, &buf, &blen, NULL) == 0);
	CHECK(blen <= len && !memcmp(buf, p, blen));
	free(buf);
	dump(h, NULL);
	lc_header_free(h);
}

static void image(const uint8_t *p, size_t len)
{
	struct disk d = { NULL, len };
	struct lc_header_io io = { &d, d_pread, d_pwrite, d_sync };
	struct lc_header_info info;
	struct lc_header *h = NULL, *back = NULL;
	struct lc_error err = { 0 };
	uint64_t seq;

	d.p = malloc(len ? len : 1);
	if (!d.p)
		return;
	memcpy(d.p, p, len);
	/* the udev probe's reader: with a budget for everything it picks what
	 * the agent's reader picks, every copy verified; with none, it still
	 * recognises whatever the agent's reader accepts */
	struct lc_header_info iinfo, zinfo;
	struct lc_header *ih = NULL, *zh = NULL;
	struct lc_error ierr = { 0 }, zerr = { 0 };
	int irc = lc_header_identify_io(&io, UINT64_MAX, &ih, &iinfo, &ierr);
	int zrc = lc_header_identify_io(&io, 0, &zh, &zinfo, &zerr);
	int rrc = lc_header_read_io(&io, &h, &info, &err);

	CHECK((irc == 0) == (rrc == 0));
	/* ... except when the copies are of two volumes and copy A cannot be
	 * verified within the budget: then it must say so, not pick one
	 * (lc_header_identify_io, -EUCLEAN) */
	CHECK(rrc != 0 || zrc == 0 ||
	      (zrc == -EUCLEAN && !zh && strstr(zerr.msg, "disagree")));
	if (rrc == 0) {
		CHECK(iinfo.used == info.used && iinfo.checked[info.used] && !ih->deks &&
		      !memcmp(ih->uuid, h->uuid, sizeof(h->uuid)) && ih->seqno == h->seqno &&
		      iinfo.state[0] == info.state[0] && iinfo.state[1] == info.state[1]);
	}
	lc_header_free(ih);
	lc_header_free(zh);
	if (rrc) {
		CHECK(!h && err.code < 0 && strstr(err.msg, "no valid lakecrypt header"));
		free(d.p);
		return;
	}
	CHECK(info.used == 0 || info.used == 1);
	CHECK(info.state[info.used] == LC_COPY_VALID);
	dump(h, &info);
	/* an update (repair) must give back the same header, seqno + 1 */
	seq = h->seqno;
	if (seq < UINT64_MAX - 1 && lc_header_write_io(&io, h, &err) == 0) {
		CHECK(h->seqno > seq);
		CHECK(lc_header_read_io(&io, &back, &info, &err) == 0);
		CHECK(back->seqno == h->seqno);
		CHECK(info.state[0] == LC_COPY_VALID && info.state[1] == LC_COPY_VALID);
		CHECK(!memcmp(back->uuid, h->uuid, sizeof(h->uuid)) &&
		      back->segment_count == h->segment_count &&
		      !memcmp(back->deks, h->deks, h->segment_count * sizeof(*h->deks)));
		lc_header_free(back);
	}
	lc_header_free(h);
	free(d.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	int mode;

	if (size < 1)
		return 0;
	mode = data[0] & 3;
	data++;
	size--;
	switch (mode) {
	case 0:
		one_copy(data, size);
		break;
	case 2:
		image(data, size);
		break;
	default:
		copy = malloc(size ? size : 1);
		if (!copy)
			return 0;
		memcpy(copy, data, size);
		reseal(copy, size);
		if (mode == 1)
			one_copy(copy, size);
		else
			image(copy, size);
		free(copy);
		break;
	}
	return 0;
}
