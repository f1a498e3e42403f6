// SPDX-License-Identifier: GPL-2.0
/*
 * DEK re-key of segments of a closed volume, journaled in a version 3
 * header so that a cut at any write resumes.  See segrekey.h for the
 * write sequence and Documentation/key-hierarchy.md ("DEK re-key of a
 * segment") for why it is safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backing.h"
#include "envelope.h"
#include "rotate.h"
#include "segrekey.h"
#include "seqstore.h"
#include "volume-internal.h"

static uint64_t stop_after;	/* test hook, see lc_segrekey_stop_after() */
static char pause_path[PATH_MAX];	/* test hook, see lc_segrekey_pause_file() */

void lc_segrekey_pause_file(const char *path)
{
	snprintf(pause_path, sizeof(pause_path), "%s", path ? path : "");
}

/* The test pause; a kill (opguard.h) ends it at once. */
static void pause_if_asked(struct lc_op_guard *g)
{
	while (pause_path[0] && access(pause_path, F_OK) == 0 && !lc_op_guard_aborted(g))
		usleep(100 * 1000);
}

void lc_segrekey_stop_after(uint64_t n)
{
	stop_after = n;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* ---- storage ---- */

static int io_read(const struct lc_header_io *io, void *buf, size_t len, uint64_t off,
		   struct lc_error *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->pread(io->ctx, (uint8_t *)buf + done, len - done, off + done);

		if (n <= 0)
			return lc_err(err, n < 0 ? (int)n : -EIO, LC_ERRC_INTERNAL,
				      "cannot read the data device at byte %" PRIu64 ": %s",
				      off + done, n < 0 ? strerror((int)-n) : "end of device");
		done += (size_t)n;
	}
	return 0;
}

static int io_write(const struct lc_header_io *io, const void *buf, size_t len, uint64_t off,
		    struct lc_error *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->pwrite(io->ctx, (const uint8_t *)buf + done, len - done, off + done);

		if (n <= 0)
			return lc_err(err, n < 0 ? (int)n : -EIO, LC_ERRC_INTERNAL,
				      "cannot write the data device at byte %" PRIu64 ": %s",
				      off + done, n < 0 ? strerror((int)-n) : "short write");
		done += (size_t)n;
	}
	return 0;
}

/* ---- AES-XTS as the target does it ---- */

/* The OpenSSL cipher for @cipher with @key_size-byte keys, or NULL. */
static const EVP_CIPHER *xts_of(const char *cipher, uint32_t key_size)
{
	if (strcmp(cipher, "aes-xts-plain64") && strcmp(cipher, "capi:xts(aes)-plain64"))
		return NULL;
	return key_size == 64 ? EVP_aes_256_xts() : key_size == 32 ? EVP_aes_128_xts() : NULL;
}

/* En- or decrypt one encryption sector of @len bytes in place; @iv_sector:
 * 512-byte sectors from the start of the data area (plain64). */
static int xts_sector(EVP_CIPHER_CTX *c, bool enc, uint64_t iv_sector, uint8_t *buf, size_t len)
{
	uint8_t iv[16] = { 0 };
	int out = 0, fin = 0;

	for (int i = 0; i < 8; i++)
		iv[i] = (uint8_t)(iv_sector >> (8 * i));
	if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, enc) != 1 ||
	    EVP_CipherUpdate(c, buf, &out, buf, (int)len) != 1 ||
	    EVP_CipherFinal_ex(c, buf + out, &fin) != 1 || (size_t)(out + fin) != len)
		return -EIO;
	return 0;
}

static int digest8(const uint8_t *buf, size_t len, uint8_t out[LC_RKJ_DIGEST_LEN])
{
	uint8_t md[32];
	unsigned int n = 0;

	if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) != 1 || n != sizeof(md))
		return -EIO;
	memcpy(out, md, LC_RKJ_DIGEST_LEN);
	return 0;
}

/* ---- one segment ---- */

struct job {
	const struct lc_volume_env *env;
	const struct lc_header_io *hio, *dio;
	struct lc_header *h;
	const struct lc_secret *kek;
	const uint8_t *mac_key;
	const EVP_CIPHER *cipher;
	const char *hpath;
	uint64_t sectors;	/* encryption sectors per segment */
	uint64_t rewritten;
	struct lc_op_guard *guard;	/* env->guard: the kill switch's hold */
	bool accept;			/* a damaged sector of the zone is accepted */
	uint64_t accept_sector;		/* which one (sector of the segment) */
	bool accepted;			/* it was damaged, and rewritten */
	uint64_t accepted_off;
	char what[64];			/* "re-key of segment N", for its errors */
};

static void job_what(struct job *j, uint32_t seg)
{
	snprintf(j->what, sizeof(j->what), "re-key of segment %" PRIu32, seg);
}

/* Every header write is made under the guard: none after a kill. */
static int write_header(struct job *j, struct lc_error *err)
{
	int r;

	r = lc_op_guard_enter(j->guard, j->what, err);
	if (r < 0)
		return r;
	j->h->mac_key = j->mac_key;
	r = lc_header_write_io(j->hio, j->h, err);
	j->h->mac_key = NULL;
	lc_op_guard_leave(j->guard);
	return r;
}

static int data_write(struct job *j, const uint8_t *buf, size_t len, uint64_t off,
		      struct lc_error *err)
{
	if (stop_after && --stop_after == 0)
		return lc_err(err, -EINTR, LC_ERRC_INTERNAL,
			      "stopped by the test hook before a data write (as if the agent died)");
	return io_write(j->dio, buf, len, off, err);
}

/* Byte offset of encryption sector @k of segment @seg on the data device. */
static uint64_t sector_off(const struct job *j, uint32_t seg, uint64_t k)
{
	const struct lc_header *h = j->h;

	return (h->data_offset + (uint64_t)seg * h->segment_sectors) * 512 +
	       k * h->sector_size;
}

static uint64_t iv_of(const struct job *j, uint32_t seg, uint64_t k)
{
	return (uint64_t)seg * j->h->segment_sectors + k * (j->h->sector_size / 512);
}

static int redo_zone_held(struct job *j, EVP_CIPHER_CTX *dec, EVP_CIPHER_CTX *enc, uint8_t *buf,
			  struct lc_error *err);

/* Re-do the zone of the journal after a cut: each sector old, new, or an
 * error; under the guard (its writes are data writes). */
static int redo_zone(struct job *j, EVP_CIPHER_CTX *dec, EVP_CIPHER_CTX *enc, uint8_t *buf,
		     struct lc_error *err)
{
	int r;

	r = lc_op_guard_enter(j->guard, j->what, err);
	if (r < 0)
		return r;
	r = redo_zone_held(j, dec, enc, buf, err);
	lc_op_guard_leave(j->guard);
	return r;
}

static int redo_zone_held(struct job *j, EVP_CIPHER_CTX *dec, EVP_CIPHER_CTX *enc, uint8_t *buf,
			  struct lc_error *err)
{
	struct lc_rekey_journal *jn = &j->h->journal;
	size_t ss = j->h->sector_size;
	uint8_t d[LC_RKJ_DIGEST_LEN];
	int r;

	for (uint32_t i = 0; i < jn->zone; i++) {
		uint64_t k = jn->done + i, off = sector_off(j, jn->segment, k);

		r = io_read(j->dio, buf, ss, off, err);
		if (r < 0)
			return r;
		if (digest8(buf, ss, d))
			return lc_err(err, -EIO, LC_ERRC_INTERNAL, "SHA-256 failed");
		bool damaged;

		if (!memcmp(d, jn->new_digest[i], sizeof(d)))
			continue;	/* written before the cut */
		damaged = memcmp(d, jn->old_digest[i], sizeof(d)) != 0;
		if (damaged && !(j->accept && k == j->accept_sector))
			return lc_err(err, -EIO, LC_ERRC_INVALID,
				      "segment %" PRIu32 ", sector %" PRIu64 " (byte %" PRIu64
				      "): its ciphertext is neither the old nor the new one the journal recorded (a torn write or damage): the re-key cannot continue safely; to give up that sector's data (at most %zu bytes) and go on: lakecryptctl rekey-segment --resume --accept-damaged-journal-sector %" PRIu64,
				      jn->segment, k, off, ss, k);
		if (damaged) {
			lc_warn("segment %" PRIu32 ", sector %" PRIu64 " (byte %" PRIu64 ", %zu bytes) is damaged; accepted by the administrator: re-encrypted from what it holds, its data may be lost",
				jn->segment, k, off, ss);
			j->accepted = true;
			j->accepted_off = off;
		}
		if (xts_sector(dec, false, iv_of(j, jn->segment, k), buf, ss) ||
		    xts_sector(enc, true, iv_of(j, jn->segment, k), buf, ss) ||
		    digest8(buf, ss, d))
			return lc_err(err, -EIO, LC_ERRC_INTERNAL, "AES-XTS failed");
		if (!damaged && memcmp(d, jn->new_digest[i], sizeof(d)))
			return lc_err(err, -EIO, LC_ERRC_INVALID,
				      "segment %" PRIu32 ", sector %" PRIu64
				      ": re-encryption does not give the ciphertext the journal recorded",
				      jn->segment, k);
		r = data_write(j, buf, ss, off, err);
		if (r < 0)
			return r;
		j->rewritten++;
	}
	r = j->dio->sync(j->dio->ctx);
	return r < 0 ? lc_err(err, r, LC_ERRC_INTERNAL, "fsync of the data device failed: %s",
			      strerror(-r)) : 0;
}

/* Run (or finish) the journal of j->h: re-encrypt, then commit. */
static int run_segment(struct job *j, struct lc_error *err)
{
	struct lc_header *h = j->h;
	struct lc_rekey_journal *jn = &h->journal;
	_cleanup_secret_ struct lc_secret olddek = { 0 }, newdek = { 0 }, zone = { 0 };
	EVP_CIPHER_CTX *dec = NULL, *enc = NULL;
	size_t ss = h->sector_size;
	uint8_t *ct = NULL;
	int r;

	r = lc_secret_alloc(&olddek, h->key_size);
	if (!r)
		r = lc_secret_alloc(&newdek, h->key_size);
	/* the plaintext of a zone is data: kept out of swap and dumps too */
	if (!r)
		r = lc_secret_alloc(&zone, (size_t)LC_RKJ_ZONE_MAX * ss);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	ct = malloc((size_t)LC_RKJ_ZONE_MAX * ss);
	dec = EVP_CIPHER_CTX_new();
	enc = EVP_CIPHER_CTX_new();
	if (!ct || !dec || !enc) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	r = lc_dek_unwrap(j->kek, h->uuid, jn->segment, &h->deks[jn->segment], h->key_size,
			  olddek.p, err);
	if (!r)
		r = lc_dek_unwrap(j->kek, h->uuid, jn->segment, &jn->dek, h->key_size, newdek.p,
				  err);
	if (r < 0)
		goto out;
	if (EVP_CipherInit_ex(dec, j->cipher, NULL, olddek.p, NULL, 0) != 1 ||
	    EVP_CipherInit_ex(enc, j->cipher, NULL, newdek.p, NULL, 1) != 1) {
		r = lc_err(err, -EIO, LC_ERRC_INTERNAL, "AES-XTS key setup failed");
		goto out;
	}
	if (jn->zone) {
		r = redo_zone(j, dec, enc, ct, err);
		if (r < 0)
			goto out;
	}
	for (;;) {
		uint64_t k0;
		uint32_t n;

		jn->done += jn->zone;
		jn->zone = 0;
		memset(jn->old_digest, 0, sizeof(jn->old_digest));
		memset(jn->new_digest, 0, sizeof(jn->new_digest));
		if (jn->done >= j->sectors)
			break;
		/* Between zones: a kill stops the re-key here. */
		r = lc_op_guard_check(j->guard, j->what, err);
		if (r < 0)
			goto out;
		k0 = jn->done;
		n = (uint32_t)(j->sectors - k0 < LC_RKJ_ZONE_MAX ? j->sectors - k0 : LC_RKJ_ZONE_MAX);
		r = io_read(j->dio, ct, n * ss, sector_off(j, jn->segment, k0), err);
		if (r < 0)
			goto out;
		memcpy(zone.p, ct, n * ss);
		for (uint32_t i = 0; i < n; i++) {
			uint8_t *p = zone.p + i * ss;
			uint64_t iv = iv_of(j, jn->segment, k0 + i);

			if (digest8(ct + i * ss, ss, jn->old_digest[i]) ||
			    xts_sector(dec, false, iv, p, ss) || xts_sector(enc, true, iv, p, ss) ||
			    digest8(p, ss, jn->new_digest[i])) {
				r = lc_err(err, -EIO, LC_ERRC_INTERNAL, "AES-XTS failed");
				goto out;
			}
		}
		jn->zone = n;
		r = write_header(j, err);	/* the zone's digests, before its data */
		if (r < 0)
			goto out;
		if (k0)
			pause_if_asked(j->guard);
		/* The zone's data, under the guard: a kill after the journal
		 * write leaves the zone to --resume (every sector still old). */
		r = lc_op_guard_enter(j->guard, j->what, err);
		if (r < 0)
			goto out;
		for (uint32_t i = 0; i < n && !r; i++) {
			r = data_write(j, zone.p + i * ss, ss, sector_off(j, jn->segment, k0 + i),
				       err);
			if (!r)
				j->rewritten++;
		}
		if (!r && (r = j->dio->sync(j->dio->ctx)) < 0)
			lc_err(err, r, LC_ERRC_INTERNAL, "fsync of the data device failed: %s",
			       strerror(-r));
		lc_op_guard_leave(j->guard);
		if (r < 0)
			goto out;
	}
	/* The commit: the new record in the table, back to version 2. */
	h->deks[jn->segment] = jn->dek;
	h->version = LC_HDR_VERSION;
	memset(jn, 0, sizeof(*jn));
	r = write_header(j, err);
out:
	if (ct)
		lc_wipe(ct, (size_t)LC_RKJ_ZONE_MAX * ss);
	free(ct);
	EVP_CIPHER_CTX_free(dec);
	EVP_CIPHER_CTX_free(enc);
	return r;
}

/* Start the journal for @seg: a fresh DEK wrapped for generation + 1. */
static int start_segment(struct job *j, uint32_t seg, struct lc_error *err)
{
	struct lc_header *h = j->h;
	struct lc_rekey_journal *jn = &h->journal;
	_cleanup_secret_ struct lc_secret dek = { 0 };
	uint32_t gen = h->deks[seg].generation;
	int r;

	memset(jn, 0, sizeof(*jn));
	r = lc_deks_generate(&dek, 1, h->key_size, err);
	if (r < 0)
		return r;
	r = lc_dek_wrap(j->kek, h->uuid, seg, gen + 1, dek.p, h->key_size, &jn->dek, err);
	if (r < 0)
		return r;
	jn->dek.generation = gen + 1;
	jn->active = true;
	jn->segment = seg;
	jn->old_gen = gen;
	jn->new_gen = gen + 1;
	h->version = LC_HDR_VERSION_V3;
	r = write_header(j, err);
	if (r < 0) {
		h->version = LC_HDR_VERSION;
		memset(jn, 0, sizeof(*jn));
	}
	return r;
}

/* The audit record's detail: the segments re-keyed, and those asked for
 * but not touched (a resume starts at the journaled segment). */
static void segrange_detail(const struct lc_segrekey_result *rs, char *buf, size_t size)
{
	int n = snprintf(buf, size, "segments %" PRIu32 "-%" PRIu32 ": %" PRIu32 " re-keyed%s",
			 rs->first, rs->last, rs->rekeyed, rs->resumed ? " (resumed)" : "");

	if (n > 0 && (size_t)n < size && rs->first > rs->asked_first)
		n += snprintf(buf + n, size - (size_t)n,
			      "; %" PRIu32 "-%" PRIu32 " asked for, not re-keyed", rs->asked_first,
			      rs->first - 1);
	if (n > 0 && (size_t)n < size && rs->damaged_accepted)
		snprintf(buf + n, size - (size_t)n,
			 "; damaged sector at byte %" PRIu64 " of segment %" PRIu32 " accepted: its data may be lost",
			 rs->damaged_offset, rs->resumed_segment);
}

/* ---- the closed volume ---- */

static bool under_kc(const struct lc_header *h, const struct lc_keyconfig *kc)
{
	return !strcmp(h->keyconfig, kc->name) && !strcmp(h->provider, kc->provider) &&
	       !strcmp(h->provider_ref, kc->key_ref);
}

/* The authenticated header: the newer valid copy of this workspace under
 * its binding whose MAC verifies under the KEK it wraps (as open does). */
static int authenticated(const struct lc_volume_env *env, const struct lc_open_args *a,
			 const char *hpath, struct lc_header *copies[2],
			 const struct lc_header_info *info, struct lc_volume *v,
			 struct lc_secret *kek, struct lc_secret *mk, struct lc_header **out,
			 struct lc_error *err)
{
	struct lc_provider *p = lc_vol_provider(env, a->kc->provider, err);
	struct lc_error first = { 0 };
	struct lc_provider_reply rep;
	char ctx[LC_KEK_CONTEXT_MAX];

	if (!p)
		return -ENOPROTOOPT;
	for (int i = 0; i < 2; i++) {
		struct lc_header *c = copies[i ? !info->used : info->used];
		struct lc_kek_identity kid;
		struct lc_error e = { 0 };
		char u[LC_UUID_STR_LEN];
		int r;

		if (!c)
			continue;
		lc_header_uuid_str(c, u);
		copy_str(v->project, sizeof(v->project), c->project);
		if (c->version == LC_HDR_VERSION_V1)
			lc_err(&e, -EPROTO, LC_ERRC_INVALID,
			       "volume %s has a version 1 header: migrate it first", u);
		else if (strcmp(c->workspace, a->workspace))
			lc_err(&e, -EPERM, LC_ERRC_INVALID,
			       "volume %s belongs to workspace %s, not %s", u, c->workspace,
			       a->workspace);
		else if (!under_kc(c, a->kc))
			lc_err(&e, -EPERM, LC_ERRC_INVALID,
			       "volume %s is under key configuration %s, but workspace %s is bound to %s: re-key it to the binding first",
			       u, c->keyconfig, a->workspace, a->kc->name);
		if (e.code) {
			if (!first.code)
				first = e;
			continue;
		}
		kid = (struct lc_kek_identity){ c->uuid, c->workspace, c->project, c->keyconfig };
		if (lc_kek_context(&kid, ctx) < 0 || c->wrap_context.len != strlen(ctx) ||
		    memcmp(c->wrap_context.p, ctx, c->wrap_context.len)) {
			if (!first.code)
				lc_err(&first, -EBADMSG, LC_ERRC_INVALID,
				       "%s: the header's wrap context does not match its identity", hpath);
			continue;
		}
		lc_secret_free(kek);
		memset(&rep, 0, sizeof(rep));
		r = lc_provider_unwrap(p, a->kc->key_ref, &c->wrapped_kek, ctx, kek, &rep, &e);
		lc_vol_audit(env, "cmk.unwrap", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, v, &rep,
			     r ? &e : NULL, -1);
		if (!r && kek->len != LC_KEK_LEN)
			r = lc_err(&e, -EBADMSG, LC_ERRC_INVALID,
				   "the KMS unwrapped a key of %zu bytes", kek->len);
		if (!r) {
			lc_secret_free(mk);
			r = lc_header_mac_key(kek, c->uuid, mk, &e);
			if (!r)
				r = lc_header_verify(c, mk->p, &e);
		}
		if (!r) {
			*out = c;
			return 0;
		}
		if (!first.code)
			first = e;
		if (e.cls != LC_ERRC_INVALID)
			break;	/* denied, transient, misconfigured: final */
	}
	*err = first;
	return first.code ? first.code : -EBADMSG;
}

int lc_segment_rekey(const struct lc_volume_env *env, const struct lc_open_args *a,
		     uint32_t first, uint32_t last, bool resume, const struct lc_segrekey_io *io,
		     struct lc_segrekey_result *res, struct lc_error *err)
{
	struct lc_segrekey_opts o = { .resume = resume };

	return lc_segment_rekey_opts(env, a, first, last, &o, io, res, err);
}

int lc_segment_rekey_opts(const struct lc_volume_env *env, const struct lc_open_args *a,
			  uint32_t first, uint32_t last, const struct lc_segrekey_opts *o,
			  const struct lc_segrekey_io *io, struct lc_segrekey_result *res,
			  struct lc_error *err)
{
	bool resume = o->resume;
	struct lc_header *copies[2] = { NULL, NULL }, *h = NULL;
	_cleanup_secret_ struct lc_secret kek = { 0 }, mk = { 0 };
	_cleanup_close_ int hfd = -1, dfd = -1;
	struct lc_header_io hio_fd = lc_header_io_fd(&hfd);
	struct lc_header_io dio_fd = lc_header_io_fd(&dfd);
	bool detached = a->header && *a->header;
	const char *hpath = detached ? a->header : a->device;
	struct lc_segrekey_result rs = { .first = first, .last = last, .asked_first = first,
					 .asked_last = last };
	char detail[256] = "";
	struct lc_backing_claim hclaim = { .nloops = 0 }, dclaim = { .nloops = 0 };
	struct lc_volume *v = NULL;
	struct lc_header_info info;
	struct lc_error dummy;
	struct job j = { .env = env };
	uint64_t dev_bytes = 0, end;
	uint32_t from;
	int64_t t0 = lc_vol_now_ms();
	int r;

	if (!err)
		err = &dummy;
	if (!a->kc)
		return lc_err(err, -ENOENT, LC_ERRC_INVALID,
			      "workspace %s is not bound to a key configuration", a->workspace);
	v = calloc(1, sizeof(*v));
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	copy_str(v->workspace, sizeof(v->workspace), a->workspace);
	copy_str(v->keyconfig, sizeof(v->keyconfig), a->kc->name);
	copy_str(v->provider, sizeof(v->provider), a->kc->provider);
	copy_str(v->provider_ref, sizeof(v->provider_ref), a->kc->key_ref);
	copy_str(v->cmk_id, sizeof(v->cmk_id), a->kc->cmk_id[0] ? a->kc->cmk_id : a->kc->key_ref);
	copy_str(v->device, sizeof(v->device), a->device);

	/* Exclusive opens: a device that is mapped (an open volume) is refused. */
	if (io && io->hdr) {
		j.hio = io->hdr;
	} else {
		hfd = lc_vol_dev_open_admin(hpath, a->workspace, err);
		if (hfd < 0) {
			r = hfd;
			goto fail;
		}
		/* A file: locked, and refused while a loop device over it is
		 * in use (backing.h). */
		r = lc_backing_claim(hfd, hpath, NULL, NULL, &hclaim, err);
		if (r < 0)
			goto fail;
		j.hio = &hio_fd;
	}
	if (io && io->data) {
		j.dio = io->data;
		dev_bytes = io->data_bytes;
	} else if (detached) {
		dfd = lc_vol_dev_open_admin(a->device, a->workspace, err);
		if (dfd < 0) {
			r = dfd;
			goto fail;
		}
		r = lc_backing_claim(dfd, a->device, NULL, NULL, &dclaim, err);
		if (r < 0)
			goto fail;
		j.dio = &dio_fd;
	} else {
		j.dio = j.hio;
	}
	if (!(io && io->data)) {
		int fd = detached ? dfd : hfd;

		r = lc_device_size(fd, a->device, &dev_bytes, NULL, err);
		if (r < 0)
			goto fail;
	}
	r = lc_header_read_copies_io(j.hio, copies, &info, err);
	if (r < 0)
		goto fail;
	r = authenticated(env, a, hpath, copies, &info, v, &kek, &mk, &h, err);
	if (r < 0)
		goto fail;
	lc_header_uuid_str(h, v->uuid);
	copy_str(v->project, sizeof(v->project), h->project);
	copy_str(v->cmk_version, sizeof(v->cmk_version), h->cmk_version);
	if (env->seqs && (r = lc_seqstore_check(env->seqs, v->uuid, h->seqno, err)) < 0)
		goto fail;
	if (detached != !!(h->flags & LC_HDR_F_DETACHED)) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   detached ? "%s holds an attached header: give only the device" :
			   "%s holds a detached header: give it with --header", hpath);
		goto fail;
	}
	j.cipher = xts_of(h->cipher, h->key_size);
	if (!j.cipher) {
		r = lc_err(err, -EOPNOTSUPP, LC_ERRC_INVALID,
			   "volume %s uses cipher %s with %" PRIu32 "-byte keys: the segment re-key re-encrypts in userspace with OpenSSL's AES-XTS (aes-xts-plain64, 32- or 64-byte keys) only; nothing changed",
			   v->uuid, h->cipher, h->key_size);
		goto fail;
	}
	if (last < first || last >= h->segment_count) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "segments %" PRIu32 "-%" PRIu32 ": volume %s has segments 0-%" PRIu32,
			   first, last, v->uuid, h->segment_count - 1);
		goto fail;
	}
	end = (h->data_offset + (uint64_t)(last + 1) * h->segment_sectors) * 512;
	if (dev_bytes < end) {
		r = lc_err(err, -ENOSPC, LC_ERRC_INVALID,
			   "segment %" PRIu32 " ends at byte %" PRIu64 ", beyond the end of %s (%" PRIu64
			   " bytes)", last, end, a->device, dev_bytes);
		goto fail;
	}
	if (h->journal.active && !resume) {
		r = lc_err(err, -EBUSY, LC_ERRC_INVALID,
			   "volume %s: re-key of segment %" PRIu32 " in progress: run again with --resume",
			   v->uuid, h->journal.segment);
		goto fail;
	}
	if (!h->journal.active && resume) {
		r = lc_err(err, -EALREADY, LC_ERRC_INVALID,
			   "volume %s: no re-key in progress, nothing to resume", v->uuid);
		goto fail;
	}
	if (h->journal.active && (h->journal.segment < first || h->journal.segment > last)) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   "volume %s: the re-key in progress is of segment %" PRIu32
			   ", outside %" PRIu32 "-%" PRIu32, v->uuid, h->journal.segment, first, last);
		goto fail;
	}
	from = h->journal.active ? h->journal.segment + 1 : first;
	for (uint32_t s = from; s <= last && s >= from; s++) {
		if (lc_dek_is_shredded(&h->deks[s], h->key_size)) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "segment %" PRIu32 " of volume %s is shredded: it has no DEK to replace; nothing changed",
				   s, v->uuid);
			goto fail;
		}
		if (h->deks[s].generation == UINT32_MAX) {
			r = lc_err(err, -EOVERFLOW, LC_ERRC_INVALID,
				   "segment %" PRIu32 " is at the last generation", s);
			goto fail;
		}
	}
	if (o->accept_damaged && (!h->journal.active || !h->journal.zone ||
				  o->damaged_sector < h->journal.done ||
				  o->damaged_sector >= (uint64_t)h->journal.done + h->journal.zone)) {
		r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
			   h->journal.active && h->journal.zone ?
			   "volume %s: sector %" PRIu64 " is not in the zone being re-keyed (sectors %" PRIu64 "-%" PRIu64 " of segment %" PRIu32 "): nothing changed" :
			   "volume %s: sector %" PRIu64 ": no zone of a segment re-key is in progress: nothing changed",
			   v->uuid, o->damaged_sector, h->journal.done,
			   h->journal.done + h->journal.zone - 1, h->journal.segment);
		goto fail;
	}
	j.accept = o->accept_damaged;
	j.accept_sector = o->damaged_sector;
	j.h = h;
	j.kek = &kek;
	j.mac_key = mk.p;
	j.hpath = hpath;
	j.guard = env->guard;
	j.sectors = h->segment_sectors / (h->sector_size / 512);
	if (h->journal.active) {
		rs.resumed = true;
		rs.resumed_segment = h->journal.segment;
		rs.first = h->journal.segment;	/* what this call re-keys */
		if (rs.first > first)
			lc_warn("volume %s: --resume continues the re-key of segment %" PRIu32 ": segments %" PRIu32 "-%" PRIu32 " of the range asked for are not re-keyed by it",
				v->uuid, rs.first, first, rs.first - 1);
		lc_info("volume %s: resuming the re-key of segment %" PRIu32 " at sector %" PRIu64,
			v->uuid, h->journal.segment, h->journal.done);
		job_what(&j, h->journal.segment);
		r = run_segment(&j, err);
		if (r < 0)
			goto fail;
		rs.rekeyed++;
		rs.generation = h->deks[rs.resumed_segment].generation;
	}
	for (uint32_t s = from; s <= last && s >= from; s++) {
		job_what(&j, s);
		r = lc_op_guard_check(j.guard, j.what, err);
		if (!r)
			r = start_segment(&j, s, err);
		/* the first write of a range is the one the rollback memory must know */
		if (!r && env->seqs)
			r = lc_seqstore_record(env->seqs, v->uuid, h->seqno, err);
		if (!r)
			r = run_segment(&j, err);
		if (r < 0)
			goto fail;
		rs.rekeyed++;
		rs.generation = h->deks[s].generation;
	}
	if (env->seqs && (r = lc_seqstore_record(env->seqs, v->uuid, h->seqno, err)) < 0)
		goto fail;
	rs.sectors = j.rewritten;
	rs.seqno = h->seqno;
	rs.damaged_accepted = j.accepted;
	rs.damaged_offset = j.accepted_off;
	lc_info("volume %s: segments %" PRIu32 "-%" PRIu32 " re-keyed (%" PRIu64
		" sectors re-encrypted%s)", v->uuid, rs.first, last, rs.sectors,
		rs.resumed ? ", after resuming" : "");
	segrange_detail(&rs, detail, sizeof(detail));
	lc_vol_audit_detail(env, "rekey-segment", LC_AUDIT_SUCCESS, v, NULL, lc_vol_now_ms() - t0,
			    detail);
	if (res)
		*res = rs;
	r = 0;
	goto out;
fail:
	rs.sectors = j.rewritten;
	rs.damaged_accepted = j.accepted;
	rs.damaged_offset = j.accepted_off;
	if (res)
		*res = rs;
	if (j.h)
		segrange_detail(&rs, detail, sizeof(detail));
	lc_vol_audit_detail(env, "rekey-segment", LC_AUDIT_FAILURE, v, err, lc_vol_now_ms() - t0,
			    detail[0] ? detail : NULL);
out:
	lc_backing_release(&hclaim);
	lc_backing_release(&dclaim);
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	lc_volume_free(v);
	return r;
}
