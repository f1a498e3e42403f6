// SPDX-License-Identifier: GPL-2.0
/* The embedded local KMS: states, rotation, context, blobs, files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "kms-local.h"

struct env {
	char root[64];
	char dir[96];
	struct lc_kms_local *kms;
	int64_t now;
	int64_t up;		/* boot-time clock, s */
};

static int64_t fake_uptime(void *arg)
{
	return ((struct env *)arg)->up;
}

static int64_t fake_time(void *arg)
{
	return ((struct env *)arg)->now;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void reopen(struct env *e)
{
	struct lc_error err = { 0 };

	lc_kms_local_close(e->kms);
	e->kms = NULL;
	assert_int_equal(lc_kms_local_open(&e->kms, e->dir, &err), 0);
	lc_kms_local_set_clock(e->kms, fake_time, e);
	lc_kms_local_set_uptime(e->kms, fake_uptime, e);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	strcpy(e->root, "/tmp/lc-kms-test.XXXXXX");
	assert_non_null(mkdtemp(e->root));
	snprintf(e->dir, sizeof(e->dir), "%s/kms", e->root);
	e->now = 1700000000;
	reopen(e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	lc_kms_local_close(e->kms);
	nftw(e->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

static void create(struct env *e, struct lc_kms_key_info *info)
{
	struct lc_error err = { 0 };

	assert_int_equal(lc_kms_local_create(e->kms, "test key", info, &err), 0);
}

static struct lc_buf enc(struct env *e, const char *id, const char *ctx, uint32_t *ver)
{
	struct lc_buf blob;
	struct lc_error err = { 0 };
	const uint8_t pt[32] = "0123456789abcdef0123456789abcde";

	assert_int_equal(lc_kms_local_encrypt(e->kms, id, pt, sizeof(pt), ctx, &blob, ver, &err), 0);
	return blob;
}

/* Decrypt and return 0 or the error, checking the plaintext on success. */
static int dec(struct env *e, const char *id, const struct lc_buf *blob, const char *ctx,
	       uint32_t *ver, struct lc_error *err)
{
	struct lc_secret pt;
	int r = lc_kms_local_decrypt(e->kms, id, blob->p, blob->len, ctx, &pt, ver, err);

	if (!r) {
		assert_int_equal(pt.len, 32);
		assert_memory_equal(pt.p, "0123456789abcdef0123456789abcde", 32);
		lc_secret_free(&pt);
	} else {
		assert_null(pt.p);
	}
	return r;
}

static mode_t file_mode(struct env *e, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	if (stat(path, &st))
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static int count_files(struct env *e, const char *substr)
{
	DIR *d = opendir(e->dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, substr))
			n++;
	closedir(d);
	return n;
}

static void test_create_files_list(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info a, b, *keys;
	struct lc_error err = { 0 };
	char name[96];
	size_t n;

	create(e, &a);
	e->now++;
	create(e, &b);
	assert_int_equal(strlen(a.key_id), LC_KMS_LOCAL_ID_LEN);
	assert_memory_equal(a.key_id, "lk-", 3);
	assert_string_not_equal(a.key_id, b.key_id);
	assert_int_equal(a.state, LC_KEY_ENABLED);
	assert_int_equal(a.primary_version, 1);
	assert_int_equal(a.versions, 1);
	assert_int_equal(a.created, 1700000000);
	assert_string_equal(a.description, "test key");

	assert_int_equal(file_mode(e, "."), 0700);
	snprintf(name, sizeof(name), "%s.json", a.key_id);
	assert_int_equal(file_mode(e, name), 0600);
	snprintf(name, sizeof(name), "%s.v1.key", a.key_id);
	assert_int_equal(file_mode(e, name), 0600);
	assert_int_equal(file_mode(e, ".lock"), 0600);
	assert_int_equal(count_files(e, ".tmp."), 0);

	assert_int_equal(lc_kms_local_list(e->kms, &keys, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].key_id, a.key_id);	/* creation order */
	assert_string_equal(keys[1].key_id, b.key_id);
	free(keys);

	assert_int_equal(lc_kms_local_create(e->kms, "bad\ndesc", NULL, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
}

static void test_roundtrip_and_context(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	struct lc_buf blob, blob2;
	uint32_t ver = 0;

	create(e, &k);
	blob = enc(e, k.key_id, "lakecrypt:volume:1", &ver);
	assert_int_equal(ver, 1);
	assert_int_equal(dec(e, k.key_id, &blob, "lakecrypt:volume:1", &ver, &err), 0);
	assert_int_equal(dec(e, NULL, &blob, "lakecrypt:volume:1", NULL, &err), 0);	/* self-describing */

	assert_int_equal(dec(e, k.key_id, &blob, "lakecrypt:volume:2", NULL, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_int_equal(dec(e, k.key_id, &blob, "", NULL, &err), -EBADMSG);
	assert_int_equal(dec(e, k.key_id, &blob, NULL, NULL, &err), -EBADMSG);
	/* NULL and "" are the same (empty) context */
	blob2 = enc(e, k.key_id, NULL, NULL);
	assert_int_equal(dec(e, k.key_id, &blob2, "", NULL, &err), 0);
	free(blob.p);
	free(blob2.p);
}

static void test_tampered_blob(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k, other;
	struct lc_error err = { 0 };
	struct lc_buf blob, t;

	create(e, &k);
	create(e, &other);
	blob = enc(e, k.key_id, "ctx", NULL);
	t.p = malloc(blob.len);
	t.len = blob.len;
	for (size_t i = 0; i < blob.len; i++) {
		memcpy(t.p, blob.p, blob.len);
		t.p[i] ^= 0x01;
		assert_int_not_equal(dec(e, k.key_id, &t, "ctx", NULL, &err), 0);
		assert_int_equal(err.cls, LC_ERRC_INVALID);
	}
	memcpy(t.p, blob.p, blob.len);
	for (size_t len = 0; len < blob.len; len++) {
		t.len = len;
		assert_int_equal(dec(e, k.key_id, &t, "ctx", NULL, &err), -EBADMSG);
		assert_int_equal(err.cls, LC_ERRC_INVALID);
	}
	/* The blob names its key: another key id is refused. */
	assert_int_equal(dec(e, other.key_id, &blob, "ctx", NULL, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_non_null(strstr(err.msg, "IncorrectKey"));
	free(t.p);
	free(blob.p);
}

static void test_unknown_key(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info info;
	struct lc_error err = { 0 };
	const uint8_t pt[4] = "abc";
	struct lc_buf blob;

	assert_int_equal(lc_kms_local_describe(e->kms, "lk-00000000000000000000000000000000", &info, &err),
			 -ENOENT);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(err.msg, "NotFound"));
	assert_int_equal(lc_kms_local_encrypt(e->kms, "../../etc/passwd", pt, 4, "", &blob, NULL, &err),
			 -ENOENT);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_int_equal(lc_kms_local_encrypt(e->kms, "lk-00000000000000000000000000000000", pt, 4, "",
					      &blob, NULL, &err), -ENOENT);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_null(blob.p);
}

/* Bring a fresh key to @st. */
static void to_state(struct env *e, struct lc_kms_key_info *k, enum lc_key_state st)
{
	struct lc_error err = { 0 };

	create(e, k);
	switch (st) {
	case LC_KEY_DISABLED:
		assert_int_equal(lc_kms_local_disable(e->kms, k->key_id, k, &err), 0);
		break;
	case LC_KEY_PENDING_DELETION:
		assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k->key_id, 7, k, &err), 0);
		break;
	case LC_KEY_DESTROYED:
		assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k->key_id, 7, k, &err), 0);
		assert_int_equal(lc_kms_local_destroy(e->kms, k->key_id, LC_KMS_LOCAL_DESTROY_NOW, k, &err), 0);
		break;
	default:
		break;
	}
	assert_int_equal(k->state, st);
}

enum op { DISABLE, ENABLE, ROTATE, SCHEDULE, CANCEL, DESTROY, DESTROY_NOW, N_OPS };

static int apply(struct env *e, enum op op, const char *id, struct lc_kms_key_info *k,
		 struct lc_error *err)
{
	switch (op) {
	case DISABLE:
		return lc_kms_local_disable(e->kms, id, k, err);
	case ENABLE:
		return lc_kms_local_enable(e->kms, id, k, err);
	case ROTATE:
		return lc_kms_local_rotate(e->kms, id, k, err);
	case SCHEDULE:
		return lc_kms_local_schedule_deletion(e->kms, id, 30, k, err);
	case CANCEL:
		return lc_kms_local_cancel_deletion(e->kms, id, k, err);
	case DESTROY:
		return lc_kms_local_destroy(e->kms, id, 0, k, err);
	case DESTROY_NOW:
		return lc_kms_local_destroy(e->kms, id, LC_KMS_LOCAL_DESTROY_NOW, k, err);
	case N_OPS:
		break;
	}
	return -EINVAL;
}

/* Every state x every operation: the resulting state, or refusal (-1). */
static void test_state_machine(void **state)
{
	struct env *e = *state;
	static const int table[4][N_OPS] = {
		/* DISABLE ENABLE ROTATE SCHEDULE CANCEL DESTROY DESTROY_NOW */
		[0] = { LC_KEY_DISABLED, LC_KEY_ENABLED, LC_KEY_ENABLED, LC_KEY_PENDING_DELETION, -1, -1, -1 },
		[1] = { LC_KEY_DISABLED, LC_KEY_ENABLED, -1, LC_KEY_PENDING_DELETION, -1, -1, -1 },
		[2] = { -1, -1, -1, -1, LC_KEY_DISABLED, -1, LC_KEY_DESTROYED },
		[3] = { -1, -1, -1, -1, -1, -1, -1 },
	};
	static const enum lc_key_state from[4] = { LC_KEY_ENABLED, LC_KEY_DISABLED,
		LC_KEY_PENDING_DELETION, LC_KEY_DESTROYED };

	for (int s = 0; s < 4; s++) {
		for (int op = 0; op < N_OPS; op++) {
			struct lc_kms_key_info k, after;
			struct lc_error err = { 0 };
			int r;

			to_state(e, &k, from[s]);
			r = apply(e, op, k.key_id, &after, &err);
			assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &after, NULL), 0);
			if (table[s][op] < 0) {
				if (r != -EPERM)
					fail_msg("%s: op %d gave %d (%s), expected refusal",
						 lc_key_state_name(from[s]), op, r, err.msg);
				assert_int_equal(err.cls, LC_ERRC_INVALID);
				assert_non_null(strstr(err.msg, k.key_id));
				assert_int_equal(after.state, from[s]);	/* unchanged */
			} else {
				if (r != 0)
					fail_msg("%s: op %d failed: %s", lc_key_state_name(from[s]), op, err.msg);
				assert_int_equal(after.state, table[s][op]);
			}
		}
	}
}

static void expect_denied(struct env *e, const char *id, const struct lc_buf *blob,
			  const char *what)
{
	struct lc_error err = { 0 };
	struct lc_buf b2;
	const uint8_t pt[4] = "abc";

	assert_int_equal(dec(e, id, blob, "ctx", NULL, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_non_null(strstr(err.msg, what));
	assert_int_equal(lc_kms_local_encrypt(e->kms, id, pt, 4, "ctx", &b2, NULL, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_null(b2.p);
}

static void test_denials(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	struct lc_buf blob;
	char name[96];

	create(e, &k);
	blob = enc(e, k.key_id, "ctx", NULL);
	assert_int_equal(lc_kms_local_disable(e->kms, k.key_id, NULL, &err), 0);
	expect_denied(e, k.key_id, &blob, "disabled");
	assert_int_equal(lc_kms_local_enable(e->kms, k.key_id, NULL, &err), 0);
	assert_int_equal(dec(e, k.key_id, &blob, "ctx", NULL, &err), 0);

	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 6, NULL, &err), -EINVAL);
	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 31, NULL, &err), -EINVAL);
	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, &k, &err), 0);
	assert_int_equal(k.deletion_date, e->now + 7 * 86400);
	expect_denied(e, k.key_id, &blob, "pending deletion");
	assert_int_equal(lc_kms_local_destroy(e->kms, k.key_id, 0, NULL, &err), -EPERM);
	assert_non_null(strstr(err.msg, "pending deletion until"));
	/* cancel leaves it disabled, as AWS does */
	assert_int_equal(lc_kms_local_cancel_deletion(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_DISABLED);
	assert_int_equal(k.deletion_date, 0);
	expect_denied(e, k.key_id, &blob, "disabled");

	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, NULL, &err), 0);
	assert_int_equal(lc_kms_local_destroy(e->kms, k.key_id, LC_KMS_LOCAL_DESTROY_NOW, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_DESTROYED);
	expect_denied(e, k.key_id, &blob, "destroyed");
	snprintf(name, sizeof(name), "%s.v1.key", k.key_id);
	assert_int_equal(file_mode(e, name), (mode_t)-1);	/* material gone */
	assert_int_equal(count_files(e, ".key"), 0);
	reopen(e);
	expect_denied(e, k.key_id, &blob, "destroyed");
	free(blob.p);
}

/* A key policy that denies use: encrypt and decrypt denied, the state
 * still enabled (what a removed AWS grant looks like), kept across a
 * reopen, undone by allowing. */
static void test_policy_deny(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	struct lc_buf blob;

	create(e, &k);
	assert_false(k.policy_deny);
	blob = enc(e, k.key_id, "ctx", NULL);
	assert_int_equal(lc_kms_local_set_policy(e->kms, k.key_id, true, &k, &err), 0);
	assert_true(k.policy_deny);
	assert_int_equal(k.state, LC_KEY_ENABLED);
	expect_denied(e, k.key_id, &blob, "AccessDenied");
	reopen(e);
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_ENABLED);
	assert_true(k.policy_deny);
	expect_denied(e, k.key_id, &blob, "AccessDenied");
	assert_int_equal(lc_kms_local_set_policy(e->kms, k.key_id, false, &k, &err), 0);
	assert_int_equal(dec(e, k.key_id, &blob, "ctx", NULL, &err), 0);
	assert_int_equal(lc_kms_local_set_policy(e->kms, "lk-00000000000000000000000000000000", true,
						 NULL, &err), -ENOENT);
	free(blob.p);
}

/* The waiting period runs out: the key counts as destroyed at once and
 * purge erases it. */
static void test_deletion_date(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k, keep;
	struct lc_error err = { 0 };
	struct lc_buf blob;
	unsigned int n = 99;

	create(e, &k);
	create(e, &keep);
	blob = enc(e, k.key_id, "ctx", NULL);
	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, NULL, &err), 0);
	e->now += 7 * 86400 - 1;
	e->up += 7 * 86400 - 1;
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_PENDING_DELETION);
	e->now += 1;
	e->up += 1;
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_DESTROYED);
	expect_denied(e, k.key_id, &blob, "destroyed");
	assert_int_equal(lc_kms_local_cancel_deletion(e->kms, k.key_id, NULL, &err), -EPERM);
	assert_int_equal(count_files(e, ".key"), 2);
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_files(e, ".key"), 1);	/* only the other key's */
	assert_int_equal(lc_kms_local_destroy(e->kms, k.key_id, 0, NULL, &err), -EPERM);
	free(blob.p);
}

static void test_rotation(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	struct lc_buf b1, b2, b3;
	uint32_t ver;

	create(e, &k);
	b1 = enc(e, k.key_id, "ctx", &ver);
	assert_int_equal(ver, 1);
	assert_int_equal(lc_kms_local_rotate(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.primary_version, 2);
	assert_int_equal(k.versions, 2);
	b2 = enc(e, k.key_id, "ctx", &ver);
	assert_int_equal(ver, 2);
	assert_int_equal(lc_kms_local_rotate(e->kms, k.key_id, &k, &err), 0);
	b3 = enc(e, k.key_id, "ctx", &ver);
	assert_int_equal(ver, 3);
	reopen(e);
	assert_int_equal(dec(e, k.key_id, &b1, "ctx", &ver, &err), 0);
	assert_int_equal(ver, 1);
	assert_int_equal(dec(e, k.key_id, &b2, "ctx", &ver, &err), 0);
	assert_int_equal(ver, 2);
	assert_int_equal(dec(e, k.key_id, &b3, "ctx", &ver, &err), 0);
	assert_int_equal(ver, 3);
	assert_int_equal(count_files(e, ".key"), 3);
	free(b1.p);
	free(b2.p);
	free(b3.p);
}

static void test_reload(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k, d, after;
	struct lc_error err = { 0 };
	struct lc_buf blob;

	create(e, &k);
	to_state(e, &d, LC_KEY_DISABLED);
	blob = enc(e, k.key_id, "ctx", NULL);
	reopen(e);
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &after, &err), 0);
	assert_memory_equal(&after, &k, sizeof(k));
	assert_int_equal(lc_kms_local_describe(e->kms, d.key_id, &after, &err), 0);
	assert_int_equal(after.state, LC_KEY_DISABLED);
	assert_int_equal(dec(e, k.key_id, &blob, "ctx", NULL, &err), 0);
	free(blob.p);
}

static void test_permissions(void **state)
{
	struct env *e = *state;
	struct lc_kms_local *k2 = NULL;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	char path[256];

	create(e, &k);
	snprintf(path, sizeof(path), "%s/%s.json", e->dir, k.key_id);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), -EPERM);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(err.msg, "0600"));
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/%s.v1.key", e->dir, k.key_id);
	assert_int_equal(chmod(path, 0640), 0);
	{
		const uint8_t pt[4] = "abc";
		struct lc_buf blob;

		assert_int_equal(lc_kms_local_encrypt(e->kms, k.key_id, pt, 4, "", &blob, NULL, &err), -EPERM);
		assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	}
	assert_int_equal(chmod(e->dir, 0755), 0);
	assert_int_equal(lc_kms_local_open(&k2, e->dir, &err), -EPERM);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(err.msg, "0700"));
	assert_null(k2);
	assert_int_equal(chmod(e->dir, 0700), 0);
	/* umask does not loosen what is created */
	{
		mode_t old = umask(0);

		create(e, &k);
		umask(old);
		snprintf(path, sizeof(path), "%s.json", k.key_id);
		assert_int_equal(file_mode(e, path), 0600);
	}
}

static void test_corrupt_metadata(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	char path[256];
	int fd;

	create(e, &k);
	snprintf(path, sizeof(path), "%s/%s.json", e->dir, k.key_id);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"format\":1,", 12), 12);
	close(fd);
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), -EUCLEAN);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
}

/* No leftovers: every material file belongs to a live key version. */
static void check_store_consistent(struct env *e)
{
	struct lc_kms_key_info *keys;
	struct lc_error err = { 0 };
	size_t n;
	int want = 0;

	assert_int_equal(count_files(e, ".tmp."), 0);
	assert_int_equal(lc_kms_local_purge(e->kms, NULL, &err), 0);	/* as the agent at start */
	assert_int_equal(lc_kms_local_list(e->kms, &keys, &n, &err), 0);
	for (size_t i = 0; i < n; i++)
		if (keys[i].state != LC_KEY_DESTROYED)
			want += (int)keys[i].versions;
	assert_int_equal(count_files(e, ".key"), want);
	free(keys);
}

/* Cut each operation at every file-system step: it fails cleanly, the
 * store holds the old or the new state, nothing partial is left. */
static void test_atomicity(void **state)
{
	struct env *e = *state;

	for (int op = -1; op < N_OPS; op++) {
		unsigned int cut;

		for (cut = 1;; cut++) {
			struct lc_kms_key_info k, before = { 0 }, after;
			struct lc_error err = { 0 };
			struct lc_buf blob = { 0 };
			int r;

			if (op == -1) {	/* create */
				lc_kms_local_fail_io_at(e->kms, cut);
				r = lc_kms_local_create(e->kms, "cut", &k, &err);
			} else {
				create(e, &k);
				blob = enc(e, k.key_id, NULL, NULL);
				if (op == ENABLE)
					assert_int_equal(lc_kms_local_disable(e->kms, k.key_id, &k, &err), 0);
				if (op == CANCEL || op == DESTROY || op == DESTROY_NOW)
					assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, &k, &err), 0);
				before = k;
				if (op == DESTROY)	/* the date has passed */
					e->now += 8 * 86400, e->up += 8 * 86400;
				lc_kms_local_fail_io_at(e->kms, cut);
				r = apply(e, op, k.key_id, &after, &err);
			}
			lc_kms_local_fail_io_at(e->kms, 0);
			if (r == 0 && lc_kms_local_io_steps(e->kms) < cut) {
				if (op != -1)
					free(blob.p);
				break;	/* the cut came after the last step */
			}
			if (r)
				assert_int_equal(err.cls, LC_ERRC_INTERNAL);
			reopen(e);
			check_store_consistent(e);
			if (op >= 0) {
				struct lc_error e2 = { 0 };

				assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &after, &e2), 0);
				if (r && !(after.state == before.state || op == DESTROY || op == DESTROY_NOW ||
					   after.versions == before.versions + 1))
					fail_msg("op %d cut at %u: %s -> %s (%s)", op, cut,
						 lc_key_state_name(before.state), lc_key_state_name(after.state), err.msg);
				if (r)	/* old state, or new (a cut after the commit point) */
					assert_true(after.state == before.state ||
						    op == DESTROY || op == DESTROY_NOW ||
						    after.versions == before.versions + 1);
				if (after.state == LC_KEY_DESTROYED)
					assert_int_equal(dec(e, k.key_id, &blob, NULL, NULL, &e2), -EKEYREVOKED);
				else if (after.state == LC_KEY_ENABLED)
					assert_int_equal(dec(e, k.key_id, &blob, NULL, NULL, &e2), 0);
				free(blob.p);
			}
		}
		assert_true(cut > 3);	/* the operation did write */
	}
}

/* A reader in another process never sees a torn store while keys rotate. */
static void test_concurrent_reader(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	struct lc_buf blob;
	pid_t pid;
	int st;

	create(e, &k);
	blob = enc(e, k.key_id, "ctx", NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct lc_kms_local *r = NULL;

		if (lc_kms_local_open(&r, e->dir, &err))
			_exit(2);
		for (int i = 0; i < 300; i++) {
			struct lc_secret pt;
			struct lc_kms_key_info info;

			if (lc_kms_local_decrypt(r, k.key_id, blob.p, blob.len, "ctx", &pt, NULL, &err))
				_exit(3);
			lc_secret_free(&pt);
			if (lc_kms_local_describe(r, k.key_id, &info, &err) || info.versions < 1)
				_exit(4);
		}
		lc_kms_local_close(r);
		_exit(0);
	}
	for (int i = 0; i < 40; i++)
		assert_int_equal(lc_kms_local_rotate(e->kms, k.key_id, NULL, &err), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	free(blob.p);
}

/* Through the provider interface: what the agent sees. */
static void test_as_provider(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_provider p;
	struct lc_provider_reply reply;
	struct lc_provider_counters c;
	struct lc_error err = { 0 };
	struct lc_secret kek, out;
	struct lc_buf blob;

	create(e, &k);
	lc_kms_local_provider_init(&p, e->kms);
	assert_int_equal(lc_secret_alloc(&kek, 32), 0);
	memset(kek.p, 0x42, 32);
	assert_int_equal(lc_provider_wrap(&p, k.key_id, &kek, "lakecrypt:volume:x", &blob, &reply, &err), 0);
	assert_string_equal(reply.key_id, k.key_id);
	assert_string_equal(reply.key_version, "1");
	assert_memory_equal(reply.request_id, "local-", 6);
	assert_int_equal(lc_provider_unwrap(&p, k.key_id, &blob, "lakecrypt:volume:x", &out, &reply, &err), 0);
	assert_memory_equal(out.p, kek.p, 32);
	lc_secret_free(&out);
	assert_int_equal(lc_provider_unwrap(&p, k.key_id, &blob, "lakecrypt:volume:y", &out, &reply, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_int_equal(reply.attempts, 1);

	assert_int_equal(lc_kms_local_disable(e->kms, k.key_id, NULL, &err), 0);
	assert_int_equal(lc_provider_unwrap(&p, k.key_id, &blob, "lakecrypt:volume:x", &out, &reply, &err), -EKEYREVOKED);
	assert_int_equal(err.cls, LC_ERRC_DENIED);
	assert_int_equal(lc_provider_key_state(&p, k.key_id, &reply, &err), 0);
	assert_int_equal(reply.state, LC_KEY_DISABLED);
	assert_string_equal(reply.key_version, "1");
	assert_int_equal(lc_provider_key_state(&p, "lk-ffffffffffffffffffffffffffffffff", &reply, &err), -ENOENT);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);

	lc_provider_counters(&p, &c);
	assert_int_equal(c.wrap, 1);
	assert_int_equal(c.unwrap, 3);
	assert_int_equal(c.key_state, 2);
	assert_int_equal(c.retries, 0);	/* nothing local is transient */
	lc_provider_close(&p);
	lc_secret_free(&kek);
	free(blob.p);
}

/* A wall clock set forward destroys nothing: the store's elapsed time
 * must pass too, and it survives a restart (a new boot restarts the
 * boot-time clock). */
static void test_clock_jump(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	unsigned int n = 99;

	create(e, &k);
	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, NULL, &err), 0);
	e->now += 365 * 86400;		/* the clock jumps a year */
	e->up += 3 * 86400;
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_PENDING_DELETION);
	assert_int_equal(count_files(e, ".key"), 1);
	/* Restart on a new boot: 3 days are kept, the boot clock starts over. */
	lc_kms_local_close(e->kms);
	e->up = 0;
	assert_int_equal(lc_kms_local_open(&e->kms, e->dir, &err), 0);
	lc_kms_local_set_clock(e->kms, fake_time, e);
	lc_kms_local_set_uptime(e->kms, fake_uptime, e);
	assert_true(lc_kms_local_elapsed(e->kms) >= 3 * 86400);
	e->up += 4 * 86400 - 10;
	assert_int_equal(lc_kms_local_describe(e->kms, k.key_id, &k, &err), 0);
	assert_int_equal(k.state, LC_KEY_PENDING_DELETION);
	assert_int_equal(lc_kms_local_cancel_deletion(e->kms, k.key_id, NULL, &err), 0);
	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, NULL, &err), 0);
	e->up += 7 * 86400;
	e->now += 7 * 86400;
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_files(e, ".key"), 0);
}

/* A key scheduled by a version without the elapsed clock, then the wall
 * clock set forward: nothing is destroyed before 7 days of elapsed time
 * (issue 6 review). */
static void test_legacy_deletion_waits(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	char path[512];
	unsigned int n = 99;
	json_object *o;

	create(e, &k);
	assert_int_equal(lc_kms_local_schedule_deletion(e->kms, k.key_id, 7, NULL, &err), 0);
	snprintf(path, sizeof(path), "%s/%s.json", e->dir, k.key_id);
	o = json_object_from_file(path);
	assert_non_null(o);
	json_object_object_del(o, "deletion_elapsed");
	assert_int_equal(json_object_to_file(path, o), 0);
	json_object_put(o);
	e->now += 30 * 86400;		/* set forward past the deletion date */
	reopen(e);
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(count_files(e, ".key"), 1);
	e->up += 7 * 86400 - 60;
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 0);
	e->up += 120;
	assert_int_equal(lc_kms_local_purge(e->kms, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_files(e, ".key"), 0);
}

static void put_file(struct env *e, const char *name, const char *text)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Opening the store erases nothing: material without metadata, a version
 * the metadata lacks and temp files are moved to quarantine/, intact. */
static void test_open_quarantines(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };
	char name[96], path[512], buf[64] = "";
	unsigned int q = 99;
	ssize_t n;
	int fd;

	create(e, &k);
	put_file(e, "lk-0123456789abcdef0123456789abcdef.v1.key", "orphan material 32 bytes long!!!");
	snprintf(name, sizeof(name), "%s.v2.key", k.key_id);
	put_file(e, name, "a version the metadata lacks....");
	put_file(e, ".tmp.x.json.0000", "interrupted");
	assert_int_equal(lc_kms_local_quarantined(e->kms, &q, &err), 0);
	assert_int_equal(q, 0);
	reopen(e);
	assert_int_equal(lc_kms_local_quarantined(e->kms, &q, &err), 0);
	assert_int_equal(q, 3);
	assert_int_equal(count_files(e, ".key"), 1);	/* the real key's */
	assert_int_equal(count_files(e, ".tmp."), 0);
	/* Intact in quarantine/. */
	snprintf(path, sizeof(path), "%s/quarantine", e->dir);
	{
		DIR *d = opendir(path);
		struct dirent *de;
		bool found = false;

		assert_non_null(d);
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, "lk-0123456789abcdef0123456789abcdef.v1.key", 42)) {
				snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s",
					 de->d_name);
				found = true;
			}
		closedir(d);
		assert_true(found);
	}
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_int_equal(n, 32);
	assert_string_equal(buf, "orphan material 32 bytes long!!!");
	/* The key itself still works. */
	free(enc(e, k.key_id, "ctx", NULL).p);
}

/* A failing generator fails the call after LC_RAND_ATTEMPTS tries. */
static void test_rand_failure(void **state)
{
	struct env *e = *state;
	struct lc_kms_key_info k;
	struct lc_error err = { 0 };

	lc_rand_fail_next(LC_RAND_ATTEMPTS);
	assert_int_equal(lc_kms_local_create(e->kms, "x", &k, &err), -EIO);
	assert_int_equal(err.cls, LC_ERRC_INTERNAL);
	assert_non_null(strstr(err.msg, "random generator"));
	lc_rand_fail_next(LC_RAND_ATTEMPTS - 1);	/* heals within the retries */
	assert_int_equal(lc_kms_local_create(e->kms, "x", &k, &err), 0);
	lc_rand_fail_next(0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_create_files_list),
		T(test_roundtrip_and_context),
		T(test_tampered_blob),
		T(test_unknown_key),
		T(test_state_machine),
		T(test_denials),
		T(test_policy_deny),
		T(test_deletion_date),
		T(test_rotation),
		T(test_reload),
		T(test_permissions),
		T(test_corrupt_metadata),
		T(test_atomicity),
		T(test_concurrent_reader),
		T(test_as_provider),
		T(test_clock_jump),
		T(test_legacy_deletion_waits),
		T(test_open_quarantines),
		T(test_rand_failure),
	};

	lc_log_open("test-kms-local", 0, LC_LOG_ERR);	/* injected-fault warnings */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
