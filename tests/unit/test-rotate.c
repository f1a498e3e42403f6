// SPDX-License-Identifier: GPL-2.0
/*
 * Key lifecycle of open volumes (agent/lib/rotate.c): KEK rotation,
 * re-key to another key configuration, per-segment crypto-shred; each
 * header transformation cut by a power loss after every 512-byte sector
 * and at every fsync (the memdisk of test-header.c), after which the
 * volume must open with either its complete old or its complete new keys.
 * Real local KMS and header code; a fake kernel that keeps the DEK each
 * segment was loaded with.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileio.h"
#include "header.h"
#include "kms-local.h"
#include "rotate.h"
#include "volume.h"

#define SEGS		256u
#define SEG_BYTES	4096u
#define KEY_SIZE	64u
#define DEV_BYTES	((1u << 20) + SEGS * SEG_BYTES)
#define DATA_OFF	(1u << 20)
#define AREA		(1u << 20)	/* what a backup of the header area takes */

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
	assert_int_equal(key_size, KEY_SIZE);
	assert_true(first + count <= SEGS);
	memcpy(f->ring + (size_t)first * KEY_SIZE, payloads, (size_t)count * KEY_SIZE);
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
	uint8_t deks[SEGS * KEY_SIZE];	/* the DEKs of the first open */
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
	strcpy(e->dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/lc-rotate-test.XXXXXX" :
	       "/tmp/lc-rotate-test.XXXXXX");
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

/* Format, open, and remember the DEKs the kernel got. */
static struct lc_volume *format_open(struct env *e)
{
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = SEG_BYTES, .key_size = KEY_SIZE };
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), 0);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
	assert_int_equal(v->segments, SEGS);
	for (uint32_t i = 0; i < SEGS; i++)
		assert_true(e->fk.has[i]);
	memcpy(e->deks, e->fk.loaded, sizeof(e->deks));
	e->fk.nmsgs = 0;
	return v;
}

static struct lc_volume *copy_vol(const struct lc_volume *v)
{
	struct lc_volume *c = malloc(sizeof(*c));

	assert_non_null(c);
	*c = *v;
	memset(&c->kek, 0, sizeof(c->kek));
	assert_int_equal(lc_secret_alloc(&c->kek, v->kek.len), 0);
	memcpy(c->kek.p, v->kek.p, v->kek.len);
	return c;
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

/* A record of @op whose text holds @needle. */
static bool audit_line(struct env *e, const char *op, const char *needle)
{
	char *text = NULL, o[64];
	bool hit = false;

	snprintf(o, sizeof(o), "\"op\":\"%s\"", op);
	assert_int_equal(lc_file_read(e->audit_path, &text, NULL, NULL), 0);
	for (char *l = strtok(text, "\n"); l && !hit; l = strtok(NULL, "\n"))
		hit = strstr(l, o) && strstr(l, needle);
	free(text);
	return hit;
}

/* ---- an in-memory disk that can lose power (as in test-header.c) ---- */

#define SECTOR 512

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
	d->dirty = calloc(1, cap / SECTOR + 1);
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
		size_t n = SECTOR - pos % SECTOR;

		if (n > len - done)
			n = len - done;
		if (d->budget == 0) {
			d->dead = true;
			return done ? (ssize_t)done : -EIO;
		}
		if (d->budget > 0)
			d->budget--;
		memcpy(d->img + pos, (const uint8_t *)buf + done, n);
		d->dirty[pos / SECTOR] = 1;
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
	for (size_t s = 0; s < d->cap / SECTOR; s++)
		if (d->dirty[s]) {
			memcpy(d->durable + s * SECTOR, d->img + s * SECTOR, SECTOR);
			d->dirty[s] = 0;
		}
	return 0;
}

/* After power loss: durable data plus the unsynced sectors @mode keeps:
 * 0 all, 1 none, 2 the first half, 3 the second half, >= 4 a random subset. */
static void md_crash(struct memdisk *d, int mode)
{
	size_t n = d->cap / SECTOR, ndirty = 0, k = 0;

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
			memcpy(d->img + s * SECTOR, d->durable + s * SECTOR, SECTOR);
		d->dirty[s] = 0;
	}
	d->dead = false;
}

/* ---- power cuts ---- */

enum xform { X_ROTATE, X_REKEY, X_SHRED };

static int run_xform(struct env *e, enum xform x, struct lc_volume *v,
		     const struct lc_header_io *io, struct lc_error *err)
{
	struct lc_shred_result res;

	switch (x) {
	case X_ROTATE:
		return lc_volume_rotate_kek(&e->venv, v, io, err);
	case X_REKEY:
		return lc_volume_rekey(&e->venv, v, &e->kc2, io, err);
	case X_SHRED:
		/* the header part only: io is the test's storage; the data
		 * range of the file is zeroed for real, which the check
		 * below does not read */
		return lc_volume_shred(&e->venv, v, 3, 7, io, &res, err);
	}
	return -EINVAL;
}

/*
 * Open the volume from @img (the header area) and say whether it holds
 * the old keys (0), the new ones (1) or neither (-1): the DEKs the kernel
 * gets must be the original ones, except shredded segments which get none.
 */
static int which_keys(struct env *e, enum xform x, const uint8_t *img, const uint8_t *old_kek)
{
	const struct lc_keyconfig *kcs[2] = { &e->kc, &e->kc2 };
	struct lc_volume *v = NULL;
	int got = -1;

	write_at(e->dev, img, AREA, 0);
	for (int k = 0; k < (x == X_REKEY ? 2 : 1) && got < 0; k++) {
		struct lc_error err = { 0 };
		bool old, shredded = false, same = true;

		if (open_vol(e, kcs[k], &v, &err) < 0) {
			if (getenv("LC_TEST_VERBOSE"))
				print_message("# open under %s: %s\n", kcs[k]->name, err.msg);
			continue;
		}
		old = !memcmp(v->kek.p, old_kek, LC_KEK_LEN);
		for (uint32_t i = 0; i < SEGS; i++) {
			if (x == X_SHRED && i >= 3 && i <= 7 && !e->fk.has[i]) {
				shredded = true;
				continue;
			}
			same &= e->fk.has[i] &&
				!memcmp(e->fk.loaded + (size_t)i * KEY_SIZE, e->deks + (size_t)i * KEY_SIZE,
					KEY_SIZE);
		}
		switch (x) {
		case X_ROTATE:
			got = same ? !old : -1;
			break;
		case X_REKEY:
			got = same && old ? k : -1;
			break;
		case X_SHRED:
			/* all five shredded with a new KEK, or none with the old */
			got = !same ? -1 : shredded && !old ? 1 : !shredded && old ? 0 : -1;
			if (shredded)
				for (uint32_t i = 3; i <= 7; i++)
					if (e->fk.has[i])
						got = -1;
			break;
		}
		close_vol(e, v);
	}
	return got;
}

static void power_cuts(struct env *e, enum xform x)
{
	struct lc_volume *v = format_open(e);
	uint8_t *base = malloc(AREA), old_kek[LC_KEK_LEN];
	unsigned int images = 0, seen[2] = { 0, 0 };
	uint64_t hdr;
	long sectors;

	assert_non_null(base);
	e->fk.exists = false;	/* the mapping goes; @v keeps the KEK */
	memcpy(old_kek, v->kek.p, LC_KEK_LEN);
	read_at(e->dev, base, AREA, 0);
	assert_int_equal(lc_header_layout(SEGS, KEY_SIZE, &hdr, NULL, NULL, NULL), 0);
	sectors = (long)(2 * ((hdr + SECTOR - 1) / SECTOR) + 2);
	/* budgets: every sector of both copies; then a loss at each fsync */
	for (long b = 0; b <= sectors + 4; b++) {
		for (long syncs = -1; syncs <= (b == 0 ? 3 : -1); syncs++) {
			struct memdisk d;
			struct lc_header_io io = { &d, md_pread, md_pwrite, md_sync };
			struct lc_volume *c;
			long budget = b == 0 ? -1 : b - 1;
			int r;

			if (b == 0 && syncs < 0)
				continue;
			c = copy_vol(v);
			md_init(&d, AREA);
			memcpy(d.img, base, AREA);
			memcpy(d.durable, base, AREA);
			d.budget = budget;
			d.syncs_left = syncs;
			r = run_xform(e, x, c, &io, NULL);
			for (int mode = 0; mode < 8; mode++) {
				uint8_t *img = malloc(AREA);
				struct memdisk m;
				int w;

				md_init(&m, AREA);
				memcpy(m.img, d.img, AREA);
				memcpy(m.durable, d.durable, AREA);
				memcpy(m.dirty, d.dirty, AREA / SECTOR + 1);
				md_crash(&m, mode);
				memcpy(img, m.img, AREA);
				w = which_keys(e, x, img, old_kek);
				if (w < 0)
					fail_msg("budget %ld syncs %ld mode %d (op returned %d): the volume opens with neither the old nor the new keys",
						 budget, syncs, mode, r);
				seen[w]++;
				images++;
				free(img);
				md_free(&m);
			}
			/* A write that completed leaves the new header. */
			if (r == 0)
				assert_int_equal(which_keys(e, x, d.img, old_kek), 1);
			md_free(&d);
			lc_volume_free(c);
		}
	}
	print_message("# %u power-loss images opened: %u with the old keys, %u with the new\n",
		      images, seen[0], seen[1]);
	assert_true(seen[0] > 0 && seen[1] > 0);
	free(base);
	lc_volume_free(v);
}

/* ---- tests ---- */

static void test_rotate_kek(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	struct lc_header *before = NULL, *after = NULL, *copies[2] = { NULL, NULL };
	struct lc_provider_counters cnt;
	struct lc_header_info info;
	struct lc_secret mk = { 0 };
	uint8_t old_kek[LC_KEK_LEN];
	struct lc_error err = { 0 };
	int fd;

	assert_int_equal(lc_header_read_path(e->dev, &before, NULL, &err), 0);
	memcpy(old_kek, v->kek.p, LC_KEK_LEN);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(lc_volume_rotate_kek(&e->venv, v, NULL, &err), 0);
	lc_provider_counters(&e->prov, &cnt);
	assert_int_equal(cnt.wrap, 1);		/* the new KEK under the CMK */
	assert_int_equal(cnt.unwrap, 1);	/* ... read back before the write */
	assert_memory_not_equal(v->kek.p, old_kek, LC_KEK_LEN);
	/* Online: nothing was said to the kernel. */
	assert_int_equal(e->fk.nmsgs, 0);
	/* Both copies hold the new header, sealed by the new KEK only. */
	fd = open(e->dev, O_RDONLY);
	assert_int_equal(lc_header_read_copies(fd, copies, &info, &err), 0);
	close(fd);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	after = copies[0];
	assert_int_equal(after->seqno, before->seqno + 1);
	assert_false(after->wrapped_kek.len == before->wrapped_kek.len &&
		     !memcmp(after->wrapped_kek.p, before->wrapped_kek.p, after->wrapped_kek.len));
	assert_int_equal(lc_header_mac_key(&v->kek, after->uuid, &mk, NULL), 0);
	assert_int_equal(lc_header_verify(after, mk.p, NULL), 0);
	lc_secret_free(&mk);
	{
		struct lc_secret ok = { 0 };

		assert_int_equal(lc_secret_alloc(&ok, LC_KEK_LEN), 0);
		memcpy(ok.p, old_kek, LC_KEK_LEN);
		assert_int_equal(lc_header_mac_key(&ok, after->uuid, &mk, NULL), 0);
		assert_int_equal(lc_header_verify(after, mk.p, NULL), -EBADMSG);
		/* no DEK record opens under the old KEK any more */
		for (uint32_t i = 0; i < SEGS; i++) {
			uint8_t dek[KEY_SIZE];

			assert_int_equal(after->deks[i].generation, before->deks[i].generation);
			assert_int_equal(lc_dek_unwrap(&ok, after->uuid, i, &after->deks[i], KEY_SIZE,
						       dek, NULL), -EBADMSG);
		}
		lc_secret_free(&ok);
		lc_secret_free(&mk);
	}
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	lc_header_free(before);
	/* Re-open: the same DEKs, from the new KEK. */
	close_vol(e, v);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
	assert_memory_equal(e->fk.loaded, e->deks, sizeof(e->deks));
	assert_memory_not_equal(v->kek.p, old_kek, LC_KEK_LEN);
	close_vol(e, v);
	assert_true(audit_has(e, "rotate-kek", "success"));
}

static void test_rekey(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	struct lc_header *h = NULL;
	struct lc_provider_counters cnt;
	uint8_t kek[LC_KEK_LEN];
	struct lc_error err = { 0 };

	memcpy(kek, v->kek.p, LC_KEK_LEN);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(lc_volume_rekey(&e->venv, v, &e->kc2, NULL, &err), 0);
	lc_provider_counters(&e->prov, &cnt);
	assert_int_equal(cnt.wrap, 1);
	assert_int_equal(cnt.unwrap, 1);	/* the new blob read back */
	/* What the watcher matches a volume by now names the new CMK. */
	assert_string_equal(v->keyconfig, "kc2");
	assert_string_equal(v->provider_ref, e->kc2.key_ref);
	assert_string_equal(v->cmk_id, e->kc2.cmk_id);
	assert_memory_equal(v->kek.p, kek, LC_KEK_LEN);	/* the KEK itself stays */
	assert_int_equal(e->fk.nmsgs, 0);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	assert_string_equal(h->keyconfig, "kc2");
	assert_string_equal(h->provider_ref, e->kc2.key_ref);
	assert_non_null(strstr((const char *)h->wrap_context.p, ";keyconfig=kc2"));
	lc_header_free(h);
	/* Again: already there, nothing written. */
	assert_int_equal(lc_volume_rekey(&e->venv, v, &e->kc2, NULL, &err), -EALREADY);
	close_vol(e, v);
	/* The old CMK can go: the volume opens under the new binding only. */
	assert_int_equal(lc_kms_local_disable(e->kms, e->kc.key_ref, NULL, &err), 0);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), -EPERM);
	assert_int_equal(open_vol(e, &e->kc2, &v, &err), 0);
	assert_memory_equal(e->fk.loaded, e->deks, sizeof(e->deks));
	close_vol(e, v);
	assert_true(audit_has(e, "rekey", "success"));
	/* the wrap is recorded as the new CMK's */
	assert_true(audit_line(e, "cmk.wrap", e->kc2.key_ref));
}

static void test_shred(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	struct lc_header *copies[2] = { NULL, NULL };
	struct lc_header_info info;
	struct lc_shred_result res;
	struct lc_seqstore seqs;
	struct lc_error err = { 0 };
	uint8_t *data = malloc(SEGS * SEG_BYTES), *backup = malloc(AREA), *now;
	int fd;

	assert_true(data && backup);
	assert_int_equal(lc_seqstore_open(&seqs, e->dir, &err), 0);
	e->venv.seqs = &seqs;
	assert_int_equal(lc_seqstore_record(&seqs, v->uuid, 1, &err), 0);
	/* stand-in ciphertext in the data area, and a backup of the header */
	for (size_t i = 0; i < SEGS * SEG_BYTES; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	write_at(e->dev, data, SEGS * SEG_BYTES, DATA_OFF);
	read_at(e->dev, backup, AREA, 0);

	assert_int_equal(lc_volume_shred(&e->venv, v, 10, 19, NULL, &res, &err), 0);
	assert_true(res.wiped && res.zeroed);
	assert_int_equal(res.offset, DATA_OFF + 10 * SEG_BYTES);
	assert_int_equal(res.length, 10 * SEG_BYTES);
	/* the kernel forgot exactly those keys */
	assert_string_equal(e->fk.msgs[0], "key wipe 10-19");
	for (uint32_t i = 0; i < SEGS; i++)
		assert_int_equal(e->fk.has[i], i < 10 || i > 19);
	/* both header copies: records destroyed, every other one opens */
	fd = open(e->dev, O_RDONLY);
	assert_int_equal(lc_header_read_copies(fd, copies, &info, &err), 0);
	close(fd);
	for (int c = 0; c < 2; c++) {
		assert_non_null(copies[c]);
		for (uint32_t i = 0; i < SEGS; i++)
			assert_int_equal(lc_dek_is_shredded(&copies[c]->deks[i], KEY_SIZE),
					 i >= 10 && i <= 19);
		assert_int_equal(lc_header_shredded(copies[c], SEGS), 10);
	}
	lc_header_free(copies[0]);
	lc_header_free(copies[1]);
	/* the ciphertext is gone, the rest untouched */
	now = malloc(SEGS * SEG_BYTES);
	read_at(e->dev, now, SEGS * SEG_BYTES, DATA_OFF);
	for (size_t i = 0; i < SEGS * SEG_BYTES; i++) {
		bool in = i >= 10 * SEG_BYTES && i < 20 * SEG_BYTES;

		if (in ? now[i] != 0 : now[i] != data[i])
			fail_msg("byte %zu of the data area: %u", i, now[i]);
	}
	/* close and reopen: no key for segments 10-19, all others as before */
	close_vol(e, v);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
	for (uint32_t i = 0; i < SEGS; i++) {
		assert_int_equal(e->fk.has[i], i < 10 || i > 19);
		if (e->fk.has[i])
			assert_memory_equal(e->fk.loaded + (size_t)i * KEY_SIZE,
					    e->deks + (size_t)i * KEY_SIZE, KEY_SIZE);
	}
	/* a KEK rotation keeps the holes */
	assert_int_equal(lc_volume_rotate_kek(&e->venv, v, NULL, &err), 0);
	close_vol(e, v);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
	assert_false(e->fk.has[15]);
	assert_true(e->fk.has[20]);
	close_vol(e, v);

	/* An attacker restores the whole header area from the backup. */
	write_at(e->dev, backup, AREA, 0);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), -ESTALE);	/* rollback memory */
	assert_null(v);
	/* ... and with another agent (no memory of this volume) that can
	 * still use the CMK: the old DEKs come back, the data does not. */
	e->venv.seqs = NULL;
	assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
	assert_true(e->fk.has[15]);
	read_at(e->dev, now, 10 * SEG_BYTES, DATA_OFF + 10 * SEG_BYTES);
	for (size_t i = 0; i < 10 * SEG_BYTES; i++)
		assert_int_equal(now[i], 0);
	close_vol(e, v);
	lc_seqstore_close(&seqs);
	assert_true(audit_has(e, "shred", "success"));
	free(now);
	free(data);
	free(backup);
}

static void test_shred_refusals(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	struct lc_shred_result res;
	struct lc_error err = { 0 };
	uint32_t a, b;

	assert_int_equal(lc_volume_shred(&e->venv, v, 5, SEGS, NULL, &res, &err), -EINVAL);
	assert_int_equal(lc_volume_shred(&e->venv, v, 9, 8, NULL, &res, &err), -EINVAL);
	/* a revoked volume: nothing sent, nothing written */
	e->fk.nmsgs = 0;
	v->revoked = true;
	assert_int_equal(lc_volume_shred(&e->venv, v, 1, 1, NULL, &res, &err), -EKEYREVOKED);
	assert_int_equal(e->fk.nmsgs, 0);
	v->revoked = false;
	/* a KEK the agent does not hold */
	lc_secret_free(&v->kek);
	v->have_kek = false;
	assert_int_equal(lc_volume_rotate_kek(&e->venv, v, NULL, &err), -ENOKEY);
	close_vol(e, v);
	/* ranges */
	assert_int_equal(lc_segment_range_parse("7", &a, &b, NULL), 0);
	assert_true(a == 7 && b == 7);
	assert_int_equal(lc_segment_range_parse("2-4095", &a, &b, NULL), 0);
	assert_true(a == 2 && b == 4095);
	assert_int_equal(lc_segment_range_parse("4-2", &a, &b, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "reversed"));
}

static void test_range_parse(void **state)
{
	static const char *const bad[] = { "", "-1", "1-", "a", "1-2-3", "1 ", " 1", "4294967296",
					   "0x10", "1--2", "+3" };
	uint32_t a, b;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(lc_segment_range_parse(bad[i], &a, &b, NULL), -EINVAL);
	assert_int_equal(lc_segment_range_parse("4294967295", &a, &b, NULL), 0);
	assert_int_equal(a, UINT32_MAX);
}

static void test_wrong_kek_changes_nothing(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	uint8_t *before = malloc(AREA), *after = malloc(AREA);
	struct lc_error err = { 0 };

	read_at(e->dev, before, AREA, 0);
	v->kek.p[0] ^= 1;	/* not this header's KEK */
	assert_int_equal(lc_volume_rotate_kek(&e->venv, v, NULL, &err), -EBADMSG);
	assert_int_equal(lc_volume_rekey(&e->venv, v, &e->kc2, NULL, &err), -EBADMSG);
	read_at(e->dev, after, AREA, 0);
	assert_memory_equal(before, after, AREA);
	assert_true(audit_has(e, "rotate-kek", "failure"));
	v->kek.p[0] ^= 1;
	/* a CMK the KMS refuses: the header stays as it was */
	assert_int_equal(lc_kms_local_disable(e->kms, e->kc2.key_ref, NULL, &err), 0);
	assert_int_equal(lc_volume_rekey(&e->venv, v, &e->kc2, NULL, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_string_equal(v->keyconfig, "kc1");
	read_at(e->dev, after, AREA, 0);
	assert_memory_equal(before, after, AREA);
	close_vol(e, v);
	free(before);
	free(after);
}

/* A closed volume re-keyed on its own, after its workspace moved. */
static void test_rekey_closed(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	struct lc_open_args oa = { .device = e->dev, .workspace = "ws1", .kc = &e->kc2 };
	struct lc_provider_counters cnt;
	struct lc_header *h = NULL;
	struct lc_seqstore seqs;
	struct lc_error err = { 0 };
	uint8_t *backup = malloc(AREA);

	close_vol(e, v);
	read_at(e->dev, backup, AREA, 0);
	assert_int_equal(lc_seqstore_open(&seqs, e->dir, &err), 0);
	e->venv.seqs = &seqs;
	/* not under the key configuration named */
	assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &e->kc2, NULL, &err), -EINVAL);
	{
		struct lc_keyconfig other = e->kc2;

		snprintf(other.name, sizeof(other.name), "kc3");
		assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &other, NULL, &err), -EPERM);
		assert_non_null(strstr(err.msg, "not kc3"));
	}
	oa.workspace = "ws2";
	assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &e->kc, NULL, &err), -EPERM);
	oa.workspace = "ws1";
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &e->kc, &h, &err), 0);
	lc_provider_counters(&e->prov, &cnt);
	assert_int_equal(cnt.unwrap, 2);	/* the old blob, and the new one read back */
	assert_int_equal(cnt.wrap, 1);
	assert_string_equal(h->keyconfig, "kc2");
	lc_header_free(h);
	assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &e->kc, NULL, &err), -EALREADY);
	/* opens under kc2 only, with kc1's CMK disabled, with the same DEKs */
	assert_int_equal(lc_kms_local_disable(e->kms, e->kc.key_ref, NULL, &err), 0);
	assert_int_equal(open_vol(e, &e->kc, &v, &err), -EPERM);
	assert_int_equal(open_vol(e, &e->kc2, &v, &err), 0);
	assert_memory_equal(e->fk.loaded, e->deks, sizeof(e->deks));
	close_vol(e, v);
	/* the header from before is refused: rollback memory */
	assert_int_equal(lc_kms_local_enable(e->kms, e->kc.key_ref, NULL, &err), 0);
	write_at(e->dev, backup, AREA, 0);
	assert_int_equal(lc_volume_rekey_closed(&e->venv, &oa, &e->kc, NULL, &err), -ESTALE);
	e->venv.seqs = NULL;
	lc_seqstore_close(&seqs);
	assert_true(audit_has(e, "rekey", "success"));
	assert_true(audit_has(e, "rekey", "failure"));
	free(backup);
}


/* ---- a KMS that lies about a wrap ---- */

/* LIE_CORRUPT: "success" with a blob nobody can unwrap; LIE_OTHER_KEY:
 * "success" with a good blob of another key; LIE_DENY_UNWRAP: the wrap is
 * honest but the read-back is refused. */
enum lie { LIE_CORRUPT, LIE_OTHER_KEY, LIE_DENY_UNWRAP };
static const struct lc_provider_ops *honest_ops;
static enum lie lie_mode;
static unsigned int lie_wraps;

static int lying_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		      const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_secret other = { 0 };
	int r;

	lie_wraps++;
	if (lie_mode != LIE_OTHER_KEY) {
		r = honest_ops->wrap(priv, key_ref, pt, context, timeout_ms, blob, reply, err);
		if (!r && lie_mode == LIE_CORRUPT && blob->len)
			blob->p[blob->len - 1] ^= 1;
		return r;
	}
	assert_int_equal(lc_secret_alloc(&other, pt->len), 0);
	memcpy(other.p, pt->p, pt->len);
	other.p[0] ^= 0x80;
	r = honest_ops->wrap(priv, key_ref, &other, context, timeout_ms, blob, reply, err);
	lc_secret_free(&other);
	return r;
}

static int lying_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			struct lc_provider_reply *reply, struct lc_error *err)
{
	if (lie_mode == LIE_DENY_UNWRAP && lie_wraps)
		return lc_err(err, -EPERM, LC_ERRC_DENIED, "AccessDeniedException: kms:Decrypt");
	return honest_ops->unwrap(priv, key_ref, blob, context, timeout_ms, pt, reply, err);
}

static struct lc_provider_ops lying_ops;

static void lie(struct env *e, enum lie mode)
{
	honest_ops = e->prov.ops;
	lying_ops = *honest_ops;
	lying_ops.wrap = lying_wrap;
	lying_ops.unwrap = lying_unwrap;
	lie_mode = mode;
	lie_wraps = 0;
	e->prov.ops = &lying_ops;
}

static void honest(struct env *e)
{
	e->prov.ops = honest_ops;
}

/* Every header-writing re-wrap of the KEK (rotate-kek, shred, rekey,
 * re-key of a closed volume, rewrap, format) under each lie: an error
 * naming the read-back, a failed "cmk.verify" audit record, not one byte
 * of the header area written, the caller's volume unchanged, and the
 * volume opens with its DEKs once the KMS is honest again. */
static void test_lying_kms(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	uint8_t *before = malloc(AREA), *now = malloc(AREA), kek[LC_KEK_LEN];
	struct lc_open_args oa = { .device = e->dev, .workspace = "ws1", .kc = &e->kc2 };
	struct lc_shred_result res;
	struct lc_header *h = NULL;

	assert_true(before && now);
	read_at(e->dev, before, AREA, 0);
	memcpy(kek, v->kek.p, LC_KEK_LEN);
	for (int m = LIE_CORRUPT; m <= LIE_DENY_UNWRAP; m++) {
		for (int op = 0; op < 5; op++) {
			struct lc_error err = { 0 };
			int r;

			lie(e, (enum lie)m);
			switch (op) {
			case 0: r = lc_volume_rotate_kek(&e->venv, v, NULL, &err); break;
			case 1: r = lc_volume_rekey(&e->venv, v, &e->kc2, NULL, &err); break;
			case 2: r = lc_volume_rewrap(&e->venv, v, &err); break;
			case 3:	/* shred: the kernel forgets first; the header must not */
				r = lc_volume_shred(&e->venv, v, 3, 4, NULL, &res, &err);
				break;
			default:
				close_vol(e, v);
				v = NULL;
				r = lc_volume_rekey_closed(&e->venv, &oa, &e->kc, &h, &err);
				break;
			}
			honest(e);
			assert_int_equal(lie_wraps, 1);
			assert_int_not_equal(r, 0);
			assert_non_null(strstr(err.msg, "reading the wrapped key back failed"));
			assert_non_null(strstr(err.msg, "nothing was written"));
			assert_int_equal(err.cls, m == LIE_DENY_UNWRAP ? LC_ERRC_DENIED : LC_ERRC_INVALID);
			assert_null(h);
			read_at(e->dev, now, AREA, 0);
			assert_memory_equal(now, before, AREA);
			if (v) {
				assert_memory_equal(v->kek.p, kek, LC_KEK_LEN);
				assert_string_equal(v->keyconfig, "kc1");
				close_vol(e, v);
			}
			assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
			/* a shred's kernel wipe happened; the reopen reloads */
			assert_memory_equal(e->fk.loaded, e->deks, sizeof(e->deks));
		}
	}
	close_vol(e, v);
	assert_true(audit_has(e, "cmk.verify", "failure"));
	assert_true(audit_has(e, "rotate-kek", "failure"));
	assert_true(audit_has(e, "rekey", "failure"));
	/* format under a lying KMS: refused, and nothing formatted */
	{
		struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db9",
					     .segment_size = SEG_BYTES, .key_size = KEY_SIZE,
					     .force = true };
		struct lc_error err = { 0 };

		lie(e, LIE_CORRUPT);
		assert_int_not_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), 0);
		honest(e);
		assert_non_null(strstr(err.msg, "reading the wrapped key back failed"));
		read_at(e->dev, now, AREA, 0);
		assert_memory_equal(now, before, AREA);
	}
	/* and an honest KMS: the read-back is recorded as a success */
	v = NULL;
	{
		struct lc_error err = { 0 };

		assert_int_equal(open_vol(e, &e->kc, &v, &err), 0);
		assert_int_equal(lc_volume_rotate_kek(&e->venv, v, NULL, &err), 0);
		close_vol(e, v);
	}
	assert_true(audit_has(e, "cmk.verify", "success"));
	free(before);
	free(now);
}

/* ---- the kill switch during an operation (opguard.h) ---- */

static struct lc_op_guard *kill_guard;

/* The revocation comes while the KMS wraps the new key. */
static int killing_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
			const char *context, uint64_t timeout_ms, struct lc_buf *blob,
			struct lc_provider_reply *reply, struct lc_error *err)
{
	assert_true(lc_op_guard_abort(kill_guard, "test kill", 1000));
	return honest_ops->wrap(priv, key_ref, pt, context, timeout_ms, blob, reply, err);
}

/* rotate-kek, rekey, rewrap, shred and the re-key of a closed volume,
 * each revoked while its wrap call runs: -EKEYREVOKED "aborted: the CMK
 * was revoked", no header byte written, the volume unchanged; and a guard
 * aborted before the start costs not even a KMS call. */
static void test_kill_aborts(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = format_open(e);
	uint8_t *before = malloc(AREA), *now = malloc(AREA), kek[LC_KEK_LEN];
	struct lc_open_args oa = { .device = e->dev, .workspace = "ws1", .kc = &e->kc2 };
	struct lc_provider_counters cnt;
	struct lc_shred_result res;
	struct lc_op_guard g;
	struct lc_header *h = NULL;

	assert_true(before && now);
	read_at(e->dev, before, AREA, 0);
	memcpy(kek, v->kek.p, LC_KEK_LEN);
	for (int op = 0; op < 5; op++) {
		struct lc_error err = { 0 };
		int r;

		lc_op_guard_init(&g);
		kill_guard = &g;
		e->venv.guard = &g;
		honest_ops = e->prov.ops;
		lying_ops = *honest_ops;
		lying_ops.wrap = killing_wrap;
		e->prov.ops = &lying_ops;
		switch (op) {
		case 0: r = lc_volume_rotate_kek(&e->venv, v, NULL, &err); break;
		case 1: r = lc_volume_rekey(&e->venv, v, &e->kc2, NULL, &err); break;
		case 2: r = lc_volume_rewrap(&e->venv, v, &err); break;
		case 3: r = lc_volume_shred(&e->venv, v, 3, 4, NULL, &res, &err); break;
		default:
			close_vol(e, v);
			v = NULL;
			r = lc_volume_rekey_closed(&e->venv, &oa, &e->kc, &h, &err);
			break;
		}
		honest(e);
		e->venv.guard = NULL;
		assert_int_equal(r, -EKEYREVOKED);
		assert_int_equal(err.cls, LC_ERRC_DENIED);
		assert_non_null(strstr(err.msg, "aborted: the CMK was revoked (test kill)"));
		assert_null(h);
		read_at(e->dev, now, AREA, 0);
		assert_memory_equal(now, before, AREA);
		if (v) {
			assert_memory_equal(v->kek.p, kek, LC_KEK_LEN);
			assert_string_equal(v->keyconfig, "kc1");
		}
		/* aborted before the start: no KMS call at all */
		if (v) {
			lc_provider_counters_reset(&e->prov);
			e->venv.guard = &g;
			assert_int_equal(lc_volume_rotate_kek(&e->venv, v, NULL, &err), -EKEYREVOKED);
			e->venv.guard = NULL;
			lc_provider_counters(&e->prov, &cnt);
			assert_int_equal(cnt.wrap + cnt.unwrap, 0);
		}
		lc_op_guard_destroy(&g);
	}
	assert_int_equal(open_vol(e, &e->kc, &v, NULL), 0);
	close_vol(e, v);
	assert_true(audit_has(e, "rekey", "failure"));
	free(before);
	free(now);
}

static void test_power_cut_rotate(void **state)
{
	power_cuts(*state, X_ROTATE);
}

static void test_power_cut_rekey(void **state)
{
	power_cuts(*state, X_REKEY);
}

static void test_power_cut_shred(void **state)
{
	power_cuts(*state, X_SHRED);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_rotate_kek),
		T(test_rekey),
		T(test_shred),
		T(test_shred_refusals),
		cmocka_unit_test(test_range_parse),
		T(test_wrong_kek_changes_nothing),
		T(test_rekey_closed),
		T(test_power_cut_rotate),
		T(test_power_cut_rekey),
		T(test_power_cut_shred),
		T(test_lying_kms),
		T(test_kill_aborts),
	};

	lc_log_open("test-rotate", 0, LC_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
