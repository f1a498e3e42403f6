// SPDX-License-Identifier: GPL-2.0
/*
 * The KMS principal bound to a key configuration (issue 10), offline:
 * the reading of STS GetCallerIdentity answers (moto's and AWS's form,
 * error classes, hostile answers: oversized, malformed, missing or
 * doubled fields), the comparison of principals (an assumed role on its
 * role), and kms_identity in a key configuration's JSON (absent: unbound;
 * hostile values refused).
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

#include "http.h"
#include "kms-aws.h"
#include "kms-azure.h"
#include "kms-gcp.h"
#include "registry.h"

#define NS "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""
#define ANSWER(result) \
	"<GetCallerIdentityResponse " NS "><GetCallerIdentityResult>" result \
	"</GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>" \
	"</GetCallerIdentityResponse>"

static int parse(long status, const char *body, char *arn, size_t size, struct lc_error *err)
{
	memset(err, 0, sizeof(*err));
	return lc_aws_parse_caller_identity(status, body, strlen(body), arn, size, err);
}

static void test_good(void **state)
{
	char arn[LC_PROVIDER_IDENTITY_MAX];
	struct lc_error err;

	(void)state;
	/* moto 5's answer for an IAM user */
	assert_int_equal(parse(200, ANSWER("<UserId>AIDAX</UserId><Account>123456789012</Account>"
					   "<Arn>arn:aws:iam::123456789012:user/alice</Arn>"),
			       arn, sizeof(arn), &err), 0);
	assert_string_equal(arn, "arn:aws:iam::123456789012:user/alice");
	/* AWS's order, an assumed role, another partition, no Account */
	assert_int_equal(parse(200, ANSWER("<Arn>arn:aws-us-gov:sts::111122223333:assumed-role/node/i-0abc</Arn>"
					   "<UserId>AROAX:i-0abc</UserId>"),
			       arn, sizeof(arn), &err), 0);
	assert_string_equal(arn, "arn:aws-us-gov:sts::111122223333:assumed-role/node/i-0abc");
}

static void test_errors(void **state)
{
	static const struct {
		long status;
		const char *code;
		enum lc_err_class cls;
	} cases[] = {
		{ 403, "AccessDenied", LC_ERRC_DENIED },
		{ 403, "InvalidClientTokenId", LC_ERRC_MISCONFIG },
		{ 403, "SignatureDoesNotMatch", LC_ERRC_MISCONFIG },
		{ 400, "ExpiredToken", LC_ERRC_MISCONFIG },
		{ 400, "Throttling", LC_ERRC_TRANSIENT },
		{ 429, "", LC_ERRC_TRANSIENT },
		{ 500, "InternalFailure", LC_ERRC_TRANSIENT },
		{ 503, "", LC_ERRC_TRANSIENT },
		{ 302, "", LC_ERRC_MISCONFIG },
	};
	char arn[LC_PROVIDER_IDENTITY_MAX], body[256];
	struct lc_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body),
			 "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>m</Message></Error></ErrorResponse>",
			 cases[i].code);
		strcpy(arn, "x");
		assert_true(parse(cases[i].status, body, arn, sizeof(arn), &err) < 0);
		assert_int_equal(err.cls, cases[i].cls);
		assert_string_equal(arn, "");
		if (cases[i].code[0])
			assert_non_null(strstr(err.msg, cases[i].code));
	}
	/* a control character in the code is not echoed */
	assert_true(parse(400, "<Error><Code>Bad\x01Code</Code></Error>", arn, sizeof(arn), &err) < 0);
	assert_null(strchr(err.msg, '\x01'));
}

static void test_hostile(void **state)
{
	char arn[LC_PROVIDER_IDENTITY_MAX], *big;
	struct lc_error err;
	size_t n = 3000;

	(void)state;
	static const char *const bad[] = {
		"",						/* empty */
		"<GetCallerIdentityResponse><oops",		/* malformed */
		"{\"Arn\": \"arn:aws:iam::123456789012:user/a\"}",	/* not XML */
		ANSWER("<UserId>x</UserId><Account>123456789012</Account>"),	/* no Arn */
		ANSWER("<Arn></Arn>"),				/* empty Arn */
		ANSWER("<Arn>arn:aws:iam::123456789012:user/a</Arn><Arn>arn:aws:iam::123456789012:user/b</Arn>"),
		ANSWER("<Arn>not-an-arn</Arn>"),
		ANSWER("<Arn>arn:aws:s3:::bucket</Arn>"),	/* not a principal */
		ANSWER("<Arn>arn:aws:iam::12345:user/a</Arn>"),	/* account not 12 digits */
		ANSWER("<Arn>arn:aws:iam::123456789012:</Arn>"),	/* no resource */
		ANSWER("<Arn>arn:aws:iam::123456789012:user/a b</Arn>"),	/* space */
		ANSWER("<Arn>arn:aws:iam::123456789012:user/a\"</Arn>"),	/* quote */
		ANSWER("<Arn>arn:aws:iam::123456789012:user/<b>a</b></Arn>"),	/* markup */
		ANSWER("<Arn>arn:aws:iam::123456789012:user/a&amp;b</Arn>"),	/* entity */
		ANSWER("<Arn>arn:aws:iam::123456789012:user/a</Arn><Account>999999999999</Account>"),
		ANSWER("<Arn>arn:aws:iam::123456789012:user/a</Arn><Account>1</Account><Account>123456789012</Account>"),
		"<ErrorResponse><Arn>arn:aws:iam::123456789012:user/a</Arn></ErrorResponse>",	/* 200, not the result */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(arn, "x");
		assert_true(parse(200, bad[i], arn, sizeof(arn), &err) < 0);
		assert_int_equal(err.cls, LC_ERRC_TRANSIENT);	/* never DENIED: names nobody */
		assert_string_equal(arn, "");
	}
	/* a NUL inside the body (len says more than strlen) */
	assert_true(lc_aws_parse_caller_identity(200, "<a>\0<b>", 7, arn, sizeof(arn), &err) < 0);
	assert_true(lc_aws_parse_caller_identity(200, NULL, 0, arn, sizeof(arn), &err) < 0);
	/* an Arn longer than a principal may be */
	big = malloc(n + 400);
	assert_non_null(big);
	snprintf(big, n + 400, ANSWER("<Arn>arn:aws:iam::123456789012:user/%0*d</Arn>"), (int)n, 7);
	assert_true(parse(200, big, arn, sizeof(arn), &err) < 0);
	assert_non_null(strstr(err.msg, "more than the"));
	/* ... and one that fits the principal limit but not the caller's buffer */
	assert_true(parse(200, ANSWER("<Arn>arn:aws:iam::123456789012:user/alice</Arn>"), arn, 16, &err) < 0);
	assert_string_equal(arn, "");
	free(big);
}

static void test_match(void **state)
{
	(void)state;
	assert_true(lc_aws_principal_match("arn:aws:iam::123456789012:user/alice",
					   "arn:aws:iam::123456789012:user/alice"));
	assert_false(lc_aws_principal_match("arn:aws:iam::123456789012:user/alice",
					    "arn:aws:iam::123456789012:user/alice2"));
	assert_false(lc_aws_principal_match("arn:aws:iam::123456789012:user/alice",
					    "arn:aws:iam::123456789012:user/bob"));
	/* an assumed role: the session name is not compared */
	assert_true(lc_aws_principal_match("arn:aws:sts::123456789012:assumed-role/node/i-1",
					   "arn:aws:sts::123456789012:assumed-role/node/i-2"));
	assert_false(lc_aws_principal_match("arn:aws:sts::123456789012:assumed-role/node/i-1",
					    "arn:aws:sts::123456789012:assumed-role/node2/i-1"));
	assert_false(lc_aws_principal_match("arn:aws:sts::123456789012:assumed-role/node/i-1",
					    "arn:aws:sts::210987654321:assumed-role/node/i-1"));
	/* a role prefix is not the role */
	assert_false(lc_aws_principal_match("arn:aws:sts::123456789012:assumed-role/node/i-1",
					    "arn:aws:sts::123456789012:assumed-role/nodes/i-1"));
	/* an IAM user's path is all compared */
	assert_false(lc_aws_principal_match("arn:aws:iam::123456789012:user/a/x",
					    "arn:aws:iam::123456789012:user/a/y"));
}

static void test_registry_json(void **state)
{
	struct lc_keyconfig kc, back;
	const char *why = NULL;
	json_object *o;
	char big[700];

	(void)state;
	memset(&kc, 0, sizeof(kc));
	strcpy(kc.name, "kc1");
	strcpy(kc.provider, "aws-kms");
	strcpy(kc.key_ref, "arn:aws:kms:eu-west-2:123456789012:key/k");
	strcpy(kc.cmk_id, kc.key_ref);
	/* unbound: no member written, read back "" */
	o = lc_keyconfig_to_json(&kc);
	assert_false(json_object_object_get_ex(o, "kms_identity", NULL));
	assert_int_equal(lc_keyconfig_from_json(o, &back, &why), 0);
	assert_string_equal(back.kms_identity, "");
	/* bound: round trip */
	strcpy(kc.kms_identity, "arn:aws:iam::123456789012:user/alice");
	json_object_put(o);
	o = lc_keyconfig_to_json(&kc);
	assert_int_equal(lc_keyconfig_from_json(o, &back, &why), 0);
	assert_string_equal(back.kms_identity, kc.kms_identity);
	/* hostile: not a string, a control character, too long */
	json_object_object_add(o, "kms_identity", json_object_new_int(7));
	assert_int_equal(lc_keyconfig_from_json(o, &back, &why), -EINVAL);
	assert_non_null(strstr(why, "kms_identity"));
	json_object_object_add(o, "kms_identity", json_object_new_string("arn:\x1b[2J"));
	assert_int_equal(lc_keyconfig_from_json(o, &back, &why), -EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	json_object_object_add(o, "kms_identity", json_object_new_string(big));
	assert_int_equal(lc_keyconfig_from_json(o, &back, &why), -EINVAL);
	json_object_put(o);
}

/* A JWT whose payload is @json (header and signature are not read). */
static char *jwt_of(const char *json)
{
	size_t n = strlen(json);
	char *b = malloc(4 * (n / 3 + 1) + 1), *t;

	assert_non_null(b);
	lc_base64url_encode((const uint8_t *)json, n, b);
	t = malloc(strlen(b) + 64);
	assert_non_null(t);
	sprintf(t, "eyJ0eXAiOiJKV1QifQ.%s.c2ln", b);
	free(b);
	return t;
}

static void test_azure_claims(void **state)
{
	static const char *const bad[] = {
		"{\"tid\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\"}",			/* no oid */
		"{\"oid\":\"bf39cf19-2112-505f-8827-dd2e390b82d6\"}",			/* no tid */
		"{\"oid\":7,\"tid\":\"t\"}",						/* not a string */
		"{\"oid\":\"a;tid=evil\",\"tid\":\"t\"}",				/* separator */
		"{\"oid\":\"\",\"tid\":\"t\"}",						/* empty */
		"{\"oid\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"tid\":\"t\"}", /* 65 */
		"{\"oid\":\"a\\u0000b\",\"tid\":\"t\"}",				/* NUL inside */
		"[\"oid\"]", "{\"oid\":\"a\",", "{\"oid\":\"a\",\"tid\":\"t\"} x", "",
	};
	char out[LC_PROVIDER_IDENTITY_MAX], *t, big[20000];
	struct lc_error err;

	(void)state;
	t = jwt_of("{\"aud\":\"https://vault.azure.net\",\"oid\":\"bf39cf19-2112-505f-8827-dd2e390b82d6\","
		   "\"tid\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"exp\":1}");
	assert_int_equal(lc_azure_token_principal(t, strlen(t), out, sizeof(out), &err), 0);
	assert_string_equal(out, "oid=bf39cf19-2112-505f-8827-dd2e390b82d6;tid=72f988bf-86f1-41af-91ab-2d7cd011db47");
	/* a principal that does not fit the caller's buffer */
	assert_true(lc_azure_token_principal(t, strlen(t), out, 20, &err) < 0);
	assert_string_equal(out, "");
	free(t);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = jwt_of(bad[i]);
		strcpy(out, "x");
		assert_true(lc_azure_token_principal(t, strlen(t), out, sizeof(out), &err) < 0);
		assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
		assert_string_equal(out, "");
		free(t);
	}
	/* not a JWT, not base64url, a payload past 16 KiB */
	static const char *const raw[] = { "opaque-token", "a.b", "h.not*b64.s", "h.a.s", ".." };
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		assert_true(lc_azure_token_principal(raw[i], strlen(raw[i]), out, sizeof(out), &err) < 0);
	big[0] = 'h';
	big[1] = '.';
	memset(big + 2, 'A', sizeof(big) - 5);
	memcpy(big + sizeof(big) - 3, ".s", 3);
	assert_true(lc_azure_token_principal(big, strlen(big), out, sizeof(out), &err) < 0);
	assert_non_null(strstr(err.msg, "longer than"));
}

static void test_gcp_email(void **state)
{
	static const char *const bad[] = {
		"", "ab", "noat", "a@", "@b.com", "a@b@c.com", "a b@c.com", "a@b.com\nc@d.com",
		"<html>Welcome</html>", "a\"@b.com", "a;@b.com",
	};
	char out[LC_PROVIDER_IDENTITY_MAX], big[300];
	struct lc_error err;

	(void)state;
	assert_int_equal(lc_gcp_email_check("lakecrypt-agent@lc-test.iam.gserviceaccount.com", 47, out,
					    sizeof(out), &err), 0);
	assert_string_equal(out, "lakecrypt-agent@lc-test.iam.gserviceaccount.com");
	/* a trailing newline (a proxy) is dropped */
	assert_int_equal(lc_gcp_email_check("a@b.com\r\n", 9, out, sizeof(out), &err), 0);
	assert_string_equal(out, "a@b.com");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "x");
		assert_true(lc_gcp_email_check(bad[i], strlen(bad[i]), out, sizeof(out), &err) < 0);
		assert_string_equal(out, "");
		assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
	}
	/* longer than an address may be; a NUL inside (len says more) */
	memset(big, 'a', sizeof(big) - 8);
	strcpy(big + sizeof(big) - 8, "@x.com");
	assert_true(lc_gcp_email_check(big, strlen(big), out, sizeof(out), &err) < 0);
	assert_true(lc_gcp_email_check("a@b\0.com", 8, out, sizeof(out), &err) < 0);
	assert_true(lc_gcp_email_check(NULL, 0, out, sizeof(out), &err) < 0);
	/* fits the check, not the caller's buffer */
	assert_true(lc_gcp_email_check("abc@d.com", 9, out, 5, &err) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_registry_json),
		cmocka_unit_test(test_azure_claims),
		cmocka_unit_test(test_gcp_email),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
