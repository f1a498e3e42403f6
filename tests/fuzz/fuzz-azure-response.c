// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the Azure Key Vault answer reader
 * (lc_azure_parse_response: key bundles, deleted keys, wrapkey/unwrapkey,
 * token answers of the identity platform and IMDS), which sees whatever an
 * endpoint, a proxy or an attacker on the path sends, and the readers of
 * what a volume header carries: the wrapped key blob (lc_azure_blob_parse)
 * and, through it, a key URL (lc_azure_keyref_parse).
 * Byte 0 picks the reader (and IMDS for tokens), byte 1 the HTTP status,
 * byte 2 the Retry-After header; the rest is the body or blob.  Any result
 * is fine; a crash, a leak or UB is not, and a success must come with a
 * well-formed, bounded result.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms-azure.h"

static const long statuses[] = { 200, 400, 401, 403, 404, 408, 410, 429, 500, 503, 201, 204 };
static const char *const retry_afters[] = { "", "1", "120", "Wed, 21 Oct 2037 07:28:00 GMT", "x", "99999999999999999999" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lc_azure_result res;
	struct lc_error err = { 0 };
	unsigned int sel;
	long status;

	if (size < 3)
		return 0;
	sel = data[0] % 6;
	status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];
	if (sel == 5) {
		enum lc_azure_alg alg;
		char kid[LC_AZURE_KID_MAX + 1];
		const uint8_t *w;
		size_t wl;

		if (!lc_azure_blob_parse(data + 3, size - 3, &alg, kid, &w, &wl, &err)) {
			struct lc_azure_keyref k;

			if (!wl || wl > LC_AZURE_WRAPPED_MAX || strlen(kid) > LC_AZURE_KID_MAX ||
			    w + wl != data + size)
				abort();
			if (!lc_azure_keyref_parse(kid, &k, &err) &&
			    (!k.name[0] || strlen(k.host) >= sizeof(k.host)))
				abort();
		} else if (err.cls != LC_ERRC_INVALID || !err.msg[0]) {
			abort();
		}
		return 0;
	}
	if (!lc_azure_parse_response((enum lc_azure_op)sel, status, (const char *)data + 3, size - 3,
				     retry_afters[data[2] % 6], 1800000000, data[0] & 0x80, &res, &err)) {
		if (sel == LC_AZURE_WRAP && (!res.value.p || !res.value.len || res.value.len > LC_AZURE_WRAPPED_MAX))
			abort();
		if (sel == LC_AZURE_UNWRAP && (!res.secret.p || !res.secret.len ||
					       res.secret.len > LC_AZURE_WRAPPED_MAX))
			abort();
		if (sel == LC_AZURE_TOKEN && (!res.secret.p || res.expires_at <= 1800000000 ||
					      strlen((const char *)res.secret.p) != res.secret.len ||
					      strpbrk((const char *)res.secret.p, "\r\n")))
			abort();
		if ((sel == LC_AZURE_GET_KEY || sel == LC_AZURE_DELETED_KEY) && res.state == LC_KEY_UNKNOWN)
			abort();
	} else {
		if (err.cls == LC_ERRC_NONE || !err.msg[0])
			abort();
		/* Only an authoritative Key Vault answer may deny. */
		if (err.cls == LC_ERRC_DENIED && sel == LC_AZURE_TOKEN)
			abort();
		if (err.cls == LC_ERRC_DENIED && status != 403 && status != 404)
			abort();
		if (res.retry_after_ms > LC_AZURE_RETRY_AFTER_MAX_MS)
			abort();
	}
	lc_azure_result_free(&res);
	return 0;
}
