// SPDX-License-Identifier: GPL-2.0
/*
 * The KMIP principal (kms-kmip-ident.c, issue 10): the client
 * certificate's subject and issuer in RFC 4514 form.  Certificates are
 * made here with OpenSSL, hostile ones included: special characters,
 * control characters and NUL, UTF-8, huge names; the principal must be
 * printable ASCII, bounded, the same for a renewed certificate (new key,
 * serial) and different for another subject or issuer, even when only the
 * end of a huge name differs.
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
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "kms-kmip.h"
#include "provider.h"
#include "registry.h"

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

/* A name from (field, type, bytes, length) entries; type MBSTRING_UTF8 or V_ASN1_*. */
struct ent {
	const char *field;
	int type;
	const char *val;
	int len;	/* -1: strlen */
};

static X509_NAME *name_of(const struct ent *e, size_t n)
{
	X509_NAME *nm = X509_NAME_new();

	assert_non_null(nm);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(X509_NAME_add_entry_by_txt(nm, e[i].field, e[i].type,
							    (const unsigned char *)e[i].val, e[i].len,
							    -1, 0), 1);
	return nm;
}

/* A certificate for @subject signed (self: the test needs no chain) with
 * issuer name @issuer, serial @serial, a fresh key. */
static X509 *cert(X509_NAME *subject, X509_NAME *issuer, long serial)
{
	X509 *x = X509_new();
	EVP_PKEY *k = new_key();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_subject_name(x, subject), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer), 1);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	EVP_PKEY_free(k);
	return x;
}

static void principal(const X509 *x, char *out, size_t size)
{
	struct lc_error err = { 0 };

	if (lc_kmip_cert_principal(x, out, size, &err))
		fail_msg("principal: %s", err.msg);
	assert_true(strlen(out) < size);
	for (const char *c = out; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			fail_msg("principal has byte 0x%02x: %s", (unsigned char)*c, out);
}

static void test_plain_and_renewed(void **state)
{
	static const struct ent ca[] = { { "CN", MBSTRING_UTF8, "lakecrypt-kmip-test-ca", -1 } };
	static const struct ent a[] = { { "C", MBSTRING_UTF8, "DE", -1 },
					{ "O", MBSTRING_UTF8, "Example", -1 },
					{ "CN", MBSTRING_UTF8, "lakecrypt-agent", -1 } };
	static const struct ent b[] = { { "C", MBSTRING_UTF8, "DE", -1 },
					{ "O", MBSTRING_UTF8, "Example", -1 },
					{ "CN", MBSTRING_UTF8, "lakecrypt-agent-b", -1 } };
	static const struct ent ca2[] = { { "CN", MBSTRING_UTF8, "other-ca", -1 } };
	X509_NAME *nca = name_of(ca, 1), *na = name_of(a, 3), *nb = name_of(b, 3), *nca2 = name_of(ca2, 1);
	X509 *xa = cert(na, nca, 1), *xr = cert(na, nca, 2), *xb = cert(nb, nca, 3), *xo = cert(na, nca2, 4);
	char pa[LC_PROVIDER_IDENTITY_MAX], pr[LC_PROVIDER_IDENTITY_MAX], pb[LC_PROVIDER_IDENTITY_MAX],
	     po[LC_PROVIDER_IDENTITY_MAX];

	(void)state;
	principal(xa, pa, sizeof(pa));
	/* RFC 4514: the most specific RDN first */
	assert_string_equal(pa, "subject=CN=lakecrypt-agent,O=Example,C=DE;issuer=CN=lakecrypt-kmip-test-ca");
	principal(xr, pr, sizeof(pr));
	assert_string_equal(pa, pr);		/* renewed: another key and serial, one principal */
	principal(xb, pb, sizeof(pb));
	assert_string_not_equal(pa, pb);	/* another subject */
	principal(xo, po, sizeof(po));
	assert_string_not_equal(pa, po);	/* the same subject from another CA */
	assert_string_equal(po, "subject=CN=lakecrypt-agent,O=Example,C=DE;issuer=CN=other-ca");
	X509_free(xa), X509_free(xr), X509_free(xb), X509_free(xo);
	X509_NAME_free(nca), X509_NAME_free(na), X509_NAME_free(nb), X509_NAME_free(nca2);
}

/* The principal of a cert with the one-entry subject e issued by issuer,
 * into p (size bytes). */
static void principal_one(const struct ent *e, X509_NAME *issuer, char *p, size_t size)
{
	X509_NAME *n = name_of(e, 1);
	X509 *x = cert(n, issuer, 1);

	principal(x, p, size);
	X509_free(x), X509_NAME_free(n);
}

static void test_hostile_names(void **state)
{
	static const struct ent ca[] = { { "CN", MBSTRING_UTF8, "ca", -1 } };
	/* RFC 4514 specials, which would otherwise forge a separator ('=' in
	 * a value needs no escape: the separator is the unescaped ';') */
	static const struct ent sp[] = { { "CN", MBSTRING_UTF8, "a,b;issuer=CN=ca+x\"<>\\", -1 } };
	static const struct ent lead[] = { { "CN", MBSTRING_UTF8, "#lead ", -1 } };
	/* control characters and NUL, as raw bytes of a UTF8String */
	static const struct ent ctl[] = { { "CN", V_ASN1_UTF8STRING, "a\nb\x01" "c\x7f" "d\0e", 9 } };
	/* UTF-8: U+00FC, U+4E2D, U+1F511 */
	static const struct ent utf[] = { { "CN", MBSTRING_UTF8, "J\xc3\xbcrgen \xe4\xb8\xad \xf0\x9f\x94\x91", -1 } };
	/* a type OpenSSL does not print as text (dumped as #hex) */
	static const struct ent bmp[] = { { "CN", MBSTRING_BMP, "\x00" "A" "\x00" "\x0a", 4 } };
	X509_NAME *nca = name_of(ca, 1);
	char p[LC_PROVIDER_IDENTITY_MAX];

	(void)state;
	principal_one(sp, nca, p, sizeof(p));
	assert_string_equal(p, "subject=CN=a\\,b\\;issuer=CN=ca\\+x\\\"\\<\\>\\\\;issuer=CN=ca");

	principal_one(lead, nca, p, sizeof(p));
	assert_string_equal(p, "subject=CN=\\#lead\\ ;issuer=CN=ca");

	principal_one(ctl, nca, p, sizeof(p));
	assert_non_null(strstr(p, "subject=CN=a\\0Ab\\01c\\7Fd\\00e;"));

	principal_one(utf, nca, p, sizeof(p));
	assert_string_equal(p, "subject=CN=J\\C3\\BCrgen \\E4\\B8\\AD \\F0\\9F\\94\\91;issuer=CN=ca");

	principal_one(bmp, nca, p, sizeof(p));	/* printable whatever the type */
	assert_non_null(strstr(p, ";issuer=CN=ca"));
	X509_NAME_free(nca);
}

/* A huge name: bounded, hashed; names that differ only past the cut stay
 * different, the same name gives the same principal. */
static void test_huge_names(void **state)
{
	static const struct ent ca[] = { { "CN", MBSTRING_UTF8, "ca", -1 } };
	X509_NAME *nca = name_of(ca, 1), *n1 = X509_NAME_new(), *n2 = X509_NAME_new();
	char p1[LC_PROVIDER_IDENTITY_MAX], p2[LC_PROVIDER_IDENTITY_MAX], p3[LC_PROVIDER_IDENTITY_MAX];
	char ou[61], small[LC_KMIP_PRINCIPAL_MIN];
	struct lc_error err = { 0 };
	X509 *x1, *x2, *x3;

	(void)state;
	memset(ou, 'o', 60);
	ou[60] = '\0';
	for (int i = 0; i < 40; i++) {
		ou[0] = (char)('A' + i % 26);
		assert_int_equal(X509_NAME_add_entry_by_txt(n1, "OU", MBSTRING_UTF8, (unsigned char *)ou,
							    -1, -1, 0), 1);
		assert_int_equal(X509_NAME_add_entry_by_txt(n2, "OU", MBSTRING_UTF8, (unsigned char *)ou,
							    -1, -1, 0), 1);
	}
	/* RFC 4514 prints the last RDN first: they differ at the very end */
	assert_int_equal(X509_NAME_add_entry_by_txt(n1, "C", MBSTRING_UTF8, (unsigned char *)"DE", -1, 0, 0), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(n2, "C", MBSTRING_UTF8, (unsigned char *)"FR", -1, 0, 0), 1);
	x1 = cert(n1, nca, 1);
	x2 = cert(n2, nca, 2);
	x3 = cert(n1, nca, 3);
	principal(x1, p1, sizeof(p1));
	principal(x2, p2, sizeof(p2));
	principal(x3, p3, sizeof(p3));
	assert_int_equal(strlen(p1), sizeof(p1) - 1);
	assert_non_null(strstr(p1, "...;sha256="));
	assert_int_equal(strlen(strstr(p1, ";sha256=") + 8), 64);
	assert_string_not_equal(p1, p2);
	assert_string_equal(p1, p3);
	assert_int_equal(strncmp(p1, "subject=OU=Noooo", 16), 0);
	/* the smallest buffer allowed, and one too small */
	principal(x1, small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(lc_kmip_cert_principal(x1, small, sizeof(small) - 1, &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_INTERNAL);
	assert_string_equal(small, "");
	assert_int_equal(lc_kmip_cert_principal(NULL, p1, sizeof(p1), &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	X509_free(x1), X509_free(x2), X509_free(x3);
	X509_NAME_free(n1), X509_NAME_free(n2), X509_NAME_free(nca);
}

/* A name of more than 32 KiB DER is refused, not printed. */
static void test_name_too_big(void **state)
{
	static const struct ent ca[] = { { "CN", MBSTRING_UTF8, "ca", -1 } };
	X509_NAME *nca = name_of(ca, 1), *n = X509_NAME_new();
	char p[LC_PROVIDER_IDENTITY_MAX], *v = malloc(1001);
	struct lc_error err = { 0 };
	X509 *x;

	(void)state;
	assert_non_null(v);
	memset(v, 'x', 1000);
	v[1000] = '\0';
	for (int i = 0; i < 40; i++)
		assert_int_equal(X509_NAME_add_entry_by_txt(n, "OU", V_ASN1_UTF8STRING,
							    (unsigned char *)v, -1, -1, 0), 1);
	x = cert(n, nca, 1);
	assert_int_equal(lc_kmip_cert_principal(x, p, sizeof(p), &err), -EINVAL);
	assert_int_equal(err.cls, LC_ERRC_MISCONFIG);
	assert_non_null(strstr(err.msg, "subject"));
	assert_string_equal(p, "");
	X509_free(x), X509_NAME_free(n), X509_NAME_free(nca);
	free(v);
}

/* Every principal made here survives the registry (printable ASCII that
 * fits kms_identity): escapes, quotes, the longest, hashed form. */
static void test_registry_round_trip(void **state)
{
	static const struct ent ca[] = { { "CN", MBSTRING_UTF8, "ca \"quoted\"", -1 } };
	static const struct ent sp[] = { { "CN", V_ASN1_UTF8STRING, "a\\b\"c\x01\xc3\xbc ;,+", -1 } };
	X509_NAME *nca = name_of(ca, 1), *n = name_of(sp, 1), *big = X509_NAME_new();
	struct lc_keyconfig kc, back;
	const char *why = NULL;
	char ou[61];
	json_object *o;
	X509 *x;

	(void)state;
	memset(ou, 'u', 60);
	ou[60] = '\0';
	for (int i = 0; i < 20; i++)
		assert_int_equal(X509_NAME_add_entry_by_txt(big, "OU", MBSTRING_UTF8, (unsigned char *)ou,
							    -1, -1, 0), 1);
	for (int k = 0; k < 2; k++) {
		memset(&kc, 0, sizeof(kc));
		strcpy(kc.name, "kc1");
		strcpy(kc.provider, LC_KMS_KMIP_NAME);
		strcpy(kc.key_ref, "server-sha256=00;uid=1");
		strcpy(kc.cmk_id, "1");
		x = cert(k ? big : n, nca, 1);
		principal(x, kc.kms_identity, sizeof(kc.kms_identity));
		if (k)
			assert_int_equal(strlen(kc.kms_identity), sizeof(kc.kms_identity) - 1);
		o = lc_keyconfig_to_json(&kc);
		assert_int_equal(lc_keyconfig_from_json(o, &back, &why), 0);
		assert_string_equal(back.kms_identity, kc.kms_identity);
		json_object_put(o);
		X509_free(x);
	}
	X509_NAME_free(nca), X509_NAME_free(n), X509_NAME_free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_renewed),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_huge_names),
		cmocka_unit_test(test_name_too_big),
		cmocka_unit_test(test_registry_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
