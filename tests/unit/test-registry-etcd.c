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

static int probe_parse(const char *text, bool result, struct lc_probe_holder *h,
		       struct lc_probe_result *r, const char **why)
{
	json_object *o = lc_json_parse(text, strlen(text));
	int rc;

	*why = "unparsable";
	if (!o)
		return -EINVAL;
	rc = result ? lc_probe_result_from_json(o, r, why) : lc_probe_holder_from_json(o, h, why);
	json_object_put(o);
	return rc;
}

/* Shared probes' values (probe-share.h): round trip, the unit's hash,
 * and hostile values refused with a reason. */
static void test_probe_values(void **state)
{
	static const struct {
		bool result;
		const char *text, *why;
	} bad[] = {
		{ false, "{\"v\":1}", "agent is not" },
		{ false, "{\"v\":1,\"agent\":\"\"}", "agent is not" },
		{ false, "{\"v\":1,\"agent\":7}", "agent is not" },
		{ false, "{\"v\":1,\"agent\":\"a\\u0007\"}", "agent is not" },
		{ false, "{\"v\":1,\"agent\":\"a\",\"since\":-5}", "since is not" },
		{ false, "{\"v\":1,\"agent\":\"a\",\"since\":\"1\"}", "since is not" },
		{ false, "[1]", "unparsable" },	/* lc_json_parse takes objects only */
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"outcome\":\"ok\",\"verdict\":\"keep\"}", "key_ref" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"key_ref\":\"k\",\"outcome\":\"ok\",\"verdict\":\"keep\"}", "provider" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"key_ref\":\"k\",\"outcome\":\"fine\",\"verdict\":\"keep\"}", "outcome is not" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"key_ref\":\"k\",\"outcome\":\"ok\"}", "verdict is not" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"key_ref\":\"k\",\"outcome\":\"ok\",\"verdict\":\"unlock\"}", "verdict is not" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"key_ref\":\"k\",\"outcome\":\"ok\",\"verdict\":\"keep\",\"seq\":-1}", "seq is not" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"key_ref\":\"k\",\"outcome\":\"ok\",\"verdict\":\"keep\",\"time\":1.5}", "time or seq" },
		{ true, "{\"v\":1,\"agent\":\"a\",\"provider\":\"p\",\"key_ref\":\"k\",\"keyconfig\":{},\"outcome\":\"ok\",\"verdict\":\"keep\"}", "keyconfig" },
	};
	struct lc_probe_holder h, h2;
	struct lc_probe_result r, r2;
	const char *why;
	char hex[LC_PROBE_UNIT_HEX], hex2[LC_PROBE_UNIT_HEX];
	json_object *o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = "";
		if (probe_parse(bad[i].text, bad[i].result, &h, &r, &why) != -EINVAL ||
		    !strstr(why, bad[i].why))
			fail_msg("case %zu (%s): why \"%s\", wanted \"%s\"", i, bad[i].text, why,
				 bad[i].why);
	}
	memset(&h, 0, sizeof(h));
	snprintf(h.agent, sizeof(h.agent), "node-1/4242");
	h.since = 1796000000;
	o = lc_probe_holder_to_json(&h);
	assert_int_equal(lc_probe_holder_from_json(o, &h2, &why), 0);
	json_object_put(o);
	assert_memory_equal(&h, &h2, sizeof(h));
	memset(&r, 0, sizeof(r));
	snprintf(r.agent, sizeof(r.agent), "node-1/4242");
	snprintf(r.provider, sizeof(r.provider), "aws-kms");
	snprintf(r.key_ref, sizeof(r.key_ref), "arn:aws:kms:eu-west-2:111122223333:key/k");
	snprintf(r.keyconfig, sizeof(r.keyconfig), "kcp");
	r.outcome = LC_PROBE_DENIED;
	r.verdict = LC_VERDICT_PENDING;
	r.time = 1796000001;
	r.seq = 9;
	o = lc_probe_result_to_json(&r);
	assert_int_equal(lc_probe_result_from_json(o, &r2, &why), 0);
	json_object_put(o);
	assert_memory_equal(&r, &r2, sizeof(r));
	/* The unit: SHA-256 (FIPS 180-4) of "a\0b\0c"; the separators keep
	 * ("ab", "", "c") apart from ("a", "b", "c"). */
	lc_probe_unit_hash("a", "b", "c", hex);
	assert_string_equal(hex, "8badde10c760e9b702defb4b5e225de79c515b1d2a5cfb000e140f3c6fbb5629");
	lc_probe_unit_hash("ab", "", "c", hex2);
	assert_string_not_equal(hex, hex2);
	lc_probe_unit_hash("a", "b", NULL, hex);
	lc_probe_unit_hash("a", "b", "", hex2);
	assert_string_equal(hex, hex2);
	assert_true(lc_probe_unit_valid(hex, strlen(hex)));
	hex[3] = 'A';
	assert_false(lc_probe_unit_valid(hex, strlen(hex)));
	assert_false(lc_probe_unit_valid(hex2, 63));
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
		cmocka_unit_test(test_probe_values),
		cmocka_unit_test(test_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
