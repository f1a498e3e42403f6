// SPDX-License-Identifier: GPL-2.0
/*
 * Key lifecycle of an open volume: KEK rotation, re-key to another key
 * configuration, per-segment crypto-shred (rotate.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/fs.h>

#include "backing.h"
#include "rotate.h"
#include "volume-internal.h"

bool lc_dek_is_shredded(const struct lc_wrapped_dek *d, uint32_t key_size)
{
	uint8_t acc = 0;

	if (d->generation != LC_DEK_GEN_SHREDDED)
		return false;
	for (size_t i = 0; i < LC_DEK_NONCE_LEN; i++)
		acc |= d->nonce[i];
	for (size_t i = 0; i < LC_DEK_TAG_LEN; i++)
		acc |= d->tag[i];
	for (size_t i = 0; i < key_size && i < LC_DEK_MAX_LEN; i++)
		acc |= d->ct[i];
	return acc == 0;
}

uint32_t lc_header_shredded(const struct lc_header *h, uint32_t count)
{
	uint32_t n = 0;

	if (count > h->segment_count)
		count = h->segment_count;
	for (uint32_t i = 0; i < count; i++)
		n += lc_dek_is_shredded(&h->deks[i], h->key_size);
	return n;
}

int lc_segment_range_parse(const char *s, uint32_t *first, uint32_t *last, struct lc_error *err)
{
	unsigned long long a, b;
	char *end;

	if (!s || *s < '0' || *s > '9')
		goto bad;
	errno = 0;
	a = strtoull(s, &end, 10);
	if (errno || a > UINT32_MAX)
		goto bad;
	b = a;
	if (*end == '-') {
		const char *t = end + 1;

		if (*t < '0' || *t > '9')
			goto bad;
		b = strtoull(t, &end, 10);
		if (errno || b > UINT32_MAX)
			goto bad;
	}
	if (*end)
		goto bad;
	if (a > b)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment range \"%.40s\" is reversed: expected A-B with A <= B", s);
	*first = (uint32_t)a;
	*last = (uint32_t)b;
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "segment range \"%.40s\" is not N or A-B (decimal segment numbers from 0)",
		      s ? s : "");
}

/* ---- one header update ---- */

enum upd_kind { UPD_ROTATE_KEK, UPD_REKEY, UPD_SHRED };

static const char *const upd_op[] = { "rotate-kek", "rekey", "shred" };

struct upd {
	enum upd_kind kind;
	const struct lc_keyconfig *to;	/* UPD_REKEY */
	uint32_t first, last;		/* UPD_SHRED */
};

/*
 * Re-wrap every live DEK record of @h from @old to @kek, keeping
 * generations; records in [first, last] (when @shred) and records already
 * shredded become shredded records.  Everything is computed into a new
 * table that replaces h->deks only when it is complete.
 */
static int rewrap_deks(struct lc_header *h, const struct lc_secret *old,
		       const struct lc_secret *kek, bool shred, uint32_t first, uint32_t last,
		       struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret dek = { 0 };
	struct lc_wrapped_dek *t;
	int r;

	t = calloc(h->segment_count, sizeof(*t));
	if (!t)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory for %" PRIu32 " DEK records",
			      h->segment_count);
	r = lc_secret_alloc(&dek, h->key_size);
	if (r < 0) {
		free(t);
		return lc_err(err, r, LC_ERRC_INTERNAL, "cannot allocate key memory");
	}
	for (uint32_t i = 0; i < h->segment_count && !r; i++) {
		if ((shred && i >= first && i <= last) ||
		    lc_dek_is_shredded(&h->deks[i], h->key_size))
			continue;	/* calloc: generation 0, all zero */
		r = lc_dek_unwrap(old, h->uuid, i, &h->deks[i], h->key_size, dek.p, err);
		if (!r)
			r = lc_dek_wrap(kek, h->uuid, i, h->deks[i].generation, dek.p, h->key_size,
					&t[i], err);
	}
	if (r < 0) {
		free(t);
		return r;
	}
	free(h->deks);
	h->deks = t;
	return 0;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static int set_context(struct lc_header *h, char ctx[LC_KEK_CONTEXT_MAX], struct lc_error *err)
{
	struct lc_kek_identity kid = { h->uuid, h->workspace, h->project, h->keyconfig };
	uint8_t *p;

	if (lc_kek_context(&kid, ctx) < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key configuration name \"%s\" cannot be bound into a KEK context",
			      h->keyconfig);
	p = (uint8_t *)strdup(ctx);
	if (!p)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	free(h->wrap_context.p);
	h->wrap_context.p = p;
	h->wrap_context.len = strlen(ctx);
	return 0;
}

static int update(const struct lc_volume_env *env, struct lc_volume *v,
		  const struct lc_header_io *io_in, const struct upd *u, struct lc_error *err)
{
	struct lc_header *copies[2] = { NULL, NULL }, *h = NULL;
	_cleanup_secret_ struct lc_secret nk = { 0 }, mk = { 0 };
	_cleanup_close_ int fd = -1;
	struct lc_header_io fio = lc_header_io_fd(&fd);
	const struct lc_header_io *io = io_in;
	struct lc_header_info info;
	struct lc_provider_reply rep;
	struct lc_provider *p;
	const char *hpath = v->header[0] ? v->header : v->device;
	const char *key_ref;
	const char *op = upd_op[u->kind];
	char ctx[LC_KEK_CONTEXT_MAX], uuid[LC_UUID_STR_LEN];
	int64_t t0 = lc_vol_now_ms();
	int r;

	memset(&rep, 0, sizeof(rep));
	if (v->kind != LC_VOLUME_PROJECT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%s is a cache volume: its keys exist only in the kernel (close it to shred it all)",
			      v->name);
	if (v->revoked)
		return lc_err(err, -EKEYREVOKED, LC_ERRC_INVALID,
			      "volume %s is revoked: close it, and open it again once the CMK allows",
			      v->name);
	if (!v->have_kek)
		return lc_err(err, -ENOKEY, LC_ERRC_INVALID,
			      "the agent does not hold the KEK of %s (it was restarted since the open): close and open the volume, then retry",
			      v->name);
	p = lc_vol_provider(env, u->kind == UPD_REKEY ? u->to->provider : v->provider, err);
	if (!p) {
		r = -ENOPROTOOPT;
		goto fail;
	}
	if (!io) {
		/* Not O_EXCL: the device is mapped; the header area lies
		 * outside the data area, so writing it does not race with
		 * the mapping's I/O. */
		fd = open(hpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			r = lc_err(err, -errno, LC_ERRC_INVALID, "cannot open %s: %s", hpath,
				   strerror(errno));
			goto fail;
		}
		io = &fio;
	}
	r = lc_header_read_copies_io(io, copies, &info, err);
	if (r < 0)
		goto fail;
	/* Only a copy the KEK the agent holds authenticates is transformed. */
	for (int i = 0; i < 2 && !h; i++) {
		struct lc_header *c = copies[i ? !info.used : info.used];
		_cleanup_secret_ struct lc_secret k = { 0 };

		if (c && lc_header_mac_key(&v->kek, c->uuid, &k, NULL) == 0 &&
		    lc_header_verify(c, k.p, NULL) == 0)
			h = c;
	}
	if (!h) {
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "%s: no header copy is authenticated by the KEK of open volume %s: nothing changed",
			   hpath, v->uuid);
		goto fail;
	}
	lc_header_uuid_str(h, uuid);
	if (strcmp(uuid, v->uuid)) {
		r = lc_err(err, -ESTALE, LC_ERRC_INVALID,
			   "%s now holds volume %s, not the open volume %s: nothing changed", hpath,
			   uuid, v->uuid);
		goto fail;
	}
	if (env->seqs && (r = lc_seqstore_check(env->seqs, v->uuid, h->seqno, err)) < 0)
		goto fail;

	key_ref = v->provider_ref;
	switch (u->kind) {
	case UPD_REKEY:
		if (!strcmp(h->keyconfig, u->to->name) && !strcmp(h->provider, u->to->provider) &&
		    !strcmp(h->provider_ref, u->to->key_ref)) {
			r = lc_err(err, -EALREADY, LC_ERRC_INVALID,
				   "volume %s is already under key configuration %s", v->uuid,
				   u->to->name);
			goto fail;
		}
		copy_str(h->keyconfig, sizeof(h->keyconfig), u->to->name);
		copy_str(h->provider, sizeof(h->provider), u->to->provider);
		copy_str(h->provider_ref, sizeof(h->provider_ref), u->to->key_ref);
		copy_str(h->cmk_id, sizeof(h->cmk_id),
			 u->to->cmk_id[0] ? u->to->cmk_id : u->to->key_ref);
		key_ref = u->to->key_ref;
		/* The same KEK, under the new CMK. */
		r = lc_secret_alloc(&nk, v->kek.len);
		if (r < 0) {
			lc_err(err, r, LC_ERRC_INTERNAL, "cannot allocate key memory");
			goto fail;
		}
		memcpy(nk.p, v->kek.p, v->kek.len);
		break;
	case UPD_SHRED:
		if (u->first > u->last || u->last >= h->segment_count) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "segments %" PRIu32 "-%" PRIu32 " are out of range: volume %s has segments 0-%" PRIu32,
				   u->first, u->last, v->uuid, h->segment_count - 1);
			goto fail;
		}
		/* a shred rotates the KEK too */
		__attribute__((fallthrough));
	case UPD_ROTATE_KEK:
		r = lc_kek_generate(&nk, err);
		if (!r)
			r = rewrap_deks(h, &v->kek, &nk, u->kind == UPD_SHRED, u->first, u->last, err);
		if (r < 0)
			goto fail;
		break;
	}
	r = set_context(h, ctx, err);
	if (r < 0)
		goto fail;
	/* A revocation since the start: no KMS call, nothing written. */
	if ((r = lc_op_guard_check(env->guard, op, err)) < 0)
		goto fail;
	if (u->kind == UPD_REKEY) {
		/* The wrap is audited as the new CMK's (the volume is the same). */
		struct lc_volume *tv = malloc(sizeof(*tv));

		if (!tv) {
			r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			goto fail;
		}
		memcpy(tv, v, sizeof(*tv));
		memset(&tv->kek, 0, sizeof(tv->kek));
		copy_str(tv->keyconfig, sizeof(tv->keyconfig), h->keyconfig);
		copy_str(tv->provider, sizeof(tv->provider), h->provider);
		copy_str(tv->provider_ref, sizeof(tv->provider_ref), h->provider_ref);
		copy_str(tv->cmk_id, sizeof(tv->cmk_id), h->cmk_id);
		tv->cmk_version[0] = '\0';
		r = lc_vol_wrap_kek(env, p, key_ref, &nk, ctx, h, tv, &rep, err);
		free(tv);
	} else {
		r = lc_vol_wrap_kek(env, p, key_ref, &nk, ctx, h, v, &rep, err);
	}
	if (r < 0)
		goto fail;
	/* Sealed with the MAC key of the KEK it carries: one write of both
	 * copies, the one not in use first (lc_header_write_io). */
	r = lc_header_mac_key(&nk, h->uuid, &mk, err);
	if (r < 0)
		goto fail;
	h->version = LC_HDR_VERSION;
	h->mac_key = mk.p;
	/* The commit, unless the kill switch came first (opguard.h). */
	r = lc_op_guard_enter(env->guard, op, err);
	if (!r) {
		r = lc_header_write_io(io, h, err);
		lc_op_guard_leave(env->guard);
	}
	h->mac_key = NULL;
	if (r < 0)
		goto fail;
	if (env->seqs && (r = lc_seqstore_record(env->seqs, v->uuid, h->seqno, err)) < 0) {
		char m[LC_ERROR_MSG_MAX];

		snprintf(m, sizeof(m), "%s", err->msg);
		lc_err(err, r, LC_ERRC_INTERNAL,
		       "volume %s: the header was written (seqno %" PRIu64 "), but the rollback memory could not be saved: %s; free space in the state directory and retry",
		       v->uuid, h->seqno, m);
		/* The header on disk is the new one: so is the volume. */
	}
	/* The new keys are the volume's; the old KEK is wiped. */
	lc_secret_free(&v->kek);
	v->kek = nk;
	memset(&nk, 0, sizeof(nk));
	copy_str(v->keyconfig, sizeof(v->keyconfig), h->keyconfig);
	copy_str(v->provider, sizeof(v->provider), h->provider);
	copy_str(v->provider_ref, sizeof(v->provider_ref), h->provider_ref);
	copy_str(v->cmk_id, sizeof(v->cmk_id), h->cmk_id);
	copy_str(v->cmk_version, sizeof(v->cmk_version), h->cmk_version);
	lc_info("volume %s: %s done (header seqno %" PRIu64 ", key configuration %s, CMK %s version %s)",
		v->uuid, op, h->seqno, v->keyconfig, v->cmk_id,
		v->cmk_version[0] ? v->cmk_version : "-");
	lc_vol_audit(env, op, r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, v, &rep, r ? err : NULL,
		     lc_vol_now_ms() - t0);
	goto out;
fail:
	lc_vol_audit(env, op, LC_AUDIT_FAILURE, v, NULL, err, lc_vol_now_ms() - t0);
out:
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	return r;
}

int lc_volume_rotate_kek(const struct lc_volume_env *env, struct lc_volume *v,
			 const struct lc_header_io *io, struct lc_error *err)
{
	struct upd u = { .kind = UPD_ROTATE_KEK };
	struct lc_error dummy;

	return update(env, v, io, &u, err ? err : &dummy);
}

int lc_volume_rekey(const struct lc_volume_env *env, struct lc_volume *v,
		    const struct lc_keyconfig *to, const struct lc_header_io *io,
		    struct lc_error *err)
{
	struct upd u = { .kind = UPD_REKEY, .to = to };
	struct lc_error dummy;

	return update(env, v, io, &u, err ? err : &dummy);
}

/* ---- shred ---- */

/* Zero [off, off + len) of @fd and ask the device to drop it. */
static int destroy_range(int fd, bool blk, uint64_t off, uint64_t len,
			 struct lc_shred_result *res, struct lc_error *err)
{
	uint64_t range[2] = { off, len };

	if (blk) {
		if (ioctl(fd, BLKZEROOUT, range) < 0)
			return lc_err(err, -errno, LC_ERRC_INTERNAL, "BLKZEROOUT: %s",
				      strerror(errno));
		res->zeroed = true;
		if (ioctl(fd, BLKSECDISCARD, range) == 0)
			res->discard = "secure";
		else if (ioctl(fd, BLKDISCARD, range) == 0)
			res->discard = "discard";
		else
			res->discard = "unsupported";
	} else {
		static const uint8_t zero[65536];

		for (uint64_t done = 0; done < len;) {
			size_t n = len - done < sizeof(zero) ? (size_t)(len - done) : sizeof(zero);
			ssize_t w = pwrite(fd, zero, n, (off_t)(off + done));

			if (w <= 0)
				return lc_err(err, w < 0 ? -errno : -EIO, LC_ERRC_INTERNAL,
					      "writing zeros: %s", w < 0 ? strerror(errno) : "short write");
			done += (uint64_t)w;
		}
		res->zeroed = true;
		res->discard = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
					 (off_t)len) == 0 ? "discard" : "unsupported";
	}
	if (fsync(fd) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "fsync: %s", strerror(errno));
	return 0;
}

int lc_volume_shred(const struct lc_volume_env *env, struct lc_volume *v, uint32_t first,
		    uint32_t last, const struct lc_header_io *io, struct lc_shred_result *res,
		    struct lc_error *err)
{
	struct upd u = { .kind = UPD_SHRED, .first = first, .last = last };
	struct lc_error dummy, e2;
	uint64_t start, end, mapped_end;
	struct stat st;
	char d[24] = "";
	int fd, r;

	if (!err)
		err = &dummy;
	memset(res, 0, sizeof(*res));
	res->first = first;
	res->last = last;
	res->discard = "none";
	if (first > last || last >= LAKECRYPT_MAX_SEGMENTS)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segments %" PRIu32 "-%" PRIu32 " are not a range of volume %s",
			      first, last, v->uuid);
	if (v->kind != LC_VOLUME_PROJECT || v->revoked || !v->have_kek)
		return update(env, v, io, &u, err);	/* says why not */
	/* 1. The kernel forgets the keys: I/O to these segments fails from
	 * now on (ENOKEY), whatever happens next. */
	if (first < v->segments) {
		char msg[64];
		uint32_t l = last < v->segments ? last : v->segments - 1;

		snprintf(msg, sizeof(msg), LAKECRYPT_MSG_KEY " " LAKECRYPT_MSG_KEY_WIPE " %" PRIu32 "-%" PRIu32,
			 first, l);
		r = env->be->dm_message(env->be_ctx, v->name, msg, err);
		if (r == -ENXIO || r == -ENODEV) {
			/* The mapping is gone (removed behind the agent's back):
			 * no key to wipe; the header and the data still are. */
			lc_warn("volume %s: /dev/mapper/%s no longer exists: no kernel keys to wipe",
				v->uuid, v->name);
		} else if (r < 0) {
			lc_vol_audit(env, "shred", LC_AUDIT_FAILURE, v, NULL, err, -1);
			return r;
		} else {
			res->wiped = true;
		}
	}
	/* 2. The DEK records, in both copies, with a new KEK. */
	r = update(env, v, io, &u, err);
	if (r < 0)
		return r;
	/* 3. The ciphertext: gone even for whoever restores an old header
	 * and still has the CMK. */
	start = v->data_offset + (uint64_t)first * v->segment_sectors;
	end = v->data_offset + ((uint64_t)last + 1) * v->segment_sectors;
	mapped_end = v->data_offset + v->length;
	if (end > mapped_end)
		end = mapped_end;
	if (start >= end)
		return 0;	/* beyond the mapped data: nothing on the device */
	res->offset = start * 512;
	res->length = (end - start) * 512;
	fd = open(v->device, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISBLK(st.st_mode))
		snprintf(d, sizeof(d), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	if (fd < 0 || (v->devno[0] && strcmp(d, v->devno)) ||
	    (!v->devno[0] && (!S_ISREG(st.st_mode) || !env->be->regular_files))) {
		r = lc_err(err, fd < 0 ? -errno : -ESTALE, LC_ERRC_INTERNAL,
			   "volume %s: segments %" PRIu32 "-%" PRIu32 " are shredded in the header and the kernel, but %s is not the device the volume maps (or cannot be opened): its data range was not zeroed; run shred again",
			   v->uuid, first, last, v->device);
	} else if ((r = destroy_range(fd, S_ISBLK(st.st_mode), res->offset, res->length, res,
				      &e2)) < 0) {
		lc_err(err, r, LC_ERRC_INTERNAL,
		       "volume %s: segments %" PRIu32 "-%" PRIu32 " are shredded in the header and the kernel, but zeroing their data on %s failed (%s): run shred again",
		       v->uuid, first, last, v->device, e2.msg);
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		lc_vol_audit(env, "shred", LC_AUDIT_FAILURE, v, NULL, err, -1);
		return r;
	}
	lc_info("volume %s: segments %" PRIu32 "-%" PRIu32 " shredded: %" PRIu64 " bytes at %" PRIu64 " zeroed, discard %s",
		v->uuid, first, last, res->length, res->offset, res->discard);
	return 0;
}

/* ---- re-key of a closed volume ---- */

static bool under_kc(const struct lc_header *h, const struct lc_keyconfig *kc)
{
	return !strcmp(h->keyconfig, kc->name) && !strcmp(h->provider, kc->provider) &&
	       !strcmp(h->provider_ref, kc->key_ref);
}

int lc_volume_rekey_closed(const struct lc_volume_env *env, const struct lc_open_args *a,
			   const struct lc_keyconfig *from, struct lc_header **out,
			   struct lc_error *err)
{
	struct lc_header *copies[2] = { NULL, NULL }, *h = NULL;
	_cleanup_secret_ struct lc_secret kek = { 0 }, mk = { 0 };
	_cleanup_close_ int fd = -1;
	struct lc_header_io io = lc_header_io_fd(&fd);
	const char *hpath = a->header && *a->header ? a->header : a->device;
	const struct lc_keyconfig *to = a->kc;
	struct lc_volume *v = NULL;	/* who the audit records are about */
	struct lc_provider_reply rep;
	struct lc_header_info info;
	struct lc_provider *pf, *pt;
	struct lc_error dummy, first = { 0 };
	struct lc_backing_claim claim = { .nloops = 0 };
	char ctx[LC_KEK_CONTEXT_MAX];
	int64_t t0 = lc_vol_now_ms();
	int r;

	if (!err)
		err = &dummy;
	if (out)
		*out = NULL;
	if (!to || !from || !strcmp(to->name, from->name))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "re-key needs two different key configurations (from %s to %s)",
			      from ? from->name : "?", to ? to->name : "?");
	v = calloc(1, sizeof(*v));
	if (!v)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	copy_str(v->workspace, sizeof(v->workspace), a->workspace);
	copy_str(v->keyconfig, sizeof(v->keyconfig), from->name);
	copy_str(v->provider, sizeof(v->provider), from->provider);
	copy_str(v->provider_ref, sizeof(v->provider_ref), from->key_ref);
	copy_str(v->cmk_id, sizeof(v->cmk_id), from->cmk_id[0] ? from->cmk_id : from->key_ref);
	pf = lc_vol_provider(env, from->provider, err);
	pt = pf ? lc_vol_provider(env, to->provider, err) : NULL;
	if (!pt) {
		r = -ENOPROTOOPT;
		goto fail;
	}
	fd = lc_vol_dev_open_admin(hpath, a->workspace, err);
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	/* A file behind a loop device in use is refused (backing.h). */
	r = lc_backing_claim(fd, hpath, NULL, NULL, &claim, err);
	if (r < 0)
		goto fail;
	r = lc_header_read_copies_io(&io, copies, &info, err);
	if (r < 0)
		goto fail;
	/* The newer copy first; each must be this workspace's, under @from,
	 * with the context of its identity, and authenticate under its KEK. */
	for (int i = 0; i < 2 && !h; i++) {
		struct lc_header *c = copies[i ? !info.used : info.used];
		struct lc_kek_identity kid;
		struct lc_error e = { 0 };
		char u[LC_UUID_STR_LEN];

		if (!c)
			continue;
		lc_header_uuid_str(c, u);
		copy_str(v->project, sizeof(v->project), c->project);
		if (c->version == LC_HDR_VERSION_V3)	/* segrekey.c */
			lc_err(&e, -EBUSY, LC_ERRC_INVALID,
			       "volume %s: re-key of segment %" PRIu32 " in progress: finish it with `lakecryptctl rekey-segment --resume` first",
			       u, c->journal.segment);
		else if (c->version != LC_HDR_VERSION)
			lc_err(&e, -EPROTO, LC_ERRC_INVALID,
			       "volume %s has a version %u header: migrate it first", u, c->version);
		else if (strcmp(c->workspace, a->workspace))
			lc_err(&e, -EPERM, LC_ERRC_INVALID,
			       "volume %s belongs to workspace %s, not %s", u, c->workspace, a->workspace);
		else if (under_kc(c, to))
			lc_err(&e, -EALREADY, LC_ERRC_INVALID,
			       "volume %s is already under key configuration %s", u, to->name);
		else if (!under_kc(c, from))
			lc_err(&e, -EPERM, LC_ERRC_INVALID,
			       "volume %s is under key configuration %s (%s %.200s), not %s: nothing changed",
			       u, c->keyconfig, c->provider, c->provider_ref, from->name);
		if (e.code) {
			if (!first.code)
				first = e;
			if (e.code == -EALREADY)
				break;	/* never re-key from an older copy */
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
		lc_secret_free(&kek);
		memset(&rep, 0, sizeof(rep));
		r = lc_provider_unwrap(pf, from->key_ref, &c->wrapped_kek, ctx, &kek, &rep, &e);
		lc_vol_audit(env, "cmk.unwrap", r ? LC_AUDIT_FAILURE : LC_AUDIT_SUCCESS, v, &rep,
			     r ? &e : NULL, -1);
		if (!r && kek.len != LC_KEK_LEN)
			r = lc_err(&e, -EBADMSG, LC_ERRC_INVALID, "the KMS unwrapped a key of %zu bytes",
				   kek.len);
		if (!r) {
			lc_secret_free(&mk);
			r = lc_header_mac_key(&kek, c->uuid, &mk, &e);
			if (!r)
				r = lc_header_verify(c, mk.p, &e);
		}
		if (!r) {
			h = c;
			break;
		}
		if (!first.code)
			first = e;
		if (e.cls != LC_ERRC_INVALID)
			break;	/* denied, transient, misconfigured: final */
	}
	if (!h) {
		*err = first;
		r = first.code ? first.code : -EBADMSG;
		goto fail;
	}
	lc_header_uuid_str(h, v->uuid);
	if (env->seqs && (r = lc_seqstore_check(env->seqs, v->uuid, h->seqno, err)) < 0)
		goto fail;
	copy_str(h->keyconfig, sizeof(h->keyconfig), to->name);
	copy_str(h->provider, sizeof(h->provider), to->provider);
	copy_str(h->provider_ref, sizeof(h->provider_ref), to->key_ref);
	copy_str(h->cmk_id, sizeof(h->cmk_id), to->cmk_id[0] ? to->cmk_id : to->key_ref);
	r = set_context(h, ctx, err);
	if (!r)
		r = lc_op_guard_check(env->guard, "rekey", err);
	if (!r)
		r = lc_vol_wrap_kek(env, pt, to->key_ref, &kek, ctx, h, v, &rep, err);
	if (r < 0)
		goto fail;
	h->version = LC_HDR_VERSION;
	h->mac_key = mk.p;	/* the same KEK: the same MAC key */
	r = lc_op_guard_enter(env->guard, "rekey", err);
	if (!r) {
		r = lc_header_write_io(&io, h, err);
		lc_op_guard_leave(env->guard);
	}
	h->mac_key = NULL;
	if (r < 0)
		goto fail;
	if (env->seqs && (r = lc_seqstore_record(env->seqs, v->uuid, h->seqno, err)) < 0)
		goto fail;
	copy_str(v->keyconfig, sizeof(v->keyconfig), h->keyconfig);
	copy_str(v->provider, sizeof(v->provider), h->provider);
	copy_str(v->provider_ref, sizeof(v->provider_ref), h->provider_ref);
	copy_str(v->cmk_id, sizeof(v->cmk_id), h->cmk_id);
	copy_str(v->cmk_version, sizeof(v->cmk_version), h->cmk_version);
	lc_info("re-keyed closed volume %s (%s) from key configuration %s to %s", v->uuid, hpath,
		from->name, to->name);
	lc_vol_audit(env, "rekey", LC_AUDIT_SUCCESS, v, &rep, NULL, lc_vol_now_ms() - t0);
	if (out) {
		*out = h;
		copies[h == copies[0] ? 0 : 1] = NULL;
	}
	goto out;
fail:
	lc_vol_audit(env, "rekey", LC_AUDIT_FAILURE, v, NULL, err, lc_vol_now_ms() - t0);
out:
	lc_backing_release(&claim);
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	lc_volume_free(v);
	return r;
}
