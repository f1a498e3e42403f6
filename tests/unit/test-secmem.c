// SPDX-License-Identifier: GPL-2.0
/* Locked secret memory and process hardening. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "secmem.h"
#include "lc-types.h"

/* AddressSanitizer replaces mlock() with a no-op: only check real builds. */
#if defined(__SANITIZE_ADDRESS__)
#define MLOCK_IS_REAL 0
#else
#define MLOCK_IS_REAL 1
#endif

/* The VmFlags line of the mapping that starts at @p, or "" if none. */
static void vmflags(const void *p, char *out, size_t len)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	int found = 0;

	out[0] = '\0';
	assert_non_null(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)p);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			found = 1;
		else if (found && !strncmp(line, "VmFlags:", 8)) {
			snprintf(out, len, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static int mapped(const void *p)
{
	char flags[512];

	vmflags(p, flags, sizeof(flags));
	return flags[0] != '\0';
}

static void test_alloc_free(void **state)
{
	struct lc_secret s;
	char flags[512];

	(void)state;
	assert_int_equal(lc_secret_alloc(&s, 100), 0);
	assert_non_null(s.p);
	assert_int_equal(s.len, 100);
	for (size_t i = 0; i < s.len; i++)
		assert_int_equal(s.p[i], 0);
	memset(s.p, 0xa5, s.len);
	vmflags(s.p, flags, sizeof(flags));
	assert_non_null(strstr(flags, " dd"));	/* MADV_DONTDUMP */
	assert_non_null(strstr(flags, " wf"));	/* MADV_WIPEONFORK */
	if (geteuid() == 0) {
		assert_true(s.locked);
		if (MLOCK_IS_REAL)
			assert_non_null(strstr(flags, " lo"));
	}
	lc_secret_free(&s);
	assert_null(s.p);
	assert_int_equal(s.len, 0);
	lc_secret_free(&s);	/* idempotent */
	lc_secret_free(NULL);
}

/* A holder that lowers len (a plaintext shorter than its buffer) must not
 * make free unmap less than was mapped: the whole mapping goes. */
static void test_len_lowered(void **state)
{
	struct lc_secret s = { 0 };
	uint8_t *second;

	(void)state;
	assert_int_equal(lc_secret_alloc(&s, 65536), 0);
	assert_true(mapped(s.p));
	second = s.p + 4096;
	s.len = 32;
	lc_secret_free(&s);
	/* Unmapping only page_round(32) would leave the rest as a mapping
	 * of its own, starting at the second page. */
	assert_false(mapped(second));
	assert_int_equal(s.maplen, 0);
}

static void test_bad_sizes(void **state)
{
	struct lc_secret s;

	(void)state;
	assert_int_equal(lc_secret_alloc(&s, 0), -EINVAL);
	assert_null(s.p);
	assert_int_equal(lc_secret_alloc(&s, LC_SECRET_MAX_LEN + 1), -EINVAL);
	assert_int_equal(lc_secret_alloc(&s, SIZE_MAX), -EINVAL);
}

/* One allocation holds every DEK of the largest volume. */
static void test_largest_volume(void **state)
{
	size_t len = (size_t)LAKECRYPT_MAX_SEGMENTS * 64;
	struct lc_secret s;

	(void)state;
	assert_int_equal(lc_secret_alloc(&s, len), 0);
	assert_int_equal(s.len, len);
	s.p[0] = 1;
	s.p[len - 1] = 2;
	if (geteuid() == 0)
		assert_true(s.locked);
	lc_secret_free(&s);
}

static uint8_t *scoped(void)
{
	_cleanup_secret_ struct lc_secret s = { 0 };

	assert_int_equal(lc_secret_alloc(&s, 64), 0);
	memset(s.p, 0x5a, 64);
	assert_true(mapped(s.p));
	return s.p;
}

static void test_cleanup_attribute(void **state)
{
	uint8_t *p;

	(void)state;
	p = scoped();
	assert_false(mapped(p));	/* unmapped on return */
}

static void test_wipe(void **state)
{
	uint8_t b[33];

	(void)state;
	memset(b, 0xff, sizeof(b));
	lc_wipe(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0);
	lc_wipe(NULL, 10);
}

/* Children of fork() get zeroes in place of secrets. */
static void test_wipe_on_fork(void **state)
{
	struct lc_secret s;
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(lc_secret_alloc(&s, 32), 0);
	memset(s.p, 0x77, 32);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(s.p[0] == 0 && s.p[31] == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(s.p[0], 0x77);
	lc_secret_free(&s);
}

/* In a child, so the test process keeps its own settings. */
static void test_process_harden(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct lc_error err = { 0 };
		struct rlimit rl;

		if (lc_process_harden(&err))
			_exit(2);
		if (getrlimit(RLIMIT_CORE, &rl) || rl.rlim_cur != 0 || rl.rlim_max != 0)
			_exit(3);
		if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
			_exit(4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* The generator is retried a bounded number of times, then the call
 * fails with nothing half-random left in the buffer. */
static void test_rand_bounded(void **state)
{
	uint8_t buf[32], zero[32] = { 0 };
	struct lc_error err = { 0 };

	(void)state;
	memset(buf, 0xaa, sizeof(buf));
	lc_rand_fail_next(LC_RAND_ATTEMPTS);
	assert_int_equal(lc_rand_bytes(buf, sizeof(buf), true, "a test key", &err), -EIO);
	assert_int_equal(err.cls, LC_ERRC_INTERNAL);
	assert_non_null(strstr(err.msg, "a test key"));
	assert_memory_equal(buf, zero, sizeof(buf));
	lc_rand_fail_next(LC_RAND_ATTEMPTS - 1);
	assert_int_equal(lc_rand_bytes(buf, sizeof(buf), false, "a nonce", &err), 0);
	assert_memory_not_equal(buf, zero, sizeof(buf));
	assert_int_equal(lc_rand_bytes(buf, sizeof(buf), true, "a key", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_free),
		cmocka_unit_test(test_len_lowered),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_largest_volume),
		cmocka_unit_test(test_cleanup_attribute),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_wipe_on_fork),
		cmocka_unit_test(test_process_harden),
		cmocka_unit_test(test_rand_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
