// SPDX-License-Identifier: GPL-2.0
/*
 * DEK re-key of segments of a closed volume (agent/lib/segrekey.c): the
 * data re-encrypted under a new DEK with generation + 1, checked by
 * decrypting with OpenSSL's AES-XTS under the DEK the (fake) kernel gets at
 * the next open; and the whole write sequence (header writes and data
 * sector writes) cut by a power loss after every write unit and at every
 * fsync, each cut followed by a resume: the data must then be exactly the
 * original plaintext under the new DEK, and a cut before the commit point
 * must leave the old DEK and the old data valid.  Real local KMS and header
 * code; the fake kernel of test-rotate.c keeps the DEK each segment got.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/loop.h>
#include <openssl/evp.h>

#include "fileio.h"
#include "header.h"
#include "kms-local.h"
#include "rotate.h"
#include "segrekey.h"
#include "volume.h"

#define SEGS		4u
#define SEG_BYTES	65536u
#define KEY_SIZE	64u
#define DATA_OFF	(1u << 20)
#define DEV_BYTES	(DATA_OFF + SEGS * SEG_BYTES)


/* ---- the fake kernel: which DEK each segment holds ---- */

struct fake {
	bool exists, revoked;
	char name[64];
	uint8_t ring[SEGS * KEY_SIZE];	/* keyring: keys added, not yet loaded */
	bool in_ring[SEGS];
	uint8_t loaded[SEGS * KEY_SIZE];	/* the target's keys */
	bool has[SEGS];
	char msgs[16][64];
	size_t nmsgs;
};

static int f_kr_open(void *ctx, struct lc_keyring *kr, const char *name, const char *prefix,
		     struct lc_error *err)
{
	(void)ctx;
	(void)name;
	(void)err;
	memset(kr, 0, sizeof(*kr));
	kr->ring = 1;
	snprintf(kr->prefix, sizeof(kr->prefix), "%s", prefix);
	return 0;
}

static int f_kr_add(void *ctx, struct lc_keyring *kr, uint32_t first, uint32_t count,
		    const uint8_t *payloads, size_t key_size, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)kr;
	(void)err;
	assert_true(key_size <= KEY_SIZE);	/* 32 or 64: kept KEY_SIZE apart */
	assert_true(first + count <= SEGS);
	for (uint32_t i = 0; i < count; i++) {
		memset(f->ring + (size_t)(first + i) * KEY_SIZE, 0, KEY_SIZE);
		memcpy(f->ring + (size_t)(first + i) * KEY_SIZE, payloads + i * key_size, key_size);
	}
	for (uint32_t i = first; i < first + count; i++)
		f->in_ring[i] = true;
	return 0;
}

static int f_kr_drop(void *ctx, struct lc_keyring *kr, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)kr;
	(void)err;
	memset(f->in_ring, 0, sizeof(f->in_ring));
	memset(f->ring, 0, sizeof(f->ring));
	return 0;
}

static void f_kr_close(void *ctx, struct lc_keyring *kr)
{
	(void)ctx;
	kr->ring = 0;
}

static int f_kr_purge(void *ctx, unsigned int *removed, unsigned int *left, struct lc_error *err)
{
	(void)ctx;
	(void)err;
	if (removed)
		*removed = 0;
	if (left)
		*left = 0;
	return 0;
}

static int f_dm_create(void *ctx, const char *name, const char *uuid, const char *line,
		       struct lc_error *err)
{
	struct fake *f = ctx;

	(void)uuid;
	(void)line;
	if (f->exists)
		return lc_err(err, -EEXIST, LC_ERRC_INVALID, "exists");
	f->exists = true;
	f->revoked = false;
	snprintf(f->name, sizeof(f->name), "%s", name);
	memset(f->has, 0, sizeof(f->has));
	return 0;
}

static int f_dm_message(void *ctx, const char *name, const char *msg, struct lc_error *err)
{
	struct fake *f = ctx;
	uint32_t a, b;

	if (f->nmsgs < 16)
		snprintf(f->msgs[f->nmsgs++], sizeof(f->msgs[0]), "%s", msg);
	if (!f->exists || strcmp(name, f->name))
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	if (!strcmp(msg, "key load all")) {
		a = 0;
		b = SEGS - 1;
	} else if (sscanf(msg, "key load %u-%u", &a, &b) == 2 ||
		   sscanf(msg, "key wipe %u-%u", &a, &b) == 2) {
		assert_true(a <= b && b < SEGS);
	} else {
		fail_msg("unexpected message \"%s\"", msg);
		return -EINVAL;
	}
	for (uint32_t i = a; i <= b; i++) {
		if (!strncmp(msg, "key wipe", 8)) {
			f->has[i] = false;
			memset(f->loaded + (size_t)i * KEY_SIZE, 0, KEY_SIZE);
			continue;
		}
		/* the kernel's lookup: the key must be in the keyring */
		assert_true(f->in_ring[i]);
		memcpy(f->loaded + (size_t)i * KEY_SIZE, f->ring + (size_t)i * KEY_SIZE, KEY_SIZE);
		f->has[i] = true;
	}
	return 0;
}

static int f_dm_status(void *ctx, const char *name, struct lc_dm_status *st, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)name;
	(void)err;
	memset(st, 0, sizeof(*st));
	st->state = f->revoked ? LC_DM_STATE_REVOKED : LC_DM_STATE_ACTIVE;
	return 0;
}

static int f_dm_remove(void *ctx, const char *name, struct lc_error *err)
{
	struct fake *f = ctx;

	if (!f->exists || strcmp(name, f->name))
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device");
	f->exists = false;
	memset(f->has, 0, sizeof(f->has));
	memset(f->loaded, 0, sizeof(f->loaded));
	return 0;
}

static int f_dm_list(void *ctx, struct lc_dm_device **devs, size_t *n, struct lc_error *err)
{
	(void)ctx;
	(void)err;
	*devs = NULL;
	*n = 0;
	return 0;
}

static const struct lc_volume_backend fake_backend = {
	.name = "fake", .regular_files = true,
	.kr_open = f_kr_open, .kr_add = f_kr_add, .kr_drop = f_kr_drop, .kr_close = f_kr_close,
	.kr_purge = f_kr_purge, .dm_create = f_dm_create, .dm_message = f_dm_message,
	.dm_status = f_dm_status, .dm_remove = f_dm_remove, .dm_list = f_dm_list,
};

/* ---- fixture ---- */

struct env {
	char dir[64], kms_dir[96], dev[96], audit_path[96];
	struct lc_kms_local *kms;
	struct lc_provider prov;
	struct lc_audit audit;
	struct fake fk;
	struct lc_volume_env venv;
	struct lc_keyconfig kc, kc2;
	uint8_t deks[SEGS * KEY_SIZE];	/* the DEKs before the re-key */
	uint32_t ss, key_size;		/* the volume's sector and key size */
	uint8_t *ct0;			/* the data area before the re-key */
	uint8_t *pt;			/* its plaintext under e->deks */
};

static struct lc_provider *get_provider(void *ctx, const char *kind)
{
	struct env *e = ctx;

	return !strcmp(kind, "local") ? &e->prov : NULL;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void make_kc(struct env *e, struct lc_keyconfig *kc, const char *name)
{
	struct lc_kms_key_info info;

	assert_int_equal(lc_kms_local_create(e->kms, name, &info, NULL), 0);
	memset(kc, 0, sizeof(*kc));
	snprintf(kc->name, sizeof(kc->name), "%s", name);
	snprintf(kc->provider, sizeof(kc->provider), "local");
	snprintf(kc->key_ref, sizeof(kc->key_ref), "%s", info.key_id);
	snprintf(kc->cmk_id, sizeof(kc->cmk_id), "%s", info.key_id);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct lc_error err = { 0 };
	int fd;

	/* In memory where there is /dev/shm: thousands of opens, each of
	 * which may repair (fsync) a header copy. */
	strcpy(e->dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/lc-segrekey-test.XXXXXX" :
	       "/tmp/lc-segrekey-test.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->kms_dir, sizeof(e->kms_dir), "%s/kms", e->dir);
	snprintf(e->dev, sizeof(e->dev), "%s/disk.img", e->dir);
	snprintf(e->audit_path, sizeof(e->audit_path), "%s/audit.log", e->dir);
	assert_int_equal(lc_kms_local_open(&e->kms, e->kms_dir, &err), 0);
	lc_kms_local_provider_init(&e->prov, e->kms);
	assert_int_equal(lc_audit_open(&e->audit, e->audit_path, false, &err), 0);
	e->venv.be = &fake_backend;
	e->venv.be_ctx = &e->fk;
	e->venv.provider = get_provider;
	e->venv.provider_ctx = e;
	e->venv.audit = &e->audit;
	e->venv.peer_uid = 0;
	make_kc(e, &e->kc, "kc1");
	make_kc(e, &e->kc2, "kc2");
	fd = open(e->dev, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DEV_BYTES), 0);
	close(fd);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	lc_provider_close(&e->prov);
	lc_kms_local_close(e->kms);
	lc_audit_close(&e->audit);
	free(e->ct0);
	free(e->pt);
	nftw(e->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

static int open_vol(struct env *e, const struct lc_keyconfig *kc, struct lc_volume **v,
		    struct lc_error *err)
{
	struct lc_open_args oa = { .device = e->dev, .workspace = "ws1", .name = "vol1", .kc = kc };

	return lc_volume_open(&e->venv, &oa, v, err);
}

static void close_vol(struct env *e, struct lc_volume *v)
{
	assert_int_equal(lc_volume_close(&e->venv, v, NULL), 0);
	lc_volume_free(v);
}

static void read_at(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void write_at(const char *path, const void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* A record of @op with @outcome in the audit log. */
static bool audit_has(struct env *e, const char *op, const char *outcome)
{
	char *text = NULL, o[64], w[64];
	bool hit = false;

	snprintf(o, sizeof(o), "\"op\":\"%s\"", op);
	snprintf(w, sizeof(w), "\"outcome\":\"%s\"", outcome);
	assert_int_equal(lc_file_read(e->audit_path, &text, NULL, NULL), 0);
	for (char *l = strtok(text, "\n"); l && !hit; l = strtok(NULL, "\n"))
		hit = strstr(l, o) && strstr(l, w);
	free(text);
	return hit;
}

/* ---- an in-memory disk that can lose power (as in test-header.c) ---- */

static size_t md_unit = 512;	/* what the disk writes atomically */

struct memdisk {
	uint8_t *img, *durable, *dirty;
	size_t size, cap;
	long budget, syncs_left;
	bool dead;
};

static uint64_t rng_state;

static uint8_t rnd8(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint8_t)(rng_state >> 56);
}

static void md_init(struct memdisk *d, size_t cap)
{
	memset(d, 0, sizeof(*d));
	d->cap = d->size = cap;
	d->img = calloc(1, cap);
	d->durable = calloc(1, cap);
	d->dirty = calloc(1, cap / md_unit + 1);
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

static ssize_t md_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct memdisk *d = ctx;

	if (off >= d->size)
		return 0;
	if (len > d->size - off)
		len = d->size - off;
	memcpy(buf, d->img + off, len);
	return (ssize_t)len;
}

static ssize_t md_pwrite(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct memdisk *d = ctx;
	size_t done = 0;

	if (d->dead)
		return -EIO;
	assert_true(off + len <= d->cap);
	while (done < len) {
		uint64_t pos = off + done;
		size_t n = md_unit - pos % md_unit;

		if (n > len - done)
			n = len - done;
		if (d->budget == 0) {
			d->dead = true;
			return done ? (ssize_t)done : -EIO;
		}
		if (d->budget > 0)
			d->budget--;
		memcpy(d->img + pos, (const uint8_t *)buf + done, n);
		d->dirty[pos / md_unit] = 1;
		done += n;
	}
	return (ssize_t)done;
}

static int md_sync(void *ctx)
{
	struct memdisk *d = ctx;

	if (d->dead)
		return -EIO;
	if (d->syncs_left == 0) {
		d->dead = true;
		return -EIO;
	}
	if (d->syncs_left > 0)
		d->syncs_left--;
	for (size_t s = 0; s < d->cap / md_unit; s++)
		if (d->dirty[s]) {
			memcpy(d->durable + s * md_unit, d->img + s * md_unit, md_unit);
			d->dirty[s] = 0;
		}
	return 0;
}

/* After power loss: durable data plus the unsynced sectors @mode keeps:
 * 0 all, 1 none, 2 the first half, 3 the second half, >= 4 a random subset. */
static void md_crash(struct memdisk *d, int mode)
{
	size_t n = d->cap / md_unit, ndirty = 0, k = 0;

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
			memcpy(d->img + s * md_unit, d->durable + s * md_unit, md_unit);
		d->dirty[s] = 0;
	}
	d->dead = false;
}


static void md_copy(struct memdisk *dst, const struct memdisk *src)
{
	md_init(dst, src->cap);
	memcpy(dst->img, src->img, src->cap);
	memcpy(dst->durable, src->durable, src->cap);
	memcpy(dst->dirty, src->dirty, src->cap / md_unit + 1);
}

static struct lc_header_io md_io(struct memdisk *d)
{
	return (struct lc_header_io){ d, md_pread, md_pwrite, md_sync };
}

/* ---- AES-XTS with OpenSSL, independent of segrekey.c ---- */

/* En-/decrypt @len bytes of segment @seg in place, sector by sector, with
 * the plain64 IV of dm-crypt (512-byte sectors from the data area). */
static void xts(const uint8_t *key, uint32_t key_size, bool enc, uint32_t ss, uint32_t seg,
		uint8_t *buf, size_t len)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	const EVP_CIPHER *ci = key_size == 64 ? EVP_aes_256_xts() : EVP_aes_128_xts();

	assert_non_null(c);
	for (size_t off = 0; off < len; off += ss) {
		uint64_t sector = (uint64_t)seg * (SEG_BYTES / 512) + off / 512;
		uint8_t iv[16] = { 0 };
		int n = 0, f = 0;

		for (int i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sector >> (8 * i));
		assert_int_equal(EVP_CipherInit_ex(c, ci, NULL, key, iv, enc), 1);
		assert_int_equal(EVP_CipherUpdate(c, buf + off, &n, buf + off, (int)ss), 1);
		assert_int_equal(EVP_CipherFinal_ex(c, buf + off + n, &f), 1);
		assert_int_equal(n + f, (int)ss);
	}
	EVP_CIPHER_CTX_free(c);
}

static struct lc_open_args args(struct env *e)
{
	return (struct lc_open_args){ .device = e->dev, .workspace = "ws1", .name = "vol1",
				      .kc = &e->kc };
}

/* The DEKs the kernel gets at an open of the file: 0, or the open's error. */
static int learn_deks(struct env *e, uint8_t *deks, struct lc_error *err)
{
	struct lc_volume *v = NULL;
	int r = open_vol(e, &e->kc, &v, err);

	if (r < 0)
		return r;
	memcpy(deks, e->fk.loaded, SEGS * KEY_SIZE);
	close_vol(e, v);
	return 0;
}

/* Format with @ss-byte sectors and @cipher, fill the data area with random
 * ciphertext, remember it, its plaintext and the DEKs. */
static void format_fill(struct env *e, uint32_t ss, const char *cipher, uint32_t key_size)
{
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = SEG_BYTES, .key_size = key_size,
				     .sector_size = ss, .cipher = cipher, .force = true };
	struct lc_error err = { 0 };

	e->ss = ss;
	e->key_size = key_size;
	if (lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err) < 0)
		fail_msg("format: %s", err.msg);
	free(e->ct0);
	free(e->pt);
	e->ct0 = malloc(SEGS * SEG_BYTES);
	e->pt = malloc(SEGS * SEG_BYTES);
	assert_true(e->ct0 && e->pt);
	rng_state = 12345;
	for (size_t i = 0; i < SEGS * SEG_BYTES; i++)
		e->ct0[i] = rnd8();
	write_at(e->dev, e->ct0, SEGS * SEG_BYTES, DATA_OFF);
	if (!cipher) {
		assert_int_equal(learn_deks(e, e->deks, &err), 0);
		memcpy(e->pt, e->ct0, SEGS * SEG_BYTES);
		for (uint32_t s = 0; s < SEGS; s++)
			xts(e->deks + s * KEY_SIZE, key_size, false, ss, s,
			    e->pt + (size_t)s * SEG_BYTES, SEG_BYTES);
	}
}

static uint32_t generation_of(struct env *e, uint32_t seg)
{
	struct lc_header *h = NULL;
	uint32_t g;

	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
	g = h->deks[seg].generation;
	lc_header_free(h);
	return g;
}

/*
 * The state of the file's volume for segments [first, last]: 0 = old keys
 * and old data everywhere, 1 = new DEKs for all of them with the original
 * plaintext under them (others untouched), 2 = a re-key in progress (open
 * refused, saying so), -1 = anything else.  @newdeks receives the DEKs.
 */
static int state(struct env *e, uint32_t first, uint32_t last, uint8_t *newdeks)
{
	uint8_t deks[SEGS * KEY_SIZE], *data = malloc(SEGS * SEG_BYTES);
	struct lc_error err = { 0 };
	int st = -1, r;
	bool all_old = true, all_new = true;

	assert_non_null(data);
	r = learn_deks(e, deks, &err);
	if (r == -EBUSY && strstr(err.msg, "in progress") && strstr(err.msg, "--resume")) {
		free(data);
		return 2;
	}
	if (r < 0) {
		print_message("# open: %s\n", err.msg);
		free(data);
		return -1;
	}
	read_at(e->dev, data, SEGS * SEG_BYTES, DATA_OFF);
	for (uint32_t s = 0; s < SEGS; s++) {
		uint8_t *d = data + (size_t)s * SEG_BYTES;
		bool same = !memcmp(deks + s * KEY_SIZE, e->deks + s * KEY_SIZE, KEY_SIZE);
		bool old = same && !memcmp(d, e->ct0 + (size_t)s * SEG_BYTES, SEG_BYTES);

		if (s < first || s > last) {
			if (!old)
				goto out;
			continue;
		}
		all_old &= old;
		if (same) {
			all_new = false;
			continue;
		}
		xts(deks + s * KEY_SIZE, e->key_size, false, e->ss, s, d, SEG_BYTES);
		all_new &= !memcmp(d, e->pt + (size_t)s * SEG_BYTES, SEG_BYTES) &&
			   generation_of(e, s) == 2;
	}
	st = all_old ? 0 : all_new ? 1 : -1;
	if (newdeks)
		memcpy(newdeks, deks, sizeof(deks));
out:
	free(data);
	return st;
}

static int rekey(struct env *e, uint32_t first, uint32_t last, bool resume,
		 struct lc_segrekey_result *res, struct lc_error *err)
{
	struct lc_open_args oa = args(e);

	return lc_segment_rekey(&e->venv, &oa, first, last, resume, NULL, res, err);
}

/* ---- tests ---- */

static void test_rekey_one_segment(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	uint8_t deks[SEGS * KEY_SIZE];

	format_fill(e, 512, NULL, KEY_SIZE);
	assert_int_equal(state(e, 2, 2, NULL), 0);
	if (rekey(e, 2, 2, false, &res, &err) < 0)
		fail_msg("rekey: %s", err.msg);
	assert_int_equal(res.rekeyed, 1);
	assert_int_equal(res.generation, 2);
	assert_int_equal(res.sectors, SEG_BYTES / 512);
	assert_false(res.resumed);
	assert_int_equal(state(e, 2, 2, deks), 1);
	assert_int_equal(generation_of(e, 1), 1);
	assert_true(audit_has(e, "rekey-segment", "success"));
	/* the header is version 2 again, the journal gone */
	{
		struct lc_header *h = NULL;

		assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
		assert_int_equal(h->version, LC_HDR_VERSION);
		assert_false(h->journal.active);
		lc_header_free(h);
	}
	/* again: generation 3, the same plaintext */
	memcpy(e->deks, deks, sizeof(deks));
	read_at(e->dev, e->ct0, SEGS * SEG_BYTES, DATA_OFF);
	assert_int_equal(rekey(e, 2, 2, false, &res, &err), 0);
	assert_int_equal(res.generation, 3);
	assert_int_equal(learn_deks(e, deks, &err), 0);
	{
		uint8_t *d = malloc(SEG_BYTES);

		read_at(e->dev, d, SEG_BYTES, DATA_OFF + 2 * SEG_BYTES);
		xts(deks + 2 * KEY_SIZE, KEY_SIZE, false, 512, 2, d, SEG_BYTES);
		assert_memory_equal(d, e->pt + 2 * SEG_BYTES, SEG_BYTES);
		free(d);
	}
}

/* 4096-byte sectors, 32-byte keys (AES-128-XTS), a range. */
static void test_rekey_range_4096(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };

	format_fill(e, 4096, NULL, 32);
	if (rekey(e, 1, 3, false, &res, &err) < 0)
		fail_msg("rekey: %s", err.msg);
	assert_int_equal(res.rekeyed, 3);
	assert_int_equal(res.sectors, 3 * SEG_BYTES / 4096);
	assert_int_equal(state(e, 1, 3, NULL), 1);
	assert_int_equal(generation_of(e, 0), 1);
}

static void test_refusals(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	struct lc_open_args oa = args(e);
	struct lc_header *h = NULL;
	uint64_t seq;

	format_fill(e, 512, NULL, KEY_SIZE);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
	seq = h->seqno;
	lc_header_free(h);
	assert_int_equal(rekey(e, 2, SEGS, false, &res, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "has segments 0-3"));
	assert_int_equal(rekey(e, 3, 2, false, &res, &err), -EINVAL);
	assert_int_equal(rekey(e, 2, 2, true, &res, &err), -EALREADY);
	assert_non_null(strstr(err.msg, "no re-key in progress"));
	oa.workspace = "ws2";
	assert_int_equal(lc_segment_rekey(&e->venv, &oa, 0, 0, false, NULL, &res, &err), -EPERM);
	oa = args(e);
	oa.kc = &e->kc2;
	assert_int_equal(lc_segment_rekey(&e->venv, &oa, 0, 0, false, NULL, &res, &err), -EPERM);
	assert_non_null(strstr(err.msg, "bound to kc2"));
	oa = args(e);
	oa.header = e->audit_path;	/* not a header */
	assert_true(lc_segment_rekey(&e->venv, &oa, 0, 0, false, NULL, &res, &err) < 0);
	assert_true(audit_has(e, "rekey-segment", "failure"));
	/* nothing was written */
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
	assert_int_equal(h->seqno, seq);
	lc_header_free(h);
	assert_int_equal(state(e, 0, SEGS - 1, NULL), 0);

	/* a shredded segment has no DEK to replace */
	{
		struct lc_volume *v = NULL;
		struct lc_shred_result sr;

		assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
		assert_int_equal(lc_volume_shred(&e->venv, v, 1, 1, NULL, &sr, &err), 0);
		close_vol(e, v);
		assert_int_equal(rekey(e, 0, 1, false, &res, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "shredded"));
		assert_int_equal(generation_of(e, 0), 1);
	}

	/* Adiantum: OpenSSL has no Adiantum, refused before anything is written */
	format_fill(e, 512, "xchacha12,aes-adiantum-plain64", 32);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
	seq = h->seqno;
	lc_header_free(h);
	assert_int_equal(rekey(e, 0, 0, false, &res, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "xchacha12,aes-adiantum-plain64"));
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
	assert_int_equal(h->seqno, seq);
	assert_int_equal(h->version, LC_HDR_VERSION);
	lc_header_free(h);
}

/* The process dies (no power loss): the open refuses the volume and says
 * how to resume; resume finishes it; the wrong way to resume is refused. */
static void test_interrupted_then_resumed(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };

	format_fill(e, 512, NULL, KEY_SIZE);
	lc_segrekey_stop_after(70);	/* in the second zone of segment 1 */
	assert_int_equal(rekey(e, 1, 2, false, &res, &err), -EINTR);
	lc_segrekey_stop_after(0);
	assert_int_equal(res.sectors, 69);
	assert_int_equal(state(e, 0, 0, NULL), 2);
	assert_int_equal(rekey(e, 1, 2, false, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "segment 1 in progress"));
	assert_int_equal(rekey(e, 2, 3, true, &res, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "outside 2-3"));
	{
		struct lc_header *h = NULL;

		assert_int_equal(lc_header_read_path(e->dev, &h, NULL, NULL), 0);
		assert_int_equal(h->version, LC_HDR_VERSION_V3);
		assert_int_equal(h->journal.segment, 1);
		assert_int_equal(h->journal.done, 64);
		assert_int_equal(h->journal.zone, 64);
		lc_header_free(h);
	}
	/* nor is it moved to another key configuration meanwhile */
	{
		struct lc_open_args oa = args(e);

		oa.kc = &e->kc2;
		assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &e->kc, NULL, &err), -EBUSY);
		assert_non_null(strstr(err.msg, "segment 1 in progress"));
	}
	if (rekey(e, 1, 2, true, &res, &err) < 0)
		fail_msg("resume: %s", err.msg);
	assert_true(res.resumed);
	assert_int_equal(res.resumed_segment, 1);
	assert_int_equal(res.rekeyed, 2);
	/* 64 - 5 of the interrupted zone, then segment 2 */
	assert_int_equal(res.sectors, 59 + SEG_BYTES / 512);
	assert_int_equal(state(e, 1, 2, NULL), 1);
}

/* --resume with a range wider than what was interrupted (cut in segment 2
 * of 2-3, resumed with 0-3): it finishes 2 and 3 only, and says so in its
 * result and its audit record instead of claiming 0-3. */
static void test_resume_wider_range(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	char *log = NULL;

	format_fill(e, 512, NULL, KEY_SIZE);
	lc_segrekey_stop_after(70);
	assert_int_equal(rekey(e, 2, 3, false, &res, &err), -EINTR);
	lc_segrekey_stop_after(0);
	if (rekey(e, 0, 3, true, &res, &err) < 0)
		fail_msg("resume: %s", err.msg);
	assert_true(res.resumed);
	assert_int_equal(res.asked_first, 0);
	assert_int_equal(res.asked_last, 3);
	assert_int_equal(res.first, 2);
	assert_int_equal(res.last, 3);
	assert_int_equal(res.rekeyed, 2);
	for (uint32_t s = 0; s < SEGS; s++)
		assert_int_equal(generation_of(e, s), s >= 2 ? 2 : 1);
	assert_int_equal(lc_file_read(e->audit_path, &log, NULL, NULL), 0);
	assert_non_null(strstr(log, "segments 2-3: 2 re-keyed (resumed); 0-1 asked for, not re-keyed"));
	free(log);
	assert_int_equal(state(e, 2, 3, NULL), 1);
}

/* The volume named by the backing file of a loop device: refused while
 * the loop device is in use (held O_EXCL, as a mapping or a mount holds
 * it), and while another operation holds the file's lock; allowed once
 * the loop device is idle.  Needs root and /dev/loop-control (the unit
 * suite runs as root, as the agent does): without them the test fails. */
static void test_loop_backing_file(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	char loop[64];
	int ctl, n, lfd, ffd, hold, lk;

	format_fill(e, 512, NULL, KEY_SIZE);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		fail_msg("/dev/loop-control: %s (the unit tests run as root with loop devices)",
			 strerror(errno));
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	assert_true(n >= 0);
	close(ctl);
	snprintf(loop, sizeof(loop), "/dev/loop%d", n);
	lfd = open(loop, O_RDWR | O_CLOEXEC);
	assert_true(lfd >= 0);
	ffd = open(e->dev, O_RDWR | O_CLOEXEC);
	assert_true(ffd >= 0);
	assert_int_equal(ioctl(lfd, LOOP_SET_FD, ffd), 0);
	close(ffd);
	/* in use: a mapping or a mount holds the loop device exclusively */
	hold = open(loop, O_RDONLY | O_EXCL | O_CLOEXEC);
	assert_true(hold >= 0);
	assert_int_equal(rekey(e, 1, 1, false, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "is the backing file of"));
	assert_non_null(strstr(err.msg, loop));
	assert_int_equal(generation_of(e, 1), 1);
	close(hold);
	/* another operation on the same file */
	lk = open(e->dev, O_RDONLY | O_CLOEXEC);
	assert_true(lk >= 0);
	assert_int_equal(flock(lk, LOCK_EX), 0);
	assert_int_equal(rekey(e, 1, 1, false, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "locked by another operation"));
	close(lk);
	/* the loop device idle: re-keyed (held exclusively meanwhile) */
	if (rekey(e, 1, 1, false, &res, &err) < 0)
		fail_msg("rekey with an idle loop device: %s", err.msg);
	assert_int_equal(generation_of(e, 1), 2);
	assert_int_equal(ioctl(lfd, LOOP_CLR_FD, 0), 0);
	close(lfd);
	assert_int_equal(state(e, 1, 1, NULL), 1);
}

/* A sector of the zone that is neither old nor new ciphertext (a torn
 * write, damage): resume refuses, names it, and leaves the journal. */
static void test_torn_sector_refused(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	uint8_t junk[512];

	format_fill(e, 512, NULL, KEY_SIZE);
	lc_segrekey_stop_after(10);
	assert_int_equal(rekey(e, 2, 2, false, &res, &err), -EINTR);
	lc_segrekey_stop_after(0);
	memset(junk, 0xa5, sizeof(junk));
	write_at(e->dev, junk, sizeof(junk), DATA_OFF + 2 * SEG_BYTES + 20 * 512);
	assert_int_equal(rekey(e, 2, 2, true, &res, &err), -EIO);
	assert_non_null(strstr(err.msg, "sector 20"));
	assert_non_null(strstr(err.msg, "neither the old nor the new"));
	assert_int_equal(state(e, 0, 0, NULL), 2);
}

/* The administrator's way out of a damaged sector in the interrupted zone
 * (else the volume never opens again): --accept-damaged-journal-sector N
 * with --resume gives up that sector only; another sector, one outside
 * the zone, or no resume is refused; every other sector of the segment
 * keeps its data; the audit record says what was given up. */
static void test_accept_damaged_sector(void **state_)
{
	struct env *e = *state_;
	struct lc_segrekey_opts o = { .resume = true, .accept_damaged = true };
	struct lc_open_args oa = args(e);
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	uint8_t junk[512], deks[SEGS * KEY_SIZE], *seg = malloc(SEG_BYTES);
	uint64_t off = DATA_OFF + 2 * SEG_BYTES + 20 * 512;
	char *log = NULL;

	assert_non_null(seg);
	format_fill(e, 512, NULL, KEY_SIZE);
	lc_segrekey_stop_after(10);
	assert_int_equal(rekey(e, 2, 2, false, &res, &err), -EINTR);
	lc_segrekey_stop_after(0);
	memset(junk, 0xa5, sizeof(junk));
	write_at(e->dev, junk, sizeof(junk), off);
	assert_int_equal(rekey(e, 2, 2, true, &res, &err), -EIO);
	assert_non_null(strstr(err.msg, "--accept-damaged-journal-sector 20"));
	o.damaged_sector = 64;	/* the zone is sectors 0-63 */
	assert_int_equal(lc_segment_rekey_opts(&e->venv, &oa, 2, 2, &o, NULL, &res, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not in the zone being re-keyed (sectors 0-63 of segment 2)"));
	o.damaged_sector = 21;	/* not the damaged one */
	assert_int_equal(lc_segment_rekey_opts(&e->venv, &oa, 2, 2, &o, NULL, &res, &err), -EIO);
	assert_non_null(strstr(err.msg, "sector 20"));
	assert_int_equal(state(e, 0, 0, NULL), 2);	/* still refused at open */
	o.damaged_sector = 20;
	if (lc_segment_rekey_opts(&e->venv, &oa, 2, 2, &o, NULL, &res, &err) < 0)
		fail_msg("accept: %s", err.msg);
	assert_true(res.damaged_accepted);
	assert_int_equal(res.damaged_offset, off);
	assert_int_equal(generation_of(e, 2), 2);
	/* opens; segment 2 has its data back but for sector 20 */
	assert_int_equal(learn_deks(e, deks, &err), 0);
	read_at(e->dev, seg, SEG_BYTES, DATA_OFF + 2 * SEG_BYTES);
	xts(deks + 2 * KEY_SIZE, KEY_SIZE, false, 512, 2, seg, SEG_BYTES);
	for (uint32_t k = 0; k < SEG_BYTES / 512; k++)
		if (k == 20)
			assert_memory_not_equal(seg + k * 512, e->pt + 2 * SEG_BYTES + k * 512, 512);
		else
			assert_memory_equal(seg + k * 512, e->pt + 2 * SEG_BYTES + k * 512, 512);
	assert_int_equal(lc_file_read(e->audit_path, &log, NULL, NULL), 0);
	assert_non_null(strstr(log, "damaged sector at byte"));
	assert_non_null(strstr(log, "accepted: its data may be lost"));
	free(log);
	free(seg);
}

/* A detached header: the journal in the header file, the data on the device. */
static void test_detached_header(void **state_)
{
	struct env *e = *state_;
	char hdr[160];
	struct lc_format_args fa = { .device = e->dev, .header = hdr, .workspace = "ws1",
				     .project = "db1", .segment_size = SEG_BYTES,
				     .key_size = KEY_SIZE, .force = true };
	struct lc_open_args oa = args(e);
	struct lc_segrekey_result res;
	struct lc_error err = { 0 };
	struct lc_volume *v = NULL;
	struct lc_header *h = NULL;
	uint8_t deks[SEGS * KEY_SIZE], *ct = malloc(SEG_BYTES), *pt = malloc(SEG_BYTES);
	uint64_t off;

	assert_true(ct && pt);
	snprintf(hdr, sizeof(hdr), "%s/detached.hdr", e->dir);
	assert_int_equal(truncate(e->dev, SEGS * SEG_BYTES), 0);	/* data from 0 */
	if (lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err) < 0)
		fail_msg("format: %s", err.msg);
	assert_int_equal(lc_header_read_path(hdr, &h, NULL, NULL), 0);
	off = h->data_offset * 512 + SEG_BYTES;	/* segment 1 */
	lc_header_free(h);
	oa.header = hdr;
	assert_int_equal(lc_volume_open(&e->venv, &oa, &v, &err), 0);
	memcpy(deks, e->fk.loaded, sizeof(deks));
	close_vol(e, v);
	rng_state = 99;
	for (size_t i = 0; i < SEG_BYTES; i++)
		ct[i] = rnd8();
	write_at(e->dev, ct, SEG_BYTES, off);
	memcpy(pt, ct, SEG_BYTES);
	xts(deks + KEY_SIZE, KEY_SIZE, false, 512, 1, pt, SEG_BYTES);
	/* without the header, the device holds no header at all */
	assert_true(rekey(e, 1, 1, false, &res, &err) < 0);
	if (lc_segment_rekey(&e->venv, &oa, 1, 1, false, NULL, &res, &err) < 0)
		fail_msg("rekey: %s", err.msg);
	assert_int_equal(lc_volume_open(&e->venv, &oa, &v, &err), 0);
	assert_memory_not_equal(e->fk.loaded + KEY_SIZE, deks + KEY_SIZE, KEY_SIZE);
	assert_memory_equal(e->fk.loaded, deks, KEY_SIZE);
	read_at(e->dev, ct, SEG_BYTES, off);
	xts(e->fk.loaded + KEY_SIZE, KEY_SIZE, false, 512, 1, ct, SEG_BYTES);
	assert_memory_equal(ct, pt, SEG_BYTES);
	close_vol(e, v);
	free(ct);
	free(pt);
}

/*
 * Power cuts: every write unit (md_unit bytes) of every header and data
 * write, and every fsync, of a re-key of segment 2; after each cut the
 * disk keeps some of what was not synced (all, none, halves, random).
 * Then the volume must open with the old DEK and the old data (a cut
 * before the commit point that leaves no journal), or with the new DEK
 * and the original plaintext, or say that a re-key is in progress, in
 * which case a resume must succeed and give the new state.
 */
static void crash_all(struct env *e, uint32_t ss, size_t unit, unsigned int *checked,
		      unsigned int seen[3])
{
	static const int modes[] = { 0, 1, 2, 3, 4, 5 };
	uint8_t *base = malloc(DEV_BYTES);

	md_unit = unit;
	format_fill(e, ss, NULL, KEY_SIZE);
	assert_non_null(base);
	read_at(e->dev, base, DEV_BYTES, 0);
	for (int kind = 0; kind < 2; kind++) {
		for (long k = 0;; k++) {
			struct memdisk d;
			struct lc_header_io io = md_io(&d);
			struct lc_segrekey_io sio = { &io, &io, DEV_BYTES };
			struct lc_open_args oa = args(e);
			struct lc_segrekey_result res;
			struct lc_error err = { 0 };
			int r;

			md_init(&d, DEV_BYTES);
			memcpy(d.img, base, DEV_BYTES);
			memcpy(d.durable, base, DEV_BYTES);
			if (kind == 0)
				d.budget = k;
			else
				d.syncs_left = k;
			r = lc_segment_rekey(&e->venv, &oa, 2, 2, false, &sio, &res, &err);
			if (r == 0) {
				assert_false(d.dead);
				write_at(e->dev, d.img, DEV_BYTES, 0);
				assert_int_equal(state(e, 2, 2, NULL), 1);
				md_free(&d);
				break;
			}
			if (!d.dead)
				fail_msg("failed without a cut (k %ld): %s", k, err.msg);
			for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
				struct memdisk c;
				int st;

				md_copy(&c, &d);
				md_crash(&c, modes[m]);
				write_at(e->dev, c.img, DEV_BYTES, 0);
				md_free(&c);
				st = state(e, 2, 2, NULL);
				if (st < 0 || st > 2) {
					fail_msg("cut %s %ld, mode %d: neither old nor new",
						 kind ? "before fsync" : "after unit", k, modes[m]);
					break;
				}
				seen[st]++;
				if (st == 2) {
					if (rekey(e, 2, 2, true, &res, &err) < 0)
						fail_msg("cut %ld mode %d: resume: %s", k, modes[m], err.msg);
					if (state(e, 2, 2, NULL) != 1)
						fail_msg("cut %ld mode %d: resumed, but not the new state", k,
							 modes[m]);
				}
				(*checked)++;
			}
			md_free(&d);
		}
	}
	free(base);
}

static void test_crash_every_write(void **state_)
{
	struct env *e = *state_;
	unsigned int checked = 0, seen[3] = { 0, 0, 0 };

	crash_all(e, 512, 512, &checked, seen);
	print_message("# 512-byte sectors: %u cut images: %u old, %u new, %u resumed\n", checked,
		      seen[0], seen[1], seen[2]);
	/* every kind of outcome happened */
	assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
	memset(seen, 0, sizeof(unsigned int) * 3);
	checked = 0;
	/* 4096-byte sectors on a disk that writes 4 KiB atomically */
	crash_all(e, 4096, 4096, &checked, seen);
	print_message("# 4096-byte sectors: %u cut images: %u old, %u new, %u resumed\n", checked,
		      seen[0], seen[1], seen[2]);
	assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
	md_unit = 512;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rekey_one_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_range_4096, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_then_resumed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_wider_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_backing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_damaged_sector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_sector_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detached_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_every_write, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
