// SPDX-License-Identifier: GPL-2.0
/*
 * Volumes without a kernel: format, open, cache, close, re-wrap, revoke
 * and rediscovery against the real local KMS and header code, with a fake
 * device-mapper/keyring backend that records the table line, every
 * message and the keys in the keyring when "key load" arrives.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypttab.h"
#include "fileio.h"
#include "header.h"
#include "kms-local.h"
#include "volume.h"

#define MAX_MSGS 64
#define MAX_DEVS 8

struct fake_dev {
	char name[128], uuid[160];
	char *line;
	bool revoked;
	bool suspended;			/* a reload whose resume was refused */
	uint32_t keys_loaded;
};

/* The fake kernel. */
struct fake {
	struct fake_dev devs[MAX_DEVS];
	size_t ndevs;
	unsigned int creates, removes, purges, kr_opens, kr_closes;
	char *msgs[MAX_MSGS];
	size_t nmsgs;
	uint32_t ring_keys;		/* keys in the keyring now */
	uint32_t ring_max;		/* most at once */
	uint32_t ring_first;		/* first segment of the last add */
	char ring_prefix[LAKECRYPT_MAX_KEY_PREFIX + 1];
	unsigned int fail_message_at;	/* n-th message fails (0: never) */
	int fail_create;		/* dm_create returns this if < 0 */
	int fail_reload;		/* dm_reload returns this once if < 0 */
	bool refuse_resume;		/* next reload: swapped in, resume refused */
	unsigned int reloads, resumes;
	unsigned int announces;		/* dm_announce calls */
	uint32_t announced_keys;	/* keys the device had when announced */
	int fail_announce;		/* dm_announce returns this if < 0 */
	char last_line[1024];
};

struct env {
	char dir[64], kms_dir[96], dev[96], hdr[96], audit_path[96];
	struct lc_kms_local *kms;
	struct lc_provider prov;
	struct lc_audit audit;
	struct fake fk;
	struct lc_volume_env venv;
	char key_id[LC_KMS_LOCAL_ID_LEN + 1];
	struct lc_keyconfig kc;
};

/* ---- fake backend ---- */

static struct fake_dev *find_dev(struct fake *f, const char *name)
{
	for (size_t i = 0; i < f->ndevs; i++)
		if (!strcmp(f->devs[i].name, name))
			return &f->devs[i];
	return NULL;
}

static int f_kr_open(void *ctx, struct lc_keyring *kr, const char *name, const char *prefix,
		     struct lc_error *err)
{
	struct fake *f = ctx;

	(void)err;
	(void)name;
	memset(kr, 0, sizeof(*kr));
	kr->ring = 1;
	snprintf(kr->prefix, sizeof(kr->prefix), "%s", prefix);
	snprintf(f->ring_prefix, sizeof(f->ring_prefix), "%s", prefix);
	f->kr_opens++;
	return 0;
}

static int f_kr_add(void *ctx, struct lc_keyring *kr, uint32_t first, uint32_t count,
		    const uint8_t *payloads, size_t key_size, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)kr;
	(void)err;
	assert_non_null(payloads);
	assert_true(key_size >= 16);
	f->ring_keys += count;
	f->ring_first = first;
	if (f->ring_keys > f->ring_max)
		f->ring_max = f->ring_keys;
	return 0;
}

static int f_kr_drop(void *ctx, struct lc_keyring *kr, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)kr;
	(void)err;
	f->ring_keys = 0;
	return 0;
}

static void f_kr_close(void *ctx, struct lc_keyring *kr)
{
	struct fake *f = ctx;

	f->ring_keys = 0;
	f->kr_closes++;
	kr->ring = 0;
}

static int f_kr_purge(void *ctx, unsigned int *removed, unsigned int *left, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)err;
	f->purges++;
	if (removed)
		*removed = f->ring_keys;
	if (left)
		*left = 0;
	f->ring_keys = 0;
	return 0;
}

static int f_dm_create(void *ctx, const char *name, const char *uuid, const char *line,
		       struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d;

	f->creates++;
	if (f->fail_create)
		return lc_err(err, f->fail_create, LC_ERRC_INTERNAL, "injected create failure");
	if (find_dev(f, name))
		return lc_err(err, -EEXIST, LC_ERRC_INVALID, "exists");
	assert_true(f->ndevs < MAX_DEVS);
	d = &f->devs[f->ndevs++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->uuid, sizeof(d->uuid), LC_DM_UUID_PREFIX "%s", uuid);
	d->line = strdup(line);
	snprintf(f->last_line, sizeof(f->last_line), "%s", line);
	return 0;
}

static uint32_t line_segments(const char *line)
{
	uint64_t len = 0, seg = 0;
	char cipher[128], key[256];

	assert_int_equal(sscanf(line, "0 %" SCNu64 " lakecrypt %127s %255s %" SCNu64, &len, cipher,
				key, &seg), 4);
	return (uint32_t)(len / seg + !!(len % seg));
}

static int f_dm_message(void *ctx, const char *name, const char *msg, struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d = find_dev(f, name);
	uint32_t a, b;

	if (f->nmsgs < MAX_MSGS)
		f->msgs[f->nmsgs++] = strdup(msg);
	if (!d)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	if (f->fail_message_at && f->nmsgs == f->fail_message_at)
		return lc_err(err, -ENOKEY, LC_ERRC_INTERNAL, "injected message failure");
	if (!strcmp(msg, "revoke")) {
		d->revoked = true;
		d->keys_loaded = 0;
		return 0;
	}
	if (d->revoked)
		return lc_err(err, -EPERM, LC_ERRC_INVALID, "revoked");
	/* "key load": the keyring must hold exactly the range, right now. */
	if (!strcmp(msg, "key load all")) {
		assert_int_equal(f->ring_keys, line_segments(d->line));
		d->keys_loaded = f->ring_keys;
	} else if (sscanf(msg, "key load %u-%u", &a, &b) == 2) {
		assert_int_equal(f->ring_first, a);
		assert_int_equal(f->ring_keys, b - a + 1);
		assert_true(b < line_segments(d->line));
		d->keys_loaded += f->ring_keys;
		/* the same bytes again are a no-op in the target */
		if (d->keys_loaded > line_segments(d->line))
			d->keys_loaded = line_segments(d->line);
	} else {
		fail_msg("unexpected message \"%s\"", msg);
	}
	/* The keys carry the volume's prefix. */
	assert_non_null(strstr(d->line, f->ring_prefix));
	return 0;
}

/* The target's reload: same volume, keys carried over (dropped beyond a
 * shrunk length), new segments without a key. */
static int f_dm_reload(void *ctx, const char *name, const char *line, struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d = find_dev(f, name);
	uint32_t segs = line_segments(line);

	f->reloads++;
	if (!d)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	if (f->fail_reload) {
		int r = f->fail_reload;

		f->fail_reload = 0;
		return lc_err(err, r, LC_ERRC_INVALID, "injected reload failure");
	}
	free(d->line);
	d->line = strdup(line);
	snprintf(f->last_line, sizeof(f->last_line), "%s", line);
	if (f->refuse_resume) {
		f->refuse_resume = false;
		d->suspended = true;
		d->keys_loaded = 0;
		return lc_err(err, -EAGAIN, LC_ERRC_INVALID, "injected: resume refused");
	}
	if (d->keys_loaded > segs)
		d->keys_loaded = segs;
	return 0;
}

static int f_dm_resume(void *ctx, const char *name, struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d = find_dev(f, name);

	f->resumes++;
	if (!d)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	assert_int_equal(d->keys_loaded, line_segments(d->line));
	d->suspended = false;
	return 0;
}

static int f_dm_announce(void *ctx, const char *name, struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d = find_dev(f, name);

	f->announces++;
	if (!d)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	f->announced_keys = d->keys_loaded;
	if (f->fail_announce)
		return lc_err(err, f->fail_announce, LC_ERRC_INVALID, "injected announce failure");
	return 0;
}

static int f_dm_status(void *ctx, const char *name, struct lc_dm_status *st, struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d = find_dev(f, name);

	if (!d)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	memset(st, 0, sizeof(*st));
	st->state = d->revoked ? LC_DM_STATE_REVOKED : LC_DM_STATE_ACTIVE;
	st->segments = line_segments(d->line);
	st->keys_loaded = d->keys_loaded;
	return 0;
}

static int f_dm_remove(void *ctx, const char *name, struct lc_error *err)
{
	struct fake *f = ctx;
	struct fake_dev *d = find_dev(f, name);

	f->removes++;
	if (!d)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "no device %s", name);
	free(d->line);
	*d = f->devs[--f->ndevs];
	return 0;
}

static int f_dm_list(void *ctx, struct lc_dm_device **devs, size_t *n, struct lc_error *err)
{
	struct fake *f = ctx;

	(void)err;
	*devs = calloc(f->ndevs + 1, sizeof(**devs));
	for (size_t i = 0; i < f->ndevs; i++) {
		snprintf((*devs)[i].name, sizeof((*devs)[i].name), "%s", f->devs[i].name);
		snprintf((*devs)[i].uuid, sizeof((*devs)[i].uuid), "%s", f->devs[i].uuid);
	}
	*n = f->ndevs;
	return 0;
}

static const struct lc_volume_backend fake_backend = {
	.name = "fake", .regular_files = true,
	.kr_open = f_kr_open, .kr_add = f_kr_add, .kr_drop = f_kr_drop, .kr_close = f_kr_close,
	.kr_purge = f_kr_purge, .dm_create = f_dm_create, .dm_message = f_dm_message,
	.dm_reload = f_dm_reload, .dm_resume = f_dm_resume, .dm_announce = f_dm_announce,
	.dm_status = f_dm_status, .dm_remove = f_dm_remove, .dm_list = f_dm_list,
};

/* ---- fixture ---- */

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

static void make_file(const char *path, uint64_t bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)bytes), 0);
	close(fd);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct lc_kms_key_info info;
	struct lc_error err = { 0 };

	strcpy(e->dir, "/tmp/lc-volume-test.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->kms_dir, sizeof(e->kms_dir), "%s/kms", e->dir);
	snprintf(e->dev, sizeof(e->dev), "%s/disk.img", e->dir);
	snprintf(e->hdr, sizeof(e->hdr), "%s/disk.hdr", e->dir);
	snprintf(e->audit_path, sizeof(e->audit_path), "%s/audit.log", e->dir);
	assert_int_equal(lc_kms_local_open(&e->kms, e->kms_dir, &err), 0);
	assert_int_equal(lc_kms_local_create(e->kms, "test", &info, &err), 0);
	strcpy(e->key_id, info.key_id);
	lc_kms_local_provider_init(&e->prov, e->kms);
	assert_int_equal(lc_audit_open(&e->audit, e->audit_path, false, &err), 0);
	e->venv.be = &fake_backend;
	e->venv.be_ctx = &e->fk;
	e->venv.provider = get_provider;
	e->venv.provider_ctx = e;
	e->venv.audit = &e->audit;
	e->venv.peer_uid = 1000;
	snprintf(e->kc.name, sizeof(e->kc.name), "kc1");
	snprintf(e->kc.provider, sizeof(e->kc.provider), "local");
	snprintf(e->kc.key_ref, sizeof(e->kc.key_ref), "%s", e->key_id);
	snprintf(e->kc.cmk_id, sizeof(e->kc.cmk_id), "%s", e->key_id);
	/* 1 MiB header area + 4,096 segments of 4 KiB */
	make_file(e->dev, (1u << 20) + 4096u * 4096u);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < e->fk.nmsgs; i++)
		free(e->fk.msgs[i]);
	for (size_t i = 0; i < e->fk.ndevs; i++)
		free(e->fk.devs[i].line);
	lc_provider_close(&e->prov);
	lc_kms_local_close(e->kms);
	lc_audit_close(&e->audit);
	nftw(e->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

static void clear_msgs(struct env *e)
{
	for (size_t i = 0; i < e->fk.nmsgs; i++)
		free(e->fk.msgs[i]);
	e->fk.nmsgs = 0;
}

static struct lc_provider_counters counters(struct env *e)
{
	struct lc_provider_counters c;

	lc_provider_counters(&e->prov, &c);
	return c;
}

static void format_dev(struct env *e, uint64_t seg, const char *header, struct lc_header **out)
{
	struct lc_format_args fa = { .device = e->dev, .header = header, .workspace = "ws1",
				     .project = "db1", .segment_size = seg };
	struct lc_error err = { 0 };

	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, out, &err), 0);
}

static int open_vol(struct env *e, const char *ws, const char *header, struct lc_volume **v,
		    struct lc_error *err)
{
	struct lc_open_args oa = { .device = e->dev, .header = header, .workspace = ws,
				   .name = "vol1", .kc = &e->kc };

	return lc_volume_open(&e->venv, &oa, v, err);
}

static char *slurp(const char *path)
{
	char *text = NULL;

	assert_int_equal(lc_file_read(path, &text, NULL, NULL), 0);
	return text;
}

/* ---- tests ---- */

static void test_format_roundtrip(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL, *back = NULL;
	struct lc_header_info info;
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = 4096 };
	struct lc_error err = { 0 };
	char ctx[LC_KEK_CONTEXT_MAX];

	format_dev(e, 4096, NULL, &h);
	assert_int_equal(counters(e).wrap, 1);	/* one KMS wrap ... */
	assert_int_equal(counters(e).unwrap, 1);	/* ... read back before the write */
	assert_int_equal(h->segment_count, 4096);
	assert_int_equal(h->data_offset, 2048);
	assert_int_equal(lc_header_read_path(e->dev, &back, &info, &err), 0);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	assert_memory_equal(back->uuid, h->uuid, LC_UUID_LEN);
	assert_string_equal(back->workspace, "ws1");
	assert_string_equal(back->project, "db1");
	assert_string_equal(back->keyconfig, "kc1");
	assert_string_equal(back->provider, "local");
	assert_string_equal(back->provider_ref, e->key_id);
	assert_string_equal(back->cmk_id, e->key_id);
	assert_string_equal(back->cmk_version, "1");
	assert_string_equal(back->cipher, "aes-xts-plain64");
	assert_int_equal(back->key_size, 64);
	assert_int_equal(back->segment_sectors, 8);
	{
		struct lc_kek_identity id = { back->uuid, "ws1", "db1", "kc1" };

		assert_int_equal(lc_kek_context(&id, ctx), 0);
	}
	assert_int_equal(back->wrap_context.len, strlen(ctx));
	assert_memory_equal(back->wrap_context.p, ctx, strlen(ctx));
	for (uint32_t i = 0; i < back->segment_count; i++)
		assert_int_equal(back->deks[i].generation, 1);
	lc_header_free(back);

	/* An existing volume is never overwritten by accident. */
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "--force"));
	assert_int_equal(counters(e).wrap, 1);
	fa.force = true;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, &back, &err), 0);
	assert_memory_not_equal(back->uuid, h->uuid, LC_UUID_LEN);
	lc_header_free(back);
	lc_header_free(h);

	/* Arguments are checked before the KMS is asked. */
	fa.segment_size = 3000;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "segment size"));
	fa.segment_size = 4096;
	fa.project = "bad project";
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EINVAL);
	fa.project = "db1";
	fa.cipher = "aes-cbc-essiv:sha256";
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EINVAL);
	assert_int_equal(counters(e).wrap, 2);
}

static void test_open_one_unwrap(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_dm_status st;
	struct lc_error err = { 0 };
	char uuid[LC_UUID_STR_LEN], want[512], *audit;

	format_dev(e, 4096, NULL, &h);
	lc_header_uuid_str(h, uuid);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	/* Exactly one KMS call for 4,096 segments. */
	assert_int_equal(counters(e).unwrap, 1);
	assert_int_equal(counters(e).wrap, 0);
	assert_int_equal(counters(e).key_state, 0);
	snprintf(want, sizeof(want),
		 "0 32768 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:%s: 8 %s 2048 %s", uuid,
		 e->dev, uuid);
	assert_string_equal(e->fk.last_line, want);
	assert_int_equal(e->fk.nmsgs, 1);
	assert_string_equal(e->fk.msgs[0], "key load all");
	assert_int_equal(e->fk.ring_max, 4096);
	assert_int_equal(e->fk.ring_keys, 0);	/* dropped after the load */
	assert_int_equal(e->fk.kr_closes, 1);
	assert_true(v->have_kek);
	assert_int_equal(v->kek.len, LC_KEK_LEN);
	assert_int_equal(v->segments, 4096);
	assert_string_equal(v->uuid, uuid);
	assert_int_equal(lc_volume_status(&e->venv, v, &st, &err), 0);
	assert_int_equal(st.keys_loaded, 4096);
	/* udev is told of the device once, with every key in (blkid). */
	assert_int_equal(e->fk.announces, 1);
	assert_int_equal(e->fk.announced_keys, 4096);

	audit = slurp(e->audit_path);
	assert_non_null(strstr(audit, "\"op\":\"cmk.unwrap\""));
	assert_non_null(strstr(audit, "\"op\":\"open\""));
	assert_non_null(strstr(audit, "\"request_id\":\"local-"));
	assert_non_null(strstr(audit, "\"peer_uid\":1000"));
	free(audit);

	/* A second open of the same name is refused by dm; nothing leaks. */
	{
		struct lc_volume *v2 = NULL;

		assert_int_equal(open_vol(e, "ws1", NULL, &v2, &err), -EEXIST);
		assert_null(v2);
	}
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	assert_false(v->have_kek);
	assert_int_equal(e->fk.ndevs, 0);
	lc_volume_free(v);
	lc_header_free(h);
}

static void test_wrong_workspace(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	char *audit;

	format_dev(e, 4096, NULL, NULL);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(open_vol(e, "ws2", NULL, &v, &err), -EPERM);
	assert_null(v);
	assert_non_null(strstr(err.msg, "workspace \"ws1\", not to workspace \"ws2\""));
	assert_int_equal(counters(e).unwrap, 0);
	assert_int_equal(e->fk.creates, 0);
	audit = slurp(e->audit_path);
	assert_non_null(strstr(audit, "\"outcome\":\"refused\""));
	free(audit);
}

static void test_disabled_cmk_denied(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(lc_kms_local_disable(e->kms, e->key_id, NULL, &err), 0);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_null(v);
	assert_int_equal(counters(e).unwrap, 1);	/* denied is never retried */
	assert_int_equal(e->fk.creates, 0);
	assert_int_equal(e->fk.ring_max, 0);
	/* Enabled again, it opens. */
	assert_int_equal(lc_kms_local_enable(e->kms, e->key_id, NULL, &err), 0);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	lc_volume_free(v);
}

static void corrupt(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_copy_a_corrupted(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL, *back = NULL;
	struct lc_header_info info;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	uint64_t area;

	format_dev(e, 4096, NULL, &h);
	assert_int_equal(lc_header_layout(h->segment_count, h->key_size, NULL, &area, NULL, &err), 0);
	corrupt(e->dev, 0x140);		/* project name in copy A */
	assert_int_equal(lc_header_read_path(e->dev, &back, &info, &err), 0);
	assert_int_equal(info.state[0], LC_COPY_DAMAGED);
	lc_header_free(back);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_string_equal(v->project, "db1");
	/* ... and copy A was repaired from B. */
	assert_int_equal(lc_header_read_path(e->dev, &back, &info, &err), 0);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	lc_header_free(back);
	lc_volume_free(v);
	lc_header_free(h);
}

static void test_both_copies_corrupted(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	uint64_t area;

	format_dev(e, 4096, NULL, &h);
	assert_int_equal(lc_header_layout(h->segment_count, h->key_size, NULL, &area, NULL, &err), 0);
	corrupt(e->dev, 0x140);
	corrupt(e->dev, area + 0x140);
	lc_provider_counters_reset(&e->prov);
	assert_true(open_vol(e, "ws1", NULL, &v, &err) < 0);
	assert_null(v);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_non_null(strstr(err.msg, "no valid lakecrypt header"));
	assert_non_null(strstr(err.msg, e->dev));
	assert_int_equal(counters(e).unwrap, 0);
	assert_int_equal(e->fk.creates, 0);
	assert_int_equal(e->fk.ring_max, 0);
	lc_header_free(h);
}

static void test_swapped_deks(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_wrapped_dek t;
	struct lc_error err = { 0 };

	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	t = h->deks[3];
	h->deks[3] = h->deks[4];
	h->deks[4] = t;
	assert_int_equal(lc_header_write_path(e->dev, false, h, &err), 0);
	/* The header MAC covers the DEK table: caught before any DEK is used. */
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "header authentication failed"));
	assert_int_equal(e->fk.creates, 0);
	lc_header_free(h);
}

static void test_batches(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	format_dev(e, 4096, NULL, NULL);
	e->venv.key_batch = 1000;
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_int_equal(counters(e).unwrap, 1);
	assert_int_equal(e->fk.nmsgs, 5);
	assert_string_equal(e->fk.msgs[0], "key load 0-999");
	assert_string_equal(e->fk.msgs[3], "key load 3000-3999");
	assert_string_equal(e->fk.msgs[4], "key load 4000-4095");
	assert_int_equal(e->fk.ring_max, 1000);
	assert_int_equal(e->fk.devs[0].keys_loaded, 4096);
	lc_volume_free(v);
}

static void test_failure_unwinds(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	format_dev(e, 4096, NULL, NULL);
	e->venv.key_batch = 1000;
	e->fk.fail_message_at = 2;
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -ENOKEY);
	assert_null(v);
	assert_int_equal(e->fk.creates, 1);
	assert_int_equal(e->fk.removes, 1);
	assert_int_equal(e->fk.ndevs, 0);
	assert_int_equal(e->fk.purges, 1);
	assert_int_equal(e->fk.kr_closes, 1);
	assert_int_equal(e->fk.ring_keys, 0);
	/* A failed create leaves nothing either. */
	e->fk.fail_message_at = 0;
	e->fk.fail_create = -ENOMEM;
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -ENOMEM);
	assert_int_equal(e->fk.ndevs, 0);
	assert_int_equal(e->fk.ring_max, 1000);
	/* A device udev cannot be told of (suspend or resume failed) is
	 * taken back as well: the open fails, nothing is left. */
	e->fk.fail_create = 0;
	e->fk.fail_announce = -EIO;
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EIO);
	assert_null(v);
	assert_int_equal(e->fk.ndevs, 0);
	assert_int_equal(e->fk.ring_keys, 0);
	assert_int_equal(e->fk.purges, 2);
}

static void test_detached(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	char uuid[LC_UUID_STR_LEN], want[512];

	make_file(e->dev, 4096u * 4096u);
	format_dev(e, 4096, e->hdr, &h);
	assert_int_equal(h->data_offset, 0);
	assert_int_equal(h->segment_count, 4096);
	assert_true(h->flags & LC_HDR_F_DETACHED);
	lc_header_uuid_str(h, uuid);
	/* The data device holds no header. */
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -ENOENT);
	assert_int_equal(open_vol(e, "ws1", e->hdr, &v, &err), 0);
	snprintf(want, sizeof(want), "0 32768 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:%s: 8 %s 0 %s",
		 uuid, e->dev, uuid);
	assert_string_equal(e->fk.last_line, want);
	assert_string_equal(v->header, e->hdr);
	lc_volume_free(v);
	lc_header_free(h);
}

/* claim10: lc_format_args' pins.  A format writes only the storage its
 * caller checked (agent/daemon/uuid-claim.c): other storage behind the
 * path, or a header file that appeared where there was none, is refused
 * before a byte is written; the header file is flock'ed while written. */
static void test_format_pins(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL, *h2 = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	struct lc_storage_pin pd, ph, absent = { .exists = false };
	struct stat dst, hst;
	char uuid[LC_UUID_STR_LEN], uuid2[LC_UUID_STR_LEN], fresh[PATH_MAX];
	struct lc_format_args fa = { .device = e->dev, .header = e->hdr, .workspace = "ws1",
				     .project = "db1", .segment_size = 4096, .force = true };
	int lfd;

	make_file(e->dev, 4096u * 4096u);
	format_dev(e, 4096, e->hdr, &h);
	lc_header_uuid_str(h, uuid);
	assert_int_equal(stat(e->dev, &dst), 0);
	assert_int_equal(stat(e->hdr, &hst), 0);
	pd = (struct lc_storage_pin){ .exists = true, .dev = dst.st_dev, .ino = dst.st_ino };
	ph = (struct lc_storage_pin){ .exists = true, .dev = hst.st_dev, .ino = hst.st_ino };

	/* Nothing was there at the check: an existing header is not opened. */
	fa.pin_device = &pd;
	fa.pin_header = &absent;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "changed under us"));
	/* Another file behind the header path, or behind the device path. */
	ph.ino++;
	fa.pin_header = &ph;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "changed under us"));
	ph.ino--;
	pd.ino++;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "changed under us"));
	pd.ino--;
	/* A block device pinned, a file found. */
	pd.blk = true;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EBUSY);
	pd.blk = false;
	/* Another lakecrypt operation holds the header file. */
	lfd = open(e->hdr, O_RDONLY | O_CLOEXEC);
	assert_true(lfd >= 0);
	assert_int_equal(flock(lfd, LOCK_EX), 0);
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "locked by another lakecrypt operation"));
	close(lfd);
	/* Nothing was written by any of them. */
	assert_int_equal(open_vol(e, "ws1", e->hdr, &v, &err), 0);
	assert_string_equal(v->uuid, uuid);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	v = NULL;
	/* The storage checked: written. */
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, &h2, &err), 0);
	lc_header_uuid_str(h2, uuid2);
	assert_string_not_equal(uuid, uuid2);
	lc_header_free(h2);
	h2 = NULL;
	/* No header there at the check, none now: created. */
	snprintf(fresh, sizeof(fresh), "%s.new", e->hdr);
	fa.header = fresh;
	fa.pin_header = &absent;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, &h2, &err), 0);
	assert_int_equal(unlink(fresh), 0);
	lc_header_free(h2);
	lc_header_free(h);
}

static void test_cache(void **state)
{
	struct env *e = *state;
	struct lc_cache_args ca = { .device = e->dev, .workspace = "ws1", .name = "cache1",
				    .segment_size = 65536 };
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	lc_provider_counters_reset(&e->prov);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &v, &err), 0);
	assert_int_equal(counters(e).key_state, 1);
	assert_int_equal(counters(e).unwrap + counters(e).wrap, 0);
	assert_non_null(strstr(e->fk.last_line, " 1 ephemeral"));
	assert_non_null(strstr(e->fk.last_line, " 128 "));	/* 64 KiB segments */
	assert_int_equal(v->segments, (1u << 20) / 65536 + 256);
	assert_int_equal(v->kind, LC_VOLUME_CACHE);
	assert_false(v->have_kek);
	assert_string_equal(v->cmk_id, e->key_id);
	assert_string_equal(e->fk.msgs[0], "key load all");
	/* Nothing was written to the device. */
	{
		struct lc_header *h = NULL;

		assert_true(lc_header_read_path(e->dev, &h, NULL, NULL) < 0);
	}
	/* Close: the device is removed first, nothing is sent before it
	 * (a busy cache must survive a refused close). */
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	assert_int_equal(e->fk.nmsgs, 1);
	assert_int_equal(e->fk.ndevs, 0);
	lc_volume_free(v);

	/* A disabled CMK refuses a cache at once. */
	assert_int_equal(lc_kms_local_disable(e->kms, e->key_id, NULL, &err), 0);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &v, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_int_equal(e->fk.ndevs, 0);
	assert_null(v);
}

static void test_revoke(void **state)
{
	struct env *e = *state;
	struct lc_cache_args ca = { .device = e->hdr, .workspace = "ws1", .name = "cache1" };
	struct lc_volume *v = NULL, *c = NULL;
	struct lc_dm_status st;
	struct lc_error err = { 0 };
	char *audit;

	make_file(e->hdr, 4u << 20);	/* the cache's own blank device */
	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &c, &err), 0);
	clear_msgs(e);
	assert_int_equal(lc_volume_revoke(&e->venv, v, "test", false, &err), 0);
	assert_int_equal(lc_volume_revoke(&e->venv, c, "CMK disabled", true, &err), 0);
	assert_string_equal(e->fk.msgs[0], "revoke");
	assert_string_equal(e->fk.msgs[1], "revoke");
	assert_int_equal(e->fk.purges, 2);
	assert_true(v->revoked);
	assert_false(v->have_kek);
	assert_null(v->kek.p);
	assert_string_equal(v->revoke_cause, "test");
	assert_int_equal(lc_volume_status(&e->venv, v, &st, &err), 0);
	assert_int_equal(st.state, LC_DM_STATE_REVOKED);
	/* A revoked volume cannot be re-wrapped; close still works. */
	assert_int_equal(lc_volume_rewrap(&e->venv, v, &err), -EKEYREVOKED);
	assert_int_equal(lc_volume_close(&e->venv, c, &err), 0);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	audit = slurp(e->audit_path);
	assert_non_null(strstr(audit, "\"op\":\"revoke\""));
	assert_non_null(strstr(audit, "\"error_class\":\"denied\""));
	free(audit);
	lc_volume_free(v);
	lc_volume_free(c);
}

static void test_rewrap(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	char *audit;

	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_int_equal(lc_kms_local_rotate(e->kms, e->key_id, NULL, &err), 0);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(lc_volume_rewrap(&e->venv, v, &err), 0);
	assert_int_equal(counters(e).wrap, 1);
	assert_int_equal(counters(e).unwrap, 1);	/* the new blob read back */
	assert_string_equal(v->cmk_version, "2");
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	assert_string_equal(h->cmk_version, "2");
	lc_header_free(h);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	/* The re-wrapped KEK opens the volume. */
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_string_equal(v->cmk_version, "2");
	lc_volume_free(v);
	audit = slurp(e->audit_path);
	assert_non_null(strstr(audit, "\"op\":\"rotate\""));
	free(audit);
}

/* ---- resize ---- */

#define SEG64K	(64u * 1024u)

static uint64_t header_area(const char *path)
{
	struct lc_header_info info;
	struct lc_header *h = NULL;

	assert_int_equal(lc_header_read_path(path, &h, &info, NULL), 0);
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	lc_header_free(h);
	return info.offset[1];
}

static uint32_t header_segments(const char *path)
{
	struct lc_header *h = NULL;
	uint32_t n;

	assert_int_equal(lc_header_read_path(path, &h, NULL, NULL), 0);
	n = h->segment_count;
	lc_header_free(h);
	return n;
}

/* The data device grows by @segs segments of 64 KiB. */
static void grow_file(struct env *e, uint32_t segs)
{
	struct stat st;

	assert_int_equal(stat(e->dev, &st), 0);
	assert_int_equal(truncate(e->dev, st.st_size + (off_t)segs * SEG64K), 0);
}

static void test_resize_grow_and_shrink(void **state)
{
	struct env *e = *state;
	struct lc_header *before = NULL, *after = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	struct fake_dev *d;
	char *audit, want[512];

	/* 16 MiB of data in 64 KiB segments: 256, header area 64 KiB */
	format_dev(e, SEG64K, NULL, &before);
	assert_int_equal(before->segment_count, 256);
	assert_int_equal(header_area(e->dev), 65536);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	lc_provider_counters_reset(&e->prov);
	clear_msgs(e);

	/* grow to 600 segments: the header moves to a 128 KiB area */
	grow_file(e, 344);
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), 0);
	assert_int_equal(v->segments, 600);
	assert_int_equal(v->length, 600ull * SEG64K / 512);
	assert_int_equal(header_segments(e->dev), 600);
	assert_int_equal(header_area(e->dev), 131072);
	d = find_dev(&e->fk, "vol1");
	assert_int_equal(line_segments(d->line), 600);
	assert_int_equal(d->keys_loaded, 600);
	assert_int_equal(e->fk.nmsgs, 1);
	assert_string_equal(e->fk.msgs[0], "key load 256-599");
	assert_int_equal(counters(e).calls, 0);		/* no KMS call */
	/* the old segments keep their wrapped keys, the new ones are fresh */
	assert_int_equal(lc_header_read_path(e->dev, &after, NULL, &err), 0);
	assert_memory_equal(after->deks, before->deks, 256 * sizeof(*before->deks));
	for (uint32_t i = 256; i < 600; i++)
		assert_int_equal(after->deks[i].generation, 1);
	assert_memory_not_equal(after->deks[256].ct, after->deks[257].ct, 64);
	lc_header_free(after);

	/* the same size again: nothing to do */
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), 0);
	assert_int_equal(e->fk.reloads, 1);

	/* shrink to 99.5 segments (a short last one): 100, area 32 KiB */
	clear_msgs(e);
	assert_int_equal(lc_volume_resize(&e->venv, v, 100ull * SEG64K - 32768, &err), 0);
	assert_int_equal(v->segments, 100);
	assert_int_equal(v->length, (100ull * SEG64K - 32768) / 512);
	assert_int_equal(header_segments(e->dev), 100);
	assert_int_equal(header_area(e->dev), 32768);
	assert_int_equal(d->keys_loaded, 100);
	assert_int_equal(e->fk.nmsgs, 0);		/* no key loaded */
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);

	/* it opens at its new size, every DEK authenticated */
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_int_equal(v->segments, 100);
	d = find_dev(&e->fk, "vol1");
	assert_int_equal(d->keys_loaded, 100);
	snprintf(want, sizeof(want), "\"op\":\"resize\",\"workspace\":\"ws1\",\"project\":\"db1\",\"volume\":\"%s\",\"device\":\"%s\"",
		 v->uuid, e->dev);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	lc_header_free(before);
	/* the audit record names the volume and its device */
	audit = slurp(e->audit_path);
	assert_non_null(strstr(audit, want));
	free(audit);
}

static void test_resize_detached(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	format_dev(e, SEG64K, e->hdr, NULL);
	assert_int_equal(open_vol(e, "ws1", e->hdr, &v, &err), 0);
	assert_int_equal(v->segments, 272);	/* 17 MiB, no header on the device */
	grow_file(e, 2000);
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), 0);
	assert_int_equal(v->segments, 2272);
	assert_int_equal(header_segments(e->hdr), 2272);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	assert_int_equal(open_vol(e, "ws1", e->hdr, &v, &err), 0);
	assert_int_equal(v->segments, 2272);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
}

static void test_resize_refusals(void **state)
{
	struct env *e = *state;
	struct lc_cache_args ca = { .device = e->hdr, .workspace = "ws1", .name = "cache1" };
	struct lc_volume *v = NULL, *c = NULL;
	struct lc_error err = { 0 };
	uint64_t len;

	format_dev(e, 4096, NULL, NULL);	/* 4,096 segments, area 512 KiB */
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	len = v->length;
	assert_int_equal(lc_volume_resize(&e->venv, v, 4096ull * 4096 + 512, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "grow the device first"));
	assert_int_equal(lc_volume_resize(&e->venv, v, 1000, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "512-byte sectors"));
	/* 1 MiB in front of the data holds two 512 KiB areas: 5,290 segments */
	grow_file(e, 20000);
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "at most 5290"));
	assert_int_equal(lc_volume_resize(&e->venv, v, 5290ull * 4096, &err), 0);
	assert_int_equal(v->segments, 5290);
	assert_int_equal(v->length, len + 1194 * 8);
	assert_int_equal(e->fk.reloads, 1);
	/* nothing but a project volume with its KEK */
	v->have_kek = false;
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), -ENOKEY);
	v->have_kek = true;
	v->revoked = true;
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), -EKEYREVOKED);
	v->revoked = false;
	make_file(e->hdr, 4u << 20);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &c, &err), 0);
	assert_int_equal(lc_volume_resize(&e->venv, c, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cache"));
	assert_int_equal(e->fk.reloads, 1);
	assert_int_equal(lc_volume_close(&e->venv, c, &err), 0);
	lc_volume_free(c);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
}

/* Failures in the middle: running the resize again finishes it. */
static void test_resize_interrupted(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	struct fake_dev *d;

	format_dev(e, SEG64K, NULL, NULL);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	d = find_dev(&e->fk, "vol1");
	grow_file(e, 100);
	/* the header is written, the kernel refuses the table */
	e->fk.fail_reload = -EINVAL;
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), -EINVAL);
	assert_int_equal(header_segments(e->dev), 356);
	assert_int_equal(v->segments, 256);
	assert_int_equal(line_segments(d->line), 256);
	/* again: the new segments' keys come from the header written before */
	clear_msgs(e);
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), 0);
	assert_int_equal(v->segments, 356);
	assert_int_equal(d->keys_loaded, 356);
	assert_string_equal(e->fk.msgs[0], "key load 256-355");
	/* the kernel swaps the table in but cannot carry the keys over:
	 * every key is loaded again, then it resumes */
	grow_file(e, 10);
	e->fk.refuse_resume = true;
	assert_int_equal(lc_volume_resize(&e->venv, v, 0, &err), 0);
	assert_false(d->suspended);
	assert_int_equal(e->fk.resumes, 1);
	assert_int_equal(d->keys_loaded, 366);
	assert_int_equal(v->segments, 366);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_int_equal(v->segments, 366);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
}

static void test_rediscover(void **state)
{
	struct env *e = *state;
	struct lc_cache_args ca = { .device = e->hdr, .workspace = "ws1", .name = "cache1" };
	struct lc_volume *vols[2] = { NULL, NULL }, **back = NULL;
	struct lc_error err = { 0 };
	char path[128], *text;
	size_t n = 0;
	struct stat st;

	snprintf(path, sizeof(path), "%s/volumes.json", e->dir);
	make_file(e->hdr, 4u << 20);	/* the cache's own blank device */
	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(open_vol(e, "ws1", NULL, &vols[0], &err), 0);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &vols[1], &err), 0);
	assert_int_equal(lc_volumes_save(path, vols, 2, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	text = slurp(path);
	assert_null(strstr(text, "kek\""));	/* never key material */
	free(text);
	/* The cache device went away while the agent was down. */
	assert_int_equal(f_dm_remove(&e->fk, "cache1", &err), 0);
	assert_int_equal(lc_volumes_rediscover(&e->venv, path, &back, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(back[0]->name, "vol1");
	assert_string_equal(back[0]->uuid, vols[0]->uuid);
	assert_string_equal(back[0]->cmk_id, e->key_id);
	assert_string_equal(back[0]->workspace, "ws1");
	assert_int_equal(back[0]->segments, 4096);
	assert_false(back[0]->have_kek);
	/* It can still be revoked, not re-wrapped. */
	assert_int_equal(lc_volume_rewrap(&e->venv, back[0], &err), -ENOKEY);
	assert_int_equal(lc_volume_revoke(&e->venv, back[0], "after restart", false, &err), 0);
	lc_volume_free(back[0]);
	free(back);
	lc_volume_free(vols[0]);
	lc_volume_free(vols[1]);
	/* No file: nothing to find. */
	unlink(path);
	assert_int_equal(lc_volumes_rediscover(&e->venv, path, &back, &n, &err), 0);
	assert_int_equal(n, 0);
	free(back);
}

/* The 65,536-segment open: one unwrap, and the agent's CPU time. */
static void test_open_65536(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	struct rusage r0, r1;
	double cpu;

	make_file(e->dev, (16u << 20) + 65536ull * 4096u);
	format_dev(e, 4096, NULL, NULL);
	lc_provider_counters_reset(&e->prov);
	getrusage(RUSAGE_SELF, &r0);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	getrusage(RUSAGE_SELF, &r1);
	cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec -
		       r0.ru_stime.tv_sec) +
	      (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec -
		       r0.ru_stime.tv_usec) / 1e6;
	assert_int_equal(counters(e).unwrap, 1);
	assert_int_equal(v->segments, 65536);
	assert_string_equal(e->fk.msgs[0], "key load all");
	print_message("# open of 65,536 segments without kernel: %.3f s CPU, %" PRIu64 " KMS call(s)\n",
		      cpu, counters(e).unwrap);
	lc_volume_free(v);
}

/* ---- trust boundaries (issue 6) ---- */

/* Rewrite the header as an attacker with write access to the disk would:
 * fields changed, checksum right, but no KEK to compute the MAC with. */
static void tamper(struct env *e, void (*edit)(struct lc_header *h))
{
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };

	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	edit(h);
	assert_int_equal(lc_header_write_path(e->dev, false, h, &err), 0);
	lc_header_free(h);
}

static void edit_sector_size(struct lc_header *h)
{
	h->sector_size = 4096;
}

static void edit_cipher_ctr(struct lc_header *h)
{
	snprintf(h->cipher, sizeof(h->cipher), "aes-ctr-plain64");
}

static void edit_v1(struct lc_header *h)
{
	h->version = LC_HDR_VERSION_V1;
	memset(h->mac, 0, sizeof(h->mac));
}

static void format_force(struct env *e)
{
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = 4096, .force = true };
	struct lc_error err = { 0 };

	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), 0);
}

static void test_header_authenticated(void **state)
{
	struct env *e = *state;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	format_dev(e, 4096, NULL, NULL);
	/* A field that decides how data is read, changed with a valid checksum. */
	tamper(e, edit_sector_size);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "header authentication failed"));
	assert_int_equal(counters(e).unwrap, 1);
	assert_int_equal(e->fk.creates, 0);
	assert_int_equal(e->fk.ring_max, 0);	/* no key went anywhere */

	/* A stream mode is refused before the KMS is asked. */
	format_force(e);
	tamper(e, edit_cipher_ctr);
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not allowed"));
	assert_int_equal(counters(e).unwrap, 0);

	/* A version 1 header is refused with what to do. */
	format_force(e);
	tamper(e, edit_v1);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "version 1"));
	assert_non_null(strstr(err.msg, "lakecryptctl migrate"));
	assert_int_equal(e->fk.creates, 0);
	assert_null(v);
}

static void test_cipher_allow_list(void **state)
{
	struct env *e = *state;
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = 4096 };
	struct lc_error err = { 0 };
	static const char *const bad[] = { "aes-ctr-plain64", "aes-ofb-plain64", "aes-cfb-plain64",
					   "capi:ctr(aes)-plain64", "aes-cbc-plain64",
					   "aes-ecb-plain64" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fa.cipher = bad[i];
		assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "not allowed"));
	}
	assert_int_equal(lc_cipher_allowed("aes-xts-plain64", 64, &err), 0);
	assert_int_equal(lc_cipher_allowed("aes-xts-plain64", 32, &err), 0);
	assert_int_equal(lc_cipher_allowed("aes-xts-plain64", 48, &err), -EINVAL);
	assert_int_equal(lc_cipher_allowed("xchacha12,aes-adiantum-plain64", 32, &err), 0);
	assert_int_equal(lc_cipher_allowed("xchacha12,aes-adiantum-plain64", 64, &err), -EINVAL);
	assert_int_equal(counters(e).wrap, 0);
}

/* Relabel: a volume of workspace B's CMK edited to claim workspace A. */
static char relabel_ws[64], relabel_kc[64], relabel_ref[128];
static void edit_relabel(struct lc_header *h)
{
	snprintf(h->workspace, sizeof(h->workspace), "%s", relabel_ws);
	snprintf(h->keyconfig, sizeof(h->keyconfig), "%s", relabel_kc);
	snprintf(h->provider_ref, sizeof(h->provider_ref), "%s", relabel_ref);
}

static void test_identity_bound(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info info;
	struct lc_keyconfig kcb = e->kc;
	struct lc_format_args fa = { .device = e->dev, .workspace = "wsB", .project = "db1",
				     .segment_size = 4096 };
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	assert_int_equal(lc_kms_local_create(e->kms, "B", &info, &err), 0);
	snprintf(kcb.name, sizeof(kcb.name), "kcB");
	snprintf(kcb.key_ref, sizeof(kcb.key_ref), "%s", info.key_id);
	snprintf(kcb.cmk_id, sizeof(kcb.cmk_id), "%s", info.key_id);
	assert_int_equal(lc_volume_format(&e->venv, &kcb, &fa, NULL, &err), 0);

	/* Opened in its own workspace, but under a binding to another key
	 * configuration: refused, naming both, before the KMS. */
	lc_provider_counters_reset(&e->prov);
	{
		struct lc_open_args oa = { .device = e->dev, .workspace = "wsB", .name = "vol1",
					   .kc = &e->kc };

		assert_int_equal(lc_volume_open(&e->venv, &oa, &v, &err), -EPERM);
		assert_non_null(strstr(err.msg, "kcB"));
		assert_non_null(strstr(err.msg, "kc1"));
	}
	assert_int_equal(counters(e).unwrap, 0);

	/* Relabelled to workspace ws1 / kc1 with kc1's key reference. */
	snprintf(relabel_ws, sizeof(relabel_ws), "ws1");
	snprintf(relabel_kc, sizeof(relabel_kc), "kc1");
	snprintf(relabel_ref, sizeof(relabel_ref), "%s", e->key_id);
	tamper(e, edit_relabel);
	assert_true(open_vol(e, "ws1", NULL, &v, &err) < 0);
	assert_null(v);
	assert_int_equal(e->fk.creates, 0);
	assert_int_equal(counters(e).unwrap, 0);	/* the context check caught it */
}

/* Write @h as copy B of e->dev with a valid checksum and no MAC key: what
 * an attacker with the disk but without the KEK can do. */
static void write_forged_b(struct env *e, const struct lc_header *h)
{
	struct lc_error err = { 0 };
	uint64_t area;
	uint8_t *buf;
	size_t len;
	int fd;

	lc_header_layout(h->segment_count, h->key_size, NULL, &area, NULL, NULL);
	assert_int_equal(lc_header_encode(h, 1, &buf, &len, &err), 0);
	fd = open(e->dev, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)area), (ssize_t)len);
	close(fd);
	free(buf);
}

static void test_forged_copy_loses(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL, *back = NULL;
	struct lc_header_info info;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	/* Copy B with a much higher seqno and another project, checksum right. */
	h->seqno += 100;
	snprintf(h->project, sizeof(h->project), "forged");
	write_forged_b(e, h);
	lc_header_free(h);
	assert_int_equal(lc_header_read_path(e->dev, &back, &info, &err), 0);
	assert_string_equal(back->project, "forged");	/* a plain read would take it */
	lc_header_free(back);

	if (open_vol(e, "ws1", NULL, &v, &err)) fail_msg("open: %s", err.msg);
	assert_string_equal(v->project, "db1");		/* the genuine copy won */
	lc_volume_free(v);
	/* ...and the forged copy was overwritten from it. */
	assert_int_equal(lc_header_read_path(e->dev, &back, &info, &err), 0);
	assert_string_equal(back->project, "db1");
	assert_int_equal(info.state[0], LC_COPY_VALID);
	assert_int_equal(info.state[1], LC_COPY_VALID);
	lc_header_free(back);
}

static void test_rollback_refused(void **state)
{
	struct env *e = *state;
	struct lc_seqstore seqs;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	uint8_t *old = malloc(1u << 20);
	int fd;

	assert_non_null(old);
	assert_int_equal(lc_seqstore_open(&seqs, e->dir, &err), 0);
	e->venv.seqs = &seqs;
	format_dev(e, 4096, NULL, NULL);
	/* A backup of the whole metadata area. */
	fd = open(e->dev, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, old, 1u << 20, 0), 1 << 20);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	assert_int_equal(lc_volume_rewrap(&e->venv, v, &err), 0);	/* seqno moves on */
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	v = NULL;
	/* The older, genuine header is put back. */
	assert_int_equal(pwrite(fd, old, 1u << 20, 0), 1 << 20);
	close(fd);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -ESTALE);
	assert_non_null(strstr(err.msg, "older than seqno"));
	assert_null(v);
	/* Remembered across a restart of the agent. */
	lc_seqstore_close(&seqs);
	assert_int_equal(lc_seqstore_open(&seqs, e->dir, &err), 0);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -ESTALE);
	e->venv.seqs = NULL;
	lc_seqstore_close(&seqs);
	free(old);
}

static bool all_zero_range(const char *path, uint64_t from, uint64_t to)
{
	uint8_t b[4096];
	int fd = open(path, O_RDONLY);
	bool z = fd >= 0;

	for (uint64_t off = from; z && off < to; off += sizeof(b)) {
		assert_int_equal(pread(fd, b, sizeof(b), (off_t)off), (ssize_t)sizeof(b));
		for (size_t i = 0; i < sizeof(b) && z; i++)
			z = !b[i];
	}
	if (fd >= 0)
		close(fd);
	return z;
}

static void test_reformat_erases(void **state)
{
	struct env *e = *state;
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db2",
				     .segment_size = 1u << 20, .force = true };
	struct lc_error err = { 0 };
	char cmd[256];

	/* 4,096 segments: copies of 512 KiB areas; then 16 segments: 32 KiB. */
	format_dev(e, 4096, NULL, NULL);
	assert_false(all_zero_range(e->dev, 512 * 1024, 1024 * 1024));
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), 0);
	/* Nothing of the old volume's copies or DEK tables is left. */
	assert_true(all_zero_range(e->dev, 64 * 1024 + 16384, 1024 * 1024));

	/* A file system (libblkid) is not overwritten without force. */
	snprintf(cmd, sizeof(cmd), "mke2fs -q -F -t ext4 %s 4096 >/dev/null 2>&1", e->dev);
	assert_int_equal(system(cmd), 0);
	fa.force = false;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "ext4"));
	assert_non_null(strstr(err.msg, "--force"));
}

/* An md 1.0 superblock (mdadm --metadata=1.0: 8 KiB before the end, 4 KiB
 * aligned; layout of struct mdp_superblock_1, linux/raid/md_p.h) with a
 * valid checksum, as a reused RAID member carries it; tests/udev/mk-md10.py
 * writes the same one. */
static void plant_md10(const char *path)
{
	uint8_t sb[256 + 8] = { 0 };
	int fd = open(path, O_RDWR);
	uint64_t sectors, at, sum = 0;
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	sectors = (uint64_t)st.st_size / 512;
	at = (sectors - 16) & ~(uint64_t)7;
#define PUT32(o, v) do { uint32_t x_ = (v); memcpy(sb + (o), &x_, 4); } while (0)
#define PUT64(o, v) do { uint64_t x_ = (v); memcpy(sb + (o), &x_, 8); } while (0)
	PUT32(0, 0xa92b4efc);		/* magic */
	PUT32(4, 1);			/* major_version */
	for (int i = 0; i < 16; i++)
		sb[16 + i] = (uint8_t)(i + 1);	/* set_uuid */
	memcpy(sb + 32, "oldraid", 8);	/* set_name */
	PUT32(72, 1);			/* level */
	PUT64(80, at - 8);		/* size */
	PUT32(92, 2);			/* raid_disks */
	PUT64(136, at - 8);		/* data_size */
	PUT64(144, at);			/* super_offset */
	for (int i = 0; i < 16; i++)
		sb[168 + i] = (uint8_t)(i + 17);	/* device_uuid */
	PUT64(200, 42);			/* events */
	PUT64(208, UINT64_MAX);		/* resync_offset */
	PUT32(220, 4);			/* max_dev */
	sb[258] = 1;			/* dev_roles[1] = 1 */
	memset(sb + 260, 0xff, 4);	/* dev_roles[2..3]: spare */
	for (size_t i = 0; i < sizeof(sb); i += 4) {
		uint32_t w;

		memcpy(&w, sb + i, 4);
		sum += w;
	}
	PUT32(216, (uint32_t)((sum & 0xffffffff) + (sum >> 32)));	/* sb_csum */
#undef PUT32
#undef PUT64
	assert_int_equal(pwrite(fd, sb, sizeof(sb), (off_t)(at * 512)), (ssize_t)sizeof(sb));
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

/* Exit status of `blkid -p` (low-level probe, no cache) on @path, its
 * output into @out: 0 found one, 2 found nothing, 8 found several. */
static int blkid_p(const char *path, char *out, size_t size)
{
	char cmd[256];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "blkid -p -o udev '%s' 2>&1", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	st = pclose(f);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* What the udev probe (built next to this test) prints for @path. */
static int udev_probe(const char *path, char *out, size_t size)
{
	char self[PATH_MAX], cmd[PATH_MAX + 160], *slash;
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
	FILE *f;
	size_t n;

	assert_true(l > 0);
	self[l] = '\0';
	slash = strrchr(self, '/');
	assert_non_null(slash);
	*slash = '\0';
	snprintf(cmd, sizeof(cmd), "'%s/../lakecrypt-probe' '%s' 2>&1", self, path);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	return pclose(f);
}

/* format --force over a device that still carries foreign signatures, one
 * of them far outside the lakecrypt header area (an md 1.0 superblock at
 * the end, which made udev name the disk linux_raid_member and skip the
 * lakecrypt probe): libblkid finds nothing afterwards, the lakecrypt probe
 * finds the volume, the audit record names what was wiped (type@offset). */
static void test_force_wipes_signatures(void **state)
{
	struct env *e = *state;
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = 4096, .force = true };
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };
	char cmd[256], out[2048], u[LC_UUID_STR_LEN], want[96], md_at[64];
	struct stat st;
	char *audit;

	snprintf(cmd, sizeof(cmd), "mke2fs -q -F -t ext4 %s 4096 >/dev/null 2>&1", e->dev);
	assert_int_equal(system(cmd), 0);
	plant_md10(e->dev);
	/* ext4 at the start, md at the end: libblkid names the RAID member. */
	assert_int_equal(blkid_p(e->dev, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ID_FS_TYPE=linux_raid_member"));

	/* Without force: refused, as before. */
	fa.force = false;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "--force"));

	fa.force = true;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, &h, &err), 0);
	assert_int_equal(blkid_p(e->dev, out, sizeof(out)), 2);		/* nothing */
	lc_header_uuid_str(h, u);
	assert_int_equal(udev_probe(e->dev, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ID_FS_TYPE=lakecrypt\n"));
	snprintf(want, sizeof(want), "ID_FS_UUID=%s\n", u);
	assert_non_null(strstr(out, want));
	lc_header_free(h);

	/* The audit record names both, with their byte offsets. */
	assert_int_equal(stat(e->dev, &st), 0);
	snprintf(md_at, sizeof(md_at), "linux_raid_member@%" PRIu64,
		 (((uint64_t)st.st_size / 512 - 16) & ~(uint64_t)7) * 512);
	audit = slurp(e->audit_path);
	assert_non_null(strstr(audit, "wiped signatures"));
	assert_non_null(strstr(audit, md_at));
	assert_non_null(strstr(audit, "ext4@1080"));
	assert_null(strstr(audit, "oldraid"));	/* types and offsets, never contents */
	free(audit);

	/* A detached header: the data device is wiped just the same. */
	plant_md10(e->dev);
	assert_int_equal(blkid_p(e->dev, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ID_FS_TYPE=linux_raid_member"));
	fa.header = e->hdr;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), 0);
	assert_int_equal(blkid_p(e->dev, out, sizeof(out)), 2);
	assert_int_equal(blkid_p(e->hdr, out, sizeof(out)), 2);
}

static void test_detached_never_clobbers(void **state)
{
	struct env *e = *state;
	struct lc_format_args fa = { .device = e->dev, .header = e->hdr, .workspace = "ws1",
				     .project = "db1", .segment_size = 4096 };
	struct lc_error err = { 0 };
	char link[128];
	int fd;

	/* An existing file is not taken over (O_EXCL) without force... */
	fd = open(e->hdr, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EEXIST);
	/* ...nor reached through a symlink, even with force. */
	snprintf(link, sizeof(link), "%s/link.hdr", e->dir);
	assert_int_equal(symlink(e->hdr, link), 0);
	fa.header = link;
	fa.force = true;
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -ELOOP);
	assert_int_equal(counters(e).wrap, 0);
	{
		char b[9] = "";

		fd = open(e->hdr, O_RDONLY);
		assert_int_equal(read(fd, b, 8), 8);
		close(fd);
		assert_string_equal(b, "precious");
	}
	/* Devices: an operator's allow-list takes block devices only. */
	{
		struct lc_ws_access none = { 0 };

		fa.header = NULL;
		fa.force = false;
		fa.allow = &none;
		assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EPERM);
		assert_int_equal(counters(e).wrap, 0);
	}
}

/* Write a version 1 header (lakecrypt 1.0) for the volume on e->dev. */
static void make_v1(struct env *e, bool bad_dek)
{
	_cleanup_secret_ struct lc_secret kek = { 0 }, deks = { 0 };
	struct lc_provider_reply rep;
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };
	char ctx1[LC_KEK_CONTEXT_MAX];

	format_force(e);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	assert_int_equal(lc_kek_generate(&kek, &err), 0);
	lc_kek_context_v1(h->uuid, ctx1);
	free(h->wrapped_kek.p);
	assert_int_equal(lc_provider_wrap(&e->prov, e->key_id, &kek, ctx1, &h->wrapped_kek, &rep,
					  &err), 0);
	free(h->wrap_context.p);
	h->wrap_context.p = (uint8_t *)strdup(ctx1);
	h->wrap_context.len = strlen(ctx1);
	assert_int_equal(lc_deks_generate(&deks, h->segment_count, h->key_size, &err), 0);
	assert_int_equal(lc_deks_wrap_all(&kek, h->uuid, &deks, h->segment_count, h->key_size,
					  h->deks, &err), 0);
	if (bad_dek)
		h->deks[7].tag[0] ^= 1;
	h->version = LC_HDR_VERSION_V1;
	memset(h->mac, 0, sizeof(h->mac));
	assert_int_equal(lc_header_write_path(e->dev, false, h, &err), 0);
	lc_header_free(h);
}

static void test_migrate_v1(void **state)
{
	struct env *e = *state;
	struct lc_open_args oa = { .device = e->dev, .workspace = "ws1", .name = "vol1",
				   .kc = &e->kc };
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	make_v1(e, false);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "lakecryptctl migrate"));
	lc_provider_counters_reset(&e->prov);
	assert_int_equal(lc_volume_migrate(&e->venv, &oa, &h, &err), 0);
	assert_int_equal(h->version, LC_HDR_VERSION);
	assert_int_equal(counters(e).unwrap, 2);	/* old context; the new blob read back */
	assert_int_equal(counters(e).wrap, 1);		/* identity context */
	lc_header_free(h);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	lc_volume_free(v);
	assert_int_equal(lc_volume_migrate(&e->venv, &oa, NULL, &err), -EALREADY);

	/* A DEK record that does not authenticate stops the migration. */
	make_v1(e, true);
	assert_int_equal(lc_volume_migrate(&e->venv, &oa, NULL, &err), -EBADMSG);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	assert_int_equal(h->version, LC_HDR_VERSION_V1);	/* nothing written */
	lc_header_free(h);
}

/* ---- by-uuid squatting (uuidscan.h) ---- */

/* @text into @root/@rel, parent directories made. */
static void put(const char *root, const char *rel, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	(void)mkdir(root, 0755);
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		(void)mkdir(p, 0755);
		*s = '/';
	}
	if (!text) {
		assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
		return;
	}
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A fake block device @name (@devno) in the tree @root: sysfs entry with
 * an empty holders/, and /dev/@name a copy of @image (NULL: 1 MiB of
 * zeros, no header). */
static void fake_blk(const char *root, const char *name, const char *devno, const char *image)
{
	char rel[128], cmd[1024];

	snprintf(rel, sizeof(rel), "sys/%s/dev", name);
	put(root, rel, devno);
	snprintf(rel, sizeof(rel), "sys/%s/size", name);
	put(root, rel, "32768\n");
	snprintf(rel, sizeof(rel), "sys/%s/holders", name);
	put(root, rel, NULL);
	put(root, "udev", NULL);
	put(root, "dev", NULL);
	if (image)
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s/dev/%s'", image, root, name);
	else
		snprintf(cmd, sizeof(cmd), "head -c 1048576 /dev/zero >'%s/dev/%s'", root, name);
	assert_int_equal(system(cmd), 0);
}

static int open_by_uuid(struct env *e, const struct lc_blk_roots *roots, const char *dev,
			const char *uuid, struct lc_error *err)
{
	struct lc_open_args oa = { .device = dev, .workspace = "ws1", .name = "vol1",
				   .kc = &e->kc, .uuid = uuid,
				   .uuid_source = "/etc/lakecrypt/lakecrypttab line 2", .blk = roots };
	struct lc_volume *v = NULL;
	int r;

	memset(err, 0, sizeof(*err));
	lc_provider_counters_reset(&e->prov);
	r = lc_volume_open(&e->venv, &oa, &v, err);
	if (r == 0) {
		assert_int_equal(lc_volume_close(&e->venv, v, err), 0);
		lc_volume_free(v);
	} else {
		assert_null(v);
		assert_int_equal(counters(e).unwrap, 0);	/* refused before the KMS */
	}
	return r;
}

/*
 * An open by uuid is refused while another block device carries the
 * volume's uuid (a copy of its header could have taken
 * /dev/disk/by-uuid/<uuid>), naming the devices; udev's record is used
 * where there is one, the disk read (bounded) where not; a stack over
 * one disk counts once; the agent's own mappings and an open by a path
 * that names the disk are not concerned.
 */
static void test_open_by_uuid_refuses_copies(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_error err = { 0 };
	char root[128], sys[160], udev[160], dev[160], vda[192], vdb[192], u[LC_UUID_STR_LEN];
	char up[LC_UUID_STR_LEN], rec[256], cmd[512];
	struct lc_blk_roots roots;

	format_dev(e, 4096, NULL, &h);
	lc_header_uuid_str(h, u);
	lc_header_free(h);
	snprintf(root, sizeof(root), "%s/blk", e->dir);
	snprintf(sys, sizeof(sys), "%s/sys", root);
	snprintf(udev, sizeof(udev), "%s/udev", root);
	snprintf(dev, sizeof(dev), "%s/dev", root);
	roots = (struct lc_blk_roots){ sys, udev, dev };
	snprintf(vda, sizeof(vda), "%s/vda", dev);
	snprintf(vdb, sizeof(vdb), "%s/vdb", dev);
	fake_blk(root, "vda", "253:0\n", e->dev);
	fake_blk(root, "vdc", "253:32\n", NULL);

	/* The only disk with the uuid: opened, by UUID= in any case. */
	for (size_t i = 0; i < 36; i++)
		up[i] = (char)(u[i] >= 'a' && u[i] <= 'f' ? u[i] - 'a' + 'A' : u[i]);
	up[36] = '\0';
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), 0);

	/* A copy of the header on vdb, which udev has no record of: read. */
	fake_blk(root, "vdb", "253:16\n", e->dev);
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), -ENOTUNIQ);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_non_null(strstr(err.msg, vda));
	assert_non_null(strstr(err.msg, "lakecrypttab line 2"));
	/* The line asked for the uuid: the advice is to change it (issue
	 * 11 review, finding 11a), not to name the disk in the request. */
	assert_non_null(strstr(err.msg, "change /etc/lakecrypt/lakecrypttab line 2 to name the disk itself"));
	assert_non_null(strstr(err.msg, vdb));
	assert_non_null(strstr(err.msg, "more than one block device"));
	assert_null(strstr(err.msg, "vdc"));
	/* Whichever of the two the link points to. */
	assert_int_equal(open_by_uuid(e, &roots, vdb, u, &err), -ENOTUNIQ);
	assert_non_null(strstr(err.msg, vda));
	/* Upper-case in udev's record or the disk's: the same uuid. */
	snprintf(rec, sizeof(rec), "E:ID_FS_TYPE=lakecrypt\nE:ID_FS_UUID=%s\nE:LAKECRYPT_DETACHED=0\n", up);
	put(root, "udev/b253:16", rec);
	snprintf(cmd, sizeof(cmd), "head -c 1048576 /dev/zero | dd of='%s' conv=notrunc status=none", vdb);
	assert_int_equal(system(cmd), 0);	/* udev's view, not the disk's */
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), -ENOTUNIQ);
	assert_non_null(strstr(err.msg, vdb));

	/* udev recorded another file system there: not read, not counted. */
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", e->dev, vdb);
	assert_int_equal(system(cmd), 0);
	put(root, "udev/b253:16", "E:ID_FS_TYPE=ext4\nE:ID_FS_UUID=0a0b\n");
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), 0);
	/* A detached header (its label) is not a volume's disk. */
	snprintf(rec, sizeof(rec), "E:ID_FS_TYPE=lakecrypt\nE:ID_FS_UUID=%s\nE:LAKECRYPT_DETACHED=1\n", u);
	put(root, "udev/b253:16", rec);
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), 0);

	/* vda and vdb are two paths of one disk under dm-0 (multipath):
	 * counted once, through dm-0, whichever is opened. */
	snprintf(rec, sizeof(rec), "E:ID_FS_TYPE=lakecrypt\nE:ID_FS_UUID=%s\n", u);
	put(root, "udev/b253:16", rec);
	fake_blk(root, "dm-0", "254:0\n", e->dev);
	put(root, "sys/vda/holders/dm-0", "");
	put(root, "sys/vdb/holders/dm-0", "");
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), 0);
	assert_int_equal(open_by_uuid(e, &roots, vdb, u, &err), 0);
	/* ... and a copy elsewhere is still one too many. */
	fake_blk(root, "loop3", "7:3\n", e->dev);
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), -ENOTUNIQ);
	assert_non_null(strstr(err.msg, "/loop3"));
	assert_null(strstr(err.msg, "/dm-0"));
	assert_null(strstr(err.msg, "/vdb"));

	/* The agent's own mappings (plaintext) are never looked at, and a
	 * device of size 0 (an empty loop) is not read. */
	put(root, "sys/loop3/dm/uuid", "LAKECRYPT-0123\n");
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), 0);
	put(root, "sys/loop3/dm/uuid", "mpath-3600\n");
	put(root, "sys/loop3/size", "0\n");
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), 0);
	put(root, "sys/loop3/size", "32768\n");
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), -ENOTUNIQ);

	/* Named by a path that is the disk itself (no uuid): no scan, the
	 * admin chose this device. */
	assert_int_equal(open_by_uuid(e, &roots, vda, NULL, &err), 0);

	/* Through any symbolic link (review 11b #3: by-partuuid, by-label,
	 * by-id/lvm-pv-uuid-*, /dev/VG/LV are named by disk contents; the
	 * agent used to scan for two literal prefixes only): scanned. */
	{
		char lnk[256], odd[300];

		snprintf(lnk, sizeof(lnk), "%s/by-partuuid-x", root);
		assert_int_equal(symlink(vda, lnk), 0);
		assert_int_equal(open_by_uuid(e, &roots, lnk, NULL, &err), -ENOTUNIQ);
		assert_non_null(strstr(err.msg, "a symbolic link, which another disk can take"));
		assert_non_null(strstr(err.msg, "/loop3"));
		/* Not plain (//, /./, /../, /. at the end): refused before
		 * anything is opened, whatever it names. */
		snprintf(odd, sizeof(odd), "%s//vda", dev);
		assert_int_equal(open_by_uuid(e, &roots, odd, NULL, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "is not a plain path"));
		snprintf(odd, sizeof(odd), "%s/./vda", dev);
		assert_int_equal(open_by_uuid(e, &roots, odd, NULL, &err), -EINVAL);
		snprintf(odd, sizeof(odd), "%s/../dev/vda", dev);
		assert_int_equal(open_by_uuid(e, &roots, odd, NULL, &err), -EINVAL);
		snprintf(odd, sizeof(odd), "%s/.", lnk);
		assert_int_equal(open_by_uuid(e, &roots, odd, NULL, &err), -EINVAL);
		/* the copy gone: the link opens */
		put(root, "sys/loop3/size", "0\n");
		assert_int_equal(open_by_uuid(e, &roots, lnk, NULL, &err), 0);
		put(root, "sys/loop3/size", "32768\n");
		unlink(lnk);
	}

	/* sysfs that cannot be listed: refused, never guessed. */
	roots.sys_block = "/nonexistent/sys/class/block";
	assert_int_equal(open_by_uuid(e, &roots, vda, u, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "cannot list block devices"));
}

/*
 * lakecrypttab device paths are plain (review 11b #3): /dev/disk//by-uuid/U
 * used to pass the grammar and then open without the uuid binding or the
 * scan for copies.  The same rule as lc_crypttab_path_plain() on its own.
 */
static void test_crypttab_plain_paths(void **state)
{
	static const struct { const char *dev; bool ok; } c[] = {
		{ "/dev/disk/by-uuid/3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f", true },
		{ "/dev/disk//by-uuid/3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f", false },
		{ "/dev//disk/by-lakecrypt/ws/p", false },
		{ "/dev/disk/by-uuid/./3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f", false },
		{ "/dev/disk/by-id/../by-uuid/3f2c9d1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f", false },
		{ "/dev/sdb/", true },	/* opens nothing: ENOTDIR */
		{ "/dev/sdb//", false },
		{ "/dev/sdb/..", false },
		{ "/dev/sdb/.", false },
		{ "/dev/./sdb", false },
		{ "/dev/.sdb", true },
		{ "/dev/sdb..", true },
		{ "/dev/disk/by-id/wwn-0x5000c500a1b2c3d5", true },
	};
	struct env *e = *state;
	char tab[PATH_MAX];

	snprintf(tab, sizeof(tab), "%s/lakecrypttab-plain", e->dir);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct lc_crypttab_entry ent;
		struct lc_error err = { 0 };
		FILE *f = fopen(tab, "w");
		int r;

		assert_non_null(f);
		fprintf(f, "ledger %s ws1\n", c[i].dev);
		fclose(f);
		r = lc_crypttab_find(tab, "ledger", &ent, &err);
		if (c[i].ok) {
			assert_int_equal(r, 1);
		} else {
			assert_int_equal(r, -EINVAL);
			if (!strstr(err.msg, "is not a plain path: no \"//\", \"/./\", \"/../\", and no \"/.\" or \"/..\" at the end"))
				fail_msg("%s: %s", c[i].dev, err.msg);
		}
		assert_int_equal(lc_crypttab_path_plain(c[i].dev, strlen(c[i].dev)), c[i].ok);
	}
	assert_true(lc_crypttab_path_plain("/", 1));
	assert_false(lc_crypttab_path_plain("//", 2));
	assert_false(lc_crypttab_path_plain("", 0));
	assert_false(lc_crypttab_path_plain("dev/sdb", 7));
	assert_false(lc_crypttab_path_plain("/..", 3));
	unlink(tab);
}

/* A generator that keeps failing fails format (no uuid) after bounded
 * retries, before any KMS call; it used to loop for ever. */
static void test_uuid_rand_failure(void **state)
{
	struct env *e = *state;
	struct lc_format_args fa = { .device = e->dev, .workspace = "ws1", .project = "db1",
				     .segment_size = 4096 };
	struct lc_error err = { 0 };

	lc_rand_fail_next(LC_RAND_ATTEMPTS);
	assert_int_equal(lc_volume_format(&e->venv, &e->kc, &fa, NULL, &err), -EIO);
	lc_rand_fail_next(0);
	assert_non_null(strstr(err.msg, "volume uuid"));
	assert_int_equal(counters(e).wrap, 0);
	format_dev(e, 4096, NULL, NULL);
}

/* A cache shreds its device on close: what is on it must not be taken. */
static void test_cache_refuses_signatures(void **state)
{
	struct env *e = *state;
	struct lc_cache_args ca = { .device = e->dev, .workspace = "ws1", .name = "c9",
				    .segment_size = 1u << 20 };
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	char cmd[256];

	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &v, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "lakecrypt volume"));
	snprintf(cmd, sizeof(cmd), "mke2fs -q -F -t ext4 %s 4096 >/dev/null 2>&1", e->dev);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &v, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "ext4"));
	assert_int_equal(e->fk.creates, 0);
	ca.force = true;
	assert_int_equal(lc_volume_cache_open(&e->venv, &e->kc, &ca, &v, &err), 0);
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
}

/* A forged copy B with another project (and its own, consistent wrap
 * context) and a higher seqno: the genuine copy A still opens. */
static void test_forged_label_copy(void **state)
{
	struct env *e = *state;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	struct lc_kek_identity id;
	char ctx[LC_KEK_CONTEXT_MAX];

	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	h->seqno += 100;
	snprintf(h->project, sizeof(h->project), "evil");
	id = (struct lc_kek_identity){ h->uuid, h->workspace, h->project, h->keyconfig };
	assert_int_equal(lc_kek_context(&id, ctx), 0);
	free(h->wrap_context.p);
	h->wrap_context.p = (uint8_t *)strdup(ctx);
	h->wrap_context.len = strlen(ctx);
	write_forged_b(e, h);
	lc_header_free(h);
	lc_provider_counters_reset(&e->prov);
	if (open_vol(e, "ws1", NULL, &v, &err))
		fail_msg("open: %s", err.msg);
	assert_string_equal(v->project, "db1");
	assert_int_equal(counters(e).unwrap, 2);	/* the forged context fails at the KMS */
	lc_volume_free(v);
}

/* A local KMS that denies one blob (its last byte @deny_last, -1: none):
 * a copy naming a key version the KMS refuses (Azure reads the version
 * from the blob; a stale copy names one since disabled). */
static int deny_last = -1;

static int denying_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			  const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			  struct lc_provider_reply *reply, struct lc_error *err)
{
	if (deny_last >= 0 && blob->len && blob->p[blob->len - 1] == (uint8_t)deny_last)
		return lc_err(err, -EACCES, LC_ERRC_DENIED,
			      "HTTP 403 Forbidden: KeyDisabled: the operation is not allowed on a disabled key version");
	return lc_kms_local_ops.unwrap(priv, key_ref, blob, context, timeout_ms, pt, reply, err);
}

/* A copy whose blob the KMS denies (stale or forged) does not hide the
 * genuine copy; a denial of the one blob both copies hold costs one call
 * and names the key version the header records. */
static void test_denied_copy_passed_over(void **state)
{
	struct env *e = *state;
	struct lc_provider_ops ops = lc_kms_local_ops;
	struct lc_header *h = NULL;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };
	char ver[LC_HDR_CMK_VERSION_SIZE];
	uint8_t genuine_last;

	ops.unwrap = denying_unwrap;
	lc_provider_close(&e->prov);
	lc_provider_init(&e->prov, &ops, e->kms);
	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
	snprintf(ver, sizeof(ver), "%s", h->cmk_version);
	genuine_last = h->wrapped_kek.p[h->wrapped_kek.len - 1];
	/* copy B: newer, the same identity, another blob the KMS denies */
	h->seqno += 100;
	h->wrapped_kek.p[h->wrapped_kek.len - 1] ^= 1;
	deny_last = h->wrapped_kek.p[h->wrapped_kek.len - 1];
	write_forged_b(e, h);
	lc_header_free(h);
	lc_provider_counters_reset(&e->prov);
	if (open_vol(e, "ws1", NULL, &v, &err))
		fail_msg("open: %s", err.msg);
	assert_string_equal(v->project, "db1");
	assert_int_equal(counters(e).unwrap, 2);	/* the denied copy, the genuine one */
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	v = NULL;

	/* the genuine blob denied (both copies hold it now): one call */
	deny_last = genuine_last;
	lc_provider_counters_reset(&e->prov);
	assert_true(open_vol(e, "ws1", NULL, &v, &err) < 0);
	assert_null(v);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_int_equal(counters(e).unwrap, 1);
	assert_true(ver[0] != '\0');
	{
		char want[LC_HDR_CMK_VERSION_SIZE + 64];

		snprintf(want, sizeof(want), "KEK is wrapped under key version %s]", ver);
		assert_non_null(strstr(err.msg, want));
	}
	assert_non_null(strstr(err.msg, "KeyDisabled"));
	deny_last = -1;
}

/* A forged copy with a huge seqno neither exhausts the counter nor lifts
 * the seqno past what the rollback memory holds (issue 6 review). */
static void test_forged_seqno(void **state)
{
	static const uint64_t forged[] = { UINT64_MAX, 1ull << 63 };
	struct env *e = *state;
	struct lc_seqstore seqs;
	struct lc_error err = { 0 };

	assert_int_equal(lc_seqstore_open(&seqs, e->dir, &err), 0);
	e->venv.seqs = &seqs;
	for (size_t k = 0; k < 2; k++) {
		struct lc_header *h = NULL, *back = NULL;
		struct lc_volume *v = NULL;
		uint8_t *old = malloc(1u << 20);
		uint64_t genuine;
		int fd;

		format_force(e);
		fd = open(e->dev, O_RDWR);
		assert_int_equal(pread(fd, old, 1u << 20, 0), 1 << 20);
		assert_int_equal(lc_header_read_path(e->dev, &h, NULL, &err), 0);
		genuine = h->seqno;
		h->seqno = forged[k];
		write_forged_b(e, h);
		lc_header_free(h);
		assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
		assert_int_equal(lc_volume_rewrap(&e->venv, v, &err), 0);
		assert_int_equal(lc_header_read_path(e->dev, &back, NULL, &err), 0);
		assert_int_equal(back->seqno, genuine + 2);	/* repair, then rewrap */
		lc_header_free(back);
		assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
		lc_volume_free(v);
		v = NULL;
		/* The header from before is still refused. */
		assert_int_equal(pwrite(fd, old, 1u << 20, 0), 1 << 20);
		close(fd);
		assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), -ESTALE);
		free(old);
	}
	e->venv.seqs = NULL;
	lc_seqstore_close(&seqs);
}

/* Rollback memory that cannot be saved (full state directory) fails the
 * open and the re-wrap, never just a warning (issue 6 review). */
static void test_seqstore_write_fails(void **state)
{
	struct env *e = *state;
	struct lc_seqstore seqs;
	struct lc_volume *v = NULL;
	struct lc_error err = { 0 };

	assert_int_equal(lc_seqstore_open(&seqs, e->dir, &err), 0);
	e->venv.seqs = &seqs;
	format_dev(e, 4096, NULL, NULL);
	assert_int_equal(open_vol(e, "ws1", NULL, &v, &err), 0);
	lc_file_fail_io_at(2);		/* the write of seqnos.json */
	assert_true(lc_volume_rewrap(&e->venv, v, &err) < 0);
	lc_file_fail_io_at(0);
	assert_non_null(strstr(err.msg, "rollback memory could not be saved"));
	assert_int_equal(lc_volume_close(&e->venv, v, &err), 0);
	lc_volume_free(v);
	v = NULL;
	lc_file_fail_io_at(2);
	assert_true(open_vol(e, "ws1", NULL, &v, &err) < 0);
	lc_file_fail_io_at(0);
	assert_non_null(strstr(err.msg, "cannot be remembered"));
	assert_null(v);
	assert_int_equal(e->fk.ndevs, 0);
	e->venv.seqs = NULL;
	lc_seqstore_close(&seqs);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_format_roundtrip),
		T(test_open_one_unwrap),
		T(test_wrong_workspace),
		T(test_disabled_cmk_denied),
		T(test_copy_a_corrupted),
		T(test_both_copies_corrupted),
		T(test_swapped_deks),
		T(test_batches),
		T(test_failure_unwinds),
		T(test_detached),
		T(test_format_pins),
		T(test_cache),
		T(test_revoke),
		T(test_rewrap),
		T(test_resize_grow_and_shrink),
		T(test_resize_detached),
		T(test_resize_refusals),
		T(test_resize_interrupted),
		T(test_rediscover),
		T(test_open_65536),
		T(test_header_authenticated),
		T(test_cipher_allow_list),
		T(test_identity_bound),
		T(test_forged_copy_loses),
		T(test_rollback_refused),
		T(test_reformat_erases),
		T(test_force_wipes_signatures),
		T(test_detached_never_clobbers),
		T(test_migrate_v1),
		T(test_uuid_rand_failure),
		T(test_cache_refuses_signatures),
		T(test_forged_label_copy),
		T(test_denied_copy_passed_over),
		T(test_forged_seqno),
		T(test_seqstore_write_fails),
		T(test_open_by_uuid_refuses_copies),
		T(test_crypttab_plain_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
