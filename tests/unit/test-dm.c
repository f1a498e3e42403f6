// SPDX-License-Identifier: GPL-2.0
/* dm.c pure functions: table line builder and INFO status parser.  The
 * libdevmapper paths run against the real module in the QEMU tests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm.h"

static struct lc_dm_table good(void)
{
	struct lc_dm_table t = {
		.length = 2097152,
		.key_size = 64,
		.key_prefix = "lakecrypt:vol1:",
		.segment_sectors = 2048,
		.device = "/dev/sdb",
		.offset = 4096,
		.volume_id = "vol1",
	};
	return t;
}

static void expect_line(const struct lc_dm_table *t, const char *want)
{
	struct lc_error e = { 0 };
	char *line = NULL;

	assert_int_equal(lc_dm_table_line(t, &line, &e), 0);
	assert_string_equal(line, want);
	free(line);
}

static void expect_bad(const struct lc_dm_table *t, const char *needle)
{
	struct lc_error e = { 0 };
	char *line = (char *)1;

	assert_int_equal(lc_dm_table_line(t, &line, &e), -EINVAL);
	assert_null(line);
	assert_int_equal(e.code, -EINVAL);
	if (!strstr(e.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void test_table_default(void **state)
{
	struct lc_dm_table t = good();

	(void)state;
	expect_line(&t, "0 2097152 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:vol1: 2048 /dev/sdb 4096 vol1");
	assert_int_equal(lc_dm_table_segments(&t), 1024);
}

static void test_table_features(void **state)
{
	struct lc_dm_table t = good();

	(void)state;
	t.cipher = "xchacha12,aes-adiantum-plain64";
	t.key_size = 32;
	t.device = "8:16";
	t.allow_discards = true;
	expect_line(&t, "0 2097152 lakecrypt xchacha12,aes-adiantum-plain64 :32:logon:lakecrypt:vol1: 2048 8:16 4096 vol1 1 allow_discards");
	t.sector_size = 4096;
	t.ephemeral = true;
	expect_line(&t, "0 2097152 lakecrypt xchacha12,aes-adiantum-plain64 :32:logon:lakecrypt:vol1: 2048 8:16 4096 vol1 3 allow_discards sector_size:4096 ephemeral");
	t.allow_discards = false;
	t.sector_size = 512;	/* the default is not written */
	expect_line(&t, "0 2097152 lakecrypt xchacha12,aes-adiantum-plain64 :32:logon:lakecrypt:vol1: 2048 8:16 4096 vol1 1 ephemeral");
	t.cipher = "capi:xts(aes)-plain64";
	t.ephemeral = false;
	expect_line(&t, "0 2097152 lakecrypt capi:xts(aes)-plain64 :32:logon:lakecrypt:vol1: 2048 8:16 4096 vol1");
}

static void test_table_partial_last_segment(void **state)
{
	struct lc_dm_table t = good();

	(void)state;
	t.length = 2048 * 3 + 8;
	assert_int_equal(lc_dm_table_segments(&t), 4);
	t.length = (uint64_t)LAKECRYPT_MAX_SEGMENTS * 8;
	t.segment_sectors = 8;
	expect_line(&t, "0 8388608 lakecrypt aes-xts-plain64 :64:logon:lakecrypt:vol1: 8 /dev/sdb 4096 vol1");
	t.length += 8;
	expect_bad(&t, "too many");
}

static void test_table_bad(void **state)
{
	struct lc_dm_table t;

	(void)state;
	t = good(); t.cipher = "aes-xts-essiv:sha256";	expect_bad(&t, "plain64");
	t = good(); t.cipher = "aes:64-xts-plain64";	expect_bad(&t, "multi-key");
	t = good(); t.cipher = "aes xts-plain64";	expect_bad(&t, "cipher");
	t = good(); t.cipher = "-plain64";		expect_bad(&t, "cipher");
	t = good(); t.key_size = 0;			expect_bad(&t, "key size");
	t = good(); t.key_size = 129;			expect_bad(&t, "key size");
	t = good(); t.key_prefix = "nocolon";		expect_bad(&t, "colon");
	t = good(); t.key_prefix = ":vol";		expect_bad(&t, "colon");
	t = good(); t.key_prefix = "lake crypt:";	expect_bad(&t, "spaces");
	t = good(); t.key_prefix = NULL;		expect_bad(&t, "key prefix");
	t = good(); t.segment_sectors = 4;		expect_bad(&t, "segment size");
	t = good(); t.segment_sectors = 3000;		expect_bad(&t, "power of two");
	t = good(); t.segment_sectors = 1ULL << 32;	expect_bad(&t, "segment size");
	t = good(); t.device = "";			expect_bad(&t, "backing device");
	t = good(); t.device = "/dev/a b";		expect_bad(&t, "backing device");
	t = good(); t.volume_id = "vol/1";		expect_bad(&t, "volume id");
	t = good(); t.volume_id = "";			expect_bad(&t, "volume id");
	t = good(); t.sector_size = 1000;		expect_bad(&t, "sector size");
	t = good(); t.sector_size = 8192;		expect_bad(&t, "sector size");
	t = good(); t.sector_size = 4096; t.offset = 4; expect_bad(&t, "offset");
	t = good(); t.sector_size = 4096; t.length = 2097151; expect_bad(&t, "length");
	t = good(); t.length = 0;			expect_bad(&t, "length");
	t = good(); t.offset = UINT64_MAX - 8;		expect_bad(&t, "overflow");
}

static void test_table_volume_id_limit(void **state)
{
	struct lc_dm_table t = good();
	char id[LAKECRYPT_MAX_VOLUME_ID + 2];
	struct lc_error e = { 0 };
	char *line = NULL;

	(void)state;
	memset(id, 'a', LAKECRYPT_MAX_VOLUME_ID);
	id[LAKECRYPT_MAX_VOLUME_ID] = '\0';
	t.volume_id = id;
	assert_int_equal(lc_dm_table_line(&t, &line, &e), 0);
	assert_non_null(strstr(line, id));
	free(line);
	id[LAKECRYPT_MAX_VOLUME_ID] = 'a';
	id[LAKECRYPT_MAX_VOLUME_ID + 1] = '\0';
	expect_bad(&t, "volume id");
}

static void test_status_good(void **state)
{
	struct lc_dm_status st;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(lc_dm_status_parse("active 1024 1000 17 18446744073709551615 3 -", &st, &e), 0);
	assert_int_equal(st.state, LC_DM_STATE_ACTIVE);
	assert_int_equal(st.segments, 1024);
	assert_int_equal(st.keys_loaded, 1000);
	assert_int_equal(st.reads, 17);
	assert_true(st.writes == UINT64_MAX);
	assert_int_equal(st.io_errors, 3);
	assert_int_equal(st.discard, LC_DM_DISCARD_NONE);

	assert_int_equal(lc_dm_status_parse("revoked 4 0 0 0 9 discarded", &st, &e), 0);
	assert_int_equal(st.state, LC_DM_STATE_REVOKED);
	assert_int_equal(st.io_errors, 9);
	assert_int_equal(st.discard, LC_DM_DISCARD_DONE);
	assert_string_equal(lc_dm_discard_name(st.discard), "discarded");
	assert_string_equal(lc_dm_state_name(st.state), "revoked");
	assert_int_equal(lc_dm_status_parse("revoked 4 0 0 0 0 unsupported", &st, &e), 0);
	assert_int_equal(st.discard, LC_DM_DISCARD_UNSUPPORTED);
	assert_int_equal(lc_dm_status_parse("  revoked  1048576 0 0 0 0 failed ", &st, &e), 0);
	assert_int_equal(st.discard, LC_DM_DISCARD_FAILED);
	assert_int_equal(st.segments, 1048576);
	/* Target 1.1: revoke returns at once, the discard follows. */
	assert_int_equal(lc_dm_status_parse("revoked 4 0 0 0 0 pending", &st, &e), 0);
	assert_int_equal(st.discard, LC_DM_DISCARD_PENDING);
	assert_string_equal(lc_dm_discard_name(st.discard), "pending");
}

static void test_status_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"active",
		"active 1 1 0 0 0",
		"active 1 1 0 0 0 - extra",
		"Active 1 1 0 0 0 -",
		"dead 1 1 0 0 0 -",
		"active -1 0 0 0 0 -",
		"active 1 2 0 0 0 -",			/* more keys than segments */
		"active 1048577 0 0 0 0 -",		/* more than the target's maximum */
		"active 1 1 18446744073709551616 0 0 -",	/* overflow */
		"active 1 1 0x10 0 0 -",
		"active 1 1 +1 0 0 -",
		"active 1 1 1 1 1 discard",
		"active 1 1 1 1 1 --",
	};
	struct lc_dm_status st;
	struct lc_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (lc_dm_status_parse(bad[i], &st, &e) != -EINVAL)
			fail_msg("status \"%s\" was accepted", bad[i]);
		assert_true(e.msg[0] != '\0');
		assert_non_null(strstr(e.msg, "lakecrypt status"));
	}
	assert_int_equal(lc_dm_status_parse(NULL, &st, &e), -EINVAL);
}

static void test_bad_names(void **state)
{
	struct lc_error e = { 0 };
	char longname[200];

	(void)state;
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	/* Refused before any ioctl: these work without root or a kernel. */
	assert_int_equal(lc_dm_message("a/b", "revoke", &e), -EINVAL);
	assert_int_equal(lc_dm_remove("", &e), -EINVAL);
	assert_int_equal(lc_dm_remove(longname, &e), -EINVAL);
	assert_int_equal(lc_dm_create("v", "uuid", "0 8 crypt aes 0 /dev/x 0", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "target \"crypt\""));
	assert_int_equal(lc_dm_create("v", "uuid", "0 0 lakecrypt x", &e), -EINVAL);
	assert_int_equal(lc_dm_create("v", "uuid", "0 8 lakecrypt", &e), -EINVAL);
	assert_int_equal(lc_dm_create("v", "uu id", "0 8 lakecrypt x", &e), -EINVAL);
	assert_int_equal(lc_dm_key_load("v", 5, 4, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "range"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_default),
		cmocka_unit_test(test_table_features),
		cmocka_unit_test(test_table_partial_last_segment),
		cmocka_unit_test(test_table_bad),
		cmocka_unit_test(test_table_volume_id_limit),
		cmocka_unit_test(test_status_good),
		cmocka_unit_test(test_status_bad),
		cmocka_unit_test(test_bad_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
