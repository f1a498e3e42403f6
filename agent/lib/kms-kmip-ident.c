// SPDX-License-Identifier: GPL-2.0
/*
 * KMIP: the principal the agent is at the server (issue 10, identity
 * binding).  A KMIP server knows its client by the TLS client certificate
 * (KMIP Profiles v1.4 section 3.1.2, "TLS client authentication"; PyKMIP
 * takes the certificate's subject common name as the owner of what it
 * creates and matches its operation policies on it).  The principal is
 * that certificate's subject and issuer as RFC 4514 strings, as OpenSSL
 * prints them (X509_NAME_print_ex, XN_FLAG_RFC2253), not its fingerprint:
 * a renewed certificate for the same subject from the same CA is the same
 * client to the server, so it is the same principal here.  See kms-kmip.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "kms-kmip.h"

/* A name bigger than this (DER) is refused: no certificate needs it. */
#define NAME_DER_MAX	(32 * 1024)

/*
 * Append the RFC 4514 form of @name to @b (a memory BIO).  OpenSSL's
 * RFC 2253 flags escape the special characters (, + " \ < > ; and a
 * leading # or blank), control characters and every byte with the high
 * bit set (UTF-8 included) as \XX, and dump unknown string types as
 * #<hex>: the output is ASCII.
 */
static int print_name(BIO *b, const X509_NAME *name, const char *what, struct lc_error *err)
{
	int der = i2d_X509_NAME(name, NULL);

	if (der < 0 || der > NAME_DER_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[kmip] client_cert: its %s name is not usable (%d bytes of DER, at most %d)",
			      what, der, NAME_DER_MAX);
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) < 0) {
		ERR_clear_error();
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "cannot print the client certificate's %s",
			      what);
	}
	return 0;
}

int lc_kmip_cert_principal(const X509 *cert, char *out, size_t size, struct lc_error *err)
{
	static const char hexd[] = "0123456789ABCDEF";
	const size_t tail = sizeof("...;sha256=") - 1 + 2 * SHA256_DIGEST_LENGTH;
	uint8_t md[SHA256_DIGEST_LENGTH];
	const char *raw;
	size_t n = 0, len, i;
	long rl;
	BIO *b;
	int r;

	if (size)
		out[0] = '\0';
	if (size < LC_KMIP_PRINCIPAL_MIN)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "no room for a KMIP principal (%zu bytes)",
			      size);
	if (!cert)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "[kmip] no client certificate is loaded");
	b = BIO_new(BIO_s_mem());
	if (!b)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	r = BIO_puts(b, "subject=") < 0 ? lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory") : 0;
	if (!r)
		r = print_name(b, X509_get_subject_name(cert), "subject", err);
	if (!r && BIO_puts(b, ";issuer=") < 0)
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	if (!r)
		r = print_name(b, X509_get_issuer_name(cert), "issuer", err);
	if (r < 0) {
		BIO_free(b);
		return r;
	}
	rl = BIO_get_mem_data(b, &raw);
	len = rl > 0 ? (size_t)rl : 0;
	/* Printable ASCII whatever OpenSSL left: anything else as \XX. */
	for (i = 0; i < len && n + 3 < size; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c >= 0x20 && c <= 0x7e) {
			out[n++] = (char)c;
		} else {
			out[n++] = '\\';
			out[n++] = hexd[c >> 4];
			out[n++] = hexd[c & 15];
		}
	}
	out[n] = '\0';
	if (i < len) {
		/* Too long to keep whole: a readable start and the SHA-256 of
		 * the whole printed form, so that two names stay two principals. */
		size_t keep = size - 1 - tail;

		SHA256((const unsigned char *)raw, len, md);
		n = keep;
		memcpy(out + n, "...;sha256=", 11);
		n += 11;
		for (size_t j = 0; j < sizeof(md); j++) {
			out[n++] = "0123456789abcdef"[md[j] >> 4];
			out[n++] = "0123456789abcdef"[md[j] & 15];
		}
		out[n] = '\0';
	}
	BIO_free(b);
	return 0;
}
