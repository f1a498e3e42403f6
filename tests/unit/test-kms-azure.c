// SPDX-License-Identifier: GPL-2.0
/* The Azure Key Vault provider's readers: key URLs, the wrapped key blob,
 * vault, identity platform and IMDS answers and their error classes.
 * (The provider against a vault: tests/kms/azure.sh.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kms-azure.h"

#define NOW 1800000000

static void test_keyref(void **state)
{
	struct lc_azure_keyref k;
	struct lc_error err;
	static const char *const bad[] = {
		"http://v.vault.azure.net/keys/k", "https://v.vault.azure.net/secrets/k",
		"https://v.vault.azure.net/keys/", "https://v.vault.azure.net/keys/k_1",
		"https://v.vault.azure.net/keys/k/v/wrapkey", "https://v.vault.azure.net/keys/k?x=1",
		"https://user@v.vault.azure.net/keys/k", "https:///keys/k", "https://v.vault.azure.net/keys/k/ab-c",
		"https://v.vault.azure.net/keys/k/0123456789012345678901234567890123456789012345678901234567890123456789",
		NULL,
	};

	(void)state;
	assert_int_equal(lc_azure_keyref_parse("https://MyVault.vault.azure.net:443/keys/lk-1/0123abcd/", &k, &err), 0);
	assert_string_equal(k.base, "https://myvault.vault.azure.net");
	assert_string_equal(k.name, "lk-1");
	assert_string_equal(k.version, "0123abcd");
	assert_false(k.hsm);
	assert_int_equal(lc_azure_keyref_parse("https://h1.managedhsm.azure.net/keys/k", &k, &err), 0);
	assert_true(k.hsm);
	assert_string_equal(k.version, "");
	assert_int_equal(lc_azure_keyref_parse("https://127.0.0.1:8443/keys/k/", &k, &err), 0);
	assert_string_equal(k.host, "127.0.0.1:8443");
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(lc_azure_keyref_parse(bad[i], &k, &err), -EINVAL);
		assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	}
	assert_int_equal(lc_azure_keyref_parse(NULL, &k, &err), -EINVAL);
}

static void test_blob(void **state)
{
	const char *kid = "https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef";
	uint8_t w[256], kidbuf[300];
	char out[LC_AZURE_KID_MAX + 1];
	struct lc_buf b;
	struct lc_error err;
	enum lc_azure_alg alg;
	const uint8_t *wp;
	size_t wl;

	(void)state;
	memset(w, 0xa5, sizeof(w));
	assert_int_equal(lc_azure_blob_build(LC_AZURE_RSA_OAEP_256, kid, w, sizeof(w), &b), 0);
	assert_int_equal(b.len, 10 + strlen(kid) + sizeof(w));
	assert_memory_equal(b.p, "LCAZ\1\1", 6);
	assert_int_equal(lc_azure_blob_parse(b.p, b.len, &alg, out, &wp, &wl, &err), 0);
	assert_int_equal(alg, LC_AZURE_RSA_OAEP_256);
	assert_string_equal(out, kid);
	assert_int_equal(wl, sizeof(w));
	assert_memory_equal(wp, w, wl);
	/* Every truncation, a trailing byte, a bad magic, version, algorithm. */
	for (size_t l = 0; l < b.len; l++)
		assert_int_equal(lc_azure_blob_parse(b.p, l, &alg, out, &wp, &wl, &err), -EBADMSG);
	assert_int_equal(err.cls, LC_ERRC_INVALID);
	b.p = realloc(b.p, b.len + 1);
	b.p[b.len] = 0;
	assert_int_equal(lc_azure_blob_parse(b.p, b.len + 1, &alg, out, &wp, &wl, &err), -EBADMSG);
	for (int pos = 0; pos < 6; pos++) {
		uint8_t save = b.p[pos];

		b.p[pos] = pos == 5 ? 3 : (uint8_t)(save ^ 0x40);
		assert_int_equal(lc_azure_blob_parse(b.p, b.len, &alg, out, &wp, &wl, &err), -EBADMSG);
		b.p[pos] = save;
	}
	b.p[8] = '\n';	/* a control character in the kid */
	assert_int_equal(lc_azure_blob_parse(b.p, b.len, &alg, out, &wp, &wl, &err), -EBADMSG);
	free(b.p);
	/* Bounds on build. */
	memset(kidbuf, 'a', sizeof(kidbuf));
	kidbuf[LC_AZURE_KID_MAX + 1] = 0;
	assert_int_equal(lc_azure_blob_build(LC_AZURE_A256KW, (char *)kidbuf, w, 8, &b), -EINVAL);
	assert_int_equal(lc_azure_blob_build(LC_AZURE_ALG_NONE, kid, w, 8, &b), -EINVAL);
	assert_int_equal(lc_azure_blob_build(LC_AZURE_A256KW, kid, w, 0, &b), -EINVAL);
	assert_null(b.p);
}

static int parse(enum lc_azure_op op, long status, const char *body, const char *ra, bool imds,
		 struct lc_azure_result *res, struct lc_error *err)
{
	return lc_azure_parse_response(op, status, body, body ? strlen(body) : 0, ra, NOW, imds, res, err);
}

struct cls_case {
	enum lc_azure_op op;
	long status;
	const char *body;
	enum lc_err_class cls;
};

static void test_error_classes(void **state)
{
	static const struct cls_case cases[] = {
		{ LC_AZURE_UNWRAP, 403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"m\",\"innererror\":{\"code\":\"KeyDisabled\"}}}", LC_ERRC_DENIED },
		{ LC_AZURE_GET_KEY, 403, "{\"error\":{\"code\":\"Forbidden\",\"innererror\":{\"code\":\"ForbiddenByRbac\"}}}", LC_ERRC_DENIED },
		{ LC_AZURE_GET_KEY, 403, "{\"error\":{\"code\":\"ForbiddenByPolicy\"}}", LC_ERRC_DENIED },
		{ LC_AZURE_GET_KEY, 403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"KeyDisabled ForbiddenByRbac\"}}", LC_ERRC_MISCONFIG },
		{ LC_AZURE_GET_KEY, 403, "<html>blocked</html>", LC_ERRC_MISCONFIG },
		{ LC_AZURE_WRAP, 404, "{\"error\":{\"code\":\"KeyNotFound\",\"message\":\"m\"}}", LC_ERRC_DENIED },
		{ LC_AZURE_WRAP, 404, "<html>not found</html>", LC_ERRC_MISCONFIG },
		{ LC_AZURE_WRAP, 400, "{\"error\":{\"code\":\"BadParameter\"}}", LC_ERRC_MISCONFIG },
		{ LC_AZURE_WRAP, 401, "{\"error\":{\"code\":\"Unauthorized\"}}", LC_ERRC_MISCONFIG },
		{ LC_AZURE_WRAP, 429, "{\"error\":{\"code\":\"Throttled\"}}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_WRAP, 408, NULL, LC_ERRC_TRANSIENT },
		{ LC_AZURE_WRAP, 500, "{\"error\":{\"code\":\"KeyNotFound\"}}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_WRAP, 503, "<html>", LC_ERRC_TRANSIENT },
		{ LC_AZURE_TOKEN, 401, "{\"error\":\"invalid_client\",\"error_codes\":[7000215]}", LC_ERRC_MISCONFIG },
		{ LC_AZURE_TOKEN, 403, "{\"error\":{\"code\":\"ForbiddenByRbac\"}}", LC_ERRC_MISCONFIG },
		{ LC_AZURE_TOKEN, 404, "{\"error\":{\"code\":\"KeyNotFound\"}}", LC_ERRC_MISCONFIG },
		{ LC_AZURE_TOKEN, 503, NULL, LC_ERRC_TRANSIENT },
		/* 2xx that do not say what they must: passing, never a kill. */
		{ LC_AZURE_GET_KEY, 200, "{\"key\":{\"kid\":\"x\"}}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_GET_KEY, 200, "{\"key\":{\"kid\":\"x\",\"kty\":\"RSA\"},\"attributes\":{\"enabled\":\"false\"}}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_DELETED_KEY, 200, "{\"key\":{\"kid\":\"x\",\"kty\":\"RSA\"},\"attributes\":{\"enabled\":true}}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_WRAP, 200, "{\"kid\":\"x\",\"value\":\"!!!\"}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_UNWRAP, 200, "{\"value\":\"\"}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_TOKEN, 200, "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3599}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_TOKEN, 200, "{\"access_token\":\"abc\"}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_TOKEN, 200, "{\"access_token\":\"abc\",\"expires_in\":\"12x\"}", LC_ERRC_TRANSIENT },
		{ LC_AZURE_UNWRAP, 200, "{\"value\":\"AAAA\"} trailing", LC_ERRC_TRANSIENT },
	};
	struct lc_azure_result res;
	struct lc_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].op, cases[i].status, cases[i].body, NULL, false, &res, &err);

		if (r == 0 || err.cls != cases[i].cls)
			fail_msg("case %zu (HTTP %ld %s): r=%d class %s, expected %s", i, cases[i].status,
				 cases[i].body ? cases[i].body : "", r, lc_err_class_name(err.cls),
				 lc_err_class_name(cases[i].cls));
		lc_azure_result_free(&res);
	}
	/* IMDS: 404 and 410 while the identity is being set up are passing. */
	assert_int_not_equal(parse(LC_AZURE_TOKEN, 410, NULL, NULL, true, &res, &err), 0);
	assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	assert_int_not_equal(parse(LC_AZURE_TOKEN, 400, "{\"error\":\"invalid_request\"}", NULL, true, &res, &err), 0);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	/* 401 is flagged for one refresh. */
	assert_int_not_equal(parse(LC_AZURE_GET_KEY, 401, NULL, NULL, false, &res, &err), 0);
	assert_true(res.unauthorized);
	lc_azure_result_free(&res);
}

static void test_retry_after(void **state)
{
	struct lc_azure_result res;
	struct lc_error err;

	(void)state;
	assert_int_not_equal(parse(LC_AZURE_WRAP, 429, NULL, "7", false, &res, &err), 0);
	assert_int_equal(res.retry_after_ms, 7000);
	assert_int_not_equal(parse(LC_AZURE_WRAP, 429, NULL, "99999999999999999999", false, &res, &err), 0);
	assert_int_equal(res.retry_after_ms, LC_AZURE_RETRY_AFTER_MAX_MS);
	assert_int_not_equal(parse(LC_AZURE_WRAP, 503, NULL, "Thu, 15 Jan 2027 08:00:20 GMT", false, &res, &err), 0);
	assert_int_equal(res.retry_after_ms, 20000);	/* NOW is 2027-01-15 08:00:00 */
	assert_int_not_equal(parse(LC_AZURE_WRAP, 503, NULL, "soon", false, &res, &err), 0);
	assert_int_equal(res.retry_after_ms, 0);
}

/* The validity window is judged against the vault's clock only. */
static void test_window(void **state)
{
	struct lc_azure_result res;
	struct lc_error err;
	char why[128];

	(void)state;
	assert_int_equal(parse(LC_AZURE_GET_KEY, 200,
			       "{\"key\":{\"kid\":\"k\",\"kty\":\"RSA\"},\"attributes\":{\"enabled\":true,\"exp\":1800000000,\"nbf\":1700000000}}",
			       NULL, false, &res, &err), 0);
	assert_int_equal(res.exp, 1800000000);
	assert_int_equal(res.nbf, 1700000000);
	/* No Date header: nothing judged, even for a long-past exp. */
	assert_false(lc_azure_window_closed(&res, 0, why, sizeof(why)));
	/* Inside, and at the edges within the slack. */
	assert_false(lc_azure_window_closed(&res, 1750000000, why, sizeof(why)));
	assert_false(lc_azure_window_closed(&res, 1800000000 + LC_AZURE_WINDOW_SLACK_S - 1, why, sizeof(why)));
	assert_false(lc_azure_window_closed(&res, 1700000000 - LC_AZURE_WINDOW_SLACK_S, why, sizeof(why)));
	/* Outside by the vault's clock. */
	assert_true(lc_azure_window_closed(&res, 1800000000 + LC_AZURE_WINDOW_SLACK_S, why, sizeof(why)));
	assert_non_null(strstr(why, "expired"));
	assert_true(lc_azure_window_closed(&res, 1700000000 - LC_AZURE_WINDOW_SLACK_S - 1, why, sizeof(why)));
	assert_non_null(strstr(why, "not yet valid"));
	assert_int_equal(res.state, LC_KEY_ENABLED);
	lc_azure_result_free(&res);
}

static void test_key_states(void **state)
{
	struct lc_azure_result res;
	struct lc_error err;
	char body[512];
	static const struct { const char *attr, *kty, *ops; enum lc_key_state st; enum lc_azure_alg alg; bool ops_ok; } c[] = {
		{ "\"enabled\":true", "RSA-HSM", "", LC_KEY_ENABLED, LC_AZURE_RSA_OAEP_256, true },
		{ "\"enabled\":true", "oct-HSM", ",\"key_ops\":[\"wrapKey\",\"unwrapKey\"]", LC_KEY_ENABLED, LC_AZURE_A256KW, true },
		{ "\"enabled\":true", "EC", "", LC_KEY_ENABLED, LC_AZURE_ALG_NONE, true },
		{ "\"enabled\":true", "RSA", ",\"key_ops\":[\"sign\"]", LC_KEY_ENABLED, LC_AZURE_RSA_OAEP_256, false },
		{ "\"enabled\":false", "RSA", "", LC_KEY_DISABLED, LC_AZURE_RSA_OAEP_256, true },
		/* exp / nbf never disable (Key Vault unwraps outside them), whatever the clock */
		{ "\"enabled\":true,\"exp\":1799999000", "RSA", "", LC_KEY_ENABLED, LC_AZURE_RSA_OAEP_256, true },
		{ "\"enabled\":true,\"exp\":1000", "RSA", "", LC_KEY_ENABLED, LC_AZURE_RSA_OAEP_256, true },
		{ "\"enabled\":true,\"nbf\":1800001000", "RSA", "", LC_KEY_ENABLED, LC_AZURE_RSA_OAEP_256, true },
		{ "\"enabled\":false,\"exp\":1000", "RSA", "", LC_KEY_DISABLED, LC_AZURE_RSA_OAEP_256, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(body, sizeof(body), "{\"key\":{\"kid\":\"https://v.vault.azure.net/keys/k/1\",\"kty\":\"%s\"%s},\"attributes\":{%s}}",
			 c[i].kty, c[i].ops, c[i].attr);
		assert_int_equal(parse(LC_AZURE_GET_KEY, 200, body, NULL, false, &res, &err), 0);
		assert_int_equal(res.state, c[i].st);
		assert_int_equal(res.alg, c[i].alg);
		assert_int_equal(res.can_wrap && res.can_unwrap, c[i].ops_ok);
		assert_string_equal(res.kid, "https://v.vault.azure.net/keys/k/1");
		lc_azure_result_free(&res);
	}
	assert_int_equal(parse(LC_AZURE_DELETED_KEY, 200,
			       "{\"deletedDate\":1800000000,\"scheduledPurgeDate\":1807776000,\"key\":{\"kid\":\"k\",\"kty\":\"RSA\"},\"attributes\":{\"enabled\":true}}",
			       NULL, false, &res, &err), 0);
	assert_int_equal(res.state, LC_KEY_PENDING_DELETION);
	assert_int_equal(res.deletion_date, 1807776000);
	lc_azure_result_free(&res);
}

static void test_token(void **state)
{
	struct lc_azure_result res;
	struct lc_error err;

	(void)state;
	assert_int_equal(parse(LC_AZURE_TOKEN, 200, "{\"access_token\":\"eyJ.a-b_c.d\",\"expires_in\":3599}", NULL, false, &res, &err), 0);
	assert_string_equal((char *)res.secret.p, "Authorization: Bearer eyJ.a-b_c.d");
	assert_int_equal(res.expires_at, NOW + 3599);
	lc_azure_result_free(&res);
	/* IMDS: strings; expires_on when expires_in is absent. */
	assert_int_equal(parse(LC_AZURE_TOKEN, 200, "{\"access_token\":\"t\",\"expires_on\":\"1800000600\"}", NULL, true, &res, &err), 0);
	assert_int_equal(res.expires_at, NOW + 600);
	lc_azure_result_free(&res);
	/* No token text in an error message. */
	assert_int_not_equal(parse(LC_AZURE_TOKEN, 200, "{\"access_token\":\"secret token\",\"expires_in\":1}", NULL, false, &res, &err), 0);
	assert_null(strstr(err.msg, "secret"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyref),
		cmocka_unit_test(test_blob),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_key_states),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
