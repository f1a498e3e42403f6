// SPDX-License-Identifier: GPL-2.0
/*
 * Google Cloud KMS provider, offline: CRC32C against the RFC 3720
 * section B.4 vectors, key names, the RS256 JWT (verified with OpenSSL),
 * the reading of replies (CRC32C checks, version states) and the error
 * classes of google.rpc.Status answers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "http.h"
#include "kms-gcp.h"

#define KEY "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"

static void test_crc32c(void **state)
{
	uint8_t buf[48];

	(void)state;
	/* RFC 3720 appendix B.4 */
	memset(buf, 0, 32);
	assert_int_equal(lc_crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, 32);
	assert_int_equal(lc_crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(lc_crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(lc_crc32c(0, buf, 32), 0x113FDB5Cu);
	{
		static const uint8_t pdu[48] = {
			0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
			0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0 };

		assert_int_equal(lc_crc32c(0, pdu, sizeof(pdu)), 0xD9963A56u);
		/* a running value continues */
		assert_int_equal(lc_crc32c(lc_crc32c(0, pdu, 20), pdu + 20, 28), 0xD9963A56u);
	}
	assert_int_equal(lc_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(lc_crc32c(0, "", 0), 0);
}

static void test_key_ref(void **state)
{
	static const char *const bad[] = {
		"", "projects/p", "projects/p/locations/l/keyRings/r",
		"projects/p/locations/l/keyRings/r/cryptoKeys/",
		"projects/p/locations/l/keyRings/r/cryptoKeys/k/",
		"projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
		"projects//locations/l/keyRings/r/cryptoKeys/k",
		"project/p/locations/l/keyRings/r/cryptoKeys/k",
		"projects/p/locations/l/keyrings/r/cryptoKeys/k",
		"projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt",
		"projects/p/locations/l/keyRings/r?x/cryptoKeys/k",
		"projects/p/locations/l/keyRings/r/cryptoKeys/k\"",
		"projects/p/locations/l/keyRings/r/cryptoKeys/k%2F",
		"projects/p/locations/l.x/keyRings/r/cryptoKeys/k",
		"projects/p/locations/l/keyRings/rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr/cryptoKeys/k",
		"https://cloudkms.googleapis.com/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k",
		NULL };
	char loc[64];

	(void)state;
	assert_int_equal(lc_gcp_key_ref_check(KEY, loc), 0);
	assert_string_equal(loc, "europe-west1");
	assert_int_equal(lc_gcp_key_ref_check("projects/example.com:p-1/locations/global/keyRings/R_1/cryptoKeys/K-2", loc), 0);
	assert_string_equal(loc, "global");
	for (int i = 0; bad[i]; i++) {
		if (lc_gcp_key_ref_check(bad[i], NULL) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_int_equal(lc_gcp_key_ref_check(NULL, loc), -EINVAL);
}

/* A reply body with CRC32C fields computed here. */
static char *encrypt_reply(const char *name, const uint8_t *ct, size_t n, uint32_t crc_xor,
			   const char *verified)
{
	char b64[256], *out;

	lc_base64_encode(ct, n, b64);
	assert_true(asprintf(&out, "{\"name\":\"%s\",\"ciphertext\":\"%s\",\"ciphertextCrc32c\":\"%u\",%s,\"protectionLevel\":\"SOFTWARE\"}",
			     name, b64, lc_crc32c(0, ct, n) ^ crc_xor, verified) > 0);
	return out;
}

static int parse(enum lc_gcp_op op, long status, const char *body, const char *loc,
		 struct lc_gcp_result *res, struct lc_error *e)
{
	return lc_gcp_parse_response(op, status, body, strlen(body), KEY, loc, res, e);
}

static void test_encrypt_decrypt_replies(void **state)
{
	static const uint8_t ct[40] = { 0, 0, 0, 3, 9, 8, 7 };
	static const char ok[] = "\"verifiedPlaintextCrc32c\":true,\"verifiedAdditionalAuthenticatedDataCrc32c\":true";
	struct lc_gcp_result res;
	struct lc_error e = { 0 };
	char *b;

	(void)state;
	/* "plaintext" twice (json-c would free the first unwiped): refused
	 * before parsing, a malformed reply (transient). */
	assert_int_equal(parse(LC_GCP_DECRYPT, 200,
			       "{\"plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"plaintextCrc32c\":\"1\","
			       "\"plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}", "", &res, &e), -EPROTO);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	assert_null(res.plaintext.p);
	lc_gcp_result_free(&res);
	b = encrypt_reply(KEY "/cryptoKeyVersions/3", ct, sizeof(ct), 0, ok);
	assert_int_equal(parse(LC_GCP_ENCRYPT, 200, b, "", &res, &e), 0);
	assert_int_equal(res.blob.len, sizeof(ct));
	assert_memory_equal(res.blob.p, ct, sizeof(ct));
	assert_string_equal(res.key_version, KEY "/cryptoKeyVersions/3");
	lc_gcp_result_free(&res);
	free(b);
	/* every integrity failure is TRANSIENT, never accepted */
	b = encrypt_reply(KEY "/cryptoKeyVersions/3", ct, sizeof(ct), 1, ok);
	assert_int_equal(parse(LC_GCP_ENCRYPT, 200, b, "", &res, &e), -EBADMSG);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	assert_non_null(strstr(e.msg, "ciphertextCrc32c"));
	assert_null(res.blob.p);
	lc_gcp_result_free(&res);
	free(b);
	b = encrypt_reply(KEY "/cryptoKeyVersions/3", ct, sizeof(ct), 0,
			  "\"verifiedPlaintextCrc32c\":false,\"verifiedAdditionalAuthenticatedDataCrc32c\":true");
	assert_int_equal(parse(LC_GCP_ENCRYPT, 200, b, "", &res, &e), -EBADMSG);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	lc_gcp_result_free(&res);
	free(b);
	b = encrypt_reply(KEY "/cryptoKeyVersions/3", ct, sizeof(ct), 0, "\"verifiedPlaintextCrc32c\":true");
	assert_int_equal(parse(LC_GCP_ENCRYPT, 200, b, "", &res, &e), -EBADMSG);
	lc_gcp_result_free(&res);
	free(b);
	b = encrypt_reply("projects/p/locations/europe-west1/keyRings/r/cryptoKeys/other/cryptoKeyVersions/3",
			  ct, sizeof(ct), 0, ok);
	assert_int_equal(parse(LC_GCP_ENCRYPT, 200, b, "", &res, &e), -EPROTO);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	lc_gcp_result_free(&res);
	free(b);
	/* ciphertextCrc32c as a JSON number is accepted (proto3 JSON parsers do) */
	{
		char b64[256], body[512];

		lc_base64_encode(ct, sizeof(ct), b64);
		snprintf(body, sizeof(body), "{\"name\":\"%s/cryptoKeyVersions/1\",\"ciphertext\":\"%s\",\"ciphertextCrc32c\":%u,%s}",
			 KEY, b64, lc_crc32c(0, ct, sizeof(ct)), ok);
		assert_int_equal(parse(LC_GCP_ENCRYPT, 200, body, "", &res, &e), 0);
		lc_gcp_result_free(&res);
		snprintf(body, sizeof(body), "{\"name\":\"%s/cryptoKeyVersions/1\",\"ciphertext\":\"%s\",\"ciphertextCrc32c\":\"-1\",%s}",
			 KEY, b64, ok);
		assert_int_equal(parse(LC_GCP_ENCRYPT, 200, body, "", &res, &e), -EPROTO);
		lc_gcp_result_free(&res);
		snprintf(body, sizeof(body), "{\"name\":\"%s/cryptoKeyVersions/1\",\"ciphertext\":\"%s\",\"ciphertextCrc32c\":\"99999999999\",%s}",
			 KEY, b64, ok);
		assert_int_equal(parse(LC_GCP_ENCRYPT, 200, body, "", &res, &e), -EPROTO);
		lc_gcp_result_free(&res);
	}
	/* decrypt */
	{
		static const uint8_t pt[32] = { 1, 2, 3 };
		char b64[64], body[256];

		lc_base64_encode(pt, sizeof(pt), b64);
		snprintf(body, sizeof(body), "{\"plaintext\":\"%s\",\"plaintextCrc32c\":\"%u\",\"usedPrimary\":true}",
			 b64, lc_crc32c(0, pt, sizeof(pt)));
		assert_int_equal(parse(LC_GCP_DECRYPT, 200, body, "", &res, &e), 0);
		assert_int_equal(res.plaintext.len, 32);
		assert_memory_equal(res.plaintext.p, pt, 32);
		lc_gcp_result_free(&res);
		snprintf(body, sizeof(body), "{\"plaintext\":\"%s\",\"plaintextCrc32c\":\"%u\"}", b64,
			 lc_crc32c(0, pt, sizeof(pt)) ^ 0x80000000u);
		assert_int_equal(parse(LC_GCP_DECRYPT, 200, body, "", &res, &e), -EBADMSG);
		assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
		assert_null(res.plaintext.p);
		lc_gcp_result_free(&res);
		snprintf(body, sizeof(body), "{\"plaintext\":\"%s\"}", b64);
		assert_int_equal(parse(LC_GCP_DECRYPT, 200, body, "", &res, &e), -EPROTO);
		assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
		lc_gcp_result_free(&res);
	}
	/* A plaintext that decodes past the 65,536 bytes allowed: refused
	 * before any byte is written (ASan would see the write). */
	{
		size_t nb = 87384, bl = nb + 64;	/* 65,538 bytes */
		char *big = malloc(bl);

		assert_non_null(big);
		memcpy(big, "{\"plaintext\":\"", 14);
		memset(big + 14, 'A', nb);
		memcpy(big + 14 + nb, "\"}", 3);
		assert_true(parse(LC_GCP_DECRYPT, 200, big, "", &res, &e) < 0);
		assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
		assert_null(res.plaintext.p);
		lc_gcp_result_free(&res);
		free(big);
	}
}

static void test_states(void **state)
{
	static const struct {
		const char *st;
		int r;
		enum lc_err_class cls;
		enum lc_key_state ks;
	} t[] = {
		{ "ENABLED", 0, LC_ERRC_NONE, LC_KEY_ENABLED },
		{ "DISABLED", 0, LC_ERRC_NONE, LC_KEY_DISABLED },
		{ "DESTROYED", 0, LC_ERRC_NONE, LC_KEY_DESTROYED },
		{ "DESTROY_SCHEDULED", 0, LC_ERRC_NONE, LC_KEY_PENDING_DELETION },
		{ "PENDING_GENERATION", -EAGAIN, LC_ERRC_TRANSIENT, LC_KEY_UNKNOWN },
		{ "PENDING_IMPORT", -EAGAIN, LC_ERRC_TRANSIENT, LC_KEY_UNKNOWN },
		{ "IMPORT_FAILED", -EPROTO, LC_ERRC_MISCONFIG, LC_KEY_UNKNOWN },
		{ "GENERATION_FAILED", -EPROTO, LC_ERRC_MISCONFIG, LC_KEY_UNKNOWN },
		{ "PENDING_EXTERNAL_DESTRUCTION", -EPROTO, LC_ERRC_MISCONFIG, LC_KEY_UNKNOWN },
		{ "CRYPTO_KEY_VERSION_STATE_UNSPECIFIED", -EPROTO, LC_ERRC_MISCONFIG, LC_KEY_UNKNOWN },
		{ "SOMETHING_NEW", -EPROTO, LC_ERRC_MISCONFIG, LC_KEY_UNKNOWN },
	};
	struct lc_gcp_result res;
	struct lc_error e;
	char body[600];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&e, 0, sizeof(e));
		snprintf(body, sizeof(body),
			 "{\"name\":\"%s\",\"purpose\":\"ENCRYPT_DECRYPT\",\"primary\":{\"name\":\"%s/cryptoKeyVersions/2\",\"state\":\"%s\",\"destroyTime\":\"2026-12-30T10:00:00.5Z\"}}",
			 KEY, KEY, t[i].st);
		if (parse(LC_GCP_GET_KEY, 200, body, "", &res, &e) != t[i].r || e.cls != t[i].cls ||
		    res.state != t[i].ks)
			fail_msg("state %s: got %d %s state %d", t[i].st, e.code, e.msg, res.state);
		if (t[i].ks == LC_KEY_PENDING_DELETION)
			assert_int_equal(res.deletion_date, 1798624800);
		lc_gcp_result_free(&res);
	}
	/* no primary, another purpose, another key: never a state */
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"purpose\":\"ENCRYPT_DECRYPT\"}", KEY);
	assert_int_equal(parse(LC_GCP_GET_KEY, 200, body, "", &res, &e), -ENOENT);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	lc_gcp_result_free(&res);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"purpose\":\"ASYMMETRIC_SIGN\",\"primary\":{\"state\":\"ENABLED\"}}", KEY);
	assert_int_equal(parse(LC_GCP_GET_KEY, 200, body, "", &res, &e), -EINVAL);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	lc_gcp_result_free(&res);
	assert_int_equal(parse(LC_GCP_GET_KEY, 200, "{\"name\":\"projects/x/locations/l/keyRings/r/cryptoKeys/k\",\"primary\":{\"state\":\"DISABLED\"}}",
			       "", &res, &e), -EPROTO);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	lc_gcp_result_free(&res);
	assert_int_equal(parse(LC_GCP_GET_KEY, 200, "{\"primary\":{\"state\":7}}", "", &res, &e), -EPROTO);
	lc_gcp_result_free(&res);
}

/* One google.rpc.Status answer. */
static char *status_body(int code, const char *status, const char *details)
{
	char *out;

	assert_true(asprintf(&out, "{\"error\":{\"code\":%d,\"message\":\"msg\",\"status\":\"%s\"%s%s%s}}",
			     code, status, details ? ",\"details\":[" : "", details ? details : "",
			     details ? "]" : "") > 0);
	return out;
}

#define EI(r) "{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"" r "\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":\"cloudkms.googleapis.com\",\"consumer\":\"projects/123\"}}"
#define RI(n) "{\"@type\":\"type.googleapis.com/google.rpc.ResourceInfo\",\"resourceType\":\"x\",\"resourceName\":\"" n "\"}"

/*
 * FAILED_PRECONDITION: Cloud KMS's own refusal of a disabled or destroyed
 * version is a denial; Cloud EKM's (a google.rpc.PreconditionFailure, as
 * the "Cloud EKM errors" reference describes) is an outage.
 */
static void test_failed_precondition(void **state)
{
	static const struct {
		const char *body;
		enum lc_err_class cls;
		const char *needle;
	} t[] = {
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"" KEY "/cryptoKeyVersions/1 is not enabled, current state is: DISABLED.\"}}",
		  LC_ERRC_DENIED, "not usable" },
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"" KEY "/cryptoKeyVersions/2 is not enabled, current state is: DESTROYED.\"}}",
		  LC_ERRC_DENIED, "not usable" },
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"" KEY "/cryptoKeyVersions/2 is not enabled, current state is: DESTROY_SCHEDULED.\"}}",
		  LC_ERRC_DENIED, "not usable" },
		/* a state that is not a revocation, or a prefix of one */
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"v is not enabled, current state is: PENDING_GENERATION.\"}}",
		  LC_ERRC_TRANSIENT, "not a revocation" },
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"v is not enabled, current state is: DISABLEDX.\"}}",
		  LC_ERRC_TRANSIENT, "not a revocation" },
		/* Cloud EKM: external key manager unreachable, even if the
		 * message names a disabled state */
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"The external key manager could not be reached. current state is: DISABLED.\","
		  "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.PreconditionFailure\",\"violations\":["
		  "{\"type\":\"EXTERNAL_KEY_MANAGER\",\"subject\":\"" KEY "/cryptoKeyVersions/1\",\"description\":\"key state\"},"
		  "{\"type\":\"EKM_UNREACHABLE\",\"subject\":\"https://ekm.example/v0/k\",\"description\":\"timeout\"}]}]}}",
		  LC_ERRC_TRANSIENT, "Cloud EKM EKM_UNREACHABLE" },
		{ "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"x\","
		  "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.PreconditionFailure\"}]}}",
		  LC_ERRC_TRANSIENT, "outage" },
	};
	struct lc_gcp_result res;
	struct lc_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (int op = LC_GCP_ENCRYPT; op <= LC_GCP_DECRYPT; op++) {
			memset(&e, 0, sizeof(e));
			assert_true(parse(op, 400, t[i].body, "", &res, &e) < 0);
			if (e.cls != t[i].cls || !strstr(e.msg, t[i].needle))
				fail_msg("case %zu op %d: class %s, message %s", i, op,
					 lc_err_class_name(e.cls), e.msg);
		}
	}
}

/*
 * From the hostile-KMS review: a denial is believed only under the HTTP
 * status Cloud KMS sends with it (google.rpc.Code: PERMISSION_DENIED 403,
 * NOT_FOUND 404, FAILED_PRECONDITION 400).  The same body under a redirect
 * or a proxy's status, and a VPC Service Controls refusal (a perimeter,
 * not the key's owner), are misconfigured: never the kill switch.
 */
static void test_denial_needs_its_status(void **state)
{
	static const struct {
		long status;
		const char *body;
		enum lc_err_class cls;
		const char *needle;
	} t[] = {
		{ 403, "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\",\"message\":\"no\"}}",
		  LC_ERRC_DENIED, "(IAM)" },
		{ 302, "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\",\"message\":\"no\"}}",
		  LC_ERRC_MISCONFIG, "under HTTP 302, where Cloud KMS sends HTTP 403" },
		{ 404, "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\",\"message\":\"no\"}}",
		  LC_ERRC_MISCONFIG, "never a revocation" },
		{ 412, "{\"error\":{\"code\":400,\"status\":\"FAILED_PRECONDITION\",\"message\":\"" KEY "/cryptoKeyVersions/1 is not enabled, current state is: DISABLED.\"}}",
		  LC_ERRC_MISCONFIG, "where Cloud KMS sends HTTP 400" },
		{ 400, "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\",\"message\":\"gone\"}}",
		  LC_ERRC_MISCONFIG, "where Cloud KMS sends HTTP 404" },
		{ 403, "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\",\"message\":\"Request is prohibited by organization's policy.\","
		  "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"SECURITY_POLICY_VIOLATED\",\"domain\":\"googleapis.com\"}]}}",
		  LC_ERRC_MISCONFIG, "VPC Service Controls" },
	};
	struct lc_gcp_result res;
	struct lc_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_true(parse(LC_GCP_DECRYPT, t[i].status, t[i].body, "", &res, &e) < 0);
		if (e.cls != t[i].cls || !strstr(e.msg, t[i].needle))
			fail_msg("case %zu: class %s, message %s", i, lc_err_class_name(e.cls), e.msg);
	}
}

/* The key state of one version (a volume's cmk_version): its own state,
 * its name checked, the version-name rule. */
static void test_version_state(void **state)
{
	struct lc_gcp_result res;
	struct lc_error e = { 0 };
	const char *v3 = KEY "/cryptoKeyVersions/3";

	(void)state;
	assert_int_equal(lc_gcp_version_ref_check(v3), 0);
	assert_int_equal(lc_gcp_version_ref_check(KEY), -EINVAL);
	assert_int_equal(lc_gcp_version_ref_check(KEY "/cryptoKeyVersions/"), -EINVAL);
	assert_int_equal(lc_gcp_version_ref_check(KEY "/cryptoKeyVersions/3x"), -EINVAL);
	assert_int_equal(lc_gcp_version_ref_check("projects/p/cryptoKeyVersions/3"), -EINVAL);
	{
		const char *b = "{\"name\":\"" KEY "/cryptoKeyVersions/3\",\"state\":\"DISABLED\"}";

		assert_int_equal(lc_gcp_parse_response(LC_GCP_GET_VERSION, 200, b, strlen(b), v3, "",
						       &res, &e), 0);
		assert_int_equal(res.state, LC_KEY_DISABLED);
		assert_string_equal(res.key_version, v3);
		lc_gcp_result_free(&res);
		b = "{\"name\":\"" KEY "/cryptoKeyVersions/3\",\"state\":\"ENABLED\"}";

		assert_int_equal(lc_gcp_parse_response(LC_GCP_GET_VERSION, 200, b, strlen(b), v3, "",
						       &res, &e), 0);
		assert_int_equal(res.state, LC_KEY_ENABLED);
		lc_gcp_result_free(&res);
		/* another version's answer is not this one's state */
		b = "{\"name\":\"" KEY "/cryptoKeyVersions/4\",\"state\":\"ENABLED\"}";
		assert_int_equal(lc_gcp_parse_response(LC_GCP_GET_VERSION, 200, b, strlen(b), v3, "",
						       &res, &e), -EPROTO);
		assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
		lc_gcp_result_free(&res);
		b = "{\"name\":\"" KEY "/cryptoKeyVersions/3\",\"state\":\"DESTROY_SCHEDULED\",\"destroyTime\":\"2030-01-01T00:00:00Z\"}";
		assert_int_equal(lc_gcp_parse_response(LC_GCP_GET_VERSION, 200, b, strlen(b), v3, "",
						       &res, &e), 0);
		assert_int_equal(res.state, LC_KEY_PENDING_DELETION);
		assert_true(res.deletion_date > 0);
		lc_gcp_result_free(&res);
	}
}

static void test_error_classes(void **state)
{
	static const struct {
		enum lc_gcp_op op;
		long http;
		const char *status, *details, *loc;
		enum lc_err_class cls;
		const char *needle;
	} t[] = {
		{ LC_GCP_DECRYPT, 400, "FAILED_PRECONDITION", NULL, "", LC_ERRC_TRANSIENT, "names no disabled" },
		{ LC_GCP_ENCRYPT, 403, "PERMISSION_DENIED", EI("IAM_PERMISSION_DENIED"), "", LC_ERRC_DENIED, "no permission" },
		{ LC_GCP_GET_KEY, 403, "PERMISSION_DENIED", NULL, "", LC_ERRC_DENIED, "no permission" },
		{ LC_GCP_GET_KEY, 403, "PERMISSION_DENIED", EI("SERVICE_DISABLED"), "", LC_ERRC_MISCONFIG, "API is not enabled" },
		{ LC_GCP_GET_KEY, 403, "PERMISSION_DENIED", EI("USER_PROJECT_DENIED"), "", LC_ERRC_MISCONFIG, "quota/billing project" },
		{ LC_GCP_GET_KEY, 403, "PERMISSION_DENIED", EI("ACCESS_TOKEN_SCOPE_INSUFFICIENT"), "", LC_ERRC_MISCONFIG, "scope" },
		{ LC_GCP_GET_KEY, 403, "PERMISSION_DENIED", EI("BILLING_DISABLED"), "", LC_ERRC_MISCONFIG, "billing" },
		/* details[] is read, not the message: an IAM denial after an ErrorInfo of another
		 * kind still is what the first ErrorInfo says */
		{ LC_GCP_GET_KEY, 403, "PERMISSION_DENIED", RI(KEY) "," EI("SERVICE_DISABLED"), "", LC_ERRC_MISCONFIG, "projects/123" },
		{ LC_GCP_GET_KEY, 404, "NOT_FOUND", RI(KEY), "", LC_ERRC_DENIED, "does not exist" },
		{ LC_GCP_GET_KEY, 404, "NOT_FOUND", RI(KEY), "europe-west1", LC_ERRC_DENIED, "does not exist" },
		{ LC_GCP_GET_KEY, 404, "NOT_FOUND", RI(KEY), "us-east1", LC_ERRC_MISCONFIG, "endpoint serves us-east1" },
		{ LC_GCP_GET_KEY, 404, "NOT_FOUND", RI("projects/p/locations/europe-west1/keyRings/r"), "", LC_ERRC_MISCONFIG, "key ring" },
		{ LC_GCP_GET_KEY, 404, "NOT_FOUND", NULL, "", LC_ERRC_MISCONFIG, "does not exist" },
		{ LC_GCP_DECRYPT, 400, "INVALID_ARGUMENT", NULL, "", LC_ERRC_INVALID, "did not match" },
		{ LC_GCP_ENCRYPT, 400, "INVALID_ARGUMENT", NULL, "", LC_ERRC_MISCONFIG, "INVALID_ARGUMENT" },
		{ LC_GCP_GET_KEY, 401, "UNAUTHENTICATED", EI("ACCESS_TOKEN_EXPIRED"), "", LC_ERRC_MISCONFIG, "not accepted" },
		{ LC_GCP_ENCRYPT, 400, "RESOURCE_EXHAUSTED", EI("RATE_LIMIT_EXCEEDED"), "", LC_ERRC_TRANSIENT, "RATE_LIMIT" },
		{ LC_GCP_ENCRYPT, 429, "RESOURCE_EXHAUSTED", EI("RATE_LIMIT_EXCEEDED"), "", LC_ERRC_TRANSIENT, "429" },
		{ LC_GCP_ENCRYPT, 503, "UNAVAILABLE", EI("SERVICE_DISABLED"), "", LC_ERRC_TRANSIENT, "503" },
		{ LC_GCP_ENCRYPT, 400, "RESOURCE_EXHAUSTED", NULL, "", LC_ERRC_TRANSIENT, "RESOURCE_EXHAUSTED" },
		{ LC_GCP_ENCRYPT, 503, "UNAVAILABLE", NULL, "", LC_ERRC_TRANSIENT, "503" },
		{ LC_GCP_ENCRYPT, 504, "DEADLINE_EXCEEDED", NULL, "", LC_ERRC_TRANSIENT, "504" },
		{ LC_GCP_ENCRYPT, 500, "INTERNAL", NULL, "", LC_ERRC_TRANSIENT, "500" },
		{ LC_GCP_ENCRYPT, 409, "ABORTED", NULL, "", LC_ERRC_TRANSIENT, "ABORTED" },
		{ LC_GCP_ENCRYPT, 400, "OUT_OF_RANGE", NULL, "", LC_ERRC_MISCONFIG, "OUT_OF_RANGE" },
		/* a 5xx is never a kill, whatever its body says */
		{ LC_GCP_ENCRYPT, 500, "PERMISSION_DENIED", NULL, "", LC_ERRC_TRANSIENT, "500" },
	};
	struct lc_gcp_result res;
	struct lc_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *b = status_body((int)t[i].http, t[i].status, t[i].details);

		memset(&e, 0, sizeof(e));
		if (lc_gcp_parse_response(t[i].op, t[i].http, b, strlen(b), KEY, t[i].loc, &res, &e) >= 0 ||
		    e.cls != t[i].cls || !strstr(e.msg, t[i].needle))
			fail_msg("case %zu (%s): class %s, message %s", i, t[i].status,
				 lc_err_class_name(e.cls), e.msg);
		assert_int_equal(res.unauthenticated, t[i].http == 401);
		lc_gcp_result_free(&res);
		free(b);
	}
	/* a message that echoes a credential is not repeated */
	assert_true(parse(LC_GCP_GET_KEY, 400, "{\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\",\"message\":\"got Bearer ya29.secret\"}}",
			  "", &res, &e) < 0);
	assert_null(strstr(e.msg, "ya29"));
	assert_non_null(strstr(e.msg, "withheld"));
	lc_gcp_result_free(&res);
	/* no google.rpc.Status at all */
	assert_true(parse(LC_GCP_GET_KEY, 502, "<html>bad gateway</html>", "", &res, &e) < 0);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	lc_gcp_result_free(&res);
	assert_true(parse(LC_GCP_GET_KEY, 403, "<html>forbidden</html>", "", &res, &e) < 0);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);	/* not Cloud KMS speaking: never a kill */
	lc_gcp_result_free(&res);
	assert_true(parse(LC_GCP_GET_KEY, 400, "{\"error\":\"x\"}", "", &res, &e) < 0);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	lc_gcp_result_free(&res);
	assert_true(parse(LC_GCP_ENCRYPT, 200, "{\"name\":", "", &res, &e) < 0);
	assert_int_equal(e.cls, LC_ERRC_TRANSIENT);
	lc_gcp_result_free(&res);
}

static int b64url_decode(const char *in, size_t n, uint8_t *out, size_t *outlen)
{
	char buf[2048];
	size_t l = 0;

	if (n + 4 > sizeof(buf))
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[l++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (l % 4)
		buf[l++] = '=';
	return lc_base64_decode(buf, l, out, outlen);
}

static void test_jwt(void **state)
{
	EVP_PKEY *pk = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	BIO *bio = BIO_new(BIO_s_mem()), *ebio = BIO_new(BIO_s_mem());
	struct lc_secret jwt = { 0 };
	struct lc_error e = { 0 };
	char *pem, *epem, *dot1, *dot2;
	long pl, el;
	uint8_t dec[1024];
	size_t dl;
	json_object *o;
	EVP_MD_CTX *md;

	(void)state;
	assert_non_null(pk);
	assert_non_null(ec);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(PEM_write_bio_PrivateKey(ebio, ec, NULL, NULL, 0, NULL, NULL), 1);
	pl = BIO_get_mem_data(bio, &pem);
	el = BIO_get_mem_data(ebio, &epem);
	assert_int_equal(lc_gcp_jwt_sign(pem, (size_t)pl, "kid-1", "sa@p.iam.gserviceaccount.com",
					 LC_KMS_GCP_SCOPE, LC_KMS_GCP_JWT_AUD, 1700000000, &jwt, &e), 0);
	dot1 = strchr((char *)jwt.p, '.');
	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_null(strchr((char *)jwt.p, '='));
	/* header */
	assert_int_equal(b64url_decode((char *)jwt.p, (size_t)(dot1 - (char *)jwt.p), dec, &dl), 0);
	dec[dl] = 0;
	o = json_tokener_parse((char *)dec);
	assert_non_null(o);
	assert_string_equal(lc_json_str(o, "alg"), "RS256");
	assert_string_equal(lc_json_str(o, "typ"), "JWT");
	assert_string_equal(lc_json_str(o, "kid"), "kid-1");
	json_object_put(o);
	/* claims */
	assert_int_equal(b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), dec, &dl), 0);
	dec[dl] = 0;
	o = json_tokener_parse((char *)dec);
	assert_non_null(o);
	assert_string_equal(lc_json_str(o, "iss"), "sa@p.iam.gserviceaccount.com");
	assert_string_equal(lc_json_str(o, "aud"), "https://oauth2.googleapis.com/token");
	assert_string_equal(lc_json_str(o, "scope"), "https://www.googleapis.com/auth/cloudkms");
	{
		json_object *v;

		assert_true(json_object_object_get_ex(o, "iat", &v));
		assert_int_equal(json_object_get_int64(v), 1700000000);
		assert_true(json_object_object_get_ex(o, "exp", &v));
		assert_int_equal(json_object_get_int64(v), 1700003600);
	}
	json_object_put(o);
	/* RS256 signature verifies with the public key, and not over other bytes */
	assert_int_equal(b64url_decode(dot2 + 1, strlen(dot2 + 1), dec, &dl), 0);
	assert_int_equal(dl, 256);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(md, dec, dl, jwt.p, (size_t)(dot2 - (char *)jwt.p)), 1);
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_not_equal(EVP_DigestVerify(md, dec, dl, jwt.p, (size_t)(dot2 - (char *)jwt.p) - 1), 1);
	EVP_MD_CTX_free(md);
	lc_secret_free(&jwt);
	/* not RSA, not a key, unsafe strings: MISCONFIG, nothing made */
	assert_int_equal(lc_gcp_jwt_sign(epem, (size_t)el, NULL, "a", "s", "u", 1, &jwt, &e), -EINVAL);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	assert_null(jwt.p);
	assert_int_equal(lc_gcp_jwt_sign("garbage", 7, NULL, "a", "s", "u", 1, &jwt, &e), -EINVAL);
	assert_int_equal(lc_gcp_jwt_sign(pem, (size_t)pl, NULL, "a\"b", "s", "u", 1, &jwt, &e), -EINVAL);
	assert_null(strstr(e.msg, "PRIVATE"));
	BIO_free(bio);
	BIO_free(ebio);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(ec);
}

static void test_new(void **state)
{
	struct lc_kms_gcp *g;
	struct lc_error e = { 0 };
	struct lc_kms_gcp_config c = { 0 };

	(void)state;
	assert_int_equal(lc_kms_gcp_new(&g, &c, &e), 0);
	lc_kms_gcp_free(g);
	c.credentials = "oauth";
	assert_int_equal(lc_kms_gcp_new(&g, &c, &e), -EINVAL);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	assert_null(g);
	c.credentials = "service-account";
	c.key_file = "sa.json";
	assert_int_equal(lc_kms_gcp_new(&g, &c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "absolute"));
	c.key_file = NULL;
	c.endpoint = "http://cloudkms.googleapis.com";
	assert_int_equal(lc_kms_gcp_new(&g, &c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "https://"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_key_ref),
		cmocka_unit_test(test_encrypt_decrypt_replies),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_failed_precondition),
		cmocka_unit_test(test_denial_needs_its_status),
		cmocka_unit_test(test_version_state),
		cmocka_unit_test(test_jwt),
		cmocka_unit_test(test_new),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
