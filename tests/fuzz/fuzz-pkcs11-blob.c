// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: what the PKCS#11 provider reads before it asks the
 * token -- the wrapped-KEK blob from a volume header (disk contents) and
 * the key reference an operator typed.  Byte 0 picks which; the rest is
 * the input.  A success must describe a slice of the input: IV and
 * ciphertext inside the blob, a reference's id or label within bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms-pkcs11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lc_error err;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		const uint8_t *iv, *ct;
		size_t ct_len;
		uint8_t *b = malloc(size - 1 ? size - 1 : 1);

		if (!b)
			return 0;
		memcpy(b, data + 1, size - 1);
		if (!lc_p11_blob_parse(b, size - 1, &iv, &ct, &ct_len, &err) &&
		    (iv != b + LC_P11_BLOB_HDR_LEN || ct != iv + LC_P11_IV_LEN ||
		     ct + ct_len != b + size - 1 || ct_len <= LC_P11_TAG_LEN))
			abort();
		free(b);
	} else {
		struct lc_p11_ref ref;
		char *s = malloc(size);
		char uri[3 * LC_KMS_PKCS11_LABEL_MAX + 1];

		if (!s)
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		if (!lc_p11_parse_ref(s, &ref, &err)) {
			if (ref.by_id ? (!ref.id_len || ref.id_len > LC_KMS_PKCS11_ID_MAX) :
			    (!ref.label[0] || strlen(ref.label) > LC_KMS_PKCS11_LABEL_MAX))
				abort();
			if (!ref.by_id &&
			    lc_p11_uri_escape((const uint8_t *)ref.label, strlen(ref.label), false, uri,
					      sizeof(uri)))
				abort();
		}
		free(s);
	}
	return 0;
}
