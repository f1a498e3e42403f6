// SPDX-License-Identifier: GPL-2.0
/*
 * PKCS#11 provider: key references, the blob format, RFC 7512 escaping,
 * PIN file checks, configuration ([pkcs11] and lc_kms_pkcs11_new), and
 * against SoftHSM2 with a token made here through the PKCS#11 API itself
 * (C_InitToken, C_InitPIN, C_GenerateKey): a round trip, and many threads
 * wrapping and unwrapping at once over a small session pool.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <p11-kit/pkcs11.h>

#include "config.h"
#include "kms-pkcs11.h"

static void test_parse_ref(void **state)
{
	struct lc_p11_ref r;
	struct lc_error e = { 0 };
	char big[LC_KMS_PKCS11_LABEL_MAX + 2];

	(void)state;
	assert_int_equal(lc_p11_parse_ref("lakecrypt cmk", &r, &e), 0);
	assert_false(r.by_id);
	assert_string_equal(r.label, "lakecrypt cmk");
	assert_int_equal(lc_p11_parse_ref("label:id:01", &r, &e), 0);
	assert_false(r.by_id);
	assert_string_equal(r.label, "id:01");
	assert_int_equal(lc_p11_parse_ref("id:0aFf", &r, &e), 0);
	assert_true(r.by_id);
	assert_int_equal(r.id_len, 2);
	assert_int_equal(r.id[0], 0x0a);
	assert_int_equal(r.id[1], 0xff);

	static const char *const bad[] = { "", "id:", "id:0", "id:0g", "id:+1", "label:",
					   "a\nb", "id:0x01" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(lc_p11_parse_ref(bad[i], &r, &e), -EINVAL);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(lc_p11_parse_ref(big, &r, &e), -EINVAL);
	big[LC_KMS_PKCS11_LABEL_MAX] = '\0';
	assert_int_equal(lc_p11_parse_ref(big, &r, &e), 0);
	{
		char id[3 + 2 * LC_KMS_PKCS11_ID_MAX + 3] = "id:";

		memset(id + 3, 'a', 2 * LC_KMS_PKCS11_ID_MAX);
		id[3 + 2 * LC_KMS_PKCS11_ID_MAX] = '\0';
		assert_int_equal(lc_p11_parse_ref(id, &r, &e), 0);
		assert_int_equal(r.id_len, LC_KMS_PKCS11_ID_MAX);
		strcat(id, "aa");
		assert_int_equal(lc_p11_parse_ref(id, &r, &e), -EINVAL);
	}
	assert_int_equal(lc_p11_parse_ref(NULL, &r, &e), -EINVAL);
	/* bound references (the token's serial) */
	assert_int_equal(lc_p11_parse_ref("serial=a1b2c3;id:0a", &r, &e), 0);
	assert_string_equal(r.serial, "a1b2c3");
	assert_true(r.by_id);
	assert_int_equal(r.id[0], 0x0a);
	assert_int_equal(lc_p11_parse_ref("serial=0123456789abcdef;label:k;x", &r, &e), 0);
	assert_string_equal(r.serial, "0123456789abcdef");
	assert_string_equal(r.label, "k;x");
	assert_int_equal(lc_p11_parse_ref("label:serial=x;label:k", &r, &e), 0);
	assert_string_equal(r.serial, "");
	assert_string_equal(r.label, "serial=x;label:k");
	{
		static const char *const bad2[] = { "serial=;id:01", "serial=x", "serial=x;k",
			"serial=0123456789abcdef0;id:01", "serial=x;label:", "serial=x;id:0" };

		for (size_t i = 0; i < sizeof(bad2) / sizeof(bad2[0]); i++) {
			memset(&e, 0, sizeof(e));
			assert_int_equal(lc_p11_parse_ref(bad2[i], &r, &e), -EINVAL);
			assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
		}
	}
}

static void test_blob(void **state)
{
	uint8_t b[LC_P11_BLOB_OVERHEAD + LC_KMS_PKCS11_MAX_PLAINTEXT + 1] = { 1, 12, 16, 0 };
	const uint8_t *iv, *ct;
	size_t ct_len;
	struct lc_error e = { 0 };

	(void)state;
	assert_int_equal(lc_p11_blob_parse(b, LC_P11_BLOB_OVERHEAD + 32, &iv, &ct, &ct_len, &e), 0);
	assert_ptr_equal(iv, b + 4);
	assert_ptr_equal(ct, b + 16);
	assert_int_equal(ct_len, 32 + 16);
	/* Lengths: no plaintext byte, the largest, one more. */
	assert_int_equal(lc_p11_blob_parse(b, LC_P11_BLOB_OVERHEAD, &iv, &ct, &ct_len, &e), -EBADMSG);
	assert_int_equal(e.cls, LC_ERRC_INVALID);
	assert_int_equal(lc_p11_blob_parse(b, LC_P11_BLOB_OVERHEAD + LC_KMS_PKCS11_MAX_PLAINTEXT,
					   &iv, &ct, &ct_len, &e), 0);
	assert_int_equal(lc_p11_blob_parse(b, sizeof(b), &iv, &ct, &ct_len, &e), -EBADMSG);
	assert_int_equal(lc_p11_blob_parse(NULL, 64, &iv, &ct, &ct_len, &e), -EBADMSG);
	for (int i = 0; i < 4; i++) {
		uint8_t c[64] = { 1, 12, 16, 0 };

		c[i] ^= 0x40;
		memset(&e, 0, sizeof(e));
		assert_int_equal(lc_p11_blob_parse(c, sizeof(c), &iv, &ct, &ct_len, &e), -EBADMSG);
		assert_int_equal(e.cls, LC_ERRC_INVALID);
		assert_non_null(strstr(e.msg, "blob header"));
	}
}

static void test_uri_escape(void **state)
{
	char out[64];
	static const uint8_t id[] = { 0x00, 0x01, 0xab, 'A' };

	(void)state;
	assert_int_equal(lc_p11_uri_escape((const uint8_t *)"lc test;a/b%", 12, false, out, sizeof(out)), 0);
	assert_string_equal(out, "lc%20test%3ba%2fb%25");
	assert_int_equal(lc_p11_uri_escape(id, sizeof(id), false, out, sizeof(out)), 0);
	assert_string_equal(out, "%00%01%abA");
	assert_int_equal(lc_p11_uri_escape(id, sizeof(id), true, out, sizeof(out)), 0);
	assert_string_equal(out, "%00%01%ab%41");
	assert_int_equal(lc_p11_uri_escape((const uint8_t *)"", 0, false, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(lc_p11_uri_escape(id, sizeof(id), false, out, 10), -ENOSPC);
	assert_int_equal(lc_p11_uri_escape(id, sizeof(id), false, out, 11), 0);
	assert_int_equal(lc_p11_uri_escape((const uint8_t *)"abc", 3, false, out, 3), -ENOSPC);
}

static char tmpdir[] = "/tmp/lc-test-p11.XXXXXX";

static void put(const char *name, const char *data, size_t len, mode_t mode, char *path)
{
	int fd;

	sprintf(path, "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int pin_err(const char *path, uid_t uid, const char *needle)
{
	struct lc_secret pin = { 0 };
	struct lc_error e = { 0 };
	int r = lc_p11_read_pin(path, uid, &pin, &e);

	assert_null(pin.p);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	if (!strstr(e.msg, needle))
		fail_msg("\"%s\" lacks \"%s\"", e.msg, needle);
	return r;
}

static void test_pin_file(void **state)
{
	char p[256], l[256], big[LC_KMS_PKCS11_PIN_MAX + 8];
	struct lc_secret pin = { 0 };
	struct lc_error e = { 0 };
	uid_t me = geteuid();

	(void)state;
	put("pin", "1234\n", 5, 0600, p);
	assert_int_equal(lc_p11_read_pin(p, me, &pin, &e), 0);
	assert_int_equal(pin.len, 4);
	assert_memory_equal(pin.p, "1234", 4);
	lc_secret_free(&pin);
	put("pin", "12 34\r\n", 7, 0400, p);
	assert_int_equal(lc_p11_read_pin(p, me, &pin, &e), 0);
	assert_int_equal(pin.len, 5);
	assert_memory_equal(pin.p, "12 34", 5);
	lc_secret_free(&pin);
	memset(big, '7', sizeof(big));
	put("pin", big, LC_KMS_PKCS11_PIN_MAX, 0600, p);
	assert_int_equal(lc_p11_read_pin(p, me, &pin, &e), 0);
	assert_int_equal(pin.len, LC_KMS_PKCS11_PIN_MAX);
	lc_secret_free(&pin);

	put("pin", big, LC_KMS_PKCS11_PIN_MAX + 1, 0600, p);
	pin_err(p, me, "the PIN must be 1 to 256 bytes");
	put("pin", big, LC_KMS_PKCS11_PIN_MAX + 3, 0600, p);
	pin_err(p, me, "larger than");
	put("pin", "1234\n", 5, 0640, p);
	assert_int_equal(pin_err(p, me, "has mode 0640: group and others must have no access"), -EPERM);
	put("pin", "1234\n", 5, 0604, p);
	pin_err(p, me, "has mode 0604");
	put("pin", "\n", 1, 0600, p);
	pin_err(p, me, "the PIN must be 1 to");
	put("pin", "12\0" "34", 5, 0600, p);
	pin_err(p, me, "one line without NUL");
	put("pin", "12\n34\n", 6, 0600, p);
	pin_err(p, me, "one line without NUL");
	put("pin", "1234", 4, 0600, p);
	sprintf(l, "%s/link", tmpdir);
	unlink(l);
	assert_int_equal(symlink(p, l), 0);
	pin_err(l, me, "a symlink is not accepted");
	pin_err(tmpdir, me, "not a regular file");
	sprintf(l, "%s/none", tmpdir);
	assert_int_equal(pin_err(l, me, "No such file"), -ENOENT);
	pin_err("relative/pin", me, "absolute path");
	/* Owner: neither the agent's uid nor root. */
	if (me == 0) {
		assert_int_equal(chown(p, 4242, 4242), 0);
		pin_err(p, 0, "is owned by uid 4242: expected uid 0 (the agent) or root");
	} else {
		pin_err(p, me + 1, "expected uid");
	}
}

static void test_config(void **state)
{
	static const char text[] =
		"[pkcs11]\n"
		"module = /usr/lib/softhsm/libsofthsm2.so\n"
		"token_label = Lake Crypt HSM   # blanks inside a label are kept\n"
		"token_serial = 5f1c1a3b2e4d6a7c\n"
		"pin_file = /etc/lakecrypt/pkcs11.pin\n"
		"sessions = 8\n";
	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "[pkcs11]\nmodule = libsofthsm2.so\n", "is not an absolute path" },
		{ "[pkcs11]\ntoken_label = 0123456789012345678901234567890123\n", "token_label is too long: at most 32" },
		{ "[pkcs11]\ntoken_serial = 0123456789abcdef0\n", "token_serial is too long: at most 16" },
		{ "[pkcs11]\ntoken_serial = 12 34\n", "must be a single word" },
		{ "[pkcs11]\nsessions = 0\n", "sessions = \"0\" is not usable: expected a whole number from 1 to 64" },
		{ "[pkcs11]\nsessions = 65\n", "from 1 to 64" },
		{ "[pkcs11]\npin = 1234\n", "unknown key \"pin\" in [pkcs11]: expected one of module, token_label, token_serial, pin_file, sessions" },
		{ "[pkcs12]\n", "unknown section [pkcs12]: expected one of [agent], [kms], [revocation], [test], [volume], [aws-kms], [kmip], [pkcs11]," },
	};
	struct lc_config c;
	struct lc_error e = { 0 };

	(void)state;
	lc_config_defaults(&c);
	assert_string_equal(c.pkcs11_module, "");
	assert_int_equal(c.pkcs11_sessions, 0);
	assert_int_equal(lc_config_parse(&c, text, strlen(text), "agent.conf", &e), 0);
	assert_string_equal(c.pkcs11_module, "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(c.pkcs11_token_label, "Lake Crypt HSM");
	assert_string_equal(c.pkcs11_token_serial, "5f1c1a3b2e4d6a7c");
	assert_string_equal(c.pkcs11_pin_file, "/etc/lakecrypt/pkcs11.pin");
	assert_int_equal(c.pkcs11_sessions, 8);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lc_config_defaults(&c);
		memset(&e, 0, sizeof(e));
		assert_int_equal(lc_config_parse(&c, bad[i].text, strlen(bad[i].text), "agent.conf", &e),
				 -EINVAL);
		if (!strstr(e.msg, bad[i].needle))
			fail_msg("config %zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].needle);
	}
}

static void test_new(void **state)
{
	static const struct {
		struct lc_kms_pkcs11_config c;
		const char *needle;
	} bad[] = {
		{ { "libsofthsm2.so", "t", NULL, "/p", 0 }, "must be an absolute path" },
		{ { "/m.so", NULL, "", "/p", 0 }, "needs token_label or token_serial" },
		{ { "/m.so", "012345678901234567890123456789012", NULL, "/p", 0 }, "longer than 32 bytes" },
		{ { "/m.so", NULL, "0123456789abcdef0", "/p", 0 }, "longer than 16 bytes" },
		{ { "/m.so", "t", NULL, NULL, 0 }, "needs pin_file" },
		{ { "/m.so", "t", NULL, "/p", 65 }, "sessions must be 1 to 64" },
		{ { "/m.so", "t", NULL, "/nonexistent/pin", 0 }, "PIN file /nonexistent/pin" },
	};
	struct lc_kms_pkcs11 *k;
	struct lc_provider p;
	struct lc_provider_reply rep;
	struct lc_error e = { 0 };
	struct lc_kms_pkcs11_config none = { 0 };
	struct lc_retry_policy pol = LC_RETRY_POLICY_DEFAULT;
	char pin[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(lc_kms_pkcs11_new(&k, &bad[i].c, &e) < 0, 1);
		assert_null(k);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
		if (!strstr(e.msg, bad[i].needle))
			fail_msg("config %zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].needle);
	}
	/* No module: the provider exists and says what is missing. */
	assert_int_equal(lc_kms_pkcs11_new(&k, &none, &e), 0);
	lc_kms_pkcs11_provider_init(&p, k);
	assert_int_equal(lc_provider_key_state(&p, "cmk", &rep, &e), -EINVAL);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(e.msg, "no PKCS#11 module is configured"));
	lc_provider_close(&p);
	/* A module that cannot be loaded: misconfigured, not retried. */
	put("pin", "1234\n", 5, 0600, pin);
	{
		struct lc_kms_pkcs11_config c = { "/nonexistent/module.so", "t", NULL, pin, 1 };

		assert_int_equal(lc_kms_pkcs11_new(&k, &c, &e), 0);
	}
	lc_kms_pkcs11_provider_init(&p, k);
	pol.base_delay_ms = 1;
	assert_int_equal(lc_provider_set_policy(&p, &pol, &e), 0);
	assert_int_equal(lc_provider_key_state(&p, "cmk", &rep, &e), -ENOENT);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	assert_int_equal(rep.attempts, 1);
	assert_non_null(strstr(e.msg, "cannot load PKCS#11 module /nonexistent/module.so"));
	/* Bad references and blobs are refused before any module call. */
	{
		struct lc_buf blob = { (uint8_t *)"\x01\x0c\x10\x00short", 9 };
		struct lc_secret pt = { 0 };

		assert_int_equal(lc_provider_unwrap(&p, "cmk", &blob, "ctx", &pt, &rep, &e), -EBADMSG);
		assert_int_equal(e.cls, LC_ERRC_INVALID);
		assert_int_equal(lc_provider_key_state(&p, "id:xyz", &rep, &e), -EINVAL);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	}
	lc_provider_close(&p);
}

/* ---- against SoftHSM2 ---------------------------------------------------- */

static const char *softhsm(void)
{
	static const char *const paths[] = { "/usr/lib/softhsm/libsofthsm2.so",
					     "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so" };

	for (size_t i = 0; i < 2; i++)
		if (access(paths[i], R_OK) == 0)
			return paths[i];
	return NULL;
}

#define SO_PIN	"87654321"
#define USER_PIN "unit-pin-1"

/* A token "lc-unit" with an AES key "cmk" (and an extractable "ext"),
 * made through the PKCS#11 API in a private token directory. */
static void make_token(const char *module)
{
	char conf[256], toks[256], line[600];
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR f;
	CK_SLOT_ID slots[16], slot;
	CK_ULONG n = 16;
	CK_SESSION_HANDLE s;
	CK_UTF8CHAR label[32];
	CK_OBJECT_HANDLE h;
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG len = 32;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	void *dl;
	FILE *fp;

	sprintf(toks, "%s/tokens", tmpdir);
	assert_int_equal(mkdir(toks, 0700), 0);
	sprintf(conf, "%s/softhsm2.conf", tmpdir);
	fp = fopen(conf, "w");
	assert_non_null(fp);
	snprintf(line, sizeof(line), "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", toks);
	fputs(line, fp);
	fclose(fp);
	setenv("SOFTHSM2_CONF", conf, 1);

	dl = dlopen(module, RTLD_NOW);
	assert_non_null(dl);
	get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	assert_non_null(get);
	assert_int_equal(get(&f), CKR_OK);
	assert_int_equal(f->C_Initialize(NULL), CKR_OK);
	assert_int_equal(f->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
	assert_true(n >= 1);
	memset(label, ' ', sizeof(label));
	memcpy(label, "lc-unit", 7);
	assert_int_equal(f->C_InitToken(slots[0], (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN), label), CKR_OK);
	/* SoftHSM moves an initialised token to a new slot id. */
	n = 16;
	assert_int_equal(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	slot = slots[0];
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && !memcmp(ti.label, label, 32))
			slot = slots[i];
	}
	assert_int_equal(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
	assert_int_equal(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN)), CKR_OK);
	assert_int_equal(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)), CKR_OK);
	assert_int_equal(f->C_Logout(s), CKR_OK);
	assert_int_equal(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)), CKR_OK);
	for (int i = 0; i < 2; i++) {
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_KEY_TYPE, &kt, sizeof(kt) },
			{ CKA_VALUE_LEN, &len, sizeof(len) },
			{ CKA_LABEL, i ? "ext" : "cmk", 3 },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_ENCRYPT, &yes, sizeof(yes) },
			{ CKA_DECRYPT, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, i ? &no : &yes, sizeof(yes) },
			{ CKA_EXTRACTABLE, i ? &yes : &no, sizeof(yes) },
		};

		assert_int_equal(f->C_GenerateKey(s, &gen, t, sizeof(t) / sizeof(t[0]), &h), CKR_OK);
	}
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
	dlclose(dl);
}

struct worker_arg {
	struct lc_provider *p;
	int id, failures;
};

#define THREADS	8
#define ROUNDS	25

static void *hammer(void *arg)
{
	struct worker_arg *w = arg;
	char ctx[64];

	snprintf(ctx, sizeof(ctx), "lakecrypt:v2;volume=thread-%d", w->id);
	for (int i = 0; i < ROUNDS; i++) {
		struct lc_secret pt = { 0 }, back = { 0 };
		struct lc_buf blob = { 0 };
		struct lc_error e = { 0 };

		if (lc_secret_alloc(&pt, 32) < 0) {
			w->failures++;
			continue;
		}
		memset(pt.p, w->id * 31 + i, 32);
		if (lc_provider_wrap(w->p, "cmk", &pt, ctx, &blob, NULL, &e) ||
		    lc_provider_unwrap(w->p, "cmk", &blob, ctx, &back, NULL, &e) ||
		    back.len != 32 || memcmp(back.p, pt.p, 32))
			w->failures++;
		free(blob.p);
		lc_secret_free(&pt);
		lc_secret_free(&back);
	}
	return NULL;
}

static void test_softhsm(void **state)
{
	const char *module = softhsm();
	char pin[256];
	struct lc_kms_pkcs11 *k;
	struct lc_provider p;
	struct lc_provider_reply rep;
	struct lc_provider_counters c;
	struct lc_error e = { 0 };
	struct lc_secret pt = { 0 }, back = { 0 };
	struct lc_buf blob = { 0 };
	struct worker_arg wa[THREADS];
	pthread_t t[THREADS];

	(void)state;
	if (!module)
		fail_msg("SoftHSM2 is not installed (make setup installs softhsm2)");
	make_token(module);
	put("user.pin", USER_PIN "\n", strlen(USER_PIN) + 1, 0600, pin);
	{
		struct lc_kms_pkcs11_config cfg = { module, "lc-unit", NULL, pin, 3 };

		assert_int_equal(lc_kms_pkcs11_new(&k, &cfg, &e), 0);
	}
	lc_kms_pkcs11_provider_init(&p, k);
	assert_int_equal(lc_provider_key_state(&p, "cmk", &rep, &e), 0);
	assert_int_equal(rep.state, LC_KEY_ENABLED);
	assert_non_null(strstr(rep.key_id, "pkcs11:token=lc-unit;serial="));
	assert_non_null(strstr(rep.key_id, ";object=cmk;id=;type=secret-key"));
	assert_int_equal(lc_provider_key_state(&p, "ext", &rep, &e), -EPERM);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	/* An unbound reference cannot tell a deleted key from a token
	 * re-initialised under the same label: no revocation. */
	assert_int_equal(lc_provider_key_state(&p, "gone", &rep, &e), -ENOENT);
	assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(e.msg, "not bound to a token serial"));
	/* key_state binds the reference to the token's serial ... */
	assert_int_equal(lc_provider_key_state(&p, "cmk", &rep, &e), 0);
	{
		char bound[LC_PROVIDER_KEYID_MAX], other[LC_PROVIDER_KEYID_MAX], ser[17];
		const char *sp = strstr(rep.key_id, ";serial=");
		size_t sl;

		assert_non_null(sp);
		sp += 8;
		sl = strcspn(sp, ";");
		assert_true(sl > 0 && sl < sizeof(ser));
		memcpy(ser, sp, sl);	/* rep is reused below */
		ser[sl] = '\0';
		snprintf(bound, sizeof(bound), "serial=%.*s;label:cmk", (int)sl, ser);
		assert_string_equal(rep.bound_ref, bound);
		assert_int_equal(lc_provider_key_state(&p, "id:", &rep, &e), -EINVAL);
		assert_int_equal(lc_provider_key_state(&p, bound, &rep, &e), 0);
		assert_int_equal(rep.state, LC_KEY_ENABLED);
		assert_string_equal(rep.bound_ref, "");	/* bound already */
		/* ... under which a missing key on that token is destroyed ... */
		snprintf(other, sizeof(other), "serial=%.*s;label:gone", (int)sl, ser);
		assert_int_equal(lc_provider_key_state(&p, other, &rep, &e), 0);
		assert_int_equal(rep.state, LC_KEY_DESTROYED);
		snprintf(other, sizeof(other), "serial=%.*s;id:7777", (int)sl, ser);
		{
			uint8_t b1[LC_P11_BLOB_OVERHEAD + 1] = { 1, 12, 16, 0 };
			struct lc_buf bb = { b1, sizeof(b1) };

			int ur = lc_provider_unwrap(&p, other, &bb, "ctx-a", &back, &rep, &e);

			if (ur != -EKEYREVOKED)
				fail_msg("unwrap under a deleted key: %d %s", ur, e.msg);
		}
		assert_int_equal(e.cls, LC_ERRC_DENIED);
		/* ... and a token of another serial under the label (a
		 * re-initialised token) is never a revocation. */
		assert_int_equal(lc_provider_key_state(&p, "serial=0000000000000000;label:cmk", &rep, &e), -ENXIO);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
		assert_non_null(strstr(e.msg, "the key was made on serial 0000000000000000: a re-initialised or different token"));
		assert_int_equal(lc_provider_key_state(&p, "serial=0000000000000000;label:gone", &rep, &e), -ENXIO);
		assert_int_equal(e.cls, LC_ERRC_MISCONFIG);
	}

	assert_int_equal(lc_secret_alloc(&pt, 32), 0);
	memset(pt.p, 0x5a, 32);
	assert_int_equal(lc_provider_wrap(&p, "cmk", &pt, "ctx-a", &blob, &rep, &e), 0);
	assert_int_equal(blob.len, LC_P11_BLOB_OVERHEAD + 32);
	assert_int_equal(lc_provider_unwrap(&p, "cmk", &blob, "ctx-a", &back, &rep, &e), 0);
	assert_int_equal(back.len, 32);
	assert_memory_equal(back.p, pt.p, 32);
	assert_true(back.locked || !pt.locked);
	lc_secret_free(&back);
	assert_int_equal(lc_provider_unwrap(&p, "cmk", &blob, "ctx-b", &back, &rep, &e), -EBADMSG);
	assert_int_equal(e.cls, LC_ERRC_INVALID);
	assert_null(back.p);
	/* A header this version does not know is refused before the token. */
	blob.p[3] = 1;
	assert_int_equal(lc_provider_unwrap(&p, "cmk", &blob, "ctx-a", &back, &rep, &e), -EBADMSG);
	free(blob.p);
	lc_secret_free(&pt);

	/* 8 threads, 25 wraps and unwraps each, over 3 sessions. */
	lc_provider_counters_reset(&p);
	for (int i = 0; i < THREADS; i++) {
		wa[i] = (struct worker_arg){ &p, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &wa[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(wa[i].failures, 0);
	}
	lc_provider_counters(&p, &c);
	assert_int_equal(c.wrap, THREADS * ROUNDS);
	assert_int_equal(c.unwrap, THREADS * ROUNDS);
	assert_int_equal(c.failures, 0);
	lc_provider_close(&p);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ref),
		cmocka_unit_test(test_blob),
		cmocka_unit_test(test_uri_escape),
		cmocka_unit_test(test_pin_file),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_new),
		cmocka_unit_test(test_softhsm),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
