// SPDX-License-Identifier: GPL-2.0
/* Key configurations and workspace bindings: rules, persistence, atomic writes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
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
#include "registry.h"

struct env {
	char dir[64];
	char path[128];
	struct lc_registry reg;
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct lc_error err = { 0 };

	strcpy(e->dir, "/tmp/lc-registry-test.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/%s", e->dir, LC_REGISTRY_FILE);
	assert_int_equal(lc_registry_open(&e->reg, e->dir, &err), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	lc_file_fail_io_at(0);
	lc_registry_close(&e->reg);
	nftw(e->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

static struct lc_keyconfig kc_of(const char *name, const char *ref)
{
	struct lc_keyconfig kc;

	memset(&kc, 0, sizeof(kc));
	snprintf(kc.name, sizeof(kc.name), "%s", name);
	snprintf(kc.provider, sizeof(kc.provider), "local");
	snprintf(kc.key_ref, sizeof(kc.key_ref), "%s", ref);
	snprintf(kc.cmk_id, sizeof(kc.cmk_id), "%s", ref);
	return kc;
}

static void reopen(struct env *e)
{
	struct lc_error err = { 0 };

	lc_registry_close(&e->reg);
	assert_int_equal(lc_registry_open(&e->reg, e->dir, &err), 0);
}

static void add(struct env *e, const char *name, const char *ref)
{
	struct lc_keyconfig kc = kc_of(name, ref);
	struct lc_error err = { 0 };

	assert_int_equal(lc_registry_keyconfig_add(&e->reg, &kc, &err), 0);
}

static void test_empty(void **state)
{
	struct env *e = *state;
	const struct lc_keyconfig *kc;
	struct lc_error err = { 0 };

	assert_int_equal(e->reg.nkc, 0);
	assert_int_equal(e->reg.nbind, 0);
	assert_int_equal(lc_registry_resolve(&e->reg, "ws1", &kc, &err), -ENOENT);
	assert_null(kc);
	assert_non_null(strstr(err.msg, "not bound"));
	assert_int_equal(access(e->path, F_OK), -1);	/* nothing written yet */
}

static void test_names(void **state)
{
	struct env *e = *state;
	struct lc_error err = { 0 };
	char long_name[80];

	assert_int_equal(lc_name_check("workspace", "ws-1.a_b", &err), 0);
	assert_int_equal(lc_name_check("workspace", "", &err), -EINVAL);
	assert_int_equal(lc_name_check("workspace", "-ws", &err), -EINVAL);
	assert_int_equal(lc_name_check("workspace", "w s", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "A-Z a-z 0-9"));
	assert_int_equal(lc_name_check("workspace", "ws/1", &err), -EINVAL);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(lc_name_check("workspace", long_name, &err), -EINVAL);
	long_name[63] = '\0';
	assert_int_equal(lc_name_check("workspace", long_name, &err), 0);
	(void)e;
}

static void test_create_bind_delete(void **state)
{
	struct env *e = *state;
	struct lc_keyconfig kc = kc_of("kc1", "lk-1");
	const struct lc_keyconfig *got;
	struct lc_error err = { 0 };

	add(e, "kc1", "lk-1");
	assert_int_equal(lc_registry_keyconfig_add(&e->reg, &kc, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "already exists"));
	/* A binding needs an existing key configuration. */
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "nope", NULL, &err), -ENOENT);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	assert_int_equal(lc_registry_bind(&e->reg, "bad name", "kc1", NULL, &err), -EINVAL);
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc1", NULL, &err), 0);
	assert_int_equal(lc_registry_bind(&e->reg, "ws2", "kc1", NULL, &err), 0);
	assert_int_equal(lc_registry_resolve(&e->reg, "ws1", &got, &err), 0);
	assert_string_equal(got->key_ref, "lk-1");
	assert_int_equal(lc_registry_bound_count(&e->reg, "kc1"), 2);
	/* Deleting is refused while bound, and the message names the workspaces. */
	assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc1", &err), -EBUSY);
	assert_non_null(strstr(err.msg, "ws1, ws2"));
	assert_non_null(lc_registry_keyconfig(&e->reg, "kc1"));
	assert_int_equal(lc_registry_unbind(&e->reg, "ws1", &err), 0);
	assert_int_equal(lc_registry_unbind(&e->reg, "ws1", &err), -ENOENT);
	assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc1", &err), -EBUSY);
	assert_int_equal(lc_registry_unbind(&e->reg, "ws2", &err), 0);
	assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc1", &err), 0);
	assert_null(lc_registry_keyconfig(&e->reg, "kc1"));
	assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc1", &err), -ENOENT);
}

static void test_rebind(void **state)
{
	struct env *e = *state;
	const struct lc_keyconfig *got;
	struct lc_error err = { 0 };

	add(e, "kc1", "lk-1");
	add(e, "kc2", "lk-2");
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc1", NULL, &err), 0);
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc2", NULL, &err), 0);
	assert_int_equal(e->reg.nbind, 1);
	assert_int_equal(lc_registry_resolve(&e->reg, "ws1", &got, &err), 0);
	assert_string_equal(got->name, "kc2");
	/* kc1 is free again. */
	assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc1", &err), 0);
}

static void test_persistence(void **state)
{
	struct env *e = *state;
	const struct lc_keyconfig *got;
	struct lc_error err = { 0 };
	struct stat st;

	add(e, "kc1", "lk-1");
	add(e, "kc2", "arn:aws:kms:eu-west-1:111122223333:key/abc");
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc2", NULL, &err), 0);
	assert_int_equal(stat(e->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	reopen(e);
	assert_int_equal(e->reg.nkc, 2);
	assert_int_equal(e->reg.nbind, 1);
	assert_int_equal(lc_registry_resolve(&e->reg, "ws1", &got, &err), 0);
	assert_string_equal(got->key_ref, "arn:aws:kms:eu-west-1:111122223333:key/abc");
	assert_true(got->created > 0);
	/* Deletion persists too. */
	assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc1", &err), 0);
	reopen(e);
	assert_int_equal(e->reg.nkc, 1);
	assert_null(lc_registry_keyconfig(&e->reg, "kc1"));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_bad_files(void **state)
{
	static const char *const bad[] = {
		"not json",
		"[]",
		"{\"version\": 2, \"keyconfigs\": [], \"workspaces\": []}",
		"{\"version\": 1, \"keyconfigs\": {}, \"workspaces\": []}",
		"{\"version\": 1, \"keyconfigs\": [{\"name\": \"kc1\"}], \"workspaces\": []}",
		"{\"version\": 1, \"keyconfigs\": [], \"workspaces\": [{\"workspace\": \"ws\", \"keyconfig\": \"kc\", \"created\": 1}]}",
		"{\"version\": 1, \"keyconfigs\": [{\"name\": \"-x\", \"provider\": \"local\", \"key_ref\": \"k\", \"cmk_id\": \"k\", \"created\": 1}], \"workspaces\": []}",
		"{\"version\": 1, \"keyconfigs\": [{\"name\": \"a\", \"provider\": \"local\", \"key_ref\": \"k\", \"cmk_id\": \"k\", \"created\": 1}, {\"name\": \"a\", \"provider\": \"local\", \"key_ref\": \"k\", \"cmk_id\": \"k\", \"created\": 1}], \"workspaces\": []}",
	};
	struct env *e = *state;
	struct lc_error err = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lc_registry_close(&e->reg);
		write_file(e->path, bad[i]);
		assert_int_equal(lc_registry_open(&e->reg, e->dir, &err), -EINVAL);
		assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
		assert_non_null(strstr(err.msg, e->path));
		assert_int_equal(e->reg.nkc, 0);
	}
	unlink(e->path);
	reopen(e);
}

/* Every step of the atomic write failing leaves the old registry on disk
 * and in memory, and no temp file behind. */
static void test_atomic_write(void **state)
{
	struct env *e = *state;
	struct lc_error err = { 0 };
	unsigned int step;

	add(e, "kc1", "lk-1");
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc1", NULL, &err), 0);
	for (step = 1; step <= 5; step++) {
		struct lc_keyconfig kc = kc_of("kc2", "lk-2");
		DIR *d;
		struct dirent *de;
		int files = 0;

		lc_file_fail_io_at(step);
		assert_int_equal(lc_registry_keyconfig_add(&e->reg, &kc, &err), -EIO);
		lc_file_fail_io_at(0);
		assert_non_null(strstr(err.msg, "failed at"));
		if (step < 4) {
			/* Before the rename: the old state, in memory and on disk. */
			assert_null(lc_registry_keyconfig(&e->reg, "kc2"));
			reopen(e);
			assert_null(lc_registry_keyconfig(&e->reg, "kc2"));
		} else {
			/* The directory fsync failed after the rename: whatever
			 * the disk says is what memory says. */
			bool mem = lc_registry_keyconfig(&e->reg, "kc2") != NULL;

			reopen(e);
			assert_int_equal(mem, lc_registry_keyconfig(&e->reg, "kc2") != NULL);
			if (lc_registry_keyconfig(&e->reg, "kc2"))
				assert_int_equal(lc_registry_keyconfig_delete(&e->reg, "kc2", &err), 0);
		}
		assert_non_null(lc_registry_keyconfig(&e->reg, "kc1"));
		assert_non_null(lc_registry_binding(&e->reg, "ws1"));
		d = opendir(e->dir);
		assert_non_null(d);
		while ((de = readdir(d)))
			files += de->d_name[0] != '.';
		closedir(d);
		assert_int_equal(files, 1);	/* registry.json only */
	}
	/* A leftover temp file of a crashed writer is cleaned and never read. */
	{
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s.tmp.99999", e->path);
		write_file(tmp, "garbage");
		reopen(e);
		assert_int_equal(access(tmp, F_OK), -1);
		assert_non_null(lc_registry_keyconfig(&e->reg, "kc1"));
	}
}

/* A workspace's termination hook: kept across a re-bind and a reopen,
 * cleared, refused for an unbound workspace, a bad one refused on load. */
static void test_hook(void **state)
{
	struct env *e = *state;
	struct lc_error err = { 0 };
	struct lc_ws_hook h = { .signal = SIGQUIT, .timeout_ms = 3000 };
	const struct lc_binding *b;

	add(e, "kc1", "k1");
	assert_int_equal(lc_registry_set_hook(&e->reg, "ws1", &h, &err), -ENOENT);
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc1", NULL, &err), 0);
	snprintf(h.units[h.nunits++], LC_HOOK_UNIT_SIZE, "pg.service");
	assert_int_equal(lc_registry_set_hook(&e->reg, "ws1", &h, &err), 0);
	assert_int_equal(lc_registry_bind(&e->reg, "ws1", "kc1", NULL, &err), 0);
	reopen(e);
	b = lc_registry_binding(&e->reg, "ws1");
	assert_non_null(b);
	assert_memory_equal(&b->hook, &h, sizeof(h));
	h.timeout_ms = 1;	/* out of range: refused, nothing changed */
	assert_int_equal(lc_registry_set_hook(&e->reg, "ws1", &h, &err), -EINVAL);
	assert_int_equal(lc_registry_binding(&e->reg, "ws1")->hook.timeout_ms, 3000);
	assert_int_equal(lc_registry_set_hook(&e->reg, "ws1", NULL, &err), 0);
	reopen(e);
	assert_false(lc_hook_is_set(&lc_registry_binding(&e->reg, "ws1")->hook));

	lc_registry_close(&e->reg);
	write_file(e->path,
		   "{\"version\":1,\"keyconfigs\":[{\"name\":\"kc1\",\"provider\":\"local\",\"key_ref\":\"k\",\"cmk_id\":\"k\",\"created\":1}],"
		   "\"workspaces\":[{\"workspace\":\"ws1\",\"keyconfig\":\"kc1\",\"created\":1,"
		   "\"hook\":{\"command\":\"sh -c reboot\",\"timeout_ms\":1000}}]}");
	assert_int_equal(lc_registry_open(&e->reg, e->dir, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "hook"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_empty),
		T(test_names),
		T(test_create_bind_delete),
		T(test_rebind),
		T(test_persistence),
		T(test_bad_files),
		T(test_atomic_write),
		T(test_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
