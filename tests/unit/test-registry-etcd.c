// SPDX-License-Identifier: GPL-2.0
/* The etcd registry's own parsing (registry-etcd.h): revocation records
 * from hostile values, their key hash, and the client built from
 * [registry] without contacting any member.  The registry against a real
 * cluster: tests/etcd/fleet.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "registry-etcd.h"

static int rec_parse(const char *text, struct lc_revocation *rec, const char **why)
{
	json_object *o = lc_json_parse(text, strlen(text));
	int r;

	*why = "unparsable";
	if (!o)
		return -EINVAL;
	r = lc_revocation_from_json(o, rec, why);
	json_object_put(o);
	return r;
}

static void test_record_roundtrip(void **state)
{
	struct lc_revocation in, out;
	const char *why;
	json_object *o;
	char h1[65], h2[65];

	(void)state;
	memset(&in, 0, sizeof(in));
	snprintf(in.provider, sizeof(in.provider), "aws-kms");
	snprintf(in.cmk_id, sizeof(in.cmk_id), "arn:aws:kms:eu-west-1:111122223333:key/k");
	snprintf(in.keyconfig, sizeof(in.keyconfig), "finance");
	snprintf(in.agent, sizeof(in.agent), "node-1");
	snprintf(in.cause, sizeof(in.cause), "revoked by uid 0");
	in.time = 1796000000;
	o = lc_revocation_to_json(&in);
	assert_int_equal(lc_revocation_from_json(o, &out, &why), 0);
	json_object_put(o);
	assert_string_equal(out.provider, in.provider);
	assert_string_equal(out.cmk_id, in.cmk_id);
	assert_string_equal(out.keyconfig, in.keyconfig);
	assert_string_equal(out.agent, in.agent);
	assert_string_equal(out.cause, in.cause);
	assert_int_equal(out.time, in.time);
	/* The key: SHA-256 of the CMK id (FIPS 180-4), here of "abc". */
	memset(&in, 0, sizeof(in));
	snprintf(in.cmk_id, sizeof(in.cmk_id), "abc");
	lc_revocation_hash(&in, h1);
	assert_string_equal(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* Without an id, the reference. */
	memset(&in, 0, sizeof(in));
	snprintf(in.key_ref, sizeof(in.key_ref), "abc");
	lc_revocation_hash(&in, h2);
	assert_string_equal(h1, h2);
}

static void test_record_hostile(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "{\"v\":1}", "names no CMK" },
		{ "{\"v\":1,\"cmk_id\":\"\",\"key_ref\":\"\"}", "names no CMK" },
		{ "{\"v\":1,\"cmk_id\":5}", "not a printable string" },
		{ "{\"v\":1,\"cmk_id\":\"a\\u0001b\"}", "not a printable string" },
		{ "{\"v\":1,\"cmk_id\":\"k\",\"keyconfig\":\"-bad\"}", "keyconfig is not a valid name" },
		{ "{\"v\":1,\"cmk_id\":\"k\",\"time\":\"now\"}", "time is not a number" },
		{ "{\"v\":1,\"cmk_id\":\"k\",\"time\":-1}", "time is not a number" },
		{ "{\"v\":1,\"cmk_id\":\"k\",\"provider\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		  "not a printable string of its size" },
	};
	struct lc_revocation rec;
	const char *why;
	char big[8192];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = "";
		if (rec_parse(bad[i].text, &rec, &why) != -EINVAL || !strstr(why, bad[i].why))
			fail_msg("case %zu (%s): why \"%s\", wanted \"%s\"", i, bad[i].text, why,
				 bad[i].why);
	}
	/* A cause longer than a record holds is refused, not cut. */
	snprintf(big, sizeof(big), "{\"v\":1,\"cmk_id\":\"k\",\"cause\":\"%0*d\"}", 300, 0);
	assert_int_equal(rec_parse(big, &rec, &why), -EINVAL);
	/* Unknown members are ignored (a newer writer). */
	assert_int_equal(rec_parse("{\"v\":1,\"key_ref\":\"k\",\"new\":[1]}", &rec, &why), 0);
	assert_string_equal(rec.key_ref, "k");
	assert_string_equal(rec.keyconfig, "");
}

/* The client from [registry]: endpoints split and trimmed; a file that
 * cannot be read is MISCONFIG, named.  No member is contacted. */
static void test_client(void **state)
{
	struct lc_config c;
	struct lc_etcd *e = NULL;
	struct lc_error err = { 0 };
	static const char text[] =
		"[registry]\nbackend = etcd\nendpoints = https://127.0.0.1:1, https://127.0.0.1:2\n"
		"ca = /nonexistent/ca.pem\n";

	(void)state;
	lc_config_defaults(&c);
	assert_int_equal(lc_config_parse(&c, text, strlen(text), "agent.conf", &err), 0);
	assert_int_not_equal(lc_regetcd_client(&c, &e, &err), 0);
	assert_null(e);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(err.msg, "[registry]: "));
	assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_record_hostile),
		cmocka_unit_test(test_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
