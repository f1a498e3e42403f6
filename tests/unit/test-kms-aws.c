// SPDX-License-Identifier: GPL-2.0
/*
 * AWS KMS provider, offline: SigV4 against every header-signed case of the
 * AWS signing test suite (tests/unit/data/aws-sigv4), the KEK context
 * split into EncryptionContext pairs, ARN regions, and the reading of
 * KMS answers (error classes of the table, malformed answers).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "envelope.h"
#include "http.h"
#include "kms-aws.h"

static const char *data_dir(void)
{
	const char *d = getenv("LC_TEST_DATA");

	return d ? d : "tests/unit/data";
}

static char *slurp(const char *dir, const char *name)
{
	char path[1024];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static time_t parse_ts(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return timegm(&tm);
}

/* One case: parse request.txt (request line, headers with continuation
 * lines, blank line, body), sign, compare with the expected files. */
static void run_case(const char *dir)
{
	char *ctx_txt = slurp(dir, "context.json"), *req_txt = slurp(dir, "request.txt");
	char *exp_cr = slurp(dir, "header-canonical-request.txt");
	char *exp_sts = slurp(dir, "header-string-to-sign.txt");
	char *exp_sig = slurp(dir, "header-signature.txt");
	char *exp_signed = slurp(dir, "header-signed-request.txt");
	struct lc_sigv4_header hs[32];
	char *names[32], *values[32];
	size_t nh = 0;
	struct lc_sigv4_request req = { 0 };
	struct lc_sigv4_creds cr = { 0 };
	struct lc_sigv4_result res;
	json_object *ctx, *c, *v;
	char *line, *next, *sp, *target, *q, *body = NULL, want_auth[1024];
	char *auth;

	assert_non_null(ctx_txt);
	assert_non_null(req_txt);
	assert_non_null(exp_cr);
	assert_non_null(exp_sts);
	assert_non_null(exp_sig);
	assert_non_null(exp_signed);
	ctx = json_tokener_parse(ctx_txt);
	assert_non_null(ctx);

	/* request line */
	line = req_txt;
	next = strchr(line, '\n');
	assert_non_null(next);
	*next++ = 0;
	sp = strchr(line, ' ');
	*sp = 0;
	req.method = line;
	target = sp + 1;
	sp = strrchr(target, ' ');	/* " HTTP/1.1" */
	*sp = 0;
	q = strchr(target, '?');
	if (q)
		*q++ = 0;
	req.path = target;
	req.query = q;
	/* headers */
	for (line = next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (!*line) {
			body = next;
			break;
		}
		if ((*line == ' ' || *line == '\t') && nh) {
			/* continuation of the previous value */
			size_t l = strlen(values[nh - 1]) + strlen(line) + 2;
			char *nv = malloc(l);

			snprintf(nv, l, "%s\n%s", values[nh - 1], line);
			free(values[nh - 1]);
			values[nh - 1] = nv;
			continue;
		}
		sp = strchr(line, ':');
		assert_non_null(sp);
		*sp = 0;
		names[nh] = strdup(line);
		values[nh] = strdup(sp + 1);
		nh++;
		if (!next)
			break;
	}
	if (!body && next && !*next)
		body = NULL;
	for (size_t i = 0; i < nh; i++) {
		hs[i].name = names[i];
		hs[i].value = values[i];
	}
	req.headers = hs;
	req.nheaders = nh;
	if (body) {
		req.body = body;
		req.body_len = strlen(body);
	}
	assert_true(json_object_object_get_ex(ctx, "normalize", &v));
	req.normalize_path = json_object_get_boolean(v);
	assert_true(json_object_object_get_ex(ctx, "sign_body", &v));
	req.sign_body = json_object_get_boolean(v);
	if (json_object_object_get_ex(ctx, "omit_session_token", &v))
		req.omit_session_token = json_object_get_boolean(v);
	assert_true(json_object_object_get_ex(ctx, "credentials", &c));
	cr.access_key_id = json_object_get_string(json_object_object_get(c, "access_key_id"));
	cr.secret_key = json_object_get_string(json_object_object_get(c, "secret_access_key"));
	if (json_object_object_get_ex(c, "token", &v))
		cr.session_token = json_object_get_string(v);

	assert_int_equal(lc_sigv4_sign(&req, &cr,
				       json_object_get_string(json_object_object_get(ctx, "region")),
				       json_object_get_string(json_object_object_get(ctx, "service")),
				       parse_ts(json_object_get_string(json_object_object_get(ctx, "timestamp"))),
				       &res), 0);
	if (strcmp(res.canonical_request, exp_cr))
		fail_msg("%s: canonical request\n--- got\n%s\n--- expected\n%s", dir,
			 res.canonical_request, exp_cr);
	if (strcmp(res.string_to_sign, exp_sts))
		fail_msg("%s: string to sign\n--- got\n%s\n--- expected\n%s", dir,
			 res.string_to_sign, exp_sts);
	assert_string_equal(res.signature, exp_sig);
	/* The signed request's Authorization line, exactly. */
	auth = strstr(exp_signed, "\nAuthorization:");
	assert_non_null(auth);
	auth += strlen("\nAuthorization:");
	snprintf(want_auth, sizeof(want_auth), "%.*s", (int)strcspn(auth, "\n"), auth);
	assert_string_equal(res.authorization, want_auth);
	lc_sigv4_result_free(&res);

	for (size_t i = 0; i < nh; i++) {
		free(names[i]);
		free(values[i]);
	}
	json_object_put(ctx);
	free(ctx_txt);
	free(req_txt);
	free(exp_cr);
	free(exp_sts);
	free(exp_sig);
	free(exp_signed);
}

static void test_sigv4_suite(void **state)
{
	char base[512], dir[1024];
	struct dirent **ents;
	int n, cases = 0;

	(void)state;
	snprintf(base, sizeof(base), "%s/aws-sigv4", data_dir());
	n = scandir(base, &ents, NULL, alphasort);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		char *probe;

		snprintf(dir, sizeof(dir), "%s/%s", base, ents[i]->d_name);
		probe = ents[i]->d_name[0] != '.' ? slurp(dir, "header-signature.txt") : NULL;
		if (probe) {
			free(probe);
			print_message("sigv4 case %s\n", ents[i]->d_name);
			run_case(dir);
			cases++;
		}
		free(ents[i]);
	}
	free(ents);
	/* Every header-signed case of the suite (38 in commit 495329c). */
	assert_int_equal(cases, 38);
}

/* A KMS request: headers as kms-aws.c sends them, fixed inputs. */
static void test_sigv4_kms_request(void **state)
{
	const struct lc_sigv4_header hs[] = {
		{ "Content-Type", "application/x-amz-json-1.1" },
		{ "Host", "kms.eu-west-2.amazonaws.com" },
		{ "X-Amz-Target", "TrentService.DescribeKey" },
	};
	const char *body = "{\"KeyId\":\"alias/x\"}";
	struct lc_sigv4_request req = { .method = "POST", .path = "/", .headers = hs, .nheaders = 3,
					.body = body, .body_len = strlen(body), .normalize_path = true };
	struct lc_sigv4_creds cr = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SeSsIoNtOkEn42" };
	struct lc_sigv4_result res;

	(void)state;
	assert_int_equal(lc_sigv4_sign(&req, &cr, "eu-west-2", "kms", 1440938160, &res), 0);
	assert_string_equal(res.amz_date, "20150830T123600Z");
	assert_non_null(strstr(res.authorization,
			       "Credential=AKIDEXAMPLE/20150830/eu-west-2/kms/aws4_request, "
			       "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="));
	assert_null(strstr(res.authorization, "SeSsIoNtOkEn42"));
	assert_non_null(strstr(res.canonical_request, "x-amz-security-token:SeSsIoNtOkEn42\n"));
	lc_sigv4_result_free(&res);
}

static void test_context_split(void **state)
{
	static const uint8_t uuid[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
					  1, 2, 3, 4, 5, 6, 7, 8 };
	struct lc_kek_identity id = { uuid, "ws-1", "proj.a", "kc_9" };
	char ctx[LC_KEK_CONTEXT_MAX], buf[LC_KEK_CONTEXT_MAX];
	struct lc_kek_context_pair p[LC_KEK_CONTEXT_PAIRS];
	static const char *const bad[] = {
		"lakecrypt:volume:12345678-9abc-def0-0102-030405060708",	/* v1 */
		"lakecrypt:v2;volume=12345678-9abc-def0-0102-030405060708;workspace=w;project=p",
		"lakecrypt:v2;workspace=w;volume=12345678-9abc-def0-0102-030405060708;project=p;keyconfig=k",
		"lakecrypt:v2;volume=12345678-9abc-def0-0102-03040506070;workspace=w;project=p;keyconfig=k",
		"lakecrypt:v2;volume=12345678-9abc-def0-0102-030405060708;workspace=w;project=p;keyconfig=k;x=y",
		"lakecrypt:v2;volume=12345678-9abc-def0-0102-030405060708;workspace=;project=p;keyconfig=k",
		"lakecrypt:v2;volume=12345678-9abc-def0-0102-030405060708;workspace=w\"x;project=p;keyconfig=k",
		"lakecrypt:v2;volume=12345678-9ABC-def0-0102-030405060708;workspace=w;project=p;keyconfig=k",
		"lakecrypt:v2x;volume=12345678-9abc-def0-0102-030405060708;workspace=w;project=p;keyconfig=k",
		"",
	};

	(void)state;
	assert_int_equal(lc_kek_context(&id, ctx), 0);
	assert_int_equal(lc_kek_context_split(ctx, buf, p), 0);
	assert_string_equal(p[0].key, "lakecrypt:volume");
	assert_string_equal(p[0].value, "12345678-9abc-def0-0102-030405060708");
	assert_string_equal(p[1].key, "lakecrypt:workspace");
	assert_string_equal(p[1].value, "ws-1");
	assert_string_equal(p[2].key, "lakecrypt:project");
	assert_string_equal(p[2].value, "proj.a");
	assert_string_equal(p[3].key, "lakecrypt:keyconfig");
	assert_string_equal(p[3].value, "kc_9");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(lc_kek_context_split(bad[i], buf, p), -EINVAL);
		assert_null(p[0].value);
	}
	assert_int_equal(lc_kek_context_split(NULL, buf, p), -EINVAL);
}

static void test_arn_region(void **state)
{
	char r[LC_AWS_REGION_MAX], part[LC_AWS_REGION_MAX];

	(void)state;
	assert_int_equal(lc_aws_arn_region("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab", r, part), 0);
	assert_string_equal(r, "eu-west-1");
	assert_string_equal(part, "aws");
	assert_int_equal(lc_aws_arn_region("arn:aws-cn:kms:cn-north-1:111122223333:alias/x", r, part), 0);
	assert_string_equal(r, "cn-north-1");
	assert_string_equal(part, "aws-cn");
	assert_int_equal(lc_aws_arn_region("arn:aws:s3:eu-west-1:111122223333:key/x", r, NULL), -EINVAL);
	assert_int_equal(lc_aws_arn_region("arn:aws:kms::111122223333:key/x", r, NULL), -EINVAL);
	assert_int_equal(lc_aws_arn_region("arn:aws:kms:eu-west-1:1111a:key/x", r, NULL), -EINVAL);
	assert_int_equal(lc_aws_arn_region("arn:aws:kms:eu-west-1:111122223333:key/", r, NULL), -EINVAL);
	assert_int_equal(lc_aws_arn_region("1234abcd-12ab", r, NULL), -EINVAL);
	assert_int_equal(lc_aws_arn_region("arn:aws:kms:EU:1:key/x", r, NULL), -EINVAL);
}

struct err_case {
	long status;
	const char *type;
	const char *key_region;
	enum lc_err_class cls;
	const char *says;
};

static void test_error_classes(void **state)
{
	static const struct err_case cases[] = {
		{ 400, "ThrottlingException", "", LC_ERRC_TRANSIENT, "ThrottlingException" },
		{ 400, "LimitExceededException", "", LC_ERRC_TRANSIENT, NULL },
		{ 500, "KMSInternalException", "", LC_ERRC_TRANSIENT, NULL },
		{ 500, "DependencyTimeoutException", "", LC_ERRC_TRANSIENT, NULL },
		{ 500, "KeyUnavailableException", "", LC_ERRC_TRANSIENT, NULL },
		{ 503, NULL, "", LC_ERRC_TRANSIENT, "HTTP 503" },
		{ 400, "ExpiredTokenException", "", LC_ERRC_TRANSIENT, NULL },
		{ 400, "DisabledException", "", LC_ERRC_DENIED, "DisabledException" },
		{ 400, "KMSInvalidStateException", "", LC_ERRC_TRANSIENT, "KMSInvalidStateException" },
		{ 400, "AccessDeniedException", "", LC_ERRC_DENIED, NULL },
		{ 400, "IncorrectKeyException", "", LC_ERRC_INVALID, "another KMS key" },
		{ 400, "NotFoundException", "eu-west-2", LC_ERRC_DENIED, "does not exist" },
		/* a bare key id: the region may have changed, not the key */
		{ 400, "NotFoundException", "", LC_ERRC_MISCONFIG, "bare key id" },
		{ 400, "NotFoundException", "us-east-1", LC_ERRC_MISCONFIG, "region us-east-1" },
		{ 400, "InvalidCiphertextException", "", LC_ERRC_INVALID, "context did not match" },
		{ 400, "UnrecognizedClientException", "", LC_ERRC_MISCONFIG, NULL },
		{ 400, "InvalidSignatureException", "", LC_ERRC_MISCONFIG, NULL },
		{ 400, "ValidationException", "", LC_ERRC_MISCONFIG, NULL },
		{ 403, NULL, "", LC_ERRC_MISCONFIG, "unrecognised" },	/* a proxy: never a kill */
		{ 400, "com.amazonaws.kms#DisabledException", "", LC_ERRC_DENIED, "DisabledException" },
		/* throttling without a type, and denials that KMS did not send */
		{ 429, NULL, "", LC_ERRC_TRANSIENT, "HTTP 429" },
		{ 408, NULL, "", LC_ERRC_TRANSIENT, "HTTP 408" },
		{ 302, "DisabledException", "", LC_ERRC_MISCONFIG, "not an answer of KMS" },
		{ 302, "AccessDeniedException", "", LC_ERRC_MISCONFIG, "not an answer of KMS" },
	};
	char body[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lc_aws_result res;
		struct lc_error err = { 0 };
		int r;

		if (cases[i].type)
			snprintf(body, sizeof(body), "{\"__type\":\"%s\",\"message\":\"m\"}", cases[i].type);
		else
			snprintf(body, sizeof(body), "<html>nope</html>");
		r = lc_aws_parse_response(LC_AWS_DECRYPT, cases[i].status, body, strlen(body),
					  cases[i].key_region, "eu-west-2", &res, &err);
		assert_true(r < 0);
		if (err.cls != cases[i].cls)
			fail_msg("case %zu (%s): class %s, expected %s: %s", i,
				 cases[i].type ? cases[i].type : "-", lc_err_class_name(err.cls),
				 lc_err_class_name(cases[i].cls), err.msg);
		if (cases[i].says && !strstr(err.msg, cases[i].says))
			fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].says);
		lc_aws_result_free(&res);
	}
}

static void test_answers(void **state)
{
	struct lc_aws_result res;
	struct lc_error err = { 0 };
	const char *enc = "{\"CiphertextBlob\":\"AQIDBA==\",\"KeyId\":\"arn:aws:kms:eu-west-2:111122223333:key/k\"}";
	const char *dec = "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"KeyId\":\"k\"}";
	const char *desc = "{\"KeyMetadata\":{\"Arn\":\"arn:aws:kms:eu-west-2:1:key/k\",\"KeyState\":\"PendingDeletion\",\"DeletionDate\":1.7E9}}";
	static const char *const bad[] = {
		"", "{", "[]", "{\"CiphertextBlob\":\"AQID*A==\"}", "{\"CiphertextBlob\":5}",
		"{\"CiphertextBlob\":\"AQIDBA==\"} x", "{\"CiphertextBlob\":\"\"}", "null",
		"{\"CiphertextBlob\":\"AQIDBA=\"}",
	};

	(void)state;
	assert_int_equal(lc_aws_parse_response(LC_AWS_ENCRYPT, 200, enc, strlen(enc), "", "", &res, &err), 0);
	assert_int_equal(res.blob.len, 4);
	assert_memory_equal(res.blob.p, "\1\2\3\4", 4);
	assert_string_equal(res.key_id, "arn:aws:kms:eu-west-2:111122223333:key/k");
	lc_aws_result_free(&res);
	assert_int_equal(lc_aws_parse_response(LC_AWS_DECRYPT, 200, dec, strlen(dec), "", "", &res, &err), 0);
	assert_int_equal(res.plaintext.len, 32);
	for (int i = 0; i < 32; i++)
		assert_int_equal(res.plaintext.p[i], i);
	lc_aws_result_free(&res);
	/* The secret twice: json-c would free the first unwiped; refused
	 * before parsing, as a malformed (transient) reply. */
	{
		const char *dup = "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"KeyId\":\"k\","
				  "\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}";

		assert_true(lc_aws_parse_response(LC_AWS_DECRYPT, 200, dup, strlen(dup), "", "", &res, &err) < 0);
		assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
		assert_null(res.plaintext.p);
		lc_aws_result_free(&res);
	}
	/* A Plaintext that decodes past the 4096 bytes KMS can return (the
	 * red team's 5,464 characters = 4,098 bytes): refused before any byte
	 * is written (ASan would see the write). */
	{
		size_t nb = 5464, bl = nb + 64;
		char *big = malloc(bl);

		assert_non_null(big);
		memcpy(big, "{\"Plaintext\":\"", 14);
		memset(big + 14, 'A', nb);
		memcpy(big + 14 + nb, "\"}", 3);
		assert_true(lc_aws_parse_response(LC_AWS_DECRYPT, 200, big, strlen(big), "", "", &res, &err) < 0);
		assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
		assert_null(res.plaintext.p);
		lc_aws_result_free(&res);
		free(big);
	}
	assert_int_equal(lc_aws_parse_response(LC_AWS_DESCRIBE_KEY, 200, desc, strlen(desc), "", "", &res, &err), 0);
	assert_int_equal(res.state, LC_KEY_PENDING_DELETION);
	assert_int_equal(res.deletion_date, 1700000000);
	lc_aws_result_free(&res);
	{
		static const struct { const char *st; int ok; enum lc_key_state state; enum lc_err_class cls; } sts[] = {
			{ "Enabled", 1, LC_KEY_ENABLED, LC_ERRC_NONE },
			{ "Disabled", 1, LC_KEY_DISABLED, LC_ERRC_NONE },
			/* Not revocations (key-lifecycle issue): no kill. */
			{ "PendingImport", 0, LC_KEY_UNKNOWN, LC_ERRC_MISCONFIG },
			{ "Unavailable", 0, LC_KEY_UNKNOWN, LC_ERRC_TRANSIENT },
			{ "PendingReplicaDeletion", 1, LC_KEY_PENDING_DELETION, LC_ERRC_NONE },
			{ "Creating", 0, LC_KEY_UNKNOWN, LC_ERRC_TRANSIENT },
			{ "Updating", 0, LC_KEY_UNKNOWN, LC_ERRC_TRANSIENT },
			{ "Frozen", 0, LC_KEY_UNKNOWN, LC_ERRC_MISCONFIG },
		};
		char b[200];

		for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++) {
			snprintf(b, sizeof(b), "{\"KeyMetadata\":{\"KeyId\":\"k\",\"KeyState\":\"%s\"}}", sts[i].st);
			memset(&err, 0, sizeof(err));
			if (sts[i].ok) {
				assert_int_equal(lc_aws_parse_response(LC_AWS_DESCRIBE_KEY, 200, b, strlen(b), "", "", &res, &err), 0);
				assert_int_equal(res.state, sts[i].state);
			} else {
				assert_true(lc_aws_parse_response(LC_AWS_DESCRIBE_KEY, 200, b, strlen(b), "", "", &res, &err) < 0);
				assert_int_equal(err.cls, sts[i].cls);
				assert_non_null(strstr(err.msg, "not a revocation"));
			}
			lc_aws_result_free(&res);
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_true(lc_aws_parse_response(LC_AWS_ENCRYPT, 200, bad[i], strlen(bad[i]), "", "", &res, &err) < 0);
		assert_int_equal(err.cls, LC_ERRC_TRANSIENT);
		assert_null(res.blob.p);
	}
	/* A deep nesting is refused, not recursed into. */
	{
		char deep[200];

		memset(deep, '[', sizeof(deep));
		deep[0] = '{';
		assert_true(lc_aws_parse_response(LC_AWS_ENCRYPT, 200, deep, sizeof(deep), "", "", &res, &err) < 0);
	}
}

static void test_base64(void **state)
{
	uint8_t out[16];
	char enc[32];
	size_t n;

	(void)state;
	assert_int_equal(lc_base64_encode((const uint8_t *)"foobar", 6, enc), 8);
	assert_string_equal(enc, "Zm9vYmFy");
	assert_int_equal(lc_base64_decode("Zm9vYg==", 8, out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "foob", 4);
	assert_int_equal(lc_base64_decode("Zm9vYmE=", 8, out, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(lc_base64_decode("Zm9", 3, out, &n), -EINVAL);
	assert_int_equal(lc_base64_decode("Zm=v", 4, out, &n), -EINVAL);
	assert_int_equal(lc_base64_decode("Zg==Zg==", 8, out, &n), -EINVAL);
}

/* Configuration errors are MISCONFIG and found at once. */
static void test_config(void **state)
{
	struct lc_kms_aws *a;
	struct lc_error err = { 0 };
	struct lc_kms_aws_config c = { .credentials = "magic" };

	(void)state;
	assert_int_equal(lc_kms_aws_new(&a, &c, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	c.credentials = "env";
	c.endpoint = "http://127.0.0.1:1";
	assert_int_equal(lc_kms_aws_new(&a, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "https://"));
	c.endpoint = NULL;
	c.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(lc_kms_aws_new(&a, &c, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
}

/* An ARN of another region than the configured endpoint's is refused
 * before any request: nothing that endpoint answers can be a denial. */
static void test_region_mismatch(void **state)
{
	struct lc_kms_aws *a;
	struct lc_provider p;
	struct lc_provider_reply rep;
	struct lc_error err = { 0 };
	struct lc_kms_aws_config c = { .credentials = "env", .endpoint = "https://127.0.0.1:1",
				       .region = "us-east-1" };

	(void)state;
	assert_int_equal(lc_kms_aws_new(&a, &c, &err), 0);
	lc_kms_aws_provider_init(&p, a);
	assert_true(lc_provider_key_state(&p, "arn:aws:kms:eu-west-2:111122223333:key/k1", &rep,
					  &err) < 0);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(err.msg, "region eu-west-2 but the endpoint serves us-east-1"));
	assert_int_equal(rep.attempts, 1);
	lc_provider_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigv4_suite),
		cmocka_unit_test(test_sigv4_kms_request),
		cmocka_unit_test(test_context_split),
		cmocka_unit_test(test_arn_region),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_region_mismatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
